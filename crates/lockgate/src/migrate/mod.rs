//! `migrate`: versioned data migrations from a `db/` folder of `x.y.z` version
//! folders (oe-migration's layout and meta.json, as-is), or the same layout in a zip.
//!
//! Each pending version is applied in order, as one transaction: its table
//! definitions (`models/` and its `ddl/`), `clearTables`, then its files and scripts
//! in the order meta.json lists them, then its ledger row and the module's new
//! version, all committed together. A version that fails leaves nothing behind and
//! stops the run; the versions before it stay applied. Two exceptions, both said in
//! the docs: a *process* script (`.js`, `.py`, `.sh`, executables) cannot see
//! uncommitted data, so what is listed before it is committed first and the version
//! continues in a new transaction after it (a version interrupted there is recorded
//! as `partial` and re-run from its start); and MariaDB commits DDL implicitly, so
//! there a version's schema changes are applied before its data transaction.
//!
//! Data files go through the foundation's writer (staged, set-based), nested under a
//! savepoint in the version's transaction, capturing the image of every row they
//! change so that [`rollback`] can put it back. Record failures are collected for the
//! whole version and logged (in `lockgate_migration_log`, written after the version's
//! transaction ends so that the log survives its rollback).

mod force;
mod models;
pub mod rollback;
mod script;
mod sqlscript;
pub mod status;
mod upload;

pub use script::process_scripts;
pub use upload::{unpack_zip, Unpacked};

use crate::source::{FileSource, Validation};
use lockgate_bundle::{
    BaseDir, ClearTables, EntryKind, FileEntry, FileMode, Manifest, ModelDef, OnErrorSpec, ScriptKind, Version,
    VersionDir, ZipLimits,
};
use lockgate_core::{RowError, Table, Value};
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::rows;
use lockgate_db::schema::SchemaChange;
use lockgate_db::versions::{self, AppliedVersion, LogEntry, RowImage};
use lockgate_db::writer::{self, Capture, OnError, Progress, WriteConfig, WriteError, WriteMode};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to migrate and how.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// The folder holding the version folders (default `./db`).
    pub dir: PathBuf,
    /// Read the layout from this zip instead of `dir`.
    pub zip: Option<PathBuf>,
    /// The module whose version is tracked (default `./`).
    pub module: String,
    /// Re-apply every version (within `from`/`to`), applied or not.
    pub force: bool,
    /// Apply no version below this one.
    pub from: Option<Version>,
    /// Apply no version above this one.
    pub to: Option<Version>,
    /// Compute what would happen and keep nothing.
    pub dry_run: bool,
    /// The error policy where meta.json sets none.
    pub on_error: OnError,
    /// The tenant column of multi-tenant tables (meta.json's `tenantColumn` wins).
    pub tenant_column: String,
    /// How long a process script may run.
    pub script_timeout: Duration,
    /// How long to wait for another migrate of the same module, and then for other
    /// commands writing the tables it writes.
    pub lock_timeout: Duration,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Bytes per batch.
    pub batch_bytes: usize,
    /// Limits when reading a zip.
    pub zip_limits: ZipLimits,
    /// Whether process scripts may run. `false` refuses a bundle that holds any (see
    /// [`process_scripts`]) before anything is run or written (exit 2): what a server
    /// does with uploads unless told otherwise. `.sql` scripts are not process scripts.
    pub allow_process_scripts: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            dir: PathBuf::from("db"),
            zip: None,
            module: "./".into(),
            force: false,
            from: None,
            to: None,
            dry_run: false,
            on_error: OnError::Rollback,
            tenant_column: "tenant_id".into(),
            script_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(600),
            batch_rows: 10_000,
            batch_bytes: 8 * 1024 * 1024,
            zip_limits: ZipLimits::default(),
            allow_process_scripts: true,
        }
    }
}

/// What happened to a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionStatus {
    /// Applied and recorded.
    Applied,
    /// Failed: nothing of it was kept.
    Failed,
    /// Failed after committing a part (before a process script).
    Partial,
    /// A dry run: what would be applied.
    WouldApply,
}

/// One step of a version: a data file, a script, or clearing a table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// `data`, `sql`, `script`, `clear` or `skipped`.
    pub kind: String,
    /// The file (relative to the version folder) or the table cleared.
    pub file: String,
    /// The table written.
    pub table: Option<String>,
    /// The tenant (the context's tenantId).
    pub tenant: Option<String>,
    /// The write mode.
    pub mode: Option<WriteMode>,
    /// Records read.
    pub rows_read: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows changed.
    pub updated: u64,
    /// Rows matched that already held the given values.
    pub unchanged: u64,
    /// Rows deleted (sync, clearTables).
    pub deleted: u64,
    /// Records that failed.
    pub failed: u64,
    /// Records skipped because they failed (skip policy).
    pub skipped: u64,
    /// Anything else worth saying (a dry run's limits, a script's output).
    pub note: Option<String>,
}

/// A failing record with its data, as logged.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RecordFailure {
    /// The version.
    pub version: String,
    /// The table written.
    pub table: String,
    /// The file's context's tenant.
    pub tenant: Option<String>,
    /// Where and why.
    #[serde(flatten)]
    pub error: RowError,
    /// The record as the file gave it.
    pub data: Option<serde_json::Value>,
    /// Whether it was skipped (the rest applied) rather than failing the version.
    pub skipped: bool,
}

/// What happened to one version.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VersionReport {
    /// The version.
    pub version: String,
    /// Its outcome.
    pub status: VersionStatus,
    /// The schema changes made (or that would be).
    pub schema_changes: Vec<String>,
    /// Its steps in order.
    pub steps: Vec<StepReport>,
    /// Its failing records.
    pub failures: Vec<RecordFailure>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The schema changes that stayed although the version failed: MariaDB commits
    /// DDL at once (empty elsewhere, and when the version was applied).
    pub schema_kept: Vec<String>,
}

/// What a migrate did: the `--json` document. `old_version`, `migrated_versions`
/// and `warnings` are oe-migration's callback values.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MigrateReport {
    /// The module's version before the run (null: none).
    pub old_version: Option<String>,
    /// The versions applied by this run (null: none).
    pub migrated_versions: Option<Vec<String>>,
    /// Warnings: records skipped, unknown meta.json keys, a dry run's limits.
    pub warnings: Vec<String>,
    /// The module.
    pub module: String,
    /// The module's version after the run.
    pub new_version: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Each version considered, in order.
    pub versions: Vec<VersionReport>,
    /// The version that failed (then exit 3).
    pub failed_version: Option<String>,
    /// The ledger run.
    pub run_id: Option<i64>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl MigrateReport {
    /// DESIGN.md's exit code: 0, or 3 when a version's records failed and it was rolled back.
    pub fn exit_code(&self) -> i32 {
        if self.versions.iter().any(|v| !v.schema_kept.is_empty()) {
            5
        } else if self.failed_version.is_some() {
            3
        } else {
            0
        }
    }
}

/// Why a migrate stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Bad input found before writing: nothing changed (exit 2).
    #[error("{0}")]
    Input(String),
    /// A malformed data file met while applying: its version was rolled back (exit 2).
    #[error("{0}")]
    Source(String),
    /// A script failed or timed out: the run halted (exit 1).
    #[error("{0}")]
    Script(String),
    /// The database (exit 1, or 2 for invalid names).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A version failed after MariaDB had committed some of its schema changes; the
    /// message lists those that stayed (exit 5).
    #[error("{0}")]
    SchemaKept(String),
}

impl MigrateError {
    /// DESIGN.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            MigrateError::Input(_) | MigrateError::Source(_) => 2,
            MigrateError::Script(_) => 1,
            MigrateError::Db(e) => e.exit_code(),
            MigrateError::SchemaKept(_) => 5,
        }
    }
}

