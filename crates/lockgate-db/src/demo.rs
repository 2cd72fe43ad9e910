//! The SQL of `lockgate demo`'s sample (SQLite files): its two customers tables, the
//! counts it reports, and the edits that make one export fail and then succeed.

use crate::{Conn, DbError};
use lockgate_core::Value;

/// The sample source's customers: names nullable.
const SOURCE_SCHEMA: &str = "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY, FirstName TEXT, LastName TEXT, \
     Email TEXT NOT NULL, Phone TEXT, City TEXT, AcquisitionDate DATE NOT NULL)";
/// The sample destination's customers: names required, so a NULL name fails its row.
const DEST_SCHEMA: &str = "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY, FirstName TEXT NOT NULL, \
     LastName TEXT NOT NULL, Email TEXT NOT NULL, Phone TEXT, City TEXT, AcquisitionDate DATE NOT NULL)";

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
