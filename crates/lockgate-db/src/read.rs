//! Streaming reads with bounded memory: keyset pagination by primary key (or by a
//! unique key of NOT NULL columns, for a table without one), one page (batch) at a
//! time, so a 10M-row table reads with the memory of one page. A reader may also be
//! limited to the rows whose column holds one of a few values (a tenant's rows),
//! filtered by the database, not after the read.
//!
//! [`Keyset`] is the one keyset order over a table's key that every reader paging a
//! table by its key uses ([`TableReader`], the writer's images of the rows a sync
//! deletes, `rowdiff`'s differences; `browse` orders its key terms by the same
//! [`Dialect::key_expr`]). Two things make a naive `ORDER BY key` / `key > last`
//! skip rows, and it handles both:
//! - MariaDB sorts ENUM and SET columns by declared position but compares them with
//!   text as text: a page ending on `'z'` of `ENUM('z','a')` would resume at
//!   `> 'z'` and never meet the `'a'` rows. They are ordered and compared by label.
//! - SQLite lets the primary key of a rowid table hold NULLs, several of them. NULL
//!   sorts first, the condition after a NULL is explicit (`IS NULL AND …` / `IS NOT
//!   NULL`), and the rowid breaks ties, so a page ending on a NULL resumes among the
//!   rest of the NULLs.

use crate::conn::Conn;
use crate::dialect::{Dialect, OrderTerm};
use crate::error::DbError;
use crate::url::Engine;
use lockgate_core::{Batch, Column, Kind, Row, Table, Value};
use std::sync::Arc;

/// A keyset order over a table's key columns (see the module's doc): the `ORDER BY`
/// list, the condition "after this row", and where a row's cursor values are read.
#[derive(Clone, Debug)]
pub struct Keyset {
    dialect: Dialect,
    terms: Vec<OrderTerm>,
    /// What each term's cursor value is read as: an expression and its kind.
    reads: Vec<(String, Kind)>,
}

impl Keyset {
    /// The order of `table`'s rows by `key` (names resolved by ARCHITECTURE.md's
    /// naming rule), its columns qualified by `alias` when given. The key must tell
    /// rows apart: a nullable column is refused unless it is part of the primary key
    /// (SQLite's rowid tables allow NULLs there), where the rowid breaks ties.
    pub fn new(d: Dialect, table: &Table, key: &[String], alias: Option<&str>) -> Result<Keyset, DbError> {
        let qualify = |expr: String| match alias {
            Some(a) => format!("{a}.{expr}"),
            None => expr,
        };
        let mut keyset = Keyset {
            dialect: d,
            terms: Vec::new(),
            reads: Vec::new(),
        };
        let mut nullable = false;
        for c in key_columns(table, key)? {
            nullable |= c.nullable;
            let expr = d.key_expr(&qualify(d.quote(&c.name)), c);
            // SQLite compares the value it stored (a date stored as other text than
            // lockgate writes, say), so the cursor carries that value itself there.
            let kind = if d.0 == Engine::Sqlite {
                Kind::Any
            } else {
                c.kind.clone()
            };
            keyset.reads.push((expr.clone(), kind));
            keyset.terms.push(OrderTerm {
                expr,
                nullable: c.nullable,
            });
        }
        if nullable {
            // Only SQLite's rowid tables let a primary key column hold NULL, and repeat it.
            let rowid = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|n| !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)));
            let Some(rowid) = rowid.filter(|_| d.0 == Engine::Sqlite) else {
                return Err(DbError::Invalid(format!(
                    "the primary key of table {} ({}) may be NULL, and its rows have no row id to tell NULLs \
                     apart: declare the key's columns NOT NULL",
                    table.name,
                    key.join(", ")
                )));
            };
            // A name of our own choosing, never the user's: no quoting.
            let expr = qualify(rowid.to_string());
            let kind = Kind::Int {
                bytes: 8,
                unsigned: false,
            };
            keyset.reads.push((expr.clone(), kind));
            keyset.terms.push(OrderTerm { expr, nullable: false });
        }
        Ok(keyset)
    }

    /// The `ORDER BY` list (ascending, NULLs first).
    pub fn order(&self) -> String {
        self.dialect.keyset_order(&self.terms, false)
    }

    /// The condition "a row comes after the one whose cursor values are `last`" (as
    /// [`Keyset::place`] found them), its values appended to `params`.
    pub fn after(&self, last: &[Value], params: &mut Vec<Value>) -> String {
        self.dialect.keyset_after(&self.terms, last, false, params)
    }

    /// The condition "a row comes before the one whose cursor values are `next`" (the
    /// reverse of [`Keyset::after`]), its values appended to `params`: with
    /// [`Keyset::after`], the bounds of one key range (`upgrades` updates a batch so).
    pub fn before(&self, next: &[Value], params: &mut Vec<Value>) -> String {
        self.dialect.keyset_after(&self.terms, next, true, params)
    }

    /// The condition "a row's cursor values are `key`" (one row: the key tells rows
    /// apart), one equality per term so that every engine finds it by its index.
    pub fn equals(&self, key: &[Value], params: &mut Vec<Value>) -> String {
        let mut ands = Vec::new();
        for (t, v) in self.terms.iter().zip(key) {
            if v.is_null() {
                ands.push(format!("{} IS NULL", t.expr));
            } else {
                params.push(v.clone());
                ands.push(format!("{} = {}", t.expr, self.dialect.param(params.len())));
            }
        }
        ands.join(" AND ")
    }

    /// Where each cursor value is in a row read by the select list `select` (read as
    /// `kinds`), appending to both what the list does not hold already as it is
    /// needed (the rowid, a MariaDB ENUM's label, SQLite's stored values). The caller
    /// drops what was appended from the rows it hands on.
    pub fn place(&self, select: &mut Vec<String>, kinds: &mut Vec<Kind>) -> Vec<usize> {
        self.reads
            .iter()
            .map(
                |(expr, kind)| match (0..select.len()).find(|&i| select[i] == *expr && kinds[i] == *kind) {
                    Some(i) => i,
                    None => {
                        select.push(expr.clone());
                        kinds.push(kind.clone());
                        select.len() - 1
                    }
                },
            )
            .collect()
    }
}

