//! The CSV reader: a byte-level state machine over the source buffer, following RFC 4180
//! and PostgreSQL's `COPY … CSV` rules.
//!
//! It is hand-written rather than built on the `csv` crate because COPY's rules need a
//! distinction that crate erases: an unquoted empty field is NULL, a quoted one (`""`) is
//! the empty string. An empty line is therefore one unquoted empty field, as COPY reads
//! it: a NULL row in a CSV of one column, and too few fields (an error naming the line)
//! in a CSV of several. Only empty lines before the header are skipped.

use std::collections::HashMap;

use crate::record::{RawValue, Record, RecordReader};
use crate::source::{describe_byte, Source, MAX_RECORD_BYTES};
use crate::ReadError;

/// Bytes that end a run of plain field content outside quotes.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b',' as usize] = true;
    table[b'"' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table
};

/// Where one field of the record being parsed ends in `CsvReader::bytes`.
#[derive(Clone, Copy)]
struct FieldEnd {
    end: usize,
    quoted: bool,
}

#[derive(Clone, Copy)]
enum State {
    /// Before the first byte of a record (empty lines are skipped here only before the
    /// header).
    RecordStart,
    /// At the first byte of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: it closes the field or, doubled, escapes.
    AfterQuote,
}

pub(crate) struct CsvReader {
    source: Source,
    columns: Vec<String>,
    /// The unquoted bytes of the record being parsed, its fields concatenated.
    bytes: Vec<u8>,
    /// Where each field of `bytes` ends.
    ends: Vec<FieldEnd>,
    /// The last record ended at a carriage return, so a line feed right after it is part of
    /// the same line break (CRLF).
    after_cr: bool,
    number: u64,
}

impl CsvReader {
    /// Reads and checks the header. `source` has been started.
    pub(crate) fn new(source: Source) -> Result<CsvReader, ReadError> {
        let mut reader = CsvReader {
            source,
            columns: Vec::new(),
            bytes: Vec::with_capacity(4096),
            ends: Vec::with_capacity(64),
            after_cr: false,
            number: 0,
        };
        let Some(line) = reader.parse_record(true)? else {
            return Err(ReadError::empty(&reader.source.name));
        };
        let text = reader.record_text(line)?;
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(reader.ends.len());
        let mut start = 0;
        let mut columns = Vec::with_capacity(reader.ends.len());
        for (index, field) in reader.ends.iter().enumerate() {
            let name = field_str(text, start, field.end, reader.source.name.as_str(), line)?;
            start = field.end;
            if name.trim().is_empty() {
                return Err(ReadError::at_line(
                    &reader.source.name,
                    line,
                    format!("column {} of the header has no name: every column needs one", index + 1),
                ));
            }
            if let Some(first) = seen.insert(name, index) {
                return Err(ReadError::at_line(
                    &reader.source.name,
                    line,
                    format!(
                        "column {} of the header repeats the name {name:?} of column {}: column names must be unique",
                        index + 1,
                        first + 1
                    ),
                ));
            }
            columns.push(name.to_owned());
        }
        reader.columns = columns;
        Ok(reader)
    }

    /// The record just parsed as text, after checking it is UTF-8.
    fn record_text(&self, line: u64) -> Result<&str, ReadError> {
        std::str::from_utf8(&self.bytes).map_err(|error| {
            // Field content keeps its line breaks, so counting them finds the bad line.
            let valid = &self.bytes[..error.valid_up_to()];
            let extra = valid.iter().filter(|&&b| b == b'\n').count() as u64;
            invalid_utf8(&self.source.name, line + extra)
        })
    }

