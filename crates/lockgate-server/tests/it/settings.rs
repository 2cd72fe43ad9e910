//! `lockgate.toml`'s `[server]` limits reaching the server: `body_grace` (a duration,
//! through the one duration parser), `max_connections` and `pool_size` set in the file end up in
//! [`ServerConfig`], alongside the keys read before them; a bad value of any of them
//! is an error naming the file, its line and the key, when the server reads it
//! (`Config::server`), not when a command that does not serve reads the file; and a
//! limit out of range set in code is refused by [`ServerConfig::check`].

use crate::*;
use lockgate::config::ServerSettings;
use lockgate::Config;
use std::time::Duration;

/// `lockgate.toml` holding `text`, its `[server]` read as `lockgate serve` reads it.
fn load(text: &str) -> (tempfile::TempDir, Result<ServerSettings, lockgate::config::ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lockgate.toml");
    std::fs::write(&path, text).unwrap();
    let settings = Config::load(&path, true).and_then(|c| c.server());
    (dir, settings)
}

fn served(text: &str) -> ServerConfig {
    let (_dir, settings) = load(text);
    let settings = settings.unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut cfg = ServerConfig::new();
    cfg.apply_settings(&settings);
    cfg.check().unwrap_or_else(|e| panic!("{text}: {e}"));
    cfg
}

#[test]
fn body_grace_and_max_connections_reach_the_server_config() {
    let cfg = served(
        "[server]\nport = 4000\nallowed_hosts = [\"lockgate.internal\"]\nupload_limit_mb = 5\n\
         upload_scripts = true\nbody_grace = \"45s\"\nmax_connections = 12\n",
    );
    assert_eq!(cfg.body_grace, Duration::from_secs(45));
    assert_eq!(cfg.max_connections, 12);
    // The keys read before them still arrive.
    assert_eq!(cfg.allowed_hosts, ["lockgate.internal"]);
    assert_eq!(cfg.upload_limit, 5 * 1024 * 1024);
    assert!(cfg.upload_scripts);

    // Every form the duration parser takes: seconds as a number, units, fractions.
    for (given, expected) in [
        ("90", Duration::from_secs(90)),
        ("2.5", Duration::from_millis(2_500)),
        ("\"1.5m\"", Duration::from_secs(90)),
        ("\"1500ms\"", Duration::from_millis(1_500)),
        ("\"1s\"", Duration::from_secs(1)),
        ("\"168h\"", Duration::from_secs(7 * 24 * 3600)),
    ] {
        let cfg = served(&format!("[server]\nbody_grace = {given}\n"));
        assert_eq!(cfg.body_grace, expected, "{given}");
    }
    let cfg = served("[server]\nmax_connections = 100000\n");
    assert_eq!(cfg.max_connections, 100_000);
    let cfg = served("[server]\nmax_connections = 1\n");
    assert_eq!(cfg.max_connections, 1);
    let cfg = served("[server]\npool_size = 9\n");
    assert_eq!(cfg.pool_size, 9);
    let cfg = served("[server]\npool_idle = \"50s\"\npool_lifetime = 600\n");
    assert_eq!(cfg.pool_times.max_idle, Duration::from_secs(50));
    assert_eq!(cfg.pool_times.max_lifetime, Duration::from_secs(600));

    // Not given: the defaults stay.
    let cfg = served("[server]\nport = 4000\n");
    let defaults = ServerConfig::new();
    assert_eq!(cfg.body_grace, defaults.body_grace);
    assert_eq!(cfg.body_grace, Duration::from_secs(30));
    assert_eq!(cfg.max_connections, defaults.max_connections);
    assert_eq!(cfg.max_connections, 256);
    assert_eq!(cfg.pool_size, defaults.pool_size);
    assert_eq!(cfg.pool_size, 4);
    assert_eq!(cfg.pool_times, defaults.pool_times);
    assert_eq!(cfg.pool_times.max_idle, Duration::from_secs(300));
    assert_eq!(cfg.pool_times.max_lifetime, Duration::from_secs(1800));

    // Set in code: shorter than the file's least is taken (tests use milliseconds),
    // zero is not.
    let mut cfg = ServerConfig::new();
    cfg.pool_times.max_idle = Duration::from_millis(300);
    assert_eq!(cfg.check(), Ok(()));
    cfg.pool_times.max_lifetime = Duration::ZERO;
    let e = cfg.check().unwrap_err();
    assert!(e.contains("pool_lifetime is 0") && e.contains("at least 1s"), "{e}");
}

