//! `lockgate snapshot …`, `lockgate restore` and `lockgate profile …`: the CLI side of
//! data profiles and snapshots (the engines are `lockgate::snapshot`). Renders
//! reports as text or `--json`, and a progress bar on a terminal.

use crate::render;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lockgate::snapshot::{
    self, catalog, profile, PruneOptions, RestoreOptions, SnapshotError, SnapshotOptions, SnapshotProgress,
};
use lockgate::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// `lockgate snapshot …`.
#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a database under a profile (its settings from lockgate.toml).
    Create(CreateArgs),
    /// List snapshots (of one profile, or of every store lockgate.toml and the pin files name), oldest first.
    List(ListArgs),
    /// Show a snapshot's manifest.
    Show(IdArgs),
    /// Delete a snapshot.
    Delete(IdArgs),
    /// Delete old snapshots of a profile: keep the newest N, or those younger than a duration.
    Prune(PruneArgs),
}

/// Where profiles and their store are found.
#[derive(Args, Clone)]
pub struct Where {
    /// The db/ folder whose profiles/ holds pin files.
    #[arg(long, default_value = "db")]
    pub dir: PathBuf,
    /// The store: a folder, or s3://bucket/prefix (default: the profile's, else [snapshots] store, else ./snapshots).
    #[arg(long)]
    pub store: Option<String>,
}

/// `snapshot create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Database URL or connection name (default: the profile's `db`, else DATABASE_URL).
    #[arg(long)]
    db: Option<String>,
    /// The profile.
    #[arg(long)]
    profile: String,
    #[command(flatten)]
    place: Where,
    /// Only these tables.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Never these tables.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// `table:CONDITION`: only the rows the condition picks (repeatable).
    #[arg(long = "where")]
    conditions: Vec<String>,
    /// `table:CONDITION`: those rows, every row they need and every row that belongs to them (repeatable).
    #[arg(long)]
    subset: Vec<String>,
    /// `table.column=RULE,…` with rules null, hash, email, name, phone, fixed:VALUE, keep.
    #[arg(long)]
    mask: Option<String>,
    /// A folder of user media to take along.
    #[arg(long)]
    files: Option<PathBuf>,
    /// Write db/profiles/PROFILE.toml naming this snapshot, to commit.
    #[arg(long)]
    pin: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `snapshot list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this profile's.
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    place: Where,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `snapshot show|delete ID`.
#[derive(Args)]
pub struct IdArgs {
    /// The snapshot id.
    id: String,
    /// Its profile (default: found by id).
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    place: Where,
    /// With `delete`: delete it even when the profile's pin file names it.
    #[arg(long)]
    force: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `snapshot prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// The profile.
    #[arg(long)]
    profile: String,
    #[command(flatten)]
    place: Where,
    /// Keep the newest N.
    #[arg(long)]
    keep: Option<usize>,
    /// Delete those older than this (30d, 12h).
    #[arg(long, value_parser = crate::duration)]
    older_than: Option<Duration>,
    /// List what would go; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lockgate restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The profile.
    #[arg(long)]
    profile: String,
    #[command(flatten)]
    place: Where,
    /// This snapshot (default: the profile's pinned one, else the newest).
    #[arg(long, conflicts_with = "latest")]
    id: Option<String>,
    /// The newest snapshot, even when the profile pins one.
    #[arg(long)]
    latest: bool,
    /// The target database (URL or connection name).
    #[arg(long)]
    into: String,
    /// Only these tables.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Delete the rows of existing tables first (else a table with rows is refused).
    #[arg(long)]
    replace: bool,
    /// Where the snapshot's user media go.
    #[arg(long)]
    files_into: Option<PathBuf>,
    /// Check the snapshot, its files and the target; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for another command writing the same tables.
    #[arg(long, default_value = "30s", value_parser = crate::duration)]
    lock_timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `lockgate profile …`.