impl From<lockgate_bundle::BundleError> for MigrateError {
    fn from(e: lockgate_bundle::BundleError) -> Self {
        MigrateError::Input(e.to_string())
    }
}

/// The version folders, from a folder or an extracted zip (kept alive with it).
pub(crate) struct Source {
    pub base: BaseDir,
    _extracted: Option<tempfile::TempDir>,
}

/// Opens the `db/` folder or the zip the options name.
pub(crate) fn open_source(dir: &Path, zip: Option<&Path>, limits: &ZipLimits) -> Result<Source, MigrateError> {
    match zip {
        Some(zip) => {
            let tmp = tempfile::tempdir().map_err(|e| {
                MigrateError::Input(format!("cannot create a temporary folder for {}: {e}", zip.display()))
            })?;
            lockgate_bundle::extract_zip(zip, tmp.path(), limits)?;
            let root = lockgate_bundle::find_base(tmp.path())?;
            Ok(Source {
                base: BaseDir::scan(&root)?,
                _extracted: Some(tmp),
            })
        }
        None => Ok(Source {
            base: BaseDir::scan(dir)?,
            _extracted: None,
        }),
    }
}

/// A version to apply, checked before anything is written.
struct Pending {
    dir: VersionDir,
    manifest: Manifest,
    checksum: String,
    /// Definitions from this version's `ddl/`.
    ddl: Vec<ModelDef>,
    /// The definitions in force for it (`models/` overridden by its `ddl/`), each
    /// with what its base models give it.
    models: Models,
}

/// Models by lower-cased table name; a later definition replaces an earlier one.
#[derive(Clone, Default)]
struct Models(HashMap<String, ModelDef>);

impl Models {
    fn add(&mut self, m: ModelDef) {
        self.0.insert(m.table_name().to_lowercase(), m);
    }
    fn get(&self, table: &str) -> Option<&ModelDef> {
        self.0.get(&table.to_lowercase())
    }

    /// These models with what their base models give each.
    fn resolved(&self) -> Result<Models, MigrateError> {
        let all: Vec<&ModelDef> = self.0.values().collect();
        let mut out = Models::default();
        for m in self.0.values() {
            out.add(models::with_bases(m, &all).map_err(MigrateError::Input)?);
        }
        Ok(out)
    }
}

fn read_model(path: &Path) -> Result<ModelDef, MigrateError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MigrateError::Input(format!("{}: {e}: check that the file is readable", path.display())))?;
    Ok(lockgate_bundle::parse_model(path, &text)?)
}

fn write_mode(m: FileMode) -> WriteMode {
    match m {
        FileMode::Insert => WriteMode::Insert,
        FileMode::Upsert => WriteMode::Upsert,
        FileMode::Update => WriteMode::Update,
        FileMode::InsertMissing => WriteMode::InsertMissing,
        FileMode::Sync => WriteMode::Sync,
    }
}

fn policy(spec: Option<OnErrorSpec>) -> Option<OnError> {
    spec.map(|s| match s {
        OnErrorSpec::Rollback => OnError::Rollback,
        OnErrorSpec::Skip => OnError::Skip,
        OnErrorSpec::Stop => OnError::Stop,
    })
}

/// One step of a version, in order.
#[derive(Clone)]
enum Step {
    Clear,
    Script {
        file: String,
        label: String,
        kind: ScriptKind,
        ctx_id: Option<String>,
    },
    Data(FileEntry),
}

fn steps(m: &Manifest) -> Vec<Step> {
    let mut out = Vec::new();
    if !matches!(m.clear_tables, ClearTables::None) {
        out.push(Step::Clear);
    }
    for (i, s) in m.scripts.before.iter().enumerate() {
        out.push(Step::Script {
            file: s.clone(),
            label: format!("scripts.before[{i}]"),
            kind: ScriptKind::of_file(s),
            ctx_id: None,
        });
    }
    for f in &m.files {
        if !f.enabled {
            continue;
        }
        match f.kind() {
            EntryKind::Script(kind) => out.push(Step::Script {
                file: f.file.clone(),
                label: format!("files[{}]", f.index),
                kind,
                ctx_id: f.ctx_id.clone(),
            }),
            EntryKind::Data(_) => out.push(Step::Data(f.clone())),
        }
    }
    for (i, s) in m.scripts.after.iter().enumerate() {
        out.push(Step::Script {
            file: s.clone(),
            label: format!("scripts.after[{i}]"),
            kind: ScriptKind::of_file(s),
            ctx_id: None,
        });
    }
    out
}

fn is_process(step: &Step) -> bool {
    matches!(step, Step::Script { kind, .. } if *kind != ScriptKind::Sql)
}

/// The context object of a `ctxId` (already checked against `contexts`).
fn context(m: &Manifest, ctx_id: Option<&str>) -> serde_json::Value {
    ctx_id
        .and_then(|c| m.contexts.get(c))
        .map_or_else(|| serde_json::json!({}), |o| serde_json::Value::Object(o.clone()))
}

/// The tenant of a `ctxId`: its context's `tenantId`, else the id itself.
fn tenant_of(m: &Manifest, ctx_id: Option<&str>) -> Option<String> {
    let id = ctx_id?;
    Some(
        m.contexts
            .get(id)
            .and_then(|c| c.get("tenantId"))
            .and_then(|t| t.as_str())
            .unwrap_or(id)
            .to_string(),
    )
}

/// The version status in the ledger, by version text.
fn by_version(applied: &[AppliedVersion]) -> HashMap<String, &AppliedVersion> {
    applied.iter().map(|a| (a.version.clone(), a)).collect()
}

