//! What the pages and the API both do, on top of the `lockgate` library: read the
//! connections, runs, exports, migrations, logs and merges, and start the long
//! operations (exports, migrations, merges and their undo) as jobs. No SQL here, and one door to the database: every query is a typed call
//! into `lockgate` (its `dashboard` module for what only the dashboard reads).

use crate::error::AppError;
use crate::jobs::{JobFailure, JobOutcome, Progress};
use crate::pool::{Read, Wait};
use crate::state::{MergeDefinition, NamedConnection, Shared};
use lockgate::dashboard::{
    self, Attempt, BrowseError, BrowsePage, BrowseQuery, DbError, Export, LogEntry, LogFilter, Run,
};
use lockgate::merge;
use lockgate::transfer::{self, CreateOptions, RunOptions, Transfer, TransferEvent};
use lockgate::{MigrateOptions, StatusOptions};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A connection as the Overview shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    /// Its name.
    pub name: String,
    /// `sqlite`, `postgres` or `mysql`.
    pub engine: String,
    /// Its URL, password hidden.
    pub url: String,
    /// What the server uses it for: `migrations`, `source of T`, `destination of T`.
    pub roles: Vec<String>,
    /// Tables in it (Lockgate's own included), when it could be reached.
    pub tables: Option<usize>,
    /// Why it could not be reached.
    pub error: Option<String>,
}

/// Every configured connection, each tried.
pub async fn connections(st: &Shared) -> Vec<ConnectionInfo> {
    let mut out = Vec::new();
    for (i, c) in st.cfg.connections.iter().enumerate() {
        let mut roles = Vec::new();
        if st.cfg.migrate_db == Some(i) {
            roles.push("migrations".to_string());
        }
        for t in &st.cfg.transfers {
            if t.source.as_str() == c.url.as_str() {
                roles.push(format!("source of {}", t.name));
            }
            if t.dest.as_str() == c.url.as_str() {
                roles.push(format!("destination of {}", t.name));
            }
        }
        // Through the pool: a connection that answers proves the database reachable.
        let (tables, error) = match st
            .pools
            .read(c, Wait::Brief, |db| Box::pin(db.tables()), |e| db_error(c, e))
            .await
        {
            Ok(t) => (Some(t.value.len()), None),
            Err(e) => (None, Some(e.message)),
        };
        out.push(ConnectionInfo {
            name: c.name.clone(),
            engine: format!("{:?}", c.url.engine).to_lowercase(),
            url: c.url.redacted(),
            roles,
            tables,
            error,
        });
    }
    out
}

/// A ledger run and the database it is recorded in.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunInfo {
    /// The connection whose ledger holds it.
    pub connection: String,
    /// The run.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub run: Run,
}

/// The databases that can hold a ledger: the migrations' and the transfers'
/// destinations, each once.
fn ledger_connections(st: &Shared) -> Vec<NamedConnection> {
    let mut out: Vec<NamedConnection> = Vec::new();
    let mut add = |c: NamedConnection| {
        if !out.iter().any(|o| o.url.as_str() == c.url.as_str()) {
            out.push(c);
        }
    };
    if let Some(c) = st.cfg.migrate_conn() {
        add(c.clone());
    }
    for t in &st.cfg.transfers {
        let name = st
            .cfg
            .connections
            .iter()
            .find(|c| c.url.as_str() == t.dest.as_str())
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("{} destination", t.name));
        add(NamedConnection {
            name,
            url: t.dest.clone(),
        });
    }
    out
}

/// The latest runs of every ledger (whoever started them), newest first, and the
/// ledgers that could not be read.
pub async fn runs(st: &Shared, limit: u32) -> (Vec<RunInfo>, Vec<String>) {
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for c in ledger_connections(st) {
        let result = st
            .pools
            .read(&c, Wait::Brief, |db| Box::pin(db.runs(limit)), |e| db_error(&c, e))
            .await
            .map(|r| r.value);
        match result {
            Ok(Some(runs)) => all.extend(runs.into_iter().map(|run| RunInfo {
                connection: c.name.clone(),
                run,
            })),
            Ok(None) => {}
            Err(e) => errors.push(e.message),
        }
    }
    all.sort_by(|a, b| b.run.started_at.cmp(&a.run.started_at));
    all.truncate(limit as usize);
    (all, errors)
}

/// A transfer as the Exports page shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TransferInfo {
    /// Its name.
    pub name: String,
    /// Where rows come from.
    pub source: String,
    /// Where they go.
    pub dest: String,
    /// The destination table.
    pub dest_table: String,
    /// Source rows no pending, running or completed export holds: the Export
    /// button is enabled when this is above 0.
    pub available: Option<i64>,
    /// Exports waiting to run.
    pub pending: usize,
    /// Its exports, newest first.
    #[schema(value_type = Vec<Object>)]
    pub exports: Vec<Export>,
    /// Why the figures above could not be read.
    pub error: Option<String>,
}

