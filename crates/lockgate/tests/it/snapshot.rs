//! Snapshots and restores end to end: a table of every supported type round-trips on
//! every engine pair (compared value by value, by fingerprint); restore then
//! migrate continues from the snapshot's module version; subset and masks; a
//! damaged or truncated data file is found before anything is written; a manifest of
//! a newer format, unknown profiles, tables, masks and conditions are refused with
//! nothing written; pins, prune and delete; and the S3 path against moto.

use crate::support::{TestDb, ENGINES};
use lockgate::config::Config;
use lockgate::db::{Conn, Engine};
use lockgate::snapshot::{
    self, catalog, profile, PruneOptions, RestoreOptions, SnapshotError, SnapshotOptions, SnapshotsSettings,
};
use lockgate_core::{fingerprint, Row, Value};
use std::path::{Path, PathBuf};

/// A folder store and a `db/` folder in one temporary directory.
struct Place {
    _dir: tempfile::TempDir,
    store: String,
    db_dir: PathBuf,
}

fn place() -> Place {
    let dir = tempfile::tempdir().unwrap();
    Place {
        store: dir.path().join("store").display().to_string(),
        db_dir: dir.path().join("db"),
        _dir: dir,
    }
}

fn take(p: &Place, profile: &str) -> SnapshotOptions {
    SnapshotOptions {
        profile: profile.into(),
        dir: p.db_dir.clone(),
        store: Some(p.store.clone()),
        ..SnapshotOptions::default()
    }
}

fn back(p: &Place, profile: &str) -> RestoreOptions {
    RestoreOptions {
        profile: profile.into(),
        dir: p.db_dir.clone(),
        store: Some(p.store.clone()),
        latest: true,
        ..RestoreOptions::default()
    }
}

/// The `kinds` table per engine: one column of each supported type.
fn kinds_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE kinds (id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, f8 double precision, \
             d numeric(12,3), t text, v varchar(20), c date, tm time, ts timestamp, tz timestamptz, j jsonb, \
             u uuid, by bytea);
             CREATE TABLE kind_refs (id integer PRIMARY KEY, kind_id bigint NOT NULL REFERENCES kinds (id), \
             label varchar(30) UNIQUE)"
        }
        Engine::Mysql => {
            "CREATE TABLE kinds (id bigint PRIMARY KEY, b boolean, i2 smallint, i4 int, f8 double, d decimal(12,3), \
             t text, v varchar(20), c date, tm time(6), ts datetime(6), tz timestamp(6) NULL, j json, u uuid, \
             `by` longblob) ENGINE=InnoDB;
             CREATE TABLE kind_refs (id int PRIMARY KEY, kind_id bigint NOT NULL, label varchar(30) UNIQUE, \
             FOREIGN KEY (kind_id) REFERENCES kinds (id)) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "CREATE TABLE kinds (id INTEGER PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i4 INTEGER, f8 REAL, \
             d NUMERIC(12,3), t TEXT, v VARCHAR(20), c DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON, \
             u UUID, by BLOB);
             CREATE TABLE kind_refs (id INTEGER PRIMARY KEY, kind_id INTEGER NOT NULL REFERENCES kinds (id), \
             label VARCHAR(30) UNIQUE)"
        }
    }
}

fn kinds_rows() -> Vec<Vec<Value>> {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    vec![
        vec![
            Value::Int(1),
            Value::Bool(true),
            Value::Int(-32768),
            Value::Int(2_147_483_647),
            Value::Float(0.1),
            Value::Decimal(lockgate_core::Decimal::parse("-123456789.125").unwrap()),
            Value::Text("tab\there\nnew line \\ backslash \\N ünïcødé 😀".into()),
            Value::Text("short".into()),
            Value::Date(date),
            Value::Time(time),
            Value::Timestamp(date.and_time(time)),
            Value::TimestampTz(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()),
            Value::Json(serde_json::json!({"a": [1, 2.5, "x"], "b": null})),
            Value::Uuid(uuid::Uuid::parse_str("6f1c1e5e-2b1a-4c3d-9e8f-0123456789ab").unwrap()),
            Value::Bytes(vec![0, 1, 92, 255, 9, 10]),
        ],
        vec![
            Value::Int(2),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(-1),
            Value::Float(-1.5e300),
            Value::Decimal(lockgate_core::Decimal::parse("0.001").unwrap()),
            Value::Text(String::new()),
            Value::Text("x".repeat(20)),
            Value::Date(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
            Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(1999, 12, 31)
                    .unwrap()
                    .and_hms_opt(1, 2, 3)
                    .unwrap(),
            ),
            Value::TimestampTz(Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()),
            Value::Json(serde_json::json!([])),
            Value::Uuid(uuid::Uuid::nil()),
            Value::Bytes(Vec::new()),
        ],
        (0..15)
            .map(|i| if i == 0 { Value::Int(3) } else { Value::Null })
            .collect(),
    ]
}

