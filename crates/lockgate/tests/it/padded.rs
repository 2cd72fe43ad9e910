//! `char(n)` values, end to end: trailing spaces there are padding, not data (as
//! PostgreSQL and MariaDB treat them), so a padded value loads and reads back
//! without them; values recorded with their padding (PostgreSQL's `\copy` output,
//! row images and export keys an earlier Lockgate wrote, which read a
//! `character(n)` value padded) still match the rows read now: a rollback finds its
//! rows, and an export still completes and holds its rows. A MariaDB ENUM's `''`
//! (stored by a lenient session) is put back by a rollback.

use crate::support::{load, rows, table_rows, temp_file, TestDb};
use lockgate::db::writer::{OnError, WriteMode};
use lockgate::transfer::{self, CreateOptions, RunOptions, SourceSpec, Transfer};
use lockgate::{MigrateOptions, RollbackOptions};
use lockgate_db::{Conn, Engine};

/// What `psql`'s `\copy codes TO 'codes.csv' CSV HEADER` writes for a `character(5)`
/// column (every value padded to 5), and a value padded past the width, as a dump
/// made elsewhere may hold it.
const COPIED: &[u8] = b"id,c\n1,ab   \n2,abcde\n3,     \n4, ab  \n5,abcde   \n";

/// A padded value loads into CHAR(5) on MariaDB and character(5) on PostgreSQL and
/// reads back without its trailing spaces; loading the same file again changes
/// nothing (the values are equal). SQLite's CHAR(5) is text and keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_value_loads_into_char_n_and_reads_back_trimmed() {
    let (_dir, csv) = temp_file("codes.csv", COPIED);
    for (engine, ddl) in [
        (
            Engine::Postgres,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c character(5))",
        ),
        (
            Engine::Mysql,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c char(5)) ENGINE=InnoDB",
        ),
        (Engine::Sqlite, "CREATE TABLE codes (id INTEGER PRIMARY KEY, c CHAR(5))"),
    ] {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch(ddl).await.unwrap();
        let r = load(&db, "codes", std::slice::from_ref(&csv), |_| {}).await.unwrap();
        assert_eq!(r.exit_code(), 0, "{engine}: {:?}", r.failed);
        assert_eq!(r.inserted, 5, "{engine}");
        let got = table_rows(&mut conn, "codes").await.unwrap();
        if engine == Engine::Sqlite {
            assert_eq!(
                got,
                ["1|ab   ", "2|abcde", "3|     ", "4| ab  ", "5|abcde   "],
                "{engine}"
            );
        } else {
            assert_eq!(got, ["1|ab", "2|abcde", "3|", "4| ab", "5|abcde"], "{engine}");
            // The engine's own view: the value is 'ab', equal to 'ab' and 2 long.
            let char_length = if engine == Engine::Mysql {
                "char_length"
            } else {
                "length"
            };
            assert_eq!(
                rows(
                    &mut conn,
                    &format!("SELECT c = 'ab', {char_length}(c) FROM codes WHERE id = 1")
                )
                .await,
                [if engine == Engine::Mysql { "1|2" } else { "true|2" }],
                "{engine}"
            );
        }
        let again = load(&db, "codes", std::slice::from_ref(&csv), |o| o.mode = WriteMode::Upsert)
            .await
            .unwrap();
        assert_eq!(again.exit_code(), 0, "{engine}: {:?}", again.failed);
        assert_eq!(
            (again.inserted, again.updated, again.unchanged),
            (0, 0, 5),
            "{engine}: loading the copy again changes nothing"
        );
    }
}

fn codes(src: &TestDb, dst: &TestDb, key: &[&str]) -> Transfer {
    Transfer {
        name: "codes".into(),
        source: src.url.clone(),
        from: SourceSpec::Table("codes".into()),
        dest: dst.url.clone(),
        dest_table: "codes".into(),
        key: key.iter().map(|k| k.to_string()).collect(),
        map: Vec::new(),
        batch_size: 2,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    }
}

