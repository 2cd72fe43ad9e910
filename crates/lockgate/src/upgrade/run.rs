//! Running `set` upgrades: `init` (the `applied_upgrades` column), `run` (each
//! table walked by primary key in batches, the cursor kept in the ledger, every
//! pending upgrade applied in dependency order by one set-based UPDATE per key range
//! that also records it in the row's `applied_upgrades`), and `status`.
//!
//! The batch adapts to a target time per batch (as pt-online-schema-change's
//! chunk-time does), and the run sleeps between batches to hold a rows-per-second
//! limit. A run checks its upgrade's state in the ledger before every batch, so a
//! pause or cancel from any process is obeyed within one batch; a killed run resumes
//! from its cursor. Two runs of one upgrade never interleave: the second waits for
//! the first's lock (`upgrade:NAME`).

use super::{Change, Upgrade};
use lockgate_core::Value;
use lockgate_db::ledger::{Holder, Ledger};
use lockgate_db::upgrades::{self as sql, UpgradeState};
use lockgate_db::{Conn, DbError, DbUrl};
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
    /// How long to wait for another run of the same upgrade.
    pub lock_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            table: None,
            target_batch_time: Duration::from_millis(100),
            batch_size: None,
            max_rows_per_second: None,
            lock_timeout: Duration::from_secs(30),
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

