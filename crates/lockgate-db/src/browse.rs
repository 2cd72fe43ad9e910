//! Server-side table browsing for the dashboard: one page of a table's rows, sorted by
//! a column the user names, filtered by a search term, paged by keyset (never OFFSET)
//! so that the last page of a million-row table costs what the first page does.
//!
//! [`browse`] resolves the table and the sort column against introspection (a sort
//! parameter holding SQL is just an unknown column), orders by the sort column and
//! then a key that makes the order total, and resumes from a [`Cursor`]: the sort
//! value and key values of the row a page ended (or began) with.
//!
//! # The order, the same on every engine
//! - Ascending puts NULL first, as the smallest value (MariaDB's and SQLite's own
//!   rule; PostgreSQL is told `NULLS FIRST` for nullable columns). Descending is the
//!   exact reverse: NULLs last, ties broken by the key in descending order.
//! - Ties in the sort column are broken by the primary key; without one, by the first
//!   unique key whose columns are all NOT NULL; without that, by SQLite's rowid. A
//!   PostgreSQL or MariaDB table with neither key shows its first rows only
//!   ([`Paging::FirstRowsOnly`]): `ctid` changes when a row is updated, and MariaDB
//!   has no row identity, so any other paging would skip or repeat rows.
//! - Text sorts by the column's collation, so the order of text may differ between
//!   engines (MariaDB's default collations ignore case, PostgreSQL's `C` does not).
//!   MariaDB ENUM and SET columns sort by label, byte by byte (MariaDB would sort them
//!   by position but compare them with a cursor's text as text: [`Dialect::key_expr`],
//!   shared with every keyset reader); PostgreSQL enums by position.
//!   JSON columns and types outside the mapping are not sort columns.
//! - Every condition a page reads is one index range when an index on (sort column,
//!   key) exists ([`Dialect::keyset_segments`]); on PostgreSQL an index serves a
//!   nullable sort column only when declared `NULLS FIRST`. Without such an index a
//!   page sorted by that column costs a top-N sort of the table.
//!
//! # Search
//! A case-insensitive substring match over the table's text columns (and SQLite's
//! untyped columns), the term a bound parameter with `%`, `_` and `!` escaped
//! (`ESCAPE '!'`): PostgreSQL `ILIKE`; MariaDB `LIKE`, through `LOWER()` on both
//! sides for columns whose collation is not case-insensitive (`_bin`, `_cs`); SQLite
//! `LIKE`, which folds the case of ASCII letters only. No index serves `%term%`, so
//! a search reads the table until a page is full (or to its end).
//!
//! # Counts
//! Without a search, the engine's estimate when it says at least
//! [`ESTIMATE_FROM`] rows ([`RowCount::About`]: PostgreSQL's `reltuples` or the live
//! row count of its statistics, MariaDB's `information_schema.TABLES.TABLE_ROWS`,
//! SQLite's `sqlite_stat1` after `ANALYZE`), else an exact `count(*)`. With a search,
//! matches are counted up to [`SEARCH_COUNT_CAP`] ([`RowCount::AtLeast`] beyond).

use crate::conn::Conn;
use crate::dialect::{like_contains, Dialect, OrderTerm};
use crate::error::DbError;
use crate::url::Engine;
use lockgate_core::value::MAX_FSP;
use lockgate_core::{Column, Kind, Table, TableName, Value};

/// The largest page; larger requests are clamped to it.
pub const MAX_PER_PAGE: usize = 500;

/// From this many rows (by the engine's estimate) the total is the estimate, not a
/// `count(*)`, which reads the whole table (or index).
pub const ESTIMATE_FROM: u64 = 100_000;

/// A search counts its matches up to this many; past it the total is
/// [`RowCount::AtLeast`] this.
pub const SEARCH_COUNT_CAP: u64 = 10_000;

/// What page of which order to show.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowseQuery {
    /// The column to sort by, as the user gave it: the exact name or the one name
    /// that matches case-insensitively. `None` sorts by the key.
    pub sort: Option<String>,
    /// Descending: the exact reverse of the ascending order (NULLs last).
    pub descending: bool,
    /// A case-insensitive substring to find in the text columns; `None` or empty
    /// shows every row.
    pub search: Option<String>,
    /// Rows per page, clamped to 1..=[`MAX_PER_PAGE`].
    pub per_page: usize,
    /// The page after this cursor (a page's [`BrowsePage::next`]).
    pub after: Option<Cursor>,
    /// The page before this cursor (a page's [`BrowsePage::prev`]).
    pub before: Option<Cursor>,
}

impl Default for BrowseQuery {
    /// The first page, by key, 50 rows.
    fn default() -> BrowseQuery {
        BrowseQuery {
            sort: None,
            descending: false,
            search: None,
            per_page: 50,
            after: None,
            before: None,
        }
    }
}

/// A position in a table's order: the table, the names of the order's columns, and
/// one row's values of them. Opaque to callers: [`Cursor::encode`] gives URL-safe
/// text, [`Cursor::decode`] reads it back, and [`browse`] checks that it belongs to
/// the table and order it is used with.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    /// The table's name as introspection reported it.
    table: String,
    /// The order's column names: the sort column (if any), then the key columns (or
    /// the rowid's name).
    order: Vec<String>,
    /// One value per name in `order`.
    values: Vec<Value>,
}

