//! The stack's own dead-man switch for faults: records of the faults in place on a stack, and
//! the supervisor process that undoes each one at its deadline.
//!
//! A fault driver (f3-chaos's local driver) writes a [`FaultRecord`] to
//! `<state_dir>/<stack>/faults/<id>.json` before it freezes or kills anything, and removes it when
//! it reverts the fault. `f3-sandbox up` starts one supervisor per stack (`f3-sandbox supervise`,
//! stopped by `down`), which reads the records every [`SUPERVISOR_POLL`] and undoes each one whose
//! deadline has passed. So a fault ends at its TTL even when every f3-chaos process, its own
//! watchdog included, was killed: the stack lifts it, as Chaos Mesh's daemon does on a cluster.
//!
//! Processes are identified by PID and start time (`/proc/PID/stat` field 22, clock ticks since
//! boot; proc(5)), so a recycled PID is never signalled.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::SandboxError;
use crate::procs;
use crate::state::StackPaths;

/// How often the supervisor reads the fault records: a fault ends at most this long after its
/// deadline (plus the time to undo it).
pub const SUPERVISOR_POLL: Duration = Duration::from_millis(100);

/// How long the supervisor waits before trying again to undo a fault it could not undo.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How a fault is undone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UndoAction {
    /// The targets were frozen (SIGSTOP): send SIGCONT.
    Resume,
    /// The targets were killed: restart them ([`crate::restart_process`]).
    Restart,
}

/// A process identified beyond its PID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessId {
    /// Sandbox process name (`gcp-node-0`) or `watchdog`.
    pub name: String,
    /// PID.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// `(state, start_time)` of a live (non-zombie) process (see [`procs::stat`]).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    procs::stat(pid).filter(|(state, _)| !matches!(state, 'Z' | 'X'))
}

impl ProcessId {
    /// Identifies the live process `pid` (None if it does not exist or is a zombie).
    pub fn of(name: &str, pid: u32) -> Option<Self> {
        proc_stat(pid).map(|(_, start_time)| Self {
            name: name.to_owned(),
            pid,
            start_time,
        })
    }

    /// Whether this very process (same PID and start time) is still alive.
    pub fn is_alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(_, start)| start == self.start_time)
    }

    /// Whether this process is alive and stopped (SIGSTOP).
    pub fn is_stopped(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, start)| start == self.start_time && state == 'T')
    }

    /// Sends `signal` if this is still the same process; a process that is gone is not an error.
    pub fn signal(&self, signal: Signal) -> Result<(), nix::Error> {
        if !self.is_alive() {
            return Ok(());
        }
        let pid = i32::try_from(self.pid).map_err(|_| nix::Error::EINVAL)?;
        match kill(Pid::from_raw(pid), signal) {
            Err(nix::Error::ESRCH) => Ok(()),
            other => other,
        }
    }
}

/// Undoes a fault: resume frozen targets or restart killed ones. Idempotent: targets that are
/// already running normally are left alone.
///
/// # Errors
/// One text naming every target that could not be undone (`SIGCONT gcp-node-0 (pid 42): …`).
pub fn undo(
    action: UndoAction,
    targets: &[ProcessId],
    state_dir: &Path,
    stack: &str,
) -> Result<(), String> {
    let mut errors = Vec::new();
    for target in targets {
        match action {
            UndoAction::Resume => {
                if let Err(e) = target.signal(Signal::SIGCONT) {
                    errors.push(format!("SIGCONT {} (pid {}): {e}", target.name, target.pid));
                }
            }
            UndoAction::Restart => {
                if target.is_alive() {
                    continue; // never killed
                }
                // Already restarted (by a watchdog, the supervisor or an earlier revert)?
                let current = crate::load_inventory(state_dir, stack)
                    .ok()
                    .and_then(|inv| inv.processes.into_iter().find(|p| p.name == target.name));
                if let Some(entry) = current
                    && entry.pid != target.pid
                    && ProcessId::of(&entry.name, entry.pid).is_some()
                {
                    continue;
                }
                if let Err(e) = crate::restart_process(state_dir, stack, &target.name) {
                    errors.push(format!("restart {}: {e}", target.name));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// A fault in place on a stack, as the supervisor reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultRecord {
    /// The fault's id (f3-chaos's ledger id); names the record's file, so only `[A-Za-z0-9-]`.
    pub id: String,
    /// When the stack undoes it (Unix epoch milliseconds).
    pub deadline_unix_ms: i64,
    /// How.
    pub action: UndoAction,
    /// What was frozen or killed.
    pub targets: Vec<ProcessId>,
}

fn faults_dir(paths: &StackPaths) -> PathBuf {
    paths.dir.join("faults")
}

fn record_path(paths: &StackPaths, id: &str) -> Result<PathBuf, SandboxError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(SandboxError::InvalidFault(format!(
            "fault id `{id}`: only letters, digits and `-`"
        )));
    }
    Ok(faults_dir(paths).join(format!("{id}.json")))
}

/// Records `fault` on stack `stack` (atomically: written aside, then renamed), so that the
/// stack's supervisor undoes it at its deadline. Call it before the fault is injected.
///
/// # Errors
/// The stack has no directory, or the record cannot be written.
pub fn record_fault(
    state_dir: &Path,
    stack: &str,
    fault: &FaultRecord,
) -> Result<(), SandboxError> {
    let paths = StackPaths::new(state_dir, stack);
    let path = record_path(&paths, &fault.id)?;
    let dir = faults_dir(&paths);
    fs::create_dir_all(&dir)
        .map_err(SandboxError::io(format!("cannot create {}", dir.display())))?;
    let aside = dir.join(format!(".{}.tmp", fault.id));
    let text = serde_json::to_vec(fault).map_err(|e| SandboxError::InvalidFault(e.to_string()))?;
    fs::write(&aside, text).map_err(SandboxError::io(format!(
        "cannot write {}",
        aside.display()
    )))?;
    fs::rename(&aside, &path).map_err(SandboxError::io(format!("cannot write {}", path.display())))
}

/// Removes the record of fault `id` (once it is reverted). Removing one that is gone is not an
/// error.
///
/// # Errors
/// The record exists and cannot be removed.
pub fn clear_fault(state_dir: &Path, stack: &str, id: &str) -> Result<(), SandboxError> {
    let path = record_path(&StackPaths::new(state_dir, stack), id)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::io(format!(
            "cannot remove {}",
            path.display()
        ))(e)),
    }
}

