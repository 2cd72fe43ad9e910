//! Merging through the server: `/api/merges` (history, detail, references, merge
//! and preview as jobs, undo) and the Merge page, on an SQLite and a PostgreSQL
//! database holding customers, their users (unique on parent and username) and
//! jobs referencing both: a preview's counts are the merge's, conflicts abort it
//! (409, nothing changed), an undo puts every row back, rows changed since stop the
//! undo until it overwrites them, bad input is 400, the token and the forms' token
//! are required as for every other change.

use crate::*;
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;
use lockgate_server::MergeDefinition;

/// Customers 1 and 2 are one business entered twice (both have the user
/// `pilot-1`); 3 and 4 share no username.
const FIXTURE: &str = "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(50) NOT NULL, \
       deleted integer NOT NULL DEFAULT 0); \
     CREATE TABLE users (id integer PRIMARY KEY, parent integer NOT NULL REFERENCES customers (id), \
       username varchar(50) NOT NULL, UNIQUE (parent, username)); \
     CREATE TABLE jobs (id integer PRIMARY KEY, customer integer REFERENCES customers (id), \
       pilot integer REFERENCES users (id), title varchar(50)); \
     INSERT INTO customers (id, name) VALUES (1, 'North'), (2, 'North again'), (3, 'South'), (4, 'East'); \
     INSERT INTO users VALUES (10, 1, 'anna'), (11, 1, 'pilot-1'), (20, 2, 'pilot-1'), (21, 2, 'bob'), \
       (30, 3, 'carl'), (40, 4, 'dora'); \
     INSERT INTO jobs VALUES (100, 1, 11, 'a'), (101, 2, 20, 'b'), (102, 2, 21, 'c'), (103, 4, 40, 'd'), \
       (104, 4, NULL, 'e')";

async fn fixture(engine: Engine) -> TestDb {
    let db = TestDb::new(engine).await;
    db.conn().await.batch(FIXTURE).await.unwrap();
    db
}

/// The rows a merge may change, as text: `users id:parent …; jobs id:customer:pilot …;
/// customers id:deleted …`.
async fn state(db: &TestDb) -> String {
    let mut conn = db.conn().await;
    let mut out = Vec::new();
    for (table, sql) in [
        ("users", "SELECT id, parent FROM users ORDER BY id"),
        ("jobs", "SELECT id, customer, pilot FROM jobs ORDER BY id"),
        ("customers", "SELECT id, deleted FROM customers ORDER BY id"),
    ] {
        let rows = conn.query(sql, &[], None).await.unwrap();
        let rows: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(":"))
            .collect();
        out.push(format!("{table} {}", rows.join(" ")));
    }
    out.join("; ")
}

fn server(db: &TestDb) -> ServerConfig {
    let mut cfg = ServerConfig::new();
    cfg.connections.push(NamedConnection {
        name: "acc".into(),
        url: db.url.clone(),
    });
    cfg
}

fn job_id(r: &Reply) -> u64 {
    r.json()["id"].as_u64().unwrap_or_else(|| panic!("a job: {}", r.text()))
}