fn transfer_error(e: transfer::TransferError) -> AppError {
    AppError::from_exit(e.exit_code(), e.to_string())
}

/// A configured transfer by name.
pub fn find_transfer<'a>(st: &'a Shared, name: &str) -> Result<&'a Transfer, AppError> {
    st.cfg.transfer(name).ok_or_else(|| {
        let names: Vec<&str> = st.cfg.transfers.iter().map(|t| t.name.as_str()).collect();
        AppError::not_found(format!(
            "there is no transfer {name:?}: the transfers are {}",
            if names.is_empty() {
                "none (define one in lockgate.toml under [transfers.NAME])".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// How long the Export button's count is reused: counting means reading every source
/// key (as `transfer create --dry-run` does), too much for each page view of a large
/// table. Actions taken here (create, process, generate) refresh it at once.
const AVAILABLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// One transfer's figures and exports.
pub async fn transfer_info(st: &Shared, t: &Transfer, limit: u32) -> TransferInfo {
    let mut info = TransferInfo {
        name: t.name.clone(),
        source: t.source.redacted(),
        dest: t.dest.redacted(),
        dest_table: t.dest_table.clone(),
        available: None,
        pending: 0,
        exports: Vec::new(),
        error: None,
    };
    match transfer::list(&t.dest, Some(&t.name), limit).await {
        Ok(exports) => {
            info.pending = exports.iter().filter(|e| e.status == "pending").count();
            info.exports = exports;
        }
        Err(e) => info.error = Some(e.to_string()),
    }
    let cached = st
        .available
        .lock()
        .expect("available lock")
        .get(&t.name)
        .filter(|(at, _)| at.elapsed() < AVAILABLE_FOR)
        .map(|(_, n)| *n);
    if let Some(n) = cached {
        info.available = Some(n);
        return info;
    }
    // The same check as `transfer create`, without creating anything.
    let generation = st.available_generation.load(std::sync::atomic::Ordering::SeqCst);
    match transfer::create(t, &CreateOptions { dry_run: true }).await {
        Ok(r) => {
            info.available = Some(r.available);
            let mut cache = st.available.lock().expect("available lock");
            // A create, process or generate that ended meanwhile made this count old.
            if st.available_generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                cache.insert(t.name.clone(), (std::time::Instant::now(), r.available));
            }
        }
        Err(e) => info.error = Some(info.error.take().map_or(e.to_string(), |m| format!("{m}; {e}"))),
    }
    info
}

/// Forgets the Export buttons' counts (after anything that may change them).
pub fn forget_available(st: &Shared) {
    let mut cache = st.available.lock().expect("available lock");
    st.available_generation
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    cache.clear();
}

/// Every transfer's figures.
pub async fn transfers(st: &Shared) -> Vec<TransferInfo> {
    let mut out = Vec::new();
    for t in &st.cfg.transfers {
        out.push(transfer_info(st, t, 100).await);
    }
    out
}

/// An export with its failing rows.
pub async fn export_detail(t: &Transfer, id: i64) -> Result<transfer::ExportDetail, AppError> {
    transfer::show(&t.dest, id).await.map_err(transfer_error)
}

/// Every export of `t` that attempted the row with key `key`.
pub async fn history(t: &Transfer, key: &str) -> Result<Vec<Attempt>, AppError> {
    transfer::history(&t.dest, key, Some(&t.name))
        .await
        .map_err(transfer_error)
}

fn migrate_conn(st: &Shared) -> Result<&NamedConnection, AppError> {
    st.cfg.migrate_conn().ok_or_else(|| {
        AppError::bad(
            "no database for migrations is configured: start the server with --db URL (or a connection named in lockgate.toml)",
        )
    })
}

/// The migration status of the configured module and folder.
pub async fn migration_status(st: &Shared) -> Result<lockgate::StatusReport, AppError> {
    let c = migrate_conn(st)?;
    // Without the folder, the page still shows what the database has applied.
    let dir = st.cfg.migrations_dir.is_dir().then(|| st.cfg.migrations_dir.clone());
    let opts = StatusOptions {
        dir,
        module: st.cfg.module.clone(),
        ..StatusOptions::default()
    };
    lockgate::status(&c.url, &opts)
        .await
        .map_err(|e| AppError::from_exit(e.exit_code(), e.to_string()))
}

/// Every module the migrations' database has applied versions of, with its version
/// (empty when it has no ledger yet).
pub async fn modules(st: &Shared) -> Result<Vec<(String, String)>, AppError> {
    let c = migrate_conn(st)?;
    let read = st
        .pools
        .read(c, Wait::Queue, |db| Box::pin(db.modules()), |e| db_error(c, e));
    Ok(read.await?.value)
}

/// The migration log, filtered; empty when the database has no ledger yet.
pub async fn logs(st: &Shared, filter: &LogFilter) -> Result<Vec<LogEntry>, AppError> {
    let c = migrate_conn(st)?;
    // Owned in the read (a boxed future borrows only the connection).
    let read = st.pools.read(
        c,
        Wait::Queue,
        |db| {
            let filter = filter.clone();
            Box::pin(async move { db.logs(&filter).await })
        },
        |e| db_error(c, e),
    );
    Ok(read.await?.value)
}

/// The tables of a connection.
pub async fn tables(st: &Shared, c: &NamedConnection) -> Result<Vec<String>, AppError> {
    let read = st
        .pools
        .read(c, Wait::Queue, |db| Box::pin(db.tables()), |e| db_error(c, e));
    Ok(read.await?.value)
}

fn db_error(c: &NamedConnection, e: DbError) -> AppError {
    AppError::from_exit(e.exit_code(), format!("connection {}: {e}", c.name))
}

/// One page of a table (with how its connection was had, for the Server-Timing
/// header).
pub async fn browse_table(
    st: &Shared,
    c: &NamedConnection,
    table: &str,
    q: &BrowseQuery,
) -> Result<Read<BrowsePage>, AppError> {
    let fail = |e: BrowseError| {
        if e.is_bad_request() {
            AppError::bad(format!("connection {}: {e}", c.name))
        } else {
            AppError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("connection {}: {e}", c.name),
            )
        }
    };
    // Owned in the read (a boxed future borrows only the connection).
    let read = st.pools.read(
        c,
        Wait::Queue,
        |db| {
            let (table, q) = (table.to_string(), q.clone());
            Box::pin(async move { db.browse(&table, &q).await })
        },
        fail,
    );
    read.await
}

/// A connection by name.
pub fn find_connection<'a>(st: &'a Shared, name: &str) -> Result<&'a NamedConnection, AppError> {
    st.cfg.connection(name).ok_or_else(|| {
        let names: Vec<&str> = st.cfg.connections.iter().map(|c| c.name.as_str()).collect();
        AppError::not_found(format!(
            "there is no connection {name:?}: the connections are {}",
            names.join(", ")
        ))
    })
}

/// A connection that a job may write: not a profile's own database, which the server
/// knows only to take snapshots from (`profiles.NAME`, added for a profile whose `db`
/// lockgate.toml does not name as a connection).
pub fn writable_connection<'a>(st: &'a Shared, name: &str) -> Result<&'a NamedConnection, AppError> {
    let c = find_connection(st, name)?;
    if let Some(profile) = c.name.strip_prefix("profiles.") {
        return Err(AppError::bad(format!(
            "{} is the database profile {profile} takes snapshots from, not a connection to write; name a \
             [connections.NAME] of lockgate.toml",
            c.name
        )));
    }
    Ok(c)
}

