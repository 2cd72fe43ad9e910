//! `meta.json`, a version folder's manifest: the oe-migration format (`clearTables`,
//! `contexts`, `files`) plus Lockgate's optional extensions (`scripts`, `onError`,
//! `tenantColumn`, `baseline`, and per entry `mode`, `format`, `onError`).
//!
//! [`parse_manifest`] reads it with every error placed (`meta.json:3:14: …`, and `files[N]`
//! for an entry); [`Manifest::to_json_pretty`] writes it back so that `lockgate dump` output
//! reads back identically. Whether the files exist is not checked here: see
//! [`VersionDir::resolve`](crate::VersionDir::resolve).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::format::{detect, Format};
use crate::jsondoc::{check_object_text, describe, quote, refuse_scalars, strip_bom, Checked, NUMBER_TOKEN};
use crate::version::Version;
use crate::BundleError;

/// A version's `meta.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The `meta.json` file it was read from (used in messages).
    pub path: PathBuf,
    /// `"clearTables"`: which tables to empty before loading.
    pub clear_tables: ClearTables,
    /// `"contexts"`: each context's key (`"/default"`) and its object (`id`, `tenantId`,
    /// `remoteUser`, …), kept as given.
    pub contexts: BTreeMap<String, Map<String, Value>>,
    /// `"files"`, in order: data files to load and scripts to run. Absent: nothing.
    pub files: Vec<FileEntry>,
    /// Extension `"scripts"`: scripts to run before and after the files.
    pub scripts: ScriptLists,
    /// Extension `"onError"`: the version's error policy, unless an entry or the command
    /// line says otherwise.
    pub on_error: Option<OnErrorSpec>,
    /// Extension `"tenantColumn"`: the column that holds a context's tenant.
    pub tenant_column: Option<String>,
    /// Extension `"baseline"`: the folder is a baseline (`lockgate baseline`), the full
    /// definitions and data of the managed tables at its version, from which a new
    /// deployment starts. `None`: an ordinary version.
    pub baseline: Option<Baseline>,
    /// Unknown keys (top level, in an entry or in `scripts`), each as a message naming the
    /// file and the key: probably typos, to show the user. They are otherwise ignored.
    pub warnings: Vec<String>,
}

/// Extension `"baseline"`: `true`, or an object that also says what the baseline stands
/// for (`lockgate baseline` writes the object). `false` is an ordinary version.
///
/// A database with no version of the module starts at the newest baseline: the versions
/// older than it are skipped. A database at or past it skips it like any applied version;
/// one below it runs the older versions and records it without loading its data, when
/// that is safe (see ARCHITECTURE.md, Migrations).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baseline {
    /// `"covers"`: the versions the folder held up to the baseline's own when it was
    /// written (in order). A database below the baseline must find each of them above its
    /// own version in the folder, or it would miss their changes. Empty: not said.
    pub covers: Vec<Version>,
    /// `"replaces"`: the checksum of the ordinary version folder of the same version that
    /// the baseline took the place of, as the databases that applied it recorded it: for
    /// them the baseline is that version, not drift.
    pub replaces: Option<String>,
}

/// `"clearTables"`: `false` (or absent), `true`, or a list of tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClearTables {
    /// Clear nothing (`false`, or no `clearTables`).
    #[default]
    None,
    /// `true`: clear every table the version's data entries load.
    All,
    /// Clear these tables (model names).
    Tables(Vec<String>),
}

/// Extension `"scripts"`: paths relative to the version folder.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ScriptLists {
    /// Run before the version's files, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Run after the version's files, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

impl ScriptLists {
    /// Whether there is no script at all.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

/// One entry of `"files"`: a data file to load or a script to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The entry's position in `"files"`, for messages (`files[index]`).
    pub index: usize,
    /// `"model"`: the model (table) a data file loads into. Always given for a data file.
    pub model: Option<String>,
    /// `"file"`: the path, relative to the version folder.
    pub file: String,
    /// `"ctxId"`: the context (a key of `contexts`) to load or run in.
    pub ctx_id: Option<String>,
    /// `"enabled"`: `false` skips the entry. Default `true`.
    pub enabled: bool,
    /// `"skipValidation"`: oe-Cloud's flag to skip the application's validations (what it
    /// means for a load is the migrate engine's choice).
    pub skip_validation: bool,
    /// `"updateAttributes"`: update the given fields of existing rows instead of an upsert.
    pub update_attributes: bool,
    /// `"key"`: the columns that identify a row (`"a"`, `"a,b"` or `["a", "b"]`). Empty: the
    /// table's primary key.
    pub key: Vec<String>,
    /// Extension `"mode"`: the write mode.
    pub mode: Option<FileMode>,
    /// Extension `"format"`: the data format, when the file name does not tell it.
    pub format: Option<Format>,
    /// Extension `"onError"`: the error policy for this entry.
    pub on_error: Option<OnErrorSpec>,
}

