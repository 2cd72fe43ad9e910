//! The SQL layer of background upgrades on all three engines: the ledger's upgrade
//! tables and their typed functions (a changed definition refused), the
//! `applied_upgrades` column added once and without a table rewrite (PostgreSQL's
//! file node unchanged), a batch walk by primary key that upgrades every row once
//! however often it is repeated and only the rows of its condition, a concurrent
//! writer whose every write survives the walk, an expression that does not compile
//! refused, and the count of rows still lacking an upgrade.

use crate::support::TestDb;
use lockgate_core::{Table, Value};
use lockgate_db::ledger::Ledger;
use lockgate_db::upgrades::{self, SetBatch, UpgradeState};
use lockgate_db::{Conn, DbError, Engine};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

on_every_engine!(
    the_ledger_records_upgrades_and_refuses_a_changed_definition,
    the_applied_column_is_added_once_without_a_rewrite,
    a_batch_walk_upgrades_every_row_once,
    a_condition_limits_the_rows_upgraded,
    a_concurrent_writer_loses_no_write,
    an_expression_that_does_not_compile_is_refused,
    a_walk_over_a_text_key_meets_every_row,
);

/// Rows of the walked tables: three batches of [`LIMIT`], the last one short.
const ROWS: i64 = 2_500;
const LIMIT: usize = 1_000;

/// The upgrade's `set`: `a2 = a * 2`, the same SQL on every engine.
fn doubling() -> Vec<(String, String)> {
    vec![("a2".to_string(), "a * 2".to_string())]
}

/// Creates `items` keyed by (g, n) (a two-column key: the range bounds are row
/// comparisons on PostgreSQL and SQLite, OR forms on MariaDB) with [`ROWS`] rows,
/// `a` numbering them, and its `applied_upgrades` column; returns it described.
async fn items(conn: &mut Conn) -> Table {
    conn.batch(
        "CREATE TABLE items (g int NOT NULL, n int NOT NULL, a int NOT NULL, a2 int, note varchar(50), \
         PRIMARY KEY (g, n))",
    )
    .await
    .unwrap();
    insert_rows(conn, "items (g, n, a)", |i| format!("({}, {}, {i})", i % 7, i)).await;
    let table = conn.find_table("items").await.unwrap();
    assert!(upgrades::add_applied_column(conn, &table).await.unwrap());
    conn.find_table("items").await.unwrap()
}

