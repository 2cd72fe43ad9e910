//! `lockgate merge` through the binary: exit codes (0, 2 bad input, 4 conflicts or
//! rows changed since), `--json` documents (the preview's streamed changes included),
//! `refs`, `history`, `show`, `undo`, a definition from lockgate.toml, and a merge
//! killed with SIGKILL mid-statement on each engine: nothing is kept, its history
//! row reads `abandoned`, and no side table is left behind.

use super::transfer::Proc;
use super::{lockgate, text};
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, deleted INT NOT NULL DEFAULT 0);
CREATE TABLE users (id INT PRIMARY KEY, parent INT NOT NULL, username VARCHAR(50) NOT NULL, UNIQUE (parent, username),
  FOREIGN KEY (parent) REFERENCES customers (id));
CREATE TABLE jobs (id INT PRIMARY KEY, customer INT NOT NULL, client INT, FOREIGN KEY (customer) REFERENCES customers (id),
  FOREIGN KEY (client) REFERENCES users (id));
INSERT INTO customers VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 1);
INSERT INTO users VALUES (10, 1, 'bob'), (20, 2, 'bob'), (21, 2, 'zed'), (30, 3, 'kim');
INSERT INTO jobs VALUES (100, 1, 10), (101, 2, 20), (102, 2, 21), (103, 3, 30);
";

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", text(&out.stdout), text(&out.stderr)))
}

