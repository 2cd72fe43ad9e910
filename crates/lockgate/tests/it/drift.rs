//! Migrations as a Flyway user expects them, on each engine: drift (an applied
//! version's files edited, an applied folder deleted, a version added below the
//! current one) in `migrate`'s warnings and failing `status`'s strict exit code;
//! `--force` of an older version warning about the later versions whose rows it
//! rewrote (in semver order, the images compared a bounded page at a time); `--from`
//! later than `--to` refused; a rollback with nothing to do; a failing record of a
//! compact JSON array logged with its own data; an unknown property named with its
//! file and line.

use crate::migrate::{entry, entry_with, item_bundle, meta, run, run_ok, snapshot, strings, versions_of, Bundle};
use crate::support::*;
use lockgate::db::ledger::Ledger;
use lockgate::db::versions::{ImagePages, IMAGE_PAGE};
use lockgate::{RollbackOptions, StatusOptions, StatusReport};
use lockgate_bundle::Version;
use serde_json::json;

async fn status(db: &TestDb, b: &Bundle, read_manifests: bool) -> Result<StatusReport, lockgate::MigrateError> {
    lockgate::status(
        &db.url,
        &StatusOptions {
            dir: Some(b.root()),
            read_manifests,
            ..StatusOptions::default()
        },
    )
    .await
}

/// [`item_bundle`] with 1.1.0 (an update of item 2) and 2.0.0 (a sync of item that
/// keeps 1 and 2 as they are and deletes 3).
fn three_versions() -> Bundle {
    let b = item_bundle();
    b.json(
        "1.1.0/meta.json",
        meta(json!([entry_with("item", "default/u.json", json!({"mode": "update"}))])),
    )
    .json("1.1.0/default/u.json", json!([{"id": 2, "qty": 22}]))
    .json(
        "2.0.0/meta.json",
        meta(json!([entry_with("item", "default/s.json", json!({"mode": "sync"}))])),
    )
    .json(
        "2.0.0/default/s.json",
        json!([{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 22}]),
    );
    b
}

