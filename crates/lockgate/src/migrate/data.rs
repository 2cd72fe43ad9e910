//! A version's data: `clearTables` (images first) and each data file through the
//! writer as a nested unit, and the failing records read back for the log.

use super::*;

impl Run<'_> {
    /// `clearTables`: empties the tables (for a multi-tenant table, the rows of the
    /// tenants this version loads into it), recording each row's image.
    pub(super) async fn clear(
        &mut self,
        p: &Pending,
        version: &str,
        dry: bool,
    ) -> Result<Vec<StepReport>, MigrateError> {
        let tenant_column = self.tenant_column(p);
        let mut names: Vec<String> = match &p.manifest.clear_tables {
            ClearTables::None => Vec::new(),
            ClearTables::All => p
                .manifest
                .files
                .iter()
                .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
                .filter_map(|f| f.model.clone())
                .collect(),
            ClearTables::Tables(list) => list.clone(),
        };
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert(n.to_lowercase()));
        let mut out = Vec::new();
        for name in names {
            let Some(table) = self.conn.lookup_table(&name).await? else {
                continue; // Defined but not created yet: nothing to clear.
            };
            let multi = self.is_multi_tenant(&table, &tenant_column, true);
            let tenants: Vec<String> = if multi {
                p.manifest
                    .files
                    .iter()
                    .filter(|f| f.enabled && f.model.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&name)))
                    .filter_map(|f| tenant_of(&p.manifest, f.ctx_id.as_deref()))
                    .collect()
            } else {
                Vec::new()
            };
            // A multi-tenant table no file of this version loads: the tenants of its
            // contexts (never every tenant's rows because none was named).
            let mut tenants = if multi && tenants.is_empty() {
                p.manifest
                    .contexts
                    .keys()
                    .filter_map(|c| tenant_of(&p.manifest, Some(c)))
                    .collect()
            } else {
                tenants
            };
            // Each tenant once (several files, or contexts, may name one), in the
            // order first named: for the query's IN list and the report.
            let mut named = HashSet::new();
            tenants.retain(|t| named.insert(t.clone()));
            if multi && tenants.is_empty() {
                return Err(MigrateError::Input(format!(
                    "{}: clearTables names the multi-tenant table {}, but the version has no context to say whose rows: add a context",
                    p.manifest.path.display(),
                    table.name
                )));
            }
            let capture = if dry { None } else { self.capture_for(&table, version) };
            let deleted = clear_table(
                self.conn,
                &table,
                if tenants.is_empty() {
                    None
                } else {
                    Some((&tenant_column, &tenants))
                },
                capture,
            )
            .await?;
            out.push(StepReport {
                kind: "clear".into(),
                file: table.name.to_string(),
                table: Some(table.name.to_string()),
                tenant: (!tenants.is_empty()).then(|| tenants.join(", ")),
                deleted,
                ..StepReport::default()
            });
        }
        Ok(out)
    }

    /// Whether rows written to `table` get the tenant of their context: the
    /// definition says so, or (without one) the table has the tenant column and the
    /// entry names a context. Without a context, records keep the tenant they carry
    /// (a dump loaded back).
    pub(super) fn is_multi_tenant(&self, table: &Table, tenant_column: &str, has_context: bool) -> bool {
        match self.models.get(&table.name.name) {
            Some(m) => m.multi_tenant,
            None => has_context && table.column(tenant_column).is_some(),
        }
    }

    /// One data file through the writer, nested in the version's transaction.
    pub(super) async fn data(
        &mut self,
        p: &Pending,
        entry: &FileEntry,
        version: &str,
        deferred: &HashSet<String>,
    ) -> Result<(StepReport, Vec<RecordFailure>, PartEnd), MigrateError> {
        let meta = p.manifest.path.display().to_string();
        let label = format!("files[{}]", entry.index);
        let model_name = entry.model.clone().unwrap_or_default();
        let path = p.dir.resolve(&entry.file, &label)?;
        let mode = write_mode(entry.effective_mode());
        let tenant = tenant_of(&p.manifest, entry.ctx_id.as_deref());
        let mut step = StepReport {
            kind: "data".into(),
            file: entry.file.clone(),
            table: Some(model_name.clone()),
            tenant: tenant.clone(),
            mode: Some(mode),
            ..StepReport::default()
        };
        if deferred.contains(&model_name.to_lowercase()) {
            // A MariaDB dry run cannot make the schema changes this file needs.
            step.rows_read = count_records(&path, entry)?;
            step.note = Some(
                "not computed: the table changes first, and MariaDB cannot roll back schema changes; rows read only"
                    .into(),
            );
            return Ok((step, Vec::new(), PartEnd::Done));
        }
        let table = self.conn.lookup_table(&model_name).await?.ok_or_else(|| {
            MigrateError::Input(format!(
                "{meta}: {label}: table {model_name:?} does not exist and no definition creates it"
            ))
        })?;
        step.table = Some(table.name.to_string());
        let tenant_column = self.tenant_column(p);
        let multi = self.is_multi_tenant(&table, &tenant_column, entry.ctx_id.is_some());
        if !multi {
            step.tenant = None;
        }
        let model = self.models.get(&table.name.name).cloned();
        let mut key: Vec<String> = Vec::new();
        for k in &entry.key {
            let col = table.column(k).ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: key {k:?} is not a column of table {}: fix the key",
                    table.name
                ))
            })?;
            key.push(col.name.clone());
        }
        if key.is_empty() {
            if let Some(m) = &model {
                key = m
                    .id_properties()
                    .iter()
                    .filter_map(|p| table.column(&p.name).map(|c| c.name.clone()))
                    .collect();
            }
        }
        if key.is_empty() {
            key = table
                .primary_key
                .iter()
                .filter(|k| !(multi && k.as_str() == tenant_column))
                .cloned()
                .collect();
        }
        if key.is_empty() {
            if let Some(c) = table.column("id") {
                key.push(c.name.clone());
            }
        }
        let mut constants = Vec::new();
        let mut scope = Vec::new();
        if multi {
            let col = table.column(&tenant_column).ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: table {} is multi-tenant but has no column {tenant_column:?}: add it to the definition",
                    table.name
                ))
            })?;
            let t = tenant.clone().ok_or_else(|| {
                MigrateError::Input(format!(
                    "{meta}: {label}: table {} is multi-tenant: give the entry a ctxId naming one of the contexts",
                    table.name
                ))
            })?;
            constants.push((col.name.clone(), Value::Text(t.clone())));
            scope.push((col.name.clone(), Value::Text(t)));
            if !key.is_empty() && !key.contains(&col.name) {
                key.push(col.name.clone());
            }
        }
        // A table whose rows have no key is loaded as inserts, as oe-migration's
        // upsert without an id creates rows (a re-run relies on clearTables).
        let mode = match mode {
            WriteMode::Upsert | WriteMode::InsertMissing if key.is_empty() => WriteMode::Insert,
            WriteMode::Update | WriteMode::Sync if key.is_empty() => {
                return Err(MigrateError::Input(format!(
                    "{meta}: {label}: table {} has no primary key and no id, and {} finds rows by their key: name the key with \"key\"",
                    table.name,
                    if mode == WriteMode::Update { "updateAttributes" } else { "sync" }
                )))
            }
            mode => mode,
        };
        step.mode = Some(mode);
        let on_error = self.file_policy(p, entry);
        let validation: Option<Validation> = match (&model, entry.skip_validation) {
            (Some(m), false) => Some(models::validation(m, &table, mode == WriteMode::Update)),
            _ => None,
        };
        let source = FileSource {
            files: vec![path.clone()],
            format: entry.format,
            table: table.clone(),
            batch_rows: self.opts.batch_rows,
            batch_bytes: self.opts.batch_bytes,
            key: key.clone(),
            constants,
            validation,
            // A record whose key is null has no key's value: inserted (or, updating,
            // that record's error), as oe-migration treats a falsy key.
            absent_when_null: if mode == WriteMode::Insert {
                Vec::new()
            } else {
                key.clone()
            },
        };
        let cfg = WriteConfig {
            mode,
            key,
            // Under rollback every failing record of the version is wanted, and the
            // files after this one should see its good rows: keep them in the
            // savepoint; the version's transaction decides at its end.
            on_error: if on_error == OnError::Stop {
                OnError::Stop
            } else {
                OnError::Skip
            },
            nested: true,
            capture: self.capture_for(&table, version),
            scope,
            ..WriteConfig::default()
        };
        let report = writer::write(self.conn, &table, &cfg, &source, self.progress)
            .await
            .map_err(|e| match e {
                WriteError::Db(e) => MigrateError::Db(e),
                WriteError::Source(e) => {
                    MigrateError::Source(format!("{e} ({label} of {meta}); version {version} was rolled back"))
                }
            })?;
        if report.inserted > 0 && !self.opts.dry_run {
            // Ids the file gave must not be generated again for later rows.
            lockgate_db::schema::catch_up_identity(self.conn, &table).await?;
        }
        step.rows_read = report.rows_read;
        step.inserted = report.inserted;
        step.updated = report.updated;
        step.unchanged = report.unchanged;
        step.deleted = report.deleted;
        step.failed = report.failed.len() as u64;
        let skipped = on_error == OnError::Skip;
        if skipped {
            step.skipped = step.failed;
        }
        let failures: Vec<RecordFailure> = report
            .failed
            .into_iter()
            .map(|error| RecordFailure {
                version: version.into(),
                table: table.name.to_string(),
                tenant: tenant.clone(),
                error,
                data: None,
                skipped,
            })
            .collect();
        let end = if !failures.is_empty() && !skipped {
            PartEnd::Failed
        } else {
            PartEnd::Done
        };
        Ok((step, failures, end))
    }
}

