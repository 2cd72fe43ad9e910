//! `load`: data files (CSV, NDJSON, JSON arrays, optionally .gz/.zst) into one table,
//! as one unit: all of it or, with `--on-error skip`, all of its good rows.
//!
//! The run is recorded in the ledger (`lockgate_runs`, as job `load:<table>`) and
//! holds the table's lock (`table:<table>`, shared with `migrate` and `transfer run`),
//! so two commands writing the same table never interleave.

use crate::source::{map_columns, FileSource};
use lockgate_bundle::{open_records, Format};
use lockgate_core::{RowError, Table};
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::writer::{self, OnError, Progress, WriteConfig, WriteError, WriteMode};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to load and how.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The target table (`schema.table` on PostgreSQL).
    pub table: String,
    /// The files, loaded in order as one unit.
    pub files: Vec<PathBuf>,
    /// The format, else from each file's extension.
    pub format: Option<Format>,
    /// Write mode.
    pub mode: WriteMode,
    /// Key columns for the key modes (default: the primary key).
    pub key: Vec<String>,
    /// Error policy.
    pub on_error: OnError,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Bytes per batch (estimated), whichever cap comes first.
    pub batch_bytes: usize,
    /// Report what would happen and keep nothing.
    pub dry_run: bool,
    /// How long to wait for another command writing the same table.
    pub lock_timeout: Duration,
    /// For `sync`: which rows may be deleted (SQL, as written).
    pub sync_where: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            table: String::new(),
            files: Vec::new(),
            format: None,
            mode: WriteMode::Insert,
            key: Vec::new(),
            on_error: OnError::Rollback,
            batch_rows: 10_000,
            batch_bytes: 8 * 1024 * 1024,
            dry_run: false,
            lock_timeout: Duration::from_secs(30),
            sync_where: None,
        }
    }
}

/// What a load did (the `--json` document of `lockgate load`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    /// Format version of this document.
    pub version: u32,
    /// The table, as resolved.
    pub table: String,
    /// The files.
    pub files: Vec<String>,
    /// The mode.
    pub mode: WriteMode,
    /// The policy.
    pub on_error: OnError,
    /// Rows read.
    pub rows_read: u64,
    /// Rows inserted (committed, or that would have been).
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows matched by key whose values were already those given.
    pub unchanged: u64,
    /// Rows deleted by sync.
    pub deleted: u64,
    /// Rows skipped because they failed (with `--on-error skip`).
    pub skipped: u64,
    /// The failing rows.
    pub failed: Vec<RowError>,
    /// Whether the changes were kept.
    pub committed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Attempts (more than 1 after transient errors).
    pub attempts: u32,
    /// The ledger run id.
    pub run_id: i64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// What went wrong around the load without changing its outcome: its run's end
    /// could not be recorded in `lockgate_runs`, its lock not given back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl LoadReport {
    /// ARCHITECTURE.md's exit code: 0 success (also skip), 3 row errors rolled back.
    pub fn exit_code(&self) -> i32 {
        // With skip, a run that kept (or would keep) the good rows succeeded.
        let kept_good_rows = self.committed || (self.dry_run && self.on_error == OnError::Skip);
        if self.failed.is_empty() || kept_good_rows {
            0
        } else {
            3
        }
    }
}

/// Why a load failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad input found before writing (exit 2).
    #[error("{0}")]
    Input(String),
    /// The database (exit 1, or 2 for invalid names).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A malformed file found while loading: everything was rolled back (exit 2).
    #[error("{0}; nothing was loaded")]
    Source(String),
}

impl LoadError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Input(_) | LoadError::Source(_) => 2,
            LoadError::Db(e) => e.exit_code(),
        }
    }
}

