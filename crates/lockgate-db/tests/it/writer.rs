//! The writer's options that migrations rely on, on all three engines: nested units
//! under a savepoint, updates that leave unchanged rows alone (and count them), row
//! images, and the insert path for key modes into an empty table.

use crate::support::TestDb;
use lockgate_core::{Batch, Row, Value};
use lockgate_db::ledger::Ledger;
use lockgate_db::versions;
use lockgate_db::writer::{self, BatchSource, Capture, OnError, SourceError, WriteConfig, WriteMode};
use lockgate_db::{Conn, Engine};
use std::sync::Arc;
use tokio::sync::mpsc;

const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

/// Rows held in memory, as one batch.
struct Rows(Batch);

impl BatchSource for Rows {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Ok(self.0.clone()));
        rx
    }
}

fn rows(data: &[(i64, &str)]) -> Rows {
    let mut b = Batch::new(Arc::new(vec!["id".to_string(), "name".to_string()]));
    for (i, (id, name)) in data.iter().enumerate() {
        b.push(Row {
            line: i as u64 + 2,
            values: vec![Value::Int(*id), Value::Text(name.to_string())],
        });
    }
    Rows(b)
}

async fn people(engine: Engine) -> (TestDb, Conn) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE people (id bigint PRIMARY KEY, name varchar(50) NOT NULL)")
        .await
        .unwrap();
    (db, conn)
}

