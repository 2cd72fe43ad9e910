//! Runs in the ledger on all three engines: a run whose process (or connection) is
//! gone reads as `abandoned`, and the next run of the same job records it so; a live
//! run reads as running, a finished one as it ended; an export ledger of schema 3 is
//! upgraded in place.

use crate::support::TestDb;
use lockgate_core::Value;
use lockgate_db::ledger::{read_runs, Holder, Ledger, RunStatus, SCHEMA_VERSION};
use lockgate_db::{Conn, Engine};

const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

/// A process id of this host that no longer exists: a child that has exited and
/// been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("`true` runs");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The status of run `id` as read (derived), and as the table holds it.
async fn statuses(db: &TestDb, id: i64) -> (String, String) {
    let mut conn = db.conn().await;
    let runs = read_runs(&mut conn, 50).await.unwrap().expect("a ledger");
    let read = runs
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("run {id} is not read: {runs:?}"))
        .status
        .clone();
    (read, stored(&mut conn, id).await)
}

async fn stored(conn: &mut Conn, id: i64) -> String {
    let rows = conn
        .query(&format!("SELECT status FROM lockgate_runs WHERE id = {id}"), &[], None)
        .await
        .unwrap();
    match &rows[0][0] {
        Value::Text(s) => s.clone(),
        other => panic!("status {other:?}"),
    }
}

/// A run whose holder went away without recording its end: on PostgreSQL and
/// MariaDB its ledger connection closed (the process died); on SQLite its process
/// (same host) no longer exists.
async fn abandoned_run(db: &TestDb, job: &str) -> i64 {
    let mut ledger = Ledger::open(&db.url).await.unwrap();
    let holder = match db.url.engine {
        Engine::Sqlite => Holder {
            pid: dead_pid(),
            ..Holder::current("lockgate load customers")
        },
        _ => Holder::current("lockgate load customers"),
    };
    let id = ledger.start_run("load", job, &holder).await.unwrap();
    drop(ledger);
    id
}

#[tokio::test]
async fn a_run_whose_process_is_gone_reads_as_abandoned() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let gone = abandoned_run(&db, "load:customers").await;
        // The server notices a closed session at once, but give it a moment.
        let mut read = String::new();
        for _ in 0..50 {
            read = statuses(&db, gone).await.0;
            if read == "abandoned" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(read, "abandoned", "{engine}");
        let mut conn = db.conn().await;
        let runs = read_runs(&mut conn, 50).await.unwrap().unwrap();
        let run = runs.iter().find(|r| r.id == gone).unwrap();
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("without recording an end")),
            "{engine}: {run:?}"
        );
        // The table still says running until the next run of the job looks.
        assert_eq!(stored(&mut conn, gone).await, "running", "{engine}");

        // A run in progress reads as running, whoever reads it.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let live = ledger
            .start_run("load", "load:customers", &Holder::current("lockgate load customers"))
            .await
            .unwrap();
        assert_eq!(
            statuses(&db, live).await,
            ("running".into(), "running".into()),
            "{engine}"
        );
        // Starting it recorded the abandoned one in the table.
        assert_eq!(
            statuses(&db, gone).await,
            ("abandoned".into(), "abandoned".into()),
            "{engine}"
        );
        let mut conn = db.conn().await;
        let ended = conn
            .query(
                &format!("SELECT ended_at, heartbeat_at FROM lockgate_runs WHERE id = {gone}"),
                &[],
                None,
            )
            .await
            .unwrap();
        assert_eq!(ended[0][0], ended[0][1], "{engine}: ended at its last sign of life");

        // A run of another job is not touched by this job's start.
        let other = abandoned_run(&db, "load:orders").await;
        let next = ledger
            .start_run("load", "load:customers", &Holder::current("lockgate load customers"))
            .await
            .unwrap();
        assert_eq!(stored(&mut conn, other).await, "running", "{engine}");

        // Finished runs read as they ended, and their lock is let go of.
        for (run, status) in [(live, RunStatus::Succeeded), (next, RunStatus::Failed)] {
            ledger
                .finish_run(run, status, 3, &serde_json::json!({}), None)
                .await
                .unwrap();
        }
        assert_eq!(statuses(&db, live).await.0, "succeeded", "{engine}");
        assert_eq!(statuses(&db, next).await.0, "failed", "{engine}");
        // The ledger's connection is still open: a run still running on it reads so,
        // and one whose lock it gave back (finished) reads as it ended.
        let open = ledger
            .start_run("load", "load:orders", &Holder::current("lockgate load orders"))
            .await
            .unwrap();
        assert_eq!(statuses(&db, open).await.0, "running", "{engine}");
        assert_eq!(
            statuses(&db, other).await,
            ("abandoned".into(), "abandoned".into()),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn a_schema_3_ledger_is_upgraded_and_keeps_its_exports() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        assert_eq!(ledger.schema_version().await.unwrap(), SCHEMA_VERSION);
        // Back to schema 3: the columns of 4 gone, the version said.
        let conn = ledger.conn();
        let undo = match engine {
            Engine::Mysql => vec!["ALTER TABLE lockgate_exports DROP COLUMN backend_id, DROP COLUMN on_error"],
            _ => vec![
                "ALTER TABLE lockgate_exports DROP COLUMN backend_id",
                "ALTER TABLE lockgate_exports DROP COLUMN on_error",
            ],
        };
        for sql in undo {
            conn.batch(sql).await.unwrap();
        }
        conn.batch("UPDATE lockgate_meta SET value = '3' WHERE name = 'schema_version'")
            .await
            .unwrap();
        conn.batch(
            "INSERT INTO lockgate_exports (transfer, status, created_at) VALUES ('t', 'pending', '2026-01-01 00:00:00')",
        )
        .await
        .unwrap();
        drop(ledger);
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        assert_eq!(ledger.schema_version().await.unwrap(), SCHEMA_VERSION, "{engine}");
        let rows = ledger
            .conn()
            .query("SELECT transfer, backend_id, on_error FROM lockgate_exports", &[], None)
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![vec![Value::Text("t".into()), Value::Null, Value::Null]],
            "{engine}"
        );
        if engine == Engine::Mysql {
            // An upgrade cut short after MariaDB committed the new columns is finished
            // by the next open.
            ledger
                .conn()
                .batch("UPDATE lockgate_meta SET value = '3' WHERE name = 'schema_version'")
                .await
                .unwrap();
            drop(ledger);
            let mut ledger = Ledger::open(&db.url).await.unwrap();
            assert_eq!(ledger.schema_version().await.unwrap(), SCHEMA_VERSION);
        }
    }
}
