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
            "table {} has no primary or unique key: what a script does to it cannot be recorded",
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
    let key_in = |alias: &str| -> Vec<String> { key.iter().map(|k| format!("{alias}.{}", d.quote(k))).collect() };

    // Rows changed or gone: the copy's rows that the table no longer holds as they
    // were, page by page in the copy's key order.
    let both: Vec<Kind> = kinds.iter().chain(kinds.iter()).cloned().collect();
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut params = Vec::new();
        let after = match &last {
            Some(l) => format!(" AND ({})", d.after_keys(&key_in("s"), l, &mut params)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {}, {} FROM {} s LEFT JOIN {} t ON {} WHERE ({}){after} ORDER BY {} LIMIT {PAGE}",
            d.columns(Some("s"), &all),
            d.columns(Some("t"), &all),
            d.quote(&before.copy),
            d.table(&table.name),
            d.key_match("t", "s", &key_cols),
            d.differs("s", "t", &cols),
            key_in("s").join(", ")
        );
        let rows = conn.query(&sql, &params, Some(&both)).await?;
        let mut images = Vec::with_capacity(rows.len());
        for row in &rows {
            let (old, new) = row.split_at(all.len());
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
            Some(row) if rows.len() == PAGE => last = Some(key_pos.iter().map(|&p| row[p].clone()).collect()),
            _ => break,
        }
    }

    // Rows added: the table's rows whose key the copy does not hold, page by page in
    // the table's key order (each page one `I` record of keys and fingerprints).
    let mut last: Option<Vec<Value>> = None;
    loop {
        let mut params = Vec::new();
        let after = match &last {
            Some(l) => format!(" AND ({})", d.after_keys(&key_in("t"), l, &mut params)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} t LEFT JOIN {} s ON {} WHERE s.{} IS NULL{after} ORDER BY {} LIMIT {PAGE}",
            d.columns(Some("t"), &all),
            d.table(&table.name),
            d.quote(&before.copy),
            d.key_match("s", "t", &key_cols),
            d.quote(&key[0]),
            key_in("t").join(", ")
        );
        let rows = conn.query(&sql, &params, Some(&kinds)).await?;
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
        match rows.last() {
            Some(row) if rows.len() == PAGE => last = Some(key_pos.iter().map(|&p| row[p].clone()).collect()),
            _ => break,
        }
    }
    Ok(changes)
}
