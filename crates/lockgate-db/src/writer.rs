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

use crate::conn::Conn;
use crate::dialect::{Dialect, KeyColumn};
use crate::error::{DbError, EngineError};
use crate::url::Engine;
use lockgate_core::{Batch, Row, RowError, Table, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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

/// The validated plan of a write: table, key, columns that may be inserted.
#[derive(Clone)]
struct Plan {
    table: Table,
    mode: WriteMode,
    key: Vec<KeyColumn>,
    on_error: OnError,
    sync_scope: Option<String>,
    dialect: Dialect,
    /// Whether an index leads with exactly the key's columns, so joins on the key
    /// can probe it.
    key_indexed: bool,
    nested: bool,
    capture: Option<Capture>,
    scope: Vec<(String, Value)>,
    /// Inserts go through staging, never a COPY stream (see [`keyless_plan`]).
    staged_inserts: bool,
}

/// Checks the configuration against the table before anything is written:
/// the key exists, the table can roll back.
fn plan(conn: &Conn, table: &Table, cfg: &WriteConfig) -> Result<Plan, DbError> {
    if let Some(engine) = &table.engine {
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(DbError::Invalid(format!(
                "table {} uses the {engine} storage engine, which cannot roll back, so lockgate refuses to write it \
                 (a failed load would leave part of it behind): convert it with ALTER TABLE {} ENGINE=InnoDB",
                table.name, table.name
            )));
        }
    }
    let key_names = if cfg.key.is_empty() {
        table.primary_key.clone()
    } else {
        cfg.key.clone()
    };
    let mut key = Vec::new();
    for k in &key_names {
        let col = table
            .column(k)
            .ok_or_else(|| DbError::Invalid(format!("key column {k:?} is not a column of table {}", table.name)))?;
        key.push(KeyColumn {
            name: col.name.clone(),
            nullable: col.nullable,
        });
    }
    if cfg.mode != WriteMode::Insert && key.is_empty() {
        return Err(DbError::Invalid(format!(
            "mode {:?} needs a key and table {} has no primary key: name one with --key",
            cfg.mode, table.name
        )));
    }
    if cfg.sync_scope.is_some() && cfg.mode != WriteMode::Sync {
        return Err(DbError::Invalid(
            "a sync scope (--where) only applies to --mode sync".into(),
        ));
    }
    let mut key_set: Vec<&str> = key.iter().map(|k| k.name.as_str()).collect();
    key_set.sort_unstable();
    let key_indexed = !key_set.is_empty()
        && table
            .unique_keys()
            .iter()
            .chain(table.indexes.iter().map(|i| &i.columns))
            .any(|cols| {
                let mut lead: Vec<&str> = cols.iter().take(key_set.len()).map(String::as_str).collect();
                lead.sort_unstable();
                lead == key_set
            });
    if cfg.capture.is_some() && !can_capture(table) {
        return Err(DbError::Invalid(format!(
            "table {} has no primary or unique key, so its rows cannot be told apart and their changes cannot be recorded for a rollback",
            table.name
        )));
    }
    for (c, _) in &cfg.scope {
        if table.column(c).is_none() {
            return Err(DbError::Invalid(format!(
                "scope column {c:?} is not a column of table {}",
                table.name
            )));
        }
    }
    Ok(Plan {
        key_indexed,
        nested: cfg.nested,
        capture: cfg.capture.clone(),
        scope: cfg.scope.clone(),
        table: table.clone(),
        mode: cfg.mode,
        key,
        on_error: cfg.on_error,
        sync_scope: cfg.sync_scope.clone(),
        dialect: conn.dialect(),
        staged_inserts: false,
    })
}

