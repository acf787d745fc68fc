//! Where a stack keeps its files: `<state_dir>/<stack>/` holds `inventory.json`, `settings.json`,
//! `prometheus.yml`, the Prometheus data directory and one log file per process.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::SandboxError;

/// Environment variable overriding the state directory.
pub const STATE_DIR_ENV: &str = "F3_SANDBOX_STATE_DIR";

/// The default state directory: `$F3_SANDBOX_STATE_DIR`, else `$XDG_STATE_HOME/f3-sandbox`, else
/// `~/.local/state/f3-sandbox`, else `<tmp>/f3-sandbox` when there is no home directory.
pub fn default_state_dir() -> PathBuf {
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = non_empty(STATE_DIR_ENV) {
        return dir;
    }
    if let Some(xdg) = non_empty("XDG_STATE_HOME") {
        return xdg.join("f3-sandbox");
    }
    if let Some(home) = non_empty("HOME") {
        return home.join(".local/state/f3-sandbox");
    }
    std::env::temp_dir().join("f3-sandbox")
}

/// The files of one stack.
#[derive(Debug, Clone)]
pub struct StackPaths {
    /// `<state_dir>/<stack>`.
    pub dir: PathBuf,
}

impl StackPaths {
    /// Paths of `stack` under `state_dir`. The stack directory is made absolute so that process
    /// command lines (which carry it) identify the stack unambiguously.
    pub fn new(state_dir: &Path, stack: &str) -> Self {
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        Self {
            dir: state_dir.join(stack),
        }
    }
    /// Paths of the stack whose directory is `dir` (as passed to the stack's processes).
    pub fn from_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
    /// The inventory file.
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }
    /// The stack settings file (its hash is part of the fingerprint).
    pub fn settings(&self) -> PathBuf {
        self.dir.join("settings.json")
    }
    /// Lock file serialising inventory updates.
    pub fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }
    /// Log directory.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// Log file of one process.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}.log"))
    }
    /// Prometheus configuration.
    pub fn prometheus_config(&self) -> PathBuf {
        self.dir.join("prometheus.yml")
    }
    /// Prometheus TSDB directory (recreated by every `up`).
    pub fn prometheus_data(&self) -> PathBuf {
        self.dir.join("prometheus-data")
    }
    /// Directory of extra Prometheus rule files (`*.yml`), loaded by the generated config.
    pub fn prometheus_rules(&self) -> PathBuf {
        self.dir.join("rules")
    }
    /// Alertmanager configuration.
    pub fn alertmanager_config(&self) -> PathBuf {
        self.dir.join("alertmanager.yml")
    }
    /// Alertmanager data directory.
    pub fn alertmanager_data(&self) -> PathBuf {
        self.dir.join("alertmanager-data")
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename), so
/// readers never see a half-written inventory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SandboxError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(SandboxError::io(format!("cannot create {}", dir.display())))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = fs::File::create(&tmp)
        .map_err(SandboxError::io(format!("cannot write {}", tmp.display())))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(SandboxError::io(format!("cannot write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(SandboxError::io(format!("cannot write {}", path.display())))
}

/// An exclusive lock on a stack's lock file, held until dropped; serialises read-modify-write of the
/// inventory between `restart_process`, `reconfigure` and `down` running in different processes.
pub(crate) struct StackLock(
    #[allow(dead_code, reason = "held for its lock, released on drop")] Flock<fs::File>,
);

impl StackLock {
    /// Blocks until the lock is held.
    pub(crate) fn acquire(paths: &StackPaths) -> Result<Self, SandboxError> {
        fs::create_dir_all(&paths.dir).map_err(SandboxError::io(format!(
            "cannot create {}",
            paths.dir.display()
        )))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(paths.lock())
            .map_err(SandboxError::io(format!(
                "cannot open {}",
                paths.lock().display()
            )))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| SandboxError::Io {
                context: format!("cannot lock {}", paths.lock().display()),
                source: errno.into(),
            })?;
        Ok(Self(lock))
    }
}
