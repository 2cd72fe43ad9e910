//! Running exports: claim, read the row set's rows from the source, write them
//! through the foundation's writer in one destination transaction, and commit the
//! rows together with the export's change to `completed`, or roll back and record
//! the failing rows.
//!
//! A worker that takes over an expired claim first ends the session its previous
//! holder wrote on (see `lockgate_db::exports::end_stale_session`): a holder stopped
//! mid-write keeps its row locks, and in a key mode the table's lock (held by that
//! same session, see `write_export`), for as long as its session lives, and PostgreSQL
//! never times out a session that is in the middle of a COPY. Every lock wait of the
//! data session is bounded by the lease besides, so a lock nobody ends fails the unit
//! (retried, then the export given back) instead of holding the worker for ever.
//! Row errors are recorded in the data transaction, with the `failed` status (or,
//! with `--on-error skip`, with the commit of the good rows).
//!
//! Memory stays bounded: the row set's keys are spilled from the ledger to a
//! temporary file (one line per key) before the data transaction starts (so that
//! SQLite's single writer is never asked to read while it writes), and the source is
//! read one batch of keys at a time. The writer's diagnose pass re-reads the same
//! file.

use super::def::Transfer;
use super::plan::{self, convert, key_text, key_values, padded_key, unpadded_key_text, Plan};
use super::{dest_err, source_err, TransferError};
use lockgate_core::{Batch, Row, RowError};
use lockgate_db::exports::{self, Claim, Export, ExportError, FailedRow, StaleEnd};
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::relation::{fetch_by_keys, fetch_range, MAX_KEY_PARAMS};
use lockgate_db::writer::{
    self, BatchSource, Progress, RetryPolicy, SourceError, WriteConfig, WriteError, WriteMode, WriteReport,
};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A shutdown signal shared with a running worker: level 1 asks it to finish the
/// export in hand and stop, level 2 to roll that export back now and stop.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<u8>);

impl Shutdown {
    /// A signal and the sender that raises it (`send(1)`, then `send(2)`).
    pub fn new() -> (watch::Sender<u8>, Shutdown) {
        let (tx, rx) = watch::channel(0);
        (tx, Shutdown(rx))
    }

    fn level(&self) -> u8 {
        *self.0.borrow()
    }

    /// Resolves once the level reaches `at_least` (never, if the sender is gone
    /// before that).
    async fn reached(&mut self, at_least: u8) {
        loop {
            if *self.0.borrow_and_update() >= at_least {
                return;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How exports run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How long a claim lasts without renewal; a worker renews it every third of
    /// that (on PostgreSQL and MariaDB). After it, another worker may take over.
    pub lease: Duration,
    /// Where progress goes.
    pub progress: Option<mpsc::UnboundedSender<TransferEvent>>,
    /// A shutdown signal (workers).
    pub shutdown: Option<Shutdown>,
    /// Who runs (shown in the ledger); default `lockgate transfer run`.
    pub holder: String,
    /// How long an export of a transfer in a key mode waits for another command
    /// writing its destination table (`load`, `migrate`, another such export).
    pub lock_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lease: Duration::from_secs(60),
            progress: None,
            shutdown: None,
            holder: "lockgate transfer run".into(),
            lock_timeout: Duration::from_secs(30),
        }
    }
}

/// Progress of exports, for the CLI and the server.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TransferEvent {
    /// An export was claimed.
    Claimed {
        /// The export.
        id: i64,
        /// Its transfer.
        transfer: String,
        /// Rows in its row set.
        rows: i64,
    },
    /// Rows written so far.
    Progress {
        /// The export.
        id: i64,
        /// `loading`, `diagnosing` or `retrying`.
        phase: String,
        /// Rows handled in this pass.
        done: u64,
        /// Rows in the row set.
        total: u64,
    },
    /// An export ended.
    Finished {
        /// The export.
        id: i64,
        /// Its status.
        status: String,
    },
    /// A worker's round failed (it goes on polling).
    Error {
        /// The message.
        message: String,
    },
    /// Something went wrong around an export without changing its outcome (its
    /// run's end could not be recorded, a stalled worker's session not ended).
    Warning {
        /// The message.
        message: String,
    },
}

/// One export that ran.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportOutcome {
    /// The export as the ledger holds it afterwards.
    pub export: Export,
    /// Its failing rows (a failed export).
    pub errors: Vec<ExportError>,
    /// Wall time.
    pub seconds: f64,
    /// Why it did not finish, when it did not: its claim was taken over, or the
    /// worker was stopped.
    pub note: Option<String>,
    /// What went wrong around the export without changing its outcome: the run's end
    /// could not be recorded in `lockgate_runs`, a stalled worker's session could
    /// not be ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What [`run_pending`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunReport {
    /// The exports that ran, in order.
    pub exports: Vec<ExportOutcome>,
}

impl RunReport {
    /// 0 when every export completed (with `--on-error skip`, also when rows were
    /// skipped), 3 when one failed with row errors, 1 when one could not finish (its
    /// claim was lost).
    pub fn exit_code(&self) -> i32 {
        if self.exports.iter().any(|e| e.export.status == "failed") {
            3
        } else if self.exports.iter().any(|e| e.note.is_some()) {
            1
        } else {
            0
        }
    }
}

/// What a [`worker`] did before it stopped.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerReport {
    /// Exports completed.
    pub completed: u64,
    /// Exports failed with row errors.
    pub failed: u64,
    /// Exports given back unfinished (claim lost, stopped).
    pub interrupted: u64,
}

fn emit(opts: &RunOptions, e: TransferEvent) {
    if let Some(tx) = &opts.progress {
        let _ = tx.send(e);
    }
}

