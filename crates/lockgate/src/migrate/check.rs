//! Everything checked before anything is written: the pending versions' manifests,
//! files, contexts, tables or definitions and keys; the schema changes every version
//! will make, computed before the run's first DDL; the tables the run will write.

use super::*;

/// The tables the pending versions write (their data files' and `clearTables`'),
/// each named as its lock names it: the table's own name, or the one its definition
/// will create.
pub(super) async fn tables_written(
    conn: &mut Conn,
    pending: &[Pending],
    shared: &Models,
) -> Result<Vec<lockgate_core::TableName>, MigrateError> {
    let mut models = shared.clone();
    let mut out = Vec::new();
    for p in pending {
        for m in &p.ddl {
            models.add(m.clone());
        }
        let mut names: Vec<String> = p
            .manifest
            .files
            .iter()
            .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
            .filter_map(|f| f.model.clone())
            .collect();
        if let ClearTables::Tables(list) = &p.manifest.clear_tables {
            names.extend(list.iter().cloned());
        }
        for name in names {
            let table = match conn.lookup_table(&name).await? {
                Some(t) => t.name,
                None => lockgate_core::TableName::parse(models.get(&name).map_or(name.as_str(), |m| m.table_name())),
            };
            if !out.contains(&table) {
                out.push(table);
            }
        }
    }
    Ok(out)
}

/// Checks every pending version before anything is written: contexts, files,
/// tables (existing or defined), clearTables, keys for updates.
pub(super) async fn check_pending(
    conn: &mut Conn,
    pending: &[Pending],
    shared: &Models,
    opts: &MigrateOptions,
) -> Result<(), MigrateError> {
    let mut models = shared.clone();
    // MariaDB: the columns of the tables that earlier versions of this run create or
    // change, as those versions will leave them (by lower-cased name). A later
    // version's changes are planned against the database as it is now, so they do
    // not say what the earlier ones made.
    let mut planned: HashMap<String, Vec<String>> = HashMap::new();
    for p in pending {
        for m in &p.ddl {
            models.add(m.clone());
        }
        let meta = p.manifest.path.display().to_string();
        // Every definition in force is turned into its changes (and their SQL) now,
        // before the first DDL of the run.
        let tenant_column = p
            .manifest
            .tenant_column
            .clone()
            .unwrap_or_else(|| opts.tenant_column.clone());
        let changes = planned_changes(conn, &p.tables, &tenant_column).await?;
        if conn.engine() == Engine::Mysql {
            // The columns of the tables the changes concern and of those the version's
            // files load into, before its changes: as earlier versions of the run
            // leave them, else as they are.
            let mut names: Vec<String> = changes.iter().map(|(_, c)| change_table(c)).collect();
            names.extend(
                p.manifest
                    .files
                    .iter()
                    .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
                    .filter_map(|f| f.model.clone()),
            );
            let mut columns: HashMap<String, Vec<String>> = HashMap::new();
            for name in names {
                let lower = name.to_lowercase();
                if columns.contains_key(&lower) {
                    continue;
                }
                if let Some(c) = planned.get(&lower) {
                    columns.insert(lower, c.clone());
                } else if let Some(t) = conn.lookup_table(&name).await? {
                    columns.insert(lower, t.columns.iter().map(|c| c.name.clone()).collect());
                }
            }
            // After the version's changes.
            for (_, c) in &changes {
                let table = change_table(c).to_lowercase();
                match c {
                    SchemaChange::CreateTable(t) => {
                        columns.insert(table, t.columns.iter().map(|c| c.name.clone()).collect());
                    }
                    SchemaChange::AddColumn { column, .. } => {
                        let list = columns.entry(table).or_default();
                        if !list.iter().any(|c| c.eq_ignore_ascii_case(&column.name)) {
                            list.push(column.name.clone());
                        }
                    }
                    SchemaChange::DropColumn { column, .. } => {
                        columns
                            .entry(table)
                            .or_default()
                            .retain(|c| !c.eq_ignore_ascii_case(column));
                    }
                    _ => {}
                }
            }
            if !changes.is_empty() {
                check_files_before_ddl(p, &columns, &tenant_column)?;
            }
            for (_, c) in &changes {
                let table = change_table(c).to_lowercase();
                if let Some(list) = columns.get(&table) {
                    planned.insert(table, list.clone());
                }
            }
        }
        for m in &p.ddl {
            if m.table_name().to_ascii_lowercase().starts_with("lockgate_") {
                return Err(MigrateError::Input(format!(
                    "{}: {} is one of Lockgate's own tables (its ledger): a definition cannot change it",
                    m.path.display(),
                    m.table_name()
                )));
            }
        }
        if let ClearTables::Tables(list) = &p.manifest.clear_tables {
            for t in list {
                if t.to_ascii_lowercase().starts_with("lockgate_") {
                    return Err(MigrateError::Input(format!(
                        "{meta}: clearTables names {t}, one of Lockgate's own tables (its ledger): a migration cannot clear it"
                    )));
                }
                if !known(conn, &models, t).await? {
                    return Err(MigrateError::Input(format!(
                        "{meta}: clearTables names table {t:?}, which does not exist and has no definition: fix the name"
                    )));
                }
            }
        }
        for step in steps(&p.manifest) {
            match step {
                Step::Script { file, label, kind, .. } => {
                    let path = p.dir.resolve(&file, &label)?;
                    if kind == ScriptKind::Sql {
                        let sql = std::fs::read_to_string(&path)
                            .map_err(|e| MigrateError::Input(format!("{}: {e}", path.display())))?;
                        if let Some(why) = lockgate_db::sqltext::transaction_breaker(conn.engine(), &sql) {
                            return Err(MigrateError::Input(format!(
                                "{meta}: {label}: {}: {why}",
                                path.display()
                            )));
                        }
                    }
                }
                Step::Data(f) => {
                    let label = format!("files[{}]", f.index);
                    let path = p.dir.resolve(&f.file, &label)?;
                    let model = f.model.clone().unwrap_or_default();
                    if model.to_ascii_lowercase().starts_with("lockgate_") {
                        return Err(MigrateError::Input(format!(
                            "{meta}: {label}: {model} is one of Lockgate's own tables (its ledger): a migration cannot write it"
                        )));
                    }
                    if !known(conn, &models, &model).await? {
                        return Err(MigrateError::Input(format!(
                            "{meta}: {label}: table {model:?} does not exist and no definition (models/ or ddl/) creates it: create the table or add a definition"
                        )));
                    }
                    // Opening checks the file's start (a CSV header, a JSON array or
                    // object). A record without its key is that record's error when
                    // updating (as in oe-migration), found when the file is written.
                    lockgate_bundle::open_records(&path, f.format).map_err(|e| MigrateError::Input(e.to_string()))?;
                }
                Step::Clear => {}
            }
        }
    }
    Ok(())
}

