//! Runs one `.sql` script of a version inside the version's transaction: statement
//! by statement (so that an error names the statement and the line it starts on),
//! with the rows it changes in the tables its statements name recorded as the
//! version's row images (so a rollback compares against the version's state at its
//! commit and puts them back), and the session settings the writer relies on put
//! back after it (so a script's `SET sql_mode = ''` cannot make a later file of the
//! run truncate silently).
//!
//! A statement whose target Lockgate cannot read from its text (`WITH … UPDATE`, a
//! multi-table UPDATE, `CREATE TRIGGER`…) has every existing table it names copied:
//! over-copying is harmless, since only differences are recorded. What cannot be
//! recorded at all (a `CALL` or `DO`, whose effects are not in its text, or a table
//! with no primary key and no unique key of NOT NULL columns) is said in the step's note, and the script is then
//! one a rollback must be told to leave (`--ignore-scripts`).

use super::MigrateError;
use lockgate_db::sqltext::{self, Effect};
use lockgate_db::{rowdiff, session, Conn, DbError};
use std::path::Path;

/// What running a script did besides its statements.
#[derive(Debug, Default)]
pub(crate) struct SqlOutcome {
    /// Tables whose changed rows were recorded, with the counts.
    pub recorded: Vec<(String, rowdiff::Changes)>,
    /// Session settings the script changed and Lockgate put back.
    pub restored: Vec<String>,
    /// Why some of what the script changed could not be recorded (empty: all was).
    pub unrecorded: Vec<String>,
}

impl SqlOutcome {
    /// The step's note, when there is something to say.
    pub fn note(&self) -> Option<String> {
        let mut lines = Vec::new();
        for (t, c) in &self.recorded {
            if *c != rowdiff::Changes::default() {
                lines.push(format!(
                    "{t}: {} updated, {} deleted, {} inserted (recorded for rollback)",
                    c.updated, c.deleted, c.inserted
                ));
            }
        }
        for u in &self.unrecorded {
            lines.push(format!(
                "{u}: not recorded, so a rollback cannot put it back (it will need --ignore-scripts)"
            ));
        }
        if !self.restored.is_empty() {
            lines.push(format!(
                "it changed the session setting(s) {}; lockgate put them back after it (they hold for the script's own statements only)",
                self.restored.join(", ")
            ));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Runs the script at `path` (`place` says where it is listed, for messages). With
/// `capture` (module, version), the rows it changes in the tables its statements
/// name are recorded as that version's images.
pub(crate) async fn run(
    conn: &mut Conn,
    path: &Path,
    place: &str,
    capture: Option<(&str, &str)>,
) -> Result<SqlOutcome, MigrateError> {
    let sql = std::fs::read_to_string(path)
        .map_err(|e| MigrateError::Input(format!("{}: {e}: check that the file is readable", path.display())))?;
    let statements = sqltext::statements(conn.engine(), &sql);
    let mut copies = Vec::new();
    let mut unrecorded: Vec<String> = Vec::new();
    if capture.is_some() {
        let mut seen: Vec<String> = Vec::new();
        let mut listed: Option<Vec<lockgate_core::TableName>> = None;
        for s in &statements {
            let head = s.head.split_whitespace().next().unwrap_or("");
            let (names, named) = match sqltext::effect(conn.engine(), &s.text) {
                Effect::Nothing => continue,
                Effect::Tables(names) => (names, true),
                Effect::Unknown if matches!(head, "CALL" | "DO" | "EXEC" | "EXECUTE") => {
                    unrecorded.push(format!(
                        "statement {} ({} …, line {}) changes what its text does not name",
                        s.number, s.head, s.line
                    ));
                    continue;
                }
                // Schema statements change definitions, not rows Lockgate records; a
                // trigger, rule or routine they create may, and its body names the
                // tables.
                Effect::Unknown
                    if matches!(head, "CREATE" | "ALTER" | "DROP" | "RENAME")
                        && !defines_code(conn.engine(), &s.text) =>
                {
                    continue
                }
                Effect::Unknown => (sqltext::names(conn.engine(), &s.text), false),
            };
            for name in names {
                if !named {
                    // Most names of an unclassified statement are keywords and
                    // columns: only those a table carries are looked up.
                    if listed.is_none() {
                        listed = Some(conn.list_tables().await?);
                    }
                    let last = name.rsplit('.').next().unwrap_or(&name);
                    if !listed.iter().flatten().any(|t| t.name.eq_ignore_ascii_case(last)) {
                        continue;
                    }
                }
                // A table the script creates, or names wrongly, has nothing to copy:
                // the statement itself then says what is wrong.
                let Some(table) = conn.lookup_table(&name).await? else {
                    continue;
                };
                let id = table.name.to_string();
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id.clone());
                if !lockgate_db::writer::can_capture(&table) {
                    unrecorded.push(format!(
                        "what statement {} (line {}) does to table {id}, which has no primary key or unique key of NOT NULL columns,",
                        s.number, s.line
                    ));
                    continue;
                }
                copies.push(rowdiff::take(conn, &table, copies.len() + 1).await?);
            }
        }
    }
    let settings = session::read(conn).await?;
    for s in &statements {
        if let Err(e) = conn.batch(&s.text).await {
            for c in copies {
                // The version's transaction is rolled back; a copy left on MariaDB
                // (whose temporary tables survive it) is dropped before the next.
                let _ = rowdiff::discard(conn, c).await;
            }
            let at = format!(
                "{}:{}: statement {} ({} …) of {place}",
                path.display(),
                s.line,
                s.number,
                s.head
            );
            return Err(MigrateError::Db(match e {
                DbError::Engine { error, .. } => DbError::Engine { context: at, error },
                other => other,
            }));
        }
    }
    let mut out = SqlOutcome {
        restored: session::restore(conn, &settings, &format!("{} ({place})", path.display())).await?,
        unrecorded,
        ..SqlOutcome::default()
    };
    if let Some((module, version)) = capture {
        for c in copies {
            let name = c.table().name.to_string();
            let changes = rowdiff::record(conn, c, module, version).await?;
            out.recorded.push((name, changes));
        }
    }
    Ok(out)
}

/// Whether a `CREATE`/`ALTER` statement defines code that may later change rows: a
/// trigger, rule, function, procedure or event (named among its first words, after
/// `OR REPLACE`, `DEFINER = …` and the like).
fn defines_code(engine: lockgate_db::Engine, text: &str) -> bool {
    sqltext::names(engine, text).iter().take(8).any(|w| {
        ["TRIGGER", "RULE", "FUNCTION", "PROCEDURE", "EVENT"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    })
}
