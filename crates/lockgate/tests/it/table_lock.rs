//! The table lock that `load`, `migrate`, `rollback` and `transfer run` (in a key
//! mode) share, on each engine: a command that finds the table held waits up to its
//! lock timeout, then fails naming the holder with nothing changed; once the lock is
//! given back it goes ahead. Held from a ledger connection standing for another
//! command, and by a real `migrate` paused in a process script.

use crate::migrate::{entry, meta, Bundle};
use crate::support::{count, customers_db, customers_schema, load, temp_file, TestDb, ENGINES};
use lockgate::db::ledger::{Holder, Ledger};
use lockgate::db::writer::WriteMode;
use lockgate::db::{exports, Conn, DbError, Engine};
use lockgate::transfer::{self, CreateOptions, RunOptions, SourceSpec, Transfer, TransferError};
use lockgate::{LoadError, MigrateError, MigrateOptions};
use lockgate_core::TableName;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_millis(700);

/// Asserts that a failure is a lock timeout on the customers table naming `holder`,
/// reached after waiting `WAIT` (and not much longer).
fn assert_timed_out(engine: Engine, e: Option<&DbError>, message: &str, holder: &str, started: Instant) {
    let waited = started.elapsed();
    match e {
        Some(DbError::LockTimeout { job, holder: named, .. }) => {
            // The table as the catalog resolves it: schema (or database) and name.
            assert!(
                job.starts_with("table:") && job.ends_with(".customers"),
                "{engine}: {job}: {message}"
            );
            assert!(named.contains(holder), "{engine}: {named}");
        }
        other => panic!("{engine}: expected a lock timeout, got {other:?}: {message}"),
    }
    assert!(message.contains(holder), "{engine}: {message}");
    assert!(
        waited >= WAIT,
        "{engine}: gave up after {waited:?}, before its lock timeout"
    );
    assert!(waited < WAIT + Duration::from_secs(10), "{engine}: waited {waited:?}");
}

/// An upsert of customer 1, as a CSV file.
fn upsert_file() -> (tempfile::TempDir, PathBuf) {
    temp_file(
        "c.csv",
        b"customer_id,first_name,last_name,email,acquisition_date\n1,Ann,Lee,ann@x.com,2026-01-01\n",
    )
}

/// A version 1.0.0 that upserts customer 2 and then runs `script` (a shell script).
fn customers_bundle(script: Option<&str>) -> Bundle {
    let b = Bundle::new();
    let mut files = vec![entry("customers", "default/customers.json")];
    if let Some(body) = script {
        files.push(json!({"file": "default/pause.sh"}));
        b.put("1.0.0/default/pause.sh", body);
    }
    b.json("1.0.0/meta.json", meta(json!(files))).json(
        "1.0.0/default/customers.json",
        json!([{"customer_id": 2, "first_name": "Bo", "last_name": "Ng", "email": "bo@x.com",
                "acquisition_date": "2026-01-02"}]),
    );
    b
}

/// A SQLite source of three customers and a transfer of them into `dest`'s
/// customers table by upsert (a key mode).
async fn upsert_transfer(dest: &TestDb) -> (TestDb, Transfer) {
    let src = TestDb::new(Engine::Sqlite).await;
    let mut conn = src.conn().await;
    conn.batch(customers_schema(Engine::Sqlite)).await.unwrap();
    conn.batch(
        "INSERT INTO customers (customer_id, first_name, last_name, email, acquisition_date) VALUES \
         (11, 'a', 'b', 'a@x.com', '2026-01-01'), (12, 'c', 'd', 'c@x.com', '2026-01-01'), \
         (13, 'e', 'f', 'e@x.com', '2026-01-01')",
    )
    .await
    .unwrap();
    let t = Transfer {
        name: "customers".into(),
        source: src.url.clone(),
        from: SourceSpec::Table("customers".into()),
        dest: dest.url.clone(),
        dest_table: "customers".into(),
        key: vec!["customer_id".into()],
        map: Vec::new(),
        batch_size: 100,
        mode: WriteMode::Upsert,
        commit_every: None,
        on_error: lockgate_db::writer::OnError::Rollback,
        lock_timeout: lockgate::transfer::DEFAULT_LOCK_TIMEOUT,
    };
    (src, t)
}

