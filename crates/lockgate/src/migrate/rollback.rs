//! `rollback --to V`: puts back every row that the versions after V inserted,
//! updated or deleted, from the row images those versions recorded, in one
//! transaction, and sets the module's version to V.
//!
//! For each row the images give two things: the row as it was before the first
//! version after V touched it (or "absent"), and what the last of them left (the
//! columns it set, or "deleted"). A row whose current state is not what the last
//! version left was changed since by someone else: the rollback lists such rows and
//! stops, unless told to `overwrite` them. What scripts did cannot be undone from
//! images: a rollback across a version that ran scripts is refused unless told to
//! ignore them. Schema changes stay (tables created and columns added are kept).
//!
//! The images hold values read from the tables, so they are typed as values a
//! column holds (`Kind::parse_stored_json`), not as writes: a PostgreSQL
//! `character(n)` key recorded with its padding by an earlier Lockgate is the key
//! read now without it, and a MariaDB ENUM's `''` (what a lenient session stores
//! for an unknown label) is a value to put back, not one to refuse.

use super::MigrateError;
use lockgate_bundle::Version;
use lockgate_core::{Batch, Row, Table, Value};
use lockgate_db::ledger::{Holder, JobLock, Ledger};
use lockgate_db::versions::{self, Fingerprint, LogEntry};
use lockgate_db::writer::{self, BatchSource, OnError, SourceError, WriteConfig, WriteError, WriteMode};
use lockgate_db::{Conn, DbUrl};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What to roll back.
#[derive(Clone, Debug)]
pub struct RollbackOptions {
    /// The module.
    pub module: String,
    /// The version to return to (`0.0.0`: before the first).
    pub to: Version,
    /// Put rows back even if they were changed since the migration.
    pub overwrite: bool,
    /// Roll back across versions that ran scripts (their effects stay).
    pub ignore_scripts: bool,
    /// Report what would be done and change nothing.
    pub dry_run: bool,
    /// How long to wait for a migrate of the same module, and then for other
    /// commands writing the tables it puts back.
    pub lock_timeout: Duration,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        RollbackOptions {
            module: "./".into(),
            to: Version::new(0, 0, 0),
            overwrite: false,
            ignore_scripts: false,
            dry_run: false,
            lock_timeout: Duration::from_secs(600),
        }
    }
}

/// A row changed since the migration that wrote it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Conflict {
    /// The table.
    pub table: String,
    /// The row's key.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// What the migration left (null: it deleted the row).
    pub expected: Option<serde_json::Map<String, serde_json::Value>>,
    /// What is there now (null: the row is gone).
    pub found: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `--json` document of `lockgate rollback`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RollbackReport {
    /// The module.
    pub module: String,
    /// Its version before.
    pub from_version: Option<String>,
    /// Its version after (when committed).
    pub to_version: String,
    /// The versions undone, newest first.
    pub versions: Vec<String>,
    /// Rows deleted (the versions inserted them).
    pub deleted: u64,
    /// Rows put back as they were (updated or re-inserted).
    pub restored: u64,
    /// Rows changed since the migration.
    pub conflicts: Vec<Conflict>,
    /// Scripts whose effects stay.
    pub scripts_not_undone: Vec<String>,
    /// Whether the rollback was committed.
    pub committed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// What went wrong around the rollback without changing it: its log entry or
    /// the release of its lock could not be written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RollbackReport {
    /// ARCHITECTURE.md's exit code: 4 when stopped on conflicts.
    pub fn exit_code(&self) -> i32 {
        if !self.conflicts.is_empty() && !self.committed && !self.dry_run {
            4
        } else {
            0
        }
    }
}

/// The net effect on one row of the versions undone.
struct Net {
    key: serde_json::Map<String, serde_json::Value>,
    /// The row before the first of them touched it (None: absent).
    before: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the last of them left (None: deleted).
    after: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the last of them left, when it inserted the row: a fingerprint.
    after_print: Option<Fingerprint>,
}