async fn insert(conn: &mut Conn, table: &str, rows: Vec<Vec<Value>>) {
    let t = conn.find_table(table).await.unwrap();
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .map(|(i, values)| Row {
            line: i as u64 + 1,
            number: 0,
            values,
        })
        .collect();
    let out = conn.bulk_insert(&t.name, &columns, &rows, None).await.unwrap();
    assert!(out.row_errors.is_empty(), "{:?}", out.row_errors);
}

/// The rows of a table as per-value fingerprints, sorted: what "equal by value"
/// means across engines (decimals by value, floats by value, times to the
/// microsecond).
async fn fingerprints(conn: &mut Conn, table: &str) -> Vec<Vec<String>> {
    let t = conn.find_table(table).await.unwrap();
    let d = conn.dialect();
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<_> = t.columns.iter().map(|c| c.kind.clone()).collect();
    let sql = format!("SELECT {} FROM {}", d.columns(None, &columns), d.table(&t.name));
    let mut rows: Vec<Vec<String>> = conn
        .query(&sql, &[], Some(&kinds))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v {
                    // MariaDB keeps an instant as its UTC date and time (ARCHITECTURE.md,
                    // type mapping): the same value, read back without the zone.
                    Value::TimestampTz(t) => Value::Timestamp(t.naive_utc()),
                    v => v,
                })
                .map(|v| fingerprint(std::slice::from_ref(&v)))
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn every_type_round_trips_between_every_pair_of_engines() {
    let config = Config::default();
    for source in ENGINES {
        let src = TestDb::new(source).await;
        let mut sc = src.conn().await;
        sc.batch(kinds_schema(source)).await.unwrap();
        insert(&mut sc, "kinds", kinds_rows()).await;
        insert(
            &mut sc,
            "kind_refs",
            vec![
                vec![Value::Int(1), Value::Int(1), Value::Text("one".into())],
                vec![Value::Int(2), Value::Int(1), Value::Null],
            ],
        )
        .await;
        let p = place();
        let made = snapshot::snapshot(&config, &src.url, &take(&p, "kinds"), None)
            .await
            .unwrap_or_else(|e| panic!("snapshot of {source}: {e}"));
        assert_eq!(made.tables.iter().map(|t| t.rows).sum::<u64>(), 5);
        let want_kinds = fingerprints(&mut sc, "kinds").await;
        let want_refs = fingerprints(&mut sc, "kind_refs").await;
        for target in ENGINES {
            let dst = TestDb::new(target).await;
            let report = snapshot::restore(&config, &dst.url, &back(&p, "kinds"), None)
                .await
                .unwrap_or_else(|e| panic!("{source} -> {target}: {e}"));
            assert_eq!(report.tables.len(), 2, "{source} -> {target}");
            let mut dc = dst.conn().await;
            assert_eq!(fingerprints(&mut dc, "kinds").await, want_kinds, "{source} -> {target}");
            assert_eq!(
                fingerprints(&mut dc, "kind_refs").await,
                want_refs,
                "{source} -> {target}"
            );
            // The constraints came back: the foreign key and the unique key hold.
            let t = dc.find_table("kind_refs").await.unwrap();
            assert_eq!(t.foreign_keys.len(), 1, "{source} -> {target}: {t:?}");
            assert!(
                t.unique_keys().iter().any(|k| k == &["label".to_string()]),
                "{source} -> {target}: {t:?}"
            );
            let dup = dc
                .execute("INSERT INTO kind_refs (id, kind_id, label) VALUES (9, 1, 'one')", &[])
                .await;
            assert!(dup.is_err(), "{source} -> {target}: the unique key was not rebuilt");
        }
    }
}

