//! Running a merge: the table locks (every table it may write, shared with `load`,
//! `migrate` and `transfer run`), a run in `lockgate_runs`, a row in the history
//! (`lockgate_merges`), then attempts of one transaction each: plan, execute the
//! steps deepest level first (each re-pointing statement records the moved rows'
//! keys in a side table), the rows merged away deleted or set with their images
//! kept, the post-merge verification, the history row marked `completed`, commit.
//! Transient errors (serialization failures, deadlocks, lock timeouts, a lost
//! connection) retry the whole attempt with backoff and jitter; `--timeout` bounds
//! them all (each statement is also bounded on the server, so that nothing runs on
//! after the merge has given up). A failed or aborted merge is recorded after its
//! rollback, on the ledger's own connection.
//!
//! On MariaDB a `CREATE TABLE` commits the transaction, so the side tables are
//! created before it (from a plan made outside it, checked against the one made
//! inside) and dropped when the merge fails; elsewhere they are created inside it
//! and a rollback takes them away.

use super::plan::{self, json_map, Change, Conflict, Plan, Prepared};
use super::{ActionRow, MergeError, MergeOnError, MergeOptions, MergeReport, MergeStatus, RowAction, TableCount};
use lockgate_core::{Table, TableName, Value};
use lockgate_db::ledger::{self, Holder, Ledger, RunStatus};
use lockgate_db::merge::{self as sql, MergeRecord};
use lockgate_db::rows::{self, KeyValues};
use lockgate_db::versions::{self, RowImage};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The `module` under which a merge's whole-row images are kept in
/// `lockgate_row_images` (its `version` is the merge's id).
pub const IMAGE_MODULE: &str = "merge";

/// A step as the history keeps it, for `show` and `undo`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredStep {
    pub schema: Option<String>,
    pub table: String,
    pub columns: Vec<String>,
    pub key: Vec<String>,
    pub key_nullable: Vec<bool>,
    pub map: Vec<(Vec<serde_json::Value>, Vec<serde_json::Value>)>,
    pub side: String,
    pub rows: u64,
    pub level: usize,
    pub depth: usize,
}

/// A level's rows merged away, as the history keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredLevel {
    pub schema: Option<String>,
    pub table: String,
    pub action: RowAction,
    pub keys: Vec<serde_json::Map<String, serde_json::Value>>,
    pub depth: usize,
}

/// The plan as the history keeps it: the steps in the order they ran, each level's
/// rows after its steps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct StoredPlan {
    pub steps: Vec<StoredStep>,
    pub levels: Vec<StoredLevel>,
    /// (level, its steps) in the order they ran.
    pub order: Vec<(usize, Vec<usize>)>,
}

impl<'de> Deserialize<'de> for RowAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case", tag = "action", content = "set")]
        enum Raw {
            Keep,
            Delete,
            Set(Vec<(String, String)>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Keep => RowAction::Keep,
            Raw::Delete => RowAction::Delete,
            Raw::Set(a) => RowAction::Set(a),
        })
    }
}

fn stored(plan: &Plan, id: i64) -> StoredPlan {
    StoredPlan {
        steps: plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StoredStep {
                schema: s.table.name.schema.clone(),
                table: s.table.name.name.clone(),
                columns: s.reference.columns.clone(),
                key: s.key.iter().map(|k| k.name.clone()).collect(),
                key_nullable: s.key.iter().map(|k| k.nullable).collect(),
                map: s
                    .map
                    .iter()
                    .map(|e| {
                        (
                            e.old.iter().map(Value::to_json).collect(),
                            e.new.iter().map(Value::to_json).collect(),
                        )
                    })
                    .collect(),
                side: sql::side_name(id, i),
                rows: s.rows,
                level: s.level,
                depth: s.depth,
            })
            .collect(),
        levels: plan
            .levels
            .iter()
            .map(|l| StoredLevel {
                schema: l.table.name.schema.clone(),
                table: l.table.name.name.clone(),
                action: l.action.clone(),
                keys: l.keys().iter().map(|k| json_map(&l.table.primary_key, k)).collect(),
                depth: l.depth,
            })
            .collect(),
        order: plan.order(),
    }
}

fn counts(plan: &Plan) -> Vec<TableCount> {
    plan.steps
        .iter()
        .map(|s| TableCount {
            table: s.table.name.to_string(),
            columns: s.reference.columns.clone(),
            rows: s.rows,
            level: s.depth,
        })
        .collect()
}

