//! Transfers through the library API, between engines: exports that capture every
//! row error and roll back, row sets, the destination check, mappings, fencing,
//! `--commit-every`, unreachable servers, and the demo.

use crate::support::{count, customers_schema, TestDb};
use lockgate::transfer::{self, CreateOptions, RunOptions, SourceSpec, Transfer, TransferError};
use lockgate_core::Value;
use lockgate_db::exports;
use lockgate_db::writer::{OnError, WriteMode};
use lockgate_db::{Conn, DbUrl, Engine};
use std::time::Duration;

/// Source and destination engines: each engine as source and as destination.
const PAIRS: [(Engine, Engine); 4] = [
    (Engine::Sqlite, Engine::Postgres),
    (Engine::Postgres, Engine::Mysql),
    (Engine::Mysql, Engine::Sqlite),
    (Engine::Sqlite, Engine::Sqlite),
];

/// The source's customers: names nullable, no CHECK (the seed's source).
fn source_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE customers (customer_id bigint PRIMARY KEY, first_name text, last_name text, \
             email text NOT NULL, phone text, city varchar(20), acquisition_date date NOT NULL, lifetime_value numeric(12,2))"
        }
        Engine::Mysql => {
            "CREATE TABLE customers (customer_id bigint PRIMARY KEY, first_name varchar(100), last_name varchar(100), \
             email varchar(200) NOT NULL, phone varchar(50), city varchar(20), acquisition_date date NOT NULL, \
             lifetime_value decimal(12,2)) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, \
             email TEXT NOT NULL, phone TEXT, city TEXT, acquisition_date DATE NOT NULL, lifetime_value NUMERIC(12,2))"
        }
    }
}

/// Inserts customers `from..=to` into the source.
async fn add_customers(conn: &mut Conn, from: i64, to: i64) {
    let d = conn.dialect();
    let ps: Vec<String> = (1..=6).map(|i| d.param(i)).collect();
    let sql = format!(
        "INSERT INTO customers (customer_id, first_name, last_name, email, acquisition_date, lifetime_value) \
         VALUES ({})",
        ps.join(", ")
    );
    conn.begin().await.unwrap();
    for id in from..=to {
        conn.execute(
            &sql,
            &[
                Value::Int(id),
                Value::Text(format!("First{id}")),
                Value::Text("Last".into()),
                Value::Text(format!("c{id}@example.com")),
                Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 1, 1 + (id % 28) as u32).unwrap()),
                Value::Decimal(lockgate_core::Decimal::parse(&format!("{id}.25")).unwrap()),
            ],
        )
        .await
        .unwrap();
    }
    conn.commit().await.unwrap();
}

struct Pair {
    src: TestDb,
    dst: TestDb,
}

async fn pair(s: Engine, d: Engine, rows: i64) -> Pair {
    let src = TestDb::new(s).await;
    let dst = TestDb::new(d).await;
    src.conn().await.batch(source_schema(s)).await.unwrap();
    dst.conn().await.batch(customers_schema(d)).await.unwrap();
    add_customers(&mut src.conn().await, 1, rows).await;
    Pair { src, dst }
}

fn customers(p: &Pair) -> Transfer {
    Transfer {
        name: "customers".into(),
        source: p.src.url.clone(),
        from: SourceSpec::Table("customers".into()),
        dest: p.dst.url.clone(),
        dest_table: "customers".into(),
        key: vec!["customer_id".into()],
        map: Vec::new(),
        batch_size: 64,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    }
}

/// A transfer of table `table` from `src` to the table of that name in `dst`, keyed
/// on `key` (the destination's primary key when empty), every option at its default
/// but a batch of 10.
fn table_transfer(table: &str, src: &TestDb, dst: &TestDb, key: &[&str]) -> Transfer {
    Transfer {
        name: table.into(),
        source: src.url.clone(),
        from: SourceSpec::Table(table.into()),
        dest: dst.url.clone(),
        dest_table: table.into(),
        key: key.iter().map(|k| k.to_string()).collect(),
        map: Vec::new(),
        batch_size: 10,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    }
}

async fn create(t: &Transfer) -> transfer::CreateReport {
    transfer::create(t, &CreateOptions::default()).await.unwrap()
}

async fn run(t: &Transfer) -> transfer::RunReport {
    transfer::run_pending(std::slice::from_ref(t), &RunOptions::default())
        .await
        .unwrap()
}

async fn exec(url: &DbUrl, sql: &str) {
    Conn::connect(url).await.unwrap().batch(sql).await.unwrap();
}

#[tokio::test]
async fn a_null_name_fails_the_export_whole_and_a_fixed_row_exports_again() {
    for (s, d) in PAIRS {
        let p = pair(s, d, 300).await;
        let t = customers(&p);
        exec(
            &p.src.url,
            "UPDATE customers SET first_name = NULL WHERE customer_id = 7",
        )
        .await;
        exec(
            &p.src.url,
            "UPDATE customers SET last_name = NULL WHERE customer_id = 250",
        )
        .await;
        let c = create(&t).await;
        assert!(c.created, "{s:?}->{d:?}");
        let id = c.export.unwrap().id;
        let r = run(&t).await;
        assert_eq!(r.exit_code(), 3, "{s:?}->{d:?}");
        let e = &r.exports[0];
        assert_eq!(e.export.status, "failed");
        assert_eq!(e.export.error_count, 2);
        let keys: Vec<(&str, Option<&str>)> = e.errors.iter().map(|x| (x.key.as_str(), x.column.as_deref())).collect();
        assert_eq!(
            keys,
            vec![("7", Some("first_name")), ("250", Some("last_name"))],
            "{s:?}->{d:?}"
        );
        assert_eq!(
            count(&mut p.dst.conn().await, "customers").await,
            0,
            "nothing lands: {s:?}->{d:?}"
        );
        // The failed export's rows are free again; fixed, a new export takes them all.
        exec(
            &p.src.url,
            "UPDATE customers SET first_name = 'Fixed' WHERE customer_id = 7",
        )
        .await;
        exec(
            &p.src.url,
            "UPDATE customers SET last_name = 'Fixed' WHERE customer_id = 250",
        )
        .await;
        let c2 = create(&t).await;
        assert_eq!(c2.export.as_ref().unwrap().rows, 300);
        let r2 = run(&t).await;
        assert_eq!(r2.exit_code(), 0, "{s:?}->{d:?}: {:?}", r2.exports[0].errors);
        assert_eq!(r2.exports[0].export.rows_written, 300);
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 300);
        // The attempts of row 7: the failed export (its error) and the completed one.
        let h = transfer::history(&p.dst.url, "7", None).await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].export_id, h[0].status.as_str()), (id, "failed"));
        assert!(h[0].error.as_deref().unwrap().starts_with("first_name: "), "{:?}", h[0]);
        assert_eq!((h[1].status.as_str(), h[1].error.as_deref()), ("completed", None));
        // A row of the failed export that did not fail itself: rolled back, no error.
        let h = transfer::history(&p.dst.url, "8", None).await.unwrap();
        assert_eq!((h[0].status.as_str(), h[0].error.as_deref()), ("failed", None));
        let shown = transfer::show(&p.dst.url, id).await.unwrap();
        assert_eq!(shown.errors.len(), 2);
        // Values crossed engines intact.
        let mut dst = p.dst.conn().await;
        let rows = dst
            .query(
                "SELECT first_name, acquisition_date, lifetime_value FROM customers WHERE customer_id = 250",
                &[],
                Some(&[
                    lockgate_core::Kind::Any,
                    lockgate_core::Kind::Date,
                    lockgate_core::Kind::Decimal {
                        precision: None,
                        scale: None,
                        max_significant: None,
                    },
                ]),
            )
            .await
            .unwrap();
        assert_eq!(rows[0][0], Value::Text("First250".into()));
        assert_eq!(rows[0][1].to_string(), "2026-01-27");
        assert_eq!(rows[0][2].to_string(), "250.25");
    }
}

#[tokio::test]
async fn create_takes_only_rows_no_pending_running_or_completed_export_holds() {
    for (s, d) in PAIRS {
        let p = pair(s, d, 50).await;
        let t = customers(&p);
        assert_eq!(create(&t).await.export.unwrap().rows, 50);
        // Pending rows are held: nothing new to export.
        let again = create(&t).await;
        assert!(!again.created, "{s:?}->{d:?}");
        assert_eq!(again.available, 0);
        add_customers(&mut p.src.conn().await, 51, 60).await;
        let dry = transfer::create(&t, &CreateOptions { dry_run: true }).await.unwrap();
        assert_eq!((dry.created, dry.available), (false, 10));
        assert_eq!(create(&t).await.export.unwrap().rows, 10);
        let r = run(&t).await;
        assert_eq!(r.exports.len(), 2);
        assert!(r.exports.iter().all(|e| e.export.status == "completed"));
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 60);
        assert!(!create(&t).await.created, "completed rows are held");
        assert!(run(&t).await.exports.is_empty(), "nothing pending");
    }
}

