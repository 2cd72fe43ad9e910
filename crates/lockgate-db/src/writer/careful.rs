//! The careful diagnose of one batch: every column staged, checked set-based, and the
//! rest bisected under savepoints until every failing row is known with the engine's
//! error; when even staging fails, the staging load itself is bisected.

use super::*;

/// Diagnose mode for one batch: stage, check set-based, bisect the rest.
pub(super) async fn diagnose_batch(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    report: &mut WriteReport,
) -> Result<(), PassError> {
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

/// Runs the mode's statements over `rows` (ordinals) under a savepoint; on failure
/// splits the set in two, until single failing rows are left.
pub(super) async fn bisect(
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
pub(super) async fn set_checks(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    bad: &mut HashMap<usize, RowError>,
) -> Result<(), DbError> {
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
                let Some(k) = KeyRepr::of(&row.values, &idx) else {
                    continue;
                };
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

/// When even staging fails, bisect the staging load itself, then diagnose the
/// rows that staged.
pub(super) async fn diagnose_staging(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    report: &mut WriteReport,
) -> Result<(), PassError> {
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