fn actions(plan: &Plan) -> Vec<ActionRow> {
    let mut out = Vec::new();
    for l in &plan.levels {
        let action = l.action.name();
        for k in l.keys() {
            out.push(ActionRow {
                table: l.table.name.to_string(),
                key: json_map(&l.table.primary_key, &k),
                action: action.into(),
                level: l.depth,
            });
        }
    }
    out
}

fn options_json(opts: &MergeOptions) -> serde_json::Value {
    serde_json::json!({
        "preview": opts.preview,
        "merge_conflicts": opts.merge_conflicts,
        "sources": opts.sources_action,
        "conflict_rows": opts.conflict_rows,
        "skip_tables": opts.skip_tables,
        "references": opts.references,
        "deleted_when": opts.deleted_when,
        "timeout_ms": opts.timeout.as_millis() as u64,
        "on_error": opts.on_error,
    })
}

/// The OS user running this process, for the history's "who".
fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// How one attempt ended, when it did not fail.
enum Outcome {
    Completed(Plan),
    Preview(Plan),
    Aborted(Plan),
}

/// Merges (or previews) as `opts` says. `changes`, when given, receives every row
/// the merge re-points (the preview's list; with a merge, what it is about to do).
pub async fn merge(
    url: &DbUrl,
    opts: &MergeOptions,
    mut changes: Option<&mut (dyn FnMut(Change) + Send)>,
) -> Result<MergeReport, MergeError> {
    let started = Instant::now();
    let mut conn = Conn::connect_existing(url).await?;
    let prep = plan::prepare(&mut conn, opts).await?;
    let holder = Holder::current(format!("lockgate merge {}", prep.merged.name));
    let mut ledger = Ledger::open(url).await?;
    forget_abandoned(&mut ledger).await?;
    let pk = &prep.merged.primary_key;
    let sources_json: Vec<_> = prep.sources.iter().map(|s| json_map(pk, s)).collect();
    let target_json = json_map(pk, &prep.target);
    // The run starts first, then the history row naming it, both before the table
    // locks are waited for: a merge that gives up waiting (or dies waiting) is
    // recorded, and a row whose process died reads as abandoned through its run.
    let job = format!("merge:{}", prep.merged.name);
    let run_id = ledger.start_run("merge", &job, &holder).await?;
    let mut record = MergeRecord {
        name: opts.name.clone(),
        table: prep.merged.name.to_string(),
        sources: serde_json::to_string(&sources_json).unwrap_or_default(),
        target: serde_json::Value::Object(target_json.clone()).to_string(),
        options: options_json(opts).to_string(),
        status: MergeStatus::Running.as_str().into(),
        holder: format!("{} as {}", holder.describe(), user()),
        run_id: Some(run_id),
        ..MergeRecord::default()
    };
    record.id = match sql::insert_record(ledger.conn(), &record).await {
        Ok(id) => id,
        Err(e) => {
            let _ = ledger
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    0,
                    &serde_json::Value::Null,
                    Some(&e.to_string()),
                )
                .await;
            return Err(e.into());
        }
    };
    let id = record.id;
    let locks = match lock_tables(&mut ledger, &prep, &holder, opts.lock_timeout).await {
        Ok(l) => l,
        Err(e) => {
            record.status = MergeStatus::Failed.as_str().into();
            record.duration_ms = Some(started.elapsed().as_millis() as i64);
            record.error = Some(e.to_string());
            let _ = sql::finish_unless_completed(ledger.conn(), &record).await;
            let _ = ledger
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    0,
                    &serde_json::Value::Null,
                    Some(&e.to_string()),
                )
                .await;
            return Err(e.into());
        }
    };

    let mut attempts = 0u32;
    let mut created: Vec<String> = Vec::new();
    // The plan of an attempt whose COMMIT was sent: kept out here, so that a timeout
    // that drops the attempt mid-COMMIT still knows to read the outcome back.
    let mut committing: Option<Plan> = None;
    let progress = Progress {
        ledger: &mut ledger,
        run: run_id,
    };
    let work = attempt_all(
        &mut conn,
        url,
        &prep,
        opts,
        id,
        &mut changes,
        &mut attempts,
        &mut created,
        progress,
        started,
        &mut committing,
    );
    let result = match tokio::time::timeout(opts.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(MergeError::Timeout(format!(
            "the merge did not finish within {:?} (--timeout); nothing was kept: allow more time, or merge fewer \
             sources at once",
            opts.timeout
        ))),
    };
    drop(conn);
    // Whether a COMMIT whose answer was lost took: the history row, written in the
    // same transaction, says. Unknown (the database is unreachable) is said, and
    // nothing is recorded over it.
    let mut warnings = Vec::new();
    let result = match (result, committing) {
        (Err(e), Some(plan)) => match sql::record_by_id(ledger.conn(), id).await {
            Ok(Some(r)) if r.status == MergeStatus::Completed.as_str() => Ok(Outcome::Completed(plan)),
            Ok(_) => Err(e),
            Err(read) => {
                warnings.push(format!(
                    "merge {id}: its COMMIT's outcome is unknown ({e}) and could not be read back ({read}): \
                     see `lockgate merge show {id}` once the database answers"
                ));
                Err(e)
            }
        },
        (r, _) => r,
    };
    let (status, plan, error) = match result {
        Ok(Outcome::Completed(p)) => (MergeStatus::Completed, Some(p), None),
        Ok(Outcome::Preview(p)) => (MergeStatus::Preview, Some(p), None),
        Ok(Outcome::Aborted(p)) => (MergeStatus::AbortedConflicts, Some(p), None),
        Err(e) => (MergeStatus::Failed, None, Some(e)),
    };
    // A completed merge recorded its end in its own transaction; the others are
    // recorded now, after their rollback.
    let outcome_unknown = !warnings.is_empty();
    if status != MergeStatus::Completed && !outcome_unknown {
        if ledger.engine() == Engine::Mysql {
            for side in &created {
                if let Err(e) = sql::drop_side(ledger.conn(), side).await {
                    warnings.push(format!("side table {side} could not be dropped ({e}); drop it by hand"));
                }
            }
        }
        record.status = status.as_str().into();
        record.duration_ms = Some(started.elapsed().as_millis() as i64);
        if let Some(p) = &plan {
            record.counts = Some(serde_json::to_string(&counts(p)).unwrap_or_default());
            record.conflicts = Some(serde_json::to_string(&p.conflicts).unwrap_or_default());
        }
        record.error = error.as_ref().map(|e| e.to_string());
        if let Err(e) = sql::finish_unless_completed(ledger.conn(), &record).await {
            warnings.push(format!("merge {id} could not be recorded as {} ({e})", status.as_str()));
        }
    }
    let report = MergeReport {
        version: 1,
        id: Some(id),
        run_id: Some(run_id),
        table: prep.merged.name.to_string(),
        sources: sources_json,
        target: target_json,
        status,
        tables: plan.as_ref().map(counts).unwrap_or_default(),
        total_rows: plan.as_ref().map_or(0, |p| p.steps.iter().map(|s| s.rows).sum()),
        conflicts: plan.as_ref().map(|p| p.conflicts.clone()).unwrap_or_default(),
        conflicts_truncated: plan.as_ref().is_some_and(|p| p.conflicts_truncated),
        actions: plan.as_ref().map(actions).unwrap_or_default(),
        conflicts_merged: opts.merge_conflicts,
        attempts,
        seconds: started.elapsed().as_secs_f64(),
        error: error.as_ref().map(|e| e.to_string()),
        warnings: Vec::new(),
    };
    let run_status = match status {
        MergeStatus::Completed | MergeStatus::Preview => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    };
    let outcome = serde_json::to_value(&report).unwrap_or_default();
    if let Err(e) = ledger
        .finish_run(run_id, run_status, report.total_rows, &outcome, report.error.as_deref())
        .await
    {
        warnings.push(format!(
            "the end of run {run_id} could not be recorded in lockgate_runs ({e})"
        ));
    }
    if let Err(e) = ledger.unlock_all(locks).await {
        warnings.push(format!(
            "the table locks could not be given back ({e}); they are freed when this process exits"
        ));
    }
    match error {
        // Bad input found inside the transaction (a source gone, soft-deleted) is
        // still bad input: exit 2, with the history row written.
        Some(MergeError::Invalid(p)) => Err(MergeError::Invalid(p)),
        _ => Ok(MergeReport { warnings, ..report }),
    }
}

