//! The SQLite engine module: [`LiteConn`] implements the engine contract of
//! [`crate::conn`] on rusqlite.
//!
//! rusqlite is synchronous, so the connection lives behind a mutex and every operation
//! runs as one `spawn_blocking` task (one per call, never one per row). Values are
//! encoded into SQLite's storage form on the async side ([`Encoded`]): that copy is
//! what lets the blocking task own its data without cloning every `Value`, and it
//! makes binding allocation-free (text and blobs are borrowed from one arena).
//!
//! Storage follows ARCHITECTURE.md: dates, times and timestamps are ISO-8601 text
//! (instants with `+00:00`), JSON is compact text, UUIDs are hyphenated text,
//! booleans are 0/1, decimals are text that a numeric affinity turns into numbers.
//! `query` with kinds reverses it. Numbers written as text are where SQLite changes
//! values on its own: NUMERIC affinity keeps 15 significant digits or a 64-bit
//! integer. So a decimal it would round is that row's error (a TEXT column keeps
//! it), and a JSON document that is such a bare number (a JSON column has NUMERIC
//! affinity) is stored as a blob of its text, which SQLite never converts.
//!
//! The bulk path is one cached `INSERT` reused for every row inside the caller's
//! transaction. SQLite undoes only the failing statement on a constraint error, so
//! a bad row is recorded and the loop goes on: the caller gets every row error of a
//! batch from one pass.
//!
//! Table names: SQLite has no schemas in Lockgate's sense. A [`TableName`] with schema
//! `temp` means the connection's temporary tables (staging), `main` or none means the
//! file; any other "schema" was a dot inside the table's own name and is put back.

use crate::conn::BulkOutcome;
use crate::dialect::Dialect;
use crate::error::{DbError, EngineError};
use crate::types;
use crate::url::{DbUrl, Engine};
use lockgate_core::{Column, Decimal, ForeignKey, Index, Kind, Row, Table, TableName, UniqueConstraint, Value};
use rusqlite::ffi::ErrorCode;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Statement};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

/// How long a statement waits for another connection's lock before SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The code Lockgate uses for errors it finds itself, before SQLite sees the row.
const LOCKGATE_CODE: &str = "lockgate";

const SQLITE: Dialect = Dialect(Engine::Sqlite);

/// One SQLite connection.
pub struct LiteConn {
    /// The connection, shared with the blocking task that uses it. `None` once it was
    /// taken because a task panicked while holding it: its transaction state is then
    /// unknown, so it is closed (which rolls back) rather than reused.
    inner: Arc<Mutex<Option<Connection>>>,
    /// Stops the statement running on the connection from another thread (the
    /// blocking task holds the connection's lock while it runs).
    interrupt: Arc<rusqlite::InterruptHandle>,
    /// Set by [`LiteCancel::cancel`]: work that has not begun yet does not begin.
    cancelled: Arc<AtomicBool>,
}

/// Stops what a [`LiteConn`] runs, from another task.
pub struct LiteCancel {
    interrupt: Arc<rusqlite::InterruptHandle>,
    cancelled: Arc<AtomicBool>,
    inner: Arc<Mutex<Option<Connection>>>,
}

impl LiteCancel {
    /// Marks the connection cancelled (work not begun yet will not run), then
    /// interrupts its statement, again every 20 ms while the connection is busy, for
    /// at most `within`: `sqlite3_interrupt` stops only a statement that is running
    /// when it is called, and the blocking task may not have reached its statement
    /// yet. The connection should be closed afterwards.
    pub async fn cancel(self, within: Duration) {
        self.cancelled.store(true, Ordering::SeqCst);
        let until = std::time::Instant::now() + within;
        loop {
            self.interrupt.interrupt();
            let busy = matches!(self.inner.try_lock(), Err(TryLockError::WouldBlock));
            if !busy || std::time::Instant::now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl LiteConn {
    /// Opens the file of `url`, creating it when missing. A folder that does not
    /// exist or a file that is not a database is [`DbError::Connect`].
    pub async fn connect(url: &DbUrl) -> Result<Self, DbError> {
        Self::open_url(url, true).await
    }

    /// Opens the file of `url` only if it exists (read and write, never create): what
    /// commands that only read use, so that a mistyped path creates nothing. A
    /// missing file is [`DbError::Invalid`] naming it.
    pub async fn connect_existing(url: &DbUrl) -> Result<Self, DbError> {
        let path = url.sqlite_path();
        if !path.is_file() {
            return Err(DbError::Invalid(format!(
                "there is no SQLite database at {}: check the path (commands that only read never create \
                 a database; load, migrate and exec do)",
                path.display()
            )));
        }
        Self::open_url(url, false).await
    }

    async fn open_url(url: &DbUrl, create: bool) -> Result<Self, DbError> {
        let path = url.sqlite_path();
        let conn = tokio::task::spawn_blocking(move || open(&path, create))
            .await
            .map_err(join_error)?
            .map_err(|message| DbError::Connect {
                url: url.redacted(),
                message,
            })?;
        Ok(LiteConn {
            interrupt: Arc::new(conn.get_interrupt_handle()),
            cancelled: Arc::default(),
            inner: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// Changes how long statements wait for another connection's lock (5 s by
    /// default) before failing with SQLITE_BUSY, a transient error.
    pub async fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), DbError> {
        self.run(move |conn| {
            conn.busy_timeout(timeout)
                .map_err(|e| sqlite_error("setting the busy timeout", &e, None))
        })
        .await
    }

    /// Runs statements without parameters or results.
    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_string();
        self.run(move |conn| {
            conn.execute_batch(&sql)
                .map_err(|e| sqlite_error(&statement_context(&sql), &e, None))
        })
        .await
    }

    /// Runs one statement with bound values; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let params = Encoded::params(params)?;
        let sql = sql.to_string();
        self.run(move |conn| {
            let context = statement_context(&sql);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| sqlite_error(&context, &e, None))?;
            params.bind_all(&mut stmt, &context)?;
            let changed = stmt.raw_execute().map_err(|e| sqlite_error(&context, &e, None))?;
            Ok(changed as u64)
        })
        .await
    }

    /// Runs a query. With `kinds` (one per result column), each cell is typed for its
    /// column: text becomes dates, decimals, JSON…; a cell that does not fit is
    /// [`DbError::Invalid`] naming the column. Without, cells keep their storage class.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        let params = Encoded::params(params)?;
        let sql = sql.to_string();
        // Reading is lenient where writing is strict: SQLite keeps a NUMERIC integer
        // exactly whatever its digits, so the 15-digit limit applies to writes only.
        let kinds: Option<Vec<Kind>> = kinds.map(|ks| ks.iter().map(read_kind).collect());
        self.run(move |conn| {
            let context = statement_context(&sql);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| sqlite_error(&context, &e, None))?;
            params.bind_all(&mut stmt, &context)?;
            let names = result_names(&stmt, kinds.as_deref(), &context)?;
            let mut out = Vec::new();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(|e| sqlite_error(&context, &e, None))? {
                out.push(decode_row(
                    row,
                    &names,
                    kinds.as_deref(),
                    out.len() as u64 + 1,
                    &context,
                )?);
            }
            Ok(out)
        })
        .await
    }