async fn export_status(conn: &mut Conn, id: i64) -> String {
    exports::get(conn, id).await.unwrap().unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_migrate_and_transfer_run_wait_for_the_table_and_name_its_holder() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let (_src, t) = upsert_transfer(&db).await;
        let export = transfer::create(&t, &CreateOptions::default())
            .await
            .unwrap()
            .export
            .unwrap()
            .id;
        let b = customers_bundle(None);
        let (_d, file) = upsert_file();

        // Another command holds the table (its lock, from its own ledger connection).
        let holder_name = "test: another command writing customers";
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let job = ledger.table_job(&TableName::new("customers")).await.unwrap();
        let lock = ledger
            .lock(&job, &Holder::current(holder_name), Duration::from_secs(5))
            .await
            .unwrap();

        let started = Instant::now();
        let e = load(&db, "customers", std::slice::from_ref(&file), |o| {
            o.mode = WriteMode::Upsert;
            o.lock_timeout = WAIT;
        })
        .await
        .unwrap_err();
        let db_err = match &e {
            LoadError::Db(d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), holder_name, started);
        assert_eq!(e.exit_code(), 1, "{engine}");

        let started = Instant::now();
        let e = lockgate::migrate(
            &db.url,
            &MigrateOptions {
                lock_timeout: WAIT,
                ..b.opts()
            },
            None,
        )
        .await
        .unwrap_err();
        let db_err = match &e {
            MigrateError::Db(d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), holder_name, started);
        assert_eq!(e.exit_code(), 1, "{engine}");

        let started = Instant::now();
        let opts = RunOptions {
            lock_timeout: WAIT,
            ..RunOptions::default()
        };
        let e = transfer::run_pending(std::slice::from_ref(&t), &opts)
            .await
            .unwrap_err();
        let db_err = match &e {
            TransferError::Dest(_, d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), holder_name, started);
        assert_eq!(e.exit_code(), 1, "{engine}");

        // Nothing changed: no row, no migrated version, the export still pending.
        let mut conn = db.conn().await;
        assert_eq!(count(&mut conn, "customers").await, 0, "{engine}");
        let version = lockgate::db::versions::module_version(&mut conn, "./").await.unwrap();
        assert_eq!(version, None, "{engine}");
        assert_eq!(export_status(&mut conn, export).await, "pending", "{engine}");

        // A command that may wait longer goes ahead once the lock is given back.
        let url = db.url.clone();
        let waiting_file = file.clone();
        let waiting = tokio::spawn(async move {
            let opts = lockgate::LoadOptions {
                table: "customers".into(),
                files: vec![waiting_file],
                mode: WriteMode::Upsert,
                lock_timeout: Duration::from_secs(60),
                ..Default::default()
            };
            lockgate::load(&url, &opts, None).await
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!waiting.is_finished(), "{engine}: the load must wait for the lock");
        ledger.unlock(lock).await.unwrap();
        let r = waiting.await.unwrap().unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.inserted, 1, "{engine}: {r:?}");
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        assert_eq!(export_status(&mut conn, export).await, "completed", "{engine}");
        assert_eq!(count(&mut conn, "customers").await, 4, "{engine}");
        // The lock is free again: nothing was left behind.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let job = ledger.table_job(&TableName::new("customers")).await.unwrap();
        let lock = ledger
            .lock(&job, &Holder::current("test"), Duration::from_secs(1))
            .await
            .unwrap();
        ledger.unlock(lock).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_and_a_transfer_wait_for_a_migrate_writing_the_table() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let (_src, t) = upsert_transfer(&db).await;
        transfer::create(&t, &CreateOptions::default()).await.unwrap();
        // The migrate pauses in a process script (after its data part committed),
        // holding the table's lock until its run ends.
        let marker = tempfile::tempdir().unwrap();
        let started_file = marker.path().join("started");
        let b = customers_bundle(Some(&format!("touch '{}'\nsleep 4\n", started_file.display())));
        let url = db.url.clone();
        let opts = MigrateOptions {
            script_timeout: Duration::from_secs(60),
            ..b.opts()
        };
        let migrating = tokio::spawn(async move { lockgate::migrate(&url, &opts, None).await });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started_file.exists() {
            assert!(
                Instant::now() < deadline,
                "{engine}: the migrate's script never started"
            );
            assert!(
                !migrating.is_finished(),
                "{engine}: the migrate ended before its script"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let (_d, file) = upsert_file();
        let started = Instant::now();
        let e = load(&db, "customers", std::slice::from_ref(&file), |o| {
            o.mode = WriteMode::Upsert;
            o.lock_timeout = WAIT;
        })
        .await
        .unwrap_err();
        let db_err = match &e {
            LoadError::Db(d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), "lockgate migrate", started);

        let started = Instant::now();
        let opts = RunOptions {
            lock_timeout: WAIT,
            ..RunOptions::default()
        };
        let e = transfer::run_pending(std::slice::from_ref(&t), &opts)
            .await
            .unwrap_err();
        let db_err = match &e {
            TransferError::Dest(_, d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), "lockgate migrate", started);
        assert!(!migrating.is_finished(), "{engine}: the migrate still holds the table");

        let r = migrating.await.unwrap().unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.failed_version, None, "{engine}: {r:?}");
        let r = load(&db, "customers", std::slice::from_ref(&file), |o| {
            o.mode = WriteMode::Upsert;
            o.lock_timeout = WAIT;
        })
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.inserted, 1, "{engine}: {r:?}");
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        assert_eq!(count(&mut db.conn().await, "customers").await, 5, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_waits_for_the_tables_it_puts_back() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let b = customers_bundle(None);
        b.json(
            "2.0.0/meta.json",
            meta(json!([entry("customers", "default/customers.json")])),
        )
        .json(
            "2.0.0/default/customers.json",
            json!([{"customer_id": 3, "first_name": "Cy", "last_name": "Do", "email": "cy@x.com",
                        "acquisition_date": "2026-01-03"}]),
        );
        let r = lockgate::migrate(&db.url, &b.opts(), None)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.new_version.as_deref(), Some("2.0.0"), "{engine}: {r:?}");

        let holder_name = "test: a load of customers";
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let job = ledger.table_job(&TableName::new("customers")).await.unwrap();
        let lock = ledger
            .lock(&job, &Holder::current(holder_name), Duration::from_secs(5))
            .await
            .unwrap();
        let back = lockgate::RollbackOptions {
            to: lockgate_bundle::Version::new(1, 0, 0),
            lock_timeout: WAIT,
            ..Default::default()
        };
        let started = Instant::now();
        let e = lockgate::rollback(&db.url, &back).await.unwrap_err();
        let db_err = match &e {
            MigrateError::Db(d) => Some(d),
            _ => None,
        };
        assert_timed_out(engine, db_err, &e.to_string(), holder_name, started);
        let mut conn = db.conn().await;
        assert_eq!(count(&mut conn, "customers").await, 2, "{engine}: nothing was undone");
        let version = lockgate::db::versions::module_version(&mut conn, "./").await.unwrap();
        assert_eq!(version.as_deref(), Some("2.0.0"), "{engine}");

        ledger.unlock(lock).await.unwrap();
        let r = lockgate::rollback(&db.url, &back)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert!(r.committed, "{engine}: {r:?}");
        assert_eq!(count(&mut conn, "customers").await, 1, "{engine}");
    }
}

