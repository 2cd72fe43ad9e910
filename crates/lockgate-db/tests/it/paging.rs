//! Reads that must hold one page, never a whole table, on all three engines: a table
//! without a primary key paged by its unique key of NOT NULL columns (what
//! `clearTables` records row images with), limited to a tenant's rows by the page
//! query; and the ledger's row images read a page at a time (`ImagePages`, what
//! `migrate --force` compares with the later versions' images).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_images_are_read_a_page_at_a_time_version_by_version() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let conn = ledger.conn();
        let v1: Vec<RowImage> = (1..=20).map(deleted).collect();
        versions::write_images(conn, "m", "1.0.0", &v1).await.unwrap();
        versions::write_images(conn, "other", "1.0.0", &v1[..3]).await.unwrap();
        let mark = versions::last_image_id(conn).await.unwrap();
        // 2.0.0: one ledger row of 30 inserted keys, then 9 deleted rows.
        versions::write_inserted(
            conn,
            "m",
            "2.0.0",
            &InsertedRows {
                table: "t".into(),
                key_columns: vec!["id".into()],
                keys: (100..130).map(|i| vec![serde_json::json!(i)]).collect(),
                columns: vec!["id".into()],
                fingerprints: (100..130).map(|i| format!("f{i}")).collect(),
            },
        )
        .await
        .unwrap();
        versions::write_images(conn, "m", "2.0.0", &(200..209).map(deleted).collect::<Vec<_>>())
            .await
            .unwrap();

        let both = ["1.0.0".to_string(), "2.0.0".to_string()];
        let mut pages = ImagePages::new("m", &both, 0, PAGE);
        let mut read = Vec::new();
        let mut sizes = Vec::new();
        while let Some(page) = pages.next_page(conn).await.unwrap() {
            assert!(!page.is_empty(), "{engine}");
            sizes.push(page.len());
            read.extend(page);
        }
        // 1.0.0's 20 rows in pages of 7; 2.0.0's first page holds the I row (30
        // images) and 6 more, then the last 3.
        assert_eq!(sizes, [7, 7, 6, 36, 3], "{engine}");
        assert_eq!(read, versions::read_images(conn, "m", &both).await.unwrap(), "{engine}");
        assert_eq!(read.len(), 20 + 30 + 9, "{engine}");
        assert!(read[..20].iter().all(|s| s.version == "1.0.0"), "{engine}");
        assert!(
            read[20..50].iter().all(|s| s.version == "2.0.0" && s.image.op == 'i'),
            "{engine}"
        );

        // After a mark: only what was written since, in every version.
        let mut pages = ImagePages::new("m", &both, mark, 4);
        let mut after = Vec::new();
        while let Some(page) = pages.next_page(conn).await.unwrap() {
            after.extend(page);
        }
        assert_eq!(after, read[20..], "{engine}");
        assert_eq!(
            versions::read_images_after(conn, "m", &both, mark).await.unwrap(),
            read[20..],
            "{engine}"
        );
        // Nothing of an unknown version or module.
        let mut pages = ImagePages::new("nobody", &both, 0, PAGE);
        assert!(pages.next_page(conn).await.unwrap().is_none(), "{engine}");
    }
}
