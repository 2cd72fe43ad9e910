//! Background upgrades through the server, on SQLite (the library is tested on every
//! engine in its own crate): `/api/upgrades` lists them with their status, pause,
//! resume and cancel change the state in the ledger (read back through the library,
//! not the server), retry tries the rows a run quarantined again (409 while a run
//! holds the upgrade's lock), cleanup is refused with 409 while rows lack the upgrade or are
//! quarantined and runs once none do, an unknown upgrade is 404 naming it, and the
//! token, cross-site and forms' token rules hold for every change; the Upgrades page
//! shows progress and quarantined rows and asks before a cleanup; the demo declares
//! its upgrade on its destination.

use crate::*;
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;

/// Rows of `items`.
const ROWS: u64 = 40;

/// An SQLite database with `items` (id, a, b, where b must stay under 1000) and its
/// `applied_upgrades` column, and
/// a server whose lockgate.toml declares `double_a` (with a cleanup) and whose
/// `upgrades/` folder declares `copy_a` (after it, no cleanup), both on `items`.
struct Setup {
    db: TestDb,
    _dir: tempfile::TempDir,
    cfg: ServerConfig,
}

impl Setup {
    async fn new() -> Setup {
        let db = TestDb::new(Engine::Sqlite).await;
        let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, {i}, NULL)")).collect();
        db.conn()
            .await
            .batch(&format!(
                "CREATE TABLE items (id integer PRIMARY KEY, a integer, b integer CHECK (b < 1000)); \
                 INSERT INTO items VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
        assert!(lockgate::upgrade::init(&db.url, "items").await.unwrap());
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("lockgate.toml");
        std::fs::write(
            &toml,
            "[upgrades.double_a]\ntable = \"items\"\nset = { b = \"a * 2\" }\n\
             cleanup = \"CREATE INDEX items_b ON items (b)\"\n",
        )
        .unwrap();
        let folder = dir.path().join("upgrades");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(
            folder.join("copy_a.toml"),
            "table = \"items\"\nset = { a = \"a + 0\" }\nafter = [\"double_a\"]\n",
        )
        .unwrap();
        let config = lockgate::Config::load(&toml, true).unwrap();
        let mut cfg = ServerConfig::new();
        cfg.connections.push(NamedConnection {
            name: "app".into(),
            url: db.url.clone(),
        });
        cfg.migrate_db = Some(0);
        cfg.add_upgrades(&config, &folder).unwrap();
        Setup { db, _dir: dir, cfg }
    }

    fn app(&self) -> axum::Router {
        lockgate_server::router(self.cfg.clone()).unwrap()
    }

    /// The upgrade's state as the ledger has it, read through the library.
    async fn ledger_state(&self, name: &str) -> String {
        let list = lockgate::upgrade::status(&self.db.url, &self.cfg.upgrades)
            .await
            .unwrap();
        list.into_iter().find(|s| s.upgrade == name).unwrap().state
    }

    /// Runs every upgrade to the end, as `lockgate upgrade run` would.
    async fn run_all(&self) {
        let r = lockgate::upgrade::run(&self.db.url, &self.cfg.upgrades, &Default::default(), None)
            .await
            .unwrap();
        assert!(r.upgrades.iter().all(|o| o.state == "complete"), "{r:?}");
    }

    /// Whether the cleanup's index is there.
    async fn has_index(&self) -> bool {
        let rows = self
            .db
            .conn()
            .await
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'items_b'",
                &[],
                None,
            )
            .await
            .unwrap();
        !rows.is_empty()
    }
}

fn upgrade<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["upgrade"] == name)
        .unwrap_or_else(|| panic!("{name} in {list:#}"))
}