/// The version tag of encoded cursors; a cursor of another version is refused.
const CURSOR_VERSION: u64 = 1;

/// Encoded cursors longer than this are refused before decoding (garbage, or an
/// attempt to make the server parse megabytes).
const MAX_CURSOR_TEXT: usize = 64 * 1024;

impl Cursor {
    /// URL-safe text (base64url without padding, of a small JSON document).
    pub fn encode(&self) -> String {
        let values: Vec<serde_json::Value> = self.values.iter().map(encode_value).collect();
        let doc = serde_json::json!({
            "v": CURSOR_VERSION,
            "t": self.table,
            "o": self.order,
            "k": values,
        });
        base64url_encode(doc.to_string().as_bytes())
    }

    /// Reads [`Cursor::encode`]'s text. Garbage (not base64url, not the expected JSON,
    /// an unknown value type, a value that does not parse) is
    /// [`BrowseError::BadCursor`]; whether the cursor fits the table and order it is
    /// used with is checked by [`browse`].
    pub fn decode(text: &str) -> Result<Cursor, BrowseError> {
        let bad = |reason: &str| BrowseError::BadCursor {
            reason: reason.to_string(),
        };
        if text.len() > MAX_CURSOR_TEXT {
            return Err(bad("it is too long"));
        }
        let bytes = base64url_decode(text.trim()).ok_or_else(|| bad("it is not base64url text"))?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad("it does not hold JSON"))?;
        let obj = doc.as_object().ok_or_else(|| bad("it does not hold a JSON object"))?;
        if obj.get("v").and_then(|v| v.as_u64()) != Some(CURSOR_VERSION) {
            return Err(bad("it was made by another version of lockgate"));
        }
        let table = obj
            .get("t")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("it names no table"))?
            .to_string();
        let order: Vec<String> = obj
            .get("o")
            .and_then(|o| o.as_array())
            .and_then(|o| o.iter().map(|n| n.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("it names no columns"))?;
        let values: Vec<Value> = obj
            .get("k")
            .and_then(|k| k.as_array())
            .ok_or_else(|| bad("it holds no values"))?
            .iter()
            .map(decode_value)
            .collect::<Result<_, _>>()
            .map_err(|reason| bad(&reason))?;
        if order.is_empty() || order.len() != values.len() {
            return Err(bad("its columns and values do not pair up"));
        }
        Ok(Cursor { table, order, values })
    }
}

/// A cursor value as `[type, canonical text]` (null as JSON null), so that it decodes
/// to the same [`Value`] whatever the column: an integer stays an integer, bytes stay
/// bytes, a float keeps every bit (Rust prints the shortest text that reads back
/// exactly).
pub(crate) fn encode_value(v: &Value) -> serde_json::Value {
    let tag = match v {
        Value::Null => return serde_json::Value::Null,
        Value::Bool(_) => "b",
        Value::Int(_) => "i",
        Value::Float(_) => "f",
        Value::Decimal(_) => "d",
        Value::Text(_) => "t",
        Value::Bytes(_) => "x",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "ts",
        Value::TimestampTz(_) => "tstz",
        Value::Json(_) => "json",
        Value::Uuid(_) => "uuid",
    };
    serde_json::json!([tag, v.to_string()])
}

