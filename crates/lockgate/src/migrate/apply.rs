//! Applying one version: its schema changes, then its parts (`clearTables`, scripts
//! and files in meta.json's order, a process script ending the transaction), then
//! its ledger row, committed together; its log buffered until the transaction ends.

use super::*;

/// The state of one run of migrate across versions.
pub(super) struct Run<'a> {
    pub(super) url: &'a DbUrl,
    pub(super) opts: &'a MigrateOptions,
    pub(super) conn: &'a mut Conn,
    pub(super) models: Models,
    pub(super) progress: Option<&'a mpsc::UnboundedSender<Progress>>,
    pub(super) run_id: Option<i64>,
    /// What the current version changed that its row images cannot undo (a table
    /// whose rows cannot be told apart): recorded with the version, like its scripts.
    pub(super) irreversible: InOrder,
}

/// Notes said once each, in the order first said: a set for the lookups (a version
/// clearing and loading many tables asks once per table and file), a list for the order.
#[derive(Default)]
pub(super) struct InOrder {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl InOrder {
    /// Adds `note` unless it is there already.
    pub(super) fn push(&mut self, note: String) {
        if self.seen.insert(note.clone()) {
            self.list.push(note);
        }
    }

    /// Forgets every note.
    pub(super) fn clear(&mut self) {
        self.list.clear();
        self.seen.clear();
    }

    /// The notes, in the order first said.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, String> {
        self.list.iter()
    }
}

/// Why a version's part stopped.
pub(super) enum PartEnd {
    /// Every step ran.
    Done,
    /// Record failures under rollback or stop: the version fails.
    Failed,
}

