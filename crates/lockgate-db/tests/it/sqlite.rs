//! Tests of the SQLite engine module: connecting, introspection, the bulk path with
//! its per-row errors, typed reads, transactions and lock conflicts. Each test works
//! in its own temporary file.

use crate::support::{dec, names, rows, text, TestDb};
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use lockgate_core::{ForeignKey, Kind, TableName, TextForm, Value};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::time::Duration;

async fn count(conn: &mut Conn, table: &str) -> i64 {
    match conn
        .query(&format!("SELECT count(*) FROM \"{table}\""), &[], None)
        .await
        .unwrap()[0][0]
    {
        Value::Int(n) => n,
        ref other => panic!("count(*) gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_path_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let url = DbUrl::parse(path.to_str().unwrap()).unwrap();
    assert_eq!(url.engine, Engine::Sqlite);
    let mut conn = Conn::connect(&url).await.unwrap();
    assert!(path.exists(), "connect creates {}", path.display());
    conn.batch("CREATE TABLE t (a INTEGER)").await.unwrap();
    assert_eq!(
        conn.execute("INSERT INTO t (a) VALUES (?1), (?2)", &[Value::Int(1), Value::Int(2)])
            .await
            .unwrap(),
        2
    );
    assert!(!conn.is_closed());
    let tables = conn.list_tables().await.unwrap();
    assert_eq!(tables, vec![TableName::new("t")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_folder_is_a_connect_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_folder");
    let url = DbUrl::parse(&format!("sqlite://{}", missing.join("x.db").display())).unwrap();
    match Conn::connect(&url).await {
        Err(DbError::Connect { message, .. }) => {
            assert!(message.contains(&missing.display().to_string()), "{message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("expected a connect error"),
    }
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_fails_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        "these are not the pages you are looking for, not at all, no".repeat(20),
    )
    .unwrap();
    let url = DbUrl::parse(path.to_str().unwrap()).unwrap();
    assert!(matches!(Conn::connect(&url).await, Err(DbError::Connect { .. })));
}

const KINDS_DDL: &str = r#"
CREATE TABLE parent (pa INTEGER, pb TEXT, PRIMARY KEY (pa, pb));
CREATE TABLE "Kinds" (
    k1 INTEGER NOT NULL,
    k2 TEXT NOT NULL,
    flag BOOLEAN,
    n INTEGER DEFAULT 7,
    r REAL,
    price NUMERIC(12,2),
    amount NUMERIC,
    name TEXT,
    data BLOB,
    d DATE,
    t TIME,
    ts TIMESTAMP,
    tz TIMESTAMPTZ,
    doc JSON,
    id UUID,
    ref_a INTEGER,
    ref_b TEXT,
    PRIMARY KEY (k2, k1),
    CONSTRAINT uq_name UNIQUE (name, d),
    FOREIGN KEY (ref_a, ref_b) REFERENCES parent (pa, pb)
);
CREATE INDEX kinds_ts ON "Kinds" (ts, tz);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    x INTEGER,
    y TEXT,
    twice INTEGER GENERATED ALWAYS AS (x * 2) STORED,
    FOREIGN KEY (x, y) REFERENCES PARENT
);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reports_keys_indexes_and_kinds() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(KINDS_DDL).await.unwrap();

    let t = conn
        .describe(&TableName::new("Kinds"))
        .await
        .unwrap()
        .expect("table Kinds");
    assert_eq!(t.name, TableName::new("Kinds"));
    let kinds: Vec<(&str, &str, Kind)> = t
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.kind.clone()))
        .collect();
    let dec15 = |precision, scale| Kind::Decimal {
        precision,
        scale,
        max_significant: Some(15),
    };
    let expected = vec![
        (
            "k1",
            "INTEGER",
            Kind::Int {
                bytes: 8,
                unsigned: false,
            },
        ),
        (
            "k2",
            "TEXT",
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: TextForm::Free,
            },
        ),
        ("flag", "BOOLEAN", Kind::Bool),
        (
            "n",
            "INTEGER",
            Kind::Int {
                bytes: 8,
                unsigned: false,
            },
        ),
        ("r", "REAL", Kind::Float { bytes: 8 }),
        ("price", "NUMERIC(12,2)", dec15(Some(12), Some(2))),
        ("amount", "NUMERIC", dec15(None, None)),
        (
            "name",
            "TEXT",
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: TextForm::Free,
            },
        ),
        (
            "data",
            "BLOB",
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
        ),
        ("d", "DATE", Kind::Date),
        ("t", "TIME", Kind::Time { fsp: 6 }),
        ("ts", "TIMESTAMP", Kind::Timestamp { fsp: 6 }),
        ("tz", "TIMESTAMPTZ", Kind::TimestampTz { epoch32: false, fsp: 6 }),
        ("doc", "JSON", Kind::Json),
        ("id", "UUID", Kind::Uuid),
        (
            "ref_a",
            "INTEGER",
            Kind::Int {
                bytes: 8,
                unsigned: false,
            },
        ),
        (
            "ref_b",
            "TEXT",
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: TextForm::Free,
            },
        ),
    ];
    assert_eq!(kinds, expected);
    assert_eq!(t.primary_key, names(&["k2", "k1"]), "primary key in key order");
    let k1 = t.column("k1").unwrap();
    assert!(!k1.nullable && !k1.auto);
    let n = t.column("n").unwrap();
    assert!(n.nullable && n.default.as_deref() == Some("7"));
    assert_eq!(t.unique.len(), 1);
    assert_eq!(t.unique[0].columns, names(&["name", "d"]));
    assert_eq!(
        t.foreign_keys,
        vec![ForeignKey {
            name: "Kinds_ref_a_ref_b_fkey".into(),
            columns: vec![("ref_a".into(), "pa".into()), ("ref_b".into(), "pb".into())],
            references: TableName::new("parent"),
        }]
    );
    let ts_index = t.indexes.iter().find(|i| i.name == "kinds_ts").expect("index kinds_ts");
    assert_eq!(ts_index.columns, names(&["ts", "tz"]));
    assert!(!ts_index.unique);
    assert!(
        t.indexes.iter().any(|i| i.name == t.unique[0].name && i.unique),
        "the UNIQUE constraint's index is listed"
    );
    assert_eq!(
        t.indexes.len(),
        2,
        "the primary key's index is not listed: {:?}",
        t.indexes
    );
    assert!(t.checks.is_empty());
    assert_eq!(t.unique_keys(), vec![names(&["k2", "k1"]), names(&["name", "d"])]);

    // A rowid alias and a generated column are filled by SQLite; a reference without
    // columns means the parent's primary key, and names the parent as it is spelled.
    let child = conn
        .describe(&TableName::new("child"))
        .await
        .unwrap()
        .expect("table child");
    let id = child.column("id").unwrap();
    assert!(id.auto && !id.nullable && id.may_be_omitted());
    assert!(child.column("twice").unwrap().auto);
    assert!(!child.column("x").unwrap().auto);
    assert_eq!(child.primary_key, names(&["id"]));
    assert!(child.indexes.is_empty());
    assert_eq!(child.foreign_keys.len(), 1);
    assert_eq!(child.foreign_keys[0].references, TableName::new("parent"));
    assert_eq!(
        child.foreign_keys[0].columns,
        vec![("x".into(), "pa".into()), ("y".into(), "pb".into())]
    );

    // Exact names only; find_table adds the case-insensitive rule on top.
    assert!(conn.describe(&TableName::new("kinds")).await.unwrap().is_none());
    assert!(conn.describe(&TableName::new("nope")).await.unwrap().is_none());
    assert_eq!(conn.find_table("kinds").await.unwrap().name, TableName::new("Kinds"));
    let tables: Vec<String> = conn.list_tables().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tables, names(&["Kinds", "child", "parent"]));
}

