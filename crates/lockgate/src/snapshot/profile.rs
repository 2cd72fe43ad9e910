//! Data profiles: named data sets ("clean-db", "customer1"), each with its snapshots
//! in a store.
//!
//! A profile's defaults live in `lockgate.toml` (`[profiles.NAME]`: store, database,
//! tables, exclusions, conditions, subset, masks, media folder), so
//! `lockgate snapshot create --profile customer1` needs nothing else. Its *pin file*,
//! `db/profiles/NAME.toml`, is what a team commits: the store, and (after
//! `snapshot create --pin`) the snapshot id with its files' checksums and module
//! versions, so that `lockgate restore --profile NAME` on another machine restores
//! exactly that snapshot. A profile exists when either names it.
//!
//! ```toml
//! [snapshots]                 # where snapshots go when a profile names no store
//! store = "s3://backups/lockgate"
//! [snapshots.s3]              # S3 settings (else AWS_* variables)
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//!
//! [profiles.customer1]
//! db = "prod"
//! store = "s3://backups/customer1"
//! tables = ["customers", "orders", "events"]
//! exclude = ["audit_log"]
//! where = { events = "created_at > '2024-01-01'" }   # a table no foreign key links to the subset
//! subset = { customers = "id IN (1, 2)" }
//! masks = "customers.email=email,customers.name=name"
//! files = "uploads"
//! ```

use super::{catalog, check_profile_name, SnapshotError};
use crate::config::Config;
use lockgate_store::{Store, StoreConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The store used when neither `--store`, the profile nor `[snapshots]` names one.
pub const DEFAULT_STORE: &str = "snapshots";

/// `[snapshots]` in `lockgate.toml`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsSettings {
    /// The default store URL.
    pub store: Option<String>,
    /// S3 settings.
    #[serde(default)]
    pub s3: StoreConfig,
}

/// `[profiles.NAME]` in `lockgate.toml`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// The database snapshots are taken from (a connection name or URL).
    pub db: Option<String>,
    /// The store.
    pub store: Option<String>,
    /// Only these tables.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Never these tables.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Per table, the condition its rows are taken with.
    #[serde(default, rename = "where")]
    pub conditions: BTreeMap<String, String>,
    /// Per table, the condition of a subset's roots.
    #[serde(default)]
    pub subset: BTreeMap<String, String>,
    /// Masks, as `--mask` takes them.
    pub masks: Option<String>,
    /// The media folder (`--files`).
    pub files: Option<String>,
}

/// A pin file, `db/profiles/NAME.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The profile.
    pub profile: String,
    /// The store.
    pub store: Option<String>,
    /// The pinned snapshot's id, once one is pinned.
    pub snapshot: Option<String>,
    /// When it was taken.
    pub created: Option<String>,
    /// The source's module versions at the time.
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// Each stored file's SHA-256, by its key in the snapshot.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// The pin file of a profile.
pub fn pin_path(dir: &Path, profile: &str) -> PathBuf {
    dir.join("profiles").join(format!("{profile}.toml"))
}

/// Reads a profile's pin file, if there is one.
pub fn read_pin(dir: &Path, profile: &str) -> Result<Option<Pin>, SnapshotError> {
    let path = pin_path(dir, profile);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotError::Io(format!("{}: {e}", path.display()))),
    };
    let pin: Pin = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        SnapshotError::one(format!("{}{line}: {}", path.display(), e.message()))
    })?;
    if pin.profile != profile {
        return Err(SnapshotError::one(format!(
            "{} pins profile {:?}, not {profile:?}: rename the file or fix its `profile`",
            path.display(),
            pin.profile
        )));
    }
    Ok(Some(pin))
}

/// Writes a pin file (creating `db/profiles/`).
pub fn write_pin(dir: &Path, pin: &Pin) -> Result<PathBuf, SnapshotError> {
    let path = pin_path(dir, &pin.profile);
    let io = |e: std::io::Error| SnapshotError::Io(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("a folder")).map_err(io)?;
    let text = toml::to_string(pin).map_err(|e| SnapshotError::Io(format!("{}: {e}", path.display())))?;
    let header = "# A Lockgate data profile: commit this file so that `lockgate restore --profile NAME`\n\
                  # restores the same snapshot everywhere (written by lockgate snapshot create --pin).\n";
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, format!("{header}{text}")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// A profile as a command uses it: its settings from `lockgate.toml`, its pin file,
/// and its store.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The name.
    pub name: String,
    /// `[profiles.NAME]` (default when only a pin file names it).
    pub spec: ProfileSpec,
    /// The pin file.
    pub pin: Option<Pin>,
    /// The store URL in force: a flag, else `[profiles.NAME] store`, else the pin
    /// file's, else `[snapshots] store`, else [`DEFAULT_STORE`].
    pub store_url: String,
    /// Whether a flag named the store.
    pub store_given: bool,
}

