//! Table definitions between a database and a snapshot: an introspected [`Table`]
//! into its portable [`TableDef`], and a [`TableDef`] back into what a restore
//! creates on any engine, with every column the target cannot hold without loss
//! named up front (the type rule is `lockgate_core::narrowing`, the one the transfer
//! check uses).

use lockgate_bundle::{ColumnDef, ColumnType, ForeignKeyDef, KeyDef, TableDef};
use lockgate_core::{narrowing, ForeignKey, Kind, Table, TableName};
use lockgate_db::schema::{column_type, ColumnSpec, IndexSpec, TableSpec};
use lockgate_db::types::declared_kind;
use lockgate_db::Engine;

/// The portable definition of an introspected table.
pub fn table_def(table: &Table, source_ddl: String) -> TableDef {
    let unique_cols: Vec<Vec<String>> = table.unique_keys();
    let mut unique: Vec<KeyDef> = table
        .unique
        .iter()
        .map(|u| KeyDef {
            name: u.name.clone(),
            columns: u.columns.clone(),
        })
        .collect();
    // An index over expressions names no columns of the table: it is not portable.
    for i in table
        .indexes
        .iter()
        .filter(|i| i.unique && i.columns.iter().all(|c| table.column(c).is_some()))
    {
        if i.columns != table.primary_key && !unique.iter().any(|u| u.columns == i.columns) {
            unique.push(KeyDef {
                name: i.name.clone(),
                columns: i.columns.clone(),
            });
        }
    }
    // Indexes over expressions show as the engine writes them, not as columns: only
    // indexes over plain columns are portable.
    let indexes = table
        .indexes
        .iter()
        .filter(|i| !i.unique && !unique_cols.contains(&i.columns))
        .filter(|i| i.columns.iter().all(|c| table.column(c).is_some()))
        .map(|i| KeyDef {
            name: i.name.clone(),
            columns: i.columns.clone(),
        })
        .collect();
    TableDef {
        schema: table.name.schema.clone(),
        name: table.name.name.clone(),
        columns: table
            .columns
            .iter()
            .map(|c| ColumnDef {
                name: c.name.clone(),
                column_type: ColumnType::from(&c.kind),
                nullable: c.nullable,
                generated: c.auto,
                source_type: c.data_type.clone(),
                source_default: c.default.clone(),
                observed: None,
            })
            .collect(),
        primary_key: table.primary_key.clone(),
        unique,
        foreign_keys: table
            .foreign_keys
            .iter()
            .map(|k| ForeignKeyDef {
                name: k.name.clone(),
                columns: k.columns.iter().map(|(c, _)| c.clone()).collect(),
                references_schema: k.references.schema.clone(),
                references: k.references.name.clone(),
                references_columns: k.columns.iter().map(|(_, p)| p.clone()).collect(),
            })
            .collect(),
        indexes,
        checks: table
            .checks
            .iter()
            .map(|c| format!("{}: {}", c.name, c.expression))
            .collect(),
        source_ddl,
    }
}

/// Why a column of kind `to` cannot hold the snapshot's values of a column of kind
/// `from`: the type rule (`narrowing`), but for texts and bytes judged by the longest
/// value the snapshot holds, not by every value the source type allows. A
/// PostgreSQL `text` key whose longest value has 40 characters fits MariaDB's
/// `varchar(255)`; one of 300 does not, and is refused before anything is written.
fn data_narrowing(from: &Kind, observed: Option<lockgate_bundle::Observed>, to: &Kind) -> Option<String> {
    let why = narrowing(from, to)?;
    let seen = match (from, observed) {
        (Kind::Text { form, .. }, Some(o)) => Kind::Text {
            max_chars: o.max_chars,
            max_bytes: Some(o.max_bytes),
            form: form.clone(),
        },
        (Kind::Text { form, .. }, None) => Kind::Text {
            max_chars: Some(0),
            max_bytes: Some(0),
            form: form.clone(),
        },
        (Kind::Bytes { fixed, .. }, o) => Kind::Bytes {
            max_bytes: Some(o.map_or(0, |o| o.max_bytes)),
            fixed: *fixed,
        },
        _ => return Some(why),
    };
    narrowing(&seen, to).map(|_| why)
}

