//! `checksum`: the same rows give byte-identical canonical texts, and so the same
//! row hashes and range sums, computed inside PostgreSQL and MariaDB by SQL and
//! inside SQLite by the registered function, and by Rust from the values read back:
//! every kind the verify compares (booleans, integers, decimals at a common scale,
//! doubles down to their shortest digits, texts with `|` and multi-byte characters,
//! empty text against NULL, bytes, dates, times, timestamps, instants, UUIDs).

use lockgate_core::Value;
use lockgate_db::checksum::{self, Canon};
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::collections::BTreeMap;

/// The columns: name, its type on PostgreSQL, MariaDB and SQLite, how it is compared.
fn columns() -> Vec<(&'static str, &'static str, &'static str, &'static str, Canon)> {
    vec![
        (
            "id",
            "bigint PRIMARY KEY",
            "BIGINT PRIMARY KEY",
            "INTEGER PRIMARY KEY",
            Canon::Int,
        ),
        ("b", "boolean", "TINYINT(1)", "BOOLEAN", Canon::Bool),
        (
            "d",
            "numeric(12,2)",
            "DECIMAL(12,2)",
            "NUMERIC(12,2)",
            Canon::Decimal { scale: 2 },
        ),
        ("f", "double precision", "DOUBLE", "REAL", Canon::Float),
        ("t", "text", "VARCHAR(50)", "TEXT", Canon::Text),
        ("by", "bytea", "VARBINARY(20)", "BLOB", Canon::Bytes),
        ("dt", "date", "DATE", "DATE", Canon::Date),
        ("tm", "time", "TIME(6)", "TIME", Canon::Time),
        ("ts", "timestamp", "DATETIME(6)", "TIMESTAMP", Canon::Timestamp),
        (
            "tz",
            "timestamptz",
            "TIMESTAMP(6) NULL",
            "TIMESTAMPTZ",
            Canon::TimestampUtc,
        ),
        ("u", "uuid", "CHAR(36)", "UUID", Canon::Uuid),
    ]
}

/// The rows, as SQL literals common to the three engines (NULL where a column is
/// left out); the booleans as 0/1 and true/false by engine.
fn rows() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "1",
            "1",
            "1234567890.12",
            "0.1",
            "'Zoë'",
            "x'00ff10'",
            "'2024-02-29'",
            "'23:59:59.999999'",
            "'2024-02-29 23:59:59.999999'",
            "'2024-02-29 21:59:59.5'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        ],
        vec![
            "2",
            "0",
            "-0.50",
            "-2e-5",
            "''",
            "x''",
            "'0001-01-01'",
            "'00:00:00'",
            "'0001-01-01 00:00:00'",
            "'1970-01-01 00:00:01'",
            "NULL",
        ],
        vec![
            "3",
            "NULL",
            "0.00",
            "123456789012345680",
            "'a|b'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
        ],
        vec![
            "4",
            "1",
            "NULL",
            "1.5",
            "NULL",
            "x'7c'",
            "'9999-12-31'",
            "'12:00:00.000001'",
            "'9999-12-31 23:59:59'",
            "'2038-01-19 03:14:07'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        ],
        vec![
            "5",
            "0",
            "99.99",
            "-0",
            "'3:abc'",
            "x'00'",
            "'2000-01-01'",
            "'01:02:03'",
            "'2000-01-01 00:00:00.000001'",
            "'2000-01-01 00:00:00'",
            "'00000000-0000-0000-0000-000000000000'",
        ],
        vec![
            "6",
            "1",
            "1",
            "1e300",
            "'N'",
            "x'ffff'",
            "'2001-02-03'",
            "'04:05:06.7'",
            "'2001-02-03 04:05:06.7'",
            "'2001-02-03 04:05:06.7'",
            "NULL",
        ],
        vec![
            "7",
            "0",
            "-12.34",
            "0.000123",
            "'|'",
            "NULL",
            "'2001-02-03'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
        ],
    ]
}

