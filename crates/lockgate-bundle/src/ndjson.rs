//! The NDJSON (JSON Lines) reader: one JSON object per line, blank lines skipped.

use crate::json::{not_an_object, ObjectDecoder};
use crate::record::{Record, RecordReader};
use crate::source::{Source, MAX_RECORD_BYTES};
use crate::ReadError;

pub(crate) struct NdjsonReader {
    source: Source,
    decoder: ObjectDecoder,
    /// The line being read, without its line break, reused.
    line: Vec<u8>,
    number: u64,
}

impl NdjsonReader {
    /// `source` has been started.
    pub(crate) fn new(source: Source) -> NdjsonReader {
        NdjsonReader {
            source,
            decoder: ObjectDecoder::new(),
            line: Vec::with_capacity(4096),
            number: 0,
        }
    }

    /// Reads the next line into `self.line`. Returns its line number, or `None` at the end
    /// of the input.
    fn read_line(&mut self) -> Result<Option<u64>, ReadError> {
        let src = &mut self.source;
        let number = src.line;
        self.line.clear();
        loop {
            if src.pos == src.end && !src.fill()? {
                // A last line without a line break still counts; an empty one is no line.
                return Ok((!self.line.is_empty()).then_some(number));
            }
            let run = &src.buf[src.pos..src.end];
            match run.iter().position(|&b| b == b'\n') {
                Some(length) => {
                    self.line.extend_from_slice(&run[..length]);
                    src.newline(src.pos + length);
                    src.pos += length + 1;
                    if self.line.last() == Some(&b'\r') {
                        self.line.pop();
                    }
                    return Ok(Some(number));
                }
                None => {
                    self.line.extend_from_slice(run);
                    src.pos = src.end;
                    if self.line.len() > MAX_RECORD_BYTES {
                        return Err(src.too_large(number, "the line"));
                    }
                }
            }
        }
    }
}

impl RecordReader for NdjsonReader {
    fn text_is_json_string(&self) -> bool {
        true
    }

    fn columns(&self) -> &[String] {
        self.decoder.columns()
    }

    fn next_record(&mut self, record: &mut Record) -> Result<bool, ReadError> {
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(false);
            };
            let Some(first) = self.line.iter().position(|b| !b.is_ascii_whitespace()) else {
                continue;
            };
            let name = &self.source.name;
            if self.line[first] != b'{' {
                // Columns count from the line's first byte, after any byte order mark, as
                // everywhere else.
                let message = not_an_object(&self.line[first..]);
                return Err(ReadError::at(name, line, first as u64 + 1, message));
            }
            self.number += 1;
            record.line = line;
            record.number = self.number;
            // The whole line goes to serde_json, so its columns are the file's.
            self.decoder
                .decode(&self.line, &mut record.fields)
                .map_err(|error| ReadError::at(name, line, error.column, error.message))?;
            return Ok(true);
        }
    }
}
