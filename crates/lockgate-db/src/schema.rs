//! Schema changes from table definitions: create a table, add a column (filling
//! existing rows with its default), change a column's type, drop a column. The
//! caller (the migrate engine) decides *what* to change by comparing a definition
//! with [`Conn::describe`]; this module only spells the change per engine.
//!
//! Defaults are the one place values appear in SQL text: DDL takes no bound
//! parameters. They are rendered from typed [`Value`]s by [`literal`] (numbers and
//! booleans from their canonical form, text as an escaped string literal), never
//! from text a user typed.

use crate::conn::Conn;
use crate::dialect::Dialect;
use crate::error::DbError;
use crate::types::{mysql_type, pg_type, sqlite_type};
use crate::url::Engine;
use lockgate_core::{Kind, TableName, Value};

/// A column to create or add.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSpec {
    /// Its name.
    pub name: String,
    /// Its kind; the declared type follows from it unless `data_type` says.
    pub kind: Kind,
    /// An explicit type (already checked to be a plain type name like `varchar(20)`).
    pub data_type: Option<String>,
    /// Whether it may hold NULL.
    pub nullable: bool,
    /// Its default, also what existing rows get when it is added.
    pub default: Option<Value>,
    /// When an existing column is changed: what the catalog says of it (its default
    /// as SQL text, its collation), kept across the change. MariaDB's MODIFY COLUMN
    /// restates the whole column, so what it does not repeat is lost.
    pub kept: Option<KeptAttributes>,
}

/// Attributes of an existing column, read from the engine's catalog, that a type
/// change keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAttributes {
    /// Its default as the catalog gives it (SQL text from the engine itself).
    pub default_sql: Option<String>,
    /// Its collation.
    pub collation: Option<String>,
}

/// A table to create.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// Its name.
    pub name: TableName,
    /// Its columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// Its primary key (may be empty).
    pub primary_key: Vec<String>,
}

/// One schema change.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaChange {
    /// Create a table.
    CreateTable(TableSpec),
    /// Add a column to a table.
    AddColumn {
        /// The table.
        table: TableName,
        /// The column.
        column: ColumnSpec,
    },
    /// Change a column's type (and nullability).
    AlterColumn {
        /// The table.
        table: TableName,
        /// The column as it should be.
        column: ColumnSpec,
    },
    /// Drop a column.
    DropColumn {
        /// The table.
        table: TableName,
        /// The column.
        column: String,
    },
}

impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaChange::CreateTable(t) => write!(
                f,
                "create table {} ({})",
                t.name,
                t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            SchemaChange::AddColumn { table, column } => match &column.default {
                Some(d) => write!(f, "add column {table}.{} (existing rows get {d})", column.name),
                None => write!(f, "add column {table}.{}", column.name),
            },
            SchemaChange::AlterColumn { table, column } => {
                write!(
                    f,
                    "change the type of {table}.{} to {}",
                    column.name,
                    column.kind.describe()
                )
            }
            SchemaChange::DropColumn { table, column } => write!(f, "drop column {table}.{column}"),
        }
    }
}

/// The type declared for a column on an engine.
pub fn column_type(engine: Engine, c: &ColumnSpec, in_key: bool) -> String {
    if let Some(t) = &c.data_type {
        return t.clone();
    }
    match engine {
        Engine::Postgres => pg_type(&c.kind),
        // MariaDB cannot index an unbounded text column: a key gets a bounded one.
        Engine::Mysql => match &c.kind {
            Kind::Text { max_chars: None, .. } | Kind::Any if in_key => "varchar(255)".into(),
            k => mysql_type(k),
        },
        Engine::Sqlite => match &c.kind {
            Kind::Any => "TEXT".into(),
            k => sqlite_type(k),
        },
    }
}

/// A value as a SQL literal, for a DDL default. Only typed values reach here.
pub fn literal(engine: Engine, v: &Value) -> Result<String, DbError> {
    let quoted = |s: &str| {
        let s = s.replace('\'', "''");
        // MariaDB also reads backslash escapes inside literals (unless the
        // NO_BACKSLASH_ESCAPES mode is on, which lockgate does not set).
        if engine == Engine::Mysql {
            format!("'{}'", s.replace('\\', "\\\\"))
        } else {
            format!("'{s}'")
        }
    };
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => match engine {
            Engine::Postgres => if *b { "true" } else { "false" }.into(),
            _ => if *b { "1" } else { "0" }.into(),
        },
        Value::Int(i) => i.to_string(),
        Value::Float(x) if x.is_finite() => format!("{x:?}"),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) => quoted(s),
        Value::Json(j) => quoted(&j.to_string()),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) | Value::Uuid(_) => {
            quoted(&v.to_string())
        }
        other => {
            return Err(DbError::Invalid(format!(
                "a default of {} cannot be declared: give the column no default",
                other.type_name()
            )))
        }
    })
}

fn column_def(engine: Engine, c: &ColumnSpec, in_key: bool) -> Result<String, DbError> {
    let d = Dialect(engine);
    let mut sql = format!("{} {}", d.quote(&c.name), column_type(engine, c, in_key));
    if !c.nullable {
        sql.push_str(" NOT NULL");
    }
    if let (
        Engine::Mysql,
        Some(KeptAttributes {
            collation: Some(coll), ..
        }),
    ) = (engine, &c.kept)
    {
        // A collation name from the catalog; checked all the same, as it lands in DDL.
        if coll.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            sql.push_str(&format!(" COLLATE {coll}"));
        }
    }
    if let (
        None,
        Some(KeptAttributes {
            default_sql: Some(d), ..
        }),
    ) = (&c.default, &c.kept)
    {
        sql.push_str(&format!(" DEFAULT {d}"));
    }
    if let Some(v) = &c.default {
        // MariaDB takes an expression default only in parentheses for JSON/TEXT.
        let lit = literal(engine, v)?;
        if engine == Engine::Mysql && matches!(c.kind, Kind::Json | Kind::Text { max_chars: None, .. }) {
            sql.push_str(&format!(" DEFAULT ({lit})"));
        } else {
            sql.push_str(&format!(" DEFAULT {lit}"));
        }
    }
    Ok(sql)
}