    /// Runs a query and hands its rows to `f` in pages of up to `page` rows. The
    /// statement steps in a blocking task that hands each page over a channel holding
    /// one, so it reads only as fast as pages are taken: a result of any size is read
    /// with the memory of a few pages (one being read, one waiting, one handled).
    /// Rows are typed as [`LiteConn::query`] types them (one decoder, `decode_row`).
    ///
    /// Outside a transaction, the statement's implicit read transaction lasts the
    /// whole scan, until the last page is taken: with the rollback journal this file
    /// uses, its SHARED lock keeps every other connection from committing a write
    /// (they wait out their busy timeout) for that long, and in WAL mode a checkpoint
    /// cannot pass its snapshot. Callers page a table this way inside a transaction
    /// they hold anyway (`dump`'s snapshot), or accept the wait.
    pub async fn query_pages<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
        page: usize,
        f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        let params = Encoded::params(params)?;
        let sql = sql.to_string();
        let kinds: Option<Vec<Kind>> = kinds.map(|ks| ks.iter().map(read_kind).collect());
        let page = page.max(1);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<Value>>>(1);
        let work = self.run(move |conn| {
            let context = statement_context(&sql);
            let mut stmt = conn.prepare(&sql).map_err(|e| sqlite_error(&context, &e, None))?;
            params.bind_all(&mut stmt, &context)?;
            let names = result_names(&stmt, kinds.as_deref(), &context)?;
            let mut rows = stmt.raw_query();
            let mut out = Vec::with_capacity(page);
            let mut n = 0u64;
            while let Some(row) = rows.next().map_err(|e| sqlite_error(&context, &e, None))? {
                n += 1;
                out.push(decode_row(row, &names, kinds.as_deref(), n, &context)?);
                // A send fails only when the caller stopped taking pages (its error).
                if out.len() == page
                    && tx
                        .blocking_send(std::mem::replace(&mut out, Vec::with_capacity(page)))
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !out.is_empty() {
                let _ = tx.blocking_send(out);
            }
            Ok(())
        });
        let take = async move {
            while let Some(rows) = rx.recv().await {
                f(rows)?;
            }
            Ok::<(), E>(())
        };
        let (read, taken) = tokio::join!(work, take);
        // The caller's error stopped the read; a read error ended the pages early.
        taken?;
        read?;
        Ok(())
    }

    /// The result columns of a query (names and kinds from their declared types;
    /// an expression has none and is [`Kind::Any`]), from preparing it; nothing runs.
    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<(String, Kind)>, DbError> {
        let sql = sql.to_string();
        self.run(move |conn| {
            let context = statement_context(&sql);
            let stmt = conn.prepare(&sql).map_err(|e| sqlite_error(&context, &e, None))?;
            Ok(stmt
                .columns()
                .map(|c| {
                    (
                        c.name().to_string(),
                        c.decl_type().map_or(Kind::Any, types::sqlite_kind),
                    )
                })
                .collect())
        })
        .await
    }

    /// Every ordinary table of the file, sorted by name (SQLite's own `sqlite_*`
    /// tables, views, virtual tables and their shadow tables left out).
    pub async fn list_tables(&mut self) -> Result<Vec<TableName>, DbError> {
        self.run(|conn| {
            let context = "listing tables";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                )
                .map_err(|e| sqlite_error(context, &e, None))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| sqlite_error(context, &e, None))?;
            Ok(names.into_iter().map(TableName::new).collect())
        })
        .await
    }

    /// One table by its exact name, or `None`.
    pub async fn describe(&mut self, name: &TableName) -> Result<Option<Table>, DbError> {
        let (schema, table) = resolve(name);
        self.run(move |conn| {
            describe_table(conn, schema, &table)
                .map_err(|e| sqlite_error(&format!("describing table {}", SQLITE.quote(&table)), &e, None))
        })
        .await
    }

    /// Inserts `rows` with one prepared statement reused for every row, inside the
    /// caller's transaction. A row SQLite rejects (a constraint, a type, a size) is
    /// recorded with its index and the loop goes on; a lock (SQLITE_BUSY/LOCKED) or
    /// an I/O error fails the whole call. With `ordinal`, that extra column receives
    /// each row's 0-based index in `rows`.
    pub async fn bulk_insert(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        let (schema, table) = resolve(target);
        let context = format!("inserting rows into {}", SQLITE.quote(&table));
        // Unqualified unless a schema was named, so that the name resolves as SQLite
        // resolves it everywhere else (a temporary table first).
        let target_sql = match target.schema.as_deref() {
            Some(s) if s.eq_ignore_ascii_case(schema) => format!("{schema}.{}", SQLITE.quote(&table)),
            _ => SQLITE.quote(&table),
        };
        let (data, mut rejected) = Encoded::rows(columns, rows)?;
        let mut insert_columns: Vec<String> = columns.to_vec();
        if let Some(ordinal) = ordinal {
            insert_columns.push(ordinal.to_string());
        }
        let sql = if insert_columns.is_empty() {
            format!("INSERT INTO {target_sql} DEFAULT VALUES")
        } else {
            let params: Vec<String> = (1..=insert_columns.len()).map(|n| SQLITE.param(n)).collect();
            format!(
                "INSERT INTO {target_sql} ({}) VALUES ({})",
                SQLITE.columns(None, &insert_columns),
                params.join(", ")
            )
        };
        let columns = columns.to_vec();
        let with_ordinal = ordinal.is_some();
        let row_count = rows.len();
        self.run(move |conn| {
            let job = BulkJob {
                conn,
                table: &table,
                columns: &columns,
                data: &data,
                rejected: &rejected,
                context: &context,
            };
            let (written, mut row_errors) = job.insert_all(&sql, row_count, with_ordinal)?;
            // Rows refused before SQLite saw them and rows SQLite refused, in input order.
            row_errors.append(&mut rejected);
            row_errors.sort_by_key(|(index, _)| *index);
            Ok(BulkOutcome { written, row_errors })
        })
        .await
    }

    /// What stops the statement this connection runs, from elsewhere.
    pub fn canceller(&self) -> LiteCancel {
        LiteCancel {
            interrupt: Arc::clone(&self.interrupt),
            cancelled: Arc::clone(&self.cancelled),
            inner: Arc::clone(&self.inner),
        }
    }

    /// Adds `lockgate verify`'s row hash and wrapping sum to this connection
    /// ([`crate::checksum::register_sqlite`]) for rows of `fields` (each column's
    /// kind, as the reader types it, and how it enters the canonical text).
    pub async fn register_checksum(&mut self, fields: Vec<(Kind, crate::checksum::Canon)>) -> Result<(), DbError> {
        self.run(move |conn| {
            crate::checksum::register_sqlite(conn, fields)
                .map_err(|e| sqlite_error("adding the row-hash functions", &e, None))
        })
        .await
    }

    /// Whether the connection is gone (a task panicked while using it). A connection
    /// busy in a task that is still running is not closed.
    pub fn is_closed(&self) -> bool {
        match self.inner.try_lock() {
            Ok(guard) => guard.is_none(),
            Err(TryLockError::Poisoned(_)) => true,
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// Runs `work` on a blocking thread with the connection.
    async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let cancelled = Arc::clone(&self.cancelled);
        tokio::task::spawn_blocking(move || {
            let mut guard = match inner.lock() {
                Ok(guard) => guard,
                Err(poisoned) => {
                    // A task panicked mid-operation: close the connection (rolling back
                    // whatever it had begun) and say so, once and from then on.
                    let mut guard = poisoned.into_inner();
                    guard.take();
                    inner.clear_poison();
                    guard
                }
            };
            if cancelled.load(Ordering::SeqCst) {
                return Err(DbError::engine(
                    "running a statement",
                    EngineError::new("lockgate", "the statement was cancelled before it began"),
                ));
            }
            match guard.as_mut() {
                Some(conn) => work(conn),
                None => Err(closed_error()),
            }
        })
        .await
        .map_err(join_error)?
    }
}

