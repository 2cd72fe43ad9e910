//! Table definitions: one model of a table for all three engines, filled by
//! `lockgate-db`'s introspection and read by every engine.

use crate::value::Kind;
use serde::Serialize;
use std::fmt;

/// A table's name, with its schema on PostgreSQL (`None` means the default schema).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TableName {
    /// PostgreSQL schema; `None` elsewhere and for `public`'s default.
    pub schema: Option<String>,
    /// The table's own name, case preserved.
    pub name: String,
}

impl TableName {
    /// A name without schema.
    pub fn new(name: impl Into<String>) -> TableName {
        TableName {
            schema: None,
            name: name.into(),
        }
    }

    /// Whether two names (a foreign key's parent, say) name the same table: a name
    /// without a schema is in the default one, so it matches either.
    pub fn same_as(&self, other: &TableName) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// Splits a user's `schema.table` at its last dot. Names are never SQL: quotes and
    /// semicolons are just characters that must match an existing table.
    pub fn parse(input: &str) -> TableName {
        match input.rsplit_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => TableName {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            _ => TableName::new(input),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    /// Name, case preserved.
    pub name: String,
    /// The engine's full type, e.g. `character varying(100)` or `decimal(12,2)`.
    pub data_type: String,
    /// The logical type values are checked against.
    pub kind: Kind,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression, as the engine reports it.
    pub default: Option<String>,
    /// Whether the engine fills the column itself (identity, auto-increment, generated).
    pub auto: bool,
    /// The collation that decides when two texts are equal, where the engine names
    /// one per column (MariaDB); staging tables copy it so keys compare alike.
    pub collation: Option<String>,
}

impl Column {
    /// Whether an insert that does not give this column still succeeds.
    pub fn may_be_omitted(&self) -> bool {
        self.nullable || self.default.is_some() || self.auto
    }
}

/// A UNIQUE constraint (or unique index) over some columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UniqueConstraint {
    /// Constraint or index name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
}

/// A foreign key: `columns[i].0` references `references.columns[i].1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// (child column, parent column) pairs.
    pub columns: Vec<(String, String)>,
    /// The parent table.
    pub references: TableName,
}

/// An index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// Indexed columns (expressions show as the engine writes them).
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    pub unique: bool,
}

/// A CHECK constraint, with its expression as the engine writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckConstraint {
    /// Constraint name.
    pub name: String,
    /// The boolean expression (without the `CHECK` keyword).
    pub expression: String,
    /// The columns it reads, when the engine says; empty when unknown.
    pub columns: Vec<String>,
}

/// A table as introspected.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    /// Its name.
    pub name: TableName,
    /// Its columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// UNIQUE constraints (the primary key not included).
    pub unique: Vec<UniqueConstraint>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Indexes.
    pub indexes: Vec<Index>,
    /// CHECK constraints (PostgreSQL and MariaDB).
    pub checks: Vec<CheckConstraint>,
    /// MariaDB storage engine (InnoDB, MyISAM, Aria…).
    pub engine: Option<String>,
    /// What the table enforces that Lockgate's own checks cannot see in advance
    /// (triggers, exclusion constraints, partial or expression unique indexes, enum
    /// labels): while this is not empty, only the engine itself can say that a row
    /// is good.
    pub unchecked: Vec<String>,
}

impl Table {
    /// The column of this name: exact match first, else the one case-insensitive match.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.column_index(name).map(|i| &self.columns[i])
    }

    /// Position of a column by ARCHITECTURE.md's naming rule (exact, else unique case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.columns.iter().position(|c| c.name == name) {
            return Some(i);
        }
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// Every set of columns whose values must be unique: the primary key, then each
    /// UNIQUE constraint, then each unique index not already listed.
    pub fn unique_keys(&self) -> Vec<Vec<String>> {
        let mut keys: Vec<Vec<String>> = Vec::new();
        if !self.primary_key.is_empty() {
            keys.push(self.primary_key.clone());
        }
        let more = self
            .unique
            .iter()
            .map(|u| &u.columns)
            .chain(self.indexes.iter().filter(|i| i.unique).map(|i| &i.columns));
        for cols in more {
            if !keys.contains(cols) {
                keys.push(cols.clone());
            }
        }
        keys
    }
}

/// Orders tables so that each comes after the tables its foreign keys reference
/// (parents first: the order to load or restore rows in; reversed, the order to
/// delete them in). Tables in a cycle keep their name order.
pub fn parents_first(mut tables: Vec<Table>) -> Vec<Table> {
    tables.sort_by_key(|t| t.name.to_string());
    let mut out: Vec<Table> = Vec::new();
    while !tables.is_empty() {
        let ready = tables.iter().position(|t| {
            t.foreign_keys.iter().all(|fk| {
                fk.references.name == t.name.name
                    || out.iter().any(|o| o.name.name == fk.references.name)
                    || !tables.iter().any(|o| o.name.name == fk.references.name)
            })
        });
        out.push(tables.remove(ready.unwrap_or(0)));
    }
    out
}