/// Starts running every pending export of every transfer (the seed's `/process`).
pub fn start_process(st: &Shared) -> u64 {
    let transfers = st.cfg.transfers.clone();
    let state = Arc::clone(st);
    st.jobs
        .spawn("process", "Run pending exports".into(), move |p| async move {
            let _refresh = Refresh(state);
            let (tx, rx) = mpsc::unbounded_channel();
            let forward = tokio::spawn(forward_transfer_events(rx, p));
            let opts = RunOptions {
                progress: Some(tx),
                holder: "lockgate serve (/process)".into(),
                ..RunOptions::default()
            };
            let result = transfer::run_pending(&transfers, &opts).await;
            drop(opts);
            let _ = forward.await;
            let report = result.map_err(|e| JobFailure::new(e.exit_code(), e.to_string()))?;
            let completed = report.exports.iter().filter(|e| e.export.status == "completed").count();
            let failed = report.exports.iter().filter(|e| e.export.status == "failed").count();
            let message = if report.exports.is_empty() {
                "no pending exports".to_string()
            } else {
                format!(
                    "{} export(s) ran: {completed} completed, {failed} failed",
                    report.exports.len()
                )
            };
            Ok(JobOutcome {
                exit_code: None,
                failed: report.exit_code() != 0,
                result: serde_json::to_value(&report).map_err(|e| JobFailure::new(1, e.to_string()))?,
                message,
            })
        })
}