/// Inserts [`ROWS`] rows, 500 to a statement, each row's VALUES tuple made by `row`.
async fn insert_rows(conn: &mut Conn, into: &str, row: impl Fn(i64) -> String) {
    for start in (0..ROWS).step_by(500) {
        let values: Vec<String> = (start..(start + 500).min(ROWS)).map(&row).collect();
        conn.batch(&format!("INSERT INTO {into} VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
}

/// Walks the whole table once with [`upgrades::apply_set_batch`]; returns the
/// batches' results.
async fn walk(conn: &mut Conn, table: &Table, name: &str, condition: Option<&str>, limit: usize) -> Vec<SetBatch> {
    let mut after: Option<Vec<Value>> = None;
    let mut out = Vec::new();
    loop {
        let batch = upgrades::apply_set_batch(conn, table, name, &doubling(), condition, after.as_deref(), limit)
            .await
            .unwrap();
        let last = batch.last.clone();
        out.push(batch);
        match last {
            Some(last) => after = Some(last),
            None => return out,
        }
    }
}

/// Every row's `a`, `a2` and `applied_upgrades` (parsed), by `a`.
async fn upgraded(conn: &mut Conn, table: &str) -> Vec<(i64, Option<i64>, Option<Vec<String>>)> {
    let rows = conn
        .query(
            &format!("SELECT a, a2, applied_upgrades FROM {table} ORDER BY a"),
            &[],
            None,
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let int = |v: &Value| match v {
                Value::Null => None,
                Value::Int(i) => Some(*i),
                other => Some(other.to_string().parse().unwrap()),
            };
            let applied = match &r[2] {
                Value::Null => None,
                v => Some(serde_json::from_str::<Vec<String>>(&v.to_string()).unwrap()),
            };
            (int(&r[0]).unwrap(), int(&r[1]), applied)
        })
        .collect()
}

async fn the_ledger_records_upgrades_and_refuses_a_changed_definition(engine: Engine) {
    let db = TestDb::new(engine).await;
    drop(Ledger::open(&db.url).await.unwrap());
    let mut conn = db.conn().await;
    for t in ["lockgate_upgrades", "lockgate_upgrade_quarantine"] {
        assert!(conn.lookup_table(t).await.unwrap().is_some(), "{engine}: {t} missing");
    }

    let first = upgrades::register(&mut conn, "split.name", "customers", "c1")
        .await
        .unwrap();
    assert_eq!(first.state, UpgradeState::Pending);
    assert_eq!((first.cursor, first.rows_done, first.rows_total), (None, 0, None));
    // The same definition again: the record as it is.
    upgrades::register(&mut conn, "split.name", "customers", "c1")
        .await
        .unwrap();
    for (table, checksum) in [("customers", "c2"), ("orders", "c1")] {
        let err = upgrades::register(&mut conn, "split.name", table, checksum)
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Invalid(_)), "{engine}: {err:?}");
        assert!(
            err.to_string().contains("definition changed after the upgrade started"),
            "{err}"
        );
    }
    let err = upgrades::register(&mut conn, "bad name", "customers", "c1")
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Invalid(_)), "{engine}: {err:?}");

    upgrades::set_state(&mut conn, "split.name", UpgradeState::Running)
        .await
        .unwrap();
    let key = vec![Value::Int(42), Value::Text("b'c\"d".into())];
    upgrades::save_cursor(&mut conn, "split.name", &key, 1000)
        .await
        .unwrap();
    upgrades::save_cursor(&mut conn, "split.name", &key, 500).await.unwrap();
    upgrades::set_total(&mut conn, "split.name", Some(2500)).await.unwrap();
    let now = upgrades::state(&mut conn, "split.name").await.unwrap().unwrap();
    assert_eq!(now.state, UpgradeState::Running);
    assert_eq!(now.cursor.as_deref(), Some(&key[..]), "{engine}");
    assert_eq!((now.rows_done, now.rows_total), (1500, Some(2500)));
    assert!(upgrades::state(&mut conn, "other").await.unwrap().is_none());
    let err = upgrades::set_state(&mut conn, "other", UpgradeState::Paused)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Invalid(_)), "{engine}: {err:?}");

    upgrades::register(&mut conn, "another", "orders", "c9").await.unwrap();
    let names: Vec<String> = upgrades::list(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["another", "split.name"]);

    upgrades::quarantine(&mut conn, "split.name", &key, "first error")
        .await
        .unwrap();
    upgrades::quarantine(&mut conn, "split.name", &key, "second error")
        .await
        .unwrap();
    upgrades::quarantine(
        &mut conn,
        "split.name",
        &[Value::Int(7), Value::Text("x".into())],
        "other row",
    )
    .await
    .unwrap();
    upgrades::quarantine(&mut conn, "another", &[Value::Int(1)], "elsewhere")
        .await
        .unwrap();
    let q = upgrades::quarantined(&mut conn, "split.name").await.unwrap();
    assert_eq!(q.len(), 2, "{engine}: {q:?}");
    let row = q.iter().find(|r| r.key == key).unwrap();
    assert_eq!((row.error.as_str(), row.attempts), ("second error", 2), "{engine}");
    assert_eq!(upgrades::clear_quarantine(&mut conn, "split.name").await.unwrap(), 2);
    assert!(upgrades::quarantined(&mut conn, "split.name").await.unwrap().is_empty());
    assert_eq!(upgrades::quarantined(&mut conn, "another").await.unwrap().len(), 1);
}

/// PostgreSQL's file node of `plain`: a table rewrite gives it a new one.
async fn filenode(conn: &mut Conn) -> Option<Value> {
    if conn.engine() != Engine::Postgres {
        return None;
    }
    let rows = conn
        .query("SELECT pg_relation_filenode('plain')::bigint", &[], None)
        .await
        .unwrap();
    Some(rows[0][0].clone())
}

/// MariaDB's count of instant ALTERs (`None` elsewhere, MySQL included).
async fn instant_alters(conn: &mut Conn) -> Option<i64> {
    if conn.engine() != Engine::Mysql {
        return None;
    }
    let rows = conn
        .query("SHOW GLOBAL STATUS LIKE 'innodb_instant_alter_column'", &[], None)
        .await
        .unwrap();
    rows.first().map(|r| r[1].to_string().parse().unwrap())
}

