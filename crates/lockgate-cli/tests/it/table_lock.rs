//! The table lock across processes, on each engine: while a `lockgate migrate`
//! process writes a table (paused in a process script), a `lockgate load` and a
//! `lockgate transfer run` in a key mode wait their `--lock-timeout`, then exit 1
//! naming the migrate, with nothing changed; after it, both go ahead.

use super::{lockgate, text};
use lockgate_core::Value;
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE customers (customer_id bigint PRIMARY KEY, name varchar(50) NOT NULL)";

async fn count(conn: &mut Conn) -> i64 {
    match &conn.query("SELECT COUNT(*) FROM customers", &[], None).await.unwrap()[0][0] {
        Value::Int(n) => *n,
        other => other.to_string().parse().unwrap(),
    }
}

fn both(out: &Output) -> String {
    format!("stdout:\n{}stderr:\n{}", text(&out.stdout), text(&out.stderr))
}

/// Asserts a lock timeout on the customers table naming the migrate, after waiting.
fn assert_waited_for_migrate(engine: Engine, what: &str, out: &Output, started: Instant) {
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{engine} {what}: {}", both(out));
    let err = text(&out.stderr);
    assert!(
        // The lock names the table as the catalog resolves it: `table:<schema>.customers`.
        err.contains("table:") && err.contains(".customers") && err.contains("lockgate migrate"),
        "{engine} {what}: {err}"
    );
    assert!(waited >= Duration::from_millis(500), "{engine} {what}: {waited:?}");
    assert!(waited < Duration::from_secs(20), "{engine} {what}: {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_and_a_transfer_run_wait_for_a_migrate_process_writing_the_table() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let dst = TestDb::new(engine).await;
        dst.conn().await.batch(SCHEMA).await.unwrap();
        let src = TestDb::new(Engine::Sqlite).await;
        let mut s = src.conn().await;
        s.batch(SCHEMA).await.unwrap();
        s.batch("INSERT INTO customers VALUES (11, 'a'), (12, 'b')")
            .await
            .unwrap();
        drop(s);

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let started_file = dir.path().join("started");
        std::fs::create_dir_all(root.join("1.0.0/default")).unwrap();
        std::fs::write(
            root.join("1.0.0/meta.json"),
            r#"{"contexts": {"/default": {"tenantId": "/default"}}, "files": [
                {"model": "customers", "file": "default/customers.json", "ctxId": "/default"},
                {"file": "default/pause.sh"}]}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("1.0.0/default/customers.json"),
            r#"[{"customer_id": 2, "name": "Bo"}]"#,
        )
        .unwrap();
        std::fs::write(
            root.join("1.0.0/default/pause.sh"),
            format!("touch '{}'\nsleep 5\n", started_file.display()),
        )
        .unwrap();
        let csv = dir.path().join("c.csv");
        std::fs::write(&csv, "customer_id,name\n1,Ann\n").unwrap();
        let url = dst.url.as_str().to_string();
        let transfer = |head: &[&str], tail: &[&str]| -> Vec<String> {
            let flags = [
                "--source",
                src.url.as_str(),
                "--source-table",
                "customers",
                "--dest",
                &url,
                "--key",
                "customer_id",
                "--mode",
                "upsert",
            ];
            head.iter()
                .chain(flags.iter())
                .chain(tail.iter())
                .map(|s| s.to_string())
                .collect()
        };
        let run = |args: Vec<String>| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            lockgate(&args, dir.path())
        };
        let out = run(transfer(&["transfer", "create", "customers"], &[]));
        assert_eq!(out.status.code(), Some(0), "{engine}: {}", both(&out));

        let root_arg = root.display().to_string();
        let mut migrate = Command::new(env!("CARGO_BIN_EXE_lockgate"))
            .args(["migrate", "--db", &url, "--dir", &root_arg, "--script-timeout", "60"])
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !started_file.exists() {
            if let Some(status) = migrate.try_wait().unwrap() {
                let out = migrate.wait_with_output().unwrap();
                panic!("{engine}: migrate ended before its script ({status}): {}", both(&out));
            }
            assert!(
                Instant::now() < deadline,
                "{engine}: the migrate's script never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let started = Instant::now();
        let csv_arg = csv.display().to_string();
        let out = lockgate(
            &[
                "load",
                "--db",
                &url,
                "--table",
                "customers",
                "--mode",
                "upsert",
                "--lock-timeout",
                "0.5",
                &csv_arg,
            ],
            dir.path(),
        );
        assert_waited_for_migrate(engine, "load", &out, started);

        let started = Instant::now();
        let out = run(transfer(&["transfer", "run", "customers"], &["--lock-timeout", "0.5"]));
        assert_waited_for_migrate(engine, "transfer run", &out, started);
        assert!(
            migrate.try_wait().unwrap().is_none(),
            "{engine}: the migrate still runs"
        );
        // Only the migrate's own row so far.
        assert_eq!(count(&mut dst.conn().await).await, 1, "{engine}");

        let out = tokio::task::spawn_blocking(move || migrate.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{engine} migrate: {}", both(&out));
        let out = lockgate(
            &[
                "load",
                "--db",
                &url,
                "--table",
                "customers",
                "--mode",
                "upsert",
                &csv_arg,
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{engine} load: {}", both(&out));
        let out = run(transfer(&["transfer", "run", "customers"], &[]));
        assert_eq!(out.status.code(), Some(0), "{engine} transfer run: {}", both(&out));
        assert_eq!(count(&mut dst.conn().await).await, 4, "{engine}");
    }
}
