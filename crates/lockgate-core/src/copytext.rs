//! Rows as text lines in PostgreSQL's COPY text format: the one row encoding that
//! PostgreSQL's `COPY … FROM STDIN` path and snapshot data files share.
//!
//! A row is its fields joined by tabs and ended by `\n`; NULL is `\N`; a backslash,
//! tab, line feed or carriage return inside a value is escaped (`\\`, `\t`, `\n`,
//! `\r`). Each value is written in its canonical text ([`Value`]'s `Display`: ISO
//! dates, `+00:00` instants, shortest round-trip floats), booleans as `t`/`f` and
//! bytes as `\x` hex, so the same line means the same values to PostgreSQL and to
//! [`decode_line`], which types each field by its column's [`Kind`] as a value that
//! column held ([`Kind::parse_stored_text`]).
//!
//! A column of [`Kind::Any`] (an SQLite column declared without a type) holds values
//! of any type, which plain text would not tell apart (`1` and `'1'`): there each
//! non-NULL field starts with a one-letter tag (`i` integer, `r` float, `n` decimal,
//! `t` text, `x` bytes, `b` boolean, and `o` for any other value as text).

use crate::decimal::Decimal;
use crate::value::{ConvertError, Kind, Value};
use std::io::Write;

/// Appends a value in COPY's text format.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Text(s) => escaped(s, out),
        Value::Json(j) => escaped(&j.to_string(), out),
        // bytea's \x form; its backslash is itself escaped for COPY.
        Value::Bytes(b) => {
            out.extend_from_slice(b"\\\\x");
            hex(b, out);
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Appends a value of a [`Kind::Any`] column: tagged by its type (see the module docs).
pub fn encode_tagged(v: &Value, out: &mut Vec<u8>) {
    let tag = match v {
        Value::Null => return out.extend_from_slice(b"\\N"),
        Value::Int(_) => b'i',
        Value::Float(_) => b'r',
        Value::Decimal(_) => b'n',
        Value::Text(_) => b't',
        Value::Bool(_) => b'b',
        Value::Bytes(b) => {
            out.push(b'x');
            hex(b, out);
            return;
        }
        _ => b'o',
    };
    out.push(tag);
    encode_value(v, out);
}

/// Appends one row (fields in column order) and its line end. `kinds` says which
/// columns are [`Kind::Any`] (tagged); `None` writes every value untagged.
pub fn encode_row(values: &[Value], kinds: Option<&[Kind]>, out: &mut Vec<u8>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match kinds.and_then(|k| k.get(i)) {
            Some(Kind::Any) => encode_tagged(v, out),
            _ => encode_value(v, out),
        }
    }
    out.push(b'\n');
}

/// Lower-case hex of bytes (a digest, say), as a string.
pub fn hex_string(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

fn hex(b: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2);
    for byte in b {
        out.push(DIGITS[(byte >> 4) as usize]);
        out.push(DIGITS[(byte & 0xf) as usize]);
    }
}

fn escaped(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Why a line could not be read: which field (0-based), and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("field {} ({column}): {error}", field + 1)]
pub struct LineError {
    /// The field's position.
    pub field: usize,
    /// Its column's name (filled by the caller that knows it; empty otherwise).
    pub column: String,
    /// What is wrong.
    pub error: ConvertError,
}

/// Reads one line (without its `\n`) into typed values, one per kind. A line with
/// more or fewer fields than kinds, a bad escape, text that is not UTF-8, or a field
/// its column could not have held is an error naming the field.
pub fn decode_line(line: &[u8], kinds: &[Kind]) -> Result<Vec<Value>, LineError> {
    let mut values = Vec::with_capacity(kinds.len());
    let mut field = Vec::new();
    let mut rest = line;
    for (i, kind) in kinds.iter().enumerate() {
        let fail = |msg: String| LineError {
            field: i,
            column: String::new(),
            error: ConvertError(msg),
        };
        let end = rest.iter().position(|&b| b == b'\t').unwrap_or(rest.len());
        let raw = &rest[..end];
        let last = i + 1 == kinds.len();
        if last && end != rest.len() {
            return Err(fail(format!("the line has more than {} fields", kinds.len())));
        }
        if !last && end == rest.len() {
            return Err(fail(format!("the line has {} fields, not {}", i + 1, kinds.len())));
        }
        rest = if last { &[] } else { &rest[end + 1..] };
        if raw == b"\\N" {
            values.push(Value::Null);
            continue;
        }
        let text = unescape(raw, &mut field).map_err(fail)?;
        let v = match kind {
            Kind::Any => decode_tagged(text),
            _ => kind.parse_stored_text(text),
        };
        values.push(v.map_err(|e| LineError {
            field: i,
            column: String::new(),
            error: e,
        })?);
    }
    Ok(values)
}

/// The field's text with COPY's escapes undone (into `buf`, reused across fields).
fn unescape<'a>(raw: &'a [u8], buf: &'a mut Vec<u8>) -> Result<&'a str, String> {
    let not_utf8 = |_| "the field is not UTF-8 text".to_string();
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).map_err(not_utf8);
    }
    buf.clear();
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            buf.push(b);
            continue;
        }
        buf.push(match bytes.next() {
            Some(b'\\') => b'\\',
            Some(b't') => b'\t',
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(other) => return Err(format!("unknown escape \\{}", *other as char)),
            None => return Err("the field ends with a lone backslash".into()),
        });
    }
    std::str::from_utf8(buf).map_err(not_utf8)
}

fn decode_tagged(text: &str) -> Result<Value, ConvertError> {
    let bad = || ConvertError(format!("{} is not a tagged value", crate::value::excerpt(text)));
    let (tag, body) = text.split_at_checked(1).ok_or_else(bad)?;
    Ok(match tag {
        "i" => Value::Int(body.parse().map_err(|_| bad())?),
        "r" => Value::Float(body.parse().map_err(|_| bad())?),
        "n" => Value::Decimal(Decimal::parse(body).ok_or_else(bad)?),
        "t" | "o" => Value::Text(body.to_string()),
        "b" => match body {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad()),
        },
        "x" => Value::Bytes(crate::value::parse_hex(body).ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let kinds = vec![
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: Default::default(),
            },
            Kind::Any,
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
        ];
        let row = vec![
            Value::Text("a\tb\\c\nd\re \\N".into()),
            Value::Int(7),
            Value::Bytes(vec![0, 255, b'\\']),
        ];
        let mut out = Vec::new();
        encode_row(&row, Some(&kinds), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let back = decode_line(&out[..out.len() - 1], &kinds).unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn wrong_field_counts_are_errors() {
        let kinds = vec![
            Kind::Int {
                bytes: 8,
                unsigned: false
            };
            2
        ];
        assert!(decode_line(b"1", &kinds)
            .unwrap_err()
            .to_string()
            .contains("1 fields, not 2"));
        assert!(decode_line(b"1\t2\t3", &kinds)
            .unwrap_err()
            .to_string()
            .contains("more than 2"));
        assert_eq!(
            decode_line(b"1\t\\N", &kinds).unwrap(),
            vec![Value::Int(1), Value::Null]
        );
    }
}