/// The kinds of a definition's columns, in order (the data file's fields).
pub fn kinds(def: &TableDef) -> Result<Vec<Kind>, String> {
    def.columns
        .iter()
        .map(|c| {
            c.column_type
                .to_kind()
                .map_err(|e| format!("table {} column {}: {e}", def.display_name(), c.name))
        })
        .collect()
}

/// The name a definition restores to on `engine`: its schema only on PostgreSQL
/// (MariaDB and SQLite have none of their own within a database).
pub fn target_name(def: &TableDef, engine: Engine) -> TableName {
    TableName {
        schema: if engine == Engine::Postgres {
            def.schema.clone()
        } else {
            None
        },
        name: def.name.clone(),
    }
}

/// What a restore creates for a table missing on the target: the table with its
/// columns (and its primary key, but on PostgreSQL; foreign keys too on SQLite, which
/// cannot add them later), then, after the data, its primary key (PostgreSQL), unique
/// and other indexes (with the table on MariaDB: `restore.rs`) and (PostgreSQL,
/// MariaDB) its foreign keys.
#[derive(Clone, Debug)]
pub struct CreatePlan {
    /// The table.
    pub table: TableSpec,
    /// The primary key, when it is built after the data (PostgreSQL, as `pg_restore`
    /// does: one sort instead of an index maintained row by row; not for a table with
    /// a generated id, whose identity column is declared with its key).
    pub primary_key_after: Vec<String>,
    /// Unique and plain indexes, built after the data.
    pub indexes: Vec<IndexSpec>,
    /// Foreign keys added after the data (none on SQLite: declared with the table).
    pub foreign_keys: Vec<ForeignKey>,
}

/// The name of an index or constraint on the target. The source's own name is kept
/// when restoring into the engine it came from; elsewhere names follow the target's
/// rules (PostgreSQL's index and MariaDB's foreign key names are unique per schema,
/// not per table, and SQLite reserves `sqlite_*`), so they are made from the table
/// and columns: `customers_email_key`, `orders_customer_id_fkey`.
fn object_name(kept: &str, same_engine: bool, table: &str, columns: &[String], suffix: &str) -> String {
    if same_engine && !kept.is_empty() && !kept.starts_with("sqlite_") {
        return kept.to_string();
    }
    let name = format!("{table}_{}_{suffix}", columns.join("_"));
    if name.len() <= 63 {
        return name;
    }
    // PostgreSQL's and MariaDB's identifiers stop at 63 and 64 bytes: a long name keeps
    // its start (on a character boundary) and gets a hash of the whole, so that two
    // long names that share their first bytes stay apart.
    let digest = lockgate_core::fingerprint(&[lockgate_core::Value::Text(name.clone())]);
    let mut cut = 63 - digest.len() - 1;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{digest}", &name[..cut])
}

