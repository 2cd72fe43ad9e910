//! The portable [`Value`] and the column [`Kind`]s it is typed against.
//!
//! The type-mapping table (engine type ↔ `Kind` ↔ engine type) is in the project's
//! ARCHITECTURE.md and is checked by `lockgate-db`'s tests. This module holds the
//! engine-independent half: how text and JSON become typed values for a column, and
//! the limits of the *shared domain*, the values all three engines store losslessly.
//! A value outside it is that row's error ([`ConvertError`]), never silently changed;
//! so is a value a column's own precision would change (a fraction of a second it
//! does not keep, an integer past a float's mantissa, a text past its length, a
//! text that is not exactly one of an ENUM's labels, a short value a BINARY(n)
//! pads), and the error names the value given and what the column would have
//! stored. The one change made on the way in is the engines' own rule for
//! `char(n)`: trailing spaces there are padding, not data, so they are dropped.

use crate::decimal::{self, Decimal};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use std::fmt;

/// One portable value.
#[derive(Clone, Debug)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer (every integer width maps here).
    Int(i64),
    /// A binary floating-point number; always finite.
    Float(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// Text; never contains NUL (PostgreSQL cannot store it).
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A calendar date.
    Date(NaiveDate),
    /// A time of day without zone.
    Time(NaiveTime),
    /// A timestamp without zone.
    Timestamp(NaiveDateTime),
    /// An instant, always held in UTC.
    TimestampTz(DateTime<Utc>),
    /// A JSON document.
    Json(serde_json::Value),
    /// A UUID.
    Uuid(uuid::Uuid),
}

impl PartialEq for Value {
    /// Equality as the data means it: decimals compare numerically, JSON by value.
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Decimal(a), Decimal(b)) => a == b,
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Time(a), Time(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (TimestampTz(a), TimestampTz(b)) => a == b,
            (Json(a), Json(b)) => json_eq(a, b),
            (Uuid(a), Uuid(b)) => a == b,
            _ => false,
        }
    }
}

/// A stable fingerprint (FNV-1a, 64 bits, as hex) of a row's values that reads the
/// same for the values a file gave and for what an engine stored from them: a
/// migration keeps the fingerprint of each row it inserted, and a rollback compares
/// it with the row's fingerprint then to see whether someone changed the row since.
pub fn fingerprint(values: &[Value]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for v in values {
        for b in v.normalized().bytes().chain(std::iter::once(0x1f)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// JSON equality where numbers compare by value (`1.0 == 1`), as engines renormalize them.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (Decimal::parse(&x.to_string()), Decimal::parse(&y.to_string())) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The logical type of a column: what values it holds and the limits it enforces.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// Booleans (PostgreSQL boolean, MariaDB TINYINT(1)/BOOLEAN, SQLite BOOLEAN).
    Bool,
    /// Integers of `bytes` width (1, 2, 3, 4 or 8), signed unless `unsigned`.
    Int {
        /// Storage width in bytes.
        bytes: u8,
        /// MariaDB UNSIGNED.
        unsigned: bool,
    },
    /// Floats of `bytes` width (4 or 8).
    Float {
        /// Storage width in bytes.
        bytes: u8,
    },
    /// Exact decimals, optionally bounded.
    Decimal {
        /// Total digits, when declared.
        precision: Option<u32>,
        /// Digits after the point, when declared.
        scale: Option<u32>,
        /// SQLite NUMERIC affinity keeps only 15 significant digits.
        max_significant: Option<u32>,
    },
    /// Text, optionally bounded in characters or bytes.
    Text {
        /// Limit in characters (VARCHAR(n)), when the engine enforces one.
        max_chars: Option<u64>,
        /// Limit in bytes (MariaDB TEXT is 65,535 bytes), when the engine enforces one.
        max_bytes: Option<u64>,
        /// Which texts read back as written: any ([`TextForm::Free`]), any but
        /// without trailing spaces (`char(n)`, where they are padding), or only
        /// labels (MariaDB ENUM and SET).
        #[serde(skip_serializing_if = "TextForm::is_free")]
        form: TextForm,
    },
    /// Bytes, optionally bounded.
    Bytes {
        /// Limit in bytes, when the engine enforces one.
        max_bytes: Option<u64>,
        /// MariaDB BINARY(n): exactly `max_bytes` bytes; a shorter value would be
        /// padded with zero bytes.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        fixed: bool,
    },
    /// Calendar dates.
    Date,
    /// Times of day.
    Time {
        /// Fractional-second digits the column keeps (0–6; [`MAX_FSP`] when the
        /// type says none, as PostgreSQL's `time` and SQLite's text do).
        fsp: u8,
    },
    /// Timestamps without zone.
    Timestamp {
        /// Fractional-second digits the column keeps (0–6): MariaDB's DATETIME
        /// keeps 0 unless declared DATETIME(n); PostgreSQL's `timestamp` keeps 6.
        fsp: u8,
    },
    /// Instants. `epoch32` marks MariaDB TIMESTAMP, limited to 1970–2038.
    TimestampTz {
        /// Whether only 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC fit.
        epoch32: bool,
        /// Fractional-second digits the column keeps (0–6).
        fsp: u8,
    },
    /// JSON documents.
    Json,
    /// UUIDs.
    Uuid,
    /// A column with no declared type (SQLite): values are kept as given.
    Any,
    /// An engine type outside the mapping (an interval, an array, a geometry…).
    Unsupported {
        /// The engine's name for the type.
        type_name: String,
    },
}

/// Which texts a text column gives back as they were written. The engine types
/// behind each form are in ARCHITECTURE.md (type mapping); a value the column would
/// give back differently is that row's error ([`Kind::check`]), except for the
/// padding of a `char(n)`, which the engines themselves do not count as data.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextForm {
    /// Every text (VARCHAR, TEXT, SQLite's text, a PostgreSQL enum, whose labels
    /// PostgreSQL itself holds values to).
    #[default]
    Free,
    /// Fixed width, `char(n)`: the column pads a value with spaces, and trailing
    /// spaces there are padding, not data: PostgreSQL and MariaDB compare `'ab'`
    /// equal to `'ab   '` and give the value back without them (PostgreSQL as
    /// Lockgate reads it). So a value's trailing spaces are dropped on the way in
    /// and on the way out ([`Kind::check`], [`Kind::check_stored`]), and its
    /// length is that of the text without them.
    Padded,
    /// MariaDB ENUM: one of these labels, exactly. MariaDB matches other texts to a
    /// label regardless of case, accents and trailing spaces, reads a number as a
    /// label's position, and stores anything else as `''` unless `sql_mode` is strict.
    Enum(Labels),
    /// MariaDB SET: labels joined by commas, each at most once, in declaration order
    /// and exact case, or `''`. MariaDB reorders, merges and case-folds members,
    /// reads a number as a bit mask, and drops unknown members unless strict.
    Set(Labels),
}

impl TextForm {
    /// Whether any text reads back as written.
    pub fn is_free(&self) -> bool {
        *self == TextForm::Free
    }
}

/// The labels of an ENUM or SET, in declaration order, with a lookup from label to
/// position built once when the kind is made: checking a value is then one hash
/// lookup (an ENUM) or one per member (a SET), not a pass over every label, on the
/// writer's path for every row. Shared (`Arc`), so a [`Kind`] stays cheap to clone.
#[derive(Clone)]
pub struct Labels(std::sync::Arc<LabelIndex>);

struct LabelIndex {
    list: Vec<String>,
    /// Label → its 0-based position (the first, should a label repeat).
    at: std::collections::HashMap<String, usize>,
}

impl Labels {
    /// The labels, in declaration order.
    pub fn new(list: Vec<String>) -> Labels {
        let mut at = std::collections::HashMap::with_capacity(list.len());
        for (i, l) in list.iter().enumerate() {
            at.entry(l.clone()).or_insert(i);
        }
        Labels(std::sync::Arc::new(LabelIndex { list, at }))
    }

    /// The 0-based position of exactly `label` (case and spaces count).
    pub fn position(&self, label: &str) -> Option<usize> {
        self.0.at.get(label).copied()
    }
}

impl From<Vec<String>> for Labels {
    fn from(list: Vec<String>) -> Labels {
        Labels::new(list)
    }
}

impl std::ops::Deref for Labels {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0.list
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.0.list == other.0.list
    }
}

impl Eq for Labels {}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.list.fmt(f)
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.list.serialize(s)
    }
}

/// Why a value does not fit a column. Display is a lower-case sentence without the
/// column name; callers add the table, column and row.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError(msg.into()))
}

/// Shortens long inputs in messages so one bad 10 MB value does not flood a report.
pub fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

const DATE_MIN: (i32, u32, u32) = (1, 1, 1);
const DATE_MAX: (i32, u32, u32) = (9999, 12, 31);

fn check_date(d: NaiveDate) -> Result<NaiveDate, ConvertError> {
    let min = NaiveDate::from_ymd_opt(DATE_MIN.0, DATE_MIN.1, DATE_MIN.2).expect("valid");
    let max = NaiveDate::from_ymd_opt(DATE_MAX.0, DATE_MAX.1, DATE_MAX.2).expect("valid");
    if d < min || d > max {
        return err(format!(
            "date {d} is outside 0001-01-01..9999-12-31, the range all engines store"
        ));
    }
    Ok(d)
}

/// The most fractional-second digits a column keeps: microseconds, the finest
/// precision PostgreSQL and MariaDB store (SQLite's text keeps what Lockgate writes).
pub const MAX_FSP: u8 = 6;

