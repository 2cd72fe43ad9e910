//! A version's `.sql` scripts on each engine: an error names the statement and the
//! line it starts on; the rows a script changes are the version's state (a rollback
//! across the README's sample, whose `retire.sql` retires a customer, finds no
//! conflict and puts them back); session settings a script changes are put back
//! after it, so a later script or file never runs under them.

use crate::migrate::{entry, item_bundle, meta, run, run_ok, snapshot, strings, Bundle, BASE_ITEMS};
use crate::support::*;
use lockgate::db::Engine;
use lockgate::{MigrateOptions, RollbackOptions};
use lockgate_bundle::Version;
use serde_json::json;
use std::path::Path;

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/db")
}

/// The sample's customers, on the columns every version has.
async fn customers(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    let t = conn.find_table("customer").await.unwrap();
    let cols = ["tenant_id", "code", "name", "city", "credit_limit"];
    let kinds: Vec<lockgate_core::Kind> = cols.iter().map(|c| t.column(c).unwrap().kind.clone()).collect();
    typed_rows(
        &mut conn,
        "SELECT tenant_id, code, name, city, credit_limit FROM customer ORDER BY tenant_id, code",
        &kinds,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_across_the_samples_sql_script_finds_no_conflict_and_puts_its_rows_back() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let opts = |to: Option<Version>| MigrateOptions {
            dir: sample(),
            to,
            ..MigrateOptions::default()
        };
        lockgate::migrate(&db.url, &opts(Some(Version::new(1, 0, 0))), None)
            .await
            .unwrap();
        let at_1 = customers(&db).await;
        let r = lockgate::migrate(&db.url, &opts(None), None).await.unwrap();
        assert_eq!(r.new_version.as_deref(), Some("2.0.0"), "{engine}: {r:#?}");
        // The script's change is recorded with its version, and said so.
        let sql = r.versions[1].steps.iter().find(|s| s.kind == "sql").unwrap();
        assert!(
            sql.note.as_deref().is_some_and(|n| n.contains("customer: 1 updated")),
            "{engine}: {sql:?}"
        );
        let at_2 = customers(&db).await;

        let back = RollbackOptions {
            to: Version::new(1, 0, 0),
            ignore_scripts: true,
            ..RollbackOptions::default()
        };
        let r = lockgate::rollback(&db.url, &back).await.unwrap();
        assert!(r.conflicts.is_empty(), "{engine}: {:#?}", r.conflicts);
        assert!(r.committed, "{engine}: {r:#?}");
        assert_eq!(r.exit_code(), 0, "{engine}");
        assert_eq!(customers(&db).await, at_1, "{engine}");
        let mut conn = db.conn().await;
        assert_eq!(
            rows(
                &mut conn,
                "SELECT status FROM customer WHERE code = 'C003' AND tenant_id = '/default'"
            )
            .await,
            ["active"],
            "{engine}: the retired customer is active again"
        );

        // A change made after the migration is still a conflict.
        lockgate::migrate(&db.url, &opts(None), None).await.unwrap();
        assert_eq!(customers(&db).await, at_2, "{engine}");
        conn.batch("UPDATE customer SET city = 'Lima' WHERE code = 'C003' AND tenant_id = '/default'")
            .await
            .unwrap();
        let r = lockgate::rollback(&db.url, &back).await.unwrap();
        assert_eq!(r.exit_code(), 4, "{engine}: {r:#?}");
        assert_eq!(r.conflicts.len(), 1, "{engine}: {:#?}", r.conflicts);
        assert_eq!(r.conflicts[0].key["code"], "C003", "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_is_named_with_its_line_and_nothing_is_kept() {
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([{"file": "default/fix.sql"}])))
        .put(
            "2.0.0/default/fix.sql",
            "-- two good statements, then a bad one\nUPDATE item SET qty = 10 WHERE id = 1;\n\n\
             INSERT INTO item (id, name) VALUES (60, 'x'); UPDATE item\n  SET no_such_column = 1;\nUPDATE item SET qty = 0;\n",
        );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let before = snapshot(&db, &["item"]).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("fix.sql:4: statement 3 (UPDATE ITEM SET …)"),
            "{engine}: {msg}"
        );
        assert!(msg.contains("files[0] of"), "{engine}: {msg}");
        assert_eq!(snapshot(&db, &["item"]).await, before, "{engine}: nothing kept");
    }
}

