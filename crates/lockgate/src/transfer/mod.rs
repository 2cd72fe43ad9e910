//! Transfers: batches of rows from a source database to a destination database,
//! as *exports* that capture every row error, roll back as a whole, remember every
//! attempt, and run from a queue (seed 000, the customer export app).
//!
//! - [`create`] records a pending export with its row set: the source keys that no
//!   pending, running or completed export of the transfer holds.
//! - [`run_pending`] claims and runs pending exports once (cron, the seed's
//!   `/process`); [`worker`] keeps polling. An export is one destination transaction:
//!   its rows and its change to `completed` commit together, or everything rolls
//!   back, the export is `failed`, and its row errors are recorded after the
//!   rollback. Claims carry a lease and a fencing token checked at commit.
//! - [`show`], [`list`] and [`history`] read the export ledger.
//!
//! The ledger lives in the destination database (see `lockgate_db::exports`).

pub(crate) mod def;
mod plan;
mod run;

pub use def::{parse_map, SourceSpec, Transfer, TransferSpec, DEFAULT_BATCH, DEFAULT_LOCK_TIMEOUT};
pub use plan::{key_text, CheckReport, Narrowing};
pub use run::{
    run_pending, worker, worker_pool, ExportOutcome, RunOptions, RunReport, Shutdown, TransferEvent, WorkerReport,
};

use lockgate_db::exports::{self, Attempt, Export, ExportError, MAX_KEY_CHARS};
use lockgate_db::ledger::{Holder, Ledger};
use lockgate_db::relation::{self, KeyReader};
use lockgate_db::rowset::{Chunk, ChunkBuilder, Membership};
use lockgate_db::{Conn, DbError, DbUrl};
use std::borrow::Cow;

/// Why a transfer command failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A bad definition or argument, found before anything was written.
    #[error("{0}")]
    Input(String),
    /// The destination check found problems; nothing was written.
    #[error("the destination check failed:\n  - {}", .0.join("\n  - "))]
    Check(Vec<String>),
    /// The source database failed (unreachable, a query error).
    #[error("source {0}: {1}")]
    Source(String, #[source] DbError),
    /// The destination database failed.
    #[error("destination {0}: {1}")]
    Dest(String, #[source] DbError),
    /// No export with that id.
    #[error("there is no export {0} in {1}: `lockgate transfer list` shows the exports")]
    NoSuchExport(i64, String),
}

impl TransferError {
    /// The process exit code (ARCHITECTURE.md): 2 for bad input and failed checks, 1 for
    /// run-time failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            TransferError::Input(_) | TransferError::Check(_) | TransferError::NoSuchExport(..) => 2,
            TransferError::Source(_, e) | TransferError::Dest(_, e) => e.exit_code(),
        }
    }
}

fn dest_err(url: &DbUrl) -> impl Fn(DbError) -> TransferError + '_ {
    move |e| TransferError::Dest(url.redacted(), e)
}

fn source_err(url: &DbUrl) -> impl Fn(DbError) -> TransferError + '_ {
    move |e| TransferError::Source(url.redacted(), e)
}

/// Runs the destination check of `t`: both databases reachable, every column
/// resolved. Writes nothing.
pub async fn check(t: &Transfer) -> Result<CheckReport, TransferError> {
    let mut src = Conn::connect_existing(&t.source).await.map_err(source_err(&t.source))?;
    let mut dst = Conn::connect_existing(&t.dest).await.map_err(dest_err(&t.dest))?;
    let plan = plan::plan(t, &mut src, &mut dst).await?;
    Ok(plan.report(&t.name))
}

/// How [`create`] works.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Count the rows an export would hold, and create nothing: a read taking no
    /// lock (the dashboard's Export button, `GET /api/transfers`).
    pub dry_run: bool,
}

/// What [`create`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CreateReport {
    /// Whether an export was created.
    pub created: bool,
    /// Source rows no pending, running or completed export holds.
    pub available: i64,
    /// The export created.
    pub export: Option<Export>,
    /// What went wrong around the create without changing it (its lock could not be
    /// given back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Records a pending export of `t` with its row set: every source key that no
