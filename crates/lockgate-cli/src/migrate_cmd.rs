//! The migration commands: `migrate`, `status`, `log` and `rollback`, with their
//! human reports (JSON with `--json`).

use crate::render;
use clap::Args;
use lockgate::db::versions::{LogEntry, LogFilter};
use lockgate::db::writer::OnError;
use lockgate::migrate::{MigrateReport, StepReport, VersionStatus};
use lockgate::{MigrateOptions, RollbackOptions, RollbackReport, StatusOptions, StatusReport};
use lockgate_bundle::Version;
use std::path::PathBuf;
use std::time::Duration;

/// `lockgate migrate`.
#[derive(Args)]
pub struct MigrateArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The folder of version folders (x.y.z/meta.json …).
    #[arg(long, default_value = "db")]
    dir: PathBuf,
    /// Read the same layout from a zip instead.
    #[arg(long, conflicts_with = "dir")]
    zip: Option<PathBuf>,
    #[command(flatten)]
    zip_limits: ZipLimitArgs,
    /// The module whose version is tracked.
    #[arg(long, default_value = "./")]
    module: String,
    /// Re-apply every version (within --from/--to), applied or not.
    #[arg(long)]
    force: bool,
    /// Apply no version below this one.
    #[arg(long)]
    from: Option<Version>,
    /// Apply no version above this one.
    #[arg(long)]
    to: Option<Version>,
    /// Show what each version would do (per file: rows inserted, updated, deleted,
    /// unchanged) and keep nothing.
    #[arg(long)]
    dry_run: bool,
    /// rollback (a version with a failing record keeps nothing), skip (skip failing
    /// records, log them as WARN) or stop; meta.json's onError wins.
    #[arg(long = "on-error", default_value = "rollback")]
    on_error: OnError,
    /// The tenant column of multi-tenant tables.
    #[arg(long, default_value = "tenant_id")]
    tenant_column: String,
    /// How long a process script may run (300, 300s, 5m).
    #[arg(long, default_value = "5m", value_parser = crate::duration)]
    script_timeout: Duration,
    /// How long to wait for another migrate of the same module (600, 10m).
    #[arg(long, default_value = "10m", value_parser = crate::duration)]
    lock_timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Print every failing record with its data.
    #[arg(long)]
    verbose: bool,
}

/// Limits on what a zip may expand to.
#[derive(Args)]
pub struct ZipLimitArgs {
    /// With --zip: the most entries it may hold.
    #[arg(long, default_value_t = 10_000)]
    zip_max_entries: usize,
    /// With --zip: the largest an entry may expand to, in MiB.
    #[arg(long, default_value_t = 256)]
    zip_max_entry_mb: u64,
    /// With --zip: the most all entries may expand to, in MiB.
    #[arg(long, default_value_t = 1024)]
    zip_max_total_mb: u64,
}

impl ZipLimitArgs {
    fn limits(&self) -> lockgate_bundle::ZipLimits {
        lockgate_bundle::ZipLimits {
            max_entries: self.zip_max_entries,
            max_entry_bytes: self.zip_max_entry_mb.saturating_mul(1 << 20),
            max_total_bytes: self.zip_max_total_mb.saturating_mul(1 << 20),
        }
    }
}

/// The database, folder and module `status` and `validate` compare.
#[derive(Args)]
pub struct FolderArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The folder of version folders to compare with (default ./db if it exists).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Or a zip of it.
    #[arg(long, conflicts_with = "dir")]
    zip: Option<PathBuf>,
    /// The module.
    #[arg(long, default_value = "./")]
    module: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lockgate status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Exit 4 on drift (versions changed, missing or skipped, or partly applied), so
    /// that CI can gate on it.
    #[arg(long)]
    strict: bool,
}

