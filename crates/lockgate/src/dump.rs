//! `dump`: tables written out as a version folder (meta.json plus one JSON-array
//! data file per table) that `migrate` loads back, into a `db/` folder or a zip.
//!
//! The version is the next one after the database's current version (a patch
//! bump; `1.0.0` when it has none), so that a database at that version or later
//! does not ignore it (oe-migration always wrote 1.0.0). Tables are written
//! parents first (by their foreign keys) so that loading them back in meta.json's
//! order meets no missing parent. Rows stream page by page: memory is bounded by
//! the page, not the table.

use crate::migrate::MigrateError;
use lockgate_bundle::{FileEntry, Manifest, Version};
use lockgate_core::Table;
use lockgate_db::read::TableReader;
use lockgate_db::versions;
use lockgate_db::{Conn, DbUrl};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to dump.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// The tables (names as `migrate` and `inspect` take them).
    pub tables: Vec<String>,
    /// Every table (with `tables`, these are added).
    pub all: bool,
    /// With `all`: leave out system tables. Lockgate's own `lockgate_*` tables are
    /// never dumped (they describe this database, not its data); the flag is kept for
    /// oe-migration's `excludeFrameworkTables`.
    pub exclude_system: bool,
    /// A folder (the version folder goes inside it) or a `.zip` file.
    pub out: PathBuf,
    /// The version to write (default: the next after the module's current one).
    pub version: Option<Version>,
    /// The module whose version sets the default.
    pub module: String,
    /// Rows per page read.
    pub page: usize,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            tables: Vec::new(),
            all: false,
            exclude_system: false,
            out: PathBuf::from("db"),
            version: None,
            module: "./".into(),
            page: 5_000,
        }
    }
}

/// One table written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DumpedTable {
    /// The table.
    pub table: String,
    /// Its file, relative to the version folder.
    pub file: String,
    /// Rows written.
    pub rows: u64,
}

/// What a dump wrote (the `--json` document of `lockgate dump`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DumpReport {
    /// The version folder's version.
    pub version: String,
    /// Where it went (the version folder, or the zip).
    pub out: String,
    /// The tables, in load order.
    pub tables: Vec<DumpedTable>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Dumps tables as a version folder (or a zip of one).
