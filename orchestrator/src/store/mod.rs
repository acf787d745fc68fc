//! The store: runs, steps, events, evidence, fault ledger, stack leases and the notification
//! outbox — in SQLite (default, a file) or PostgreSQL (several daemons), chosen by URL scheme.
//!
//! One [`Store`] type, two databases (atuin style): every query is runtime `sqlx::query` text that
//! both dialects accept (`$1` placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`), run against
//! whichever pool the URL selected. The schema lives in `migrations/sqlite` and
//! `migrations/postgres` (same version numbers, forward-only), embedded at build time and applied
//! by [`Store::open`]. Storage conventions: ids are hyphenated UUID text, instants are Unix
//! milliseconds (UTC), JSON is TEXT (SQLite) or JSONB (PostgreSQL). See `docs/store.md`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod error;
mod events;
mod findings;
mod leader;
mod lease;
mod ledger;
mod model;
mod nights;
mod outbox;
mod plans;
mod review;
mod rows;
mod runs;

pub use error::{StoreError, redact_url};
pub use findings::{FindingNote, FindingRecord, FindingStatus, NightJudgement};
pub use leader::{LEADER_LEASE, LEADER_LEASE_TTL, LEADER_LOCK_KEY, Leadership};
pub use model::{
    EventRecord, HEARTBEAT_EVERY, HEARTBEAT_TTL, Lease, LeaseHolder, LedgerEntry, LedgerState,
    Liveness, NewNotification, NewRun, OutboxRecord, OutboxStatus, RunFilter, RunRecord,
    StepRecord,
};
pub use nights::{NightDigest, NightRecord, NightState};
pub use outbox::OutboxBacklog;
pub use plans::StoredPlan;
pub use review::{NightGroup, RunBrief, RunGroup, StepJudgement};

/// Environment variable that overrides [`Store::default_url`].
pub const DATABASE_URL_ENV: &str = "F3_CHAOS_DATABASE_URL";

/// How long a SQLite connection waits for another process's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to wait for a pooled connection (both backends).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Handle on the database. Cheap to clone (a connection pool inside); share one per process.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The SQLite file as opened (path, device, inode), to tell when it was removed or
    /// replaced under the open connections ([`Store::check_in_place`]); `None` for PostgreSQL
    /// and in-memory databases.
    file: Option<FileIdentity>,
}

