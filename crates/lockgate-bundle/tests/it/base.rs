//! The `db/` folder: scanning version folders, the manifests, ddl and model files they
//! hold, resolving the paths meta.json gives (never outside the version folder), and
//! checksums.

use std::fs;
use std::path::{Path, PathBuf};

use lockgate_bundle::{BaseDir, BundleError, Version, VersionDir};
use tempfile::TempDir;

/// Files to create: (path, content).
pub type Files<'a> = Vec<(&'a str, &'a str)>;

/// A temporary folder filled with `files` (path, content); folders are created as needed,
/// and a path ending in `/` is an empty folder.
pub fn folder(files: &[(&str, &str)]) -> TempDir {
    let temp = tempfile::tempdir().expect("temp dir");
    for (path, content) in files {
        let full = temp.path().join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&full).expect("mkdir");
        } else {
            fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            fs::write(&full, content).expect("write");
        }
    }
    temp
}

/// The error's text with the temporary folder written as `$TMP`.
pub fn message(error: &BundleError, temp: &Path) -> String {
    error.to_string().replace(&temp.display().to_string(), "$TMP")
}

fn versions(base: &BaseDir) -> Vec<String> {
    base.versions.iter().map(|dir| dir.version.to_string()).collect()
}

#[test]
fn versions_in_numeric_order() {
    let temp = folder(&[
        ("db/1.10.0/meta.json", "{}"),
        ("db/1.2.0/meta.json", "{}"),
        ("db/0.9.0/meta.json", "{}"),
        ("db/10.0.0/meta.json", "{}"),
        ("db/1.2.10/meta.json", "{}"),
        ("db/models/customer.json", "{}"),
        ("db/.git/HEAD", "x"),
        ("db/.hidden/", ""),
        ("db/README.md", "notes"),
        ("db/4.0", "a file, not a folder: ignored"),
    ]);
    let root = temp.path().join("db");
    let base = BaseDir::scan(&root).expect("scan");
    assert_eq!(base.root, root);
    assert_eq!(versions(&base), ["0.9.0", "1.2.0", "1.2.10", "1.10.0", "10.0.0"]);
    assert_eq!(base.versions[1].path, root.join("1.2.0"));
    assert_eq!(base.models, Some(root.join("models")));
    assert_eq!(
        base.version(Version::new(1, 10, 0)).map(|dir| dir.path.clone()),
        Some(root.join("1.10.0"))
    );
    assert_eq!(base.version(Version::new(2, 0, 0)), None);
}

#[test]
fn an_empty_base_has_no_versions() {
    let temp = folder(&[("db/", "")]);
    let base = BaseDir::scan(&temp.path().join("db")).expect("scan");
    assert!(base.versions.is_empty());
    assert_eq!(base.models, None);
    assert!(base.model_files().expect("none").is_empty());
}

#[test]
fn scan_errors() {
    let cases: Vec<(Files, &str, &str)> = vec![
        (
            vec![("db/1.0.0/meta.json", "{}"), ("db/4.0/meta.json", "{}")],
            "db",
            "$TMP/db/4.0: 4.0 is not a valid semver: version folders are named x.y.z: rename the folder, or move it out of $TMP/db",
        ),
        (
            vec![("db/backup/x.json", "{}")],
            "db",
            "$TMP/db/backup: backup is not a valid semver: version folders are named x.y.z: rename the folder, or move it out of $TMP/db",
        ),
        (
            vec![("db/1.0.0/data.json", "[]")],
            "db",
            "$TMP/db/1.0.0: no meta.json: every version folder needs one; `{}` is a valid empty one",
        ),
        (
            vec![("db/1.0.0/meta.json/", "")],
            "db",
            "$TMP/db/1.0.0: no meta.json: every version folder needs one; `{}` is a valid empty one",
        ),
        (
            vec![("db/1.0.0/meta.json", "{}"), ("db/01.0.0/meta.json", "{}")],
            "db",
            "$TMP/db/1.0.0: is version 1.0.0, the same as $TMP/db/01.0.0: keep one of the two folders",
        ),
        (
            vec![],
            "db",
            "$TMP/db: does not exist: pass --dir with the folder that holds the version folders",
        ),
        (
            vec![("db", "a file")],
            "db",
            "$TMP/db: is a file, not a folder: pass --dir with the folder that holds the version folders",
        ),
    ];
    for (files, root, expect) in cases {
        let temp = folder(&files);
        let error = BaseDir::scan(&temp.path().join(root)).expect_err(expect);
        assert!(error.is_invalid(), "{error}");
        assert_eq!(message(&error, temp.path()), expect);
    }
}