/// The hashes of every row by id: computed by `engine` itself, and by Rust from the
/// values read back; and the engine's sum over the table.
async fn hashes(engine: Engine) -> (BTreeMap<i64, u64>, BTreeMap<i64, u64>, u64) {
    let db = TestDb::new(engine).await;
    let mut c = Conn::connect(&db.url).await.unwrap();
    let cols = columns();
    let defs: Vec<String> = cols
        .iter()
        .map(|(name, pg, my, lite, _)| {
            let ty = match engine {
                Engine::Postgres => pg,
                Engine::Mysql => my,
                Engine::Sqlite => lite,
            };
            format!("{} {ty}", c.dialect().quote(name))
        })
        .collect();
    c.batch(&format!("CREATE TABLE h ({})", defs.join(", "))).await.unwrap();
    for row in rows() {
        let values: Vec<String> = row
            .iter()
            .zip(&cols)
            .map(|(v, (_, _, _, _, canon))| match (engine, canon, *v) {
                (Engine::Postgres, Canon::Bool, "1") => "true".to_string(),
                (Engine::Postgres, Canon::Bool, "0") => "false".to_string(),
                (Engine::Postgres, Canon::Bytes, v) if v.starts_with("x'") => {
                    format!("'\\x{}'::bytea", &v[2..v.len() - 1])
                }
                (_, Canon::Float, v) if v != "NULL" => format!("CAST({v} AS DOUBLE PRECISION)").replace(
                    "DOUBLE PRECISION",
                    if engine == Engine::Mysql {
                        "DOUBLE"
                    } else {
                        "DOUBLE PRECISION"
                    },
                ),
                (Engine::Sqlite, Canon::Float, v) => v.to_string(),
                (_, _, v) => v.to_string(),
            })
            .map(|v| {
                if engine == Engine::Sqlite {
                    v.replace("CAST(", "(").replace(" AS DOUBLE PRECISION)", " + 0.0)")
                } else {
                    v
                }
            })
            .collect();
        c.batch(&format!("INSERT INTO h VALUES ({})", values.join(", ")))
            .await
            .unwrap();
    }
    let table = c.find_table("h").await.unwrap();
    let fields: Vec<(String, Canon)> = cols
        .iter()
        .map(|(name, _, _, _, canon)| (c.dialect().quote(name), canon.clone()))
        .collect();
    let kinds: Vec<_> = table.columns.iter().map(|col| col.kind.clone()).collect();
    c.register_checksum(kinds.iter().cloned().zip(cols.iter().map(|x| x.4.clone())).collect())
        .await
        .unwrap();
    let hash = checksum::row_hash_sql(engine, &fields);
    let by_db = c
        .query(&format!("SELECT id, {hash} FROM h ORDER BY id"), &[], None)
        .await
        .unwrap();
    let by_db: BTreeMap<i64, u64> = by_db
        .iter()
        .map(|r| (int(&r[0]), checksum::sum_mod64(&r[1]).unwrap()))
        .collect();
    let read = c.query("SELECT * FROM h ORDER BY id", &[], Some(&kinds)).await.unwrap();
    let canons: Vec<Canon> = cols.iter().map(|x| x.4.clone()).collect();
    let by_rust: BTreeMap<i64, u64> = read
        .iter()
        .map(|r| (int(&r[0]), checksum::text_hash(&checksum::row_text(&canons, r))))
        .collect();
    let sum_sql = match engine {
        Engine::Sqlite => format!("SELECT {}({hash}) FROM h", checksum::SQLITE_SUM64),
        _ => format!("SELECT sum({hash}) FROM h"),
    };
    let sum = c.query(&sum_sql, &[], None).await.unwrap();
    (by_db, by_rust, checksum::sum_mod64(&sum[0][0]).unwrap())
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rows_hash_the_same_on_every_engine_and_in_rust() {
    let mut all = Vec::new();
    for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        let (by_db, by_rust, sum) = hashes(engine).await;
        assert_eq!(
            by_db, by_rust,
            "{engine:?}: the database's hashes against Rust's of the values read back"
        );
        let wrapped = by_rust.values().fold(0u64, |a, h| a.wrapping_add(*h));
        assert_eq!(sum, wrapped, "{engine:?}: the table's sum, modulo 2^64");
        all.push((engine, by_db));
    }
    for (engine, h) in &all[1..] {
        assert_eq!(h, &all[0].1, "{engine:?} against PostgreSQL");
    }
}

#[test]
fn canonical_texts_are_as_documented() {
    let t = |canon: Canon, v: Value| String::from_utf8(checksum::row_text(&[canon], &[v])).unwrap();
    assert_eq!(t(Canon::Text, Value::Text("Zoë".into())), "4:Zoë");
    assert_eq!(t(Canon::Text, Value::Text(String::new())), "0:");
    assert_eq!(t(Canon::Text, Value::Null), "N");
    assert_eq!(t(Canon::Float, Value::Float(-0.0)), "0e0");
    assert_eq!(t(Canon::Float, Value::Float(1.5e15)), "1.5e15");
    assert_eq!(t(Canon::Float, Value::Float(-2e-5)), "-2e-5");
    assert_eq!(t(Canon::Bool, Value::Bool(true)), "1");
    assert_eq!(
        t(
            Canon::Decimal { scale: 2 },
            Value::Decimal(lockgate_core::Decimal::parse("-0.001").unwrap())
        ),
        "0.00"
    );
    assert_eq!(t(Canon::Decimal { scale: 2 }, Value::Int(7)), "7.00");
    assert_eq!(t(Canon::Bytes, Value::Bytes(vec![0, 255, 16])), "00ff10");
    // Fields are joined by `|`, and a text's own `|` cannot be taken for a join.
    let two = |a: &str, b: &str| {
        checksum::row_text(
            &[Canon::Text, Canon::Text],
            &[Value::Text(a.into()), Value::Text(b.into())],
        )
    };
    assert_ne!(two("a|b", "c"), two("a", "b|c"));
    assert_eq!(checksum::sum_mod64(&Value::Text("-1".into())), Some(u64::MAX));
    assert_eq!(
        checksum::sum_mod64(&Value::Text("18446744073709551617".into())),
        Some(1),
        "2^64 + 1"
    );
}
