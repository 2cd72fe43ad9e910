//! Process scripts of a version: which files are process scripts, how each runs, and
//! running one. `.js`/`.cjs`/`.mjs` run under node (a file that exports a function is
//! called through a shim with the context and a callback, as oe-migration did; `.mjs`
//! is imported as an ES module), `.py` under python3, `.sh` under sh, anything else as
//! an executable ([`ScriptKind::of_file`] is the one rule). Each runs in its version
//! folder, with absolute paths, the context JSON on stdin, and a scrubbed environment:
//! none of Lockgate's own variables (the server's `LOCKGATE_TOKEN`), no
//! `DATABASE_URL`, no inherited engine credentials, no `OLDPWD` (the folder the
//! command started in, where its lockgate.toml may be); the database URL without its
//! password, and the password only in the engine's own variable. Before the first
//! script starts, the process makes itself non-dumpable, so that a script running as
//! the same user cannot read the command's own environment through
//! `/proc/<pid>/environ`. Each script starts in a process group of its own, and the
//! whole group is killed when it does not exit 0 within the timeout (its background
//! children too).

use lockgate_bundle::ScriptKind;
use lockgate_db::{DbUrl, Engine};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Calls an oe-migration style script: `module.exports = function (opts, cb)` (or
/// `export default function (opts, cb)` in an `.mjs` module). A script that exports no
/// function has already run when it was loaded. The
/// interval keeps node alive until the callback comes, so a script that never calls
/// back waits for the timeout instead of exiting quietly.
const NODE_SHIM: &str = r#"
const file = process.argv[process.argv.length - 1];
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const ctx = input.trim() ? JSON.parse(input) : {};
  let f;
  if (file.toLowerCase().endsWith('.mjs')) {
    // An ES module cannot be required (Node 20): import it; its default export is the function.
    try {
      const m = await import(require('url').pathToFileURL(file).href);
      f = m.default;
    } catch (e) {
      if (e && e.stack) console.error(e.stack);
      console.error(String((e && e.message) || e));
      process.exit(1);
    }
  } else {
    f = require(file);
  }
  if (typeof f !== 'function') { process.exit(0); }
  const keepAlive = setInterval(() => {}, 1 << 30);
  let called = false;
  const cb = (err) => {
    if (called) return;
    called = true;
    clearInterval(keepAlive);
    if (err) {
      // The stack first, the message last: the last line is what the run reports.
      if (err && err.stack) console.error(err.stack);
      console.error(String((err && err.message) || err));
      process.exit(1);
    }
    process.exit(0);
  };
  try {
    const r = f(ctx, cb);
    if (r && typeof r.then === 'function') { r.then(() => {}, cb); }
  } catch (e) { cb(e); }
});
"#;

/// What a script run produced.
pub(crate) struct ScriptOutcome {
    /// The end of its standard output and error, for the log.
    pub output: String,
}

/// Keeps the last `max` bytes of a script's output (on a character boundary).
fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return text.trim_end().to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", text[start..].trim_end())
}

/// Variables a script never inherits: Lockgate's own (`LOCKGATE_TOKEN` and whatever
/// else of the server's is named so), the URL the command itself may have read its
/// database from, and engine credentials meant for the server.
/// `OLDPWD` and `PWD` name the command's own working folder (where lockgate.toml,
/// with its passwords, usually is): `PWD` is set to the version folder instead.
fn inherited(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    !(upper.starts_with("LOCKGATE_")
        || matches!(
            upper.as_str(),
            "DATABASE_URL" | "PGPASSWORD" | "MYSQL_PWD" | "OLDPWD" | "PWD"
        ))
}

/// Kills a script's process group (the script and whatever it started in the
/// background) when dropped: after a timeout, or when the run is cancelled.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal; a group that no longer exists is ESRCH.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

