//! Uploaded zips that hold process scripts: refused by `/uploadzip`, `/api/migrate`
//! and the Data page unless the server allows them, nothing run and nothing written;
//! `.sql` scripts allowed; and an allowed script sees neither the server's token nor
//! the database password (but in the engine's own variable), on each engine.

use crate::*;
use lockgate_db::testing::TestDb;
use lockgate_db::Engine;

const TOKEN: &str = "the-servers-token-0123456789abcdef";

/// Variables set in this process's environment for one test, put back as they were
/// when it ends (passed or failed), so that none leaks into the other tests.
struct EnvGuard(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl EnvGuard {
    fn set(vars: &[(&'static str, &str)]) -> EnvGuard {
        let saved = vars.iter().map(|(n, _)| (*n, std::env::var_os(n))).collect();
        for (n, v) in vars {
            std::env::set_var(n, v);
        }
        EnvGuard(saved)
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (name, old) in self.0.drain(..) {
            match old {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// A zip of one version `v` whose only entry is the shell script `body`.
fn script_zip(v: &str, body: &str) -> Vec<u8> {
    let (meta, script) = (format!("{v}/meta.json"), format!("{v}/default/s.sh"));
    zip_of(&[
        (meta.as_str(), r#"{"files": [{"file": "default/s.sh"}]}"#),
        (script.as_str(), body),
    ])
}

#[tokio::test]
async fn uploaded_process_scripts_are_refused_unless_the_server_allows_them() {
    let demo = Demo::new().await;
    let app = demo.app();
    let ran = demo.dir.path().join("ran");
    let touch = format!("touch '{}'\n", ran.display());
    let zip = script_zip("5.0.0", &touch);
    let tables_before = get(&app, "/api/tables/destination").await.json();

    let r = post_multipart(&app, "/uploadzip", &[("file", "s.zip", &zip)], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("5.0.0/default/s.sh") && msg.contains("upload_scripts = true"),
        "{msg}"
    );
    // The API answers at once, without starting a job.
    let r = post_multipart(&app, "/api/migrate", &[("file", "s.zip", &zip)], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("5.0.0/default/s.sh"));
    assert_eq!(get(&app, "/api/jobs").await.json(), serde_json::json!([]));
    // The Data page's form: an error page naming it.
    let b = Browser::open(&app).await;
    let r = b
        .post_multipart(&app, "/data/upload", &[("file", "s.zip", &zip)], &[("csrf", &b.token)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("5.0.0/default/s.sh"), "{}", r.text());
    // A script that meta.json does not name counts as well, and so does any executable
    // named as a file entry.
    let unnamed = zip_of(&[
        ("5.0.0/meta.json", r#"{"files": []}"#),
        ("5.0.0/lib/helper.py", "print(1)\n"),
    ]);
    let r = post_multipart(&app, "/uploadzip", &[("file", "u.zip", &unnamed)], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("5.0.0/lib/helper.py"));
    let tool = zip_of(&[
        ("5.0.0/meta.json", r#"{"files": [{"file": "bin/tool"}]}"#),
        ("5.0.0/bin/tool", "#!/bin/sh\n"),
    ]);
    let r = post_multipart(&app, "/uploadzip", &[("file", "t.zip", &tool)], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("5.0.0/bin/tool"));
    // Nothing ran, nothing was written.
    assert!(!ran.exists(), "a refused script ran");
    assert_eq!(
        get(&app, "/api/migrations").await.json()["current_version"],
        serde_json::Value::Null
    );
    assert_eq!(get(&app, "/api/tables/destination").await.json(), tables_before);

    // `.sql` scripts run inside the version's transaction: allowed.
    let sql = zip_of(&[
        ("5.0.0/meta.json", r#"{"files": [{"file": "default/s.sql"}]}"#),
        (
            "5.0.0/default/s.sql",
            "UPDATE customers SET FirstName = 'Ada' WHERE CustomerID = 1;\n",
        ),
    ]);
    let r = post_multipart(&app, "/uploadzip", &[("file", "q.zip", &sql)], &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["migratedVersions"], serde_json::json!(["5.0.0"]));

    // Told to allow them, the server runs them.
    let mut cfg = demo.cfg.clone();
    cfg.upload_scripts = true;
    let allowing = lockgate_server::router(cfg).unwrap();
    let r = post_multipart(
        &allowing,
        "/uploadzip",
        &[("file", "s.zip", &script_zip("6.0.0", &touch))],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["migratedVersions"], serde_json::json!(["6.0.0"]));
    assert!(ran.exists(), "the allowed script ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_script_sees_neither_the_token_nor_the_password() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let (url, password) = db.password_url().await;
        // The server's own environment, as `LOCKGATE_TOKEN=… DATABASE_URL=… lockgate
        // serve` starts it.
        let _env = EnvGuard::set(&[("LOCKGATE_TOKEN", TOKEN), ("DATABASE_URL", url.as_str())]);
        let out = tempfile::tempdir().unwrap();
        let env_file = out.path().join("env.out");
        let mut cfg = ServerConfig::new();
        cfg.connections.push(NamedConnection {
            name: "app".into(),
            url: url.clone(),
        });
        cfg.migrate_db = Some(0);
        cfg.token = Some(TOKEN.into());
        cfg.upload_scripts = true;
        let app = lockgate_server::router(cfg).unwrap();
        let (ct, body) = multipart(
            &[(
                "file",
                "env.zip",
                &script_zip("1.0.0", &format!("env > '{}'\n", env_file.display())),
            )],
            &[],
        );
        let r = send(
            &app,
            request(Method::POST, "/uploadzip")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{engine}: {}", r.text());
        let env =
            std::fs::read_to_string(&env_file).unwrap_or_else(|e| panic!("{engine}: the script did not run: {e}"));
        let lines: Vec<&str> = env.lines().collect();
        assert!(!env.contains(TOKEN), "{engine}: the token leaked:\n{env}");
        assert!(
            !lines.iter().any(|l| l.starts_with("DATABASE_URL=")),
            "{engine}:\n{env}"
        );
        let shown = lines
            .iter()
            .find_map(|l| l.strip_prefix("LOCKGATE_DATABASE_URL="))
            .unwrap_or_else(|| panic!("{engine}: no LOCKGATE_DATABASE_URL:\n{env}"));
        if let Some(pw) = password {
            let own = match engine {
                Engine::Postgres => format!("PGPASSWORD={pw}"),
                _ => format!("MYSQL_PWD={pw}"),
            };
            let holding: Vec<&&str> = lines.iter().filter(|l| l.contains(&pw)).collect();
            assert_eq!(holding, [&own.as_str()], "{engine}: only the engine's own variable");
            assert!(!shown.contains(&pw), "{engine}: {shown}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_sql_script_that_reaches_outside_the_database_is_refused_unless_scripts_are_allowed() {
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let out = tempfile::tempdir().unwrap();
        let mark = out.path().join("made-by-the-database");
        // What each engine would do with a privileged role: run a program, write a file.
        let (construct, statement) = match engine {
            Engine::Postgres => (
                "COPY … PROGRAM",
                format!("copy (select 1) to program 'touch {}'", mark.display()),
            ),
            Engine::Mysql => ("INTO OUTFILE", format!("SELECT 1 INTO OUTFILE '{}'", mark.display())),
            Engine::Sqlite => ("ATTACH", format!("ATTACH DATABASE '{}' AS x", mark.display())),
        };
        let sql = format!("CREATE TABLE made (id INT);\n-- then:\n\n{statement};\n");
        let zip = zip_of(&[
            ("1.0.0/meta.json", r#"{"files": [{"file": "default/a.sql"}]}"#),
            ("1.0.0/default/a.sql", sql.as_str()),
        ]);
        let mut cfg = ServerConfig::new();
        cfg.connections.push(NamedConnection {
            name: "app".into(),
            url: db.url.clone(),
        });
        cfg.migrate_db = Some(0);
        cfg.token = Some(TOKEN.into());
        let app = lockgate_server::router(cfg).unwrap();
        let (ct, body) = multipart(&[("file", "a.zip", &zip)], &[]);
        let r = send(
            &app,
            request(Method::POST, "/uploadzip")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{engine}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            msg.contains("1.0.0/default/a.sql:4:") && msg.contains("statement 2") && msg.contains(construct),
            "{engine}: names the file, line and construct: {msg}"
        );
        assert!(msg.contains("upload_scripts"), "{engine}: {msg}");
        assert!(!mark.exists(), "{engine}: the statement ran");
        let mut conn = db.conn().await;
        assert!(
            conn.list_tables().await.unwrap().is_empty(),
            "{engine}: nothing ran, nothing was written"
        );
    }
}
