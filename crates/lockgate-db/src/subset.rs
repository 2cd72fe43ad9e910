//! The rows a subset of a database takes (`snapshot create --subset table:COND`): the
//! rows of some roots and, following foreign keys, every row they need and every row
//! that belongs to them, so that the subset restores with every constraint intact.
//!
//! # Semantics
//!
//! - **Roots.** A root is a table and a condition the user wrote, run as written in
//!   `SELECT … FROM table WHERE (condition)`; its rows are the starting set. Several
//!   roots (on the same table or not) add up.
//! - **Down (children).** For every row in the set *as a member* (a root's row, or a
//!   row reached as a child), every row of any table whose foreign-key columns equal
//!   that row's referenced columns joins the set as a member too: an order brings its
//!   order items, and they theirs, transitively.
//! - **Up (parents).** For every row in the set, the rows its foreign keys reference
//!   join the set, transitively (an order item's product, the product's supplier). A
//!   row reached *only* as a parent does not pull in its other children: one customer's
//!   country must not bring every other customer of that country (and, through them,
//!   the whole database). A row reached both ways is explored both ways.
//! - **Fixpoint.** Each row is explored up at most once and down at most once, so the
//!   walk ends on cycles (`teams.captain_id -> players.id`, `players.team_id ->
//!   teams.id`) and self-references (`employees.manager_id -> employees.id`).
//! - **Which foreign keys.** Only those whose both tables are among the tables given.
//!   A NULL in a foreign key's columns references nothing (MATCH SIMPLE, every
//!   engine's default), so such a row pulls no parent through that key.
//! - **Which tables.** A table that no chain of foreign keys (in either direction)
//!   connects to a root is not touched: [`Subset::keys`] is `None` and the caller takes
//!   it whole. A connected table has a key set, possibly empty.
//! - **Row identity.** Rows are told apart by the key row images use
//!   ([`crate::writer::image_key`]): the primary key, else the first unique key over
//!   NOT NULL columns. A connected table with neither is refused with
//!   [`DbError::Invalid`] naming it: rows compared by every column would be neither
//!   exact (floats, JSON, collations) nor cheap.
//!
//! # Cost
//!
//! The walk runs inside the caller's open transaction (a snapshot's consistent read),
//! in batches: one `WHERE (columns) IN (…)` query per foreign key, direction and
//! batch of at most [`crate::relation::MAX_KEY_PARAMS`] bound values (through
//! [`crate::relation::fetch_by_keys`]), never one query per row. The keys of the
//! rows taken, and the foreign-key values already asked for, are held in memory:
//! memory grows with the size of the subset, not with the size of the tables.

use crate::conn::Conn;
use crate::error::DbError;
use crate::relation::{fetch_by_keys, Projection, Relation, SourceExpr, MAX_KEY_PARAMS};
use lockgate_core::{Kind, Table, TableName, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// A root of a subset: the rows of `table` matching `condition` (SQL the user wrote,
/// executed as written, never pieced together with values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetRoot {
    /// The table (as introspection names it, or as the user wrote it: matched with
    /// [`TableName::same_as`] against the tables given to [`closure`]).
    pub table: TableName,
    /// The SQL condition, run as `WHERE (condition)`.
    pub condition: String,
}

/// The rows one connected table takes: its key columns and the keys, sorted.
#[derive(Clone, Debug, PartialEq)]
struct TableKeys {
    columns: Vec<String>,
    keys: Vec<Vec<Value>>,
}

/// Which rows of each table a subset takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    /// Per table given to [`closure`], in that order: `None` when no foreign-key path
    /// connects it to a root (taken whole).
    tables: Vec<(TableName, Option<TableKeys>)>,
}

impl Subset {
    fn entry(&self, table: &TableName) -> Option<&TableKeys> {
        self.tables
            .iter()
            .find(|(n, _)| n == table)
            .or_else(|| self.tables.iter().find(|(n, _)| n.same_as(table)))
            .and_then(|(_, k)| k.as_ref())
    }

    /// The key values of the rows to take from `table` (one value per
    /// [`Subset::key_columns`] column), sorted, or None when the table is not
    /// connected to any root (the caller then takes it whole) or was not given.
    pub fn keys(&self, table: &TableName) -> Option<&[Vec<Value>]> {
        self.entry(table).map(|k| k.keys.as_slice())
    }