/// VARCHAR(5) into CHAR(5), both ways between PostgreSQL and MariaDB: `transfer
/// check` notes that trailing spaces are dropped, and a value that ends in them
/// arrives without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varchar_into_char_notes_that_trailing_spaces_are_dropped() {
    let pairs = [
        (
            Engine::Postgres,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c varchar(5))",
            Engine::Mysql,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c char(5)) ENGINE=InnoDB",
        ),
        (
            Engine::Mysql,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c varchar(5)) ENGINE=InnoDB",
            Engine::Postgres,
            "CREATE TABLE codes (id bigint PRIMARY KEY, c character(5))",
        ),
    ];
    for (s, src_ddl, d, dst_ddl) in pairs {
        let what = format!("{s} -> {d}");
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        let mut sc = src.conn().await;
        sc.batch(src_ddl).await.unwrap();
        sc.batch("INSERT INTO codes (id, c) VALUES (1, 'ab  '), (2, 'abcde'), (3, 'x')")
            .await
            .unwrap();
        let mut dc = dst.conn().await;
        dc.batch(dst_ddl).await.unwrap();
        let t = codes(&src, &dst, &[]);
        let check = transfer::check(&t).await.unwrap();
        let noted: Vec<(&str, &str)> = check
            .narrowing
            .iter()
            .map(|n| (n.column.as_str(), n.why.as_str()))
            .collect();
        assert_eq!(
            noted,
            [(
                "c",
                "trailing spaces are dropped: char(5) pads values with spaces and gives them back without"
            )],
            "{what}"
        );
        transfer::create(&t, &CreateOptions::default()).await.unwrap();
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
        assert_eq!(
            table_rows(&mut dc, "codes").await.unwrap(),
            ["1|ab", "2|abcde", "3|x"],
            "{what}"
        );
    }
}

/// Rewrites the ledger's recorded key texts `from` → `to` (as an earlier Lockgate
/// recorded them), chunk by chunk of the packed row sets; returns how many it changed.
async fn rewrite_keys(conn: &mut Conn, pairs: &[(&str, &str)]) -> u64 {
    use lockgate_core::Value;
    use lockgate_db::rowset::{chunk_keys, ChunkBuilder};
    let chunks = conn
        .query(
            "SELECT export_id, first_n, last_n, packed FROM lockgate_export_chunks",
            &[],
            None,
        )
        .await
        .unwrap();
    let mut n = 0;
    for r in chunks {
        let (Value::Int(id), Value::Int(first_n), Value::Int(last_n), Value::Bytes(data)) =
            (&r[0], &r[1], &r[2], &r[3])
        else {
            panic!("a chunk row reads as {r:?}");
        };
        let mut builder = ChunkBuilder::new(*first_n);
        let mut changed = false;
        for (_, key) in chunk_keys(*first_n, *last_n, data, first_n - 1, i64::MAX).unwrap() {
            let key = match pairs.iter().find(|(from, _)| *from == key) {
                Some((_, to)) => {
                    changed = true;
                    n += 1;
                    to.to_string()
                }
                None => key,
            };
            assert!(builder.push(&key).is_none(), "the test's row sets fit one chunk");
        }
        let chunk = builder.finish().unwrap();
        if changed {
            let d = conn.dialect();
            let ps: Vec<String> = (1..=6).map(|i| d.param(i)).collect();
            conn.execute(
                &format!(
                    "UPDATE lockgate_export_chunks SET packed = {}, int_lo = {}, int_hi = {}, texts = {} \
                     WHERE export_id = {} AND first_n = {}",
                    ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
                ),
                &[
                    Value::Bytes(chunk.data),
                    chunk.int_range.map_or(Value::Null, |r| Value::Int(r.0)),
                    chunk.int_range.map_or(Value::Null, |r| Value::Int(r.1)),
                    Value::Int(chunk.texts),
                    Value::Int(*id),
                    Value::Int(*first_n),
                ],
            )
            .await
            .unwrap();
        }
    }
    n
}

/// A source table keyed on a `character(5)` column: its DDL, the key, the rows at
/// first and a row added later, and the recorded key texts as an earlier Lockgate
/// wrote them (`from` → `to`).
type KeyShape = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    [(&'static str, &'static str); 2],
);

