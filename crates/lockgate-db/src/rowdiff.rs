//! What SQL a user wrote did to a table inside the open transaction, as row images:
//! a temporary copy of the table is taken before the SQL runs, and afterwards the
//! rows that differ from it (changed, deleted, added) are recorded in
//! `lockgate_row_images` like the writer's own, so that a migration's `.sql` script's
//! changes are part of its version's state (a rollback compares against them and puts
//! them back).
//!
//! The copy costs one server-side read and write of the table plus an index on its
//! image key, so that each comparison is one index probe per row. The differences
//! are read and recorded one page at a time in key order ([`PAGE`] rows), so memory
//! stays bounded by a page however many rows the script changed.

use crate::conn::Conn;
use crate::dialect::KeyColumn;
use crate::error::DbError;
use crate::read::Keyset;
use crate::versions::{self, InsertedRows, RowImage};
use crate::writer::image_key;
use lockgate_core::{Kind, Table, Value};

/// How many differing rows are read, and their images written, at a time.
pub const PAGE: usize = 2000;

/// A copy of a table's rows, taken before a script ran.
#[derive(Debug)]
pub struct Before {
    table: Table,
    copy: String,
}

impl Before {
    /// The table copied.
    pub fn table(&self) -> &Table {
        &self.table
    }
}

/// What [`record`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Rows whose values changed.
    pub updated: u64,
    /// Rows gone.
    pub deleted: u64,
    /// Rows added.
    pub inserted: u64,
}

/// Copies `table`'s rows into a temporary table (the `n`th of the script). The
/// table must have an image key ([`crate::writer::can_capture`]).
pub async fn take(conn: &mut Conn, table: &Table, n: usize) -> Result<Before, DbError> {
    let key = image_key(table);
    if key.is_empty() {
        return Err(DbError::Invalid(format!(
            "table {} has no primary key and no unique key of NOT NULL columns: what a script does to it cannot be recorded",
            table.name
        )));
    }
    let d = conn.dialect();
    let copy = format!("lockgate_before_{n}");
    conn.batch(&d.drop_temp(&copy)).await?;
    conn.batch(&d.copy_temp(&copy, &table.name, &key)).await?;
    Ok(Before {
        table: table.clone(),
        copy,
    })
}

/// Records, as images of `module`'s `version`, how `before.table` differs from its
/// copy, then drops the copy.
pub async fn record(conn: &mut Conn, before: Before, module: &str, version: &str) -> Result<Changes, DbError> {
    let result = differences(conn, &before, module, version).await;
    let d = conn.dialect();
    let dropped = conn.batch(&d.drop_temp(&before.copy)).await;
    let changes = result?;
    dropped?;
    Ok(changes)
}

/// Drops the copy without recording anything (the script failed).
pub async fn discard(conn: &mut Conn, before: Before) -> Result<(), DbError> {
    let d = conn.dialect();
    conn.batch(&d.drop_temp(&before.copy)).await
}

