//! Lockgate's database layer, the only crate that writes SQL: connections by URL,
//! introspection into one table model, streaming reads, the bulk writer with its
//! staging tables and error isolation, transient-error retry, and the ledger with
//! its runs and job locks.
//!
//! The main types are [`Conn`] (one connection to SQLite, PostgreSQL or MariaDB),
//! [`writer::Writer`] (bulk writes in every mode with diagnose-on-failure), and
//! [`ledger::Ledger`] (Lockgate's own tables and locks).
#![deny(missing_docs)]

pub mod browse;
pub mod checksum;
pub mod conn;
pub mod demo;
pub mod dialect;
pub mod error;
pub mod exports;
pub mod ledger;
pub mod merge;
pub mod mysql;
pub mod mysql_server;
pub mod pg;
pub mod read;
mod read_back;
pub mod relation;
pub mod rowdiff;
pub mod rows;
pub mod rowset;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod sqlite;
pub mod sqltext;
pub mod subset;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod upgrades;
pub mod url;
pub mod versions;
pub mod writer;

pub use conn::{BulkOutcome, Canceller, Conn};
pub use dialect::Dialect;
pub use error::{DbError, EngineError};
pub use url::{DbUrl, Engine};
