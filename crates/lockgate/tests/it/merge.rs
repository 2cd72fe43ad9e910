//! `merge` on all three engines, on the seed's shape (customers; users with
//! `UNIQUE(parent, username)`; jobs referencing a customer and two users; job logs
//! following their jobs; job assignments keyed by (job, pilot); invoices; products
//! with a declared soft reference; a customer's self-reference), plus composite
//! keys: conflicts aborted and listed; conflicts merged one and two levels down;
//! the preview equal to the effect, row by row; `--sources set:` and `delete`;
//! `--skip-table`; undo restoring the exact tables, refused after a later edit and
//! then forced; bad input refused with nothing changed; transient failures (a
//! PostgreSQL lock timeout, a killed connection) retried to success with nothing
//! doubled.

use crate::support::{table_rows, TestDb, ENGINES};
use lockgate::db::{Conn, Engine};
use lockgate::merge::{self, Change, MergeError, MergeOptions, MergeStatus, RowAction, UndoOptions};
use std::collections::BTreeMap;
use std::time::Duration;

const TABLES: [&str; 8] = [
    "customers",
    "users",
    "jobs",
    "job_logs",
    "job_assignments",
    "invoices",
    "products",
    "notes",
];

const SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, kind VARCHAR(5) NOT NULL DEFAULT '1',
  active INT NOT NULL DEFAULT 1, deleted INT NOT NULL DEFAULT 0, parent_id INT,
  FOREIGN KEY (parent_id) REFERENCES customers (id));
CREATE TABLE users (id INT PRIMARY KEY, parent INT NOT NULL, kind VARCHAR(5) NOT NULL, username VARCHAR(50) NOT NULL,
  deleted INT NOT NULL DEFAULT 0, UNIQUE (parent, username), FOREIGN KEY (parent) REFERENCES customers (id));
CREATE TABLE jobs (id INT PRIMARY KEY, customer INT, client INT, operator INT, title VARCHAR(50),
  FOREIGN KEY (customer) REFERENCES customers (id), FOREIGN KEY (client) REFERENCES users (id),
  FOREIGN KEY (operator) REFERENCES users (id));
CREATE TABLE job_logs (id INT PRIMARY KEY, job INT NOT NULL, message VARCHAR(50), FOREIGN KEY (job) REFERENCES jobs (id));
CREATE TABLE job_assignments (job INT NOT NULL, pilot INT NOT NULL, PRIMARY KEY (job, pilot),
  FOREIGN KEY (job) REFERENCES jobs (id), FOREIGN KEY (pilot) REFERENCES users (id));
CREATE TABLE invoices (id INT PRIMARY KEY, customer INT NOT NULL, total INT, FOREIGN KEY (customer) REFERENCES customers (id));
CREATE TABLE products (id INT PRIMARY KEY, customer_id INT, name VARCHAR(50));
CREATE TABLE notes (id INT NOT NULL, customer INT, body VARCHAR(50), UNIQUE (id),
  FOREIGN KEY (customer) REFERENCES customers (id));
INSERT INTO customers (id, name, deleted, parent_id) VALUES (1, 'acme', 0, NULL), (2, 'beta', 0, NULL),
  (3, 'gamma', 0, NULL), (4, 'old', 1, NULL), (6, 'other', 0, NULL);
INSERT INTO customers (id, name, deleted, parent_id) VALUES (5, 'beta-east', 0, 2);
INSERT INTO users (id, parent, kind, username) VALUES (10, 1, '3', 'bob'), (11, 1, '5', 'amy'),
  (20, 2, '3', 'bob'), (21, 2, '5', 'zed'), (22, 2, '5', 'amy'), (30, 3, '3', 'kim'), (31, 3, '5', 'zed'),
  (60, 6, '3', 'bob'), (61, 6, '5', 'lee');
INSERT INTO jobs (id, customer, client, operator, title) VALUES (100, 1, 10, 11, 'a'), (101, 2, 20, 22, 'b'),
  (102, 2, 21, 21, 'c'), (103, 3, 30, 31, 'd'), (104, 6, 60, 61, 'e');
INSERT INTO job_logs (id, job, message) VALUES (1000, 100, 'x'), (1001, 101, 'y'), (1002, 103, 'z');
INSERT INTO job_assignments (job, pilot) VALUES (100, 11), (101, 22), (101, 11), (102, 21), (103, 31);
INSERT INTO invoices (id, customer, total) VALUES (500, 2, 10), (501, 3, 20), (502, 1, 5);
INSERT INTO products (id, customer_id, name) VALUES (600, 2, 'p'), (601, 3, 'q'), (602, 1, 'r');
INSERT INTO notes (id, customer, body) VALUES (1, 2, 'n1'), (2, 2, 'n1'), (3, 3, NULL), (4, 1, 'n3');
";

async fn seeded(engine: Engine) -> TestDb {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    conn.batch(SCHEMA).await.unwrap();
    db
}

type Snapshot = BTreeMap<&'static str, Vec<String>>;

async fn snapshot(conn: &mut Conn) -> Snapshot {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, table_rows(conn, t).await.unwrap());
    }
    out
}

