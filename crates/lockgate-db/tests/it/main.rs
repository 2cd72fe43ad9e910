//! lockgate-db's one integration-test binary (see matklad's "Delete Cargo
//! Integration Tests"). Tests that need PostgreSQL or MariaDB use the servers named
//! by `LOCKGATE_TEST_POSTGRES` / `LOCKGATE_TEST_MYSQL`, each in a fresh database.

/// One `#[tokio::test]` per engine for each case, so a failure names its engine.
macro_rules! on_every_engine {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(lockgate_db::Engine::Sqlite).await
            })*
        }
        mod pg {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(lockgate_db::Engine::Postgres).await
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(lockgate_db::Engine::Mysql).await
            })*
        }
    };
}

/// Test databases (shared with the other crates) and small value builders.
mod support {
    use lockgate_core::{Decimal, Row, Value};
    pub use lockgate_db::testing::*;

    /// Rows numbered from line 1.
    pub fn rows(values: Vec<Vec<Value>>) -> Vec<Row> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, values)| Row {
                line: i as u64 + 1,
                number: i as u64 + 1,
                values,
            })
            .collect()
    }

    /// Column names.
    pub fn names(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| c.to_string()).collect()
    }

    /// A text value.
    pub fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    /// A decimal value (the test's own literal: panics if it is not one).
    pub fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::parse(s).unwrap_or_else(|| panic!("bad decimal {s}")))
    }
}

mod browse;
mod cancel;
mod checksum;
mod mysql;
mod paging;
mod pg;
mod precision;
mod query_pages;
mod runs;
mod sqlite;
mod subset;
mod takeover;
mod types;
mod upgrades;
mod writer;
