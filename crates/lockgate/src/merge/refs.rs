//! The references to a table: every foreign key that points at it (composite ones
//! included, a table's own self-reference too), and the soft references a merge
//! definition declares for schemas without foreign keys (`jobs.byPuid ->
//! customers.id`, or `jobs(a, b) -> customers(x, y)`), each with the unique keys of
//! the referencing table that include its columns (where re-pointing can collide)
//! and the key its moved rows are recorded by.

use super::MergeError;
use lockgate_core::{Table, TableName};
use lockgate_db::{Conn, DbUrl};
use serde::Serialize;

/// One reference to the merged table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reference {
    /// The referencing table.
    pub table: String,
    /// Its name as described.
    #[serde(skip)]
    pub table_name: TableName,
    /// Its referencing columns.
    pub columns: Vec<String>,
    /// The merged table's columns they reference, in the same order.
    pub referenced: Vec<String>,
    /// `foreign_key` or `declared`.
    pub kind: String,
    /// The constraint's name, or the declaration as written.
    pub name: String,
    /// The unique keys (primary key included) of the referencing table that hold
    /// any of the referencing columns: re-pointing may collide there.
    pub unique: Vec<Vec<String>>,
    /// The key its moved rows are recorded by (for undo).
    pub row_key: Vec<String>,
    /// Left alone (`--skip-table`).
    pub skipped: bool,
    /// For a reference found transitively: the referencing table it points at (a
    /// job log pointing at its job, which points at the merged table). `None` for a
    /// reference to the merged table itself.
    pub via: Option<String>,
    /// Whether a merge changes the values it holds: always for a reference to the
    /// merged table; for a transitive one, only when it points at columns the merge
    /// re-points (a composite key through them, which the engine must follow with
    /// `ON UPDATE CASCADE`); otherwise its rows follow their row unchanged.
    pub changes: bool,
}

/// A reference of table `t` through `columns` (pointing at `referenced`): the
/// unique keys holding any of them and the key its moved rows are recorded by.
#[allow(clippy::too_many_arguments)]
fn reference(
    t: &Table,
    columns: Vec<String>,
    referenced: Vec<String>,
    kind: &str,
    name: String,
    skipped: bool,
    via: Option<String>,
    changes: bool,
) -> Reference {
    let unique = t
        .unique_keys()
        .into_iter()
        .filter(|u| u.iter().any(|c| columns.contains(c)))
        .collect();
    let row_key = lockgate_db::merge::row_key(t).into_iter().map(|k| k.name).collect();
    Reference {
        table: t.name.to_string(),
        table_name: t.name.clone(),
        columns,
        referenced,
        kind: kind.into(),
        name,
        unique,
        row_key,
        skipped,
        via,
        changes,
    }
}

/// A declared reference, parsed and checked against the schema.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Declared {
    text: String,
    table: TableName,
    columns: Vec<String>,
    referenced: Vec<String>,
}

/// `table.col` or `table(col, col)`: the table and its columns.
fn side(s: &str) -> Option<(String, Vec<String>)> {
    let s = s.trim();
    if let Some(open) = s.find('(') {
        let table = s[..open].trim();
        let cols = s[open + 1..].strip_suffix(')')?;
        let cols: Vec<String> = cols.split(',').map(|c| c.trim().to_string()).collect();
        if table.is_empty() || cols.iter().any(|c| c.is_empty()) {
            return None;
        }
        return Some((table.to_string(), cols));
    }
    let (table, col) = s.rsplit_once('.')?;
    let (table, col) = (table.trim(), col.trim());
    if table.is_empty() || col.is_empty() {
        return None;
    }
    Some((table.to_string(), vec![col.to_string()]))
}

/// Parses and checks declared references against the schema: the referencing
/// table and columns exist, the referenced table is the merged one and has the
/// columns, and both sides have as many columns.
pub(crate) fn parse_declared(texts: &[String], tables: &[Table], merged: &Table) -> Result<Vec<Declared>, MergeError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for text in texts {
        let Some((left, right)) = text.split_once("->") else {
            problems.push(format!(
                "reference {text:?} is not TABLE.COLUMN -> {}.COLUMN (or TABLE(A, B) -> {}(X, Y))",
                merged.name, merged.name
            ));
            continue;
        };
        let (Some((lt, lc)), Some((rt, rc))) = (side(left), side(right)) else {
            problems.push(format!("reference {text:?} is not TABLE.COLUMN -> TABLE.COLUMN"));
            continue;
        };
        let rname = TableName::parse(&rt);
        if !(rname.name.eq_ignore_ascii_case(&merged.name.name)) {
            problems.push(format!(
                "reference {text:?} points at {rt}, not at the merged table {}",
                merged.name
            ));
            continue;
        }
        let Some(table) = find(tables, &lt) else {
            problems.push(format!("reference {text:?} names table {lt}, which does not exist"));
            continue;
        };
        if lc.len() != rc.len() {
            problems.push(format!(
                "reference {text:?} has {} referencing columns but {} referenced ones",
                lc.len(),
                rc.len()
            ));
            continue;
        }
        let mut columns = Vec::new();
        for c in &lc {
            match table.column(c) {
                Some(col) => columns.push(col.name.clone()),
                None => problems.push(format!(
                    "reference {text:?} names column {c} of {}, which has no such column",
                    table.name
                )),
            }
        }
        let mut referenced = Vec::new();
        for c in &rc {
            match merged.column(c) {
                Some(col) => referenced.push(col.name.clone()),
                None => problems.push(format!(
                    "reference {text:?} names column {c} of {}, which has no such column",
                    merged.name
                )),
            }
        }
        if columns.len() == lc.len() && referenced.len() == rc.len() {
            out.push(Declared {
                text: text.clone(),
                table: table.name.clone(),
                columns,
                referenced,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(MergeError::Invalid(problems))
    }
}

/// A table by a user's name (ARCHITECTURE.md's naming rule).
pub(crate) fn find<'t>(tables: &'t [Table], name: &str) -> Option<&'t Table> {
    let wanted = TableName::parse(name);
    let matches = |t: &&Table| match &wanted.schema {
        Some(s) => t.name.schema.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(s)),
        None => true,
    };
    if let Some(t) = tables.iter().filter(matches).find(|t| t.name.name == wanted.name) {
        return Some(t);
    }
    let mut ci = tables
        .iter()
        .filter(matches)
        .filter(|t| t.name.name.eq_ignore_ascii_case(&wanted.name));
    match (ci.next(), ci.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    }
}

