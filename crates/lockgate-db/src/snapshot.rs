//! The SQL that snapshots and restores need beyond the bulk writer and the schema
//! changes: the server's version, a table's DDL as its own engine writes it, a whole
//! table (or the rows a condition picks) streamed in one query, and whether a table
//! holds any row.

use crate::conn::Conn;
use crate::error::DbError;
use crate::subset::where_clause;
use crate::url::Engine;
use lockgate_core::{Kind, Table, Value};

/// The server's version as it reports it (`sqlite 3.46.0` for SQLite).
pub async fn server_version(conn: &mut Conn) -> Result<String, DbError> {
    let sql = match conn.engine() {
        Engine::Postgres => "SHOW server_version",
        Engine::Mysql => "SELECT VERSION()",
        Engine::Sqlite => "SELECT 'sqlite ' || sqlite_version()",
    };
    let rows = conn.query(sql, &[], None).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Text(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    })
}

/// The table's DDL as its engine writes it: `SHOW CREATE TABLE` on MariaDB, the
/// stored `CREATE` statements (table and indexes) on SQLite, and on PostgreSQL (which
/// has no such statement) one rebuilt from the catalog's column types, keys and
/// checks. For people to read: restores build tables from the portable definition.
pub async fn source_ddl(conn: &mut Conn, table: &Table) -> Result<String, DbError> {
    let d = conn.dialect();
    match conn.engine() {
        Engine::Mysql => {
            let rows = conn
                .query(&format!("SHOW CREATE TABLE {}", d.table(&table.name)), &[], None)
                .await?;
            Ok(match rows.first().and_then(|r| r.get(1)) {
                Some(Value::Text(s)) => s.clone(),
                _ => String::new(),
            })
        }
        Engine::Sqlite => {
            let rows = conn
                .query(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL \
                     ORDER BY type = 'table' DESC, name",
                    &[Value::Text(table.name.name.clone())],
                    None,
                )
                .await?;
            let parts: Vec<String> = rows
                .into_iter()
                .filter_map(|r| match r.into_iter().next() {
                    Some(Value::Text(s)) => Some(format!("{s};")),
                    _ => None,
                })
                .collect();
            Ok(parts.join("\n"))
        }
        Engine::Postgres => {
            let mut parts: Vec<String> = table
                .columns
                .iter()
                .map(|c| {
                    let mut s = format!("{} {}", d.quote(&c.name), c.data_type);
                    if let Some(def) = &c.default {
                        s.push_str(&format!(" DEFAULT {def}"));
                    }
                    if !c.nullable {
                        s.push_str(" NOT NULL");
                    }
                    s
                })
                .collect();
            if !table.primary_key.is_empty() {
                parts.push(format!("PRIMARY KEY ({})", d.columns(None, &table.primary_key)));
            }
            for u in &table.unique {
                parts.push(format!(
                    "CONSTRAINT {} UNIQUE ({})",
                    d.quote(&u.name),
                    d.columns(None, &u.columns)
                ));
            }
            for k in &table.foreign_keys {
                let (child, parent): (Vec<String>, Vec<String>) = k.columns.iter().cloned().unzip();
                parts.push(format!(
                    "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                    d.quote(&k.name),
                    d.columns(None, &child),
                    d.table(&k.references),
                    d.columns(None, &parent)
                ));
            }
            for c in &table.checks {
                parts.push(format!("CONSTRAINT {} CHECK ({})", d.quote(&c.name), c.expression));
            }
            let mut out = format!("CREATE TABLE {} (\n  {}\n);", d.table(&table.name), parts.join(",\n  "));
            let indexes = conn
                .query(
                    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
                     WHERE i.indrelid = $1::text::regclass AND NOT i.indisprimary \
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
                     ORDER BY 1",
                    &[Value::Text(d.table(&table.name))],
                    None,
                )
                .await?;
            for r in indexes {
                if let Some(Value::Text(s)) = r.into_iter().next() {
                    out.push_str(&format!("\n{s};"));
                }
            }
            Ok(out)
        }
    }
}

/// Streams every row of `table` (only those `condition` picks, when given: SQL the
/// user wrote, run as written) in one query, in the table's column order, handing
/// them to `f` a page at a time ([`Conn::query_pages`]: memory is a few pages).
/// No ORDER BY: a whole-table read in storage order is the cheapest there is.
pub async fn stream_table<E: From<DbError> + Send>(
    conn: &mut Conn,
    table: &Table,
    condition: Option<&str>,
    page: usize,
    f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
) -> Result<(), E> {
    let d = conn.dialect();
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let filter = condition.map(|c| format!(" {}", where_clause(c))).unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {}{filter}",
        d.columns(None, &columns),
        d.table(&table.name)
    );
    conn.query_pages(&sql, &[], Some(&kinds), page, f).await
}

/// Rows of `table` that `condition` picks (all without one).
pub async fn count_rows(conn: &mut Conn, table: &Table, condition: Option<&str>) -> Result<u64, DbError> {
    let d = conn.dialect();
    let filter = condition.map(|c| format!(" {}", where_clause(c))).unwrap_or_default();
    let sql = format!("SELECT COUNT(*) FROM {}{filter}", d.table(&table.name));
    let rows = conn.query(&sql, &[], None).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n as u64,
        Some(Value::Decimal(n)) => n.to_i64().unwrap_or(0) as u64,
        _ => 0,
    })
}

/// Whether `table` holds at least one row.
pub async fn has_rows(conn: &mut Conn, table: &Table) -> Result<bool, DbError> {
    let d = conn.dialect();
    let sql = format!("SELECT 1 FROM {} LIMIT 1", d.table(&table.name));
    Ok(!conn.query(&sql, &[], None).await?.is_empty())
}

/// Drops a table a failed restore created (MariaDB, whose DDL commits at once).
pub async fn drop_table(conn: &mut Conn, name: &lockgate_core::TableName) -> Result<(), DbError> {
    let sql = format!("DROP TABLE IF EXISTS {}", conn.dialect().table(name));
    conn.batch(&sql).await
}

/// On SQLite, checks foreign keys at the commit instead of at each row, for the rest
/// of the open transaction: rows of a cycle (a team and its captain) meet their
/// parents only at the end. Elsewhere nothing.
pub async fn defer_foreign_keys(conn: &mut Conn) -> Result<(), DbError> {
    if conn.engine() == Engine::Sqlite {
        conn.batch("PRAGMA defer_foreign_keys = ON").await?;
    }
    Ok(())
}

/// Whether `table` holds a row whose foreign key `key` names no row of its parent
/// (a key with a NULL part names nothing and is fine).
pub async fn has_orphans(
    conn: &mut Conn,
    table: &lockgate_core::TableName,
    key: &lockgate_core::ForeignKey,
) -> Result<bool, DbError> {
    let d = conn.dialect();
    let not_null: Vec<String> = key
        .columns
        .iter()
        .map(|(c, _)| format!("c.{} IS NOT NULL", d.quote(c)))
        .collect();
    let matches: Vec<String> = key
        .columns
        .iter()
        .map(|(c, p)| format!("p.{} = c.{}", d.quote(p), d.quote(c)))
        .collect();
    let sql = format!(
        "SELECT 1 FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {}) LIMIT 1",
        d.table(table),
        not_null.join(" AND "),
        d.table(&key.references),
        matches.join(" AND ")
    );
    Ok(!conn.query(&sql, &[], None).await?.is_empty())
}
