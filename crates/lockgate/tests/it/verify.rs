//! `verify` between every pair of engines (the same engine on both sides included):
//! equal tables are equal; one changed value, a row missing on each side and NULL
//! against an empty text are each reported exactly, down to the column, with the
//! counts exact past `limit`; a changed decimal that two scales call equal is equal;
//! bad input (a column missing on one side, a JSON column, an unusable key) is a
//! clear error before anything is compared; an empty table is equal to another.

use lockgate::verify::{verify, VerifyError, VerifySpec};
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};

const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

/// The table `t`'s definition on `engine`.
fn ddl(engine: Engine, name: &str) -> String {
    let (dec, dbl, ts, b) = match engine {
        Engine::Postgres => ("numeric(12,2)", "double precision", "timestamp", "boolean"),
        Engine::Mysql => ("DECIMAL(12,2)", "DOUBLE", "DATETIME(6)", "TINYINT(1)"),
        Engine::Sqlite => ("NUMERIC(12,2)", "REAL", "TIMESTAMP", "BOOLEAN"),
    };
    format!(
        "CREATE TABLE {name} (id bigint PRIMARY KEY, name varchar(40), amount {dec}, score {dbl}, at {ts}, flag {b})"
    )
}

/// `rows` rows into `name`, in statements of 200.
async fn fill(c: &mut Conn, engine: Engine, name: &str, rows: i64) {
    let (t, f) = if engine == Engine::Postgres {
        ("true", "false")
    } else {
        ("1", "0")
    };
    for start in (1..=rows).step_by(200) {
        let values: Vec<String> = (start..(start + 200).min(rows + 1))
            .map(|i| {
                format!(
                    "({i}, 'name {i}', {}.{:02}, {}, '2024-01-{:02} 10:{:02}:{:02}.{:06}', {})",
                    i * 3,
                    i % 100,
                    (i as f64) / 7.0,
                    i % 28 + 1,
                    i % 60,
                    i % 60,
                    i % 1_000_000,
                    if i % 2 == 0 { t } else { f }
                )
            })
            .collect();
        c.batch(&format!("INSERT INTO {name} VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
}

fn spec(src: &TestDb, dst: &TestDb) -> VerifySpec {
    VerifySpec {
        source: src.url.clone(),
        source_table: "t".into(),
        dest: dst.url.clone(),
        dest_table: None,
        key: None,
        exclude: Vec::new(),
        limit: 100,
    }
}

fn quiet(_: &str) {}

/// A differing row as the test states it: its key and (column, source, dest).
type Diff<'a> = (i64, Vec<(&'a str, &'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_of_engines_finds_exactly_what_differs() {
    for se in ENGINES {
        for de in ENGINES {
            let (src, dst) = (TestDb::new(se).await, TestDb::new(de).await);
            let (mut a, mut b) = (src.conn().await, dst.conn().await);
            a.batch(&ddl(se, "t")).await.unwrap();
            b.batch(&ddl(de, "t")).await.unwrap();
            fill(&mut a, se, "t", 3000).await;
            fill(&mut b, de, "t", 3000).await;
            let r = verify(&spec(&src, &dst), &quiet).await.unwrap();
            assert!(r.equal, "{se:?} -> {de:?}: {r:#?}");
            assert_eq!((r.source_rows, r.dest_rows), (3000, 3000));
            assert_eq!(r.rows_fetched, 0, "{se:?} -> {de:?}: equal ranges read no rows");

            // One value changed, a row missing on each side, NULL against ''.
            b.batch("UPDATE t SET amount = 1.23 WHERE id = 1500").await.unwrap();
            b.batch("DELETE FROM t WHERE id = 77").await.unwrap();
            a.batch("DELETE FROM t WHERE id = 2999").await.unwrap();
            a.batch("UPDATE t SET name = NULL WHERE id = 10").await.unwrap();
            b.batch("UPDATE t SET name = '' WHERE id = 10").await.unwrap();
            let r = verify(&spec(&src, &dst), &quiet).await.unwrap();
            assert!(!r.equal);
            assert_eq!(r.only_in_source, [77], "{se:?} -> {de:?}");
            assert_eq!(r.only_in_dest, [2999], "{se:?} -> {de:?}");
            let diffs: Vec<Diff> = r
                .differing
                .iter()
                .map(|d| {
                    (
                        d.key,
                        d.columns
                            .iter()
                            .map(|c| (c.column.as_str(), c.source.as_str(), c.dest.as_str()))
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(
                diffs,
                [
                    (10, vec![("name", "NULL", "\"\"")]),
                    (1500, vec![("amount", "4500.00", "1.23")]),
                ],
                "{se:?} -> {de:?}"
            );
            assert_eq!(
                (r.only_in_source_count, r.only_in_dest_count, r.differing_count),
                (1, 1, 2)
            );
            assert!(
                r.rows_fetched < 2000,
                "{se:?} -> {de:?}: narrowed down: {}",
                r.rows_fetched
            );

            // Counts stay exact past the limit.
            let mut few = spec(&src, &dst);
            few.limit = 1;
            let r = verify(&few, &quiet).await.unwrap();
            assert_eq!(r.differing.len(), 1);
            assert_eq!(r.differing_count, 2);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_comparing() {
    let (src, dst) = (TestDb::new(Engine::Postgres).await, TestDb::new(Engine::Mysql).await);
    let (mut a, mut b) = (src.conn().await, dst.conn().await);
    a.batch("CREATE TABLE t (id bigint PRIMARY KEY, name text, doc jsonb)")
        .await
        .unwrap();
    b.batch("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, doc JSON, extra INT)")
        .await
        .unwrap();
    let e = verify(&spec(&src, &dst), &quiet).await.unwrap_err();
    assert!(matches!(e, VerifyError::Invalid(_)), "{e}");
    let m = e.to_string();
    assert!(m.contains("column doc: JSON columns are not compared yet"), "{m}");
    assert!(m.contains("column extra is not in the source table"), "{m}");
    assert_eq!(e.exit_code(), 2);
    // Left out, the rest compares: two empty tables are equal.
    let mut s = spec(&src, &dst);
    s.exclude = vec!["doc".into(), "extra".into()];
    let r = verify(&s, &quiet).await.unwrap();
    assert!(r.equal && r.source_rows == 0, "{r:#?}");
    // A key that is not an integer; a table that is not there; a column to exclude
    // that neither has.
    a.batch("CREATE TABLE k (code text PRIMARY KEY)").await.unwrap();
    b.batch("CREATE TABLE k (code VARCHAR(9) PRIMARY KEY)").await.unwrap();
    let mut s = spec(&src, &dst);
    s.source_table = "k".into();
    let m = verify(&s, &quiet).await.unwrap_err().to_string();
    assert!(m.contains("one integer column"), "{m}");
    let mut s = spec(&src, &dst);
    s.source_table = "nope".into();
    let e = verify(&s, &quiet).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let mut s = spec(&src, &dst);
    s.exclude = vec!["doc".into(), "extra".into(), "zzz".into()];
    let m = verify(&s, &quiet).await.unwrap_err().to_string();
    assert!(m.contains("zzz"), "{m}");
}
