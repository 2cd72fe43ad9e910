//! Running upgrades: `init` (the `applied_upgrades` column), `run` (each table
//! walked by primary key in batches, the cursor kept in the ledger, every pending
//! upgrade applied in dependency order: a `set` upgrade by one set-based UPDATE per
//! key range, a row function by reading, computing and writing back with a
//! compare-and-set; each records itself in the row's `applied_upgrades`), failures
//! quarantined and `retry`, `status`, `control`, `cleanup`, the upgraded view and
//! `apply_on_read`.
//!
//! The batch adapts to a target time per batch (as pt-online-schema-change's
//! chunk-time does), and the run sleeps between batches to hold a rows-per-second
//! limit. A run checks its upgrade's state in the ledger before every batch, so a
//! pause or cancel from any process is obeyed within one batch; a killed run resumes
//! from its cursor. Two runs of one upgrade never interleave: the second waits for
//! the first's lock (`upgrade:NAME`).

use super::def::RowFunction;
use super::{Change, Upgrade};
use lockgate_core::{Table, Value};
use lockgate_db::ledger::{Holder, Ledger};
use lockgate_db::upgrades::{self as sql, UpgradeState};
use lockgate_db::{Conn, DbError, DbUrl};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How a run paces itself.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Only this table's upgrades.
    pub table: Option<String>,
    /// The time one batch should take; the batch size follows it.
    pub target_batch_time: Duration,
    /// A fixed batch size instead.
    pub batch_size: Option<usize>,
    /// At most this many rows per second (none: as fast as the target time allows).
    pub max_rows_per_second: Option<u64>,
    /// How long to wait for another process's run of the same upgrade, once this
    /// run has done the others.
    pub lock_timeout: Duration,
    /// Back off while a replica lags more than this (where the engine shows it:
    /// PostgreSQL's `pg_stat_replication` on the primary).
    pub max_replication_lag: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            table: None,
            target_batch_time: Duration::from_millis(100),
            batch_size: None,
            max_rows_per_second: None,
            lock_timeout: Duration::from_secs(24 * 3600),
            max_replication_lag: Duration::from_secs(1),
        }
    }
}

/// Why a run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Bad input found before any batch (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// Rows still lack the upgrade, so its cleanup would break them (exit 4).
    #[error("{0}")]
    Remaining(String),
    /// A run stopped itself: row after row failed (exit 1; the upgrade is paused).
    #[error("{0}")]
    Stopped(String),
    /// The database (exit 1).
    #[error(transparent)]
    Db(#[from] DbError),
}

impl UpgradeError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            UpgradeError::Invalid(_) => 2,
            UpgradeError::Remaining(_) => 4,
            UpgradeError::Stopped(_) => 1,
            UpgradeError::Db(e) => e.exit_code(),
        }
    }
}

/// Progress of a run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UpgradeProgress {
    /// The upgrade.
    pub upgrade: String,
    /// Rows it has written so far (this run and earlier ones).
    pub rows: u64,
    /// The current batch size.
    pub batch: usize,
    /// Rows done plus rows lacking it when the walk began (only counted when
    /// someone watches the progress).
    pub total: Option<u64>,
}

/// What a run did to one upgrade.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UpgradeOutcome {
    /// The upgrade.
    pub upgrade: String,
    /// Its table.
    pub table: String,
    /// Rows this run upgraded.
    pub upgraded: u64,
    /// Batches.
    pub batches: u64,
    /// Its state at the end (`complete`, `paused`, `cancelled`, `running`).
    pub state: String,
    /// Rows in scope still without it.
    pub remaining: u64,
    /// Rows quarantined with an error (by this run or earlier ones).
    pub quarantined: u64,
    /// Rows read again because an application changed them between the run's read
    /// and its write (row functions only: their compare-and-set missed, the
    /// application's write stayed, and the row was recomputed from it).
    pub reread: u64,
    /// Its dependencies (`after`) not complete, with their states: rows without them
    /// are left for a later run.
    pub waiting_for: Vec<String>,
}

/// What `lockgate upgrade run` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    /// Per upgrade, in the order run.
    pub upgrades: Vec<UpgradeOutcome>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Adds `applied_upgrades` to `table` where it is missing; whether it did.
pub async fn init(url: &DbUrl, table: &str) -> Result<bool, UpgradeError> {
    let mut conn = Conn::connect_existing(url).await?;
    let t = conn.find_table(table).await?;
    Ok(sql::add_applied_column(&mut conn, &t).await?)
}

/// The batch size after a batch of `size` rows took `took`: scaled towards the
/// target time, by at most a factor of 2 either way (one slow batch, a lock wait,
/// must not collapse it), within 10 to 100,000 rows.
pub fn next_batch_size(size: usize, took: Duration, target: Duration) -> usize {
    let ratio = target.as_secs_f64() / took.as_secs_f64().max(1e-4);
    let scaled = (size as f64 * ratio.clamp(0.5, 2.0)) as usize;
    scaled.clamp(10, 100_000)
}

/// A row function ready to run: a closure's or a compiled script's. It gets the
/// row's values in the table's column order and returns them changed, each typed
/// for its column.
type Apply = Arc<dyn Fn(&Table, &[Value]) -> Result<Vec<Value>, String> + Send + Sync>;

/// How an upgrade changes rows, ready to run.
#[derive(Clone)]
enum Runner {
    /// One set-based UPDATE per key range.
    Set(Vec<(String, String)>),
    /// Rows read, computed here, and written back with a compare-and-set.
    Rows(Apply),
}

/// How many times a row is tried (a failing statement, a script error) before it is
/// quarantined; and how many times in a row an application may change it between
/// our read and our write before it is quarantined as too busy to upgrade now.
const ROW_ATTEMPTS: u32 = 3;
const CAS_ATTEMPTS: u32 = 10;
/// Rows quarantined one after another, none upgraded between, that stop a `set`
/// run: an expression that fails on every row is the upgrade's error.
const MAX_CONSECUTIVE_QUARANTINED: u32 = 50;

/// A closure over a row map, as [`Apply`]: the map holds every column but
/// `applied_upgrades`; a key that is not a column, or a changed primary key, is the
/// row's error; values are checked as writes to their columns.
fn rust_apply(f: RowFunction) -> Apply {
    Arc::new(move |t: &Table, row: &[Value]| {
        let mut map: BTreeMap<String, Value> = t
            .columns
            .iter()
            .zip(row)
            .filter(|(c, _)| c.name != sql::APPLIED_COLUMN)
            .map(|(c, v)| (c.name.clone(), v.clone()))
            .collect();
        f(&mut map)?;
        let mut out = row.to_vec();
        for (name, v) in map {
            let i = t
                .columns
                .iter()
                .position(|c| c.name == name && c.name != sql::APPLIED_COLUMN)
                .ok_or_else(|| format!("the function set {name:?}, which is not a column of {}", t.name))?;
            if out[i] == v {
                continue;
            }
            if t.primary_key.contains(&name) {
                return Err(format!(
                    "the function changed {name}, part of the primary key of {}",
                    t.name
                ));
            }
            out[i] = t.columns[i]
                .kind
                .check(v)
                .map_err(|e| format!("the function set {name} to a value the column cannot hold: {e}"))?;
        }
        Ok(out)
    })
}

