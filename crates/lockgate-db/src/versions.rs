//! The migration ledger: each module's current version, the versions applied (with
//! their checksums), the migration log, and the row images that let `rollback` put
//! data back. Tables: `lockgate_modules`, `lockgate_versions`,
//! `lockgate_migration_log`, `lockgate_row_images` (created by [`Ledger::open`]).
//!
//! Every function takes the connection to use, because where a write goes decides
//! what survives a rollback: a version's row and its row images are written on the
//! *data* connection, inside the version's transaction, so they commit or vanish with
//! its data; log entries are written after that transaction ends (or on the ledger's
//! side connection), so they outlive a failed version.
//!
//! [`Ledger::open`]: crate::ledger::Ledger::open

use crate::conn::Conn;
use crate::error::DbError;
use crate::ledger::{int, now, text};
use crate::url::Engine;
use lockgate_core::{TableName, Value};
use std::sync::Arc;

/// One version of a module as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppliedVersion {
    /// The module (`./` by default).
    pub module: String,
    /// The version, `x.y.z`.
    pub version: String,
    /// `applied`, or `partial` when a committed part ran and the rest did not.
    pub status: String,
    /// The checksum of the version folder's files when it ran.
    pub checksum: String,
    /// Parts committed (a version is split into parts by process scripts).
    pub parts_done: i64,
    /// The scripts it ran, whose effects a rollback cannot undo.
    pub scripts: Vec<String>,
    /// The run that applied it.
    pub run_id: Option<i64>,
    /// When.
    pub applied_at: String,
}

/// One entry of the migration log (the seed's `MigrationLog`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LogEntry {
    /// Its id (0 before it is written).
    pub id: i64,
    /// The run that wrote it.
    pub run_id: Option<i64>,
    /// `INFO`, `WARN` or `ERROR`.
    pub log_type: String,
    /// The module.
    pub module: String,
    /// The version.
    pub version: Option<String>,
    /// The table (the seed's `model`).
    pub table: Option<String>,
    /// The tenant (the context's tenantId).
    pub tenant: Option<String>,
    /// The file.
    pub file: Option<String>,
    /// When (empty before it is written).
    pub logged_at: String,
    /// `{"message": {"total": …, "success": …, "failed": …}}`, or a failing record's
    /// `{"message": "…", "data": {…}}`, or `{"message": "…"}`.
    pub message: serde_json::Value,
}

/// Which log entries to read.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Only this module.
    pub module: Option<String>,
    /// Only these types (`INFO`, `WARN`, `ERROR`).
    pub types: Vec<String>,
    /// Only this table.
    pub table: Option<String>,
    /// Only this version.
    pub version: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// At most this many, newest first (0: 1,000).
    pub limit: u32,
}

/// What a write did to one row, so that a rollback can undo it.
#[derive(Clone, Debug, PartialEq)]
pub struct RowImage {
    /// The table.
    pub table: String,
    /// `i` inserted, `u` updated, `d` deleted.
    pub op: char,
    /// The key, column → value.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// The whole row before (`None` for an insert).
    pub before: Option<serde_json::Map<String, serde_json::Value>>,
    /// The columns the write set, after it (`None` for a delete, and for an insert,
    /// which keeps only `after_fingerprint`).
    pub after: Option<serde_json::Map<String, serde_json::Value>>,
    /// For an insert: the fingerprint of the columns it set.
    pub after_fingerprint: Option<Fingerprint>,
}

impl RowImage {
    /// The image of a row about to be deleted from `table`: the whole row (its
    /// `columns` and `values`) before, named by the `key` columns' values. Deletes
    /// recorded page by page (a sync's, `clearTables`') are built here.
    pub fn deleted(table: &TableName, columns: &[String], values: &[Value], key: &[String]) -> RowImage {
        let before: serde_json::Map<String, serde_json::Value> =
            columns.iter().cloned().zip(values.iter().map(Value::to_json)).collect();
        RowImage {
            table: table.to_string(),
            op: 'd',
            key: key
                .iter()
                .map(|k| (k.clone(), before.get(k).cloned().unwrap_or_default()))
                .collect(),
            before: Some(before),
            after: None,
            after_fingerprint: None,
        }
    }
}

