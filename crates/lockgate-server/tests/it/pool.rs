//! The server's pooled connections (`pool.rs`), on PostgreSQL and MariaDB each:
//! sequential pages reuse one session instead of opening one each; the pool never
//! holds more than `pool_size` sessions, however many requests wait; sessions
//! terminated while idle in the pool (one, or every one, as a restart does) are
//! replaced and the next request succeeds, while a query terminated after it ran a
//! while is not run again; a table altered between pages is read as it is now (the
//! pooled session keeps its introspection's statements and the table's description,
//! checked against the catalog); a request stopped while its query runs cancels that
//! query on the server and does not hand its session to the next request; idle and
//! old sessions are closed in the background, idle time counting from the end of a
//! session's last read; the Overview's reads answer while slow pages hold every
//! pooled session, opening at most `pool_size` sessions of their own; stopping the
//! server ends its sessions. On PostgreSQL alone: a database
//! that is down is a clear error at once, and a read that fails again after its
//! retry says so. On SQLite: a pooled connection holds no read snapshot between
//! requests (a writer's checkpoint completes) and notices its file being replaced.

use crate::*;
use lockgate_core::Value;
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use lockgate_server::PoolTimes;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test per server engine for each case, so that a failure names its engine.
macro_rules! on_servers {
    ($($case:ident),* $(,)?) => {
        mod pg {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(lockgate_db::Engine::Postgres).await
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(lockgate_db::Engine::Mysql).await
            })*
        }
    };
}

on_servers!(
    sequential_pages_reuse_one_session,
    a_table_changed_between_pages_is_read_as_it_is_now,
    the_pool_holds_at_most_pool_size_sessions,
    a_terminated_session_is_replaced_and_the_next_request_succeeds,
    after_a_restart_no_page_fails_on_the_other_dead_sessions,
    a_stopped_request_cancels_its_query_and_does_not_hand_its_session_on,
    idle_and_old_sessions_are_closed_in_the_background,
    the_overview_reads_answer_while_pages_hold_every_pooled_session,
    stopping_the_server_ends_its_pooled_sessions,
    a_browser_that_closes_its_socket_cancels_its_page_query,
);

/// The MariaDB sessions of the tests' own connections (MariaDB has no application
/// name to tell them from the server's).
static OWN: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// The integers of the first column of `sql`'s rows.
async fn ints(c: &mut Conn, sql: &str) -> Vec<i64> {
    let rows = c.query(sql, &[], None).await.unwrap();
    rows.iter()
        .map(|r| match r[0] {
            Value::Int(n) => n,
            ref other => panic!("an integer from {sql}: {other:?}"),
        })
        .collect()
}

/// A connection of the test's own to `db`, never taken for one of the server's: on
/// PostgreSQL named `lockgate-test` (the server's are `lockgate`), on MariaDB
/// remembered in [`OWN`].
async fn test_conn(db: &TestDb) -> Conn {
    let mut c = db.conn().await;
    match db.url.engine {
        Engine::Postgres => c.batch("SET application_name = 'lockgate-test'").await.unwrap(),
        _ => {
            let id = ints(&mut c, "SELECT CONNECTION_ID()").await[0];
            OWN.lock().unwrap().push(id);
        }
    }
    c
}

/// The server's sessions on the database `admin` is connected to (backend pids,
/// thread ids), those waiting on a table lock only when `waiting`.
async fn sessions(admin: &mut Conn, waiting: bool) -> Vec<i64> {
    match admin.engine() {
        Engine::Postgres => {
            let lock = if waiting { " AND wait_event_type = 'Lock'" } else { "" };
            let sql = format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'lockgate'{lock} ORDER BY pid"
            );
            ints(admin, &sql).await
        }
        _ => {
            let lock = if waiting {
                " AND state LIKE 'Waiting for table%'"
            } else {
                ""
            };
            let sql = format!("SELECT id FROM information_schema.processlist WHERE db = DATABASE(){lock} ORDER BY id");
            let own = OWN.lock().unwrap().clone();
            ints(admin, &sql)
                .await
                .into_iter()
                .filter(|id| !own.contains(id))
                .collect()
        }
    }
}