/// A version whose first script changes a setting and whose second relies on it.
fn setting_bundle(set: &str, write: &str) -> Bundle {
    let b = Bundle::new();
    b.json(
        "1.0.0/meta.json",
        json!({"files": [{"file": "a.sql"}, {"file": "b.sql"}]}),
    )
    .put("1.0.0/a.sql", set)
    .put("1.0.0/b.sql", write);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_a_script_changes_are_put_back_before_anything_else_runs() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        // Each engine's way to make a later write pass silently what it refuses.
        let (schema, set, write, data) = match engine {
            Engine::Mysql => (
                "CREATE TABLE t (id int PRIMARY KEY, s varchar(3)) ENGINE=InnoDB",
                // Non-strict: a too-long value is cut with a warning.
                "SET SESSION sql_mode = '';",
                "INSERT INTO t (id, s) VALUES (1, 'abcdef');",
                // (A file's too-long value is refused before it is sent, in any mode.)
                json!([{"id": 2, "s": "abcdef"}]),
            ),
            Engine::Postgres => (
                "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE t (id int PRIMARY KEY, p int REFERENCES p (id))",
                // Foreign keys off, by a function a scan of SET statements would miss.
                "SELECT set_config('session_replication_role', 'replica', false);",
                "INSERT INTO t (id, p) VALUES (1, 99);",
                json!([{"id": 2, "p": 98}]),
            ),
            Engine::Sqlite => (
                "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER CHECK (n > 0))",
                "PRAGMA ignore_check_constraints = ON;",
                "INSERT INTO t (id, n) VALUES (1, -1);",
                json!([{"id": 2, "n": -2}]),
            ),
        };
        conn.batch(schema).await.unwrap();

        // The second script runs under Lockgate's settings again: its write fails,
        // naming the script, and the version keeps nothing.
        let b = setting_bundle(set, write);
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("b.sql:1: statement 1"), "{engine}: {e}");
        assert_eq!(count(&mut conn, "t").await, 0, "{engine}: nothing kept");

        // So does a data file after the script: its record fails (exit 3).
        let b = Bundle::new();
        b.json(
            "1.0.0/meta.json",
            json!({"files": [{"file": "a.sql"}, {"model": "t", "file": "t.json"}]}),
        )
        .put("1.0.0/a.sql", set)
        .json("1.0.0/t.json", data.clone());
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.failed_version.as_deref(), Some("1.0.0"), "{engine}: {r:#?}");
        assert_eq!(r.exit_code(), 3, "{engine}");
        assert_eq!(r.versions[0].failures.len(), 1, "{engine}: {r:#?}");
        assert_eq!(count(&mut conn, "t").await, 0, "{engine}: nothing kept");
        let note = r.versions.last().unwrap().steps[0].note.clone().unwrap_or_default();
        assert!(note.contains("put them back"), "{engine}: {note}");

        // A script that only changes a setting is applied, and the next version
        // (same connection) runs under Lockgate's settings.
        let b = Bundle::new();
        b.json("1.0.0/meta.json", json!({"files": [{"file": "a.sql"}]}))
            .put("1.0.0/a.sql", set)
            .json("1.1.0/meta.json", json!({"files": [{"file": "b.sql"}]}))
            .put("1.1.0/b.sql", write);
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("b.sql:1"), "{engine}: {e}");
        let s = snapshot(&db, &["t"]).await;
        assert_eq!(s.version.as_deref(), Some("1.0.0"), "{engine}: {s:?}");
        assert_eq!(s.table("t"), Vec::<String>::new(), "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_rows_are_recorded_even_when_a_file_of_the_version_wrote_them_first() {
    // The file inserts row 9 and the script then changes it: the version's state is
    // the script's, so a rollback finds no conflict and removes the row.
    let b = item_bundle();
    b.json(
        "2.0.0/meta.json",
        meta(json!([entry("item", "default/i.json"), {"file": "default/s.sql"}])),
    )
    .json("2.0.0/default/i.json", json!([{"id": 9, "name": "nine", "qty": 9}]))
    .put(
        "2.0.0/default/s.sql",
        "UPDATE item SET qty = qty * 10 WHERE id IN (1, 9);\n",
    );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|10", "2|b|2", "3|c|3", "9|nine|90"],
            "{engine}"
        );
        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                to: Version::new(1, 0, 0),
                ignore_scripts: true,
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(r.committed && r.conflicts.is_empty(), "{engine}: {r:#?}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_lockgate_cannot_classify_has_the_tables_it_names_recorded() {
    // A WITH before the UPDATE (a join on MariaDB) hides the target from the
    // statement's first words: every existing table the statement names is copied,
    // so the change is recorded and a fully recorded script needs no --ignore-scripts.
    for engine in ENGINES {
        let sql = match engine {
            Engine::Mysql => "UPDATE item i JOIN (SELECT 'a' AS c) t ON i.name = t.c SET i.qty = i.qty * 10;\n",
            _ => "WITH t AS (SELECT 'a' AS c) UPDATE item SET qty = qty * 10 WHERE name IN (SELECT c FROM t);\n",
        };
        let b = item_bundle();
        b.json("2.0.0/meta.json", meta(json!([{"file": "default/s.sql"}])))
            .put("2.0.0/default/s.sql", sql);
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        let note = r.versions.last().unwrap().steps[0].note.clone().unwrap_or_default();
        assert!(note.contains("item: 1 updated"), "{engine}: {note}");
        assert!(!note.contains("not recorded"), "{engine}: {note}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|10", "2|b|2", "3|c|3"],
            "{engine}"
        );
        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                to: Version::new(1, 0, 0),
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert!(r.committed && r.scripts_not_undone.is_empty(), "{engine}: {r:#?}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_script_does_to_a_keyless_table_is_said_and_a_rollback_must_be_told_to_leave_it() {
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([{"file": "default/s.sql"}]))).put(
        "2.0.0/default/s.sql",
        "INSERT INTO note (msg) VALUES ('x');\nUPDATE item SET qty = 5 WHERE id = 1;\n",
    );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE note (msg VARCHAR(20))")
            .await
            .unwrap();
        let r = run_ok(&db, &b, |_| {}).await;
        let note = r.versions.last().unwrap().steps[0].note.clone().unwrap_or_default();
        assert!(
            note.contains("table note") && note.contains("not recorded") && note.contains("item: 1 updated"),
            "{engine}: {note}"
        );
        let back = RollbackOptions {
            to: Version::new(1, 0, 0),
            ..RollbackOptions::default()
        };
        let e = lockgate::rollback(&db.url, &back).await.unwrap_err();
        assert!(e.to_string().contains("2.0.0/default/s.sql"), "{engine}: {e}");
        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                ignore_scripts: true,
                ..back
            },
        )
        .await
        .unwrap();
        assert_eq!(r.scripts_not_undone, ["2.0.0/default/s.sql"], "{engine}");
        // The recorded table goes back; the unrecorded one keeps the script's row.
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
        let mut conn = db.conn().await;
        assert_eq!(count(&mut conn, "note").await, 1, "{engine}");
    }
}

