//! The one error type of the store.

use std::path::PathBuf;

use uuid::Uuid;

impl StoreError {
    /// Whether the error is bad input — a store URL that cannot be right — rather than a store
    /// that failed: the CLI exits 8 (`INVALID_INPUT`) for these, 10 otherwise.
    pub fn is_bad_url(&self) -> bool {
        matches!(
            self,
            StoreError::UnsupportedUrl { .. } | StoreError::MissingDirectory { .. }
        )
    }
}

/// Everything a [`Store`](super::Store) call can fail with.
///
/// Database failures keep the `sqlx` error as their `#[source]`; URLs in messages have their
/// password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL has a scheme other than `sqlite:` or `postgres:`/`postgresql:`.
    #[error("Unsupported database URL {url:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// The URL as given (password redacted).
        url: String,
    },
    /// A SQLite URL given explicitly (flag, environment or config) names a file in a directory
    /// that does not exist: most likely a mistyped path, and a store created there would hold
    /// runs and leases apart from the real one. Only the default location is created.
    #[error(
        "No directory {} for the SQLite store {url}: create it first, or leave the URL out to use the default store",
        path.display()
    )]
    MissingDirectory {
        /// The directory that does not exist.
        path: PathBuf,
        /// The URL (password redacted).
        url: String,
    },
    /// The SQLite file is gone, or its path now names another file, while the store was open:
    /// what was written since went to the old, unlinked file ([`super::Store::check_in_place`]).
    #[error("The SQLite store {} was removed or replaced while it was open: what was written since is lost", path.display())]
    Removed {
        /// The file's path as opened.
        path: PathBuf,
        /// What reading it said, when it could not be read at all.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The directory that should hold the SQLite file could not be created.
    #[error("Could not create the database directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to the database failed (bad URL, server down, wrong password, unreadable file).
    #[error("Could not open the {backend} database at {url}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The URL (password redacted).
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed (e.g. the database was migrated by a newer
    /// f3-chaos, or a migration file was edited after it was applied).
    #[error("Could not apply the {backend} schema migrations")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The migrator error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("Database query failed while trying to {operation}")]
    Query {
        /// What the store was doing, e.g. `create run`.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// The row the call refers to does not exist.
    #[error("No {what} with id {id}")]
    NotFound {
        /// `run`, `fault ledger entry`, …
        what: &'static str,
        /// The id looked for.
        id: String,
    },
    /// `finish_run` on a run that already has an outcome.
    #[error("Run {id} is not running (its status is {status})")]
    RunNotRunning {
        /// The run.
        id: Uuid,
        /// Its current status.
        status: crate::model::RunStatus,
    },
    /// A run-id prefix given to [`find_run`](super::Store::find_run) matches several runs.
    #[error("Run id prefix {prefix:?} is ambiguous: it matches {} runs (e.g. {})", matches.len(),
        matches.iter().take(3).map(Uuid::to_string).collect::<Vec<_>>().join(", "))]
    AmbiguousRunId {
        /// The prefix as given.
        prefix: String,
        /// Some of the matching run ids (at most 10), highest first (UUID v7: newest first).
        matches: Vec<Uuid>,
    },
    /// An argument is not acceptable (unknown outcome, malformed id prefix, TTL out of range).
    #[error("Invalid {field}: {message}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A stored value cannot be read back (bad UUID text, out-of-range instant, unknown state):
    /// someone wrote to the database by hand, or the schema and the code disagree.
    #[error("Corrupt value in table {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Adds the operation name to a `sqlx` error.
pub(crate) trait QueryContext<T> {
    /// Maps `Err(sqlx::Error)` to [`StoreError::Query`] for `operation`.
    fn ctx(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { operation, source })
    }
}

/// `url` with the password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have credentials; this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
