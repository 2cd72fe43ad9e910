//! The export ledger of transfers: `lockgate_exports` (one row per export: status,
//! counts, the claim's holder, lease and fencing token), `lockgate_export_chunks`
//! (each export's row set: the source keys it covers, in source key order, numbered
//! 1 to its row count, packed a few thousand keys per row: see [`crate::rowset`])
//! and `lockgate_export_errors` (every failing row of a failed export, with its key).
//!
//! A new export's row set is every source key that no pending, running or completed
//! export of the transfer holds: [`held_keys`] reads those exports' chunks (never a
//! failed export's) into a membership set, and the caller packs the keys it does not
//! hold. A ledger written before row sets were packed (one row per key in
//! `lockgate_export_rows`) is packed in place when the ledger is upgraded
//! ([`pack_legacy_row_sets`]).
//!
//! An export's row set is kept whatever its outcome; with the row errors it answers
//! what the seed's per-row log did (which exports attempted a row, and how each went)
//! without a log row per successful row.
//!
//! Claims: an export is claimed by one worker at a time. The claim bumps the export's
//! *fence* (a fencing token) and sets a lease on the server's clock
//! ([`Dialect::now_ms`](crate::Dialect::now_ms)); the final commit changes the status
//! only where the fence is still the one it claimed with, so a worker whose lease ran
//! out and was taken over cannot commit. PostgreSQL and MariaDB claim with
//! `FOR UPDATE SKIP LOCKED`; SQLite claims inside `BEGIN IMMEDIATE` (one writer).
//!
//! Takeovers: the worker marks its data session with its claim ([`attach_session`]:
//! on PostgreSQL its `application_name`, on MariaDB/MySQL a named lock it holds); a
//! worker that claims an export claimed before ends every session marked with an
//! earlier claim of it ([`end_stale_session`]), so a worker that stalled mid-write
//! (stopped, swapped out) cannot keep the row locks (nor the table lock) the new one
//! needs. Its row errors are recorded in the
//! data transaction, with the status change they belong to, so no other worker can
//! claim the export in between and drop them.

use crate::conn::Conn;
use crate::error::DbError;
use crate::ledger::{int, now, text};
use crate::rowset::{self, Chunk, Membership, RowSetError};
use crate::url::Engine;
use crate::writer::{OnError, RetryPolicy};
use lockgate_core::{Row, TableName, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An export's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportStatus {
    /// Created, waiting for a worker.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Its rows and this status committed together.
    Completed,
    /// Rolled back because rows failed; its rows are free for a later export.
    Failed,
}

impl ExportStatus {
    /// The word stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Pending => "pending",
            ExportStatus::Running => "running",
            ExportStatus::Completed => "completed",
            ExportStatus::Failed => "failed",
        }
    }
}

/// One row of `lockgate_exports`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Export {
    /// Its id.
    pub id: i64,
    /// The transfer it belongs to.
    pub transfer: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// Rows in its row set.
    pub rows: i64,
    /// Rows written (committed, for a completed export).
    pub rows_written: i64,
    /// Failing rows of a failed export.
    pub error_count: i64,
    /// The last error that was not a row's (a lost lease, an unreachable source).
    pub error: Option<String>,
    /// Times it was claimed.
    pub attempts: i64,
    /// The fencing token of the latest claim.
    pub fence: i64,
    /// Who holds it while it runs.
    pub holder: Option<String>,
    /// With `--commit-every`: rows (by number in the row set) committed so far.
    pub committed_upto: i64,
    /// When it was created.
    pub created_at: String,
    /// When its latest attempt started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
}

/// One failing row of an export.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExportError {
    /// The row's number in the row set.
    pub n: i64,
    /// Its key.
    pub key: String,
    /// The column, when known.
    pub column: Option<String>,
    /// The engine's error code, or `lockgate`.
    pub code: String,
    /// The message.
    pub message: String,
}

/// One export that attempted a row, and how it went for that row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// The export.
    pub export_id: i64,
    /// Its transfer.
    pub transfer: String,
    /// The export's status.
    pub status: String,
    /// When the export was created.
    pub created_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// This row's error, when it was one of the failing rows.
    pub error: Option<String>,
}

/// A claimed export: what the worker needs to run it and to prove, at commit, that
/// the claim is still its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The export.
    pub id: i64,
    /// Its transfer.
    pub transfer: String,
    /// The fencing token this claim holds.
    pub fence: i64,
    /// Rows in the row set.
    pub rows: i64,
    /// Rows already committed by earlier chunks (`--commit-every`); 0 otherwise.
    pub committed_upto: i64,
    /// Rows written by those chunks.
    pub written: i64,
    /// The error policy the export was created with (`rollback` for exports created
    /// before Lockgate recorded one).
    pub on_error: OnError,
    /// The earlier claims of the export, when it was claimed before (its lease
    /// expired, or it was given back): their data sessions, if any is still there,
    /// are ended with [`end_stale_session`].
    pub stale: Option<StaleSession>,
}

/// The earlier claims of an export: every data session marked with a fence up to
/// `fence` is an earlier worker's, whichever worker last recorded its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleSession {
    /// The session id the ledger last recorded (`pg_backend_pid()`,
    /// `CONNECTION_ID()`), when one was; shown only: sessions are found by their mark.
    pub backend_id: Option<i64>,
    /// The fencing token of the latest earlier claim.
    pub fence: i64,
}

/// A timeout setting as the engines take it: whole milliseconds that fit an i32
/// (PostgreSQL's `lock_timeout`, `idle_in_transaction_session_timeout`; the MariaDB
/// settings take seconds, far below their maxima), at least one second. A library
/// caller may pass any `Duration`.
fn setting_ms(d: Duration) -> u64 {
    d.as_millis().clamp(1_000, i32::MAX as u128) as u64
}

/// A lease in milliseconds as the ledger adds it to the server's clock: capped so
/// that the sum cannot overflow a bigint, whatever `Duration` a library caller gives.
fn lease_ms(lease: Duration) -> i64 {
    lease.as_millis().min(1 << 52) as i64
}

const EXPORT_COLUMNS: &str = "id, transfer, status, rows_total, rows_written, error_count, error, attempts, fence, \
                              holder, committed_upto, created_at, started_at, ended_at";