/// Finds a profile: unknown (neither in `lockgate.toml` nor pinned in `dir`) is an
/// error listing the known ones. `store` (a flag) overrides the profile's store.
pub fn resolve(config: &Config, dir: &Path, name: &str, store: Option<&str>) -> Result<Resolved, SnapshotError> {
    check_profile_name(name)?;
    let spec = config.profiles.get(name).cloned();
    let pin = read_pin(dir, name)?;
    if spec.is_none() && pin.is_none() && store.is_none() {
        let known = known_profiles(config, dir)?;
        return Err(SnapshotError::one(format!(
            "unknown profile {name:?} ({}); create it with `lockgate profile create {name}` or add [profiles.{name}] \
             to lockgate.toml",
            if known.is_empty() {
                "there are no profiles yet".to_string()
            } else {
                format!("known profiles: {}", known.join(", "))
            }
        )));
    }
    let spec = spec.unwrap_or_default();
    // A flag, then this machine's lockgate.toml, then the committed pin file. (A
    // restore of the pinned snapshot reads it from the pin's own store:
    // `restore::choose_snapshot`.)
    let store_url = store
        .map(str::to_string)
        .or_else(|| spec.store.clone())
        .or_else(|| pin.as_ref().and_then(|p| p.store.clone()))
        .or_else(|| config.snapshots.as_ref().and_then(|s| s.store.clone()))
        .unwrap_or_else(|| DEFAULT_STORE.to_string());
    Ok(Resolved {
        name: name.to_string(),
        spec,
        pin,
        store_url,
        store_given: store.is_some(),
    })
}

/// Opens a store URL with `[snapshots.s3]`'s settings.
pub fn open_store(config: &Config, url: &str) -> Result<Store, SnapshotError> {
    let s3 = config.snapshots.as_ref().map(|s| s.s3.clone()).unwrap_or_default();
    Ok(Store::open(url, &s3)?)
}

/// Profile names from `lockgate.toml` and the pin files in `dir/profiles/`.
pub fn known_profiles(config: &Config, dir: &Path) -> Result<Vec<String>, SnapshotError> {
    let mut names: Vec<String> = config.profiles.keys().cloned().collect();
    let folder = dir.join("profiles");
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                    names.push(stem.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `lockgate profile create NAME [--store URL]`: writes the pin file (no snapshot
/// pinned yet) after checking that the store is reachable. An existing profile is
/// an error.
pub async fn create_profile(
    config: &Config,
    dir: &Path,
    name: &str,
    store: Option<&str>,
) -> Result<PathBuf, SnapshotError> {
    check_profile_name(name)?;
    if read_pin(dir, name)?.is_some() {
        return Err(SnapshotError::one(format!(
            "profile {name:?} already exists ({}); edit that file to change its store",
            pin_path(dir, name).display()
        )));
    }
    let url = store
        .map(str::to_string)
        .or_else(|| config.profiles.get(name).and_then(|p| p.store.clone()))
        .or_else(|| config.snapshots.as_ref().and_then(|s| s.store.clone()))
        .unwrap_or_else(|| DEFAULT_STORE.to_string());
    open_store(config, &url)?.check().await?;
    // The pin names a store only when one was given: a default written here would
    // later hide the one lockgate.toml names.
    write_pin(
        dir,
        &Pin {
            profile: name.to_string(),
            store: store.map(str::to_string),
            ..Pin::default()
        },
    )
}

/// A profile in `lockgate profile list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileInfo {
    /// The name.
    pub profile: String,
    /// Its store.
    pub store: String,
    /// The snapshot its pin file names, if any.
    pub pinned: Option<String>,
    /// Its newest snapshot in the store, if any.
    pub latest: Option<String>,
    /// Snapshots in the store.
    pub snapshots: usize,
    /// Bytes its newest snapshot stores.
    pub latest_bytes: Option<u64>,
    /// The newest snapshot's module versions.
    pub modules: BTreeMap<String, String>,
    /// Why its store could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `lockgate profile list`: every known profile with its newest snapshot.
pub async fn list_profiles(config: &Config, dir: &Path) -> Result<Vec<ProfileInfo>, SnapshotError> {
    let mut out = Vec::new();
    for name in known_profiles(config, dir)? {
        let p = resolve(config, dir, &name, None)?;
        let mut info = ProfileInfo {
            profile: name.clone(),
            store: p.store_url.clone(),
            pinned: p.pin.as_ref().and_then(|p| p.snapshot.clone()),
            latest: None,
            snapshots: 0,
            latest_bytes: None,
            modules: BTreeMap::new(),
            error: None,
        };
        let listed = async {
            let store = open_store(config, &p.store_url)?;
            catalog::list(&store, Some(&name)).await
        };
        match listed.await {
            Ok(list) => {
                info.snapshots = list.len();
                if let Some(last) = list.last() {
                    info.latest = Some(last.id.clone());
                    info.latest_bytes = Some(last.stored_bytes);
                    info.modules = last.modules.clone();
                }
            }
            Err(e) => info.error = Some(e.to_string()),
        }
        out.push(info);
    }
    Ok(out)
}

/// Every snapshot in the stores this configuration knows (the default store and each
/// profile's), oldest first: `lockgate snapshot list` without `--profile` or `--store`.
pub async fn list_everywhere(config: &Config, dir: &Path) -> Result<Vec<catalog::SnapshotSummary>, SnapshotError> {
    let mut urls = vec![config
        .snapshots
        .as_ref()
        .and_then(|s| s.store.clone())
        .unwrap_or_else(|| DEFAULT_STORE.to_string())];
    for name in known_profiles(config, dir)? {
        let url = resolve(config, dir, &name, None)?.store_url;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    let mut out: Vec<catalog::SnapshotSummary> = Vec::new();
    for url in urls {
        for s in catalog::list(&open_store(config, &url)?, None).await? {
            if !out.iter().any(|o| o.id == s.id && o.profile == s.profile) {
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
