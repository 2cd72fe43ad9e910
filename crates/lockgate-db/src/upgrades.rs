//! The SQL of background data upgrades (issue 14): the ledger's records of each
//! declared upgrade (state, cursor, progress) and of the rows it quarantined, the
//! `applied_upgrades` column that says which upgrades a row has, and the batch that
//! applies a `set` upgrade to one key range in one set-based UPDATE.
//!
//! `applied_upgrades` is a nullable text column holding a JSON array of upgrade
//! names, `["a","b"]` (NULL: none). It is text on every engine, not a JSON type, so
//! that appending a name and testing for one are the same plain string functions
//! everywhere and need no JSON support in the server. A name is tested for as its
//! quoted form `"name"`: names are restricted to `[A-Za-z0-9_.-]`, so the quoted
//! form of one never occurs inside another's.
//!
//! Every statement here quotes identifiers with the connection's dialect and binds
//! values; the upgrade's own SQL (its `set` expressions and its condition) runs as
//! written, as the user's SQL, after [`check_expression`] has had the engine compile it.
//!
//! A batch is atomic per row without a transaction of its own: one UPDATE computes
//! each row's new values from the row as it is when the UPDATE reaches it (after
//! waiting for a concurrent writer's lock on it), so an application's write of the
//! same row lands either before (and is read) or after (and stays): none is lost.

use crate::browse::{decode_value, encode_value};
use crate::conn::Conn;
use crate::error::DbError;
use crate::ledger::{int, now, text};
use crate::mysql_server::Flavor;
use crate::read::Keyset;
use crate::url::Engine;
use lockgate_core::{Kind, Table, TableName, Value};

/// The column that lists the upgrades applied to a row.
pub const APPLIED_COLUMN: &str = "applied_upgrades";

/// The state of an upgrade, as `lockgate_upgrades.state` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeState {
    /// Declared; no runner has started it.
    Pending,
    /// A runner is applying it (or was, and will resume from its cursor).
    Running,
    /// Stopped by `pause`; `resume` makes it running again.
    Paused,
    /// Stopped for good by `cancel`.
    Cancelled,
    /// Every row in its scope has it.
    Complete,
}

impl UpgradeState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeState::Pending => "pending",
            UpgradeState::Running => "running",
            UpgradeState::Paused => "paused",
            UpgradeState::Cancelled => "cancelled",
            UpgradeState::Complete => "complete",
        }
    }

    /// The state a stored spelling names.
    pub fn parse(s: &str) -> Option<UpgradeState> {
        Some(match s {
            "pending" => UpgradeState::Pending,
            "running" => UpgradeState::Running,
            "paused" => UpgradeState::Paused,
            "cancelled" => UpgradeState::Cancelled,
            "complete" => UpgradeState::Complete,
            _ => return None,
        })
    }
}

impl std::fmt::Display for UpgradeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `lockgate_upgrades`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UpgradeRecord {
    /// The upgrade's name.
    pub name: String,
    /// The table it upgrades, as it was registered.
    pub table: String,
    /// The checksum of its definition when it was registered.
    pub checksum: String,
    /// Its state.
    pub state: UpgradeState,
    /// The key of the last row its walk has done (`None`: the walk starts at the
    /// table's first row).
    #[serde(skip)]
    pub cursor: Option<Vec<Value>>,
    /// Rows it has upgraded so far.
    pub rows_done: i64,
    /// Rows in its scope, when counted.
    pub rows_total: Option<i64>,
    /// Rows per second of its last run (over that run's batches so far).
    pub rate: Option<f64>,
    /// When it was registered.
    pub started_at: String,
    /// When its record last changed.
    pub updated_at: String,
}

/// One row of `lockgate_upgrade_quarantine`: a row an upgrade failed on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quarantined {
    /// The row's primary key values, in key order.
    #[serde(skip)]
    pub key: Vec<Value>,
    /// The key for people: its values, comma-separated ([`key_display`]).
    #[serde(rename = "key")]
    pub key_text: String,
    /// The last error.
    pub error: String,
    /// How many times the row failed.
    pub attempts: i64,
    /// When it last failed.
    pub at: String,
}

/// What [`apply_set_batch`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct SetBatch {
    /// Rows the UPDATE changed (in scope and lacking the upgrade).
    pub updated: u64,
    /// Rows of the key range (whether in scope or not).
    pub scanned: u64,
    /// The key of the range's last row, where the next batch starts after; `None`
    /// when the range reached the end of the table (that last range is open-ended:
    /// rows inserted past the end while the batch ran are in it too).
    pub last: Option<Vec<Value>>,
}

/// Checks an upgrade's name: 1 to 255 characters of `[A-Za-z0-9_.-]`, which is what
/// makes the quoted name a safe substring test on `applied_upgrades`.
pub fn check_name(name: &str) -> Result<(), DbError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(DbError::Invalid(format!(
            "upgrade name {name:?} is not allowed: use 1 to 255 letters, digits, '_', '.' or '-'"
        )))
    }
}

/// The cursor as stored: a JSON array of typed values (browse's cursor encoding,
/// so an integer key reads back as an integer and a date as a date).
fn encode_key(key: &[Value]) -> String {
    serde_json::Value::Array(key.iter().map(encode_value).collect()).to_string()
}

fn decode_key(stored: &str, what: &str) -> Result<Vec<Value>, DbError> {
    let bad = |why: String| {
        DbError::Invalid(format!(
            "{what} holds {stored:?}, which is not a key ({why}): correct or delete that ledger row"
        ))
    };
    let json: serde_json::Value = serde_json::from_str(stored).map_err(|e| bad(e.to_string()))?;
    json.as_array()
        .ok_or_else(|| bad("not a JSON array".into()))?
        .iter()
        .map(|v| decode_value(v).map_err(bad))
        .collect()
}