/// The references to `merged` among `tables`: foreign keys first (by table, then
/// name), then the declared ones. A declared reference that repeats a foreign key
/// is listed once.
pub(crate) fn refs_to(tables: &[Table], merged: &Table, declared: &[Declared], skip: &[TableName]) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    let make = |t: &Table, columns: Vec<String>, referenced: Vec<String>, kind: &str, name: String| {
        let skipped = skip.iter().any(|s| s.same_as(&t.name));
        reference(t, columns, referenced, kind, name, skipped, None, true)
    };
    let mut sorted: Vec<&Table> = tables.iter().collect();
    sorted.sort_by_key(|t| t.name.to_string());
    for t in sorted {
        let mut fks: Vec<_> = t
            .foreign_keys
            .iter()
            .filter(|fk| fk.references.same_as(&merged.name))
            .collect();
        fks.sort_by(|a, b| a.name.cmp(&b.name));
        for fk in fks {
            let (columns, referenced): (Vec<String>, Vec<String>) = fk.columns.iter().cloned().unzip();
            out.push(make(t, columns, referenced, "foreign_key", fk.name.clone()));
        }
    }
    for d in declared {
        let Some(t) = tables.iter().find(|t| t.name == d.table) else {
            continue;
        };
        if out
            .iter()
            .any(|r| r.table_name == d.table && r.columns == d.columns && r.referenced == d.referenced)
        {
            continue;
        }
        out.push(make(
            t,
            d.columns.clone(),
            d.referenced.clone(),
            "declared",
            d.text.clone(),
        ));
    }
    out
}

/// The references found transitively from `direct` ones: every foreign key that
/// points at a referencing table, and at the tables pointing at those, breadth
/// first, each table's references listed once. They are shown, not re-pointed: a
/// row that references a moved row follows it unchanged, unless it points at the
/// very columns the merge re-points (then `changes`).
pub(crate) fn transitive(tables: &[Table], direct: &[Reference]) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    // (table, the columns of it a merge changes)
    let mut queue: Vec<(TableName, Vec<String>)> = direct
        .iter()
        .filter(|r| !r.skipped)
        .map(|r| (r.table_name.clone(), r.columns.clone()))
        .collect();
    let mut seen: Vec<(TableName, Vec<String>)> = queue.clone();
    let mut i = 0;
    while i < queue.len() && out.len() < 1000 {
        let (parent, changed) = queue[i].clone();
        i += 1;
        let mut sorted: Vec<&Table> = tables.iter().collect();
        sorted.sort_by_key(|t| t.name.to_string());
        for t in sorted {
            let mut fks: Vec<_> = t
                .foreign_keys
                .iter()
                .filter(|fk| fk.references.same_as(&parent))
                .collect();
            fks.sort_by(|a, b| a.name.cmp(&b.name));
            for fk in fks {
                let (columns, referenced): (Vec<String>, Vec<String>) = fk.columns.iter().cloned().unzip();
                let changes = referenced.iter().any(|c| changed.contains(c));
                if direct
                    .iter()
                    .chain(&out)
                    .any(|r| r.table_name == t.name && r.name == fk.name)
                {
                    continue;
                }
                // What this table's rows hold that the merge changes: the columns
                // pointing at changed ones.
                let follows: Vec<String> = fk
                    .columns
                    .iter()
                    .filter(|(_, to)| changed.contains(to))
                    .map(|(from, _)| from.clone())
                    .collect();
                out.push(reference(
                    t,
                    columns,
                    referenced,
                    "foreign_key",
                    fk.name.clone(),
                    false,
                    Some(parent.to_string()),
                    changes,
                ));
                let next = (t.name.clone(), follows);
                if !seen.contains(&next) {
                    seen.push(next.clone());
                    queue.push(next);
                }
            }
        }
    }
    out
}

/// Resolves `--skip-table` names; an unknown one is an error.
pub(crate) fn skipped(tables: &[Table], names: &[String]) -> Result<Vec<TableName>, MergeError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for n in names {
        match find(tables, n) {
            Some(t) => out.push(t.name.clone()),
            None => problems.push(format!("--skip-table names table {n}, which does not exist")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(MergeError::Invalid(problems))
    }
}

/// `lockgate merge refs`: every reference to `table`, found or declared, with its
/// columns and the unique keys that include them, then the references found
/// transitively (`via` the table they point at).
pub async fn references(
    url: &DbUrl,
    table: &str,
    declared: &[String],
    skip: &[String],
) -> Result<Vec<Reference>, MergeError> {
    let mut conn = Conn::connect_existing(url).await?;
    let merged = conn
        .find_table(table)
        .await
        .map_err(|e| MergeError::one(e.to_string()))?;
    let tables = conn.user_tables().await?;
    let declared = parse_declared(declared, &tables, &merged)?;
    let skip = skipped(&tables, skip)?;
    let mut refs = refs_to(&tables, &merged, &declared, &skip);
    let more = transitive(&tables, &refs);
    refs.extend(more);
    Ok(refs)
}
