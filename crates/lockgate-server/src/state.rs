//! The server's configuration and shared state: the connections it shows, the
//! transfers it runs, the merges it offers, the upgrades it watches, where
//! migrations come from, and who may use it.

use crate::jobs::Jobs;
use crate::pool::{PoolTimes, Pools};
use lockgate::dashboard::DbUrl;
use lockgate::transfer::Transfer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The default port, as in the seed export app.
pub const DEFAULT_PORT: u16 = 3333;

/// The default upload limit: 100 MiB.
pub const DEFAULT_UPLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// How long a request's headers may take, and a body may pause: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A database the dashboard shows.
#[derive(Clone, Debug)]
pub struct NamedConnection {
    /// Its name (from `lockgate.toml`, or `db` for `--db`).
    pub name: String,
    /// Its URL.
    pub url: DbUrl,
}

/// A merge definition the Merge page and `/api/merges` offer (`[merges.NAME]` in
/// `lockgate.toml`), with the connection it runs on.
#[derive(Clone, Debug)]
pub struct MergeDefinition {
    /// Its name.
    pub name: String,
    /// The definition as written.
    pub spec: lockgate::merge::MergeSpec,
    /// Its database: an index into [`ServerConfig::connections`] (the spec's `db`,
    /// else the server's default database); none when neither is set, and then a
    /// request names the connection.
    pub conn: Option<usize>,
}

/// What `lockgate serve` serves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// The token every request needs (`LOCKGATE_TOKEN`); required when `bind` is not
    /// a loopback address.
    pub token: Option<String>,
    /// Host names the server answers to besides its bound address (a reverse proxy's
    /// name, say). Requests naming any other host are refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// The largest upload accepted, in bytes.
    pub upload_limit: usize,
    /// The databases shown (the Tables page, the Overview).
    pub connections: Vec<NamedConnection>,
    /// The connection migrations go to (Migrations, Data, `/getzip`, `/uploadzip`);
    /// an index into `connections`.
    pub migrate_db: Option<usize>,
    /// The folder of version folders for `migrate` (default `./db`).
    pub migrations_dir: PathBuf,
    /// The module whose versions the Migrations page shows.
    pub module: String,
    /// The transfers (the Exports page, `/process`).
    pub transfers: Vec<Transfer>,
    /// The merge definitions (the Merge page, `/api/merges`). A merge runs only on
    /// one of `connections`, never on a URL a request gives.
    pub merges: Vec<MergeDefinition>,
    /// The demo's folder, in demo mode (the Generate Sample Customers form).
    pub demo: Option<PathBuf>,
    /// The declared background upgrades (`[upgrades.NAME]` in `lockgate.toml` and
    /// `upgrades/NAME.toml`), checked and in dependency order: the Upgrades page and
    /// `/api/upgrades`.
    pub upgrades: Vec<lockgate::upgrade::Upgrade>,
    /// The connection the upgrades apply to (their tables and the ledger that records
    /// their state): an index into `connections`, by default `migrate_db`.
    pub upgrades_db: Option<usize>,
    /// The folder the upgrade files were read from, for the page's hints.
    pub upgrades_dir: PathBuf,
    /// `lockgate.toml` as read, for its data profiles (`[profiles.NAME]`) and
    /// `[snapshots]` store settings: the Snapshots page and `/api/profiles`. Profiles
    /// pinned in `migrations_dir/profiles/` are found there too.
    pub config: lockgate::Config,
    /// Whether uploaded zips may hold process scripts (`[server] upload_scripts`):
    /// they would run as the server's user. Default false: such a zip is refused.
    pub upload_scripts: bool,
    /// How long a client may take to send a request's headers, and how long a request
    /// body may go without a byte: an idle or half-sent request is dropped after it.
    pub request_timeout: std::time::Duration,
    /// How long a request body may arrive at any pace before it must average at least
    /// [`MIN_BODY_RATE`](crate::MIN_BODY_RATE) bytes a second
    /// ([`DEFAULT_BODY_GRACE`](lockgate::config::DEFAULT_BODY_GRACE), at least
    /// [`MIN_BODY_GRACE`](lockgate::config::MIN_BODY_GRACE)): a body trickled a byte
    /// at a time, never idle long enough for `request_timeout`, ends.
    pub body_grace: std::time::Duration,
    /// How many connections are served at once
    /// ([`DEFAULT_MAX_CONNECTIONS`](lockgate::config::DEFAULT_MAX_CONNECTIONS), 1 to
    /// [`MAX_CONNECTIONS`](lockgate::config::MAX_CONNECTIONS)); the next waits in the
    /// listen queue until one closes.
    pub max_connections: usize,
    /// How many database connections the server keeps for its own reads (table
    /// lists, pages, counts, the connection check), per connection name
    /// ([`DEFAULT_POOL_SIZE`](lockgate::config::DEFAULT_POOL_SIZE), 1 to
    /// [`MAX_POOL_SIZE`](lockgate::config::MAX_POOL_SIZE)): see `pool.rs`. Jobs
    /// (exports, migrations, merges, snapshots) open their own.
    pub pool_size: usize,
    /// How long a pooled connection may stay idle, and stay open at all, before it
    /// is closed ([`PoolTimes::default`]: 5 and 30 minutes; see `pool.rs`).
    pub pool_times: PoolTimes,
}

