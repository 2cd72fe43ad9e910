//! `inspect`: a database's schema through the one introspection model.

use lockgate_core::Table;
use lockgate_db::{Conn, DbError, DbUrl};

/// The tables of the database at `url` (only `table` when given), fully described.
pub async fn inspect(url: &DbUrl, table: Option<&str>) -> Result<Vec<Table>, DbError> {
    let mut conn = Conn::connect_existing(url).await?;
    match table {
        Some(t) => Ok(vec![conn.find_table(t).await?]),
        None => {
            let mut out = Vec::new();
            for name in conn.list_tables().await? {
                if let Some(t) = conn.describe(&name).await? {
                    out.push(t);
                }
            }
            Ok(out)
        }
    }
}
