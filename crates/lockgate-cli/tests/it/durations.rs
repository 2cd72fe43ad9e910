//! Duration flags (`--lock-timeout`, `--script-timeout`, `--lease`, `--poll`): each
//! takes seconds or a number with a unit (`30s`, `5m`), and anything else is a
//! clear usage error (exit 2), never a panic.

use super::{examples, lockgate, sqlite_with_customers, text};

#[test]
fn every_duration_flag_refuses_what_is_not_a_duration() {
    let (dir, db) = sqlite_with_customers();
    let csv = examples().join("customers.csv").display().to_string();
    let folder = examples().join("db").display().to_string();
    let flags: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["load", "--db", &db, "--table", "customers", &csv],
            "--lock-timeout",
        ),
        (vec!["migrate", "--db", &db, "--dir", &folder], "--lock-timeout"),
        (vec!["migrate", "--db", &db, "--dir", &folder], "--script-timeout"),
        (vec!["rollback", "--db", &db, "--to", "1.0.0"], "--lock-timeout"),
        (vec!["transfer", "run", "t", "--source", &db, "--dest", &db], "--lease"),
        (
            vec!["transfer", "create", "t", "--source", &db, "--dest", &db],
            "--lock-timeout",
        ),
        (vec!["worker", "t", "--source", &db, "--dest", &db], "--lease"),
        (vec!["worker", "t", "--source", &db, "--dest", &db], "--poll"),
    ];
    for (command, flag) in &flags {
        for bad in ["inf", "1e20", "-1", "NaN", "5 minutes", "1d", "8000h", ""] {
            // `--flag=-1`: written apart, clap would take `-1` for a flag of its own.
            let pair = format!("{flag}={bad}");
            let mut args = command.clone();
            args.push(&pair);
            let out = lockgate(&args, dir.path());
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(flag) && err.contains("is not a duration") && err.contains("30s, 5m"),
                "{args:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{args:?}: {err}");
        }
    }
    // Nothing above wrote: the table is as the schema left it.
    let out = lockgate(&["log", "--db", &db], dir.path());
    assert_eq!(text(&out.stdout), "no log entries match\n");
}

#[test]
fn durations_take_seconds_or_a_unit() {
    let (dir, db) = sqlite_with_customers();
    let csv = examples().join("customers.csv").display().to_string();
    for (i, timeout) in ["30", "2.5", "30s", "5m", "1h", "500ms", "0"].iter().enumerate() {
        let out = lockgate(
            &[
                "load",
                "--db",
                &db,
                "--table",
                "customers",
                &csv,
                "--mode",
                "upsert",
                "--lock-timeout",
                timeout,
                "--json",
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{timeout}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let inserted = if i == 0 { 500 } else { 0 };
        assert_eq!(report["inserted"], inserted, "{timeout}");
    }
    let folder = examples().join("db").display().to_string();
    let fresh = dir.path().join("fresh.db").display().to_string();
    let out = lockgate(
        &[
            "migrate",
            "--db",
            &fresh,
            "--dir",
            &folder,
            "--script-timeout",
            "1m",
            "--lock-timeout",
            "90s",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A lease shorter than a second is refused by its own bound, with both values.
    let out = lockgate(
        &[
            "transfer",
            "run",
            "t",
            "--source",
            &db,
            "--source-table",
            "customers",
            "--dest",
            &db,
            "--lease",
            "500ms",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--lease must be at least 1s, not 500ms"),
        "{}",
        text(&out.stderr)
    );
}
