//! Transfer definitions: `[transfers.NAME]` in `lockgate.toml`, overridden by flags,
//! resolved into a [`Transfer`] with URLs parsed and values checked.
//!
//! ```toml
//! [transfers.customers]
//! source = "sqlite://source.db"        # a URL or a connection name
//! source_table = "customers"           # or source_query = "SELECT …"
//! dest = "sqlite://destination.db"
//! dest_table = "customers"
//! key = ["CustomerID"]
//! batch_size = 5000
//! map = { FullName = "FirstName || ' ' || LastName", Origin = "'web'" }
//! on_error = "rollback"                # or "skip", "stop": recorded with each export
//! lock_timeout = "60s"                 # how long `create` waits for another create
//! ```

use super::TransferError;
use crate::config::Config;
use lockgate_db::writer::{OnError, WriteMode};
use lockgate_db::DbUrl;
use std::collections::BTreeMap;
use std::time::Duration;

/// A transfer as written in `lockgate.toml` or given by flags; every field optional,
/// so that flags can fill in or override the file.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// The source database: a URL or a connection name.
    pub source: Option<String>,
    /// The source table.
    pub source_table: Option<String>,
    /// A source query, instead of a table.
    pub source_query: Option<String>,
    /// The destination database (where the export ledger lives too).
    pub dest: Option<String>,
    /// The destination table.
    pub dest_table: Option<String>,
    /// Key column(s), as named in the destination.
    pub key: Option<Vec<String>>,
    /// Destination column = source column, constant or SQL expression (source side).
    pub map: Option<BTreeMap<String, String>>,
    /// Rows per batch.
    pub batch_size: Option<usize>,
    /// Write mode (default `insert`).
    pub mode: Option<WriteMode>,
    /// Commit every N rows (resumable, not all-or-nothing).
    pub commit_every: Option<u64>,
    /// What failing rows do to an export (default `rollback`); recorded with each
    /// export when it is created, so that whichever worker runs it runs it so.
    pub on_error: Option<OnError>,
    /// How long `create` waits for another create of the same transfer (default
    /// 60 s): seconds (`30`, `2.5`) or a duration text (`"30s"`, `"5m"`).
    #[serde(default, deserialize_with = "duration")]
    pub lock_timeout: Option<Duration>,
}

/// A duration in lockgate.toml: a number of seconds or a text such as `"30s"`, read
/// by the one duration parser (`lockgate_core::parse_duration`).
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Given {
        Int(u64),
        Float(f64),
        Text(String),
    }
    let text = match <Given as serde::Deserialize>::deserialize(d)? {
        Given::Int(n) => n.to_string(),
        Given::Float(f) => f.to_string(),
        Given::Text(t) => t,
    };
    lockgate_core::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl TransferSpec {
    /// This spec with every field that `over` gives replaced by it.
    pub fn overridden_by(mut self, over: TransferSpec) -> TransferSpec {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        if over.source_table.is_some() {
            self.source_query = None;
        }
        if over.source_query.is_some() {
            self.source_table = None;
        }
        take!(
            source,
            source_table,
            source_query,
            dest,
            dest_table,
            key,
            batch_size,
            mode,
            commit_every,
            on_error,
            lock_timeout
        );
        if let Some(map) = over.map {
            self.map.get_or_insert_with(BTreeMap::new).extend(map);
        }
        self
    }
}

/// Where a transfer reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A table, by the user's name for it.
    Table(String),
    /// A query, as written.
    Query(String),
}

/// A complete, checked transfer definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// Its name: exports belong to it.
    pub name: String,
    /// The source database.
    pub source: DbUrl,
    /// The source table or query.
    pub from: SourceSpec,
    /// The destination database.
    pub dest: DbUrl,
    /// The destination table, by the user's name for it.
    pub dest_table: String,
    /// Key columns (destination names); empty means the destination's primary key.
    pub key: Vec<String>,
    /// Destination column ← source column, constant or expression, in name order.
    pub map: Vec<(String, String)>,
    /// Rows per batch.
    pub batch_size: usize,
    /// How rows meet the destination's rows.
    pub mode: WriteMode,
    /// Commit every N rows instead of once.
    pub commit_every: Option<u64>,
    /// What failing rows do to an export created now: `rollback` (keep none of its
    /// rows), `skip` (keep the good ones, record the failing ones), `stop` (keep none,
    /// stop at the first).
    pub on_error: OnError,
    /// How long `create` waits for another create of the same transfer.
    pub lock_timeout: Duration,
}

