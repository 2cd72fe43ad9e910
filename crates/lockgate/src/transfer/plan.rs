//! The destination check: a transfer's columns resolved on both sides, before any
//! export is created or run. Every problem is collected (missing columns,
//! incompatible types, NOT NULL columns nothing fills, an unknown key) and reported
//! at once; nothing is written. Columns whose destination type cannot hold every
//! value of the source's type (`narrowing`: a finer fraction of a second, a wider
//! integer, a longer text) are reported too, without failing the check: the values
//! that do not fit are then each that row's error, never silently changed.

use super::def::{SourceSpec, Transfer};
use super::TransferError;
use lockgate_core::{narrowing, Kind, Table, TextForm, Value};
use lockgate_db::relation::{self, Projection, Relation, SourceExpr};
use lockgate_db::Conn;

/// A transfer resolved against its two databases.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The source relation.
    pub relation: Relation,
    /// Destination column ← source expression, with the key and read kinds.
    pub projection: Projection,
    /// The destination table.
    pub dest: Table,
    /// The kind of each projected column in the destination.
    pub dest_kinds: Vec<Kind>,
    /// The key (destination names).
    pub key: Vec<String>,
    /// Whether the key is a primary or unique key of the source table, so the source
    /// cannot give a key twice (otherwise creating an export checks).
    pub key_unique_in_source: bool,
    /// Whether the key's source columns are NOT NULL, so no source row lacks a key
    /// (otherwise creating an export looks for one first).
    pub key_not_null_in_source: bool,
    /// Columns whose destination cannot hold every value of the source's type.
    pub narrowing: Vec<Narrowing>,
}

/// A destination column that cannot hold every value of its source's type: values
/// that do not fit are row errors when the export runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Narrowing {
    /// The destination column.
    pub column: String,
    /// Its source: a column name or the expression written.
    pub source: String,
    /// The source's type, as Lockgate reads it (`timestamp`, `int64`…).
    pub from: String,
    /// The destination column's type, as its engine writes it.
    pub to: String,
    /// Which values do not fit.
    pub why: String,
}

/// What the check found: each destination column and where its values come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// The transfer.
    pub transfer: String,
    /// The destination table.
    pub dest_table: String,
    /// `(destination column, source)` pairs, the source as a column name or the
    /// expression written.
    pub columns: Vec<(String, String)>,
    /// The key columns (destination names).
    pub key: Vec<String>,
    /// Columns whose destination cannot hold every value of the source's type
    /// (the check still passes; such values are row errors).
    pub narrowing: Vec<Narrowing>,
}