#[tokio::test]
async fn the_destination_check_reports_every_problem_and_writes_nothing() {
    for (s, d) in PAIRS {
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        src.conn()
            .await
            .batch("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, born DATE, extra TEXT)")
            .await
            .unwrap();
        dst.conn()
            .await
            .batch("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, born INTEGER, required_col TEXT NOT NULL)")
            .await
            .unwrap();
        let t = Transfer {
            name: "people".into(),
            source: src.url.clone(),
            from: SourceSpec::Table("people".into()),
            dest: dst.url.clone(),
            dest_table: "people".into(),
            key: Vec::new(),
            map: Vec::new(),
            batch_size: 100,
            mode: WriteMode::Insert,
            commit_every: None,
            on_error: OnError::Rollback,
            lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
        };
        let err = transfer::create(&t, &CreateOptions::default()).await.unwrap_err();
        let TransferError::Check(problems) = &err else {
            panic!("{s:?}->{d:?}: {err}")
        };
        let text = problems.join("\n");
        assert_eq!(problems.len(), 3, "{s:?}->{d:?}: {text}");
        assert!(
            text.contains("source column \"extra\" has no column in destination table"),
            "{text}"
        );
        assert!(
            text.contains("source column \"born\" (date) cannot go into column \"born\""),
            "{text}"
        );
        assert!(
            text.contains("column \"required_col\" of people is NOT NULL without a default and nothing fills it"),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
        let mut c = dst.conn().await;
        assert!(
            c.lookup_table("lockgate_exports").await.unwrap().is_none(),
            "no ledger written"
        );
        // A key that is not a column, and --map naming a column the destination lacks.
        let t2 = Transfer {
            key: vec!["nope".into()],
            map: vec![("missing".into(), "'x'".into())],
            ..t.clone()
        };
        let TransferError::Check(p2) = transfer::check(&t2).await.unwrap_err() else {
            panic!()
        };
        let text = p2.join("\n");
        assert!(text.contains("key column \"nope\" is not a column"), "{text}");
        assert!(text.contains("--map names column \"missing\""), "{text}");
    }
}

#[tokio::test]
async fn map_renames_sets_constants_and_evaluates_source_expressions() {
    for (s, d) in PAIRS {
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        src.conn()
            .await
            .batch(
                "CREATE TABLE src_people (pid INTEGER PRIMARY KEY, fname VARCHAR(50), lname VARCHAR(50), active INTEGER)",
            )
            .await
            .unwrap();
        src.conn()
            .await
            .batch("INSERT INTO src_people VALUES (1, 'Ann', 'Lee', 1), (2, 'Bob', 'Ray', 0), (3, 'Cy', 'Oz', 1)")
            .await
            .unwrap();
        dst.conn()
            .await
            .batch(
                "CREATE TABLE people (id INTEGER PRIMARY KEY, first_name VARCHAR(50) NOT NULL, full_name VARCHAR(120), \
                 origin VARCHAR(10) NOT NULL, lname VARCHAR(50), active INTEGER)",
            )
            .await
            .unwrap();
        let t = Transfer {
            name: "people".into(),
            source: src.url.clone(),
            from: SourceSpec::Query("SELECT pid, fname, lname, active FROM src_people WHERE active = 1".into()),
            dest: dst.url.clone(),
            dest_table: "people".into(),
            key: vec!["id".into()],
            map: vec![
                ("id".into(), "pid".into()),
                ("first_name".into(), "fname".into()),
                ("full_name".into(), "upper(lname)".into()),
                ("origin".into(), "'web'".into()),
            ],
            batch_size: 2,
            mode: WriteMode::Insert,
            commit_every: None,
            on_error: OnError::Rollback,
            lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
        };
        let check = transfer::check(&t).await.unwrap();
        assert_eq!(check.key, vec!["id".to_string()]);
        assert_eq!(create(&t).await.export.unwrap().rows, 2, "{s:?}->{d:?}");
        assert_eq!(run(&t).await.exit_code(), 0);
        let rows = dst
            .conn()
            .await
            .query(
                "SELECT id, first_name, full_name, origin, lname FROM people ORDER BY id",
                &[],
                None,
            )
            .await
            .unwrap();
        let text: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|"))
            .collect();
        assert_eq!(text, vec!["1|Ann|LEE|web|Lee", "3|Cy|OZ|web|Oz"], "{s:?}->{d:?}");
    }
}

#[tokio::test]
async fn a_value_that_does_not_convert_is_that_rows_error() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let src = TestDb::new(Engine::Sqlite).await;
        let dst = TestDb::new(d).await;
        // SQLite keeps whatever it is given: text in a date column, a word as a number.
        src.conn()
            .await
            .batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, day TEXT, amount TEXT); \
                 INSERT INTO t VALUES (1, '2026-01-02', '12'), (2, 'not a date', '3'), (3, '2026-01-04', 'many'), \
                 (4, '2026-01-05', '7')",
            )
            .await
            .unwrap();
        dst.conn()
            .await
            .batch("CREATE TABLE t (id INTEGER PRIMARY KEY, day DATE, amount INTEGER)")
            .await
            .unwrap();
        let t = table_transfer("t", &src, &dst, &[]);
        create(&t).await;
        let r = run(&t).await;
        let e = &r.exports[0];
        assert_eq!(e.export.status, "failed", "{d:?}");
        let got: Vec<(&str, Option<&str>)> = e.errors.iter().map(|x| (x.key.as_str(), x.column.as_deref())).collect();
        assert_eq!(
            got,
            vec![("2", Some("day")), ("3", Some("amount"))],
            "{d:?}: {:?}",
            e.errors
        );
        assert_eq!(count(&mut dst.conn().await, "t").await, 0);
    }
}

#[tokio::test]
async fn an_unreachable_source_or_destination_changes_no_export() {
    let p = pair(Engine::Sqlite, Engine::Postgres, 20).await;
    let t = customers(&p);
    let id = create(&t).await.export.unwrap().id;
    let gone_source = Transfer {
        source: DbUrl::parse("postgres://postgres@127.0.0.1:1/nowhere").unwrap(),
        ..t.clone()
    };
    let err = transfer::run_pending(std::slice::from_ref(&gone_source), &RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Source(..)), "{err}");
    assert!(
        err.to_string()
            .starts_with("source postgres://postgres@127.0.0.1:1/nowhere: "),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
    let e = transfer::show(&p.dst.url, id).await.unwrap().export;
    assert_eq!((e.status.as_str(), e.attempts), ("pending", 0));
    let gone_dest = Transfer {
        dest: DbUrl::parse("postgres://postgres@127.0.0.1:1/nowhere").unwrap(),
        ..t.clone()
    };
    let err = transfer::run_pending(std::slice::from_ref(&gone_dest), &RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Dest(..)), "{err}");
    assert!(transfer::create(&gone_source, &CreateOptions::default()).await.is_err());
    let e = transfer::show(&p.dst.url, id).await.unwrap().export;
    assert_eq!((e.status.as_str(), e.attempts), ("pending", 0));
    // With both back, the same export runs.
    assert_eq!(run(&t).await.exit_code(), 0);
}

#[tokio::test]
async fn a_worker_whose_lease_expired_cannot_commit_after_another_took_over() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 30).await;
        let t = customers(&p);
        create(&t).await;
        // Worker A claims with a lease that runs out at once, then stalls.
        let mut a = Conn::connect(&p.dst.url).await.unwrap();
        let names = vec!["customers".to_string()];
        let claim_a = exports::claim(&mut a, &names, "worker A", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Worker B takes the expired claim over and completes the export.
        let r = run(&t).await;
        assert_eq!(r.exports.len(), 1, "{d:?}");
        assert_eq!(r.exports[0].export.status, "completed");
        assert_eq!(r.exports[0].export.attempts, 2);
        assert_eq!(r.exports[0].export.fence, claim_a.fence + 1);
        // A wakes up and tries to commit its work: the fence refuses it.
        a.begin().await.unwrap();
        assert!(!exports::complete(&mut a, &claim_a, 30, 0).await.unwrap(), "{d:?}");
        a.rollback().await.unwrap();
        assert!(!exports::fail(&mut a, &claim_a, &[], None).await.unwrap());
        assert!(!exports::release(&mut a, &claim_a, "x").await.unwrap());
        let e = transfer::show(&p.dst.url, claim_a.id).await.unwrap().export;
        assert_eq!(e.status, "completed");
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 30);
    }
}

#[tokio::test]
async fn commit_every_commits_chunks_resumably_and_never_exports_a_row_twice() {
    for (s, d) in PAIRS {
        let p = pair(s, d, 100).await;
        let t = Transfer {
            commit_every: Some(30),
            batch_size: 7,
            ..customers(&p)
        };
        exec(
            &p.src.url,
            "UPDATE customers SET first_name = NULL WHERE customer_id = 75",
        )
        .await;
        let id = create(&t).await.export.unwrap().id;
        let r = run(&t).await;
        let e = &r.exports[0].export;
        assert_eq!(e.status, "failed", "{s:?}->{d:?}");
        // Chunks 1-60 committed; the chunk holding row 75 rolled back.
        assert_eq!(e.committed_upto, 60);
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 60);
        exec(
            &p.src.url,
            "UPDATE customers SET first_name = 'Fixed' WHERE customer_id = 75",
        )
        .await;
        // The committed rows stay held by the failed export: only 61..100 are free.
        let c = create(&t).await;
        assert_eq!(c.export.unwrap().rows, 40, "{s:?}->{d:?}");
        assert_eq!(run(&t).await.exit_code(), 0);
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 100);
        let h = transfer::history(&p.dst.url, "10", None).await.unwrap();
        assert_eq!(h.len(), 1, "row 10 was exported once, by export {id}");
    }
}