fn keys(list: &[&str]) -> Vec<Vec<String>> {
    list.iter().map(|k| k.split(':').map(String::from).collect()).collect()
}

fn opts(from: &[&str], into: &str) -> MergeOptions {
    MergeOptions {
        table: "customers".into(),
        sources: keys(from),
        target: into.split(':').map(String::from).collect(),
        references: vec!["products.customer_id -> customers.id".into()],
        deleted_when: Some("deleted = 1".into()),
        ..MergeOptions::default()
    }
}

async fn one(conn: &mut Conn, sql: &str) -> String {
    let rows = conn.query(sql, &[], None).await.unwrap();
    rows.first()
        .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|"))
        .unwrap_or_default()
}

#[tokio::test]
async fn refs_lists_foreign_keys_self_references_and_declared_ones_with_their_unique_keys() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let refs = merge::references(
            &db.url,
            "customers",
            &["products.customer_id -> customers.id".into()],
            &["invoices".into()],
        )
        .await
        .unwrap();
        let shown: Vec<String> = refs
            .iter()
            .filter(|r| r.via.is_none())
            .map(|r| {
                format!(
                    "{}({})->({}) {} unique={:?} key={:?} skipped={}",
                    r.table,
                    r.columns.join(","),
                    r.referenced.join(","),
                    r.kind,
                    r.unique,
                    r.row_key,
                    r.skipped
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "customers(parent_id)->(id) foreign_key unique=[] key=[\"id\"] skipped=false",
                "invoices(customer)->(id) foreign_key unique=[] key=[\"id\"] skipped=true",
                "jobs(customer)->(id) foreign_key unique=[] key=[\"id\"] skipped=false",
                "notes(customer)->(id) foreign_key unique=[] key=[\"id\"] skipped=false",
                "users(parent)->(id) foreign_key unique=[[\"parent\", \"username\"]] key=[\"id\"] skipped=false",
                "products(customer_id)->(id) declared unique=[] key=[\"id\"] skipped=false",
            ],
            "{engine}"
        );
        // Transitively: what points at the referencing tables, following its row
        // unchanged (job logs keep their job) or, through re-pointed columns, changing.
        let through: Vec<String> = refs
            .iter()
            .filter(|r| r.via.is_some())
            .map(|r| {
                format!(
                    "{}({})->{} changes={}",
                    r.table,
                    r.columns.join(","),
                    r.via.as_deref().unwrap(),
                    r.changes
                )
            })
            .collect();
        assert_eq!(
            through,
            vec![
                "job_assignments(job)->jobs changes=false",
                "job_logs(job)->jobs changes=false",
                "job_assignments(pilot)->users changes=false",
                "jobs(client)->users changes=false",
                "jobs(operator)->users changes=false",
            ],
            "{engine}"
        );
        // A declared reference naming an unknown column is bad input.
        let err = merge::references(&db.url, "customers", &["products.nope -> customers.id".into()], &[])
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2, "{engine}");
        assert!(err.to_string().contains("nope"), "{engine}: {err}");
    }
}

#[tokio::test]
async fn conflicts_abort_the_merge_listed_and_recorded_with_nothing_changed() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        let before = snapshot(&mut conn).await;
        let report = merge::merge(&db.url, &opts(&["2", "3"], "1"), None).await.unwrap();
        assert_eq!(report.status, MergeStatus::AbortedConflicts, "{engine}");
        assert_eq!(report.exit_code(), 4);
        let mut found: Vec<String> = report
            .conflicts
            .iter()
            .map(|c| format!("{} {} -> {} {:?}", c.table, c.row["id"], c.counterpart["id"], c.unique))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                "users 20 -> 10 [\"parent\", \"username\"]",
                "users 22 -> 11 [\"parent\", \"username\"]",
                // Two sources' rows landing on the same (target, username): the later
                // source's row conflicts with the earlier one's.
                "users 31 -> 21 [\"parent\", \"username\"]",
            ],
            "{engine}"
        );
        assert_eq!(snapshot(&mut conn).await, before, "{engine}: nothing changed");
        let history = merge::history(&db.url, 10).await.unwrap();
        assert_eq!(history[0].status, MergeStatus::AbortedConflicts, "{engine}");
        assert_eq!(history[0].conflicts, 3);
        // The preview of the same merge lists the conflicts too, and exits 4 as well.
        let preview = merge::merge(
            &db.url,
            &MergeOptions {
                preview: true,
                ..opts(&["2", "3"], "1")
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (preview.status, preview.exit_code()),
            (MergeStatus::Preview, 4),
            "{engine}"
        );
        assert_eq!(snapshot(&mut conn).await, before, "{engine}");
    }
}

/// A table's rows as column → JSON value maps, typed by the columns' kinds.
async fn json_rows(conn: &mut Conn, table: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let t = conn.lookup_table(table).await.unwrap().unwrap();
    let d = conn.dialect();
    let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<lockgate_core::Kind> = t.columns.iter().map(|c| c.kind.clone()).collect();
    let sql = format!("SELECT {} FROM {}", d.columns(None, &names), d.table(&t.name));
    conn.query(&sql, &[], Some(&kinds))
        .await
        .unwrap()
        .into_iter()
        .map(|r| names.iter().cloned().zip(r.iter().map(|v| v.to_json())).collect())
        .collect()
}

