//! Listing every regular file under a folder, sorted by relative path: what a version's
//! checksum covers and what `write_zip` writes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::BundleError;

/// A regular file found under a folder.
pub(crate) struct WalkedFile {
    /// The path relative to the folder, components joined with `/`.
    pub(crate) relative: String,
    /// The path to open.
    pub(crate) path: PathBuf,
    /// The file's length when it was listed.
    pub(crate) len: u64,
}

/// Every regular file under `root`, sorted by relative path (byte order).
///
/// Symbolic links are followed (a link to a folder is walked, a link to a file is listed),
/// but a link back to a folder being walked is an error rather than an endless walk.
/// Entries whose names start with `.` are skipped when `skip_hidden` is set. `skip` is a
/// file left out (the zip being written into the folder it zips).
pub(crate) fn files_under(root: &Path, skip_hidden: bool, skip: Option<&Path>) -> Result<Vec<WalkedFile>, BundleError> {
    let mut files = Vec::new();
    let mut ancestors = BTreeSet::new();
    walk(root, "", skip_hidden, skip, &mut ancestors, &mut files)?;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

fn walk(
    folder: &Path,
    prefix: &str,
    skip_hidden: bool,
    skip: Option<&Path>,
    ancestors: &mut BTreeSet<PathBuf>,
    files: &mut Vec<WalkedFile>,
) -> Result<(), BundleError> {
    let canonical = fs::canonicalize(folder).map_err(|error| BundleError::io(folder, error))?;
    if !ancestors.insert(canonical.clone()) {
        return Err(BundleError::invalid(
            folder,
            "is a symbolic link to a folder that contains it: remove the link",
        ));
    }
    let entries = fs::read_dir(folder).map_err(|error| BundleError::io(folder, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| BundleError::io(folder, error))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(BundleError::invalid(
                &path,
                "the name is not UTF-8: rename it (bundles name files in UTF-8)",
            ));
        };
        if skip_hidden && name.starts_with('.') {
            continue;
        }
        let metadata = fs::metadata(&path).map_err(|error| BundleError::io(&path, error))?;
        let relative = format!("{prefix}{name}");
        if metadata.is_dir() {
            walk(&path, &format!("{relative}/"), skip_hidden, skip, ancestors, files)?;
        } else if metadata.is_file() {
            if skip.is_some_and(|skip| fs::canonicalize(&path).is_ok_and(|canonical| canonical == skip)) {
                continue;
            }
            files.push(WalkedFile {
                relative,
                path,
                len: metadata.len(),
            });
        }
        // Sockets, pipes and devices are not data: they are left out.
    }
    ancestors.remove(&canonical);
    Ok(())
}
