//! Reading a transfer's source: a table or a query the user wrote, seen through a
//! projection (destination column ← source column or SQL expression).
//!
//! Two reads: the keys, page by page in key order (keyset pagination over the
//! projected key expressions, so a 10M-row source reads with the memory of one page),
//! to build an export's row set; and the rows of one page of that row set, fetched by
//! key (`WHERE key IN (…)`, values bound). The user's query and expressions are run as
//! written, wrapped as a derived table; only identifiers Lockgate resolved are quoted in.

use crate::conn::Conn;
use crate::error::DbError;
use lockgate_core::{Kind, TableName, Value};

/// Where source rows come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    /// A table (its name as introspection reported it).
    Table(TableName),
    /// A query the user wrote (`--source-query`), run as a derived table.
    Query(String),
}

/// One projected column's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceExpr {
    /// A column of the relation (a name introspection reported).
    Column(String),
    /// An SQL expression the user wrote, over the relation's columns.
    Sql(String),
}

/// Source columns per output column (the destination's names), and the key.
#[derive(Clone, Debug)]
pub struct Projection {
    /// Output name and its source, in output order.
    pub columns: Vec<(String, SourceExpr)>,
    /// Positions in `columns` of the key columns.
    pub key: Vec<usize>,
    /// The kind each output value is read as (one per column; [`Kind::Any`] keeps
    /// the engine's own type).
    pub kinds: Vec<Kind>,
}

const ALIAS: &str = "lg_src";

fn from_clause(conn: &Conn, relation: &Relation) -> String {
    let d = conn.dialect();
    match relation {
        Relation::Table(t) => format!("{} {ALIAS}", d.table(t)),
        // The user's query as written; a trailing semicolon would end the statement,
        // and the newlines keep a trailing `-- comment` from swallowing the alias.
        Relation::Query(q) => format!("(\n{}\n) {ALIAS}", q.trim().trim_end_matches(';')),
    }
}

fn expr(conn: &Conn, e: &SourceExpr) -> String {
    match e {
        SourceExpr::Column(c) => format!("{ALIAS}.{}", conn.dialect().quote(c)),
        SourceExpr::Sql(s) => format!("({s})"),
    }
}

/// The result columns of the relation (names and kinds), without reading rows.
pub async fn relation_columns(conn: &mut Conn, relation: &Relation) -> Result<Vec<(String, Kind)>, DbError> {
    let sql = format!("SELECT * FROM {}", from_clause(conn, relation));
    conn.query_columns(&sql).await
}

/// The kinds the projection's expressions produce, from preparing the select.
pub async fn projection_kinds(
    conn: &mut Conn,
    relation: &Relation,
    projection: &[(String, SourceExpr)],
) -> Result<Vec<Kind>, DbError> {
    let list: Vec<String> = projection.iter().map(|(_, e)| expr(conn, e)).collect();
    let sql = format!("SELECT {} FROM {}", list.join(", "), from_clause(conn, relation));
    Ok(conn.query_columns(&sql).await?.into_iter().map(|(_, k)| k).collect())
}

/// Whether some row of `relation` has a NULL in the projection's key. Keyset paging
/// cannot be trusted to meet such rows (PostgreSQL sorts NULLs last, and `key > last`
/// is never true for them), so they are looked for first.
pub async fn has_null_key(conn: &mut Conn, relation: &Relation, projection: &Projection) -> Result<bool, DbError> {
    let conds: Vec<String> = projection
        .key
        .iter()
        .map(|&i| format!("({}) IS NULL", expr(conn, &projection.columns[i].1)))
        .collect();
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} LIMIT 1",
        from_clause(conn, relation),
        conds.join(" OR ")
    );
    Ok(!conn.query(&sql, &[], None).await?.is_empty())
}

/// Reads the projection's key values in key order, a page at a time.
pub struct KeyReader {
    select: String,
    key_sql: Vec<String>,
    kinds: Vec<Kind>,
    after: Option<Vec<Value>>,
    page: usize,
    done: bool,
}

