//! `lockgate snapshot create`: a database's tables into a new snapshot.
//!
//! Everything the user named is checked first, before the store sees a byte: the
//! profile, tables, exclusions, conditions and subset roots (each run on the source
//! reading nothing), masks (against each column's type). Then one consistent read:
//! a snapshot transaction (REPEATABLE READ on PostgreSQL, a consistent snapshot on
//! MariaDB, a read transaction on SQLite) in which the module versions, the subset's
//! closure and every table are read. Each table streams through one query into a
//! compressed local spool file (memory: a page of rows), which is then uploaded;
//! the manifest goes last. On any failure the snapshot's folder is removed.

use super::data::{Spool, Written};
use super::defs::table_def;
use super::profile::{open_store, resolve, write_pin, Pin, Resolved};
use super::{file_stem, manifest_key, new_id, SnapshotError, SnapshotProgress};
use crate::config::Config;
use crate::mask::{self, TableMask};
use lockgate_bundle::{
    LedgerVersion, MediaFile, SnapshotManifest, SourceInfo, TableEntry, DATA_ENCODING, SNAPSHOT_FORMAT,
};
use lockgate_core::table::parents_first;
use lockgate_core::{Table, TableName, Value};
use lockgate_db::subset::{self, SubsetRoot};
use lockgate_db::{snapshot as sql, versions, Conn, DbUrl};
use lockgate_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// What to snapshot. Empty lists and `None`s take the profile's settings from
/// `lockgate.toml`.
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// The profile.
    pub profile: String,
    /// The `db/` folder (its `profiles/` holds pin files).
    pub dir: PathBuf,
    /// The store URL (else the profile's).
    pub store: Option<String>,
    /// Only these tables.
    pub tables: Vec<String>,
    /// Never these tables.
    pub exclude: Vec<String>,
    /// `(table, condition)`: take only the rows the condition picks.
    pub conditions: Vec<(String, String)>,
    /// `(table, condition)`: subset roots.
    pub subset: Vec<(String, String)>,
    /// Masks, as `--mask` takes them.
    pub masks: Option<String>,
    /// A folder of user media to take along.
    pub files: Option<PathBuf>,
    /// Write the profile's pin file.
    pub pin: bool,
    /// Rows per page read.
    pub page: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            profile: String::new(),
            dir: PathBuf::from("db"),
            store: None,
            tables: Vec::new(),
            exclude: Vec::new(),
            conditions: Vec::new(),
            subset: Vec::new(),
            masks: None,
            files: None,
            pin: false,
            page: 10_000,
        }
    }
}

/// One table written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Rows.
    pub rows: u64,
    /// Bytes before compression.
    pub bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
}

/// What a snapshot wrote (the `--json` document of `lockgate snapshot create`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotReport {
    /// Its id.
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// The store.
    pub store: String,
    /// The tables.
    pub tables: Vec<TableReport>,
    /// Media files taken.
    pub files: usize,
    /// Bytes stored in all.
    pub stored_bytes: u64,
    /// The module versions recorded.
    pub modules: BTreeMap<String, String>,
    /// The pin file written, with `--pin`.
    pub pinned: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A table chosen, with what is taken of it.
struct Chosen {
    table: Table,
    condition: Option<String>,
    mask: Option<TableMask>,
}

