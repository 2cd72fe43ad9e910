//! Data files as a re-readable [`BatchSource`]: each `open` starts a reader thread
//! that decodes the files in order, types every field against its column, and
//! sends batches (grouped by column set, capped by rows and bytes) on a bounded
//! channel, so memory stays bounded by the batch size whatever the file size.

use lockgate_bundle::{open_records, Format, RawValue, Record};
use lockgate_core::{Batch, Kind, Row, RowError, Table};
use lockgate_db::writer::{BatchSource, SourceError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Files read into one table.
pub(crate) struct FileSource {
    pub files: Vec<PathBuf>,
    pub format: Option<Format>,
    pub table: Table,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    /// Key columns, to name rows in errors found while typing them.
    pub key: Vec<String>,
    /// Columns every row gets (a tenant column set from the file's context). A
    /// record that gives such a column itself must give the same value.
    pub constants: Vec<(String, lockgate_core::Value)>,
    /// Checks from a table definition, applied to every record before it is written.
    pub validation: Option<Validation>,
    /// Columns whose null means "not given" (migrate's key columns: a record without
    /// its key's value is inserted, as oe-migration's upsert without an id creates a
    /// row). Columns the database fills itself are always so.
    pub absent_when_null: Vec<String>,
}

/// Checks a table definition asks of each record (oe-migration's model validation):
/// required fields present and not null, text no longer than its `max`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Validation {
    /// Columns that must hold a value.
    pub required: Vec<String>,
    /// Text columns with their maximum length in characters.
    pub max_chars: Vec<(String, u64)>,
    /// Whether records only change the fields they give (update mode): then a
    /// required field that is absent is fine; an explicit null is not.
    pub partial: bool,
}

/// Batches in flight between the reader thread and the writer: enough to keep
/// both busy, few enough to bound memory.
const CHANNEL_DEPTH: usize = 4;
/// Column sets open at once before all are flushed (JSON records may vary).
const MAX_OPEN_SETS: usize = 16;