#[tokio::test]
async fn a_composite_key_and_a_source_query_make_the_row_set() {
    let src = TestDb::new(Engine::Postgres).await;
    let dst = TestDb::new(Engine::Mysql).await;
    src.conn()
        .await
        .batch(
            "CREATE TABLE order_lines (order_id int, line int, sku text NOT NULL, PRIMARY KEY (order_id, line)); \
             INSERT INTO order_lines SELECT o, l, 'sku-' || o || '-' || l FROM generate_series(1, 20) o, generate_series(1, 3) l",
        )
        .await
        .unwrap();
    dst.conn()
        .await
        .batch(
            "CREATE TABLE order_lines (order_id int, line int, sku varchar(20) NOT NULL, PRIMARY KEY (order_id, line))",
        )
        .await
        .unwrap();
    let t = Transfer {
        name: "lines".into(),
        source: src.url.clone(),
        from: SourceSpec::Query("SELECT * FROM order_lines WHERE order_id <= 10".into()),
        dest: dst.url.clone(),
        dest_table: "order_lines".into(),
        key: Vec::new(),
        map: Vec::new(),
        batch_size: 4,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    };
    assert_eq!(create(&t).await.export.unwrap().rows, 30);
    assert_eq!(run(&t).await.exit_code(), 0);
    assert_eq!(count(&mut dst.conn().await, "order_lines").await, 30);
    let h = transfer::history(&dst.url, "3,2", None).await.unwrap();
    assert_eq!((h.len(), h[0].status.as_str()), (1, "completed"));
}

#[tokio::test]
async fn the_demo_is_the_seeds_sample() {
    let dir = tempfile::tempdir().unwrap();
    let r = lockgate::demo::create(dir.path()).await.unwrap();
    assert!(r.created);
    assert_eq!((r.customers, r.exported, r.exportable), (1336, 1107, 229));
    let statuses: Vec<&str> = r.exports.iter().rev().map(|e| e.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "completed",
            "completed",
            "failed",
            "completed",
            "completed",
            "completed",
            "completed"
        ]
    );
    let failed = &r.exports.iter().find(|e| e.status == "failed").unwrap();
    let t = r.files.transfer().unwrap();
    let detail = transfer::show(&t.dest, failed.id).await.unwrap();
    assert_eq!(detail.errors.len(), 2);
    // The failed export's rows were re-exported by the next one.
    let h = transfer::history(&t.dest, &detail.errors[0].key, None).await.unwrap();
    let outcome: Vec<&str> = h.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(outcome, ["failed", "completed"]);
    // A second `demo` keeps what is there.
    assert!(!lockgate::demo::create(dir.path()).await.unwrap().created);
    for bad in [0, 501, -3] {
        let err = lockgate::demo::generate(dir.path(), bad).await.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("give a number from 1 to 500"), "{err}");
    }
    let ids = lockgate::demo::generate(dir.path(), 10).await.unwrap();
    assert_eq!(ids, 1337..1347);
    let mut src = Conn::connect(&t.source).await.unwrap();
    let rows = src
        .query(
            "SELECT count(*) FROM customers WHERE CustomerID >= 1337 AND AcquisitionDate >= date('now', '-6 days') \
             AND AcquisitionDate <= date('now')",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::Int(10));
    let dry = transfer::create(&t, &CreateOptions { dry_run: true }).await.unwrap();
    assert_eq!(dry.available, 239);
}

/// The first integer of a query's first row.
async fn one_int(conn: &mut Conn, sql: &str) -> i64 {
    match conn
        .query(sql, &[], None)
        .await
        .unwrap()
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Int(n)) => *n,
        other => panic!("{sql}: {other:?}"),
    }
}

