//! `lockgate baseline` through the binary, on the sample `examples/db` folder in
//! SQLite: the text a person reads, `--prune` refused without `--yes` (exit 2, the
//! folders listed, nothing written), the `--json` document, and a new deployment
//! that starts at the baseline.

use super::{examples, lockgate, text};
use std::path::Path;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn baseline_prunes_only_with_yes_and_a_new_deployment_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("db");
    copy(&examples().join("db"), &folder);
    let folder = folder.display().to_string();
    let db = dir.path().join("prod.db").display().to_string();
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = lockgate(&["baseline", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.starts_with(&format!(
            "wrote baseline 2.0.0 to {folder}/2.0.0 (in place of the version folder the database applied)\n"
        )),
        "{report}"
    );
    assert!(
        report.contains("  stands for versions 1.0.0, 1.1.0, 2.0.0\n"),
        "{report}"
    );

    let fresh = dir.path().join("fresh.db").display().to_string();
    let out = lockgate(&["migrate", "--db", &fresh, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("version 1.0.0: skipped: baseline\n"), "{report}");
    assert!(report.contains("version 2.0.0: applied\n"), "{report}");

    // --prune without --yes: the list, exit 2, nothing removed.
    let out = lockgate(
        &["baseline", "--db", &db, "--dir", &folder, "--force", "--prune"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("--prune would remove:\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("run again with --yes"),
        "{}",
        text(&out.stderr)
    );
    assert!(Path::new(&folder).join("1.0.0").is_dir());

    let out = lockgate(
        &[
            "baseline", "--db", &db, "--dir", &folder, "--force", "--prune", "--yes", "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(r["rewritten"], true);
    assert_eq!(r["pruned"].as_array().unwrap().len(), 2, "{r}");
    assert!(!Path::new(&folder).join("1.0.0").exists());

    // The original database: nothing to do, no drift.
    let out = lockgate(&["validate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));

    // No version and no --version: exit 2, as JSON too.
    let out = lockgate(
        &[
            "baseline", "--db", &fresh, "--dir", &folder, "--module", "other", "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(e["error"].as_str().unwrap().contains("--version"), "{e}");
}
