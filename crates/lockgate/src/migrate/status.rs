//! `status`: a module's current version, and, against a `db/` folder, the versions
//! pending, the versions whose files changed since they were applied, and the
//! versions only partly applied (stopped after a committed part).

use super::{open_source, MigrateError};
use lockgate_bundle::{Version, ZipLimits};
use lockgate_db::ledger::Ledger;
use lockgate_db::versions::{self, AppliedVersion};
use lockgate_db::DbUrl;
use std::path::PathBuf;

/// What to report on.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// The `db/` folder to compare with (none: the ledger alone).
    pub dir: Option<PathBuf>,
    /// Or a zip of it.
    pub zip: Option<PathBuf>,
    /// The module.
    pub module: String,
    /// Limits when reading a zip.
    pub zip_limits: ZipLimits,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            dir: None,
            zip: None,
            module: "./".into(),
            zip_limits: ZipLimits::default(),
        }
    }
}

/// The `--json` document of `lockgate status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    /// The module.
    pub module: String,
    /// Its current version (null: never migrated).
    pub current_version: Option<String>,
    /// The versions the ledger knows, in version order.
    pub applied: Vec<AppliedVersion>,
    /// Folder versions not applied yet (what `migrate` would apply).
    pub pending: Vec<String>,
    /// Applied versions whose files changed since.
    pub changed: Vec<String>,
    /// Versions that stopped after a committed part; `migrate` re-runs them.
    pub partial: Vec<String>,
    /// Applied versions the folder no longer has.
    pub missing: Vec<String>,
    /// Folder versions never applied but older than the current version (added
    /// after a later version ran): `migrate` skips them; `--force --from V --to V`
    /// applies one.
    pub skipped: Vec<String>,
    /// The folder compared with.
    pub folder: Option<String>,
}

/// Reports the module's migration state.
pub async fn status(url: &DbUrl, opts: &StatusOptions) -> Result<StatusReport, MigrateError> {
    // A status only reads: a database without a ledger has no version, and stays
    // without one (nor is a missing SQLite file created).
    let (current_version, mut applied) = match Ledger::open_existing(url).await? {
        Some(mut ledger) => {
            let conn = ledger.conn();
            (
                versions::module_version(conn, &opts.module).await?,
                versions::applied_versions(conn, &opts.module).await?,
            )
        }
        None => (None, Vec::new()),
    };
    applied.sort_by_key(|a| a.version.parse::<Version>().ok());
    let current: Option<Version> = current_version.as_deref().and_then(|v| v.parse().ok());
    let mut report = StatusReport {
        module: opts.module.clone(),
        current_version,
        partial: applied
            .iter()
            .filter(|a| a.status == "partial")
            .map(|a| a.version.clone())
            .collect(),
        applied,
        pending: Vec::new(),
        changed: Vec::new(),
        missing: Vec::new(),
        skipped: Vec::new(),
        folder: None,
    };
    if opts.dir.is_none() && opts.zip.is_none() {
        return Ok(report);
    }
    let dir = opts.dir.clone().unwrap_or_else(|| PathBuf::from("db"));
    let source = open_source(&dir, opts.zip.as_deref(), &opts.zip_limits)?;
    report.folder = Some(
        opts.zip
            .as_ref()
            .map_or_else(|| dir.display().to_string(), |z| z.display().to_string()),
    );
    for v in &source.base.versions {
        let name = v.version.to_string();
        match report.applied.iter().find(|a| a.version == name) {
            Some(a) if a.checksum != v.checksum()? => report.changed.push(name),
            Some(_) => {}
            None if current.is_none_or(|c| v.version > c) => report.pending.push(name),
            None => report.skipped.push(name),
        }
    }
    for a in &report.applied {
        if !source.base.versions.iter().any(|v| v.version.to_string() == a.version) {
            report.missing.push(a.version.clone());
        }
    }
    Ok(report)
}
