//! `dump` then `migrate`: the sample `examples/db` migrated into each engine, dumped
//! as a version folder, and migrated into an empty database of the same engine and of
//! another one gives the same rows (compared by each row's normalized fingerprint, so
//! that `1000` and `1000.00` are the same value).

use crate::support::*;
use lockgate::{DumpOptions, MigrateOptions};
use lockgate_db::{Conn, Engine};
use std::path::Path;

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/db")
}

/// Each row's fingerprint, sorted (engines order text keys by their own collations).
async fn prints(conn: &mut Conn, table: &str) -> Vec<String> {
    let t = conn.find_table(table).await.unwrap();
    let d = conn.dialect();
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<lockgate_core::Kind> = t.columns.iter().map(|c| c.kind.clone()).collect();
    let sql = format!("SELECT {} FROM {}", d.columns(None, &columns), d.table(&t.name));
    let mut out: Vec<String> = conn
        .query(&sql, &[], Some(&kinds))
        .await
        .unwrap()
        .iter()
        .map(|r| lockgate_core::fingerprint(r))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_migrates_back_into_an_empty_database_of_any_engine() {
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        let opts = MigrateOptions {
            dir: sample(),
            ..MigrateOptions::default()
        };
        let r = lockgate::migrate(&source.url, &opts, None).await.unwrap();
        assert_eq!(r.new_version.as_deref(), Some("2.0.0"), "{engine}");
        let out = tempfile::tempdir().unwrap();
        let folder = out.path().join("db");
        let d = lockgate::dump(
            &source.url,
            &DumpOptions {
                all: true,
                exclude_system: true,
                out: folder.clone(),
                ..DumpOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(d.version, "2.0.1", "{engine}: the version after the database's");
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        assert_eq!(rows, 3 + 5, "{engine}: {d:?}");
        let other = if engine == Engine::Sqlite {
            Engine::Postgres
        } else {
            Engine::Sqlite
        };
        for target in [engine, other] {
            let copy = TestDb::new(target).await;
            let r = lockgate::migrate(
                &copy.url,
                &MigrateOptions {
                    dir: folder.clone(),
                    ..MigrateOptions::default()
                },
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{engine} -> {target}: {e}"));
            assert_eq!(
                r.migrated_versions,
                Some(vec!["2.0.1".to_string()]),
                "{engine} -> {target}"
            );
            let (mut a, mut b) = (source.conn().await, copy.conn().await);
            for table in ["customer", "currency"] {
                assert_eq!(
                    prints(&mut a, table).await,
                    prints(&mut b, table).await,
                    "{engine} -> {target}: {table}"
                );
            }
        }
        // The dump applied to its own database changes nothing.
        let again = lockgate::migrate(
            &source.url,
            &MigrateOptions {
                dir: folder.clone(),
                ..MigrateOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        let changed: u64 = again.versions[0]
            .steps
            .iter()
            .map(|s| s.inserted + s.updated + s.deleted)
            .sum();
        assert_eq!(changed, 0, "{engine}: {again:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_on_a_fresh_database_leaves_it_empty_ledger_included() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let opts = MigrateOptions {
            dir: sample(),
            dry_run: true,
            ..MigrateOptions::default()
        };
        let r = lockgate::migrate(&db.url, &opts, None).await.unwrap();
        assert_eq!(
            r.migrated_versions,
            Some(vec!["1.0.0".to_string(), "1.1.0".to_string(), "2.0.0".to_string()]),
            "{engine}"
        );
        let tables = db.conn().await.list_tables().await.unwrap();
        assert!(tables.is_empty(), "{engine}: a dry run created {tables:?}");
    }
}