/// The columns of `key` in `table`, checked: the key must name columns of the table
/// and tell rows apart, so a nullable column is refused unless it is part of the
/// primary key (SQLite's rowid tables allow NULLs there; [`Keyset`] tells them apart
/// by the rowid).
fn key_columns<'t>(table: &'t Table, key: &[String]) -> Result<Vec<&'t Column>, DbError> {
    if key.is_empty() {
        return Err(DbError::Invalid(format!(
            "table {} has no primary key and no unique key of NOT NULL columns: its rows cannot be told apart, \
             and lockgate reads tables page by page in key order",
            table.name
        )));
    }
    key.iter()
        .map(|k| {
            let c = table
                .column(k)
                .ok_or_else(|| DbError::Invalid(format!("column {k:?} is not in table {}", table.name)))?;
            if c.nullable && !table.primary_key.contains(&c.name) {
                return Err(DbError::Invalid(format!(
                    "column {} of table {} may be NULL: it cannot order a keyset page; page by the primary key or a unique key of NOT NULL columns",
                    c.name, table.name
                )));
            }
            Ok(c)
        })
        .collect()
}

/// Reads a table page by page in key order.
pub struct TableReader {
    table: Table,
    /// The key columns, as the table spells them.
    key: Vec<String>,
    /// The columns each batch holds.
    columns: Arc<Vec<String>>,
    /// How the pages are read, once the engine is known (the first page).
    plan: Option<ReadPlan>,
    /// Only the rows whose column (as the table spells it) holds one of the values.
    only: Option<(String, Vec<Value>)>,
    after: Option<Vec<Value>>,
    page: usize,
    done: bool,
    read: u64,
}

/// The select list and order of a [`TableReader`]'s pages.
struct ReadPlan {
    keyset: Keyset,
    /// The batch's columns, then what the keyset's cursor needs besides.
    select: Vec<String>,
    kinds: Vec<Kind>,
    /// Where each cursor value is within a selected row.
    cursor_at: Vec<usize>,
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
        TableReader::by_key(table, columns, &table.primary_key, page)
    }

    /// Like [`TableReader::new`], paged by `key` instead of the primary key: columns
    /// that together tell every row apart and are all NOT NULL (a unique key, as
    /// `writer::image_key` picks for a table without a primary key). A nullable
    /// column is refused: NULLs repeat and cannot be resumed after (but for an SQLite
    /// primary key's, which the rowid tells apart: [`Keyset`]).
    pub fn by_key(
        table: &Table,
        columns: Option<&[String]>,
        key: &[String],
        page: usize,
    ) -> Result<TableReader, DbError> {
        let key: Vec<String> = key_columns(table, key)?.into_iter().map(|c| c.name.clone()).collect();
        let columns: Vec<String> = match columns {
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
        Ok(TableReader {
            table: table.clone(),
            key,
            columns: Arc::new(columns),
            plan: None,
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

    fn plan(&self, d: Dialect) -> Result<ReadPlan, DbError> {
        let keyset = Keyset::new(d, &self.table, &self.key, None)?;
        let mut select: Vec<String> = self.columns.iter().map(|c| d.quote(c)).collect();
        let mut kinds: Vec<Kind> = self
            .columns
            .iter()
            .map(|c| self.table.column(c).map(|c| c.kind.clone()).unwrap_or(Kind::Any))
            .collect();
        let cursor_at = keyset.place(&mut select, &mut kinds);
        Ok(ReadPlan {
            keyset,
            select,
            kinds,
            cursor_at,
        })
    }

    /// The next page, or `None` after the last.
    pub async fn next_batch(&mut self, conn: &mut Conn) -> Result<Option<Batch>, DbError> {
        if self.done {
            return Ok(None);
        }
        let d = conn.dialect();
        if self.plan.is_none() {
            self.plan = Some(self.plan(d)?);
        }
        let plan = self.plan.as_ref().expect("planned");
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
            conds.push(format!("({})", plan.keyset.after(last, &mut params)));
        }
        let filter = if conds.is_empty() {
            "1 = 1".to_string()
        } else {
            conds.join(" AND ")
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {} LIMIT {}",
            plan.select.join(", "),
            d.table(&self.table.name),
            plan.keyset.order(),
            self.page
        );
        let rows = conn.query(&sql, &params, Some(&plan.kinds)).await?;
        if rows.len() < self.page {
            self.done = true;
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(plan.cursor_at.iter().map(|&i| last[i].clone()).collect());
        let width = self.columns.len();
        let mut batch = Batch::new(self.columns.clone());
        for mut values in rows {
            values.truncate(width);
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
