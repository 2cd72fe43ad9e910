//! Table browsing (`lockgate_db::browse`) on all three engines, with the same data and
//! the same expectations (computed here, in Rust), so that every engine pages, sorts,
//! places NULLs and searches alike: every page walked forward and back adds up to the
//! whole ordered table, no row missing or repeated.

use crate::support::TestDb;
use lockgate_core::Value;
use lockgate_db::browse::{browse, BrowseError, BrowsePage, BrowseQuery, Cursor, Paging, RowCount};
use lockgate_db::{Conn, DbError, Engine};
use std::cmp::Ordering;

on_every_engine!(
    every_order_pages_forward_and_back,
    composite_keys_page_forward_and_back,
    tables_without_a_primary_key,
    search_is_case_insensitive_and_literal,
    bad_requests_are_typed_errors,
    totals_are_exact_estimated_or_capped,
);

const PER_PAGE: usize = 7;

/// Lower-case ASCII only: text sorts the same under PostgreSQL's `C`, MariaDB's
/// case-insensitive collation and SQLite's BINARY.
const WORDS: [&str; 13] = [
    "amber", "birch", "cedar", "dune", "elm", "fern", "grove", "heath", "iris", "juniper", "kelp", "larch", "moss",
];

/// The notes that exercise search: wildcards, the escape character, mixed case.
fn note(id: i64) -> Value {
    match id {
        5 => text("50% off"),
        6 => text("5000 off"),
        7 => text("a_b"),
        8 => text("axb"),
        9 => text("Mixed CASE Text"),
        10 => text("mixed case"),
        11 => text("wow!"),
        12 => text("wow"),
        _ if id % 5 == 0 => Value::Null,
        _ => text(&format!("note {id}")),
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// `people` rows (id, name, score, note): names and scores repeat, scores hold NULLs.
fn people_rows() -> Vec<Vec<Value>> {
    (1..=120)
        .map(|id: i64| {
            vec![
                Value::Int(id),
                text(WORDS[(id * 7 % 13) as usize]),
                if id % 8 == 0 {
                    Value::Null
                } else {
                    Value::Int(id * 37 % 11)
                },
                note(id),
            ]
        })
        .collect()
}

/// `pairs` rows (a, b, v) with the key (a, b); v repeats and holds NULLs.
fn pairs_rows() -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for a in 1..=12i64 {
        for b in ["x", "y", "z", "w", "v"] {
            let v = if (a + b.len() as i64 + b.as_bytes()[0] as i64) % 6 == 0 {
                Value::Null
            } else {
                Value::Int((a * 5 + b.as_bytes()[0] as i64) % 4)
            };
            rows.push(vec![Value::Int(a), text(b), v]);
        }
    }
    rows
}

/// Inserts rows one statement each, in one transaction, in a scrambled order (so that
/// the order read back comes from ORDER BY, not from the insert).
async fn insert(conn: &mut Conn, table: &str, columns: &[&str], rows: &[Vec<Value>]) {
    let d = conn.dialect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        (1..=columns.len()).map(|i| d.param(i)).collect::<Vec<_>>().join(", ")
    );
    conn.begin().await.unwrap();
    for k in 0..rows.len() {
        // 7 is coprime with every row count used here, so this visits each row once.
        let row = &rows[k * 7 % rows.len()];
        conn.execute(&sql, row).await.unwrap();
    }
    conn.commit().await.unwrap();
}

async fn fixture(engine: Engine) -> (TestDb, Conn) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE people (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, score INTEGER, note VARCHAR(100))")
        .await
        .unwrap();
    conn.batch("CREATE TABLE pairs (a INTEGER NOT NULL, b VARCHAR(10) NOT NULL, v INTEGER, PRIMARY KEY (a, b))")
        .await
        .unwrap();
    insert(&mut conn, "people", &["id", "name", "score", "note"], &people_rows()).await;
    insert(&mut conn, "pairs", &["a", "b", "v"], &pairs_rows()).await;
    (db, conn)
}

/// The order the module promises: NULL smallest, ints by value, text by bytes.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        _ => panic!("the test data compares only ints and text, not {a:?} and {b:?}"),
    }
}

