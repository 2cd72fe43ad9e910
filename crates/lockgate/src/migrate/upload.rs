//! A bundle uploaded as a zip, unpacked once into a temporary folder before anything
//! runs, with the process scripts it holds listed (and its first `.sql` statement that
//! reaches outside the database): a server refuses one that holds any unless it was
//! told to allow them, then migrates the unpacked folder.

use super::MigrateError;
use lockgate_bundle::{BaseDir, ZipLimits};
use std::path::{Path, PathBuf};

/// An unpacked zip; the folder is removed when this is dropped.
pub struct Unpacked {
    root: PathBuf,
    scripts: Vec<String>,
    outside: Option<String>,
    _dir: tempfile::TempDir,
}

impl Unpacked {
    /// The folder that holds the version folders: give it as [`MigrateOptions::dir`](super::MigrateOptions::dir).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The process scripts the zip holds (see [`process_scripts`](super::process_scripts)),
    /// as paths within the zip.
    pub fn process_scripts(&self) -> &[String] {
        &self.scripts
    }

    /// Why the zip's `.sql` scripts may not run where process scripts may not: the
    /// first statement that reaches outside the database (runs a program on the
    /// database server, reads or writes its files), naming the file (within the zip),
    /// its line and the construct; `None` when there is none.
    pub fn sql_outside_the_database(&self) -> Option<&str> {
        self.outside.as_deref()
    }
}

/// Unpacks `zip` within `limits` (no entry may leave the folder; no links; sizes
/// bounded), finds its version folders and lists its process scripts. Errors are bad
/// input (exit 2) naming the zip's problem.
pub fn unpack_zip(zip: &Path, limits: &ZipLimits) -> Result<Unpacked, MigrateError> {
    let dir = tempfile::Builder::new()
        .prefix("lockgate-bundle-")
        .tempdir()
        .map_err(|e| MigrateError::Input(format!("cannot create a temporary folder for {}: {e}", zip.display())))?;
    lockgate_bundle::extract_zip(zip, dir.path(), limits)?;
    let root = lockgate_bundle::find_base(dir.path())?;
    let base = BaseDir::scan(&root)?;
    // Named from the zip's top, as its author sees them (a zip of a `db/` folder may
    // also carry files beside it: they count as well).
    let scripts = super::script::scripts_in(&base, dir.path())?;
    let outside = super::script::sql_outside_in(dir.path(), dir.path())?.map(|e| e.to_string());
    Ok(Unpacked {
        root,
        scripts,
        outside,
        _dir: dir,
    })
}