/// The select list of a `lockgate_upgrades` read, in [`record`]'s order.
fn record_columns(conn: &Conn) -> String {
    let d = conn.dialect();
    format!(
        "name, table_name, checksum, state, {}, rows_done, rows_total, started_at, updated_at, rate",
        d.quote("cursor")
    )
}

fn record(row: &[Value]) -> Result<UpgradeRecord, DbError> {
    let name = text(&row[0]).unwrap_or_default();
    let state_text = text(&row[3]).unwrap_or_default();
    let state = UpgradeState::parse(&state_text).ok_or_else(|| {
        DbError::Invalid(format!(
            "lockgate_upgrades row {name:?} has the unknown state {state_text:?}: set it to pending, running, \
             paused, cancelled or complete"
        ))
    })?;
    let cursor = match text(&row[4]) {
        Some(c) => Some(decode_key(
            &c,
            &format!("the cursor of lockgate_upgrades row {name:?}"),
        )?),
        None => None,
    };
    Ok(UpgradeRecord {
        table: text(&row[1]).unwrap_or_default(),
        checksum: text(&row[2]).unwrap_or_default(),
        state,
        cursor,
        rows_done: int(&row[5]).unwrap_or(0),
        rows_total: int(&row[6]),
        started_at: text(&row[7]).unwrap_or_default(),
        updated_at: text(&row[8]).unwrap_or_default(),
        rate: match &row[9] {
            Value::Float(f) => Some(*f),
            v => int(v).map(|i| i as f64),
        },
        name,
    })
}

/// Records the upgrade `name` of `table` with the checksum of its definition, as
/// `pending`, unless it is there already; returns its record. One already there
/// with another checksum, or for another table, is [`DbError::Invalid`]: its
/// definition changed after the upgrade started.
pub async fn register(conn: &mut Conn, name: &str, table: &str, checksum: &str) -> Result<UpgradeRecord, DbError> {
    check_name(name)?;
    let d = conn.dialect();
    let p: Vec<String> = (1..=6).map(|i| d.param(i)).collect();
    // Two runners registering at once: the second insert does nothing, and both
    // compare against the one row that won.
    let conflict = match conn.engine() {
        Engine::Mysql => " ON DUPLICATE KEY UPDATE name = name",
        _ => " ON CONFLICT (name) DO NOTHING",
    };
    let at = now();
    conn.execute(
        &format!(
            "INSERT INTO lockgate_upgrades (name, table_name, checksum, state, rows_done, started_at, updated_at) \
             VALUES ({}, {}, {}, {}, 0, {}, {}){conflict}",
            p[0], p[1], p[2], p[3], p[4], p[5]
        ),
        &[
            Value::Text(name.into()),
            Value::Text(table.into()),
            Value::Text(checksum.into()),
            Value::Text(UpgradeState::Pending.as_str().into()),
            at.clone(),
            at,
        ],
    )
    .await?;
    let found = state(conn, name)
        .await?
        .ok_or_else(|| DbError::Internal(format!("upgrade {name} was registered and is not in lockgate_upgrades")))?;
    if found.checksum != checksum || found.table != table {
        return Err(DbError::Invalid(format!(
            "upgrade {name}: definition changed after the upgrade started (the ledger has it on table {} with \
             checksum {}, now it is on table {table} with checksum {checksum}): restore its definition, or \
             declare the change as a new upgrade under another name",
            found.table, found.checksum
        )));
    }
    Ok(found)
}

/// The record of the upgrade `name`, or `None`.
pub async fn state(conn: &mut Conn, name: &str) -> Result<Option<UpgradeRecord>, DbError> {
    let sql = format!(
        "SELECT {} FROM lockgate_upgrades WHERE name = {}",
        record_columns(conn),
        conn.dialect().param(1)
    );
    let rows = conn.query(&sql, &[Value::Text(name.into())], None).await?;
    rows.first().map(|r| record(r)).transpose()
}

/// Every upgrade's record, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<UpgradeRecord>, DbError> {
    let sql = format!("SELECT {} FROM lockgate_upgrades ORDER BY name", record_columns(conn));
    conn.query(&sql, &[], None).await?.iter().map(|r| record(r)).collect()
}

/// An UPDATE of one upgrade's record that must find it.
async fn update_record(conn: &mut Conn, name: &str, sets: &str, mut params: Vec<Value>) -> Result<(), DbError> {
    let d = conn.dialect();
    params.push(now());
    let at = d.param(params.len());
    params.push(Value::Text(name.into()));
    let key = d.param(params.len());
    let n = conn
        .execute(
            &format!("UPDATE lockgate_upgrades SET {sets}, updated_at = {at} WHERE name = {key}"),
            &params,
        )
        .await?;
    if n == 0 {
        return Err(DbError::Invalid(format!(
            "upgrade {name} is not in lockgate_upgrades: register it (run it once) first"
        )));
    }
    Ok(())
}

/// Sets the upgrade's state (pause, resume, cancel, complete).
pub async fn set_state(conn: &mut Conn, name: &str, state: UpgradeState) -> Result<(), DbError> {
    let sets = format!("state = {}", conn.dialect().param(1));
    update_record(conn, name, &sets, vec![Value::Text(state.as_str().into())]).await
}

/// Sets the upgrade's state only when it is one of `from` (a compare-and-set, so that
/// a pause landing between a runner's read and its write is not overwritten);
/// whether it changed it.
pub async fn set_state_from(
    conn: &mut Conn,
    name: &str,
    to: UpgradeState,
    from: &[UpgradeState],
) -> Result<bool, DbError> {
    let d = conn.dialect();
    let mut params = vec![Value::Text(to.as_str().into()), now(), Value::Text(name.into())];
    let marks: Vec<String> = from
        .iter()
        .map(|s| {
            params.push(Value::Text(s.as_str().into()));
            d.param(params.len())
        })
        .collect();
    let sql = format!(
        "UPDATE lockgate_upgrades SET state = {}, updated_at = {} WHERE name = {} AND state IN ({})",
        d.param(1),
        d.param(2),
        d.param(3),
        marks.join(", ")
    );
    Ok(conn.execute(&sql, &params).await? > 0)
}

