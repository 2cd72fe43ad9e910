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

    /// A quoted, schema-qualified table name.
    pub fn table(&self, name: &TableName) -> String {
        match &name.schema {
            Some(schema) if self.0 == Engine::Postgres => format!("{}.{}", self.quote(schema), self.quote(&name.name)),
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
    pub fn after_keys(&self, keys: &[String], last: &[Value], params: &mut Vec<Value>) -> String {
        if self.0 == Engine::Mysql || keys.len() == 1 {
            // (a > ?) OR (a = ? AND b > ?): MariaDB does not use an index for row
            // comparisons.
            let mut ors = Vec::new();
            for i in 0..keys.len() {
                let mut ands = Vec::new();
                for (e, v) in keys.iter().zip(last).take(i) {
                    params.push(v.clone());
                    ands.push(format!("{e} = {}", self.param(params.len())));
                }
                params.push(last[i].clone());
                ands.push(format!("{} > {}", keys[i], self.param(params.len())));
                ors.push(format!("({})", ands.join(" AND ")));
            }
            ors.join(" OR ")
        } else {
            let first = params.len() + 1;
            params.extend(last.iter().cloned());
            let ps = (first..=params.len()).map(|i| self.param(i)).collect::<Vec<_>>();
            format!("({}) > ({})", keys.join(", "), ps.join(", "))
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
    /// collations would call `abc` and `ABC` the same; PostgreSQL's `json` has no
    /// equality, so it compares as `jsonb`.
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
            // SQLite's UPDATE cannot alias its target: name it in full there.
            let target_ref = if self.0 == Engine::Sqlite {
                t.clone()
            } else {
                "t".into()
            };
            format!("{filter} AND {}", self.differs(&target_ref, "s", changed))
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
                // SQLite's UPDATE … FROM cannot alias the target, so name it in full.
                let on = self.key_match(&t, "s", key);
                let assign = set
                    .iter()
                    .map(|c| format!("{0} = s.{0}", self.quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {t} SET {assign} FROM {s} s WHERE {on} AND {filter}")
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
            Engine::Sqlite => {
                let on = self.key_match(&t, "k", key);
                format!(
                    "DELETE FROM {t} WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {} k WHERE {on})",
                    self.quote(keys)
                )
            }
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
    }
}
