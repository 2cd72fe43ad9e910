//! What the Upgrades page and the upgrade endpoints share, on top of
//! `lockgate::upgrade`: the declared upgrades' status (state, rows done and
//! remaining, rate, ETA, quarantined rows), pause, resume and cancel (the state a
//! running upgrader obeys before its next batch), retrying the quarantined rows, and
//! cleanup, refused while rows lack the upgrade. No SQL here, and no URL from a request: every call goes to the
//! one connection the server's configuration names for upgrades.

use crate::error::AppError;
use crate::state::{NamedConnection, Shared};
use lockgate::db::upgrades::UpgradeState;
use lockgate::db::DbError;
use lockgate::upgrade::{self, CleanupReport, RetryReport, Upgrade, UpgradeError, UpgradeStatus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A library error as the server answers it: its exit code decides the status
/// (2 bad input is 400, 4 rows that still lack the upgrade 409, 1 an unreachable
/// database 503), with the library's message.
pub fn upgrade_error(e: UpgradeError) -> AppError {
    AppError::from_exit(e.exit_code(), e.to_string())
}

/// The connection the upgrades apply to; 400 when none is configured.
pub fn connection(st: &Shared) -> Result<&NamedConnection, AppError> {
    st.cfg.upgrades_conn().ok_or_else(|| {
        AppError::bad(
            "no database for upgrades is configured: start the server with --db URL (or a connection named in \
             lockgate.toml, or [server] db)",
        )
    })
}

/// A declared upgrade by name; an unknown one is 404 naming it and the declared ones.
pub fn find<'a>(st: &'a Shared, name: &str) -> Result<&'a Upgrade, AppError> {
    st.cfg.upgrade(name).ok_or_else(|| {
        let names: Vec<&str> = st.cfg.upgrades.iter().map(|u| u.name.as_str()).collect();
        AppError::not_found(format!(
            "there is no upgrade {name:?}: the declared upgrades are {}",
            if names.is_empty() {
                "none (declare one in lockgate.toml under [upgrades.NAME], or in upgrades/NAME.toml)".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// One upgrade as `/api/upgrades` lists it: its status from the ledger and the
/// table, and what its declaration says.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UpgradeInfo {
    /// `lockgate upgrade status`'s fields: `upgrade`, `table`, `state` (`pending`,
    /// `running`, `paused`, `cancelled`, `complete`, or `not started`), `rows_done`,
    /// `remaining` (null when the table has no `applied_upgrades` column),
    /// `rows_per_second`, `eta_seconds`, `quarantined` and `quarantine` (the first
    /// 100 quarantined rows: `key`, `error`, `attempts`, `at`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: UpgradeStatus,
    /// Where it is declared (`lockgate.toml` or `upgrades/NAME.toml`).
    pub origin: String,
    /// The upgrades a row needs first.
    pub after: Vec<String>,
    /// Its cleanup SQL, when it declares one.
    pub cleanup: Option<String>,
}

impl UpgradeInfo {
    fn new(status: UpgradeStatus, u: &Upgrade) -> UpgradeInfo {
        UpgradeInfo {
            origin: u.origin.clone(),
            after: u.after.clone(),
            cleanup: u.cleanup.clone(),
            status,
        }
    }

    /// Rows done and rows done plus remaining (the progress bar), once the table
    /// has its `applied_upgrades` column.
    pub fn progress(&self) -> Option<(u64, u64)> {
        let remaining = self.status.remaining?;
        Some((self.status.rows_done, self.status.rows_done.saturating_add(remaining)))
    }
}

/// Every declared upgrade with its status, in dependency order; none declared is
/// an empty list (whatever the connection).
pub async fn status(st: &Shared) -> Result<Vec<UpgradeInfo>, AppError> {
    if st.cfg.upgrades.is_empty() {
        return Ok(Vec::new());
    }
    let c = connection(st)?;
    let list = upgrade::status(&c.url, &st.cfg.upgrades)
        .await
        .map_err(|e| named(c, upgrade_error(e)))?;
    Ok(list
        .into_iter()
        .zip(&st.cfg.upgrades)
        .map(|(s, u)| UpgradeInfo::new(s, u))
        .collect())
}

/// One upgrade's status.
pub async fn status_of(st: &Shared, u: &Upgrade) -> Result<UpgradeInfo, AppError> {
    let c = connection(st)?;
    let mut list = upgrade::status(&c.url, std::slice::from_ref(u))
        .await
        .map_err(|e| named(c, upgrade_error(e)))?;
    let s = list
        .pop()
        .ok_or_else(|| AppError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "the status was lost"))?;
    Ok(UpgradeInfo::new(s, u))
}

/// What a request may do to an upgrade's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// A running upgrader stops before its next batch.
    Pause,
    /// A paused or cancelled upgrade becomes pending: the next run continues it.
    Resume,
    /// A running upgrader stops before its next batch, for good (until resumed).
    Cancel,
}

impl Control {
    /// The action's name in paths and forms.
    pub fn parse(action: &str) -> Option<Control> {
        Some(match action {
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "cancel" => Control::Cancel,
            _ => return None,
        })
    }

    fn state(self) -> UpgradeState {
        match self {
            Control::Pause => UpgradeState::Paused,
            // As `lockgate upgrade resume`: pending, for the next run to take up.
            Control::Resume => UpgradeState::Pending,
            Control::Cancel => UpgradeState::Cancelled,
        }
    }

    /// What happened, for the page and the API's `message`.
    pub fn done_text(self, name: &str) -> String {
        match self {
            Control::Pause => format!("{name} paused: a running upgrader stops before its next batch"),
            Control::Resume => {
                format!("{name} resumed: it is pending, and the next `lockgate upgrade run` continues it")
            }
            Control::Cancel => format!("{name} cancelled: a running upgrader stops before its next batch"),
        }
    }
}

/// Pauses, resumes or cancels an upgrade in the ledger (an upgrade never run is
/// registered first); a complete one is refused (400).
pub async fn control(st: &Shared, u: &Upgrade, action: Control) -> Result<(), AppError> {
    let c = connection(st)?;
    upgrade::control(&c.url, u, action.state())
        .await
        .map_err(|e| named(c, upgrade_error(e)))
}

/// `POST /api/upgrades/{name}/cleanup`'s body (an empty body is `{}`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Check only: say whether the cleanup would run, and run nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Runs an upgrade's cleanup SQL (or, with `dry_run`, checks that it would): 409
/// with the library's message (how many rows lack it, and why) while rows in its
/// scope lack it or are quarantined; 400 when it declares no cleanup.
pub async fn cleanup(st: &Shared, u: &Upgrade, dry_run: bool) -> Result<CleanupReport, AppError> {
    let c = connection(st)?;
    upgrade::cleanup(&c.url, u, dry_run)
        .await
        .map_err(|e| named(c, upgrade_error(e)))
}

/// How long a retry waits for the upgrade's lock: a run of the upgrade holds it
/// until the run ends, so a request does not wait for that.
pub const RETRY_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Tries the upgrade's quarantined rows again, each alone (`lockgate upgrade
/// retry`): those upgraded now leave the quarantine, those failing again stay with
/// their new error. 409 while a run of the upgrade holds its lock; 400 when it has
/// not run yet.
pub async fn retry(st: &Shared, u: &Upgrade) -> Result<RetryReport, AppError> {
    let c = connection(st)?;
    upgrade::retry(&c.url, u, RETRY_LOCK_WAIT).await.map_err(|e| match e {
        UpgradeError::Db(DbError::LockTimeout { holder, waited, .. }) => named(
            c,
            AppError::new(
                axum::http::StatusCode::CONFLICT,
                format!(
                    "upgrade {} is being run by {holder} (waited {} s for it): pause it, or retry once that run ends",
                    u.name,
                    waited.as_secs()
                ),
            ),
        ),
        other => named(c, upgrade_error(other)),
    })
}

/// What a retry did, in words.
pub fn retry_text(r: &RetryReport) -> String {
    format!(
        "{}: retried {} quarantined row(s): {} upgraded, {} no longer needed it, {} still quarantined; it is {}",
        r.upgrade, r.tried, r.upgraded, r.skipped, r.quarantined, r.state
    )
}

/// Names the connection in an error's message.
fn named(c: &NamedConnection, mut e: AppError) -> AppError {
    e.message = format!("connection {}: {}", c.name, e.message);
    e
}

/// Which buttons an upgrade's state allows: pause and cancel while it may still
/// run, resume once paused or cancelled, retry with rows in quarantine, cleanup
/// when it declares one (the library refuses it while rows lack the upgrade).
pub fn allowed(info: &UpgradeInfo, action: &str) -> bool {
    let state = info.status.state.as_str();
    match action {
        "pause" => matches!(state, "pending" | "running" | "not started"),
        "cancel" => matches!(state, "pending" | "running" | "paused" | "not started"),
        "resume" => matches!(state, "paused" | "cancelled"),
        "retry" => info.status.quarantined > 0,
        "cleanup" => info.cleanup.is_some(),
        _ => false,
    }
}

/// Seconds as people read them: `45 s`, `3 min 20 s`, `2 h 5 min`.
pub fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(0.2), "0 s");
        assert_eq!(duration_text(44.6), "45 s");
        assert_eq!(duration_text(200.0), "3 min 20 s");
        assert_eq!(duration_text(7_500.0), "2 h 5 min");
        assert_eq!(duration_text(-3.0), "0 s");
    }

    #[test]
    fn actions_parse_and_unknown_ones_do_not() {
        assert_eq!(Control::parse("pause"), Some(Control::Pause));
        assert_eq!(
            Control::parse("resume").map(Control::state),
            Some(UpgradeState::Pending)
        );
        assert_eq!(Control::parse("cancel"), Some(Control::Cancel));
        assert_eq!(Control::parse("drop"), None);
    }
}
