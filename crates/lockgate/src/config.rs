//! `lockgate.toml`: named connections, so that `--db prod` can stand for a URL,
//! named transfers (see [`crate::transfer`]), named merges of accounts, and the
//! server's settings.
//!
//! ```toml
//! [connections.prod]
//! url = "postgres://app@db.example.com/app"
//!
//! [merges.customers]                 # lockgate merge --def customers (see lockgate::merge::def)
//! db = "prod"                        # a connection name or a URL
//! table = "customers"                # the accounts' table
//! deleted_when = "deleted = 1"       # an SQL condition: the account is soft-deleted
//! sources = "set:deleted=1,active=0" # what the merge does to the account merged away
//! conflict_rows = "set:deleted=1"    # what it does to a row that conflicts with the kept one's
//! skip_tables = []                   # tables the merge leaves out
//! references = []                    # soft references: "jobs.byPuid -> customers.id"
//! merge_conflicts = false
//! timeout = "60s"
//!
//! [server]
//! port = 3333                     # or bind = "127.0.0.1:3333"
//! allowed_hosts = ["lockgate.internal"]
//! upload_limit_mb = 100           # at least 1
//! upload_scripts = false          # true: uploaded zips may run process scripts
//! body_grace = "30s"              # then a request body must average 16 KiB/s
//! max_connections = 256           # served at once; more wait in the listen queue
//! pool_size = 4                   # pooled database connections per connection name
//! pool_idle = "5m"                # a pooled connection idle this long is closed
//! pool_lifetime = "30m"           # and one open this long, once idle
//! ```
//!
//! Bad values are errors naming the file, the line and the key: durations go through
//! the one duration parser (`lockgate_core::parse_duration`). Connections and
//! transfers are checked when the file is read, and so are merges (their keys,
//! actions and durations: [`crate::merge::MergeSpec`]); `[server]` only by the commands that serve (`serve`, `demo`) through
//! [`Config::server`], so that a bad server setting does not stop `migrate`, `load`
//! or a transfer.

use lockgate_db::DbUrl;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The shortest `[server] body_grace`: a body must average 16 KiB/s once it has
/// passed, so less would cut uploads off as they start.
pub const MIN_BODY_GRACE: Duration = Duration::from_secs(1);

/// The most `[server] max_connections`: each is a task and a file descriptor, and
/// beyond this the process would run out of descriptors long before.
pub const MAX_CONNECTIONS: usize = 100_000;

/// `body_grace` when `[server]` does not give it.
pub const DEFAULT_BODY_GRACE: Duration = Duration::from_secs(30);

/// `max_connections` when `[server]` does not give it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// `[server] pool_size` when neither it nor `--pool-size` gives it: the database
/// connections the server keeps for its own reads (table lists, pages, counts), per
/// connection name. A page takes one for a few milliseconds, so a handful serves many
/// browsers.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The most `[server] pool_size`: each is a session on the database server, kept
/// open while idle.
pub const MAX_POOL_SIZE: usize = 64;

/// The shortest `[server] pool_idle` and `pool_lifetime`: shorter, pooled sessions
/// would be closed between a page's requests.
pub const MIN_POOL_TIME: Duration = Duration::from_secs(1);

/// The configuration file.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named connections.
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
    /// Named transfers (`[transfers.NAME]`).
    #[serde(default)]
    pub transfers: BTreeMap<String, crate::transfer::TransferSpec>,
    /// Named merge definitions (`[merges.NAME]`, see [`crate::merge::def`]).
    #[serde(default)]
    pub merges: BTreeMap<String, crate::merge::MergeSpec>,
    /// Data profiles (`[profiles.NAME]`, see [`crate::snapshot::profile`]).
    #[serde(default)]
    pub profiles: BTreeMap<String, crate::snapshot::ProfileSpec>,
    /// `[snapshots]`: the default store and its S3 settings.
    pub snapshots: Option<crate::snapshot::SnapshotsSettings>,
    /// Declared upgrades (`[upgrades.NAME]`, see [`crate::upgrade::def`]).
    #[serde(default)]
    pub upgrades: BTreeMap<String, crate::upgrade::UpgradeSpec>,
    /// `[server]` as the file writes it (any TOML): read and checked by
    /// [`Config::server`] alone, when a command serves.
    #[serde(default, rename = "server")]
    _server: Option<serde::de::IgnoredAny>,
    /// The file this was read from, for messages (none: no file was read).
    #[serde(skip)]
    pub path: Option<std::path::PathBuf>,
    /// The file's text, for [`Config::server`] (none: no file was read).
    #[serde(skip)]
    text: Option<String>,
}

/// The file as [`Config::server`] reads it: `[server]` alone, the rest ignored (it
/// was checked when the file was read).
#[derive(serde::Deserialize)]
struct ServerPart {
    #[serde(default)]
    server: ServerSettings,
}

