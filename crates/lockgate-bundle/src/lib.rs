//! Lockgate's bundles: the files a migration, a dump or an upload is made of, read and
//! written without any database.
//!
//! A *bundle* is a version folder (or a zip of version folders) in the oe-migration format:
//! a `meta.json` manifest, data files (JSON array, NDJSON, CSV; optionally `.gz`/`.zst`),
//! `ddl/` model definitions and scripts. This crate has:
//!
//! - Data files: [`RecordReader`], a pull reader of [`Record`]s. Open one with
//!   [`open_records`] (a path: compression and format from the extension) or
//!   [`records_from_reader`] (any byte stream). A record's fields are [`RawValue`]s keyed by
//!   an index into the reader's column list; typing them against a table is the caller's
//!   job. Errors are [`ReadError`]s, placed at a line and column.
//! - The `db/` folder: [`BaseDir::scan`] lists its [`VersionDir`]s in [`Version`] order;
//!   each gives its [`Manifest`] (`meta.json`, see [`parse_manifest`]), its `ddl/` files,
//!   the files the manifest names ([`VersionDir::resolve`], which keeps them inside the
//!   folder) and a checksum of its content.
//! - Model definitions (loopback-style JSON): [`parse_model`] gives a [`ModelDef`].
//! - Zips: [`extract_zip`] (safe against hostile archives, within [`ZipLimits`]),
//!   [`find_base`], [`write_zip`].
//!
//! Everything but the data readers reports a [`BundleError`], naming the file (with line
//! and column when known), the entry (`files[2]`) or property, and what to do.
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
//! ```no_run
//! use lockgate_bundle::{BaseDir, EntryKind};
//!
//! let base = BaseDir::scan("db".as_ref())?;
//! for version in &base.versions {
//!     let manifest = version.manifest()?;
//!     for entry in manifest.files.iter().filter(|entry| entry.enabled) {
//!         let path = version.resolve(&entry.file, &format!("files[{}]", entry.index))?;
//!         if let EntryKind::Data(format) = entry.kind() {
//!             println!("{}: load {} as {format:?}", version.version, path.display());
//!         }
//!     }
//! }
//! # Ok::<(), lockgate_bundle::BundleError>(())
//! ```
//!
//! Architecture invariants:
//! - Memory is bounded by the largest record, never by the file: every reader streams
//!   through one fixed buffer (even a JSON array on a single line). Zips are extracted and
//!   written by streaming too.
//! - "Not given" is not null: a JSON record lacks the keys its object lacks, while an
//!   explicit `null` (or an unquoted empty CSV field) is [`RawValue::Null`].
//! - Nothing outside a bundle is ever read or written through it: paths in `meta.json` stay
//!   inside their version folder, and zip entries inside the folder they are extracted to.
//! - No database here, and no typing of values: readers report what the file says.

#![deny(missing_docs)]

mod base;
mod csv;
mod error;
mod format;
mod json;
mod jsondoc;
mod manifest;
mod model;
mod ndjson;
mod open;
mod record;
mod snapshot;
mod source;
mod version;
mod walk;
mod zip;

pub use base::{BaseDir, VersionDir};
pub use error::{BundleError, ReadError};
pub use format::{detect, Compression, Format, UnknownFormat};
pub use manifest::{
    parse_manifest, Baseline, ClearTables, EntryKind, FileEntry, FileMode, Manifest, OnErrorSpec, ScriptKind,
    ScriptLists,
};
pub use model::{parse_model, IndexDef, ModelDef, PropType, PropertyDef, NOW};
pub use open::{open_records, records_from_reader};
pub use record::{RawValue, Record, RecordReader};
pub use snapshot::{
    ColumnDef, ColumnType, ForeignKeyDef, KeyDef, LedgerVersion, MediaFile, Observed, SnapshotManifest, SourceInfo,
    TableDef, TableEntry, DATA_ENCODING, SNAPSHOT_FORMAT,
};
pub use version::{InvalidVersion, Version};
pub use zip::{extract_zip, extract_zip_reader, find_base, write_zip, ZipLimits};
