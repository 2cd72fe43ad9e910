//! Tests of the mysql engine module against the MariaDB server: connecting, introspection,
//! both bulk paths (LOAD DATA LOCAL and the multi-row INSERT fallback) with every kind,
//! and the rule that a load which raised a warning has failed.

use crate::support::{dec, mysql_admin_url, names, rows, text, TestDb};
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use lockgate_core::{Kind, Row, TableName, TextForm, Value};
use lockgate_db::{Conn, DbError, DbUrl, Engine};

/// Forces the multi-row INSERT path on a MariaDB connection.
fn without_local_infile(conn: &mut Conn) {
    match conn {
        Conn::Mysql(c) => {
            assert!(
                c.local_infile(),
                "the test server allows LOCAL INFILE; the fast path must be the default"
            );
            c.set_local_infile(false);
        }
        _ => panic!("not a MariaDB connection"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_one_line_without_password() {
    let admin = mysql_admin_url();
    let (_, rest) = admin.split_once("://").unwrap();
    let host = rest.split('/').next().unwrap().rsplit('@').next().unwrap();
    let url = DbUrl::parse(&format!("mysql://lg_nobody:sekret_pw_42@{host}/test")).unwrap();
    match Conn::connect(&url).await {
        Err(DbError::Connect { url, message }) => {
            assert!(message.contains("Access denied"), "{message}");
            assert!(!message.contains('\n'), "{message:?}");
            assert!(
                !message.contains("sekret_pw_42") && !url.contains("sekret_pw_42"),
                "{url} {message}"
            );
        }
        Err(other) => panic!("expected a Connect error, got {other}"),
        Ok(_) => panic!("a login with a wrong password succeeded"),
    }

    let url = DbUrl::parse("mysql://root:pw_unused@127.0.0.1:1/test").unwrap();
    match Conn::connect(&url).await {
        Err(e @ DbError::Connect { .. }) => {
            let shown = e.to_string();
            assert!(shown.contains("connection refused"), "{shown}");
            assert!(!shown.contains("pw_unused"), "{shown}");
        }
        Err(other) => panic!("expected a Connect error, got {other}"),
        Ok(_) => panic!("connected to port 1"),
    }

    let url = DbUrl::parse("mysql://root@127.0.0.1:3306/test?no_such_option=1").unwrap();
    assert!(matches!(Conn::connect(&url).await, Err(DbError::BadUrl(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_is_utc_and_strict() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    let r = c
        .query(
            "SELECT @@session.time_zone, @@session.sql_mode, @@character_set_client",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r[0][0], text("+00:00"));
    let Value::Text(mode) = &r[0][1] else {
        panic!("{:?}", r[0][1])
    };
    assert!(
        mode.contains("STRICT_ALL_TABLES") && mode.contains("NO_ZERO_DATE"),
        "{mode}"
    );
    assert_eq!(r[0][2], text("utf8mb4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reads_keys_checks_json_and_engine() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch(
        "CREATE TABLE parent (a INT NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b)) ENGINE=InnoDB;
         CREATE TABLE `Child` (
           id BIGINT NOT NULL AUTO_INCREMENT,
           code VARCHAR(20) NOT NULL DEFAULT 'x''y',
           note TEXT NULL,
           qty INT NOT NULL DEFAULT 0,
           doc JSON NULL,
           pa INT NULL, pb INT NULL,
           created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
           twice INT AS (qty * 2) VIRTUAL,
           PRIMARY KEY (id),
           CONSTRAINT uq_code UNIQUE (code),
           CONSTRAINT fk_parent FOREIGN KEY (pa, pb) REFERENCES parent (a, b),
           CONSTRAINT qty_positive CHECK (qty >= 0),
           KEY idx_note_qty (qty, note(10))
         ) ENGINE=InnoDB;
         CREATE TABLE child (x INT) ENGINE=MyISAM;
         CREATE VIEW v AS SELECT 1 AS one;",
    )
    .await
    .unwrap();

    let tables = c.list_tables().await.unwrap();
    assert_eq!(
        tables,
        vec![
            TableName::new("Child"),
            TableName::new("child"),
            TableName::new("parent")
        ]
    );
    assert!(
        c.describe(&TableName::new("CHILD")).await.unwrap().is_none(),
        "describe must match exactly"
    );

    let t = c.describe(&TableName::new("Child")).await.unwrap().unwrap();
    assert_eq!(t.engine.as_deref(), Some("InnoDB"));
    let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cols,
        ["id", "code", "note", "qty", "doc", "pa", "pb", "created", "twice"]
    );
    let col = |n: &str| t.column(n).unwrap();
    assert!(col("id").auto && !col("id").nullable);
    assert_eq!(
        col("id").kind,
        Kind::Int {
            bytes: 8,
            unsigned: false
        }
    );
    assert_eq!(
        col("code").kind,
        Kind::Text {
            max_chars: Some(20),
            max_bytes: None,
            form: TextForm::Free
        }
    );
    assert_eq!(col("code").data_type, "varchar(20)");
    assert_eq!(col("code").default.as_deref(), Some("'x''y'"));
    assert!(col("note").nullable);
    assert_eq!(col("note").default, None, "a nullable column without default has none");
    assert_eq!(col("qty").default.as_deref(), Some("0"));
    assert_eq!(col("doc").kind, Kind::Json);
    assert_eq!(col("created").kind, Kind::Timestamp { fsp: 6 });
    assert_eq!(col("created").default.as_deref(), Some("current_timestamp(6)"));
    assert!(col("twice").auto, "generated columns are filled by the engine");
    assert!(!col("qty").auto);

    assert_eq!(t.primary_key, ["id"]);
    assert_eq!(t.unique.len(), 1);
    assert_eq!(
        (t.unique[0].name.as_str(), t.unique[0].columns.as_slice()),
        ("uq_code", &["code".to_string()][..])
    );
    assert_eq!(t.foreign_keys.len(), 1);
    let fk = &t.foreign_keys[0];
    assert_eq!(fk.name, "fk_parent");
    assert_eq!(fk.references, TableName::new("parent"));
    assert_eq!(
        fk.columns,
        vec![("pa".to_string(), "a".to_string()), ("pb".to_string(), "b".to_string())]
    );
    assert_eq!(t.checks.len(), 1, "{:?}", t.checks);
    assert_eq!(t.checks[0].name, "qty_positive");
    assert!(
        t.checks[0].expression.contains("qty") && t.checks[0].expression.contains(">= 0"),
        "{:?}",
        t.checks[0]
    );
    let idx = t.indexes.iter().find(|i| i.name == "idx_note_qty").unwrap();
    assert_eq!(idx.columns, ["qty", "note"]);
    assert!(!idx.unique);
    assert!(t.indexes.iter().any(|i| i.name == "uq_code" && i.unique));
    assert!(!t.indexes.iter().any(|i| i.name == "PRIMARY"));

    let parent = c.describe(&TableName::new("parent")).await.unwrap().unwrap();
    assert_eq!(parent.primary_key, ["a", "b"]);
    let myisam = c.describe(&TableName::new("child")).await.unwrap().unwrap();
    assert_eq!(myisam.engine.as_deref(), Some("MyISAM"));
}

const EVERY_KIND_DDL: &str = "CREATE TABLE every (
    n INT NOT NULL PRIMARY KEY,
    b BOOLEAN, i8 TINYINT, i16 SMALLINT, i32 INT, i64 BIGINT, u32 INT UNSIGNED,
    f DOUBLE, f4 FLOAT, d DECIMAL(65,30), s VARCHAR(200), blob_ LONGBLOB,
    dt DATE, tm TIME(6), ts DATETIME(6), tz TIMESTAMP(6) NULL, j JSON, u UUID
) ENGINE=InnoDB";

const EVERY_KIND_COLS: [&str; 18] = [
    "n", "b", "i8", "i16", "i32", "i64", "u32", "f", "f4", "d", "s", "blob_", "dt", "tm", "ts", "tz", "j", "u",
];

fn every_kind_rows() -> Vec<Row> {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let full = vec![
        Value::Int(1),
        Value::Bool(true),
        Value::Int(-128),
        Value::Int(32767),
        Value::Int(-2147483648),
        Value::Int(i64::MAX),
        Value::Int(4294967295),
        Value::Float(-1.2345678901234567e-300),
        Value::Float(1.5),
        dec("99999999999999999999999999999999999.999999999999999999999999999999"),
        text("it's \"quoted\"\ttab\nnewline\r\\back\\slash \\N 😀 ünïcødé"),
        Value::Bytes(all_bytes),
        Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).unwrap()),
        Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
        Value::Timestamp(
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .unwrap()
                .and_hms_micro_opt(23, 59, 59, 999_999)
                .unwrap(),
        ),
        Value::TimestampTz(Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 7).unwrap()),
        Value::Json(serde_json::json!({"a": [1, 2.5, "x\ty"], "b": null, "c": {"d": true}})),
        Value::Uuid(uuid::Uuid::parse_str("0b9e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4").unwrap()),
    ];
    let other = vec![
        Value::Int(2),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(0),
        Value::Int(i64::MIN),
        Value::Int(0),
        Value::Float(0.1),
        Value::Float(-0.25),
        dec("-0.000000000000000000000000000001"),
        text(""),
        Value::Bytes(vec![]),
        Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
        Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
        Value::Timestamp(
            NaiveDate::from_ymd_opt(1000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        ),
        Value::TimestampTz(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 1).unwrap()),
        Value::Json(serde_json::json!([])),
        Value::Uuid(uuid::Uuid::nil()),
    ];
    let mut nulls = vec![Value::Null; EVERY_KIND_COLS.len()];
    nulls[0] = Value::Int(3);
    rows(vec![full, other, nulls])
}

/// Loads every kind through the current path and reads it back, typed by `describe`'s
/// kinds (text protocol) and with a parameter (binary protocol).
async fn round_trip_every_kind(c: &mut Conn) {
    c.batch(EVERY_KIND_DDL).await.unwrap();
    let input = every_kind_rows();
    c.begin().await.unwrap();
    let outcome = c
        .bulk_insert(&TableName::new("every"), &names(&EVERY_KIND_COLS), &input, None)
        .await
        .unwrap();
    c.commit().await.unwrap();
    assert_eq!(outcome.written, 3);
    assert!(outcome.row_errors.is_empty());

    let table = c.describe(&TableName::new("every")).await.unwrap().unwrap();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    assert_eq!(kinds[1], Kind::Bool);
    assert_eq!(kinds[15], Kind::TimestampTz { epoch32: true, fsp: 6 });
    assert_eq!(kinds[17], Kind::Uuid);
    let select = format!(
        "SELECT {} FROM every",
        EVERY_KIND_COLS.map(|c| format!("`{c}`")).join(", ")
    );

    let text_rows = c
        .query(&format!("{select} ORDER BY n"), &[], Some(&kinds))
        .await
        .unwrap();
    let binary_rows = c
        .query(
            &format!("{select} WHERE n >= ? ORDER BY n"),
            &[Value::Int(0)],
            Some(&kinds),
        )
        .await
        .unwrap();
    for (label, got) in [("text protocol", &text_rows), ("binary protocol", &binary_rows)] {
        assert_eq!(got.len(), input.len(), "{label}");
        for (g, want) in got.iter().zip(&input) {
            // The FLOAT column's values (1.5, -0.25) are exact in single precision.
            for (i, col) in EVERY_KIND_COLS.iter().enumerate() {
                assert_eq!(
                    g[i], want.values[i],
                    "{label}, row n={:?}, column {col}",
                    want.values[0]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_round_trips_every_kind() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    round_trip_every_kind(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_fallback_round_trips_every_kind() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    without_local_infile(&mut c);
    round_trip_every_kind(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_without_kinds_types_by_column() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch(
        "CREATE TABLE t (i INT, u BIGINT UNSIGNED, d DECIMAL(30,10), f DOUBLE, s VARCHAR(10), b VARBINARY(10),
                         dt DATE, tm TIME(3), ts DATETIME(6), tz TIMESTAMP NULL);
         INSERT INTO t VALUES (-5, 18446744073709551615, 12345678901234567890.0123456789, 2.5, 'héllo', x'00ff',
                               '2024-01-02', '10:11:12.125', '2024-01-02 03:04:05.000006', '2030-05-06 07:08:09');",
    )
    .await
    .unwrap();
    let expect = vec![
        Value::Int(-5),
        dec("18446744073709551615"),
        dec("12345678901234567890.0123456789"),
        Value::Float(2.5),
        text("héllo"),
        Value::Bytes(vec![0, 255]),
        Value::Date(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()),
        Value::Time(NaiveTime::from_hms_milli_opt(10, 11, 12, 125).unwrap()),
        Value::Timestamp(
            NaiveDate::from_ymd_opt(2024, 1, 2)
                .unwrap()
                .and_hms_micro_opt(3, 4, 5, 6)
                .unwrap(),
        ),
        Value::TimestampTz(Utc.with_ymd_and_hms(2030, 5, 6, 7, 8, 9).unwrap()),
    ];
    let text_rows = c.query("SELECT * FROM t", &[], None).await.unwrap();
    assert_eq!(text_rows, vec![expect.clone()]);
    let binary_rows = c
        .query("SELECT * FROM t WHERE i = ?", &[Value::Int(-5)], None)
        .await
        .unwrap();
    assert_eq!(binary_rows, vec![expect]);

    // A TIME outside a day is outside the shared domain: an error naming the column.
    let err = c
        .query("SELECT CAST('25:00:00' AS TIME) AS late", &[], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("late"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinal_column_numbers_rows_from_zero() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    for fallback in [false, true] {
        if fallback {
            without_local_infile(&mut c);
        }
        c.batch("DROP TABLE IF EXISTS stage; CREATE TABLE stage (v VARCHAR(10), b VARBINARY(4), lockgate_row BIGINT)")
            .await
            .unwrap();
        let input: Vec<Row> = rows(
            (0..1000)
                .map(|i| vec![Value::Text(format!("r{i}")), Value::Bytes(vec![i as u8])])
                .collect(),
        );
        let outcome = c
            .bulk_insert(
                &TableName::new("stage"),
                &names(&["v", "b"]),
                &input,
                Some("lockgate_row"),
            )
            .await
            .unwrap();
        assert_eq!(outcome.written, 1000);
        let got = c
            .query("SELECT v, b, lockgate_row FROM stage ORDER BY lockgate_row", &[], None)
            .await
            .unwrap();
        assert_eq!(got.len(), 1000);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(
                r,
                &vec![
                    Value::Text(format!("r{i}")),
                    Value::Bytes(vec![i as u8]),
                    Value::Int(i as i64)
                ],
                "fallback={fallback}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_load_streams_in_chunks() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch("CREATE TABLE big (id INT PRIMARY KEY, payload TEXT)")
        .await
        .unwrap();
    // About 5 MiB: several chunks go through the handler's channel.
    let input = rows(
        (0..5000)
            .map(|i| vec![Value::Int(i), Value::Text(format!("{i:0>1000}"))])
            .collect(),
    );
    let outcome = c
        .bulk_insert(&TableName::new("big"), &names(&["id", "payload"]), &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 5000);
    let got = c
        .query("SELECT COUNT(*), SUM(LENGTH(payload)) FROM big", &[], None)
        .await
        .unwrap();
    assert_eq!(got[0][0], Value::Int(5000));
    assert_eq!(got[0][1], dec("5000000"));
}

/// LOAD statements this session has run so far (`Com_load`).
async fn loads_run(c: &mut Conn) -> i64 {
    let got = c
        .query(
            "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'COM_LOAD'",
            &[],
            None,
        )
        .await
        .unwrap();
    match &got[0][0] {
        Value::Text(t) => t.parse().unwrap(),
        Value::Int(i) => *i,
        other => panic!("Com_load: {other:?}"),
    }
}

/// The writer's streamed inserts: one LOAD DATA kept open across batches (up to
/// `STREAM_ROWS` rows a statement), finished by `finish_stream` or by any other use of
/// the connection; a bad row fails the stream when its statement ends, the rollback
/// leaves nothing, and the connection stays usable; a batch with bytes where the open
/// statement has none starts another statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_loads_span_batches() {
    use lockgate_db::mysql::STREAM_ROWS;
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch("CREATE TABLE s (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, b VARBINARY(4))")
        .await
        .unwrap();
    let t = TableName::new("s");
    let cols = names(&["id", "name", "b"]);
    let batch = |from: i64, n: i64| {
        rows(
            (from..from + n)
                .map(|i| vec![Value::Int(i), text("ok"), Value::Null])
                .collect(),
        )
    };

    // Three batches, one statement; a query finishes it, and sees every row.
    let before = loads_run(&mut c).await;
    c.begin().await.unwrap();
    for k in 0..3 {
        let outcome = c.stream_rows(&t, &cols, &batch(k * 1000, 1000)).await.unwrap();
        assert_eq!(outcome.written, 1000);
    }
    let got = c.query("SELECT COUNT(*) FROM s", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(3000));
    assert_eq!(loads_run(&mut c).await - before, 1, "three batches, one LOAD DATA");
    c.commit().await.unwrap();

    // More than STREAM_ROWS rows: a second statement; bytes in a later batch: a third.
    let before = loads_run(&mut c).await;
    let big = STREAM_ROWS as i64;
    c.begin().await.unwrap();
    c.stream_rows(&t, &cols, &batch(10_000, big)).await.unwrap();
    c.stream_rows(&t, &cols, &batch(10_000 + big, 10)).await.unwrap();
    let bytes = rows(vec![vec![
        Value::Int(-1),
        text("b"),
        Value::Bytes(vec![0, 255, b'\t', b'\n']),
    ]]);
    c.stream_rows(&t, &cols, &bytes).await.unwrap();
    c.finish_stream().await.unwrap();
    c.commit().await.unwrap();
    assert_eq!(loads_run(&mut c).await - before, 3);
    let got = c.query("SELECT COUNT(*), HEX(MAX(b)) FROM s", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(3000 + big + 11));
    assert_eq!(got[0][1], text("00FF090A"));

    // A bad row in the middle batch fails the stream, at the latest when it finishes;
    // rolled back, nothing of it stays.
    c.batch("DELETE FROM s").await.unwrap();
    c.begin().await.unwrap();
    let mut failed = None;
    let mut bad = batch(1000, 1000);
    bad[500].values[1] = text("toolong");
    for b in [batch(0, 1000), bad, batch(2000, 1000)] {
        if let Err(e) = c.stream_rows(&t, &cols, &b).await {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => c.finish_stream().await.unwrap_err(),
    };
    let e = err.engine_error().unwrap_or_else(|| panic!("{err}"));
    assert!(["1406", "1265"].contains(&e.code.as_str()), "{e:?}");
    assert!(!e.connection_lost, "{e:?}");
    c.rollback().await.unwrap();
    let got = c.query("SELECT COUNT(*) FROM s", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(0));

    // A rollback while a stream is open (the source failed mid-load) undoes it.
    c.begin().await.unwrap();
    c.stream_rows(&t, &cols, &batch(0, 100)).await.unwrap();
    c.rollback().await.unwrap();
    let got = c.query("SELECT COUNT(*) FROM s", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(0));

    // A missing table: an error, and the connection still works.
    let err = match c.stream_rows(&TableName::new("nope"), &cols, &batch(0, 10)).await {
        Err(e) => e,
        Ok(_) => c.finish_stream().await.unwrap_err(),
    };
    assert_eq!(err.engine_error().unwrap().code, "1146", "{err}");
    c.stream_rows(&t, &cols, &batch(0, 10)).await.unwrap();
    c.finish_stream().await.unwrap();
    let got = c.query("SELECT COUNT(*) FROM s", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(10));
    assert!(!c.is_closed());
}

/// One bad row among good ones must fail the whole load (never a silent warning),
/// and the transaction's rollback must leave the table empty.
async fn bad_loads_fail(c: &mut Conn, fast: bool) {
    c.batch(
        "DROP TABLE IF EXISTS strict_t;
         CREATE TABLE strict_t (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, qty INT NOT NULL,
                                CONSTRAINT qty_positive CHECK (qty > 0)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    let t = TableName::new("strict_t");
    let cols = names(&["id", "name", "qty"]);
    let good = |id: i64| vec![Value::Int(id), text("ok"), Value::Int(1)];
    struct Case {
        what: &'static str,
        bad: Vec<Value>,
        code: &'static [&'static str],
        column: Option<&'static str>,
        constraint: Option<&'static str>,
        row: Option<u64>,
    }
    let cases = [
        Case {
            what: "NULL into NOT NULL",
            bad: vec![Value::Int(9), Value::Null, Value::Int(1)],
            code: &["1048", "1263"],
            column: Some("name"),
            constraint: None,
            // A multi-row INSERT's "cannot be null" names no row.
            row: if fast { Some(3) } else { None },
        },
        Case {
            what: "duplicate primary key",
            bad: good(1),
            code: &["1062"],
            column: None,
            constraint: Some("PRIMARY"),
            row: None,
        },
        Case {
            what: "too long",
            bad: vec![Value::Int(9), text("toolong"), Value::Int(1)],
            code: &["1406", "1265"],
            column: Some("name"),
            constraint: None,
            row: Some(3),
        },
        Case {
            what: "CHECK violation",
            bad: vec![Value::Int(9), text("ok"), Value::Int(-1)],
            code: &["4025"],
            column: None,
            constraint: Some("qty_positive"),
            row: None,
        },
    ];
    for case in cases {
        let input = rows(vec![good(1), good(2), case.bad, good(4)]);
        c.begin().await.unwrap();
        let result = c.bulk_insert(&t, &cols, &input, None).await;
        c.rollback().await.unwrap();
        let err = match result {
            Err(e) => e,
            Ok(o) => panic!("{}: the load succeeded ({} rows)", case.what, o.written),
        };
        let e = err.engine_error().unwrap_or_else(|| panic!("{}: {err}", case.what));
        assert!(case.code.contains(&e.code.as_str()), "{}: {e:?}", case.what);
        if case.column.is_some() {
            assert_eq!(e.column.as_deref(), case.column, "{}: {e:?}", case.what);
        }
        if case.constraint.is_some() {
            assert!(
                e.constraint
                    .as_deref()
                    .is_some_and(|k| k.ends_with(case.constraint.unwrap())),
                "{}: {e:?}",
                case.what
            );
        }
        if case.row.is_some() {
            assert_eq!(e.row, case.row, "{}: {e:?}", case.what);
        }
        assert!(!e.transient && !e.connection_lost, "{}: {e:?}", case.what);
        let left = c.query("SELECT COUNT(*) FROM strict_t", &[], None).await.unwrap();
        assert_eq!(left[0][0], Value::Int(0), "{}: rows left after rollback", case.what);
    }
    assert!(!c.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_warnings_fail_the_load() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    bad_loads_fail(&mut c, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_fallback_errors_fail_the_load() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    without_local_infile(&mut c);
    bad_loads_fail(&mut c, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_into_missing_table_fails_and_connection_stays_usable() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    let input = rows(vec![vec![Value::Int(1)]]);
    let err = c
        .bulk_insert(&TableName::new("nope"), &names(&["x"]), &input, None)
        .await
        .unwrap_err();
    assert_eq!(err.engine_error().unwrap().code, "1146", "{err}");
    c.batch("CREATE TABLE yes (x INT)").await.unwrap();
    let outcome = c
        .bulk_insert(&TableName::new("yes"), &names(&["x"]), &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
    assert_eq!(
        c.query("SELECT x FROM yes", &[], None).await.unwrap(),
        vec![vec![Value::Int(1)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_reports_matched_rows_and_typed_errors() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(3) NOT NULL); INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    // Nothing changes, but both rows match: the same count the other engines give.
    let n = c
        .execute(
            "UPDATE t SET name = name WHERE id IN (?, ?)",
            &[Value::Int(1), Value::Int(2)],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(c.execute("UPDATE t SET name = 'a' WHERE id = 1", &[]).await.unwrap(), 1);

    let err = c
        .execute("INSERT INTO t VALUES (?, ?)", &[Value::Int(3), Value::Null])
        .await
        .unwrap_err();
    let e = err.engine_error().unwrap();
    assert_eq!((e.code.as_str(), e.column.as_deref()), ("1048", Some("name")), "{e:?}");
    let err = c
        .execute("INSERT INTO t VALUES (?, ?)", &[Value::Int(3), text("long")])
        .await
        .unwrap_err();
    let e = err.engine_error().unwrap();
    assert_eq!(
        (e.code.as_str(), e.column.as_deref(), e.row),
        ("1406", Some("name"), Some(1)),
        "{e:?}"
    );
    let err = c.execute("INSERT INTO t VALUES (1, 'x')", &[]).await.unwrap_err();
    let e = err.engine_error().unwrap();
    assert_eq!(
        (e.code.as_str(), e.constraint.as_deref()),
        ("1062", Some("PRIMARY")),
        "{e:?}"
    );
    assert!(!c.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_fallback_splits_at_the_parameter_limit() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    without_local_infile(&mut c);
    c.batch("CREATE TABLE s (a INT, b VARCHAR(5), lockgate_row BIGINT)")
        .await
        .unwrap();
    // 30,000 rows of 3 values need two statements under 65,535 placeholders.
    let mut input: Vec<Row> = rows((0..30_000).map(|i| vec![Value::Int(i), text("x")]).collect());
    let cols = names(&["a", "b"]);
    let outcome = c
        .bulk_insert(&TableName::new("s"), &cols, &input, Some("lockgate_row"))
        .await
        .unwrap();
    assert_eq!(outcome.written, 30_000);
    let got = c
        .query(
            "SELECT COUNT(*), SUM(a = lockgate_row), MAX(lockgate_row) FROM s",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(got[0], vec![Value::Int(30_000), dec("30000"), Value::Int(29_999)]);

    // A failing row in the second statement is named by its position in the input.
    c.batch("DELETE FROM s").await.unwrap();
    input[25_000].values[1] = text("toolong");
    let err = c
        .bulk_insert(&TableName::new("s"), &cols, &input, None)
        .await
        .unwrap_err();
    let e = err.engine_error().unwrap();
    assert_eq!((e.code.as_str(), e.row), ("1406", Some(25_001)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_reported_lost() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    let err = c.batch("KILL CONNECTION_ID()").await.unwrap_err();
    assert!(err.is_connection_lost(), "{err}");
    assert!(c.is_closed());
}

/// The URL of `db` with the MySQL forms forced (`lockgate_portable=true`).
fn portable(url: &DbUrl) -> DbUrl {
    DbUrl::parse(&format!("{}?lockgate_portable=true", url.as_str())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_read_at_connect_and_the_mysql_forms_can_be_forced() {
    use lockgate_db::mysql_server::Flavor;
    let db = TestDb::new(Engine::Mysql).await;
    let c = db.conn().await;
    let server = c.mysql_server().expect("a MariaDB connection knows its server");
    assert_eq!(server.flavor, Flavor::MariaDb, "{server:?}");
    assert!(server.version >= (10, 11, 0), "{server:?}");
    assert!(!server.portable && server.insert_returning() && server.uuid_type());
    assert!(c.insert_returning());
    let forced = Conn::connect(&portable(&db.url)).await.unwrap();
    let server = forced.mysql_server().unwrap();
    assert_eq!(server.flavor, Flavor::MariaDb);
    assert!(server.portable && !server.insert_returning() && !server.uuid_type());
    assert!(!forced.insert_returning());
    // The other engines always have RETURNING and no MariaDB server.
    let lite = TestDb::new(Engine::Sqlite).await;
    let l = lite.conn().await;
    assert!(l.mysql_server().is_none() && l.insert_returning());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_timeouts_and_uuid_columns_take_each_servers_form() {
    use lockgate_db::schema::{apply_change, ColumnSpec, SchemaChange, TableSpec};
    use std::time::Duration;
    let db = TestDb::new(Engine::Mysql).await;
    for (url, forced) in [(db.url.clone(), false), (portable(&db.url), true)] {
        let mut c = Conn::connect(&url).await.unwrap();
        let before = c.query("SELECT @@session.wait_timeout", &[], None).await.unwrap();
        c.set_idle_transaction_timeout(Duration::from_secs(7)).await.unwrap();
        let r = c
            .query(
                "SELECT @@session.idle_transaction_timeout, @@session.wait_timeout",
                &[],
                None,
            )
            .await
            .unwrap();
        if forced {
            // MySQL has no idle_transaction_timeout: wait_timeout ends the session.
            assert_eq!(r[0][1].to_string(), "7", "{r:?}");
            assert_eq!(r[0][0].to_string(), "0", "{r:?}");
        } else {
            assert_eq!(r[0][0].to_string(), "7", "{r:?}");
            assert_eq!(r[0][1], before[0][0], "{r:?}");
        }

        let table = TableName::new(if forced { "u_forced" } else { "u_native" });
        apply_change(
            &mut c,
            &SchemaChange::CreateTable(TableSpec {
                name: table.clone(),
                columns: vec![ColumnSpec {
                    name: "id".into(),
                    kind: Kind::Uuid,
                    data_type: None,
                    nullable: false,
                    default: None,
                    generated: false,
                    kept: None,
                }],
                primary_key: vec!["id".into()],
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
            }),
        )
        .await
        .unwrap();
        let t = c.describe(&table).await.unwrap().unwrap();
        let expected = if forced { "char(36)" } else { "uuid" };
        assert_eq!(t.columns[0].data_type, expected);
        // Either way a UUID value goes in and comes back as the same text.
        let u = uuid::Uuid::parse_str("0b3a3f5e-8a4c-4c1e-9d7e-3f1a2b3c4d5e").unwrap();
        c.execute(&format!("INSERT INTO {} VALUES (?)", table.name), &[Value::Uuid(u)])
            .await
            .unwrap();
        let back = c
            .query(&format!("SELECT id FROM {}", table.name), &[], None)
            .await
            .unwrap();
        assert_eq!(back[0][0].to_string(), u.hyphenated().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_ledger_ids_come_from_last_insert_id() {
    use lockgate_db::ledger::{Holder, Ledger};
    let db = TestDb::new(Engine::Mysql).await;
    for url in [db.url.clone(), portable(&db.url)] {
        let mut ledger = Ledger::open(&url).await.unwrap();
        let holder = Holder::current("test");
        let a = ledger.start_run("load", "load:t", &holder).await.unwrap();
        let b = ledger.start_run("load", "load:t", &holder).await.unwrap();
        assert_eq!(b, a + 1);
        let runs = ledger.runs(5).await.unwrap();
        assert_eq!(runs[0].id, b);
    }
}

/// The images a captured write records for the rows it inserted: (key, fingerprint).
async fn inserted_images(conn: &mut Conn, version: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lockgate_db::versions::read_images(conn, "m", &[version.to_string()])
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.image.op == 'i')
        .map(|s| {
            (
                serde_json::Value::Object(s.image.key).to_string(),
                s.image.after_fingerprint.unwrap().value,
            )
        })
        .collect();
    out.sort();
    out
}

/// The (key, fingerprint of the whole stored row) of every row of `table`.
async fn stored_images(conn: &mut Conn, table: &str, key: &str) -> Vec<(String, String)> {
    let t = conn.find_table(table).await.unwrap();
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind.clone()).collect();
    let at = t.column_index(key).unwrap();
    let mut out: Vec<(String, String)> = conn
        .query(&format!("SELECT * FROM {table}"), &[], Some(&kinds))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                serde_json::json!({ key: r[at].to_json() }).to_string(),
                lockgate_core::fingerprint(&r),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserted_rows_are_read_back_where_there_is_no_returning() {
    use lockgate_core::Batch;
    use lockgate_db::ledger::Ledger;
    use lockgate_db::writer::{self, BatchSource, Capture, SourceError, WriteConfig, WriteMode};
    use std::sync::Arc;

    struct Rows(Batch);
    impl BatchSource for Rows {
        fn open(&self) -> tokio::sync::mpsc::Receiver<Result<Batch, SourceError>> {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Ok(self.0.clone()));
            rx
        }
    }
    fn batch(columns: &[&str], data: Vec<Vec<Value>>) -> Rows {
        let mut b = Batch::new(Arc::new(columns.iter().map(|c| c.to_string()).collect()));
        for (i, values) in data.into_iter().enumerate() {
            b.push(Row {
                line: i as u64 + 2,
                number: i as u64 + 1,
                values,
            });
        }
        Rows(b)
    }
    let capture = |version: &str, mode| WriteConfig {
        mode,
        capture: Some(Capture {
            module: "m".into(),
            version: version.into(),
        }),
        ..WriteConfig::default()
    };

    let db = TestDb::new(Engine::Mysql).await;
    for (url, prefix) in [(db.url.clone(), "native"), (portable(&db.url), "forced")] {
        let mut c = Conn::connect(&url).await.unwrap();
        assert_eq!(c.insert_returning(), prefix == "native");
        let _ledger = Ledger::open(&url).await.unwrap();
        let people = format!("{prefix}_people");
        let things = format!("{prefix}_things");
        let coded = format!("{prefix}_coded");
        c.batch(&format!(
            "CREATE TABLE {people} (id bigint PRIMARY KEY, name varchar(50) NOT NULL, note varchar(10) NOT NULL DEFAULT 'n');
             CREATE TABLE {things} (id bigint AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL,
                                    made datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6));
             CREATE TABLE {coded} (code varchar(10) NOT NULL DEFAULT 'x' PRIMARY KEY, name varchar(50))"
        ))
        .await
        .unwrap();

        // The key given by the data, a default filled in by the server.
        let t = c.find_table(&people).await.unwrap();
        let v1 = format!("{prefix}-1");
        let data = vec![
            vec![Value::Int(1), text("a")],
            vec![Value::Int(2), text("b")],
            vec![Value::Int(3), text("c")],
        ];
        let r = writer::write(
            &mut c,
            &t,
            &capture(&v1, WriteMode::Insert),
            &batch(&["id", "name"], data),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.inserted, 3, "{prefix}");
        // Upsert: one new row (its key missing from the table), one changed.
        let v2 = format!("{prefix}-2");
        let data = vec![vec![Value::Int(2), text("B")], vec![Value::Int(4), text("d")]];
        let r = writer::write(
            &mut c,
            &t,
            &capture(&v2, WriteMode::Upsert),
            &batch(&["id", "name"], data),
            None,
        )
        .await
        .unwrap();
        assert_eq!((r.inserted, r.updated), (1, 1), "{prefix}");
        let mut images = inserted_images(&mut c, &v1).await;
        images.extend(inserted_images(&mut c, &v2).await);
        images.sort();
        let mut stored = stored_images(&mut c, &people, "id").await;
        // Row 2 changed after its insert: its v1 fingerprint is of the row as inserted.
        stored.retain(|(k, _)| k != "{\"id\":2}");
        images.retain(|(k, _)| k != "{\"id\":2}");
        assert_eq!(images, stored, "{prefix}");

        // The key generated by AUTO_INCREMENT, a timestamp by its default.
        let t = c.find_table(&things).await.unwrap();
        let v3 = format!("{prefix}-3");
        let data = vec![vec![text("x")], vec![text("y")], vec![text("z")]];
        let r = writer::write(
            &mut c,
            &t,
            &capture(&v3, WriteMode::Insert),
            &batch(&["name"], data),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.inserted, 3, "{prefix}");
        let images = inserted_images(&mut c, &v3).await;
        assert_eq!(images, stored_images(&mut c, &things, "id").await, "{prefix}");
        assert_eq!(images.len(), 3);

        // A key neither given nor generated: RETURNING still tells; without it the
        // write is refused and nothing stays.
        let t = c.find_table(&coded).await.unwrap();
        let v4 = format!("{prefix}-4");
        let r = writer::write(
            &mut c,
            &t,
            &capture(&v4, WriteMode::Insert),
            &batch(&["name"], vec![vec![text("only")]]),
            None,
        )
        .await;
        let count = c
            .query(&format!("SELECT COUNT(*) FROM {coded}"), &[], None)
            .await
            .unwrap();
        if prefix == "native" {
            assert_eq!(r.unwrap().inserted, 1);
            assert_eq!(count[0][0].to_string(), "1");
        } else {
            // Refused as the batch's error (the writer names the rows it could not
            // write), and rolled back.
            let r = r.unwrap();
            assert!(!r.committed && r.inserted == 0, "{r:?}");
            let e = &r.failed[0].message;
            assert!(
                e.contains("no INSERT … RETURNING") && e.contains("give the key's values in the data"),
                "{e}"
            );
            assert_eq!(count[0][0].to_string(), "0");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_another_database_is_named_with_it() {
    let own = TestDb::new(Engine::Mysql).await;
    let other = TestDb::new(Engine::Mysql).await;
    let other_name = other.url.database().unwrap();
    let own_name = own.url.database().unwrap();
    other
        .conn()
        .await
        .batch(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE customers (id int PRIMARY KEY, pid int, CONSTRAINT fk_p FOREIGN KEY (pid) REFERENCES parent (id),
                                     CONSTRAINT c_pos CHECK (id > 0));
             INSERT INTO parent VALUES (1)",
        )
        .await
        .unwrap();
    let mut c = own.conn().await;
    // The same name in the connection's own database must not be what is written.
    c.batch("CREATE TABLE customers (id int PRIMARY KEY, pid int)")
        .await
        .unwrap();

    let t = c.find_table(&format!("{other_name}.customers")).await.unwrap();
    assert_eq!(t.name.schema.as_deref(), Some(other_name.as_str()));
    assert_eq!(
        t.foreign_keys[0].references.schema.as_deref(),
        Some(other_name.as_str())
    );
    assert_eq!(t.checks.len(), 1, "{:?}", t.checks);
    c.bulk_insert(
        &t.name,
        &names(&["id", "pid"]),
        &rows(vec![vec![Value::Int(7), Value::Int(1)]]),
        None,
    )
    .await
    .unwrap();
    let there = other
        .conn()
        .await
        .query("SELECT id FROM customers", &[], None)
        .await
        .unwrap();
    assert_eq!(there[0][0].to_string(), "7");
    let here = c.query("SELECT COUNT(*) FROM customers", &[], None).await.unwrap();
    assert_eq!(here[0][0].to_string(), "0");

    // The connection's own database named explicitly is the plain name.
    let mine = c.find_table(&format!("{own_name}.customers")).await.unwrap();
    assert_eq!(mine.name, TableName::new("customers"));
    // A table the other database lacks is an error naming it.
    let e = c
        .find_table(&format!("{other_name}.nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{other_name}.nope")), "{e}");
}

#[tokio::test]
async fn an_open_load_outlasts_a_gap_longer_than_net_read_timeout() {
    // A server whose net_read_timeout is short (2 s here, 30 s by default): the open
    // load waits for its next batch as long as an idle session would.
    let db = TestDb::new(Engine::Mysql).await;
    let mut c = db.conn().await;
    c.batch("CREATE TABLE g (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL)")
        .await
        .unwrap();
    c.batch("SET SESSION net_read_timeout = 2").await.unwrap();
    let t = TableName::new("g");
    let cols = names(&["id", "name"]);
    let batch = |from: i64| rows((from..from + 100).map(|i| vec![Value::Int(i), text("ok")]).collect());
    c.begin().await.unwrap();
    c.stream_rows(&t, &cols, &batch(0)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    c.stream_rows(&t, &cols, &batch(100)).await.unwrap();
    c.finish_stream().await.unwrap();
    c.commit().await.unwrap();
    let got = c.query("SELECT COUNT(*) FROM g", &[], None).await.unwrap();
    assert_eq!(got[0][0], Value::Int(200));
}