/// Reads [`encode_value`]'s form back, by the kind its tag names.
pub(crate) fn decode_value(j: &serde_json::Value) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let pair = j.as_array().filter(|a| a.len() == 2);
    let (tag, text) = match pair.map(|a| (a[0].as_str(), a[1].as_str())) {
        Some((Some(tag), Some(text))) => (tag, text),
        _ => return Err("a value is not a [type, text] pair".into()),
    };
    let kind = match tag {
        "b" => Kind::Bool,
        "i" => Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        "f" => Kind::Float { bytes: 8 },
        "d" => Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: None,
        },
        "t" => {
            // Text is taken as it is (parse_text would not change it, but say so).
            return Ok(Value::Text(text.to_string()));
        }
        "x" => Kind::Bytes {
            max_bytes: None,
            fixed: false,
        },
        "date" => Kind::Date,
        // A cursor's values were read from the column: every digit they have is kept.
        "time" => Kind::Time { fsp: MAX_FSP },
        "ts" => Kind::Timestamp { fsp: MAX_FSP },
        "tstz" => Kind::TimestampTz {
            epoch32: false,
            fsp: MAX_FSP,
        },
        "json" => Kind::Json,
        "uuid" => Kind::Uuid,
        other => return Err(format!("a value has the unknown type {other:?}")),
    };
    // Bytes must come back as bytes: a text without the \x prefix would be read as
    // its UTF-8 bytes, which encode_value never writes.
    if tag == "x" && !text.starts_with("\\x") {
        return Err("a bytes value is not \\x hex".into());
    }
    kind.parse_text(text)
        .map_err(|e| format!("a value does not read back: {e}"))
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5): safe in a URL's path and query as is.
fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | ((*b as u32) << (16 - 8 * i)));
        // 1 byte gives 2 characters, 2 give 3, 3 give 4.
        for i in 0..chunk.len() + 1 {
            out.push(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Reads [`base64url_encode`]'s text; `None` for anything else (padding, other
/// alphabets, a length no encoding has, stray bits in the last character).
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u32> = text
        .bytes()
        .map(|c| BASE64URL.iter().position(|&a| a == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        let len = chunk.len() - 1;
        // Bits below the last whole byte must be zero, or two texts would read the same.
        if n & ((1u32 << (24 - 8 * len)) - 1) != 0 {
            return None;
        }
        for i in 0..len {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// How many rows a page's table (or search) has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowCount {
    /// Counted.
    Exact(u64),
    /// The engine's estimate (at least [`ESTIMATE_FROM`]); counting would read the
    /// whole table.
    About(u64),
    /// A search found more than this many matches and stopped counting.
    AtLeast(u64),
}

/// How the table is paged: what breaks ties in the sort column and lets a cursor
/// name one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Keyset paging, ties broken by these columns: the primary key (`primary`), or a
    /// unique key whose columns are all NOT NULL.
    Key {
        /// The key's columns, in order.
        columns: Vec<String>,
        /// Whether it is the primary key.
        primary: bool,
    },
    /// SQLite table without a usable key: ties broken by the rowid, which stays with
    /// its row (until a `VACUUM` renumbers a table that has no INTEGER PRIMARY KEY).
    RowId,
    /// No key and no stable row identity (PostgreSQL, MariaDB): only the first
    /// `per_page` rows (sorted when asked) are shown, and there are no cursors. Add a
    /// primary key to page through the table.
    FirstRowsOnly,
}

/// One page of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowsePage {
    /// The table's name as introspection reported it.
    pub table: String,
    /// Every column, in table order, with its kind.
    pub columns: Vec<(String, Kind)>,
    /// The page's rows in display order, one value per column. Columns of a type
    /// outside the mapping (PostgreSQL intervals, arrays…) hold their text.
    pub rows: Vec<Vec<Value>>,
    /// The next page's cursor (for [`BrowseQuery::after`]); `None` on the last page.
    pub next: Option<Cursor>,
    /// The previous page's cursor (for [`BrowseQuery::before`]); `None` on the first.
    pub prev: Option<Cursor>,
    /// Rows in the table, or matching the search.
    pub total: RowCount,
    /// The sort column's exact name, `None` when sorted by the key.
    pub sort: Option<String>,
    /// Whether the order is descending.
    pub descending: bool,
    /// Rows per page after clamping.
    pub per_page: usize,
    /// How the table is paged.
    pub paging: Paging,
}

/// Why a page cannot be shown. Every variant but [`BrowseError::Db`] is the request's
/// fault (see [`BrowseError::is_bad_request`]).
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The database failed, or the table does not exist ([`DbError::Invalid`], which
    /// lists the tables there are).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The sort column is not a column of the table.
    #[error("table {table} has no column {column:?}: sort by one of {}", name_list(.columns))]
    UnknownColumn {
        /// The table.
        table: String,
        /// The name as given.
        column: String,
        /// The columns it can be sorted by.
        columns: Vec<String>,
    },
    /// The sort column's name matches several columns that differ only in case.
    #[error(
        "column name {column:?} matches {} columns of table {table} that differ only in case ({}): give the exact name",
        .matches.len(),
        .matches.join(", ")
    )]
    AmbiguousColumn {
        /// The table.
        table: String,
        /// The name as given.
        column: String,
        /// The columns it matches.
        matches: Vec<String>,
    },
    /// The sort column's type has no order lockgate can page by.
    #[error("column {column} of table {table} is {kind}, which lockgate does not sort by: sort by one of {}", name_list(.columns))]
    UnsortableColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its kind, described.
        kind: String,
        /// The columns it can be sorted by.
        columns: Vec<String>,
    },
    /// A cursor that is not one [`Cursor::encode`] made.
    #[error("the page cursor is not valid ({reason}): start again from the first page")]
    BadCursor {
        /// What is wrong with it.
        reason: String,
    },
    /// A cursor made for another table or another sort column.
    #[error("the page cursor belongs to table {cursor_table} ordered by {cursor_order}, not to table {table} ordered by {order}: start again from the first page")]
    CursorMismatch {
        /// The table browsed.
        table: String,
        /// Its order's columns, comma-separated.
        order: String,
        /// The cursor's table.
        cursor_table: String,
        /// The cursor's order, comma-separated.
        cursor_order: String,
    },
    /// Both `after` and `before` were given.
    #[error("a page is either after one cursor or before one, not both: give only one of them")]
    BothCursors,
    /// A cursor for a table that cannot be paged.
    #[error("table {table} has no primary key and no unique key of NOT NULL columns, so only its first rows can be shown: add a primary key to page through it")]
    NotPageable {
        /// The table.
        table: String,
    },
    /// A search in a table without text columns.
    #[error("table {table} has no text columns to search: browse it without a search")]
    NothingToSearch {
        /// The table.
        table: String,
    },
    /// A search term no text can contain.
    #[error("the search term contains a NUL character, which no text column holds: remove it")]
    BadSearch,
}

