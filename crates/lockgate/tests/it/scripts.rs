//! Process scripts on each engine: what their environment holds (no Lockgate secrets,
//! no URL with a password; the password only in the engine's own variable), a relative
//! `--dir`, one rule for how a file runs (`.mjs` under node in `scripts` and `files`),
//! and bundles refused before anything runs when scripts are not allowed.

use crate::migrate::{entry, item_bundle, meta, run, run_ok, snapshot, strings, versions_of, Bundle, BASE_ITEMS};
use crate::support::*;
use lockgate::MigrateError;
use lockgate_bundle::ZipLimits;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The secrets a server or a shell may hold while it migrates; every test here sets
/// the same values, so the order in which tests run does not matter.
const TOKEN: &str = "server-token-that-no-script-may-see-0123";
const PARENT_PASSWORD: &str = "parent-engine-password-not-for-scripts";

/// Variables a test set in this process's environment, put back as they were when it
/// ends (passed or failed), so that none leaks into the other tests of this binary
/// (`DATABASE_URL` would become their default database).
struct EnvGuard(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl EnvGuard {
    fn set(&mut self, name: &'static str, value: &str) {
        if !self.0.iter().any(|(n, _)| *n == name) {
            self.0.push((name, std::env::var_os(name)));
        }
        std::env::set_var(name, value);
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (name, old) in self.0.drain(..).rev() {
            match old {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// The command's own environment as a server started with LOCKGATE_TOKEN (and a shell
/// with engine credentials) has it, until the guard is dropped.
fn set_secrets() -> EnvGuard {
    let mut env = EnvGuard(Vec::new());
    env.set("LOCKGATE_TOKEN", TOKEN);
    env.set("LOCKGATE_SOMETHING_ELSE", TOKEN);
    env.set("PGPASSWORD", PARENT_PASSWORD);
    env.set("MYSQL_PWD", PARENT_PASSWORD);
    env.set("LOCKGATE_SCRIPT_TEST_KEPT", "no");
    env.set("SCRIPT_TEST_KEPT", "yes");
    env.set("OLDPWD", "/the/folder/the/command/started/in");
    env
}

/// `path` relative to the working folder (`../../target/tmp/…`), without changing it.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let mut up = PathBuf::new();
    let mut base = cwd.as_path();
    while !path.starts_with(base) {
        up.push("..");
        base = base.parent().expect("the root is a prefix of every path");
    }
    up.join(path.strip_prefix(base).unwrap())
}

/// A copy of `b`'s `db/` folder near the working folder (under cargo's target/tmp), and
/// its path relative to the working folder: from inside a version folder that relative
/// path leads nowhere (a folder under /tmp could be reached again through `..` at the
/// root, which would hide the bug).
fn relative_copy(b: &Bundle) -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    copy(&b.root(), &tmp.path().join("db"));
    let rel = relative_to_cwd(&tmp.path().join("db"));
    assert!(rel.is_relative());
    assert!(
        !tmp.path().join("db/2.0.0").join(&rel).exists(),
        "{} must not be reachable from a version folder",
        rel.display()
    );
    (tmp, rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sees_no_secret_and_the_password_only_in_the_engines_variable() {
    let mut env = set_secrets();
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let (url, password) = db.password_url().await;
        // The URL the command may have read its database from, password and all.
        env.set("DATABASE_URL", url.as_str());
        let b = item_bundle();
        let out = b.root().parent().unwrap().join("env.out");
        b.json(
            "2.0.0/meta.json",
            meta(json!([{"file": "default/env.sh", "ctxId": "/default"}])),
        )
        .put("2.0.0/default/env.sh", format!("env > '{}'\n", out.display()));
        let r = lockgate::migrate(&url, &b.opts(), None)
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "2.0.0"]),
            "{engine}: {r:#?}"
        );
        let env = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{engine}: the script did not run: {e}"));
        let lines: Vec<&str> = env.lines().collect();
        assert!(!env.contains(TOKEN), "{engine}: the token leaked:\n{env}");
        assert!(
            !env.contains(PARENT_PASSWORD),
            "{engine}: the parent's password leaked:\n{env}"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("DATABASE_URL=")),
            "{engine}:\n{env}"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("LOCKGATE_SCRIPT_TEST_KEPT=")),
            "{engine}"
        );
        assert!(
            lines.contains(&"SCRIPT_TEST_KEPT=yes"),
            "{engine}: the rest is inherited:\n{env}"
        );
        assert!(lines.iter().any(|l| l.starts_with("PATH=")), "{engine}");
        // Not the command's own folder (where its lockgate.toml is): the version's.
        assert!(!lines.iter().any(|l| l.starts_with("OLDPWD=")), "{engine}:\n{env}");
        let pwd = std::path::absolute(b.root().join("2.0.0")).unwrap();
        assert!(
            lines.contains(&format!("PWD={}", pwd.display()).as_str()),
            "{engine}: PWD is the version folder:\n{env}"
        );
        let shown = lines
            .iter()
            .find_map(|l| l.strip_prefix("LOCKGATE_DATABASE_URL="))
            .unwrap_or_else(|| panic!("{engine}: no LOCKGATE_DATABASE_URL:\n{env}"));
        match password {
            Some(pw) => {
                let with_pw: Vec<&&str> = lines.iter().filter(|l| l.contains(&pw)).collect();
                let own = if engine == lockgate_db::Engine::Postgres {
                    format!("PGPASSWORD={pw}")
                } else {
                    format!("MYSQL_PWD={pw}")
                };
                assert_eq!(
                    with_pw,
                    [&own.as_str()],
                    "{engine}: only the engine's variable holds it"
                );
                assert_eq!(shown, url.split_password().0, "{engine}");
                assert!(!shown.contains(&pw), "{engine}");
            }
            None => {
                assert_eq!(engine, lockgate_db::Engine::Sqlite);
                assert!(shown.starts_with("sqlite:///"), "{engine}: an absolute path: {shown}");
                assert!(!lines
                    .iter()
                    .any(|l| l.starts_with("PGPASSWORD=") || l.starts_with("MYSQL_PWD=")));
            }
        }
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_process_script_runs_from_a_relative_dir() {
    // Started inside its version folder, each script must still be found: paths are
    // made absolute once. `.mjs` runs under node as an ES module, from `scripts` as
    // from `files`; a file without a known extension runs as an executable.
    let b = item_bundle();
    let outside = b.root().parent().unwrap().to_path_buf();
    let mark = |name: &str| outside.join(name).display().to_string();
    b.json(
        "2.0.0/meta.json",
        json!({
            "contexts": {"/default": {"tenantId": "/default"}},
            "scripts": {"before": ["default/before.mjs"], "after": ["default/after.py"]},
            "files": [
                {"file": "default/a.sh", "ctxId": "/default"},
                {"file": "default/b.js", "ctxId": "/default"},
                {"file": "default/c.mjs", "ctxId": "/default"},
                {"file": "default/tool", "ctxId": "/default"},
                entry("item", "default/i.json")
            ]
        }),
    )
    .put(
        "2.0.0/default/before.mjs",
        format!(
            "import fs from 'fs';\nexport default function (opts, cb) {{ fs.writeFileSync({}, 'before.mjs'); cb(); }}\n",
            json!(mark("before"))
        ),
    )
    .put(
        "2.0.0/default/after.py",
        format!("open({}, 'w').write('after.py')\n", json!(mark("after"))),
    )
    .put("2.0.0/default/a.sh", format!("echo a.sh > '{}'\n", mark("a")))
    .put(
        "2.0.0/default/b.js",
        format!("require('fs').writeFileSync({}, 'b.js');\n", json!(mark("b"))),
    )
    .put(
        "2.0.0/default/c.mjs",
        format!(
            "import {{ writeFileSync }} from 'node:fs';\nexport default (opts, cb) => {{ writeFileSync({}, 'c.mjs ' + opts.tenantId); cb(); }};\n",
            json!(mark("c"))
        ),
    )
    .put("2.0.0/default/tool", format!("#!/bin/sh\necho tool > '{}'\n", mark("tool")))
    .json("2.0.0/default/i.json", json!([{"id": 4, "name": "d"}]));
    make_executable(&b.root().join("2.0.0/default/tool"));
    let (_copy, rel) = relative_copy(&b);
    for engine in ENGINES {
        for m in ["before", "after", "a", "b", "c", "tool"] {
            let _ = std::fs::remove_file(outside.join(m));
        }
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |o| o.dir = rel.clone()).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "2.0.0"]),
            "{engine}: {r:#?}"
        );
        let read = |m: &str| {
            std::fs::read_to_string(outside.join(m))
                .unwrap_or_else(|e| panic!("{engine}: {m} did not run: {e}"))
                .trim()
                .to_string()
        };
        assert_eq!(read("before"), "before.mjs", "{engine}");
        assert_eq!(read("after"), "after.py", "{engine}");
        assert_eq!(read("a"), "a.sh", "{engine}");
        assert_eq!(read("b"), "b.js", "{engine}");
        assert_eq!(read("c"), "c.mjs /default", "{engine}");
        assert_eq!(read("tool"), "tool", "{engine}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|1", "2|b|2", "3|c|3", "4|d|NULL"],
            "{engine}"
        );
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A bundle whose 1.0.0 loads items and runs `script` (which would leave `ran` behind).
fn bundle_with(script: &str, body: &str) -> (Bundle, PathBuf) {
    let b = item_bundle();
    let ran = b.root().parent().unwrap().join("ran");
    b.json(
        "1.0.0/meta.json",
        meta(json!([entry("item", "default/item.json"), {"file": script, "ctxId": "/default"}])),
    )
    .put(
        &format!("1.0.0/{script}"),
        body.replace("RAN", &ran.display().to_string()),
    );
    (b, ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_with_process_scripts_are_refused_before_anything_runs_when_not_allowed() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        for (script, body) in [
            ("default/s.sh", "touch 'RAN'\n"),
            ("default/s.mjs", "import fs from 'fs'; fs.writeFileSync('RAN', '');\n"),
            ("default/s.py", "open('RAN', 'w')\n"),
        ] {
            let (b, ran) = bundle_with(script, body);
            // An unnamed helper counts too: a named script could run it.
            b.put("models/helper.js", "module.exports = 1;\n");
            let e = run(&db, &b, |o| o.allow_process_scripts = false).await.unwrap_err();
            assert!(matches!(e, MigrateError::Input(_)), "{engine}: {e:?}");
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("1.0.0/{script}")) && msg.contains("models/helper.js"),
                "{engine}: names them: {msg}"
            );
            assert!(!ran.exists(), "{engine}: {script} ran");
            let mut conn = db.conn().await;
            assert!(
                conn.list_tables().await.unwrap().is_empty(),
                "{engine}: nothing written"
            );
        }
        // Nor may a `.sql` script run programs or touch files through the database
        // server: refused before anything runs, naming the file, line and construct.
        let tmp = tempfile::tempdir().unwrap();
        let mark = tmp.path().join("made-by-the-database");
        for (statement, construct) in [
            (
                format!("COPY (SELECT 1) TO PROGRAM 'touch {}'", mark.display()),
                "COPY … PROGRAM",
            ),
            ("select pg_read_file('/etc/passwd')".to_string(), "pg_read_file()"),
            (format!("SELECT 1 INTO DUMPFILE '{}'", mark.display()), "INTO DUMPFILE"),
            (
                "LOAD DATA INFILE '/etc/passwd' INTO TABLE item".to_string(),
                "LOAD DATA INFILE without LOCAL",
            ),
            (format!("ATTACH '{}' AS x", mark.display()), "ATTACH"),
        ] {
            let (b, _) = bundle_with(
                "default/s.sql",
                &format!("UPDATE item SET qty = 10 WHERE id = 1;\n/* then */ {statement};\n"),
            );
            let e = run(&db, &b, |o| o.allow_process_scripts = false).await.unwrap_err();
            assert_eq!(e.exit_code(), 2, "{engine}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("1.0.0/default/s.sql:2:") && msg.contains("statement 2") && msg.contains(construct),
                "{engine}: {msg}"
            );
            assert!(!mark.exists(), "{engine}: {statement} ran");
            let mut conn = db.conn().await;
            assert!(
                conn.list_tables().await.unwrap().is_empty(),
                "{engine}: nothing written"
            );
        }
        // `.sql` scripts are not process scripts.
        let (b, _) = bundle_with("default/s.sql", "UPDATE item SET qty = 10 WHERE id = 1;\n");
        let r = run_ok(&db, &b, |o| o.allow_process_scripts = false).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|10", "2|b|2", "3|c|3"],
            "{engine}"
        );
    }
}

