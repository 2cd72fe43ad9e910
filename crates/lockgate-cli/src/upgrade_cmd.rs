//! `lockgate upgrade …`: background data upgrades (the engine is `lockgate::upgrade`):
//! `init`, `run`, `status`, `pause`, `resume`, `cancel`, `retry`, `view`, `cleanup`. Upgrades are declared in
//! `lockgate.toml` (`[upgrades.NAME]`) and in `upgrades/*.toml`.

use crate::render;
use clap::{Args, Subcommand};
use lockgate::db::upgrades::UpgradeState;
use lockgate::upgrade::{self, RunOptions, Upgrade};
use lockgate::Config;
use std::path::PathBuf;
use std::time::Duration;

/// `lockgate upgrade …`.
#[derive(Subcommand)]
pub enum UpgradeCommand {
    /// Add the applied_upgrades column to a table (without rewriting it where the engine can).
    Init {
        /// Database URL or connection name; default DATABASE_URL.
        #[arg(long)]
        db: Option<String>,
        /// The table.
        #[arg(long)]
        table: String,
    },
    /// Apply the pending upgrades in batches, from where the last run stopped.
    Run(RunArgs),
    /// Each declared upgrade: state, rows done, rows remaining, quarantined rows.
    Status(Common),
    /// Pause an upgrade: a running upgrader stops before its next batch.
    Pause(Named),
    /// Resume a paused or cancelled upgrade (the next run continues it).
    Resume(Named),
    /// Cancel an upgrade: a running upgrader stops before its next batch.
    Cancel(Named),
    /// Try an upgrade's quarantined rows again.
    Retry(Named),
    /// Create or replace the view T_upgraded: the table as if its `set` upgrades were applied.
    View {
        #[command(flatten)]
        common: Common,
        /// The table.
        #[arg(long)]
        table: String,
    },
    /// Run an upgrade's cleanup once no row in its scope lacks it (else exit 4).
    Cleanup {
        #[command(flatten)]
        named: Named,
        /// Check only; run nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What every subcommand shares.
#[derive(Args)]
pub struct Common {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    db: Option<String>,
    /// The folder of upgrade files.
    #[arg(long, default_value = "upgrades")]
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `upgrade run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Only this table's upgrades.
    #[arg(long)]
    table: Option<String>,
    /// The time one batch should take; the batch size follows it (100ms, 1s).
    #[arg(long, default_value = "100ms", value_parser = crate::duration)]
    target_batch_time: Duration,
    /// A fixed batch size instead.
    #[arg(long)]
    batch_size: Option<usize>,
    /// At most this many rows per second.
    #[arg(long)]
    max_rows_per_second: Option<u64>,
}

/// `upgrade pause|resume|cancel NAME`.
#[derive(Args)]
pub struct Named {
    /// The upgrade.
    name: String,
    #[command(flatten)]
    common: Common,
}

fn declared(config: &Config, common: &Common) -> Result<Vec<Upgrade>, i32> {
    upgrade::declared(config, &common.dir).map_err(|e| render::fail(&e.to_string(), 2))
}

/// The database and the declared upgrades a subcommand works on (a bad one is exit 2).
fn url_and_upgrades(config: &Config, common: &Common) -> Result<(lockgate::db::DbUrl, Vec<Upgrade>), i32> {
    let url = config
        .resolve_db(common.db.as_deref())
        .map_err(|e| render::fail(&e.to_string(), 2))?;
    Ok((url, declared(config, common)?))
}

/// `lockgate upgrade …`.
pub async fn upgrade_cmd(config: &Config, cmd: UpgradeCommand) -> i32 {
    match cmd {
        UpgradeCommand::Init { db, table } => {
            let url = match config.resolve_db(db.as_deref()) {
                Ok(u) => u,
                Err(e) => return render::fail(&e.to_string(), 2),
            };
            match upgrade::init(&url, &table).await {
                Ok(true) => {
                    println!("added applied_upgrades to {table}");
                    0
                }
                Ok(false) => {
                    println!("{table} already has applied_upgrades");
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        UpgradeCommand::Run(a) => {
            render::set_json(a.common.json);
            let (url, ups) = match url_and_upgrades(config, &a.common) {
                Ok(found) => found,
                Err(code) => return code,
            };
            let opts = RunOptions {
                table: a.table,
                target_batch_time: a.target_batch_time,
                batch_size: a.batch_size,
                max_rows_per_second: a.max_rows_per_second,
                ..RunOptions::default()
            };
            let (tx, bar) = progress(a.common.json);
            let result = upgrade::run(&url, &ups, &opts, tx).await;
            if let Some(bar) = bar {
                let _ = bar.await;
            }
            match result {
                Ok(r) if a.common.json => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    0
                }
                Ok(r) => {
                    for o in &r.upgrades {
                        println!(
                            "{} on {}: {} rows upgraded in {} batches, {} remaining ({} quarantined), {}",
                            o.upgrade, o.table, o.upgraded, o.batches, o.remaining, o.quarantined, o.state
                        );
                    }
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        UpgradeCommand::Status(a) => {
            render::set_json(a.json);
            let (url, ups) = match url_and_upgrades(config, &a) {
                Ok(found) => found,
                Err(code) => return code,
            };
            match upgrade::status(&url, &ups).await {
                Ok(list) if a.json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "version": 1, "upgrades": list }))
                            .unwrap_or_default()
                    );
                    0
                }
                Ok(list) => {
                    if list.is_empty() {
                        println!("no upgrades declared ([upgrades.NAME] in lockgate.toml, or upgrades/*.toml)");
                    }
                    for s in list {
                        let pace = match (s.rows_per_second, s.eta_seconds) {
                            (Some(r), Some(eta)) => format!(" {r:.0} rows/s, ETA {eta:.0}s"),
                            (Some(r), None) => format!(" {r:.0} rows/s"),
                            _ => String::new(),
                        };
                        println!(
                            "{:<24} {:<20} {:<12} {:>10} done {:>10} remaining {:>5} quarantined{pace}",
                            s.upgrade,
                            s.table,
                            s.state,
                            s.rows_done,
                            s.remaining
                                .map_or_else(|| "(no applied_upgrades column)".to_string(), |n| n.to_string()),
                            s.quarantined
                        );
                        for q in &s.quarantine {
                            println!(
                                "    row {}: {} (attempts {}, {})",
                                q.key_text, q.error, q.attempts, q.at
                            );
                        }
                    }
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        UpgradeCommand::Pause(n) => control(config, n, UpgradeState::Paused, "paused").await,
        UpgradeCommand::Resume(n) => control(config, n, UpgradeState::Pending, "resumed").await,
        UpgradeCommand::Cancel(n) => control(config, n, UpgradeState::Cancelled, "cancelled").await,
        UpgradeCommand::Retry(n) => {
            render::set_json(n.common.json);
            let (url, u) = match find(config, &n) {
                Ok(found) => found,
                Err(code) => return code,
            };
            match upgrade::retry(&url, &u, Duration::from_secs(30)).await {
                Ok(r) if n.common.json => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    0
                }
                Ok(r) => {
                    println!(
                        "{}: {} quarantined rows tried: {} upgraded, {} no longer needed it, {} still quarantined; {}",
                        r.upgrade, r.tried, r.upgraded, r.skipped, r.quarantined, r.state
                    );
                    // Rows still quarantined are reported, as a run reports them: exit 0.
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        UpgradeCommand::View { common, table } => {
            let (url, ups) = match url_and_upgrades(config, &common) {
                Ok(found) => found,
                Err(code) => return code,
            };
            match upgrade::view(&url, &ups, &table).await {
                Ok(view) => {
                    println!("created {view}: read it to see every row as if its upgrades were applied");
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        UpgradeCommand::Cleanup { named, dry_run } => {
            let (url, u) = match find(config, &named) {
                Ok(found) => found,
                Err(code) => return code,
            };
            match upgrade::cleanup(&url, &u, dry_run).await {
                Ok(r) => {
                    let verb = if r.ran { "ran" } else { "would run" };
                    println!("{}: {verb} its cleanup: {}", r.upgrade, r.cleanup);
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
    }
}

/// A progress channel and its bar, when stderr is a terminal.
fn progress(
    json: bool,
) -> (
    Option<tokio::sync::mpsc::UnboundedSender<upgrade::UpgradeProgress>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<upgrade::UpgradeProgress>();
    let task = tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} rows ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while let Some(p) = rx.recv().await {
            if let Some(t) = p.total {
                bar.set_length(t);
            }
            bar.set_message(format!("{} (batch {})", p.upgrade, p.batch));
            bar.set_position(p.rows);
        }
        bar.finish_and_clear();
    });
    (Some(tx), Some(task))
}

/// The database and the declared upgrade a subcommand names.
fn find(config: &Config, n: &Named) -> Result<(lockgate::db::DbUrl, Upgrade), i32> {
    let (url, ups) = url_and_upgrades(config, &n.common)?;
    match ups.into_iter().find(|u| u.name == n.name) {
        Some(u) => Ok((url, u)),
        None => Err(render::fail(&format!("{:?} is not a declared upgrade", n.name), 2)),
    }
}

async fn control(config: &Config, n: Named, to: UpgradeState, verb: &str) -> i32 {
    let (url, u) = match find(config, &n) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match upgrade::control(&url, &u, to).await {
        Ok(()) => {
            println!("{} {verb}", u.name);
            0
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}
