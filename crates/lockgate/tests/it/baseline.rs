//! `baseline`, the seed's post-release routine, on every engine: a database migrated
//! through 1.0.0..1.2.0 (plus a row only production has) is baselined at 1.2.0; a
//! fresh database migrated from the folder starts at the baseline (the older versions
//! reported as skipped) and ends with the same rows, newer versions included; the
//! original database sees nothing to do and no drift; `--prune` removes the folders
//! before the baseline and a fresh deployment still works; `--dry-run` writes nothing;
//! a database below a baseline records it without its data, or is refused when that
//! would lose changes; and the bad inputs are refused before anything is written.

use crate::support::*;
use lockgate::migrate::VersionStatus;
use lockgate::{BaselineError, BaselineOptions, MigrateOptions};
use lockgate_bundle::Version;
use lockgate_db::Engine;
use std::path::{Path, PathBuf};

/// Writes `text` to `dir/rel`, creating its folders.
fn put(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A db/ folder with three versions: `item` from models/, `tag` from 1.1.0's ddl/
/// (with a unique name), rows added and changed by each version.
fn versions_folder(dir: &Path) {
    put(
        dir,
        "models/item.json",
        r#"{"name": "item", "properties": {"code": {"type": "string", "id": true, "max": 20}, "label": {"type": "string", "max": 50}, "price": {"type": "number", "precision": 10, "scale": 2}}}"#,
    );
    put(
        dir,
        "1.0.0/meta.json",
        r#"{"files": [{"model": "item", "file": "default/item.json"}]}"#,
    );
    put(
        dir,
        "1.0.0/default/item.json",
        r#"[{"code": "a", "label": "first", "price": 1.50}, {"code": "b", "label": "second", "price": 2}]"#,
    );
    put(
        dir,
        "1.1.0/meta.json",
        r#"{"files": [{"model": "tag", "file": "default/tag.json"}, {"model": "item", "file": "default/item.json"}]}"#,
    );
    put(
        dir,
        "1.1.0/ddl/tag.json",
        r#"{"name": "tag", "properties": {"id": {"type": "integer", "id": true}, "name": {"type": "string", "max": 30, "required": true, "index": {"unique": true}}}}"#,
    );
    put(
        dir,
        "1.1.0/default/tag.json",
        r#"[{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]"#,
    );
    put(
        dir,
        "1.1.0/default/item.json",
        r#"[{"code": "b", "label": "second, renamed"}]"#,
    );
    put(
        dir,
        "1.2.0/meta.json",
        r#"{"files": [{"model": "item", "file": "default/item.json"}, {"model": "tag", "file": "default/tag.json"}]}"#,
    );
    put(
        dir,
        "1.2.0/default/item.json",
        r#"[{"code": "c", "label": "third", "price": 3.25}]"#,
    );
    put(dir, "1.2.0/default/tag.json", r#"[{"id": 3, "name": "green"}]"#);
}

/// The version after the baseline, written once it is in place.
fn newer_version(dir: &Path) {
    put(
        dir,
        "1.3.0/meta.json",
        r#"{"files": [{"model": "item", "file": "default/item.json"}]}"#,
    );
    put(
        dir,
        "1.3.0/default/item.json",
        r#"[{"code": "d", "label": "fourth"}, {"code": "a", "label": "first, renamed"}]"#,
    );
}

async fn migrate(db: &TestDb, dir: &Path, to: Option<&str>) -> lockgate::MigrateReport {
    let opts = MigrateOptions {
        dir: dir.to_path_buf(),
        to: to.map(|v| v.parse().unwrap()),
        ..MigrateOptions::default()
    };
    lockgate::migrate(&db.url, &opts, None)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.url.engine))
}

async fn baseline(
    db: &TestDb,
    dir: &Path,
    tweak: impl FnOnce(&mut BaselineOptions),
) -> Result<lockgate::BaselineReport, BaselineError> {
    let mut opts = BaselineOptions {
        dir: dir.to_path_buf(),
        ..BaselineOptions::default()
    };
    tweak(&mut opts);
    lockgate::baseline(&db.url, &opts).await
}

/// The rows of the managed tables, typed, in key order.
async fn state(db: &TestDb) -> Vec<Option<Vec<String>>> {
    let mut conn = db.conn().await;
    vec![table_rows(&mut conn, "item").await, table_rows(&mut conn, "tag").await]
}

/// Every file under `dir` with its content, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn statuses(r: &lockgate::MigrateReport) -> Vec<(String, VersionStatus)> {
    r.versions.iter().map(|v| (v.version.clone(), v.status)).collect()
}

fn v(s: &str) -> (String, VersionStatus) {
    let (version, status) = s.split_once(' ').unwrap();
    let status = match status {
        "skipped" => VersionStatus::Skipped,
        "applied" => VersionStatus::Applied,
        "recorded" => VersionStatus::Recorded,
        other => panic!("{other}"),
    };
    (version.to_string(), status)
}

