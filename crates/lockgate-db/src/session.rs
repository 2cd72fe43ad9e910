//! The session settings the writer relies on, per engine, and putting them back
//! after SQL a user wrote (a migration's `.sql` script) changed them.
//!
//! Lockgate's checks and the engines' own refusals assume a session as Lockgate set it
//! up: MariaDB in a strict `sql_mode` with UTC and utf8mb4 and its foreign key and
//! CHECK checks on; PostgreSQL with its search path, time zone, encoding and
//! `session_replication_role` (which turns foreign keys off when `replica`); SQLite
//! with its foreign keys on and CHECK constraints honoured. A script may change any of
//! these, and not only with a `SET` a scan could see (a function, a procedure,
//! `set_config()`), so the settings are read before a script and, after it, every one
//! it changed is set back and read again: a setting that cannot be put back is an
//! error, and the version fails rather than write under it.

use crate::conn::Conn;
use crate::error::DbError;
use crate::ledger::text;
use crate::url::Engine;
use lockgate_core::Value;

/// The watched settings, with their values: what [`read`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings(pub Vec<(String, String)>);

/// PostgreSQL's: how names resolve, how text values are read (COPY's text format,
/// literals in defaults), and whether foreign keys fire.
const POSTGRES: &[&str] = &[
    "search_path",
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "client_encoding",
    "standard_conforming_strings",
    "session_replication_role",
    "bytea_output",
    "extra_float_digits",
    "role",
    "session_authorization",
];

/// MariaDB's (and MySQL's): strictness, time zone, character sets, the checks that
/// can be switched off, and the limits that would cut what Lockgate reads back
/// (`sql_select_limit`, `max_join_size`). A name the server does not know is not
/// read (MySQL has no `check_constraint_checks`).
const MYSQL: &[&str] = &[
    "sql_mode",
    "time_zone",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
    "foreign_key_checks",
    "unique_checks",
    "sql_select_limit",
    "max_join_size",
    "check_constraint_checks",
];

/// SQLite's pragmas that change what a write is allowed to do.
const SQLITE: &[&str] = &[
    "foreign_keys",
    "ignore_check_constraints",
    "defer_foreign_keys",
    "recursive_triggers",
    "query_only",
];

/// Reads the watched settings of the session.
pub async fn read(conn: &mut Conn) -> Result<Settings, DbError> {
    let mut out = Vec::new();
    match conn.engine() {
        Engine::Postgres => {
            let list = POSTGRES
                .iter()
                .map(|n| format!("current_setting('{n}')"))
                .collect::<Vec<_>>();
            let rows = conn.query(&format!("SELECT {}", list.join(", ")), &[], None).await?;
            if let Some(row) = rows.first() {
                for (n, v) in POSTGRES.iter().zip(row) {
                    out.push((n.to_string(), text(v).unwrap_or_default()));
                }
            }
        }
        Engine::Mysql => {
            // One row of `@@SESSION` values: a listing (SHOW VARIABLES) is itself cut
            // by a script's `sql_select_limit`. A server without the last, MariaDB-only
            // name refuses the whole row: it is then read without it.
            let mut names = MYSQL;
            let rows = loop {
                let list = names.iter().map(|n| format!("@@SESSION.{n}")).collect::<Vec<_>>();
                match conn.query(&format!("SELECT {}", list.join(", ")), &[], None).await {
                    Ok(rows) => break rows,
                    Err(_) if names.len() == MYSQL.len() => names = &MYSQL[..MYSQL.len() - 1],
                    Err(e) => return Err(e),
                }
            };
            if let Some(row) = rows.first() {
                for (n, v) in names.iter().zip(row) {
                    out.push((n.to_string(), text(v).unwrap_or_default()));
                }
            }
        }
        Engine::Sqlite => {
            for n in SQLITE {
                let rows = conn.query(&format!("PRAGMA {n}"), &[], None).await?;
                let v = rows.first().and_then(|r| r.first()).map(|v| v.to_string());
                out.push((n.to_string(), v.unwrap_or_default()));
            }
        }
    }
    Ok(Settings(out))
}

/// Puts back every setting that differs from `want`, then reads them again; returns
/// the names of those it put back. A setting still different is an error naming it,
/// with `after` (what ran) in its message.
pub async fn restore(conn: &mut Conn, want: &Settings, after: &str) -> Result<Vec<String>, DbError> {
    let now = read(conn).await?;
    let changed: Vec<&(String, String)> = want.0.iter().filter(|w| !now.0.contains(w)).collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let engine = conn.engine();
    for (name, value) in &changed {
        // Names come from the lists above; values are bound, except SQLite's
        // pragmas, which take no parameters, and MariaDB's numbers: their values are
        // the integers read.
        match engine {
            Engine::Postgres => {
                conn.query(
                    "SELECT set_config($1, $2, false)",
                    &[Value::Text(name.clone()), Value::Text(value.clone())],
                    None,
                )
                .await?;
            }
            // A number is written as one (MariaDB refuses a string for a numeric
            // variable); it was read as digits, so it cannot carry anything else.
            Engine::Mysql if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                conn.batch(&format!("SET SESSION {name} = {value}")).await?;
            }
            Engine::Mysql => {
                conn.execute(&format!("SET SESSION {name} = ?"), &[Value::Text(value.clone())])
                    .await?;
            }
            Engine::Sqlite => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| DbError::Invalid(format!("pragma {name} read as {value:?}, not a number")))?;
                conn.batch(&format!("PRAGMA {name} = {n}")).await?;
            }
        }
    }
    let again = read(conn).await?;
    if let Some((name, value)) = want.0.iter().find(|w| !again.0.contains(w)) {
        let found = again
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        return Err(DbError::Invalid(format!(
            "{after} changed the session setting {name} (from {value:?} to {found:?}) and it could not be put back: remove the change from the script"
        )));
    }
    Ok(changed.into_iter().map(|(n, _)| n.clone()).collect())
}
