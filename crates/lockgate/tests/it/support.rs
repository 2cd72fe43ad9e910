//! Helpers: fresh databases with the customers table, running a load, counting rows.

use lockgate::{LoadError, LoadOptions, LoadReport};
pub use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::path::{Path, PathBuf};

/// The three engines, for tests that run on each.
pub const ENGINES: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

/// The customers schema of `../shared/bench/gen_customers.py`, per engine.
pub fn customers_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE customers (customer_id bigint PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, \
             email text NOT NULL, phone text, city varchar(20), acquisition_date date NOT NULL, \
             lifetime_value numeric(12,2) CHECK (lifetime_value >= 0))"
        }
        Engine::Mysql => {
            "CREATE TABLE customers (customer_id bigint PRIMARY KEY, first_name varchar(100) NOT NULL, last_name varchar(100) NOT NULL, \
             email varchar(200) NOT NULL, phone varchar(50), city varchar(20), acquisition_date date NOT NULL, \
             lifetime_value decimal(12,2) CHECK (lifetime_value >= 0)) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL, \
             email TEXT NOT NULL, phone TEXT, city TEXT, acquisition_date DATE NOT NULL, \
             lifetime_value NUMERIC(12,2) CHECK (lifetime_value >= 0))"
        }
    }
}

/// A fresh database holding an empty customers table.
pub async fn customers_db(engine: Engine) -> TestDb {
    let db = TestDb::new(engine).await;
    db.conn().await.batch(customers_schema(engine)).await.unwrap();
    db
}

/// A test data file.
#[allow(dead_code)]
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Writes `text` to a temporary file named `name`; keep the dir alive.
pub fn temp_file(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Loads `files` into `table` with `opts` adjusted by the caller.
pub async fn load(
    db: &TestDb,
    table: &str,
    files: &[PathBuf],
    tweak: impl FnOnce(&mut LoadOptions),
) -> Result<LoadReport, LoadError> {
    let mut opts = LoadOptions {
        table: table.into(),
        files: files.to_vec(),
        ..LoadOptions::default()
    };
    tweak(&mut opts);
    lockgate::load(&db.url, &opts, None).await
}

/// Rows in a table.
pub async fn count(conn: &mut Conn, table: &str) -> i64 {
    let q = conn.dialect().quote(table);
    match conn
        .query(&format!("SELECT COUNT(*) FROM {q}"), &[], None)
        .await
        .unwrap()[0][0]
    {
        lockgate_core::Value::Int(n) => n,
        ref other => other.to_string().parse().unwrap(),
    }
}

/// The rows of a query, rendered as text lines (for compact comparisons).
pub async fn rows(conn: &mut Conn, sql: &str) -> Vec<String> {
    conn.query(sql, &[], None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|"))
        .collect()
}

/// Like [`rows`], with each column typed by its kind (SQLite stores 10.00 as 10).
pub async fn typed_rows(conn: &mut Conn, sql: &str, kinds: &[lockgate_core::Kind]) -> Vec<String> {
    conn.query(sql, &[], Some(kinds))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|"))
        .collect()
}

/// Generates customers with the shared generator (`--bad` faults when given) and
/// returns the file and the number of faulty rows it printed.
pub fn generate(rows: u32, bad: Option<&str>, dir: &Path) -> (PathBuf, u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/gen_customers.py");
    let out = dir.join(format!("customers_{rows}_{}.csv", bad.is_some()));
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg(rows.to_string()).arg("--out").arg(&out);
    if let Some(b) = bad {
        cmd.args(["--bad", b, "--faults", "null,dup,check"]);
    }
    let output = cmd.output().expect("python3 runs the shared generator");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let faulty = stderr
        .lines()
        .find_map(|l| l.strip_prefix("faulty rows: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    (out, faulty)
}

/// Every row of `table`, ordered by its primary key (else by every column), each
/// typed by its column's kind and rendered as `a|b|c`: a table's checksum, for
/// "identical" checks. `None` when the table does not exist.
#[allow(dead_code)]
pub async fn table_rows(conn: &mut Conn, table: &str) -> Option<Vec<String>> {
    let t = conn.lookup_table(table).await.unwrap()?;
    let d = conn.dialect();
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<lockgate_core::Kind> = t.columns.iter().map(|c| c.kind.clone()).collect();
    let order = if t.primary_key.is_empty() {
        &columns
    } else {
        &t.primary_key
    };
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        d.columns(None, &columns),
        d.table(&t.name),
        order.iter().map(|c| d.quote(c)).collect::<Vec<_>>().join(", ")
    );
    Some(typed_rows(conn, &sql, &kinds).await)
}