/// Applies the pending versions of a `db/` folder (or zip) to the database.
pub async fn migrate(
    url: &DbUrl,
    opts: &MigrateOptions,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<MigrateReport, MigrateError> {
    let started = Instant::now();
    if let (Some(from), Some(to)) = (opts.from, opts.to) {
        if from > to {
            return Err(MigrateError::Input(format!(
                "--from {from} is later than --to {to}: no version lies between them; swap them"
            )));
        }
    }
    let source = open_source(&opts.dir, opts.zip.as_deref(), &opts.zip_limits)?;
    let base = &source.base;
    if !opts.allow_process_scripts {
        let scripts = process_scripts(base)?;
        if !scripts.is_empty() {
            return Err(MigrateError::Input(format!(
                "{} holds process scripts, which may not run here: {}; remove them (.sql scripts are allowed)",
                base.root.display(),
                scripts.join(", ")
            )));
        }
    }
    let mut shared_models = Models::default();
    for f in base.model_files()? {
        let m = read_model(&f)?;
        if m.table_name().to_ascii_lowercase().starts_with("lockgate_") {
            return Err(MigrateError::Input(format!(
                "{}: {} is one of Lockgate's own tables (its ledger): a definition cannot change it",
                f.display(),
                m.table_name()
            )));
        }
        shared_models.add(m);
    }

    let mut conn = Conn::connect(url).await?;
    // A dry run of a database that has no ledger yet creates none: it has no
    // versions, and there is nothing to lock against (it keeps nothing).
    let no_ledger = opts.dry_run && conn.lookup_table("lockgate_modules").await?.is_none();
    let mut ledger = if no_ledger {
        None
    } else {
        Some(Ledger::open(url).await?)
    };
    let job = format!("migrate:{}", opts.module);
    let holder = Holder::current(format!("lockgate migrate {}", base.root.display()));
    let lock = match ledger.as_mut() {
        Some(l) => Some(l.lock(&job, &holder, opts.lock_timeout).await?),
        None => None,
    };
    let mut table_locks = Vec::new();
    let result = async {
        let (old_version, applied) = if no_ledger {
            (None, Vec::new())
        } else {
            (
                versions::module_version(&mut conn, &opts.module).await?,
                versions::applied_versions(&mut conn, &opts.module).await?,
            )
        };
        let applied_map = by_version(&applied);
        let current: Option<Version> = old_version.as_deref().and_then(|v| v.parse().ok());
        // Choose the versions, then check every one of them before writing anything.
        let mut pending = Vec::new();
        let mut warnings = Vec::new();
        for v in &base.versions {
            if opts.from.is_some_and(|f| v.version < f) || opts.to.is_some_and(|t| v.version > t) {
                continue;
            }
            let partial = applied_map
                .get(&v.version.to_string())
                .is_some_and(|a| a.status == "partial");
            let newer = current.is_none_or(|c| v.version > c);
            if !(opts.force || newer || partial) {
                continue;
            }
            let manifest = v.manifest()?;
            warnings.extend(manifest.warnings.iter().cloned());
            let mut ddl = Vec::new();
            for f in v.ddl_files()? {
                ddl.push(read_model(&f)?);
            }
            let mut in_force = shared_models.clone();
            for m in &ddl {
                in_force.add(m.clone());
            }
            pending.push(Pending {
                checksum: v.checksum()?,
                dir: v.clone(),
                manifest,
                ddl,
                models: in_force.resolved()?,
            });
        }
        // Drift (Flyway's validate): said in the warnings, except for the versions
        // this run applies.
        let applying: Vec<String> = pending.iter().map(|p| p.dir.version.to_string()).collect();
        let folder = opts.zip.as_ref().unwrap_or(&base.root).display().to_string();
        let drift = status::drift(base, &applied, old_version.as_deref())?;
        warnings.splice(0..0, drift.messages(old_version.as_deref(), &folder, &applying));
        check_pending(&mut conn, &pending, &shared_models, opts).await?;
        // The tables the versions write, under the lock `load` and `transfer run` take
        // too, so that no other command writes them meanwhile.
        if let Some(l) = ledger.as_mut() {
            let jobs: Vec<String> = tables_written(&mut conn, &pending, &shared_models)
                .await?
                .iter()
                .map(lockgate_db::ledger::table_job)
                .collect();
            table_locks = l.lock_all(&jobs, &holder, opts.lock_timeout).await?;
        }
        let run_id = if opts.dry_run {
            None
        } else {
            match ledger.as_mut() {
                Some(l) => Some(l.start_run("migrate", &job, &holder).await?),
                None => None,
            }
        };
        let mut ctx = Run {
            url,
            opts,
            conn: &mut conn,
            models: shared_models,
            progress: progress.as_ref(),
            run_id,
            irreversible: Vec::new(),
        };
        let mut report = MigrateReport {
            old_version: old_version.clone(),
            migrated_versions: None,
            warnings,
            module: opts.module.clone(),
            new_version: old_version.clone(),
            dry_run: opts.dry_run,
            versions: Vec::new(),
            failed_version: None,
            run_id,
            seconds: 0.0,
        };
        if opts.dry_run {
            ctx.conn.begin().await?;
        }
        let mut outcome: Result<(), MigrateError> = Ok(());
        for p in &pending {
            ctx.models = p.models.clone();
            // Re-applying an older version (--force): which rows of the later
            // versions that stay applied it rewrites, from the images it writes.
            let later: Vec<String> = if opts.dry_run {
                Vec::new()
            } else {
                applied
                    .iter()
                    .filter(|a| a.version.parse::<Version>().is_ok_and(|v| v > p.dir.version))
                    .map(|a| a.version.clone())
                    .filter(|v| !applying.contains(v))
                    .collect()
            };
            let mark = if later.is_empty() {
                None
            } else {
                force::mark(ctx.conn).await.ok()
            };
            let (vr, logs, err) = ctx.apply_version(p).await;
            if let (Some(mark), VersionStatus::Applied) = (mark, vr.status) {
                match force::overwritten(ctx.conn, &opts.module, &vr.version, mark, &later).await {
                    Ok(Some(w)) => report.warnings.push(w),
                    Ok(None) => {}
                    Err(e) => report.warnings.push(format!(
                        "could not tell which rows of later versions version {} rewrote: {e}",
                        vr.version
                    )),
                }
            }
            if !opts.dry_run {
                // After the version's transaction: the log outlives its rollback.
                if let Err(e) = versions::write_logs(ctx.conn, &logs).await {
                    report.warnings.push(format!(
                        "version {}: its entries in lockgate_migration_log could not be written ({e})",
                        vr.version
                    ));
                }
            }
            for f in vr.failures.iter().filter(|f| f.skipped) {
                report.warnings.push(format!("{}: skipped: {}", f.version, f.error));
            }
            if vr.status == VersionStatus::Failed {
                report.failed_version = Some(vr.version.clone());
            }
            let done = matches!(vr.status, VersionStatus::Applied | VersionStatus::WouldApply);
            if done {
                report
                    .migrated_versions
                    .get_or_insert_with(Vec::new)
                    .push(vr.version.clone());
                report.new_version = Some(vr.version.clone());
            }
            report.versions.push(vr);
            if let Some(e) = err {
                outcome = Err(e);
                break;
            }
            if !done {
                break;
            }
        }
        if opts.dry_run {
            let _ = ctx.conn.rollback().await;
            report.new_version = old_version.clone();
        } else if let Some(v) = report.new_version.clone() {
            // --force of older versions keeps the newest version as current.
            if let (Some(c), Ok(n)) = (current, v.parse::<Version>()) {
                if n < c {
                    report.new_version = old_version.clone();
                }
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        if let Some(run) = run_id {
            let status = if outcome.is_ok() && report.failed_version.is_none() {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            };
            let error = match &outcome {
                Err(e) => Some(e.to_string()),
                Ok(()) => report
                    .failed_version
                    .as_ref()
                    .map(|v| format!("version {v} failed; nothing of it was kept")),
            };
            let done = report.migrated_versions.as_ref().map_or(0, |v| v.len() as u64);
            let summary = serde_json::json!({
                "old_version": report.old_version,
                "migrated_versions": report.migrated_versions,
                "failed_version": report.failed_version,
            });
            if let Some(l) = ledger.as_mut() {
                if let Err(e) = l.finish_run(run, status, done, &summary, error.as_deref()).await {
                    report.warnings.push(format!(
                        "the end of run {run} could not be recorded in lockgate_runs ({e}); it reads as abandoned \
                         once this process has exited"
                    ));
                }
            }
        }
        outcome.map(|()| report)
    }
    .await;
    let mut result = result;
    if let Some(l) = ledger.as_mut() {
        let mut warnings = Vec::new();
        if let Err(e) = l.unlock_all(table_locks).await {
            warnings.push(format!(
                "the table locks could not be given back ({e}); they are freed when this process exits"
            ));
        }
        if let Some(lock) = lock {
            if let Err(e) = l.unlock(lock).await {
                warnings.push(format!(
                    "the migration lock could not be given back ({e}); it is freed when this process exits"
                ));
            }
        }
        for w in warnings {
            match &mut result {
                Ok(r) => r.warnings.push(w),
                Err(_) => tracing::warn!("{w}"),
            }
        }
    }
    result
}

/// The tables the pending versions write (their data files' and `clearTables`'),
/// each named as its lock names it: the table's own name, or the one its definition
/// will create.
async fn tables_written(
    conn: &mut Conn,
    pending: &[Pending],
    shared: &Models,
) -> Result<Vec<lockgate_core::TableName>, MigrateError> {
    let mut models = shared.clone();
    let mut out = Vec::new();
    for p in pending {
        for m in &p.ddl {
            models.add(m.clone());
        }
        let mut names: Vec<String> = p
            .manifest
            .files
            .iter()
            .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
            .filter_map(|f| f.model.clone())
            .collect();
        if let ClearTables::Tables(list) = &p.manifest.clear_tables {
            names.extend(list.iter().cloned());
        }
        for name in names {
            let table = match conn.lookup_table(&name).await? {
                Some(t) => t.name,
                None => lockgate_core::TableName::parse(models.get(&name).map_or(name.as_str(), |m| m.table_name())),
            };
            if !out.contains(&table) {
                out.push(table);
            }
        }
    }
    Ok(out)
}

/// Checks every pending version before anything is written: contexts, files,
/// tables (existing or defined), clearTables, keys for updates.
async fn check_pending(
    conn: &mut Conn,
    pending: &[Pending],
    shared: &Models,
    opts: &MigrateOptions,
) -> Result<(), MigrateError> {
    let mut models = shared.clone();
    for p in pending {
        for m in &p.ddl {
            models.add(m.clone());
        }
        let meta = p.manifest.path.display().to_string();
        // Every definition in force is turned into its changes (and their SQL) now,
        // before the first DDL of the run.
        let tenant_column = p
            .manifest
            .tenant_column
            .clone()
            .unwrap_or_else(|| opts.tenant_column.clone());
        let changes = planned_changes(conn, &p.models, &tenant_column).await?;
        if conn.engine() == Engine::Mysql && !changes.is_empty() {
            let mut tables = HashMap::new();
            for (_, c) in &changes {
                let name = change_table(c);
                if let Some(t) = conn.lookup_table(&name).await? {
                    tables.insert(name.to_lowercase(), t);
                }
            }
            check_files_before_ddl(p, &changes, &tables, &tenant_column)?;
        }
        for m in &p.ddl {
            if m.table_name().to_ascii_lowercase().starts_with("lockgate_") {
                return Err(MigrateError::Input(format!(
                    "{}: {} is one of Lockgate's own tables (its ledger): a definition cannot change it",
                    m.path.display(),
                    m.table_name()
                )));
            }
        }
        if let ClearTables::Tables(list) = &p.manifest.clear_tables {
            for t in list {
                if t.to_ascii_lowercase().starts_with("lockgate_") {
                    return Err(MigrateError::Input(format!(
                        "{meta}: clearTables names {t}, one of Lockgate's own tables (its ledger): a migration cannot clear it"
                    )));
                }
                if !known(conn, &models, t).await? {
                    return Err(MigrateError::Input(format!(
                        "{meta}: clearTables names table {t:?}, which does not exist and has no definition: fix the name"
                    )));
                }
            }
        }
        for step in steps(&p.manifest) {
            match step {
                Step::Script { file, label, kind, .. } => {
                    let path = p.dir.resolve(&file, &label)?;
                    if kind == ScriptKind::Sql {
                        let sql = std::fs::read_to_string(&path)
                            .map_err(|e| MigrateError::Input(format!("{}: {e}", path.display())))?;
                        if let Some(why) = lockgate_db::sqltext::transaction_breaker(conn.engine(), &sql) {
                            return Err(MigrateError::Input(format!(
                                "{meta}: {label}: {}: {why}",
                                path.display()
                            )));
                        }
                    }
                }
                Step::Data(f) => {
                    let label = format!("files[{}]", f.index);
                    let path = p.dir.resolve(&f.file, &label)?;
                    let model = f.model.clone().unwrap_or_default();
                    if model.to_ascii_lowercase().starts_with("lockgate_") {
                        return Err(MigrateError::Input(format!(
                            "{meta}: {label}: {model} is one of Lockgate's own tables (its ledger): a migration cannot write it"
                        )));
                    }
                    if !known(conn, &models, &model).await? {
                        return Err(MigrateError::Input(format!(
                            "{meta}: {label}: table {model:?} does not exist and no definition (models/ or ddl/) creates it: create the table or add a definition"
                        )));
                    }
                    // Opening checks the file's start (a CSV header, a JSON array or
                    // object). A record without its key is that record's error when
                    // updating (as in oe-migration), found when the file is written.
                    lockgate_bundle::open_records(&path, f.format).map_err(|e| MigrateError::Input(e.to_string()))?;
                }
                Step::Clear => {}
            }
        }
    }
    Ok(())
}

/// The schema changes the definitions in force ask of the database as it is now, each
/// with the definition file it comes from. Every change's SQL is spelled here, so
/// that a definition the engine cannot take (a default it cannot declare, a
/// generated column it cannot add) is an error naming the file before any DDL runs.
async fn planned_changes(
    conn: &mut Conn,
    models: &Models,
    tenant_column: &str,
) -> Result<Vec<(PathBuf, SchemaChange)>, MigrateError> {
    let engine = conn.engine();
    let mut defs: Vec<&ModelDef> = models.0.values().collect();
    defs.sort_by(|a, b| a.table_name().cmp(b.table_name()));
    let mut out = Vec::new();
    for m in defs {
        let existing = conn.lookup_table(m.table_name()).await?;
        let changes = models::changes(m, existing.as_ref(), tenant_column, engine).map_err(MigrateError::Input)?;
        for c in changes {
            if let Err(e) = lockgate_db::schema::change_sql(engine, &c) {
                return Err(MigrateError::Input(format!("{}: {e}", m.path.display())));
            }
            // A required column without a default cannot be added to a table with rows.
            if let SchemaChange::AddColumn { table, column } = &c {
                if !column.nullable && column.default.is_none() {
                    let n = lockgate_db::schema::row_count(conn, table).await?;
                    if n > 0 {
                        return Err(MigrateError::Input(format!(
                            "{}: required property {:?} cannot be added to table {table}, which has {n} rows: give it a default (existing rows get it)",
                            m.path.display(),
                            column.name
                        )));
                    }
                }
            }
            out.push((m.path.clone(), c));
        }
    }
    Ok(out)
}

/// MariaDB commits each schema change at once, so before a version's first one every
/// data file it loads into a changed table is read through: a file that cannot be
/// read, or gives a column the table will not have, stops the run while nothing has
/// changed. (On PostgreSQL and SQLite the version's rollback undoes its DDL too.)
fn check_files_before_ddl(
    p: &Pending,
    changes: &[(PathBuf, SchemaChange)],
    tables: &HashMap<String, Table>,
    tenant_column: &str,
) -> Result<(), MigrateError> {
    let meta = p.manifest.path.display().to_string();
    for f in p.manifest.files.iter().filter(|f| f.enabled) {
        let EntryKind::Data(_) = f.kind() else { continue };
        let model = f.model.clone().unwrap_or_default();
        let touched = changes
            .iter()
            .any(|(_, c)| change_table(c).eq_ignore_ascii_case(&model));
        if !touched {
            continue;
        }
        // The table's columns once the changes are made.
        let mut columns: Vec<String> = tables
            .get(&model.to_lowercase())
            .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        for (_, c) in changes {
            match c {
                SchemaChange::CreateTable(t) if t.name.name.eq_ignore_ascii_case(&model) => {
                    columns = t.columns.iter().map(|c| c.name.clone()).collect();
                }
                SchemaChange::AddColumn { table, column } if table.name.eq_ignore_ascii_case(&model) => {
                    columns.push(column.name.clone());
                }
                SchemaChange::DropColumn { table, column } if table.name.eq_ignore_ascii_case(&model) => {
                    columns.retain(|c| c != column);
                }
                _ => {}
            }
        }
        let label = format!("files[{}]", f.index);
        let path = p.dir.resolve(&f.file, &label)?;
        for k in &f.key {
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(k)) {
                return Err(MigrateError::Input(format!(
                    "{meta}: {label}: key {k:?} is not a column of table {model}: fix the key"
                )));
            }
        }
        let mut reader =
            lockgate_bundle::open_records(&path, f.format).map_err(|e| MigrateError::Input(e.to_string()))?;
        let mut record = lockgate_bundle::Record::default();
        while reader
            .next_record(&mut record)
            .map_err(|e| MigrateError::Input(format!("{e} ({label} of {meta})")))?
        {}
        for name in reader.columns() {
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(name)) && !name.eq_ignore_ascii_case(tenant_column) {
                return Err(MigrateError::Input(format!(
                    "{}: column {name:?} is not a column of table {model} (its columns will be: {}): rename it in the file or drop it ({label} of {meta})",
                    path.display(),
                    columns.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Whether a table exists or a definition in force will create it.
async fn known(conn: &mut Conn, models: &Models, name: &str) -> Result<bool, MigrateError> {
    Ok(models.get(name).is_some() || conn.lookup_table(name).await?.is_some())
}

/// The state of one run of migrate across versions.
struct Run<'a> {
    url: &'a DbUrl,
    opts: &'a MigrateOptions,
    conn: &'a mut Conn,
    models: Models,
    progress: Option<&'a mpsc::UnboundedSender<Progress>>,
    run_id: Option<i64>,
    /// What the current version changed that its row images cannot undo (a table
    /// whose rows cannot be told apart): recorded with the version, like its scripts.
    irreversible: Vec<String>,
}

/// Why a version's part stopped.
enum PartEnd {
    /// Every step ran.
    Done,
    /// Record failures under rollback or stop: the version fails.
    Failed,
}

impl Run<'_> {
    fn log(&self, version: &str, log_type: &str, message: serde_json::Value) -> LogEntry {
        LogEntry {
            id: 0,
            run_id: self.run_id,
            log_type: log_type.into(),
            module: self.opts.module.clone(),
            version: Some(version.into()),
            table: None,
            tenant: None,
            file: None,
            logged_at: String::new(),
            message,
        }
    }

    /// Applies one version. Returns its report, its log entries (to write after its
    /// transaction), and the error that halts the run, if any.
    async fn apply_version(&mut self, p: &Pending) -> (VersionReport, Vec<LogEntry>, Option<MigrateError>) {
        let version = p.dir.version.to_string();
        let mut vr = VersionReport {
            version: version.clone(),
            status: if self.opts.dry_run {
                VersionStatus::WouldApply
            } else {
                VersionStatus::Applied
            },
            schema_changes: Vec::new(),
            steps: Vec::new(),
            failures: Vec::new(),
            error: None,
            schema_kept: Vec::new(),
        };
        let mut logs = Vec::new();
        self.irreversible.clear();
        let result = self.apply_parts(p, &mut vr, &mut logs).await;
        // What MariaDB committed of the version's schema changes before it failed.
        // (After a committed part, the error says so already: its changes stay.)
        let kept = match &result {
            Ok(PartEnd::Done) | Err((_, 1..)) => Vec::new(),
            _ => std::mem::take(&mut vr.schema_kept),
        };
        let kept_note = (!kept.is_empty()).then(|| {
            format!(
                "; on MariaDB, which commits schema changes at once, these stay: {}",
                kept.join("; ")
            )
        });
        vr.schema_kept.clear();
        let error = match result {
            Ok(PartEnd::Done) => {
                logs.push(self.log(
                    &version,
                    "INFO",
                    serde_json::json!({ "message": format!("Migration done. DB updated to {version}") }),
                ));
                None
            }
            Ok(PartEnd::Failed) => {
                vr.status = VersionStatus::Failed;
                let n = vr.failures.iter().filter(|f| !f.skipped).count();
                let mut msg = format!("version {version} failed: {n} record(s) failed; nothing of its data was kept");
                if let Some(note) = &kept_note {
                    msg.push_str(note);
                }
                vr.schema_kept = kept;
                vr.error = Some(msg.clone());
                logs.push(self.log(&version, "ERROR", serde_json::json!({ "message": msg })));
                None
            }
            Err((e, committed_parts)) => {
                vr.status = if committed_parts > 0 {
                    VersionStatus::Partial
                } else {
                    VersionStatus::Failed
                };
                let msg = if committed_parts > 0 {
                    format!("version {version} stopped after {committed_parts} committed part(s): {e}")
                } else if kept_note.is_some() {
                    format!("version {version} failed; its data was rolled back: {e}")
                } else {
                    format!("version {version} failed; nothing of it was kept: {e}")
                };
                let e = match &kept_note {
                    Some(note) => MigrateError::SchemaKept(format!("{msg}{note}")),
                    None => e,
                };
                let msg = match &kept_note {
                    Some(note) => format!("{msg}{note}"),
                    None => msg,
                };
                vr.schema_kept = kept;
                vr.error = Some(msg.clone());
                logs.push(self.log(&version, "ERROR", serde_json::json!({ "message": msg })));
                Some(e)
            }
        };
        // The failing records' data, read back from their files (bounded).
        attach_data(&mut vr.failures, p);
        for f in &vr.failures {
            let mut entry = self.log(
                &version,
                if f.skipped { "WARN" } else { "ERROR" },
                serde_json::json!({ "message": f.error.to_string(), "data": f.data }),
            );
            entry.file = f.error.file.clone();
            entry.table = Some(f.table.clone());
            entry.tenant = f.tenant.clone();
            logs.push(entry);
        }
        (vr, logs, error)
    }

    /// Runs the version's parts; on an error returns it with the number of parts
    /// committed before it.
    async fn apply_parts(
        &mut self,
        p: &Pending,
        vr: &mut VersionReport,
        logs: &mut Vec<LogEntry>,
    ) -> Result<PartEnd, (MigrateError, i64)> {
        let engine = self.conn.engine();
        let dry = self.opts.dry_run;
        let version = p.dir.version.to_string();
        let all = steps(&p.manifest);
        let mut scripts_run: Vec<String> = Vec::new();
        let mut committed_parts = 0i64;
        // MariaDB commits DDL implicitly: its schema changes go first, on their own.
        let mut schema_pending = true;
        let mut deferred_tables: HashSet<String> = HashSet::new();
        if engine == Engine::Mysql {
            let changes = self.schema_changes(p).await.map_err(|e| (e, 0))?;
            vr.schema_changes = changes.iter().map(|c| c.to_string()).collect();
            // What DDL loses cannot come back if the data then fails: such a change
            // must be a version of its own on MariaDB.
            let writes_data = all
                .iter()
                .any(|s| matches!(s, Step::Data(_) | Step::Clear | Step::Script { .. }));
            if let Some(c) = changes.iter().find(|c| match c {
                SchemaChange::DropColumn { .. } => true,
                // A widening keeps what the column had (`kept`); a retype may not.
                SchemaChange::AlterColumn { column, .. } => column.kept.is_none(),
                _ => false,
            }) {
                if writes_data {
                    return Err((
                        MigrateError::Input(format!(
                            "{}: on MariaDB, \"{c}\" cannot share a version with data or scripts: MariaDB commits schema changes at once, so a failed load could not undo it; move the definition change into a version of its own (the versions before this one stay applied)",
                            p.manifest.path.display()
                        )),
                        0,
                    ));
                }
            }
            if dry {
                for c in &changes {
                    deferred_tables.insert(change_table(c).to_lowercase());
                }
            } else {
                for c in &changes {
                    lockgate_db::schema::apply_change(self.conn, c)
                        .await
                        .map_err(|e| (MigrateError::Db(e), 0))?;
                    // Committed at once: it stays whatever happens next.
                    vr.schema_kept.push(c.to_string());
                }
            }
            schema_pending = false;
        }
        let mut i = 0;
        let mut part = 0i64;
        loop {
            // One part: from here up to the next process script.
            if !dry {
                self.conn.begin().await.map_err(|e| (e.into(), committed_parts))?;
            }
            let steps_before = vr.steps.len();
            let schema_before = schema_pending;
            let part_result: Result<PartEnd, MigrateError> = async {
                if schema_pending {
                    let changes = self.schema_changes(p).await?;
                    vr.schema_changes = changes.iter().map(|c| c.to_string()).collect();
                    for c in &changes {
                        lockgate_db::schema::apply_change(self.conn, c).await?;
                    }
                    schema_pending = false;
                }
                while i < all.len() && !is_process(&all[i]) {
                    let step = all[i].clone();
                    i += 1;
                    match step {
                        Step::Clear => {
                            let r = self.clear(p, &version, dry).await?;
                            vr.steps.extend(r);
                        }
                        Step::Script { file, .. } if !deferred_tables.is_empty() => {
                            // A MariaDB dry run could not make the schema changes the
                            // script may rely on.
                            vr.steps.push(StepReport {
                                kind: "sql".into(),
                                file,
                                note: Some(
                                    "not run: the version changes the schema first, and MariaDB cannot roll back schema changes".into(),
                                ),
                                ..StepReport::default()
                            });
                        }
                        Step::Script { file, label, .. } => {
                            let path = p.dir.resolve(&file, &label)?;
                            let place = format!("{label} of {}", p.manifest.path.display());
                            let capture = (!dry).then_some((self.opts.module.as_str(), version.as_str()));
                            let out = sqlscript::run(self.conn, &path, &place, capture).await?;
                            scripts_run.push(file.clone());
                            vr.steps.push(StepReport {
                                kind: "sql".into(),
                                file,
                                note: out.note(),
                                ..StepReport::default()
                            });
                        }
                        Step::Data(entry) => {
                            let (step, failures, end) = self.data(p, &entry, &version, &deferred_tables).await?;
                            let mut log = self.log(
                                &version,
                                "INFO",
                                serde_json::json!({ "message": {
                                    "total": step.rows_read,
                                    "success": step.rows_read - step.failed,
                                    "failed": step.failed,
                                }}),
                            );
                            log.table = step.table.clone();
                            // As the seed's MigrationLog: the context's tenant, for every file.
                            log.tenant = tenant_of(&p.manifest, entry.ctx_id.as_deref());
                            log.file = Some(p.dir.path.join(&entry.file).display().to_string());
                            logs.push(log);
                            vr.steps.push(step);
                            vr.failures.extend(failures);
                            if matches!(end, PartEnd::Failed) && self.file_policy(p, &entry) == OnError::Stop {
                                return Ok(PartEnd::Failed);
                            }
                        }
                    }
                }
                if vr.failures.iter().any(|f| !f.skipped) {
                    return Ok(PartEnd::Failed);
                }
                Ok(PartEnd::Done)
            }
            .await;
            let last = i >= all.len();
            // A part that did nothing (a version that starts with a process script)
            // commits nothing and records nothing.
            let did_work = vr.steps.len() > steps_before || (schema_before && !vr.schema_changes.is_empty());
            match part_result {
                Ok(PartEnd::Done) if !dry && !last && !did_work => {
                    let _ = self.conn.rollback().await;
                }
                Ok(PartEnd::Done) if !dry => {
                    let record = AppliedVersion {
                        module: self.opts.module.clone(),
                        version: version.clone(),
                        status: if last { "applied".into() } else { "partial".into() },
                        checksum: p.checksum.clone(),
                        parts_done: part + 1,
                        scripts: scripts_run.iter().chain(&self.irreversible).cloned().collect(),
                        run_id: self.run_id,
                        applied_at: String::new(),
                    };
                    let commit = async {
                        versions::record_version(self.conn, &record).await?;
                        if last {
                            let newer = match versions::module_version(self.conn, &self.opts.module).await? {
                                Some(cur) => cur.parse::<Version>().map_or(true, |c| p.dir.version >= c),
                                None => true,
                            };
                            if newer {
                                versions::set_module_version(self.conn, &self.opts.module, &version).await?;
                            }
                        }
                        self.conn.commit().await
                    }
                    .await;
                    if let Err(e) = commit {
                        let _ = self.conn.rollback().await;
                        return Err((e.into(), committed_parts));
                    }
                    committed_parts += 1;
                }
                Ok(PartEnd::Done) => {}
                Ok(PartEnd::Failed) => {
                    if !dry {
                        let _ = self.conn.rollback().await;
                    }
                    if committed_parts > 0 {
                        return Err((
                            MigrateError::Script(format!(
                                "version {version}: records failed after a committed part; the version stays partial"
                            )),
                            committed_parts,
                        ));
                    }
                    return Ok(PartEnd::Failed);
                }
                Err(e) => {
                    if !dry {
                        let _ = self.conn.rollback().await;
                    }
                    return Err((e, committed_parts));
                }
            }
            if last {
                return Ok(PartEnd::Done);
            }
            // A process script: it sees what was committed above.
            let Step::Script {
                file,
                label,
                kind,
                ctx_id,
            } = all[i].clone()
            else {
                unreachable!("a part ends at a process script");
            };
            i += 1;
            part += 1;
            if dry {
                vr.steps.push(StepReport {
                    kind: "script".into(),
                    file: file.clone(),
                    note: Some("not run in a dry run: what it would change is not in this plan".into()),
                    ..StepReport::default()
                });
                continue;
            }
            let path = p.dir.resolve(&file, &label).map_err(|e| (e.into(), committed_parts))?;
            let env = script::environment(self.url, &version, &self.opts.module);
            let ctx = context(&p.manifest, ctx_id.as_deref());
            match script::run(&path, kind, &p.dir.path, &env, &ctx, self.opts.script_timeout).await {
                Ok(out) => {
                    scripts_run.push(file.clone());
                    let mut log = self.log(
                        &version,
                        "INFO",
                        serde_json::json!({ "message": format!("ran {file}"), "output": out.output }),
                    );
                    log.file = Some(path.display().to_string());
                    logs.push(log);
                    vr.steps.push(StepReport {
                        kind: "script".into(),
                        file,
                        note: (!out.output.is_empty()).then_some(out.output),
                        ..StepReport::default()
                    });
                }
                Err(msg) => return Err((MigrateError::Script(msg), committed_parts)),
            }
        }
    }

    /// Where a write into `table` records its row images; `None` in a dry run, and
    /// for a table whose rows cannot be told apart (no primary or unique key), which
    /// is then noted as something a rollback cannot undo.
    fn capture_for(&mut self, table: &Table, version: &str) -> Option<Capture> {
        if self.opts.dry_run {
            return None;
        }
        if !writer::can_capture(table) {
            let why = format!(
                "table {} (no primary or unique key: its rows cannot be told apart)",
                table.name
            );
            if !self.irreversible.contains(&why) {
                self.irreversible.push(why);
            }
            return None;
        }
        Some(Capture {
            module: self.opts.module.clone(),
            version: version.into(),
        })
    }

    fn file_policy(&self, p: &Pending, entry: &FileEntry) -> OnError {
        policy(entry.on_error)
            .or(policy(p.manifest.on_error))
            .unwrap_or(self.opts.on_error)
    }

    fn tenant_column(&self, p: &Pending) -> String {
        p.manifest
            .tenant_column
            .clone()
            .unwrap_or_else(|| self.opts.tenant_column.clone())
    }

    /// The schema changes the definitions in force ask for.
    async fn schema_changes(&mut self, p: &Pending) -> Result<Vec<SchemaChange>, MigrateError> {
        let tenant_column = self.tenant_column(p);
        Ok(planned_changes(self.conn, &self.models, &tenant_column)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// `clearTables`: empties the tables (for a multi-tenant table, the rows of the
    /// tenants this version loads into it), recording each row's image.
    async fn clear(&mut self, p: &Pending, version: &str, dry: bool) -> Result<Vec<StepReport>, MigrateError> {
        let tenant_column = self.tenant_column(p);
        let mut names: Vec<String> = match &p.manifest.clear_tables {
            ClearTables::None => Vec::new(),
            ClearTables::All => p
                .manifest
                .files
                .iter()
                .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
                .filter_map(|f| f.model.clone())
                .collect(),
            ClearTables::Tables(list) => list.clone(),
        };
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert(n.to_lowercase()));
        let mut out = Vec::new();
        for name in names {
            let Some(table) = self.conn.lookup_table(&name).await? else {
                continue; // Defined but not created yet: nothing to clear.
            };
            let multi = self.is_multi_tenant(&table, &tenant_column, true);
            let tenants: Vec<String> = if multi {
                p.manifest
                    .files
                    .iter()
                    .filter(|f| f.enabled && f.model.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&name)))
                    .filter_map(|f| tenant_of(&p.manifest, f.ctx_id.as_deref()))
                    .collect()
            } else {
                Vec::new()
            };
            // A multi-tenant table no file of this version loads: the tenants of its
            // contexts (never every tenant's rows because none was named).
            let tenants = if multi && tenants.is_empty() {
                p.manifest
                    .contexts
                    .keys()
                    .filter_map(|c| tenant_of(&p.manifest, Some(c)))
                    .collect()
            } else {
                tenants
            };
            if multi && tenants.is_empty() {
                return Err(MigrateError::Input(format!(
                    "{}: clearTables names the multi-tenant table {}, but the version has no context to say whose rows: add a context",
                    p.manifest.path.display(),
                    table.name
                )));
            }
            let capture = if dry { None } else { self.capture_for(&table, version) };
            let deleted = clear_table(
                self.conn,
                &table,
                if tenants.is_empty() {
                    None
                } else {
                    Some((&tenant_column, &tenants))
                },
                capture,
            )
            .await?;
            out.push(StepReport {
                kind: "clear".into(),
                file: table.name.to_string(),
                table: Some(table.name.to_string()),
                tenant: (!tenants.is_empty()).then(|| tenants.join(", ")),
                deleted,
                ..StepReport::default()
            });
        }
        Ok(out)
    }

    /// Whether rows written to `table` get the tenant of their context: the
    /// definition says so, or (without one) the table has the tenant column and the
    /// entry names a context. Without a context, records keep the tenant they carry
    /// (a dump loaded back).
    fn is_multi_tenant(&self, table: &Table, tenant_column: &str, has_context: bool) -> bool {
        match self.models.get(&table.name.name) {
            Some(m) => m.multi_tenant,
            None => has_context && table.column(tenant_column).is_some(),
        }
    }

    /// One data file through the writer, nested in the version's transaction.
    async fn data(
        &mut self,
        p: &Pending,
        entry: &FileEntry,
        version: &str,
        deferred: &HashSet<String>,
    ) -> Result<(StepReport, Vec<RecordFailure>, PartEnd), MigrateError> {
        let meta = p.manifest.path.display().to_string();
        let label = format!("files[{}]", entry.index);
        let model_name = entry.model.clone().unwrap_or_default();
        let path = p.dir.resolve(&entry.file, &label)?;
        let mode = write_mode(entry.effective_mode());
        let tenant = tenant_of(&p.manifest, entry.ctx_id.as_deref());
        let mut step = StepReport {
            kind: "data".into(),
            file: entry.file.clone(),
            table: Some(model_name.clone()),
            tenant: tenant.clone(),
            mode: Some(mode),
            ..StepReport::default()
        };
        if deferred.contains(&model_name.to_lowercase()) {
            // A MariaDB dry run cannot make the schema changes this file needs.
            step.rows_read = count_records(&path, entry)?;
            step.note = Some(
                "not computed: the table changes first, and MariaDB cannot roll back schema changes; rows read only"
                    .into(),
            );
            return Ok((step, Vec::new(), PartEnd::Done));
        }
        let table = self.conn.lookup_table(&model_name).await?.ok_or_else(|| {
            MigrateError::Input(format!(
                "{meta}: {label}: table {model_name:?} does not exist and no definition creates it"
            ))
        })?;
        step.table = Some(table.name.to_string());
        let tenant_column = self.tenant_column(p);
        let multi = self.is_multi_tenant(&table, &tenant_column, entry.ctx_id.is_some());
        if !multi {
            step.tenant = None;
        }
        let model = self.models.get(&table.name.name).cloned();
        let mut key: Vec<String> = Vec::new();
        for k in &entry.key {
            let col = table.column(k).ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: key {k:?} is not a column of table {}: fix the key",
                    table.name
                ))
            })?;
            key.push(col.name.clone());
        }
        if key.is_empty() {
            if let Some(m) = &model {
                key = m
                    .id_properties()
                    .iter()
                    .filter_map(|p| table.column(&p.name).map(|c| c.name.clone()))
                    .collect();
            }
        }
        if key.is_empty() {
            key = table
                .primary_key
                .iter()
                .filter(|k| !(multi && k.as_str() == tenant_column))
                .cloned()
                .collect();
        }
        if key.is_empty() {
            if let Some(c) = table.column("id") {
                key.push(c.name.clone());
            }
        }
        let mut constants = Vec::new();
        let mut scope = Vec::new();
        if multi {
            let col = table.column(&tenant_column).ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: table {} is multi-tenant but has no column {tenant_column:?}: add it to the definition",
                    table.name
                ))
            })?;
            let t = tenant.clone().ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: table {} is multi-tenant: give the entry a ctxId naming one of the contexts",
                    table.name
                ))
            })?;
            constants.push((col.name.clone(), Value::Text(t.clone())));
            scope.push((col.name.clone(), Value::Text(t)));
            if !key.is_empty() && !key.contains(&col.name) {
                key.push(col.name.clone());
            }
        }
        // A table whose rows have no key is loaded as inserts, as oe-migration's
        // upsert without an id creates rows (a re-run relies on clearTables).
        let mode = match mode {
            WriteMode::Upsert | WriteMode::InsertMissing if key.is_empty() => WriteMode::Insert,
            WriteMode::Update | WriteMode::Sync if key.is_empty() => {
                return Err(MigrateError::Input(format!(
                    "{meta}: {label}: table {} has no primary key and no id, and {} finds rows by their key: name the key with \"key\"",
                    table.name,
                    if mode == WriteMode::Update { "updateAttributes" } else { "sync" }
                )))
            }
            mode => mode,
        };
        step.mode = Some(mode);
        let on_error = self.file_policy(p, entry);
        let validation: Option<Validation> = match (&model, entry.skip_validation) {
            (Some(m), false) => Some(models::validation(m, &table, mode == WriteMode::Update)),
            _ => None,
        };
        let source = FileSource {
            files: vec![path.clone()],
            format: entry.format,
            table: table.clone(),
            batch_rows: self.opts.batch_rows,
            batch_bytes: self.opts.batch_bytes,
            key: key.clone(),
            constants,
            validation,
            // A record whose key is null has no key's value: inserted (or, updating,
            // that record's error), as oe-migration treats a falsy key.
            absent_when_null: if mode == WriteMode::Insert {
                Vec::new()
            } else {
                key.clone()
            },
        };
        let cfg = WriteConfig {
            mode,
            key,
            // Under rollback every failing record of the version is wanted, and the
            // files after this one should see its good rows: keep them in the
            // savepoint; the version's transaction decides at its end.
            on_error: if on_error == OnError::Stop {
                OnError::Stop
            } else {
                OnError::Skip
            },
            nested: true,
            capture: self.capture_for(&table, version),
            scope,
            ..WriteConfig::default()
        };
        let report = writer::write(self.conn, &table, &cfg, &source, self.progress)
            .await
            .map_err(|e| match e {
                WriteError::Db(e) => MigrateError::Db(e),
                WriteError::Source(e) => {
                    MigrateError::Source(format!("{e} ({label} of {meta}); version {version} was rolled back"))
                }
            })?;
        if report.inserted > 0 && !self.opts.dry_run {
            // Ids the file gave must not be generated again for later rows.
            lockgate_db::schema::catch_up_identity(self.conn, &table).await?;
        }
        step.rows_read = report.rows_read;
        step.inserted = report.inserted;
        step.updated = report.updated;
        step.unchanged = report.unchanged;
        step.deleted = report.deleted;
        step.failed = report.failed.len() as u64;
        let skipped = on_error == OnError::Skip;
        if skipped {
            step.skipped = step.failed;
        }
        let failures: Vec<RecordFailure> = report
            .failed
            .into_iter()
            .map(|error| RecordFailure {
                version: version.into(),
                table: table.name.to_string(),
                tenant: tenant.clone(),
                error,
                data: None,
                skipped,
            })
            .collect();
        let end = if !failures.is_empty() && !skipped {
            PartEnd::Failed
        } else {
            PartEnd::Done
        };
        Ok((step, failures, end))
    }
}