/// Rows ordered by column `sort` (if any), then the key columns; reversed when descending.
fn ordered(mut rows: Vec<Vec<Value>>, sort: Option<usize>, key: &[usize], descending: bool) -> Vec<Vec<Value>> {
    rows.sort_by(|x, y| {
        sort.iter()
            .chain(key)
            .map(|&i| compare(&x[i], &y[i]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if descending {
        rows.reverse();
    }
    rows
}

fn query(sort: Option<&str>, descending: bool, search: Option<&str>) -> BrowseQuery {
    BrowseQuery {
        sort: sort.map(str::to_string),
        descending,
        search: search.map(str::to_string),
        per_page: PER_PAGE,
        after: None,
        before: None,
    }
}

/// A cursor as the dashboard carries it: through its text.
fn through_text(cursor: &Cursor) -> Cursor {
    Cursor::decode(&cursor.encode()).unwrap()
}

/// Walks every page forward from the first, then back from the last; both walks must
/// cut the same pages. Returns the rows in order.
async fn walk(conn: &mut Conn, table: &str, q: &BrowseQuery) -> Vec<Vec<Value>> {
    let what = format!(
        "{table} sorted by {:?} desc={} search={:?}",
        q.sort, q.descending, q.search
    );
    let mut page = browse(conn, table, q).await.unwrap();
    assert!(page.prev.is_none(), "{what}: the first page has no previous page");
    let first_next = page.next.clone();
    let mut forward: Vec<Vec<Vec<Value>>> = Vec::new();
    loop {
        forward.push(page.rows.clone());
        let Some(next) = page.next.clone() else { break };
        assert_eq!(page.rows.len(), PER_PAGE, "{what}: only the last page may be short");
        let after = BrowseQuery {
            after: Some(through_text(&next)),
            ..q.clone()
        };
        page = browse(conn, table, &after).await.unwrap();
        assert!(page.prev.is_some(), "{what}: a page after another has a previous page");
        assert!(forward.len() < 1000, "{what}: paging does not end");
    }
    let mut backward = vec![page.rows.clone()];
    while let Some(prev) = page.prev.clone() {
        let before = BrowseQuery {
            before: Some(through_text(&prev)),
            ..q.clone()
        };
        page = browse(conn, table, &before).await.unwrap();
        assert_eq!(page.rows.len(), PER_PAGE, "{what}: pages walked back are full");
        assert!(page.next.is_some(), "{what}: a page before another has a next page");
        backward.push(page.rows.clone());
        assert!(backward.len() < 1000, "{what}: paging back does not end");
    }
    backward.reverse();
    assert_eq!(
        backward, forward,
        "{what}: walking back cuts other pages than walking forward"
    );
    assert_eq!(
        page.next, first_next,
        "{what}: back at the first page, its next cursor is the same"
    );
    forward.concat()
}

async fn every_order_pages_forward_and_back(engine: Engine) {
    let (_db, mut conn) = fixture(engine).await;
    let rows = people_rows();
    // (sort as the user gives it, its column, descending)
    let cases: [(Option<&str>, Option<usize>, bool); 8] = [
        (None, None, false),
        (None, None, true),
        (Some("score"), Some(2), false),
        (Some("score"), Some(2), true),
        (Some("name"), Some(1), false),
        (Some("NAME"), Some(1), true),
        (Some("id"), Some(0), true),
        (Some("ID"), Some(0), false),
    ];
    for (sort, column, descending) in cases {
        let got = walk(&mut conn, "people", &query(sort, descending, None)).await;
        let expected = ordered(rows.clone(), column, &[0], descending);
        assert_eq!(got.len(), 120, "{engine} {sort:?} desc={descending}");
        assert_eq!(got, expected, "{engine} sorted by {sort:?} desc={descending}");
    }
    // The table name resolves case-insensitively; the page names the exact one.
    let page = browse(&mut conn, "PEOPLE", &query(Some("Score"), false, None))
        .await
        .unwrap();
    assert_eq!(page.table, "people");
    assert_eq!(page.sort.as_deref(), Some("score"));
    assert_eq!(
        page.columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["id", "name", "score", "note"]
    );
    assert_eq!(
        page.paging,
        Paging::Key {
            columns: vec!["id".into()],
            primary: true
        }
    );
    // NULL scores come first ascending.
    assert!(page.rows.iter().all(|r| r[2].is_null()), "{:?}", page.rows);
    // Paging through a search keeps to the matches.
    let got = walk(&mut conn, "people", &query(Some("score"), true, Some("E"))).await;
    let matching: Vec<Vec<Value>> = rows.iter().filter(|r| matches(r, "E")).cloned().collect();
    assert!(matching.len() > 3 * PER_PAGE, "the search should need several pages");
    assert_eq!(got, ordered(matching, Some(2), &[0], true));
    // per_page is clamped to 1..=500.
    for (asked, got) in [(0, 1), (10_000, 120)] {
        let q = BrowseQuery {
            per_page: asked,
            ..query(None, false, None)
        };
        let page = browse(&mut conn, "people", &q).await.unwrap();
        assert_eq!(page.rows.len(), got);
        assert_eq!(page.per_page, asked.clamp(1, 500));
    }
    // Rows deleted since the pages were cut: paging back to the start gives a full
    // first page, not a short one.
    let first = browse(&mut conn, "people", &query(None, false, None)).await.unwrap();
    let second = browse(
        &mut conn,
        "people",
        &BrowseQuery {
            after: first.next,
            ..query(None, false, None)
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&second), [8, 9, 10, 11, 12, 13, 14]);
    conn.batch("DELETE FROM people WHERE id IN (2, 3)").await.unwrap();
    let back = browse(
        &mut conn,
        "people",
        &BrowseQuery {
            before: second.prev,
            ..query(None, false, None)
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&back), [1, 4, 5, 6, 7, 8, 9]);
    assert!(back.prev.is_none());
    // Past the end (every later row deleted), the previous page is the last one.
    let q = BrowseQuery {
        after: back.next.clone(),
        ..query(None, false, None)
    };
    conn.batch("DELETE FROM people WHERE id > 9").await.unwrap();
    let past = browse(&mut conn, "people", &q).await.unwrap();
    assert!(past.rows.is_empty() && past.next.is_none());
    let q = BrowseQuery {
        before: past.prev,
        ..query(None, false, None)
    };
    assert_eq!(
        ids(&browse(&mut conn, "people", &q).await.unwrap()),
        [1, 4, 5, 6, 7, 8, 9]
    );
}

async fn composite_keys_page_forward_and_back(engine: Engine) {
    let (_db, mut conn) = fixture(engine).await;
    let rows = pairs_rows();
    let cases: [(Option<&str>, Option<usize>, bool); 5] = [
        (None, None, false),
        (None, None, true),
        (Some("v"), Some(2), false),
        (Some("v"), Some(2), true),
        (Some("b"), Some(1), false),
    ];
    for (sort, column, descending) in cases {
        let got = walk(&mut conn, "pairs", &query(sort, descending, None)).await;
        assert_eq!(
            got,
            ordered(rows.clone(), column, &[0, 1], descending),
            "{engine} {sort:?} desc={descending}"
        );
    }

    // Enums: PostgreSQL orders them by declaration, consistently with its `<`;
    // MariaDB would order by declaration but compare as text, so it orders by label.
    let labels = ["sad", "ok", "happy"];
    let declare = match engine {
        Engine::Postgres => Some((
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE TABLE moods (id INTEGER PRIMARY KEY, m mood)",
            ["sad", "ok", "happy"],
        )),
        Engine::Mysql => Some((
            "CREATE TABLE moods (id INTEGER PRIMARY KEY, m ENUM('sad', 'ok', 'happy'))",
            ["happy", "ok", "sad"],
        )),
        Engine::Sqlite => None,
    };
    if let Some((ddl, order)) = declare {
        conn.batch(ddl).await.unwrap();
        let moods: Vec<Vec<Value>> = (1..=30i64)
            .map(|i| vec![Value::Int(i), text(labels[(i * 7 % 3) as usize])])
            .collect();
        insert(&mut conn, "moods", &["id", "m"], &moods).await;
        let rank = |v: &Value| order.iter().position(|l| *v == text(l)).unwrap();
        for descending in [false, true] {
            let got = walk(&mut conn, "moods", &query(Some("m"), descending, None)).await;
            let mut expected = moods.clone();
            expected.sort_by_key(|r| (rank(&r[1]), if let Value::Int(i) = r[0] { i } else { 0 }));
            if descending {
                expected.reverse();
            }
            assert_eq!(got, expected, "{engine} moods desc={descending}");
        }
        let page = browse(&mut conn, "moods", &query(None, false, Some("HAP")))
            .await
            .unwrap();
        assert_eq!(page.total, RowCount::Exact(10));
    }
}

async fn tables_without_a_primary_key(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE coded (code VARCHAR(10) NOT NULL UNIQUE, v INTEGER)")
        .await
        .unwrap();
    conn.batch("CREATE TABLE loose (x INTEGER, y VARCHAR(10))")
        .await
        .unwrap();
    let coded: Vec<Vec<Value>> = (0..50i64)
        .map(|i| vec![text(&format!("c{:03}", i * 17 % 50)), Value::Int(i % 3)])
        .collect();
    let loose: Vec<Vec<Value>> = (0..36i64)
        .map(|i| vec![Value::Int(i % 4), text(&format!("y{i:02}"))])
        .collect();
    insert(&mut conn, "coded", &["code", "v"], &coded).await;
    insert(&mut conn, "loose", &["x", "y"], &loose).await;

    // A unique key of NOT NULL columns breaks ties.
    let page = browse(&mut conn, "coded", &query(None, false, None)).await.unwrap();
    assert_eq!(
        page.paging,
        Paging::Key {
            columns: vec!["code".into()],
            primary: false
        }
    );
    for (sort, column, descending) in [(None, None, false), (Some("v"), Some(1), true)] {
        let got = walk(&mut conn, "coded", &query(sort, descending, None)).await;
        assert_eq!(got, ordered(coded.clone(), column, &[0], descending));
    }

    // No key at all: SQLite pages by rowid (the insert order here); the others show
    // the first rows only, and refuse cursors.
    let page = browse(&mut conn, "loose", &query(Some("x"), false, None))
        .await
        .unwrap();
    let inserted: Vec<Vec<Value>> = (0..loose.len()).map(|k| loose[k * 7 % loose.len()].clone()).collect();
    if engine == Engine::Sqlite {
        assert_eq!(page.paging, Paging::RowId);
        let got = walk(&mut conn, "loose", &query(Some("x"), true, None)).await;
        // By x descending, ties by rowid descending: the insert order reversed.
        let mut expected = inserted.clone();
        expected.reverse();
        expected.sort_by(|a, b| compare(&b[0], &a[0]));
        assert_eq!(got, expected);
    } else {
        assert_eq!(page.paging, Paging::FirstRowsOnly);
        assert_eq!(page.rows.len(), PER_PAGE);
        assert!(page.rows.iter().all(|r| r[0] == Value::Int(0)), "{:?}", page.rows);
        assert_eq!((page.next.clone(), page.prev.clone()), (None, None));
        assert_eq!(page.total, RowCount::Exact(36));
        let other = browse(&mut conn, "coded", &query(None, false, None)).await.unwrap();
        let q = BrowseQuery {
            after: other.next,
            ..query(None, false, None)
        };
        let e = browse(&mut conn, "loose", &q).await.unwrap_err();
        assert!(matches!(e, BrowseError::NotPageable { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "table loose has no primary key and no unique key of NOT NULL columns, so only its first rows can be shown: add a primary key to page through it"
        );
    }
}

/// What the search promises: a case-insensitive substring of any text column.
fn matches(row: &[Value], term: &str) -> bool {
    row.iter().any(|v| match v {
        Value::Text(t) => t.to_lowercase().contains(&term.to_lowercase()),
        _ => false,
    })
}

fn ids(page: &BrowsePage) -> Vec<i64> {
    page.rows
        .iter()
        .map(|r| match r[0] {
            Value::Int(i) => i,
            ref other => panic!("id {other:?}"),
        })
        .collect()
}

async fn search_is_case_insensitive_and_literal(engine: Engine) {
    let (_db, mut conn) = fixture(engine).await;
    // (term, the ids it must find), each checked against `matches` too.
    let cases: [(&str, &[i64]); 9] = [
        ("50%", &[5]),
        ("%", &[5]),
        ("a_b", &[7]),
        ("_", &[7]),
        ("mixed case", &[9, 10]),
        ("MiXeD", &[9, 10]),
        ("wow!", &[11]),
        ("!", &[11]),
        ("nothing like this", &[]),
    ];
    for (term, expected) in cases {
        let q = BrowseQuery {
            per_page: 500,
            ..query(None, false, Some(term))
        };
        let page = browse(&mut conn, "people", &q).await.unwrap();
        assert_eq!(ids(&page), expected, "{engine}: search {term:?}");
        let by_rule: Vec<i64> = people_rows()
            .iter()
            .filter(|r| matches(r, term))
            .map(|r| if let Value::Int(i) = r[0] { i } else { 0 })
            .collect();
        assert_eq!(by_rule, expected, "the test's own rule for {term:?}");
        assert_eq!(page.total, RowCount::Exact(expected.len() as u64), "{engine}: {term:?}");
        assert_eq!((page.next.clone(), page.prev.clone()), (None, None));
    }
    // Names are searched too, whatever their case.
    let page = browse(&mut conn, "people", &query(None, false, Some("CEDAR")))
        .await
        .unwrap();
    let expected: Vec<i64> = people_rows()
        .iter()
        .filter(|r| r[1] == text("cedar"))
        .map(|r| if let Value::Int(i) = r[0] { i } else { 0 })
        .collect();
    assert_eq!(ids(&page), expected[..PER_PAGE.min(expected.len())]);
    assert_eq!(page.total, RowCount::Exact(expected.len() as u64));
    // An empty search is no search.
    let page = browse(&mut conn, "people", &query(None, false, Some("")))
        .await
        .unwrap();
    assert_eq!(page.total, RowCount::Exact(120));

    // A binary collation on MariaDB still matches case-insensitively.
    if engine == Engine::Mysql {
        conn.batch("CREATE TABLE tags (id INTEGER PRIMARY KEY, tag VARCHAR(20) COLLATE utf8mb4_bin)")
            .await
            .unwrap();
        insert(
            &mut conn,
            "tags",
            &["id", "tag"],
            &[vec![Value::Int(1), text("Rust")], vec![Value::Int(2), text("rusty")]],
        )
        .await;
        let page = browse(&mut conn, "tags", &query(None, false, Some("RUST")))
            .await
            .unwrap();
        assert_eq!(ids(&page), [1, 2]);
    }
}

async fn bad_requests_are_typed_errors(engine: Engine) {
    let (_db, mut conn) = fixture(engine).await;
    let e = browse(&mut conn, "nope", &query(None, false, None)).await.unwrap_err();
    assert!(matches!(&e, BrowseError::Db(DbError::Invalid(_))), "{e}");
    assert!(e.is_bad_request());
    assert!(
        e.to_string()
            .starts_with("table \"nope\" does not exist in this database; tables here: "),
        "{e}"
    );

    let e = browse(&mut conn, "people", &query(Some("nope"), false, None))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "table people has no column \"nope\": sort by one of id, name, score, note"
    );
    let hostile = "id; DROP TABLE people";
    let e = browse(&mut conn, "people", &query(Some(hostile), false, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BrowseError::UnknownColumn { column, .. } if column == hostile),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "table people has no column \"id; DROP TABLE people\": sort by one of id, name, score, note"
    );
    let e = browse(&mut conn, "people", &query(Some("id\" DESC; --"), false, None))
        .await
        .unwrap_err();
    assert!(matches!(e, BrowseError::UnknownColumn { .. }), "{e}");
    // The table is still there, whole.
    let page = browse(&mut conn, "people", &query(None, false, None)).await.unwrap();
    assert_eq!(page.total, RowCount::Exact(120));

    // Cursors: garbage, another table's, another order's, and two at once.
    let e = Cursor::decode("garbage!!").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the page cursor is not valid (it is not base64url text): start again from the first page"
    );
    let e = Cursor::decode("eyJ2IjoxfQ").unwrap_err(); // {"v":1}
    assert!(matches!(e, BrowseError::BadCursor { .. }), "{e}");
    let pairs_cursor = browse(&mut conn, "pairs", &query(None, false, None))
        .await
        .unwrap()
        .next;
    let by_name = browse(&mut conn, "people", &query(Some("name"), false, None))
        .await
        .unwrap()
        .next;
    let e = browse(
        &mut conn,
        "people",
        &BrowseQuery {
            after: pairs_cursor,
            ..query(None, false, None)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the page cursor belongs to table pairs ordered by a, b, not to table people ordered by id: start again from the first page"
    );
    let e = browse(
        &mut conn,
        "people",
        &BrowseQuery {
            before: by_name.clone(),
            ..query(Some("score"), false, None)
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BrowseError::CursorMismatch { .. }), "{e}");
    let e = browse(
        &mut conn,
        "people",
        &BrowseQuery {
            after: by_name.clone(),
            before: by_name,
            ..query(Some("name"), false, None)
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BrowseError::BothCursors), "{e}");

    // A search needs text columns.
    conn.batch("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER)")
        .await
        .unwrap();
    let e = browse(&mut conn, "nums", &query(None, false, Some("1")))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "table nums has no text columns to search: browse it without a search"
    );
    let e = browse(&mut conn, "people", &query(None, false, Some("a\0b")))
        .await
        .unwrap_err();
    assert!(matches!(e, BrowseError::BadSearch), "{e}");

    // PostgreSQL names differ in case; a name matching two of them must be exact.
    if engine == Engine::Postgres {
        conn.batch("CREATE TABLE twins (id INTEGER PRIMARY KEY, \"Name\" TEXT, \"NAME\" TEXT)")
            .await
            .unwrap();
        let e = browse(&mut conn, "twins", &query(Some("name"), false, None))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "column name \"name\" matches 2 columns of table twins that differ only in case (Name, NAME): give the exact name"
        );
        assert!(browse(&mut conn, "twins", &query(Some("NAME"), false, None))
            .await
            .is_ok());
        // A type outside the mapping shows as its text, and is not a sort column.
        conn.batch("CREATE TABLE spans (id INTEGER PRIMARY KEY, d interval); INSERT INTO spans VALUES (1, '1 hour')")
            .await
            .unwrap();
        let page = browse(&mut conn, "spans", &query(None, false, None)).await.unwrap();
        assert_eq!(page.rows, [vec![Value::Int(1), text("01:00:00")]]);
        let e = browse(&mut conn, "spans", &query(Some("d"), false, None))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "column d of table spans is unsupported (interval), which lockgate does not sort by: sort by one of id"
        );
    }
}

async fn totals_are_exact_estimated_or_capped(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    const ROWS: u64 = 150_000;
    conn.batch("CREATE TABLE big (id INTEGER NOT NULL PRIMARY KEY, t VARCHAR(20) NOT NULL)")
        .await
        .unwrap();
    let (fill, analyze) = match engine {
        Engine::Postgres => (
            format!("INSERT INTO big SELECT g, 'row' || g FROM generate_series(1, {ROWS}) g"),
            "ANALYZE big",
        ),
        Engine::Mysql => (
            format!("INSERT INTO big SELECT seq, CONCAT('row', seq) FROM seq_1_to_{ROWS}"),
            "ANALYZE TABLE big",
        ),
        Engine::Sqlite => (
            format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS}) \
                 INSERT INTO big SELECT n, 'row' || n FROM g"
            ),
            "ANALYZE",
        ),
    };
    conn.batch(&fill).await.unwrap();
    if engine == Engine::Sqlite {
        // No estimate before ANALYZE: counted.
        let page = browse(&mut conn, "big", &query(None, false, None)).await.unwrap();
        assert_eq!(page.total, RowCount::Exact(ROWS));
    }
    conn.query(analyze, &[], None).await.unwrap();
    let page = browse(&mut conn, "big", &query(None, false, None)).await.unwrap();
    match page.total {
        RowCount::About(n) => assert!((100_000..=225_000).contains(&n), "{engine}: estimate {n}"),
        other => panic!("{engine}: expected an estimate, got {other:?}"),
    }
    // The far end of the table is one page away, and so is the page after it.
    let last = browse(&mut conn, "big", &query(None, true, None)).await.unwrap();
    assert_eq!(last.rows[0][0], Value::Int(ROWS as i64));
    let q = BrowseQuery {
        after: last.next.as_ref().map(through_text),
        ..query(None, true, None)
    };
    let before_last = browse(&mut conn, "big", &q).await.unwrap();
    assert_eq!(before_last.rows[0][0], Value::Int(ROWS as i64 - PER_PAGE as i64));

    // A search counts up to the cap.
    let page = browse(&mut conn, "big", &query(None, false, Some("ROW")))
        .await
        .unwrap();
    assert_eq!(page.total, RowCount::AtLeast(10_000));
    let page = browse(&mut conn, "big", &query(None, false, Some("row1234")))
        .await
        .unwrap();
    // row1234, row12340..row12349, row123400..row123499
    assert_eq!(page.total, RowCount::Exact(111));
    assert_eq!(ids(&page), [1234, 12340, 12341, 12342, 12343, 12344, 12345]);

    // A small table is counted exactly even after ANALYZE.
    conn.batch("CREATE TABLE small (id INTEGER PRIMARY KEY, t VARCHAR(5))")
        .await
        .unwrap();
    insert(
        &mut conn,
        "small",
        &["id", "t"],
        &(1..=8).map(|i| vec![Value::Int(i), text("s")]).collect::<Vec<_>>(),
    )
    .await;
    conn.query(analyze.replace("big", "small").as_str(), &[], None)
        .await
        .unwrap();
    let page = browse(&mut conn, "small", &query(None, false, None)).await.unwrap();
    assert_eq!(page.total, RowCount::Exact(8));
}