impl ServerConfig {
    /// A configuration with nothing in it, listening on 127.0.0.1:3333.
    pub fn new() -> ServerConfig {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            token: None,
            allowed_hosts: Vec::new(),
            upload_limit: DEFAULT_UPLOAD_LIMIT,
            connections: Vec::new(),
            migrate_db: None,
            migrations_dir: PathBuf::from("db"),
            module: "./".into(),
            transfers: Vec::new(),
            merges: Vec::new(),
            demo: None,
            upgrades: Vec::new(),
            upgrades_db: None,
            upgrades_dir: PathBuf::from("upgrades"),
            config: lockgate::Config::default(),
            upload_scripts: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_grace: lockgate::config::DEFAULT_BODY_GRACE,
            max_connections: lockgate::config::DEFAULT_MAX_CONNECTIONS,
            pool_size: lockgate::config::DEFAULT_POOL_SIZE,
            pool_times: PoolTimes::default(),
        }
    }

    /// What `lockgate demo` serves: the demo in `dir` (made by
    /// `lockgate::demo::create`), its source and destination, its transfer,
    /// migrations into the destination from `dir/db`, and the Generate form.
    pub fn demo(dir: &std::path::Path) -> Result<ServerConfig, lockgate::demo::DemoError> {
        let t = lockgate::demo::DemoFiles::new(dir).transfer()?;
        let mut cfg = ServerConfig::new();
        cfg.connections = vec![
            NamedConnection {
                name: "source".into(),
                url: t.source.clone(),
            },
            NamedConnection {
                name: "destination".into(),
                url: t.dest.clone(),
            },
        ];
        cfg.migrate_db = Some(1);
        cfg.migrations_dir = dir.join("db");
        cfg.transfers = vec![t];
        cfg.demo = Some(dir.to_path_buf());
        // The demo's own lockgate.toml names its other databases and its merges
        // (customer accounts, `[merges.customers]`).
        let files = lockgate::demo::DemoFiles::new(dir);
        let config = lockgate::Config::load(&files.config, false)
            .map_err(|e| lockgate::demo::DemoError::Input(e.to_string()))?;
        cfg.add_connections(&config).map_err(lockgate::demo::DemoError::Input)?;
        cfg.add_merges(&config).map_err(lockgate::demo::DemoError::Input)?;
        cfg.add_profiles(&config).map_err(lockgate::demo::DemoError::Input)?;
        // The demo's upgrade (`upgrades/` in its folder) applies to the destination.
        cfg.add_upgrades(&config, &files.upgrades)
            .map_err(lockgate::demo::DemoError::Input)?;
        Ok(cfg)
    }

    /// Adds `config`'s named connections (`[connections.NAME]`) that are not
    /// already here under their name.
    pub fn add_connections(&mut self, config: &lockgate::Config) -> Result<(), String> {
        for (name, c) in &config.connections {
            if self.connection(name).is_some() {
                continue;
            }
            let url = DbUrl::parse(&c.url).map_err(|e| format!("lockgate.toml: connection {name}: {e}"))?;
            self.connections.push(NamedConnection {
                name: name.clone(),
                url,
            });
        }
        Ok(())
    }

    /// Adds `config`'s merge definitions (`[merges.NAME]`), each on one of the
    /// connections: its `db` names a connection (or a URL, which becomes the
    /// connection `merges.NAME` when no connection has it), else the server's
    /// default database (`migrate_db`). Call it after the connections and
    /// `migrate_db` are set.
    pub fn add_merges(&mut self, config: &lockgate::Config) -> Result<(), String> {
        for (name, spec) in &config.merges {
            let conn = match spec.db.as_deref() {
                None => self.migrate_db,
                Some(db) => {
                    let url = config
                        .resolve_db(Some(db))
                        .map_err(|e| format!("lockgate.toml: merge {name}: db: {e}"))?;
                    match self.connections.iter().position(|c| c.url.as_str() == url.as_str()) {
                        Some(i) => Some(i),
                        None => {
                            self.connections.push(NamedConnection {
                                name: format!("merges.{name}"),
                                url,
                            });
                            Some(self.connections.len() - 1)
                        }
                    }
                }
            };
            self.merges.push(MergeDefinition {
                name: name.clone(),
                spec: spec.clone(),
                conn,
            });
        }
        Ok(())
    }

    /// Takes `config`'s data profiles (`[profiles.NAME]`) and `[snapshots]`
    /// settings, merged over those already here. A profile whose `db` names a
    /// database none of the connections has adds it as the connection
    /// `profiles.NAME`, so that a snapshot of the profile needs no other choice
    /// (a request never gives a URL). Call it after the connections are set.
    pub fn add_profiles(&mut self, config: &lockgate::Config) -> Result<(), String> {
        // A profile's `db` may be a connection name of that file.
        for (name, c) in &config.connections {
            self.config.connections.entry(name.clone()).or_insert_with(|| c.clone());
        }
        for (name, spec) in &config.profiles {
            // A connection of this server by name (the demo's `accounts`, say), else
            // a name or URL as the file resolves it.
            if let Some(db) = spec.db.as_deref().filter(|db| self.connection(db).is_none()) {
                let url = config
                    .resolve_db(Some(db))
                    .map_err(|e| format!("lockgate.toml: profile {name}: db: {e}"))?;
                if !self.connections.iter().any(|c| c.url.as_str() == url.as_str()) {
                    self.connections.push(NamedConnection {
                        name: format!("profiles.{name}"),
                        url,
                    });
                }
            }
            self.config.profiles.insert(name.clone(), spec.clone());
        }
        if config.snapshots.is_some() {
            self.config.snapshots = config.snapshots.clone();
        }
        Ok(())
    }

    /// Takes the upgrades `config` (`[upgrades.NAME]`) and the folder `dir`
    /// (`upgrades/*.toml`) declare, checked together as `lockgate upgrade` checks them
    /// (a bad declaration is an error naming its file and field); they apply to
    /// `upgrades_db`, else to the server's default database. Call it after the
    /// connections and `migrate_db` are set.
    pub fn add_upgrades(&mut self, config: &lockgate::Config, dir: &std::path::Path) -> Result<(), String> {
        self.upgrades = lockgate::upgrade::declared(config, dir).map_err(|e| e.to_string())?;
        self.upgrades_dir = dir.to_path_buf();
        self.upgrades_db = self.upgrades_db.or(self.migrate_db);
        Ok(())
    }

    /// The connection the upgrades apply to.
    pub fn upgrades_conn(&self) -> Option<&NamedConnection> {
        self.upgrades_db.and_then(|i| self.connections.get(i))
    }

    /// A declared upgrade by name.
    pub fn upgrade(&self, name: &str) -> Option<&lockgate::upgrade::Upgrade> {
        self.upgrades.iter().find(|u| u.name == name)
    }

    /// The connection a profile's snapshots are taken from by default: the one its
    /// `db` names (by name, else by URL), if it is one of the connections.
    pub fn profile_connection(&self, profile: &str) -> Option<&NamedConnection> {
        let db = self.config.profiles.get(profile)?.db.as_deref()?;
        if let Some(c) = self.connection(db) {
            return Some(c);
        }
        let url = self.config.resolve_db(Some(db)).ok()?;
        self.connections.iter().find(|c| c.url.as_str() == url.as_str())
    }

    /// Takes the limits `lockgate.toml`'s `[server]` sets (validated when the file
    /// was read): its allowed hosts, upload limit and `upload_scripts`, `body_grace`,
    /// `max_connections`, `pool_size`, `pool_idle` and `pool_lifetime`. What it leaves out keeps its value; flags applied after
    /// this override it. (Where to listen, the database and the folder need the
    /// command line too: `lockgate serve` resolves those.)
    pub fn apply_settings(&mut self, s: &lockgate::config::ServerSettings) {
        self.allowed_hosts.extend(s.allowed_hosts.iter().cloned());
        if let Some(mb) = s.upload_limit_mb {
            self.upload_limit = mb.saturating_mul(1024 * 1024);
        }
        self.upload_scripts = s.upload_scripts;
        if let Some(grace) = s.body_grace {
            self.body_grace = grace;
        }
        if let Some(n) = s.max_connections {
            self.max_connections = n;
        }
        if let Some(n) = s.pool_size {
            self.pool_size = n;
        }
        if let Some(t) = s.pool_idle {
            self.pool_times.max_idle = t;
        }
        if let Some(t) = s.pool_lifetime {
            self.pool_times.max_lifetime = t;
        }
    }

    /// Refuses what would be unsafe to serve: another address than loopback without
    /// a token; and limits out of range, whether `lockgate.toml` gave them (it checks
    /// its own as it is read) or code or a flag set them. The messages name the
    /// setting, not where it came from, which this cannot know.
    pub fn check(&self) -> Result<(), String> {
        use lockgate::config::{MAX_CONNECTIONS, MAX_POOL_SIZE, MIN_BODY_GRACE, MIN_POOL_TIME, POOL_TIME_WHY};
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(format!(
                "the server's max_connections is {}: give a whole number from 1 to {MAX_CONNECTIONS} (how many connections are served at once)",
                self.max_connections
            ));
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(format!(
                "the server's pool_size is {}: give a whole number from 1 to {MAX_POOL_SIZE} (database connections kept per connection name)",
                self.pool_size
            ));
        }
        for (key, t) in [
            ("pool_idle", self.pool_times.max_idle),
            ("pool_lifetime", self.pool_times.max_lifetime),
        ] {
            // Code may set less than the file's least (tests do); zero would close
            // every connection as it is returned.
            if t.is_zero() {
                return Err(format!(
                    "the server's {key} is 0: give more (lockgate.toml takes at least {MIN_POOL_TIME:?}: {POOL_TIME_WHY})"
                ));
            }
        }
        if self.body_grace < MIN_BODY_GRACE {
            return Err(format!(
                "the server's body_grace is {:?}: give at least {MIN_BODY_GRACE:?} (a request body must average 16 KiB/s once it has passed, so less would cut uploads off as they start)",
                self.body_grace
            ));
        }
        if self.upload_limit == 0 {
            return Err(
                "the server's upload limit is 0 bytes, which would refuse every upload: give at least 1 MB (--upload-limit and [server] upload_limit_mb take MB)"
                    .into(),
            );
        }
        if !self.bind.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "lockgate serve binds to {} without a token: anyone who can reach it could read and change your data; \
                 set LOCKGATE_TOKEN (a long random string) or bind to 127.0.0.1",
                self.bind
            ));
        }
        for m in &self.merges {
            if m.conn.is_some_and(|i| i >= self.connections.len()) {
                return Err(format!(
                    "merge definition {} names connection {} of {}: give an index into the connections",
                    m.name,
                    m.conn.unwrap_or_default(),
                    self.connections.len()
                ));
            }
        }
        if let Some(i) = self.upgrades_db.filter(|i| *i >= self.connections.len()) {
            return Err(format!(
                "the upgrades' database is connection {i} of {}: give an index into the connections",
                self.connections.len()
            ));
        }
        if self.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("LOCKGATE_TOKEN is shorter than 16 characters: use a long random string".into());
        }
        Ok(())
    }

    /// The migrations' database.
    pub fn migrate_conn(&self) -> Option<&NamedConnection> {
        self.migrate_db.and_then(|i| self.connections.get(i))
    }

    /// A connection by name.
    pub fn connection(&self, name: &str) -> Option<&NamedConnection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// A merge definition by name.
    pub fn merge_definition(&self, name: &str) -> Option<&MergeDefinition> {
        self.merges.iter().find(|m| m.name == name)
    }

    /// A transfer by name.
    pub fn transfer(&self, name: &str) -> Option<&Transfer> {
        self.transfers.iter().find(|t| t.name == name)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new()
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The configuration.
    pub cfg: ServerConfig,
    /// Running and recent jobs.
    pub jobs: Jobs,
    /// Session ids of signed-in browsers (with a token set).
    pub sessions: Mutex<Sessions>,
    /// The key the pages' form tokens (CSRF) are derived with, random for each server
    /// process: a form's token is bound to its browser's session (or, without one, to
    /// its client cookie), see [`AppState::form_token`].
    csrf_key: [u8; 32],
    /// Host headers accepted.
    pub hosts: Vec<String>,
    /// Each transfer's exportable row count and when it was counted (the Export
    /// button; see `service::transfer_info`).
    pub available: Mutex<std::collections::HashMap<String, (std::time::Instant, i64)>>,
    /// Bumped by everything that may change those counts, so that a count begun
    /// before the change is not kept.
    pub available_generation: std::sync::atomic::AtomicU64,
    /// Set when the server is stopping: event streams end, so that the graceful
    /// shutdown does not wait for browsers that keep them open.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// The pooled connections of the server's own reads, one pool per connection.
    pub pools: Pools,
}