impl BrowseError {
    /// Whether the request is at fault (an HTTP 4xx), rather than the database.
    /// An unknown table is [`DbError::Invalid`], so it counts as a bad request.
    pub fn is_bad_request(&self) -> bool {
        match self {
            BrowseError::Db(e) => matches!(e, DbError::Invalid(_)),
            _ => true,
        }
    }
}

/// Names for a message, the first 30 of them (a wide table would flood it).
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 30;
    if names.is_empty() {
        return "(none)".into();
    }
    let mut list = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        list.push_str(&format!(", … ({} more)", names.len() - SHOWN));
    }
    list
}

/// Whether keyset paging can order by a column of this kind on every engine:
/// PostgreSQL's `json` has no order, and types outside the mapping may have none.
fn sortable(kind: &Kind) -> bool {
    !matches!(kind, Kind::Json | Kind::Unsupported { .. })
}

/// One column (or row identity) of the order, before it becomes SQL.
#[derive(Clone)]
struct Term {
    /// The name cursors carry.
    name: String,
    /// What the SQL orders and compares by.
    expr: String,
    nullable: bool,
    /// What its values are read and checked as.
    kind: Kind,
}

impl Term {
    /// A column as an order term, ordered and compared as every keyset reader does
    /// ([`Dialect::key_expr`]: MariaDB's ENUM and SET by label, since MariaDB would
    /// sort them by declared position but compare them with a cursor's text as text;
    /// elsewhere the column as it is).
    fn column(d: Dialect, c: &Column) -> Term {
        Term {
            name: c.name.clone(),
            expr: d.key_expr(&d.quote(&c.name), c),
            nullable: c.nullable,
            kind: c.kind.clone(),
        }
    }
}

/// Everything [`browse`] decided before reading: what to select and how to order it.
struct Plan {
    table: Table,
    /// The select list: the table's columns, then those of the order's terms that
    /// must be read otherwise than they are shown (with `cursor_kinds`) for the cursor.
    select: String,
    /// The kind each selected column is read as.
    kinds: Vec<Kind>,
    /// How many of the selected columns are the table's (the rest are for cursors).
    width: usize,
    /// Where each cursor value is in a selected row.
    cursor_at: Vec<usize>,
    /// The order; empty for [`Paging::FirstRowsOnly`] without a sort.
    terms: Vec<OrderTerm>,
    /// The order's column names, as cursors carry them.
    names: Vec<String>,
    /// The kind each cursor value is checked against.
    cursor_kinds: Vec<Kind>,
    sort: Option<String>,
    paging: Paging,
}

impl Plan {
    fn new(d: Dialect, table: Table, sort: Option<&str>) -> Result<Plan, BrowseError> {
        let sort_column = match sort {
            Some(name) => Some(resolve_sort(&table, name)?),
            None => None,
        };
        let (paging, key) = choose_key(d, &table);
        // The sort column first, then the key columns it does not already name.
        let mut order: Vec<Term> = sort_column.iter().map(|c| Term::column(d, c)).collect();
        if paging != Paging::FirstRowsOnly {
            for k in key {
                if !order.iter().any(|t| t.name == k.name) {
                    order.push(k);
                }
            }
        }
        // SQLite compares the value it stored: a date written as other text than
        // lockgate's, say. So cursors carry the stored value itself there.
        let cursor_kind = |kind: &Kind| {
            if d.0 == Engine::Sqlite {
                Kind::Any
            } else {
                kind.clone()
            }
        };
        let mut select: Vec<String> = Vec::new();
        let mut kinds: Vec<Kind> = Vec::new();
        for c in &table.columns {
            let q = d.quote(&c.name);
            match (&c.kind, d.0) {
                // tokio-postgres cannot decode such a type; its text is what a person reads.
                (Kind::Unsupported { .. }, Engine::Postgres) => {
                    select.push(format!("CAST({q} AS text)"));
                    kinds.push(Kind::Any);
                }
                (Kind::Unsupported { .. }, _) => {
                    select.push(q);
                    kinds.push(Kind::Any);
                }
                (kind, _) => {
                    select.push(q);
                    kinds.push(kind.clone());
                }
            }
        }
        let width = select.len();
        let mut cursor_kinds = Vec::new();
        let mut cursor_at = Vec::new();
        if paging != Paging::FirstRowsOnly {
            for t in &order {
                let kind = cursor_kind(&t.kind);
                // A term shown as it is compared is taken from the shown columns: a
                // select list that repeats columns makes PostgreSQL build every row
                // before an unindexed sort, twice as slow.
                match (0..width).find(|&i| select[i] == t.expr && kinds[i] == kind) {
                    Some(i) => cursor_at.push(i),
                    None => {
                        cursor_at.push(select.len());
                        select.push(t.expr.clone());
                        kinds.push(kind.clone());
                    }
                }
                cursor_kinds.push(kind);
            }
        }
        Ok(Plan {
            select: select.join(", "),
            kinds,
            width,
            cursor_at,
            terms: order
                .iter()
                .map(|t| OrderTerm {
                    expr: t.expr.clone(),
                    nullable: t.nullable,
                })
                .collect(),
            names: order.into_iter().map(|t| t.name).collect(),
            cursor_kinds,
            sort: sort_column.map(|c| c.name.clone()),
            paging,
            table,
        })
    }

