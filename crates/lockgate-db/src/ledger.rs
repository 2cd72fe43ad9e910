//! The ledger: Lockgate's own tables (prefix `lockgate_`) in a database, with their
//! own schema version and upgrade path, the runs table every job records itself in,
//! and the job lock.
//!
//! The ledger works on its own connection (the *side connection*), so that what it
//! writes (a run's start, its progress, its outcome) outlives a rollback of the
//! data transaction. SQLite has one writer per file, so there the caller writes the
//! run before its data transaction begins and after it ends, never during.
//!
//! A run that is under way holds a lock of its own on the ledger's connection
//! (PostgreSQL: a session advisory lock keyed by the run's id; MariaDB/MySQL: a
//! `GET_LOCK` named after it), so the server itself knows whether its process is
//! still there: a run still `running` whose lock nobody holds was abandoned (its
//! process died, or lost its connection, before recording its end). Reads show it
//! as `abandoned`, and the next run of the same job records it so. On SQLite the
//! holder's host and process id (in its holder text) tell: a run of this host whose
//! process is gone was abandoned.
//!
//! The job lock names its holder and dies with it: PostgreSQL's session advisory
//! lock and MariaDB's `GET_LOCK` are released by the server when the holder's
//! connection ends; on SQLite a `lockgate_locks` row names the holder's host and
//! process, and a waiter takes over a row whose process is gone (or whose heartbeat
//! is older than [`SQLITE_STALE`]). Its scope is the job (`migrate:./`), so different
//! jobs run at once; writing a table takes the table's lock ([`table_job`]), which
//! every command that writes it (`load`, `migrate`, `transfer run`) shares.

use crate::conn::Conn;
use crate::error::DbError;
use crate::url::{DbUrl, Engine};
use chrono::{DateTime, Utc};
use lockgate_core::{TableName, Value};
use std::time::{Duration, Instant};

/// The ledger schema version this build writes.
pub const SCHEMA_VERSION: i64 = 8;

/// The first key of the PostgreSQL advisory locks a run holds while it is under
/// way (the second is its id modulo 2^31). Two-key advisory locks never collide
/// with the job locks, which take one 64-bit key.
const RUN_LOCK_SPACE: i32 = 0x4C47_5255;

/// The lock that serializes ledger upgrades of one MariaDB / MySQL database. MySQL
/// refuses lock names over 64 characters (MariaDB does not), and a database name
/// may have 64: the name is cut to fit.
const SCHEMA_LOCK_GET: &str = "SELECT GET_LOCK(LEFT(CONCAT('lockgate-schema:', DATABASE()), 64), 60)";
const SCHEMA_LOCK_RELEASE: &str = "SELECT RELEASE_LOCK(LEFT(CONCAT('lockgate-schema:', DATABASE()), 64))";

/// A SQLite lock row whose heartbeat is older than this is taken over even when its
/// process cannot be checked (another host on a shared file system).
pub const SQLITE_STALE: Duration = Duration::from_secs(3600);

/// The lock scope of writing the table `name` of `schema` (its PostgreSQL schema,
/// its MariaDB database, its SQLite schema), shared by every command that writes it
/// (`load`, `migrate`, `transfer run` in a key mode), so that two of them never
/// interleave their writes into it: a key mode's update-or-insert reads the table
/// to decide, and another writer's uncommitted rows are not there to be read. Both
/// parts as the catalog resolves them, whatever database the connection names and
/// however the command spelled the table: see [`Ledger::table_job`].
pub fn table_job(schema: &str, name: &str) -> String {
    format!("table:{schema}.{name}")
}

/// The prefix of [`table_job`]: such a job names its database itself.
const TABLE_JOB: &str = "table:";

/// Who runs a job: shown to anyone who has to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// What runs, e.g. `lockgate load customers.csv`.
    pub what: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
}

impl Holder {
    /// This process, doing `what`.
    pub fn current(what: impl Into<String>) -> Holder {
        Holder {
            what: what.into(),
            host: hostname(),
            pid: std::process::id(),
        }
    }

