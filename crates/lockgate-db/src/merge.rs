//! The SQL of `lockgate merge`: re-pointing the rows of a table that reference some
//! rows (the sources) at others (the target), set-based, with each moved row's key
//! captured in a side table of the ledger (`lockgate_merge_<id>_<step>`) in the same
//! transaction, so that an undo needs nothing else; the conflicts such a move would
//! cause in unique keys; the merge history (`lockgate_merges`).
//!
//! A *step* is one reference (a table and its referencing columns) and a *map* from
//! old referenced values to new ones: at the top level every source maps to the
//! target; one level down (a conflicting row merged into its counterpart) each
//! conflicting row's values map to its counterpart's. Statements take at most
//! [`MAP_CHUNK`] map entries each, so a step with many entries is a few statements,
//! never one per row.
//!
//! The side table holds the moved row's key (the referencing table's primary key,
//! else its first unique key of NOT NULL columns, else all its other columns) and
//! the map entry's number: the old and new values are the merge's map, kept in its
//! history row. PostgreSQL moves and captures in one statement (a data-modifying
//! `WITH`); MariaDB and SQLite capture with an `INSERT … SELECT` and then update,
//! inside the same transaction (MariaDB's locking read of the `INSERT … SELECT`
//! and SQLite's single writer keep the two passes over the same rows).

use crate::dialect::KeyColumn;
use crate::error::DbError;
use crate::url::Engine;
use crate::{Conn, Dialect};
use lockgate_core::{Column, Kind, Table, TableName, Value};

/// Counts and entry numbers, read as 64-bit integers.
const INT8: Kind = Kind::Int {
    bytes: 8,
    unsigned: false,
};

/// The most map entries one statement carries (each costs a few bound values).
pub const MAP_CHUNK: usize = 200;

/// The column of a side table holding the map entry's number.
pub const ENTRY: &str = "lockgate_n";

/// One entry of a step's map: the referencing columns' old values and new values.
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    /// The values that move (a source's referenced values).
    pub old: Vec<Value>,
    /// What they become (the target's).
    pub new: Vec<Value>,
}

/// One reference re-pointed: the referencing table, its columns, its row key and
/// the map.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// The referencing table, as described.
    pub table: &'a Table,
    /// Its referencing columns, in the order of the map's values.
    pub columns: &'a [String],
    /// Its row key ([`row_key`]).
    pub key: &'a [KeyColumn],
    /// Old values → new values.
    pub map: &'a [MapEntry],
    /// Keys (in `key`'s order) of rows left where they are although they hold old
    /// values: conflicting rows merged into their counterparts instead.
    pub exclude: &'a [Vec<Value>],
}

/// A row that would collide in a unique key after the move.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRow {
    /// The moving row's key values.
    pub row: Vec<Value>,
    /// The row it would collide with: one already holding the new values, or
    /// another moving row that comes first (lower map entry, then lower key).
    pub counterpart: Vec<Value>,
    /// The unique key's values after the move, in the unique key's column order.
    pub values: Vec<Value>,
    /// The moving row's map entry.
    pub entry: usize,
}

/// The key a side table identifies a referencing table's rows by: the one row
/// images use ([`crate::writer::image_key`]: the primary key, else a unique key of
/// NOT NULL columns); empty for a table without one, which a merge refuses.
pub fn row_key(table: &Table) -> Vec<KeyColumn> {
    crate::writer::image_key(table)
        .into_iter()
        .map(|name| {
            let nullable = table.column(&name).is_none_or(|c| c.nullable);
            KeyColumn { name, nullable }
        })
        .collect()
}

/// A bound value as SQL, typed for the column on PostgreSQL (where a parameter in a
/// `CASE` or `VALUES` list has no type of its own).
fn typed(d: Dialect, params: &mut Vec<Value>, value: &Value, column: &Column) -> String {
    params.push(value.clone());
    let p = d.param(params.len());
    match d.0 {
        Engine::Postgres => format!("CAST({p} AS {})", column.data_type),
        _ => p,
    }
}

fn column<'t>(table: &'t Table, name: &str) -> Result<&'t Column, DbError> {
    table
        .column(name)
        .ok_or_else(|| DbError::Invalid(format!("table {} has no column {name}", table.name)))
}

/// `alias.c1 = v1 AND alias.c2 = v2` for one entry's old (or new) values.
fn equals(
    d: Dialect,
    alias: &str,
    step: &Step<'_>,
    values: &[Value],
    params: &mut Vec<Value>,
) -> Result<String, DbError> {
    let mut parts = Vec::with_capacity(values.len());
    for (c, v) in step.columns.iter().zip(values) {
        let col = column(step.table, c)?;
        parts.push(format!("{alias}.{} = {}", d.quote(&col.name), typed(d, params, v, col)));
    }
    Ok(parts.join(" AND "))
}

/// The rows of `alias` holding any of the chunk's old values (and not excluded).
fn holds_old(
    d: Dialect,
    alias: &str,
    step: &Step<'_>,
    chunk: &[MapEntry],
    params: &mut Vec<Value>,
) -> Result<String, DbError> {
    let holds = if step.columns.len() == 1 {
        let col = column(step.table, &step.columns[0])?;
        let list: Vec<String> = chunk.iter().map(|e| typed(d, params, &e.old[0], col)).collect();
        format!("{alias}.{} IN ({})", d.quote(&col.name), list.join(", "))
    } else {
        let mut any = Vec::with_capacity(chunk.len());
        for e in chunk {
            any.push(format!("({})", equals(d, alias, step, &e.old, params)?));
        }
        format!("({})", any.join(" OR "))
    };
    Ok(format!("{holds}{}", excluded(d, alias, step, params)?))
}