    /// How many rows the subset takes from `table`; None as for [`Subset::keys`].
    pub fn row_count(&self, table: &TableName) -> Option<u64> {
        self.entry(table).map(|k| k.keys.len() as u64)
    }

    /// The columns the keys of `table` are values of (its primary key, else its
    /// first unique key of NOT NULL columns); None as for [`Subset::keys`].
    pub fn key_columns(&self, table: &TableName) -> Option<&[String]> {
        self.entry(table).map(|k| k.columns.as_slice())
    }
}

/// A row key with a total order, so key sets are sorted and searchable. Values of one
/// column come back from the engine as one variant, so comparing across variants
/// (by variant) only has to be consistent, not meaningful.
#[derive(Clone, Debug)]
struct Key(Vec<Value>);

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(_) => 3,
        Value::Decimal(_) => 4,
        Value::Text(_) => 5,
        Value::Bytes(_) => 6,
        Value::Date(_) => 7,
        Value::Time(_) => 8,
        Value::Timestamp(_) => 9,
        Value::TimestampTz(_) => 10,
        Value::Json(_) => 11,
        Value::Uuid(_) => 12,
    }
}

/// Values in their natural order (texts by code point, not by any collation).
fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Decimal(x), Value::Decimal(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::TimestampTz(x), Value::TimestampTz(y)) => x.cmp(y),
        (Value::Json(x), Value::Json(y)) => x.to_string().cmp(&y.to_string()),
        (Value::Uuid(x), Value::Uuid(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match cmp_value(a, b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

/// A connected table during the walk.
struct Node {
    /// The columns read from each of its rows: the key columns first, then every
    /// column a foreign key (its own or one referencing it) compares.
    columns: Vec<String>,
    kinds: Vec<Kind>,
    /// How many of `columns` are the key.
    key_len: usize,
    /// The rows taken, each with whether it was explored down (reached as a member).
    taken: BTreeMap<Key, bool>,
    /// Rows (values of `columns`) still to explore up, and down.
    up: Vec<Vec<Value>>,
    down: Vec<Vec<Value>>,
}

impl Node {
    /// Positions in `columns` of `cols`, adding those not yet there.
    fn positions(&mut self, table: &Table, cols: &[String]) -> Result<Vec<usize>, DbError> {
        let mut out = Vec::with_capacity(cols.len());
        for c in cols {
            let column = table.column(c).ok_or_else(|| {
                DbError::Invalid(format!(
                    "table {} has no column {c}, which one of its keys names: check the table's definition",
                    table.name
                ))
            })?;
            let at = match self.columns.iter().position(|n| *n == column.name) {
                Some(at) => at,
                None => {
                    self.columns.push(column.name.clone());
                    self.kinds.push(column.kind.clone());
                    self.columns.len() - 1
                }
            };
            out.push(at);
        }
        Ok(out)
    }

    /// Adds rows read from the table: new rows are explored up, and down when reached
    /// as members; a row known only as a parent and now reached as a member is
    /// explored down as well.
    fn take(&mut self, rows: Vec<Vec<Value>>, member: bool) {
        for row in rows {
            let key = Key(row[..self.key_len].to_vec());
            match self.taken.get_mut(&key) {
                None => {
                    self.taken.insert(key, member);
                    if member {
                        self.down.push(row.clone());
                    }
                    self.up.push(row);
                }
                Some(explored_down) => {
                    if member && !*explored_down {
                        *explored_down = true;
                        self.down.push(row);
                    }
                }
            }
        }
    }

    fn projection(&self, key: &[usize]) -> Projection {
        Projection {
            columns: self
                .columns
                .iter()
                .map(|c| (c.clone(), SourceExpr::Column(c.clone())))
                .collect(),
            key: key.to_vec(),
            kinds: self.kinds.clone(),
        }
    }
}

/// A foreign key between two connected tables (positions in `tables` and `nodes`).
struct Edge {
    child: usize,
    parent: usize,
    /// The child's referencing columns, as positions in its node's columns.
    child_at: Vec<usize>,
    /// The parent's referenced columns, as positions in its node's columns.
    parent_at: Vec<usize>,
    /// Referencing values already looked up in the parent, and referenced values
    /// already looked up in the child: each is asked once.
    asked_up: BTreeSet<Key>,
    asked_down: BTreeSet<Key>,
}

/// The foreign keys among `tables` (both ends given), as (child, parent, child
/// columns, parent columns).
fn foreign_keys(tables: &[Table]) -> Vec<(usize, usize, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for (c, t) in tables.iter().enumerate() {
        for fk in &t.foreign_keys {
            let parent = tables
                .iter()
                .position(|p| p.name == fk.references)
                .or_else(|| tables.iter().position(|p| p.name.same_as(&fk.references)));
            if let Some(p) = parent {
                let (cc, pc) = fk.columns.iter().cloned().unzip();
                out.push((c, p, cc, pc));
            }
        }
    }
    out
}

/// Computes the closure inside the caller's open (snapshot) transaction on `conn`:
/// the module doc gives the rules. Errors: a root on a table not among `tables`, a
/// connected table with no key ([`DbError::Invalid`]), a root condition that does not
/// run ([`DbError::Invalid`] naming table and condition), or a database error.
pub async fn closure(conn: &mut Conn, tables: &[Table], roots: &[SubsetRoot]) -> Result<Subset, DbError> {
    let mut root_at = Vec::with_capacity(roots.len());
    for root in roots {
        let at = tables
            .iter()
            .position(|t| t.name == root.table)
            .or_else(|| tables.iter().position(|t| t.name.same_as(&root.table)))
            .ok_or_else(|| {
                DbError::Invalid(format!(
                    "the subset root table {} is not among the tables taken: add it to the tables, or drop its condition",
                    root.table
                ))
            })?;
        root_at.push(at);
    }
    let fks = foreign_keys(tables);

    // The tables a chain of foreign keys connects to a root, either way.
    let mut connected = vec![false; tables.len()];
    let mut stack = root_at.clone();
    while let Some(t) = stack.pop() {
        if std::mem::replace(&mut connected[t], true) {
            continue;
        }
        for (c, p, _, _) in &fks {
            if *c == t && !connected[*p] {
                stack.push(*p);
            }
            if *p == t && !connected[*c] {
                stack.push(*c);
            }
        }
    }

    let mut nodes: Vec<Option<Node>> = Vec::with_capacity(tables.len());
    for (t, table) in tables.iter().enumerate() {
        if !connected[t] {
            nodes.push(None);
            continue;
        }
        let key = crate::writer::image_key(table);
        if key.is_empty() {
            return Err(DbError::Invalid(format!(
                "table {} is connected by foreign keys to the subset's roots but has neither a primary key nor a \
                 unique key of NOT NULL columns, so its rows cannot be told apart: add a primary key, or leave the \
                 table out",
                table.name
            )));
        }
        let mut node = Node {
            columns: Vec::new(),
            kinds: Vec::new(),
            key_len: 0,
            taken: BTreeMap::new(),
            up: Vec::new(),
            down: Vec::new(),
        };
        node.positions(table, &key)?;
        node.key_len = node.columns.len();
        nodes.push(Some(node));
    }

    let mut edges = Vec::new();
    for (c, p, cc, pc) in fks {
        if !connected[c] {
            continue;
        }
        let child_at = nodes[c].as_mut().expect("connected").positions(&tables[c], &cc)?;
        let parent_at = nodes[p].as_mut().expect("connected").positions(&tables[p], &pc)?;
        edges.push(Edge {
            child: c,
            parent: p,
            child_at,
            parent_at,
            asked_up: BTreeSet::new(),
            asked_down: BTreeSet::new(),
        });
    }

    for (root, &t) in roots.iter().zip(&root_at) {
        let node = nodes[t].as_mut().expect("a root is connected");
        let rows = root_rows(conn, &tables[t], node, &root.condition).await?;
        node.take(rows, true);
    }

    // Each round explores the rows the previous one reached; a row enters each
    // direction's queue at most once, so this ends.
    loop {
        let mut up: Vec<Vec<Vec<Value>>> = Vec::with_capacity(nodes.len());
        let mut down: Vec<Vec<Vec<Value>>> = Vec::with_capacity(nodes.len());
        for node in &mut nodes {
            let (u, d) = node
                .as_mut()
                .map(|n| (std::mem::take(&mut n.up), std::mem::take(&mut n.down)))
                .unwrap_or_default();
            up.push(u);
            down.push(d);
        }
        if up.iter().chain(&down).all(Vec::is_empty) {
            break;
        }
        for edge in &mut edges {
            // Up: the parents the child's rows reference.
            let wanted = new_values(&up[edge.child], &edge.child_at, &mut edge.asked_up);
            let parent = nodes[edge.parent].as_mut().expect("connected");
            let rows = fetch(conn, &tables[edge.parent], parent, &edge.parent_at, &wanted).await?;
            parent.take(rows, false);
            // Down: the children that reference the parent's member rows.
            let wanted = new_values(&down[edge.parent], &edge.parent_at, &mut edge.asked_down);
            let child = nodes[edge.child].as_mut().expect("connected");
            let rows = fetch(conn, &tables[edge.child], child, &edge.child_at, &wanted).await?;
            child.take(rows, true);
        }
    }

    Ok(Subset {
        tables: tables
            .iter()
            .zip(nodes)
            .map(|(t, n)| {
                let keys = n.map(|n| TableKeys {
                    columns: n.columns[..n.key_len].to_vec(),
                    keys: n.taken.into_keys().map(|k| k.0).collect(),
                });
                (t.name.clone(), keys)
            })
            .collect(),
    })
}

/// The values of `at` in `rows` that hold no NULL and were not asked for yet
/// (recorded as asked now).
fn new_values(rows: &[Vec<Value>], at: &[usize], asked: &mut BTreeSet<Key>) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for row in rows {
        let values: Vec<Value> = at.iter().map(|&i| row[i].clone()).collect();
        if values.iter().any(Value::is_null) {
            continue;
        }
        if asked.insert(Key(values.clone())) {
            out.push(values);
        }
    }
    out
}

/// The rows of `table` whose columns at `at` hold one of `wanted`, read as the node's
/// columns, in batches within the engines' parameter limits.
async fn fetch(
    conn: &mut Conn,
    table: &Table,
    node: &Node,
    at: &[usize],
    wanted: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>, DbError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let relation = Relation::Table(table.name.clone());
    let projection = node.projection(at);
    let mut out = Vec::new();
    for chunk in wanted.chunks((MAX_KEY_PARAMS / at.len().max(1)).max(1)) {
        out.extend(fetch_by_keys(conn, &relation, &projection, chunk).await?);
    }
    Ok(out)
}

/// The user's condition as a `WHERE` clause: the newlines keep a trailing `-- comment`
/// from swallowing what follows.
pub(crate) fn where_clause(condition: &str) -> String {
    format!("WHERE (\n{}\n)", condition.trim().trim_end_matches(';'))
}

/// A failed condition as the user's mistake ([`DbError::Invalid`], naming the table and
/// the condition), unless the connection failed.
fn condition_error(table: &Table, condition: &str, e: DbError) -> DbError {
    match &e {
        DbError::Engine { error, .. } if !error.connection_lost && !error.transient => DbError::Invalid(format!(
            "the condition {condition:?} on table {} does not run on the source: {error}: write SQL that fits \
             `SELECT … FROM {} WHERE (condition)`",
            table.name, table.name
        )),
        _ => e,
    }
}

async fn root_rows(conn: &mut Conn, table: &Table, node: &Node, condition: &str) -> Result<Vec<Vec<Value>>, DbError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT {} FROM {} {}",
        d.columns(None, &node.columns),
        d.table(&table.name),
        where_clause(condition)
    );
    conn.query(&sql, &[], Some(&node.kinds))
        .await
        .map_err(|e| condition_error(table, condition, e))
}

/// Checks that a condition parses and runs on the source (`SELECT 1 FROM t WHERE
/// (condition) AND 1 = 0`, which reads no row), for the up-front validation of
/// `--where` and `--subset`: an error is [`DbError::Invalid`] naming the table and the
/// condition. On PostgreSQL a failed statement ends the use of an open transaction:
/// check before beginning the snapshot's.
pub async fn check_condition(conn: &mut Conn, table: &Table, condition: &str) -> Result<(), DbError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT 1 FROM {} {} AND 1 = 0",
        d.table(&table.name),
        where_clause(condition)
    );
    conn.query(&sql, &[], None)
        .await
        .map(|_| ())
        .map_err(|e| condition_error(table, condition, e))
}