async fn differences(conn: &mut Conn, before: &Before, module: &str, version: &str) -> Result<Changes, DbError> {
    let d = conn.dialect();
    let table = &before.table;
    let all: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let key = image_key(table);
    let key_cols: Vec<KeyColumn> = key
        .iter()
        .map(|k| KeyColumn {
            name: k.clone(),
            nullable: false,
        })
        .collect();
    let cols: Vec<&lockgate_core::Column> = table.columns.iter().collect();
    let mut changes = Changes::default();
    let name = table.name.to_string();
    let as_map = |row: &[Value]| -> serde_json::Map<String, serde_json::Value> {
        all.iter().cloned().zip(row.iter().map(Value::to_json)).collect()
    };
    let key_of = |m: &serde_json::Map<String, serde_json::Value>| -> serde_json::Map<String, serde_json::Value> {
        key.iter()
            .map(|k| (k.clone(), m.get(k).cloned().unwrap_or_default()))
            .collect()
    };

    let key_pos: Vec<usize> = key.iter().filter_map(|k| table.column_index(k)).collect();
    let in_alias = |alias: &str| -> Vec<String> { all.iter().map(|c| format!("{alias}.{}", d.quote(c))).collect() };

    // Rows changed or gone: the copy's rows that the table no longer holds as they
    // were, page by page in the copy's key order (`read::Keyset`, the order every
    // keyset reader shares; what the cursor needs is read after both rows).
    let keyset = Keyset::new(d, table, &key, Some("s"))?;
    let mut select: Vec<String> = in_alias("s").into_iter().chain(in_alias("t")).collect();
    let mut both: Vec<Kind> = kinds.iter().chain(kinds.iter()).cloned().collect();
    let cursor_at = keyset.place(&mut select, &mut both);
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut params = Vec::new();
        let after = match &last {
            Some(l) => format!(" AND ({})", keyset.after(l, &mut params)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} s LEFT JOIN {} t ON {} WHERE ({}){after} ORDER BY {} LIMIT {PAGE}",
            select.join(", "),
            d.quote(&before.copy),
            d.table(&table.name),
            d.key_match("t", "s", &key_cols),
            d.differs("s", "t", &cols),
            keyset.order()
        );
        let rows = conn.query(&sql, &params, Some(&both)).await?;
        let mut images = Vec::with_capacity(rows.len());
        for row in &rows {
            let (old, new) = (&row[..all.len()], &row[all.len()..2 * all.len()]);
            let gone = key_pos.iter().all(|&p| new[p].is_null());
            let before_map = as_map(old);
            images.push(RowImage {
                table: name.clone(),
                op: if gone { 'd' } else { 'u' },
                key: key_of(&before_map),
                before: Some(before_map),
                after: (!gone).then(|| as_map(new)),
                after_fingerprint: None,
            });
            if gone {
                changes.deleted += 1;
            } else {
                changes.updated += 1;
            }
        }
        versions::write_images(conn, module, version, &images).await?;
        match rows.last() {
            Some(row) if rows.len() == PAGE => last = Some(cursor_at.iter().map(|&p| row[p].clone()).collect()),
            _ => break,
        }
    }

    // Rows added: the table's rows whose key the copy does not hold, page by page in
    // the table's key order (each page one `I` record of keys and fingerprints).
    let keyset = Keyset::new(d, table, &key, Some("t"))?;
    let mut select = in_alias("t");
    let mut kinds = kinds;
    let cursor_at = keyset.place(&mut select, &mut kinds);
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut params = Vec::new();
        let after = match &last {
            Some(l) => format!(" AND ({})", keyset.after(l, &mut params)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} t LEFT JOIN {} s ON {} WHERE s.{} IS NULL{after} ORDER BY {} LIMIT {PAGE}",
            select.join(", "),
            d.table(&table.name),
            d.quote(&before.copy),
            d.key_match("s", "t", &key_cols),
            d.quote(&key[0]),
            keyset.order()
        );
        let mut rows = conn.query(&sql, &params, Some(&kinds)).await?;
        let tail = rows
            .last()
            .map(|row| cursor_at.iter().map(|&p| row[p].clone()).collect());
        for row in &mut rows {
            row.truncate(all.len());
        }
        let mut added = InsertedRows {
            table: name.clone(),
            key_columns: key.clone(),
            columns: all.clone(),
            ..InsertedRows::default()
        };
        for row in &rows {
            added.keys.push(key_pos.iter().map(|&p| row[p].to_json()).collect());
            added.fingerprints.push(lockgate_core::fingerprint(row));
        }
        changes.inserted += added.keys.len() as u64;
        versions::write_inserted(conn, module, version, &added).await?;
        match tail {
            Some(tail) if rows.len() == PAGE => last = Some(tail),
            _ => break,
        }
    }
    Ok(changes)
}
