//! Scenarios every kind of store must pass alike, and the test data they write.

use lockgate_store::{Store, StoreError, PART_SIZE};

/// `len` bytes of deterministic noise (xorshift), different for each `seed`, so that a
/// part written twice or out of order shows.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes more than two parts' worth in uneven pieces (small ones, one larger than a
/// part, one ending exactly on a part boundary), then reads it back by `download` and by
/// `reader`, and checks `head` and `list`.
pub async fn multipart_round_trip(store: &Store) {
    let data = noise(2 * PART_SIZE + PART_SIZE / 2 + 12_345, 1);
    let key = "customer1/20261207T101500Z-ab12cd/customers.tsv.zst";
    let mut writer = store.writer(key).await.unwrap();
    let mut at = 0;
    for len in [1, 1_000_003, PART_SIZE + 17, PART_SIZE - 1_000_021] {
        writer.write(&data[at..at + len]).await.unwrap();
        at += len;
    }
    // Not visible before finish.
    assert_eq!(store.head(key).await.unwrap(), None);
    assert!(store.list("").await.unwrap().is_empty());
    while at < data.len() {
        let len = 65_536.min(data.len() - at);
        writer.write(&data[at..at + len]).await.unwrap();
        at += len;
    }
    assert_eq!(writer.finish().await.unwrap(), data.len() as u64);

    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("out.bin");
    std::fs::write(&to, b"old content longer than nothing").unwrap();
    assert_eq!(store.download(key, &to).await.unwrap(), data.len() as u64);
    assert!(std::fs::read(&to).unwrap() == data, "download differs");

    let mut reader = store.reader(key).await.unwrap();
    let mut read = Vec::with_capacity(data.len());
    let mut chunks = 0;
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        assert!(chunk.len() <= PART_SIZE, "a chunk of {} bytes", chunk.len());
        read.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(chunks > 1, "the reader returned the object in one chunk");
    assert!(read == data, "reader differs");

    let info = store.head(key).await.unwrap().unwrap();
    assert_eq!(info.key, key);
    assert_eq!(info.size, data.len() as u64);
    assert!(
        info.modified.ends_with('Z') && info.modified.len() == 20,
        "{}",
        info.modified
    );
    assert_eq!(store.list("customer1/").await.unwrap(), vec![info]);
}

/// A small object written through a writer, and an empty one.
pub async fn small_and_empty(store: &Store) {
    let mut writer = store.writer("p/small.txt").await.unwrap();
    writer.write(b"hello ").await.unwrap();
    writer.write(b"").await.unwrap();
    writer.write(b"world").await.unwrap();
    assert_eq!(writer.finish().await.unwrap(), 11);
    assert_eq!(store.get_bytes("p/small.txt").await.unwrap(), b"hello world");

    let writer = store.writer("p/empty").await.unwrap();
    assert_eq!(writer.finish().await.unwrap(), 0);
    assert_eq!(store.get_bytes("p/empty").await.unwrap(), b"");
    assert_eq!(store.head("p/empty").await.unwrap().unwrap().size, 0);

    // A second write replaces the object.
    store.put_bytes("p/small.txt", b"bye".to_vec()).await.unwrap();
    assert_eq!(store.get_bytes("p/small.txt").await.unwrap(), b"bye");
}

/// list (sorted, string prefixes), head, delete, delete_prefix.
pub async fn list_head_delete(store: &Store) {
    for key in [
        "customer1/20261207T101500Z-ab12cd/manifest.json",
        "customer1/20261207T101500Z-ab12cd/customers.tsv.zst",
        "customer1/20261208T090000Z-ef34ab/manifest.json",
        "customer10/20261207T101500Z-aaaaaa/manifest.json",
        "clean-db/20261201T000000Z-000000/manifest.json",
        "top.json",
    ] {
        store.put_bytes(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let keys = |list: Vec<lockgate_store::ObjectInfo>| list.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("").await.unwrap()),
        [
            "clean-db/20261201T000000Z-000000/manifest.json",
            "customer1/20261207T101500Z-ab12cd/customers.tsv.zst",
            "customer1/20261207T101500Z-ab12cd/manifest.json",
            "customer1/20261208T090000Z-ef34ab/manifest.json",
            "customer10/20261207T101500Z-aaaaaa/manifest.json",
            "top.json",
        ]
    );
    assert_eq!(keys(store.list("customer1/").await.unwrap()).len(), 3);
    // A plain string prefix: `customer1` also matches customer10.
    assert_eq!(keys(store.list("customer1").await.unwrap()).len(), 4);
    assert_eq!(
        keys(store.list("customer1/20261207").await.unwrap()),
        [
            "customer1/20261207T101500Z-ab12cd/customers.tsv.zst",
            "customer1/20261207T101500Z-ab12cd/manifest.json",
        ]
    );
    assert!(store.list("nobody/").await.unwrap().is_empty());
    assert!(store.list("nobody/deeper/").await.unwrap().is_empty());

    let info = store.head("top.json").await.unwrap().unwrap();
    assert_eq!(info.size, "top.json".len() as u64);
    assert_eq!(store.head("missing.json").await.unwrap(), None);
    assert_eq!(store.head("nobody/missing.json").await.unwrap(), None);

    store.delete("top.json").await.unwrap();
    assert_eq!(store.head("top.json").await.unwrap(), None);
    store.delete("top.json").await.unwrap(); // missing: still Ok

    assert_eq!(
        store.delete_prefix("customer1/20261207T101500Z-ab12cd/").await.unwrap(),
        2
    );
    assert_eq!(
        keys(store.list("customer1").await.unwrap()),
        [
            "customer1/20261208T090000Z-ef34ab/manifest.json",
            "customer10/20261207T101500Z-aaaaaa/manifest.json",
        ]
    );
    assert_eq!(
        store.delete_prefix("customer1/20261207T101500Z-ab12cd/").await.unwrap(),
        0
    );
    assert!(matches!(store.delete_prefix("").await, Err(StoreError::Input(_))));
    assert_eq!(store.list("").await.unwrap().len(), 3);
    store.check().await.unwrap();
}