async fn forward_transfer_events(mut rx: mpsc::UnboundedReceiver<TransferEvent>, p: Progress) {
    while let Some(e) = rx.recv().await {
        match e {
            TransferEvent::Claimed { id, transfer, rows } => p.set(
                0,
                Some(rows.max(0) as u64),
                Some(format!("export {id} of {transfer}: started")),
            ),
            TransferEvent::Progress { id, phase, done, total } => {
                p.set(done, Some(total), Some(format!("export {id}: {phase}")))
            }
            TransferEvent::Finished { id, status } => p.set_message(format!("export {id}: {status}")),
            TransferEvent::Error { message } | TransferEvent::Warning { message } => p.set_message(message),
        }
    }
}

/// Starts creating an export of `t`.
pub fn start_create(st: &Shared, t: &Transfer) -> u64 {
    let t = t.clone();
    let state = Arc::clone(st);
    st.jobs.spawn(
        "create_export",
        format!("Create an export of {}", t.name),
        move |_| async move {
            let _refresh = Refresh(state);
            let r = transfer::create(&t, &CreateOptions { dry_run: false })
                .await
                .map_err(|e| JobFailure::new(e.exit_code(), e.to_string()))?;
            let message = match &r.export {
                Some(e) => format!(
                    "export {} created with {} rows: run pending exports to send them",
                    e.id, e.rows
                ),
                None => "nothing to export: every row is in a completed, running or pending export".to_string(),
            };
            Ok(JobOutcome {
                exit_code: None,
                failed: false,
                result: serde_json::to_value(&r).map_err(|e| JobFailure::new(1, e.to_string()))?,
                message,
            })
        },
    )
}

/// Forgets the Export buttons' counts when dropped: at the end of a job that may
/// change them, however it ends.
pub(crate) struct Refresh(pub(crate) Shared);

impl Drop for Refresh {
    fn drop(&mut self) {
        forget_available(&self.0);
    }
}

/// Where a migration reads its versions from.
pub enum MigrateFrom {
    /// The configured folder.
    Folder,
    /// An uploaded zip, unpacked and checked by [`unpack_upload`] (the folder is
    /// removed when the job ends).
    Upload(lockgate::migrate::Unpacked),
}

/// Unpacks an uploaded zip (on a blocking thread: it is file work) and refuses it,
/// before anything runs, when it holds process scripts, or `.sql` scripts that reach
/// outside the database (run programs on the database server, read or write its
/// files), and the server was not told to allow them (`[server] upload_scripts =
/// true`). Bad zips are refused here too.
pub async fn unpack_upload(st: &Shared, zip: tempfile::TempPath) -> Result<MigrateFrom, AppError> {
    let limits = lockgate::MigrateOptions::default().zip_limits;
    let unpacked = tokio::task::spawn_blocking(move || lockgate::migrate::unpack_zip(&zip, &limits))
        .await
        .map_err(|e| {
            AppError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("unpacking the upload stopped: {e}"),
            )
        })?
        .map_err(|e| AppError::from_exit(e.exit_code(), e.to_string()))?;
    if !st.cfg.upload_scripts && !unpacked.process_scripts().is_empty() {
        return Err(AppError::bad(format!(
            "the zip holds process scripts, which this server does not run from uploads: {}; \
             remove them (.sql scripts are allowed), or, if everyone who can upload here may run programs \
             as the server's user, set upload_scripts = true under [server] in lockgate.toml",
            unpacked.process_scripts().join(", ")
        )));
    }
    if !st.cfg.upload_scripts {
        if let Some(why) = unpacked.sql_outside_the_database() {
            return Err(AppError::bad(format!(
                "{why}; nothing was run (set upload_scripts = true under [server] in lockgate.toml only if everyone \
                 who can upload here may run programs as the server's user)"
            )));
        }
    }
    Ok(MigrateFrom::Upload(unpacked))
}

