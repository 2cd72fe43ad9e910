//! The JSON readers' shared object decoding, and the reader of a `.json` file: a
//! top-level array of objects, or one object (one record, as oe-migration reads it).
//!
//! The array is streamed: a small byte-level scanner finds where each element ends
//! (tracking strings, escapes and nesting) and copies just that element into a reused
//! buffer, which `serde_json` then parses. The whole array is never in memory.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use crate::record::{RawValue, Record, RecordReader};
use crate::source::{describe_byte, Source, MAX_RECORD_BYTES};
use crate::ReadError;

/// Turns JSON objects into record fields, interning keys into column indexes.
pub(crate) struct ObjectDecoder {
    columns: Vec<String>,
    index: HashMap<String, usize>,
    /// For each column, the `stamp` of the last object that gave it: a duplicate key is
    /// caught without a set per object.
    given_by: Vec<u64>,
    /// Counts decoded objects.
    stamp: u64,
}

/// Where an error is inside the bytes handed to `serde_json`: its 1-based line and column
/// within them, and the message without `serde_json`'s " at line … column …" suffix.
pub(crate) struct JsonErrorPlace {
    pub(crate) line: u64,
    pub(crate) column: u64,
    pub(crate) message: String,
}

impl ObjectDecoder {
    pub(crate) fn new() -> ObjectDecoder {
        ObjectDecoder {
            columns: Vec::new(),
            index: HashMap::new(),
            given_by: Vec::new(),
            stamp: 0,
        }
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Decodes `bytes`, which hold one JSON object and nothing else but whitespace, into
    /// `fields` (cleared first), sorted by column index.
    pub(crate) fn decode(&mut self, bytes: &[u8], fields: &mut Vec<(usize, RawValue)>) -> Result<(), JsonErrorPlace> {
        self.stamp += 1;
        fields.clear();
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let seed = ObjectSeed { decoder: self, fields };
        seed.deserialize(&mut deserializer).map_err(place)?;
        deserializer.end().map_err(place)?;
        // Keys usually come in the same order in every object, and the sort is linear on
        // sorted input.
        fields.sort_unstable_by_key(|field| field.0);
        Ok(())
    }

    fn intern<E: de::Error>(&mut self, key: &str) -> Result<usize, E> {
        let index = match self.index.get(key) {
            Some(&index) => index,
            None => {
                let index = self.columns.len();
                self.columns.push(key.to_owned());
                self.index.insert(key.to_owned(), index);
                self.given_by.push(0);
                index
            }
        };
        if self.given_by[index] == self.stamp {
            return Err(E::custom(format_args!(
                "the key {key:?} appears twice in one object: keep one"
            )));
        }
        self.given_by[index] = self.stamp;
        Ok(index)
    }
}

fn place(error: serde_json::Error) -> JsonErrorPlace {
    let line = error.line() as u64;
    let column = error.column() as u64;
    let mut message = error.to_string();
    let suffix = format!(" at line {line} column {column}");
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message.truncate(stripped.len());
    }
    JsonErrorPlace {
        line: line.max(1),
        column: column.max(1),
        message: format!("invalid JSON: {message}"),
    }
}

/// Names the kind of JSON value that starts `text`, for "expected an object" errors.
/// `None` when no JSON value starts that way. `text` needs no more than five bytes.
fn value_kind(text: &[u8]) -> Option<&'static str> {
    match text.first()? {
        b'{' => Some("an object"),
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ if text.starts_with(b"true") || text.starts_with(b"false") => Some("a boolean"),
        _ if text.starts_with(b"null") => Some("null"),
        _ => None,
    }
}

/// Describes the value that starts `text`, for "found …".
pub(crate) fn describe_value(text: &[u8]) -> String {
    match value_kind(text) {
        Some(kind) => kind.to_owned(),
        None => text
            .first()
            .map_or_else(|| "nothing".to_owned(), |&byte| describe_byte(byte)),
    }
}

/// The message for a value that is not an object, starting `text`.
pub(crate) fn not_an_object(text: &[u8]) -> String {
    format!("expected a JSON object, found {}", describe_value(text))
}

