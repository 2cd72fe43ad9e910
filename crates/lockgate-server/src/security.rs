//! The guard every request passes: the Host header must name this server (DNS
//! rebinding), a browser's cross-site request may not change anything (CSRF; pages'
//! forms also carry a token bound to the browser: its session, else a client cookie
//! the guard gives it), and with a token set every endpoint but the login page and the
//! assets needs `Authorization: Bearer <token>` or the session cookie. Every response
//! gets a strict Content-Security-Policy.

use crate::error::AppError;
use crate::state::{is_token_shaped, random_token, same_secret, Client, Shared};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lockgate_session";

/// The client cookie's name: a random id given to a browser that has no session, so
/// that its form tokens are its own.
pub const CLIENT_COOKIE: &str = "lockgate_client";

/// The form token (CSRF) of the browser making the request, put there by [`guard`]:
/// the pages embed it and the form handlers check it ([`FormToken::check`]).
#[derive(Clone, Debug)]
pub struct FormToken(pub String);

impl FormToken {
    /// Checks a form's token against this browser's.
    pub fn check(&self, given: &str) -> Result<(), AppError> {
        if same_secret(given, &self.0) {
            Ok(())
        } else {
            Err(AppError::new(
                StatusCode::FORBIDDEN,
                "the form's security token is missing or out of date (signed in or out since, or the server was restarted?): \
                 reload the page and try again",
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FormToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<FormToken>()
            .cloned()
            .ok_or_else(|| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request passed no guard"))
    }
}

/// Who the browser is: its live session, else its client cookie, else a new client id
/// (returned second, to be set as its cookie).
fn client_of(st: &Shared, headers: &HeaderMap) -> (Client, Option<String>) {
    if st.auth_required() {
        if let Some(id) = session_of(headers) {
            if st.sessions.lock().expect("sessions").valid(&id) {
                return (Client::Session(id), None);
            }
        }
    }
    match cookie(headers, CLIENT_COOKIE).filter(|v| is_token_shaped(v)) {
        Some(id) => (Client::Cookie(id), None),
        None => {
            let id = random_token();
            (Client::Cookie(id.clone()), Some(id))
        }
    }
}

/// Scripts, styles and requests only from this server; no frames, no plugins, no
/// inline code (the pages have none).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether the request is for the JSON side (errors as JSON) rather than a page.
pub fn wants_json(path: &str, method: &Method) -> bool {
    path.starts_with("/api/") || path == "/getzip" || (path == "/uploadzip" && method == Method::POST)
}

fn public(path: &str) -> bool {
    path == "/login" || path == "/favicon.ico" || path.starts_with("/assets/")
}

/// The middleware.
pub async fn guard(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let req_target = req.uri().path_and_query().map(|p| p.as_str().to_string());
    let json = wants_json(&path, req.method());
    let (client, new_client) = client_of(&st, req.headers());
    req.extensions_mut().insert(FormToken(st.form_token(&client)));
    let mut resp = match check(&st, &req, &path) {
        Ok(()) => next.run(req).await,
        Err(Refusal::Login) => {
            let target = req_target.as_deref().unwrap_or(&path);
            Redirect::to(&format!("/login?next={}", encode_next(target))).into_response()
        }
        Err(Refusal::Error(e)) => e.respond(json),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !path.starts_with("/assets/") && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // A browser's first page gives it its client id; scripts (the API) need none.
    if let Some(id) = new_client.filter(|_| !json) {
        // Lax, not Strict: a browser arriving by another site's link keeps its id (and
        // the tokens of its open pages); a cross-site POST still carries no valid token.
        if let Ok(v) = HeaderValue::from_str(&format!("{CLIENT_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax")) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

enum Refusal {
    Login,
    Error(AppError),
}

fn check(st: &Shared, req: &Request, path: &str) -> Result<(), Refusal> {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !st.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(Refusal::Error(AppError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to host {host:?}: open it as http://{} (or add the name with --allow-host)",
                st.cfg.bind
            ),
        )));
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        cross_site(headers, host).map_err(Refusal::Error)?;
    } else if !top_level_or_same_site(headers) {
        // Another site's page may link here, but not make the browser fetch pages,
        // zips or counts in the background (`<img src=/getzip?…>`): they cost work.
        return Err(Refusal::Error(AppError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused: open this server's pages directly",
        )));
    }
    if !st.auth_required() || public(path) {
        return Ok(());
    }
    if authenticated(st, headers) {
        return Ok(());
    }
    if wants_json(path, req.method()) || headers.contains_key(header::AUTHORIZATION) || *req.method() != Method::GET {
        return Err(Refusal::Error(AppError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs its token: send `Authorization: Bearer <token>` (the LOCKGATE_TOKEN it was started with), \
             or sign in at /login",
        )));
    }
    Err(Refusal::Login)
}

/// A browser says where a request comes from; a request from another site may not
/// change anything (a page elsewhere posting a form to this server). Scripts (curl)
/// send neither header and are let through: they are not a browser's victims.
fn cross_site(headers: &HeaderMap, host: &str) -> Result<(), AppError> {
    let refuse = || {
        AppError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused: changes can only be made from this server's own pages or by scripts",
        )
    };
    // A browser that says where the request comes from is believed: its Origin may be
    // "null" for its own same-origin forms (privacy settings, no-referrer pages).
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(refuse()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(refuse());
        }
    }
    Ok(())
}

/// Fetch metadata: a request from another site is let through only when it is the
/// user following a link (a top-level navigation); scripts send no such headers.
fn top_level_or_same_site(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match get("sec-fetch-site") {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => get("sec-fetch-mode") == Some("navigate") && get("sec-fetch-dest") == Some("document"),
    }
}

/// Whether the request carries the token or a live session.
pub fn authenticated(st: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = st.cfg.token.as_deref() else {
        return true;
    };
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return auth
            .strip_prefix("Bearer ")
            .is_some_and(|given| same_secret(given.trim(), token));
    }
    session_of(headers).is_some_and(|id| st.sessions.lock().expect("sessions").valid(&id))
}

/// The session id in the request's cookie.
pub fn session_of(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A path to come back to after signing in: only this server's own paths.
pub fn safe_next(next: &str) -> &str {
    // Browsers drop tabs and newlines from URLs, so "/\t/evil" would become "//evil":
    // only printable ASCII is followed.
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic())
    {
        next
    } else {
        "/"
    }
}

fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'?' | b'=' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/exports"), "/exports");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
        assert_eq!(safe_next("/tables?conn=a&table=b"), "/tables?conn=a&table=b");
    }

    #[test]
    fn cross_site_posts_are_refused_and_scripts_are_not() {
        let mut h = HeaderMap::new();
        assert!(cross_site(&h, "127.0.0.1:3333").is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:3333"));
        assert!(cross_site(&h, "127.0.0.1:3333").is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(cross_site(&h, "127.0.0.1:3333").is_err());
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, "127.0.0.1:3333").is_err());
        // Chromium's own form on a no-referrer page: Origin null, but same-origin.
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h, "127.0.0.1:3333").is_ok());
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h, "127.0.0.1:3333").is_err());
    }
}