/// A row's [`fingerprint`](lockgate_core::fingerprint) over some of its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The columns, in the order hashed (shared by the images of one inserted batch).
    pub columns: Arc<Vec<String>>,
    /// The fingerprint.
    pub value: String,
}

/// The rows one batch inserted, stored as one ledger row (op `I`): a first load of
/// a million rows then writes a hundred image rows, not a million.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InsertedRows {
    /// The table.
    pub table: String,
    /// The key columns.
    pub key_columns: Vec<String>,
    /// Each row's key values, in `key_columns` order.
    pub keys: Vec<Vec<serde_json::Value>>,
    /// The columns the rows were given.
    pub columns: Vec<String>,
    /// Each row's fingerprint over `columns`.
    pub fingerprints: Vec<String>,
}

/// Row images read back, with their version.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredImage {
    /// The version that wrote it.
    pub version: String,
    /// The image.
    pub image: RowImage,
}

fn opt_text(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

fn params(conn: &Conn, n: usize) -> Vec<String> {
    let d = conn.dialect();
    (1..=n).map(|i| d.param(i)).collect()
}

/// The module's current version, if it has one.
pub async fn module_version(conn: &mut Conn, module: &str) -> Result<Option<String>, DbError> {
    let p = params(conn, 1);
    let rows = conn
        .query(
            &format!("SELECT version FROM lockgate_modules WHERE module = {}", p[0]),
            &[Value::Text(module.into())],
            None,
        )
        .await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(text))
}

/// Every module with its current version.
pub async fn modules(conn: &mut Conn) -> Result<Vec<(String, String)>, DbError> {
    let rows = conn
        .query(
            "SELECT module, version FROM lockgate_modules ORDER BY module",
            &[],
            None,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (text(&r[0]).unwrap_or_default(), text(&r[1]).unwrap_or_default()))
        .collect())
}

/// Sets the module's current version.
pub async fn set_module_version(conn: &mut Conn, module: &str, version: &str) -> Result<(), DbError> {
    let p = params(conn, 3);
    conn.execute(
        &format!("DELETE FROM lockgate_modules WHERE module = {}", p[0]),
        &[Value::Text(module.into())],
    )
    .await?;
    conn.execute(
        &format!(
            "INSERT INTO lockgate_modules (module, version, updated_at) VALUES ({}, {}, {})",
            p[0], p[1], p[2]
        ),
        &[Value::Text(module.into()), Value::Text(version.into()), now()],
    )
    .await?;
    Ok(())
}

/// The versions of a module the ledger knows, in no particular order.
pub async fn applied_versions(conn: &mut Conn, module: &str) -> Result<Vec<AppliedVersion>, DbError> {
    let p = params(conn, 1);
    let rows = conn
        .query(
            &format!(
                "SELECT module, version, status, checksum, parts_done, scripts, run_id, applied_at \
                 FROM lockgate_versions WHERE module = {}",
                p[0]
            ),
            &[Value::Text(module.into())],
            None,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AppliedVersion {
            module: text(&r[0]).unwrap_or_default(),
            version: text(&r[1]).unwrap_or_default(),
            status: text(&r[2]).unwrap_or_default(),
            checksum: text(&r[3]).unwrap_or_default(),
            parts_done: int(&r[4]).unwrap_or(0),
            scripts: text(&r[5])
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            run_id: int(&r[6]),
            applied_at: text(&r[7]).unwrap_or_default(),
        })
        .collect())
}