/// A writer aborted, one dropped, and one "killed" (forgotten without drop, as a process
/// killed mid-write leaves it) after parts went out: none is listed or readable, and the
/// key can be written afresh.
pub async fn unfinished_writes_leave_nothing(store: &Store) {
    let data = noise(PART_SIZE + PART_SIZE / 2, 2);
    let mut writer = store.writer("u/aborted.bin").await.unwrap();
    writer.write(&data).await.unwrap();
    writer.abort().await.unwrap();

    let mut writer = store.writer("u/dropped.bin").await.unwrap();
    writer.write(&data).await.unwrap();
    drop(writer);

    let mut writer = store.writer("u/killed.bin").await.unwrap();
    writer.write(&data).await.unwrap();
    // Let the first part's upload land before the "kill".
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    std::mem::forget(writer);

    // The dropped writer aborts in the background.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(store.list("").await.unwrap(), vec![]);
    assert_eq!(store.list("u/").await.unwrap(), vec![]);
    for key in ["u/aborted.bin", "u/dropped.bin", "u/killed.bin"] {
        assert_eq!(store.head(key).await.unwrap(), None, "{key}");
        assert!(
            matches!(store.get_bytes(key).await, Err(StoreError::NotFound { .. })),
            "{key}"
        );
    }
    assert_eq!(store.delete_prefix("u/").await.unwrap(), 0);

    store.put_bytes("u/killed.bin", b"again".to_vec()).await.unwrap();
    assert_eq!(store.get_bytes("u/killed.bin").await.unwrap(), b"again");
    assert_eq!(store.list("u/").await.unwrap().len(), 1);
}

/// Missing objects: NotFound naming the store and key, for every read; nothing created
/// by a failed download.
pub async fn not_found(store: &Store) {
    let err = store.get_bytes("nope/manifest.json").await.unwrap_err();
    match &err {
        StoreError::NotFound { key, store: url } => {
            assert_eq!(key, "nope/manifest.json");
            assert_eq!(url, store.url());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    assert!(
        message.contains("nope/manifest.json") && message.contains(store.url()),
        "{message}"
    );

    assert!(matches!(store.reader("nope/x").await, Err(StoreError::NotFound { .. })));
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("x");
    assert!(matches!(
        store.download("nope/x", &to).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!to.exists());
}

/// Keys the store refuses, on every operation that takes one.
pub async fn bad_keys_refused(store: &Store) {
    for key in [
        "", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", "a\\b", "a/b#1", "a/\nb",
    ] {
        let is_input = |r: Result<(), StoreError>| match r {
            Err(StoreError::Input(m)) => {
                assert_eq!(StoreError::Input(m).exit_code(), 2);
                true
            }
            _ => false,
        };
        assert!(is_input(store.put_bytes(key, vec![1]).await), "put {key:?}");
        assert!(is_input(store.writer(key).await.map(drop)), "writer {key:?}");
        assert!(is_input(store.get_bytes(key).await.map(drop)), "get {key:?}");
        assert!(is_input(store.reader(key).await.map(drop)), "reader {key:?}");
        assert!(is_input(store.head(key).await.map(drop)), "head {key:?}");
        assert!(is_input(store.delete(key).await), "delete {key:?}");
    }
    for prefix in ["/a", "a/../", "a//", "..", "a\\b/"] {
        assert!(
            matches!(store.list(prefix).await, Err(StoreError::Input(_))),
            "list {prefix:?}"
        );
        assert!(
            matches!(store.delete_prefix(prefix).await, Err(StoreError::Input(_))),
            "delete_prefix {prefix:?}"
        );
    }
    assert!(store.list("").await.unwrap().is_empty());
}