/// A `db/` folder with one version creating `items` and loading two rows.
fn write_version(dir: &Path, version: &str, rows: &str) {
    let v = dir.join(version);
    std::fs::create_dir_all(v.join("ddl")).unwrap();
    std::fs::write(
        v.join("ddl/items.json"),
        r#"{"name": "items", "properties": {"id": {"type": "number", "id": true}, "name": {"type": "string", "required": true}}}"#,
    )
    .unwrap();
    std::fs::write(v.join("items.json"), rows).unwrap();
    std::fs::write(
        v.join("meta.json"),
        r#"{"files": [{"file": "items.json", "model": "items", "mode": "upsert", "key": ["id"]}]}"#,
    )
    .unwrap();
}

#[tokio::test]
async fn a_restored_database_migrates_on_from_the_snapshots_version() {
    let config = Config::default();
    let migrations = tempfile::tempdir().unwrap();
    write_version(
        migrations.path(),
        "1.0.0",
        r#"[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]"#,
    );
    let src = TestDb::new(Engine::Sqlite).await;
    let opts = lockgate::MigrateOptions {
        dir: migrations.path().to_path_buf(),
        ..lockgate::MigrateOptions::default()
    };
    let r = lockgate::migrate(&src.url, &opts, None).await.unwrap();
    assert_eq!(r.migrated_versions, Some(vec!["1.0.0".to_string()]));
    let p = place();
    let made = snapshot::snapshot(&config, &src.url, &take(&p, "prod"), None)
        .await
        .unwrap();
    assert_eq!(made.modules.get("./").map(String::as_str), Some("1.0.0"));
    // Lockgate's own tables are never part of a snapshot.
    assert!(
        made.tables.iter().all(|t| !t.table.starts_with("lockgate_")),
        "{:?}",
        made.tables
    );

    for target in [Engine::Postgres, Engine::Mysql] {
        let dst = TestDb::new(target).await;
        let restored = snapshot::restore(&config, &dst.url, &back(&p, "prod"), None)
            .await
            .unwrap();
        assert_eq!(restored.modules.get("./").map(String::as_str), Some("1.0.0"));
        // The seed's pre-release upgrade test: restore, then migrate.
        write_version(
            migrations.path(),
            "1.1.0",
            r#"[{"id": 2, "name": "B"}, {"id": 3, "name": "c"}]"#,
        );
        let r = lockgate::migrate(&dst.url, &opts, None).await.unwrap();
        assert_eq!(r.migrated_versions, Some(vec!["1.1.0".to_string()]), "{target}");
        let mut c = dst.conn().await;
        let rows = crate::support::rows(&mut c, "SELECT id, name FROM items ORDER BY id").await;
        assert_eq!(rows, vec!["1|a", "2|B", "3|c"], "{target}");
        std::fs::remove_dir_all(migrations.path().join("1.1.0")).unwrap();
    }
}

const SHOP: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100) UNIQUE);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
  email VARCHAR(100));
CREATE TABLE audit (id INTEGER PRIMARY KEY, note VARCHAR(50));
INSERT INTO customers VALUES (1, 'Ann', 'ann@x.io'), (2, 'Bob', 'bob@x.io'), (3, 'Cy', NULL);
INSERT INTO orders VALUES (10, 1, 'ann@x.io'), (11, 1, 'other@x.io'), (12, 2, 'bob@x.io');
INSERT INTO audit VALUES (1, 'a'), (2, 'b');
";

#[tokio::test]
async fn a_subset_takes_what_its_rows_need_and_masks_are_deterministic() {
    let config = Config::default();
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let opts = SnapshotOptions {
        subset: vec![("orders".into(), "id = 10".into())],
        masks: Some("customers.email=email,orders.email=email,customers.name=name".into()),
        exclude: vec!["audit".into()],
        ..take(&p, "test")
    };
    let made = snapshot::snapshot(&config, &src.url, &opts, None).await.unwrap();
    let counts: Vec<(String, u64)> = made.tables.iter().map(|t| (t.table.clone(), t.rows)).collect();
    assert_eq!(counts, vec![("customers".into(), 1), ("orders".into(), 1)]);
    let dst = TestDb::new(Engine::Postgres).await;
    snapshot::restore(&config, &dst.url, &back(&p, "test"), None)
        .await
        .unwrap();
    let mut c = dst.conn().await;
    let rows = crate::support::rows(
        &mut c,
        "SELECT c.id, c.email, o.email, c.name FROM customers c JOIN orders o ON o.customer_id = c.id",
    )
    .await;
    assert_eq!(rows.len(), 1);
    let parts: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(parts[0], "1");
    // The same e-mail masked in two tables gives the same value: joins still match.
    assert_eq!(parts[1], parts[2]);
    assert!(
        parts[1].ends_with("@example.invalid") && parts[1] != "ann@x.io",
        "{rows:?}"
    );
    assert_ne!(parts[3], "Ann");
    let manifest = catalog::show(&profile::open_store(&config, &p.store).unwrap(), Some("test"), &made.id)
        .await
        .unwrap();
    assert!(manifest.tables.iter().all(|t| t.subset));
    assert_eq!(manifest.tables[0].masked.len(), 2, "{:?}", manifest.tables[0].masked);
}