/// The demo's accounts.db: the customer-account shape a merge runs on (declared
/// references, unique sub-account usernames per customer), a merge with conflicts,
/// a clean one and a soft-deleted customer, the merge in lockgate.toml; kept by a
/// second `demo`, added to a demo folder that lacks it.
#[tokio::test]
async fn the_demo_has_customer_accounts_to_merge() {
    use lockgate::demo::{CLEAN_FROM, CLEAN_INTO, CONFLICT_FROM, CONFLICT_INTO, CONFLICT_USERNAMES, DELETED_CUSTOMER};
    use lockgate_core::TableName;
    let dir = tempfile::tempdir().unwrap();
    let r = lockgate::demo::create(dir.path()).await.unwrap();
    assert!(r.created);
    assert!(r.files.accounts.is_file(), "{}", r.files.accounts.display());
    let counts = lockgate_db::demo::AccountCounts {
        customers: 8,
        deleted_customers: 1,
        users: 61,
        jobs: 52,
        job_logs: 142,
        job_assignments: 68,
        products: 24,
        crops: 24,
        costing_items: 24,
        invoices: 23,
    };
    assert_eq!(r.accounts, counts);
    let url = r.files.accounts_url().unwrap();
    let mut conn = Conn::connect_existing(&url).await.unwrap();
    let mut tables: Vec<String> = conn.list_tables().await.unwrap().into_iter().map(|t| t.name).collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            "costing_items",
            "crops",
            "customers",
            "invoices",
            "job_assignments",
            "job_logs",
            "jobs",
            "products",
            "users"
        ]
    );
    // Every reference is declared, so introspection finds them all: (child column,
    // parent table, parent column), per table.
    type Reference = (&'static str, &'static str, &'static str);
    let expected: &[(&str, &[Reference])] = &[
        ("customers", &[]),
        ("users", &[("parent", "customers", "id")]),
        (
            "jobs",
            &[
                ("customer", "customers", "id"),
                ("client", "users", "id"),
                ("operator", "users", "id"),
                ("vehicle", "users", "id"),
            ],
        ),
        ("job_logs", &[("job", "jobs", "id")]),
        (
            "job_assignments",
            &[
                ("job", "jobs", "id"),
                ("pilot", "users", "id"),
                ("vehicle", "users", "id"),
            ],
        ),
        ("products", &[("customer", "customers", "id")]),
        ("crops", &[("customer", "customers", "id")]),
        ("costing_items", &[("customer", "customers", "id")]),
        ("invoices", &[("customer", "customers", "id")]),
    ];
    for (table, keys) in expected {
        let t = conn.describe(&TableName::new(*table)).await.unwrap().unwrap();
        assert_eq!(t.primary_key, ["id"], "{table}");
        let mut found: Vec<(String, String, String)> = t
            .foreign_keys
            .iter()
            .map(|k| {
                assert_eq!(k.columns.len(), 1, "{table}: {k:?}");
                let (from, to) = k.columns[0].clone();
                (from, k.references.name.clone(), to)
            })
            .collect();
        found.sort();
        let mut keys: Vec<(String, String, String)> = keys
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        keys.sort();
        assert_eq!(found, keys, "{table}");
    }
    let unique =
        |t: &lockgate_core::Table| -> Vec<Vec<String>> { t.unique.iter().map(|u| u.columns.clone()).collect() };
    let users = conn.describe(&TableName::new("users")).await.unwrap().unwrap();
    assert_eq!(unique(&users), [vec!["parent".to_string(), "username".to_string()]]);
    let customers = conn.describe(&TableName::new("customers")).await.unwrap().unwrap();
    assert_eq!(unique(&customers), [vec!["username".to_string()]]);
    // The rows keep their references, and each job's people and vehicle are its
    // customer's, of the right kind; every customer has sub-accounts of every kind.
    let dangling = conn.query("PRAGMA foreign_key_check", &[], None).await.unwrap();
    assert!(dangling.is_empty(), "{dangling:?}");
    let misplaced = "SELECT count(*) FROM jobs j JOIN users c ON c.id = j.client JOIN users o ON o.id = j.operator \
         JOIN users v ON v.id = j.vehicle WHERE c.parent <> j.customer OR o.parent <> j.customer \
         OR v.parent <> j.customer OR c.kind <> '3' OR o.kind <> '4' OR v.kind <> '9'";
    assert_eq!(one_int(&mut conn, misplaced).await, 0);
    let crew = "SELECT count(*) FROM job_assignments a JOIN jobs j ON j.id = a.job JOIN users p ON p.id = a.pilot \
         JOIN users v ON v.id = a.vehicle WHERE p.parent <> j.customer OR v.parent <> j.customer \
         OR p.kind <> '5' OR v.kind <> '9'";
    assert_eq!(one_int(&mut conn, crew).await, 0);
    let kinds = "SELECT count(*) FROM customers c WHERE (SELECT count(DISTINCT kind) FROM users u \
         WHERE u.parent = c.id AND u.kind IN ('3', '4', '5', '6', '9')) <> 5";
    assert_eq!(one_int(&mut conn, kinds).await, 0);
    // The conflicting pair shares exactly the usernames the demo names, and the
    // source's conflicting users have jobs; the clean pair shares none.
    let shared = |from: i64, into: i64| {
        format!(
            "SELECT a.username FROM users a JOIN users b ON b.username = a.username \
             WHERE a.parent = {from} AND b.parent = {into} ORDER BY a.username"
        )
    };
    let names: Vec<Value> = conn
        .query(&shared(CONFLICT_FROM, CONFLICT_INTO), &[], None)
        .await
        .unwrap()
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect();
    let expected: Vec<Value> = CONFLICT_USERNAMES.iter().map(|n| Value::Text(n.to_string())).collect();
    assert_eq!(names, expected);
    let jobs_of_conflicts = format!(
        "SELECT count(*) FROM jobs j JOIN users u ON u.id IN (j.client, j.vehicle) \
         WHERE j.customer = {CONFLICT_FROM} AND u.username IN ('north-farm', 'ag-truck-1')"
    );
    assert!(one_int(&mut conn, &jobs_of_conflicts).await > 0);
    let clean = format!("SELECT count(*) FROM ({})", shared(CLEAN_FROM, CLEAN_INTO));
    assert_eq!(one_int(&mut conn, &clean).await, 0);
    for id in [CONFLICT_FROM, CONFLICT_INTO, CLEAN_FROM, CLEAN_INTO] {
        let live = format!("SELECT count(*) FROM customers WHERE id = {id} AND deleted = 0 AND active = 1");
        assert_eq!(one_int(&mut conn, &live).await, 1, "customer {id}");
    }
    let deleted = "SELECT id FROM customers WHERE deleted = 1";
    assert_eq!(one_int(&mut conn, deleted).await, DELETED_CUSTOMER);
    // lockgate.toml names the connection and the merge as the merge reads them.
    let config = lockgate::config::Config::load(&r.files.config, true).unwrap();
    assert_eq!(config.resolve_db(Some("accounts")).unwrap(), url);
    let m = &config.merges["customers"];
    assert_eq!(m.db.as_deref(), Some("accounts"));
    assert_eq!(m.table.as_deref(), Some("customers"));
    assert_eq!(m.deleted_when.as_deref(), Some("deleted = 1"));
    use lockgate::merge::{MergeStatus, RowAction};
    let set =
        |pairs: &[(&str, &str)]| RowAction::Set(pairs.iter().map(|(c, e)| (c.to_string(), e.to_string())).collect());
    assert_eq!(m.sources, Some(set(&[("deleted", "1"), ("active", "0")])));
    assert_eq!(m.conflict_rows, Some(set(&[("deleted", "1")])));
    assert_eq!(m.skip_tables.as_deref(), Some(&[][..]));
    assert_eq!(m.timeout, Some(std::time::Duration::from_secs(60)));
    assert_eq!((m.references.as_ref(), m.merge_conflicts), (None, None));
    // The merges the demo suggests: 2 into 1 conflicts on the three shared usernames,
    // 4 into 3 is clean, and the soft-deleted 6 is refused.
    let preview = |from: &str, into: &str| {
        let mut o = m.options("customers");
        o.sources = vec![vec![from.to_string()]];
        o.target = vec![into.to_string()];
        o.preview = true;
        o
    };
    let p = lockgate::merge::merge(&url, &preview("2", "1"), None).await.unwrap();
    assert_eq!(
        (p.status, p.exit_code(), p.conflicts.len()),
        (MergeStatus::Preview, 4, 3)
    );
    let p = lockgate::merge::merge(&url, &preview("4", "3"), None).await.unwrap();
    assert_eq!(
        (p.status, p.exit_code(), p.conflicts.len()),
        (MergeStatus::Preview, 0, 0)
    );
    assert!(p.total_rows > 0);
    let e = lockgate::merge::merge(&url, &preview("6", "3"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("soft-deleted"), "{e}");
    assert!(config.transfers.contains_key("customers"));
    // A second `demo` keeps accounts.db as it is (an edit survives) and the file.
    conn.execute("UPDATE customers SET name = 'kept' WHERE id = 1", &[])
        .await
        .unwrap();
    drop(conn);
    let again = lockgate::demo::create(dir.path()).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.accounts, counts);
    let mut conn = Conn::connect_existing(&url).await.unwrap();
    let name = conn
        .query("SELECT name FROM customers WHERE id = 1", &[], None)
        .await
        .unwrap();
    assert_eq!(name, [[Value::Text("kept".into())]]);
    drop(conn);
    // A demo folder without accounts.db (made before it existed, or a run that died
    // half-way, leaving its partial file) gains it, and keeps its sample as it is.
    lockgate::demo::generate(dir.path(), 3).await.unwrap();
    std::fs::remove_file(&r.files.accounts).unwrap();
    std::fs::write(dir.path().join("accounts.db.partial"), "not a database").unwrap();
    let third = lockgate::demo::create(dir.path()).await.unwrap();
    assert!(third.created);
    assert_eq!(third.accounts, counts);
    assert_eq!((third.customers, third.exports.len()), (1339, r.exports.len()));
    assert!(!dir.path().join("accounts.db.partial").exists());
    assert!(lockgate::config::Config::load(&r.files.config, true)
        .unwrap()
        .merges
        .contains_key("customers"));
    // A lost lockgate.toml is written again; the databases stay as they are.
    std::fs::remove_file(&r.files.config).unwrap();
    let fourth = lockgate::demo::create(dir.path()).await.unwrap();
    assert!(!fourth.created);
    assert_eq!((fourth.customers, fourth.accounts), (1339, counts));
    let config = lockgate::config::Config::load(&r.files.config, true).unwrap();
    assert!(config.merges.contains_key("customers") && config.connections.contains_key("accounts"));
}

#[tokio::test]
async fn a_row_set_scattered_through_the_source_is_read_by_key() {
    for (s, d) in PAIRS {
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        src.conn().await.batch(source_schema(s)).await.unwrap();
        dst.conn().await.batch(customers_schema(d)).await.unwrap();
        let p = Pair { src, dst };
        let t = Transfer {
            batch_size: 100,
            ..customers(&p)
        };
        // Even ids first, exported; then the odd ids between them.
        let mut c = p.src.conn().await;
        for id in (2..=400).step_by(2) {
            add_customers(&mut c, id, id).await;
        }
        create(&t).await;
        assert_eq!(run(&t).await.exit_code(), 0);
        for id in (1..=399).step_by(2) {
            add_customers(&mut c, id, id).await;
        }
        assert_eq!(create(&t).await.export.unwrap().rows, 200, "{s:?}->{d:?}");
        let r = run(&t).await;
        assert_eq!(r.exit_code(), 0, "{s:?}->{d:?}: {:?}", r.exports[0].errors);
        assert_eq!(r.exports[0].export.rows_written, 200);
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 400);
    }
}