/// pending, running or completed export of `t` holds. With none, creates nothing
/// (`created: false`). Two creates of one transfer take turns (a job lock, waited
/// for up to `t.lock_timeout`), so a row never lands in two row sets. The export
/// records `t.on_error`, the policy it runs with.
///
/// With `dry_run` it only counts those keys: a read of the source's keys and of the
/// holding exports' row sets, taking no lock and writing nothing (no export id is
/// used up), so the dashboard can ask while exports are created and run.
pub async fn create(t: &Transfer, opts: &CreateOptions) -> Result<CreateReport, TransferError> {
    // Neither database is created here: the source is only read, and the
    // destination must already hold the table the export writes.
    let mut src = Conn::connect_existing(&t.source).await.map_err(source_err(&t.source))?;
    let mut dst = Conn::connect_existing(&t.dest).await.map_err(dest_err(&t.dest))?;
    let plan = plan::plan(t, &mut src, &mut dst).await?;
    drop(dst);
    if opts.dry_run {
        // A count creates no ledger where there is none: then nothing is held.
        let held = match Ledger::open_existing(&t.dest).await.map_err(dest_err(&t.dest))? {
            Some(mut ledger) => held_keys(t, &plan, ledger.conn()).await?,
            None => Membership::new(),
        };
        let available = select_keys(t, &plan, src, &held, None).await?;
        return Ok(CreateReport {
            created: false,
            available,
            export: None,
            warnings: Vec::new(),
        });
    }
    let mut ledger = Ledger::open(&t.dest).await.map_err(dest_err(&t.dest))?;
    let holder = Holder::current(format!("lockgate transfer create {}", t.name));
    let job = format!("transfer-create:{}", t.name);
    let lock = ledger
        .lock(&job, &holder, t.lock_timeout)
        .await
        .map_err(dest_err(&t.dest))?;
    let result = create_locked(t, &plan, src, &mut ledger).await;
    let unlocked = ledger.unlock(lock).await;
    let mut report = result?;
    if let Err(e) = unlocked {
        // The export is recorded (or not) whatever became of the lock.
        report.warnings.push(format!(
            "the lock of {job} could not be given back ({e}); it is freed when this process exits"
        ));
    }
    Ok(report)
}

/// The keys the transfer's holding exports hold, as the key reads now.
async fn held_keys(t: &Transfer, plan: &plan::Plan, ledger: &mut Conn) -> Result<Membership, TransferError> {
    let padded = plan::padded_key(&plan.key_kinds());
    let normalize = |text: &str| match plan::unpadded_key_text(text, &padded) {
        Cow::Owned(s) => Some(s),
        Cow::Borrowed(s) => (s.len() < text.len()).then(|| s.to_string()),
    };
    let started = std::time::Instant::now();
    let held = exports::held_keys(ledger, &t.name, &normalize)
        .await
        .map_err(dest_err(&t.dest))?;
    tracing::debug!(
        ranges = held.size().0,
        texts = held.size().1,
        seconds = started.elapsed().as_secs_f64(),
        "held keys read"
    );
    Ok(held)
}