/// `[server]`: what `lockgate serve` listens on and accepts; flags override it.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to listen on (`127.0.0.1:3333`).
    pub bind: Option<String>,
    /// The port on 127.0.0.1 (when `bind` is not given).
    pub port: Option<u16>,
    /// Host names the server answers to besides its address (behind a proxy).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// The largest upload, in MB (default 100; at least 1).
    #[serde(default, deserialize_with = "upload_limit_mb")]
    pub upload_limit_mb: Option<usize>,
    /// The connection migrations go to (default: `--db`, or `DATABASE_URL`).
    pub db: Option<String>,
    /// The folder of version folders (default `./db`).
    pub migrations_dir: Option<String>,
    /// Whether an uploaded zip may hold process scripts (`.js`, `.mjs`, `.py`, `.sh`,
    /// executables), which then run as the server's user. Default false: such a zip is
    /// refused (400) before anything runs. `.sql` scripts are always allowed.
    #[serde(default)]
    pub upload_scripts: bool,
    /// How long a request body may arrive at any pace before it must average 16 KiB/s
    /// ([`DEFAULT_BODY_GRACE`]; at least [`MIN_BODY_GRACE`]): seconds (`30`) or a
    /// duration text (`"30s"`, `"2m"`).
    #[serde(default, deserialize_with = "body_grace")]
    pub body_grace: Option<Duration>,
    /// How many connections are served at once ([`DEFAULT_MAX_CONNECTIONS`]; 1 to
    /// [`MAX_CONNECTIONS`]); the next waits in the listen queue until one closes.
    #[serde(default, deserialize_with = "max_connections")]
    pub max_connections: Option<usize>,
    /// How many database connections the server keeps for its own reads, per
    /// connection name ([`DEFAULT_POOL_SIZE`]; 1 to [`MAX_POOL_SIZE`]).
    #[serde(default, deserialize_with = "pool_size")]
    pub pool_size: Option<usize>,
    /// How long a pooled connection may stay idle before it is closed (5 minutes;
    /// at least [`MIN_POOL_TIME`]): below a firewall's or load balancer's idle
    /// timeout, which would otherwise drop it silently.
    #[serde(default, deserialize_with = "pool_idle")]
    pub pool_idle: Option<Duration>,
    /// How long a pooled connection may stay open at all (30 minutes; at least
    /// [`MIN_POOL_TIME`]); it is closed once idle past it.
    #[serde(default, deserialize_with = "pool_lifetime")]
    pub pool_lifetime: Option<Duration>,
}

/// A `[server]` duration: a number of seconds or a duration text, read by the one
/// duration parser, at least `min` (`why` says what less would do).
fn server_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
    min: Duration,
    why: &str,
) -> Result<Option<Duration>, D::Error> {
    use serde::de::Error;
    let text = match <toml::Value as serde::Deserialize>::deserialize(d)? {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::String(t) => t,
        other => {
            return Err(D::Error::custom(format!(
                "[server] {key} is {} {}, not a duration: write seconds (30) or a text such as \"30s\" or \"2m\"",
                if other.type_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                other.type_str()
            )))
        }
    };
    let given = lockgate_core::parse_duration(&text).map_err(|e| D::Error::custom(format!("[server] {key}: {e}")))?;
    if given < min {
        return Err(D::Error::custom(format!(
            "[server] {key} is {text:?}: give at least {}s ({why})",
            min.as_secs()
        )));
    }
    Ok(Some(given))
}

/// `[server] body_grace`, at least [`MIN_BODY_GRACE`].
fn body_grace<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    server_duration(
        d,
        "body_grace",
        MIN_BODY_GRACE,
        "a request body must average 16 KiB/s once it has passed, so less would cut uploads off as they start",
    )
}

/// `[server] pool_idle`, at least [`MIN_POOL_TIME`].
fn pool_idle<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    server_duration(d, "pool_idle", MIN_POOL_TIME, POOL_TIME_WHY)
}

/// `[server] pool_lifetime`, at least [`MIN_POOL_TIME`].
fn pool_lifetime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    server_duration(d, "pool_lifetime", MIN_POOL_TIME, POOL_TIME_WHY)
}

/// Why a pool time must be at least [`MIN_POOL_TIME`].
pub const POOL_TIME_WHY: &str = "shorter, pooled connections would be closed between a page's requests";

/// `[server] max_connections`: a whole number from 1 to [`MAX_CONNECTIONS`].
fn max_connections<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    let fail = |given: String| {
        D::Error::custom(format!(
            "[server] max_connections is {given}: give a whole number from 1 to {MAX_CONNECTIONS} (how many connections are served at once)"
        ))
    };
    match <toml::Value as serde::Deserialize>::deserialize(d)? {
        toml::Value::Integer(n) => match usize::try_from(n) {
            Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(Some(n)),
            _ => Err(fail(n.to_string())),
        },
        other => Err(fail(format!("a {}", other.type_str()))),
    }
}