/// `t` cut and rounded to `fsp` fractional digits, when it has finer ones.
/// MariaDB cuts the fraction; PostgreSQL (and MySQL) round it, halves up.
fn finer_than<T>(t: T, nanos: u32, fsp: u8) -> Option<(T, T)>
where
    T: Copy + std::ops::Sub<chrono::TimeDelta, Output = T> + std::ops::Add<chrono::TimeDelta, Output = T>,
{
    let unit = 10u32.pow(9 - u32::from(fsp.min(MAX_FSP)));
    // A leap second's nanos run past 1e9; the remainder is what matters.
    let extra = nanos % unit;
    if extra == 0 {
        return None;
    }
    let cut = t - chrono::TimeDelta::nanoseconds(i64::from(extra));
    let rounded = if extra >= unit / 2 {
        cut + chrono::TimeDelta::nanoseconds(i64::from(unit))
    } else {
        cut
    };
    Some((cut, rounded))
}

/// The error for a time whose fraction of a second is finer than the column keeps:
/// the given value and what the column would store instead.
fn fraction_error(given: Value, cut: Value, rounded: Value, fsp: u8) -> ConvertError {
    let keeps = match fsp {
        0 => "whole seconds".to_string(),
        1 => "1 fractional digit".to_string(),
        n => format!("{n} fractional digits"),
    };
    let stored = if cut == rounded {
        format!("it would store {cut}")
    } else {
        format!("it would store {cut} (cut, as MariaDB does) or {rounded} (rounded, as PostgreSQL does)")
    };
    ConvertError(format!(
        "{given} is more precise than the column, which keeps {keeps}: {stored}"
    ))
}

/// Checks that a time of day's fraction fits `fsp` digits.
fn check_time_fraction(t: NaiveTime, fsp: u8) -> Result<NaiveTime, ConvertError> {
    match finer_than(t, chrono::Timelike::nanosecond(&t), fsp) {
        None => Ok(t),
        Some((cut, rounded)) => Err(fraction_error(
            Value::Time(t),
            Value::Time(cut),
            Value::Time(rounded),
            fsp,
        )),
    }
}

/// Checks that a timestamp's fraction fits `fsp` digits; `zoned` says how to show it.
fn check_timestamp_fraction(t: NaiveDateTime, fsp: u8, zoned: bool) -> Result<NaiveDateTime, ConvertError> {
    match finer_than(t, chrono::Timelike::nanosecond(&t), fsp) {
        None => Ok(t),
        Some((cut, rounded)) => {
            let show = |t: NaiveDateTime| {
                if zoned {
                    Value::TimestampTz(t.and_utc())
                } else {
                    Value::Timestamp(t)
                }
            };
            Err(fraction_error(show(t), show(cut), show(rounded), fsp))
        }
    }
}

/// `YYYY-MM-DD` read by hand: chrono's format-string parser costs more than the
/// rest of a row on the load path.
fn fast_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter()
            .try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// Parses a date `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, ConvertError> {
    if let Some(d) = fast_date(s.trim()) {
        return check_date(d);
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .or_else(|_| err(format!("{} is not a date (expected YYYY-MM-DD)", excerpt(s))))
        .and_then(check_date)
}

/// Parses a time `HH:MM[:SS[.ffffff]]`.
pub fn parse_time(s: &str) -> Result<NaiveTime, ConvertError> {
    let t = s.trim();
    let parsed = NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .or_else(|_| err(format!("{} is not a time (expected HH:MM:SS)", excerpt(s))))?;
    // The fraction is the column's to judge (`Kind::check`: its digits, at most 6).
    Ok(parsed)
}

/// Splits a trailing zone (`Z`, `+HH`, `+HH:MM`, `+HHMM`) from a timestamp text.
fn split_zone(s: &str) -> (&str, Option<i32>) {
    if let Some(rest) = s.strip_suffix(['Z', 'z']) {
        return (rest.trim_end(), Some(0));
    }
    // The zone sign comes after the time part, so look only past the date.
    let bytes = s.as_bytes();
    if bytes.len() > 10 {
        if let Some(pos) = s[10..].rfind(['+', '-']).map(|p| p + 10) {
            let zone = &s[pos + 1..];
            let sign = if bytes[pos] == b'-' { -1 } else { 1 };
            let digits: String = zone.chars().filter(|c| *c != ':').collect();
            if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
                let (h, m) = if digits.len() <= 2 {
                    (digits.parse::<i32>().unwrap_or(99), 0)
                } else {
                    (
                        digits[..digits.len() - 2].parse::<i32>().unwrap_or(99),
                        digits[digits.len() - 2..].parse::<i32>().unwrap_or(99),
                    )
                };
                if h < 24 && m < 60 {
                    return (s[..pos].trim_end(), Some(sign * (h * 3600 + m * 60)));
                }
            }
        }
    }
    (s, None)
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Parses a timestamp; a zone, when given, converts it to UTC.
pub fn parse_timestamp(s: &str) -> Result<NaiveDateTime, ConvertError> {
    parse_timestamptz(s).map(|t| t.naive_utc())
}

/// Parses an instant; text without a zone is UTC.
pub fn parse_timestamptz(s: &str) -> Result<DateTime<Utc>, ConvertError> {
    let t = s.trim();
    let (body, zone) = split_zone(t);
    let naive = parse_naive(body).ok_or_else(|| {
        ConvertError(format!(
            "{} is not a timestamp (expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM])",
            excerpt(s)
        ))
    })?;
    // The fraction is the column's to judge (`Kind::check`: its digits, at most 6).
    let utc = naive - chrono::Duration::seconds(zone.unwrap_or(0) as i64);
    check_date(utc.date())?;
    Ok(utc.and_utc())
}

fn parse_bool(s: &str) -> Result<bool, ConvertError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" => Ok(false),
        _ => err(format!("{} is not a boolean (expected true or false)", excerpt(s))),
    }
}

fn int_range(bytes: u8, unsigned: bool) -> (i128, i128) {
    let bits = bytes as u32 * 8;
    if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    }
}

fn check_int(v: i128, bytes: u8, unsigned: bool) -> Result<Value, ConvertError> {
    let (min, max) = int_range(bytes, unsigned);
    if v < min || v > max {
        return err(format!("{v} is out of range {min}..={max}"));
    }
    // Every engine shares signed 64-bit; a BIGINT UNSIGNED above it is outside the domain.
    i64::try_from(v).map(Value::Int).or_else(|_| {
        err(format!(
            "{v} is larger than 9223372036854775807, the largest integer all engines share"
        ))
    })
}

pub(crate) fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `timestamp(3)`; `timestamp` for the default six digits.
fn with_fsp(name: &str, fsp: u8) -> String {
    if fsp >= MAX_FSP {
        name.to_string()
    } else {
        format!("{name}({fsp})")
    }
}