/// Takes the lock of every table the merge may write (shared with `load`,
/// `migrate` and `transfer run`), waiting up to `timeout`.
async fn lock_tables(
    ledger: &mut Ledger,
    prep: &Prepared,
    holder: &Holder,
    timeout: std::time::Duration,
) -> Result<Vec<ledger::JobLock>, DbError> {
    let mut jobs = Vec::new();
    for t in prep.tables_written() {
        jobs.push(ledger.table_job(&t).await?);
    }
    ledger.lock_all(&jobs, holder, timeout).await
}

/// Records merges whose process went away (`running`, their run abandoned) as
/// `abandoned`, and drops their side tables (MariaDB keeps them past a rollback).
async fn forget_abandoned(ledger: &mut Ledger) -> Result<(), DbError> {
    let conn = ledger.conn();
    // Only the rows still `running` are read: every merge calls this.
    for mut r in sql::running_records(conn).await? {
        let run = match r.run_id {
            Some(run) => ledger::run_status(conn, run).await?,
            None => continue,
        };
        // A run that ended without its merge recording the end: failed when the run
        // says so, else (gone) abandoned.
        if run.as_deref() == Some("failed") {
            r.status = MergeStatus::Failed.as_str().into();
            r.error = r
                .error
                .or(Some("the merge's run failed before it recorded its end".into()));
            sql::finish_unless_completed(conn, &r).await?;
            continue;
        }
        if run.is_some_and(|s| s != "abandoned") {
            continue;
        }
        if conn.engine() == Engine::Mysql {
            let prefix = format!("lockgate_merge_{}_", r.id);
            for t in conn.list_tables().await? {
                if t.name.starts_with(&prefix) {
                    sql::drop_side(conn, &t.name).await?;
                }
            }
        }
        r.status = MergeStatus::Abandoned.as_str().into();
        r.error = Some("its process went away before it recorded an end; nothing was kept".into());
        sql::finish_unless_completed(conn, &r).await?;
    }
    Ok(())
}

