//! The SQL of `lockgate demo`'s sample (SQLite files): its two customers tables, the
//! counts it reports, and the edits that make one export fail and then succeed; and
//! the customer accounts database (`accounts.db`) a merge of two accounts runs on.

use crate::{Conn, DbError};
use lockgate_core::Value;

/// The sample source's customers: names nullable.
const SOURCE_SCHEMA: &str = "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY, FirstName TEXT, LastName TEXT, \
     Email TEXT NOT NULL, Phone TEXT, City TEXT, AcquisitionDate DATE NOT NULL)";
/// The sample destination's customers: names required, so a NULL name fails its row.
const DEST_SCHEMA: &str = "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY, FirstName TEXT NOT NULL, \
     LastName TEXT NOT NULL, Email TEXT NOT NULL, Phone TEXT, City TEXT, AcquisitionDate DATE NOT NULL)";

/// The accounts sample: customers, their sub-accounts (`users`) and everything that
/// points at either, with every reference declared (`REFERENCES`) so that a merge
/// can find them by introspection. `job_logs` follows its job and names no customer.
/// Users' `kind`: '3' client, '4' officer, '5' pilot, '6' inspector, '9' vehicle.
const ACCOUNTS_SCHEMA: &str = "\
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, username TEXT UNIQUE NOT NULL, \
    kind TEXT NOT NULL DEFAULT '1', active INTEGER NOT NULL DEFAULT 1, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE users (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES customers(id), \
    kind TEXT NOT NULL, username TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, UNIQUE (parent, username));
CREATE TABLE jobs (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), \
    client INTEGER REFERENCES users(id), operator INTEGER REFERENCES users(id), \
    vehicle INTEGER REFERENCES users(id), title TEXT);
CREATE TABLE job_logs (id INTEGER PRIMARY KEY, job INTEGER REFERENCES jobs(id), message TEXT);
CREATE TABLE job_assignments (id INTEGER PRIMARY KEY, job INTEGER REFERENCES jobs(id), \
    pilot INTEGER REFERENCES users(id), vehicle INTEGER REFERENCES users(id));
CREATE TABLE products (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), name TEXT);
CREATE TABLE crops (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), name TEXT);
CREATE TABLE costing_items (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), name TEXT, \
    amount NUMERIC(10,2));
CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), total NUMERIC(12,2));";

/// The accounts sample's tables, parents before children (the order to fill them in).
pub const ACCOUNT_TABLES: [&str; 9] = [
    "customers",
    "users",
    "jobs",
    "job_logs",
    "job_assignments",
    "products",
    "crops",
    "costing_items",
    "invoices",
];

/// Rows in each table of the accounts sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountCounts {
    /// `customers`.
    pub customers: i64,
    /// Soft-deleted customers (`deleted = 1`).
    pub deleted_customers: i64,
    /// `users` (sub-accounts).
    pub users: i64,
    /// `jobs`.
    pub jobs: i64,
    /// `job_logs`.
    pub job_logs: i64,
    /// `job_assignments`.
    pub job_assignments: i64,
    /// `products`.
    pub products: i64,
    /// `crops`.
    pub crops: i64,
    /// `costing_items`.
    pub costing_items: i64,
    /// `invoices`.
    pub invoices: i64,
}

/// Creates the accounts sample's tables (empty) in one transaction.
pub async fn create_accounts(conn: &mut Conn) -> Result<(), DbError> {
    conn.begin().await?;
    if let Err(e) = conn.batch(ACCOUNTS_SCHEMA).await {
        let _ = conn.rollback().await;
        return Err(e);
    }
    conn.commit().await
}

/// Counts the rows of the accounts sample, one query.
pub async fn count_accounts(conn: &mut Conn) -> Result<AccountCounts, DbError> {
    let rows = conn
        .query(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM customers WHERE deleted = 1), \
             (SELECT count(*) FROM users), (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_logs), \
             (SELECT count(*) FROM job_assignments), (SELECT count(*) FROM products), \
             (SELECT count(*) FROM crops), (SELECT count(*) FROM costing_items), (SELECT count(*) FROM invoices)",
            &[],
            None,
        )
        .await?;
    let n: Vec<i64> = rows
        .first()
        .map(|r| r.iter().map(|v| if let Value::Int(n) = v { *n } else { 0 }).collect())
        .unwrap_or_default();
    let at = |i: usize| n.get(i).copied().unwrap_or(0);
    Ok(AccountCounts {
        customers: at(0),
        deleted_customers: at(1),
        users: at(2),
        jobs: at(3),
        job_logs: at(4),
        job_assignments: at(5),
        products: at(6),
        crops: at(7),
        costing_items: at(8),
        invoices: at(9),
    })
}

/// Which side of the sample a database is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source (names nullable).
    Source,
    /// The destination (names required).
    Destination,
}

/// One of a customer's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// `FirstName`.
    First,
    /// `LastName`.
    Last,
}

/// Creates the side's customers table.
pub async fn create_customers(conn: &mut Conn, side: Side) -> Result<(), DbError> {
    conn.batch(match side {
        Side::Source => SOURCE_SCHEMA,
        Side::Destination => DEST_SCHEMA,
    })
    .await
}

async fn one_int(conn: &mut Conn, sql: &str) -> Result<Option<i64>, DbError> {
    let rows = conn.query(sql, &[], None).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    })
}

/// The customers in the table (0 when the engine answers otherwise).
pub async fn count_customers(conn: &mut Conn) -> Result<i64, DbError> {
    Ok(one_int(conn, "SELECT count(*) FROM customers").await?.unwrap_or(0))
}

/// The largest customer id, 0 when there are none.
pub async fn max_customer_id(conn: &mut Conn) -> Result<Option<i64>, DbError> {
    one_int(conn, "SELECT coalesce(max(CustomerID), 0) FROM customers").await
}

/// Sets (or, with `None`, clears) one of a customer's names.
pub async fn set_name(conn: &mut Conn, id: i64, name: Name, value: Option<&str>) -> Result<u64, DbError> {
    let sql = match name {
        Name::First => "UPDATE customers SET FirstName = ?1 WHERE CustomerID = ?2",
        Name::Last => "UPDATE customers SET LastName = ?1 WHERE CustomerID = ?2",
    };
    let value = value.map_or(Value::Null, |v| Value::Text(v.into()));
    conn.execute(sql, &[value, Value::Int(id)]).await
}