/// The statements of a change.
pub fn change_sql(engine: Engine, change: &SchemaChange) -> Result<Vec<String>, DbError> {
    let d = Dialect(engine);
    Ok(match change {
        SchemaChange::CreateTable(t) => {
            let mut parts = Vec::new();
            for c in &t.columns {
                parts.push(column_def(engine, c, t.primary_key.contains(&c.name))?);
            }
            if !t.primary_key.is_empty() {
                parts.push(format!("PRIMARY KEY ({})", d.columns(None, &t.primary_key)));
            }
            let suffix = if engine == Engine::Mysql {
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            } else {
                ""
            };
            vec![format!(
                "CREATE TABLE {} ({}){suffix}",
                d.table(&t.name),
                parts.join(", ")
            )]
        }
        SchemaChange::AddColumn { table, column } => {
            vec![format!(
                "ALTER TABLE {} ADD COLUMN {}",
                d.table(table),
                column_def(engine, column, false)?
            )]
        }
        SchemaChange::AlterColumn { table, column } => {
            let ty = column_type(engine, column, false);
            let col = d.quote(&column.name);
            match engine {
                Engine::Postgres => {
                    let collate = match &column.kept {
                        Some(KeptAttributes {
                            collation: Some(c), ..
                        }) => format!(" COLLATE {}", d.quote(c)),
                        _ => String::new(),
                    };
                    let mut v = vec![format!(
                        "ALTER TABLE {} ALTER COLUMN {col} TYPE {ty}{collate} USING {col}::{ty}",
                        d.table(table)
                    )];
                    v.push(format!(
                        "ALTER TABLE {} ALTER COLUMN {col} {} NOT NULL",
                        d.table(table),
                        if column.nullable { "DROP" } else { "SET" }
                    ));
                    v
                }
                Engine::Mysql => vec![format!(
                    "ALTER TABLE {} MODIFY COLUMN {}",
                    d.table(table),
                    column_def(engine, column, false)?
                )],
                Engine::Sqlite => {
                    return Err(DbError::Invalid(format!(
                        "SQLite cannot change the type of {table}.{} in place: create a new table and copy the rows with a script",
                        column.name
                    )))
                }
            }
        }
        SchemaChange::DropColumn { table, column } => {
            vec![format!(
                "ALTER TABLE {} DROP COLUMN {}",
                d.table(table),
                d.quote(column)
            )]
        }
    })
}

/// Applies a change on `conn` (inside its transaction, where the engine's DDL is
/// transactional: PostgreSQL and SQLite; MariaDB commits around it).
pub async fn apply_change(conn: &mut Conn, change: &SchemaChange) -> Result<(), DbError> {
    let adapted;
    let change = match conn.mysql_server() {
        Some(server) if !server.uuid_type() => {
            adapted = without_uuid_type(change);
            &adapted
        }
        _ => change,
    };
    for sql in change_sql(conn.engine(), change)? {
        conn.batch(&sql).await.map_err(|e| match e {
            DbError::Engine { error, .. } => DbError::Engine {
                context: format!("applying the schema change \"{change}\""),
                error,
            },
            other => other,
        })?;
    }
    Ok(())
}

/// `change` for a server without a `uuid` type (MySQL, MariaDB before 10.7): UUID
/// columns are created as `char(36)`, the hyphenated text Lockgate writes.
fn without_uuid_type(change: &SchemaChange) -> SchemaChange {
    let fix = |c: &ColumnSpec| {
        let mut c = c.clone();
        if c.kind == Kind::Uuid && c.data_type.is_none() {
            c.data_type = Some("char(36)".into());
        }
        c
    };
    match change {
        SchemaChange::CreateTable(spec) => SchemaChange::CreateTable(TableSpec {
            columns: spec.columns.iter().map(fix).collect(),
            ..spec.clone()
        }),
        SchemaChange::AddColumn { table, column } => SchemaChange::AddColumn {
            table: table.clone(),
            column: fix(column),
        },
        SchemaChange::AlterColumn { table, column } => SchemaChange::AlterColumn {
            table: table.clone(),
            column: fix(column),
        },
        other => other.clone(),
    }
}

/// Rows in a table (to refuse adding a required column without a default to a
/// table that has rows).
pub async fn row_count(conn: &mut Conn, table: &TableName) -> Result<u64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM {}", conn.dialect().table(table));
    let rows = conn.query(&sql, &[], None).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n as u64,
        Some(Value::Decimal(d)) => d.to_i64().unwrap_or(0) as u64,
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_break_out_of_their_quotes() {
        let v = Value::Text("x'); DROP TABLE t; --\\".into());
        assert_eq!(literal(Engine::Postgres, &v).unwrap(), "'x''); DROP TABLE t; --\\'");
        assert_eq!(literal(Engine::Mysql, &v).unwrap(), "'x''); DROP TABLE t; --\\\\'");
        assert_eq!(literal(Engine::Sqlite, &Value::Bool(true)).unwrap(), "1");
    }
}
