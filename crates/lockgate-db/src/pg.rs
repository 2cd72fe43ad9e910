//! PostgreSQL: connections (tokio-postgres), value encoding both ways, introspection
//! from the catalogs, and the COPY fast path.

use crate::conn::BulkOutcome;
use crate::error::{DbError, EngineError};
use crate::types;
use crate::url::DbUrl;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use lockgate_core::{
    copytext, CheckConstraint, Column, Decimal, ForeignKey, Index, Kind, Row, Table, TableName, UniqueConstraint, Value,
};
use std::error::Error as StdError;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls};

/// A PostgreSQL session, always in UTC.
pub struct PgConn {
    client: Client,
    /// A COPY kept open across batches (see [`PgConn::stream_rows`]).
    copy: Option<OpenCopy>,
    /// Prepared statements and table descriptions kept for reuse, when
    /// [`PgConn::cache_statements`] asked for it; `None` (the default) prepares each
    /// query for its one use and describes a table afresh each time.
    kept: Option<Box<Kept>>,
}

/// What a caching session keeps.
#[derive(Default)]
struct Kept {
    /// Prepared statements by SQL text. Only [`PgConn::rows`] fills it, and it takes
    /// `'static` SQL: the introspection's fixed statements, so the set is bounded by
    /// this file's call sites and needs no eviction.
    statements: std::collections::HashMap<&'static str, tokio_postgres::Statement>,
    /// Descriptions by the name they were asked for, each with the catalog stamp
    /// ([`LOOKUP_STAMPED`]) it was read under.
    tables: std::collections::HashMap<TableName, (String, Table)>,
    /// The row estimate read by the last stamped lookup, and of which table.
    estimate: Option<(TableName, f64)>,
    /// Queries kept prepared by [`PgConn::query_kept`], by SQL text.
    queries: std::collections::HashMap<String, tokio_postgres::Statement>,
}

/// The most queries [`PgConn::query_kept`] keeps; past it, they are all closed (a
/// dashboard that pages through this many tables and orders prepares them again).
const KEPT_QUERIES: usize = 64;

/// The most table descriptions a session keeps; past it, they are all dropped (a
/// dashboard that browses this many tables re-reads them as it goes).
const KEPT_TABLES: usize = 256;

/// A table's lookup by name: its oid, its schema and whether that is the current
/// one, then what is given (a stamp), from the table's `pg_class` row `c`.
macro_rules! lookup {
    ($($stamp:literal)?) => {
        concat!(
            "SELECT c.oid, n.nspname::text, n.nspname = current_schema()",
            $($stamp,)?
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = coalesce($1, current_schema()) AND c.relname = $2 AND c.relkind IN ('r', 'p')"
        )
    };
}

/// A table's lookup by name.
const LOOKUP: &str = lookup!();

/// [`LOOKUP`] with a stamp of the catalog rows [`PgConn::describe_oid`] reads (the
/// two change together): the transaction id that wrote each (`xmin`) of the
/// table's `pg_class` row; its columns with their types, the types' schemas, their
/// collations and defaults; its constraints with the tables, schemas and columns
/// they reference (and whether that schema is the current one); its indexes (and
/// whether each is valid) with their `pg_class` rows; its triggers. A DDL statement
/// writes new versions of the catalog rows it changes, so one that changes the
/// description changes the stamp; what PostgreSQL updates in place (row and page
/// counts, by VACUUM and ANALYZE) is no part of a description. Not in it: the text of
/// expressions (defaults, CHECKs, index expressions) that name a sequence or a
/// function renamed since, which a kept description shows by its old name. Each part
/// is positional (`concat` keeps a NULL as an empty field). After the stamp, the
/// table's row estimate (`reltuples` and the statistics' live rows, as a page's
/// count reads them), kept for [`PgConn::take_row_estimate`]: the page that looked
/// the table up then needs no statement of its own for it.
const LOOKUP_STAMPED: &str = lookup!(
    ", concat_ws('/', c.oid, n.nspname = current_schema(), c.xmin, \
     coalesce((SELECT string_agg(concat(a.xmin, ':', t.xmin, ':', tn.xmin, ':', co.xmin, ':', d.xmin), ',' \
      ORDER BY a.attnum) FROM pg_attribute a \
      JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace \
      LEFT JOIN pg_collation co ON co.oid = a.attcollation \
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
      WHERE a.attrelid = c.oid AND a.attnum > 0), ''), \
     coalesce((SELECT string_agg(concat(con.xmin, ':', fc.xmin, ':', fn.xmin, ':', fn.nspname = current_schema(), ':', \
        (SELECT string_agg(pa.xmin::text, ';' ORDER BY pa.attnum) FROM pg_attribute pa \
         WHERE pa.attrelid = con.confrelid AND pa.attnum = ANY (con.confkey))), ',' ORDER BY con.oid) \
      FROM pg_constraint con LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
      LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace WHERE con.conrelid = c.oid), ''), \
     coalesce((SELECT string_agg(concat(i.xmin, ':', i.indisvalid, ':', ic.xmin), ',' ORDER BY i.indexrelid) \
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid), ''), \
     coalesce((SELECT string_agg(tg.xmin::text, ',' ORDER BY tg.oid) FROM pg_trigger tg WHERE tg.tgrelid = c.oid), '')), \
     c.reltuples::float8, coalesce(pg_stat_get_live_tuples(c.oid), 0)::float8"
);