async fn the_applied_column_is_added_once_without_a_rewrite(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE plain (id int PRIMARY KEY, label varchar(20) NOT NULL DEFAULT 'x')")
        .await
        .unwrap();
    insert_rows(&mut conn, "plain (id)", |i| format!("({i})")).await;
    let table = conn.find_table("plain").await.unwrap();
    assert!(!upgrades::has_applied_column(&mut conn, &table).await.unwrap());
    let before = filenode(&mut conn).await;
    let instant_before = instant_alters(&mut conn).await;
    assert!(
        upgrades::add_applied_column(&mut conn, &table).await.unwrap(),
        "{engine}"
    );
    assert_eq!(filenode(&mut conn).await, before, "{engine}: the table was rewritten");
    if let (Some(before), Some(after)) = (instant_before, instant_alters(&mut conn).await) {
        assert!(after > before, "{engine}: the column was not added instantly");
    }
    assert!(upgrades::has_applied_column(&mut conn, &table).await.unwrap());
    // The stale description does not matter: the database is asked.
    assert!(
        !upgrades::add_applied_column(&mut conn, &table).await.unwrap(),
        "{engine}"
    );
    let table = conn.find_table("plain").await.unwrap();
    let column = table.column("applied_upgrades").unwrap();
    assert!(column.nullable, "{engine}: {column:?}");
    let nulls = conn
        .query("SELECT COUNT(*) FROM plain WHERE applied_upgrades IS NULL", &[], None)
        .await
        .unwrap();
    assert_eq!(nulls[0][0], Value::Int(ROWS), "{engine}");
}

async fn a_batch_walk_upgrades_every_row_once(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    let table = items(&mut conn).await;
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "up.one", None)
            .await
            .unwrap(),
        ROWS as u64
    );

    let batches = walk(&mut conn, &table, "up.one", None, LIMIT).await;
    let counts: Vec<(u64, u64, bool)> = batches
        .iter()
        .map(|b| (b.updated, b.scanned, b.last.is_some()))
        .collect();
    assert_eq!(
        counts,
        [(1000, 1000, true), (1000, 1000, true), (500, 500, false)],
        "{engine}"
    );
    let rows = upgraded(&mut conn, "items").await;
    assert_eq!(rows.len() as i64, ROWS);
    for (a, a2, applied) in &rows {
        assert_eq!(*a2, Some(a * 2), "{engine}: row {a}");
        assert_eq!(
            applied.as_deref(),
            Some(&["up.one".to_string()][..]),
            "{engine}: row {a}"
        );
    }
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "up.one", None)
            .await
            .unwrap(),
        0
    );

    // Repeated (a runner resuming from an older cursor): nothing changes.
    conn.batch("UPDATE items SET a2 = NULL WHERE a = 5").await.unwrap();
    let again = walk(&mut conn, &table, "up.one", None, LIMIT).await;
    assert_eq!(again.iter().map(|b| b.updated).sum::<u64>(), 0, "{engine}");
    let rows = upgraded(&mut conn, "items").await;
    assert_eq!(
        rows[5].1, None,
        "{engine}: a row that has the upgrade was upgraded again"
    );
    assert!(rows.iter().all(|r| r.2.as_ref().unwrap().len() == 1), "{engine}");

    // A second upgrade appends its name; one whose name starts as the first's does
    // is another name.
    let second = walk(&mut conn, &table, "up.on", None, 700).await;
    assert_eq!(second.iter().map(|b| b.updated).sum::<u64>(), ROWS as u64, "{engine}");
    assert_eq!(second.len(), 4);
    let rows = upgraded(&mut conn, "items").await;
    for (a, _, applied) in &rows {
        assert_eq!(
            applied.as_deref(),
            Some(&["up.one".to_string(), "up.on".to_string()][..]),
            "{engine}: row {a}"
        );
    }
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "up.on", None).await.unwrap(),
        0
    );
    // A name is a name: not a prefix, nor the same letters in another case.
    for other in ["up", "UP.ONE", "one"] {
        assert_eq!(
            upgrades::count_lacking(&mut conn, &table, other, None).await.unwrap(),
            ROWS as u64,
            "{engine}: {other}"
        );
    }

    // An empty list written by an application counts as none.
    conn.batch("UPDATE items SET applied_upgrades = '[]' WHERE a = 7")
        .await
        .unwrap();
    walk(&mut conn, &table, "up.one", None, LIMIT).await;
    assert_eq!(
        upgraded(&mut conn, "items").await[7].2.as_deref(),
        Some(&["up.one".to_string()][..])
    );
}

