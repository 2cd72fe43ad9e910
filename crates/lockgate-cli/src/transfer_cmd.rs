//! `lockgate transfer …`, `lockgate worker` and `lockgate demo`: arguments, the
//! transfer definition from lockgate.toml and flags, and the rendering of exports.

use crate::render;
use clap::{Args, Subcommand};
use lockgate::db::exports::{Attempt, Export, ExportError};
use lockgate::db::writer::{OnError, WriteMode};
use lockgate::db::DbUrl;
use lockgate::transfer::{
    self, CreateOptions, ExportDetail, ExportOutcome, RunOptions, RunReport, Shutdown, Transfer, TransferEvent,
    TransferSpec,
};
use lockgate::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// A transfer's definition on the command line; each flag overrides lockgate.toml.
#[derive(Args, Clone, Debug, Default)]
pub struct TransferFlags {
    /// Source database URL or connection name.
    #[arg(long)]
    source: Option<String>,
    /// Source table.
    #[arg(long, conflicts_with = "source_query")]
    source_table: Option<String>,
    /// Source query (run as written; its columns are matched to the destination's by name).
    #[arg(long)]
    source_query: Option<String>,
    /// Destination database URL or connection name (the export ledger lives there).
    #[arg(long)]
    dest: Option<String>,
    /// Destination table (default: the source table's name).
    #[arg(long)]
    dest_table: Option<String>,
    /// Key column(s), destination names (default: the destination's primary key).
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,
    /// DEST=EXPR[,DEST=EXPR…]: a source column (rename), a constant ('web', 0) or a source-side SQL expression.
    #[arg(long)]
    map: Vec<String>,
    /// Rows per batch (default 5000).
    #[arg(long)]
    batch_size: Option<usize>,
    /// insert (default), upsert, update, insert-missing or sync.
    #[arg(long)]
    mode: Option<WriteMode>,
    /// Commit every N rows: resumable, but no longer all-or-nothing (see the README).
    #[arg(long)]
    commit_every: Option<u64>,
}

impl TransferFlags {
    fn spec(&self) -> Result<TransferSpec, transfer::TransferError> {
        let mut map = std::collections::BTreeMap::new();
        for m in &self.map {
            map.extend(transfer::parse_map(m)?);
        }
        Ok(TransferSpec {
            source: self.source.clone(),
            source_table: self.source_table.clone(),
            source_query: self.source_query.clone(),
            dest: self.dest.clone(),
            dest_table: self.dest_table.clone(),
            key: (!self.key.is_empty()).then(|| self.key.clone()),
            map: (!map.is_empty()).then_some(map),
            batch_size: self.batch_size,
            mode: self.mode,
            commit_every: self.commit_every,
            // Given to `transfer create` only (the export records them).
            on_error: None,
            lock_timeout: None,
        })
    }

    fn given(&self) -> bool {
        self.source.is_some() || self.source_table.is_some() || self.source_query.is_some() || self.dest.is_some()
    }
}

/// The destination whose export ledger to read.
#[derive(Args, Clone, Debug, Default)]
pub struct DestFlag {
    /// Destination database URL or connection name (default: the transfer's, from lockgate.toml).
    #[arg(long)]
    dest: Option<String>,
}

