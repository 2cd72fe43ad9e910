//! What the dashboard shows, read through one door: a database's tables and their
//! pages, the ledger's runs, the modules' versions and the migration log. The server
//! (`lockgate-server`) reaches the database only through this module and the rest of
//! this library, never `lockgate-db` directly; each function here is a thin typed call
//! into `lockgate-db`, which builds the SQL. Viewing never creates a ledger: runs,
//! modules and logs are read only where the ledger's tables exist.

pub use lockgate_db::browse::{BrowseError, BrowsePage, BrowseQuery, Cursor, Paging, RowCount};
pub use lockgate_db::exports::{Attempt, Export};
pub use lockgate_db::ledger::Run;
pub use lockgate_db::versions::{LogEntry, LogFilter};
pub use lockgate_db::writer::Progress;
pub use lockgate_db::{Canceller, DbError, DbUrl};

use lockgate_db::Conn;

/// A connection to one database for reading what the dashboard shows. Every read
/// here runs in autocommit and leaves the session as it found it (no transaction
/// left open, no setting changed), so a server may keep it in a pool between
/// requests: a read that ran to its end hands the connection back as it was.
pub struct Database {
    conn: Conn,
}

impl Database {
    /// Connects (no timeout here: the caller bounds the wait).
    pub async fn connect(url: &DbUrl) -> Result<Database, DbError> {
        let mut conn = Conn::connect_existing(url).await?;
        // The same table lookups run on every request of a pooled connection: prepared
        // once, they skip their parse and a round trip afterwards.
        conn.cache_statements();
        Ok(Database { conn })
    }

    /// Whether the connection is known to be gone: its server ended the session (a
    /// restart, `pg_terminate_backend`, an idle timeout), or a task using it panicked.
    /// A pool drops such a connection rather than hand it out again.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// What stops this connection's running read from elsewhere: for a request whose
    /// client went away while its query ran.
    pub fn canceller(&self) -> Canceller {
        self.conn.canceller()
    }

    /// Its tables (Lockgate's own included), as `name` or `schema.name`.
    pub async fn tables(&mut self) -> Result<Vec<String>, DbError> {
        Ok(self.conn.list_tables().await?.iter().map(|t| t.to_string()).collect())
    }

    /// One page of `table`: sorted, searched and keyset-paged on the server.
    pub async fn browse(&mut self, table: &str, q: &BrowseQuery) -> Result<BrowsePage, BrowseError> {
        lockgate_db::browse::browse(&mut self.conn, table, q).await
    }

    /// The ledger's latest runs, newest first; `None` when it has no ledger.
    pub async fn runs(&mut self, limit: u32) -> Result<Option<Vec<Run>>, DbError> {
        lockgate_db::ledger::read_runs(&mut self.conn, limit).await
    }

    /// Every module with applied versions and its version; empty without a ledger.
    pub async fn modules(&mut self) -> Result<Vec<(String, String)>, DbError> {
        if self.conn.lookup_table("lockgate_modules").await?.is_none() {
            return Ok(Vec::new());
        }
        lockgate_db::versions::modules(&mut self.conn).await
    }

    /// The migration log, filtered, newest first; empty without a ledger.
    pub async fn logs(&mut self, filter: &LogFilter) -> Result<Vec<LogEntry>, DbError> {
        if self.conn.lookup_table("lockgate_migration_log").await?.is_none() {
            return Ok(Vec::new());
        }
        lockgate_db::versions::read_logs(&mut self.conn, filter).await
    }
}