/// Records the walk's progress: the key of the last row done (an empty `cursor`:
/// none, the next walk starts at the table's first row) and `rows_done_delta` more
/// rows done, in one statement.
pub async fn save_cursor(conn: &mut Conn, name: &str, cursor: &[Value], rows_done_delta: u64) -> Result<(), DbError> {
    let d = conn.dialect();
    let stored = if cursor.is_empty() {
        Value::Null
    } else {
        Value::Text(encode_key(cursor))
    };
    let delta = i64::try_from(rows_done_delta).unwrap_or(i64::MAX);
    let sets = format!(
        "{} = {}, rows_done = rows_done + {}",
        d.quote("cursor"),
        d.param(1),
        d.param(2)
    );
    update_record(conn, name, &sets, vec![stored, Value::Int(delta)]).await
}

/// Records how many rows the upgrade's scope holds (for status and ETA).
pub async fn set_total(conn: &mut Conn, name: &str, rows_total: Option<u64>) -> Result<(), DbError> {
    let sets = format!("rows_total = {}", conn.dialect().param(1));
    let total = rows_total.map_or(Value::Null, |n| Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
    update_record(conn, name, &sets, vec![total]).await
}

/// Records the rate of the running walk, in rows per second.
pub async fn set_rate(conn: &mut Conn, name: &str, rate: f64) -> Result<(), DbError> {
    let sets = format!("rate = {}", conn.dialect().param(1));
    update_record(conn, name, &sets, vec![Value::Float(rate)]).await
}

/// Quarantines the row with primary key `key` for the upgrade `name` with its
/// error; a row already quarantined counts one more attempt and keeps the new error.
pub async fn quarantine(conn: &mut Conn, name: &str, key: &[Value], error: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    let p: Vec<String> = (1..=4).map(|i| d.param(i)).collect();
    let (upgrade, at) = (d.quote("upgrade"), d.quote("at"));
    let upsert = match conn.engine() {
        Engine::Mysql => {
            format!("ON DUPLICATE KEY UPDATE attempts = attempts + 1, error = VALUES(error), {at} = VALUES({at})")
        }
        _ => format!(
            "ON CONFLICT ({upgrade}, row_key) DO UPDATE SET attempts = lockgate_upgrade_quarantine.attempts + 1, \
             error = excluded.error, {at} = excluded.{at}"
        ),
    };
    conn.execute(
        &format!(
            "INSERT INTO lockgate_upgrade_quarantine ({upgrade}, row_key, error, attempts, {at}) \
             VALUES ({}, {}, {}, 1, {}) {upsert}",
            p[0], p[1], p[2], p[3]
        ),
        &[
            Value::Text(name.into()),
            Value::Text(encode_key(key)),
            Value::Text(error.into()),
            now(),
        ],
    )
    .await?;
    Ok(())
}

/// A key as people read it: its values, comma-separated (`42`, `7, 2024-01-01`).
pub fn key_display(key: &[Value]) -> String {
    key.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

/// How many rows the upgrade `name` has quarantined.
pub async fn quarantine_count(conn: &mut Conn, name: &str) -> Result<u64, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT COUNT(*) FROM lockgate_upgrade_quarantine WHERE {} = {}",
        d.quote("upgrade"),
        d.param(1)
    );
    let rows = conn.query(&sql, &[Value::Text(name.into())], None).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0).max(0) as u64)
}

/// The first `limit` rows the upgrade `name` quarantined, by key (for a page).
pub async fn quarantined_first(conn: &mut Conn, name: &str, limit: usize) -> Result<Vec<Quarantined>, DbError> {
    read_quarantine(conn, name, Some(limit)).await
}

/// The rows the upgrade `name` quarantined, by key.
pub async fn quarantined(conn: &mut Conn, name: &str) -> Result<Vec<Quarantined>, DbError> {
    read_quarantine(conn, name, None).await
}

async fn read_quarantine(conn: &mut Conn, name: &str, limit: Option<usize>) -> Result<Vec<Quarantined>, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT row_key, error, attempts, {} FROM lockgate_upgrade_quarantine WHERE {} = {} ORDER BY row_key{}",
        d.quote("at"),
        d.quote("upgrade"),
        d.param(1),
        limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
    );
    let rows = conn.query(&sql, &[Value::Text(name.into())], None).await?;
    rows.iter()
        .map(|r| {
            let stored = text(&r[0]).unwrap_or_default();
            let mut q = Quarantined {
                key: decode_key(
                    &stored,
                    &format!("a row_key of upgrade {name} in lockgate_upgrade_quarantine"),
                )?,
                key_text: String::new(),
                error: text(&r[1]).unwrap_or_default(),
                attempts: int(&r[2]).unwrap_or(0),
                at: text(&r[3]).unwrap_or_default(),
            };
            q.key_text = key_display(&q.key);
            Ok(q)
        })
        .collect()
}

/// Takes the row with key `key` out of the upgrade's quarantine (a retry upgraded it,
/// or it is gone); whether it was there.
pub async fn release(conn: &mut Conn, name: &str, key: &[Value]) -> Result<bool, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "DELETE FROM lockgate_upgrade_quarantine WHERE {} = {} AND row_key = {}",
        d.quote("upgrade"),
        d.param(1),
        d.param(2)
    );
    Ok(conn
        .execute(&sql, &[Value::Text(name.into()), Value::Text(encode_key(key))])
        .await?
        > 0)
}

/// Forgets the rows the upgrade `name` quarantined (before a retry); returns how many.
pub async fn clear_quarantine(conn: &mut Conn, name: &str) -> Result<u64, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "DELETE FROM lockgate_upgrade_quarantine WHERE {} = {}",
        d.quote("upgrade"),
        d.param(1)
    );
    conn.execute(&sql, &[Value::Text(name.into())]).await
}

