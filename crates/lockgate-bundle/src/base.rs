//! The `db/` folder (the base): its version folders in order, its shared `models/` folder,
//! and for each version its manifest, its table definitions, the files its manifest names
//! (checked to stay inside the version folder) and a checksum of its content.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::jsondoc::quote;
use crate::manifest::{parse_manifest, Manifest};
use crate::version::Version;
use crate::walk::files_under;
use crate::BundleError;

/// A `db/` folder: the folder that holds the version folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDir {
    /// The folder, as given to [`BaseDir::scan`].
    pub root: PathBuf,
    /// The version folders, in ascending version order (`1.2.0` before `1.10.0`), each
    /// version at most once, each with a `meta.json`.
    pub versions: Vec<VersionDir>,
    /// The `models/` folder of model definitions shared by every version, if there is one.
    pub models: Option<PathBuf>,
}

/// One version folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDir {
    /// The version its name gives.
    pub version: Version,
    /// The folder (`{root}/{name}`, with the name as it is on disk, such as `01.0.0`).
    pub path: PathBuf,
}

impl BaseDir {
    /// Lists the version folders under `root`.
    ///
    /// Every subfolder is `models` or a version `x.y.z` with a `meta.json`; symbolic links to
    /// folders count as folders. Entries whose names start with `.` are ignored, and so are
    /// files. Errors: `root` is missing or not a folder; a folder with any other name; a
    /// version folder without `meta.json`; two folders of the same version (`1.0.0` and
    /// `01.0.0`).
    pub fn scan(root: &Path) -> Result<BaseDir, BundleError> {
        match fs::metadata(root) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(BundleError::invalid(
                    root,
                    "is a file, not a folder: pass --dir with the folder that holds the version folders",
                ))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(BundleError::invalid(
                    root,
                    "does not exist: pass --dir with the folder that holds the version folders",
                ))
            }
            Err(error) => return Err(BundleError::io(root, error)),
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(root).map_err(|error| BundleError::io(root, error))? {
            let entry = entry.map_err(|error| BundleError::io(root, error))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(BundleError::invalid(
                    &path,
                    "the name is not UTF-8: rename it (version folders are named x.y.z)",
                ));
            };
            if !name.starts_with('.') {
                names.push((name, path));
            }
        }
        // Sorted, so that of several bad folders the same one is always reported.
        names.sort();
        let mut versions = Vec::new();
        let mut models = None;
        for (name, path) in names {
            let metadata = match fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(BundleError::invalid(
                        &path,
                        "is a symbolic link to nothing: fix or remove the link",
                    ))
                }
                Err(error) => return Err(BundleError::io(&path, error)),
            };
            if !metadata.is_dir() {
                continue;
            }
            if name == "models" {
                models = Some(path);
                continue;
            }
            let version: Version = name.parse().map_err(|error| {
                BundleError::invalid(
                    &path,
                    format!("{error}: rename the folder, or move it out of {}", root.display()),
                )
            })?;
            if !path.join("meta.json").is_file() {
                return Err(BundleError::invalid(
                    &path,
                    "no meta.json: every version folder needs one; `{}` is a valid empty one",
                ));
            }
            versions.push(VersionDir { version, path });
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
        if let Some(pair) = versions.windows(2).find(|pair| pair[0].version == pair[1].version) {
            return Err(BundleError::invalid(
                &pair[1].path,
                format!(
                    "is version {}, the same as {}: keep one of the two folders",
                    pair[1].version,
                    pair[0].path.display()
                ),
            ));
        }
        Ok(BaseDir {
            root: root.to_path_buf(),
            versions,
            models,
        })
    }

    /// The model definitions in `models/`: its `*.json` files, sorted by file name. None
    /// when there is no `models/` folder.
    pub fn model_files(&self) -> Result<Vec<PathBuf>, BundleError> {
        match &self.models {
            Some(models) => json_files_in(models),
            None => Ok(Vec::new()),
        }
    }

    /// The version folder of `version`, if there is one.
    pub fn version(&self, version: Version) -> Option<&VersionDir> {
        self.versions.iter().find(|dir| dir.version == version)
    }
}