async fn server_sessions(admin: &mut Conn) -> Vec<i64> {
    sessions(admin, false).await
}

/// The server's sessions once there are `n` of them (a terminated session may show
/// for a moment after it was told to end), or as they are after 5 s.
async fn sessions_settled(admin: &mut Conn, n: usize) -> Vec<i64> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let s = server_sessions(admin).await;
        if s.len() == n || Instant::now() > until {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first of the server's sessions to wait on a table lock (within 10 s).
async fn a_waiting_session(admin: &mut Conn) -> i64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(id) = sessions(admin, true).await.first() {
            return *id;
        }
        assert!(Instant::now() < until, "no page reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Holds a lock on `items` that makes every read of it wait, until [`unlock`].
async fn lock_items(c: &mut Conn) {
    if c.engine() == Engine::Postgres {
        c.begin().await.unwrap();
        c.batch("LOCK TABLE items IN ACCESS EXCLUSIVE MODE").await.unwrap();
    } else {
        c.batch("LOCK TABLES items WRITE").await.unwrap();
    }
}

async fn unlock(c: &mut Conn) {
    if c.engine() == Engine::Postgres {
        c.rollback().await.unwrap();
    } else {
        c.batch("UNLOCK TABLES").await.unwrap();
    }
}

/// Ends the server's session `id`, as an administrator would.
async fn terminate(admin: &mut Conn, id: i64) {
    if admin.engine() == Engine::Postgres {
        let killed = admin
            .query("SELECT pg_terminate_backend($1)", &[Value::Int(id)], None)
            .await
            .unwrap();
        assert_eq!(killed[0][0], Value::Bool(true));
    } else {
        admin.batch(&format!("KILL CONNECTION {id}")).await.unwrap();
    }
}

/// A database on `engine` with `items` (120 rows) and `other` (3 rows), and a server
/// over it as the connection `db`, configured by `setup`.
async fn app_with(engine: Engine, setup: impl FnOnce(&mut ServerConfig)) -> (TestDb, Router) {
    let db = TestDb::new(engine).await;
    let series = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 120)";
    let mut c = test_conn(&db).await;
    c.batch("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100))")
        .await
        .unwrap();
    c.batch(&format!(
        "INSERT INTO items (id, name) {series} SELECT n, CONCAT('item ', n) FROM g"
    ))
    .await
    .unwrap();
    c.batch("CREATE TABLE other (id int PRIMARY KEY)").await.unwrap();
    c.batch("INSERT INTO other VALUES (1), (2), (3)").await.unwrap();
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "db".into(),
        url: db.url.clone(),
    });
    setup(&mut cfg);
    (db, lockgate_server::router(cfg).unwrap())
}

