//! Takeovers of expired export claims on PostgreSQL and MariaDB: the worker that
//! takes over ends the earlier claim's data session, found by the mark it was given
//! (its `application_name`, a named lock), never a session that only has the
//! recorded id (a connection id the server counts again from 1 after a restart, a
//! pid reused) nor one of another database; a worker without the right to end it
//! is told so, not told it was gone, and the next claimer still finds the session;
//! and timeout settings take any `Duration`.

use crate::support::TestDb;
use lockgate_core::Value;
use lockgate_db::exports::{self, Claim, StaleEnd};
use lockgate_db::ledger::Ledger;
use lockgate_db::{Conn, Engine};
use std::time::Duration;

const SERVERS: [Engine; 2] = [Engine::Postgres, Engine::Mysql];

/// The server-side id of `conn`'s session.
async fn session_id(conn: &mut Conn) -> i64 {
    let sql = match conn.engine() {
        Engine::Postgres => "SELECT pg_backend_pid()::bigint",
        _ => "SELECT CONNECTION_ID()",
    };
    match conn.query(sql, &[], None).await.unwrap()[0][0] {
        Value::Int(i) => i,
        ref other => panic!("a session id: {other:?}"),
    }
}

/// Whether `conn`'s session still answers.
async fn alive(conn: &mut Conn) -> bool {
    conn.query("SELECT 1", &[], None).await.is_ok()
}

/// A pending export of transfer `t`, claimed with a lease that is over at once,
/// and a data session attached to that claim (worker A, stalled).
async fn stalled_claim(db: &TestDb, ledger: &mut Ledger) -> (Claim, Conn) {
    let id = exports::begin_export(ledger.conn(), "t").await.unwrap();
    let claim = exports::claim(ledger.conn(), &["t".to_string()], "A", Duration::from_millis(1))
        .await
        .unwrap()
        .expect("a claim");
    assert_eq!((claim.id, claim.fence, &claim.stale), (id, 1, &None));
    let mut data = db.conn().await;
    assert!(exports::attach_session(&mut data, &claim).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    (claim, data)
}

/// The ledger's recorded session id is given to an innocent session (on MariaDB one
/// on the same database, as after a server restart; on PostgreSQL one in another
/// database, tagged like the stalled one): the takeover ends the stalled worker's
/// session and leaves the innocent one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_ends_the_marked_session_not_the_recorded_id() {
    for engine in SERVERS {
        let db = TestDb::new(engine).await;
        let other_db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let (first, mut a) = stalled_claim(&db, &mut ledger).await;
        let mut innocent = match engine {
            Engine::Postgres => {
                let mut c = other_db.conn().await;
                c.query(
                    "SELECT set_config('application_name', $1, false)",
                    &[Value::Text(format!("lockgate export {}/{}", first.id, first.fence))],
                    None,
                )
                .await
                .unwrap();
                c
            }
            _ => db.conn().await,
        };
        let innocent_id = session_id(&mut innocent).await;
        ledger
            .conn()
            .execute(&format!("UPDATE lockgate_exports SET backend_id = {innocent_id}"), &[])
            .await
            .unwrap();
        let second = exports::claim(ledger.conn(), &["t".to_string()], "B", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("the expired claim is claimable");
        assert_eq!(second.fence, 2, "{engine}");
        let stale = second.stale.clone().expect("an earlier claim");
        assert_eq!((stale.fence, stale.backend_id), (1, Some(innocent_id)), "{engine}");
        let ended = exports::end_stale_session(ledger.conn(), &second, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(ended, StaleEnd::Ended, "{engine}");
        assert!(!alive(&mut a).await, "{engine}: the stalled session was not ended");
        assert!(alive(&mut innocent).await, "{engine}: the innocent session was ended");
        // Nothing else is left to end.
        let again = exports::end_stale_session(ledger.conn(), &second, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(again, StaleEnd::Gone, "{engine}");
    }
}

/// The worker that takes over runs as a user without the right to end the stalled
/// worker's session (the stalled one runs as the administrator): the takeover says
/// so with the engine's error, and the session lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_without_the_right_to_end_the_session_is_an_error_not_gone() {
    for engine in SERVERS {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let (first, mut a) = stalled_claim(&db, &mut ledger).await;
        let (weak_url, _) = db.password_url().await;
        let mut weak = Conn::connect(&weak_url).await.unwrap();
        let second = Claim {
            fence: 2,
            stale: Some(exports::StaleSession {
                backend_id: None,
                fence: first.fence,
            }),
            ..first.clone()
        };
        let r = exports::end_stale_session(&mut weak, &second, Duration::from_secs(2)).await;
        assert!(r.is_err(), "{engine}: {r:?}");
        assert!(alive(&mut a).await, "{engine}");
    }
}

/// Timeouts as long as a `Duration` holds are taken: the settings are clamped to
/// what the engines accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_settings_take_any_duration() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        exports::begin_export(ledger.conn(), "t").await.unwrap();
        let claim = exports::claim(ledger.conn(), &["t".to_string()], "A", Duration::MAX)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"))
            .expect("a claim");
        assert!(
            exports::renew(ledger.conn(), &claim, Duration::MAX).await.unwrap(),
            "{engine}"
        );
        let mut data = db.conn().await;
        exports::bound_lock_waits(&mut data, Duration::MAX)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        data.begin().await.unwrap();
        exports::guard_fence(&mut data, Duration::MAX)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        data.rollback().await.unwrap();
        // Not yet expired: nobody else can claim it.
        let other = exports::claim(ledger.conn(), &["t".to_string()], "B", Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(other, None, "{engine}");
    }
}

/// Worker B takes the export over but cannot end A's session (no right to), and
/// gives the export back, which clears the recorded session id: worker C, taking
/// it over next, still finds A's session (by its mark) and ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_one_claimer_could_not_end_is_ended_by_the_next() {
    for engine in SERVERS {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let (_, mut a) = stalled_claim(&db, &mut ledger).await;
        let b = exports::claim(ledger.conn(), &["t".to_string()], "B", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("the expired claim is claimable");
        let (weak_url, _) = db.password_url().await;
        let mut weak = Conn::connect(&weak_url).await.unwrap();
        let r = exports::end_stale_session(&mut weak, &b, Duration::from_secs(2)).await;
        assert!(r.is_err(), "{engine}: {r:?}");
        assert!(exports::release(ledger.conn(), &b, "B could not end A's session")
            .await
            .unwrap());
        let c = exports::claim(ledger.conn(), &["t".to_string()], "C", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("the given-back export is claimable");
        assert_eq!(c.fence, 3, "{engine}");
        let ended = exports::end_stale_session(ledger.conn(), &c, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(ended, StaleEnd::Ended, "{engine}");
        assert!(
            !alive(&mut a).await,
            "{engine}: A's session outlived the second takeover"
        );
    }
}
