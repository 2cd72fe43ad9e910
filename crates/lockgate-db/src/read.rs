//! Streaming reads with bounded memory: keyset pagination by primary key (or by a
//! unique key of NOT NULL columns, for a table without one), one page (batch) at a
//! time, so a 10M-row table reads with the memory of one page. A reader may also be
//! limited to the rows whose column holds one of a few values (a tenant's rows),
//! filtered by the database, not after the read.

use crate::conn::Conn;
use crate::error::DbError;
use lockgate_core::{Batch, Kind, Row, Table, Value};
use std::sync::Arc;

/// Reads a table page by page in key order.
pub struct TableReader {
    table: Table,
    columns: Arc<Vec<String>>,
    kinds: Vec<Kind>,
    /// Positions of the key columns within the selected columns.
    key_pos: Vec<usize>,
    key: Vec<String>,
    /// Only the rows whose column (as the table spells it) holds one of the values.
    only: Option<(String, Vec<Value>)>,
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
        TableReader::by_key(table, columns, &table.primary_key.clone(), page)
    }

    /// Like [`TableReader::new`], paged by `key` instead of the primary key: columns
    /// that together tell every row apart and are all NOT NULL (a unique key, as
    /// `writer::image_key` picks for a table without a primary key). A nullable
    /// column is refused: NULLs repeat and cannot be resumed after.
    pub fn by_key(
        table: &Table,
        columns: Option<&[String]>,
        key: &[String],
        page: usize,
    ) -> Result<TableReader, DbError> {
        if key.is_empty() {
            return Err(DbError::Invalid(format!(
                "table {} has no primary key nor unique key of NOT NULL columns: its rows cannot be told apart, \
                 and lockgate reads tables page by page in key order",
                table.name
            )));
        }
        let column = |n: &String| {
            table
                .column(n)
                .ok_or_else(|| DbError::Invalid(format!("column {n:?} is not in table {}", table.name)))
        };
        let mut key_names = Vec::new();
        for k in key {
            let c = column(k)?;
            if c.nullable && !table.primary_key.contains(&c.name) {
                return Err(DbError::Invalid(format!(
                    "column {} of table {} may be NULL: it cannot order a keyset page; page by the primary key or a unique key of NOT NULL columns",
                    c.name, table.name
                )));
            }
            key_names.push(c.name.clone());
        }
        let mut cols: Vec<String> = match columns {
            Some(c) => c
                .iter()
                .map(|n| column(n).map(|c| c.name.clone()))
                .collect::<Result<_, _>>()?,
            None => table.columns.iter().map(|c| c.name.clone()).collect(),
        };
        // The key must be selected to resume after the last row of a page.
        for k in &key_names {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
        let kinds = cols
            .iter()
            .map(|c| table.column(c).map(|c| c.kind.clone()).unwrap_or(Kind::Any))
            .collect();
        let key_pos = key_names
            .iter()
            .map(|k| cols.iter().position(|c| c == k).unwrap_or(0))
            .collect();
        Ok(TableReader {
            table: table.clone(),
            columns: Arc::new(cols),
            kinds,
            key_pos,
            key: key_names,
            only: None,
            after: None,
            page: page.max(1),
            done: false,
            read: 0,
        })
    }

    /// Reads only the rows whose `column` holds one of `values` (none: no row), as
    /// `column IN (…)` in each page's query.
    pub fn only(mut self, column: &str, values: Vec<Value>) -> Result<TableReader, DbError> {
        let c = self
            .table
            .column(column)
            .ok_or_else(|| DbError::Invalid(format!("column {column:?} is not in table {}", self.table.name)))?;
        if values.is_empty() {
            self.done = true;
        }
        self.only = Some((c.name.clone(), values));
        Ok(self)
    }

    /// The most rows a page holds.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The next page, or `None` after the last.
    pub async fn next_batch(&mut self, conn: &mut Conn) -> Result<Option<Batch>, DbError> {
        if self.done {
            return Ok(None);
        }
        let d = conn.dialect();
        let order = d.columns(None, &self.key);
        let mut params = Vec::new();
        let mut conds = Vec::new();
        if let Some((col, values)) = &self.only {
            let marks: Vec<String> = values
                .iter()
                .map(|v| {
                    params.push(v.clone());
                    d.param(params.len())
                })
                .collect();
            conds.push(format!("{} IN ({})", d.quote(col), marks.join(", ")));
        }
        if let Some(last) = &self.after {
            let keys: Vec<String> = self.key.iter().map(|k| d.quote(k)).collect();
            conds.push(format!("({})", d.after_keys(&keys, last, &mut params)));
        }
        let filter = if conds.is_empty() {
            "1 = 1".to_string()
        } else {
            conds.join(" AND ")
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