fn has(warnings: &[String], parts: &[&str]) -> bool {
    warnings.iter().any(|w| parts.iter().all(|p| w.contains(p)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_in_migrates_warnings_and_fails_strict_status() {
    for engine in ENGINES {
        let b = three_versions();
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "1.1.0", "2.0.0"]),
            "{engine}"
        );
        assert!(r.warnings.is_empty(), "{engine}: {:?}", r.warnings);
        let s = status(&db, &b, true).await.unwrap();
        assert!(s.drift.is_empty(), "{engine}: {s:?}");
        assert_eq!(s.strict_exit_code(), 0, "{engine}");

        // An applied version's file edited.
        b.json("1.1.0/default/u.json", json!([{"id": 2, "qty": 23}]));
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, None, "{engine}");
        assert!(
            has(&r.warnings, &["version 1.1.0 was applied", "changed since"]),
            "{engine}: {:?}",
            r.warnings
        );
        let s = status(&db, &b, false).await.unwrap();
        assert_eq!(s.changed, ["1.1.0"], "{engine}");
        assert_eq!(s.drift.len(), 1, "{engine}: {:?}", s.drift);
        assert_eq!(s.strict_exit_code(), 4, "{engine}");
        // Re-applying it on purpose is not drift: the ledger then has its new files.
        let r = run_ok(&db, &b, |o| {
            o.force = true;
            o.from = Some(Version::new(1, 1, 0));
            o.to = Some(Version::new(1, 1, 0));
        })
        .await;
        assert!(!has(&r.warnings, &["changed since"]), "{engine}: {:?}", r.warnings);
        assert_eq!(status(&db, &b, false).await.unwrap().strict_exit_code(), 0, "{engine}");

        // An applied folder deleted.
        let kept = b.root().with_file_name("kept-1.1.0");
        std::fs::rename(b.root().join("1.1.0"), &kept).unwrap();
        let r = run_ok(&db, &b, |_| {}).await;
        assert!(
            has(&r.warnings, &["version 1.1.0", "no longer has it"]),
            "{engine}: {:?}",
            r.warnings
        );
        let s = status(&db, &b, false).await.unwrap();
        assert_eq!(s.missing, ["1.1.0"], "{engine}");
        assert_eq!(s.strict_exit_code(), 4, "{engine}");
        std::fs::rename(&kept, b.root().join("1.1.0")).unwrap();

        // A version added below the current one.
        b.json("1.5.0/meta.json", meta(json!([entry("tag", "default/t.json")])))
            .json("1.5.0/default/t.json", json!([{"id": 3, "label": "green"}]));
        let before = snapshot(&db, &["item", "tag"]).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, None, "{engine}");
        assert!(
            has(
                &r.warnings,
                &[
                    "version 1.5.0 was never applied",
                    "older than the current version 2.0.0"
                ]
            ),
            "{engine}: {:?}",
            r.warnings
        );
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            before,
            "{engine}: nothing changed"
        );
        let s = status(&db, &b, false).await.unwrap();
        assert_eq!(s.skipped, ["1.5.0"], "{engine}");
        assert_eq!(s.strict_exit_code(), 4, "{engine}");

        // validate reads every meta.json: a malformed one is bad input (exit 2).
        b.put("1.5.0/meta.json", "{\"files\": [");
        assert!(status(&db, &b, false).await.is_ok(), "{engine}");
        let e = status(&db, &b, true).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(e.to_string().contains("1.5.0"), "{engine}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcing_an_older_version_warns_naming_the_later_versions_whose_rows_it_rewrote() {
    let b = three_versions();
    let force_1 = |o: &mut lockgate::MigrateOptions| {
        o.force = true;
        o.from = Some(Version::new(1, 0, 0));
        o.to = Some(Version::new(1, 0, 0));
    };
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|1", "2|b|22"],
            "{engine}"
        );

        // 1.0.0 again: item 2 back to qty 2 (1.1.0 had made it 22) and item 3 back
        // (2.0.0's sync had deleted it).
        let r = run_ok(&db, &b, force_1).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}");
        assert_eq!(r.new_version.as_deref(), Some("2.0.0"), "{engine}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|1", "2|b|2", "3|c|3"],
            "{engine}"
        );
        let w: Vec<&String> = r
            .warnings
            .iter()
            .filter(|w| w.contains("re-applied over later"))
            .collect();
        assert_eq!(w.len(), 1, "{engine}: {:?}", r.warnings);
        assert!(
            w[0].contains("1.1.0: rewrote 1 row(s) it changed")
                && w[0].contains("2.0.0: re-inserted 1 row(s) it deleted"),
            "{engine}: {}",
            w[0]
        );

        // Again: nothing to rewrite, nothing said.
        let r = run_ok(&db, &b, force_1).await;
        assert!(
            !has(&r.warnings, &["re-applied over later"]),
            "{engine}: {:?}",
            r.warnings
        );

        // Every version again: the later ones are re-applied too, nothing said.
        let r = run_ok(&db, &b, |o| o.force = true).await;
        assert!(
            !has(&r.warnings, &["re-applied over later"]),
            "{engine}: {:?}",
            r.warnings
        );
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|1", "2|b|22"],
            "{engine}"
        );
    }
}