/// Records (or replaces) a version's row.
pub async fn record_version(conn: &mut Conn, v: &AppliedVersion) -> Result<(), DbError> {
    let p = params(conn, 8);
    conn.execute(
        &format!(
            "DELETE FROM lockgate_versions WHERE module = {} AND version = {}",
            p[0], p[1]
        ),
        &[Value::Text(v.module.clone()), Value::Text(v.version.clone())],
    )
    .await?;
    conn.execute(
        &format!(
            "INSERT INTO lockgate_versions (module, version, status, checksum, parts_done, scripts, run_id, applied_at) \
             VALUES ({})",
            p.join(", ")
        ),
        &[
            Value::Text(v.module.clone()),
            Value::Text(v.version.clone()),
            Value::Text(v.status.clone()),
            Value::Text(v.checksum.clone()),
            Value::Int(v.parts_done),
            Value::Text(serde_json::to_string(&v.scripts).unwrap_or_else(|_| "[]".into())),
            v.run_id.map_or(Value::Null, Value::Int),
            now(),
        ],
    )
    .await?;
    Ok(())
}

/// Forgets versions of a module, with their row images (after a rollback).
pub async fn forget_versions(conn: &mut Conn, module: &str, versions: &[String]) -> Result<(), DbError> {
    let p = params(conn, 2);
    for v in versions {
        for table in ["lockgate_versions", "lockgate_row_images"] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE module = {} AND version = {}", p[0], p[1]),
                &[Value::Text(module.into()), Value::Text(v.clone())],
            )
            .await?;
        }
    }
    Ok(())
}

/// Forgets the row images a version wrote (before it is applied again).
pub async fn forget_images(conn: &mut Conn, module: &str, version: &str) -> Result<(), DbError> {
    let p = params(conn, 2);
    conn.execute(
        &format!(
            "DELETE FROM lockgate_row_images WHERE module = {} AND version = {}",
            p[0], p[1]
        ),
        &[Value::Text(module.into()), Value::Text(version.into())],
    )
    .await?;
    Ok(())
}

/// Appends log entries (ids and times are the ledger's).
pub async fn write_logs(conn: &mut Conn, entries: &[LogEntry]) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    let columns = Arc::new(
        [
            "run_id",
            "log_type",
            "module",
            "version",
            "table_name",
            "tenant",
            "file_path",
            "logged_at",
            "message",
        ]
        .map(String::from)
        .to_vec(),
    );
    let t = now();
    let rows: Vec<lockgate_core::Row> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| lockgate_core::Row {
            line: i as u64 + 1,
            number: 0,
            values: vec![
                e.run_id.map_or(Value::Null, Value::Int),
                Value::Text(e.log_type.clone()),
                Value::Text(e.module.clone()),
                opt_text(&e.version),
                opt_text(&e.table),
                opt_text(&e.tenant),
                opt_text(&e.file),
                t.clone(),
                Value::Text(e.message.to_string()),
            ],
        })
        .collect();
    for chunk in rows.chunks(5_000) {
        let outcome = conn
            .bulk_insert(&TableName::new("lockgate_migration_log"), &columns, chunk, None)
            .await?;
        if let Some((_, e)) = outcome.row_errors.into_iter().next() {
            return Err(DbError::engine("writing the migration log", e));
        }
    }
    Ok(())
}

