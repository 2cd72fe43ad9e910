//! Opening data files: the file itself, its decompression, and the choice of reader.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::csv::CsvReader;
use crate::format::{detect, Compression, Format};
use crate::json::JsonArrayReader;
use crate::ndjson::NdjsonReader;
use crate::record::RecordReader;
use crate::source::Source;
use crate::ReadError;

/// Opens a data file for reading.
///
/// It decompresses by extension (`.gz`, with concatenated members, or `.zst`) and reads the
/// given `format`, or else the one the extension names (see [`detect`]).
///
/// Errors: the file is missing or unreadable (the message names the path and says what to
/// do), it is empty (0 bytes, or only whitespace after decompression), or neither `format`
/// nor the extension names a format. A CSV file's header and a JSON file's opening `[` are
/// read and checked here, so their errors come from this call too.
pub fn open_records(path: &Path, format: Option<Format>) -> Result<Box<dyn RecordReader>, ReadError> {
    let name = path.display().to_string();
    let (detected, compression) = detect(path);
    let Some(format) = format.or(detected) else {
        return Err(ReadError::whole_file(
            &name,
            "cannot tell the data format from the file name: name it .csv, .ndjson, .jsonl or .json (optionally followed by .gz or .zst), or give the format",
        ));
    };
    let file = File::open(path).map_err(|error| open_error(&name, &error))?;
    let metadata = file.metadata().map_err(|error| open_error(&name, &error))?;
    if metadata.is_dir() {
        return Err(ReadError::whole_file(
            &name,
            "is a directory, not a data file: give a file",
        ));
    }
    if metadata.len() == 0 {
        return Err(ReadError::empty(&name));
    }
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|error| ReadError::whole_file(&name, format!("cannot start zstd decompression: {error}")))?,
        ),
    };
    records_from_reader(reader, &name, format)
}

fn open_error(name: &str, error: &io::Error) -> ReadError {
    let message = match error.kind() {
        io::ErrorKind::NotFound => {
            "no such file: check the path (relative paths start at the current directory)".to_owned()
        }
        io::ErrorKind::PermissionDenied => "permission denied: make the file readable for this user".to_owned(),
        _ => format!("cannot open: {error}"),
    };
    ReadError::whole_file(name, message)
}

/// Reads records of `format` from any reader (already decompressed); `name` is used in
/// error messages.
///
/// Errors as for [`open_records`]: an input of nothing but whitespace is empty, and a CSV
/// header or a JSON array's opening is checked before this returns.
pub fn records_from_reader(
    reader: Box<dyn Read + Send>,
    name: &str,
    format: Format,
) -> Result<Box<dyn RecordReader>, ReadError> {
    let mut source = Source::new(reader, name);
    source.start()?;
    Ok(match format {
        Format::Csv => Box::new(CsvReader::new(source)?),
        Format::Ndjson => Box::new(NdjsonReader::new(source)),
        Format::Json => Box::new(JsonArrayReader::new(source)?),
    })
}