    fn table_name(&self) -> String {
        self.table.name.to_string()
    }

    /// The cursor of a selected row (display values, then the order's values).
    fn cursor(&self, row: &[Value]) -> Cursor {
        Cursor {
            table: self.table_name(),
            order: self.names.clone(),
            values: self.cursor_at.iter().map(|&i| row[i].clone()).collect(),
        }
    }

    /// The values of a cursor the caller gave, checked against this table and order.
    fn position(&self, cursor: &Cursor) -> Result<Vec<Value>, BrowseError> {
        if self.paging == Paging::FirstRowsOnly {
            return Err(BrowseError::NotPageable {
                table: self.table_name(),
            });
        }
        if cursor.table != self.table_name() || cursor.order != self.names {
            return Err(BrowseError::CursorMismatch {
                table: self.table_name(),
                order: self.names.join(", "),
                cursor_table: cursor.table.clone(),
                cursor_order: cursor.order.join(", "),
            });
        }
        cursor
            .values
            .iter()
            .zip(&self.cursor_kinds)
            .zip(&self.names)
            .map(|((v, kind), name)| {
                // A cursor's values were read from the column: they are held to what it
                // can hold (an ENUM's '' included), not to what a write would change.
                kind.check_stored(v.clone()).map_err(|e| BrowseError::BadCursor {
                    reason: format!("its value for column {name} does not fit: {e}"),
                })
            })
            .collect()
    }
}

/// The sort column by ARCHITECTURE.md's naming rule, and sortable.
fn resolve_sort<'t>(table: &'t Table, name: &str) -> Result<&'t Column, BrowseError> {
    let sortable_names = || {
        table
            .columns
            .iter()
            .filter(|c| sortable(&c.kind))
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    let Some(column) = table.column(name) else {
        let matches: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.name.clone())
            .collect();
        if matches.len() > 1 {
            return Err(BrowseError::AmbiguousColumn {
                table: table.name.to_string(),
                column: name.to_string(),
                matches,
            });
        }
        return Err(BrowseError::UnknownColumn {
            table: table.name.to_string(),
            column: name.to_string(),
            columns: sortable_names(),
        });
    };
    if !sortable(&column.kind) {
        return Err(BrowseError::UnsortableColumn {
            table: table.name.to_string(),
            column: column.name.clone(),
            kind: column.kind.describe(),
            columns: sortable_names(),
        });
    }
    Ok(column)
}

/// The key that makes the order total, as terms: the primary key, else the first
/// unique key of NOT NULL columns, else SQLite's rowid, else none
/// ([`Paging::FirstRowsOnly`]).
fn choose_key(d: Dialect, table: &Table) -> (Paging, Vec<Term>) {
    let term = |name: &str| {
        let c = table.column(name)?;
        sortable(&c.kind).then(|| Term::column(d, c))
    };
    // A name of our own choosing (see rowid_name), never the user's: no quoting.
    let rowid = rowid_name(d, table).map(|name| Term {
        name: name.to_string(),
        expr: name.to_string(),
        nullable: false,
        kind: Kind::Int {
            bytes: 8,
            unsigned: false,
        },
    });
    if !table.primary_key.is_empty() {
        if let Some(mut terms) = table.primary_key.iter().map(|k| term(k)).collect::<Option<Vec<_>>>() {
            // SQLite lets a primary key of a rowid table hold NULLs (several of them):
            // the rowid then tells those rows apart. (WITHOUT ROWID keys are NOT NULL.)
            if terms.iter().any(|t| t.nullable) {
                match &rowid {
                    Some(r) => terms.push(r.clone()),
                    None if d.0 != Engine::Sqlite => {}
                    None => return (Paging::FirstRowsOnly, Vec::new()),
                }
            }
            return (
                Paging::Key {
                    columns: table.primary_key.clone(),
                    primary: true,
                },
                terms,
            );
        }
    }
    for key in table.unique_keys() {
        if key == table.primary_key {
            continue;
        }
        let terms: Option<Vec<_>> = key.iter().map(|k| term(k).filter(|t| !t.nullable)).collect();
        if let Some(terms) = terms {
            return (
                Paging::Key {
                    columns: key,
                    primary: false,
                },
                terms,
            );
        }
    }
    match rowid {
        Some(r) => (Paging::RowId, vec![r]),
        None => (Paging::FirstRowsOnly, Vec::new()),
    }
}

/// SQLite's name for the rowid that no column of the table hides (a column named
/// `rowid` takes that name over), or `None` elsewhere.
fn rowid_name(d: Dialect, table: &Table) -> Option<&'static str> {
    if d.0 != Engine::Sqlite {
        return None;
    }
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
}

