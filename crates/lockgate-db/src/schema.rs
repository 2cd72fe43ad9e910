//! Schema changes from table definitions: create a table, add a column (filling
//! existing rows with its default), change a column's type, drop a column. The
//! caller (the migrate engine) decides *what* to change by comparing a definition
//! with [`Conn::describe`]; this module only spells the change per engine.
//!
//! Defaults are the one place values appear in SQL text: DDL takes no bound
//! parameters. They are rendered from typed [`Value`]s by [`literal`] in each
//! engine's own literal form (numbers and booleans from their canonical form, text
//! as an escaped string literal, an instant as MariaDB's zone-less UTC text), never
//! from text a user typed; "the current time" is the engine's own expression.

use crate::conn::Conn;
use crate::dialect::Dialect;
use crate::error::DbError;
use crate::types::{mysql_type, pg_type, sqlite_type};
use crate::url::Engine;
use lockgate_core::{Kind, TableName, TextForm, Value};

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
    pub default: Option<ColumnDefault>,
    /// Whether the database generates its values (an integer id: identity on
    /// PostgreSQL, AUTO_INCREMENT on MariaDB, the rowid on SQLite). Only for a
    /// table's one-column primary key, when the table is created.
    pub generated: bool,
    /// When an existing column is changed: what the catalog says of it (its default
    /// as SQL text, its collation), kept across the change. MariaDB's MODIFY COLUMN
    /// restates the whole column, so what it does not repeat is lost.
    pub kept: Option<KeptAttributes>,
}

/// A column's default.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnDefault {
    /// A value.
    Value(Value),
    /// The current time (loopback's `"$now"`), in the column's kind.
    Now,
}

impl std::fmt::Display for ColumnDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnDefault::Value(v) => write!(f, "{v}"),
            ColumnDefault::Now => f.write_str("the current time"),
        }
    }
}

/// An index to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
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
    /// Its indexes, created with it.
    pub indexes: Vec<IndexSpec>,
    /// Foreign keys declared with the table. SQLite cannot add one to an existing
    /// table, so a restore declares them here there; on PostgreSQL and MariaDB they
    /// are added after the data ([`SchemaChange::AddForeignKey`]).
    pub foreign_keys: Vec<lockgate_core::ForeignKey>,
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
    /// Add a primary key to an existing table (PostgreSQL: a restore builds it over
    /// the data, as `pg_restore` does, rather than maintaining it row by row).
    AddPrimaryKey {
        /// The table.
        table: TableName,
        /// Its columns, in key order.
        columns: Vec<String>,
    },
    /// Add a foreign key to an existing table (PostgreSQL and MariaDB).
    AddForeignKey {
        /// The referencing table.
        table: TableName,
        /// The key.
        key: lockgate_core::ForeignKey,
    },
    /// Create an index on an existing table.
    CreateIndex {
        /// The table.
        table: TableName,
        /// The index.
        index: IndexSpec,
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
            SchemaChange::AddPrimaryKey { table, columns } => {
                write!(f, "add primary key on {table} ({})", columns.join(", "))
            }
            SchemaChange::AddForeignKey { table, key } => write!(
                f,
                "add foreign key {} on {table} ({}) referencing {}",
                key.name,
                key.columns
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                key.references
            ),
            SchemaChange::CreateIndex { table, index } => write!(
                f,
                "create {}index {} on {table} ({})",
                if index.unique { "unique " } else { "" },
                index.name,
                index.columns.join(", ")
            ),
        }
    }
}

