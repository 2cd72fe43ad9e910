//! Streaming reads with bounded memory: keyset pagination by primary key, one page
//! (batch) at a time, so a 10M-row table reads with the memory of one page.

use crate::conn::Conn;
use crate::error::DbError;
use lockgate_core::{Batch, Kind, Row, Table, Value};
use std::sync::Arc;

/// Reads a table page by page in primary-key order.
pub struct TableReader {
    table: Table,
    columns: Arc<Vec<String>>,
    kinds: Vec<Kind>,
    /// Positions of the key columns within the selected columns.
    key_pos: Vec<usize>,
    key: Vec<String>,
    after: Option<Vec<Value>>,
    page: usize,
    done: bool,
    read: u64,
}

impl TableReader {
    /// A reader of `columns` (all when `None`) of `table`, `page` rows at a time.
    /// The table needs a primary key: keyset pagination orders and resumes by it.
    pub fn new(table: &Table, columns: Option<&[String]>, page: usize) -> Result<TableReader, DbError> {
        if table.primary_key.is_empty() {
            return Err(DbError::Invalid(format!(
                "table {} has no primary key; lockgate reads tables page by page in key order and needs one",
                table.name
            )));
        }
        let mut cols: Vec<String> = match columns {
            Some(c) => c
                .iter()
                .map(|n| {
                    table
                        .column(n)
                        .map(|c| c.name.clone())
                        .ok_or_else(|| DbError::Invalid(format!("column {n:?} is not in table {}", table.name)))
                })
                .collect::<Result<_, _>>()?,
            None => table.columns.iter().map(|c| c.name.clone()).collect(),
        };
        // The key must be selected to resume after the last row of a page.
        for k in &table.primary_key {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
        let kinds = cols
            .iter()
            .map(|c| table.column(c).map(|c| c.kind.clone()).unwrap_or(Kind::Any))
            .collect();
        let key_pos = table
            .primary_key
            .iter()
            .map(|k| cols.iter().position(|c| c == k).unwrap_or(0))
            .collect();
        Ok(TableReader {
            table: table.clone(),
            columns: Arc::new(cols),
            kinds,
            key_pos,
            key: table.primary_key.clone(),
            after: None,
            page: page.max(1),
            done: false,
            read: 0,
        })
    }

    /// The next page, or `None` after the last.
    pub async fn next_batch(&mut self, conn: &mut Conn) -> Result<Option<Batch>, DbError> {
        if self.done {
            return Ok(None);
        }
        let d = conn.dialect();
        let order = d.columns(None, &self.key);
        let mut params = Vec::new();
        let filter = match &self.after {
            None => "1 = 1".to_string(),
            Some(last) => {
                let keys: Vec<String> = self.key.iter().map(|k| d.quote(k)).collect();
                d.after_keys(&keys, last, &mut params)
            }
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {order} LIMIT {}",
            d.columns(None, &self.columns),
            d.table(&self.table.name),
            self.page
        );
        let rows = conn.query(&sql, &params, Some(&self.kinds)).await?;
        if rows.len() < self.page {
            self.done = true;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let last = rows.last().expect("not empty");
        self.after = Some(self.key_pos.iter().map(|&i| last[i].clone()).collect());
        let mut batch = Batch::new(self.columns.clone());
        for values in rows {
            self.read += 1;
            batch.push(Row {
                line: self.read,
                number: 0,
                values,
            });
        }
        Ok(Some(batch))
    }
}