/// What an entry is: data to load or a script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A data file, with the entry's `format` or else the one its name tells. `None` only
    /// for an entry built by hand with a model and a name that tells no format
    /// ([`parse_manifest`] refuses those).
    Data(Option<Format>),
    /// A script.
    Script(ScriptKind),
}

/// How a script runs, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// `.sql`: SQL run on the target database.
    Sql,
    /// `.js`, `.mjs`, `.cjs`: run with Node.js.
    Node,
    /// `.py`: run with Python.
    Python,
    /// `.sh`: run with a POSIX shell.
    Shell,
    /// Anything else: run as an executable.
    Executable,
}

impl ScriptKind {
    /// How a script file runs, from its name: the one rule for `scripts.before`/`after`
    /// and for `files` entries that are scripts (`.sql`; `.js`, `.mjs`, `.cjs` under
    /// Node.js; `.py`; `.sh`; anything else as an executable).
    pub fn of_file(file: &str) -> ScriptKind {
        ScriptKind::of(file).unwrap_or(ScriptKind::Executable)
    }

    /// The script kind of a file name, `None` for a name without a script extension.
    fn of(file: &str) -> Option<ScriptKind> {
        let extension = file.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "sql" => Some(ScriptKind::Sql),
            "js" | "mjs" | "cjs" => Some(ScriptKind::Node),
            "py" => Some(ScriptKind::Python),
            "sh" => Some(ScriptKind::Shell),
            _ => None,
        }
    }
}

/// How a data file's rows are written; the same vocabulary as `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileMode {
    /// Insert every row; an existing key is an error.
    Insert,
    /// Update rows whose key exists, insert the others (oe-migration's default).
    Upsert,
    /// Update the given fields of rows whose key exists (oe-migration's `updateAttributes`).
    Update,
    /// Insert rows whose key does not exist, leave the others alone.
    InsertMissing,
    /// Upsert, then delete the table's rows whose key is not in the file.
    Sync,
}

impl FileMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [FileMode; 5] = [
        FileMode::Insert,
        FileMode::Upsert,
        FileMode::Update,
        FileMode::InsertMissing,
        FileMode::Sync,
    ];

    /// The mode's name as written in `meta.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FileMode::Insert => "insert",
            FileMode::Upsert => "upsert",
            FileMode::Update => "update",
            FileMode::InsertMissing => "insert-missing",
            FileMode::Sync => "sync",
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FileMode {
    type Err = String;

    /// Parses a mode name (exact, lower-case); the error says which names are valid.
    fn from_str(name: &str) -> Result<FileMode, String> {
        FileMode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| {
                format!(
                    "{} is not a write mode: use insert, upsert, update, insert-missing or sync",
                    quote(name)
                )
            })
    }
}

/// An error policy; the same vocabulary as `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnErrorSpec {
    /// Report every error and keep nothing (the default).
    Rollback,
    /// Keep the good rows and report the bad ones as warnings.
    Skip,
    /// Stop at the first error and keep nothing.
    Stop,
}

impl OnErrorSpec {
    /// The policy's name as written in `meta.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OnErrorSpec::Rollback => "rollback",
            OnErrorSpec::Skip => "skip",
            OnErrorSpec::Stop => "stop",
        }
    }
}

impl fmt::Display for OnErrorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OnErrorSpec {
    type Err = String;

    /// Parses a policy name (exact, lower-case); the error says which names are valid.
    fn from_str(name: &str) -> Result<OnErrorSpec, String> {
        [OnErrorSpec::Rollback, OnErrorSpec::Skip, OnErrorSpec::Stop]
            .into_iter()
            .find(|policy| policy.name() == name)
            .ok_or_else(|| format!("{} is not an error policy: use rollback, skip or stop", quote(name)))
    }
}

