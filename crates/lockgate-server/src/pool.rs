//! Pooled database connections for the server's own reads: the table list, a table's
//! pages and counts, the connection check, the ledger's runs, the modules and the
//! migration log. One pool per connection name, of at most `pool_size` connections
//! (`[server] pool_size`, `--pool-size`; 4 by default), so that a page no longer pays
//! for a new session (TCP, authentication, the session's settings) on every request.
//!
//! What keeps a pooled connection safe to hand to the next request:
//! - It is opened as browsing opened one before ([`Database::connect`]): an SQLite file
//!   that does not exist is an error, never created.
//! - A request marks its connection in use when it takes it, and clean again only when
//!   its read ran to its end without losing the connection. A request cancelled half-way
//!   (the browser went away while its query ran, the server stopped) leaves it marked,
//!   and the next checkout discards it: its query may still be running on the server, or
//!   its result be unread, and the next request would wait behind it. The reads
//!   themselves run in autocommit and change no session setting ([`Database`]), so one
//!   that ended leaves no transaction behind (nor an SQLite read snapshot, which would
//!   hold back WAL checkpoints) and nothing for the next request to inherit. None of
//!   them sets a statement timeout either (`timeout.rs` holds the HTTP request
//!   timeouts, which are no session state).
//! - At checkout, a connection known to be closed (its server ended the session) is
//!   discarded, and so is one idle for longer than [`MAX_IDLE`] (a firewall may have
//!   dropped it without a word, and a query on it would hang), and an SQLite
//!   connection whose file was replaced or removed since it was opened (it would show
//!   the old file's rows).
//! - A read that fails because its connection was lost (the server restarted, the
//!   session was terminated) runs once more, on another connection: reads change
//!   nothing, so running one twice is safe. A second failure is the answer, with the
//!   database's own error (a server that is down says so at once: connections are
//!   made in the request, not in a background task that would only time out).
//!
//! A pooled PostgreSQL session also keeps its introspection's statements prepared
//! (`Conn::cache_statements`, set by [`Database::connect`]): the five that look a
//! table up and describe it skip their parse and a round trip each, and run on a
//! generic plan. On the bench's million rows, at a load of 3 to 4 on 2 cores, the saved
//! connect alone took a page by key from about 15 ms to 8; the kept statements and a
//! cheaper row estimate to 3.5 to 4 (`bench/README.md`).
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
use std::time::{Duration, Instant};

/// How long the dashboard waits for a database to accept a new connection before it
/// says it is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for one of its connection's pooled connections when all
/// are busy (slow searches, say) before it gives up.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A pooled connection idle for longer than this is closed rather than used: a
/// firewall or NAT may have dropped it silently, and a query on it would then hang
/// until TCP gives up.
pub const MAX_IDLE: Duration = Duration::from_secs(5 * 60);

/// One connection of a pool, and what the checkout checks.
pub struct Pooled {
    db: Database,
    /// Set while a request uses it; cleared only when that request's read ended with
    /// the connection intact.
    in_use: bool,
    /// An SQLite file's identity when the connection was opened.
    file: Option<FileId>,
}

/// Opens and checks the connections of one connection name.
pub struct Manager {
    conn: NamedConnection,
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
            in_use: false,
            file,
        })
    }

    async fn recycle(&self, p: &mut Pooled, metrics: &Metrics) -> RecycleResult<DbError> {
        if p.in_use {
            return Err(RecycleError::message("a request stopped half-way while using it"));
        }
        if p.db.is_closed() {
            return Err(RecycleError::message("its server closed it"));
        }
        if metrics.last_used() > MAX_IDLE {
            return Err(RecycleError::message("idle for too long"));
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

/// A connection held by one request: from a pool, or opened for it alone.
enum Held {
    Pooled(Object<Manager>),
    Own(Pooled),
}

impl Held {
    fn get(&mut self) -> &mut Pooled {
        match self {
            Held::Pooled(o) => o,
            Held::Own(p) => p,
        }
    }
}

impl Pools {
    /// A pool of at most `size` connections for each of `connections` (none is opened
    /// until a request needs it).
    pub fn new(connections: &[NamedConnection], size: usize) -> Pools {
        let size = size.max(1);
        let by_name = connections
            .iter()
            .filter_map(|c| {
                let pool = Pool::builder(Manager { conn: c.clone() })
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .create_timeout(Some(CONNECT_TIMEOUT))
                    .wait_timeout(Some(WAIT_TIMEOUT))
                    // The connection used last goes out first: under light use one stays
                    // warm and the others reach MAX_IDLE and are closed.
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
        Pools { by_name, size }
    }

    /// The pool of `c`: a configured connection's, by name and URL. A connection the
    /// server made up (a transfer's destination that is no configured connection) has
    /// none.
    fn pool(&self, c: &NamedConnection) -> Option<&Pool> {
        self.by_name
            .get(&c.name)
            .filter(|p| p.manager().conn.url.as_str() == c.url.as_str())
    }

    async fn checkout(&self, c: &NamedConnection) -> Result<(Held, bool), AppError> {
        let Some(pool) = self.pool(c) else {
            let m = Manager { conn: c.clone() };
            return match tokio::time::timeout(CONNECT_TIMEOUT, managed::Manager::create(&m)).await {
                Ok(Ok(p)) => Ok((Held::Own(p), false)),
                Ok(Err(e)) => Err(connect_error(c, e)),
                Err(_) => Err(no_answer(c)),
            };
        };
        match pool.get().await {
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
    /// request); an error that lost the connection runs it once more on another. Its
    /// errors become `fail(e)`; a connection that cannot be had is an error naming `c`.
    pub async fn read<T, E, F>(
        &self,
        c: &NamedConnection,
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
            let (mut held, reused) = self.checkout(c).await?;
            let checkout = started.elapsed();
            let p = held.get();
            // Cleared below only if the read ends: a request dropped while it awaits
            // leaves the mark, and the connection is then not handed out again.
            p.in_use = true;
            let result = read(&mut p.db).await;
            let lost = p.db.is_closed() || result.as_ref().err().is_some_and(Lost::connection_lost);
            if !lost {
                p.in_use = false;
            } else if let Held::Pooled(o) = held {
                // Out of the pool at once, so that the retry does not wait for it or
                // find it again.
                drop(Object::take(o));
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
                Err(_) if lost && !retried => {
                    tracing::debug!("connection {}: lost during a read, reading again", c.name);
                    retried = true;
                }
                Err(e) => return Err(fail(e)),
            }
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
