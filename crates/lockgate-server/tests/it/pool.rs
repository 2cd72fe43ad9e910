//! The server's pooled connections (`pool.rs`): sequential pages reuse one session
//! instead of opening one each; the pool never holds more than `pool_size` sessions,
//! however many requests wait; a backend terminated under the pool, and a database
//! that is down, are each one clear outcome (the next request succeeds, even when the
//! backend is terminated under a running page; the error names the connection at
//! once); a table altered between pages is read as it is now (the pooled session keeps
//! its introspection's statements, never a table's description); a request cancelled
//! while its query runs does not hand that busy session to the next request; a pooled SQLite connection holds no
//! read snapshot between requests (a writer's checkpoint completes) and notices its
//! file being replaced.

use crate::*;
use lockgate_core::Value;
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::time::{Duration, Instant};

/// A connection of the test's own to `db`, named `lockgate-test` so that it is not
/// taken for one of the server's (which are named `lockgate`).
async fn test_conn(db: &TestDb) -> Conn {
    let mut c = db.conn().await;
    c.batch("SET application_name = 'lockgate-test'").await.unwrap();
    c
}

/// The server's sessions on the database `admin` is connected to, by backend pid.
async fn server_sessions(admin: &mut Conn) -> Vec<i64> {
    let rows = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'lockgate' ORDER BY pid",
            &[],
            None,
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| match r[0] {
            Value::Int(pid) => pid,
            ref other => panic!("a pid: {other:?}"),
        })
        .collect()
}

/// The server's sessions once there are `n` of them (a terminated backend may show
/// for a moment after it was told to end), or as they are after 3 s.
async fn sessions_settled(admin: &mut Conn, n: usize) -> Vec<i64> {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let s = server_sessions(admin).await;
        if s.len() == n || Instant::now() > until {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL database with `items` (120 rows) and `other` (3 rows), and a server
/// over it as the connection `pg` with pools of `pool_size`.
async fn pg_app(pool_size: usize) -> (TestDb, Router) {
    let db = TestDb::new(Engine::Postgres).await;
    test_conn(&db)
        .await
        .batch(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 120) g; \
             CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1), (2), (3)",
        )
        .await
        .unwrap();
    let mut cfg = ServerConfig::new();
    cfg.pool_size = pool_size;
    cfg.connections.push(NamedConnection {
        name: "pg".into(),
        url: db.url.clone(),
    });
    (db, lockgate_server::router(cfg).unwrap())
}

/// The `conn` entry's description of a page's Server-Timing (`pooled`, `new`).
fn conn_desc(r: &Reply) -> String {
    let timing = r.header("server-timing");
    let conn = timing
        .split(", ")
        .find(|m| m.starts_with("conn;"))
        .unwrap_or_else(|| panic!("no conn entry in {timing:?}"));
    conn.split("desc=").nth(1).unwrap_or("").to_string()
}

#[tokio::test]
async fn sequential_pages_reuse_one_session() {
    let (db, app) = pg_app(4).await;
    let mut admin = test_conn(&db).await;
    assert!(
        sessions_settled(&mut admin, 0).await.is_empty(),
        "no session before a request"
    );
    let mut descs = Vec::new();
    for i in 0..30 {
        let r = get(&app, "/api/tables/pg/items?per_page=50").await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        assert_eq!(r.json()["rows"].as_array().unwrap().len(), 50);
        descs.push(conn_desc(&r));
    }
    assert_eq!(descs[0], "new", "the first page makes the connection");
    assert!(descs[1..].iter().all(|d| d == "pooled"), "{descs:?}");
    let after_pages = server_sessions(&mut admin).await;
    assert_eq!(after_pages.len(), 1, "30 pages, one session: {after_pages:?}");

    // The other reads take the same pool: the table list, the connection check, the
    // pages of the Tables view.
    for uri in ["/api/tables/pg", "/api/connections", "/tables?conn=pg&table=other"] {
        for _ in 0..5 {
            let r = get(&app, uri).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        }
    }
    let c = get(&app, "/api/connections").await.json();
    assert_eq!(c[0]["error"], serde_json::Value::Null, "{c:#}");
    assert_eq!(server_sessions(&mut admin).await, after_pages, "still the one session");
}

