//! The data-driven test helper: reads an input and renders its records, or the error that
//! stopped them, as one compact line to compare with an expected string.

use std::io::{self, Cursor, Read};

use lockgate_bundle::{records_from_reader, Format, RawValue, ReadError, Record, RecordReader};

/// Reads `input` as `format` and compares the rendering with `expect`.
///
/// Every input is read twice: in one piece, and through a reader that returns one byte per
/// `read` call, which proves no reader assumes more than it was given.
#[track_caller]
pub fn check(input: &str, format: Format, expect: &str) {
    check_bytes(input.as_bytes(), format, expect);
}

/// [`check`] for input that is not UTF-8.
#[track_caller]
pub fn check_bytes(input: &[u8], format: Format, expect: &str) {
    let whole = render(records_from_reader(Box::new(Cursor::new(input.to_vec())), "in", format));
    assert_eq!(whole, expect, "input: {:?}", String::from_utf8_lossy(input));
    let trickle = render(records_from_reader(
        Box::new(OneByteReader(Cursor::new(input.to_vec()))),
        "in",
        format,
    ));
    assert_eq!(
        trickle,
        expect,
        "one byte per read, input: {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Renders every record as `@line column=value …`, records joined by `; `, then
/// `error: …` if reading stopped at one. Text is JSON-quoted, nulls are `null`, JSON values
/// are as serde_json writes them. No records and no error renders as `no records`.
pub fn render(reader: Result<Box<dyn RecordReader>, ReadError>) -> String {
    let mut reader = match reader {
        Ok(reader) => reader,
        Err(error) => return format!("error: {error}"),
    };
    let mut records = Vec::new();
    // One record reused throughout, as callers do: this checks readers overwrite it fully.
    let mut record = Record::default();
    let mut error = None;
    loop {
        match reader.next_record(&mut record) {
            Ok(true) => {
                assert_eq!(record.number, records.len() as u64 + 1, "record numbers count up");
                assert!(
                    record.fields.windows(2).all(|pair| pair[0].0 < pair[1].0),
                    "fields ascend by index: {record:?}"
                );
                records.push(record.clone());
            }
            Ok(false) => break,
            Err(stop) => {
                error = Some(stop);
                break;
            }
        }
    }
    let columns = reader.columns();
    let mut parts: Vec<String> = records
        .iter()
        .map(|record| {
            let mut text = format!("@{}", record.line);
            for (index, value) in &record.fields {
                text.push_str(&format!(" {}={}", columns[*index], render_value(value)));
            }
            text
        })
        .collect();
    if let Some(error) = error {
        parts.push(format!("error: {error}"));
    }
    if parts.is_empty() {
        "no records".to_owned()
    } else {
        parts.join("; ")
    }
}

pub fn render_value(value: &RawValue) -> String {
    match value {
        RawValue::Null => "null".to_owned(),
        RawValue::Text(text) => serde_json::Value::String(text.clone()).to_string(),
        RawValue::Json(json) => json.to_string(),
    }
}

/// A reader that hands out one byte per call.
pub struct OneByteReader<R>(pub R);

impl<R: Read> Read for OneByteReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match buf.first_mut() {
            Some(first) => self.0.read(std::slice::from_mut(first)),
            None => Ok(0),
        }
    }
}

/// Runs a parser over `(input, expected message or "ok")` cases and fails once,
/// listing every case whose outcome differs.
pub fn check_errors<T, E: std::fmt::Display, A: AsRef<str>, B: AsRef<str>>(
    cases: &[(A, B)],
    parse: impl Fn(&str) -> Result<T, E>,
    is_invalid: impl Fn(&E) -> bool,
) {
    let mut failures = Vec::new();
    for (text, expect) in cases {
        let (text, expect) = (text.as_ref(), expect.as_ref());
        let actual = match parse(text) {
            Ok(_) => "ok".to_owned(),
            Err(error) => {
                assert!(is_invalid(&error), "{error}");
                error.to_string()
            }
        };
        if actual != expect {
            failures.push(format!("input:    {text}\nexpected: {expect}\nactual:   {actual}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
