//! The crate's two error types. [`ReadError`] is a data file's read error with the place in
//! the file where it happened, so a user can open the file at that line and column and see
//! the problem. [`BundleError`] is everything else about a bundle: its folders, `meta.json`,
//! model definitions and zips.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A read error with its place in the file.
///
/// Displayed as `{file}:{line}:{column}: {message}`. The column is left out when it is not
/// known, and the line too when it does not apply (a missing file: `{file}: {message}`).
/// Columns count bytes from 1, like most editors' "go to" for ASCII text and like
/// `serde_json`'s own positions. Messages are lower-case, have no trailing period, and say
/// what to do where that is clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ReadError {
    /// The file (or stream) name as given by the caller.
    pub file: String,
    /// The 1-based line of the problem, when it has one.
    pub line: Option<u64>,
    /// The 1-based byte column of the problem within its line, when it is known.
    pub column: Option<u64>,
    /// What went wrong, and what to do about it where that is clear.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            // A column without its line would be meaningless, so it is only shown after one.
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl ReadError {
    /// An error about the file as a whole (it cannot be opened, it is empty, ...).
    pub(crate) fn whole_file(file: &str, message: impl Into<String>) -> ReadError {
        ReadError {
            file: file.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error about a line, at no particular column.
    pub(crate) fn at_line(file: &str, line: u64, message: impl Into<String>) -> ReadError {
        ReadError {
            file: file.to_owned(),
            line: Some(line),
            column: None,
            message: message.into(),
        }
    }

    /// An error at a line and column.
    pub(crate) fn at(file: &str, line: u64, column: u64, message: impl Into<String>) -> ReadError {
        ReadError {
            file: file.to_owned(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// The error for a file that holds nothing but whitespace.
    pub(crate) fn empty(file: &str) -> ReadError {
        ReadError::whole_file(file, "is empty: nothing to load")
    }
}

/// An error about a bundle: a `db/` folder, a version folder, `meta.json`, a model
/// definition or a zip.
///
/// Messages are lower-case, have no trailing period, name the path (and the `files[N]`
/// entry, property or zip entry they concern) and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Bad input: something in the bundle is wrong, and the user has to change it.
    ///
    /// Displayed as `{path}:{line}:{column}: {message}`, or `{path}: {message}` when the
    /// place in the file is not known (or does not apply, as for a folder). Lines and columns
    /// are 1-based, as `serde_json` reports them.
    #[error("{}: {message}", at(path, *line, *column))]
    Invalid {
        /// The file or folder at fault (for a zip, the name the caller gave it).
        path: PathBuf,
        /// The 1-based line in `path`, when known.
        line: Option<u64>,
        /// The 1-based column in `path`, when known (only ever given with a line).
        column: Option<u64>,
        /// What is wrong, and what to do about it.
        message: String,
    },
    /// Reading or writing `path` failed.
    ///
    /// Displayed as `{path}: {the system's message}: {what to do}`.
    #[error("{}: {source}: {}", path.display(), io_hint(source))]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// What to do about an I/O error, by its kind.
fn io_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => "check the path",
        io::ErrorKind::PermissionDenied => "give this user access to it",
        io::ErrorKind::AlreadyExists => "remove it or choose another place",
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "free some space",
        _ => "check that it exists and that this user may read and write it",
    }
}

/// Renders `path`, then `:line:column` when they are known.
fn at(path: &Path, line: Option<u64>, column: Option<u64>) -> String {
    let mut text = path.display().to_string();
    if let Some(line) = line {
        text.push_str(&format!(":{line}"));
        if let Some(column) = column {
            text.push_str(&format!(":{column}"));
        }
    }
    text
}

impl BundleError {
    /// Bad input at no particular place in `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> BundleError {
        BundleError::Invalid {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// Bad input at `line` and `column` (both 1-based) of `path`.
    pub fn invalid_at(path: impl Into<PathBuf>, line: u64, column: u64, message: impl Into<String>) -> BundleError {
        BundleError::Invalid {
            path: path.into(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// Reading or writing `path` failed.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> BundleError {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this is bad input (the user has to change the bundle) rather than a failure
    /// to read or write (CLI exit code 2 rather than 1).
    pub fn is_invalid(&self) -> bool {
        matches!(self, BundleError::Invalid { .. })
    }

    /// Turns a `serde_json` error about the file `path` into bad input at its line and
    /// column, with serde_json's own " at line L column C" taken out of the message.
    pub(crate) fn from_json(path: &Path, error: &serde_json::Error) -> BundleError {
        let text = error.to_string();
        if error.line() == 0 {
            return BundleError::invalid(path, text);
        }
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let mut message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        if matches!(
            error.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            // The oe-migration documentation shows meta.json with `//` comments, so people copy them.
            message.push_str(": fix the JSON (comments and trailing commas are not allowed)");
        }
        BundleError::invalid_at(path, error.line() as u64, error.column() as u64, message)
    }
}
