//! Lockgate's HTTP server: the dashboard (Overview, Tables, Exports, Merge,
//! Snapshots, Upgrades, Migrations, Data), a JSON API for everything the pages do (described at `/api/openapi.json`),
//! server-sent progress, and oe-migration's `/getzip` and `/uploadzip` with their
//! contract. It writes no SQL and reaches the database through one door: typed
//! calls into the `lockgate` library (`lockgate::dashboard` for the pages' reads).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = lockgate_server::ServerConfig::new(); // 127.0.0.1:3333
//! cfg.connections.push(lockgate_server::NamedConnection {
//!     name: "app".into(),
//!     url: lockgate::db::DbUrl::parse("sqlite://app.db")?,
//! });
//! cfg.migrate_db = Some(0);
//! lockgate_server::serve(cfg, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Security: bound to 127.0.0.1 unless told otherwise; a Host header that does not
//! name the server is refused (DNS rebinding); with a token (required off loopback)
//! every endpoint but the login page and the assets needs it or a session; forms
//! carry a CSRF token bound to the browser and cross-site posts are refused; a request
//! that stalls is dropped; uploads are size-limited and may not hold process scripts
//! unless allowed;
//! table and column names are checked against the schema; responses carry a strict
//! Content-Security-Policy.
#![deny(missing_docs)]

mod api;
mod error;
mod jobs;
mod pages;
mod pool;
mod security;
mod service;
mod snapshots;
mod state;
mod timeout;
mod upgrades;
mod upload;

pub use error::AppError;
pub use jobs::{Job, JobStatus};
pub use pool::PoolTimes;
pub use state::{
    MergeDefinition, NamedConnection, ServerConfig, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_UPLOAD_LIMIT,
};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use state::{AppState, Shared};
use std::future::Future;
use std::sync::Arc;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration that would be unsafe or cannot work.
    #[error("{0}")]
    Config(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}; is another server using the port? choose another with --bind")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

const APP_CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");

fn asset(body: &'static str, content_type: &'static str) -> axum::response::Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// The application, for `cfg` (tests drive it without a socket).
pub fn router(cfg: ServerConfig) -> Result<Router, ServerError> {
    build(cfg).map(|(router, _)| router)
}

fn build(cfg: ServerConfig) -> Result<(Router, Shared), ServerError> {
    cfg.check().map_err(ServerError::Config)?;
    let limit = cfg.upload_limit;
    let st: Shared = Arc::new(AppState::new(cfg));
    // Uploads may be as large as the limit (plus the form around the file); every
    // other request body is small.
    let uploads = Router::new()
        .route("/api/migrate", post(api::migrate))
        .route("/uploadzip", post(api::uploadzip))
        .route("/data/upload", post(pages::data_upload))
        .layer(DefaultBodyLimit::max(limit.saturating_add(64 * 1024)));
    let app = Router::new()
        .route("/", get(pages::overview))
        .route("/tables", get(pages::tables))
        .route("/exports", get(pages::exports))
        .route("/exports/{transfer}/create", post(pages::export_create))
        .route("/exports/{transfer}/history", get(pages::export_history))
        .route("/exports/{transfer}/{id}", get(pages::export_detail))
        .route("/process", get(pages::process_page).post(pages::process))
        .route("/demo/generate", post(pages::demo_generate))
        .route("/merges", get(pages::merges))
        .route("/merges/run", post(pages::merges_run))
        .route("/merges/{id}", get(pages::merge_detail))
        .route("/merges/{id}/undo", post(pages::merges_undo))
        .route("/snapshots", get(pages::snapshots))
        .route("/snapshots/take", post(pages::snapshots_take))
        .route("/snapshots/restore", post(pages::snapshots_restore))
        .route("/snapshots/{profile}/{id}", get(pages::snapshot_detail))
        .route("/upgrades", get(pages::upgrades))
        .route("/upgrades/{name}/{action}", post(pages::upgrades_action))
        .route("/migrations", get(pages::migrations))
        .route("/migrations/run", post(pages::migrations_run))
        .route("/data", get(pages::data))
        .route("/data/download", get(pages::data_download))
        .route("/jobs/{id}", get(pages::job))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/uploadzip", get(pages::uploadzip_form))
        .route("/getzip", get(api::getzip))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/connections", get(api::connections))
        .route("/api/runs", get(api::runs))
        .route("/api/tables/{conn}", get(api::tables))
        .route("/api/tables/{conn}/{table}", get(api::table_page))
        .route("/api/transfers", get(api::transfers))
        .route("/api/transfers/{name}/exports", post(api::create_export))
        .route("/api/transfers/{name}/exports/{id}", get(api::export_detail))
        .route("/api/transfers/{name}/history", get(api::export_history))
        .route("/api/process", post(api::process))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/events", get(api::events))
        .route("/api/migrations", get(api::migrations))
        .route("/api/logs", get(api::logs))
        .route("/api/dump.zip", get(api::dump_zip))
        .route("/api/demo/generate", post(api::generate))
        .route("/api/merges", get(api::merges).post(api::merge_run))
        .route("/api/merges/refs", get(api::merge_refs))
        .route("/api/merges/{id}", get(api::merge_detail))
        .route("/api/merges/{id}/undo", post(api::merge_undo))
        .route("/api/profiles", get(api::profiles))
        .route("/api/snapshots", get(api::snapshots).post(api::snapshot_take))
        .route("/api/snapshots/{profile}/{id}", get(api::snapshot_detail))
        .route(
            "/api/snapshots/{profile}/{id}/manifest.json",
            get(api::snapshot_manifest),
        )
        .route("/api/snapshots/{profile}/{id}/files/{*key}", get(api::snapshot_file))
        .route("/api/restores", post(api::restore))
        .route("/api/upgrades", get(api::upgrades_list))
        .route("/api/upgrades/{name}/pause", post(api::upgrade_pause))
        .route("/api/upgrades/{name}/resume", post(api::upgrade_resume))
        .route("/api/upgrades/{name}/cancel", post(api::upgrade_cancel))
        .route("/api/upgrades/{name}/retry", post(api::upgrade_retry))
        .route("/api/upgrades/{name}/cleanup", post(api::upgrade_cleanup))
        // Browsers ask for it on every page; an empty answer keeps their consoles clean.
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .merge(uploads)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&st), security::guard))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&st),
            timeout::body_timeout,
        ))
        .with_state(Arc::clone(&st));
    Ok((app, st))
}

