//! Rows, batches and row errors: what flows from a reader to a writer.

use crate::value::Value;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// One row: its values aligned with its batch's columns, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line in the source file (or row number in a source query).
    pub line: u64,
    /// 1-based number of the record in its file (the file reader's count, which
    /// tells apart records that share a line, as in a compact JSON array); 0 when
    /// the rows are not a file's records (a query's, Lockgate's own).
    pub number: u64,
    /// The values, one per column of the batch.
    pub values: Vec<Value>,
}

/// Rows that share one set of columns. A JSON record that lacks a key does not
/// give that column ("not given" is not NULL), so readers batch rows by column set.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Column names (as in the target table), shared by all batches with this set.
    pub columns: Arc<Vec<String>>,
    /// The rows.
    pub rows: Vec<Row>,
    /// Rows the reader already rejected (conversion or validation errors). They are
    /// reported with the batch so errors keep their order with the data.
    pub rejected: Vec<RowError>,
    /// Estimated size of the rows, for the byte cap.
    pub bytes: usize,
    /// The file (or source) the rows came from, for error reports.
    pub source: Option<Arc<String>>,
    /// Whether every value was already checked against its column's Kind (file
    /// readers type each field on the way in); the writer checks the others.
    pub checked: bool,
}

impl Row {
    /// [`Row::number`] as a row error carries it: none when the rows are not a file's
    /// records.
    pub fn record(&self) -> Option<u64> {
        (self.number > 0).then_some(self.number)
    }
}

impl Batch {
    /// An empty batch for a column set.
    pub fn new(columns: Arc<Vec<String>>) -> Batch {
        Batch {
            columns,
            ..Batch::default()
        }
    }

    /// Adds a row and accounts for its size.
    pub fn push(&mut self, row: Row) {
        self.bytes += row.values.iter().map(Value::approx_bytes).sum::<usize>() + 16;
        self.rows.push(row);
    }

    /// Whether the batch holds neither rows nor rejected rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rejected.is_empty()
    }
}

/// One failing row: where it is, its key, and what the engine (or Lockgate) said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The file (or source) it came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line in that file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based number of the record in that file ([`Row::number`]): several records
    /// may share a line, one record has one number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// The row's key, rendered `col=value, col=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The column concerned, when the engine (or the check) says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The engine's error code (SQLSTATE, MariaDB error number, SQLite code), or
    /// `lockgate` for errors Lockgate found before sending the row.
    pub code: String,
    /// The message.
    pub message: String,
}

impl fmt::Display for RowError {
    /// `file:line: row key: column c: message [code]`, each part when known. The
    /// record number shows when it says more than the line: when it is past the line,
    /// records share a line (a one-line JSON array), `file:1 (record 3): …`. Below the
    /// line (a CSV's header, a pretty-printed array) or equal to it (NDJSON), the line
    /// alone finds the record.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record.filter(|r| self.line.is_none_or(|line| *r > line));
        match (&self.file, self.line, record) {
            (Some(file), Some(line), Some(r)) => write!(f, "{file}:{line} (record {r}): ")?,
            (Some(file), Some(line), None) => write!(f, "{file}:{line}: ")?,
            (None, Some(line), Some(r)) => write!(f, "line {line} (record {r}): ")?,
            (None, Some(line), None) => write!(f, "line {line}: ")?,
            (Some(file), None, Some(r)) => write!(f, "{file}: record {r}: ")?,
            (Some(file), None, None) => write!(f, "{file}: ")?,
            (None, None, Some(r)) => write!(f, "record {r}: ")?,
            (None, None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "row {key}: ")?;
        }
        if let Some(column) = &self.column {
            write!(f, "column {column}: ")?;
        }
        write!(f, "{} [{}]", self.message, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: Option<u64>, record: Option<u64>) -> RowError {
        RowError {
            file: Some("a.json".into()),
            line,
            record,
            key: None,
            column: Some("n".into()),
            code: "lockgate".into(),
            message: "bad".into(),
        }
    }

    /// Two records of a one-line JSON array are told apart by their numbers; a
    /// record on a line of its own (the number is the line) reads as before.
    #[test]
    fn a_record_number_shows_when_records_share_a_line() {
        assert_eq!(
            error(Some(1), Some(3)).to_string(),
            "a.json:1 (record 3): column n: bad [lockgate]"
        );
        assert_ne!(error(Some(1), Some(3)).to_string(), error(Some(1), Some(4)).to_string());
        assert_eq!(
            error(Some(4), Some(4)).to_string(),
            "a.json:4: column n: bad [lockgate]"
        );
        assert_eq!(error(Some(2), None).to_string(), "a.json:2: column n: bad [lockgate]");
        // A CSV record (its number below its line, the header being line 1) and a
        // record of a pretty-printed array: the line alone finds it.
        assert_eq!(
            error(Some(3), Some(2)).to_string(),
            "a.json:3: column n: bad [lockgate]"
        );
        assert_eq!(
            error(Some(40), Some(7)).to_string(),
            "a.json:40: column n: bad [lockgate]"
        );
        assert_eq!(
            error(None, Some(2)).to_string(),
            "a.json: record 2: column n: bad [lockgate]"
        );
        let mut no_file = error(Some(1), Some(2));
        no_file.file = None;
        assert_eq!(no_file.to_string(), "line 1 (record 2): column n: bad [lockgate]");
    }
}