/// The key columns as the table spells them, after opening every file once: a key
/// that is not a column, missing files, unknown formats, empty files and CSV headers
/// naming unknown columns fail here, before anything is written.
fn check_input(table: &Table, opts: &LoadOptions) -> Result<Vec<String>, LoadError> {
    let key: Vec<String> = opts
        .key
        .iter()
        .map(|k| {
            table.column(k).map(|c| c.name.clone()).ok_or_else(|| {
                LoadError::Input(format!(
                    "--key {k:?} is not a column of table {} (its columns: {})",
                    table.name,
                    column_list(table)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    // Open every file once before writing: missing files, unknown formats, empty
    // files and CSV headers naming unknown columns fail here, with nothing written.
    for f in &opts.files {
        let reader = open_records(f, opts.format).map_err(|e| LoadError::Input(e.to_string()))?;
        map_columns(&f.display().to_string(), reader.columns(), table).map_err(|e| LoadError::Input(e.0))?;
    }
    Ok(key)
}

/// Loads files into a table. Progress goes to `progress` when given.
pub async fn load(
    url: &DbUrl,
    opts: &LoadOptions,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    if opts.files.is_empty() {
        return Err(LoadError::Input("no files given: name one or more data files".into()));
    }
    let mut conn = Conn::connect(url).await?;
    // In every mode: two loads into one table never interleave, and an insert must
    // not slip between a key mode's look at the table and its write. The table is
    // described under the lock: a migration that changed it while this load waited
    // is seen.
    let named = conn.find_table(&opts.table).await?.name;
    let holder = Holder::current(format!("lockgate load {named}"));
    let mut ledger = Ledger::open(url).await?;
    let lock_job = ledger.table_job(&named).await?;
    let lock = ledger.lock(&lock_job, &holder, opts.lock_timeout).await?;
    let table = match conn.find_table(&opts.table).await {
        Ok(t) => t,
        Err(e) => {
            let _ = ledger.unlock(lock).await;
            return Err(e.into());
        }
    };
    if table.name != named {
        let _ = ledger.unlock(lock).await;
        return Err(LoadError::Input(format!(
            "table {named} was renamed or dropped while this load waited for its lock: run the load again"
        )));
    }
    let key = match check_input(&table, opts) {
        Ok(key) => key,
        Err(e) => {
            let _ = ledger.unlock(lock).await;
            return Err(e);
        }
    };
    let job = format!("load:{}", table.name);
    let run_id = ledger.start_run("load", &job, &holder).await?;

    let source = FileSource {
        files: opts.files.clone(),
        format: opts.format,
        table: table.clone(),
        batch_rows: opts.batch_rows,
        batch_bytes: opts.batch_bytes,
        key: if key.is_empty() {
            table.primary_key.clone()
        } else {
            key.clone()
        },
        constants: Vec::new(),
        validation: None,
        absent_when_null: Vec::new(),
    };
    let cfg = WriteConfig {
        mode: opts.mode,
        key,
        on_error: opts.on_error,
        sync_scope: opts.sync_where.clone(),
        dry_run: opts.dry_run,
        reconnect: Some(url.clone()),
        ..WriteConfig::default()
    };
    // Forward progress to the caller and, where a second writer is allowed, to the
    // ledger so that other processes (the dashboard) see it.
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let side_progress = ledger.engine() != Engine::Sqlite;
    let forward = async {
        let mut last = Instant::now();
        while let Some(p) = prx.recv().await {
            if let Some(out) = &progress {
                let _ = out.send(p.clone());
            }
            if side_progress && last.elapsed() > Duration::from_secs(1) {
                last = Instant::now();
                let _ = ledger.progress(run_id, p.rows, None).await;
            }
        }
    };
    let work = async {
        let r = writer::write(&mut conn, &table, &cfg, &source, Some(&ptx)).await;
        drop(ptx);
        r
    };
    let (result, ()) = tokio::join!(work, forward);

    let (status, outcome, error) = match &result {
        Ok(r) if r.failed.is_empty() || (r.committed && opts.on_error == OnError::Skip) => {
            (RunStatus::Succeeded, serde_json::to_value(r).unwrap_or_default(), None)
        }
        Ok(r) => (
            RunStatus::Failed,
            serde_json::to_value(r).unwrap_or_default(),
            Some(format!("{} rows failed; nothing was kept", r.failed.len())),
        ),
        Err(e) => (RunStatus::Failed, serde_json::Value::Null, Some(e.to_string())),
    };
    let done = result.as_ref().map(|r| r.rows_read).unwrap_or(0);
    // The data's fate is decided; what the ledger fails to record is said, not lost.
    let mut warnings = Vec::new();
    if let Err(e) = ledger
        .finish_run(run_id, status, done, &outcome, error.as_deref())
        .await
    {
        warnings.push(format!(
            "the end of run {run_id} could not be recorded in lockgate_runs ({e}); it reads as abandoned once \
             this process has exited"
        ));
    }
    if let Err(e) = ledger.unlock(lock).await {
        warnings.push(format!(
            "the lock of {job} could not be given back ({e}); it is freed when this process exits"
        ));
    }

    let report = result.map_err(|e| match e {
        WriteError::Db(e) => LoadError::Db(e),
        WriteError::Source(e) => LoadError::Source(e.0),
    })?;
    Ok(LoadReport {
        version: 1,
        table: table.name.to_string(),
        files: opts.files.iter().map(|f| f.display().to_string()).collect(),
        mode: opts.mode,
        on_error: opts.on_error,
        rows_read: report.rows_read,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted: report.deleted,
        skipped: if report.committed {
            report.failed.len() as u64
        } else {
            0
        },
        failed: report.failed,
        committed: report.committed,
        dry_run: opts.dry_run,
        attempts: report.attempts,
        run_id,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}

fn column_list(table: &lockgate_core::Table) -> String {
    table
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
