//! Pooled database connections for the server's own reads: the table list, a table's
//! pages and counts, the connection check, the ledger's runs, the modules and the
//! migration log. One pool per connection name, of at most `pool_size` connections
//! (`[server] pool_size`, `--pool-size`; 4 by default), so that a page no longer pays
//! for a new session (TCP, authentication, the session's settings) on every request.
//!
//! What keeps a pooled connection safe to hand to the next request:
//! - It is opened as browsing opened one before ([`Database::connect`]): an SQLite file
//!   that does not exist is an error, never created.
//! - A request that stops while its read runs (the browser went away, the request
//!   timed out, the server stopped) takes its connection out of the pool at once and
//!   cancels the query on the server (PostgreSQL's cancel request, MariaDB's `KILL
//!   QUERY`, SQLite's interrupt; see `Canceller::cancel`) before closing it: the query
//!   would otherwise run on for nobody, or leave its result unread for the next
//!   request to wait behind. The reads themselves run in autocommit and change no
//!   session setting ([`Database`]), so one that ended leaves no transaction behind
//!   (nor an SQLite read snapshot, which would hold back WAL checkpoints) and nothing
//!   for the next request to inherit. None of them sets a statement timeout either
//!   (`timeout.rs` holds the HTTP request timeouts, which are no session state).
//! - A connection idle (since its last read ended) for longer than
//!   [`PoolTimes::max_idle`] (5 minutes, `[server] pool_idle`) or open for longer than
//!   [`PoolTimes::max_lifetime`] (30 minutes, `pool_lifetime`) is closed: by a task
//!   that looks over each pool's idle connections every fifth of the shorter time (at
//!   most every 30 s), and again when one is taken. An idle one may have been dropped
//!   by a firewall without a word (a query on it would hang), and none should hold a
//!   database session for longer than the traffic needs. The lifetime bounds what a
//!   session accumulates and lets a server's new settings reach every session.
//! - At checkout, a connection known to be closed (its server ended the session) is
//!   discarded, and so is an SQLite connection whose file was replaced or removed
//!   since it was opened (it would show the old file's rows; Unix only, by device
//!   and inode).
//! - A read whose reused connection is lost within [`RETRY_WITHIN`] (1 s) of its
//!   start found it dead already (the server restarted, the session was ended while
//!   it sat in the pool): the pool's other idle connections are closed too (a
//!   restart ended them as well, and a MariaDB client learns that its session ended
//!   only when it next uses it), and the read runs once more, on a new connection; reads change
//!   nothing, so running one twice is safe. A second failure is the answer, saying
//!   that it came after the retry. A read lost later (an administrator may have ended
//!   its query on purpose) and a new connection that is lost are not retried. A
//!   server that is down says so at once: connections are made in the request, not
//!   in a background task that would only time out.
//! - The Overview's light reads (the ledgers' runs, which it polls, and the
//!   connections' check) wait only [`BRIEF_WAIT`] for a pooled connection: when slow
//!   pages hold them all, they open one of their own for that request rather than
//!   queue, at most `pool_size` of those at once per connection name (beyond that
//!   they queue too). So a connection name has at most twice `pool_size` sessions,
//!   plus any a stopped request is still cancelling (for at most a few seconds).
//! - Stopping the server closes the pools: their idle sessions end at once.
//!
//! A pooled PostgreSQL session also keeps its introspection's statements prepared,
//! and each table's description with the catalog stamp it was read under
//! (`Conn::cache_statements`, set by [`Database::connect`]): a page of a table whose
//! stamp is unchanged runs one lookup (which reads the row estimate too) instead of
//! six statements, and its keyset page statement stays prepared. On the bench's
//! million rows on 2 cores, the saved connect alone took a page by key from about 15
//! ms to 8 (load 3 to 4); the kept statements and a cheaper estimate to 3.5 to 4; the
//! kept description, estimate and page statement to 1.7 to 1.9 ms (load 2;
//! `bench/README.md`).
//!
//! Jobs (exports, migrations, merges, snapshots, upgrades) do not use the pools: they
//! open their own connections through the library, for as long as they run.

