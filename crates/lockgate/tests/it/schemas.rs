//! Names that point at another schema (PostgreSQL) or database (MariaDB):
//! `other.customers` is that table on every command (load, inspect, transfer source
//! and destination, a migration model whose `table` names it, dump), never the
//! table of the same name in the connection's own schema or database.

use crate::support::{rows, temp_file, TestDb};
use lockgate::transfer::{self, CreateOptions, RunOptions, Transfer, TransferSpec};
use lockgate::{Config, DumpOptions, LoadOptions, MigrateOptions};
use lockgate_db::{Conn, Engine};

/// The schema (PostgreSQL) or database (MariaDB) `other`, with a `customers` and a
/// `copies` table there and a decoy `customers` in the connection's own.
async fn setup(engine: Engine) -> (TestDb, Option<TestDb>, String) {
    let own = TestDb::new(engine).await;
    let table = "(id int PRIMARY KEY, name varchar(20))";
    let (other_db, other) = match engine {
        Engine::Mysql => {
            let other = TestDb::new(engine).await;
            let name = other.url.database().unwrap();
            (Some(other), name)
        }
        _ => {
            own.conn().await.batch("CREATE SCHEMA other").await.unwrap();
            (None, "other".to_string())
        }
    };
    let mut conn = own.conn().await;
    conn.batch(&format!(
        "CREATE TABLE {other}.customers {table}; CREATE TABLE {other}.copies {table}; CREATE TABLE customers {table}"
    ))
    .await
    .unwrap();
    (own, other_db, other)
}

async fn all(conn: &mut Conn, table: &str) -> Vec<String> {
    rows(conn, &format!("SELECT id, name FROM {table} ORDER BY id")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_honours_the_schema_of_a_table_name() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let (own, _other_db, other) = setup(engine).await;
        let mut conn = own.conn().await;
        let qualified = format!("{other}.customers");

        // load
        let (_dir, csv) = temp_file("c.csv", b"id,name\n1,a\n2,b\n");
        let r = lockgate::load(
            &own.url,
            &LoadOptions {
                table: qualified.clone(),
                files: vec![csv],
                ..LoadOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        assert!(r.committed && r.inserted == 2, "{engine}: {r:?}");
        assert_eq!(all(&mut conn, &qualified).await, ["1|a", "2|b"], "{engine}");
        assert!(
            all(&mut conn, "customers").await.is_empty(),
            "{engine}: the decoy was written"
        );

        // inspect
        let t = lockgate::inspect::inspect(&own.url, Some(&qualified)).await.unwrap();
        assert_eq!(t[0].name.to_string(), qualified, "{engine}");

        // transfer: source and destination in the other schema
        let spec = TransferSpec {
            source: Some(own.url.as_str().to_string()),
            source_table: Some(qualified.clone()),
            dest: Some(own.url.as_str().to_string()),
            dest_table: Some(format!("{other}.copies")),
            ..TransferSpec::default()
        };
        let t: Transfer = Transfer::resolve("copy", &Config::default(), spec).unwrap();
        let created = transfer::create(&t, &CreateOptions::default()).await.unwrap();
        assert_eq!(created.available, 2, "{engine}");
        let run = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(run.exports.len(), 1, "{engine}");
        assert_eq!(
            all(&mut conn, &format!("{other}.copies")).await,
            ["1|a", "2|b"],
            "{engine}"
        );
        assert!(
            conn.lookup_table("copies").await.unwrap().is_none(),
            "{engine}: no copies table in the own schema"
        );

        // migrate: a model whose table is in the other schema
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("1.0.0");
        std::fs::create_dir_all(v.join("default")).unwrap();
        std::fs::create_dir_all(v.join("ddl")).unwrap();
        // (meta.json names a model by its table, as dump writes it.)
        std::fs::write(
            v.join("meta.json"),
            format!(r#"{{"files": [{{"model": "{other}.widgets", "file": "default/Widget.json"}}]}}"#),
        )
        .unwrap();
        std::fs::write(
            v.join("ddl/Widget.json"),
            format!(
                r#"{{"name": "Widget", "table": "{other}.widgets", "properties": {{"id": {{"type": "integer", "id": true}}, "label": {{"type": "string", "max": 20}}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            v.join("default/Widget.json"),
            r#"[{"id": 1, "label": "w1"}, {"id": 2, "label": "w2"}]"#,
        )
        .unwrap();
        let m = lockgate::migrate(
            &own.url,
            &MigrateOptions {
                dir: dir.path().to_path_buf(),
                ..MigrateOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            m.migrated_versions.as_deref(),
            Some(&["1.0.0".to_string()][..]),
            "{engine}"
        );
        assert_eq!(
            rows(&mut conn, &format!("SELECT id, label FROM {other}.widgets ORDER BY id")).await,
            ["1|w1", "2|w2"],
            "{engine}"
        );
        assert!(conn.lookup_table("widgets").await.unwrap().is_none(), "{engine}");

        // dump
        let out = tempfile::tempdir().unwrap();
        let d = lockgate::dump(
            &own.url,
            &DumpOptions {
                tables: vec![qualified.clone()],
                out: out.path().to_path_buf(),
                ..DumpOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(d.tables.len(), 1, "{engine}");
        assert_eq!(
            (d.tables[0].table.as_str(), d.tables[0].rows),
            (qualified.as_str(), 2),
            "{engine}"
        );
        let dumped = std::fs::read_to_string(std::path::Path::new(&d.out).join(&d.tables[0].file)).unwrap();
        assert!(
            dumped.contains("\"a\"") && dumped.contains("\"b\""),
            "{engine}: {dumped}"
        );
    }
}