/// Which file a SQLite store opened: its path and `(st_dev, st_ino)` at open.
#[derive(Debug, Clone)]
struct FileIdentity {
    path: std::path::PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool. The body is compiled
/// once per backend, so the same query text and binds serve both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// Connects to the database at `url` and applies pending migrations.
    ///
    /// - `sqlite://PATH` (or `sqlite:PATH`, `sqlite::memory:`): creates the file and its parent
    ///   directory on first use; WAL journal, `synchronous = NORMAL`, foreign keys on and a 15 s
    ///   busy timeout so several f3-chaos processes can share one file.
    /// - `postgres://…` / `postgresql://…`: the database must exist; migrations run under
    ///   sqlx's advisory lock, so several daemons may start at once.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`], [`StoreError::CreateDir`], [`StoreError::Connect`] or
    /// [`StoreError::Migrate`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else {
            Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            })
        }
    }

    /// The store a command or the daemon uses: `flag` (`--database-url`, which clap also fills from
    /// `$F3_CHAOS_DATABASE_URL`), else the config's `spec.databaseUrl`, else
    /// [`Store::default_url`] — opened, the error naming it with its password redacted
    /// (`opening the store at postgres://f3chaos:***@db/f3chaos`). A SQLite URL chosen explicitly
    /// (flag, `$F3_CHAOS_DATABASE_URL` or config) must name a file in an existing directory
    /// ([`StoreError::MissingDirectory`]); only the default location's directories are created.
    ///
    /// # Errors
    /// What [`Store::open`] returns, with that context.
    pub async fn open_chosen(
        flag: Option<&str>,
        configured: Option<&str>,
    ) -> anyhow::Result<Store> {
        use anyhow::Context as _;
        let explicit = Store::explicit_url(flag, configured);
        let url = explicit.clone().unwrap_or_else(Store::default_location);
        if explicit.is_some()
            && let Some(dir) = Store::sqlite_file(&url)
                .as_deref()
                .and_then(std::path::Path::parent)
                .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(StoreError::MissingDirectory {
                path: dir.to_owned(),
                url: redact_url(&url),
            }
            .into());
        }
        match Store::open(&url).await {
            Ok(store) => Ok(store),
            // These name the (redacted) URL themselves.
            Err(
                e @ (StoreError::Connect { .. }
                | StoreError::UnsupportedUrl { .. }
                | StoreError::MissingDirectory { .. }),
            ) => Err(e.into()),
            Err(e) => Err(e).with_context(|| format!("opening the store at {}", redact_url(&url))),
        }
    }

    /// The URL [`Store::open_chosen`] opens: `flag`, else `configured`, else
    /// [`Store::default_url`].
    pub fn chosen_url(flag: Option<&str>, configured: Option<&str>) -> String {
        Store::explicit_url(flag, configured).unwrap_or_else(Store::default_location)
    }

    /// The URL someone chose: `flag`, else `configured`, else `$F3_CHAOS_DATABASE_URL` when set
    /// and not empty; `None` means the default location.
    fn explicit_url(flag: Option<&str>, configured: Option<&str>) -> Option<String> {
        flag.or(configured).map(str::to_owned).or_else(|| {
            std::env::var(DATABASE_URL_ENV)
                .ok()
                .filter(|url| !url.trim().is_empty())
        })
    }

    /// The database URL to use when none is configured: `$F3_CHAOS_DATABASE_URL` if set and not
    /// empty, else [`Store::default_location`].
    pub fn default_url() -> String {
        Store::explicit_url(None, None).unwrap_or_else(Store::default_location)
    }

    /// `sqlite://<state dir>/f3-chaos/f3-chaos.db` where the state dir is `$XDG_STATE_HOME`, else
    /// `$HOME/.local/state`, else `./.f3-chaos` — the one store whose directories are created.
    fn default_location() -> String {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|dir| !dir.is_empty())
                    .map(|home| PathBuf::from(home).join(".local/state"))
            });
        match state {
            Some(dir) => format!("sqlite://{}", dir.join("f3-chaos/f3-chaos.db").display()),
            None => "sqlite://.f3-chaos/f3-chaos.db".to_owned(),
        }
    }

    /// The database file of a SQLite URL (`sqlite://PATH`, `sqlite:PATH`, parsed by sqlx); None
    /// for other schemes, in-memory databases and URLs that do not parse.
    pub fn sqlite_file(url: &str) -> Option<PathBuf> {
        if !url.starts_with("sqlite:") {
            return None;
        }
        let options = SqliteConnectOptions::from_str(url).ok()?;
        (!is_sqlite_memory(url, &options)).then(|| options.get_filename().to_owned())
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Checks that the store answers a query (`SELECT 1`) — what `/readyz` reports.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database is unreachable or refuses the query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        use error::QueryContext as _;
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop).ctx("ping the store"))?;
        Ok(())
    }

    /// Closes every pooled connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    async fn open_sqlite(url: &str) -> Result<Store, StoreError> {
        let connect_err = |source| StoreError::Connect {
            backend: "sqlite",
            url: url.to_owned(),
            source,
        };
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let in_memory = is_sqlite_memory(url, &options);
        if !in_memory {
            // A rollback journal, not WAL, and no mmap: WAL's wal-index (`-shm`) is a shared
            // memory map of a file, and a write to a mapped page of a file that became immutable
            // or unwritable is SIGBUS — the process dies mid-fault, its revert never runs. With
            // plain reads and writes the same trouble is an I/O error the durable writer
            // reports (the run ends `error`, its faults reverted). FULL, because NORMAL in
            // rollback mode risks corruption on power loss (sqlite.org/pragma.html#pragma_synchronous).
            options = options
                .journal_mode(SqliteJournalMode::Delete)
                .synchronous(SqliteSynchronous::Full)
                .pragma("mmap_size", "0");
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        let mut pool_options = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // An in-memory database lives as long as its connection: keep that one forever.
            pool_options = pool_options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        // Switching a fresh file to WAL takes an exclusive lock and SQLite answers a second
        // opener `database is locked` at once (its busy handler does not run for that pragma):
        // retry the connect, as the migration below is retried.
        let connect = || pool_options.clone().connect_with(options.clone());
        let pool = connect
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(20))
                    .with_max_delay(Duration::from_millis(500))
                    .with_max_times(10)
                    .with_jitter(),
            )
            .when(is_sqlite_busy)
            .notify(|error, after| {
                tracing::debug!(%error, ?after, "SQLite file locked by another opener; retrying.");
            })
            .await
            .map_err(connect_err)?;
        // Two processes opening a fresh file at once both try to apply version 1; SQLite has no
        // migration lock, so the loser fails and, on retry, finds the schema in place.
        let mut attempt = 0;
        loop {
            match SQLITE_MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(error) if attempt < 5 && is_retryable_migrate_error(&error) => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, "SQLite migration raced another process; retrying.");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(source) => {
                    return Err(StoreError::Migrate {
                        backend: "sqlite",
                        source,
                    });
                }
            }
        }
        let file = if in_memory {
            None
        } else {
            let path = options.get_filename();
            Some(
                FileIdentity::of(path).map_err(|source| StoreError::Removed {
                    path: path.to_owned(),
                    source: Some(source),
                })?,
            )
        };
        Ok(Store {
            backend: Backend::Sqlite(pool),
            file,
        })
    }

    /// Whether the store's file is still the one it opened: SQLite keeps writing to a file
    /// that was deleted or replaced (the open descriptors hold the old inode), so every write
    /// succeeds and the record is lost all the same. Always `Ok` for PostgreSQL and in-memory
    /// SQLite.
    ///
    /// # Errors
    /// [`StoreError::Removed`] naming the path when it is gone or is now another file.
    pub fn check_in_place(&self) -> Result<(), StoreError> {
        let Some(opened) = &self.file else {
            return Ok(());
        };
        match FileIdentity::of(&opened.path) {
            Ok(now) if (now.device, now.inode) == (opened.device, opened.inode) => Ok(()),
            Ok(_) => Err(StoreError::Removed {
                path: opened.path.clone(),
                source: None,
            }),
            Err(source) => Err(StoreError::Removed {
                path: opened.path.clone(),
                source: Some(source),
            }),
        }
    }

    async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let connect_err = |source| StoreError::Connect {
            backend: "postgres",
            url: redact_url(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: "postgres",
                source,
            })?;
        Ok(Store {
            backend: Backend::Postgres(pool),
            file: None,
        })
    }
}