/// Reads the source's keys (one consistent view, by a task of its own so that
/// reading overlaps with what is done with them) and keeps those `held` does not
/// hold, numbered from 1 in key order; with `record`, packs them into the row set of
/// that export on that connection. Returns how many were kept. A key the source
/// gives twice (when its key is not known to be unique) is an error, as is a NULL
/// or over-long key.
async fn select_keys(
    t: &Transfer,
    plan: &plan::Plan,
    src: Conn,
    held: &Membership,
    mut record: Option<(&mut Conn, i64)>,
) -> Result<i64, TransferError> {
    let padded = plan::padded_key(&plan.key_kinds());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<String>, TransferError>>(2);
    let reader = tokio::spawn(read_keys(t.clone(), plan.clone(), src, tx));
    let mut builder = ChunkBuilder::new(1);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut kept = 0i64;
    // The keys seen, when the source's key is not known to be unique (a query, a
    // key without a unique index): the memory of its key texts, as the row set held
    // them before they were packed.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut duplicates: Vec<String> = Vec::new();
    let check_duplicates = !plan.key_unique_in_source;
    while let Some(page) = rx.recv().await {
        for key in page? {
            // Every key, not only the one before: under a collation that calls
            // two spellings equal, a repeat need not come next to the first.
            if check_duplicates && !seen.insert(key.clone()) {
                if duplicates.len() < 5 && !duplicates.contains(&key) {
                    duplicates.push(key);
                }
                continue;
            }
            if held.contains(&plan::unpadded_key_text(&key, &padded)) {
                continue;
            }
            kept += 1;
            if record.is_some() {
                chunks.extend(builder.push(&key));
            }
        }
        if let Some((conn, id)) = record.as_mut().filter(|_| chunks.len() >= 16) {
            exports::add_chunks(conn, *id, &chunks)
                .await
                .map_err(dest_err(&t.dest))?;
            chunks.clear();
        }
    }
    // A reader that panicked would otherwise leave a row set cut short.
    reader.await.map_err(|e| {
        TransferError::Source(
            t.source.redacted(),
            DbError::Internal(format!("the key reader stopped: {e}")),
        )
    })?;
    if !duplicates.is_empty() {
        return Err(duplicate_keys(t, &duplicates));
    }
    if let Some((conn, id)) = record {
        chunks.extend(builder.finish());
        exports::add_chunks(conn, id, &chunks)
            .await
            .map_err(dest_err(&t.dest))?;
    }
    Ok(kept)
}

fn duplicate_keys(t: &Transfer, duplicates: &[String]) -> TransferError {
    TransferError::Input(format!(
        "transfer {:?}: the source gives these keys more than once: {}; a key must name one row \
         (choose another --key, or make the source query return each key once)",
        t.name,
        duplicates.join(", ")
    ))
}