    /// Parses the next record into `bytes` and `ends`. Returns the line it starts on, or
    /// `None` at the end of the input. Empty lines are skipped when `skip_empty` (before
    /// the header); otherwise an empty line is a record of one unquoted empty field.
    fn parse_record(&mut self, skip_empty: bool) -> Result<Option<u64>, ReadError> {
        let CsvReader {
            source: src,
            bytes,
            ends,
            after_cr,
            ..
        } = self;
        bytes.clear();
        ends.clear();
        let mut state = State::RecordStart;
        let mut start_line = 0;
        // Where the current quoted field opened, for an unterminated quote's error.
        let mut quote_line = 0;
        let mut quote_column = 0;
        loop {
            if src.pos == src.end && bytes.len() + ends.len() * std::mem::size_of::<FieldEnd>() > MAX_RECORD_BYTES {
                // Checked once per buffer, so it costs nothing per byte.
                return Err(src.too_large(start_line, "the record"));
            }
            if src.pos == src.end && !src.fill()? {
                return match state {
                    State::RecordStart => Ok(None),
                    State::FieldStart | State::Unquoted => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: false,
                        });
                        Ok(Some(start_line))
                    }
                    State::AfterQuote => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: true,
                        });
                        Ok(Some(start_line))
                    }
                    State::Quoted => Err(ReadError::at(
                        &src.name,
                        quote_line,
                        quote_column,
                        "quoted field is not closed before the end of the file: add the closing quote",
                    )),
                };
            }
            match state {
                State::RecordStart => {
                    let byte = src.buf[src.pos];
                    if *after_cr {
                        *after_cr = false;
                        if byte == b'\n' {
                            // The line was counted at the carriage return.
                            src.pos += 1;
                            src.line_start = src.offset_of(src.pos);
                            continue;
                        }
                    }
                    match byte {
                        // Before the header, an empty line holds nothing.
                        b'\n' | b'\r' if skip_empty => {
                            src.newline(src.pos);
                            src.pos += 1;
                            *after_cr = byte == b'\r';
                        }
                        // After it, one unquoted empty field: COPY's NULL.
                        b'\n' | b'\r' => {
                            start_line = src.line;
                            ends.push(FieldEnd { end: 0, quoted: false });
                            src.newline(src.pos);
                            src.pos += 1;
                            *after_cr = byte == b'\r';
                            return Ok(Some(start_line));
                        }
                        _ => {
                            start_line = src.line;
                            state = State::FieldStart;
                        }
                    }
                }
                State::FieldStart => match src.buf[src.pos] {
                    b'"' => {
                        quote_line = src.line;
                        quote_column = src.column_of(src.pos);
                        src.pos += 1;
                        state = State::Quoted;
                    }
                    b',' => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: false,
                        });
                        src.pos += 1;
                    }
                    byte @ (b'\n' | b'\r') => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: false,
                        });
                        src.newline(src.pos);
                        src.pos += 1;
                        *after_cr = byte == b'\r';
                        return Ok(Some(start_line));
                    }
                    _ => state = State::Unquoted,
                },
                State::Unquoted => {
                    let run = &src.buf[src.pos..src.end];
                    let length = run.iter().position(|&b| SPECIAL[b as usize]).unwrap_or(run.len());
                    bytes.extend_from_slice(&run[..length]);
                    src.pos += length;
                    if length == run.len() {
                        continue;
                    }
                    match run[length] {
                        b',' => {
                            ends.push(FieldEnd {
                                end: bytes.len(),
                                quoted: false,
                            });
                            src.pos += 1;
                            state = State::FieldStart;
                        }
                        b'"' => {
                            return Err(src.error_at(
                                src.pos,
                                "quote inside an unquoted field: quote the whole field and double the quotes inside it",
                            ));
                        }
                        byte => {
                            ends.push(FieldEnd {
                                end: bytes.len(),
                                quoted: false,
                            });
                            src.newline(src.pos);
                            src.pos += 1;
                            *after_cr = byte == b'\r';
                            return Ok(Some(start_line));
                        }
                    }
                }
                State::Quoted => {
                    let start = src.offset_of(src.pos);
                    let run = &src.buf[src.pos..src.end];
                    let (length, closed) = match run.iter().position(|&b| b == b'"') {
                        Some(length) => (length, true),
                        None => (run.len(), false),
                    };
                    bytes.extend_from_slice(&run[..length]);
                    src.pos += length + usize::from(closed);
                    let content = &bytes[bytes.len() - length..];
                    src.newlines_in(content, start);
                    if closed {
                        state = State::AfterQuote;
                    }
                }
                State::AfterQuote => match src.buf[src.pos] {
                    b'"' => {
                        bytes.push(b'"');
                        src.pos += 1;
                        state = State::Quoted;
                    }
                    b',' => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: true,
                        });
                        src.pos += 1;
                        state = State::FieldStart;
                    }
                    byte @ (b'\n' | b'\r') => {
                        ends.push(FieldEnd {
                            end: bytes.len(),
                            quoted: true,
                        });
                        src.newline(src.pos);
                        src.pos += 1;
                        *after_cr = byte == b'\r';
                        return Ok(Some(start_line));
                    }
                    byte => {
                        return Err(src.error_at(
                            src.pos,
                            format!(
                                "{} after the closing quote of a field: put the whole field inside the quotes, or a ',' after them",
                                describe_byte(byte)
                            ),
                        ));
                    }
                },
            }
        }
    }
}

fn field_str<'a>(text: &'a str, start: usize, end: usize, name: &str, line: u64) -> Result<&'a str, ReadError> {
    // The record as a whole is valid UTF-8, but a field boundary may still split a character
    // when two fields each hold half of one, so the slice is checked rather than assumed.
    text.get(start..end).ok_or_else(|| invalid_utf8(name, line))
}

fn invalid_utf8(name: &str, line: u64) -> ReadError {
    ReadError::at_line(name, line, "invalid UTF-8: save the file as UTF-8")
}

impl RecordReader for CsvReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_record(&mut self, record: &mut Record) -> Result<bool, ReadError> {
        let Some(line) = self.parse_record(false)? else {
            return Ok(false);
        };
        if self.ends.len() != self.columns.len()
            && self.ends.len() == 1
            && self.bytes.is_empty()
            && !self.ends[0].quoted
        {
            return Err(ReadError::at_line(
                &self.source.name,
                line,
                format!(
                    "the line is empty, but the header has {} columns: remove the empty line \
                     (as in PostgreSQL's COPY, an empty line is a NULL row only in a CSV of one column)",
                    self.columns.len()
                ),
            ));
        }
        if self.ends.len() != self.columns.len() {
            return Err(ReadError::at_line(
                &self.source.name,
                line,
                format!(
                    "expected {} fields as in the header, found {}: check the separators and quotes",
                    self.columns.len(),
                    self.ends.len()
                ),
            ));
        }
        self.number += 1;
        record.line = line;
        record.number = self.number;
        let text = self.record_text(line)?;
        let fields = &mut record.fields;
        fields.truncate(self.ends.len());
        let mut start = 0;
        for (index, field) in self.ends.iter().enumerate() {
            let value = field_str(text, start, field.end, &self.source.name, line)?;
            start = field.end;
            let is_null = value.is_empty() && !field.quoted;
            match fields.get_mut(index) {
                // Reuse the previous record's string: no allocation in the steady state.
                Some((slot, RawValue::Text(existing))) if !is_null => {
                    *slot = index;
                    existing.clear();
                    existing.push_str(value);
                }
                Some(slot) => {
                    *slot = (index, raw(value, is_null));
                }
                None => fields.push((index, raw(value, is_null))),
            }
        }
        Ok(true)
    }
}

fn raw(value: &str, is_null: bool) -> RawValue {
    if is_null {
        RawValue::Null
    } else {
        RawValue::Text(value.to_owned())
    }
}