#[tokio::test]
async fn the_api_lists_controls_and_cleans_up_upgrades() {
    let s = Setup::new().await;
    let app = s.app();

    let r = get(&app, "/api/upgrades").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let list = r.json();
    assert_eq!(list["connection"], "app");
    let names: Vec<&str> = list["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["upgrade"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["double_a", "copy_a"], "in dependency order");
    let d = upgrade(&list, "double_a");
    assert_eq!(d["table"], "items");
    assert_eq!(d["state"], "not started");
    assert_eq!(d["rows_done"], 0);
    assert_eq!(d["remaining"], ROWS);
    assert_eq!(d["quarantined"], 0);
    assert_eq!(d["quarantine"], serde_json::json!([]));
    assert!(d["rows_per_second"].is_null() && d["eta_seconds"].is_null(), "{d:#}");
    assert_eq!(d["cleanup"], "CREATE INDEX items_b ON items (b)");
    assert!(d["origin"].as_str().unwrap().ends_with("lockgate.toml"), "{d:#}");
    let c = upgrade(&list, "copy_a");
    assert_eq!(c["after"], serde_json::json!(["double_a"]));
    assert!(c["cleanup"].is_null());
    assert!(c["origin"].as_str().unwrap().ends_with("copy_a.toml"), "{c:#}");

    // Pause, resume, cancel: each is the ledger's state at once.
    for (action, state) in [
        ("pause", "paused"),
        ("resume", "pending"),
        ("cancel", "cancelled"),
        ("resume", "pending"),
        ("pause", "paused"),
    ] {
        let r = post(&app, &format!("/api/upgrades/double_a/{action}")).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text());
        let j = r.json();
        assert_eq!(j["upgrade"]["state"], state, "{action}: {j:#}");
        assert!(j["message"].as_str().unwrap().starts_with("double_a "), "{j:#}");
        assert_eq!(s.ledger_state("double_a").await, state, "after {action}");
    }
    assert_eq!(s.ledger_state("copy_a").await, "not started", "only the named upgrade");
    // A paused upgrade is not run.
    let r = lockgate::upgrade::run(&s.db.url, &s.cfg.upgrades[..1], &Default::default(), None)
        .await
        .unwrap();
    assert_eq!(r.upgrades[0].upgraded, 0, "{r:?}");

    // Cleanup while every row lacks it: 409 with the library's message, nothing run.
    for uri in [
        "/api/upgrades/double_a/cleanup",
        "/api/upgrades/double_a/cleanup?dry_run=true",
    ] {
        let r = post(&app, uri).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{uri}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            e.contains("cleanup of double_a refused") && e.contains(&format!("{ROWS} rows")),
            "{e}"
        );
        assert!(e.contains("paused"), "why: {e}");
    }
    assert!(!s.has_index().await, "a refused cleanup runs nothing");
    // An upgrade that declares no cleanup: 400 naming its file.
    let r = post(&app, "/api/upgrades/copy_a/cleanup").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("declares no cleanup"));
    let r = post_json(
        &app,
        "/api/upgrades/double_a/cleanup",
        serde_json::json!({"dryrun": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an unknown field: {}", r.text());

    // Resumed and run to the end: complete, and then there is nothing to pause.
    assert_eq!(post(&app, "/api/upgrades/double_a/resume").await.status, StatusCode::OK);
    s.run_all().await;
    let list = get(&app, "/api/upgrades").await.json();
    let d = upgrade(&list, "double_a");
    assert_eq!(d["state"], "complete", "{d:#}");
    assert_eq!(d["rows_done"], ROWS);
    assert_eq!(d["remaining"], 0);
    let r = post(&app, "/api/upgrades/double_a/pause").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("complete"));
    assert_eq!(s.ledger_state("double_a").await, "complete");

    // A quarantined row is listed with its error, and refuses the cleanup too.
    {
        let mut ledger = lockgate_db::ledger::Ledger::open(&s.db.url).await.unwrap();
        lockgate_db::upgrades::quarantine(
            ledger.conn(),
            "double_a",
            &[lockgate_core::Value::Int(7)],
            "a * 2 overflowed",
        )
        .await
        .unwrap();
    }
    let list = get(&app, "/api/upgrades").await.json();
    let d = upgrade(&list, "double_a");
    assert_eq!(d["quarantined"], 1, "{d:#}");
    let q = &d["quarantine"][0];
    assert_eq!(q["key"], "7", "the key's values, as people read them: {q:#}");
    assert_eq!(q["error"], "a * 2 overflowed");
    assert_eq!(q["attempts"], 1);
    assert!(!q["at"].as_str().unwrap().is_empty());
    let r = post(&app, "/api/upgrades/double_a/cleanup?dry_run=true").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("1 are quarantined"));
    {
        let mut ledger = lockgate_db::ledger::Ledger::open(&s.db.url).await.unwrap();
        lockgate_db::upgrades::clear_quarantine(ledger.conn(), "double_a")
            .await
            .unwrap();
    }

    // Accepted: the dry run runs nothing, then the cleanup runs.
    let r = post_json(
        &app,
        "/api/upgrades/double_a/cleanup",
        serde_json::json!({"dry_run": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["ran"], false, "{j:#}");
    assert_eq!(j["cleanup"], "CREATE INDEX items_b ON items (b)");
    assert!(!s.has_index().await, "a dry run runs nothing");
    let r = post(&app, "/api/upgrades/double_a/cleanup").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["ran"], true);
    assert!(s.has_index().await, "the cleanup ran");

    // The OpenAPI document describes the endpoints.
    let doc = get(&app, "/api/openapi.json").await.json();
    for path in [
        "/api/upgrades",
        "/api/upgrades/{name}/pause",
        "/api/upgrades/{name}/resume",
        "/api/upgrades/{name}/cancel",
        "/api/upgrades/{name}/retry",
        "/api/upgrades/{name}/cleanup",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} in the OpenAPI document");
    }
    assert!(doc["paths"]["/api/upgrades/{name}/cleanup"]["post"]["responses"]["409"].is_object());
    assert!(doc["components"]["schemas"]["UpgradeInfo"].is_object());
}