#[tokio::test]
async fn conflicts_merged_two_levels_down_preview_equals_effect_and_undo_restores_exactly() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        let before = snapshot(&mut conn).await;
        let mut before_rows = BTreeMap::new();
        for t in TABLES {
            before_rows.insert(t, json_rows(&mut conn, t).await);
        }
        let mut o = opts(&["2", "3"], "1");
        o.merge_conflicts = true;
        o.sources_action = RowAction::Set(vec![("deleted".into(), "1".into()), ("active".into(), "0".into())]);

        let mut previewed: Vec<Change> = Vec::new();
        let mut sink = |c: Change| previewed.push(c);
        let preview = merge::merge(
            &db.url,
            &MergeOptions {
                preview: true,
                ..o.clone()
            },
            Some(&mut sink),
        )
        .await
        .unwrap();
        assert_eq!(preview.status, MergeStatus::Preview, "{engine}");
        assert_eq!(snapshot(&mut conn).await, before, "{engine}: a preview changes nothing");

        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}: {:?}", report.error);
        assert_eq!(report.tables, preview.tables, "{engine}: counts as previewed");

        // The seed's outcome.
        assert_eq!(
            one(&mut conn, "SELECT customer, client, operator FROM jobs WHERE id = 101").await,
            "1|10|11"
        );
        assert_eq!(
            one(&mut conn, "SELECT customer, client, operator FROM jobs WHERE id = 103").await,
            "1|30|21"
        );
        assert_eq!(
            one(&mut conn, "SELECT parent_id FROM customers WHERE id = 5").await,
            "1",
            "{engine}"
        );
        assert_eq!(
            one(&mut conn, "SELECT job FROM job_logs WHERE id = 1001").await,
            "101",
            "logs follow jobs"
        );
        assert_eq!(
            one(&mut conn, "SELECT customer_id FROM products WHERE id = 601").await,
            "1",
            "{engine}"
        );
        assert_eq!(
            one(&mut conn, "SELECT COUNT(*) FROM users WHERE id IN (20, 22, 31)").await,
            "0"
        );
        assert_eq!(one(&mut conn, "SELECT parent FROM users WHERE id = 30").await, "1");
        assert_eq!(
            one(&mut conn, "SELECT deleted, active FROM customers WHERE id = 2").await,
            "1|0"
        );
        // Two levels down: (101, 22) collided with (101, 11) once 22 became 11.
        assert_eq!(
            table_rows(&mut conn, "job_assignments").await.unwrap(),
            vec!["100|11", "101|11", "102|21", "103|21"],
            "{engine}"
        );
        assert_eq!(
            one(&mut conn, "SELECT COUNT(*) FROM notes WHERE customer = 1").await,
            "4",
            "{engine}"
        );
        let mut away: Vec<String> = report
            .actions
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a.level,
                    a.table,
                    serde_json::Value::Object(a.key.clone()),
                    a.action
                )
            })
            .collect();
        away.sort();
        assert_eq!(
            away,
            vec![
                "0 customers {\"id\":2} set",
                "0 customers {\"id\":3} set",
                "1 users {\"id\":20} delete",
                "1 users {\"id\":22} delete",
                "1 users {\"id\":31} delete",
                "2 job_assignments {\"job\":101,\"pilot\":22} delete",
            ],
            "{engine}"
        );

        // Preview == effect, row by row: the tables before, with every previewed
        // change applied (and the rows merged away deleted or set as reported), are
        // the tables after.
        let mut expected = BTreeMap::new();
        let mut actual = BTreeMap::new();
        for t in TABLES {
            expected.insert(t, before_rows[t].clone());
            actual.insert(t, json_rows(&mut conn, t).await);
        }
        for c in &previewed {
            let rows = expected.get_mut(c.table.as_str()).unwrap();
            let row = rows
                .iter_mut()
                .find(|r| {
                    c.key.iter().all(|(k, v)| r[k] == *v) && c.columns.iter().zip(&c.old).all(|(k, v)| r[k] == *v)
                })
                .unwrap_or_else(|| panic!("{engine}: previewed change {c:?} names no row"));
            for (k, v) in c.columns.iter().zip(&c.new) {
                row.insert(k.clone(), v.clone());
            }
        }
        for a in &report.actions {
            let rows = expected.get_mut(a.table.as_str()).unwrap();
            let at = rows.iter().position(|r| a.key.iter().all(|(k, v)| r[k] == *v)).unwrap();
            match a.action.as_str() {
                "delete" => {
                    rows.remove(at);
                }
                _ => {
                    rows[at].insert("deleted".into(), 1.into());
                    rows[at].insert("active".into(), 0.into());
                }
            }
        }
        for t in TABLES {
            let mut e: Vec<String> = expected[t]
                .iter()
                .map(|r| serde_json::Value::Object(r.clone()).to_string())
                .collect();
            let mut a: Vec<String> = actual[t]
                .iter()
                .map(|r| serde_json::Value::Object(r.clone()).to_string())
                .collect();
            e.sort();
            a.sort();
            assert_eq!(e, a, "{engine}: table {t}: the preview and the effect differ");
        }
        assert_eq!(
            previewed.len(),
            report.total_rows as usize,
            "{engine}: one preview line per row re-pointed"
        );

        // Undo restores the exact tables; a second undo is refused.
        let undone = merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(undone.status, "undone", "{engine}: {undone:?}");
        assert_eq!(snapshot(&mut conn).await, before, "{engine}: undo restores every table");
        let again = merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap_err();
        assert_eq!(again.exit_code(), 2);
        assert!(again.to_string().contains("already undone"), "{engine}: {again}");
        let shown = merge::show(&db.url, report.id.unwrap(), 1000).await.unwrap();
        assert_eq!(shown.summary.status, MergeStatus::Undone);
        assert_eq!(shown.changes.len(), report.total_rows as usize, "{engine}");
        assert!(
            shown.summary.duration_ms.is_some(),
            "{engine}: a completed merge has a duration"
        );
        // A row whose key the merge changed is shown by its key before the merge.
        let moved_key: Vec<String> = shown
            .changes
            .iter()
            .filter(|c| c.table == "job_assignments")
            .map(|c| serde_json::Value::Object(c.key.clone()).to_string())
            .collect();
        assert_eq!(moved_key, vec!["{\"job\":103,\"pilot\":31}"], "{engine}");
    }
}