#[test]
fn an_unpacked_zip_lists_every_process_script_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("b.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let plain = zip::write::SimpleFileOptions::default();
    let exec = plain.unix_permissions(0o755);
    let entries: [(&str, &str, zip::write::SimpleFileOptions); 9] = [
        (
            "db/1.0.0/meta.json",
            r#"{"files": [{"file": "default/i.json", "model": "item"}, {"file": "bin/tool"}, {"file": "x.sql"}],
                "scripts": {"before": ["pre.SH"], "after": ["post.cjs"]}}"#,
            plain,
        ),
        ("db/1.0.0/default/i.json", "[]", plain),
        ("db/1.0.0/bin/tool", "#!/bin/sh\n", plain),
        ("db/1.0.0/x.sql", "SELECT 1;", plain),
        ("db/1.0.0/pre.SH", "true\n", plain),
        ("db/1.0.0/post.cjs", "", plain),
        ("db/models/helper.py", "", plain),
        ("db/1.0.0/default/run", "#!/bin/sh\n", exec),
        ("setup.sh", "", plain),
    ];
    for (name, body, options) in entries {
        zip.start_file(name, options).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let u = lockgate::migrate::unpack_zip(&zip_path, &ZipLimits::default()).unwrap();
    assert!(u.root().ends_with("db"), "{}", u.root().display());
    assert!(u.root().join("1.0.0/meta.json").is_file());
    // Extraction keeps no permission bits, so `default/run` cannot run and is not
    // listed: only what meta.json names or what a name says.
    assert_eq!(
        u.process_scripts(),
        [
            "db/1.0.0/bin/tool",
            "db/1.0.0/post.cjs",
            "db/1.0.0/pre.SH",
            "db/models/helper.py",
            "setup.sh"
        ]
    );
    let root = u.root().to_path_buf();
    drop(u);
    assert!(!root.exists(), "the folder goes with it");
    // A folder: an executable file counts.
    let b = Bundle::new();
    b.json("1.0.0/meta.json", json!({"files": []}))
        .put("1.0.0/tools/run", "#!/bin/sh\n");
    let base = lockgate_bundle::BaseDir::scan(&b.root()).unwrap();
    assert!(lockgate::migrate::process_scripts(&base).unwrap().is_empty());
    make_executable(&b.root().join("1.0.0/tools/run"));
    assert_eq!(lockgate::migrate::process_scripts(&base).unwrap(), ["1.0.0/tools/run"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_times_out_takes_its_background_children_with_it() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        // The background sleep writes nowhere the run reads: only its process group
        // ties it to the script.
        let (b, pid_file) = bundle_with(
            "default/bg.sh",
            "sleep 1000 > /dev/null 2>&1 < /dev/null &\necho $! > 'RAN'\nsleep 1000\n",
        );
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("did not finish within 2 s"), "{engine}: {e}");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{engine}: the script did not start its child: {e}"));
        let pid = pid.trim();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            // Gone, or a zombie waiting for whoever adopted it to reap it.
            let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
            };
            if gone {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{engine}: the script's background child {pid} outlived its timeout"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
