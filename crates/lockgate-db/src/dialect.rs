//! SQL text per engine. This module and the engine modules are the only places
//! that build SQL: identifiers always go through [`Dialect::quote`] (after being
//! checked against introspection by the caller), values are always bound
//! parameters or bulk payloads, never spliced into SQL.

use crate::url::Engine;
use lockgate_core::{Column, Kind, TableName, Value};

/// A key column and whether it may hold NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumn {
    /// The column's name.
    pub name: String,
    /// Whether it is nullable (then keys compare NULL-safely).
    pub nullable: bool,
}

/// One term of a keyset order ([`Dialect::keyset_order`], [`Dialect::keyset_after`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTerm {
    /// The SQL expression: a quoted column, or an engine's row identity.
    pub expr: String,
    /// Whether it may be NULL (then the order and the paging condition place NULLs
    /// explicitly, as the smallest value).
    pub nullable: bool,
}

/// The escape character of [`like_contains`] patterns. Not the backslash, whose
/// meaning inside MariaDB string literals depends on the SQL mode.
pub const LIKE_ESCAPE: char = '!';

/// The `LIKE` pattern "contains `term`": `%term%`, with `%`, `_` and the escape
/// character in `term` escaped so that they match themselves.
pub fn like_contains(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if c == '%' || c == '_' || c == LIKE_ESCAPE {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// SQL spelling for one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect(pub Engine);

impl Dialect {
    /// Quotes an identifier: `"a""b"` on PostgreSQL and SQLite, `` `a``b` `` on MariaDB.
    pub fn quote(&self, ident: &str) -> String {
        match self.0 {
            Engine::Mysql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// A quoted, schema-qualified table name: `schema.table` on PostgreSQL,
    /// `database.table` on MariaDB / MySQL (SQLite's names never carry one here).
    pub fn table(&self, name: &TableName) -> String {
        match &name.schema {
            Some(schema) if self.0 != Engine::Sqlite => format!("{}.{}", self.quote(schema), self.quote(&name.name)),
            _ => self.quote(&name.name),
        }
    }

    /// The n-th (1-based) bind parameter.
    pub fn param(&self, n: usize) -> String {
        match self.0 {
            Engine::Postgres => format!("${n}"),
            Engine::Sqlite => format!("?{n}"),
            Engine::Mysql => "?".into(),
        }
    }

    /// The keyset-paging condition "the key expressions `keys` sort after `last`",
    /// with the values appended to `params` (numbered after those already there).
    /// The keys are taken as NOT NULL; [`Dialect::keyset_after`] handles NULLs and
    /// the reverse order.
    pub fn after_keys(&self, keys: &[String], last: &[Value], params: &mut Vec<Value>) -> String {
        let terms: Vec<OrderTerm> = keys
            .iter()
            .map(|k| OrderTerm {
                expr: k.clone(),
                nullable: false,
            })
            .collect();
        self.keyset_after(&terms, last, false, params)
    }

    /// What keyset paging orders and compares the column `column` by, given as the
    /// (quoted, maybe qualified) expression `expr`: the column itself, except for
    /// MariaDB's ENUM and SET. MariaDB sorts those by declared position but compares
    /// them with text (a cursor's value) as text, so a page of `ENUM('z','a')` ending
    /// on `'z'` would resume at "`> 'z'`" and skip every `'a'`. They are ordered and
    /// compared as their label instead, byte by byte (`COLLATE utf8mb4_bin`: the same
    /// rule in the order and the condition, and no two labels equal, as `a` and `A`
    /// would be under a case-insensitive collation). Every keyset reader uses this
    /// (`read::Keyset`, `browse`).
    pub fn key_expr(&self, expr: &str, column: &Column) -> String {
        let data_type = column.data_type.to_ascii_lowercase();
        if self.0 == Engine::Mysql && (data_type.starts_with("enum") || data_type.starts_with("set")) {
            format!("CAST({expr} AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin")
        } else {
            expr.to_string()
        }
    }

    /// The `ORDER BY` list of a keyset order over `terms`: ascending with NULL as the
    /// smallest value (MariaDB's and SQLite's own rule), or, with `reverse`, the exact
    /// reverse of that (descending, NULLs last). PostgreSQL sorts NULL as the largest
    /// value, so nullable terms say `NULLS FIRST`/`NULLS LAST` there; NOT NULL terms
    /// say nothing, which keeps an ordinary index usable for them.
    pub fn keyset_order(&self, terms: &[OrderTerm], reverse: bool) -> String {
        terms
            .iter()
            .map(|t| {
                let dir = if reverse { "DESC" } else { "ASC" };
                match (self.0, t.nullable, reverse) {
                    (Engine::Postgres, true, false) => format!("{} ASC NULLS FIRST", t.expr),
                    (Engine::Postgres, true, true) => format!("{} DESC NULLS LAST", t.expr),
                    _ => format!("{} {dir}", t.expr),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The keyset-paging condition "a row sorts after `last` in
    /// [`Dialect::keyset_order`]`(terms, reverse)`", with the values appended to
    /// `params` (numbered after those already there). `last` holds one value per
    /// term and may hold NULLs where a term is nullable.
    pub fn keyset_after(&self, terms: &[OrderTerm], last: &[Value], reverse: bool, params: &mut Vec<Value>) -> String {
        // A row comparison is one index range on PostgreSQL and SQLite. It is exact
        // when `last` holds no NULL and either no term is nullable or the order is
        // ascending: there NULLs sort first, so a row with a NULL before its first
        // unequal term sorts before `last`, and the comparison (NULL, not true) leaves
        // it out as it should. (SQLite's composite primary keys are nullable unless
        // declared NOT NULL: without this they lost the single range.)
        let row_comparison = last.iter().all(|v| !v.is_null()) && (!reverse || terms.iter().all(|t| !t.nullable));
        if self.0 != Engine::Mysql && terms.len() > 1 && row_comparison {
            let first = params.len() + 1;
            params.extend(last.iter().cloned());
            let ps = (first..=params.len()).map(|i| self.param(i)).collect::<Vec<_>>();
            let exprs: Vec<&str> = terms.iter().map(|t| t.expr.as_str()).collect();
            let op = if reverse { "<" } else { ">" };
            return format!("({}) {op} ({})", exprs.join(", "), ps.join(", "));
        }
        // Where the OR form below is not already a single index range, a redundant
        // bound on the first term gives PostgreSQL and SQLite a place to start an
        // index scan instead of filtering from the table's first row. (MariaDB's
        // range optimizer reads the OR form as ranges by itself.)
        let mut bound = None;
        if let (Some(t), Some(v)) = (terms.first(), last.first()) {
            if self.0 != Engine::Mysql && terms.len() > 1 && !v.is_null() {
                let op = match (reverse, t.nullable) {
                    (false, _) => Some(">="),
                    (true, false) => Some("<="),
                    // NULLs come after every value in reverse: no single range.
                    (true, true) => None,
                };
                if let Some(op) = op {
                    params.push(v.clone());
                    bound = Some(format!("{} {op} {}", t.expr, self.param(params.len())));
                }
            }
        }
        // (a > ?) OR (a = ? AND b > ?) …: MariaDB does not use an index for row
        // comparisons, and NULLs need terms of their own anyway.
        let mut ors = Vec::new();
        for i in 0..terms.len() {
            let mut ands = Vec::new();
            for (t, v) in terms.iter().zip(last).take(i) {
                if v.is_null() {
                    ands.push(format!("{} IS NULL", t.expr));
                } else {
                    params.push(v.clone());
                    ands.push(format!("{} = {}", t.expr, self.param(params.len())));
                }
            }
            let (t, v) = (&terms[i], &last[i]);
            let beyond = match (v.is_null(), reverse) {
                // Every value sorts after NULL, the smallest one.
                (true, false) => format!("{} IS NOT NULL", t.expr),
                // Nothing sorts after NULL in the reverse order, where it is last.
                (true, true) => continue,
                (false, false) => {
                    params.push(v.clone());
                    format!("{} > {}", t.expr, self.param(params.len()))
                }
                (false, true) => {
                    params.push(v.clone());
                    let less = format!("{} < {}", t.expr, self.param(params.len()));
                    if t.nullable {
                        format!("({less} OR {} IS NULL)", t.expr)
                    } else {
                        less
                    }
                }
            };
            ands.push(beyond);
            ors.push(format!("({})", ands.join(" AND ")));
        }
        let condition = if ors.is_empty() {
            "1 = 0".to_string()
        } else {
            ors.join(" OR ")
        };
        match bound {
            Some(bound) => format!("{bound} AND ({condition})"),
            None => condition,
        }
    }

    /// [`Dialect::keyset_after`] cut into conditions that are each one index range,
    /// nearest rows first: a reader runs them in turn (each with the same `ORDER BY`)
    /// until its page is full. Only a nullable first term needs more than one: its
    /// NULLs sit at one end of the order, so "after a NULL, ascending" is the rest of
    /// the NULLs and then every value, and "after a value, descending" is the smaller
    /// values and then the NULLs. As one OR, an index scan would have to filter its way
    /// from the table's end to the cursor; cut, each part starts at the cursor (or the
    /// NULLs). Each condition comes with its parameters: `base` (bound before it, a
    /// search say) followed by its own.
    pub fn keyset_segments(
        &self,
        terms: &[OrderTerm],
        last: &[Value],
        reverse: bool,
        base: &[Value],
    ) -> Vec<(String, Vec<Value>)> {
        let after = |terms: &[OrderTerm], last: &[Value], prefix: &str| {
            let mut params = base.to_vec();
            let condition = self.keyset_after(terms, last, reverse, &mut params);
            (format!("{prefix}({condition})"), params)
        };
        let Some(first) = terms.first() else {
            return Vec::new();
        };
        if !first.nullable {
            return vec![after(terms, last, "")];
        }
        let is_null = format!("{} IS NULL", first.expr);
        // The rows of the cursor's own NULL group that come after it.
        let rest_of_nulls = || (terms.len() > 1).then(|| after(&terms[1..], &last[1..], &format!("{is_null} AND ")));
        match (last[0].is_null(), reverse) {
            (true, false) => rest_of_nulls()
                .into_iter()
                .chain([(format!("{} IS NOT NULL", first.expr), base.to_vec())])
                .collect(),
            (true, true) => rest_of_nulls().into_iter().collect(),
            (false, false) => vec![after(terms, last, "")],
            (false, true) => {
                // Values first: a comparison with a value is never true for NULL, so
                // the first term may be treated as NOT NULL here.
                let mut values = terms.to_vec();
                values[0].nullable = false;
                vec![after(&values, last, ""), (is_null, base.to_vec())]
            }
        }
    }

    /// A case-insensitive "`expr` contains the pattern in `param`" test, where the
    /// parameter holds [`like_contains`]'s pattern. PostgreSQL: `ILIKE` (with a cast
    /// to text for types that have no `ILIKE`, such as enums, when `cast_to_text`).
    /// MariaDB: `LIKE`, which is case-insensitive under `_ci` collations; any other
    /// collation (`_bin`, `_cs`, unknown) compares `LOWER` of both sides. SQLite:
    /// `LIKE`, case-insensitive for ASCII letters only (SQLite knows no other case
    /// folding without ICU).
    pub fn contains_ci(&self, expr: &str, param: &str, column: &Column) -> String {
        let escape = format!("ESCAPE '{LIKE_ESCAPE}'");
        match self.0 {
            Engine::Postgres => {
                let character = column.data_type.starts_with("character") || column.data_type == "text";
                if character {
                    format!("{expr} ILIKE {param} {escape}")
                } else {
                    format!("CAST({expr} AS text) ILIKE {param} {escape}")
                }
            }
            Engine::Mysql => match &column.collation {
                Some(c) if c.to_ascii_lowercase().ends_with("_ci") => format!("{expr} LIKE {param} {escape}"),
                _ => format!("LOWER({expr}) LIKE LOWER({param}) {escape}"),
            },
            Engine::Sqlite => format!("{expr} LIKE {param} {escape}"),
        }
    }

    /// A comparison that treats two NULLs as equal (keys need not be NOT NULL).
    pub fn same(&self, a: &str, b: &str) -> String {
        match self.0 {
            Engine::Postgres => format!("{a} IS NOT DISTINCT FROM {b}"),
            Engine::Mysql => format!("{a} <=> {b}"),
            Engine::Sqlite => format!("{a} IS {b}"),
        }
    }

    /// `left.col1 = right.col1 AND …` for a key. Nullable key columns compare with
    /// [`Dialect::same`]; NOT NULL ones with `=`, which PostgreSQL can answer from an
    /// index (IS NOT DISTINCT FROM cannot).
    pub fn key_match(&self, left: &str, right: &str, key: &[KeyColumn]) -> String {
        key.iter()
            .map(|k| {
                let (l, r) = (
                    format!("{left}.{}", self.quote(&k.name)),
                    format!("{right}.{}", self.quote(&k.name)),
                );
                if k.nullable {
                    self.same(&l, &r)
                } else {
                    format!("{l} = {r}")
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// True when any of `cols` differs between `left` and `right` (NULL-safe): what
    /// an update must change. Text compares byte by byte on MariaDB, whose usual
    /// collations would call `abc` and `ABC` the same, and under a column's own
    /// collation on SQLite and PostgreSQL; PostgreSQL's `json` has no equality, so it
    /// compares as `jsonb`.
    pub fn differs(&self, left: &str, right: &str, cols: &[&Column]) -> String {
        if cols.is_empty() {
            return "1 = 0".into();
        }
        let parts: Vec<String> = cols
            .iter()
            .map(|c| {
                let (l, r) = (
                    format!("{left}.{}", self.quote(&c.name)),
                    format!("{right}.{}", self.quote(&c.name)),
                );
                match (self.0, &c.kind) {
                    (Engine::Mysql, Kind::Text { .. }) => self.same(&format!("BINARY {l}"), &format!("BINARY {r}")),
                    // A column's own collation may call `abc` and `ABC` the same too
                    // (SQLite NOCASE, a PostgreSQL nondeterministic collation).
                    (Engine::Sqlite, Kind::Text { .. }) if c.collation.is_some() => {
                        self.same(&l, &format!("{r} COLLATE BINARY"))
                    }
                    (Engine::Postgres, Kind::Text { .. }) if c.collation.is_some() => {
                        self.same(&format!("{l} COLLATE \"C\""), &format!("{r} COLLATE \"C\""))
                    }
                    (Engine::Postgres, Kind::Json) => self.same(&format!("{l}::jsonb"), &format!("{r}::jsonb")),
                    (Engine::Postgres, Kind::Unsupported { .. }) => {
                        self.same(&format!("{l}::text"), &format!("{r}::text"))
                    }
                    _ => self.same(&l, &r),
                }
            })
            .collect();
        format!("NOT ({})", parts.join(" AND "))
    }

    /// Quoted, comma-separated column list with an optional alias prefix.
    pub fn columns(&self, alias: Option<&str>, cols: &[String]) -> String {
        cols.iter()
            .map(|c| match alias {
                Some(a) => format!("{a}.{}", self.quote(c)),
                None => self.quote(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TEMPORARY TABLE` for a staging table; columns are (name, declared type)
    /// and carry no constraints, so that every row lands and checks run set-based.
    pub fn create_temp(&self, name: &str, cols: &[(String, String)]) -> String {
        let body = cols
            .iter()
            .map(|(n, t)| format!("{} {t}", self.quote(n)))
            .collect::<Vec<_>>()
            .join(", ");
        match self.0 {
            Engine::Postgres => format!("CREATE TEMPORARY TABLE {} ({body})", self.quote(name)),
            Engine::Mysql => format!("CREATE TEMPORARY TABLE {} ({body}) ENGINE=InnoDB", self.quote(name)),
            Engine::Sqlite => format!("CREATE TEMP TABLE {} ({body})", self.quote(name)),
        }
    }

    /// Like [`Dialect::create_temp`], with an index on `index` declared in the same
    /// statement (MariaDB commits the transaction on a separate CREATE INDEX).
    pub fn create_temp_indexed(&self, name: &str, cols: &[(String, String)], index: &[String]) -> String {
        let index_cols = self.columns(None, index);
        match self.0 {
            Engine::Mysql => {
                let body = cols
                    .iter()
                    .map(|(n, t)| format!("{} {t}", self.quote(n)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "CREATE TEMPORARY TABLE {} ({body}, INDEX ({index_cols})) ENGINE=InnoDB",
                    self.quote(name)
                )
            }
            _ => format!(
                "{}; CREATE INDEX {} ON {} ({index_cols})",
                self.create_temp(name, cols),
                self.quote(&format!("{name}_key")),
                self.quote(name)
            ),
        }
    }

    /// `CREATE TEMPORARY TABLE name AS SELECT * FROM source`: a copy of a table's
    /// rows inside the open transaction, indexed on `index` (the table's image key),
    /// so that comparing the table with its copy is one index probe per row rather
    /// than a scan of the copy per row. MariaDB declares the index in the same
    /// statement, since a separate CREATE INDEX would commit; PostgreSQL also gathers
    /// the copy's statistics (temporary tables are never analysed automatically, and
    /// without them the planner may loop over the copy).
    pub fn copy_temp(&self, name: &str, source: &TableName, index: &[String]) -> String {
        let index_cols = self.columns(None, index);
        let index_name = self.quote(&format!("{name}_key"));
        match self.0 {
            Engine::Mysql => format!(
                "CREATE TEMPORARY TABLE {} (INDEX ({index_cols})) ENGINE=InnoDB AS SELECT * FROM {}",
                self.quote(name),
                self.table(source)
            ),
            Engine::Postgres => format!(
                "CREATE TEMPORARY TABLE {0} AS SELECT * FROM {1}; CREATE INDEX {index_name} ON {0} ({index_cols}); ANALYZE {0}",
                self.quote(name),
                self.table(source)
            ),
            Engine::Sqlite => format!(
                "CREATE TEMP TABLE {0} AS SELECT * FROM {1}; CREATE INDEX temp.{index_name} ON {0} ({index_cols})",
                self.quote(name),
                self.table(source)
            ),
        }
    }

    /// Drops a temporary table if it exists (MariaDB's survive a rollback).
    pub fn drop_temp(&self, name: &str) -> String {
        match self.0 {
            Engine::Mysql => format!("DROP TEMPORARY TABLE IF EXISTS {}", self.quote(name)),
            Engine::Sqlite => format!("DROP TABLE IF EXISTS temp.{}", self.quote(name)),
            Engine::Postgres => format!("DROP TABLE IF EXISTS pg_temp.{}", self.quote(name)),
        }
    }

    /// Empties a staging table inside a transaction (TRUNCATE commits on MariaDB).
    pub fn clear(&self, name: &str) -> String {
        match self.0 {
            Engine::Postgres => format!("TRUNCATE {}", self.quote(name)),
            _ => format!("DELETE FROM {}", self.quote(name)),
        }
    }

    /// `UPDATE target SET cols = s.cols FROM staging s WHERE key matches [AND filter]`,
    /// touching only rows where one of `changed` differs when it is not empty.
    pub fn update_from(
        &self,
        target: &TableName,
        staging: &str,
        set: &[String],
        key: &[KeyColumn],
        filter: &str,
        changed: &[&Column],
    ) -> String {
        let t = self.table(target);
        let s = self.quote(staging);
        let on = self.key_match("t", "s", key);
        let filter = if changed.is_empty() {
            filter.to_string()
        } else {
            format!("{filter} AND {}", self.differs("t", "s", changed))
        };
        match self.0 {
            Engine::Mysql => {
                let assign = set
                    .iter()
                    .map(|c| format!("t.{0} = s.{0}", self.quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {t} t JOIN {s} s ON {on} SET {assign} WHERE {filter}")
            }
            Engine::Postgres => {
                let assign = set
                    .iter()
                    .map(|c| format!("{0} = s.{0}", self.quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {t} t SET {assign} FROM {s} s WHERE {on} AND {filter}")
            }
            Engine::Sqlite => {
                // The target is aliased like the others: named in full, a table called
                // `s` would be the staging alias's namesake.
                let assign = set
                    .iter()
                    .map(|c| format!("{0} = s.{0}", self.quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {t} AS t SET {assign} FROM {s} s WHERE {on} AND {filter}")
            }
        }
    }

    /// `INSERT INTO target (cols) SELECT s.cols FROM staging s WHERE [no row with the key] AND filter`.
    pub fn insert_select(
        &self,
        target: &TableName,
        staging: &str,
        cols: &[String],
        missing_key: Option<&[KeyColumn]>,
        filter: &str,
    ) -> String {
        self.insert_select_returning(target, staging, cols, missing_key, filter, &[])
    }

    /// [`Dialect::insert_select`] returning `returning` columns of each inserted row
    /// (all three engines have `RETURNING`: PostgreSQL, MariaDB 10.5+, SQLite 3.35+).
    pub fn insert_select_returning(
        &self,
        target: &TableName,
        staging: &str,
        cols: &[String],
        missing_key: Option<&[KeyColumn]>,
        filter: &str,
        returning: &[String],
    ) -> String {
        let t = self.table(target);
        let mut sql = format!(
            "INSERT INTO {t} ({}) SELECT {} FROM {} s WHERE {filter}",
            self.columns(None, cols),
            self.columns(Some("s"), cols),
            self.quote(staging)
        );
        if let Some(key) = missing_key {
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM {t} t WHERE {})",
                self.key_match("t", "s", key)
            ));
        }
        if !returning.is_empty() {
            sql.push_str(&format!(" RETURNING {}", self.columns(None, returning)));
        }
        sql
    }

    /// The rows of `staging` whose key (`key` columns) another row repeats, by the
    /// database's own equality (the columns' collation; a key with a NULL part equals
    /// none, as in a unique index), each with the lowest and highest `ord` of its
    /// key: `SELECT ord, first, last`. A window over one table, so it reads the
    /// (temporary) staging table once.
    pub fn repeated_keys(&self, staging: &str, ord: &str, key: &[String]) -> String {
        let over = format!("OVER (PARTITION BY {})", self.columns(None, key));
        let ord = self.quote(ord);
        let whole = key
            .iter()
            .map(|k| format!("{} IS NOT NULL", self.quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "SELECT {ord}, first_n, last_n FROM (SELECT {ord}, MIN({ord}) {over} AS first_n, MAX({ord}) {over} AS last_n, \
             COUNT(*) {over} AS n FROM {} WHERE {whole}) g WHERE n > 1",
            self.quote(staging)
        )
    }

    /// `SELECT rows, distinct keys` of `staging` whose key has no NULL part, keys
    /// told apart by the database's own equality (the columns' collation): equal
    /// counts mean no key repeats, and [`Dialect::repeated_keys`] need not run.
    pub fn key_counts(&self, staging: &str, key: &[String]) -> String {
        let whole = key
            .iter()
            .map(|k| format!("{} IS NOT NULL", self.quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let s = self.quote(staging);
        format!(
            "SELECT (SELECT COUNT(*) FROM {s} WHERE {whole}), \
             (SELECT COUNT(*) FROM (SELECT DISTINCT {} FROM {s} WHERE {whole}) d)",
            self.columns(None, key)
        )
    }

    /// `DELETE FROM target WHERE scope AND NOT EXISTS (a row of `keys` with its key)`.
    pub fn delete_missing(&self, target: &TableName, keys: &str, key: &[KeyColumn], scope: &str) -> String {
        let t = self.table(target);
        match self.0 {
            Engine::Postgres | Engine::Mysql => format!(
                "DELETE FROM {t} t WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {} k WHERE {})",
                self.quote(keys),
                self.key_match("t", "k", key)
            )
            .replacen(
                "DELETE FROM",
                if self.0 == Engine::Mysql {
                    "DELETE t FROM"
                } else {
                    "DELETE FROM"
                },
                1,
            ),
            // Aliased: named in full, a table called `k` would be the keys' namesake
            // and the condition would compare the keys with themselves.
            Engine::Sqlite => format!(
                "DELETE FROM {t} AS t WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {} k WHERE {})",
                self.quote(keys),
                self.key_match("t", "k", key)
            ),
        }
    }

    /// The database server's clock in milliseconds since 1970 (UTC): leases compare
    /// against one clock, the server's, whichever machine the worker runs on.
    pub fn now_ms(&self) -> &'static str {
        match self.0 {
            Engine::Postgres => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
            Engine::Mysql => "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS SIGNED)",
            Engine::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        }
    }

    /// A type for the staging table's bookkeeping columns.
    pub fn bigint(&self) -> &'static str {
        match self.0 {
            Engine::Sqlite => "INTEGER",
            _ => "BIGINT",
        }
    }

    /// `SAVEPOINT name` and friends.
    pub fn savepoint(&self, name: &str) -> String {
        format!("SAVEPOINT {name}")
    }

    /// Rolls back to a savepoint.
    pub fn rollback_to(&self, name: &str) -> String {
        format!("ROLLBACK TO SAVEPOINT {name}")
    }

    /// Releases a savepoint.
    pub fn release(&self, name: &str) -> String {
        format!("RELEASE SAVEPOINT {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_names_as_names() {
        let pg = Dialect(Engine::Postgres);
        let my = Dialect(Engine::Mysql);
        assert_eq!(pg.quote("a\"; DROP TABLE x; --"), "\"a\"\"; DROP TABLE x; --\"");
        assert_eq!(my.quote("a`b"), "`a``b`");
        assert_eq!(
            pg.table(&TableName {
                schema: Some("s".into()),
                name: "T".into()
            }),
            "\"s\".\"T\""
        );
        // MariaDB / MySQL: another database's table; SQLite's names carry none.
        let other = TableName {
            schema: Some("other".into()),
            name: "T".into(),
        };
        assert_eq!(my.table(&other), "`other`.`T`");
        assert_eq!(Dialect(Engine::Sqlite).table(&other), "\"T\"");
        assert_eq!(my.table(&TableName::new("T")), "`T`");
    }
    #[test]
    fn after_keys_keeps_its_shape() {
        let keys = vec!["\"a\"".to_string(), "\"b\"".to_string()];
        let last = [Value::Int(1), Value::Int(2)];
        let mut params = vec![Value::Int(0)];
        assert_eq!(
            Dialect(Engine::Postgres).after_keys(&keys, &last, &mut params),
            "(\"a\", \"b\") > ($2, $3)"
        );
        let mut params = Vec::new();
        assert_eq!(
            Dialect(Engine::Mysql).after_keys(&keys, &last, &mut params),
            "(\"a\" > ?) OR (\"a\" = ? AND \"b\" > ?)"
        );
        assert_eq!(params, [Value::Int(1), Value::Int(1), Value::Int(2)]);
        let mut params = Vec::new();
        assert_eq!(
            Dialect(Engine::Sqlite).after_keys(&keys[..1], &last[..1], &mut params),
            "(\"a\" > ?1)"
        );
    }

    #[test]
    fn keyset_paging_places_nulls_first_ascending_and_last_descending() {
        let terms = [
            OrderTerm {
                expr: "s".into(),
                nullable: true,
            },
            OrderTerm {
                expr: "id".into(),
                nullable: false,
            },
        ];
        let my = Dialect(Engine::Mysql);
        let pg = Dialect(Engine::Postgres);
        let check = |d: Dialect, last: &[Value], reverse: bool, sql: &str, n: usize| {
            let mut params = Vec::new();
            assert_eq!(d.keyset_after(&terms, last, reverse, &mut params), sql);
            assert_eq!(params.len(), n, "{sql}");
        };
        let null = [Value::Null, Value::Int(7)];
        let five = [Value::Int(5), Value::Int(7)];
        check(my, &null, false, "(s IS NOT NULL) OR (s IS NULL AND id > ?)", 1);
        check(my, &null, true, "(s IS NULL AND id < ?)", 1);
        check(my, &five, false, "(s > ?) OR (s = ? AND id > ?)", 3);
        check(my, &five, true, "((s < ? OR s IS NULL)) OR (s = ? AND id < ?)", 3);
        // Ascending from a row without NULLs: the row comparison is exact (NULLs sort
        // first, before `five`) and one index range.
        check(pg, &five, false, "(s, id) > ($1, $2)", 2);
        check(Dialect(Engine::Sqlite), &five, false, "(s, id) > (?1, ?2)", 2);
        check(pg, &five, true, "((s < $1 OR s IS NULL)) OR (s = $2 AND id < $3)", 3);
        let segments = |d: Dialect, last: &[Value], reverse: bool| -> Vec<(String, usize)> {
            d.keyset_segments(&terms, last, reverse, &[Value::Text("%x%".into())])
                .into_iter()
                .map(|(sql, params)| (sql, params.len()))
                .collect()
        };
        let s = |sql: &str, n: usize| (sql.to_string(), n);
        assert_eq!(
            segments(pg, &null, false),
            [s("s IS NULL AND ((id > $2))", 2), s("s IS NOT NULL", 1)]
        );
        assert_eq!(segments(pg, &null, true), [s("s IS NULL AND ((id < $2))", 2)]);
        assert_eq!(segments(pg, &five, false), [s("((s, id) > ($2, $3))", 3)]);
        assert_eq!(
            segments(pg, &five, true),
            [s("((s, id) < ($2, $3))", 3), s("s IS NULL", 1)]
        );
        assert_eq!(
            segments(my, &five, true),
            [s("((s < ?) OR (s = ? AND id < ?))", 4), s("s IS NULL", 1)]
        );
        assert_eq!(pg.keyset_order(&terms, false), "s ASC NULLS FIRST, id ASC");
        assert_eq!(pg.keyset_order(&terms, true), "s DESC NULLS LAST, id DESC");
        assert_eq!(my.keyset_order(&terms, true), "s DESC, id DESC");
    }

    #[test]
    fn like_patterns_escape_wildcards_and_the_escape_character() {
        assert_eq!(like_contains("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_contains(""), "%%");
    }
}
