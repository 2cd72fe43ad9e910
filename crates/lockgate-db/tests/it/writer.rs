//! The writer's options that migrations rely on, on all three engines: nested units
//! under a savepoint, updates that leave unchanged rows alone (and count them), row
//! images, the insert path for key modes into an empty table, and failing records
//! that share a line named by their own record numbers.

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
            number: i as u64 + 1,
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
async fn an_upsert_into_an_empty_table_lets_the_later_of_a_repeated_key_win() {
    // The insert path (COPY into the empty table) meets the repeated key as a
    // duplicate; the unit then starts over in its key mode, where the later record
    // wins, as it does when the table is not empty.
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
        assert!(r.committed && r.failed.is_empty(), "{engine}: {r:?}");
        assert_eq!((r.inserted, r.updated), (2, 0), "{engine}: {r:?}");
        assert_eq!(names(&mut conn).await, ["1=again", "2=b"], "{engine}");
        // A row that fails for another reason is still named, in the key mode.
        let (_db, mut conn) = people(engine).await;
        let mut input = rows(&[(1, "a"), (2, "b")]);
        input.0.rows[1].values[1] = Value::Null;
        let r = writer::write(&mut conn, &table, &cfg, &input, None).await.unwrap();
        assert!(!r.committed, "{engine}: {r:?}");
        assert_eq!(r.failed.len(), 1, "{engine}: {r:?}");
        assert_eq!(r.failed[0].line, Some(3), "{engine}: {r:?}");
        assert!(names(&mut conn).await.is_empty(), "{engine}");
    }
}

/// Batches held in memory, yielded in order (a load of several batches).
struct Batches(Vec<Batch>);

impl BatchSource for Batches {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(self.0.len().max(1));
        for b in &self.0 {
            let _ = tx.try_send(Ok(b.clone()));
        }
        rx
    }
}

/// `(email, name)` records as one batch, numbered from line `first`.
fn contacts(first: u64, data: &[(&str, &str)]) -> Batch {
    let mut b = Batch::new(Arc::new(vec!["email".to_string(), "name".to_string()]));
    for (i, (email, name)) in data.iter().enumerate() {
        b.push(Row {
            line: first + i as u64,
            number: first + i as u64,
            values: vec![Value::Text(email.to_string()), Value::Text(name.to_string())],
        });
    }
    b
}