/// Whether `table` (as the database has it now) has the `applied_upgrades` column.
pub async fn has_applied_column(conn: &mut Conn, table: &Table) -> Result<bool, DbError> {
    let now = conn
        .describe(&table.name)
        .await?
        .ok_or_else(|| DbError::Invalid(format!("table {} does not exist in this database", table.name)))?;
    Ok(now.columns.iter().any(|c| c.name == APPLIED_COLUMN))
}

/// Adds the `applied_upgrades` column to `table` where it is missing, without
/// rewriting the table: a nullable column without a default is a catalog change on
/// PostgreSQL and SQLite, and MariaDB / MySQL are asked for `ALGORITHM=INSTANT`
/// (falling back to their default algorithm where the server cannot do it so).
/// Returns whether it added the column.
pub async fn add_applied_column(conn: &mut Conn, table: &Table) -> Result<bool, DbError> {
    if has_applied_column(conn, table).await? {
        return Ok(false);
    }
    let d = conn.dialect();
    let add = format!(
        "ALTER TABLE {} ADD COLUMN {}",
        d.table(&table.name),
        d.quote(APPLIED_COLUMN)
    );
    let result = match conn.engine() {
        Engine::Postgres => conn.batch(&format!("{add} text")).await,
        Engine::Sqlite => conn.batch(&format!("{add} TEXT")).await,
        Engine::Mysql => {
            // Binary collation: names are compared byte for byte whatever the table's
            // default collation is.
            let add = format!("{add} longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL");
            // MariaDB 10.3 and MySQL 8.0.12 added instant ADD COLUMN; older servers
            // do not know the word.
            let instant = conn.mysql_server().is_some_and(|s| match s.flavor {
                Flavor::MariaDb => s.version >= (10, 3, 2),
                Flavor::MySql => s.version >= (8, 0, 12),
            });
            let first = if instant {
                conn.batch(&format!("{add}, ALGORITHM=INSTANT")).await
            } else {
                conn.batch(&add).await
            };
            match first {
                // 1845/1846: this server cannot add this column instantly (older
                // MariaDB, MySQL before 8.0.12, a table format that does not allow it).
                Err(e) if e.engine_error().is_some_and(|x| x.code == "1845" || x.code == "1846") => {
                    conn.batch(&add).await
                }
                other => other,
            }
        }
    };
    match result {
        Ok(()) => Ok(true),
        // Another process added it meanwhile.
        Err(e)
            if e.engine_error().is_some_and(|x| {
                x.code == "42701" || x.code == "1060" || x.message.contains("duplicate column name")
            }) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Has the engine compile `expr` as an expression over `table`'s rows (preparing
/// `SELECT (expr) FROM table WHERE 1 = 0`, which reads nothing): one that does not
/// compile (an unknown column, a function the engine lacks, a syntax error) is
/// [`DbError::Invalid`] naming the table and the expression. Conditions are checked
/// the same way. On PostgreSQL call it outside any transaction: a failed statement
/// would abort the transaction.
pub async fn check_expression(conn: &mut Conn, table: &Table, expr: &str) -> Result<(), DbError> {
    let sql = format!("SELECT ({expr}) FROM {} WHERE 1 = 0", conn.dialect().table(&table.name));
    match conn.query_columns(&sql).await {
        Ok(_) => Ok(()),
        Err(e) => match e.engine_error() {
            Some(x) if !x.connection_lost && !x.transient => Err(DbError::Invalid(format!(
                "the expression {expr:?} does not compile on table {}: {}: correct it",
                table.name, x.message
            ))),
            _ => Err(e),
        },
    }
}

/// The pieces of SQL that read and append to `applied_upgrades` for one upgrade.
struct Applied {
    engine: Engine,
    column: String,
    /// The upgrade's name as it appears in the array: `"name"`.
    quoted: String,
}

impl Applied {
    fn new(conn: &Conn, upgrade: &str) -> Result<Applied, DbError> {
        check_name(upgrade)?;
        Ok(Applied {
            engine: conn.engine(),
            column: conn.dialect().quote(APPLIED_COLUMN),
            quoted: serde_json::Value::String(upgrade.into()).to_string(),
        })
    }

    /// "The row lacks the upgrade": NULL, or a list without the quoted name. The
    /// test is an exact substring search (no LIKE pattern, whose case rules differ
    /// per engine), byte for byte on MariaDB whatever the column's collation.
    fn lacking(&self, params: &mut Vec<Value>) -> String {
        let d = crate::Dialect(self.engine);
        params.push(Value::Text(self.quoted.clone()));
        let p = d.param(params.len());
        let c = &self.column;
        let found = match self.engine {
            Engine::Postgres => format!("strpos({c}, {p}) > 0"),
            Engine::Sqlite => format!("instr({c}, {p}) > 0"),
            Engine::Mysql => format!("LOCATE(CAST({p} AS BINARY), {c}) > 0"),
        };
        format!("({c} IS NULL OR NOT ({found}))")
    }

    /// The list with the name appended: `["name"]` for an empty list, else the list
    /// without its closing bracket, then `,"name"]`.
    fn appended(&self, params: &mut Vec<Value>) -> String {
        let d = crate::Dialect(self.engine);
        let c = &self.column;
        params.push(Value::Text(format!("[{}]", self.quoted)));
        let alone = d.param(params.len());
        params.push(Value::Text(format!(",{}]", self.quoted)));
        let tail = d.param(params.len());
        let empty = format!("{c} IS NULL OR TRIM({c}) IN ('', '[]')");
        match self.engine {
            Engine::Mysql => format!(
                "CASE WHEN {empty} THEN {alone} ELSE CONCAT(SUBSTRING(RTRIM({c}), 1, CHAR_LENGTH(RTRIM({c})) - 1), {tail}) END"
            ),
            Engine::Postgres => format!(
                "CASE WHEN {empty} THEN CAST({alone} AS text) \
                 ELSE SUBSTR(RTRIM({c}), 1, LENGTH(RTRIM({c})) - 1) || CAST({tail} AS text) END"
            ),
            Engine::Sqlite => format!(
                "CASE WHEN {empty} THEN {alone} ELSE SUBSTR(RTRIM({c}), 1, LENGTH(RTRIM({c})) - 1) || {tail} END"
            ),
        }
    }
}

/// The `column = (expression)` assignments of a `set` upgrade, each column found in
/// `table` (as it spells it); a column that is not there, is part of the primary key,
/// or is `applied_upgrades` is [`DbError::Invalid`].
fn set_assignments(
    d: crate::Dialect,
    table: &Table,
    upgrade: &str,
    set: &[(String, String)],
) -> Result<Vec<String>, DbError> {
    set.iter()
        .map(|(column, expr)| {
            let c = table.column(column).ok_or_else(|| {
                DbError::Invalid(format!(
                    "upgrade {upgrade}: column {column:?} is not in table {}",
                    table.name
                ))
            })?;
            if c.name == APPLIED_COLUMN || table.primary_key.contains(&c.name) {
                return Err(DbError::Invalid(format!(
                    "upgrade {upgrade}: column {} of table {} is {}: an upgrade cannot set it",
                    c.name,
                    table.name,
                    if c.name == APPLIED_COLUMN {
                        "the list of applied upgrades"
                    } else {
                        "part of the primary key"
                    }
                )));
            }
            Ok(format!("{} = ({expr})", d.quote(&c.name)))
        })
        .collect()
}

/// Applies the `set` upgrade `upgrade` to the next `limit` rows of `table` after the
/// key `after` (from the first row when `None`), in key order: reads those keys
/// (plus one, to know where the range ends), then runs ONE UPDATE over the key
/// range that sets each column of `set` to its expression, as written, and appends
/// the upgrade's name to `applied_upgrades`, for the rows of the range that are in
/// `condition` (all when `None`) and lack the upgrade. A row that has it already is
/// not touched, so a batch run twice changes nothing the second time. The key is the
/// table's primary key, in [`Keyset`]'s order.
pub async fn apply_set_batch(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    set: &[(String, String)],
    condition: Option<&str>,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<SetBatch, DbError> {
    let applied = Applied::new(conn, upgrade)?;
    let d = conn.dialect();
    if table.primary_key.is_empty() {
        return Err(DbError::Invalid(format!(
            "table {} has no primary key: upgrades walk a table by its primary key; add one",
            table.name
        )));
    }
    let assignments = set_assignments(conn.dialect(), table, upgrade, set)?;
    if table.column(APPLIED_COLUMN).is_none() {
        return Err(DbError::Invalid(format!(
            "table {} has no {APPLIED_COLUMN} column: run `lockgate upgrade init --table {}` first",
            table.name, table.name
        )));
    }
    let limit = limit.max(1);
    let keyset = Keyset::new(d, table, &table.primary_key, None)?;
    let target = d.table(&table.name);
    // The keys of the range, and the first key past it.
    let keys = keys_after(conn, table, &keyset, after, limit + 1).await?;
    if keys.is_empty() {
        return Ok(SetBatch {
            updated: 0,
            scanned: 0,
            last: None,
        });
    }
    let scanned = keys.len().min(limit);
    let next = keys.get(limit).cloned();
    let last = next.as_ref().map(|_| keys[scanned - 1].clone());

    // One UPDATE over the range: parameters in the order they appear in the text
    // (MariaDB's are positional).
    let mut params = Vec::new();
    let mut sets = assignments;
    sets.push(format!("{} = {}", applied.column, applied.appended(&mut params)));
    let mut conds = Vec::new();
    if let Some(prev) = after {
        conds.push(format!("({})", keyset.after(prev, &mut params)));
    }
    if let Some(next) = &next {
        conds.push(format!("({})", keyset.before(next, &mut params)));
    }
    if let Some(condition) = condition {
        conds.push(format!("({condition})"));
    }
    conds.push(applied.lacking(&mut params));
    let sql = format!("UPDATE {target} SET {} WHERE {}", sets.join(", "), conds.join(" AND "));
    let updated = conn.execute(&sql, &params).await?;
    Ok(SetBatch {
        updated,
        scanned: scanned as u64,
        last,
    })
}

/// How many rows of `table` in `condition` (all when `None`) lack the upgrade
/// `upgrade`: what is left to do, and what must be 0 before its cleanup runs.
pub async fn count_lacking(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    condition: Option<&str>,
) -> Result<u64, DbError> {
    let applied = Applied::new(conn, upgrade)?;
    let mut params = Vec::new();
    let mut conds = Vec::new();
    if let Some(condition) = condition {
        conds.push(format!("({condition})"));
    }
    conds.push(applied.lacking(&mut params));
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        conn.dialect().table(&table.name),
        conds.join(" AND ")
    );
    let rows = conn.query(&sql, &params, None).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0).max(0) as u64)
}