/// The state as handlers take it.
pub type Shared = Arc<AppState>;

impl AppState {
    /// The state for `cfg`.
    pub fn new(cfg: ServerConfig) -> AppState {
        let port = cfg.bind.port();
        let mut hosts = vec![cfg.bind.to_string()];
        if cfg.bind.ip().is_loopback() || cfg.bind.ip().is_unspecified() {
            hosts.push(format!("localhost:{port}"));
            hosts.push(format!("127.0.0.1:{port}"));
            hosts.push(format!("[::1]:{port}"));
        }
        for h in &cfg.allowed_hosts {
            hosts.push(h.clone());
            if !h.contains(':') {
                hosts.push(format!("{h}:{port}"));
            }
        }
        if port == 80 {
            let bare: Vec<String> = hosts
                .iter()
                .filter_map(|h| h.strip_suffix(":80").map(String::from))
                .collect();
            hosts.extend(bare);
        }
        let pools = Pools::new(&cfg.connections, cfg.pool_size, cfg.pool_times);
        AppState {
            pools,
            cfg,
            jobs: Jobs::new(),
            sessions: Mutex::new(Sessions::default()),
            csrf_key: random_bytes(),
            hosts,
            available: Mutex::new(Default::default()),
            available_generation: Default::default(),
            stop: tokio::sync::watch::channel(false).0,
        }
    }

