//! The one error type of this crate: a read error with the place in the file where it
//! happened, so a user can open the file at that line and column and see the problem.

use std::fmt;

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