/// The database URL a script gets: a SQLite path made absolute, since scripts run
/// in their version folder.
/// The table a schema change concerns.
fn change_table(c: &SchemaChange) -> String {
    match c {
        SchemaChange::CreateTable(t) => t.name.name.clone(),
        SchemaChange::AddColumn { table, .. }
        | SchemaChange::AlterColumn { table, .. }
        | SchemaChange::DropColumn { table, .. }
        | SchemaChange::CreateIndex { table, .. } => table.name.clone(),
    }
}

fn count_records(path: &Path, entry: &FileEntry) -> Result<u64, MigrateError> {
    let mut reader =
        lockgate_bundle::open_records(path, entry.format).map_err(|e| MigrateError::Input(e.to_string()))?;
    let mut record = lockgate_bundle::Record::default();
    let mut n = 0;
    while reader
        .next_record(&mut record)
        .map_err(|e| MigrateError::Source(e.to_string()))?
    {
        n += 1;
    }
    Ok(n)
}

/// Deletes a table's rows (or a tenant's), capturing their images first.
async fn clear_table(
    conn: &mut Conn,
    table: &Table,
    tenants: Option<(&String, &Vec<String>)>,
    capture: Option<Capture>,
) -> Result<u64, MigrateError> {
    let tenant_values: Vec<Value> = tenants
        .map(|(_, list)| list.iter().map(|t| Value::Text(t.clone())).collect())
        .unwrap_or_default();
    let tenant_column =
        tenants.map(|(col, _)| table.column(col).map(|c| c.name.clone()).unwrap_or_else(|| col.clone()));
    let filter = match &tenant_column {
        None => rows::Filter::All,
        Some(col) => rows::Filter::In(col, &tenant_values),
    };
    if let Some(capture) = capture {
        // The images of the rows about to go, a page at a time (in key order) when the
        // table has a primary key; pages of a tenant's rows are filtered here.
        let key = writer::image_key(table);
        let tenant = tenants.map(|(col, list)| {
            let pos = table.column_index(col);
            (pos, list.iter().map(|t| Value::Text(t.clone())).collect::<Vec<_>>())
        });
        let image = |columns: &[String], row: &[Value]| {
            let before: serde_json::Map<String, serde_json::Value> =
                columns.iter().cloned().zip(row.iter().map(Value::to_json)).collect();
            RowImage {
                table: table.name.to_string(),
                op: 'd',
                key: key
                    .iter()
                    .map(|k| (k.clone(), before.get(k).cloned().unwrap_or_default()))
                    .collect(),
                before: Some(before),
                after: None,
                after_fingerprint: None,
            }
        };
        if table.primary_key.is_empty() {
            let all: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
            let images: Vec<RowImage> = rows::select_where(conn, table, filter)
                .await?
                .iter()
                .map(|r| image(&all, r))
                .collect();
            versions::write_images(conn, &capture.module, &capture.version, &images).await?;
        } else {
            let mut reader = lockgate_db::read::TableReader::new(table, None, 5_000)?;
            while let Some(batch) = reader.next_batch(conn).await? {
                let images: Vec<RowImage> = batch
                    .rows
                    .iter()
                    .filter(|r| match &tenant {
                        Some((Some(pos), list)) => list.contains(&r.values[*pos]),
                        _ => true,
                    })
                    .map(|r| image(&batch.columns, &r.values))
                    .collect();
                versions::write_images(conn, &capture.module, &capture.version, &images).await?;
            }
        }
    }
    Ok(rows::delete_where(conn, table, filter).await?)
}

