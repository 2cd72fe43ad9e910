//! The byte source under every reader: one fixed buffer refilled from the underlying
//! reader, with the line bookkeeping that error messages and `Record::line` need.
//!
//! Architecture invariant: the buffer never grows. Parsers consume everything in it before
//! asking for more and copy what they keep (a field, a line, a JSON element) into their own
//! reused buffers, so memory is bounded by the largest record, never by the file.

use std::io::{self, Read};

use crate::ReadError;

/// The buffer size. Large reads keep system-call and decompressor overhead negligible next
/// to parsing.
pub(crate) const BUFFER_BYTES: usize = 512 * 1024;

/// The largest record (CSV record, NDJSON line, JSON array element) a reader accepts. Its
/// purpose is to turn a runaway record (an unbalanced quote early in a huge file) into a
/// clear error instead of exhausting memory.
pub(crate) const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) struct Source {
    reader: Box<dyn Read + Send>,
    /// The name used in error messages.
    pub(crate) name: String,
    /// Unconsumed bytes are `buf[pos..end]`.
    pub(crate) buf: Box<[u8]>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
    /// The absolute file offset of `buf[0]`.
    base: u64,
    /// The underlying reader has reported its end.
    eof: bool,
    /// The 1-based line of `buf[pos]`, kept up to date by the parsers through `newline`.
    pub(crate) line: u64,
    /// The absolute offset of the first byte of the current line, for columns.
    pub(crate) line_start: u64,
}

impl Source {
    pub(crate) fn new(reader: Box<dyn Read + Send>, name: &str) -> Source {
        Source {
            reader,
            name: name.to_owned(),
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            line: 1,
            line_start: 0,
        }
    }

    /// Reads more bytes after the unconsumed ones. `Ok(false)` at the end of the input.
    ///
    /// Callers consume the whole buffer before calling this, so there is always room.
    pub(crate) fn fill(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos == self.end {
            // Everything is consumed: start over at the front for the largest read.
            self.base += self.pos as u64;
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        debug_assert!(self.end < self.buf.len(), "fill called on a full buffer");
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.io_error(&error)),
            }
        }
    }

    fn io_error(&self, error: &io::Error) -> ReadError {
        let hint = match error.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => ": the file may be truncated or corrupt",
            _ => "",
        };
        ReadError::at_line(&self.name, self.line, format!("cannot read: {error}{hint}"))
    }

    /// Strips a UTF-8 byte order mark and fails on an input of nothing but whitespace.
    ///
    /// It looks no further than one buffer: past that much leading whitespace the parsers
    /// themselves report the problem.
    pub(crate) fn start(&mut self) -> Result<(), ReadError> {
        while self.end < UTF8_BOM.len() && self.fill()? {}
        if self.buf[..self.end].starts_with(UTF8_BOM) {
            self.pos = UTF8_BOM.len();
            self.line_start = UTF8_BOM.len() as u64;
        }
        // Counted from `pos`, which `fill` may move.
        let mut scanned = 0;
        loop {
            let unconsumed = &self.buf[self.pos..self.end];
            if unconsumed[scanned..].iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(());
            }
            scanned = unconsumed.len();
            if self.end == self.buf.len() {
                return Ok(());
            }
            if !self.fill()? {
                return Err(ReadError::empty(&self.name));
            }
        }
    }

    /// The absolute file offset of `buf[index]`.
    pub(crate) fn offset_of(&self, index: usize) -> u64 {
        self.base + index as u64
    }

    /// The 1-based column of `buf[index]`, which must be on the current line.
    pub(crate) fn column_of(&self, index: usize) -> u64 {
        self.offset_of(index) - self.line_start + 1
    }

    /// Notes a line break whose last byte is `buf[index]`.
    pub(crate) fn newline(&mut self, index: usize) {
        self.line += 1;
        self.line_start = self.offset_of(index) + 1;
    }

    /// Notes the line breaks in `bytes`, a copy of what was consumed starting at absolute
    /// offset `start`.
    pub(crate) fn newlines_in(&mut self, bytes: &[u8], start: u64) {
        let count = bytes.iter().filter(|&&b| b == b'\n').count();
        if count > 0 {
            self.line += count as u64;
            if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
                self.line_start = start + last as u64 + 1;
            }
        }
    }

    pub(crate) fn error_at(&self, index: usize, message: impl Into<String>) -> ReadError {
        ReadError::at(&self.name, self.line, self.column_of(index), message)
    }

    pub(crate) fn too_large(&self, line: u64, what: &str) -> ReadError {
        ReadError::at_line(
            &self.name,
            line,
            format!(
                "{what} starting here is larger than {} MiB: check for an unbalanced quote or bracket",
                MAX_RECORD_BYTES / (1024 * 1024)
            ),
        )
    }
}

/// Describes a byte found where something else was expected, for error messages.
pub(crate) fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        format!("'{}'", byte as char)
    } else {
        format!("byte 0x{byte:02x}")
    }
}