    /// Whether requests need the token or a session.
    pub fn auth_required(&self) -> bool {
        self.cfg.token.as_deref().is_some_and(|t| !t.is_empty())
    }

    /// The form token (CSRF) of one browser: an HMAC of who it is (its session, else
    /// its client cookie) under this process's key. Another browser's token, a token
    /// from before a sign-in or a sign-out, or from another server process does not
    /// match; nothing needs to be stored.
    pub fn form_token(&self, client: &Client) -> String {
        let subject = match client {
            Client::Session(id) => format!("session:{id}"),
            Client::Cookie(id) => format!("client:{id}"),
        };
        hex(&hmac_sha256(&self.csrf_key, subject.as_bytes()))
    }
}

/// Who a browser is, for its form tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client {
    /// Signed in: the session id.
    Session(String),
    /// Not signed in (or no token is set): the id in its client cookie.
    Cookie(String),
}

/// HMAC-SHA-256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let inner = Sha256::new().chain_update(inner_pad).chain_update(message).finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// How long a sign-in lasts.
pub const SESSION_FOR: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The most sessions kept: signing in again and again cannot grow memory for ever
/// (the oldest is dropped).
const MAX_SESSIONS: usize = 1_000;

/// Signed-in browsers: session id → when it was issued.
#[derive(Default)]
pub struct Sessions(std::collections::HashMap<String, std::time::Instant>);