/// Removes every fault record of a stack (its processes were stopped or are being started
/// afresh).
pub(crate) fn forget_all(paths: &StackPaths) {
    let dir = faults_dir(paths);
    if let Err(e) = fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "Could not remove old fault records.");
    }
}

/// The faults recorded on the stack whose directory is `stack_dir`; unreadable records are
/// logged and skipped.
pub fn recorded_faults(stack_dir: &Path) -> Vec<(PathBuf, FaultRecord)> {
    let Ok(entries) = fs::read_dir(faults_dir(&StackPaths::from_dir(stack_dir))) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match fs::read(&path).map(|bytes| serde_json::from_slice::<FaultRecord>(&bytes)) {
            Ok(Ok(record)) => out.push((path, record)),
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "Unreadable fault record.")
            }
            // Removed between listing and reading: reverted meanwhile.
            Err(_) => {}
        }
    }
    out
}

/// Body of the hidden `f3-sandbox supervise --stack-dir DIR`: every [`SUPERVISOR_POLL`], undoes
/// each recorded fault whose deadline has passed and removes its record; a fault it cannot undo
/// is tried again every second. Runs until stopped (`down` stops it with the stack).
pub fn supervise(stack_dir: &Path) -> ! {
    let (state_dir, stack) = match (stack_dir.parent(), stack_dir.file_name()) {
        (Some(parent), Some(name)) => (parent.to_owned(), name.to_string_lossy().into_owned()),
        _ => {
            eprintln!(
                "supervise: {} is not a stack directory",
                stack_dir.display()
            );
            std::process::exit(2)
        }
    };
    let mut failed_at: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        for (path, record) in recorded_faults(stack_dir) {
            if record.deadline_unix_ms > now
                || failed_at
                    .get(&path)
                    .is_some_and(|at| at.elapsed() < RETRY_AFTER)
            {
                continue;
            }
            match undo(record.action, &record.targets, &state_dir, &stack) {
                Ok(()) => {
                    let late_ms = chrono::Utc::now().timestamp_millis() - record.deadline_unix_ms;
                    tracing::warn!(fault = %record.id, late_ms, "Fault outlived its deadline: undone by the stack's supervisor.");
                    let _ = fs::remove_file(&path);
                    failed_at.remove(&path);
                }
                Err(e) => {
                    tracing::error!(fault = %record.id, error = %e, "Could not undo a fault past its deadline; trying again.");
                    failed_at.insert(path, Instant::now());
                }
            }
        }
        std::thread::sleep(SUPERVISOR_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_read_back_and_cleared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let me = ProcessId::of("me", std::process::id()).expect("this process");
        let record = FaultRecord {
            id: "0193ab12-cd34".into(),
            deadline_unix_ms: 1_800_000_000_000,
            action: UndoAction::Resume,
            targets: vec![me],
        };
        record_fault(dir.path(), "s", &record).expect("record");
        let read = recorded_faults(&dir.path().join("s"));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1, record);
        clear_fault(dir.path(), "s", &record.id).expect("clear");
        assert!(recorded_faults(&dir.path().join("s")).is_empty());
        clear_fault(dir.path(), "s", &record.id).expect("clearing twice is fine");
    }

    #[test]
    fn a_fault_id_that_is_not_a_file_name_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = FaultRecord {
            id: "../../etc/passwd".into(),
            deadline_unix_ms: 0,
            action: UndoAction::Resume,
            targets: Vec::new(),
        };
        assert!(record_fault(dir.path(), "s", &record).is_err());
    }
}
