//! Names that point at the wrong database: a bare word that names no connection in
//! lockgate.toml is an error listing the connections (never a new SQLite file), and
//! the commands that only read (`status`, `log`, `inspect`, `dump`, `transfer
//! check/list/show/history`) create neither a database nor Lockgate's tables.

use super::{examples, lockgate, text};
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;
use std::path::Path;

/// The names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every command that takes a database, with `db` where the database goes.
fn every_command(db: &str) -> Vec<Vec<String>> {
    let cmds: Vec<Vec<&str>> = vec![
        vec!["status", "--db", db],
        vec!["log", "--db", db],
        vec!["inspect", "--db", db],
        vec!["dump", "--db", db, "--all", "--out", "out"],
        vec!["load", "--db", db, "--table", "t", "rows.csv"],
        vec!["migrate", "--db", db, "--dir", "db"],
        vec!["rollback", "--db", db, "--to", "1.0.0"],
        vec!["exec", "--db", db, "--sql", "SELECT 1"],
        vec!["transfer", "list", "--dest", db],
        vec!["transfer", "show", "1", "--dest", db],
        vec!["transfer", "history", "--key", "1", "--dest", db],
        vec![
            "transfer",
            "check",
            "t",
            "--source",
            db,
            "--source-table",
            "t",
            "--dest",
            "ok.db",
        ],
        vec![
            "transfer",
            "create",
            "t",
            "--source",
            "ok.db",
            "--source-table",
            "t",
            "--dest",
            db,
        ],
        vec![
            "transfer",
            "run",
            "t",
            "--source",
            "ok.db",
            "--source-table",
            "t",
            "--dest",
            db,
        ],
    ];
    cmds.into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}

fn run(args: &[String], dir: &Path) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lockgate(&args, dir)
}

#[test]
fn a_mistyped_connection_name_is_an_error_listing_the_connections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[connections.prod]\nurl = \"sqlite://prod.db\"\n[connections.staging]\nurl = \"sqlite://staging.db\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rows.csv"), "a\n1\n").unwrap();
    let before = entries(dir.path());
    for args in every_command("prdo") {
        let out = run(&args, dir.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("\"prdo\" is not a connection name")
                && err.contains("connections in lockgate.toml: prod, staging")
                && err.contains("./prdo"),
            "{args:?}: {err}"
        );
        assert_eq!(entries(dir.path()), before, "{args:?} created a file");
    }

    // Without lockgate.toml there are no names to list, and the message says so.
    let bare = tempfile::tempdir().unwrap();
    let out = lockgate(&["status", "--db", "prdo"], bare.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no lockgate.toml was read"),
        "{}",
        text(&out.stderr)
    );
    assert!(entries(bare.path()).is_empty());

    // A file of that name is not taken silently either: the message says how to use it.
    std::fs::write(bare.path().join("prdo"), "").unwrap();
    let out = lockgate(&["inspect", "--db", "prdo"], bare.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a file named prdo exists here: to use it, write ./prdo"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::metadata(bare.path().join("prdo")).unwrap().len(), 0);

    // DATABASE_URL follows the same rule.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .args(["status"])
        .env("DATABASE_URL", "prdo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(entries(dir.path()), before);

    // The connection names themselves, paths and sqlite:// URLs still work.
    for db in ["prod", "./fresh", "fresh.sqlite", "sqlite://other"] {
        let out = lockgate(&["exec", "--db", db, "--sql", "CREATE TABLE t (a int)"], dir.path());
        assert!(out.status.success(), "{db}: {}", text(&out.stderr));
    }
    for file in ["prod.db", "fresh", "fresh.sqlite", "other"] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
}

#[test]
fn read_only_commands_never_create_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.db").display().to_string();
    let out = lockgate(
        &["exec", "--db", &ok, "--sql", "CREATE TABLE t (a int PRIMARY KEY)"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read_only = ["status", "log", "inspect", "dump", "list", "show", "history", "check"];
    for db in ["./missing.db", "sqlite://missing.db", "sub/missing.sqlite"] {
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        for args in every_command(db) {
            let verb = if args[0] == "transfer" { &args[1] } else { &args[0] };
            if !read_only.contains(&verb.as_str()) {
                continue;
            }
            let out = run(&args, dir.path());
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("there is no SQLite database at") && err.contains("missing."),
                "{args:?}: {err}"
            );
            assert!(!dir.path().join("missing.db").exists(), "{args:?} created it");
            assert!(!dir.path().join("sub/missing.sqlite").exists(), "{args:?} created it");
            assert!(!dir.path().join("out").exists(), "{args:?} wrote a dump");
        }
    }
    // A command that writes data creates the file it is given.
    let out = lockgate(
        &["exec", "--db", "./missing.db", "--sql", "CREATE TABLE t (a int)"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("missing.db").is_file());
}

/// The tables of `db`, as `inspect --json` lists them.
fn table_names(db: &str, dir: &Path) -> Vec<String> {
    let out = lockgate(&["inspect", "--db", db, "--json"], dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn read_only_commands_create_no_ledger_on_any_engine() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE t (id int PRIMARY KEY, name varchar(20))")
            .await
            .unwrap();
        let url = db.url.as_str().to_string();
        let dir = tempfile::tempdir().unwrap();
        let folder = examples().join("db").display().to_string();
        let runs: Vec<(Vec<&str>, i32)> = vec![
            (vec!["status", "--db", &url], 0),
            (vec!["status", "--db", &url, "--dir", &folder, "--json"], 0),
            (vec!["log", "--db", &url], 0),
            (vec!["inspect", "--db", &url], 0),
            (vec!["dump", "--db", &url, "--tables", "t", "--out", "dumped"], 0),
            (vec!["transfer", "list", "--dest", &url], 0),
            (vec!["transfer", "show", "1", "--dest", &url], 2),
            (vec!["transfer", "history", "--key", "1", "--dest", &url], 0),
            (
                vec![
                    "transfer",
                    "check",
                    "t",
                    "--source",
                    &url,
                    "--source-table",
                    "t",
                    "--dest",
                    &url,
                ],
                0,
            ),
        ];
        for (args, code) in runs {
            let out = lockgate(&args, dir.path());
            assert_eq!(
                out.status.code(),
                Some(code),
                "{engine} {args:?}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            if args[0] == "status" && args.contains(&"--json") {
                // Every folder version is pending: the database has never migrated.
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert!(doc["current_version"].is_null());
                assert_eq!(doc["pending"].as_array().unwrap().len(), 3, "{doc}");
            }
            assert_eq!(table_names(&url, dir.path()), ["t"], "{engine} {args:?} created tables");
        }
        // A command that writes (here exec) is what creates the ledger: a load does.
        std::fs::write(dir.path().join("t.csv"), "id,name\n1,a\n").unwrap();
        let out = lockgate(&["load", "--db", &url, "--table", "t", "t.csv"], dir.path());
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        assert!(table_names(&url, dir.path()).contains(&"lockgate_runs".to_string()));
        // Once there, the readers read it.
        let out = lockgate(&["status", "--db", &url], dir.path());
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
    }
}