/// The schema changes the definitions in force ask of the database as it is now, each
/// with the definition file it comes from. Every change's SQL is spelled here, so
/// that a definition the engine cannot take (a default it cannot declare, a
/// generated column it cannot add) is an error naming the file before any DDL runs.
pub(super) async fn planned_changes(
    conn: &mut Conn,
    models: &Models,
    tenant_column: &str,
) -> Result<Vec<(PathBuf, SchemaChange)>, MigrateError> {
    let engine = conn.engine();
    let mut defs: Vec<&ModelDef> = models.0.values().collect();
    defs.sort_by(|a, b| a.table_name().cmp(b.table_name()));
    let mut out = Vec::new();
    for m in defs {
        let existing = conn.lookup_table(m.table_name()).await?;
        let changes = models::changes(m, existing.as_ref(), tenant_column, engine).map_err(MigrateError::Input)?;
        for c in changes {
            if let Err(e) = lockgate_db::schema::change_sql(engine, &c) {
                return Err(MigrateError::Input(format!("{}: {e}", m.path.display())));
            }
            // A required column without a default cannot be added to a table with rows.
            if let SchemaChange::AddColumn { table, column } = &c {
                if !column.nullable && column.default.is_none() {
                    let n = lockgate_db::schema::row_count(conn, table).await?;
                    if n > 0 {
                        return Err(MigrateError::Input(format!(
                            "{}: required property {:?} cannot be added to table {table}, which has {n} rows: give it a default (existing rows get it)",
                            m.path.display(),
                            column.name
                        )));
                    }
                }
            }
            out.push((m.path.clone(), c));
        }
    }
    Ok(out)
}

