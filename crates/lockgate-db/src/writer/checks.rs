//! The set-based checks against the table (existing keys, missing foreign-key
//! parents, CHECK constraints) as queries over the staging table, each run under a
//! savepoint so that a check that cannot run is left to the engine.

use super::*;

/// What a set-based check says of a row it returns.
#[derive(Clone, Debug)]
pub(super) struct Finding {
    pub(super) kind: Violation,
    pub(super) column: Option<String>,
    pub(super) message: String,
}

/// The set-based checks against the table, as queries over the staging table that
/// return the failing rows' numbers: keys that already exist in the table (for rows
/// passing `inserting`), foreign keys without a parent, CHECK constraints. `given`
/// says which columns the rows carry; a check over others is left out.
pub(super) fn table_checks(plan: &Plan, inserting: &str, given: impl Fn(&str) -> bool) -> Vec<(String, Finding)> {
    let d = plan.dialect;
    let table = &plan.table;
    let stage = d.quote(STAGE);
    let all =
        |cols: &[String], f: &dyn Fn(&String) -> String, sep: &str| cols.iter().map(f).collect::<Vec<_>>().join(sep);
    let mut out = Vec::new();
    for key in table.unique_keys() {
        if !key.iter().all(|k| given(k) && table.column(k).is_some()) {
            continue;
        }
        let names = key.join(", ");
        let not_null = all(&key, &|k| format!("s.{} IS NOT NULL", d.quote(k)), " AND ");
        let matches = all(&key, &|k| format!("t.{0} = s.{0}", d.quote(k)), " AND ");
        out.push((
            format!(
                "SELECT s.{ORD} FROM {stage} s WHERE {not_null} AND {inserting} AND EXISTS (SELECT 1 FROM {} t WHERE {matches})",
                d.table(&table.name)
            ),
            Finding {
                kind: Violation::Unique,
                column: Some(names.clone()),
                message: format!("duplicate key: a row with this {names} already exists in {}", table.name),
            },
        ));
    }
    for fk in &table.foreign_keys {
        // Parents in the same table may come with the input: the engine judges those.
        if fk.references == table.name || !fk.columns.iter().all(|(c, _)| given(c)) {
            continue;
        }
        let child: Vec<String> = fk.columns.iter().map(|c| c.0.clone()).collect();
        let not_null = all(&child, &|c| format!("s.{} IS NOT NULL", d.quote(c)), " AND ");
        let matches = fk
            .columns
            .iter()
            .map(|(c, p)| format!("p.{} = s.{}", d.quote(p), d.quote(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let cols = child.join(", ");
        out.push((
            format!(
                "SELECT s.{ORD} FROM {stage} s WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {matches})",
                d.table(&fk.references)
            ),
            Finding {
                kind: Violation::ForeignKey,
                message: format!("foreign key {}: no row in {} has this {cols}", fk.name, fk.references),
                column: Some(cols),
            },
        ));
    }
    for check in &table.checks {
        // The engine's own text of the table's constraint; its column names resolve
        // against the staging table's, which keep the table's types.
        out.push((
            format!("SELECT s.{ORD} FROM {stage} s WHERE NOT ({})", check.expression),
            Finding {
                kind: Violation::Check,
                column: None,
                message: format!("violates check constraint {} ({})", check.name, check.expression),
            },
        ));
    }
    out
}

/// Violations the set-based checks find.
#[derive(Clone, Copy, Debug)]
pub(super) enum Violation {
    Unique,
    ForeignKey,
    Check,
}

impl Violation {
    /// The engine's own code for the violation.
    pub(super) fn code(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (Violation::Unique, Engine::Postgres) => "23505",
            (Violation::Unique, Engine::Mysql) => "1062",
            (Violation::Unique, Engine::Sqlite) => "SQLITE_CONSTRAINT_UNIQUE",
            (Violation::ForeignKey, Engine::Postgres) => "23503",
            (Violation::ForeignKey, Engine::Mysql) => "1452",
            (Violation::ForeignKey, Engine::Sqlite) => "SQLITE_CONSTRAINT_FOREIGNKEY",
            (Violation::Check, Engine::Postgres) => "23514",
            (Violation::Check, Engine::Mysql) => "4025",
            (Violation::Check, Engine::Sqlite) => "SQLITE_CONSTRAINT_CHECK",
        }
    }
}

/// Runs a diagnostic query under a savepoint: a check that cannot run (it names a
/// function the staging table lacks, say) is `None`, left to the engine, not fatal.
pub(super) async fn checked_rows(conn: &mut Conn, d: Dialect, sql: &str) -> Result<Option<Vec<Vec<Value>>>, DbError> {
    conn.batch(&d.savepoint(SP)).await?;
    match conn.query(sql, &[], None).await {
        Ok(rows) => {
            conn.batch(&d.release(SP)).await?;
            Ok(Some(rows))
        }
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::debug!("set-based check skipped: {e}");
            conn.batch(&d.rollback_to(SP)).await?;
            conn.batch(&d.release(SP)).await?;
            Ok(None)
        }
    }
}

/// The row ordinals a diagnostic query returns; a check that cannot run is left
/// to bisection.
pub(super) async fn checked_query(conn: &mut Conn, d: Dialect, sql: &str) -> Result<Vec<usize>, DbError> {
    ordinals(checked_rows(conn, d, sql).await?.unwrap_or_default())
}
