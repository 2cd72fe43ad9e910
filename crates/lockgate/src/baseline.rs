//! `baseline`: the seed's post-release routine. Once every deployment runs version V,
//! the managed tables' full definitions and data are written as the version folder
//! `V/` of the `db/` folder, marked `"baseline"` in its meta.json, so that a new
//! deployment starts there (`migrate` skips the versions before it), and the version
//! folders before it can go (`--prune`).
//!
//! The folder is written by `dump`'s writer (one snapshot, a JSON array and a `ddl/`
//! model per table, meta.json last), into a hidden staging folder inside the `db/`
//! folder, and moved into place only when complete, so an interrupted baseline leaves
//! the `db/` folder as it was (`BaseDir::scan` ignores names that start with a dot).
//!
//! What the baseline may take the place of is checked before anything is written
//! (exit 2): V must be the database's state, so every version folder before V must
//! be applied to the database, V must not be older than its current version, and an
//! existing folder of V is replaced only when it is the ordinary version the database
//! applied with those very files (its checksum goes into meta.json's
//! `"baseline": {"replaces": …}`, so that databases which applied it see no drift), or
//! an earlier baseline with `force`. See ARCHITECTURE.md (Migrations) for what
//! `migrate` does with it.

use crate::dump::{write_version, DumpedTable};
use crate::migrate::MigrateError;
use lockgate_bundle::{BaseDir, Baseline, ClearTables, EntryKind, Version, VersionDir};
use lockgate_core::Table;
use lockgate_db::versions::{self, AppliedVersion};
use lockgate_db::{Conn, DbError, DbUrl};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to baseline, and where.
#[derive(Clone, Debug)]
pub struct BaselineOptions {
    /// The `db/` folder the version folder goes into (and is pruned from).
    pub dir: PathBuf,
    /// The module whose version is the default version, and whose ledger says which
    /// versions the database applied.
    pub module: String,
    /// The version to write (default: the module's current version in the database).
    pub version: Option<Version>,
    /// The tables (names as `dump` takes them). With neither this nor `all`: every
    /// table the `db/` folder names (data entries and `clearTables` of its versions,
    /// `ddl/` and `models/` definitions) that exists in the database.
    pub tables: Vec<String>,
    /// Every user table (Lockgate's own `lockgate_*` tables never).
    pub all: bool,
    /// Remove the version folders older than the version once it is written.
    pub prune: bool,
    /// Say what would be written and pruned; write and remove nothing.
    pub dry_run: bool,
    /// Confirms `prune` (without it, a prune that is not a dry run is refused before
    /// anything is written, listing what would go).
    pub yes: bool,
    /// Write the folder again when it is already a baseline.
    pub force: bool,
    /// Rows per page read.
    pub page: usize,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            dir: PathBuf::from("db"),
            module: "./".into(),
            version: None,
            tables: Vec::new(),
            all: false,
            prune: false,
            dry_run: false,
            yes: false,
            force: false,
            page: 5_000,
        }
    }
}

/// What a baseline wrote and removed (the `--json` document of `lockgate baseline`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BaselineReport {
    /// The module.
    pub module: String,
    /// The baseline's version.
    pub version: String,
    /// Its folder.
    pub folder: String,
    /// Whether it took the place of the ordinary folder of the same version (which
    /// the database had applied).
    pub replaced: bool,
    /// Whether it rewrote an earlier baseline (`force`).
    pub rewritten: bool,
    /// The versions it stands for (meta.json's `"covers"`).
    pub covers: Vec<String>,
    /// The tables it holds (or would), in load order.
    pub tables: Vec<String>,
    /// The data files written, one per table (empty in a dry run).
    pub written: Vec<DumpedTable>,
    /// Tables the `db/` folder names that the database does not have: left out.
    pub absent: Vec<String>,
    /// The version folders removed (in a dry run, or without `yes`: that would be).
    pub pruned: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// What will not come back as it is (as `dump` says it).
    pub warnings: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Why a baseline wrote nothing (or, for [`BaselineError::Prune`], removed nothing).
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Bad input found before writing: nothing changed (exit 2).
    #[error("{0}")]
    Input(String),
    /// `prune` without `yes`: the folders that would go (exit 2, nothing written).
    #[error("--prune would remove {}: run again with --yes to write the baseline and remove them (or --dry-run to see the rest of the plan)", .folders.join(", "))]
    Confirm {
        /// The version folders that would be removed.
        folders: Vec<String>,
    },
    /// Writing the folder failed (exit 2 for bad input, else the cause's).
    #[error(transparent)]
    Write(#[from] MigrateError),
    /// The database (exit 1, or 2 for invalid names).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The `db/` folder could not be changed as planned: the message says what was
    /// done and what to do (exit 1).
    #[error("{0}")]
    Io(String),
}