/// Takes a snapshot of the database at `url`.
pub async fn snapshot(
    config: &Config,
    url: &DbUrl,
    opts: &SnapshotOptions,
    progress: Option<UnboundedSender<SnapshotProgress>>,
) -> Result<SnapshotReport, SnapshotError> {
    let started = Instant::now();
    let profile = resolve(config, &opts.dir, &opts.profile, opts.store.as_deref())?;
    let settings = Settings::merge(&profile, opts);
    if let Some(dir) = &settings.files {
        if !dir.is_dir() {
            return Err(SnapshotError::one(format!(
                "--files {}: not a folder; name the folder of user media to take along",
                dir.display()
            )));
        }
        media_files(dir)?;
    }
    let store = open_store(config, &profile.store_url)?;
    let mut conn = Conn::connect_existing(url).await?;
    let chosen = choose(&mut conn, &settings).await?;
    // The store is reached only once the input is known good, and before any read.
    store.check().await?;

    conn.begin_snapshot().await?;
    let read = read_all(&mut conn, &settings, chosen, &store, &profile, url, progress.as_ref()).await;
    let _ = conn.rollback().await;
    let (manifest, report_tables) = read?;

    let pinned = if opts.pin {
        let pin = Pin {
            profile: profile.name.clone(),
            store: Some(profile.store_url.clone()),
            snapshot: Some(manifest.id.clone()),
            created: Some(manifest.created.clone()),
            modules: manifest.modules.clone(),
            checksums: manifest
                .tables
                .iter()
                .map(|t| (t.file.clone(), t.sha256.clone()))
                .chain(manifest.files.iter().map(|f| (f.key.clone(), f.sha256.clone())))
                .collect(),
        };
        Some(write_pin(&opts.dir, &pin)?.display().to_string())
    } else {
        None
    };
    Ok(SnapshotReport {
        id: manifest.id.clone(),
        profile: profile.name.clone(),
        store: store.url().to_string(),
        tables: report_tables,
        files: manifest.files.len(),
        stored_bytes: manifest.stored_bytes(),
        modules: manifest.modules.clone(),
        pinned,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The options in force: flags over the profile's settings.
struct Settings {
    tables: Vec<String>,
    exclude: Vec<String>,
    conditions: Vec<(String, String)>,
    subset: Vec<(String, String)>,
    /// The profile's masks, then the flag's: a flag's rule for a column replaces
    /// the profile's for that column only.
    masks: Vec<String>,
    files: Option<PathBuf>,
    page: usize,
}

impl Settings {
    fn merge(p: &Resolved, opts: &SnapshotOptions) -> Settings {
        let or = |flag: &Vec<String>, spec: &Vec<String>| if flag.is_empty() { spec.clone() } else { flag.clone() };
        let pairs = |flag: &Vec<(String, String)>, spec: &BTreeMap<String, String>| {
            if flag.is_empty() {
                spec.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            } else {
                flag.clone()
            }
        };
        Settings {
            tables: or(&opts.tables, &p.spec.tables),
            exclude: or(&opts.exclude, &p.spec.exclude),
            conditions: pairs(&opts.conditions, &p.spec.conditions),
            subset: pairs(&opts.subset, &p.spec.subset),
            masks: p.spec.masks.iter().chain(opts.masks.iter()).cloned().collect(),
            files: opts.files.clone().or_else(|| p.spec.files.as_ref().map(PathBuf::from)),
            page: opts.page.max(1),
        }
    }
}

/// Finds a table among `all` by a user's name (ARCHITECTURE.md's naming rule).
fn find<'a>(all: &'a [Table], name: &str) -> Option<&'a Table> {
    let want = TableName::parse(name);
    let exact: Vec<&Table> = all.iter().filter(|t| t.name.same_as(&want)).collect();
    if exact.len() == 1 {
        return Some(exact[0]);
    }
    let ci: Vec<&Table> = all
        .iter()
        .filter(|t| {
            t.name.name.eq_ignore_ascii_case(&want.name)
                && match (&t.name.schema, &want.schema) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
        })
        .collect();
    (ci.len() == 1).then(|| ci[0])
}

/// The tables to take, every name, condition and mask checked; all problems at once.
async fn choose(conn: &mut Conn, s: &Settings) -> Result<Vec<Chosen>, SnapshotError> {
    let all = conn.user_tables().await?;
    let mut problems = Vec::new();
    let names = |all: &[Table]| {
        let mut n: Vec<String> = all.iter().map(|t| t.name.to_string()).collect();
        n.sort();
        n.join(", ")
    };
    let unknown = |what: &str, name: &str, problems: &mut Vec<String>| {
        problems.push(format!(
            "{what} {name:?} is not a table of the database (its tables: {})",
            names(&all)
        ));
    };
    let mut selected: Vec<Table> = Vec::new();
    if s.tables.is_empty() {
        selected = all.clone();
    } else {
        for n in &s.tables {
            match find(&all, n) {
                Some(t) if !selected.iter().any(|x| x.name == t.name) => selected.push(t.clone()),
                Some(_) => {}
                None => unknown("--tables", n, &mut problems),
            }
        }
    }
    for n in &s.exclude {
        match find(&all, n) {
            Some(t) => selected.retain(|x| x.name != t.name),
            None => unknown("--exclude", n, &mut problems),
        }
    }
    let in_selection = |name: &str, flag: &str, problems: &mut Vec<String>| -> Option<Table> {
        match find(&selected, name) {
            Some(t) => Some(t.clone()),
            None => {
                problems.push(format!(
                    "{flag} names table {name:?}, which is not among the tables taken ({})",
                    names(&selected)
                ));
                None
            }
        }
    };
    let mut conditions: BTreeMap<String, String> = BTreeMap::new();
    for (t, c) in &s.conditions {
        if let Some(t) = in_selection(t, "--where", &mut problems) {
            if let Err(e) = subset::check_condition(conn, &t, c).await {
                problems.push(format!("--where {t}: {e}", t = t.name));
            }
            conditions.insert(t.name.to_string(), c.clone());
        }
    }
    for (t, c) in &s.subset {
        if let Some(t) = in_selection(t, "--subset", &mut problems) {
            if let Err(e) = subset::check_condition(conn, &t, c).await {
                problems.push(format!("--subset {}: {e}", t.name));
            }
        }
    }
    // A subset decides the rows of every table its roots reach through foreign keys;
    // a --where there would contradict it.
    let roots: Vec<TableName> = s
        .subset
        .iter()
        .filter_map(|(t, _)| find(&selected, t).map(|t| t.name.clone()))
        .collect();
    for name in connected(&selected, &roots) {
        if let Some((t, _)) = conditions.iter().find(|(t, _)| **t == name.to_string()) {
            problems.push(format!(
                "--where {t}: the subset decides which rows of {t} are taken (foreign keys connect it to a \
                 subset's root); drop the --where, or put the condition in the --subset"
            ));
        }
    }
    let mut specs: Vec<mask::MaskSpec> = Vec::new();
    for m in &s.masks {
        match mask::parse_masks(m) {
            Ok(more) => {
                for spec in more {
                    let same_table = |x: &mask::MaskSpec| {
                        mask::names_table(&x.table, &TableName::parse(&spec.table))
                            || mask::names_table(&spec.table, &TableName::parse(&x.table))
                    };
                    specs.retain(|x| !(same_table(x) && x.column.eq_ignore_ascii_case(&spec.column)));
                    specs.push(spec);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let taken: Vec<TableName> = selected.iter().map(|t| t.name.clone()).collect();
    if let Err(e) = mask::check_tables(&specs, &taken) {
        problems.push(e.to_string());
    }
    let salt = mask_salt()?;
    let mut chosen = Vec::new();
    for t in parents_first(selected.clone()) {
        // `mask::plan` takes the masks that name this table, by the same rule that
        // `check_tables` used: a name that fits several tables (`users` in two
        // PostgreSQL schemas) masks every one of them, never none.
        let table_mask = if specs.iter().any(|m| mask::names_table(&m.table, &t.name)) {
            match mask::plan(&t, &specs, &salt) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        // Columns of a type lockgate does not map cannot be written to a snapshot.
        for c in t
            .columns
            .iter()
            .filter(|c| matches!(c.kind, lockgate_core::Kind::Unsupported { .. }))
        {
            problems.push(format!(
                "{}.{}: lockgate does not map the type {}; leave the table out with --exclude {}",
                t.name, c.name, c.data_type, t.name
            ));
        }
        chosen.push(Chosen {
            condition: conditions.get(&t.name.to_string()).cloned(),
            table: t,
            mask: table_mask,
        });
    }
    problems.extend(mask_key_problems(&chosen));
    if !problems.is_empty() {
        return Err(SnapshotError::Invalid(problems));
    }
    if chosen.is_empty() {
        return Err(SnapshotError::one(
            "no tables to take: the database has none besides Lockgate's own, or --tables/--exclude left none",
        ));
    }
    Ok(chosen)
}

/// The tables among `tables` that foreign keys (either way, transitively) connect to
/// one of `roots`, the roots included: those whose rows a subset decides.
fn connected(tables: &[Table], roots: &[TableName]) -> Vec<TableName> {
    let mut reached: Vec<TableName> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for t in tables {
            if reached.contains(&t.name) {
                continue;
            }
            let linked = t
                .foreign_keys
                .iter()
                .any(|k| reached.iter().any(|r| r.same_as(&k.references)))
                || tables
                    .iter()
                    .any(|o| reached.contains(&o.name) && o.foreign_keys.iter().any(|k| k.references.same_as(&t.name)));
            if linked {
                reached.push(t.name.clone());
                grew = true;
            }
        }
    }
    reached
}

/// A foreign key whose two ends are not masked alike would reference values that no
/// longer exist: each end's rule must be the other's (both kept, or both the same
/// rule, which gives the same output for the same input).
fn mask_key_problems(chosen: &[Chosen]) -> Vec<String> {
    let rule = |table: &Table, column: &str| -> Option<String> {
        let c = chosen.iter().find(|c| c.table.name == table.name)?;
        c.mask
            .as_ref()?
            .describe()
            .into_iter()
            .find(|(col, _)| col.eq_ignore_ascii_case(column))
            .map(|(_, r)| r)
    };
    let mut problems = Vec::new();
    for c in chosen {
        for k in &c.table.foreign_keys {
            let Some(parent) = chosen.iter().find(|p| p.table.name.same_as(&k.references)) else {
                continue;
            };
            for (child_col, parent_col) in &k.columns {
                let (a, b) = (rule(&c.table, child_col), rule(&parent.table, parent_col));
                // `hash` fits its output to the column (a text's length, an integer's
                // width): the two ends give the same values only when typed alike.
                let kinds = (
                    c.table.column(child_col).map(|x| x.kind.describe()),
                    parent.table.column(parent_col).map(|x| x.kind.describe()),
                );
                if a.as_deref() == Some("hash") && a == b && kinds.0 != kinds.1 {
                    problems.push(format!(
                        "{}.{child_col} ({}) references {}.{parent_col} ({}): hash gives each type its own output, \
                         so the foreign key {} would break; mask both with fixed:VALUE, or neither",
                        c.table.name,
                        kinds.0.unwrap_or_default(),
                        parent.table.name,
                        kinds.1.unwrap_or_default(),
                        k.name
                    ));
                }
                if a != b {
                    let show = |r: &Option<String>| r.clone().unwrap_or_else(|| "unmasked".into());
                    problems.push(format!(
                        "{}.{child_col} ({}) references {}.{parent_col} ({}): mask both ends of the foreign key \
                         {} with the same rule, or neither",
                        c.table.name,
                        show(&a),
                        parent.table.name,
                        show(&b),
                        k.name
                    ));
                }
            }
        }
    }
    problems
}

/// The masks' salt: random per snapshot and never stored, so a masked value cannot
/// be traced back by hashing guesses, while within the snapshot the same input
/// always gives the same output.
fn mask_salt() -> Result<[u8; 32], SnapshotError> {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt)
        .map_err(|e| SnapshotError::Io(format!("the system's random source failed ({e}); masks need it")))?;
    Ok(salt)
}

/// Everything read in the snapshot transaction and written to the store; on failure
/// the snapshot's folder is removed.
async fn read_all(
    conn: &mut Conn,
    s: &Settings,
    chosen: Vec<Chosen>,
    store: &Store,
    profile: &Resolved,
    url: &DbUrl,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<(SnapshotManifest, Vec<TableReport>), SnapshotError> {
    let id = new_id();
    let folder = format!("{}/{id}/", profile.name);
    let result = write_snapshot(conn, s, chosen, store, profile, url, &id, progress).await;
    if result.is_err() {
        let _ = store.delete_prefix(&folder).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn write_snapshot(
    conn: &mut Conn,
    s: &Settings,
    chosen: Vec<Chosen>,
    store: &Store,
    profile: &Resolved,
    url: &DbUrl,
    id: &str,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<(SnapshotManifest, Vec<TableReport>), SnapshotError> {
    let (modules, applied) = if conn.lookup_table("lockgate_modules").await?.is_some() {
        let modules: BTreeMap<String, String> = versions::modules(conn).await?.into_iter().collect();
        let mut applied = Vec::new();
        for module in modules.keys() {
            for v in versions::applied_versions(conn, module).await? {
                applied.push(LedgerVersion {
                    module: v.module,
                    version: v.version,
                    status: v.status,
                    checksum: v.checksum,
                    parts_done: v.parts_done,
                    scripts: v.scripts,
                });
            }
        }
        (modules, applied)
    } else {
        (BTreeMap::new(), Vec::new())
    };
    let server_version = sql::server_version(conn).await?;
    let roots: Vec<SubsetRoot> = s
        .subset
        .iter()
        .filter_map(|(t, c)| {
            find(&chosen.iter().map(|x| x.table.clone()).collect::<Vec<_>>(), t).map(|t| SubsetRoot {
                table: t.name.clone(),
                condition: c.clone(),
            })
        })
        .collect();
    let tables: Vec<Table> = chosen.iter().map(|c| c.table.clone()).collect();
    let subset = if roots.is_empty() {
        None
    } else {
        Some(subset::closure(conn, &tables, &roots).await?)
    };
    // Row counts for the progress bar, in the same snapshot; a count is a scan of its
    // own, so only when someone watches.
    let mut total = 0u64;
    for c in chosen.iter().filter(|_| progress.is_some()) {
        total += match subset.as_ref().and_then(|x| x.row_count(&c.table.name)) {
            Some(n) => n,
            None => sql::count_rows(conn, &c.table, c.condition.as_deref()).await?,
        };
    }
    let spool_dir = tempfile::tempdir().map_err(|e| SnapshotError::Io(format!("cannot create a spool folder: {e}")))?;
    let mut entries = Vec::new();
    let mut reports = Vec::new();
    let mut done = 0u64;
    for (n, c) in chosen.iter().enumerate() {
        let name = c.table.name.to_string();
        let file = format!("data/{:04}-{}.tsv.zst", n + 1, file_stem(&name));
        let local = spool_dir.path().join(format!("{:04}.tsv.zst", n + 1));
        let send = |rows: u64| {
            if let Some(p) = progress {
                let _ = p.send(SnapshotProgress {
                    phase: "reading",
                    item: name.clone(),
                    rows,
                    total: Some(total),
                });
            }
        };
        send(done);
        let keys = subset.as_ref().and_then(|x| {
            let keys = x.keys(&c.table.name)?;
            Some((x.key_columns(&c.table.name).unwrap_or(&c.table.primary_key), keys))
        });

        let written = spool_table(conn, c, keys, &local, s.page, done, &send).await?;
        done += written.rows;
        upload(store, &format!("{}/{id}/{file}", profile.name), &local).await?;
        let _ = std::fs::remove_file(&local);
        let ddl = sql::source_ddl(conn, &c.table).await?;
        reports.push(TableReport {
            table: name.clone(),
            rows: written.rows,
            bytes: written.bytes,
            stored_bytes: written.stored_bytes,
        });
        let mut def = table_def(&c.table, ddl);
        for (col, seen) in def.columns.iter_mut().zip(&written.observed) {
            col.observed = *seen;
        }
        entries.push(TableEntry {
            def,
            file,
            rows: written.rows,
            bytes: written.bytes,
            stored_bytes: written.stored_bytes,
            sha256: written.sha256,
            condition: c.condition.clone(),
            masked: c.mask.as_ref().map(TableMask::describe).unwrap_or_default(),
            subset: keys.is_some(),
        });
    }
    let files = match &s.files {
        Some(dir) => upload_media(store, &format!("{}/{id}/", profile.name), media_files(dir)?, progress).await?,
        None => Vec::new(),
    };
    let manifest = SnapshotManifest {
        format: SNAPSHOT_FORMAT,
        id: id.to_string(),
        profile: profile.name.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        source: SourceInfo {
            engine: engine_name(conn.engine()).into(),
            server_version,
            database: url.redacted(),
        },
        modules,
        versions: applied,
        encoding: DATA_ENCODING.into(),
        subset: s.subset.iter().map(|(t, c)| format!("{t}: {c}")).collect(),
        tables: entries,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| SnapshotError::Io(e.to_string()))?;
    store.put_bytes(&manifest_key(&profile.name, id), json).await?;
    Ok((manifest, reports))
}

/// The engine's name in manifests.
pub(crate) fn engine_name(e: lockgate_db::Engine) -> &'static str {
    match e {
        lockgate_db::Engine::Postgres => "postgres",
        lockgate_db::Engine::Mysql => "mysql",
        lockgate_db::Engine::Sqlite => "sqlite",
    }
}

/// Writes one table's rows (all, those its condition picks, or the subset's keys)
/// into a spool file, masking on the way.
async fn spool_table(
    conn: &mut Conn,
    c: &Chosen,
    keys: Option<(&[String], &[Vec<Value>])>,
    local: &Path,
    page: usize,
    before: u64,
    send: &(dyn Fn(u64) + Sync),
) -> Result<Written, SnapshotError> {
    let kinds = c.table.columns.iter().map(|c| c.kind.clone()).collect();
    let io = |e: std::io::Error| SnapshotError::Io(format!("spooling table {}: {e}", c.table.name));
    let mut spool = Spool::create(local, kinds).map_err(io)?;
    let mut rows_done = 0u64;
    let mut last_sent = Instant::now();
    let take = |rows: Vec<Vec<Value>>, spool: &mut Spool| -> Result<(), SnapshotError> {
        for mut values in rows {
            if let Some(m) = &c.mask {
                m.apply(&mut values);
            }
            spool.row(&values).map_err(io)?;
        }
        Ok(())
    };
    match keys {
        None => {
            sql::stream_table(conn, &c.table, c.condition.as_deref(), page, &mut |rows: Vec<
                Vec<Value>,
            >| {
                rows_done += rows.len() as u64;
                take(rows, &mut spool)?;
                if last_sent.elapsed().as_millis() > 200 {
                    last_sent = Instant::now();
                    send(before + rows_done);
                }
                Ok::<(), SnapshotError>(())
            })
            .await?
        }
        Some((key_cols, keys)) => {
            for chunk in keys.chunks(page.max(1)) {
                let kv: Vec<lockgate_db::rows::KeyValues> = chunk
                    .iter()
                    .map(|k| key_cols.iter().cloned().zip(k.iter().cloned()).collect())
                    .collect();
                let rows = lockgate_db::rows::select_by_keys(conn, &c.table, &kv).await?;
                take(rows, &mut spool)?;
                send(before + spool.rows());
            }
        }
    }
    spool.finish().map_err(io)
}

/// Uploads a local file to `key`, streamed; its size and SHA-256 as uploaded (one
/// read: a file that changes meanwhile is stored as it was read, and checked so).
async fn upload(store: &Store, key: &str, local: &Path) -> Result<(u64, String), SnapshotError> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| SnapshotError::Io(format!("{}: {e}", local.display()));
    let mut f = tokio::fs::File::open(local).await.map_err(io)?;
    let mut w = store.writer(key).await?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        if let Err(e) = w.write(&buf[..n]).await {
            let _ = w.abort().await;
            return Err(e.into());
        }
    }
    let size = w.finish().await?;
    Ok((size, lockgate_core::copytext::hex_string(&hash.finalize())))
}

/// The media files under `dir` (symbolic links are not followed), each with the path
/// it is stored under; a name a store key cannot hold is refused here, before the
/// snapshot reads anything.
fn media_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found).map_err(|e| SnapshotError::Io(format!("reading {}: {e}", dir.display())))?;
    found.sort();
    let bad: Vec<String> = found
        .iter()
        .filter(|(rel, _)| rel.chars().any(|c| c == '#' || c == '\\' || c.is_control()))
        .map(|(rel, _)| format!("--files: {rel:?} has a character a store key cannot hold ('#', '\\\\' or a control character); rename it"))
        .collect();
    if bad.is_empty() {
        Ok(found)
    } else {
        Err(SnapshotError::Invalid(bad))
    }
}

/// Uploads the media files, checksummed as they are read.
async fn upload_media(
    store: &Store,
    folder: &str,
    found: Vec<(String, PathBuf)>,
    progress: Option<&UnboundedSender<SnapshotProgress>>,
) -> Result<Vec<MediaFile>, SnapshotError> {
    let mut out = Vec::new();
    for (rel, path) in found {
        if let Some(p) = progress {
            let _ = p.send(SnapshotProgress {
                phase: "files",
                item: rel.clone(),
                rows: out.len() as u64,
                total: None,
            });
        }
        let key = format!("files/{rel}");
        let (bytes, sha256) = upload(store, &format!("{folder}{key}"), &path).await?;
        out.push(MediaFile {
            path: rel,
            key,
            bytes,
            sha256,
        });
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ty = e.file_type()?;
        let path = e.path();
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}
