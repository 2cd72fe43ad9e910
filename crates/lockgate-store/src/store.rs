//! [`Store`]: a store opened from a URL, and every operation but the streaming ones
//! (`io.rs`).

use crate::error::{advice, map, one_line};
use crate::io::{ObjectReader, ObjectWriter};
use crate::key::{check_segments, key_path, prefix_dir};
use crate::StoreError;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How to reach an S3-compatible store, from `lockgate.toml`'s `[snapshots.s3]` table. Every field
/// is optional and, when set, overrides the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`
/// / `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). A folder store
/// ignores it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The server's URL for an S3-compatible service other than AWS, e.g.
    /// `http://127.0.0.1:5055`.
    pub endpoint: Option<String>,
    /// The region (AWS's default, `us-east-1`, when unset everywhere).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// Whether plain `http://` endpoints are allowed; by default, exactly when the
    /// endpoint is `http://`.
    pub allow_http: Option<bool>,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    /// Its key, relative to the store's own prefix.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, RFC 3339 in UTC to the second (`2026-12-07T10:15:00Z`).
    pub modified: String,
}

impl ObjectInfo {
    fn from_meta(meta: ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key: meta.location.to_string(),
            size: meta.size,
            modified: meta.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// Where snapshots are kept, from a user's URL: a local folder or an S3-compatible bucket
/// (with an optional prefix inside it). Cheap to clone: clones share one HTTP client.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) url: String,
    /// Whether this is a bucket (messages differ: endpoint and credentials, or a folder).
    pub(crate) s3: bool,
    /// The folder of a folder store.
    folder: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    // Only the URL: the S3 client's own Debug would show the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Retries of one request: a few, quickly, so that an unreachable endpoint fails in
/// seconds rather than object_store's default of minutes, while S3's occasional 503
/// (SlowDown) and dropped connections are still ridden out.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.5,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(120),
    }
}

/// HTTP timeouts. No overall request timeout: a reader streams a large object for as long
/// as its consumer takes (a restore writes into a database between chunks); a stalled
/// connection is caught by the read timeout instead.
fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(300))
}