/// `(a matches OR b matches …)` over the table's text columns, with the pattern
/// bound once (PostgreSQL, SQLite: numbered parameters) or once per column (MariaDB).
fn search_condition(d: Dialect, table: &Table, pattern: &str, params: &mut Vec<Value>) -> Result<String, BrowseError> {
    let columns: Vec<&Column> = table
        .columns
        .iter()
        .filter(|c| matches!(c.kind, Kind::Text { .. }) || (d.0 == Engine::Sqlite && c.kind == Kind::Any))
        .collect();
    if columns.is_empty() {
        return Err(BrowseError::NothingToSearch {
            table: table.name.to_string(),
        });
    }
    let mut shared: Option<String> = None;
    let mut tests = Vec::with_capacity(columns.len());
    for c in columns {
        let param = match (&shared, d.0) {
            (Some(p), Engine::Postgres | Engine::Sqlite) => p.clone(),
            _ => {
                params.push(Value::Text(pattern.to_string()));
                let p = d.param(params.len());
                shared = Some(p.clone());
                p
            }
        };
        tests.push(d.contains_ci(&d.quote(&c.name), &param, c));
    }
    Ok(format!("({})", tests.join(" OR ")))
}

/// Reads one page: rows matching the search that sort after `after` (in the reverse
/// order when `reverse`), at most `limit`. After a cursor, the condition comes in
/// [`Dialect::keyset_segments`], each one index range, read in turn until the page is
/// full (two statements at most, and only at the edge of a nullable sort column's
/// NULLs).
async fn fetch(
    conn: &mut Conn,
    plan: &Plan,
    pattern: Option<&str>,
    after: Option<&[Value]>,
    reverse: bool,
    limit: usize,
) -> Result<Vec<Vec<Value>>, BrowseError> {
    let d = conn.dialect();
    let mut base = Vec::new();
    let search = match pattern {
        Some(pattern) => Some(search_condition(d, &plan.table, pattern, &mut base)?),
        None => None,
    };
    let segments: Vec<(Option<String>, Vec<Value>)> = match after {
        None => vec![(None, base)],
        Some(last) => d
            .keyset_segments(&plan.terms, last, reverse, &base)
            .into_iter()
            .map(|(condition, params)| (Some(condition), params))
            .collect(),
    };
    let mut rows = Vec::new();
    for (keyset, params) in segments {
        if rows.len() >= limit {
            break;
        }
        let conditions: Vec<&String> = search.iter().chain(keyset.as_ref()).collect();
        let mut sql = format!("SELECT {} FROM {}", plan.select, d.table(&plan.table.name));
        if !conditions.is_empty() {
            let conditions: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !plan.terms.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", d.keyset_order(&plan.terms, reverse)));
        }
        sql.push_str(&format!(" LIMIT {}", limit - rows.len()));
        // A keyset page plans the same for any cursor, so a pooled session keeps it
        // prepared; a search's plan depends on its pattern, so it is planned each time.
        let page = if pattern.is_none() {
            conn.query_kept(&sql, &params, Some(&plan.kinds)).await?
        } else {
            conn.query(&sql, &params, Some(&plan.kinds)).await?
        };
        rows.extend(page);
    }
    Ok(rows)
}

/// One page of `table` (resolved by [`Conn::find_table`]'s rule) as `q` asks.
///
/// Reads at most `per_page + 1` rows (the extra one says whether another page
/// follows) and a count; see the module docs for the order, search and count rules.
pub async fn browse(conn: &mut Conn, table: &str, q: &BrowseQuery) -> Result<BrowsePage, BrowseError> {
    let table = conn.find_table(table).await?;
    let d = conn.dialect();
    let plan = Plan::new(d, table, q.sort.as_deref())?;
    let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
    let search = q.search.as_deref().filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.contains('\0')) {
        return Err(BrowseError::BadSearch);
    }
    let pattern = search.map(like_contains);
    let pattern = pattern.as_deref();
    // Check everything the caller gave before reading anything.
    if q.after.is_some() && q.before.is_some() {
        return Err(BrowseError::BothCursors);
    }
    if pattern.is_some() {
        search_condition(d, &plan.table, "", &mut Vec::new())?;
    }
    let after = q.after.as_ref().map(|c| plan.position(c)).transpose()?;
    let before = q.before.as_ref().map(|c| plan.position(c)).transpose()?;

    let cursor_of = |row: Option<&Vec<Value>>| row.map(|r| plan.cursor(r));
    let (mut rows, next, prev) = match (after, before) {
        (Some(last), _) => {
            let mut rows = fetch(conn, &plan, pattern, Some(&last), q.descending, per_page + 1).await?;
            let more = rows.len() > per_page;
            rows.truncate(per_page);
            let next = if more { cursor_of(rows.last()) } else { None };
            // Past the end (rows deleted since), the page before the cursor is the last one.
            let prev = cursor_of(rows.first()).or_else(|| q.after.clone());
            (rows, next, prev)
        }
        (None, Some(first)) => {
            let mut rows = fetch(conn, &plan, pattern, Some(&first), !q.descending, per_page + 1).await?;
            let more = rows.len() > per_page;
            rows.truncate(per_page);
            rows.reverse();
            if !more && rows.len() < per_page {
                // Back at the start with a short page (rows were added since the
                // pages were cut): show the full first page instead.
                first_page(conn, &plan, pattern, q.descending, per_page).await?
            } else {
                let prev = if more { cursor_of(rows.first()) } else { None };
                let next = cursor_of(rows.last()).or_else(|| q.before.clone());
                (rows, next, prev)
            }
        }
        (None, None) => first_page(conn, &plan, pattern, q.descending, per_page).await?,
    };
    for row in &mut rows {
        row.truncate(plan.width);
    }
    // A first page that is also the last holds every row there is: counting them
    // again would read the table a second time (a search that matches little reads
    // all of it).
    let total = if q.after.is_none() && q.before.is_none() && rows.len() < per_page {
        RowCount::Exact(rows.len() as u64)
    } else {
        count(conn, &plan, pattern).await?
    };
    Ok(BrowsePage {
        table: plan.table_name(),
        columns: plan
            .table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.kind.clone()))
            .collect(),
        rows,
        next,
        prev,
        total,
        sort: plan.sort.clone(),
        descending: q.descending,
        per_page,
        paging: plan.paging.clone(),
    })
}