/// Resolves `t` against its source (`src`) and destination (`dst`) connections.
/// `Err(TransferError::Check)` lists every problem found.
pub async fn plan(t: &Transfer, src: &mut Conn, dst: &mut Conn) -> Result<Plan, TransferError> {
    let source_err = |e| TransferError::Source(t.source.redacted(), e);
    let mut source_table = None;
    let (relation, source_cols) = match &t.from {
        SourceSpec::Table(name) => {
            let table = src.find_table(name).await.map_err(source_err)?;
            let cols: Vec<(String, Kind)> = table.columns.iter().map(|c| (c.name.clone(), c.kind.clone())).collect();
            let rel = Relation::Table(table.name.clone());
            source_table = Some(table);
            (rel, cols)
        }
        SourceSpec::Query(q) => {
            let rel = Relation::Query(q.clone());
            let cols = relation::relation_columns(src, &rel).await.map_err(|e| {
                TransferError::Input(format!("transfer {:?}: the source query does not prepare: {e}", t.name))
            })?;
            (rel, cols)
        }
    };
    let dest = dst
        .find_table(&t.dest_table)
        .await
        .map_err(|e| TransferError::Dest(t.dest.redacted(), e))?;
    if dest.name.name.starts_with("lockgate_") {
        return Err(TransferError::Input(format!(
            "table {} is Lockgate's own ledger; a transfer cannot write it",
            dest.name
        )));
    }
    let mut problems = Vec::new();
    let find_source = |name: &str| -> Option<usize> {
        source_cols.iter().position(|(c, _)| c == name).or_else(|| {
            let m: Vec<usize> = (0..source_cols.len())
                .filter(|&i| source_cols[i].0.eq_ignore_ascii_case(name))
                .collect();
            (m.len() == 1).then(|| m[0])
        })
    };
    // Destination column → (source expr, source kind when known).
    let mut columns: Vec<(String, SourceExpr, Kind)> = Vec::new();
    let mut renamed = vec![false; source_cols.len()];
    for (dest_name, expr) in &t.map {
        let Some(col) = dest.column(dest_name) else {
            problems.push(format!(
                "--map names column {dest_name:?}, which table {} does not have (its columns: {})",
                dest.name,
                column_names(&dest)
            ));
            continue;
        };
        match find_source(expr) {
            Some(i) => {
                renamed[i] = true;
                columns.push((
                    col.name.clone(),
                    SourceExpr::Column(source_cols[i].0.clone()),
                    source_cols[i].1.clone(),
                ));
            }
            None => columns.push((col.name.clone(), SourceExpr::Sql(expr.clone()), Kind::Any)),
        }
    }
    for (i, (name, kind)) in source_cols.iter().enumerate() {
        if renamed[i] {
            continue;
        }
        match dest.column(name) {
            Some(col) if columns.iter().any(|(d, _, _)| *d == col.name) => {
                // --map already fills this destination column; the source column of
                // the same name is left out.
            }
            Some(col) => columns.push((col.name.clone(), SourceExpr::Column(name.clone()), kind.clone())),
            None => problems.push(format!(
                "source column {name:?} has no column in destination table {}: add the column there, \
                 rename it with --map DEST={name}, or select fewer columns with --source-query",
                dest.name
            )),
        }
    }
    let mut dest_kinds = Vec::new();
    for (dest_name, expr, kind) in &columns {
        let col = dest.column(dest_name).expect("resolved above");
        dest_kinds.push(col.kind.clone());
        if col.auto && !col.nullable && col.default.is_none() {
            // Generated columns cannot be written; identity columns can.
        }
        if let Some(why) = incompatible(kind, &col.kind) {
            let from = match expr {
                SourceExpr::Column(c) => format!("source column {c:?}"),
                SourceExpr::Sql(s) => format!("expression {s:?}"),
            };
            problems.push(format!(
                "{from} ({}) cannot go into column {dest_name:?} of {} ({}): {why}; convert it with --map {dest_name}=EXPR",
                kind_name(kind),
                dest.name,
                col.data_type
            ));
        }
    }
    for col in &dest.columns {
        if !col.may_be_omitted() && !columns.iter().any(|(d, _, _)| *d == col.name) {
            problems.push(format!(
                "column {:?} of {} is NOT NULL without a default and nothing fills it: \
                 add it to the source or give it with --map {}=EXPR",
                col.name, dest.name, col.name
            ));
        }
    }
    let key_names = if t.key.is_empty() {
        dest.primary_key.clone()
    } else {
        t.key.clone()
    };
    if key_names.is_empty() {
        problems.push(format!(
            "table {} has no primary key: name the key column(s) with --key (a row set is a set of keys)",
            dest.name
        ));
    }
    let mut key_pos = Vec::new();
    let mut key = Vec::new();
    for k in &key_names {
        let resolved = dest.column(k).map(|c| c.name.clone());
        match resolved.and_then(|name| columns.iter().position(|(d, _, _)| *d == name).map(|p| (name, p))) {
            Some((name, p)) => {
                key_pos.push(p);
                key.push(name);
            }
            None if dest.column(k).is_none() => problems.push(format!(
                "key column {k:?} is not a column of destination table {} (its columns: {})",
                dest.name,
                column_names(&dest)
            )),
            None => problems.push(format!(
                "key column {k:?} has no source: add it to the source or --map it"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(TransferError::Check(problems));
    }
    // Kinds the source is read as: keys typed (they are bound back into the source's
    // queries), other columns as the engine gives them, converted per row so that a
    // value that does not fit is that row's error, not the whole read's.
    let exprs: Vec<(String, SourceExpr)> = columns.iter().map(|(d, e, _)| (d.clone(), e.clone())).collect();
    let prepared = relation::projection_kinds(src, &relation, &exprs).await.map_err(|e| {
        TransferError::Input(format!(
            "transfer {:?}: the source select does not prepare: {e}",
            t.name
        ))
    })?;
    let kinds = (0..columns.len())
        .map(|i| {
            if key_pos.contains(&i) {
                match (&columns[i].2, prepared.get(i)) {
                    // An expression whose type the engine does not say (SQLite): its
                    // keys are read and bound back as the destination column's type,
                    // since text never equals a number there.
                    (Kind::Any, None | Some(Kind::Any)) => dest_kinds[i].clone(),
                    (Kind::Any, Some(k)) => k.clone(),
                    (k, _) => k.clone(),
                }
            } else {
                Kind::Any
            }
        })
        .collect();
    let key_unique_in_source = source_table.as_ref().is_some_and(|st| {
        let mut cols: Vec<&str> = Vec::new();
        for &i in &key_pos {
            match &exprs[i].1 {
                SourceExpr::Column(c) => cols.push(c),
                SourceExpr::Sql(_) => return false,
            }
        }
        cols.sort_unstable();
        std::iter::once(&st.primary_key)
            .chain(st.unique_keys().iter())
            .any(|u| {
                let mut u: Vec<&str> = u.iter().map(String::as_str).collect();
                u.sort_unstable();
                !u.is_empty() && u == cols
            })
    });
    // What the source's types say each column may hold against what the destination
    // holds; an expression's type is what the source engine prepared it as.
    let narrowing = columns
        .iter()
        .enumerate()
        .filter_map(|(i, (dest_name, expr, kind))| {
            let from = match (kind, prepared.get(i)) {
                (Kind::Any, Some(k)) => k,
                (k, _) => k,
            };
            let col = dest.column(dest_name).expect("resolved above");
            narrowing(from, &col.kind).map(|why| Narrowing {
                column: dest_name.clone(),
                source: match expr {
                    SourceExpr::Column(c) => c.clone(),
                    SourceExpr::Sql(s) => s.clone(),
                },
                from: from.describe(),
                to: col.data_type.clone(),
                why,
            })
        })
        .collect();
    let key_not_null_in_source = source_table.as_ref().is_some_and(|st| {
        key_pos.iter().all(|&i| match &exprs[i].1 {
            SourceExpr::Column(c) => st.column(c).is_some_and(|col| !col.nullable),
            SourceExpr::Sql(_) => false,
        })
    });
    Ok(Plan {
        narrowing,
        key_unique_in_source,
        key_not_null_in_source,
        relation,
        projection: Projection {
            columns: exprs,
            key: key_pos,
            kinds,
        },
        dest,
        dest_kinds,
        key,
    })
}

impl Plan {
    /// The kinds of the key's columns, in key order.
    pub fn key_kinds(&self) -> Vec<Kind> {
        self.projection
            .key
            .iter()
            .map(|&i| self.projection.kinds[i].clone())
            .collect()
    }

    /// The check's report of this plan.
    pub fn report(&self, transfer: &str) -> CheckReport {
        CheckReport {
            transfer: transfer.to_string(),
            dest_table: self.dest.name.to_string(),
            columns: self
                .projection
                .columns
                .iter()
                .map(|(d, e)| {
                    (
                        d.clone(),
                        match e {
                            SourceExpr::Column(c) => c.clone(),
                            SourceExpr::Sql(s) => s.clone(),
                        },
                    )
                })
                .collect(),
            key: self.key.clone(),
            narrowing: self.narrowing.clone(),
        }
    }
}

fn column_names(t: &Table) -> String {
    t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn kind_name(k: &Kind) -> String {
    match k {
        Kind::Unsupported { type_name } => type_name.clone(),
        Kind::Any => "untyped".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_else(|| "?".into()),
    }
}

/// Broad families of kinds: values move freely within one (a row that does not fit
/// is that row's error), and text converts to anything by parsing.
fn family(k: &Kind) -> &'static str {
    match k {
        Kind::Bool | Kind::Int { .. } | Kind::Float { .. } | Kind::Decimal { .. } => "number",
        Kind::Text { .. } => "text",
        Kind::Bytes { .. } => "bytes",
        Kind::Date | Kind::Timestamp { .. } | Kind::TimestampTz { .. } => "time",
        Kind::Time { .. } => "clock",
        Kind::Json => "json",
        Kind::Uuid => "uuid",
        Kind::Any => "any",
        Kind::Unsupported { .. } => "unsupported",
    }
}

/// Why values of `from` cannot go into a column of `to`, or `None` when they can
/// (perhaps with some rows failing on their values).
fn incompatible(from: &Kind, to: &Kind) -> Option<String> {
    let (f, t) = (family(from), family(to));
    if f == "unsupported" {
        return Some("Lockgate does not read that type".into());
    }
    if t == "unsupported" {
        return Some("Lockgate does not write that type".into());
    }
    if f == t || f == "any" || t == "any" || f == "text" || t == "text" {
        return None;
    }
    if t == "json" {
        return None;
    }
    Some(format!("{f} values do not convert to {t}"))
}

/// The text a row set stores for a key: a one-column key's value as text, several
/// columns' values as a JSON array of texts.
pub fn key_text(values: &[Value]) -> String {
    fn one(v: &Value) -> String {
        match v {
            Value::Text(s) => s.clone(),
            other => other.to_string(),
        }
    }
    match values {
        [v] => one(v),
        vs => serde_json::to_string(&vs.iter().map(one).collect::<Vec<_>>()).unwrap_or_default(),
    }
}

/// Per key column, whether it is fixed-width text (`char(n)`), whose trailing spaces
/// are padding: key texts are compared without them ([`unpadded_key_text`], for the
/// held keys of `create` and the rows a run reads back).
pub fn padded_key(kinds: &[Kind]) -> Vec<bool> {
    kinds
        .iter()
        .map(|k| {
            matches!(
                k,
                Kind::Text {
                    form: TextForm::Padded,
                    ..
                }
            )
        })
        .collect()
}

/// A recorded key text as the key reads now: without the trailing spaces of its
/// fixed-width components (`padded`, from [`padded_key`]). An earlier Lockgate read
/// a PostgreSQL `character(n)` value with its padding, so an export it created
/// holds `'ab   '` where the row now reads `'ab'`. Other texts are left as they are.
pub fn unpadded_key_text<'a>(text: &'a str, padded: &[bool]) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    if !padded.contains(&true) {
        return Cow::Borrowed(text);
    }
    if padded.len() == 1 {
        return Cow::Borrowed(text.trim_end_matches(' '));
    }
    match serde_json::from_str::<Vec<String>>(text) {
        Ok(mut parts) if parts.len() == padded.len() => {
            for (part, pad) in parts.iter_mut().zip(padded) {
                if *pad {
                    part.truncate(part.trim_end_matches(' ').len());
                }
            }
            Cow::Owned(serde_json::to_string(&parts).unwrap_or_else(|_| text.to_string()))
        }
        _ => Cow::Borrowed(text),
    }
}

/// The values of a key text for the source's key kinds (the reverse of [`key_text`]).
pub fn key_values(text: &str, kinds: &[Kind]) -> Result<Vec<Value>, String> {
    let parts: Vec<String> = if kinds.len() == 1 {
        vec![text.to_string()]
    } else {
        serde_json::from_str(text).map_err(|_| format!("key {text:?} is not a JSON array of {} values", kinds.len()))?
    };
    if parts.len() != kinds.len() {
        return Err(format!(
            "key {text:?} has {} values, the key has {} columns",
            parts.len(),
            kinds.len()
        ));
    }
    parts
        .iter()
        .zip(kinds)
        .map(|(p, k)| match k {
            Kind::Any => Ok(Value::Text(p.clone())),
            // A source's key as its column holds it (an ENUM's '' included).
            k @ Kind::Text { .. } => k
                .check_stored(Value::Text(p.clone()))
                .map_err(|e| format!("key {p:?}: {e}")),
            k => k.parse_text(p).map_err(|e| format!("key {p:?}: {e}")),
        })
        .collect()
}

/// Converts a source value for a destination column: text parses into the column's
/// type, numbers and the like become text for text columns; other pairs are left to
/// the writer's check. `Err` is that row's error for that column.
pub fn convert(v: Value, to: &Kind) -> Result<Value, String> {
    match (v, to) {
        (Value::Null, _) => Ok(Value::Null),
        (v, Kind::Any) => Ok(v),
        (Value::Text(s), Kind::Text { .. } | Kind::Bytes { .. }) => Ok(Value::Text(s)),
        (Value::Text(s), k) => k.parse_text(&s).map_err(|e| e.0),
        (Value::Float(f), Kind::Decimal { .. }) => lockgate_core::Decimal::from_f64(f)
            .map(Value::Decimal)
            .ok_or_else(|| format!("{f} is not a decimal number")),
        (
            v @ (Value::Int(_) | Value::Float(_) | Value::Decimal(_) | Value::Bool(_) | Value::Uuid(_)),
            Kind::Text { .. },
        ) => Ok(Value::Text(v.to_string())),
        (v @ (Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) | Value::Time(_)), Kind::Text { .. }) => {
            Ok(Value::Text(v.to_string()))
        }
        (v, _) => Ok(v),
    }
}
