//! The one error type of the crate: every failure a caller of the library API can see.

use std::path::PathBuf;

/// What went wrong in a sandbox operation. Messages are written for the person at the terminal:
/// they say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No inventory for the stack: it was never started or has been stopped.
    #[error(
        "sandbox stack `{stack}` is not running; start it with `f3-sandbox up --stack {stack}`"
    )]
    NotRunning {
        /// Stack name.
        stack: String,
    },
    /// `up` for a stack whose processes are still alive.
    #[error(
        "sandbox stack `{stack}` is already running (inventory {}); stop it first with `f3-sandbox down --stack {stack}`",
        inventory.display()
    )]
    AlreadyRunning {
        /// Stack name.
        stack: String,
        /// Its inventory file.
        inventory: PathBuf,
    },
    /// A port the stack needs is taken by another process.
    #[error(
        "port {port} (for {purpose}) on 127.0.0.1 is already in use; stop whatever holds it or choose another `--port-base` (this stack uses {port_base}..{})",
        *port_base as u32 + 99
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// What the stack wanted it for.
        purpose: String,
        /// The stack's port base.
        port_base: u16,
    },
    /// An external program (Prometheus, Alertmanager) is not installed.
    #[error(
        "`{program}` was not found on PATH; install it with `{install}` (Debian/Ubuntu) and try again"
    )]
    ProgramMissing {
        /// Program name looked up on PATH.
        program: String,
        /// The install command to suggest.
        install: String,
    },
    /// A process did not become ready in time.
    #[error("{name} did not become ready within {waited_ms} ms (log: {})", log.display())]
    NotReady {
        /// Process name.
        name: String,
        /// How long we waited, in milliseconds.
        waited_ms: u128,
        /// Its log file.
        log: PathBuf,
    },
    /// No process of that name in the stack.
    #[error(
        "sandbox stack `{stack}` has no process named `{name}` (see `f3-sandbox status --stack {stack}`)"
    )]
    UnknownProcess {
        /// Stack name.
        stack: String,
        /// Requested process name.
        name: String,
    },
    /// Invalid settings or arguments.
    #[error("invalid sandbox settings: {0}")]
    InvalidSettings(String),
    /// Reading or writing a file, or spawning a process, failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file could not be parsed.
    #[error("cannot parse {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An HTTP call to a sandbox process failed.
    #[error("{context}")]
    Http {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A fault record that cannot be written as asked (its id is no file name).
    #[error("invalid fault record: {0}")]
    InvalidFault(String),
    /// Stopping processes failed (some were still alive after SIGKILL).
    #[error("could not stop {0}")]
    StopFailed(String),
}

impl SandboxError {
    /// Wraps an I/O error with what we were doing.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
