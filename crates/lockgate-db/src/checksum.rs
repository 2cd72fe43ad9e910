//! Row checksums computed inside the databases, the ground `lockgate verify` stands
//! on: each row of a table becomes a canonical text that is byte for byte the same
//! on SQLite, PostgreSQL and MariaDB for the same values, and each database hashes
//! it (the first 64 bits of its MD5, the one hash both servers have) and sums the
//! hashes of a key range, so only a count and a sum per range cross the network.
//!
//! The canonical text (ARCHITECTURE.md, verify): fields joined by `|`, SQL NULL as
//! `N`; a text as its UTF-8 byte length, `:`, and the text (so `('a|b', 'c')` and
//! `('a', 'b|c')` differ, and so do NULL and `''`); bytes as lower-case hex;
//! integers and booleans (`0`, `1`) in decimal; decimals at the scale the pair
//! compares them at; dates `YYYY-MM-DD`, times `HH:MM:SS.ffffff`, timestamps
//! `YYYY-MM-DD HH:MM:SS.ffffff` (instants in UTC), always six fractional digits;
//! UUIDs in lower-case hyphenated form; floats as Rust's `{:e}` of the double (the
//! shortest digits that read back as it: `1.5e0`, `-2e-5`; `0e0` for both zeros,
//! `NaN`, `inf`, `-inf`). PostgreSQL and MariaDB build it with the SQL of
//! [`field_sql`]; SQLite, which has no MD5, through [`register_sqlite`]'s function,
//! which runs [`write_field`], the same code the leaf comparison uses.
//!
//! Sums are compared modulo 2^64: PostgreSQL sums the signed 64-bit hashes into a
//! numeric, MariaDB the unsigned ones into a DECIMAL, SQLite wraps; [`sum_mod64`]
//! brings each to the same `u64`.

use crate::url::Engine;
use lockgate_core::{Decimal, Kind, Value};
use md5::{Digest, Md5};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};

/// How a column enters the canonical text: decided for a pair of columns (the same
/// scale for two decimals, say), so that both sides write the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canon {
    /// Booleans as `0` / `1`.
    Bool,
    /// Integers.
    Int,
    /// Exact decimals at this scale (rounded half away from zero).
    Decimal {
        /// Digits after the point.
        scale: u32,
    },
    /// Doubles, by Rust's `{:e}`.
    Float,
    /// Texts, length-prefixed.
    Text,
    /// Bytes, as hex.
    Bytes,
    /// Dates.
    Date,
    /// Times of day, six fractional digits.
    Time,
    /// Timestamps without zone, six fractional digits.
    Timestamp,
    /// Instants, in UTC, six fractional digits.
    TimestampUtc,
    /// UUIDs.
    Uuid,
}