/// The rows `clear_table` reads (and records the images of) at once.
pub(super) const CLEAR_PAGE: usize = 5_000;

/// Deletes a table's rows (or a tenant's), capturing their images first.
pub(super) async fn clear_table(
    conn: &mut Conn,
    table: &Table,
    tenants: Option<(&String, &Vec<String>)>,
    capture: Option<Capture>,
) -> Result<u64, MigrateError> {
    let tenant_values: Vec<Value> = tenants
        .map(|(_, list)| list.iter().map(|t| Value::Text(t.clone())).collect())
        .unwrap_or_default();
    let tenant_column =
        tenants.map(|(col, _)| table.column(col).map(|c| c.name.clone()).unwrap_or_else(|| col.clone()));
    // The tenants' rows are picked by the database (`IN`), under the tenant column's
    // collation: on MariaDB's usual case-insensitive collations, clearing `t1` also
    // deletes `T1`'s rows. The images are read by the same filter as the delete, so
    // every row deleted has its image, whatever the collation decides.
    let filter = match &tenant_column {
        None => rows::Filter::All,
        Some(col) => rows::Filter::In(col, &tenant_values),
    };
    if let Some(capture) = capture {
        // The images of the rows about to go, a page at a time, in the order of the
        // key the images name rows by (the primary key, else a unique key of NOT NULL
        // columns: `writer::image_key`); a tenant's rows are picked by the page query.
        // Only one page is held: it is written to the ledger before the next is read.
        // A table with neither key never gets here: `capture_for` records it as
        // irreversible instead, since its rows cannot be told apart.
        let key = writer::image_key(table);
        let mut reader = lockgate_db::read::TableReader::by_key(table, None, &key, CLEAR_PAGE)?;
        if let Some(col) = &tenant_column {
            reader = reader.only(col, tenant_values.clone())?;
        }
        while let Some(batch) = reader.next_batch(conn).await? {
            let images: Vec<RowImage> = batch
                .rows
                .iter()
                .map(|r| RowImage::deleted(&table.name, &batch.columns, &r.values, &key))
                .collect();
            versions::write_images(conn, &capture.module, &capture.version, &images).await?;
        }
    }
    Ok(rows::delete_where(conn, table, filter).await?)
}

