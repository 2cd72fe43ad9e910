//! `lockgate merge undo ID`: reverts a completed merge from what its history holds
//! (the steps with their maps, each step's side table of moved rows, the images of
//! the rows it deleted or set), in one transaction, in the reverse of the order it
//! ran: each level's rows put back, then its steps' rows re-pointed at their old
//! values. A row changed since the merge (a moved row that no longer holds the
//! value the merge gave it, or is gone; a deleted row whose key is taken again; a
//! set row whose set columns changed) is listed and stops the undo (exit 4) unless
//! `overwrite` is given. The merge is then marked `undone`; a second undo is refused.

use super::run::{self, load_step, Loaded, StoredPlan, IMAGE_MODULE};
use super::{MergeError, MergeOnError, MergeStatus, TableCount};
use lockgate_core::{Row, Table, TableName, Value};
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::merge::{self as sql, Step};
use lockgate_db::rows::{self, KeyValues};
use lockgate_db::versions::{self, StoredImage};
use lockgate_db::writer::RetryPolicy;
use lockgate_db::{Conn, DbError, DbUrl};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How to undo.
#[derive(Clone, Debug)]
pub struct UndoOptions {
    /// Only list what would be put back, and what changed since.
    pub preview: bool,
    /// Put rows back even where they changed since the merge.
    pub overwrite: bool,
    /// The longest the undo may take, retries included.
    pub timeout: Duration,
    /// How long to wait for other Lockgate commands writing the tables.
    pub lock_timeout: Duration,
    /// Transient-error retry.
    pub retry: RetryPolicy,
    /// The error policy (`stop`: no retry).
    pub on_error: MergeOnError,
}

impl Default for UndoOptions {
    fn default() -> Self {
        UndoOptions {
            preview: false,
            overwrite: false,
            timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            on_error: MergeOnError::Rollback,
        }
    }
}

/// A row changed since the merge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangedRow {
    /// Its table.
    pub table: String,
    /// Its key.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// What changed.
    pub reason: String,
}

/// What an undo did or would do (the `--json` document of `lockgate merge undo`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UndoReport {
    /// The document's format version.
    pub version: u32,
    /// The merge.
    pub id: i64,
    /// `undone`, `preview`, or `changed` (rows changed since; nothing done).
    pub status: String,
    /// Rows put back per table and reference.
    pub tables: Vec<TableCount>,
    /// Rows the merge deleted or set, put back.
    pub rows_restored: u64,
    /// Rows changed since the merge (at most 100 per step are listed).
    pub changed: Vec<ChangedRow>,
    /// Whether changed rows were overwritten.
    pub overwritten: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time.
    pub seconds: f64,
}

impl UndoReport {
    /// ARCHITECTURE.md's exit code: 4 when changed rows stopped it.
    pub fn exit_code(&self) -> i32 {
        if self.status == "changed" {
            4
        } else {
            0
        }
    }
}