impl Kind {
    /// A short name for messages and `inspect`: `integer`, `decimal(12,2)`, `text(100)`…
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "boolean".into(),
            Kind::Int { bytes, unsigned } => {
                format!("int{}{}", *bytes as u32 * 8, if *unsigned { " unsigned" } else { "" })
            }
            Kind::Float { bytes } => format!("float{}", *bytes as u32 * 8),
            Kind::Decimal {
                precision: Some(p),
                scale,
                ..
            } => format!("decimal({p},{})", scale.unwrap_or(0)),
            Kind::Decimal { .. } => "decimal".into(),
            Kind::Text {
                form: TextForm::Enum(labels),
                ..
            } => format!("enum({})", sql_labels(labels, Some(DESCRIBED_LABELS))),
            Kind::Text {
                form: TextForm::Set(labels),
                ..
            } => format!("set({})", sql_labels(labels, Some(DESCRIBED_LABELS))),
            Kind::Text {
                form: TextForm::Padded,
                max_chars,
                ..
            } => max_chars.map_or_else(|| "char".into(), |n| format!("char({n})")),
            Kind::Text { max_chars: Some(n), .. } => format!("text({n})"),
            Kind::Text { .. } => "text".into(),
            Kind::Bytes {
                max_bytes: Some(n),
                fixed: true,
            } => format!("binary({n})"),
            Kind::Bytes { .. } => "bytes".into(),
            Kind::Date => "date".into(),
            // The precision shows only when it is not the microseconds most types keep.
            Kind::Time { fsp } => with_fsp("time", *fsp),
            Kind::Timestamp { fsp } => with_fsp("timestamp", *fsp),
            Kind::TimestampTz { fsp, .. } => with_fsp("timestamptz", *fsp),
            Kind::Json => "json".into(),
            Kind::Uuid => "uuid".into(),
            Kind::Any => "any".into(),
            Kind::Unsupported { type_name } => format!("unsupported ({type_name})"),
        }
    }

    /// Types text from a file (a CSV field, a JSON string) for this column.
    pub fn parse_text(&self, s: &str) -> Result<Value, ConvertError> {
        self.parse_text_as(s, Rules::Write)
    }

    /// Types text that was read from a column of this kind (a snapshot's data file)
    /// as [`Kind::parse_text`] does, but checked as a value the column holds
    /// ([`Kind::check_stored`]), not as a write.
    pub fn parse_stored_text(&self, s: &str) -> Result<Value, ConvertError> {
        self.parse_text_as(s, Rules::Stored)
    }

    /// Types text for this column and checks it by `rules`.
    fn parse_text_as(&self, s: &str, rules: Rules) -> Result<Value, ConvertError> {
        let v = match self {
            Kind::Bool => Value::Bool(parse_bool(s)?),
            Kind::Int { bytes, unsigned } => {
                let t = s.trim();
                let n: i128 = t
                    .parse()
                    .or_else(|_| err(format!("{} is not an integer", excerpt(s))))?;
                check_int(n, *bytes, *unsigned)?
            }
            Kind::Float { bytes } => {
                let t = s.trim();
                // Parsed once, at the column's width (a single from the text, not
                // from a double, which would round twice).
                let stored = if *bytes == 4 {
                    t.parse::<f32>().map(f32_value)
                } else {
                    t.parse::<f64>()
                }
                .or_else(|_| err(format!("{} is not a number", excerpt(s))))?;
                if !stored.is_finite() {
                    let f = t.parse::<f64>().unwrap_or(stored);
                    if f.is_finite() {
                        return err(format!("{t} is too large for a float{} column", *bytes as u32 * 8));
                    }
                    return err(format!("{f} is not finite; MariaDB stores no NaN or infinity"));
                }
                // The text is the value: the float must say the same number. Few
                // enough digits always do (the common case, checked without allocating).
                if float_text_is_exact(t, stored, *bytes) {
                    return Ok(Value::Float(stored));
                }
                let d = Decimal::parse(t).ok_or_else(|| ConvertError(format!("{} is not a number", excerpt(s))))?;
                Value::Float(float_of(&d, *bytes)?)
            }
            Kind::Decimal { .. } => Value::Decimal(
                Decimal::parse(s).ok_or_else(|| ConvertError(format!("{} is not a decimal number", excerpt(s))))?,
            ),
            Kind::Text { .. } | Kind::Any => Value::Text(s.to_string()),
            Kind::Bytes { .. } => match s.strip_prefix("\\x") {
                Some(hex) => Value::Bytes(
                    parse_hex(hex).ok_or_else(|| ConvertError(format!("{} is not valid \\x hex", excerpt(s))))?,
                ),
                None => Value::Bytes(s.as_bytes().to_vec()),
            },
            Kind::Date => Value::Date(parse_date(s)?),
            Kind::Time { .. } => Value::Time(parse_time(s)?),
            Kind::Timestamp { .. } => Value::Timestamp(parse_timestamp(s)?),
            Kind::TimestampTz { .. } => Value::TimestampTz(parse_timestamptz(s)?),
            Kind::Json => {
                Value::Json(serde_json::from_str(s).or_else(|e| err(format!("{} is not valid JSON: {e}", excerpt(s))))?)
            }
            Kind::Uuid => {
                Value::Uuid(uuid::Uuid::parse_str(s.trim()).or_else(|_| err(format!("{} is not a UUID", excerpt(s))))?)
            }
            Kind::Unsupported { type_name } => {
                return err(format!(
                    "lockgate does not map the type {type_name}; load this column another way"
                ))
            }
        };
        self.check_by(v, rules)
    }

    /// [`Kind::check`] or [`Kind::check_stored`].
    fn check_by(&self, v: Value, rules: Rules) -> Result<Value, ConvertError> {
        match rules {
            Rules::Write => self.check(v),
            Rules::Stored => self.check_stored(v),
        }
    }

    /// Types a JSON value from a file for this column: strings go through
    /// [`Kind::parse_text`] (but stay strings for JSON columns), numbers stay exact.
    pub fn parse_json(&self, j: &serde_json::Value) -> Result<Value, ConvertError> {
        self.parse_json_as(j, Rules::Write)
    }

    /// Types a JSON value that was read from a column of this kind (`Value::to_json`
    /// of what the column gave: a migration's row images, say) as [`Kind::parse_json`]
    /// does, but checked as a value the column holds ([`Kind::check_stored`]), not as
    /// a write: an ENUM's `''` and a `char(n)` value recorded with its padding are
    /// what the column held, not values to refuse.
    pub fn parse_stored_json(&self, j: &serde_json::Value) -> Result<Value, ConvertError> {
        self.parse_json_as(j, Rules::Stored)
    }

    fn parse_json_as(&self, j: &serde_json::Value, rules: Rules) -> Result<Value, ConvertError> {
        use serde_json::Value as J;
        match (self, j) {
            (_, J::Null) => Ok(Value::Null),
            (Kind::Json, j) => self.check_by(Value::Json(j.clone()), rules),
            (_, J::String(s)) => self.parse_text_as(s, rules),
            (Kind::Any, J::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Value::Int(i)),
                None => Ok(Value::Decimal(
                    Decimal::parse(&n.to_string()).ok_or_else(|| ConvertError(format!("{n} is not a number")))?,
                )),
            },
            (Kind::Any, J::Bool(b)) => Ok(Value::Bool(*b)),
            (Kind::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
            (Kind::Text { .. }, J::Bool(b)) => self.parse_text_as(if *b { "true" } else { "false" }, rules),
            (
                Kind::Bool | Kind::Int { .. } | Kind::Float { .. } | Kind::Decimal { .. } | Kind::Text { .. },
                J::Number(n),
            ) => self.parse_text_as(&n.to_string(), rules),
            (_, other) => err(format!(
                "expected {}, found {}",
                self.describe(),
                match other {
                    J::Bool(_) => "a boolean",
                    J::Number(_) => "a number",
                    J::Array(_) => "an array",
                    J::Object(_) => "an object",
                    _ => "a value",
                }
            )),
        }
    }

    /// Checks a typed value against this column's limits and the shared domain,
    /// converting between value variants where that is lossless (an integer into a
    /// decimal column, say). Used for values read from files and from other engines.
    /// A value the column would store differently (a fraction of a second it does
    /// not keep, an integer past a float's 53 bits, text longer than it holds, text
    /// its [`TextForm`] would give back changed, bytes a BINARY(n) would pad) is an
    /// error naming the given value and what the column would store. Values read
    /// from a column go through [`Kind::check_stored`] instead.
    pub fn check(&self, v: Value) -> Result<Value, ConvertError> {
        match (self, v) {
            (_, Value::Null) => Ok(Value::Null),
            (Kind::Any, v) => Ok(v),
            (Kind::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
            (Kind::Bool, Value::Int(i)) if i == 0 || i == 1 => Ok(Value::Bool(i == 1)),
            (Kind::Int { bytes, unsigned }, Value::Int(i)) => check_int(i as i128, *bytes, *unsigned),
            (Kind::Int { bytes, unsigned }, Value::Bool(b)) => check_int(b as i128, *bytes, *unsigned),
            (Kind::Int { bytes, unsigned }, Value::Decimal(d)) => match d.to_i64() {
                Some(i) => check_int(i as i128, *bytes, *unsigned),
                None if d.significant_scale() == 0 => err(format!(
                    "{d} is larger than 9223372036854775807, the largest integer all engines share"
                )),
                None => err(format!("{d} is not an integer: the column would store {}", d.round(0))),
            },
            (Kind::Int { bytes, unsigned }, Value::Float(f)) => {
                // i64 bounds as floats: -2^63 is exact, 2^63 is one past the largest.
                if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                    check_int(f as i128, *bytes, *unsigned)
                } else if f.is_finite() && f.fract() != 0.0 {
                    err(format!("{f} is not an integer: the column would store {}", f.round()))
                } else {
                    err(format!("{f} is not an integer all engines store"))
                }
            }
            (Kind::Float { .. }, Value::Float(f)) if !f.is_finite() => {
                err(format!("{f} is not finite; MariaDB stores no NaN or infinity"))
            }
            // A single is held as the number it says (`f32_value`), as it is read back.
            (Kind::Float { bytes: 4 }, Value::Float(f)) if f64::from(f as f32) == f => {
                Ok(Value::Float(f32_value(f as f32)))
            }
            (Kind::Float { bytes: 4 }, Value::Float(f)) => {
                // A double's shortest text is what it means; a single must say the same.
                let d = Decimal::from_f64(f).expect("finite");
                float_of(&d, 4).map(Value::Float)
            }
            (Kind::Float { .. }, Value::Float(f)) => Ok(Value::Float(f)),
            (Kind::Float { bytes }, Value::Int(i)) => {
                let stored = if *bytes == 4 { i as f32 as f64 } else { i as f64 };
                // Exact when the float converts back to the same integer (2^63 does not).
                if (stored as i128) == i as i128 && stored < 9.223_372_036_854_776e18 {
                    Ok(Value::Float(stored))
                } else {
                    // The stored float is an integer here: show all its digits.
                    err(format!(
                        "{i} does not fit a float{} column exactly: it would store {}",
                        *bytes as u32 * 8,
                        stored as i128
                    ))
                }
            }
            (Kind::Float { bytes }, Value::Decimal(d)) => float_of(&d, *bytes).map(Value::Float),
            (
                Kind::Decimal {
                    precision,
                    scale,
                    max_significant,
                },
                v,
            ) => {
                let d = match v {
                    Value::Decimal(d) => d,
                    Value::Int(i) => Decimal::parse(&i.to_string()).expect("integer text is a decimal"),
                    Value::Float(f) => {
                        Decimal::from_f64(f).ok_or_else(|| ConvertError(format!("{f} is not finite")))?
                    }
                    other => return err(format!("expected a decimal, found {}", other.type_name())),
                };
                check_decimal(d, *precision, *scale, *max_significant).map(Value::Decimal)
            }
            (
                Kind::Text {
                    max_chars,
                    max_bytes,
                    form,
                },
                v,
            ) => check_text(v, *max_chars, *max_bytes, form).map(Value::Text),
            (Kind::Bytes { max_bytes, fixed }, Value::Bytes(b)) => check_bytes(b, *max_bytes, *fixed).map(Value::Bytes),
            (Kind::Bytes { .. }, Value::Text(s)) => self.check(Value::Bytes(s.into_bytes())),
            (Kind::Date, Value::Date(d)) => check_date(d).map(Value::Date),
            (Kind::Date, Value::Timestamp(t)) => date_of(t, Value::Timestamp(t)),
            (Kind::Date, Value::TimestampTz(t)) => date_of(t.naive_utc(), Value::TimestampTz(t)),
            (Kind::Time { fsp }, Value::Time(t)) => check_time_fraction(t, *fsp).map(Value::Time),
            (Kind::Timestamp { fsp }, Value::Timestamp(t)) => {
                let t = check_timestamp_fraction(t, *fsp, false)?;
                check_date(t.date())?;
                Ok(Value::Timestamp(t))
            }
            (Kind::Timestamp { .. }, Value::TimestampTz(t)) => self.check(Value::Timestamp(t.naive_utc())),
            // A date is its midnight: nothing is lost.
            (Kind::Timestamp { .. } | Kind::TimestampTz { .. }, Value::Date(d)) => {
                self.check(Value::Timestamp(d.and_time(NaiveTime::MIN)))
            }
            (Kind::TimestampTz { epoch32, fsp }, v) => {
                let t = match v {
                    Value::TimestampTz(t) => t,
                    Value::Timestamp(t) => t.and_utc(),
                    other => return err(format!("expected a timestamp, found {}", other.type_name())),
                };
                check_timestamp_fraction(t.naive_utc(), *fsp, true)?;
                check_date(t.date_naive())?;
                if *epoch32 {
                    let min = DateTime::from_timestamp(1, 0).expect("valid");
                    let max = DateTime::from_timestamp(i32::MAX as i64, 0).expect("valid");
                    if t < min || t > max {
                        return err(format!(
                            "{} is outside 1970-01-01 00:00:01..2038-01-19 03:14:07 UTC, the range of MariaDB TIMESTAMP",
                            t.format("%Y-%m-%d %H:%M:%S")
                        ));
                    }
                }
                Ok(Value::TimestampTz(t))
            }
            (Kind::Json, Value::Json(j)) => Ok(Value::Json(j)),
            (Kind::Json, Value::Text(s)) => self.parse_text(&s),
            (Kind::Uuid, Value::Uuid(u)) => Ok(Value::Uuid(u)),
            (Kind::Uuid, Value::Text(s)) => self.parse_text(&s),
            (Kind::Unsupported { type_name }, _) => err(format!(
                "lockgate does not map the type {type_name}; copy this column another way"
            )),
            (k, v) => err(format!("expected {}, found {}", k.describe(), v.type_name())),
        }
    }
}