    /// The holder as one text: what, process and host.
    pub fn describe(&self) -> String {
        format!("{} (pid {} on {})", self.what, self.pid, self.host)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this host is alive (signal 0 checks without signalling).
fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A run's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// In progress.
    Running,
    /// Finished and committed.
    Succeeded,
    /// Finished with row errors or an error; nothing kept (or, with skip, the good rows).
    Failed,
    /// Its process went away (killed, or its connection lost) without recording an
    /// end: what it did is whatever its transaction committed (for a load or an
    /// export, nothing, unless chunks were committed).
    Abandoned,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// One row of `lockgate_runs`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Run {
    /// Its id.
    pub id: i64,
    /// The kind of job: `load`, `migrate`, `transfer`…
    pub kind: String,
    /// The job it ran (`load:customers`, `migrate:./`, `transfer:NAME#ID`).
    pub job: String,
    /// `running`, `succeeded`, `failed` or `abandoned` (its process is gone and it
    /// never recorded an end).
    pub status: String,
    /// Who ran it.
    pub holder: String,
    /// When it started.
    pub started_at: String,
    /// Its last sign of life.
    pub heartbeat_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Rows (or units) done.
    pub progress_done: i64,
    /// Rows (or units) in all, when known.
    pub progress_total: Option<i64>,
    /// Its outcome as JSON text (the report).
    pub outcome: Option<String>,
    /// Its error, when it failed.
    pub error: Option<String>,
}

/// A held job lock; give it back with [`Ledger::unlock`]. If the process dies
/// instead, the server (or the next waiter, on SQLite) frees it.
#[derive(Debug)]
pub struct JobLock {
    job: String,
    token: i64,
}

/// The ledger of one database, on its own connection.
pub struct Ledger {
    conn: Conn,
    url: DbUrl,
}

/// Statements of each schema version, per engine. A new version appends here;
/// existing databases are upgraded in order.
fn migrations(engine: Engine) -> Vec<(i64, Vec<&'static str>)> {
    match engine {
        Engine::Postgres => vec![
            (
            1,
            vec![
                "CREATE TABLE IF NOT EXISTS lockgate_runs (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                 kind varchar(50) NOT NULL, job varchar(255) NOT NULL, status varchar(20) NOT NULL, holder varchar(512) NOT NULL, \
                 started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL, ended_at timestamptz, \
                 progress_done bigint NOT NULL DEFAULT 0, progress_total bigint, outcome text, error text)",
                "CREATE INDEX IF NOT EXISTS lockgate_runs_job ON lockgate_runs (job, id)",
                "CREATE TABLE IF NOT EXISTS lockgate_locks (job varchar(255) PRIMARY KEY, holder varchar(512) NOT NULL, \
                 host varchar(255) NOT NULL, pid bigint NOT NULL, token bigint NOT NULL, acquired_at timestamptz NOT NULL, \
                 heartbeat_at timestamptz NOT NULL)",
            ],
            ),
            (
                2,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_modules (module varchar(255) PRIMARY KEY, version varchar(50) NOT NULL, \
                     updated_at timestamptz NOT NULL)",
                    "CREATE TABLE IF NOT EXISTS lockgate_versions (module varchar(255) NOT NULL, version varchar(50) NOT NULL, \
                     status varchar(20) NOT NULL, checksum varchar(64) NOT NULL, parts_done bigint NOT NULL DEFAULT 0, \
                     scripts text, run_id bigint, applied_at timestamptz NOT NULL, PRIMARY KEY (module, version))",
                    "CREATE TABLE IF NOT EXISTS lockgate_migration_log (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                     run_id bigint, log_type varchar(10) NOT NULL, module varchar(255) NOT NULL, version varchar(50), \
                     table_name varchar(255), tenant varchar(255), file_path text, logged_at timestamptz NOT NULL, message text NOT NULL)",
                    "CREATE INDEX IF NOT EXISTS lockgate_migration_log_version ON lockgate_migration_log (module, version, id)",
                    "CREATE TABLE IF NOT EXISTS lockgate_row_images (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                     module varchar(255) NOT NULL, version varchar(50) NOT NULL, table_name varchar(255) NOT NULL, \
                     op varchar(1) NOT NULL, key_json text NOT NULL, before_json text, after_json text)",
                    "CREATE INDEX IF NOT EXISTS lockgate_row_images_version ON lockgate_row_images (module, version, id)",
                ],
            ),
            (
                3,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_exports (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                     transfer varchar(255) NOT NULL, status varchar(20) NOT NULL, rows_total bigint NOT NULL DEFAULT 0, \
                     rows_written bigint NOT NULL DEFAULT 0, error_count bigint NOT NULL DEFAULT 0, error text, \
                     attempts bigint NOT NULL DEFAULT 0, fence bigint NOT NULL DEFAULT 0, holder varchar(512), \
                     lease_until_ms bigint, committed_upto bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL, \
                     started_at timestamptz, ended_at timestamptz)",
                    "CREATE INDEX IF NOT EXISTS lockgate_exports_transfer ON lockgate_exports (transfer, status, id)",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_rows (export_id bigint NOT NULL, n bigint NOT NULL, \
                     row_key varchar(500) NOT NULL, PRIMARY KEY (export_id, n))",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_errors (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                     export_id bigint NOT NULL, n bigint NOT NULL, column_name varchar(255), code varchar(50) NOT NULL, \
                     message text NOT NULL)",
                    "CREATE INDEX IF NOT EXISTS lockgate_export_errors_export ON lockgate_export_errors (export_id, n)",
                ],
            ),
            (
                4,
                vec![
                    "ALTER TABLE lockgate_exports ADD COLUMN IF NOT EXISTS backend_id bigint, \
                     ADD COLUMN IF NOT EXISTS on_error varchar(20)",
                ],
            ),
            (
                5,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_merges (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                     name varchar(255), table_name varchar(255) NOT NULL, sources text NOT NULL, target text NOT NULL, \
                     options text NOT NULL, status varchar(30) NOT NULL, holder varchar(512) NOT NULL, run_id bigint, \
                     started_at timestamptz NOT NULL, ended_at timestamptz, duration_ms bigint, counts text, conflicts text, \
                     plan text, error text, undone_at timestamptz)",
                ],
            ),
            (
                6,
                // Background upgrades (crate::upgrades): one row per declared upgrade with
                // its cursor, and the rows it quarantined.
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrades (name varchar(255) PRIMARY KEY, \
                     table_name varchar(255) NOT NULL, checksum varchar(128) NOT NULL, state varchar(20) NOT NULL, \
                     \"cursor\" text, rows_done bigint NOT NULL DEFAULT 0, rows_total bigint, \
                     started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrade_quarantine (upgrade varchar(255) NOT NULL, \
                     row_key text NOT NULL, error text NOT NULL, attempts integer NOT NULL DEFAULT 1, \
                     \"at\" timestamptz NOT NULL, PRIMARY KEY (upgrade, row_key))",
                ],
            ),
            (
                7,
                // The rate of the upgrade's last run, for status and its ETA.
                vec!["ALTER TABLE lockgate_upgrades ADD COLUMN IF NOT EXISTS rate double precision"],
            ),
            (
                8,
                // Packed row sets (crate::rowset): a chunk of keys per row; errors carry
                // their key. Version 7's one row per key is packed by
                // exports::pack_legacy_row_sets, which then drops lockgate_export_rows.
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_export_chunks (export_id bigint NOT NULL, first_n bigint NOT NULL, \
                     last_n bigint NOT NULL, int_lo bigint, int_hi bigint, texts bigint NOT NULL, packed bytea NOT NULL, \
                     PRIMARY KEY (export_id, first_n))",
                    "ALTER TABLE lockgate_export_errors ADD COLUMN IF NOT EXISTS row_key varchar(500)",
                ],
            ),
        ],
        Engine::Mysql => vec![
            (
            1,
            vec![
                "CREATE TABLE IF NOT EXISTS lockgate_runs (id bigint AUTO_INCREMENT PRIMARY KEY, \
                 kind varchar(50) NOT NULL, job varchar(255) NOT NULL, status varchar(20) NOT NULL, holder varchar(512) NOT NULL, \
                 started_at datetime(6) NOT NULL, heartbeat_at datetime(6) NOT NULL, ended_at datetime(6), \
                 progress_done bigint NOT NULL DEFAULT 0, progress_total bigint, outcome longtext, error longtext, \
                 KEY lockgate_runs_job (job, id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                "CREATE TABLE IF NOT EXISTS lockgate_locks (job varchar(255) PRIMARY KEY, holder varchar(512) NOT NULL, \
                 host varchar(255) NOT NULL, pid bigint NOT NULL, token bigint NOT NULL, acquired_at datetime(6) NOT NULL, \
                 heartbeat_at datetime(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ],
            ),
            (
                2,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_modules (module varchar(255) PRIMARY KEY, version varchar(50) NOT NULL, \
                     updated_at datetime(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_versions (module varchar(255) NOT NULL, version varchar(50) NOT NULL, \
                     status varchar(20) NOT NULL, checksum varchar(64) NOT NULL, parts_done bigint NOT NULL DEFAULT 0, \
                     scripts longtext, run_id bigint, applied_at datetime(6) NOT NULL, PRIMARY KEY (module, version)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_migration_log (id bigint AUTO_INCREMENT PRIMARY KEY, \
                     run_id bigint, log_type varchar(10) NOT NULL, module varchar(255) NOT NULL, version varchar(50), \
                     table_name varchar(255), tenant varchar(255), file_path longtext, logged_at datetime(6) NOT NULL, \
                     message longtext NOT NULL, KEY lockgate_migration_log_version (module, version, id)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_row_images (id bigint AUTO_INCREMENT PRIMARY KEY, \
                     module varchar(255) NOT NULL, version varchar(50) NOT NULL, table_name varchar(255) NOT NULL, \
                     op varchar(1) NOT NULL, key_json longtext NOT NULL, before_json longtext, after_json longtext, \
                     KEY lockgate_row_images_version (module, version, id)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                ],
            ),
            (
                3,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_exports (id bigint AUTO_INCREMENT PRIMARY KEY, \
                     transfer varchar(255) NOT NULL, status varchar(20) NOT NULL, rows_total bigint NOT NULL DEFAULT 0, \
                     rows_written bigint NOT NULL DEFAULT 0, error_count bigint NOT NULL DEFAULT 0, error longtext, \
                     attempts bigint NOT NULL DEFAULT 0, fence bigint NOT NULL DEFAULT 0, holder varchar(512), \
                     lease_until_ms bigint, committed_upto bigint NOT NULL DEFAULT 0, created_at datetime(6) NOT NULL, \
                     started_at datetime(6), ended_at datetime(6), KEY lockgate_exports_transfer (transfer, status, id)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_rows (export_id bigint NOT NULL, n bigint NOT NULL, \
                     row_key varchar(500) COLLATE utf8mb4_nopad_bin NOT NULL, PRIMARY KEY (export_id, n)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_errors (id bigint AUTO_INCREMENT PRIMARY KEY, \
                     export_id bigint NOT NULL, n bigint NOT NULL, column_name varchar(255), code varchar(50) NOT NULL, \
                     message longtext NOT NULL, KEY lockgate_export_errors_export (export_id, n)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                ],
            ),
            (
                4,
                // One statement: MySQL has no ADD COLUMN IF NOT EXISTS, and a column
                // already there (an upgrade cut short after it) is let through below.
                vec!["ALTER TABLE lockgate_exports ADD COLUMN backend_id bigint, ADD COLUMN on_error varchar(20)"],
            ),
            (
                5,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_merges (id bigint AUTO_INCREMENT PRIMARY KEY, \
                     name varchar(255), table_name varchar(255) NOT NULL, sources longtext NOT NULL, target longtext NOT NULL, \
                     options longtext NOT NULL, status varchar(30) NOT NULL, holder varchar(512) NOT NULL, run_id bigint, \
                     started_at datetime(6) NOT NULL, ended_at datetime(6), duration_ms bigint, counts longtext, \
                     conflicts longtext, plan longtext, error longtext, undone_at datetime(6)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                ],
            ),
            (
                6,
                // `cursor` is a reserved word on MariaDB / MySQL. The quarantined row's
                // key is part of the primary key, so it is a varchar (no-pad: a key
                // ending in spaces is another key).
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrades (name varchar(255) PRIMARY KEY, \
                     table_name varchar(255) NOT NULL, checksum varchar(128) NOT NULL, state varchar(20) NOT NULL, \
                     `cursor` longtext, rows_done bigint NOT NULL DEFAULT 0, rows_total bigint, \
                     started_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrade_quarantine (`upgrade` varchar(255) NOT NULL, \
                     row_key varchar(500) COLLATE utf8mb4_nopad_bin NOT NULL, error longtext NOT NULL, \
                     attempts int NOT NULL DEFAULT 1, `at` datetime(6) NOT NULL, PRIMARY KEY (`upgrade`, row_key)) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                ],
            ),
            (7, vec!["ALTER TABLE lockgate_upgrades ADD COLUMN rate double"]),
            (
                8,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_export_chunks (export_id bigint NOT NULL, first_n bigint NOT NULL, \
                     last_n bigint NOT NULL, int_lo bigint, int_hi bigint, texts bigint NOT NULL, packed longblob NOT NULL, \
                     PRIMARY KEY (export_id, first_n)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    "ALTER TABLE lockgate_export_errors ADD COLUMN row_key varchar(500)",
                ],
            ),
        ],
        Engine::Sqlite => vec![
            (
            1,
            vec![
                "CREATE TABLE IF NOT EXISTS lockgate_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 kind TEXT NOT NULL, job TEXT NOT NULL, status TEXT NOT NULL, holder TEXT NOT NULL, \
                 started_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ, \
                 progress_done INTEGER NOT NULL DEFAULT 0, progress_total INTEGER, outcome TEXT, error TEXT)",
                "CREATE INDEX IF NOT EXISTS lockgate_runs_job ON lockgate_runs (job, id)",
                "CREATE TABLE IF NOT EXISTS lockgate_locks (job TEXT PRIMARY KEY, holder TEXT NOT NULL, \
                 host TEXT NOT NULL, pid INTEGER NOT NULL, token INTEGER NOT NULL, acquired_at TIMESTAMPTZ NOT NULL, \
                 heartbeat_at TIMESTAMPTZ NOT NULL)",
            ],
            ),
            (
                2,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_modules (module TEXT PRIMARY KEY, version TEXT NOT NULL, \
                     updated_at TIMESTAMPTZ NOT NULL)",
                    "CREATE TABLE IF NOT EXISTS lockgate_versions (module TEXT NOT NULL, version TEXT NOT NULL, \
                     status TEXT NOT NULL, checksum TEXT NOT NULL, parts_done INTEGER NOT NULL DEFAULT 0, \
                     scripts TEXT, run_id INTEGER, applied_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (module, version))",
                    "CREATE TABLE IF NOT EXISTS lockgate_migration_log (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     run_id INTEGER, log_type TEXT NOT NULL, module TEXT NOT NULL, version TEXT, \
                     table_name TEXT, tenant TEXT, file_path TEXT, logged_at TIMESTAMPTZ NOT NULL, message TEXT NOT NULL)",
                    "CREATE INDEX IF NOT EXISTS lockgate_migration_log_version ON lockgate_migration_log (module, version, id)",
                    "CREATE TABLE IF NOT EXISTS lockgate_row_images (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     module TEXT NOT NULL, version TEXT NOT NULL, table_name TEXT NOT NULL, \
                     op TEXT NOT NULL, key_json TEXT NOT NULL, before_json TEXT, after_json TEXT)",
                    "CREATE INDEX IF NOT EXISTS lockgate_row_images_version ON lockgate_row_images (module, version, id)",
                ],
            ),
            (
                3,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_exports (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     transfer TEXT NOT NULL, status TEXT NOT NULL, rows_total INTEGER NOT NULL DEFAULT 0, \
                     rows_written INTEGER NOT NULL DEFAULT 0, error_count INTEGER NOT NULL DEFAULT 0, error TEXT, \
                     attempts INTEGER NOT NULL DEFAULT 0, fence INTEGER NOT NULL DEFAULT 0, holder TEXT, \
                     lease_until_ms INTEGER, committed_upto INTEGER NOT NULL DEFAULT 0, created_at TIMESTAMPTZ NOT NULL, \
                     started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)",
                    "CREATE INDEX IF NOT EXISTS lockgate_exports_transfer ON lockgate_exports (transfer, status, id)",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_rows (export_id INTEGER NOT NULL, n INTEGER NOT NULL, \
                     row_key TEXT NOT NULL, PRIMARY KEY (export_id, n)) WITHOUT ROWID",
                    "CREATE TABLE IF NOT EXISTS lockgate_export_errors (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     export_id INTEGER NOT NULL, n INTEGER NOT NULL, column_name TEXT, code TEXT NOT NULL, \
                     message TEXT NOT NULL)",
                    "CREATE INDEX IF NOT EXISTS lockgate_export_errors_export ON lockgate_export_errors (export_id, n)",
                ],
            ),
            (
                4,
                vec![
                    "ALTER TABLE lockgate_exports ADD COLUMN backend_id INTEGER",
                    "ALTER TABLE lockgate_exports ADD COLUMN on_error TEXT",
                ],
            ),
            (
                5,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_merges (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     name TEXT, table_name TEXT NOT NULL, sources TEXT NOT NULL, target TEXT NOT NULL, \
                     options TEXT NOT NULL, status TEXT NOT NULL, holder TEXT NOT NULL, run_id INTEGER, \
                     started_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ, duration_ms INTEGER, counts TEXT, \
                     conflicts TEXT, plan TEXT, error TEXT, undone_at TIMESTAMPTZ)",
                ],
            ),
            (
                6,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrades (name TEXT PRIMARY KEY, \
                     table_name TEXT NOT NULL, checksum TEXT NOT NULL, state TEXT NOT NULL, \
                     \"cursor\" TEXT, rows_done INTEGER NOT NULL DEFAULT 0, rows_total INTEGER, \
                     started_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
                    "CREATE TABLE IF NOT EXISTS lockgate_upgrade_quarantine (upgrade TEXT NOT NULL, \
                     row_key TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, \
                     \"at\" TIMESTAMPTZ NOT NULL, PRIMARY KEY (upgrade, row_key)) WITHOUT ROWID",
                ],
            ),
            (7, vec!["ALTER TABLE lockgate_upgrades ADD COLUMN rate REAL"]),
            (
                8,
                vec![
                    "CREATE TABLE IF NOT EXISTS lockgate_export_chunks (export_id INTEGER NOT NULL, first_n INTEGER NOT NULL, \
                     last_n INTEGER NOT NULL, int_lo INTEGER, int_hi INTEGER, texts INTEGER NOT NULL, packed BLOB NOT NULL, \
                     PRIMARY KEY (export_id, first_n))",
                    "ALTER TABLE lockgate_export_errors ADD COLUMN row_key TEXT",
                ],
            ),
        ],
    }
}

/// Now, in microseconds (what every engine stores).
pub(crate) fn now() -> Value {
    // Microseconds: what every engine stores.
    let t = Utc::now();
    let micros = t.timestamp_micros();
    Value::TimestampTz(DateTime::from_timestamp_micros(micros).unwrap_or(t))
}

/// An integer cell, whichever way the engine typed it.
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Decimal(d) => d.to_i64(),
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
}

/// A text cell (NULL: `None`).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A stable 64-bit hash (FNV-1a) of a lock name: advisory lock keys and MariaDB
/// lock names must be the same in every process and build.
fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Ledger {
    /// Opens the ledger of the database at `url` on a connection of its own,
    /// creating or upgrading its tables as needed.
    pub async fn open(url: &DbUrl) -> Result<Ledger, DbError> {
        let conn = Conn::connect(url).await?;
        let mut ledger = Ledger { conn, url: url.clone() };
        ledger.ensure_schema().await?;
        Ok(ledger)
    }

    /// Opens the ledger for a command that only reads (`status`, `log`, `transfer
    /// list/show/history`): never creates the database (an SQLite file must exist)
    /// nor the ledger's tables; `None` when the database has no ledger. A ledger that
    /// is there but older than this build is upgraded as [`Ledger::open`] does, since
    /// this build's queries need its current columns.
    pub async fn open_existing(url: &DbUrl) -> Result<Option<Ledger>, DbError> {
        let mut conn = Conn::connect_existing(url).await?;
        if conn.describe(&TableName::new("lockgate_meta")).await?.is_none() {
            return Ok(None);
        }
        let mut ledger = Ledger { conn, url: url.clone() };
        ledger.ensure_schema().await?;
        Ok(Some(ledger))
    }

    /// The ledger's locks on a session the caller opened for its own work, on a
    /// database whose ledger is already there: a lock taken through it is held by
    /// that session and ends with it. A transfer's data session holds its table's
    /// lock so, so that a worker taking over the export frees the lock by ending
    /// that one session (`exports::end_stale_session`).
    pub fn on_session(conn: Conn, url: &DbUrl) -> Ledger {
        Ledger { conn, url: url.clone() }
    }

    /// The ledger's own connection, for the typed queries of [`crate::versions`]
    /// (what is written on it outlives a rollback of the data transaction).
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// The ledger's connection's engine.
    pub fn engine(&self) -> Engine {
        self.conn.engine()
    }

    async fn ensure_schema(&mut self) -> Result<(), DbError> {
        let engine = self.conn.engine();
        let meta = match engine {
            Engine::Mysql => {
                "CREATE TABLE IF NOT EXISTS lockgate_meta (name varchar(100) PRIMARY KEY, value longtext NOT NULL) \
                              ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            }
            _ => "CREATE TABLE IF NOT EXISTS lockgate_meta (name varchar(100) PRIMARY KEY, value text NOT NULL)",
        };
        // Serialize concurrent upgrades of the same database.
        match engine {
            Engine::Postgres => self.conn.batch("SELECT pg_advisory_lock(7394561)").await?,
            Engine::Mysql => {
                self.conn.query(SCHEMA_LOCK_GET, &[], None).await?;
            }
            Engine::Sqlite => {}
        }
        let result = self.upgrade(meta).await;
        match engine {
            Engine::Postgres => self.conn.batch("SELECT pg_advisory_unlock(7394561)").await?,
            Engine::Mysql => {
                self.conn.query(SCHEMA_LOCK_RELEASE, &[], None).await?;
            }
            Engine::Sqlite => {}
        }
        result
    }

    async fn upgrade(&mut self, meta: &str) -> Result<(), DbError> {
        let engine = self.conn.engine();
        let sqlite = engine == Engine::Sqlite;
        // A ledger already at this version needs no write: on SQLite, taking the write
        // lock just to look would make every reader wait for a running job.
        if sqlite && matches!(self.schema_version().await, Ok(SCHEMA_VERSION)) {
            return Ok(());
        }
        if sqlite {
            self.conn.batch("BEGIN IMMEDIATE").await?;
        }
        let result = async {
            self.conn.batch(meta).await?;
            let rows = self
                .conn
                .query(
                    "SELECT value FROM lockgate_meta WHERE name = 'schema_version'",
                    &[],
                    None,
                )
                .await?;
            let current = rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0);
            if current > SCHEMA_VERSION {
                return Err(DbError::LedgerTooNew {
                    found: current,
                    known: SCHEMA_VERSION,
                });
            }
            for (version, statements) in migrations(engine) {
                if version <= current {
                    continue;
                }
                // The statements name MariaDB's no-pad binary collation; MySQL spells it
                // its own way.
                let nopad = self.conn.mysql_server().map(|s| s.nopad_bin_collation());
                for sql in statements {
                    let sql = match nopad {
                        Some(collation) => sql.replace("utf8mb4_nopad_bin", collation),
                        None => sql.to_string(),
                    };
                    match self.conn.batch(&sql).await {
                        // MariaDB/MySQL commit each schema change at once: a column an
                        // upgrade cut short had already added is there (1060). SQLite has
                        // no ADD COLUMN IF NOT EXISTS: a column there already is as good.
                        Err(e)
                            if e.engine_error().is_some_and(|x| {
                                (engine == Engine::Mysql && x.code == "1060")
                                    || (engine == Engine::Sqlite && x.message.contains("duplicate column name"))
                            }) => {}
                        other => other?,
                    }
                }
                if version == 8 {
                    crate::exports::pack_legacy_row_sets(&mut self.conn, !sqlite).await?;
                }
                self.conn
                    .execute("DELETE FROM lockgate_meta WHERE name = 'schema_version'", &[])
                    .await?;
                let p = self.conn.dialect().param(1);
                self.conn
                    .execute(
                        &format!("INSERT INTO lockgate_meta (name, value) VALUES ('schema_version', {p})"),
                        &[Value::Text(version.to_string())],
                    )
                    .await?;
            }
            Ok(())
        }
        .await;
        if sqlite {
            if result.is_ok() {
                self.conn.batch("COMMIT").await?;
            } else {
                let _ = self.conn.batch("ROLLBACK").await;
            }
        }
        result
    }

    /// The ledger schema version found in the database.
    pub async fn schema_version(&mut self) -> Result<i64, DbError> {
        let rows = self
            .conn
            .query(
                "SELECT value FROM lockgate_meta WHERE name = 'schema_version'",
                &[],
                None,
            )
            .await?;
        Ok(rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0))
    }

    fn params(&self, n: usize) -> Vec<String> {
        let d = self.conn.dialect();
        (1..=n).map(|i| d.param(i)).collect()
    }

    /// Records the start of a run; returns its id. Earlier runs of the same job whose
    /// process is gone are recorded `abandoned` first. On PostgreSQL and MariaDB the
    /// run's lock is taken in the same transaction as its row, so that nobody sees
    /// the run without its lock (which would read as abandoned).
    pub async fn start_run(&mut self, kind: &str, job: &str, holder: &Holder) -> Result<i64, DbError> {
        self.mark_abandoned(job).await?;
        let engine = self.conn.engine();
        if engine == Engine::Sqlite {
            return self.insert_run(kind, job, holder).await;
        }
        self.conn.begin().await?;
        let result = async {
            let id = self.insert_run(kind, job, holder).await?;
            let taken = self
                .conn
                .query(&run_lock_sql(engine, "lock"), &[Value::Int(id)], None)
                .await?;
            if !matches!(taken.first().and_then(|r| r.first()), Some(Value::Bool(true)))
                && taken.first().and_then(|r| r.first()).and_then(int) != Some(1)
            {
                // Only a session that kept a lock of the same key (a run 2^31 ids
                // earlier, on PostgreSQL) could hold it: the run then reads as
                // running for as long as that session lives, which is harmless.
                tracing::debug!(run = id, "the run's lock is held by another session");
            }
            Ok(id)
        }
        .await;
        match result {
            Ok(id) => {
                self.conn.commit().await?;
                Ok(id)
            }
            Err(e) => {
                let _ = self.conn.rollback().await;
                Err(e)
            }
        }
    }

    async fn insert_run(&mut self, kind: &str, job: &str, holder: &Holder) -> Result<i64, DbError> {
        let p = self.params(6);
        let sql = format!(
            "INSERT INTO lockgate_runs (kind, job, status, holder, started_at, heartbeat_at) VALUES ({}, {}, {}, {}, {}, {})",
            p[0], p[1], p[2], p[3], p[4], p[5]
        );
        let t = now();
        self.conn
            .insert_returning_id(
                &sql,
                &[
                    Value::Text(kind.into()),
                    Value::Text(job.into()),
                    Value::Text("running".into()),
                    Value::Text(holder.describe()),
                    t.clone(),
                    t,
                ],
                "id",
            )
            .await
    }

    /// Records the runs of `job` still `running` whose process is gone as
    /// `abandoned`, ended at their last sign of life.
    async fn mark_abandoned(&mut self, job: &str) -> Result<(), DbError> {
        let engine = self.conn.engine();
        let p = self.params(2);
        let set = format!(
            "UPDATE lockgate_runs SET status = 'abandoned', ended_at = heartbeat_at, error = {} WHERE",
            p[0]
        );
        let why = Value::Text(ABANDONED.into());
        match engine {
            Engine::Sqlite => {
                let rows = self
                    .conn
                    .query(
                        &format!(
                            "SELECT id, holder FROM lockgate_runs WHERE job = {} AND status = 'running'",
                            p[0]
                        ),
                        &[Value::Text(job.into())],
                        None,
                    )
                    .await?;
                for r in rows {
                    if sqlite_run_gone(&text(&r[1]).unwrap_or_default()) {
                        self.conn
                            .execute(&format!("{set} id = {}", p[1]), &[why.clone(), r[0].clone()])
                            .await?;
                    }
                }
            }
            _ => {
                let sql = format!(
                    "{set} job = {} AND status = 'running' AND {}",
                    p[1],
                    run_gone_sql(engine, "id")
                );
                self.conn.execute(&sql, &[why, Value::Text(job.into())]).await?;
            }
        }
        Ok(())
    }

    /// Records progress (and a heartbeat) of a run.
    pub async fn progress(&mut self, run: i64, done: u64, total: Option<u64>) -> Result<(), DbError> {
        let p = self.params(4);
        let sql = format!(
            "UPDATE lockgate_runs SET progress_done = {}, progress_total = {}, heartbeat_at = {} WHERE id = {}",
            p[0], p[1], p[2], p[3]
        );
        let total = total.map_or(Value::Null, |t| Value::Int(t as i64));
        self.conn
            .execute(&sql, &[Value::Int(done as i64), total, now(), Value::Int(run)])
            .await?;
        Ok(())
    }

    /// Records the end of a run with its outcome (JSON) and error, and lets go of
    /// the run's lock. An error here means the end is not recorded: the caller must
    /// say so (the run will read as abandoned once this process is gone).
    pub async fn finish_run(
        &mut self,
        run: i64,
        status: RunStatus,
        done: u64,
        outcome: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        let p = self.params(7);
        let sql = format!(
            "UPDATE lockgate_runs SET status = {}, ended_at = {}, heartbeat_at = {}, progress_done = {}, outcome = {}, error = {} WHERE id = {}",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6]
        );
        let t = now();
        let error = error.map_or(Value::Null, |e| Value::Text(e.into()));
        self.conn
            .execute(
                &sql,
                &[
                    Value::Text(status.as_str().into()),
                    t.clone(),
                    t,
                    Value::Int(done as i64),
                    Value::Text(outcome.to_string()),
                    error,
                    Value::Int(run),
                ],
            )
            .await?;
        let engine = self.conn.engine();
        if engine != Engine::Sqlite {
            self.conn
                .query(&run_lock_sql(engine, "unlock"), &[Value::Int(run)], None)
                .await?;
        }
        Ok(())
    }

    /// The latest runs, newest first.
    pub async fn runs(&mut self, limit: u32) -> Result<Vec<Run>, DbError> {
        query_runs(&mut self.conn, limit).await
    }

    /// Takes the lock of `job`, waiting up to `timeout` for its holder to finish.
    /// On timeout the error names the holder.
    pub async fn lock(&mut self, job: &str, holder: &Holder, timeout: Duration) -> Result<JobLock, DbError> {
        let started = Instant::now();
        let token = fastrand::i64(1..i64::MAX);
        loop {
            if self.try_lock(job, holder, token).await? {
                return Ok(JobLock {
                    job: job.to_string(),
                    token,
                });
            }
            if started.elapsed() >= timeout {
                let who = self
                    .holder_of(job)
                    .await?
                    .unwrap_or_else(|| "another lockgate process".into());
                return Err(DbError::LockTimeout {
                    job: job.to_string(),
                    holder: who,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(
                Duration::from_millis(100)
                    .min(timeout.saturating_sub(started.elapsed()))
                    .max(Duration::from_millis(10)),
            )
            .await;
        }
    }

    /// Takes the locks of several jobs (each once), waiting up to `timeout` in all.
    /// They are taken in one order (sorted), so two takers of overlapping sets cannot
    /// each hold what the other waits for; on a timeout the ones taken are given back
    /// and the error names the holder of the one that was not free.
    pub async fn lock_all(
        &mut self,
        jobs: &[String],
        holder: &Holder,
        timeout: Duration,
    ) -> Result<Vec<JobLock>, DbError> {
        let mut jobs: Vec<&String> = jobs.iter().collect();
        jobs.sort();
        jobs.dedup();
        let started = Instant::now();
        let mut held = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.lock(job, holder, timeout.saturating_sub(started.elapsed())).await {
                Ok(l) => held.push(l),
                Err(e) => {
                    let _ = self.unlock_all(held).await;
                    return Err(match e {
                        DbError::LockTimeout { job, holder, .. } => DbError::LockTimeout {
                            job,
                            holder,
                            waited: started.elapsed(),
                        },
                        other => other,
                    });
                }
            }
        }
        Ok(held)
    }

    /// Gives back locks taken by [`Ledger::lock_all`] (all of them, even when one
    /// fails: the first error is returned).
    pub async fn unlock_all(&mut self, locks: Vec<JobLock>) -> Result<(), DbError> {
        let mut first = Ok(());
        for l in locks.into_iter().rev() {
            let r = self.unlock(l).await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// The [`table_job`] of `table` (a name as described by the catalog): its
    /// schema, or database, resolved as the catalog resolves it (PostgreSQL's
    /// `search_path`, the connection's database on MariaDB), so that `rvb2.k` through
    /// a connection to `rvb` and `k` through one to `rvb2` are one lock.
    pub async fn table_job(&mut self, table: &TableName) -> Result<String, DbError> {
        let schema = match (&table.schema, self.conn.engine()) {
            (Some(s), _) => s.clone(),
            (None, Engine::Postgres) => {
                // The schema the table is in; a table not created yet will be created
                // in the current schema.
                let rows = self
                    .conn
                    .query(
                        "SELECT COALESCE((SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n \
                         ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)), current_schema()::text)",
                        &[Value::Text(self.conn.dialect().table(table))],
                        None,
                    )
                    .await?;
                text(rows.first().and_then(|r| r.first()).unwrap_or(&Value::Null)).unwrap_or_default()
            }
            (None, Engine::Mysql) => {
                let rows = self.conn.query("SELECT DATABASE()", &[], None).await?;
                text(rows.first().and_then(|r| r.first()).unwrap_or(&Value::Null)).unwrap_or_default()
            }
            (None, Engine::Sqlite) => "main".into(),
        };
        Ok(table_job(&schema, &table.name))
    }

    fn server_lock_name(&self, job: &str) -> String {
        // GET_LOCK names are server-wide and at most 64 characters: hash the database
        // and job (a table's job names its database itself).
        let database = if job.starts_with(TABLE_JOB) {
            String::new()
        } else {
            self.url.database().unwrap_or_default()
        };
        format!("lockgate:{:016x}", fnv64(&format!("{database}\u{0}{job}")))
    }

    async fn try_lock(&mut self, job: &str, holder: &Holder, token: i64) -> Result<bool, DbError> {
        let got = match self.conn.engine() {
            Engine::Postgres => {
                let key = fnv64(job) as i64;
                let rows = self
                    .conn
                    .query("SELECT pg_try_advisory_lock($1)", &[Value::Int(key)], None)
                    .await?;
                matches!(rows.first().and_then(|r| r.first()), Some(Value::Bool(true)))
            }
            Engine::Mysql => {
                let name = self.server_lock_name(job);
                let rows = self
                    .conn
                    .query("SELECT GET_LOCK(?, 0)", &[Value::Text(name)], None)
                    .await?;
                rows.first().and_then(|r| r.first()).and_then(int) == Some(1)
            }
            Engine::Sqlite => return self.try_lock_sqlite(job, holder, token).await,
        };
        if got {
            self.write_lock_row(job, holder, token).await?;
        }
        Ok(got)
    }

    async fn write_lock_row(&mut self, job: &str, holder: &Holder, token: i64) -> Result<(), DbError> {
        let p = self.params(7);
        self.conn
            .execute(
                &format!("DELETE FROM lockgate_locks WHERE job = {}", p[0]),
                &[Value::Text(job.into())],
            )
            .await?;
        let t = now();
        self.conn
            .execute(
                &format!(
                    "INSERT INTO lockgate_locks (job, holder, host, pid, token, acquired_at, heartbeat_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6]
                ),
                &[
                    Value::Text(job.into()),
                    Value::Text(holder.describe()),
                    Value::Text(holder.host.clone()),
                    Value::Int(holder.pid as i64),
                    Value::Int(token),
                    t.clone(),
                    t,
                ],
            )
            .await?;
        Ok(())
    }

    async fn try_lock_sqlite(&mut self, job: &str, holder: &Holder, token: i64) -> Result<bool, DbError> {
        match self.conn.batch("BEGIN IMMEDIATE").await {
            Ok(()) => {}
            // Another writer holds the file: that is "not yet", not a failure.
            Err(e) if e.is_transient() => return Ok(false),
            Err(e) => return Err(e),
        }
        let result = async {
            let rows = self
                .conn
                .query(
                    "SELECT host, pid, heartbeat_at FROM lockgate_locks WHERE job = ?1",
                    &[Value::Text(job.into())],
                    None,
                )
                .await?;
            if let Some(r) = rows.first() {
                let host = text(&r[0]).unwrap_or_default();
                let pid = int(&r[1]).unwrap_or(0) as u32;
                let heartbeat = text(&r[2]).and_then(|t| lockgate_core::value::parse_timestamptz(&t).ok());
                let stale = heartbeat.is_none_or(|h| (Utc::now() - h).to_std().unwrap_or_default() > SQLITE_STALE);
                let dead = host == holder.host && !process_alive(pid);
                if !(dead || stale) {
                    return Ok(false);
                }
            }
            self.write_lock_row(job, holder, token).await?;
            Ok(true)
        }
        .await;
        match &result {
            Ok(true) => self.conn.batch("COMMIT").await?,
            _ => {
                let _ = self.conn.batch("ROLLBACK").await;
            }
        }
        result
    }

    /// Who holds `job`'s lock, as its ledger row says.
    pub async fn holder_of(&mut self, job: &str) -> Result<Option<String>, DbError> {
        let p = self.params(1);
        let rows = self
            .conn
            .query(
                &format!("SELECT holder, acquired_at FROM lockgate_locks WHERE job = {}", p[0]),
                &[Value::Text(job.into())],
                None,
            )
            .await?;
        Ok(rows.first().map(|r| {
            format!(
                "{}, since {}",
                text(&r[0]).unwrap_or_default(),
                text(&r[1]).unwrap_or_default()
            )
        }))
    }

    /// Gives a lock back.
    pub async fn unlock(&mut self, lock: JobLock) -> Result<(), DbError> {
        let p = self.params(2);
        self.conn
            .execute(
                &format!("DELETE FROM lockgate_locks WHERE job = {} AND token = {}", p[0], p[1]),
                &[Value::Text(lock.job.clone()), Value::Int(lock.token)],
            )
            .await?;
        match self.conn.engine() {
            Engine::Postgres => {
                self.conn
                    .query(
                        "SELECT pg_advisory_unlock($1)",
                        &[Value::Int(fnv64(&lock.job) as i64)],
                        None,
                    )
                    .await?;
            }
            Engine::Mysql => {
                let name = self.server_lock_name(&lock.job);
                self.conn
                    .query("SELECT RELEASE_LOCK(?)", &[Value::Text(name)], None)
                    .await?;
            }
            Engine::Sqlite => {}
        }
        Ok(())
    }

    /// Refreshes a held lock's heartbeat.
    pub async fn heartbeat(&mut self, lock: &JobLock) -> Result<(), DbError> {
        let p = self.params(3);
        self.conn
            .execute(
                &format!(
                    "UPDATE lockgate_locks SET heartbeat_at = {} WHERE job = {} AND token = {}",
                    p[0], p[1], p[2]
                ),
                &[now(), Value::Text(lock.job.clone()), Value::Int(lock.token)],
            )
            .await?;
        Ok(())
    }
}

/// Why a run was recorded `abandoned`.
const ABANDONED: &str = "its process went away (killed, or its connection lost) without recording an end; \
                         what it wrote was rolled back unless it had committed it";

/// The statement that takes (`lock`) or lets go of (`unlock`) run `$1`'s lock.
fn run_lock_sql(engine: Engine, what: &str) -> String {
    match (engine, what) {
        (Engine::Postgres, "lock") => {
            format!("SELECT pg_try_advisory_lock({RUN_LOCK_SPACE}, ($1::bigint % 2147483648)::int)")
        }
        (Engine::Postgres, _) => format!("SELECT pg_advisory_unlock({RUN_LOCK_SPACE}, ($1::bigint % 2147483648)::int)"),
        (_, "lock") => format!("SELECT GET_LOCK({}, 0)", mysql_run_lock_name("?")),
        _ => format!("SELECT RELEASE_LOCK({})", mysql_run_lock_name("?")),
    }
}

/// The `GET_LOCK` name of the run whose id is the SQL expression `id`: names are
/// server-wide and at most 64 characters, so the database is hashed.
fn mysql_run_lock_name(id: &str) -> String {
    format!("CONCAT('lockgate-run:', LEFT(SHA1(DATABASE()), 16), ':', {id})")
}

/// A condition true when the run whose id is the column `id` holds no lock: its
/// process (or its connection) is gone.
fn run_gone_sql(engine: Engine, id: &str) -> String {
    match engine {
        Engine::Postgres => format!(
            "NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid = {RUN_LOCK_SPACE} AND l.objid = ({id} % 2147483648)::oid AND l.objsubid = 2)"
        ),
        _ => format!("IS_USED_LOCK({}) IS NULL", mysql_run_lock_name(id)),
    }
}

/// Whether a SQLite run's holder (`what (pid N on HOST)`, see [`Holder`]) is a
/// process of this host that no longer exists. Another host's processes cannot be
/// checked: its runs read as running.
fn sqlite_run_gone(holder: &str) -> bool {
    let Some((_, tail)) = holder.rsplit_once(" (pid ") else {
        return false;
    };
    let Some((pid, host)) = tail.trim_end_matches(')').split_once(" on ") else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => host == hostname() && !process_alive(pid),
        Err(_) => false,
    }
}

/// The latest runs in the database of `conn`, newest first, without creating the
/// ledger: `None` when the database has none (a viewer must not change what it
/// looks at). A run whose process is gone reads as `abandoned`.
pub async fn read_runs(conn: &mut Conn, limit: u32) -> Result<Option<Vec<Run>>, DbError> {
    if conn.lookup_table("lockgate_runs").await?.is_none() {
        return Ok(None);
    }
    query_runs(conn, limit).await.map(Some)
}

/// One run's status as [`read_runs`] reads it (a run whose process is gone reads
/// `abandoned`); `None` when there is no such run.
pub async fn run_status(conn: &mut Conn, id: i64) -> Result<Option<String>, DbError> {
    let engine = conn.engine();
    let status = match engine {
        Engine::Sqlite => "status".to_string(),
        _ => format!(
            "CASE WHEN status = 'running' AND {} THEN 'abandoned' ELSE status END",
            run_gone_sql(engine, "id")
        ),
    };
    let sql = format!(
        "SELECT {status}, holder FROM lockgate_runs WHERE id = {}",
        conn.dialect().param(1)
    );
    let rows = conn.query(&sql, &[Value::Int(id)], None).await?;
    Ok(rows.first().map(|r| {
        let status = text(&r[0]).unwrap_or_default();
        if engine == Engine::Sqlite && status == "running" && sqlite_run_gone(&text(&r[1]).unwrap_or_default()) {
            RunStatus::Abandoned.as_str().to_string()
        } else {
            status
        }
    }))
}

async fn query_runs(conn: &mut Conn, limit: u32) -> Result<Vec<Run>, DbError> {
    let engine = conn.engine();
    let status = match engine {
        Engine::Sqlite => "status".to_string(),
        _ => format!(
            "CASE WHEN status = 'running' AND {} THEN 'abandoned' ELSE status END",
            run_gone_sql(engine, "id")
        ),
    };
    let sql = format!(
        "SELECT id, kind, job, {status}, holder, started_at, heartbeat_at, ended_at, progress_done, progress_total, outcome, error \
         FROM lockgate_runs ORDER BY id DESC LIMIT {}",
        limit.max(1)
    );
    let rows = conn.query(&sql, &[], None).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut run = Run {
                id: int(&r[0]).unwrap_or(0),
                kind: text(&r[1]).unwrap_or_default(),
                job: text(&r[2]).unwrap_or_default(),
                status: text(&r[3]).unwrap_or_default(),
                holder: text(&r[4]).unwrap_or_default(),
                started_at: text(&r[5]).unwrap_or_default(),
                heartbeat_at: text(&r[6]).unwrap_or_default(),
                ended_at: text(&r[7]),
                progress_done: int(&r[8]).unwrap_or(0),
                progress_total: int(&r[9]),
                outcome: text(&r[10]),
                error: text(&r[11]),
            };
            if engine == Engine::Sqlite && run.status == "running" && sqlite_run_gone(&run.holder) {
                run.status = RunStatus::Abandoned.as_str().into();
            }
            if run.status == "abandoned" && run.error.is_none() {
                run.error = Some(ABANDONED.into());
            }
            run
        })
        .collect())
}
