//! What the Snapshots page and the snapshot endpoints share, on top of
//! `lockgate::snapshot`: data profiles (from `lockgate.toml` and the pin files in
//! the migrations folder's `profiles/`), their snapshots, one snapshot's manifest and
//! stored files (streamed, for downloads), and taking and restoring snapshots as
//! jobs whose progress goes out over the job events. No SQL here: a snapshot or a
//! restore reaches its database only through the library, and only on one of the
//! server's named connections (a request never gives a URL).

use crate::error::AppError;
use crate::jobs::{JobFailure, JobOutcome, Progress};
use crate::service::{find_connection, Refresh};
use crate::state::{NamedConnection, Shared};
use lockgate::snapshot::{self, catalog, profile, ProfileInfo, SnapshotError, SnapshotProgress, SnapshotSummary};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A library error as the server answers it: the exit code decides the status
/// (ARCHITECTURE.md's conventions: 2 is 400, and every problem is listed).
pub fn snapshot_error(e: SnapshotError) -> AppError {
    let code = e.exit_code();
    match e {
        SnapshotError::Invalid(list) => AppError::from_exit(code, list.join("\n")).with_errors(list),
        other => AppError::from_exit(code, other.to_string()),
    }
}

/// Every profile with its newest snapshot, its size and module versions; a store
/// that cannot be read is said in the profile's `error`.
pub async fn profiles(st: &Shared) -> Result<Vec<ProfileInfo>, AppError> {
    snapshot::list_profiles(&st.cfg.config, &st.cfg.migrations_dir)
        .await
        .map_err(snapshot_error)
}

/// A profile's store, opened; an unknown profile is 400 naming it and listing the
/// known ones.
async fn profile_store(st: &Shared, name: &str) -> Result<snapshot::Store, AppError> {
    let p = profile::resolve(&st.cfg.config, &st.cfg.migrations_dir, name, None).map_err(snapshot_error)?;
    profile::open_store(&st.cfg.config, &p.store_url).map_err(snapshot_error)
}

/// A profile's snapshots, oldest first.
pub async fn snapshots(st: &Shared, name: &str) -> Result<Vec<SnapshotSummary>, AppError> {
    let store = profile_store(st, name).await?;
    catalog::list(&store, Some(name)).await.map_err(snapshot_error)
}

/// One snapshot's manifest, as its JSON (an unknown id is 400 naming it).
pub async fn show(st: &Shared, name: &str, id: &str) -> Result<serde_json::Value, AppError> {
    let store = profile_store(st, name).await?;
    let m = catalog::show(&store, Some(name), id).await.map_err(snapshot_error)?;
    serde_json::to_value(&m).map_err(|e| AppError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A stored file's bytes, chunk by chunk as the store hands them out (memory: one
/// chunk); a read that fails ends the stream with its error.
pub type FileStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>;

/// A stored file of a snapshot, opened for streaming, and the name to save it
/// under. Only the files its manifest lists (`manifest.json`, its tables' data files
/// and its media) can be read: a key is never taken from the request as given.
pub async fn open_file(st: &Shared, name: &str, id: &str, key: &str) -> Result<(FileStream, String), AppError> {
    let store = profile_store(st, name).await?;
    let m = catalog::show(&store, Some(name), id).await.map_err(snapshot_error)?;
    let listed =
        key == "manifest.json" || m.tables.iter().any(|t| t.file == key) || m.files.iter().any(|f| f.key == key);
    if !listed {
        return Err(AppError::not_found(format!(
            "snapshot {id} of profile {name} has no file {key:?}: its manifest (GET /api/snapshots/{name}/{id}) \
             lists the data files"
        )));
    }
    let reader = store
        .reader(&format!("{}/{}/{key}", m.profile, m.id))
        .await
        .map_err(|e| snapshot_error(e.into()))?;
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let base = key.rsplit('/').next().unwrap_or(key);
    Ok((Box::pin(stream), format!("{name}-{id}-{base}")))
}

/// A snapshot to take: `POST /api/snapshots`'s body, and the page's form.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The profile (`[profiles.NAME]` in lockgate.toml, or pinned in
    /// `db/profiles/`): its store, tables, conditions, subset and masks apply.
    pub profile: String,
    /// The connection to take it from (one of the server's); default the one the
    /// profile's `db` names, else the server's default database.
    #[serde(default)]
    pub conn: Option<String>,
}

/// A restore: `POST /api/restores`'s body, and the page's forms.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The profile.
    pub profile: String,
    /// The snapshot; default the profile's pinned one, else its newest.
    #[serde(default)]
    pub id: Option<String>,
    /// The connection to restore into (one of the server's).
    pub into: String,
    /// Empty the snapshot's tables in the target first (else a table with rows is
    /// refused).
    #[serde(default)]
    pub replace: bool,
    /// Check everything (the snapshot, its files' checksums, the target's tables
    /// and types) and write nothing: the dry check to run first.
    #[serde(default)]
    pub check_only: bool,
}

/// Sends a snapshot's or restore's progress to its job: rows done of the total,
/// and the phase and table at hand.
async fn forward(mut rx: mpsc::UnboundedReceiver<SnapshotProgress>, p: Progress) {
    while let Some(e) = rx.recv().await {
        let what = if e.item.is_empty() {
            e.phase.to_string()
        } else {
            format!("{} {}", e.phase, e.item)
        };
        p.set(e.rows, e.total, Some(what));
    }
}

/// A job's end from a library error: bad input (exit 2) is a failed job whose
/// result lists every problem (`errors`), the rest a failure with its exit code.
fn failed(e: SnapshotError, echo: serde_json::Value) -> Result<JobOutcome, JobFailure> {
    match e {
        SnapshotError::Invalid(list) => Ok(JobOutcome {
            message: list.join("\n"),
            result: serde_json::json!({ "errors": list, "request": echo }),
            failed: true,
            exit_code: Some(2),
        }),
        other => Err(JobFailure::new(other.exit_code(), other.to_string())),
    }
}

