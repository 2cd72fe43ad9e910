//! The unit driver: one write as one unit (a transaction of its own, or a savepoint
//! in the caller's), retried on transient errors, and its passes: the happy pass,
//! then the diagnose pass (quick, else careful) when the engine failed a statement.

use super::*;

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
pub(super) async fn run_unit(
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
    let mut defer = false;
    let report = loop {
        let result = match mode {
            PassMode::Quick => quick_pass(conn, plan, source, progress).await,
            _ => pass(conn, plan, source, mode, defer, progress).await,
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
                Err(PassError::Defer) => true,
                Err(_) => false,
            };
        let next = if shortcut_failed {
            tracing::info!("the insert path failed a row; writing the unit in its key mode");
            mode = PassMode::Fast;
            key_plan
        } else {
            match result {
                Ok(report) => break report,
                Err(PassError::Defer) => {
                    tracing::info!("records giving the key follow keyless ones; inserting the keyless ones last");
                    defer = true;
                }
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
pub(super) async fn inserts_only(conn: &mut Conn, plan: &Plan) -> Result<bool, DbError> {
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
/// then line, then record (records may share a line). Checks find rows in their own
/// order; a person reads the file's.
pub(super) fn sort_failures(failed: &mut [RowError]) {
    let mut sources: Vec<Option<String>> = Vec::new();
    for e in failed.iter() {
        if !sources.contains(&e.file) {
            sources.push(e.file.clone());
        }
    }
    failed.sort_by_key(|e| (sources.iter().position(|s| *s == e.file), e.line, e.record));
}

/// Begins the unit's transaction. On PostgreSQL, when every join on the key can
/// probe an index, joins are told to: a batch of 10,000 staged rows otherwise gets a
/// hash join that reads the whole (growing) target once per batch — 327 ms a batch
/// at 900k rows, against 9 ms through the index. SET LOCAL ends with the transaction.
pub(super) async fn begin(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
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
pub(super) async fn commit(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
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
pub(super) async fn rollback(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
    if !plan.nested {
        return conn.rollback().await;
    }
    // Rolling back to the savepoint also undoes the unit's SET LOCALs.
    conn.batch(&plan.dialect.rollback_to(UNIT)).await?;
    conn.batch(&plan.dialect.release(UNIT)).await
}

pub(super) async fn cleanup(conn: &mut Conn, plan: &Plan) {
    // MariaDB's temporary tables outlive a rollback; drop them either way.
    if plan.dialect.0 == Engine::Mysql {
        let _ = conn.batch(&plan.dialect.drop_temp(STAGE)).await;
        let _ = conn.batch(&plan.dialect.drop_temp(KEYS)).await;
    }
}

#[derive(Debug)]
pub(super) enum PassError {
    /// A statement failed where the happy path cannot say which row.
    Engine(DbError),
    /// The quick diagnose met an error its set-based checks did not foresee: start
    /// over in careful mode (staging and bisection for every row).
    Careful(DbError),
    /// The fast pass met a failing row and the quick diagnose wants the whole input:
    /// start over in quick mode.
    Quick,
    /// A record gave the key after keyless records were inserted: start over with
    /// the keyless inserts after every keyed record ([`Phase`]).
    Defer,
    Source(SourceError),
}

/// Splits a keyed batch's rows into those with the whole key and those with a NULL
/// in a key column (see [`pass`]).
pub(super) fn split_null_keys(plan: &Plan, columns: &[String], rows: Vec<Row>) -> (Vec<Row>, Vec<Row>) {
    let idx: Vec<usize> = plan
        .key
        .iter()
        .filter(|k| k.nullable)
        .filter_map(|k| columns.iter().position(|c| *c == k.name))
        .collect();
    if idx.is_empty() {
        return (rows, Vec::new());
    }
    rows.into_iter()
        .partition(|r| idx.iter().all(|&i| !r.values[i].is_null()))
}

/// Which batches a reading of the source writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Every batch, in input order.
    All,
    /// The batches that give the key (keyless ones are only counted).
    Keyed,
    /// Then the batches that do not.
    Keyless,
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
            PassError::Defer => WriteError::Db(DbError::Internal(
                "deferred keyless inserts were asked for and not run".into(),
            )),
            PassError::Source(e) => WriteError::Source(e),
        }
    }
}

/// How a pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PassMode {
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
    pub(super) fn quick_diagnose(plan: &Plan) -> PassMode {
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
pub(super) async fn pass(
    conn: &mut Conn,
    plan: &Plan,
    source: &dyn BatchSource,
    mode: PassMode,
    defer: bool,
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
    let keyless = keyless_plan(plan);
    // Records that do not give the key are inserted, as oe-migration's upsert
    // without an id creates a row (through staging: the unit may have other batches
    // to match by key, so no COPY stream is opened in between). A key given by a
    // later record must never meet a row the database generated in this write (it
    // would silently update it), so keyless inserts follow every keyed record:
    // directly while the input puts them last, else (`defer`) in a second reading
    // of the source after the keyed batches ([`Defer`]).
    let phases: &[Phase] = if defer && keyless.is_some() {
        &[Phase::Keyed, Phase::Keyless]
    } else {
        &[Phase::All]
    };
    // Whether a batch gave values of a generated column since the sequence last
    // caught up with them (PostgreSQL's identity does not move by itself).
    let mut gave_generated = false;
    // Whether keyless rows were inserted in this reading.
    let mut inserted_keyless = false;
    for &phase in phases {
        let mut rx = source.open();
        while let Some(item) = rx.recv().await {
            let mut batch = item.map_err(PassError::Source)?;
            let is_keyless = keyless.is_some() && plan.key.iter().any(|k| !batch.columns.contains(&k.name));
            match phase {
                Phase::Keyless if !is_keyless => continue,
                Phase::Keyed if is_keyless => {
                    report.rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
                    continue;
                }
                Phase::All if !is_keyless && inserted_keyless => return Err(PassError::Defer),
                Phase::Keyless => {}
                _ => report.rows_read += (batch.rows.len() + batch.rejected.len()) as u64,
            }
            let plan = match &keyless {
                Some(p) if is_keyless => {
                    if gave_generated {
                        conn.finish_stream().await?;
                        crate::schema::catch_up_identity(conn, &plan.table).await?;
                        gave_generated = false;
                    }
                    inserted_keyless = true;
                    p
                }
                _ => {
                    gave_generated |= plan
                        .table
                        .columns
                        .iter()
                        .any(|c| c.auto && batch.columns.contains(&c.name));
                    plan
                }
            };
            let (rows, mut errors) = precheck(plan, &mut batch);
            report.failed.append(&mut errors);
            if plan.on_error == OnError::Stop && !report.failed.is_empty() {
                // An earlier batch may hold a failure the database reports only when
                // its open stream ends (MariaDB's LOAD DATA, PostgreSQL's COPY): that
                // one came first, and the pass must fail for it rather than report
                // this later row.
                conn.finish_stream().await?;
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
            // A record whose key is NULL has no key's value: no row (nor other record)
            // has its key, as the database never calls two NULLs equal, so it is
            // inserted like a record that does not give the key.
            let (rows, null_rows) = match &keyless {
                Some(_) if !is_keyless => split_null_keys(plan, &batch.columns, rows),
                _ => (rows, Vec::new()),
            };
            let parts = [(plan, rows), (keyless.as_ref().unwrap_or(plan), null_rows)];
            for (plan, rows) in &parts {
                if rows.is_empty() {
                    continue;
                }
                let plan = *plan;
                let needs_stage = mode != PassMode::Fast || !streams(plan, &batch.columns);
                if needs_stage && staged_columns.as_ref() != Some(&batch.columns) {
                    create_stage(conn, plan, false).await?;
                    staged_columns = Some(batch.columns.clone());
                }
                let ctx = BatchCtx {
                    plan,
                    columns: &batch.columns,
                    rows,
                    source: batch.source.as_deref().map(|s| s.as_str()),
                };
                match mode {
                    PassMode::Fast => happy_batch(conn, &ctx, &mut report).await?,
                    PassMode::Quick => unreachable!("run_unit runs quick passes with quick_pass"),
                    PassMode::Careful => diagnose_batch(conn, &ctx, &mut report).await?,
                }
            }
            if plan.on_error == OnError::Stop && !report.failed.is_empty() {
                conn.finish_stream().await?;
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