/// Preview, merge, history, detail, undo preview, undo, conflicts, bad input: the
/// API's walk on one engine.
async fn api_walk(engine: Engine) {
    let db = fixture(engine).await;
    let app = lockgate_server::router(server(&db)).unwrap();
    let before = state(&db).await;

    let refs = get(&app, "/api/merges/refs?conn=acc&table=customers").await;
    assert_eq!(refs.status, StatusCode::OK, "{engine}: {}", refs.text());
    let refs = refs.json();
    let found: Vec<String> = refs["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}.{}", r["table"].as_str().unwrap(), r["columns"][0].as_str().unwrap()))
        .collect();
    assert!(
        found.iter().any(|f| f.ends_with("users.parent")) && found.iter().any(|f| f.ends_with("jobs.customer")),
        "{engine}: {refs:#}"
    );
    let users = refs["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"].as_str().unwrap().ends_with("users"))
        .unwrap();
    assert!(
        users["unique"].to_string().contains("username"),
        "the unique key with the column: {users:#}"
    );

    // The preview changes nothing, and its counts are the merge's.
    let body = serde_json::json!({"conn": "acc", "table": "customers", "from": ["4"], "into": "3", "preview": true});
    let r = post_json(&app, "/api/merges?wait=true", body).await;
    assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
    let preview = r.json();
    assert_eq!(preview["kind"], "merge_preview");
    let p = &preview["result"];
    assert_eq!(p["status"], "preview", "{p:#}");
    assert_eq!(p["total_rows"], 3, "{p:#}");
    assert_eq!(p["changes"].as_array().unwrap().len(), 3, "{p:#}");
    assert_eq!(p["changes_truncated"], false);
    assert_eq!(state(&db).await, before, "{engine}: a preview changes nothing");

    // Without wait: 202, the job's place, then the job.
    let r = post_json(
        &app,
        "/api/merges",
        serde_json::json!({"conn": "acc", "table": "customers", "from": "4", "into": 3}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{engine}: {}", r.text());
    assert!(r.header("location").starts_with("/api/jobs/"));
    let done = wait_job(&app, job_id(&r)).await;
    assert_eq!(done["status"], "succeeded", "{engine}: {done:#}");
    let m = &done["result"];
    assert_eq!(m["status"], "completed");
    assert_eq!(
        m["total_rows"], p["total_rows"],
        "{engine}: the preview's count is the merge's"
    );
    assert_eq!(m["tables"], p["tables"], "{engine}: per table too");
    let id = m["id"].as_i64().unwrap();
    let merged = state(&db).await;
    assert!(
        merged.contains("40:3") && merged.contains("103:3:40") && merged.contains("104:3:"),
        "{merged}"
    );

    let h = get(&app, "/api/merges?conn=acc").await.json();
    let listed = h["merges"].as_array().unwrap();
    assert!(
        listed.iter().any(|x| x["id"] == id && x["status"] == "completed"),
        "{h:#}"
    );
    assert!(
        listed.iter().any(|x| x["status"] == "preview"),
        "the preview is recorded: {h:#}"
    );
    let d = get(&app, &format!("/api/merges/{id}?conn=acc")).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    let d = d.json();
    assert_eq!(d["changes"].as_array().unwrap().len(), 3, "{d:#}");
    assert_eq!(d["changes_truncated"], false);

    // Undo: preview first (nothing changes), then for real.
    let r = post_json(
        &app,
        &format!("/api/merges/{id}/undo?conn=acc&wait=true"),
        serde_json::json!({"preview": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
    assert_eq!(r.json()["result"]["status"], "preview");
    assert_eq!(state(&db).await, merged);
    let r = post(&app, &format!("/api/merges/{id}/undo?conn=acc&wait=true")).await;
    assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
    assert_eq!(r.json()["result"]["status"], "undone");
    assert_eq!(state(&db).await, before, "{engine}: the undo puts every row back");
    let r = post(&app, &format!("/api/merges/{id}/undo?conn=acc&wait=true")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a second undo: {}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("already undone"),
        "{}",
        r.text()
    );

    // Conflicts abort the merge: 409, the report, nothing changed.
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"conn": "acc", "table": "customers", "from": "2", "into": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{engine}: {}", r.text());
    let j = r.json();
    assert_eq!(j["exit_code"], 4);
    assert_eq!(j["result"]["status"], "aborted_conflicts", "{j:#}");
    let conflict = &j["result"]["conflicts"][0];
    assert!(conflict["table"].as_str().unwrap().ends_with("users"), "{j:#}");
    assert_eq!(state(&db).await, before, "{engine}: an aborted merge changes nothing");
    // Merged into their counterparts, they go through: user 20 into 11.
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"conn": "acc", "table": "customers", "from": "2", "into": "1", "merge_conflicts": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
    let after = state(&db).await;
    assert!(
        after.contains("101:1:11") && after.contains("21:1"),
        "{engine}: {after}"
    );
    assert!(
        !after.contains(" 20:2"),
        "{engine}: the conflicting user is deleted: {after}"
    );
    let id = r.json()["result"]["id"].as_i64().unwrap();
    let r = post(&app, &format!("/api/merges/{id}/undo?conn=acc&wait=true")).await;
    assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
    assert_eq!(
        state(&db).await,
        before,
        "{engine}: a merge with conflicts merged is undone too"
    );

    // Bad input: 400 with the engine's message, at once or from the job.
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"conn": "acc", "table": "nope", "from": "1", "into": "2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{engine}: {}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nope"), "{}", r.text());
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"conn": "acc", "table": "customers", "from": "x", "into": "2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{engine}: {}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("customers.id"),
        "{}",
        r.text()
    );
    for (body, says) in [
        (
            serde_json::json!({"conn": "acc", "table": "customers", "into": "2"}),
            "no sources",
        ),
        (
            serde_json::json!({"conn": "acc", "table": "customers", "from": "1"}),
            "no target",
        ),
        (serde_json::json!({"conn": "acc", "from": "1", "into": "2"}), "no table"),
        (
            serde_json::json!({"conn": "acc", "table": "customers", "from": "1", "into": "2,3"}),
            "one target",
        ),
        (
            serde_json::json!({"conn": "acc", "table": "customers", "from": "1", "into": "2", "sources": "remove"}),
            "sources",
        ),
        (
            serde_json::json!({"conn": "acc", "table": "customers", "from": "1", "into": "2", "form": "1"}),
            "unknown field",
        ),
        (
            serde_json::json!({"conn": "acc", "def": "nope", "from": "1", "into": "2"}),
            "no merge definition",
        ),
    ] {
        let r = post_json(&app, "/api/merges", body.clone()).await;
        let expect = if says == "no merge definition" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(r.status, expect, "{body}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains(says),
            "{body}: {}",
            r.text()
        );
    }
    let r = post_json(
        &app,
        "/api/merges",
        serde_json::json!({"conn": "elsewhere", "table": "customers", "from": "1", "into": "2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("the connections are acc"));
    let r = get(&app, "/api/merges/refs?conn=acc&table=nope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = get(&app, "/api/merges/999?conn=acc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("999"));
    assert_eq!(state(&db).await, before);
}

#[tokio::test]
async fn merges_preview_abort_and_undo_through_the_api_on_sqlite() {
    api_walk(Engine::Sqlite).await;
}

#[tokio::test]
async fn merges_preview_abort_and_undo_through_the_api_on_postgres() {
    api_walk(Engine::Postgres).await;
}

#[tokio::test]
async fn rows_changed_since_a_merge_stop_its_undo_until_it_overwrites_them() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        changed_since(engine).await;
    }
}

async fn changed_since(engine: Engine) {
    let db = fixture(engine).await;
    let app = lockgate_server::router(server(&db)).unwrap();
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"conn": "acc", "table": "customers", "from": "4", "into": "3"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["result"]["id"].as_i64().unwrap();
    db.conn()
        .await
        .batch("UPDATE jobs SET customer = 1 WHERE id = 103")
        .await
        .unwrap();
    let r = post(&app, &format!("/api/merges/{id}/undo?conn=acc&wait=true")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    let j = r.json();
    assert_eq!(j["result"]["status"], "changed", "{j:#}");
    assert!(j["result"]["changed"].to_string().contains("103"), "{j:#}");
    assert!(j["message"].as_str().unwrap().contains("overwrite"), "{j:#}");
    let r = post_json(
        &app,
        &format!("/api/merges/{id}/undo?conn=acc&wait=true"),
        serde_json::json!({"overwrite": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"]["status"], "undone");
    let s = state(&db).await;
    assert!(s.contains("103:4:40") && s.contains("40:4"), "{s}");
}

#[tokio::test]
async fn a_definition_gives_the_table_and_the_connection() {
    let db = fixture(Engine::Sqlite).await;
    let mut cfg = server(&db);
    let config: lockgate::Config = toml_config(
        "[merges.customers]\ndb = \"acc\"\ntable = \"customers\"\nsources = \"set:deleted=1\"\n\
         [merges.bare]\ntable = \"customers\"\n",
        db.url.as_str(),
    );
    cfg.add_merges(&config).unwrap();
    assert_eq!(cfg.merges.len(), 2);
    let bare = cfg.merges.iter().find(|m| m.name == "bare").unwrap();
    assert_eq!(bare.conn, None, "no db and no default database");
    let app = lockgate_server::router(cfg.clone()).unwrap();
    let h = get(&app, "/api/merges?def=customers").await.json();
    assert_eq!(h["connection"], "acc");
    assert!(h["definitions"].to_string().contains("bare"), "{h:#}");
    let r = get(&app, "/api/merges/refs?def=customers").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["table"], "customers");
    let r = post_json(
        &app,
        "/api/merges?wait=true",
        serde_json::json!({"def": "customers", "from": ["4"], "into": "3"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"]["request"]["conn"], "acc");
    let s = state(&db).await;
    assert!(
        s.ends_with("customers 1:0 2:0 3:0 4:1"),
        "the definition's sources action: {s}"
    );
    // A definition without a connection needs one from the request.
    let r = post_json(
        &app,
        "/api/merges",
        serde_json::json!({"def": "bare", "from": "2", "into": "1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("conn="), "{}", r.text());

    // A definition naming a connection index out of range is refused at start.
    cfg.merges.push(MergeDefinition {
        name: "broken".into(),
        spec: Default::default(),
        conn: Some(7),
    });
    assert!(lockgate_server::router(cfg).is_err());
}

/// A lockgate.toml read from a file, with `acc` naming the database at `url`.
fn toml_config(body: &str, url: &str) -> lockgate::Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lockgate.toml");
    std::fs::write(&path, format!("[connections.acc]\nurl = \"{url}\"\n{body}")).unwrap();
    lockgate::Config::load(&path, true).unwrap()
}

#[tokio::test]
async fn merges_need_the_token_and_the_forms_their_token() {
    let db = fixture(Engine::Sqlite).await;
    let mut cfg = server(&db);
    cfg.token = Some("merge-token-0123456789".into());
    let app = lockgate_server::router(cfg).unwrap();
    let body = serde_json::json!({"conn": "acc", "table": "customers", "from": "4", "into": "3"});
    let r = post_json(&app, "/api/merges", body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let r = post(&app, "/api/merges/1/undo?conn=acc").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(get(&app, "/api/merges?conn=acc").await.status, StatusCode::UNAUTHORIZED);
    // With the token, yet from another site: refused.
    let r = send(
        &app,
        request(Method::POST, "/api/merges")
            .header(header::AUTHORIZATION, "Bearer merge-token-0123456789")
            .header("sec-fetch-site", "cross-site")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = send(
        &app,
        request(Method::POST, "/api/merges?wait=true")
            .header(header::AUTHORIZATION, "Bearer merge-token-0123456789")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The page's forms need their token, as every form does.
    let db = fixture(Engine::Sqlite).await;
    let app = lockgate_server::router(server(&db)).unwrap();
    let b = Browser::open(&app).await;
    let fields = [
        ("conn", "acc"),
        ("table", "customers"),
        ("from", "4"),
        ("into", "3"),
        ("action", "merge"),
    ];
    let r = b.post_form(&app, "/merges/run", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = b.post_form(&app, "/merges/1/undo", &[("conn", "acc")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let mut with = vec![("csrf", b.token.as_str())];
    with.extend(fields);
    let other = Browser::open(&app).await;
    let r = other.post_form(&app, "/merges/run", &with).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another browser's token: {}", r.text());
    assert!(!state(&db).await.contains("40:3"), "nothing merged");
}

#[tokio::test]
async fn the_merge_page_walks_from_search_to_preview_merge_and_undo() {
    let db = fixture(Engine::Sqlite).await;
    let before = state(&db).await;
    let app = lockgate_server::router(server(&db)).unwrap();
    let b = Browser::open(&app).await;

    let page = b.get(&app, "/merges").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let text = page.text();
    assert!(
        text.contains("href=\"/merges\" aria-current=\"page\">Merge</a>"),
        "{text}"
    );
    assert!(text.contains("<option value=\"customers\">"), "the table list: {text}");

    // The table: its references, its rows to pick from, searched on the server.
    let page = b.get(&app, "/merges?conn=acc&table=customers&q=east").await.text();
    assert!(
        page.contains("users") && page.contains("parent"),
        "the references: {page}"
    );
    assert!(page.contains("East") && !page.contains("South"), "the search: {page}");
    assert!(page.contains("Merge away") && page.contains("Merge into"), "{page}");
    let pick = b
        .get(&app, "/merges?conn=acc&table=customers&from=4&into=3")
        .await
        .text();
    assert!(pick.contains("id=\"from\" name=\"from\" value=\"4\""), "{pick}");
    assert!(pick.contains("a source") && pick.contains("the target"), "{pick}");

    // Preview from the form: a job whose page lists the changes and offers the merge.
    let token = page_token(&pick);
    let r = b
        .post_form(
            &app,
            "/merges/run",
            &[
                ("csrf", &token),
                ("conn", "acc"),
                ("table", "customers"),
                ("from", "4"),
                ("into", "3"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job = r.header("location");
    let id: u64 = job["/jobs/".len()..].parse().unwrap();
    assert_eq!(wait_job(&app, id).await["status"], "succeeded");
    let jp = b.get(&app, &job).await.text();
    assert!(jp.contains("Rows re-pointed") && jp.contains("Changes"), "{jp}");
    assert!(jp.contains("id=\"merge\""), "the Merge button: {jp}");
    assert!(
        jp.contains("name=\"from\" value=\"4\""),
        "the preview's request, to merge: {jp}"
    );
    assert_eq!(state(&db).await, before);

    // The preview's Merge button.
    let r = b
        .post_form(
            &app,
            "/merges/run",
            &[
                ("csrf", &token),
                ("conn", "acc"),
                ("table", "customers"),
                ("from", "4"),
                ("into", "3"),
                ("action", "merge"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job = r.header("location");
    let id: u64 = job["/jobs/".len()..].parse().unwrap();
    let done = wait_job(&app, id).await;
    assert_eq!(done["result"]["status"], "completed", "{done:#}");
    let merge_id = done["result"]["id"].as_i64().unwrap();
    let jp = b.get(&app, &job).await.text();
    assert!(jp.contains("id=\"undo-preview\""), "{jp}");
    assert!(state(&db).await.contains("40:3"));

    // The history lists it with an Undo button; its page shows what it did.
    let page = b.get(&app, "/merges?conn=acc").await.text();
    assert!(
        page.contains(&format!("data-merge=\"{merge_id}\"")) && page.contains("undo-button"),
        "{page}"
    );
    let detail = b.get(&app, &format!("/merges/{merge_id}?conn=acc")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text());
    assert!(
        detail.text().contains("completed") && detail.text().contains("jobs"),
        "{}",
        detail.text()
    );

    // Undo: the preview first, then the undo from its page.
    let r = b
        .post_form(
            &app,
            &format!("/merges/{merge_id}/undo"),
            &[("csrf", &token), ("conn", "acc"), ("preview", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job = r.header("location");
    let id: u64 = job["/jobs/".len()..].parse().unwrap();
    assert_eq!(wait_job(&app, id).await["result"]["status"], "preview");
    let jp = b.get(&app, &job).await.text();
    assert!(jp.contains("id=\"undo\""), "{jp}");
    let r = b
        .post_form(
            &app,
            &format!("/merges/{merge_id}/undo"),
            &[("csrf", &token), ("conn", "acc"), ("overwrite", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let id: u64 = r.header("location")["/jobs/".len()..].parse().unwrap();
    assert_eq!(wait_job(&app, id).await["result"]["status"], "undone");
    assert_eq!(state(&db).await, before);

    // Names from requests are checked and escaped.
    let r = b.get(&app, "/merges?conn=acc&table=%3Cscript%3E").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(
        !text.contains("<script>") && (text.contains("&#60;script&#62;") || text.contains("&lt;script&gt;")),
        "{text}"
    );
    assert!(text.contains("class=\"error\""), "{text}");
    let r = b.get(&app, "/merges?def=nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_the_merge_endpoints() {
    let db = fixture(Engine::Sqlite).await;
    let app = lockgate_server::router(server(&db)).unwrap();
    let doc = get(&app, "/api/openapi.json").await.json();
    for (path, method) in [
        ("/api/merges", "get"),
        ("/api/merges", "post"),
        ("/api/merges/{id}", "get"),
        ("/api/merges/refs", "get"),
        ("/api/merges/{id}/undo", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["MergeRequest"].is_object());
}

#[tokio::test]
async fn the_demo_serves_its_accounts_and_the_merge_customers() {
    use lockgate::demo::{CLEAN_FROM, CLEAN_INTO, CONFLICT_FROM, CONFLICT_INTO, DELETED_CUSTOMER, MERGE};
    let demo = Demo::new().await;
    let def = demo.cfg.merge_definition(MERGE).expect("the demo's merge");
    let conn = &demo.cfg.connections[def.conn.expect("on a connection")];
    assert_eq!(conn.name, lockgate::demo::ACCOUNTS_CONNECTION);
    let app = demo.app();
    let page = get(&app, &format!("/merges?def={MERGE}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("id=\"merge-scope\""), "{}", page.text());

    let preview = |from: i64, into: i64| serde_json::json!({"def": MERGE, "from": [from.to_string()], "into": into, "preview": true});
    let r = post_json(&app, "/api/merges?wait=true", preview(CONFLICT_FROM, CONFLICT_INTO)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a preview with conflicts is still a preview: {}",
        r.text()
    );
    let j = r.json();
    assert!(!j["result"]["conflicts"].as_array().unwrap().is_empty(), "{j:#}");
    assert!(j["message"].as_str().unwrap().contains("would abort"), "{j:#}");
    let r = post_json(&app, "/api/merges?wait=true", preview(CLEAN_FROM, CLEAN_INTO)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"]["conflicts"], serde_json::json!([]));
    assert!(r.json()["result"]["total_rows"].as_u64().unwrap() > 0);
    let r = post_json(&app, "/api/merges?wait=true", preview(DELETED_CUSTOMER, CLEAN_INTO)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a soft-deleted source: {}", r.text());
}