/// ` AND NOT (the row is one of the excluded)`, or nothing. The excluded are rows
/// of a primary key or unique NOT NULL key (never NULL): an `IN` list, which no
/// engine nests (SQLite refuses `OR` chains nested 1,000 deep).
fn excluded(d: Dialect, alias: &str, step: &Step<'_>, params: &mut Vec<Value>) -> Result<String, DbError> {
    if step.exclude.is_empty() {
        return Ok(String::new());
    }
    let cols: Vec<&Column> = step
        .key
        .iter()
        .map(|k| column(step.table, &k.name))
        .collect::<Result<_, _>>()?;
    Ok(format!(" AND NOT ({})", in_list(d, alias, &cols, step.exclude, params)))
}

/// `alias.c IN (…)`, or `(alias.a, alias.b) IN (…)` for several columns.
fn in_list(d: Dialect, alias: &str, cols: &[&Column], keys: &[Vec<Value>], params: &mut Vec<Value>) -> String {
    let mut tuples = Vec::with_capacity(keys.len());
    for key in keys {
        let cells: Vec<String> = cols.iter().zip(key).map(|(c, v)| typed(d, params, v, c)).collect();
        tuples.push(if cells.len() == 1 {
            cells[0].clone()
        } else {
            format!("({})", cells.join(", "))
        });
    }
    let names: Vec<String> = cols.iter().map(|c| format!("{alias}.{}", d.quote(&c.name))).collect();
    if names.len() == 1 {
        format!("{} IN ({})", names[0], tuples.join(", "))
    } else if d.0 == Engine::Mysql {
        format!("({}) IN ({})", names.join(", "), tuples.join(", "))
    } else {
        format!("({}) IN (VALUES {})", names.join(", "), tuples.join(", "))
    }
}

/// `CASE WHEN alias holds entry i's old values THEN <what i> … END`.
fn case_of(
    d: Dialect,
    alias: &str,
    step: &Step<'_>,
    chunk: &[MapEntry],
    first: usize,
    params: &mut Vec<Value>,
    then: &mut dyn FnMut(usize, &MapEntry, &mut Vec<Value>) -> String,
) -> Result<String, DbError> {
    let mut sql = String::from("CASE");
    for (i, e) in chunk.iter().enumerate() {
        let when = equals(d, alias, step, &e.old, params)?;
        let value = then(first + i, e, params);
        sql.push_str(&format!(" WHEN {when} THEN {value}"));
    }
    sql.push_str(" END");
    Ok(sql)
}

/// The new value of referencing column `c` (its position) for a row of `alias`.
fn case_new(
    d: Dialect,
    alias: &str,
    step: &Step<'_>,
    chunk: &[MapEntry],
    c: usize,
    params: &mut Vec<Value>,
) -> Result<String, DbError> {
    let col = column(step.table, &step.columns[c])?.clone();
    case_of(d, alias, step, chunk, 0, params, &mut |_, e, p| {
        typed(d, p, &e.new[c], &col)
    })
}

/// The map entry's number for a row of `alias`.
fn case_entry(
    d: Dialect,
    alias: &str,
    step: &Step<'_>,
    chunk: &[MapEntry],
    first: usize,
    params: &mut Vec<Value>,
) -> Result<String, DbError> {
    case_of(d, alias, step, chunk, first, params, &mut |i, _, _| i.to_string())
}

/// A row key as one comparable text (the values' own texts, joined by a separator
/// no value text holds alone): sets of row keys are kept by it.
pub fn key_text(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\u{1f}")
}

/// `CASE s.lockgate_n WHEN first+j THEN <entry j's old or new value of column i> … END`:
/// a moved row's value, by the map entry its side row recorded.
fn by_entry(
    d: Dialect,
    step: &Step<'_>,
    chunk: &[MapEntry],
    first: usize,
    i: usize,
    new: bool,
    params: &mut Vec<Value>,
) -> Result<String, DbError> {
    let col = column(step.table, &step.columns[i])?;
    let mut case = format!("CASE s.{ENTRY}");
    for (j, e) in chunk.iter().enumerate() {
        let v = if new { &e.new[i] } else { &e.old[i] };
        case.push_str(&format!(" WHEN {} THEN {}", first + j, typed(d, params, v, col)));
    }
    case.push_str(" END");
    Ok(case)
}

/// The kinds of the step's table's columns named in `groups` (in order), then a
/// 64-bit integer for the map entry when `entry`: how a statement's result is typed.
fn kinds_of(step: &Step<'_>, groups: &[&[String]], entry: bool) -> Result<Vec<Kind>, DbError> {
    let mut kinds = Vec::new();
    for c in groups.iter().flat_map(|g| g.iter()) {
        kinds.push(column(step.table, c)?.kind.clone());
    }
    if entry {
        kinds.push(INT8);
    }
    Ok(kinds)
}

fn key_names(key: &[KeyColumn]) -> Vec<String> {
    key.iter().map(|k| k.name.clone()).collect()
}

/// How many rows hold the step's old values.
pub async fn count(conn: &mut Conn, step: &Step<'_>) -> Result<u64, DbError> {
    let d = conn.dialect();
    let mut total = 0;
    for chunk in step.map.chunks(MAP_CHUNK) {
        let mut params = Vec::new();
        let cond = holds_old(d, "t", step, chunk, &mut params)?;
        let sql = format!("SELECT COUNT(*) FROM {} t WHERE {cond}", d.table(&step.table.name));
        let rows = conn.query(&sql, &params, Some(&[INT8])).await?;
        total += rows.first().and_then(|r| r.first()).and_then(as_u64).unwrap_or(0);
    }
    Ok(total)
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Decimal(d) => d.to_i64().and_then(|i| u64::try_from(i).ok()),
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
}