async fn a_condition_limits_the_rows_upgraded(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    let table = items(&mut conn).await;
    let condition = Some("a < 100 OR g = 3");
    let in_scope = |a: i64| a < 100 || a % 7 == 3;
    let expected = (0..ROWS).filter(|&a| in_scope(a)).count() as u64;
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "c", condition)
            .await
            .unwrap(),
        expected
    );

    let batches = walk(&mut conn, &table, "c", condition, LIMIT).await;
    assert_eq!(batches.iter().map(|b| b.updated).sum::<u64>(), expected, "{engine}");
    assert_eq!(batches.iter().map(|b| b.scanned).sum::<u64>(), ROWS as u64, "{engine}");
    for (a, a2, applied) in upgraded(&mut conn, "items").await {
        if in_scope(a) {
            assert_eq!((a2, applied.unwrap().len()), (Some(a * 2), 1), "{engine}: row {a}");
        } else {
            assert_eq!((a2, applied), (None, None), "{engine}: row {a} is out of scope");
        }
    }
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "c", condition)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "c", None).await.unwrap(),
        ROWS as u64 - expected
    );
}

async fn a_concurrent_writer_loses_no_write(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE accounts (id bigint PRIMARY KEY, a int NOT NULL, a2 int, note varchar(50))")
        .await
        .unwrap();
    insert_rows(&mut conn, "accounts (id, a)", |i| format!("({}, {i})", i * 3 + 1)).await;
    let table = conn.find_table("accounts").await.unwrap();
    upgrades::add_applied_column(&mut conn, &table).await.unwrap();
    let table = conn.find_table("accounts").await.unwrap();

    // The writer updates random rows' note, one autocommitted statement each, until
    // the walk ends; it remembers the last note it wrote to each row.
    let done = Arc::new(AtomicBool::new(false));
    let mut writer_conn = db.conn().await;
    let writer_done = done.clone();
    let writer = tokio::spawn(async move {
        let mut written: HashMap<i64, String> = HashMap::new();
        let mut i = 0u64;
        while !writer_done.load(Ordering::SeqCst) || i < 200 {
            let a = fastrand::i64(0..ROWS);
            let note = format!("w{i}");
            let n = writer_conn
                .execute(&format!("UPDATE accounts SET note = '{note}' WHERE a = {a}"), &[])
                .await
                .unwrap();
            assert_eq!(n, 1);
            written.insert(a, note);
            i += 1;
        }
        written
    });
    let mut batches = 0;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let batch = upgrades::apply_set_batch(&mut conn, &table, "dbl", &doubling(), None, after.as_deref(), 50)
            .await
            .unwrap();
        batches += 1;
        match batch.last {
            Some(last) => after = Some(last),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert_eq!(batches, 50, "{engine}");
    assert!(
        written.len() > 50,
        "{engine}: the writer wrote only {} rows",
        written.len()
    );

    let rows = conn
        .query(
            "SELECT a, a2, note, applied_upgrades FROM accounts ORDER BY a",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, ROWS);
    for r in rows {
        let a: i64 = r[0].to_string().parse().unwrap();
        assert_eq!(r[1].to_string(), (a * 2).to_string(), "{engine}: row {a} not upgraded");
        assert_eq!(r[3].to_string(), "[\"dbl\"]", "{engine}: row {a}");
        match written.get(&a) {
            Some(note) => assert_eq!(r[2], Value::Text(note.clone()), "{engine}: row {a} lost its write"),
            None => assert_eq!(r[2], Value::Null, "{engine}: row {a}"),
        }
    }
}

async fn an_expression_that_does_not_compile_is_refused(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    let table = items(&mut conn).await;
    upgrades::check_expression(&mut conn, &table, "a * 2").await.unwrap();
    upgrades::check_expression(&mut conn, &table, "a < 100 OR g = 3")
        .await
        .unwrap();
    let err = upgrades::check_expression(&mut conn, &table, "no_such_col + 1")
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Invalid(_)), "{engine}: {err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no_such_col + 1") && text.contains("items"),
        "{engine}: {text}"
    );
    // The connection is still usable afterwards.
    assert_eq!(
        upgrades::count_lacking(&mut conn, &table, "x", None).await.unwrap(),
        ROWS as u64
    );

    // The walk refuses what it cannot set, naming it.
    for (column, why) in [
        ("nope", "is not in table"),
        ("g", "primary key"),
        ("applied_upgrades", "applied"),
    ] {
        let set = vec![(column.to_string(), "1".to_string())];
        let err = upgrades::apply_set_batch(&mut conn, &table, "x", &set, None, None, 10)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{engine}: {err}");
    }
}