#[tokio::test]
async fn a_source_that_gives_a_key_twice_creates_no_export() {
    let src = TestDb::new(Engine::Sqlite).await;
    let dst = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(source_schema(Engine::Sqlite)).await.unwrap();
    dst.conn()
        .await
        .batch(customers_schema(Engine::Postgres))
        .await
        .unwrap();
    add_customers(&mut src.conn().await, 1, 5).await;
    let t = Transfer {
        name: "dups".into(),
        source: src.url.clone(),
        from: SourceSpec::Query(
            "SELECT * FROM customers UNION ALL SELECT * FROM customers WHERE customer_id = 3".into(),
        ),
        dest: dst.url.clone(),
        dest_table: "customers".into(),
        key: vec!["customer_id".into()],
        map: Vec::new(),
        batch_size: 10,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    };
    let err = transfer::create(&t, &CreateOptions::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the source gives these keys more than once: 3"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
    assert!(transfer::list(&dst.url, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_chunked_export_whose_worker_died_resumes_after_its_committed_chunks() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 100).await;
        let t = Transfer {
            commit_every: Some(30),
            ..customers(&p)
        };
        create(&t).await;
        // Worker A claims, commits its first chunk (rows 1-30, as a worker does: the
        // rows and the checkpoint in one transaction) and dies.
        let mut a = Conn::connect(&p.dst.url).await.unwrap();
        let claim = exports::claim(&mut a, &["customers".to_string()], "worker A", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        a.begin().await.unwrap();
        a.batch(
            "INSERT INTO customers (customer_id, first_name, last_name, email, acquisition_date) \
             SELECT 1, 'a', 'b', 'c', '2026-01-01'",
        )
        .await
        .unwrap();
        assert!(exports::checkpoint(&mut a, &claim, 1, 1, 0, Duration::from_millis(1))
            .await
            .unwrap());
        a.commit().await.unwrap();
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The next worker takes it over and goes on after row 1.
        let r = run(&t).await;
        assert_eq!(r.exit_code(), 0, "{d:?}: {:?}", r.exports[0]);
        let e = &r.exports[0].export;
        assert_eq!(
            (e.status.as_str(), e.rows_written, e.attempts),
            ("completed", 100, 2),
            "{d:?}"
        );
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 100);
    }
}

/// A customers table without a primary key, its key nullable, holding `rows` rows.
async fn keyless_source(rows: i64) -> TestDb {
    let src = TestDb::new(Engine::Postgres).await;
    src.conn()
        .await
        .batch(&format!(
            "CREATE TABLE customers (customer_id bigint, first_name text, last_name text, email text NOT NULL, \
             phone text, city varchar(20), acquisition_date date NOT NULL, lifetime_value numeric(12,2)); \
             INSERT INTO customers SELECT g, 'F' || g, 'L', 'c' || g || '@example.com', NULL, NULL, '2026-01-01', 1 \
             FROM generate_series(1, {rows}) g"
        ))
        .await
        .unwrap();
    src
}

#[tokio::test]
async fn keys_past_the_first_page_are_checked_for_nulls_and_repeats() {
    // PostgreSQL sorts NULLs last, past every page of keys: the NULL is still found.
    let src = keyless_source(50_050).await;
    let dst = TestDb::new(Engine::Sqlite).await;
    dst.conn().await.batch(customers_schema(Engine::Sqlite)).await.unwrap();
    let t = Transfer {
        source: src.url.clone(),
        dest: dst.url.clone(),
        batch_size: 5_000,
        ..customers(&Pair {
            src: TestDb::new(Engine::Sqlite).await,
            dst: TestDb::new(Engine::Sqlite).await,
        })
    };
    exec(
        &src.url,
        "INSERT INTO customers (customer_id, email, acquisition_date) VALUES (NULL, 'n@example.com', '2026-01-01')",
    )
    .await;
    let err = transfer::create(&t, &CreateOptions::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("a source row has a NULL key (customer_id)"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
    assert!(transfer::list(&dst.url, None, 10).await.unwrap().is_empty());

    // A key given twice across a page boundary (`create` reads 50,000 keys a page)
    // is not seen by the paging; the run finds both rows for it and fails the export
    // on that row, writing nothing.
    exec(&src.url, "DELETE FROM customers WHERE customer_id IS NULL").await;
    exec(
        &src.url,
        "INSERT INTO customers SELECT * FROM customers WHERE customer_id = 50000",
    )
    .await;
    let c = create(&t).await;
    assert_eq!(c.export.as_ref().map(|e| e.rows), Some(50_050));
    let r = run(&t).await;
    let o = &r.exports[0];
    assert_eq!(o.export.status, "failed");
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert_eq!(o.errors[0].key, "50000");
    assert!(
        o.errors[0].message.contains("more than one row with this key"),
        "{:?}",
        o.errors[0]
    );
    assert_eq!(count(&mut dst.conn().await, "customers").await, 0);
}

#[tokio::test]
async fn a_computed_key_on_sqlite_is_read_back_by_value() {
    // SQLite does not type an expression: its keys must still find their rows.
    let p = pair(Engine::Sqlite, Engine::Sqlite, 20).await;
    let t = Transfer {
        from: SourceSpec::Query(
            "SELECT customer_id + 1000 AS customer_id, first_name, last_name, email, phone, city, \
             acquisition_date, lifetime_value FROM customers -- the ids the destination uses"
                .into(),
        ),
        ..customers(&p)
    };
    assert_eq!(create(&t).await.export.map(|e| e.rows), Some(20));
    let r = run(&t).await;
    assert_eq!(r.exports[0].export.status, "completed", "{:?}", r.exports[0]);
    assert_eq!(r.exports[0].export.rows_written, 20);
    let rows = p
        .dst
        .conn()
        .await
        .query("SELECT min(customer_id), max(customer_id) FROM customers", &[], None)
        .await
        .unwrap();
    assert_eq!(rows[0], vec![Value::Int(1001), Value::Int(1020)]);
}

#[tokio::test]
async fn a_commit_the_destination_refuses_fails_the_export_and_keeps_nothing() {
    // A deferred constraint is checked only at COMMIT: no row can be named, but the
    // export must end failed with the engine's word, not loop back to pending.
    let src = TestDb::new(Engine::Sqlite).await;
    let dst = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(source_schema(Engine::Sqlite)).await.unwrap();
    add_customers(&mut src.conn().await, 1, 10).await;
    exec(
        &src.url,
        "UPDATE customers SET email = 'same@example.com' WHERE customer_id IN (3, 4)",
    )
    .await;
    dst.conn()
        .await
        .batch(
            "CREATE TABLE customers (customer_id bigint PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, \
             email text NOT NULL, phone text, city varchar(20), acquisition_date date NOT NULL, lifetime_value numeric(12,2), \
             CONSTRAINT one_email UNIQUE (email) DEFERRABLE INITIALLY DEFERRED)",
        )
        .await
        .unwrap();
    let t = Transfer {
        source: src.url.clone(),
        dest: dst.url.clone(),
        ..customers(&Pair {
            src: TestDb::new(Engine::Sqlite).await,
            dst: TestDb::new(Engine::Sqlite).await,
        })
    };
    create(&t).await;
    let r = run(&t).await;
    let e = &r.exports[0].export;
    assert_eq!(e.status, "failed", "{:?}", r.exports[0]);
    assert!(
        e.error
            .as_deref()
            .is_some_and(|m| m.contains("refused the commit") && m.contains("one_email")),
        "{e:?}"
    );
    assert_eq!(count(&mut dst.conn().await, "customers").await, 0);
    // Its rows are free again: after the fix, a new export takes all ten.
    exec(
        &src.url,
        "UPDATE customers SET email = 'four@example.com' WHERE customer_id = 4",
    )
    .await;
    assert_eq!(create(&t).await.export.map(|e| e.rows), Some(10));
    assert_eq!(run(&t).await.exports[0].export.status, "completed");
}

/// Source rows 7 and 250 with a NULL name: rows the destination refuses.
async fn two_bad_rows(p: &Pair) {
    exec(
        &p.src.url,
        "UPDATE customers SET first_name = NULL WHERE customer_id = 7",
    )
    .await;
    exec(
        &p.src.url,
        "UPDATE customers SET last_name = NULL WHERE customer_id = 250",
    )
    .await;
}

fn failed_keys(o: &transfer::ExportOutcome) -> Vec<String> {
    o.errors.iter().map(|x| x.key.clone()).collect()
}

#[tokio::test]
async fn on_error_skip_keeps_the_good_rows_and_frees_the_failing_ones() {
    for (s, d) in PAIRS {
        for commit_every in [None, Some(100)] {
            let p = pair(s, d, 300).await;
            let t = Transfer {
                on_error: OnError::Skip,
                commit_every,
                ..customers(&p)
            };
            two_bad_rows(&p).await;
            let id = create(&t).await.export.unwrap().id;
            // The policy is the export's: a runner with another one runs it as created.
            let runner = Transfer {
                on_error: OnError::Rollback,
                ..t.clone()
            };
            let r = run(&runner).await;
            let why = format!("{s:?}->{d:?} every {commit_every:?}");
            assert_eq!(r.exit_code(), 0, "{why}: {:?}", r.exports);
            let o = &r.exports[0];
            assert_eq!(o.export.status, "completed", "{why}");
            assert_eq!((o.export.rows_written, o.export.error_count), (298, 2), "{why}");
            assert_eq!(failed_keys(o), ["7", "250"], "{why}");
            assert_eq!(count(&mut p.dst.conn().await, "customers").await, 298, "{why}");
            // The skipped rows are not held by the completed export: fixed, a new
            // export takes exactly them.
            exec(
                &p.src.url,
                "UPDATE customers SET first_name = 'Fixed' WHERE customer_id = 7",
            )
            .await;
            exec(
                &p.src.url,
                "UPDATE customers SET last_name = 'Fixed' WHERE customer_id = 250",
            )
            .await;
            let c = create(&t).await;
            assert_eq!(c.export.as_ref().unwrap().rows, 2, "{why}");
            let r = run(&t).await;
            assert_eq!(r.exports[0].export.status, "completed", "{why}");
            assert_eq!(count(&mut p.dst.conn().await, "customers").await, 300, "{why}");
            assert!(!create(&t).await.created, "{why}");
            let h = transfer::history(&p.dst.url, "250", None).await.unwrap();
            assert_eq!(h.len(), 2, "{why}: {h:?}");
            assert_eq!((h[0].export_id, h[0].status.as_str()), (id, "completed"), "{why}");
            assert!(
                h[0].error.as_deref().is_some_and(|e| e.starts_with("last_name: ")),
                "{why}: {h:?}"
            );
            assert_eq!(h[1].error, None, "{why}");
        }
    }
}

#[tokio::test]
async fn on_error_stop_keeps_nothing_and_records_the_first_failing_row() {
    for (s, d) in PAIRS {
        let p = pair(s, d, 300).await;
        let t = Transfer {
            on_error: OnError::Stop,
            ..customers(&p)
        };
        two_bad_rows(&p).await;
        create(&t).await;
        let r = run(&t).await;
        assert_eq!(r.exit_code(), 3, "{s:?}->{d:?}");
        let o = &r.exports[0];
        assert_eq!(
            (o.export.status.as_str(), o.export.error_count),
            ("failed", 1),
            "{s:?}->{d:?}"
        );
        assert_eq!(failed_keys(o), ["7"], "{s:?}->{d:?}");
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 0, "{s:?}->{d:?}");
        // All its rows are free again.
        assert_eq!(create(&t).await.export.unwrap().rows, 300, "{s:?}->{d:?}");
    }
}

/// The create lock of the transfer `customers`, held as another create would.
async fn hold_create_lock(dest: &DbUrl) -> (lockgate_db::ledger::Ledger, lockgate_db::ledger::JobLock) {
    let mut other = lockgate_db::ledger::Ledger::open(dest).await.unwrap();
    let holder = lockgate_db::ledger::Holder::current("another create");
    let lock = other
        .lock("transfer-create:customers", &holder, Duration::ZERO)
        .await
        .unwrap();
    (other, lock)
}

#[tokio::test]
async fn create_waits_for_another_create_up_to_its_lock_timeout() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 20).await;
        let t = Transfer {
            lock_timeout: Duration::from_millis(300),
            ..customers(&p)
        };
        let (mut other, lock) = hold_create_lock(&p.dst.url).await;
        let started = std::time::Instant::now();
        let err = transfer::create(&t, &CreateOptions::default()).await.unwrap_err();
        let waited = started.elapsed();
        assert!(err.to_string().contains("is locked by another create"), "{d:?}: {err}");
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{d:?}: {waited:?}"
        );
        assert_eq!(transfer::list(&p.dst.url, None, 10).await.unwrap().len(), 0, "{d:?}");
        other.unlock(lock).await.unwrap();
        assert!(create(&t).await.created, "{d:?}");
    }
}

