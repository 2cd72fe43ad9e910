//! `lockgate snapshot`, `restore` and `profile` as processes: a snapshot killed with
//! SIGKILL while it writes is never listed nor restorable (its manifest, written
//! last, does not exist), the next one works; exit codes and `--json` documents of
//! the commands; an unknown profile is exit 2.

use super::{lockgate, text};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// An SQLite database with `rows` rows in `big`, made by SQLite itself.
fn big_db(dir: &Path, rows: u32) -> String {
    let db = dir.join("big.db").display().to_string();
    let sql = format!(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         INSERT INTO big SELECT i, 'name ' || i, hex(randomblob(40)) FROM n;"
    );
    let out = lockgate(&["exec", "--db", &db, "--sql", &sql], dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    db
}

fn files_under(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_snapshot_killed_while_it_writes_is_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = big_db(dir.path(), 400_000);
    let out = lockgate(&["profile", "create", "big", "--store", "store"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .args(["snapshot", "create", "--db", &db, "--profile", "big"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    // Kill it once it has started writing into the store (or at the latest after a
    // few seconds: it must not finish first).
    let started = Instant::now();
    while files_under(&dir.path().join("store")) == 0 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let finished_first = child.try_wait().unwrap().is_some();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    assert!(
        !finished_first,
        "the snapshot finished before it could be killed: make the table larger"
    );
    let out = lockgate(&["snapshot", "list", "--profile", "big", "--json"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["snapshots"], serde_json::json!([]), "{doc}");
    let out = lockgate(&["restore", "--profile", "big", "--into", "./copy.db"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("has no snapshots"), "{}", text(&out.stderr));

    // The next snapshot works and restores.
    let out = lockgate(
        &["snapshot", "create", "--db", &db, "--profile", "big", "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["tables"][0]["rows"], 400_000);
    let out = lockgate(
        &["restore", "--profile", "big", "--into", "./copy.db", "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restored["id"], made["id"]);
    assert_eq!(restored["tables"][0]["rows"], 400_000);
}

#[test]
fn commands_give_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = big_db(dir.path(), 10);
    let out = lockgate(&["snapshot", "create", "--db", &db, "--profile", "nope"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unknown profile \"nope\""),
        "{}",
        text(&out.stderr)
    );
    let out = lockgate(&["profile", "create", "p1", "--store", "store"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("db/profiles/p1.toml").exists());
    let out = lockgate(&["profile", "create", "p1"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = lockgate(
        &[
            "snapshot",
            "create",
            "--db",
            &db,
            "--profile",
            "p1",
            "--where",
            "big:id <= 5",
            "--pin",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pinned in"), "{}", text(&out.stdout));
    let out = lockgate(
        &["snapshot", "create", "--db", &db, "--profile", "p1", "--where", "big"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = lockgate(&["profile", "list", "--json"], dir.path());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["profiles"][0]["profile"], "p1");
    assert_eq!(doc["profiles"][0]["snapshots"], 1);
    let out = lockgate(&["restore", "--profile", "p1", "--into", "./five.db"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("5 rows"), "{}", text(&out.stdout));
    let out = lockgate(
        &["snapshot", "show", "20200101T000000Z-000000", "--profile", "p1"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = lockgate(&["snapshot", "prune", "--profile", "p1"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // The pinned snapshot is not deleted without --force.
    let pinned = doc["profiles"][0]["pinned"].as_str().unwrap().to_string();
    let out = lockgate(&["snapshot", "delete", &pinned, "--profile", "p1"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("pins"), "{}", text(&out.stderr));
    let out = lockgate(
        &["snapshot", "delete", &pinned, "--profile", "p1", "--force"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
