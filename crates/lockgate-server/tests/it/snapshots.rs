//! Snapshots through the server: `/api/profiles`, `/api/snapshots` (list, show,
//! downloads, take as a job), `/api/restores` (the dry check, then the restore) and
//! the Snapshots page, between two SQLite databases: a check writes nothing, a
//! restore fills the target, a second one is refused without `replace`, an unknown
//! profile is 400 naming it, and the token, Host and forms' token rules hold for
//! every change.

use crate::*;
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;

const FIXTURE: &str = "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(50) NOT NULL); \
     CREATE TABLE orders (id integer PRIMARY KEY, customer integer NOT NULL REFERENCES customers (id), \
       total numeric(10,2)); \
     INSERT INTO customers VALUES (1, 'North'), (2, 'South'), (3, 'East'); \
     INSERT INTO orders VALUES (10, 1, 12.50), (11, 1, 3.00), (12, 3, 7.25)";

/// A source with customers and orders, an empty target, and a server whose
/// lockgate.toml has the profile `nightly` (a folder store) taken from `src`.
struct Setup {
    src: TestDb,
    dst: TestDb,
    dir: tempfile::TempDir,
    cfg: ServerConfig,
}

impl Setup {
    async fn new() -> Setup {
        let src = TestDb::new(Engine::Sqlite).await;
        src.conn().await.batch(FIXTURE).await.unwrap();
        let dst = TestDb::new(Engine::Sqlite).await;
        // The file exists (empty), as a configured connection's would.
        drop(dst.conn().await);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[connections.src]\nurl = \"{}\"\n[profiles.nightly]\ndb = \"src\"\nstore = \"{}\"\n",
            src.url.as_str(),
            dir.path().join("store").display()
        );
        let path = dir.path().join("lockgate.toml");
        std::fs::write(&path, toml).unwrap();
        let config = lockgate::Config::load(&path, true).unwrap();
        let mut cfg = ServerConfig::new();
        cfg.add_connections(&config).unwrap();
        cfg.connections.push(NamedConnection {
            name: "dst".into(),
            url: dst.url.clone(),
        });
        cfg.migrations_dir = dir.path().join("db");
        cfg.add_profiles(&config).unwrap();
        Setup { src, dst, dir, cfg }
    }

    fn app(&self) -> axum::Router {
        lockgate_server::router(self.cfg.clone()).unwrap()
    }
}

/// The user tables of a database, with their rows as text.
async fn contents(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    let names = conn
        .query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'lockgate%' \
             AND name NOT LIKE 'sqlite%' ORDER BY name",
            &[],
            None,
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for n in names {
        let name = n[0].to_string();
        let rows = conn
            .query(&format!("SELECT * FROM \"{name}\" ORDER BY id"), &[], None)
            .await
            .unwrap();
        let rows: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(":"))
            .collect();
        out.push(format!("{name} {}", rows.join(" ")));
    }
    out
}

