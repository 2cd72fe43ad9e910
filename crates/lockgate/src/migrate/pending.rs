//! The pending versions as read from the folder or zip: each version's manifest,
//! the models in force, its steps in meta.json's order, contexts and tenants.

use super::*;

/// The version folders, from a folder or an extracted zip (kept alive with it).
pub(crate) struct Source {
    pub base: BaseDir,
    pub(super) _extracted: Option<tempfile::TempDir>,
}

/// Opens the `db/` folder or the zip the options name.
pub(crate) fn open_source(dir: &Path, zip: Option<&Path>, limits: &ZipLimits) -> Result<Source, MigrateError> {
    match zip {
        Some(zip) => {
            let tmp = tempfile::tempdir().map_err(|e| {
                MigrateError::Input(format!("cannot create a temporary folder for {}: {e}", zip.display()))
            })?;
            lockgate_bundle::extract_zip(zip, tmp.path(), limits)?;
            let root = lockgate_bundle::find_base(tmp.path())?;
            Ok(Source {
                base: BaseDir::scan(&root)?,
                _extracted: Some(tmp),
            })
        }
        None => Ok(Source {
            base: BaseDir::scan(dir)?,
            _extracted: None,
        }),
    }
}

/// A version to apply, checked before anything is written.
pub(super) struct Pending {
    pub(super) dir: VersionDir,
    pub(super) manifest: Manifest,
    pub(super) checksum: String,
    /// Definitions from this version's `ddl/`.
    pub(super) ddl: Vec<ModelDef>,
    /// The definitions in force for it (`models/` overridden by its `ddl/`), each
    /// with what its base models give it.
    pub(super) models: Models,
    /// Those of [`Pending::models`] whose tables the version creates or keeps in
    /// line with their definitions (see [`Models::with_tables`]).
    pub(super) tables: Models,
    /// A baseline above the database's version: recorded as applied, with nothing of it
    /// run (its manifest and definitions are left empty here, so nothing is checked,
    /// locked or written for it).
    pub(super) record_only: bool,
}

/// Models by lower-cased table name; a later definition replaces an earlier one.
#[derive(Clone, Default)]
pub(super) struct Models(pub(super) HashMap<String, ModelDef>);

impl Models {
    pub(super) fn add(&mut self, m: ModelDef) {
        self.0.insert(m.table_name().to_lowercase(), m);
    }
    pub(super) fn get(&self, table: &str) -> Option<&ModelDef> {
        self.0.get(&table.to_lowercase())
    }

    /// The models that get a table of their own in a version: all of them but those
    /// that serve only as another model's `base`. In loopback such a model (a
    /// `BaseEntity` of common properties, say) has no table unless the app attaches
    /// it to a datasource; in a `db/` folder the version says so by naming it: a
    /// data file or `clearTables` entry of the version, or a definition in its own
    /// `ddl/`. Its properties reach the models built on it either way.
    pub(super) fn with_tables(&self, manifest: &Manifest, ddl: &[ModelDef]) -> Models {
        let named = |m: &ModelDef| {
            let is = |name: &str| name.eq_ignore_ascii_case(&m.name) || name.eq_ignore_ascii_case(m.table_name());
            let files = manifest
                .files
                .iter()
                .filter(|f| f.enabled && matches!(f.kind(), EntryKind::Data(_)))
                .filter_map(|f| f.model.as_deref());
            let cleared: &[String] = match &manifest.clear_tables {
                ClearTables::Tables(list) => list,
                _ => &[],
            };
            files.chain(cleared.iter().map(String::as_str)).any(is)
                || ddl.iter().any(|d| d.table_name().eq_ignore_ascii_case(m.table_name()))
        };
        let is_base = |m: &ModelDef| {
            self.0
                .values()
                .any(|other| other.base.as_deref().is_some_and(|b| b.eq_ignore_ascii_case(&m.name)))
        };
        Models(
            self.0
                .iter()
                .filter(|(_, m)| !is_base(m) || named(m))
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect(),
        )
    }

