//! Zip extraction: any bytes, extracted into `tmp/inner/` with small limits, never panic,
//! never write anything beside `inner` in `tmp/`, never write a link, and never write more
//! than the limits (per entry, in all, in number).

#![no_main]

use std::fs;
use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lockgate_bundle::{extract_zip_reader, ZipLimits};

const LIMITS: ZipLimits = ZipLimits {
    max_entries: 64,
    max_entry_bytes: 1 << 20,
    max_total_bytes: 4 << 20,
};

/// What is under a folder: (files, bytes in all), checking each entry on the way.
fn walk(folder: &Path, files: &mut usize, bytes: &mut u64) {
    for entry in fs::read_dir(folder).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let kind = entry.file_type().expect("file type");
        let path = entry.path();
        assert!(!kind.is_symlink(), "a link was written: {}", path.display());
        if kind.is_dir() {
            walk(&path, files, bytes);
        } else {
            assert!(kind.is_file(), "neither file nor folder: {}", path.display());
            let len = entry.metadata().expect("metadata").len();
            assert!(len <= LIMITS.max_entry_bytes, "{} holds {len} bytes", path.display());
            *files += 1;
            *bytes += len;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let temp = tempfile::tempdir().expect("temp dir");
    let dest = temp.path().join("inner");
    let result = extract_zip_reader(Cursor::new(data), "fuzz.zip", &dest, &LIMITS);

    let beside: Vec<_> = fs::read_dir(temp.path())
        .expect("read_dir")
        .map(|entry| entry.expect("dir entry").file_name())
        .filter(|name| name != "inner")
        .collect();
    assert!(beside.is_empty(), "written outside the destination: {beside:?}");

    let (mut files, mut bytes) = (0, 0);
    if dest.exists() {
        walk(&dest, &mut files, &mut bytes);
    }
    assert!(
        bytes <= LIMITS.max_total_bytes,
        "{bytes} bytes written, more than the limit"
    );
    assert!(
        files <= LIMITS.max_entries,
        "{files} files written, more than the limit"
    );
    if let Ok(written) = result {
        assert_eq!(written, files, "the count returned is not the files written");
    }
});