fn export_from(r: &[Value]) -> Export {
    Export {
        id: int(&r[0]).unwrap_or(0),
        transfer: text(&r[1]).unwrap_or_default(),
        status: text(&r[2]).unwrap_or_default(),
        rows: int(&r[3]).unwrap_or(0),
        rows_written: int(&r[4]).unwrap_or(0),
        error_count: int(&r[5]).unwrap_or(0),
        error: text(&r[6]),
        attempts: int(&r[7]).unwrap_or(0),
        fence: int(&r[8]).unwrap_or(0),
        holder: text(&r[9]),
        committed_upto: int(&r[10]).unwrap_or(0),
        created_at: text(&r[11]).unwrap_or_default(),
        started_at: text(&r[12]),
        ended_at: text(&r[13]),
    }
}

fn p(conn: &Conn, n: usize) -> String {
    conn.dialect().param(n)
}

/// Statuses whose row sets hold their rows: a row in one of them is not free.
const HOLDING: &str = "('pending', 'running', 'completed')";

/// Starts a new pending export of `transfer` inside the caller's transaction on the
/// ledger's database; returns its id. Add its row set with [`add_chunks`] (the keys
/// [`held_keys`] does not hold), then record its size with [`set_rows_total`].
pub async fn begin_export(conn: &mut Conn, transfer: &str) -> Result<i64, DbError> {
    let sql = format!(
        "INSERT INTO lockgate_exports (transfer, status, created_at) VALUES ({}, 'pending', {})",
        p(conn, 1),
        p(conn, 2)
    );
    conn.insert_returning_id(&sql, &[Value::Text(transfer.into()), now()], "id")
        .await
}

/// Records the error policy a new export runs with (in the creating transaction).
pub async fn set_on_error(conn: &mut Conn, export_id: i64, on_error: OnError) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "UPDATE lockgate_exports SET on_error = {} WHERE id = {}",
            p(conn, 1),
            p(conn, 2)
        ),
        &[Value::Text(on_error_text(on_error).into()), Value::Int(export_id)],
    )
    .await?;
    Ok(())
}

fn on_error_text(on_error: OnError) -> &'static str {
    match on_error {
        OnError::Rollback => "rollback",
        OnError::Skip => "skip",
        OnError::Stop => "stop",
    }
}

/// The longest key text a row set holds.
pub const MAX_KEY_CHARS: usize = 500;

fn damaged(e: RowSetError) -> DbError {
    DbError::Invalid(e.to_string())
}

/// Records chunks of a new export's row set (in the creating transaction).
pub async fn add_chunks(conn: &mut Conn, export_id: i64, chunks: &[Chunk]) -> Result<(), DbError> {
    // A few rows per statement: a chunk of long text keys is a few hundred kilobytes.
    for group in chunks.chunks(16) {
        let d = conn.dialect();
        let mut params = Vec::with_capacity(group.len() * 7);
        let mut tuples = Vec::with_capacity(group.len());
        for c in group {
            let start = params.len();
            params.extend([
                Value::Int(export_id),
                Value::Int(c.first_n),
                Value::Int(c.last_n),
                c.int_range.map_or(Value::Null, |r| Value::Int(r.0)),
                c.int_range.map_or(Value::Null, |r| Value::Int(r.1)),
                Value::Int(c.texts),
                Value::Bytes(c.data.clone()),
            ]);
            let ps: Vec<String> = (start + 1..=params.len()).map(|i| d.param(i)).collect();
            tuples.push(format!("({})", ps.join(", ")));
        }
        conn.execute(
            &format!(
                "INSERT INTO lockgate_export_chunks (export_id, first_n, last_n, int_lo, int_hi, texts, packed) VALUES {}",
                tuples.join(", ")
            ),
            &params,
        )
        .await?;
    }
    Ok(())
}

/// Records how many rows a new export's row set holds (in the creating transaction).
pub async fn set_rows_total(conn: &mut Conn, export_id: i64, rows: i64) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "UPDATE lockgate_exports SET rows_total = {} WHERE id = {}",
            p(conn, 1),
            p(conn, 2)
        ),
        &[Value::Int(rows), Value::Int(export_id)],
    )
    .await?;
    Ok(())
}

/// The keys that pending, running and completed exports of `transfer` hold (and the
/// rows that chunked exports committed before they failed), less the rows that
/// failed in them (`--on-error skip` completes an export without its failing rows:
/// those are free for a later export). Each recorded key text goes through
/// `normalize` (a fixed-width key recorded with its padding by an earlier Lockgate
/// is held as the key reads now).
///
/// Only the chunks of those exports are read: a failed export's row set is never
/// looked at, so the cost follows the keys held, not the history of attempts. A
/// plain read, taking no lock: `create` runs it under its job lock (no export can
/// appear meanwhile, and a worker can only free rows, never take free ones), and the
/// read-only count runs it as it is.
pub async fn held_keys(
    conn: &mut Conn,
    transfer: &str,
    normalize: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Membership, DbError> {
    let holders = conn
        .query(
            &format!(
                "SELECT id, CASE WHEN status IN {HOLDING} THEN NULL ELSE committed_upto END FROM lockgate_exports \
                 WHERE transfer = {} AND (status IN {HOLDING} OR committed_upto > 0) ORDER BY id",
                p(conn, 1)
            ),
            &[Value::Text(transfer.into())],
            None,
        )
        .await?;
    let mut held = Membership::new();
    for h in &holders {
        let id = int(&h[0]).unwrap_or(0);
        let upto = int(&h[1]).unwrap_or(i64::MAX);
        let free = failed_rows(conn, id).await?;
        let mut after = 0i64;
        loop {
            // A page of chunks at a time, so that a row set of long text keys is
            // never all in memory at once.
            let page = conn
                .query(
                    &format!(
                        "SELECT first_n, packed FROM lockgate_export_chunks WHERE export_id = {} AND first_n > {} \
                         AND first_n <= {} ORDER BY first_n LIMIT 64",
                        p(conn, 1),
                        p(conn, 2),
                        p(conn, 3)
                    ),
                    &[Value::Int(id), Value::Int(after), Value::Int(upto)],
                    None,
                )
                .await?;
            for r in &page {
                let first_n = int(&r[0]).unwrap_or(0);
                held.add_chunk(first_n, bytes(&r[1]), upto, &free, normalize)
                    .map_err(|e| DbError::Invalid(format!("export {id}: {e}")))?;
                after = first_n;
            }
            if page.len() < 64 {
                break;
            }
        }
    }
    held.seal();
    Ok(held)
}

/// The row numbers, sorted, of an export's failing rows.
async fn failed_rows(conn: &mut Conn, export_id: i64) -> Result<Vec<i64>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT DISTINCT n FROM lockgate_export_errors WHERE export_id = {} ORDER BY n",
                p(conn, 1)
            ),
            &[Value::Int(export_id)],
            None,
        )
        .await?;
    Ok(rows.iter().filter_map(|r| int(&r[0])).collect())
}