/// A `contacts` table keyed (without a unique index) by an email whose collation
/// ignores case, where the engine has one: MariaDB's `utf8mb4_general_ci`, SQLite's
/// `NOCASE`, a nondeterministic ICU collation on PostgreSQL (when the server has ICU;
/// `None` otherwise). The name column has the same collation, so a case-only change
/// of a name tests that updates compare values byte by byte.
async fn contacts_db(engine: Engine) -> Option<(TestDb, Conn)> {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    let ddl = match engine {
        Engine::Mysql => {
            "CREATE TABLE contacts (email varchar(100) COLLATE utf8mb4_general_ci, \
             name varchar(50) COLLATE utf8mb4_general_ci NOT NULL) ENGINE=InnoDB"
        }
        Engine::Sqlite => "CREATE TABLE contacts (email TEXT COLLATE NOCASE, name TEXT COLLATE NOCASE NOT NULL)",
        Engine::Postgres => {
            let icu = conn
                .query("SELECT COUNT(*) FROM pg_collation WHERE collprovider = 'i'", &[], None)
                .await
                .unwrap();
            if icu[0][0] == Value::Int(0) {
                return None;
            }
            conn.batch("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
                .await
                .unwrap();
            "CREATE TABLE contacts (email text COLLATE ci, name text COLLATE ci NOT NULL)"
        }
    };
    conn.batch(ddl).await.unwrap();
    Some((db, conn))
}

/// The rows of `contacts` as `email=name`, sorted byte-wise.
async fn contact_rows(conn: &mut Conn) -> Vec<String> {
    let mut all: Vec<String> = conn
        .query("SELECT email, name FROM contacts", &[], None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}={}", r[0], r[1]))
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_database_calls_equal_are_one_key_and_the_later_record_wins() {
    for engine in ENGINES {
        let Some((_db, mut conn)) = contacts_db(engine).await else {
            eprintln!("{engine}: the server has no ICU collations; the plain-text case below still runs");
            continue;
        };
        let table = conn.find_table("contacts").await.unwrap();
        let by = |mode| WriteConfig {
            mode,
            key: vec!["email".into()],
            ..WriteConfig::default()
        };
        let write = async |conn: &mut Conn, mode, batches: Vec<Batch>| {
            let r = writer::write(conn, &table, &by(mode), &Batches(batches), None)
                .await
                .unwrap();
            assert!(r.committed && r.failed.is_empty(), "{engine}: {r:?}");
            r
        };
        // Within one batch, both new: one row, spelled as the first record spells its
        // key, with the later record's values.
        let r = write(
            &mut conn,
            WriteMode::Upsert,
            vec![contacts(
                2,
                &[("A@x.com", "first"), ("b@x.com", "b"), ("a@X.com", "second")],
            )],
        )
        .await;
        assert_eq!((r.inserted, r.updated), (2, 0), "{engine}: {r:?}");
        assert_eq!(
            contact_rows(&mut conn).await,
            ["A@x.com=second", "b@x.com=b"],
            "{engine}"
        );
        // Against an existing row: it is updated and keeps its spelling; a case-only
        // change of a value is a change.
        let r = write(
            &mut conn,
            WriteMode::Upsert,
            vec![contacts(2, &[("a@x.com", "SECOND")])],
        )
        .await;
        assert_eq!((r.inserted, r.updated), (0, 1), "{engine}: {r:?}");
        assert_eq!(
            contact_rows(&mut conn).await,
            ["A@x.com=SECOND", "b@x.com=b"],
            "{engine}"
        );
        // Two records of one batch against an existing row: the later wins.
        let r = write(
            &mut conn,
            WriteMode::Upsert,
            vec![contacts(2, &[("A@X.COM", "x"), ("b@x.com", "b"), ("a@x.com", "y")])],
        )
        .await;
        assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 1), "{engine}: {r:?}");
        assert_eq!(contact_rows(&mut conn).await, ["A@x.com=y", "b@x.com=b"], "{engine}");
        // Across batches of one load: the row the first batch inserted is the one the
        // second batch updates.
        let r = write(
            &mut conn,
            WriteMode::Upsert,
            vec![
                contacts(2, &[("C@x.com", "one"), ("c@X.com", "two")]),
                contacts(4, &[("c@x.com", "three")]),
            ],
        )
        .await;
        assert_eq!((r.inserted, r.updated), (1, 1), "{engine}: {r:?}");
        assert_eq!(
            contact_rows(&mut conn).await,
            ["A@x.com=y", "C@x.com=three", "b@x.com=b"],
            "{engine}"
        );
        // insert-missing keeps the first record, and leaves an existing row alone.
        let r = write(
            &mut conn,
            WriteMode::InsertMissing,
            vec![contacts(
                2,
                &[("D@x.com", "first"), ("d@x.com", "second"), ("a@x.com", "no")],
            )],
        )
        .await;
        assert_eq!((r.inserted, r.updated), (1, 0), "{engine}: {r:?}");
        assert_eq!(
            contact_rows(&mut conn).await,
            ["A@x.com=y", "C@x.com=three", "D@x.com=first", "b@x.com=b"],
            "{engine}"
        );
        // update: the later record wins; a key no row has is that record's error, once.
        let r = writer::write(
            &mut conn,
            &table,
            &by(WriteMode::Update),
            &Batches(vec![contacts(
                2,
                &[
                    ("a@x.com", "u1"),
                    ("Z@x.com", "z1"),
                    ("A@X.com", "u2"),
                    ("z@x.com", "z2"),
                ],
            )]),
            None,
        )
        .await
        .unwrap();
        assert!(!r.committed, "{engine}: {r:?}");
        assert_eq!(r.failed.len(), 1, "{engine}: {r:?}");
        assert_eq!(r.failed[0].line, Some(5), "{engine}: {r:?}");
        let r = write(
            &mut conn,
            WriteMode::Update,
            vec![contacts(2, &[("a@x.com", "u1"), ("A@X.com", "u2")])],
        )
        .await;
        assert_eq!(r.updated, 1, "{engine}: {r:?}");
        // sync: one key, the later record; every other row goes.
        let r = write(
            &mut conn,
            WriteMode::Sync,
            vec![contacts(2, &[("a@x.com", "s1")]), contacts(3, &[("A@X.COM", "s2")])],
        )
        .await;
        assert_eq!(r.deleted, 3, "{engine}: {r:?}");
        assert_eq!(contact_rows(&mut conn).await, ["A@x.com=s2"], "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_differ_by_case_are_two_keys_where_the_collation_says_so() {
    // PostgreSQL's usual (deterministic) text, SQLite's BINARY, MariaDB's _bin.
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        let ddl = match engine {
            Engine::Mysql => {
                "CREATE TABLE contacts (email varchar(100) COLLATE utf8mb4_bin, name varchar(50) NOT NULL) ENGINE=InnoDB"
            }
            _ => "CREATE TABLE contacts (email text, name text NOT NULL)",
        };
        conn.batch(ddl).await.unwrap();
        let table = conn.find_table("contacts").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Upsert,
            key: vec!["email".into()],
            ..WriteConfig::default()
        };
        let input = Batches(vec![contacts(
            2,
            &[("A@x.com", "1"), ("a@x.com", "2"), ("A@x.com", "3")],
        )]);
        let r = writer::write(&mut conn, &table, &cfg, &input, None).await.unwrap();
        assert!(r.committed, "{engine}: {r:?}");
        assert_eq!(contact_rows(&mut conn).await, ["A@x.com=3", "a@x.com=2"], "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_into_an_empty_table_merges_keys_its_unique_index_calls_equal() {
    for engine in ENGINES {
        let Some((_db, mut conn)) = contacts_db(engine).await else {
            continue;
        };
        conn.batch("CREATE UNIQUE INDEX contacts_email ON contacts (email)")
            .await
            .unwrap();
        let table = conn.find_table("contacts").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Upsert,
            key: vec!["email".into()],
            ..WriteConfig::default()
        };
        let input = Batches(vec![contacts(
            2,
            &[("E@x.com", "1"), ("f@x.com", "f"), ("e@X.com", "2")],
        )]);
        let r = writer::write(&mut conn, &table, &cfg, &input, None).await.unwrap();
        assert!(r.committed && r.failed.is_empty(), "{engine}: {r:?}");
        // Merged before the insert, not found by a diagnose pass as a second write.
        assert_eq!((r.inserted, r.updated), (2, 0), "{engine}: {r:?}");
        assert_eq!(contact_rows(&mut conn).await, ["E@x.com=2", "f@x.com=f"], "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_image_leaves_out_the_key_the_record_spells_otherwise() {
    // A rollback compares what the update left with the row as it is: the key the
    // record gave (`a@x.com`) is not what the row holds (`A@x.com`), and the update
    // did not write it.
    for engine in ENGINES {
        let Some((db, mut conn)) = contacts_db(engine).await else {
            continue;
        };
        let _ledger = Ledger::open(&db.url).await.unwrap();
        // Images need a primary (or unique) key: here the email, under the collation.
        let ddl = match engine {
            Engine::Mysql => {
                "CREATE TABLE keyed (email varchar(100) COLLATE utf8mb4_general_ci PRIMARY KEY, name varchar(50) NOT NULL) ENGINE=InnoDB"
            }
            Engine::Sqlite => "CREATE TABLE keyed (email TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL)",
            Engine::Postgres => "CREATE TABLE keyed (email text COLLATE ci PRIMARY KEY, name text NOT NULL)",
        };
        conn.batch(ddl).await.unwrap();
        conn.batch("INSERT INTO keyed (email, name) VALUES ('A@x.com', 'old')")
            .await
            .unwrap();
        let keyed = conn.find_table("keyed").await.unwrap();
        let cfg = WriteConfig {
            mode: WriteMode::Upsert,
            capture: Some(Capture {
                module: "m".into(),
                version: "1.0.0".into(),
            }),
            ..WriteConfig::default()
        };
        let r = writer::write(
            &mut conn,
            &keyed,
            &cfg,
            &Batches(vec![contacts(2, &[("a@x.com", "new")])]),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.updated, 1, "{engine}: {r:?}");
        let images = versions::read_images(&mut conn, "m", &["1.0.0".into()]).await.unwrap();
        assert_eq!(images.len(), 1, "{engine}: {images:?}");
        let img = &images[0].image;
        assert_eq!(img.key["email"], "A@x.com", "{engine}: {img:?}");
        let after = img.after.as_ref().unwrap();
        assert_eq!(
            after.get("name").map(|v| v.to_string()),
            Some("\"new\"".into()),
            "{engine}"
        );
        assert!(!after.contains_key("email"), "{engine}: {after:?}");
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

/// A sync keeping 20,000 of 22,500 rows: its anti-joins (the rows to delete and
/// their images) probe the staged keys by index on every engine. Unindexed, SQLite
/// scanned the keys once per row: 26 s in a release build for this sync, against
/// 0.4 s with the index; the bound is far from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_over_many_keys_probes_them_by_index() {
    for engine in ENGINES {
        let (db, mut conn) = people(engine).await;
        let _ledger = Ledger::open(&db.url).await.unwrap();
        let table = conn.find_table("people").await.unwrap();
        let all: Vec<(i64, String)> = (1..=22_500).map(|i| (i, format!("p{i}"))).collect();
        let refs: Vec<(i64, &str)> = all.iter().map(|(i, n)| (*i, n.as_str())).collect();
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
        let started = std::time::Instant::now();
        let r = writer::write(&mut conn, &table, &sync, &rows(&refs[..20_000]), None)
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!((r.deleted, r.unchanged), (2_500, 20_000), "{engine}: {r:?}");
        assert!(took < std::time::Duration::from_secs(10), "{engine}: {took:?}");
    }
}

/// Records that all start on line 1 (a compact JSON array), numbered 1, 2, 3….
fn one_line(columns: &[&str], records: Vec<Vec<Value>>) -> Rows {
    let mut b = Batch::new(Arc::new(columns.iter().map(|c| c.to_string()).collect()));
    for (i, values) in records.into_iter().enumerate() {
        b.push(Row {
            line: 1,
            number: i as u64 + 1,
            values,
        });
    }
    Rows(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_that_share_a_line_carry_their_own_numbers() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE marks (n bigint CHECK (n > 0), note varchar(20) NOT NULL)")
            .await
            .unwrap();
        conn.batch("CREATE TABLE keyed (id bigint PRIMARY KEY, n bigint CHECK (n > 0), note varchar(20) NOT NULL)")
            .await
            .unwrap();
        let text = |s: &str| Value::Text(s.into());
        // A table without a key: the 2nd record fails its CHECK (found by the
        // database), the 3rd gives NULL for a NOT NULL column (found before sending).
        let marks = conn.find_table("marks").await.unwrap();
        let input = one_line(
            &["n", "note"],
            vec![
                vec![Value::Int(1), text("a")],
                vec![Value::Int(-2), text("b")],
                vec![Value::Int(3), Value::Null],
            ],
        );
        let r = writer::write(&mut conn, &marks, &WriteConfig::default(), &input, None)
            .await
            .unwrap();
        let got: Vec<(Option<u64>, Option<u64>)> = r.failed.iter().map(|e| (e.line, e.record)).collect();
        assert_eq!(got, [(Some(1), Some(2)), (Some(1), Some(3))], "{engine}: {r:?}");
        // With a key, by each way the writer finds failing rows: the quick diagnose
        // of an insert (a repeated key, named from the staging table), and the
        // careful one of an upsert.
        let keyed = conn.find_table("keyed").await.unwrap();
        let records = || {
            vec![
                vec![Value::Int(1), Value::Int(1), text("a")],
                vec![Value::Int(2), Value::Int(-2), text("b")],
                vec![Value::Int(1), Value::Int(3), text("c")],
            ]
        };
        let insert = WriteConfig {
            mode: WriteMode::Insert,
            ..WriteConfig::default()
        };
        let r = writer::write(
            &mut conn,
            &keyed,
            &insert,
            &one_line(&["id", "n", "note"], records()),
            None,
        )
        .await
        .unwrap();
        let got: Vec<(Option<u64>, Option<u64>)> = r.failed.iter().map(|e| (e.line, e.record)).collect();
        assert_eq!(got, [(Some(1), Some(2)), (Some(1), Some(3))], "{engine}: {r:?}");
        let upsert = WriteConfig {
            mode: WriteMode::Upsert,
            ..WriteConfig::default()
        };
        let mut upserted = records();
        upserted[2] = vec![Value::Int(3), Value::Int(3), Value::Null];
        let r = writer::write(
            &mut conn,
            &keyed,
            &upsert,
            &one_line(&["id", "n", "note"], upserted),
            None,
        )
        .await
        .unwrap();
        let got: Vec<(Option<u64>, Option<u64>)> = r.failed.iter().map(|e| (e.line, e.record)).collect();
        assert_eq!(got, [(Some(1), Some(2)), (Some(1), Some(3))], "{engine}: {r:?}");
        assert_eq!(r.failed[1].key.as_deref(), Some("id=3"), "{engine}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_stop_names_the_first_failing_row_when_a_later_batch_fails_first() {
    // The first batch's failure (a repeated key) is found by the database, which
    // reports it only when the open stream ends (MariaDB's LOAD DATA, PostgreSQL's
    // COPY); the second batch's (a NULL name) is found before sending. With
    // --on-error stop, the one reported is the first: the repeated key.
    for engine in ENGINES {
        let (_db, mut conn) = people(engine).await;
        conn.batch("INSERT INTO people VALUES (1, 'there')").await.unwrap();
        let table = conn.find_table("people").await.unwrap();
        let batch = |first: u64, data: Vec<(i64, Value)>| {
            let mut b = Batch::new(Arc::new(vec!["id".to_string(), "name".to_string()]));
            for (i, (id, name)) in data.into_iter().enumerate() {
                b.push(Row {
                    line: first + i as u64 + 1,
                    number: first + i as u64,
                    values: vec![Value::Int(id), name],
                });
            }
            b
        };
        let input = Batches(vec![
            batch(
                1,
                (2..=40)
                    .map(|i| (i, Value::Text("n".into())))
                    .chain([(1, Value::Text("dup".into()))])
                    .collect(),
            ),
            batch(41, vec![(100, Value::Null)]),
        ]);
        let config = WriteConfig {
            mode: WriteMode::Insert,
            on_error: OnError::Stop,
            ..WriteConfig::default()
        };
        let r = writer::write(&mut conn, &table, &config, &input, None).await.unwrap();
        let got: Vec<Option<u64>> = r.failed.iter().map(|e| e.record).collect();
        assert_eq!(got, [Some(40)], "{engine}: the repeated key, not the later NULL: {r:?}");
        assert_eq!(names(&mut conn).await, ["1=there"], "{engine}: nothing written");
    }
}
