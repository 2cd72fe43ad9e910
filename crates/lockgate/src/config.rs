//! `lockgate.toml`: named connections, so that `--db prod` can stand for a URL,
//! named transfers (see [`crate::transfer`]), and the server's settings.
//!
//! ```toml
//! [connections.prod]
//! url = "postgres://app@db.example.com/app"
//!
//! [server]
//! port = 3333                     # or bind = "127.0.0.1:3333"
//! allowed_hosts = ["lockgate.internal"]
//! upload_limit_mb = 100
//! ```

use lockgate_db::DbUrl;
use std::collections::BTreeMap;
use std::path::Path;

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
    /// `lockgate serve`'s settings (`[server]`).
    #[serde(default)]
    pub server: ServerSettings,
    /// The file this was read from, for messages (none: no file was read).
    #[serde(skip)]
    pub path: Option<std::path::PathBuf>,
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
    /// The largest upload, in MB (default 100).
    pub upload_limit_mb: Option<usize>,
    /// The connection migrations go to (default: `--db`, or `DATABASE_URL`).
    pub db: Option<String>,
    /// The folder of version folders (default `./db`).
    pub migrations_dir: Option<String>,
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
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            let place = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(":{line}")
                })
                .unwrap_or_default();
            ConfigError(format!("{}{place}: {}", path.display(), e.message()))
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
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
