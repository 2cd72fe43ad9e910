//! Snapshots and named data profiles: a database's tables (definitions and data)
//! written to a store (a folder or an S3 bucket) under a profile's name, listed,
//! pruned, pinned in the repository, and restored into any engine.
//!
//! A snapshot is a folder in the store, `<profile>/<id>/`, holding one data file per
//! table (`data/NNNN-<table>.tsv.zst`, see [`data`]), the user media taken with
//! `--files` (`files/…`), and `manifest.json` ([`lockgate_bundle::SnapshotManifest`]),
//! written last: a snapshot without a manifest (interrupted, or being written) is
//! never listed nor restored, and one that fails removes what it wrote. Ids start
//! with the time and end with random digits, so two snapshots taken at once never
//! share a folder.
//!
//! The parts: [`create`] (one consistent read of the source: a snapshot transaction,
//! then each table streamed into a compressed file, masked and subset on request),
//! [`restore`] (every file verified, then tables created and filled parents first
//! through the bulk writer, constraints and indexes after the data, the ledger's
//! module versions set), [`catalog`] (list, show, delete, prune), [`profile`]
//! (profiles in `lockgate.toml` and pin files in `db/profiles/`), and [`defs`]
//! (table definitions between engines).

pub mod catalog;
pub mod create;
pub mod data;
pub mod defs;
pub mod profile;
pub mod restore;

pub use catalog::{delete, list, prune, show, PruneOptions, PruneReport, SnapshotSummary};
pub use create::{snapshot, SnapshotOptions, SnapshotReport};
pub use profile::{create_profile, list_profiles, Pin, ProfileInfo, ProfileSpec, SnapshotsSettings};
pub use restore::{restore, RestoreOptions, RestoreReport};

use lockgate_db::DbError;
pub use lockgate_store::{Store, StoreConfig, StoreError};

/// Why a snapshot command failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Bad input found before anything was written (exit 2): every problem listed.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The store (exit 2 for a bad URL, 1 when unreachable or refusing).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database (exit 1, or 2 for names it does not know).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A local file or folder (exit 1).
    #[error("{0}")]
    Io(String),
    /// Rows the target refused: everything was rolled back (exit 3).
    #[error("{0}")]
    Rows(String),
}

impl SnapshotError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            SnapshotError::Invalid(_) => 2,
            SnapshotError::Store(e) => e.exit_code(),
            SnapshotError::Db(e) => e.exit_code(),
            SnapshotError::Io(_) => 1,
            SnapshotError::Rows(_) => 3,
        }
    }

    pub(crate) fn one(message: impl Into<String>) -> SnapshotError {
        SnapshotError::Invalid(vec![message.into()])
    }
}

/// Progress of a snapshot or a restore, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotProgress {
    /// `"reading"`, `"verifying"`, `"writing"`, `"indexing"` or `"files"`.
    pub phase: &'static str,
    /// The table (or file) at hand.
    pub item: String,
    /// Rows done in all tables so far.
    pub rows: u64,
    /// Rows in all, when known.
    pub total: Option<u64>,
}

/// The key of a snapshot's manifest in its store.
pub fn manifest_key(profile: &str, id: &str) -> String {
    format!("{profile}/{id}/manifest.json")
}

/// A new snapshot id: the UTC time to the millisecond (so ids sort by age, even for
/// snapshots taken within one second), then six random hex digits (so two taken at
/// once never share a folder).
pub(crate) fn new_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u32(..0x100_0000)
    )
}

/// Checks a profile name: it becomes a folder in the store and a file name.
pub fn check_profile_name(name: &str) -> Result<(), SnapshotError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::one(format!(
            "{name:?} is not a profile name: use letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

/// The file-name-safe form of a table's name for its data file.
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