impl Store {
    /// Opens a store: `s3://bucket/prefix` (reached with `cfg`, whose fields override the
    /// environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`), or a local folder (`file:///abs/path` or
    /// a plain path; created when missing). Nothing is sent over the network here: see
    /// [`Store::check`].
    ///
    /// Keys given to the other methods are `/`-separated relative paths; keys with a `..`
    /// or `.` segment, a leading `/`, a backslash, an empty segment, a `#` or a control
    /// character are refused with [`StoreError::Input`].
    pub fn open(url: &str, cfg: &StoreConfig) -> Result<Store, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Store::open_s3(url, rest, cfg);
        }
        let folder = if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(StoreError::Input(format!(
                    "bad store URL {url}: a file URL needs an absolute path (file:///abs/path); \
                     or give the folder as a plain path"
                )));
            }
            PathBuf::from(rest)
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::Input(format!(
                "bad store URL {url}: unknown scheme {scheme}://; use s3://bucket/prefix, \
                 file:///abs/path or a folder path"
            )));
        } else if url.trim().is_empty() {
            return Err(StoreError::Input(
                "the store URL is empty; use s3://bucket/prefix, file:///abs/path or a folder path".into(),
            ));
        } else {
            PathBuf::from(url)
        };
        Store::open_folder(url, &folder)
    }

    fn open_folder(url: &str, folder: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(folder).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create the store folder {}: {e}; {}",
                folder.display(),
                advice(false)
            ))
        })?;
        // Each write goes to `KEY#N` beside the target and is renamed over it on finish
        // (listings skip such names), so a killed process leaves no object behind; fsync
        // makes a finished object durable like an S3 one. Deleting a folder store's last
        // object in a directory removes the emptied directories up to the root.
        let fs = LocalFileSystem::new_with_prefix(folder)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the store folder {}: {}; {}",
                    folder.display(),
                    one_line(&e),
                    advice(false)
                ))
            })?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Store {
            inner: Arc::new(fs),
            url: url.to_string(),
            s3: false,
            folder: Some(folder.to_path_buf()),
        })
    }

    fn open_s3(url: &str, rest: &str, cfg: &StoreConfig) -> Result<Store, StoreError> {
        let bad = |why: &str| StoreError::Input(format!("bad store URL {url}: {why}; use s3://bucket/prefix"));
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if bucket.contains('@') || bucket.contains(':') {
            return Err(bad(
                "credentials or a port do not go in the URL (set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY or lockgate.toml [snapshots.s3]; the server goes in [snapshots.s3] endpoint)",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            check_segments(prefix, url, "prefix of store URL")?;
        }

        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry_config())
            .with_client_options(client_options());
        // AWS_REGION wins over AWS_DEFAULT_REGION, as in AWS's own tools.
        if let Ok(region) = std::env::var("AWS_REGION") {
            if !region.is_empty() {
                builder = builder.with_region(region);
            }
        }
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &cfg.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &cfg.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &cfg.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        match cfg.allow_http {
            Some(allow) => builder = builder.with_allow_http(allow),
            None if endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) => {
                builder = builder.with_allow_http(true)
            }
            None => {}
        }
        let s3 = builder.build().map_err(|e| {
            StoreError::Input(format!(
                "cannot configure store {url}: {}; check lockgate.toml [snapshots.s3] and the AWS_* variables",
                one_line(&e)
            ))
        })?;
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Store {
            inner,
            url: url.to_string(),
            s3: true,
            folder: None,
        })
    }

    /// The URL as given (a store URL never holds credentials), for messages and manifests.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn err(&self, err: object_store::Error, what: &str, key: Option<&str>) -> StoreError {
        map(err, &self.url, self.s3, what, key)
    }

    /// Streams a new object to `key`; nothing is visible under `key` until
    /// [`ObjectWriter::finish`] succeeds. An existing object is replaced then.
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StoreError> {
        let path = key_path(key)?;
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| self.err(e, &format!("starting to write {key}"), None))?;
        Ok(ObjectWriter::new(self.clone(), key.to_string(), upload))
    }

    /// Writes a whole object in one request (manifests and other small files).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = key_path(key)?;
        self.inner
            .put(&path, bytes.into())
            .await
            .map_err(|e| self.err(e, &format!("writing {key}"), None))?;
        Ok(())
    }

    /// The whole object, in memory: for small objects only (manifests). A missing object
    /// is [`StoreError::NotFound`].
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = key_path(key)?;
        let what = format!("reading {key}");
        let got = self.inner.get(&path).await.map_err(|e| self.err(e, &what, Some(key)))?;
        let bytes = got.bytes().await.map_err(|e| self.err(e, &what, Some(key)))?;
        Ok(bytes.to_vec())
    }

    /// Streams an object into a local file (created or truncated) and returns the bytes
    /// written; memory stays bounded whatever the size. On an error the partial file is
    /// removed.
    pub async fn download(&self, key: &str, to: &Path) -> Result<u64, StoreError> {
        use tokio::io::AsyncWriteExt;
        let mut reader = self.reader(key).await?;
        let local = |e: std::io::Error| {
            StoreError::Unavailable(format!(
                "cannot write {} (downloading {key} from store {}): {e}; check that its folder \
                 exists, is writable and has free space",
                to.display(),
                self.url
            ))
        };
        let mut file = tokio::fs::File::create(to).await.map_err(local)?;
        let result = async {
            let mut written = 0u64;
            while let Some(chunk) = reader.next_chunk().await? {
                file.write_all(&chunk).await.map_err(local)?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(local)?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            drop(file);
            let _ = tokio::fs::remove_file(to).await;
        }
        result
    }

    /// A streaming reader of an object, chunk by chunk (bounded memory). A missing object
    /// is [`StoreError::NotFound`].
    pub async fn reader(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let path = key_path(key)?;
        let got = self
            .inner
            .get(&path)
            .await
            .map_err(|e| self.err(e, &format!("reading {key}"), Some(key)))?;
        Ok(ObjectReader::new(self.clone(), key.to_string(), got.into_stream()))
    }

    /// Every object whose key starts with `prefix` (relative to the store's own prefix;
    /// a plain string prefix, so end it with `/` to mean a folder), sorted by key. An
    /// empty prefix lists the whole store.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let dir = prefix_dir(prefix)?;
        let what = format!("listing {prefix:?}");
        let mut found: Vec<ObjectInfo> = self
            .inner
            .list(dir.as_ref())
            .map_err(|e| self.err(e, &what, None))
            .try_filter_map(|meta| async move {
                let info = ObjectInfo::from_meta(meta);
                Ok(info.key.starts_with(prefix).then_some(info))
            })
            .try_collect()
            .await?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// The object's size and time, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = key_path(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(ObjectInfo::from_meta(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e, &format!("looking up {key}"), None)),
        }
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = key_path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e, &format!("deleting {key}"), None)),
        }
    }

    /// Deletes every object whose key starts with `prefix` (as [`Store::list`]) and
    /// returns how many. An empty prefix is refused: emptying a whole store is never what
    /// a caller of this means.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        if prefix.is_empty() {
            return Err(StoreError::Input(format!(
                "refusing to delete everything in store {}: give the prefix of what to delete, \
                 such as customer1/20261207T101500Z-ab12cd/",
                self.url
            )));
        }
        let objects = self.list(prefix).await?;
        let paths = objects
            .iter()
            .map(|o| object_store::path::Path::parse(&o.key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Input(format!("bad key listed under {prefix:?}: {e}")))?;
        let what = format!("deleting under {prefix:?}");
        let mut deleted = 0u64;
        // One bulk request per 1,000 keys on S3, one unlink per file in a folder.
        let mut results = self
            .inner
            .delete_stream(futures_util::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                // Someone else deleted it first: it is gone, as asked.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(e, &what, None)),
            }
        }
        Ok(deleted)
    }

    /// One cheap request that proves the store is reachable and the credentials work:
    /// the first page of a listing of the store's prefix (a bucket), or a look at the
    /// folder.
    pub async fn check(&self) -> Result<(), StoreError> {
        if let Some(folder) = &self.folder {
            return match tokio::fs::metadata(folder).await {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(StoreError::Unavailable(format!(
                    "store {}: {} is not a folder; {}",
                    self.url,
                    folder.display(),
                    advice(false)
                ))),
                Err(e) => Err(StoreError::Unavailable(format!(
                    "store {}: cannot read the folder {}: {e}; {}",
                    self.url,
                    folder.display(),
                    advice(false)
                ))),
            };
        }
        match self.inner.list(None).next().await {
            None | Some(Ok(_)) => Ok(()),
            // A missing bucket is reported as unavailable too (no key is given to `err`).
            Some(Err(e)) => Err(self.err(e, "checking it", None)),
        }
    }
}
