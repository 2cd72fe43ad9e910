//! Test buckets (feature `testing`): a fresh, uniquely named bucket per test on the
//! S3-compatible test server (moto, started by `.ci/moto.sh`). Used by every crate's tests.

use crate::StoreConfig;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The S3-compatible server tests use: `LOCKGATE_TEST_S3`, by default moto on
/// `http://127.0.0.1:5055`.
pub fn s3_endpoint() -> String {
    std::env::var("LOCKGATE_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// The configuration that reaches the test server: its endpoint and the dummy
/// credentials moto accepts.
pub fn s3_config() -> StoreConfig {
    StoreConfig {
        endpoint: Some(s3_endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: None,
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A bucket name no other test (of this process or another) uses.
fn unique_bucket() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("lgtest-{}-{}-{}", std::process::id(), n, nanos % 1_000_000)
}

/// Creates a fresh bucket on the test server and returns its URL (`s3://NAME`) and the
/// configuration that reaches it. `None` means "skip this test": the server is not
/// reachable and `CI` is not `true` (a message says how to start it). With `CI=true` an
/// unreachable server fails the test.
pub async fn test_bucket() -> Option<(String, StoreConfig)> {
    let endpoint = s3_endpoint();
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("LOCKGATE_TEST_S3 must be an http:// URL, not {endpoint}"))
        .trim_end_matches('/')
        .to_string();
    let bucket = unique_bucket();
    let mut conn = match tokio::net::TcpStream::connect(&host).await {
        Ok(conn) => conn,
        Err(e) => {
            let message = format!(
                "the S3 test server at {endpoint} is unreachable ({e}); start it with `bash .ci/moto.sh` \
                 (or set LOCKGATE_TEST_S3)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return None;
        }
    };
    // moto takes an unsigned CreateBucket: one plain HTTP/1.1 request is all it needs.
    let request = format!("PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"),
        "creating bucket {bucket} on {endpoint} failed: {response}"
    );
    Some((format!("s3://{bucket}"), s3_config()))
}
