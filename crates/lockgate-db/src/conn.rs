//! [`Conn`]: one connection to any of the three engines, and the operations every
//! engine module provides with the same signatures (the engine contract):
//!
//! - `connect(url)`: opens a session in UTC (SQLite: creating the file when missing;
//!   [`Conn::connect_existing`] never creates one, for commands that only read).
//! - `batch(sql)`: runs statements without parameters or results.
//! - `execute(sql, params)`: one statement with bound values; returns affected rows.
//! - `query(sql, params, kinds)`: rows as [`Value`]s; `kinds`, when given, types each
//!   column the way a table read needs (SQLite stores dates as text, say).
//! - `query_pages(sql, params, kinds, page, f)`: the same rows handed to `f` a page
//!   at a time as they are read, for results of any size.
//! - `list_tables()`, `describe(name)`: introspection into [`Table`].
//! - `bulk_insert(target, columns, rows, ordinal)`: the engine's fast path (COPY,
//!   LOAD DATA LOCAL, a reused prepared statement); with `ordinal`, an extra column of
//!   that name receives each row's index in `rows` (the staging table's row number).
//!
//! The enum dispatches to the engine; code above it (writer, reader, ledger) is
//! written once for all three.

use crate::dialect::Dialect;
use crate::error::{DbError, EngineError};
use crate::mysql_server::Server;
use crate::url::{DbUrl, Engine};
use crate::{mysql, pg, sqlite};
use lockgate_core::{Kind, Row, Table, TableName, Value};

/// What a bulk insert did. PostgreSQL and MariaDB fail the whole statement on the
/// first bad row (an `Err`); SQLite reports each failing row and keeps going.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Rows written.
    pub written: u64,
    /// (index in the input, error) for rows the engine rejected one by one.
    pub row_errors: Vec<(usize, EngineError)>,
}

/// Stops the statement a [`Conn`] runs, from another task ([`Conn::canceller`]).
pub struct Canceller(CancelWay);

enum CancelWay {
    /// PostgreSQL's cancel request, sent on a connection of its own.
    Postgres(tokio_postgres::CancelToken),
    /// `KILL QUERY` of the session's thread id, from a session of its own.
    Mysql(Box<mysql_async::Opts>, u32),
    /// `sqlite3_interrupt`, and a flag that keeps work not begun from beginning.
    Sqlite(sqlite::LiteCancel),
}

/// How long after its first cancel a statement is cancelled again, in case it had
/// not reached the server yet (a cancel that finds nothing running does nothing).
const CANCEL_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

impl Canceller {
    /// Stops the connection's current statement, or one that starts within
    /// [`CANCEL_AGAIN`]: PostgreSQL's cancel request and MariaDB's `KILL QUERY` are
    /// sent now and once more after it (each on a connection of its own); SQLite's
    /// interrupt is repeated while the connection stays busy. The statement's own
    /// call then fails with the engine's cancellation error (MariaDB's `SLEEP`
    /// returns 1 instead). The connection is meant to be closed afterwards: call
    /// this only on one that nothing else will use.
    pub async fn cancel(self) -> Result<(), DbError> {
        match self.0 {
            CancelWay::Postgres(token) => {
                let send = || async {
                    token
                        .cancel_query(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| DbError::engine("sending a cancel request", pg::engine_error(&e)))
                };
                send().await?;
                tokio::time::sleep(CANCEL_AGAIN).await;
                // The second is only in case: its failure (the session gone) is none.
                let _ = send().await;
                Ok(())
            }
            CancelWay::Mysql(opts, id) => {
                mysql::MyConn::kill_query((*opts).clone(), id).await?;
                tokio::time::sleep(CANCEL_AGAIN).await;
                let _ = mysql::MyConn::kill_query(*opts, id).await;
                Ok(())
            }
            CancelWay::Sqlite(c) => {
                c.cancel(CANCEL_AGAIN).await;
                Ok(())
            }
        }
    }
}

/// A connection to one database.
pub enum Conn {
    /// PostgreSQL.
    Postgres(pg::PgConn),
    /// MySQL / MariaDB.
    Mysql(mysql::MyConn),
    /// SQLite.
    Sqlite(sqlite::LiteConn),
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $body:expr) => {
        match $self {
            Conn::Postgres($c) => $body,
            Conn::Mysql($c) => $body,
            Conn::Sqlite($c) => $body,
        }
    };
}