/// `lockgate validate`.
#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `lockgate log`.
#[derive(Args)]
pub struct LogArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// Only this module.
    #[arg(long)]
    module: Option<String>,
    /// Only these types: INFO, WARN, ERROR (repeat or separate with commas).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only this table.
    #[arg(long)]
    table: Option<String>,
    /// Only this version.
    #[arg(long)]
    version: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lockgate rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The version to return to (0.0.0: before the first).
    #[arg(long)]
    to: Version,
    /// The module.
    #[arg(long, default_value = "./")]
    module: String,
    /// Put rows back even where they were changed since the migration.
    #[arg(long)]
    overwrite: bool,
    /// Roll back across versions that ran scripts: what process scripts did stays, and
    /// so does what a .sql script did beyond the rows of the tables its statements name.
    #[arg(long)]
    ignore_scripts: bool,
    /// Show what would be put back and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for a migrate of the same module (600, 10m).
    #[arg(long, default_value = "10m", value_parser = crate::duration)]
    lock_timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lockgate dump`.
#[derive(Args)]
pub struct DumpArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The tables to dump (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "all")]
    tables: Vec<String>,
    /// Dump every table.
    #[arg(long)]
    all: bool,
    /// With --all: leave out system tables (Lockgate's own lockgate_* tables are never dumped).
    #[arg(long, requires = "all")]
    exclude_system: bool,
    /// A db/ folder to write the version folder into, or a .zip file.
    #[arg(long)]
    out: PathBuf,
    /// The version folder's version (default: the next after the database's current one).
    #[arg(long)]
    version: Option<Version>,
    /// The module whose version sets the default.
    #[arg(long, default_value = "./")]
    module: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `dump`.
pub async fn dump(url: &lockgate::db::DbUrl, a: DumpArgs) -> i32 {
    let opts = lockgate::DumpOptions {
        tables: a.tables,
        all: a.all,
        exclude_system: a.exclude_system,
        out: a.out,
        version: a.version,
        module: a.module,
        ..lockgate::DumpOptions::default()
    };
    match lockgate::dump(url, &opts).await {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!("wrote version {} to {}", r.version, r.out);
                for t in &r.tables {
                    if t.keyless {
                        println!(
                            "  {} -> {} ({} rows; no primary key: loaded as inserts after clearTables empties it)",
                            t.table, t.file, t.rows
                        );
                    } else if t.cleared {
                        println!(
                            "  {} -> {} ({} rows; references a table without a primary key: clearTables empties it first too)",
                            t.table, t.file, t.rows
                        );
                    } else {
                        println!("  {} -> {} ({} rows)", t.table, t.file, t.rows);
                    }
                }
                for w in &r.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "load it with: lockgate migrate --db <URL> --{} {}",
                    if r.out.ends_with(".zip") { "zip" } else { "dir" },
                    if r.out.ends_with(".zip") {
                        r.out.clone()
                    } else {
                        std::path::Path::new(&r.out)
                            .parent()
                            .map_or(r.out.clone(), |p| p.display().to_string())
                    }
                );
            }
            0
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

/// Runs `migrate`; returns the exit code.
pub async fn migrate(url: &lockgate::db::DbUrl, a: MigrateArgs) -> i32 {
    let opts = MigrateOptions {
        dir: a.dir,
        zip: a.zip,
        module: a.module,
        force: a.force,
        from: a.from,
        to: a.to,
        dry_run: a.dry_run,
        on_error: a.on_error,
        tenant_column: a.tenant_column,
        script_timeout: a.script_timeout,
        lock_timeout: a.lock_timeout,
        zip_limits: a.zip_limits.limits(),
        ..MigrateOptions::default()
    };
    let (tx, bar) = render::progress(a.json);
    let result = lockgate::migrate(url, &opts, tx).await;
    if let Some(bar) = bar {
        bar.await.ok();
    }
    match result {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", migrate_text(&report, a.verbose));
            }
            report.exit_code()
        }
        Err(e) => {
            // Versions the run applied before the error stay applied (one transaction
            // each): the message names them, and so does the JSON error object.
            let mut fields = serde_json::Map::new();
            if !e.applied().is_empty() {
                fields.insert("migrated_versions".into(), serde_json::json!(e.applied()));
            }
            render::fail_with(&e.to_string(), e.exit_code(), fields)
        }
    }
}

fn step_text(s: &StepReport, dry: bool) -> String {
    match s.kind.as_str() {
        "data" => {
            let (ins, upd, del) = if dry {
                ("would insert", "would update", "would delete")
            } else {
                ("inserted", "updated", "deleted")
            };
            let mut line = format!(
                "  {} -> {}{} ({}): read {}, {ins} {}, {upd} {}, unchanged {}, {del} {}, failed {}",
                s.file,
                s.table.as_deref().unwrap_or("?"),
                s.tenant
                    .as_deref()
                    .map(|t| format!(" [tenant {t}]"))
                    .unwrap_or_default(),
                s.mode
                    .and_then(|m| serde_json::to_value(m).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                s.rows_read,
                s.inserted,
                s.updated,
                s.unchanged,
                s.deleted,
                s.failed
            );
            if s.skipped > 0 {
                line.push_str(&format!(" (skipped {})", s.skipped));
            }
            line
        }
        "clear" => format!(
            "  cleared {}{}: {} {} rows",
            s.file,
            s.tenant
                .as_deref()
                .map(|t| format!(" [tenant {t}]"))
                .unwrap_or_default(),
            if dry { "would delete" } else { "deleted" },
            s.deleted
        ),
        "sql" if dry && s.note.as_deref().is_some_and(|n| n.starts_with("not run")) => {
            format!("  would run {}", s.file)
        }
        "sql" if dry => format!("  ran {} (undone with the rest of the dry run)", s.file),
        "sql" => format!("  ran {}", s.file),
        "skipped" => "  nothing run:".to_string(),
        _ => format!("  {} {}", if dry { "would run" } else { "ran" }, s.file),
    }
}

/// The human report of a migrate.
pub fn migrate_text(r: &MigrateReport, verbose: bool) -> String {
    let mut out = String::new();
    if r.versions.is_empty() {
        out.push_str(&format!(
            "nothing to migrate: module {} is at {}\n",
            r.module,
            r.old_version.as_deref().unwrap_or("no version")
        ));
        for w in r.warnings.iter().take(20) {
            out.push_str(&format!("warning: {w}\n"));
        }
        return out;
    }
    for v in &r.versions {
        let status = match v.status {
            VersionStatus::Applied => "applied",
            VersionStatus::WouldApply => "would apply (dry run: nothing kept)",
            VersionStatus::Failed => "FAILED: nothing of it was kept",
            VersionStatus::Partial => "STOPPED after a committed part (status shows it; migrate re-runs it)",
            VersionStatus::Skipped => "skipped: baseline",
            VersionStatus::Recorded => "recorded as applied: baseline (its data not loaded)",
        };
        out.push_str(&format!("version {}: {status}\n", v.version));
        for c in &v.schema_changes {
            out.push_str(&format!("  schema: {c}\n"));
        }
        for s in &v.steps {
            out.push_str(&step_text(s, r.dry_run));
            out.push('\n');
            if let Some(note) = &s.note {
                for line in note.lines().take(if verbose { 50 } else { 3 }) {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        const SHOWN: usize = 50;
        let shown = if verbose { usize::MAX } else { SHOWN };
        for f in v.failures.iter().take(shown) {
            let tag = if f.skipped { "skipped" } else { "failed" };
            out.push_str(&format!("  {tag}: {}\n", f.error));
            if verbose {
                if let Some(d) = &f.data {
                    out.push_str(&format!("    data: {d}\n"));
                }
            }
        }
        if v.failures.len() > shown {
            out.push_str(&format!(
                "  … and {} more (use --verbose or --json, or lockgate log --type ERROR,WARN)\n",
                v.failures.len() - shown
            ));
        }
        if let Some(e) = &v.error {
            out.push_str(&format!("  {e}\n"));
            if v.status == VersionStatus::Failed && !v.failures.is_empty() {
                out.push_str("  fix these records and run migrate again, or use --on-error skip to apply the rest\n");
            }
        }
    }
    let migrated = serde_json::to_string(&r.migrated_versions).unwrap_or_default();
    if r.dry_run {
        out.push_str(&format!(
            "dry run: would migrate {migrated}; module {} stays at {}\n",
            r.module,
            r.old_version.as_deref().unwrap_or("no version")
        ));
    } else {
        out.push_str(&format!(
            "module {}: {} (was {}); migrated versions: {migrated}\n",
            r.module,
            r.new_version.as_deref().unwrap_or("no version"),
            r.old_version.as_deref().unwrap_or("none")
        ));
    }
    for w in r.warnings.iter().take(20) {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&format!(
        "{:.2} s{}\n",
        r.seconds,
        r.run_id.map(|id| format!(", run {id}")).unwrap_or_default()
    ));
    out
}

/// Runs `status`.
pub async fn status(url: &lockgate::db::DbUrl, a: StatusArgs) -> i32 {
    let json = a.folder.json;
    match status_report(url, a.folder, false).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", status_text(&r));
                if a.strict && !r.drift.is_empty() {
                    println!("status --strict: {} problem(s) (exit 4)", r.drift.len());
                }
            }
            if a.strict {
                r.strict_exit_code()
            } else {
                0
            }
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

/// Runs `validate`: `status --strict` that also reads every version's meta.json and
/// definitions, and needs the folder.
pub async fn validate(url: &lockgate::db::DbUrl, a: ValidateArgs) -> i32 {
    let json = a.folder.json;
    let mut folder = a.folder;
    if folder.dir.is_none() && folder.zip.is_none() {
        folder.dir = Some(PathBuf::from("db"));
    }
    match status_report(url, folder, true).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else if r.drift.is_empty() {
                println!(
                    "valid: module {} at {} matches {}{}",
                    r.module,
                    r.current_version.as_deref().unwrap_or("no version"),
                    r.folder.as_deref().unwrap_or("?"),
                    if r.pending.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} pending: {})", r.pending.len(), r.pending.join(", "))
                    }
                );
            } else {
                println!(
                    "NOT valid: module {} at {} and {} disagree:",
                    r.module,
                    r.current_version.as_deref().unwrap_or("no version"),
                    r.folder.as_deref().unwrap_or("?")
                );
                for d in &r.drift {
                    println!("  {d}");
                }
            }
            r.strict_exit_code()
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

async fn status_report(
    url: &lockgate::db::DbUrl,
    a: FolderArgs,
    read_manifests: bool,
) -> Result<StatusReport, lockgate::MigrateError> {
    let dir = a
        .dir
        .or_else(|| (a.zip.is_none() && std::path::Path::new("db").is_dir()).then(|| PathBuf::from("db")));
    let opts = StatusOptions {
        dir,
        zip: a.zip,
        module: a.module,
        read_manifests,
        ..StatusOptions::default()
    };
    lockgate::status(url, &opts).await
}

/// The human report of `status`.
pub fn status_text(r: &StatusReport) -> String {
    let mut out = format!(
        "module {}: version {}\n",
        r.module,
        r.current_version.as_deref().unwrap_or("none (never migrated)")
    );
    for a in &r.applied {
        let mut flags = Vec::new();
        if a.status == "partial" {
            flags.push(format!(
                "PARTLY APPLIED ({} part(s) committed; migrate re-runs it)",
                a.parts_done
            ));
        }
        if r.changed.contains(&a.version) {
            flags.push("files changed since applied".to_string());
        }
        if r.missing.contains(&a.version) {
            flags.push("not in the folder".to_string());
        }
        out.push_str(&format!(
            "  {} {} {}{}\n",
            a.version,
            a.status,
            a.applied_at,
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join("; "))
            }
        ));
    }
    for v in &r.skipped {
        out.push_str(&format!(
            "  {v} never applied [older than the current version: migrate skips it]\n"
        ));
    }
    match &r.folder {
        Some(f) if r.pending.is_empty() => out.push_str(&format!("nothing pending in {f}\n")),
        Some(f) => out.push_str(&format!("pending in {f}: {}\n", r.pending.join(", "))),
        None => out.push_str("no db folder given (--dir): pending versions not computed\n"),
    }
    for d in &r.drift {
        out.push_str(&format!("warning: {d}\n"));
    }
    out
}

/// Runs `log`.
pub async fn log(url: &lockgate::db::DbUrl, a: LogArgs) -> i32 {
    if let Some(bad) = a
        .types
        .iter()
        .find(|t| !["INFO", "WARN", "ERROR"].contains(&t.to_uppercase().as_str()))
    {
        return render::fail(
            &format!("--type {bad}: not a log type: use INFO, WARN or ERROR (several separated by commas)"),
            2,
        );
    }
    let filter = LogFilter {
        module: a.module,
        types: a.types,
        table: a.table,
        version: a.version,
        tenant: a.tenant,
        limit: a.limit,
    };
    let entries = async {
        // Reading the log creates nothing: no ledger means no entries.
        match lockgate::db::ledger::Ledger::open_existing(url).await? {
            Some(mut ledger) => lockgate::db::versions::read_logs(ledger.conn(), &filter).await,
            None => Ok(Vec::new()),
        }
    }
    .await;
    match entries {
        Ok(entries) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&entries).unwrap_or_default());
            } else {
                print!("{}", log_text(&entries));
            }
            0
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

/// The human form of log entries, oldest first.
pub fn log_text(entries: &[LogEntry]) -> String {
    let mut out = String::new();
    for e in entries.iter().rev() {
        out.push_str(&format!(
            "{} {:5} {} {}{}{}{} {}\n",
            e.logged_at,
            e.log_type,
            e.module,
            e.version.as_deref().unwrap_or("-"),
            e.table.as_deref().map(|t| format!(" {t}")).unwrap_or_default(),
            e.tenant.as_deref().map(|t| format!(" [{t}]")).unwrap_or_default(),
            e.file.as_deref().map(|f| format!(" {f}")).unwrap_or_default(),
            e.message
        ));
    }
    if entries.is_empty() {
        out.push_str("no log entries match\n");
    }
    out
}

/// Runs `rollback`.
pub async fn rollback(url: &lockgate::db::DbUrl, a: RollbackArgs) -> i32 {
    let opts = RollbackOptions {
        module: a.module,
        to: a.to,
        overwrite: a.overwrite,
        ignore_scripts: a.ignore_scripts,
        dry_run: a.dry_run,
        lock_timeout: a.lock_timeout,
    };
    match lockgate::rollback(url, &opts).await {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", rollback_text(&r));
            }
            r.exit_code()
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

/// The human report of `rollback`.
pub fn rollback_text(r: &RollbackReport) -> String {
    let mut out = String::new();
    if r.versions.is_empty() {
        out.push_str(&format!(
            "nothing to roll back: module {} is at {}\n",
            r.module,
            r.from_version.as_deref().unwrap_or("no version")
        ));
        return out;
    }
    let verb = if r.committed {
        "rolled back"
    } else if r.dry_run {
        "would roll back"
    } else {
        "NOT rolled back"
    };
    out.push_str(&format!(
        "module {}: {verb} from {} to {} (undoing {})\n",
        r.module,
        r.from_version.as_deref().unwrap_or("none"),
        r.to_version,
        r.versions.join(", ")
    ));
    out.push_str(&format!(
        "  rows {} {}, rows {} {}\n",
        if r.committed { "deleted" } else { "to delete" },
        r.deleted,
        if r.committed { "put back" } else { "to put back" },
        r.restored
    ));
    if !r.conflicts.is_empty() {
        out.push_str(&format!(
            "  {} row(s) changed since the migration:\n",
            r.conflicts.len()
        ));
        for c in r.conflicts.iter().take(50) {
            out.push_str(&format!(
                "    {} {}: expected {}, found {}\n",
                c.table,
                serde_json::Value::Object(c.key.clone()),
                c.expected
                    .as_ref()
                    .map_or("no row".into(), |e| serde_json::Value::Object(e.clone()).to_string()),
                c.found
                    .as_ref()
                    .map_or("no row".into(), |f| serde_json::Value::Object(f.clone()).to_string())
            ));
        }
        if !r.committed && !r.dry_run {
            out.push_str(
                "  nothing was changed: check these rows, then run again with --overwrite to put them back anyway\n",
            );
        }
    }
    for s in &r.scripts_not_undone {
        if s.to_ascii_lowercase().ends_with(".sql") {
            out.push_str(&format!(
                "  warning: script {s}: the rows lockgate recorded for it {} put back; what its migrate step note said was not recorded stays\n",
                if r.committed { "were" } else { "would be" }
            ));
        } else {
            out.push_str(&format!("  warning: what script {s} did was not undone\n"));
        }
    }
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}