#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create a profile: writes db/profiles/NAME.toml (to commit) after checking the store.
    Create {
        /// Its name.
        name: String,
        #[command(flatten)]
        place: Where,
    },
    /// List profiles with their newest snapshot, size and module versions.
    List {
        /// The db/ folder whose profiles/ holds pin files.
        #[arg(long, default_value = "db")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn pairs(flag: &str, given: &[String]) -> Result<Vec<(String, String)>, i32> {
    given
        .iter()
        .map(|g| match g.split_once(':') {
            Some((t, c)) if !t.trim().is_empty() && !c.trim().is_empty() => {
                Ok((t.trim().to_string(), c.trim().to_string()))
            }
            _ => Err(render::fail(
                &format!("{flag} {g:?}: write TABLE:CONDITION, e.g. {flag} \"customers:id IN (1, 2)\""),
                2,
            )),
        })
        .collect()
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn fail(e: SnapshotError) -> i32 {
    render::fail(&e.to_string(), e.exit_code())
}

/// Human sizes: 1.2 MB.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// A progress channel and its bar, when stderr is a terminal.
fn progress(json: bool) -> (Option<mpsc::UnboundedSender<SnapshotProgress>>, Option<JoinHandle<()>>) {
    if json || !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<SnapshotProgress>();
    let task = tokio::spawn(async move {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        while let Some(p) = rx.recv().await {
            if let Some(t) = p.total {
                bar.set_length(t);
            }
            bar.set_message(format!("{} {}", p.phase, p.item));
            bar.set_position(p.rows);
        }
        bar.finish_and_clear();
    });
    (Some(tx), Some(task))
}

/// `lockgate snapshot …`.
pub async fn snapshot_cmd(config: &Config, cmd: SnapshotCommand) -> i32 {
    match cmd {
        SnapshotCommand::Create(a) => create(config, a).await,
        SnapshotCommand::List(a) => {
            render::set_json(a.json);
            let listed = async {
                if a.profile.is_none() && a.place.store.is_none() {
                    return profile::list_everywhere(config, &a.place.dir).await;
                }
                let store = store_for(config, &a.place, a.profile.as_deref())?;
                catalog::list(&store, a.profile.as_deref()).await
            };
            match listed.await {
                Ok(list) if a.json => {
                    print_json(&serde_json::json!({ "version": 1, "snapshots": list }));
                    0
                }
                Ok(list) => {
                    if list.is_empty() {
                        println!("no snapshots");
                    }
                    for s in list {
                        let modules: Vec<String> = s.modules.iter().map(|(m, v)| format!("{m}@{v}")).collect();
                        println!(
                            "{}  {:<12} {:<8} {:>3} tables {:>12} rows {:>10}  {}{}",
                            s.id,
                            s.profile,
                            s.engine,
                            s.tables,
                            s.rows,
                            size(s.stored_bytes),
                            modules.join(" "),
                            if s.subset { "  (subset)" } else { "" }
                        );
                    }
                    0
                }
                Err(e) => fail(e),
            }
        }
        SnapshotCommand::Show(a) => {
            render::set_json(a.json);
            let shown = async {
                let store = store_for(config, &a.place, a.profile.as_deref())?;
                catalog::show(&store, a.profile.as_deref(), &a.id).await
            };
            match shown.await {
                Ok(m) if a.json => {
                    print_json(&m);
                    0
                }
                Ok(m) => {
                    println!("snapshot {} of profile {}, taken {}", m.id, m.profile, m.created);
                    println!(
                        "source: {} {} ({})",
                        m.source.engine, m.source.server_version, m.source.database
                    );
                    for (module, v) in &m.modules {
                        println!("module {module}: version {v}");
                    }
                    for t in &m.tables {
                        println!(
                            "  {:<30} {:>12} rows {:>10}  sha256 {}{}",
                            t.def.display_name(),
                            t.rows,
                            size(t.stored_bytes),
                            &t.sha256[..12.min(t.sha256.len())],
                            if t.subset { "  (subset)" } else { "" }
                        );
                    }
                    if !m.files.is_empty() {
                        println!("  {} media files", m.files.len());
                    }
                    0
                }
                Err(e) => fail(e),
            }
        }
        SnapshotCommand::Delete(a) => {
            render::set_json(a.json);
            let deleted = async {
                let store = store_for(config, &a.place, a.profile.as_deref())?;
                let m = catalog::show(&store, a.profile.as_deref(), &a.id).await?;
                let pinned = profile::read_pin(&a.place.dir, &m.profile)?.and_then(|p| p.snapshot);
                if pinned.as_deref() == Some(m.id.as_str()) && !a.force {
                    return Err(SnapshotError::Invalid(vec![format!(
                        "snapshot {} is the one {} pins: pin another first, or delete it with --force",
                        m.id,
                        profile::pin_path(&a.place.dir, &m.profile).display()
                    )]));
                }
                catalog::delete(&store, Some(&m.profile), &m.id).await
            };
            match deleted.await {
                Ok(s) if a.json => {
                    print_json(&serde_json::json!({ "version": 1, "deleted": s }));
                    0
                }
                Ok(s) => {
                    println!(
                        "deleted snapshot {} of profile {} ({})",
                        s.id,
                        s.profile,
                        size(s.stored_bytes)
                    );
                    0
                }
                Err(e) => fail(e),
            }
        }
        SnapshotCommand::Prune(a) => {
            render::set_json(a.json);
            let pruned = async {
                let p = profile::resolve(config, &a.place.dir, &a.profile, a.place.store.as_deref())?;
                let store = profile::open_store(config, &p.store_url)?;
                let opts = PruneOptions {
                    keep: a.keep,
                    older_than: a.older_than,
                    dry_run: a.dry_run,
                    pinned: p.pin.as_ref().and_then(|p| p.snapshot.clone()),
                };
                catalog::prune(&store, &a.profile, &opts).await
            };
            match pruned.await {
                Ok(r) if a.json => {
                    print_json(&r);
                    0
                }
                Ok(r) => {
                    let verb = if r.dry_run { "would delete" } else { "deleted" };
                    for s in &r.deleted {
                        println!("{verb} {} ({}, {})", s.id, s.created, size(s.stored_bytes));
                    }
                    println!(
                        "{verb} {} snapshots ({}), kept {}",
                        r.deleted.len(),
                        size(r.freed_bytes),
                        r.kept
                    );
                    0
                }
                Err(e) => fail(e),
            }
        }
    }
}

/// The store of a listing: `--store`, else the profile's, else `[snapshots] store`.
fn store_for(
    config: &Config,
    place: &Where,
    profile_name: Option<&str>,
) -> Result<lockgate::snapshot::Store, SnapshotError> {
    let url = match (profile_name, &place.store) {
        (_, Some(s)) => s.clone(),
        (Some(p), None) => profile::resolve(config, &place.dir, p, None)?.store_url,
        (None, None) => config
            .snapshots
            .as_ref()
            .and_then(|s| s.store.clone())
            .unwrap_or_else(|| profile::DEFAULT_STORE.to_string()),
    };
    profile::open_store(config, &url)
}

async fn create(config: &Config, a: CreateArgs) -> i32 {
    render::set_json(a.json);
    let (conditions, subset) = match (pairs("--where", &a.conditions), pairs("--subset", &a.subset)) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let db =
        a.db.clone()
            .or_else(|| config.profiles.get(&a.profile).and_then(|p| p.db.clone()));
    let url = match config.resolve_db(db.as_deref()) {
        Ok(u) => u,
        Err(e) => return render::fail(&e.to_string(), 2),
    };
    let opts = SnapshotOptions {
        profile: a.profile,
        dir: a.place.dir,
        store: a.place.store,
        tables: a.tables,
        exclude: a.exclude,
        conditions,
        subset,
        masks: a.mask,
        files: a.files,
        pin: a.pin,
        ..SnapshotOptions::default()
    };
    let (tx, bar) = progress(a.json);
    let result = snapshot::snapshot(config, &url, &opts, tx).await;
    if let Some(bar) = bar {
        bar.await.ok();
    }
    match result {
        Ok(r) if a.json => {
            print_json(&r);
            0
        }
        Ok(r) => {
            println!(
                "snapshot {} of profile {} in {}: {} tables, {} rows, {} stored, {:.2}s",
                r.id,
                r.profile,
                r.store,
                r.tables.len(),
                r.tables.iter().map(|t| t.rows).sum::<u64>(),
                size(r.stored_bytes),
                r.seconds
            );
            for t in &r.tables {
                println!("  {:<30} {:>12} rows {:>10}", t.table, t.rows, size(t.stored_bytes));
            }
            if r.files > 0 {
                println!("  {} media files", r.files);
            }
            if let Some(p) = &r.pinned {
                println!("pinned in {p}: commit it so others restore this snapshot");
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// `lockgate restore`.
pub async fn restore(config: &Config, a: RestoreArgs) -> i32 {
    render::set_json(a.json);
    let into = match config.resolve_db(Some(&a.into)) {
        Ok(u) => u,
        Err(e) => return render::fail(&e.to_string(), 2),
    };
    let opts = RestoreOptions {
        profile: a.profile,
        dir: a.place.dir,
        store: a.place.store,
        id: a.id,
        latest: a.latest,
        tables: a.tables,
        replace: a.replace,
        files_into: a.files_into,
        check_only: a.dry_run,
        lock_timeout: a.lock_timeout,
        ..RestoreOptions::default()
    };
    let (tx, bar) = progress(a.json);
    let result = snapshot::restore(config, &into, &opts, tx).await;
    if let Some(bar) = bar {
        bar.await.ok();
    }
    match result {
        Ok(r) if a.json => {
            print_json(&r);
            0
        }
        Ok(r) => {
            let verb = if r.check_only { "would restore" } else { "restored" };
            println!(
                "{verb} snapshot {} of profile {} into {}: {} tables, {} rows{}",
                r.id,
                r.profile,
                r.into,
                r.tables.len(),
                r.tables.iter().map(|t| t.rows).sum::<u64>(),
                if r.check_only {
                    String::new()
                } else {
                    format!(", {:.2}s", r.seconds)
                }
            );
            for t in &r.tables {
                let how = match (t.created, t.replaced) {
                    (true, _) => "created",
                    (false, true) => "replaced",
                    (false, false) => "filled",
                };
                println!("  {:<30} {:>12} rows  {how}", t.table, t.rows);
            }
            for (m, v) in &r.modules {
                println!("module {m}: version {v} (lockgate migrate continues from here)");
            }
            if r.files > 0 {
                println!("{} media files", r.files);
            }
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// `lockgate profile …`.
pub async fn profile_cmd(config: &Config, cmd: ProfileCommand) -> i32 {
    match cmd {
        ProfileCommand::Create { name, place } => {
            match profile::create_profile(config, &place.dir, &name, place.store.as_deref()).await {
                Ok(path) => {
                    println!("profile {name} created: {} (commit it)", path.display());
                    0
                }
                Err(e) => fail(e),
            }
        }
        ProfileCommand::List { dir, json } => {
            render::set_json(json);
            match profile::list_profiles(config, &dir).await {
                Ok(list) if json => {
                    print_json(&serde_json::json!({ "version": 1, "profiles": list }));
                    0
                }
                Ok(list) => {
                    if list.is_empty() {
                        println!("no profiles: create one with `lockgate profile create NAME`");
                    }
                    for p in list {
                        let modules: Vec<String> = p.modules.iter().map(|(m, v)| format!("{m}@{v}")).collect();
                        println!(
                            "{:<16} {:<40} {} snapshots, latest {} ({}){}{}",
                            p.profile,
                            p.store,
                            p.snapshots,
                            p.latest.as_deref().unwrap_or("-"),
                            p.latest_bytes.map(size).unwrap_or_else(|| "-".into()),
                            if modules.is_empty() {
                                String::new()
                            } else {
                                format!(", {}", modules.join(" "))
                            },
                            p.pinned.map(|s| format!(", pinned {s}")).unwrap_or_default()
                        );
                        if let Some(e) = p.error {
                            println!("    store unreadable: {e}");
                        }
                    }
                    0
                }
                Err(e) => fail(e),
            }
        }
    }
}
