//! The rows an `INSERT … SELECT` from a staging table inserted, as stored (defaults
//! and generated keys filled in), where the server has no `INSERT … RETURNING`
//! (MySQL; see [`crate::mysql_server::Server::insert_returning`]). The writer needs
//! them for the row images of a migration.
//!
//! The staged rows about to be inserted are listed first (by their ordinal); then:
//! - when the data gives every column of the row's image key, one `INSERT … SELECT`,
//!   and the rows are read back by joining the table to the staged keys;
//! - when the key is the table's AUTO_INCREMENT column, which the data leaves to the
//!   server, the rows are inserted one statement each and read back by the ids the
//!   server reports (`LAST_INSERT_ID()` of a one-row insert is exactly its id, in
//!   every `innodb_autoinc_lock_mode`; the ids of a many-row insert need not be
//!   consecutive). Slower, and only on this path.
//!
//! Anything else cannot tell which rows it inserted and is refused before writing.

use crate::conn::Conn;
use crate::dialect::KeyColumn;
use crate::error::DbError;
use lockgate_core::{Kind, Table, Value};

/// Staged ordinals or ids per `IN` list.
const CHUNK: usize = 1_000;

/// What [`insert_select_read_back`] inserts: staged rows of `staging` (alias `s`)
/// passing `filter` and, with `missing_key`, without a row of that key in the
/// table; the given `columns`. `ordinal` is the staging table's row number column,
/// `image_key` the columns that tell the table's rows apart.
pub(crate) struct StagedInsert<'a> {
    /// The target table, as introspected.
    pub table: &'a Table,
    /// The staging table's name.
    pub staging: &'a str,
    /// Its row-number column.
    pub ordinal: &'a str,
    /// The columns the data gives.
    pub columns: &'a [String],
    /// Insert only rows whose key has no row yet (the key modes).
    pub missing_key: Option<&'a [KeyColumn]>,
    /// Which staged rows take part (SQL over alias `s`).
    pub filter: &'a str,
    /// The columns that tell the table's rows apart.
    pub image_key: &'a [String],
}

/// Inserts as [`StagedInsert`] says and returns the inserted rows, every column of
/// the table in its order, typed by the columns' kinds.
pub(crate) async fn insert_select_read_back(conn: &mut Conn, w: &StagedInsert<'_>) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let t = d.table(&w.table.name);
    let all: Vec<String> = w.table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = w.table.columns.iter().map(|c| c.kind.clone()).collect();
    let not_given: Vec<&String> = w.image_key.iter().filter(|k| !w.columns.contains(k)).collect();
    // Refused before anything is written: a key neither given nor generated.
    let generated = match not_given.as_slice() {
        [] => None,
        [one] => match w.table.column(one) {
            Some(c) if c.auto && !w.image_key.is_empty() => Some(c.name.clone()),
            _ => return Err(cannot_tell(w)),
        },
        _ => return Err(cannot_tell(w)),
    };

    let mut to_insert = format!(
        "SELECT s.{ord} FROM {stage} s WHERE {filter}",
        ord = d.quote(w.ordinal),
        stage = d.quote(w.staging),
        filter = w.filter
    );
    if let Some(key) = w.missing_key {
        to_insert.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {t} t WHERE {})",
            d.key_match("t", "s", key)
        ));
    }
    to_insert.push_str(&format!(" ORDER BY s.{}", d.quote(w.ordinal)));
    let ordinals: Vec<i64> = conn
        .query(
            &to_insert,
            &[],
            Some(&[Kind::Int {
                bytes: 8,
                unsigned: false,
            }]),
        )
        .await?
        .iter()
        .filter_map(|r| match r.first() {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        })
        .collect();
    if ordinals.is_empty() {
        return Ok(Vec::new());
    }

    let select_all = d.columns(Some("t"), &all);
    let mut rows = Vec::with_capacity(ordinals.len());
    match generated {
        None => {
            let inserted = conn
                .execute(
                    &d.insert_select(&w.table.name, w.staging, w.columns, w.missing_key, w.filter),
                    &[],
                )
                .await?;
            if inserted != ordinals.len() as u64 {
                return Err(changed_meanwhile(w, ordinals.len(), inserted));
            }
            let on = w
                .image_key
                .iter()
                .map(|k| format!("t.{0} = s.{0}", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            for chunk in ordinals.chunks(CHUNK) {
                let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT {select_all} FROM {t} t JOIN {stage} s ON {on} WHERE s.{ord} IN ({list})",
                    stage = d.quote(w.staging),
                    ord = d.quote(w.ordinal)
                );
                rows.extend(conn.query(&sql, &[], Some(&kinds)).await?);
            }
        }
        Some(id_column) => {
            let one = format!(
                "INSERT INTO {t} ({}) SELECT {} FROM {} s WHERE s.{} = {}",
                d.columns(None, w.columns),
                d.columns(Some("s"), w.columns),
                d.quote(w.staging),
                d.quote(w.ordinal),
                d.param(1)
            );
            let mut ids = Vec::with_capacity(ordinals.len());
            for n in &ordinals {
                if conn.execute(&one, &[Value::Int(*n)]).await? != 1 {
                    return Err(changed_meanwhile(w, 1, 0));
                }
                let id = conn.last_insert_id().ok_or_else(|| {
                    DbError::Internal(format!(
                        "inserting into {}: the server reported no AUTO_INCREMENT id",
                        w.table.name
                    ))
                })?;
                ids.push(id);
            }
            for chunk in ids.chunks(CHUNK) {
                let list = chunk.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT {select_all} FROM {t} t WHERE t.{} IN ({list})",
                    d.quote(&id_column)
                );
                rows.extend(conn.query(&sql, &[], Some(&kinds)).await?);
            }
        }
    }
    if rows.len() != ordinals.len() {
        return Err(changed_meanwhile(w, ordinals.len(), rows.len() as u64));
    }
    Ok(rows)
}

fn cannot_tell(w: &StagedInsert<'_>) -> DbError {
    DbError::Invalid(format!(
        "table {}: this server has no INSERT … RETURNING (MySQL), and the data does not give the rows' key ({}), \
         which is not an AUTO_INCREMENT column either: Lockgate cannot tell which rows it inserted to record \
         their images for rollback; give the key's values in the data",
        w.table.name,
        w.image_key.join(", ")
    ))
}

fn changed_meanwhile(w: &StagedInsert<'_>, expected: usize, found: u64) -> DbError {
    DbError::Invalid(format!(
        "table {}: {expected} rows were to be inserted and {found} were; another writer changed the table \
         meanwhile: run again",
        w.table.name
    ))
}