#[tokio::test]
async fn sources_deleted_then_undone_and_skipped_tables_left_alone() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        let before = snapshot(&mut conn).await;
        // Customer 3 into 6: no conflicts (kim and zed are new to 6).
        let mut o = opts(&["3"], "6");
        o.sources_action = RowAction::Delete;
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}: {:?}", report.error);
        assert_eq!(one(&mut conn, "SELECT COUNT(*) FROM customers WHERE id = 3").await, "0");
        assert_eq!(
            one(&mut conn, "SELECT customer FROM invoices WHERE id = 501").await,
            "6"
        );
        assert_eq!(
            one(&mut conn, "SELECT COUNT(*) FROM notes WHERE customer = 6").await,
            "1",
            "{engine}"
        );
        merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(snapshot(&mut conn).await, before, "{engine}");

        // Skipping invoices: they keep pointing at the source, which is kept.
        let mut o = opts(&["3"], "6");
        o.skip_tables = vec!["invoices".into()];
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}");
        assert_eq!(
            one(&mut conn, "SELECT customer FROM invoices WHERE id = 501").await,
            "3"
        );
        assert_eq!(one(&mut conn, "SELECT customer FROM jobs WHERE id = 103").await, "6");
        assert!(report.tables.iter().all(|t| t.table != "invoices"), "{engine}");

        // Skipping invoices while deleting the sources fails on the foreign key and
        // keeps nothing; the failure is in the history.
        let before = snapshot(&mut conn).await;
        let mut o = opts(&["2"], "1");
        o.merge_conflicts = true;
        o.skip_tables = vec!["invoices".into()];
        o.sources_action = RowAction::Delete;
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Failed, "{engine}");
        assert_eq!(report.exit_code(), 1);
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("1 rows of invoices (customer) still reference the rows of customers"),
            "{engine}: {error}"
        );
        assert_eq!(snapshot(&mut conn).await, before, "{engine}: nothing kept");
        let history = merge::history(&db.url, 10).await.unwrap();
        assert_eq!(history[0].status, MergeStatus::Failed, "{engine}");
        assert!(history[0].error.is_some());
        // No side table of the failed merge is left behind.
        let leftovers: Vec<String> = conn
            .list_tables()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with(&format!("lockgate_merge_{}_", report.id.unwrap())))
            .collect();
        assert!(leftovers.is_empty(), "{engine}: {leftovers:?}");
    }
}

