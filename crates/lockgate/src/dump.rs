//! `dump`: tables written out as a version folder (meta.json plus one JSON-array
//! data file per table) that `migrate` loads back, into a `db/` folder or a zip.
//!
//! The version is the next one after the database's current version (a patch
//! bump; `1.0.0` when it has none), so that a database at that version or later
//! does not ignore it (oe-migration always wrote 1.0.0). Tables are written
//! parents first (by their foreign keys) so that loading them back in meta.json's
//! order meets no missing parent. Rows stream page by page: memory is bounded by
//! the page, not the table (a keyed table in key order, a table without a primary
//! key as one streamed query, see [`write_table`]).
//!
//! A table without a primary key is dumped too: its entry in meta.json has no key, so
//! migrate loads it as inserts, and the version lists it in `clearTables` so that
//! loading the dump again (`migrate --force`, or into the database it came from)
//! replaces its rows instead of adding them a second time. Every dumped table that
//! references such a table (through foreign keys, directly or not) is listed too,
//! children first, or the parent's DELETE would fail on its rows; a table outside the
//! dump that does is named in a warning (see [`cleared_tables`]).
//!
//! What plain JSON cannot say is reported, not guessed: a JSON column holding the
//! JSON value `null` is written as `null`, which migrate (like oe-migration) reads as
//! SQL NULL; the report warns naming table, column and rows.