/// Opens and configures a connection, creating the file only when `create`; errors
/// are one line for [`DbError::Connect`].
fn open(path: &Path, create: bool) -> Result<Connection, String> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(format!(
                "the folder {} does not exist, so the database file {} cannot be created there: create the folder or give another path",
                parent.display(),
                path.display()
            ));
        }
    }
    // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI with options.
    // NO_MUTEX is safe because the LiteConn mutex already serializes every use.
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let fail = |e: rusqlite::Error| format!("cannot open {}: {}", path.display(), one_line(&e.to_string()));
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // The journal mode stays SQLite's default rollback journal: WAL would add -wal and
    // -shm files next to the database, which users copying one file would miss.
    conn.execute_batch("PRAGMA foreign_keys = ON").map_err(fail)?;
    // SQLite opens lazily; reading the schema now makes a file that is not a database
    // (or is locked exclusively) fail at connect, with its path, not at first use.
    let foreign_keys: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .and_then(|()| conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)))
        .map_err(fail)?;
    if foreign_keys != 1 {
        return Err(format!("cannot enable foreign keys on {}", path.display()));
    }
    Ok(conn)
}

/// Splits a [`TableName`] into SQLite's schema (`main` or `temp`) and table name.
fn resolve(name: &TableName) -> (&'static str, String) {
    match name.schema.as_deref() {
        None => ("main", name.name.clone()),
        Some(s) if s.eq_ignore_ascii_case("main") => ("main", name.name.clone()),
        Some(s) if s.eq_ignore_ascii_case("temp") => ("temp", name.name.clone()),
        // `TableName::parse` split a dotted name; SQLite table names may contain dots.
        Some(s) => ("main", format!("{s}.{}", name.name)),
    }
}

// ---------------------------------------------------------------------------------
// Encoding values for SQLite.

/// A value in SQLite's storage form; text and blobs are byte ranges of the arena.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
    /// A decimal's text that a numeric affinity would not keep exactly: the insert
    /// refuses the row for such a column, and binds the text for any other.
    Decimal(usize, usize, Fit),
    /// A JSON document that is a bare number a numeric affinity would not keep
    /// exactly: bound as a blob of its text for such a column (SQLite never converts
    /// blobs), as text otherwise.
    JsonNumber(usize, usize, Fit),
}

/// Which column affinities keep a number written as text exactly. SQLite converts
/// such text for INTEGER, REAL and NUMERIC affinity: an integer literal within 64
/// bits to INTEGER, anything else through a double, exact to 15 significant digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// At most 15 significant digits within a double's range: every affinity.
    Exact,
    /// An integer literal within 64 bits: INTEGER and NUMERIC (REAL would round it).
    Integer,
    /// Only TEXT and BLOB affinity (no conversion).
    TextOnly,
}

impl Fit {
    /// Classifies a normalized decimal text (`-?digits[.digits]`) that is bound as is
    /// (`integer_literal`: the bound text has no point or exponent).
    fn of_decimal(text: &str, integer_literal: bool) -> Fit {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let significant = if int.is_empty() {
            frac.trim_start_matches('0').len()
        } else {
            int.len() + frac.len()
        };
        if integer_literal && text.parse::<i64>().is_ok() {
            return if significant <= 15 { Fit::Exact } else { Fit::Integer };
        }
        // Through a double: 15 digits are exact; the bounds keep it within the
        // normal range, so no overflow to infinity and no underflow to zero.
        if significant <= 15 && int.len() <= 15 && frac.len() <= 300 {
            Fit::Exact
        } else {
            Fit::TextOnly
        }
    }

    /// Classifies a JSON number's text as serde_json writes it (exponents kept).
    fn of_json_number(text: &str) -> Fit {
        let integer_literal = text
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
        match Decimal::parse(text) {
            Some(d) => Fit::of_decimal(d.as_str(), integer_literal),
            None => Fit::TextOnly,
        }
    }
}

/// SQLite's column affinity, from the declared type (datatype3.html, section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    fn of(declared: &str, strict: bool) -> Affinity {
        let upper = declared.to_ascii_uppercase();
        if strict && upper.trim() == "ANY" {
            // STRICT tables keep ANY values exactly as given.
            Affinity::Blob
        } else if upper.contains("INT") {
            Affinity::Integer
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            Affinity::Text
        } else if upper.contains("BLOB") || upper.trim().is_empty() {
            Affinity::Blob
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    /// Whether a number written as text of this fit keeps its value in the column.
    fn keeps(self, fit: Fit) -> bool {
        match self {
            Affinity::Text | Affinity::Blob => true,
            Affinity::Integer | Affinity::Numeric => fit != Fit::TextOnly,
            Affinity::Real => fit == Fit::Exact,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Affinity::Integer => "INTEGER",
            Affinity::Text => "TEXT",
            Affinity::Blob => "BLOB",
            Affinity::Real => "REAL",
            Affinity::Numeric => "NUMERIC",
        }
    }
}

/// Values encoded for binding: cells (row-major when they hold rows) and one arena for
/// their bytes, so that encoding makes a few large allocations, not one per value.
#[derive(Debug, Default)]
struct Encoded {
    cells: Vec<Cell>,
    arena: Vec<u8>,
}

