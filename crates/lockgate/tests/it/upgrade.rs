//! `set` upgrades run on all three engines (issue 14, the part built so far): every
//! row upgraded once and recorded, a second run a no-op, a pause obeyed, and bad
//! declarations refused before the first batch.

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