/// Plans the creation of `def` on `engine`, or lists every column the engine cannot
/// hold without loss (`table.column: type -> type (why)`). `same_engine`: the
/// snapshot came from this engine (names of indexes and keys are then kept).
pub fn create_plan(def: &TableDef, engine: Engine, same_engine: bool) -> Result<CreatePlan, Vec<String>> {
    let name = target_name(def, engine);
    let kinds = kinds(def).map_err(|e| vec![e])?;
    let keyed: Vec<&String> = def
        .primary_key
        .iter()
        .chain(def.unique.iter().flat_map(|u| &u.columns))
        .chain(def.indexes.iter().flat_map(|i| &i.columns))
        // MariaDB indexes a foreign key's columns, and wants them typed as the keys
        // they reference.
        .chain(def.foreign_keys.iter().flat_map(|k| &k.columns))
        .collect();
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    for (c, kind) in def.columns.iter().zip(&kinds) {
        let generated = c.generated
            && def.primary_key.len() == 1
            && def.primary_key[0] == c.name
            && matches!(kind, Kind::Int { .. });
        let spec = ColumnSpec {
            name: c.name.clone(),
            kind: kind.clone(),
            data_type: None,
            nullable: c.nullable,
            default: None,
            generated,
            kept: None,
        };
        if let Kind::Unsupported { type_name } = kind {
            problems.push(format!(
                "{}.{}: lockgate does not map the type {type_name}; leave the table out with --tables",
                def.display_name(),
                c.name
            ));
            continue;
        }
        let mut spec = spec;
        let declared = column_type(engine, &spec, keyed.contains(&&c.name));
        // A column in a key or index that is built after the data is declared as
        // one now (MariaDB indexes bounded text only).
        if declared != column_type(engine, &spec, false) {
            spec.data_type = Some(declared.clone());
        }
        let target = declared_kind(engine, &declared);
        if let Some(why) = data_narrowing(kind, c.observed, &target) {
            problems.push(format!(
                "{}.{}: {} cannot go into {engine}'s {declared} without loss ({why})",
                def.display_name(),
                c.name,
                kind.describe()
            ));
        }
        columns.push(spec);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let foreign_keys: Vec<ForeignKey> = def
        .foreign_keys
        .iter()
        .map(|k| ForeignKey {
            name: object_name(&k.name, same_engine, &def.name, &k.columns, "fkey"),
            columns: k
                .columns
                .iter()
                .cloned()
                .zip(k.references_columns.iter().cloned())
                .collect(),
            references: TableName {
                schema: if engine == Engine::Postgres {
                    k.references_schema.clone()
                } else {
                    None
                },
                name: k.references.clone(),
            },
        })
        .collect();
    let indexes = def
        .unique
        .iter()
        .map(|u| (u, true))
        .chain(def.indexes.iter().map(|i| (i, false)))
        .map(|(k, unique)| IndexSpec {
            name: object_name(
                &k.name,
                same_engine,
                &def.name,
                &k.columns,
                if unique { "key" } else { "idx" },
            ),
            columns: k.columns.clone(),
            unique,
        })
        .collect();
    let sqlite = engine == Engine::Sqlite;
    let key_after = engine == Engine::Postgres && !columns.iter().any(|c| c.generated);
    Ok(CreatePlan {
        primary_key_after: if key_after { def.primary_key.clone() } else { Vec::new() },
        table: TableSpec {
            name,
            columns,
            primary_key: if key_after { Vec::new() } else { def.primary_key.clone() },
            indexes: Vec::new(),
            foreign_keys: if sqlite { foreign_keys.clone() } else { Vec::new() },
        },
        indexes,
        foreign_keys: if sqlite { Vec::new() } else { foreign_keys },
    })
}

/// The problems with restoring `def` into the existing `table`: a snapshot column
/// the table lacks or cannot hold without loss, and a table column the snapshot does
/// not fill that an insert cannot leave out. The positions of the snapshot's columns
/// in the table come back when there is none.
pub fn fit_existing(def: &TableDef, table: &Table) -> Result<Vec<String>, Vec<String>> {
    let kinds = kinds(def).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let mut names = Vec::new();
    for (c, kind) in def.columns.iter().zip(&kinds) {
        match table.column(&c.name) {
            None => problems.push(format!(
                "{}.{}: the existing table {} has no such column",
                def.display_name(),
                c.name,
                table.name
            )),
            Some(t) => {
                if let Some(why) = data_narrowing(kind, c.observed, &t.kind) {
                    problems.push(format!(
                        "{}.{}: {} cannot go into the existing column's {} without loss ({why})",
                        def.display_name(),
                        c.name,
                        kind.describe(),
                        t.data_type
                    ));
                }
                names.push(t.name.clone());
            }
        }
    }
    for t in &table.columns {
        if !t.may_be_omitted() && !def.columns.iter().any(|c| t.name.eq_ignore_ascii_case(&c.name)) {
            problems.push(format!(
                "{}.{}: the existing table requires this column and the snapshot does not have it",
                table.name, t.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(problems)
    }
}
