//! Reads that must hold one page, never a whole table, on all three engines: a table
//! without a primary key paged by its unique key of NOT NULL columns (what
//! `clearTables` records row images with), limited to a tenant's rows by the page
//! query; keyset pages that meet every row once whatever the key (page boundaries
//! inside a group sharing the first column, keys equal but for case, a MariaDB ENUM or
//! SET, an SQLite primary key holding NULLs); and the ledger's row images read a page
//! of images at a time (`ImagePages`, what `migrate --force` compares with the later
//! versions' images), however many keys one inserted batch's ledger row holds.

use crate::support::TestDb;
use lockgate_core::Value;
use lockgate_db::ledger::Ledger;
use lockgate_db::read::TableReader;
use lockgate_db::versions::{self, ImagePages, InsertedRows, RowImage};
use lockgate_db::Engine;

const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

/// Rows of `code_list` in [`a_table_without_a_primary_key_pages_by_its_unique_key`]:
/// several pages of [`PAGE`], the last one short.
const ROWS: usize = 61;
const PAGE: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_primary_key_pages_by_its_unique_key() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch(
            "CREATE TABLE code_list (code varchar(20) NOT NULL, tenant varchar(20) NOT NULL, label varchar(50), \
             note varchar(20), CONSTRAINT code_list_code UNIQUE (code, tenant))",
        )
        .await
        .unwrap();
        conn.batch("CREATE TABLE loose (code varchar(20), label varchar(50), CONSTRAINT loose_code UNIQUE (code))")
            .await
            .unwrap();
        // Inserted out of key order, two tenants interleaved.
        for i in (0..ROWS).rev() {
            let tenant = if i % 3 == 0 { "t1" } else { "t2" };
            conn.execute(
                &format!(
                    "INSERT INTO code_list (code, tenant, label) VALUES ('c{:03}', '{tenant}', 'label {i}')",
                    (i * 37) % ROWS
                ),
                &[],
            )
            .await
            .unwrap();
        }
        let table = conn.find_table("code_list").await.unwrap();
        assert!(table.primary_key.is_empty(), "{engine}: {table:?}");
        let key = lockgate_db::writer::image_key(&table);
        assert_eq!(key, ["code", "tenant"], "{engine}");

        // Every row once, in key order, never more than a page at a time.
        let mut reader = TableReader::by_key(&table, None, &key, PAGE).unwrap();
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(batch) = reader.next_batch(&mut conn).await.unwrap() {
            assert!(batch.rows.len() <= PAGE, "{engine}: a page of {}", batch.rows.len());
            pages += 1;
            for r in &batch.rows {
                seen.push(r.values[0].to_json().as_str().unwrap().to_string());
            }
        }
        assert_eq!(pages, ROWS.div_ceil(PAGE), "{engine}");
        let mut expected: Vec<String> = (0..ROWS).map(|i| format!("c{:03}", (i * 37) % ROWS)).collect();
        expected.sort();
        assert_eq!(seen, expected, "{engine}");

        // A tenant's rows, picked by the query: the other tenant's never read.
        let mut reader = TableReader::by_key(&table, None, &key, PAGE)
            .unwrap()
            .only("TENANT", vec![Value::Text("t1".into())])
            .unwrap();
        let mut t1 = 0;
        while let Some(batch) = reader.next_batch(&mut conn).await.unwrap() {
            assert!(batch.rows.len() <= PAGE, "{engine}");
            for r in &batch.rows {
                assert_eq!(r.values[1], Value::Text("t1".into()), "{engine}: {r:?}");
                t1 += 1;
            }
        }
        assert_eq!(t1, (0..ROWS).filter(|i| i % 3 == 0).count(), "{engine}");
        // No tenant: no row (and no query with an empty IN list).
        let mut none = TableReader::by_key(&table, None, &key, PAGE)
            .unwrap()
            .only("tenant", Vec::new())
            .unwrap();
        assert!(none.next_batch(&mut conn).await.unwrap().is_none(), "{engine}");

        // A key that does not tell rows apart is refused, naming table and column.
        let loose = conn.find_table("loose").await.unwrap();
        assert!(lockgate_db::writer::image_key(&loose).is_empty(), "{engine}");
        let e = TableReader::by_key(&loose, None, &["code".to_string()], PAGE)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("code") && e.to_string().contains("loose") && e.to_string().contains("NULL"),
            "{engine}: {e}"
        );
        let e = TableReader::by_key(&loose, None, &[], PAGE).err().unwrap();
        assert!(e.to_string().contains("cannot be told apart"), "{engine}: {e}");
        let e = TableReader::new(&loose, None, PAGE).err().unwrap();
        assert!(e.to_string().contains("no primary key"), "{engine}: {e}");
    }
}

