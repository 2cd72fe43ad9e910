//! The migration commands through the binary, on the sample `examples/db` folder in
//! SQLite: what a person reads (snapshots), `--json` documents and exit codes; and
//! what `dump` reports about tables without a key and JSON nulls, on every engine.

use super::{examples, lockgate, text};
use std::path::Path;

/// Copies `examples/db` into `dir` so that tests may change it.
fn sample_db_folder(dir: &Path) -> String {
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
    let to = dir.join("db");
    copy(&examples().join("db"), &to);
    to.display().to_string()
}

/// The report without its last line (wall time and run id).
fn without_timing(s: &str) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    let last = lines.pop().unwrap_or_default();
    assert!(last.ends_with(" s") || last.contains(" s, run "), "timing line: {last}");
    lines.join("\n") + "\n"
}

#[test]
fn migrate_status_log_rollback_read_well() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db").display().to_string();
    let folder = sample_db_folder(dir.path());

    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--dry-run"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("migrate_dry_run", without_timing(&text(&out.stdout)));

    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("migrate_applied", without_timing(&text(&out.stdout)));

    // Nothing pending: oe-migration's callback values say so.
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["old_version"], "2.0.0");
    assert_eq!(r["migrated_versions"], serde_json::Value::Null);
    assert!(r["warnings"].as_array().unwrap().is_empty());

    let out = lockgate(&["status", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["current_version"], "2.0.0");
    assert_eq!(s["pending"], serde_json::json!([]));
    assert_eq!(s["changed"], serde_json::json!([]));

    // A version added below the current one is never applied by migrate: status says so.
    std::fs::create_dir(Path::new(&folder).join("1.5.0")).unwrap();
    std::fs::write(Path::new(&folder).join("1.5.0/meta.json"), "{}").unwrap();
    let out = lockgate(&["status", "--db", &db, "--dir", &folder, "--json"], dir.path());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["skipped"], serde_json::json!(["1.5.0"]));
    assert_eq!(s["pending"], serde_json::json!([]));
    std::fs::remove_dir_all(Path::new(&folder).join("1.5.0")).unwrap();

    // A changed file shows in status.
    std::fs::write(
        Path::new(&folder).join("1.1.0/default/credit.json"),
        r#"[{"code": "C002", "credit_limit": 501}]"#,
    )
    .unwrap();
    let out = lockgate(&["status", "--db", &db, "--dir", &folder], dir.path());
    let shown = text(&out.stdout);
    assert!(
        shown.contains("1.1.0 applied") && shown.contains("files changed since applied"),
        "{shown}"
    );

    let out = lockgate(
        &["log", "--db", &db, "--type", "INFO", "--table", "currency", "--json"],
        dir.path(),
    );
    let logs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(
        logs[0]["message"],
        serde_json::json!({"message": {"total": 3, "success": 3, "failed": 0}})
    );

    // Version 2.0.0 ran a SQL script whose changes were all recorded: rolling back
    // across it needs no --ignore-scripts and leaves nothing of it behind. The row
    // the script changed is 2.0.0's state, not a conflict; a row someone changed
    // since is one, and stops the rollback (exit 4).
    let out = lockgate(&["rollback", "--db", &db, "--to", "1.0.0", "--dry-run"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("warning: script"), "{}", text(&out.stdout));
    let out = lockgate(
        &[
            "rollback",
            "--db",
            &db,
            "--to",
            "1.0.0",
            "--ignore-scripts",
            "--dry-run",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("rollback_dry_run_across_sql_script", text(&out.stdout));
    let out = lockgate(
        &[
            "exec",
            "--db",
            &db,
            "--sql",
            "UPDATE customer SET city = 'Lima' WHERE code = 'C002' AND tenant_id = '/default'",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lockgate(
        &["rollback", "--db", &db, "--to", "1.0.0", "--ignore-scripts"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    insta::assert_snapshot!("rollback_conflict", text(&out.stdout));
    let out = lockgate(
        &[
            "rollback",
            "--db",
            &db,
            "--to",
            "1.0.0",
            "--ignore-scripts",
            "--overwrite",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = lockgate(&["status", "--db", &db, "--json"], dir.path());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["current_version"], "1.0.0");

    // Nothing left to roll back: exit 0, as migrate with nothing pending.
    let out = lockgate(&["rollback", "--db", &db, "--to", "1.0.0"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "nothing to roll back: module ./ is at 1.0.0\n");
}

#[test]
fn dump_then_migrate_the_zip_into_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db").display().to_string();
    let folder = sample_db_folder(dir.path());
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let zip = dir.path().join("dump.zip").display().to_string();
    let out = lockgate(
        &[
            "dump",
            "--db",
            &db,
            "--all",
            "--exclude-system",
            "--out",
            &zip,
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The next version after the database's 2.0.0, so that migrate applies it.
    assert_eq!(d["version"], "2.0.1");

    // The zip limits are the user's to set: too many entries for the limit is refused.
    let fresh = dir.path().join("b.db").display().to_string();
    let out = lockgate(
        &["migrate", "--db", &fresh, "--zip", &zip, "--zip-max-entries", "2"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("entries"), "{}", text(&out.stderr));

    let out = lockgate(&["migrate", "--db", &fresh, "--zip", &zip, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["migrated_versions"], serde_json::json!(["2.0.1"]));
    let read = |db: &str| {
        let out = lockgate(&["inspect", "--db", db, "--table", "customer", "--json"], dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // Same columns, types and key in the new database.
    assert_eq!(read(&db), read(&fresh));

    // A table that does not exist is an error naming it.
    let out = lockgate(
        &[
            "dump",
            "--db",
            &db,
            "--tables",
            "customer,nope",
            "--out",
            &dir.path().join("x").display().to_string(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"nope\""), "{}", text(&out.stderr));
}

#[test]
fn bad_migrate_input_exits_2_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db").display().to_string();
    let folder = sample_db_folder(dir.path());
    std::fs::create_dir(Path::new(&folder).join("4.0")).unwrap();
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("4.0") && err.contains("not a valid semver"), "{err}");
    let out = lockgate(&["migrate", "--db", &db, "--dir", "no/such/db"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/db"), "{}", text(&out.stderr));
}

/// The stdout of a `--json` run as JSON (it must be one document).
fn doc(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {:?} / {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn json_gets_a_document_for_every_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db").display().to_string();
    let folder = sample_db_folder(dir.path());
    let error = |args: &[&str], code: i32| {
        let out = lockgate(args, dir.path());
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        let d = doc(&out);
        assert_eq!(d["exit_code"], code, "{args:?}: {d}");
        let message = d["error"].as_str().unwrap_or_default().to_string();
        assert!(!message.is_empty(), "{args:?}: {d}");
        // The one-line error for people is still on stderr.
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{args:?}: {}",
            text(&out.stderr)
        );
        message
    };
    // 2: bad input, before anything is written.
    let m = error(&["migrate", "--db", &db, "--dir", "no/such/db", "--json"], 2);
    assert!(m.contains("no/such/db"), "{m}");
    let m = error(
        &[
            "migrate", "--db", &db, "--dir", &folder, "--from", "2.0.0", "--to", "1.0.0", "--json",
        ],
        2,
    );
    assert!(m.contains("--from 2.0.0 is later than --to 1.0.0"), "{m}");
    // A usage error clap finds is one too.
    let m = error(
        &["migrate", "--db", &db, "--dir", &folder, "--from", "one", "--json"],
        2,
    );
    assert!(m.contains("--from"), "{m}");
    let m = error(&["log", "--db", &db, "--type", "BOGUS", "--json"], 2);
    assert!(m.contains("BOGUS") && m.contains("INFO, WARN or ERROR"), "{m}");
    let out = lockgate(&["log", "--db", &db, "--type", "BOGUS"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // A read-only command never creates the database it is pointed at.
    let m = error(&["dump", "--db", &db, "--tables", "nope", "--out", "x", "--json"], 2);
    assert!(m.contains("no SQLite database"), "{m}");
    // 1: the server is not there.
    let m = error(&["status", "--db", "postgres://someone@127.0.0.1:1/x", "--json"], 1);
    assert!(m.contains("127.0.0.1:1"), "{m}");
    error(
        &[
            "rollback",
            "--db",
            "mysql://someone@127.0.0.1:1/x",
            "--to",
            "1.0.0",
            "--json",
        ],
        1,
    );

    // 0 and 3: reports.
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(doc(&out)["new_version"], "2.0.0");
    let m = error(&["dump", "--db", &db, "--tables", "nope", "--out", "x", "--json"], 2);
    assert!(m.contains("nope"), "{m}");
    let out = lockgate(&["rollback", "--db", &db, "--to", "2.0.0", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(doc(&out)["versions"], serde_json::json!([]));
    // (The sample's retire.sql is fully recorded, so a rollback across it needs no
    // --ignore-scripts any more; the library's exit 2 is the dump above.)
    let out = lockgate(
        &["rollback", "--db", &db, "--to", "1.0.0", "--dry-run", "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(doc(&out)["scripts_not_undone"], serde_json::json!([]));
    let out = lockgate(&["log", "--db", &db, "--type", "info,warn", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(doc(&out).as_array().is_some_and(|a| !a.is_empty()));
    std::fs::create_dir_all(Path::new(&folder).join("3.0.0/default")).unwrap();
    std::fs::write(
        Path::new(&folder).join("3.0.0/meta.json"),
        r#"{"contexts": {"/default": {"tenantId": "/default"}}, "files": [{"model": "Currency", "file": "default/c.json", "ctxId": "/default"}]}"#,
    )
    .unwrap();
    std::fs::write(
        Path::new(&folder).join("3.0.0/default/c.json"),
        r#"[{"code": "XYZ", "name": "ok"}, {"code": "TOOLONG", "name": "bad"}]"#,
    )
    .unwrap();
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(doc(&out)["failed_version"], "3.0.0");
}

#[test]
fn drift_is_warned_and_validate_and_status_strict_fail_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db").display().to_string();
    let folder = sample_db_folder(dir.path());
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = lockgate(&["validate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("valid: module ./ at 2.0.0 matches {folder}\n")
    );
    let out = lockgate(&["status", "--db", &db, "--dir", &folder, "--strict"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // An applied version's file edited, and a version added below the current one.
    std::fs::write(
        Path::new(&folder).join("1.1.0/default/credit.json"),
        r#"[{"code": "C002", "credit_limit": 501}]"#,
    )
    .unwrap();
    std::fs::create_dir(Path::new(&folder).join("1.5.0")).unwrap();
    std::fs::write(Path::new(&folder).join("1.5.0/meta.json"), "{}").unwrap();

    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout).replace(&folder, "DB");
    insta::assert_snapshot!("migrate_with_drift", shown);
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    let w = doc(&out)["warnings"].clone();
    assert_eq!(w.as_array().map(Vec::len), Some(2), "{w}");

    // status notices and exits 0; --strict and validate exit 4.
    let out = lockgate(&["status", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = lockgate(
        &["status", "--db", &db, "--dir", &folder, "--strict", "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(doc(&out)["drift"].as_array().map(Vec::len), Some(2));
    let out = lockgate(&["validate", "--db", &db, "--dir", &folder], dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    insta::assert_snapshot!("validate_drift", text(&out.stdout).replace(&folder, "DB"));

    // A malformed meta.json: validate reads every one (exit 2).
    std::fs::write(Path::new(&folder).join("1.5.0/meta.json"), "{").unwrap();
    let out = lockgate(&["validate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(doc(&out)["error"].as_str().unwrap().contains("1.5.0"));
}

#[test]
fn the_tour_with_a_process_script_runs_from_a_relative_dir_without_the_shells_secrets() {
    // The README's tour (`--dir db`, relative) with a version that runs a shell script:
    // the script starts in its version folder and must still be found, and it must not
    // see what the shell that ran `lockgate` holds.
    let dir = tempfile::tempdir().unwrap();
    sample_db_folder(dir.path());
    let out_file = dir.path().join("note.out");
    std::fs::create_dir_all(dir.path().join("db/3.0.0/default")).unwrap();
    std::fs::write(
        dir.path().join("db/3.0.0/meta.json"),
        r#"{"files": [{"file": "default/note.sh"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("db/3.0.0/default/note.sh"),
        format!("{{ pwd; env; }} > '{}'\n", out_file.display()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .args(["migrate", "--db", "demo.db", "--dir", "db", "--json"])
        .current_dir(dir.path())
        .env("LOCKGATE_TOKEN", "shell-token-not-for-scripts-123456")
        .env("DATABASE_URL", "postgres://app:shell-db-secret@127.0.0.1:1/app")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["migrated_versions"],
        serde_json::json!(["1.0.0", "1.1.0", "2.0.0", "3.0.0"])
    );
    let seen = std::fs::read_to_string(&out_file).expect("the script ran");
    assert!(seen.lines().next().unwrap().ends_with("/db/3.0.0"), "{seen}");
    assert!(!seen.contains("shell-token-not-for-scripts"), "{seen}");
    assert!(!seen.contains("shell-db-secret"), "{seen}");
}

#[tokio::test]
async fn dump_names_keyless_tables_and_json_nulls_in_its_text_and_json_on_every_engine() {
    use lockgate_db::testing::TestDb;
    use lockgate_db::Engine;
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let json_type = if engine == Engine::Postgres { "jsonb" } else { "JSON" };
        {
            let mut conn = db.conn().await;
            conn.batch(&format!("CREATE TABLE event (kind varchar(20), payload {json_type})"))
                .await
                .unwrap();
            conn.batch("INSERT INTO event (kind, payload) VALUES ('a', 'null'), ('b', '{\"x\": 1}'), ('c', NULL)")
                .await
                .unwrap();
        }
        let url = db.url.as_str().to_string();
        let dir = tempfile::tempdir().unwrap();
        let out = lockgate(&["dump", "--db", &url, "--all", "--out", "text"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{engine}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(
                "  event -> default/event.json (3 rows; no primary key: loaded as inserts after clearTables empties it)\n"
            ),
            "{engine}: {stdout}"
        );
        assert!(
            stdout.contains("warning: table event, column payload: 1 row(s) hold the JSON value null (not SQL NULL)"),
            "{engine}: {stdout}"
        );
        let out = lockgate(&["dump", "--db", &url, "--all", "--out", "json", "--json"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{engine}: {}", text(&out.stderr));
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["tables"][0]["table"], "event", "{engine}: {d}");
        assert_eq!(d["tables"][0]["keyless"], true, "{engine}: {d}");
        let warnings = d["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{engine}: {d}");
        assert!(
            warnings[0].as_str().unwrap().contains("column payload: 1 row(s)"),
            "{engine}: {d}"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("json/1.0.0/meta.json")).unwrap()).unwrap();
        assert_eq!(meta["clearTables"], serde_json::json!(["event"]), "{engine}: {meta}");
    }
}

/// Versions 1.0.0 (creates `item`, one row), 2.0.0 (a data file that is not JSON on
/// its line 2) and 3.0.0 (good) in `dir/db`.
fn failing_second_version(dir: &Path) -> String {
    let db = dir.join("db");
    let put = |rel: &str, body: &str| {
        let path = db.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    put(
        "1.0.0/ddl/item.json",
        r#"{"name": "item", "properties": {"id": {"type": "integer", "id": true}, "name": {"type": "string", "max": 20}}}"#,
    );
    for (v, file, body) in [
        ("1.0.0", "a.json", "[{\"id\": 1, \"name\": \"a\"}]"),
        ("2.0.0", "b.json", "[\n{\"id\": 2, \"name\": \"b\",}\n]\n"),
        ("3.0.0", "c.json", "[{\"id\": 3, \"name\": \"c\"}]"),
    ] {
        put(
            &format!("{v}/meta.json"),
            &format!(r#"{{"files": [{{"model": "item", "file": "default/{file}"}}]}}"#),
        );
        put(&format!("{v}/default/{file}"), body);
    }
    db.display().to_string()
}

#[tokio::test]
async fn a_failing_version_after_applied_ones_names_them_in_the_error_text_and_json_on_every_engine() {
    use lockgate_db::testing::TestDb;
    use lockgate_db::Engine;
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let dir = tempfile::tempdir().unwrap();
        let folder = failing_second_version(dir.path());
        for json in [true, false] {
            let db = TestDb::new(engine).await;
            let url = db.url.as_str().to_string();
            let mut args = vec!["migrate", "--db", url.as_str(), "--dir", folder.as_str()];
            if json {
                args.push("--json");
            }
            let out = lockgate(&args, dir.path());
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{engine}: {err}");
            // The error names the bad file and what stays.
            assert!(
                err.starts_with("error: ") && err.contains("b.json:2:"),
                "{engine}: {err}"
            );
            assert!(
                err.contains("this run applied 1.0.0 before it; that version stays applied"),
                "{engine}: {err}"
            );
            if json {
                let d = doc(&out);
                assert_eq!(d["exit_code"], 2, "{engine}: {d}");
                assert_eq!(d["migrated_versions"], serde_json::json!(["1.0.0"]), "{engine}: {d}");
                assert!(
                    d["error"].as_str().unwrap().contains("applied 1.0.0 before it"),
                    "{engine}: {d}"
                );
            } else {
                assert!(out.stdout.is_empty(), "{engine}: {}", text(&out.stdout));
            }
            // As said: 1.0.0 is applied, 2.0.0 kept nothing, 3.0.0 did not run.
            let out = lockgate(&["status", "--db", &url, "--dir", &folder, "--json"], dir.path());
            let s = doc(&out);
            assert_eq!(s["current_version"], "1.0.0", "{engine}: {s}");
            let mut conn = db.conn().await;
            let ids = conn.query("SELECT id FROM item ORDER BY id", &[], None).await.unwrap();
            let ids: Vec<String> = ids.iter().map(|r| r[0].to_string()).collect();
            assert_eq!(ids, ["1"], "{engine}");
        }
    }
}

#[test]
fn a_failure_in_the_first_version_names_no_applied_versions() {
    let dir = tempfile::tempdir().unwrap();
    let folder = failing_second_version(dir.path());
    std::fs::write(Path::new(&folder).join("1.0.0/default/a.json"), "[\n{\"id\": 1,,}\n]\n").unwrap();
    let db = dir.path().join("f.db").display().to_string();
    let out = lockgate(&["migrate", "--db", &db, "--dir", &folder, "--json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let d = doc(&out);
    assert!(d.get("migrated_versions").is_none(), "{d}");
    assert!(!d["error"].as_str().unwrap().contains("before it"), "{d}");
}