impl Encoded {
    /// Encodes the parameters of one statement.
    fn params(params: &[Value]) -> Result<Encoded, DbError> {
        let mut enc = Encoded::default();
        for (i, v) in params.iter().enumerate() {
            enc.push(v)
                .map_err(|reason| DbError::Invalid(format!("parameter {}: {reason}", i + 1)))?;
        }
        Ok(enc)
    }

    /// Encodes rows for a bulk insert. A value SQLite cannot store unchanged (a
    /// non-finite float, which it would turn into NULL) rejects its row, returned as
    /// a row error with the `lockgate` code; the row's cells are then all NULL and
    /// the insert loop skips it.
    fn rows(columns: &[String], rows: &[Row]) -> Result<(Encoded, RowErrors), DbError> {
        let width = columns.len();
        let arena_bytes: usize = rows.iter().flat_map(|r| &r.values).map(arena_bytes).sum();
        let mut enc = Encoded {
            cells: Vec::with_capacity(rows.len() * width),
            arena: Vec::with_capacity(arena_bytes),
        };
        let mut rejected = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if row.values.len() != width {
                return Err(DbError::Internal(format!(
                    "row {} (line {}) has {} values for {width} columns",
                    index,
                    row.line,
                    row.values.len()
                )));
            }
            let start = enc.cells.len();
            for (value, column) in row.values.iter().zip(columns) {
                if let Err(reason) = enc.push(value) {
                    enc.cells.truncate(start);
                    enc.cells.resize(start + width, Cell::Null);
                    let mut error = EngineError::new(LOCKGATE_CODE, reason);
                    error.column = Some(column.clone());
                    rejected.push((index, error));
                    break;
                }
            }
        }
        Ok((enc, rejected))
    }

    /// Appends one value; `Err` says why SQLite cannot hold it unchanged.
    fn push(&mut self, value: &Value) -> Result<(), String> {
        let cell = match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Int(i64::from(*b)),
            Value::Int(i) => Cell::Int(*i),
            Value::Float(f) if f.is_finite() => Cell::Real(*f),
            Value::Float(f) => return Err(format!("{f} is not finite; SQLite would store NULL")),
            Value::Decimal(d) => {
                let text = d.as_str();
                let (a, b) = self.append(text.as_bytes());
                match Fit::of_decimal(text, !text.contains('.')) {
                    Fit::Exact => Cell::Text(a, b),
                    fit => Cell::Decimal(a, b, fit),
                }
            }
            Value::Text(s) => {
                let (a, b) = self.append(s.as_bytes());
                Cell::Text(a, b)
            }
            Value::Bytes(bytes) => {
                let (a, b) = self.append(bytes);
                Cell::Blob(a, b)
            }
            Value::Json(j) => {
                let start = self.arena.len();
                serde_json::to_writer(&mut self.arena, j).map_err(|e| format!("cannot write JSON: {e}"))?;
                let end = self.arena.len();
                match j {
                    serde_json::Value::Number(n) => match Fit::of_json_number(&n.to_string()) {
                        Fit::Exact => Cell::Text(start, end),
                        fit => Cell::JsonNumber(start, end, fit),
                    },
                    _ => Cell::Text(start, end),
                }
            }
            // Value's Display is the storage text: `YYYY-MM-DD`, `HH:MM:SS[.f]`,
            // `YYYY-MM-DD HH:MM:SS[.f][+00:00]`, hyphenated UUIDs.
            Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) | Value::Uuid(_) => {
                let start = self.arena.len();
                write!(self.arena, "{value}").map_err(|e| format!("cannot format {}: {e}", value.type_name()))?;
                Cell::Text(start, self.arena.len())
            }
        };
        self.cells.push(cell);
        Ok(())
    }

    /// Appends bytes to the arena; returns their range.
    fn append(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        (start, self.arena.len())
    }

    /// The cell as rusqlite's borrowed value: binding copies nothing on our side.
    fn output(&self, cell: Cell) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(match cell {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(i),
            Cell::Real(f) => ValueRef::Real(f),
            Cell::Text(a, b) | Cell::Decimal(a, b, _) | Cell::JsonNumber(a, b, _) => ValueRef::Text(&self.arena[a..b]),
            Cell::Blob(a, b) => ValueRef::Blob(&self.arena[a..b]),
        })
    }

    /// Binds every cell as a statement's parameters, after checking their number
    /// (SQLite would silently bind NULL to a parameter left out).
    fn bind_all(&self, stmt: &mut Statement<'_>, context: &str) -> Result<(), DbError> {
        let expected = stmt.parameter_count();
        if expected != self.cells.len() {
            return Err(DbError::Internal(format!(
                "{context}: the statement takes {expected} parameters but {} were given",
                self.cells.len()
            )));
        }
        for (i, cell) in self.cells.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, self.output(*cell))
                .map_err(|e| sqlite_error(context, &e, None))?;
        }
        Ok(())
    }
}

/// About how many arena bytes a value takes once encoded, to size the arena once.
fn arena_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
        Value::Decimal(d) => d.as_str().len(),
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Date(_) => 10,
        Value::Time(_) => 15,
        Value::Timestamp(_) => 26,
        Value::TimestampTz(_) => 32,
        Value::Uuid(_) => 36,
        Value::Json(_) => 64,
    }
}

// ---------------------------------------------------------------------------------
// The bulk insert loop.

/// Rows rejected one by one: (index in the input, error).
type RowErrors = Vec<(usize, EngineError)>;

/// What one bulk insert works with on the blocking thread.
struct BulkJob<'a> {
    conn: &'a Connection,
    table: &'a str,
    columns: &'a [String],
    data: &'a Encoded,
    /// Rows refused while encoding, sorted by index.
    rejected: &'a [(usize, EngineError)],
    context: &'a str,
}

