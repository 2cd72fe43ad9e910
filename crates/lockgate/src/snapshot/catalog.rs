//! The snapshots in a store: listed from their manifests (a folder without one is not
//! a snapshot: an interrupted or unfinished write), shown, deleted, pruned.

use super::{manifest_key, SnapshotError};
use lockgate_bundle::SnapshotManifest;
use lockgate_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;

/// One snapshot in a listing.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SnapshotSummary {
    /// Its id.
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// The source's engine.
    pub engine: String,
    /// Tables.
    pub tables: usize,
    /// Rows in all tables.
    pub rows: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Module versions.
    pub modules: BTreeMap<String, String>,
    /// Whether only a subset of the rows was taken.
    pub subset: bool,
    /// Masked columns, as `table.column=rule`.
    pub masked: Vec<String>,
}

impl SnapshotSummary {
    /// The summary of a manifest.
    pub fn of(m: &SnapshotManifest) -> SnapshotSummary {
        SnapshotSummary {
            id: m.id.clone(),
            profile: m.profile.clone(),
            created: m.created.clone(),
            engine: m.source.engine.clone(),
            tables: m.tables.len(),
            rows: m.rows(),
            stored_bytes: m.stored_bytes(),
            modules: m.modules.clone(),
            subset: !m.subset.is_empty(),
            masked: m
                .tables
                .iter()
                .flat_map(|t| {
                    t.masked
                        .iter()
                        .map(move |(c, r)| format!("{}.{c}={r}", t.def.display_name()))
                })
                .collect(),
        }
    }
}

/// Reads a snapshot's manifest; a missing one is "no such snapshot" (exit 2).
pub async fn read_manifest(store: &Store, profile: &str, id: &str) -> Result<SnapshotManifest, SnapshotError> {
    let key = manifest_key(profile, id);
    let bytes = match store.get_bytes(&key).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => {
            return Err(SnapshotError::one(format!(
                "no snapshot {id} of profile {profile} in {}; `lockgate snapshot list --profile {profile}` lists them",
                store.url()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let m = SnapshotManifest::parse(&bytes, &format!("{}/{key}", store.url())).map_err(SnapshotError::one)?;
    if m.id != id || m.profile != profile {
        return Err(SnapshotError::one(format!(
            "{}/{key} says it is snapshot {} of profile {}: the store's folders were moved by hand",
            store.url(),
            m.id,
            m.profile
        )));
    }
    Ok(m)
}

/// The snapshots in a store (of one profile, or all), oldest first.
pub async fn list(store: &Store, profile: Option<&str>) -> Result<Vec<SnapshotSummary>, SnapshotError> {
    Ok(manifests(store, profile)
        .await?
        .iter()
        .map(SnapshotSummary::of)
        .collect())
}

/// The manifests in a store (of one profile, or all), oldest first.
pub async fn manifests(store: &Store, profile: Option<&str>) -> Result<Vec<SnapshotManifest>, SnapshotError> {
    let prefix = profile.map(|p| format!("{p}/")).unwrap_or_default();
    let mut out = Vec::new();
    for o in store.list(&prefix).await? {
        let parts: Vec<&str> = o.key.split('/').collect();
        if let [p, id, "manifest.json"] = parts[..] {
            out.push(read_manifest(store, p, id).await?);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Finds a snapshot by id in any profile (ids are unique across profiles).
pub async fn find(store: &Store, profile: Option<&str>, id: &str) -> Result<SnapshotManifest, SnapshotError> {
    if let Some(p) = profile {
        return read_manifest(store, p, id).await;
    }
    let found: Vec<SnapshotManifest> = manifests(store, None)
        .await?
        .into_iter()
        .filter(|m| m.id == id)
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one")),
        0 => Err(SnapshotError::one(format!(
            "no snapshot {id} in {}; `lockgate snapshot list` lists them",
            store.url()
        ))),
        _ => Err(SnapshotError::one(format!(
            "snapshot id {id} is in several profiles of {}: name the profile with --profile",
            store.url()
        ))),
    }
}

/// `lockgate snapshot show ID`: the manifest.
pub async fn show(store: &Store, profile: Option<&str>, id: &str) -> Result<SnapshotManifest, SnapshotError> {
    find(store, profile, id).await
}

/// `lockgate snapshot delete ID`: the manifest first (so the snapshot stops being
/// one at once), then its files.
pub async fn delete(store: &Store, profile: Option<&str>, id: &str) -> Result<SnapshotSummary, SnapshotError> {
    let m = find(store, profile, id).await?;
    store.delete(&manifest_key(&m.profile, &m.id)).await?;
    store.delete_prefix(&format!("{}/{}/", m.profile, m.id)).await?;
    Ok(SnapshotSummary::of(&m))
}

/// What `prune` keeps.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Keep the newest N snapshots of the profile.
    pub keep: Option<usize>,
    /// Delete snapshots older than this.
    pub older_than: Option<Duration>,
    /// List what would go, delete nothing.
    pub dry_run: bool,
    /// Never delete this snapshot (the one the profile's pin file names).
    pub pinned: Option<String>,
}

/// What `prune` deleted (or would).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PruneReport {
    /// The snapshots deleted (or that would be).
    pub deleted: Vec<SnapshotSummary>,
    /// How many were kept.
    pub kept: usize,
    /// Bytes freed (or that would be).
    pub freed_bytes: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// `lockgate snapshot prune --profile NAME --keep N | --older-than D`. The pinned
/// snapshot is always kept.
pub async fn prune(store: &Store, profile: &str, opts: &PruneOptions) -> Result<PruneReport, SnapshotError> {
    if opts.keep.is_none() && opts.older_than.is_none() {
        return Err(SnapshotError::one(
            "say what to keep: --keep N (the newest N) or --older-than 30d (delete older ones)",
        ));
    }
    let all = list(store, Some(profile)).await?;
    let now = chrono::Utc::now();
    let n = all.len();
    let mut deleted = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let newest_rank = n - i; // 1 = newest
        let too_many = opts.keep.is_some_and(|k| newest_rank > k);
        let too_old = opts.older_than.is_some_and(|d| {
            chrono::DateTime::parse_from_rfc3339(&s.created)
                .map(|c| now.signed_duration_since(c).to_std().unwrap_or_default() > d)
                .unwrap_or(false)
        });
        if (too_many || too_old) && opts.pinned.as_deref() != Some(s.id.as_str()) {
            deleted.push(s.clone());
        }
    }
    if !opts.dry_run {
        for s in &deleted {
            delete(store, Some(profile), &s.id).await?;
        }
    }
    Ok(PruneReport {
        kept: n - deleted.len(),
        freed_bytes: deleted.iter().map(|s| s.stored_bytes).sum(),
        deleted,
        dry_run: opts.dry_run,
    })
}