    /// These models with what their base models give each.
    pub(super) fn resolved(&self) -> Result<Models, MigrateError> {
        let all: Vec<&ModelDef> = self.0.values().collect();
        let mut out = Models::default();
        for m in self.0.values() {
            out.add(models::with_bases(m, &all).map_err(MigrateError::Input)?);
        }
        Ok(out)
    }
}

pub(super) fn read_model(path: &Path) -> Result<ModelDef, MigrateError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MigrateError::Input(format!("{}: {e}: check that the file is readable", path.display())))?;
    Ok(lockgate_bundle::parse_model(path, &text)?)
}

pub(super) fn write_mode(m: FileMode) -> WriteMode {
    match m {
        FileMode::Insert => WriteMode::Insert,
        FileMode::Upsert => WriteMode::Upsert,
        FileMode::Update => WriteMode::Update,
        FileMode::InsertMissing => WriteMode::InsertMissing,
        FileMode::Sync => WriteMode::Sync,
    }
}

pub(super) fn policy(spec: Option<OnErrorSpec>) -> Option<OnError> {
    spec.map(|s| match s {
        OnErrorSpec::Rollback => OnError::Rollback,
        OnErrorSpec::Skip => OnError::Skip,
        OnErrorSpec::Stop => OnError::Stop,
    })
}

/// One step of a version, in order.
#[derive(Clone)]
pub(super) enum Step {
    Clear,
    Script {
        file: String,
        label: String,
        kind: ScriptKind,
        ctx_id: Option<String>,
    },
    Data(FileEntry),
}

pub(super) fn steps(m: &Manifest) -> Vec<Step> {
    let mut out = Vec::new();
    if !matches!(m.clear_tables, ClearTables::None) {
        out.push(Step::Clear);
    }
    for (i, s) in m.scripts.before.iter().enumerate() {
        out.push(Step::Script {
            file: s.clone(),
            label: format!("scripts.before[{i}]"),
            kind: ScriptKind::of_file(s),
            ctx_id: None,
        });
    }
    for f in &m.files {
        if !f.enabled {
            continue;
        }
        match f.kind() {
            EntryKind::Script(kind) => out.push(Step::Script {
                file: f.file.clone(),
                label: format!("files[{}]", f.index),
                kind,
                ctx_id: f.ctx_id.clone(),
            }),
            EntryKind::Data(_) => out.push(Step::Data(f.clone())),
        }
    }
    for (i, s) in m.scripts.after.iter().enumerate() {
        out.push(Step::Script {
            file: s.clone(),
            label: format!("scripts.after[{i}]"),
            kind: ScriptKind::of_file(s),
            ctx_id: None,
        });
    }
    out
}

pub(super) fn is_process(step: &Step) -> bool {
    matches!(step, Step::Script { kind, .. } if *kind != ScriptKind::Sql)
}

/// The context object of a `ctxId` (already checked against `contexts`).
pub(super) fn context(m: &Manifest, ctx_id: Option<&str>) -> serde_json::Value {
    ctx_id
        .and_then(|c| m.contexts.get(c))
        .map_or_else(|| serde_json::json!({}), |o| serde_json::Value::Object(o.clone()))
}

/// The tenant of a `ctxId`: its context's `tenantId`, else the id itself.
pub(super) fn tenant_of(m: &Manifest, ctx_id: Option<&str>) -> Option<String> {
    let id = ctx_id?;
    Some(
        m.contexts
            .get(id)
            .and_then(|c| c.get("tenantId"))
            .and_then(|t| t.as_str())
            .unwrap_or(id)
            .to_string(),
    )
}

/// The version status in the ledger, by version text.
pub(super) fn by_version(applied: &[AppliedVersion]) -> HashMap<String, &AppliedVersion> {
    applied.iter().map(|a| (a.version.clone(), a)).collect()
}
