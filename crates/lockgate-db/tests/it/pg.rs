//! Tests of the pg engine module's caching session (`Conn::cache_statements`, what
//! the dashboard's pooled connections are): it recovers when its kept statements are
//! gone from the server, as after a `DEALLOCATE ALL` (what a `DISCARD ALL`, or a
//! pooler in front of PostgreSQL, does to a session); and a table description it
//! keeps is the table's as it is now after every kind of change, while it is served
//! without re-reading the description when nothing changed (VACUUM, ANALYZE and
//! writes to the rows included). Needs PostgreSQL 14 or later
//! (`pg_prepared_statements.generic_plans` counts a kept statement's runs).

use lockgate_core::Value;
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};

/// How many times the caching session `c` has run its kept statement that reads a
/// table's columns (PostgreSQL counts each execution as a generic or custom plan).
async fn column_reads(c: &mut Conn) -> i64 {
    let rows = c
        .query(
            "SELECT coalesce(sum(generic_plans + custom_plans), 0)::bigint FROM pg_prepared_statements \
             WHERE statement LIKE 'SELECT a.attname::text, format_type(%'",
            &[],
            None,
        )
        .await
        .unwrap();
    match rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_kept_description_follows_every_change_to_the_table() {
    let db = TestDb::new(Engine::Postgres).await;
    let mut admin = Conn::connect(&db.url).await.unwrap();
    admin
        .batch(
            "CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE); \
             CREATE TABLE t (id int PRIMARY KEY, name text, parent_id int); \
             CREATE FUNCTION nop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        )
        .await
        .unwrap();
    let mut kept = Conn::connect(&db.url).await.unwrap();
    kept.cache_statements();
    let first = kept.lookup_table("t").await.unwrap();
    assert!(first.is_some());
    let mut reads = column_reads(&mut kept).await;
    assert_eq!(reads, 1, "described once");

    // What changes no description: the kept one is served, the columns not read.
    for same in [
        "INSERT INTO parent VALUES (1, 'a'); INSERT INTO t VALUES (1, 'x', 1)",
        "ANALYZE t",
        "VACUUM t",
        "UPDATE t SET name = 'y'",
        "CREATE TABLE unrelated (id int)",
    ] {
        admin.batch(same).await.unwrap();
        assert_eq!(kept.lookup_table("t").await.unwrap(), first, "after {same}");
        assert_eq!(column_reads(&mut kept).await, reads, "described again after {same}");
    }

    // Every change the description shows: the kept session reads what a new session
    // reads.
    for change in [
        "ALTER TABLE t ADD COLUMN extra int",
        "ALTER TABLE t ALTER COLUMN name TYPE varchar(40)",
        "ALTER TABLE t ALTER COLUMN name SET NOT NULL",
        "ALTER TABLE t ALTER COLUMN extra SET DEFAULT 7",
        "ALTER TABLE t ALTER COLUMN extra SET DEFAULT 8",
        "ALTER TABLE t RENAME COLUMN extra TO more",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (parent_id) REFERENCES parent (id)",
        "ALTER TABLE parent RENAME COLUMN id TO pid",
        "ALTER TABLE parent RENAME TO mother",
        "CREATE SCHEMA elsewhere; ALTER TABLE mother SET SCHEMA elsewhere",
        "ALTER TABLE t ADD CONSTRAINT positive CHECK (more > 0)",
        "ALTER TABLE t ADD CONSTRAINT named UNIQUE (name)",
        "ALTER TABLE t RENAME CONSTRAINT named TO unique_name",
        "CREATE INDEX t_name ON t (name)",
        "ALTER INDEX t_name RENAME TO t_by_name",
        "CREATE UNIQUE INDEX t_more ON t (more) WHERE more > 10",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION nop()",
        "ALTER TRIGGER tr ON t RENAME TO tr2",
        "ALTER TABLE t DROP CONSTRAINT positive",
        "DROP INDEX t_by_name",
        "ALTER TABLE t DROP COLUMN more",
        "CREATE TYPE mood AS ENUM ('ok'); ALTER TABLE t ADD COLUMN mood mood",
        "ALTER TYPE mood RENAME TO feeling",
        "ALTER TABLE t ALTER COLUMN id SET DATA TYPE bigint",
        "ALTER TABLE t ALTER COLUMN mood SET DATA TYPE text COLLATE \"C\"",
        "ALTER TABLE t DROP CONSTRAINT t_pkey",
        "CREATE COLLATION mine FROM \"C\"; ALTER TABLE t ALTER COLUMN name TYPE text COLLATE mine",
        "ALTER COLLATION mine RENAME TO yours",
        "CREATE SCHEMA types; CREATE TYPE types.level AS ENUM ('low'); ALTER TABLE t ADD COLUMN level types.level",
        "ALTER SCHEMA types RENAME TO kinds",
        "DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, name text, parent_id int)",
        "DROP TABLE t; CREATE TABLE t (other text)",
    ] {
        admin.batch(change).await.unwrap();
        let fresh = Conn::connect(&db.url).await.unwrap().lookup_table("t").await.unwrap();
        assert_eq!(kept.lookup_table("t").await.unwrap(), fresh, "after {change}");
        assert!(
            column_reads(&mut kept).await > reads,
            "not described again after {change}"
        );
        // And kept again: the next lookup is served without reading.
        reads = column_reads(&mut kept).await;
        assert_eq!(kept.lookup_table("t").await.unwrap(), fresh);
        assert_eq!(column_reads(&mut kept).await, reads, "after {change}, twice");
    }
    // A unique index whose concurrent build failed on duplicates is left invalid: it
    // is listed, but as not unique (no page order may rest on it), and the kept
    // description says so too.
    admin.batch("INSERT INTO t VALUES ('same'), ('same')").await.unwrap();
    assert!(admin
        .batch("CREATE UNIQUE INDEX CONCURRENTLY t_other ON t (other)")
        .await
        .is_err());
    let fresh = Conn::connect(&db.url).await.unwrap().find_table("t").await.unwrap();
    let index = fresh
        .indexes
        .iter()
        .find(|i| i.name == "t_other")
        .expect("the invalid index is listed");
    assert!(!index.unique, "{index:?}");
    assert_eq!(kept.find_table("t").await.unwrap(), fresh);

    // Gone from the current schema: not found, as on a new session.
    admin.batch("ALTER TABLE t SET SCHEMA elsewhere").await.unwrap();
    assert_eq!(kept.lookup_table("t").await.unwrap(), None);
    assert!(kept.lookup_table("elsewhere.t").await.unwrap().is_some());
}

#[tokio::test]
async fn kept_statements_that_the_server_dropped_are_prepared_again() {
    let db = TestDb::new(Engine::Postgres).await;
    let mut c = Conn::connect(&db.url).await.unwrap();
    c.batch("CREATE TABLE t (id int PRIMARY KEY, name text)").await.unwrap();
    c.cache_statements();
    let first = c.find_table("t").await.unwrap();
    assert_eq!(c.list_tables().await.unwrap().len(), 1);
    let kept = c
        .query("SELECT count(*) FROM pg_prepared_statements", &[], None)
        .await
        .unwrap();
    assert!(
        matches!(kept[0][0], lockgate_core::Value::Int(n) if n >= 5),
        "the introspection's statements are kept: {kept:?}"
    );
    c.batch("DEALLOCATE ALL").await.unwrap();
    // Every kept statement is gone on the server: each is prepared again, and the
    // description is the same.
    assert_eq!(c.find_table("t").await.unwrap(), first);
    assert_eq!(c.list_tables().await.unwrap().len(), 1);
    // And kept again: the lookup (the description itself is kept, unchanged).
    c.batch("DEALLOCATE ALL").await.unwrap();
    c.find_table("t").await.unwrap();
    let kept = c
        .query("SELECT count(*) FROM pg_prepared_statements", &[], None)
        .await
        .unwrap();
    assert!(matches!(kept[0][0], lockgate_core::Value::Int(n) if n >= 1), "{kept:?}");
    // A changed table after a DEALLOCATE ALL: each description statement is
    // prepared again.
    c.batch("DEALLOCATE ALL; ALTER TABLE t ADD COLUMN more int")
        .await
        .unwrap();
    assert_eq!(c.find_table("t").await.unwrap().columns.len(), 3);
}

#[tokio::test]
async fn a_pooled_page_takes_its_row_estimate_from_the_table_lookup() {
    use lockgate_db::browse::{browse, BrowseQuery, RowCount, ESTIMATE_FROM};
    let db = TestDb::new(Engine::Postgres).await;
    let mut admin = Conn::connect(&db.url).await.unwrap();
    let rows = ESTIMATE_FROM + 5_000;
    admin
        .batch(&format!(
            "CREATE TABLE big (id bigint PRIMARY KEY); INSERT INTO big SELECT generate_series(1, {rows}); \
             CREATE TABLE small (id int PRIMARY KEY); ANALYZE big"
        ))
        .await
        .unwrap();
    let mut kept = Conn::connect(&db.url).await.unwrap();
    kept.cache_statements();
    // The lookup reads the estimate, which is handed out once, for that table only.
    let big = kept.find_table("big").await.unwrap();
    let small = kept.find_table("small").await.unwrap();
    assert_eq!(
        kept.take_row_estimate(&big.name),
        None,
        "the last lookup was of another table"
    );
    assert!(kept.take_row_estimate(&small.name).is_some());
    assert_eq!(kept.take_row_estimate(&small.name), None, "taken once");
    kept.find_table("big").await.unwrap();
    let estimate = kept.take_row_estimate(&big.name).unwrap();
    assert!((estimate - rows as f64).abs() < rows as f64 * 0.05, "{estimate}");
    // A page's total is the same as a session that looks the estimate up itself.
    let q = BrowseQuery::default();
    let pooled = browse(&mut kept, "big", &q).await.unwrap();
    let plain = browse(&mut admin, "big", &q).await.unwrap();
    assert!(matches!(pooled.total, RowCount::About(_)), "{:?}", pooled.total);
    assert_eq!(format!("{:?}", pooled.total), format!("{:?}", plain.total));
    // Not a kind of browse: a plain connection keeps none.
    admin.find_table("big").await.unwrap();
    assert_eq!(admin.take_row_estimate(&big.name), None);
}

/// The kept statements of `c`'s session whose text starts with `prefix`, with how
/// many times each ran.
async fn kept_runs(c: &mut Conn, prefix: &str) -> Vec<i64> {
    let rows = c
        .query(
            "SELECT (generic_plans + custom_plans)::bigint FROM pg_prepared_statements \
             WHERE starts_with(statement, $1) AND statement NOT LIKE '%pg_prepared_statements%'",
            &[Value::Text(prefix.into())],
            None,
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| match r[0] {
            Value::Int(n) => n,
            ref other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_pooled_session_keeps_keyset_pages_prepared_but_plans_searches_each_time() {
    use lockgate_db::browse::{browse, BrowseQuery};
    let db = TestDb::new(Engine::Postgres).await;
    let mut admin = Conn::connect(&db.url).await.unwrap();
    admin
        .batch("CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 300) g")
        .await
        .unwrap();
    let mut kept = Conn::connect(&db.url).await.unwrap();
    kept.cache_statements();
    let q = BrowseQuery {
        per_page: 10,
        ..BrowseQuery::default()
    };
    let first = browse(&mut kept, "t", &q).await.unwrap();
    let again = browse(&mut kept, "t", &q).await.unwrap();
    assert_eq!(format!("{:?}", first.rows), format!("{:?}", again.rows));
    assert_eq!(
        kept_runs(&mut kept, "SELECT \"id\"").await,
        [2],
        "one page statement, run twice"
    );
    // The next page (a cursor) is another statement, kept too.
    let next = BrowseQuery {
        after: first.next.clone(),
        ..q.clone()
    };
    let page2 = browse(&mut kept, "t", &next).await.unwrap();
    assert_eq!(page2.rows[0][0], Value::Int(11));
    assert_eq!(kept_runs(&mut kept, "SELECT \"id\"").await.len(), 2);
    // A search is planned for its pattern each time: not kept.
    let search = BrowseQuery {
        search: Some("n1".into()),
        ..q.clone()
    };
    browse(&mut kept, "t", &search).await.unwrap();
    assert_eq!(kept_runs(&mut kept, "SELECT \"id\"").await.len(), 2);
    // The table changed under the kept statements: the page is read as it is now.
    admin
        .batch("ALTER TABLE t ALTER COLUMN name TYPE varchar(9)")
        .await
        .unwrap();
    admin
        .batch("ALTER TABLE t ADD COLUMN more int DEFAULT 5")
        .await
        .unwrap();
    let changed = browse(&mut kept, "t", &q).await.unwrap();
    assert_eq!(changed.rows[0].len(), 3);
    assert_eq!(changed.rows[0][2], Value::Int(5));
    // Bounded: seventy page sizes are seventy statements, at most 64 of them kept.
    for per_page in 1..=70 {
        let q = BrowseQuery {
            per_page,
            ..BrowseQuery::default()
        };
        browse(&mut kept, "t", &q).await.unwrap();
    }
    let n = kept_runs(&mut kept, "SELECT \"id\"").await.len();
    assert!((1..=64).contains(&n), "{n} kept");
}