/// A process script's environment: the command's own, scrubbed (see [`inherited`]),
/// plus `LOCKGATE_DATABASE_URL` (without its password; an SQLite path made absolute),
/// `LOCKGATE_VERSION`, `LOCKGATE_MODULE`, and the password, when the URL has one, in
/// the engine's own variable: `PGPASSWORD` (PostgreSQL) or `MYSQL_PWD` (MariaDB/MySQL),
/// which their clients and drivers read.
pub(crate) fn environment(url: &DbUrl, version: &str, module: &str) -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(inherited))
        .collect();
    let (shown, password) = url.split_password();
    let shown = match url.engine {
        Engine::Sqlite => match std::path::absolute(url.sqlite_path()) {
            Ok(abs) => format!("sqlite://{}", abs.display()),
            Err(_) => shown,
        },
        _ => shown,
    };
    let mut set = |k: &str, v: String| vars.push((k.into(), v.into()));
    set("LOCKGATE_DATABASE_URL", shown);
    set("LOCKGATE_VERSION", version.to_string());
    set("LOCKGATE_MODULE", module.to_string());
    if let Some(pw) = password {
        match url.engine {
            Engine::Postgres => set("PGPASSWORD", pw),
            Engine::Mysql => set("MYSQL_PWD", pw),
            Engine::Sqlite => {}
        }
    }
    vars
}

/// A path made absolute once, against the command's working folder: a script starts
/// inside its version folder, where a relative path would no longer lead to it.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("script {}: {e}", path.display()))
}

/// Runs one script. The error says what failed and what to do.
pub(crate) async fn run(
    path: &Path,
    kind: ScriptKind,
    dir: &Path,
    env: &[(OsString, OsString)],
    context: &serde_json::Value,
    timeout: Duration,
) -> Result<ScriptOutcome, String> {
    let shown = path.display();
    let path = absolute(path)?;
    let dir = absolute(dir)?;
    let mut cmd = match kind {
        ScriptKind::Node => {
            let mut c = tokio::process::Command::new("node");
            c.arg("-e").arg(NODE_SHIM).arg(&path);
            c
        }
        ScriptKind::Python => {
            let mut c = tokio::process::Command::new("python3");
            c.arg(&path);
            c
        }
        ScriptKind::Shell => {
            let mut c = tokio::process::Command::new("sh");
            c.arg(&path);
            c
        }
        _ => tokio::process::Command::new(&path),
    };
    crate::harden_process();
    #[cfg(unix)]
    cmd.process_group(0);
    cmd.current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PWD", &dir);
    let mut child = cmd.spawn().map_err(|e| {
        let program = match kind {
            ScriptKind::Node => "node",
            ScriptKind::Python => "python3",
            ScriptKind::Shell => "sh",
            _ => "the script itself",
        };
        format!("script {shown} could not start ({program}: {e}): install {program} or make the script executable")
    })?;
    // Its process group is its pid (process_group(0)); killed on timeout or cancel.
    let mut group = Group(child.id());
    let mut stdin = child.stdin.take();
    let input = context.to_string();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let io = async {
        if let Some(mut s) = stdin.take() {
            // A script that does not read its stdin closes it early: not an error.
            let _ = s.write_all(input.as_bytes()).await;
            drop(s);
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(timeout, io).await {
        Err(_) => Err(format!(
            "script {shown} did not finish within {} s and was stopped{}: make it finish (an oe-style JS script must call its callback) or raise --script-timeout",
            timeout.as_secs(),
            if kind == ScriptKind::Node { " (did it call its callback?)" } else { "" }
        )),
        Ok((status, out, err)) => {
            // It ended in time: what it left running in the background is its own.
            group.0 = None;
            let status = status.map_err(|e| format!("script {shown}: {e}"))?;
            let mut output = tail(&out, 4000);
            let err_text = tail(&err, 4000);
            if !err_text.is_empty() {
                if !output.is_empty() {
                    output.push('\n');
                }
                output.push_str(&err_text);
            }
            if status.success() {
                Ok(ScriptOutcome { output })
            } else {
                let code = status
                    .code()
                    .map_or_else(|| "was killed by a signal".to_string(), |c| format!("exited with {c}"));
                Err(format!(
                    "script {shown} {code}{}: fix the script and run migrate again",
                    if err_text.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", err_text.lines().last().unwrap_or_default())
                    }
                ))
            }
        }
    }
}

/// Every process script a bundle holds, as paths relative to its root (sorted, each
/// once): the scripts its versions' meta.json would run (`scripts.before`/`after` and
/// enabled `files` entries that are scripts, other than `.sql`), and any file under the
/// root that looks like one (a `.js`, `.mjs`, `.cjs`, `.py` or `.sh` name, or an
/// executable file), named or not. A server refuses an upload holding any.
///
/// When it holds none, its `.sql` files are read too: one with a statement that
/// reaches outside the database (see [`sql_outside_in`]) is an error naming the file,
/// the statement's line and the construct, since a bundle that may not run process
/// scripts may not run programs or read files through the database server either.
pub fn process_scripts(base: &lockgate_bundle::BaseDir) -> Result<Vec<String>, lockgate_bundle::BundleError> {
    let scripts = scripts_in(base, &base.root)?;
    if scripts.is_empty() {
        if let Some(e) = sql_outside_in(&base.root, &base.root)? {
            return Err(e);
        }
    }
    Ok(scripts)
}

/// The first `.sql` file under `dir` (sorted walk) with a statement that reaches
/// outside the database ([`lockgate_db::sqltext::outside_the_database`]), as the error
/// that refuses it: the file named relative to `top`, the statement's line, the
/// construct, and what to do.
pub(crate) fn sql_outside_in(
    top: &Path,
    dir: &Path,
) -> Result<Option<lockgate_bundle::BundleError>, lockgate_bundle::BundleError> {
    use lockgate_bundle::BundleError;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BundleError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| BundleError::io(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| BundleError::io(&path, e))?;
        if meta.is_dir() {
            if let Some(e) = sql_outside_in(top, &path)? {
                return Ok(Some(e));
            }
            continue;
        }
        let is_sql = path
            .extension()
            .is_some_and(|x| x.to_string_lossy().eq_ignore_ascii_case("sql"));
        if !meta.is_file() || !is_sql {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| BundleError::io(&path, e))?;
        let sql = String::from_utf8_lossy(&bytes);
        if let Some(o) = lockgate_db::sqltext::outside_the_database(&sql) {
            return Ok(Some(BundleError::Invalid {
                path: path.strip_prefix(top).unwrap_or(&path).to_path_buf(),
                line: Some(o.statement.line as u64),
                column: None,
                message: format!(
                    "statement {} uses {}: a .sql script may not reach outside the database where process scripts \
                     are not allowed (an upload, unless the server has upload_scripts = true); remove it",
                    o.statement.number, o.construct
                ),
            }));
        }
    }
    Ok(None)
}