async fn not_found(uri: axum::http::Uri, method: axum::http::Method) -> axum::response::Response {
    AppError::not_found(format!("there is no page {}: start from the overview at /", uri.path()))
        .respond(security::wants_json(uri.path(), &method))
}

/// Serves until `shutdown` completes.
pub async fn serve(cfg: ServerConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
    let (listener, app) = bind(cfg).await?;
    run(listener, app, shutdown).await
}

/// A bound server's application, ready for [`run`].
pub struct App {
    router: Router,
    state: Shared,
    request_timeout: std::time::Duration,
    max_connections: usize,
}

/// The least a request body must average, in bytes a second, once the server's
/// `body_grace` has passed (16 KiB/s): see `timeout.rs`.
pub const MIN_BODY_RATE: u64 = 16 * 1024;

/// Binds first (so that the caller can print the real address, port 0 included),
/// then serves until `shutdown` completes.
pub async fn bind(cfg: ServerConfig) -> Result<(tokio::net::TcpListener, App), ServerError> {
    let addr = cfg.bind;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let mut cfg = cfg;
    // With port 0 the real port is known only now; the Host check needs it.
    if let Ok(real) = listener.local_addr() {
        cfg.bind = real;
    }
    let request_timeout = cfg.request_timeout;
    let max_connections = cfg.max_connections.max(1);
    let (router, st) = build(cfg)?;
    Ok((
        listener,
        App {
            router,
            state: st,
            request_timeout,
            max_connections,
        },
    ))
}

/// Serves a bound listener until `shutdown` completes.
///
/// The accept loop is the server's own rather than `axum::serve`, which sets no timer
/// and so no header read timeout: here a connection that does not send a request's
/// headers within the request timeout, idle between requests or half-way through one,
/// is closed. At most `max_connections` are served at once: beyond that, the loop
/// accepts nothing until one closes (the others wait in the listen queue), so that
/// slow clients cannot take every file descriptor and task.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(app.max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A connection that failed before it was accepted concerns only
                    // itself; anything else (out of file descriptors) gets a pause.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(app.request_timeout);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    // Open event streams end now; the shutdown waits for the other requests.
    let _ = app.state.stop.send(true);
    drop(listener);
    graceful.shutdown().await;
    // The requests have ended: the pooled sessions can end too, rather than when the
    // last handle on the state goes (a job still running keeps one).
    app.state.pools.close();
    Ok(())
}