/// The default rows per batch.
pub const DEFAULT_BATCH: usize = 5_000;

/// How long `create` waits, by default, for another create of the same transfer.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

impl Transfer {
    /// Resolves a transfer: `[transfers.NAME]` from `config` (when there), overridden
    /// by `flags`. Errors name what is missing and how to give it.
    pub fn resolve(name: &str, config: &Config, flags: TransferSpec) -> Result<Transfer, TransferError> {
        let spec = match config.transfers.get(name) {
            Some(s) => s.clone().overridden_by(flags),
            None => flags,
        };
        let missing = |what: &str, flag: &str| {
            TransferError::Input(format!(
                "transfer {name:?} has no {what}: give {flag} or set it under [transfers.{name}] in lockgate.toml"
            ))
        };
        let url = |raw: &str, what: &str| {
            config
                .resolve_db(Some(raw))
                .map_err(|e| TransferError::Input(format!("transfer {name:?}: {what}: {e}")))
        };
        let source = url(
            spec.source
                .as_deref()
                .ok_or_else(|| missing("source", "--source URL"))?,
            "source",
        )?;
        let dest = url(
            spec.dest
                .as_deref()
                .ok_or_else(|| missing("destination", "--dest URL"))?,
            "destination",
        )?;
        let from = match (spec.source_table, spec.source_query) {
            (Some(_), Some(_)) => {
                return Err(TransferError::Input(format!(
                    "transfer {name:?} gives both a source table and a source query: keep one"
                )))
            }
            (Some(t), None) => SourceSpec::Table(t),
            (None, Some(q)) if q.trim().is_empty() => {
                return Err(TransferError::Input(format!(
                    "transfer {name:?}: the source query is empty"
                )))
            }
            (None, Some(q)) => SourceSpec::Query(q),
            (None, None) => {
                return Err(missing(
                    "source table or query",
                    "--source-table T or --source-query SQL",
                ))
            }
        };
        let dest_table = match (spec.dest_table, &from) {
            (Some(t), _) => t,
            // The same name on both sides is the common case.
            (None, SourceSpec::Table(t)) => t.clone(),
            (None, SourceSpec::Query(_)) => return Err(missing("destination table", "--dest-table T")),
        };
        let batch_size = spec.batch_size.unwrap_or(DEFAULT_BATCH);
        if batch_size == 0 || batch_size > 1_000_000 {
            return Err(TransferError::Input(format!(
                "transfer {name:?}: batch size {batch_size} is out of range: use 1 to 1000000"
            )));
        }
        if spec.commit_every == Some(0) {
            return Err(TransferError::Input(format!(
                "transfer {name:?}: --commit-every 0 makes no sense: give a number of rows, or leave it out for one transaction"
            )));
        }
        if name.is_empty() || name.len() > 200 {
            return Err(TransferError::Input(
                "a transfer name must have 1 to 200 characters".into(),
            ));
        }
        Ok(Transfer {
            name: name.to_string(),
            source,
            from,
            dest,
            dest_table,
            key: spec.key.unwrap_or_default(),
            map: spec.map.unwrap_or_default().into_iter().collect(),
            batch_size,
            mode: spec.mode.unwrap_or(WriteMode::Insert),
            commit_every: spec.commit_every,
            on_error: spec.on_error.unwrap_or(OnError::Rollback),
            lock_timeout: spec.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
        })
    }
}

/// Parses `--map DEST=EXPR,DEST=EXPR`: commas inside parentheses or quotes belong to
/// the expression (`Name=coalesce(a, b)`).
pub fn parse_map(input: &str) -> Result<BTreeMap<String, String>, TransferError> {
    let mut out = BTreeMap::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in input.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((dest, expr)) = part.split_once('=') else {
            return Err(TransferError::Input(format!(
                "--map {part:?} has no '=': write DEST=EXPR (a source column, a constant like 'web', or an SQL expression)"
            )));
        };
        let (dest, expr) = (dest.trim(), expr.trim());
        if dest.is_empty() || expr.is_empty() {
            return Err(TransferError::Input(format!(
                "--map {part:?}: both the destination column and the expression are needed (DEST=EXPR)"
            )));
        }
        if out.insert(dest.to_string(), expr.to_string()).is_some() {
            return Err(TransferError::Input(format!("--map names column {dest:?} twice")));
        }
    }
    Ok(out)
}