/// A text key of two columns, not declared NOT NULL: on SQLite such a primary key
/// may hold NULLs, several of them (the keyset breaks ties by rowid), so the range
/// bounds meet NULLs at both ends; elsewhere the key is a plain two-column text key.
async fn a_walk_over_a_text_key_meets_every_row(engine: Engine) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE tags (k1 varchar(10), k2 varchar(10), a int NOT NULL, a2 int, PRIMARY KEY (k1, k2))")
        .await
        .unwrap();
    let mut values: Vec<String> = (0..40)
        .map(|i| format!("('k{}', 'x{}', {i})", i % 4, (i * 7) % 40))
        .collect();
    if engine == Engine::Sqlite {
        values.extend((40..47).map(|i| format!("(NULL, NULL, {i})")));
        values.extend((47..52).map(|i| format!("(NULL, 'n{i}', {i})")));
        values.extend((52..55).map(|i| format!("('k1', NULL, {i})")));
    }
    let count = values.len();
    conn.batch(&format!("INSERT INTO tags (k1, k2, a) VALUES {}", values.join(", ")))
        .await
        .unwrap();
    let table = conn.find_table("tags").await.unwrap();
    upgrades::add_applied_column(&mut conn, &table).await.unwrap();
    let table = conn.find_table("tags").await.unwrap();
    for limit in [3, 1] {
        let name = format!("t{limit}");
        let batches = walk(&mut conn, &table, &name, None, limit).await;
        assert_eq!(batches.iter().map(|b| b.updated).sum::<u64>(), count as u64, "{engine}");
        assert_eq!(batches.iter().map(|b| b.scanned).sum::<u64>(), count as u64, "{engine}");
        assert!(
            batches.iter().all(|b| b.updated <= limit as u64),
            "{engine}: {batches:?}"
        );
        assert_eq!(
            upgrades::count_lacking(&mut conn, &table, &name, None).await.unwrap(),
            0
        );
    }
    for (a, a2, applied) in upgraded(&mut conn, "tags").await {
        assert_eq!(a2, Some(a * 2), "{engine}: row {a}");
        assert_eq!(applied.unwrap(), ["t3", "t1"], "{engine}: row {a}");
    }
}

/// The pressure probe sees a session waiting for a row lock (PostgreSQL and MariaDB;
/// SQLite's writers queue for the file and report none).
#[tokio::test]
async fn the_pressure_probe_sees_a_lock_wait() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let mut holder = db.conn().await;
        holder
            .batch("CREATE TABLE p (id INT PRIMARY KEY, v INT); INSERT INTO p VALUES (1, 0)")
            .await
            .unwrap();
        let mut probe = db.conn().await;
        assert_eq!(
            upgrades::pressure(&mut probe).await.unwrap().lock_waiters,
            0,
            "{engine}"
        );
        holder.begin().await.unwrap();
        holder.execute("UPDATE p SET v = 1 WHERE id = 1", &[]).await.unwrap();
        let waiter = tokio::spawn({
            let url = db.url.clone();
            async move {
                let mut c = Conn::connect(&url).await.unwrap();
                c.execute("UPDATE p SET v = 2 WHERE id = 1", &[]).await.unwrap();
            }
        });
        let mut seen = 0;
        for _ in 0..100 {
            seen = upgrades::pressure(&mut probe).await.unwrap().lock_waiters;
            if seen > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(seen > 0, "{engine}: the waiting session was not seen");
        holder.commit().await.unwrap();
        waiter.await.unwrap();
    }
}

/// A case-only write by an application between a row function's read and its write
/// is seen by the compare-and-set (MariaDB's `_ci` collation would call the two equal).
#[tokio::test]
async fn the_compare_and_set_sees_a_case_only_change() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let mut c = db.conn().await;
        c.batch("CREATE TABLE cs (id INT PRIMARY KEY, t VARCHAR(20), applied_upgrades TEXT); INSERT INTO cs (id, t) VALUES (1, 'Row')")
            .await
            .unwrap();
        let t = c.find_table("cs").await.unwrap();
        let (rows, _) = upgrades::read_lacking(&mut c, &t, "u", None, None, 10).await.unwrap();
        c.batch("UPDATE cs SET t = 'ROW' WHERE id = 1").await.unwrap();
        let mut new = rows[0].values.clone();
        new[1] = Value::Text("row".into());
        assert!(
            !upgrades::write_row(&mut c, &t, "u", &rows[0], &new).await.unwrap(),
            "{engine}: the application's write was overwritten"
        );
    }
}
