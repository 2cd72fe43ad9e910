//! `lockgate verify` as a process: exit 0 for equal tables, 3 with the differences
//! listed (text and `--json`), 2 for bad input with a one-line error.

use crate::{lockgate, text};

#[test]
fn verify_exits_0_when_equal_3_with_differences_and_2_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(10,2)); \
                  INSERT INTO t VALUES (1, 'one', 1.50), (2, 'two', 2.00), (3, 'three', NULL)";
    for db in [&a, &b] {
        let out = lockgate(&["exec", "--db", db, "--sql", schema], dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "verify",
            "--source",
            a.as_str(),
            "--source-table",
            "t",
            "--dest",
            b.as_str(),
        ];
        v.extend_from_slice(extra);
        v
    };
    let out = lockgate(&args(&[]), dir.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("equal: 3 source rows, 3 destination rows, key id"),
        "{}",
        text(&out.stdout)
    );

    let change = "UPDATE t SET name = 'TWO' WHERE id = 2; DELETE FROM t WHERE id = 3";
    let out = lockgate(&["exec", "--db", &b, "--sql", change], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lockgate(&args(&[]), dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("only in the source: 1\n  id = 3\n"), "{shown}");
    assert!(
        shown.contains("differing: 1\n  id = 2: name: \"two\" / \"TWO\"\n"),
        "{shown}"
    );
    let out = lockgate(&args(&["--json"]), dir.path());
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["equal"], false);
    assert_eq!(doc["only_in_source"], serde_json::json!([3]));
    assert_eq!(doc["differing"][0]["columns"][0]["column"], "name");

    let out = lockgate(&args(&["--exclude-columns", "nope"]), dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("nope") && err.lines().count() == 1,
        "{err}"
    );
}
