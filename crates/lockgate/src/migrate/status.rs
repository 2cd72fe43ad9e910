//! `status`: a module's current version, and, against a `db/` folder, the versions
//! pending, the versions only partly applied (stopped after a committed part), and
//! drift, as Flyway's `validate` sees it: applied versions whose files changed since,
//! applied versions the folder no longer has, and versions never applied that are
//! older than the current one (which `migrate` skips). `migrate` warns about drift
//! with the same words ([`drift`]); `status --strict` and `validate` fail on it.
//!
//! A baseline folder (meta.json's `"baseline"`) is what its version and the versions
//! before it did, so none of these is drift: the versions older than it that a database
//! which started at it never applied, the applied versions it covers that were pruned
//! from the folder, and its own folder when the database applied the version folder it
//! replaced (its checksum is in `"replaces"`).

use super::{open_source, MigrateError};
use lockgate_bundle::{BaseDir, Baseline, Version, ZipLimits};
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
    /// Also read every version's meta.json and definitions, as `migrate` would, so
    /// that a malformed one is an error (`validate`).
    pub read_manifests: bool,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            dir: None,
            zip: None,
            module: "./".into(),
            zip_limits: ZipLimits::default(),
            read_manifests: false,
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
    /// Every disagreement between the folder and the ledger (changed, missing and
    /// skipped versions) and every partly applied version, one sentence each:
    /// `status --strict` and `validate` fail when there is any.
    pub drift: Vec<String>,
}

impl StatusReport {
    /// ARCHITECTURE.md's exit code for `status --strict` and `validate`: 4 (the folder and
    /// the database disagree) when there is drift, else 0.
    pub fn strict_exit_code(&self) -> i32 {
        if self.drift.is_empty() {
            0
        } else {
            4
        }
    }
}

/// How a folder and a module's ledger disagree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Drift {
    /// Applied versions whose files changed since.
    pub changed: Vec<String>,
    /// Applied versions the folder no longer has.
    pub missing: Vec<String>,
    /// Folder versions never applied, older than the current version.
    pub skipped: Vec<String>,
}

impl Drift {
    /// One sentence per disagreement, saying what to do; versions in `except` (being
    /// applied by this run) are left out.
    pub fn messages(&self, current: Option<&str>, folder: &str, except: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let keep = |v: &&String| !except.contains(v);
        for v in self.changed.iter().filter(keep) {
            out.push(format!(
                "version {v} was applied, and its files in {folder} changed since (their checksum differs): migrate does not apply it again; restore its files, or re-apply it with --force --from {v} --to {v}"
            ));
        }
        for v in self.missing.iter().filter(keep) {
            out.push(format!(
                "version {v} was applied, and {folder} no longer has it: restore its folder (to undo a version, use rollback)"
            ));
        }
        for v in self.skipped.iter().filter(keep) {
            out.push(format!(
                "version {v} was never applied, and it is older than the current version {}: migrate skips it; give it a version after {0}, or apply it with --force --from {v} --to {v}",
                current.unwrap_or("?")
            ));
        }
        out
    }
}

/// The baseline folders of `base` (meta.json's `"baseline"`), in version order. Read
/// leniently: a meta.json that does not parse counts as no baseline here; `migrate` and
/// `validate` report it when they read it for its own sake.
pub(crate) fn baselines(base: &BaseDir) -> Vec<(Version, Baseline)> {
    base.versions
        .iter()
        .filter_map(|v| Some((v.version, v.manifest().ok()?.baseline?)))
        .collect()
}

/// The version a database with no version and nothing applied starts at: the newest
/// baseline of `base` that `in_range` keeps, if any.
pub(crate) fn starting_baseline(
    baselines: &[(Version, Baseline)],
    in_range: impl Fn(Version) -> bool,
) -> Option<Version> {
    baselines.iter().map(|(v, _)| *v).filter(|v| in_range(*v)).max()
}

/// Compares a folder with a module's applied versions and current version.
pub(crate) fn drift(base: &BaseDir, applied: &[AppliedVersion], current: Option<&str>) -> Result<Drift, MigrateError> {
    let current: Option<Version> = current.and_then(|v| v.parse().ok());
    let baselines = baselines(base);
    let mut d = Drift::default();
    for v in &base.versions {
        let name = v.version.to_string();
        // The baseline took the place of the folder the database applied.
        let replaced = |checksum: &str| {
            baselines
                .iter()
                .any(|(b, spec)| *b == v.version && spec.replaces.as_deref() == Some(checksum))
        };
        // The database started at (or went through) a later baseline, which holds
        // what this version did.
        let covered = || {
            baselines
                .iter()
                .any(|(b, _)| v.version < *b && current.is_some_and(|c| *b <= c))
        };
        match applied.iter().find(|a| a.version == name) {
            Some(a) if a.checksum != v.checksum()? && !replaced(&a.checksum) => d.changed.push(name),
            Some(_) => {}
            None if current.is_none_or(|c| v.version > c) => {}
            None if covered() => {}
            None => d.skipped.push(name),
        }
    }
    for a in applied {
        if base.versions.iter().any(|v| v.version.to_string() == a.version) {
            continue;
        }
        // Pruned after a baseline that stands for it (`lockgate baseline --prune`).
        let pruned = a.version.parse::<Version>().is_ok_and(|applied| {
            baselines
                .iter()
                .any(|(b, spec)| applied < *b && (spec.covers.is_empty() || spec.covers.contains(&applied)))
        });
        if !pruned {
            d.missing.push(a.version.clone());
        }
    }
    Ok(d)
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
        drift: Vec::new(),
    };
    let partial: Vec<String> = report
        .partial
        .iter()
        .map(|v| format!("version {v} is partly applied (it stopped after a committed part): run migrate to re-run it"))
        .collect();
    if opts.dir.is_none() && opts.zip.is_none() {
        report.drift = partial;
        return Ok(report);
    }
    let dir = opts.dir.clone().unwrap_or_else(|| PathBuf::from("db"));
    let source = open_source(&dir, opts.zip.as_deref(), &opts.zip_limits)?;
    report.folder = Some(
        opts.zip
            .as_ref()
            .map_or_else(|| dir.display().to_string(), |z| z.display().to_string()),
    );
    if opts.read_manifests {
        for v in &source.base.versions {
            v.manifest()?;
            for f in v.ddl_files()? {
                super::read_model(&f)?;
            }
        }
        for f in source.base.model_files()? {
            super::read_model(&f)?;
        }
    }
    // A new deployment starts at the newest baseline: what is older is not pending.
    let start = if current.is_none() && report.applied.is_empty() {
        starting_baseline(&baselines(&source.base), |_| true)
    } else {
        None
    };
    for v in &source.base.versions {
        let name = v.version.to_string();
        let after_start = start.is_none_or(|b| v.version >= b);
        if !report.applied.iter().any(|a| a.version == name) && current.is_none_or(|c| v.version > c) && after_start {
            report.pending.push(name);
        }
    }
    let d = drift(&source.base, &report.applied, report.current_version.as_deref())?;
    let folder = report.folder.clone().unwrap_or_default();
    report.drift = d.messages(report.current_version.as_deref(), &folder, &[]);
    report.changed = d.changed;
    report.missing = d.missing;
    report.skipped = d.skipped;
    report.drift.extend(partial);
    Ok(report)
}