/// Whether the SQLite URL names an in-memory database (no file, no WAL).
fn is_sqlite_memory(url: &str, options: &SqliteConnectOptions) -> bool {
    url.contains(":memory:")
        || url.contains("mode=memory")
        || options.get_filename().as_os_str() == ":memory:"
}

/// Whether a connect failed on SQLite's `SQLITE_BUSY` (code 5, "database is locked").
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("5"))
}

/// A migration error caused by another process migrating the same SQLite file concurrently.
fn is_retryable_migrate_error(error: &sqlx::migrate::MigrateError) -> bool {
    match error {
        sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))
        | sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _) => {
            let message = db.message();
            message.contains("locked")
                || message.contains("busy")
                || message.contains("already exists")
                || db.is_unique_violation()
        }
        _ => false,
    }
}

/// The host name runs record as their owner's host and the sweep compares with (the one
/// host-name function of the crate): `gethostname(2)` through the `hostname` crate — the UTS
/// namespace's name, so a container or `unshare --uts` sees its own — else `localhost`.
pub fn local_hostname() -> String {
    hostname::get()
        .ok()
        .map(|name| name.to_string_lossy().trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// An instant as stored: Unix milliseconds, UTC.
pub(crate) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored instant back to `DateTime<Utc>`.
pub(crate) fn from_ms(table: &'static str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        table,
        message: format!("instant {ms} ms is out of range"),
    })
}

/// A duration in whole milliseconds for instant arithmetic.
pub(crate) fn duration_ms(field: &'static str, ttl: Duration) -> Result<i64, StoreError> {
    i64::try_from(ttl.as_millis()).map_err(|_| StoreError::Invalid {
        field,
        message: format!("{ttl:?} is too long"),
    })
}

#[cfg(test)]
mod tests;