fn every_kind_rows() -> Vec<Vec<Value>> {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let ts = NaiveDate::from_ymd_opt(2026, 3, 4)
        .unwrap()
        .and_hms_micro_opt(5, 6, 7, 123_456)
        .unwrap();
    vec![
        vec![
            Value::Int(1),
            Value::Bool(true),
            Value::Int(i64::MAX),
            Value::Float(-1.25e-7),
            dec("12.5"),
            dec("123456789.012345"),
            text("it's \"quoted\";\nsecond line\ttab — ünïcödé ✓ 🦀"),
            Value::Bytes(all_bytes),
            Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).unwrap()),
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
            Value::Timestamp(ts),
            Value::TimestampTz(Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()),
            Value::Json(serde_json::json!({"a": [1, 2.5, "x"], "b": {"c": null}, "d": 12345678901234567890u64})),
            Value::Uuid(uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()),
        ],
        vec![
            Value::Int(2),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Float(0.0),
            dec("-0.01"),
            dec("-99999999999999.9"),
            text(""),
            Value::Bytes(Vec::new()),
            Value::Date(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()),
            Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(1970, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap(),
            ),
            Value::TimestampTz(Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 1).unwrap()),
            Value::Json(serde_json::json!([])),
            Value::Uuid(uuid::Uuid::nil()),
        ],
        std::iter::once(Value::Int(3))
            .chain(std::iter::repeat_n(Value::Null, 13))
            .collect(),
    ]
}