fn data_file(p: &Place, profile: &str, id: &str, n: usize) -> PathBuf {
    let folder = Path::new(&p.store).join(profile).join(id).join("data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files[n].clone()
}

#[tokio::test]
async fn a_damaged_or_truncated_file_is_found_before_anything_is_written() {
    let config = Config::default();
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let made = snapshot::snapshot(&config, &src.url, &take(&p, "shop"), None)
        .await
        .unwrap();
    let file = data_file(&p, "shop", &made.id, 2);
    let good = std::fs::read(&file).unwrap();
    for (what, bad) in [
        ("damaged", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            b
        }),
        ("truncated", good[..good.len() - 3].to_vec()),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let dst = TestDb::new(Engine::Postgres).await;
        let e = snapshot::restore(&config, &dst.url, &back(&p, "shop"), None)
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{what}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("nothing was written") && msg.contains("0003-orders"),
            "{what}: {msg}"
        );
        let mut c = dst.conn().await;
        assert!(
            c.lookup_table("customers").await.unwrap().is_none(),
            "{what}: a table was created"
        );
    }
    std::fs::write(&file, &good).unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_with_nothing_written() {
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let listed = |p: &Place| {
        let store = profile::open_store(&config, &p.store).unwrap();
        async move { catalog::list(&store, None).await.unwrap().len() }
    };
    let cases: Vec<(&str, SnapshotOptions, &str)> = vec![
        (
            "unknown table",
            SnapshotOptions {
                tables: vec!["nope".into()],
                ..take(&p, "x")
            },
            "\"nope\" is not a table",
        ),
        (
            "unknown exclusion",
            SnapshotOptions {
                exclude: vec!["nope".into()],
                ..take(&p, "x")
            },
            "\"nope\" is not a table",
        ),
        (
            "bad where",
            SnapshotOptions {
                conditions: vec![("orders".into(), "no_such_column = 1".into())],
                ..take(&p, "x")
            },
            "no_such_column",
        ),
        (
            "bad subset",
            SnapshotOptions {
                subset: vec![("customers".into(), "id IN (".into())],
                ..take(&p, "x")
            },
            "customers",
        ),
        (
            "bad mask rule",
            SnapshotOptions {
                masks: Some("customers.email=scramble".into()),
                ..take(&p, "x")
            },
            "scramble",
        ),
        (
            "mask on an unknown column",
            SnapshotOptions {
                masks: Some("customers.mail=email".into()),
                ..take(&p, "x")
            },
            "mail",
        ),
    ];
    for (what, opts, needle) in cases {
        let e = snapshot::snapshot(&config, &src.url, &opts, None).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{what}: {e}");
        assert!(e.to_string().contains(needle), "{what}: {e}");
        assert_eq!(listed(&p).await, 0, "{what}");
    }
    // A profile neither lockgate.toml nor a pin file names.
    let e = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            store: None,
            ..take(&p, "ghost")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, SnapshotError::Invalid(_)) && e.to_string().contains("unknown profile"),
        "{e}"
    );

    // Restores: a newer manifest format, a target that already holds rows, a snapshot
    // id that does not exist.
    let made = snapshot::snapshot(&config, &src.url, &take(&p, "x"), None)
        .await
        .unwrap();
    let e = snapshot::restore(&config, &src.url, &back(&p, "x"), None)
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().contains("already hold rows") && e.to_string().contains("--replace"),
        "{e}"
    );
    let e = snapshot::restore(
        &config,
        &src.url,
        &RestoreOptions {
            id: Some("20200101T000000Z-000000".into()),
            ..back(&p, "x")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no snapshot 20200101T000000Z-000000"), "{e}");
    let manifest = Path::new(&p.store).join("x").join(&made.id).join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"format\": 1", "\"format\": 99", 1)).unwrap();
    let dst = TestDb::new(Engine::Sqlite).await;
    let e = snapshot::restore(&config, &dst.url, &back(&p, "x"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("format 99, newer"), "{e}");
    assert!(dst.conn().await.lookup_table("customers").await.unwrap().is_none());
}

