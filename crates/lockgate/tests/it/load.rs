//! `load` end to end on each engine: clean and faulty files under every policy,
//! every write mode, "not given" columns, dry runs, the ledger and the lock.

use crate::support::*;
use lockgate::db::ledger::{Holder, Ledger};
use lockgate::db::writer::{OnError, WriteMode};
use lockgate::LoadError;
use lockgate_db::Engine;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_and_faulty_files_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, _) = generate(3000, None, dir.path());
    let (faulty, expected) = generate(3000, Some("0.02"), dir.path());
    assert!(expected > 30, "the generator made {expected} faulty rows");
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let mut conn = db.conn().await;

        // A faulty file: every bad row reported, nothing kept.
        let r = load(&db, "customers", std::slice::from_ref(&faulty), |_| {})
            .await
            .unwrap();
        assert_eq!(
            r.failed.len() as u64,
            expected,
            "{engine}: {:#?}",
            &r.failed[..3.min(r.failed.len())]
        );
        assert!(!r.committed && r.exit_code() == 3, "{engine}");
        assert_eq!(count(&mut conn, "customers").await, 0, "{engine}: nothing may stay");
        for e in &r.failed {
            assert!(
                e.line.is_some() && e.key.as_deref().is_some_and(|k| k.starts_with("customer_id=")),
                "{engine}: {e}"
            );
        }
        // Each kind of fault is named by the engine's own code.
        let codes: std::collections::BTreeSet<&str> = r.failed.iter().map(|e| e.code.as_str()).collect();
        assert!(codes.len() >= 2, "{engine}: {codes:?}");

        // stop: the first failing row only, nothing kept.
        let r = load(&db, "customers", std::slice::from_ref(&faulty), |o| {
            o.on_error = OnError::Stop
        })
        .await
        .unwrap();
        assert_eq!(r.failed.len(), 1, "{engine}");
        assert_eq!(count(&mut conn, "customers").await, 0, "{engine}");

        // skip: the good rows kept, the bad ones reported.
        let r = load(&db, "customers", std::slice::from_ref(&faulty), |o| {
            o.on_error = OnError::Skip
        })
        .await
        .unwrap();
        assert_eq!(r.failed.len() as u64, expected, "{engine}");
        assert!(r.committed && r.exit_code() == 0);
        assert_eq!(count(&mut conn, "customers").await as u64, 3000 - expected, "{engine}");

        // The clean file into a clean table.
        conn.batch("DELETE FROM customers").await.unwrap();
        let r = load(&db, "customers", std::slice::from_ref(&clean), |o| o.batch_rows = 700)
            .await
            .unwrap();
        assert!(r.failed.is_empty() && r.committed, "{engine}: {:?}", r.failed.first());
        assert_eq!((r.rows_read, r.inserted), (3000, 3000));
        assert_eq!(count(&mut conn, "customers").await, 3000, "{engine}");

        // Every run is in the ledger.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let runs = ledger.runs(10).await.unwrap();
        assert_eq!(runs.len(), 4, "{engine}");
        assert_eq!(runs[0].status, "succeeded");
        assert_eq!(runs[3].status, "failed");
        assert_eq!(runs[0].job, "load:customers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_modes_keep_not_given_columns() {
    let base = br#"{"customer_id": 1, "first_name": "Ann", "last_name": "Lee", "email": "a@x", "city": "Oslo", "acquisition_date": "2026-01-01", "lifetime_value": 10}
{"customer_id": 2, "first_name": "Bob", "last_name": "Ray", "email": "b@x", "city": "Lyon", "acquisition_date": "2026-01-02", "lifetime_value": 20.5}
{"customer_id": 3, "first_name": "Cy", "last_name": "Moe", "email": "c@x", "acquisition_date": "2026-01-03"}
"#;
    let update = br#"{"customer_id": 1, "city": "Pune"}
{"customer_id": 2, "lifetime_value": "99.90", "phone": "555"}
"#;
    let upsert = br#"{"customer_id": 2, "first_name": "Bobby", "last_name": "Ray", "email": "b@x", "acquisition_date": "2026-01-02"}
{"customer_id": 4, "first_name": "Dee", "last_name": "Kay", "email": "d@x", "acquisition_date": "2026-01-04", "city": "Lagos"}
"#;
    let missing = br#"{"customer_id": 9, "city": "Nowhere"}
"#;
    let (_d1, base) = temp_file("base.ndjson", base);
    let (_d2, update) = temp_file("update.ndjson", update);
    let (_d3, upsert) = temp_file("upsert.ndjson", upsert);
    let (_d4, missing) = temp_file("missing.ndjson", missing);
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let mut conn = db.conn().await;
        let q = "SELECT customer_id, first_name, phone, city, lifetime_value FROM customers ORDER BY customer_id";
        let table = conn.find_table("customers").await.unwrap();
        let kinds: Vec<lockgate_core::Kind> = ["customer_id", "first_name", "phone", "city", "lifetime_value"]
            .iter()
            .map(|c| table.column(c).unwrap().kind.clone())
            .collect();
        let kinds = &kinds;
        let r = load(&db, "customers", std::slice::from_ref(&base), |_| {})
            .await
            .unwrap();
        assert_eq!(r.inserted, 3, "{engine}: {:?}", r.failed);

        let r = load(&db, "customers", std::slice::from_ref(&update), |o| {
            o.mode = WriteMode::Update
        })
        .await
        .unwrap();
        assert_eq!((r.updated, r.inserted), (2, 0), "{engine}: {:?}", r.failed);
        assert_eq!(
            typed_rows(&mut conn, q, kinds).await,
            ["1|Ann|NULL|Pune|10.00", "2|Bob|555|Lyon|99.90", "3|Cy|NULL|NULL|NULL"],
            "{engine}: update changes only the given columns"
        );

        // update of a row that does not exist: that row's error, nothing kept.
        let r = load(&db, "customers", std::slice::from_ref(&missing), |o| {
            o.mode = WriteMode::Update
        })
        .await
        .unwrap();
        assert_eq!(r.failed.len(), 1, "{engine}");
        assert!(r.failed[0].message.contains("no row"), "{engine}: {}", r.failed[0]);

        let r = load(&db, "customers", std::slice::from_ref(&upsert), |o| {
            o.mode = WriteMode::Upsert
        })
        .await
        .unwrap();
        assert_eq!((r.updated, r.inserted), (1, 1), "{engine}: {:?}", r.failed);
        assert_eq!(
            typed_rows(&mut conn, q, kinds).await[1],
            "2|Bobby|555|Lyon|99.90",
            "{engine}: upsert leaves not-given columns"
        );

        let r = load(&db, "customers", std::slice::from_ref(&upsert), |o| {
            o.mode = WriteMode::InsertMissing
        })
        .await
        .unwrap();
        assert_eq!((r.updated, r.inserted), (0, 0), "{engine}");

        // sync limited by a scope: rows outside it stay.
        let r = load(&db, "customers", std::slice::from_ref(&upsert), |o| {
            o.mode = WriteMode::Sync;
            o.sync_where = Some("customer_id <> 3".into());
        })
        .await
        .unwrap();
        assert_eq!(r.deleted, 1, "{engine}: {:?}", r.failed);
        let ids: Vec<String> = rows(&mut conn, "SELECT customer_id FROM customers ORDER BY customer_id").await;
        assert_eq!(ids, ["2", "3", "4"], "{engine}");

        // A dry run reports and keeps nothing.
        let r = load(&db, "customers", std::slice::from_ref(&base), |o| {
            o.mode = WriteMode::Upsert;
            o.dry_run = true;
        })
        .await
        .unwrap();
        // Row 2 differs from the file (it was upserted above); row 3 does not.
        assert_eq!(
            (r.inserted, r.updated, r.unchanged, r.committed),
            (1, 1, 1, false),
            "{engine}"
        );
        assert_eq!(count(&mut conn, "customers").await, 3, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_load_waits_for_the_lock_and_names_the_holder() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let holder = Holder::current("test holder of the customers load");
        let job = ledger
            .table_job(&lockgate_core::TableName::new("customers"))
            .await
            .unwrap();
        let lock = ledger.lock(&job, &holder, Duration::from_secs(1)).await.unwrap();
        let (_d, file) = temp_file(
            "c.csv",
            b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n",
        );
        let err = load(&db, "customers", std::slice::from_ref(&file), |o| {
            o.lock_timeout = Duration::from_millis(300)
        })
        .await
        .unwrap_err();
        assert!(
            matches!(err, LoadError::Db(lockgate_db::DbError::LockTimeout { .. })),
            "{engine}: {err}"
        );
        assert!(
            err.to_string().contains("test holder of the customers load"),
            "{engine}: {err}"
        );
        assert_eq!(err.exit_code(), 1);
        // Another job's lock is independent.
        let other = ledger
            .lock(&job.replace("customers", "orders"), &holder, Duration::from_millis(200))
            .await
            .unwrap();
        ledger.unlock(other).await.unwrap();
        ledger.unlock(lock).await.unwrap();
        let r = load(&db, "customers", std::slice::from_ref(&file), |_| {})
            .await
            .unwrap();
        assert_eq!(r.inserted, 1, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_dies_with_its_holder() {
    // PostgreSQL and MariaDB free a session lock when the connection ends.
    for engine in [Engine::Postgres, Engine::Mysql] {
        let db = customers_db(engine).await;
        let holder = Holder::current("a holder that dies");
        {
            let mut ledger = Ledger::open(&db.url).await.unwrap();
            let _lock = ledger
                .lock("load:customers", &holder, Duration::from_secs(1))
                .await
                .unwrap();
        } // dropped without unlocking: the connection closes
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let lock = ledger
            .lock("load:customers", &holder, Duration::from_secs(3))
            .await
            .unwrap();
        ledger.unlock(lock).await.unwrap();
    }
    // SQLite: a row whose process is gone is taken over.
    let db = customers_db(Engine::Sqlite).await;
    let mut ledger = Ledger::open(&db.url).await.unwrap();
    let dead = Holder {
        what: "gone".into(),
        host: Holder::current("x").host,
        pid: 999_999,
    };
    let _stale = ledger
        .lock("load:customers", &dead, Duration::from_secs(1))
        .await
        .unwrap();
    let lock = ledger
        .lock("load:customers", &Holder::current("me"), Duration::from_secs(1))
        .await
        .unwrap();
    ledger.unlock(lock).await.unwrap();
}

/// Rows from memory, re-readable.
struct VecSource(Vec<lockgate_core::Batch>);

impl lockgate::db::writer::BatchSource for VecSource {
    fn open(&self) -> tokio::sync::mpsc::Receiver<Result<lockgate_core::Batch, lockgate::db::writer::SourceError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let batches = self.0.clone();
        tokio::spawn(async move {
            for b in batches {
                let _ = tx.send(Ok(b)).await;
            }
        });
        rx
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried() {
    // Another session holds the table; the writer's session gives up waiting after
    // 100 ms (lock_not_available, 55P03) and the unit is retried with backoff until
    // the table is free.
    let db = customers_db(Engine::Postgres).await;
    let mut conn = db.conn().await;
    let table = conn.find_table("customers").await.unwrap();
    conn.batch("SET lock_timeout = '100ms'").await.unwrap();
    let mut blocker = db.conn().await;
    blocker
        .batch("BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let columns: Vec<String> = ["customer_id", "first_name", "last_name", "email", "acquisition_date"]
        .map(String::from)
        .to_vec();
    let mut batch = lockgate_core::Batch::new(std::sync::Arc::new(columns));
    batch.push(lockgate_core::Row {
        line: 2,
        number: 1,
        values: vec![
            lockgate_core::Value::Int(1),
            lockgate_core::Value::Text("A".into()),
            lockgate_core::Value::Text("B".into()),
            lockgate_core::Value::Text("c".into()),
            chrono_date(),
        ],
    });
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        blocker.batch("COMMIT").await.unwrap();
    });
    let cfg = lockgate::db::writer::WriteConfig {
        retry: lockgate::db::writer::RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        reconnect: Some(db.url.clone()),
        ..Default::default()
    };
    let report = lockgate::db::writer::write(&mut conn, &table, &cfg, &VecSource(vec![batch]), None)
        .await
        .unwrap();
    release.await.unwrap();
    assert!(report.committed && report.attempts >= 2, "{report:?}");
    assert_eq!(count(&mut conn, "customers").await, 1);
}

fn chrono_date() -> lockgate_core::Value {
    lockgate_core::Kind::Date.parse_text("2026-01-01").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_only_the_engine_can_judge_are_found_too() {
    // A trigger refuses some rows: no set-based check foresees that, so the quick
    // diagnose must not stop at its own findings; every failing row is still named.
    let body = b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,a,2026-01-01\n2,,B,b,2026-01-01\n3,Refused,B,c,2026-01-01\n4,D,B,d,2026-01-01\n5,Refused,B,e,2026-01-01\n";
    let (_d, file) = temp_file("t.csv", body);
    for engine in [Engine::Postgres, Engine::Mysql] {
        let db = customers_db(engine).await;
        let mut conn = db.conn().await;
        match engine {
            Engine::Postgres => conn
                .batch(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
                     IF NEW.first_name = 'Refused' THEN RAISE EXCEPTION 'refused by trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
                     CREATE TRIGGER refuse BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION refuse()",
                )
                .await
                .unwrap(),
            _ => conn
                .batch(
                    "CREATE TRIGGER refuse BEFORE INSERT ON customers FOR EACH ROW \
                     IF NEW.first_name = 'Refused' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by trigger'; END IF",
                )
                .await
                .unwrap(),
        }
        let table = conn.find_table("customers").await.unwrap();
        assert!(
            table.unchecked.iter().any(|u| u.contains("trigger")),
            "{engine}: {:?}",
            table.unchecked
        );
        let r = load(&db, "customers", std::slice::from_ref(&file), |_| {})
            .await
            .unwrap();
        let lines: Vec<u64> = r.failed.iter().filter_map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 6], "{engine}: {:#?}", r.failed);
        assert!(
            r.failed[1].message.contains("refused by trigger"),
            "{engine}: {}",
            r.failed[1]
        );
        assert_eq!(count(&mut conn, "customers").await, 0, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_repeated_by_the_columns_collation_are_found() {
    // MariaDB's default collation is case-insensitive: "ann" and "ANN" are the same key.
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE people (handle varchar(20) PRIMARY KEY, age int CHECK (age >= 0)) ENGINE=InnoDB")
        .await
        .unwrap();
    let (_d, file) = temp_file("p.csv", b"handle,age\nann,1\nbob,-1\nANN,3\ncy,4\n");
    let r = load(&db, "people", std::slice::from_ref(&file), |_| {}).await.unwrap();
    let lines: Vec<u64> = r.failed.iter().filter_map(|e| e.line).collect();
    assert_eq!(lines, [3, 4], "{:#?}", r.failed);
    assert!(r.failed[1].message.contains("duplicate key"), "{}", r.failed[1]);
    assert_eq!(count(&mut conn, "people").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rows_of_several_files_are_named_by_file() {
    let (_d1, a) = temp_file("a.csv", b"customer_id,first_name,last_name,email,acquisition_date,lifetime_value\n1,A,B,a,2026-01-01,1\n2,A,B,b,2026-01-01,-2\n");
    let (_d2, b) = temp_file("b.csv", b"customer_id,first_name,last_name,email,acquisition_date,lifetime_value\n3,A,B,c,2026-01-01,3\n1,A,B,d,2026-01-01,4\n");
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let r = load(&db, "customers", &[a.clone(), b.clone()], |_| {}).await.unwrap();
        let places: Vec<(String, u64)> = r
            .failed
            .iter()
            .map(|e| {
                (
                    std::path::Path::new(e.file.as_deref().unwrap())
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    e.line.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            places,
            [("a.csv".to_string(), 3), ("b.csv".to_string(), 3)],
            "{engine}: {:#?}",
            r.failed
        );
        assert_eq!(count(&mut db.conn().await, "customers").await, 0, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_keys_compare_by_the_columns_collation() {
    // The staging table copies each column's collation: a binary key keeps "a" and
    // "A" apart, a case-insensitive one makes them the same row, as the table would.
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE bin_keys (k varchar(10) COLLATE utf8mb4_bin PRIMARY KEY, v int) ENGINE=InnoDB; \
         CREATE TABLE ci_keys (k varchar(10) COLLATE utf8mb4_general_ci PRIMARY KEY, v int) ENGINE=InnoDB; \
         INSERT INTO bin_keys VALUES ('a', 1); INSERT INTO ci_keys VALUES ('a', 1)",
    )
    .await
    .unwrap();
    let (_d, file) = temp_file("k.csv", b"k,v\nA,5\n");
    let r = load(&db, "bin_keys", std::slice::from_ref(&file), |o| {
        o.mode = WriteMode::Upsert
    })
    .await
    .unwrap();
    assert_eq!((r.inserted, r.updated), (1, 0), "{:?}", r.failed);
    let r = load(&db, "ci_keys", std::slice::from_ref(&file), |o| {
        o.mode = WriteMode::Upsert
    })
    .await
    .unwrap();
    assert_eq!((r.inserted, r.updated), (0, 1), "{:?}", r.failed);
    assert_eq!(count(&mut conn, "bin_keys").await, 2);
    assert_eq!(count(&mut conn, "ci_keys").await, 1);
}

#[tokio::test]
async fn a_load_whose_end_cannot_be_recorded_says_so() {
    let one = br#"{"customer_id": 1, "first_name": "Ann", "last_name": "Lee", "email": "a@x", "acquisition_date": "2026-01-01"}
"#;
    let (_dir, file) = temp_file("one.ndjson", one);
    for engine in ENGINES {
        let db = customers_db(engine).await;
        // The ledger exists once a first load ran; then it refuses every run's end.
        let r = load(&db, "customers", std::slice::from_ref(&file), |_| {})
            .await
            .unwrap();
        assert!(r.warnings.is_empty(), "{engine}: {:?}", r.warnings);
        db.conn()
            .await
            .batch(crate::transfer::refuse_run_ends(engine))
            .await
            .unwrap();
        let r = load(&db, "customers", std::slice::from_ref(&file), |o| {
            o.mode = WriteMode::Upsert
        })
        .await
        .unwrap();
        assert!(r.committed && r.exit_code() == 0, "{engine}");
        assert_eq!(r.warnings.len(), 1, "{engine}: {:?}", r.warnings);
        assert!(
            r.warnings[0].contains("could not be recorded in lockgate_runs")
                && r.warnings[0].contains("no run ends today"),
            "{engine}: {:?}",
            r.warnings
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["warnings"][0].is_string(), "{json:#}");
    }
}

/// A CSV of one column reads an empty line as PostgreSQL's COPY does: a NULL row,
/// loaded as one on every engine; in a CSV of several columns it is an error before
/// anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_line_of_a_one_column_csv_is_a_null_row() {
    let (_one_dir, one) = temp_file("names.csv", b"name\nx\n\ny\n\n");
    let (_two_dir, two) = temp_file("pairs.csv", b"name,note\nx,1\n\ny,2\n");
    for engine in ENGINES {
        let db = lockgate_db::testing::TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE t (name varchar(10), note varchar(10))")
            .await
            .unwrap();
        let r = load(&db, "t", std::slice::from_ref(&one), |_| {}).await.unwrap();
        assert!(r.committed && r.failed.is_empty(), "{engine}: {:?}", r.failed);
        assert_eq!((r.rows_read, r.inserted), (4, 4), "{engine}");
        assert_eq!(
            rows(&mut conn, "SELECT COUNT(*) FROM t WHERE name IS NULL").await,
            ["2"],
            "{engine}"
        );
        let e = load(&db, "t", std::slice::from_ref(&two), |_| {}).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            e.to_string().contains("pairs.csv:3") && e.to_string().contains("the line is empty"),
            "{engine}: {e}"
        );
        assert_eq!(count(&mut conn, "t").await, 4, "{engine}: the bad file wrote nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_whose_key_is_null_are_each_inserted() {
    // The database never calls two NULL keys equal: each such record is a row of
    // its own (none merged into another, none dropped), and a text key "NULL" is
    // an ordinary key.
    let (_d, file) = temp_file(
        "u.json",
        br#"[{"email": null, "name": "Ann"}, {"email": null, "name": "Bo"},
             {"email": "A@x.com", "name": "Cy"}, {"email": "a@x.com", "name": "Di"},
             {"email": "NULL", "name": "Ed"}, {"email": "NULL", "name": "Fay"}]"#,
    );
    for engine in ENGINES {
        for mode in [WriteMode::Upsert, WriteMode::InsertMissing] {
            let db = TestDb::new(engine).await;
            let mut conn = db.conn().await;
            // SQLite's NOCASE and MariaDB's collation merge the two spellings of a@x.com
            // in the database; PostgreSQL's text keys are merged in memory.
            conn.batch(match engine {
                Engine::Sqlite => "CREATE TABLE u (email varchar(50) COLLATE NOCASE NULL, name varchar(10))",
                _ => "CREATE TABLE u (email varchar(50) NULL, name varchar(10))",
            })
            .await
            .unwrap();
            let r = load(&db, "u", std::slice::from_ref(&file), |o| {
                o.mode = mode;
                o.key = vec!["email".into()];
            })
            .await
            .unwrap();
            let folds = engine != Engine::Postgres;
            let (ax, null) = match (mode, folds) {
                (WriteMode::Upsert, true) => (vec!["A@x.com|Di"], "NULL|Fay"),
                (_, true) => (vec!["A@x.com|Cy"], "NULL|Ed"),
                (WriteMode::Upsert, false) => (vec!["A@x.com|Cy", "a@x.com|Di"], "NULL|Fay"),
                (_, false) => (vec!["A@x.com|Cy", "a@x.com|Di"], "NULL|Ed"),
            };
            assert!(r.failed.is_empty(), "{engine} {mode:?}: {:?}", r.failed);
            assert_eq!(r.inserted as usize, 3 + ax.len(), "{engine} {mode:?}: {r:?}");
            let mut want: Vec<String> = ["NULL|Ann", "NULL|Bo", null].iter().map(|s| s.to_string()).collect();
            want.extend(ax.iter().map(|s| s.to_string()));
            want.sort();
            let mut got = rows(&mut conn, "SELECT email, name FROM u").await;
            got.sort();
            assert_eq!(got, want, "{engine} {mode:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_upsert_work_whatever_the_table_is_called() {
    // Lockgate's statements alias the target, the staging table and the keys: a
    // table named like one of those aliases must still be the target.
    let (_d, file) = temp_file("t.csv", b"id,v\n1,10\n2,2\n");
    for engine in ENGINES {
        for name in ["k", "s", "t", "t0", "g"] {
            let db = TestDb::new(engine).await;
            let mut conn = db.conn().await;
            let q = conn.dialect().quote(name);
            conn.batch(&format!(
                "CREATE TABLE {q} (id int PRIMARY KEY, v int); INSERT INTO {q} VALUES (1, 1), (2, 2), (3, 3)"
            ))
            .await
            .unwrap();
            let r = load(&db, name, std::slice::from_ref(&file), |o| o.mode = WriteMode::Sync)
                .await
                .unwrap();
            assert!(r.failed.is_empty(), "{engine} {name}: {:?}", r.failed);
            assert_eq!((r.inserted, r.updated, r.deleted), (0, 1, 1), "{engine} {name}: {r:?}");
            let mut got = rows(&mut conn, &format!("SELECT id, v FROM {q}")).await;
            got.sort();
            assert_eq!(got, ["1|10", "2|2"], "{engine} {name}");
        }
    }
}
