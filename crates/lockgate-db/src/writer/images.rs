//! Row images: what a write inserts, changes or deletes, recorded in
//! `lockgate_row_images` in the write's transaction so that a rollback can undo it.

use super::*;

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

/// Whether writes into `table` can record row images (it has a primary key, or a
/// unique key of NOT NULL columns).
pub fn can_capture(table: &lockgate_core::Table) -> bool {
    !image_key(table).is_empty()
}

/// Records the images of the staged rows passing `filter` that an update is about
/// to change (the whole row before, the given columns after). Returns how many.
pub(super) async fn capture_updates(
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
pub(super) async fn capture_inserts(
    conn: &mut Conn,
    ctx: &BatchCtx<'_>,
    whole_rows: Vec<Vec<Value>>,
) -> Result<(), DbError> {
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
pub(super) async fn capture_deletes(
    conn: &mut Conn,
    plan: &Plan,
    scope: &str,
    params: &[Value],
) -> Result<(), DbError> {
    let Some(capture) = &plan.capture else {
        return Ok(());
    };
    // A page at a time in key order (`read::Keyset`, the order every keyset reader
    // shares), so that memory stays bounded by the page however many rows the sync
    // deletes.
    const PAGE: usize = 5_000;
    let d = plan.dialect;
    let all: Vec<String> = plan.table.columns.iter().map(|c| c.name.clone()).collect();
    let key = image_key(&plan.table);
    let keyset = crate::read::Keyset::new(d, &plan.table, &key, Some("t"))?;
    let mut select: Vec<String> = all.iter().map(|c| format!("t.{}", d.quote(c))).collect();
    let mut kinds: Vec<lockgate_core::Kind> = plan.table.columns.iter().map(|c| c.kind.clone()).collect();
    let cursor_at = keyset.place(&mut select, &mut kinds);
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut ps = params.to_vec();
        let after = match &last {
            None => "1 = 1".to_string(),
            Some(values) => keyset.after(values, &mut ps),
        };
        let sql = format!(
            "SELECT {} FROM {} t WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {} k WHERE {}) AND ({after}) \
             ORDER BY {} LIMIT {PAGE}",
            select.join(", "),
            d.table(&plan.table.name),
            d.quote(KEYS),
            d.key_match("t", "k", &plan.key),
            keyset.order()
        );
        let rows = conn.query(&sql, &ps, Some(&kinds)).await?;
        let Some(tail) = rows.last() else { break };
        last = Some(cursor_at.iter().map(|&p| tail[p].clone()).collect());
        let full = rows.len() == PAGE;
        let images: Vec<crate::versions::RowImage> = rows
            .iter()
            .map(|row| crate::versions::RowImage::deleted(&plan.table.name, &all, &row[..all.len()], &key))
            .collect();
        crate::versions::write_images(conn, &capture.module, &capture.version, &images).await?;
        if !full {
            break;
        }
    }
    Ok(())
}