/// [`app_with`] with pools of `pool_size`.
async fn app(engine: Engine, pool_size: usize) -> (TestDb, Router) {
    app_with(engine, |cfg| cfg.pool_size = pool_size).await
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

async fn sequential_pages_reuse_one_session(engine: Engine) {
    let (db, app) = app(engine, 4).await;
    let mut admin = test_conn(&db).await;
    assert!(
        sessions_settled(&mut admin, 0).await.is_empty(),
        "no session before a request"
    );
    let mut descs = Vec::new();
    for i in 0..30 {
        let r = get(&app, "/api/tables/db/items?per_page=50").await;
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
    for uri in ["/api/tables/db", "/api/connections", "/tables?conn=db&table=other"] {
        for _ in 0..5 {
            let r = get(&app, uri).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        }
    }
    let c = get(&app, "/api/connections").await.json();
    assert_eq!(c[0]["error"], serde_json::Value::Null, "{c:#}");
    assert_eq!(server_sessions(&mut admin).await, after_pages, "still the one session");
}

async fn a_table_changed_between_pages_is_read_as_it_is_now(engine: Engine) {
    // A pooled PostgreSQL session keeps its introspection's prepared statements (and
    // MariaDB's driver its own): a table changed since (a column's type, a column
    // added or dropped) must be read as it is now, neither shown in its old shape nor
    // failing the page.
    let (db, app) = app(engine, 1).await;
    for _ in 0..8 {
        let r = get(&app, "/api/tables/db/items?per_page=5&sort=name").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let mut admin = test_conn(&db).await;
    // The same page's SQL, over columns of other types.
    let retype = match engine {
        Engine::Postgres => "ALTER TABLE items ALTER COLUMN id TYPE numeric(12, 0), ALTER COLUMN name TYPE varchar(40)",
        _ => "ALTER TABLE items MODIFY id decimal(12, 0) NOT NULL, MODIFY name varchar(40)",
    };
    admin.batch(retype).await.unwrap();
    let r = get(&app, "/api/tables/db/items?per_page=5&sort=name").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(conn_desc(&r), "pooled");
    assert_eq!(r.json()["columns"][0]["type"], "decimal(12,0)", "{}", r.text());
    admin
        .batch("ALTER TABLE items ADD COLUMN extra int DEFAULT 7")
        .await
        .unwrap();
    let r = get(&app, "/api/tables/db/items?per_page=5&sort=name").await;
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
    let r = get(&app, "/api/tables/db/items?per_page=5").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["rows"][0].as_array().unwrap().len(), 2);
    // Sorting by the dropped column is a bad request, as for any unknown column.
    let r = get(&app, "/api/tables/db/items?per_page=5&sort=name").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

async fn the_pool_holds_at_most_pool_size_sessions(engine: Engine) {
    let (db, app) = app(engine, 2).await;
    let mut admin = test_conn(&db).await;
    // Six pages at once, each held on a lock until the test lets go: two run (the
    // pool's two sessions), the other four wait for one of them.
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let tasks: Vec<_> = spawn_pages(&app, 6, "/api/tables/db/items?per_page=10");
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
    unlock(&mut lock).await;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["rows"].as_array().unwrap().len(), 10);
    }
    assert_eq!(server_sessions(&mut admin).await.len(), 2);
}

async fn a_terminated_session_is_replaced_and_the_next_request_succeeds(engine: Engine) {
    let (db, app) = app(engine, 4).await;
    let mut admin = test_conn(&db).await;
    assert_eq!(get(&app, "/api/tables/db/items").await.status, StatusCode::OK);
    // Twice: once after the pooled session has had time to see its end, once straight
    // after (the read then finds the connection gone and runs again; on MariaDB, whose
    // client learns of the end only when it next uses the connection, both do).
    for pause in [Duration::from_millis(300), Duration::ZERO] {
        let before = sessions_settled(&mut admin, 1).await;
        assert_eq!(before.len(), 1, "{before:?}");
        terminate(&mut admin, before[0]).await;
        tokio::time::sleep(pause).await;
        let r = get(&app, "/api/tables/db/items?per_page=50").await;
        assert_eq!(r.status, StatusCode::OK, "after {pause:?}: {}", r.text());
        assert_eq!(r.json()["rows"][0][0], 1);
        assert!(
            !conn_desc(&r).starts_with("pooled"),
            "not the dead session: {}",
            r.header("server-timing")
        );
        if engine == Engine::Mysql {
            // The client learns of the end only by using the session: the read fails
            // at once, and runs again.
            assert!(
                r.header("server-timing").contains("retry"),
                "{}",
                r.header("server-timing")
            );
        }
        let after = sessions_settled(&mut admin, 1).await;
        assert_eq!(after.len(), 1, "{after:?}");
        assert_ne!(after, before, "a new session replaced the terminated one");
        // And it is pooled again.
        let r = get(&app, "/api/tables/db/items?per_page=50").await;
        assert_eq!(conn_desc(&r), "pooled");
    }

    // Terminated after its query ran a while (held on a lock for longer than
    // RETRY_WITHIN): an administrator may have ended it on purpose, so it is not run
    // again; the page says the connection was lost.
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let page = spawn_page(&app, "/api/tables/db/items?per_page=50");
    let id = a_waiting_session(&mut admin).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    terminate(&mut admin, id).await;
    let r = tokio::time::timeout(Duration::from_secs(10), page)
        .await
        .expect("the page answers")
        .unwrap();
    unlock(&mut lock).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.starts_with("connection db: "), "{e}");
    assert!(!e.contains("ran again"), "not retried: {e}");
    // The next page gets a new session.
    let r = get(&app, "/api/tables/db/items?per_page=50").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

async fn after_a_restart_no_page_fails_on_the_other_dead_sessions(engine: Engine) {
    // Two pooled sessions, both ended while idle (as a server restart ends them): the
    // first page's read finds its session dead, and its retry must not take the other
    // dead one (a MariaDB client would not know it is dead until it used it).
    let (db, app) = app(engine, 2).await;
    let mut admin = test_conn(&db).await;
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let held: Vec<_> = spawn_pages(&app, 2, "/api/tables/db/items?per_page=5");
    waiting_sessions(&mut admin, 2).await;
    unlock(&mut lock).await;
    for t in held {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    let before = sessions_settled(&mut admin, 2).await;
    assert_eq!(before.len(), 2, "{before:?}");
    for id in &before {
        terminate(&mut admin, *id).await;
    }
    for i in 0..4 {
        let r = get(&app, "/api/tables/db/items?per_page=5").await;
        assert_eq!(r.status, StatusCode::OK, "page {i} after the restart: {}", r.text());
    }
    let after = sessions_settled(&mut admin, 1).await;
    assert!(after.iter().all(|s| !before.contains(s)), "{before:?} -> {after:?}");
}

/// `n` requests for `uri` at once, each on a task of its own.
fn spawn_pages(app: &Router, n: usize, uri: &'static str) -> Vec<tokio::task::JoinHandle<Reply>> {
    (0..n)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { get(&app, uri).await })
        })
        .collect()
}