#[tokio::test]
async fn take_list_check_and_restore_a_snapshot_through_the_api() {
    let s = Setup::new().await;
    let app = s.app();

    let r = get(&app, "/api/profiles").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let p = &r.json()["profiles"][0];
    assert_eq!(p["profile"], "nightly", "{p:#}");
    assert_eq!(p["snapshots"], 0, "{p:#}");
    let r = get(&app, "/api/snapshots?profile=nightly").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["snapshots"], serde_json::json!([]));

    // Without wait: 202 and the job's place; the job counts the rows.
    let id = {
        let r = post_json(&app, "/api/snapshots", serde_json::json!({"profile": "nightly"})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        assert!(r.header("location").starts_with("/api/jobs/"));
        let job = wait_job(&app, r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job:#}");
        assert_eq!(job["kind"], "snapshot");
        assert_eq!(job["result"]["request"]["conn"], "src", "the profile's db: {job:#}");
        assert_eq!(job["done"], 6, "every row counted: {job:#}");
        job["result"]["id"].as_str().unwrap().to_string()
    };

    let r = get(&app, "/api/snapshots?profile=nightly").await;
    let list = r.json()["snapshots"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["rows"], 6);
    assert_eq!(list[0]["tables"], 2);
    assert_eq!(list[0]["engine"], "sqlite");
    let p = get(&app, "/api/profiles").await.json();
    assert_eq!(p["profiles"][0]["latest"], id.as_str(), "{p:#}");

    // The manifest, and its files as downloads.
    let m = get(&app, &format!("/api/snapshots/nightly/{id}")).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    let m = m.json();
    let names: Vec<&str> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customers", "orders"], "parents first");
    let d = get(&app, &format!("/api/snapshots/nightly/{id}/manifest.json")).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.header("content-disposition").contains("manifest.json"));
    assert_eq!(d.json()["id"], id.as_str());
    let file = m["tables"][0]["file"].as_str().unwrap();
    let d = get(&app, &format!("/api/snapshots/nightly/{id}/files/{file}")).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    assert_eq!(d.body.len() as u64, m["tables"][0]["stored_bytes"].as_u64().unwrap());
    let stored = std::fs::read(s.dir.path().join("store").join("nightly").join(&id).join(file)).unwrap();
    assert_eq!(d.body, stored, "the stored file, as stored");
    let d = get(&app, &format!("/api/snapshots/nightly/{id}/files/data/../../other")).await;
    assert_eq!(
        d.status,
        StatusCode::NOT_FOUND,
        "only the manifest's files: {}",
        d.text()
    );
    let d = get(&app, &format!("/api/snapshots/nightly/{id}/files/manifest.json.bak")).await;
    assert_eq!(d.status, StatusCode::NOT_FOUND, "{}", d.text());
    let r = get(&app, "/api/snapshots/nightly/20990101T000000Z-000000").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("20990101T000000Z-000000"));

    // The dry check writes nothing.
    let body = serde_json::json!({"profile": "nightly", "id": id, "into": "dst", "check_only": true});
    let r = post_json(&app, "/api/restores?wait=true", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["kind"], "restore_check");
    assert_eq!(j["result"]["check_only"], true);
    let tables = j["result"]["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2, "{j:#}");
    assert!(tables.iter().all(|t| t["created"] == true), "{j:#}");
    assert!(contents(&s.dst).await.is_empty(), "a check writes nothing");

    // The restore fills the target.
    let body = serde_json::json!({"profile": "nightly", "id": id, "into": "dst"});
    let r = post_json(&app, "/api/restores?wait=true", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["kind"], "restore");
    assert_eq!(contents(&s.dst).await, contents(&s.src).await);

    // Again: the tables have rows now, so the check refuses (400, every problem listed).
    let again = serde_json::json!({"profile": "nightly", "into": "dst", "check_only": true});
    let r = post_json(&app, "/api/restores?wait=true", again).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let j = r.json();
    assert_eq!(j["exit_code"], 2, "{j:#}");
    let errors = j["result"]["errors"].as_array().unwrap();
    assert!(
        !errors.is_empty() && errors.iter().any(|e| e.as_str().unwrap().contains("customers")),
        "{j:#}"
    );
    // With replace it goes through.
    let r = post_json(
        &app,
        "/api/restores?wait=true",
        serde_json::json!({"profile": "nightly", "into": "dst", "replace": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["result"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["replaced"] == true));
    assert_eq!(contents(&s.dst).await, contents(&s.src).await);
}

#[tokio::test]
async fn an_unknown_profile_or_connection_is_refused_naming_it() {
    let s = Setup::new().await;
    let app = s.app();
    for r in [
        get(&app, "/api/snapshots?profile=nope").await,
        get(&app, "/api/snapshots/nope/20990101T000000Z-000000").await,
        post_json(&app, "/api/snapshots", serde_json::json!({"profile": "nope"})).await,
        post_json(
            &app,
            "/api/restores",
            serde_json::json!({"profile": "nope", "into": "dst"}),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        let j = r.json();
        assert!(j["error"].as_str().unwrap().contains("\"nope\""), "{j:#}");
        assert!(
            j["error"].as_str().unwrap().contains("nightly"),
            "the known ones: {j:#}"
        );
        assert!(j["errors"].as_array().is_some_and(|e| !e.is_empty()), "{j:#}");
    }
    let r = get(&app, "/api/snapshots").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = post_json(
        &app,
        "/api/restores",
        serde_json::json!({"profile": "nightly", "into": "nowhere"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(r.text().contains("nowhere"));
    let r = post_json(
        &app,
        "/api/snapshots",
        serde_json::json!({"profile": "nightly", "typo": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(contents(&s.dst).await.is_empty());
    assert!(!s.dir.path().join("store").join("nightly").exists(), "nothing taken");
}

#[tokio::test]
async fn snapshots_and_restores_need_the_token_the_host_and_the_forms_their_token() {
    let s = Setup::new().await;
    let mut cfg = s.cfg.clone();
    cfg.token = Some("snapshot-token-0123456789".into());
    let app = lockgate_server::router(cfg).unwrap();
    let take = serde_json::json!({"profile": "nightly"});
    let restore = serde_json::json!({"profile": "nightly", "into": "dst"});
    assert_eq!(
        post_json(&app, "/api/snapshots", take.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_json(&app, "/api/restores", restore.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&app, "/api/profiles").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&app, "/api/snapshots?profile=nightly").await.status,
        StatusCode::UNAUTHORIZED
    );
    let with = |method: Method, uri: &str| {
        request(method, uri)
            .header(header::AUTHORIZATION, "Bearer snapshot-token-0123456789")
            .header(header::CONTENT_TYPE, "application/json")
    };
    // With the token, yet from another site, or naming another host: refused.
    let r = send(
        &app,
        with(Method::POST, "/api/snapshots")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(take.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = send(
        &app,
        with(Method::POST, "/api/restores")
            .header(header::ORIGIN, "http://evil.example")
            .body(Body::from(restore.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let mut req = with(Method::POST, "/api/snapshots")
        .body(Body::from(take.to_string()))
        .unwrap();
    req.headers_mut()
        .insert(header::HOST, "evil.example:3333".parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!s.dir.path().join("store").join("nightly").exists(), "nothing taken");
    let r = send(
        &app,
        with(Method::POST, "/api/snapshots?wait=true")
            .body(Body::from(take.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The page's forms need their token, as every form does.
    let app = s.app();
    let b = Browser::open(&app).await;
    let r = b.post_form(&app, "/snapshots/take", &[("profile", "nightly")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let other = Browser::open(&app).await;
    let fields = [("csrf", b.token.as_str()), ("profile", "nightly"), ("into", "dst")];
    let r = other.post_form(&app, "/snapshots/restore", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another browser's token: {}", r.text());
    assert!(contents(&s.dst).await.is_empty(), "nothing restored");
}

#[tokio::test]
async fn the_snapshots_page_takes_checks_and_restores() {
    let s = Setup::new().await;
    let app = s.app();
    let b = Browser::open(&app).await;
    let page = b.get(&app, "/snapshots").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let text = page.text();
    assert!(text.contains("No snapshots yet"), "{text}");
    assert!(text.contains("aria-current=\"page\">Snapshots"), "in the nav");
    let token = page_token(&text);

    let r = b
        .post_form(
            &app,
            "/snapshots/take",
            &[("csrf", &token), ("profile", "nightly"), ("conn", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job: u64 = r.header("location").trim_start_matches("/jobs/").parse().unwrap();
    let j = wait_job(&app, job).await;
    assert_eq!(j["status"], "succeeded", "{j:#}");
    let id = j["result"]["id"].as_str().unwrap().to_string();
    let jp = b.get(&app, &format!("/jobs/{job}")).await.text();
    assert!(
        jp.contains("Tables taken") && jp.contains(&format!("/snapshots/nightly/{id}")),
        "{jp}"
    );

    let text = b.get(&app, "/snapshots").await.text();
    assert!(text.contains(&format!("data-snapshot=\"{id}\"")), "{text}");
    assert!(
        text.contains(&format!("/api/snapshots/nightly/{id}/manifest.json")),
        "{text}"
    );
    let detail = b.get(&app, &format!("/snapshots/nightly/{id}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text());
    assert!(detail.text().contains("/files/data/"), "{}", detail.text());

    // The check first, then Restore now from its page.
    let r = b
        .post_form(
            &app,
            "/snapshots/restore",
            &[
                ("csrf", &token),
                ("profile", "nightly"),
                ("id", &id),
                ("into", "dst"),
                ("check_only", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job: u64 = r.header("location").trim_start_matches("/jobs/").parse().unwrap();
    assert_eq!(wait_job(&app, job).await["status"], "succeeded");
    let jp = b.get(&app, &format!("/jobs/{job}")).await.text();
    assert!(
        jp.contains("nothing was written") && jp.contains("id=\"restore-now\""),
        "{jp}"
    );
    assert!(contents(&s.dst).await.is_empty());
    let r = b
        .post_form(
            &app,
            "/snapshots/restore",
            &[
                ("csrf", &token),
                ("profile", "nightly"),
                ("id", &id),
                ("into", "dst"),
                ("replace", "false"),
                ("check_only", "false"),
            ],
        )
        .await;
    let job: u64 = r.header("location").trim_start_matches("/jobs/").parse().unwrap();
    assert_eq!(wait_job(&app, job).await["status"], "succeeded");
    assert_eq!(contents(&s.dst).await, contents(&s.src).await);

    // A check that fails lists its problems on the job's page.
    let r = b
        .post_form(
            &app,
            "/snapshots/restore",
            &[
                ("csrf", &token),
                ("profile", "nightly"),
                ("id", &id),
                ("into", "dst"),
                ("check_only", "true"),
            ],
        )
        .await;
    let job: u64 = r.header("location").trim_start_matches("/jobs/").parse().unwrap();
    assert_eq!(wait_job(&app, job).await["status"], "failed");
    let jp = b.get(&app, &format!("/jobs/{job}")).await.text();
    assert!(
        jp.contains("Problems found") && !jp.contains("id=\"restore-now\""),
        "{jp}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_snapshot_endpoints() {
    let s = Setup::new().await;
    let doc = get(&s.app(), "/api/openapi.json").await.json();
    for (path, method) in [
        ("/api/profiles", "get"),
        ("/api/snapshots", "get"),
        ("/api/snapshots", "post"),
        ("/api/snapshots/{profile}/{id}", "get"),
        ("/api/snapshots/{profile}/{id}/manifest.json", "get"),
        ("/api/snapshots/{profile}/{id}/files/{key}", "get"),
        ("/api/restores", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["RestoreRequest"].is_object());
    assert!(doc["components"]["schemas"]["SnapshotRequest"].is_object());
}

#[tokio::test]
async fn a_profiles_own_database_is_not_a_restore_target() {
    // A profile whose db lockgate.toml does not name as a connection: the server
    // reads snapshots from it (`profiles.prod`) but never restores into it.
    let s = Setup::new().await;
    let toml = format!(
        "[profiles.prod]\ndb = \"{}\"\nstore = \"{}\"\n",
        s.src.url.as_str(),
        s.dir.path().join("store2").display()
    );
    let path = s.dir.path().join("prod.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cfg = ServerConfig::new();
    cfg.migrations_dir = s.dir.path().join("db");
    cfg.add_profiles(&lockgate::Config::load(&path, true).unwrap()).unwrap();
    let app = lockgate_server::router(cfg).unwrap();
    let r = post_json(&app, "/api/snapshots?wait=true", serde_json::json!({"profile": "prod"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post_json(
        &app,
        "/api/restores?wait=true",
        serde_json::json!({"profile": "prod", "into": "profiles.prod", "replace": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("not a connection to write"), "{}", r.text());
}