/// Rolls the module back to `opts.to`.
pub async fn rollback(url: &DbUrl, opts: &RollbackOptions) -> Result<RollbackReport, MigrateError> {
    let mut ledger = Ledger::open(url).await?;
    let job = format!("migrate:{}", opts.module);
    let holder = Holder::current(format!("lockgate rollback --to {}", opts.to));
    let lock = ledger.lock(&job, &holder, opts.lock_timeout).await?;
    let mut conn = Conn::connect(url).await?;
    let mut table_locks = Vec::new();
    let mut result = run(&mut conn, opts, (&mut ledger, &holder, &mut table_locks)).await;
    if let Ok(r) = &mut result {
        if r.committed {
            let entry = LogEntry {
                id: 0,
                run_id: None,
                log_type: "INFO".into(),
                module: opts.module.clone(),
                version: Some(opts.to.to_string()),
                table: None,
                tenant: None,
                file: None,
                logged_at: String::new(),
                message: serde_json::json!({
                    "message": format!("Rolled back to {}: undid {}", opts.to, r.versions.join(", ")),
                    "deleted": r.deleted,
                    "restored": r.restored,
                }),
            };
            if let Err(e) = versions::write_logs(&mut conn, &[entry]).await {
                r.warnings.push(format!(
                    "the rollback is committed, but its entry in lockgate_migration_log could not be written ({e})"
                ));
            }
        }
    }
    if let Err(e) = ledger.unlock_all(table_locks).await {
        let w = format!("the table locks could not be given back ({e}); they are freed when this process exits");
        match &mut result {
            Ok(r) => r.warnings.push(w),
            Err(_) => tracing::warn!("{w}"),
        }
    }
    if let Err(e) = ledger.unlock(lock).await {
        let w = format!("the migration lock could not be given back ({e}); it is freed when this process exits");
        match &mut result {
            Ok(r) => r.warnings.push(w),
            Err(_) => tracing::warn!("{w}"),
        }
    }
    result
}

/// The ledger, who holds its locks, and the table locks taken (to give back).
type Locking<'a> = (&'a mut Ledger, &'a Holder, &'a mut Vec<JobLock>);