/// A transfer keyed on a PostgreSQL `character(5)` column, one key column and two,
/// into each engine (the ledger is the destination's): an export whose row set an
/// earlier Lockgate recorded with padded keys (`'ab   '`, where the row now reads
/// `'ab'`) still completes, and its completed rows are not taken again by the next
/// export, which takes only the new row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_recorded_with_padded_char_keys_complete_and_hold_their_rows() {
    let shapes: [KeyShape; 2] = [
        (
            "CREATE TABLE codes (code character(5) PRIMARY KEY, v int NOT NULL)",
            &["code"],
            "INSERT INTO codes (code, v) VALUES ('ab', 1), ('cd', 2)",
            "INSERT INTO codes (code, v) VALUES ('ef', 3)",
            [("ab", "ab   "), ("cd", "cd   ")],
        ),
        (
            "CREATE TABLE codes (code character(5), v int NOT NULL, PRIMARY KEY (code, v))",
            &["code", "v"],
            "INSERT INTO codes (code, v) VALUES ('ab', 1), ('cd', 2)",
            "INSERT INTO codes (code, v) VALUES ('ef', 3)",
            [
                (r#"["ab","1"]"#, r#"["ab   ","1"]"#),
                (r#"["cd","2"]"#, r#"["cd   ","2"]"#),
            ],
        ),
    ];
    for dest in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        for (ddl, key, first, later, padded) in &shapes {
            let what = format!("{dest}, key {key:?}");
            let src = TestDb::new(Engine::Postgres).await;
            let dst = TestDb::new(dest).await;
            let mut sc = src.conn().await;
            sc.batch(ddl).await.unwrap();
            sc.batch(first).await.unwrap();
            let mut dc = dst.conn().await;
            let dst_ddl = match dest {
                Engine::Mysql => {
                    "CREATE TABLE codes (code varchar(5), v int NOT NULL, PRIMARY KEY (code, v)) ENGINE=InnoDB"
                }
                _ => "CREATE TABLE codes (code varchar(5), v int NOT NULL, PRIMARY KEY (code, v))",
            };
            dc.batch(dst_ddl).await.unwrap();
            let t = codes(&src, &dst, key);
            let created = transfer::create(&t, &CreateOptions::default()).await.unwrap();
            assert_eq!(created.available, 2, "{what}");
            // The row set as an earlier Lockgate recorded it: the keys padded.
            assert_eq!(rewrite_keys(&mut dc, padded).await, 2, "{what}");
            let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
                .await
                .unwrap();
            assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
            assert_eq!(r.exports[0].export.status, "completed", "{what}");
            assert_eq!(table_rows(&mut dc, "codes").await.unwrap(), ["ab|1", "cd|2"], "{what}");
            // Nothing new: the completed export holds both rows, padded or not.
            let none = transfer::create(&t, &CreateOptions::default()).await.unwrap();
            assert!(!none.created, "{what}: {none:?}");
            // A new row: the next export takes it alone.
            sc.batch(later).await.unwrap();
            let next = transfer::create(&t, &CreateOptions::default()).await.unwrap();
            assert!(next.created, "{what}");
            assert_eq!(next.available, 1, "{what}: the padded keys are held");
            let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
                .await
                .unwrap();
            assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
            assert_eq!(
                table_rows(&mut dc, "codes").await.unwrap(),
                ["ab|1", "cd|2", "ef|3"],
                "{what}"
            );
        }
    }
}

fn version(dir: &std::path::Path, v: &str, meta: &str, file: &str, data: &str) {
    let v = dir.join(v);
    std::fs::create_dir_all(v.join("default")).unwrap();
    std::fs::write(v.join("meta.json"), meta).unwrap();
    std::fs::write(v.join("default").join(file), data).unwrap();
}