#[tokio::test]
async fn merge_commands_exit_codes_and_json_documents() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.conn().await.batch(SCHEMA).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.as_str().to_string();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--db", url.as_str()]);
        lockgate(&all, dir.path())
    };

    let out = run(&["merge", "refs", "--table", "customers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let refs = json(&out);
    let direct = refs.as_array().unwrap().iter().filter(|r| r["via"].is_null()).count();
    assert_eq!(direct, 2, "{refs:#}");
    // jobs.client follows its user unchanged: listed transitively.
    assert!(
        refs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["via"] == "users" && r["changes"] == false),
        "{refs:#}"
    );

    // A preview of a conflicting merge: every change streamed, conflicts listed, exit 4.
    let out = run(&[
        "merge",
        "--table",
        "customers",
        "--from",
        "2",
        "--into",
        "1",
        "--preview",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["status"], "preview");
    assert_eq!(doc["changes"].as_array().unwrap().len(), 4, "{doc:#}");
    assert_eq!(doc["conflicts"][0]["row"]["id"], 20, "{doc:#}");

    // Without --merge-conflicts the merge aborts (exit 4) naming the conflict.
    let out = run(&["merge", "--table", "customers", "--from", "2", "--into", "1"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stdout).contains("row [id=20] collides with [id=10]"),
        "{}",
        text(&out.stdout)
    );

    // Bad input: exit 2 and a one-line error naming the thing.
    for (args, expected) in [
        (
            vec!["merge", "--table", "nosuch", "--from", "2", "--into", "1"],
            "nosuch",
        ),
        (
            vec!["merge", "--table", "customers", "--from", "2", "--into", "2"],
            "is the target",
        ),
        (
            vec!["merge", "--table", "customers", "--from", "1:2", "--into", "3"],
            "has 2 part(s)",
        ),
        (
            vec![
                "merge",
                "--table",
                "customers",
                "--from",
                "2",
                "--into",
                "1",
                "--sources",
                "set:nope=1",
            ],
            "sets column nope",
        ),
        (
            vec![
                "merge",
                "--table",
                "customers",
                "--from",
                "2",
                "--into",
                "1",
                "--sources",
                "drop",
            ],
            "keep, delete or set",
        ),
        (
            vec![
                "merge",
                "--table",
                "customers",
                "--from",
                "4",
                "--into",
                "1",
                "--deleted-when",
                "deleted = 1",
            ],
            "soft-deleted",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expected), "{args:?}: {}", text(&out.stderr));
    }

    // The merge, its history, its details, its undo.
    let out = run(&[
        "merge",
        "--table",
        "customers",
        "--from",
        "2,3",
        "--into",
        "1",
        "--merge-conflicts",
        "--sources",
        "delete",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(report["status"], "completed", "{report:#}");
    let id = report["id"].as_i64().unwrap();
    let out = run(&["merge", "history", "--json"]);
    let history = json(&out);
    assert_eq!(history[0]["id"], id);
    assert_eq!(history[0]["status"], "completed");
    assert!(
        history[0]["holder"]
            .as_str()
            .unwrap()
            .contains("lockgate merge customers"),
        "{history:#}"
    );
    let out = run(&["merge", "show", &id.to_string(), "--json"]);
    let shown = json(&out);
    assert_eq!(
        shown["changes"].as_array().unwrap().len() as u64,
        report["total_rows"].as_u64().unwrap()
    );
    let out = run(&["merge", "show", &id.to_string()]);
    assert!(
        text(&out.stdout).contains("jobs [id=101]: client 20 -> 10"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["merge", "undo", &id.to_string(), "--preview", "--json"]);
    assert_eq!(json(&out)["status"], "preview");
    let out = run(&["merge", "undo", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["merge", "undo", &id.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("already undone"), "{}", text(&out.stderr));
    let out = run(&["merge", "show", "999"]);
    assert_eq!(out.status.code(), Some(2));

    // A definition in lockgate.toml, with a flag overriding it.
    std::fs::write(
        dir.path().join("lockgate.toml"),
        format!(
            "[connections.accounts]\nurl = \"{url}\"\n\n[merges.customers]\ndb = \"accounts\"\ntable = \"customers\"\n\
             deleted_when = \"deleted = 1\"\nsources = \"set:deleted=1\"\n"
        ),
    )
    .unwrap();
    let out = lockgate(
        &["merge", "--def", "customers", "--from", "3", "--into", "1", "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut conn = db.conn().await;
    let rows = conn
        .query("SELECT deleted FROM customers WHERE id = 3", &[], None)
        .await
        .unwrap();
    assert_eq!(rows[0][0].to_string(), "1");
    let out = lockgate(&["merge", "--def", "nosuch", "--from", "3", "--into", "1"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("customers"), "{}", text(&out.stderr));
}

/// Rows each engine moves: enough for the merge's statements to take a second or
/// more, to be caught running.
fn rows(engine: Engine) -> i64 {
    match engine {
        Engine::Postgres => 400_000,
        Engine::Mysql => 300_000,
        Engine::Sqlite => 600_000,
    }
}

fn fill(engine: Engine, n: i64) -> String {
    match engine {
        Engine::Postgres => format!("INSERT INTO jobs SELECT g, 2, NULL FROM generate_series(1000, {n} + 999) g"),
        Engine::Mysql => format!(
            "SET SESSION max_recursive_iterations = 10000000; INSERT INTO jobs WITH RECURSIVE s(n) AS \
             (SELECT 1000 UNION ALL SELECT n + 1 FROM s WHERE n < {n} + 999) SELECT n, 2, NULL FROM s"
        ),
        Engine::Sqlite => format!(
            "INSERT INTO jobs WITH RECURSIVE s(n) AS (SELECT 1000 UNION ALL SELECT n + 1 FROM s WHERE n < {n} + 999) \
             SELECT n, 2, NULL FROM s"
        ),
    }
}

/// Whether the merge's data statements are running now.
async fn merging(conn: &mut Conn, engine: Engine, db: &TestDb, seen_running: &mut bool) -> bool {
    let sql = match engine {
        Engine::Postgres => "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'WITH m (%'",
        Engine::Mysql => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO `lockgate_merge_%' \
             OR INFO LIKE 'UPDATE `jobs`%'"
        }
        Engine::Sqlite => {
            // Its history row is written before its transaction begins; the journal
            // seen after that is the transaction's (the file is locked for writing
            // while it runs, so the row may not be readable then: it was seen first).
            if !*seen_running {
                let running = conn
                    .query(
                        "SELECT COUNT(*) FROM lockgate_merges WHERE status = 'running'",
                        &[],
                        None,
                    )
                    .await;
                *seen_running = running.is_ok_and(|r| r[0][0].to_string() == "1");
                return false;
            }
            let file = db.url.as_str().strip_prefix("sqlite://").unwrap().to_string();
            return std::fs::metadata(format!("{file}-journal")).is_ok_and(|m| m.len() > 0);
        }
    };
    let rows = conn.query(sql, &[], None).await.unwrap();
    rows[0][0].to_string() != "0"
}

async fn killed_mid_merge(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch(SCHEMA).await.unwrap();
    conn.batch(&fill(engine, rows(engine))).await.unwrap();
    let checksum = "SELECT COUNT(*), SUM(customer), SUM(id * customer) FROM jobs";
    let before = conn.query(checksum, &[], None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "merge",
        "--db",
        db.url.as_str(),
        "--table",
        "customers",
        "--from",
        "3,2",
        "--into",
        "1",
        "--merge-conflicts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = Proc::spawn_in(dir.path(), "merge", &args);
    let mut watcher = Conn::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_running = false;
    while !merging(&mut watcher, engine, &db, &mut seen_running).await {
        assert!(
            p.try_wait().is_none(),
            "{engine}: the merge ended before it was caught: make it bigger\n{}",
            p.output()
        );
        assert!(
            Instant::now() < deadline,
            "{engine}: the merge never started its statements\n{}",
            p.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.signal(libc::SIGKILL);
    let status = p.wait().await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{engine}: {}", p.output());
    drop(watcher);
    // Nothing of it is kept (PostgreSQL and MariaDB roll the transaction back when
    // the connection drops: wait for that; SQLite's next reader rolls the hot
    // journal back).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = Conn::connect(&db.url).await.unwrap();
    loop {
        let now = conn.query(checksum, &[], None).await;
        if now.as_ref().is_ok_and(|n| *n == before) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{engine}: the killed merge's rows stayed: {now:?} vs {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = lockgate(&["merge", "history", "--db", db.url.as_str(), "--json"], dir.path());
    let history = json(&out);
    assert_eq!(history[0]["status"], "abandoned", "{engine}: {history:#}");
    // The next merge records it so and leaves no side table of it behind.
    let out = lockgate(
        &[
            "merge",
            "--db",
            db.url.as_str(),
            "--table",
            "customers",
            "--from",
            "3",
            "--into",
            "1",
            "--preview",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{engine}: {}", text(&out.stderr));
    let id = history[0]["id"].as_i64().unwrap();
    let left: Vec<String> = conn
        .list_tables()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| n.starts_with(&format!("lockgate_merge_{id}_")))
        .collect();
    assert!(left.is_empty(), "{engine}: {left:?}");
    let rows = conn
        .query(
            &format!("SELECT status FROM lockgate_merges WHERE id = {id}"),
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0].to_string(), "abandoned", "{engine}");
}

#[tokio::test]
async fn a_merge_killed_mid_statement_keeps_nothing_postgres() {
    killed_mid_merge(Engine::Postgres).await;
}

#[tokio::test]
async fn a_merge_killed_mid_statement_keeps_nothing_mysql() {
    killed_mid_merge(Engine::Mysql).await;
}

#[tokio::test]
async fn a_merge_killed_mid_statement_keeps_nothing_sqlite() {
    killed_mid_merge(Engine::Sqlite).await;
}