async fn run(conn: &mut Conn, opts: &RollbackOptions, locking: Locking<'_>) -> Result<RollbackReport, MigrateError> {
    let from_version = versions::module_version(conn, &opts.module).await?;
    let mut applied = versions::applied_versions(conn, &opts.module).await?;
    applied.retain(|a| a.version.parse::<Version>().is_ok_and(|v| v > opts.to));
    applied.sort_by_key(|a| a.version.parse::<Version>().ok());
    if applied.is_empty() {
        // Nothing after V: the module is already there, as `migrate` with nothing
        // pending (exit 0, nothing changed).
        return Ok(RollbackReport {
            module: opts.module.clone(),
            to_version: from_version.clone().unwrap_or_else(|| opts.to.to_string()),
            from_version,
            versions: Vec::new(),
            deleted: 0,
            restored: 0,
            conflicts: Vec::new(),
            scripts_not_undone: Vec::new(),
            committed: false,
            dry_run: opts.dry_run,
            warnings: Vec::new(),
        });
    }
    let undo: Vec<String> = applied.iter().map(|a| a.version.clone()).collect();
    let scripts: Vec<String> = applied
        .iter()
        .flat_map(|a| a.scripts.iter().map(move |s| format!("{}/{s}", a.version)))
        .collect();
    if !scripts.is_empty() && !opts.ignore_scripts {
        return Err(MigrateError::Input(format!(
            "the versions to undo made changes lockgate cannot put back ({}): undo those by hand, then pass --ignore-scripts to put back the rest",
            scripts.join(", ")
        )));
    }
    let images = versions::read_images(conn, &opts.module, &undo).await?;
    // Net effect per (table, key), in the order rows were first touched.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut net: HashMap<(String, String), Net> = HashMap::new();
    for s in images {
        let img = s.image;
        let id = (
            img.table.clone(),
            serde_json::Value::Object(img.key.clone()).to_string(),
        );
        let after = match img.op {
            'd' | 'i' => None,
            _ => {
                // The columns the write set, over what the row held before.
                let mut a = img.before.clone().unwrap_or_default();
                a.extend(img.after.clone().unwrap_or_default());
                Some(a)
            }
        };
        let print = img.after_fingerprint.clone();
        match net.get_mut(&id) {
            Some(n) => {
                n.after = after;
                n.after_print = print;
            }
            None => {
                order.push(id.clone());
                net.insert(
                    id,
                    Net {
                        key: img.key,
                        before: img.before,
                        after,
                        after_print: print,
                    },
                );
            }
        }
    }
    let mut report = RollbackReport {
        module: opts.module.clone(),
        from_version,
        to_version: opts.to.to_string(),
        versions: undo.iter().rev().cloned().collect(),
        deleted: 0,
        restored: 0,
        conflicts: Vec::new(),
        scripts_not_undone: scripts,
        committed: false,
        dry_run: opts.dry_run,
        warnings: Vec::new(),
    };
    let mut by_table: BTreeMap<String, Vec<&Net>> = BTreeMap::new();
    for id in &order {
        by_table.entry(id.0.clone()).or_default().push(&net[id]);
    }
    let mut tables: HashMap<String, Table> = HashMap::new();
    for name in by_table.keys() {
        let t = conn
            .find_table(name)
            .await
            .map_err(|e| MigrateError::Input(format!("cannot roll back table {name}: {e}")))?;
        tables.insert(name.clone(), t);
    }
    // The tables it puts back, under the lock load, migrate and transfer run take,
    // before comparing them with what the versions left.
    let (ledger, holder, held) = locking;
    let mut jobs = Vec::new();
    for t in tables.values() {
        jobs.push(ledger.table_job(&t.name).await?);
    }
    *held = ledger.lock_all(&jobs, holder, opts.lock_timeout).await?;
    // Described again under the lock: a table changed while this waited is seen.
    for (name, t) in tables.iter_mut() {
        *t = conn
            .find_table(name)
            .await
            .map_err(|e| MigrateError::Input(format!("cannot roll back table {name}: {e}")))?;
    }
    // Compare what is there with what the migration left.
    for (name, rows) in &by_table {
        let table = &tables[name];
        let current = current_rows(conn, table, rows).await?;
        for n in rows {
            let found = current.get(&key_string(table, &n.key)).cloned();
            let same = match &n.after_print {
                Some(print) => found.as_ref().is_some_and(|f| fingerprint_of(table, print, f)),
                None => same_state(table, n.after.as_ref(), found.as_ref()),
            };
            if !same {
                report.conflicts.push(Conflict {
                    table: name.clone(),
                    key: n.key.clone(),
                    expected: n.after.clone().or_else(|| {
                        n.after_print.as_ref().map(|_| {
                            let mut m = serde_json::Map::new();
                            m.insert("inserted_by".into(), serde_json::json!(n_version(&undo)));
                            m
                        })
                    }),
                    found,
                });
            }
        }
    }
    // What would be done (the counts a stopped or dry run reports).
    report.deleted = net.values().filter(|n| n.before.is_none()).count() as u64;
    report.restored = net.len() as u64 - report.deleted;
    if !report.conflicts.is_empty() && !opts.overwrite {
        return Ok(report);
    }
    report.deleted = 0;
    report.restored = 0;
    conn.begin().await?;
    let applied = async {
        // Rows the versions inserted go first, children before parents; then rows
        // come back, parents before children, so foreign keys hold at every step.
        let order = lockgate_core::table::parents_first(tables.values().cloned().collect());
        for table in order.iter().rev() {
            report.deleted += delete_inserted(conn, table, &by_table[&table.name.to_string()]).await?;
        }
        for table in &order {
            report.restored += put_back(conn, table, &by_table[&table.name.to_string()]).await?;
        }
        versions::forget_versions(conn, &opts.module, &undo).await?;
        versions::set_module_version(conn, &opts.module, &opts.to.to_string()).await?;
        Ok::<(), MigrateError>(())
    }
    .await;
    match applied {
        Ok(()) if !opts.dry_run => {
            conn.commit().await?;
            report.committed = true;
        }
        Ok(()) => {
            conn.rollback().await?;
        }
        Err(e) => {
            let _ = conn.rollback().await;
            return Err(e);
        }
    }
    Ok(report)
}