use crate::migrate::MigrateError;
use lockgate_bundle::{ClearTables, FileEntry, Manifest, Version};
use lockgate_core::{Table, TableName};
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
    /// Whether the table has no primary key: loaded back as inserts, after
    /// `clearTables` empties it.
    pub keyless: bool,
    /// Whether the version's `clearTables` lists it: every keyless table, and every
    /// table that references one through foreign keys (directly or not), so that the
    /// parent's DELETE does not fail on its rows.
    pub cleared: bool,
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
    /// What will not come back as it is (JSON `null` values that load as SQL NULL, a
    /// keyless table's `id` column that migrate makes its key), and a table outside the
    /// dump that references one `clearTables` empties.
    pub warnings: Vec<String>,
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
        // Lockgate's own tables describe this database (its versions, runs, row
        // images), not its data: loading them elsewhere would corrupt that ledger.
        for t in conn.user_tables().await? {
            add(t, &mut tables);
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
    let written = write_version(&mut conn, tables, &vdir, opts.page, None).await?;
    if zip {
        lockgate_bundle::write_zip(&base, &opts.out)?;
    }
    Ok(DumpReport {
        version: version.to_string(),
        out: if zip {
            opts.out.display().to_string()
        } else {
            vdir.display().to_string()
        },
        tables: written.tables,
        warnings: written.warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`write_version`] wrote.
pub(crate) struct WrittenVersion {
    /// The tables, in load order.
    pub tables: Vec<DumpedTable>,
    /// What will not come back as it is (see [`DumpReport::warnings`]).
    pub warnings: Vec<String>,
}

/// Writes `tables` (described by `conn`) as the version folder `vdir`, which must not
/// exist: a data file and a `ddl/` model per table, read in one snapshot, and
/// `meta.json` last, marked as a baseline when `baseline` is given. `dump` and
/// `baseline` share it, so that both write the same folders.
pub(crate) async fn write_version(
    conn: &mut Conn,
    tables: Vec<Table>,
    vdir: &Path,
    page: usize,
    baseline: Option<lockgate_bundle::Baseline>,
) -> Result<WrittenVersion, MigrateError> {
    let tables = lockgate_core::table::parents_first(tables);
    let mut warnings = Vec::new();
    for t in tables.iter().filter(|t| t.primary_key.is_empty()) {
        if let Some(id) = t.columns.iter().find(|c| c.name == "id") {
            // Loopback's rule (lockgate-bundle's `ModelDef::id_properties`): a model's
            // property named `id` is its id when no property is marked.
            warnings.push(format!(
                "table {} has no primary key but a column {:?}: migrate makes that column the key (the primary key of a table its ddl/ definition creates), so rows that share an id do not all come back; give the table a primary key, or rename the column in ddl/ and the data file before loading",
                t.name, id.name
            ));
        }
    }

    let data_dir = vdir.join("default");
    std::fs::create_dir_all(&data_dir).map_err(|e| io_error(&data_dir, e))?;
    let ddl_dir = vdir.join("ddl");
    std::fs::create_dir_all(&ddl_dir).map_err(|e| io_error(&ddl_dir, e))?;
    let mut manifest = Manifest::empty(vdir.join("meta.json"));
    manifest.baseline = baseline;
    let mut report = WrittenVersion {
        tables: Vec::new(),
        warnings,
    };
    let mut used_names: Vec<String> = Vec::new();
    // Every table from one snapshot, so that the dump is consistent across tables.
    conn.begin_snapshot().await?;
    for (i, t) in tables.iter().enumerate() {
        let file_name = unique_file_name(&t.name.name, &mut used_names);
        let rel = format!("default/{file_name}");
        let written = write_table(conn, t, &vdir.join(&rel), page).await?;
        for (column, count) in written.json_nulls {
            report.warnings.push(format!(
                "table {}, column {column}: {count} row(s) hold the JSON value null (not SQL NULL); a data file writes both as null, and migrate loads null as SQL NULL, so those rows come back with SQL NULL in {column}",
                t.name
            ));
        }
        let def = ddl_dir.join(&file_name);
        let (model, skipped) = model_json(t);
        report.warnings.extend(skipped);
        std::fs::write(&def, model).map_err(|e| io_error(&def, e))?;
        manifest
            .files
            .push(FileEntry::new(i, Some(t.name.to_string()), rel.clone()));
        report.tables.push(DumpedTable {
            table: t.name.to_string(),
            file: rel,
            rows: written.rows,
            keyless: t.primary_key.is_empty(),
            cleared: false,
        });
    }
    conn.rollback().await?;
    let cleared = cleared_tables(&tables);
    if !cleared.is_empty() {
        // A table outside the dump that references a cleared one would make the
        // DELETE fail (or, with ON DELETE CASCADE, lose its rows) wherever it exists.
        let outside = outside_referrers(conn, &tables, &cleared).await?;
        for (child, parent) in outside {
            report.warnings.push(format!(
                "table {child} references table {parent}, which the dump's clearTables empties, but {child} is not in the dump: loading the dump where {child} holds rows that reference {parent} fails on its foreign key (or, with ON DELETE CASCADE, deletes them); dump {child} too (--tables or --all)"
            ));
        }
        for d in report.tables.iter_mut() {
            d.cleared = cleared.iter().any(|t| t.name.to_string() == d.table);
        }
        manifest.clear_tables = ClearTables::Tables(cleared.iter().map(|t| t.name.to_string()).collect());
    }
    let meta = vdir.join("meta.json");
    std::fs::write(&meta, manifest.to_json_pretty()).map_err(|e| io_error(&meta, e))?;
    Ok(report)
}

/// The tables the dump's `clearTables` lists, children before parents: every table
/// without a primary key (it loads as inserts, so loading the dump a second time would
/// add its rows again), and every dumped table that references one of those through
/// a foreign key, directly or through another such table (else the DELETE of the
/// parent fails on the child's rows where the foreign keys exist: in the database
/// the dump came from, or a copy of its schema). A cleared keyed table is loaded
/// back by its key like any other.
fn cleared_tables(tables: &[Table]) -> Vec<&Table> {
    let mut cleared: Vec<bool> = tables.iter().map(|t| t.primary_key.is_empty()).collect();
    // The transitive closure over "references a cleared table": each pass adds the
    // direct referrers of what is cleared so far (at most one pass per table).
    loop {
        let mut grew = false;
        for (i, t) in tables.iter().enumerate() {
            if cleared[i] {
                continue;
            }
            let refers = t.foreign_keys.iter().any(|fk| {
                tables
                    .iter()
                    .zip(&cleared)
                    .any(|(p, c)| *c && fk.references.same_as(&p.name))
            });
            if refers {
                cleared[i] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    // `tables` is parents first, so reversed it is the order to delete in.
    tables
        .iter()
        .zip(cleared)
        .rev()
        .filter(|(_, c)| *c)
        .map(|(t, _)| t)
        .collect()
}

/// (child, parent) for every table outside the dump whose foreign key references a
/// table in `cleared`. With `--all` only Lockgate's own tables are outside, and they
/// reference nothing of the user's; otherwise every other table is described.
async fn outside_referrers(
    conn: &mut Conn,
    dumped: &[Table],
    cleared: &[&Table],
) -> Result<Vec<(TableName, TableName)>, MigrateError> {
    let mut out = Vec::new();
    for name in conn.list_tables().await? {
        if name.name.starts_with("lockgate_") || dumped.iter().any(|t| name.same_as(&t.name)) {
            continue;
        }
        let Some(t) = conn.describe(&name).await? else {
            continue;
        };
        for fk in &t.foreign_keys {
            if let Some(parent) = cleared.iter().find(|c| fk.references.same_as(&c.name)) {
                if !out
                    .iter()
                    .any(|(c, p): &(TableName, TableName)| *c == t.name && *p == parent.name)
                {
                    out.push((t.name.clone(), parent.name.clone()));
                }
            }
        }
    }
    Ok(out)
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
/// create it in an empty database of any engine, and the warnings for what it leaves
/// out. Types are the portable ones: a kind with no loopback type gets a `dataType`
/// every engine reads the same way. What decides which rows may exist comes along:
/// NOT NULL (`required`), the primary key (`id`; none: `"idInjection": false`, so that
/// migrate adds no `id`), and every unique constraint or index over plain columns (a
/// one-column one as the property's `"index": {"unique": true}`, a wider one in
/// `"indexes"`). Plain indexes are left out: they change no row, and an index a source
/// engine keeps (over long text, say) may be one another cannot create.
fn model_json(t: &Table) -> (String, Vec<String>) {
    use lockgate_core::Kind;
    use serde_json::json;
    let mut warnings = Vec::new();
    let (single, wide) = unique_sets(t, &mut warnings);
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
        let dated = matches!(c.kind, Kind::Date | Kind::Timestamp { .. } | Kind::TimestampTz { .. });
        if let Some(d) = c.default.as_deref() {
            if dated && is_now(d) {
                // Loopback's "the current time": migrate declares each engine's own
                // (CURRENT_DATE for a date column).
                p["default"] = json!(lockgate_bundle::NOW);
            } else if let Some(v) = default_value(d) {
                p["default"] = v;
            }
        }
        if t.primary_key.contains(&c.name) {
            p["id"] = json!(true);
            // A one-column integer key the database fills (identity, AUTO_INCREMENT,
            // rowid) is created the same way again.
            if c.auto && t.primary_key.len() == 1 && matches!(c.kind, Kind::Int { .. }) {
                p["generated"] = json!(true);
            }
        }
        if single.contains(&c.name) {
            p["index"] = json!({"unique": true});
        }
        props.push(format!("    {}: {}", json!(c.name), p));
    }
    let mut head = format!("  \"name\": {},\n", json!(t.name.name));
    if t.primary_key.is_empty() {
        // Without it migrate would give the table an `id` it does not have.
        head.push_str("  \"idInjection\": false,\n");
    }
    let indexes = if wide.is_empty() {
        String::new()
    } else {
        let entries: Vec<String> = wide
            .iter()
            .map(|(name, cols)| {
                // "columns" keeps the order ("keys" is an object, whose order a reader
                // need not keep); a name it cannot carry goes in "keys" (a unique
                // set means the same in any order).
                let entry = if cols.iter().all(|c| !c.contains(',') && c.trim() == c) {
                    json!({"columns": cols.join(", "), "kind": "unique"})
                } else {
                    let keys: serde_json::Map<String, serde_json::Value> =
                        cols.iter().map(|c| (c.clone(), json!(1))).collect();
                    json!({"keys": keys, "options": {"unique": true}})
                };
                format!("    {}: {}", json!(name), entry)
            })
            .collect();
        format!(",\n  \"indexes\": {{\n{}\n  }}", entries.join(",\n"))
    };
    (
        format!(
            "{{\n{head}  \"properties\": {{\n{}\n  }}{indexes}\n}}\n",
            props.join(",\n")
        ),
        warnings,
    )
}

/// The table's unique column sets other than the primary key, each once: the
/// columns of one-column ones, and (name, columns) of wider ones, named as migrate
/// names an index it creates (`table_columns_key`, within PostgreSQL's 63 bytes),
/// since a source's names need not be unique where the copy goes (MariaDB's are per
/// table, PostgreSQL's per schema; SQLite reserves `sqlite_` names). A unique index
/// over an expression cannot be written as a model: a warning names it.
fn unique_sets(t: &Table, warnings: &mut Vec<String>) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let listed = t
        .unique
        .iter()
        .map(|u| (&u.name, &u.columns))
        .chain(t.indexes.iter().filter(|i| i.unique).map(|i| (&i.name, &i.columns)));
    let mut sets: Vec<Vec<String>> = Vec::new();
    for (name, cols) in listed {
        if cols.iter().any(|c| !t.columns.iter().any(|x| &x.name == c)) {
            let w = format!(
                "table {}: unique index {name} is over an expression ({}), which a definition cannot give; it is not in ddl/, so create it after loading",
                t.name,
                cols.join(", ")
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
            continue;
        }
        if *cols != t.primary_key && !sets.contains(cols) {
            sets.push(cols.clone());
        }
    }
    let mut single = Vec::new();
    let mut wide: Vec<(String, Vec<String>)> = Vec::new();
    for cols in sets {
        if let [one] = cols.as_slice() {
            single.push(one.clone());
            continue;
        }
        let mut name = format!("{}_{}_key", t.name.name, cols.join("_"));
        while name.len() > 63 {
            name.pop();
        }
        let mut n = 2;
        let base = name.clone();
        while wide.iter().any(|(w, _)| w.eq_ignore_ascii_case(&name)) {
            let suffix = format!("_{n}");
            let mut b = base.clone();
            while b.len() + suffix.len() > 63 {
                b.pop();
            }
            name = format!("{b}{suffix}");
            n += 1;
        }
        wide.push((name, cols));
    }
    (single, wide)
}

/// Whether a column default is the current date or time, as each engine reports
/// it: PostgreSQL `now()`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `CURRENT_DATE`
/// (with or without a cast); MariaDB `current_timestamp()` (with digits),
/// `curdate()`; SQLite `CURRENT_TIMESTAMP`, `CURRENT_DATE`, `datetime('now')` and
/// the `strftime('%Y-%m-%d …', 'now')` that migrate declares for `"$now"`.
fn is_now(sql: &str) -> bool {
    let mut t = sql.trim().to_ascii_lowercase();
    loop {
        // A PostgreSQL cast (`(now())::timestamp(0) without time zone`) keeps the value.
        if let Some((head, _)) = t.split_once("::") {
            t = head.trim().to_string();
        }
        match t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            Some(inner) if balanced(inner) => t = inner.trim().to_string(),
            _ => break,
        }
    }
    let t: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    // `name()` or `name(digits)`: fractional-second digits do not change what it is.
    let call = |name: &str| {
        t.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit()))
    };
    matches!(t.as_str(), "current_timestamp" | "localtimestamp" | "current_date")
        || [
            "now",
            "current_timestamp",
            "localtimestamp",
            "transaction_timestamp",
            "statement_timestamp",
            "curdate",
            "current_date",
            "utc_timestamp",
        ]
        .iter()
        .any(|name| call(name))
        || t == "datetime('now')"
        || t == "date('now')"
        || (t.starts_with("strftime('%y-%m-%d") && t.ends_with(",'now')"))
}

/// Whether every parenthesis in `s` closes one opened in it (so stripping an outer
/// pair kept one expression, not `(a) + (b)`'s halves).
fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
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

/// What writing one table's data file found.
struct Written {
    /// Rows written.
    rows: u64,
    /// (column, rows) of the JSON columns where some rows hold the JSON value `null`.
    json_nulls: Vec<(String, u64)>,
}

/// A table's data file being written: a JSON array, one object per row.
struct DataFile {
    w: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    rows: u64,
    /// Per column of the table: whether it is a JSON column, and how many of its
    /// values so far were the JSON value `null`.
    json: Vec<(bool, u64)>,
}

impl DataFile {
    fn create(path: &Path, table: &Table) -> Result<DataFile, MigrateError> {
        let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
        let mut w = std::io::BufWriter::new(file);
        w.write_all(b"[").map_err(|e| io_error(path, e))?;
        Ok(DataFile {
            w,
            path: path.to_path_buf(),
            rows: 0,
            json: table
                .columns
                .iter()
                .map(|c| (c.kind == lockgate_core::Kind::Json, 0))
                .collect(),
        })
    }

    /// One row; `columns` names its values, which are the table's columns in order.
    fn row(&mut self, columns: &[String], values: &[lockgate_core::Value]) -> Result<(), MigrateError> {
        for (i, v) in values.iter().enumerate() {
            if let Some((true, n)) = self.json.get_mut(i) {
                if matches!(v, lockgate_core::Value::Json(serde_json::Value::Null)) {
                    *n += 1;
                }
            }
        }
        let obj: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .cloned()
            .zip(values.iter().map(lockgate_core::Value::to_json))
            .collect();
        let sep: &[u8] = if self.rows == 0 { b"\n" } else { b",\n" };
        self.w.write_all(sep).map_err(|e| io_error(&self.path, e))?;
        serde_json::to_writer(&mut self.w, &obj)
            .map_err(|e| MigrateError::Input(format!("{}: {e}", self.path.display())))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self, table: &Table) -> Result<Written, MigrateError> {
        self.w.write_all(b"\n]\n").map_err(|e| io_error(&self.path, e))?;
        self.w.flush().map_err(|e| io_error(&self.path, e))?;
        Ok(Written {
            rows: self.rows,
            json_nulls: table
                .columns
                .iter()
                .zip(&self.json)
                .filter(|(_, (_, n))| *n > 0)
                .map(|(c, (_, n))| (c.name.clone(), *n))
                .collect(),
        })
    }
}

/// Streams a table into a JSON array file, one object per row. A table with a
/// primary key is read page by page in key order (`TableReader`); one without is read
/// by one query whose rows arrive a page at a time (`Conn::query_pages`: a streamed
/// result, the driver reading only as pages are taken), never the whole table at
/// once. That one path serves every keyless table, those with a unique key of NOT NULL
/// columns (which keyset pages could resume from) and those without alike. Both run
/// inside the dump's snapshot.
async fn write_table(conn: &mut Conn, table: &Table, path: &Path, page: usize) -> Result<Written, MigrateError> {
    let mut file = DataFile::create(path, table)?;
    if table.primary_key.is_empty() {
        let d = conn.dialect();
        let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let kinds: Vec<lockgate_core::Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
        let sql = format!("SELECT {} FROM {}", d.columns(None, &columns), d.table(&table.name));
        conn.query_pages(&sql, &[], Some(&kinds), page, &mut |rows| {
            rows.iter().try_for_each(|values| file.row(&columns, values))
        })
        .await?;
    } else {
        let mut reader = TableReader::new(table, None, page)?;
        while let Some(batch) = reader.next_batch(conn).await? {
            for row in &batch.rows {
                file.row(&batch.columns, &row.values)?;
            }
        }
    }
    file.finish(table)
}

#[cfg(test)]
mod tests {
    use super::{default_value, is_now, model_json};
    use lockgate_core::{Column, Index, Kind, Table, TableName, UniqueConstraint};
    use serde_json::json;

    #[test]
    fn current_time_defaults_of_every_engine_are_recognized() {
        for sql in [
            "now()",
            "CURRENT_TIMESTAMP",
            "(now())::timestamp without time zone",
            "LOCALTIMESTAMP(3)",
            "CURRENT_DATE",
            "current_timestamp()",
            "current_timestamp(6)",
            "curdate()",
            "(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))",
            "datetime('now')",
        ] {
            assert!(is_now(sql), "{sql}");
        }
        for sql in [
            "'2020-01-01'",
            "'now'",
            "now() + interval '1 day'",
            "(now()) + (now())",
            "strftime('%s', 'now')",
        ] {
            assert!(!is_now(sql), "{sql}");
        }
    }

    fn column(name: &str, kind: Kind, default: Option<&str>) -> Column {
        Column {
            name: name.into(),
            data_type: String::new(),
            kind,
            nullable: true,
            default: default.map(str::to_string),
            auto: false,
            collation: None,
        }
    }

    #[test]
    fn a_model_keeps_unique_sets_and_now_defaults_and_a_keyless_table_gets_no_id() {
        let text = Kind::Text {
            max_chars: Some(10),
            max_bytes: None,
            form: Default::default(),
        };
        let t = Table {
            name: TableName::new("t"),
            columns: vec![
                column("a", text.clone(), None),
                column("b", text.clone(), None),
                column("at", Kind::Date, Some("CURRENT_DATE")),
                column("label", text, Some("now()")),
            ],
            primary_key: Vec::new(),
            unique: vec![UniqueConstraint {
                name: "u".into(),
                columns: vec!["a".into()],
            }],
            foreign_keys: Vec::new(),
            indexes: vec![
                Index {
                    name: "u".into(),
                    columns: vec!["a".into()],
                    unique: true,
                },
                Index {
                    name: "ab".into(),
                    columns: vec!["b".into(), "a".into()],
                    unique: true,
                },
                Index {
                    name: "plain".into(),
                    columns: vec!["b".into()],
                    unique: false,
                },
                Index {
                    name: "lower_b".into(),
                    columns: vec!["(expression)".into()],
                    unique: true,
                },
            ],
            checks: Vec::new(),
            engine: None,
            unchecked: Vec::new(),
        };
        let (text, warnings) = model_json(&t);
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["idInjection"], false, "{text}");
        assert_eq!(m["properties"]["a"]["index"], json!({"unique": true}), "{text}");
        assert!(
            m["properties"]["b"].get("index").is_none(),
            "a plain index is left out: {text}"
        );
        assert_eq!(m["properties"]["at"]["default"], "$now", "{text}");
        assert!(
            m["properties"]["label"].get("default").is_none(),
            "now() on text: {text}"
        );
        assert_eq!(
            m["indexes"],
            json!({"t_b_a_key": {"columns": "b, a", "kind": "unique"}}),
            "{text}"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("lower_b"), "{warnings:?}");
        // What migrate reads back: the same unique sets, no injected id.
        let def = lockgate_bundle::parse_model(std::path::Path::new("t.json"), &text).unwrap();
        assert!(!def.injects_id());
        let sets: Vec<(Vec<String>, bool)> = def.indexes.iter().map(|i| (i.columns.clone(), i.unique)).collect();
        assert_eq!(
            sets,
            [
                (vec!["a".to_string()], true),
                (vec!["b".to_string(), "a".to_string()], true)
            ]
        );
    }

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