/// The type declared for a column on an engine.
pub fn column_type(engine: Engine, c: &ColumnSpec, in_key: bool) -> String {
    // SQLite generates only the rowid, which a column aliases when declared exactly
    // INTEGER and the table's one-column primary key.
    if c.generated && engine == Engine::Sqlite {
        return "INTEGER".into();
    }
    if let Some(t) = &c.data_type {
        return t.clone();
    }
    match engine {
        Engine::Postgres => pg_type(&c.kind),
        // MariaDB cannot index an unbounded text column: a key gets a bounded one.
        Engine::Mysql => match &c.kind {
            Kind::Text {
                max_chars: None,
                form: TextForm::Free | TextForm::Padded,
                ..
            }
            | Kind::Any
                if in_key =>
            {
                "varchar(255)".into()
            }
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
        // MariaDB's DATETIME takes no zone: an instant is written as its UTC time, as
        // Lockgate stores it there (a `+00:00` suffix is "Invalid default value").
        Value::TimestampTz(t) if engine == Engine::Mysql => quoted(&Value::Timestamp(t.naive_utc()).to_string()),
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

/// The engine's expression for "the current time" as a default of a column of
/// `kind` (declared as `declared`). SQLite's is text in the form Lockgate stores.
fn now_sql(engine: Engine, kind: &Kind, declared: &str) -> Result<String, DbError> {
    // The fractional digits a MariaDB DATETIME(n) keeps: CURRENT_TIMESTAMP must match.
    let digits = declared
        .split_once('(')
        .and_then(|(_, rest)| rest.trim_end_matches(')').trim().parse::<u8>().ok());
    Ok(match (engine, kind) {
        (Engine::Postgres, Kind::Date) => "CURRENT_DATE".into(),
        (Engine::Postgres, Kind::Timestamp { .. }) => "LOCALTIMESTAMP".into(),
        (Engine::Postgres, Kind::TimestampTz { .. }) => "CURRENT_TIMESTAMP".into(),
        (Engine::Mysql, Kind::Date) => "(CURRENT_DATE)".into(),
        (Engine::Mysql, Kind::Timestamp { .. } | Kind::TimestampTz { .. }) => match digits {
            Some(n) => format!("CURRENT_TIMESTAMP({n})"),
            None => "CURRENT_TIMESTAMP".into(),
        },
        (Engine::Sqlite, Kind::Date) => "CURRENT_DATE".into(),
        (Engine::Sqlite, Kind::Timestamp { .. }) => "(strftime('%Y-%m-%d %H:%M:%f', 'now'))".into(),
        (Engine::Sqlite, Kind::TimestampTz { .. }) => "(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))".into(),
        (_, other) => {
            return Err(DbError::Invalid(format!(
                "the default \"$now\" needs a date column, and this one is {}: give a value instead",
                other.describe()
            )))
        }
    })
}

fn column_def(engine: Engine, c: &ColumnSpec, in_key: bool) -> Result<String, DbError> {
    let d = Dialect(engine);
    let declared = column_type(engine, c, in_key);
    let mut sql = format!("{} {declared}", d.quote(&c.name));
    if !c.nullable {
        sql.push_str(" NOT NULL");
    }
    if c.generated {
        match engine {
            Engine::Postgres => sql.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            Engine::Mysql => sql.push_str(" AUTO_INCREMENT"),
            Engine::Sqlite => {}
        }
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
    match &c.default {
        None => {}
        Some(ColumnDefault::Now) => sql.push_str(&format!(" DEFAULT {}", now_sql(engine, &c.kind, &declared)?)),
        Some(ColumnDefault::Value(v)) => {
            // MariaDB takes an expression default only in parentheses for JSON/TEXT.
            let lit = literal(engine, v)?;
            // (An ENUM or SET is not text there: its default is a plain literal.)
            let long_text = matches!(
                c.kind,
                Kind::Json
                    | Kind::Text {
                        max_chars: None,
                        form: TextForm::Free | TextForm::Padded,
                        ..
                    }
            );
            if engine == Engine::Mysql && long_text {
                sql.push_str(&format!(" DEFAULT ({lit})"));
            } else {
                sql.push_str(&format!(" DEFAULT {lit}"));
            }
        }
    }
    Ok(sql)
}

fn index_sql(d: Dialect, table: &TableName, index: &IndexSpec) -> String {
    format!(
        "CREATE {}INDEX {} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        d.quote(&index.name),
        d.table(table),
        d.columns(None, &index.columns)
    )
}

/// The statements of a change.
pub fn change_sql(engine: Engine, change: &SchemaChange) -> Result<Vec<String>, DbError> {
    let d = Dialect(engine);
    Ok(match change {
        SchemaChange::CreateTable(t) => {
            let mut parts = Vec::new();
            for c in &t.columns {
                if c.generated && t.primary_key != [c.name.clone()] {
                    return Err(DbError::Invalid(format!(
                        "column {}.{} is generated, so it must be the table's one-column primary key",
                        t.name, c.name
                    )));
                }
                // MariaDB indexes only bounded text: a key or indexed column gets one.
                let in_key = t.primary_key.contains(&c.name) || t.indexes.iter().any(|i| i.columns.contains(&c.name));
                parts.push(column_def(engine, c, in_key)?);
            }
            if !t.primary_key.is_empty() {
                parts.push(format!("PRIMARY KEY ({})", d.columns(None, &t.primary_key)));
            }
            parts.extend(t.foreign_keys.iter().map(|k| foreign_key_sql(d, k)));
            let suffix = if engine == Engine::Mysql {
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            } else {
                ""
            };
            let mut out = vec![format!(
                "CREATE TABLE {} ({}){suffix}",
                d.table(&t.name),
                parts.join(", ")
            )];
            out.extend(t.indexes.iter().map(|i| index_sql(d, &t.name, i)));
            out
        }
        SchemaChange::CreateIndex { table, index } => vec![index_sql(d, table, index)],
        SchemaChange::AddPrimaryKey { table, columns } => {
            if engine == Engine::Sqlite {
                return Err(DbError::Invalid(format!(
                    "SQLite cannot add a primary key to the existing table {table}: declare it when the table is created"
                )));
            }
            vec![format!(
                "ALTER TABLE {} ADD PRIMARY KEY ({})",
                d.table(table),
                d.columns(None, columns)
            )]
        }
        SchemaChange::AddForeignKey { table, key } => {
            if engine == Engine::Sqlite {
                return Err(DbError::Invalid(format!(
                    "SQLite cannot add foreign key {} to the existing table {table}: declare it when the table is created",
                    key.name
                )));
            }
            vec![format!(
                "ALTER TABLE {} ADD {}",
                d.table(table),
                foreign_key_sql(d, key)
            )]
        }
        SchemaChange::AddColumn { table, column } => {
            if column.generated {
                return Err(DbError::Invalid(format!(
                    "a generated column cannot be added to the existing table {table}: create it with the table, or give the id without \"generated\""
                )));
            }
            if engine == Engine::Sqlite && column.default == Some(ColumnDefault::Now) {
                return Err(DbError::Invalid(format!(
                    "SQLite cannot add column {table}.{} with the default \"$now\" to an existing table (its ALTER TABLE takes constant defaults only): give it a fixed default, or create the table with it",
                    column.name
                )));
            }
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

/// `CONSTRAINT name FOREIGN KEY (…) REFERENCES parent (…)`.
fn foreign_key_sql(d: Dialect, k: &lockgate_core::ForeignKey) -> String {
    let (child, parent): (Vec<String>, Vec<String>) = k.columns.iter().cloned().unzip();
    format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        d.quote(&k.name),
        d.columns(None, &child),
        d.table(&k.references),
        d.columns(None, &parent)
    )
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

/// On PostgreSQL, moves the sequence of each generated integer column of `table` past
/// the largest value the column holds, so that rows written with explicit ids (a
/// data file that gives them) do not make the next generated id collide. MariaDB's
/// AUTO_INCREMENT and SQLite's rowid do this themselves. The sequence only moves
/// forward. `setval` is not transactional: when the rows are rolled back, the
/// sequence stays moved (a gap in the ids, never a collision). The writer calls it
/// before keyless inserts that follow records giving ids.
pub async fn catch_up_identity(conn: &mut Conn, table: &lockgate_core::Table) -> Result<(), DbError> {
    if conn.engine() != Engine::Postgres {
        return Ok(());
    }
    let d = conn.dialect();
    for c in table
        .columns
        .iter()
        .filter(|c| c.auto && matches!(c.kind, Kind::Int { .. }))
    {
        // pg_get_serial_sequence reads its first argument as (quoted) SQL names and
        // its second as a column name; both are bound, and NULL for a computed column.
        let sql = format!(
            "SELECT setval(x.s::regclass, x.m) FROM (SELECT pg_get_serial_sequence($1, $2) AS s, \
             (SELECT MAX({col}) FROM {t}) AS m) x \
             WHERE x.s IS NOT NULL AND x.m IS NOT NULL AND x.m > COALESCE(pg_sequence_last_value(x.s::regclass), 0)",
            col = d.quote(&c.name),
            t = d.table(&table.name)
        );
        conn.query(
            &sql,
            &[Value::Text(d.table(&table.name)), Value::Text(c.name.clone())],
            None,
        )
        .await?;
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