/// Starts a migration (or its dry run).
pub fn start_migrate(st: &Shared, from: MigrateFrom, dry_run: bool) -> Result<u64, AppError> {
    let c = migrate_conn(st)?.clone();
    let upload_scripts = st.cfg.upload_scripts;
    let mut opts = MigrateOptions {
        dir: st.cfg.migrations_dir.clone(),
        module: st.cfg.module.clone(),
        dry_run,
        ..MigrateOptions::default()
    };
    if matches!(from, MigrateFrom::Folder) && !st.cfg.migrations_dir.is_dir() {
        return Err(AppError::bad(format!(
            "there is no folder {} to migrate from: create it with version folders (1.0.0/meta.json, data files), \
             or upload a zip",
            st.cfg.migrations_dir.display()
        )));
    }
    let (kind, title) = match &from {
        MigrateFrom::Folder => (
            if dry_run { "migrate_dry_run" } else { "migrate" },
            format!(
                "{} {} into {}",
                if dry_run {
                    "Dry run of migrate from"
                } else {
                    "Migrate from"
                },
                st.cfg.migrations_dir.display(),
                c.name
            ),
        ),
        MigrateFrom::Upload(_) => ("upload", format!("Migrate an uploaded zip into {}", c.name)),
    };
    Ok(st.jobs.spawn(kind, title, move |p| async move {
        let _keep = match from {
            MigrateFrom::Upload(unpacked) => {
                opts.dir = unpacked.root().to_path_buf();
                // Checked when it was unpacked; the library checks again.
                opts.allow_process_scripts = upload_scripts;
                Some(unpacked)
            }
            MigrateFrom::Folder => None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<dashboard::Progress>();
        let forward = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                p.set(e.rows, None, Some(e.phase.to_string()));
            }
        });
        // Unpacking a zip and reading version folders is file work that would hold an
        // async worker thread: the migration runs on a blocking thread of its own.
        let handle = tokio::runtime::Handle::current();
        let result = tokio::task::spawn_blocking(move || handle.block_on(lockgate::migrate(&c.url, &opts, Some(tx))))
            .await
            .map_err(|e| JobFailure::new(1, format!("the migration stopped unexpectedly: {e}")))?;
        let _ = forward.await;
        let report = result.map_err(|e| JobFailure::new(e.exit_code(), e.to_string()))?;
        let message = match (&report.failed_version, &report.migrated_versions) {
            (Some(v), _) => format!("version {v} failed and was rolled back: see its errors below"),
            (None, Some(vs)) if !vs.is_empty() => format!(
                "{} {}",
                if report.dry_run { "would migrate" } else { "migrated" },
                vs.join(", ")
            ),
            _ => "nothing to migrate: every version is applied".to_string(),
        };
        Ok(JobOutcome {
            exit_code: None,
            failed: report.exit_code() != 0,
            result: serde_json::to_value(&report).map_err(|e| JobFailure::new(1, e.to_string()))?,
            message,
        })
    }))
}

/// Starts adding `n` demo customers (demo mode).
pub fn start_generate(st: &Shared, n: i64) -> Result<u64, AppError> {
    let dir =
        st.cfg.demo.clone().ok_or_else(|| {
            AppError::not_found("sample customers can only be generated in demo mode (`lockgate demo`)")
        })?;
    check_generate(n)?;
    let state = Arc::clone(st);
    Ok(st.jobs.spawn(
        "generate",
        format!("Generate {n} sample customers"),
        move |_| async move {
            let _refresh = Refresh(state);
            let ids = lockgate::demo::generate(&dir, n)
                .await
                .map_err(|e| JobFailure::new(e.exit_code(), e.to_string()))?;
            Ok(JobOutcome {
                exit_code: None,
                failed: false,
                result: serde_json::json!({"added": n, "first_id": ids.start, "last_id": ids.end - 1}),
                message: format!("added {n} customers (CustomerID {} to {})", ids.start, ids.end - 1),
            })
        },
    ))
}

/// The Generate Sample Customers form's rule: 1 to 500.
pub fn check_generate(n: i64) -> Result<(), AppError> {
    if (1..=lockgate::demo::MAX_GENERATE).contains(&n) {
        Ok(())
    } else {
        Err(AppError::bad(format!(
            "generate between 1 and {} customers at a time (got {n})",
            lockgate::demo::MAX_GENERATE
        )))
    }
}

/// Which tables a dump takes.
#[derive(Clone, Debug, Default)]
pub struct DumpRequest {
    /// These tables.
    pub tables: Vec<String>,
    /// Every table (plus `tables`).
    pub all: bool,
    /// With `all`: without system tables.
    pub exclude_system: bool,
}

/// Dumps the migrations' database into a zip in a temporary folder (kept until the
/// returned guard is dropped) and returns its path and file name.
pub async fn dump_zip(st: &Shared, req: &DumpRequest) -> Result<(tempfile::TempDir, PathBuf, String), AppError> {
    let c = migrate_conn(st)?;
    if req.tables.is_empty() && !req.all {
        return Err(AppError::bad(
            "say which tables to download: tables=A,B (tableList=A,B), or all=true (exportAllTables=true)",
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| {
        AppError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("a temporary folder: {e}"),
        )
    })?;
    let out = dir.path().join("dump.zip");
    let opts = lockgate::DumpOptions {
        tables: req.tables.clone(),
        all: req.all,
        exclude_system: req.exclude_system,
        out: out.clone(),
        module: st.cfg.module.clone(),
        ..lockgate::DumpOptions::default()
    };
    // Writing the files and the zip is file work: on a blocking thread, as above.
    let handle = tokio::runtime::Handle::current();
    let url = c.url.clone();
    let report = tokio::task::spawn_blocking(move || handle.block_on(lockgate::dump(&url, &opts)))
        .await
        .map_err(|e| {
            AppError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the dump stopped: {e}"),
            )
        })?
        .map_err(|e| AppError::from_exit(e.exit_code(), e.to_string()))?;
    let name = format!("{}-{}.zip", c.name, report.version);
    Ok((dir, out, name))
}

