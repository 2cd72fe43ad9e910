//! `migrate`: versioned data migrations from a `db/` folder of `x.y.z` version
//! folders (oe-migration's layout and meta.json, as-is), or the same layout in a zip.
//!
//! Each pending version is applied in order, as one transaction: its table
//! definitions (`models/` and its `ddl/`), `clearTables`, then its files and scripts
//! in the order meta.json lists them, then its ledger row and the module's new
//! version, all committed together. A version that fails leaves nothing behind and
//! stops the run; the versions before it stay applied. Two exceptions, both said in
//! the docs: a *process* script (`.js`, `.py`, `.sh`, executables) cannot see
//! uncommitted data, so what is listed before it is committed first and the version
//! continues in a new transaction after it (a version interrupted there is recorded
//! as `partial` and re-run from its start); and MariaDB commits DDL implicitly, so
//! there a version's schema changes are applied before its data transaction.
//!
//! Data files go through the foundation's writer (staged, set-based), nested under a
//! savepoint in the version's transaction, capturing the image of every row they
//! change so that [`rollback`] can put it back. Record failures are collected for the
//! whole version and logged (in `lockgate_migration_log`, written after the version's
//! transaction ends so that the log survives its rollback).
//!
//! A version folder whose meta.json says `"baseline"` (written by `lockgate baseline`)
//! changes where a new deployment starts: a database with no version starts at the
//! newest baseline (the older versions are reported as skipped); a database below one
//! runs the older versions, then records the baseline without loading its data, when
//! every version it stands for is still in the folder (else it is refused).
//!
//! This file holds the options, reports and errors; the parts are files of their own:
//! `pending.rs` (the versions as read), `check.rs` (everything checked before a
//! write), `run.rs` (the run's shell: locks, ledger, versions in order), `apply.rs`
//! (one version), `data.rs` (`clearTables` and data files), and beside them
//! `models.rs`, `script.rs`, `sqlscript.rs`, `upload.rs`, `status.rs`, `force.rs`
//! and `rollback.rs`.

mod apply;
mod check;
mod data;
mod force;
mod models;
mod pending;
pub mod rollback;
mod run;
mod script;
mod sqlscript;
pub mod status;
mod upload;

use self::{apply::*, check::*, data::*, pending::*};
pub use run::migrate;
pub use script::process_scripts;
pub use upload::{unpack_zip, Unpacked};

use crate::source::{FileSource, Validation};
use lockgate_bundle::{
    BaseDir, ClearTables, EntryKind, FileEntry, FileMode, Manifest, ModelDef, OnErrorSpec, ScriptKind, Version,
    VersionDir, ZipLimits,
};
use lockgate_core::{RowError, Table, Value};
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::rows;
use lockgate_db::schema::SchemaChange;
use lockgate_db::versions::{self, AppliedVersion, LogEntry, RowImage};
use lockgate_db::writer::{self, Capture, OnError, Progress, WriteConfig, WriteError, WriteMode};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to migrate and how.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// The folder holding the version folders (default `./db`).
    pub dir: PathBuf,
    /// Read the layout from this zip instead of `dir`.
    pub zip: Option<PathBuf>,
    /// The module whose version is tracked (default `./`).
    pub module: String,
    /// Re-apply every version (within `from`/`to`), applied or not.
    pub force: bool,
    /// Apply no version below this one.
    pub from: Option<Version>,
    /// Apply no version above this one.
    pub to: Option<Version>,
    /// Compute what would happen and keep nothing.
    pub dry_run: bool,
    /// The error policy where meta.json sets none.
    pub on_error: OnError,
    /// The tenant column of multi-tenant tables (meta.json's `tenantColumn` wins).
    pub tenant_column: String,
    /// How long a process script may run.
    pub script_timeout: Duration,
    /// How long to wait for another migrate of the same module, and then for other
    /// commands writing the tables it writes.
    pub lock_timeout: Duration,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Bytes per batch.
    pub batch_bytes: usize,
    /// Limits when reading a zip.
    pub zip_limits: ZipLimits,
    /// Whether process scripts may run. `false` refuses a bundle that holds any (see
    /// [`process_scripts`]) before anything is run or written (exit 2): what a server
    /// does with uploads unless told otherwise. `.sql` scripts are not process scripts.
    pub allow_process_scripts: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            dir: PathBuf::from("db"),
            zip: None,
            module: "./".into(),
            force: false,
            from: None,
            to: None,
            dry_run: false,
            on_error: OnError::Rollback,
            tenant_column: "tenant_id".into(),
            script_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(600),
            batch_rows: 10_000,
            batch_bytes: 8 * 1024 * 1024,
            zip_limits: ZipLimits::default(),
            allow_process_scripts: true,
        }
    }
}

/// What happened to a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionStatus {
    /// Applied and recorded.
    Applied,
    /// Failed: nothing of it was kept.
    Failed,
    /// Failed after committing a part (before a process script).
    Partial,
    /// A dry run: what would be applied.
    WouldApply,
    /// Not applied: older than the baseline a new deployment starts from (the baseline
    /// holds what it did).
    Skipped,
    /// A baseline recorded as applied without loading its data: the database ran every
    /// version it stands for, so it holds that data already.
    Recorded,
}