/// Runs every pending `set` upgrade (of one table, or all) to the end, or until it
/// is paused or cancelled.
pub async fn run(
    url: &DbUrl,
    upgrades: &[Upgrade],
    opts: &RunOptions,
    progress: Option<UnboundedSender<UpgradeProgress>>,
) -> Result<RunReport, UpgradeError> {
    let started = Instant::now();
    let mut conn = Conn::connect_existing(url).await?;
    let mut ledger = Ledger::open(url).await?;
    let chosen: Vec<&Upgrade> = upgrades
        .iter()
        .filter(|u| opts.table.as_ref().is_none_or(|t| u.table.eq_ignore_ascii_case(t)))
        .collect();
    // Everything checked before the first batch: tables, keys, columns, expressions.
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for u in &chosen {
        let Change::Set(set) = &u.change else {
            problems.push(format!(
                "{}: upgrade {:?} is a script upgrade; this lockgate runs `set` upgrades only so far",
                u.origin, u.name
            ));
            continue;
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
        for (col, expr) in set {
            if t.column(col).is_none() {
                problems.push(format!(
                    "{}: upgrade {:?}, set: {col:?} is not a column of {}",
                    u.origin, u.name, t.name
                ));
            } else if let Err(e) = sql::check_expression(&mut conn, &t, expr).await {
                problems.push(format!("{}: upgrade {:?}, set.{col}: {e}", u.origin, u.name));
            }
        }
        if let Some(c) = &u.condition {
            if let Err(e) = sql::check_expression(&mut conn, &t, &format!("CASE WHEN ({c}) THEN 1 END")).await {
                problems.push(format!("{}: upgrade {:?}, where: {e}", u.origin, u.name));
            }
        }
        tables.push(t);
    }
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    let mut outcomes = Vec::new();
    for (u, t) in chosen.iter().zip(&tables) {
        let Change::Set(set) = &u.change else { continue };
        sql::register(ledger.conn(), &u.name, &t.name.to_string(), &u.checksum)
            .await
            .map_err(|e| match e {
                DbError::Invalid(m) => UpgradeError::Invalid(format!("{}: upgrade {:?}: {m}", u.origin, u.name)),
                other => other.into(),
            })?;
        let holder = Holder::current(format!("lockgate upgrade run {}", u.name));
        let lock = ledger
            .lock(&format!("upgrade:{}", u.name), &holder, opts.lock_timeout)
            .await?;
        let result = walk(&mut conn, &mut ledger, u, t, set, opts, progress.as_ref()).await;
        let _ = ledger.unlock(lock).await;
        outcomes.push(result?);
    }
    Ok(RunReport {
        upgrades: outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One upgrade's walk from its cursor.
async fn walk(
    conn: &mut Conn,
    ledger: &mut Ledger,
    u: &Upgrade,
    t: &lockgate_core::Table,
    set: &[(String, String)],
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
    let mut batch = opts.batch_size.unwrap_or(1_000).max(1);
    let (mut upgraded, mut batches) = (0u64, 0u64);
    let mut final_state = record.state;
    let mut reached_end = false;
    let walk_began = Instant::now();
    let mut rate_saved = Instant::now();
    if matches!(record.state, UpgradeState::Pending | UpgradeState::Running) {
        sql::set_state(ledger.conn(), &u.name, UpgradeState::Running).await?;
        loop {
            // Obeyed within one batch: whoever paused or cancelled it, from anywhere.
            let now = sql::state(ledger.conn(), &u.name).await?.map(|r| r.state);
            if now != Some(UpgradeState::Running) {
                final_state = now.unwrap_or(UpgradeState::Cancelled);
                break;
            }
            let began = Instant::now();
            let done =
                sql::apply_set_batch(conn, t, &u.name, set, u.condition.as_deref(), cursor.as_deref(), batch).await?;
            let took = began.elapsed();
            upgraded += done.updated;
            rows_done += done.updated;
            batches += 1;
            if let Some(p) = progress {
                let _ = p.send(UpgradeProgress {
                    upgrade: u.name.clone(),
                    rows: rows_done,
                    batch,
                });
            }
            let Some(last) = done.last else {
                // The last range: its rows counted, the cursor back to the start for
                // any run that must sweep again.
                sql::save_cursor(ledger.conn(), &u.name, &[], done.updated).await?;
                reached_end = true;
                final_state = UpgradeState::Running;
                break;
            };
            sql::save_cursor(ledger.conn(), &u.name, &last, done.updated).await?;
            cursor = Some(last);
            // The rate for status and its ETA, once a second.
            if rate_saved.elapsed() >= Duration::from_secs(1) {
                let rate = upgraded as f64 / walk_began.elapsed().as_secs_f64().max(1e-3);
                sql::set_rate(ledger.conn(), &u.name, rate).await?;
                rate_saved = Instant::now();
            }
            if opts.batch_size.is_none() {
                batch = next_batch_size(batch, took, opts.target_batch_time);
            }
            if let Some(rate) = opts.max_rows_per_second.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(done.scanned as f64 / rate as f64);
                if due > took {
                    tokio::time::sleep(due - took).await;
                }
            }
        }
    }
    let remaining = sql::count_lacking(conn, t, &u.name, u.condition.as_deref()).await?;
    if reached_end {
        // The walk reached the end: complete only when no row in scope lacks it.
        // Rows an application wrote meanwhile without the upgrade are found by the
        // next run, which walks again from the start (the cursor went back).
        final_state = if remaining == 0 {
            UpgradeState::Complete
        } else {
            UpgradeState::Pending
        };
        sql::set_state(ledger.conn(), &u.name, final_state).await?;
    }
    Ok(UpgradeOutcome {
        upgrade: u.name.clone(),
        table: t.name.to_string(),
        upgraded,
        batches,
        state: final_state.as_str().to_string(),
        remaining,
    })
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
    let mut ledger = Ledger::open(url).await?;
    let mut out = Vec::new();
    for u in upgrades {
        let record = sql::state(ledger.conn(), &u.name).await?;
        let table = conn.lookup_table(&u.table).await?;
        let remaining = match &table {
            Some(t) if sql::has_applied_column(&mut conn, t).await? => {
                Some(sql::count_lacking(&mut conn, t, &u.name, u.condition.as_deref()).await?)
            }
            _ => None,
        };
        let quarantine = if record.is_some() {
            sql::quarantined(ledger.conn(), &u.name).await?
        } else {
            Vec::new()
        };
        let rate = record.as_ref().and_then(|r| r.rate).filter(|r| *r > 0.0);
        out.push(UpgradeStatus {
            rows_per_second: rate,
            eta_seconds: match (remaining, rate) {
                (Some(n), Some(r)) if n > 0 => Some(n as f64 / r),
                _ => None,
            },
            quarantined: quarantine.len(),
            quarantine: quarantine.into_iter().take(100).collect(),
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
    let mut ledger = Ledger::open(url).await?;
    let record = sql::register(ledger.conn(), &upgrade.name, &upgrade.table, &upgrade.checksum)
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
    sql::set_state(ledger.conn(), &upgrade.name, to).await?;
    Ok(())
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
        Some(_) => sql::quarantined(ledger.conn(), &upgrade.name).await?.len(),
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
    let mut columns: Vec<sql::ViewColumn> = t
        .columns
        .iter()
        .map(|c| sql::ViewColumn {
            column: c.name.clone(),
            upgraded: None,
        })
        .collect();
    for u in &mine {
        if !u.after.is_empty() {
            problems.push(format!(
                "{}: upgrade {:?} depends on {}: a view cannot apply upgrades one after another",
                u.origin,
                u.name,
                u.after.join(", ")
            ));
        }
        let Change::Set(set) = &u.change else {
            problems.push(format!(
                "{}: upgrade {:?} is a script upgrade, which a view cannot apply",
                u.origin, u.name
            ));
            continue;
        };
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
    if mine.is_empty() {
        problems.push(format!("no upgrade is declared for table {}", t.name));
    }
    if !problems.is_empty() {
        return Err(UpgradeError::Invalid(problems.join("\n")));
    }
    Ok(sql::create_upgraded_view(&mut conn, &t, &columns).await?.to_string())
}

/// Whether an upgrade's `table` names this table (the naming rule: exactly, or
/// case-insensitively).
fn conn_names_table(declared: &str, name: &lockgate_core::TableName) -> bool {
    let want = lockgate_core::TableName::parse(declared);
    want.same_as(name) || want.name.eq_ignore_ascii_case(&name.name)
}