impl Conn {
    /// Connects. An unreachable server or a refused login is [`DbError::Connect`],
    /// naming the URL without its password.
    pub async fn connect(url: &DbUrl) -> Result<Conn, DbError> {
        Ok(match url.engine {
            Engine::Postgres => Conn::Postgres(pg::PgConn::connect(url).await?),
            Engine::Mysql => Conn::Mysql(mysql::MyConn::connect(url).await?),
            Engine::Sqlite => Conn::Sqlite(sqlite::LiteConn::connect(url).await?),
        })
    }

    /// Connects for a command that only reads: an SQLite file must already exist
    /// (never created: a mistyped path is an error naming it, not a new empty
    /// database); servers connect as [`Conn::connect`] does.
    pub async fn connect_existing(url: &DbUrl) -> Result<Conn, DbError> {
        Ok(match url.engine {
            Engine::Sqlite => Conn::Sqlite(sqlite::LiteConn::connect_existing(url).await?),
            _ => Conn::connect(url).await?,
        })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Postgres(_) => Engine::Postgres,
            Conn::Mysql(_) => Engine::Mysql,
            Conn::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The engine's SQL spelling.
    pub fn dialect(&self) -> Dialect {
        Dialect(self.engine())
    }

    /// On MariaDB / MySQL, which of the two answers and the forms its SQL takes.
    pub fn mysql_server(&self) -> Option<Server> {
        match self {
            Conn::Mysql(c) => Some(c.server()),
            _ => None,
        }
    }

    /// Whether `INSERT … SELECT … RETURNING` runs here: PostgreSQL, SQLite 3.35+,
    /// MariaDB 10.5+; not MySQL (see [`Server::insert_returning`]).
    pub fn insert_returning(&self) -> bool {
        self.mysql_server().is_none_or(|s| s.insert_returning())
    }

    /// Runs an `INSERT` of one row (written without `RETURNING`) and returns the id
    /// the database generated for `id_column`: `RETURNING` on PostgreSQL and SQLite,
    /// `LAST_INSERT_ID()` (from the server's answer to the INSERT) on MariaDB and
    /// MySQL, where it is the form both run.
    pub async fn insert_returning_id(
        &mut self,
        insert: &str,
        params: &[Value],
        id_column: &str,
    ) -> Result<i64, DbError> {
        let id = match self {
            Conn::Mysql(c) => {
                c.execute(insert, params).await?;
                c.last_insert_id().and_then(|id| i64::try_from(id).ok())
            }
            _ => {
                let sql = format!("{insert} RETURNING {}", self.dialect().quote(id_column));
                let rows = self.query(&sql, params, None).await?;
                rows.first().and_then(|r| r.first()).and_then(|v| match v {
                    Value::Int(i) => Some(*i),
                    other => other.to_string().parse().ok(),
                })
            }
        };
        id.ok_or_else(|| DbError::Internal(format!("the insert returned no {id_column}: {insert}")))
    }

    /// The id the last `INSERT` on this MariaDB / MySQL session generated.
    pub fn last_insert_id(&self) -> Option<u64> {
        match self {
            Conn::Mysql(c) => c.last_insert_id(),
            _ => None,
        }
    }

    /// Makes the server end this session once a transaction has been idle for
    /// `timeout`, so that a stalled client cannot hold its row locks for longer:
    /// `idle_in_transaction_session_timeout` on PostgreSQL, the server's form on
    /// MariaDB / MySQL ([`Server::idle_timeout_sql`]); nothing on SQLite, whose one
    /// writer holds the file anyway.
    pub async fn set_idle_transaction_timeout(&mut self, timeout: std::time::Duration) -> Result<(), DbError> {
        let sql = match self {
            Conn::Postgres(_) => format!(
                "SET idle_in_transaction_session_timeout = {}",
                timeout.as_millis().clamp(1_000, i32::MAX as u128)
            ),
            Conn::Mysql(c) => c.server().idle_timeout_sql(timeout.as_secs()),
            Conn::Sqlite(_) => return Ok(()),
        };
        self.batch(&sql).await
    }

    /// Runs statements without parameters or results.
    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        dispatch!(self, c => c.batch(sql).await)
    }