struct ObjectSeed<'a> {
    decoder: &'a mut ObjectDecoder,
    fields: &'a mut Vec<(usize, RawValue)>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(index) = map.next_key_seed(KeySeed {
            decoder: &mut *self.decoder,
        })? {
            let value = match map.next_value::<serde_json::Value>()? {
                serde_json::Value::Null => RawValue::Null,
                serde_json::Value::String(text) => RawValue::Text(text),
                other => RawValue::Json(other),
            };
            self.fields.push((index, value));
        }
        Ok(())
    }
}

/// Deserializes an object key straight to its column index, without allocating for keys
/// already known.
struct KeySeed<'a> {
    decoder: &'a mut ObjectDecoder,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        self.decoder.intern(key)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Just after `[`: an element or `]` comes next.
    First,
    /// After an element: `,` or `]` comes next.
    AfterElement,
    /// A file holding one object: the object comes next.
    Single,
    /// After the one object: only whitespace may follow.
    AfterSingle,
    /// After the closing `]` and the check that only whitespace follows it.
    Done,
}

pub(crate) struct JsonArrayReader {
    source: Source,
    decoder: ObjectDecoder,
    /// The bytes of the element being read, reused.
    element: Vec<u8>,
    state: ArrayState,
    /// Where the array opened, for "not closed" errors.
    open_line: u64,
    number: u64,
}

impl JsonArrayReader {
    /// Reads up to and including the opening `[`, or up to the `{` of a file that holds
    /// one object. `source` has been started.
    pub(crate) fn new(mut source: Source) -> Result<JsonArrayReader, ReadError> {
        let Some(byte) = skip_whitespace(&mut source)? else {
            return Err(ReadError::empty(&source.name));
        };
        let state = match byte {
            b'[' => {
                source.pos += 1;
                ArrayState::First
            }
            // oe-migration `require`s a data file and wraps a lone object in an array.
            b'{' => ArrayState::Single,
            _ => {
                peek_word(&mut source)?;
                let found = describe_value(&source.buf[source.pos..source.end]);
                return Err(source.error_at(
                    source.pos,
                    format!("expected a JSON array of objects (or one object), found {found}"),
                ));
            }
        };
        let open_line = source.line;
        Ok(JsonArrayReader {
            source,
            decoder: ObjectDecoder::new(),
            element: Vec::with_capacity(4096),
            state,
            open_line,
            number: 0,
        })
    }

    fn not_closed(&self) -> ReadError {
        ReadError::at_line(
            &self.source.name,
            self.source.line,
            format!(
                "the file ends inside the array opened on line {}: add the closing ']'",
                self.open_line
            ),
        )
    }

    /// After the closing `]`: only whitespace may follow.
    fn finish(&mut self) -> Result<bool, ReadError> {
        if let Some(byte) = skip_whitespace(&mut self.source)? {
            return Err(self.source.error_at(
                self.source.pos,
                format!("{} after the end of the array: remove it", describe_byte(byte)),
            ));
        }
        self.state = ArrayState::Done;
        Ok(false)
    }

    /// Reads the element starting at the current byte, which is not whitespace, into
    /// `record`.
    fn read_element(&mut self, record: &mut Record) -> Result<(), ReadError> {
        let src = &mut self.source;
        let line = src.line;
        let column = src.column_of(src.pos);
        if src.buf[src.pos] != b'{' {
            peek_word(src)?;
            return Err(src.error_at(src.pos, not_an_object(&src.buf[src.pos..src.end])));
        }
        let start = src.offset_of(src.pos);
        let element = &mut self.element;
        element.clear();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            if src.pos == src.end && !src.fill()? {
                // Let serde_json describe what is missing; it always finds something, as the
                // object is not closed.
                return Err(match self.decoder.decode(element, &mut record.fields) {
                    Err(error) => element_error(&src.name, line, column, error),
                    Ok(()) => ReadError::at_line(&src.name, line, "invalid JSON: the file ends inside this element"),
                });
            }
            let run = &src.buf[src.pos..src.end];
            let mut index = 0;
            let mut closed = false;
            while index < run.len() {
                if in_string {
                    if escaped {
                        escaped = false;
                        index += 1;
                        continue;
                    }
                    // Skip plain string content in one go: it is most of a typical element.
                    match run[index..].iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(skip) => {
                            index += skip;
                            if run[index] == b'\\' {
                                escaped = true;
                            } else {
                                in_string = false;
                            }
                            index += 1;
                        }
                        None => index = run.len(),
                    }
                    continue;
                }
                match run[index] {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            index += 1;
                            closed = true;
                            break;
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
            element.extend_from_slice(&run[..index]);
            src.pos += index;
            if closed {
                break;
            }
            if element.len() > MAX_RECORD_BYTES {
                return Err(src.too_large(line, "the array element"));
            }
        }
        src.newlines_in(element, start);
        self.number += 1;
        record.line = line;
        record.number = self.number;
        self.decoder
            .decode(element, &mut record.fields)
            .map_err(|error| element_error(&src.name, line, column, error))
    }
}

