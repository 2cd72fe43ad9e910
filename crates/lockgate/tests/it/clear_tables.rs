//! `clearTables` on tables without a primary key, on each engine: a table whose
//! only key is a unique key of NOT NULL columns has the image of every row it
//! deletes recorded a page at a time (several pages here), and a rollback puts every
//! row back; a table with no key at all cannot have its rows told apart, so nothing
//! of it is read, the version is recorded as one a rollback cannot undo, and a
//! rollback across it is refused before anything changes.

use crate::migrate::{meta, run_ok, snapshot, versions_of, Bundle};
use crate::support::*;
use lockgate::db::ledger::Ledger;
use lockgate::db::versions;
use lockgate::{RollbackOptions, RollbackReport};
use lockgate_bundle::Version;
use serde_json::json;
use std::time::Duration;

/// Rows in the unique-key table: more than two of `clear_table`'s pages (5,000), the
/// last one short, so paging past a page boundary is exercised.
const ROWS: usize = 12_001;

/// Rolls the module `./` back to 1.0.0.
async fn rollback(db: &TestDb) -> Result<RollbackReport, lockgate::MigrateError> {
    lockgate::rollback(
        &db.url,
        &RollbackOptions {
            to: Version::new(1, 0, 0),
            lock_timeout: Duration::from_secs(60),
            ..RollbackOptions::default()
        },
    )
    .await
}

/// A data entry with no model: the table is the one the test created.
fn plain(table: &str, file: &str) -> serde_json::Value {
    json!({"model": table, "file": file, "ctxId": "/default"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_tables_on_a_unique_key_table_records_every_row_a_page_at_a_time_and_rollback_restores_them() {
    let b = Bundle::new();
    let rows: serde_json::Value = (0..ROWS)
        .map(|i| json!({"code": format!("k{i:05}"), "label": format!("row {i}")}))
        .collect();
    b.json("1.0.0/meta.json", meta(json!([plain("code_list", "default/c.json")])))
        .json("1.0.0/default/c.json", rows)
        .json(
            "2.0.0/meta.json",
            json!({"contexts": crate::migrate::contexts(), "clearTables": ["code_list"],
                   "files": [plain("code_list", "default/c.json")]}),
        )
        .json("2.0.0/default/c.json", json!([{"code": "new", "label": "only"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE code_list (code varchar(20) NOT NULL, label varchar(50), CONSTRAINT code_list_code UNIQUE (code))")
            .await
            .unwrap();
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let at_1 = snapshot(&db, &["code_list"]).await;
        assert_eq!(at_1.table("code_list").len(), ROWS, "{engine}");

        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["2.0.0"]), "{engine}: {r:#?}");
        let clear = r.versions[0]
            .steps
            .iter()
            .find(|s| s.kind == "clear")
            .unwrap_or_else(|| panic!("{engine}: no clear step: {r:#?}"));
        assert_eq!(clear.deleted, ROWS as u64, "{engine}");
        assert_eq!(
            snapshot(&db, &["code_list"]).await.table("code_list"),
            ["new|only"],
            "{engine}"
        );

        // One image per deleted row, each named by the unique key, each row once.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let images = versions::read_images(ledger.conn(), "./", &["2.0.0".into()])
            .await
            .unwrap();
        let mut codes: Vec<String> = images
            .iter()
            .filter(|s| s.image.op == 'd')
            .map(|s| {
                assert_eq!(s.image.key.keys().collect::<Vec<_>>(), ["code"], "{engine}: {s:?}");
                let before = s.image.before.as_ref().unwrap();
                assert_eq!(before["code"], s.image.key["code"], "{engine}: {s:?}");
                s.image.key["code"].as_str().unwrap().to_string()
            })
            .collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ROWS, "{engine}");
        drop(ledger);

        // The rollback puts every row back and takes the new one away.
        let r = rollback(&db).await.unwrap();
        assert!(r.committed && r.conflicts.is_empty(), "{engine}: {r:#?}");
        assert_eq!((r.restored, r.deleted), (ROWS as u64, 1), "{engine}");
        assert_eq!(
            snapshot(&db, &["code_list"]).await.table("code_list"),
            at_1.table("code_list"),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_tables_on_a_keyless_table_reads_nothing_and_a_rollback_across_it_is_refused() {
    // `audit` has no key; `tagged` only a unique key of a nullable column, which does
    // not tell rows apart either (NULLs repeat).
    let b = Bundle::new();
    b.json(
        "1.0.0/meta.json",
        meta(json!([
            plain("audit", "default/a.json"),
            plain("tagged", "default/t.json")
        ])),
    )
    .json(
        "1.0.0/default/a.json",
        json!([{"who": "a", "what": "x"}, {"who": "a", "what": "x"}, {"who": "b", "what": "y"}]),
    )
    .json(
        "1.0.0/default/t.json",
        json!([{"code": null, "label": "p"}, {"code": null, "label": "q"}, {"code": "r", "label": "r"}]),
    )
    .json(
        "2.0.0/meta.json",
        json!({"contexts": crate::migrate::contexts(), "clearTables": ["audit", "tagged"],
               "files": [plain("audit", "default/a.json")]}),
    )
    .json("2.0.0/default/a.json", json!([{"who": "c", "what": "z"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE audit (who varchar(20), what varchar(20))")
            .await
            .unwrap();
        conn.batch("CREATE TABLE tagged (code varchar(20), label varchar(20), CONSTRAINT tagged_code UNIQUE (code))")
            .await
            .unwrap();
        drop(conn);
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["2.0.0"]), "{engine}: {r:#?}");
        let deleted: Vec<(Option<&str>, u64)> = r.versions[0]
            .steps
            .iter()
            .filter(|s| s.kind == "clear")
            .map(|s| (s.table.as_deref(), s.deleted))
            .collect();
        assert_eq!(deleted, [(Some("audit"), 3), (Some("tagged"), 3)], "{engine}");
        let after = snapshot(&db, &["audit", "tagged"]).await;
        assert_eq!(after.table("audit"), ["c|z"], "{engine}");
        assert!(after.table("tagged").is_empty(), "{engine}");

        // No image of either (their rows cannot be told apart), and the version
        // says so.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let conn = ledger.conn();
        let images = versions::read_images(conn, "./", &["2.0.0".into()]).await.unwrap();
        assert!(images.is_empty(), "{engine}: {images:?}");
        let applied = versions::applied_versions(conn, "./").await.unwrap();
        let v2 = applied.iter().find(|a| a.version == "2.0.0").unwrap();
        for t in ["audit", "tagged"] {
            assert!(
                v2.scripts
                    .iter()
                    .any(|s| s.contains(&format!("table {t} ")) && s.contains("cannot be told apart")),
                "{engine}: {t}: {v2:?}"
            );
        }
        drop(ledger);

        // So a rollback across it is refused, naming them, and changes nothing.
        let e = rollback(&db).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            e.to_string().contains("table audit")
                && e.to_string().contains("table tagged")
                && e.to_string().contains("--ignore-scripts"),
            "{engine}: {e}"
        );
        assert_eq!(snapshot(&db, &["audit", "tagged"]).await, after, "{engine}");
    }
}