impl Run<'_> {
    pub(super) fn log(&self, version: &str, log_type: &str, message: serde_json::Value) -> LogEntry {
        LogEntry {
            id: 0,
            run_id: self.run_id,
            log_type: log_type.into(),
            module: self.opts.module.clone(),
            version: Some(version.into()),
            table: None,
            tenant: None,
            file: None,
            logged_at: String::new(),
            message,
        }
    }

    /// Applies one version. Returns its report, its log entries (to write after its
    /// transaction), and the error that halts the run, if any.
    pub(super) async fn apply_version(&mut self, p: &Pending) -> (VersionReport, Vec<LogEntry>, Option<MigrateError>) {
        let version = p.dir.version.to_string();
        let mut vr = VersionReport {
            version: version.clone(),
            status: if self.opts.dry_run {
                VersionStatus::WouldApply
            } else {
                VersionStatus::Applied
            },
            schema_changes: Vec::new(),
            steps: Vec::new(),
            failures: Vec::new(),
            error: None,
            schema_kept: Vec::new(),
        };
        let mut logs = Vec::new();
        self.irreversible.clear();
        let result = self.apply_parts(p, &mut vr, &mut logs).await;
        // What MariaDB committed of the version's schema changes before it failed.
        // (After a committed part, the error says so already: its changes stay.)
        let kept = match &result {
            Ok(PartEnd::Done) | Err((_, 1..)) => Vec::new(),
            _ => std::mem::take(&mut vr.schema_kept),
        };
        let kept_note = (!kept.is_empty()).then(|| {
            format!(
                "; on MariaDB, which commits schema changes at once, these stay: {}",
                kept.join("; ")
            )
        });
        vr.schema_kept.clear();
        let error = match result {
            Ok(PartEnd::Done) => {
                logs.push(self.log(
                    &version,
                    "INFO",
                    serde_json::json!({ "message": format!("Migration done. DB updated to {version}") }),
                ));
                None
            }
            Ok(PartEnd::Failed) => {
                vr.status = VersionStatus::Failed;
                let n = vr.failures.iter().filter(|f| !f.skipped).count();
                let mut msg = format!("version {version} failed: {n} record(s) failed; nothing of its data was kept");
                if let Some(note) = &kept_note {
                    msg.push_str(note);
                }
                vr.schema_kept = kept;
                vr.error = Some(msg.clone());
                logs.push(self.log(&version, "ERROR", serde_json::json!({ "message": msg })));
                None
            }
            Err((e, committed_parts)) => {
                vr.status = if committed_parts > 0 {
                    VersionStatus::Partial
                } else {
                    VersionStatus::Failed
                };
                let msg = if committed_parts > 0 {
                    format!("version {version} stopped after {committed_parts} committed part(s): {e}")
                } else if kept_note.is_some() {
                    format!("version {version} failed; its data was rolled back: {e}")
                } else {
                    format!("version {version} failed; nothing of it was kept: {e}")
                };
                let e = match &kept_note {
                    Some(note) => MigrateError::SchemaKept(format!("{msg}{note}")),
                    None => e,
                };
                let msg = match &kept_note {
                    Some(note) => format!("{msg}{note}"),
                    None => msg,
                };
                vr.schema_kept = kept;
                vr.error = Some(msg.clone());
                logs.push(self.log(&version, "ERROR", serde_json::json!({ "message": msg })));
                Some(e)
            }
        };
        // The failing records' data, read back from their files (bounded).
        attach_data(&mut vr.failures, p);
        for f in &vr.failures {
            let mut entry = self.log(
                &version,
                if f.skipped { "WARN" } else { "ERROR" },
                serde_json::json!({ "message": f.error.to_string(), "data": f.data }),
            );
            entry.file = f.error.file.clone();
            entry.table = Some(f.table.clone());
            entry.tenant = f.tenant.clone();
            logs.push(entry);
        }
        (vr, logs, error)
    }

    /// Runs the version's parts; on an error returns it with the number of parts
    /// committed before it.
    pub(super) async fn apply_parts(
        &mut self,
        p: &Pending,
        vr: &mut VersionReport,
        logs: &mut Vec<LogEntry>,
    ) -> Result<PartEnd, (MigrateError, i64)> {
        let engine = self.conn.engine();
        let dry = self.opts.dry_run;
        let version = p.dir.version.to_string();
        let all = steps(&p.manifest);
        let mut scripts_run: Vec<String> = Vec::new();
        let mut committed_parts = 0i64;
        // MariaDB commits DDL implicitly: its schema changes go first, on their own.
        let mut schema_pending = true;
        let mut deferred_tables: HashSet<String> = HashSet::new();
        if engine == Engine::Mysql {
            let changes = self.schema_changes(p).await.map_err(|e| (e, 0))?;
            vr.schema_changes = changes.iter().map(|c| c.to_string()).collect();
            // What DDL loses cannot come back if the data then fails: such a change
            // must be a version of its own on MariaDB.
            let writes_data = all
                .iter()
                .any(|s| matches!(s, Step::Data(_) | Step::Clear | Step::Script { .. }));
            if let Some(c) = changes.iter().find(|c| match c {
                SchemaChange::DropColumn { .. } => true,
                // A widening keeps what the column had (`kept`); a retype may not.
                SchemaChange::AlterColumn { column, .. } => column.kept.is_none(),
                _ => false,
            }) {
                if writes_data {
                    return Err((
                        MigrateError::Input(format!(
                            "{}: on MariaDB, \"{c}\" cannot share a version with data or scripts: MariaDB commits schema changes at once, so a failed load could not undo it; move the definition change into a version of its own (the versions before this one stay applied)",
                            p.manifest.path.display()
                        )),
                        0,
                    ));
                }
            }
            if dry {
                for c in &changes {
                    deferred_tables.insert(change_table(c).to_lowercase());
                }
            } else {
                for c in &changes {
                    lockgate_db::schema::apply_change(self.conn, c)
                        .await
                        .map_err(|e| (MigrateError::Db(e), 0))?;
                    // Committed at once: it stays whatever happens next.
                    vr.schema_kept.push(c.to_string());
                }
            }
            schema_pending = false;
        }
        let mut i = 0;
        let mut part = 0i64;
        loop {
            // One part: from here up to the next process script.
            if !dry {
                self.conn.begin().await.map_err(|e| (e.into(), committed_parts))?;
            }
            let steps_before = vr.steps.len();
            let schema_before = schema_pending;
            let part_result: Result<PartEnd, MigrateError> = async {
                if schema_pending {
                    let changes = self.schema_changes(p).await?;
                    vr.schema_changes = changes.iter().map(|c| c.to_string()).collect();
                    for c in &changes {
                        lockgate_db::schema::apply_change(self.conn, c).await?;
                    }
                    schema_pending = false;
                }
                while i < all.len() && !is_process(&all[i]) {
                    let step = all[i].clone();
                    i += 1;
                    match step {
                        Step::Clear => {
                            let r = self.clear(p, &version, dry).await?;
                            vr.steps.extend(r);
                        }
                        Step::Script { file, .. } if !deferred_tables.is_empty() => {
                            // A MariaDB dry run could not make the schema changes the
                            // script may rely on.
                            vr.steps.push(StepReport {
                                kind: "sql".into(),
                                file,
                                note: Some(
                                    "not run: the version changes the schema first, and MariaDB cannot roll back schema changes".into(),
                                ),
                                ..StepReport::default()
                            });
                        }
                        Step::Script { file, label, .. } => {
                            let path = p.dir.resolve(&file, &label)?;
                            let place = format!("{label} of {}", p.manifest.path.display());
                            let capture = (!dry).then_some((self.opts.module.as_str(), version.as_str()));
                            let out = sqlscript::run(self.conn, &path, &place, capture).await?;
                            // A script whose changes were all recorded goes back with
                            // the version's images; only one with unrecorded changes
                            // is what a rollback must be told to leave.
                            if !out.unrecorded.is_empty() {
                                scripts_run.push(file.clone());
                            }
                            vr.steps.push(StepReport {
                                kind: "sql".into(),
                                file,
                                note: out.note(),
                                ..StepReport::default()
                            });
                        }
                        Step::Data(entry) => {
                            let (step, failures, end) = self.data(p, &entry, &version, &deferred_tables).await?;
                            let mut log = self.log(
                                &version,
                                "INFO",
                                serde_json::json!({ "message": {
                                    "total": step.rows_read,
                                    "success": step.rows_read - step.failed,
                                    "failed": step.failed,
                                }}),
                            );
                            log.table = step.table.clone();
                            // As the seed's MigrationLog: the context's tenant, for every file.
                            log.tenant = tenant_of(&p.manifest, entry.ctx_id.as_deref());
                            log.file = Some(p.dir.path.join(&entry.file).display().to_string());
                            logs.push(log);
                            vr.steps.push(step);
                            vr.failures.extend(failures);
                            if matches!(end, PartEnd::Failed) && self.file_policy(p, &entry) == OnError::Stop {
                                return Ok(PartEnd::Failed);
                            }
                        }
                    }
                }
                if vr.failures.iter().any(|f| !f.skipped) {
                    return Ok(PartEnd::Failed);
                }
                Ok(PartEnd::Done)
            }
            .await;
            let last = i >= all.len();
            // A part that did nothing (a version that starts with a process script)
            // commits nothing and records nothing.
            let did_work = vr.steps.len() > steps_before || (schema_before && !vr.schema_changes.is_empty());
            match part_result {
                Ok(PartEnd::Done) if !dry && !last && !did_work => {
                    let _ = self.conn.rollback().await;
                }
                Ok(PartEnd::Done) if !dry => {
                    let record = AppliedVersion {
                        module: self.opts.module.clone(),
                        version: version.clone(),
                        status: if last { "applied".into() } else { "partial".into() },
                        checksum: p.checksum.clone(),
                        parts_done: part + 1,
                        scripts: scripts_run.iter().chain(self.irreversible.iter()).cloned().collect(),
                        run_id: self.run_id,
                        applied_at: String::new(),
                    };
                    let commit = async {
                        versions::record_version(self.conn, &record).await?;
                        if last {
                            let newer = match versions::module_version(self.conn, &self.opts.module).await? {
                                Some(cur) => cur.parse::<Version>().map_or(true, |c| p.dir.version >= c),
                                None => true,
                            };
                            if newer {
                                versions::set_module_version(self.conn, &self.opts.module, &version).await?;
                            }
                        }
                        self.conn.commit().await
                    }
                    .await;
                    if let Err(e) = commit {
                        let _ = self.conn.rollback().await;
                        return Err((e.into(), committed_parts));
                    }
                    committed_parts += 1;
                }
                Ok(PartEnd::Done) => {}
                Ok(PartEnd::Failed) => {
                    if !dry {
                        let _ = self.conn.rollback().await;
                    }
                    if committed_parts > 0 {
                        return Err((
                            MigrateError::Script(format!(
                                "version {version}: records failed after a committed part; the version stays partial"
                            )),
                            committed_parts,
                        ));
                    }
                    return Ok(PartEnd::Failed);
                }
                Err(e) => {
                    if !dry {
                        let _ = self.conn.rollback().await;
                    }
                    return Err((e, committed_parts));
                }
            }
            if last {
                return Ok(PartEnd::Done);
            }
            // A process script: it sees what was committed above.
            let Step::Script {
                file,
                label,
                kind,
                ctx_id,
            } = all[i].clone()
            else {
                unreachable!("a part ends at a process script");
            };
            i += 1;
            part += 1;
            if dry {
                vr.steps.push(StepReport {
                    kind: "script".into(),
                    file: file.clone(),
                    note: Some("not run in a dry run: what it would change is not in this plan".into()),
                    ..StepReport::default()
                });
                continue;
            }
            let path = p.dir.resolve(&file, &label).map_err(|e| (e.into(), committed_parts))?;
            let env = script::environment(self.url, &version, &self.opts.module);
            let ctx = context(&p.manifest, ctx_id.as_deref());
            match script::run(&path, kind, &p.dir.path, &env, &ctx, self.opts.script_timeout).await {
                Ok(out) => {
                    scripts_run.push(file.clone());
                    let mut log = self.log(
                        &version,
                        "INFO",
                        serde_json::json!({ "message": format!("ran {file}"), "output": out.output }),
                    );
                    log.file = Some(path.display().to_string());
                    logs.push(log);
                    vr.steps.push(StepReport {
                        kind: "script".into(),
                        file,
                        note: (!out.output.is_empty()).then_some(out.output),
                        ..StepReport::default()
                    });
                }
                Err(msg) => return Err((MigrateError::Script(msg), committed_parts)),
            }
        }
    }

    /// Where a write into `table` records its row images; `None` in a dry run, and
    /// for a table whose rows cannot be told apart (no primary key and no unique key
    /// of NOT NULL columns: a unique key over a nullable column does not count, NULLs
    /// repeat), which is then noted as something a rollback cannot undo.
    pub(super) fn capture_for(&mut self, table: &Table, version: &str) -> Option<Capture> {
        if self.opts.dry_run {
            return None;
        }
        if !writer::can_capture(table) {
            self.irreversible.push(format!(
                "table {} (no primary key and no unique key of NOT NULL columns: its rows cannot be told apart)",
                table.name
            ));
            return None;
        }
        Some(Capture {
            module: self.opts.module.clone(),
            version: version.into(),
        })
    }

    pub(super) fn file_policy(&self, p: &Pending, entry: &FileEntry) -> OnError {
        policy(entry.on_error)
            .or(policy(p.manifest.on_error))
            .unwrap_or(self.opts.on_error)
    }

    pub(super) fn tenant_column(&self, p: &Pending) -> String {
        p.manifest
            .tenant_column
            .clone()
            .unwrap_or_else(|| self.opts.tenant_column.clone())
    }

    /// The schema changes the definitions in force ask for (of the models that get a
    /// table in this version: [`Pending::tables`]).
    pub(super) async fn schema_changes(&mut self, p: &Pending) -> Result<Vec<SchemaChange>, MigrateError> {
        let tenant_column = self.tenant_column(p);
        Ok(planned_changes(self.conn, &p.tables, &tenant_column)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }
}
