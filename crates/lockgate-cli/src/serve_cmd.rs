//! `lockgate serve`: the dashboard and HTTP API over the connections, transfers,
//! merges, data profiles, background upgrades and migrations `lockgate.toml` names;
//! and the server half of `lockgate demo`.

use crate::render;
use lockgate::config::ServerSettings;
use lockgate::transfer::{Transfer, TransferSpec};
use lockgate::Config;
use lockgate_server::{NamedConnection, ServerConfig, DEFAULT_PORT};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `lockgate serve`'s flags.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1, port from PORT, lockgate.toml or 3333).
    /// Any address but loopback needs LOCKGATE_TOKEN.
    #[arg(long)]
    bind: Option<String>,
    /// The database migrations go to (URL or connection name; default lockgate.toml's
    /// [server] db, else DATABASE_URL).
    #[arg(long)]
    db: Option<String>,
    /// The folder of version folders.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The module the Migrations page shows.
    #[arg(long, default_value = "./")]
    module: String,
    /// The folder of upgrade files (as `lockgate upgrade --dir`); the Upgrades page
    /// shows them with lockgate.toml's [upgrades.NAME], on the --db database.
    #[arg(long = "upgrades-dir", default_value = "upgrades")]
    upgrades_dir: PathBuf,
    /// A host name the server also answers to (behind a proxy); repeatable.
    #[arg(long = "allow-host")]
    allow_host: Vec<String>,
    /// The largest upload, in MB (default 100).
    #[arg(long = "upload-limit")]
    upload_limit_mb: Option<usize>,
    /// Database connections kept for the dashboard's reads, per connection (default
    /// lockgate.toml's [server] pool_size, else 4; 1 to 64).
    #[arg(long = "pool-size")]
    pool_size: Option<usize>,
}

fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = s.strip_prefix("localhost:").and_then(|p| p.parse::<u16>().ok()) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "--bind {s:?} is not an address: give IP:PORT (127.0.0.1:3333) or a port"
    ))
}

/// Where to listen: `--bind`, else `PORT`, else lockgate.toml, else 127.0.0.1:3333.
fn bind_address(flag: Option<&str>, server: &ServerSettings) -> Result<SocketAddr, String> {
    if let Some(b) = flag {
        return parse_bind(b);
    }
    if let Ok(port) = std::env::var("PORT") {
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number: give 1 to 65535"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(b) = &server.bind {
        return parse_bind(b).map_err(|e| format!("lockgate.toml [server] bind: {e}"));
    }
    Ok(SocketAddr::from(([127, 0, 0, 1], server.port.unwrap_or(DEFAULT_PORT))))
}

fn token() -> Option<String> {
    std::env::var("LOCKGATE_TOKEN").ok().filter(|t| !t.is_empty())
}