// ---------------------------------------------------------------- merges

/// The most row-level changes a preview's job keeps (the rest are counted): a
/// preview of a million rows keeps the first thousand, as `merge show` lists them.
pub const PREVIEW_CHANGES: usize = 1000;

fn merge_error(e: merge::MergeError) -> AppError {
    AppError::from_exit(e.exit_code(), e.to_string())
}

/// A merge definition by name; an unknown one lists those there are.
pub fn find_merge_definition<'a>(st: &'a Shared, name: &str) -> Result<&'a MergeDefinition, AppError> {
    st.cfg.merge_definition(name).ok_or_else(|| {
        let names: Vec<&str> = st.cfg.merges.iter().map(|m| m.name.as_str()).collect();
        AppError::not_found(format!(
            "there is no merge definition {name:?}: the definitions are {}",
            if names.is_empty() {
                "none (define one in lockgate.toml under [merges.NAME])".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// The connection a merge request works on: the one it names, else its
/// definition's, else the server's default database. Only the server's named
/// connections can be merged: a request never gives a URL.
pub fn merge_connection<'a>(
    st: &'a Shared,
    conn: Option<&str>,
    def: Option<&MergeDefinition>,
) -> Result<&'a NamedConnection, AppError> {
    if let Some(name) = conn.map(str::trim).filter(|c| !c.is_empty()) {
        return writable_connection(st, name);
    }
    def.and_then(|d| d.conn)
        .or(st.cfg.migrate_db)
        .and_then(|i| st.cfg.connections.get(i))
        .ok_or_else(|| {
            let names: Vec<&str> = st.cfg.connections.iter().map(|c| c.name.as_str()).collect();
            AppError::bad(format!(
                "say which connection: conn=NAME (the connections are {})",
                names.join(", ")
            ))
        })
}

/// The merges recorded in a connection's database, newest first (none when it
/// has no history yet).
pub async fn merge_history(c: &NamedConnection, limit: u32) -> Result<Vec<merge::MergeSummary>, AppError> {
    merge::history(&c.url, limit)
        .await
        .map_err(|e| named(c, merge_error(e)))
}

/// One merge with its first [`PREVIEW_CHANGES`] row-level changes.
pub async fn merge_show(c: &NamedConnection, id: i64) -> Result<merge::MergeDetail, AppError> {
    merge::show(&c.url, id, PREVIEW_CHANGES as u64)
        .await
        .map_err(|e| named(c, merge_error(e)))
}

/// Every reference to the table a merge would re-point: the definition's table
/// and declared references, or `table` over them (read as a merge reads them).
pub async fn merge_refs(
    c: &NamedConnection,
    def: Option<&MergeDefinition>,
    table: Option<String>,
) -> Result<(String, Vec<merge::Reference>), AppError> {
    let over = merge::MergeOverrides {
        table,
        ..merge::MergeOverrides::default()
    };
    let o = merge::options(def.map(|d| (d.name.as_str(), &d.spec)), over).map_err(merge_error)?;
    let refs = merge::references(&c.url, &o.table, &o.references, &o.skip_tables)
        .await
        .map_err(|e| named(c, merge_error(e)))?;
    Ok((o.table, refs))
}

/// Names the connection in an error's message.
fn named(c: &NamedConnection, mut e: AppError) -> AppError {
    e.message = format!("connection {}: {}", c.name, e.message);
    e
}

/// Keys as a request writes them: one text as `--from` writes it (`"1,2"`,
/// `"1:5,1:6"`), or a list of such texts (or numbers).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
#[serde(untagged)]
pub enum KeyList {
    /// One text, or one number.
    One(KeyText),
    /// A list.
    Many(Vec<KeyText>),
}

/// A key's text, or a number (a JSON body may write `"into": 1`).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
#[serde(untagged)]
pub enum KeyText {
    /// As written.
    Text(String),
    /// A number, as its text.
    Number(serde_json::Number),
}

impl KeyText {
    /// The text.
    pub fn text(&self) -> String {
        match self {
            KeyText::Text(s) => s.clone(),
            KeyText::Number(n) => n.to_string(),
        }
    }
}

impl KeyList {
    /// The texts, each as `--from` writes them.
    pub fn texts(&self) -> Vec<String> {
        match self {
            KeyList::One(k) => vec![k.text()],
            KeyList::Many(ks) => ks.iter().map(KeyText::text).collect(),
        }
    }
}

/// A merge to run or preview: `POST /api/merges`'s body, and the Merge page's form.
/// What it leaves out comes from the definition (`def`), as flags over a
/// definition on the command line.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The connection (one of the server's); default the definition's, else the
    /// server's default database.
    #[serde(default)]
    pub conn: Option<String>,
    /// A merge definition (`[merges.NAME]`).
    #[serde(default)]
    pub def: Option<String>,
    /// The merged table (default the definition's).
    #[serde(default)]
    pub table: Option<String>,
    /// The rows to merge away: `["1", "2"]` or `"1,2"`; a composite key's parts
    /// separated by `:` in key order, `\` escaping `,` `:` `\`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub from: Option<KeyList>,
    /// The row to merge into (one key, written as in `from`).
    #[serde(default)]
    #[schema(value_type = String)]
    pub into: Option<KeyText>,
    /// Only show what would change (recorded in the history as a preview).
    #[serde(default)]
    pub preview: bool,
    /// Merge conflicting rows into their counterparts instead of aborting.
    #[serde(default)]
    pub merge_conflicts: bool,
    /// What happens to the sources: `keep`, `delete` or `set:COL=EXPR,…`.
    #[serde(default)]
    pub sources: Option<String>,
    /// What happens to conflicting rows merged into their counterparts.
    #[serde(default)]
    pub conflict_rows: Option<String>,
    /// Referencing tables to leave alone (added to the definition's).
    #[serde(default)]
    pub skip_tables: Vec<String>,
    /// Declared references, `jobs.byPuid -> customers.id` (added to the definition's).
    #[serde(default)]
    pub references: Vec<String>,
}

/// An action text, or 400 naming the field.
fn row_action(field: &str, text: &Option<String>) -> Result<Option<merge::RowAction>, AppError> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| merge::RowAction::parse(t).map_err(|e| AppError::bad(format!("{field}: {e}"))))
        .transpose()
}