impl Sessions {
    /// Issues a new session id.
    pub fn issue(&mut self) -> String {
        self.0.retain(|_, at| at.elapsed() < SESSION_FOR);
        if self.0.len() >= MAX_SESSIONS {
            if let Some(oldest) = self.0.iter().min_by_key(|(_, at)| **at).map(|(id, _)| id.clone()) {
                self.0.remove(&oldest);
            }
        }
        let id = random_token();
        self.0.insert(id.clone(), std::time::Instant::now());
        id
    }

    /// Whether `id` is a live session.
    pub fn valid(&self, id: &str) -> bool {
        self.0.get(id).is_some_and(|at| at.elapsed() < SESSION_FOR)
    }

    /// Ends a session.
    pub fn end(&mut self, id: &str) {
        self.0.remove(id);
    }
}

/// 32 random bytes from the operating system.
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random numbers");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes from the operating system, as hex.
pub fn random_token() -> String {
    hex(&random_bytes())
}

/// Whether `s` looks like a [`random_token`] (64 lower-case hex digits): a client
/// cookie of any other shape is replaced.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2 needs a 4-byte key; case 1's 20-byte key of 0x0b,
        // zero-padded to 32 bytes, is the same key to HMAC (keys are zero-padded).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hex(&hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn form_tokens_are_bound_to_their_client() {
        let st = AppState::new(ServerConfig::new());
        let a = st.form_token(&Client::Cookie("a".repeat(64)));
        assert_eq!(a, st.form_token(&Client::Cookie("a".repeat(64))));
        assert_ne!(a, st.form_token(&Client::Cookie("b".repeat(64))));
        assert_ne!(a, st.form_token(&Client::Session("a".repeat(64))));
        let other = AppState::new(ServerConfig::new());
        assert_ne!(a, other.form_token(&Client::Cookie("a".repeat(64))), "another process");
        assert!(is_token_shaped(&a) && !is_token_shaped("A".repeat(64).as_str()));
    }

    #[test]
    fn sessions_are_issued_checked_ended_and_capped() {
        let mut s = Sessions::default();
        let a = s.issue();
        assert!(s.valid(&a));
        assert!(!s.valid("forged"));
        s.end(&a);
        assert!(!s.valid(&a));
        let first = s.issue();
        for _ in 0..MAX_SESSIONS {
            s.issue();
        }
        assert_eq!(s.0.len(), MAX_SESSIONS);
        assert!(!s.valid(&first), "the oldest went first");
    }
}
