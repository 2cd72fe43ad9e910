//! Transfers through the binary, as processes on real servers: a run killed with
//! SIGKILL mid-export, a run paused past its lease while another completes the
//! export, SIGTERM to `lockgate worker` (once: it finishes the export in hand; twice:
//! it rolls it back), and two runs started at once.

use super::{lockgate, text};
use lockgate_core::Value;
use lockgate_db::testing::TestDb;
use lockgate_db::{Conn, Engine};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Source rows and rows per batch on an engine: an export of them takes three to four
/// seconds alone (small batches make it slow without a big source), long enough to
/// be caught running.
fn size(engine: Engine) -> (i64, usize) {
    match engine {
        Engine::Postgres => (80_000, 10),
        Engine::Mysql => (120_000, 10),
        Engine::Sqlite => (200_000, 10),
    }
}

/// The longest a process or a wait may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `lockgate` process in the background; its output goes to files, so that it can
/// be read while it runs. Killed if the test ends first.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `lockgate args` in `dir`, its output going to files there.
    pub(crate) fn spawn_in(dir: &std::path::Path, name: &str, args: &[String]) -> Proc {
        let file = |ext: &str| dir.join(format!("{}.{ext}", name.replace(' ', "_")));
        let (stdout, stderr) = (file("stdout"), file("stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_lockgate"))
            .args(args)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the binary starts");
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    pub(crate) fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on a child this test started and has not reaped yet.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            r,
            0,
            "kill({pid}, {sig}): {}\n{}",
            std::io::Error::last_os_error(),
            self.output()
        );
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    pub(crate) fn output(&self) -> String {
        format!(
            "--- {} stdout:\n{}--- {} stderr:\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap_or(None);
        }
        self.status
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {PATIENCE:?}\n{}", self.name, self.output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn both(out: &Output) -> String {
    format!("--- stdout:\n{}--- stderr:\n{}", text(&out.stdout), text(&out.stderr))
}

/// `CREATE TABLE name` for customers; the destination's names are NOT NULL.
fn customers_schema(engine: Engine, table: &str, names_required: bool) -> String {
    let (id, text) = match engine {
        Engine::Sqlite => ("INTEGER", "TEXT"),
        _ => ("bigint", "text"),
    };
    let nn = if names_required { " NOT NULL" } else { "" };
    format!(
        "CREATE TABLE {table} (customer_id {id} PRIMARY KEY, first_name {text}{nn}, last_name {text}{nn}, email {text})"
    )
}

/// Inserts customers 1..=rows in one statement.
fn fill_customers(engine: Engine, rows: i64) -> String {
    match engine {
        Engine::Postgres => format!(
            "INSERT INTO customers SELECT g, 'F' || g, 'L' || g, 'c' || g || '@example.com' \
             FROM generate_series(1, {rows}) g"
        ),
        Engine::Mysql => format!(
            "INSERT INTO customers WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) \
             SELECT n, concat('F', n), concat('L', n), concat('c', n, '@example.com') FROM s"
        ),
        Engine::Sqlite => format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) \
             INSERT INTO customers SELECT n, 'F' || n, 'L' || n, 'c' || n || '@example.com' FROM s"
        ),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Decimal(d) => d.to_string().parse().expect("an integer"),
        Value::Text(s) => s.parse().expect("an integer"),
        other => panic!("not an integer: {other:?}"),
    }
}

/// An export's row in the destination's ledger, read directly (no reaping).
#[derive(Debug)]
struct LedgerRow {
    status: String,
    attempts: i64,
    fence: i64,
    /// Rows the running export's run reports done (its heartbeat's progress).
    progress: i64,
}

