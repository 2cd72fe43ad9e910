//! Who may use the server: the Host header, the token and sessions, cross-site
//! posts, the forms' CSRF token, and what the server refuses to start with.

use crate::*;

#[tokio::test]
async fn a_foreign_host_header_is_refused() {
    let demo = Demo::new().await;
    let app = demo.app();
    for (host, uri) in [
        ("evil.example", "/"),
        ("evil.example:3333", "/api/transfers"),
        ("", "/"),
    ] {
        let r = send(
            &app,
            Request::builder()
                .uri(uri)
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host} {uri}");
        assert!(r.text().contains("does not answer to host"), "{}", r.text());
    }
    for host in ["localhost:3333", "127.0.0.1:3333"] {
        let r = send(
            &app,
            Request::builder()
                .uri("/api/jobs")
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
    }
    let mut cfg = demo.cfg.clone();
    cfg.allowed_hosts = vec!["lockgate.internal".into()];
    let app = lockgate_server::router(cfg).unwrap();
    let r = send(
        &app,
        Request::builder()
            .uri("/api/jobs")
            .header(header::HOST, "lockgate.internal")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

const TOKEN: &str = "a-long-test-token-0123456789";

#[tokio::test]
async fn with_a_token_every_endpoint_but_login_and_assets_needs_it() {
    let demo = Demo::new().await;
    let mut cfg = demo.cfg.clone();
    cfg.token = Some(TOKEN.into());
    let app = lockgate_server::router(cfg).unwrap();

    for uri in [
        "/api/transfers",
        "/api/dump.zip?all=true",
        "/getzip?exportAllTables=true",
        "/api/logs",
        "/api/openapi.json",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(r.json()["error"].as_str().unwrap().contains("Authorization: Bearer"));
    }
    let r = get(&app, "/exports").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/login?next=/exports");
    assert_eq!(get(&app, "/login").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/assets/app.css").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/assets/app.js").await.status, StatusCode::OK);
    let r = post(&app, "/api/process").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let bearer = |t: &str| {
        request(Method::GET, "/api/transfers")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, bearer("wrong")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, bearer(TOKEN)).await.status, StatusCode::OK);

    // The login form gives a session cookie: HttpOnly, SameSite.
    let b = Browser::open(&app).await;
    let r = b
        .post_form(
            &app,
            "/login",
            &[("csrf", &b.token), ("token", "wrong"), ("next", "/exports")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("set-cookie").is_empty());
    // The login form's token is this browser's: another's, or none, is refused.
    let other = Browser::open(&app).await;
    for token in [other.token.as_str(), ""] {
        let r = b
            .post_form(&app, "/login", &[("csrf", token), ("token", TOKEN), ("next", "/")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(r.header("set-cookie").is_empty());
    }
    let r = b
        .post_form(
            &app,
            "/login",
            &[("csrf", &b.token), ("token", TOKEN), ("next", "//evil.example")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/", "only local paths are followed");
    let r = b
        .post_form(
            &app,
            "/login",
            &[("csrf", &b.token), ("token", TOKEN), ("next", "/\t/evil.example")],
        )
        .await;
    assert_eq!(r.header("location"), "/", "a tab would make it //evil.example");
    let cookie = r.header("set-cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = |uri: &str| {
        request(Method::GET, uri)
            .header(header::COOKIE, session.clone())
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, with_cookie("/exports")).await.status, StatusCode::OK);
    assert_eq!(send(&app, with_cookie("/api/transfers")).await.status, StatusCode::OK);
    // Signed in, the forms carry the session's own token: the one from before the
    // sign-in, and another session's, are refused.
    let signed_in = Browser::with_cookie(&app, &session).await;
    assert_ne!(signed_in.token, b.token);
    let r = b
        .post_form(&app, "/login", &[("csrf", &b.token), ("token", TOKEN), ("next", "/")])
        .await;
    let second = Browser::with_cookie(&app, r.header("set-cookie").split(';').next().unwrap()).await;
    assert_ne!(second.token, signed_in.token, "each session has its own token");
    for token in [b.token.as_str(), second.token.as_str()] {
        let r = signed_in.post_form(&app, "/logout", &[("csrf", token)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(send(&app, with_cookie("/api/transfers")).await.status, StatusCode::OK);
    }
    // Signing out ends the session.
    let r = signed_in
        .post_form(&app, "/logout", &[("csrf", &signed_in.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app, with_cookie("/api/transfers")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cross_site_posts_and_forms_without_their_token_change_nothing() {
    let demo = Demo::new().await;
    let app = demo.app();
    let before = get(&app, "/api/transfers").await.json()[0]["exports"].clone();
    for (name, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let r = send(
            &app,
            request(Method::POST, "/api/transfers/customers/exports")
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}");
        assert!(r.json()["error"].as_str().unwrap().contains("cross-site"));
    }
    // Another site's page may link here, but not fetch in the background.
    let fetch = |dest: &str, mode: &str| {
        request(Method::GET, "/getzip?exportAllTables=true")
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-dest", dest.to_string())
            .header("sec-fetch-mode", mode.to_string())
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&app, fetch("image", "no-cors")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&app, fetch("document", "navigate")).await.status, StatusCode::OK);
    let r = post_form(&app, "/exports/customers/create", &[("csrf", "forged")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("security token"), "{}", r.text());
    // Without sign-in, each browser's token is bound to its own client cookie: not one
    // value for the whole server. Another browser's token, or a token without its
    // cookie, is refused; a forged cookie gets a new id, not the token's.
    let a = Browser::open(&app).await;
    let b = Browser::open(&app).await;
    assert_ne!(a.cookie, b.cookie);
    assert_ne!(a.token, b.token);
    assert_eq!(
        Browser::with_cookie(&app, &a.cookie).await.token,
        a.token,
        "stable for its browser"
    );
    let r = b
        .post_form(&app, "/exports/customers/create", &[("csrf", &a.token)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(&app, "/exports/customers/create", &[("csrf", &a.token)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let forged = Browser {
        cookie: "lockgate_client=not-a-random-id".into(),
        token: a.token.clone(),
    };
    let r = forged.get(&app, "/exports").await;
    assert!(
        r.header("set-cookie").starts_with("lockgate_client="),
        "a new id is given"
    );
    assert_ne!(page_token(&r.text()), a.token);
    let r = forged
        .post_form(&app, "/exports/customers/create", &[("csrf", &a.token)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/api/transfers").await.json()[0]["exports"], before);
    let r = a
        .post_form(&app, "/exports/customers/create", &[("csrf", &a.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let id: u64 = r.header("location")["/jobs/".len()..].parse().unwrap();
    assert_eq!(wait_job(&app, id).await["status"], "succeeded");
    // The same origin is fine.
    let r = send(
        &app,
        request(Method::POST, "/api/transfers/customers/exports?wait=true")
            .header("origin", "http://127.0.0.1:3333")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn the_server_will_not_start_open_to_the_network_without_a_token() {
    let mut cfg = ServerConfig::new();
    cfg.bind = "0.0.0.0:3333".parse().unwrap();
    let err = lockgate_server::router(cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("LOCKGATE_TOKEN"), "{err}");
    cfg.token = Some("short".into());
    let err = lockgate_server::router(cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("shorter than 16"), "{err}");
    cfg.token = Some(TOKEN.into());
    assert!(lockgate_server::router(cfg).is_ok());
}
