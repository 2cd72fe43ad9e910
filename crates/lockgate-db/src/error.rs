//! Typed errors of the database layer.

use std::time::Duration;

/// What an engine said about a failed statement, normalized across engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineError {
    /// SQLSTATE (PostgreSQL), error number (MariaDB) or result code name (SQLite).
    pub code: String,
    /// The engine's message (with PostgreSQL's detail appended).
    pub message: String,
    /// The column the engine names, when it names one.
    pub column: Option<String>,
    /// The constraint the engine names, when it names one.
    pub constraint: Option<String>,
    /// 1-based position of the failing row within the statement's data, when the
    /// engine says (COPY's "line N", MariaDB's "at row N").
    pub row: Option<u64>,
    /// Serialization failure, deadlock, lock timeout, busy: retrying the unit may succeed.
    pub transient: bool,
    /// The connection is gone; a retry needs a new one.
    pub connection_lost: bool,
}

impl EngineError {
    /// An error with only a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError {
            code: code.into(),
            message: message.into(),
            column: None,
            constraint: None,
            row: None,
            transient: false,
            connection_lost: false,
        }
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// Errors of the database layer. [`DbError::exit_code`] maps them to ARCHITECTURE.md's codes.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A malformed URL or unknown scheme.
    #[error("{0}")]
    BadUrl(String),
    /// The server cannot be reached or refused the login.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// A statement failed.
    #[error("{context}: {error}")]
    Engine {
        /// What Lockgate was doing.
        context: String,
        /// What the engine said (boxed: errors travel through every `Result`).
        error: Box<EngineError>,
    },
    /// Input that is wrong before anything is written: unknown table or column,
    /// a key that is not a column, a table that cannot roll back.
    #[error("{0}")]
    Invalid(String),
    /// Another run holds the job's lock.
    #[error("job {job} is locked by {holder}; waited {waited:?}: wait for it to finish or raise --lock-timeout")]
    LockTimeout {
        /// The job.
        job: String,
        /// Who holds it, as its ledger row says.
        holder: String,
        /// How long this run waited.
        waited: Duration,
    },
    /// The ledger is newer than this build.
    #[error("the lockgate ledger in this database has schema version {found}, newer than this lockgate knows ({known}): upgrade lockgate")]
    LedgerTooNew {
        /// Version found.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// A fencing check failed: this run lost its lease.
    #[error("{0}")]
    Fenced(String),
    /// A blocking task failed to run.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DbError {
    /// Wraps an engine error with what Lockgate was doing.
    pub fn engine(context: impl Into<String>, error: EngineError) -> DbError {
        DbError::Engine {
            context: context.into(),
            error: Box::new(error),
        }
    }

    /// Whether retrying the whole unit may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Engine { error, .. } => error.transient || error.connection_lost,
            _ => false,
        }
    }

    /// Whether the connection is gone.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, DbError::Engine { error, .. } if error.connection_lost)
    }

    /// The engine error, when this is one.
    pub fn engine_error(&self) -> Option<&EngineError> {
        match self {
            DbError::Engine { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }

    /// ARCHITECTURE.md's exit code: 2 for bad input found before writing, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            DbError::BadUrl(_) | DbError::Invalid(_) => 2,
            _ => 1,
        }
    }
}