/// Which rules a value is held to: a write's ([`Kind::check`]) or those of a value
/// a column holds ([`Kind::check_stored`]).
#[derive(Clone, Copy)]
enum Rules {
    Write,
    Stored,
}

impl Kind {
    /// Checks a value read from a column of this kind, as [`Kind::check`] does, but
    /// without the rules that say how a write would change a value (a label, a short
    /// fixed-width value): what a column holds is what it gives back, including
    /// MariaDB's `''` for an ENUM value it did not know. A `char(n)` value is taken
    /// without its trailing spaces (padding, as on the way in), so a value recorded
    /// with them (by PostgreSQL's `\copy`, or by Lockgate before it read
    /// `character(n)` without its padding) equals the one read now.
    pub fn check_stored(&self, v: Value) -> Result<Value, ConvertError> {
        match (self, v) {
            (
                Kind::Text {
                    max_chars,
                    max_bytes,
                    form,
                },
                v,
            ) if !v.is_null() => {
                // Labels are a write's rule; padding is the value's own.
                let form = match form {
                    TextForm::Padded => &TextForm::Padded,
                    _ => &TextForm::Free,
                };
                check_text(v, *max_chars, *max_bytes, form).map(Value::Text)
            }
            (Kind::Bytes { max_bytes, .. }, Value::Bytes(b)) => check_bytes(b, *max_bytes, false).map(Value::Bytes),
            (Kind::Bytes { max_bytes, .. }, Value::Text(s)) => {
                check_bytes(s.into_bytes(), *max_bytes, false).map(Value::Bytes)
            }
            (_, v) => self.check(v),
        }
    }
}

/// A value for a text column: its text, within the column's length and `form`.
fn check_text(
    v: Value,
    max_chars: Option<u64>,
    max_bytes: Option<u64>,
    form: &TextForm,
) -> Result<String, ConvertError> {
    let s = match v {
        Value::Text(s) => s,
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Uuid(u) => u.to_string(),
        // A JSON document's text is the document.
        Value::Json(j) => j.to_string(),
        other => return err(format!("expected text, found {}", other.type_name())),
    };
    // A `char(n)` value's trailing spaces are padding (TextForm::Padded): the value
    // is the text without them, and so is its length.
    let s = if *form == TextForm::Padded && s.ends_with(' ') {
        let mut s = s;
        s.truncate(s.trim_end_matches(' ').len());
        s
    } else {
        s
    };
    if s.contains('\0') {
        return err("contains a NUL character, which PostgreSQL cannot store");
    }
    if let Some(max) = max_bytes {
        if s.len() as u64 > max {
            let mut end = max as usize;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            return err(format!(
                "{} is {} bytes long; the column holds at most {max}, so it would be cut to {}",
                excerpt(&s),
                s.len(),
                excerpt_end(&s[..end])
            ));
        }
    }
    if let Some(max) = max_chars {
        // Count characters only when the byte length could exceed the limit.
        if s.len() as u64 > max {
            let n = s.chars().count() as u64;
            if n > max {
                let cut: String = s.chars().take(max as usize).collect();
                return err(format!(
                    "{} is {n} characters long; the column holds at most {max}, so it would be cut to {}",
                    excerpt(&s),
                    excerpt_end(&cut)
                ));
            }
        }
    }
    match form {
        TextForm::Free | TextForm::Padded => {}
        TextForm::Enum(labels) => {
            if labels.position(&s).is_none() {
                return err(format!(
                    "{} is not one of the column's labels ({}; case and spaces count): MariaDB would store {}",
                    excerpt(&s),
                    show_labels(labels),
                    enum_stored(labels, &s)
                ));
            }
        }
        TextForm::Set(labels) => {
            if !is_set_text(labels, &s) {
                return err(format!(
                    "{} is not a value of the column's set ({}): it takes those labels joined by commas, \
                     each at most once, in that order and case; MariaDB would store {}",
                    excerpt(&s),
                    show_labels(labels),
                    set_stored(labels, &s)
                ));
            }
        }
    }
    Ok(s)
}

/// A value for a bytes column: within its length and, when `fixed`, exactly that long.
fn check_bytes(b: Vec<u8>, max_bytes: Option<u64>, fixed: bool) -> Result<Vec<u8>, ConvertError> {
    if let Some(max) = max_bytes {
        if b.len() as u64 > max {
            return err(format!(
                "{} bytes do not fit: the column holds at most {max}, so they would be cut",
                b.len()
            ));
        }
        if fixed && (b.len() as u64) < max {
            // At most 255 bytes (MariaDB's BINARY limit): short enough to show whole.
            let mut padded = b.clone();
            padded.resize(max as usize, 0);
            return err(format!(
                "{} is {} bytes; a binary({max}) column pads it with zero bytes to {max}: it would store {}",
                Value::Bytes(b.clone()),
                b.len(),
                Value::Bytes(padded)
            ));
        }
    }
    Ok(b)
}

/// How many labels [`Kind::describe`] shows of a longer list.
const DESCRIBED_LABELS: usize = 20;

/// Labels as MariaDB declares them: `'a','b'`, a quote doubled and a backslash
/// escaped (the server reads backslash escapes inside a literal, so `'c\d'` would
/// declare `cd`). With `max`, the first `max` of a longer list, and how many there
/// are (for messages and `inspect`); without it, every label (to declare a column).
pub fn sql_labels(labels: &[String], max: Option<usize>) -> String {
    let shown = max.unwrap_or(labels.len());
    let mut out: Vec<String> = labels
        .iter()
        .take(shown)
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect();
    if labels.len() > shown {
        out.push(format!("… {} labels in all", labels.len()));
    }
    out.join(",")
}

/// Labels for a message: `"a", "b"`, the first 20 of a longer list.
fn show_labels(labels: &[String]) -> String {
    const MAX: usize = 20;
    if labels.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = labels.iter().take(MAX).map(|l| excerpt(l)).collect();
    if labels.len() > MAX {
        format!("{}, … {} labels in all", shown.join(", "), labels.len())
    } else {
        shown.join(", ")
    }
}

/// The label MariaDB matches `s` to, as a collation that ignores case and trailing
/// spaces does (its default ones; a binary collation matches none).
fn label_like(labels: &[String], s: &str) -> Option<usize> {
    let key = s.trim_end_matches(' ').to_lowercase();
    labels
        .iter()
        .position(|l| l.trim_end_matches(' ').to_lowercase() == key)
}

/// What MariaDB stores for `s` in an ENUM of `labels`, for a message.
fn enum_stored(labels: &[String], s: &str) -> String {
    if let Some(i) = label_like(labels, s) {
        return format!("{:?} (its collation matches it to that label)", labels[i]);
    }
    // A number that is no label is the position of one (1-based); 0 is the error value.
    if let Ok(n) = s.trim().parse::<usize>() {
        if (1..=labels.len()).contains(&n) {
            return format!("{:?}, label number {n}", labels[n - 1]);
        }
    }
    "\"\" (its error value) where sql_mode is not strict, and refuse it where it is".into()
}

/// Whether `s` is a SET value as MariaDB gives it back: labels of `labels` joined by
/// commas, in declaration order, each once, exact case; `''` is the empty set.
fn is_set_text(labels: &Labels, s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    // Each member's position (one lookup), strictly increasing.
    let mut next = 0;
    for part in s.split(',') {
        match labels.position(part) {
            Some(at) if at >= next => next = at + 1,
            _ => return false,
        }
    }
    true
}

