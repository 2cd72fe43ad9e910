//! Bad input of every kind: a clear error naming the place, and nothing written.

use crate::support::*;
use lockgate_db::Engine;

/// One bad-input case: a file, and what the load must say.
struct Case {
    name: &'static str,
    file: &'static str,
    body: &'static [u8],
    table: &'static str,
    /// Fragments the error (or the first row error) must contain.
    expect: &'static [&'static str],
    exit: i32,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed JSON names file, line and column",
            file: "bad.json",
            body: b"[\n{\"customer_id\": 1, \"first_name\": \"A\",}\n]",
            table: "customers",
            expect: &["bad.json:2:"],
            exit: 2,
        },
        Case {
            name: "malformed CSV names file and line",
            file: "bad.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n2,\"A,B,c,2026-01-01\n",
            table: "customers",
            expect: &["bad.csv:3"],
            exit: 2,
        },
        Case {
            name: "wrong type names row and column",
            file: "type.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n2,A,B,c,yesterday\n",
            table: "customers",
            expect: &["type.csv:3", "customer_id=2", "acquisition_date", "not a date"],
            exit: 3,
        },
        Case {
            name: "value too long names row and column",
            file: "long.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date,city\n7,A,B,c,2026-01-01,Llanfairpwllgwyngyllgogerychwyrndrobwll\n",
            table: "customers",
            expect: &["long.csv:2", "customer_id=7", "city", "at most 20"],
            exit: 3,
        },
        Case { name: "missing file", file: "", body: b"", table: "customers", expect: &["does-not-exist.csv"], exit: 2 },
        Case {
            name: "unknown table lists the tables",
            file: "ok.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n",
            table: "custmers",
            expect: &["custmers", "does not exist", "customers"],
            exit: 2,
        },
        Case {
            name: "unknown column names it",
            file: "col.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date,shoe_size\n1,A,B,c,2026-01-01,44\n",
            table: "customers",
            expect: &["col.csv", "shoe_size", "not a column"],
            exit: 2,
        },
        Case {
            name: "a table name with quotes and semicolons is only a name",
            file: "ok.csv",
            body: b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n",
            table: "customers\"; DROP TABLE customers; --",
            expect: &["does not exist"],
            exit: 2,
        },
        Case {
            name: "a column name with quotes and semicolons is only a name",
            file: "evil.csv",
            body: b"customer_id,\"first_name`; DROP TABLE customers; --\",last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n",
            table: "customers",
            expect: &["not a column"],
            exit: 2,
        },
        Case { name: "empty file", file: "empty.ndjson", body: b"", table: "customers", expect: &["empty.ndjson", "empty"], exit: 2 },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_written() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let mut conn = db.conn().await;
        for case in cases() {
            if engine == Engine::Sqlite && case.file == "long.csv" {
                // SQLite enforces no lengths: the whole value is stored, losslessly.
                continue;
            }
            let (_dir, path) = if case.file.is_empty() {
                let d = tempfile::tempdir().unwrap();
                let p = d.path().join("does-not-exist.csv");
                (d, p)
            } else {
                temp_file(case.file, case.body)
            };
            let (message, exit) = match load(&db, case.table, std::slice::from_ref(&path), |_| {}).await {
                Ok(r) => (
                    r.failed.first().map(|e| e.to_string()).unwrap_or_default(),
                    r.exit_code(),
                ),
                Err(e) => (e.to_string(), e.exit_code()),
            };
            for fragment in case.expect {
                assert!(
                    message.contains(fragment),
                    "{engine}, {}: {message:?} lacks {fragment:?}",
                    case.name
                );
            }
            assert_eq!(exit, case.exit, "{engine}, {}: {message}", case.name);
            assert_eq!(
                count(&mut conn, "customers").await,
                0,
                "{engine}, {}: nothing may be written",
                case.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_myisam_table_is_refused_before_writing() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE legacy (id int PRIMARY KEY, name varchar(10)) ENGINE=MyISAM")
        .await
        .unwrap();
    let (_d, file) = temp_file("l.csv", b"id,name\n1,a\n");
    let err = load(&db, "legacy", std::slice::from_ref(&file), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(
        err.to_string().contains("MyISAM") && err.to_string().contains("ENGINE=InnoDB"),
        "{err}"
    );
    assert_eq!(count(&mut conn, "legacy").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minified_ten_megabyte_json_array_loads() {
    let mut body = String::from("[");
    let mut n = 0;
    while body.len() < 10 * 1024 * 1024 {
        if n > 0 {
            body.push(',');
        }
        n += 1;
        body.push_str(&format!(
            r#"{{"customer_id":{n},"first_name":"Zoë","last_name":"O'Neil","email":"z.{n}@example.com","phone":null,"acquisition_date":"2026-11-01","lifetime_value":{}.25}}"#,
            n % 5000
        ));
    }
    body.push(']');
    let db = customers_db(Engine::Sqlite).await;
    let (_d, file) = temp_file("big.json", body.as_bytes());
    let r = load(&db, "customers", std::slice::from_ref(&file), |_| {})
        .await
        .unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed.first());
    assert_eq!(r.inserted, n);
    assert_eq!(count(&mut db.conn().await, "customers").await as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_after_streamed_batches_keeps_nothing() {
    // Batches of one row: the first rows are already streaming into the table (an
    // open COPY on PostgreSQL) when the reader meets the bad line.
    let body = b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n2,A,B,c,2026-01-01\n3,\"A,B,c,2026-01-01\n";
    let (_d, file) = temp_file("late.csv", body);
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let err = load(&db, "customers", std::slice::from_ref(&file), |o| o.batch_rows = 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("late.csv:4"), "{engine}: {err}");
        assert_eq!(err.exit_code(), 2, "{engine}");
        assert_eq!(count(&mut db.conn().await, "customers").await, 0, "{engine}");
        // The database is usable afterwards.
        let (_d2, good) = temp_file(
            "good.csv",
            b"customer_id,first_name,last_name,email,acquisition_date\n1,A,B,c,2026-01-01\n",
        );
        assert_eq!(
            load(&db, "customers", &[good], |_| {}).await.unwrap().inserted,
            1,
            "{engine}"
        );
    }
}
