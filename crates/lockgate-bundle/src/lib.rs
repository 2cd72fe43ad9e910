//! Lockgate's data files: readers of CSV, NDJSON and JSON-array files, plain or compressed.
//!
//! The main type is [`RecordReader`], a pull reader of [`Record`]s. Open one with
//! [`open_records`] (a path: compression and format from the extension) or
//! [`records_from_reader`] (any byte stream). A record's fields are [`RawValue`]s keyed by
//! an index into the reader's column list; typing them against a table is the caller's job.
//!
//! ```no_run
//! use lockgate_bundle::{open_records, Record};
//!
//! let mut reader = open_records("customers.csv.gz".as_ref(), None)?;
//! let mut record = Record::default();
//! while reader.next_record(&mut record)? {
//!     for (column, value) in &record.fields {
//!         println!("{} = {value:?}", reader.columns()[*column]);
//!     }
//! }
//! # Ok::<(), lockgate_bundle::ReadError>(())
//! ```
//!
//! Architecture invariants:
//! - Memory is bounded by the largest record, never by the file: every reader streams
//!   through one fixed buffer (even a JSON array on a single line).
//! - "Not given" is not null: a JSON record lacks the keys its object lacks, while an
//!   explicit `null` (or an unquoted empty CSV field) is [`RawValue::Null`].
//! - No database here, and no typing of values: readers report what the file says.

#![deny(missing_docs)]

mod csv;
mod error;
mod format;
mod json;
mod ndjson;
mod open;
mod record;
mod source;

pub use error::ReadError;
pub use format::{detect, Compression, Format, UnknownFormat};
pub use open::{open_records, records_from_reader};
pub use record::{RawValue, Record, RecordReader};
