//! `clearTables` on tables without a primary key, on each engine: a table whose
//! only key is a unique key of NOT NULL columns has the image of every row it
//! deletes recorded a page at a time (several pages here), and a rollback puts every
//! row back; a table with no key at all cannot have its rows told apart, so nothing
//! of it is read, the version is recorded as one a rollback cannot undo, and a
//! rollback across it is refused before anything changes. A MariaDB table keyed by an
//! ENUM has every row it deletes imaged across pages (`clearTables`, a sync, a `.sql`
//! script), though MariaDB sorts an ENUM by position and compares it as text; and a
//! tenant's rows are cleared, imaged and put back under the tenant column's collation.

use crate::migrate::{meta, run_ok, snapshot, versions_of, Bundle};
use crate::support::*;
use lockgate::db::ledger::Ledger;
use lockgate::db::versions;
use lockgate::{RollbackOptions, RollbackReport};
use lockgate_bundle::Version;
use lockgate_db::Engine;
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
        assert_eq!(codes.len(), ROWS, "{engine}: one image per deleted row");
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ROWS, "{engine}: each row once");
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
        // `tagged` has a unique key, of a nullable column: said as such, not as
        // "no unique key".
        let tagged: Vec<&String> = v2.scripts.iter().filter(|s| s.contains("table tagged ")).collect();
        assert_eq!(
            tagged,
            ["table tagged (no primary key and no unique key of NOT NULL columns: its rows cannot be told apart)"],
            "{engine}: {v2:?}"
        );
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

/// Rows of `kinds` per label in the ENUM tests: two labels, more than two of
/// `clear_table`'s and the sync's pages (5,000) in all.
const PER_KIND: usize = 6_000;

/// `kinds`: a MariaDB table keyed by (ENUM('z','a'), code), declared so that the
/// label sorting first by position ('z') sorts last as text.
async fn kinds_table(db: &TestDb) {
    db.conn()
        .await
        .batch(
            "CREATE TABLE kinds (kind ENUM('z', 'a') NOT NULL, code varchar(20) NOT NULL, label varchar(50), \
             CONSTRAINT kinds_key UNIQUE (kind, code)) ENGINE=InnoDB",
        )
        .await
        .unwrap();
}

/// 1.0.0 loading PER_KIND rows of each label into `kinds`.
fn kinds_bundle() -> Bundle {
    let b = Bundle::new();
    let rows: serde_json::Value = (0..2 * PER_KIND)
        .map(|i| json!({"kind": if i % 2 == 0 { "z" } else { "a" }, "code": format!("k{i:05}"), "label": format!("row {i}")}))
        .collect();
    b.json("1.0.0/meta.json", meta(json!([plain("kinds", "default/k.json")])))
        .json("1.0.0/default/k.json", rows);
    b
}

/// The 'd' images of version 2.0.0, as `kind|code`, in the order written.
async fn deleted_images(db: &TestDb) -> Vec<String> {
    let mut ledger = Ledger::open(&db.url).await.unwrap();
    versions::read_images(ledger.conn(), "./", &["2.0.0".into()])
        .await
        .unwrap()
        .iter()
        .filter(|s| s.image.op == 'd')
        .map(|s| {
            let before = s.image.before.as_ref().unwrap();
            assert_eq!(before["kind"], s.image.key["kind"], "{s:?}");
            format!(
                "{}|{}",
                s.image.key["kind"].as_str().unwrap(),
                s.image.key["code"].as_str().unwrap()
            )
        })
        .collect()
}

