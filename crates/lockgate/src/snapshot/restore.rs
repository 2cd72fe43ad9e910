//! `lockgate restore`: a snapshot into a database of any engine.
//!
//! The order is what makes it safe (ARCHITECTURE.md, Snapshots). First everything
//! that can be known without writing: the snapshot (by id, the profile's pin, or the
//! newest), the tables asked for, and per table whether the target holds it (an
//! existing table must be empty, or `--replace` given, and its columns must hold the
//! snapshot's; a missing one is created from the portable definition, and every
//! column its engine cannot hold without loss is listed), foreign keys' parents, and
//! tables outside the restore that `--replace` would reach. Then every data file is
//! fetched into a local folder and its SHA-256 and size checked against the manifest:
//! a damaged or truncated file stops the restore before anything is written. Only
//! then, in one transaction (PostgreSQL and SQLite, where DDL is transactional; on
//! MariaDB the tables are created first, with their indexes, and dropped again on
//! failure, and foreign keys come after the commit once every row they check has
//! been checked): rows of replaced tables deleted (children first), tables created,
//! filled parents first through the bulk writer, keys and indexes built over the
//! data, identity sequences moved past the restored ids, and on a whole restore the
//! ledger's module and applied versions set to the snapshot's, so that
//! `lockgate migrate` continues from there.

use super::catalog::{self, read_manifest};
use super::data::{file_sha256, SnapshotSource};
use super::defs::{create_plan, fit_existing, kinds, target_name, CreatePlan};
use super::profile::{open_store, resolve};
use super::{SnapshotError, SnapshotProgress};
use crate::config::Config;
use lockgate_bundle::{SnapshotManifest, TableEntry};
use lockgate_core::TableName;
use lockgate_db::ledger::{Holder, Ledger, RunStatus};
use lockgate_db::schema::{apply_change, catch_up_identity, SchemaChange};
use lockgate_db::writer::{self, WriteConfig};
use lockgate_db::{snapshot as sql, versions, Conn, DbError, DbUrl, Engine};
use lockgate_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedSender};

/// What to restore, and where.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The profile.
    pub profile: String,
    /// The `db/` folder (its `profiles/` holds pin files).
    pub dir: PathBuf,
    /// The store URL (else the profile's).
    pub store: Option<String>,
    /// This snapshot.
    pub id: Option<String>,
    /// The newest snapshot, even when the profile pins one.
    pub latest: bool,
    /// Only these tables.
    pub tables: Vec<String>,
    /// Empty the existing tables first (else a table with rows is refused).
    pub replace: bool,
    /// Where the snapshot's user media go (none: they are left out).
    pub files_into: Option<PathBuf>,
    /// Check everything (snapshot, files, target) and write nothing.
    pub check_only: bool,
    /// How long to wait for another command writing the same tables.
    pub lock_timeout: Duration,
    /// Rows per batch.
    pub batch_rows: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            profile: String::new(),
            dir: PathBuf::from("db"),
            store: None,
            id: None,
            latest: false,
            tables: Vec::new(),
            replace: false,
            files_into: None,
            check_only: false,
            lock_timeout: Duration::from_secs(30),
            batch_rows: 10_000,
        }
    }
}

/// One table restored (or that would be).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RestoredTable {
    /// The table on the target.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// Whether the restore created it.
    pub created: bool,
    /// Whether its rows were deleted first (`--replace`).
    pub replaced: bool,
}

/// What a restore did (the `--json` document of `lockgate restore`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreReport {
    /// The snapshot.
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// The store.
    pub store: String,
    /// The target, without its password.
    pub into: String,
    /// The tables.
    pub tables: Vec<RestoredTable>,
    /// The module versions the target's ledger now holds.
    pub modules: BTreeMap<String, String>,
    /// Media files restored.
    pub files: usize,
    /// Whether this only checked.
    pub check_only: bool,
    /// What was left out or should be known.
    pub warnings: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// What is done to one table.
struct Planned<'a> {
    entry: &'a TableEntry,
    name: TableName,
    /// The target's column names for the file's fields.
    columns: Vec<String>,
    create: Option<CreatePlan>,
    replace: bool,
    local: PathBuf,
}