fn strings(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| s.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_starts_new_deployments_leaves_production_alone_and_prunes() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        versions_folder(&dir);
        let prod = TestDb::new(engine).await;
        migrate(&prod, &dir, None).await;
        // A row only production has: the baseline carries it, the versions do not.
        prod.conn()
            .await
            .batch("INSERT INTO item (code, label, price) VALUES ('p', 'from production', 9.99)")
            .await
            .unwrap();

        // (d) A dry run writes nothing and says what would be written and pruned.
        let before = snapshot(&dir);
        let dry = baseline(&prod, &dir, |o| {
            o.prune = true;
            o.dry_run = true;
        })
        .await
        .unwrap();
        assert_eq!(snapshot(&dir), before, "{engine}: a dry run wrote");
        assert_eq!(dry.version, "1.2.0", "{engine}: the database's version");
        assert!(dry.replaced, "{engine}: {dry:?}");
        assert_eq!(dry.tables, ["item", "tag"], "{engine}: {dry:?}");
        assert!(dry.written.is_empty(), "{engine}");
        let pruned: Vec<String> = dry
            .pruned
            .iter()
            .map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(pruned, ["1.0.0", "1.1.0"], "{engine}");
        // --prune without --yes: the list, exit 2, nothing written.
        let e = baseline(&prod, &dir, |o| o.prune = true).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            matches!(&e, BaselineError::Confirm { folders } if folders.len() == 2),
            "{engine}: {e}"
        );
        assert!(e.to_string().contains("--yes"), "{e}");
        assert_eq!(snapshot(&dir), before, "{engine}: a refused prune wrote");

        // The baseline takes the place of 1.2.0's folder.
        let r = baseline(&prod, &dir, |_| {}).await.unwrap();
        assert!(r.replaced && !r.rewritten, "{engine}: {r:?}");
        assert_eq!(r.covers, ["1.0.0", "1.1.0", "1.2.0"], "{engine}");
        assert_eq!(r.written.iter().map(|t| t.rows).sum::<u64>(), 4 + 3, "{engine}: {r:?}");
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("1.2.0/meta.json")).unwrap()).unwrap();
        assert_eq!(
            meta["baseline"]["covers"],
            serde_json::json!(["1.0.0", "1.1.0", "1.2.0"]),
            "{meta}"
        );
        assert!(meta["baseline"]["replaces"].is_string(), "{meta}");
        assert!(dir.join("1.2.0/ddl/tag.json").is_file() && dir.join("1.2.0/default/item.json").is_file());
        assert!(
            std::fs::read_dir(&dir).unwrap().count() == 4,
            "{engine}: only the versions and models/ (no staging left): {:?}",
            std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
        );

        // (b) Production: nothing to do, and no drift (1.2.0's folder changed by design).
        let again = migrate(&prod, &dir, None).await;
        assert!(again.versions.is_empty(), "{engine}: {again:#?}");
        assert!(again.warnings.is_empty(), "{engine}: {:?}", again.warnings);

        // (a) A new deployment starts at the baseline: the rows of production.
        let fresh = TestDb::new(engine).await;
        let r = migrate(&fresh, &dir, None).await;
        assert_eq!(
            statuses(&r),
            [v("1.0.0 skipped"), v("1.1.0 skipped"), v("1.2.0 applied")],
            "{engine}"
        );
        assert_eq!(r.migrated_versions, strings(&["1.2.0"]), "{engine}");
        assert!(r.warnings.is_empty(), "{engine}: {:?}", r.warnings);
        assert_eq!(state(&fresh).await, state(&prod).await, "{engine}");
        let st = lockgate::status(
            &fresh.url,
            &lockgate::StatusOptions {
                dir: Some(dir.clone()),
                ..lockgate::StatusOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(st.drift.is_empty() && st.pending.is_empty(), "{engine}: {st:?}");
        // A fresh status sees only the baseline pending.
        let empty = TestDb::new(engine).await;
        drop(empty.conn().await);
        let st = lockgate::status(
            &empty.url,
            &lockgate::StatusOptions {
                dir: Some(dir.clone()),
                ..lockgate::StatusOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(st.pending, ["1.2.0"], "{engine}");

        // (c) Prune (the baseline written again, with --force): 1.0.0 and 1.1.0 go.
        let r = baseline(&prod, &dir, |o| {
            o.prune = true;
            o.yes = true;
            o.force = true;
        })
        .await
        .unwrap();
        assert!(r.rewritten && !r.replaced, "{engine}: {r:?}");
        assert_eq!(r.covers, ["1.0.0", "1.1.0", "1.2.0"], "{engine}: kept");
        assert!(!dir.join("1.0.0").exists() && !dir.join("1.1.0").exists(), "{engine}");
        assert!(dir.join("models").is_dir(), "{engine}: models/ stays");
        newer_version(&dir);
        let r = migrate(&prod, &dir, None).await;
        assert_eq!(r.migrated_versions, strings(&["1.3.0"]), "{engine}");
        assert!(
            r.warnings.is_empty(),
            "{engine}: pruned is not missing: {:?}",
            r.warnings
        );
        let fresh = TestDb::new(engine).await;
        let r = migrate(&fresh, &dir, None).await;
        assert_eq!(statuses(&r), [v("1.2.0 applied"), v("1.3.0 applied")], "{engine}");
        assert_eq!(state(&fresh).await, state(&prod).await, "{engine}");
        let mut conn = fresh.conn().await;
        assert_eq!(count(&mut conn, "item").await, 5, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_below_a_baseline_records_it_without_its_data_or_is_refused() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        versions_folder(&dir);
        let prod = TestDb::new(engine).await;
        migrate(&prod, &dir, None).await;
        prod.conn()
            .await
            .batch("INSERT INTO item (code, label) VALUES ('p', 'from production')")
            .await
            .unwrap();
        // A baseline after the database's version takes no folder's place.
        let r = baseline(&prod, &dir, |o| o.version = Some(Version::new(1, 2, 1)))
            .await
            .unwrap();
        assert!(!r.replaced, "{engine}: {r:?}");
        // A database at 1.1.0 runs 1.2.0, then records 1.2.1: production's row stays
        // production's.
        let old = TestDb::new(engine).await;
        migrate(&old, &dir, Some("1.1.0")).await;
        let r = migrate(&old, &dir, None).await;
        assert_eq!(statuses(&r), [v("1.2.0 applied"), v("1.2.1 recorded")], "{engine}");
        assert_eq!(r.new_version.as_deref(), Some("1.2.1"), "{engine}");
        assert!(
            r.versions[1].steps[0].note.as_deref().unwrap().contains("baseline"),
            "{r:?}"
        );
        let mut conn = old.conn().await;
        assert_eq!(count(&mut conn, "item").await, 3, "{engine}: no data loaded");
        assert!(migrate(&old, &dir, None).await.versions.is_empty(), "{engine}");

        // With 1.2.0 pruned, a database at 1.1.0 would miss it: refused.
        let stale = TestDb::new(engine).await;
        migrate(&stale, &dir, Some("1.1.0")).await;
        std::fs::remove_dir_all(dir.join("1.2.0")).unwrap();
        let e = lockgate::migrate(
            &stale.url,
            &MigrateOptions {
                dir: dir.clone(),
                ..MigrateOptions::default()
            },
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(e.to_string().contains("no longer holds 1.2.0"), "{engine}: {e}");

        // A baseline that took its version's folder cannot serve a database below it.
        let tmp2 = tempfile::tempdir().unwrap();
        let dir2 = tmp2.path().join("db");
        versions_folder(&dir2);
        let below = TestDb::new(engine).await;
        migrate(&below, &dir2, Some("1.1.0")).await;
        let prod2 = TestDb::new(engine).await;
        migrate(&prod2, &dir2, None).await;
        baseline(&prod2, &dir2, |_| {}).await.unwrap();
        let e = lockgate::migrate(
            &below.url,
            &MigrateOptions {
                dir: dir2.clone(),
                ..MigrateOptions::default()
            },
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            e.to_string().contains("took the place of version 1.2.0's own folder"),
            "{engine}: {e}"
        );
        let mut conn = below.conn().await;
        assert_eq!(count(&mut conn, "item").await, 2, "{engine}: nothing written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_written() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        versions_folder(&dir);
        let prod = TestDb::new(engine).await;
        migrate(&prod, &dir, None).await;
        let before = snapshot(&dir);
        let refused = |e: BaselineError, want: &str| {
            assert_eq!(e.exit_code(), 2, "{engine}: {e}");
            assert!(e.to_string().contains(want), "{engine}: {e}\nwant: {want}");
        };
        // An unknown table.
        let e = baseline(&prod, &dir, |o| o.tables = vec!["nope".into()])
            .await
            .unwrap_err();
        refused(e, "cannot baseline \"nope\"");
        // No version in the database and none given.
        let bare = TestDb::new(engine).await;
        bare.conn()
            .await
            .batch("CREATE TABLE item (code varchar(20) PRIMARY KEY)")
            .await
            .unwrap();
        let empty_dir = tmp.path().join("empty");
        std::fs::create_dir_all(&empty_dir).unwrap();
        let e = baseline(&bare, &empty_dir, |_| {}).await.unwrap_err();
        refused(e, "give the baseline's version with --version");
        // A version folder the database has not applied.
        newer_version(&dir);
        let before_newer = snapshot(&dir);
        let e = baseline(&prod, &dir, |o| o.version = Some(Version::new(1, 3, 0)))
            .await
            .unwrap_err();
        refused(e, "has not applied");
        // An older version than the database's.
        let e = baseline(&prod, &dir, |o| o.version = Some(Version::new(1, 1, 0)))
            .await
            .unwrap_err();
        refused(e, "the database is at version 1.2.0");
        assert_eq!(snapshot(&dir), before_newer, "{engine}");
        std::fs::remove_dir_all(dir.join("1.3.0")).unwrap();
        assert_eq!(snapshot(&dir), before, "{engine}");
        // An existing baseline, without --force.
        baseline(&prod, &dir, |_| {}).await.unwrap();
        let written = snapshot(&dir);
        let e = baseline(&prod, &dir, |_| {}).await.unwrap_err();
        refused(e, "is already a baseline: pass --force");
        assert_eq!(snapshot(&dir), written, "{engine}");
    }
}