/// Checks a merge request and starts it as a job (`merge` or `merge_preview`).
/// What needs no database is refused here (400): an unknown definition or
/// connection, no table, an action that does not parse, no sources or target;
/// the rest (the table, the keys, the actions' columns) by the engine in the job,
/// which then fails with exit code 2 (400 with `?wait=true`).
pub fn start_merge(st: &Shared, mut req: MergeRequest) -> Result<u64, AppError> {
    let def = match req.def.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(name) => Some(find_merge_definition(st, name)?.clone()),
        None => None,
    };
    let c = merge_connection(st, req.conn.as_deref(), def.as_ref())?.clone();
    let from = req.from.as_ref().map(KeyList::texts).unwrap_or_default();
    let from: Vec<String> = from.into_iter().filter(|f| !f.trim().is_empty()).collect();
    let into = req.into.as_ref().map(KeyText::text).filter(|i| !i.trim().is_empty());
    if from.is_empty() {
        return Err(AppError::bad(
            "no sources given: name the rows to merge away in `from` (\"1,2\" or [\"1\", \"2\"])",
        ));
    }
    if into.is_none() {
        return Err(AppError::bad("no target given: name the row to merge into in `into`"));
    }
    let over = merge::MergeOverrides {
        table: req.table.clone(),
        from: from.clone(),
        into: into.clone(),
        preview: req.preview,
        merge_conflicts: req.merge_conflicts,
        sources: row_action("sources", &req.sources)?,
        conflict_rows: row_action("conflict_rows", &req.conflict_rows)?,
        skip_tables: req.skip_tables.clone(),
        references: req.references.clone(),
        ..merge::MergeOverrides::default()
    };
    let opts = merge::options(def.as_ref().map(|d| (d.name.as_str(), &d.spec)), over).map_err(merge_error)?;
    // The request as it ran, for the job's page (its Merge button repeats it).
    req.conn = Some(c.name.clone());
    req.def = def.as_ref().map(|d| d.name.clone());
    req.table = Some(opts.table.clone());
    req.from = Some(KeyList::Many(from.iter().cloned().map(KeyText::Text).collect()));
    req.into = into.clone().map(KeyText::Text);
    req.merge_conflicts = opts.merge_conflicts;
    let echo = serde_json::to_value(&req).unwrap_or_default();
    let preview = opts.preview;
    let title = format!(
        "{} {} {} into {} ({})",
        if preview { "Preview: merge" } else { "Merge" },
        opts.table,
        from.join(", "),
        into.unwrap_or_default(),
        c.name
    );
    let state = Arc::clone(st);
    let kind = if preview { "merge_preview" } else { "merge" };
    Ok(st.jobs.spawn(kind, title, move |_| async move {
        let _refresh = (!preview).then(|| Refresh(state));
        let mut changes: Vec<merge::Change> = Vec::new();
        let mut more = 0u64;
        let mut keep = |ch: merge::Change| {
            if changes.len() < PREVIEW_CHANGES {
                changes.push(ch);
            } else {
                more += 1;
            }
        };
        let sink: Option<&mut (dyn FnMut(merge::Change) + Send)> = if preview { Some(&mut keep) } else { None };
        let report = merge::merge(&c.url, &opts, sink)
            .await
            .map_err(|e| JobFailure::new(e.exit_code(), format!("connection {}: {e}", c.name)))?;
        let mut result = serde_json::to_value(&report).map_err(|e| JobFailure::new(1, e.to_string()))?;
        if preview {
            result["changes"] = serde_json::to_value(&changes).unwrap_or_default();
            result["changes_truncated"] = serde_json::Value::Bool(more > 0);
        }
        result["request"] = echo;
        let tables = report.tables.iter().filter(|t| t.rows > 0).count();
        // The engine reads a bounded number of conflicts per unique key and says so.
        let conflicts = format!(
            "{}{}",
            if result["conflicts_truncated"].as_bool() == Some(true) { "at least " } else { "" },
            report.conflicts.len()
        );
        let any_conflict = !report.conflicts.is_empty();
        let message = match report.status {
            merge::MergeStatus::Preview if any_conflict && !report.conflicts_merged => format!(
                "would re-point {} rows in {tables} table(s), but {conflicts} conflict(s) would abort the merge: \
                 merge them into their counterparts, or resolve them first",
                report.total_rows
            ),
            merge::MergeStatus::Preview => format!(
                "would re-point {} rows in {tables} table(s){}",
                report.total_rows,
                if any_conflict {
                    format!(", merging {conflicts} conflicting row(s) into their counterparts")
                } else {
                    String::new()
                }
            ),
            merge::MergeStatus::Completed => format!(
                "merge {}: {} rows re-pointed in {tables} table(s)",
                report.id.map(|i| i.to_string()).unwrap_or_default(),
                report.total_rows
            ),
            merge::MergeStatus::AbortedConflicts => format!(
                "aborted on {conflicts} conflict(s), nothing was changed: merge them into their counterparts, or resolve them first"
            ),
            _ => format!(
                "failed and rolled back, nothing was changed: {}",
                report.error.as_deref().unwrap_or("see the report")
            ),
        };
        // A preview did what it was asked, conflicts or not (they are in its report).
        let code = match report.status {
            merge::MergeStatus::Preview => 0,
            _ => report.exit_code(),
        };
        Ok(JobOutcome {
            failed: code != 0,
            exit_code: Some(code),
            result,
            message,
        })
    }))
}