/// One column of an upgraded view: the column, and the `set` upgrades' expression
/// for it with the upgrade's name and scope.
pub struct ViewColumn {
    /// The column (as the table spells it).
    pub column: String,
    /// `(upgrade, expression, condition)` when an upgrade sets it.
    pub upgraded: Option<(String, String, Option<String>)>,
}

/// The select list of [`create_upgraded_view`] and [`read_upgraded`]: each column as
/// stored, or, where a `set` upgrade changes it, a `CASE` that evaluates the upgrade's
/// expression on rows in its scope that lack it.
fn upgraded_select(engine: Engine, columns: &[ViewColumn]) -> Result<Vec<String>, DbError> {
    let d = crate::Dialect(engine);
    let mut select = Vec::new();
    for c in columns {
        let q = d.quote(&c.column);
        match &c.upgraded {
            None => select.push(q),
            Some((name, expr, condition)) => {
                let has = has_upgrade(engine, name)?;
                // In scope only where the condition is true (not where it is NULL), as
                // the backfill's WHERE takes it.
                select.push(match condition {
                    Some(w) => format!("CASE WHEN {has} THEN {q} WHEN ({w}) THEN ({expr}) ELSE {q} END AS {q}"),
                    None => format!("CASE WHEN {has} THEN {q} ELSE ({expr}) END AS {q}"),
                });
            }
        }
    }
    Ok(select)
}