/// Reads log entries, newest first.
pub async fn read_logs(conn: &mut Conn, filter: &LogFilter) -> Result<Vec<LogEntry>, DbError> {
    let d = conn.dialect();
    let mut cond = Vec::new();
    let mut values = Vec::new();
    let mut add = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            values.push(Value::Text(v.clone()));
            cond.push(format!("{col} = {}", d.param(values.len())));
        }
    };
    add("module", &filter.module);
    add("table_name", &filter.table);
    add("version", &filter.version);
    add("tenant", &filter.tenant);
    if !filter.types.is_empty() {
        let mut list = Vec::new();
        for t in &filter.types {
            values.push(Value::Text(t.to_uppercase()));
            list.push(d.param(values.len()));
        }
        cond.push(format!("log_type IN ({})", list.join(", ")));
    }
    let filter_sql = if cond.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", cond.join(" AND "))
    };
    let limit = if filter.limit == 0 { 1000 } else { filter.limit };
    let sql = format!(
        "SELECT id, run_id, log_type, module, version, table_name, tenant, file_path, logged_at, message \
         FROM lockgate_migration_log {filter_sql} ORDER BY id DESC LIMIT {limit}"
    );
    let rows = conn.query(&sql, &values, None).await?;
    Ok(rows
        .into_iter()
        .map(|r| LogEntry {
            id: int(&r[0]).unwrap_or(0),
            run_id: int(&r[1]),
            log_type: text(&r[2]).unwrap_or_default(),
            module: text(&r[3]).unwrap_or_default(),
            version: text(&r[4]),
            table: text(&r[5]),
            tenant: text(&r[6]),
            file: text(&r[7]),
            logged_at: text(&r[8]).unwrap_or_default(),
            message: text(&r[9])
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// Appends row images of a version (inside its transaction, on its connection).
pub async fn write_images(conn: &mut Conn, module: &str, version: &str, images: &[RowImage]) -> Result<(), DbError> {
    if images.is_empty() {
        return Ok(());
    }
    let columns = Arc::new(
        [
            "module",
            "version",
            "table_name",
            "op",
            "key_json",
            "before_json",
            "after_json",
        ]
        .map(String::from)
        .to_vec(),
    );
    let json = |m: &Option<serde_json::Map<String, serde_json::Value>>| {
        m.as_ref().map_or(Value::Null, |m| {
            Value::Text(serde_json::Value::Object(m.clone()).to_string())
        })
    };
    let rows: Vec<lockgate_core::Row> = images
        .iter()
        .enumerate()
        .map(|(i, img)| lockgate_core::Row {
            line: i as u64 + 1,
            number: 0,
            values: vec![
                Value::Text(module.into()),
                Value::Text(version.into()),
                Value::Text(img.table.clone()),
                Value::Text(img.op.to_string()),
                Value::Text(serde_json::Value::Object(img.key.clone()).to_string()),
                json(&img.before),
                json(&img.after),
            ],
        })
        .collect();
    let outcome = conn
        .bulk_insert(&TableName::new("lockgate_row_images"), &columns, &rows, None)
        .await?;
    if let Some((_, e)) = outcome.row_errors.into_iter().next() {
        return Err(DbError::engine("writing row images", e));
    }
    Ok(())
}

/// Appends the rows a batch inserted (one ledger row).
pub async fn write_inserted(conn: &mut Conn, module: &str, version: &str, rows: &InsertedRows) -> Result<(), DbError> {
    if rows.keys.is_empty() {
        return Ok(());
    }
    let p = params(conn, 6);
    let key = serde_json::json!({ "columns": rows.key_columns, "rows": rows.keys });
    let after = serde_json::json!({ "columns": rows.columns, "fingerprints": rows.fingerprints });
    conn.execute(
        &format!(
            "INSERT INTO lockgate_row_images (module, version, table_name, op, key_json, after_json) VALUES ({})",
            p.join(", ")
        ),
        &[
            Value::Text(module.into()),
            Value::Text(version.into()),
            Value::Text(rows.table.clone()),
            Value::Text("I".into()),
            Value::Text(key.to_string()),
            Value::Text(after.to_string()),
        ],
    )
    .await?;
    Ok(())
}

/// An `I` ledger row (see [`InsertedRows`]) being expanded into one image per row,
/// a page's worth at a time: its keys stay JSON until their images are taken.
struct Inserted {
    version: String,
    table: String,
    /// The key columns.
    names: Vec<String>,
    /// The columns the fingerprints cover; `None` when fingerprints are not read.
    columns: Option<Arc<Vec<String>>>,
    rows: std::vec::IntoIter<serde_json::Value>,
    prints: std::vec::IntoIter<serde_json::Value>,
}

impl Inserted {
    /// The `I` row of `version` and `table` with `key` (its `key_json`) and, when
    /// fingerprints are read, `after` (its `after_json`).
    fn parse(version: String, table: String, key: &str, after: Option<&str>, fingerprints: bool) -> Inserted {
        let strings = |v: Option<serde_json::Value>| -> Vec<String> {
            match v {
                Some(serde_json::Value::Array(a)) => a.iter().filter_map(|c| c.as_str().map(String::from)).collect(),
                _ => Vec::new(),
            }
        };
        let array = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let object = |text: Option<&str>| match text.and_then(|t| serde_json::from_str(t).ok()) {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let mut key = object(Some(key));
        let (columns, prints) = if fingerprints {
            let mut after = object(after);
            (
                Some(Arc::new(strings(after.remove("columns")))),
                array(after.remove("fingerprints")),
            )
        } else {
            (None, Vec::new())
        };
        Inserted {
            version,
            table,
            names: strings(key.remove("columns")),
            columns,
            rows: array(key.remove("rows")).into_iter(),
            prints: prints.into_iter(),
        }
    }

    /// Appends the images of up to `n` more of its rows to `out`; true when none is left.
    fn take(&mut self, n: usize, out: &mut Vec<StoredImage>) -> bool {
        for _ in 0..n {
            let Some(row) = self.rows.next() else { break };
            let print = self.prints.next();
            let values = match row {
                serde_json::Value::Array(a) => a,
                _ => Vec::new(),
            };
            out.push(StoredImage {
                version: self.version.clone(),
                image: RowImage {
                    table: self.table.clone(),
                    op: 'i',
                    key: self.names.iter().cloned().zip(values).collect(),
                    before: None,
                    after: None,
                    after_fingerprint: match (&self.columns, print) {
                        (Some(columns), Some(serde_json::Value::String(value))) => Some(Fingerprint {
                            columns: columns.clone(),
                            value,
                        }),
                        _ => None,
                    },
                },
            });
        }
        self.rows.len() == 0
    }
}

/// The row images of a module's versions, in the order they were written.
pub async fn read_images(conn: &mut Conn, module: &str, versions: &[String]) -> Result<Vec<StoredImage>, DbError> {
    read_images_after(conn, module, versions, 0).await
}

/// The id of the last row image written (0: none): what [`read_images_after`] reads
/// from, to see only the images a write makes from now on.
pub async fn last_image_id(conn: &mut Conn) -> Result<i64, DbError> {
    let rows = conn.query("SELECT MAX(id) FROM lockgate_row_images", &[], None).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(int).unwrap_or(0))
}

/// Like [`read_images`], only the images written after the one numbered `after`.
pub async fn read_images_after(
    conn: &mut Conn,
    module: &str,
    versions: &[String],
    after: i64,
) -> Result<Vec<StoredImage>, DbError> {
    let mut out = Vec::new();
    let mut pages = ImagePages::new(module, versions, after, IMAGE_PAGE);
    while let Some(page) = pages.next_page(conn).await? {
        out.extend(page);
    }
    Ok(out)
}

/// The most images an [`ImagePages`] page holds by default.
pub const IMAGE_PAGE: usize = 1_000;

/// A module's row images read a page at a time: version by version, in the order
/// they were written, each page the images after the last one read (keyset on the
/// ledger's `id`, which the index `(module, version, id)` serves), so that a caller
/// comparing many images holds one page, never all of them.
///
/// A page is bounded in images, not ledger rows: one `I` row holds the keys of a
/// whole inserted batch (10,000 by default), so its images are handed out a page's
/// worth at a time and the rest kept for the next page. The page query reads an `I`
/// row's id only, and its keys are fetched alone when the page reaches it, so what
/// is held at once is at most a page of images plus one `I` row's keys (one writer
/// batch, what the writer held when it wrote them).
pub struct ImagePages {
    module: String,
    versions: Vec<String>,
    /// The version being read (an index into `versions`).
    at: usize,
    /// The first id of every version: images after it.
    start: i64,
    /// The last id read of the version being read.
    after: i64,
    /// The most images a page holds.
    page: usize,
    /// Whether inserted rows' images carry their fingerprints.
    fingerprints: bool,
    /// The rest of an `I` row whose images did not all fit in the last page.
    pending: Option<Inserted>,
}

impl ImagePages {
    /// The images of `versions` (in that order) written after the one numbered
    /// `after` (0: all), at most `page` images at a time.
    pub fn new(module: &str, versions: &[String], after: i64, page: usize) -> ImagePages {
        ImagePages {
            module: module.into(),
            versions: versions.to_vec(),
            at: 0,
            start: after,
            after,
            page: page.max(1),
            fingerprints: true,
            pending: None,
        }
    }

    /// Reads inserted rows' images without their fingerprints (`after_fingerprint`
    /// is `None`), for a caller that compares rows by key only.
    pub fn without_fingerprints(mut self) -> ImagePages {
        self.fingerprints = false;
        self
    }

    /// The next page of images (never empty, at most the page size), or `None`
    /// after the last.
    pub async fn next_page(&mut self, conn: &mut Conn) -> Result<Option<Vec<StoredImage>>, DbError> {
        let p = params(conn, 3);
        let mut out = Vec::new();
        loop {
            if let Some(pending) = &mut self.pending {
                if pending.take(self.page - out.len(), &mut out) {
                    self.pending = None;
                }
            }
            if out.len() >= self.page {
                break;
            }
            let Some(v) = self.versions.get(self.at) else { break };
            // Each ledger row is at least one image, so no more rows than images wanted.
            let want = self.page - out.len();
            let rows = conn
                .query(
                    &format!(
                        "SELECT id, version, table_name, op, CASE WHEN op = 'I' THEN NULL ELSE key_json END, \
                         before_json, CASE WHEN op = 'I' THEN NULL ELSE after_json END FROM lockgate_row_images \
                         WHERE module = {} AND version = {} AND id > {} ORDER BY id LIMIT {want}",
                        p[0], p[1], p[2]
                    ),
                    &[
                        Value::Text(self.module.clone()),
                        Value::Text(v.clone()),
                        Value::Int(self.after),
                    ],
                    None,
                )
                .await?;
            let mut used = 0;
            for r in &rows {
                used += 1;
                if let Some(id) = int(&r[0]) {
                    self.after = id;
                }
                if text(&r[3]).as_deref() == Some("I") {
                    let mut inserted = self.inserted(conn, r).await?;
                    if !inserted.take(self.page - out.len(), &mut out) {
                        self.pending = Some(inserted);
                    }
                } else {
                    out.push(stored_image(r));
                }
                if out.len() >= self.page {
                    break;
                }
            }
            if rows.len() < want && used == rows.len() {
                // Every row of this version is read; the next one from the start.
                self.at += 1;
                self.after = self.start;
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// The `I` row `r` (as the page query read it), its keys fetched by its id.
    async fn inserted(&self, conn: &mut Conn, r: &[Value]) -> Result<Inserted, DbError> {
        let d = conn.dialect();
        let after = if self.fingerprints { "after_json" } else { "NULL" };
        let rows = conn
            .query(
                &format!(
                    "SELECT key_json, {after} FROM lockgate_row_images WHERE id = {}",
                    d.param(1)
                ),
                &[r[0].clone()],
                None,
            )
            .await?;
        let (key, after) = rows
            .first()
            .map(|row| (text(&row[0]).unwrap_or_default(), text(&row[1])))
            .unwrap_or_default();
        Ok(Inserted::parse(
            text(&r[1]).unwrap_or_default(),
            text(&r[2]).unwrap_or_default(),
            &key,
            after.as_deref(),
            self.fingerprints,
        ))
    }
}

/// The image of one ledger row other than `I` (`id, version, table_name, op,
/// key_json, before_json, after_json`), with the version the row names.
fn stored_image(r: &[Value]) -> StoredImage {
    let obj = |v: &Value| -> Option<serde_json::Map<String, serde_json::Value>> {
        text(v).and_then(|s| match serde_json::from_str(&s) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        })
    };
    StoredImage {
        version: text(&r[1]).unwrap_or_default(),
        image: RowImage {
            table: text(&r[2]).unwrap_or_default(),
            op: text(&r[3]).and_then(|s| s.chars().next()).unwrap_or('?'),
            key: obj(&r[4]).unwrap_or_default(),
            before: obj(&r[5]),
            after: obj(&r[6]),
            after_fingerprint: None,
        },
    }
}

/// Whether the engine lets a second connection write while a data transaction is
/// open (not SQLite: one writer per file).
pub fn side_writes_allowed(engine: Engine) -> bool {
    engine != Engine::Sqlite
}