/// Moves an error inside an element starting at `line` and `column` to file coordinates:
/// serde_json counts from the element's first byte.
fn element_error(name: &str, line: u64, column: u64, error: JsonErrorPlace) -> ReadError {
    let (file_line, file_column) = if error.line == 1 {
        (line, column + error.column - 1)
    } else {
        (line + error.line - 1, error.column)
    };
    ReadError::at(name, file_line, file_column, error.message)
}

/// Makes at least the few bytes `value_kind` looks at available, unless the input ends
/// first, so that what an error message says does not depend on how reads were split.
fn peek_word(src: &mut Source) -> Result<(), ReadError> {
    while src.end - src.pos < 5 && src.fill()? {}
    Ok(())
}

/// Skips JSON whitespace, keeping the line count. Returns the next byte without consuming
/// it, or `None` at the end of the input.
pub(crate) fn skip_whitespace(src: &mut Source) -> Result<Option<u8>, ReadError> {
    loop {
        if src.pos == src.end && !src.fill()? {
            return Ok(None);
        }
        match src.buf[src.pos] {
            b'\n' => {
                src.newline(src.pos);
                src.pos += 1;
            }
            b' ' | b'\t' | b'\r' => src.pos += 1,
            byte => return Ok(Some(byte)),
        }
    }
}

impl RecordReader for JsonArrayReader {
    fn text_is_json_string(&self) -> bool {
        true
    }

    fn columns(&self) -> &[String] {
        self.decoder.columns()
    }

    fn next_record(&mut self, record: &mut Record) -> Result<bool, ReadError> {
        match self.state {
            ArrayState::Done => Ok(false),
            ArrayState::Single => {
                self.read_element(record)?;
                self.state = ArrayState::AfterSingle;
                Ok(true)
            }
            ArrayState::AfterSingle => {
                if let Some(byte) = skip_whitespace(&mut self.source)? {
                    return Err(self.source.error_at(
                        self.source.pos,
                        format!(
                            "{} after the file's one object: a .json file holds one array of objects or one object; for one object per line, name the file .ndjson",
                            describe_byte(byte)
                        ),
                    ));
                }
                self.state = ArrayState::Done;
                Ok(false)
            }
            ArrayState::First => match skip_whitespace(&mut self.source)? {
                None => Err(self.not_closed()),
                Some(b']') => {
                    self.source.pos += 1;
                    self.finish()
                }
                Some(_) => {
                    self.read_element(record)?;
                    self.state = ArrayState::AfterElement;
                    Ok(true)
                }
            },
            ArrayState::AfterElement => match skip_whitespace(&mut self.source)? {
                None => Err(self.not_closed()),
                Some(b']') => {
                    self.source.pos += 1;
                    self.finish()
                }
                Some(b',') => {
                    let comma_line = self.source.line;
                    let comma_column = self.source.column_of(self.source.pos);
                    self.source.pos += 1;
                    match skip_whitespace(&mut self.source)? {
                        None => Err(self.not_closed()),
                        Some(b']') => Err(ReadError::at(
                            &self.source.name,
                            comma_line,
                            comma_column,
                            "trailing comma after the last element: remove it",
                        )),
                        Some(_) => {
                            self.read_element(record)?;
                            Ok(true)
                        }
                    }
                }
                Some(byte) => Err(self.source.error_at(
                    self.source.pos,
                    format!(
                        "expected ',' or ']' after an array element, found {}",
                        describe_byte(byte)
                    ),
                )),
            },
        }
    }
}