/// "The row has the upgrade `name`", with the name as a literal (a view takes no
/// parameters; [`check_name`] keeps names to `[A-Za-z0-9_.-]`): for views, and for a
/// dependent upgrade's batches, which take only rows that have its dependencies.
pub fn has_upgrade(engine: Engine, name: &str) -> Result<String, DbError> {
    check_name(name)?;
    let applied = crate::Dialect(engine).quote(APPLIED_COLUMN);
    let quoted = crate::schema::literal(engine, &Value::Text(serde_json::Value::String(name.into()).to_string()))?;
    let found = match engine {
        Engine::Postgres => format!("strpos({applied}, {quoted}) > 0"),
        Engine::Sqlite => format!("instr({applied}, {quoted}) > 0"),
        Engine::Mysql => format!("LOCATE(CAST({quoted} AS BINARY), {applied}) > 0"),
    };
    Ok(format!("({applied} IS NOT NULL AND {found})"))
}

/// The rows of `table` whose keys are `keys` (primary key values, in key order), as
/// [`create_upgraded_view`]'s view shows them (the table's columns, in order), each
/// with whether it is in each of `scopes` (SQL conditions, as written). Rows are
/// read 200 keys at a time; a key with no row is left out.
pub async fn read_upgraded(
    conn: &mut Conn,
    table: &Table,
    columns: &[ViewColumn],
    scopes: &[String],
    keys: &[Vec<Value>],
) -> Result<Vec<(Vec<Value>, Vec<bool>)>, DbError> {
    let d = conn.dialect();
    let engine = conn.engine();
    let mut select = upgraded_select(engine, columns)?;
    let mut kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    for (i, w) in scopes.iter().enumerate() {
        select.push(format!(
            "CASE WHEN ({w}) THEN 1 ELSE 0 END AS {}",
            d.quote(&format!("lockgate_scope_{i}"))
        ));
        kinds.push(Kind::Int {
            bytes: 8,
            unsigned: false,
        });
    }
    let n = table.columns.len();
    let key_cols: Vec<&lockgate_core::Column> = table
        .primary_key
        .iter()
        .map(|k| {
            table
                .column(k)
                .ok_or_else(|| DbError::Invalid(format!("key column {k:?} is not in table {}", table.name)))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for chunk in keys.chunks(200) {
        let mut params = Vec::new();
        let ors: Vec<String> = chunk
            .iter()
            .map(|key| {
                let ands: Vec<String> = key_cols
                    .iter()
                    .zip(key)
                    .map(|(c, v)| {
                        params.push(v.clone());
                        format!("{} = {}", d.quote(&c.name), d.param(params.len()))
                    })
                    .collect();
                format!("({})", ands.join(" AND "))
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            select.join(", "),
            d.table(&table.name),
            ors.join(" OR ")
        );
        for r in conn.query(&sql, &params, Some(&kinds)).await? {
            let scoped = r[n..].iter().map(|v| int(v) == Some(1)).collect();
            out.push((r[..n].to_vec(), scoped));
        }
    }
    Ok(out)
}

/// Creates (or replaces) the view `<table>_upgraded`: every row of `table` as if its
/// pending `set` upgrades were applied, each upgraded column a `CASE` on
/// `applied_upgrades` (the stored value where the row has the upgrade or is out of
/// its scope, the expression, as written, where it lacks it). The upgrade names go
/// into the view's text as literals (a view takes no parameters); [`check_name`]
/// keeps them to `[A-Za-z0-9_.-]`. Returns the view's name.
pub async fn create_upgraded_view(
    conn: &mut Conn,
    table: &Table,
    columns: &[ViewColumn],
) -> Result<TableName, DbError> {
    let d = conn.dialect();
    let engine = conn.engine();
    let select = upgraded_select(engine, columns)?;
    let view = TableName {
        schema: table.name.schema.clone(),
        name: format!("{}_upgraded", table.name.name),
    };
    let body = format!("SELECT {} FROM {}", select.join(", "), d.table(&table.name));
    match engine {
        Engine::Mysql => {
            conn.batch(&format!("CREATE OR REPLACE VIEW {} AS {body}", d.table(&view)))
                .await?
        }
        // PostgreSQL's OR REPLACE cannot change a column's type, SQLite has none.
        _ => {
            conn.batch(&format!("DROP VIEW IF EXISTS {}", d.table(&view))).await?;
            conn.batch(&format!("CREATE VIEW {} AS {body}", d.table(&view))).await?;
        }
    }
    Ok(view)
}

/// The key of the first row of `table` after `after` (the table's first row when
/// `None`), in the walk's order; `None` past the end. The walk uses it to name the
/// one row a failing batch of one holds.
pub async fn next_key(conn: &mut Conn, table: &Table, after: Option<&[Value]>) -> Result<Option<Vec<Value>>, DbError> {
    let keyset = Keyset::new(conn.dialect(), table, &table.primary_key, None)?;
    Ok(keys_after(conn, table, &keyset, after, 1).await?.pop())
}

/// The keys of the first `limit` rows of `table` after `after` (from the first row
/// when `None`), in `keyset`'s order.
async fn keys_after(
    conn: &mut Conn,
    table: &Table,
    keyset: &Keyset,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let (mut select, mut kinds) = (Vec::<String>::new(), Vec::<Kind>::new());
    let at = keyset.place(&mut select, &mut kinds);
    let mut params = Vec::new();
    let filter = match after {
        Some(last) => keyset.after(last, &mut params),
        None => "1 = 1".into(),
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {filter} ORDER BY {} LIMIT {limit}",
        select.join(", "),
        d.table(&table.name),
        keyset.order()
    );
    let rows = conn.query(&sql, &params, Some(&kinds)).await?;
    Ok(rows
        .iter()
        .map(|r| at.iter().map(|&i| r[i].clone()).collect())
        .collect())
}

/// Has the engine compile the assignment `column = (expr)` on `table` (preparing an
/// UPDATE that matches no row), which also checks that the expression's type can be
/// stored in the column; [`DbError::Invalid`] when it cannot.
pub async fn check_assignment(conn: &mut Conn, table: &Table, column: &str, expr: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    let sql = format!(
        "UPDATE {} SET {} = ({expr}) WHERE 1 = 0",
        d.table(&table.name),
        d.quote(column)
    );
    // Prepared, not run: it takes no lock. PostgreSQL checks the assignment's type
    // then; MariaDB and SQLite only the names (a type they cannot store is then
    // each row's error, and the run stops after 50 such rows in a row).
    match conn.query_columns(&sql).await.map(|_| ()) {
        Ok(()) => Ok(()),
        Err(e) => match e.engine_error() {
            Some(x) if !x.connection_lost && !x.transient => Err(DbError::Invalid(format!(
                "setting {column} of table {} to {expr:?} does not compile: {}: correct it",
                table.name, x.message
            ))),
            _ => Err(e),
        },
    }
}

/// Applies the `set` upgrade `upgrade` to the one row whose key is `key` (as the
/// walk's cursor holds keys), when it is in `condition` and lacks the upgrade;
/// returns whether it changed it. `lockgate upgrade retry` tries a quarantined row so.
pub async fn apply_set_key(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    set: &[(String, String)],
    condition: Option<&str>,
    key: &[Value],
) -> Result<bool, DbError> {
    let applied = Applied::new(conn, upgrade)?;
    let d = conn.dialect();
    let keyset = Keyset::new(d, table, &table.primary_key, None)?;
    let mut params = Vec::new();
    let mut sets = set_assignments(d, table, upgrade, set)?;
    sets.push(format!("{} = {}", applied.column, applied.appended(&mut params)));
    let mut conds = vec![format!("({})", keyset.equals(key, &mut params))];
    if let Some(condition) = condition {
        conds.push(format!("({condition})"));
    }
    conds.push(applied.lacking(&mut params));
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        d.table(&table.name),
        sets.join(", "),
        conds.join(" AND ")
    );
    Ok(conn.execute(&sql, &params).await? > 0)
}

/// A row read for a row-function upgrade (a script or a Rust closure): its key, its
/// values, and what [`write_row`]'s compare-and-set compares them by.
#[derive(Clone, Debug)]
pub struct ReadRow {
    /// The row's key, in the walk's order (the cursor's form).
    pub key: Vec<Value>,
    /// The row's values, in the table's column order, typed by the columns.
    pub values: Vec<Value>,
    /// Per column, the value as [`write_row`] compares it (see [`compare_expr`]).
    compare: Vec<Value>,
}

/// How a column is compared when a row is written back: its text on PostgreSQL (every
/// type has one, exact and canonical, while some have no `=`: json, point, xml); its
/// stored value on SQLite (read untyped, so a value written in another form compares
/// as what is stored); its bytes on MariaDB / MySQL, where `=` on text follows the
/// column's collation (`'Row' = 'row'` under a `_ci` one, trailing spaces ignored)
/// and a FLOAT read back as its shortest text never equals the column.
fn compare_expr(engine: Engine, column: &str, kind: &Kind) -> (String, Kind) {
    let q = crate::Dialect(engine).quote(column);
    match engine {
        Engine::Postgres => (
            format!("CAST({q} AS text)"),
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: lockgate_core::value::TextForm::Free,
            },
        ),
        Engine::Sqlite => (q, Kind::Any),
        Engine::Mysql => (
            // A FLOAT's text has 6 digits: as a double it has them all.
            match kind {
                Kind::Float { .. } => format!("CAST(CAST({q} AS DOUBLE) AS BINARY)"),
                _ => format!("CAST({q} AS BINARY)"),
            },
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
        ),
    }
}

/// The null-safe equality of a compared column and a parameter.
fn compare_eq(engine: Engine, expr: &str, param: &str) -> String {
    match engine {
        Engine::Postgres => format!("{expr} IS NOT DISTINCT FROM {param}"),
        Engine::Sqlite => format!("{expr} IS {param}"),
        Engine::Mysql => format!("{expr} <=> {param}"),
    }
}

/// Reads up to `limit` rows of `table` after the key `after` (from the first row when
/// `None`), in key order, that are in `condition` and lack the upgrade `upgrade`; and
/// whether rows may follow (the read was full).
pub async fn read_lacking(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    condition: Option<&str>,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<(Vec<ReadRow>, bool), DbError> {
    let limit = limit.max(1);
    let rows = read_rows(conn, table, upgrade, condition, After::Key(after), limit).await?;
    let more = rows.len() == limit;
    Ok((rows, more))
}

/// The row of `table` whose key is `key`, when it is still in `condition` and still
/// lacks the upgrade (a retry's re-read: `None` when it is gone, out of scope, or
/// upgraded since).
pub async fn read_lacking_key(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    condition: Option<&str>,
    key: &[Value],
) -> Result<Option<ReadRow>, DbError> {
    Ok(read_rows(conn, table, upgrade, condition, After::Exactly(key), 1)
        .await?
        .pop())
}

/// Which rows [`read_rows`] reads.
enum After<'a> {
    Key(Option<&'a [Value]>),
    Exactly(&'a [Value]),
}

async fn read_rows(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    condition: Option<&str>,
    which: After<'_>,
    limit: usize,
) -> Result<Vec<ReadRow>, DbError> {
    let applied = Applied::new(conn, upgrade)?;
    let d = conn.dialect();
    let engine = conn.engine();
    if table.primary_key.is_empty() {
        return Err(DbError::Invalid(format!(
            "table {} has no primary key: upgrades walk a table by its primary key; add one",
            table.name
        )));
    }
    let keyset = Keyset::new(d, table, &table.primary_key, None)?;
    let n = table.columns.len();
    let mut select: Vec<String> = table.columns.iter().map(|c| d.quote(&c.name)).collect();
    let mut kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    for (i, c) in table.columns.iter().enumerate() {
        let (expr, kind) = compare_expr(engine, &c.name, &c.kind);
        // Named apart: PostgreSQL names `CAST("id" AS text)` "id", which an ORDER BY
        // by the key would find twice.
        select.push(format!("{expr} AS {}", d.quote(&format!("lockgate_seen_{i}"))));
        kinds.push(kind);
    }
    let at = keyset.place(&mut select, &mut kinds);
    let mut params = Vec::new();
    let mut conds = Vec::new();
    match which {
        After::Key(Some(last)) => conds.push(format!("({})", keyset.after(last, &mut params))),
        After::Key(None) => {}
        After::Exactly(key) => conds.push(format!("({})", keyset.equals(key, &mut params))),
    }
    if let Some(condition) = condition {
        conds.push(format!("({condition})"));
    }
    conds.push(applied.lacking(&mut params));
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {limit}",
        select.join(", "),
        d.table(&table.name),
        conds.join(" AND "),
        keyset.order()
    );
    let rows = conn.query(&sql, &params, Some(&kinds)).await?;
    Ok(rows
        .into_iter()
        .map(|r| ReadRow {
            key: at.iter().map(|&i| r[i].clone()).collect(),
            values: r[..n].to_vec(),
            compare: r[n..2 * n].to_vec(),
        })
        .collect())
}

/// Writes a row-function upgrade's result: the columns whose value changed from `row`
/// to `new_values` (in the table's column order) and the upgrade's name appended to
/// `applied_upgrades`, in one UPDATE that finds the row only if every column still
/// holds what was read and it still lacks the upgrade (a compare-and-set). Returns
/// whether it wrote: `false` means an application changed the row meanwhile (its write
/// stays), and the caller reads it again and retries.
pub async fn write_row(
    conn: &mut Conn,
    table: &Table,
    upgrade: &str,
    row: &ReadRow,
    new_values: &[Value],
) -> Result<bool, DbError> {
    let applied = Applied::new(conn, upgrade)?;
    let d = conn.dialect();
    let engine = conn.engine();
    let keyset = Keyset::new(d, table, &table.primary_key, None)?;
    let mut params = Vec::new();
    let mut sets = Vec::new();
    for ((c, old), new) in table.columns.iter().zip(&row.values).zip(new_values) {
        if c.name == APPLIED_COLUMN || old == new {
            continue;
        }
        if table.primary_key.contains(&c.name) {
            return Err(DbError::Invalid(format!(
                "upgrade {upgrade}: column {} of table {} is part of the primary key: an upgrade cannot change it",
                c.name, table.name
            )));
        }
        params.push(new.clone());
        sets.push(format!("{} = {}", d.quote(&c.name), d.param(params.len())));
    }
    sets.push(format!("{} = {}", applied.column, applied.appended(&mut params)));
    let mut conds = vec![format!("({})", keyset.equals(&row.key, &mut params))];
    for (c, seen) in table.columns.iter().zip(&row.compare) {
        if c.name == APPLIED_COLUMN {
            continue;
        }
        let (expr, _) = compare_expr(engine, &c.name, &c.kind);
        params.push(seen.clone());
        conds.push(compare_eq(engine, &expr, &d.param(params.len())));
    }
    conds.push(applied.lacking(&mut params));
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        d.table(&table.name),
        sets.join(", "),
        conds.join(" AND ")
    );
    Ok(conn.execute(&sql, &params).await? > 0)
}

/// Signs that the database is under pressure, for a background upgrade to back off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pressure {
    /// Sessions waiting for a lock now.
    pub lock_waiters: u64,
    /// The largest replay lag of a replica, where the engine shows it on the primary
    /// (PostgreSQL); `None` where it does not (MariaDB / MySQL show lag only on the
    /// replica, SQLite has none).
    pub replication_lag: Option<std::time::Duration>,
}