    /// Runs one statement with bound values; returns the rows it affected.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        dispatch!(self, c => c.execute(sql, params).await)
    }

    /// Runs a query; small results only (introspection, diagnostics, pages).
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        dispatch!(self, c => c.query(sql, params, kinds).await)
    }

    /// Runs a query whose result may be of any size and hands its rows to `f` in
    /// pages of up to `page` rows, reading on only as `f` takes them (memory is a
    /// few pages, never the result): a streamed result on PostgreSQL and MariaDB,
    /// a statement stepped in a blocking task on SQLite. The connection runs nothing
    /// else until the last page; an error from `f` stops the read and is returned.
    pub async fn query_pages<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
        page: usize,
        f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        dispatch!(self, c => c.query_pages(sql, params, kinds, page, f).await)
    }

    /// The result columns of a query, names and kinds, without running it.
    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<(String, Kind)>, DbError> {
        dispatch!(self, c => c.query_columns(sql).await)
    }

    /// Every user table (Lockgate's own `lockgate_*` tables included).
    pub async fn list_tables(&mut self) -> Result<Vec<TableName>, DbError> {
        dispatch!(self, c => c.list_tables().await)
    }

    /// Every user table, described: Lockgate's own `lockgate_*` tables left out.
    pub async fn user_tables(&mut self) -> Result<Vec<Table>, DbError> {
        let mut out = Vec::new();
        for name in self.list_tables().await? {
            if name.name.starts_with("lockgate_") {
                continue;
            }
            if let Some(t) = self.describe(&name).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// One table by its exact name, or `None`.
    pub async fn describe(&mut self, name: &TableName) -> Result<Option<Table>, DbError> {
        dispatch!(self, c => c.describe(name).await)
    }

    /// The engine's fast path for many rows (see the module docs).
    pub async fn bulk_insert(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        dispatch!(self, c => c.bulk_insert(target, columns, rows, ordinal).await)
    }

    /// Appends rows to the table through one statement kept open across calls where
    /// the engine allows (PostgreSQL's COPY, MariaDB's LOAD DATA LOCAL, see
    /// [`mysql::MyConn::stream_rows`]), so a load streams without a pause per
    /// batch; elsewhere each call is a [`Conn::bulk_insert`]. Call
    /// [`Conn::finish_stream`] before anything else; errors may surface there.
    pub async fn stream_rows(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
    ) -> Result<BulkOutcome, DbError> {
        match self {
            Conn::Postgres(c) => Ok(BulkOutcome {
                written: c.stream_rows(target, columns, rows).await?,
                row_errors: Vec::new(),
            }),
            Conn::Mysql(c) => c.stream_rows(target, columns, rows).await,
            _ => self.bulk_insert(target, columns, rows, None).await,
        }
    }

    /// Ends a stream started by [`Conn::stream_rows`].
    pub async fn finish_stream(&mut self) -> Result<(), DbError> {
        match self {
            Conn::Postgres(c) => {
                c.finish_stream().await?;
            }
            Conn::Mysql(c) => c.finish_stream().await?,
            Conn::Sqlite(_) => {}
        }
        Ok(())
    }

    /// Keeps the statements of this connection's introspection prepared and each
    /// table's description, checked against the catalog on every use (PostgreSQL's
    /// [`pg::PgConn::cache_statements`]), for a connection that only reads the same
    /// tables again and again, such as the dashboard's pooled ones. A kept
    /// description can show an expression (a default, a CHECK) naming a sequence or a
    /// function by a name it had before a rename: not for connections that write or
    /// compare definitions. MariaDB's driver keeps its prepared statements already.
    pub fn cache_statements(&mut self) {
        if let Conn::Postgres(c) = self {
            c.cache_statements();
        }
    }

    /// [`Conn::query`], with the statement kept prepared on a caching PostgreSQL
    /// session ([`pg::PgConn::query_kept`]): only for a query whose plan does not
    /// depend on its values. Elsewhere the same as [`Conn::query`].
    pub async fn query_kept(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            Conn::Postgres(c) => c.query_kept(sql, params, kinds).await,
            _ => self.query(sql, params, kinds).await,
        }
    }

    /// The row estimate of `name` that a caching PostgreSQL session read with its
    /// last lookup of it (see [`pg::PgConn::take_row_estimate`]), once; `None`
    /// elsewhere.
    pub fn take_row_estimate(&mut self, name: &TableName) -> Option<f64> {
        match self {
            Conn::Postgres(c) => c.take_row_estimate(name),
            _ => None,
        }
    }

    /// Makes [`crate::checksum::row_hash_sql`] runnable here for rows of `fields`:
    /// SQLite gets the row-hash and sum functions (it has no MD5); the servers need
    /// nothing.
    pub async fn register_checksum(&mut self, fields: Vec<(Kind, crate::checksum::Canon)>) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(c) => c.register_checksum(fields).await,
            _ => Ok(()),
        }
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        dispatch!(self, c => c.is_closed())
    }

    /// What stops the statement this connection is running, from outside the task
    /// that awaits it: for a read whose caller went away, so that the query does not
    /// run on in the server for nobody.
    pub fn canceller(&self) -> Canceller {
        match self {
            Conn::Postgres(c) => Canceller(CancelWay::Postgres(c.cancel_token())),
            Conn::Mysql(c) => {
                let (opts, id) = c.kill_target();
                Canceller(CancelWay::Mysql(Box::new(opts), id))
            }
            Conn::Sqlite(c) => Canceller(CancelWay::Sqlite(c.canceller())),
        }
    }

    /// Starts a transaction.
    pub async fn begin(&mut self) -> Result<(), DbError> {
        match self {
            Conn::Mysql(_) => self.batch("START TRANSACTION").await,
            Conn::Sqlite(_) => self.batch("BEGIN IMMEDIATE").await,
            Conn::Postgres(_) => self.batch("BEGIN").await,
        }
    }

    /// Starts a read-only transaction that sees one consistent snapshot of the whole
    /// database (a dump of several tables then never holds a child without its
    /// parent): REPEATABLE READ on PostgreSQL, a consistent snapshot on MariaDB, a
    /// deferred transaction on SQLite (its reads share one snapshot).
    pub async fn begin_snapshot(&mut self) -> Result<(), DbError> {
        match self {
            Conn::Mysql(_) => {
                // A consistent snapshot is one only under REPEATABLE READ, whatever the
                // server's default isolation is.
                self.batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                self.batch("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
            }
            Conn::Sqlite(_) => self.batch("BEGIN DEFERRED").await,
            Conn::Postgres(_) => self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
        }
    }

    /// Commits the transaction.
    pub async fn commit(&mut self) -> Result<(), DbError> {
        self.batch("COMMIT").await
    }

    /// Rolls the transaction back. A connection that is already gone has nothing
    /// left to roll back, so that is not an error.
    pub async fn rollback(&mut self) -> Result<(), DbError> {
        match self.batch("ROLLBACK").await {
            Err(e) if e.is_connection_lost() => Ok(()),
            other => other,
        }
    }

    /// Resolves a user's table name by ARCHITECTURE.md's rule: the exact name, else the one
    /// table that matches case-insensitively. Unknown or ambiguous names are
    /// [`DbError::Invalid`] listing what exists.
    pub async fn find_table(&mut self, input: &str) -> Result<Table, DbError> {
        self.resolve_table(input, true)
            .await?
            .ok_or_else(|| DbError::Internal(format!("table {input} was neither found nor reported missing")))
    }

    /// Like [`Conn::find_table`], but a name that matches no table is `Ok(None)` (a
    /// table a migration is about to create).
    pub async fn lookup_table(&mut self, input: &str) -> Result<Option<Table>, DbError> {
        self.resolve_table(input, false).await
    }

    async fn resolve_table(&mut self, input: &str, must_exist: bool) -> Result<Option<Table>, DbError> {
        let wanted = TableName::parse(input);
        if let Some(t) = self.describe(&wanted).await? {
            return Ok(Some(t));
        }
        let all = self.list_tables().await?;
        let candidates: Vec<&TableName> = all
            .iter()
            .filter(|t| {
                t.name.eq_ignore_ascii_case(&wanted.name)
                    && match (&wanted.schema, &t.schema) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        (None, None) => true,
                        _ => false,
                    }
            })
            .collect();
        match candidates.as_slice() {
            [one] => Ok(Some(self.describe(one).await?.ok_or_else(|| {
                DbError::Invalid(format!("table {input} disappeared while it was being read"))
            })?)),
            [] if !must_exist => Ok(None),
            [] => {
                let names: Vec<String> = all
                    .iter()
                    .filter(|t| !t.name.starts_with("lockgate_"))
                    .map(|t| t.to_string())
                    .collect();
                Err(DbError::Invalid(format!(
                    "table {input:?} does not exist in this database; tables here: {}",
                    if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
            many => Err(DbError::Invalid(format!(
                "table name {input:?} matches {} tables that differ only in case ({}): give the exact name",
                many.len(),
                many.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}