use crate::error::AppError;
use crate::state::NamedConnection;
use axum::http::StatusCode;
use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, TimeoutType};
use lockgate::dashboard::{BrowseError, Database, DbError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long the dashboard waits for a database to accept a new connection before it
/// says it is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for one of its connection's pooled connections when all
/// are busy (slow searches, say) before it gives up.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the Overview's polled reads (runs, the connections' check) wait for a
/// pooled connection before they open one of their own.
pub const BRIEF_WAIT: Duration = Duration::from_millis(250);

/// A reused connection lost within this time of its read's start was dead before
/// the read began, and the read runs again on another; one lost later is not retried
/// (see [`Pools::read`]).
pub const RETRY_WITHIN: Duration = Duration::from_secs(1);

/// How long pooled connections live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTimes {
    /// Idle for longer than this, a connection is closed: a firewall or NAT may have
    /// dropped it silently, and a query on it would then hang until TCP gives up.
    pub max_idle: Duration,
    /// Open for longer than this, a connection is closed once it is idle (and a new
    /// one opened when needed).
    pub max_lifetime: Duration,
}

impl Default for PoolTimes {
    fn default() -> Self {
        PoolTimes {
            max_idle: Duration::from_secs(5 * 60),
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

impl PoolTimes {
    /// Whether a connection is still fit to be used: idle (since its last read
    /// ended) and open for less than these times.
    fn fresh(&self, p: &Pooled, m: &Metrics) -> bool {
        p.returned.elapsed() < self.max_idle && m.age() < self.max_lifetime
    }

    /// How often the idle connections are looked over: a fifth of the shorter time,
    /// between 10 ms and 30 s, so that none outlives its time by more than a fifth.
    fn sweep_every(&self) -> Duration {
        (self.max_idle.min(self.max_lifetime) / 5).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

/// One connection of a pool, and what the checkout checks.
pub struct Pooled {
    db: Database,
    /// An SQLite file's identity when the connection was opened.
    file: Option<FileId>,
    /// When its last read ended (or it was opened): its idle time counts from here,
    /// not from when that read took it.
    returned: Instant,
}

/// Opens and checks the connections of one connection name.
pub struct Manager {
    conn: NamedConnection,
    times: PoolTimes,
    /// Permits for the connections of its own a [`Wait::Brief`] read opens when the
    /// pool is busy: at most the pool's size of them at once.
    own: Arc<Semaphore>,
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = DbError;

    async fn create(&self) -> Result<Pooled, DbError> {
        // Read before opening: a file replaced in between is then only discarded at the
        // next checkout, never shown as the old one.
        let file = sqlite_file(&self.conn);
        let db = Database::connect(&self.conn.url).await?;
        Ok(Pooled {
            db,
            file,
            returned: Instant::now(),
        })
    }

    async fn recycle(&self, p: &mut Pooled, metrics: &Metrics) -> RecycleResult<DbError> {
        if p.db.is_closed() {
            return Err(RecycleError::message("its server closed it"));
        }
        if !self.times.fresh(p, metrics) {
            return Err(RecycleError::message("idle or open for too long"));
        }
        if p.file.is_some() && sqlite_file(&self.conn) != p.file {
            return Err(RecycleError::message("its SQLite file was replaced or removed"));
        }
        Ok(())
    }
}

/// What identifies an SQLite file on disk (device and inode), `None` for a server
/// database or a file that is not there.
type FileId = (u64, u64);

#[cfg(unix)]
fn sqlite_file(c: &NamedConnection) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    if c.url.engine != lockgate::db::Engine::Sqlite {
        return None;
    }
    std::fs::metadata(c.url.sqlite_path()).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn sqlite_file(c: &NamedConnection) -> Option<FileId> {
    // Without inodes, only a removed file is noticed.
    (c.url.engine == lockgate::db::Engine::Sqlite && c.url.sqlite_path().is_file()).then_some((0, 0))
}

type Pool = managed::Pool<Manager>;

/// The server's pools, one per configured connection.
pub struct Pools {
    by_name: HashMap<String, Pool>,
    size: usize,
}

/// A read's result, and how it got its connection (for the Server-Timing header).
pub struct Read<T> {
    /// What the read returned.
    pub value: T,
    /// The time taken to get the connection: next to nothing for a pooled one, the
    /// whole connect for a new one.
    pub checkout: Duration,
    /// Whether the connection had served a request before.
    pub reused: bool,
    /// Whether the read ran a second time, after its first connection was lost.
    pub retried: bool,
}

/// An error that may say the connection was lost (the read may then run again).
pub trait Lost {
    /// Whether the connection was lost.
    fn connection_lost(&self) -> bool;
}

impl Lost for DbError {
    fn connection_lost(&self) -> bool {
        self.is_connection_lost()
    }
}

impl Lost for BrowseError {
    fn connection_lost(&self) -> bool {
        matches!(self, BrowseError::Db(e) if e.is_connection_lost())
    }
}

/// A read on a connection: a call into `lockgate::dashboard` borrowing it.
pub type ReadFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

/// How long a read waits for a pooled connection when all are busy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Up to [`WAIT_TIMEOUT`], then a 503 (pages, searches, counts).
    Queue,
    /// Up to [`BRIEF_WAIT`], then a connection of its own for this request (the
    /// Overview's polled reads).
    Brief,
}

/// A connection held by one request: from a pool, or opened for it alone.
enum Held {
    Pooled(Object<Manager>),
    /// With its [`Manager::own`] permit (held, never read), when a busy pool made it.
    Own {
        conn: Pooled,
        _permit: Option<OwnedSemaphorePermit>,
    },
}

impl Held {
    fn get(&mut self) -> &mut Pooled {
        match self {
            Held::Pooled(o) => o,
            Held::Own { conn, .. } => conn,
        }
    }

    /// The connection itself, out of its pool (which may then open another).
    fn detach(self) -> Pooled {
        match self {
            Held::Pooled(o) => Object::take(o),
            Held::Own { conn, .. } => conn,
        }
    }
}

/// A connection while a read runs on it. Dropped before [`Running::finish`] (the
/// request's future was dropped half-way), it cancels the query on the server and
/// closes the connection rather than let it go back to the pool busy.
struct Running {
    held: Option<Held>,
    name: String,
}

impl Running {
    /// The read ended: the connection, to go back to its pool or be dropped.
    fn finish(mut self) -> Held {
        self.held.take().expect("finished once")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else { return };
        let p = held.detach();
        let cancel = p.db.canceller();
        let name = std::mem::take(&mut self.name);
        // Only a runtime's task can wait for the cancel; without one (the runtime is
        // shutting down) the connection is only closed, which PostgreSQL notices at the
        // query's next output and MariaDB at its end.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match tokio::time::timeout(CONNECT_TIMEOUT, cancel.cancel()).await {
                    Ok(Ok(())) => tracing::debug!("connection {name}: a stopped request's query was cancelled"),
                    Ok(Err(e)) => tracing::warn!(
                        "connection {name}: a stopped request's query could not be cancelled ({e}): it runs on until it ends, then its session closes"
                    ),
                    Err(_) => tracing::warn!(
                        "connection {name}: a stopped request's query could not be cancelled (no answer): it runs on until it ends, then its session closes"
                    ),
                }
                close_later(vec![p]);
            });
        }
    }
}