/// Each of `list` once.
fn distinct(list: &[String]) -> usize {
    list.iter().collect::<std::collections::HashSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enum_keyed_table_has_every_deleted_row_imaged_across_pages_and_put_back() {
    // clearTables, a sync and a `.sql` script each delete all but one row of `kinds`,
    // read a page at a time in key order. Paged by the ENUM's position but resumed
    // by comparing it as text ("> 'z'"), every 'a' row after the first page went
    // unimaged, and a rollback could not put it back.
    let all = 2 * PER_KIND as u64;
    let cases: [(&str, serde_json::Value, Option<&str>); 3] = [
        (
            "clearTables",
            json!({"contexts": crate::migrate::contexts(), "clearTables": ["kinds"],
                   "files": [plain("kinds", "default/k.json")]}),
            None,
        ),
        (
            "sync",
            json!({"contexts": crate::migrate::contexts(), "files": [
                {"model": "kinds", "file": "default/k.json", "ctxId": "/default", "mode": "sync", "key": ["kind", "code"]}
            ]}),
            None,
        ),
        (
            "script",
            json!({"contexts": crate::migrate::contexts(), "files": [{"file": "default/d.sql"}]}),
            Some("DELETE FROM kinds WHERE code <> 'k00001';\n"),
        ),
    ];
    for (name, meta_2, script) in cases {
        let b = kinds_bundle();
        b.json("2.0.0/meta.json", meta_2);
        match script {
            Some(sql) => b.put("2.0.0/default/d.sql", sql),
            // The one row kept: 'a', k00001 (the sync's key matches it; clearTables
            // deletes it and loads it again).
            None => b.json(
                "2.0.0/default/k.json",
                json!([{"kind": "a", "code": "k00001", "label": "row 1"}]),
            ),
        };
        let db = TestDb::new(Engine::Mysql).await;
        kinds_table(&db).await;
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let at_1 = snapshot(&db, &["kinds"]).await;
        assert_eq!(at_1.table("kinds").len(), 2 * PER_KIND, "{name}");

        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["2.0.0"]), "{name}: {r:#?}");
        assert_eq!(
            snapshot(&db, &["kinds"]).await.table("kinds"),
            ["a|k00001|row 1"],
            "{name}"
        );
        let deleted = deleted_images(&db).await;
        let expected = if name == "clearTables" { all } else { all - 1 };
        assert_eq!(deleted.len() as u64, expected, "{name}: one image per deleted row");
        assert_eq!(distinct(&deleted) as u64, expected, "{name}: each row once");
        assert_eq!(
            deleted.iter().filter(|k| k.starts_with("a|")).count() as u64,
            expected - PER_KIND as u64,
            "{name}: the 'a' rows too"
        );

        let r = rollback(&db).await.unwrap();
        assert!(r.committed && r.conflicts.is_empty(), "{name}: {r:#?}");
        assert_eq!(snapshot(&db, &["kinds"]).await, at_1, "{name}: every row back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_tenant_images_and_puts_back_what_the_collation_matches() {
    // `tenanted` has the tenant column and no definition: the version's context says
    // whose rows. Two files of the same tenant: it is named once. On MariaDB's
    // case-insensitive collation `/DEFAULT/T1` is the same tenant as `/default/t1`,
    // and its rows are deleted, imaged and put back with the others.
    let b = Bundle::new();
    let t1 = |file: &str| json!({"model": "tenanted", "file": file, "ctxId": "/default/t1"});
    b.json("1.0.0/meta.json", meta(json!([])))
        .json(
            "2.0.0/meta.json",
            json!({"contexts": crate::migrate::contexts(), "clearTables": ["tenanted"],
                   "files": [t1("t1/a.json"), t1("t1/b.json")]}),
        )
        .json("2.0.0/t1/a.json", json!([{"id": 100, "label": "new a"}]))
        .json("2.0.0/t1/b.json", json!([{"id": 101, "label": "new b"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE tenanted (id integer NOT NULL PRIMARY KEY, tenant_id varchar(30) NOT NULL, label varchar(20))")
            .await
            .unwrap();
        conn.batch(
            "INSERT INTO tenanted (id, tenant_id, label) VALUES (1, '/default/t1', 'one'), (2, '/DEFAULT/T1', 'two'), \
             (3, '/default', 'three'), (4, '/default/t1', 'four')",
        )
        .await
        .unwrap();
        drop(conn);
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let at_1 = snapshot(&db, &["tenanted"]).await;

        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["2.0.0"]), "{engine}: {r:#?}");
        let clear = r.versions[0].steps.iter().find(|s| s.kind == "clear").unwrap();
        assert_eq!(clear.tenant.as_deref(), Some("/default/t1"), "{engine}: named once");
        let matched: &[i64] = if engine == Engine::Mysql { &[1, 2, 4] } else { &[1, 4] };
        assert_eq!(clear.deleted, matched.len() as u64, "{engine}");
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let mut imaged: Vec<i64> = versions::read_images(ledger.conn(), "./", &["2.0.0".into()])
            .await
            .unwrap()
            .iter()
            .filter(|s| s.image.op == 'd')
            .map(|s| s.image.key["id"].as_i64().unwrap())
            .collect();
        drop(ledger);
        imaged.sort();
        assert_eq!(imaged, matched, "{engine}: every row deleted has its image");

        let r = rollback(&db).await.unwrap();
        assert!(r.committed && r.conflicts.is_empty(), "{engine}: {r:#?}");
        assert_eq!((r.restored, r.deleted), (matched.len() as u64, 2), "{engine}");
        assert_eq!(snapshot(&db, &["tenanted"]).await, at_1, "{engine}");
    }
}
