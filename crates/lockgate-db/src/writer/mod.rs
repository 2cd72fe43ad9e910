//! The bulk writer: every write mode on every engine, all-or-nothing by default,
//! with error isolation that finds every failing row.
//!
//! The happy path takes no savepoints of its own (a nested unit runs under one, in
//! its caller's transaction; nothing else): rows go through the engine's fast path
//! (COPY, LOAD DATA LOCAL, a reused prepared statement) straight into the table for
//! `insert`, or into a staging table followed by set-based statements for the key
//! modes. When the engine fails a statement (PostgreSQL then aborts the whole
//! transaction), the unit is rolled back and re-run from its re-readable source in
//! *diagnose mode*: each batch lands in the constraint-free staging table, set-based
//! checks find most bad rows at once (duplicate keys against the table, missing
//! foreign-key parents, CHECK constraints), and the rest is bisected under
//! savepoints until every failing row is known with its key and the engine's error.
//! Then the error policy decides: `rollback` keeps nothing, `skip` commits the good
//! rows, `stop` stops at the first error.
//!
//! This file holds the public types and what the parts share (the staging tables'
//! names, numbers read back from the engine); each part is a file of its own:
//! `plan.rs` (the checked configuration), `unit.rs` (the unit driver and retry),
//! `batch.rs` (a batch's rows, client-side checks), `stage.rs` (staging and set-based
//! apply), `images.rs` (row images), `checks.rs` (set-based checks), `quick.rs` (the
//! quick diagnose) and `careful.rs` (the careful diagnose, bisection).

use crate::conn::Conn;
use crate::dialect::{Dialect, KeyColumn};
use crate::error::{DbError, EngineError};
use crate::url::Engine;
use lockgate_core::{Batch, Row, RowError, Table, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod batch;
mod careful;
mod checks;
mod images;
mod plan;
mod quick;
mod stage;
mod unit;

use self::{batch::*, careful::*, checks::*, images::*, plan::*, quick::*, stage::*, unit::*};
pub use images::{can_capture, image_key};
pub(crate) use stage::stage_type;
pub use unit::write;

/// How rows meet existing rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Plain inserts; a duplicate key is a row error.
    Insert,
    /// Update the row with the key, or insert it.
    Upsert,
    /// Update the row with the key; a missing row is a row error. Columns a record
    /// does not give stay unchanged.
    Update,
    /// Insert rows whose key is absent; leave existing rows alone.
    InsertMissing,
    /// Upsert, then delete the rows in scope that the input did not contain.
    Sync,
}

impl std::str::FromStr for WriteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "insert" => Ok(WriteMode::Insert),
            "upsert" => Ok(WriteMode::Upsert),
            "update" => Ok(WriteMode::Update),
            "insert-missing" => Ok(WriteMode::InsertMissing),
            "sync" => Ok(WriteMode::Sync),
            other => Err(format!(
                "unknown mode {other:?}: use insert, upsert, update, insert-missing or sync"
            )),
        }
    }
}

/// What to do about failing rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Report every failing row and keep nothing (the default).
    Rollback,
    /// Commit the good rows and report the failing ones.
    Skip,
    /// Stop at the first failing row and keep nothing.
    Stop,
}

impl std::str::FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rollback" => Ok(OnError::Rollback),
            "skip" => Ok(OnError::Skip),
            "stop" => Ok(OnError::Stop),
            other => Err(format!("unknown error policy {other:?}: use rollback, skip or stop")),
        }
    }
}

/// How to retry a unit that failed with a transient error.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 means no retry).
    pub attempts: u32,
    /// The first backoff; it doubles each time, with full jitter.
    pub base: Duration,
    /// The longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `n + 1` (n ≥ 1): exponential with full jitter, so
    /// that competing writers do not retry in lockstep.
    pub fn backoff(&self, n: u32) -> Duration {
        let cap = self.base.saturating_mul(1u32 << n.min(16)).min(self.max);
        cap.mul_f64(fastrand::f64())
    }
}

