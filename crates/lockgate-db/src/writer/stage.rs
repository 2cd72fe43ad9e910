//! Staging and set-based apply: the staging table, a batch loaded into it, keys the
//! database calls equal merged, the mode's set-based statements over the staged rows,
//! and the happy path of one batch.

use super::*;

/// Whether the key's values are equal exactly when the database calls them equal, so
/// that repeats can be found in memory: integers, booleans, dates and UUIDs, and text
/// compared byte by byte (SQLite's `BINARY`; a PostgreSQL `text`/`varchar` column
/// under the database's default collation, which PostgreSQL only allows to be
/// deterministic). Other text is not (a collation may ignore case, accents or
/// trailing spaces, as MariaDB's all do, and `char(n)` ignores trailing spaces), nor
/// are decimals (`1.0` and `1.00`), floats, times or bytes (a fixed-width column pads
/// them): the database groups those ([`merge_equal_keys`]).
pub(super) fn exact_key(plan: &Plan) -> bool {
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
pub(super) async fn merge_equal_keys(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<Option<Vec<Row>>, DbError> {
    let plan = ctx.plan;
    if plan.mode == WriteMode::Insert || ctx.rows.len() < 2 || exact_key(plan) {
        return Ok(None);
    }
    let d = plan.dialect;
    let names: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    // Counting is cheaper than the window (a repeated key is rare): only when the
    // keys are fewer than the rows does the window say which rows repeat one.
    let counts = conn.query(&d.key_counts(STAGE, &names), &[], None).await?;
    if let Some([rows, keys]) = counts.first().map(Vec::as_slice) {
        if as_u64(rows).is_some() && as_u64(rows) == as_u64(keys) {
            return Ok(None);
        }
    }
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
pub(super) async fn create_stage(conn: &mut Conn, plan: &Plan, narrow: bool) -> Result<(), DbError> {
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
pub(super) fn stage_columns(plan: &Plan, narrow: bool) -> Vec<&lockgate_core::Column> {
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
pub(crate) fn stage_type(d: Dialect, c: &lockgate_core::Column) -> String {
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

pub(super) async fn create_keys_table(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
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
    // Indexed on every engine: the final anti-join (`delete_missing`, and the images
    // of the rows it deletes) probes this table once per target row. Without the
    // index SQLite scanned it for each row: a 22,500-row sync over 20,000 keys took
    // 26 s instead of under one.
    let names: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    conn.batch(&d.create_temp_indexed(KEYS, &cols, &names)).await?;
    Ok(())
}

/// Loads a batch into the staging table (after clearing it).
pub(super) async fn stage_rows(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<(), DbError> {
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
pub(super) struct Applied {
    pub(super) inserted: u64,
    pub(super) updated: u64,
    pub(super) unchanged: u64,
}

/// The mode's set-based statements over the staged rows passing `filter`. Updates
/// touch only rows whose values differ, so re-applying the same data writes nothing
/// (and the counts say what really changed). With capture on, the rows about to
/// change are read first (their images, and no UPDATE at all when none differs),
/// and inserts return their keys, all in the same transaction.
pub(super) async fn apply(conn: &mut Conn, ctx: &BatchCtx<'_>, filter: &str) -> Result<Applied, DbError> {
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
pub(super) async fn count_good(conn: &mut Conn, d: Dialect, filter: &str) -> Result<u64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM {} s WHERE {filter}", d.quote(STAGE));
    Ok(count(conn.query(&sql, &[], None).await?))
}

/// Whether a batch of an insert streams straight into the table. Not when images
/// are captured and the batch leaves columns out: their stored values (defaults,
/// generated keys) must then come back from `INSERT … RETURNING` through staging,
/// so that the image's fingerprint covers the whole row.
pub(super) fn streams(plan: &Plan, columns: &[String]) -> bool {
    plan.mode == WriteMode::Insert
        && !plan.staged_inserts
        && (plan.capture.is_none() || plan.table.columns.iter().all(|c| columns.contains(&c.name)))
}

/// The condition bounding `sync`'s deletes, with its bound values: the user's SQL
/// (as written) and the scope's column = value pairs.
pub(super) fn sync_scope(plan: &Plan) -> (String, Vec<Value>) {
    let d = plan.dialect;
    let mut parts = vec![plan.sync_scope.clone().unwrap_or_else(|| "1 = 1".into())];
    let mut params = Vec::new();
    for (c, v) in &plan.scope {
        params.push(v.clone());
        // Unqualified: the user's condition names the target's columns so too.
        parts.push(format!("{} = {}", d.quote(c), d.param(params.len())));
    }
    (parts.join(" AND "), params)
}

/// Staged rows of `update` whose key matches no row: record failures, found
/// set-based before the UPDATE runs.
pub(super) async fn missing_for_update(conn: &mut Conn, ctx: &BatchCtx<'_>) -> Result<Vec<usize>, DbError> {
    let d = ctx.plan.dialect;
    let sql = format!(
        "SELECT s.{ORD} FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {})",
        d.quote(STAGE),
        d.table(&ctx.plan.table.name),
        d.key_match("t", "s", &ctx.plan.key)
    );
    ordinals(conn.query(&sql, &[], None).await?)
}

/// The happy path for one batch. An engine failure is returned as is; the caller
/// switches to diagnose mode.
pub(super) async fn happy_batch(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    report: &mut WriteReport,
) -> Result<(), PassError> {
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

pub(super) async fn record_keys(conn: &mut Conn, plan: &Plan) -> Result<(), DbError> {
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

pub(super) async fn mark_bad(conn: &mut Conn, d: Dialect, rows: &[usize]) -> Result<(), DbError> {
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