/// A page's rows (with their cursor columns), next and previous cursors.
type PageParts = (Vec<Vec<Value>>, Option<Cursor>, Option<Cursor>);

/// The first page of the order: no previous page, a next one when a row is left.
async fn first_page(
    conn: &mut Conn,
    plan: &Plan,
    pattern: Option<&str>,
    descending: bool,
    per_page: usize,
) -> Result<PageParts, BrowseError> {
    let mut rows = fetch(conn, plan, pattern, None, descending, per_page + 1).await?;
    let more = rows.len() > per_page;
    rows.truncate(per_page);
    let next = match (&plan.paging, more) {
        (Paging::FirstRowsOnly, _) | (_, false) => None,
        _ => rows.last().map(|r| plan.cursor(r)),
    };
    Ok((rows, next, None))
}

/// The total by the module's rules: matches up to the cap with a search; else the
/// estimate when it is large, an exact count when it is not.
async fn count(conn: &mut Conn, plan: &Plan, pattern: Option<&str>) -> Result<RowCount, BrowseError> {
    let d = conn.dialect();
    let table = d.table(&plan.table.name);
    let int8 = [Kind::Int {
        bytes: 8,
        unsigned: false,
    }];
    if let Some(pattern) = pattern {
        let mut params = Vec::new();
        let condition = search_condition(d, &plan.table, pattern, &mut params)?;
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 AS hit FROM {table} WHERE {condition} LIMIT {}) lg_hits",
            SEARCH_COUNT_CAP + 1
        );
        let n = first_int(&conn.query(&sql, &params, Some(&int8)).await?);
        return Ok(if n > SEARCH_COUNT_CAP {
            RowCount::AtLeast(SEARCH_COUNT_CAP)
        } else {
            RowCount::Exact(n)
        });
    }
    if let Some(estimate) = estimate(conn, &plan.table).await? {
        if estimate >= ESTIMATE_FROM {
            return Ok(RowCount::About(estimate));
        }
    }
    let sql = format!("SELECT count(*) FROM {table}");
    Ok(RowCount::Exact(first_int(&conn.query(&sql, &[], Some(&int8)).await?)))
}

/// The first cell of a one-row result as a count.
fn first_int(rows: &[Vec<Value>]) -> u64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => (*n).max(0) as u64,
        Some(Value::Float(f)) => f.max(0.0).round() as u64,
        Some(Value::Decimal(d)) => d.to_i64().unwrap_or(0).max(0) as u64,
        Some(Value::Text(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// The engine's own idea of the table's row count, read without reading the table;
/// `None` when it has none (or keeps an exact one that costs nothing to read).
async fn estimate(conn: &mut Conn, table: &Table) -> Result<Option<u64>, BrowseError> {
    match conn.engine() {
        Engine::Postgres => {
            // reltuples is -1 before the first VACUUM or ANALYZE, and stale after a
            // bulk load until autovacuum runs; the statistics' live-row count follows
            // writes within a second or so. The larger of the two is the estimate. The
            // live-row count is read with the function behind pg_stat_all_tables'
            // n_live_tup: the view computes every column for every table first (about
            // 0.4 ms of each page). A pooled session's table lookup read them already.
            if let Some(best) = conn.take_row_estimate(&table.name) {
                return Ok((best >= 0.0).then(|| best.round() as u64));
            }
            let sql = "SELECT c.reltuples::float8, coalesce(pg_stat_get_live_tuples(c.oid), 0)::float8 \
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = coalesce($1, current_schema()) AND c.relname = $2";
            let params = name_params(&table.name);
            let rows = conn
                .query(
                    sql,
                    &params,
                    Some(&[Kind::Float { bytes: 8 }, Kind::Float { bytes: 8 }]),
                )
                .await?;
            let best = rows
                .first()
                .map(|r| {
                    r.iter()
                        .map(|v| match v {
                            Value::Float(f) => *f,
                            _ => -1.0,
                        })
                        .fold(-1.0, f64::max)
                })
                .unwrap_or(-1.0);
            Ok((best >= 0.0).then(|| best.round() as u64))
        }
        Engine::Mysql => {
            // MyISAM and Aria keep the exact count: count(*) reads nothing.
            if table
                .engine
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("MyISAM") || e.eq_ignore_ascii_case("Aria"))
            {
                return Ok(None);
            }
            let sql = "SELECT TABLE_ROWS FROM information_schema.TABLES \
                       WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?";
            let schema = table.name.schema.clone().map_or(Value::Null, Value::Text);
            let rows = conn
                .query(sql, &[schema, Value::Text(table.name.name.clone())], None)
                .await?;
            Ok(match rows.first().and_then(|r| r.first()) {
                None | Some(Value::Null) => None,
                Some(_) => Some(first_int(&rows)),
            })
        }
        Engine::Sqlite => {
            // Only ANALYZE leaves an estimate (sqlite_stat1, whose stat text starts with
            // the row count); attached schemas are counted exactly.
            if table.name.schema.as_deref().is_some_and(|s| s != "main") {
                return Ok(None);
            }
            let exists = conn
                .query(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'",
                    &[],
                    None,
                )
                .await?;
            if first_int(&exists) == 0 {
                return Ok(None);
            }
            let rows = conn
                .query(
                    "SELECT stat FROM sqlite_stat1 WHERE tbl = ?1",
                    &[Value::Text(table.name.name.clone())],
                    None,
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|r| match r.first() {
                    Some(Value::Text(stat)) => stat.split_whitespace().next()?.parse::<u64>().ok(),
                    _ => None,
                })
                .max())
        }
    }
}