/// The SQL (PostgreSQL or MariaDB) of the canonical text of the column expression
/// `col` (already quoted), `N` when it is NULL. SQLite has none: see
/// [`register_sqlite`].
pub fn field_sql(engine: Engine, col: &str, canon: &Canon) -> String {
    let pg = engine == Engine::Postgres;
    let text = match canon {
        Canon::Bool if pg => format!("({col})::int::text"),
        Canon::Int if pg => format!("({col})::text"),
        Canon::Decimal { scale } if pg => format!("round(({col})::numeric, {scale})::text"),
        Canon::Float if pg => float_pg(col),
        Canon::Text if pg => format!("octet_length({col})::text || ':' || ({col})::text"),
        Canon::Bytes if pg => format!("encode({col}, 'hex')"),
        Canon::Date if pg => format!("to_char({col}, 'YYYY-MM-DD')"),
        Canon::Time if pg => format!("to_char({col}, 'HH24:MI:SS.US')"),
        Canon::Timestamp if pg => format!("to_char({col}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        Canon::TimestampUtc if pg => format!("to_char(({col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"),
        Canon::Uuid if pg => format!("lower(({col})::text)"),
        Canon::Bool | Canon::Int => format!("CAST({col} AS CHAR)"),
        Canon::Decimal { scale } => format!("CAST(CAST({col} AS DECIMAL(65, {scale})) AS CHAR)"),
        Canon::Float => float_mariadb(col),
        // The column's own character set may not be UTF-8: its bytes are counted and
        // hashed as UTF-8, as the other side's.
        Canon::Text => format!("CONCAT(LENGTH(CONVERT({col} USING utf8mb4)), ':', CONVERT({col} USING utf8mb4))"),
        Canon::Bytes => format!("LOWER(HEX({col}))"),
        Canon::Date => format!("DATE_FORMAT({col}, '%Y-%m-%d')"),
        Canon::Time => format!("TIME_FORMAT({col}, '%H:%i:%s.%f')"),
        // Lockgate's MariaDB sessions run in UTC, so a TIMESTAMP reads as UTC.
        Canon::Timestamp | Canon::TimestampUtc => format!("DATE_FORMAT({col}, '%Y-%m-%d %H:%i:%s.%f')"),
        Canon::Uuid => format!("LOWER(CAST({col} AS CHAR))"),
    };
    if pg {
        format!("coalesce({text}, 'N')")
    } else {
        format!("COALESCE({text}, 'N')")
    }
}

/// PostgreSQL's shortest text of a double (`1e-05`, `123.5`, `1.5e+15`) rewritten
/// into `{:e}`'s form.
fn float_pg(col: &str) -> String {
    let s = format!("abs({col})::text");
    let int = format!("split_part({s}, '.', 1)");
    let frac = format!("split_part({s}, '.', 2)");
    let digits_big = format!("rtrim({int} || {frac}, '0')");
    let digits_small = format!("ltrim({frac}, '0')");
    let mantissa =
        |d: &str| format!("left({d}, 1) || CASE WHEN length({d}) > 1 THEN '.' || substr({d}, 2) ELSE '' END");
    format!(
        "CASE WHEN {col} = 0 THEN '0e0' WHEN {col} = 'NaN'::float8 THEN 'NaN' \
         WHEN {col} = 'Infinity'::float8 THEN 'inf' WHEN {col} = '-Infinity'::float8 THEN '-inf' \
         ELSE CASE WHEN {col} < 0 THEN '-' ELSE '' END || CASE \
         WHEN strpos({s}, 'e') > 0 THEN split_part({s}, 'e', 1) || 'e' || split_part({s}, 'e', 2)::int::text \
         WHEN {int} <> '0' THEN {m_big} || 'e' || (length({int}) - 1)::text \
         ELSE {m_small} || 'e' || (-(length({frac}) - length({digits_small}) + 1))::text END END",
        m_big = mantissa(&digits_big),
        m_small = mantissa(&digits_small),
    )
}

/// MariaDB's text of a double (`0.00001`, `123.5`, `1.5e15`) rewritten into `{:e}`'s
/// form (MariaDB stores no NaN or infinity).
fn float_mariadb(col: &str) -> String {
    let s = format!("CAST(ABS({col}) AS CHAR)");
    let int = format!("SUBSTRING_INDEX({s}, '.', 1)");
    let frac = format!("IF(LOCATE('.', {s}) > 0, SUBSTRING_INDEX({s}, '.', -1), '')");
    let digits_big = format!("TRIM(TRAILING '0' FROM CONCAT({int}, {frac}))");
    let digits_small = format!("TRIM(LEADING '0' FROM {frac})");
    let mantissa = |d: &str| format!("CONCAT(LEFT({d}, 1), IF(LENGTH({d}) > 1, CONCAT('.', SUBSTRING({d}, 2)), ''))");
    format!(
        "CASE WHEN {col} = 0 THEN '0e0' ELSE CONCAT(IF({col} < 0, '-', ''), CASE \
         WHEN LOCATE('e', {s}) > 0 THEN CONCAT(SUBSTRING_INDEX({s}, 'e', 1), 'e', CAST(SUBSTRING_INDEX({s}, 'e', -1) AS SIGNED)) \
         WHEN {int} <> '0' THEN CONCAT({m_big}, 'e', LENGTH({int}) - 1) \
         ELSE CONCAT({m_small}, 'e', -(LENGTH({frac}) - LENGTH({digits_small}) + 1)) END) END",
        m_big = mantissa(&digits_big),
        m_small = mantissa(&digits_small),
    )
}

/// The SQL of a row's canonical text: its fields' [`field_sql`] joined by `|`.
pub fn row_sql(engine: Engine, fields: &[(String, Canon)]) -> String {
    let parts: Vec<String> = fields.iter().map(|(c, k)| field_sql(engine, c, k)).collect();
    match engine {
        Engine::Postgres => parts.join(" || '|' || "),
        _ => format!("CONCAT_WS('|', {})", parts.join(", ")),
    }
}

/// The SQL of a row's hash, the first 64 bits of the MD5 of its canonical text:
/// signed on PostgreSQL, unsigned on MariaDB, the registered function on SQLite.
pub fn row_hash_sql(engine: Engine, fields: &[(String, Canon)]) -> String {
    match engine {
        Engine::Postgres => format!("('x' || md5({}))::bit(64)::bigint", row_sql(engine, fields)),
        Engine::Mysql => format!(
            "CAST(CONV(LEFT(MD5({}), 16), 16, 10) AS UNSIGNED)",
            row_sql(engine, fields)
        ),
        Engine::Sqlite => {
            let cols: Vec<&str> = fields.iter().map(|(c, _)| c.as_str()).collect();
            format!("{SQLITE_ROW_HASH}({})", cols.join(", "))
        }
    }
}

/// The name of the row-hash function [`register_sqlite`] adds.
pub const SQLITE_ROW_HASH: &str = "lockgate_row_hash";

/// The name of the wrapping 64-bit sum [`register_sqlite`] adds (SQLite's `sum`
/// fails on overflow, and `total` is a double).
pub const SQLITE_SUM64: &str = "lockgate_sum64";

/// Writes the canonical text of `v` as `canon` says, `N` for NULL. A value of
/// another kind than `canon` (a text in an integer column of SQLite, which keeps
/// what it is given) is written as the text it would read as, so it differs.
pub fn write_field(canon: &Canon, v: &Value, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = match (canon, v) {
        (_, Value::Null) => write!(out, "N"),
        (Canon::Bool, Value::Bool(b)) => write!(out, "{}", u8::from(*b)),
        (Canon::Bool | Canon::Int, Value::Int(i)) => write!(out, "{i}"),
        (Canon::Decimal { scale }, Value::Decimal(d)) => write!(out, "{}", at_scale(d, *scale)),
        (Canon::Decimal { scale }, Value::Int(i)) => match Decimal::parse(&i.to_string()) {
            Some(d) => write!(out, "{}", at_scale(&d, *scale)),
            None => write!(out, "{i}"),
        },
        (Canon::Float, Value::Float(f)) => write!(out, "{}", float_text(*f)),
        (Canon::Float, Value::Int(i)) => write!(out, "{}", float_text(*i as f64)),
        (Canon::Text, Value::Text(t)) => write!(out, "{}:{t}", t.len()),
        (Canon::Bytes, Value::Bytes(b)) => {
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
            Ok(())
        }
        (Canon::Date, Value::Date(d)) => write!(out, "{}", d.format("%Y-%m-%d")),
        (Canon::Time, Value::Time(t)) => write!(out, "{}", t.format("%H:%M:%S%.6f")),
        (Canon::Timestamp, Value::Timestamp(t)) => write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
        (Canon::TimestampUtc, Value::TimestampTz(t)) => write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
        (Canon::TimestampUtc, Value::Timestamp(t)) => write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
        (Canon::Uuid, Value::Uuid(u)) => write!(out, "{}", u.hyphenated()),
        // A UUID kept as text (MariaDB's CHAR(36)).
        (Canon::Uuid, Value::Text(t)) => write!(out, "{}", t.to_lowercase()),
        (_, other) => {
            let t = other.to_string();
            write!(out, "{}:{t}", t.len())
        }
    };
}

/// A decimal's text at `scale` digits after the point, rounded half away from zero
/// as both servers round; no negative zero (neither server has one).
fn at_scale(d: &Decimal, scale: u32) -> String {
    let r = d.round(scale);
    let t = r.with_scale(scale).unwrap_or(r).as_str().to_string();
    match t.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => t,
    }
}

/// A double as `{:e}`, with both zeros `0e0` and the specials named.
pub fn float_text(f: f64) -> String {
    if f == 0.0 {
        "0e0".into()
    } else if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:e}")
    }
}

/// The canonical text of a row.
pub fn row_text(fields: &[Canon], values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for (i, (canon, v)) in fields.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b'|');
        }
        write_field(canon, v, &mut out);
    }
    out
}

