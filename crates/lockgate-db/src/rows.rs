//! Rows of a table picked out by their values, not by a keyset page: whole rows by a
//! list of keys (a rollback's current rows, the rows it deletes), and the deletion of
//! all rows or of those whose column holds one of a list of values (a migration's
//! `clearTables`, which reads the images of those rows a page at a time through
//! [`crate::read::TableReader`] first: nothing here reads a whole table).
//! Identifiers are the table's introspected names, quoted by the dialect; every value
//! is a bound parameter.

use crate::{Conn, DbError, Dialect};
use lockgate_core::{Kind, Table, Value};

/// One key: column names (as the table spells them) with their values; a NULL value
/// matches a NULL column.
pub type KeyValues = Vec<(String, Value)>;

/// Which rows of a table: all of them, or those whose column holds one of the values.
#[derive(Clone, Copy, Debug)]
pub enum Filter<'a> {
    /// Every row.
    All,
    /// The rows whose column (named as the table spells it) is one of the values.
    In(&'a str, &'a [Value]),
}

/// `(k1 = ? AND k2 IS NULL) OR …` for the keys, with their bound values.
fn key_condition(d: Dialect, keys: &[KeyValues]) -> (String, Vec<Value>) {
    let mut params = Vec::new();
    let mut ors = Vec::new();
    for key in keys {
        let mut ands = Vec::new();
        for (c, v) in key {
            if v.is_null() {
                ands.push(format!("{} IS NULL", d.quote(c)));
            } else {
                params.push(v.clone());
                ands.push(format!("{} = {}", d.quote(c), d.param(params.len())));
            }
        }
        ors.push(format!("({})", ands.join(" AND ")));
    }
    (ors.join(" OR "), params)
}

/// The filter's condition, with its bound values.
fn filter_condition(d: Dialect, filter: Filter<'_>) -> (String, Vec<Value>) {
    match filter {
        Filter::All => ("1 = 1".to_string(), Vec::new()),
        Filter::In(col, values) => {
            let marks: Vec<String> = (1..=values.len()).map(|n| d.param(n)).collect();
            (format!("{} IN ({})", d.quote(col), marks.join(", ")), values.to_vec())
        }
    }
}

fn all_columns(table: &Table) -> (Vec<String>, Vec<Kind>) {
    (
        table.columns.iter().map(|c| c.name.clone()).collect(),
        table.columns.iter().map(|c| c.kind.clone()).collect(),
    )
}

async fn select(conn: &mut Conn, table: &Table, cond: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let (all, kinds) = all_columns(table);
    let sql = format!(
        "SELECT {} FROM {} WHERE {cond}",
        d.columns(None, &all),
        d.table(&table.name)
    );
    conn.query(&sql, params, Some(&kinds)).await
}

/// Keys per statement: each key is an `OR` term, and SQLite refuses an expression
/// nested deeper than 1,000.
const KEYS_PER_STATEMENT: usize = 400;

/// The rows with these keys, every column in the table's order.
pub async fn select_by_keys(conn: &mut Conn, table: &Table, keys: &[KeyValues]) -> Result<Vec<Vec<Value>>, DbError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let (cond, params) = key_condition(conn.dialect(), chunk);
        out.extend(select(conn, table, &cond, &params).await?);
    }
    Ok(out)
}

/// Deletes the rows with these keys; returns how many went.
pub async fn delete_by_keys(conn: &mut Conn, table: &Table, keys: &[KeyValues]) -> Result<u64, DbError> {
    let d = conn.dialect();
    let mut n = 0;
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let (cond, params) = key_condition(d, chunk);
        n += conn
            .execute(&format!("DELETE FROM {} WHERE {cond}", d.table(&table.name)), &params)
            .await?;
    }
    Ok(n)
}

/// Deletes the filter's rows; returns how many went.
pub async fn delete_where(conn: &mut Conn, table: &Table, filter: Filter<'_>) -> Result<u64, DbError> {
    let d = conn.dialect();
    let (cond, params) = filter_condition(d, filter);
    conn.execute(&format!("DELETE FROM {} WHERE {cond}", d.table(&table.name)), &params)
        .await
}