/// Runs every claimable export of `transfers` once, one after another, and returns.
/// A transfer's databases are reached and checked before any of its exports is
/// claimed, so an unreachable source or destination changes no export's state.
pub async fn run_pending(transfers: &[Transfer], opts: &RunOptions) -> Result<RunReport, TransferError> {
    let mut report = RunReport::default();
    // One ledger connection per destination.
    let mut by_dest: BTreeMap<String, Vec<&Transfer>> = BTreeMap::new();
    for t in transfers {
        by_dest.entry(t.dest.as_str().to_string()).or_default().push(t);
    }
    for group in by_dest.values() {
        let dest = &group[0].dest;
        let mut ledger = Ledger::open(dest).await.map_err(dest_err(dest))?;
        for t in group {
            if stopping(opts) {
                return Ok(report);
            }
            let waiting = exports::claimable(ledger.conn(), &t.name)
                .await
                .map_err(dest_err(dest))?;
            if waiting == 0 {
                continue;
            }
            // The source is only read: a mistyped SQLite path must not become a file.
            let mut src = Conn::connect_existing(&t.source).await.map_err(source_err(&t.source))?;
            let mut dst = Conn::connect(&t.dest).await.map_err(dest_err(&t.dest))?;
            let plan = plan::plan(t, &mut src, &mut dst).await?;
            drop((src, dst));
            let holder = Holder::current(opts.holder.clone());
            let holder_text = format!("{} (pid {} on {})", holder.what, holder.pid, holder.host);
            while !stopping(opts) {
                let claim = exports::claim(ledger.conn(), std::slice::from_ref(&t.name), &holder_text, opts.lease)
                    .await
                    .map_err(dest_err(dest))?;
                let Some(claim) = claim else { break };
                let taken_over = take_over(ledger.conn(), &claim, opts.lease).await;
                emit(
                    opts,
                    TransferEvent::Claimed {
                        id: claim.id,
                        transfer: t.name.clone(),
                        rows: claim.rows,
                    },
                );
                let mut outcome = run_claimed(t, &plan, &claim, &mut ledger, &holder, opts).await?;
                outcome.warnings.splice(0..0, taken_over);
                for w in &outcome.warnings {
                    emit(opts, TransferEvent::Warning { message: w.clone() });
                }
                emit(
                    opts,
                    TransferEvent::Finished {
                        id: claim.id,
                        status: outcome.export.status.clone(),
                    },
                );
                report.exports.push(outcome);
            }
        }
    }
    Ok(report)
}

/// Ends the sessions of the workers that claimed the export before `claim` (one
/// whose lease expired, stalled), so that their uncommitted rows and the table lock
/// they hold do not hold this worker up. A session that cannot be ended
/// (no right to) is a warning: this worker's lock waits are bounded by the lease.
async fn take_over(ledger: &mut Conn, claim: &Claim, lease: Duration) -> Vec<String> {
    if claim.stale.is_none() {
        return Vec::new();
    }
    // Not longer than the heartbeat would wait to renew the new claim: it has not
    // started yet.
    let wait = (lease / 3).min(Duration::from_secs(10));
    let warning = match exports::end_stale_session(ledger, claim, wait).await {
        // Still rolling back is fine: this worker's lock waits cover the rest.
        Ok(StaleEnd::Ended | StaleEnd::Gone | StaleEnd::StillClosing) => return Vec::new(),
        Err(e) => format!(
            "export {}: could not end the session of the worker whose lease expired ({e}); if it still holds \
             rows this export needs, this run gives the export back after waiting a lease: run the workers as \
             the same database user, or give them the right to end each other's sessions",
            claim.id
        ),
    };
    tracing::warn!("{warning}");
    vec![warning]
}

fn stopping(opts: &RunOptions) -> bool {
    opts.shutdown.as_ref().is_some_and(|s| s.level() >= 1)
}

/// Keeps running pending exports of `transfers`, looking again every `poll`, until
/// `opts.shutdown` says stop: at level 1 after the export in hand, at level 2 at once
/// (that export rolls back and goes back to pending). A failing round (a server
/// away) is reported as an event and retried at the next poll.
pub async fn worker(transfers: &[Transfer], opts: &RunOptions, poll: Duration) -> WorkerReport {
    let mut report = WorkerReport::default();
    let mut shutdown = opts.shutdown.clone();
    loop {
        if stopping(opts) {
            return report;
        }
        let mut ran = false;
        // One transfer at a time, so that one whose source is away or whose check
        // fails does not keep the others from running.
        for t in transfers {
            if stopping(opts) {
                return report;
            }
            match run_pending(std::slice::from_ref(t), opts).await {
                Ok(r) => {
                    for e in &r.exports {
                        ran = true;
                        match (e.export.status.as_str(), &e.note) {
                            (_, Some(_)) => report.interrupted += 1,
                            ("completed", _) => report.completed += 1,
                            _ => report.failed += 1,
                        }
                    }
                }
                Err(e) => emit(
                    opts,
                    TransferEvent::Error {
                        message: format!("transfer {}: {e}", t.name),
                    },
                ),
            }
        }
        if ran {
            continue;
        }
        match &mut shutdown {
            Some(s) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = s.reached(1) => {}
                }
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}

/// [`worker`] `concurrency` times at once in this process, each its own claims,
/// connections and transactions (holders `HOLDER #1`, `#2`, …): up to `concurrency`
/// exports run in parallel, each claimed by one of them, fenced as between
/// processes. Returns the sum of their reports once all have stopped.
pub async fn worker_pool(
    transfers: &[Transfer],
    opts: &RunOptions,
    poll: Duration,
    concurrency: usize,
) -> WorkerReport {
    if concurrency <= 1 {
        return worker(transfers, opts, poll).await;
    }
    let tasks: Vec<_> = (1..=concurrency)
        .map(|i| {
            let (transfers, mut opts) = (transfers.to_vec(), opts.clone());
            opts.holder = format!("{} #{i}", opts.holder);
            tokio::spawn(async move { worker(&transfers, &opts, poll).await })
        })
        .collect();
    let mut total = WorkerReport::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.completed += r.completed;
            total.failed += r.failed;
            total.interrupted += r.interrupted;
        }
    }
    total
}