/// `lockgate transfer …`
#[derive(Subcommand)]
pub enum TransferCommand {
    /// Check a transfer against both databases (columns, types, NOT NULL, key); writes nothing.
    Check {
        /// The transfer (a [transfers.NAME] in lockgate.toml, or a name for the flags).
        name: String,
        #[command(flatten)]
        flags: TransferFlags,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a pending export of every source row no pending, running or completed export holds.
    Create {
        /// The transfer.
        name: String,
        #[command(flatten)]
        flags: TransferFlags,
        /// rollback (keep none of the export's rows if any fails), skip (keep the good rows, record the
        /// failing ones, which stay free for a later export) or stop; recorded with the export.
        #[arg(long = "on-error")]
        on_error: Option<OnError>,
        /// How long to wait for another create of the same transfer (default 60s; 30, 30s, 5m).
        #[arg(long, value_parser = crate::duration)]
        lock_timeout: Option<Duration>,
        /// Only count the rows it would hold.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run every pending export once and exit (for cron: the seed's /process).
    Run {
        /// The transfer (default: every transfer in lockgate.toml).
        name: Option<String>,
        #[command(flatten)]
        flags: TransferFlags,
        /// How long a claim lasts without renewal (60, 60s, 1m; at least 1s).
        #[arg(long, default_value = "60s", value_parser = crate::duration)]
        lease: Duration,
        /// How long an export in a key mode waits for another command writing its table (30, 30s, 1m).
        #[arg(long, default_value = "30s", value_parser = crate::duration)]
        lock_timeout: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an export: its outcome and every failed row with its error.
    Show {
        /// The export id.
        id: i64,
        /// The transfer whose destination holds it (or give --dest).
        name: Option<String>,
        #[command(flatten)]
        flags: DestFlag,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List exports, newest first.
    List {
        /// Only this transfer's.
        name: Option<String>,
        #[command(flatten)]
        flags: DestFlag,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every export that attempted a row, with that row's outcome.
    History {
        /// The row's key (for a key of several columns: a,b).
        #[arg(long)]
        key: String,
        /// Only this transfer's exports.
        name: Option<String>,
        #[command(flatten)]
        flags: DestFlag,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `lockgate worker`
#[derive(Args)]
pub struct WorkerArgs {
    /// The transfers to work for (default: every transfer in lockgate.toml).
    names: Vec<String>,
    #[command(flatten)]
    flags: TransferFlags,
    /// Time between looks for pending exports (2, 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = crate::duration)]
    poll: Duration,
    /// How long a claim lasts without renewal (60, 60s, 1m; at least 1s).
    #[arg(long, default_value = "60s", value_parser = crate::duration)]
    lease: Duration,
    /// How long an export in a key mode waits for another command writing its table (30, 30s, 1m).
    #[arg(long, default_value = "30s", value_parser = crate::duration)]
    lock_timeout: Duration,
    /// Exports run at once in this process, each in its own transaction (at least 1).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
}

/// `lockgate demo`
#[derive(Args)]
pub struct DemoArgs {
    /// The demo's folder.
    #[arg(long, default_value = "lockgate-demo", global = true)]
    dir: PathBuf,
    /// Where the dashboard listens (default 127.0.0.1:3333, or PORT).
    #[arg(long)]
    bind: Option<String>,
    /// Only make (or show) the sample; do not serve the dashboard.
    #[arg(long = "no-serve")]
    no_serve: bool,
    #[command(subcommand)]
    command: Option<DemoCommand>,
}

/// `lockgate demo generate N`
#[derive(Subcommand)]
pub enum DemoCommand {
    /// Add N (1 to 500) random customers acquired within the last week.
    Generate {
        /// How many.
        n: i64,
    },
}

fn fail_t(e: &transfer::TransferError) -> i32 {
    render::fail(&e.to_string(), e.exit_code())
}

fn resolve_one(config: &Config, name: &str, flags: &TransferFlags) -> Result<Transfer, i32> {
    let spec = flags.spec().map_err(|e| fail_t(&e))?;
    Transfer::resolve(name, config, spec).map_err(|e| fail_t(&e))
}

/// The transfers a run or worker works for: the named ones, else every one in
/// lockgate.toml.
fn resolve_many(config: &Config, names: &[String], flags: &TransferFlags) -> Result<Vec<Transfer>, i32> {
    let names: Vec<String> = if names.is_empty() {
        if config.transfers.is_empty() {
            return Err(render::fail(
                "no transfer named and none in lockgate.toml: give a NAME with --source/--dest flags, or define [transfers.NAME]",
                2,
            ));
        }
        if flags.given() {
            return Err(render::fail(
                "flags describe one transfer: name it (`lockgate transfer run NAME --source …`)",
                2,
            ));
        }
        config.transfers.keys().cloned().collect()
    } else {
        names.to_vec()
    };
    names.iter().map(|n| resolve_one(config, n, flags)).collect()
}

/// The destination for show/list/history: --dest, else the named transfer's, else
/// the one destination every configured transfer shares.
fn resolve_dest(config: &Config, name: Option<&str>, flags: &DestFlag) -> Result<DbUrl, i32> {
    let raw = if let Some(d) = &flags.dest {
        d.clone()
    } else if let Some(n) = name {
        match config.transfers.get(n).and_then(|s| s.dest.clone()) {
            Some(d) => d,
            None => {
                return Err(render::fail(
                    &format!("transfer {n:?} is not in lockgate.toml: give --dest URL"),
                    2,
                ))
            }
        }
    } else {
        let dests: std::collections::BTreeSet<&String> =
            config.transfers.values().filter_map(|s| s.dest.as_ref()).collect();
        match dests.len() {
            1 => dests.into_iter().next().expect("one").clone(),
            0 => {
                return Err(render::fail(
                    "give --dest URL (the destination holds the export ledger)",
                    2,
                ))
            }
            _ => {
                return Err(render::fail(
                    "the transfers in lockgate.toml have several destinations: name a transfer or give --dest URL",
                    2,
                ))
            }
        }
    };
    config
        .resolve_db(Some(&raw))
        .map_err(|e| render::fail(&e.to_string(), 2))
}

/// Checks a duration flag's lower bound (the parser, [`crate::duration`], checked
/// the rest).
fn at_least(d: Duration, min: Duration, what: &str) -> Result<Duration, i32> {
    if d < min {
        let show = |d: Duration| match d.as_millis() {
            ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
            ms => format!("{ms}ms"),
        };
        return Err(render::fail(
            &format!("{what} must be at least {}, not {}", show(min), show(d)),
            2,
        ));
    }
    Ok(d)
}

/// The shortest lease: renewed every third of it, and MariaDB's transaction
/// timeout counts whole seconds.
const MIN_LEASE: Duration = Duration::from_secs(1);

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs a `lockgate transfer` command.
pub async fn transfer(config: &Config, cmd: TransferCommand) -> i32 {
    match cmd {
        TransferCommand::Check { name, flags, json } => {
            let t = match resolve_one(config, &name, &flags) {
                Ok(t) => t,
                Err(c) => return c,
            };
            match transfer::check(&t).await {
                Ok(r) if json => {
                    print_json(&r);
                    0
                }
                Ok(r) => {
                    println!(
                        "transfer {} → {}: the destination check passed",
                        r.transfer, r.dest_table
                    );
                    for (d, s) in &r.columns {
                        println!("  {d} ← {s}");
                    }
                    println!("  key: {}", r.key.join(", "));
                    // Not failures: the values that do not fit are row errors when it runs.
                    for n in &r.narrowing {
                        println!("  note: {} ({}) ← {} ({}): {}", n.column, n.to, n.source, n.from, n.why);
                    }
                    0
                }
                Err(e) => fail_t(&e),
            }
        }
        TransferCommand::Create {
            name,
            flags,
            on_error,
            lock_timeout,
            dry_run,
            json,
        } => {
            let t = match flags.spec().and_then(|mut spec| {
                spec.on_error = on_error.or(spec.on_error);
                spec.lock_timeout = lock_timeout.or(spec.lock_timeout);
                Transfer::resolve(&name, config, spec)
            }) {
                Ok(t) => t,
                Err(e) => return fail_t(&e),
            };
            match transfer::create(&t, &CreateOptions { dry_run }).await {
                Ok(r) if json => {
                    print_json(&r);
                    0
                }
                Ok(r) => {
                    for w in &r.warnings {
                        eprintln!("warning: {w}");
                    }
                    match (&r.export, dry_run) {
                        (_, true) => println!(
                            "{} rows of transfer {} are in no pending, running or completed export (dry run: nothing created)",
                            r.available, t.name
                        ),
                        (Some(e), false) => println!(
                            "export {} of transfer {} created: {} rows, pending; run it with `lockgate transfer run {}` or a worker",
                            e.id, t.name, e.rows, t.name
                        ),
                        (None, false) => println!(
                            "nothing to export: every source row of transfer {} is in a pending, running or completed export; no export created",
                            t.name
                        ),
                    }
                    0
                }
                Err(e) => fail_t(&e),
            }
        }
        TransferCommand::Run {
            name,
            flags,
            lease,
            lock_timeout,
            json,
        } => {
            let names: Vec<String> = name.into_iter().collect();
            let transfers = match resolve_many(config, &names, &flags) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let lease = match at_least(lease, MIN_LEASE, "--lease") {
                Ok(l) => l,
                Err(c) => return c,
            };
            let (tx, bar) = progress(json);
            let opts = RunOptions {
                lease,
                lock_timeout,
                progress: tx,
                shutdown: Some(stop_on_signals("lockgate transfer run")),
                ..RunOptions::default()
            };
            let result = transfer::run_pending(&transfers, &opts).await;
            drop(opts);
            if let Some(bar) = bar {
                bar.await.ok();
            }
            match result {
                Ok(r) => {
                    if json {
                        print_json(&r);
                    } else {
                        print!("{}", run_text(&r));
                    }
                    for o in &r.exports {
                        for w in &o.warnings {
                            eprintln!("warning: {w}");
                        }
                    }
                    r.exit_code()
                }
                Err(e) => fail_t(&e),
            }
        }
        TransferCommand::Show { id, name, flags, json } => {
            let dest = match resolve_dest(config, name.as_deref(), &flags) {
                Ok(d) => d,
                Err(c) => return c,
            };
            match transfer::show(&dest, id).await {
                Ok(d) if json => {
                    print_json(&d);
                    0
                }
                Ok(d) => {
                    print!("{}", show_text(&d));
                    0
                }
                Err(e) => fail_t(&e),
            }
        }
        TransferCommand::List {
            name,
            flags,
            limit,
            json,
        } => {
            let dest = match resolve_dest(config, name.as_deref(), &flags) {
                Ok(d) => d,
                Err(c) => return c,
            };
            match transfer::list(&dest, name.as_deref(), limit).await {
                Ok(l) if json => {
                    print_json(&l);
                    0
                }
                Ok(l) => {
                    if l.is_empty() {
                        println!("no exports");
                    }
                    for e in &l {
                        println!("{}", export_line(e));
                    }
                    0
                }
                Err(e) => fail_t(&e),
            }
        }
        TransferCommand::History { key, name, flags, json } => {
            let dest = match resolve_dest(config, name.as_deref(), &flags) {
                Ok(d) => d,
                Err(c) => return c,
            };
            match transfer::history(&dest, &key, name.as_deref()).await {
                Ok(h) if json => {
                    print_json(&h);
                    0
                }
                Ok(h) => {
                    print!("{}", history_text(&key, &h));
                    0
                }
                Err(e) => fail_t(&e),
            }
        }
    }
}

fn progress(
    json: bool,
) -> (
    Option<mpsc::UnboundedSender<TransferEvent>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if json || !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<TransferEvent>();
    let task = tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while let Some(e) = rx.recv().await {
            match e {
                TransferEvent::Claimed { id, transfer, rows } => {
                    bar.reset();
                    bar.set_length(rows.max(0) as u64);
                    bar.set_message(format!("export {id} ({transfer})"));
                }
                TransferEvent::Progress { done, phase, id, .. } => {
                    bar.set_message(format!("export {id} {phase}"));
                    bar.set_position(done);
                }
                _ => {}
            }
        }
        bar.finish_and_clear();
    });
    (Some(tx), Some(task))
}

fn export_line(e: &Export) -> String {
    let mut s = format!(
        "export {:>4}  {:<10} {:<9} {:>8} rows",
        e.id, e.transfer, e.status, e.rows
    );
    if e.status == "completed" {
        s.push_str(&format!(", {} written", e.rows_written));
    }
    if e.error_count > 0 {
        s.push_str(&format!(", {} failed", e.error_count));
    }
    s.push_str(&format!("  created {}", e.created_at));
    if let Some(err) = &e.error {
        s.push_str(&format!("\n             last error: {err}"));
    }
    s
}

fn error_line(x: &ExportError) -> String {
    match &x.column {
        Some(c) => format!("  key {}: {c}: {} [{}]", x.key, x.message, x.code),
        None => format!("  key {}: {} [{}]", x.key, x.message, x.code),
    }
}

/// The report of `transfer run`.
pub fn run_text(r: &RunReport) -> String {
    if r.exports.is_empty() {
        return "no pending exports\n".into();
    }
    let mut s = String::new();
    for o in &r.exports {
        s.push_str(&outcome_text(o));
    }
    s
}

fn outcome_text(o: &ExportOutcome) -> String {
    let e = &o.export;
    let mut s = match (&o.note, e.status.as_str()) {
        (Some(note), _) => format!("export {} ({}): not finished: {note}\n", e.id, e.transfer),
        (None, "completed") if e.error_count > 0 => format!(
            "export {} ({}): completed, {} rows written in {:.1} s; {} failing rows skipped (--on-error skip), \
             free for a later export once fixed in the source\n",
            e.id, e.transfer, e.rows_written, o.seconds, e.error_count
        ),
        (None, "completed") => format!(
            "export {} ({}): completed, {} rows written in {:.1} s\n",
            e.id, e.transfer, e.rows_written, o.seconds
        ),
        (None, status) if e.error_count == 0 => format!(
            "export {} ({}): {status}: {}\n",
            e.id,
            e.transfer,
            e.error
                .as_deref()
                .unwrap_or("no row failed, yet the export did not complete")
        ),
        (None, status) if e.committed_upto > 0 => format!(
            "export {} ({}): {status}: {} of {} rows failed; the chunk holding them was rolled back, but the \
             {} rows of earlier chunks stay committed (--commit-every); fix the rows in the source, then create \
             a new export for the rest\n",
            e.id, e.transfer, e.error_count, e.rows, e.committed_upto
        ),
        (None, status) => format!(
            "export {} ({}): {status}: {} of {} rows failed, so nothing was written (all rolled back); \
             fix the rows in the source, then create a new export\n",
            e.id, e.transfer, e.error_count, e.rows
        ),
    };
    for x in o.errors.iter().take(20) {
        s.push_str(&error_line(x));
        s.push('\n');
    }
    if o.errors.len() > 20 {
        s.push_str(&format!(
            "  … and {} more: `lockgate transfer show {}` lists them all\n",
            o.errors.len() - 20,
            e.id
        ));
    }
    s
}

/// The text of `transfer show`.
pub fn show_text(d: &ExportDetail) -> String {
    let e = &d.export;
    let mut s = format!(
        "export {} of transfer {}: {}\n  rows: {}\n  written: {}\n  failed rows: {}\n  attempts: {}\n  created: {}\n",
        e.id, e.transfer, e.status, e.rows, e.rows_written, e.error_count, e.attempts, e.created_at
    );
    if let Some(t) = &e.started_at {
        s.push_str(&format!("  started: {t}\n"));
    }
    if let Some(t) = &e.ended_at {
        s.push_str(&format!("  ended: {t}\n"));
    }
    if let Some(h) = &e.holder {
        s.push_str(&format!("  held by: {h}\n"));
    }
    if e.committed_upto > 0 {
        s.push_str(&format!("  committed chunks up to row {}\n", e.committed_upto));
    }
    if let Some(err) = &e.error {
        s.push_str(&format!("  last error: {err}\n"));
    }
    if !d.errors.is_empty() {
        s.push_str("failed rows:\n");
        for x in &d.errors {
            s.push_str(&error_line(x));
            s.push('\n');
        }
    }
    s
}

/// The text of `transfer history`.
pub fn history_text(key: &str, h: &[Attempt]) -> String {
    if h.is_empty() {
        return format!("no export attempted the row with key {key}\n");
    }
    let mut s = format!("exports that attempted the row with key {key}:\n");
    for a in h {
        let outcome = match (a.status.as_str(), &a.error) {
            (_, Some(err)) => format!("failed on this row: {err}"),
            ("completed", None) => "exported".to_string(),
            ("failed", None) => "rolled back (other rows of the export failed)".to_string(),
            (other, None) => other.to_string(),
        };
        s.push_str(&format!(
            "  export {} ({}, {}, created {}): {outcome}\n",
            a.export_id, a.transfer, a.status, a.created_at
        ));
    }
    s
}

/// SIGTERM or Ctrl-C: the first stops after the export in hand, the second rolls it
/// back now (it goes back to pending at once instead of after its lease).
fn stop_on_signals(who: &'static str) -> Shutdown {
    let (stop_tx, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        for level in 1..=2u8 {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if level == 1 {
                eprintln!("{who}: stopping after the export in hand (signal again to roll it back now)");
            }
            let _ = stop_tx.send(level);
        }
    });
    shutdown
}

/// Runs `lockgate worker` until SIGTERM or Ctrl-C: the first finishes the export in
/// hand, the second rolls it back.
pub async fn worker(config: &Config, a: WorkerArgs) -> i32 {
    let transfers = match resolve_many(config, &a.names, &a.flags) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let (poll, lease) = match (
        at_least(a.poll, Duration::from_millis(1), "--poll"),
        at_least(a.lease, MIN_LEASE, "--lease"),
    ) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let lock_timeout = a.lock_timeout;
    if a.concurrency == 0 {
        return render::fail("--concurrency must be at least 1", 2);
    }
    let shutdown = stop_on_signals("lockgate worker");
    let (tx, mut rx) = mpsc::unbounded_channel::<TransferEvent>();
    let json = a.json;
    let printer = tokio::spawn(async move {
        let mut last = std::time::Instant::now();
        while let Some(e) = rx.recv().await {
            if json {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
                continue;
            }
            match e {
                TransferEvent::Claimed { id, transfer, rows } => {
                    eprintln!("export {id} ({transfer}): claimed, {rows} rows")
                }
                TransferEvent::Progress { id, done, total, .. } if last.elapsed() >= Duration::from_secs(5) => {
                    last = std::time::Instant::now();
                    eprintln!("export {id}: {done}/{total} rows");
                }
                TransferEvent::Progress { .. } => {}
                TransferEvent::Finished { id, status } => eprintln!("export {id}: {status}"),
                TransferEvent::Error { message } => eprintln!("error: {message} (retrying at the next poll)"),
                TransferEvent::Warning { message } => eprintln!("warning: {message}"),
            }
        }
    });
    let opts = RunOptions {
        lease,
        progress: Some(tx),
        shutdown: Some(shutdown),
        holder: "lockgate worker".into(),
        lock_timeout,
    };
    eprintln!(
        "lockgate worker: working for {} ({} at once, polling every {:.1} s; SIGTERM or Ctrl-C stops)",
        transfers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
        a.concurrency,
        poll.as_secs_f64()
    );
    let report = transfer::worker_pool(&transfers, &opts, poll, a.concurrency).await;
    drop(opts);
    printer.await.ok();
    eprintln!(
        "lockgate worker: stopped ({} completed, {} failed, {} interrupted)",
        report.completed, report.failed, report.interrupted
    );
    0
}

/// Runs `lockgate demo` and `lockgate demo generate N`.
pub async fn demo(config: &Config, a: DemoArgs) -> i32 {
    match a.command {
        Some(DemoCommand::Generate { n }) => match lockgate::demo::generate(&a.dir, n).await {
            Ok(ids) => {
                println!(
                    "added {} customers (CustomerID {} to {}) to {}",
                    n,
                    ids.start,
                    ids.end - 1,
                    a.dir.join("source.db").display()
                );
                0
            }
            Err(e) => render::fail(&e.to_string(), e.exit_code()),
        },
        None => match lockgate::demo::create(&a.dir).await {
            Ok(r) if a.no_serve => {
                print!("{}", demo_text(&r));
                0
            }
            Ok(r) => {
                print!("{}", demo_text(&r));
                use std::io::Write;
                let _ = std::io::stdout().flush();
                crate::serve_cmd::serve_demo(&a.dir, a.bind.as_deref(), config).await
            }
            Err(e) => render::fail(&e.to_string(), e.exit_code()),
        },
    }
}

fn demo_text(r: &lockgate::demo::DemoReport) -> String {
    use lockgate::demo::{
        CLEAN_FROM, CLEAN_INTO, CONFLICT_FROM, CONFLICT_INTO, CONFLICT_USERNAMES, DELETED_CUSTOMER, MERGE,
    };
    let f = &r.files;
    let cfg = f.config.display();
    let a = &r.accounts;
    let mut s = format!(
        "{} the demo in {}:\n  source       {} ({} customers; FirstName and LastName may be NULL)\n  \
         destination  {} ({} customers; names NOT NULL; the export ledger)\n  \
         accounts     {} ({} customer accounts, {} soft-deleted, with {} users: clients,\n               \
         officers, pilots, inspectors, vehicles; {} jobs, {} job logs, {} job assignments,\n               \
         {} products, {} crops, {} costing items, {} invoices)\n  config       {}\n\n\
         exports (newest first):\n",
        if r.created { "created" } else { "using" },
        f.dir.display(),
        f.source.display(),
        r.customers,
        f.dest.display(),
        r.exported,
        f.accounts.display(),
        a.customers,
        a.deleted_customers,
        a.users,
        a.jobs,
        a.job_logs,
        a.job_assignments,
        a.products,
        a.crops,
        a.costing_items,
        a.invoices,
        cfg
    );
    for e in &r.exports {
        s.push_str(&format!("  {}\n", export_line(e)));
    }
    let dir = f.dir.display();
    let tries = [
        (
            format!("lockgate --config {cfg} transfer create customers"),
            "a pending export of them",
        ),
        (
            format!("lockgate --config {cfg} transfer run"),
            "run pending exports (the seed's /process)",
        ),
        (format!("lockgate --config {cfg} transfer list"), "the exports"),
        (
            format!("lockgate --config {cfg} transfer show 3"),
            "the failed export and its row errors",
        ),
        (
            format!("lockgate --config {cfg} transfer history --key 434"),
            "every attempt for one customer",
        ),
        (
            format!("lockgate demo --dir {dir} generate 10"),
            "add customers (1 to 500)",
        ),
        (
            format!("lockgate --config {cfg} worker"),
            "run exports as they are created",
        ),
    ];
    let width = tries.iter().map(|(c, _)| c.chars().count()).max().unwrap_or(0);
    s.push_str(&format!(
        "\n{} customers are not in any export yet. Try:\n",
        r.exportable
    ));
    for (command, what) in &tries {
        s.push_str(&format!("  {command:<width$}  # {what}\n"));
    }
    let merges = [
        (
            format!(
                "lockgate --config {cfg} merge --def {MERGE} --from {CONFLICT_FROM} --into {CONFLICT_INTO} --preview"
            ),
            format!("conflicts: both have {}", CONFLICT_USERNAMES.join(", ")),
        ),
        (
            format!("lockgate --config {cfg} merge --def {MERGE} --from {CLEAN_FROM} --into {CLEAN_INTO} --preview"),
            "a clean merge: no username in common".to_string(),
        ),
    ];
    let width = merges.iter().map(|(c, _)| c.chars().count()).max().unwrap_or(0);
    s.push_str(&format!(
        "\nMerge a customer account into another (accounts.db, the merge `{MERGE}`). Try:\n"
    ));
    for (command, what) in &merges {
        s.push_str(&format!("  {command:<width$}  # {what}\n"));
    }
    s.push_str(&format!(
        "Without --preview the merge runs. Customer {DELETED_CUSTOMER} is soft-deleted: a merge refuses it.\n"
    ));
    s
}