#[test]
fn on_error_and_lock_timeout_come_from_lockgate_toml_and_flags() {
    let head = "[transfers.c]\nsource = \"sqlite://a.db\"\nsource_table = \"t\"\ndest = \"sqlite://b.db\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lockgate.toml");
    let load = |tail: &str| {
        std::fs::write(&path, format!("{head}{tail}")).unwrap();
        lockgate::Config::load(&path, true)
    };
    let resolve = |config: &lockgate::Config, flags| Transfer::resolve("c", config, flags).unwrap();
    let config = load("on_error = \"skip\"\nlock_timeout = 5\n").unwrap();
    let t = resolve(&config, transfer::TransferSpec::default());
    assert_eq!((t.on_error, t.lock_timeout), (OnError::Skip, Duration::from_secs(5)));
    // Durations as every flag takes them.
    for (given, expect) in [("2.5", 2_500), ("\"30s\"", 30_000), ("\"5m\"", 300_000), ("0", 0)] {
        let config = load(&format!("lock_timeout = {given}\n")).unwrap();
        let t = resolve(&config, Default::default());
        assert_eq!(t.lock_timeout, Duration::from_millis(expect), "{given}");
    }
    // Flags override the file.
    let flags = transfer::TransferSpec {
        on_error: Some(OnError::Stop),
        lock_timeout: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let t = resolve(&config, flags);
    assert_eq!(
        (t.on_error, t.lock_timeout),
        (OnError::Stop, Duration::from_millis(500))
    );
    // Defaults: all or nothing, a minute.
    let t = resolve(&load("").unwrap(), Default::default());
    assert_eq!(
        (t.on_error, t.lock_timeout),
        (OnError::Rollback, Duration::from_secs(60))
    );
    // Bad values name the file and line, and what to write.
    let err = load("on_error = \"ignore\"\n").unwrap_err().to_string();
    assert!(err.contains("lockgate.toml:5") && err.contains("ignore"), "{err}");
    for bad in ["-1", "\"inf\"", "1e20", "\"5 minutes\"", "\"8000h\""] {
        let err = load(&format!("lock_timeout = {bad}\n")).unwrap_err().to_string();
        assert!(
            err.contains("lockgate.toml:5") && err.contains("is not a duration") && err.contains("30s, 5m"),
            "{bad}: {err}"
        );
    }
}

/// A source that answers one page slowly (longer than the lease) while the
/// destination session waits inside its transaction, in a key mode: the export still
/// completes (it is no stall; the lease is renewed), rather than having its session
/// ended and the export given back to be retried for ever.
#[tokio::test]
async fn a_slow_source_page_in_a_key_mode_does_not_end_the_export() {
    for (s, d) in [(Engine::Postgres, Engine::Mysql), (Engine::Mysql, Engine::Postgres)] {
        let p = pair(s, d, 200).await;
        let sleep = match s {
            Engine::Postgres => "(SELECT first_name FROM pg_sleep(2.5))",
            _ => "concat(first_name, left(sleep(2.5), 0))",
        };
        let query = format!(
            "SELECT customer_id, CASE WHEN customer_id = 150 THEN {sleep} ELSE first_name END AS first_name, \
             last_name, email, phone, city, acquisition_date, lifetime_value FROM customers"
        );
        let t = Transfer {
            from: SourceSpec::Query(query),
            mode: WriteMode::Upsert,
            batch_size: 25,
            ..customers(&p)
        };
        // Rows already there, so that the upsert stages and joins (an empty table
        // would take the insert path).
        let mut dst = p.dst.conn().await;
        dst.batch(
            "INSERT INTO customers (customer_id, first_name, last_name, email, acquisition_date) \
             VALUES (1, 'Old', 'Old', 'old@example.com', '2020-01-01')",
        )
        .await
        .unwrap();
        create(&t).await;
        let opts = RunOptions {
            lease: Duration::from_secs(1),
            ..RunOptions::default()
        };
        let started = std::time::Instant::now();
        let r = transfer::run_pending(std::slice::from_ref(&t), &opts).await.unwrap();
        assert_eq!(r.exit_code(), 0, "{s:?}->{d:?}: {:?}", r.exports);
        assert!(
            started.elapsed() >= Duration::from_millis(2500),
            "the slow page was not read"
        );
        let o = &r.exports[0];
        assert_eq!(
            (o.export.status.as_str(), o.export.attempts),
            ("completed", 1),
            "{s:?}->{d:?}"
        );
        assert_eq!(count(&mut dst, "customers").await, 200, "{s:?}->{d:?}");
    }
}

/// A failed export's row errors are recorded in the transaction that marks it
/// failed, under the claim's fence: while it is being recorded nobody can claim the
/// export (its lease may have run out meanwhile), and once it is recorded it is no
/// longer claimable, so no second worker runs it again and drops them.
#[tokio::test]
async fn row_errors_are_recorded_before_the_export_can_be_claimed_again() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 10).await;
        let t = customers(&p);
        let id = create(&t).await.export.unwrap().id;
        let names = vec!["customers".to_string()];
        let mut a = Conn::connect(&p.dst.url).await.unwrap();
        // A lease that has run out by the time the errors are recorded.
        let claim = exports::claim(&mut a, &names, "worker A", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.begin().await.unwrap();
        let rows = [exports::FailedRow {
            n: 3,
            column: Some("first_name".into()),
            code: "23502".into(),
            message: "null value".into(),
        }];
        assert!(
            exports::fail_within(&mut a, &claim, &rows, None).await.unwrap(),
            "{d:?}"
        );
        let mut b = Conn::connect(&p.dst.url).await.unwrap();
        let during = exports::claim(&mut b, &names, "worker B", Duration::from_secs(60)).await;
        assert!(matches!(during, Ok(None)), "{d:?}: {during:?}");
        a.commit().await.unwrap();
        let after = exports::claim(&mut b, &names, "worker B", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(after, None, "{d:?}");
        let shown = transfer::show(&p.dst.url, id).await.unwrap();
        assert_eq!((shown.export.status.as_str(), shown.export.error_count), ("failed", 1));
        assert_eq!(shown.errors.len(), 1, "{d:?}");
        assert_eq!(shown.errors[0].key, "3", "{d:?}");
    }
}

/// The statement that makes the ledger refuse to record any run's end.
pub(crate) fn refuse_run_ends(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE FUNCTION lg_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.ended_at IS NOT NULL THEN RAISE EXCEPTION 'no run ends today'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER lg_refuse BEFORE UPDATE ON lockgate_runs FOR EACH ROW EXECUTE FUNCTION lg_refuse()"
        }
        Engine::Mysql => {
            "CREATE TRIGGER lg_refuse BEFORE UPDATE ON lockgate_runs FOR EACH ROW BEGIN \
             IF NEW.ended_at IS NOT NULL THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no run ends today'; END IF; END"
        }
        Engine::Sqlite => {
            "CREATE TRIGGER lg_refuse BEFORE UPDATE ON lockgate_runs WHEN NEW.ended_at IS NOT NULL \
             BEGIN SELECT RAISE(ABORT, 'no run ends today'); END"
        }
    }
}

#[tokio::test]
async fn a_run_end_that_cannot_be_recorded_is_a_warning_not_silence() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 20).await;
        let t = customers(&p);
        create(&t).await;
        exec(&p.dst.url, refuse_run_ends(d)).await;
        let r = run(&t).await;
        assert_eq!(r.exit_code(), 0, "{d:?}");
        let o = &r.exports[0];
        assert_eq!(o.export.status, "completed", "{d:?}");
        assert_eq!(o.warnings.len(), 1, "{d:?}: {:?}", o.warnings);
        assert!(
            o.warnings[0].contains("could not be recorded in lockgate_runs")
                && o.warnings[0].contains("no run ends today"),
            "{d:?}: {:?}",
            o.warnings
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["exports"][0]["warnings"][0].is_string(), "{json:#}");
    }
}