/// Where a unit's keys come from: the row set in the destination's ledger, read on
/// a connection of its own (PostgreSQL, MariaDB), or a file the row set was spilled
/// to before the data transaction (SQLite, whose one writer must not be asked to
/// read while it writes). Either way, the keys numbered `after < n <= upto`.
#[derive(Clone)]
enum RowSetKeys {
    Ledger {
        dest: DbUrl,
        export_id: i64,
    },
    File {
        path: Arc<PathBuf>,
        /// The last key number read and the byte offset after it, so that each
        /// `--commit-every` chunk starts where the one before ended instead of
        /// reading the file from its start again.
        resume: Arc<std::sync::Mutex<(i64, u64)>>,
    },
}

/// The rows of part of a row set (`after < n <= upto`), read from the source by key,
/// a batch at a time.
struct ExportRows {
    url: DbUrl,
    plan: Arc<Plan>,
    transfer: Arc<String>,
    keys: RowSetKeys,
    after: i64,
    upto: i64,
    batch: usize,
}

impl BatchSource for ExportRows {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(2);
        let (url, plan, transfer, keys) = (
            self.url.clone(),
            Arc::clone(&self.plan),
            Arc::clone(&self.transfer),
            self.keys.clone(),
        );
        let range = (self.after, self.upto);
        let per = self.batch.min(MAX_KEY_PARAMS / plan.projection.key.len().max(1)).max(1);
        tokio::spawn(async move {
            let result = read_rows(&url, &plan, &transfer, keys, range, per, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(SourceError(e))).await;
            }
        });
        rx
    }
}

/// Reads a row set's keys in order, `per` at a time.
enum KeyPager {
    /// Keys come 10,000 at a time, whatever the batch size, so that small batches do
    /// not cost a ledger query each.
    Ledger {
        conn: Conn,
        export_id: i64,
        after: i64,
        upto: i64,
        buffer: std::collections::VecDeque<(i64, String)>,
    },
    File {
        reader: BufReader<std::fs::File>,
        /// The byte offset of the next line.
        pos: u64,
        after: i64,
        upto: i64,
        resume: Arc<std::sync::Mutex<(i64, u64)>>,
        done: bool,
    },
}

impl KeyPager {
    async fn open(keys: RowSetKeys, (after, upto): (i64, i64)) -> Result<KeyPager, String> {
        Ok(match keys {
            RowSetKeys::Ledger { dest, export_id } => KeyPager::Ledger {
                conn: Conn::connect(&dest)
                    .await
                    .map_err(|e| format!("destination {}: {e}", dest.redacted()))?,
                export_id,
                after,
                upto,
                buffer: Default::default(),
            },
            RowSetKeys::File { path, resume } => {
                use std::io::{Seek, SeekFrom};
                let io = |e: std::io::Error| format!("reading the row set's key file: {e}");
                let mut file = std::fs::File::open(&*path).map_err(io)?;
                let (last, offset) = *resume.lock().expect("resume lock");
                // Start where the chunk before ended, when that is at or before this
                // chunk's start (a retried chunk reads from the beginning).
                let pos = if last <= after { offset } else { 0 };
                file.seek(SeekFrom::Start(pos)).map_err(io)?;
                KeyPager::File {
                    reader: BufReader::new(file),
                    pos,
                    after,
                    upto,
                    resume,
                    done: false,
                }
            }
        })
    }

    async fn next(&mut self, per: usize) -> Result<Vec<(i64, String)>, String> {
        match self {
            KeyPager::Ledger {
                conn,
                export_id,
                after,
                upto,
                buffer,
            } => {
                if buffer.len() < per && *after < *upto {
                    let more = exports::row_set_page(conn, *export_id, *after, per.max(10_000))
                        .await
                        .map_err(|e| format!("reading the export's row set: {e}"))?;
                    match more.last() {
                        Some((n, _)) => *after = *n,
                        None => *after = *upto,
                    }
                    buffer.extend(more.into_iter().filter(|(n, _)| *n <= *upto));
                }
                let take = per.min(buffer.len());
                Ok(buffer.drain(..take).collect())
            }
            KeyPager::File {
                reader,
                pos,
                after,
                upto,
                resume,
                done,
            } => {
                let mut page = Vec::with_capacity(per);
                let mut line = String::new();
                while page.len() < per && !*done {
                    line.clear();
                    let bytes = reader
                        .read_line(&mut line)
                        .map_err(|e| format!("reading the row set's key file: {e}"))?;
                    if bytes == 0 {
                        *done = true;
                        break;
                    }
                    let (n, key): (i64, String) = line
                        .trim_end_matches('\n')
                        .split_once('\t')
                        .and_then(|(n, k)| Some((n.parse().ok()?, serde_json::from_str::<String>(k).ok()?)))
                        .ok_or_else(|| "the row set's key file is damaged".to_string())?;
                    if n > *upto {
                        *done = true;
                        break;
                    }
                    *pos += bytes as u64;
                    *resume.lock().expect("resume lock") = (n, *pos);
                    if n > *after {
                        page.push((n, key));
                    }
                }
                Ok(page)
            }
        }
    }
}

/// One page of keys with the source rows fetched for them.
struct Fetched {
    /// `(n, key text)` of the keys that could be read back.
    wanted: Vec<(i64, String)>,
    /// Keys that could not.
    rejected: Vec<RowError>,
    /// The source's rows (possibly more: a range read).
    rows: Vec<Vec<lockgate_core::Value>>,
}