impl FileEntry {
    /// A data entry for `model` from `file`, with every option at its default.
    pub fn new(index: usize, model: Option<String>, file: impl Into<String>) -> FileEntry {
        FileEntry {
            index,
            model,
            file: file.into(),
            ctx_id: None,
            enabled: true,
            skip_validation: false,
            update_attributes: false,
            key: Vec::new(),
            mode: None,
            format: None,
            on_error: None,
        }
    }

    /// Whether the entry loads data or runs a script.
    ///
    /// Data: a `format` is given, or the name ends in `.json`, `.ndjson`, `.jsonl` or `.csv`
    /// (optionally followed by `.gz` or `.zst`). Otherwise a script when the name ends in
    /// `.sql`, `.js`, `.py` or `.sh` (oe-migration ignores `model` for a script, and so does
    /// this). Otherwise data when a `model` is given, else an executable.
    pub fn kind(&self) -> EntryKind {
        if let Some(format) = self.format {
            return EntryKind::Data(Some(format));
        }
        if let (Some(format), _) = detect(Path::new(&self.file)) {
            return EntryKind::Data(Some(format));
        }
        if let Some(script) = ScriptKind::of(&self.file) {
            return EntryKind::Script(script);
        }
        if self.model.is_some() {
            return EntryKind::Data(None);
        }
        EntryKind::Script(ScriptKind::Executable)
    }

    /// The write mode: `mode`, else `update` with `updateAttributes`, else `upsert`.
    pub fn effective_mode(&self) -> FileMode {
        match (self.mode, self.update_attributes) {
            (Some(mode), _) => mode,
            (None, true) => FileMode::Update,
            (None, false) => FileMode::Upsert,
        }
    }
}

/// Parses `meta.json`'s `text`; `path` names it in messages and in [`Manifest::path`].
///
/// Errors name the file, with the line and column (just after the offending value) where
/// `serde_json` knows them, and `files[N]` for an entry: not JSON or not an object, `files`
/// not an array, an entry without `file`, a data entry without `model` or whose format
/// cannot be told, an unknown `mode`, `format` or `onError`, `mode` contradicting
/// `"updateAttributes": true`, a bad `clearTables` or `contexts`, an empty `key`, a key
/// given twice in one object, and a `ctxId` that is none of the contexts. Unknown keys are
/// not errors: they are listed in [`Manifest::warnings`].
pub fn parse_manifest(path: &Path, text: &str) -> Result<Manifest, BundleError> {
    let text = strip_bom(text);
    check_object_text(
        path,
        text,
        "is empty: `{}` is the smallest valid meta.json",
        r#"meta.json holds one object such as {"contexts": {…}, "files": […]}"#,
    )?;
    let json_error = |error: serde_json::Error| BundleError::from_json(path, &error);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut manifest = ManifestVisitor { path }
        .deserialize(&mut deserializer)
        .map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    for entry in &manifest.files {
        let Some(ctx_id) = &entry.ctx_id else { continue };
        if manifest.contexts.contains_key(ctx_id) {
            continue;
        }
        let message = if manifest.contexts.is_empty() {
            format!(
                r#"files[{}]: ctxId {} names no context: "contexts" is empty or missing: add it to "contexts""#,
                entry.index,
                quote(ctx_id)
            )
        } else {
            let known: Vec<&str> = manifest.contexts.keys().map(String::as_str).collect();
            format!(
                "files[{}]: ctxId {} is not one of the contexts: {}",
                entry.index,
                quote(ctx_id),
                known.join(", ")
            )
        };
        return Err(BundleError::invalid(path, message));
    }
    // Unknown keys were noted as they came; report them in a stable order.
    manifest.warnings.sort();
    Ok(manifest)
}

/// Reads the top-level object.
struct ManifestVisitor<'a> {
    path: &'a Path,
}

