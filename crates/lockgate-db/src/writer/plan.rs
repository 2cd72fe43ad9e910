//! The validated plan of a write: the configuration checked against the table
//! (the key exists, the table can roll back) before anything is written.

use super::*;

/// The validated plan of a write: table, key, columns that may be inserted.
#[derive(Clone)]
pub(super) struct Plan {
    pub(super) table: Table,
    pub(super) mode: WriteMode,
    pub(super) key: Vec<KeyColumn>,
    pub(super) on_error: OnError,
    pub(super) sync_scope: Option<String>,
    pub(super) dialect: Dialect,
    /// Whether an index leads with exactly the key's columns, so joins on the key
    /// can probe it.
    pub(super) key_indexed: bool,
    pub(super) nested: bool,
    pub(super) capture: Option<Capture>,
    pub(super) scope: Vec<(String, Value)>,
    /// Inserts go through staging, never a COPY stream (see [`keyless_plan`]).
    pub(super) staged_inserts: bool,
}

/// Checks the configuration against the table before anything is written:
/// the key exists, the table can roll back.
pub(super) fn plan(conn: &Conn, table: &Table, cfg: &WriteConfig) -> Result<Plan, DbError> {
    if let Some(engine) = &table.engine {
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(DbError::Invalid(format!(
                "table {} uses the {engine} storage engine, which cannot roll back, so lockgate refuses to write it \
                 (a failed load would leave part of it behind): convert it with ALTER TABLE {} ENGINE=InnoDB",
                table.name, table.name
            )));
        }
    }
    let key_names = if cfg.key.is_empty() {
        table.primary_key.clone()
    } else {
        cfg.key.clone()
    };
    let mut key = Vec::new();
    for k in &key_names {
        let col = table
            .column(k)
            .ok_or_else(|| DbError::Invalid(format!("key column {k:?} is not a column of table {}", table.name)))?;
        key.push(KeyColumn {
            name: col.name.clone(),
            nullable: col.nullable,
        });
    }
    if cfg.mode != WriteMode::Insert && key.is_empty() {
        return Err(DbError::Invalid(format!(
            "mode {:?} needs a key and table {} has no primary key: name one with --key",
            cfg.mode, table.name
        )));
    }
    if cfg.sync_scope.is_some() && cfg.mode != WriteMode::Sync {
        return Err(DbError::Invalid(
            "a sync scope (--where) only applies to --mode sync".into(),
        ));
    }
    let mut key_set: Vec<&str> = key.iter().map(|k| k.name.as_str()).collect();
    key_set.sort_unstable();
    let key_indexed = !key_set.is_empty()
        && table
            .unique_keys()
            .iter()
            .chain(table.indexes.iter().map(|i| &i.columns))
            .any(|cols| {
                let mut lead: Vec<&str> = cols.iter().take(key_set.len()).map(String::as_str).collect();
                lead.sort_unstable();
                lead == key_set
            });
    if cfg.capture.is_some() && !can_capture(table) {
        return Err(DbError::Invalid(format!(
            "table {} has no primary key and no unique key of NOT NULL columns, so its rows cannot be told apart and their changes cannot be recorded for a rollback",
            table.name
        )));
    }
    for (c, _) in &cfg.scope {
        if table.column(c).is_none() {
            return Err(DbError::Invalid(format!(
                "scope column {c:?} is not a column of table {}",
                table.name
            )));
        }
    }
    Ok(Plan {
        key_indexed,
        nested: cfg.nested,
        capture: cfg.capture.clone(),
        scope: cfg.scope.clone(),
        table: table.clone(),
        mode: cfg.mode,
        key,
        on_error: cfg.on_error,
        sync_scope: cfg.sync_scope.clone(),
        dialect: conn.dialect(),
        staged_inserts: false,
    })
}

/// For `upsert` and `insert-missing`: the plan of a batch whose records do not give
/// the key. Nothing can match them, so they are inserts (the database fills a
/// generated key; a key it cannot fill fails as a missing NOT NULL column).
pub(super) fn keyless_plan(plan: &Plan) -> Option<Plan> {
    matches!(plan.mode, WriteMode::Upsert | WriteMode::InsertMissing).then(|| Plan {
        mode: WriteMode::Insert,
        staged_inserts: true,
        ..plan.clone()
    })
}
