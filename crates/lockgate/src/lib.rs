//! Lockgate's engines and library API. Today: [`load`] (data files into a table)
//! and [`inspect`](inspect::inspect) (a database's schema), with the [`config`]
//! that names connections. Migrations, transfers, merges, snapshots and upgrades
//! build on the same writer, ledger and locks.
//!
//! Engines never print and never exit: they return typed results and send progress
//! on a channel; the CLI and the server decide how to show them.
#![deny(missing_docs)]

pub mod config;
pub mod dump;
pub mod inspect;
pub mod load;
pub mod migrate;
mod source;

pub use config::Config;
pub use dump::{dump, DumpOptions, DumpReport};
pub use load::{load, LoadError, LoadOptions, LoadReport};
pub use lockgate_db as db;
pub use migrate::rollback::{rollback, RollbackOptions, RollbackReport};
pub use migrate::status::{status, StatusOptions, StatusReport};
pub use migrate::{migrate, MigrateError, MigrateOptions, MigrateReport};