impl<'de> DeserializeSeed<'de> for ManifestVisitor<'_> {
    type Value = Manifest;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Manifest, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ManifestVisitor<'_> {
    type Value = Manifest;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Manifest, A::Error> {
        let mut manifest = Manifest::empty(self.path);
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{} is given twice: keep one", quote(&key))));
            }
            match key.as_str() {
                "clearTables" => manifest.clear_tables = map.next_value_seed(Checked(|value| clear_tables(&value)))?,
                "contexts" => manifest.contexts = map.next_value_seed(Checked(contexts))?,
                "files" => {
                    manifest.files = map.next_value_seed(FilesVisitor {
                        path: self.path,
                        warnings: &mut manifest.warnings,
                    })?
                }
                "scripts" => {
                    let warnings = &mut manifest.warnings;
                    manifest.scripts = map.next_value_seed(Checked(|value| scripts(self.path, &value, warnings)))?
                }
                "onError" => manifest.on_error = Some(map.next_value_seed(Checked(|value| policy(&value, "onError")))?),
                "tenantColumn" => {
                    manifest.tenant_column =
                        Some(map.next_value_seed(Checked(|value| non_empty_string(&value, "tenantColumn")))?)
                }
                "baseline" => {
                    let warnings = &mut manifest.warnings;
                    manifest.baseline = map.next_value_seed(Checked(|value| baseline(self.path, &value, warnings)))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    manifest.warnings.push(unknown_key(self.path, "", &key));
                }
            }
        }
        Ok(manifest)
    }
}

/// The warning for an unknown key; `place` is empty or ends with ": ".
fn unknown_key(path: &Path, place: &str, key: &str) -> String {
    format!(
        "{}: {place}unknown key {} is ignored: check its spelling",
        path.display(),
        quote(key)
    )
}

fn clear_tables(value: &Value) -> Result<ClearTables, String> {
    let refuse = || {
        format!(
            r#""clearTables" is {}: use true, false or an array of table names"#,
            describe(value)
        )
    };
    match value {
        Value::Bool(false) => Ok(ClearTables::None),
        Value::Bool(true) => Ok(ClearTables::All),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(table) if !table.is_empty() => Ok(table.clone()),
                Value::String(_) => {
                    Err(r#""clearTables" holds an empty table name: name the tables to clear"#.to_owned())
                }
                other => Err(format!(
                    r#""clearTables" holds {}: use true, false or an array of table names"#,
                    describe(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ClearTables::Tables),
        _ => Err(refuse()),
    }
}

fn contexts(value: Value) -> Result<BTreeMap<String, Map<String, Value>>, String> {
    let Value::Object(contexts) = value else {
        return Err(format!(
            r#""contexts" is {}: use an object of contexts such as {{"/default": {{"tenantId": "/default", "remoteUser": "admin"}}}}"#,
            describe(&value)
        ));
    };
    contexts
        .into_iter()
        .map(|(key, context)| match context {
            Value::Object(context) => Ok((key, context)),
            other => Err(format!(
                r#"context {} is {}: each context is an object such as {{"tenantId": "/default", "remoteUser": "admin"}}"#,
                quote(&key),
                describe(&other)
            )),
        })
        .collect()
}

fn scripts(path: &Path, value: &Value, warnings: &mut Vec<String>) -> Result<ScriptLists, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            r#""scripts" is {}: use an object such as {{"before": ["a.sql"], "after": ["b.js"]}}"#,
            describe(value)
        ));
    };
    let mut lists = ScriptLists::default();
    for (key, value) in object {
        let list = match key.as_str() {
            "before" => &mut lists.before,
            "after" => &mut lists.after,
            _ => {
                warnings.push(unknown_key(path, "scripts: ", key));
                continue;
            }
        };
        let refuse = || format!(r#""scripts.{key}" must be an array of script paths, relative to the version folder"#);
        let Value::Array(items) = value else {
            return Err(refuse());
        };
        for item in items {
            match item {
                Value::String(script) if !script.is_empty() => list.push(script.clone()),
                _ => return Err(refuse()),
            }
        }
    }
    Ok(lists)
}

