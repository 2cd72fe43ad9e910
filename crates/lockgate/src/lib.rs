//! Lockgate's engines and library API: [`load`] (data files into a table),
//! [`migrate`] with [`status`], [`rollback`] and [`dump`] (versioned data migrations
//! from oe-migration style `db/` folders, and [`baseline`](baseline::baseline), which makes a new
//! deployment start at the current version), and [`inspect`](inspect::inspect) (a
//! database's schema), with the [`config`] that names connections. Transfers, merges,
//! snapshots and upgrades build on the same writer, ledger and locks.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lockgate::{migrate, MigrateOptions};
//!
//! let url = lockgate::db::DbUrl::parse("sqlite://app.db")?;
//! let opts = MigrateOptions { dir: "db".into(), ..MigrateOptions::default() };
//! let report = migrate(&url, &opts, None).await?;
//! // oe-migration's callback values: the version before, and what this run applied.
//! println!("{:?} -> {:?}", report.old_version, report.migrated_versions);
//! if report.failed_version.is_some() {
//!     std::process::exit(report.exit_code()); // 3: a version's records failed, it was rolled back
//! }
//! # Ok(()) }
//! ```
//!
//! Engines never print and never exit: they return typed results and send progress
//! on a channel; the CLI and the server decide how to show them.
#![deny(missing_docs)]

pub mod baseline;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod dump;
mod harden;
pub mod inspect;
pub mod load;
pub mod mask;
pub mod merge;
pub mod migrate;
pub mod snapshot;
mod source;
pub mod transfer;
pub mod upgrade;
pub mod verify;

pub use baseline::{baseline, BaselineError, BaselineOptions, BaselineReport};
pub use config::Config;
pub use dump::{dump, DumpOptions, DumpReport};
pub use harden::harden_process;
pub use load::{load, LoadError, LoadOptions, LoadReport};
pub use lockgate_db as db;
pub use migrate::rollback::{rollback, RollbackOptions, RollbackReport};
pub use migrate::status::{status, StatusOptions, StatusReport};
pub use migrate::{migrate, MigrateError, MigrateOptions, MigrateReport};