/// The hash of a canonical text: the first 8 bytes of its MD5, big-endian (what
/// PostgreSQL's `('x' || md5(t))::bit(64)` and MariaDB's `CONV(LEFT(MD5(t), 16), 16,
/// 10)` read).
pub fn text_hash(text: &[u8]) -> u64 {
    let digest = Md5::digest(text);
    u64::from_be_bytes(digest[..8].try_into().expect("16 bytes"))
}

/// A sum of row hashes as a database gave it (PostgreSQL's numeric of signed ones,
/// MariaDB's DECIMAL of unsigned ones, SQLite's wrapped integer), modulo 2^64.
pub fn sum_mod64(v: &Value) -> Option<u64> {
    match v {
        Value::Null => Some(0),
        Value::Int(i) => Some(*i as u64),
        Value::Decimal(d) => {
            let t = d.as_str();
            let (neg, digits) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            let digits = digits.split('.').next().unwrap_or("0");
            let n: u128 = digits.parse().ok()?;
            let m = (n % (1u128 << 64)) as u64;
            Some(if neg { m.wrapping_neg() } else { m })
        }
        Value::Text(t) => sum_mod64(&Value::Decimal(Decimal::parse(t)?)),
        _ => None,
    }
}

/// Adds [`SQLITE_ROW_HASH`] (the hash of a row of `fields`, each value typed by its
/// kind as the reader types it, then written by [`write_field`]) and [`SQLITE_SUM64`]
/// to `conn`.
pub fn register_sqlite(conn: &rusqlite::Connection, fields: Vec<(Kind, Canon)>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let n = i32::try_from(fields.len()).unwrap_or(i32::MAX);
    conn.create_scalar_function(SQLITE_ROW_HASH, n, flags, move |ctx: &Context<'_>| {
        let mut out = Vec::with_capacity(64);
        for (i, (kind, canon)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b'|');
            }
            let v = crate::sqlite::decode(ctx.get_raw(i), Some(kind))
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            write_field(canon, &v, &mut out);
        }
        Ok(text_hash(&out) as i64)
    })?;
    conn.create_aggregate_function(SQLITE_SUM64, 1, flags, WrappingSum)
}

/// A sum of 64-bit integers that wraps instead of failing.
struct WrappingSum;

impl Aggregate<i64, i64> for WrappingSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<i64> {
        Ok(0)
    }

    fn step(&self, ctx: &mut Context<'_>, sum: &mut i64) -> rusqlite::Result<()> {
        if let Some(v) = ctx.get::<Option<i64>>(0)? {
            *sum = sum.wrapping_add(v);
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, sum: Option<i64>) -> rusqlite::Result<i64> {
        Ok(sum.unwrap_or(0))
    }
}