/// Starts undoing merge `id` of connection `c` (or its preview) as a job
/// (`merge_undo`, `merge_undo_preview`). Rows changed since the merge stop it
/// unless `overwrite`: the job then fails with exit code 4 and its report (status
/// `changed`) lists them.
pub fn start_undo(st: &Shared, c: &NamedConnection, id: i64, preview: bool, overwrite: bool) -> u64 {
    let c = c.clone();
    let state = Arc::clone(st);
    let kind = if preview { "merge_undo_preview" } else { "merge_undo" };
    let title = format!(
        "{} merge {id} ({}){}",
        if preview { "Preview: undo" } else { "Undo" },
        c.name,
        if overwrite {
            ", overwriting rows changed since"
        } else {
            ""
        }
    );
    st.jobs.spawn(kind, title, move |_| async move {
        let _refresh = (!preview).then(|| Refresh(state));
        let opts = merge::UndoOptions {
            preview,
            overwrite,
            ..merge::UndoOptions::default()
        };
        let r = merge::undo(&c.url, id, &opts)
            .await
            .map_err(|e| JobFailure::new(e.exit_code(), format!("connection {}: {e}", c.name)))?;
        let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
        let message = match r.status.as_str() {
            "changed" => format!(
                "{} row(s) changed since the merge, so nothing was undone: look at them below, then undo with \
                 overwrite to put the merge's rows back anyway",
                r.changed.len()
            ),
            "preview" if r.changed.is_empty() => format!(
                "would put back {rows} re-pointed rows and {} rows merged away",
                r.rows_restored
            ),
            "preview" => format!(
                "would put back {rows} re-pointed rows and {} rows merged away; {} row(s) changed since the merge \
                 stop the undo unless it overwrites them",
                r.rows_restored,
                r.changed.len()
            ),
            _ => format!(
                "merge {id} undone: {rows} rows re-pointed back, {} rows merged away put back",
                r.rows_restored
            ),
        };
        let mut result = serde_json::to_value(&r).map_err(|e| JobFailure::new(1, e.to_string()))?;
        result["request"] = serde_json::json!({ "conn": c.name, "id": id, "overwrite": overwrite });
        let code = r.exit_code();
        Ok(JobOutcome {
            failed: code != 0,
            exit_code: Some(code),
            result,
            message,
        })
    })
}