/// Every row of `table` read by a [`TableReader`] over `key`, `page` rows at a time,
/// each row's values as text joined by `|`; and how many pages held rows. Asserts no
/// page is over `page` rows.
async fn read_all(conn: &mut lockgate_db::Conn, table: &str, key: &[&str], page: usize) -> (Vec<String>, usize) {
    let engine = conn.dialect().0;
    let table = conn.find_table(table).await.unwrap();
    let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    let mut reader = TableReader::by_key(&table, None, &key, page).unwrap();
    let (mut seen, mut pages) = (Vec::new(), 0);
    while let Some(batch) = reader.next_batch(conn).await.unwrap() {
        assert!(batch.rows.len() <= page, "{engine}: a page of {}", batch.rows.len());
        assert_eq!(
            batch.columns.len(),
            table.columns.len(),
            "{engine}: {:?}",
            batch.columns
        );
        pages += 1;
        for r in &batch.rows {
            assert_eq!(r.values.len(), table.columns.len(), "{engine}: {r:?}");
            let text: Vec<String> = r
                .values
                .iter()
                .map(|v| match v.to_json() {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect();
            seen.push(text.join("|"));
        }
    }
    (seen, pages)
}

/// `list` sorted, for comparing what was read with what was written as multisets.
fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_pages_meet_every_row_once_across_groups_and_case() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        // Groups of 5 rows sharing the first key column, read 7 at a time: page
        // boundaries fall inside groups. 35 rows: exactly 5 pages, and an empty read.
        conn.batch(
            "CREATE TABLE grouped (grp varchar(10) NOT NULL, n integer NOT NULL, label varchar(20), \
             CONSTRAINT grouped_key UNIQUE (grp, n))",
        )
        .await
        .unwrap();
        let mut written = Vec::new();
        for i in (0..35).rev() {
            let (grp, n) = (format!("g{}", i / 5), (i * 3) % 5);
            conn.execute(
                &format!("INSERT INTO grouped (grp, n, label) VALUES ('{grp}', {n}, 'l{i}')"),
                &[],
            )
            .await
            .unwrap();
            written.push(format!("{grp}|{n}|l{i}"));
        }
        let (seen, pages) = read_all(&mut conn, "grouped", &["grp", "n"], 7).await;
        assert_eq!(pages, 5, "{engine}");
        assert_eq!(seen, sorted(written.clone()), "{engine}: in key order, each once");

        // Keys equal but for case: one group under MariaDB's case-insensitive
        // collation, ordered by `n` there, four groups elsewhere; a page of one row
        // puts a boundary between every two.
        conn.batch(
            "CREATE TABLE cased (code varchar(10) NOT NULL, n integer NOT NULL, \
             CONSTRAINT cased_key UNIQUE (code, n))",
        )
        .await
        .unwrap();
        let cased = ["abc|1", "ABC|2", "abc|3", "ABC|4", "Abd|5", "abd|6"];
        for row in cased {
            let (code, n) = row.split_once('|').unwrap();
            conn.execute(&format!("INSERT INTO cased (code, n) VALUES ('{code}', {n})"), &[])
                .await
                .unwrap();
        }
        for page in [1, 2, 4] {
            let (seen, _) = read_all(&mut conn, "cased", &["code", "n"], page).await;
            assert_eq!(
                sorted(seen.clone()),
                sorted(cased.map(String::from).to_vec()),
                "{engine}: {page}"
            );
            if engine == Engine::Mysql {
                assert_eq!(seen, cased, "{engine}: {page}: one group per word, by n");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_enum_key_pages_by_label_and_meets_every_row() {
    // MariaDB sorts ENUM('z','a') by position (z first) but compares it with text as
    // text ('a' < 'z'): a page ending on 'z' and resuming at "> 'z'" skipped every 'a'.
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE kinds (kind ENUM('z', 'a') NOT NULL, code varchar(10) NOT NULL, tags SET('y', 'b') NOT NULL, \
         CONSTRAINT kinds_key UNIQUE (kind, code))",
    )
    .await
    .unwrap();
    conn.batch(
        "CREATE TABLE sets (tags SET('y', 'b') NOT NULL, n integer NOT NULL, CONSTRAINT sets_key UNIQUE (tags, n))",
    )
    .await
    .unwrap();
    let mut written = Vec::new();
    let mut sets = Vec::new();
    for i in 0..40 {
        let kind = if i % 2 == 0 { "z" } else { "a" };
        let tags = ["y", "b", "y,b", ""][i % 4];
        conn.execute(
            &format!("INSERT INTO kinds (kind, code, tags) VALUES ('{kind}', 'c{i:02}', '{tags}')"),
            &[],
        )
        .await
        .unwrap();
        conn.execute(&format!("INSERT INTO sets (tags, n) VALUES ('{tags}', {i})"), &[])
            .await
            .unwrap();
        written.push(format!("{kind}|c{i:02}|{tags}"));
        sets.push(format!("{tags}|{i}"));
    }
    for page in [1, 7, 20, 40] {
        let (seen, pages) = read_all(&mut conn, "kinds", &["kind", "code"], page).await;
        // By label: every 'a' row, then every 'z' row, each once.
        assert_eq!(seen, sorted(written.clone()), "page {page}");
        assert_eq!(pages, 40usize.div_ceil(page), "page {page}");
        let (seen, _) = read_all(&mut conn, "sets", &["tags", "n"], page).await;
        assert_eq!(sorted(seen), sorted(sets.clone()), "page {page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_primary_key_holding_nulls_pages_them_first_and_meets_every_row() {
    // SQLite lets a non-INTEGER primary key of a rowid table hold NULLs, several: a
    // page ending on NULL resumed at "IS NOT NULL" (or "> NULL") and skipped the rest.
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE np (code TEXT PRIMARY KEY, label TEXT)")
        .await
        .unwrap();
    conn.batch("CREATE TABLE np2 (a TEXT, b INTEGER, label TEXT, PRIMARY KEY (a, b))")
        .await
        .unwrap();
    let mut written = Vec::new();
    let mut written2 = Vec::new();
    for i in 0..23 {
        let code = if i % 3 == 0 {
            format!("'c{i:02}'")
        } else {
            "NULL".to_string()
        };
        conn.execute(&format!("INSERT INTO np (code, label) VALUES ({code}, 'l{i:02}')"), &[])
            .await
            .unwrap();
        written.push(format!("{}|l{i:02}", code.trim_matches('\'').replace("NULL", "null")));
        let b = if i % 2 == 0 {
            format!("{}", i % 4)
        } else {
            "NULL".to_string()
        };
        conn.execute(
            &format!("INSERT INTO np2 (a, b, label) VALUES ({code}, {b}, 'l{i:02}')"),
            &[],
        )
        .await
        .unwrap();
        written2.push(format!(
            "{}|{}|l{i:02}",
            code.trim_matches('\'').replace("NULL", "null"),
            b.replace("NULL", "null")
        ));
    }
    let table = conn.find_table("np").await.unwrap();
    assert!(table.column("code").unwrap().nullable, "{table:?}");
    for page in [1, 2, 5, 23] {
        let (seen, _) = read_all(&mut conn, "np", &["code"], page).await;
        assert_eq!(sorted(seen.clone()), sorted(written.clone()), "page {page}");
        // NULLs first.
        assert!(
            seen[..15].iter().all(|r| r.starts_with("null|")),
            "page {page}: {seen:?}"
        );
        let (seen, _) = read_all(&mut conn, "np2", &["a", "b"], page).await;
        assert_eq!(sorted(seen), sorted(written2.clone()), "page {page}");
        // TableReader::new pages by the primary key the same way.
        let mut reader = TableReader::new(&table, Some(&["label".to_string()]), page).unwrap();
        let mut labels = Vec::new();
        while let Some(batch) = reader.next_batch(&mut conn).await.unwrap() {
            // The columns asked for only: what the cursor needs is not handed on.
            assert_eq!(*batch.columns, ["label"], "page {page}");
            assert!(batch.rows.iter().all(|r| r.values.len() == 1), "page {page}");
            labels.extend(
                batch
                    .rows
                    .iter()
                    .map(|r| r.values[0].to_json().as_str().unwrap().to_string()),
            );
        }
        assert_eq!(
            sorted(labels),
            (0..23).map(|i| format!("l{i:02}")).collect::<Vec<_>>(),
            "page {page}"
        );
    }
}

/// One deleted row's image of table `t`, keyed by `id`.
fn deleted(id: i64) -> RowImage {
    let key: serde_json::Map<String, serde_json::Value> =
        [("id".to_string(), serde_json::json!(id))].into_iter().collect();
    RowImage {
        table: "t".into(),
        op: 'd',
        key: key.clone(),
        before: Some(key),
        after: None,
        after_fingerprint: None,
    }
}

/// The rows a batch inserted into `t`: keys `ids`, fingerprints `f{id}`.
fn inserted(ids: std::ops::Range<i64>) -> InsertedRows {
    InsertedRows {
        table: "t".into(),
        key_columns: vec!["id".into()],
        keys: ids.clone().map(|i| vec![serde_json::json!(i)]).collect(),
        columns: vec!["id".into()],
        fingerprints: ids.map(|i| format!("f{i}")).collect(),
    }
}

/// An image as `version:op:id[:fingerprint]`, to compare with what was written.
fn label(s: &versions::StoredImage) -> String {
    let mut out = format!("{}:{}:{}", s.version, s.image.op, s.image.key["id"]);
    if let Some(f) = &s.image.after_fingerprint {
        assert_eq!(*f.columns, ["id"], "{s:?}");
        out.push_str(&format!(":{}", f.value));
    }
    out
}

/// Every page of `pages`, asserting each is neither empty nor over `bound` images.
async fn pages_of(conn: &mut lockgate_db::Conn, mut pages: ImagePages, bound: usize) -> (Vec<String>, Vec<usize>) {
    let (mut read, mut sizes) = (Vec::new(), Vec::new());
    while let Some(page) = pages.next_page(conn).await.unwrap() {
        assert!(!page.is_empty() && page.len() <= bound, "a page of {}", page.len());
        sizes.push(page.len());
        read.extend(page.iter().map(label));
    }
    (read, sizes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_images_are_read_a_page_of_images_at_a_time_version_by_version() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let conn = ledger.conn();
        // Two versions written interleaved (as a forced re-apply does), and another
        // module's images between them.
        let v1: Vec<RowImage> = (1..=20).map(deleted).collect();
        versions::write_images(conn, "m", "1.0.0", &v1[..10]).await.unwrap();
        versions::write_inserted(conn, "m", "2.0.0", &inserted(100..130))
            .await
            .unwrap();
        versions::write_images(conn, "other", "1.0.0", &v1[..3]).await.unwrap();
        let mark = versions::last_image_id(conn).await.unwrap();
        versions::write_images(conn, "m", "1.0.0", &v1[10..]).await.unwrap();
        versions::write_images(conn, "m", "2.0.0", &(200..209).map(deleted).collect::<Vec<_>>())
            .await
            .unwrap();
        versions::write_inserted(conn, "m", "1.0.0", &inserted(300..303))
            .await
            .unwrap();

        let expect = |version: &str, op: char, ids: std::ops::Range<i64>| -> Vec<String> {
            ids.map(|i| match op {
                'i' => format!("{version}:i:{i}:f{i}"),
                _ => format!("{version}:{op}:{i}"),
            })
            .collect()
        };
        let v2_all: Vec<String> = [expect("2.0.0", 'i', 100..130), expect("2.0.0", 'd', 200..209)].concat();
        let v1_all: Vec<String> = [expect("1.0.0", 'd', 1..21), expect("1.0.0", 'i', 300..303)].concat();

        // Versions in the order asked (2.0.0 first), each in the order written, at
        // most 7 images a page however many keys an inserted row holds.
        let both = ["2.0.0".to_string(), "1.0.0".to_string()];
        let (read, sizes) = pages_of(conn, ImagePages::new("m", &both, 0, PAGE), PAGE).await;
        assert_eq!(read, [v2_all.clone(), v1_all.clone()].concat(), "{engine}");
        assert_eq!(sizes, [7, 7, 7, 7, 7, 7, 7, 7, 6], "{engine}");
        // Pages of one image, of exactly an inserted row, and of everything.
        for page in [1, 30, 1_000] {
            let (again, sizes) = pages_of(conn, ImagePages::new("m", &both, 0, page), page).await;
            assert_eq!(again, read, "{engine}: {page}");
            assert_eq!(sizes.iter().sum::<usize>(), 62, "{engine}: {page}");
        }
        // Without fingerprints: the same images, none carrying one.
        let mut pages = ImagePages::new("m", &both, 0, PAGE).without_fingerprints();
        let mut plain = Vec::new();
        while let Some(page) = pages.next_page(conn).await.unwrap() {
            assert!(page.iter().all(|s| s.image.after_fingerprint.is_none()), "{engine}");
            plain.extend(page.iter().map(label));
        }
        let unprinted: Vec<String> = read
            .iter()
            .map(|l| match l.rsplit_once(":f") {
                Some((head, _)) => head.to_string(),
                None => l.clone(),
            })
            .collect();
        assert_eq!(plain, unprinted, "{engine}");

        // After a mark: only what was written since, in every version.
        let (after, _) = pages_of(conn, ImagePages::new("m", &both, mark, 4), 4).await;
        let v1_later: Vec<String> = [expect("1.0.0", 'd', 11..21), expect("1.0.0", 'i', 300..303)].concat();
        assert_eq!(after, [expect("2.0.0", 'd', 200..209), v1_later].concat(), "{engine}");
        let direct: Vec<String> = versions::read_images_after(conn, "m", &both, mark)
            .await
            .unwrap()
            .iter()
            .map(label)
            .collect();
        assert_eq!(direct, after, "{engine}");
        // Nothing of an unknown version or module.
        let mut pages = ImagePages::new("nobody", &both, 0, PAGE);
        assert!(pages.next_page(conn).await.unwrap().is_none(), "{engine}");
        let mut pages = ImagePages::new("m", &["9.0.0".to_string()], 0, PAGE);
        assert!(pages.next_page(conn).await.unwrap().is_none(), "{engine}");

        // A later version inserting 50,000 rows (five batches of 10,000, the writer's
        // default, each one ledger row): no page over IMAGE_PAGE images.
        for b in 0..5 {
            versions::write_inserted(conn, "m", "3.0.0", &inserted(b * 10_000..(b + 1) * 10_000))
                .await
                .unwrap();
        }
        let three = ["3.0.0".to_string()];
        let (read, sizes) = pages_of(
            conn,
            ImagePages::new("m", &three, 0, versions::IMAGE_PAGE),
            versions::IMAGE_PAGE,
        )
        .await;
        assert_eq!(sizes.len(), 50_000 / versions::IMAGE_PAGE, "{engine}");
        assert_eq!(read, expect("3.0.0", 'i', 0..50_000), "{engine}");
    }
}