/// Whether a cached statement went stale: its table changed (PostgreSQL replans it
/// and refuses a result of another type), or the statement is gone from the session.
fn stale_statement(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code == "26000" || (code == "0A000" && db.message().contains("cached plan"))
    })
}

/// An open `COPY … FROM STDIN`: its statement, its sink and the rows sent so far.
struct OpenCopy {
    sql: String,
    sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>,
    sent: u64,
}

type BoxError = Box<dyn StdError + Sync + Send>;

/// Maps a driver error into the normalized [`EngineError`].
pub(crate) fn engine_error(e: &tokio_postgres::Error) -> EngineError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code().to_string();
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message = format!("{message} ({detail})");
            }
            // COPY names the failing line of its data in the context: "COPY t, line 3, …".
            let row = db.where_().and_then(|w| {
                let after = w.split("line ").nth(1)?;
                after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            });
            // A COPY type error names the column in the context, not in the column field.
            let column = db.column().map(str::to_string).or_else(|| {
                let w = db.where_()?;
                let after = w.split("column ").nth(1)?;
                Some(after.split(':').next()?.trim().to_string())
            });
            EngineError {
                transient: matches!(code.as_str(), "40001" | "40P01" | "55P03"),
                connection_lost: code.starts_with("08") || code == "57P01",
                code,
                message,
                column,
                constraint: db.constraint().map(str::to_string),
                row,
            }
        }
        None => {
            let mut ee = EngineError::new("io", one_line(&e.to_string()));
            ee.connection_lost = e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>());
            ee
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One result row as values: cells decoded by their PostgreSQL types, then checked
/// against `kinds` when given.
fn decode_row(sql: &str, row: &tokio_postgres::Row, kinds: Option<&[Kind]>) -> Result<Vec<Value>, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let Cell(v) = row.try_get::<_, Cell>(i).map_err(|e| {
            DbError::engine(
                sql,
                EngineError::new(
                    "decode",
                    format!("column {}: {}", row.columns()[i].name(), one_line(&e.to_string())),
                ),
            )
        })?;
        let v = match kinds.and_then(|k| k.get(i)) {
            Some(kind) => kind.check_stored(v).map_err(|e| {
                DbError::engine(
                    sql,
                    EngineError::new("decode", format!("column {}: {e}", row.columns()[i].name())),
                )
            })?,
            None => v,
        };
        values.push(v);
    }
    Ok(values)
}

fn err(context: &str, e: tokio_postgres::Error) -> DbError {
    DbError::engine(context, engine_error(&e))
}

/// A bound parameter: encodes a [`Value`] as whatever type PostgreSQL inferred.
struct Param<'a>(&'a Value);