impl KeyReader {
    /// A reader of `projection`'s key over `relation`, `page` keys at a time.
    pub fn new(conn: &Conn, relation: &Relation, projection: &Projection, page: usize) -> KeyReader {
        let key_sql: Vec<String> = projection
            .key
            .iter()
            .map(|&i| expr(conn, &projection.columns[i].1))
            .collect();
        KeyReader {
            select: format!("SELECT {} FROM {}", key_sql.join(", "), from_clause(conn, relation)),
            kinds: projection.key.iter().map(|&i| projection.kinds[i].clone()).collect(),
            key_sql,
            after: None,
            page: page.max(1),
            done: false,
        }
    }

    /// The next page of keys, or `None` after the last.
    pub async fn next_page(&mut self, conn: &mut Conn) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        if self.done {
            return Ok(None);
        }
        let d = conn.dialect();
        let mut params = Vec::new();
        let filter = match &self.after {
            None => "1 = 1".to_string(),
            Some(last) => d.after_keys(&self.key_sql, last, &mut params),
        };
        let sql = format!(
            "{} WHERE {filter} ORDER BY {} LIMIT {}",
            self.select,
            self.key_sql.join(", "),
            self.page
        );
        let rows = conn.query(&sql, &params, Some(&self.kinds)).await?;
        if rows.len() < self.page {
            self.done = true;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        self.after = rows.last().cloned();
        Ok(Some(rows))
    }
}

/// The projected rows whose keys are in `keys` (each a value per key column), in no
/// particular order; keys that match no row are simply absent.
pub async fn fetch_by_keys(
    conn: &mut Conn,
    relation: &Relation,
    projection: &Projection,
    keys: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>, DbError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let d = conn.dialect();
    let list: Vec<String> = projection.columns.iter().map(|(_, e)| expr(conn, e)).collect();
    let key_sql: Vec<String> = projection
        .key
        .iter()
        .map(|&i| expr(conn, &projection.columns[i].1))
        .collect();
    let mut params = Vec::with_capacity(keys.len() * key_sql.len());
    let mut tuples = Vec::with_capacity(keys.len());
    for k in keys {
        let mut ps = Vec::with_capacity(k.len());
        for v in k {
            params.push(v.clone());
            ps.push(d.param(params.len()));
        }
        tuples.push(if ps.len() == 1 {
            ps.pop().expect("one")
        } else {
            format!("({})", ps.join(", "))
        });
    }
    let left = if key_sql.len() == 1 {
        key_sql[0].clone()
    } else {
        format!("({})", key_sql.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {left} IN ({})",
        list.join(", "),
        from_clause(conn, relation),
        tuples.join(", ")
    );
    conn.query(&sql, &params, Some(&projection.kinds)).await
}

/// The projected rows whose one-column key lies between `first` and `last`
/// (inclusive) in key order, at most `limit` of them: a range scan, much cheaper than
/// an `IN` list when the keys wanted are most of the range (an export of every new
/// row). The caller filters out rows it did not ask for, and falls back to
/// [`fetch_by_keys`] when `limit` rows came back (a sparse set of keys).
pub async fn fetch_range(
    conn: &mut Conn,
    relation: &Relation,
    projection: &Projection,
    first: &Value,
    last: &Value,
    limit: usize,
) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let list: Vec<String> = projection.columns.iter().map(|(_, e)| expr(conn, e)).collect();
    let key = expr(conn, &projection.columns[projection.key[0]].1);
    let sql = format!(
        "SELECT {} FROM {} WHERE {key} >= {} AND {key} <= {} ORDER BY {key} LIMIT {limit}",
        list.join(", "),
        from_clause(conn, relation),
        d.param(1),
        d.param(2)
    );
    conn.query(&sql, &[first.clone(), last.clone()], Some(&projection.kinds))
        .await
}

/// The most key values one [`fetch_by_keys`] call may bind: every engine's
/// parameter limit (SQLite's 32,766 is the lowest) with room to spare.
pub const MAX_KEY_PARAMS: usize = 30_000;