/// A key as text, the same for an image's JSON and a row read from the table.
fn key_string(table: &Table, key: &serde_json::Map<String, serde_json::Value>) -> String {
    key.iter()
        .map(|(c, j)| match table.column(c) {
            Some(col) => col
                .kind
                .parse_stored_json(j)
                .map_or_else(|_| j.to_string(), |v| v.to_string()),
            None => j.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Which versions inserted a row (for a conflict's message).
fn n_version(undo: &[String]) -> String {
    format!("one of {}", undo.join(", "))
}

/// Whether a row found (as JSON) still has the fingerprint its insert left.
fn fingerprint_of(table: &Table, print: &Fingerprint, found: &serde_json::Map<String, serde_json::Value>) -> bool {
    let values: Vec<Value> = print
        .columns
        .iter()
        .map(|c| {
            let col = table.column(c);
            let j = col.and_then(|col| found.get(&col.name)).cloned().unwrap_or_default();
            col.and_then(|col| col.kind.parse_stored_json(&j).ok())
                .unwrap_or(Value::Null)
        })
        .collect();
    lockgate_core::fingerprint(&values) == print.value
}

/// Whether the row found is what the migration left (compared on the columns it
/// knew; a column added since is not the migration's).
fn same_state(
    table: &Table,
    expected: Option<&serde_json::Map<String, serde_json::Value>>,
    found: Option<&serde_json::Map<String, serde_json::Value>>,
) -> bool {
    match (expected, found) {
        (None, None) => true,
        (Some(e), Some(f)) => e.iter().all(|(c, want)| {
            let Some(col) = table.column(c) else { return true };
            let got = f.get(&col.name).cloned().unwrap_or_default();
            match (col.kind.parse_stored_json(want), col.kind.parse_stored_json(&got)) {
                (Ok(a), Ok(b)) => a == b,
                _ => *want == got,
            }
        }),
        _ => false,
    }
}

/// The current rows of the images' keys, by key string, as JSON.
async fn current_rows(
    conn: &mut Conn,
    table: &Table,
    rows: &[&Net],
) -> Result<HashMap<String, serde_json::Map<String, serde_json::Value>>, MigrateError> {
    let all: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let mut out = HashMap::new();
    for chunk in rows.chunks(300) {
        let keys = key_values(table, chunk.iter().map(|n| &n.key))?;
        for row in lockgate_db::rows::select_by_keys(conn, table, &keys).await? {
            let obj: serde_json::Map<String, serde_json::Value> =
                all.iter().cloned().zip(row.iter().map(Value::to_json)).collect();
            let key: serde_json::Map<String, serde_json::Value> = chunk[0]
                .key
                .keys()
                .filter_map(|k| Some((k.clone(), obj.get(&table.column(k)?.name)?.clone())))
                .collect();
            out.insert(key_string(table, &key), obj);
        }
    }
    Ok(out)
}

/// Keys given as JSON, as the table's columns and typed values.
fn key_values<'a>(
    table: &Table,
    keys: impl Iterator<Item = &'a serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<lockgate_db::rows::KeyValues>, MigrateError> {
    let mut out = Vec::new();
    for key in keys {
        let mut cols = Vec::new();
        for (c, j) in key {
            let col = table.column(c).ok_or_else(|| {
                MigrateError::Input(format!(
                    "cannot roll back table {}: its key column {c:?} no longer exists",
                    table.name
                ))
            })?;
            let v = col.kind.parse_stored_json(j).map_err(|e| {
                MigrateError::Input(format!("cannot roll back table {}: key {c} = {j}: {e}", table.name))
            })?;
            cols.push((col.name.clone(), v));
        }
        out.push(cols);
    }
    Ok(out)
}

/// Deletes the rows the versions inserted (that were not there before).
async fn delete_inserted(conn: &mut Conn, table: &Table, rows: &[&Net]) -> Result<u64, MigrateError> {
    let mut deleted = 0;
    let gone: Vec<&&Net> = rows.iter().filter(|n| n.before.is_none()).collect();
    for chunk in gone.chunks(300) {
        let keys = key_values(table, chunk.iter().map(|n| &n.key))?;
        deleted += lockgate_db::rows::delete_by_keys(conn, table, &keys)
            .await
            .map_err(|e| {
                MigrateError::Input(format!(
                    "cannot delete the rows the migration inserted into {}: {e}; rows added since refer to them: delete or re-point those first",
                    table.name
                ))
            })?;
    }
    Ok(deleted)
}

/// Puts back the rows the versions updated or deleted, as they were before.
async fn put_back(conn: &mut Conn, table: &Table, rows: &[&Net]) -> Result<u64, MigrateError> {
    let back: Vec<&&Net> = rows.iter().filter(|n| n.before.is_some()).collect();
    if back.is_empty() {
        return Ok(0);
    }
    // Rows go back through the writer (upsert by the images' key) in batches of
    // the columns that still exist.
    let key: Vec<String> = back[0]
        .key
        .keys()
        .filter_map(|k| table.column(k).map(|c| c.name.clone()))
        .collect();
    let mut batches: BTreeMap<Vec<String>, Batch> = BTreeMap::new();
    // Rows whose image holds MariaDB's ENUM error value `''`: the key, and the
    // columns to set to it once the row is back (see `put_back_enum_blanks`).
    let mut blanks: Vec<(lockgate_db::rows::KeyValues, Vec<String>)> = Vec::new();
    let mut keys = key_values(table, back.iter().map(|n| &n.key))?.into_iter();
    for (i, n) in back.iter().enumerate() {
        let before = n.before.as_ref().expect("filtered above");
        let row_key = keys.next().expect("one key per row");
        let mut cols = Vec::new();
        let mut values = Vec::new();
        let mut blank_cols = Vec::new();
        for (c, j) in before {
            let Some(col) = table.column(c) else { continue };
            let cannot = |e: lockgate_core::ConvertError| {
                MigrateError::Input(format!(
                    "cannot put back a row of {} (column {c} = {j}): {e}",
                    table.name
                ))
            };
            // The value the column held, then held to the write rules as the writer
            // would (the batch goes as checked): a value the column holds passes
            // them, but for an ENUM's `''`, which a strict session cannot write.
            let held = col.kind.parse_stored_json(j).map_err(cannot)?;
            let v = match col.kind.check(held.clone()) {
                Ok(v) => v,
                Err(e) => match enum_placeholder(&col.kind, &held) {
                    // A key column cannot take the placeholder: the upsert finds
                    // rows by their key, so it would write the placeholder's row.
                    Some(_) if key.contains(&col.name) => {
                        return Err(MigrateError::Input(format!(
                            "cannot put back a row of {}: its key column {c} holds MariaDB's ENUM error value ''                              (written by a session that was not strict), which a rollback cannot write into a key;                              nothing was rolled back: put that row back by hand, then roll back with --ignore-scripts                              or leave the version applied",
                            table.name
                        )))
                    }
                    Some(first) if conn.engine() == lockgate_db::Engine::Mysql => {
                        blank_cols.push(col.name.clone());
                        first
                    }
                    _ => return Err(cannot(e)),
                },
            };
            cols.push(col.name.clone());
            values.push(v);
        }
        if !blank_cols.is_empty() {
            blanks.push((row_key, blank_cols));
        }
        let batch = batches.entry(cols.clone()).or_insert_with(|| {
            let mut b = Batch::new(Arc::new(cols));
            b.checked = true;
            b
        });
        batch.push(Row {
            line: i as u64 + 1,
            number: 0,
            values,
        });
    }
    let source = MemorySource(batches.into_values().collect());
    let cfg = WriteConfig {
        mode: WriteMode::Upsert,
        key,
        on_error: OnError::Rollback,
        nested: true,
        ..WriteConfig::default()
    };
    let report = writer::write(conn, table, &cfg, &source, None)
        .await
        .map_err(|e| match e {
            WriteError::Db(e) => MigrateError::Db(e),
            WriteError::Source(e) => MigrateError::Source(e.0),
        })?;
    if let Some(f) = report.failed.first() {
        return Err(MigrateError::Script(format!(
            "a row of {} could not be put back ({f}); nothing was rolled back",
            table.name
        )));
    }
    put_back_enum_blanks(conn, table, &blanks).await?;
    Ok(report.inserted + report.updated + report.unchanged)
}

/// For a value a column held that a write may not give it: MariaDB's ENUM error
/// value `''` (stored for an unknown label by a session that was not strict), the
/// ENUM's first label, which the row is put back with before it gets its `''`.
fn enum_placeholder(kind: &lockgate_core::Kind, held: &Value) -> Option<Value> {
    use lockgate_core::{Kind, TextForm};
    match (kind, held) {
        (
            Kind::Text {
                form: TextForm::Enum(labels),
                ..
            },
            Value::Text(s),
        ) if s.is_empty() && labels.position("").is_none() => labels.first().map(|l| Value::Text(l.clone())),
        _ => None,
    }
}

/// Gives back the ENUM error value `''` to the rows put back with a placeholder
/// (`enum_placeholder`). Lockgate's strict session refuses to write `''` (as it
/// refuses `0`); `UPDATE IGNORE` stores it, as the lenient session that wrote it did.
/// IGNORE would also skip a row whose update broke a unique key, a foreign key or a
/// CHECK (and the server counts the rows a statement matched, not those it changed),
/// so each row is read again: one that does not hold `''` fails the rollback (and
/// its transaction, with everything put back, is rolled back).
async fn put_back_enum_blanks(
    conn: &mut Conn,
    table: &Table,
    blanks: &[(lockgate_db::rows::KeyValues, Vec<String>)],
) -> Result<(), MigrateError> {
    let d = conn.dialect();
    for (key, cols) in blanks {
        let set: Vec<String> = cols.iter().map(|c| format!("{} = ''", d.quote(c))).collect();
        let cond: Vec<String> = key.iter().map(|(c, _)| format!("{} = ?", d.quote(c))).collect();
        let params: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
        let name = d.table(&table.name);
        conn.execute(
            &format!(
                "UPDATE IGNORE {name} SET {} WHERE {}",
                set.join(", "),
                cond.join(" AND ")
            ),
            &params,
        )
        .await?;
        let held = conn
            .query(
                &format!(
                    "SELECT 1 FROM {name} WHERE {} AND {}",
                    cond.join(" AND "),
                    set.join(" AND ")
                ),
                &params,
                None,
            )
            .await?;
        if held.len() != 1 {
            let shown: Vec<String> = key.iter().map(|(c, v)| format!("{c}={v}")).collect();
            return Err(MigrateError::Script(format!(
                "a row of {} ({}) could not be given back its ENUM value '' in {} (the server refused it: \
                 a unique key, foreign key or CHECK constraint); nothing was rolled back",
                table.name,
                shown.join(", "),
                cols.join(", ")
            )));
        }
    }
    Ok(())
}

/// Batches held in memory (the rows a rollback puts back).
struct MemorySource(Vec<Batch>);

impl BatchSource for MemorySource {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(self.0.len().max(1));
        for b in &self.0 {
            let _ = tx.try_send(Ok(b.clone()));
        }
        rx
    }
}