/// [`process_scripts`], walking `top` (the root or a folder above it) and naming each
/// script relative to it.
pub(crate) fn scripts_in(
    base: &lockgate_bundle::BaseDir,
    top: &Path,
) -> Result<Vec<String>, lockgate_bundle::BundleError> {
    use lockgate_bundle::BundleError;
    let rel = |p: &Path| {
        p.strip_prefix(top)
            .unwrap_or(p)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut found = std::collections::BTreeSet::new();
    for v in &base.versions {
        let m = v.manifest()?;
        let named = m
            .scripts
            .before
            .iter()
            .chain(&m.scripts.after)
            .map(|s| (s.as_str(), ScriptKind::of_file(s)))
            .chain(m.files.iter().filter(|f| f.enabled).filter_map(|f| match f.kind() {
                lockgate_bundle::EntryKind::Script(kind) => Some((f.file.as_str(), kind)),
                lockgate_bundle::EntryKind::Data(_) => None,
            }));
        for (file, kind) in named {
            if kind != ScriptKind::Sql {
                found.insert(rel(&v.path.join(file)));
            }
        }
    }
    let mut stack = vec![top.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| BundleError::io(&dir, e))? {
            let path = entry.map_err(|e| BundleError::io(&dir, e))?.path();
            // Links are not followed: what they point at is outside the bundle (and a
            // zip holds none).
            let meta = std::fs::symlink_metadata(&path).map_err(|e| BundleError::io(&path, e))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && looks_like_a_script(&path, &meta) {
                found.insert(rel(&path));
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// A file a process could run: a script extension other than `.sql`, or an executable.
fn looks_like_a_script(path: &Path, meta: &std::fs::Metadata) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let by_name = !matches!(ScriptKind::of_file(&name), ScriptKind::Sql | ScriptKind::Executable);
    #[cfg(unix)]
    let executable = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    };
    #[cfg(not(unix))]
    let executable = {
        let _ = meta;
        false
    };
    by_name || executable
}