/// Reads the failing records back from their files, so the log shows their data.
/// At most this many per version, to bound memory.
pub(super) const MAX_FAILURE_DATA: usize = 1_000;

/// Gives each failing record (of the first [`MAX_FAILURE_DATA`]) its data, found by
/// its number in its file ([`RowError::record`]): its line is not enough, as the
/// records of a compact JSON array share one, and a key is not either, as a table
/// without one has none. Each file is read once, streaming, up to its last failing
/// record, and only the failing records are kept.
pub(super) fn attach_data(failures: &mut [RecordFailure], p: &Pending) {
    let mut wanted: HashMap<String, HashSet<u64>> = HashMap::new();
    for f in failures.iter().take(MAX_FAILURE_DATA) {
        if let (Some(file), Some(number)) = (&f.error.file, f.error.record) {
            wanted.entry(file.clone()).or_default().insert(number);
        }
    }
    let mut found: HashMap<(String, u64), serde_json::Value> = HashMap::new();
    for (file, numbers) in wanted {
        // The format the file's entry names, if any.
        let format = p
            .manifest
            .files
            .iter()
            .find(|e| {
                p.dir
                    .resolve(&e.file, "files")
                    .is_ok_and(|path| path == Path::new(&file))
            })
            .and_then(|e| e.format);
        let Ok(mut reader) = lockgate_bundle::open_records(Path::new(&file), format) else {
            continue;
        };
        let last = numbers.iter().copied().max().unwrap_or(0);
        let mut record = lockgate_bundle::Record::default();
        while reader.next_record(&mut record).unwrap_or(false) {
            if numbers.contains(&record.number) {
                let obj: serde_json::Map<String, serde_json::Value> = record
                    .fields
                    .iter()
                    .map(|(i, v)| {
                        let v = match v {
                            lockgate_bundle::RawValue::Null => serde_json::Value::Null,
                            lockgate_bundle::RawValue::Text(s) => serde_json::Value::String(s.clone()),
                            lockgate_bundle::RawValue::Json(j) => j.clone(),
                        };
                        (reader.columns()[*i].clone(), v)
                    })
                    .collect();
                found.insert((file.clone(), record.number), serde_json::Value::Object(obj));
            }
            if record.number >= last {
                break;
            }
        }
    }
    for f in failures.iter_mut() {
        if let (Some(file), Some(number)) = (&f.error.file, f.error.record) {
            f.data = found.get(&(file.clone(), number)).cloned();
        }
    }
}