/// A row lock that nobody ends (another application's open transaction, or a stalled
/// worker whose session could not be ended) fails the export after lock waits
/// bounded by the lease, and gives it back to pending, rather than holding the
/// worker for ever; once the lock is gone the same export completes.
#[tokio::test]
async fn a_lock_nobody_ends_gives_the_export_back_after_bounded_waits() {
    for d in [Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 40).await;
        let t = customers(&p);
        let id = create(&t).await.export.unwrap().id;
        let mut holder = p.dst.conn().await;
        holder.begin().await.unwrap();
        holder
            .batch(
                "INSERT INTO customers (customer_id, first_name, last_name, email, acquisition_date) \
                 VALUES (5, 'Held', 'Held', 'held@example.com', '2020-01-01')",
            )
            .await
            .unwrap();
        let opts = RunOptions {
            lease: Duration::from_secs(1),
            ..RunOptions::default()
        };
        let started = std::time::Instant::now();
        let err = transfer::run_pending(std::slice::from_ref(&t), &opts)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "{d:?}: {took:?}");
        assert!(err.to_string().to_lowercase().contains("lock"), "{d:?}: {err}");
        let e = transfer::show(&p.dst.url, id).await.unwrap().export;
        assert_eq!(e.status, "pending", "{d:?}: {e:?}");
        assert!(e.error.is_some(), "{d:?}: {e:?}");
        holder.rollback().await.unwrap();
        let r = transfer::run_pending(std::slice::from_ref(&t), &opts).await.unwrap();
        assert_eq!(r.exports[0].export.status, "completed", "{d:?}");
        assert_eq!(count(&mut p.dst.conn().await, "customers").await, 40, "{d:?}");
        eprintln!("{d:?}: gave the export back after {took:?}");
    }
}

/// The heartbeat's lease renewal fails (a trigger on the ledger refuses it): the
/// export still completes, and the failure is said, once, as a warning (in the
/// outcome and as a `Warning` event), not swallowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_cannot_be_renewed_is_a_warning() {
    for dest in [Engine::Postgres, Engine::Mysql] {
        // Small batches in a key mode, and rows enough for one renewal or more even on
        // a quiet machine (3,000 took under 0.3 s there).
        let p = pair(Engine::Sqlite, dest, 15_000).await;
        let t = Transfer {
            batch_size: 1,
            mode: WriteMode::Upsert,
            ..customers(&p)
        };
        let id = create(&t).await.export.unwrap().id;
        let trigger = match dest {
            Engine::Postgres => {
                "CREATE FUNCTION refuse_renewal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF OLD.status = 'running' AND NEW.status = 'running' \
                 AND NEW.lease_until_ms IS DISTINCT FROM OLD.lease_until_ms THEN \
                 RAISE EXCEPTION 'renewal refused by the test'; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER refuse_renewal BEFORE UPDATE ON lockgate_exports \
                 FOR EACH ROW EXECUTE FUNCTION refuse_renewal()"
            }
            _ => {
                "CREATE TRIGGER refuse_renewal BEFORE UPDATE ON lockgate_exports FOR EACH ROW \
                 IF OLD.status = 'running' AND NEW.status = 'running' \
                 AND NOT (NEW.lease_until_ms <=> OLD.lease_until_ms) THEN \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'renewal refused by the test'; END IF"
            }
        };
        exec(&p.dst.url, trigger).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = RunOptions {
            lease: Duration::from_millis(300),
            progress: Some(tx),
            ..RunOptions::default()
        };
        let r = transfer::run_pending(std::slice::from_ref(&t), &opts)
            .await
            .unwrap_or_else(|e| panic!("{dest}: {e}"));
        assert_eq!(r.exit_code(), 0, "{dest}: {r:?}");
        let o = &r.exports[0];
        assert_eq!((o.export.id, o.export.status.as_str()), (id, "completed"), "{dest}");
        assert!(o.seconds > 0.3, "{dest}: the export was too quick to renew its lease");
        let said: Vec<&String> = o
            .warnings
            .iter()
            .filter(|w| w.contains("the lease could not be renewed") && w.contains("renewal refused by the test"))
            .collect();
        assert_eq!(said.len(), 1, "{dest}: {:?}", o.warnings);
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert!(
            events
                .iter()
                .any(|e| matches!(e, transfer::TransferEvent::Warning { message } if message == said[0])),
            "{dest}: {events:?}"
        );
    }
}

/// The old one-row-per-key row-set table of a version 7 ledger, per engine.
fn legacy_rows_ddl(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE lockgate_export_rows (export_id bigint NOT NULL, n bigint NOT NULL, \
             row_key varchar(500) NOT NULL, PRIMARY KEY (export_id, n))"
        }
        Engine::Mysql => {
            "CREATE TABLE lockgate_export_rows (export_id bigint NOT NULL, n bigint NOT NULL, \
             row_key varchar(500) NOT NULL, PRIMARY KEY (export_id, n)) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "CREATE TABLE lockgate_export_rows (export_id INTEGER NOT NULL, n INTEGER NOT NULL, \
             row_key TEXT NOT NULL, PRIMARY KEY (export_id, n))"
        }
    }
}

/// Writes an export as a version 7 ledger held it: its row in `lockgate_exports`,
/// one `lockgate_export_rows` row per key (numbered `ns`, with the gaps `create`
/// left where it removed held keys) and errors by row number, without row keys.
async fn legacy_export(
    conn: &mut Conn,
    id: i64,
    status: &str,
    committed_upto: i64,
    rows: &[(i64, String)],
    error_ns: &[i64],
) {
    let d = conn.dialect();
    let ps: Vec<String> = (1..=5).map(|i| d.param(i)).collect();
    conn.execute(
        &format!(
            "INSERT INTO lockgate_exports (id, transfer, status, rows_total, committed_upto, created_at, on_error) \
             VALUES ({}, 'customers', {}, {}, {}, '2026-01-01 00:00:00', {})",
            ps[0], ps[1], ps[2], ps[3], ps[4]
        ),
        &[
            Value::Int(id),
            Value::Text(status.into()),
            Value::Int(rows.len() as i64),
            Value::Int(committed_upto),
            Value::Text("skip".into()),
        ],
    )
    .await
    .unwrap();
    for (n, key) in rows {
        conn.execute(
            &format!(
                "INSERT INTO lockgate_export_rows (export_id, n, row_key) VALUES ({}, {}, {})",
                ps[0], ps[1], ps[2]
            ),
            &[Value::Int(id), Value::Int(*n), Value::Text(key.clone())],
        )
        .await
        .unwrap();
    }
    for n in error_ns {
        conn.execute(
            &format!(
                "INSERT INTO lockgate_export_errors (export_id, n, code, message) VALUES ({}, {}, 'lockgate', {})",
                ps[0], ps[1], ps[2]
            ),
            &[Value::Int(id), Value::Int(*n), Value::Text(format!("row {n} failed"))],
        )
        .await
        .unwrap();
    }
}

