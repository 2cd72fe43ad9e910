//! The scenarios on a folder store, and what only a folder has: URLs and paths, the
//! staging files of unfinished writes, emptied directories.

use crate::support;
use lockgate_store::{Store, StoreConfig, StoreError};

fn folder_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store").to_str().unwrap(), &StoreConfig::default()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn folder_multipart_round_trip() {
    let (_dir, store) = folder_store();
    support::multipart_round_trip(&store).await;
}

#[tokio::test]
async fn folder_small_and_empty() {
    let (_dir, store) = folder_store();
    support::small_and_empty(&store).await;
}

#[tokio::test]
async fn folder_list_head_delete() {
    let (dir, store) = folder_store();
    support::list_head_delete(&store).await;
    // delete_prefix removed the snapshot's emptied directory, not the store's root.
    let root = dir.path().join("store");
    assert!(!root.join("customer1/20261207T101500Z-ab12cd").exists());
    assert!(root.join("customer1").is_dir());
    store.delete_prefix("c").await.unwrap();
    assert!(root.is_dir());
}

#[tokio::test]
async fn folder_unfinished_writes_leave_nothing() {
    let (dir, store) = folder_store();
    support::unfinished_writes_leave_nothing(&store).await;
    // The "killed" writer's staging file is still on disk, never listed; the others'
    // are gone.
    let staged: Vec<_> = std::fs::read_dir(dir.path().join("store/u"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains('#'))
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert!(staged[0].starts_with("killed.bin#"), "{staged:?}");
}

#[tokio::test]
async fn folder_not_found() {
    let (_dir, store) = folder_store();
    support::not_found(&store).await;
}

#[tokio::test]
async fn folder_bad_keys_refused() {
    let (_dir, store) = folder_store();
    support::bad_keys_refused(&store).await;
}

#[tokio::test]
async fn folder_urls() {
    let dir = tempfile::tempdir().unwrap();
    // file:///abs, created when missing, and the URL kept as given.
    let path = dir.path().join("a/b");
    let url = format!("file://{}", path.display());
    let store = Store::open(&url, &StoreConfig::default()).unwrap();
    assert!(path.is_dir());
    assert_eq!(store.url(), url);
    store.check().await.unwrap();
    store.put_bytes("x/y.json", b"{}".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(path.join("x/y.json")).unwrap(), b"{}");

    // A plain path to the same folder sees the same objects.
    let plain = Store::open(path.to_str().unwrap(), &StoreConfig::default()).unwrap();
    assert_eq!(plain.get_bytes("x/y.json").await.unwrap(), b"{}");
    assert!(format!("{plain:?}").contains("a/b"));

    // A folder that went away after open: check says so.
    std::fs::remove_dir_all(&path).unwrap();
    let err = plain.check().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("check that the folder exists"), "{err}");

    // A path under a file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Store::open(file.join("sub").to_str().unwrap(), &StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.exit_code(), 1);
}

/// A download into a folder that does not exist fails with the local path named, and
/// the object is untouched.
#[tokio::test]
async fn folder_download_to_bad_path() {
    let (dir, store) = folder_store();
    store.put_bytes("k", b"v".to_vec()).await.unwrap();
    let to = dir.path().join("missing/dir/out");
    let err = store.download("k", &to).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("missing/dir/out"), "{err}");
    assert_eq!(store.get_bytes("k").await.unwrap(), b"v");
}