/// A `migrate` changes the destination table while an export waits for the table's
/// lock (here its `city` column goes from integer to text, and the source's cities
/// are words): the export writes the table as it is once the lock is granted, not
/// as it was described before the wait (its cities would not have converted to
/// integers, and the export would have failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_waited_for_the_table_writes_it_as_it_is_after_the_wait() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let mut conn = db.conn().await;
        conn.batch("ALTER TABLE customers DROP COLUMN city").await.unwrap();
        conn.batch("ALTER TABLE customers ADD COLUMN city integer")
            .await
            .unwrap();
        let (src, t) = upsert_transfer(&db).await;
        src.conn()
            .await
            .batch("UPDATE customers SET city = 'Paris'")
            .await
            .unwrap();
        let export = transfer::create(&t, &CreateOptions::default())
            .await
            .unwrap()
            .export
            .unwrap()
            .id;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let job = ledger.table_job(&TableName::new("customers")).await.unwrap();
        let lock = ledger
            .lock(
                &job,
                &Holder::current("test: a migrate changing customers"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let waiting_t = t.clone();
        let waiting = tokio::spawn(async move {
            let opts = RunOptions {
                lock_timeout: Duration::from_secs(60),
                ..RunOptions::default()
            };
            transfer::run_pending(std::slice::from_ref(&waiting_t), &opts).await
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!waiting.is_finished(), "{engine}: the export must wait for the lock");
        conn.batch("ALTER TABLE customers DROP COLUMN city").await.unwrap();
        conn.batch("ALTER TABLE customers ADD COLUMN city varchar(20)")
            .await
            .unwrap();
        ledger.unlock(lock).await.unwrap();
        let r = waiting.await.unwrap().unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        assert_eq!(export_status(&mut conn, export).await, "completed", "{engine}");
        let rows = conn
            .query("SELECT count(*) FROM customers WHERE city = 'Paris'", &[], None)
            .await
            .unwrap();
        assert_eq!(rows[0][0].to_string(), "3", "{engine}");
    }
}

/// Holds `held` from a ledger of `held_url`, then loads `file` into `table` of
/// `load_url`: the load must time out on that lock (the same table, however named).
async fn load_waits_for(
    held_url: &lockgate::db::DbUrl,
    held: TableName,
    load_db: &TestDb,
    table: &str,
    file: &PathBuf,
) {
    let mut ledger = Ledger::open(held_url).await.unwrap();
    let job = ledger.table_job(&held).await.unwrap();
    let lock = ledger
        .lock(
            &job,
            &Holder::current("test: holding the table"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let e = load(load_db, table, std::slice::from_ref(file), |o| {
        o.mode = WriteMode::Upsert;
        o.lock_timeout = WAIT;
    })
    .await
    .unwrap_err();
    match &e {
        LoadError::Db(DbError::LockTimeout { job: waited, .. }) => assert_eq!(*waited, job),
        other => panic!("{table}: expected a lock timeout on {job}, got {other:?}"),
    }
    ledger.unlock(lock).await.unwrap();
    load(load_db, table, std::slice::from_ref(file), |o| {
        o.mode = WriteMode::Upsert
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_is_one_lock_however_it_is_named() {
    let (_d, file) = temp_file("k.csv", b"id,v\n1,10\n");
    // MariaDB: `other.k` through a connection to this database, and `k` through one
    // to `other`.
    let here = TestDb::new(Engine::Mysql).await;
    let other = TestDb::new(Engine::Mysql).await;
    other
        .conn()
        .await
        .batch("CREATE TABLE k (id int PRIMARY KEY, v int) ENGINE=InnoDB")
        .await
        .unwrap();
    let other_db = other.url.database().unwrap();
    load_waits_for(&other.url, TableName::new("k"), &here, &format!("{other_db}.k"), &file).await;
    load_waits_for(
        &here.url,
        TableName {
            schema: Some(other_db.clone()),
            name: "k".into(),
        },
        &other,
        "k",
        &file,
    )
    .await;
    // PostgreSQL: `s.t`, and `t` found through the search_path.
    let db = TestDb::new(Engine::Postgres).await;
    let pg_db = db.url.database().unwrap();
    db.conn()
        .await
        .batch(&format!(
            "CREATE SCHEMA s; CREATE TABLE s.t (id int PRIMARY KEY, v int); ALTER DATABASE {pg_db} SET search_path = s, public"
        ))
        .await
        .unwrap();
    let qualified = TableName {
        schema: Some("s".into()),
        name: "t".into(),
    };
    load_waits_for(&db.url, qualified, &db, "t", &file).await;
    load_waits_for(&db.url, TableName::new("t"), &db, "s.t", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_describes_the_table_after_taking_its_lock() {
    // A migration turns a number column into text while the load waits for the
    // table: the load types its values by the column as it is when it writes.
    let (_d, file) = temp_file("w.csv", b"id,v\n1,abcdefgh\n");
    for engine in [Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE w (id int PRIMARY KEY, v int)").await.unwrap();
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let job = ledger.table_job(&TableName::new("w")).await.unwrap();
        let lock = ledger
            .lock(&job, &Holder::current("test: a migration"), Duration::from_secs(5))
            .await
            .unwrap();
        let url = db.url.clone();
        let opts = lockgate::LoadOptions {
            table: "w".into(),
            files: vec![file.clone()],
            lock_timeout: Duration::from_secs(20),
            ..lockgate::LoadOptions::default()
        };
        let waiting = tokio::spawn(async move { lockgate::load(&url, &opts, None).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "{engine}: the load waits for the lock");
        conn.batch(match engine {
            Engine::Postgres => "ALTER TABLE w ALTER COLUMN v TYPE varchar(20)",
            _ => "ALTER TABLE w MODIFY v varchar(20)",
        })
        .await
        .unwrap();
        ledger.unlock(lock).await.unwrap();
        let r = waiting.await.unwrap().unwrap();
        assert!(r.failed.is_empty(), "{engine}: {:?}", r.failed);
        assert_eq!(r.inserted, 1, "{engine}");
        assert_eq!(count(&mut conn, "w").await, 1, "{engine}");
    }
}