/// Reads the failing records back from their files, so the log shows their data.
/// At most this many per version, to bound memory.
const MAX_FAILURE_DATA: usize = 1_000;

fn attach_data(failures: &mut [RecordFailure], p: &Pending) {
    let mut wanted: HashMap<String, HashSet<u64>> = HashMap::new();
    for f in failures.iter().take(MAX_FAILURE_DATA) {
        if let (Some(file), Some(line)) = (&f.error.file, f.error.line) {
            wanted.entry(file.clone()).or_default().insert(line);
        }
    }
    // Every record on a wanted line: a compact JSON array holds many on one line.
    let mut found: HashMap<(String, u64), Vec<serde_json::Map<String, serde_json::Value>>> = HashMap::new();
    for (file, lines) in wanted {
        let format = p
            .manifest
            .files
            .iter()
            .find(|e| p.dir.path.join(&e.file) == Path::new(&file))
            .and_then(|e| e.format);
        let Ok(mut reader) = lockgate_bundle::open_records(Path::new(&file), format) else {
            continue;
        };
        let last = lines.iter().copied().max().unwrap_or(0);
        let mut record = lockgate_bundle::Record::default();
        while reader.next_record(&mut record).unwrap_or(false) && record.line <= last {
            if lines.contains(&record.line) {
                let obj: serde_json::Map<String, serde_json::Value> = record
                    .fields
                    .iter()
                    .map(|(i, v)| {
                        let v = match v {
                            lockgate_bundle::RawValue::Null => serde_json::Value::Null,
                            lockgate_bundle::RawValue::Text(s) => serde_json::Value::String(s.clone()),
                            lockgate_bundle::RawValue::Json(j) => j.clone(),
                        };
                        (reader.columns()[*i].clone(), v)
                    })
                    .collect();
                found.entry((file.clone(), record.line)).or_default().push(obj);
            }
        }
    }
    let mut used: HashMap<(String, u64), HashSet<usize>> = HashMap::new();
    for f in failures.iter_mut() {
        let (Some(file), Some(line)) = (&f.error.file, f.error.line) else {
            continue;
        };
        let id = (file.clone(), line);
        let Some(records) = found.get(&id) else { continue };
        let taken = used.entry(id).or_default();
        let pick = if records.len() == 1 {
            Some(0)
        } else {
            // Several records on the line: the one whose fields match the failure's
            // key (`col=value, …`); none when the key cannot tell them apart.
            f.error.key.as_deref().and_then(|key| pick_by_key(records, key, taken))
        };
        if let Some(i) = pick {
            taken.insert(i);
            f.data = Some(serde_json::Value::Object(records[i].clone()));
        }
    }
}

