//! Process scripts of a version: `.js` (node; a file that exports a function is
//! called through a shim with the context and a callback, as oe-migration did),
//! `.py` (python3), `.sh` (sh) or any executable. Each gets the database URL,
//! version and module in its environment and the context JSON on stdin, runs in
//! the version folder, and must exit 0 within the timeout.

use lockgate_bundle::ScriptKind;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Calls an oe-migration style script: `module.exports = function (opts, cb)`.
/// A script that exports no function has already run when it was required. The
/// interval keeps node alive until the callback comes, so a script that never calls
/// back waits for the timeout instead of exiting quietly.
const NODE_SHIM: &str = r#"
const file = process.argv[process.argv.length - 1];
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const ctx = input.trim() ? JSON.parse(input) : {};
  const f = require(file);
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

/// Runs one script. The error says what failed and what to do.
pub(crate) async fn run(
    path: &Path,
    kind: ScriptKind,
    dir: &Path,
    env: &[(&str, String)],
    context: &serde_json::Value,
    timeout: Duration,
) -> Result<ScriptOutcome, String> {
    let shown = path.display();
    let mut cmd = match kind {
        ScriptKind::Node => {
            let mut c = tokio::process::Command::new("node");
            c.arg("-e").arg(NODE_SHIM).arg(path);
            c
        }
        ScriptKind::Python => {
            let mut c = tokio::process::Command::new("python3");
            c.arg(path);
            c
        }
        ScriptKind::Shell => {
            let mut c = tokio::process::Command::new("sh");
            c.arg(path);
            c
        }
        _ => tokio::process::Command::new(path),
    };
    cmd.current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let program = match kind {
            ScriptKind::Node => "node",
            ScriptKind::Python => "python3",
            ScriptKind::Shell => "sh",
            _ => "the script itself",
        };
        format!("script {shown} could not start ({program}: {e}): install {program} or make the script executable")
    })?;
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
