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
];

/// MariaDB's (and MySQL's): strictness, time zone, character sets, and the checks
/// that can be switched off. A name the server does not know is not read.
const MYSQL: &[&str] = &[
    "sql_mode",
    "time_zone",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
    "foreign_key_checks",
    "unique_checks",
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
            let names = MYSQL.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>();
            let rows = conn
                .query(
                    &format!("SHOW SESSION VARIABLES WHERE Variable_name IN ({})", names.join(", ")),
                    &[],
                    None,
                )
                .await?;
            for n in MYSQL {
                if let Some(r) = rows.iter().find(|r| text(&r[0]).as_deref() == Some(n)) {
                    out.push((n.to_string(), text(&r[1]).unwrap_or_default()));
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
        // pragmas, which take no parameters: their values are the integers read.
        match engine {
            Engine::Postgres => {
                conn.query(
                    "SELECT set_config($1, $2, false)",
                    &[Value::Text(name.clone()), Value::Text(value.clone())],
                    None,
                )
                .await?;
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