/// One request for `uri` on a task of its own.
fn spawn_page(app: &Router, uri: &'static str) -> tokio::task::JoinHandle<Reply> {
    spawn_pages(app, 1, uri).pop().expect("one")
}

/// Waits (at most 10 s) until `n` of the server's sessions wait on a table lock.
async fn waiting_sessions(admin: &mut Conn, n: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while sessions(admin, true).await.len() < n {
        assert!(Instant::now() < until, "fewer than {n} pages reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_stopped_request_cancels_its_query_and_does_not_hand_its_session_on(engine: Engine) {
    let (db, app) = app(engine, 4).await;
    let mut admin = test_conn(&db).await;
    // One pooled session, idle.
    assert_eq!(get(&app, "/api/tables/db/other").await.status, StatusCode::OK);
    let idle = server_sessions(&mut admin).await;
    assert_eq!(idle.len(), 1);
    // A page of `items` takes it and waits on a lock; its browser goes away (the
    // request's future is dropped, as hyper drops it when the client closes).
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let page = spawn_page(&app, "/api/tables/db/items");
    assert_eq!(a_waiting_session(&mut admin).await, idle[0], "the pooled session waits");
    page.abort();
    // Its query is cancelled and its session closed while the lock is still held:
    // nothing of the server's is left (MariaDB's KILL sessions included).
    let left = sessions_settled(&mut admin, 0).await;
    assert!(left.is_empty(), "the stopped page's session is still there: {left:?}");
    // The next page, of another table, gets a new session and answers while the lock
    // is still held.
    let next = tokio::time::timeout(Duration::from_secs(5), get(&app, "/api/tables/db/other?per_page=2")).await;
    let r = next.expect("the next page answers at once, not behind the cancelled query");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 2);
    assert_eq!(conn_desc(&r), "new", "{}", r.header("server-timing"));
    let now = sessions_settled(&mut admin, 1).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, idle);
    unlock(&mut lock).await;
    for _ in 0..5 {
        let r = get(&app, "/api/tables/db/items?per_page=5").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(conn_desc(&r), "pooled");
    }
}