/// The upgrade's change, ready to run; a script is compiled here (its syntax was
/// checked when it was declared).
fn runner_of(u: &Upgrade) -> Result<Runner, String> {
    match &u.change {
        Change::Set(set) => Ok(Runner::Set(set.clone())),
        Change::Rust(r) => Ok(Runner::Rows(rust_apply(r.0.clone()))),
        Change::Script(source) => {
            let script = super::script::Script::compile(source, super::script::Limits::default())
                .map_err(|e| format!("{}: upgrade {:?}, script: {e}", u.origin, u.name))?;
            Ok(Runner::Rows(Arc::new(move |t: &Table, row: &[Value]| {
                script.apply(t, row)
            })))
        }
    }
}

/// Runs every pending upgrade (of one table, or all) to the end, or until it is
/// paused or cancelled. An upgrade another process is running is left to it at
/// first; once this run has done the others, it waits for that one and sweeps what
/// is left (usually nothing), so that two runners started together both end with
/// every upgrade applied, each row once.
pub async fn run(
    url: &DbUrl,
    upgrades: &[Upgrade],
    opts: &RunOptions,
    progress: Option<UnboundedSender<UpgradeProgress>>,
) -> Result<RunReport, UpgradeError> {
    let started = Instant::now();
    let mut conn = Conn::connect_existing(url).await?;
    let mut ledger = Ledger::open(url).await?;
    if conn.engine() == lockgate_db::Engine::Mysql {
        // A row re-read after a compare-and-set missed must see the application's
        // committed write, not the transaction's first snapshot.
        conn.batch("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await?;
    }
    let chosen = in_order(
        upgrades
            .iter()
            .filter(|u| opts.table.as_ref().is_none_or(|t| u.table.eq_ignore_ascii_case(t)))
            .cloned()
            .collect(),
    )?;
    // Everything checked before the first batch: tables, keys, columns, expressions.
    let mut problems = Vec::new();
    let mut plans = Vec::new();
    for u in &chosen {
        let runner = match runner_of(u) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let t = match conn.find_table(&u.table).await {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: upgrade {:?}, table: {e}", u.origin, u.name));
                continue;
            }
        };
        if t.primary_key.is_empty() {
            problems.push(format!(
                "{}: upgrade {:?}: table {} has no primary key, which the run walks it by",
                u.origin, u.name, t.name
            ));
        }
        if !sql::has_applied_column(&mut conn, &t).await? {
            problems.push(format!(
                "{}: upgrade {:?}: table {} has no applied_upgrades column; add it with `lockgate upgrade init \
                 --table {}`",
                u.origin, u.name, t.name, t.name
            ));
        }
        if let Runner::Set(set) = &runner {
            for (col, expr) in set {
                match t.column(col) {
                    None => problems.push(format!(
                        "{}: upgrade {:?}, set: {col:?} is not a column of {}",
                        u.origin, u.name, t.name
                    )),
                    Some(c) if c.name == sql::APPLIED_COLUMN || t.primary_key.contains(&c.name) => {
                        problems.push(format!(
                            "{}: upgrade {:?}, set: {} of {} is {}: an upgrade cannot set it",
                            u.origin,
                            u.name,
                            c.name,
                            t.name,
                            if c.name == sql::APPLIED_COLUMN {
                                "the list of applied upgrades"
                            } else {
                                "part of the primary key"
                            }
                        ))
                    }
                    Some(c) => {
                        if let Err(e) = sql::check_assignment(&mut conn, &t, &c.name, expr).await {
                            problems.push(format!("{}: upgrade {:?}, set.{col}: {e}", u.origin, u.name));
                        }
                    }
                }
            }
        }
        if let Some(c) = &u.condition {
            if let Err(e) = sql::check_expression(&mut conn, &t, &format!("CASE WHEN ({c}) THEN 1 END")).await {
                problems.push(format!("{}: upgrade {:?}, where: {e}", u.origin, u.name));
            }
        }
        plans.push((u, t, runner));
    }
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    // A changed definition refuses the whole run before anything is registered.
    for (u, t, _) in &plans {
        if let Some(r) = sql::state(ledger.conn(), &u.name).await? {
            if r.checksum != u.effective_checksum() || r.table != t.name.to_string() {
                problems.push(format!(
                    "{}: upgrade {:?}: definition changed after the upgrade started (the ledger has it on table {} \
                     with checksum {}): restore its definition, or declare the change as a new upgrade under \
                     another name",
                    u.origin, u.name, r.table, r.checksum
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    for (u, t, _) in &plans {
        sql::register(ledger.conn(), &u.name, &t.name.to_string(), &u.effective_checksum())
            .await
            .map_err(|e| match e {
                DbError::Invalid(m) => UpgradeError::Invalid(format!("{}: upgrade {:?}: {m}", u.origin, u.name)),
                other => other.into(),
            })?;
    }
    let mut outcomes = Vec::new();
    let mut deferred = Vec::new();
    // First pass: what nobody else is running; second: the rest, waiting for them.
    for pass in 0..2 {
        let todo: Vec<usize> = if pass == 0 {
            (0..plans.len()).collect()
        } else {
            std::mem::take(&mut deferred)
        };
        for i in todo {
            let (u, t, runner) = &plans[i];
            // Dependencies first: an upgrade whose `after` another process holds waits
            // in the second pass too.
            if pass == 0 && u.after.iter().any(|a| deferred.iter().any(|&j| plans[j].0.name == *a)) {
                deferred.push(i);
                continue;
            }
            let holder = Holder::current(format!("lockgate upgrade run {}", u.name));
            let job = format!("upgrade:{}", u.name);
            let wait = if pass == 0 { Duration::ZERO } else { opts.lock_timeout };
            let lock = match ledger.lock(&job, &holder, wait).await {
                Ok(l) => l,
                Err(DbError::LockTimeout { .. }) if pass == 0 => {
                    deferred.push(i);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // A row needs its dependencies first: the walk takes only rows that have
            // them (see `scope`); the dependencies not complete are reported.
            let mut waiting_for = Vec::new();
            for dep in &u.after {
                let state = sql::state(ledger.conn(), dep).await?.map(|r| r.state);
                if state != Some(UpgradeState::Complete) {
                    waiting_for.push(format!("{dep} ({})", state.map_or("not started", |s| s.as_str())));
                }
            }
            let deps: Vec<&Upgrade> = plans.iter().map(|(d, _, _)| *d).collect();
            let result = walk(
                &mut conn,
                &mut ledger,
                &lock,
                u,
                &deps,
                t,
                runner,
                opts,
                progress.as_ref(),
            )
            .await;
            if result.is_err() {
                // Nobody runs it now: `status` and `resume` must not see it running.
                let _ =
                    sql::set_state_from(ledger.conn(), &u.name, UpgradeState::Pending, &[UpgradeState::Running]).await;
            }
            let _ = ledger.unlock(lock).await;
            let mut outcome = result?;
            outcome.waiting_for = waiting_for;
            outcomes.push(outcome);
        }
    }
    Ok(RunReport {
        upgrades: outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `upgrades` in dependency order, their `after` lists checked (declared upgrades
/// were checked when read; Rust functions are checked here): each names an upgrade of
/// the same table among them, and no cycle.
fn in_order(upgrades: Vec<Upgrade>) -> Result<Vec<Upgrade>, UpgradeError> {
    let mut problems = Vec::new();
    for u in &upgrades {
        for dep in &u.after {
            if !upgrades
                .iter()
                .any(|d| d.name == *dep && d.table.eq_ignore_ascii_case(&u.table))
            {
                problems.push(format!(
                    "{}: upgrade {:?}, after: {dep:?} is not an upgrade of table {} here",
                    u.origin, u.name, u.table
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    let by_name = upgrades.into_iter().map(|u| (u.name.clone(), u)).collect();
    super::def::order(by_name).map_err(|e| UpgradeError::Invalid(e.to_string()))
}

/// What one step of a walk did.
struct Step {
    /// Rows it upgraded.
    updated: u64,
    /// Rows it looked at (for the rate limit).
    scanned: u64,
    /// Where the next step starts after; `None`: the walk reached the end.
    last: Option<Vec<Value>>,
}

/// The rows a batch of `u` may take: its `where`, and every upgrade it depends on
/// (among `deps`) already applied to the row, or the row outside that one's scope (a row without one is left for a later run; the
/// upgrade is complete only when no row in its own scope lacks it).
fn scope(conn: &Conn, u: &Upgrade, deps: &[&Upgrade]) -> Result<Option<String>, DbError> {
    let mut parts: Vec<String> = u.condition.iter().map(|c| format!("({c})")).collect();
    for dep in deps.iter().filter(|d| u.after.contains(&d.name)) {
        let has = sql::has_upgrade(conn.engine(), &dep.name)?;
        // A row outside the dependency's own scope never gets it, and need not.
        parts.push(match &dep.condition {
            Some(w) => format!("({has} OR (CASE WHEN ({w}) THEN 0 ELSE 1 END) = 1)"),
            None => has,
        });
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

/// Row after row failing, none upgraded between, is the upgrade's fault, not the
/// rows': the upgrade is paused (so its state says nobody runs it) and the run stops.
async fn stop_if_failing(ledger: &mut Ledger, u: &Upgrade, in_a_row: u32, last: &str) -> Result<(), UpgradeError> {
    if in_a_row < MAX_CONSECUTIVE_QUARANTINED {
        return Ok(());
    }
    sql::set_state_from(ledger.conn(), &u.name, UpgradeState::Paused, &[UpgradeState::Running]).await?;
    Err(UpgradeError::Stopped(format!(
        "{}: upgrade {:?}: {in_a_row} rows in a row failed and none was upgraded (the last: {last}); it is paused. \
         If the data is at fault, correct it, then `lockgate upgrade resume {}` and `lockgate upgrade retry {}`; \
         if the upgrade is, cancel it and declare the corrected change under a new name",
        u.origin, u.name, u.name, u.name
    )))
}

/// Whether an error is a row's (a constraint, a bad value, a lock conflict), which a
/// smaller batch or a retry may get past, rather than the connection's.
fn row_error(e: &DbError) -> bool {
    e.engine_error().is_some_and(|x| !x.connection_lost)
}

/// One upgrade's walk from its cursor.
#[allow(clippy::too_many_arguments)]
async fn walk(
    conn: &mut Conn,
    ledger: &mut Ledger,
    lock: &lockgate_db::ledger::JobLock,
    u: &Upgrade,
    deps: &[&Upgrade],
    t: &Table,
    runner: &Runner,
    opts: &RunOptions,
    progress: Option<&UnboundedSender<UpgradeProgress>>,
) -> Result<UpgradeOutcome, UpgradeError> {
    let mut record = sql::state(ledger.conn(), &u.name)
        .await?
        .ok_or_else(|| UpgradeError::Invalid(format!("upgrade {:?} is not registered", u.name)))?;
    // A complete upgrade is swept again from the start when rows in its scope lack it
    // (written since by an application that does not apply upgrades).
    if record.state == UpgradeState::Complete && sql::count_lacking(conn, t, &u.name, u.condition.as_deref()).await? > 0
    {
        sql::save_cursor(ledger.conn(), &u.name, &[], 0).await?;
        sql::set_state(ledger.conn(), &u.name, UpgradeState::Pending).await?;
        record.state = UpgradeState::Pending;
        record.cursor = None;
    }
    let mut cursor: Option<Vec<Value>> = record.cursor.clone();
    let mut rows_done = record.rows_done.max(0) as u64;
    let fixed = opts.batch_size.map(|b| b.max(1));
    let mut batch = fixed.unwrap_or(1_000);
    let (mut upgraded, mut batches, mut quarantined, mut reread) = (0u64, 0u64, 0u64, 0u64);
    let (mut row_failures, mut transient_failures) = (0u32, 0u32);
    let mut final_state = record.state;
    let mut reached_end = false;
    let walk_began = Instant::now();
    let mut rate_saved = Instant::now();
    let mut pressure = Pressure::new(opts);
    let mut total = None;
    if progress.is_some() && matches!(record.state, UpgradeState::Pending | UpgradeState::Running) {
        total = Some(rows_done + sql::count_lacking(conn, t, &u.name, u.condition.as_deref()).await?);
    }
    if matches!(record.state, UpgradeState::Pending | UpgradeState::Running) {
        // Running only from pending or running: a pause that landed since the read stays.
        if !sql::set_state_from(
            ledger.conn(),
            &u.name,
            UpgradeState::Running,
            &[UpgradeState::Pending, UpgradeState::Running],
        )
        .await?
        {
            // Paused or cancelled meanwhile: the loop's first read sees it and stops.
            record.state = sql::state(ledger.conn(), &u.name)
                .await?
                .map_or(UpgradeState::Cancelled, |r| r.state);
        }
    }
    let mut consecutive_quarantined = 0u32;
    let mut heartbeat = Instant::now();
    let batch_scope = scope(conn, u, deps)?;
    if matches!(final_state, UpgradeState::Pending | UpgradeState::Running) {
        loop {
            // Obeyed within one batch: whoever paused or cancelled it, from anywhere.
            let mut now = sql::state(ledger.conn(), &u.name).await?.map(|r| r.state);
            // Paused and resumed within one batch: it is this runner's again.
            if now == Some(UpgradeState::Pending)
                && sql::set_state_from(ledger.conn(), &u.name, UpgradeState::Running, &[UpgradeState::Pending]).await?
            {
                now = Some(UpgradeState::Running);
            }
            if now != Some(UpgradeState::Running) {
                final_state = now.unwrap_or(UpgradeState::Cancelled);
                break;
            }
            // The lock stays fresh (SQLite takes over one silent for an hour).
            if heartbeat.elapsed() >= Duration::from_secs(30) {
                ledger.heartbeat(lock).await?;
                heartbeat = Instant::now();
            }
            pressure.wait(conn).await?;
            let quarantined_before = quarantined;
            let began = Instant::now();
            let step = match runner {
                Runner::Set(set) => {
                    sql::apply_set_batch(conn, t, &u.name, set, batch_scope.as_deref(), cursor.as_deref(), batch)
                        .await
                        .map(|d| Step {
                            updated: d.updated,
                            scanned: d.scanned,
                            last: d.last,
                        })
                }
                Runner::Rows(apply) => {
                    rows_step(
                        conn,
                        ledger,
                        u,
                        t,
                        apply,
                        batch_scope.as_deref(),
                        cursor.as_deref(),
                        batch,
                        &mut quarantined,
                        &mut reread,
                    )
                    .await
                }
            };
            let took = began.elapsed();
            let step = match step {
                Ok(s) => s,
                Err(e) if row_error(&e) && e.is_transient() => {
                    // A deadlock or a lock timeout: back off, smaller, and again.
                    transient_failures += 1;
                    if transient_failures > 8 {
                        return Err(e.into());
                    }
                    batch = (batch / 2).max(1);
                    tokio::time::sleep(Duration::from_millis(50 << transient_failures.min(6))).await;
                    continue;
                }
                Err(e) if row_error(&e) && batch > 1 => {
                    // Some row of the range fails: halve the range until it is that row.
                    batch = (batch / 2).max(1);
                    continue;
                }
                Err(e) if row_error(&e) => {
                    row_failures += 1;
                    if row_failures < ROW_ATTEMPTS {
                        continue;
                    }
                    // That row, tried enough: quarantined with its error, and the walk
                    // goes on past it.
                    row_failures = 0;
                    let Some(key) = sql::next_key(conn, t, cursor.as_deref()).await? else {
                        return Err(e.into());
                    };
                    sql::quarantine(
                        ledger.conn(),
                        &u.name,
                        &key,
                        &format!("failed {ROW_ATTEMPTS} times: {e}"),
                    )
                    .await?;
                    quarantined += 1;
                    sql::save_cursor(ledger.conn(), &u.name, &key, 0).await?;
                    cursor = Some(key);
                    consecutive_quarantined += 1;
                    stop_if_failing(ledger, u, consecutive_quarantined, &e.to_string()).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            (row_failures, transient_failures) = (0, 0);
            if step.updated > 0 {
                consecutive_quarantined = 0;
            } else if quarantined > quarantined_before {
                consecutive_quarantined += (quarantined - quarantined_before) as u32;
                stop_if_failing(ledger, u, consecutive_quarantined, "see the quarantined rows").await?;
            }
            upgraded += step.updated;
            rows_done += step.updated;
            batches += 1;
            if let Some(p) = progress {
                let _ = p.send(UpgradeProgress {
                    upgrade: u.name.clone(),
                    rows: rows_done,
                    batch,
                    total,
                });
            }
            let Some(last) = step.last else {
                // The last range: its rows counted, the cursor back to the start for
                // any run that must sweep again.
                sql::save_cursor(ledger.conn(), &u.name, &[], step.updated).await?;
                reached_end = true;
                final_state = UpgradeState::Running;
                break;
            };
            sql::save_cursor(ledger.conn(), &u.name, &last, step.updated).await?;
            cursor = Some(last);
            // The rate for status and its ETA, once a second.
            if rate_saved.elapsed() >= Duration::from_secs(1) {
                let rate = upgraded as f64 / walk_began.elapsed().as_secs_f64().max(1e-3);
                sql::set_rate(ledger.conn(), &u.name, rate).await?;
                rate_saved = Instant::now();
            }
            batch = match fixed {
                // Back up to the fixed size after a failure halved it.
                Some(f) => (batch * 2).min(f),
                None => next_batch_size(batch, took, opts.target_batch_time),
            };
            pressure.after_batch(took, opts.target_batch_time);
            if let Some(rate) = opts.max_rows_per_second.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(step.scanned as f64 / rate as f64);
                if due > took {
                    tokio::time::sleep(due - took).await;
                }
            }
        }
    }
    let remaining = sql::count_lacking(conn, t, &u.name, u.condition.as_deref()).await?;
    if reached_end {
        // The walk reached the end: complete only when no row in scope lacks it (and
        // so none is quarantined). Rows an application wrote meanwhile without the
        // upgrade are found by the next run, which walks again from the start (the
        // cursor went back); quarantined rows wait for `lockgate upgrade retry`.
        final_state = if remaining == 0 {
            // No row lacks it: whatever is still quarantined was deleted, moved out of
            // scope or upgraded since.
            sql::clear_quarantine(ledger.conn(), &u.name).await?;
            UpgradeState::Complete
        } else {
            UpgradeState::Pending
        };
        // Only from running: a pause or cancel during the last batch stays.
        if !sql::set_state_from(ledger.conn(), &u.name, final_state, &[UpgradeState::Running]).await? {
            final_state = sql::state(ledger.conn(), &u.name)
                .await?
                .map_or(UpgradeState::Cancelled, |r| r.state);
        }
    }
    Ok(UpgradeOutcome {
        upgrade: u.name.clone(),
        table: t.name.to_string(),
        upgraded,
        batches,
        state: final_state.as_str().to_string(),
        remaining,
        quarantined: sql::quarantine_count(ledger.conn(), &u.name).await?,
        reread,
        waiting_for: Vec::new(),
    })
}

/// One step of a row-function upgrade: up to `batch` rows after the cursor that lack
/// it are read, computed, and written back in one transaction, each with a
/// compare-and-set against the values read; a row an application changed meanwhile
/// is read again and recomputed, so its write is never overwritten. A row whose
/// function fails (or that stays too busy) is quarantined after the transaction.
/// A write that fails aborts the transaction: the step is then redone row by row,
/// each row in its own statement, so that only the failing row is quarantined.
#[allow(clippy::too_many_arguments)]
async fn rows_step(
    conn: &mut Conn,
    ledger: &mut Ledger,
    u: &Upgrade,
    t: &Table,
    apply: &Apply,
    scope: Option<&str>,
    after: Option<&[Value]>,
    batch: usize,
    quarantined: &mut u64,
    reread: &mut u64,
) -> Result<Step, DbError> {
    let (rows, more) = sql::read_lacking(conn, t, &u.name, scope, after, batch).await?;
    let last = if more { rows.last().map(|r| r.key.clone()) } else { None };
    let scanned = rows.len() as u64;
    let mut failed: Vec<(Vec<Value>, String)> = Vec::new();
    // The first computation of every row off the async threads: a script may take up
    // to its time limit. (A row read again after a missed compare-and-set is
    // recomputed in place; that is rare.)
    let computed: Vec<Result<Vec<Value>, String>> = {
        let (apply, table) = (apply.clone(), t.clone());
        let values: Vec<Vec<Value>> = rows.iter().map(|r| r.values.clone()).collect();
        // A failing function is tried again here, off the async threads and before
        // any lock is taken.
        tokio::task::spawn_blocking(move || {
            values
                .iter()
                .map(|v| {
                    let mut result = apply(&table, v);
                    for _ in 1..ROW_ATTEMPTS {
                        if result.is_ok() {
                            break;
                        }
                        result = apply(&table, v);
                    }
                    result
                })
                .collect()
        })
        .await
        .map_err(|e| DbError::Internal(format!("a row function panicked: {e}")))?
    };
    conn.begin().await?;
    let updated = match write_rows(conn, u, t, apply, scope, &rows, &computed, &mut failed, reread, false).await {
        Ok(n) => {
            conn.commit().await?;
            n
        }
        Err(e) if row_error(&e) && !e.is_transient() => {
            let _ = conn.rollback().await;
            // One row's statement failed: each row alone, so only that one fails.
            failed.clear();
            write_rows(conn, u, t, apply, scope, &rows, &computed, &mut failed, reread, true).await?
        }
        Err(e) => {
            let _ = conn.rollback().await;
            return Err(e);
        }
    };
    for (key, error) in &failed {
        sql::quarantine(ledger.conn(), &u.name, key, error).await?;
        *quarantined += 1;
    }
    Ok(Step { updated, scanned, last })
}

/// Writes a batch's rows (their first computations in `computed`); how many it
/// upgraded. `alone`: each row is its own statement outside any transaction, so a
/// failing write is that row's failure (into `failed`) rather than the batch's error.
#[allow(clippy::too_many_arguments)]
async fn write_rows(
    conn: &mut Conn,
    u: &Upgrade,
    t: &Table,
    apply: &Apply,
    scope: Option<&str>,
    rows: &[sql::ReadRow],
    computed: &[Result<Vec<Value>, String>],
    failed: &mut Vec<(Vec<Value>, String)>,
    reread: &mut u64,
    alone: bool,
) -> Result<u64, DbError> {
    let mut updated = 0;
    for (row, first) in rows.iter().zip(computed) {
        match upgrade_row(
            conn,
            u,
            t,
            apply,
            scope,
            row.clone(),
            Some(first.clone()),
            failed,
            reread,
        )
        .await
        {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(e) if alone && row_error(&e) && !e.is_transient() => {
                failed.push((row.key.clone(), format!("failed to write: {e}")))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(updated)
}

/// Computes and writes one row; whether it wrote. A function error is tried again
/// (on the row read afresh) up to [`ROW_ATTEMPTS`] times, a missed compare-and-set up
/// to [`CAS_ATTEMPTS`]; then the row goes to `failed`. A row gone, out of scope or
/// upgraded since is skipped.
#[allow(clippy::too_many_arguments)]
async fn upgrade_row(
    conn: &mut Conn,
    u: &Upgrade,
    t: &Table,
    apply: &Apply,
    scope: Option<&str>,
    mut row: sql::ReadRow,
    mut computed: Option<Result<Vec<Value>, String>>,
    failed: &mut Vec<(Vec<Value>, String)>,
    reread: &mut u64,
) -> Result<bool, DbError> {
    let (mut errors, mut misses) = (0u32, 0u32);
    // A first computation handed in was tried ROW_ATTEMPTS times already.
    let pretried = computed.is_some();
    loop {
        match computed.take().unwrap_or_else(|| apply(t, &row.values)) {
            Ok(new) => {
                if sql::write_row(conn, t, &u.name, &row, &new).await? {
                    return Ok(true);
                }
                misses += 1;
                *reread += 1;
                if misses >= CAS_ATTEMPTS {
                    failed.push((
                        row.key.clone(),
                        format!("changed by another writer {CAS_ATTEMPTS} times between read and write"),
                    ));
                    return Ok(false);
                }
            }
            Err(e) => {
                errors += 1;
                if errors >= ROW_ATTEMPTS || (pretried && misses == 0) {
                    failed.push((row.key.clone(), format!("failed {ROW_ATTEMPTS} times: {e}")));
                    return Ok(false);
                }
            }
        }
        match sql::read_lacking_key(conn, t, &u.name, scope, &row.key).await? {
            Some(again) => row = again,
            None => return Ok(false),
        }
    }
}

/// Backing off when the database is under pressure: before a batch, while other
/// sessions wait for locks, or a replica lags more than allowed (where the engine
/// shows it); after a batch that took well over its target time, for as long again
/// as it overran.
struct Pressure {
    max_lag: Duration,
    pause: Duration,
    /// Whether the probe is available (a server that refuses it is not asked again).
    probe: bool,
}

impl Pressure {
    fn new(opts: &RunOptions) -> Pressure {
        Pressure {
            max_lag: opts.max_replication_lag,
            pause: Duration::ZERO,
            probe: true,
        }
    }

    fn after_batch(&mut self, took: Duration, target: Duration) {
        self.pause = if took > target + target / 2 {
            (took - target).min(Duration::from_secs(2))
        } else {
            Duration::ZERO
        };
    }

    async fn wait(&mut self, conn: &mut Conn) -> Result<(), DbError> {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        if !self.probe {
            return Ok(());
        }
        // Half a second at most: pressure slows the run, it never stalls it (the
        // lock waits seen may be the application's own, not the run's).
        for _ in 0..10 {
            let p = match sql::pressure(conn).await {
                Ok(p) => p,
                Err(e) if row_error(&e) => {
                    self.probe = false;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if p.lock_waiters == 0 && p.replication_lag.is_none_or(|l| l <= self.max_lag) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_follows_the_target_time_gently() {
        let target = Duration::from_millis(100);
        assert_eq!(next_batch_size(1000, Duration::from_millis(50), target), 2000);
        assert_eq!(next_batch_size(1000, Duration::from_millis(400), target), 500);
        assert_eq!(next_batch_size(1000, Duration::from_millis(100), target), 1000);
        assert_eq!(next_batch_size(80_000, Duration::from_millis(1), target), 100_000);
        assert_eq!(next_batch_size(12, Duration::from_secs(5), target), 10);
    }
}

/// One upgrade in `lockgate upgrade status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UpgradeStatus {
    /// The upgrade.
    pub upgrade: String,
    /// Its table.
    pub table: String,
    /// `pending`, `running`, `paused`, `cancelled`, `complete`, or `not started`.
    pub state: String,
    /// Rows it has written.
    pub rows_done: u64,
    /// Rows in scope still without it (none when the table lacks `applied_upgrades`).
    pub remaining: Option<u64>,
    /// Rows per second of its last run.
    pub rows_per_second: Option<f64>,
    /// Seconds left at that rate, while rows remain.
    pub eta_seconds: Option<f64>,
    /// Rows quarantined with an error.
    pub quarantined: usize,
    /// The first quarantined rows (at most 100), with their errors.
    pub quarantine: Vec<sql::Quarantined>,
}

/// `lockgate upgrade status`: every declared upgrade with its state, rows done and
/// rows remaining.
pub async fn status(url: &DbUrl, upgrades: &[Upgrade]) -> Result<Vec<UpgradeStatus>, UpgradeError> {
    let mut conn = Conn::connect_existing(url).await?;
    // Looking creates nothing: a database without a ledger has run no upgrade.
    let mut ledger = Ledger::open_existing(url).await?;
    let mut out = Vec::new();
    for u in upgrades {
        let record = match &mut ledger {
            Some(l) => sql::state(l.conn(), &u.name).await?,
            None => None,
        };
        let table = conn.lookup_table(&u.table).await?;
        let remaining = match &table {
            Some(t) if sql::has_applied_column(&mut conn, t).await? => {
                Some(sql::count_lacking(&mut conn, t, &u.name, u.condition.as_deref()).await?)
            }
            _ => None,
        };
        // A count and the first hundred: a page polls this every few seconds.
        let (quarantined, mut quarantine) = match (&record, &mut ledger) {
            (Some(_), Some(l)) => (
                sql::quarantine_count(l.conn(), &u.name).await?,
                sql::quarantined_first(l.conn(), &u.name, 100).await?,
            ),
            _ => (0, Vec::new()),
        };
        // SQLite's keys may end with the rowid that tells NULL keys apart: people
        // see the primary key's values.
        if let Some(t) = &table {
            for q in &mut quarantine {
                if q.key.len() > t.primary_key.len() && !t.primary_key.is_empty() {
                    q.key_text = sql::key_display(&q.key[..t.primary_key.len()]);
                }
            }
        }
        let rate = record.as_ref().and_then(|r| r.rate).filter(|r| *r > 0.0);
        out.push(UpgradeStatus {
            rows_per_second: rate,
            eta_seconds: match (remaining, rate) {
                (Some(n), Some(r)) if n > 0 => Some(n as f64 / r),
                _ => None,
            },
            quarantined: quarantined as usize,
            quarantine,
            upgrade: u.name.clone(),
            table: u.table.clone(),
            state: record
                .as_ref()
                .map_or_else(|| "not started".to_string(), |r| r.state.as_str().to_string()),
            rows_done: record.as_ref().map_or(0, |r| r.rows_done.max(0) as u64),
            remaining,
        });
    }
    Ok(out)
}

/// `pause`, `resume` or `cancel`: the state a running upgrader obeys before its next
/// batch. Resuming a paused or cancelled upgrade makes it pending again.
pub async fn control(url: &DbUrl, upgrade: &Upgrade, to: UpgradeState) -> Result<(), UpgradeError> {
    // Registered under the table's resolved name, as a run registers it.
    let table = Conn::connect_existing(url).await?.find_table(&upgrade.table).await?;
    let mut ledger = Ledger::open(url).await?;
    let record = sql::register(
        ledger.conn(),
        &upgrade.name,
        &table.name.to_string(),
        &upgrade.effective_checksum(),
    )
    .await
    .map_err(|e| match e {
        DbError::Invalid(m) => UpgradeError::Invalid(format!("upgrade {:?}: {m}", upgrade.name)),
        other => other.into(),
    })?;
    if record.state == UpgradeState::Complete {
        return Err(UpgradeError::Invalid(format!(
            "upgrade {:?} is complete: there is nothing to {}",
            upgrade.name,
            match to {
                UpgradeState::Paused => "pause",
                UpgradeState::Cancelled => "cancel",
                _ => "resume",
            }
        )));
    }
    // Resume only what is stopped (resuming a running upgrade would stop its runner);
    // pause and cancel what has not ended.
    let from: &[UpgradeState] = match to {
        UpgradeState::Pending | UpgradeState::Running => &[UpgradeState::Paused, UpgradeState::Cancelled],
        _ => &[
            UpgradeState::Pending,
            UpgradeState::Running,
            UpgradeState::Paused,
            UpgradeState::Cancelled,
        ],
    };
    if !sql::set_state_from(ledger.conn(), &upgrade.name, to, from).await? {
        let now = sql::state(ledger.conn(), &upgrade.name)
            .await?
            .map_or("gone", |r| r.state.as_str());
        let hint = if now == "running" {
            " (a runner is on it; after a crash, `lockgate upgrade run` continues it from its cursor)"
        } else {
            ""
        };
        return Err(UpgradeError::Invalid(format!(
            "upgrade {:?} is {now}: it cannot be made {}{hint}",
            upgrade.name,
            to.as_str()
        )));
    }
    Ok(())
}

/// What `lockgate upgrade retry` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RetryReport {
    /// The upgrade.
    pub upgrade: String,
    /// Quarantined rows tried.
    pub tried: u64,
    /// Rows upgraded now.
    pub upgraded: u64,
    /// Rows that left the quarantine without being upgraded here: gone, out of scope,
    /// or upgraded meanwhile.
    pub skipped: u64,
    /// Rows still quarantined, with their new errors.
    pub quarantined: u64,
    /// The upgrade's state afterwards.
    pub state: String,
}

/// `lockgate upgrade retry NAME`: tries every row the upgrade quarantined again, each
/// alone (as a run tries it: the `set` UPDATE of that row, or the row function with
/// its compare-and-set). A row that is upgraded now, or no longer needs it, leaves the
/// quarantine; one that fails again stays, with its new error and one more attempt.
/// When no row in scope lacks the upgrade afterwards, it is complete. It takes the
/// upgrade's lock, so it waits up to `lock_timeout` for a run of it.
pub async fn retry(url: &DbUrl, upgrade: &Upgrade, lock_timeout: Duration) -> Result<RetryReport, UpgradeError> {
    let runner = runner_of(upgrade).map_err(UpgradeError::Invalid)?;
    let mut conn = Conn::connect_existing(url).await?;
    let mut ledger = Ledger::open(url).await?;
    let t = conn.find_table(&upgrade.table).await?;
    let record = sql::state(ledger.conn(), &upgrade.name).await?.ok_or_else(|| {
        UpgradeError::Invalid(format!(
            "upgrade {:?} has not run yet: there is nothing to retry",
            upgrade.name
        ))
    })?;
    if record.checksum != upgrade.effective_checksum() {
        // The same refusal as a run's: a changed definition is a new upgrade.
        sql::register(
            ledger.conn(),
            &upgrade.name,
            &t.name.to_string(),
            &upgrade.effective_checksum(),
        )
        .await
        .map_err(|e| match e {
            DbError::Invalid(m) => UpgradeError::Invalid(format!("{}: {m}", upgrade.origin)),
            other => other.into(),
        })?;
    }
    let holder = Holder::current(format!("lockgate upgrade retry {}", upgrade.name));
    let lock = ledger
        .lock(&format!("upgrade:{}", upgrade.name), &holder, lock_timeout)
        .await?;
    let result = retry_rows(&mut conn, &mut ledger, upgrade, &t, &runner).await;
    let _ = ledger.unlock(lock).await;
    result
}

async fn retry_rows(
    conn: &mut Conn,
    ledger: &mut Ledger,
    u: &Upgrade,
    t: &Table,
    runner: &Runner,
) -> Result<RetryReport, UpgradeError> {
    let rows = sql::quarantined(ledger.conn(), &u.name).await?;
    let mut report = RetryReport {
        upgrade: u.name.clone(),
        tried: rows.len() as u64,
        upgraded: 0,
        skipped: 0,
        quarantined: 0,
        state: String::new(),
    };
    for q in rows {
        let mut failed = Vec::new();
        let outcome = match runner {
            Runner::Set(set) => sql::apply_set_key(conn, t, &u.name, set, u.condition.as_deref(), &q.key).await,
            Runner::Rows(apply) => {
                match sql::read_lacking_key(conn, t, &u.name, u.condition.as_deref(), &q.key).await? {
                    Some(row) => {
                        // A quarantined row had its dependencies when it was taken.
                        let scope = u.condition.as_deref();
                        upgrade_row(conn, u, t, apply, scope, row, None, &mut failed, &mut 0).await
                    }
                    None => Ok(false),
                }
            }
        };
        match outcome {
            Ok(true) => {
                report.upgraded += 1;
                sql::release(ledger.conn(), &u.name, &q.key).await?;
            }
            Ok(false) if failed.is_empty() => {
                report.skipped += 1;
                sql::release(ledger.conn(), &u.name, &q.key).await?;
            }
            Ok(false) => {
                report.quarantined += 1;
                for (key, error) in &failed {
                    sql::quarantine(ledger.conn(), &u.name, key, error).await?;
                }
            }
            Err(e) if row_error(&e) => {
                report.quarantined += 1;
                sql::quarantine(ledger.conn(), &u.name, &q.key, &format!("failed again: {e}")).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let remaining = sql::count_lacking(conn, t, &u.name, u.condition.as_deref()).await?;
    let mut state = sql::state(ledger.conn(), &u.name)
        .await?
        .map_or(UpgradeState::Pending, |r| r.state);
    if remaining == 0
        && sql::set_state_from(
            ledger.conn(),
            &u.name,
            UpgradeState::Complete,
            &[UpgradeState::Pending, UpgradeState::Running],
        )
        .await?
    {
        state = UpgradeState::Complete;
    }
    report.state = state.as_str().to_string();
    Ok(report)
}

/// What `lockgate upgrade cleanup` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CleanupReport {
    /// The upgrade.
    pub upgrade: String,
    /// The cleanup SQL (as declared).
    pub cleanup: String,
    /// Whether it ran (false with `--dry-run`).
    pub ran: bool,
}

/// `lockgate upgrade cleanup NAME [--dry-run]`: runs the upgrade's `cleanup` SQL (as
/// written) once a count over the upgrade's own scope finds no row without it and
/// none is quarantined; otherwise refuses (exit 4), saying how many rows remain and
/// why: the run has not reached them, they are quarantined, or an application wrote
/// them since without applying upgrades.
pub async fn cleanup(url: &DbUrl, upgrade: &Upgrade, dry_run: bool) -> Result<CleanupReport, UpgradeError> {
    let Some(sql_text) = upgrade.cleanup.clone() else {
        return Err(UpgradeError::Invalid(format!(
            "{}: upgrade {:?} declares no cleanup; add `cleanup = \"SQL\"` to it",
            upgrade.origin, upgrade.name
        )));
    };
    let mut conn = Conn::connect_existing(url).await?;
    let mut ledger = Ledger::open(url).await?;
    let t = conn.find_table(&upgrade.table).await?;
    if !sql::has_applied_column(&mut conn, &t).await? {
        return Err(UpgradeError::Invalid(format!(
            "table {} has no applied_upgrades column: upgrade {:?} never ran",
            t.name, upgrade.name
        )));
    }
    let record = sql::state(ledger.conn(), &upgrade.name).await?;
    let lacking = sql::count_lacking(&mut conn, &t, &upgrade.name, upgrade.condition.as_deref()).await?;
    let quarantined = match &record {
        Some(_) => sql::quarantine_count(ledger.conn(), &upgrade.name).await?,
        None => 0,
    };
    if lacking > 0 || quarantined > 0 {
        let why = match record.as_ref().map(|r| r.state) {
            None => "the upgrade has not run yet".to_string(),
            Some(UpgradeState::Complete) => {
                "an application wrote them after the run without applying upgrades; `lockgate upgrade run` sweeps \
                 them"
                    .to_string()
            }
            Some(s) => format!("the upgrade is {} and has not reached them", s.as_str()),
        };
        return Err(UpgradeError::Remaining(format!(
            "cleanup of {} refused: {lacking} rows of {} in its scope lack it ({why}), {quarantined} are quarantined; \
             nothing was run",
            upgrade.name, t.name
        )));
    }
    if !dry_run {
        conn.batch(&sql_text).await?;
    }
    Ok(CleanupReport {
        upgrade: upgrade.name.clone(),
        cleanup: sql_text,
        ran: !dry_run,
    })
}

/// `lockgate upgrade view --table T`: creates or replaces `T_upgraded`, the table's
/// rows as if every declared `set` upgrade of it were applied, so that applications
/// reading the view see the new shape before the backfill ends. Each upgrade's
/// expression is evaluated on the stored row, which equals the backfill's result
/// when no upgrade reads a column another one sets: a column set by two upgrades,
/// or an upgrade that depends on another (`after`), is refused; so is a script
/// upgrade (its logic is not SQL).
pub async fn view(url: &DbUrl, upgrades: &[Upgrade], table: &str) -> Result<String, UpgradeError> {
    let mut conn = Conn::connect_existing(url).await?;
    let t = conn.find_table(table).await?;
    if !sql::has_applied_column(&mut conn, &t).await? {
        return Err(UpgradeError::Invalid(format!(
            "table {} has no applied_upgrades column; add it with `lockgate upgrade init --table {}`",
            t.name, t.name
        )));
    }
    let mine: Vec<&Upgrade> = upgrades
        .iter()
        .filter(|u| conn_names_table(&u.table, &t.name))
        .collect();
    let mut problems = Vec::new();
    for u in &mine {
        if !matches!(u.change, Change::Set(_)) {
            problems.push(format!(
                "{}: upgrade {:?} is a script or Rust upgrade, which a view cannot apply",
                u.origin, u.name
            ));
        }
    }
    if mine.is_empty() {
        problems.push(format!("no upgrade is declared for table {}", t.name));
    }
    let columns = view_columns(&t, &mine, &mut problems);
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    Ok(sql::create_upgraded_view(&mut conn, &t, &columns).await?.to_string())
}

/// The columns of a view (or a read) of `t` with its `set` upgrades among `mine`
/// applied: each upgraded column with its upgrade's expression. What one `CASE` per
/// column cannot show goes to `problems`: a column set by two upgrades, a `set`
/// upgrade that depends on another.
fn view_columns(t: &Table, mine: &[&Upgrade], problems: &mut Vec<String>) -> Vec<sql::ViewColumn> {
    let mut columns: Vec<sql::ViewColumn> = t
        .columns
        .iter()
        .map(|c| sql::ViewColumn {
            column: c.name.clone(),
            upgraded: None,
        })
        .collect();
    for u in mine {
        let Change::Set(set) = &u.change else { continue };
        if !u.after.is_empty() {
            problems.push(format!(
                "{}: upgrade {:?} depends on {}: a view cannot apply upgrades one after another",
                u.origin,
                u.name,
                u.after.join(", ")
            ));
        }
        for (col, expr) in set {
            let Some(i) = t.column_index(col) else {
                problems.push(format!(
                    "{}: upgrade {:?}, set: {col:?} is not a column of {}",
                    u.origin, u.name, t.name
                ));
                continue;
            };
            if let Some((other, _, _)) = &columns[i].upgraded {
                problems.push(format!(
                    "{}: upgrades {other:?} and {:?} both set {}.{col}: a view can show one",
                    u.origin, u.name, t.name
                ));
                continue;
            }
            columns[i].upgraded = Some((u.name.clone(), expr.clone(), u.condition.clone()));
        }
    }
    columns
}

/// For Rust applications: `rows` of `table` just read (every column, in the table's
/// order, `applied_upgrades` included) returned with every pending upgrade of the
/// table among `upgrades` applied, as the backfill would apply it, without writing
/// anything: the seed's upgrade on read. `set` upgrades are evaluated by the database
/// (the rows are read again by primary key with the `lockgate upgrade view`'s `CASE`
/// columns, so a row comes back as stored now), then row functions (scripts, Rust
/// functions) run here in dependency order; each applied upgrade is appended to the
/// row's `applied_upgrades`, so writing the row back records it. Rows that lack no
/// upgrade cost no query. A row function's error is this call's error, naming the
/// row; `set` upgrades that a view cannot show (two on a column, one after another)
/// are refused.
pub async fn apply_on_read(
    conn: &mut Conn,
    upgrades: &[Upgrade],
    table: &Table,
    rows: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>, UpgradeError> {
    let mine: Vec<&Upgrade> = upgrades
        .iter()
        .filter(|u| conn_names_table(&u.table, &table.name))
        .collect();
    let Some(applied_at) = table.column_index(sql::APPLIED_COLUMN) else {
        return Err(UpgradeError::Invalid(format!(
            "table {} has no applied_upgrades column; add it with `lockgate upgrade init --table {}`",
            table.name, table.name
        )));
    };
    let names = |row: &[Value]| -> Vec<String> {
        match &row[applied_at] {
            Value::Text(s) => serde_json::from_str(s).unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let lacking = |row: &[Value]| {
        let have = names(row);
        mine.iter().any(|u| !have.contains(&u.name))
    };
    if !rows.iter().any(|r| lacking(r)) {
        return Ok(rows.to_vec());
    }
    let mut problems = Vec::new();
    let columns = view_columns(table, &mine, &mut problems);
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    let runners: Vec<Runner> = mine
        .iter()
        .map(|u| runner_of(u))
        .collect::<Result<_, _>>()
        .map_err(UpgradeError::Invalid)?;
    let scopes: Vec<String> = mine
        .iter()
        .map(|u| u.condition.clone().unwrap_or_else(|| "1 = 1".into()))
        .collect();
    let key_at: Vec<usize> = table.primary_key.iter().filter_map(|k| table.column_index(k)).collect();
    let keys: Vec<Vec<Value>> = rows
        .iter()
        .filter(|r| lacking(r))
        .map(|r| key_at.iter().map(|&i| r[i].clone()).collect())
        .collect();
    let fresh = sql::read_upgraded(conn, table, &columns, &scopes, &keys).await?;
    let mut out = rows.to_vec();
    let slot_of: std::collections::HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key: Vec<Value> = key_at.iter().map(|&k| r[k].clone()).collect();
            (sql::key_display(&key), i)
        })
        .collect();
    for (mut row, scoped) in fresh {
        let key: Vec<Value> = key_at.iter().map(|&i| row[i].clone()).collect();
        let mut have = names(&row);
        // Set upgrades: the database evaluated them; record those in scope.
        for (u, in_scope) in mine.iter().zip(&scoped) {
            if matches!(u.change, Change::Set(_)) && *in_scope && !have.contains(&u.name) {
                have.push(u.name.clone());
            }
        }
        // Row functions, in dependency order.
        for ((u, runner), in_scope) in mine.iter().zip(&runners).zip(&scoped) {
            let Runner::Rows(apply) = runner else { continue };
            if !*in_scope || have.contains(&u.name) {
                continue;
            }
            row = apply(table, &row).map_err(|e| {
                UpgradeError::Invalid(format!(
                    "table {} row {}: upgrade {:?}: {e}",
                    table.name,
                    sql::key_display(&key),
                    u.name
                ))
            })?;
            have.push(u.name.clone());
        }
        row[applied_at] = Value::Text(serde_json::to_string(&have).unwrap_or_default());
        if let Some(&i) = slot_of.get(&sql::key_display(&key)) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// Whether an upgrade's `table` names this table (the naming rule: exactly, or
/// case-insensitively).
fn conn_names_table(declared: &str, name: &lockgate_core::TableName) -> bool {
    let want = lockgate_core::TableName::parse(declared);
    want.same_as(name) || want.name.eq_ignore_ascii_case(&name.name)
}