#[cfg(unix)]
#[test]
fn symbolic_links_to_folders_are_followed() {
    let temp = folder(&[("elsewhere/2.0.0/meta.json", "{}"), ("db/1.0.0/meta.json", "{}")]);
    std::os::unix::fs::symlink(temp.path().join("elsewhere/2.0.0"), temp.path().join("db/2.0.0")).expect("link");
    std::os::unix::fs::symlink(temp.path().join("nowhere"), temp.path().join("db/3.0.0")).expect("link");
    let error = BaseDir::scan(&temp.path().join("db")).expect_err("dangling");
    assert_eq!(
        message(&error, temp.path()),
        "$TMP/db/3.0.0: is a symbolic link to nothing: fix or remove the link"
    );
    fs::remove_file(temp.path().join("db/3.0.0")).expect("unlink");
    let base = BaseDir::scan(&temp.path().join("db")).expect("scan");
    assert_eq!(versions(&base), ["1.0.0", "2.0.0"]);
}

#[test]
fn manifests_are_read_from_the_version_folder() {
    let temp = folder(&[
        ("db/1.0.0/meta.json", r#"{"files": [{"model": "A", "file": "a.json"}]}"#),
        ("db/1.1.0/meta.json", r#"{"files": 1}"#),
    ]);
    let base = BaseDir::scan(&temp.path().join("db")).expect("scan");
    let manifest = base.versions[0].manifest().expect("manifest");
    assert_eq!(manifest.path, temp.path().join("db/1.0.0/meta.json"));
    assert_eq!(manifest.files[0].model.as_deref(), Some("A"));
    let error = base.versions[1].manifest().expect_err("bad");
    assert!(message(&error, temp.path()).starts_with(r#"$TMP/db/1.1.0/meta.json:1:11: "files" is a number"#));
    fs::write(temp.path().join("db/1.1.0/meta.json"), b"{\"a\xff\": 1}").expect("write");
    let error = base.versions[1].manifest().expect_err("not UTF-8");
    assert_eq!(
        message(&error, temp.path()),
        "$TMP/db/1.1.0/meta.json: is not UTF-8 text: save it as UTF-8"
    );
}

#[test]
fn model_and_ddl_files_sorted_by_name() {
    let temp = folder(&[
        ("db/models/b.json", "{}"),
        ("db/models/a.JSON", "{}"),
        ("db/models/c.json.bak", "{}"),
        ("db/models/.d.json", "{}"),
        ("db/models/sub.json/", ""),
        ("db/1.0.0/meta.json", "{}"),
        ("db/1.0.0/ddl/zeta.json", "{}"),
        ("db/1.0.0/ddl/Alpha.json", "{}"),
        ("db/1.0.0/ddl/notes.txt", ""),
        ("db/1.1.0/meta.json", "{}"),
        ("db/1.2.0/meta.json", "{}"),
        ("db/1.2.0/ddl", "a file"),
    ]);
    let root = temp.path().join("db");
    let base = BaseDir::scan(&root).expect("scan");
    let names = |paths: Vec<PathBuf>| -> Vec<String> {
        paths
            .iter()
            .map(|path| path.strip_prefix(&root).expect("under root").display().to_string())
            .collect()
    };
    assert_eq!(
        names(base.model_files().expect("models")),
        ["models/a.JSON", "models/b.json"]
    );
    assert_eq!(
        names(base.versions[0].ddl_files().expect("ddl")),
        ["1.0.0/ddl/Alpha.json", "1.0.0/ddl/zeta.json"]
    );
    assert!(base.versions[1].ddl_files().expect("no ddl").is_empty());
    let error = base.versions[2].ddl_files().expect_err("ddl is a file");
    assert_eq!(
        message(&error, temp.path()),
        "$TMP/db/1.2.0/ddl: is a file, not a folder: ddl/ holds the version's model definitions (*.json)"
    );
}

fn version_dir(temp: &TempDir) -> VersionDir {
    VersionDir {
        version: Version::new(1, 0, 0),
        path: temp.path().join("db/1.0.0"),
    }
}

#[test]
fn resolve_stays_inside_the_version_folder() {
    let temp = folder(&[
        ("db/1.0.0/meta.json", "{}"),
        ("db/1.0.0/default/customer.json", "[]"),
        ("db/1.0.0/top.csv", "a\n1\n"),
        ("db/1.1.0/meta.json", "{}"),
        ("db/secret.txt", "no"),
    ]);
    let dir = version_dir(&temp);
    let ok = [
        ("default/customer.json", "default/customer.json"),
        ("./default/customer.json", "default/customer.json"),
        ("default//customer.json", "default/customer.json"),
        ("default/../default/customer.json", "default/customer.json"),
        ("default\\customer.json", "default/customer.json"),
        ("top.csv", "top.csv"),
        ("default/../top.csv", "top.csv"),
    ];
    for (rel, expect) in ok {
        let path = dir
            .resolve(rel, "files[0]")
            .unwrap_or_else(|error| panic!("{rel}: {error}"));
        assert_eq!(path, dir.path.join(expect), "{rel}");
    }
    let meta = "$TMP/db/1.0.0/meta.json: files[2]";
    let errors = [
        ("", format!("{meta}: the path is empty: give a path relative to the version folder")),
        ("/etc/passwd", format!(r#"{meta}: "/etc/passwd" is an absolute path: give a path relative to the version folder $TMP/db/1.0.0"#)),
        ("\\x", format!(r#"{meta}: "\\x" is an absolute path: give a path relative to the version folder $TMP/db/1.0.0"#)),
        ("C:\\x", format!(r#"{meta}: "C:\\x" is an absolute path: give a path relative to the version folder $TMP/db/1.0.0"#)),
        ("C:/x", format!(r#"{meta}: "C:/x" is an absolute path: give a path relative to the version folder $TMP/db/1.0.0"#)),
        ("c:x", format!(r#"{meta}: "c:x" is an absolute path: give a path relative to the version folder $TMP/db/1.0.0"#)),
        ("../secret.txt", format!(r#"{meta}: "../secret.txt" leads outside the version folder: give a path inside $TMP/db/1.0.0"#)),
        ("../1.1.0/meta.json", format!(r#"{meta}: "../1.1.0/meta.json" leads outside the version folder: give a path inside $TMP/db/1.0.0"#)),
        ("default/../../secret.txt", format!(r#"{meta}: "default/../../secret.txt" leads outside the version folder: give a path inside $TMP/db/1.0.0"#)),
        ("default\\..\\..\\secret.txt", format!(r#"{meta}: "default\\..\\..\\secret.txt" leads outside the version folder: give a path inside $TMP/db/1.0.0"#)),
        ("a\0b", format!(r#"{meta}: "a\u0000b" holds a NUL character: fix the path"#)),
        (".", format!(r#"{meta}: "." names the version folder itself: give a file inside it"#)),
        ("default", format!("{meta}: $TMP/db/1.0.0/default is not a regular file: give a file")),
        ("default/missing.json", format!("{meta}: $TMP/db/1.0.0/default/missing.json does not exist: check the path (it is relative to the version folder $TMP/db/1.0.0)")),
    ];
    for (rel, expect) in errors {
        let error = dir.resolve(rel, "files[2]").expect_err(rel);
        assert!(error.is_invalid(), "{error}");
        assert_eq!(message(&error, temp.path()), expect, "{rel}");
    }
}

#[cfg(unix)]
#[test]
fn resolve_refuses_links_that_lead_outside() {
    let temp = folder(&[
        ("db/1.0.0/meta.json", "{}"),
        ("db/1.0.0/inside.json", "[]"),
        ("db/secret.json", "[]"),
    ]);
    let dir = version_dir(&temp);
    std::os::unix::fs::symlink(temp.path().join("db/secret.json"), dir.path.join("leak.json")).expect("link");
    std::os::unix::fs::symlink(temp.path().join("db"), dir.path.join("up")).expect("link");
    std::os::unix::fs::symlink(dir.path.join("inside.json"), dir.path.join("alias.json")).expect("link");
    let canonical = fs::canonicalize(temp.path()).expect("canonical");
    let render = |error: BundleError| message(&error, temp.path()).replace(&canonical.display().to_string(), "$TMP");
    assert_eq!(
        render(dir.resolve("leak.json", "files[0]").expect_err("leak")),
        "$TMP/db/1.0.0/meta.json: files[0]: $TMP/db/1.0.0/leak.json is a symbolic link to $TMP/db/secret.json, outside the version folder: copy the file into the version folder"
    );
    assert_eq!(
        render(dir.resolve("up/secret.json", "scripts.before[0]").expect_err("leak")),
        "$TMP/db/1.0.0/meta.json: scripts.before[0]: $TMP/db/1.0.0/up/secret.json is a symbolic link to $TMP/db/secret.json, outside the version folder: copy the file into the version folder"
    );
    // A link that stays inside is fine.
    assert_eq!(
        dir.resolve("alias.json", "files[1]").expect("inside"),
        dir.path.join("alias.json")
    );
}

#[test]
fn checksums_cover_names_and_contents() {
    let files = [
        ("db/1.0.0/meta.json", r#"{"files": []}"#),
        ("db/1.0.0/default/a.json", "[1]"),
        ("db/1.0.0/default/b.json", "[2]"),
        ("db/1.0.0/ddl/m.json", "{}"),
    ];
    let temp = folder(&files);
    let dir = version_dir(&temp);
    let first = dir.checksum().expect("checksum");
    assert_eq!(first.len(), 64);
    assert!(first
        .bytes()
        .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
    assert_eq!(dir.checksum().expect("again"), first, "deterministic");

    // The same content elsewhere has the same checksum.
    let other = folder(&files);
    assert_eq!(version_dir(&other).checksum().expect("other"), first);

    // Hidden files do not count.
    fs::write(dir.path.join(".DS_Store"), "junk").expect("write");
    fs::write(dir.path.join("default/.swp"), "junk").expect("write");
    assert_eq!(dir.checksum().expect("hidden"), first);

    // Content, names and new files do.
    fs::write(dir.path.join("default/b.json"), "[3]").expect("write");
    let changed = dir.checksum().expect("changed");
    assert_ne!(changed, first);
    fs::rename(dir.path.join("default/b.json"), dir.path.join("default/c.json")).expect("rename");
    let renamed = dir.checksum().expect("renamed");
    assert_ne!(renamed, changed);
    fs::write(dir.path.join("empty.json"), "").expect("write");
    assert_ne!(dir.checksum().expect("added"), renamed);

    // Moving bytes from one file's end to the next file's start changes it too.
    let split_one = folder(&[("db/1.0.0/a", "xy"), ("db/1.0.0/b", "z")]);
    let split_two = folder(&[("db/1.0.0/a", "x"), ("db/1.0.0/b", "yz")]);
    assert_ne!(
        version_dir(&split_one).checksum().expect("one"),
        version_dir(&split_two).checksum().expect("two")
    );
}

#[test]
fn the_checksum_of_a_known_folder() {
    // sha256 of "meta.json" NUL, 2 as 8 big-endian bytes, "{}".
    let temp = folder(&[("db/1.0.0/meta.json", "{}")]);
    let mut input = b"meta.json\0".to_vec();
    input.extend_from_slice(&2u64.to_be_bytes());
    input.extend_from_slice(b"{}");
    use sha2::Digest;
    let expect: String = sha2::Sha256::digest(&input)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(version_dir(&temp).checksum().expect("checksum"), expect);
}