/// Every row the step would move: its key values, then its map entry's number, in
/// pages of `page` rows handed to `f` (the preview; memory stays a page).
pub async fn moving_rows<E: From<DbError> + Send>(
    conn: &mut Conn,
    step: &Step<'_>,
    page: usize,
    f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
) -> Result<(), E> {
    let d = conn.dialect();
    let names = key_names(step.key);
    let kinds = kinds_of(step, &[&names[..]], true)?;
    for (n, chunk) in step.map.chunks(MAP_CHUNK).enumerate() {
        let mut params = Vec::new();
        let entry = case_entry(d, "t", step, chunk, n * MAP_CHUNK, &mut params)?;
        let cond = holds_old(d, "t", step, chunk, &mut params)?;
        let sql = format!(
            "SELECT {}, {entry} FROM {} t WHERE {cond}",
            d.columns(Some("t"), &names),
            d.table(&step.table.name)
        );
        conn.query_pages(&sql, &params, Some(&kinds), page, f).await?;
    }
    Ok(())
}

/// The rows that would collide in the unique key `unique` (columns of the step's
/// table, some of them referencing columns) once the step moved them: with a row
/// already holding the new values, or with another moving row that comes first.
/// Rows whose other unique columns are NULL never collide (NULLs are distinct in a
/// unique key on every engine).
/// At most `limit` are read per statement, so that a merge where nearly every row
/// collides lists the first of them without holding them all.
pub async fn conflicts(
    conn: &mut Conn,
    step: &Step<'_>,
    unique: &[String],
    limit: usize,
) -> Result<Vec<ConflictRow>, DbError> {
    let d = conn.dialect();
    let t = d.table(&step.table.name);
    let names = key_names(step.key);
    let changed: Vec<usize> = step
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| unique.iter().any(|u| u == *c))
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let others: Vec<&String> = unique.iter().filter(|u| !step.columns.contains(u)).collect();
    let same_others = |a: &str, b: &str| {
        others
            .iter()
            .map(|o| format!(" AND {a}.{0} = {b}.{0}", d.quote(o)))
            .collect::<String>()
    };
    let kinds = kinds_of(step, &[&names[..], &names[..], unique], true)?;
    let mut found: Vec<ConflictRow> = Vec::new();
    let split = |row: Vec<Value>| {
        let n = names.len();
        let u = unique.len();
        let entry = row.get(2 * n + u).and_then(as_u64).unwrap_or(0) as usize;
        ConflictRow {
            row: row[..n].to_vec(),
            counterpart: row[n..2 * n].to_vec(),
            values: row[2 * n..2 * n + u].to_vec(),
            entry,
        }
    };
    // The unique key's values after the move, for the moving row r.
    let after = |params: &mut Vec<Value>, chunk: &[MapEntry]| -> Result<String, DbError> {
        let mut cols = Vec::new();
        for u in unique {
            match step.columns.iter().position(|c| c == u) {
                Some(i) => cols.push(case_new(d, "r", step, chunk, i, params)?),
                None => cols.push(format!("r.{}", d.quote(u))),
            }
        }
        Ok(cols.join(", "))
    };
    // With rows already there: c holds, in the changed columns, r's new values.
    for (n, chunk) in step.map.chunks(MAP_CHUNK).enumerate() {
        // Bound values are pushed in the order they appear in the text (MariaDB's
        // `?` are positional).
        let mut params = Vec::new();
        let values = after(&mut params, chunk)?;
        let entry = case_entry(d, "r", step, chunk, n * MAP_CHUNK, &mut params)?;
        let mut on = Vec::new();
        for &i in &changed {
            let col = d.quote(&step.columns[i]);
            on.push(format!("c.{col} = {}", case_new(d, "r", step, chunk, i, &mut params)?));
        }
        // The counterpart stays where it is: a row that moves too is no counterpart
        // here (the pass below pairs moving rows), and a row is never its own (a
        // unique key holding a referencing column the map leaves as it is).
        let cols: Vec<&Column> = step
            .columns
            .iter()
            .map(|c| column(step.table, c))
            .collect::<Result<_, _>>()?;
        let olds: Vec<Vec<Value>> = step.map.iter().map(|e| e.old.clone()).collect();
        let still = in_list(d, "c", &cols, &olds, &mut params);
        let moving = holds_old(d, "r", step, chunk, &mut params)?;
        let sql = format!(
            "SELECT {}, {}, {values}, {entry} FROM {t} r JOIN {t} c ON {}{} AND NOT ({still}) WHERE {moving} LIMIT {limit}",
            d.columns(Some("r"), &names),
            d.columns(Some("c"), &names),
            on.join(" AND "),
            same_others("r", "c"),
        );
        for row in conn.query(&sql, &params, Some(&kinds)).await? {
            found.push(split(row));
        }
    }
    // Among moving rows: rows of different entries that land on the same values.
    // One pass over the moving rows: a window per (values after the move, other
    // columns), ordered by entry then key; every row after the first of another
    // entry conflicts with that first row. The engine groups and compares under the
    // columns' collations, as the unique key does ('Home' and 'home' under NOCASE).
    // A row that collides with a row already there was listed above, against it.
    let clashing: std::collections::HashSet<String> = found.iter().map(|c| key_text(&c.row)).collect();
    if step.map.len() > 1 {
        let cols: Vec<&Column> = step
            .columns
            .iter()
            .map(|c| column(step.table, c))
            .collect::<Result<_, _>>()?;
        let olds: Vec<Vec<Value>> = step.map.iter().map(|e| e.old.clone()).collect();
        let firsts: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, k)| format!("FIRST_VALUE(r.{}) OVER w AS lockgate_f{i}", d.quote(k)))
            .collect();
        let not_null: String = others
            .iter()
            .map(|o| format!(" AND r.{} IS NOT NULL", d.quote(o)))
            .collect();
        // Bound values in text order (MariaDB's `?` are positional): the SELECT
        // list's two entry expressions, the WHERE, then the WINDOW clause.
        let mut params = Vec::new();
        let entry = case_entry(d, "r", step, step.map, 0, &mut params)?;
        let entry_first = case_entry(d, "r", step, step.map, 0, &mut params)?;
        let moving = format!(
            "{}{}{not_null}",
            in_list(d, "r", &cols, &olds, &mut params),
            excluded(d, "r", step, &mut params)?
        );
        let mut partition = Vec::new();
        for &i in &changed {
            partition.push(case_new(d, "r", step, step.map, i, &mut params)?);
        }
        partition.extend(others.iter().map(|o| format!("r.{}", d.quote(o))));
        let order_entry = case_entry(d, "r", step, step.map, 0, &mut params)?;
        let sql = format!(
            "SELECT * FROM (SELECT {keys}, {values_cols}{entry} AS lockgate_e, ROW_NUMBER() OVER w AS lockgate_rn, \
             {firsts}, FIRST_VALUE({entry_first}) OVER w AS lockgate_fe FROM {t} r WHERE {moving} \
             WINDOW w AS (PARTITION BY {partition} ORDER BY {order_entry}, {order_keys})) x \
             WHERE x.lockgate_rn > 1 AND x.lockgate_fe <> x.lockgate_e LIMIT {limit}",
            keys = d.columns(Some("r"), &names),
            values_cols = others
                .iter()
                .map(|o| format!("r.{} AS {}, ", d.quote(o), d.quote(&format!("lockgate_o_{o}"))))
                .collect::<String>(),
            firsts = firsts.join(", "),
            partition = partition.join(", "),
            order_keys = d.columns(Some("r"), &names),
        );
        // key, others, entry, rn, firsts (key), first entry
        // key, others, entry, rn, firsts (key), first entry
        let others_owned: Vec<String> = others.iter().map(|o| o.to_string()).collect();
        let mut kinds = kinds_of(step, &[&names[..], &others_owned[..]], true)?;
        kinds.push(INT8);
        kinds.extend(kinds_of(step, &[&names[..]], true)?);
        let n = names.len();
        let o = others.len();
        for row in conn.query(&sql, &params, Some(&kinds)).await? {
            let key = row[..n].to_vec();
            if clashing.contains(&key_text(&key)) {
                continue;
            }
            let other_vals = &row[n..n + o];
            let entry = as_u64(&row[n + o]).unwrap_or(0) as usize;
            let counterpart = row[n + o + 2..n + o + 2 + n].to_vec();
            let Some(e) = step.map.get(entry) else { continue };
            let values = unique
                .iter()
                .map(|u| match step.columns.iter().position(|c| c == u) {
                    Some(i) => e.new[i].clone(),
                    None => other_vals[others.iter().position(|x| *x == u).unwrap_or(0)].clone(),
                })
                .collect();
            found.push(ConflictRow {
                row: key,
                counterpart,
                values,
                entry,
            });
        }
    }
    Ok(found)
}