impl Pools {
    /// A pool of at most `size` connections for each of `connections` (none is opened
    /// until a request needs it), whose connections live as `times` says. With a Tokio
    /// runtime, a task closes the connections that outlived their times while idle;
    /// it ends when the pools are closed or dropped.
    pub fn new(connections: &[NamedConnection], size: usize, times: PoolTimes) -> Pools {
        let size = size.max(1);
        let by_name: HashMap<String, Pool> = connections
            .iter()
            .filter_map(|c| {
                let manager = Manager {
                    conn: c.clone(),
                    times,
                    own: Arc::new(Semaphore::new(size)),
                };
                let pool = Pool::builder(manager)
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .create_timeout(Some(CONNECT_TIMEOUT))
                    .wait_timeout(Some(WAIT_TIMEOUT))
                    // The connection used last goes out first: under light use one stays
                    // warm and the others reach their idle time and are closed.
                    .queue_mode(managed::QueueMode::Lifo)
                    .build();
                match pool {
                    Ok(p) => Some((c.name.clone(), p)),
                    Err(e) => {
                        // Only a timeout without a runtime fails a build, and the runtime
                        // is set: without a pool, the connection is opened per request.
                        tracing::warn!("connection {}: no pool ({e}); connecting per request", c.name);
                        None
                    }
                }
            })
            .collect();
        if let (Ok(rt), false) = (tokio::runtime::Handle::try_current(), by_name.is_empty()) {
            let weak: Vec<_> = by_name.values().map(Pool::weak).collect();
            rt.spawn(sweep(weak, times));
        }
        Pools { by_name, size }
    }