impl std::fmt::Debug for Param<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let v = self.0;
        match (v, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::NUMERIC) => {
                encode_numeric(&Decimal::parse(&i.to_string()).ok_or("bad integer")?, out);
                Ok(IsNull::No)
            }
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Decimal(d), &Type::NUMERIC) => {
                encode_numeric(d, out);
                Ok(IsNull::No)
            }
            (Value::Decimal(d), &Type::INT8) => d.to_i64().ok_or("decimal is not an integer")?.to_sql(ty, out),
            (Value::Bytes(b), &Type::BYTEA) => b.to_sql(ty, out),
            (Value::Date(d), &Type::DATE) => d.to_sql(ty, out),
            (Value::Time(t), &Type::TIME) => t.to_sql(ty, out),
            (Value::Timestamp(t), &Type::TIMESTAMP) => t.to_sql(ty, out),
            (Value::Timestamp(t), &Type::TIMESTAMPTZ) => t.and_utc().to_sql(ty, out),
            (Value::TimestampTz(t), &Type::TIMESTAMPTZ) => t.to_sql(ty, out),
            (Value::TimestampTz(t), &Type::TIMESTAMP) => t.naive_utc().to_sql(ty, out),
            (Value::Json(j), &Type::JSON | &Type::JSONB) => j.to_sql(ty, out),
            (Value::Uuid(u), &Type::UUID) => u.to_sql(ty, out),
            // Text-like targets (text, varchar, enums, unknown) take the canonical text.
            (v, _) => {
                out.put_slice(v.to_string().as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A result cell decoded by its PostgreSQL type.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let v = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)? as i64),
            // A single says its shortest text (0.1, not 0.10000000149011612).
            Type::FLOAT4 => Value::Float(lockgate_core::value::f32_value(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Value::Decimal(decode_numeric(raw)?),
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::DATE => Value::Date(chrono::NaiveDate::from_sql(ty, raw)?),
            Type::TIME => Value::Time(chrono::NaiveTime::from_sql(ty, raw)?),
            Type::TIMESTAMP => Value::Timestamp(chrono::NaiveDateTime::from_sql(ty, raw)?),
            Type::TIMESTAMPTZ => Value::TimestampTz(chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?),
            Type::JSON | Type::JSONB => Value::Json(serde_json::Value::from_sql(ty, raw)?),
            Type::UUID => Value::Uuid(uuid::Uuid::from_sql(ty, raw)?),
            // `character(n)` gives its value padded with spaces that carry no meaning
            // (PostgreSQL drops them in a cast to text): the value is the text without
            // them, as MariaDB's CHAR gives it (ARCHITECTURE.md, type mapping).
            Type::BPCHAR => {
                let s = std::str::from_utf8(raw)?;
                Value::Text(s.trim_end_matches(' ').to_string())
            }
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
                Value::Text(String::from_utf8(raw.to_vec())?)
            }
            _ if matches!(ty.kind(), tokio_postgres::types::Kind::Enum(_)) => {
                Value::Text(String::from_utf8(raw.to_vec())?)
            }
            _ => return Err(format!("lockgate does not map the PostgreSQL type {}", ty.name()).into()),
        };
        Ok(Cell(v))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn from_sql_nullable(ty: &Type, raw: Option<&'a [u8]>) -> Result<Self, BoxError> {
        match raw {
            Some(raw) => Self::from_sql(ty, raw),
            None => Ok(Cell(Value::Null)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Decodes PostgreSQL's binary NUMERIC: base-10000 digits with a weight and a
/// display scale. NaN and infinities are outside the shared domain: an error.
fn decode_numeric(raw: &[u8]) -> Result<Decimal, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("short numeric")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i64;
    let sign = word(2)? as u16;
    let dscale = word(3)? as u16 as usize;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN is outside the shared domain (MariaDB and SQLite store no NaN decimal)".into()),
        _ => return Err("infinity is outside the shared domain".into()),
    }
    let digit = |i: i64| -> Result<i16, BoxError> {
        if i < 0 || i as usize >= ndigits {
            Ok(0)
        } else {
            word(4 + i as usize)
        }
    };
    let mut int = String::new();
    for i in 0..=weight.max(-1) {
        let d = digit(i)?;
        if int.is_empty() {
            if d != 0 {
                int.push_str(&d.to_string());
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut i = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(i)?));
        i += 1;
    }
    frac.truncate(dscale);
    let text = format!(
        "{}{int}{}{frac}",
        if sign == 0x4000 { "-" } else { "" },
        if dscale > 0 { "." } else { "" }
    );
    Decimal::parse(&text).ok_or_else(|| format!("bad numeric {text}").into())
}

/// Encodes an exact decimal as PostgreSQL's binary NUMERIC.
fn encode_numeric(d: &Decimal, out: &mut BytesMut) {
    let s = d.as_str().trim_start_matches('-');
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int = int.trim_start_matches('0');
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let digits: String = format!("{}{int}{frac}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0))
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if d.is_negative() { 0x4000 } else { 0 });
    out.put_u16(frac.len() as u16);
    for g in groups {
        out.put_i16(g);
    }
}

const COPY_CHUNK: usize = 512 * 1024;

fn copy_sql(target: &TableName, columns: &[String], ordinal: Option<&str>) -> String {
    let d = crate::dialect::Dialect(crate::url::Engine::Postgres);
    let mut cols = d.columns(None, columns);
    if let Some(o) = ordinal {
        cols.push_str(&format!(", {}", d.quote(o)));
    }
    format!("COPY {} ({cols}) FROM STDIN", d.table(target))
}

/// One row in COPY text format (`lockgate_core::copytext`, shared with snapshot
/// data files), with its ordinal as a last column when given.
fn encode_row(row: &Row, ordinal: Option<usize>, buf: &mut Vec<u8>) {
    for (i, v) in row.values.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        copytext::encode_value(v, buf);
    }
    if let Some(n) = ordinal {
        use std::io::Write;
        let _ = write!(buf, "\t{n}");
    }
    buf.push(b'\n');
}

