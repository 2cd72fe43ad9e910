//! The JSON API and the pages over the demo: exports from creation to history, the
//! Generate form's bounds, tables paged and searched on the server, downloads and
//! uploads with oe-migration's contract, the logs, jobs and their events.

use crate::*;
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;
use std::time::Duration;

#[tokio::test]
async fn an_export_goes_from_the_button_to_its_history() {
    let demo = Demo::new().await;
    let app = demo.app();
    let t = get(&app, "/api/transfers").await.json();
    assert_eq!(t[0]["name"], "customers");
    assert_eq!(t[0]["available"], 229, "{t:#}");
    let failed = t[0]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "failed")
        .expect("the demo's failed export")["id"]
        .as_i64()
        .unwrap();

    let r = post(&app, "/api/transfers/customers/exports?wait=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let created = r.json();
    assert_eq!(created["result"]["created"], true);
    let id = created["result"]["export"]["id"].as_i64().unwrap();
    assert_eq!(created["result"]["export"]["rows"], 229);
    // The button's check: nothing left to export now.
    let again = post(&app, "/api/transfers/customers/exports?wait=true").await.json();
    assert_eq!(again["result"]["created"], false);
    assert!(
        again["message"].as_str().unwrap().contains("nothing to export"),
        "{again:#}"
    );

    // Without wait: 202 and the job, which the events and /api/jobs follow.
    let r = post(&app, "/api/process").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.header("location").starts_with("/api/jobs/"));
    let job = wait_job(&app, r.json()["id"].as_u64().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["result"]["exports"][0]["export"]["status"], "completed");
    assert_eq!(job["done"], 229);

    let t = get(&app, "/api/transfers").await.json();
    assert_eq!(t[0]["available"], 0);
    let d = get(&app, &format!("/api/transfers/customers/exports/{id}"))
        .await
        .json();
    assert_eq!(d["export"]["status"], "completed");
    assert_eq!(d["errors"], serde_json::json!([]));

    // The failed export names its rows; each row's history shows both attempts.
    let d = get(&app, &format!("/api/transfers/customers/exports/{failed}"))
        .await
        .json();
    let key = d["errors"][0]["key"].as_str().expect("a failed row").to_string();
    assert!(d["errors"][0]["message"].as_str().unwrap().contains("NULL"), "{d:#}");
    let h = get(&app, &format!("/api/transfers/customers/history?key={key}"))
        .await
        .json();
    let statuses: Vec<&str> = h["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"failed") && statuses.contains(&"completed"), "{h:#}");
    let page = get(&app, &format!("/exports/customers/history?key={key}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("failed: "), "{}", page.text());

    let r = get(&app, "/api/transfers/customers/history").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("?key="));
    let r = get(&app, "/api/transfers/nope/exports/1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("the transfers are customers"));
    let r = get(&app, "/api/transfers/customers/exports/999").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // Runs, jobs, connections.
    let runs = get(&app, "/api/runs").await.json();
    assert!(runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "transfer" && r["holder"].as_str().unwrap().contains("lockgate serve")));
    assert!(get(&app, "/api/jobs").await.json().as_array().unwrap().len() >= 3);
    assert_eq!(get(&app, "/api/jobs/999").await.status, StatusCode::NOT_FOUND);
    let doc = get(&app, "/api/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc:#}");
    for path in [
        "/api/dump.zip",
        "/api/migrate",
        "/api/logs",
        "/api/process",
        "/api/jobs/{id}",
        "/api/events",
        "/getzip",
        "/uploadzip",
        "/api/tables/{conn}/{table}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not in the OpenAPI document");
    }
    let conns = get(&app, "/api/connections").await.json();
    // source, destination, and accounts (the demo's lockgate.toml names it, for its merge).
    assert_eq!(conns.as_array().unwrap().len(), 3, "{conns:#}");
    assert_eq!(conns[2]["name"], "accounts", "{conns:#}");
    assert!(conns[1]["roles"].as_array().unwrap().iter().any(|r| r == "migrations"));
    assert!(conns[1]["tables"].as_u64().unwrap() > 1);
}

#[tokio::test]
async fn the_generate_form_takes_1_to_500_customers() {
    let demo = Demo::new().await;
    let app = demo.app();
    let r = post_json(&app, "/api/demo/generate?wait=true", serde_json::json!({"n": 10})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(get(&app, "/api/transfers").await.json()[0]["available"], 239);
    for n in [0, 501, -3] {
        let r = post_json(&app, "/api/demo/generate", serde_json::json!({ "n": n })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{n}");
        assert!(r.json()["error"].as_str().unwrap().contains("between 1 and 500"));
    }
    let b = Browser::open(&app).await;
    let r = b
        .post_form(&app, "/demo/generate", &[("csrf", &b.token), ("n", "abc")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("whole number from 1 to 500"), "{}", r.text());
    let r = b.post_form(&app, "/demo/generate", &[("n", "5")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post_form(&app, "/demo/generate", &[("csrf", &b.token), ("n", "5")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job = r.header("location");
    assert!(job.starts_with("/jobs/"), "{job}");
    let id: u64 = job["/jobs/".len()..].parse().unwrap();
    assert_eq!(wait_job(&app, id).await["status"], "succeeded");
    let page = get(&app, &job).await.text();
    assert!(page.contains("added 5 customers"), "{page}");

    // Outside demo mode there is no form.
    let mut cfg = demo.cfg.clone();
    cfg.demo = None;
    let plain = lockgate_server::router(cfg).unwrap();
    let r = post_json(&plain, "/api/demo/generate", serde_json::json!({"n": 5})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tables_are_paged_sorted_and_searched_on_the_server() {
    let demo = Demo::new().await;
    let app = demo.app();
    let tables = get(&app, "/api/tables/destination").await.json();
    assert!(tables["tables"].as_array().unwrap().iter().any(|t| t == "customers"));

    let first = get(&app, "/api/tables/destination/customers?sort=FirstName&per_page=5")
        .await
        .json();
    assert_eq!(first["rows"].as_array().unwrap().len(), 5);
    assert_eq!(first["total"], 1107);
    assert_eq!(first["sort"], "FirstName");
    let next = first["next"].as_str().unwrap();
    let second = get(
        &app,
        &format!("/api/tables/destination/customers?sort=FirstName&per_page=5&after={next}"),
    )
    .await
    .json();
    assert_ne!(first["rows"], second["rows"]);
    let prev = second["prev"].as_str().unwrap();
    let back = get(
        &app,
        &format!("/api/tables/destination/customers?sort=FirstName&per_page=5&before={prev}"),
    )
    .await
    .json();
    assert_eq!(back["rows"], first["rows"]);

    let found = get(&app, "/api/tables/source/customers?q=SMITH&per_page=500")
        .await
        .json();
    let rows = found["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.to_string().to_lowercase().contains("smith")));

    // Names from requests are checked against the schema.
    let r = get(&app, "/api/tables/destination/nope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"), "{}", r.text());
    let r = get(
        &app,
        "/api/tables/destination/customers?sort=CustomerID%3B%20DROP%20TABLE%20customers",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"].as_str().unwrap().contains("has no column"),
        "{}",
        r.text()
    );
    assert_eq!(
        get(&app, "/api/tables/destination/customers").await.json()["total"],
        1107
    );
    let r = get(&app, "/api/tables/destination/customers?after=not-a-cursor").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("cursor"));
    assert_eq!(
        get(&app, "/api/tables/nope/customers").await.status,
        StatusCode::NOT_FOUND
    );

    let page = get(&app, "/tables?conn=destination&table=customers&sort=LastName&desc=true").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("aria-sort=\"descending\""));
    assert!(page.text().contains("rel=\"next\""));
    let page = get(&app, "/tables?conn=destination&table=customers&sort=%3Cscript%3E").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(escaped(&page.text()), "{}", page.text());
}

#[tokio::test]
async fn a_postgresql_table_is_walked_page_by_page() {
    let db = TestDb::new(Engine::Postgres).await;
    db.conn()
        .await
        .batch(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, score int); \
             INSERT INTO items SELECT g, 'item ' || (g % 17), g % 5 FROM generate_series(1, 120) g",
        )
        .await
        .unwrap();
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "pg".into(),
        url: db.url.clone(),
    });
    let app = lockgate_server::router(cfg).unwrap();
    let mut seen = Vec::new();
    let mut uri = "/api/tables/pg/items?sort=score&per_page=50".to_string();
    loop {
        let p = get(&app, &uri).await.json();
        for r in p["rows"].as_array().unwrap() {
            seen.push(r[0].as_i64().unwrap());
        }
        match p["next"].as_str() {
            Some(c) => uri = format!("/api/tables/pg/items?sort=score&per_page=50&after={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, (1..=120).collect::<Vec<_>>(), "every row once");
}

/// Whether `<script>` from the request came back escaped (askama writes `&#60;`).
fn escaped(page: &str) -> bool {
    (page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;")) && !page.contains("<script>")
}

fn zip_names(bytes: &[u8]) -> Vec<String> {
    let z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    z.file_names().map(|n| n.unwrap().to_string()).collect()
}

#[tokio::test]
async fn downloads_and_uploads_keep_oe_migrations_contract() {
    let demo = Demo::new().await;
    let app = demo.app();
    let r = get(&app, "/getzip").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("tableList"));
    let r = get(&app, "/getzip?tableList=customers").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), "application/zip");
    assert!(r.header("content-disposition").contains("destination-1.0.0.zip"));
    let mut names = zip_names(&r.body);
    names.sort();
    assert_eq!(
        names,
        vec![
            "1.0.0/ddl/customers.json",
            "1.0.0/default/customers.json",
            "1.0.0/meta.json"
        ]
    );
    let customers_zip = r.body.clone();
    let all = get(&app, "/getzip?exportAllTables=true&excludeFrameworkTables=true").await;
    assert!(zip_names(&all.body).iter().all(|n| !n.contains("lockgate_")));
    let r = get(&app, "/api/dump.zip?tables=nope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(&app, "/api/dump.zip?tables=customers").await;
    assert_eq!(r.status, StatusCode::OK);

    // An entry that would leave its folder: refused, nothing migrated.
    let evil = zip_of(&[("1.0.0/meta.json", r#"{"contents": []}"#), ("../outside.json", "[]")]);
    let r = post_multipart(&app, "/uploadzip", &[("file", "evil.zip", &evil)], &[]).await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(
        r.json()["error"].as_str().unwrap().contains("../outside.json"),
        "{}",
        r.text()
    );
    assert_eq!(
        get(&app, "/api/migrations").await.json()["current_version"],
        serde_json::Value::Null
    );
    let r = post_multipart(
        &app,
        "/uploadzip",
        &[("file", "a.zip", &customers_zip), ("file2", "b.zip", &customers_zip)],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("only one zip"));
    let r = post_multipart(&app, "/uploadzip", &[], &[("other", "x")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The downloaded zip migrates back: the seed's answer.
    let r = post_multipart(&app, "/uploadzip", &[("file", "customers.zip", &customers_zip)], &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["migratedVersions"], serde_json::json!(["1.0.0"]));
    assert_eq!(get(&app, "/api/migrations").await.json()["current_version"], "1.0.0");
    let logs = get(&app, "/api/logs?type=info&version=1.0.0").await.json();
    assert!(!logs["logs"].as_array().unwrap().is_empty(), "{logs:#}");
    let r = get(&app, "/api/logs?type=bogus").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let page = get(&app, "/migrations?type=INFO&version=1.0.0").await.text();
    assert!(page.contains("customers.json"), "{page}");

    // The API's upload is a job; without a body it migrates the folder (dry run here).
    let zip2 = zip_of(&[
        (
            "2.0.0/meta.json",
            r#"{"contents": [{"model": "customers", "file": "more.json", "mode": "upsert"}]}"#,
        ),
        (
            "2.0.0/default/more.json",
            r#"[{"CustomerID": 5000, "FirstName": "Ada", "LastName": "Byron", "Email": "ada@example.com", "AcquisitionDate": "2026-11-01"}]"#,
        ),
    ]);
    let r = post_multipart(&app, "/api/migrate?wait=true", &[("file", "v2.zip", &zip2)], &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"]["migrated_versions"], serde_json::json!(["2.0.0"]));
    // A zip sent as a plain body is refused, not ignored for the folder.
    let r = send(
        &app,
        request(Method::POST, "/api/migrate?wait=true")
            .header(header::CONTENT_TYPE, "application/zip")
            .header(header::CONTENT_LENGTH, zip2.len())
            .body(Body::from(zip2.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    let r = post(&app, "/api/migrate?dry_run=true&wait=true").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("there is no folder"));
    let v3 = demo.demo_dir().join("db/3.0.0");
    std::fs::create_dir_all(v3.join("default")).unwrap();
    std::fs::write(
        v3.join("meta.json"),
        r#"{"contents": [{"model": "customers", "file": "c.json", "mode": "upsert"}]}"#,
    )
    .unwrap();
    std::fs::write(
        v3.join("default/c.json"),
        r#"[{"CustomerID": 5001, "FirstName": "Grace", "LastName": "Hopper", "Email": "g@example.com", "AcquisitionDate": "2026-11-02"}]"#,
    )
    .unwrap();
    let r = post(&app, "/api/migrate?dry_run=true&wait=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["kind"], "migrate_dry_run");
    assert_eq!(r.json()["result"]["migrated_versions"], serde_json::json!(["3.0.0"]));
    let page = get(&app, &format!("/jobs/{}", r.json()["id"])).await.text();
    assert!(page.contains(r#"id="apply""#), "the dry run offers to apply: {page}");
    let status = get(&app, "/api/migrations").await.json();
    assert_eq!(status["current_version"], "2.0.0", "a dry run keeps nothing");

    // The Data page's form carries its token.
    let b = Browser::open(&app).await;
    let r = b
        .post_multipart(&app, "/data/upload", &[("file", "v.zip", &customers_zip)], &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post_multipart(
            &app,
            "/data/upload",
            &[("file", "v.zip", &customers_zip)],
            &[("csrf", &b.token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(get(&app, "/uploadzip")
        .await
        .text()
        .contains("enctype=\"multipart/form-data\""));
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused() {
    let demo = Demo::new().await;
    let mut cfg = demo.cfg.clone();
    cfg.upload_limit = 2_000;
    let app = lockgate_server::router(cfg).unwrap();
    let big = vec![b'x'; 10_000];
    for uri in ["/uploadzip", "/api/migrate"] {
        let r = post_multipart(&app, uri, &[("file", "big.zip", &big)], &[]).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains("--upload-limit"));
    }
}

#[tokio::test]
async fn pages_render_and_errors_are_pages_that_say_what_to_do() {
    let demo = Demo::new().await;
    let app = demo.app();
    for (uri, expect) in [
        ("/", "Connections"),
        ("/tables", "Connection"),
        ("/exports", "229 rows not in a completed"),
        ("/exports/customers/1", "Export 1 of customers"),
        ("/migrations", "Preview migrate"),
        ("/data", "Download zip"),
        ("/process", "Run pending exports"),
        ("/login", "Token"),
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(r.text().contains(expect), "{uri}: {}", r.text());
        assert!(r.header("content-security-policy").contains("default-src 'none'"));
    }
    // A GET of /process changes nothing.
    let before = get(&app, "/api/transfers").await.json()[0]["exports"].clone();
    get(&app, "/process").await;
    assert_eq!(get(&app, "/api/transfers").await.json()[0]["exports"], before);

    let r = get(&app, "/exports/%3Cscript%3Ealert(1)%3C%2Fscript%3E/1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        escaped(&r.text()) && !r.text().contains("<script>alert"),
        "{}",
        r.text()
    );
    let r = get(&app, "/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("start from the overview"));

    // The Export button: a form post starts a job; its page shows the result.
    let b = Browser::open(&app).await;
    let r = b
        .post_form(&app, "/exports/customers/create", &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job = r.header("location");
    let id: u64 = job["/jobs/".len()..].parse().unwrap();
    wait_job(&app, id).await;
    assert!(get(&app, &job).await.text().contains("created with 229 rows"));
    let page = get(&app, "/exports").await.text();
    assert!(page.contains("class=\"export-button\" disabled"), "{page}");
    // The demo has no migrations folder: the page says how to make one.
    let r = b
        .post_form(&app, "/migrations/run", &[("csrf", &b.token), ("dry_run", "true")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("there is no folder"), "{}", r.text());
}

#[tokio::test]
async fn events_stream_each_jobs_progress() {
    let demo = Demo::new().await;
    let app = demo.app();
    let resp = app
        .clone()
        .oneshot(request(Method::GET, "/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.into_body().into_data_stream();
    post(&app, "/api/transfers/customers/exports").await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    use futures_util::StreamExt;
    while !seen.contains("\"status\":\"succeeded\"") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events within 20 s")
            .expect("the stream goes on")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: job"), "{seen}");
    assert!(seen.contains("\"kind\":\"create_export\""), "{seen}");
}

/// A run whose process died without recording its end shows as abandoned on the
/// Overview and in `/api/runs` (with why); a run in progress still shows as running.
#[tokio::test]
async fn a_run_whose_process_died_shows_as_abandoned() {
    use lockgate_db::ledger::{Holder, Ledger};
    let demo = Demo::new().await;
    let dest = lockgate_db::DbUrl::parse(&format!(
        "sqlite://{}",
        demo.demo_dir().join("destination.db").display()
    ))
    .unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let mut ledger = Ledger::open(&dest).await.unwrap();
    let gone = Holder {
        pid: dead,
        ..Holder::current("lockgate load people")
    };
    let gone_id = ledger.start_run("load", "load:people", &gone).await.unwrap();
    let live_id = ledger
        .start_run("load", "load:pets", &Holder::current("lockgate load pets"))
        .await
        .unwrap();
    drop(ledger);

    let app = demo.app();
    let runs = get(&app, "/api/runs").await.json();
    let status = |id: i64| {
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"].as_i64() == Some(id))
            .unwrap_or_else(|| panic!("run {id}: {runs:#}"))
            .clone()
    };
    assert_eq!(status(gone_id)["status"], "abandoned", "{runs:#}");
    assert!(
        status(gone_id)["error"]
            .as_str()
            .is_some_and(|e| e.contains("without recording an end")),
        "{runs:#}"
    );
    assert_eq!(status(live_id)["status"], "running", "{runs:#}");
    let page = get(&app, "/").await.text();
    let row = page
        .split("<tr data-run=")
        .find(|r| r.contains("load:people"))
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        row.contains("<span class=\"status abandoned\" title=\"its process went away"),
        "{row}"
    );
    let row = page.split("<tr data-run=").find(|r| r.contains("load:pets")).unwrap();
    assert!(row.contains("<span class=\"status running\">running</span>"), "{row}");
}

/// Every page and read endpoint a user browses, for a server whose connections are
/// `plain` (a database without a ledger, also the migrations' and the transfer's
/// destination) and `missing` (an SQLite file that does not exist).
const BROWSING: &[&str] = &[
    "/",
    "/api/connections",
    "/api/runs",
    "/tables",
    "/tables?conn=plain",
    "/tables?conn=plain&table=t",
    "/api/tables/plain",
    "/api/tables/plain/t",
    "/tables?conn=missing",
    "/api/tables/missing",
    "/exports",
    "/api/transfers",
    "/api/transfers/copy/exports/1",
    "/api/transfers/copy/history?key=1",
    "/exports/copy/history?key=1",
    "/migrations",
    "/api/migrations",
    "/api/logs",
    "/data",
    "/api/dump.zip?tables=t",
    "/getzip?tableList=t",
    "/merges",
    "/merges?conn=plain&table=t",
    "/merges?conn=missing",
    "/api/merges?conn=plain",
    "/api/merges/refs?conn=plain&table=t",
    "/api/merges/1?conn=plain",
    "/api/merges?conn=missing",
];

#[tokio::test]
async fn browsing_creates_no_database_and_no_ledger() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE t (id int PRIMARY KEY, name varchar(20)); INSERT INTO t VALUES (1, 'a')")
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let mut cfg = ServerConfig::new();
        cfg.connections.push(NamedConnection {
            name: "plain".into(),
            url: db.url.clone(),
        });
        cfg.connections.push(NamedConnection {
            name: "missing".into(),
            url: lockgate_db::DbUrl::parse(&format!("sqlite://{}", missing.display())).unwrap(),
        });
        cfg.migrate_db = Some(0);
        cfg.migrations_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/db");
        let config = lockgate::Config::default();
        let spec = lockgate::transfer::TransferSpec {
            source: Some(db.url.as_str().to_string()),
            source_table: Some("t".into()),
            dest: Some(db.url.as_str().to_string()),
            ..Default::default()
        };
        cfg.transfers
            .push(lockgate::transfer::Transfer::resolve("copy", &config, spec).unwrap());
        let app = lockgate_server::router(cfg).unwrap();
        for uri in BROWSING {
            let reply = get(&app, uri).await;
            assert!(
                !reply.status.is_server_error() || uri.contains("missing"),
                "{engine} {uri}: {} {}",
                reply.status,
                reply.text()
            );
            assert!(!missing.exists(), "{engine} {uri} created {}", missing.display());
            let mut conn = db.conn().await;
            let tables: Vec<String> = conn
                .list_tables()
                .await
                .unwrap()
                .iter()
                .map(|t| t.to_string())
                .collect();
            assert_eq!(tables, ["t"], "{engine} {uri} created tables");
        }
        // The missing file is reported, by name, where it is browsed.
        let reply = get(&app, "/api/tables/missing").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert!(
            reply.text().contains("there is no SQLite database at"),
            "{}",
            reply.text()
        );
        // The Export button's count is there without a ledger: one row to export.
        let transfers = get(&app, "/api/transfers").await.json();
        assert_eq!(transfers[0]["available"], 1, "{engine}: {transfers}");
    }
}
