//! lockgate-db's one integration-test binary (see matklad's "Delete Cargo
//! Integration Tests"). Tests that need PostgreSQL or MariaDB use the servers named
//! by `LOCKGATE_TEST_POSTGRES` / `LOCKGATE_TEST_MYSQL`, each in a fresh database.

/// Test databases, shared with the other crates.
mod support {
    pub use lockgate_db::testing::*;
}

mod mysql;
mod pg;
mod sqlite;
mod types;
mod writer;
