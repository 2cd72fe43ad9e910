//! The run's shell: the source opened and checked, the module's lock and the table
//! locks taken, the ledger's run recorded, the pending versions applied in order, and
//! the report, warnings and locks given back.

use super::*;

/// Applies the pending versions of a `db/` folder (or zip) to the database.
pub async fn migrate(
    url: &DbUrl,
    opts: &MigrateOptions,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<MigrateReport, MigrateError> {
    let started = Instant::now();
    if let (Some(from), Some(to)) = (opts.from, opts.to) {
        if from > to {
            return Err(MigrateError::Input(format!(
                "--from {from} is later than --to {to}: no version lies between them; swap them"
            )));
        }
    }
    let source = open_source(&opts.dir, opts.zip.as_deref(), &opts.zip_limits)?;
    let base = &source.base;
    if !opts.allow_process_scripts {
        let scripts = process_scripts(base)?;
        if !scripts.is_empty() {
            return Err(MigrateError::Input(format!(
                "{} holds process scripts, which may not run here: {}; remove them (.sql scripts are allowed)",
                base.root.display(),
                scripts.join(", ")
            )));
        }
    }
    let mut shared_models = Models::default();
    for f in base.model_files()? {
        let m = read_model(&f)?;
        if m.table_name().to_ascii_lowercase().starts_with("lockgate_") {
            return Err(MigrateError::Input(format!(
                "{}: {} is one of Lockgate's own tables (its ledger): a definition cannot change it",
                f.display(),
                m.table_name()
            )));
        }
        shared_models.add(m);
    }

    let mut conn = Conn::connect(url).await?;
    // A dry run of a database that has no ledger yet creates none: it has no
    // versions, and there is nothing to lock against (it keeps nothing).
    let no_ledger = opts.dry_run && conn.lookup_table("lockgate_modules").await?.is_none();
    let mut ledger = if no_ledger {
        None
    } else {
        Some(Ledger::open(url).await?)
    };
    let job = format!("migrate:{}", opts.module);
    let holder = Holder::current(format!("lockgate migrate {}", base.root.display()));
    let lock = match ledger.as_mut() {
        Some(l) => Some(l.lock(&job, &holder, opts.lock_timeout).await?),
        None => None,
    };
    let mut table_locks = Vec::new();
    let result = async {
        let (old_version, applied) = if no_ledger {
            (None, Vec::new())
        } else {
            (
                versions::module_version(&mut conn, &opts.module).await?,
                versions::applied_versions(&mut conn, &opts.module).await?,
            )
        };
        let applied_map = by_version(&applied);
        let current: Option<Version> = old_version.as_deref().and_then(|v| v.parse().ok());
        // Choose the versions, then check every one of them before writing anything.
        let mut pending = Vec::new();
        let mut warnings = Vec::new();
        let in_range =
            |v: Version| !(opts.from.is_some_and(|f| v < f) || opts.to.is_some_and(|t| v > t));
        // A new deployment (no version, nothing applied, not even partly) starts at the
        // newest baseline: the versions before it are what the baseline holds.
        let start = if current.is_none() && applied.is_empty() {
            status::starting_baseline(&status::baselines(base), in_range)
        } else {
            None
        };
        let mut skipped: Vec<VersionReport> = Vec::new();
        for v in &base.versions {
            if !in_range(v.version) {
                continue;
            }
            if let Some(b) = start.filter(|b| v.version < *b) {
                skipped.push(skipped_version(&v.version.to_string(), &format!(
                    "older than the baseline {b}, which a new deployment starts from: the baseline holds what it did"
                )));
                continue;
            }
            let partial = applied_map
                .get(&v.version.to_string())
                .is_some_and(|a| a.status == "partial");
            let newer = current.is_none_or(|c| v.version > c);
            if !(opts.force || newer || partial) {
                continue;
            }
            let mut manifest = v.manifest()?;
            warnings.extend(manifest.warnings.iter().cloned());
            if let (Some(spec), Some(c)) = (&manifest.baseline, current.filter(|c| v.version > *c)) {
                // A baseline above the database's version: the database runs the
                // versions before it and so holds its data already; it is recorded,
                // not run, when nothing it stands for is lost to this database.
                let folder = opts.zip.as_ref().unwrap_or(&base.root).display().to_string();
                check_record_only(base, &folder, v.version, spec, c)?;
                manifest.files.clear();
                manifest.clear_tables = ClearTables::None;
                manifest.scripts = Default::default();
                pending.push(Pending {
                    checksum: v.checksum()?,
                    dir: v.clone(),
                    manifest,
                    ddl: Vec::new(),
                    models: shared_models.resolved()?,
                    tables: Models::default(),
                    record_only: true,
                });
                continue;
            }
            let mut ddl = Vec::new();
            for f in v.ddl_files()? {
                ddl.push(read_model(&f)?);
            }
            let mut in_force = shared_models.clone();
            for m in &ddl {
                in_force.add(m.clone());
            }
            let models = in_force.resolved()?;
            let tables = models.with_tables(&manifest, &ddl);
            pending.push(Pending {
                checksum: v.checksum()?,
                dir: v.clone(),
                manifest,
                ddl,
                models,
                tables,
                record_only: false,
            });
        }
        // Drift (Flyway's validate): said in the warnings, except for the versions
        // this run applies.
        let applying: Vec<String> = pending.iter().map(|p| p.dir.version.to_string()).collect();
        let folder = opts.zip.as_ref().unwrap_or(&base.root).display().to_string();
        let drift = status::drift(base, &applied, old_version.as_deref())?;
        warnings.splice(0..0, drift.messages(old_version.as_deref(), &folder, &applying));
        // The tables the versions write, under the lock `load` and `transfer run` take
        // too, so that no other command writes them meanwhile; taken before the checks
        // describe them, so that what they check is what the versions will meet.
        if let Some(l) = ledger.as_mut() {
            let mut jobs = Vec::new();
            for t in tables_written(&mut conn, &pending, &shared_models).await? {
                jobs.push(l.table_job(&t).await?);
            }
            table_locks = l.lock_all(&jobs, &holder, opts.lock_timeout).await?;
        }
        check_pending(&mut conn, &pending, &shared_models, opts).await?;
        let run_id = if opts.dry_run {
            None
        } else {
            match ledger.as_mut() {
                Some(l) => Some(l.start_run("migrate", &job, &holder).await?),
                None => None,
            }
        };
        let mut ctx = Run {
            url,
            opts,
            conn: &mut conn,
            models: shared_models,
            progress: progress.as_ref(),
            run_id,
            irreversible: InOrder::default(),
        };
        let mut report = MigrateReport {
            old_version: old_version.clone(),
            migrated_versions: None,
            warnings,
            module: opts.module.clone(),
            new_version: old_version.clone(),
            dry_run: opts.dry_run,
            versions: skipped,
            failed_version: None,
            run_id,
            seconds: 0.0,
        };
        if opts.dry_run {
            ctx.conn.begin().await?;
        }
        let mut outcome: Result<(), MigrateError> = Ok(());
        for p in &pending {
            ctx.models = p.models.clone();
            // Re-applying an older version (--force): which rows of the later
            // versions that stay applied it rewrites, from the images it writes.
            let later: Vec<String> = if opts.dry_run {
                Vec::new()
            } else {
                applied
                    .iter()
                    .filter(|a| a.version.parse::<Version>().is_ok_and(|v| v > p.dir.version))
                    .map(|a| a.version.clone())
                    .filter(|v| !applying.contains(v))
                    .collect()
            };
            let mark = if later.is_empty() {
                None
            } else {
                force::mark(ctx.conn).await.ok()
            };
            let (mut vr, logs, err) = ctx.apply_version(p).await;
            if p.record_only && matches!(vr.status, VersionStatus::Applied | VersionStatus::WouldApply) {
                if vr.status == VersionStatus::Applied {
                    vr.status = VersionStatus::Recorded;
                }
                vr.steps.push(StepReport {
                    kind: "skipped".into(),
                    file: "meta.json".into(),
                    note: Some(format!(
                        "baseline: recorded as applied without loading its data (the database ran every version before {}, so it holds that data already)",
                        vr.version
                    )),
                    ..StepReport::default()
                });
            }
            if let (Some(mark), VersionStatus::Applied) = (mark, vr.status) {
                match force::overwritten(ctx.conn, &opts.module, &vr.version, mark, &later).await {
                    Ok(Some(w)) => report.warnings.push(w),
                    Ok(None) => {}
                    Err(e) => report.warnings.push(format!(
                        "could not tell which rows of later versions version {} rewrote: {e}",
                        vr.version
                    )),
                }
            }
            if !opts.dry_run {
                // After the version's transaction: the log outlives its rollback.
                if let Err(e) = versions::write_logs(ctx.conn, &logs).await {
                    report.warnings.push(format!(
                        "version {}: its entries in lockgate_migration_log could not be written ({e})",
                        vr.version
                    ));
                }
            }
            for f in vr.failures.iter().filter(|f| f.skipped) {
                report.warnings.push(format!("{}: skipped: {}", f.version, f.error));
            }
            if vr.status == VersionStatus::Failed {
                report.failed_version = Some(vr.version.clone());
            }
            let done = matches!(
                vr.status,
                VersionStatus::Applied | VersionStatus::WouldApply | VersionStatus::Recorded
            );
            if done {
                report
                    .migrated_versions
                    .get_or_insert_with(Vec::new)
                    .push(vr.version.clone());
                report.new_version = Some(vr.version.clone());
            }
            report.versions.push(vr);
            if let Some(e) = err {
                outcome = Err(e);
                break;
            }
            if !done {
                break;
            }
        }
        if opts.dry_run {
            let _ = ctx.conn.rollback().await;
            report.new_version = old_version.clone();
        } else if let Some(v) = report.new_version.clone() {
            // --force of older versions keeps the newest version as current.
            if let (Some(c), Ok(n)) = (current, v.parse::<Version>()) {
                if n < c {
                    report.new_version = old_version.clone();
                }
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        if let Some(run) = run_id {
            let status = if outcome.is_ok() && report.failed_version.is_none() {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            };
            let error = match &outcome {
                Err(e) => Some(e.to_string()),
                Ok(()) => report
                    .failed_version
                    .as_ref()
                    .map(|v| format!("version {v} failed; nothing of it was kept")),
            };
            let done = report.migrated_versions.as_ref().map_or(0, |v| v.len() as u64);
            let summary = serde_json::json!({
                "old_version": report.old_version,
                "migrated_versions": report.migrated_versions,
                "failed_version": report.failed_version,
            });
            if let Some(l) = ledger.as_mut() {
                if let Err(e) = l.finish_run(run, status, done, &summary, error.as_deref()).await {
                    report.warnings.push(format!(
                        "the end of run {run} could not be recorded in lockgate_runs ({e}); it reads as abandoned \
                         once this process has exited"
                    ));
                }
            }
        }
        match (outcome, report.migrated_versions.clone()) {
            (Ok(()), _) => Ok(report),
            // Versions applied before the error stay applied (one transaction each):
            // the error names them, since the report that would is not returned.
            (Err(e), Some(applied)) if !opts.dry_run && !applied.is_empty() => Err(MigrateError::AfterApplied {
                error: Box::new(e),
                applied,
            }),
            (Err(e), _) => Err(e),
        }
    }
    .await;
    let mut result = result;
    if let Some(l) = ledger.as_mut() {
        let mut warnings = Vec::new();
        if let Err(e) = l.unlock_all(table_locks).await {
            warnings.push(format!(
                "the table locks could not be given back ({e}); they are freed when this process exits"
            ));
        }
        if let Some(lock) = lock {
            if let Err(e) = l.unlock(lock).await {
                warnings.push(format!(
                    "the migration lock could not be given back ({e}); it is freed when this process exits"
                ));
            }
        }
        for w in warnings {
            match &mut result {
                Ok(r) => r.warnings.push(w),
                Err(_) => tracing::warn!("{w}"),
            }
        }
    }
    result
}

/// The report of a version not applied because of a baseline, saying why.
fn skipped_version(version: &str, why: &str) -> VersionReport {
    VersionReport {
        version: version.into(),
        status: VersionStatus::Skipped,
        schema_changes: Vec::new(),
        steps: vec![StepReport {
            kind: "skipped".into(),
            file: "meta.json".into(),
            note: Some(why.into()),
            ..StepReport::default()
        }],
        failures: Vec::new(),
        error: None,
        schema_kept: Vec::new(),
    }
}

/// Whether the baseline `version` may be recorded without being run in a database at
/// `current` (below it), which runs the versions between them from `base` first. Not
/// when the baseline took the place of its version's own folder (that version's
/// changes are in no folder any more), nor when a version it stands for above
/// `current` was pruned from the folder: the database would never get their changes.
fn check_record_only(
    base: &BaseDir,
    folder: &str,
    version: Version,
    spec: &lockgate_bundle::Baseline,
    current: Version,
) -> Result<(), MigrateError> {
    if spec.replaces.is_some() {
        return Err(MigrateError::Input(format!(
            "version {version} in {folder} is a baseline that took the place of version {version}'s own folder, and this database is at {current}: it cannot get version {version}'s own changes from it; migrate it to {version} with the folder as it was before the baseline (from version control), then with {folder}, or start the deployment afresh from the baseline (an empty database)"
        )));
    }
    let pruned: Vec<String> = spec
        .covers
        .iter()
        .filter(|v| **v > current && **v < version && base.version(**v).is_none())
        .map(Version::to_string)
        .collect();
    if !pruned.is_empty() {
        return Err(MigrateError::Input(format!(
            "this database is at {current}, and {folder} no longer holds {} (the baseline {version} stands for {}): it would never get their changes; migrate it with a folder that still holds them (from version control), then with {folder}, or start the deployment afresh from the baseline (an empty database)",
            pruned.join(", "),
            if pruned.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok(())
}
