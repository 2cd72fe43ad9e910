//! `lockgate upgrade` as a process: init, a paused upgrade that a run leaves alone,
//! resume, run to complete, status, a declaration error with its exit code; a run
//! killed with SIGKILL that resumes from its cursor, and one paused by another
//! process, on every engine.

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

/// Rows upgraded (once) so far.
async fn done(conn: &mut lockgate_db::Conn) -> String {
    let sql = "SELECT COUNT(*) FROM items WHERE n = 1";
    conn.query(sql, &[], None).await.unwrap()[0][0].to_string()
}

/// A `lockgate upgrade run` killed with SIGKILL mid-run resumes from its cursor: every
/// row ends upgraded exactly once (`n` counts the upgrade); a run paused by another
/// process (`lockgate upgrade pause`) stops within a batch, and resumes.
async fn killed_then_resumed(engine: lockgate_db::Engine) {
    use super::transfer::Proc;
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let db = lockgate_db::testing::TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE items (id INT PRIMARY KEY, n INT NOT NULL)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=4_000).map(|i| format!("({i}, 0)")).collect();
    for chunk in values.chunks(500) {
        conn.batch(&format!("INSERT INTO items (id, n) VALUES {}", chunk.join(", ")))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[upgrades.count]\ntable = \"items\"\nset = { n = \"n + 1\" }\n",
    )
    .unwrap();
    let url = db.url.as_str().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["upgrade".into()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--db".to_string(), url.clone()]);
        a
    };
    let out = lockgate(
        &args(&["init", "--table", "items"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let slow = ["run", "--batch-size", "40", "--max-rows-per-second", "2000", "--json"];
    // Killed once some batches are in.
    let mut p = Proc::spawn_in(dir.path(), "upgrade run", &args(&slow));
    let deadline = Instant::now() + Duration::from_secs(60);
    while done(&mut conn).await.parse::<i64>().unwrap() < 400 {
        assert!(
            p.try_wait().is_none(),
            "{engine}: ended before it was killed\n{}",
            p.output()
        );
        assert!(Instant::now() < deadline, "{engine}: no batch\n{}", p.output());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.signal(libc::SIGKILL);
    assert_eq!(p.wait().await.signal(), Some(libc::SIGKILL), "{engine}");
    let partial: i64 = done(&mut conn).await.parse().unwrap();
    // The killed run left its cursor in the ledger: the next one starts there.
    let cursor = conn
        .query(
            "SELECT COUNT(*) FROM lockgate_upgrades WHERE name = 'count' AND \"cursor\" IS NOT NULL",
            &[],
            None,
        )
        .await;
    let cursor = match cursor {
        Ok(r) => r[0][0].to_string(),
        // MariaDB quotes with backticks.
        Err(_) => conn
            .query(
                "SELECT COUNT(*) FROM lockgate_upgrades WHERE name = 'count' AND `cursor` IS NOT NULL",
                &[],
                None,
            )
            .await
            .unwrap()[0][0]
            .to_string(),
    };
    assert_eq!(cursor, "1", "{engine}: no cursor saved");
    assert!(partial < 4_000, "{engine}: the run was not cut short ({partial})");
    // Paused from another process, mid-run.
    let mut p = Proc::spawn_in(dir.path(), "upgrade run 2", &args(&slow));
    let deadline = Instant::now() + Duration::from_secs(60);
    while done(&mut conn).await.parse::<i64>().unwrap() < partial + 200 {
        assert!(
            p.try_wait().is_none(),
            "{engine}: ended before the pause\n{}",
            p.output()
        );
        assert!(Instant::now() < deadline, "{engine}: no batch\n{}", p.output());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = lockgate(
        &args(&["pause", "count"]).iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = p.wait().await;
    assert!(status.success(), "{engine}\n{}", p.output());
    let doc: serde_json::Value = serde_json::from_str(&p.stdout()).unwrap();
    assert_eq!(doc["upgrades"][0]["state"], "paused", "{engine}: {doc}");
    // Resumed: it ends complete, every row upgraded exactly once.
    let out = lockgate(
        &args(&["resume", "count"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lockgate(
        &args(&["run", "--json"]).iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["upgrades"][0]["state"], "complete", "{engine}: {doc}");
    let wrong = conn
        .query("SELECT COUNT(*) FROM items WHERE n <> 1", &[], None)
        .await
        .unwrap();
    assert_eq!(wrong[0][0].to_string(), "0", "{engine}: rows upgraded twice or never");
}

#[tokio::test]
async fn killed_then_resumed_sqlite() {
    killed_then_resumed(lockgate_db::Engine::Sqlite).await;
}

#[tokio::test]
async fn killed_then_resumed_postgres() {
    killed_then_resumed(lockgate_db::Engine::Postgres).await;
}

#[tokio::test]
async fn killed_then_resumed_mysql() {
    killed_then_resumed(lockgate_db::Engine::Mysql).await;
}