impl VersionDir {
    /// The path of the version's `meta.json`.
    pub fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }

    /// Reads and parses the version's `meta.json` (see [`parse_manifest`]).
    pub fn manifest(&self) -> Result<Manifest, BundleError> {
        let path = self.meta_path();
        let bytes = fs::read(&path).map_err(|error| BundleError::io(&path, error))?;
        let text =
            String::from_utf8(bytes).map_err(|_| BundleError::invalid(&path, "is not UTF-8 text: save it as UTF-8"))?;
        parse_manifest(&path, &text)
    }

    /// The file that a path in `meta.json` names; `entry` says where it was given
    /// (`files[2]`, `scripts.before[0]`) for messages.
    ///
    /// The path is relative to the version folder, with `/` or `\` between components.
    /// Refused, with a message naming `meta.json` and `entry`: an empty path, a NUL byte,
    /// an absolute path (`/x`, `\x`, `C:\x`, `C:/x`), a path that leaves the version folder
    /// once `..` is applied, a file that does not exist or is a folder, and a file whose real
    /// location (symbolic links followed) is outside the version folder.
    pub fn resolve(&self, rel: &str, entry: &str) -> Result<PathBuf, BundleError> {
        let meta = self.meta_path();
        let refuse = |message: String| BundleError::invalid(&meta, format!("{entry}: {message}"));
        if rel.is_empty() {
            return Err(refuse(
                "the path is empty: give a path relative to the version folder".to_owned(),
            ));
        }
        if rel.contains('\0') {
            return Err(refuse(format!("{} holds a NUL character: fix the path", quote(rel))));
        }
        let bytes = rel.as_bytes();
        let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        if drive || rel.starts_with(['/', '\\']) || Path::new(rel).is_absolute() {
            return Err(refuse(format!(
                "{} is an absolute path: give a path relative to the version folder {}",
                quote(rel),
                self.path.display()
            )));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in rel.split(['/', '\\']) {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(refuse(format!(
                            "{} leads outside the version folder: give a path inside {}",
                            quote(rel),
                            self.path.display()
                        )));
                    }
                }
                part => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(refuse(format!(
                "{} names the version folder itself: give a file inside it",
                quote(rel)
            )));
        }
        let resolved = parts.iter().fold(self.path.clone(), |path, part| path.join(part));
        match fs::metadata(&resolved) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => {
                return Err(refuse(format!(
                    "{} is not a regular file: give a file",
                    resolved.display()
                )))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "{} does not exist: check the path (it is relative to the version folder {})",
                    resolved.display(),
                    self.path.display()
                )))
            }
            Err(error) => return Err(BundleError::io(&resolved, error)),
        }
        let folder = fs::canonicalize(&self.path).map_err(|error| BundleError::io(&self.path, error))?;
        let real = fs::canonicalize(&resolved).map_err(|error| BundleError::io(&resolved, error))?;
        if !real.starts_with(&folder) {
            return Err(refuse(format!(
                "{} is a symbolic link to {}, outside the version folder: copy the file into the version folder",
                resolved.display(),
                real.display()
            )));
        }
        Ok(resolved)
    }

    /// The table definitions in `ddl/`: its `*.json` files, sorted by file name. None when
    /// there is no `ddl/` folder.
    pub fn ddl_files(&self) -> Result<Vec<PathBuf>, BundleError> {
        let ddl = self.path.join("ddl");
        match fs::metadata(&ddl) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(BundleError::io(&ddl, error)),
            Ok(metadata) if !metadata.is_dir() => Err(BundleError::invalid(
                &ddl,
                "is a file, not a folder: ddl/ holds the version's model definitions (*.json)",
            )),
            Ok(_) => json_files_in(&ddl),
        }
    }

    /// A hex SHA-256 of the version folder's content, to tell whether a version that was
    /// applied has changed since.
    ///
    /// It covers every regular file under the folder (symbolic links followed), in the
    /// byte order of their relative paths (with `/`): for each, the path, a NUL byte, the
    /// length as 8 big-endian bytes, and the content. Names starting with `.` are left out
    /// (as [`BaseDir::scan`] ignores them), so `.DS_Store` and editor swap files do not
    /// change a version.
    pub fn checksum(&self) -> Result<String, BundleError> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        for file in files_under(&self.path, true, None)? {
            hasher.update(file.relative.as_bytes());
            hasher.update([0u8]);
            hasher.update(file.len.to_be_bytes());
            let mut reader = File::open(&file.path).map_err(|error| BundleError::io(&file.path, error))?;
            let mut read = 0u64;
            loop {
                let count = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(count) => count,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(BundleError::io(&file.path, error)),
                };
                hasher.update(&buffer[..count]);
                read += count as u64;
            }
            if read != file.len {
                return Err(BundleError::invalid(
                    &file.path,
                    "changed while its checksum was computed: run again once nothing writes to the version folder",
                ));
            }
        }
        let digest = hasher.finalize();
        Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }
}

/// The `*.json` files of a folder (any letter case of the extension, symbolic links
/// followed, names starting with `.` ignored), sorted by file name.
fn json_files_in(folder: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(folder).map_err(|error| BundleError::io(folder, error))? {
        let entry = entry.map_err(|error| BundleError::io(folder, error))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".json") {
            continue;
        }
        if fs::metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