/// What MariaDB stores for `s` in a SET of `labels`, for a message: the members it
/// matches, merged and in declaration order (a number is a bit mask of positions).
fn set_stored(labels: &[String], s: &str) -> String {
    let mut members = vec![false; labels.len()];
    let mut unknown = Vec::new();
    match s.trim().parse::<u64>() {
        Ok(mask) if label_like(labels, s).is_none() => {
            for (i, m) in members.iter_mut().enumerate().take(64) {
                *m = mask & (1 << i) != 0;
            }
        }
        _ => {
            for part in s.split(',') {
                match label_like(labels, part) {
                    Some(i) => members[i] = true,
                    None if part.is_empty() => {}
                    None => unknown.push(excerpt(part)),
                }
            }
        }
    }
    let kept: Vec<&str> = labels
        .iter()
        .zip(&members)
        .filter(|(_, m)| **m)
        .map(|(l, _)| l.as_str())
        .collect();
    let kept = excerpt_end(&kept.join(","));
    if unknown.is_empty() {
        kept
    } else {
        format!(
            "{kept}, dropping {} where sql_mode is not strict, and refuse it where it is",
            unknown.join(", ")
        )
    }
}

/// A timestamp for a date column: only a midnight keeps everything.
fn date_of(t: NaiveDateTime, given: Value) -> Result<Value, ConvertError> {
    if t.time() != NaiveTime::MIN {
        return err(format!(
            "{given} has a time of day; the date column would store {}",
            Value::Date(t.date())
        ));
    }
    check_date(t.date()).map(Value::Date)
}

/// A single-precision float read from a `real` / `FLOAT` column as the number it
/// says: the double its shortest decimal text reads as, so a stored 0.1 arrives as
/// 0.1, not as 0.10000000149011612 (the single's exact binary value, which a text,
/// double or decimal column would then keep). Writing it back into a single gives
/// the same single, since that text reads as it.
pub fn f32_value(x: f32) -> f64 {
    use std::io::Write;
    // The shortest text of a finite single fits in 64 bytes (`-1.1754944e-38` and the
    // like, written out in full by Display: at most 48 characters); no allocation.
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    if !x.is_finite() || write!(w, "{x}").is_err() {
        return f64::from(x);
    }
    let len = 64 - w.len();
    let wide = std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(f64::from(x));
    // ±f32::MAX says 3.4028235e38, past the largest single: MariaDB refuses that
    // double for a FLOAT column, so the extremes stay exact.
    if wide.abs() > f64::from(f32::MAX) {
        f64::from(x)
    } else {
        wide
    }
}

/// `excerpt` for the kept start of a text: the cut is at its end, so show its end.
fn excerpt_end(s: &str) -> String {
    const MAX: usize = 60;
    let n = s.chars().count();
    if n <= MAX {
        format!("{s:?}")
    } else {
        let tail: String = s.chars().skip(n - MAX).collect();
        format!("…{tail:?}")
    }
}

/// A float as the column shows it: a single's own shortest text, not its double's.
fn show_float(f: f64, bytes: u8) -> String {
    if bytes == 4 {
        (f as f32).to_string()
    } else {
        f.to_string()
    }
}

/// The float a column of `bytes` width stores for `d`, when it says the same
/// number: written back with as many significant digits as `d` has, it must read
/// as `d`. Up to 15 digits (6 for a single) every number in the normal range
/// does; past them, `0.10000000000000001` does (the double nearest 0.1), and
/// `9007199254740993` (2^53 + 1) does not: the column would store ...992.
/// Whether `stored`, a float of `bytes` width parsed from the number text `t`, says
/// the same number as `t` for the reason [`float_of`]'s first test gives: at most
/// 15 significant digits (6 for a single) and not below the normal range. Counts
/// the digits in place; `false` only sends the text the exact (allocating) way.
fn float_text_is_exact(t: &str, stored: f64, bytes: u8) -> bool {
    let (exact_digits, min_normal) = if bytes == 4 {
        (6, f32::MIN_POSITIVE as f64)
    } else {
        (15, f64::MIN_POSITIVE)
    };
    match digit_span(t) {
        None => false,
        // All zeros: zero, which every float says.
        Some(0) => stored == 0.0,
        Some(digits) => digits <= exact_digits && stored.abs() >= min_normal,
    }
}

/// The digits of a number text from its first non-zero one to its last (`1200` and
/// `0.0012` have 2): how many a float must say. `None` when `t` is not plain digits
/// with an optional sign, point and exponent; 0 for zero.
fn digit_span(t: &str) -> Option<usize> {
    let mantissa = t.split(['e', 'E']).next().unwrap_or("");
    let mantissa = mantissa.trim_start_matches(['-', '+']);
    if mantissa.is_empty() || !mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let b = mantissa.as_bytes();
    let non_zero = |c: &u8| matches!(c, b'1'..=b'9');
    let (Some(first), Some(last)) = (b.iter().position(non_zero), b.iter().rposition(non_zero)) else {
        return Some(0);
    };
    Some(b[first..=last].iter().filter(|c| c.is_ascii_digit()).count())
}

fn float_of(d: &Decimal, bytes: u8) -> Result<f64, ConvertError> {
    let width = bytes as u32 * 8;
    let (stored, exact_digits, min_normal) = if bytes == 4 {
        (
            d.as_str().parse::<f32>().map_or(f64::NAN, f32_value),
            6,
            f32::MIN_POSITIVE as f64,
        )
    } else {
        (d.as_str().parse::<f64>().unwrap_or(f64::NAN), 15, f64::MIN_POSITIVE)
    };
    if !stored.is_finite() {
        return err(format!("{d} is too large for a float{width} column"));
    }
    // Trailing zeros of an integer are no digits a float must keep (3.4e38 is 2).
    let digits = digit_span(d.as_str()).unwrap_or(usize::MAX) as u32;
    let zero = digits == 0;
    if digits <= exact_digits && (zero || stored.abs() >= min_normal) {
        return Ok(stored);
    }
    let back = if bytes == 4 {
        format!("{:.*e}", digits.saturating_sub(1) as usize, stored as f32)
    } else {
        format!("{:.*e}", digits.saturating_sub(1) as usize, stored)
    };
    if Decimal::parse(&back).as_ref() == Some(d) {
        Ok(stored)
    } else {
        err(format!(
            "{d} does not fit a float{width} column exactly: it would store {}",
            show_float(stored, bytes)
        ))
    }
}

fn check_decimal(
    d: Decimal,
    precision: Option<u32>,
    scale: Option<u32>,
    max_significant: Option<u32>,
) -> Result<Decimal, ConvertError> {
    if d.integer_digits() + d.significant_scale() > decimal::MAX_PRECISION || d.significant_scale() > decimal::MAX_SCALE
    {
        return err(format!(
            "{d} is wider than DECIMAL(65,30), the widest decimal all engines share"
        ));
    }
    if let Some(max) = max_significant {
        if d.significant_digits() > max {
            // Such columns go through a float: they keep the nearest `max`-digit number.
            let kept = format!("{:.*e}", max.saturating_sub(1) as usize, d.to_f64());
            let kept = Decimal::parse(&kept).map_or(kept, |k| k.to_string());
            return err(format!(
                "{d} has {} significant digits; the column keeps {max} and would store {kept} \
                 (an SQLite NUMERIC keeps 15, a MariaDB FLOAT(M,D) 6, DOUBLE(M,D) 15: declare it TEXT or DECIMAL to keep more)",
                d.significant_digits()
            ));
        }
    }
    // Integer digits do not change with the scale, so check them on the input.
    if let Some(p) = precision {
        let int_max = p.saturating_sub(scale.unwrap_or(0));
        if d.integer_digits() > int_max {
            return err(format!(
                "{d} does not fit decimal({p},{}): at most {int_max} digits before the point",
                scale.unwrap_or(0)
            ));
        }
    }
    match scale {
        // Already written at the column's scale: the common case, no new text.
        Some(s) if d.scale() == s => Ok(d),
        Some(s) => d.with_scale(s).ok_or_else(|| {
            ConvertError(format!(
                "{d} has more than {s} decimal places; the column would round it to {}",
                d.round(s)
            ))
        }),
        None => Ok(d),
    }
}

impl Value {
    /// A short name of the variant for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Decimal(_) => "a decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "a date",
            Value::Time(_) => "a time",
            Value::Timestamp(_) => "a timestamp",
            Value::TimestampTz(_) => "a timestamp with zone",
            Value::Json(_) => "JSON",
            Value::Uuid(_) => "a UUID",
        }
    }

    /// The value as JSON, the way data files and the ledger's row images carry it:
    /// [`Kind::parse_json`] of the column's kind gives the same value back. Numbers
    /// stay exact (decimals are JSON numbers with all their digits), bytes are
    /// `\\x`-hex text, dates and times their canonical text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            // Non-finite floats are outside the shared domain; null is JSON's nearest.
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Decimal(d) => d
                .as_str()
                .parse::<serde_json::Number>()
                .map_or_else(|_| J::String(d.to_string()), J::Number),
            Value::Text(s) => J::String(s.clone()),
            Value::Json(j) => j.clone(),
            other => J::String(other.to_string()),
        }
    }

    /// This value's text as every engine gives it back, for [`fingerprint`]: decimals
    /// without trailing zeros (a `numeric(12,2)` pads them), times cut to
    /// microseconds (what engines keep), text without trailing spaces (`char(n)`
    /// pads them), JSON in its canonical form.
    fn normalized(&self) -> String {
        use chrono::{DurationRound, TimeDelta};
        let micros = TimeDelta::microseconds(1);
        match self {
            Value::Null => "\u{0}N".into(),
            Value::Decimal(d) => d
                .with_scale(d.significant_scale())
                .unwrap_or_else(|| d.clone())
                .to_string(),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
            Value::Text(s) => s.trim_end_matches(' ').to_string(),
            Value::Time(t) => {
                let nanos = chrono::Timelike::nanosecond(t) % 1_000;
                Value::Time(*t - TimeDelta::nanoseconds(nanos as i64)).to_string()
            }
            Value::Timestamp(t) => Value::Timestamp(t.duration_trunc(micros).unwrap_or(*t)).to_string(),
            Value::TimestampTz(t) => Value::TimestampTz(t.duration_trunc(micros).unwrap_or(*t)).to_string(),
            other => other.to_string(),
        }
    }

    /// Whether the value is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// An estimate of the value's size in memory and on the wire, for batch byte caps.
    pub fn approx_bytes(&self) -> usize {
        match self {
            Value::Text(s) => s.len() + 8,
            Value::Bytes(b) => b.len() + 8,
            Value::Json(j) => 64 + j.as_str().map_or(0, str::len),
            Value::Decimal(d) => d.as_str().len() + 8,
            _ => 16,
        }
    }
}

