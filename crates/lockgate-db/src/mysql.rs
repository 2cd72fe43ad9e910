//! The MariaDB / MySQL engine module: one `mysql_async` connection behind the engine
//! contract of [`crate::conn`].
//!
//! Sessions run in UTC with utf8mb4 and a strict `sql_mode`, and with
//! `CLIENT_FOUND_ROWS` so that an UPDATE reports the rows it matched, as the other
//! engines do. The bulk path is `LOAD DATA LOCAL INFILE` streamed from memory through
//! the connection's one-shot infile handler; because MariaDB downgrades errors to
//! warnings under LOCAL (a NULL into NOT NULL becomes '', long values are cut,
//! duplicate keys are skipped), a load that raised any warning or wrote fewer rows
//! than it was given is reported as failed. When the server refuses local infile the
//! same rows go through multi-row INSERTs instead. A writer's insert stream keeps
//! one such load open across its batches ([`MyConn::stream_rows`]).
//!
//! MariaDB and MySQL share this module; the server is read at connect time
//! ([`crate::mysql_server::Server`]) and the few statements that differ ask it.
//! A table named `db.table` is that table of database `db` on the same server (as
//! `schema.table` is on PostgreSQL); without a database, the connection's own.

use crate::conn::BulkOutcome;
use crate::dialect::Dialect;
use crate::error::{DbError, EngineError};
use crate::mysql_server::{take_portable_param, Server};
use crate::types;
use crate::url::{DbUrl, Engine};
use bytes::Bytes;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use futures_util::StreamExt;
use lockgate_core::value::{parse_date, parse_time, parse_timestamp, parse_timestamptz, ConvertError, MAX_FSP};
use lockgate_core::{
    CheckConstraint, Column, Decimal, ForeignKey, Index, Kind, Row, Table, TableName, TextForm, UniqueConstraint, Value,
};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Params, Value as MyValue};
use std::collections::BTreeMap;
use std::time::Duration;

/// The session settings every connection starts with (ARCHITECTURE.md: UTC, strict).
const SESSION_SETUP: &str = "SET time_zone = '+00:00'; SET NAMES utf8mb4; \
     SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO'";

/// How long a connection attempt may take before it is reported as failed; a
/// black-holed host would otherwise hang for the operating system's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Target size of one chunk of LOAD DATA input. The encoder runs alongside the load
/// and hands over a few chunks at a time, so memory stays at the batch plus this.
/// Small enough that the server starts on a batch while the rest is still being
/// encoded: with 1 MiB (more than a 10,000-row batch) the two took turns.
const CHUNK_BYTES: usize = 64 << 10;

/// Chunks that may wait between the encoder and the driver.
const CHUNKS_IN_FLIGHT: usize = 8;

/// MariaDB's limit on the placeholders of one prepared statement.
const MAX_PARAMS: usize = 65_535;

/// How many warnings a failed load quotes in its message.
const WARNINGS_QUOTED: usize = 5;

/// A connection to one MariaDB / MySQL database.
pub struct MyConn {
    /// The session. `None` while an open load holds it ([`MyConn::stream_rows`]: the
    /// statement runs on a task of its own), or when that task was lost.
    conn: Option<mysql_async::Conn>,
    /// The `LOAD DATA LOCAL` kept open across batches, if any (boxed: a connection
    /// is moved around often, an open load is rare).
    load: Option<Box<OpenLoad>>,
    /// Whether `LOAD DATA LOCAL` may be used: `@@local_infile` at connect time,
    /// cleared when the server refuses it anyway.
    local_infile: bool,
    /// `@@max_allowed_packet`, which bounds the multi-row INSERT fallback.
    max_allowed_packet: u64,
    /// MariaDB or MySQL, and its version: which forms the SQL takes.
    server: Server,
    /// Set when an error showed that the connection is gone.
    lost: bool,
    /// Whether the session's `net_read_timeout` was raised to its `wait_timeout` for
    /// an open load ([`MyConn::open_load`]).
    patient: bool,
    /// The session's options and thread id, for a `KILL QUERY` from another
    /// ([`MyConn::kill_target`]; kept here because an open load holds the session).
    target: (Box<Opts>, u32),
}