pub async fn dump(url: &DbUrl, opts: &DumpOptions) -> Result<DumpReport, MigrateError> {
    let started = Instant::now();
    if opts.tables.is_empty() && !opts.all {
        return Err(MigrateError::Input(
            "name the tables to dump with --tables a,b, or dump every table with --all".into(),
        ));
    }
    let mut conn = Conn::connect_existing(url).await?;
    let version = match opts.version {
        Some(v) => v,
        None => {
            // Read the ledger only if there is one: a dump writes nothing to the database.
            let current = if conn.lookup_table("lockgate_modules").await?.is_some() {
                versions::module_version(&mut conn, &opts.module).await?
            } else {
                None
            };
            current
                .and_then(|v| v.parse::<Version>().ok())
                .map_or(Version::new(1, 0, 0), |v| v.bump_patch())
        }
    };
    let mut tables: Vec<Table> = Vec::new();
    let add = |t: Table, tables: &mut Vec<Table>| {
        if !tables.iter().any(|x| x.name == t.name) {
            tables.push(t);
        }
    };
    if opts.all {
        for name in conn.list_tables().await? {
            // Lockgate's own tables describe this database (its versions, runs, row
            // images), not its data: loading them elsewhere would corrupt that ledger.
            if name.name.starts_with("lockgate_") {
                continue;
            }
            if let Some(t) = conn.describe(&name).await? {
                add(t, &mut tables);
            }
        }
    }
    for name in &opts.tables {
        // An unknown table is an error naming it (and listing what exists).
        let t = conn
            .find_table(name)
            .await
            .map_err(|e| MigrateError::Input(format!("cannot dump {name:?}: {e}")))?;
        if t.name.name.starts_with("lockgate_") {
            return Err(MigrateError::Input(format!(
                "{} is one of Lockgate's own tables: they describe this database and are not dumped",
                t.name
            )));
        }
        add(t, &mut tables);
    }
    let tables = lockgate_core::table::parents_first(tables);
    for t in &tables {
        if t.primary_key.is_empty() {
            return Err(MigrateError::Input(format!(
                "table {} has no primary key: dump reads tables page by page in key order, and migrate upserts by key; give it one",
                t.name
            )));
        }
    }

    let zip = opts.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let staging = if zip {
        Some(tempfile::tempdir().map_err(|e| MigrateError::Input(format!("cannot create a temporary folder: {e}")))?)
    } else {
        None
    };
    let base: PathBuf = staging
        .as_ref()
        .map_or_else(|| opts.out.clone(), |s| s.path().to_path_buf());
    let vdir = base.join(version.to_string());
    if vdir.exists() {
        return Err(MigrateError::Input(format!(
            "{} already exists: choose another --version or --out",
            vdir.display()
        )));
    }
    if zip && opts.out.exists() {
        return Err(MigrateError::Input(format!(
            "{} already exists: remove it or choose another --out",
            opts.out.display()
        )));
    }
    let data_dir = vdir.join("default");
    std::fs::create_dir_all(&data_dir).map_err(|e| io_error(&data_dir, e))?;
    let ddl_dir = vdir.join("ddl");
    std::fs::create_dir_all(&ddl_dir).map_err(|e| io_error(&ddl_dir, e))?;
    let mut manifest = Manifest::empty(vdir.join("meta.json"));
    let mut report = DumpReport {
        version: version.to_string(),
        out: if zip {
            opts.out.display().to_string()
        } else {
            vdir.display().to_string()
        },
        tables: Vec::new(),
        seconds: 0.0,
    };
    let mut used_names: Vec<String> = Vec::new();
    // Every table from one snapshot, so that the dump is consistent across tables.
    conn.begin_snapshot().await?;
    for (i, t) in tables.iter().enumerate() {
        let file_name = unique_file_name(&t.name.name, &mut used_names);
        let rel = format!("default/{file_name}");
        let rows = write_table(&mut conn, t, &vdir.join(&rel), opts.page).await?;
        let def = ddl_dir.join(&file_name);
        std::fs::write(&def, model_json(t)).map_err(|e| io_error(&def, e))?;
        manifest
            .files
            .push(FileEntry::new(i, Some(t.name.to_string()), rel.clone()));
        report.tables.push(DumpedTable {
            table: t.name.to_string(),
            file: rel,
            rows,
        });
    }
    conn.rollback().await?;
    let meta = vdir.join("meta.json");
    std::fs::write(&meta, manifest.to_json_pretty()).map_err(|e| io_error(&meta, e))?;
    if zip {
        lockgate_bundle::write_zip(&base, &opts.out)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn io_error(path: &Path, e: std::io::Error) -> MigrateError {
    MigrateError::Input(format!("{}: {e}: check the path and its permissions", path.display()))
}

/// A file name for a table's data, safe on every file system and unique in the folder.
fn unique_file_name(table: &str, used: &mut Vec<String>) -> String {
    let safe: String = table
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{safe}.json");
    let mut n = 2;
    while used.iter().any(|u| u.eq_ignore_ascii_case(&name)) {
        name = format!("{safe}_{n}.json");
        n += 1;
    }
    used.push(name.clone());
    name
}

/// A table as a loopback-style model (the version's `ddl/`), so that migrate can
/// create it in an empty database of any engine. Types are the portable ones: a
/// kind with no loopback type gets a `dataType` every engine reads the same way.
fn model_json(t: &Table) -> String {
    use lockgate_core::Kind;
    use serde_json::json;
    // Written by hand so that properties keep the table's column order (a JSON
    // map here would sort them).
    let mut props = Vec::new();
    for c in &t.columns {
        let mut p = match &c.kind {
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Int { .. } => json!({"type": "integer"}),
            Kind::Float { .. } => json!({"type": "number"}),
            Kind::Decimal { precision, scale, .. } => {
                // An unconstrained numeric keeps the widest decimal all engines share.
                json!({"type": "number", "precision": precision.unwrap_or(65), "scale": scale.unwrap_or(if precision.is_some() { 0 } else { 30 })})
            }
            Kind::Text { max_chars: Some(n), .. } => json!({"type": "string", "max": n}),
            Kind::Text { .. } | Kind::Any | Kind::Unsupported { .. } => json!({"type": "string"}),
            Kind::Bytes { .. } => json!({"type": "buffer"}),
            Kind::Date => json!({"type": "date", "dataType": "date"}),
            Kind::Time { .. } => json!({"type": "string", "dataType": "time"}),
            // Timestamps become instants (their values read as UTC): MariaDB's
            // TIMESTAMP type, the only spelling all three share, stops in 2038.
            Kind::Timestamp { .. } | Kind::TimestampTz { .. } => json!({"type": "date"}),
            Kind::Json => json!({"type": "object"}),
            Kind::Uuid => json!({"type": "string", "dataType": "uuid"}),
        };
        if !c.nullable {
            p["required"] = json!(true);
        }
        if let Some(d) = c.default.as_deref().and_then(default_value) {
            p["default"] = d;
        }
        if t.primary_key.contains(&c.name) {
            p["id"] = json!(true);
            // A one-column integer key the database fills (identity, AUTO_INCREMENT,
            // rowid) is created the same way again.
            if c.auto && t.primary_key.len() == 1 && matches!(c.kind, Kind::Int { .. }) {
                p["generated"] = json!(true);
            }
        }
        props.push(format!("    {}: {}", json!(c.name), p));
    }
    format!(
        "{{\n  \"name\": {},\n  \"properties\": {{\n{}\n  }}\n}}\n",
        json!(t.name.name),
        props.join(",\n")
    )
}

/// A column's default as a JSON value, when it is a plain literal (`'active'`,
/// `'x'::character varying`, `2`, `-1.5`, `true`); expressions (`now()`, sequences)
/// are not portable and are left out.
fn default_value(sql: &str) -> Option<serde_json::Value> {
    let t = sql.trim();
    let t = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(t)
        .trim();
    if let Some(rest) = t.strip_prefix('\'') {
        // A quoted literal, possibly followed by a PostgreSQL cast.
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                    continue;
                }
                let tail: String = chars.collect();
                let tail = tail.trim();
                return (tail.is_empty() || tail.starts_with("::")).then_some(serde_json::Value::String(out));
            }
            out.push(c);
        }
        return None;
    }
    match t.to_ascii_lowercase().as_str() {
        "true" => return Some(serde_json::Value::Bool(true)),
        "false" => return Some(serde_json::Value::Bool(false)),
        _ => {}
    }
    let number = t.split("::").next().unwrap_or(t).trim();
    lockgate_core::Decimal::parse(number)?;
    serde_json::from_str::<serde_json::Number>(number)
        .ok()
        .map(serde_json::Value::Number)
}