#[tokio::test]
async fn undo_refused_after_a_later_edit_then_forced() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        let report = merge::merge(&db.url, &opts(&["3"], "6"), None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}");
        conn.batch("UPDATE jobs SET customer = 1 WHERE id = 103").await.unwrap();
        let after_edit = snapshot(&mut conn).await;
        let refused = merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (refused.status.as_str(), refused.exit_code()),
            ("changed", 4),
            "{engine}"
        );
        assert_eq!(refused.changed.len(), 1, "{engine}: {:?}", refused.changed);
        assert_eq!(refused.changed[0].table, "jobs");
        assert_eq!(snapshot(&mut conn).await, after_edit, "{engine}: nothing changed");
        let forced = merge::undo(
            &db.url,
            report.id.unwrap(),
            &UndoOptions {
                overwrite: true,
                ..UndoOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(forced.status, "undone", "{engine}");
        assert_eq!(
            one(&mut conn, "SELECT customer FROM jobs WHERE id = 103").await,
            "3",
            "{engine}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_thing_with_nothing_written() {
    let db = seeded(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch("CREATE TABLE nopk (id INT, name TEXT)").await.unwrap();
    let before = snapshot(&mut conn).await;
    let cases: Vec<(MergeOptions, &str)> = vec![
        (
            MergeOptions {
                table: "nosuch".into(),
                ..opts(&["2"], "1")
            },
            "nosuch",
        ),
        (opts(&["9"], "1"), "source 9 is not in customers"),
        (opts(&["2"], "2"), "source 2 is the target"),
        (opts(&["2", "2"], "1"), "source 2 is given twice"),
        (opts(&["4"], "1"), "source 4 of customers is soft-deleted"),
        (opts(&["2"], "4"), "target 4 of customers is soft-deleted"),
        (opts(&["2:1"], "1"), "has 2 part(s)"),
        (opts(&["x"], "1"), "is not a value of customers.id"),
        (
            MergeOptions {
                references: vec!["products.nope -> customers.id".into()],
                ..opts(&["2"], "1")
            },
            "nope",
        ),
        (
            MergeOptions {
                sources_action: RowAction::Set(vec![("nope".into(), "1".into())]),
                ..opts(&["2"], "1")
            },
            "sets column nope",
        ),
        (
            MergeOptions {
                sources_action: RowAction::Set(vec![("id".into(), "7".into())]),
                ..opts(&["2"], "1")
            },
            "primary key column",
        ),
        (
            MergeOptions {
                skip_tables: vec!["nosuch".into()],
                ..opts(&["2"], "1")
            },
            "--skip-table names table nosuch",
        ),
        (
            MergeOptions {
                table: "nopk".into(),
                ..opts(&["2"], "1")
            },
            "has no primary key",
        ),
        (
            MergeOptions {
                deleted_when: Some("nosuchcol = 1".into()),
                ..opts(&["2"], "1")
            },
            "soft-delete condition",
        ),
        (
            MergeOptions {
                conflict_rows: RowAction::Set(vec![("nope".into(), "1".into())]),
                ..opts(&["2"], "1")
            },
            "--conflict-rows sets nope, which none of the tables where conflicts can arise (users) has",
        ),
    ];
    for (o, expected) in cases {
        let err = merge::merge(&db.url, &o, None).await.unwrap_err();
        assert!(matches!(err, MergeError::Invalid(_)), "{expected}: {err:?}");
        assert_eq!(err.exit_code(), 2, "{expected}");
        assert!(err.to_string().contains(expected), "expected {expected:?} in: {err}");
    }
    assert_eq!(snapshot(&mut conn).await, before);
    // All of it was found before anything was written: not even a history row.
    assert!(merge::history(&db.url, 50).await.unwrap().is_empty());

    // A referencing table whose rows cannot be told apart is refused (an undo could
    // not put back exactly the rows moved), unless it is skipped.
    conn.batch("CREATE TABLE tags (customer INT REFERENCES customers (id), tag TEXT)")
        .await
        .unwrap();
    let err = merge::merge(&db.url, &opts(&["3"], "6"), None).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("table tags references id (customer) but has no primary key"),
        "{err}"
    );
    let skipped = MergeOptions {
        skip_tables: vec!["tags".into()],
        ..opts(&["3"], "6")
    };
    let report = merge::merge(&db.url, &skipped, None).await.unwrap();
    assert_eq!(report.status, MergeStatus::Completed, "{:?}", report.error);

    // A target whose referenced value is NULL would leave references pointing at nothing.
    conn.batch(
        "CREATE TABLE accts (id INT PRIMARY KEY, code VARCHAR(10) UNIQUE);
         CREATE TABLE uses (id INT PRIMARY KEY, code VARCHAR(10) REFERENCES accts (code));
         INSERT INTO accts VALUES (1, NULL), (2, 'b'); INSERT INTO uses VALUES (10, 'b');",
    )
    .await
    .unwrap();
    let o = MergeOptions {
        table: "accts".into(),
        sources: keys(&["2"]),
        target: vec!["1".into()],
        ..MergeOptions::default()
    };
    let recorded = merge::history(&db.url, 50).await.unwrap().len();
    let err = merge::merge(&db.url, &o, None).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("target 1 has no code (NULL)"), "{err}");
    assert_eq!(
        merge::history(&db.url, 50).await.unwrap().len(),
        recorded,
        "nothing written"
    );
}

#[tokio::test]
async fn conflicts_follow_the_columns_collation_and_are_listed_once() {
    for engine in [Engine::Sqlite, Engine::Mysql] {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        // 'Home' and 'home' are one value under NOCASE (SQLite) and MariaDB's
        // default _ci collation: two sources' rows collide on them.
        let nocase = if engine == Engine::Sqlite {
            " COLLATE NOCASE"
        } else {
            ""
        };
        conn.batch(&format!(
            "CREATE TABLE addresses (id INT PRIMARY KEY, customer_id INT NOT NULL, label VARCHAR(20){nocase} NOT NULL,
               UNIQUE (customer_id, label), FOREIGN KEY (customer_id) REFERENCES customers (id));
             INSERT INTO addresses VALUES (1, 2, 'Home'), (2, 3, 'home'), (3, 3, 'Work');"
        ))
        .await
        .unwrap();
        let o = MergeOptions {
            preview: true,
            ..opts(&["2", "3"], "6")
        };
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        let found: Vec<String> = report
            .conflicts
            .iter()
            .filter(|c| c.table == "addresses")
            .map(|c| format!("{} -> {}", c.row["id"], c.counterpart["id"]))
            .collect();
        assert_eq!(found, vec!["2 -> 1"], "{engine}");
    }
    // More groups than a statement's chunk: each conflict listed once.
    let db = seeded(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE TABLE handles (id INT PRIMARY KEY, customer_id INT NOT NULL, handle TEXT NOT NULL,
           UNIQUE (customer_id, handle), FOREIGN KEY (customer_id) REFERENCES customers (id));
         INSERT INTO handles WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 250)
           SELECT n, 2, 'h' || n FROM s;
         INSERT INTO handles WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 250)
           SELECT 1000 + n, 3, 'h' || n FROM s;",
    )
    .await
    .unwrap();
    let report = merge::merge(
        &db.url,
        &MergeOptions {
            preview: true,
            ..opts(&["2", "3"], "6")
        },
        None,
    )
    .await
    .unwrap();
    let handles = report.conflicts.iter().filter(|c| c.table == "handles").count();
    assert_eq!(handles, 250);
}

