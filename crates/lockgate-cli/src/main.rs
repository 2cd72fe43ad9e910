//! The `lockgate` command line: parses arguments, resolves connections, runs an
//! engine, and renders its report (human text or `--json`), progress bars and
//! errors. Exit codes follow ARCHITECTURE.md: 0 success, 1 run-time failure, 2 bad usage
//! or input, 3 row errors rolled back, 4 conflicts.

mod baseline_cmd;
mod merge_cmd;
mod migrate_cmd;
mod render;
mod serve_cmd;
mod snapshot_cmd;
mod transfer_cmd;
mod upgrade_cmd;

use clap::{Parser, Subcommand};

/// mimalloc: transfers spend a quarter of their time allocating and freeing values;
/// measured with bench/transfer.sh, `transfer run` takes 5-28 % less time, for peak
/// RSS of up to 120 MB instead of 66 MB (goal 150).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use lockgate::db::writer::{OnError, WriteMode};
use lockgate::{Config, LoadOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "lockgate",
    version,
    about = "Moves data safely between databases, versions and deployments"
)]
struct Cli {
    /// Configuration file with named connections.
    #[arg(long, global = true, default_value = "lockgate.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Whether two tables hold the same rows, across engines: checksums per key range
    /// computed inside each database, differing ranges narrowed down to the rows and
    /// columns that differ. Exit 0 when equal, 3 when differences were found.
    Verify {
        /// The source database: a URL or a connection name from lockgate.toml.
        #[arg(long)]
        source: String,
        /// The source table.
        #[arg(long)]
        source_table: String,
        /// The destination database: a URL or a connection name.
        #[arg(long)]
        dest: String,
        /// The destination table (default: the source table's name).
        #[arg(long)]
        dest_table: Option<String>,
        /// The key column (default: the source's primary key; one integer column).
        #[arg(long)]
        key: Option<String>,
        /// Columns left out of the comparison, comma-separated.
        #[arg(long, value_delimiter = ',')]
        exclude_columns: Vec<String>,
        /// At most this many differences of each kind are listed (the counts stay exact).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a database's tables, columns, keys, indexes and constraints.
    Inspect {
        /// Database URL (sqlite://path or a path, postgres://…, mysql://…) or a
        /// connection name from lockgate.toml; default DATABASE_URL.
        #[arg(long)]
        db: Option<String>,
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run SQL you wrote (a schema file, a fix-up) against a database, as written.
    Exec {
        /// Database URL or connection name; default DATABASE_URL.
        #[arg(long)]
        db: Option<String>,
        /// A file of SQL statements.
        #[arg(long, conflicts_with = "sql", required_unless_present = "sql")]
        file: Option<PathBuf>,
        /// SQL statements given inline.
        #[arg(long)]
        sql: Option<String>,
    },
    /// Load CSV, NDJSON or JSON files (optionally .gz/.zst) into a table, all or nothing.
    Load {
        /// Database URL or connection name; default DATABASE_URL.
        #[arg(long)]
        db: Option<String>,
        /// Target table (schema.table on PostgreSQL).
        #[arg(long)]
        table: String,
        /// Data files, loaded in order as one unit.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// csv, ndjson or json (default: from each file's extension).
        #[arg(long)]
        format: Option<lockgate_bundle_format::Format>,
        /// insert, upsert, update, insert-missing or sync.
        #[arg(long, default_value = "insert")]
        mode: WriteMode,
        /// Key columns for the key modes (default: the primary key).
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
        /// rollback (keep nothing if any row fails), skip (keep the good rows) or stop.
        #[arg(long = "on-error", default_value = "rollback")]
        on_error: OnError,
        /// Rows per batch.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
        /// Run everything, report, and keep nothing.
        #[arg(long)]
        dry_run: bool,
        /// For --mode sync: only rows matching this SQL condition may be deleted.
        #[arg(long = "where")]
        sync_where: Option<String>,
        /// How long to wait for another load of the same table (30, 30s, 5m).
        #[arg(long, default_value = "30s", value_parser = duration)]
        lock_timeout: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply the pending versions of a db/ folder (x.y.z/meta.json, oe-migration's layout) or zip.
    Migrate(migrate_cmd::MigrateArgs),
    /// Show a module's migration version, pending, changed and partly applied versions.
    Status(migrate_cmd::StatusArgs),
    /// Check the db/ folder against what the database applied (as Flyway's validate):
    /// exit 4 on drift (changed, missing or skipped versions, partly applied ones).
    Validate(migrate_cmd::ValidateArgs),
    /// Show the migration log, filtered by type, table, version and tenant.
    Log(migrate_cmd::LogArgs),
    /// Put back the data of the versions after --to, and set the version to it.
    Rollback(migrate_cmd::RollbackArgs),
    /// Write tables as a version folder (meta.json + JSON files) or zip that migrate loads back.
    Dump(migrate_cmd::DumpArgs),
    /// Write the managed tables' definitions and data as a baseline version folder, so
    /// that new deployments start there (--prune removes the folders before it).
    Baseline(baseline_cmd::BaselineArgs),
    /// Batch transfers between databases: create exports, run them, show their errors and history.
    #[command(subcommand)]
    Transfer(transfer_cmd::TransferCommand),
    /// Merge rows of a table into one: re-point everything that references them, with
    /// conflicts found first, a preview, one transaction, history and undo.
    Merge(merge_cmd::MergeArgs),
    /// Snapshots of a database under a data profile, in a folder or S3: create, list, show, delete, prune.
    #[command(subcommand)]
    Snapshot(snapshot_cmd::SnapshotCommand),
    /// Restore a profile's snapshot into a database of any engine.
    Restore(snapshot_cmd::RestoreArgs),
    /// Data profiles: create one (a pin file to commit), list them.
    #[command(subcommand)]
    Profile(snapshot_cmd::ProfileCommand),
    /// Background data upgrades: init, run, status, pause, resume, cancel.
    #[command(subcommand)]
    Upgrade(upgrade_cmd::UpgradeCommand),
    /// Keep running pending exports until SIGTERM (the first finishes the export in hand, the second rolls it back).
    Worker(transfer_cmd::WorkerArgs),
    /// Create the seed's sample (SQLite source, destination and exports) and serve its dashboard.
    Demo(transfer_cmd::DemoArgs),
    /// Serve the dashboard and HTTP API (127.0.0.1:3333 by default).
    Serve(serve_cmd::ServeArgs),
}

/// Re-export so clap can parse the bundle's format names.
mod lockgate_bundle_format {
    pub use lockgate_bundle::Format;
}

fn main() -> ExitCode {
    // `--json` anywhere before a `--`: errors, usage errors included, are JSON too.
    render::set_json(std::env::args_os().take_while(|a| a != "--").any(|a| a == "--json"));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(e.kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
            {
                e.exit();
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            // Usage errors are exit 2 (ARCHITECTURE.md), as clap's own; its usage hint follows.
            let code = render::fail(message, 2);
            eprint!("{}", text.split_once('\n').map_or("", |(_, rest)| rest));
            return ExitCode::from(code as u8);
        }
    };
    // Before anything else runs: scripts (and any program run as this user) cannot
    // then read this process's environment (LOCKGATE_TOKEN, DATABASE_URL).
    lockgate::harden_process();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LOCKGATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(cli));
    ExitCode::from(code as u8)
}

/// clap's parser for every duration flag: seconds (`30`, `2.5`) or a number with a
/// unit (`500ms`, `30s`, `5m`, `1h`), through lockgate-core's one parser.
pub fn duration(text: &str) -> Result<Duration, String> {
    lockgate_core::parse_duration(text).map_err(|e| e.to_string())
}

/// `--db` (or `DATABASE_URL`) as a URL; a bad one is reported here (exit 2).
fn resolve(config: &Config, db: Option<&str>) -> Result<lockgate::db::DbUrl, i32> {
    config.resolve_db(db).map_err(|e| render::fail(&e.to_string(), 2))
}

async fn run(cli: Cli) -> i32 {
    let required = cli.config != std::path::Path::new("lockgate.toml");
    let config = match Config::load(&cli.config, required) {
        Ok(c) => c,
        Err(e) => return render::fail(&e.to_string(), 2),
    };
    match cli.command {
        Command::Verify {
            source,
            source_table,
            dest,
            dest_table,
            key,
            exclude_columns,
            limit,
            json,
        } => {
            let (source, dest) = match (resolve(&config, Some(&source)), resolve(&config, Some(&dest))) {
                (Ok(s), Ok(d)) => (s, d),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            let spec = lockgate::verify::VerifySpec {
                source,
                source_table,
                dest,
                dest_table,
                key,
                exclude: exclude_columns,
                limit,
            };
            let progress = |line: &str| {
                if !json {
                    eprintln!("{line}");
                }
            };
            match lockgate::verify::verify(&spec, &progress).await {
                Ok(r) => {
                    render::verify(&r, json);
                    if r.equal {
                        0
                    } else {
                        3
                    }
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        Command::Inspect { db, table, json } => {
            let url = match resolve(&config, db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            match lockgate::inspect::inspect(&url, table.as_deref()).await {
                Ok(tables) => {
                    render::tables(&tables, json);
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        Command::Exec { db, file, sql } => {
            let url = match resolve(&config, db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            let text = match (file, sql) {
                (Some(f), _) => match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) => return render::fail(&format!("{}: cannot read: {e}", f.display()), 2),
                },
                (None, Some(s)) => s,
                (None, None) => return render::fail("give --file or --sql", 2),
            };
            match lockgate::db::Conn::connect(&url).await {
                Ok(mut conn) => match conn.batch(&text).await {
                    Ok(()) => 0,
                    Err(e) => render::fail(&e.to_string(), 1),
                },
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        Command::Load {
            db,
            table,
            files,
            format,
            mode,
            key,
            on_error,
            batch_size,
            dry_run,
            sync_where,
            lock_timeout,
            json,
        } => {
            let url = match resolve(&config, db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            if batch_size == 0 {
                return render::fail("--batch-size must be at least 1", 2);
            }
            let opts = LoadOptions {
                table,
                files,
                format,
                mode,
                key,
                on_error,
                batch_rows: batch_size,
                dry_run,
                lock_timeout,
                sync_where,
                ..LoadOptions::default()
            };
            let (tx, bar) = render::progress(json);
            let result = lockgate::load(&url, &opts, tx).await;
            if let Some(bar) = bar {
                bar.await.ok();
            }
            match result {
                Ok(report) => {
                    render::load_report(&report, json);
                    report.exit_code()
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        Command::Migrate(a) => match resolve(&config, a.db.as_deref()) {
            Ok(url) => migrate_cmd::migrate(&url, a).await,
            Err(code) => code,
        },
        Command::Status(a) => match resolve(&config, a.folder.db.as_deref()) {
            Ok(url) => migrate_cmd::status(&url, a).await,
            Err(code) => code,
        },
        Command::Validate(a) => match resolve(&config, a.folder.db.as_deref()) {
            Ok(url) => migrate_cmd::validate(&url, a).await,
            Err(code) => code,
        },
        Command::Log(a) => match resolve(&config, a.db.as_deref()) {
            Ok(url) => migrate_cmd::log(&url, a).await,
            Err(code) => code,
        },
        Command::Rollback(a) => match resolve(&config, a.db.as_deref()) {
            Ok(url) => migrate_cmd::rollback(&url, a).await,
            Err(code) => code,
        },
        Command::Dump(a) => match resolve(&config, a.db.as_deref()) {
            Ok(url) => migrate_cmd::dump(&url, a).await,
            Err(code) => code,
        },
        Command::Baseline(a) => match resolve(&config, a.db.as_deref()) {
            Ok(url) => baseline_cmd::baseline(&url, a).await,
            Err(code) => code,
        },
        Command::Transfer(cmd) => transfer_cmd::transfer(&config, cmd).await,
        Command::Merge(a) => merge_cmd::merge(&config, a).await,
        Command::Snapshot(cmd) => snapshot_cmd::snapshot_cmd(&config, cmd).await,
        Command::Restore(a) => snapshot_cmd::restore(&config, a).await,
        Command::Profile(cmd) => snapshot_cmd::profile_cmd(&config, cmd).await,
        Command::Upgrade(cmd) => upgrade_cmd::upgrade_cmd(&config, cmd).await,
        Command::Worker(a) => transfer_cmd::worker(&config, a).await,
        Command::Demo(a) => transfer_cmd::demo(&config, a).await,
        Command::Serve(a) => serve_cmd::serve(&config, a).await,
    }
}