/// Checks a snapshot request and starts it as a job (`snapshot`). What needs no
/// database is refused here: an unknown profile (400, naming it) or connection
/// (404), no connection to take it from (400).
pub fn start_snapshot(st: &Shared, req: SnapshotRequest) -> Result<u64, AppError> {
    let name = req.profile.trim().to_string();
    profile::resolve(&st.cfg.config, &st.cfg.migrations_dir, &name, None).map_err(snapshot_error)?;
    let c: NamedConnection = match req.conn.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(conn) => find_connection(st, conn)?.clone(),
        None => st
            .cfg
            .profile_connection(&name)
            .or_else(|| st.cfg.migrate_conn())
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = st.cfg.connections.iter().map(|c| c.name.as_str()).collect();
                AppError::bad(format!(
                    "say which connection to take the snapshot from: conn=NAME (the connections are {}), \
                     or give the profile a db in lockgate.toml",
                    names.join(", ")
                ))
            })?,
    };
    let opts = snapshot::SnapshotOptions {
        profile: name.clone(),
        dir: st.cfg.migrations_dir.clone(),
        ..snapshot::SnapshotOptions::default()
    };
    let echo = serde_json::json!({ "profile": name, "conn": c.name });
    let config = st.cfg.config.clone();
    let title = format!("Snapshot of {} (profile {name})", c.name);
    Ok(st.jobs.spawn("snapshot", title, move |p| async move {
        let (tx, rx) = mpsc::unbounded_channel();
        let forwarding = tokio::spawn(forward(rx, p.clone()));
        let result = snapshot::snapshot(&config, &c.url, &opts, Some(tx)).await;
        let _ = forwarding.await;
        let report = match result {
            Ok(r) => r,
            Err(e) => return failed(e, echo),
        };
        let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
        // The bar ends full, whatever the last progress event said.
        p.set(rows, Some(rows), None);
        let message = format!(
            "snapshot {}: {} table(s), {rows} rows, {} stored",
            report.id,
            report.tables.len(),
            bytes_text(report.stored_bytes)
        );
        let mut result = serde_json::to_value(&report).map_err(|e| JobFailure::new(1, e.to_string()))?;
        result["request"] = echo;
        Ok(JobOutcome {
            result,
            failed: false,
            exit_code: None,
            message,
        })
    }))
}

/// Checks a restore request and starts it as a job (`restore_check` with
/// `check_only`, else `restore`). An unknown profile is 400 naming it, an unknown
/// connection 404; the rest (the snapshot id, the target's tables and types, the
/// files' checksums) is the engine's, and fails the job with exit code 2.
pub fn start_restore(st: &Shared, req: RestoreRequest) -> Result<u64, AppError> {
    let name = req.profile.trim().to_string();
    profile::resolve(&st.cfg.config, &st.cfg.migrations_dir, &name, None).map_err(snapshot_error)?;
    if req.into.trim().is_empty() {
        return Err(AppError::bad(
            "say which connection to restore into: `into` (one of the server's connections)",
        ));
    }
    let c = crate::service::writable_connection(st, req.into.trim())?.clone();
    let id = req
        .id
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(String::from);
    let opts = snapshot::RestoreOptions {
        profile: name.clone(),
        dir: st.cfg.migrations_dir.clone(),
        id: id.clone(),
        replace: req.replace,
        check_only: req.check_only,
        ..snapshot::RestoreOptions::default()
    };
    let echo = serde_json::json!({
        "profile": name, "id": id, "into": c.name, "replace": req.replace, "check_only": req.check_only,
    });
    let config = st.cfg.config.clone();
    let state = Arc::clone(st);
    let check = req.check_only;
    let title = format!(
        "{} {} of profile {name} into {}{}",
        if check { "Check: restore" } else { "Restore" },
        id.as_deref().unwrap_or("the pinned or newest snapshot"),
        c.name,
        if req.replace { ", replacing its tables" } else { "" }
    );
    let kind = if check { "restore_check" } else { "restore" };
    Ok(st.jobs.spawn(kind, title, move |p| async move {
        // A restore may fill a transfer's source: the Export buttons count again.
        let _refresh = (!check).then(|| Refresh(state));
        let (tx, rx) = mpsc::unbounded_channel();
        let forwarding = tokio::spawn(forward(rx, p.clone()));
        let result = snapshot::restore(&config, &c.url, &opts, Some(tx)).await;
        let _ = forwarding.await;
        let report = match result {
            Ok(r) => r,
            Err(e) => return failed(e, echo),
        };
        let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
        // The bar ends full, whatever the last progress event said.
        p.set(rows, Some(rows), None);
        let created = report.tables.iter().filter(|t| t.created).count();
        let replaced = report.tables.iter().filter(|t| t.replaced).count();
        let message = format!(
            "{} {} into {}: {} table(s) ({created} to create, {replaced} to replace), {rows} rows{}",
            if check {
                "the check passed: snapshot"
            } else {
                "restored snapshot"
            },
            report.id,
            c.name,
            report.tables.len(),
            if check { ", nothing was written" } else { "" }
        );
        let message = if check {
            message
        } else {
            message
                .replace(" to create", " created")
                .replace(" to replace", " replaced")
        };
        let mut result = serde_json::to_value(&report).map_err(|e| JobFailure::new(1, e.to_string()))?;
        result["request"] = echo;
        Ok(JobOutcome {
            result,
            failed: false,
            exit_code: None,
            message,
        })
    }))
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
