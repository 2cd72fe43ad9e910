//! What a merge will do, computed without writing: the input checked against the
//! schema ([`prepare`], before any lock), then inside the merge's transaction the
//! validation (sources and target exist, none soft-deleted), the steps, their
//! conflicts and counts ([`plan`]). The preview lists the same steps' rows; the
//! merge executes them; so the preview is the effect.
//!
//! Levels: level 0 merges the sources into the target. A row that would collide in
//! a unique key once re-pointed (a sub-account whose username the target already
//! has) is a conflict; with `--merge-conflicts` it is merged into its counterpart
//! one level down (what references it now references the counterpart), is not
//! re-pointed itself, and is then handled like the sources (`--conflict-rows`).
//! Levels run deepest first, so that a level's rows are settled before the level
//! above moves what references them. Depth is bounded; a row merged away twice, or
//! merged into a row that is itself merged away, is a cycle and refused.

use super::refs::{self, Declared, Reference};
use super::{MergeError, MergeOptions, RowAction};
use lockgate_core::{Table, TableName, Value};
use lockgate_db::dialect::KeyColumn;
use lockgate_db::merge::{self as sql, key_text, MapEntry, Step};
use lockgate_db::rows::{self, KeyValues};
use lockgate_db::{Conn, DbError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The most conflicting rows one level may merge (each is a bound value in the
/// statements of the level above), and the most listed per unique key.
pub const MAX_CONFLICT_ROWS: usize = 2_000;

/// A row that would collide in a unique key once re-pointed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The referencing table.
    pub table: String,
    /// The unique key's columns.
    pub unique: Vec<String>,
    /// The unique key's values after the move, in `unique`'s order.
    pub values: Vec<serde_json::Value>,
    /// The row that would move.
    pub row: serde_json::Map<String, serde_json::Value>,
    /// The row it would collide with.
    pub counterpart: serde_json::Map<String, serde_json::Value>,
    /// 0: found re-pointing the sources' references; 1: a conflicting row's…
    pub level: usize,
}

/// One row a merge re-points (the preview lists them all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The referencing table.
    pub table: String,
    /// The row's key.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// The columns that change.
    pub columns: Vec<String>,
    /// Their values before.
    pub old: Vec<serde_json::Value>,
    /// Their values after.
    pub new: Vec<serde_json::Value>,
    /// The level of the step that moves it.
    pub level: usize,
}

/// The input, checked against the schema before any lock or write.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub merged: Table,
    pub tables: Vec<Table>,
    pub declared: Vec<Declared>,
    pub skip: Vec<TableName>,
    pub sources: Vec<Vec<Value>>,
    pub target: Vec<Value>,
}

impl Prepared {
    /// Every table a merge may write: the merged one and all that reference it,
    /// directly or through other referencing tables (a conflicting row's own
    /// references), for the table locks.
    pub fn tables_written(&self) -> Vec<TableName> {
        let mut out = vec![self.merged.name.clone()];
        let mut i = 0;
        while i < out.len() {
            let current = out[i].clone();
            for t in &self.tables {
                let points = t.foreign_keys.iter().any(|fk| fk.references.same_as(&current))
                    || (i == 0 && self.declared_tables().contains(&t.name));
                if points && !out.contains(&t.name) {
                    out.push(t.name.clone());
                }
            }
            i += 1;
        }
        out
    }

    fn declared_tables(&self) -> Vec<TableName> {
        refs::refs_to(&self.tables, &self.merged, &self.declared, &[])
            .into_iter()
            .map(|r| r.table_name)
            .collect()
    }
}

/// Types a key as written for the table's primary key.
fn typed_key(table: &Table, parts: &[String], what: &str) -> Result<Vec<Value>, String> {
    let pk = &table.primary_key;
    if parts.len() != pk.len() {
        return Err(format!(
            "{what} {:?} has {} part(s) but {}'s primary key ({}) has {}: write the parts in key order, \
             separated by ':'",
            parts.join(":"),
            parts.len(),
            table.name,
            pk.join(", "),
            pk.len()
        ));
    }
    let mut out = Vec::new();
    for (c, text) in pk.iter().zip(parts) {
        let col = table.column(c).expect("primary key columns exist");
        match col.kind.parse_text(text) {
            Ok(v) => out.push(v),
            Err(e) => return Err(format!("{what} {text:?} is not a value of {}.{c}: {e}", table.name)),
        }
    }
    Ok(out)
}

