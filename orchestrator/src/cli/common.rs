//! What commands share: the `--config` / `--database-url` pair that finds the config and opens
//! the store, and the Tokio runtime a command runs on.
//!
//! `plan` (whose store is only read for history and never created), `validate` (whose config is
//! optional) and `daemon` (whose arguments belong to the daemon module) declare their own.

use std::path::PathBuf;

use crate::config::Config;
use crate::scenario::Runnable;
use crate::store::Store;

/// `--config DIR` and `--database-url URL`, flattened into each command that opens the store.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Config directory: stacks, teams, window and time zone; it names the scenario library and
    /// may set the store's `databaseUrl`.
    #[arg(
        long,
        env = "F3_CHAOS_CONFIG",
        default_value = "config/local",
        value_name = "DIR"
    )]
    pub config: PathBuf,
    /// Store URL (`sqlite://PATH` or `postgres://…`); default: the config's `databaseUrl`, else a
    /// SQLite file under ~/.local/state/f3-chaos.
    #[arg(long, env = "F3_CHAOS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

impl ConfigArgs {
    /// Opens the store: `--database-url`, else `config`'s `databaseUrl`, else the default file.
    ///
    /// # Errors
    /// The store's error naming the URL (password redacted) when it cannot be opened or migrated;
    /// a SQLite file in a directory that does not exist is refused unless it is the default
    /// location ([`Store::open_chosen`]).
    pub async fn open_store(&self, config: Option<&Config>) -> anyhow::Result<Store> {
        Store::open_chosen(
            self.database_url.as_deref(),
            config.and_then(|c| c.database_url.as_deref()),
        )
        .await
    }
}

/// The single-threaded runtime a command runs on (the dashboard and daemon use more threads).
///
/// # Errors
/// The I/O error of building it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The `--output` formats of every command; each command offers its own subset ([`offering`]),
/// so the same value means the same thing everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people: one line per step or run, diagnostics, a summary.
    Text,
    /// One JSON document on stdout.
    Json,
    /// Comma-separated values with a header row (`results --night`).
    Csv,
    /// GitHub Actions workflow commands, one annotation per diagnostic (`validate`).
    Github,
    /// One line per slot in start order, local times (`plan`).
    Table,
    /// A text Gantt chart, one row per stack across the window (`plan`).
    Gantt,
}

/// The value parser of a command's `--output`: only `formats` are accepted (and listed in
/// `--help`).
pub fn offering(
    formats: &'static [OutputFormat],
) -> impl clap::builder::TypedValueParser<Value = OutputFormat> {
    use clap::ValueEnum as _;
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(formats.iter().filter_map(|f| f.to_possible_value()))
        .try_map(|name| OutputFormat::from_str(&name, false))
}

/// Loads what a command works from ([`crate::scenario::load_runnable`]): a scenario file with
/// errors is left out with a warning on stderr naming each such file at its first error; a
/// config or catalogue error prints every diagnostic and gives exit code 8 (invalid input).
pub fn load_runnable(config_dir: &std::path::Path) -> Result<Runnable, u8> {
    match crate::scenario::load_runnable(config_dir) {
        Ok(runnable) => {
            warn_left_out(&runnable);
            Ok(runnable)
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            Err(crate::exit_codes::INVALID_INPUT)
        }
    }
}

/// The stderr warning for the scenario files `runnable` leaves out (nothing when none is).
pub fn warn_left_out(runnable: &Runnable) {
    if runnable.left_out.is_empty() {
        return;
    }
    let n = runnable.left_out.len();
    eprintln!(
        "warning: {n} scenario file{} with errors left out (`f3-chaos validate` shows every error):",
        if n == 1 { "" } else { "s" }
    );
    for line in runnable.summary_lines() {
        eprintln!("  {line}");
    }
}
