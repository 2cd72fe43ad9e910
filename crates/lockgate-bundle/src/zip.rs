//! Zips of bundles: extracting an uploaded zip safely, finding the folder of versions in
//! it, and writing a folder as a zip (`lockgate dump --zip`).
//!
//! An uploaded zip is hostile until proven otherwise. Every entry is checked before
//! anything is written (names that could land outside the destination, links, encryption,
//! compression methods, the entry count, declared sizes), and while writing, the bytes that
//! actually come out of the decompressor are counted against the limits: a header's declared
//! size is never trusted.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use ::zip::write::SimpleFileOptions;
use ::zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::jsondoc::quote;
use crate::version::Version;
use crate::walk::files_under;
use crate::BundleError;

/// Limits on what extracting a zip may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// The most entries (files and folders) a zip may hold.
    pub max_entries: usize,
    /// The most bytes one entry may expand to.
    pub max_entry_bytes: u64,
    /// The most bytes all entries together may expand to.
    pub max_total_bytes: u64,
}

impl Default for ZipLimits {
    /// 10,000 entries, 256 MiB per entry, 1 GiB in all.
    fn default() -> ZipLimits {
        ZipLimits {
            max_entries: 10_000,
            max_entry_bytes: 256 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Unix file type bits of a zip entry's mode, and the type of a symbolic link.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// The copy buffer: large enough that system calls do not dominate.
const CHUNK_BYTES: usize = 64 * 1024;

/// Extracts the zip file `zip` into the folder `dest` (created if missing); returns the
/// number of files written. See [`extract_zip_reader`].
pub fn extract_zip(zip: &Path, dest: &Path, limits: &ZipLimits) -> Result<usize, BundleError> {
    let file = File::open(zip).map_err(|error| BundleError::io(zip, error))?;
    extract_zip_reader(BufReader::new(file), &zip.display().to_string(), dest, limits)
}

/// Extracts a zip read from `reader` into the folder `dest` (created if missing); `name`
/// names the zip in messages. Returns the number of files written.
///
/// Refused before anything is written, with a message naming the zip and the entry: more
/// than `max_entries` entries; a name with a NUL byte or a `..` component, an absolute name
/// (`/x`, `\x`, `C:\x`, `C:/x`; `\` counts as a separator); the same name twice; a
/// symbolic link; an encrypted entry; a compression other than stored, deflate and zstd;
/// declared sizes over the limits. Refused while writing: an entry that actually expands
/// past `max_entry_bytes`, or a running total past
/// `max_total_bytes`, and data that does not decompress (which includes data expanding past
/// its declared size, and a wrong checksum). Files are created only inside
/// `dest`, never over an existing file. After an error `dest` may hold part of the zip: the
/// caller deletes it.
pub fn extract_zip_reader<R: Read + Seek>(
    reader: R,
    name: &str,
    dest: &Path,
    limits: &ZipLimits,
) -> Result<usize, BundleError> {
    let refuse = |message: String| BundleError::invalid(name, message);
    let mut archive = ZipArchive::new(reader).map_err(|error| {
        refuse(format!(
            "is not a zip archive that can be read ({error}): give a .zip file"
        ))
    })?;
    if archive.len() > limits.max_entries {
        return Err(refuse(format!(
            "holds {} entries, more than the limit of {}: split the bundle into several zips",
            archive.len(),
            limits.max_entries
        )));
    }
    let plan = check_entries(&mut archive, limits).map_err(refuse)?;
    fs::create_dir_all(dest).map_err(|error| BundleError::io(dest, error))?;
    let mut written = 0;
    let mut total = 0u64;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    for planned in plan {
        let target = planned
            .parts
            .iter()
            .fold(dest.to_path_buf(), |path, part| path.join(part));
        if planned.is_dir {
            fs::create_dir_all(&target).map_err(|error| BundleError::io(&target, error))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|error| BundleError::io(parent, error))?;
        }
        let entry_name = quote(&planned.name);
        let mut entry = archive.by_index(planned.index).map_err(|error| {
            refuse(format!(
                "entry {entry_name} cannot be read ({error}): the zip is damaged"
            ))
        })?;
        // create_new: never write through an existing file or a link planted in `dest`.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|error| BundleError::io(&target, error))?;
        let allowance = limits.max_entry_bytes.min(limits.max_total_bytes.saturating_sub(total));
        // One byte past the allowance is enough to know it was exceeded.
        let mut limited = (&mut entry).take(allowance.saturating_add(1));
        let mut copied = 0u64;
        loop {
            let count = match limited.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // This includes data that expands past its declared size, which the zip
                // reader refuses itself.
                Err(error) => {
                    return Err(refuse(format!(
                    "entry {entry_name} cannot be decompressed ({error}): the zip is damaged or forged; make it again"
                )))
                }
            };
            copied += count as u64;
            if copied > allowance {
                let message = if copied > limits.max_entry_bytes {
                    format!(
                        "entry {entry_name} expands to more than {} bytes, the limit for one entry: split the data into smaller files",
                        limits.max_entry_bytes
                    )
                } else {
                    format!(
                        "entry {entry_name} takes the zip's content past {} bytes, the limit for a whole zip: split the bundle into several zips",
                        limits.max_total_bytes
                    )
                };
                return Err(refuse(message));
            }
            out.write_all(&buffer[..count])
                .map_err(|error| BundleError::io(&target, error))?;
        }
        out.flush().map_err(|error| BundleError::io(&target, error))?;
        total += copied;
        written += 1;
    }
    Ok(written)
}

/// An entry that passed the checks.
struct PlannedEntry {
    index: usize,
    /// The name as the zip gives it, for messages.
    name: String,
    /// The path components under the destination.
    parts: Vec<String>,
    is_dir: bool,
}

/// Checks every entry's metadata (no data is read); the error is a message naming the
/// entry.
fn check_entries<R: Read + Seek>(archive: &mut ZipArchive<R>, limits: &ZipLimits) -> Result<Vec<PlannedEntry>, String> {
    let mut plan = Vec::with_capacity(archive.len());
    let mut seen = HashSet::new();
    let mut declared_total = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|error| format!("entry {index} cannot be read ({error}): the zip is damaged"))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let quoted = quote(&name);
        let parts = entry_parts(&name).map_err(|problem| format!("entry {quoted} {problem}"))?;
        if entry.unix_mode().is_some_and(|mode| mode & S_IFMT == S_IFLNK) {
            return Err(format!(
                "entry {quoted} is a symbolic link: links are not extracted; put the file itself in the zip"
            ));
        }
        if entry.encrypted() {
            return Err(format!("entry {quoted} is encrypted: make the zip without a password"));
        }
        let method = entry.compression();
        if ![
            CompressionMethod::Stored,
            CompressionMethod::Deflated,
            CompressionMethod::Zstd,
        ]
        .contains(&method)
        {
            let method = match method.to_string().to_ascii_lowercase() {
                unknown if unknown == "unknown" => "an unknown method".to_owned(),
                known => known,
            };
            return Err(format!(
                "entry {quoted} is compressed with {method}, which Lockgate does not read: make the zip with deflate (the usual method) or zstd"
            ));
        }
        let is_dir = entry.is_dir() || name.ends_with('\\');
        let declared = entry.size();
        if !is_dir && declared > limits.max_entry_bytes {
            return Err(format!(
                "entry {quoted} declares {declared} bytes, more than the limit of {} for one entry: split the data into smaller files",
                limits.max_entry_bytes
            ));
        }
        declared_total = declared_total.saturating_add(declared);
        if declared_total > limits.max_total_bytes {
            return Err(format!(
                "entries up to {quoted} declare more than {} bytes, the limit for a whole zip: split the bundle into several zips",
                limits.max_total_bytes
            ));
        }
        if parts.is_empty() {
            if is_dir {
                continue;
            }
            return Err(format!("entry {quoted} names no file: make the zip again"));
        }
        if !is_dir && !seen.insert(parts.join("/")) {
            return Err(format!(
                "entry {quoted} appears twice: make the zip again with each file once"
            ));
        }
        plan.push(PlannedEntry {
            index,
            name,
            parts,
            is_dir,
        });
    }
    Ok(plan)
}