/// Checks the set columns of a row action against a table.
fn check_action(table: &Table, action: &RowAction, flag: &str) -> Vec<String> {
    let RowAction::Set(assignments) = action else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (c, _) in assignments {
        match table.column(c) {
            None => problems.push(format!(
                "{flag} sets column {c}, which {} does not have (its columns: {})",
                table.name,
                table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(col) if table.primary_key.contains(&col.name) => problems.push(format!(
                "{flag} sets {}.{c}, a primary key column: references would be left pointing at nothing",
                table.name
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The resolved set assignments of an action (column names as the table spells them).
pub(crate) fn resolved(table: &Table, action: &RowAction) -> RowAction {
    match action {
        RowAction::Set(a) => RowAction::Set(
            a.iter()
                .map(|(c, e)| (table.column(c).map_or(c.clone(), |c| c.name.clone()), e.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks the input against the schema: the table (with a primary key), the keys
/// (arity, types, distinct, target not a source), declared references, skipped
/// tables, the columns and expressions of `--sources set:` and the soft-delete
/// condition. Nothing is written.
pub(crate) async fn prepare(conn: &mut Conn, opts: &MergeOptions) -> Result<Prepared, MergeError> {
    let merged = conn
        .find_table(&opts.table)
        .await
        .map_err(|e| MergeError::one(e.to_string()))?;
    if merged.primary_key.is_empty() {
        return Err(MergeError::one(format!(
            "table {} has no primary key: a merge names its rows by their primary key; add one first",
            merged.name
        )));
    }
    let mut problems = Vec::new();
    if opts.sources.is_empty() {
        problems.push("no sources given: name the rows to merge with --from".to_string());
    }
    if opts.target.is_empty() {
        problems.push("no target given: name the row to merge into with --into".to_string());
    }
    let mut sources = Vec::new();
    for s in &opts.sources {
        match typed_key(&merged, s, "source") {
            Ok(k) => sources.push(k),
            Err(e) => problems.push(e),
        }
    }
    let target = match typed_key(&merged, &opts.target, "target") {
        Ok(k) => k,
        Err(e) => {
            if !opts.target.is_empty() {
                problems.push(e);
            }
            Vec::new()
        }
    };
    let mut seen = HashSet::new();
    for s in &sources {
        if !seen.insert(key_text(s)) {
            problems.push(format!("source {} is given twice", show_key(s)));
        }
        if !target.is_empty() && key_text(s) == key_text(&target) {
            problems.push(format!(
                "source {} is the target: a row cannot be merged into itself",
                show_key(s)
            ));
        }
    }
    problems.extend(check_action(&merged, &opts.sources_action, "--sources"));
    let tables = conn.user_tables().await?;
    let declared = match refs::parse_declared(&opts.references, &tables, &merged) {
        Ok(d) => d,
        Err(MergeError::Invalid(p)) => {
            problems.extend(p);
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let skip = match refs::skipped(&tables, &opts.skip_tables) {
        Ok(s) => s,
        Err(MergeError::Invalid(p)) => {
            problems.extend(p);
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    if !problems.is_empty() {
        return Err(MergeError::Invalid(problems));
    }
    // The user's SQL is checked by the engine itself, on a query that reads nothing.
    if let Some(cond) = &opts.deleted_when {
        if let Err(e) = sql::check_expression(conn, &merged.name, cond).await {
            problems.push(format!(
                "the soft-delete condition {cond:?} does not work on {}: {e}",
                merged.name
            ));
        }
    }
    if let RowAction::Set(a) = &opts.sources_action {
        for (c, e) in a {
            if let Err(err) = sql::check_expression(conn, &merged.name, e).await {
                problems.push(format!("--sources set:{c}={e} does not work on {}: {err}", merged.name));
            }
        }
    }
    // `--conflict-rows set:` applies to whichever table conflicts: its columns and
    // expressions are checked on the tables where conflicts can arise (a unique key
    // holding a referencing column), so that a typo is found before any write.
    let direct = refs::refs_to(&tables, &merged, &declared, &skip);
    if let RowAction::Set(assignments) = &opts.conflict_rows {
        let candidates: Vec<&Table> = direct
            .iter()
            .filter(|r| !r.skipped && !r.unique.is_empty())
            .filter_map(|r| tables.iter().find(|t| t.name == r.table_name))
            .collect();
        let fitting: Vec<&&Table> = candidates
            .iter()
            .filter(|t| assignments.iter().all(|(c, _)| t.column(c).is_some()))
            .collect();
        if !candidates.is_empty() && fitting.is_empty() {
            problems.push(format!(
                "--conflict-rows sets {}, which none of the tables where conflicts can arise ({}) has",
                assignments
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                candidates
                    .iter()
                    .map(|t| t.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for t in fitting {
            for (c, e) in assignments {
                if let Err(err) = sql::check_expression(conn, &t.name, e).await {
                    problems.push(format!(
                        "--conflict-rows set:{c}={e} does not work on {}: {err}",
                        t.name
                    ));
                }
            }
        }
    }
    for r in direct.iter().filter(|r| !r.skipped) {
        if let Some(t) = tables.iter().find(|t| t.name == r.table_name) {
            if let Err(MergeError::Invalid(p)) = check_keyed(r, t) {
                problems.extend(p);
            }
        }
    }
    if !problems.is_empty() {
        return Err(MergeError::Invalid(problems));
    }
    let prep = Prepared {
        merged,
        tables,
        declared,
        skip,
        sources,
        target,
    };
    validate(conn, &prep, opts).await?;
    Ok(prep)
}

/// A key as the messages show it (`5`, or `1:5` for a composite one).
pub(crate) fn show_key(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(":")
}

/// Column → value, as JSON, for reports.
pub(crate) fn json_map(columns: &[String], values: &[Value]) -> serde_json::Map<String, serde_json::Value> {
    columns.iter().cloned().zip(values.iter().map(Value::to_json)).collect()
}

/// One level: rows of `table` merged into others (`pairs`: the whole row merged
/// away and the whole row it is merged into), and what then happens to them.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    pub table: Table,
    pub pairs: Vec<(Vec<Value>, Vec<Value>)>,
    pub action: RowAction,
    pub depth: usize,
}

impl Level {
    /// The key values of the rows merged away.
    pub fn keys(&self) -> Vec<Vec<Value>> {
        self.pairs.iter().map(|(x, _)| pk_of(&self.table, x)).collect()
    }
}

/// A row's primary key values from its whole row.
pub(crate) fn pk_of(table: &Table, row: &[Value]) -> Vec<Value> {
    table
        .primary_key
        .iter()
        .map(|k| row[table.column_index(k).expect("primary key columns exist")].clone())
        .collect()
}

/// One reference re-pointed.
#[derive(Clone, Debug)]
pub(crate) struct PlannedStep {
    pub reference: Reference,
    pub table: Table,
    pub key: Vec<KeyColumn>,
    pub map: Vec<MapEntry>,
    pub exclude: Vec<Vec<Value>>,
    /// The index of its level in [`Plan::levels`].
    pub level: usize,
    pub depth: usize,
    pub rows: u64,
}

impl PlannedStep {
    pub fn step(&self) -> Step<'_> {
        Step {
            table: &self.table,
            columns: &self.reference.columns,
            key: &self.key,
            map: &self.map,
            exclude: &self.exclude,
        }
    }
}

/// What the merge will do, in execution order: `levels[i]`'s steps then its
/// action, deepest level first.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub levels: Vec<Level>,
    pub steps: Vec<PlannedStep>,
    pub conflicts: Vec<Conflict>,
    /// Whether more conflicts exist than were read ([`MAX_CONFLICT_ROWS`] per unique key).
    pub conflicts_truncated: bool,
}

impl Plan {
    /// Step indexes and level indexes in the order they run.
    pub fn order(&self) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for li in (0..self.levels.len()).rev() {
            let steps: Vec<usize> = self
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.level == li)
                .map(|(i, _)| i)
                .collect();
            out.push((li, steps));
        }
        out
    }
}

/// Reads the whole rows of `table` with these primary keys, in the keys' order;
/// `None` for a key with no row.
async fn rows_by_key(conn: &mut Conn, table: &Table, keys: &[Vec<Value>]) -> Result<Vec<Option<Vec<Value>>>, DbError> {
    let kv: Vec<KeyValues> = keys
        .iter()
        .map(|k| table.primary_key.iter().cloned().zip(k.iter().cloned()).collect())
        .collect();
    let found = rows::select_by_keys(conn, table, &kv).await?;
    let texts: Vec<String> = found.iter().map(|r| key_text(&pk_of(table, r))).collect();
    Ok(keys
        .iter()
        .map(|k| {
            let t = key_text(k);
            texts.iter().position(|x| *x == t).map(|i| found[i].clone())
        })
        .collect())
}

/// The sources and the target, whole rows, in that order, once checked: each
/// exists, none is soft-deleted. Run before any lock (bad input is exit 2 with
/// nothing written) and again inside the transaction (what it reads is what the
/// merge changes).
async fn validate(
    conn: &mut Conn,
    prep: &Prepared,
    opts: &MergeOptions,
) -> Result<Vec<Option<Vec<Value>>>, MergeError> {
    let merged = &prep.merged;
    let mut wanted = prep.sources.clone();
    wanted.push(prep.target.clone());
    let rows = rows_by_key(conn, merged, &wanted).await?;
    let mut problems = Vec::new();
    for (i, (k, r)) in wanted.iter().zip(&rows).enumerate() {
        if r.is_none() {
            let what = if i + 1 == wanted.len() { "target" } else { "source" };
            problems.push(format!("{what} {} is not in {}", show_key(k), merged.name));
        }
    }
    if let Some(cond) = &opts.deleted_when {
        for k in sql::keys_matching(conn, merged, &merged.primary_key, &wanted, cond).await? {
            let what = if key_text(&k) == key_text(&prep.target) {
                "target"
            } else {
                "source"
            };
            problems.push(format!(
                "{what} {} of {} is soft-deleted ({cond}): merge only live rows",
                show_key(&k),
                merged.name
            ));
        }
    }
    // A target whose referenced values are NULL would leave references pointing at
    // nothing.
    if let Some(Some(target)) = rows.last() {
        for r in refs::refs_to(&prep.tables, merged, &prep.declared, &prep.skip)
            .iter()
            .filter(|r| !r.skipped)
        {
            let nulls: Vec<&String> = r
                .referenced
                .iter()
                .filter(|c| merged.column_index(c).is_some_and(|i| target[i].is_null()))
                .collect();
            if !nulls.is_empty() {
                problems.push(format!(
                    "target {} has no {} (NULL): what references {} through {}({}) would point at nothing; give \
                     it a value first",
                    show_key(&prep.target),
                    nulls.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                    merged.name,
                    r.table,
                    r.columns.join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(MergeError::Invalid(problems))
    }
}

/// Refuses a referencing table whose moved rows could not be told apart for an
/// undo: one without a primary key or a unique key of NOT NULL columns.
fn check_keyed(r: &Reference, table: &Table) -> Result<(), MergeError> {
    if lockgate_db::writer::can_capture(table) {
        Ok(())
    } else {
        Err(MergeError::one(format!(
            "table {} references {} ({}) but has no primary key nor a unique key of NOT NULL columns: its moved \
             rows could not be told apart to undo the merge; add a primary key, or leave it out with --skip-table {}",
            table.name,
            r.referenced.join(", "),
            r.columns.join(", "),
            table.name
        )))
    }
}

/// Validates and plans the merge inside its transaction (so that what it reads is
/// what it will change).
/// With `shapes_only`, only the steps (tables, columns, keys, maps) of the
/// sources' level: no conflicts, no counts, no level below (what MariaDB needs to
/// create the side tables before its transaction, when conflicts are not merged).
pub(crate) async fn plan(
    conn: &mut Conn,
    prep: &Prepared,
    opts: &MergeOptions,
    shapes_only: bool,
) -> Result<Plan, MergeError> {
    let merged = &prep.merged;
    let rows = validate(conn, prep, opts).await?;
    let target_row = rows.last().cloned().flatten().expect("checked above");
    let top = Level {
        table: merged.clone(),
        pairs: rows[..rows.len() - 1]
            .iter()
            .map(|r| (r.clone().expect("checked above"), target_row.clone()))
            .collect(),
        action: resolved(merged, &opts.sources_action),
        depth: 0,
    };
    // Rows merged away (sources) and rows merged into (targets), to find cycles.
    let mut away: HashSet<(String, String)> = HashSet::new();
    let mut into: HashSet<(String, String)> = HashSet::new();
    for (x, y) in &top.pairs {
        away.insert((merged.name.to_string(), key_text(&pk_of(merged, x))));
        into.insert((merged.name.to_string(), key_text(&pk_of(merged, y))));
    }
    let mut plan = Plan {
        levels: vec![top],
        steps: Vec::new(),
        conflicts: Vec::new(),
        conflicts_truncated: false,
    };
    let mut li = 0;
    while li < plan.levels.len() {
        let level = plan.levels[li].clone();
        let declared: &[Declared] = if level.depth == 0 { &prep.declared } else { &[] };
        let references = refs::refs_to(&prep.tables, &level.table, declared, &prep.skip);
        // Conflicting rows found at this level, per referencing table: (row, counterpart) keys.
        let mut found: Vec<(Table, Vec<Value>, Vec<Value>)> = Vec::new();
        let mut level_steps = Vec::new();
        for r in references.into_iter().filter(|r| !r.skipped) {
            let table = prep
                .tables
                .iter()
                .find(|t| t.name == r.table_name)
                .cloned()
                .expect("references come from the described tables");
            let idx: Vec<usize> = r
                .referenced
                .iter()
                .map(|c| level.table.column_index(c).expect("referenced columns exist"))
                .collect();
            let map: Vec<MapEntry> = level
                .pairs
                .iter()
                .map(|(x, y)| MapEntry {
                    old: idx.iter().map(|&i| x[i].clone()).collect(),
                    new: idx.iter().map(|&i| y[i].clone()).collect(),
                })
                .filter(|e| e.old.iter().all(|v| !v.is_null()) && e.old != e.new)
                .collect();
            if map.is_empty() {
                continue;
            }
            if let Some(e) = map.iter().find(|e| e.new.iter().any(Value::is_null)) {
                return Err(MergeError::one(format!(
                    "the row {} is merged into has no {} (NULL): what references {} through {}.{} would point at \
                     nothing; give it a value first",
                    show_key(&e.old),
                    r.referenced.join(", "),
                    level.table.name,
                    r.table,
                    r.columns.join(", ")
                )));
            }
            check_keyed(&r, &table)?;
            let key = sql::row_key(&table);
            let mut step = PlannedStep {
                reference: r.clone(),
                table: table.clone(),
                key,
                map,
                exclude: Vec::new(),
                level: li,
                depth: level.depth,
                rows: 0,
            };
            for u in r.unique.iter().filter(|_| !shapes_only) {
                let found_here = sql::conflicts(conn, &step.step(), u, MAX_CONFLICT_ROWS + 1).await?;
                if found_here.len() > MAX_CONFLICT_ROWS {
                    plan.conflicts_truncated = true;
                }
                for c in found_here {
                    let names: Vec<String> = step.key.iter().map(|k| k.name.clone()).collect();
                    plan.conflicts.push(Conflict {
                        table: table.name.to_string(),
                        unique: u.clone(),
                        values: c.values.iter().map(Value::to_json).collect(),
                        row: json_map(&names, &c.row),
                        counterpart: json_map(&names, &c.counterpart),
                        level: level.depth,
                    });
                    if !found
                        .iter()
                        .any(|(t, k, _)| t.name == table.name && key_text(k) == key_text(&c.row))
                    {
                        found.push((table.clone(), c.row.clone(), c.counterpart.clone()));
                    }
                }
            }
            step.exclude = Vec::new();
            level_steps.push(step);
        }
        if !found.is_empty() && opts.merge_conflicts {
            if plan.conflicts_truncated {
                return Err(MergeError::one(format!(
                    "more than {MAX_CONFLICT_ROWS} rows of {} conflict, more than one merge can merge into their \
                     counterparts: merge fewer sources at once",
                    found[0].0.name
                )));
            }
            if level.depth + 1 > opts.max_depth {
                return Err(MergeError::one(format!(
                    "conflicts nest deeper than {} levels (in {}): merge fewer rows at once, or resolve them first",
                    opts.max_depth, found[0].0.name
                )));
            }
            // One level below per table, each conflicting row into its counterpart.
            let mut tables: Vec<TableName> = Vec::new();
            for (t, _, _) in &found {
                if !tables.contains(&t.name) {
                    tables.push(t.name.clone());
                }
            }
            for name in tables {
                let table = prep.tables.iter().find(|t| t.name == name).cloned().expect("described");
                let ours: Vec<&(Table, Vec<Value>, Vec<Value>)> =
                    found.iter().filter(|(t, _, _)| t.name == name).collect();
                if table.primary_key.is_empty() {
                    return Err(MergeError::one(format!(
                        "{} rows of {name} conflict, and {name} has no primary key to merge them by: \
                         resolve the conflicts first",
                        ours.len()
                    )));
                }
                if ours.len() > MAX_CONFLICT_ROWS {
                    return Err(MergeError::one(format!(
                        "{} rows of {name} conflict, more than the {MAX_CONFLICT_ROWS} one merge can merge into \
                         their counterparts: merge fewer sources at once",
                        ours.len()
                    )));
                }
                // The row key of a table with a primary key is the primary key.
                let xs: Vec<Vec<Value>> = ours.iter().map(|(_, x, _)| x.clone()).collect();
                let ys: Vec<Vec<Value>> = ours.iter().map(|(_, _, y)| y.clone()).collect();
                let xrows = rows_by_key(conn, &table, &xs).await?;
                let yrows = rows_by_key(conn, &table, &ys).await?;
                let mut pairs = Vec::new();
                for ((x, y), (xk, yk)) in xrows.into_iter().zip(yrows).zip(xs.iter().zip(&ys)) {
                    let (Some(x), Some(y)) = (x, y) else {
                        return Err(DbError::Invalid(format!(
                            "row {} or {} of {name} went away while the merge was planned: run it again",
                            show_key(xk),
                            show_key(yk)
                        ))
                        .into());
                    };
                    let xid = (name.to_string(), key_text(xk));
                    let yid = (name.to_string(), key_text(yk));
                    if xid == yid || away.contains(&xid) || into.contains(&xid) || away.contains(&yid) {
                        return Err(MergeError::one(format!(
                            "merging conflicting row {} of {name} into {} would merge a row twice (a cycle): \
                             resolve this conflict by hand first",
                            show_key(xk),
                            show_key(yk)
                        )));
                    }
                    away.insert(xid);
                    into.insert(yid);
                    pairs.push((x, y));
                }
                // The rows merged away stay where they are: the steps of this level
                // leave them out.
                for s in level_steps.iter_mut().filter(|s| s.table.name == name) {
                    s.exclude = xs.clone();
                }
                let problems = check_action(&table, &opts.conflict_rows, "--conflict-rows");
                if !problems.is_empty() {
                    return Err(MergeError::Invalid(problems));
                }
                plan.levels.push(Level {
                    table: table.clone(),
                    pairs,
                    action: resolved(&table, &opts.conflict_rows),
                    depth: level.depth + 1,
                });
            }
        }
        for mut s in level_steps {
            if !shapes_only {
                s.rows = sql::count(conn, &s.step()).await?;
            }
            plan.steps.push(s);
        }
        li += 1;
    }
    Ok(plan)
}

/// Hands every row the plan would re-point to `f`, a page at a time.
pub(crate) async fn changes(
    conn: &mut Conn,
    plan: &Plan,
    f: &mut (dyn FnMut(Change) + Send),
) -> Result<(), MergeError> {
    for (_, steps) in plan.order() {
        for i in steps {
            let s = &plan.steps[i];
            let names: Vec<String> = s.key.iter().map(|k| k.name.clone()).collect();
            let table = s.table.name.to_string();
            let mut page = |rows: Vec<Vec<Value>>| -> Result<(), MergeError> {
                for mut r in rows {
                    let entry = r.pop().and_then(|v| match v {
                        Value::Int(i) => usize::try_from(i).ok(),
                        other => other.to_string().parse().ok(),
                    });
                    let Some(e) = entry.and_then(|e| s.map.get(e)) else {
                        continue;
                    };
                    f(Change {
                        table: table.clone(),
                        key: json_map(&names, &r),
                        columns: s.reference.columns.clone(),
                        old: e.old.iter().map(Value::to_json).collect(),
                        new: e.new.iter().map(Value::to_json).collect(),
                        level: s.depth,
                    });
                }
                Ok(())
            };
            sql::moving_rows(conn, &s.step(), 5_000, &mut page).await?;
        }
    }
    Ok(())
}
