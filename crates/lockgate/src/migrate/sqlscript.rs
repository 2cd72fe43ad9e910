//! Runs one `.sql` script of a version inside the version's transaction: statement
//! by statement (so that an error names the statement and the line it starts on),
//! with the rows it changes in the tables its statements name recorded as the
//! version's row images (so a rollback compares against the version's state at its
//! commit and puts them back), and the session settings the writer relies on put
//! back after it (so a script's `SET sql_mode = ''` cannot make a later file of the
//! run truncate silently).

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
    if capture.is_some() {
        let mut seen: Vec<String> = Vec::new();
        for s in &statements {
            let Effect::Tables(names) = sqltext::effect(conn.engine(), &s.text) else {
                continue;
            };
            for name in names {
                // A table the script creates, or names wrongly, has nothing to copy:
                // the statement itself then says what is wrong.
                let Some(table) = conn.lookup_table(&name).await? else {
                    continue;
                };
                let id = table.name.to_string();
                if seen.contains(&id) || !lockgate_db::writer::can_capture(&table) {
                    continue;
                }
                seen.push(id);
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