fn baseline(path: &Path, value: &Value, warnings: &mut Vec<String>) -> Result<Option<Baseline>, String> {
    let shape = r#"use true, or an object such as {"covers": ["1.0.0", "1.1.0"], "replaces": "<checksum>"}"#;
    let object = match value {
        Value::Bool(false) => return Ok(None),
        Value::Bool(true) => return Ok(Some(Baseline::default())),
        Value::Object(object) => object,
        other => return Err(format!(r#""baseline" is {}: {shape}"#, describe(other))),
    };
    let mut spec = Baseline::default();
    for (key, value) in object {
        match key.as_str() {
            "covers" => {
                let refuse =
                    || r#""baseline.covers" must be an array of versions such as ["1.0.0", "1.1.0"]"#.to_owned();
                let Value::Array(items) = value else {
                    return Err(refuse());
                };
                for item in items {
                    let Value::String(text) = item else {
                        return Err(refuse());
                    };
                    let version: Version = text.parse().map_err(|_| {
                        format!(
                            r#""baseline.covers" holds {}, which is not a version: versions are named x.y.z"#,
                            quote(text)
                        )
                    })?;
                    spec.covers.push(version);
                }
                spec.covers.sort();
                spec.covers.dedup();
            }
            "replaces" => spec.replaces = Some(non_empty_string(value, "baseline.replaces")?),
            _ => warnings.push(unknown_key(path, "baseline: ", key)),
        }
    }
    Ok(Some(spec))
}

fn policy(value: &Value, key: &str) -> Result<OnErrorSpec, String> {
    match value {
        Value::String(name) => name.parse().map_err(|error| format!("{}: {error}", quote(key))),
        other => Err(format!(
            "{} is {}: use \"rollback\", \"skip\" or \"stop\"",
            quote(key),
            describe(other)
        )),
    }
}

fn non_empty_string(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(text) if !text.is_empty() => Ok(text.clone()),
        Value::String(_) => Err(format!("{} is empty: give a value or leave the key out", quote(key))),
        other => Err(format!("{} is {}: use a string", quote(key), describe(other))),
    }
}

fn boolean(value: &Value, key: &str) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(format!("{} is {}: use true or false", quote(key), describe(other))),
    }
}

/// `"key"`: a column, a comma-separated list of columns, or an array of columns.
fn key_columns(value: &Value) -> Result<Vec<String>, String> {
    let columns: Vec<String> = match value {
        Value::String(text) => text.split(',').map(|column| column.trim().to_owned()).collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(column) => Ok(column.trim().to_owned()),
                other => Err(format!(
                    r#""key" holds {}: use column names, as "a", "a,b" or ["a", "b"]"#,
                    describe(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                r#""key" is {}: use column names, as "a", "a,b" or ["a", "b"]"#,
                describe(other)
            ))
        }
    };
    if columns.is_empty() || columns.iter().any(String::is_empty) {
        return Err(r#""key" is empty or has an empty column name: name the key columns, as "a", "a,b" or ["a", "b"], or leave "key" out to use the primary key"#.to_owned());
    }
    Ok(columns)
}

/// Reads `"files"`: an array whose elements are read by [`EntryVisitor`].
struct FilesVisitor<'a> {
    path: &'a Path,
    warnings: &'a mut Vec<String>,
}

impl FilesVisitor<'_> {
    fn refuse(&self, what: &str) -> String {
        format!(
            r#""files" is {what}: use an array of entries such as {{"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}}"#
        )
    }
}

impl<'de> DeserializeSeed<'de> for FilesVisitor<'_> {
    type Value = Vec<FileEntry>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<FileEntry>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FilesVisitor<'_> {
    type Value = Vec<FileEntry>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of file entries")
    }

    refuse_scalars!();

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<FileEntry>, A::Error> {
        let what = match map.next_key::<String>()? {
            Some(key) if key == NUMBER_TOKEN => "a number",
            _ => "an object",
        };
        Err(de::Error::custom(self.refuse(what)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<FileEntry>, A::Error> {
        let mut entries = Vec::new();
        loop {
            let visitor = EntryVisitor {
                path: self.path,
                index: entries.len(),
                warnings: &mut *self.warnings,
            };
            match seq.next_element_seed(visitor)? {
                Some(entry) => entries.push(entry),
                None => return Ok(entries),
            }
        }
    }
}

/// Reads one element of `"files"`; every message starts with `files[index]: `.
struct EntryVisitor<'a> {
    path: &'a Path,
    index: usize,
    warnings: &'a mut Vec<String>,
}

impl EntryVisitor<'_> {
    fn refuse(&self, what: &str) -> String {
        format!(
            r#"files[{}] is {what}: each entry is an object such as {{"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}}"#,
            self.index
        )
    }

    fn error<E: de::Error>(&self, message: String) -> E {
        E::custom(format!("files[{}]: {message}", self.index))
    }

    /// Reads one key's value into `entry`.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A, entry: &mut FileEntry) -> Result<(), A::Error> {
        if !matches!(
            key,
            "model"
                | "file"
                | "ctxId"
                | "enabled"
                | "skipValidation"
                | "updateAttributes"
                | "key"
                | "mode"
                | "format"
                | "onError"
        ) {
            map.next_value::<IgnoredAny>()?;
            let place = format!("files[{}]: ", self.index);
            self.warnings.push(unknown_key(self.path, &place, key));
            return Ok(());
        }
        let index = self.index;
        map.next_value_seed(Checked(|value| {
            apply(key, &value, entry).map_err(|message| format!("files[{index}]: {message}"))
        }))
    }
}