/// Reads pages of keys and fetches their rows, one page ahead of the conversion.
async fn fetch_pages(
    url: DbUrl,
    plan: Arc<Plan>,
    keys: RowSetKeys,
    range: (i64, i64),
    per: usize,
    tx: mpsc::Sender<Result<Fetched, String>>,
) {
    let result = async {
        let where_ = format!("source {}", url.redacted());
        let mut conn = Conn::connect_existing(&url)
            .await
            .map_err(|e| format!("{where_}: {e}"))?;
        conn.begin_snapshot().await.map_err(|e| format!("{where_}: {e}"))?;
        let mut pager = KeyPager::open(keys, range).await?;
        let key_kinds = plan.key_kinds();
        let padded = padded_key(&key_kinds);
        let mut fetch_time = Duration::ZERO;
        loop {
            let page = pager.next(per).await?;
            if page.is_empty() {
                break;
            }
            let mut values = Vec::with_capacity(page.len());
            let mut wanted = Vec::with_capacity(page.len());
            let mut rejected = Vec::new();
            for (n, text) in page {
                match key_values(&text, &key_kinds) {
                    Ok(v) => {
                        values.push(v);
                        // Matched with the rows read by the key as it reads now (a
                        // char(n) key recorded with its padding by an earlier Lockgate
                        // is the key without it).
                        let unpadded = match unpadded_key_text(&text, &padded) {
                            Cow::Owned(t) => Some(t),
                            Cow::Borrowed(t) => (t.len() < text.len()).then(|| t.to_string()),
                        };
                        wanted.push((n, unpadded.unwrap_or(text)));
                    }
                    Err(e) => rejected.push(row_error(n, &text, None, format!("the key cannot be read back: {e}"))),
                }
            }
            let t0 = Instant::now();
            let rows = fetch(&mut conn, &plan, &values)
                .await
                .map_err(|e| format!("{where_}: {e}"))?;
            fetch_time += t0.elapsed();
            if tx.send(Ok(Fetched { wanted, rejected, rows })).await.is_err() {
                break;
            }
        }
        tracing::debug!(fetch = fetch_time.as_secs_f64(), "source read");
        let _ = conn.rollback().await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn read_rows(
    url: &DbUrl,
    plan: &Arc<Plan>,
    transfer: &Arc<String>,
    keys: RowSetKeys,
    range: (i64, i64),
    per: usize,
    tx: &mpsc::Sender<Result<Batch, SourceError>>,
) -> Result<(), String> {
    let (ftx, mut frx) = mpsc::channel(2);
    let fetcher = tokio::spawn(fetch_pages(url.clone(), Arc::clone(plan), keys, range, per, ftx));
    let columns = Arc::new(
        plan.projection
            .columns
            .iter()
            .map(|(d, _)| d.clone())
            .collect::<Vec<_>>(),
    );
    let source_name = Arc::new(format!("transfer {transfer}"));
    let mut wait_time = Duration::ZERO;
    while let Some(fetched) = frx.recv().await {
        let Fetched { wanted, rejected, rows } = fetched?;
        let mut batch = Batch::new(Arc::clone(&columns));
        batch.source = Some(Arc::clone(&source_name));
        batch.rejected = rejected;
        if rows_match_in_order(plan, &wanted, &rows) {
            // The common case (every key of the page still there, once; a row set
            // holds each key text once, as `create` checks): the range
            // read gave the rows in the row set's own order, so they pair up as they
            // come, without a map of key texts.
            for ((n, text), values) in wanted.into_iter().zip(rows) {
                push_converted(&mut batch, plan, &columns, n, &text, values);
            }
        } else {
            let mut by_key: HashMap<String, Vec<lockgate_core::Value>> = HashMap::with_capacity(rows.len());
            let mut twice = std::collections::HashSet::new();
            for values in rows {
                let key: Vec<_> = plan.projection.key.iter().map(|&i| values[i].clone()).collect();
                let text = key_text(&key);
                if by_key.insert(text.clone(), values).is_some() {
                    twice.insert(text);
                }
            }
            for (n, text) in wanted {
                if twice.contains(&text) {
                    batch.rejected.push(row_error(
                        n,
                        &text,
                        None,
                        format!(
                            "the source has more than one row with this key ({}): a key must name one row; \
                             fix the source, or choose another --key",
                            plan.key.join(", ")
                        ),
                    ));
                    by_key.remove(&text);
                    continue;
                }
                let Some(values) = by_key.remove(&text) else {
                    batch.rejected.push(row_error(
                        n,
                        &text,
                        None,
                        "the row is no longer in the source (deleted after the export was created): \
                         create a new export, which leaves it out"
                            .into(),
                    ));
                    continue;
                };
                push_converted(&mut batch, plan, &columns, n, &text, values);
            }
        }
        let t0 = Instant::now();
        if tx.send(Ok(batch)).await.is_err() {
            break;
        }
        wait_time += t0.elapsed();
    }
    drop(frx);
    let _ = fetcher.await;
    tracing::debug!(waiting_for_writer = wait_time.as_secs_f64(), "rows converted");
    Ok(())
}

/// Whether the fetched rows are exactly the wanted keys' rows, one each, in the
/// same order: then they pair up by position.
fn rows_match_in_order(plan: &Plan, wanted: &[(i64, String)], rows: &[Vec<lockgate_core::Value>]) -> bool {
    use lockgate_core::Value;
    rows.len() == wanted.len()
        && rows
            .iter()
            .zip(wanted)
            .all(|(values, (_, text))| match plan.projection.key.as_slice() {
                [k] => match &values[*k] {
                    Value::Int(v) => lockgate_db::rowset::canonical_int(text) == Some(*v),
                    Value::Text(t) => t == text,
                    other => key_text(std::slice::from_ref(other)) == *text,
                },
                ks => key_text(&ks.iter().map(|&i| values[i].clone()).collect::<Vec<_>>()) == *text,
            })
}

/// Converts a source row for the destination's columns (in place) and adds it to the
/// batch, or adds the first value that does not convert as that row's error.
fn push_converted(
    batch: &mut Batch,
    plan: &Plan,
    columns: &[String],
    n: i64,
    text: &str,
    mut values: Vec<lockgate_core::Value>,
) {
    for (i, v) in values.iter_mut().enumerate() {
        match convert(std::mem::replace(v, lockgate_core::Value::Null), &plan.dest_kinds[i]) {
            Ok(c) => *v = c,
            Err(e) => {
                batch.rejected.push(row_error(n, text, Some(columns[i].clone()), e));
                return;
            }
        }
    }
    batch.push(Row {
        line: n as u64,
        number: 0,
        values,
    });
}

/// The source rows of one page of keys. The row set is numbered in the source's key
/// order, so a page's keys are one key range: with a one-column key it is read as a
/// range (rows the page does not hold are dropped by the caller), unless the range
/// holds many more rows than the page, when an `IN` list of the keys is cheaper.
async fn fetch(
    conn: &mut Conn,
    plan: &Plan,
    keys: &[Vec<lockgate_core::Value>],
) -> Result<Vec<Vec<lockgate_core::Value>>, DbError> {
    if let ([first, ..], [.., last], 1) = (keys, keys, plan.projection.key.len()) {
        let limit = keys.len() + keys.len() / 4 + 16;
        let rows = fetch_range(conn, &plan.relation, &plan.projection, &first[0], &last[0], limit).await?;
        if rows.len() < limit {
            return Ok(rows);
        }
    }
    fetch_by_keys(conn, &plan.relation, &plan.projection, keys).await
}

fn row_error(n: i64, key: &str, column: Option<String>, message: String) -> RowError {
    RowError {
        file: None,
        line: Some(n as u64),
        record: None,
        key: Some(key.to_string()),
        column,
        code: "lockgate".into(),
        message,
    }
}

/// The row set's keys after row `after`, written to a temporary file (SQLite).
async fn spill_keys(conn: &mut Conn, claim: &Claim) -> Result<tempfile::TempPath, DbError> {
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| DbError::Invalid(format!("cannot create a temporary file for the row set: {e}")))?;
    let (file, path) = file.into_parts();
    let mut out = BufWriter::new(file);
    let io = |e: std::io::Error| DbError::Invalid(format!("writing the row set's temporary file: {e}"));
    let mut after = claim.committed_upto;
    loop {
        let page = exports::row_set_page(conn, claim.id, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (n, key) in &page {
            let json = serde_json::to_string(key).unwrap_or_default();
            writeln!(out, "{n}\t{json}").map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    Ok(path)
}

/// Runs one claimed export to its end.
async fn run_claimed(
    t: &Transfer,
    plan: &Plan,
    claim: &Claim,
    ledger: &mut Ledger,
    holder: &Holder,
    opts: &RunOptions,
) -> Result<ExportOutcome, TransferError> {
    let started = Instant::now();
    let dest = &t.dest;
    let job = format!("transfer:{}#{}", t.name, claim.id);
    let run_id = ledger
        .start_run("transfer", &job, holder)
        .await
        .map_err(dest_err(dest))?;
    let result = run_export(t, plan, claim, ledger, holder, opts, run_id).await;
    let (status, error) = match &result {
        Ok(o) if o.export.status == "completed" => (RunStatus::Succeeded, None),
        Ok(o) => (RunStatus::Failed, o.note.clone()),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    let outcome_json = result
        .as_ref()
        .ok()
        .and_then(|o| serde_json::to_value(&o.export).ok())
        .unwrap_or(serde_json::Value::Null);
    let written = result.as_ref().map_or(0, |o| o.export.rows_written.max(0) as u64);
    let recorded = ledger
        .finish_run(run_id, status, written, &outcome_json, error.as_deref())
        .await;
    match (result, recorded) {
        (Ok(mut o), recorded) => {
            o.seconds = started.elapsed().as_secs_f64();
            if let Err(e) = recorded {
                o.warnings.push(not_recorded(run_id, &e));
            }
            Ok(o)
        }
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(r)) => {
            tracing::warn!("{}", not_recorded(run_id, &r));
            Err(e)
        }
    }
}

/// The warning when a run's end could not be written to the ledger.
fn not_recorded(run_id: i64, e: &DbError) -> String {
    format!(
        "the end of run {run_id} could not be recorded in lockgate_runs ({e}); the export's own status is right, \
         and the run reads as abandoned once this process has exited"
    )
}

/// Why the data transaction did not commit.
enum Stop {
    /// Another worker holds the claim now.
    Lost,
    /// The worker was told to stop now.
    Aborted,
    /// The commit failed: refused by the engine (a deferred constraint), or the
    /// connection went away, when it may or may not have happened.
    Commit(DbError),
}

async fn run_export(
    t: &Transfer,
    plan: &Plan,
    claim: &Claim,
    ledger: &mut Ledger,
    holder: &Holder,
    opts: &RunOptions,
    run_id: i64,
) -> Result<ExportOutcome, TransferError> {
    let dest = &t.dest;
    // Where each unit's rows end: the whole row set, or every N rows of it.
    let ends = match t.commit_every {
        Some(every) => exports::chunk_ends(claim.rows, claim.committed_upto, every),
        None => vec![i64::MAX],
    };
    let count = claim.rows.max(0) as usize;
    let (keys, spill) = if dest.engine == Engine::Sqlite {
        let t0 = Instant::now();
        let path = spill_keys(ledger.conn(), claim).await.map_err(dest_err(dest))?;
        tracing::debug!(
            export = claim.id,
            seconds = t0.elapsed().as_secs_f64(),
            "row set spilled"
        );
        (
            RowSetKeys::File {
                path: Arc::new(path.to_path_buf()),
                resume: Arc::new(std::sync::Mutex::new((0, 0))),
            },
            Some(path),
        )
    } else {
        (
            RowSetKeys::Ledger {
                dest: dest.clone(),
                export_id: claim.id,
            },
            None,
        )
    };
    let done = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicBool::new(false));
    // The lease is renewed from a connection of its own while the data transaction
    // runs. SQLite has one writer: there nobody can take the export over while the
    // data transaction holds the file, so there is nothing to renew.
    let (stop_tx, stop_rx) = watch::channel(false);
    let heartbeat = (dest.engine != Engine::Sqlite).then(|| {
        tokio::spawn(heartbeat(
            dest.clone(),
            claim.clone(),
            opts.lease,
            run_id,
            count as u64,
            Arc::clone(&done),
            Arc::clone(&lost),
            stop_rx,
        ))
    });
    let mut warnings = Vec::new();
    let result = write_export(
        t,
        plan,
        claim,
        holder,
        opts,
        keys,
        count,
        &ends,
        &done,
        &lost,
        &mut warnings,
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(h) = heartbeat {
        if let Ok(w) = h.await {
            warnings.extend(w);
        }
    }
    drop(spill);
    let note = match result {
        // Completed, or failed with its row errors recorded: in the data transaction.
        Ok(None) => None,
        Ok(Some(Stop::Lost)) => Some(lost_note(claim)),
        Ok(Some(Stop::Aborted)) => {
            let why = "the worker was stopped; the export was rolled back and put back to pending";
            give_back(ledger, claim, why, opts.lease)
                .await
                .map_err(dest_err(dest))?;
            Some(why.to_string())
        }
        Ok(Some(Stop::Commit(e))) => after_failed_commit(ledger, claim, e, opts.lease)
            .await
            .map_err(dest_err(dest))?,
        Err(e) => {
            // A worker that stalled past its lease finds its session ended by the
            // server: the export is another worker's now, which is no error of this run.
            match exports::get(ledger.conn(), claim.id).await {
                Ok(Some(x)) if x.fence != claim.fence || x.status != "running" => Some(lost_note(claim)),
                _ => {
                    let _ = give_back(ledger, claim, &e.to_string(), opts.lease).await;
                    return Err(e);
                }
            }
        }
    };
    let export = exports::get(ledger.conn(), claim.id)
        .await
        .map_err(dest_err(dest))?
        .ok_or_else(|| TransferError::NoSuchExport(claim.id, dest.redacted()))?;
    let errors = if export.error_count > 0 && note.is_none() {
        exports::errors(ledger.conn(), claim.id).await.map_err(dest_err(dest))?
    } else {
        Vec::new()
    };
    Ok(ExportOutcome {
        export,
        errors,
        seconds: 0.0,
        note,
        warnings,
    })
}

/// Records a failed export (retried while SQLite's one writer is busy elsewhere, for
/// up to a lease: row errors must not be lost to a busy file).
async fn record_failure(
    ledger: &mut Ledger,
    claim: &Claim,
    rows: &[FailedRow],
    error: Option<&str>,
    lease: Duration,
) -> Result<bool, DbError> {
    let deadline = Instant::now() + lease;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match exports::fail(ledger.conn(), claim, rows, error).await {
            Err(e) if e.is_transient() && Instant::now() < deadline => tokio::time::sleep(busy_pause(attempt)).await,
            other => return other,
        }
    }
}

/// Puts a claimed export back to pending (retried like [`record_failure`]).
async fn give_back(ledger: &mut Ledger, claim: &Claim, why: &str, lease: Duration) -> Result<bool, DbError> {
    let deadline = Instant::now() + lease;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match exports::release(ledger.conn(), claim, why).await {
            Err(e) if e.is_transient() && Instant::now() < deadline => tokio::time::sleep(busy_pause(attempt)).await,
            other => return other,
        }
    }
}

/// After a failed commit, the ledger says what happened: the export completed (the
/// connection went away after the server committed), another worker holds it now,
/// the connection broke before the commit (back to pending, to be run again), or
/// the engine refused the commit itself (a deferred constraint: the export failed,
/// with the engine's message, since no single row can be named).
async fn after_failed_commit(
    ledger: &mut Ledger,
    claim: &Claim,
    e: DbError,
    lease: Duration,
) -> Result<Option<String>, DbError> {
    let now = exports::get(ledger.conn(), claim.id).await?;
    match now {
        // The commit went through (the completion, or the failure with its errors).
        Some(x) if x.fence == claim.fence && (x.status == "completed" || x.status == "failed") => Ok(None),
        Some(x) if x.fence != claim.fence || x.status != "running" => Ok(Some(lost_note(claim))),
        _ if e.is_transient() => {
            let why = format!("the commit did not go through ({e}); the export was put back to pending");
            give_back(ledger, claim, &why, lease).await?;
            Ok(Some(why))
        }
        _ => {
            let why = format!(
                "the destination refused the commit: {e}; nothing was kept. A constraint checked at commit \
                 (DEFERRABLE) names no row: check the destination's deferred constraints against the rows"
            );
            record_failure(ledger, claim, &[], Some(&why), lease).await?;
            Ok(None)
        }
    }
}

fn lost_note(claim: &Claim) -> String {
    format!(
        "export {} was taken over by another worker after this worker's lease expired; \
         this worker's work was rolled back and not committed",
        claim.id
    )
}

/// Renews the claim every third of the lease, and records progress, until `stop`.
/// Returns what went wrong without ending the export (said as warnings: a lease not
/// renewed can be taken over, and the worker then finds its fence moved).
#[allow(clippy::too_many_arguments)]
async fn heartbeat(
    dest: DbUrl,
    claim: Claim,
    lease: Duration,
    run_id: i64,
    total: u64,
    done: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut ledger = match Ledger::open(&dest).await {
        Ok(l) => l,
        Err(e) => {
            warnings.push(not_renewed(&claim, &e));
            return warnings;
        }
    };
    let every = (lease / 3).max(Duration::from_millis(200));
    // Progress for the dashboard more often than the lease needs renewing.
    let tick = (every / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut last_renew = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return warnings,
        }
        let n = done.load(Ordering::Relaxed);
        let _ = ledger.progress(run_id, n, Some(total)).await;
        if last_renew.elapsed() >= every {
            last_renew = Instant::now();
            match exports::renew(ledger.conn(), &claim, lease).await {
                Ok(true) => {}
                Ok(false) => lost.store(true, Ordering::Relaxed),
                // Said once: the next renewal may well go through.
                Err(e) if warnings.is_empty() => warnings.push(not_renewed(&claim, &e)),
                Err(_) => {}
            }
        }
    }
}

/// The warning when the heartbeat could not renew the lease.
fn not_renewed(claim: &Claim, e: &DbError) -> String {
    format!(
        "export {}: the lease could not be renewed ({e}); once it expires another worker may take the export \
         over, and this one then commits nothing",
        claim.id
    )
}

/// Writes the export's rows: one transaction, or with `commit_every` one per chunk.
/// `Ok(None)`: the export's verdict committed: completed (with `--on-error skip`,
/// without its failing rows, which are recorded), or failed with its row errors
/// recorded.
///
/// In a key mode the export writes under its table's lock, which `load` and
/// `migrate` take too. The data session holds it, taken after the session is marked
/// with the claim: a worker that takes the export over from this one, stalled, ends
/// that session and with it the lock (a lock on another connection would keep the
/// new worker waiting for as long as the stalled one lives). Once the lock is
/// granted the destination is described again: a `migrate` that held it may have
/// changed the table.
#[allow(clippy::too_many_arguments)]
async fn write_export(
    t: &Transfer,
    plan: &Plan,
    claim: &Claim,
    holder: &Holder,
    opts: &RunOptions,
    keys: RowSetKeys,
    count: usize,
    ends: &[i64],
    done: &Arc<AtomicU64>,
    lost: &Arc<AtomicBool>,
    warnings: &mut Vec<String>,
) -> Result<Option<Stop>, TransferError> {
    let dest = &t.dest;
    let data = Conn::connect(dest).await.map_err(dest_err(dest))?;
    let mut session = Ledger::on_session(data, dest);
    // A lock held longer than a lease is a stalled session's that could not be
    // ended: fail the statement rather than wait for ever.
    exports::bound_lock_waits(session.conn(), opts.lease)
        .await
        .map_err(dest_err(dest))?;
    if !exports::attach_session(session.conn(), claim)
        .await
        .map_err(dest_err(dest))?
    {
        return Ok(Some(Stop::Lost));
    }
    if t.mode == WriteMode::Insert {
        let plan = Arc::new(plan.clone());
        return write_chunks(t, plan, claim, opts, keys, count, ends, done, lost, session.conn()).await;
    }
    let job = session.table_job(&plan.dest.name).await.map_err(dest_err(dest))?;
    let lock = session
        .lock(&job, holder, opts.lock_timeout)
        .await
        .map_err(dest_err(dest))?;
    let result = match replan(t, session.conn()).await {
        Ok(plan) => {
            write_chunks(
                t,
                Arc::new(plan),
                claim,
                opts,
                keys,
                count,
                ends,
                done,
                lost,
                session.conn(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    // A unit cut short mid-statement leaves the connection unusable: the server
    // frees the lock when it is dropped.
    if matches!(result, Ok(Some(Stop::Lost | Stop::Aborted))) {
        return result;
    }
    if let Err(e) = session.unlock(lock).await {
        if !e.is_connection_lost() {
            warnings.push(format!(
                "export {}: the lock of table {} could not be given back ({e}); it is freed when this process \
                 ends",
                claim.id, plan.dest.name
            ));
        }
    }
    result
}

/// The transfer's plan against the destination as it is now (with the table's lock
/// held), so that what a `migrate` changed while this worker waited is written to.
async fn replan(t: &Transfer, dst: &mut Conn) -> Result<Plan, TransferError> {
    let mut src = Conn::connect_existing(&t.source).await.map_err(source_err(&t.source))?;
    plan::plan(t, &mut src, dst).await
}

/// The export's units, on the data connection `data` (see [`write_export`]).
#[allow(clippy::too_many_arguments)]
async fn write_chunks(
    t: &Transfer,
    plan: Arc<Plan>,
    claim: &Claim,
    opts: &RunOptions,
    keys: RowSetKeys,
    count: usize,
    ends: &[i64],
    done: &Arc<AtomicU64>,
    lost: &Arc<AtomicBool>,
    data: &mut Conn,
) -> Result<Option<Stop>, TransferError> {
    let dest = &t.dest;
    let name = Arc::new(t.name.clone());
    let cfg = WriteConfig {
        mode: t.mode,
        key: plan.key.clone(),
        on_error: claim.on_error,
        nested: true,
        ..WriteConfig::default()
    };
    let mut written = claim_written(claim);
    let mut after = claim.committed_upto;
    if ends.is_empty() {
        // Every chunk was committed before the worker stopped: only the status is left.
        begin_data(data, opts.lease).await.map_err(dest_err(dest))?;
        exports::guard_fence(data, opts.lease).await.map_err(dest_err(dest))?;
        if !exports::complete(data, claim, written, 0)
            .await
            .map_err(dest_err(dest))?
        {
            data.rollback().await.map_err(dest_err(dest))?;
            return Ok(Some(Stop::Lost));
        }
        if let Err(e) = data.commit().await {
            return Ok(Some(Stop::Commit(e)));
        }
        return Ok(None);
    }
    for (i, &upto) in ends.iter().enumerate() {
        let source = ExportRows {
            url: t.source.clone(),
            plan: Arc::clone(&plan),
            transfer: Arc::clone(&name),
            keys: keys.clone(),
            after,
            upto,
            batch: t.batch_size,
        };
        let mut attempt = 0;
        let report = loop {
            attempt += 1;
            begin_data(data, opts.lease).await.map_err(dest_err(dest))?;
            let outcome = write_unit(data, &plan, &cfg, &source, claim, opts, done, lost, count).await;
            match outcome {
                Unit::Done(Ok(r)) => break r,
                Unit::Done(Err(WriteError::Db(e))) if e.is_transient() && attempt < 3 => {
                    let _ = data.rollback().await;
                    tokio::time::sleep(cfg.retry.backoff(attempt)).await;
                }
                Unit::Done(Err(e)) => {
                    let _ = data.rollback().await;
                    return Err(match e {
                        WriteError::Db(e) => TransferError::Dest(dest.redacted(), e),
                        WriteError::Source(s) => TransferError::Source(t.source.redacted(), DbError::Invalid(s.0)),
                    });
                }
                // Dropping the connection mid-statement rolls the transaction back on
                // the server (and frees the rows the new owner of the claim waits for).
                Unit::Aborted => return Ok(Some(Stop::Aborted)),
                Unit::Lost => return Ok(Some(Stop::Lost)),
            }
        };
        if lost.load(Ordering::Relaxed) {
            data.rollback().await.map_err(dest_err(dest))?;
            return Ok(Some(Stop::Lost));
        }
        let failed = failed_rows(&report.failed);
        let last = i + 1 == ends.len();
        // The writer's unit is a savepoint in this transaction: with rollback or stop
        // it has undone the unit's rows, and the failure is recorded in their place;
        // with skip the good rows stay, and the failing ones are recorded with them.
        let failed_whole = !failed.is_empty() && !report.committed;
        exports::guard_fence(data, opts.lease).await.map_err(dest_err(dest))?;
        let fenced = if failed_whole {
            exports::fail_within(data, claim, &failed, None).await
        } else {
            written += (report.inserted + report.updated + report.unchanged) as i64;
            after = upto;
            let new_errors = failed.len() as i64;
            match exports::add_errors(data, claim.id, &failed).await {
                Err(e) => Err(e),
                Ok(()) if last => exports::complete(data, claim, written, new_errors).await,
                Ok(()) => exports::checkpoint(data, claim, upto, written, new_errors, opts.lease).await,
            }
        }
        .map_err(dest_err(dest))?;
        if !fenced {
            data.rollback().await.map_err(dest_err(dest))?;
            return Ok(Some(Stop::Lost));
        }
        if let Err(e) = data.commit().await {
            return Ok(Some(Stop::Commit(e)));
        }
        if failed_whole {
            return Ok(None);
        }
        if !last {
            exports::unguard_fence(data).await.map_err(dest_err(dest))?;
        }
    }
    Ok(None)
}

/// The writer's failing rows as the ledger records them (by number in the row set).
fn failed_rows(failed: &[RowError]) -> Vec<FailedRow> {
    failed
        .iter()
        .map(|e| FailedRow {
            n: e.line.unwrap_or(0) as i64,
            column: e.column.clone(),
            code: e.code.clone(),
            message: e.message.clone(),
        })
        .collect()
}

/// Begins the data transaction; on SQLite, where another writer (a `create`, another
/// worker) may hold the file for longer than the busy timeout, it keeps trying for
/// as long as the lease.
async fn begin_data(data: &mut Conn, lease: Duration) -> Result<(), DbError> {
    let deadline = Instant::now() + lease;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match data.begin().await {
            Err(e) if e.is_transient() && !e.is_connection_lost() && Instant::now() < deadline => {
                tokio::time::sleep(busy_pause(attempt)).await;
            }
            other => return other,
        }
    }
}

/// The pause before trying again a ledger write that another writer keeps busy
/// (SQLite): the writer's backoff, from 50 ms up to 2 s.
fn busy_pause(attempt: u32) -> Duration {
    RetryPolicy {
        attempts: u32::MAX,
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    }
    .backoff(attempt)
}

fn claim_written(claim: &Claim) -> i64 {
    // A chunked export resumed after its committed rows: those stay counted. The
    // ledger's rows_written is the count at the last checkpoint.
    if claim.committed_upto > 0 {
        claim.written
    } else {
        0
    }
}

/// How one unit's write ended.
enum Unit {
    /// The writer returned.
    Done(Result<WriteReport, WriteError>),
    /// A level-2 shutdown interrupted it.
    Aborted,
    /// The heartbeat found the claim taken over: writing on would only hold locks the
    /// new owner waits for.
    Lost,
}

/// One write of a unit inside the open transaction, with progress forwarded, cut short
/// by a level-2 shutdown or a lost claim.
#[allow(clippy::too_many_arguments)]
async fn write_unit(
    data: &mut Conn,
    plan: &Plan,
    cfg: &WriteConfig,
    source: &ExportRows,
    claim: &Claim,
    opts: &RunOptions,
    done: &Arc<AtomicU64>,
    lost: &Arc<AtomicBool>,
    total: usize,
) -> Unit {
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let forward = {
        let done = Arc::clone(done);
        let events = opts.progress.clone();
        let id = claim.id;
        tokio::spawn(async move {
            while let Some(p) = prx.recv().await {
                done.store(p.rows, Ordering::Relaxed);
                if let Some(tx) = &events {
                    let _ = tx.send(TransferEvent::Progress {
                        id,
                        phase: p.phase.to_string(),
                        done: p.rows,
                        total: total as u64,
                    });
                }
            }
        })
    };
    let mut shutdown = opts.shutdown.clone();
    let abort = async {
        match &mut shutdown {
            Some(s) => s.reached(2).await,
            None => std::future::pending().await,
        }
    };
    let lost_claim = async {
        while !lost.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let result = tokio::select! {
        r = writer::write(data, &plan.dest, cfg, source, Some(&ptx)) => Unit::Done(r),
        _ = abort => Unit::Aborted,
        _ = lost_claim => Unit::Lost,
    };
    drop(ptx);
    let _ = forward.await;
    result
}