/// A source database with customers and a destination database on the same engine
/// with empty customers tables; a folder for the processes.
struct Setup {
    engine: Engine,
    rows: i64,
    batch: usize,
    src: TestDb,
    dst: TestDb,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(engine: Engine, dest_tables: &[&str]) -> Setup {
        let (rows, batch) = size(engine);
        let src = TestDb::new(engine).await;
        let dst = TestDb::new(engine).await;
        let mut c = src.conn().await;
        c.batch(&customers_schema(engine, "customers", false)).await.unwrap();
        if engine == Engine::Mysql {
            c.batch(&format!("SET SESSION max_recursive_iterations = {rows}"))
                .await
                .unwrap();
        }
        c.batch(&fill_customers(engine, rows)).await.unwrap();
        drop(c);
        let mut c = dst.conn().await;
        for t in dest_tables {
            c.batch(&customers_schema(engine, t, true)).await.unwrap();
        }
        Setup {
            engine,
            rows,
            batch,
            src,
            dst,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `head…` then the transfer's flags into `dest_table`, then `tail…`.
    fn args(&self, head: &[&str], dest_table: &str, tail: &[&str]) -> Vec<String> {
        let batch = self.batch.to_string();
        let flags = [
            "--source",
            self.src.url.as_str(),
            "--source-table",
            "customers",
            "--dest",
            self.dst.url.as_str(),
            "--dest-table",
            dest_table,
            "--key",
            "customer_id",
            "--batch-size",
            &batch,
        ];
        head.iter()
            .chain(flags.iter())
            .chain(tail.iter())
            .map(|s| s.to_string())
            .collect()
    }

    fn lockgate(&self, args: &[String]) -> Output {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lockgate(&args, self.dir.path())
    }

    fn spawn(&self, name: &str, args: &[String]) -> Proc {
        Proc::spawn_in(self.dir.path(), name, args)
    }

    /// `transfer create` with flags; returns the new export's id.
    fn create(&self, transfer: &str, dest_table: &str) -> i64 {
        let out = self.lockgate(&self.args(&["transfer", "create", transfer], dest_table, &["--json"]));
        self.created(transfer, &out)
    }

    fn created(&self, transfer: &str, out: &Output) -> i64 {
        assert_eq!(out.status.code(), Some(0), "create {transfer}: {}", both(out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["export"]["rows"].as_i64(), Some(self.rows), "{r:#}");
        assert_eq!(r["export"]["status"], "pending", "{r:#}");
        r["export"]["id"].as_i64().unwrap()
    }

    /// `transfer show ID --json`: the export.
    fn show(&self, id: i64) -> serde_json::Value {
        let id = id.to_string();
        let out = lockgate(
            &["transfer", "show", &id, "--dest", self.dst.url.as_str(), "--json"],
            self.dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "show {id}: {}", both(&out));
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        d["export"].clone()
    }

    /// Export `id` as `transfer list --json` shows it.
    fn listed(&self, id: i64) -> serde_json::Value {
        let out = lockgate(
            &["transfer", "list", "--dest", self.dst.url.as_str(), "--json"],
            self.dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "list: {}", both(&out));
        let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        l.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"].as_i64() == Some(id))
            .unwrap_or_else(|| panic!("export {id} is not listed: {l:#}"))
            .clone()
    }

    async fn ledger(&self, id: i64) -> Result<LedgerRow, String> {
        let mut c = Conn::connect(&self.dst.url).await.map_err(|e| e.to_string())?;
        let rows = c
            .query(
                &format!("SELECT status, attempts, fence FROM lockgate_exports WHERE id = {id}"),
                &[],
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        let r = rows.first().ok_or_else(|| format!("no export {id}"))?;
        let running = c
            .query(
                "SELECT progress_done FROM lockgate_runs WHERE kind = 'transfer' AND status = 'running' \
                 ORDER BY id DESC LIMIT 1",
                &[],
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(LedgerRow {
            progress: running.first().map_or(0, |r| int(&r[0])),
            status: match &r[0] {
                Value::Text(s) => s.clone(),
                v => format!("{v:?}"),
            },
            attempts: int(&r[1]),
            fence: int(&r[2]),
        })
    }

    /// The destination's runs as a reader sees them, newest first.
    async fn runs(&self) -> Vec<lockgate_db::ledger::Run> {
        let mut c = self.dst.conn().await;
        lockgate_db::ledger::read_runs(&mut c, 50)
            .await
            .unwrap()
            .expect("a ledger")
    }

    /// Rows in a destination table, and distinct keys among them.
    async fn count(&self, table: &str) -> (i64, i64) {
        let mut c = self.dst.conn().await;
        let rows = c
            .query(
                &format!("SELECT count(*), count(DISTINCT customer_id) FROM {table}"),
                &[],
                None,
            )
            .await
            .unwrap();
        (int(&rows[0][0]), int(&rows[0][1]))
    }

    /// Waits until the ledger row of export `id` satisfies `ok`, while `p` runs.
    async fn wait_ledger(&self, id: i64, p: &mut Proc, what: &str, ok: impl Fn(&LedgerRow) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::from("nothing yet");
        loop {
            if let Some(s) = p.try_wait() {
                panic!(
                    "{} exited ({s}) before export {id} was {what} (last seen: {last}): \
                     if it completed, the export is too small to be caught running\n{}",
                    p.name,
                    p.output()
                );
            }
            match self.ledger(id).await {
                Ok(r) if ok(&r) => return,
                Ok(r) => last = format!("{r:?}"),
                // SQLite: the running export holds the file; look again.
                Err(e) => last = e,
            }
            assert!(
                Instant::now() < deadline,
                "export {id} was never {what} (last seen: {last})\n{}",
                p.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `p` is in the middle of export `id`: running, with rows written
    /// as the heartbeat reports them in its run (PostgreSQL, MariaDB), or running for a while
    /// (SQLite has no heartbeat, and its writer locks readers out once it spills).
    async fn wait_mid_export(&self, id: i64, p: &mut Proc) {
        match self.engine {
            Engine::Sqlite => {
                self.wait_ledger(id, p, "running", |r| r.status == "running").await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            _ => {
                self.wait_ledger(id, p, "running with rows written", |r| {
                    r.status == "running" && r.progress > 0
                })
                .await
            }
        }
        assert!(
            p.try_wait().is_none(),
            "{} ended before it could be caught mid-export: make the export bigger\n{}",
            p.name,
            p.output()
        );
    }

    /// The destination table holds every source row exactly once.
    async fn assert_all_rows_once(&self, table: &str, why: &str) {
        let (n, distinct) = self.count(table).await;
        assert_eq!(
            (n, distinct),
            (self.rows, self.rows),
            "{table}: rows, distinct keys\n{why}"
        );
    }
}

/// A run killed with SIGKILL mid-export: its transaction is gone, the export is
/// reaped back to pending once its lease runs out, and a new run completes it with
/// every row once.
async fn killed_mid_export(engine: Engine) {
    let started = Instant::now();
    let s = Setup::new(engine, &["customers"]).await;
    let id = s.create("customers", "customers");
    let run = s.args(&["transfer", "run", "customers"], "customers", &["--lease", "2"]);
    let mut a = s.spawn("run A", &run);
    s.wait_mid_export(id, &mut a).await;
    a.signal(libc::SIGKILL);
    let status = a.wait().await;
    let killed = Instant::now();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", a.output());
    if engine == Engine::Sqlite {
        // Killed inside its write transaction: the rollback journal is left behind
        // (hot), for the next connection to roll back.
        let db = s.dst.url.as_str().strip_prefix("sqlite://").unwrap();
        let journal = std::fs::metadata(format!("{db}-journal")).map(|m| m.len());
        assert!(
            journal.as_ref().is_ok_and(|&n| n > 0),
            "no hot journal next to {db} ({journal:?}): the run was not killed mid-export\n{}",
            a.output()
        );
    }

    let (n, _) = s.count("customers").await;
    assert_eq!(n, 0, "the killed run's rows are in the destination\n{}", a.output());
    // Its run never recorded an end: it reads as abandoned, not running.
    let runs = s.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "abandoned", "{runs:?}");
    if engine != Engine::Sqlite {
        // The heartbeat renewed the lease a moment ago: not reaped yet.
        let e = s.listed(id);
        assert_eq!(e["status"], "running", "{e:#}");
    }
    tokio::time::sleep((killed + Duration::from_millis(2500)).saturating_duration_since(Instant::now())).await;
    let e = s.listed(id);
    assert_eq!(e["status"], "pending", "after the lease ran out: {e:#}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("stopped renewing the lease")),
        "{e:#}"
    );

    let out = s.lockgate(&run);
    assert_eq!(out.status.code(), Some(0), "the second run: {}", both(&out));
    assert!(
        text(&out.stdout).contains(&format!("export {id} (customers): completed, {} rows", s.rows)),
        "{}",
        both(&out)
    );
    s.assert_all_rows_once("customers", &both(&out)).await;
    let e = s.show(id);
    assert_eq!(e["status"], "completed", "{e:#}");
    assert_eq!(e["attempts"].as_i64(), Some(2), "{e:#}");
    assert_eq!(e["rows_written"].as_i64(), Some(s.rows), "{e:#}");
    // The second run of the export recorded the first as abandoned in the table too.
    let runs = s.runs().await;
    let stored: Vec<String> = {
        let mut c = s.dst.conn().await;
        c.query("SELECT status FROM lockgate_runs ORDER BY id", &[], None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| match &r[0] {
                Value::Text(t) => t.clone(),
                v => format!("{v:?}"),
            })
            .collect()
    };
    assert_eq!(stored, ["abandoned", "succeeded"], "{runs:?}");
    eprintln!("killed_mid_export({engine}): {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_export_is_taken_up_again_postgres() {
    killed_mid_export(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_export_is_taken_up_again_mariadb() {
    killed_mid_export(Engine::Mysql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_export_is_taken_up_again_sqlite() {
    killed_mid_export(Engine::Sqlite).await;
}

/// Run A is paused (SIGSTOP) past its lease; run B takes the export over and
/// completes it (waiting on A's uncommitted rows until A rolls back); A, resumed,
/// cannot commit and says so.
async fn paused_past_its_lease(engine: Engine) {
    let started = Instant::now();
    let s = Setup::new(engine, &["customers"]).await;
    let id = s.create("customers", "customers");
    let run = s.args(&["transfer", "run", "customers"], "customers", &["--lease", "2"]);
    let mut a = s.spawn("run A", &run);
    s.wait_mid_export(id, &mut a).await;
    a.signal(libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b = s.spawn("run B", &run);
    // B claims the export: a second claim, a new fence.
    s.wait_ledger(id, &mut b, "claimed again", |r| {
        r.status == "running" && (r.fence, r.attempts) == (2, 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.signal(libc::SIGCONT);
    let (sa, sb) = (a.wait().await, b.wait().await);
    let outputs = format!("{}\n{}", a.output(), b.output());

    assert_eq!(sa.code(), Some(1), "A's exit\n{outputs}");
    assert!(
        a.stdout().contains(&format!("export {id} (customers): not finished"))
            && a.output().contains("taken over by another worker"),
        "A says its export was taken over\n{outputs}"
    );
    assert_eq!(sb.code(), Some(0), "B's exit\n{outputs}");
    assert!(
        b.stdout()
            .contains(&format!("export {id} (customers): completed, {} rows", s.rows)),
        "B completed the export\n{outputs}"
    );
    s.assert_all_rows_once("customers", &outputs).await;
    let e = s.show(id);
    assert_eq!(e["status"], "completed", "{e:#}\n{outputs}");
    assert_eq!(
        (e["attempts"].as_i64(), e["fence"].as_i64()),
        (Some(2), Some(2)),
        "two claims: {e:#}\n{outputs}"
    );
    assert_eq!(e["rows_written"].as_i64(), Some(s.rows), "{e:#}");
    eprintln!(
        "paused_past_its_lease({engine}): {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_paused_past_its_lease_cannot_commit_after_a_takeover_postgres() {
    paused_past_its_lease(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_paused_past_its_lease_cannot_commit_after_a_takeover_mariadb() {
    paused_past_its_lease(Engine::Mysql).await;
}

/// Every row of `table` in `db`, in key order.
async fn all_rows(db: &TestDb, table: &str) -> Vec<Vec<Value>> {
    let mut c = db.conn().await;
    c.query(
        &format!("SELECT customer_id, first_name, last_name, email FROM {table} ORDER BY customer_id"),
        &[],
        None,
    )
    .await
    .unwrap()
}

/// The export's ledger row as `transfer show` would not change it: status, fence,
/// attempts, rows written, error count.
async fn export_state(s: &Setup, id: i64) -> Vec<Value> {
    let mut c = s.dst.conn().await;
    let rows = c
        .query(
            &format!(
                "SELECT status, fence, attempts, rows_written, error_count, ended_at FROM lockgate_exports WHERE id = {id}"
            ),
            &[],
            None,
        )
        .await
        .unwrap();
    rows.into_iter().next().expect("the export")
}

/// Run A is stopped (SIGSTOP) mid-export and stays stopped, holding its uncommitted
/// rows. Run B, started once A's lease ran out, takes the export over and completes it
/// within about a lease and a bounded wait: A cannot block it (on PostgreSQL a COPY
/// in progress is not "idle in transaction", so no server timeout ever ends A's
/// session). Then A, resumed, fails at its fence: exit 1, and nothing changes.
///
/// In a key mode (`upsert`) A also holds the destination table's lock, which B needs
/// before it writes: the lock is held by A's data session, so ending that session
/// frees it too (B waits for it up to its `--lock-timeout`, 10 s, and would fail
/// with "job table:customers is locked" otherwise).
async fn stopped_for_good(engine: Engine, mode: &str) {
    let started = Instant::now();
    let s = Setup::new(engine, &["customers"]).await;
    let create = s.args(
        &["transfer", "create", "customers"],
        "customers",
        &["--json", "--mode", mode],
    );
    let id = s.created("customers", &s.lockgate(&create));
    let lease = Duration::from_secs(3);
    let run = s.args(
        &["transfer", "run", "customers"],
        "customers",
        &["--lease", "3", "--mode", mode, "--lock-timeout", "10s"],
    );
    let mut a = s.spawn("run A", &run);
    s.wait_mid_export(id, &mut a).await;
    a.signal(libc::SIGSTOP);
    // Past A's lease (renewed at most a third of it before the stop).
    tokio::time::sleep(lease + Duration::from_millis(1500)).await;
    let b_started = Instant::now();
    let mut b = s.spawn("run B", &run);
    let sb = b.wait().await;
    let b_took = b_started.elapsed();
    assert_eq!(sb.code(), Some(0), "B's exit\n{}\n{}", b.output(), a.output());
    assert!(
        b.stdout()
            .contains(&format!("export {id} (customers): completed, {} rows", s.rows)),
        "B completed the export\n{}",
        b.output()
    );
    // B's own export takes a few seconds; waiting on A would take forever.
    assert!(
        b_took < lease + Duration::from_secs(25),
        "B took {b_took:?} with A stopped\n{}",
        b.output()
    );
    let source = all_rows(&s.src, "customers").await;
    assert_eq!(source.len() as i64, s.rows);
    let written = all_rows(&s.dst, "customers").await;
    assert!(
        written == source,
        "the destination's rows are not the source's ({} rows)",
        written.len()
    );
    let state = export_state(&s, id).await;
    assert_eq!(
        (&state[0], int(&state[1]), int(&state[2]), int(&state[3])),
        (&Value::Text("completed".into()), 2, 2, s.rows),
        "{state:?}"
    );

    // A wakes up: its claim is gone, its session too; it commits nothing.
    a.signal(libc::SIGCONT);
    let sa = a.wait().await;
    let outputs = format!("{}\n{}", a.output(), b.output());
    assert_eq!(sa.code(), Some(1), "A's exit\n{outputs}");
    assert!(
        a.stdout().contains(&format!("export {id} (customers): not finished"))
            && a.output().contains("taken over by another worker"),
        "A says its export was taken over\n{outputs}"
    );
    assert!(
        all_rows(&s.dst, "customers").await == source,
        "A's resumption changed the rows\n{outputs}"
    );
    assert_eq!(
        export_state(&s, id).await,
        state,
        "A's resumption changed the export\n{outputs}"
    );
    eprintln!(
        "stopped_for_good({engine}, {mode}): B took {:.1} s; {:.1} s in all",
        b_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_cannot_block_the_run_that_took_over_postgres() {
    stopped_for_good(Engine::Postgres, "insert").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_cannot_block_the_run_that_took_over_mariadb() {
    stopped_for_good(Engine::Mysql, "insert").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_cannot_block_the_run_that_took_over_in_a_key_mode_postgres() {
    stopped_for_good(Engine::Postgres, "upsert").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_cannot_block_the_run_that_took_over_in_a_key_mode_mariadb() {
    stopped_for_good(Engine::Mysql, "upsert").await;
}

const STOPPING: &str = "stopping after the export in hand";

/// A PostgreSQL pair, one pending export of `customers`, and a worker in the middle
/// of writing it.
async fn worker_mid_export() -> (Setup, i64, Proc) {
    let s = Setup::new(Engine::Postgres, &["customers"]).await;
    let id = s.create("customers", "customers");
    let mut w = s.spawn(
        "worker",
        &s.args(
            &["worker", "customers"],
            "customers",
            &["--poll", "0.2", "--lease", "6"],
        ),
    );
    s.wait_mid_export(id, &mut w).await;
    (s, id, w)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_worker_finish_the_export_in_hand() {
    let started = Instant::now();
    let (s, id, mut w) = worker_mid_export().await;
    w.signal(libc::SIGTERM);
    let status = w.wait().await;
    assert_eq!(status.code(), Some(0), "{}", w.output());
    let err = w.stderr();
    assert!(
        err.contains(STOPPING) && err.contains(&format!("export {id}: completed")),
        "{}",
        w.output()
    );
    s.assert_all_rows_once("customers", &w.output()).await;
    let e = s.show(id);
    assert_eq!(e["status"], "completed", "{e:#}");
    assert_eq!(e["attempts"].as_i64(), Some(1), "{e:#}");
    eprintln!("sigterm once: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_rolls_the_export_back_to_pending() {
    let started = Instant::now();
    let (s, id, mut w) = worker_mid_export().await;
    w.signal(libc::SIGTERM);
    // Two signals close together may be seen as one: the second once the first is
    // acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.stderr().contains(STOPPING) {
        assert!(
            Instant::now() < deadline && w.try_wait().is_none(),
            "the worker did not acknowledge SIGTERM\n{}",
            w.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.signal(libc::SIGTERM);
    let second = Instant::now();
    let status = w.wait().await;
    let took = second.elapsed();
    assert_eq!(status.code(), Some(0), "{}", w.output());
    assert!(
        took < Duration::from_secs(3),
        "the worker took {took:?} to stop after the second SIGTERM\n{}",
        w.output()
    );

    let (n, _) = s.count("customers").await;
    assert_eq!(
        n,
        0,
        "the rolled-back export's rows are in the destination\n{}",
        w.output()
    );
    let row = s.ledger(id).await.unwrap();
    assert_eq!(row.status, "pending", "{row:?}\n{}", w.output());
    let e = s.show(id);
    assert_eq!(e["status"], "pending", "{e:#}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("the worker was stopped")),
        "{e:#}"
    );
    assert!(w.stderr().contains("1 interrupted"), "{}", w.output());

    let out = s.lockgate(&s.args(&["transfer", "run", "customers"], "customers", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    s.assert_all_rows_once("customers", &both(&out)).await;
    let e = s.show(id);
    assert_eq!(e["status"], "completed", "{e:#}");
    assert_eq!(e["attempts"].as_i64(), Some(2), "{e:#}");
    eprintln!(
        "sigterm twice: stopped {:.2} s after the second signal; {:.1} s",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_complete_each_export_once() {
    let started = Instant::now();
    let s = Setup::new(Engine::Postgres, &["customers", "customers_copy"]).await;
    // Two transfers into one destination, from lockgate.toml: each run works for both.
    let transfer = |name: &str, table: &str| {
        format!(
            "[transfers.{name}]\nsource = \"{}\"\nsource_table = \"customers\"\ndest = \"{}\"\n\
             dest_table = \"{table}\"\nkey = [\"customer_id\"]\nbatch_size = {}\n\n",
            s.src.url.as_str(),
            s.dst.url.as_str(),
            s.batch
        )
    };
    std::fs::write(
        s.dir.path().join("lockgate.toml"),
        transfer("a", "customers") + &transfer("b", "customers_copy"),
    )
    .unwrap();
    let create = |name: &str| {
        let out = s.lockgate(&["transfer", "create", name, "--json"].map(String::from));
        s.created(name, &out)
    };
    let ids = [create("a"), create("b")];

    let run = ["transfer", "run", "--json"].map(String::from);
    let mut p1 = s.spawn("run 1", &run);
    let mut p2 = s.spawn("run 2", &run);
    let (s1, s2) = (p1.wait().await, p2.wait().await);
    let outputs = format!("{}\n{}", p1.output(), p2.output());
    assert_eq!((s1.code(), s2.code()), (Some(0), Some(0)), "{outputs}");

    let mut ran: Vec<(i64, String)> = Vec::new();
    for p in [&p1, &p2] {
        let r: serde_json::Value = serde_json::from_str(&p.stdout()).unwrap_or_else(|e| panic!("{e}\n{outputs}"));
        for o in r["exports"].as_array().unwrap() {
            assert!(o["note"].is_null(), "{o:#}\n{outputs}");
            ran.push((
                o["export"]["id"].as_i64().unwrap(),
                o["export"]["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    ran.sort();
    assert_eq!(
        ran,
        ids.iter().map(|&id| (id, "completed".to_string())).collect::<Vec<_>>(),
        "each export ran once, in one of the runs\n{outputs}"
    );
    for (id, table) in ids.iter().zip(["customers", "customers_copy"]) {
        let e = s.show(*id);
        assert_eq!(e["status"], "completed", "{e:#}");
        assert_eq!(
            (e["attempts"].as_i64(), e["fence"].as_i64()),
            (Some(1), Some(1)),
            "{e:#}"
        );
        s.assert_all_rows_once(table, &outputs).await;
    }
    let each: Vec<usize> = [&p1, &p2]
        .iter()
        .map(|p| p.stdout().matches("\"status\": \"completed\"").count())
        .collect();
    eprintln!(
        "two runs at once: exports per run {each:?}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs the binary in `dir`; returns (exit code, stdout, stderr).
fn run_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = lockgate(args, dir);
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn bad_transfer_input_is_exit_2_with_what_to_do_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = run_in(d, &["demo", "--dir", "demo", "--no-serve"]);
    assert_eq!(code, 0, "{err}");
    let cfg = "demo/lockgate.toml";
    let cases: &[(&[&str], &str)] = &[
        (&["transfer", "run"], "no transfer named and none in lockgate.toml"),
        (
            &["--config", cfg, "transfer", "create", "nope"],
            "transfer \"nope\" has no source",
        ),
        (
            &["--config", cfg, "transfer", "create", "customers", "--map", "FirstName"],
            "--map \"FirstName\" has no '='",
        ),
        (
            &[
                "--config",
                cfg,
                "transfer",
                "create",
                "customers",
                "--map",
                "Nickname='x'",
            ],
            "--map names column \"Nickname\", which table customers does not have",
        ),
        (
            &[
                "--config",
                cfg,
                "transfer",
                "create",
                "customers",
                "--dest-table",
                "lockgate_exports",
            ],
            "is Lockgate's own ledger",
        ),
        (
            &["--config", cfg, "transfer", "create", "customers", "--batch-size", "0"],
            "batch size 0 is out of range",
        ),
        (&["--config", cfg, "transfer", "show", "999"], "there is no export 999"),
        (
            &["--config", cfg, "transfer", "run", "--lease=0"],
            "--lease must be at least 1s, not 0s",
        ),
        (
            &["demo", "--dir", "demo", "generate", "0"],
            "give a number from 1 to 500",
        ),
        (
            &["demo", "--dir", "demo", "generate", "501"],
            "give a number from 1 to 500",
        ),
        (&["demo", "--dir", "elsewhere", "generate", "5"], "has no demo"),
    ];
    for (args, expect) in cases {
        let (code, out, err) = run_in(d, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.lines().count() <= 2,
            "{args:?}: {err}"
        );
    }
    // A lockgate.toml with a misspelt transfer key names the file and line.
    std::fs::write(
        d.join("bad.toml"),
        "[transfers.x]\nsource = \"a.db\"\nsoruce_table = \"t\"\n",
    )
    .unwrap();
    let (code, _, err) = run_in(d, &["--config", "bad.toml", "transfer", "run"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:3") && err.contains("soruce_table"), "{err}");
    // So does a misspelt merge key.
    std::fs::write(
        d.join("bad.toml"),
        "[merges.customers]\ndb = \"accounts\"\ntabel = \"customers\"\n",
    )
    .unwrap();
    let (code, _, err) = run_in(d, &["--config", "bad.toml", "transfer", "run"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:3") && err.contains("tabel"), "{err}");
    // Nothing above created an export.
    let (_, out, _) = run_in(d, &["--config", cfg, "transfer", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 7);
}

#[test]
fn the_demo_walkthrough_reads_well() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = run_in(d, &["demo", "--dir", "demo", "--no-serve"]);
    assert_eq!(code, 0, "{err}");
    let root = d.canonicalize().unwrap().display().to_string();
    // Times and paths vary: keep the shape.
    // Paths vary in length, and the comments after commands are aligned to them.
    let clean = |s: &str| {
        mask_times(&s.replace(&root, "$TMP"))
            .lines()
            .map(|l| match l.split_once("  #") {
                Some((cmd, what)) => format!("{}  #{what}\n", cmd.trim_end()),
                None => format!("{l}\n"),
            })
            .collect::<String>()
    };
    insta::assert_snapshot!("demo", clean(&out));
    let cfg = "demo/lockgate.toml";
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "show", "3"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("demo_show_failed", clean(&out));
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "history", "--key", "434"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("demo_history", clean(&out));
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "create", "customers"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("demo_create", clean(&out));
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "create", "customers"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("demo_create_nothing", clean(&out));
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "run"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("export 8 (customers): completed, 229 rows written in "),
        "{out}"
    );
    // The seed's way to fail an export: a NULL FirstName in the source.
    let (code, _, _) = run_in(d, &["demo", "--dir", "demo", "generate", "10"]);
    assert_eq!(code, 0);
    let src = format!("{root}/demo/source.db");
    let (code, _, err) = run_in(
        d,
        &[
            "exec",
            "--db",
            &src,
            "--sql",
            "UPDATE customers SET FirstName = NULL WHERE CustomerID = 1340",
        ],
    );
    assert_eq!(code, 0, "{err}");
    run_in(d, &["--config", cfg, "transfer", "create", "customers"]);
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "run"]);
    assert_eq!(code, 3, "{out}");
    insta::assert_snapshot!("demo_run_failed", clean(&out));
}

/// `transfer create --on-error skip`: the export records the policy; a plain `run`
/// keeps the good rows, lists the failing ones, exits 0; fixed, a new export takes
/// only them.
#[test]
fn an_export_created_with_on_error_skip_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = run_in(d, &["demo", "--dir", "demo", "--no-serve"]);
    assert_eq!(code, 0, "{err}");
    let cfg = "demo/lockgate.toml";
    let src = format!("{}/demo/source.db", d.display());
    let null = |id: &str| {
        let sql = format!("UPDATE customers SET FirstName = NULL WHERE CustomerID = {id}");
        let (code, _, err) = run_in(d, &["exec", "--db", &src, "--sql", &sql]);
        assert_eq!(code, 0, "{err}");
    };
    // The demo leaves 229 customers to export; two of them cannot go.
    null("1200");
    null("1250");
    let (code, out, err) = run_in(
        d,
        &[
            "--config",
            cfg,
            "transfer",
            "create",
            "customers",
            "--on-error",
            "skip",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["export"]["rows"], 229, "{created:#}");
    let (code, out, err) = run_in(d, &["--config", cfg, "transfer", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("completed, 227 rows written") && out.contains("2 failing rows skipped"),
        "{out}"
    );
    assert!(
        out.contains("key 1200: FirstName:") && out.contains("key 1250: FirstName:"),
        "{out}"
    );
    let (code, _, err) = run_in(
        d,
        &[
            "exec",
            "--db",
            &src,
            "--sql",
            "UPDATE customers SET FirstName = 'Fixed' WHERE FirstName IS NULL AND CustomerID > 1100",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run_in(d, &["--config", cfg, "transfer", "create", "customers", "--json"]);
    assert_eq!(code, 0, "{out}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["export"]["rows"], 2, "{created:#}");
}

/// Replaces timestamps (`2026-11-24 12:19:41.771167+00:00`) with `<time>`.
fn mask_times(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if rest.len() >= 19 && rest.is_char_boundary(19) && is_timestamp(&rest[..19]) {
            let tail = rest[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
            let tail = tail.strip_prefix("+00:00").unwrap_or(tail);
            out.push_str("<time>");
            rest = tail;
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(k, c)| match k {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Four workers (two processes, `--concurrency 2` each) against one PostgreSQL
/// destination ledger, forty small exports: every export completed exactly once
/// (one attempt, one fence), every row once.
#[tokio::test(flavor = "multi_thread")]
async fn four_workers_complete_forty_exports_each_once() {
    let src = TestDb::new(Engine::Postgres).await;
    let dst = TestDb::new(Engine::Postgres).await;
    let mut sc = src.conn().await;
    sc.batch("CREATE TABLE items (id INT PRIMARY KEY, note TEXT NOT NULL)")
        .await
        .unwrap();
    let mut dc = dst.conn().await;
    dc.batch("CREATE TABLE items (id INT PRIMARY KEY, note TEXT NOT NULL)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockgate.toml"),
        format!(
            "[transfers.items]\nsource = \"{}\"\nsource_table = \"items\"\ndest = \"{}\"\ndest_table = \"items\"\n\
             key = [\"id\"]\n",
            src.url.as_str(),
            dst.url.as_str()
        ),
    )
    .unwrap();
    for i in 0..40 {
        let values: Vec<String> = (1..=25)
            .map(|j| format!("({}, 'n{}')", i * 25 + j, i * 25 + j))
            .collect();
        sc.batch(&format!("INSERT INTO items VALUES {}", values.join(", ")))
            .await
            .unwrap();
        let out = lockgate(&["transfer", "create", "items", "--json"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["export"]["rows"], 25, "{r:#}");
    }
    let args: Vec<String> = ["worker", "items", "--concurrency", "2", "--poll", "100ms", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut p1 = Proc::spawn_in(dir.path(), "worker 1", &args);
    let mut p2 = Proc::spawn_in(dir.path(), "worker 2", &args);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done = dc
            .query(
                "SELECT COUNT(*) FROM lockgate_exports WHERE status = 'completed'",
                &[],
                None,
            )
            .await
            .unwrap();
        if done[0][0].to_string() == "40" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every export completed\n{}\n{}",
            p1.output(),
            p2.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p1.signal(libc::SIGTERM);
    p2.signal(libc::SIGTERM);
    let (s1, s2) = (p1.wait().await, p2.wait().await);
    let outputs = format!("{}\n{}", p1.output(), p2.output());
    assert!(s1.success() && s2.success(), "{outputs}");
    let each = dc
        .query(
            "SELECT id, status, attempts, fence FROM lockgate_exports ORDER BY id",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(each.len(), 40, "{outputs}");
    for r in &each {
        assert_eq!(
            (r[1].to_string(), r[2].to_string(), r[3].to_string()),
            ("completed".to_string(), "1".to_string(), "1".to_string()),
            "export {}: ran more than once or not at all\n{outputs}",
            r[0]
        );
    }
    let rows = dc
        .query("SELECT COUNT(*), COUNT(DISTINCT id) FROM items", &[], None)
        .await
        .unwrap();
    assert_eq!(
        (rows[0][0].to_string(), rows[0][1].to_string()),
        ("1000".into(), "1000".into())
    );
    // The work was shared: more than one worker completed exports.
    let holders = dc
        .query(
            "SELECT DISTINCT holder FROM lockgate_runs WHERE holder LIKE 'lockgate worker%'",
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(holders.len() >= 2, "one worker did everything: {holders:?}\n{outputs}");
}