impl BulkJob<'_> {
    /// Executes the insert once per row; returns rows written and SQLite's row errors.
    fn insert_all(&self, sql: &str, row_count: usize, with_ordinal: bool) -> Result<(u64, RowErrors), DbError> {
        let whole = |e: &rusqlite::Error| sqlite_error(self.context, e, Some(self.table));
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| whole(&e))?;
        let in_transaction = !self.conn.is_autocommit();
        let width = self.columns.len();
        let mut written = 0u64;
        let mut row_errors = Vec::new();
        let mut rejected = self.rejected.iter().map(|(i, _)| *i).peekable();
        let mut probes: Option<Vec<FkProbe>> = None;
        let affinities = target_affinities(self.conn, self.table, self.columns);
        'rows: for index in 0..row_count {
            if rejected.next_if_eq(&index).is_some() {
                continue;
            }
            let cells = &self.data.cells[index * width..(index + 1) * width];
            for (i, cell) in cells.iter().enumerate() {
                let output = match *cell {
                    Cell::Decimal(a, b, fit) if !affinities[i].keeps(fit) => {
                        row_errors.push((index, self.inexact(i, &self.data.arena[a..b], affinities[i])));
                        continue 'rows;
                    }
                    Cell::JsonNumber(a, b, fit) if !affinities[i].keeps(fit) => {
                        ToSqlOutput::Borrowed(ValueRef::Blob(&self.data.arena[a..b]))
                    }
                    other => self.data.output(other),
                };
                stmt.raw_bind_parameter(i + 1, output).map_err(|e| whole(&e))?;
            }
            if with_ordinal {
                stmt.raw_bind_parameter(width + 1, index as i64)
                    .map_err(|e| whole(&e))?;
            }
            match stmt.raw_execute() {
                Ok(changed) => written += changed as u64,
                Err(e) if is_row_error(&e) => {
                    let mut error = engine_error(&e, Some(self.table));
                    if error.code == "SQLITE_CONSTRAINT_FOREIGNKEY" && error.column.is_none() {
                        let probes = probes.get_or_insert_with(|| fk_probes(self.conn, self.table, self.columns));
                        if let Some(probe) = probes.iter().find(|p| p.parent_missing(self.conn, self.data, cells)) {
                            error.column = Some(probe.child_columns.join(", "));
                            error.constraint = Some(probe.name.clone());
                        }
                    }
                    // ON CONFLICT ROLLBACK or RAISE(ROLLBACK) end the caller's whole
                    // transaction: going on would write rows outside it.
                    if in_transaction && self.conn.is_autocommit() {
                        return Err(DbError::engine(
                            format!("{} (row {index}): the transaction was rolled back", self.context),
                            error,
                        ));
                    }
                    row_errors.push((index, error));
                }
                Err(e) => return Err(whole(&e)),
            }
        }
        Ok((written, row_errors))
    }

    /// The row error for a decimal the column's affinity would change.
    fn inexact(&self, column: usize, text: &[u8], affinity: Affinity) -> EngineError {
        let mut error = EngineError::new(
            LOCKGATE_CODE,
            format!(
                "{} has more digits than SQLite keeps exactly in a column of {} affinity \
                 (15 significant digits, or a 64-bit integer): declare the column TEXT to keep them",
                String::from_utf8_lossy(text),
                affinity.name()
            ),
        );
        error.column = Some(self.columns[column].clone());
        error
    }
}

/// The affinity of each inserted column, found the way the INSERT finds its table
/// (a temporary table first). Unknown means NUMERIC, the affinity that converts most.
fn target_affinities(conn: &Connection, table: &str, columns: &[String]) -> Vec<Affinity> {
    let lookup = || -> rusqlite::Result<Vec<Affinity>> {
        let strict: bool = conn
            .prepare_cached(
                "SELECT strict FROM pragma_table_list WHERE name = ?1 COLLATE NOCASE \
                 ORDER BY schema = 'temp' DESC LIMIT 1",
            )?
            .query_row([table], |r| r.get(0))
            .optional()?
            .unwrap_or(false);
        let mut stmt = conn.prepare_cached("SELECT name, type FROM pragma_table_xinfo(?1)")?;
        let declared = stmt
            .query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(columns
            .iter()
            .map(|c| {
                declared
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(c))
                    .map_or(Affinity::Numeric, |(_, t)| Affinity::of(t, strict))
            })
            .collect())
    };
    lookup().unwrap_or_else(|_| vec![Affinity::Numeric; columns.len()])
}

/// Whether SQLite rejected only this row (it undid just this statement): constraint
/// violations, type mismatches and oversized values.
fn is_row_error(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

/// A check that a row's parent exists for one foreign key, used only after SQLite
/// said "FOREIGN KEY constraint failed" (it does not say which key).
struct FkProbe {
    name: String,
    child_columns: Vec<String>,
    /// Positions of the child columns in the inserted columns.
    positions: Vec<usize>,
    /// `SELECT 1 FROM parent WHERE pcol1 = ?1 AND …`.
    sql: String,
}

impl FkProbe {
    fn parent_missing(&self, conn: &Connection, data: &Encoded, cells: &[Cell]) -> bool {
        let values: Vec<Cell> = self.positions.iter().map(|p| cells[*p]).collect();
        // A key with a NULL part references nothing, so SQLite does not check it.
        if values.iter().any(|c| matches!(c, Cell::Null)) {
            return false;
        }
        let found = conn.prepare_cached(&self.sql).and_then(|mut stmt| {
            for (i, cell) in values.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, data.output(*cell))?;
            }
            let mut rows = stmt.raw_query();
            Ok(rows.next()?.is_some())
        });
        matches!(found, Ok(false))
    }
}