/// Reads the source's keys in key order, as texts, a page at a time; a NULL or
/// over-long key ends the read with that error.
async fn read_keys(
    t: Transfer,
    plan: plan::Plan,
    mut src: Conn,
    tx: tokio::sync::mpsc::Sender<Result<Vec<String>, TransferError>>,
) {
    let result = async {
        src.begin_snapshot().await.map_err(source_err(&t.source))?;
        if !plan.key_not_null_in_source
            && relation::has_null_key(&mut src, &plan.relation, &plan.projection)
                .await
                .map_err(source_err(&t.source))?
        {
            return Err(null_key(&t, &plan));
        }
        let mut reader = KeyReader::new(&src, &plan.relation, &plan.projection, KEY_PAGE);
        while let Some(page) = reader.next_page(&mut src).await.map_err(source_err(&t.source))? {
            let mut keys = Vec::with_capacity(page.len());
            for values in page {
                if values.iter().any(|v| v.is_null()) {
                    return Err(null_key(&t, &plan));
                }
                let text = key_text(&values);
                if text.len() > MAX_KEY_CHARS && text.chars().count() > MAX_KEY_CHARS {
                    return Err(TransferError::Input(format!(
                        "transfer {:?}: the key {}… is longer than {MAX_KEY_CHARS} characters, the most a row set holds",
                        t.name,
                        text.chars().take(40).collect::<String>()
                    )));
                }
                keys.push(text);
            }
            if tx.send(Ok(keys)).await.is_err() {
                break;
            }
        }
        let _ = src.rollback().await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// Keys read from the source per query: large pages, since each costs a round trip
/// and a sort's start, and a page of keys is small.
const KEY_PAGE: usize = 50_000;

fn null_key(t: &Transfer, plan: &plan::Plan) -> TransferError {
    TransferError::Input(format!(
        "transfer {:?}: a source row has a NULL key ({}); every row needs a key to be exported \
         and remembered: fix the row or filter it out with --source-query",
        t.name,
        plan.key.join(", ")
    ))
}

async fn create_locked(
    t: &Transfer,
    plan: &plan::Plan,
    src: Conn,
    ledger: &mut Ledger,
) -> Result<CreateReport, TransferError> {
    let conn = ledger.conn();
    // Read before the transaction begins: under the create lock no export can appear
    // meanwhile, and a worker can only free rows (an export failing), never take free
    // ones, so what is held can only shrink: at worst a freed row waits for the next
    // export.
    let held = held_keys(t, plan, conn).await?;
    conn.begin().await.map_err(dest_err(&t.dest))?;
    let result = async {
        let id = exports::begin_export(conn, &t.name).await.map_err(dest_err(&t.dest))?;
        exports::set_on_error(conn, id, t.on_error)
            .await
            .map_err(dest_err(&t.dest))?;
        let started = std::time::Instant::now();
        let rows = select_keys(t, plan, src, &held, Some((&mut *conn, id))).await?;
        exports::set_rows_total(conn, id, rows)
            .await
            .map_err(dest_err(&t.dest))?;
        tracing::debug!(rows, seconds = started.elapsed().as_secs_f64(), "row set recorded");
        Ok((id, rows))
    }
    .await;
    match result {
        Ok((id, rows)) if rows > 0 => {
            conn.commit().await.map_err(dest_err(&t.dest))?;
            let export = exports::get(conn, id).await.map_err(dest_err(&t.dest))?;
            Ok(CreateReport {
                created: true,
                available: rows,
                export,
                warnings: Vec::new(),
            })
        }
        Ok((_, rows)) => {
            conn.rollback().await.map_err(dest_err(&t.dest))?;
            Ok(CreateReport {
                created: false,
                available: rows,
                export: None,
                warnings: Vec::new(),
            })
        }
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

/// One export with every failing row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportDetail {
    /// The export.
    pub export: Export,
    /// Its failing rows, in row-set order.
    pub errors: Vec<ExportError>,
}

/// The export ledger in `dest` for reading: `None` when the database has none (the
/// reader creates neither the database nor the ledger). Expired claims are given
/// back first, so that the statuses read are current.
async fn open_ledger(dest: &DbUrl) -> Result<Option<Ledger>, TransferError> {
    let Some(mut ledger) = Ledger::open_existing(dest).await.map_err(dest_err(dest))? else {
        return Ok(None);
    };
    exports::reap_expired(ledger.conn()).await.map_err(dest_err(dest))?;
    Ok(Some(ledger))
}

/// An export and its failing rows, from the ledger in `dest`.
pub async fn show(dest: &DbUrl, id: i64) -> Result<ExportDetail, TransferError> {
    let Some(mut ledger) = open_ledger(dest).await? else {
        return Err(TransferError::NoSuchExport(id, dest.redacted()));
    };
    let conn = ledger.conn();
    let export = exports::get(conn, id)
        .await
        .map_err(dest_err(dest))?
        .ok_or_else(|| TransferError::NoSuchExport(id, dest.redacted()))?;
    let errors = exports::errors(conn, id).await.map_err(dest_err(dest))?;
    Ok(ExportDetail { export, errors })
}

/// Exports in `dest`, newest first (of one transfer when given).
pub async fn list(dest: &DbUrl, transfer: Option<&str>, limit: u32) -> Result<Vec<Export>, TransferError> {
    let Some(mut ledger) = open_ledger(dest).await? else {
        return Ok(Vec::new());
    };
    exports::list(ledger.conn(), transfer, limit)
        .await
        .map_err(dest_err(dest))
}

/// Every export that attempted the row with key `key` (its text: the value, or for a
/// key of several columns the values separated by commas), oldest first.
pub async fn history(dest: &DbUrl, key: &str, transfer: Option<&str>) -> Result<Vec<Attempt>, TransferError> {
    let Some(mut ledger) = open_ledger(dest).await? else {
        return Ok(Vec::new());
    };
    let conn = ledger.conn();
    let mut attempts = exports::history(conn, key, transfer).await.map_err(dest_err(dest))?;
    if attempts.is_empty() && key.contains(',') {
        // A key of several columns, given as a,b: the row set stores ["a","b"].
        let parts: Vec<&str> = key.split(',').map(str::trim).collect();
        let text = serde_json::to_string(&parts).unwrap_or_default();
        attempts = exports::history(conn, &text, transfer).await.map_err(dest_err(dest))?;
    }
    Ok(attempts)
}