    /// Closes every pool: idle connections end now, those in use when their read
    /// ends, and later reads are refused. The server calls it when it stops.
    pub fn close(&self) {
        for p in self.by_name.values() {
            p.close();
        }
    }

    /// The pool of `c`: a configured connection's, by name and URL. A connection the
    /// server made up (a transfer's destination that is no configured connection) has
    /// none.
    fn pool(&self, c: &NamedConnection) -> Option<&Pool> {
        self.by_name
            .get(&c.name)
            .filter(|p| p.manager().conn.url.as_str() == c.url.as_str())
    }

    /// A connection of its own for one request (not in any pool), holding `permit`
    /// while it lives.
    async fn own(c: &NamedConnection, permit: Option<OwnedSemaphorePermit>) -> Result<(Held, bool), AppError> {
        let file = sqlite_file(c);
        match tokio::time::timeout(CONNECT_TIMEOUT, Database::connect(&c.url)).await {
            Ok(Ok(db)) => Ok((
                Held::Own {
                    conn: Pooled {
                        db,
                        file,
                        returned: Instant::now(),
                    },
                    _permit: permit,
                },
                false,
            )),
            Ok(Err(e)) => Err(connect_error(c, e)),
            Err(_) => Err(no_answer(c)),
        }
    }

    async fn checkout(&self, c: &NamedConnection, wait: Wait) -> Result<(Held, bool), AppError> {
        let Some(pool) = self.pool(c) else {
            return Self::own(c, None).await;
        };
        let got = match wait {
            Wait::Queue => pool.get().await,
            Wait::Brief => {
                let mut t = pool.timeouts();
                t.wait = Some(BRIEF_WAIT);
                match pool.timeout_get(&t).await {
                    Err(PoolError::Timeout(TimeoutType::Wait)) => {
                        match Arc::clone(&pool.manager().own).try_acquire_owned() {
                            Ok(permit) => {
                                tracing::debug!(
                                    "connection {}: every pooled connection is busy; one of its own",
                                    c.name
                                );
                                return Self::own(c, Some(permit)).await;
                            }
                            // As many of its own as the pool's size are open already: wait
                            // for the pool after all.
                            Err(_) => pool.get().await,
                        }
                    }
                    other => other,
                }
            }
        };
        match got {
            Ok(o) => {
                let reused = Object::metrics(&o).recycle_count > 0;
                Ok((Held::Pooled(o), reused))
            }
            Err(PoolError::Backend(e)) => Err(connect_error(c, e)),
            Err(PoolError::Timeout(TimeoutType::Create)) => Err(no_answer(c)),
            Err(PoolError::Timeout(_)) => Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "connection {}: all {} of the server's connections to it stayed busy for {} s (slow pages or searches): \
                     try again, or give the server more with [server] pool_size or --pool-size",
                    c.name,
                    self.size,
                    WAIT_TIMEOUT.as_secs()
                ),
            )),
            Err(PoolError::Closed) => Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is stopping: try again once it is back",
            )),
            Err(e) => Err(AppError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("connection {}: {e}", c.name),
            )),
        }
    }

    /// Runs `read` on a connection of `c` (its pool's, else one opened for this
    /// request; see [`Wait`]); an error that lost a reused connection runs it once
    /// more on another. Its errors become `fail(e)` (after a retry, with a word that
    /// the read ran twice); a connection that cannot be had is an error naming `c`.
    pub async fn read<T, E, F>(
        &self,
        c: &NamedConnection,
        wait: Wait,
        mut read: F,
        fail: impl Fn(E) -> AppError,
    ) -> Result<Read<T>, AppError>
    where
        E: Lost,
        F: for<'a> FnMut(&'a mut Database) -> ReadFuture<'a, T, E>,
    {
        let mut retried = false;
        loop {
            let started = Instant::now();
            let (held, reused) = match self.checkout(c, wait).await {
                Ok(got) => got,
                Err(e) => return Err(after_retry(e, retried)),
            };
            let checkout = started.elapsed();
            let pooled = matches!(held, Held::Pooled(_));
            let mut running = Running {
                held: Some(held),
                name: c.name.clone(),
            };
            let p = running.held.as_mut().expect("held until finished").get();
            let began = Instant::now();
            let result = read(&mut p.db).await;
            let lost = p.db.is_closed() || result.as_ref().err().is_some_and(Lost::connection_lost);
            // Lost this soon, the connection was dead before the read began (a
            // restart, a session ended while it sat in the pool); lost later, the query
            // itself may have been ended on purpose, and is not run again.
            let dead_before = lost && began.elapsed() < RETRY_WITHIN;
            let mut held = running.finish();
            held.get().returned = Instant::now();
            if lost {
                // Out of the pool at once, so that the retry does not wait for it or
                // find it again.
                drop(held.detach());
                if let (true, true, Some(pool)) = (dead_before, pooled, self.pool(c)) {
                    // Whatever ended it (a restart) likely ended the other idle sessions
                    // too, and a MariaDB client learns of that only when it next uses
                    // one: close them all rather than retry on one of them (after a
                    // single session was ended, that costs a few new connections).
                    close_later(pool.retain(|_, _| false).removed);
                }
            }
            match result {
                Ok(value) => {
                    return Ok(Read {
                        value,
                        checkout,
                        reused,
                        retried,
                    })
                }
                Err(_) if dead_before && reused && !retried => {
                    tracing::debug!("connection {}: lost during a read, reading again", c.name);
                    retried = true;
                }
                Err(e) => return Err(after_retry(fail(e), retried)),
            }
        }
    }
}