/// The number of items and the sum of their quantities.
async fn item_totals(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    rows(&mut conn, "SELECT COUNT(*), SUM(qty) FROM item").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_changes_beyond_one_page_are_all_recorded() {
    // More rows than one page of lockgate-db's rowdiff (2000) inserted, updated and
    // deleted: every page is recorded, so each rollback puts back exactly its state.
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([{"file": "default/add.sql"}])))
        .put(
            "2.0.0/default/add.sql",
            concat!(
                "INSERT INTO item (id, name, qty) WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < 9) ",
                "SELECT 10 + a.i + 10 * b.i + 100 * c.i + 1000 * e.i, 'n', 10 + a.i + 10 * b.i + 100 * c.i + 1000 * e.i ",
                "FROM d a, d b, d c, d e WHERE 10 + a.i + 10 * b.i + 100 * c.i + 1000 * e.i <= 4509;\n"
            ),
        )
        .json("3.0.0/meta.json", meta(json!([{"file": "default/change.sql"}])))
        .put(
            "3.0.0/default/change.sql",
            "UPDATE item SET qty = qty + 1 WHERE id >= 10;\nDELETE FROM item WHERE id >= 3000 OR id = 2;\n",
        );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(2, 0, 0))).await;
        assert_eq!(r.new_version.as_deref(), Some("2.0.0"), "{engine}: {r:#?}");
        let at_2 = item_totals(&db).await;
        assert_eq!(at_2, ["4503|10167756"], "{engine}");
        let r = run_ok(&db, &b, |_| {}).await;
        let note = r.versions.last().unwrap().steps[0].note.clone().unwrap_or_default();
        assert!(
            note.contains("item: 2990 updated, 1511 deleted, 0 inserted"),
            "{engine}: {note}"
        );
        for (to, want) in [
            (Version::new(2, 0, 0), at_2),
            (Version::new(1, 0, 0), vec!["3|6".to_string()]),
        ] {
            let r = lockgate::rollback(
                &db.url,
                &RollbackOptions {
                    to,
                    ..RollbackOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
            assert!(r.committed && r.conflicts.is_empty(), "{engine}: {r:#?}");
            assert_eq!(item_totals(&db).await, want, "{engine}");
        }
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_row_limit_is_put_back_and_does_not_cut_what_lockgate_reads() {
    // MariaDB's sql_select_limit cut SHOW VARIABLES to one row, and the version
    // failed blaming sql_mode; the settings are now one row, and the limit is one of them.
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE t (id int PRIMARY KEY, s varchar(3)) ENGINE=InnoDB")
        .await
        .unwrap();
    let b = Bundle::new();
    b.json(
        "1.0.0/meta.json",
        json!({"files": [{"file": "a.sql"}, {"model": "t", "file": "t.json"}]}),
    )
    .put(
        "1.0.0/a.sql",
        "SET SESSION sql_select_limit = 1;\nSET SESSION max_join_size = 1;\n",
    )
    .json(
        "1.0.0/t.json",
        json!([{"id": 1, "s": "a"}, {"id": 2, "s": "b"}, {"id": 3, "s": "c"}]),
    );
    let r = run_ok(&db, &b, |_| {}).await;
    assert_eq!(r.new_version.as_deref(), Some("1.0.0"), "{r:#?}");
    let note = r.versions[0].steps[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("sql_select_limit") && note.contains("max_join_size") && !note.contains("sql_mode"),
        "{note}"
    );
    assert_eq!(count(&mut conn, "t").await, 3);
}