/// The side table's columns: the row key with the referencing table's types, and
/// the map entry's number.
fn side_columns(d: Dialect, step: &Step<'_>) -> Result<Vec<(String, String)>, DbError> {
    let mut cols = Vec::new();
    for k in step.key {
        let col = column(step.table, &k.name)?;
        cols.push((col.name.clone(), crate::writer::stage_type(d, col)));
    }
    cols.push((ENTRY.to_string(), d.bigint().to_string()));
    Ok(cols)
}

/// Creates a step's side table (empty). On MariaDB this commits: call it before the
/// merge's transaction there; elsewhere inside it, so that a rollback drops it.
pub async fn create_side(conn: &mut Conn, name: &str, step: &Step<'_>) -> Result<(), DbError> {
    let d = conn.dialect();
    let body = side_columns(d, step)?
        .iter()
        .map(|(n, t)| format!("{} {t}", d.quote(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match d.0 {
        Engine::Mysql => format!("CREATE TABLE {} ({body}) ENGINE=InnoDB", d.quote(name)),
        _ => format!("CREATE TABLE {} ({body})", d.quote(name)),
    };
    conn.batch(&sql).await
}

/// Drops a side table if it is there.
pub async fn drop_side(conn: &mut Conn, name: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    conn.batch(&format!("DROP TABLE IF EXISTS {}", d.quote(name))).await
}

/// Empties a side table (a retried attempt on MariaDB, where it outlives a rollback).
pub async fn clear_side(conn: &mut Conn, name: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    conn.execute(&format!("DELETE FROM {}", d.quote(name)), &[])
        .await
        .map(|_| ())
}

/// Moves the step's rows and records each one's key in the side table `side`, in
/// the open transaction; returns how many rows moved.
pub async fn repoint(conn: &mut Conn, side: &str, step: &Step<'_>) -> Result<u64, DbError> {
    let d = conn.dialect();
    let t = d.table(&step.table.name);
    let s = d.quote(side);
    let names = key_names(step.key);
    let mut side_cols = names.clone();
    side_cols.push(ENTRY.into());
    let mut moved = 0;
    for (n, chunk) in step.map.chunks(MAP_CHUNK).enumerate() {
        let first = n * MAP_CHUNK;
        match d.0 {
            Engine::Postgres => {
                // One pass: the UPDATE returns each moved row's key with its entry
                // (a column of the FROM list), and the INSERT takes them.
                let mut params = Vec::new();
                let mut values = Vec::with_capacity(chunk.len());
                for (i, e) in chunk.iter().enumerate() {
                    let mut cells = vec![(first + i).to_string()];
                    for (c, (o, v)) in step.columns.iter().zip(e.old.iter().zip(&e.new)) {
                        let col = column(step.table, c)?;
                        cells.push(typed(d, &mut params, o, col));
                        cells.push(typed(d, &mut params, v, col));
                    }
                    values.push(format!("({})", cells.join(", ")));
                }
                let skip = excluded(d, "t", step, &mut params)?;
                // RETURNING gives the new values: a key column the step changes is
                // recorded as it was, from the map.
                let returned = names
                    .iter()
                    .map(|k| match step.columns.iter().position(|c| c == k) {
                        Some(i) => format!("m.lockgate_o{i}"),
                        None => format!("t.{}", d.quote(k)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut m_cols = vec![ENTRY.to_string()];
                let mut set = Vec::new();
                let mut on = Vec::new();
                for (i, c) in step.columns.iter().enumerate() {
                    m_cols.push(format!("lockgate_o{i}"));
                    m_cols.push(format!("lockgate_v{i}"));
                    set.push(format!("{} = m.lockgate_v{i}", d.quote(c)));
                    on.push(format!("t.{} = m.lockgate_o{i}", d.quote(c)));
                }
                let sql = format!(
                    "WITH m ({}) AS (VALUES {}), moved AS (UPDATE {t} t SET {} FROM m WHERE {}{skip} RETURNING {}, m.{ENTRY}) \
                     INSERT INTO {s} ({}) SELECT * FROM moved",
                    m_cols.join(", "),
                    values.join(", "),
                    set.join(", "),
                    on.join(" AND "),
                    returned,
                    d.columns(None, &side_cols),
                );
                moved += conn.execute(&sql, &params).await?;
            }
            _ => {
                let mut params = Vec::new();
                let entry = case_entry(d, "t", step, chunk, first, &mut params)?;
                let cond = holds_old(d, "t", step, chunk, &mut params)?;
                let captured = conn
                    .execute(
                        &format!(
                            "INSERT INTO {s} ({}) SELECT {}, {entry} FROM {t} t WHERE {cond}",
                            d.columns(None, &side_cols),
                            d.columns(Some("t"), &names)
                        ),
                        &params,
                    )
                    .await?;
                let mut params = Vec::new();
                let updated = if d.0 == Engine::Mysql && step.columns.len() > 1 {
                    // MariaDB assigns left to right, each seeing the ones before: the
                    // new values come from the side table's entry, not the old columns.
                    let mut set = Vec::new();
                    for (i, c) in step.columns.iter().enumerate() {
                        let new = by_entry(d, step, chunk, first, i, true, &mut params)?;
                        set.push(format!("t.{} = {new}", d.quote(c)));
                    }
                    let on = d.key_match("t", "s", step.key);
                    let lo = first;
                    let hi = first + chunk.len();
                    // The side table's key may match rows that do not move (a key
                    // without the referencing columns): only rows holding the old values.
                    let mut held = Vec::new();
                    for (i, c) in step.columns.iter().enumerate() {
                        let old = by_entry(d, step, chunk, first, i, false, &mut params)?;
                        held.push(format!(" AND t.{} = {old}", d.quote(c)));
                    }
                    conn.execute(
                        &format!(
                            "UPDATE {t} t JOIN {s} s ON {on} SET {} WHERE s.{ENTRY} >= {lo} AND s.{ENTRY} < {hi}{}",
                            set.join(", "),
                            held.concat()
                        ),
                        &params,
                    )
                    .await?
                } else {
                    let mut set = Vec::new();
                    for i in 0..step.columns.len() {
                        let value = case_new(d, "t", step, chunk, i, &mut params)?;
                        set.push(format!("{} = {value}", d.quote(&step.columns[i])));
                    }
                    let cond = holds_old(d, "t", step, chunk, &mut params)?;
                    // SQLite and MariaDB name the target without an alias in UPDATE's
                    // SET; the alias `t` is declared for the conditions.
                    let sql = match d.0 {
                        Engine::Mysql => format!("UPDATE {t} t SET {} WHERE {cond}", prefix_set(&set, "t")),
                        _ => format!("UPDATE {t} AS t SET {} WHERE {cond}", set.join(", ")),
                    };
                    conn.execute(&sql, &params).await?
                };
                if updated != captured {
                    return Err(DbError::Invalid(format!(
                        "table {}: {captured} rows were recorded for the merge but {updated} were moved; \
                         nothing was kept: run the merge again",
                        step.table.name
                    )));
                }
                moved += updated;
            }
        }
    }
    Ok(moved)
}

fn prefix_set(set: &[String], alias: &str) -> String {
    set.iter()
        .map(|s| format!("{alias}.{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The row key columns a side table's row finds its row by after the move: those
/// the step does not change (a key column that is a referencing column holds the
/// new value now, which the callers compare through the map).
fn unchanged_key(step: &Step<'_>) -> Vec<KeyColumn> {
    step.key
        .iter()
        .filter(|k| !step.columns.contains(&k.name))
        .cloned()
        .collect()
}

/// `left.k = right.k AND …` over [`unchanged_key`] (`1 = 1` when there is none).
fn unchanged_match(d: Dialect, left: &str, right: &str, step: &Step<'_>) -> String {
    let key = unchanged_key(step);
    if key.is_empty() {
        "1 = 1".into()
    } else {
        d.key_match(left, right, &key)
    }
}

/// The side table's rows whose referencing row is gone or no longer holds the new
/// values the merge gave it (changed since): key values then entry, at most `limit`.
pub async fn changed_since(
    conn: &mut Conn,
    side: &str,
    step: &Step<'_>,
    limit: usize,
) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let names = key_names(step.key);
    let kinds = kinds_of(step, &[&names[..]], true)?;
    // Each recorded row is looked up by its key (a join the planner answers from the
    // key's index, whatever the statistics say about the new values), a key column
    // the merge changed through its new value; the other re-pointed columns are
    // compared after.
    let mut params = Vec::new();
    let new_of = |i: usize, params: &mut Vec<Value>| -> Result<String, DbError> {
        let new = by_entry(d, step, step.map, 0, i, true, params)?;
        Ok(format!("t.{} = {new}", d.quote(&step.columns[i])))
    };
    let mut on = vec![unchanged_match(d, "t", "s", step)];
    let mut still = Vec::new();
    for (i, c) in step.columns.iter().enumerate() {
        if step.key.iter().any(|k| &k.name == c) {
            on.push(new_of(i, &mut params)?);
        }
    }
    for (i, c) in step.columns.iter().enumerate() {
        if !step.key.iter().any(|k| &k.name == c) {
            still.push(new_of(i, &mut params)?);
        }
    }
    let gone = format!("t.{} IS NULL", d.quote(&step.key[0].name));
    // A column set to NULL since compares as unknown: that is changed too.
    let condition = if still.is_empty() {
        gone
    } else {
        format!("{gone} OR NOT COALESCE(({}), FALSE)", still.join(" AND "))
    };
    let sql = format!(
        "SELECT {}, s.{ENTRY} FROM {} s LEFT JOIN {} t ON {} WHERE {condition} LIMIT {limit}",
        d.columns(Some("s"), &names),
        d.quote(side),
        d.table(&step.table.name),
        on.join(" AND "),
    );
    conn.query(&sql, &params, Some(&kinds)).await
}

/// Puts the step's moved rows back to their old values from the side table, in
/// the open transaction. Without `overwrite` only rows still holding the new
/// values are touched. Returns how many rows were put back.
pub async fn undo_repoint(conn: &mut Conn, side: &str, step: &Step<'_>, overwrite: bool) -> Result<u64, DbError> {
    let d = conn.dialect();
    let t = d.table(&step.table.name);
    let s = d.quote(side);
    let on = unchanged_match(d, "t", "s", step);
    let mut total = 0;
    for (n, chunk) in step.map.chunks(MAP_CHUNK).enumerate() {
        let first = n * MAP_CHUNK;
        // The SET's values are bound before the WHERE's (text order).
        let mut params = Vec::new();
        let mut set = Vec::new();
        for (i, c) in step.columns.iter().enumerate() {
            set.push((d.quote(c), by_entry(d, step, chunk, first, i, false, &mut params)?));
        }
        let mut filter = format!("s.{ENTRY} >= {first} AND s.{ENTRY} < {}", first + chunk.len());
        // Only rows that still hold what the merge gave them; with `overwrite`, any
        // row of the recorded key (a key column the merge changed still has to hold
        // the new value: it is how the row is found).
        for (i, c) in step.columns.iter().enumerate() {
            if overwrite && !step.key.iter().any(|k| &k.name == c) {
                continue;
            }
            let new = by_entry(d, step, chunk, first, i, true, &mut params)?;
            filter.push_str(&format!(" AND t.{} = {new}", d.quote(c)));
        }
        // MariaDB joins in the UPDATE and names the target's columns through its
        // alias; PostgreSQL and SQLite take the side table in FROM.
        let assign = |prefix: &str| {
            set.iter()
                .map(|(c, v)| format!("{prefix}{c} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = match d.0 {
            Engine::Mysql => format!("UPDATE {t} t JOIN {s} s ON {on} SET {} WHERE {filter}", assign("t.")),
            _ => format!("UPDATE {t} AS t SET {} FROM {s} s WHERE {on} AND {filter}", assign("")),
        };
        total += conn.execute(&sql, &params).await?;
    }
    Ok(total)
}

/// The side table's rows (key values then entry), in pages handed to `f`; at most
/// `limit` rows when given.
pub async fn side_rows<E: From<DbError> + Send>(
    conn: &mut Conn,
    side: &str,
    step: &Step<'_>,
    limit: Option<u64>,
    page: usize,
    f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
) -> Result<(), E> {
    let d = conn.dialect();
    let names = key_names(step.key);
    let kinds = kinds_of(step, &[&names[..]], true)?;
    let limit = limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
    let sql = format!(
        "SELECT {}, {ENTRY} FROM {} ORDER BY {}{limit}",
        d.columns(None, &names),
        d.quote(side),
        d.columns(None, &names),
    );
    conn.query_pages(&sql, &[], Some(&kinds), page, f).await
}

/// Rows of `table` whose key is one of `keys` and that match the user's condition
/// `condition` (SQL as written, e.g. a soft-delete flag): their key values.
pub async fn keys_matching(
    conn: &mut Conn,
    table: &Table,
    key: &[String],
    keys: &[Vec<Value>],
    condition: &str,
) -> Result<Vec<Vec<Value>>, DbError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let d = conn.dialect();
    let cols: Vec<&Column> = key.iter().map(|c| column(table, c)).collect::<Result<_, _>>()?;
    let kinds: Vec<Kind> = cols.iter().map(|c| c.kind.clone()).collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(MAP_CHUNK) {
        let mut params = Vec::new();
        let sql = format!(
            "SELECT {} FROM {} t WHERE {} AND ({condition})",
            d.columns(Some("t"), key),
            d.table(&table.name),
            in_list(d, "t", &cols, chunk, &mut params),
        );
        out.extend(conn.query(&sql, &params, Some(&kinds)).await?);
    }
    Ok(out)
}

/// Sets `assignments` (column, the user's SQL expression) on the rows of `table`
/// with these keys; returns how many rows changed. The expressions are the user's
/// SQL, executed as written; the columns were checked against the table.
pub async fn set_rows(
    conn: &mut Conn,
    table: &Table,
    key: &[String],
    keys: &[Vec<Value>],
    assignments: &[(String, String)],
) -> Result<u64, DbError> {
    if keys.is_empty() || assignments.is_empty() {
        return Ok(0);
    }
    let d = conn.dialect();
    let cols: Vec<&Column> = key.iter().map(|c| column(table, c)).collect::<Result<_, _>>()?;
    let set = assignments
        .iter()
        .map(|(c, e)| format!("{} = ({e})", d.quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut n = 0;
    for chunk in keys.chunks(MAP_CHUNK) {
        let mut params = Vec::new();
        // The user's expressions name the table's columns unqualified, which the
        // alias leaves them free to do on every engine.
        let sql = format!(
            "UPDATE {} AS t SET {set} WHERE {}",
            d.table(&table.name),
            in_list(d, "t", &cols, chunk, &mut params)
        );
        n += conn.execute(&sql, &params).await?;
    }
    Ok(n)
}

/// Checks a user's SQL expression or condition against `table` without changing
/// anything (a query that returns no row), so that a typo is a clear error before
/// any write: `SELECT expr FROM table WHERE 1 = 0`.
pub async fn check_expression(conn: &mut Conn, table: &TableName, expr: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    conn.query(
        &format!("SELECT ({expr}) FROM {} WHERE 1 = 0", d.table(table)),
        &[],
        None,
    )
    .await
    .map(|_| ())
}

/// Lockgate's own tables a merge writes its side tables as: `lockgate_merge_<id>_<step>`.
pub fn side_name(merge: i64, step: usize) -> String {
    format!("lockgate_merge_{merge}_{step}")
}

/// One merge in the history (`lockgate_merges`). The JSON columns are written and
/// read by the merge engine; this layer keeps them as text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergeRecord {
    /// Its id.
    pub id: i64,
    /// The definition's name (`[merges.NAME]`), if one was used.
    pub name: Option<String>,
    /// The merged table.
    pub table: String,
    /// The sources' keys (JSON).
    pub sources: String,
    /// The target's key (JSON).
    pub target: String,
    /// The options (JSON).
    pub options: String,
    /// `running`, `completed`, `failed`, `aborted_conflicts`, `preview`, `undone`.
    pub status: String,
    /// Who ran it (user, host, process).
    pub holder: String,
    /// Its run in `lockgate_runs`.
    pub run_id: Option<i64>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// How long it took.
    pub duration_ms: Option<i64>,
    /// Rows per table (JSON).
    pub counts: Option<String>,
    /// The conflicts (JSON).
    pub conflicts: Option<String>,
    /// The steps with their maps and side tables (JSON): what an undo reads.
    pub plan: Option<String>,
    /// The error, for a failed merge.
    pub error: Option<String>,
    /// When it was undone.
    pub undone_at: Option<String>,
}

const RECORD_COLUMNS: &str = "id, name, table_name, sources, target, options, status, holder, run_id, started_at, \
     ended_at, duration_ms, counts, conflicts, plan, error, undone_at";

fn opt_text(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::TimestampTz(t) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        other => Some(other.to_string()),
    }
}

fn record(row: &[Value]) -> MergeRecord {
    let t = |i: usize| row.get(i).and_then(cell_text);
    let n = |i: usize| row.get(i).and_then(|v| as_u64(v).map(|x| x as i64));
    MergeRecord {
        id: n(0).unwrap_or(0),
        name: t(1),
        table: t(2).unwrap_or_default(),
        sources: t(3).unwrap_or_default(),
        target: t(4).unwrap_or_default(),
        options: t(5).unwrap_or_default(),
        status: t(6).unwrap_or_default(),
        holder: t(7).unwrap_or_default(),
        run_id: n(8),
        started_at: t(9).unwrap_or_default(),
        ended_at: t(10),
        duration_ms: n(11),
        counts: t(12),
        conflicts: t(13),
        plan: t(14),
        error: t(15),
        undone_at: t(16),
    }
}

/// Records a merge's start (status `running`, or the final status of one that
/// ends before any write: a preview, an abort); returns its id.
pub async fn insert_record(conn: &mut Conn, r: &MergeRecord) -> Result<i64, DbError> {
    let d = conn.dialect();
    let p: Vec<String> = (1..=9).map(|i| d.param(i)).collect();
    let sql = format!(
        "INSERT INTO lockgate_merges (name, table_name, sources, target, options, status, holder, run_id, started_at) \
         VALUES ({})",
        p.join(", ")
    );
    conn.insert_returning_id(
        &sql,
        &[
            opt_text(&r.name),
            Value::Text(r.table.clone()),
            Value::Text(r.sources.clone()),
            Value::Text(r.target.clone()),
            Value::Text(r.options.clone()),
            Value::Text(r.status.clone()),
            Value::Text(r.holder.clone()),
            r.run_id.map_or(Value::Null, Value::Int),
            crate::ledger::now(),
        ],
        "id",
    )
    .await
}

/// Records a merge's end: its status, counts, conflicts, plan and error.
pub async fn finish_record(conn: &mut Conn, r: &MergeRecord) -> Result<(), DbError> {
    write_end(conn, r, "").await.map(|_| ())
}

/// Records the end of a merge that did not complete, unless it is recorded as
/// completed already (its COMMIT took although the merge lost track of it): a
/// completed merge's record, and so its undo, is never overwritten.
pub async fn finish_unless_completed(conn: &mut Conn, r: &MergeRecord) -> Result<bool, DbError> {
    Ok(write_end(conn, r, " AND status <> 'completed' AND status <> 'undone'").await? == 1)
}

async fn write_end(conn: &mut Conn, r: &MergeRecord, unless: &str) -> Result<u64, DbError> {
    let d = conn.dialect();
    let p: Vec<String> = (1..=8).map(|i| d.param(i)).collect();
    let sql = format!(
        "UPDATE lockgate_merges SET status = {}, ended_at = {}, duration_ms = {}, counts = {}, conflicts = {}, \
         plan = {}, error = {} WHERE id = {}{unless}",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    );
    conn.execute(
        &sql,
        &[
            Value::Text(r.status.clone()),
            crate::ledger::now(),
            r.duration_ms.map_or(Value::Null, Value::Int),
            opt_text(&r.counts),
            opt_text(&r.conflicts),
            opt_text(&r.plan),
            opt_text(&r.error),
            Value::Int(r.id),
        ],
    )
    .await
}

/// Marks a completed merge undone (in the undo's transaction); false when it was
/// not `completed` any more (another undo got there first).
pub async fn mark_undone(conn: &mut Conn, id: i64) -> Result<bool, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "UPDATE lockgate_merges SET status = 'undone', undone_at = {} WHERE id = {} AND status = 'completed'",
        d.param(1),
        d.param(2)
    );
    Ok(conn.execute(&sql, &[crate::ledger::now(), Value::Int(id)]).await? == 1)
}

/// The merges, newest first, at most `limit`; `None` when the database has no
/// merge history yet.
pub async fn records(conn: &mut Conn, limit: u32) -> Result<Option<Vec<MergeRecord>>, DbError> {
    if conn.describe(&TableName::new("lockgate_merges")).await?.is_none() {
        return Ok(None);
    }
    let sql = format!("SELECT {RECORD_COLUMNS} FROM lockgate_merges ORDER BY id DESC LIMIT {limit}");
    let rows = conn.query(&sql, &[], None).await?;
    Ok(Some(rows.iter().map(|r| record(r)).collect()))
}

/// The merges still recorded `running` (in progress, or whose process went away).
pub async fn running_records(conn: &mut Conn) -> Result<Vec<MergeRecord>, DbError> {
    if conn.describe(&TableName::new("lockgate_merges")).await?.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {RECORD_COLUMNS} FROM lockgate_merges WHERE status = 'running' ORDER BY id");
    let rows = conn.query(&sql, &[], None).await?;
    Ok(rows.iter().map(|r| record(r)).collect())
}

/// One merge by id.
pub async fn record_by_id(conn: &mut Conn, id: i64) -> Result<Option<MergeRecord>, DbError> {
    if conn.describe(&TableName::new("lockgate_merges")).await?.is_none() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM lockgate_merges WHERE id = {}",
        conn.dialect().param(1)
    );
    let rows = conn.query(&sql, &[Value::Int(id)], None).await?;
    Ok(rows.first().map(|r| record(r)))
}

/// Sets `columns` to `values` on the row of `table` whose `key` columns hold
/// `key_values` (an undo putting back a row the merge `set:`); returns 0 or 1.
pub async fn update_row(
    conn: &mut Conn,
    table: &Table,
    key: &[String],
    key_values: &[Value],
    columns: &[String],
    values: &[Value],
) -> Result<u64, DbError> {
    let d = conn.dialect();
    let mut params = Vec::new();
    let mut set = Vec::new();
    for (c, v) in columns.iter().zip(values) {
        let col = column(table, c)?;
        set.push(format!("{} = {}", d.quote(&col.name), typed(d, &mut params, v, col)));
    }
    let mut cond = Vec::new();
    for (c, v) in key.iter().zip(key_values) {
        let col = column(table, c)?;
        cond.push(format!("{} = {}", d.quote(&col.name), typed(d, &mut params, v, col)));
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        d.table(&table.name),
        set.join(", "),
        cond.join(" AND ")
    );
    conn.execute(&sql, &params).await
}

/// Begins a merge's (or an undo's) transaction: REPEATABLE READ on PostgreSQL, so
/// that its plan and its statements see the same rows (a row changed meanwhile is a
/// serialization failure, and the attempt is retried). `read_only` (a preview)
/// takes no write lock where the engine would (SQLite's `BEGIN IMMEDIATE`).
pub async fn begin(conn: &mut Conn, read_only: bool) -> Result<(), DbError> {
    match (conn.engine(), read_only) {
        (Engine::Postgres, _) => conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ").await,
        (Engine::Sqlite, true) => conn.batch("BEGIN DEFERRED").await,
        _ => conn.begin().await,
    }
}

/// Bounds each statement of this session on the server to `left` (PostgreSQL
/// `statement_timeout`, MariaDB `max_statement_time`, MySQL `max_execution_time`),
/// so that nothing runs on after the merge has given up, and row-lock waits to
/// `lock_wait` when given. SQLite has no such bound: its statements run to their end.
pub async fn limit_session(
    conn: &mut Conn,
    left: std::time::Duration,
    lock_wait: Option<std::time::Duration>,
) -> Result<(), DbError> {
    let left = left.max(std::time::Duration::from_millis(1));
    match conn.engine() {
        Engine::Postgres => {
            conn.batch(&format!("SET statement_timeout = {}", left.as_millis()))
                .await?;
            if let Some(w) = lock_wait {
                conn.batch(&format!("SET lock_timeout = {}", w.as_millis().max(1)))
                    .await?;
            }
        }
        Engine::Mysql => {
            if let Some(server) = conn.mysql_server() {
                conn.batch(&server.statement_limit_sql(left.as_secs_f64())).await?;
            }
            if let Some(w) = lock_wait {
                conn.batch(&format!(
                    "SET SESSION innodb_lock_wait_timeout = {}",
                    w.as_secs().max(1)
                ))
                .await?;
            }
        }
        Engine::Sqlite => {}
    }
    Ok(())
}

/// The rows of `table` that reference rows about to be deleted through one of its
/// foreign keys (`columns` → the deleted rows' `values` of the referenced columns):
/// how many. What is left pointing at a deleted row would be cascaded, nulled or
/// refused by the engine, none of which the merge could undo.
pub async fn referencing(
    conn: &mut Conn,
    table: &Table,
    columns: &[String],
    values: &[Vec<Value>],
) -> Result<u64, DbError> {
    let map: Vec<MapEntry> = values
        .iter()
        .filter(|v| v.iter().all(|x| !x.is_null()))
        .map(|v| MapEntry {
            old: v.clone(),
            new: v.clone(),
        })
        .collect();
    if map.is_empty() {
        return Ok(0);
    }
    let step = Step {
        table,
        columns,
        key: &[],
        map: &map,
        exclude: &[],
    };
    count(conn, &step).await
}
