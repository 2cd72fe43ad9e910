//! The scenarios on moto's S3 (`.ci/moto.sh`; skipped with a message when it is not
//! running, unless CI=true), a store with a prefix inside its bucket, and the failures a
//! user meets: a missing bucket, an unreachable endpoint, refused credentials.

use crate::support;
use lockgate_store::testing::{s3_config, test_bucket};
use lockgate_store::{Store, StoreConfig, StoreError};
use std::time::{Duration, Instant};

/// A store on a fresh bucket, or `None` to skip.
async fn s3_store() -> Option<Store> {
    let (url, cfg) = test_bucket().await?;
    Some(Store::open(&url, &cfg).unwrap())
}

#[tokio::test]
async fn s3_multipart_round_trip() {
    let Some(store) = s3_store().await else { return };
    store.check().await.unwrap();
    support::multipart_round_trip(&store).await;
}

#[tokio::test]
async fn s3_small_and_empty() {
    let Some(store) = s3_store().await else { return };
    support::small_and_empty(&store).await;
}

#[tokio::test]
async fn s3_list_head_delete() {
    let Some(store) = s3_store().await else { return };
    support::list_head_delete(&store).await;
}

#[tokio::test]
async fn s3_unfinished_writes_leave_nothing() {
    let Some(store) = s3_store().await else { return };
    support::unfinished_writes_leave_nothing(&store).await;
}

#[tokio::test]
async fn s3_not_found() {
    let Some(store) = s3_store().await else { return };
    support::not_found(&store).await;
}

#[tokio::test]
async fn s3_bad_keys_refused() {
    let Some(store) = s3_store().await else { return };
    support::bad_keys_refused(&store).await;
}

/// A store whose URL has a prefix keeps its objects under it and lists them relative to
/// it.
#[tokio::test]
async fn s3_prefix_inside_the_bucket() {
    let Some((url, cfg)) = test_bucket().await else { return };
    let inner = Store::open(&format!("{url}/snapshots/lockgate"), &cfg).unwrap();
    let whole = Store::open(&url, &cfg).unwrap();
    whole.put_bytes("elsewhere.json", b"{}".to_vec()).await.unwrap();
    support::list_head_delete(&inner).await;
    let keys: Vec<_> = whole.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&"elsewhere.json".to_string()), "{keys:?}");
    assert!(keys.contains(&"snapshots/lockgate/clean-db/20261201T000000Z-000000/manifest.json".to_string()));
    assert_eq!(
        inner
            .get_bytes("clean-db/20261201T000000Z-000000/manifest.json")
            .await
            .unwrap(),
        whole
            .get_bytes("snapshots/lockgate/clean-db/20261201T000000Z-000000/manifest.json")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn s3_missing_bucket() {
    let Some((url, cfg)) = test_bucket().await else { return };
    let missing = format!("{url}-missing");
    let store = Store::open(&missing, &cfg).unwrap();
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&missing) && message.contains("bucket exists"),
        "{message}"
    );
    let err = store.put_bytes("k", vec![1]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// Nothing listens on port 1: every operation fails soon with Unavailable, naming the
/// store and what to check.
#[tokio::test]
async fn s3_unreachable_endpoint() {
    let cfg = StoreConfig {
        endpoint: Some("http://127.0.0.1:1".into()),
        ..s3_config()
    };
    let store = Store::open("s3://lockgate-unreachable/p", &cfg).unwrap();
    let started = Instant::now();
    let err = store.check().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    for part in [
        "s3://lockgate-unreachable/p",
        "endpoint",
        "AWS_ACCESS_KEY_ID",
        "lockgate.toml [snapshots.s3]",
    ] {
        assert!(message.contains(part), "{part} missing in: {message}");
    }
    assert!(message.to_lowercase().contains("connect"), "{message}");
    let err = store.get_bytes("a/b").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.writer("a/b").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// A moto server of this test's own that checks credentials (moto's
/// INITIAL_NO_AUTH_ACTION_COUNT=0: every request must be signed by a key its IAM
/// knows), stopped when dropped.
struct AuthMoto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn auth_moto() -> Option<AuthMoto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawned = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!("cannot run moto_server ({e}); run `bash .ci/moto.sh` to install it");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return None;
        }
    };
    let moto = AuthMoto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some(moto)
}

#[tokio::test]
async fn s3_refused_credentials() {
    let Some(moto) = auth_moto().await else { return };
    let cfg = StoreConfig {
        endpoint: Some(moto.endpoint.clone()),
        access_key_id: Some("AKIAWRONGWRONGWRONG1".into()),
        secret_access_key: Some("wrong".into()),
        ..s3_config()
    };
    let store = Store::open("s3://lockgate-auth/p", &cfg).unwrap();
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(
        message.contains("AWS_SECRET_ACCESS_KEY") && message.contains("s3://lockgate-auth/p"),
        "{message}"
    );
    let err = store.put_bytes("k", vec![1]).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
}