const EVERY_KIND_DDL: &str = "CREATE TABLE every (
    id INTEGER PRIMARY KEY, flag BOOLEAN, n INTEGER, r REAL, price NUMERIC(12,2), amount NUMERIC,
    name TEXT, data BLOB, d DATE, t TIME, ts TIMESTAMP, tz TIMESTAMPTZ, doc JSON, uid UUID)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_round_trips_every_kind() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(EVERY_KIND_DDL).await.unwrap();
    let table = conn.describe(&TableName::new("every")).await.unwrap().unwrap();
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let input = every_kind_rows();
    // Every value is one the column's kind accepts: the test data is in the domain.
    for row in &input {
        for (v, k) in row.iter().zip(&kinds) {
            k.check(v.clone()).unwrap_or_else(|e| panic!("{v:?} for {k:?}: {e}"));
        }
    }

    conn.begin().await.unwrap();
    let outcome = conn
        .bulk_insert(&table.name, &names, &rows(input.clone()), None)
        .await
        .unwrap();
    conn.commit().await.unwrap();
    assert_eq!(outcome.written, 3);
    assert!(outcome.row_errors.is_empty(), "{:?}", outcome.row_errors);

    let select = format!(
        "SELECT {} FROM every ORDER BY id",
        names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
    );
    let read = conn.query(&select, &[], Some(&kinds)).await.unwrap();
    assert_eq!(read, input);
    // The scale is the column's: 12.5 in NUMERIC(12,2) reads back as 12.50.
    match &read[0][4] {
        Value::Decimal(d) => assert_eq!(d.as_str(), "12.50"),
        other => panic!("price read as {other:?}"),
    }
    match &read[0][5] {
        Value::Decimal(d) => assert_eq!(d.as_str(), "123456789.012345"),
        other => panic!("amount read as {other:?}"),
    }

    // Storage follows ARCHITECTURE.md: ISO-8601 text, decimals converted by NUMERIC
    // affinity, booleans as integers, blobs as blobs.
    let raw = conn
        .query(
            "SELECT typeof(flag), flag, typeof(price), typeof(data), ts, tz, d, t, uid FROM every WHERE id = ?1",
            &[Value::Int(1)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        raw[0],
        vec![
            text("integer"),
            Value::Int(1),
            text("real"),
            text("blob"),
            text("2026-03-04 05:06:07.123456"),
            text("2026-11-01 08:00:00+00:00"),
            text("0001-01-01"),
            text("23:59:59.999999"),
            text("67e55044-10b1-426f-9247-bb680e5fe0c8"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_bind_every_kind() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(EVERY_KIND_DDL).await.unwrap();
    let table = conn.describe(&TableName::new("every")).await.unwrap().unwrap();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let input = every_kind_rows();
    let placeholders: Vec<String> = (1..=kinds.len()).map(|n| format!("?{n}")).collect();
    let insert = format!("INSERT INTO every VALUES ({})", placeholders.join(", "));
    for row in &input {
        assert_eq!(conn.execute(&insert, row).await.unwrap(), 1);
    }
    let read = conn
        .query("SELECT * FROM every ORDER BY id", &[], Some(&kinds))
        .await
        .unwrap();
    assert_eq!(read, input);
    let by_param = conn
        .query(
            "SELECT id FROM every WHERE d = ?1 AND flag = ?2",
            &[input[1][8].clone(), Value::Bool(false)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_param, vec![vec![Value::Int(2)]]);
    assert_eq!(
        conn.execute("UPDATE every SET name = ?1 WHERE id > ?2", &[text("x"), Value::Int(1)])
            .await
            .unwrap(),
        2
    );
    // Too few parameters is a bug to report, not NULLs to bind.
    assert!(conn
        .execute("UPDATE every SET name = ?1 WHERE id = ?2", &[text("x")])
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_types_cells_or_names_the_column_that_does_not_fit() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE loose (n INTEGER, price NUMERIC(12,2), d DATE, uid UUID, x);
         INSERT INTO loose VALUES (1, 2, '2026-01-02', x'67e5504410b1426f9247bb680e5fe0c8', 1.5);
         INSERT INTO loose VALUES ('abc', 0.1 + 0.2, NULL, NULL, x'00');",
    )
    .await
    .unwrap();
    let kinds = [
        Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        Kind::Decimal {
            precision: Some(12),
            scale: Some(2),
            max_significant: Some(15),
        },
        Kind::Date,
        Kind::Uuid,
        Kind::Any,
    ];
    let first = conn
        .query("SELECT * FROM loose WHERE rowid = 1", &[], Some(&kinds))
        .await
        .unwrap();
    assert_eq!(
        first[0],
        vec![
            Value::Int(1),
            dec("2.00"),
            Value::Date(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
            Value::Uuid(uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()),
            Value::Float(1.5),
        ]
    );
    // A REAL from arithmetic reads as SQLite prints it.
    let price = conn
        .query("SELECT price FROM loose WHERE rowid = 2", &[], Some(&kinds[1..2]))
        .await
        .unwrap();
    assert_eq!(price, vec![vec![dec("0.30")]]);
    match conn
        .query("SELECT n FROM loose WHERE rowid = 2", &[], Some(&kinds[..1]))
        .await
    {
        Err(DbError::Invalid(message)) => assert!(message.contains("\"n\"") && message.contains("abc"), "{message}"),
        other => panic!("expected an error naming column n, got {other:?}"),
    }
    // Without kinds, storage classes.
    let raw = conn
        .query("SELECT n, price, x FROM loose ORDER BY rowid", &[], None)
        .await
        .unwrap();
    assert_eq!(raw[1][0], text("abc"));
    assert!(matches!(raw[1][1], Value::Float(_)));
    assert_eq!(raw[1][2], Value::Bytes(vec![0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_errors_name_index_code_and_column_while_good_rows_are_written() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);
         INSERT INTO p VALUES (1), (2);
         CREATE TABLE t (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             qty INTEGER CONSTRAINT qty_positive CHECK (qty > 0),
             p_id INTEGER REFERENCES p (id),
             r REAL
         );",
    )
    .await
    .unwrap();
    let columns = names(&["id", "name", "qty", "p_id", "r"]);
    let row =
        |id: i64, name: Value, qty: i64, p: Value| vec![Value::Int(id), name, Value::Int(qty), p, Value::Float(1.0)];
    let mut input = vec![
        row(10, text("ok"), 1, Value::Int(1)),
        row(11, Value::Null, 1, Value::Int(1)),
        row(12, text("ok"), 2, Value::Null),
        row(10, text("again"), 1, Value::Int(2)),
        row(13, text("ok"), -1, Value::Int(2)),
        row(14, text("ok"), 1, Value::Int(99)),
        row(15, text("ok"), 3, Value::Int(2)),
        row(16, text("ok"), 3, Value::Int(2)),
    ];
    input[7][4] = Value::Float(f64::NAN);

    conn.begin().await.unwrap();
    let outcome = conn
        .bulk_insert(&TableName::new("t"), &columns, &rows(input), None)
        .await
        .unwrap();
    conn.commit().await.unwrap();
    assert_eq!(outcome.written, 3);
    let summary: Vec<(usize, &str, Option<&str>, Option<&str>)> = outcome
        .row_errors
        .iter()
        .map(|(i, e)| (*i, e.code.as_str(), e.column.as_deref(), e.constraint.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "SQLITE_CONSTRAINT_NOTNULL", Some("name"), None),
            (3, "SQLITE_CONSTRAINT_PRIMARYKEY", Some("id"), None),
            (4, "SQLITE_CONSTRAINT_CHECK", None, Some("qty_positive")),
            (5, "SQLITE_CONSTRAINT_FOREIGNKEY", Some("p_id"), Some("t_p_id_fkey")),
            (7, "lockgate", Some("r"), None),
        ]
    );
    for (_, e) in &outcome.row_errors {
        assert!(!e.transient && !e.message.is_empty(), "{e:?}");
    }
    let ids = conn.query("SELECT id FROM t ORDER BY id", &[], None).await.unwrap();
    assert_eq!(
        ids,
        vec![vec![Value::Int(10)], vec![Value::Int(12)], vec![Value::Int(15)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violations_on_several_columns_name_them_all() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE \"a.b\" (x INTEGER, y TEXT, UNIQUE (x, y))")
        .await
        .unwrap();
    let input = rows(vec![vec![Value::Int(1), text("a")], vec![Value::Int(1), text("a")]]);
    let outcome = conn
        .bulk_insert(&TableName::new("a.b"), &names(&["x", "y"]), &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
    let (index, e) = &outcome.row_errors[0];
    assert_eq!(
        (*index, e.code.as_str(), e.column.as_deref()),
        (1, "SQLITE_CONSTRAINT_UNIQUE", Some("x, y"))
    );
    // A dotted name parsed as schema.table still means the one table.
    assert!(conn.describe(&TableName::parse("a.b")).await.unwrap().is_some());
    let more = rows(vec![vec![Value::Int(2), text("b")]]);
    let outcome = conn
        .bulk_insert(&TableName::parse("a.b"), &names(&["x", "y"]), &more, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ordinal_column_gets_each_rows_index() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TEMP TABLE staging (v TEXT, lockgate_row INTEGER)")
        .await
        .unwrap();
    let input = rows((0..5).map(|i| vec![text(&format!("v{i}"))]).collect());
    let outcome = conn
        .bulk_insert(&TableName::new("staging"), &names(&["v"]), &input, Some("lockgate_row"))
        .await
        .unwrap();
    assert_eq!(outcome.written, 5);
    let read = conn
        .query("SELECT lockgate_row, v FROM staging ORDER BY rowid", &[], None)
        .await
        .unwrap();
    let expected: Vec<Vec<Value>> = (0..5).map(|i| vec![Value::Int(i), text(&format!("v{i}"))]).collect();
    assert_eq!(read, expected);
    let temp_name = TableName {
        schema: Some("temp".into()),
        name: "staging".into(),
    };
    let again = conn
        .bulk_insert(&temp_name, &names(&["v"]), &input[..1], Some("lockgate_row"))
        .await
        .unwrap();
    assert_eq!(again.written, 1);
    let temp = conn
        .describe(&TableName {
            schema: Some("temp".into()),
            name: "staging".into(),
        })
        .await
        .unwrap();
    assert_eq!(temp.expect("temp table").columns.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_leaves_nothing() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    let input = rows(
        (0..1000)
            .map(|i| vec![Value::Int(i), if i == 500 { Value::Null } else { text("v") }])
            .collect(),
    );
    conn.begin().await.unwrap();
    let outcome = conn
        .bulk_insert(&TableName::new("t"), &names(&["id", "v"]), &input, None)
        .await
        .unwrap();
    assert_eq!((outcome.written, outcome.row_errors.len()), (999, 1));
    assert_eq!(count(&mut conn, "t").await, 999);
    conn.rollback().await.unwrap();
    assert_eq!(count(&mut conn, "t").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_is_transient_not_a_row_error() {
    let db = TestDb::new(Engine::Sqlite).await;
    let mut holder = db.conn().await;
    holder.batch("CREATE TABLE t (id INTEGER PRIMARY KEY)").await.unwrap();
    let mut waiter = db.conn().await;
    match &mut waiter {
        Conn::Sqlite(c) => c.set_busy_timeout(Duration::from_millis(50)).await.unwrap(),
        _ => unreachable!("an SQLite URL gives an SQLite connection"),
    }
    holder.begin().await.unwrap();

    let started = std::time::Instant::now();
    let err = waiter
        .begin()
        .await
        .expect_err("BEGIN IMMEDIATE must wait for the holder");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the short busy timeout applies"
    );
    assert!(err.is_transient(), "{err}");
    assert!(err.engine_error().unwrap().code.starts_with("SQLITE_BUSY"), "{err}");

    let input = rows(vec![vec![Value::Int(1)]]);
    let err = waiter
        .bulk_insert(&TableName::new("t"), &names(&["id"]), &input, None)
        .await
        .expect_err("the write lock is taken");
    assert!(err.is_transient(), "{err}");

    holder.rollback().await.unwrap();
    let outcome = waiter
        .bulk_insert(&TableName::new("t"), &names(&["id"]), &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_scalars_survive_numeric_affinity() {
    // A column declared JSON has NUMERIC affinity: SQLite stores the document `5` as
    // the integer 5 and `12.5` as a REAL. Both must still read back as JSON.
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSON)")
        .await
        .unwrap();
    let docs = [
        serde_json::json!(5),
        serde_json::json!(-12.5),
        serde_json::json!("5"),
        serde_json::json!(true),
        serde_json::json!(null),
        serde_json::json!({"n": 1}),
    ];
    let input = rows(
        docs.iter()
            .enumerate()
            .map(|(i, d)| vec![Value::Int(i as i64), Value::Json(d.clone())])
            .collect(),
    );
    let outcome = conn
        .bulk_insert(&TableName::new("docs"), &names(&["id", "doc"]), &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, docs.len() as u64);
    let read = conn
        .query("SELECT doc FROM docs ORDER BY id", &[], Some(&[Kind::Json]))
        .await
        .unwrap();
    let expected: Vec<Vec<Value>> = docs.iter().map(|d| vec![Value::Json(d.clone())]).collect();
    assert_eq!(read, expected);
    let storage = conn
        .query("SELECT typeof(doc) FROM docs WHERE id = 0", &[], None)
        .await
        .unwrap();
    assert_eq!(storage, vec![vec![text("integer")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_are_refused_only_where_sqlite_would_change_them() {
    // NUMERIC keeps 15 significant digits or a 64-bit integer; REAL only the
    // former; TEXT keeps every digit.
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE d (id INTEGER PRIMARY KEY, num NUMERIC, txt TEXT, re REAL)")
        .await
        .unwrap();
    let long = "12345678901234567890.123456789";
    let input = rows(vec![
        vec![Value::Int(0), dec("12345678901234567"), dec(long), dec("0.1")],
        vec![Value::Int(1), dec(long), dec(long), dec("0.1")],
        vec![Value::Int(2), dec("1"), dec("1"), dec("12345678901234567")],
    ]);
    let columns = names(&["id", "num", "txt", "re"]);
    let outcome = conn
        .bulk_insert(&TableName::new("d"), &columns, &input, None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
    let refused: Vec<(usize, &str, Option<&str>)> = outcome
        .row_errors
        .iter()
        .map(|(i, e)| (*i, e.code.as_str(), e.column.as_deref()))
        .collect();
    assert_eq!(refused, vec![(1, "lockgate", Some("num")), (2, "lockgate", Some("re"))]);
    assert!(
        outcome.row_errors[0].1.message.contains(long),
        "{}",
        outcome.row_errors[0].1.message
    );
    let kinds = [
        Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: Some(15),
        },
        Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: None,
        },
        Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: Some(15),
        },
    ];
    let read = conn
        .query("SELECT id, num, txt, re FROM d", &[], Some(&kinds))
        .await
        .unwrap();
    assert_eq!(read, vec![input[0].values.clone()]);
}
