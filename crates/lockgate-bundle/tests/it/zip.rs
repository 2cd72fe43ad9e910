//! Zips: a folder round trip through `write_zip` and `extract_zip`, `find_base`, and
//! hostile archives (built here with the zip crate's writer, some patched by hand) that
//! must be refused before anything lands outside the destination or past the limits.

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use ::zip::write::SimpleFileOptions;
use ::zip::{CompressionMethod, ZipWriter};
use lockgate_bundle::{extract_zip, extract_zip_reader, find_base, write_zip, BaseDir, ZipLimits};

use crate::base::{folder, message, Files};

/// Files as (relative path with `/`, content).
type Tree = Vec<(String, Vec<u8>)>;

/// Every file under `root`, as (relative path with `/`, content), sorted.
fn tree(root: &Path) -> Tree {
    fn walk(root: &Path, folder: &Path, out: &mut Tree) {
        for entry in fs::read_dir(folder).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                let relative = relative.to_string_lossy().replace('\\', "/");
                out.push((relative, fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// A zip in memory with `entries` (name, content); a name ending in `/` is a folder.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options).expect("dir");
        } else {
            zip.start_file(*name, options).expect("start");
            zip.write_all(content).expect("write");
        }
    }
    zip.finish().expect("finish").into_inner()
}

/// Extracts `bytes` as `upload.zip` into a fresh folder; the error with the folder as
/// `$TMP`, and what was written.
fn extract(bytes: Vec<u8>, limits: &ZipLimits) -> (Result<usize, String>, Tree) {
    let temp = tempfile::tempdir().expect("temp");
    let dest = temp.path().join("out");
    let result = extract_zip_reader(Cursor::new(bytes), "upload.zip", &dest, limits)
        .map_err(|error| message(&error, temp.path()));
    (result, tree(&dest))
}

/// Offsets of the first local file header and central directory header.
fn headers(bytes: &[u8]) -> (usize, usize) {
    let find = |signature: &[u8]| {
        bytes
            .windows(4)
            .position(|window| window == signature)
            .expect("signature")
    };
    (find(b"PK\x03\x04"), find(b"PK\x01\x02"))
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn a_folder_round_trips() {
    let temp = folder(&[
        (
            "db/1.0.0/meta.json",
            r#"{"files": [{"model": "A", "file": "default/a.json"}]}"#,
        ),
        ("db/1.0.0/default/a.json", r#"[{"id": 1}]"#),
        ("db/1.0.0/ddl/a.json", r#"{"name": "A"}"#),
        ("db/1.2.0/meta.json", "{}"),
        ("db/1.2.0/tenant1/deep/deeper/b.csv", "id\n1\n"),
        ("db/1.2.0/empty.json", ""),
        ("db/models/a.json", r#"{"name": "A"}"#),
    ]);
    let db = temp.path().join("db");
    let zip = temp.path().join("db.zip");
    write_zip(&db, &zip).expect("write");

    let out = temp.path().join("out");
    let written = extract_zip(&zip, &out, &ZipLimits::default()).expect("extract");
    assert_eq!(written, 7);
    assert_eq!(tree(&out), tree(&db));
    assert_eq!(find_base(&out).expect("base"), out);
    let base = BaseDir::scan(&find_base(&out).expect("base")).expect("scan");
    assert_eq!(base.versions.len(), 2);
    assert_eq!(
        base.versions[0].checksum().expect("checksum"),
        BaseDir::scan(&db).expect("scan").versions[0]
            .checksum()
            .expect("checksum")
    );

    // Entries are sorted '/' paths, deflated; the same folder always gives the same bytes.
    let mut archive = ::zip::ZipArchive::new(fs::File::open(&zip).expect("open")).expect("zip");
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.expect("name").into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "1.0.0/ddl/a.json",
            "1.0.0/default/a.json",
            "1.0.0/meta.json",
            "1.2.0/empty.json",
            "1.2.0/meta.json",
            "1.2.0/tenant1/deep/deeper/b.csv",
            "models/a.json"
        ]
    );
    assert_eq!(
        archive.by_index(0).expect("entry").compression(),
        CompressionMethod::Deflated
    );
    let again = temp.path().join("again.zip");
    write_zip(&db, &again).expect("write again");
    assert_eq!(fs::read(&zip).expect("zip"), fs::read(&again).expect("again"));
}

#[test]
fn a_zip_of_the_db_folder_itself() {
    let temp = folder(&[("parent/db/1.0.0/meta.json", "{}"), ("parent/db/1.0.0/a.json", "[]")]);
    let zip = temp.path().join("parent.zip");
    write_zip(&temp.path().join("parent"), &zip).expect("write");
    let out = temp.path().join("out");
    assert_eq!(extract_zip(&zip, &out, &ZipLimits::default()).expect("extract"), 2);
    assert_eq!(find_base(&out).expect("base"), out.join("db"));
}

#[test]
fn write_zip_leaves_out_the_zip_itself() {
    let temp = folder(&[("db/1.0.0/meta.json", "{}")]);
    let db = temp.path().join("db");
    write_zip(&db, &db.join("db.zip")).expect("write");
    // Written a second time, the first zip is a file in the folder, but not the second.
    write_zip(&db, &db.join("db.zip")).expect("write");
    let archive = ::zip::ZipArchive::new(fs::File::open(db.join("db.zip")).expect("open")).expect("zip");
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.expect("name").into_owned())
        .collect();
    assert_eq!(names, ["1.0.0/meta.json"]);
    let error = write_zip(&temp.path().join("nothing"), &temp.path().join("x.zip")).expect_err("no folder");
    assert_eq!(
        message(&error, temp.path()),
        "$TMP/nothing: is not a folder: give the folder to zip"
    );
}

#[test]
fn find_base_errors_and_choices() {
    let cases: Vec<(Files, Result<&str, &str>)> = vec![
        (vec![("x/1.0.0/meta.json", "{}")], Ok("x")),
        (vec![("x/db/1.0.0/meta.json", "{}")], Ok("x/db")),
        (vec![("x/db/1.0.0/meta.json", "{}"), ("x/__MACOSX/db/._x", ""), ("x/.DS_Store", "")], Ok("x/db")),
        (vec![("x/db/1.0.0/meta.json", "{}"), ("x/README.txt", "")], Ok("x/db")),
        (
            vec![("x/a/1.0.0/meta.json", "{}"), ("x/b/1.0.0/meta.json", "{}")],
            Err("$TMP/x: the zip holds no x.y.z version folder: zip the version folders (1.0.0/meta.json, …) or the db folder that holds them"),
        ),
        (
            vec![("x/a/b/1.0.0/meta.json", "{}")],
            Err("$TMP/x: the zip holds no x.y.z version folder: zip the version folders (1.0.0/meta.json, …) or the db folder that holds them"),
        ),
        (
            vec![("x/meta.json", "{}"), ("x/default/a.json", "[]")],
            Err("$TMP/x: the zip holds a meta.json but no x.y.z version folder: zip the version folder itself (1.0.0/meta.json, …), not its content"),
        ),
        (
            vec![("x/", "")],
            Err("$TMP/x: the zip holds no x.y.z version folder: zip the version folders (1.0.0/meta.json, …) or the db folder that holds them"),
        ),
        (
            vec![("x/1.0.0", "a file")],
            Err("$TMP/x: the zip holds no x.y.z version folder: zip the version folders (1.0.0/meta.json, …) or the db folder that holds them"),
        ),
    ];
    for (files, expect) in cases {
        let temp = folder(&files);
        let result = find_base(&temp.path().join("x"));
        match (result, expect) {
            (Ok(path), Ok(expect)) => assert_eq!(path, temp.path().join(expect)),
            (Err(error), Err(expect)) => assert_eq!(message(&error, temp.path()), expect),
            (result, expect) => panic!("{:?} instead of {expect:?}", result.map_err(|error| error.to_string())),
        }
    }
}

#[test]
fn folders_and_backslashes() {
    let (result, files) = extract(
        zip_of(&[
            ("empty/", b""),
            ("a/./b.json", b"1"),
            ("win\\path\\c.json", b"2"),
            ("d//e.json", b"3"),
        ]),
        &ZipLimits::default(),
    );
    assert_eq!(result, Ok(3));
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["a/b.json", "d/e.json", "win/path/c.json"]);
}

/// Hostile names, refused before anything is written: the good entry before each is not
/// extracted either.
#[test]
fn hostile_names_are_refused() {
    const OUTSIDE: &str =
        "could land outside the folder it is extracted into: make the zip from inside the folder it holds";
    let cases = [
        (
            "../evil",
            format!(r#"upload.zip: entry "../evil" has a ".." component, which {OUTSIDE}"#),
        ),
        (
            "a/../../evil",
            format!(r#"upload.zip: entry "a/../../evil" has a ".." component, which {OUTSIDE}"#),
        ),
        (
            "a/b/..",
            format!(r#"upload.zip: entry "a/b/.." has a ".." component, which {OUTSIDE}"#),
        ),
        (
            "..\\evil",
            format!(r#"upload.zip: entry "..\\evil" has a ".." component, which {OUTSIDE}"#),
        ),
        (
            "a\\..\\..\\evil",
            format!(r#"upload.zip: entry "a\\..\\..\\evil" has a ".." component, which {OUTSIDE}"#),
        ),
        (
            "/abs",
            format!(r#"upload.zip: entry "/abs" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "/etc/cron.d/x",
            format!(r#"upload.zip: entry "/etc/cron.d/x" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "\\abs",
            format!(r#"upload.zip: entry "\\abs" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "C:/x",
            format!(r#"upload.zip: entry "C:/x" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "C:\\x",
            format!(r#"upload.zip: entry "C:\\x" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "c:x",
            format!(r#"upload.zip: entry "c:x" is an absolute path, which {OUTSIDE}"#),
        ),
        (
            "a\0b",
            format!(r#"upload.zip: entry "a\u0000b" holds a NUL character, which {OUTSIDE}"#),
        ),
    ];
    for (name, expect) in cases {
        let (result, files) = extract(zip_of(&[("good.json", b"[]"), (name, b"x")]), &ZipLimits::default());
        assert_eq!(result, Err(expect), "{name:?}");
        assert!(files.is_empty(), "{name:?} wrote {files:?}");
    }
}

#[test]
fn links_are_refused() {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    zip.start_file("good.json", options).expect("start");
    zip.write_all(b"[]").expect("write");
    zip.add_symlink("link", "/etc/passwd", options).expect("link");
    let bytes = zip.finish().expect("finish").into_inner();
    let (result, files) = extract(bytes, &ZipLimits::default());
    assert_eq!(
        result,
        Err(
            r#"upload.zip: entry "link" is a symbolic link: links are not extracted; put the file itself in the zip"#
                .to_owned()
        )
    );
    assert!(files.is_empty());
}

#[test]
fn encrypted_entries_and_unknown_methods_are_refused() {
    // The writer cannot encrypt without the aes-crypto feature, so the flag is set by hand
    // (bit 0 of the general purpose flags, in the local and the central header).
    let mut bytes = zip_of(&[("secret.json", b"[]")]);
    let (local, central) = headers(&bytes);
    put_u16(&mut bytes, local + 6, 1);
    put_u16(&mut bytes, central + 8, 1);
    let (result, files) = extract(bytes, &ZipLimits::default());
    assert_eq!(
        result,
        Err(r#"upload.zip: entry "secret.json" is encrypted: make the zip without a password"#.to_owned())
    );
    assert!(files.is_empty());

    // Method 12 is bzip2, which this build does not read.
    let mut bytes = zip_of(&[("b.json", b"[]")]);
    let (local, central) = headers(&bytes);
    put_u16(&mut bytes, local + 8, 12);
    put_u16(&mut bytes, central + 10, 12);
    let (result, _) = extract(bytes, &ZipLimits::default());
    let error = result.expect_err("bzip2");
    assert!(
        error.starts_with(r#"upload.zip: entry "b.json" is compressed with "#)
            && error.ends_with(", which Lockgate does not read: make the zip with deflate (the usual method) or zstd"),
        "{error}"
    );
}

#[test]
fn duplicate_names_and_garbage_are_refused() {
    let (result, files) = extract(
        zip_of(&[("a/b.json", b"1"), ("a\\b.json", b"2")]),
        &ZipLimits::default(),
    );
    assert_eq!(
        result,
        Err(r#"upload.zip: entry "a\\b.json" appears twice: make the zip again with each file once"#.to_owned())
    );
    assert!(files.is_empty());

    let (result, files) = extract(b"PK not really a zip".to_vec(), &ZipLimits::default());
    let error = result.expect_err("garbage");
    assert!(
        error.starts_with("upload.zip: is not a zip archive that can be read (")
            && error.ends_with("): give a .zip file"),
        "{error}"
    );
    assert!(files.is_empty());

    let temp = tempfile::tempdir().expect("temp");
    let error = extract_zip(
        &temp.path().join("missing.zip"),
        &temp.path().join("out"),
        &ZipLimits::default(),
    )
    .expect_err("missing");
    assert!(!error.is_invalid());
    assert!(
        message(&error, temp.path()).starts_with("$TMP/missing.zip: No such file or directory"),
        "{error}"
    );
}

#[test]
fn too_many_entries() {
    let names: Vec<String> = (0..10_001).map(|index| format!("f{index}.json")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), &b""[..])).collect();
    let bytes = zip_of(&entries);
    let (result, files) = extract(bytes.clone(), &ZipLimits::default());
    assert_eq!(
        result,
        Err(
            "upload.zip: holds 10001 entries, more than the limit of 10000: split the bundle into several zips"
                .to_owned()
        )
    );
    assert!(files.is_empty());

    let small = ZipLimits {
        max_entries: 3,
        ..ZipLimits::default()
    };
    let (result, _) = extract(zip_of(&[("a", b""), ("b/", b""), ("b/c", b""), ("d", b"")]), &small);
    assert_eq!(
        result,
        Err("upload.zip: holds 4 entries, more than the limit of 3: split the bundle into several zips".to_owned())
    );
    let (result, _) = extract(zip_of(&[("a", b""), ("b/", b""), ("b/c", b"")]), &small);
    assert_eq!(result, Ok(2));
}

const MIB: u64 = 1024 * 1024;

fn small_limits() -> ZipLimits {
    ZipLimits {
        max_entries: 100,
        max_entry_bytes: MIB,
        max_total_bytes: 2 * MIB,
    }
}

/// 64 MiB of zeros deflate to about 64 KiB.
fn bomb() -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("good.json", SimpleFileOptions::default())
        .expect("start");
    zip.write_all(b"[]").expect("write");
    zip.start_file("zeros.json", SimpleFileOptions::default())
        .expect("start");
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..64 {
        zip.write_all(&chunk).expect("write");
    }
    let bytes = zip.finish().expect("finish").into_inner();
    assert!(bytes.len() < 1024 * 1024, "compressed to {} bytes", bytes.len());
    bytes
}

#[test]
fn an_entry_declaring_more_than_the_limit_is_refused_before_writing() {
    let (result, files) = extract(bomb(), &small_limits());
    assert_eq!(
        result,
        Err(r#"upload.zip: entry "zeros.json" declares 67108864 bytes, more than the limit of 1048576 for one entry: split the data into smaller files"#.to_owned())
    );
    assert!(files.is_empty());

    // Entries under the per-entry limit, but together over the total.
    let chunk = vec![b'x'; 900 * 1024];
    let (result, files) = extract(zip_of(&[("a", &chunk), ("b", &chunk), ("c", &chunk)]), &small_limits());
    assert_eq!(
        result,
        Err(r#"upload.zip: entries up to "c" declare more than 2097152 bytes, the limit for a whole zip: split the bundle into several zips"#.to_owned())
    );
    assert!(files.is_empty());
}

/// A bomb whose headers claim 1000 bytes. The writer always records the true size, so the
/// size is forged by patching both headers. The zip reader refuses to return more than the
/// declared size and the extraction stops with the entry named; Lockgate's own count of the
/// bytes that come out (through `take(limit + 1)`) is the second line of defence, for a
/// reader that would not check.
#[test]
fn an_entry_expanding_past_its_declared_size_is_refused() {
    let mut bytes = bomb();
    let local = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, window)| *window == b"PK\x03\x04")
        .map(|(at, _)| at)
        .nth(1)
        .expect("second local header");
    let central = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, window)| *window == b"PK\x01\x02")
        .map(|(at, _)| at)
        .nth(1)
        .expect("second central header");
    put_u32(&mut bytes, local + 22, 1000);
    put_u32(&mut bytes, central + 24, 1000);
    let (result, files) = extract(bytes, &small_limits());
    let error = result.expect_err("forged size");
    assert!(
        error.starts_with(r#"upload.zip: entry "zeros.json" cannot be decompressed ("#)
            && error.ends_with("): the zip is damaged or forged; make it again"),
        "{error}"
    );
    // At most the declared size was written before the reader stopped.
    let written: u64 = files.iter().map(|(_, content)| content.len() as u64).sum();
    assert!(written <= 1000 + 2, "{written} bytes written");
}

#[test]
fn limits_are_counted_on_the_bytes_written() {
    // Exactly at the limits: accepted.
    let limits = ZipLimits {
        max_entries: 10,
        max_entry_bytes: 1000,
        max_total_bytes: 1500,
    };
    let a = vec![b'a'; 1000];
    let b = vec![b'b'; 500];
    let (result, files) = extract(zip_of(&[("a", &a), ("b", &b)]), &limits);
    assert_eq!(result, Ok(2));
    assert_eq!(files, [("a".to_owned(), a.clone()), ("b".to_owned(), b)]);
    let (result, _) = extract(zip_of(&[("a", &a), ("b", &[b'b'; 501])]), &limits);
    assert!(result.expect_err("over").contains("declare more than 1500 bytes"));
}

#[test]
fn extraction_never_overwrites() {
    let temp = tempfile::tempdir().expect("temp");
    let dest = temp.path().join("out");
    fs::create_dir_all(&dest).expect("mkdir");
    fs::write(dest.join("a.json"), "mine").expect("write");
    let error = extract_zip_reader(
        Cursor::new(zip_of(&[("a.json", b"theirs")])),
        "upload.zip",
        &dest,
        &ZipLimits::default(),
    )
    .expect_err("exists");
    assert!(!error.is_invalid());
    assert!(
        message(&error, temp.path()).starts_with("$TMP/out/a.json: File exists"),
        "{error}"
    );
    assert_eq!(fs::read_to_string(dest.join("a.json")).expect("read"), "mine");
}
