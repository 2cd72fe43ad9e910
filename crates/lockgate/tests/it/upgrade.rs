//! Background upgrades on all three engines: every row upgraded once and recorded;
//! `set`, script and Rust upgrades under a concurrent writer that loses no write (and
//! a write between read and write, deterministically); quarantine and retry; pause and
//! cancel mid-run; two runners; a writer inserting throughout; dependencies; cleanup;
//! the view and `apply_on_read` equal to the backfill; bad declarations refused before
//! the first batch.

use crate::support::{TestDb, ENGINES};
use lockgate::upgrade::{self, Change, RunOptions, Upgrade, UpgradeSpec};
use lockgate_db::upgrades::{self as sql, UpgradeState};

fn declared(name: &str, set: &[(&str, &str)], condition: Option<&str>) -> Vec<Upgrade> {
    upgrade::def::check(vec![(
        name.to_string(),
        "lockgate.toml".to_string(),
        UpgradeSpec {
            table: "items".into(),
            set: set.iter().map(|(c, e)| (c.to_string(), e.to_string())).collect(),
            condition: condition.map(str::to_string),
            ..UpgradeSpec::default()
        },
    )])
    .unwrap()
}

async fn items(db: &TestDb, rows: i64) {
    let mut c = db.conn().await;
    c.batch("CREATE TABLE items (id INT PRIMARY KEY, a INT NOT NULL, b INT)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=rows).map(|i| format!("({i}, {i}, NULL)")).collect();
    for chunk in values.chunks(500) {
        c.batch(&format!("INSERT INTO items (id, a, b) VALUES {}", chunk.join(", ")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_row_is_upgraded_once_and_a_second_run_does_nothing() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        items(&db, 2_500).await;
        assert!(upgrade::init(&db.url, "items").await.unwrap(), "{engine}");
        assert!(!upgrade::init(&db.url, "items").await.unwrap(), "{engine}: added twice");
        let ups = declared("double_a", &[("b", "a * 2")], None);
        assert!(matches!(ups[0].change, Change::Set(_)));
        let opts = RunOptions {
            batch_size: Some(700),
            ..RunOptions::default()
        };
        let r = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
        let o = &r.upgrades[0];
        assert_eq!(
            (o.upgraded, o.state.as_str(), o.remaining),
            (2_500, "complete", 0),
            "{engine}: {o:?}"
        );
        assert_eq!(o.batches, 4, "{engine}");
        let mut c = db.conn().await;
        let wrong = crate::support::rows(&mut c, "SELECT COUNT(*) FROM items WHERE b IS NULL OR b <> a * 2").await;
        assert_eq!(wrong, vec!["0"], "{engine}");
        let once = crate::support::rows(
            &mut c,
            "SELECT COUNT(*) FROM items WHERE applied_upgrades = '[\"double_a\"]'",
        )
        .await;
        assert_eq!(once, vec!["2500"], "{engine}");
        // Complete: a second run walks nothing.
        let again = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
        assert_eq!(again.upgrades[0].upgraded, 0, "{engine}");
        assert_eq!(again.upgrades[0].batches, 0, "{engine}");
    }
}

#[tokio::test]
async fn a_paused_upgrade_waits_and_a_where_limits_the_rows() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        items(&db, 300).await;
        upgrade::init(&db.url, "items").await.unwrap();
        let ups = declared("evens", &[("b", "0")], Some("a % 2 = 0"));
        let mut ledger = lockgate_db::ledger::Ledger::open(&db.url).await.unwrap();
        sql::register(ledger.conn(), "evens", "items", &ups[0].checksum)
            .await
            .unwrap();
        sql::set_state(ledger.conn(), "evens", UpgradeState::Paused)
            .await
            .unwrap();
        let r = upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        assert_eq!(
            (r.upgrades[0].upgraded, r.upgrades[0].state.as_str()),
            (0, "paused"),
            "{engine}"
        );
        sql::set_state(ledger.conn(), "evens", UpgradeState::Running)
            .await
            .unwrap();
        let r = upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        assert_eq!(
            (r.upgrades[0].upgraded, r.upgrades[0].state.as_str()),
            (150, "complete"),
            "{engine}"
        );
        let mut c = db.conn().await;
        let odd = crate::support::rows(&mut c, "SELECT COUNT(*) FROM items WHERE b IS NOT NULL AND a % 2 = 1").await;
        assert_eq!(odd, vec!["0"], "{engine}");
    }
}

#[tokio::test]
async fn bad_declarations_are_refused_before_the_first_batch() {
    let db = TestDb::new(lockgate_db::Engine::Postgres).await;
    items(&db, 10).await;
    let run = |ups: Vec<Upgrade>| {
        let url = db.url.clone();
        async move { upgrade::run(&url, &ups, &RunOptions::default(), None).await }
    };
    let e = run(declared("u", &[("b", "a")], None)).await.unwrap_err();
    assert!(
        e.exit_code() == 2 && e.to_string().contains("upgrade init --table items"),
        "{e}"
    );
    upgrade::init(&db.url, "items").await.unwrap();
    let e = run(declared("u", &[("nope", "a")], None)).await.unwrap_err();
    assert!(e.to_string().contains("\"nope\" is not a column"), "{e}");
    let e = run(declared("u", &[("b", "no_such_col + 1")], None)).await.unwrap_err();
    assert!(e.to_string().contains("no_such_col"), "{e}");
    run(declared("u", &[("b", "a")], None)).await.unwrap();
    let e = run(declared("u", &[("b", "a + 1")], None)).await.unwrap_err();
    assert!(e.exit_code() == 2 && e.to_string().contains("changed"), "{e}");
    let mut c = db.conn().await;
    assert_eq!(
        crate::support::rows(&mut c, "SELECT COUNT(*) FROM items WHERE b = a").await,
        vec!["10"]
    );
}

#[tokio::test]
async fn cleanup_waits_for_every_row_then_runs() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch(
                "CREATE TABLE items (id INT PRIMARY KEY, a INT NOT NULL, b INT, legacy INT); \
                 INSERT INTO items (id, a) VALUES (1, 1), (2, 2), (3, 3)",
            )
            .await
            .unwrap();
        upgrade::init(&db.url, "items").await.unwrap();
        let ups = upgrade::def::check(vec![(
            "move".to_string(),
            "lockgate.toml".to_string(),
            UpgradeSpec {
                table: "items".into(),
                set: [("b".to_string(), "a + 1".to_string())].into_iter().collect(),
                cleanup: Some("ALTER TABLE items DROP COLUMN legacy".into()),
                ..UpgradeSpec::default()
            },
        )])
        .unwrap();
        let e = upgrade::cleanup(&db.url, &ups[0], false).await.unwrap_err();
        assert_eq!(e.exit_code(), 4, "{engine}: {e}");
        assert!(
            e.to_string().contains("3 rows of items") && e.to_string().contains("not run yet"),
            "{e}"
        );
        upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        // An application that does not apply upgrades writes a row since.
        db.conn()
            .await
            .batch("INSERT INTO items (id, a) VALUES (4, 4)")
            .await
            .unwrap();
        let e = upgrade::cleanup(&db.url, &ups[0], false).await.unwrap_err();
        assert!(
            e.to_string().contains("1 rows") && e.to_string().contains("an application wrote"),
            "{e}"
        );
        upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        let dry = upgrade::cleanup(&db.url, &ups[0], true).await.unwrap();
        assert!(!dry.ran);
        let mut c = db.conn().await;
        assert!(
            c.find_table("items").await.unwrap().column("legacy").is_some(),
            "{engine}: a dry run ran"
        );
        assert!(upgrade::cleanup(&db.url, &ups[0], false).await.unwrap().ran);
        assert!(
            c.find_table("items").await.unwrap().column("legacy").is_none(),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn the_view_shows_before_the_backfill_what_the_backfill_writes() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        items(&db, 1_000).await;
        upgrade::init(&db.url, "items").await.unwrap();
        let ups = declared("evens", &[("b", "a * 3")], Some("a % 2 = 0"));
        let view = upgrade::view(&db.url, &ups, "items").await.unwrap();
        assert_eq!(view, "items_upgraded", "{engine}");
        let mut c = db.conn().await;
        let read = "SELECT id, a, b FROM items_upgraded ORDER BY id";
        let before = crate::support::rows(&mut c, read).await;
        // Half the table upgraded, then the rest: the view never changes.
        upgrade::run(
            &db.url,
            &ups,
            &RunOptions {
                batch_size: Some(300),
                ..RunOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        let table = crate::support::rows(&mut c, "SELECT id, a, b FROM items ORDER BY id").await;
        assert_eq!(
            before, table,
            "{engine}: the view before the backfill differs from its result"
        );
        assert_eq!(crate::support::rows(&mut c, read).await, table, "{engine}");
        // What a view cannot show is refused.
        let two = upgrade::def::check(vec![
            (
                "x".into(),
                "lockgate.toml".into(),
                UpgradeSpec {
                    table: "items".into(),
                    set: [("b".to_string(), "1".to_string())].into_iter().collect(),
                    ..UpgradeSpec::default()
                },
            ),
            (
                "y".into(),
                "lockgate.toml".into(),
                UpgradeSpec {
                    table: "items".into(),
                    set: [("b".to_string(), "2".to_string())].into_iter().collect(),
                    ..UpgradeSpec::default()
                },
            ),
        ])
        .unwrap();
        let e = upgrade::view(&db.url, &two, "items").await.unwrap_err();
        assert!(e.to_string().contains("both set items.b"), "{engine}: {e}");
    }
}

/// `items` with a text column `c` an application writes, `n` that counts upgrades.
async fn notes(db: &TestDb, rows: i64) {
    let mut c = db.conn().await;
    c.batch("CREATE TABLE notes (id INT PRIMARY KEY, a INT NOT NULL, c VARCHAR(40), n INT NOT NULL)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=rows).map(|i| format!("({i}, {i}, 'Row{i}', 0)")).collect();
    for chunk in values.chunks(500) {
        c.batch(&format!("INSERT INTO notes (id, a, c, n) VALUES {}", chunk.join(", ")))
            .await
            .unwrap();
    }
    drop(c);
    upgrade::init(&db.url, "notes").await.unwrap();
}

fn on_notes(name: &str, set: &[(&str, &str)]) -> Vec<Upgrade> {
    let mut ups = declared(name, set, None);
    for u in &mut ups {
        u.table = "notes".into();
    }
    ups
}

/// A Rhai script upgrade of `notes`.
fn script(name: &str, source: &str) -> Vec<Upgrade> {
    upgrade::def::check(vec![(
        name.to_string(),
        "upgrades/x.toml".to_string(),
        UpgradeSpec {
            table: "notes".into(),
            script: Some(source.into()),
            ..UpgradeSpec::default()
        },
    )])
    .unwrap()
}

/// Lower-cases `c` in Rust (so the compare-and-set, not the database, keeps a
/// concurrent write), counting the upgrade in `n`.
fn lower_c_in_rust() -> Upgrade {
    Upgrade::rust("lower_c", "notes", "1", |row| {
        if let Some(lockgate_core::Value::Text(s)) = row.get("c") {
            let lower = s.to_lowercase();
            row.insert("c".into(), lockgate_core::Value::Text(lower));
        }
        if let Some(lockgate_core::Value::Int(n)) = row.get("n") {
            let next = n + 1;
            row.insert("n".into(), lockgate_core::Value::Int(next));
        }
        // Slow enough that the writer gets between the read and the write.
        std::thread::sleep(std::time::Duration::from_micros(200));
        Ok(())
    })
    .unwrap()
}

/// Writes `c = 'W<k>'` to random rows until told to stop; the last value written per row.
async fn writer(
    url: lockgate_db::DbUrl,
    rows: i64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::collections::HashMap<i64, String> {
    let mut c = lockgate_db::Conn::connect_existing(&url).await.unwrap();
    let d = c.dialect();
    let sql = format!("UPDATE notes SET c = {} WHERE id = {}", d.param(1), d.param(2));
    let mut last = std::collections::HashMap::new();
    let mut k = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        k += 1;
        let id = fastrand::i64(1..=rows);
        let v = format!("W{k}");
        c.execute(
            &sql,
            &[lockgate_core::Value::Text(v.clone()), lockgate_core::Value::Int(id)],
        )
        .await
        .unwrap();
        last.insert(id, v);
        tokio::task::yield_now().await;
    }
    last
}

/// Every row upgraded exactly once (`n` = 1, the name once), and every write of the
/// writer kept: `c` is its last value, lower-cased or not.
async fn check_notes(
    db: &TestDb,
    engine: lockgate_db::Engine,
    name: &str,
    rows: i64,
    last: &std::collections::HashMap<i64, String>,
) {
    let mut c = db.conn().await;
    let got = c
        .query("SELECT id, c, n, applied_upgrades FROM notes ORDER BY id", &[], None)
        .await
        .unwrap();
    assert_eq!(got.len() as i64, rows, "{engine}");
    for r in got {
        let id = match r[0] {
            lockgate_core::Value::Int(i) => i,
            ref v => v.to_string().parse().unwrap(),
        };
        let want = last.get(&id).cloned().unwrap_or_else(|| format!("Row{id}"));
        let c_now = r[1].to_string();
        assert_eq!(
            c_now.to_lowercase(),
            want.to_lowercase(),
            "{engine}: row {id} lost a write"
        );
        assert_eq!(r[2].to_string(), "1", "{engine}: row {id} upgraded {} times", r[2]);
        assert_eq!(r[3].to_string(), format!("[\"{name}\"]"), "{engine}: row {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_loses_no_write_to_set_or_rust_upgrades() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for engine in ENGINES {
        for how in ["set", "rust", "script"] {
            let db = TestDb::new(engine).await;
            let rows = 1_500;
            notes(&db, rows).await;
            let (ups, name) = match how {
                "rust" => (vec![lower_c_in_rust()], "lower_c"),
                "script" => (
                    script("lower_script", "row.c = row.c.to_lower(); row.n += 1;"),
                    "lower_script",
                ),
                _ => (on_notes("lower_set", &[("c", "LOWER(c)"), ("n", "n + 1")]), "lower_set"),
            };
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let w = tokio::spawn(writer(db.url.clone(), rows, stop.clone()));
            // Paced, so that even SQLite's writer (which waits for the file) gets in
            // between batches many times.
            let opts = RunOptions {
                batch_size: Some(50),
                max_rows_per_second: Some(1_500),
                ..RunOptions::default()
            };
            let r = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
            stop.store(true, Ordering::Relaxed);
            let last = w.await.unwrap();
            assert!(last.len() > 20, "{engine}: the writer barely ran ({} rows)", last.len());
            let o = &r.upgrades[0];
            assert_eq!(
                (o.state.as_str(), o.remaining, o.quarantined),
                ("complete", 0, 0),
                "{engine} {o:?}"
            );
            check_notes(&db, engine, name, rows, &last).await;
        }
    }
}

#[tokio::test]
async fn failing_rows_are_quarantined_the_run_goes_on_and_retry_takes_them() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE items (id INT PRIMARY KEY, a INT NOT NULL, b INT CHECK (b IS NULL OR b % 1000 <> 0))")
            .await
            .unwrap();
        let values: Vec<String> = (1..=3_000).map(|i| format!("({i}, {i})")).collect();
        for chunk in values.chunks(500) {
            db.conn()
                .await
                .batch(&format!("INSERT INTO items (id, a) VALUES {}", chunk.join(", ")))
                .await
                .unwrap();
        }
        upgrade::init(&db.url, "items").await.unwrap();
        // a = 500, 1000, …, 3000 make b a multiple of 1000: six rows fail the CHECK.
        let ups = declared("double", &[("b", "a * 2")], None);
        let opts = RunOptions {
            batch_size: Some(400),
            ..RunOptions::default()
        };
        let r = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
        let o = &r.upgrades[0];
        assert_eq!(
            (o.upgraded, o.quarantined, o.remaining, o.state.as_str()),
            (2_994, 6, 6, "pending"),
            "{engine}: {o:?}"
        );
        let s = upgrade::status(&db.url, &ups).await.unwrap();
        let keys: Vec<&str> = s[0].quarantine.iter().map(|q| q.key_text.as_str()).collect();
        assert_eq!(keys.len(), 6, "{engine}: {keys:?}");
        for want in ["500", "1000", "3000"] {
            assert!(keys.contains(&want), "{engine}: {want} not in {keys:?}");
        }
        assert!(
            s[0].quarantine.iter().all(|q| q.error.contains("failed 3 times")),
            "{engine}: {:?}",
            s[0].quarantine
        );
        // Not complete, so no cleanup; and a retry of unchanged rows fails again.
        let again = upgrade::retry(&db.url, &ups[0], std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((again.tried, again.upgraded, again.quarantined), (6, 0, 6), "{engine}");
        let q = upgrade::status(&db.url, &ups).await.unwrap()[0].quarantine.clone();
        assert!(q.iter().all(|q| q.attempts == 2), "{engine}: {q:?}");
        // The data fixed, a retry upgrades them and the upgrade is complete.
        db.conn()
            .await
            .batch("UPDATE items SET a = a + 1 WHERE a % 500 = 0")
            .await
            .unwrap();
        let fixed = upgrade::retry(&db.url, &ups[0], std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (fixed.upgraded, fixed.quarantined, fixed.state.as_str()),
            (6, 0, "complete"),
            "{engine}"
        );
        let s = upgrade::status(&db.url, &ups).await.unwrap();
        assert_eq!((s[0].quarantined, s[0].remaining), (0, Some(0)), "{engine}");
        let mut c = db.conn().await;
        let wrong = crate::support::rows(&mut c, "SELECT COUNT(*) FROM items WHERE b IS NULL OR b <> a * 2").await;
        assert_eq!(wrong, vec!["0"], "{engine}");
    }
}

#[tokio::test]
async fn a_failing_row_function_is_quarantined_per_row() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        notes(&db, 200).await;
        let ups = vec![Upgrade::rust("picky", "notes", "1", |row| {
            match row.get("a") {
                Some(lockgate_core::Value::Int(a)) if a % 50 == 0 => return Err(format!("a = {a} is not allowed")),
                _ => {}
            }
            row.insert("n".into(), lockgate_core::Value::Int(1));
            Ok(())
        })
        .unwrap()];
        let r = upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        let o = &r.upgrades[0];
        assert_eq!(
            (o.upgraded, o.quarantined, o.state.as_str()),
            (196, 4, "pending"),
            "{engine}: {o:?}"
        );
        let s = upgrade::status(&db.url, &ups).await.unwrap();
        assert!(
            s[0].quarantine
                .iter()
                .any(|q| q.key_text == "50" && q.error.contains("a = 50 is not allowed")),
            "{engine}: {:?}",
            s[0].quarantine
        );
        // A script past its limits, or failing, is that row's error, not the run's.
        let looping = script(
            "looping",
            "if row.a == 7 { loop { } } if row.a == 8 { throw \"no eights\"; } row.n = 5;",
        );
        let r = upgrade::run(&db.url, &looping, &RunOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(
            (r.upgrades[0].upgraded, r.upgrades[0].quarantined),
            (198, 2),
            "{engine}"
        );
        let q = &upgrade::status(&db.url, &looping).await.unwrap()[0].quarantine;
        assert!(
            q.iter().any(|q| q.key_text == "7" && q.error.contains("limit")),
            "{engine}: {q:?}"
        );
        assert!(
            q.iter().any(|q| q.key_text == "8" && q.error.contains("no eights")),
            "{engine}: {q:?}"
        );
        // A value the column cannot hold is the row's error too, not the run's.
        let bad = vec![Upgrade::rust("bad_type", "notes", "1", |row| {
            row.insert("n".into(), lockgate_core::Value::Text("many".into()));
            Ok(())
        })
        .unwrap()];
        // Every row failing is the upgrade's fault: the run stops and pauses it.
        let e = upgrade::run(&db.url, &bad, &RunOptions::default(), None)
            .await
            .unwrap_err();
        assert!(
            e.exit_code() == 1 && e.to_string().contains("rows in a row failed"),
            "{engine}: {e}"
        );
        let s = upgrade::status(&db.url, &bad).await.unwrap();
        assert_eq!((s[0].state.as_str(), s[0].quarantined), ("paused", 200), "{engine}");
        // A row function that fails twice, then works, is tried three times by retry.
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let flaky = {
            let calls = calls.clone();
            vec![Upgrade::rust("picky", "notes", "1", move |row| {
                let a = match row.get("a") {
                    Some(lockgate_core::Value::Int(a)) => *a,
                    _ => 0,
                };
                if a % 50 == 0 && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 3 != 2 {
                    return Err("not yet".into());
                }
                row.insert("n".into(), lockgate_core::Value::Int(1));
                Ok(())
            })
            .unwrap()]
        };
        let r = upgrade::retry(&db.url, &flaky[0], std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((r.tried, r.upgraded, r.quarantined), (4, 4, 0), "{engine}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_cancel_from_elsewhere_stop_a_running_upgrade_within_a_batch() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let rows = 2_000;
        notes(&db, rows).await;
        let ups = on_notes("count", &[("n", "n + 1")]);
        let opts = RunOptions {
            batch_size: Some(20),
            max_rows_per_second: Some(1_000),
            ..RunOptions::default()
        };
        let running = tokio::spawn({
            let (url, ups, opts) = (db.url.clone(), ups.clone(), opts.clone());
            async move { upgrade::run(&url, &ups, &opts, None).await }
        });
        // Another connection (as another process would) pauses it once it has begun.
        loop {
            let s = upgrade::status(&db.url, &ups).await.unwrap();
            if s[0].rows_done > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        upgrade::control(&db.url, &ups[0], UpgradeState::Paused).await.unwrap();
        let at_pause = upgrade::status(&db.url, &ups).await.unwrap()[0].rows_done;
        let r = running.await.unwrap().unwrap();
        let o = &r.upgrades[0];
        assert_eq!(o.state, "paused", "{engine}: {o:?}");
        // Obeyed within one batch (20 rows; one more may have been under way).
        assert!(o.upgraded <= at_pause + 2 * 20, "{engine}: {o:?} after {at_pause}");
        assert!(o.upgraded > 0 && o.upgraded < rows as u64, "{engine}: {o:?}");
        let s = upgrade::status(&db.url, &ups).await.unwrap();
        assert_eq!(s[0].state, "paused", "{engine}");
        // Resumed, it goes on from its cursor; cancelled, a run does nothing.
        upgrade::control(&db.url, &ups[0], UpgradeState::Cancelled)
            .await
            .unwrap();
        let r = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
        assert_eq!(
            (r.upgrades[0].upgraded, r.upgrades[0].state.as_str()),
            (0, "cancelled"),
            "{engine}"
        );
        upgrade::control(&db.url, &ups[0], UpgradeState::Pending).await.unwrap();
        let fast = RunOptions::default();
        let r = upgrade::run(&db.url, &ups, &fast, None).await.unwrap();
        assert_eq!(
            r.upgrades[0].upgraded + o.upgraded,
            rows as u64,
            "{engine}: resumed from its cursor"
        );
        assert_eq!(r.upgrades[0].state, "complete", "{engine}");
        let mut c = db.conn().await;
        let twice = crate::support::rows(&mut c, "SELECT COUNT(*) FROM notes WHERE n <> 1").await;
        assert_eq!(twice, vec!["0"], "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_at_once_upgrade_every_row_once() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let rows = 3_000;
        notes(&db, rows).await;
        let ups = on_notes("count", &[("n", "n + 1")]);
        let mut rust = lower_c_in_rust();
        rust.after = vec![];
        let all = vec![ups[0].clone(), rust];
        let opts = RunOptions {
            batch_size: Some(100),
            ..RunOptions::default()
        };
        let one = upgrade::run(&db.url, &all, &opts, None);
        let two = upgrade::run(&db.url, &all, &opts, None);
        let (a, b) = tokio::join!(one, two);
        let (a, b) = (a.unwrap(), b.unwrap());
        for name in ["count", "lower_c"] {
            let done: u64 = a
                .upgrades
                .iter()
                .chain(&b.upgrades)
                .filter(|o| o.upgrade == name)
                .map(|o| o.upgraded)
                .sum();
            assert_eq!(done, rows as u64, "{engine}: {name}: {a:?} {b:?}");
        }
        let mut c = db.conn().await;
        // n counts both upgrades: `count` adds 1 and so does the Rust function.
        let wrong = crate::support::rows(&mut c, "SELECT COUNT(*) FROM notes WHERE n <> 2").await;
        assert_eq!(wrong, vec!["0"], "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_finishes_while_a_writer_keeps_inserting_and_the_next_run_sweeps_the_rest() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        notes(&db, 1_000).await;
        let ups = on_notes("count", &[("n", "n + 1")]);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let inserter = tokio::spawn({
            let (url, stop) = (db.url.clone(), stop.clone());
            async move {
                let mut c = lockgate_db::Conn::connect_existing(&url).await.unwrap();
                let mut id = 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    c.batch(&format!(
                        "INSERT INTO notes (id, a, c, n) VALUES ({id}, {id}, 'New', 0)"
                    ))
                    .await
                    .unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                id - 1_000_000
            }
        });
        // Paced so that the inserter, even waiting for SQLite's file, keeps adding
        // rows while the run walks.
        let opts = RunOptions {
            batch_size: Some(50),
            max_rows_per_second: Some(1_000),
            ..RunOptions::default()
        };
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            upgrade::run(&db.url, &ups, &opts, None),
        )
        .await
        .expect("the run ends while rows keep arriving")
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        let inserted = inserter.await.unwrap();
        assert!(inserted > 10, "{engine}: the writer barely ran");
        assert!(r.upgrades[0].upgraded >= 1_000, "{engine}: {:?}", r.upgrades[0]);
        let r = upgrade::run(&db.url, &ups, &opts, None).await.unwrap();
        assert_eq!(
            (r.upgrades[0].state.as_str(), r.upgrades[0].remaining),
            ("complete", 0),
            "{engine}"
        );
        let mut c = db.conn().await;
        let wrong = crate::support::rows(&mut c, "SELECT COUNT(*) FROM notes WHERE n <> 1").await;
        assert_eq!(wrong, vec!["0"], "{engine}");
    }
}

#[tokio::test]
async fn rows_upgraded_on_read_equal_the_backfilled_rows() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        notes(&db, 300).await;
        let mut ups = on_notes("lower_evens", &[("c", "LOWER(c)")]);
        ups[0].condition = Some("a % 2 = 0".into());
        let mut count = Upgrade::rust("count", "notes", "1", |row| {
            if let Some(lockgate_core::Value::Int(n)) = row.get("n") {
                let next = n + 1;
                row.insert("n".into(), lockgate_core::Value::Int(next));
            }
            Ok(())
        })
        .unwrap();
        count.after = vec!["lower_evens".into()];
        ups.push(count);
        let mut c = db.conn().await;
        let t = c.find_table("notes").await.unwrap();
        let kinds: Vec<lockgate_core::Kind> = t.columns.iter().map(|c| c.kind.clone()).collect();
        let select = format!(
            "SELECT {} FROM notes ORDER BY id",
            t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let stored = c.query(&select, &[], Some(&kinds)).await.unwrap();
        let on_read = upgrade::apply_on_read(&mut c, &ups, &t, &stored).await.unwrap();
        assert_ne!(on_read, stored, "{engine}: nothing was applied");
        upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        let backfilled = c.query(&select, &[], Some(&kinds)).await.unwrap();
        assert_eq!(on_read, backfilled, "{engine}");
        // Rows that lack nothing come back as they are, without a query.
        let again = upgrade::apply_on_read(&mut c, &ups, &t, &backfilled).await.unwrap();
        assert_eq!(again, backfilled, "{engine}");
    }
}

#[tokio::test]
async fn status_creates_no_ledger_and_a_pause_before_the_first_run_does_not_block_it() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        items(&db, 50).await;
        let ups = declared("double_a", &[("b", "a * 2")], None);
        let s = upgrade::status(&db.url, &ups).await.unwrap();
        assert_eq!(s[0].state, "not started", "{engine}");
        let mut c = db.conn().await;
        assert!(
            c.lookup_table("lockgate_meta").await.unwrap().is_none(),
            "{engine}: looking created a ledger"
        );
        upgrade::init(&db.url, "items").await.unwrap();
        // Paused first (registered by `control`), then resumed and run: the run
        // registers the same table name, so it is not refused as changed.
        upgrade::control(&db.url, &ups[0], UpgradeState::Paused).await.unwrap();
        upgrade::control(&db.url, &ups[0], UpgradeState::Pending).await.unwrap();
        let r = upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        assert_eq!(r.upgrades[0].state, "complete", "{engine}");
    }
}

#[tokio::test]
async fn review_regressions_states_scopes_and_checks() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch(
                "CREATE TABLE items (id INT PRIMARY KEY, a INT NOT NULL, b INT, f FLOAT, t VARCHAR(20)); \
                 INSERT INTO items (id, a, b, f, t) VALUES (1, 1, NULL, 0.1, 'Row'), (2, 2, 5, 0.1, 'Row'), (3, 3, NULL, 0.1, 'Row')",
            )
            .await
            .unwrap();
        upgrade::init(&db.url, "items").await.unwrap();
        let mut c = db.conn().await;
        // A scope that is NULL for a row leaves it out, in the view as in the backfill.
        let ups = declared("scoped", &[("a", "a * 10")], Some("b > 0"));
        upgrade::view(&db.url, &ups, "items").await.unwrap();
        let viewed = crate::support::rows(&mut c, "SELECT id, a FROM items_upgraded ORDER BY id").await;
        upgrade::run(&db.url, &ups, &RunOptions::default(), None).await.unwrap();
        let table = crate::support::rows(&mut c, "SELECT id, a FROM items ORDER BY id").await;
        assert_eq!(viewed, table, "{engine}");
        assert_eq!(table, vec!["1|1", "2|20", "3|3"], "{engine}");
        // Setting the key is refused before anything is registered.
        let key = declared("rekey", &[("id", "id + 1")], None);
        let e = upgrade::run(&db.url, &key, &RunOptions::default(), None)
            .await
            .unwrap_err();
        assert!(
            e.exit_code() == 2 && e.to_string().contains("primary key"),
            "{engine}: {e}"
        );
        assert_eq!(
            upgrade::status(&db.url, &key).await.unwrap()[0].state,
            "not started",
            "{engine}"
        );
        // Resuming what is not stopped is refused (it would stop its runner).
        let fresh = declared("fresh", &[("b", "1")], None);
        let e = upgrade::control(&db.url, &fresh[0], UpgradeState::Pending)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot be made pending"), "{engine}: {e}");
        // A dependency not complete holds its dependents back.
        let chain = upgrade::def::check(vec![
            (
                "first".into(),
                "lockgate.toml".into(),
                UpgradeSpec {
                    table: "items".into(),
                    set: [("b".to_string(), "7".to_string())].into_iter().collect(),
                    ..UpgradeSpec::default()
                },
            ),
            (
                "second".into(),
                "lockgate.toml".into(),
                UpgradeSpec {
                    table: "items".into(),
                    set: [("b".to_string(), "b + 1".to_string())].into_iter().collect(),
                    after: vec!["first".into()],
                    ..UpgradeSpec::default()
                },
            ),
        ])
        .unwrap();
        upgrade::control(&db.url, &chain[0], UpgradeState::Paused)
            .await
            .unwrap();
        let r = upgrade::run(&db.url, &chain, &RunOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(r.upgrades[1].waiting_for, vec!["first (paused)"], "{engine}: {r:?}");
        assert_eq!(
            (r.upgrades[1].upgraded, r.upgrades[1].state.as_str()),
            (0, "pending"),
            "{engine}: rows without `first` were upgraded"
        );
        upgrade::control(&db.url, &chain[0], UpgradeState::Pending)
            .await
            .unwrap();
        let r = upgrade::run(&db.url, &chain, &RunOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(r.upgrades[1].state, "complete", "{engine}: {r:?}");
        assert_eq!(
            crate::support::rows(&mut c, "SELECT COUNT(*) FROM items WHERE b <> 8").await,
            vec!["0"],
            "{engine}"
        );
        // A row function writes back a FLOAT and text under the column's collation
        // (MariaDB's default is case-insensitive): compared by bytes, not missed.
        let touch = vec![Upgrade::rust("touch", "items", "1", |row| {
            row.insert("b".into(), lockgate_core::Value::Int(0));
            Ok(())
        })
        .unwrap()];
        let r = upgrade::run(&db.url, &touch, &RunOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(
            (r.upgrades[0].upgraded, r.upgrades[0].reread),
            (3, 0),
            "{engine}: {r:?}"
        );
    }
    // An expression whose type the column cannot take is refused before any batch.
    let db = TestDb::new(lockgate_db::Engine::Postgres).await;
    items(&db, 5).await;
    upgrade::init(&db.url, "items").await.unwrap();
    let e = upgrade::run(
        &db.url,
        &declared("typed", &[("b", "'x'::text")], None),
        &RunOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    assert!(e.exit_code() == 2 && e.to_string().contains("set.b"), "{e}");
}

/// Deterministically: an application writes a row after the row function has read
/// it and before the run writes it; the compare-and-set misses, the row is read
/// again and recomputed from the application's value, which is never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_read_and_write_is_recomputed_not_overwritten() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        notes(&db, 10).await;
        let (reading_tx, reading_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (reading_tx, go_rx) = (Mutex::new(reading_tx), Mutex::new(go_rx));
        let first = Arc::new(AtomicBool::new(true));
        let ups = vec![Upgrade::rust("lower", "notes", "1", move |row| {
            let is_one = matches!(row.get("id"), Some(lockgate_core::Value::Int(1)));
            if is_one && first.swap(false, Ordering::SeqCst) {
                // Read: let the application write, then compute from what was read.
                reading_tx.lock().unwrap().send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
            }
            if let Some(lockgate_core::Value::Text(s)) = row.get("c") {
                let lower = s.to_lowercase();
                row.insert("c".into(), lockgate_core::Value::Text(lower));
            }
            Ok(())
        })
        .unwrap()];
        let running = tokio::spawn({
            let (url, ups) = (db.url.clone(), ups.clone());
            async move { upgrade::run(&url, &ups, &RunOptions::default(), None).await }
        });
        tokio::task::spawn_blocking(move || reading_rx.recv().unwrap())
            .await
            .unwrap();
        db.conn()
            .await
            .batch("UPDATE notes SET c = 'Changed' WHERE id = 1")
            .await
            .unwrap();
        go_tx.send(()).unwrap();
        let r = running.await.unwrap().unwrap();
        assert_eq!(r.upgrades[0].reread, 1, "{engine}: {r:?}");
        let mut c = db.conn().await;
        assert_eq!(
            crate::support::rows(&mut c, "SELECT c FROM notes WHERE id = 1").await,
            vec!["changed"],
            "{engine}: the application's write was lost"
        );
    }
}

#[tokio::test]
async fn a_rust_upgrade_whose_scope_changes_after_it_started_is_refused() {
    let db = TestDb::new(lockgate_db::Engine::Sqlite).await;
    notes(&db, 20).await;
    let make = || {
        Upgrade::rust("bump", "notes", "1", |row| {
            row.insert("n".into(), lockgate_core::Value::Int(1));
            Ok(())
        })
        .unwrap()
    };
    let r = upgrade::run(&db.url, &[make()], &RunOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(r.upgrades[0].state, "complete");
    let mut narrowed = make();
    narrowed.condition = Some("a > 10".into());
    let e = upgrade::run(&db.url, &[narrowed], &RunOptions::default(), None)
        .await
        .unwrap_err();
    assert!(
        e.exit_code() == 2 && e.to_string().contains("definition changed"),
        "{e}"
    );
}
