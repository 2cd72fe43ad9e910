//! `Conn::canceller`: a statement running on a connection is stopped from another
//! task (what the server does for a request whose client went away), on every
//! engine, and the statement's own call ends with an error at once instead of
//! running to its end; and a cancel that comes before the statement has begun still
//! stops it (the cancel is sent again a second later; SQLite's work that has not
//! begun does not begin).

use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::time::{Duration, Instant};

/// A statement that runs for about 30 s on `engine`, unless stopped.
fn slow_statement(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "SELECT pg_sleep(30)",
        Engine::Mysql => "SELECT SLEEP(30)",
        // No sleep in SQLite: a count over a long recursive series.
        Engine::Sqlite => {
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000000000) \
             SELECT count(*) FROM g"
        }
    }
}

/// The slow statement's outcome `r`, after `took`: stopped early. MariaDB's SLEEP
/// answers 1 when killed rather than failing; the others fail.
fn assert_stopped(engine: Engine, r: &Result<Vec<Vec<lockgate_core::Value>>, lockgate_db::DbError>, took: Duration) {
    match engine {
        Engine::Mysql => assert!(
            r.is_err() || matches!(r, Ok(rows) if rows[0][0] == lockgate_core::Value::Int(1)),
            "{r:?}"
        ),
        _ => assert!(r.is_err(), "{r:?}"),
    }
    assert!(
        took < Duration::from_secs(10),
        "stopped at once, not run to its end: {took:?}"
    );
}

async fn a_running_statement_is_cancelled_from_another_task(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut c = Conn::connect(&db.url).await.unwrap();
    let cancel = c.canceller();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel().await
    });
    let r = tokio::time::timeout(Duration::from_secs(20), c.query(slow_statement(engine), &[], None))
        .await
        .expect("the statement was stopped, not run to its end");
    let took = started.elapsed();
    canceller.await.unwrap().unwrap();
    assert_stopped(engine, &r, took);
}

/// The cancel is sent before the statement: it still ends early.
async fn a_statement_that_begins_just_after_its_cancel_is_stopped(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut c = Conn::connect(&db.url).await.unwrap();
    let canceller = tokio::spawn(c.canceller().cancel());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), c.query(slow_statement(engine), &[], None))
        .await
        .expect("the statement was stopped, not run to its end");
    canceller.await.unwrap().unwrap();
    assert_stopped(engine, &r, started.elapsed());
}

on_every_engine!(
    a_running_statement_is_cancelled_from_another_task,
    a_statement_that_begins_just_after_its_cancel_is_stopped
);
