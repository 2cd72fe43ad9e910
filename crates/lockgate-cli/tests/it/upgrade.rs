//! `lockgate upgrade` as a process (issue 14, the part built so far): init, a
//! paused upgrade that a run leaves alone, resume, run to complete, status, and a
//! declaration error with its exit code.

use super::{lockgate, text};

#[test]
fn init_pause_resume_run_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = lockgate(
        &[
            "exec",
            "--db",
            "./a.db",
            "--sql",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, a INT, b INT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             INSERT INTO items SELECT i, i, NULL FROM n;",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[upgrades.double]\ntable = \"items\"\nset = { b = \"a * 2\" }\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", "./a.db"]);
        lockgate(&all, dir.path())
    };
    let out = run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("lockgate upgrade init --table items"),
        "{}",
        text(&out.stderr)
    );
    assert!(run(&["init", "--table", "items"]).status.success());
    assert!(run(&["pause", "double"]).status.success());
    let out = run(&["run", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["upgrades"][0]["state"], "paused", "{doc}");
    assert_eq!(doc["upgrades"][0]["upgraded"], 0);
    assert!(run(&["resume", "double"]).status.success());
    let out = run(&["run", "--json", "--batch-size", "1000"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["upgrades"][0]["state"], "complete", "{doc}");
    assert_eq!(doc["upgrades"][0]["upgraded"], 3000);
    let out = run(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["upgrades"][0]["remaining"], 0, "{doc}");
    assert_eq!(doc["upgrades"][0]["rows_done"], 3000, "{doc}");
    let out = run(&["cancel", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
