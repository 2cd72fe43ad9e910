//! lockgate-server's one integration-test binary: every endpoint through the router
//! (no socket), on the demo's SQLite sample and a PostgreSQL table: pages, the JSON
//! API, jobs and their events, downloads and uploads, and bad input of every kind
//! (tokens, Host headers, cross-site posts, forms' tokens bound to their browser,
//! oversized and escaping zips, zips holding process scripts, unknown tables, SQL in a
//! sort parameter); merges through the API and the Merge page (preview, conflicts,
//! undo) on SQLite and PostgreSQL; snapshots taken, checked and restored through the
//! API and the Snapshots page; background upgrades listed, paused, resumed,
//! cancelled and cleaned up through the API and the Upgrades page; on a real socket,
//! requests that stall; lockgate.toml's `[server]` limits reaching the server's
//! configuration; and the pooled connections of the server's reads (reused, bounded,
//! recovered after a terminated backend, never handed on busy or stale).

mod api;
mod merges;
mod pool;
mod scripts;
mod security;
mod settings;
mod snapshots;
mod socket;
mod upgrades;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
pub use lockgate_server::{NamedConnection, ServerConfig};
use std::path::Path;
use tower::ServiceExt;

/// The demo's sample in a temporary folder, and a server configuration over it (as
/// `lockgate demo` serves it).
pub struct Demo {
    pub dir: tempfile::TempDir,
    pub cfg: ServerConfig,
}

impl Demo {
    pub async fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo");
        lockgate::demo::create(&demo).await.unwrap();
        let cfg = ServerConfig::demo(&demo).unwrap();
        Demo { dir, cfg }
    }

    pub fn app(&self) -> Router {
        lockgate_server::router(self.cfg.clone()).unwrap()
    }

    pub fn demo_dir(&self) -> &Path {
        self.cfg.demo.as_deref().unwrap()
    }
}

/// A server on a real socket (127.0.0.1, a free port), for tests of what only a
/// socket shows: timeouts, closed connections, stopping.
pub struct Served {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), lockgate_server::ServerError>>,
}

impl Served {
    /// Binds `cfg` to a free port of 127.0.0.1 and serves it.
    pub async fn start(mut cfg: ServerConfig) -> Served {
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        let (listener, app) = lockgate_server::bind(cfg).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(lockgate_server::run(listener, app, async {
            let _ = stopped.await;
        }));
        Served { addr, stop, server }
    }

    /// Stops it and waits (at most 10 s) until it has stopped.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

/// A request to the app, with the Host header of its default address.
pub fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:3333")
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply { status, headers, body }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    send(app, request(Method::GET, uri).body(Body::empty()).unwrap()).await
}

pub async fn post(app: &Router, uri: &str) -> Reply {
    send(app, request(Method::POST, uri).body(Body::empty()).unwrap()).await
}

pub async fn post_json(app: &Router, uri: &str, body: serde_json::Value) -> Reply {
    send(
        app,
        request(Method::POST, uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// A form post from no browser in particular (no cookie).
pub async fn post_form(app: &Router, uri: &str, fields: &[(&str, &str)]) -> Reply {
    send(
        app,
        request(Method::POST, uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
            .unwrap(),
    )
    .await
}

/// A browser: the cookie it sends (its client id, or its session) and the form token
/// (CSRF) the pages give it, which is bound to that cookie.
pub struct Browser {
    pub cookie: String,
    pub token: String,
}

/// The form token in a page.
pub fn page_token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a token") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_string()
}

impl Browser {
    /// A new browser's first page (the login form): the server gives it a client
    /// cookie and a token bound to it.
    pub async fn open(app: &Router) -> Browser {
        let r = get(app, "/login").await;
        let set = r.header("set-cookie");
        assert!(set.starts_with("lockgate_client="), "a client cookie: {set:?}");
        Browser {
            cookie: set.split(';').next().unwrap().to_string(),
            token: page_token(&r.text()),
        }
    }

    /// The same browser with another cookie (its session), and the token its pages
    /// then carry.
    pub async fn with_cookie(app: &Router, cookie: &str) -> Browser {
        let mut b = Browser {
            cookie: cookie.to_string(),
            token: String::new(),
        };
        let r = b.get(app, "/login").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(r.header("set-cookie").is_empty(), "a known browser keeps its id");
        b.token = page_token(&r.text());
        b
    }

    pub async fn get(&self, app: &Router, uri: &str) -> Reply {
        send(
            app,
            request(Method::GET, uri)
                .header(header::COOKIE, &self.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A form post with this browser's cookie (the fields say whether it carries the token).
    pub async fn post_form(&self, app: &Router, uri: &str, fields: &[(&str, &str)]) -> Reply {
        send(
            app,
            request(Method::POST, uri)
                .header(header::COOKIE, &self.cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
                .unwrap(),
        )
        .await
    }

    pub async fn post_multipart(
        &self,
        app: &Router,
        uri: &str,
        files: &[(&str, &str, &[u8])],
        fields: &[(&str, &str)],
    ) -> Reply {
        let (ct, body) = multipart(files, fields);
        send(
            app,
            request(Method::POST, uri)
                .header(header::COOKIE, &self.cookie)
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}

/// A multipart body holding `files` (field name, file name, bytes) and `fields`.
pub fn multipart(files: &[(&str, &str, &[u8])], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "lockgate-test-boundary-7d9f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    for (name, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/zip\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub async fn post_multipart(app: &Router, uri: &str, files: &[(&str, &str, &[u8])], fields: &[(&str, &str)]) -> Reply {
    let (ct, body) = multipart(files, fields);
    send(
        app,
        request(Method::POST, uri)
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

/// A zip with these entries (name, content).
pub fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        for (name, content) in entries {
            z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(content.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    out.into_inner()
}

/// Waits for job `id` to end (through the API) and returns it.
pub async fn wait_job(app: &Router, id: u64) -> serde_json::Value {
    for _ in 0..600 {
        let j = get(app, &format!("/api/jobs/{id}")).await.json();
        if j["status"] != "running" {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}
