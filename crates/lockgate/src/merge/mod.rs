//! `lockgate merge`: merging rows of a table (the *sources*) into one (the
//! *target*): every row of every table that references a source is re-pointed at
//! the target, in one transaction, with conflicts in unique keys found first, a
//! preview equal to the effect, a history in the merged database and an undo.
//!
//! - [`refs`]: the references to a table, from its foreign keys (composite ones
//!   included) and from declared soft references, with the unique keys they are in;
//! - [`plan`]: validation, the steps (one per reference, each a map of old values to
//!   new ones), conflicts and their merging one level down, counts, the preview;
//! - [`run`]: the merge itself: table locks, the ledger run, retry with backoff,
//!   the timeout, before-images, the post-merge verification, the history;
//! - [`undo`]: reverting a completed merge from what its history recorded.
//!
//! Keys on the command line: sources are separated by commas, the parts of a
//! composite key by colons in primary-key order (`--from 1:5,1:6`); a backslash
//! escapes a comma, a colon or a backslash in a value.

pub mod def;
pub mod plan;
pub mod refs;
pub mod run;
pub mod undo;

use lockgate_db::writer::RetryPolicy;
use lockgate_db::DbError;
use serde::Serialize;
use std::time::Duration;

pub use def::{options, MergeOverrides, MergeSpec};
pub use plan::{Change, Conflict};
pub use refs::{references, Reference};
pub use run::{history, merge, show, MergeDetail, MergeSummary};
pub use undo::{undo, UndoOptions, UndoReport};

/// What happens to rows merged away: the sources (`--sources`) and, with
/// `--merge-conflicts`, the conflicting rows merged into their counterparts
/// (`--conflict-rows`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "set")]
pub enum RowAction {
    /// Left as they are (only what references them moves).
    Keep,
    /// Deleted (their whole rows are kept in the history, for undo).
    Delete,
    /// Columns set to the user's SQL expressions (`set:deleted=1,active=0`).
    Set(Vec<(String, String)>),
}

impl RowAction {
    /// `keep`, `delete` or `set`: what reports call it.
    pub fn name(&self) -> &'static str {
        match self {
            RowAction::Keep => "keep",
            RowAction::Delete => "delete",
            RowAction::Set(_) => "set",
        }
    }

    /// Parses `keep`, `delete` or `set:COL=EXPR,COL=EXPR`; commas inside quotes or
    /// parentheses belong to the expression.
    pub fn parse(input: &str) -> Result<RowAction, String> {
        let s = input.trim();
        match s {
            "keep" => return Ok(RowAction::Keep),
            "delete" => return Ok(RowAction::Delete),
            _ => {}
        }
        let Some(body) = s.strip_prefix("set:") else {
            return Err(format!(
                "{input:?} is not keep, delete or set:COL=EXPR,…: say what happens to the rows merged away"
            ));
        };
        let mut out = Vec::new();
        for part in split_top_level(body) {
            let Some((col, expr)) = part.split_once('=') else {
                return Err(format!("{part:?} in {input:?} is not COL=EXPR"));
            };
            let (col, expr) = (col.trim(), expr.trim());
            if col.is_empty() || expr.is_empty() {
                return Err(format!("{part:?} in {input:?} is not COL=EXPR"));
            }
            out.push((col.to_string(), expr.to_string()));
        }
        if out.is_empty() {
            return Err(format!("{input:?} sets no column: write set:COL=EXPR,…"));
        }
        Ok(RowAction::Set(out))
    }
}

/// Splits at commas outside quotes and parentheses.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote) = (0i32, None::<char>);
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"' | '`') => {
                quote = Some(ch);
                cur.push(ch);
            }
            (None, '(') => {
                depth += 1;
                cur.push(ch);
            }
            (None, ')') => {
                depth -= 1;
                cur.push(ch);
            }
            (None, ',') if depth == 0 => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Splits a key list as the command line writes it: keys separated by commas, the
/// parts of one key by colons, `\` escaping either (and itself).
pub fn parse_keys(input: &str) -> Vec<Vec<String>> {
    let mut keys = Vec::new();
    let mut key = Vec::new();
    let mut part = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => part.push(chars.next().unwrap_or('\\')),
            ':' => key.push(std::mem::take(&mut part)),
            ',' => {
                key.push(std::mem::take(&mut part));
                keys.push(std::mem::take(&mut key));
            }
            c => part.push(c),
        }
    }
    key.push(part);
    keys.push(key);
    keys.retain(|k: &Vec<String>| !(k.len() == 1 && k[0].trim().is_empty()));
    keys
}