// Dates and times are written by hand: chrono's strftime parses its format string
// on every call, which showed as the largest cost of encoding a COPY row.
fn write_date(f: &mut fmt::Formatter<'_>, d: NaiveDate) -> fmt::Result {
    use chrono::Datelike;
    write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `HH:MM:SS` with the fraction only when there is one, in 3, 6 or 9 digits as
/// chrono's `%.f` writes it (`.250`, `.123456`).
fn write_time(f: &mut fmt::Formatter<'_>, t: NaiveTime) -> fmt::Result {
    use chrono::Timelike;
    write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())?;
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        if nanos.is_multiple_of(1_000_000) {
            write!(f, ".{:03}", nanos / 1_000_000)?;
        } else if nanos.is_multiple_of(1_000) {
            write!(f, ".{:06}", nanos / 1_000)?;
        } else {
            write!(f, ".{nanos:09}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Value {
    /// The canonical text of a value: what `inspect`, reports and keys show, and the
    /// text form engines parse (timestamps with a space, instants with `+00:00`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Text(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Date(d) => write_date(f, *d),
            Value::Time(t) => write_time(f, *t),
            Value::Timestamp(t) => {
                write_date(f, t.date())?;
                f.write_str(" ")?;
                write_time(f, t.time())
            }
            Value::TimestampTz(t) => {
                let t = t.naive_utc();
                write_date(f, t.date())?;
                f.write_str(" ")?;
                write_time(f, t.time())?;
                f.write_str("+00:00")
            }
            Value::Json(j) => write!(f, "{j}"),
            Value::Uuid(u) => write!(f, "{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(kind: &Kind, input: &str) -> String {
        match kind.parse_text(input) {
            Ok(v) => format!("{v}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn text_parsing_per_kind() {
        let int4 = Kind::Int {
            bytes: 4,
            unsigned: false,
        };
        let dec = Kind::Decimal {
            precision: Some(12),
            scale: Some(2),
            max_significant: None,
        };
        let v10 = Kind::Text {
            max_chars: Some(3),
            max_bytes: None,
            form: TextForm::Free,
        };
        let tz = Kind::TimestampTz { epoch32: false, fsp: 6 };
        let ts32 = Kind::TimestampTz { epoch32: true, fsp: 6 };
        let cases: Vec<(&Kind, &str, &str)> = vec![
            (&int4, "42", "42"),
            (&int4, " -7 ", "-7"),
            (&int4, "2147483648", "error: 2147483648 is out of range -2147483648..=2147483647"),
            (&int4, "4x", "error: \"4x\" is not an integer"),
            (&dec, "12.5", "12.50"),
            (&dec, "1.005", "error: 1.005 has more than 2 decimal places; the column would round it to 1.01"),
            (&dec, "12345678901", "error: 12345678901 does not fit decimal(12,2): at most 10 digits before the point"),
            (&v10, "abc", "abc"),
            (&v10, "äöü", "äöü"),
            (&v10, "abcd", "error: \"abcd\" is 4 characters long; the column holds at most 3, so it would be cut to \"abc\""),
            (&Kind::Bool, "T", "true"),
            (&Kind::Bool, "maybe", "error: \"maybe\" is not a boolean (expected true or false)"),
            (&Kind::Date, "2026-02-30", "error: \"2026-02-30\" is not a date (expected YYYY-MM-DD)"),
            (&tz, "2026-11-01T10:00:00+02:00", "2026-11-01 08:00:00+00:00"),
            (&tz, "2026-11-01 10:00:00.25", "2026-11-01 10:00:00.250+00:00"),
            (&ts32, "2040-01-01 00:00:00Z", "error: 2040-01-01 00:00:00 is outside 1970-01-01 00:00:01..2038-01-19 03:14:07 UTC, the range of MariaDB TIMESTAMP"),
            (&Kind::Time { fsp: 6 }, "10:11:12.123456789", "error: 10:11:12.123456789 is more precise than the column, which keeps 6 fractional digits: it would store 10:11:12.123456 (cut, as MariaDB does) or 10:11:12.123457 (rounded, as PostgreSQL does)"),
            (&Kind::Bytes { max_bytes: None, fixed: false }, "\\x00ff", "\\x00ff"),
            (&Kind::Json, "{\"a\": [1, 2]}", "{\"a\":[1,2]}"),
            (&Kind::Uuid, "nope", "error: \"nope\" is not a UUID"),
            (&Kind::Float { bytes: 8 }, "NaN", "error: NaN is not finite; MariaDB stores no NaN or infinity"),
        ];
        for (kind, input, expect) in cases {
            assert_eq!(show(kind, input), expect, "{kind:?} {input:?}");
        }
    }

    #[test]
    fn json_numbers_stay_exact() {
        let dec = Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: None,
        };
        let j: serde_json::Value = serde_json::from_str("12345678901234567890.123456789").unwrap();
        assert_eq!(
            dec.parse_json(&j).unwrap().to_string(),
            "12345678901234567890.123456789"
        );
        let text = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        };
        assert_eq!(text.parse_json(&serde_json::json!(5)).unwrap().to_string(), "5");
        assert!(text.parse_json(&serde_json::json!({"a": 1})).is_err());
    }

    #[test]
    fn to_json_round_trips_through_parse_json() {
        use chrono::{NaiveDate, TimeZone};
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let ts = date.and_hms_micro_opt(23, 59, 58, 123_456).unwrap();
        let cases: Vec<(Kind, Value)> = vec![
            (Kind::Bool, Value::Bool(true)),
            (
                Kind::Int {
                    bytes: 8,
                    unsigned: false,
                },
                Value::Int(i64::MIN),
            ),
            (Kind::Float { bytes: 8 }, Value::Float(-1.25e-7)),
            (
                Kind::Decimal {
                    precision: None,
                    scale: None,
                    max_significant: None,
                },
                Value::Decimal(crate::Decimal::parse("-12345678901234567890.000100").unwrap()),
            ),
            (
                Kind::Text {
                    max_chars: None,
                    max_bytes: None,
                    form: TextForm::Free,
                },
                Value::Text("a \"b\"\n".into()),
            ),
            (
                Kind::Bytes {
                    max_bytes: None,
                    fixed: false,
                },
                Value::Bytes(vec![0, 1, 254, 255]),
            ),
            (Kind::Date, Value::Date(date)),
            (Kind::Time { fsp: 6 }, Value::Time(ts.time())),
            (Kind::Timestamp { fsp: 6 }, Value::Timestamp(ts)),
            (
                Kind::TimestampTz { epoch32: false, fsp: 6 },
                Value::TimestampTz(chrono::Utc.from_utc_datetime(&ts)),
            ),
            (Kind::Json, Value::Json(serde_json::json!({"a": [1, "x", null]}))),
            (Kind::Json, Value::Json(serde_json::json!("just text"))),
            (Kind::Uuid, Value::Uuid(uuid::Uuid::from_u128(0x1234))),
            (
                Kind::Int {
                    bytes: 4,
                    unsigned: false,
                },
                Value::Null,
            ),
        ];
        for (kind, value) in cases {
            let back = kind.parse_json(&value.to_json()).unwrap();
            assert_eq!(back, value, "{kind:?}");
        }
    }

    fn check_shows(kind: &Kind, v: Value) -> String {
        match kind.check(v) {
            Ok(v) => format!("{v}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Fractions of a second: a column keeps `fsp` digits; finer ones are an error
    /// naming the value and what the column would store (cut and rounded).
    #[test]
    fn fractions_finer_than_the_column_are_errors() {
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let dt0 = Kind::Timestamp { fsp: 0 };
        let dt3 = Kind::Timestamp { fsp: 3 };
        let dt6 = Kind::Timestamp { fsp: 6 };
        let given = Value::Timestamp(t("2024-01-01 10:00:00.123456"));
        let cases: Vec<(&Kind, Value, &str)> = vec![
            (&dt6, given.clone(), "2024-01-01 10:00:00.123456"),
            (&dt3, given.clone(), "error: 2024-01-01 10:00:00.123456 is more precise than the column, which keeps 3 fractional digits: it would store 2024-01-01 10:00:00.123"),
            (&dt0, given.clone(), "error: 2024-01-01 10:00:00.123456 is more precise than the column, which keeps whole seconds: it would store 2024-01-01 10:00:00"),
            (&dt0, Value::Timestamp(t("2024-12-31 23:59:59.5")), "error: 2024-12-31 23:59:59.500 is more precise than the column, which keeps whole seconds: it would store 2024-12-31 23:59:59 (cut, as MariaDB does) or 2025-01-01 00:00:00 (rounded, as PostgreSQL does)"),
            (&dt0, Value::Timestamp(t("2024-01-01 10:00:00")), "2024-01-01 10:00:00"),
            (&dt3, Value::Timestamp(t("2024-01-01 10:00:00.120")), "2024-01-01 10:00:00.120"),
            (&Kind::TimestampTz { epoch32: true, fsp: 0 }, Value::TimestampTz(t("2024-01-01 10:00:00.25").and_utc()), "error: 2024-01-01 10:00:00.250+00:00 is more precise than the column, which keeps whole seconds: it would store 2024-01-01 10:00:00+00:00"),
            (&Kind::Time { fsp: 1 }, Value::Time(t("2024-01-01 10:00:00.25").time()), "error: 10:00:00.250 is more precise than the column, which keeps 1 fractional digit: it would store 10:00:00.200 (cut, as MariaDB does) or 10:00:00.300 (rounded, as PostgreSQL does)"),
            (&dt0, Value::Date(t("2024-01-01 00:00:00").date()), "2024-01-01 00:00:00"),
            (&Kind::Date, Value::Timestamp(t("2024-01-01 00:00:00")), "2024-01-01"),
            (&Kind::Date, Value::Timestamp(t("2024-01-01 10:00:00")), "error: 2024-01-01 10:00:00 has a time of day; the date column would store 2024-01-01"),
        ];
        for (kind, v, expect) in cases {
            assert_eq!(check_shows(kind, v.clone()), expect, "{kind:?} {v:?}");
        }
        // Text from a file is held to the same digits.
        assert_eq!(
            show(&dt0, "2024-01-01T10:00:00.9Z"),
            "error: 2024-01-01 10:00:00.900 is more precise than the column, which keeps whole seconds: it would store 2024-01-01 10:00:00 (cut, as MariaDB does) or 2024-01-01 10:00:01 (rounded, as PostgreSQL does)"
        );
        assert_eq!(dt3.describe(), "timestamp(3)");
        assert_eq!(dt6.describe(), "timestamp");
    }

    /// Floats: a value fits when the float the column stores says the same number.
    #[test]
    fn numbers_a_float_cannot_say_are_errors() {
        let f4 = Kind::Float { bytes: 4 };
        let f8 = Kind::Float { bytes: 8 };
        let d = |s: &str| Value::Decimal(crate::Decimal::parse(s).unwrap());
        let cases: Vec<(&Kind, Value, &str)> = vec![
            (&f8, Value::Int(9_007_199_254_740_992), "9007199254740992"),
            (
                &f8,
                Value::Int(9_007_199_254_740_993),
                "error: 9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992",
            ),
            (
                &f8,
                Value::Int(i64::MAX),
                "error: 9223372036854775807 does not fit a float64 column exactly: it would store 9223372036854775808",
            ),
            (&f8, Value::Int(-(1 << 60)), "-1152921504606847000"),
            (&f4, Value::Int(16_777_216), "16777216"),
            (
                &f4,
                Value::Int(16_777_217),
                "error: 16777217 does not fit a float32 column exactly: it would store 16777216",
            ),
            (&f8, d("0.1"), "0.1"),
            (&f8, d("0.10000000000000001"), "0.1"),
            (
                &f8,
                d("9007199254740993"),
                "error: 9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992",
            ),
            (
                &f8,
                d("3.14159265358979323846"),
                "error: 3.14159265358979323846 does not fit a float64 column exactly: it would store 3.141592653589793",
            ),
            (&f4, d("0.1"), "0.1"),
            (
                &f4,
                d("0.123456789"),
                "error: 0.123456789 does not fit a float32 column exactly: it would store 0.12345679",
            ),
            (&f4, Value::Float(0.1), "0.1"),
            (
                &f4,
                Value::Float(0.123456789),
                "error: 0.123456789 does not fit a float32 column exactly: it would store 0.12345679",
            ),
            (&f4, Value::Float(f64::from(0.123_456_79_f32)), "0.12345679"),
            (&f8, Value::Float(0.123456789), "0.123456789"),
        ];
        for (kind, v, expect) in cases {
            assert_eq!(check_shows(kind, v.clone()), expect, "{kind:?} {v:?}");
        }
        // Too small for a double: it would store zero.
        // A single read from a column says its shortest text, and goes back unchanged.
        for x in [
            0.1f32,
            0.123_456_79,
            1e-38,
            1e-45,
            -3.4e38,
            16_777_216.0,
            0.0,
            f32::MAX,
            f32::MIN,
        ] {
            let wide = f32_value(x);
            if x.abs() < f32::MAX {
                assert_eq!(wide.to_string(), x.to_string(), "{x}");
            } else {
                assert_eq!(wide, f64::from(x), "the extremes stay exact: {x}");
            }
            let Ok(Value::Float(back)) = f4.check(Value::Float(wide)) else {
                panic!("{x} does not fit float32")
            };
            assert_eq!(back as f32, x, "{x}");
        }
        assert_eq!(f32_value(0.1), 0.1);
        let tiny = check_shows(&f8, d("1e-400"));
        assert!(
            tiny.starts_with("error: 0.000")
                && tiny.ends_with("01 does not fit a float64 column exactly: it would store 0"),
            "{tiny}"
        );
        // Text and JSON numbers from files.
        assert_eq!(
            show(&f8, "9007199254740993"),
            "error: 9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992"
        );
        assert_eq!(show(&f8, " 1.5e3 "), "1500");
        assert_eq!(show(&f8, "0.30000000000000004"), "0.30000000000000004");
        assert_eq!(show(&f4, "1.25"), "1.25");
        // The in-place digit count agrees with the exact way on every shape of text.
        assert_eq!(show(&f8, "-0.000"), "-0");
        assert_eq!(show(&f8, "+1.2e3"), "1200");
        assert_eq!(show(&f8, "000123456789012345.000"), "123456789012345");
        assert_eq!(
            show(&f8, "1234567890123456789"),
            "error: 1234567890123456789 does not fit a float64 column exactly: it would store 1234567890123456800"
        );
        assert!(
            show(&f8, "1e-320").starts_with("0.000"),
            "a subnormal goes the exact way, and says 1e-320"
        );
        assert_eq!(show(&f4, "0.1"), "0.1");
        assert_eq!(
            show(&f4, "16777217.5"),
            "error: 16777217.5 does not fit a float32 column exactly: it would store 16777218"
        );
        assert_eq!(show(&f4, "1e39"), "error: 1e39 is too large for a float32 column");
        assert_eq!(
            show(&f8, "1e400"),
            "error: inf is not finite; MariaDB stores no NaN or infinity"
        );
        assert!(f8.parse_json(&serde_json::json!(9_007_199_254_740_993u64)).is_err());
        assert!(f8.parse_json(&serde_json::json!(0.1)).is_ok());
    }

    /// Integers from floats and decimals: a fraction is an error naming what the
    /// column would store; text is cut to the column's length.
    #[test]
    fn integers_and_texts_that_would_change_are_errors() {
        let int4 = Kind::Int {
            bytes: 4,
            unsigned: false,
        };
        let d = |s: &str| Value::Decimal(crate::Decimal::parse(s).unwrap());
        assert_eq!(check_shows(&int4, Value::Float(3.0)), "3");
        assert_eq!(
            check_shows(&int4, Value::Float(2.5)),
            "error: 2.5 is not an integer: the column would store 3"
        );
        assert_eq!(
            check_shows(&int4, d("-2.5")),
            "error: -2.5 is not an integer: the column would store -3"
        );
        assert_eq!(
            check_shows(&int4, Value::Float(3e9)),
            "error: 3000000000 is out of range -2147483648..=2147483647"
        );
        let bytes255 = Kind::Text {
            max_chars: None,
            max_bytes: Some(4),
            form: TextForm::Free,
        };
        assert_eq!(
            check_shows(&bytes255, Value::Text("aéé".into())),
            "error: \"aéé\" is 5 bytes long; the column holds at most 4, so it would be cut to \"aé\""
        );
        let c3 = Kind::Text {
            max_chars: Some(3),
            max_bytes: None,
            form: TextForm::Free,
        };
        assert_eq!(
            check_shows(&c3, Value::Text("abc ".into())),
            "error: \"abc \" is 4 characters long; the column holds at most 3, so it would be cut to \"abc\""
        );
        assert_eq!(
            check_shows(&c3, Value::Int(1234)),
            "error: \"1234\" is 4 characters long; the column holds at most 3, so it would be cut to \"123\""
        );
    }

    #[test]
    fn fingerprints_agree_on_what_engines_give_back() {
        let d = |s: &str| Value::Decimal(crate::Decimal::parse(s).unwrap());
        let ts = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let given = [
            d("12.5"),
            Value::Text("ab".into()),
            Value::Timestamp(ts.and_hms_nano_opt(1, 2, 3, 123_456_789).unwrap()),
            Value::Null,
        ];
        let stored = [
            d("12.50"),
            Value::Text("ab  ".into()),
            Value::Timestamp(ts.and_hms_micro_opt(1, 2, 3, 123_456).unwrap()),
            Value::Null,
        ];
        assert_eq!(fingerprint(&given), fingerprint(&stored));
        let changed = [d("12.51"), Value::Text("ab".into()), stored[2].clone(), Value::Null];
        assert_ne!(fingerprint(&given), fingerprint(&changed));
        // NULL is not the empty text.
        assert_ne!(fingerprint(&[Value::Null]), fingerprint(&[Value::Text(String::new())]));
    }

    /// Texts a fixed-width, ENUM or SET column would give back differently, and
    /// BINARY(n) values it would pad, are errors naming the value and what the
    /// column would store; values it gives back as written pass.
    #[test]
    fn texts_and_bytes_a_column_would_give_back_differently_are_errors() {
        let labels = |ls: &[&str]| Labels::new(ls.iter().map(|l| l.to_string()).collect());
        let char5 = Kind::Text {
            max_chars: Some(5),
            max_bytes: None,
            form: TextForm::Padded,
        };
        let e = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(labels(&["a", "b", "B2", "x y"])),
        };
        let set = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Set(labels(&["a", "b", "c"])),
        };
        let bin4 = Kind::Bytes {
            max_bytes: Some(4),
            fixed: true,
        };
        let t = |s: &str| Value::Text(s.into());
        let cases: Vec<(&Kind, Value, &str)> = vec![
            (&char5, t("ab"), "ab"),
            (&char5, t(" ab"), " ab"),
            (&char5, t("abcde"), "abcde"),
            // Trailing spaces are padding: dropped, and not counted in the length.
            (&char5, t("ab  "), "ab"),
            (&char5, t(" ab "), " ab"),
            (&char5, t("   "), ""),
            (&char5, t("abcde "), "abcde"),
            (&char5, t("abcde        "), "abcde"),
            (&char5, t("abcdef "), "error: \"abcdef\" is 6 characters long; the column holds at most 5, so it would be cut to \"abcde\""),
            (&char5, t("ab \t"), "ab \t"),
            (&char5, Value::Int(12), "12"),
            (&e, t("a"), "a"),
            (&e, t("x y"), "x y"),
            (&e, t("A"), "error: \"A\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"a\" (its collation matches it to that label)"),
            (&e, t("a "), "error: \"a \" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"a\" (its collation matches it to that label)"),
            (&e, t("b2"), "error: \"b2\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"B2\" (its collation matches it to that label)"),
            (&e, t("2"), "error: \"2\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"b\", label number 2"),
            (&e, Value::Int(3), "error: \"3\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"B2\", label number 3"),
            (&e, t("zz"), "error: \"zz\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"\" (its error value) where sql_mode is not strict, and refuse it where it is"),
            (&e, t(""), "error: \"\" is not one of the column's labels (\"a\", \"b\", \"B2\", \"x y\"; case and spaces count): MariaDB would store \"\" (its error value) where sql_mode is not strict, and refuse it where it is"),
            (&set, t(""), ""),
            (&set, t("a"), "a"),
            (&set, t("a,c"), "a,c"),
            (&set, t("a,b,c"), "a,b,c"),
            (&set, t("b,a"), "error: \"b,a\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a,b\""),
            (&set, t("a,a"), "error: \"a,a\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a\""),
            (&set, t("A"), "error: \"A\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a\""),
            (&set, t("a,x"), "error: \"a,x\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a\", dropping \"x\" where sql_mode is not strict, and refuse it where it is"),
            (&set, t("a,"), "error: \"a,\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a\""),
            (&set, t("5"), "error: \"5\" is not a value of the column's set (\"a\", \"b\", \"c\"): it takes those labels joined by commas, each at most once, in that order and case; MariaDB would store \"a,c\""),
            (&bin4, Value::Bytes(b"abcd".to_vec()), "\\x61626364"),
            (&bin4, Value::Bytes(b"ab".to_vec()), "error: \\x6162 is 2 bytes; a binary(4) column pads it with zero bytes to 4: it would store \\x61620000"),
            (&bin4, t(""), "error: \\x is 0 bytes; a binary(4) column pads it with zero bytes to 4: it would store \\x00000000"),
            (&bin4, Value::Bytes(b"abcde".to_vec()), "error: 5 bytes do not fit: the column holds at most 4, so they would be cut"),
            (&Kind::Bytes { max_bytes: Some(4), fixed: false }, Value::Bytes(b"ab".to_vec()), "\\x6162"),
        ];
        for (kind, v, expect) in cases {
            assert_eq!(check_shows(kind, v.clone()), expect, "{kind:?} {v:?}");
        }
        // From files, through parse_text and parse_json.
        assert_eq!(show(&e, "b"), "b");
        assert!(show(&e, "B").starts_with("error: \"B\" is not one of the column's labels"));
        assert!(e.parse_json(&serde_json::json!(2)).is_err());
        assert_eq!(show(&char5, "ab "), "ab");
        assert_eq!(char5.parse_json(&serde_json::json!("ab   ")), Ok(t("ab")));
        // What a column holds reads back as it is: MariaDB's '' for an unknown label,
        // and nothing is held to the labels; a char(n) value recorded with its
        // padding (PostgreSQL's own `\copy`, Lockgate before it dropped it) is the
        // value without it, as the engines compare it.
        assert_eq!(e.check_stored(t("")), Ok(t("")));
        assert_eq!(set.check_stored(t("b,a")), Ok(t("b,a")));
        assert_eq!(char5.check_stored(t("ab ")), Ok(t("ab")));
        assert_eq!(char5.check_stored(t("abcde   ")), Ok(t("abcde")));
        assert_eq!(char5.check_stored(t("ab")), char5.check(t("ab   ")));
        // Values read back as JSON (a migration's row images) go by the same rules.
        assert_eq!(e.parse_stored_json(&serde_json::json!("")), Ok(t("")));
        assert!(
            e.parse_json(&serde_json::json!("")).is_err(),
            "a write of '' is refused"
        );
        assert_eq!(char5.parse_stored_json(&serde_json::json!("ab   ")), Ok(t("ab")));
        assert_eq!(set.parse_stored_json(&serde_json::json!("b,a")), Ok(t("b,a")));
        assert_eq!(
            bin4.parse_stored_json(&serde_json::json!("\\x6162")),
            Ok(Value::Bytes(b"ab".to_vec()))
        );
        assert!(char5.parse_stored_json(&serde_json::json!("abcdef")).is_err());
        assert_eq!(
            bin4.check_stored(Value::Bytes(b"ab".to_vec())),
            Ok(Value::Bytes(b"ab".to_vec()))
        );
        assert!(char5.check_stored(t("abcdef")).is_err(), "the length still holds");
        assert!(e.check_stored(t("a\0")).is_err(), "the shared domain still holds");
        assert_eq!(e.check_stored(Value::Null), Ok(Value::Null));
        // Names for messages and `inspect`.
        assert_eq!(char5.describe(), "char(5)");
        assert_eq!(e.describe(), "enum('a','b','B2','x y')");
        assert_eq!(set.describe(), "set('a','b','c')");
        assert_eq!(bin4.describe(), "binary(4)");
        let quoted = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(labels(&["it's"])),
        };
        assert_eq!(quoted.describe(), "enum('it''s')");
        // The form shows in `inspect --json` only when it is not free text.
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "text", "max_chars": null, "max_bytes": null, "form": {"enum": ["a", "b", "B2", "x y"]}})
        );
        assert_eq!(
            serde_json::to_value(&char5).unwrap()["form"],
            serde_json::json!("padded")
        );
        assert_eq!(
            serde_json::to_value(Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: TextForm::Free
            })
            .unwrap(),
            serde_json::json!({"kind": "text", "max_chars": null, "max_bytes": null})
        );
        assert_eq!(
            serde_json::to_value(&bin4).unwrap(),
            serde_json::json!({"kind": "bytes", "max_bytes": 4, "fixed": true})
        );
    }

    /// One way to write labels in SQL, for declaring a column and for messages: a
    /// quote doubled and a backslash escaped, as MariaDB reads a literal.
    #[test]
    fn labels_are_written_as_mariadb_reads_them() {
        let list = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(sql_labels(&list(&["it's", r"c\d", "a"]), None), r"'it''s','c\\d','a'");
        assert_eq!(sql_labels(&list(&[r"\'"]), None), r"'\\'''");
        let many: Vec<String> = (0..25).map(|i| format!("l{i}")).collect();
        assert!(sql_labels(&many, None).ends_with(",'l24'"));
        let shown = sql_labels(&many, Some(20));
        assert!(shown.ends_with(",'l19',… 25 labels in all"), "{shown}");
        let e = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(Labels::new(list(&["it's", r"c\d"]))),
        };
        assert_eq!(e.describe(), r"enum('it''s','c\\d')");
    }

    /// ENUM and SET values are checked by the label lookup built with the kind: the
    /// same answers as a pass over the labels, for a long list too.
    #[test]
    fn labels_are_looked_up_not_scanned() {
        let list: Vec<String> = (0..5000).map(|i| format!("l{i}")).collect();
        let labels = Labels::new(list.clone());
        assert_eq!(labels.position("l4999"), Some(4999));
        assert_eq!(labels.position("L1"), None);
        assert_eq!(&labels[..], &list[..], "the labels keep their order");
        let e = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(labels.clone()),
        };
        let set = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Set(labels.clone()),
        };
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(e.check(t("l4999")), Ok(t("l4999")));
        assert!(e.check(t("l5000")).is_err());
        assert_eq!(set.check(t("l0,l7,l4999")), Ok(t("l0,l7,l4999")));
        assert!(set.check(t("l7,l0")).is_err(), "out of order");
        assert!(set.check(t("l7,l7")).is_err(), "twice");
        assert!(set.check(t("l7,x")).is_err(), "unknown");
        // A clone shares the lookup; equality is by the labels.
        let again = Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(Labels::new(list)),
        };
        assert_eq!(e, again);
        assert_eq!(e.clone(), e);
        // A label that repeats (MariaDB refuses one in strict mode) is found first.
        let twice = Labels::new(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(twice.position("a"), Some(0));
    }
}