/// Writes everything `source` yields into `table` as one unit (one transaction),
/// following `cfg`. Returns the report; row errors are in it, not in `Err`.
pub async fn write(
    conn: &mut Conn,
    table: &Table,
    cfg: &WriteConfig,
    source: &dyn BatchSource,
    progress: Option<&mpsc::UnboundedSender<Progress>>,
) -> Result<WriteReport, WriteError> {
    let plan = plan(conn, table, cfg)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_unit(conn, &plan, cfg.dry_run, source, progress).await {
            Ok(mut report) => {
                report.attempts = attempt;
                return Ok(report);
            }
            Err(WriteError::Db(e)) if e.is_transient() && attempt < cfg.retry.attempts && !cfg.nested => {
                let lost = e.is_connection_lost() || conn.is_closed();
                if lost && cfg.reconnect.is_none() {
                    return Err(WriteError::Db(e));
                }
                let pause = cfg.retry.backoff(attempt);
                tracing::warn!("transient error, retrying in {pause:?} (attempt {attempt}): {e}");
                if let Some(p) = progress {
                    let _ = p.send(Progress {
                        phase: "retrying",
                        rows: 0,
                    });
                }
                tokio::time::sleep(pause).await;
                if lost {
                    // The unit committed nothing, so a new session may start it over.
                    if let Some(url) = &cfg.reconnect {
                        *conn = Conn::connect(url).await?;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt: the happy pass, and the diagnose pass when the engine failed.
async fn run_unit(
    conn: &mut Conn,
    plan: &Plan,
    dry_run: bool,
    source: &dyn BatchSource,
    progress: Option<&mpsc::UnboundedSender<Progress>>,
) -> Result<WriteReport, WriteError> {
    begin(conn, plan).await?;
    let key_plan = plan;
    let as_insert = match inserts_only(conn, plan).await {
        Ok(true) => Some(Plan {
            mode: WriteMode::Insert,
            ..plan.clone()
        }),
        Ok(false) => None,
        Err(e) => {
            let _ = rollback(conn, plan).await;
            return Err(e.into());
        }
    };
    let mut plan = as_insert.as_ref().unwrap_or(key_plan);
    let mut mode = PassMode::Fast;
    let report = loop {
        let result = match mode {
            PassMode::Quick => quick_pass(conn, plan, source, progress).await,
            _ => pass(conn, plan, source, mode, progress).await,
        };
        // The insert path is a shortcut for input whose keys are all new and distinct.
        // Any row it fails (a key given twice, which the key mode merges: the later
        // record wins) sends the unit back to the key mode's own path, which then
        // finds every failing row as usual.
        let shortcut_failed = !std::ptr::eq(plan, key_plan)
            && match &result {
                Ok(r) => !r.failed.is_empty(),
                Err(PassError::Quick) => true,
                Err(PassError::Engine(e)) => !e.is_transient(),
                Err(_) => false,
            };
        let next = if shortcut_failed {
            tracing::info!("the insert path failed a row; writing the unit in its key mode");
            mode = PassMode::Fast;
            key_plan
        } else {
            match result {
                Ok(report) => break report,
                Err(PassError::Quick) if mode == PassMode::Fast => mode = PassMode::Quick,
                // The engine failed a statement: PostgreSQL has aborted the transaction,
                // so start over and find every failing row; quickly first, carefully if
                // the quick way meets an error it did not foresee.
                Err(PassError::Engine(e)) if !e.is_transient() && mode == PassMode::Fast => {
                    tracing::info!("write failed ({e}); re-running in diagnose mode to find every failing row");
                    mode = PassMode::quick_diagnose(plan);
                }
                Err(PassError::Careful(e)) if mode != PassMode::Careful && !e.is_transient() => {
                    tracing::info!("quick diagnose met an unforeseen error ({e}); diagnosing row by row");
                    mode = PassMode::Careful;
                }
                Err(e) => {
                    let _ = rollback(conn, plan).await;
                    return Err(e.into());
                }
            }
            plan
        };
        rollback(conn, plan).await?;
        plan = next;
        begin(conn, plan).await?;
    };
    let mut report = report;
    sort_failures(&mut report.failed);
    let diagnosed = mode != PassMode::Fast;
    report.diagnosed |= diagnosed;
    let keep = !dry_run && (report.failed.is_empty() || plan.on_error == OnError::Skip);
    cleanup(conn, plan).await;
    if keep {
        commit(conn, plan).await?;
        report.committed = true;
    } else {
        rollback(conn, plan).await?;
        if plan.on_error != OnError::Skip || dry_run {
            // Nothing was kept: the counts describe what would have happened.
            report.committed = false;
        }
    }
    Ok(report)
}

/// Whether a key-mode write into this table can only insert: the table is empty
/// (seen inside the unit's transaction, so earlier writes of the caller count) and
/// the key is a unique key, so that a key given twice (even as keys the database
/// calls equal) fails as a duplicate instead of being inserted twice. Then the unit
/// takes the insert path (COPY straight into the table) instead of staging rows to
/// find none of them there: a first load runs at bulk-load speed. If that path fails
/// any row, the unit starts over in its key mode ([`run_unit`]).
async fn inserts_only(conn: &mut Conn, plan: &Plan) -> Result<bool, DbError> {
    if !matches!(
        plan.mode,
        WriteMode::Upsert | WriteMode::InsertMissing | WriteMode::Sync
    ) {
        return Ok(false);
    }
    let mut key: Vec<&str> = plan.key.iter().map(|k| k.name.as_str()).collect();
    key.sort_unstable();
    let unique = plan.table.unique_keys().iter().any(|u| {
        let mut u: Vec<&str> = u.iter().map(String::as_str).collect();
        u.sort_unstable();
        u == key
    });
    if !unique {
        return Ok(false);
    }
    let d = plan.dialect;
    let sql = format!("SELECT 1 FROM {} LIMIT 1", d.table(&plan.table.name));
    Ok(conn.query(&sql, &[], None).await?.is_empty())
}

/// Puts failures in input order: by source (in the order sources first appear),
/// then line. Checks find rows in their own order; a person reads the file's.
fn sort_failures(failed: &mut [RowError]) {
    let mut sources: Vec<Option<String>> = Vec::new();
    for e in failed.iter() {
        if !sources.contains(&e.file) {
            sources.push(e.file.clone());
        }
    }
    failed.sort_by_key(|e| (sources.iter().position(|s| *s == e.file), e.line));
}

/// Begins the unit's transaction. On PostgreSQL, when every join on the key can
/// probe an index, joins are told to: a batch of 10,000 staged rows otherwise gets a
/// hash join that reads the whole (growing) target once per batch — 327 ms a batch
/// at 900k rows, against 9 ms through the index. SET LOCAL ends with the transaction.
async fn begin(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    if plan.nested {
        conn.batch(&plan.dialect.savepoint(UNIT)).await?;
    } else {
        conn.begin().await?;
    }
    if plan.dialect.0 == Engine::Postgres && (plan.mode == WriteMode::Insert || plan.key_indexed) {
        conn.batch("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            .await?;
    }
    Ok(())
}

/// Ends the unit keeping its changes.
async fn commit(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    if !plan.nested {
        return conn.commit().await;
    }
    conn.batch(&plan.dialect.release(UNIT)).await?;
    if plan.dialect.0 == Engine::Postgres {
        // The caller's transaction goes on: give it its planner back.
        conn.batch("SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT")
            .await?;
    }
    Ok(())
}

/// Ends the unit undoing its changes (a nested unit leaves the caller's own).
async fn rollback(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    if !plan.nested {
        return conn.rollback().await;
    }
    // Rolling back to the savepoint also undoes the unit's SET LOCALs.
    conn.batch(&plan.dialect.rollback_to(UNIT)).await?;
    conn.batch(&plan.dialect.release(UNIT)).await
}

async fn cleanup(conn: &mut Conn, plan: &Plan) {
    // MariaDB's temporary tables outlive a rollback; drop them either way.
    if plan.dialect.0 == Engine::Mysql {
        let _ = conn.batch(&plan.dialect.drop_temp(STAGE)).await;
        let _ = conn.batch(&plan.dialect.drop_temp(KEYS)).await;
    }
}

#[derive(Debug)]
enum PassError {
    /// A statement failed where the happy path cannot say which row.
    Engine(DbError),
    /// The quick diagnose met an error its set-based checks did not foresee: start
    /// over in careful mode (staging and bisection for every row).
    Careful(DbError),
    /// The fast pass met a failing row and the quick diagnose wants the whole input:
    /// start over in quick mode.
    Quick,
    Source(SourceError),
}

impl From<DbError> for PassError {
    fn from(e: DbError) -> Self {
        PassError::Engine(e)
    }
}

impl From<PassError> for WriteError {
    fn from(e: PassError) -> Self {
        match e {
            PassError::Engine(e) | PassError::Careful(e) => WriteError::Db(e),
            PassError::Quick => WriteError::Db(DbError::Internal("a quick diagnose was asked for and not run".into())),
            PassError::Source(e) => WriteError::Source(e),
        }
    }
}

/// How a pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassMode {
    /// The fast path, no savepoints.
    Fast,
    /// Insert mode after a failure ([`quick_pass`]): stage the checked columns of the
    /// whole input, check it set-based once, then stream the good rows into the
    /// table. An error the checks did not foresee sends the unit to `Careful`.
    Quick,
    /// Stage every column, check set-based, bisect the rest under savepoints.
    Careful,
}

impl PassMode {
    /// The first diagnose mode to try for a plan: quick where it applies.
    fn quick_diagnose(plan: &Plan) -> PassMode {
        // The quick pass writes rows its own way; capturing their images is the
        // careful pass's job.
        if plan.mode == WriteMode::Insert
            && plan.dialect.0 != Engine::Sqlite
            && plan.on_error != OnError::Stop
            && plan.capture.is_none()
        {
            PassMode::Quick
        } else {
            PassMode::Careful
        }
    }
}

/// One pass over the source, happy or diagnosing.
async fn pass(
    conn: &mut Conn,
    plan: &Plan,
    source: &dyn BatchSource,
    mode: PassMode,
    progress: Option<&mpsc::UnboundedSender<Progress>>,
) -> Result<WriteReport, PassError> {
    let mut mode = mode;
    let mut report = WriteReport {
        diagnosed: mode != PassMode::Fast,
        ..WriteReport::default()
    };
    let mut staged_columns: Option<Arc<Vec<String>>> = None;
    if plan.mode == WriteMode::Sync {
        create_keys_table(conn, plan).await?;
    }
    let mut rx = source.open();
    let keyless = keyless_plan(plan);
    while let Some(item) = rx.recv().await {
        let mut batch = item.map_err(PassError::Source)?;
        report.rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
        // Records that do not give the key are inserted, as oe-migration's upsert
        // without an id creates a row (through staging: the unit may have other
        // batches to match by key, so no COPY stream is opened in between).
        let plan = match &keyless {
            Some(p) if plan.key.iter().any(|k| !batch.columns.contains(&k.name)) => p,
            _ => plan,
        };
        let (rows, mut errors) = precheck(plan, &mut batch);
        report.failed.append(&mut errors);
        if plan.on_error == OnError::Stop && !report.failed.is_empty() {
            report.failed.truncate(1);
            return Ok(report);
        }
        if mode == PassMode::Fast
            && !report.failed.is_empty()
            && !(plan.dialect.0 == Engine::Sqlite && plan.mode == WriteMode::Insert)
        {
            // A row already failed, so the fast path's verdict is known; what is left
            // is finding every other failing row. If what was written so far stands,
            // go on in diagnose mode from here instead of finishing the fast pass and
            // starting over. (SQLite's fast path reports each row itself.)
            if PassMode::quick_diagnose(plan) == PassMode::Quick {
                return Err(PassError::Quick);
            }
            conn.finish_stream().await?;
            mode = PassMode::Careful;
            report.diagnosed = true;
        }
        let needs_stage = mode != PassMode::Fast || !streams(plan, &batch.columns);
        if !rows.is_empty() {
            if needs_stage && staged_columns.as_ref() != Some(&batch.columns) {
                create_stage(conn, plan, false).await?;
                staged_columns = Some(batch.columns.clone());
            }
            let ctx = BatchCtx {
                plan,
                columns: &batch.columns,
                rows: &rows,
                source: batch.source.as_deref().map(|s| s.as_str()),
            };
            match mode {
                PassMode::Fast => happy_batch(conn, &ctx, &mut report).await?,
                PassMode::Quick => unreachable!("run_unit runs quick passes with quick_pass"),
                PassMode::Careful => diagnose_batch(conn, &ctx, &mut report).await?,
            }
        }
        if plan.on_error == OnError::Stop && !report.failed.is_empty() {
            report.failed.truncate(1);
            return Ok(report);
        }
        if let Some(p) = progress {
            let _ = p.send(Progress {
                phase: if mode == PassMode::Fast {
                    "loading"
                } else {
                    "diagnosing"
                },
                rows: report.rows_read,
            });
        }
    }
    // The happy insert path streams; its last errors surface when the stream ends.
    conn.finish_stream().await?;
    if plan.mode == WriteMode::Sync && (report.failed.is_empty() || plan.on_error == OnError::Skip) {
        let (scope, params) = sync_scope(plan);
        capture_deletes(conn, plan, &scope, &params).await?;
        let sql = plan.dialect.delete_missing(&plan.table.name, KEYS, &plan.key, &scope);
        report.deleted = conn.execute(&sql, &params).await?;
    }
    Ok(report)
}

/// For `upsert` and `insert-missing`: the plan of a batch whose records do not give
/// the key. Nothing can match them, so they are inserts (the database fills a
/// generated key; a key it cannot fill fails as a missing NOT NULL column).
fn keyless_plan(plan: &Plan) -> Option<Plan> {
    matches!(plan.mode, WriteMode::Upsert | WriteMode::InsertMissing).then(|| Plan {
        mode: WriteMode::Insert,
        staged_inserts: true,
        ..plan.clone()
    })
}

/// The rows of one batch with what is needed to report on them.
struct BatchCtx<'a> {
    plan: &'a Plan,
    columns: &'a Arc<Vec<String>>,
    rows: &'a [Row],
    source: Option<&'a str>,
}

impl BatchCtx<'_> {
    fn row_error(&self, i: usize, e: &EngineError) -> RowError {
        let column = e.column.clone().or_else(|| {
            // Name the column from the constraint when the engine names only that.
            let c = e.constraint.as_deref()?;
            let t = &self.plan.table;
            t.unique
                .iter()
                .find(|u| u.name == c)
                .map(|u| u.columns.join(", "))
                .or_else(|| {
                    t.foreign_keys
                        .iter()
                        .find(|f| f.name == c)
                        .map(|f| f.columns.iter().map(|p| p.0.clone()).collect::<Vec<_>>().join(", "))
                })
                .or_else(|| (c.ends_with("_pkey") || c == "PRIMARY").then(|| t.primary_key.join(", ")))
        });
        RowError {
            file: self.source.map(str::to_string),
            line: Some(self.rows[i].line),
            key: render_key(self.plan, self.columns, &self.rows[i]),
            column,
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }

    /// The image of row `i`: its key and given columns from the batch.
    fn image(
        &self,
        i: usize,
        op: char,
        before: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> crate::versions::RowImage {
        let row = &self.rows[i];
        // An update sets the given columns but the write key's: the row keeps its key
        // as stored (which the record may spell otherwise, under a collation that
        // ignores case, say), so the key is not part of what the update left.
        let after: serde_json::Map<String, serde_json::Value> = self
            .columns
            .iter()
            .cloned()
            .zip(row.values.iter().map(Value::to_json))
            .filter(|(c, _)| op != 'u' || !self.plan.key.iter().any(|k| k.name == *c))
            .collect();
        // The row's own key (primary or unique), from the whole row before.
        let whole = before.as_ref().unwrap_or(&after);
        let key = image_key(&self.plan.table)
            .iter()
            .map(|k| (k.clone(), whole.get(k).cloned().unwrap_or_default()))
            .collect();
        crate::versions::RowImage {
            table: self.plan.table.name.to_string(),
            op,
            key,
            before,
            after: Some(after),
            after_fingerprint: None,
        }
    }

    fn lockgate_error(&self, i: usize, column: Option<&str>, message: String) -> RowError {
        self.violation(i, None, column, message)
    }

    /// A row a set-based check found; it carries the code the engine itself gives
    /// that violation, so reports read the same whichever way the row was found.
    fn violation(&self, i: usize, kind: Option<Violation>, column: Option<&str>, message: String) -> RowError {
        RowError {
            file: self.source.map(str::to_string),
            line: Some(self.rows[i].line),
            key: render_key(self.plan, self.columns, &self.rows[i]),
            column: column.map(str::to_string),
            code: kind.map_or("lockgate".to_string(), |k| k.code(self.plan.dialect.0).to_string()),
            message,
        }
    }
}

/// A row's key as a hashable value: a single integer (the common key) without
/// allocating, anything else as the values' canonical text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyRepr {
    Int(i64),
    Text(Vec<String>),
}

impl KeyRepr {
    /// The key's values, to stage them (text forms are the values' canonical text,
    /// which every engine reads back as the column's value).
    fn values(&self) -> Vec<Value> {
        match self {
            KeyRepr::Int(i) => vec![Value::Int(*i)],
            KeyRepr::Text(parts) => parts.iter().map(|p| Value::Text(p.clone())).collect(),
        }
    }

    fn of(values: &[Value], idx: &[usize]) -> KeyRepr {
        match idx {
            [one] => match &values[*one] {
                Value::Int(i) => KeyRepr::Int(*i),
                other => KeyRepr::Text(vec![other.to_string()]),
            },
            _ => KeyRepr::Text(idx.iter().map(|&j| values[j].to_string()).collect()),
        }
    }
}

/// What a set-based check says of a row it returns.
#[derive(Clone, Debug)]
struct Finding {
    kind: Violation,
    column: Option<String>,
    message: String,
}

/// The set-based checks against the table, as queries over the staging table that
/// return the failing rows' numbers: keys that already exist in the table (for rows
/// passing `inserting`), foreign keys without a parent, CHECK constraints. `given`
/// says which columns the rows carry; a check over others is left out.
fn table_checks(plan: &Plan, inserting: &str, given: impl Fn(&str) -> bool) -> Vec<(String, Finding)> {
    let d = plan.dialect;
    let table = &plan.table;
    let stage = d.quote(STAGE);
    let all =
        |cols: &[String], f: &dyn Fn(&String) -> String, sep: &str| cols.iter().map(f).collect::<Vec<_>>().join(sep);
    let mut out = Vec::new();
    for key in table.unique_keys() {
        if !key.iter().all(|k| given(k) && table.column(k).is_some()) {
            continue;
        }
        let names = key.join(", ");
        let not_null = all(&key, &|k| format!("s.{} IS NOT NULL", d.quote(k)), " AND ");
        let matches = all(&key, &|k| format!("t.{0} = s.{0}", d.quote(k)), " AND ");
        out.push((
            format!(
                "SELECT s.{ORD} FROM {stage} s WHERE {not_null} AND {inserting} AND EXISTS (SELECT 1 FROM {} t WHERE {matches})",
                d.table(&table.name)
            ),
            Finding {
                kind: Violation::Unique,
                column: Some(names.clone()),
                message: format!("duplicate key: a row with this {names} already exists in {}", table.name),
            },
        ));
    }
    for fk in &table.foreign_keys {
        // Parents in the same table may come with the input: the engine judges those.
        if fk.references == table.name || !fk.columns.iter().all(|(c, _)| given(c)) {
            continue;
        }
        let child: Vec<String> = fk.columns.iter().map(|c| c.0.clone()).collect();
        let not_null = all(&child, &|c| format!("s.{} IS NOT NULL", d.quote(c)), " AND ");
        let matches = fk
            .columns
            .iter()
            .map(|(c, p)| format!("p.{} = s.{}", d.quote(p), d.quote(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let cols = child.join(", ");
        out.push((
            format!(
                "SELECT s.{ORD} FROM {stage} s WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {matches})",
                d.table(&fk.references)
            ),
            Finding {
                kind: Violation::ForeignKey,
                message: format!("foreign key {}: no row in {} has this {cols}", fk.name, fk.references),
                column: Some(cols),
            },
        ));
    }
    for check in &table.checks {
        // The engine's own text of the table's constraint; its column names resolve
        // against the staging table's, which keep the table's types.
        out.push((
            format!("SELECT s.{ORD} FROM {stage} s WHERE NOT ({})", check.expression),
            Finding {
                kind: Violation::Check,
                column: None,
                message: format!("violates check constraint {} ({})", check.name, check.expression),
            },
        ));
    }
    out
}

/// Violations the set-based checks find.
#[derive(Clone, Copy, Debug)]
enum Violation {
    Unique,
    ForeignKey,
    Check,
}

impl Violation {
    /// The engine's own code for the violation.
    fn code(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (Violation::Unique, Engine::Postgres) => "23505",
            (Violation::Unique, Engine::Mysql) => "1062",
            (Violation::Unique, Engine::Sqlite) => "SQLITE_CONSTRAINT_UNIQUE",
            (Violation::ForeignKey, Engine::Postgres) => "23503",
            (Violation::ForeignKey, Engine::Mysql) => "1452",
            (Violation::ForeignKey, Engine::Sqlite) => "SQLITE_CONSTRAINT_FOREIGNKEY",
            (Violation::Check, Engine::Postgres) => "23514",
            (Violation::Check, Engine::Mysql) => "4025",
            (Violation::Check, Engine::Sqlite) => "SQLITE_CONSTRAINT_CHECK",
        }
    }
}

/// `col=value, col=value` for the row's key (the write key, else the primary key).
fn render_key(plan: &Plan, columns: &[String], row: &Row) -> Option<String> {
    let parts: Vec<String> = plan
        .key
        .iter()
        .filter_map(|k| {
            let i = columns.iter().position(|c| *c == k.name)?;
            Some(format!("{}={}", k.name, row.values[i]))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Client-side checks that need no round trip: NULL into NOT NULL, a required
/// column the record does not give (insert), and, for the key modes, a key the
/// record does not give. Returns the rows that pass.
fn precheck(plan: &Plan, batch: &mut Batch) -> (Vec<Row>, Vec<RowError>) {
    let mut errors = std::mem::take(&mut batch.rejected);
    let table = &plan.table;
    let col_idx: Vec<Option<&lockgate_core::Column>> = batch.columns.iter().map(|c| table.column(c)).collect();
    let missing_required: Vec<&str> = if matches!(plan.mode, WriteMode::Insert) {
        table
            .columns
            .iter()
            .filter(|c| !c.may_be_omitted() && !batch.columns.contains(&c.name))
            .map(|c| c.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let missing_key: Vec<&str> = if plan.mode != WriteMode::Insert {
        plan.key
            .iter()
            .filter(|k| !batch.columns.contains(&k.name))
            .map(|k| k.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let ctx_cols = batch.columns.clone();
    let not_null_code = match plan.dialect.0 {
        Engine::Postgres => "23502",
        Engine::Mysql => "1048",
        Engine::Sqlite => "SQLITE_CONSTRAINT_NOTNULL",
    };
    // Rows move from the batch to the result: no copy on the hot path.
    let rows = std::mem::take(&mut batch.rows);
    let mut good = Vec::with_capacity(rows.len());
    for mut row in rows {
        // (column, code, message) of the row's first problem.
        let mut err: Option<(Option<&str>, &str, String)> = None;
        if let Some(c) = missing_required.first() {
            err = Some((
                Some(c),
                not_null_code,
                format!("the record does not give column {c}, which is NOT NULL and has no default"),
            ));
        } else if let Some(k) = missing_key.first() {
            let why = match plan.mode {
                WriteMode::Update => "an update finds its row by the key",
                _ => "sync keeps only the rows whose keys the records give",
            };
            err = Some((
                Some(k),
                "lockgate",
                format!("the record does not give key column {k} ({why}): give it"),
            ));
        } else {
            for (i, slot) in row.values.iter_mut().enumerate() {
                let Some(col) = col_idx[i] else { continue };
                if slot.is_null() {
                    if !col.nullable && !col.auto {
                        err = Some((
                            Some(&col.name),
                            not_null_code,
                            format!("null value in column {} violates its NOT NULL constraint", col.name),
                        ));
                        break;
                    }
                } else if !batch.checked {
                    // Values from another engine: they must fit this column (a
                    // decimal past SQLite's 15 digits, a 2040 MariaDB TIMESTAMP).
                    match col.kind.check(std::mem::replace(slot, Value::Null)) {
                        Ok(v) => *slot = v,
                        Err(e) => {
                            err = Some((
                                Some(&col.name),
                                "lockgate",
                                format!("{e} (column {} is {})", col.name, col.data_type),
                            ));
                            break;
                        }
                    }
                }
            }
        }
        match err {
            Some((column, code, message)) => errors.push(RowError {
                file: batch.source.as_deref().map(|s| s.to_string()),
                line: Some(row.line),
                key: render_key(plan, &ctx_cols, &row),
                column: column.map(str::to_string),
                code: code.into(),
                message,
            }),
            None => good.push(row),
        }
    }
    // Key modes: a key given twice in one batch means the later record wins (as if
    // applied one by one); for insert-missing the first one does. Here only keys whose
    // values are equal exactly when the database says so (integers, say); the others
    // (text under a collation, decimals) are merged by the database after staging:
    // see [`merge_equal_keys`].
    if plan.mode != WriteMode::Insert && good.len() > 1 && exact_key(plan) {
        let key_idx: Vec<usize> = plan
            .key
            .iter()
            .filter_map(|k| batch.columns.iter().position(|c| *c == k.name))
            .collect();
        let mut last: HashMap<KeyRepr, usize> = HashMap::with_capacity(good.len());
        for (i, row) in good.iter().enumerate() {
            let k = KeyRepr::of(&row.values, &key_idx);
            if plan.mode == WriteMode::InsertMissing {
                last.entry(k).or_insert(i);
            } else {
                last.insert(k, i);
            }
        }
        if last.len() < good.len() {
            let keep: HashSet<usize> = last.into_values().collect();
            good = good
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, r)| r)
                .collect();
        }
    }
    (good, errors)
}

/// Whether the key's values are equal exactly when the database calls them equal, so
/// that repeats can be found in memory: integers, booleans, dates and UUIDs, and text
/// compared byte by byte (SQLite's `BINARY`; a PostgreSQL `text`/`varchar` column
/// under the database's default collation, which PostgreSQL only allows to be
/// deterministic). Other text is not (a collation may ignore case, accents or
/// trailing spaces, as MariaDB's all do, and `char(n)` ignores trailing spaces), nor
/// are decimals (`1.0` and `1.00`), floats, times or bytes (a fixed-width column pads
/// them): the database groups those ([`merge_equal_keys`]).
fn exact_key(plan: &Plan) -> bool {
    use lockgate_core::Kind;
    plan.key.iter().all(|k| {
        plan.table
            .column(&k.name)
            .is_some_and(|c| match (&c.kind, plan.dialect.0) {
                (Kind::Int { .. } | Kind::Bool | Kind::Date | Kind::Uuid, _) => true,
                (Kind::Text { .. }, Engine::Sqlite) => c.collation.is_none(),
                (Kind::Text { .. }, Engine::Postgres) => {
                    c.collation.is_none() && (c.data_type == "text" || c.data_type.starts_with("character varying"))
                }
                _ => false,
            })
    })
}

/// Key modes: records of one batch whose keys the database calls equal (`A@x.com`
/// and `a@x.com` under a case-insensitive collation, say) are one key, merged as if
/// the records were applied one by one: the first of them creates the row (when it
/// is new) and the later ones update it, so the row keeps the key as the first one
/// spells it and takes the last one's other values; `insert-missing` keeps the first
/// record alone. The same happens whether such records share a batch, are in
/// different batches of a load, or meet a row already in the table (an update never
/// changes the key columns). The database groups the staged keys itself, with the
/// target column's collation (the staging table's columns carry it); only the rows
/// of repeated keys come back. Returns the merged rows, staged anew, or `None` when no
/// key repeats (the staging table is then as it was).
async fn merge_equal_keys(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<Option<Vec<Row>>, DbError> {
    let plan = ctx.plan;
    if plan.mode == WriteMode::Insert || ctx.rows.len() < 2 || exact_key(plan) {
        return Ok(None);
    }
    let d = plan.dialect;
    let names: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    let sql = d.repeated_keys(STAGE, ORD, &names);
    let mut groups: HashMap<usize, (usize, usize)> = HashMap::new();
    for row in conn.query(&sql, &[], None).await? {
        if let (Some(n), Some(first), Some(last)) = (as_u64(&row[0]), as_u64(&row[1]), as_u64(&row[2])) {
            groups.insert(n as usize, (first as usize, last as usize));
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let key_idx: Vec<usize> = plan
        .key
        .iter()
        .filter_map(|k| ctx.columns.iter().position(|c| *c == k.name))
        .collect();
    let mut merged = Vec::with_capacity(ctx.rows.len());
    for (i, row) in ctx.rows.iter().enumerate() {
        let Some(&(first, last)) = groups.get(&i) else {
            merged.push(row.clone());
            continue;
        };
        let survivor = if plan.mode == WriteMode::InsertMissing {
            first
        } else {
            last
        };
        if i != survivor {
            continue;
        }
        let mut row = row.clone();
        if let Some(first_row) = ctx.rows.get(first) {
            for &j in &key_idx {
                row.values[j] = first_row.values[j].clone();
            }
        }
        merged.push(row);
    }
    let sub = BatchCtx { rows: &merged, ..*ctx };
    stage_rows(conn, &sub).await?;
    Ok(Some(merged))
}

/// Creates the staging table: every column of the target with its type but no
/// constraint, plus the row's ordinal in its batch and a "known bad" flag.
async fn create_stage(conn: &mut Conn, plan: &Plan, narrow: bool) -> Result<(), DbError> {
    let d = plan.dialect;
    let mut cols: Vec<(String, String)> = stage_columns(plan, narrow)
        .into_iter()
        .map(|c| (c.name.clone(), stage_type(d, c)))
        .collect();
    cols.push((ORD.into(), d.bigint().into()));
    cols.push((BAD.into(), format!("{} NOT NULL DEFAULT 0", d.bigint())));
    conn.batch(&d.drop_temp(STAGE)).await?;
    conn.batch(&d.create_temp(STAGE, &cols)).await
}

/// The staging table's columns: all of the table's, or (`narrow`, for the quick
/// diagnose) only those the set-based checks read: unique keys, foreign keys and the
/// columns of CHECK constraints (all columns when a CHECK's are unknown).
fn stage_columns(plan: &Plan, narrow: bool) -> Vec<&lockgate_core::Column> {
    let table = &plan.table;
    if !narrow || table.checks.iter().any(|c| c.columns.is_empty()) {
        return table.columns.iter().collect();
    }
    let mut wanted: HashSet<&str> = HashSet::new();
    for key in table.unique_keys() {
        for c in key {
            if let Some(col) = table.column(&c) {
                wanted.insert(col.name.as_str());
            }
        }
    }
    for fk in &table.foreign_keys {
        wanted.extend(
            fk.columns
                .iter()
                .filter_map(|(c, _)| table.column(c))
                .map(|c| c.name.as_str()),
        );
    }
    for check in &table.checks {
        wanted.extend(
            check
                .columns
                .iter()
                .filter_map(|c| table.column(c))
                .map(|c| c.name.as_str()),
        );
    }
    // The key names failing rows in reports.
    wanted.extend(
        plan.key
            .iter()
            .filter_map(|k| table.column(&k.name))
            .map(|c| c.name.as_str()),
    );
    table
        .columns
        .iter()
        .filter(|c| wanted.contains(c.name.as_str()))
        .collect()
}

/// The staging column's type: the target's own type (so that CHECK expressions and
/// comparisons behave the same), without its constraints or defaults.
fn stage_type(d: Dialect, c: &lockgate_core::Column) -> String {
    match (&c.collation, d.0) {
        // A temporary table takes the database's default collation otherwise, and
        // then `ann` and `ANN` might match where the table keeps them apart.
        // The name comes from the server's catalog; only a plain name is used as SQL.
        (Some(collation), Engine::Mysql) if collation.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            format!("{} COLLATE {collation}", c.data_type)
        }
        (Some(collation), Engine::Postgres) => format!("{} COLLATE {}", c.data_type, d.quote(collation)),
        // SQLite compares by the left operand's column, so the joins with the target
        // did not need it; grouping the staged keys by themselves does.
        (Some(collation), Engine::Sqlite) if collation.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            format!("{} COLLATE {collation}", c.data_type)
        }
        _ => c.data_type.clone(),
    }
}

async fn create_keys_table(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    let d = plan.dialect;
    let cols: Vec<(String, String)> = plan
        .key
        .iter()
        .map(|k| {
            let col = plan.table.column(&k.name).expect("plan checked the key");
            (col.name.clone(), stage_type(d, col))
        })
        .collect();
    conn.batch(&d.drop_temp(KEYS)).await?;
    conn.batch(&d.create_temp(KEYS, &cols)).await?;
    if d.0 == Engine::Postgres {
        // The final anti-join probes this table once per target row.
        let names = d.columns(None, &plan.key.iter().map(|k| k.name.clone()).collect::<Vec<_>>());
        conn.batch(&format!("CREATE INDEX ON {} ({names})", d.quote(KEYS)))
            .await?;
    }
    Ok(())
}

/// Loads a batch into the staging table (after clearing it).
async fn stage_rows(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<(), DbError> {
    let d = ctx.plan.dialect;
    if d.0 == Engine::Mysql {
        // InnoDB keeps deleted rows until the long transaction ends, so a staging
        // table cleared with DELETE gets slower to scan with every batch; a fresh
        // temporary table does not (its DDL does not commit).
        create_stage(conn, ctx.plan, false).await?;
    } else {
        conn.batch(&d.clear(STAGE)).await?;
    }
    let stage = lockgate_core::TableName::new(STAGE);
    let outcome = conn.bulk_insert(&stage, ctx.columns, ctx.rows, Some(ORD)).await?;
    if let Some((_, e)) = outcome.row_errors.first() {
        // The staging table has no constraints; a row that fails here fails on type.
        return Err(DbError::engine("staging rows", e.clone()));
    }
    Ok(())
}

/// What [`apply`] did to one batch.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    inserted: u64,
    updated: u64,
    unchanged: u64,
}

/// The mode's set-based statements over the staged rows passing `filter`. Updates
/// touch only rows whose values differ, so re-applying the same data writes nothing
/// (and the counts say what really changed). With capture on, the rows about to
/// change are read first (their images, and no UPDATE at all when none differs),
/// and inserts return their keys, all in the same transaction.
async fn apply(conn: &mut Conn, ctx: &BatchCtx<'_>, filter: &str) -> Result<Applied, DbError> {
    let plan = ctx.plan;
    let d = plan.dialect;
    let cols: &[String] = ctx.columns;
    let key_names: Vec<&str> = plan.key.iter().map(|k| k.name.as_str()).collect();
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !key_names.contains(&c.as_str()))
        .cloned()
        .collect();
    let set_columns: Vec<&lockgate_core::Column> = set.iter().filter_map(|c| plan.table.column(c)).collect();
    let capture = plan.capture.is_some();
    let mut out = Applied::default();
    let updates = matches!(plan.mode, WriteMode::Upsert | WriteMode::Sync | WriteMode::Update);
    if updates && !set.is_empty() {
        let changing = if capture {
            capture_updates(conn, ctx, filter, &set_columns).await?
        } else {
            usize::MAX
        };
        if changing > 0 {
            out.updated = conn
                .execute(
                    &d.update_from(&plan.table.name, STAGE, &set, &plan.key, filter, &set_columns),
                    &[],
                )
                .await?;
        }
    }
    let missing_key = match plan.mode {
        WriteMode::Insert => None,
        WriteMode::Update => {
            out.unchanged = count_good(conn, d, filter).await?.saturating_sub(out.updated);
            return Ok(out);
        }
        _ => Some(plan.key.as_slice()),
    };
    // MariaDB's strict mode fails an INSERT … SELECT that leaves out a NOT NULL column
    // without a default even when it selects no row: when every staged row exists
    // already (an update by another key), there is nothing to insert, so do not.
    let lacks_required = plan
        .table
        .columns
        .iter()
        .any(|c| !c.nullable && c.default.is_none() && !c.auto && !cols.contains(&c.name));
    if d.0 == Engine::Mysql && lacks_required {
        if let Some(key) = missing_key {
            let sql = format!(
                "SELECT 1 FROM {} s WHERE {filter} AND NOT EXISTS (SELECT 1 FROM {} t WHERE {}) LIMIT 1",
                d.quote(STAGE),
                d.table(&plan.table.name),
                d.key_match("t", "s", key)
            );
            if conn.query(&sql, &[], None).await?.is_empty() {
                out.unchanged = count_good(conn, d, filter).await?.saturating_sub(out.updated);
                return Ok(out);
            }
        }
    }
    if capture {
        // Every column as stored (defaults and generated keys included), for the
        // image's key and the fingerprint of the whole row; read back after the
        // insert where the server has no RETURNING (MySQL).
        let rows = if conn.insert_returning() {
            let returning: Vec<String> = plan.table.columns.iter().map(|c| c.name.clone()).collect();
            let sql = d.insert_select_returning(&plan.table.name, STAGE, cols, missing_key, filter, &returning);
            let kinds: Vec<lockgate_core::Kind> = plan.table.columns.iter().map(|c| c.kind.clone()).collect();
            conn.query(&sql, &[], Some(&kinds)).await?
        } else {
            let image_key = image_key(&plan.table);
            let insert = crate::read_back::StagedInsert {
                table: &plan.table,
                staging: STAGE,
                ordinal: ORD,
                columns: cols,
                missing_key,
                filter,
                image_key: &image_key,
            };
            crate::read_back::insert_select_read_back(conn, &insert).await?
        };
        out.inserted = rows.len() as u64;
        capture_inserts(conn, ctx, rows).await?;
    } else {
        out.inserted = conn
            .execute(
                &d.insert_select(&plan.table.name, STAGE, cols, missing_key, filter),
                &[],
            )
            .await?;
    }
    if plan.mode != WriteMode::Insert {
        out.unchanged = count_good(conn, d, filter)
            .await?
            .saturating_sub(out.inserted + out.updated);
    }
    Ok(out)
}

/// Staged rows passing `filter`.
async fn count_good(conn: &mut Conn, d: Dialect, filter: &str) -> Result<u64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM {} s WHERE {filter}", d.quote(STAGE));
    Ok(count(conn.query(&sql, &[], None).await?))
}

/// Whether a batch of an insert streams straight into the table. Not when images
/// are captured and the batch leaves columns out: their stored values (defaults,
/// generated keys) must then come back from `INSERT … RETURNING` through staging,
/// so that the image's fingerprint covers the whole row.
fn streams(plan: &Plan, columns: &[String]) -> bool {
    plan.mode == WriteMode::Insert
        && !plan.staged_inserts
        && (plan.capture.is_none() || plan.table.columns.iter().all(|c| columns.contains(&c.name)))
}

/// The columns that tell a row of `table` apart in its images: its primary key, else
/// its first unique key over NOT NULL columns. Empty when it has neither: then its rows cannot be told
/// apart, and a write into it cannot capture images ([`can_capture`]).
pub fn image_key(table: &lockgate_core::Table) -> Vec<String> {
    if !table.primary_key.is_empty() {
        return table.primary_key.clone();
    }
    // A unique key with a nullable column does not tell rows apart: NULLs repeat.
    table
        .unique_keys()
        .iter()
        .find(|k| k.iter().all(|c| table.column(c).is_some_and(|c| !c.nullable)))
        .cloned()
        .unwrap_or_default()
}

/// Whether writes into `table` can record row images (it has a primary or unique key).
pub fn can_capture(table: &lockgate_core::Table) -> bool {
    !image_key(table).is_empty()
}

/// Records the images of the staged rows passing `filter` that an update is about
/// to change (the whole row before, the given columns after). Returns how many.
async fn capture_updates(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    filter: &str,
    set_columns: &[&lockgate_core::Column],
) -> Result<usize, DbError> {
    let plan = ctx.plan;
    let Some(capture) = &plan.capture else {
        return Ok(usize::MAX);
    };
    let d = plan.dialect;
    let all: Vec<String> = plan.table.columns.iter().map(|c| c.name.clone()).collect();
    let sql = format!(
        "SELECT s.{ORD}, {} FROM {} s JOIN {} t ON {} WHERE {filter} AND {}",
        d.columns(Some("t"), &all),
        d.quote(STAGE),
        d.table(&plan.table.name),
        d.key_match("t", "s", &plan.key),
        d.differs("t", "s", set_columns)
    );
    let mut kinds = vec![lockgate_core::Kind::Int {
        bytes: 8,
        unsigned: false,
    }];
    kinds.extend(plan.table.columns.iter().map(|c| c.kind.clone()));
    let mut images = Vec::new();
    for row in conn.query(&sql, &[], Some(&kinds)).await? {
        let Some(i) = as_u64(&row[0]) else { continue };
        let before: serde_json::Map<String, serde_json::Value> =
            all.iter().cloned().zip(row[1..].iter().map(Value::to_json)).collect();
        images.push(ctx.image(i as usize, 'u', Some(before)));
    }
    crate::versions::write_images(conn, &capture.module, &capture.version, &images).await?;
    Ok(images.len())
}

/// Records inserted rows, each given whole (every table column, in table order), as
/// one image row: their keys and the fingerprints of the rows as stored.
async fn capture_inserts(conn: &mut Conn, ctx: &BatchCtx<'_>, whole_rows: Vec<Vec<Value>>) -> Result<(), DbError> {
    let Some(capture) = &ctx.plan.capture else {
        return Ok(());
    };
    if whole_rows.is_empty() {
        return Ok(());
    }
    let table = &ctx.plan.table;
    let key_columns = image_key(table);
    let key_pos: Vec<usize> = key_columns.iter().filter_map(|k| table.column_index(k)).collect();
    let mut rows = crate::versions::InsertedRows {
        table: table.name.to_string(),
        key_columns,
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        ..Default::default()
    };
    for r in whole_rows {
        rows.keys.push(key_pos.iter().map(|&p| r[p].to_json()).collect());
        rows.fingerprints.push(lockgate_core::fingerprint(&r));
    }
    crate::versions::write_inserted(conn, &capture.module, &capture.version, &rows).await
}

/// Records the images of the rows `sync` is about to delete.
async fn capture_deletes(conn: &mut Conn, plan: &Plan, scope: &str, params: &[Value]) -> Result<(), DbError> {
    let Some(capture) = &plan.capture else {
        return Ok(());
    };
    // A page at a time in key order (keyset pagination), so that memory stays
    // bounded by the page however many rows the sync deletes.
    const PAGE: usize = 5_000;
    let d = plan.dialect;
    let all: Vec<String> = plan.table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<lockgate_core::Kind> = plan.table.columns.iter().map(|c| c.kind.clone()).collect();
    let key = image_key(&plan.table);
    let key_pos: Vec<usize> = key.iter().filter_map(|k| all.iter().position(|c| c == k)).collect();
    let order = key
        .iter()
        .map(|k| format!("t.{}", d.quote(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut ps = params.to_vec();
        let after = match &last {
            None => "1 = 1".to_string(),
            Some(values) => {
                // (a > ?) OR (a = ? AND b > ?) …: the same on every engine.
                let mut ors = Vec::new();
                for i in 0..key.len() {
                    let mut ands = Vec::new();
                    for (k, v) in key.iter().zip(values).take(i) {
                        ps.push(v.clone());
                        ands.push(format!("t.{} = {}", d.quote(k), d.param(ps.len())));
                    }
                    ps.push(values[i].clone());
                    ands.push(format!("t.{} > {}", d.quote(&key[i]), d.param(ps.len())));
                    ors.push(format!("({})", ands.join(" AND ")));
                }
                ors.join(" OR ")
            }
        };
        let sql = format!(
            "SELECT {} FROM {} t WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {} k WHERE {}) AND ({after}) \
             ORDER BY {order} LIMIT {PAGE}",
            d.columns(Some("t"), &all),
            d.table(&plan.table.name),
            d.quote(KEYS),
            d.key_match("t", "k", &plan.key)
        );
        let rows = conn.query(&sql, &ps, Some(&kinds)).await?;
        let Some(tail) = rows.last() else { break };
        last = Some(key_pos.iter().map(|&p| tail[p].clone()).collect());
        let full = rows.len() == PAGE;
        let images: Vec<crate::versions::RowImage> = rows
            .into_iter()
            .map(|row| {
                let before: serde_json::Map<String, serde_json::Value> =
                    all.iter().cloned().zip(row.iter().map(Value::to_json)).collect();
                let key = key
                    .iter()
                    .map(|k| (k.clone(), before.get(k).cloned().unwrap_or_default()))
                    .collect();
                crate::versions::RowImage {
                    table: plan.table.name.to_string(),
                    op: 'd',
                    key,
                    before: Some(before),
                    after: None,
                    after_fingerprint: None,
                }
            })
            .collect();
        crate::versions::write_images(conn, &capture.module, &capture.version, &images).await?;
        if !full {
            break;
        }
    }
    Ok(())
}

/// The condition bounding `sync`'s deletes, with its bound values: the user's SQL
/// (as written) and the scope's column = value pairs.
fn sync_scope(plan: &Plan) -> (String, Vec<Value>) {
    let d = plan.dialect;
    let mut parts = vec![plan.sync_scope.clone().unwrap_or_else(|| "1 = 1".into())];
    let mut params = Vec::new();
    for (c, v) in &plan.scope {
        params.push(v.clone());
        // Unqualified: SQLite's DELETE cannot alias its target.
        parts.push(format!("{} = {}", d.quote(c), d.param(params.len())));
    }
    (parts.join(" AND "), params)
}

fn count(rows: Vec<Vec<Value>>) -> u64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n as u64,
        Some(Value::Decimal(d)) => d.to_i64().unwrap_or(0) as u64,
        _ => 0,
    }
}

/// Staged rows of `update` whose key matches no row: record failures, found
/// set-based before the UPDATE runs.
async fn missing_for_update(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<Vec<usize>, DbError> {
    let d = ctx.plan.dialect;
    let sql = format!(
        "SELECT s.{ORD} FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {})",
        d.quote(STAGE),
        d.table(&ctx.plan.table.name),
        d.key_match("t", "s", &ctx.plan.key)
    );
    ordinals(conn.query(&sql, &[], None).await?)
}

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

/// The happy path for one batch. An engine failure is returned as is; the caller
/// switches to diagnose mode.
async fn happy_batch(conn: &mut Conn, ctx: &BatchCtx<'_>, report: &mut WriteReport) -> Result<(), PassError> {
    let plan = ctx.plan;
    if streams(plan, ctx.columns) {
        let outcome = conn.stream_rows(&plan.table.name, ctx.columns, ctx.rows).await?;
        report.inserted += outcome.written;
        if plan.capture.is_some() {
            // Every row of the batch is in (a failing one fails the whole pass), and
            // it gives every column (see `streams`): the rows are what it holds.
            let failed: HashSet<usize> = outcome.row_errors.iter().map(|(i, _)| *i).collect();
            let pos: Vec<usize> = plan
                .table
                .columns
                .iter()
                .filter_map(|c| ctx.columns.iter().position(|g| *g == c.name))
                .collect();
            let whole: Vec<Vec<Value>> = (0..ctx.rows.len())
                .filter(|i| !failed.contains(i))
                .map(|i| pos.iter().map(|&p| ctx.rows[i].values[p].clone()).collect())
                .collect();
            capture_inserts(conn, ctx, whole).await?;
        }
        for (i, e) in &outcome.row_errors {
            report.failed.push(ctx.row_error(*i, e));
        }
        return Ok(());
    }
    stage_rows(conn, ctx).await?;
    let merged = merge_equal_keys(conn, ctx).await?;
    let sub;
    let ctx = match &merged {
        Some(rows) => {
            sub = BatchCtx { rows, ..*ctx };
            &sub
        }
        None => ctx,
    };
    let d = plan.dialect;
    if plan.mode == WriteMode::Update {
        let missing = missing_for_update(conn, ctx).await?;
        for i in &missing {
            report
                .failed
                .push(ctx.lockgate_error(*i, None, "no row with this key exists to update".into()));
        }
        if !missing.is_empty() {
            mark_bad(conn, d, &missing).await?;
        }
    }
    if plan.mode == WriteMode::Sync {
        record_keys(conn, plan).await?;
    }
    let applied = apply(conn, ctx, &format!("s.{BAD} = 0")).await?;
    report.add(applied);
    Ok(())
}

async fn record_keys(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    let d = plan.dialect;
    let names: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    let cols = d.columns(None, &names);
    conn.execute(
        &format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
            d.quote(KEYS),
            d.quote(STAGE)
        ),
        &[],
    )
    .await?;
    Ok(())
}

async fn mark_bad(conn: &mut Conn, d: Dialect, rows: &[usize]) -> Result<(), DbError> {
    // Ordinals are numbers Lockgate made, bound as parameters in chunks.
    for chunk in rows.chunks(500) {
        let params: Vec<Value> = chunk.iter().map(|n| Value::Int(*n as i64)).collect();
        let list = (1..=params.len()).map(|i| d.param(i)).collect::<Vec<_>>().join(", ");
        conn.execute(
            &format!("UPDATE {} SET {BAD} = 1 WHERE {ORD} IN ({list})", d.quote(STAGE)),
            &params,
        )
        .await?;
    }
    Ok(())
}

/// Diagnose mode for one batch: stage, check set-based, bisect the rest.
async fn diagnose_batch(conn: &mut Conn, ctx: &BatchCtx<'_>, report: &mut WriteReport) -> Result<(), PassError> {
    let plan = ctx.plan;
    let d = plan.dialect;
    if let Err(e) = stage_rows(conn, ctx).await {
        if e.is_transient() {
            return Err(e.into());
        }
        // A value the engine rejects even without constraints (an enum label, say):
        // find those rows by loading halves into staging under savepoints.
        return diagnose_staging(conn, ctx, report).await;
    }
    let merged = merge_equal_keys(conn, ctx).await?;
    let sub;
    let ctx = match &merged {
        Some(rows) => {
            sub = BatchCtx { rows, ..*ctx };
            &sub
        }
        None => ctx,
    };
    let mut bad: HashMap<usize, RowError> = HashMap::new();
    if plan.mode == WriteMode::Update {
        for i in missing_for_update(conn, ctx).await? {
            bad.insert(
                i,
                ctx.lockgate_error(i, None, "no row with this key exists to update".into()),
            );
        }
    }
    set_checks(conn, ctx, &mut bad).await?;
    let mut bad_list: Vec<usize> = bad.keys().copied().collect();
    bad_list.sort_unstable();
    if !bad_list.is_empty() {
        mark_bad(conn, d, &bad_list).await?;
    }
    if plan.mode == WriteMode::Sync {
        record_keys(conn, plan).await?;
    }
    let candidates: Vec<usize> = (0..ctx.rows.len()).filter(|i| !bad.contains_key(i)).collect();
    let stop = plan.on_error == OnError::Stop;
    bisect(conn, ctx, &candidates, &mut bad, report, stop).await?;
    let mut errors: Vec<(usize, RowError)> = bad.into_iter().collect();
    errors.sort_by_key(|(i, _)| *i);
    report.failed.extend(errors.into_iter().map(|(_, e)| e));
    Ok(())
}

const LINE: &str = "__lg_line";
const FILE: &str = "__lg_file";
const CANDIDATES: &str = "lockgate_stage_repeats";

/// Finds, in one read and fixed memory, the keys that may occur more than once in
/// the input: a Bloom filter per unique key (16 MiB in all) remembers the keys seen;
/// a key it already holds is a candidate. Candidates are a superset of the repeated
/// keys (about 0.5% false ones at 10 million rows), checked exactly in SQL.
struct RepeatFinder {
    bits: Vec<Vec<u64>>,
    candidates: Vec<HashMap<KeyRepr, Vec<Value>>>,
}

impl RepeatFinder {
    const BITS_TOTAL: usize = 16 * 1024 * 1024 * 8;
    const HASHES: u64 = 4;

    fn new(keys: usize) -> RepeatFinder {
        let words = (Self::BITS_TOTAL / keys.max(1)) / 64;
        RepeatFinder {
            bits: vec![vec![0; words.max(1)]; keys],
            candidates: vec![HashMap::new(); keys],
        }
    }

    fn see(&mut self, key_no: usize, key: KeyRepr) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let h1 = h.finish();
        let h2 = h1.rotate_left(32) | 1;
        let bits = &mut self.bits[key_no];
        let size = (bits.len() * 64) as u64;
        let mut present = true;
        for i in 0..Self::HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % size;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            present &= bits[word] & mask != 0;
            bits[word] |= mask;
        }
        if present {
            let values = key.values();
            self.candidates[key_no].entry(key).or_insert(values);
        }
    }

    /// The candidate keys, as values for the key's columns.
    fn candidates(&self, key_no: usize) -> Vec<Vec<Value>> {
        self.candidates[key_no].values().cloned().collect()
    }
}

/// The quick diagnose of an insert: two reads of the source in one transaction.
/// First, the checked columns of every row (numbered in input order) stream into a
/// narrow staging table, and set-based queries find, once for the whole input, the
/// rows that repeat a key of the input or of the table, lack a foreign-key parent
/// or fail a CHECK. Then the source is read again and the other rows stream into
/// the table. Memory holds only the failing rows. If the engine still refuses
/// something, the checks missed a kind of error: the unit starts over carefully.
async fn quick_pass(
    conn: &mut Conn,
    plan: &Plan,
    source: &dyn BatchSource,
    progress: Option<&mpsc::UnboundedSender<Progress>>,
) -> Result<WriteReport, PassError> {
    let d = plan.dialect;
    let careful = |e: DbError| {
        if e.is_transient() {
            PassError::Engine(e)
        } else {
            PassError::Careful(e)
        }
    };
    if d.0 == Engine::Postgres {
        // One scan of the table per check is right here (see `begin` for the opposite).
        // Memory for hashing the whole input's keys once, instead of spilling to disk.
        conn.batch("SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on; SET LOCAL work_mem = '64MB'")
            .await?;
    }
    let staged: Vec<&lockgate_core::Column> = stage_columns(plan, true);
    let mut cols: Vec<(String, String)> = staged.iter().map(|c| (c.name.clone(), stage_type(d, c))).collect();
    cols.push((ORD.into(), d.bigint().into()));
    cols.push((LINE.into(), d.bigint().into()));
    cols.push((FILE.into(), d.bigint().into()));
    conn.batch(&d.drop_temp(STAGE)).await?;
    conn.batch(&d.create_temp(STAGE, &cols)).await?;
    let stage = lockgate_core::TableName::new(STAGE);
    // Sources by number, so that a staged row can be named without the second read.
    let mut files: Vec<Option<Arc<String>>> = Vec::new();
    let mut read1_errors: Vec<RowError> = Vec::new();
    let mut rows_read = 0u64;

    // Read 1: stage, and note keys that may repeat within the input.
    let keys: Vec<Vec<String>> = plan
        .table
        .unique_keys()
        .into_iter()
        .filter(|k| k.iter().all(|c| plan.table.column(c).is_some()))
        .collect();
    // Keys compared exactly in memory; text keys compare by the column's collation
    // (case-insensitive, say), so the database groups those itself.
    let exact: Vec<bool> = keys
        .iter()
        .map(|k| {
            k.iter().all(|c| {
                !matches!(
                    plan.table.column(c).map(|c| &c.kind),
                    Some(lockgate_core::Kind::Text { .. })
                )
            })
        })
        .collect();
    let mut repeats = RepeatFinder::new(keys.len());
    // Whether the checks below see every way a row can fail (see `complete`).
    let mut complete = complete(plan);
    let mut failed_already = false;
    let mut n: i64 = 0;
    let mut rx = source.open();
    while let Some(item) = rx.recv().await {
        let mut batch = item.map_err(PassError::Source)?;
        rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
        let (rows, mut errors) = precheck(plan, &mut batch);
        failed_already |= !errors.is_empty();
        read1_errors.append(&mut errors);
        let file_no = match files.iter().position(|f| *f == batch.source) {
            Some(i) => i,
            None => {
                files.push(batch.source.clone());
                files.len() - 1
            }
        } as i64;
        complete &= batch.columns.iter().all(|c| {
            plan.table.column(c).is_some_and(|c| {
                !c.auto
                    && !matches!(
                        c.kind,
                        lockgate_core::Kind::Any | lockgate_core::Kind::Unsupported { .. }
                    )
            })
        });
        for (k, key) in keys.iter().enumerate().filter(|(k, _)| exact[*k]) {
            let idx: Option<Vec<usize>> = key.iter().map(|c| batch.columns.iter().position(|b| b == c)).collect();
            if let Some(idx) = idx {
                for r in &rows {
                    if idx.iter().all(|&j| !r.values[j].is_null()) {
                        repeats.see(k, KeyRepr::of(&r.values, &idx));
                    }
                }
            }
        }
        let picks: Vec<usize> = (0..batch.columns.len())
            .filter(|&i| staged.iter().any(|c| c.name == batch.columns[i]))
            .collect();
        let mut names: Vec<String> = picks.iter().map(|&i| batch.columns[i].clone()).collect();
        names.push(ORD.into());
        names.push(LINE.into());
        names.push(FILE.into());
        let projected: Vec<Row> = rows
            .iter()
            .map(|r| {
                let mut values: Vec<Value> = picks.iter().map(|&i| r.values[i].clone()).collect();
                values.push(Value::Int(n));
                values.push(Value::Int(r.line as i64));
                values.push(Value::Int(file_no));
                n += 1;
                Row { line: r.line, values }
            })
            .collect();
        conn.stream_rows(&stage, &names, &projected).await.map_err(careful)?;
        if let Some(p) = progress {
            let _ = p.send(Progress {
                phase: "checking",
                rows: n as u64,
            });
        }
    }
    conn.finish_stream().await.map_err(careful)?;

    // The checks, once for the whole input.
    let (bad, all_ran) = whole_input_checks(conn, plan, &keys, &exact, &repeats).await?;
    complete &= all_ran;
    // With every failure foreseen and some found, the verdict of a rollback policy is
    // known: the second read only names the failing rows, without writing the others
    // (which would all be rolled back).
    let write_good_rows = !(complete && plan.on_error == OnError::Rollback && (failed_already || !bad.is_empty()));
    if !write_good_rows {
        // Name the failing rows from the staging table: no second read at all.
        let mut failed = read1_errors;
        failed.extend(name_staged_rows(conn, plan, &bad, &files).await?);
        let file_order = |e: &RowError| {
            files
                .iter()
                .position(|f| f.as_deref().map(|s| s.as_str()) == e.file.as_deref())
        };
        failed.sort_by_key(|e| (file_order(e), e.line));
        let good = n as u64 - bad.len() as u64;
        return Ok(WriteReport {
            rows_read,
            inserted: good,
            failed,
            diagnosed: true,
            ..WriteReport::default()
        });
    }

    // Read 2: write the rows that pass.
    let mut report = WriteReport {
        diagnosed: true,
        ..WriteReport::default()
    };
    let mut n: u64 = 0;
    let mut rx = source.open();
    let keyless = keyless_plan(plan);
    while let Some(item) = rx.recv().await {
        let mut batch = item.map_err(PassError::Source)?;
        report.rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
        // Records that do not give the key are inserted, as oe-migration's upsert
        // without an id creates a row (through staging: the unit may have other
        // batches to match by key, so no COPY stream is opened in between).
        let plan = match &keyless {
            Some(p) if plan.key.iter().any(|k| !batch.columns.contains(&k.name)) => p,
            _ => plan,
        };
        let (rows, mut errors) = precheck(plan, &mut batch);
        report.failed.append(&mut errors);
        let ctx = BatchCtx {
            plan,
            columns: &batch.columns,
            rows: &rows,
            source: batch.source.as_deref().map(|s| s.as_str()),
        };
        let mut keep = vec![true; rows.len()];
        for (i, k) in keep.iter_mut().enumerate() {
            if let Some(f) = bad.get(&n) {
                report
                    .failed
                    .push(ctx.violation(i, Some(f.kind), f.column.as_deref(), f.message.clone()));
                *k = false;
            }
            n += 1;
        }
        let good: Vec<Row> = rows.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect();
        if !write_good_rows {
            report.inserted += good.len() as u64;
        } else if !good.is_empty() {
            let outcome = conn
                .stream_rows(&plan.table.name, &batch.columns, &good)
                .await
                .map_err(careful)?;
            report.inserted += outcome.written;
        }
        if let Some(p) = progress {
            let _ = p.send(Progress {
                phase: "diagnosing",
                rows: report.rows_read,
            });
        }
    }
    conn.finish_stream().await.map_err(careful)?;
    Ok(report)
}

/// Builds the reports of failing staged rows from what the staging table holds:
/// their line, source and key.
async fn name_staged_rows(
    conn: &mut Conn,
    plan: &Plan,
    bad: &HashMap<u64, Finding>,
    files: &[Option<Arc<String>>],
) -> Result<Vec<RowError>, DbError> {
    let d = plan.dialect;
    let key: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    let mut ords: Vec<u64> = bad.keys().copied().collect();
    ords.sort_unstable();
    let mut out = Vec::with_capacity(ords.len());
    for chunk in ords.chunks(500) {
        let params: Vec<Value> = chunk.iter().map(|n| Value::Int(*n as i64)).collect();
        let list = (1..=params.len()).map(|i| d.param(i)).collect::<Vec<_>>().join(", ");
        let key_cols = key.iter().map(|k| format!(", {}", d.quote(k))).collect::<String>();
        let sql = format!(
            "SELECT {ORD}, {LINE}, {FILE}{key_cols} FROM {} WHERE {ORD} IN ({list})",
            d.quote(STAGE)
        );
        for row in conn.query(&sql, &params, None).await? {
            let Some(n) = as_u64(&row[0]) else { continue };
            let Some(f) = bad.get(&n) else { continue };
            let file = as_u64(&row[2])
                .and_then(|f| files.get(f as usize))
                .and_then(|f| f.as_deref().cloned());
            let key_text = key
                .iter()
                .zip(&row[3..])
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(RowError {
                file,
                line: as_u64(&row[1]),
                key: (!key.is_empty()).then_some(key_text),
                column: f.column.clone(),
                code: f.kind.code(d.0).to_string(),
                message: f.message.clone(),
            });
        }
    }
    Ok(out)
}

/// Whether the set-based checks see every way a row of this table can fail: no
/// trigger, enum or other engine-only rule ([`lockgate_core::Table::unchecked`]),
/// and no foreign key onto the table itself (its parents may be in the input).
/// Columns the input gives are checked as they are read.
fn complete(plan: &Plan) -> bool {
    plan.table.unchecked.is_empty() && plan.table.foreign_keys.iter().all(|f| f.references != plan.table.name)
}

/// The set-based checks of [`quick_pass`] over the whole staged input: returns, by
/// row number, what is wrong with each failing row.
async fn whole_input_checks(
    conn: &mut Conn,
    plan: &Plan,
    keys: &[Vec<String>],
    exact: &[bool],
    repeats: &RepeatFinder,
) -> Result<(HashMap<u64, Finding>, bool), PassError> {
    let d = plan.dialect;
    let table = &plan.table;
    let stage = d.quote(STAGE);
    let mut bad: HashMap<u64, Finding> = HashMap::new();
    let mut all_ran = true;
    // A query that could not run is noted: the checks are then not the last word.
    let mut run = async |conn: &mut Conn, sql: String| -> Result<Vec<Vec<Value>>, DbError> {
        let rows = checked_rows(conn, d, &sql).await?;
        all_ran &= rows.is_some();
        Ok(rows.unwrap_or_default())
    };
    for key in table.unique_keys() {
        if !key.iter().all(|k| table.column(k).is_some()) {
            continue;
        }
        let names = key.join(", ");
        // Repeats within the input: every occurrence after the first fails. The
        // reader noted the keys that may repeat (a Bloom filter: few, and a superset);
        // only the staged rows with those keys are fetched and compared here.
        let key_no = keys.iter().position(|k| *k == key);
        let by_memory = key_no.is_some_and(|k| exact[k]);
        let candidates = key_no
            .filter(|_| by_memory)
            .map(|k| repeats.candidates(k))
            .unwrap_or_default();
        if !by_memory {
            let group_cols = key.iter().map(|k| d.quote(k)).collect::<Vec<_>>().join(", ");
            let group_not_null = key
                .iter()
                .map(|k| format!("{} IS NOT NULL", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let on = key
                .iter()
                .map(|k| format!("g.{0} = s.{0}", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let sql = format!(
                "SELECT s.{ORD}, g.first_line FROM {stage} s JOIN (SELECT {group_cols}, MIN({ORD}) AS first_n, MIN({LINE}) AS first_line \
                 FROM {stage} WHERE {group_not_null} GROUP BY {group_cols} HAVING COUNT(*) > 1) g ON {on} WHERE s.{ORD} > g.first_n"
            );
            for row in run(conn, sql).await? {
                if let Some(n) = as_u64(&row[0]) {
                    let first = row.get(1).map(|v| v.to_string()).unwrap_or_default();
                    bad.entry(n).or_insert_with(|| Finding {
                        kind: Violation::Unique,
                        column: Some(names.clone()),
                        message: format!("duplicate key: the same {names} as line {first} of the input"),
                    });
                }
            }
        } else if !candidates.is_empty() {
            let cand_cols: Vec<(String, String)> = key
                .iter()
                .map(|c| (c.clone(), stage_type(d, table.column(c).expect("checked above"))))
                .collect();
            conn.batch(&d.drop_temp(CANDIDATES)).await?;
            // The index is declared with the table: a separate CREATE INDEX commits
            // the transaction on MariaDB, even on a temporary table.
            conn.batch(&d.create_temp_indexed(CANDIDATES, &cand_cols, &key)).await?;
            let rows: Vec<Row> = candidates.into_iter().map(|values| Row { line: 0, values }).collect();
            conn.bulk_insert(&lockgate_core::TableName::new(CANDIDATES), &key, &rows, None)
                .await?;
            // Statistics, so that the join probes the few candidates (PostgreSQL
            // guesses badly for a new table; MariaDB, without hash joins, uses the index).
            if d.0 == Engine::Postgres {
                conn.batch(&format!("ANALYZE {}", d.quote(CANDIDATES))).await?;
            }
            let on = key
                .iter()
                .map(|k| format!("c.{0} = s.{0}", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let sql = format!(
                "SELECT s.{ORD}, s.{LINE}, {} FROM {stage} s JOIN {} c ON {on} ORDER BY s.{ORD}",
                key.iter()
                    .map(|k| format!("s.{}", d.quote(k)))
                    .collect::<Vec<_>>()
                    .join(", "),
                d.quote(CANDIDATES)
            );
            let mut first: HashMap<Vec<String>, String> = HashMap::new();
            for row in conn.query(&sql, &[], None).await? {
                let (Some(n), line) = (as_u64(&row[0]), row[1].to_string()) else {
                    continue;
                };
                let k: Vec<String> = row[2..].iter().map(|v| v.to_string()).collect();
                match first.get(&k) {
                    Some(first_line) => {
                        bad.entry(n).or_insert_with(|| Finding {
                            kind: Violation::Unique,
                            column: Some(names.clone()),
                            message: format!("duplicate key: the same {names} as line {first_line} of the input"),
                        });
                    }
                    None => {
                        first.insert(k, line);
                    }
                }
            }
            conn.batch(&d.drop_temp(CANDIDATES)).await?;
        }
    }
    // Keys already in the table, missing parents, CHECK constraints.
    for (sql, finding) in table_checks(plan, "1 = 1", |_| true) {
        for row in run(conn, sql).await? {
            if let Some(n) = as_u64(&row[0]) {
                bad.entry(n).or_insert_with(|| finding.clone());
            }
        }
    }
    Ok((bad, all_ran))
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Decimal(d) => d.to_i64().and_then(|n| u64::try_from(n).ok()),
        _ => None,
    }
}

/// Runs a diagnostic query under a savepoint: a check that cannot run (it names a
/// function the staging table lacks, say) is `None`, left to the engine, not fatal.
async fn checked_rows(conn: &mut Conn, d: Dialect, sql: &str) -> Result<Option<Vec<Vec<Value>>>, DbError> {
    conn.batch(&d.savepoint(SP)).await?;
    match conn.query(sql, &[], None).await {
        Ok(rows) => {
            conn.batch(&d.release(SP)).await?;
            Ok(Some(rows))
        }
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::debug!("set-based check skipped: {e}");
            conn.batch(&d.rollback_to(SP)).await?;
            conn.batch(&d.release(SP)).await?;
            Ok(None)
        }
    }
}

/// Runs the mode's statements over `rows` (ordinals) under a savepoint; on failure
/// splits the set in two, until single failing rows are left.
async fn bisect(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    rows: &[usize],
    bad: &mut HashMap<usize, RowError>,
    report: &mut WriteReport,
    stop: bool,
) -> Result<(), DbError> {
    let d = ctx.plan.dialect;
    // An explicit stack instead of recursion: async recursion needs boxing.
    let mut stack: Vec<&[usize]> = vec![rows];
    while let Some(part) = stack.pop() {
        if part.is_empty() || (stop && !bad.is_empty()) {
            continue;
        }
        let (lo, hi) = (part[0], part[part.len() - 1]);
        let filter = format!("s.{BAD} = 0 AND s.{ORD} >= {lo} AND s.{ORD} <= {hi}");
        conn.batch(&d.savepoint(SP)).await?;
        match apply(conn, ctx, &filter).await {
            Ok(applied) => {
                conn.batch(&d.release(SP)).await?;
                report.add(applied);
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                conn.batch(&d.rollback_to(SP)).await?;
                conn.batch(&d.release(SP)).await?;
                if part.len() == 1 {
                    let ee = e
                        .engine_error()
                        .cloned()
                        .unwrap_or_else(|| EngineError::new("error", e.to_string()));
                    bad.insert(part[0], ctx.row_error(part[0], &ee));
                    mark_bad(conn, d, part).await?;
                } else {
                    let mid = part.len() / 2;
                    // Pop order: first half first, so errors come in file order.
                    stack.push(&part[mid..]);
                    stack.push(&part[..mid]);
                }
            }
        }
    }
    Ok(())
}

/// Set-based checks over the staged rows that would fail: duplicate keys within
/// the batch and against the table, missing foreign-key parents, CHECK constraints.
async fn set_checks(conn: &mut Conn, ctx: &BatchCtx<'_>, bad: &mut HashMap<usize, RowError>) -> Result<(), DbError> {
    let plan = ctx.plan;
    let d = plan.dialect;
    let table = &plan.table;
    let given = |c: &str| ctx.columns.iter().any(|g| g == c);
    // Rows that will be inserted: in the key modes, those whose key is absent.
    let inserting = match plan.mode {
        WriteMode::Insert => "1 = 1".to_string(),
        WriteMode::Update => "1 = 0".to_string(),
        _ => format!(
            "NOT EXISTS (SELECT 1 FROM {} t0 WHERE {})",
            d.table(&table.name),
            d.key_match("t0", "s", &plan.key)
        ),
    };
    for key in table.unique_keys() {
        if !key.iter().all(|k| given(k)) {
            continue;
        }
        // Duplicates within the batch (the first occurrence is the one that loads).
        let idx: Vec<usize> = key
            .iter()
            .filter_map(|k| ctx.columns.iter().position(|c| c == k))
            .collect();
        if plan.mode == WriteMode::Insert {
            let mut seen: HashMap<KeyRepr, usize> = HashMap::with_capacity(ctx.rows.len());
            for (i, row) in ctx.rows.iter().enumerate() {
                if idx.iter().any(|&j| row.values[j].is_null()) || bad.contains_key(&i) {
                    continue;
                }
                let k = KeyRepr::of(&row.values, &idx);
                if let Some(first) = seen.get(&k) {
                    let msg = format!(
                        "duplicate key: the same {} as line {} of the input",
                        key.join(", "),
                        ctx.rows[*first].line
                    );
                    bad.insert(i, ctx.violation(i, Some(Violation::Unique), Some(&key.join(", ")), msg));
                } else {
                    seen.insert(k, i);
                }
            }
        }
    }
    for (sql, f) in table_checks(plan, &inserting, given) {
        for i in checked_query(conn, d, &sql).await? {
            bad.entry(i)
                .or_insert_with(|| ctx.violation(i, Some(f.kind), f.column.as_deref(), f.message.clone()));
        }
    }
    Ok(())
}

/// The row ordinals a diagnostic query returns; a check that cannot run is left
/// to bisection.
async fn checked_query(conn: &mut Conn, d: Dialect, sql: &str) -> Result<Vec<usize>, DbError> {
    ordinals(checked_rows(conn, d, sql).await?.unwrap_or_default())
}

/// When even staging fails, bisect the staging load itself, then diagnose the
/// rows that staged.
async fn diagnose_staging(conn: &mut Conn, ctx: &BatchCtx<'_>, report: &mut WriteReport) -> Result<(), PassError> {
    let d = ctx.plan.dialect;
    let stage = lockgate_core::TableName::new(STAGE);
    let mut good: Vec<usize> = Vec::new();
    let mut failed: Vec<(usize, RowError)> = Vec::new();
    let all: Vec<usize> = (0..ctx.rows.len()).collect();
    let mut stack: Vec<&[usize]> = vec![&all];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let rows: Vec<Row> = part.iter().map(|&i| ctx.rows[i].clone()).collect();
        // Probe under a savepoint and roll the probe back: only the verdict matters.
        conn.batch(&d.savepoint(SP)).await?;
        match conn.bulk_insert(&stage, ctx.columns, &rows, Some(ORD)).await {
            Ok(o) if o.row_errors.is_empty() => {
                conn.batch(&d.rollback_to(SP)).await?;
                conn.batch(&d.release(SP)).await?;
                good.extend_from_slice(part);
            }
            Ok(o) => {
                conn.batch(&d.rollback_to(SP)).await?;
                conn.batch(&d.release(SP)).await?;
                let bad_idx: HashSet<usize> = o.row_errors.iter().map(|(i, _)| *i).collect();
                for (i, e) in o.row_errors {
                    failed.push((part[i], ctx.row_error(part[i], &e)));
                }
                good.extend(
                    part.iter()
                        .enumerate()
                        .filter(|(j, _)| !bad_idx.contains(j))
                        .map(|(_, &i)| i),
                );
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                conn.batch(&d.rollback_to(SP)).await?;
                conn.batch(&d.release(SP)).await?;
                if part.len() == 1 {
                    let ee = e
                        .engine_error()
                        .cloned()
                        .unwrap_or_else(|| EngineError::new("error", e.to_string()));
                    failed.push((part[0], ctx.row_error(part[0], &ee)));
                } else {
                    let mid = part.len() / 2;
                    stack.push(&part[mid..]);
                    stack.push(&part[..mid]);
                }
            }
        }
    }
    good.sort_unstable();
    failed.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = good.iter().map(|&i| ctx.rows[i].clone()).collect();
    report.failed.extend(failed.into_iter().map(|(_, e)| e));
    if rows.is_empty() {
        return Ok(());
    }
    let sub = BatchCtx {
        plan: ctx.plan,
        columns: ctx.columns,
        rows: &rows,
        source: ctx.source,
    };
    Box::pin(diagnose_batch(conn, &sub, report)).await
}
