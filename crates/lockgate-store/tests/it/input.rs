//! Bad store URLs and configuration, and `[snapshots.s3]` read from TOML.

use lockgate_store::{Store, StoreConfig, StoreError};

#[test]
fn bad_urls_are_input_errors() {
    for (url, says) in [
        ("", "empty"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://key:secret@bucket/p", "credentials"),
        ("s3://bucket/a/../b", ".."),
        ("s3://bucket//p", "starts with `/`"),
        ("s3://bucket/p//q", "empty segment"),
        ("gs://bucket/p", "unknown scheme"),
        ("file://relative/path", "absolute path"),
    ] {
        let err = Store::open(url, &StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Input(_)), "{url}: {err:?}");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
}

#[test]
fn s3_url_kept_as_given_and_debug_hides_credentials() {
    let cfg = StoreConfig {
        endpoint: Some("http://127.0.0.1:5055".into()),
        region: Some("eu-west-1".into()),
        access_key_id: Some("AKIDSECRETID".into()),
        secret_access_key: Some("very-secret-key".into()),
        allow_http: None,
    };
    let store = Store::open("s3://bucket/some/prefix/", &cfg).unwrap();
    assert_eq!(store.url(), "s3://bucket/some/prefix/");
    let debug = format!("{store:?}");
    assert!(
        !debug.contains("very-secret-key") && !debug.contains("AKIDSECRETID"),
        "{debug}"
    );
}

#[test]
fn http_endpoint_refused_when_allow_http_is_false() {
    let cfg = StoreConfig {
        endpoint: Some("http://127.0.0.1:5055".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: Some(false),
        ..StoreConfig::default()
    };
    // object_store refuses plain HTTP at the first request, not at build time.
    let store = Store::open("s3://bucket", &cfg).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(store.check()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("s3://bucket"), "{err}");
}

#[test]
fn store_config_from_toml() {
    let cfg: StoreConfig = toml::from_str(
        r#"
        endpoint = "http://127.0.0.1:5055"
        region = "us-east-1"
        access_key_id = "test"
        secret_access_key = "test"
        allow_http = true
        "#,
    )
    .unwrap();
    assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:5055"));
    assert_eq!(cfg.allow_http, Some(true));
    let empty: StoreConfig = toml::from_str("").unwrap();
    assert!(empty.endpoint.is_none() && empty.access_key_id.is_none());
    let err = toml::from_str::<StoreConfig>("endpoit = \"x\"").unwrap_err();
    assert!(err.to_string().contains("endpoit"), "{err}");
}