/// Streams a table into a JSON array file, one object per row.
async fn write_table(conn: &mut Conn, table: &Table, path: &Path, page: usize) -> Result<u64, MigrateError> {
    let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut reader = TableReader::new(table, None, page)?;
    let mut rows = 0u64;
    w.write_all(b"[").map_err(|e| io_error(path, e))?;
    while let Some(batch) = reader.next_batch(conn).await? {
        for row in &batch.rows {
            let obj: serde_json::Map<String, serde_json::Value> = batch
                .columns
                .iter()
                .cloned()
                .zip(row.values.iter().map(lockgate_core::Value::to_json))
                .collect();
            let sep: &[u8] = if rows == 0 { b"\n" } else { b",\n" };
            w.write_all(sep).map_err(|e| io_error(path, e))?;
            serde_json::to_writer(&mut w, &obj).map_err(|e| MigrateError::Input(format!("{}: {e}", path.display())))?;
            rows += 1;
        }
    }
    w.write_all(b"\n]\n").map_err(|e| io_error(path, e))?;
    w.flush().map_err(|e| io_error(path, e))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::default_value;
    use serde_json::json;

    #[test]
    fn plain_literal_defaults_are_kept_and_expressions_left_out() {
        let cases = [
            ("'active'", Some(json!("active"))),
            ("'it''s'::character varying", Some(json!("it's"))),
            ("2", Some(json!(2))),
            ("(-1.50)", Some(serde_json::from_str("-1.50").unwrap())),
            ("'0'::numeric", Some(json!("0"))),
            ("true", Some(json!(true))),
            ("now()", None),
            ("nextval('t_id_seq'::regclass)", None),
            ("CURRENT_TIMESTAMP", None),
            ("'a' || 'b'", None),
        ];
        for (sql, want) in cases {
            assert_eq!(default_value(sql), want, "{sql}");
        }
    }
}