/// One step of a version: a data file, a script, or clearing a table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// `data`, `sql`, `script`, `clear` or `skipped`.
    pub kind: String,
    /// The file (relative to the version folder) or the table cleared.
    pub file: String,
    /// The table written.
    pub table: Option<String>,
    /// The tenant (the context's tenantId).
    pub tenant: Option<String>,
    /// The write mode.
    pub mode: Option<WriteMode>,
    /// Records read.
    pub rows_read: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows changed.
    pub updated: u64,
    /// Rows matched that already held the given values.
    pub unchanged: u64,
    /// Rows deleted (sync, clearTables).
    pub deleted: u64,
    /// Records that failed.
    pub failed: u64,
    /// Records skipped because they failed (skip policy).
    pub skipped: u64,
    /// Anything else worth saying (a dry run's limits, a script's output).
    pub note: Option<String>,
}

/// A failing record with its data, as logged.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RecordFailure {
    /// The version.
    pub version: String,
    /// The table written.
    pub table: String,
    /// The file's context's tenant.
    pub tenant: Option<String>,
    /// Where and why.
    #[serde(flatten)]
    pub error: RowError,
    /// The record as the file gave it.
    pub data: Option<serde_json::Value>,
    /// Whether it was skipped (the rest applied) rather than failing the version.
    pub skipped: bool,
}

/// What happened to one version.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VersionReport {
    /// The version.
    pub version: String,
    /// Its outcome.
    pub status: VersionStatus,
    /// The schema changes made (or that would be).
    pub schema_changes: Vec<String>,
    /// Its steps in order.
    pub steps: Vec<StepReport>,
    /// Its failing records.
    pub failures: Vec<RecordFailure>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The schema changes that stayed although the version failed: MariaDB commits
    /// DDL at once (empty elsewhere, and when the version was applied).
    pub schema_kept: Vec<String>,
}

/// What a migrate did: the `--json` document. `old_version`, `migrated_versions`
/// and `warnings` are oe-migration's callback values.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MigrateReport {
    /// The module's version before the run (null: none).
    pub old_version: Option<String>,
    /// The versions applied by this run (null: none).
    pub migrated_versions: Option<Vec<String>>,
    /// Warnings: records skipped, unknown meta.json keys, a dry run's limits.
    pub warnings: Vec<String>,
    /// The module.
    pub module: String,
    /// The module's version after the run.
    pub new_version: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Each version considered, in order.
    pub versions: Vec<VersionReport>,
    /// The version that failed (then exit 3).
    pub failed_version: Option<String>,
    /// The ledger run.
    pub run_id: Option<i64>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl MigrateReport {
    /// ARCHITECTURE.md's exit code: 0, or 3 when a version's records failed and it was rolled back.
    pub fn exit_code(&self) -> i32 {
        if self.versions.iter().any(|v| !v.schema_kept.is_empty()) {
            5
        } else if self.failed_version.is_some() {
            3
        } else {
            0
        }
    }
}

/// Why a migrate stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Bad input found before writing: nothing changed (exit 2).
    #[error("{0}")]
    Input(String),
    /// A malformed data file met while applying: its version was rolled back (exit 2).
    #[error("{0}")]
    Source(String),
    /// A script failed or timed out: the run halted (exit 1).
    #[error("{0}")]
    Script(String),
    /// The database (exit 1, or 2 for invalid names).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A version failed after MariaDB had committed some of its schema changes; the
    /// message lists those that stayed (exit 5).
    #[error("{0}")]
    SchemaKept(String),
    /// `error` stopped the run after it had applied `applied` (in order): each version
    /// is a transaction of its own, so those stay applied, and the message says so.
    /// The exit code is `error`'s.
    #[error("{error} (this run applied {} before it; {} applied)", applied.join(", "), if applied.len() == 1 { "that version stays" } else { "those versions stay" })]
    AfterApplied {
        /// What stopped the run.
        error: Box<MigrateError>,
        /// The versions the run applied before it.
        applied: Vec<String>,
    },
}

impl MigrateError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            MigrateError::Input(_) | MigrateError::Source(_) => 2,
            MigrateError::Script(_) => 1,
            MigrateError::Db(e) => e.exit_code(),
            MigrateError::SchemaKept(_) => 5,
            MigrateError::AfterApplied { error, .. } => error.exit_code(),
        }
    }

    /// The versions the run applied before it stopped (they stay applied); empty when
    /// it applied none.
    pub fn applied(&self) -> &[String] {
        match self {
            MigrateError::AfterApplied { applied, .. } => applied,
            _ => &[],
        }
    }

    /// What stopped the run, without the versions applied before it.
    pub fn cause(&self) -> &MigrateError {
        match self {
            MigrateError::AfterApplied { error, .. } => error.cause(),
            other => other,
        }
    }
}

impl From<lockgate_bundle::BundleError> for MigrateError {
    fn from(e: lockgate_bundle::BundleError) -> Self {
        MigrateError::Input(e.to_string())
    }
}