/// `[server] pool_size`: a whole number from 1 to [`MAX_POOL_SIZE`].
fn pool_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    let fail = |given: String| {
        D::Error::custom(format!(
            "[server] pool_size is {given}: give a whole number from 1 to {MAX_POOL_SIZE} (database connections kept per connection name)"
        ))
    };
    match <toml::Value as serde::Deserialize>::deserialize(d)? {
        toml::Value::Integer(n) => match usize::try_from(n) {
            Ok(n) if (1..=MAX_POOL_SIZE).contains(&n) => Ok(Some(n)),
            _ => Err(fail(n.to_string())),
        },
        other => Err(fail(format!("a {}", other.type_str()))),
    }
}

/// `[server] upload_limit_mb`: a whole number of MB, at least 1 (0 would refuse
/// every upload).
fn upload_limit_mb<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    let fail = |given: String| {
        D::Error::custom(format!(
            "[server] upload_limit_mb is {given}: give a whole number of MB, at least 1 (the largest upload the server accepts; 0 would refuse every upload)"
        ))
    };
    match <toml::Value as serde::Deserialize>::deserialize(d)? {
        toml::Value::Integer(n) => match usize::try_from(n) {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(fail(n.to_string())),
        },
        other => Err(fail(format!("a {}", other.type_str()))),
    }
}

/// A TOML error as `FILE:LINE: message`.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let place = e
        .span()
        .map(|s| {
            let line = text[..s.start].matches('\n').count() + 1;
            format!(":{line}")
        })
        .unwrap_or_default();
    ConfigError(format!("{}{place}: {}", path.display(), e.message()))
}

/// One named connection.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Its URL.
    pub url: String,
}

/// A configuration problem; the message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads `path`; a missing file is an empty configuration only when `required`
    /// is false (the default `./lockgate.toml`).
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Config::default()),
            Err(e) => {
                return Err(ConfigError(format!(
                    "{}: cannot read the configuration: {e}",
                    path.display()
                )))
            }
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        config.path = Some(path.to_path_buf());
        config.text = Some(text);
        Ok(config)
    }

    /// `[server]`, read and checked now: only `serve` and `demo` need it, so only they
    /// fail on a bad value (naming the file, the line and the key). Without a file,
    /// or without `[server]`, every setting keeps its default.
    pub fn server(&self) -> Result<ServerSettings, ConfigError> {
        let (Some(path), Some(text)) = (&self.path, &self.text) else {
            return Ok(ServerSettings::default());
        };
        toml::from_str::<ServerPart>(text)
            .map(|p| p.server)
            .map_err(|e| toml_error(path, text, &e))
    }

    /// Resolves `--db`: a named connection, else a URL or a path to an SQLite file
    /// (one containing `/` or ending in `.db`, `.sqlite`, `.sqlite3`); without it,
    /// `DATABASE_URL`. A bare word that names no connection is an error listing the
    /// connections: a typo must never become a new, empty SQLite file.
    pub fn resolve_db(&self, given: Option<&str>) -> Result<DbUrl, ConfigError> {
        let raw = match given {
            Some(g) => g.to_string(),
            None => std::env::var("DATABASE_URL").map_err(|_| {
                ConfigError(
                    "no database given: use --db URL (or a connection name from lockgate.toml), or set DATABASE_URL"
                        .into(),
                )
            })?,
        };
        let url = match self.connections.get(raw.trim()) {
            Some(c) => c.url.clone(),
            None if !raw.trim().is_empty()
                && !raw.contains("://")
                && !lockgate_db::url::looks_like_path(raw.trim()) =>
            {
                return Err(self.unknown_connection(raw.trim()))
            }
            None => raw,
        };
        DbUrl::parse(&url).map_err(|e| ConfigError(e.to_string()))
    }

    /// The error for a bare word that names no connection.
    fn unknown_connection(&self, word: &str) -> ConfigError {
        let known = match &self.path {
            None => "no lockgate.toml was read, so there are no connection names".to_string(),
            Some(file) if self.connections.is_empty() => format!("{} defines no connections", file.display()),
            Some(file) => {
                let names: Vec<&str> = self.connections.keys().map(String::as_str).collect();
                format!("connections in {}: {}", file.display(), names.join(", "))
            }
        };
        let file_hint = if Path::new(word).is_file() {
            format!(" (a file named {word} exists here: to use it, write ./{word})")
        } else {
            String::new()
        };
        ConfigError(format!(
            "{word:?} is not a connection name ({known}) nor a database URL{file_hint}; \
             for an SQLite file write ./{word} or sqlite://{word}"
        ))
    }
}