async fn idle_and_old_sessions_are_closed_in_the_background(engine: Engine) {
    // Idle: closed once idle for 400 ms, with no request to notice it.
    let (db, app) = app_with(engine, |cfg| {
        cfg.pool_times = PoolTimes {
            max_idle: Duration::from_millis(400),
            max_lifetime: Duration::from_secs(600),
        }
    })
    .await;
    let mut admin = test_conn(&db).await;
    let before = Instant::now();
    assert_eq!(get(&app, "/api/tables/db/items").await.status, StatusCode::OK);
    assert_eq!(server_sessions(&mut admin).await.len(), 1);
    let left = sessions_settled(&mut admin, 0).await;
    assert!(left.is_empty(), "an idle session stayed open: {left:?}");
    assert!(before.elapsed() >= Duration::from_millis(400), "{:?}", before.elapsed());
    // The next page opens a new one.
    let r = get(&app, "/api/tables/db/items").await;
    assert_eq!((r.status, conn_desc(&r)), (StatusCode::OK, "new".to_string()));

    // Three sessions opened by pages at once; then steady light use, a page every
    // 50 ms: the session used last goes out first, so one stays warm and the other
    // two reach their idle time and are closed.
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let held: Vec<_> = spawn_pages(&app, 3, "/api/tables/db/items?per_page=5");
    waiting_sessions(&mut admin, 3).await;
    unlock(&mut lock).await;
    for t in held {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(server_sessions(&mut admin).await.len(), 3);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(get(&app, "/api/tables/db/other").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warm = sessions_settled(&mut admin, 1).await;
    assert_eq!(warm.len(), 1, "the sessions not needed were closed: {warm:?}");

    // A read that takes longer than the idle time: its session's idle time starts
    // when the read ends, so the next page still gets it.
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let page = spawn_page(&app, "/api/tables/db/items?per_page=5");
    waiting_sessions(&mut admin, 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    unlock(&mut lock).await;
    assert_eq!(page.await.unwrap().status, StatusCode::OK);
    let r = get(&app, "/api/tables/db/items?per_page=5").await;
    assert_eq!(
        conn_desc(&r),
        "pooled",
        "the slow read's session was not taken for idle"
    );
    drop(app);

    // Old: a session in steady use is still replaced once it is 700 ms old.
    let (db, app) = app_with(engine, |cfg| {
        cfg.pool_times = PoolTimes {
            max_idle: Duration::from_secs(600),
            max_lifetime: Duration::from_millis(700),
        }
    })
    .await;
    let mut admin = test_conn(&db).await;
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let r = get(&app, "/api/tables/db/items?per_page=5").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        for s in server_sessions(&mut admin).await {
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.len() >= 3, "a session lived longer than its lifetime: {seen:?}");
    let left = sessions_settled(&mut admin, 1).await;
    assert!(left.len() <= 1, "one session at a time: {left:?}");
}

async fn the_overview_reads_answer_while_pages_hold_every_pooled_session(engine: Engine) {
    let (db, app) = app_with(engine, |cfg| {
        cfg.pool_size = 1;
        cfg.migrate_db = Some(0);
    })
    .await;
    let mut admin = test_conn(&db).await;
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    // The one pooled session waits on the lock under a page.
    let page = spawn_page(&app, "/api/tables/db/items?per_page=5");
    a_waiting_session(&mut admin).await;
    // The connections' check and the runs, polled by the Overview, do not queue
    // behind it: each opens a session of its own for the request.
    for uri in ["/api/connections", "/api/runs"] {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), get(&app, uri))
            .await
            .unwrap_or_else(|_| panic!("{uri} queued behind the page"));
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{uri}: {:?}",
            started.elapsed()
        );
    }
    let c = get(&app, "/api/connections").await.json();
    assert_eq!(c[0]["error"], serde_json::Value::Null, "reachable: {c:#}");
    assert_eq!(c[0]["tables"], 2, "{c:#}");
    // Those sessions of their own were closed after their request.
    let left = sessions_settled(&mut admin, 1).await;
    assert_eq!(left.len(), 1, "only the page's session: {left:?}");
    unlock(&mut lock).await;
    let r = page.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // At most `pool_size` (1) of their own at once: with the ledger's runs locked
    // too, three polls of the runs open one session, which waits, and the other two
    // wait for a pooled one instead of opening more.
    drop(lockgate_db::ledger::Ledger::open(&db.url).await.unwrap());
    if engine == Engine::Postgres {
        lock.begin().await.unwrap();
        lock.batch("LOCK TABLE items, lockgate_runs IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    } else {
        lock.batch("LOCK TABLES items WRITE, lockgate_runs WRITE")
            .await
            .unwrap();
    }
    let page = spawn_page(&app, "/api/tables/db/items?per_page=5");
    waiting_sessions(&mut admin, 1).await;
    let polls: Vec<_> = spawn_pages(&app, 3, "/api/runs");
    waiting_sessions(&mut admin, 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let open = server_sessions(&mut admin).await;
    assert_eq!(open.len(), 2, "the pooled session and one of the polls' own: {open:?}");
    unlock(&mut lock).await;
    assert_eq!(page.await.unwrap().status, StatusCode::OK);
    for p in polls {
        let r = p.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
}

/// [`app`]'s database, served on a real socket.
async fn on_socket(engine: Engine) -> (TestDb, Served) {
    let (db, _) = app(engine, 4).await;
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "db".into(),
        url: db.url.clone(),
    });
    (db, Served::start(cfg).await)
}

async fn stopping_the_server_ends_its_pooled_sessions(engine: Engine) {
    let (db, served) = on_socket(engine).await;
    let addr = served.addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /api/tables/db/items HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut admin = test_conn(&db).await;
    assert_eq!(server_sessions(&mut admin).await.len(), 1, "the page's session, pooled");
    served.stop().await;
    let left = sessions_settled(&mut admin, 0).await;
    assert!(left.is_empty(), "the stopped server's session stayed open: {left:?}");
}

async fn a_browser_that_closes_its_socket_cancels_its_page_query(engine: Engine) {
    // Over a real socket: the browser sends a page request whose query waits on a
    // lock, then goes away. The server notices the closed connection, drops the
    // request, and its query is cancelled while the lock is still held.
    let (db, served) = on_socket(engine).await;
    let addr = served.addr;
    let mut admin = test_conn(&db).await;
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /api/tables/db/items HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    a_waiting_session(&mut admin).await;
    drop(s);
    let until = Instant::now() + Duration::from_secs(8);
    while !sessions(&mut admin, true).await.is_empty() {
        assert!(
            Instant::now() < until,
            "the page's query still waits after its browser left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unlock(&mut lock).await;
    served.stop().await;
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
async fn a_read_that_fails_again_after_its_retry_says_so() {
    // The database is dropped (its sessions terminated) while a page's query waits on
    // a lock: the read runs again, and the second connection fails too. The error
    // says the read was retried, not only what the second attempt met.
    let (db, app) = app(Engine::Postgres, 4).await;
    let mut admin = test_conn(&db).await;
    assert_eq!(get(&app, "/api/tables/db/other").await.status, StatusCode::OK);
    let name = match &admin.query("SELECT current_database()", &[], None).await.unwrap()[0][0] {
        Value::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    let mut lock = test_conn(&db).await;
    lock_items(&mut lock).await;
    let page = spawn_page(&app, "/api/tables/db/items?per_page=5");
    a_waiting_session(&mut admin).await;
    let mut other = Conn::connect(&lockgate_db::DbUrl::parse(&lockgate_db::testing::pg_admin_url()).unwrap())
        .await
        .unwrap();
    other
        .batch(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), page)
        .await
        .expect("the page answers")
        .unwrap();
    assert_ne!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.starts_with("connection db"), "{e}");
    assert!(e.contains("ran again"), "the retry is named: {e}");
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