/// Among records sharing a line, the one a failure's rendered key (`col=value, …`)
/// names: the most key parts matched by its fields, preferring one not yet given to
/// another failure.
fn pick_by_key(
    records: &[serde_json::Map<String, serde_json::Value>],
    key: &str,
    taken: &HashSet<usize>,
) -> Option<usize> {
    let parts: Vec<(String, &str)> = key
        .split(", ")
        .filter_map(|p| p.split_once('='))
        .map(|(c, v)| (c.to_lowercase(), v))
        .collect();
    let same = |j: &serde_json::Value, text: &str| match j {
        serde_json::Value::String(s) => s == text,
        serde_json::Value::Null => text == "NULL",
        serde_json::Value::Number(n) => {
            n.to_string() == text || matches!((n.as_f64(), text.parse::<f64>()), (Some(a), Ok(b)) if a == b)
        }
        serde_json::Value::Bool(b) => text == if *b { "true" } else { "false" },
        _ => false,
    };
    let score = |r: &serde_json::Map<String, serde_json::Value>| {
        parts
            .iter()
            .filter(|(c, v)| r.iter().any(|(k, j)| k.to_lowercase() == *c && same(j, v)))
            .count()
    };
    let best = records.iter().map(score).max().filter(|&s| s > 0)?;
    let matching: Vec<usize> = (0..records.len()).filter(|&i| score(&records[i]) == best).collect();
    matching
        .iter()
        .copied()
        .find(|i| !taken.contains(i))
        .or(matching.first().copied())
}