/// `$1` = the schema (NULL for the current one), `$2` = the table's own name.
fn name_params(name: &TableName) -> Vec<Value> {
    vec![
        name.schema.clone().map_or(Value::Null, Value::Text),
        Value::Text(name.name.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn base64url_round_trips_and_refuses_other_text() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff, 0xfe, 0x00],
        ];
        for input in inputs {
            let text = base64url_encode(input);
            assert!(text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(base64url_decode(&text).as_deref(), Some(input), "{text}");
        }
        assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url_encode(b"fo"), "Zm8");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        for bad in ["Zm9=", "Zm9v+", "Z", "Zm9", "a b"] {
            // "Zm9" has stray bits below its last whole byte.
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_every_value_type() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(0.1f32 as f64),
            Value::Float(-1.25e-300),
            Value::Decimal(lockgate_core::Decimal::parse("-12345678901234567890.000100").unwrap()),
            Value::Text("a \"quoted\" ünïcode ✓ text %_!".into()),
            Value::Text(String::new()),
            Value::Bytes(vec![0, 1, 254, 255]),
            Value::Date(date),
            Value::Time(date.and_hms_micro_opt(1, 2, 3, 456).unwrap().time()),
            Value::Timestamp(date.and_hms_micro_opt(23, 59, 58, 123_456).unwrap()),
            Value::TimestampTz(date.and_hms_micro_opt(0, 0, 1, 7).unwrap().and_utc()),
            Value::Json(serde_json::json!({"a": [1, 2.5, null]})),
            Value::Uuid(uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
        ];
        let cursor = Cursor {
            table: "s.t".into(),
            order: (0..values.len()).map(|i| format!("c{i}")).collect(),
            values,
        };
        let text = cursor.encode();
        let back = Cursor::decode(&text).unwrap();
        assert_eq!(back, cursor);
        // PartialEq on floats compares values; also check the bits.
        for (a, b) in back.values.iter().zip(&cursor.values) {
            if let (Value::Float(a), Value::Float(b)) = (a, b) {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }

    #[test]
    fn garbage_cursors_are_refused_with_a_reason() {
        let encode = |j: serde_json::Value| base64url_encode(j.to_string().as_bytes());
        let cases = [
            ("not base64!".to_string(), "not base64url"),
            (base64url_encode(b"{nope"), "does not hold JSON"),
            (encode(serde_json::json!([1])), "not hold a JSON object"),
            (
                encode(serde_json::json!({"v": 2, "t": "t", "o": ["id"], "k": [["i", "1"]]})),
                "another version",
            ),
            (
                encode(serde_json::json!({"v": 1, "o": ["id"], "k": [["i", "1"]]})),
                "names no table",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": ["id"], "k": [["i", "x"]]})),
                "does not read back",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": ["id"], "k": [["zz", "1"]]})),
                "unknown type",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": ["id"], "k": [5]})),
                "[type, text] pair",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": ["id", "x"], "k": [["i", "1"]]})),
                "pair up",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": [], "k": []})),
                "pair up",
            ),
            (
                encode(serde_json::json!({"v": 1, "t": "t", "o": ["b"], "k": [["x", "ab"]]})),
                "hex",
            ),
            ("A".repeat(MAX_CURSOR_TEXT + 1), "too long"),
        ];
        for (text, expected) in cases {
            let e = Cursor::decode(&text).unwrap_err();
            let message = e.to_string();
            assert!(matches!(e, BrowseError::BadCursor { .. }), "{message}");
            assert!(message.contains(expected), "{message:?} should say {expected:?}");
            assert!(message.ends_with("start again from the first page"), "{message}");
        }
    }

    #[test]
    fn unknown_sort_columns_name_the_table_and_what_to_sort_by() {
        let e = BrowseError::UnknownColumn {
            table: "customers".into(),
            column: "x; drop".into(),
            columns: vec!["CustomerID".into(), "FirstName".into()],
        };
        assert_eq!(
            e.to_string(),
            "table customers has no column \"x; drop\": sort by one of CustomerID, FirstName"
        );
        let many: Vec<String> = (0..35).map(|i| format!("c{i}")).collect();
        assert!(name_list(&many).ends_with("c29, … (5 more)"));
    }
}
