//! Data file formats and compressions, and how both are told from a file name.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Data file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row (RFC 4180, PostgreSQL `COPY … CSV` rules).
    Csv,
    /// Newline-delimited JSON: one object per line (also called JSON Lines, `.jsonl`).
    #[serde(alias = "jsonl")]
    Ndjson,
    /// One JSON array of objects, read element by element, or one object (one record).
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
        })
    }
}

/// The error of parsing a [`Format`] from a name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data format {0:?}: use csv, ndjson, jsonl or json")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses `csv`, `ndjson`, `jsonl` (the same as `ndjson`) or `json`, in any letter case.
    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "json" => Ok(Format::Json),
            _ => Err(UnknownFormat(name.to_owned())),
        }
    }
}

/// How a data file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`); concatenated gzip members are read as one stream.
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

/// Tells the format and compression of a data file from its name.
///
/// The name ends in `.csv`, `.ndjson`, `.jsonl` or `.json`, each optionally followed by
/// `.gz` or `.zst`, in any letter case. The compression is always returned; the format is
/// `None` when the extension names no format (`d.txt`, `e.gz`).
pub fn detect(path: &Path) -> (Option<Format>, Compression) {
    let name = match path.file_name() {
        Some(name) => name.to_string_lossy().to_ascii_lowercase(),
        None => return (None, Compression::None),
    };
    let (stem, compression) = if let Some(stem) = name.strip_suffix(".gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = name.strip_suffix(".zst") {
        (stem, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let format = match stem.rsplit_once('.') {
        Some((_, "csv")) => Some(Format::Csv),
        Some((_, "ndjson" | "jsonl")) => Some(Format::Ndjson),
        Some((_, "json")) => Some(Format::Json),
        _ => None,
    };
    (format, compression)
}
