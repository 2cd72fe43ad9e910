//! `lockgate serve` as a process: where it listens (PORT, lockgate.toml), what it
//! refuses to start with, and a clean stop on Ctrl-C.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lockgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockgate"));
    c.env_remove("DATABASE_URL")
        .env_remove("LOCKGATE_TOKEN")
        .env_remove("PORT");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET over a plain socket: (status line, whole response).
fn http_get(port: u16, path: &str, host: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out.lines().next().unwrap_or("").to_string(), out)
}

#[test]
fn serve_refuses_to_open_to_the_network_without_a_token_or_with_a_bad_port() {
    let dir = tempfile::tempdir().unwrap();
    let out = lockgate()
        .args(["serve", "--bind", "0.0.0.0:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOCKGATE_TOKEN"), "{err}");
    let out = lockgate()
        .arg("serve")
        .env("PORT", "eighty")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT=\"eighty\" is not a port"));
}

#[test]
fn serve_listens_on_port_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[connections.app]\nurl = \"sqlite://app.db\"\n\n[server]\ndb = \"app\"\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = lockgate()
        .arg("serve")
        .env("PORT", port.to_string())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen on PORT {port}");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_get(port, "/api/connections", &format!("127.0.0.1:{port}"));
    assert!(status.contains("200"), "{body}");
    assert!(
        body.contains("\"name\":\"app\"") && body.contains("migrations"),
        "{body}"
    );
    let (status, _) = http_get(port, "/", "attacker.example");
    assert!(status.contains("421"), "{status}");
    // A browser's open event stream must not keep Ctrl-C from stopping the server.
    let mut events = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(events, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "the server did not stop within 10 s of Ctrl-C with an event stream open"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(events);
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains(&format!("http://127.0.0.1:{port}/")), "{err}");
}

/// Starts `lockgate serve` in `dir` with `LOCKGATE_TOKEN` set, and waits until it listens.
fn serve_with_token(dir: &std::path::Path, token: &str) -> (std::process::Child, u16) {
    serve_as(dir, token, lockgate())
}

/// `lockgate serve` as an unprivileged user when the tests run as root (setpriv to
/// nobody; its folder opened to that user): root may read any process's
/// /proc/<pid>/environ, so only then does a script run as the server's own user.
fn serve_unprivileged(dir: &std::path::Path, token: &str) -> (std::process::Child, u16) {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return serve_as(dir, token, lockgate());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_lockgate"))
        .env_remove("DATABASE_URL")
        .env_remove("LOCKGATE_TOKEN")
        .env_remove("PORT");
    serve_as(dir, token, c)
}

fn serve_as(dir: &std::path::Path, token: &str, mut command: Command) -> (std::process::Child, u16) {
    let port = free_port();
    let mut child = command
        .arg("serve")
        .env("PORT", port.to_string())
        .env("LOCKGATE_TOKEN", token)
        .env("DATABASE_URL", "postgres://someone:db-secret-in-the-env@127.0.0.1:1/x")
        // As a shell that started it from its folder would leave them.
        .env("OLDPWD", dir)
        .env("PWD", dir)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen on PORT {port}");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// POSTs `zip` to /uploadzip as a multipart form with the bearer token: the response.
fn upload(port: u16, token: &str, zip: &[u8]) -> String {
    let boundary = "lockgate-cli-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /uploadzip HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_runs_uploaded_scripts_only_when_lockgate_toml_allows_it_and_never_with_its_secrets() {
    const TOKEN: &str = "serve-token-a-script-must-not-see-42";
    let dir = tempfile::tempdir().unwrap();
    let env_out = dir.path().join("env.out");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(bundle.join("1.0.0/default")).unwrap();
    std::fs::write(
        bundle.join("1.0.0/meta.json"),
        r#"{"files": [{"file": "default/s.sh"}]}"#,
    )
    .unwrap();
    std::fs::write(
        bundle.join("1.0.0/default/s.sh"),
        // What a hostile script would try: the server's environment through /proc
        // (and its working folder, where lockgate.toml is, through OLDPWD).
        format!(
            "{{ env; echo '--- environ of the parent'; cat /proc/$PPID/environ; echo; echo '--- end'; }} > '{}' 2>&1\n",
            env_out.display()
        ),
    )
    .unwrap();
    let zip_path = dir.path().join("b.zip");
    lockgate_bundle::write_zip(&bundle, &zip_path).unwrap();
    let zip = std::fs::read(&zip_path).unwrap();
    let toml = "[connections.app]\nurl = \"sqlite://app.db\"\n\n[server]\ndb = \"app\"\n";

    // By default an upload holding a process script is refused, and nothing runs.
    std::fs::write(dir.path().join("lockgate.toml"), toml).unwrap();
    let (mut child, port) = serve_with_token(dir.path(), TOKEN);
    let answer = upload(port, TOKEN, &zip);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("1.0.0/default/s.sh") && answer.contains("upload_scripts"),
        "{answer}"
    );
    assert!(!env_out.exists(), "the script ran");

    // `upload_scripts = true`: it runs, without the server's token or DATABASE_URL.
    std::fs::write(
        dir.path().join("lockgate.toml"),
        format!("{toml}upload_scripts = true\n"),
    )
    .unwrap();
    let (mut child, port) = serve_unprivileged(dir.path(), TOKEN);
    let answer = upload(port, TOKEN, &zip);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""migratedVersions":["1.0.0"]"#), "{answer}");
    let env = std::fs::read_to_string(&env_out).expect("the script ran");
    assert!(!env.contains(TOKEN), "the token leaked:\n{env}");
    assert!(!env.contains("db-secret-in-the-env"), "DATABASE_URL leaked:\n{env}");
    assert!(
        env.contains("--- environ of the parent") && env.contains("--- end"),
        "the script did not try /proc/$PPID/environ:\n{env}"
    );
    assert!(
        env.lines().any(|l| l.starts_with("LOCKGATE_DATABASE_URL=sqlite:///")),
        "{env}"
    );
    assert!(!env.lines().any(|l| l.starts_with("OLDPWD=")), "{env}");
    let pwd = env
        .lines()
        .find_map(|l| l.strip_prefix("PWD="))
        .unwrap_or_else(|| panic!("no PWD:\n{env}"));
    assert!(pwd.ends_with("/1.0.0"), "PWD is the version folder: {pwd}");
    assert!(!pwd.contains(&*dir.path().to_string_lossy()), "{pwd}");
}