#[tokio::test]
async fn a_table_changed_between_pages_is_read_as_it_is_now() {
    // A pooled session keeps its introspection's prepared statements: a table changed
    // since (a column's type, a column added or dropped) must be read as it is now,
    // neither shown in its old shape nor failing the page.
    let (db, app) = pg_app(1).await;
    for _ in 0..8 {
        let r = get(&app, "/api/tables/pg/items?per_page=5&sort=name").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let mut admin = test_conn(&db).await;
    // The same page's SQL, over columns of other types.
    admin
        .batch("ALTER TABLE items ALTER COLUMN id TYPE numeric(12, 0); ALTER TABLE items ALTER COLUMN name TYPE varchar(40)")
        .await
        .unwrap();
    let r = get(&app, "/api/tables/pg/items?per_page=5&sort=name").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(conn_desc(&r), "pooled");
    assert_eq!(r.json()["columns"][0]["type"], "decimal(12,0)", "{}", r.text());
    admin
        .batch("ALTER TABLE items ADD COLUMN extra int DEFAULT 7")
        .await
        .unwrap();
    let r = get(&app, "/api/tables/pg/items?per_page=5&sort=name").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(conn_desc(&r), "pooled", "the same session");
    let p = r.json();
    let columns: Vec<&str> = p["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "name", "extra"]);
    assert_eq!(p["rows"][0][2], 7);
    assert_eq!(p["total"], 120);
    admin.batch("ALTER TABLE items DROP COLUMN name").await.unwrap();
    let r = get(&app, "/api/tables/pg/items?per_page=5").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["rows"][0].as_array().unwrap().len(), 2);
    // Sorting by the dropped column is a bad request, as for any unknown column.
    let r = get(&app, "/api/tables/pg/items?per_page=5&sort=name").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

#[tokio::test]
async fn the_pool_holds_at_most_pool_size_sessions() {
    let (db, app) = pg_app(2).await;
    let mut admin = test_conn(&db).await;
    // Six pages at once, each held on a lock until the test lets go: two run (the
    // pool's two sessions), the other four wait for one of them.
    let mut lock = test_conn(&db).await;
    lock.begin().await.unwrap();
    lock.batch("LOCK TABLE items IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { get(&app, "/api/tables/pg/items?per_page=10").await })
        })
        .collect();
    let waiting = async {
        loop {
            let n = server_sessions(&mut admin).await.len();
            if n >= 2 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the pages reached the lock");
    // Long enough for a third session to show up, were the pool not bounded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n, 2);
    assert_eq!(
        server_sessions(&mut admin).await.len(),
        2,
        "the pool's size, not one per request"
    );
    lock.rollback().await.unwrap();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["rows"].as_array().unwrap().len(), 10);
    }
    assert_eq!(server_sessions(&mut admin).await.len(), 2);
}

#[tokio::test]
async fn a_terminated_backend_is_replaced_and_the_next_request_succeeds() {
    let (db, app) = pg_app(4).await;
    let mut admin = test_conn(&db).await;
    assert_eq!(get(&app, "/api/tables/pg/items").await.status, StatusCode::OK);
    // Twice: once after the pooled session has had time to see its end, once straight
    // after (the read then finds the connection gone mid-query and runs again).
    for pause in [Duration::from_millis(300), Duration::ZERO] {
        let before = sessions_settled(&mut admin, 1).await;
        assert_eq!(before.len(), 1, "{before:?}");
        let killed = admin
            .query("SELECT pg_terminate_backend($1)", &[Value::Int(before[0])], None)
            .await
            .unwrap();
        assert_eq!(killed[0][0], Value::Bool(true));
        tokio::time::sleep(pause).await;
        let r = get(&app, "/api/tables/pg/items?per_page=50").await;
        assert_eq!(r.status, StatusCode::OK, "after {pause:?}: {}", r.text());
        assert_eq!(r.json()["rows"][0][0], 1);
        assert!(
            !conn_desc(&r).starts_with("pooled"),
            "not the dead session: {}",
            r.header("server-timing")
        );
        let after = sessions_settled(&mut admin, 1).await;
        assert_eq!(after.len(), 1, "{after:?}");
        assert_ne!(after, before, "a new session replaced the terminated one");
        // And it is pooled again.
        let r = get(&app, "/api/tables/pg/items?per_page=50").await;
        assert_eq!(conn_desc(&r), "pooled");
    }

    // Terminated while its query runs (held on a lock): the read runs again on a new
    // session, and the page still answers.
    let mut lock = test_conn(&db).await;
    lock.begin().await.unwrap();
    lock.batch("LOCK TABLE items IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let page = tokio::spawn({
        let app = app.clone();
        async move { get(&app, "/api/tables/pg/items?per_page=50").await }
    });
    let waiting = async {
        loop {
            let rows = admin
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'lockgate' AND wait_event_type = 'Lock'",
                    &[],
                    None,
                )
                .await
                .unwrap();
            if let Some(r) = rows.first() {
                return r[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let pid = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the page waits on the lock");
    admin
        .query("SELECT pg_terminate_backend($1)", &[pid], None)
        .await
        .unwrap();
    // The retry waits on the lock in turn, until it is let go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.rollback().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), page)
        .await
        .expect("the page answers")
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 50);
    assert!(
        r.header("server-timing").contains("retry"),
        "read again after its session was terminated: {}",
        r.header("server-timing")
    );
}

#[tokio::test]
async fn a_database_that_is_down_is_a_clear_error_at_once_every_time() {
    let mut cfg = ServerConfig::new();
    // Port 1: nothing listens there, so the connection is refused at once.
    cfg.connections.push(NamedConnection {
        name: "down".into(),
        url: lockgate_db::DbUrl::parse("postgres://postgres@127.0.0.1:1/nothing").unwrap(),
    });
    let app = lockgate_server::router(cfg).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let r = get(&app, "/api/tables/down/items").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.starts_with("connection down (") && e.contains("127.0.0.1:1"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused at once, not after a timeout: {:?}",
            started.elapsed()
        );
    }
    let c = get(&app, "/api/connections").await.json();
    assert!(c[0]["error"].as_str().unwrap().contains("127.0.0.1:1"), "{c:#}");
}

#[tokio::test]
async fn a_cancelled_request_does_not_hand_its_busy_session_to_the_next() {
    let (db, app) = pg_app(4).await;
    let mut admin = test_conn(&db).await;
    // One pooled session, idle.
    assert_eq!(get(&app, "/api/tables/pg/other").await.status, StatusCode::OK);
    assert_eq!(server_sessions(&mut admin).await.len(), 1);
    // A page of `items` takes it and waits on a lock; its browser goes away.
    let mut lock = test_conn(&db).await;
    lock.begin().await.unwrap();
    lock.batch("LOCK TABLE items IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let gone = tokio::time::timeout(Duration::from_millis(500), get(&app, "/api/tables/pg/items")).await;
    assert!(gone.is_err(), "the page waited on the lock");
    // The next page, of another table, must not queue behind that query on the same
    // session: it gets a new one and answers while the lock is still held.
    let next = tokio::time::timeout(Duration::from_secs(5), get(&app, "/api/tables/pg/other?per_page=2")).await;
    let r = next.expect("the next page answers at once, not behind the cancelled query");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 2);
    assert_eq!(conn_desc(&r), "new", "{}", r.header("server-timing"));
    lock.rollback().await.unwrap();
    // The session that served the cancelled page is not handed out again: later pages
    // keep to the new one (which the server had no reason to open otherwise).
    for _ in 0..5 {
        let r = get(&app, "/api/tables/pg/items?per_page=5").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(conn_desc(&r), "pooled");
    }
}

/// An SQLite file holding `t` with `rows` rows.
async fn sqlite_file(path: &std::path::Path, rows: i64, wal: bool) {
    let url = lockgate_db::DbUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    let mut c = Conn::connect(&url).await.unwrap();
    if wal {
        c.query("PRAGMA journal_mode=WAL", &[], None).await.unwrap();
    }
    c.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    c.batch(&format!(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows}) \
         INSERT INTO t SELECT n, 'row ' || n FROM g"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pooled_sqlite_connection_holds_no_snapshot_and_follows_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal.db");
    let plain = dir.path().join("plain.db");
    sqlite_file(&wal, 120, true).await;
    sqlite_file(&plain, 7, false).await;
    let url = |p: &std::path::Path| lockgate_db::DbUrl::parse(&format!("sqlite://{}", p.display())).unwrap();
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "wal".into(),
        url: url(&wal),
    });
    cfg.connections.push(NamedConnection {
        name: "plain".into(),
        url: url(&plain),
    });
    let app = lockgate_server::router(cfg).unwrap();
    let total = |r: &Reply| r.json()["total"].as_u64().unwrap();

    // Pages read, the connection back in the pool and idle: a writer's checkpoint must
    // not find a reader holding the WAL (busy = 0), as it would were a read
    // transaction left open between requests.
    for _ in 0..3 {
        let r = get(&app, "/api/tables/wal/t?per_page=50").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(total(&r), 120);
    }
    let mut writer = Conn::connect(&url(&wal)).await.unwrap();
    writer.batch("INSERT INTO t VALUES (121, 'new')").await.unwrap();
    let started = Instant::now();
    let ck = writer
        .query("PRAGMA wal_checkpoint(TRUNCATE)", &[], None)
        .await
        .unwrap();
    assert_eq!(
        ck[0][0],
        Value::Int(0),
        "the checkpoint was blocked by a reader: {ck:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let r = get(&app, "/api/tables/wal/t?per_page=50").await;
    assert_eq!(conn_desc(&r), "pooled");
    assert_eq!(total(&r), 121, "the pooled connection sees the write");

    // Another file put in the place of the one a pooled connection has open: the next
    // page shows the new file, not the unlinked one the old connection still reads.
    let r = get(&app, "/api/tables/plain/t").await;
    assert_eq!(total(&r), 7);
    let replacement = dir.path().join("replacement.db");
    sqlite_file(&replacement, 3, false).await;
    std::fs::rename(&replacement, &plain).unwrap();
    let r = get(&app, "/api/tables/plain/t").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(total(&r), 3, "the replaced file's rows");
    assert_eq!(conn_desc(&r), "new");
    // Removed: an error naming the path, as without a pool (never a new empty file).
    std::fs::remove_file(&plain).unwrap();
    let r = get(&app, "/api/tables/plain/t").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("plain.db"), "{}", r.text());
    assert!(!plain.exists(), "browsing created no file");
}