#[tokio::test]
async fn replace_refills_existing_tables_and_a_dry_check_writes_nothing() {
    let config = Config::default();
    let src = TestDb::new(Engine::Mysql).await;
    src.conn().await.batch(&SHOP.replace("INTEGER", "INT")).await.unwrap();
    let p = place();
    snapshot::snapshot(&config, &src.url, &take(&p, "m"), None)
        .await
        .unwrap();
    let mut c = src.conn().await;
    c.batch("DELETE FROM orders WHERE id = 12; UPDATE customers SET name = 'changed' WHERE id = 1")
        .await
        .unwrap();
    let check = snapshot::restore(
        &config,
        &src.url,
        &RestoreOptions {
            replace: true,
            check_only: true,
            ..back(&p, "m")
        },
        None,
    )
    .await
    .unwrap();
    assert!(check.check_only && check.tables.iter().all(|t| t.replaced && !t.created));
    assert_eq!(crate::support::count(&mut c, "orders").await, 2);
    snapshot::restore(
        &config,
        &src.url,
        &RestoreOptions {
            replace: true,
            ..back(&p, "m")
        },
        None,
    )
    .await
    .unwrap();
    let rows = crate::support::rows(&mut c, "SELECT name FROM customers ORDER BY id").await;
    assert_eq!(rows, vec!["Ann", "Bob", "Cy"]);
    assert_eq!(crate::support::count(&mut c, "orders").await, 3);
}