/// MariaDB commits each schema change at once, so before a version's first one every
/// data file it loads (into any table, changed or not) is read through: a file that
/// cannot be read, or gives a column the table will not have, stops the run while
/// nothing has changed. (On PostgreSQL and SQLite the version's rollback undoes its
/// DDL too.) `columns` are the tables' columns once the version's changes are made,
/// by lower-cased name: a table that exists, or that this version or an earlier one
/// of the run creates.
pub(super) fn check_files_before_ddl(
    p: &Pending,
    columns: &HashMap<String, Vec<String>>,
    tenant_column: &str,
) -> Result<(), MigrateError> {
    let meta = p.manifest.path.display().to_string();
    for f in p.manifest.files.iter().filter(|f| f.enabled) {
        let EntryKind::Data(_) = f.kind() else { continue };
        let model = f.model.clone().unwrap_or_default();
        // A file into a table the version does not change is read through all the
        // same: its records fail after the DDL as surely as a changed table's would.
        // A table nothing creates is an error of its own (see `check_pending`).
        let columns = columns.get(&model.to_lowercase());
        let label = format!("files[{}]", f.index);
        let path = p.dir.resolve(&f.file, &label)?;
        if let Some(columns) = columns {
            for k in &f.key {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(k)) {
                    return Err(MigrateError::Input(format!(
                        "{meta}: {label}: key {k:?} is not a column of table {model}: fix the key"
                    )));
                }
            }
        }
        let mut reader =
            lockgate_bundle::open_records(&path, f.format).map_err(|e| MigrateError::Input(e.to_string()))?;
        // Names are checked as they appear: a CSV header's before the first record
        // (line 1), a JSON key with the record that first gives it.
        let check = |names: &[String], line: u64| -> Result<(), MigrateError> {
            let Some(columns) = columns else { return Ok(()) };
            for name in names {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(name)) && !name.eq_ignore_ascii_case(tenant_column) {
                    return Err(MigrateError::Input(format!(
                        "{}:{line}: column {name:?} is not a column of table {model} (its columns will be: {}): rename it in the file or drop it ({label} of {meta})",
                        path.display(),
                        columns.join(", ")
                    )));
                }
            }
            Ok(())
        };
        check(reader.columns(), 1)?;
        let mut checked = reader.columns().len();
        let mut record = lockgate_bundle::Record::default();
        while reader
            .next_record(&mut record)
            .map_err(|e| MigrateError::Input(format!("{e} ({label} of {meta})")))?
        {
            if reader.columns().len() > checked {
                check(&reader.columns()[checked..], record.line)?;
                checked = reader.columns().len();
            }
        }
    }
    Ok(())
}

/// Whether a table exists or a definition in force will create it.
pub(super) async fn known(conn: &mut Conn, models: &Models, name: &str) -> Result<bool, MigrateError> {
    Ok(models.get(name).is_some() || conn.lookup_table(name).await?.is_some())
}

/// The database URL a script gets: a SQLite path made absolute, since scripts run
/// in their version folder.
/// The table a schema change concerns.
pub(super) fn change_table(c: &SchemaChange) -> String {
    match c {
        SchemaChange::CreateTable(t) => t.name.name.clone(),
        SchemaChange::AddColumn { table, .. }
        | SchemaChange::AlterColumn { table, .. }
        | SchemaChange::DropColumn { table, .. }
        | SchemaChange::CreateIndex { table, .. }
        | SchemaChange::AddPrimaryKey { table, .. }
        | SchemaChange::AddForeignKey { table, .. } => table.name.clone(),
    }
}

pub(super) fn count_records(path: &Path, entry: &FileEntry) -> Result<u64, MigrateError> {
    let mut reader =
        lockgate_bundle::open_records(path, entry.format).map_err(|e| MigrateError::Input(e.to_string()))?;
    let mut record = lockgate_bundle::Record::default();
    let mut n = 0;
    while reader
        .next_record(&mut record)
        .map_err(|e| MigrateError::Source(e.to_string()))?
    {
        n += 1;
    }
    Ok(n)
}
