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
//!
//! [`options`] is the one place where a definition and what a caller sets over it
//! (the command line's flags, a dashboard request's fields: [`MergeOverrides`])
//! become a merge's [`MergeOptions`], so that `lockgate merge` and `lockgate serve`
//! read a definition alike.

use super::{parse_keys, MergeError, MergeOnError, MergeOptions, RowAction};
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

/// What a caller sets over a definition: the command line's flags, or the fields
/// of a dashboard request. `None` and empty lists keep the definition's value (or
/// the default); lists (`skip_tables`, `references`) add to the definition's, and
/// `merge_conflicts` can turn merging conflicts on, not off, as the flag does.
#[derive(Clone, Debug, Default)]
pub struct MergeOverrides {
    /// The merged table.
    pub table: Option<String>,
    /// The sources, each as `--from` writes them ([`parse_keys`]: keys separated by
    /// commas, a composite key's parts by colons).
    pub from: Vec<String>,
    /// The target, as `--into` writes it (one key).
    pub into: Option<String>,
    /// Only preview.
    pub preview: bool,
    /// Merge conflicting rows into their counterparts.
    pub merge_conflicts: bool,
    /// What happens to the sources.
    pub sources: Option<RowAction>,
    /// What happens to conflicting rows merged into their counterparts.
    pub conflict_rows: Option<RowAction>,
    /// More referencing tables to leave alone.
    pub skip_tables: Vec<String>,
    /// More declared references.
    pub references: Vec<String>,
    /// The soft-delete condition.
    pub deleted_when: Option<String>,
    /// The longest the merge may take.
    pub timeout: Option<Duration>,
    /// How long to wait for other Lockgate commands writing the tables.
    pub lock_timeout: Option<Duration>,
    /// How long one statement waits for a row lock.
    pub lock_wait: Option<Duration>,
    /// The error policy.
    pub on_error: Option<MergeOnError>,
    /// How deep conflicts may nest.
    pub max_depth: Option<usize>,
}

/// A merge's options: the definition's (`def`: its name and spec), then `over`.
/// Bad input that needs no database (no table; a target that names more than one
/// row) is refused here; the keys, the table and the actions are checked against
/// the schema when the merge runs.
pub fn options(def: Option<(&str, &MergeSpec)>, over: MergeOverrides) -> Result<MergeOptions, MergeError> {
    let mut opts = match def {
        Some((name, spec)) => spec.options(name),
        None => MergeOptions::default(),
    };
    if let Some(t) = over.table.filter(|t| !t.trim().is_empty()) {
        opts.table = t;
    }
    if opts.table.trim().is_empty() {
        return Err(MergeError::one(
            "no table given: name the merged table (--table, or `table` in a request), or a merge definition whose `table` names it",
        ));
    }
    opts.sources = over.from.iter().flat_map(|f| parse_keys(f)).collect();
    opts.target = match over.into.as_deref().map(parse_keys) {
        Some(mut k) if k.len() == 1 => k.remove(0),
        Some(k) if k.len() > 1 => {
            return Err(MergeError::one(format!(
                "the target {:?} names {} rows: a merge has one target (--into, or `into` in a request)",
                over.into.unwrap_or_default(),
                k.len()
            )))
        }
        _ => Vec::new(),
    };
    opts.preview = over.preview;
    opts.merge_conflicts = opts.merge_conflicts || over.merge_conflicts;
    if let Some(s) = over.sources {
        opts.sources_action = s;
    }
    if let Some(c) = over.conflict_rows {
        opts.conflict_rows = c;
    }
    opts.skip_tables.extend(over.skip_tables);
    opts.references.extend(over.references);
    if over.deleted_when.is_some() {
        opts.deleted_when = over.deleted_when;
    }
    if let Some(t) = over.timeout {
        opts.timeout = t;
    }
    if let Some(t) = over.lock_timeout {
        opts.lock_timeout = t;
    }
    if over.lock_wait.is_some() {
        opts.lock_wait = over.lock_wait;
    }
    if let Some(p) = over.on_error {
        opts.on_error = p;
    }
    if let Some(d) = over.max_depth {
        opts.max_depth = d;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_take_the_definitions_place_and_lists_add_to_it() {
        let spec = MergeSpec {
            table: Some("customers".into()),
            references: Some(vec!["jobs.byPuid -> customers.id".into()]),
            sources: Some(RowAction::Delete),
            skip_tables: Some(vec!["invoices".into()]),
            merge_conflicts: Some(true),
            ..MergeSpec::default()
        };
        let o = options(
            Some(("c", &spec)),
            MergeOverrides {
                from: vec!["1,2".into(), "3".into()],
                into: Some("4".into()),
                skip_tables: vec!["logs".into()],
                conflict_rows: Some(RowAction::Keep),
                max_depth: Some(5),
                ..MergeOverrides::default()
            },
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("c"));
        assert_eq!(o.table, "customers");
        assert_eq!(o.sources, vec![vec!["1"], vec!["2"], vec!["3"]]);
        assert_eq!(o.target, vec!["4"]);
        assert_eq!(o.sources_action, RowAction::Delete);
        assert_eq!(o.conflict_rows, RowAction::Keep);
        assert_eq!(o.skip_tables, vec!["invoices", "logs"]);
        assert_eq!(o.references.len(), 1);
        assert!(o.merge_conflicts, "the definition's merge_conflicts stays on");
        assert_eq!(o.max_depth, 5);

        let o = options(
            Some(("c", &spec)),
            MergeOverrides {
                table: Some("users".into()),
                ..MergeOverrides::default()
            },
        )
        .unwrap();
        assert_eq!(o.table, "users");
    }

    #[test]
    fn no_table_and_two_targets_are_refused() {
        let e = options(None, MergeOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("no table given"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = options(
            None,
            MergeOverrides {
                table: Some("t".into()),
                into: Some("1,2".into()),
                ..MergeOverrides::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("one target"), "{e}");
    }
}