/// Takes the buffered chunk to send, leaving an empty buffer of the same capacity.
fn take_chunk(buf: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::replace(buf, Vec::with_capacity(COPY_CHUNK + 64 * 1024)))
}

impl PgConn {
    /// Connects and sets the session to UTC.
    pub async fn connect(url: &DbUrl) -> Result<Self, DbError> {
        let config: tokio_postgres::Config = url.as_str().parse().map_err(|e: tokio_postgres::Error| {
            DbError::BadUrl(format!(
                "bad PostgreSQL URL {}: {}",
                url.redacted(),
                one_line(&e.to_string())
            ))
        })?;
        let (client, connection) = config.connect(NoTls).await.map_err(|e| DbError::Connect {
            url: url.redacted(),
            message: match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => one_line(&e.to_string()),
            },
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection ended: {e}");
            }
        });
        let mut conn = PgConn {
            client,
            copy: None,
            kept: None,
        };
        conn.batch("SET TIME ZONE 'UTC'; SET application_name = 'lockgate'")
            .await?;
        Ok(conn)
    }

    /// Keeps the statements of this session's introspection (the table list, a
    /// table's lookup and description: five statements per table read) prepared and
    /// reuses them: run again, each skips its parse and a round trip, and PostgreSQL
    /// settles on a generic plan for it (their values are a name or an oid). For a
    /// session that reads the same tables again and again (the dashboard's pooled
    /// connections). Queries ([`PgConn::query`] and the rest) are still prepared for
    /// their one use and planned for their values: a search's `ILIKE $1` planned
    /// generically, without its pattern, took twice as long. It also keeps each
    /// table's description, checked against the catalog on every use
    /// ([`PgConn::describe`]).
    pub fn cache_statements(&mut self) {
        self.kept.get_or_insert_with(Box::default);
    }

    /// The statement for `sql`: the kept one when statements are cached, else one
    /// prepared for this use (what the driver does for a query given as text).
    async fn statement(&mut self, sql: &'static str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(stmt) = self.kept.as_ref().and_then(|k| k.statements.get(sql)) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        if let Some(kept) = self.kept.as_mut() {
            kept.statements.insert(sql, stmt.clone());
        }
        Ok(stmt)
    }

    /// Runs `sql` (through [`PgConn::statement`]); a kept statement that went stale is
    /// forgotten and the query prepared and run once more.
    async fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let stmt = self.statement(sql).await?;
        match self.client.query(&stmt, params).await {
            Err(e) if self.kept.is_some() && stale_statement(&e) => {
                if let Some(kept) = self.kept.as_mut() {
                    kept.statements.remove(sql);
                }
                let stmt = self.statement(sql).await?;
                self.client.query(&stmt, params).await
            }
            other => other,
        }
    }

    /// Runs statements without parameters.
    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        if self.copy.is_some() {
            if sql.trim().eq_ignore_ascii_case("ROLLBACK") {
                // Abandoning a stream: dropping its sink sends CopyFail, then ROLLBACK runs.
                self.copy = None;
            } else {
                self.finish_stream().await?;
            }
        }
        self.client.batch_execute(sql).await.map_err(|e| err(sql, e))
    }

    /// Appends rows to one COPY kept open across calls (opened on the first call, and
    /// again when the target or columns change): one COPY for a whole load, so the
    /// server never waits between batches. Finish it with [`PgConn::finish_stream`];
    /// an error may surface on a later call or at the finish.
    pub async fn stream_rows(&mut self, target: &TableName, columns: &[String], rows: &[Row]) -> Result<u64, DbError> {
        let sql = copy_sql(target, columns, None);
        if self.copy.as_ref().is_some_and(|c| c.sql != sql) {
            self.finish_stream().await?;
        }
        let context = format!("copying rows into {target}");
        if self.copy.is_none() {
            let sink = self
                .client
                .copy_in::<_, Bytes>(&sql)
                .await
                .map_err(|e| err(&context, e))?;
            self.copy = Some(OpenCopy {
                sql,
                sink: Box::pin(sink),
                sent: 0,
            });
        }
        let copy = self.copy.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
        for row in rows {
            encode_row(row, None, &mut buf);
            if buf.len() >= COPY_CHUNK {
                copy.sink
                    .send(take_chunk(&mut buf))
                    .await
                    .map_err(|e| err(&context, e))?;
            }
        }
        if !buf.is_empty() {
            copy.sink
                .send(take_chunk(&mut buf))
                .await
                .map_err(|e| err(&context, e))?;
        }
        copy.sent += rows.len() as u64;
        Ok(rows.len() as u64)
    }

    /// Ends the open COPY, if any; returns the rows it wrote.
    pub async fn finish_stream(&mut self) -> Result<u64, DbError> {
        let Some(mut copy) = self.copy.take() else { return Ok(0) };
        let written = copy
            .sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| err("finishing COPY", e))?;
        if written != copy.sent {
            return Err(DbError::engine(
                "finishing COPY",
                EngineError::new(
                    "lockgate",
                    format!("COPY wrote {written} rows of the {} sent", copy.sent),
                ),
            ));
        }
        Ok(written)
    }

    /// Runs one statement with bound values.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.finish_stream().await?;
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.client.execute(sql, &refs).await.map_err(|e| err(sql, e))
    }

    /// Runs a query; cells are decoded by their PostgreSQL types, then checked
    /// against `kinds` when given (as values the columns hold: `Kind::check_stored`).
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        self.finish_stream().await?;
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(sql, &refs).await.map_err(|e| err(sql, e))?;
        rows.iter().map(|row| decode_row(sql, row, kinds)).collect()
    }

    /// [`PgConn::query`], with the statement kept prepared on a caching session
    /// ([`PgConn::cache_statements`]; at most [`KEPT_QUERIES`]): run again, it skips
    /// its parse and a round trip. Only for a query whose plan does not depend on its
    /// values (a page's keyset order): a kept statement may be planned generically,
    /// and a search's `ILIKE $1` planned without its pattern took twice as long. A kept
    /// statement PostgreSQL refuses (its table changed, or it is gone) is prepared
    /// again and run once more.
    pub async fn query_kept(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        if self.kept.is_none() {
            return self.query(sql, params, kinds).await;
        }
        self.finish_stream().await?;
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut retried = false;
        let rows = loop {
            let kept = self.kept.as_mut().expect("caching");
            let stmt = match kept.queries.get(sql) {
                Some(stmt) => stmt.clone(),
                None => {
                    let stmt = self.client.prepare(sql).await.map_err(|e| err(sql, e))?;
                    let kept = self.kept.as_mut().expect("caching");
                    if kept.queries.len() >= KEPT_QUERIES {
                        kept.queries.clear();
                    }
                    kept.queries.insert(sql.to_string(), stmt.clone());
                    stmt
                }
            };
            match self.client.query(&stmt, &refs).await {
                Err(e) if !retried && stale_statement(&e) => {
                    if let Some(kept) = self.kept.as_mut() {
                        kept.queries.remove(sql);
                    }
                    retried = true;
                }
                other => break other.map_err(|e| err(sql, e))?,
            }
        };
        rows.iter().map(|row| decode_row(sql, row, kinds)).collect()
    }

    /// Runs a query and hands its rows to `f` in pages of up to `page` rows as they
    /// arrive (the driver stops reading the socket while a page is handled), so a
    /// result of any size is read with the memory of one page. An error of `f` stops
    /// the pages and drops the stream: tokio-postgres's connection task then reads the
    /// rest of the result up to the server's ReadyForQuery and discards it, so the
    /// connection (and its transaction) is usable after.
    pub async fn query_pages<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: Option<&[Kind]>,
        page: usize,
        f: &mut (dyn FnMut(Vec<Vec<Value>>) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        use futures_util::TryStreamExt;
        self.finish_stream().await?;
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs = params.iter().map(|p| p as &(dyn ToSql + Sync));
        let stream = self.client.query_raw(sql, refs).await.map_err(|e| err(sql, e))?;
        let mut stream = std::pin::pin!(stream);
        let page = page.max(1);
        let mut rows = Vec::with_capacity(page);
        while let Some(row) = stream.try_next().await.map_err(|e| err(sql, e))? {
            rows.push(decode_row(sql, &row, kinds)?);
            if rows.len() == page {
                f(std::mem::replace(&mut rows, Vec::with_capacity(page)))?;
            }
        }
        if !rows.is_empty() {
            f(rows)?;
        }
        Ok(())
    }

    /// The result columns of a query (names and kinds), from preparing it; nothing runs.
    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<(String, Kind)>, DbError> {
        self.finish_stream().await?;
        let stmt = self.client.prepare(sql).await.map_err(|e| err(sql, e))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| {
                let t = c.type_().name();
                (c.name().to_string(), types::pg_kind(t, t, false))
            })
            .collect())
    }

    /// Every user table; names in the current schema come without schema.
    pub async fn list_tables(&mut self) -> Result<Vec<TableName>, DbError> {
        let sql = "SELECT n.nspname::text, c.relname::text, n.nspname = current_schema() \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
                   ORDER BY 3 DESC, 1, 2";
        let rows = self.rows(sql, &[]).await.map_err(|e| err("listing tables", e))?;
        Ok(rows
            .iter()
            .map(|r| TableName {
                schema: if r.get::<_, bool>(2) { None } else { Some(r.get(0)) },
                name: r.get(1),
            })
            .collect())
    }

    /// One table by exact name (schema defaults to the current one).
    ///
    /// A caching session ([`PgConn::cache_statements`]) looks the table up with its
    /// catalog stamp ([`LOOKUP_STAMPED`]) and answers with the description it kept
    /// when the stamp is the same: one statement instead of five.
    pub async fn describe(&mut self, name: &TableName) -> Result<Option<Table>, DbError> {
        let ctx = |e| err(&format!("reading the definition of table {name}"), e);
        let caching = self.kept.is_some();
        let lookup = if caching { LOOKUP_STAMPED } else { LOOKUP };
        let found = self.rows(lookup, &[&name.schema, &name.name]).await.map_err(ctx)?;
        let Some(found) = found.into_iter().next() else {
            return Ok(None);
        };
        let oid: u32 = found.get(0);
        let in_current: bool = found.get(2);
        let schema: String = found.get(1);
        let stamp: Option<String> = caching.then(|| found.get(3));
        if let Some(kept) = self.kept.as_mut() {
            let (reltuples, live): (f64, f64) = (found.get(4), found.get(5));
            kept.estimate = Some((name.clone(), reltuples.max(live)));
        }
        if let (Some(kept), Some(stamp)) = (&self.kept, &stamp) {
            if let Some((_, table)) = kept.tables.get(name).filter(|(s, _)| s == stamp) {
                return Ok(Some(table.clone()));
            }
        }
        let table = self.describe_oid(name, oid, schema, in_current).await.map_err(ctx)?;
        if let (Some(kept), Some(stamp)) = (self.kept.as_mut(), stamp) {
            if kept.tables.len() >= KEPT_TABLES {
                kept.tables.clear();
            }
            kept.tables.insert(name.clone(), (stamp, table.clone()));
        }
        Ok(Some(table))
    }

    /// The row estimate (the larger of `reltuples` and the statistics' live rows; below
    /// zero when there is none) that this caching session's last lookup of `name` read,
    /// once: `None` when that lookup was of another table, or it was taken already.
    pub fn take_row_estimate(&mut self, name: &TableName) -> Option<f64> {
        let kept = self.kept.as_mut()?;
        match &kept.estimate {
            Some((n, _)) if n == name => kept.estimate.take().map(|(_, e)| e),
            _ => None,
        }
    }

    /// The description of the table `oid`, found as `name` in `schema`. Every catalog
    /// row it reads must be stamped by [`LOOKUP_STAMPED`], or a kept description would
    /// miss its change. A unique index that is not valid (a `CREATE UNIQUE INDEX
    /// CONCURRENTLY` that failed, whose rows may hold duplicates) is listed as not
    /// unique: no key (a page's order, an upsert's) may rest on it.
    async fn describe_oid(
        &mut self,
        name: &TableName,
        oid: u32,
        schema: String,
        in_current: bool,
    ) -> Result<Table, tokio_postgres::Error> {
        let cols = self
            .rows(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, t.typtype = 'e', \
                 NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), (a.attidentity <> '' OR a.attgenerated <> ''), \
                 (SELECT c.collname::text FROM pg_collation c WHERE c.oid = a.attcollation AND a.attcollation <> t.typcollation) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await?;
        let columns = cols
            .iter()
            .map(|r| {
                let default: Option<String> = r.get(5);
                let auto: bool = r.get(6);
                Column {
                    name: r.get(0),
                    data_type: r.get(1),
                    kind: types::pg_kind(r.get::<_, &str>(2), r.get::<_, &str>(1), r.get(3)),
                    nullable: r.get(4),
                    auto: auto || default.as_deref().is_some_and(|d| d.starts_with("nextval(")),
                    // Only a collation other than the type's default.
                    collation: r.get(7),
                    default,
                }
            })
            .collect();

        let cons = self
            .rows(
                "SELECT con.conname::text, con.contype::text, \
                 ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), \
                 ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i), \
                 fn.nspname::text, fc.relname::text, fn.nspname = current_schema(), pg_get_constraintdef(con.oid) \
                 FROM pg_constraint con LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
                 LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
                 WHERE con.conrelid = $1 ORDER BY con.conname",
                &[&oid],
            )
            .await?;
        let mut table = Table {
            name: TableName {
                schema: if in_current { None } else { Some(schema) },
                name: name.name.clone(),
            },
            columns,
            primary_key: Vec::new(),
            unique: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            checks: Vec::new(),
            engine: None,
            unchecked: Vec::new(),
        };
        for c in &table.columns {
            if c.data_type != "text"
                && matches!(c.kind, lockgate_core::Kind::Text { max_chars: None, .. })
                && !["character varying", "character", "name"].contains(&c.data_type.as_str())
            {
                // An enum or citext: labels and case are the engine's to judge.
                table
                    .unchecked
                    .push(format!("column {} of type {}", c.name, c.data_type));
            }
        }
        for r in &cons {
            let cname: String = r.get(0);
            let kind: String = r.get(1);
            let cols: Vec<String> = r.get(2);
            match kind.as_str() {
                "p" => table.primary_key = cols,
                "u" => table.unique.push(UniqueConstraint {
                    name: cname,
                    columns: cols,
                }),
                "f" => {
                    let parents: Vec<String> = r.get(3);
                    let current: Option<bool> = r.get(6);
                    table.foreign_keys.push(ForeignKey {
                        name: cname,
                        columns: cols.into_iter().zip(parents).collect(),
                        references: TableName {
                            schema: if current == Some(true) { None } else { r.get(4) },
                            name: r.get::<_, Option<String>>(5).unwrap_or_default(),
                        },
                    });
                }
                "x" => table.unchecked.push(format!("exclusion constraint {cname}")),
                "c" => {
                    let def: String = r.get(7);
                    let expr = def
                        .strip_prefix("CHECK ")
                        .unwrap_or(&def)
                        .trim_end_matches(" NOT VALID")
                        .to_string();
                    // conkey lists the columns a CHECK reads.
                    table.checks.push(CheckConstraint {
                        name: cname,
                        expression: expr,
                        columns: cols,
                    });
                }
                _ => {}
            }
        }

        let idx = self
            .rows(
                "SELECT ic.relname::text, i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL, \
                 ARRAY(SELECT pg_get_indexdef(i.indexrelid, k.n, true) FROM generate_series(1, i.indnkeyatts) k(n) ORDER BY k.n), \
                 i.indisunique AND (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 ORDER BY 1",
                &[&oid],
            )
            .await?;
        for r in &idx {
            if r.get::<_, bool>(3) {
                table
                    .unchecked
                    .push(format!("partial or expression unique index {}", r.get::<_, String>(0)));
            }
            let columns: Vec<String> = r.get::<_, Vec<String>>(2).into_iter().map(|c| unquote_pg(&c)).collect();
            table.indexes.push(Index {
                name: r.get(0),
                columns,
                unique: r.get(1),
            });
        }
        let triggers = self
            .rows(
                "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY 1",
                &[&oid],
            )
            .await?;
        table
            .unchecked
            .extend(triggers.iter().map(|r| format!("trigger {}", r.get::<_, String>(0))));
        Ok(table)
    }

    /// COPY … FROM STDIN in text format, streamed in chunks so memory stays bounded
    /// by the batch. A failure anywhere fails the whole COPY (PostgreSQL aborts the
    /// transaction); the error's `row` is the failing row's 1-based position.
    pub async fn bulk_insert(
        &mut self,
        target: &TableName,
        columns: &[String],
        rows: &[Row],
        ordinal: Option<&str>,
    ) -> Result<BulkOutcome, DbError> {
        self.finish_stream().await?;
        let sql = copy_sql(target, columns, ordinal);
        let context = format!("copying rows into {target}");
        let sink = self
            .client
            .copy_in::<_, Bytes>(&sql)
            .await
            .map_err(|e| err(&context, e))?;
        futures_util::pin_mut!(sink);
        let mut buf = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
        for (n, row) in rows.iter().enumerate() {
            encode_row(row, ordinal.map(|_| n), &mut buf);
            if buf.len() >= COPY_CHUNK {
                sink.send(take_chunk(&mut buf)).await.map_err(|e| err(&context, e))?;
            }
        }
        if !buf.is_empty() {
            sink.send(take_chunk(&mut buf)).await.map_err(|e| err(&context, e))?;
        }
        let written = sink.as_mut().finish().await.map_err(|e| err(&context, e))?;
        Ok(BulkOutcome {
            written,
            row_errors: Vec::new(),
        })
    }

    /// Whether the session is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// What asks the server to cancel the statement this session runs (over a
    /// connection of its own, as `psql`'s Ctrl-C does).
    pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.client.cancel_token()
    }
}

/// `pg_get_indexdef` quotes names that need it; show them as plain names.
fn unquote_pg(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trip() {
        for s in [
            "0",
            "1",
            "-1.50",
            "12345.6789",
            "0.0001",
            "100000000",
            "-0.000000001",
            "99999999999999999999999999999999999.999999999999999999999999999999",
            "10000.0000",
        ] {
            let d = Decimal::parse(s).unwrap();
            let mut buf = BytesMut::new();
            encode_numeric(&d, &mut buf);
            let back = decode_numeric(&buf).unwrap();
            assert_eq!(back.as_str(), d.as_str(), "{s}");
        }
    }
}