impl MyConn {
    /// Connects and sets up the session (UTC, utf8mb4, strict `sql_mode`).
    pub async fn connect(url: &DbUrl) -> Result<Self, DbError> {
        let (driver_url, portable) = take_portable_param(url.as_str());
        let opts = Opts::from_url(&driver_url)
            .map_err(|e| DbError::BadUrl(format!("invalid MariaDB URL {}: {e}", url.redacted())))?;
        let opts = OptsBuilder::from_opts(opts).client_found_rows(true);
        let connect_error = |message: String| DbError::Connect {
            url: url.redacted(),
            message,
        };
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts)).await {
            Err(_) => {
                return Err(connect_error(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(e)) => return Err(connect_error(connect_message(&e))),
            Ok(Ok(conn)) => conn,
        };
        if let Err(e) = conn.query_drop(SESSION_SETUP).await {
            return Err(connect_error(format!(
                "setting up the session failed: {}",
                connect_message(&e)
            )));
        }
        let settings: Option<(Option<i64>, Option<u64>, Option<String>)> = match conn
            .query_first("SELECT @@local_infile, @@max_allowed_packet, VERSION()")
            .await
        {
            Ok(row) => row,
            Err(e) => {
                return Err(connect_error(format!(
                    "reading server settings failed: {}",
                    connect_message(&e)
                )))
            }
        };
        let (local_infile, max_allowed_packet, version) = settings.unwrap_or((None, None, None));
        let server = Server {
            portable,
            ..Server::from_version(version.as_deref().unwrap_or_default())
        };
        Ok(MyConn {
            target: (Box::new(conn.opts().clone()), conn.id()),
            patient: false,
            conn: Some(conn),
            load: None,
            local_infile: local_infile.unwrap_or(0) != 0,
            max_allowed_packet: max_allowed_packet.unwrap_or(16 << 20),
            server,
            lost: false,
        })
    }

    /// The server (MariaDB or MySQL, its version) and the forms its SQL takes.
    pub fn server(&self) -> Server {
        self.server
    }

    /// The id the last INSERT generated (`LAST_INSERT_ID()`, from the server's answer
    /// to it: no round trip).
    pub fn last_insert_id(&self) -> Option<u64> {
        self.conn.as_ref().and_then(|c| c.last_insert_id())
    }

    /// Whether [`MyConn::bulk_insert`] uses `LOAD DATA LOCAL INFILE`.
    pub fn local_infile(&self) -> bool {
        self.local_infile
    }

    /// Turns the `LOAD DATA LOCAL` path off (or back on), so that bulk inserts use
    /// multi-row INSERTs: for servers that refuse local infile in ways `@@local_infile`
    /// does not show, and for the tests of the fallback path.
    pub fn set_local_infile(&mut self, allowed: bool) {
        self.local_infile = allowed;
    }

    /// Runs statements (text protocol, several allowed) without parameters or results.
    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        if self.load.is_some()
            && sql
                .trim_start()
                .get(..8)
                .is_some_and(|w| w.eq_ignore_ascii_case("ROLLBACK"))
        {
            // Rows of an open load are about to be undone: whatever went wrong with
            // it is beside the point, and must not keep the rollback from running.
            let _ = self.finish_stream().await;
        }
        let result = self.session().await?.query_drop(sql).await;
        result.map_err(|e| self.fail(&running(sql), e))
    }

    /// Runs one statement with bound values; returns the rows it affected (matched,
    /// for an UPDATE).
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        // Some statements cannot be prepared; without parameters nothing needs to be.
        let conn = self.session().await?;
        let result = if params.is_empty() {
            conn.query_drop(sql).await
        } else {
            conn.exec_drop(sql, Params::Positional(params.iter().map(to_my).collect()))
                .await
        };
        result.map_err(|e| self.fail(&running(sql), e))?;
        Ok(self.session().await?.affected_rows())
    }

    /// Runs a query and returns all its rows. With `kinds`, each column is typed by its
    /// kind; without, by the result's column type. A value that does not fit its kind
    /// (a TIME past 24h, a zero date) is [`DbError::Invalid`] naming column and row.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        // Typed reads use the binary protocol: the text protocol prints FLOAT with six
        // significant digits, which would silently change values.
        let conn = self.session().await?;
        let result: Result<Vec<mysql_async::Row>, _> = if params.is_empty() && kinds.is_none() {
            conn.query(sql).await
        } else {
            conn.exec(sql, Params::Positional(params.iter().map(to_my).collect()))
                .await
        };
        let rows = result.map_err(|e| self.fail(&running(sql), e))?;
        rows.into_iter()
            .enumerate()
            .map(|(n, row)| decode_row(row, kinds, n + 1))
            .collect()
    }

    /// Runs a query (binary protocol) and hands its rows to `f` in pages of up to
    /// `page` rows as they arrive: the driver reads one row at a time from the
    /// socket, so a result of any size is read with the memory of one page. An error
    /// of `f` (or a cell that does not fit its kind) stops the pages; the rest of the
    /// result is drained before returning, so that the connection is usable after.
    pub async fn query_pages<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
        page: usize,
        f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        let page = page.max(1);
        let params = Params::Positional(params.iter().map(to_my).collect());
        let conn = self.session().await?;
        // Err: the driver's error, and the caller's when it came while draining.
        let outcome: Result<Result<(), E>, (mysql_async::Error, Option<E>)> = async {
            let mut result = conn.exec_iter(sql, params).await.map_err(|e| (e, None))?;
            let mut rows = Vec::with_capacity(page);
            let mut n = 0;
            let mut stopped: Option<E> = None;
            while let Some(row) = result.next().await.map_err(|e| (e, None))? {
                n += 1;
                match decode_row(row, kinds, n) {
                    Ok(values) => rows.push(values),
                    Err(e) => {
                        stopped = Some(e.into());
                        break;
                    }
                }
                if rows.len() == page {
                    if let Err(e) = f(std::mem::replace(&mut rows, Vec::with_capacity(page))) {
                        stopped = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = stopped {
                // The server is still sending the rest of the result, and the protocol
                // takes no other command until it has all been read. Dropping the
                // QueryResult here would leave the rows on the socket (the driver
                // would read them at the next command, and its errors would surface
                // there); a COM_RESET_CONNECTION would end the open transaction (the
                // dump's snapshot) and the session's settings (time zone, sql_mode).
                // So the rest is drained now: read row by row and discarded, never
                // decoded nor held (time, not memory), and the connection is ready.
                if let Err(drain) = result.drop_result().await {
                    return Err((drain, Some(e)));
                }
                return Ok(Err(e));
            }
            Ok(if rows.is_empty() { Ok(()) } else { f(rows) })
        }
        .await;
        match outcome {
            Ok(done) => done,
            Err((e, caller)) => {
                // A failed drain marks the connection lost (`fail`); the caller's
                // error, which stopped the read, is still the one to report.
                let db = self.fail(&running(sql), e);
                Err(caller.unwrap_or_else(|| E::from(db)))
            }
        }
    }

    /// The result columns of a query (names and kinds), from preparing it; nothing runs.
    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<(String, Kind)>, DbError> {
        let conn = self.session().await?;
        let stmt = conn.prep(sql).await;
        let stmt = stmt.map_err(|e| self.fail(&running(sql), e))?;
        let out = stmt
            .columns()
            .iter()
            .map(|c| (c.name_str().to_string(), column_kind(c)))
            .collect();
        if let Some(conn) = self.conn.as_mut() {
            let _ = conn.close(stmt).await;
        }
        Ok(out)
    }

    /// The base tables of the current database, sorted by name.
    pub async fn list_tables(&mut self) -> Result<Vec<TableName>, DbError> {
        let rows = self
            .query(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
                &[],
                None,
            )
            .await?;
        let mut names: Vec<TableName> = rows
            .iter()
            .filter_map(|r| text(r.first()?))
            .map(TableName::new)
            .collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(names)
    }

    /// The table of exactly this name (case-sensitive) in its database: the one the
    /// name gives (`db.table`), else the connection's own.
    pub async fn describe(&mut self, name: &TableName) -> Result<Option<Table>, DbError> {
        // The plain equality lets information_schema look the table up directly; the
        // BINARY one makes the match exact whatever the collation.
        let schema = name.schema.clone().map_or(Value::Null, Value::Text);
        let key = [
            schema.clone(),
            Value::Text(name.name.clone()),
            Value::Text(name.name.clone()),
        ];
        let tables = self
            .query(
                "SELECT ENGINE, DATABASE() FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND BINARY TABLE_NAME = ?",
                &key,
                None,
            )
            .await?;
        let Some(table_row) = tables.first() else {
            return Ok(None);
        };
        let engine = table_row.first().and_then(text);
        // A table of another database keeps its database in its name (so every
        // statement about it names it); one of the connection's own has none.
        let current = table_row.get(1).and_then(text);
        let qualify = |db: Option<String>| db.filter(|d| Some(d) != current.as_ref());

        let column_rows = self
            .query(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLLATION_NAME \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND BINARY TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                &key,
                None,
            )
            .await?;
        let check_sql = self.server.check_constraints_sql("COALESCE(?, DATABASE())");
        let check_rows = self.query(&check_sql, &key, None).await?;
        let key_rows = self
            .query(
                "SELECT k.CONSTRAINT_NAME, c.CONSTRAINT_TYPE, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
                        k.REFERENCED_TABLE_SCHEMA \
                 FROM information_schema.TABLE_CONSTRAINTS c \
                 JOIN information_schema.KEY_COLUMN_USAGE k \
                   ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.TABLE_SCHEMA = c.TABLE_SCHEMA \
                  AND k.TABLE_NAME = c.TABLE_NAME AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME \
                 WHERE c.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND c.TABLE_NAME = ? AND BINARY c.TABLE_NAME = ? \
                 ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
                &key,
                None,
            )
            .await?;
        let index_rows = self
            .query(
                "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND BINARY TABLE_NAME = ? \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                &key,
                None,
            )
            .await?;

        let quote = |c: &str| Dialect(Engine::Mysql).quote(c);
        // MariaDB's JSON is LONGTEXT guarded by CHECK (json_valid(`col`)).
        let is_json_check = |clause: &str, column: &str| {
            let clause = clause.trim();
            clause.len() > 11
                && clause[..11].eq_ignore_ascii_case("json_valid(")
                && clause[11..].trim_end().strip_suffix(')').map(str::trim) == Some(quote(column).as_str())
        };
        let checks_raw: Vec<(String, String)> = check_rows
            .iter()
            .filter_map(|r| Some((text(r.first()?)?, text(r.get(1)?)?)))
            .collect();

        let mut columns = Vec::with_capacity(column_rows.len());
        for r in &column_rows {
            let Some(name) = r.first().and_then(text) else {
                continue;
            };
            let data_type = r.get(1).and_then(text).unwrap_or_default();
            let column_type = r.get(2).and_then(text).unwrap_or_default();
            let char_max = r.get(3).and_then(int).and_then(|n| u64::try_from(n).ok());
            let nullable = r.get(4).and_then(text).is_some_and(|s| s.eq_ignore_ascii_case("YES"));
            let default = r
                .get(5)
                .and_then(text)
                .filter(|d| !(nullable && d.eq_ignore_ascii_case("NULL")));
            let extra = r.get(6).and_then(text).unwrap_or_default().to_ascii_lowercase();
            let generated = extra.contains("auto_increment")
                || extra.contains("virtual")
                || extra.contains("stored")
                || extra.contains("persistent");
            let is_json = checks_raw.iter().any(|(_, clause)| is_json_check(clause, &name));
            let kind = types::mysql_kind(&data_type, &column_type, char_max, is_json);
            let numeric = matches!(
                kind,
                Kind::Int { .. } | Kind::Float { .. } | Kind::Decimal { .. } | Kind::Bool
            );
            let default = self.server.column_default_sql(default, &extra, numeric);
            columns.push(Column {
                kind,
                name,
                data_type: column_type,
                nullable,
                default,
                auto: generated,
                collation: r.get(7).and_then(text),
            });
        }
        let checks = checks_raw
            .iter()
            .filter(|(_, clause)| !columns.iter().any(|c| is_json_check(clause, &c.name)))
            .map(|(name, clause)| CheckConstraint {
                name: name.clone(),
                expression: clause.clone(),
                // MariaDB writes the columns of a CHECK clause in backquotes.
                columns: columns
                    .iter()
                    .filter(|c| clause.contains(&format!("`{}`", c.name.replace('`', "``"))))
                    .map(|c| c.name.clone())
                    .collect(),
            })
            .collect();

        let mut primary_key = Vec::new();
        let mut unique: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut foreign: BTreeMap<String, (TableName, Vec<(String, String)>)> = BTreeMap::new();
        for r in &key_rows {
            let (Some(cname), Some(ctype), Some(col)) = (
                r.first().and_then(text),
                r.get(1).and_then(text),
                r.get(2).and_then(text),
            ) else {
                continue;
            };
            match ctype.as_str() {
                "PRIMARY KEY" => primary_key.push(col),
                "UNIQUE" => unique.entry(cname).or_default().push(col),
                "FOREIGN KEY" => {
                    let parent = TableName {
                        schema: qualify(r.get(5).and_then(text)),
                        name: r.get(3).and_then(text).unwrap_or_default(),
                    };
                    let parent_col = r.get(4).and_then(text).unwrap_or_default();
                    foreign
                        .entry(cname)
                        .or_insert_with(|| (parent, Vec::new()))
                        .1
                        .push((col, parent_col));
                }
                _ => {}
            }
        }

        let mut indexes: Vec<Index> = Vec::new();
        for r in &index_rows {
            let Some(iname) = r.first().and_then(text) else {
                continue;
            };
            if iname == "PRIMARY" {
                continue;
            }
            let unique = r.get(1).and_then(int) == Some(0);
            let col = r.get(2).and_then(text).unwrap_or_default();
            match indexes.last_mut() {
                Some(last) if last.name == iname => last.columns.push(col),
                _ => indexes.push(Index {
                    name: iname,
                    columns: vec![col],
                    unique,
                }),
            }
        }

        // What Lockgate's checks cannot judge in advance: enum and set labels, and
        // triggers.
        let mut unchecked: Vec<String> = columns
            .iter()
            .filter(|c| {
                let t = c.data_type.to_ascii_lowercase();
                t.starts_with("enum(") || t.starts_with("set(")
            })
            .map(|c| format!("column {} of type {}", c.name, c.data_type))
            .collect();
        let triggers = self
            .query(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
                 WHERE EVENT_OBJECT_SCHEMA = COALESCE(?, DATABASE()) AND BINARY EVENT_OBJECT_TABLE = ? ORDER BY 1",
                &[schema, Value::Text(name.name.clone())],
                None,
            )
            .await?;
        unchecked.extend(
            triggers
                .iter()
                .filter_map(|r| r.first().and_then(text))
                .map(|t| format!("trigger {t}")),
        );
        Ok(Some(Table {
            name: TableName {
                schema: qualify(name.schema.clone()),
                name: name.name.clone(),
            },
            columns,
            primary_key,
            unique: unique
                .into_iter()
                .map(|(name, columns)| UniqueConstraint { name, columns })
                .collect(),
            foreign_keys: foreign
                .into_iter()
                .map(|(name, (parent, columns))| ForeignKey {
                    name,
                    columns,
                    references: parent,
                })
                .collect(),
            indexes,
            checks,
            engine,
            unchecked,
        }))
    }

    /// Writes `rows` into `target`'s `columns` (plus `ordinal`, valued with each row's
    /// index in `rows`). All rows or an error: a failed load may have written some rows,
    /// so callers run it in a transaction and roll back on `Err`. The error's `row` is
    /// the 1-based position in `rows` when the engine names one.
    pub async fn bulk_insert(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        check_widths(columns, rows)?;
        if rows.is_empty() {
            return Ok(BulkOutcome::default());
        }
        if self.local_infile {
            match self.load_data(target, columns, rows, ordinal).await {
                // The server refused LOCAL after all (1148 not allowed, 3948/4166
                // disabled): remember it and take the INSERT path. Nothing was written.
                Err(e) if refused_local(&e) => self.local_infile = false,
                other => return other,
            }
        }
        self.insert_rows(target, columns, rows, ordinal).await
    }

    /// Appends `rows` to `target` through one `LOAD DATA LOCAL` kept open across calls
    /// (as PostgreSQL's COPY stream, ARCHITECTURE.md's writer): the statement runs on a
    /// task of its own, reading the file from a channel, so the server parses one
    /// batch while the next is being read and converted, and a load of a million rows
    /// is a few statements instead of one per batch. A statement takes at most
    /// [`STREAM_ROWS`] rows, then the next call opens another: MariaDB reports a bad
    /// row only when its statement ends (LOCAL turns errors into warnings), so this
    /// bounds how far a failing load runs before the writer learns of it. Finish with
    /// [`MyConn::finish_stream`]; any other call finishes the load first, and an
    /// error (a warning, fewer rows written than sent) may surface on a later call or
    /// at the finish. Without local infile, each call is a [`MyConn::bulk_insert`].
    pub async fn stream_rows(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
    ) -> Result<BulkOutcome, DbError> {
        check_widths(columns, rows)?;
        if rows.is_empty() {
            return Ok(BulkOutcome::default());
        }
        if !self.local_infile {
            return self.bulk_insert(target, columns, rows, None).await;
        }
        let hex = hex_columns(columns.len(), rows);
        let fits = self.load.as_ref().is_some_and(|l| {
            l.target == *target
                && l.columns == columns
                && l.sent + rows.len() as u64 <= STREAM_ROWS
                && hex.iter().zip(&l.hex).all(|(needs, has)| !needs || *has)
        });
        if !fits {
            self.finish_stream().await?;
            self.open_load(target, columns, hex).await?;
        }
        let chunk_bytes = self.chunk_bytes();
        let load = self.load.as_mut().expect("opened above");
        let fresh = load.sent == 0;
        let mut buf = Vec::with_capacity(chunk_bytes + 4096);
        let mut taken = true;
        for row in rows {
            encode_row(&mut buf, &row.values, &load.hex, None);
            if buf.len() >= chunk_bytes {
                taken = load.send(Bytes::from(std::mem::take(&mut buf))).await;
                if !taken {
                    break;
                }
            }
        }
        if taken && !buf.is_empty() {
            taken = load.send(Bytes::from(buf)).await;
        }
        if taken {
            load.sent += rows.len() as u64;
            return Ok(BulkOutcome {
                written: rows.len() as u64,
                row_errors: vec![],
            });
        }
        // The statement ended before taking its input: its error says why.
        match self.finish_stream().await {
            // Refused before reading anything (see `bulk_insert`): these rows were the
            // statement's first, and go through INSERTs; `finish_stream` turned local
            // infile off for the calls after.
            Err(e) if fresh && refused_local(&e) => self.insert_rows(target, columns, rows, None).await,
            Err(e) => Err(e),
            Ok(()) => Err(DbError::Internal(format!(
                "loading rows into {target}: the server ended the load before its input"
            ))),
        }
    }

    /// Ends the load [`MyConn::stream_rows`] left open, if any: the end of its input,
    /// the statement's answer, and the same check as every load's (every row written,
    /// no warning).
    pub async fn finish_stream(&mut self) -> Result<(), DbError> {
        let Some(mut load) = self.load.take() else {
            return Ok(());
        };
        // The end of the channel is the end of the file.
        load.tx.take();
        let ended = match load.ended.take() {
            Some(ended) => ended,
            None => match load.task.take() {
                Some(task) => task.await,
                None => return Err(lost_session(&load.context)),
            },
        };
        let (conn, result) = match ended {
            Ok(done) => done,
            Err(e) => {
                self.lost = true;
                return Err(DbError::engine(
                    load.context.as_str(),
                    EngineError {
                        connection_lost: true,
                        ..EngineError::new("lockgate", format!("the load's task stopped: {e}"))
                    },
                ));
            }
        };
        self.conn = Some(conn);
        if let Err(e) = result {
            let e = self.fail(&load.context, e);
            if refused_local(&e) {
                self.local_infile = false;
            }
            return Err(e);
        }
        self.check_complete(&load.context, load.sent as usize).await.map(|_| ())
    }

    /// Starts the `LOAD DATA LOCAL` of a stream on a task that holds the session.
    async fn open_load(&mut self, target: &TableName, columns: &[String], hex: Vec<bool>) -> Result<(), DbError> {
        let sql = load_sql(target, columns, &hex, None);
        let context = format!("loading rows into {target}");
        let patient = self.patient;
        let conn = self.session().await?;
        if !patient {
            // Between two batches the open statement waits for its input, and the
            // server gives up on a statement's input after net_read_timeout (30 s by
            // default), where an idle session between two statements would wait
            // wait_timeout (8 hours). A slow source page or a paused worker must not
            // end the load: wait as long as for an idle session.
            conn.query_drop("SET SESSION net_read_timeout = @@session.wait_timeout")
                .await
                .map_err(|e| DbError::engine(format!("{context}: setting net_read_timeout"), engine_error(e)))?;
            self.patient = true;
        }
        let mut conn = self.conn.take().ok_or_else(|| lost_session(&context))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        conn.set_infile_handler(async move {
            let stream =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (Ok(chunk), rx)) });
            Ok(stream.boxed())
        });
        let task = tokio::spawn(async move {
            let result = conn.query_drop(sql).await;
            (conn, result)
        });
        self.load = Some(Box::new(OpenLoad {
            target: target.clone(),
            columns: columns.to_vec(),
            hex,
            context,
            tx: Some(tx),
            task: Some(task),
            ended: None,
            sent: 0,
        }));
        Ok(())
    }

    /// The session, once an open load is finished (its error is returned).
    async fn session(&mut self) -> Result<&mut mysql_async::Conn, DbError> {
        if self.load.is_some() {
            self.finish_stream().await?;
        }
        self.conn.as_mut().ok_or_else(|| lost_session("using the connection"))
    }

    /// The size of one chunk of LOAD DATA input, well within a packet.
    fn chunk_bytes(&self) -> usize {
        CHUNK_BYTES.min((self.max_allowed_packet / 2).max(1024) as usize)
    }

    /// The fast path: `LOAD DATA LOCAL INFILE` fed from memory.
    async fn load_data(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        let hex = hex_columns(columns.len(), rows);
        let sql = load_sql(target, columns, &hex, ordinal);
        let context = format!("loading {} rows into {}", rows.len(), target);
        let chunk_bytes = self.chunk_bytes();

        // The encoder borrows `rows` and runs beside the load, handing chunks to the
        // driver's handler through a small channel: memory stays bounded by the batch.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let conn = self.session().await?;
        conn.set_infile_handler(async move {
            let stream =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (Ok(chunk), rx)) });
            Ok(stream.boxed())
        });
        let hex_ref = &hex;
        let producer = async move {
            let mut buf = Vec::with_capacity(chunk_bytes + 4096);
            for (i, row) in rows.iter().enumerate() {
                encode_row(&mut buf, &row.values, hex_ref, ordinal.map(|_| i));
                if buf.len() >= chunk_bytes && tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
                    // The driver stopped reading (the load failed); its error tells why.
                    return;
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(Bytes::from(buf)).await;
            }
            // Dropping `tx` ends the stream, which ends the file.
        };
        let result = {
            let load = conn.query_drop(sql.as_str());
            tokio::pin!(producer);
            tokio::pin!(load);
            // If the load ends first (the server refused it before asking for the
            // file), the encoder is dropped instead of waiting on a channel nobody reads.
            tokio::select! {
                r = &mut load => r,
                () = &mut producer => load.await,
            }
        };
        result.map_err(|e| self.fail(&context, e))?;
        self.check_complete(&context, rows.len()).await
    }

    /// The fallback: multi-row INSERTs within the placeholder limit and well under
    /// `max_allowed_packet`.
    async fn insert_rows(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        let d = Dialect(Engine::Mysql);
        let mut names = d.columns(None, columns);
        if let Some(o) = ordinal {
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(&d.quote(o));
        }
        let per_row = columns.len() + usize::from(ordinal.is_some());
        let tuple = format!("({})", vec!["?"; per_row].join(","));
        let max_rows = (MAX_PARAMS / per_row.max(1)).max(1);
        // Half the packet leaves room for the statement text and value headers.
        let max_bytes = (self.max_allowed_packet / 2).clamp(4096, 64 << 20) as usize;
        let context = format!("inserting {} rows into {}", rows.len(), target);

        let mut start = 0;
        let mut written = 0u64;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < rows.len() && end - start < max_rows {
                let size = rows[end].values.iter().map(Value::approx_bytes).sum::<usize>() + 8 * per_row;
                if end > start && bytes + size > max_bytes {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let chunk = &rows[start..end];
            let sql = format!(
                "INSERT INTO {} ({names}) VALUES {}",
                d.table(target),
                vec![tuple.as_str(); chunk.len()].join(",")
            );
            let mut params = Vec::with_capacity(chunk.len() * per_row);
            for (i, row) in chunk.iter().enumerate() {
                params.extend(row.values.iter().map(to_my));
                if ordinal.is_some() {
                    params.push(MyValue::Int((start + i) as i64));
                }
            }
            let result = self
                .session()
                .await?
                .exec_drop(sql.as_str(), Params::Positional(params))
                .await;
            if let Err(e) = result {
                let mut err = self.fail(&context, e);
                if let DbError::Engine { error, .. } = &mut err {
                    // "at row N" counts within this statement; report it within `rows`.
                    error.row = error.row.map(|r| r + start as u64);
                }
                return Err(err);
            }
            let outcome = self.check_complete(&context, chunk.len()).await?;
            written += outcome.written;
            start = end;
        }
        Ok(BulkOutcome {
            written,
            row_errors: vec![],
        })
    }

    /// After a bulk statement: fewer rows than given, or any warning, is a failure
    /// described by the first warning.
    async fn check_complete(&mut self, context: &str, expected: usize) -> Result<BulkOutcome, DbError> {
        // Right after the load's statement: no load is open (and `session` would
        // recurse through `finish_stream`).
        let conn = self.conn.as_mut().ok_or_else(|| lost_session(context))?;
        let affected = conn.affected_rows();
        let warnings = conn.get_warnings();
        if affected == expected as u64 && warnings == 0 {
            return Ok(BulkOutcome {
                written: affected,
                row_errors: vec![],
            });
        }
        let shown: Vec<(Option<u64>, Option<String>)> =
            match conn.query(format!("SHOW WARNINGS LIMIT {WARNINGS_QUOTED}")).await {
                Ok(rows) => rows
                    .into_iter()
                    .map(|r: mysql_async::Row| {
                        (
                            r.get::<Option<u64>, _>(1).flatten(),
                            r.get::<Option<String>, _>(2).flatten(),
                        )
                    })
                    .collect(),
                Err(e) => return Err(self.fail(context, e)),
            };
        let error = match shown.first() {
            Some((code, Some(message))) => {
                let mut e = server_error(code.unwrap_or(0), message);
                let more = usize::from(warnings).max(shown.len()) - 1;
                if more > 0 {
                    let others: Vec<&str> = shown.iter().skip(1).filter_map(|(_, m)| m.as_deref()).collect();
                    e.message = format!("{} (and {more} more warnings: {})", e.message, others.join("; "));
                }
                if affected != expected as u64 {
                    e.message = format!("{} ({affected} of {expected} rows were written)", e.message);
                }
                e
            }
            _ => EngineError::new(
                "lockgate",
                format!("the server wrote {affected} of {expected} rows and reported {warnings} warnings"),
            ),
        };
        Err(DbError::engine(context, error))
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        match &self.conn {
            Some(c) => self.lost || c.is_disconnected(),
            // An open load holds the session; without one, its task was lost.
            None => self.lost || self.load.is_none(),
        }
    }

    /// How to reach this session from another: its options and its thread id, for a
    /// `KILL QUERY` (the protocol has no out-of-band cancel).
    pub fn kill_target(&self) -> (Opts, u32) {
        ((*self.target.0).clone(), self.target.1)
    }

    /// Stops the statement running on the session `id` of the server `opts` reach,
    /// from a session of its own, which it then closes.
    pub async fn kill_query(opts: Opts, id: u32) -> Result<(), DbError> {
        let fail = |e: mysql_async::Error| DbError::engine(format!("KILL QUERY {id}"), engine_error(e));
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts))
            .await
            .map_err(|_| {
                DbError::Internal(format!(
                    "cancelling session {id}'s query: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(fail)?;
        let killed = conn.query_drop(format!("KILL QUERY {id}")).await.map_err(fail);
        let _ = conn.disconnect().await;
        killed
    }

    /// Maps a driver error and remembers a lost connection.
    fn fail(&mut self, context: &str, e: mysql_async::Error) -> DbError {
        let error = engine_error(e);
        if error.connection_lost {
            self.lost = true;
        }
        DbError::engine(context, error)
    }
}

/// The most rows one streamed `LOAD DATA` takes before the next call starts another
/// (see [`MyConn::stream_rows`]): large enough that a load is a few statements, small
/// enough that a failing row is heard of soon (a faulty export then diagnoses after at
/// most this many rows more than the batch that holds it).
pub const STREAM_ROWS: u64 = 50_000;

/// A `LOAD DATA LOCAL` left open by [`MyConn::stream_rows`]: the statement runs on a
/// task holding the session and reads its file from `tx`.
struct OpenLoad {
    target: TableName,
    columns: Vec<String>,
    /// The columns sent in hex (see [`hex_columns`]).
    hex: Vec<bool>,
    /// "loading rows into T", for errors.
    context: String,
    /// The file's input; dropped to end it.
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<LoadEnd>>,
    /// The task's end, when a send saw it first.
    ended: Option<Result<LoadEnd, tokio::task::JoinError>>,
    /// Rows sent so far.
    sent: u64,
}

/// What a load's task hands back: the session and the statement's result.
type LoadEnd = (mysql_async::Conn, Result<(), mysql_async::Error>);

impl OpenLoad {
    /// Hands a chunk to the statement; false when the statement has ended (it
    /// takes no more input: its error tells why).
    async fn send(&mut self, chunk: Bytes) -> bool {
        let (Some(tx), Some(task)) = (&self.tx, &mut self.task) else {
            return false;
        };
        // A statement the server refused never reads its channel: wait on its end
        // too, or a full channel would wait for ever.
        tokio::select! {
            sent = tx.send(chunk) => sent.is_ok(),
            ended = task => {
                self.task = None;
                self.ended = Some(ended);
                false
            }
        }
    }
}

impl Drop for OpenLoad {
    fn drop(&mut self) {
        // A connection dropped mid-load (an export given up) ends its session, which
        // rolls the transaction back on the server, at once.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Whether the server refused `LOAD DATA LOCAL` itself (1148 not allowed, 3948/4166
/// disabled), before reading any input.
fn refused_local(e: &DbError) -> bool {
    matches!(e, DbError::Engine { error, .. } if matches!(error.code.as_str(), "1148" | "3948" | "4166"))
}

/// The error of a session that an open load's task took and never gave back.
fn lost_session(context: &str) -> DbError {
    DbError::engine(
        context,
        EngineError {
            connection_lost: true,
            ..EngineError::new("lockgate", "the connection was lost with its load")
        },
    )
}

/// Every row has a value for each column.
fn check_widths(columns: &[String], rows: &[Row]) -> Result<(), DbError> {
    match rows.iter().enumerate().find(|(_, r)| r.values.len() != columns.len()) {
        Some((i, row)) => Err(DbError::Internal(format!(
            "row {} has {} values for {} columns",
            i + 1,
            row.values.len(),
            columns.len()
        ))),
        None => Ok(()),
    }
}

/// Which columns hold bytes in some row: they go through a hex user variable and
/// UNHEX, so the text stream never carries raw bytes through the utf8mb4 conversion.
fn hex_columns(n: usize, rows: &[Row]) -> Vec<bool> {
    (0..n)
        .map(|i| rows.iter().any(|r| matches!(r.values[i], Value::Bytes(_))))
        .collect()
}

/// The `LOAD DATA LOCAL` of `columns` (hex ones through UNHEX) and `ordinal`.
fn load_sql(target: &TableName, columns: &[String], hex: &[bool], ordinal: Option<&str>) -> String {
    let d = Dialect(Engine::Mysql);
    let mut targets = Vec::with_capacity(columns.len() + 1);
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if hex[i] {
            targets.push(format!("@v{i}"));
            sets.push(format!("{} = UNHEX(@v{i})", d.quote(c)));
        } else {
            targets.push(d.quote(c));
        }
    }
    if let Some(o) = ordinal {
        targets.push(d.quote(o));
    }
    let mut sql = format!(
        r"LOAD DATA LOCAL INFILE 'lockgate' INTO TABLE {} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' ({})",
        d.table(target),
        targets.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// One result row as values: typed by `kinds` when given, else by the result's column
/// type. A value that does not fit (a TIME past 24h, a zero date) is
/// [`DbError::Invalid`] naming column and row (`n`, from 1).
fn decode_row(row: mysql_async::Row, kinds: Option<&[Kind]>, n: usize) -> Result<Vec<Value>, DbError> {
    let columns = row.columns();
    let values = row.unwrap_raw();
    let mut decoded = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let column = &columns[i];
        let kind = kinds.and_then(|k| k.get(i));
        let value = decode(value.unwrap_or(MyValue::NULL), column, kind)
            .map_err(|e| DbError::Invalid(format!("column {} of row {n} of the result: {e}", column.name_str())))?;
        decoded.push(value);
    }
    Ok(decoded)
}

/// "running <the statement's start>" for error contexts; statements can be huge.
fn running(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 100 {
        format!("running {}…", one_line.chars().take(100).collect::<String>())
    } else {
        format!("running {one_line}")
    }
}

/// A connection failure in one line, never with the password (neither the server's
/// messages nor I/O errors carry it).
fn connect_message(e: &mysql_async::Error) -> String {
    let message = match e {
        mysql_async::Error::Server(se) => se.message.clone(),
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    };
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Normalizes a driver error into an [`EngineError`].
fn engine_error(e: mysql_async::Error) -> EngineError {
    use mysql_async::DriverError as D;
    match e {
        mysql_async::Error::Server(se) => server_error(u64::from(se.code), &se.message),
        mysql_async::Error::Io(io) => {
            let mut err = EngineError::new("io", io.to_string());
            err.connection_lost = true;
            err
        }
        mysql_async::Error::Driver(d) => {
            // Mistakes in a statement's parameters leave the connection usable; the
            // rest (closed, out of order, too large…) leave it in an unknown state.
            let statement_level = matches!(
                d,
                D::FromValue { .. }
                    | D::FromRow { .. }
                    | D::Params(_)
                    | D::MixedParams
                    | D::NestedTransaction
                    | D::ReadOnlyTransNotSupported
                    | D::StmtParamsMismatch { .. }
                    | D::StmtParamsNumberExceedsLimit { .. }
            );
            let mut err = EngineError::new("driver", d.to_string());
            err.connection_lost = !statement_level;
            err
        }
        other => {
            let mut err = EngineError::new("driver", other.to_string());
            err.connection_lost = true;
            err
        }
    }
}

/// An error (or warning) the server raised, with the fields its message names.
fn server_error(code: u64, message: &str) -> EngineError {
    let mut err = EngineError::new(code.to_string(), message);
    err.column = message_column(message);
    err.constraint = message_constraint(message);
    // A duplicate names the existing row's key, not a position in the data.
    err.row = if code == 1062 { None } else { message_row(message) };
    err.transient = matches!(code, 1205 | 1213);
    // Gone away, lost during query, server shutdown, killed, idle timeout.
    err.connection_lost = matches!(code, 2006 | 2013 | 1053 | 1927 | 4031);
    err
}

/// Reads a quoted name at the start of `s`: `'x'`, or `` `db`.`t`.`x` `` (last part).
fn leading_name(s: &str) -> Option<String> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('\'') {
        return rest.find('\'').map(|end| rest[..end].to_string());
    }
    let mut rest = s;
    let mut last = None;
    while let Some(body) = rest.strip_prefix('`') {
        // `` inside backticks is one backtick.
        let mut name = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if matches!(chars.peek(), Some((_, '`'))) {
                    chars.next();
                    name.push('`');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        let end = end?;
        last = Some(name);
        rest = &body[end..];
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => break,
        }
    }
    last
}

/// The position just after each case-insensitive occurrence of `word` in `s`.
fn after_each<'a>(s: &'a str, word: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let lower = s.to_ascii_lowercase();
    let word_lower = word.to_ascii_lowercase();
    let mut positions = Vec::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find(&word_lower) {
        positions.push(from + p + word.len());
        from += p + word.len();
    }
    positions.into_iter().map(move |p| &s[p..])
}

/// The column a message names: "Column 'x' cannot be null", "for column `db`.`t`.`x`",
/// "Field 'x' doesn't have a default value", "FOREIGN KEY (`x`)".
fn message_column(message: &str) -> Option<String> {
    after_each(message, "column ")
        .chain(after_each(message, "field "))
        .find_map(leading_name)
        .or_else(|| {
            let inside = after_each(message, "foreign key (").next()?;
            let list = &inside[..inside.find(')')?];
            // Only a one-column key names one column.
            (!list.contains(',')).then(|| leading_name(list)).flatten()
        })
}

/// The constraint a message names: "CONSTRAINT `c` failed", "for key 'k'".
fn message_constraint(message: &str) -> Option<String> {
    after_each(message, "constraint ")
        .find_map(leading_name)
        .or_else(|| after_each(message, "for key ").find_map(leading_name))
}

/// The 1-based row of "at row N".
fn message_row(message: &str) -> Option<u64> {
    after_each(message, "at row ").find_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// A [`Value`] as a statement parameter.
fn to_my(v: &Value) -> MyValue {
    match v {
        Value::Null => MyValue::NULL,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Int(i) => MyValue::Int(*i),
        Value::Float(f) => MyValue::Double(*f),
        // Exact decimals travel as their text; the server parses them exactly.
        Value::Decimal(d) => MyValue::Bytes(d.as_str().as_bytes().to_vec()),
        Value::Text(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => MyValue::Bytes(b.clone()),
        Value::Date(d) => MyValue::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0),
        Value::Time(t) => MyValue::Time(
            false,
            0,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            micros(t.nanosecond()),
        ),
        Value::Timestamp(t) => my_datetime(t),
        // The session is UTC, so the instant goes as its UTC wall time.
        Value::TimestampTz(t) => my_datetime(&t.naive_utc()),
        Value::Json(j) => MyValue::Bytes(j.to_string().into_bytes()),
        Value::Uuid(u) => MyValue::Bytes(u.hyphenated().to_string().into_bytes()),
    }
}

/// Microseconds of a nanosecond field (a leap second's 1_000_000_000+ stays in range).
fn micros(nanos: u32) -> u32 {
    (nanos / 1000).min(999_999)
}

fn my_datetime(t: &NaiveDateTime) -> MyValue {
    MyValue::Date(
        t.year() as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        micros(t.nanosecond()),
    )
}

/// Text of an introspection cell (information_schema may answer in either form).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::Decimal(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Integer of an introspection cell.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Decimal(d) => d.to_i64(),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Decodes one result cell, by `kind` when given, else by the column's type.
fn decode(v: MyValue, column: &mysql_async::Column, kind: Option<&Kind>) -> Result<Value, ConvertError> {
    let kind = kind.filter(|k| !matches!(k, Kind::Any));
    let Some(kind) = kind else {
        return decode_native(v, column);
    };
    match v {
        MyValue::NULL => Ok(Value::Null),
        MyValue::Bytes(b) => match kind {
            // Bytes stay raw (parse_text would read a "\x" prefix as hex).
            Kind::Bytes { .. } => kind.check_stored(Value::Bytes(b)),
            // What a column holds is its value, even an ENUM's '' for a label it did
            // not know: only writes are held to the labels.
            Kind::Text { .. } => {
                let s = String::from_utf8(b).map_err(|_| ConvertError("is not valid UTF-8 text".into()))?;
                kind.check_stored(Value::Text(s))
            }
            _ => {
                let s = String::from_utf8(b).map_err(|_| ConvertError("is not valid UTF-8 text".into()))?;
                kind.parse_text(&s)
            }
        },
        MyValue::Int(i) => kind.check(Value::Int(i)),
        MyValue::UInt(u) => kind.check(uint(u)),
        // A FLOAT(M,D) column is a decimal kind: its single means its own shortest text.
        MyValue::Float(f) if matches!(kind, Kind::Decimal { .. }) => kind.parse_text(&f.to_string()),
        // A single says its shortest text (0.1, not 0.10000000149011612).
        MyValue::Float(f) => kind.check(Value::Float(lockgate_core::value::f32_value(f))),
        MyValue::Double(f) => kind.check(Value::Float(f)),
        MyValue::Date(y, m, d, h, mi, s, us) => {
            let dt = datetime(y, m, d, h, mi, s, us)?;
            match kind {
                Kind::Date => Ok(Value::Date(dt.date())),
                Kind::Timestamp { .. } | Kind::TimestampTz { .. } => kind.check(Value::Timestamp(dt)),
                _ => kind.parse_text(&dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
            }
        }
        MyValue::Time(neg, days, h, mi, s, us) => {
            let t = time(neg, days, h, mi, s, us)?;
            match kind {
                Kind::Time { .. } => kind.check(Value::Time(t)),
                _ => kind.parse_text(&t.format("%H:%M:%S%.6f").to_string()),
            }
        }
    }
}

/// Decodes a cell by the result column's type alone.
fn decode_native(v: MyValue, column: &mysql_async::Column) -> Result<Value, ConvertError> {
    use ColumnType as T;
    let ty = column.column_type();
    match v {
        MyValue::NULL => Ok(Value::Null),
        MyValue::Int(i) => Ok(Value::Int(i)),
        MyValue::UInt(u) => Ok(uint(u)),
        MyValue::Float(f) => Ok(Value::Float(lockgate_core::value::f32_value(f))),
        MyValue::Double(f) => Ok(Value::Float(f)),
        MyValue::Date(y, m, d, h, mi, s, us) => {
            let dt = datetime(y, m, d, h, mi, s, us)?;
            Ok(match ty {
                T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => Value::Date(dt.date()),
                T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => Value::TimestampTz(dt.and_utc()),
                _ => Value::Timestamp(dt),
            })
        }
        MyValue::Time(neg, days, h, mi, s, us) => Ok(Value::Time(time(neg, days, h, mi, s, us)?)),
        MyValue::Bytes(b) => {
            let as_text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| ConvertError("is not valid UTF-8 text".into()));
            match ty {
                T::MYSQL_TYPE_TINY
                | T::MYSQL_TYPE_SHORT
                | T::MYSQL_TYPE_INT24
                | T::MYSQL_TYPE_LONG
                | T::MYSQL_TYPE_LONGLONG
                | T::MYSQL_TYPE_YEAR => {
                    let s = as_text(b)?;
                    match s.parse::<i64>() {
                        Ok(i) => Ok(Value::Int(i)),
                        // A BIGINT UNSIGNED past i64 stays exact as a decimal.
                        Err(_) => Decimal::parse(&s)
                            .map(Value::Decimal)
                            .ok_or_else(|| ConvertError(format!("{s:?} is not an integer"))),
                    }
                }
                // FLOAT is single precision; read it as such, as the binary protocol does.
                T::MYSQL_TYPE_FLOAT => Kind::Float { bytes: 4 }.parse_text(&as_text(b)?),
                T::MYSQL_TYPE_DOUBLE => Kind::Float { bytes: 8 }.parse_text(&as_text(b)?),
                T::MYSQL_TYPE_DECIMAL | T::MYSQL_TYPE_NEWDECIMAL => {
                    let s = as_text(b)?;
                    Decimal::parse(&s)
                        .map(Value::Decimal)
                        .ok_or_else(|| ConvertError(format!("{s:?} is not a decimal number")))
                }
                T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => Ok(Value::Date(parse_date(&as_text(b)?)?)),
                T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => {
                    Ok(Value::Timestamp(parse_timestamp(&as_text(b)?)?))
                }
                T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => {
                    Ok(Value::TimestampTz(parse_timestamptz(&as_text(b)?)?))
                }
                T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => Ok(Value::Time(parse_time(&as_text(b)?)?)),
                T::MYSQL_TYPE_JSON => Kind::Json.parse_text(&as_text(b)?),
                T::MYSQL_TYPE_BIT | T::MYSQL_TYPE_GEOMETRY => Ok(Value::Bytes(b)),
                T::MYSQL_TYPE_NULL => Ok(Value::Null),
                // Strings and blobs: the binary character set (63) marks bytes.
                _ if column.character_set() == 63 => Ok(Value::Bytes(b)),
                _ => match String::from_utf8(b) {
                    Ok(s) => Ok(Value::Text(s)),
                    Err(e) => Ok(Value::Bytes(e.into_bytes())),
                },
            }
        }
    }
}

/// An unsigned integer: past i64 it stays exact as a decimal.
fn uint(u: u64) -> Value {
    match i64::try_from(u) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Decimal(Decimal::parse(&u.to_string()).expect("the digits of an integer are a decimal")),
    }
}

fn datetime(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Result<NaiveDateTime, ConvertError> {
    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .and_then(|date| date.and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us))
        .ok_or_else(|| {
            ConvertError(format!(
                "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a valid date (zero dates are outside the range all engines store)"
            ))
        })
}

fn time(neg: bool, days: u32, h: u8, mi: u8, s: u8, us: u32) -> Result<NaiveTime, ConvertError> {
    let hours = days * 24 + u32::from(h);
    if neg || hours >= 24 {
        return Err(ConvertError(format!(
            "{}{hours:02}:{mi:02}:{s:02} is not a time of day (00:00:00 to 23:59:59.999999 is what all engines store)",
            if neg { "-" } else { "" }
        )));
    }
    NaiveTime::from_hms_micro_opt(hours, u32::from(mi), u32::from(s), us)
        .ok_or_else(|| ConvertError(format!("{hours:02}:{mi:02}:{s:02} is not a valid time")))
}

/// Appends one row in LOAD DATA's format: tab-separated, `\N` for NULL, backslash
/// escapes, one line per row.
fn encode_row(out: &mut Vec<u8>, values: &[Value], hex: &[bool], ordinal: Option<usize>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        encode_value(out, v, hex.get(i).copied().unwrap_or(false));
    }
    if let Some(n) = ordinal {
        if !values.is_empty() {
            out.push(b'\t');
        }
        out.extend_from_slice(n.to_string().as_bytes());
    }
    out.push(b'\n');
}

fn encode_value(out: &mut Vec<u8>, v: &Value, hex: bool) {
    use std::io::Write;
    if hex {
        // A hex column carries every non-NULL value as the hex of its bytes.
        let bytes: std::borrow::Cow<'_, [u8]> = match v {
            Value::Null => {
                out.extend_from_slice(b"\\N");
                return;
            }
            Value::Bytes(b) => b.into(),
            other => {
                let mut text = Vec::new();
                encode_value(&mut text, other, false);
                text.into()
            }
        };
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        for b in bytes.iter() {
            out.push(DIGITS[(b >> 4) as usize]);
            out.push(DIGITS[(b & 15) as usize]);
        }
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = match v {
        Value::Null => out.write_all(b"\\N"),
        Value::Bool(b) => out.write_all(if *b { b"1" } else { b"0" }),
        Value::Int(i) => write!(out, "{i}"),
        Value::Float(f) => {
            // Display never uses an exponent; very large or small values would
            // spell out hundreds of digits.
            let a = f.abs();
            if a != 0.0 && !(1e-5..1e16).contains(&a) {
                write!(out, "{f:e}")
            } else {
                write!(out, "{f}")
            }
        }
        Value::Decimal(d) => out.write_all(d.as_str().as_bytes()),
        Value::Text(s) => {
            escape_into(out, s.as_bytes());
            Ok(())
        }
        Value::Bytes(b) => {
            escape_into(out, b);
            Ok(())
        }
        // Value's own text (written by hand; chrono's strftime parses its format on
        // every call). The session is UTC, so an instant goes as its UTC wall time.
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => write!(out, "{v}"),
        Value::TimestampTz(t) => write!(out, "{}", Value::Timestamp(t.naive_utc())),
        Value::Json(j) => {
            escape_into(out, j.to_string().as_bytes());
            Ok(())
        }
        Value::Uuid(u) => write!(out, "{}", u.hyphenated()),
    };
}

/// Escapes what LOAD DATA (FIELDS ESCAPED BY '\\') would otherwise read as syntax.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

/// The kind of a prepared statement's result column, from its wire type (the
/// declared length and flags are what the protocol gives, so text limits are unknown).
fn column_kind(c: &mysql_async::Column) -> Kind {
    use mysql_async::consts::ColumnFlags;
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let int = |bytes| Kind::Int { bytes, unsigned };
    // A temporal result column's decimals are its fractional-second digits.
    let fsp = || c.decimals().min(MAX_FSP);
    match c.column_type() {
        ColumnType::MYSQL_TYPE_TINY if c.column_length() == 1 => Kind::Bool,
        ColumnType::MYSQL_TYPE_TINY => int(1),
        ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => int(2),
        ColumnType::MYSQL_TYPE_INT24 => int(3),
        ColumnType::MYSQL_TYPE_LONG => int(4),
        ColumnType::MYSQL_TYPE_LONGLONG => int(8),
        ColumnType::MYSQL_TYPE_FLOAT => Kind::Float { bytes: 4 },
        ColumnType::MYSQL_TYPE_DOUBLE => Kind::Float { bytes: 8 },
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => Kind::Decimal {
            precision: None,
            scale: Some(c.decimals() as u32),
            max_significant: None,
        },
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => Kind::Date,
        ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => Kind::Time { fsp: fsp() },
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => Kind::Timestamp { fsp: fsp() },
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => Kind::TimestampTz {
            epoch32: true,
            fsp: fsp(),
        },
        ColumnType::MYSQL_TYPE_JSON => Kind::Json,
        ColumnType::MYSQL_TYPE_BIT => Kind::Bytes {
            max_bytes: None,
            fixed: false,
        },
        ColumnType::MYSQL_TYPE_VARCHAR
        | ColumnType::MYSQL_TYPE_VAR_STRING
        | ColumnType::MYSQL_TYPE_STRING
        | ColumnType::MYSQL_TYPE_ENUM
        | ColumnType::MYSQL_TYPE_SET
        | ColumnType::MYSQL_TYPE_TINY_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
        | ColumnType::MYSQL_TYPE_BLOB => {
            // Character set 63 is binary: a blob, not text.
            if c.character_set() == 63 {
                Kind::Bytes {
                    max_bytes: None,
                    fixed: false,
                }
            } else {
                Kind::Text {
                    max_chars: None,
                    max_bytes: None,
                    form: TextForm::Free,
                }
            }
        }
        other => Kind::Unsupported {
            type_name: format!("{other:?}").trim_start_matches("MYSQL_TYPE_").to_lowercase(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_columns_rows_and_constraints() {
        let e = server_error(1048, "Column 'name' cannot be null");
        assert_eq!((e.column.as_deref(), e.row), (Some("name"), None));
        let e = server_error(1406, "Data too long for column 'x' at row 12");
        assert_eq!((e.column.as_deref(), e.row), (Some("x"), Some(12)));
        let e = server_error(1366, "Incorrect integer value: 'a' for column `db`.`t`.`q``x` at row 1");
        assert_eq!((e.column.as_deref(), e.row), (Some("q`x"), Some(1)));
        let e = server_error(4025, "CONSTRAINT `qty_pos` failed for `db`.`t`");
        assert_eq!((e.constraint.as_deref(), e.column), (Some("qty_pos"), None));
        let e = server_error(1062, "Duplicate entry '5' for key 'PRIMARY'");
        assert_eq!((e.constraint.as_deref(), e.row), (Some("PRIMARY"), None));
        let e = server_error(
            1452,
            "Cannot add or update a child row: a foreign key constraint fails (`db`.`c`, CONSTRAINT `fk_p` FOREIGN KEY (`pid`) REFERENCES `p` (`id`))",
        );
        assert_eq!(
            (e.constraint.as_deref(), e.column.as_deref()),
            (Some("fk_p"), Some("pid"))
        );
        let e = server_error(1364, "Field 'y' doesn't have a default value");
        assert_eq!(e.column.as_deref(), Some("y"));
        let e = server_error(
            1263,
            "Column set to default value; NULL supplied to NOT NULL column 'name' at row 3",
        );
        assert_eq!((e.column.as_deref(), e.row), (Some("name"), Some(3)));
        assert!(server_error(1213, "Deadlock found").transient);
        assert!(server_error(1205, "Lock wait timeout exceeded").transient);
        assert!(server_error(2013, "Lost connection").connection_lost);
    }

    #[test]
    fn load_data_encoding_escapes_syntax() {
        let mut out = Vec::new();
        let values = vec![
            Value::Text("a\tb\nc\\d\re\0".into()),
            Value::Null,
            Value::Bool(true),
            Value::Float(1e300),
            Value::Bytes(vec![0, 255]),
            Value::Text("\\N".into()),
        ];
        encode_row(&mut out, &values, &[false, false, false, false, true, false], Some(7));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\\\d\\re\\0\t\\N\t1\t1e300\t00FF\t\\\\N\t7\n"
        );
    }
}