/// Reverts merge `id`.
pub async fn undo(url: &DbUrl, id: i64, opts: &UndoOptions) -> Result<UndoReport, MergeError> {
    let started = Instant::now();
    let mut conn = Conn::connect_existing(url).await?;
    let record = run::record(&mut conn, id).await?;
    match MergeStatus::parse(&record.status) {
        MergeStatus::Completed => {}
        MergeStatus::Undone => {
            return Err(MergeError::one(format!(
                "merge {id} was already undone{}: an undo is made once",
                record.undone_at.map(|t| format!(" at {t}")).unwrap_or_default()
            )))
        }
        other => {
            return Err(MergeError::one(format!(
                "merge {id} is {}: only a completed merge can be undone (it changed nothing)",
                other.as_str()
            )))
        }
    }
    let stored: StoredPlan = record
        .plan
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| MergeError::one(format!("merge {id} has no recorded plan to undo from")))?;
    let mut loaded = Vec::new();
    for s in &stored.steps {
        loaded.push(load_step(&mut conn, s).await?);
    }
    let mut level_tables = Vec::new();
    for l in &stored.levels {
        let name = TableName {
            schema: l.schema.clone(),
            name: l.table.clone(),
        };
        let t = conn
            .describe(&name)
            .await?
            .ok_or_else(|| MergeError::one(format!("table {name}, which the merge changed, is not there any more")))?;
        level_tables.push(t);
    }
    let holder = Holder::current(format!("lockgate merge undo {id}"));
    let mut ledger = Ledger::open(url).await?;
    let mut jobs = Vec::new();
    for t in loaded.iter().map(|l| &l.table).chain(level_tables.iter()) {
        jobs.push(ledger.table_job(&t.name).await?);
    }
    let locks = ledger.lock_all(&jobs, &holder, opts.lock_timeout).await?;
    let run_id = match ledger
        .start_run("merge-undo", &format!("merge:{}", record.table), &holder)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ledger.unlock_all(locks).await;
            return Err(e.into());
        }
    };
    let mut attempts = 0;
    let deadline = Instant::now() + opts.timeout;
    let work = async {
        loop {
            attempts += 1;
            let r = attempt(&mut conn, id, &stored, &loaded, &level_tables, opts, deadline).await;
            let lost = matches!(&r, Err(MergeError::Db(e)) if e.is_connection_lost()) || conn.is_closed();
            if !matches!(&r, Ok(rep) if rep.status == "undone") && !lost {
                let _ = conn.rollback().await;
            }
            let retry = matches!(&r, Err(MergeError::Db(e)) if e.is_transient())
                && opts.on_error == MergeOnError::Rollback
                && attempts < opts.retry.attempts;
            if !retry {
                return r;
            }
            tokio::time::sleep(opts.retry.backoff(attempts)).await;
            if lost {
                conn = Conn::connect_existing(url).await?;
            }
        }
    };
    let result = match tokio::time::timeout(opts.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(MergeError::Timeout(format!(
            "the undo did not finish within {:?} (--timeout); nothing was changed: allow more time",
            opts.timeout
        ))),
    };
    let (status, err) = match &result {
        Ok(r) if r.status == "undone" || r.status == "preview" => (RunStatus::Succeeded, None),
        Ok(_) => (RunStatus::Failed, Some("rows changed since the merge".to_string())),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    let outcome = result
        .as_ref()
        .ok()
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_default();
    let _ = ledger.finish_run(run_id, status, 0, &outcome, err.as_deref()).await;
    let _ = ledger.unlock_all(locks).await;
    result.map(|r| UndoReport {
        attempts,
        seconds: started.elapsed().as_secs_f64(),
        ..r
    })
}

/// The re-pointed rows that no longer hold what the merge gave them (at most 100
/// per step).
async fn moved_since(conn: &mut Conn, stored: &StoredPlan, loaded: &[Loaded]) -> Result<Vec<ChangedRow>, MergeError> {
    let mut changed = Vec::new();
    for (s, l) in stored.steps.iter().zip(loaded) {
        for row in sql::changed_since(conn, &s.side, &step(s, l), 100).await? {
            let keys = &row[..row.len() - 1];
            changed.push(ChangedRow {
                table: l.table.name.to_string(),
                key: super::plan::json_map(&s.key, keys),
                reason: format!(
                    "the merge set {} and the row no longer holds that (or is gone)",
                    s.columns.join(", ")
                ),
            });
        }
    }
    Ok(changed)
}

fn step<'a>(s: &'a run::StoredStep, l: &'a Loaded) -> Step<'a> {
    Step {
        table: &l.table,
        columns: &s.columns,
        key: &l.key,
        map: &l.map,
        exclude: &[],
    }
}

/// Types a stored image's values (a whole row or some columns) for its table.
fn typed(
    table: &Table,
    m: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Vec<String>, Vec<Value>), MergeError> {
    let mut cols = Vec::new();
    let mut vals = Vec::new();
    for (c, v) in m {
        let col = table
            .column(c)
            .ok_or_else(|| MergeError::one(format!("table {} has no column {c} any more", table.name)))?;
        let value = col
            .kind
            .parse_stored_json(v)
            .map_err(|e| MergeError::one(format!("{}.{c}: recorded value {v} no longer fits: {e}", table.name)))?;
        cols.push(col.name.clone());
        vals.push(value);
    }
    Ok((cols, vals))
}