/// What `--on-error` asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOnError {
    /// Roll back; retry transient errors (serialization failures, deadlocks, lock
    /// timeouts, lost connections) with backoff first.
    #[default]
    Rollback,
    /// Roll back at the first error, transient or not.
    Stop,
}

impl std::str::FromStr for MergeOnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rollback" => Ok(MergeOnError::Rollback),
            "stop" => Ok(MergeOnError::Stop),
            other => Err(format!("unknown error policy {other:?}: use rollback or stop")),
        }
    }
}

/// A merge to make (or preview).
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// The definition's name (`[merges.NAME]`), recorded in the history.
    pub name: Option<String>,
    /// The merged table.
    pub table: String,
    /// The sources' keys as written (`parse_keys`).
    pub sources: Vec<Vec<String>>,
    /// The target's key as written.
    pub target: Vec<String>,
    /// Only show what would change (and record the preview in the history).
    pub preview: bool,
    /// Merge conflicting rows into their counterparts instead of aborting.
    pub merge_conflicts: bool,
    /// What happens to the sources.
    pub sources_action: RowAction,
    /// What happens to conflicting rows merged into their counterparts.
    pub conflict_rows: RowAction,
    /// Referencing tables left alone (`--skip-table`).
    pub skip_tables: Vec<String>,
    /// Declared references (`jobs.byPuid -> customers.id`).
    pub references: Vec<String>,
    /// The soft-delete condition on the merged table (SQL as written): a source or
    /// target matching it is refused.
    pub deleted_when: Option<String>,
    /// The longest the merge may take, retries included.
    pub timeout: Duration,
    /// The error policy.
    pub on_error: MergeOnError,
    /// How long to wait for other Lockgate commands writing the tables.
    pub lock_timeout: Duration,
    /// How long one statement waits for a row lock held by someone else
    /// (PostgreSQL `lock_timeout`, MariaDB `innodb_lock_wait_timeout`); `None`
    /// keeps the server's setting.
    pub lock_wait: Option<Duration>,
    /// Transient-error retry.
    pub retry: RetryPolicy,
    /// How deep conflicts may nest (a conflicting row's own references conflicting…).
    pub max_depth: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            name: None,
            table: String::new(),
            sources: Vec::new(),
            target: Vec::new(),
            preview: false,
            merge_conflicts: false,
            sources_action: RowAction::Keep,
            conflict_rows: RowAction::Delete,
            skip_tables: Vec::new(),
            references: Vec::new(),
            deleted_when: None,
            timeout: Duration::from_secs(60),
            on_error: MergeOnError::Rollback,
            lock_timeout: Duration::from_secs(60),
            lock_wait: None,
            retry: RetryPolicy::default(),
            max_depth: 3,
        }
    }
}

/// How a merge ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStatus {
    /// Committed.
    Completed,
    /// Only previewed.
    Preview,
    /// Aborted: conflicts, and merging them was not asked for.
    AbortedConflicts,
    /// Failed and rolled back.
    Failed,
    /// Committed, and undone since.
    Undone,
    /// Still running, or its process went away before recording its end.
    Running,
    /// Its process went away before recording its end: nothing was kept.
    Abandoned,
}

impl MergeStatus {
    /// As stored in `lockgate_merges.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStatus::Completed => "completed",
            MergeStatus::Preview => "preview",
            MergeStatus::AbortedConflicts => "aborted_conflicts",
            MergeStatus::Failed => "failed",
            MergeStatus::Undone => "undone",
            MergeStatus::Running => "running",
            MergeStatus::Abandoned => "abandoned",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> MergeStatus {
        match s {
            "completed" => MergeStatus::Completed,
            "preview" => MergeStatus::Preview,
            "aborted_conflicts" => MergeStatus::AbortedConflicts,
            "undone" => MergeStatus::Undone,
            "running" => MergeStatus::Running,
            "abandoned" => MergeStatus::Abandoned,
            _ => MergeStatus::Failed,
        }
    }
}