/// Where a merge records its progress (rows re-pointed of the planned total), so that
/// the dashboard and `lockgate_runs` show it whoever started it; not on SQLite, whose
/// one writer is the merge itself.
struct Progress<'l> {
    ledger: &'l mut Ledger,
    run: i64,
}

impl Progress<'_> {
    async fn report(&mut self, done: u64, total: u64) {
        if self.ledger.engine() != Engine::Sqlite {
            let _ = self.ledger.progress(self.run, done, Some(total)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt_all(
    conn: &mut Conn,
    url: &DbUrl,
    prep: &Prepared,
    opts: &MergeOptions,
    id: i64,
    changes: &mut Option<&mut (dyn FnMut(Change) + Send)>,
    attempts: &mut u32,
    created: &mut Vec<String>,
    mut progress: Progress<'_>,
    started: Instant,
    committing: &mut Option<Plan>,
) -> Result<Outcome, MergeError> {
    let deadline = Instant::now() + opts.timeout;
    loop {
        *attempts += 1;
        let at = Attempt { id, deadline, started };
        let result = attempt(conn, prep, opts, &at, changes, created, &mut progress, committing).await;
        if result.is_err() && committing.is_some() {
            // The COMMIT was sent and failed: whether it took is unknown. Never
            // retried: the caller reads the history row back.
            return result;
        }
        let retry = match &result {
            Err(MergeError::Db(e)) => {
                e.is_transient() && opts.on_error == MergeOnError::Rollback && *attempts < opts.retry.attempts
            }
            _ => false,
        };
        let lost = matches!(&result, Err(MergeError::Db(e)) if e.is_connection_lost()) || conn.is_closed();
        if !matches!(result, Ok(Outcome::Completed(_))) && !lost {
            let _ = conn.rollback().await;
        }
        if !retry {
            return result;
        }
        tracing::info!(
            attempt = *attempts,
            "merge attempt failed with a transient error; retrying"
        );
        tokio::time::sleep(opts.retry.backoff(*attempts)).await;
        if lost {
            *conn = Conn::connect_existing(url).await?;
        }
    }
}

/// What one attempt needs to know besides the merge: its id and its clock.
struct Attempt {
    id: i64,
    deadline: Instant,
    started: Instant,
}

/// A side table's shape: what a MariaDB attempt created it for (table, columns,
/// row key), compared with the step the plan inside the transaction gives it.
fn shape(s: &plan::PlannedStep) -> String {
    format!(
        "{}|{}|{}",
        s.table.name,
        s.reference.columns.join(","),
        s.key.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(",")
    )
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    conn: &mut Conn,
    prep: &Prepared,
    opts: &MergeOptions,
    at: &Attempt,
    changes: &mut Option<&mut (dyn FnMut(Change) + Send)>,
    created: &mut Vec<String>,
    progress: &mut Progress<'_>,
    committing: &mut Option<Plan>,
) -> Result<Outcome, MergeError> {
    let id = at.id;
    sql::limit_session(
        conn,
        at.deadline.saturating_duration_since(Instant::now()),
        opts.lock_wait,
    )
    .await?;
    let mysql = conn.engine() == Engine::Mysql;
    // MariaDB: the side tables exist before the transaction (see the module docs),
    // each remembered with the shape of the step it was made for.
    let mut shapes: Vec<String> = Vec::new();
    if mysql && !opts.preview {
        // Without --merge-conflicts the steps are the sources' level alone: their
        // shapes need no conflicts nor counts (the plan inside computes those).
        let outside = plan::plan(conn, prep, opts, !opts.merge_conflicts).await?;
        if outside.conflicts.is_empty() || opts.merge_conflicts {
            for (i, s) in outside.steps.iter().enumerate() {
                let side = sql::side_name(id, i);
                if created.contains(&side) {
                    // A retry: the step may differ now; start the table afresh.
                    sql::drop_side(conn, &side).await?;
                } else {
                    created.push(side.clone());
                }
                sql::create_side(conn, &side, &s.step()).await?;
                shapes.push(shape(s));
            }
            // Side tables of an earlier attempt with more steps are not needed.
            for side in created.iter().skip(outside.steps.len()) {
                sql::drop_side(conn, side).await?;
            }
            created.truncate(outside.steps.len());
        }
    }
    sql::begin(conn, opts.preview).await?;
    let plan = plan::plan(conn, prep, opts, false).await?;
    // A preview lists the changes even when conflicts would abort the merge: they
    // are what `--merge-conflicts` would leave out, and the conflicts are listed.
    if opts.preview {
        if let Some(f) = changes.as_deref_mut() {
            plan::changes(conn, &plan, f).await?;
        }
        return Ok(Outcome::Preview(plan));
    }
    if !plan.conflicts.is_empty() && !opts.merge_conflicts {
        return Ok(Outcome::Aborted(plan));
    }
    if let Some(f) = changes.as_deref_mut() {
        plan::changes(conn, &plan, f).await?;
    }
    let id_text = id.to_string();
    let total: u64 = plan.steps.iter().map(|s| s.rows).sum();
    let mut done = 0;
    for (li, steps) in plan.order() {
        for i in steps {
            let s = &plan.steps[i];
            let side = sql::side_name(id, i);
            if mysql {
                if shapes.get(i) != Some(&shape(s)) {
                    // The plan inside the transaction differs from the one outside:
                    // the data changed in between. A new attempt plans again.
                    return Err(MergeError::Db(retry_error(&s.table.name)));
                }
            } else {
                sql::create_side(conn, &side, &s.step()).await?;
            }
            let moved = match sql::repoint(conn, &side, &s.step()).await {
                Ok(n) => n,
                // Transient errors keep their kind, for the retry.
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return Err(repoint_error(&s.table.name, &s.reference.columns, e)),
            };
            if moved != s.rows {
                return Err(MergeError::Db(DbError::Invalid(format!(
                    "table {} ({}): the plan counted {} rows to re-point but {moved} moved; nothing was kept",
                    s.table.name,
                    s.reference.columns.join(", "),
                    s.rows
                ))));
            }
            done += moved;
            progress.report(done, total).await;
        }
        settle_level(conn, prep, &plan.levels[li], &id_text).await?;
    }
    // The post-merge verification: nothing references a row merged away any more.
    for s in &plan.steps {
        let left = sql::count(conn, &s.step()).await?;
        if left != 0 {
            return Err(MergeError::Db(DbError::Invalid(format!(
                "verification failed: {left} rows of {} still reference a row merged away through {} after \
                 the merge; nothing was kept",
                s.table.name,
                s.reference.columns.join(", ")
            ))));
        }
    }
    let record = MergeRecord {
        id,
        status: MergeStatus::Completed.as_str().into(),
        duration_ms: Some(at.started.elapsed().as_millis() as i64),
        counts: Some(serde_json::to_string(&counts(&plan)).unwrap_or_default()),
        conflicts: Some(serde_json::to_string(&plan.conflicts).unwrap_or_default()),
        plan: Some(serde_json::to_string(&stored(&plan, id)).unwrap_or_default()),
        ..MergeRecord::default()
    };
    sql::finish_record(conn, &record).await?;
    *committing = Some(plan.clone());
    conn.commit().await?;
    *committing = None;
    Ok(Outcome::Completed(plan))
}

/// A re-pointing statement's failure, said in the merge's terms: a statement
/// bounded by `--timeout` on the server is the timeout; a unique violation names
/// the one collision the plan cannot foresee.
fn repoint_error(table: &TableName, columns: &[String], e: DbError) -> MergeError {
    let code = e.engine_error().map(|x| x.code.clone()).unwrap_or_default();
    if matches!(code.as_str(), "57014" | "1969" | "3024") {
        return MergeError::Timeout(format!(
            "re-pointing {table}({}) ran past --timeout and was stopped by the server: nothing was kept; allow \
             more time",
            columns.join(", ")
        ));
    }
    let unique = matches!(code.as_str(), "23505" | "1062") || e.to_string().contains("UNIQUE constraint failed");
    let hint = if unique {
        " (rows collide in a unique key that holds two re-pointed columns of this table, where neither column \
         alone does: resolve those rows first)"
    } else {
        ""
    };
    MergeError::Db(DbError::Invalid(format!(
        "re-pointing {table}({}) at the target failed: {e}; nothing was kept{hint}",
        columns.join(", ")
    )))
}

/// A serialization failure of our own: the data changed between two reads, and a
/// new attempt is safe.
fn retry_error(table: &TableName) -> DbError {
    let mut e = lockgate_db::EngineError::new(
        "lockgate-replan",
        format!("table {table} changed while the merge was being prepared"),
    );
    e.transient = true;
    DbError::engine("merge", e)
}

/// Deletes or sets a level's rows merged away, recording their images first. Rows
/// still referencing a row about to be deleted (a skipped table's, a conflicting
/// row kept with its source) stop the merge: the engine would cascade, null or
/// refuse the delete, and none of that could be undone.
async fn settle_level(conn: &mut Conn, prep: &Prepared, level: &plan::Level, id: &str) -> Result<(), MergeError> {
    let table = &level.table;
    let keys = level.keys();
    if keys.is_empty() {
        return Ok(());
    }
    if level.action == RowAction::Delete {
        for t in &prep.tables {
            for fk in t.foreign_keys.iter().filter(|fk| fk.references.same_as(&table.name)) {
                let (child, parent): (Vec<String>, Vec<String>) = fk.columns.iter().cloned().unzip();
                let Some(idx) = parent
                    .iter()
                    .map(|c| table.column_index(c))
                    .collect::<Option<Vec<usize>>>()
                else {
                    continue;
                };
                let values: Vec<Vec<Value>> = level
                    .pairs
                    .iter()
                    .map(|(x, _)| idx.iter().map(|&i| x[i].clone()).collect())
                    .collect();
                let n = sql::referencing(conn, t, &child, &values).await?;
                if n > 0 {
                    return Err(MergeError::Db(DbError::Invalid(format!(
                        "{n} rows of {} ({}) still reference the rows of {} the merge would delete: nothing was \
                         kept; do not skip {}, or keep the rows merged away (--sources keep or set:…, \
                         --conflict-rows keep or set:…)",
                        t.name,
                        child.join(", "),
                        table.name,
                        t.name
                    ))));
                }
            }
        }
    }
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kv: Vec<KeyValues> = keys
        .iter()
        .map(|k| table.primary_key.iter().cloned().zip(k.iter().cloned()).collect())
        .collect();
    match &level.action {
        RowAction::Keep => {}
        RowAction::Delete => {
            let before = rows::select_by_keys(conn, table, &kv).await?;
            let images: Vec<RowImage> = before
                .iter()
                .map(|r| RowImage::deleted(&table.name, &columns, r, &table.primary_key))
                .collect();
            versions::write_images(conn, IMAGE_MODULE, id, &images).await?;
            rows::delete_by_keys(conn, table, &kv).await?;
        }
        RowAction::Set(assignments) => {
            let before = rows::select_by_keys(conn, table, &kv).await?;
            sql::set_rows(conn, table, &table.primary_key, &keys, assignments).await?;
            let after = rows::select_by_keys(conn, table, &kv).await?;
            let images = set_images(table, &columns, assignments, &before, &after);
            versions::write_images(conn, IMAGE_MODULE, id, &images).await?;
        }
    }
    Ok(())
}

/// The images of rows a `set:` changed: the whole row before, the set columns after.
fn set_images(
    table: &Table,
    columns: &[String],
    assignments: &[(String, String)],
    before: &[Vec<Value>],
    after: &[Vec<Value>],
) -> Vec<RowImage> {
    let pk = |r: &[Value]| sql::key_text(&plan::pk_of(table, r));
    before
        .iter()
        .map(|b| {
            let mut img = RowImage::deleted(&table.name, columns, b, &table.primary_key);
            img.op = 'u';
            let a = after.iter().find(|a| pk(a) == pk(b));
            img.after = a.map(|a| {
                assignments
                    .iter()
                    .filter_map(|(c, _)| {
                        let i = table.column_index(c)?;
                        Some((table.columns[i].name.clone(), a[i].to_json()))
                    })
                    .collect()
            });
            img
        })
        .collect()
}

/// A JSON column of the history read back (empty when absent or unreadable: a
/// history row written by a build that did not record it).
fn stored_json<T: serde::de::DeserializeOwned + Default>(text: Option<&str>) -> T {
    text.and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
}

/// One merge of the history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MergeSummary {
    /// Its id.
    pub id: i64,
    /// The definition's name.
    pub name: Option<String>,
    /// The merged table.
    pub table: String,
    /// The sources' keys.
    pub sources: serde_json::Value,
    /// The target's key.
    pub target: serde_json::Value,
    /// How it ended (`abandoned`: its process went away before recording its end).
    pub status: MergeStatus,
    /// Who ran it: command, process, host and user.
    pub holder: String,
    /// Its run in `lockgate_runs`.
    pub run_id: Option<i64>,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Rows re-pointed.
    pub total_rows: u64,
    /// Conflicts found.
    pub conflicts: usize,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was undone.
    pub undone_at: Option<String>,
}

/// One merge with everything the history holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MergeDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: MergeSummary,
    /// Its options.
    pub options: serde_json::Value,
    /// Rows per table and reference.
    pub tables: Vec<TableCount>,
    /// The conflicts.
    pub conflicts_found: Vec<Conflict>,
    /// Rows merged away and what happened to them.
    pub actions: Vec<ActionRow>,
    /// Row-level changes (at most the `limit` asked for).
    pub changes: Vec<Change>,
    /// Whether more changes exist than listed.
    pub changes_truncated: bool,
}

async fn summary(conn: &mut Conn, r: &MergeRecord) -> Result<MergeSummary, DbError> {
    let mut status = MergeStatus::parse(&r.status);
    if status == MergeStatus::Running {
        // A merge that could not record its end reads as its run does: abandoned
        // when its process went away, failed when the run recorded a failure.
        if let Some(run) = r.run_id {
            match ledger::run_status(conn, run).await?.as_deref() {
                None | Some("abandoned") => status = MergeStatus::Abandoned,
                Some("failed") => status = MergeStatus::Failed,
                _ => {}
            }
        }
    }
    let counts: Vec<TableCount> = stored_json(r.counts.as_deref());
    let conflicts: Vec<Conflict> = stored_json(r.conflicts.as_deref());
    Ok(MergeSummary {
        id: r.id,
        name: r.name.clone(),
        table: r.table.clone(),
        sources: serde_json::from_str(&r.sources).unwrap_or_default(),
        target: serde_json::from_str(&r.target).unwrap_or_default(),
        status,
        holder: r.holder.clone(),
        run_id: r.run_id,
        started_at: r.started_at.clone(),
        ended_at: r.ended_at.clone(),
        duration_ms: r.duration_ms,
        total_rows: counts.iter().map(|c| c.rows).sum(),
        conflicts: conflicts.len(),
        error: r.error.clone(),
        undone_at: r.undone_at.clone(),
    })
}

/// `lockgate merge history`: the merges recorded in the database, newest first.
pub async fn history(url: &DbUrl, limit: u32) -> Result<Vec<MergeSummary>, MergeError> {
    let mut conn = Conn::connect_existing(url).await?;
    let Some(records) = sql::records(&mut conn, limit.max(1)).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for r in &records {
        out.push(summary(&mut conn, r).await?);
    }
    Ok(out)
}

/// Reads a merge's record; an unknown id is bad input.
pub(crate) async fn record(conn: &mut Conn, id: i64) -> Result<MergeRecord, MergeError> {
    sql::record_by_id(conn, id).await?.ok_or_else(|| {
        MergeError::one(format!(
            "merge {id} is not in this database's history: see `lockgate merge history`"
        ))
    })
}

/// A stored step's table, described again, and its step's parts typed.
pub(crate) struct Loaded {
    pub table: Table,
    pub key: Vec<lockgate_db::dialect::KeyColumn>,
    pub map: Vec<sql::MapEntry>,
}

/// Describes a stored step's table again and types its map for it.
pub(crate) async fn load_step(conn: &mut Conn, s: &StoredStep) -> Result<Loaded, MergeError> {
    let name = TableName {
        schema: s.schema.clone(),
        name: s.table.clone(),
    };
    let table = conn
        .describe(&name)
        .await?
        .ok_or_else(|| MergeError::one(format!("table {name}, which the merge changed, is not there any more")))?;
    let typed = |vals: &[serde_json::Value]| -> Result<Vec<Value>, MergeError> {
        s.columns
            .iter()
            .zip(vals)
            .map(|(c, v)| {
                let col = table
                    .column(c)
                    .ok_or_else(|| MergeError::one(format!("table {name} has no column {c} any more")))?;
                col.kind
                    .parse_stored_json(v)
                    .map_err(|e| MergeError::one(format!("{name}.{c}: recorded value {v} no longer fits: {e}")))
            })
            .collect()
    };
    let mut map = Vec::new();
    for (o, n) in &s.map {
        map.push(sql::MapEntry {
            old: typed(o)?,
            new: typed(n)?,
        });
    }
    let key = s
        .key
        .iter()
        .zip(&s.key_nullable)
        .map(|(k, n)| lockgate_db::dialect::KeyColumn {
            name: k.clone(),
            nullable: *n,
        })
        .collect();
    Ok(Loaded { table, key, map })
}

/// `lockgate merge show ID`: one merge, with up to `limit` of its row-level changes.
pub async fn show(url: &DbUrl, id: i64, limit: u64) -> Result<MergeDetail, MergeError> {
    let mut conn = Conn::connect_existing(url).await?;
    let r = record(&mut conn, id).await?;
    let summary = summary(&mut conn, &r).await?;
    let stored: StoredPlan = r
        .plan
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let mut changes = Vec::new();
    let mut truncated = false;
    for s in &stored.steps {
        if changes.len() as u64 >= limit {
            truncated = truncated || s.rows > 0;
            continue;
        }
        let loaded = load_step(&mut conn, s).await?;
        let step = sql::Step {
            table: &loaded.table,
            columns: &s.columns,
            key: &loaded.key,
            map: &loaded.map,
            exclude: &[],
        };
        let left = limit - changes.len() as u64;
        let table = loaded.table.name.to_string();
        let mut page = |rows: Vec<Vec<Value>>| -> Result<(), MergeError> {
            for mut row in rows {
                let entry = row.pop().and_then(|v| v.to_string().parse::<usize>().ok()).unwrap_or(0);
                let Some((o, n)) = s.map.get(entry) else { continue };
                changes.push(Change {
                    table: table.clone(),
                    key: json_map(&s.key, &row),
                    columns: s.columns.clone(),
                    old: o.clone(),
                    new: n.clone(),
                    level: s.depth,
                });
            }
            Ok(())
        };
        sql::side_rows(&mut conn, &s.side, &step, Some(left), 1000, &mut page).await?;
        if s.rows > left {
            truncated = true;
        }
    }
    let counts: Vec<TableCount> = stored_json(r.counts.as_deref());
    let conflicts: Vec<Conflict> = stored_json(r.conflicts.as_deref());
    let actions = stored
        .levels
        .iter()
        .flat_map(|l| {
            let action = l.action.name();
            l.keys.iter().map(move |k| ActionRow {
                table: TableName {
                    schema: l.schema.clone(),
                    name: l.table.clone(),
                }
                .to_string(),
                key: k.clone(),
                action: action.into(),
                level: l.depth,
            })
        })
        .collect();
    Ok(MergeDetail {
        summary,
        options: serde_json::from_str(&r.options).unwrap_or_default(),
        tables: counts,
        conflicts_found: conflicts,
        actions,
        changes,
        changes_truncated: truncated,
    })
}