/// Serves `cfg`; prints where.
async fn run(cfg: ServerConfig) -> i32 {
    let (listener, app) = match lockgate_server::bind(cfg).await {
        Ok(x) => x,
        Err(e) => return render::fail(&e.to_string(), 1),
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    eprintln!("lockgate serve: the dashboard is at http://{addr}/ (Ctrl-C stops)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match lockgate_server::run(listener, app, shutdown).await {
        Ok(()) => 0,
        Err(e) => render::fail(&e.to_string(), 1),
    }
}

/// lockgate.toml's `[server]`, read now (only the commands that serve read it): a
/// bad value is a usage error naming the file, the line and the key.
fn server_settings(config: &Config) -> Result<ServerSettings, i32> {
    config.server().map_err(|e| render::fail(&e.to_string(), 2))
}

/// `lockgate serve`
pub async fn serve(config: &Config, a: ServeArgs) -> i32 {
    let server = match server_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut cfg = ServerConfig::new();
    cfg.bind = match bind_address(a.bind.as_deref(), &server) {
        Ok(b) => b,
        Err(e) => return render::fail(&e, 2),
    };
    cfg.token = token();
    // lockgate.toml's [server] limits, then the flags over them.
    cfg.apply_settings(&server);
    cfg.allowed_hosts.extend(a.allow_host);
    if let Some(mb) = a.upload_limit_mb {
        cfg.upload_limit = mb.saturating_mul(1024 * 1024);
    }
    if let Some(n) = a.pool_size {
        cfg.pool_size = n;
    }
    if let Err(e) = cfg.add_connections(config) {
        return render::fail(&e, 2);
    }
    let db = a.db.or_else(|| server.db.clone());
    if db.is_some() || std::env::var("DATABASE_URL").is_ok() {
        let url = match config.resolve_db(db.as_deref()) {
            Ok(u) => u,
            Err(e) => return render::fail(&e.to_string(), 2),
        };
        cfg.migrate_db = Some(
            match cfg.connections.iter().position(|c| c.url.as_str() == url.as_str()) {
                Some(i) => i,
                None => {
                    cfg.connections.push(NamedConnection { name: "db".into(), url });
                    cfg.connections.len() - 1
                }
            },
        );
    }
    // Each merge definition on one of the connections (its db, else the default).
    if let Err(e) = cfg.add_merges(config) {
        return render::fail(&e, 2);
    }
    // The data profiles, for the Snapshots page (a profile's db becomes a connection).
    if let Err(e) = cfg.add_profiles(config) {
        return render::fail(&e, 2);
    }
    // The declared upgrades, for the Upgrades page: on the default database, read
    // from the folder `lockgate upgrade` reads (a bad declaration names its file).
    if let Err(e) = cfg.add_upgrades(config, &a.upgrades_dir) {
        return render::fail(&e, 2);
    }
    cfg.migrations_dir = a
        .dir
        .or_else(|| server.migrations_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("db"));
    cfg.module = a.module;
    for name in config.transfers.keys() {
        match Transfer::resolve(name, config, TransferSpec::default()) {
            Ok(t) => cfg.transfers.push(t),
            Err(e) => return render::fail(&format!("lockgate.toml: {e}"), e.exit_code()),
        }
    }
    if let Err(e) = cfg.check() {
        return render::fail(&e, 2);
    }
    run(cfg).await
}

/// Serves the demo in `dir` (made by `lockgate::demo::create`): its source and
/// destination, its transfer, migrations into the destination from `dir/db`, and
/// the Generate Sample Customers form.
pub async fn serve_demo(dir: &Path, bind: Option<&str>, config: &Config) -> i32 {
    let server = match server_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut cfg = match ServerConfig::demo(dir) {
        Ok(c) => c,
        Err(e) => return render::fail(&e.to_string(), e.exit_code()),
    };
    cfg.bind = match bind_address(bind, &server) {
        Ok(b) => b,
        Err(e) => return render::fail(&e, 2),
    };
    cfg.token = token();
    // The limits serve takes from lockgate.toml (allowed hosts, upload limit and
    // scripts, body_grace, max_connections, the pool's size and times) hold for the
    // demo's server too; its
    // transfer and folder are the demo's own.
    cfg.apply_settings(&server);
    // The caller's lockgate.toml may add data profiles (and the connections they and
    // their restores use) to the demo's: its Snapshots page then takes and restores
    // snapshots of the demo's databases.
    if let Err(e) = cfg.add_connections(config).and_then(|()| cfg.add_profiles(config)) {
        return render::fail(&e, 2);
    }
    if let Err(e) = cfg.check() {
        return render::fail(&e, 2);
    }
    run(cfg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_takes_an_address_or_a_port() {
        assert_eq!(parse_bind("127.0.0.1:4000").unwrap().port(), 4000);
        assert_eq!(parse_bind("4001").unwrap().to_string(), "127.0.0.1:4001");
        assert_eq!(parse_bind("localhost:4002").unwrap().to_string(), "127.0.0.1:4002");
        assert!(parse_bind("example.com:80").unwrap_err().contains("not an address"));
    }
}