#[tokio::test]
async fn retry_tries_the_quarantined_rows_again() {
    let s = Setup::new().await;
    let app = s.app();
    let b = Browser::open(&app).await;
    let r = post(&app, "/api/upgrades/double_a/retry").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("has not run yet"));

    // Rows 5 and 9 would break the CHECK: the run quarantines them and goes on.
    let mut conn = s.db.conn().await;
    conn.batch("UPDATE items SET a = 600 WHERE id IN (5, 9)").await.unwrap();
    lockgate::upgrade::run(&s.db.url, &s.cfg.upgrades[..1], &Default::default(), None)
        .await
        .unwrap();
    let list = get(&app, "/api/upgrades").await.json();
    let d = upgrade(&list, "double_a");
    assert_eq!(d["quarantined"], 2, "{d:#}");
    assert_eq!(d["remaining"], 2, "{d:#}");
    assert_ne!(d["state"], "complete", "{d:#}");
    let keys: Vec<&str> = d["quarantine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["5", "9"], "{d:#}");
    assert!(
        d["quarantine"][0]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("check"),
        "{d:#}"
    );
    let html = b.get(&app, "/upgrades").await.text();
    assert!(html.contains(r#"data-action="retry">"#), "retry is offered: {html}");

    // Still failing: they stay, with one more attempt.
    let r = post(&app, "/api/upgrades/double_a/retry").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["retry"]["tried"], 2, "{j:#}");
    assert_eq!(j["retry"]["upgraded"], 0, "{j:#}");
    assert_eq!(j["retry"]["quarantined"], 2, "{j:#}");
    assert_eq!(j["upgrade"]["quarantine"][0]["attempts"], 2, "{j:#}");
    assert!(j["message"].as_str().unwrap().contains("2 still quarantined"), "{j:#}");

    // While a run holds the upgrade's lock: 409 naming who, nothing tried.
    {
        let mut ledger = lockgate_db::ledger::Ledger::open(&s.db.url).await.unwrap();
        let holder = lockgate_db::ledger::Holder::current("a test's run of double_a");
        let lock = ledger
            .lock("upgrade:double_a", &holder, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let r = post(&app, "/api/upgrades/double_a/retry").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            e.contains("is being run by") && e.contains("a test's run of double_a"),
            "{e}"
        );
        ledger.unlock(lock).await.unwrap();
    }

    // Fixed, and retried from the page: upgraded, and the upgrade is complete.
    conn.batch("UPDATE items SET a = id WHERE id IN (5, 9)").await.unwrap();
    let r = b
        .post_form(&app, "/upgrades/double_a/retry", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let html = b
        .get(&app, r.header("location").split('#').next().unwrap())
        .await
        .text();
    assert!(
        html.contains(
            "double_a: retried 2 quarantined row(s): 2 upgraded, 0 no longer needed it, 0 still quarantined; it is \
             complete"
        ),
        "{html}"
    );
    assert_eq!(s.ledger_state("double_a").await, "complete");
    let rows = conn
        .query("SELECT b FROM items WHERE id IN (5, 9) ORDER BY id", &[], None)
        .await
        .unwrap();
    let b_values: Vec<String> = rows.iter().map(|r| r[0].to_string()).collect();
    assert_eq!(b_values, ["10", "18"]);
    let list = get(&app, "/api/upgrades").await.json();
    assert_eq!(upgrade(&list, "double_a")["quarantined"], 0);
    // The notice takes numbers and a known state from the query, nothing else.
    let html = b
        .get(&app, "/upgrades?did=retry&upgrade=double_a&tried=1&state=%3Cb%3E")
        .await
        .text();
    assert!(html.contains("it is as below") && !html.contains("<b>"), "{html}");
}

#[tokio::test]
async fn an_unknown_upgrade_is_404_naming_it() {
    let s = Setup::new().await;
    let app = s.app();
    for action in ["pause", "resume", "cancel", "retry", "cleanup"] {
        let r = post(&app, &format!("/api/upgrades/nope/{action}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains("\"nope\"") && e.contains("double_a, copy_a"), "{e}");
    }
    let b = Browser::open(&app).await;
    let r = b.post_form(&app, "/upgrades/nope/pause", &[("csrf", &b.token)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(r.text().contains("there is no upgrade &#34;nope&#34;"), "{}", r.text());
    let r = b
        .post_form(&app, "/upgrades/double_a/drop", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(s.ledger_state("double_a").await, "not started");
}

const TOKEN: &str = "a-long-test-token-0123456789";

#[tokio::test]
async fn changes_need_the_token_a_same_site_request_and_the_forms_token() {
    let s = Setup::new().await;
    let mut cfg = s.cfg.clone();
    cfg.token = Some(TOKEN.into());
    let app = lockgate_server::router(cfg).unwrap();
    let with_token = |method: Method, uri: &str| {
        request(method, uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };

    // Without the token: nothing is read or changed.
    assert_eq!(get(&app, "/api/upgrades").await.status, StatusCode::UNAUTHORIZED);
    for action in ["pause", "resume", "cancel", "retry", "cleanup"] {
        let r = post(&app, &format!("/api/upgrades/double_a/{action}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{action}");
        assert!(r.json()["error"].as_str().unwrap().contains("Authorization: Bearer"));
    }
    let r = get(&app, "/upgrades").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/login?next=/upgrades");
    assert_eq!(s.ledger_state("double_a").await, "not started");

    // With it, from another site: refused, unchanged.
    for (name, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let r = send(
            &app,
            request(Method::POST, "/api/upgrades/double_a/pause")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}");
        assert!(r.json()["error"].as_str().unwrap().contains("cross-site"));
    }
    assert_eq!(s.ledger_state("double_a").await, "not started");
    let r = send(&app, with_token(Method::GET, "/api/upgrades")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send(&app, with_token(Method::POST, "/api/upgrades/double_a/pause")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(s.ledger_state("double_a").await, "paused");

    // The page's forms: signed in, a form without this browser's token changes nothing.
    let b = Browser::open(&app).await;
    let r = b
        .post_form(
            &app,
            "/login",
            &[("csrf", &b.token), ("token", TOKEN), ("next", "/upgrades")],
        )
        .await;
    assert_eq!(r.header("location"), "/upgrades");
    let session = r.header("set-cookie").split(';').next().unwrap().to_string();
    let signed_in = Browser::with_cookie(&app, &session).await;
    for token in ["", "forged", b.token.as_str()] {
        let r = signed_in
            .post_form(&app, "/upgrades/double_a/resume", &[("csrf", token)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}: {}", r.text());
    }
    assert_eq!(s.ledger_state("double_a").await, "paused");
    let r = signed_in
        .post_form(&app, "/upgrades/double_a/resume", &[("csrf", &signed_in.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        r.header("location"),
        "/upgrades?did=resume&upgrade=double_a#upgrade-double_a"
    );
    assert_eq!(s.ledger_state("double_a").await, "pending");
}

#[tokio::test]
async fn the_page_shows_progress_and_quarantine_and_asks_before_a_cleanup() {
    let s = Setup::new().await;
    let app = s.app();
    let b = Browser::open(&app).await;

    let page = b.get(&app, "/upgrades").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains(r#"<a href="/upgrades" aria-current="page">Upgrades</a>"#),
        "in the nav"
    );
    assert!(html.contains("Table items"), "grouped by table");
    assert!(html.contains(r#"data-upgrade="double_a""#) && html.contains(r#"data-upgrade="copy_a""#));
    assert!(html.contains("data-live-upgrades"), "app.js keeps it current");
    assert!(
        html.contains(&format!(r#"max="{ROWS}" value="0""#)),
        "a bar of {ROWS} rows"
    );
    assert!(html.contains(&format!("0 of {ROWS} rows (0%)")));
    assert!(html.contains(r#"class="status not-started""#));
    // Not started: pause and cancel, no resume; only double_a can be cleaned up.
    let card = |name: &str| {
        let at = html.find(&format!(r#"data-upgrade="{name}""#)).unwrap();
        let end = html[at..].find("</section>").unwrap();
        html[at..at + end].to_string()
    };
    let double = card("double_a");
    assert!(double.contains(r#"data-action="pause">"#), "{double}");
    assert!(double.contains(r#"data-action="resume" disabled>"#), "{double}");
    assert!(double.contains(r#"action="/upgrades/double_a/cleanup""#), "{double}");
    assert!(!card("copy_a").contains("/cleanup"), "copy_a declares no cleanup");
    assert!(!html.contains("<script>"), "no inline script (CSP)");

    // Pause from the page: the redirect's page says so, from the ledger.
    let r = b
        .post_form(&app, "/upgrades/double_a/pause", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let html = b
        .get(&app, r.header("location").split('#').next().unwrap())
        .await
        .text();
    assert!(html.contains("double_a paused: a running upgrader stops"), "{html}");
    assert!(html.contains(r#"class="status paused""#));
    assert!(html.contains(r#"data-action="resume">"#), "resume is allowed now");
    // The notice never echoes the query.
    let html = b.get(&app, "/upgrades?did=%3Cb%3Ehi&upgrade=double_a").await.text();
    assert!(!html.contains("upgrades-notice") && !html.contains("<b>hi"));

    // Cleanup while rows lack it: the check refuses, with the library's message.
    let r = b
        .post_form(&app, "/upgrades/double_a/cleanup", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains(r#"role="alert""#) && html.contains("cleanup of double_a refused"),
        "{html}"
    );
    assert!(!html.contains("cleanup-confirm"));
    // Even with confirm: refused, nothing run.
    let r = b
        .post_form(
            &app,
            "/upgrades/double_a/cleanup",
            &[("csrf", &b.token), ("confirm", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(!s.has_index().await);

    // Done, with a quarantined row: its error is on the page.
    let r = b
        .post_form(&app, "/upgrades/double_a/resume", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    s.run_all().await;
    {
        let mut ledger = lockgate_db::ledger::Ledger::open(&s.db.url).await.unwrap();
        lockgate_db::upgrades::quarantine(
            ledger.conn(),
            "copy_a",
            &[lockgate_core::Value::Int(3)],
            "<b>bad</b> row",
        )
        .await
        .unwrap();
    }
    let html = b.get(&app, "/upgrades").await.text();
    assert!(html.contains(&format!("{ROWS} of {ROWS} rows (100%)")), "{html}");
    assert!(html.contains(r#"class="status complete""#));
    let copy = {
        let at = html.find(r#"data-upgrade="copy_a""#).unwrap();
        html[at..].to_string()
    };
    assert!(copy.contains("Quarantined rows of copy_a"), "{copy}");
    assert!(copy.contains("&#60;b&#62;bad&#60;/b&#62; row"), "escaped: {copy}");
    assert!(
        copy.contains("<td><code>3</code></td>"),
        "the key as people read it: {copy}"
    );

    // The cleanup asks first: the check shows the SQL and runs nothing.
    let r = b
        .post_form(&app, "/upgrades/double_a/cleanup", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"cleanup-confirm\""), "{html}");
    assert!(html.contains("<code>CREATE INDEX items_b ON items (b)</code>"));
    assert!(html.contains(r#"name="confirm" value="true""#));
    assert!(!s.has_index().await, "asking runs nothing");
    let r = b
        .post_form(
            &app,
            "/upgrades/double_a/cleanup",
            &[("csrf", &b.token), ("confirm", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(s.has_index().await, "the cleanup ran");
    let html = b
        .get(&app, r.header("location").split('#').next().unwrap())
        .await
        .text();
    assert!(
        html.contains("double_a: ran its cleanup: CREATE INDEX items_b ON items (b)"),
        "{html}"
    );
}

#[tokio::test]
async fn without_upgrades_the_page_says_how_to_declare_one() {
    let db = TestDb::new(Engine::Sqlite).await;
    drop(db.conn().await);
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "app".into(),
        url: db.url.clone(),
    });
    cfg.migrate_db = Some(0);
    let dir = tempfile::tempdir().unwrap();
    cfg.add_upgrades(&lockgate::Config::default(), &dir.path().join("upgrades"))
        .unwrap();
    let app = lockgate_server::router(cfg).unwrap();
    let r = get(&app, "/upgrades").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains("No upgrades are declared"), "{html}");
    assert!(html.contains("[upgrades.split_name]") && html.contains("upgrades/NAME.toml"));
    let r = get(&app, "/api/upgrades").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), serde_json::json!({ "connection": "app", "upgrades": [] }));

    // A bad declaration stops the server's configuration, naming its file.
    std::fs::create_dir(dir.path().join("upgrades")).unwrap();
    std::fs::write(dir.path().join("upgrades").join("bad.toml"), "table = \"t\"\n").unwrap();
    let e = ServerConfig::new()
        .add_upgrades(&lockgate::Config::default(), &dir.path().join("upgrades"))
        .unwrap_err();
    assert!(e.contains("bad.toml") && e.contains("say what the upgrade does"), "{e}");
}

#[tokio::test]
async fn the_demo_declares_its_upgrade_on_the_destination() {
    let demo = Demo::new().await;
    let app = demo.app();
    let r = get(&app, "/api/upgrades").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let list = r.json();
    assert_eq!(list["connection"], "destination", "{list:#}");
    let u = upgrade(&list, lockgate::demo::UPGRADE);
    assert_eq!(u["table"], "customers");
    assert_eq!(u["state"], "not started");
    assert!(u["remaining"].is_null(), "no applied_upgrades column until init: {u:#}");
    let html = get(&app, "/upgrades").await.text();
    assert!(
        html.contains("lockgate upgrade init --table customers"),
        "the page says what to do: {html}"
    );
}