/// Rows a forced re-apply rewrites in [`forcing_an_older_version_over_many_rows_counts_each_row_once`]:
/// many pages of images, and inserted batches of many keys in one ledger row each.
const REWRITTEN: usize = 20_000;
/// Rows of that test's 1.0.0 that 2.0.0's sync deletes (and the re-apply puts back).
const RESURRECTED: usize = 2_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcing_an_older_version_over_many_rows_counts_each_row_once() {
    // 1.0.0 loads REWRITTEN + RESURRECTED items; 1.1.0 updates the first REWRITTEN
    // twice over (two files: two images per row, one row each); 2.0.0 syncs to those,
    // deleting the rest.
    let all = REWRITTEN + RESURRECTED;
    let items = |n: usize, qty: usize| -> serde_json::Value {
        (1..=n)
            .map(|i| json!({"id": i, "name": format!("n{i}"), "qty": qty}))
            .collect()
    };
    let b = Bundle::new();
    b.put("models/item.json", crate::migrate::ITEM_MODEL)
        .json("1.0.0/meta.json", meta(json!([entry("item", "default/item.json")])))
        .json("1.0.0/default/item.json", items(all, 1))
        .json(
            "1.1.0/meta.json",
            meta(json!([
                entry_with("item", "default/u1.json", json!({"mode": "update"})),
                entry_with("item", "default/u2.json", json!({"mode": "update"}))
            ])),
        )
        .json("1.1.0/default/u1.json", items(REWRITTEN, 2))
        .json("1.1.0/default/u2.json", items(REWRITTEN, 3))
        .json(
            "2.0.0/meta.json",
            meta(json!([entry_with("item", "default/s.json", json!({"mode": "sync"}))])),
        )
        .json("2.0.0/default/s.json", items(REWRITTEN, 3));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |_| {}).await;
        let r = run_ok(&db, &b, |o| {
            o.force = true;
            o.from = Some(Version::new(1, 0, 0));
            o.to = Some(Version::new(1, 0, 0));
        })
        .await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}");
        let w: Vec<&String> = r
            .warnings
            .iter()
            .filter(|w| w.contains("re-applied over later"))
            .collect();
        assert_eq!(w.len(), 1, "{engine}: {:?}", r.warnings);
        // Each row once per version, though 1.1.0 has two images of each.
        assert!(
            w[0].contains(&format!("1.1.0: rewrote {REWRITTEN} row(s) it changed, e.g. item "))
                && w[0].contains(&format!(
                    "2.0.0: re-inserted {RESURRECTED} row(s) it deleted, e.g. item "
                ))
                && w[0].contains("re-apply 1.1.0, 2.0.0 with --force --from 1.1.0"),
            "{engine}: {}",
            w[0]
        );
        assert!(!w[0].contains("2.0.0: rewrote"), "{engine}: {}", w[0]);
        // What the comparison read, a page at a time: 1.0.0's images (its first load,
        // three ledger rows of up to 10,000 inserted keys, then the re-apply's 20,000
        // updates and 2,500 inserts) and the later versions' 42,500, no page over
        // IMAGE_PAGE images however many keys one ledger row holds.
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        for (list, images) in [
            (vec!["1.0.0"], 2 * all),
            (vec!["1.1.0", "2.0.0"], 2 * REWRITTEN + RESURRECTED),
        ] {
            let list: Vec<String> = list.into_iter().map(String::from).collect();
            let mut pages = ImagePages::new("./", &list, 0, IMAGE_PAGE).without_fingerprints();
            let (mut read, mut largest) = (0, 0);
            while let Some(page) = pages.next_page(ledger.conn()).await.unwrap() {
                largest = largest.max(page.len());
                read += page.len();
            }
            assert_eq!(read, images, "{engine}: {list:?}");
            assert_eq!(largest, IMAGE_PAGE, "{engine}: {list:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcing_an_older_version_names_the_later_versions_in_semver_order() {
    // 1.9.0 and 1.10.0 each change a row 1.0.0 wrote: as text 1.10.0 sorts first,
    // and `--force --from 1.10.0` would have skipped 1.9.0.
    let b = item_bundle();
    b.json(
        "1.9.0/meta.json",
        meta(json!([entry_with("item", "default/u.json", json!({"mode": "update"}))])),
    )
    .json("1.9.0/default/u.json", json!([{"id": 2, "qty": 29}]))
    .json(
        "1.10.0/meta.json",
        meta(json!([entry_with("item", "default/u.json", json!({"mode": "update"}))])),
    )
    .json("1.10.0/default/u.json", json!([{"id": 3, "qty": 310}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "1.9.0", "1.10.0"]),
            "{engine}"
        );
        let r = run_ok(&db, &b, |o| {
            o.force = true;
            o.from = Some(Version::new(1, 0, 0));
            o.to = Some(Version::new(1, 0, 0));
        })
        .await;
        let w: Vec<&String> = r
            .warnings
            .iter()
            .filter(|w| w.contains("re-applied over later"))
            .collect();
        assert_eq!(w.len(), 1, "{engine}: {:?}", r.warnings);
        assert!(
            w[0].contains("(1.9.0: rewrote 1 row(s) it changed, e.g. item {\"id\":2}; 1.10.0: rewrote 1 row(s)")
                && w[0].contains("re-apply 1.9.0, 1.10.0 with --force --from 1.9.0 "),
            "{engine}: {}",
            w[0]
        );
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&crate::migrate::BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_later_than_to_is_refused_and_a_rollback_with_nothing_to_do_succeeds() {
    let b = three_versions();
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let e = run(&db, &b, |o| {
            o.from = Some(Version::new(2, 0, 0));
            o.to = Some(Version::new(1, 0, 0));
        })
        .await
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            e.to_string().contains("--from 2.0.0 is later than --to 1.0.0"),
            "{engine}: {e}"
        );
        assert_eq!(snapshot(&db, &["item"]).await.version, None, "{engine}");

        run_ok(&db, &b, |_| {}).await;
        let before = snapshot(&db, &["item", "tag"]).await;
        for to in [Version::new(2, 0, 0), Version::new(3, 0, 0)] {
            let r = lockgate::rollback(
                &db.url,
                &RollbackOptions {
                    to,
                    ..RollbackOptions::default()
                },
            )
            .await
            .unwrap();
            assert!(r.versions.is_empty() && !r.committed, "{engine}: {r:#?}");
            assert_eq!(r.exit_code(), 0, "{engine}");
            assert_eq!(r.to_version, "2.0.0", "{engine}");
        }
        assert_eq!(snapshot(&db, &["item", "tag"]).await, before, "{engine}");
        assert_eq!(before.table("tag"), strings(&["1|red", "2|blue"]), "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_record_of_a_compact_array_is_logged_with_its_own_data() {
    // One line, five records: the second and fourth fail (name is required).
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([entry("item", "default/c.json")])))
        .put(
            "2.0.0/default/c.json",
            r#"[{"id": 10, "name": "j"}, {"id": 11, "qty": 1}, {"id": 12, "name": "l"}, {"id": 13, "name": null, "qty": 3}, {"id": 14, "name": "n"}]"#,
        );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.failed_version.as_deref(), Some("2.0.0"), "{engine}: {r:#?}");
        let mut data: Vec<String> = r.versions[1]
            .failures
            .iter()
            .map(|f| f.data.as_ref().map(|d| d.to_string()).unwrap_or_default())
            .collect();
        data.sort();
        assert_eq!(
            data,
            [r#"{"id":11,"qty":1}"#, r#"{"id":13,"name":null,"qty":3}"#],
            "{engine}: {:#?}",
            r.versions[1].failures
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_property_names_the_file_and_the_line_of_its_record() {
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([entry("item", "default/p.json")])))
        .put(
            "2.0.0/default/p.json",
            "[\n  {\"id\": 20, \"name\": \"t\"},\n  {\"id\": 21, \"name\": \"u\"},\n  {\"id\": 22, \"name\": \"v\", \"colour\": \"red\"}\n]\n",
        )
        .json("2.1.0/meta.json", meta(json!([entry("item", "default/p.csv")])))
        .put("2.1.0/default/p.csv", "id,name,size\n30,w,1\n");
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("p.json:4: column \"colour\""), "{engine}: {msg}");
        b.put("2.0.0/default/p.json", "[{\"id\": 20, \"name\": \"t\"}]");
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("p.csv:1: column \"size\""), "{engine}: {e}");
        b.put(
            "2.0.0/default/p.json",
            "[\n  {\"id\": 20, \"name\": \"t\"},\n  {\"id\": 21, \"name\": \"u\"},\n  {\"id\": 22, \"name\": \"v\", \"colour\": \"red\"}\n]\n",
        );
        assert_eq!(
            snapshot(&db, &["item"]).await.version.as_deref(),
            Some("2.0.0"),
            "{engine}"
        );
    }
}
