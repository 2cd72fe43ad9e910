//! A merge definition in `lockgate.toml` (`[merges.NAME]`): the table, declared
//! soft references, what happens to the sources and to conflicting rows, the
//! soft-delete condition, skipped tables, the timeout. Flags override it.
//!
//! ```toml
//! [merges.customers]
//! db = "accounts"                      # a connection name or URL (--db overrides)
//! table = "customers"
//! references = ["jobs.byPuid -> customers.id"]
//! deleted_when = "deleted = 1"
//! sources = "set:deleted=1,active=0"   # keep | delete | set:COL=EXPR,…
//! conflict_rows = "set:deleted=1"      # what conflicting rows merged into their counterparts become
//! merge_conflicts = false
//! skip_tables = ["invoices"]
//! timeout = "60s"
//! ```
//!
//! The file is checked when it is read: an action that does not parse, or a bad
//! duration, names the file and the line.

use super::{MergeOptions, RowAction};
use std::time::Duration;

/// `[merges.NAME]` as written; every field optional.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    /// The database: a connection name or a URL.
    pub db: Option<String>,
    /// The merged table.
    pub table: Option<String>,
    /// Declared (soft) references: `TABLE.COLUMN -> MERGED.COLUMN`.
    pub references: Option<Vec<String>>,
    /// The soft-delete condition (SQL on the merged table).
    pub deleted_when: Option<String>,
    /// What happens to the sources.
    #[serde(default, deserialize_with = "action")]
    pub sources: Option<RowAction>,
    /// What happens to conflicting rows merged into their counterparts.
    #[serde(default, deserialize_with = "action")]
    pub conflict_rows: Option<RowAction>,
    /// Merge conflicting rows instead of aborting.
    pub merge_conflicts: Option<bool>,
    /// Referencing tables left alone.
    pub skip_tables: Option<Vec<String>>,
    /// The longest the merge may take.
    #[serde(default, deserialize_with = "crate::transfer::def::duration")]
    pub timeout: Option<Duration>,
}

fn action<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RowAction>, D::Error> {
    use serde::de::Error;
    let text = <String as serde::Deserialize>::deserialize(d)?;
    RowAction::parse(&text).map(Some).map_err(D::Error::custom)
}

impl MergeSpec {
    /// The options this definition gives (flags then override them).
    pub fn options(&self, name: &str) -> MergeOptions {
        let d = MergeOptions::default();
        MergeOptions {
            name: Some(name.to_string()),
            table: self.table.clone().unwrap_or_default(),
            references: self.references.clone().unwrap_or_default(),
            deleted_when: self.deleted_when.clone(),
            sources_action: self.sources.clone().unwrap_or(d.sources_action.clone()),
            conflict_rows: self.conflict_rows.clone().unwrap_or(d.conflict_rows.clone()),
            merge_conflicts: self.merge_conflicts.unwrap_or(false),
            skip_tables: self.skip_tables.clone().unwrap_or_default(),
            timeout: self.timeout.unwrap_or(d.timeout),
            ..d
        }
    }
}