/// Probes for the target's foreign keys whose child columns are all inserted (a
/// column left to its default cannot be checked from the row).
fn fk_probes(conn: &Connection, table: &str, columns: &[String]) -> Vec<FkProbe> {
    // The target may be a temporary table; the pragma without schema finds either.
    let schema = if table_exists(conn, "temp", table).unwrap_or(false) {
        "temp"
    } else {
        "main"
    };
    let Ok(keys) = foreign_keys(conn, schema, table) else {
        return Vec::new();
    };
    keys.into_iter()
        .filter_map(|fk| {
            let positions: Option<Vec<usize>> = fk
                .columns
                .iter()
                .map(|(child, _)| columns.iter().position(|c| c.eq_ignore_ascii_case(child)))
                .collect();
            let condition: Vec<String> = fk
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, parent))| format!("{} = {}", SQLITE.quote(parent), SQLITE.param(i + 1)))
                .collect();
            Some(FkProbe {
                sql: format!(
                    "SELECT 1 FROM {} WHERE {} LIMIT 1",
                    SQLITE.quote(&fk.references.name),
                    condition.join(" AND ")
                ),
                child_columns: fk.columns.into_iter().map(|(child, _)| child).collect(),
                positions: positions?,
                name: fk.name,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Decoding query results.

/// The kind used to read a column: NUMERIC's 15-digit limit is about what SQLite
/// converts on write; what it already stores is read back whole.
fn read_kind(kind: &Kind) -> Kind {
    match kind {
        Kind::Decimal { precision, scale, .. } => Kind::Decimal {
            precision: *precision,
            scale: *scale,
            max_significant: None,
        },
        other => other.clone(),
    }
}

/// The result's column names, once `kinds` (when given) is checked to hold one kind
/// per column: what [`decode_row`] needs for every row of a query.
fn result_names(stmt: &rusqlite::Statement<'_>, kinds: Option<&[Kind]>, context: &str) -> Result<Vec<String>, DbError> {
    let width = stmt.column_count();
    if let Some(kinds) = kinds.filter(|k| k.len() != width) {
        return Err(DbError::Internal(format!(
            "{context}: the query returns {width} columns but {} kinds were given",
            kinds.len()
        )));
    }
    Ok(stmt.column_names().map(str::to_string).collect())
}

/// Row `n` (from 1) of a result, each cell typed by its kind (see [`decode`]); a
/// cell that does not fit is [`DbError::Invalid`] naming column and row. The one
/// decoder of `query` and `query_pages`, as `decode_row` is in pg.rs and mysql.rs.
fn decode_row(
    row: &rusqlite::Row<'_>,
    names: &[String],
    kinds: Option<&[Kind]>,
    n: u64,
    context: &str,
) -> Result<Vec<Value>, DbError> {
    let mut values = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let cell = row.get_ref(i).map_err(|e| sqlite_error(context, &e, None))?;
        let value = decode(cell, kinds.map(|k| &k[i]))
            .map_err(|reason| DbError::Invalid(format!("column {name:?}, row {n} of the result: {reason}")))?;
        values.push(value);
    }
    Ok(values)
}

/// Types one cell; `Err` is the reason, without the column.
pub(crate) fn decode(cell: ValueRef<'_>, kind: Option<&Kind>) -> Result<Value, String> {
    let Some(kind) = kind.filter(|k| **k != Kind::Any) else {
        return Ok(match cell {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(f) if f.is_finite() => Value::Float(f),
            ValueRef::Real(f) => return Err(format!("{f} is not finite")),
            ValueRef::Text(t) => Value::Text(utf8(t)?.to_string()),
            ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
        });
    };
    let typed = match cell {
        ValueRef::Null => return Ok(Value::Null),
        // JSON columns have NUMERIC affinity, so SQLite turns the documents `5` and
        // `12.5` into numbers; they are still those JSON documents.
        ValueRef::Integer(i) if *kind == Kind::Json => return Ok(Value::Json(i.into())),
        ValueRef::Real(f) if *kind == Kind::Json => {
            return serde_json::Number::from_f64(f)
                .map(|n| Value::Json(n.into()))
                .ok_or_else(|| format!("{f} is not finite"));
        }
        ValueRef::Integer(i) => kind.check(Value::Int(i)),
        ValueRef::Real(f) if !f.is_finite() => return Err(format!("{f} is not finite")),
        ValueRef::Real(f) => match kind {
            Kind::Decimal { .. } => {
                let d = decimal_from_real(f).ok_or_else(|| format!("{f} is not a decimal number"))?;
                kind.check(Value::Decimal(d))
            }
            _ => kind.check(Value::Float(f)),
        },
        ValueRef::Text(t) => kind.parse_text(utf8(t)?),
        // A UUID stored as its 16 bytes is common in SQLite and unambiguous.
        ValueRef::Blob(b) if *kind == Kind::Uuid && b.len() == 16 => {
            return uuid::Uuid::from_slice(b).map(Value::Uuid).map_err(|e| e.to_string());
        }
        // A bare JSON number too long for a numeric affinity is stored as a blob of
        // its text (see `Cell::JsonNumber`).
        ValueRef::Blob(b) if *kind == Kind::Json => kind.parse_text(utf8(b)?),
        ValueRef::Blob(b) => kind.check(Value::Bytes(b.to_vec())),
    };
    typed.map_err(|e| e.to_string())
}

fn utf8(t: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(t).map_err(|e| format!("text is not valid UTF-8 ({e})"))
}

/// A NUMERIC cell that SQLite stored as REAL, as the decimal it stands for. Values
/// written through NUMERIC affinity have at most 15 significant digits and come back
/// exactly; a REAL with more came from arithmetic, and is read the way SQLite prints
/// it, to 15 significant digits.
fn decimal_from_real(f: f64) -> Option<Decimal> {
    let shortest = Decimal::from_f64(f)?;
    if shortest.significant_digits() <= 15 {
        return Some(shortest);
    }
    let rounded = Decimal::parse(&format!("{f:.14e}"))?;
    rounded.with_scale(rounded.significant_scale())
}

// ---------------------------------------------------------------------------------
// Introspection.

fn table_exists(conn: &Connection, schema: &str, name: &str) -> rusqlite::Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT name FROM pragma_table_list WHERE schema = ?1 AND type = 'table' AND name = ?2")?;
    let names = stmt
        .query_map([schema, name], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    // Verify the exact spelling in Rust rather than trust the SQL comparison's collation.
    Ok(names.iter().any(|n| n == name))
}

/// A table's definition from SQLite's pragmas, or `None` when no table has exactly
/// this name.
fn describe_table(conn: &Connection, schema: &str, name: &str) -> rusqlite::Result<Option<Table>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, wr FROM pragma_table_list WHERE schema = ?1 AND type = 'table' AND name = ?2")?;
    let found = stmt
        .query_map([schema, name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let Some((_, without_rowid)) = found.into_iter().find(|(n, _)| n == name) else {
        return Ok(None);
    };

    // (name, declared type, notnull, default, pk position, hidden)
    let mut stmt = conn.prepare_cached(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1, ?2) ORDER BY cid",
    )?;
    let raw = stmt
        .query_map([name, schema], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut pk: Vec<(i64, String)> = raw.iter().filter(|c| c.4 > 0).map(|c| (c.4, c.0.clone())).collect();
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    let columns = raw
        .into_iter()
        // Hidden 1 is a virtual table's hidden column; ordinary tables have none.
        .filter(|c| c.5 != 1)
        .map(|(column, declared, notnull, default, pk_pos, hidden)| {
            // An INTEGER PRIMARY KEY (exactly that type, in a rowid table) is the
            // rowid: SQLite assigns it when the insert gives none or NULL.
            let rowid_alias =
                pk_pos > 0 && primary_key.len() == 1 && !without_rowid && declared.eq_ignore_ascii_case("INTEGER");
            let generated = matches!(hidden, 2..=3);
            // The collation decides which keys are equal (NOCASE: `A` = `a`); no
            // pragma gives it, SQLite's column metadata does. BINARY is the default.
            let collation = conn
                .column_metadata(Some(schema), name, column.as_str())
                .ok()
                .and_then(|m| m.1.and_then(|c| c.to_str().ok()).map(str::to_string))
                .filter(|c| !c.eq_ignore_ascii_case("BINARY"));
            Column {
                kind: types::sqlite_kind(&declared),
                data_type: declared,
                nullable: !(notnull || rowid_alias || (without_rowid && pk_pos > 0)),
                default,
                auto: rowid_alias || generated,
                collation,
                name: column,
            }
        })
        .collect();

    let mut unique = Vec::new();
    let mut indexes = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT name, \"unique\", origin FROM pragma_index_list(?1, ?2) ORDER BY name")?;
    let listed = stmt
        .query_map([name, schema], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (index, is_unique, origin) in listed {
        // The primary key's own index is the primary key, already listed.
        if origin == "pk" {
            continue;
        }
        let mut stmt = conn.prepare_cached("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")?;
        let index_columns: Vec<String> = stmt
            .query_map([index.as_str(), schema], |r| r.get::<_, Option<String>>(0))?
            .map(|c| c.map(|c| c.unwrap_or_else(|| "(expression)".to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if origin == "u" {
            unique.push(UniqueConstraint {
                name: index.clone(),
                columns: index_columns.clone(),
            });
        }
        indexes.push(Index {
            name: index,
            columns: index_columns,
            unique: is_unique,
        });
    }

    Ok(Some(Table {
        name: TableName {
            schema: (schema == "temp").then(|| "temp".to_string()),
            name: name.to_string(),
        },
        columns,
        primary_key,
        unique,
        foreign_keys: foreign_keys(conn, schema, name)?,
        indexes,
        // SQLite checks CHECK constraints row by row during the bulk insert, so no
        // set-based check needs their expressions.
        checks: Vec::new(),
        engine: None,
        unchecked: Vec::new(),
    }))
}

/// A table's foreign keys. SQLite does not report constraint names, so each gets
/// PostgreSQL's default name, `table_childcols_fkey`. A reference without parent
/// columns means the parent's primary key, looked up here.
fn foreign_keys(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<ForeignKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, ?2) ORDER BY id, seq",
    )?;
    let rows = stmt
        .query_map([table, schema], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Parent table and (child column, parent column or NULL) pairs, by key id.
    type Pairs = Vec<(String, Option<String>)>;
    let mut grouped: BTreeMap<i64, (String, Pairs)> = BTreeMap::new();
    for (id, parent, from, to) in rows {
        grouped
            .entry(id)
            .or_insert_with(|| (parent, Vec::new()))
            .1
            .push((from, to));
    }
    let mut keys = Vec::new();
    for (parent, pairs) in grouped.into_values() {
        // The reference is spelled as written in CREATE TABLE; SQLite resolves it
        // case-insensitively, so report the parent's actual name.
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM pragma_table_list WHERE schema = ?1 AND type = 'table' AND name = ?2 COLLATE NOCASE",
        )?;
        let parent = stmt
            .query_row([schema, parent.as_str()], |r| r.get::<_, String>(0))
            .optional()?
            .unwrap_or(parent);
        let parent_key: Vec<String> = if pairs.iter().any(|(_, to)| to.is_none()) {
            let mut stmt =
                conn.prepare_cached("SELECT name FROM pragma_table_info(?1, ?2) WHERE pk > 0 ORDER BY pk")?;
            let names = stmt
                .query_map([parent.as_str(), schema], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            names
        } else {
            Vec::new()
        };
        let columns: Vec<(String, String)> = pairs
            .into_iter()
            .enumerate()
            .map(|(i, (from, to))| {
                let to = to.or_else(|| parent_key.get(i).cloned()).unwrap_or_default();
                (from, to)
            })
            .collect();
        let child: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        keys.push(ForeignKey {
            name: format!("{table}_{}_fkey", child.join("_")),
            columns,
            references: TableName::new(parent),
        });
    }
    Ok(keys)
}

// ---------------------------------------------------------------------------------
// Errors.

/// A rusqlite error as [`DbError::Engine`] with what Lockgate was doing.
fn sqlite_error(context: &str, e: &rusqlite::Error, table: Option<&str>) -> DbError {
    DbError::engine(context, engine_error(e, table))
}

/// A rusqlite error as an [`EngineError`]: the extended result code's name, SQLite's
/// message, the column or constraint the message names, and whether it is a lock
/// conflict worth retrying. `table` (the statement's target) helps strip `table.`
/// from the column SQLite names.
fn engine_error(e: &rusqlite::Error, table: Option<&str>) -> EngineError {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.clone().unwrap_or_else(|| failure.to_string());
            let mut error = EngineError::new(code_name(failure.extended_code), message);
            error.transient = matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked);
            annotate(&mut error, table);
            error
        }
        other => EngineError::new("rusqlite", one_line(&other.to_string())),
    }
}

/// Fills `column` and `constraint` from SQLite's constraint messages:
/// `NOT NULL constraint failed: t.c`, `UNIQUE constraint failed: t.a, t.b`,
/// `UNIQUE constraint failed: index 'ix'`, `CHECK constraint failed: name`,
/// `cannot store TEXT value in INTEGER column t.c` (STRICT tables).
fn annotate(error: &mut EngineError, table: Option<&str>) {
    let message = error.message.as_str();
    if let Some(rest) = message.strip_prefix("CHECK constraint failed: ") {
        error.constraint = Some(rest.to_string());
    } else if let Some(rest) = message.split_once("constraint failed: ").map(|(_, r)| r) {
        match rest.strip_prefix("index '").and_then(|r| r.strip_suffix('\'')) {
            Some(index) => error.constraint = Some(index.to_string()),
            None => {
                error.column = Some(
                    rest.split(", ")
                        .map(|part| strip_table(part, table))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
        }
    } else if message.starts_with("cannot store ") {
        if let Some((_, column)) = message.rsplit_once(" column ") {
            error.column = Some(strip_table(column, table).to_string());
        }
    }
}

/// `t.col` → `col`, knowing the table's name when possible (names may hold dots).
fn strip_table<'a>(part: &'a str, table: Option<&str>) -> &'a str {
    if let Some(column) = table
        .and_then(|t| part.strip_prefix(t))
        .and_then(|r| r.strip_prefix('.'))
    {
        return column;
    }
    part.split_once('.').map_or(part, |(_, column)| column)
}

/// The name of an SQLite (extended) result code, as in sqlite3.h.
fn code_name(code: i32) -> String {
    let name = match code {
        257 => "SQLITE_ERROR_MISSING_COLLSEQ",
        513 => "SQLITE_ERROR_RETRY",
        769 => "SQLITE_ERROR_SNAPSHOT",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        262 => "SQLITE_LOCKED_SHAREDCACHE",
        518 => "SQLITE_LOCKED_VTAB",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        1288 => "SQLITE_READONLY_CANTINIT",
        1544 => "SQLITE_READONLY_DIRECTORY",
        266 => "SQLITE_IOERR_READ",
        522 => "SQLITE_IOERR_SHORT_READ",
        778 => "SQLITE_IOERR_WRITE",
        1034 => "SQLITE_IOERR_FSYNC",
        1290 => "SQLITE_IOERR_DIR_FSYNC",
        1546 => "SQLITE_IOERR_TRUNCATE",
        1802 => "SQLITE_IOERR_FSTAT",
        2058 => "SQLITE_IOERR_UNLOCK",
        2314 => "SQLITE_IOERR_RDLOCK",
        2570 => "SQLITE_IOERR_DELETE",
        3082 => "SQLITE_IOERR_NOMEM",
        3338 => "SQLITE_IOERR_ACCESS",
        3850 => "SQLITE_IOERR_LOCK",
        4106 => "SQLITE_IOERR_CLOSE",
        5642 => "SQLITE_IOERR_SEEK",
        8458 => "SQLITE_IOERR_CORRUPTFS",
        267 => "SQLITE_CORRUPT_VTAB",
        523 => "SQLITE_CORRUPT_SEQUENCE",
        779 => "SQLITE_CORRUPT_INDEX",
        270 => "SQLITE_CANTOPEN_NOTEMPDIR",
        526 => "SQLITE_CANTOPEN_ISDIR",
        782 => "SQLITE_CANTOPEN_FULLPATH",
        1038 => "SQLITE_CANTOPEN_CONVPATH",
        1550 => "SQLITE_CANTOPEN_SYMLINK",
        516 => "SQLITE_ABORT_ROLLBACK",
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        2835 => "SQLITE_CONSTRAINT_PINNED",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        279 => "SQLITE_AUTH_USER",
        // Unlisted extended codes fall back to their primary code's name.
        _ => match code & 0xff {
            1 => "SQLITE_ERROR",
            2 => "SQLITE_INTERNAL",
            3 => "SQLITE_PERM",
            4 => "SQLITE_ABORT",
            5 => "SQLITE_BUSY",
            6 => "SQLITE_LOCKED",
            7 => "SQLITE_NOMEM",
            8 => "SQLITE_READONLY",
            9 => "SQLITE_INTERRUPT",
            10 => "SQLITE_IOERR",
            11 => "SQLITE_CORRUPT",
            12 => "SQLITE_NOTFOUND",
            13 => "SQLITE_FULL",
            14 => "SQLITE_CANTOPEN",
            15 => "SQLITE_PROTOCOL",
            16 => "SQLITE_EMPTY",
            17 => "SQLITE_SCHEMA",
            18 => "SQLITE_TOOBIG",
            19 => "SQLITE_CONSTRAINT",
            20 => "SQLITE_MISMATCH",
            21 => "SQLITE_MISUSE",
            22 => "SQLITE_NOLFS",
            23 => "SQLITE_AUTH",
            24 => "SQLITE_FORMAT",
            25 => "SQLITE_RANGE",
            26 => "SQLITE_NOTADB",
            27 => "SQLITE_NOTICE",
            28 => "SQLITE_WARNING",
            _ => return format!("SQLITE_{code}"),
        },
    };
    name.to_string()
}

/// The error of a connection that was closed after a task panicked with it.
fn closed_error() -> DbError {
    let mut error = EngineError::new("SQLITE_MISUSE", "the connection was closed after an internal failure");
    error.connection_lost = true;
    DbError::engine("using the sqlite connection", error)
}

fn join_error(e: tokio::task::JoinError) -> DbError {
    DbError::Internal(format!("sqlite task failed: {e}"))
}

/// What Lockgate was doing, for messages: the statement, on one line and shortened.
fn statement_context(sql: &str) -> String {
    const MAX: usize = 100;
    let flat = one_line(sql);
    if flat.chars().count() <= MAX {
        format!("running `{flat}`")
    } else {
        let head: String = flat.chars().take(MAX).collect();
        format!("running `{head}…`")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_messages_name_their_column_or_constraint() {
        let cases = [
            ("NOT NULL constraint failed: t.x", Some("t"), Some("x"), None),
            (
                "UNIQUE constraint failed: a.b.c, a.b.d",
                Some("a.b"),
                Some("c, d"),
                None,
            ),
            ("UNIQUE constraint failed: index 'ux'", Some("t"), None, Some("ux")),
            (
                "CHECK constraint failed: length(y) < 5",
                Some("t"),
                None,
                Some("length(y) < 5"),
            ),
            ("cannot store TEXT value in INTEGER column t.n", None, Some("n"), None),
            ("FOREIGN KEY constraint failed", Some("t"), None, None),
        ];
        for (message, table, column, constraint) in cases {
            let mut e = EngineError::new("X", message);
            annotate(&mut e, table);
            assert_eq!(e.column.as_deref(), column, "{message}");
            assert_eq!(e.constraint.as_deref(), constraint, "{message}");
        }
        assert_eq!(code_name(1299), "SQLITE_CONSTRAINT_NOTNULL");
        assert_eq!(code_name(5), "SQLITE_BUSY");
        assert_eq!(code_name(5 | (9 << 8)), "SQLITE_BUSY");
    }

    #[test]
    fn numbers_as_text_are_classified_by_what_affinity_keeps() {
        let cases = [
            ("0", true, Fit::Exact),
            ("-123456789012345", true, Fit::Exact),
            ("1234567890123456", true, Fit::Integer),
            ("9223372036854775808", true, Fit::TextOnly),
            ("12.50", false, Fit::Exact),
            ("0.000000000000000000000000000012", false, Fit::Exact),
            ("1.000000000000000000000000000001", false, Fit::TextOnly),
            ("1234567890123456.5", false, Fit::TextOnly),
        ];
        for (text, integer_literal, fit) in cases {
            assert_eq!(Fit::of_decimal(text, integer_literal), fit, "{text}");
        }
        assert_eq!(Fit::of_json_number("1e400"), Fit::TextOnly);
        assert_eq!(Fit::of_json_number("1.5E3"), Fit::Exact);
        assert_eq!(Fit::of_json_number("12345678901234567e0"), Fit::TextOnly);
        assert_eq!(Fit::of_json_number("-12345678901234567"), Fit::Integer);
        assert_eq!(Affinity::of("NUMERIC(12,2)", false), Affinity::Numeric);
        assert_eq!(Affinity::of("JSON", false), Affinity::Numeric);
        assert_eq!(Affinity::of("VARCHAR(10)", false), Affinity::Text);
        assert_eq!(Affinity::of("", false), Affinity::Blob);
        assert_eq!(Affinity::of("ANY", true), Affinity::Blob);
        assert_eq!(Affinity::of("DOUBLE PRECISION", false), Affinity::Real);
        assert!(Affinity::Numeric.keeps(Fit::Integer) && !Affinity::Real.keeps(Fit::Integer));
    }

    #[test]
    fn reals_read_as_the_decimals_they_stand_for() {
        assert_eq!(decimal_from_real(12.5).unwrap().as_str(), "12.5");
        assert_eq!(decimal_from_real(0.1 + 0.2).unwrap().as_str(), "0.3");
        assert_eq!(
            decimal_from_real(1234567890.12345).unwrap().as_str(),
            "1234567890.12345"
        );
    }
}