/// A ledger written by the version before row sets were packed (one row per key,
/// numbered with gaps) is packed in place on the next open: row sets, errors (now
/// with their keys), a chunked export's committed rows and `history` read as before,
/// the old table is gone, and the next `create` leaves out exactly the rows the old
/// exports hold.
#[tokio::test]
async fn a_ledger_of_one_row_per_key_is_packed_in_place_and_holds_the_same_rows() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 300).await;
        let t = customers(&p);
        // A current ledger, then its row sets rewritten as version 7 held them.
        lockgate_db::ledger::Ledger::open(&p.dst.url).await.unwrap();
        let mut c = Conn::connect(&p.dst.url).await.unwrap();
        c.batch(legacy_rows_ddl(d)).await.unwrap();
        // A completed export (`skip`) of keys 1..=100 numbered 2, 4, …, 200, whose key 5
        // (row 10) failed and is free; a failed export of 101..=200; a chunked export
        // of 201..=250 numbered 10, 20, …, that committed up to row 100 (keys
        // 201..=210) before it failed.
        let a: Vec<(i64, String)> = (1..=100).map(|k| (2 * k, k.to_string())).collect();
        legacy_export(&mut c, 101, "completed", 0, &a, &[10]).await;
        let b: Vec<(i64, String)> = (101..=200).map(|k| (k - 100, k.to_string())).collect();
        legacy_export(&mut c, 102, "failed", 0, &b, &[3, 7]).await;
        let chunked: Vec<(i64, String)> = (201..=250).map(|k| (10 * (k - 200), k.to_string())).collect();
        legacy_export(&mut c, 103, "failed", 100, &chunked, &[]).await;
        // A running export of keys 251..=255 whose recorded count is wrong, claimed
        // (fence 3) by a worker of the earlier version.
        let running: Vec<(i64, String)> = (251..=255).map(|k| (3 * k, k.to_string())).collect();
        legacy_export(&mut c, 104, "running", 0, &running, &[]).await;
        c.batch("UPDATE lockgate_exports SET fence = 3, rows_total = 2 WHERE id = 104")
            .await
            .unwrap();
        c.batch("UPDATE lockgate_meta SET value = '7' WHERE name = 'schema_version'")
            .await
            .unwrap();
        drop(c);

        let shown = transfer::show(&p.dst.url, 101).await.unwrap();
        assert_eq!(shown.export.rows, 100, "{d:?}");
        let errs: Vec<(i64, &str)> = shown.errors.iter().map(|e| (e.n, e.key.as_str())).collect();
        assert_eq!(errs, [(5, "5")], "{d:?}: errors renumbered, with their keys");
        let failed = transfer::show(&p.dst.url, 102).await.unwrap();
        let errs: Vec<(i64, &str)> = failed.errors.iter().map(|e| (e.n, e.key.as_str())).collect();
        assert_eq!(errs, [(3, "103"), (7, "107")], "{d:?}");
        assert_eq!(
            transfer::show(&p.dst.url, 103).await.unwrap().export.committed_upto,
            10,
            "{d:?}"
        );
        let moved = transfer::show(&p.dst.url, 104).await.unwrap().export;
        assert_eq!((moved.rows, moved.fence), (5, 4), "{d:?}: counted again, fenced");
        let mut c = Conn::connect(&p.dst.url).await.unwrap();
        assert!(c.lookup_table("lockgate_export_rows").await.unwrap().is_none(), "{d:?}");
        let page = exports::row_set_page(&mut c, 101, 0, 1_000).await.unwrap();
        assert_eq!(page, (1..=100).map(|k| (k, k.to_string())).collect::<Vec<_>>(), "{d:?}");
        let mut ledger = lockgate_db::ledger::Ledger::open(&p.dst.url).await.unwrap();
        assert_eq!(
            ledger.schema_version().await.unwrap(),
            lockgate_db::ledger::SCHEMA_VERSION
        );
        let h = transfer::history(&p.dst.url, "5", None).await.unwrap();
        assert_eq!(h.len(), 1, "{d:?}");
        assert_eq!(
            (h[0].export_id, h[0].error.as_deref()),
            (101, Some("row 10 failed")),
            "{d:?}"
        );
        let h = transfer::history(&p.dst.url, "150", Some("customers")).await.unwrap();
        assert_eq!((h.len(), h[0].export_id, h[0].error.is_none()), (1, 102, true), "{d:?}");

        // Held: 1..=100 but 5, 201..=210 and 251..=255: 300 − 99 − 10 − 5 are free.
        let dry = transfer::create(&t, &CreateOptions { dry_run: true }).await.unwrap();
        assert_eq!(dry.available, 186, "{d:?}");
        let made = create(&t).await.export.unwrap();
        assert_eq!(made.rows, 186, "{d:?}");
        let keys: Vec<i64> = exports::row_set_page(&mut c, made.id, 0, 1_000)
            .await
            .unwrap()
            .iter()
            .map(|(_, k)| k.parse().unwrap())
            .collect();
        let want: Vec<i64> = std::iter::once(5)
            .chain(101..=200)
            .chain(211..=250)
            .chain(256..=300)
            .collect();
        assert_eq!(keys, want, "{d:?}");
    }
}

/// `create` never reads a failed export's row set: with the row sets of ten failed
/// exports made unreadable, the next create still works and takes every row (its
/// cost follows the source and the held rows, not the history of attempts).
#[tokio::test]
async fn create_never_reads_the_row_sets_of_failed_exports() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 40).await;
        let t = customers(&p);
        exec(
            &p.src.url,
            "UPDATE customers SET first_name = NULL WHERE customer_id = 7",
        )
        .await;
        for _ in 0..10 {
            assert!(create(&t).await.created);
            assert_eq!(run(&t).await.exports[0].export.status, "failed", "{d:?}");
        }
        let mut c = Conn::connect(&p.dst.url).await.unwrap();
        let d_ = c.dialect();
        c.execute(
            &format!("UPDATE lockgate_export_chunks SET packed = {}", d_.param(1)),
            &[Value::Bytes(vec![9, 9, 9])],
        )
        .await
        .unwrap();
        let made = create(&t).await.export.unwrap();
        assert_eq!(made.rows, 40, "{d:?}");
        // The new export's own chunks are read: it holds every row.
        let dry = transfer::create(&t, &CreateOptions { dry_run: true }).await.unwrap();
        assert_eq!(dry.available, 0, "{d:?}");
        // A held row set that cannot be read is an error that says so, not a guess.
        c.execute(
            &format!(
                "UPDATE lockgate_export_chunks SET packed = {} WHERE export_id = {}",
                d_.param(1),
                d_.param(2)
            ),
            &[Value::Bytes(vec![9, 9, 9]), Value::Int(made.id)],
        )
        .await
        .unwrap();
        let err = transfer::create(&t, &CreateOptions { dry_run: true })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("damaged"), "{d:?}: {err}");
    }
}

/// The count (`create --dry-run`, the Export button) takes no lock and uses no export
/// id: it answers while another create holds the transfer's lock, and the next
/// export's id follows the last one's.
#[tokio::test]
async fn the_count_takes_no_lock_and_uses_no_export_id() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 30).await;
        let t = Transfer {
            lock_timeout: Duration::from_secs(20),
            ..customers(&p)
        };
        let first = create(&t).await.export.unwrap();
        add_customers(&mut p.src.conn().await, 31, 45).await;
        let (mut other, lock) = hold_create_lock(&p.dst.url).await;
        let started = std::time::Instant::now();
        for _ in 0..3 {
            let dry = transfer::create(&t, &CreateOptions { dry_run: true }).await.unwrap();
            assert_eq!((dry.created, dry.available), (false, 15), "{d:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{d:?}: the count waited");
        other.unlock(lock).await.unwrap();
        let next = create(&t).await.export.unwrap();
        assert_eq!(next.id, first.id + 1, "{d:?}: no id used up");
        assert_eq!(next.rows, 15);
    }
}

/// A row set of consecutive integer keys is a chunk row per few thousand keys, a
/// few bytes each; a page from the middle reads back exactly, and `history` finds a
/// row by its key through the chunks' integer ranges. (Text and composite keys: the
/// unit tests of `lockgate_db::rowset`, and the composite-key and padded-key tests.)
#[tokio::test]
async fn row_sets_are_packed_and_read_back_exactly() {
    for d in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let p = pair(Engine::Sqlite, d, 9_000).await;
        let t = customers(&p);
        let made = create(&t).await.export.unwrap();
        let mut c = Conn::connect(&p.dst.url).await.unwrap();
        let rows = c
            .query(
                "SELECT count(*), sum(length(packed)) FROM lockgate_export_chunks",
                &[],
                None,
            )
            .await
            .unwrap();
        let (chunks, bytes) = (rows[0][0].to_string(), rows[0][1].to_string());
        assert_eq!(chunks, "3", "{d:?}: 9,000 keys in chunks of 4,096");
        assert!(bytes.parse::<f64>().unwrap() < 30.0, "{d:?}: {bytes} bytes");
        let page = exports::row_set_page(&mut c, made.id, 4_090, 10).await.unwrap();
        assert_eq!(page, (4_091..=4_100).map(|k| (k, k.to_string())).collect::<Vec<_>>());
        let h = transfer::history(&p.dst.url, "8191", None).await.unwrap();
        assert_eq!(h.iter().map(|a| a.export_id).collect::<Vec<_>>(), [made.id], "{d:?}");
        assert!(transfer::history(&p.dst.url, "9001", None).await.unwrap().is_empty());
        // A chunk gone from the middle (the review's damaged ledger) is an error of
        // the page that needs it, never a row set that ends early.
        c.batch("DELETE FROM lockgate_export_chunks WHERE first_n = 4097")
            .await
            .unwrap();
        let err = exports::row_set_page(&mut c, made.id, 4_000, 500).await.unwrap_err();
        assert!(err.to_string().contains("no chunk for row 4097"), "{d:?}: {err}");
    }
}

/// A key the source gives twice is found even when the repeat does not come next to
/// the first: a MariaDB column under a case-insensitive collation sorts `a`, `A`,
/// `a` (found by the review of packed row sets: only neighbours were compared, and
/// the run paired the rows by position, so both copies were exported). The count
/// says so too; nothing is created.
#[tokio::test]
async fn a_repeated_key_is_found_when_it_does_not_follow_itself() {
    let src = TestDb::new(Engine::Mysql).await;
    let dst = TestDb::new(Engine::Sqlite).await;
    src.conn()
        .await
        .batch(
            "CREATE TABLE codes (k varchar(20) COLLATE utf8mb4_general_ci NOT NULL, v int NOT NULL) ENGINE=InnoDB; \
             INSERT INTO codes (k, v) VALUES ('a', 1), ('A', 2), ('a', 3), ('b', 4)",
        )
        .await
        .unwrap();
    dst.conn()
        .await
        .batch("CREATE TABLE codes (k TEXT NOT NULL, v INTEGER NOT NULL)")
        .await
        .unwrap();
    let t = table_transfer("codes", &src, &dst, &["k"]);
    for dry_run in [true, false] {
        let err = transfer::create(&t, &CreateOptions { dry_run }).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the source gives these keys more than once: a"),
            "dry {dry_run}: {err}"
        );
    }
    assert!(transfer::list(&dst.url, None, 10).await.unwrap().is_empty());
}