/// Closes `connections` on a blocking thread: closing an SQLite connection may
/// checkpoint its WAL and sync the file, which must not hold up a runtime worker.
fn close_later(connections: Vec<Pooled>) {
    if connections.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(move || drop(connections))),
        Err(_) => drop(connections),
    }
}

/// `e`, saying so when it came from the read's second run.
fn after_retry(mut e: AppError, retried: bool) -> AppError {
    if retried {
        e.message
            .push_str(" (on a second connection: the first was lost during the read, which then ran again)");
    }
    e
}

impl Drop for Pools {
    fn drop(&mut self) {
        self.close();
    }
}

/// Every [`PoolTimes::sweep_every`], closes the idle connections of `pools` that
/// outlived `times`; ends once every pool is closed or gone.
async fn sweep(pools: Vec<managed::WeakPool<Manager>>, times: PoolTimes) {
    let mut tick = tokio::time::interval(times.sweep_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut open = 0;
        for pool in pools.iter().filter_map(managed::WeakPool::upgrade) {
            if pool.is_closed() {
                continue;
            }
            open += 1;
            let gone = pool.retain(|p, m| times.fresh(p, &m)).removed;
            if !gone.is_empty() {
                tracing::debug!(
                    "connection {}: closed {} pooled connection(s) idle or open for too long",
                    pool.manager().conn.name,
                    gone.len()
                );
                close_later(gone);
            }
        }
        if open == 0 {
            return;
        }
    }
}

fn connect_error(c: &NamedConnection, e: DbError) -> AppError {
    AppError::from_exit(
        e.exit_code(),
        format!("connection {} ({}): {e}", c.name, c.url.redacted()),
    )
}

fn no_answer(c: &NamedConnection) -> AppError {
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "connection {} ({}): no answer within {} s: is the server up?",
            c.name,
            c.url.redacted(),
            CONNECT_TIMEOUT.as_secs()
        ),
    )
}