#[tokio::test]
async fn pins_choose_the_snapshot_and_prune_keeps_it() {
    let config = Config::default();
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let pinned = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            pin: true,
            ..take(&p, "c1")
        },
        None,
    )
    .await
    .unwrap();
    let pin = profile::read_pin(&p.db_dir, "c1").unwrap().unwrap();
    assert_eq!(pin.snapshot.as_deref(), Some(pinned.id.as_str()));
    assert_eq!(pin.checksums.len(), 3);
    src.conn().await.batch("DELETE FROM orders").await.unwrap();
    for _ in 0..2 {
        snapshot::snapshot(&config, &src.url, &take(&p, "c1"), None)
            .await
            .unwrap();
    }
    // Without --id or --latest, the pinned snapshot is the one restored (by the pin
    // file's store: no --store needed).
    let dst = TestDb::new(Engine::Sqlite).await;
    let r = snapshot::restore(
        &config,
        &dst.url,
        &RestoreOptions {
            store: None,
            latest: false,
            ..back(&p, "c1")
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.id, pinned.id);
    assert_eq!(crate::support::count(&mut dst.conn().await, "orders").await, 3);
    let store = profile::open_store(&config, &p.store).unwrap();
    let pruned = catalog::prune(
        &store,
        "c1",
        &PruneOptions {
            keep: Some(1),
            pinned: Some(pinned.id.clone()),
            dry_run: true,
            ..PruneOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pruned.deleted.len(), 1);
    assert_eq!(
        catalog::list(&store, Some("c1")).await.unwrap().len(),
        3,
        "a dry run deleted"
    );
    catalog::prune(
        &store,
        "c1",
        &PruneOptions {
            keep: Some(1),
            pinned: Some(pinned.id.clone()),
            ..PruneOptions::default()
        },
    )
    .await
    .unwrap();
    let left: Vec<String> = catalog::list(&store, Some("c1"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&pinned.id));
    let gone = catalog::delete(&store, Some("c1"), &left[1]).await.unwrap();
    assert_eq!(gone.id, left[1]);
    assert!(!Path::new(&p.store).join("c1").join(&left[1]).exists());
}

#[tokio::test]
async fn snapshots_go_to_s3_and_come_back() {
    let Some((bucket, s3)) = lockgate_store::testing::test_bucket().await else {
        return;
    };
    let mut config = Config::default();
    config.snapshots = Some(SnapshotsSettings {
        store: Some(format!("{bucket}/lockgate")),
        s3,
    });
    config.profiles.insert("cloud".to_string(), Default::default());
    let src = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let media = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(media.path().join("avatars")).unwrap();
    std::fs::write(media.path().join("avatars/ann.png"), b"\x89PNG fake").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let made = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            profile: "cloud".into(),
            dir: dir.path().to_path_buf(),
            files: Some(media.path().to_path_buf()),
            ..SnapshotOptions::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(made.files, 1);
    assert!(made.store.starts_with("s3://"), "{}", made.store);
    let store = profile::open_store(&config, &format!("{bucket}/lockgate")).unwrap();
    assert_eq!(catalog::list(&store, Some("cloud")).await.unwrap().len(), 1);
    let dst = TestDb::new(Engine::Mysql).await;
    let into = tempfile::tempdir().unwrap();
    let r = snapshot::restore(
        &config,
        &dst.url,
        &RestoreOptions {
            profile: "cloud".into(),
            dir: dir.path().to_path_buf(),
            files_into: Some(into.path().to_path_buf()),
            ..RestoreOptions::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.files, 1);
    assert_eq!(
        std::fs::read(into.path().join("avatars/ann.png")).unwrap(),
        b"\x89PNG fake"
    );
    let mut c = dst.conn().await;
    assert_eq!(crate::support::count(&mut c, "orders").await, 3);
    catalog::delete(&store, Some("cloud"), &made.id).await.unwrap();
    assert!(catalog::list(&store, Some("cloud")).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_store_is_a_run_time_error() {
    let mut config = Config::default();
    config.snapshots = Some(SnapshotsSettings {
        store: None,
        s3: lockgate_store::StoreConfig {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(true),
        },
    });
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let e = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            store: Some("s3://nowhere/x".into()),
            ..take(&p, "x")
        },
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit_code(), 1, "{e}");
}

// Regressions from the review of the first cut.

#[tokio::test]
async fn a_mask_naming_tables_in_two_schemas_masks_both() {
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn()
        .await
        .batch(
            "CREATE SCHEMA archive;
             CREATE TABLE users (id int PRIMARY KEY, email text);
             CREATE TABLE archive.users (id int PRIMARY KEY, email text);
             INSERT INTO users VALUES (1, 'ann@x.io'); INSERT INTO archive.users VALUES (1, 'ann@x.io');",
        )
        .await
        .unwrap();
    let p = place();
    let made = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            masks: Some("users.email=email".into()),
            ..take(&p, "m")
        },
        None,
    )
    .await
    .unwrap();
    let store = profile::open_store(&config, &p.store).unwrap();
    let m = catalog::show(&store, Some("m"), &made.id).await.unwrap();
    assert_eq!(m.tables.len(), 2);
    for t in &m.tables {
        assert_eq!(
            t.masked,
            vec![("email".to_string(), "email".to_string())],
            "{}",
            t.def.display_name()
        );
    }
}

#[tokio::test]
async fn what_a_restore_or_snapshot_cannot_do_whole_is_refused_up_front() {
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    snapshot::snapshot(&config, &src.url, &take(&p, "s"), None)
        .await
        .unwrap();

    // A foreign key whose parent is neither restored nor on the target.
    let dst = TestDb::new(Engine::Sqlite).await;
    let e = snapshot::restore(
        &config,
        &dst.url,
        &RestoreOptions {
            tables: vec!["orders".into()],
            ..back(&p, "s")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("references customers"), "{e}");
    assert!(dst.conn().await.lookup_table("orders").await.unwrap().is_none());

    // --replace of a parent whose rows a table outside the restore references.
    let e = snapshot::restore(
        &config,
        &src.url,
        &RestoreOptions {
            tables: vec!["customers".into()],
            replace: true,
            ..back(&p, "s")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("table orders (not restored) references"), "{e}");
    assert_eq!(crate::support::count(&mut src.conn().await, "orders").await, 3);

    // A column of a type lockgate does not map, a --where on a table the subset
    // decides, masks that break a foreign key, a media file a store cannot name.
    src.conn()
        .await
        .batch("CREATE TABLE spans (id int PRIMARY KEY, d interval)")
        .await
        .unwrap();
    let e = snapshot::snapshot(&config, &src.url, &take(&p, "s"), None)
        .await
        .unwrap_err();
    assert!(e.exit_code() == 2 && e.to_string().contains("spans.d"), "{e}");
    let e = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            exclude: vec!["spans".into()],
            subset: vec![("customers".into(), "id = 1".into())],
            conditions: vec![("orders".into(), "id > 10".into())],
            ..take(&p, "s")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("the subset decides"), "{e}");
    let e = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            exclude: vec!["spans".into()],
            masks: Some("customers.id=hash".into()),
            ..take(&p, "s")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("mask both ends"), "{e}");
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("a#1.png"), b"x").unwrap();
    let e = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            exclude: vec!["spans".into()],
            files: Some(media.path().to_path_buf()),
            ..take(&p, "s")
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("a#1.png"), "{e}");
    let store = profile::open_store(&config, &p.store).unwrap();
    assert_eq!(
        catalog::list(&store, Some("s")).await.unwrap().len(),
        1,
        "a refused snapshot was stored"
    );
}

