//! `dump` then `migrate`: the sample `examples/db` migrated into each engine, dumped
//! as a version folder, and migrated into an empty database of the same engine and of
//! another one gives the same rows (each row's values read with its columns' kinds and
//! compared as text that keeps a decimal's scale, trailing spaces and fractions of a
//! second): tables without a primary key (loaded as inserts, emptied by clearTables
//! on a re-run, with every table that references them, children first), unique
//! indexes and current-time defaults in `ddl/`, and JSON nulls (a warning; back as
//! SQL NULL).

use crate::support::*;
use lockgate::{DumpOptions, MigrateOptions};
use lockgate_core::Value;
use lockgate_db::{Conn, Engine};
use std::path::Path;

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/db")
}

/// Each row of `table`, its values read with the columns' kinds, as text that keeps
/// what a dump could change: a decimal's digits and scale (`1000.50`, not `1000.5`),
/// text exactly (quoted, trailing spaces kept; NULL apart from the text `NULL`),
/// fractions of a second to the nanosecond. An instant is written as its UTC time, as
/// a timestamp is: the dump makes every timestamp an instant read as UTC (dump.rs).
/// Sorted, since engines order text keys by their own collations.
async fn rows_of(conn: &mut Conn, table: &str) -> Vec<String> {
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
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    Value::Text(s) => format!("{s:?}"),
                    Value::TimestampTz(t) => Value::Timestamp(t.naive_utc()).to_string(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
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
                    rows_of(&mut a, table).await,
                    rows_of(&mut b, table).await,
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

/// A dump of every table (`page` rows a page) of `source` into a fresh folder.
async fn dump_all(source: &TestDb, page: usize) -> (tempfile::TempDir, std::path::PathBuf, lockgate::DumpReport) {
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("db");
    let d = lockgate::dump(
        &source.url,
        &DumpOptions {
            all: true,
            out: folder.clone(),
            page,
            ..DumpOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}: dump failed: {e}", source.url.engine));
    (out, folder, d)
}

/// Migrates the folder `dir` into `db` (`force` re-applies its versions).
async fn migrate_folder(db: &TestDb, dir: &Path, force: bool) -> lockgate::MigrateReport {
    lockgate::migrate(
        &db.url,
        &MigrateOptions {
            dir: dir.to_path_buf(),
            force,
            ..MigrateOptions::default()
        },
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{}: migrate of {} failed: {e}", db.url.engine, dir.display()))
}

/// The JSON file at `path`.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `engine` itself and the next one in ENGINES' order (so every pair of engines meets).
fn targets(engine: Engine) -> [Engine; 2] {
    let i = ENGINES.iter().position(|e| *e == engine).unwrap();
    [engine, ENGINES[(i + 1) % ENGINES.len()]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_without_a_primary_key_are_dumped_loaded_as_inserts_and_cleared_on_a_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("db");
    // `note` is made by migrate from a model with idInjection off: no key, no id.
    std::fs::create_dir_all(bundle.join("1.0.0/ddl")).unwrap();
    std::fs::create_dir_all(bundle.join("1.0.0/default")).unwrap();
    std::fs::write(
        bundle.join("1.0.0/ddl/note.json"),
        r#"{"name": "note", "idInjection": false, "properties": {"body": {"type": "string", "max": 50}, "n": "integer"}}"#,
    )
    .unwrap();
    std::fs::write(
        bundle.join("1.0.0/meta.json"),
        r#"{"files": [{"model": "note", "file": "default/note.json"}]}"#,
    )
    .unwrap();
    // Two identical rows: a keyless table may hold them, and a copy must too.
    std::fs::write(
        bundle.join("1.0.0/default/note.json"),
        r#"[{"body": "a", "n": 1}, {"body": "b", "n": 2}, {"body": "b", "n": 2}, {"body": null, "n": 4}, {"body": "e", "n": null}]"#,
    )
    .unwrap();
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        migrate_folder(&source, &bundle, false).await;
        {
            let mut conn = source.conn().await;
            conn.batch("CREATE TABLE loose (word varchar(20), qty integer)")
                .await
                .unwrap();
            conn.batch("INSERT INTO loose (word, qty) VALUES ('x', 1), ('x', 1), ('y', NULL)")
                .await
                .unwrap();
            let note = conn.find_table("note").await.unwrap();
            assert!(
                note.primary_key.is_empty() && note.column("id").is_none(),
                "{engine}: {note:?}"
            );
        }
        // Pages of 2 rows: several pages per table.
        let (_out, folder, d) = dump_all(&source, 2).await;
        let of = |name: &str| {
            d.tables
                .iter()
                .find(|t| t.table == name)
                .unwrap_or_else(|| panic!("{engine}: {d:?}"))
        };
        assert_eq!((of("note").rows, of("note").keyless), (5, true), "{engine}");
        assert_eq!((of("loose").rows, of("loose").keyless), (3, true), "{engine}");
        assert!(d.warnings.is_empty(), "{engine}: {:?}", d.warnings);
        let vdir = folder.join(&d.version);
        let meta = read_json(&vdir.join("meta.json"));
        let mut cleared: Vec<String> = serde_json::from_value(meta["clearTables"].clone()).unwrap();
        cleared.sort();
        assert_eq!(cleared, ["loose", "note"], "{engine}: {meta}");
        for f in meta["files"].as_array().unwrap() {
            assert!(f.get("key").is_none(), "{engine}: {f}");
        }
        let model = read_json(&vdir.join("ddl/note.json"));
        assert_eq!(model["idInjection"], false, "{engine}: {model}");

        for target in targets(engine) {
            let copy = TestDb::new(target).await;
            let r = migrate_folder(&copy, &folder, false).await;
            assert_eq!(
                r.migrated_versions,
                Some(vec![d.version.clone()]),
                "{engine} -> {target}"
            );
            let (mut a, mut b) = (source.conn().await, copy.conn().await);
            for table in ["note", "loose"] {
                let t = b.find_table(table).await.unwrap();
                assert!(
                    t.primary_key.is_empty() && t.column("id").is_none(),
                    "{engine} -> {target}: {t:?}"
                );
                let want = rows_of(&mut a, table).await;
                assert_eq!(want.len(), if table == "note" { 5 } else { 3 }, "{engine}");
                assert_eq!(want, rows_of(&mut b, table).await, "{engine} -> {target}: {table}");
            }
            // Applied again (--force): clearTables empties the tables first, so the
            // inserts do not add the rows a second time.
            let again = migrate_folder(&copy, &folder, true).await;
            assert_eq!(
                again.migrated_versions,
                Some(vec![d.version.clone()]),
                "{engine} -> {target}"
            );
            for table in ["note", "loose"] {
                assert_eq!(
                    rows_of(&mut a, table).await,
                    rows_of(&mut b, table).await,
                    "{engine} -> {target}: {table} after --force"
                );
            }
            // Neither table has a key to image rows by: the dump's version is one a
            // rollback refuses to undo, naming them, unless --ignore-scripts.
            let e = lockgate::rollback(
                &copy.url,
                &lockgate::RollbackOptions {
                    to: lockgate_bundle::Version::new(0, 0, 0),
                    ..lockgate::RollbackOptions::default()
                },
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("table note") && e.contains("table loose") && e.contains("--ignore-scripts"),
                "{engine} -> {target}: {e}"
            );
        }
        // And into the database it came from (the next version there): the same rows.
        let before_note = rows_of(&mut source.conn().await, "note").await;
        let r = migrate_folder(&source, &folder, false).await;
        assert_eq!(r.migrated_versions, Some(vec![d.version.clone()]), "{engine}");
        assert_eq!(rows_of(&mut source.conn().await, "note").await, before_note, "{engine}");
        assert_eq!(count(&mut source.conn().await, "loose").await, 3, "{engine}");
    }
}

/// A table with unique constraints (one column, two columns) and columns whose
/// default is the current date or time, per engine.
fn account_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE account (id integer PRIMARY KEY, email varchar(100) NOT NULL UNIQUE, \
             region varchar(10), code varchar(10), created timestamptz DEFAULT now(), \
             stamp timestamp DEFAULT CURRENT_TIMESTAMP, born date DEFAULT CURRENT_DATE, \
             status varchar(10) DEFAULT 'new'); \
             CREATE UNIQUE INDEX account_region_code ON account (region, code)"
        }
        Engine::Mysql => {
            "CREATE TABLE account (id integer PRIMARY KEY, email varchar(100) NOT NULL UNIQUE, \
             region varchar(10), code varchar(10), created datetime(6) DEFAULT current_timestamp(6), \
             stamp datetime DEFAULT CURRENT_TIMESTAMP, born date DEFAULT (curdate()), \
             status varchar(10) DEFAULT 'new') ENGINE=InnoDB; \
             CREATE UNIQUE INDEX account_region_code ON account (region, code)"
        }
        Engine::Sqlite => {
            "CREATE TABLE account (id INTEGER PRIMARY KEY, email varchar(100) NOT NULL UNIQUE, \
             region varchar(10), code varchar(10), created TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             stamp DATETIME DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')), born DATE DEFAULT CURRENT_DATE, \
             status varchar(10) DEFAULT 'new'); \
             CREATE UNIQUE INDEX account_region_code ON account (region, code)"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_indexes_and_now_defaults_come_back_on_every_engine() {
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        {
            let mut conn = source.conn().await;
            conn.batch(account_schema(engine)).await.unwrap();
            conn.batch("INSERT INTO account (id, email, region, code) VALUES (1, 'a@x', 'eu', 'A')")
                .await
                .unwrap();
        }
        let (_out, folder, d) = dump_all(&source, 100).await;
        assert!(d.warnings.is_empty(), "{engine}: {:?}", d.warnings);
        let model = read_json(&folder.join(&d.version).join("ddl/account.json"));
        let props = &model["properties"];
        assert_eq!(
            props["email"]["index"],
            serde_json::json!({"unique": true}),
            "{engine}: {model}"
        );
        for c in ["created", "stamp", "born"] {
            assert_eq!(props[c]["default"], "$now", "{engine}: {c}: {model}");
        }
        assert_eq!(props["status"]["default"], "new", "{engine}: {model}");
        let wide: Vec<&serde_json::Value> = model["indexes"].as_object().unwrap().values().collect();
        assert_eq!(
            wide,
            [&serde_json::json!({"columns": "region, code", "kind": "unique"})],
            "{engine}: {model}"
        );

        for target in ENGINES {
            let copy = TestDb::new(target).await;
            migrate_folder(&copy, &folder, false).await;
            let mut conn = copy.conn().await;
            let t = conn.find_table("account").await.unwrap();
            let keys = t.unique_keys();
            for want in [vec!["email".to_string()], vec!["region".into(), "code".into()]] {
                assert!(keys.contains(&want), "{engine} -> {target}: {want:?} in {keys:?}");
            }
            for c in ["created", "stamp", "born"] {
                assert!(
                    t.column(c).unwrap().default.is_some(),
                    "{engine} -> {target}: {c}: {t:?}"
                );
            }
            // A row that gives none of them gets the current date and time.
            conn.batch("INSERT INTO account (id, email, region, code) VALUES (2, 'b@x', 'eu', 'B')")
                .await
                .unwrap();
            let kinds: Vec<lockgate_core::Kind> = ["created", "stamp", "born", "status"]
                .iter()
                .map(|c| t.column(c).unwrap().kind.clone())
                .collect();
            let row = conn
                .query(
                    "SELECT created, stamp, born, status FROM account WHERE id = 2",
                    &[],
                    Some(&kinds),
                )
                .await
                .unwrap()
                .remove(0);
            let year = chrono::Datelike::year(&chrono::Utc::now()).to_string();
            for (c, v) in ["created", "stamp", "born"].iter().zip(&row) {
                assert!(
                    v.to_string().starts_with(&year),
                    "{engine} -> {target}: {c} is {v:?}, not the current time"
                );
            }
            assert_eq!(row[3].to_string(), "new", "{engine} -> {target}");
            // The unique indexes hold.
            for dup in [
                "INSERT INTO account (id, email) VALUES (3, 'a@x')",
                "INSERT INTO account (id, email, region, code) VALUES (4, 'c@x', 'eu', 'A')",
            ] {
                assert!(
                    conn.batch(dup).await.is_err(),
                    "{engine} -> {target}: {dup} was accepted"
                );
            }
        }
    }
}

/// A table whose JSON column holds an object, the JSON value null and SQL NULL.
fn doc_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "CREATE TABLE doc (id integer PRIMARY KEY, body jsonb)",
        Engine::Mysql => "CREATE TABLE doc (id integer PRIMARY KEY, body JSON)",
        Engine::Sqlite => "CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_null_is_named_in_a_warning_and_comes_back_as_sql_null() {
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        {
            let mut conn = source.conn().await;
            conn.batch(doc_schema(engine)).await.unwrap();
            conn.batch("INSERT INTO doc (id, body) VALUES (1, '{\"a\": null}'), (2, 'null'), (3, NULL), (4, 'null')")
                .await
                .unwrap();
        }
        let (_out, folder, d) = dump_all(&source, 100).await;
        assert_eq!(d.warnings.len(), 1, "{engine}: {:?}", d.warnings);
        let w = &d.warnings[0];
        assert!(
            w.contains("table doc, column body: 2 row(s) hold the JSON value null") && w.contains("SQL NULL"),
            "{engine}: {w}"
        );
        // The data file says null for both, as oe-migration would read it.
        let rows = read_json(&folder.join(&d.version).join("default/doc.json"));
        assert_eq!(
            rows,
            serde_json::json!([{"id": 1, "body": {"a": null}}, {"id": 2, "body": null}, {"id": 3, "body": null}, {"id": 4, "body": null}]),
            "{engine}"
        );
        let copy = TestDb::new(engine).await;
        migrate_folder(&copy, &folder, false).await;
        let mut conn = copy.conn().await;
        let got = typed_rows(
            &mut conn,
            "SELECT id, body FROM doc ORDER BY id",
            &[
                lockgate_core::Kind::Int {
                    bytes: 8,
                    unsigned: false,
                },
                lockgate_core::Kind::Json,
            ],
        )
        .await;
        // As the warning said: the JSON nulls are SQL NULL now; the object is whole.
        assert_eq!(got, ["1|{\"a\":null}", "2|NULL", "3|NULL", "4|NULL"], "{engine}");
    }
}

/// A keyless parent (`country`, whose unique NOT NULL `code` its children reference),
/// a keyed child (`city`), a grandchild (`street`) and an unrelated keyed table, with
/// their foreign keys: the same SQL on every engine.
const FAMILY: &str = "CREATE TABLE country (code varchar(2) NOT NULL UNIQUE, name varchar(20)); \
     CREATE TABLE city (id integer PRIMARY KEY, cc varchar(2), name varchar(20), \
       FOREIGN KEY (cc) REFERENCES country (code)); \
     CREATE TABLE street (id integer PRIMARY KEY, city_id integer, name varchar(20), \
       FOREIGN KEY (city_id) REFERENCES city (id)); \
     CREATE TABLE plain (id integer PRIMARY KEY, v varchar(5))";

const FAMILY_ROWS: &str = "INSERT INTO country (code, name) VALUES ('fr', 'France'), ('de', 'Germany'); \
     INSERT INTO city (id, cc, name) VALUES (1, 'fr', 'Paris'), (2, 'de', 'Berlin'), (3, NULL, 'Nowhere'); \
     INSERT INTO street (id, city_id, name) VALUES (10, 1, 'Rivoli'), (11, 2, 'Unter den Linden'); \
     INSERT INTO plain (id, v) VALUES (1, 'x')";

/// Every table of [`FAMILY`], as [`rows_of`] reads them.
async fn family_rows(db: &TestDb) -> Vec<Vec<String>> {
    let mut conn = db.conn().await;
    let mut out = Vec::new();
    for t in ["country", "city", "street", "plain"] {
        out.push(rows_of(&mut conn, t).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_referencing_a_keyless_table_are_cleared_first_so_a_dump_loads_again_on_every_engine() {
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        source.conn().await.batch(FAMILY).await.unwrap();
        source.conn().await.batch(FAMILY_ROWS).await.unwrap();
        let want = family_rows(&source).await;
        assert_eq!(want[1].len(), 3, "{engine}: {want:?}");

        let (_out, folder, d) = dump_all(&source, 1).await;
        assert!(d.warnings.is_empty(), "{engine}: {:?}", d.warnings);
        let meta = read_json(&folder.join(&d.version).join("meta.json"));
        // The keyless parent, and what references it (directly or not), children first.
        assert_eq!(
            meta["clearTables"],
            serde_json::json!(["street", "city", "country"]),
            "{engine}: {meta}"
        );
        let flags: Vec<(&str, bool, bool)> = d
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.keyless, t.cleared))
            .collect();
        for want_flag in [
            ("country", true, true),
            ("city", false, true),
            ("street", false, true),
            ("plain", false, false),
        ] {
            assert!(flags.contains(&want_flag), "{engine}: {want_flag:?} in {flags:?}");
        }

        // Into the database it came from (the next version there): the children go
        // before the parent, nothing fails on a foreign key, the rows are the same.
        let r = migrate_folder(&source, &folder, false).await;
        assert_eq!(r.migrated_versions, Some(vec![d.version.clone()]), "{engine}");
        assert_eq!(family_rows(&source).await, want, "{engine}: into its own database");

        // Into a copy of the schema (foreign keys included), then again with --force.
        for target in targets(engine) {
            let copy = TestDb::new(target).await;
            copy.conn().await.batch(FAMILY).await.unwrap();
            migrate_folder(&copy, &folder, false).await;
            assert_eq!(family_rows(&copy).await, want, "{engine} -> {target}");
            let again = migrate_folder(&copy, &folder, true).await;
            assert_eq!(
                again.migrated_versions,
                Some(vec![d.version.clone()]),
                "{engine} -> {target}"
            );
            assert_eq!(family_rows(&copy).await, want, "{engine} -> {target}: after --force");
            // The unrelated keyed table is upserted, not emptied: nothing changes in it.
            let plain: u64 = again.versions[0]
                .steps
                .iter()
                .filter(|s| s.table.as_deref() == Some("plain"))
                .map(|s| s.inserted + s.updated + s.deleted)
                .sum();
            assert_eq!(plain, 0, "{engine} -> {target}: {again:#?}");
        }

        // A dump leaving out a table that references a cleared one: a warning names it.
        let out = tempfile::tempdir().unwrap();
        let d = lockgate::dump(
            &source.url,
            &DumpOptions {
                tables: vec!["country".into(), "city".into(), "plain".into()],
                out: out.path().join("db"),
                ..DumpOptions::default()
            },
        )
        .await
        .unwrap();
        let named: Vec<&String> = d.warnings.iter().filter(|w| w.contains("table street")).collect();
        assert_eq!(named.len(), 1, "{engine}: {:?}", d.warnings);
        assert!(
            named[0].contains("references table city") && named[0].contains("not in the dump"),
            "{engine}: {}",
            named[0]
        );
    }
}

/// A table whose values a lossy comparison would not tell from changed ones: a
/// decimal's trailing zeros, text with trailing spaces, fractions of a second.
fn exact_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE exact (id integer PRIMARY KEY, amount numeric(12,3), label varchar(20), at timestamp(6))"
        }
        Engine::Mysql => {
            "CREATE TABLE exact (id integer PRIMARY KEY, amount decimal(12,3), label varchar(20), at datetime(6))"
        }
        Engine::Sqlite => {
            "CREATE TABLE exact (id INTEGER PRIMARY KEY, amount NUMERIC(12,3), label varchar(20), at TIMESTAMP)"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_keeps_decimal_scale_trailing_spaces_and_microseconds_on_every_engine() {
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        source.conn().await.batch(exact_schema(engine)).await.unwrap();
        source
            .conn()
            .await
            .batch(
                "INSERT INTO exact (id, amount, label, at) VALUES \
                 (1, 1000.500, 'a  ', '2024-01-02 03:04:05.123456'), \
                 (2, 0.001, ' b', '2024-01-02 03:04:05.000001'), \
                 (3, NULL, 'NULL', NULL)",
            )
            .await
            .unwrap();
        let want = rows_of(&mut source.conn().await, "exact").await;
        // What the comparison sees: the scale, the spaces, the microseconds.
        assert!(
            want.iter()
                .any(|r| r.contains("1000.500") && r.contains("\"a  \"") && r.contains("05.123456")),
            "{engine}: {want:?}"
        );
        let (_out, folder, _) = dump_all(&source, 2).await;
        for target in targets(engine) {
            let copy = TestDb::new(target).await;
            migrate_folder(&copy, &folder, false).await;
            assert_eq!(
                rows_of(&mut copy.conn().await, "exact").await,
                want,
                "{engine} -> {target}"
            );
        }
    }
}