#[tokio::test]
async fn a_column_set_to_null_since_the_merge_stops_the_undo_and_is_listed() {
    for engine in ENGINES {
        let db = seeded(engine).await;
        let mut conn = db.conn().await;
        let report = merge::merge(&db.url, &opts(&["3"], "6"), None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}");
        conn.batch("UPDATE jobs SET customer = NULL WHERE id = 103")
            .await
            .unwrap();
        let undo = merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(undo.status, "changed", "{engine}");
        let listed: Vec<String> = undo
            .changed
            .iter()
            .map(|c| format!("{} {}", c.table, serde_json::Value::Object(c.key.clone())))
            .collect();
        assert_eq!(listed, vec!["jobs {\"id\":103}"], "{engine}");
        // A completed merge's record is never overwritten by a late failure.
        let mut record = lockgate::db::merge::record_by_id(&mut conn, report.id.unwrap())
            .await
            .unwrap()
            .unwrap();
        record.status = "failed".into();
        assert!(!lockgate::db::merge::finish_unless_completed(&mut conn, &record)
            .await
            .unwrap());
        assert_eq!(
            merge::history(&db.url, 1).await.unwrap()[0].status,
            MergeStatus::Completed
        );
    }
}

#[tokio::test]
async fn a_merge_past_its_timeout_is_stopped_on_the_server_and_keeps_nothing() {
    let db = seeded(Engine::Postgres).await;
    let mut conn = db.conn().await;
    conn.batch(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION slow();",
    )
    .await
    .unwrap();
    let before = snapshot(&mut conn).await;
    let o = MergeOptions {
        timeout: Duration::from_secs(1),
        ..opts(&["3"], "6")
    };
    let started = std::time::Instant::now();
    let report = merge::merge(&db.url, &o, None).await.unwrap();
    assert_eq!((report.status, report.exit_code()), (MergeStatus::Failed, 1));
    assert!(
        report.error.as_deref().unwrap_or_default().contains("--timeout"),
        "{:?}",
        report.error
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The server stopped the statement: nothing kept, nothing still running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(snapshot(&mut conn).await, before);
    assert_eq!(
        one(
            &mut conn,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'WITH m (%' \
             AND state = 'active'"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn more_than_a_thousand_conflicting_rows_are_merged_on_sqlite() {
    let db = seeded(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    conn.batch(
        "INSERT INTO users (id, parent, kind, username) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
         WHERE n < 1200) SELECT 100000 + n, 1, '3', 'u' || n FROM s;
         INSERT INTO users (id, parent, kind, username) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
         WHERE n < 1200) SELECT 200000 + n, 3, '3', 'u' || n FROM s;",
    )
    .await
    .unwrap();
    let mut o = opts(&["3"], "1");
    o.merge_conflicts = true;
    o.conflict_rows = RowAction::Set(vec![("deleted".into(), "1".into())]);
    let report = merge::merge(&db.url, &o, None).await.unwrap();
    assert_eq!(report.status, MergeStatus::Completed, "{:?}", report.error);
    assert_eq!(report.conflicts.len(), 1200, "{:?}", report.conflicts.len());
    assert_eq!(
        one(&mut conn, "SELECT COUNT(*) FROM users WHERE parent = 3 AND deleted = 1").await,
        "1200"
    );
    merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
        .await
        .unwrap();
    assert_eq!(
        one(&mut conn, "SELECT COUNT(*) FROM users WHERE parent = 3 AND deleted = 0").await,
        "1202"
    );
}

#[tokio::test]
async fn two_re_pointed_columns_in_one_unique_key_fail_with_a_message_naming_the_table() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch(
            "CREATE TABLE customers (id INT PRIMARY KEY);
             CREATE TABLE links (id INT PRIMARY KEY, a INT NOT NULL, b INT NOT NULL, UNIQUE (a, b),
               FOREIGN KEY (a) REFERENCES customers (id), FOREIGN KEY (b) REFERENCES customers (id));
             INSERT INTO customers VALUES (1), (2);
             INSERT INTO links VALUES (10, 2, 2), (11, 1, 1);",
        )
        .await
        .unwrap();
        let before = table_rows(&mut conn, "links").await.unwrap();
        let o = MergeOptions {
            table: "customers".into(),
            sources: keys(&["2"]),
            target: vec!["1".into()],
            ..MergeOptions::default()
        };
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Failed, "{engine}");
        let error = report.error.unwrap_or_default();
        assert!(error.contains("re-pointing links("), "{engine}: {error}");
        assert_eq!(table_rows(&mut conn, "links").await.unwrap(), before, "{engine}");
    }
}