#[tokio::test]
async fn a_mariadb_restore_that_meets_a_refused_row_changes_nothing() {
    // Two e-mails PostgreSQL tells apart and MariaDB's collation calls equal: the
    // unique key refuses one inside the data's transaction, which then undoes the
    // --replace's delete and drops the tables it created.
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn()
        .await
        .batch(
            "CREATE TABLE people (id int PRIMARY KEY, email varchar(50) UNIQUE);
             INSERT INTO people VALUES (1, 'Ann@x.io'), (2, 'ann@x.io');
             CREATE TABLE notes (id int PRIMARY KEY, body varchar(20));
             INSERT INTO notes VALUES (1, 'from the snapshot');",
        )
        .await
        .unwrap();
    let p = place();
    snapshot::snapshot(&config, &src.url, &take(&p, "ci"), None)
        .await
        .unwrap();
    let dst = TestDb::new(Engine::Mysql).await;
    let mut c = dst.conn().await;
    c.batch("CREATE TABLE notes (id int PRIMARY KEY, body varchar(20)); INSERT INTO notes VALUES (7, 'kept')")
        .await
        .unwrap();
    let e = snapshot::restore(
        &config,
        &dst.url,
        &RestoreOptions {
            replace: true,
            ..back(&p, "ci")
        },
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(
        c.lookup_table("people").await.unwrap().is_none(),
        "the created table stayed"
    );
    assert_eq!(
        crate::support::rows(&mut c, "SELECT id, body FROM notes").await,
        vec!["7|kept"]
    );
}

#[tokio::test]
async fn a_restored_copy_has_the_sources_migration_history() {
    let config = Config::default();
    let migrations = tempfile::tempdir().unwrap();
    write_version(migrations.path(), "1.0.0", r#"[{"id": 1, "name": "a"}]"#);
    write_version(migrations.path(), "1.1.0", r#"[{"id": 2, "name": "b"}]"#);
    let src = TestDb::new(Engine::Postgres).await;
    let opts = lockgate::MigrateOptions {
        dir: migrations.path().to_path_buf(),
        ..lockgate::MigrateOptions::default()
    };
    lockgate::migrate(&src.url, &opts, None).await.unwrap();
    let p = place();
    snapshot::snapshot(&config, &src.url, &take(&p, "h"), None)
        .await
        .unwrap();
    let dst = TestDb::new(Engine::Sqlite).await;
    snapshot::restore(&config, &dst.url, &back(&p, "h"), None)
        .await
        .unwrap();
    // No drift: the copy knows 1.0.0 and 1.1.0 were applied, as production does.
    let status = lockgate::status(
        &dst.url,
        &lockgate::StatusOptions {
            dir: Some(migrations.path().to_path_buf()),
            ..lockgate::StatusOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(status.pending.is_empty(), "{:?}", status.pending);
    assert_eq!(status.applied.len(), 2, "{:?}", status.applied);
    assert!(
        status.changed.is_empty() && status.missing.is_empty() && status.skipped.is_empty(),
        "{status:?}"
    );
    let r = lockgate::migrate(&dst.url, &opts, None).await.unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[tokio::test]
async fn rows_whose_parent_was_left_out_fail_the_restore_on_every_engine_with_nothing_kept() {
    // A --where on a parent leaves orders pointing at a customer the snapshot lacks:
    // each engine refuses the foreign key, and the restore keeps nothing (MariaDB,
    // whose DDL commits, checks the rows before its data's commit).
    let config = Config::default();
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            conditions: vec![("customers".into(), "id <> 2".into())],
            ..take(&p, "o")
        },
        None,
    )
    .await
    .unwrap();
    for target in ENGINES {
        let dst = TestDb::new(target).await;
        let e = snapshot::restore(&config, &dst.url, &back(&p, "o"), None)
            .await
            .unwrap_err();
        let msg = e.to_string().to_lowercase();
        assert!(
            msg.contains("foreign key") || msg.contains("constraint"),
            "{target}: {e}"
        );
        let mut c = dst.conn().await;
        for t in ["customers", "orders", "audit"] {
            assert!(
                c.lookup_table(t).await.unwrap().is_none(),
                "{target}: {t} was left behind"
            );
        }
    }
}

#[tokio::test]
async fn the_pins_store_finds_the_pinned_snapshot_and_lockgate_toml_decides_the_rest() {
    let src = TestDb::new(Engine::Sqlite).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let here = place();
    let there = place();
    let mut config = Config::default();
    config.profiles.insert(
        "team".to_string(),
        lockgate::snapshot::ProfileSpec {
            store: Some(here.store.clone()),
            masks: Some("customers.email=email".into()),
            ..Default::default()
        },
    );
    // Pinned in the team's store (a flag), then a newer one where lockgate.toml says.
    let pinned = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            store: Some(there.store.clone()),
            dir: here.db_dir.clone(),
            pin: true,
            masks: Some("CUSTOMERS.email=hash".into()),
            ..take(&here, "team")
        },
        None,
    )
    .await
    .unwrap();
    let store = profile::open_store(&config, &there.store).unwrap();
    let m = catalog::show(&store, Some("team"), &pinned.id).await.unwrap();
    let masked: Vec<&(String, String)> = m.tables.iter().flat_map(|t| &t.masked).collect();
    assert_eq!(
        masked,
        vec![&("email".to_string(), "hash".to_string())],
        "the flag's rule replaces the profile's"
    );
    let newer = snapshot::snapshot(
        &config,
        &src.url,
        &SnapshotOptions {
            store: None,
            ..take(&here, "team")
        },
        None,
    )
    .await
    .unwrap();
    assert!(
        Path::new(&here.store).join("team").join(&newer.id).exists(),
        "lockgate.toml's store"
    );
    let dst = TestDb::new(Engine::Sqlite).await;
    let r = snapshot::restore(
        &config,
        &dst.url,
        &RestoreOptions {
            store: None,
            latest: false,
            tables: vec!["customers".into()],
            ..back(&here, "team")
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.id, pinned.id);
    assert!(
        r.modules.is_empty(),
        "a --tables restore sets no versions: {:?}",
        r.modules
    );
}

#[tokio::test]
async fn two_snapshots_at_once_never_collide() {
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn().await.batch(SHOP).await.unwrap();
    let p = place();
    let opts = take(&p, "twins");
    let (a, b) = tokio::join!(
        snapshot::snapshot(&config, &src.url, &opts, None),
        snapshot::snapshot(&config, &src.url, &opts, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.id, b.id);
    let store = profile::open_store(&config, &p.store).unwrap();
    assert_eq!(catalog::list(&store, Some("twins")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_column_the_target_cannot_hold_is_refused_by_name() {
    // A PostgreSQL text key: its short values fit MariaDB's varchar(255) key column,
    // a 300-character one does not, and the restore says which column, writing nothing.
    let config = Config::default();
    let src = TestDb::new(Engine::Postgres).await;
    src.conn()
        .await
        .batch("CREATE TABLE tags (code text PRIMARY KEY, label text); INSERT INTO tags VALUES ('short', 'a')")
        .await
        .unwrap();
    let p = place();
    snapshot::snapshot(&config, &src.url, &take(&p, "t"), None)
        .await
        .unwrap();
    let dst = TestDb::new(Engine::Mysql).await;
    snapshot::restore(&config, &dst.url, &back(&p, "t"), None)
        .await
        .unwrap();
    src.conn()
        .await
        .batch(&format!("INSERT INTO tags VALUES ('{}', 'b')", "x".repeat(300)))
        .await
        .unwrap();
    snapshot::snapshot(&config, &src.url, &take(&p, "t"), None)
        .await
        .unwrap();
    let dst = TestDb::new(Engine::Mysql).await;
    let e = snapshot::restore(&config, &dst.url, &back(&p, "t"), None)
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(
        e.to_string().contains("tags.code") && e.to_string().contains("varchar(255)"),
        "{e}"
    );
    assert!(dst.conn().await.lookup_table("tags").await.unwrap().is_none());
}
