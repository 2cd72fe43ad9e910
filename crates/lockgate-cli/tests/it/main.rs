//! The `lockgate` binary end to end: exit codes, one-line errors without passwords,
//! `--json` documents, the text a person reads (snapshots), and transfers as processes
//! (killed, paused past their lease, stopped by SIGTERM, run at once), and the table
//! lock between processes.

mod baseline;
mod durations;
mod merge;
mod migrate;
mod names;
mod serve;
mod snapshot;
mod table_lock;
mod transfer;
mod upgrade;
mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lockgate(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the binary runs")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An SQLite database with the example customers table, in a temp dir.
fn sqlite_with_customers() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db").display().to_string();
    let schema = examples().join("customers.sqlite.sql").display().to_string();
    let out = lockgate(&["exec", "--db", &db, "--file", &schema], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    (dir, db)
}

#[test]
fn exit_codes_follow_the_design() {
    let (dir, db) = sqlite_with_customers();
    let good = examples().join("customers.csv").display().to_string();
    let bad = examples().join("customers_bad.csv").display().to_string();

    // 3: row errors, everything rolled back.
    let out = lockgate(&["load", "--db", &db, "--table", "customers", &bad], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("nothing was kept"));

    // 0: loaded.
    let out = lockgate(
        &["load", "--db", &db, "--table", "customers", &good, "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["inserted"], 500);
    assert_eq!(report["committed"], true);

    // 2: bad input found before writing (an unknown table), and bad usage.
    let out = lockgate(&["load", "--db", &db, "--table", "nope", &good], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = lockgate(&["load", "--db", "oracle://x/y", "--table", "t", &good], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown database URL scheme"));

    // 0 with skip: the good rows kept, the bad ones reported.
    let out = lockgate(&["exec", "--db", &db, "--sql", "DELETE FROM customers"], dir.path());
    assert!(out.status.success());
    let out = lockgate(
        &[
            "load",
            "--db",
            &db,
            "--table",
            "customers",
            &bad,
            "--on-error",
            "skip",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["skipped"].as_u64(),
        Some(report["failed"].as_array().unwrap().len() as u64)
    );
}

#[test]
fn an_unreachable_server_is_one_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://someone:s3cret@127.0.0.1:1/db",
        "mysql://someone:s3cret@127.0.0.1:1/db",
    ] {
        let out = lockgate(&["inspect", "--db", url], dir.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{url}: {err}");
        assert!(
            !err.contains("s3cret") && err.contains("someone:***@127.0.0.1:1"),
            "{url}: {err}"
        );
    }
}

#[test]
fn bad_credentials_are_one_line_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = lockgate(
        &["inspect", "--db", "mysql://nobody_here:wrong@127.0.0.1:3306/test"],
        dir.path(),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("wrong@"), "{err}");
}

#[test]
fn named_connections_come_from_lockgate_toml() {
    let (dir, db) = sqlite_with_customers();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        format!("[connections.demo]\nurl = \"sqlite://{db}\"\n"),
    )
    .unwrap();
    let out = lockgate(&["inspect", "--db", "demo", "--table", "customers"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
    let out = lockgate(
        &["inspect", "--db", "demo", "--table", "customers", "--json"],
        dir.path(),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tables"][0]["primary_key"][0], "customer_id");
    std::fs::write(dir.path().join("lockgate.toml"), "[connections.demo]\nurll = 1\n").unwrap();
    let out = lockgate(&["inspect", "--db", "demo"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("lockgate.toml:2"), "{}", text(&out.stderr));
}

#[test]
fn a_load_report_reads_well() {
    let (dir, db) = sqlite_with_customers();
    let body = "customer_id,first_name,last_name,email,acquisition_date,lifetime_value\n1,Ann,Lee,a@x,2026-01-01,10\n2,,Ray,b@x,2026-01-02,5\n1,Dup,Lee,c@x,2026-01-03,1\n3,Cy,Moe,c@x,someday,2\n4,Di,Kay,d@x,2026-01-04,-1\n";
    std::fs::write(dir.path().join("mixed.csv"), body).unwrap();
    let out = lockgate(&["load", "--db", &db, "--table", "customers", "mixed.csv"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    // The timing line varies; the rest is the report a person reads.
    let shown: String = text(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().ends_with(|c: char| c.is_ascii_digit()) || !l.contains(" s, run "))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(shown);
}

/// Two failing records of a one-line JSON array read apart: each says its record
/// number after the line they share.
#[test]
fn records_that_share_a_line_are_told_apart() {
    let (dir, db) = sqlite_with_customers();
    let body = r#"[{"customer_id": 1, "first_name": "Ann", "last_name": "Lee", "email": "a@x", "acquisition_date": "2026-01-01"}, {"customer_id": 2, "first_name": null, "last_name": "Ray", "email": "b@x", "acquisition_date": "2026-01-02"}, {"customer_id": 3, "first_name": null, "last_name": "Moe", "email": "c@x", "acquisition_date": "2026-01-03"}]"#;
    std::fs::write(dir.path().join("one.json"), body).unwrap();
    let out = lockgate(&["load", "--db", &db, "--table", "customers", "one.json"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let failures: Vec<&str> = shown.lines().filter(|l| l.contains("column first_name")).collect();
    assert_eq!(failures.len(), 2, "{shown}");
    assert!(
        failures[0]
            .trim_start()
            .starts_with("one.json:1 (record 2): row customer_id=2: column first_name: "),
        "{shown}"
    );
    assert!(
        failures[1]
            .trim_start()
            .starts_with("one.json:1 (record 3): row customer_id=3: column first_name: "),
        "{shown}"
    );
}