#[tokio::test]
async fn a_merge_that_cannot_take_its_table_locks_is_recorded_as_failed() {
    use lockgate::db::ledger::{Holder, Ledger};
    let db = seeded(Engine::Postgres).await;
    let mut other = Ledger::open(&db.url).await.unwrap();
    let job = other.table_job(&lockgate_core::TableName::new("jobs")).await.unwrap();
    let lock = other
        .lock(&job, &Holder::current("another command"), Duration::from_secs(1))
        .await
        .unwrap();
    let o = MergeOptions {
        lock_timeout: Duration::from_millis(300),
        ..opts(&["3"], "6")
    };
    let err = merge::merge(&db.url, &o, None).await.unwrap_err();
    assert!(err.to_string().contains("another command"), "{err}");
    other.unlock(lock).await.unwrap();
    let history = merge::history(&db.url, 5).await.unwrap();
    assert_eq!(history[0].status, MergeStatus::Failed, "{history:?}");
    assert!(history[0]
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("another command"));
}

#[tokio::test]
async fn composite_keys_are_re_pointed_column_by_column_and_undone() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch(
            "CREATE TABLE accounts (tenant INT NOT NULL, id INT NOT NULL, name VARCHAR(20), PRIMARY KEY (tenant, id));
             CREATE TABLE orders (id INT PRIMARY KEY, tenant INT NOT NULL, account INT NOT NULL, ref VARCHAR(20),
               UNIQUE (tenant, account, ref), FOREIGN KEY (tenant, account) REFERENCES accounts (tenant, id));
             CREATE TABLE acct_lines (tenant INT NOT NULL, id INT NOT NULL, account INT NOT NULL, PRIMARY KEY (tenant, id),
               FOREIGN KEY (tenant, account) REFERENCES accounts (tenant, id));
             INSERT INTO accounts VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 2, 'c');
             INSERT INTO orders VALUES (10, 1, 1, 'x'), (11, 1, 2, 'y'), (12, 1, 2, 'z'), (13, 2, 2, 'x');
             INSERT INTO acct_lines VALUES (1, 1, 2), (1, 2, 2), (1, 3, 1), (2, 1, 2);",
        )
        .await
        .unwrap();
        let before = table_rows(&mut conn, "orders").await.unwrap();
        let o = MergeOptions {
            table: "accounts".into(),
            sources: merge::parse_keys("1:2"),
            target: vec!["1".into(), "1".into()],
            ..MergeOptions::default()
        };
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        // acct_lines' primary key holds `tenant`, which the merge leaves as it is: a row
        // is never its own conflict.
        assert_eq!(
            report.status,
            MergeStatus::Completed,
            "{engine}: {:?} {:?}",
            report.error,
            report.conflicts
        );
        assert_eq!(report.total_rows, 4, "{engine}");
        assert_eq!(
            table_rows(&mut conn, "acct_lines").await.unwrap(),
            vec!["1|1|1", "1|2|1", "1|3|1", "2|1|2"],
            "{engine}"
        );
        assert_eq!(
            table_rows(&mut conn, "orders").await.unwrap(),
            vec!["10|1|1|x", "11|1|1|y", "12|1|1|z", "13|2|2|x"],
            "{engine}"
        );
        merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(table_rows(&mut conn, "orders").await.unwrap(), before, "{engine}");
        // A conflict on the composite unique key: (1, 1, 'x') is there already.
        conn.batch("INSERT INTO orders VALUES (14, 1, 2, 'x')").await.unwrap();
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::AbortedConflicts, "{engine}");
        assert_eq!(report.conflicts[0].row["id"], 14, "{engine}");
        assert_eq!(report.conflicts[0].counterpart["id"], 10, "{engine}");
    }
}

#[tokio::test]
async fn a_postgres_lock_timeout_is_retried_to_success_with_nothing_doubled() {
    let db = seeded(Engine::Postgres).await;
    let mut holder = db.conn().await;
    holder
        .batch("BEGIN; SELECT * FROM jobs WHERE id = 103 FOR UPDATE")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        holder.batch("COMMIT").await.unwrap();
    });
    let mut o = opts(&["3"], "6");
    o.lock_wait = Some(Duration::from_millis(200));
    o.retry.attempts = 30;
    o.retry.max = Duration::from_millis(300);
    let report = merge::merge(&db.url, &o, None).await.unwrap();
    release.await.unwrap();
    assert_eq!(report.status, MergeStatus::Completed, "{:?}", report.error);
    assert!(
        report.attempts > 1,
        "the first attempts waited on the lock: {}",
        report.attempts
    );
    let shown = merge::show(&db.url, report.id.unwrap(), 1000).await.unwrap();
    assert_eq!(
        shown.changes.len() as u64,
        report.total_rows,
        "each moved row recorded once"
    );
    let mut conn = db.conn().await;
    assert_eq!(
        one(&mut conn, "SELECT COUNT(*) FROM jobs WHERE customer = 6").await,
        "2"
    );
}