impl BaselineError {
    /// ARCHITECTURE.md's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            BaselineError::Input(_) | BaselineError::Confirm { .. } => 2,
            BaselineError::Write(e) => e.exit_code(),
            BaselineError::Db(e) => e.exit_code(),
            BaselineError::Io(_) => 1,
        }
    }
}

impl From<lockgate_bundle::BundleError> for BaselineError {
    fn from(e: lockgate_bundle::BundleError) -> Self {
        BaselineError::Input(e.to_string())
    }
}

/// Writes the managed tables of the database at `url` as the baseline version folder
/// of `opts.dir` (and prunes the folders before it with `prune`).
pub async fn baseline(url: &DbUrl, opts: &BaselineOptions) -> Result<BaselineReport, BaselineError> {
    let started = Instant::now();
    if opts.all && !opts.tables.is_empty() {
        return Err(BaselineError::Input(
            "--tables and --all both name the tables: give one of them".into(),
        ));
    }
    let base = BaseDir::scan(&opts.dir)?;
    let folder = opts.dir.display().to_string();
    let mut conn = Conn::connect_existing(url).await?;
    // A baseline writes nothing to the database: a database without a ledger has
    // applied no version.
    let (current, applied) = if conn.lookup_table("lockgate_modules").await?.is_some() {
        (
            versions::module_version(&mut conn, &opts.module).await?,
            versions::applied_versions(&mut conn, &opts.module).await?,
        )
    } else {
        (None, Vec::new())
    };
    let current: Option<Version> = current.and_then(|v| v.parse().ok());
    let version = match (opts.version, current) {
        (Some(v), _) => v,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(BaselineError::Input(format!(
                "the database has no version of module {:?} (it was never migrated): give the baseline's version with --version",
                opts.module
            )))
        }
    };
    if let Some(c) = current.filter(|c| version < *c) {
        return Err(BaselineError::Input(format!(
            "the database is at version {c} of module {:?}: its tables hold the data of {c}, not of {version}; baseline at {c} or later",
            opts.module
        )));
    }
    // Every version before the baseline must be in the database's tables: a new
    // deployment skips them.
    let is_applied = |v: Version| {
        applied
            .iter()
            .any(|a| a.status == "applied" && a.version.parse::<Version>().is_ok_and(|x| x == v))
    };
    let unapplied: Vec<String> = base
        .versions
        .iter()
        .filter(|v| v.version < version && !is_applied(v.version))
        .map(|v| v.version.to_string())
        .collect();
    if !unapplied.is_empty() {
        return Err(BaselineError::Input(format!(
            "{folder} holds {} before {version}, which this database has not applied (module {:?}): a new deployment would skip {} and the baseline would not hold what {} did; migrate the database first, or baseline at a version before {}",
            unapplied.join(", "),
            opts.module,
            if unapplied.len() == 1 { "it" } else { "them" },
            if unapplied.len() == 1 { "it" } else { "they" },
            unapplied[0]
        )));
    }
    let existing = base.version(version);
    let mut spec = Baseline::default();
    let (mut replaced, mut rewritten) = (false, false);
    if let Some(dir) = existing {
        let manifest = dir.manifest()?;
        match manifest.baseline {
            Some(_) if !opts.force => {
                return Err(BaselineError::Input(format!(
                    "{} is already a baseline: pass --force to write it again from this database, or choose another --version",
                    dir.path.display()
                )));
            }
            Some(earlier) => {
                // Rewritten: it still stands for what it stood for.
                spec = earlier;
                rewritten = true;
            }
            None => {
                let checksum = dir.checksum()?;
                if !applied_as_is(&applied, version, &checksum) {
                    return Err(BaselineError::Input(format!(
                        "{} exists, and this database has not applied it as it is (module {:?}): a baseline takes the place of a version folder only when the database holds that version with those very files; migrate the database first, restore the folder's files, or choose another --version",
                        dir.path.display(),
                        opts.module
                    )));
                }
                spec.replaces = Some(checksum);
                replaced = true;
            }
        }
    }
    spec.covers
        .extend(base.versions.iter().map(|v| v.version).filter(|v| *v <= version));
    spec.covers.sort();
    spec.covers.dedup();

    let (tables, absent) = managed_tables(&mut conn, &base, opts).await?;
    if tables.is_empty() {
        return Err(BaselineError::Input(format!(
            "no table to baseline: {folder} names no table this database has; name them with --tables a,b, or take every table with --all"
        )));
    }
    let prune: Vec<&VersionDir> = if opts.prune {
        base.versions.iter().filter(|v| v.version < version).collect()
    } else {
        Vec::new()
    };
    let mut report = BaselineReport {
        module: opts.module.clone(),
        version: version.to_string(),
        folder: existing
            .map_or_else(|| opts.dir.join(version.to_string()), |d| d.path.clone())
            .display()
            .to_string(),
        replaced,
        rewritten,
        covers: spec.covers.iter().map(Version::to_string).collect(),
        tables: lockgate_core::table::parents_first(tables.clone())
            .iter()
            .map(|t| t.name.to_string())
            .collect(),
        written: Vec::new(),
        absent,
        pruned: prune.iter().map(|v| v.path.display().to_string()).collect(),
        dry_run: opts.dry_run,
        warnings: Vec::new(),
        seconds: 0.0,
    };
    if opts.dry_run {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    if opts.prune && !opts.yes && !prune.is_empty() {
        return Err(BaselineError::Confirm {
            folders: report.pruned.clone(),
        });
    }

    // Written beside the version folders under a name `BaseDir::scan` ignores, and
    // moved into place when complete.
    let staging = tempfile::Builder::new()
        .prefix(".lockgate-baseline-")
        .tempdir_in(&opts.dir)
        .map_err(|e| {
            BaselineError::Input(format!(
                "{folder}: cannot create a staging folder in it ({e}): check its permissions"
            ))
        })?;
    let staged = staging.path().join(version.to_string());
    let written = write_version(&mut conn, tables, &staged, opts.page, Some(spec)).await?;
    report.written = written.tables;
    report.warnings = written.warnings;
    let target = PathBuf::from(&report.folder);
    let aside = opts
        .dir
        .join(format!(".lockgate-replaced-{version}-{}", std::process::id()));
    put_in_place(&staged, &target, existing.is_some(), &aside)?;
    for v in &prune {
        if let Err(e) = std::fs::remove_dir_all(&v.path) {
            return Err(BaselineError::Io(format!(
                "the baseline {} is written, but {} could not be removed ({e}): remove it (and any other folder before {version}) by hand",
                target.display(),
                v.path.display()
            )));
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Whether the ledger holds `version` as applied with exactly `checksum`.
fn applied_as_is(applied: &[AppliedVersion], version: Version, checksum: &str) -> bool {
    applied.iter().any(|a| {
        a.status == "applied" && a.checksum == checksum && a.version.parse::<Version>().is_ok_and(|v| v == version)
    })
}

/// Moves the complete folder `staged` to `target`. An existing `target` is first
/// renamed to `aside` (a hidden name beside it), removed once the baseline is in place,
/// and renamed back if the move fails.
fn put_in_place(staged: &Path, target: &Path, exists: bool, aside: &Path) -> Result<(), BaselineError> {
    if exists {
        std::fs::rename(target, aside).map_err(|e| {
            BaselineError::Io(format!(
                "{}: cannot move it aside to put the baseline in its place ({e}): check the folder's permissions; nothing was changed",
                target.display()
            ))
        })?;
    }
    if let Err(e) = std::fs::rename(staged, target) {
        let back = if !exists {
            "nothing was changed".to_string()
        } else {
            match std::fs::rename(aside, target) {
                Ok(()) => "the folder that was there is back".to_string(),
                Err(e2) => format!(
                    "the folder that was there could not be put back ({e2}): it is {}; rename it to {}",
                    aside.display(),
                    target.display()
                ),
            }
        };
        return Err(BaselineError::Io(format!(
            "cannot move the baseline into {} ({e}); {back}; check the folder's permissions",
            target.display()
        )));
    }
    if exists {
        if let Err(e) = std::fs::remove_dir_all(aside) {
            return Err(BaselineError::Io(format!(
                "the baseline {} is written, but the folder it replaced, moved to {}, could not be removed ({e}): remove it by hand",
                target.display(),
                aside.display()
            )));
        }
    }
    Ok(())
}

/// The tables to baseline, and the names the `db/` folder gives that the database
/// does not have. Explicit `--tables` must all exist (an unknown one is an error
/// naming it); `--all` is every user table; otherwise the tables the folder names.
async fn managed_tables(
    conn: &mut Conn,
    base: &BaseDir,
    opts: &BaselineOptions,
) -> Result<(Vec<Table>, Vec<String>), BaselineError> {
    let mut tables: Vec<Table> = Vec::new();
    let mut absent = Vec::new();
    let add = |t: Table, tables: &mut Vec<Table>| {
        if !tables.iter().any(|x| x.name.same_as(&t.name)) {
            tables.push(t);
        }
    };
    if opts.all {
        for t in conn.user_tables().await? {
            add(t, &mut tables);
        }
        return Ok((tables, absent));
    }
    if !opts.tables.is_empty() {
        for name in &opts.tables {
            let t = conn
                .find_table(name)
                .await
                .map_err(|e| BaselineError::Input(format!("cannot baseline {name:?}: {e}")))?;
            if t.name.name.starts_with("lockgate_") {
                return Err(BaselineError::Input(format!(
                    "{} is one of Lockgate's own tables: they describe this database and are not part of a baseline",
                    t.name
                )));
            }
            add(t, &mut tables);
        }
        return Ok((tables, absent));
    }
    for name in folder_table_names(base)? {
        if name.to_ascii_lowercase().starts_with("lockgate_") {
            continue;
        }
        match conn.lookup_table(&name).await? {
            Some(t) => add(t, &mut tables),
            None => absent.push(name),
        }
    }
    Ok((tables, absent))
}

/// Every table the `db/` folder names, in the order first met: the tables of its
/// `models/` and every version's `ddl/` definitions, and the models its versions'
/// data entries load and `clearTables` lists (a model named by a definition is its
/// table; another name is a table's own).
fn folder_table_names(base: &BaseDir) -> Result<Vec<String>, BaselineError> {
    let mut definitions: Vec<lockgate_bundle::ModelDef> = Vec::new();
    let read = |path: &Path| -> Result<lockgate_bundle::ModelDef, BaselineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BaselineError::Input(format!("{}: {e}: check that the file is readable", path.display())))?;
        Ok(lockgate_bundle::parse_model(path, &text)?)
    };
    for f in base.model_files()? {
        definitions.push(read(&f)?);
    }
    let mut named: Vec<String> = Vec::new();
    for v in &base.versions {
        for f in v.ddl_files()? {
            definitions.push(read(&f)?);
        }
        let manifest = v.manifest()?;
        for f in &manifest.files {
            if let (EntryKind::Data(_), Some(model)) = (f.kind(), &f.model) {
                named.push(model.clone());
            }
        }
        if let ClearTables::Tables(list) = &manifest.clear_tables {
            named.extend(list.iter().cloned());
        }
    }
    let by_model: HashMap<String, String> = definitions
        .iter()
        .map(|d| (d.name.to_lowercase(), d.table_name().to_string()))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let names = definitions.iter().map(|d| d.table_name().to_string()).chain(
        named
            .iter()
            .map(|m| by_model.get(&m.to_lowercase()).cloned().unwrap_or_else(|| m.clone())),
    );
    for name in names {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    Ok(out)
}
