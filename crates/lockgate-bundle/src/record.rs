//! The records every reader produces, format-neutral: fields are raw (not yet typed against
//! a table's columns) and name their column by an index into the reader's column list.

use crate::ReadError;

/// One field as it appears in a file, before it is typed against a column.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// CSV: an unquoted empty field. JSON: null.
    Null,
    /// CSV: any other field (a quoted `""` is `Text("")`). JSON: a string.
    Text(String),
    /// JSON only: a number, bool, object or array, as parsed (numbers keep every digit,
    /// thanks to `serde_json`'s `arbitrary_precision`).
    Json(serde_json::Value),
}

/// One record of a data file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// 1-based line on which the record starts.
    pub line: u64,
    /// 1-based record number within the file (header not counted).
    pub number: u64,
    /// The fields the record gives, as (index into [`RecordReader::columns`], value), in
    /// ascending index order, each index at most once.
    ///
    /// A JSON record lacks the keys it does not give ("not given" is not null); a CSV record
    /// gives every header column.
    pub fields: Vec<(usize, RawValue)>,
}

/// A pull reader of records; reuse the [`Record`] between calls to avoid allocation.
pub trait RecordReader: Send {
    /// Column names seen so far: CSV the header; JSON/NDJSON every key in order of first
    /// appearance (grows as new keys appear, and existing indexes never change).
    fn columns(&self) -> &[String];

    /// Reads the next record into `record` (overwriting it). `Ok(false)` at the end of the
    /// file.
    ///
    /// After an error the reader's place in the file is unspecified: stop reading.
    fn next_record(&mut self, record: &mut Record) -> Result<bool, ReadError>;

    /// Whether a [`RawValue::Text`] is a JSON string, a value in itself (JSON and NDJSON),
    /// rather than text to be parsed into the column's type (CSV). The difference shows
    /// in JSON columns: a JSON string stays a string there, while a CSV field holds JSON
    /// text.
    fn text_is_json_string(&self) -> bool {
        false
    }
}