/// The path components of an entry name, or what is wrong with it (to follow the entry's
/// quoted name in a message). `/` and `\` both separate; `.` and empty components drop out.
fn entry_parts(name: &str) -> Result<Vec<String>, String> {
    const OUTSIDE: &str =
        "could land outside the folder it is extracted into: make the zip from inside the folder it holds";
    if name.contains('\0') {
        return Err(format!("holds a NUL character, which {OUTSIDE}"));
    }
    let bytes = name.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if drive || name.starts_with(['/', '\\']) {
        return Err(format!("is an absolute path, which {OUTSIDE}"));
    }
    let mut parts = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(format!("has a \"..\" component, which {OUTSIDE}")),
            part => parts.push(part.to_owned()),
        }
    }
    Ok(parts)
}

/// The folder of an extracted zip that holds the version folders: `extracted` itself when
/// it has an `x.y.z` folder, else its single top-level folder when that has one (a zip of
/// `db/`). Names starting with `.` and macOS's `__MACOSX` are ignored.
pub fn find_base(extracted: &Path) -> Result<PathBuf, BundleError> {
    if has_version_folder(extracted)? {
        return Ok(extracted.to_path_buf());
    }
    let mut folders = Vec::new();
    for entry in fs::read_dir(extracted).map_err(|error| BundleError::io(extracted, error))? {
        let entry = entry.map_err(|error| BundleError::io(extracted, error))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "__MACOSX" {
            continue;
        }
        if entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    if let [single] = folders.as_slice() {
        if has_version_folder(single)? {
            return Ok(single.clone());
        }
    }
    let message = if extracted.join("meta.json").is_file() {
        "the zip holds a meta.json but no x.y.z version folder: zip the version folder itself (1.0.0/meta.json, …), not its content"
    } else {
        "the zip holds no x.y.z version folder: zip the version folders (1.0.0/meta.json, …) or the db folder that holds them"
    };
    Err(BundleError::invalid(extracted, message))
}

fn has_version_folder(folder: &Path) -> Result<bool, BundleError> {
    for entry in fs::read_dir(folder).map_err(|error| BundleError::io(folder, error))? {
        let entry = entry.map_err(|error| BundleError::io(folder, error))?;
        let is_version = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.parse::<Version>().is_ok());
        if is_version && entry.path().is_dir() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes every regular file under `src_dir` into a new zip `out` (replacing it), deflated,
/// named by their `/`-separated paths relative to `src_dir`, in sorted order, with a fixed
/// timestamp (1980-01-01) so the same folder always gives the same zip. Contents are
/// streamed, never held whole in memory. Symbolic links are followed; `out` itself is left
/// out when it is inside `src_dir`.
pub fn write_zip(src_dir: &Path, out: &Path) -> Result<(), BundleError> {
    if !src_dir.is_dir() {
        return Err(BundleError::invalid(src_dir, "is not a folder: give the folder to zip"));
    }
    let file = File::create(out).map_err(|error| BundleError::io(out, error))?;
    let skip = fs::canonicalize(out).ok();
    let files = files_under(src_dir, false, skip.as_deref())?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let zip_error = |error: ::zip::result::ZipError| BundleError::io(out, io::Error::other(error));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut buffer = vec![0u8; CHUNK_BYTES];
    for walked in files {
        // Zip64 headers for anything near 4 GiB: deflate can make data slightly larger.
        let options = options.large_file(walked.len >= 1 << 31);
        zip.start_file(&walked.relative, options).map_err(zip_error)?;
        let mut input = File::open(&walked.path).map_err(|error| BundleError::io(&walked.path, error))?;
        loop {
            let count = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(BundleError::io(&walked.path, error)),
            };
            zip.write_all(&buffer[..count])
                .map_err(|error| BundleError::io(out, error))?;
        }
    }
    let writer = zip.finish().map_err(zip_error)?;
    let file = writer
        .into_inner()
        .map_err(|error| BundleError::io(out, error.into_error()))?;
    file.sync_all().map_err(|error| BundleError::io(out, error))?;
    Ok(())
}