fn bytes(v: &Value) -> &[u8] {
    match v {
        Value::Bytes(b) => b,
        Value::Text(t) => t.as_bytes(),
        _ => &[],
    }
}

/// Claims the oldest claimable export of `transfers` (pending, or running with an
/// expired lease) for `holder`, in a transaction of its own on `conn`. `None` when
/// there is none (or, on SQLite, when another worker holds the database).
pub async fn claim(
    conn: &mut Conn,
    transfers: &[String],
    holder: &str,
    lease: Duration,
) -> Result<Option<Claim>, DbError> {
    // Two claimers can still collide (a deadlock between their index updates on
    // MariaDB, SQLITE_BUSY): nothing was claimed, so the claim is simply tried again.
    let retry = RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(20),
        max: Duration::from_secs(1),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match claim_once(conn, transfers, holder, lease).await {
            Err(e) if e.is_transient() && attempt < retry.attempts => tokio::time::sleep(retry.backoff(attempt)).await,
            other => return other,
        }
    }
}

async fn claim_once(
    conn: &mut Conn,
    transfers: &[String],
    holder: &str,
    lease: Duration,
) -> Result<Option<Claim>, DbError> {
    if transfers.is_empty() {
        return Ok(None);
    }
    let d = conn.dialect();
    let names: Vec<String> = (1..=transfers.len()).map(|i| d.param(i)).collect();
    let lock = match conn.engine() {
        Engine::Sqlite => "",
        _ => " FOR UPDATE SKIP LOCKED",
    };
    let sql = format!(
        "SELECT id, transfer, fence, rows_total, committed_upto, rows_written, backend_id, on_error \
         FROM lockgate_exports \
         WHERE transfer IN ({}) AND (status = 'pending' OR (status = 'running' AND lease_until_ms < {})) \
         ORDER BY id LIMIT 1{lock}",
        names.join(", "),
        d.now_ms()
    );
    let params: Vec<Value> = transfers.iter().map(|t| Value::Text(t.clone())).collect();
    if conn.engine() == Engine::Mysql {
        // Under REPEATABLE READ the locking read would also lock the gaps around the
        // rows it scans, so a second claimer could find nothing while work waits.
        conn.batch("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
    }
    match conn.begin().await {
        Ok(()) => {}
        Err(e) if conn.engine() == Engine::Sqlite && e.is_transient() => return Ok(None),
        Err(e) => return Err(e),
    }
    let result = async {
        if conn.engine() == Engine::Postgres {
            // A claimer stopped inside this transaction would keep the export's row
            // locked, and every other claimer skips locked rows: the server ends such
            // a session after a lease.
            conn.batch(&format!(
                "SET LOCAL idle_in_transaction_session_timeout = {}",
                setting_ms(lease)
            ))
            .await?;
        }
        let rows = conn.query(&sql, &params, None).await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let fence = int(&r[2]).unwrap_or(0);
        let claim = Claim {
            id: int(&r[0]).unwrap_or(0),
            transfer: text(&r[1]).unwrap_or_default(),
            fence: fence + 1,
            rows: int(&r[3]).unwrap_or(0),
            committed_upto: int(&r[4]).unwrap_or(0),
            written: int(&r[5]).unwrap_or(0),
            on_error: text(&r[7]).and_then(|t| t.parse().ok()).unwrap_or(OnError::Rollback),
            // Claimed before: an earlier worker's session may still be there (its
            // claim expired, or it gave the export back without its session ending).
            stale: (fence > 0).then(|| StaleSession {
                backend_id: int(&r[6]),
                fence,
            }),
        };
        let update = format!(
            "UPDATE lockgate_exports SET status = 'running', fence = {}, holder = {}, attempts = attempts + 1, \
             lease_until_ms = {} + {}, started_at = {}, error = NULL, backend_id = NULL WHERE id = {}",
            d.param(1),
            d.param(2),
            d.now_ms(),
            d.param(3),
            d.param(4),
            d.param(5)
        );
        conn.execute(
            &update,
            &[
                Value::Int(claim.fence),
                Value::Text(holder.into()),
                Value::Int(lease_ms(lease)),
                now(),
                Value::Int(claim.id),
            ],
        )
        .await?;
        Ok(Some(claim))
    }
    .await;
    match result {
        Ok(c) => {
            conn.commit().await?;
            Ok(c)
        }
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

/// How many exports of `transfer` a worker could claim now (pending, or running
/// with an expired lease).
pub async fn claimable(conn: &mut Conn, transfer: &str) -> Result<i64, DbError> {
    let sql = format!(
        "SELECT count(*) FROM lockgate_exports WHERE transfer = {} \
         AND (status = 'pending' OR (status = 'running' AND lease_until_ms < {}))",
        p(conn, 1),
        conn.dialect().now_ms()
    );
    let rows = conn.query(&sql, &[Value::Text(transfer.into())], None).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0))
}

/// Extends a claim's lease; `false` when the claim is no longer this worker's.
/// (Progress goes to the run, not here: `rows_written` is what committed.)
pub async fn renew(conn: &mut Conn, claim: &Claim, lease: Duration) -> Result<bool, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "UPDATE lockgate_exports SET lease_until_ms = {} + {} WHERE id = {} AND fence = {} AND status = 'running'",
        d.now_ms(),
        d.param(1),
        d.param(2),
        d.param(3)
    );
    let n = conn
        .execute(
            &sql,
            &[
                Value::Int(lease_ms(lease)),
                Value::Int(claim.id),
                Value::Int(claim.fence),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Marks the claimed export completed, on the data connection inside the data
/// transaction, so that the rows and the status commit together; `new_errors` rows
/// skipped (`--on-error skip`) in this transaction were recorded with
/// [`add_errors`]. `false` when the fence moved (another worker took over): the
/// caller must roll back.
pub async fn complete(conn: &mut Conn, claim: &Claim, written: i64, new_errors: i64) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE lockgate_exports SET status = 'completed', rows_written = {}, error_count = error_count + {}, \
         ended_at = {}, holder = NULL, lease_until_ms = NULL, backend_id = NULL, error = NULL \
         WHERE id = {} AND fence = {} AND status = 'running'",
        p(conn, 1),
        p(conn, 2),
        p(conn, 3),
        p(conn, 4),
        p(conn, 5)
    );
    let n = conn
        .execute(
            &sql,
            &[
                Value::Int(written),
                Value::Int(new_errors),
                now(),
                Value::Int(claim.id),
                Value::Int(claim.fence),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Records a committed chunk (`--commit-every`), inside that chunk's transaction,
/// and extends the lease (on SQLite, where no heartbeat runs, this is what keeps a
/// long chunked export its worker's). `false` when the fence moved.
pub async fn checkpoint(
    conn: &mut Conn,
    claim: &Claim,
    upto: i64,
    written: i64,
    new_errors: i64,
    lease: Duration,
) -> Result<bool, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "UPDATE lockgate_exports SET committed_upto = {}, rows_written = {}, error_count = error_count + {}, \
         lease_until_ms = {} + {} WHERE id = {} AND fence = {} AND status = 'running'",
        d.param(1),
        d.param(2),
        d.param(3),
        d.now_ms(),
        d.param(4),
        d.param(5),
        d.param(6)
    );
    let n = conn
        .execute(
            &sql,
            &[
                Value::Int(upto),
                Value::Int(written),
                Value::Int(new_errors),
                Value::Int(lease_ms(lease)),
                Value::Int(claim.id),
                Value::Int(claim.fence),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// One failing row to record: its number in the row set, column, code and message.
#[derive(Clone, Debug)]
pub struct FailedRow {
    /// Its number in the row set.
    pub n: i64,
    /// The column, when known.
    pub column: Option<String>,
    /// The engine's code or `lockgate`.
    pub code: String,
    /// The message.
    pub message: String,
}

/// Marks the claimed export failed with its row errors (and `error`, a failure of
/// the export as a whole, such as a commit the engine refused) inside the caller's
/// transaction: the data transaction, after its rows were rolled back to the
/// writer's savepoint, so that the errors are recorded before anyone can claim the
/// export again. `false` when the fence moved or the export is no longer running:
/// then nothing is recorded, the export is another worker's.
pub async fn fail_within(
    conn: &mut Conn,
    claim: &Claim,
    errors: &[FailedRow],
    error: Option<&str>,
) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE lockgate_exports SET status = 'failed', error_count = error_count + {}, ended_at = {}, holder = NULL, \
         lease_until_ms = NULL, backend_id = NULL, error = {} WHERE id = {} AND fence = {} AND status = 'running'",
        p(conn, 1),
        p(conn, 2),
        p(conn, 3),
        p(conn, 4),
        p(conn, 5)
    );
    let n = conn
        .execute(
            &sql,
            &[
                Value::Int(errors.len() as i64),
                now(),
                error.map_or(Value::Null, |e| Value::Text(e.into())),
                Value::Int(claim.id),
                Value::Int(claim.fence),
            ],
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    add_errors(conn, claim.id, errors).await?;
    Ok(true)
}

/// Records failing rows of an export, in the caller's transaction (with the status
/// change or checkpoint they belong to), each with its key from the row set. Rows
/// already recorded stay: a chunked export adds each chunk's.
pub async fn add_errors(conn: &mut Conn, export_id: i64, errors: &[FailedRow]) -> Result<(), DbError> {
    let columns = Arc::new(
        ["export_id", "n", "row_key", "column_name", "code", "message"]
            .map(String::from)
            .to_vec(),
    );
    for chunk in errors.chunks(5_000) {
        let mut ns: Vec<i64> = chunk.iter().map(|e| e.n).collect();
        ns.sort_unstable();
        ns.dedup();
        let keys = keys_of(conn, export_id, &ns).await?;
        let rows: Vec<Row> = chunk
            .iter()
            .map(|e| Row {
                line: e.n as u64,
                number: 0,
                values: vec![
                    Value::Int(export_id),
                    Value::Int(e.n),
                    keys.get(&e.n).map_or(Value::Null, |k| Value::Text(k.clone())),
                    e.column.clone().map_or(Value::Null, Value::Text),
                    Value::Text(e.code.chars().take(50).collect()),
                    Value::Text(e.message.clone()),
                ],
            })
            .collect();
        let outcome = conn
            .bulk_insert(&TableName::new("lockgate_export_errors"), &columns, &rows, None)
            .await?;
        if let Some((_, e)) = outcome.row_errors.into_iter().next() {
            return Err(DbError::engine("recording an export's row errors", e));
        }
    }
    Ok(())
}

/// The keys of rows `ns` (sorted) of an export's row set: the chunks that cover them
/// are decoded, a page of chunks at a time.
async fn keys_of(
    conn: &mut Conn,
    export_id: i64,
    ns: &[i64],
) -> Result<std::collections::HashMap<i64, String>, DbError> {
    let mut out = std::collections::HashMap::with_capacity(ns.len());
    let (Some(&first), Some(&last)) = (ns.first(), ns.last()) else {
        return Ok(out);
    };
    let sql = format!(
        "SELECT first_n, last_n, packed FROM lockgate_export_chunks WHERE export_id = {} AND last_n >= {} \
         AND first_n <= {} ORDER BY first_n LIMIT 64",
        p(conn, 1),
        p(conn, 2),
        p(conn, 3)
    );
    let mut from = first;
    loop {
        let page = conn
            .query(&sql, &[Value::Int(export_id), Value::Int(from), Value::Int(last)], None)
            .await?;
        for r in &page {
            let (first_n, last_n) = (int(&r[0]).unwrap_or(0), int(&r[1]).unwrap_or(0));
            let wanted = &ns[ns.partition_point(|n| *n < first_n)..ns.partition_point(|n| *n <= last_n)];
            if !wanted.is_empty() {
                for (n, key) in
                    rowset::chunk_keys(first_n, last_n, bytes(&r[2]), first_n - 1, last_n).map_err(damaged)?
                {
                    if wanted.binary_search(&n).is_ok() {
                        out.insert(n, key);
                    }
                }
            }
            from = last_n + 1;
        }
        if page.len() < 64 {
            return Ok(out);
        }
    }
}

/// [`fail_within`] in a transaction of its own (on the ledger's connection, after
/// the data transaction ended without a verdict of its own: a commit the engine
/// refused).
pub async fn fail(conn: &mut Conn, claim: &Claim, errors: &[FailedRow], error: Option<&str>) -> Result<bool, DbError> {
    conn.begin().await?;
    match fail_within(conn, claim, errors, error).await {
        Ok(true) => {
            conn.commit().await?;
            Ok(true)
        }
        Ok(false) => {
            conn.rollback().await?;
            Ok(false)
        }
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

/// Gives a claimed export back: pending again, with `error` saying why (a source
/// that went away, a shutdown). `false` when the fence moved.
pub async fn release(conn: &mut Conn, claim: &Claim, error: &str) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE lockgate_exports SET status = 'pending', holder = NULL, lease_until_ms = NULL, backend_id = NULL, \
         error = {} WHERE id = {} AND fence = {} AND status = 'running'",
        p(conn, 1),
        p(conn, 2),
        p(conn, 3)
    );
    let n = conn
        .execute(
            &sql,
            &[Value::Text(error.into()), Value::Int(claim.id), Value::Int(claim.fence)],
        )
        .await?;
    Ok(n == 1)
}

/// The `application_name` of the data session of claim `fence` of export `id`
/// (PostgreSQL), so that a takeover ends that session and no other, even if the
/// server has given its process id to a new session since.
fn session_tag(id: i64, fence: i64) -> String {
    format!("lockgate export {id}/{fence}")
}

/// `ID/FENCE`: the claim a MariaDB/MySQL data session's lock names.
fn claim_mark(id: i64, fence: i64) -> String {
    format!("{id}/{fence}")
}

/// The `GET_LOCK` name a MariaDB/MySQL data session holds for the claim `mark`
/// (an SQL expression giving `ID/FENCE`): names are server-wide and at most 64
/// characters, so the database is hashed (as the run locks of `ledger` do).
fn mysql_session_lock(mark: &str) -> String {
    format!("CONCAT('lockgate-export:', LEFT(SHA1(DATABASE()), 16), ':', {mark})")
}

/// How many earlier claims of an export a MariaDB/MySQL takeover looks for sessions
/// of (one `IS_USED_LOCK` each): older claims' sessions have had that many leases
/// and takeovers to end.
const EARLIER_CLAIMS: i64 = 64;

/// Marks `data` with the claim (PostgreSQL: its `application_name`; MariaDB/MySQL:
/// a named lock it holds, [`mysql_session_lock`]) and records its server-side id, on the data connection before its transaction
/// begins: a worker that takes the export over after this claim expires ends that
/// session, and with it the row locks it holds. `false` when the claim is no longer
/// this worker's. Nothing to do on SQLite, where a writer holds the whole file and
/// nobody can take over while it writes.
pub async fn attach_session(data: &mut Conn, claim: &Claim) -> Result<bool, DbError> {
    let own_id = match data.engine() {
        Engine::Sqlite => return Ok(true),
        Engine::Postgres => {
            data.query(
                "SELECT set_config('application_name', $1, false)",
                &[Value::Text(session_tag(claim.id, claim.fence))],
                None,
            )
            .await?;
            "pg_backend_pid()"
        }
        Engine::Mysql => {
            // Held until the session ends: a takeover finds the session by it, so a
            // connection id the server has given to someone else since a restart is
            // never the one ended.
            let got = data
                .query(
                    &format!("SELECT GET_LOCK({}, 0)", mysql_session_lock("?")),
                    &[Value::Text(claim_mark(claim.id, claim.fence))],
                    None,
                )
                .await?;
            if got.first().and_then(|r| r.first()).and_then(int) != Some(1) {
                return Err(DbError::Invalid(format!(
                    "export {}: the lock marking claim {} is held by another session; run the export again",
                    claim.id, claim.fence
                )));
            }
            "CONNECTION_ID()"
        }
    };
    let sql = format!(
        "UPDATE lockgate_exports SET backend_id = {own_id} WHERE id = {} AND fence = {} AND status = 'running'",
        p(data, 1),
        p(data, 2)
    );
    let n = data
        .execute(&sql, &[Value::Int(claim.id), Value::Int(claim.fence)])
        .await?;
    Ok(n == 1)
}

/// What [`end_stale_session`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleEnd {
    /// The session was there and the server ended it (its transaction rolled back).
    Ended,
    /// The session was already gone (its worker died, or ended its transaction).
    Gone,
    /// The server was told to end it, but it was still there (rolling back) when
    /// the wait ran out.
    StillClosing,
}

/// Ends the data sessions of earlier claims of the export `claim` took over
/// (`claim.stale`), and waits up to `wait` until they are gone, so that their
/// uncommitted rows and their locks (row locks, and a key mode's table lock, which
/// the data session holds) are too (a large transaction takes a while to roll back
/// on MariaDB; the new holder's lock waits cover the rest). A worker whose session
/// was ended, if it wakes, finds its session closed and its fence moved: it commits
/// nothing.
///
/// Sessions are found by the mark [`attach_session`] gave them, never by a bare
/// id the server may have given to another session since (a pid the OS reused, a
/// connection id counted again from 1 after a server restart): PostgreSQL: the
/// sessions on this database whose `application_name` is an earlier claim's tag;
/// MariaDB/MySQL: the holders of the earlier claims' locks (`IS_USED_LOCK`, which
/// needs no privilege), each then ended with `KILL CONNECTION`. Ending another user's
/// session needs the right to (the same database user, or `pg_signal_backend`,
/// `CONNECTION ADMIN`/`SUPER`); without it the engine's error is returned, never
/// [`StaleEnd::Gone`], and the caller's lock waits are bounded instead.
pub async fn end_stale_session(conn: &mut Conn, claim: &Claim, wait: Duration) -> Result<StaleEnd, DbError> {
    let Some(stale) = &claim.stale else {
        return Ok(StaleEnd::Gone);
    };
    let found = match stale_sessions(conn, claim.id, stale.fence).await? {
        Some(ids) if !ids.is_empty() => ids,
        _ => return Ok(StaleEnd::Gone),
    };
    match conn.engine() {
        Engine::Postgres => {
            for pid in &found {
                conn.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND datname = current_database() \
                     AND application_name LIKE $2 AND substring(application_name from '/([0-9]+)$')::bigint <= $3",
                    &[
                        Value::Int(*pid),
                        Value::Text(format!("lockgate export {}/%", claim.id)),
                        Value::Int(stale.fence),
                    ],
                    None,
                )
                .await?;
            }
        }
        _ => {
            for id in &found {
                // The id was read from the lock's holder a moment ago (an integer
                // from the server), so it is written as one: not every server
                // prepares KILL.
                match conn.execute(&format!("KILL CONNECTION {id}"), &[]).await {
                    // Unknown thread: it ended meanwhile.
                    Err(e) if e.engine_error().is_some_and(|x| x.code == "1094") => {}
                    other => {
                        other?;
                    }
                }
            }
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        if stale_sessions(conn, claim.id, stale.fence)
            .await?
            .is_none_or(|ids| ids.is_empty())
        {
            return Ok(StaleEnd::Ended);
        }
        if Instant::now() >= deadline {
            return Ok(StaleEnd::StillClosing);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server-side ids of the sessions marked with a claim of export `id` up to
/// `fence` (see [`end_stale_session`]); `None` on SQLite.
async fn stale_sessions(conn: &mut Conn, id: i64, fence: i64) -> Result<Option<Vec<i64>>, DbError> {
    let rows = match conn.engine() {
        Engine::Sqlite => return Ok(None),
        Engine::Postgres => {
            conn.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND application_name LIKE $1 AND substring(application_name from '/([0-9]+)$')::bigint <= $2",
                &[Value::Text(format!("lockgate export {id}/%")), Value::Int(fence)],
                None,
            )
            .await?
        }
        Engine::Mysql => {
            let fences: Vec<i64> = ((fence - EARLIER_CLAIMS + 1).max(1)..=fence).collect();
            if fences.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let holders: Vec<String> = fences
                .iter()
                .map(|_| format!("IS_USED_LOCK({})", mysql_session_lock("?")))
                .collect();
            let params: Vec<Value> = fences.iter().map(|f| Value::Text(claim_mark(id, *f))).collect();
            let rows = conn
                .query(&format!("SELECT {}", holders.join(", ")), &params, None)
                .await?;
            let own = conn.query("SELECT CONNECTION_ID()", &[], None).await?;
            let own = own.first().and_then(|r| r.first()).and_then(int);
            let ids = rows
                .first()
                .map(|r| r.iter().filter_map(int).filter(|i| Some(*i) != own).collect())
                .unwrap_or_default();
            return Ok(Some(ids));
        }
    };
    Ok(Some(rows.iter().filter_map(|r| r.first().and_then(int)).collect()))
}

/// Bounds every lock wait of the data session by `wait`: a lock that a stalled
/// session holds longer fails the statement (a transient error: the unit is retried,
/// then the export given back) instead of waiting for ever.
pub async fn bound_lock_waits(data: &mut Conn, wait: Duration) -> Result<(), DbError> {
    match data.engine() {
        Engine::Postgres => data.batch(&format!("SET lock_timeout = {}", setting_ms(wait))).await,
        Engine::Mysql => {
            data.batch(&format!(
                "SET SESSION innodb_lock_wait_timeout = {}",
                setting_ms(wait) / 1_000
            ))
            .await
        }
        Engine::Sqlite => Ok(()),
    }
}

/// From the fenced status change until the commit, the export's row is locked in
/// the data transaction, and claimers skip locked rows: a worker stopped in that
/// window would keep the export from everyone. So just before that change the
/// server is told to end the session if it then waits `lease` for its next
/// statement (PostgreSQL: `idle_in_transaction_session_timeout`, for the rest of
/// the transaction; MariaDB/MySQL: `wait_timeout`, undone by [`unguard_fence`]).
/// The session is not bounded so while it writes: a slow source page is no stall.
pub async fn guard_fence(data: &mut Conn, lease: Duration) -> Result<(), DbError> {
    match data.engine() {
        Engine::Postgres => {
            data.batch(&format!(
                "SET LOCAL idle_in_transaction_session_timeout = {}",
                setting_ms(lease)
            ))
            .await
        }
        Engine::Mysql => {
            data.batch(&format!("SET SESSION wait_timeout = {}", setting_ms(lease) / 1_000))
                .await
        }
        Engine::Sqlite => Ok(()),
    }
}

/// Undoes [`guard_fence`] after the commit, before the next chunk's transaction.
pub async fn unguard_fence(data: &mut Conn) -> Result<(), DbError> {
    match data.engine() {
        Engine::Mysql => data.batch("SET SESSION wait_timeout = @@GLOBAL.wait_timeout").await,
        _ => Ok(()),
    }
}

/// Puts running exports whose lease expired back to pending (their worker died or
/// stalled); returns how many. Claims do this too, one export at a time; listing
/// calls it so that what is shown is true.
pub async fn reap_expired(conn: &mut Conn) -> Result<u64, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "UPDATE lockgate_exports SET status = 'pending', holder = NULL, \
         error = 'its worker stopped renewing the lease (it died or stalled); the export was put back to pending' \
         WHERE status = 'running' AND lease_until_ms < {}",
        d.now_ms()
    );
    match conn.execute(&sql, &[]).await {
        Ok(n) => Ok(n),
        // A worker holds the SQLite file, or the row is locked: the next look reaps it.
        Err(e) if e.is_transient() => Ok(0),
        Err(e) => Err(e),
    }
}

/// One page of an export's row set after row number `after`, in row-set order: at
/// most `limit` keys, fewer only at the end.
pub async fn row_set_page(
    conn: &mut Conn,
    export_id: i64,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, String)>, DbError> {
    let upto = after.saturating_add(limit as i64);
    // A chunk holds at most CHUNK_KEYS rows, so one that reaches past `after` starts
    // after `after - CHUNK_KEYS`: the bound lets the primary key start there.
    let sql = format!(
        "SELECT first_n, last_n, packed FROM lockgate_export_chunks WHERE export_id = {} AND first_n > {} \
         AND last_n > {} AND first_n <= {} ORDER BY first_n",
        p(conn, 1),
        p(conn, 2),
        p(conn, 3),
        p(conn, 4)
    );
    let rows = conn
        .query(
            &sql,
            &[
                Value::Int(export_id),
                Value::Int(after.saturating_sub(rowset::CHUNK_KEYS as i64)),
                Value::Int(after),
                Value::Int(upto),
            ],
            None,
        )
        .await?;
    let mut out: Vec<(i64, String)> = Vec::with_capacity(limit);
    for r in &rows {
        let (first_n, last_n) = (int(&r[0]).unwrap_or(0), int(&r[1]).unwrap_or(0));
        // Chunks follow each other without a gap: a missing one is damage, never a
        // row set that simply ends early.
        let expected = out.last().map_or(after + 1, |(n, _)| n + 1);
        if first_n.max(after + 1) != expected {
            return Err(DbError::Invalid(format!(
                "export {export_id}: its row set has no chunk for row {expected}; the ledger was changed by hand \
                 or damaged, and the export cannot run"
            )));
        }
        out.extend(rowset::chunk_keys(first_n, last_n, bytes(&r[2]), after, upto).map_err(damaged)?);
    }
    if out.len() < limit {
        // A short page ends the row set: no chunk may come after it.
        let next = out.last().map_or(after + 1, |(n, _)| n + 1);
        let later = conn
            .query(
                &format!(
                    "SELECT first_n FROM lockgate_export_chunks WHERE export_id = {} AND first_n >= {} ORDER BY first_n LIMIT 1",
                    p(conn, 1),
                    p(conn, 2)
                ),
                &[Value::Int(export_id), Value::Int(next)],
                None,
            )
            .await?;
        if !later.is_empty() {
            return Err(DbError::Invalid(format!(
                "export {export_id}: its row set has no chunk for row {next}; the ledger was changed by hand \
                 or damaged, and the export cannot run"
            )));
        }
    }
    Ok(out)
}

/// Where the chunks of `every` rows after row `after` end (`--commit-every`), for a
/// row set of `rows` rows (numbered 1 to `rows`): every `every`-th row, and the last.
pub fn chunk_ends(rows: i64, after: i64, every: u64) -> Vec<i64> {
    let every = every.max(1) as i64;
    let mut ends: Vec<i64> = (1..)
        .map(|i| after.saturating_add(every.saturating_mul(i)))
        .take_while(|e| *e < rows)
        .collect();
    if rows > after {
        ends.push(rows);
    }
    ends
}

/// Exports, newest first; of one transfer when given.
pub async fn list(conn: &mut Conn, transfer: Option<&str>, limit: u32) -> Result<Vec<Export>, DbError> {
    let (cond, params) = match transfer {
        Some(t) => (format!("WHERE transfer = {}", p(conn, 1)), vec![Value::Text(t.into())]),
        None => (String::new(), Vec::new()),
    };
    let sql = format!("SELECT {EXPORT_COLUMNS} FROM lockgate_exports {cond} ORDER BY id DESC LIMIT {limit}");
    let rows = conn.query(&sql, &params, None).await?;
    Ok(rows.iter().map(|r| export_from(r)).collect())
}

/// One export.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Export>, DbError> {
    let sql = format!(
        "SELECT {EXPORT_COLUMNS} FROM lockgate_exports WHERE id = {}",
        p(conn, 1)
    );
    let rows = conn.query(&sql, &[Value::Int(id)], None).await?;
    Ok(rows.first().map(|r| export_from(r)))
}

/// Every failing row of an export, in row-set order.
pub async fn errors(conn: &mut Conn, id: i64) -> Result<Vec<ExportError>, DbError> {
    let sql = format!(
        "SELECT n, row_key, column_name, code, message FROM lockgate_export_errors WHERE export_id = {} ORDER BY n, id",
        p(conn, 1)
    );
    let rows = conn.query(&sql, &[Value::Int(id)], None).await?;
    Ok(rows
        .iter()
        .map(|r| ExportError {
            n: int(&r[0]).unwrap_or(0),
            key: text(&r[1]).unwrap_or_default(),
            column: text(&r[2]),
            code: text(&r[3]).unwrap_or_default(),
            message: text(&r[4]).unwrap_or_default(),
        })
        .collect())
}

/// Every export that attempted the row with key `key` (of `transfer`, when given),
/// oldest first, with that row's error where it had one. An integer key reads only
/// the chunks whose integer range covers it; another key reads the chunks holding
/// text keys, a page at a time.
pub async fn history(conn: &mut Conn, key: &str, transfer: Option<&str>) -> Result<Vec<Attempt>, DbError> {
    let d = conn.dialect();
    let mut params = Vec::new();
    let mut cond = match rowset::canonical_int(key) {
        Some(v) => {
            params.extend([Value::Int(v), Value::Int(v)]);
            format!("c.int_lo <= {} AND c.int_hi >= {}", d.param(1), d.param(2))
        }
        None => "c.texts > 0".to_string(),
    };
    if let Some(t) = transfer {
        params.push(Value::Text(t.into()));
        cond.push_str(&format!(" AND e.transfer = {}", d.param(params.len())));
    }
    // Each placeholder once: MariaDB's `?` are positional.
    let (a, a2, b) = (
        d.param(params.len() + 1),
        d.param(params.len() + 2),
        d.param(params.len() + 3),
    );
    let sql = format!(
        "SELECT c.export_id, c.first_n, c.packed FROM lockgate_export_chunks c JOIN lockgate_exports e ON e.id = c.export_id \
         WHERE {cond} AND (c.export_id > {a} OR (c.export_id = {a2} AND c.first_n > {b})) \
         ORDER BY c.export_id, c.first_n LIMIT 64"
    );
    let mut found: Vec<(i64, i64)> = Vec::new();
    let mut after = (0i64, 0i64);
    loop {
        let mut ps = params.clone();
        ps.extend([Value::Int(after.0), Value::Int(after.0), Value::Int(after.1)]);
        let page = conn.query(&sql, &ps, None).await?;
        for r in &page {
            let (id, first_n) = (int(&r[0]).unwrap_or(0), int(&r[1]).unwrap_or(0));
            after = (id, first_n);
            if found.last().is_some_and(|f| f.0 == id) {
                continue;
            }
            if let Some(n) = rowset::find_key(first_n, bytes(&r[2]), key).map_err(damaged)? {
                found.push((id, n));
            }
        }
        if page.len() < 64 {
            break;
        }
    }
    let mut out: Vec<Attempt> = Vec::new();
    for (id, n) in found {
        let rows = conn
            .query(
                &format!(
                    "SELECT e.id, e.transfer, e.status, e.created_at, e.ended_at, x.message, x.column_name \
                     FROM lockgate_exports e LEFT JOIN lockgate_export_errors x ON x.export_id = e.id AND x.n = {} \
                     WHERE e.id = {} ORDER BY x.id",
                    p(conn, 1),
                    p(conn, 2)
                ),
                &[Value::Int(n), Value::Int(id)],
                None,
            )
            .await?;
        let mut attempt: Option<Attempt> = None;
        for r in &rows {
            let error = text(&r[5]).map(|m| match text(&r[6]) {
                Some(c) => format!("{c}: {m}"),
                None => m,
            });
            match &mut attempt {
                // A second error of the same row: keep both.
                Some(a) => {
                    if let (Some(a), Some(b)) = (&mut a.error, error) {
                        a.push_str("; ");
                        a.push_str(&b);
                    }
                }
                None => {
                    attempt = Some(Attempt {
                        export_id: id,
                        transfer: text(&r[1]).unwrap_or_default(),
                        status: text(&r[2]).unwrap_or_default(),
                        created_at: text(&r[3]).unwrap_or_default(),
                        ended_at: text(&r[4]),
                        error,
                    })
                }
            }
        }
        out.extend(attempt);
    }
    Ok(out)
}

/// Packs the row sets of a ledger written before they were packed (schema version 7
/// and earlier: one `lockgate_export_rows` row per key, numbered with gaps where
/// `create` removed held keys) into chunks, export by export, then drops that table.
/// Rows are numbered again without the gaps, and what refers to row numbers follows:
/// each error's `n` (and its key, which errors now carry) and a chunked export's
/// `committed_upto`. With `own_transactions` each export is packed in a transaction
/// of its own, so an upgrade cut short resumes with the exports not yet packed; the
/// caller's transaction does (SQLite's upgrade runs in one).
pub(crate) async fn pack_legacy_row_sets(conn: &mut Conn, own_transactions: bool) -> Result<(), DbError> {
    if conn.lookup_table("lockgate_export_rows").await?.is_none() {
        return Ok(());
    }
    let mut last = i64::MIN;
    loop {
        // Past the exports packed already: their deleted rows are not walked again.
        let next = conn
            .query(
                &format!(
                    "SELECT min(export_id) FROM lockgate_export_rows WHERE export_id > {}",
                    p(conn, 1)
                ),
                &[Value::Int(last)],
                None,
            )
            .await?;
        let Some(id) = next.first().and_then(|r| int(&r[0])) else {
            break;
        };
        last = id;
        if own_transactions {
            conn.begin().await?;
        }
        let result = pack_legacy_export(conn, id).await;
        match (result, own_transactions) {
            (Ok(()), true) => conn.commit().await?,
            (Ok(()), false) => {}
            (Err(e), true) => {
                let _ = conn.rollback().await;
                return Err(e);
            }
            (Err(e), false) => return Err(e),
        }
    }
    conn.batch("DROP TABLE lockgate_export_rows").await
}

async fn pack_legacy_export(conn: &mut Conn, id: i64) -> Result<(), DbError> {
    let committed = conn
        .query(
            &format!("SELECT committed_upto FROM lockgate_exports WHERE id = {}", p(conn, 1)),
            &[Value::Int(id)],
            None,
        )
        .await?;
    let committed_upto = committed.first().and_then(|r| int(&r[0])).unwrap_or(0);
    let error_ns = failed_rows(conn, id).await?;
    let mut builder = rowset::ChunkBuilder::new(1);
    let mut chunks = Vec::new();
    // (old number, new number, key) of the rows that have errors.
    let mut renumbered: Vec<(i64, i64, String)> = Vec::new();
    let mut new_committed = 0i64;
    let mut after = 0i64;
    loop {
        let page = conn
            .query(
                &format!(
                    "SELECT n, row_key FROM lockgate_export_rows WHERE export_id = {} AND n > {} ORDER BY n LIMIT 10000",
                    p(conn, 1),
                    p(conn, 2)
                ),
                &[Value::Int(id), Value::Int(after)],
                None,
            )
            .await?;
        for r in &page {
            let (old, key) = (int(&r[0]).unwrap_or(0), text(&r[1]).unwrap_or_default());
            let new = builder.next_n();
            if old <= committed_upto {
                new_committed = new;
            }
            if error_ns.binary_search(&old).is_ok() {
                renumbered.push((old, new, key.clone()));
            }
            chunks.extend(builder.push(&key));
            after = old;
        }
        if chunks.len() >= 64 {
            add_chunks(conn, id, &chunks).await?;
            chunks.clear();
        }
        if page.len() < 10_000 {
            break;
        }
    }
    chunks.extend(builder.finish());
    add_chunks(conn, id, &chunks).await?;
    // New numbers are ranks of the old ones, so never greater: in ascending order no
    // error is moved onto a number another error still has.
    for (old, new, key) in renumbered {
        conn.execute(
            &format!(
                "UPDATE lockgate_export_errors SET n = {}, row_key = {} WHERE export_id = {} AND n = {}",
                p(conn, 1),
                p(conn, 2),
                p(conn, 3),
                p(conn, 4)
            ),
            &[Value::Int(new), Value::Text(key), Value::Int(id), Value::Int(old)],
        )
        .await?;
    }
    // The fence moves, so that a worker of the earlier version still running this
    // export (its row numbers are the old ones) cannot commit: its claim expires and
    // the export is claimed again, by the new numbers.
    conn.execute(
        &format!(
            "UPDATE lockgate_exports SET committed_upto = {}, rows_total = {}, \
             fence = CASE WHEN status = 'running' THEN fence + 1 ELSE fence END WHERE id = {}",
            p(conn, 1),
            p(conn, 2),
            p(conn, 3)
        ),
        &[
            Value::Int(new_committed),
            Value::Int(builder.next_n() - 1),
            Value::Int(id),
        ],
    )
    .await?;
    conn.execute(
        &format!("DELETE FROM lockgate_export_rows WHERE export_id = {}", p(conn, 1)),
        &[Value::Int(id)],
    )
    .await?;
    Ok(())
}