/// Rows moved by one step (a reference of one table).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TableCount {
    /// The referencing table.
    pub table: String,
    /// Its referencing columns.
    pub columns: Vec<String>,
    /// Rows re-pointed.
    pub rows: u64,
    /// 0 for the sources' references, 1 for a conflicting row's, and so on.
    pub level: usize,
}

/// A row merged away, with what happened to it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ActionRow {
    /// Its table.
    pub table: String,
    /// Its key.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// `delete`, `set` or `keep`.
    pub action: String,
    /// 0 for a source, 1 for a conflicting row merged into its counterpart, …
    pub level: usize,
}

/// What a merge did or would do (the `--json` document of `lockgate merge`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MergeReport {
    /// The document's format version.
    pub version: u32,
    /// Its id in the history (`lockgate_merges`), when recorded.
    pub id: Option<i64>,
    /// Its run in `lockgate_runs`.
    pub run_id: Option<i64>,
    /// The merged table.
    pub table: String,
    /// The sources' keys.
    pub sources: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The target's key.
    pub target: serde_json::Map<String, serde_json::Value>,
    /// How it ended.
    pub status: MergeStatus,
    /// Rows re-pointed per table and reference.
    pub tables: Vec<TableCount>,
    /// All rows re-pointed.
    pub total_rows: u64,
    /// Conflicts found (merged into their counterparts with `--merge-conflicts`).
    pub conflicts: Vec<Conflict>,
    /// Whether there are more conflicts than listed (5,000 are read per unique key).
    pub conflicts_truncated: bool,
    /// Rows merged away and what happened to them.
    pub actions: Vec<ActionRow>,
    /// Whether conflicting rows are merged into their counterparts
    /// (`--merge-conflicts`); without it, conflicts abort the merge.
    pub conflicts_merged: bool,
    /// Attempts made (more than 1 after transient errors).
    pub attempts: u32,
    /// Wall time.
    pub seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// What the ledger could not record.
    pub warnings: Vec<String>,
}

impl MergeReport {
    /// ARCHITECTURE.md's exit code: 0 completed or previewed, 4 aborted on
    /// conflicts (or a preview of a merge that conflicts would abort), 1 failed.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            MergeStatus::Preview if !self.conflicts.is_empty() && !self.conflicts_merged => 4,
            MergeStatus::Completed | MergeStatus::Preview | MergeStatus::Undone => 0,
            MergeStatus::AbortedConflicts => 4,
            _ => 1,
        }
    }
}

/// Why a merge (or its undo) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Bad input found before anything was written (exit 2): each problem listed.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Rows changed since the merge (undo without `--overwrite`; exit 4).
    #[error("{0}")]
    Changed(String),
    /// `--timeout` passed (exit 1, nothing kept).
    #[error("{0}")]
    Timeout(String),
    /// A database error (exit 1, nothing kept).
    #[error(transparent)]
    Db(#[from] DbError),
}

impl MergeError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            MergeError::Invalid(_) => 2,
            MergeError::Changed(_) => 4,
            MergeError::Timeout(_) => 1,
            MergeError::Db(e) => e.exit_code(),
        }
    }

    pub(crate) fn one(message: impl Into<String>) -> MergeError {
        MergeError::Invalid(vec![message.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_commas_and_colons_with_escapes() {
        assert_eq!(parse_keys("1,2"), vec![vec!["1"], vec!["2"]]);
        assert_eq!(parse_keys("1:5,1:6"), vec![vec!["1", "5"], vec!["1", "6"]]);
        assert_eq!(parse_keys(r"a\,b:c\:d"), vec![vec!["a,b", "c:d"]]);
        assert_eq!(parse_keys(""), Vec::<Vec<String>>::new());
    }

    #[test]
    fn row_actions_parse_with_commas_in_expressions() {
        assert_eq!(RowAction::parse("delete").unwrap(), RowAction::Delete);
        assert_eq!(
            RowAction::parse("set:deleted=1,username=concat(username, '-a,b')").unwrap(),
            RowAction::Set(vec![
                ("deleted".into(), "1".into()),
                ("username".into(), "concat(username, '-a,b')".into())
            ])
        );
        assert!(RowAction::parse("set:").is_err());
        assert!(RowAction::parse("remove").is_err());
        assert!(RowAction::parse("set:x").is_err());
    }
}