/// Everything the writer needs to know besides the rows.
#[derive(Clone, Debug)]
pub struct WriteConfig {
    /// The mode.
    pub mode: WriteMode,
    /// Key columns for the key modes (table names, already resolved); empty means the
    /// primary key.
    pub key: Vec<String>,
    /// The error policy.
    pub on_error: OnError,
    /// For `sync`: a condition (SQL the user wrote) limiting which rows may be
    /// deleted; `None` means the whole table.
    pub sync_scope: Option<String>,
    /// Run everything, report, and roll back.
    pub dry_run: bool,
    /// Transient-error retry.
    pub retry: RetryPolicy,
    /// Where to reconnect when the connection was lost before the commit; without
    /// it, a lost connection ends the write.
    pub reconnect: Option<crate::url::DbUrl>,
    /// Run inside the caller's open transaction, under a savepoint, instead of in a
    /// transaction of its own: "commit" releases the savepoint, "rollback" rolls back
    /// to it, and the caller commits or rolls back the whole. No transient-error
    /// retry then: the caller's transaction is the unit to retry.
    pub nested: bool,
    /// Record a [`RowImage`](crate::versions::RowImage) of every row the write
    /// inserts, changes or deletes (in `lockgate_row_images`, on this connection, in
    /// this transaction), so that the change can be undone later.
    pub capture: Option<Capture>,
    /// Column = value conditions bounding which rows `sync` may delete (a tenant,
    /// say); the values are bound, never spliced.
    pub scope: Vec<(String, Value)>,
}

/// Where captured row images go: the migration module and version they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// The module.
    pub module: String,
    /// The version.
    pub version: String,
}

impl Default for WriteConfig {
    fn default() -> Self {
        WriteConfig {
            mode: WriteMode::Insert,
            key: Vec::new(),
            on_error: OnError::Rollback,
            sync_scope: None,
            dry_run: false,
            retry: RetryPolicy::default(),
            reconnect: None,
            nested: false,
            capture: None,
            scope: Vec::new(),
        }
    }
}

/// A source of batches that can be read again from the start: the diagnose pass
/// and retries re-read it instead of holding rows in memory.
pub trait BatchSource: Send + Sync {
    /// Starts reading from the beginning. Each item is a batch or a fatal error (a
    /// malformed file): the unit then rolls back and the error is returned.
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>>;
}

/// A fatal error of a source, with its place (file, line, column) in its message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Progress of a write, sent on the caller's channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `"loading"`, `"diagnosing"` or `"retrying"`.
    pub phase: &'static str,
    /// Rows handled so far in this pass.
    pub rows: u64,
}

/// What a write did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteReport {
    /// Rows read from the source (in the last pass).
    pub rows_read: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated (rows whose values did not change are not counted: see
    /// `unchanged`).
    pub updated: u64,
    /// Rows the key modes matched whose values were already those given.
    pub unchanged: u64,
    /// Rows deleted by `sync`.
    pub deleted: u64,
    /// Every failing row (with `stop`, the first).
    pub failed: Vec<RowError>,
    /// Whether the changes were committed.
    pub committed: bool,
    /// Whether a diagnose pass ran.
    pub diagnosed: bool,
    /// Attempts made (more than 1 after transient errors).
    pub attempts: u32,
}

impl WriteReport {
    fn add(&mut self, a: Applied) {
        self.inserted += a.inserted;
        self.updated += a.updated;
        self.unchanged += a.unchanged;
    }
}

/// Why a write failed as a whole (row errors are not this: they are in the report).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database failed (after retries, for transient errors).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The source failed (a malformed file): nothing was kept.
    #[error(transparent)]
    Source(#[from] SourceError),
}

const STAGE: &str = "lockgate_stage";
const KEYS: &str = "lockgate_stage_keys";
const ORD: &str = "__lg_n";
const BAD: &str = "__lg_bad";
const SP: &str = "lockgate_sp";
/// The savepoint of a nested unit (distinct from the bisection's).
const UNIT: &str = "lockgate_unit";

/// The count in the first column of the first row (0 when there is none).
fn count(rows: Vec<Vec<Value>>) -> u64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n as u64,
        Some(Value::Decimal(d)) => d.to_i64().unwrap_or(0) as u64,
        _ => 0,
    }
}

/// The row ordinals (`__lg_n`) in the first column of each row.
fn ordinals(rows: Vec<Vec<Value>>) -> Result<Vec<usize>, DbError> {
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.first() {
            Some(Value::Int(n)) => Some(*n as usize),
            Some(Value::Decimal(d)) => d.to_i64().map(|n| n as usize),
            _ => None,
        })
        .collect())
}

/// A non-negative integer as the engine returned it (an integer, or a decimal).
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Decimal(d) => d.to_i64().and_then(|n| u64::try_from(n).ok()),
        _ => None,
    }
}