/// Restores a snapshot into the database at `into`.
pub async fn restore(
    config: &Config,
    into: &DbUrl,
    opts: &RestoreOptions,
    progress: Option<UnboundedSender<SnapshotProgress>>,
) -> Result<RestoreReport, SnapshotError> {
    let started = Instant::now();
    let profile = resolve(config, &opts.dir, &opts.profile, opts.store.as_deref())?;
    // The pinned snapshot lives where the pin says, whatever this machine's
    // lockgate.toml names (unless a flag says otherwise).
    let pinned_store = profile
        .pin
        .as_ref()
        .filter(|p| p.snapshot.is_some() && opts.id.is_none() && !opts.latest && !profile.store_given)
        .and_then(|p| p.store.clone());
    let store = open_store(config, pinned_store.as_deref().unwrap_or(&profile.store_url))?;
    let manifest = choose_snapshot(&store, &profile, opts).await?;
    let mut warnings = Vec::new();
    let entries = choose_tables(&manifest, &opts.tables)?;
    if !manifest.files.is_empty() && opts.files_into.is_none() {
        warnings.push(format!(
            "the snapshot holds {} media files; they were left out (restore them with --files-into DIR)",
            manifest.files.len()
        ));
    }
    if !opts.tables.is_empty() && !manifest.modules.is_empty() {
        warnings.push(
            "only some tables are restored, so the target's migration versions are left as they are (a whole \
             restore sets them to the snapshot's)"
                .into(),
        );
    }
    if manifest.files.is_empty() && opts.files_into.is_some() {
        warnings.push("--files-into: the snapshot holds no media files".into());
    }
    for f in &manifest.files {
        if f.path.split('/').any(|p| p.is_empty() || p == "." || p == "..") || f.path.starts_with('/') {
            return Err(SnapshotError::one(format!(
                "media file {:?} in the manifest would leave the --files-into folder; the snapshot is damaged",
                f.path
            )));
        }
    }

    let mut conn = Conn::connect(into).await?;
    let engine = conn.engine();
    let spool = tempfile::tempdir().map_err(|e| SnapshotError::Io(format!("cannot create a spool folder: {e}")))?;
    let mut planned = plan(&mut conn, &entries, opts.replace, spool.path(), &manifest.source.engine).await?;
    for p in planned
        .iter()
        .filter(|p| p.create.is_some() && !p.entry.def.checks.is_empty())
    {
        warnings.push(format!(
            "table {} is created without its CHECK constraints ({}): their SQL is the source engine's; add them \
             with lockgate exec if you need them",
            p.name,
            p.entry.def.checks.join("; ")
        ));
    }
    fetch_and_verify(&store, &manifest, &mut planned, opts, spool.path(), progress.as_ref()).await?;

    let mut report = RestoreReport {
        id: manifest.id.clone(),
        profile: manifest.profile.clone(),
        store: store.url().to_string(),
        into: into.redacted(),
        tables: planned
            .iter()
            .map(|p| RestoredTable {
                table: p.name.to_string(),
                rows: p.entry.rows,
                created: p.create.is_some(),
                replaced: p.replace,
            })
            .collect(),
        modules: if opts.tables.is_empty() {
            manifest.modules.clone()
        } else {
            BTreeMap::new()
        },
        files: if opts.files_into.is_some() {
            manifest.files.len()
        } else {
            0
        },
        check_only: opts.check_only,
        warnings,
        seconds: 0.0,
    };
    if opts.check_only {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let holder = Holder::current(format!("lockgate restore {}", manifest.id));
    let mut ledger = Ledger::open(into).await?;
    let mut jobs = Vec::new();
    for p in &planned {
        jobs.push(ledger.table_job(&p.name).await?);
    }
    let locks = ledger.lock_all(&jobs, &holder, opts.lock_timeout).await?;
    // What the plan saw may have changed while the locks were awaited.
    if let Err(e) = still_as_planned(&mut conn, &planned).await {
        let _ = ledger.unlock_all(locks).await;
        return Err(e);
    }
    let run_id = match ledger
        .start_run("restore", &format!("restore:{}", manifest.profile), &holder)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let _ = ledger.unlock_all(locks).await;
            return Err(e.into());
        }
    };
    let total = planned.iter().map(|p| p.entry.rows).sum::<u64>();
    let result = write_all(
        &mut conn,
        into,
        engine,
        &planned,
        &manifest,
        opts,
        total,
        progress.as_ref(),
    )
    .await;
    let (status, rows, error) = match &result {
        Ok(rows) => (RunStatus::Succeeded, *rows, None),
        Err(e) => (RunStatus::Failed, 0, Some(e.to_string())),
    };
    if let Err(e) = ledger
        .finish_run(
            run_id,
            status,
            rows,
            &serde_json::json!({"snapshot": manifest.id}),
            error.as_deref(),
        )
        .await
    {
        report.warnings.push(format!(
            "the end of run {run_id} could not be recorded in lockgate_runs ({e})"
        ));
    }
    let _ = ledger.unlock_all(locks).await;
    result?;

    if let Some(dest) = &opts.files_into {
        for f in &manifest.files {
            let from = spool.path().join("files").join(&f.path);
            let to = dest.join(&f.path);
            let io = |e: std::io::Error| SnapshotError::Io(format!("{}: {e}", to.display()));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::copy(&from, &to).map_err(io)?;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What the restore would reach beyond its own tables: a foreign key of a created
/// table whose parent is neither restored nor on the target, and a table outside the
/// restore that references a replaced one and holds rows (emptying the parent would
/// lose them by ON DELETE CASCADE, or fail).
async fn reach_problems(conn: &mut Conn, out: &[Planned<'_>]) -> Result<Vec<String>, SnapshotError> {
    let mut problems = Vec::new();
    for p in out {
        let Some(c) = &p.create else { continue };
        for k in c.foreign_keys.iter().chain(&c.table.foreign_keys) {
            let restored = out.iter().any(|o| o.name.same_as(&k.references));
            if !restored && conn.describe(&k.references).await?.is_none() {
                problems.push(format!(
                    "table {}'s foreign key {} references {}, which this restore does not include and the target \
                     does not have: add it to --tables, or create it first",
                    p.name, k.name, k.references
                ));
            }
        }
    }
    // Emptying a table must not reach rows the restore does not put back: a table
    // outside it whose foreign key references a replaced table and that holds rows
    // would lose them (ON DELETE CASCADE) or block the delete.
    if out.iter().any(|p| p.replace) {
        for t in conn.user_tables().await? {
            if out.iter().any(|p| p.name == t.name) {
                continue;
            }
            let refs: Vec<&TableName> = t
                .foreign_keys
                .iter()
                .map(|k| &k.references)
                .filter(|r| out.iter().any(|p| p.replace && p.name.same_as(r)))
                .collect();
            if let Some(parent) = refs.first() {
                if sql::has_rows(conn, &t).await? {
                    problems.push(format!(
                        "--replace would empty {parent}, which table {} (not restored) references and whose rows \
                         it would lose or keep pointing nowhere: add {} to --tables, or empty it first",
                        t.name, t.name
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Checks, under the tables' locks, that the target is still as planned: a table to
/// create still missing, a table to fill still empty.
async fn still_as_planned(conn: &mut Conn, planned: &[Planned<'_>]) -> Result<(), SnapshotError> {
    let mut problems = Vec::new();
    for p in planned {
        match (conn.describe(&p.name).await?, &p.create) {
            (Some(_), Some(_)) => problems.push(format!("table {} was created while this restore waited", p.name)),
            (Some(t), None) if !p.replace && sql::has_rows(conn, &t).await? => {
                problems.push(format!("table {} was filled while this restore waited", p.name))
            }
            (None, None) => problems.push(format!("table {} was dropped while this restore waited", p.name)),
            _ => {}
        }
    }
    problems.extend(reach_problems(conn, planned).await?);
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push("nothing was written; run the restore again".into());
        Err(SnapshotError::Invalid(problems))
    }
}

/// The snapshot to restore: `--id`, else (without `--latest`) the profile's pinned
/// one, else the newest. A pinned snapshot whose files no longer match the pin's
/// checksums is refused.
async fn choose_snapshot(
    store: &Store,
    profile: &super::profile::Resolved,
    opts: &RestoreOptions,
) -> Result<SnapshotManifest, SnapshotError> {
    if let Some(id) = &opts.id {
        return read_manifest(store, &profile.name, id).await;
    }
    let pinned = profile.pin.as_ref().and_then(|p| p.snapshot.clone().map(|id| (p, id)));
    if let (false, Some((pin, id))) = (opts.latest, pinned) {
        let m = read_manifest(store, &profile.name, &id).await?;
        let files: BTreeMap<String, String> = m
            .tables
            .iter()
            .map(|t| (t.file.clone(), t.sha256.clone()))
            .chain(m.files.iter().map(|f| (f.key.clone(), f.sha256.clone())))
            .collect();
        if files != pin.checksums {
            let differ: Vec<&String> = files
                .keys()
                .chain(pin.checksums.keys())
                .filter(|k| files.get(*k) != pin.checksums.get(*k))
                .collect();
            return Err(SnapshotError::one(format!(
                "snapshot {id} in {} does not match the pin file of profile {} ({} differ: {}); the snapshot was \
                 replaced or damaged, or the pin edited: restore another with --id or --latest",
                store.url(),
                profile.name,
                differ.len(),
                differ.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        return Ok(m);
    }
    let all = catalog::manifests(store, Some(&profile.name)).await?;
    all.into_iter().next_back().ok_or_else(|| {
        SnapshotError::one(format!(
            "profile {} has no snapshots in {}; take one with `lockgate snapshot create --profile {}`",
            profile.name,
            store.url(),
            profile.name
        ))
    })
}

/// The manifest's tables that `names` asks for (all when empty), in restore order.
fn choose_tables<'a>(m: &'a SnapshotManifest, names: &[String]) -> Result<Vec<&'a TableEntry>, SnapshotError> {
    if names.is_empty() {
        return Ok(m.tables.iter().collect());
    }
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for n in names {
        let want = TableName::parse(n);
        let found = m.tables.iter().position(|t| {
            t.def.name.eq_ignore_ascii_case(&want.name)
                && want
                    .schema
                    .as_ref()
                    .is_none_or(|s| t.def.schema.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(s)))
        });
        match found {
            Some(i) => wanted.push(i),
            None => problems.push(format!(
                "--tables {n:?}: snapshot {} holds no such table (its tables: {})",
                m.id,
                m.tables
                    .iter()
                    .map(|t| t.def.display_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if !problems.is_empty() {
        return Err(SnapshotError::Invalid(problems));
    }
    wanted.sort();
    wanted.dedup();
    Ok(wanted.into_iter().map(|i| &m.tables[i]).collect())
}

/// Per table: create or fill, every problem of every table listed.
async fn plan<'a>(
    conn: &mut Conn,
    entries: &[&'a TableEntry],
    replace: bool,
    spool: &Path,
    source_engine: &str,
) -> Result<Vec<Planned<'a>>, SnapshotError> {
    let engine = conn.engine();
    let same_engine = super::create::engine_name(engine) == source_engine;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut non_empty = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        let name = target_name(&e.def, engine);
        let local = spool.join(format!("{:04}.tsv.zst", n + 1));
        match conn.describe(&name).await? {
            Some(existing) => {
                let has_rows = sql::has_rows(conn, &existing).await?;
                if has_rows && !replace {
                    non_empty.push(existing.name.to_string());
                }
                match fit_existing(&e.def, &existing) {
                    Ok(columns) => out.push(Planned {
                        entry: e,
                        name: existing.name.clone(),
                        columns,
                        create: None,
                        replace: has_rows && replace,
                        local,
                    }),
                    Err(p) => problems.extend(p),
                }
            }
            None => match create_plan(&e.def, engine, same_engine) {
                Ok(plan) => out.push(Planned {
                    entry: e,
                    name,
                    columns: e.def.columns.iter().map(|c| c.name.clone()).collect(),
                    create: Some(plan),
                    replace: false,
                    local,
                }),
                Err(p) => problems.extend(p),
            },
        }
    }
    problems.extend(reach_problems(conn, &out).await?);
    if !non_empty.is_empty() {
        problems.push(format!(
            "the target's tables {} already hold rows: restore into an empty database, leave them out with --tables, \
             or give --replace to delete their rows first",
            non_empty.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SnapshotError::Invalid(problems))
    }
}

/// Fetches every data file (and, with `--files-into`, every media file) into the
/// spool folder and checks its size and SHA-256, before anything is written.
async fn fetch_and_verify(
    store: &Store,
    m: &SnapshotManifest,
    planned: &mut [Planned<'_>],
    opts: &RestoreOptions,
    spool: &Path,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<(), SnapshotError> {
    let folder = format!("{}/{}/", m.profile, m.id);
    let mut items: Vec<(String, PathBuf, u64, String)> = planned
        .iter()
        .map(|p| {
            (
                p.entry.file.clone(),
                p.local.clone(),
                p.entry.stored_bytes,
                p.entry.sha256.clone(),
            )
        })
        .collect();
    if opts.files_into.is_some() {
        items.extend(m.files.iter().map(|f| {
            (
                f.key.clone(),
                spool.join("files").join(&f.path),
                f.bytes,
                f.sha256.clone(),
            )
        }));
    }
    let mut problems = Vec::new();
    for (key, local, bytes, sha256) in items {
        if let Some(p) = progress {
            let _ = p.send(SnapshotProgress {
                phase: "verifying",
                item: key.clone(),
                rows: 0,
                total: None,
            });
        }
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SnapshotError::Io(format!("{}: {e}", parent.display())))?;
        }
        let full = format!("{folder}{key}");
        match store.download(&full, &local).await {
            Ok(_) => {}
            Err(lockgate_store::StoreError::NotFound { .. }) => {
                problems.push(format!(
                    "{}/{full}: missing from the store; the snapshot is damaged",
                    store.url()
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let (got, size) = file_sha256(&local).map_err(|e| SnapshotError::Io(format!("{}: {e}", local.display())))?;
        if size != bytes {
            problems.push(format!(
                "{}/{full}: {size} bytes where the manifest says {bytes}; the file is truncated or damaged",
                store.url()
            ));
        } else if got != sha256 {
            problems.push(format!(
                "{}/{full}: SHA-256 {got} does not match the manifest's {sha256}; the file is damaged",
                store.url()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push("nothing was written".into());
        Err(SnapshotError::Invalid(problems))
    }
}

/// The writing part; returns the rows written.
#[allow(clippy::too_many_arguments)]
async fn write_all(
    conn: &mut Conn,
    into: &DbUrl,
    engine: Engine,
    planned: &[Planned<'_>],
    m: &SnapshotManifest,
    opts: &RestoreOptions,
    total: u64,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<u64, SnapshotError> {
    if engine == Engine::Mysql {
        // MariaDB commits around DDL: the tables are created first, outside the data's
        // transaction, and dropped again should the rest fail.
        let mut created: Vec<TableName> = Vec::new();
        let result = async {
            for p in planned {
                if let Some(c) = &p.create {
                    // Unique and other indexes come with the table here, so that a value
                    // they refuse (two texts MariaDB's collation calls equal) fails a
                    // row inside the data's transaction, not DDL after its commit.
                    let table = lockgate_db::schema::TableSpec {
                        indexes: c.indexes.clone(),
                        ..c.table.clone()
                    };
                    created.push(p.name.clone());
                    apply_change(conn, &SchemaChange::CreateTable(table)).await?;
                }
            }
            conn.begin().await?;
            let filled = async {
                let rows = fill(conn, into, planned, m, opts, total, progress).await?;
                // The foreign keys come after the commit: every row they will check is
                // checked now, inside the transaction, so that none fails later.
                orphans(conn, planned).await?;
                Ok::<u64, SnapshotError>(rows)
            };
            let rows = match filled.await {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = conn.rollback().await;
                    return Err(e);
                }
            };
            conn.commit().await?;
            // Only foreign keys remain, whose parents the plan checked are restored
            // or already there.
            finish_tables(conn, planned, false, progress).await?;
            Ok(rows)
        }
        .await;
        if result.is_err() {
            for t in created.iter().rev() {
                let _ = sql::drop_table(conn, t).await;
            }
        }
        return result;
    }
    conn.begin().await?;
    let result = async {
        sql::defer_foreign_keys(conn).await?;
        for p in planned {
            if let Some(c) = &p.create {
                apply_change(conn, &SchemaChange::CreateTable(c.table.clone())).await?;
            }
        }
        let rows = fill(conn, into, planned, m, opts, total, progress).await?;
        finish_tables(conn, planned, true, progress).await?;
        Ok::<u64, SnapshotError>(rows)
    }
    .await;
    match result {
        Ok(rows) => match conn.commit().await {
            Ok(()) => Ok(rows),
            Err(e) => {
                // SQLite checks deferred foreign keys at the commit, and a refused
                // commit leaves the transaction open.
                let _ = conn.rollback().await;
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

/// Deletes replaced tables' rows (children first), fills every table (parents
/// first) through the bulk writer inside the open transaction, and sets the module
/// versions.
#[allow(clippy::too_many_arguments)]
async fn fill(
    conn: &mut Conn,
    into: &DbUrl,
    planned: &[Planned<'_>],
    m: &SnapshotManifest,
    opts: &RestoreOptions,
    total: u64,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<u64, SnapshotError> {
    // The snapshot's migration history goes with a whole snapshot only: a few of its
    // tables are not the database it describes.
    let ledger = opts.tables.is_empty();
    for p in planned.iter().rev().filter(|p| p.replace) {
        if let Some(t) = conn.describe(&p.name).await? {
            lockgate_db::rows::delete_where(conn, &t, lockgate_db::rows::Filter::All).await?;
        }
    }
    let mut done = 0u64;
    for p in planned {
        let table = conn.describe(&p.name).await?.ok_or_else(|| {
            SnapshotError::Db(DbError::Invalid(format!(
                "table {} vanished during the restore",
                p.name
            )))
        })?;
        let source = SnapshotSource {
            path: p.local.clone(),
            name: format!("{}/{}/{}", m.profile, m.id, p.entry.file),
            columns: Arc::new(p.columns.clone()),
            kinds: kinds(&p.entry.def).map_err(SnapshotError::one)?,
            batch_rows: opts.batch_rows,
        };
        let cfg = WriteConfig {
            nested: true,
            reconnect: Some(into.clone()),
            ..WriteConfig::default()
        };
        let (ptx, mut prx) = mpsc::unbounded_channel::<writer::Progress>();
        let item = p.name.to_string();
        let forward = async {
            while let Some(w) = prx.recv().await {
                if let Some(out) = progress {
                    let _ = out.send(SnapshotProgress {
                        phase: "writing",
                        item: item.clone(),
                        rows: done + w.rows,
                        total: Some(total),
                    });
                }
            }
        };
        let work = async {
            let r = writer::write(conn, &table, &cfg, &source, Some(&ptx)).await;
            drop(ptx);
            r
        };
        let (result, ()) = tokio::join!(work, forward);
        let report = result.map_err(|e| match e {
            writer::WriteError::Db(e) => SnapshotError::Db(e),
            writer::WriteError::Source(e) => SnapshotError::one(format!("{e}; nothing was written")),
        })?;
        if !report.failed.is_empty() {
            let shown: Vec<String> = report
                .failed
                .iter()
                .take(10)
                .map(|f| format!("{} {f}", p.name))
                .collect();
            return Err(SnapshotError::Rows(format!(
                "{} rows of table {} could not be restored; nothing was written:\n{}",
                report.failed.len(),
                p.name,
                shown.join("\n")
            )));
        }
        done += report.inserted;
        catch_up_identity(conn, &table).await?;
    }
    if ledger {
        for v in &m.versions {
            versions::record_version(
                conn,
                &versions::AppliedVersion {
                    module: v.module.clone(),
                    version: v.version.clone(),
                    status: v.status.clone(),
                    checksum: v.checksum.clone(),
                    parts_done: v.parts_done,
                    scripts: v.scripts.clone(),
                    run_id: None,
                    applied_at: String::new(),
                },
            )
            .await?;
        }
        for (module, version) in &m.modules {
            versions::set_module_version(conn, module, version).await?;
        }
    }
    Ok(done)
}

/// Fails when a foreign key a created table will get would not hold: a row whose
/// key names no parent row (a source whose keys were not enforced, a parent taken
/// with `--where`).
async fn orphans(conn: &mut Conn, planned: &[Planned<'_>]) -> Result<(), SnapshotError> {
    let mut problems = Vec::new();
    for p in planned {
        let Some(c) = &p.create else { continue };
        for k in &c.foreign_keys {
            if sql::has_orphans(conn, &p.name, k).await? {
                problems.push(format!(
                    "table {} has rows whose {} names no row of {}: foreign key {} cannot be built",
                    p.name,
                    k.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", "),
                    k.references,
                    k.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push("nothing was written".into());
        Err(SnapshotError::Invalid(problems))
    }
}

/// Builds the created tables' indexes and foreign keys over their data.
async fn finish_tables(
    conn: &mut Conn,
    planned: &[Planned<'_>],
    indexes: bool,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<(), SnapshotError> {
    for p in planned.iter().filter(|_| indexes) {
        let Some(c) = &p.create else { continue };
        if !c.primary_key_after.is_empty() {
            apply_change(
                conn,
                &SchemaChange::AddPrimaryKey {
                    table: p.name.clone(),
                    columns: c.primary_key_after.clone(),
                },
            )
            .await?;
        }
        if let Some(out) = progress {
            let _ = out.send(SnapshotProgress {
                phase: "indexing",
                item: p.name.to_string(),
                rows: 0,
                total: None,
            });
        }
        for index in &c.indexes {
            apply_change(
                conn,
                &SchemaChange::CreateIndex {
                    table: p.name.clone(),
                    index: index.clone(),
                },
            )
            .await?;
        }
    }
    for p in planned {
        let Some(c) = &p.create else { continue };
        for key in &c.foreign_keys {
            apply_change(
                conn,
                &SchemaChange::AddForeignKey {
                    table: p.name.clone(),
                    key: key.clone(),
                },
            )
            .await?;
        }
    }
    Ok(())
}