async fn names(conn: &mut Conn) -> Vec<String> {
    conn.query("SELECT id, name FROM people ORDER BY id", &[], None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}={}", r[0], r[1]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_unit_undoes_only_itself() {
    for engine in ENGINES {
        let (_db, mut conn) = people(engine).await;
        let table = conn.find_table("people").await.unwrap();
        conn.begin().await.unwrap();
        conn.batch("INSERT INTO people (id, name) VALUES (1, 'caller')")
            .await
            .unwrap();
        let nested = WriteConfig {
            mode: WriteMode::Insert,
            nested: true,
            ..WriteConfig::default()
        };
        // A failing unit (id 1 exists) rolls back to its savepoint: the caller's row stays.
        let r = writer::write(&mut conn, &table, &nested, &rows(&[(2, "b"), (1, "dup")]), None)
            .await
            .unwrap();
        assert!(!r.committed && r.failed.len() == 1, "{engine}: {r:?}");
        assert_eq!(names(&mut conn).await, ["1=caller"], "{engine}");
        let r = writer::write(&mut conn, &table, &nested, &rows(&[(3, "c")]), None)
            .await
            .unwrap();
        assert!(r.committed, "{engine}: {r:?}");
        // The caller decides: its rollback undoes the nested unit's rows too.
        conn.rollback().await.unwrap();
        assert!(names(&mut conn).await.is_empty(), "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_leave_unchanged_rows_alone_and_count_them() {
    for engine in ENGINES {
        let (_db, mut conn) = people(engine).await;
        let table = conn.find_table("people").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Upsert,
            ..WriteConfig::default()
        };
        writer::write(&mut conn, &table, &cfg, &rows(&[(1, "abc"), (2, "x")]), None)
            .await
            .unwrap();
        // A case-only change is a change, even under MariaDB's case-insensitive collation.
        let r = writer::write(
            &mut conn,
            &table,
            &cfg,
            &rows(&[(1, "ABC"), (2, "x"), (3, "new")]),
            None,
        )
        .await
        .unwrap();
        assert_eq!((r.inserted, r.updated, r.unchanged), (1, 1, 1), "{engine}: {r:?}");
        assert_eq!(names(&mut conn).await, ["1=ABC", "2=x", "3=new"], "{engine}");
        let update = WriteConfig {
            mode: WriteMode::Update,
            ..WriteConfig::default()
        };
        let r = writer::write(&mut conn, &table, &update, &rows(&[(1, "ABC"), (2, "y")]), None)
            .await
            .unwrap();
        assert_eq!((r.updated, r.unchanged), (1, 1), "{engine}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_images_hold_keys_fingerprints_and_rows_before() {
    for engine in ENGINES {
        let (db, mut conn) = people(engine).await;
        let _ledger = Ledger::open(&db.url).await.unwrap();
        let table = conn.find_table("people").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Sync,
            capture: Some(Capture {
                module: "m".into(),
                version: "1.0.0".into(),
            }),
            ..WriteConfig::default()
        };
        // Into an empty table (the insert path), then a sync that inserts, changes,
        // leaves one row alone and deletes one.
        writer::write(&mut conn, &table, &cfg, &rows(&[(1, "a"), (2, "b"), (3, "c")]), None)
            .await
            .unwrap();
        let cfg2 = WriteConfig {
            capture: Some(Capture {
                module: "m".into(),
                version: "2.0.0".into(),
            }),
            ..cfg.clone()
        };
        let r = writer::write(&mut conn, &table, &cfg2, &rows(&[(1, "a"), (2, "B"), (4, "d")]), None)
            .await
            .unwrap();
        assert_eq!(
            (r.inserted, r.updated, r.unchanged, r.deleted),
            (1, 1, 1, 1),
            "{engine}: {r:?}"
        );
        let first = versions::read_images(&mut conn, "m", &["1.0.0".into()]).await.unwrap();
        assert_eq!(first.len(), 3, "{engine}: {first:?}");
        assert!(first
            .iter()
            .all(|s| s.image.op == 'i' && s.image.after_fingerprint.is_some()));
        let second = versions::read_images(&mut conn, "m", &["2.0.0".into()]).await.unwrap();
        let mut ops: Vec<(char, String, Option<String>)> = second
            .iter()
            .map(|s| {
                (
                    s.image.op,
                    s.image.key["id"].to_string(),
                    s.image.before.as_ref().map(|b| b["name"].to_string()),
                )
            })
            .collect();
        ops.sort();
        assert_eq!(
            ops,
            [
                ('d', "3".to_string(), Some("\"c\"".to_string())),
                ('i', "4".to_string(), None),
                ('u', "2".to_string(), Some("\"b\"".to_string())),
            ],
            "{engine}"
        );
        // The fingerprint of an inserted row matches what the engine stored.
        let stored = conn
            .query(
                "SELECT id, name FROM people WHERE id = 4",
                &[],
                Some(&[table.columns[0].kind.clone(), table.columns[1].kind.clone()]),
            )
            .await
            .unwrap();
        let print = second
            .iter()
            .find(|s| s.image.op == 'i')
            .unwrap()
            .image
            .after_fingerprint
            .clone()
            .unwrap();
        assert_eq!(print.value, lockgate_core::fingerprint(&stored[0]), "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_into_an_empty_table_still_rejects_a_repeated_key() {
    for engine in ENGINES {
        let (_db, mut conn) = people(engine).await;
        let table = conn.find_table("people").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Upsert,
            on_error: OnError::Rollback,
            ..WriteConfig::default()
        };
        let r = writer::write(
            &mut conn,
            &table,
            &cfg,
            &rows(&[(1, "a"), (2, "b"), (1, "again")]),
            None,
        )
        .await
        .unwrap();
        assert!(!r.committed, "{engine}: {r:?}");
        assert_eq!(r.failed.len(), 1, "{engine}: {r:?}");
        assert_eq!(r.failed[0].line, Some(4), "{engine}: {r:?}");
        assert!(names(&mut conn).await.is_empty(), "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_deleting_more_than_a_page_captures_every_row_once() {
    for engine in ENGINES {
        let (db, mut conn) = people(engine).await;
        let _ledger = Ledger::open(&db.url).await.unwrap();
        let table = conn.find_table("people").await.unwrap();
        let many: Vec<(i64, String)> = (1..=12_001).map(|i| (i, format!("p{i}"))).collect();
        let refs: Vec<(i64, &str)> = many.iter().map(|(i, n)| (*i, n.as_str())).collect();
        let load = WriteConfig {
            mode: WriteMode::Insert,
            ..WriteConfig::default()
        };
        writer::write(&mut conn, &table, &load, &rows(&refs), None)
            .await
            .unwrap();
        let sync = WriteConfig {
            mode: WriteMode::Sync,
            capture: Some(Capture {
                module: "m".into(),
                version: "1.0.0".into(),
            }),
            ..WriteConfig::default()
        };
        let r = writer::write(&mut conn, &table, &sync, &rows(&[(6_000, "p6000")]), None)
            .await
            .unwrap();
        assert_eq!(r.deleted, 12_000, "{engine}: {r:?}");
        let images = versions::read_images(&mut conn, "m", &["1.0.0".into()]).await.unwrap();
        let mut ids: Vec<String> = images
            .iter()
            .filter(|s| s.image.op == 'd')
            .map(|s| s.image.key["id"].to_string())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12_000, "{engine}: every deleted row imaged once");
    }
}