impl BatchSource for FileSource {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let files = self.files.clone();
        let format = self.format;
        let table = self.table.clone();
        let (batch_rows, batch_bytes) = (self.batch_rows.max(1), self.batch_bytes.max(1024));
        let key = self.key.clone();
        let extra = Extra {
            constants: self
                .constants
                .iter()
                .filter_map(|(c, v)| Some((table.column_index(c)?, v.clone())))
                .collect(),
            required: self.validation.as_ref().map_or_else(Vec::new, |v| {
                v.required.iter().filter_map(|c| table.column_index(c)).collect()
            }),
            max_chars: self.validation.as_ref().map_or_else(Vec::new, |v| {
                v.max_chars
                    .iter()
                    .filter_map(|(c, m)| Some((table.column_index(c)?, *m)))
                    .collect()
            }),
            partial: self.validation.as_ref().is_some_and(|v| v.partial),
            // A null for a column the database fills (an identity, an auto-increment id)
            // asks it to fill it: PostgreSQL would refuse the null itself.
            absent_when_null: table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.auto || self.absent_when_null.contains(&c.name))
                .map(|(i, _)| i)
                .collect(),
        };
        std::thread::spawn(move || {
            let reading = Reading {
                table: &table,
                batch_rows,
                batch_bytes,
                key: &key,
                extra: &extra,
            };
            for file in &files {
                if let Err(e) = read_file(file, format, &reading, &tx) {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        rx
    }
}

/// Drops the fields of `columns` whose value is null: the record then does not give
/// them (see [`FileSource::absent_when_null`]).
fn absent_when_null(set: &mut Vec<usize>, values: &mut Vec<lockgate_core::Value>, columns: &[usize]) {
    if columns.is_empty() {
        return;
    }
    let mut i = 0;
    while i < set.len() {
        if values[i].is_null() && columns.contains(&set[i]) {
            set.remove(i);
            values.remove(i);
        } else {
            i += 1;
        }
    }
}

/// What is added to and checked of every record, by table column index.
struct Extra {
    absent_when_null: Vec<usize>,
    constants: Vec<(usize, lockgate_core::Value)>,
    required: Vec<usize>,
    max_chars: Vec<(usize, u64)>,
    partial: bool,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.constants.is_empty() && self.required.is_empty() && self.max_chars.is_empty()
    }

    /// Adds the constants to a typed record and checks it; the first problem is
    /// returned as (column index, message).
    fn apply(&self, set: &mut Vec<usize>, values: &mut Vec<lockgate_core::Value>) -> Option<(usize, String)> {
        let mut problem = None;
        for (col, v) in &self.constants {
            match set.iter().position(|c| c == col) {
                Some(pos) if values[pos] != *v && problem.is_none() => {
                    problem = Some((*col, format!("gives {} but the file's context sets {v}", values[pos])));
                }
                Some(_) => {}
                None => {
                    set.push(*col);
                    values.push(v.clone());
                }
            }
        }
        if problem.is_some() {
            return problem;
        }
        for col in &self.required {
            match set.iter().position(|c| c == col) {
                Some(pos) if values[pos].is_null() => return Some((*col, "can't be blank (value: null)".into())),
                None if !self.partial => return Some((*col, "can't be blank (value: undefined)".into())),
                _ => {}
            }
        }
        for (col, max) in &self.max_chars {
            if let Some(pos) = set.iter().position(|c| c == col) {
                if let lockgate_core::Value::Text(t) = &values[pos] {
                    let n = t.chars().count() as u64;
                    if n > *max {
                        return Some((
                            *col,
                            format!("is too long ({n} characters; the definition allows {max})"),
                        ));
                    }
                }
            }
        }
        None
    }
}

/// Maps a file's column names to the table's columns: exact, else the one
/// case-insensitive match. An unknown name is an error naming the file.
pub(crate) fn map_columns(file: &str, names: &[String], table: &Table) -> Result<Vec<usize>, SourceError> {
    names
        .iter()
        .map(|n| {
            table.column_index(n).ok_or_else(|| {
                SourceError(format!(
                    "{file}: column {n:?} is not a column of table {} (its columns: {}): rename it in the file or drop it",
                    table.name,
                    table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

/// How the reader thread reads each file.
struct Reading<'a> {
    table: &'a Table,
    batch_rows: usize,
    batch_bytes: usize,
    key: &'a [String],
    extra: &'a Extra,
}

fn read_file(
    path: &std::path::Path,
    format: Option<Format>,
    r: &Reading<'_>,
    tx: &mpsc::Sender<Result<Batch, SourceError>>,
) -> Result<(), SourceError> {
    let Reading {
        table,
        batch_rows,
        batch_bytes,
        key,
        extra,
    } = *r;
    let name = Arc::new(path.display().to_string());
    let mut reader = open_records(path, format).map_err(|e| SourceError(e.to_string()))?;
    // File column index → table column index, grown as JSON keys appear.
    let mut mapping: Vec<usize> = Vec::new();
    // Batches being filled, by column set. CSV and most JSON files have one set, so
    // the current set's batch is kept aside and looked up without hashing.
    let mut open: HashMap<Vec<usize>, Batch> = HashMap::new();
    let mut hot: Option<(Vec<usize>, Batch)> = None;
    let mut set: Vec<usize> = Vec::new();
    let mut record = Record::default();
    let key_idx: Vec<usize> = key.iter().filter_map(|k| table.column_index(k)).collect();
    // A JSON string is a value: into a JSON column it goes as a string, not as JSON
    // text to parse (a CSV field is text, and holds JSON text there).
    let json_strings = reader.text_is_json_string();
    // A CSV header (line 1) is known before the first record; JSON keys appear with
    // the records, so an unknown one is named with its record's line.
    if !reader.columns().is_empty() {
        mapping = map_columns(&format!("{name}:1"), reader.columns(), table)?;
    }
    let send = |batch: Batch| -> Result<(), SourceError> {
        // A closed channel means the writer stopped (stop policy, an error): end quietly.
        let _ = tx.blocking_send(Ok(batch));
        Ok(())
    };
    loop {
        let more = reader
            .next_record(&mut record)
            .map_err(|e| SourceError(e.to_string()))?;
        if !more {
            break;
        }
        if mapping.len() < reader.columns().len() {
            let names = &reader.columns()[mapping.len()..];
            mapping.extend(map_columns(&format!("{name}:{}", record.line), names, table)?);
        }
        set.clear();
        set.extend(record.fields.iter().map(|(i, _)| mapping[*i]));
        let mut values = Vec::with_capacity(set.len());
        let mut error: Option<RowError> = None;
        for ((_, raw), &col) in record.fields.iter().zip(&set) {
            let column = &table.columns[col];
            let typed = match raw {
                RawValue::Null => Ok(lockgate_core::Value::Null),
                RawValue::Text(s) if json_strings && column.kind == Kind::Json => column
                    .kind
                    .check(lockgate_core::Value::Json(serde_json::Value::String(s.clone()))),
                RawValue::Text(s) => column.kind.parse_text(s),
                RawValue::Json(j) => column.kind.parse_json(j),
            };
            match typed {
                Ok(v) => values.push(v),
                Err(e) => {
                    if error.is_none() {
                        error = Some(RowError {
                            file: Some(name.to_string()),
                            line: Some(record.line),
                            record: Some(record.number),
                            key: raw_key(&record, &set, &key_idx, table),
                            column: Some(column.name.clone()),
                            code: "lockgate".into(),
                            message: format!(
                                "{e} (column {} is {})",
                                column.name,
                                describe(&column.kind, &column.data_type)
                            ),
                        });
                    }
                    values.push(lockgate_core::Value::Null);
                }
            }
        }
        if error.is_none() {
            absent_when_null(&mut set, &mut values, &extra.absent_when_null);
        }
        if error.is_none() && !extra.is_empty() {
            if let Some((col, message)) = extra.apply(&mut set, &mut values) {
                let column = &table.columns[col].name;
                error = Some(RowError {
                    file: Some(name.to_string()),
                    line: Some(record.line),
                    record: Some(record.number),
                    key: raw_key(&record, &set, &key_idx, table),
                    column: Some(column.clone()),
                    code: "validation".into(),
                    message: format!("`{column}` {message}"),
                });
            }
        }
        if hot.as_ref().is_none_or(|(k, _)| *k != set) {
            if let Some((k, b)) = hot.take() {
                open.insert(k, b);
            }
            if open.len() >= MAX_OPEN_SETS && !open.contains_key(&set) {
                for (_, b) in open.drain() {
                    send(b)?;
                }
            }
            let batch = open.remove(&set).unwrap_or_else(|| {
                let mut b = Batch::new(Arc::new(set.iter().map(|&i| table.columns[i].name.clone()).collect()));
                b.source = Some(name.clone());
                b.checked = true;
                b
            });
            hot = Some((set.clone(), batch));
        }
        let (_, batch) = hot.as_mut().expect("set just above");
        match error {
            Some(e) => batch.rejected.push(e),
            None => batch.push(Row {
                line: record.line,
                number: record.number,
                values,
            }),
        }
        if batch.rows.len() + batch.rejected.len() >= batch_rows || batch.bytes >= batch_bytes {
            let columns = batch.columns.clone();
            let full = std::mem::replace(batch, Batch::new(columns));
            batch.source = Some(name.clone());
            batch.checked = true;
            send(full)?;
        }
    }
    if let Some((k, b)) = hot.take() {
        open.insert(k, b);
    }
    open.retain(|_, b| !b.is_empty());
    // Flush in a stable order so that reports are reproducible.
    let mut rest: Vec<(Vec<usize>, Batch)> = open.into_iter().collect();
    rest.sort_by_key(|(_, b)| {
        b.rows
            .first()
            .map(|r| r.line)
            .or(b.rejected.first().and_then(|e| e.line))
    });
    for (_, b) in rest {
        send(b)?;
    }
    Ok(())
}

fn describe(kind: &Kind, data_type: &str) -> String {
    match kind {
        Kind::Unsupported { .. } => data_type.to_string(),
        k => format!("{} ({data_type})", k.describe()),
    }
}

/// The key of a row that could not be typed, from its raw fields.
fn raw_key(record: &Record, set: &[usize], key_idx: &[usize], table: &Table) -> Option<String> {
    let parts: Vec<String> = key_idx
        .iter()
        .filter_map(|k| {
            let pos = set.iter().position(|c| c == k)?;
            let v = match &record.fields[pos].1 {
                RawValue::Null => "NULL".to_string(),
                RawValue::Text(s) => s.clone(),
                RawValue::Json(j) => j.to_string(),
            };
            Some(format!("{}={v}", table.columns[*k].name))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}