#[tokio::test]
async fn a_killed_connection_is_retried_to_success_with_nothing_doubled() {
    let db = seeded(Engine::Postgres).await;
    let mut conn = db.conn().await;
    // The first update of jobs kills its own connection (a sequence is not rolled
    // back, so only the first attempt dies).
    conn.batch(
        "CREATE SEQUENCE kill_once;
         CREATE FUNCTION kill_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF nextval('kill_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$;
         CREATE TRIGGER kill_once BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION kill_once();",
    )
    .await
    .unwrap();
    let before = snapshot(&mut conn).await;
    let report = merge::merge(&db.url, &opts(&["3"], "6"), None).await.unwrap();
    assert_eq!(report.status, MergeStatus::Completed, "{:?}", report.error);
    assert!(report.attempts >= 2, "{}", report.attempts);
    let shown = merge::show(&db.url, report.id.unwrap(), 1000).await.unwrap();
    assert_eq!(shown.changes.len() as u64, report.total_rows);
    assert_eq!(
        one(&mut conn, "SELECT COUNT(*) FROM jobs WHERE customer = 6").await,
        "2"
    );
    merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
        .await
        .unwrap();
    assert_eq!(snapshot(&mut conn).await, before);
}

#[tokio::test]
async fn a_merge_definition_from_lockgate_toml_gives_the_options() {
    let toml = r#"
[merges.customers]
table = "customers"
references = ["products.customer_id -> customers.id"]
deleted_when = "deleted = 1"
sources = "set:deleted=1,name=name || '-merged'"
conflict_rows = "set:deleted=1"
merge_conflicts = true
skip_tables = ["invoices"]
timeout = "5s"
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lockgate.toml");
    std::fs::write(&path, toml).unwrap();
    let config = lockgate::Config::load(&path, true).unwrap();
    let o = config.merges["customers"].options("customers");
    assert_eq!(o.table, "customers");
    assert_eq!(o.timeout, Duration::from_secs(5));
    assert!(o.merge_conflicts);
    assert_eq!(o.conflict_rows, RowAction::Set(vec![("deleted".into(), "1".into())]));
    // A bad action names the file and line.
    std::fs::write(&path, "[merges.x]\nsources = \"remove\"\n").unwrap();
    let err = lockgate::Config::load(&path, true).unwrap_err().to_string();
    assert!(err.contains("lockgate.toml:2"), "{err}");
}

#[tokio::test]
async fn a_composite_key_through_re_pointed_columns_is_listed_and_followed_by_cascade() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch(
            "CREATE TABLE customers (id INT PRIMARY KEY);
             CREATE TABLE users (id INT PRIMARY KEY, parent INT NOT NULL, username VARCHAR(20) NOT NULL,
               UNIQUE (parent, username), FOREIGN KEY (parent) REFERENCES customers (id));
             CREATE TABLE tasks (id INT PRIMARY KEY, owner_parent INT, owner_name VARCHAR(20),
               FOREIGN KEY (owner_parent, owner_name) REFERENCES users (parent, username) ON UPDATE CASCADE);
             INSERT INTO customers VALUES (1), (2);
             INSERT INTO users VALUES (10, 1, 'amy'), (20, 2, 'bob');
             INSERT INTO tasks VALUES (100, 2, 'bob'), (101, 1, 'amy');",
        )
        .await
        .unwrap();
        let refs = merge::references(&db.url, "customers", &[], &[]).await.unwrap();
        let through: Vec<String> = refs
            .iter()
            .filter(|r| r.via.is_some())
            .map(|r| format!("{}({}) changes={}", r.table, r.columns.join(","), r.changes))
            .collect();
        assert_eq!(through, vec!["tasks(owner_parent,owner_name) changes=true"], "{engine}");
        let before = table_rows(&mut conn, "tasks").await.unwrap();
        let o = MergeOptions {
            table: "customers".into(),
            sources: merge::parse_keys("2"),
            target: vec!["1".into()],
            ..MergeOptions::default()
        };
        let report = merge::merge(&db.url, &o, None).await.unwrap();
        assert_eq!(report.status, MergeStatus::Completed, "{engine}: {:?}", report.error);
        assert_eq!(
            table_rows(&mut conn, "tasks").await.unwrap(),
            vec!["100|1|bob", "101|1|amy"],
            "{engine}"
        );
        merge::undo(&db.url, report.id.unwrap(), &UndoOptions::default())
            .await
            .unwrap();
        assert_eq!(table_rows(&mut conn, "tasks").await.unwrap(), before, "{engine}");
    }
}