/// Reads [`Pressure`] with one query (none on SQLite, whose writers queue for the
/// file instead). A server that refuses the query (privileges) is an engine error
/// the caller may take as "cannot tell".
pub async fn pressure(conn: &mut Conn) -> Result<Pressure, DbError> {
    let sql = match conn.engine() {
        Engine::Postgres => {
            "SELECT (SELECT count(*) FROM pg_locks WHERE NOT granted), \
             (SELECT CAST(COALESCE(max(EXTRACT(EPOCH FROM replay_lag)), 0) * 1000 AS bigint) FROM pg_stat_replication)"
        }
        Engine::Mysql => {
            // A status counter: readable without the PROCESS privilege that
            // INNODB_TRX needs to show other users' transactions. (MySQL 8 keeps it in
            // performance_schema only: there the query fails and the run stops asking.)
            "SELECT CAST(VARIABLE_VALUE AS SIGNED), NULL FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'INNODB_ROW_LOCK_CURRENT_WAITS'"
        }
        Engine::Sqlite => return Ok(Pressure::default()),
    };
    let rows = conn.query(sql, &[], None).await?;
    let row = rows.first();
    let cell = |i: usize| row.and_then(|r| r.get(i)).and_then(int);
    Ok(Pressure {
        lock_waiters: cell(0).unwrap_or(0).max(0) as u64,
        replication_lag: cell(1).map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
    })
}