async fn migrate(url: &lockgate_db::DbUrl, dir: &std::path::Path) {
    let m = lockgate::migrate(
        url,
        &MigrateOptions {
            dir: dir.to_path_buf(),
            ..MigrateOptions::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(m.migrated_versions.as_ref().map(Vec::len), Some(1), "{m:?}");
}

fn to_zero() -> RollbackOptions {
    RollbackOptions {
        to: "0.0.0".parse().unwrap(),
        ..RollbackOptions::default()
    }
}

/// A rollback on PostgreSQL whose row images an earlier Lockgate recorded with a
/// `character(5)` key padded (`'ab   '`): it finds the rows by their key as they
/// read now, reports no false conflict, puts back the row it updated and deletes
/// the one it inserted; a row changed since is still a conflict (exit 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_finds_rows_whose_images_hold_padded_char_keys() {
    let db = TestDb::new(Engine::Postgres).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE codes (code character(5) PRIMARY KEY, name text NOT NULL)")
        .await
        .unwrap();
    conn.batch("INSERT INTO codes (code, name) VALUES ('ab', 'old'), ('zz', 'keep')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    version(
        dir.path(),
        "1.0.0",
        r#"{"files": [{"model": "codes", "file": "default/codes.json"}]}"#,
        "codes.json",
        r#"[{"code": "ab", "name": "new"}, {"code": "cd", "name": "added"}]"#,
    );
    migrate(&db.url, dir.path()).await;
    // The images as an earlier Lockgate recorded them: each code padded to 5.
    let mut padded = 0;
    for code in ["ab", "cd"] {
        for column in ["key_json", "before_json", "after_json"] {
            padded += conn
                .execute(
                    &format!(
                        "UPDATE lockgate_row_images SET {column} = replace({column}, '\"{code}\"', '\"{code}   \"') \
                         WHERE {column} LIKE '%\"{code}\"%'"
                    ),
                    &[],
                )
                .await
                .unwrap();
        }
    }
    assert!(padded >= 2, "the images name both rows: {padded}");
    assert!(
        rows(&mut conn, "SELECT key_json FROM lockgate_row_images ORDER BY id")
            .await
            .iter()
            .any(|k| k.contains("\"ab   \"")),
        "a padded key is recorded"
    );

    // Someone changes the updated row: a conflict, as ever (found by its key).
    conn.batch("UPDATE codes SET name = 'changed' WHERE code = 'ab'")
        .await
        .unwrap();
    let r = lockgate::rollback(&db.url, &to_zero()).await.unwrap();
    assert_eq!(r.exit_code(), 4, "{r:?}");
    assert_eq!(r.conflicts.len(), 1, "{r:?}");
    assert_eq!(r.conflicts[0].found.as_ref().unwrap()["name"], "changed");
    conn.batch("UPDATE codes SET name = 'new' WHERE code = 'ab'")
        .await
        .unwrap();

    let r = lockgate::rollback(&db.url, &to_zero()).await.unwrap();
    assert!(r.committed && r.conflicts.is_empty(), "{r:?}");
    assert_eq!((r.deleted, r.restored), (1, 1), "{r:?}");
    assert_eq!(
        rows(&mut conn, "SELECT code, name FROM codes ORDER BY code").await,
        ["ab|old", "zz|keep"]
    );
}

/// MariaDB stores `''` for an unknown ENUM label in a lenient session. A migration
/// that updates such a row and (sync) deletes another is rolled back: both get
/// their `''` back, though Lockgate's strict session cannot write it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_puts_back_an_enum_error_value() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE items (id int PRIMARY KEY, e enum('a','b') NOT NULL, name varchar(10) NOT NULL) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    // The application's lenient session.
    conn.batch("SET SESSION sql_mode = ''").await.unwrap();
    conn.batch("INSERT INTO items (id, e, name) VALUES (1, 'zz', 'old'), (2, 'zz', 'gone'), (3, 'b', 'keep')")
        .await
        .unwrap();
    let before = ["1||old", "2||gone", "3|b|keep"];
    assert_eq!(
        rows(&mut conn, "SELECT id, e, name FROM items ORDER BY id").await,
        before
    );
    let dir = tempfile::tempdir().unwrap();
    version(
        dir.path(),
        "1.0.0",
        r#"{"files": [{"model": "items", "file": "default/items.json", "mode": "sync"}]}"#,
        "items.json",
        r#"[{"id": 1, "e": "a", "name": "new"}, {"id": 3, "e": "b", "name": "keep"}]"#,
    );
    migrate(&db.url, dir.path()).await;
    assert_eq!(
        rows(&mut conn, "SELECT id, e, name FROM items ORDER BY id").await,
        ["1|a|new", "3|b|keep"]
    );
    let r = lockgate::rollback(&db.url, &to_zero()).await.unwrap();
    assert!(r.committed && r.conflicts.is_empty(), "{r:?}");
    assert_eq!(r.restored, 2, "{r:?}");
    assert_eq!(
        rows(&mut conn, "SELECT id, e, name FROM items ORDER BY id").await,
        before
    );
    assert_eq!(
        rows(&mut conn, "SELECT count(*) FROM items WHERE e = '' AND e + 0 = 0").await,
        ["2"],
        "the ENUM's error value, index 0"
    );
}

/// An ENUM error value `''` in a KEY column cannot be put back (a write cannot give
/// it, and the placeholder would find another row by its key): the rollback is
/// refused naming the table and column, and no row changes, the placeholder's
/// namesake included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_refuses_an_enum_error_value_in_a_key() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE items (kind enum('a','b') NOT NULL, code varchar(10) NOT NULL, label varchar(20), \
         PRIMARY KEY (kind, code)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    conn.batch("SET SESSION sql_mode = ''").await.unwrap();
    conn.batch("INSERT INTO items VALUES ('zz', 'x', 'old'), ('a', 'x', 'other')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    version(
        dir.path(),
        "1.0.0",
        r#"{"files": [{"model": "items", "file": "default/items.json", "mode": "sync"}]}"#,
        "items.json",
        r#"[{"kind": "a", "code": "x", "label": "other"}]"#,
    );
    migrate(&db.url, dir.path()).await;
    let after = ["a|x|other"];
    assert_eq!(
        rows(&mut conn, "SELECT kind, code, label FROM items ORDER BY kind, code").await,
        after
    );
    let e = lockgate::rollback(&db.url, &to_zero()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("items") && text.contains("key column kind") && text.contains("ENUM error value"),
        "{text}"
    );
    assert_eq!(
        rows(&mut conn, "SELECT kind, code, label FROM items ORDER BY kind, code").await,
        after,
        "nothing changed"
    );
}