#[test]
fn bad_body_grace_max_connections_or_pool_size_is_an_error_naming_file_line_and_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "body_grace = \"soon\"",
            &["[server] body_grace", "\"soon\" is not a duration", "30s"],
        ),
        (
            "body_grace = \"5 minutes\"",
            &["[server] body_grace", "is not a duration"],
        ),
        ("body_grace = -1", &["[server] body_grace", "negative"]),
        ("body_grace = \"8d\"", &["[server] body_grace", "is not a duration"]),
        ("body_grace = \"169h\"", &["[server] body_grace", "longer than 7 days"]),
        ("body_grace = \"inf\"", &["[server] body_grace", "is not a duration"]),
        ("body_grace = 0", &["[server] body_grace", "at least 1s"]),
        ("body_grace = \"500ms\"", &["[server] body_grace", "at least 1s"]),
        ("body_grace = true", &["[server] body_grace is a boolean", "30s"]),
        (
            "max_connections = 0",
            &["[server] max_connections is 0", "from 1 to 100000"],
        ),
        (
            "max_connections = -3",
            &["[server] max_connections is -3", "from 1 to 100000"],
        ),
        ("max_connections = 100001", &["[server] max_connections is 100001"]),
        (
            "max_connections = 2.5",
            &["[server] max_connections is a float", "whole number"],
        ),
        (
            "max_connections = \"many\"",
            &["[server] max_connections is a string", "whole number"],
        ),
        ("pool_size = 0", &["[server] pool_size is 0", "from 1 to 64"]),
        ("pool_size = 65", &["[server] pool_size is 65", "from 1 to 64"]),
        ("pool_size = \"4\"", &["[server] pool_size is a string", "whole number"]),
        (
            "pool_idle = \"500ms\"",
            &["[server] pool_idle", "at least 1s", "between a page's requests"],
        ),
        ("pool_idle = \"soon\"", &["[server] pool_idle", "is not a duration"]),
        ("pool_lifetime = 0", &["[server] pool_lifetime", "at least 1s"]),
        ("pool_lifetime = [1]", &["[server] pool_lifetime is an array", "30s"]),
        (
            "upload_limit_mb = 0",
            &["[server] upload_limit_mb is 0", "at least 1", "refuse every upload"],
        ),
        (
            "upload_limit_mb = -5",
            &["[server] upload_limit_mb is -5", "at least 1"],
        ),
        ("upload_limit_mb = \"big\"", &["[server] upload_limit_mb is a string"]),
    ];
    for (line, parts) in cases {
        // The bad key on line 3, so that the line is told.
        let (dir, config) = load(&format!("[server]\nport = 4000\n{line}\n"));
        let e = config.err().unwrap_or_else(|| panic!("{line}: accepted")).to_string();
        let file = dir.path().join("lockgate.toml").display().to_string();
        assert!(e.starts_with(&format!("{file}:3: ")), "{line}: {e}");
        for p in *parts {
            assert!(e.contains(p), "{line}: {p:?} not in {e}");
        }
    }
}

#[test]
fn a_bad_server_setting_does_not_stop_reading_the_rest_of_the_file() {
    // What `migrate`, `load` and transfers read: connections, transfers. The bad
    // `[server]` value is an error only when the server settings are read.
    let (dir, settings) = load("[connections.app]\nurl = \"sqlite://app.db\"\n\n[server]\nbody_grace = 0\n");
    let path = dir.path().join("lockgate.toml");
    let config = Config::load(&path, true).unwrap_or_else(|e| panic!("the file is refused: {e}"));
    assert_eq!(config.connections["app"].url, "sqlite://app.db");
    let e = settings.unwrap_err().to_string();
    assert!(e.contains(":5: ") && e.contains("[server] body_grace"), "{e}");
    // An unknown key under [server] too.
    let (dir, settings) = load("[server]\nnot_a_key = 1\n");
    Config::load(&dir.path().join("lockgate.toml"), true).unwrap();
    let e = settings.unwrap_err().to_string();
    assert!(e.contains(":2: ") && e.contains("not_a_key"), "{e}");
    // Not TOML at all: still every command's error.
    let (dir, _) = load("[server\n");
    assert!(Config::load(&dir.path().join("lockgate.toml"), true).is_err());
    // No file: the defaults.
    let defaults = Config::default().server().unwrap();
    assert!(defaults.body_grace.is_none() && defaults.max_connections.is_none());
}

#[test]
fn limits_out_of_range_set_in_code_are_refused_before_serving() {
    let mut cfg = ServerConfig::new();
    cfg.max_connections = 0;
    let e = cfg.check().unwrap_err();
    assert!(e.contains("max_connections is 0"), "{e}");
    // The setting is named, not lockgate.toml: it did not come from there.
    assert!(!e.contains("lockgate.toml"), "{e}");
    // Beyond what a semaphore holds: refused, not a panic when the server starts.
    cfg.max_connections = usize::MAX;
    assert!(cfg.check().unwrap_err().contains("max_connections"));
    cfg.max_connections = lockgate::config::DEFAULT_MAX_CONNECTIONS;
    cfg.check().unwrap();

    // body_grace below 1 s would cut uploads off as they start.
    cfg.body_grace = Duration::from_millis(500);
    let e = cfg.check().unwrap_err();
    assert!(e.contains("body_grace is 500ms") && e.contains("at least 1s"), "{e}");
    assert!(!e.contains("lockgate.toml"), "{e}");
    cfg.body_grace = Duration::from_secs(1);
    cfg.check().unwrap();

    // An upload limit of 0 would refuse every upload.
    cfg.upload_limit = 0;
    let e = cfg.check().unwrap_err();
    assert!(
        e.contains("upload limit is 0") && e.contains("refuse every upload"),
        "{e}"
    );
    cfg.upload_limit = 1;
    cfg.check().unwrap();

    // A pool of no connection could serve no page; a huge one would hold that many
    // sessions open on every database.
    for bad in [0, 65] {
        cfg.pool_size = bad;
        let e = cfg.check().unwrap_err();
        assert!(
            e.contains(&format!("pool_size is {bad}")) && e.contains("from 1 to 64"),
            "{e}"
        );
    }
    cfg.pool_size = 1;
    cfg.check().unwrap();
}