/// Sets the entry's field for `key` (one of the known keys) from its value.
fn apply(key: &str, value: &Value, entry: &mut FileEntry) -> Result<(), String> {
    match key {
        "model" => non_empty_string(value, key).map(|model| entry.model = Some(model)),
        "file" => non_empty_string(value, key).map(|file| entry.file = file),
        "ctxId" => non_empty_string(value, key).map(|ctx_id| entry.ctx_id = Some(ctx_id)),
        "enabled" => boolean(value, key).map(|flag| entry.enabled = flag),
        "skipValidation" => boolean(value, key).map(|flag| entry.skip_validation = flag),
        "updateAttributes" => boolean(value, key).map(|flag| entry.update_attributes = flag),
        "key" => key_columns(value).map(|columns| entry.key = columns),
        "mode" => match value {
            Value::String(name) => name
                .parse()
                .map(|mode| entry.mode = Some(mode))
                .map_err(|error| format!(r#""mode": {error}"#)),
            other => Err(format!(
                r#""mode" is {}: use "insert", "upsert", "update", "insert-missing" or "sync""#,
                describe(other)
            )),
        },
        "format" => match value {
            Value::String(name) => name
                .parse::<Format>()
                .map(|format| entry.format = Some(format))
                .map_err(|error| format!(r#""format": {error}"#)),
            other => Err(format!(
                r#""format" is {}: use "csv", "ndjson", "jsonl" or "json""#,
                describe(other)
            )),
        },
        _ => policy(value, key).map(|policy| entry.on_error = Some(policy)),
    }
}

impl<'de> DeserializeSeed<'de> for EntryVisitor<'_> {
    type Value = FileEntry;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<FileEntry, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntryVisitor<'_> {
    type Value = FileEntry;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a file entry object")
    }

    refuse_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<FileEntry, A::Error> {
        Err(de::Error::custom(self.refuse("an array")))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<FileEntry, A::Error> {
        let mut entry = FileEntry::new(self.index, None, "");
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == NUMBER_TOKEN {
                return Err(de::Error::custom(self.refuse("a number")));
            }
            if !seen.insert(key.clone()) {
                return Err(self.error(format!("{} is given twice: keep one", quote(&key))));
            }
            self.read(&key, &mut map, &mut entry)?;
        }
        if !seen.contains("file") {
            return Err(self.error(
                r#"has no "file": give the path of the data file or script, relative to the version folder"#.to_owned(),
            ));
        }
        match entry.kind() {
            EntryKind::Data(_) if entry.model.is_none() => {
                return Err(self.error(format!(
                    r#"{} is a data file but the entry has no "model": name the model (table) to load it into"#,
                    quote(&entry.file)
                )))
            }
            EntryKind::Data(None) => {
                return Err(self.error(format!(
                    r#"cannot tell the data format of {}: name it .json, .ndjson, .jsonl or .csv (optionally followed by .gz or .zst), or give "format""#,
                    quote(&entry.file)
                )))
            }
            EntryKind::Data(Some(_)) => {}
            EntryKind::Script(_) => {
                if entry.model.is_some() {
                    self.warnings.push(format!(
                        r#"{}: files[{}]: "model" is ignored: {} is a script, not a data file"#,
                        self.path.display(),
                        self.index,
                        quote(&entry.file)
                    ));
                }
            }
        }
        if let (Some(mode), true) = (entry.mode, entry.update_attributes) {
            if mode != FileMode::Update {
                return Err(self.error(format!(
                    r#""mode": "{mode}" contradicts "updateAttributes": true (which means mode update): remove one of them"#
                )));
            }
        }
        Ok(entry)
    }
}

impl Manifest {
    /// An empty manifest for `path`: no contexts, no files (what `{}` parses to).
    pub fn empty(path: impl Into<PathBuf>) -> Manifest {
        Manifest {
            path: path.into(),
            clear_tables: ClearTables::None,
            contexts: BTreeMap::new(),
            files: Vec::new(),
            scripts: ScriptLists::default(),
            on_error: None,
            tenant_column: None,
            baseline: None,
            warnings: Vec::new(),
        }
    }

    /// Writes the manifest as `meta.json` text in the oe-migration format, 2-space
    /// indented, ending with a newline.
    ///
    /// Keys at their defaults are left out (`clearTables` when it clears nothing,
    /// `enabled` when true, `skipValidation` and `updateAttributes` when false), and so are
    /// unset extensions, so the output is what oe-migration reads, unless an extension is
    /// used. [`parse_manifest`] reads it back to an equal manifest (without `warnings`,
    /// since unknown keys are not written). Entries are written in order; `index` is
    /// implied by the position.
    pub fn to_json_pretty(&self) -> String {
        let clear_tables = match &self.clear_tables {
            ClearTables::None => None,
            ClearTables::All => Some(Value::Bool(true)),
            ClearTables::Tables(tables) => Some(Value::from(tables.clone())),
        };
        let out = ManifestOut {
            clear_tables,
            contexts: &self.contexts,
            files: self.files.iter().map(EntryOut::from).collect(),
            scripts: &self.scripts,
            on_error: self.on_error,
            tenant_column: self.tenant_column.as_deref(),
            baseline: self.baseline.as_ref().map(|b| {
                if b.covers.is_empty() && b.replaces.is_none() {
                    Value::Bool(true)
                } else {
                    let mut object = Map::new();
                    object.insert(
                        "covers".into(),
                        Value::from(b.covers.iter().map(Version::to_string).collect::<Vec<_>>()),
                    );
                    if let Some(checksum) = &b.replaces {
                        object.insert("replaces".into(), Value::String(checksum.clone()));
                    }
                    Value::Object(object)
                }
            }),
        };
        let mut text = serde_json::to_string_pretty(&out).expect("a manifest is plain JSON");
        text.push('\n');
        text
    }
}

/// The order and shape of `meta.json` as written.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    clear_tables: Option<Value>,
    contexts: &'a BTreeMap<String, Map<String, Value>>,
    files: Vec<EntryOut<'a>>,
    #[serde(skip_serializing_if = "ScriptLists::is_empty")]
    scripts: &'a ScriptLists,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_error: Option<OnErrorSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_column: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Value>,
}

/// One entry as written: oe-migration's keys first, then the extensions.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx_id: Option<&'a str>,
    #[serde(skip_serializing_if = "is_true")]
    enabled: bool,
    #[serde(skip_serializing_if = "is_false")]
    skip_validation: bool,
    #[serde(skip_serializing_if = "is_false")]
    update_attributes: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<FileMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_error: Option<OnErrorSpec>,
}

impl<'a> From<&'a FileEntry> for EntryOut<'a> {
    fn from(entry: &'a FileEntry) -> EntryOut<'a> {
        // One column is written as a string, as oe-migration documents it, unless it holds a
        // comma (which a string form would split).
        let key = match entry.key.as_slice() {
            [] => None,
            [column] if !column.contains(',') => Some(Value::String(column.clone())),
            columns => Some(Value::from(columns.to_vec())),
        };
        EntryOut {
            model: entry.model.as_deref(),
            file: &entry.file,
            ctx_id: entry.ctx_id.as_deref(),
            enabled: entry.enabled,
            skip_validation: entry.skip_validation,
            update_attributes: entry.update_attributes,
            key,
            mode: entry.mode,
            format: entry.format,
            on_error: entry.on_error,
        }
    }
}

fn is_true(flag: &bool) -> bool {
    *flag
}

fn is_false(flag: &bool) -> bool {
    !*flag
}