/// An image's key as one text, in the table's primary-key order (as
/// [`sql::key_text`] of a row read back gives it).
fn image_key_text(table: &Table, key: &serde_json::Map<String, serde_json::Value>) -> Result<String, MergeError> {
    let kv = key_values(table, key)?;
    let ordered: Vec<Value> = table
        .primary_key
        .iter()
        .filter_map(|k| kv.iter().find(|(c, _)| c == k).map(|(_, v)| v.clone()))
        .collect();
    Ok(sql::key_text(&ordered))
}

fn key_values(table: &Table, key: &serde_json::Map<String, serde_json::Value>) -> Result<KeyValues, MergeError> {
    let (c, v) = typed(table, key)?;
    Ok(c.into_iter().zip(v).collect())
}

async fn attempt(
    conn: &mut Conn,
    id: i64,
    stored: &StoredPlan,
    loaded: &[Loaded],
    level_tables: &[Table],
    opts: &UndoOptions,
    deadline: Instant,
) -> Result<UndoReport, MergeError> {
    sql::limit_session(conn, deadline.saturating_duration_since(Instant::now()), None).await?;
    sql::begin(conn, opts.preview).await?;
    let images: Vec<StoredImage> = versions::read_images(conn, IMAGE_MODULE, &[id.to_string()]).await?;
    // What changed since the merge: the rows it deleted or set, from their images
    // (a few); the re-pointed rows are listed only when asked (a preview, an
    // overwrite) or when the undo finds them changed: each undo statement touches
    // only rows still holding what the merge gave them, so a count short of what the
    // merge moved is the sign, and a second pass over a million rows is saved.
    let mut changed = Vec::new();
    // The rows the merge deleted or set, as they are now: one read per table.
    let mut now: HashMap<String, Vec<Value>> = HashMap::new();
    for table in level_tables {
        let name = table.name.to_string();
        let keys: Vec<KeyValues> = images
            .iter()
            .filter(|i| i.image.table == name)
            .map(|i| key_values(table, &i.image.key))
            .collect::<Result<_, _>>()?;
        if keys.is_empty() || now.keys().any(|k| k.starts_with(&format!("{name}\u{1e}"))) {
            continue;
        }
        for row in rows::select_by_keys(conn, table, &keys).await? {
            now.insert(
                format!("{name}\u{1e}{}", sql::key_text(&super::plan::pk_of(table, &row))),
                row,
            );
        }
    }
    for img in &images {
        let Some(table) = level_tables.iter().find(|t| t.name.to_string() == img.image.table) else {
            continue;
        };
        let found = now.get(&format!(
            "{}\u{1e}{}",
            img.image.table,
            image_key_text(table, &img.image.key)?
        ));
        let reason = match (img.image.op, found, &img.image.after) {
            ('d', Some(_), _) => Some("the merge deleted it, and a row with its key is there now".to_string()),
            ('u', None, _) => Some("the merge set it, and it is gone".to_string()),
            ('u', Some(row), Some(after)) => {
                let (cols, vals) = typed(table, after)?;
                let differs = cols.iter().zip(&vals).any(|(c, v)| {
                    let i = table.column_index(c).expect("typed checked it");
                    row[i].to_json() != v.to_json()
                });
                differs.then(|| format!("the merge set {}, and they changed since", cols.join(", ")))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            changed.push(ChangedRow {
                table: table.name.to_string(),
                key: img.image.key.clone(),
                reason,
            });
        }
    }
    let tables: Vec<TableCount> = stored
        .steps
        .iter()
        .zip(loaded)
        .map(|(s, l)| TableCount {
            table: l.table.name.to_string(),
            columns: s.columns.clone(),
            rows: s.rows,
            level: s.depth,
        })
        .collect();
    let report = |status: &str, tables: Vec<TableCount>, restored: u64, changed: Vec<ChangedRow>| UndoReport {
        version: 1,
        id,
        status: status.into(),
        tables,
        rows_restored: restored,
        overwritten: opts.overwrite && !changed.is_empty() && status == "undone",
        changed,
        attempts: 0,
        seconds: 0.0,
    };
    if opts.preview || opts.overwrite || !changed.is_empty() {
        changed.extend(moved_since(conn, stored, loaded).await?);
    }
    if !changed.is_empty() && !opts.overwrite && !opts.preview {
        return Ok(report("changed", tables, 0, changed));
    }
    if opts.preview {
        return Ok(report("preview", tables, images.len() as u64, changed));
    }
    // The reverse of the order the merge ran in.
    let mut put_back = vec![0u64; stored.steps.len()];
    let mut restored = 0;
    for (li, steps) in stored.order.iter().rev() {
        let table = &level_tables[*li];
        let level_name = table.name.to_string();
        let keys = &stored.levels[*li].keys;
        let mine: Vec<&StoredImage> = images
            .iter()
            .filter(|i| i.image.table == level_name && keys.contains(&i.image.key))
            .collect();
        // Deleted rows go back in one insert (after, with --overwrite, one delete of
        // whatever holds their keys now); set rows get their columns back one by one
        // (each row its own values; they are the few rows merged away).
        let mut deleted_keys: Vec<KeyValues> = Vec::new();
        let mut inserts: Vec<Row> = Vec::new();
        let mut columns: Vec<String> = Vec::new();
        for img in &mine {
            let kv = key_values(table, &img.image.key)?;
            let before = img
                .image
                .before
                .as_ref()
                .ok_or_else(|| MergeError::one(format!("an image of {level_name} has no row to put back")))?;
            if img.image.op == 'd' {
                let (cols, vals) = typed(table, before)?;
                columns = cols;
                inserts.push(Row {
                    line: inserts.len() as u64 + 1,
                    number: 0,
                    values: vals,
                });
                deleted_keys.push(kv);
            } else {
                let after = img.image.after.clone().unwrap_or_default();
                let set: serde_json::Map<String, serde_json::Value> = before
                    .iter()
                    .filter(|(c, _)| after.contains_key(*c))
                    .map(|(c, v)| (c.clone(), v.clone()))
                    .collect();
                let (cols, vals) = typed(table, &set)?;
                let (kc, kv): (Vec<String>, Vec<Value>) = kv.into_iter().unzip();
                sql::update_row(conn, table, &kc, &kv, &cols, &vals).await?;
            }
        }
        if !inserts.is_empty() {
            if opts.overwrite {
                rows::delete_by_keys(conn, table, &deleted_keys).await?;
            }
            let out = conn.bulk_insert(&table.name, &columns, &inserts, None).await?;
            if let Some((i, e)) = out.row_errors.first() {
                let key = deleted_keys.get(*i).cloned().unwrap_or_default();
                return Err(MergeError::Db(DbError::Invalid(format!(
                    "row {} of {level_name} could not be put back: {}",
                    key.iter()
                        .map(|(c, v)| format!("{c}={v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.message
                ))));
            }
        }
        restored += mine.len() as u64;
        for &i in steps.iter().rev() {
            let s = &stored.steps[i];
            put_back[i] = sql::undo_repoint(conn, &s.side, &step(s, &loaded[i]), opts.overwrite).await?;
            // Every recorded row is put back once: fewer means rows changed since
            // (listed, nothing done, unless overwriting: then they are gone);
            // more would move rows the merge did not.
            let expected = s.rows;
            if put_back[i] < expected && !opts.overwrite {
                conn.rollback().await?;
                let changed = moved_since(conn, stored, loaded).await?;
                return Ok(report("changed", tables, 0, changed));
            }
            if put_back[i] > expected {
                return Err(MergeError::Db(DbError::Internal(format!(
                    "undoing {}({}) would put back {} rows where the merge moved {expected}: nothing was changed",
                    loaded[i].table.name,
                    s.columns.join(", "),
                    put_back[i]
                ))));
            }
        }
    }
    if !sql::mark_undone(conn, id).await? {
        return Err(MergeError::Db(DbError::Internal(format!(
            "merge {id} was undone by someone else meanwhile: nothing was changed by this undo"
        ))));
    }
    conn.commit().await?;
    let tables = tables
        .into_iter()
        .zip(put_back)
        .map(|(t, rows)| TableCount { rows, ..t })
        .collect();
    Ok(report("undone", tables, restored, changed))
}