/// Runs `lockgate ARGS` in `dir` with `PORT` set to a free port and waits until it
/// listens there (`demo` first makes its databases: a longer wait).
fn listening(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, u16) {
    let port = free_port();
    let mut child = lockgate()
        .args(args)
        .env("PORT", port.to_string())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{args:?} did not listen on PORT {port}");
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("{args:?} exited ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// The upload limit the Data page states (`at most N MB`).
fn stated_upload_limit(port: u16, host: &str) -> String {
    let (status, body) = http_get(port, "/data", host);
    assert!(status.contains("200"), "{status}: {body}");
    let at = body
        .find("at most ")
        .unwrap_or_else(|| panic!("no limit on the Data page: {body}"));
    body[at..].split(" MB").next().unwrap().to_string()
}

#[test]
fn upload_limit_flag_overrides_lockgate_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[connections.app]\nurl = \"sqlite://app.db\"\n\n[server]\ndb = \"app\"\nupload_limit_mb = 1\n",
    )
    .unwrap();
    let (mut child, port) = listening(dir.path(), &["serve"]);
    let from_file = stated_upload_limit(port, &format!("127.0.0.1:{port}"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(from_file, "at most 1");

    let (mut child, port) = listening(dir.path(), &["serve", "--upload-limit", "3"]);
    let from_flag = stated_upload_limit(port, &format!("127.0.0.1:{port}"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(from_flag, "at most 3");

    // 0 would refuse every upload: refused before serving, from the flag or the file.
    let out = lockgate()
        .args(["serve", "--upload-limit", "0"])
        .env("PORT", free_port().to_string())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upload limit is 0"), "{err}");
}

#[test]
fn pool_size_out_of_range_is_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "65"] {
        let out = lockgate()
            .args(["serve", "--pool-size", bad])
            .env("PORT", free_port().to_string())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--pool-size {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("pool_size is {bad}")), "{err}");
    }
}

#[test]
fn demo_serves_with_lockgate_toml_server_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        "[server]\nallowed_hosts = [\"lockgate.internal\"]\nupload_limit_mb = 7\n",
    )
    .unwrap();
    let (mut child, port) = listening(dir.path(), &["demo", "--dir", "demo"]);
    // The allowed host is answered (another is not), and the upload limit is the file's.
    let limit = stated_upload_limit(port, "lockgate.internal");
    let (other, _) = http_get(port, "/data", "elsewhere.example");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(limit, "at most 7");
    assert!(other.contains("421"), "{other}");
}

#[test]
fn a_bad_server_setting_stops_serve_and_demo_but_not_other_commands() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("lockgate.toml");
    std::fs::write(
        &toml,
        "[connections.app]\nurl = \"sqlite://app.db\"\n\n[server]\ndb = \"app\"\nmax_connections = 0\n",
    )
    .unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/db");
    // migrate (through the file's connection name) and inspect do not read [server].
    let out = lockgate()
        .args(["migrate", "--db", "app", "--dir"])
        .arg(&examples)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lockgate()
        .args(["inspect", "--db", "app"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // serve and demo do, and refuse to start, naming the file, the line and the key.
    for args in [&["serve"][..], &["demo", "--dir", "demo"]] {
        let out = lockgate()
            .args(args)
            .env("PORT", free_port().to_string())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("lockgate.toml:6: ") && err.contains("[server] max_connections is 0"),
            "{args:?}: {err}"
        );
    }
}
