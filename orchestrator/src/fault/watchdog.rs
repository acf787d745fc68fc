//! The dead-man switch for local faults: a detached process that undoes a fault at its TTL.
//!
//! `inject` starts `f3-chaos __fault-watchdog <spec>` *before* signalling anything. That process
//! double-forks away from the orchestrator (own process group, re-parented to init), sleeps until
//! the deadline and then resumes (SIGCONT) or restarts the fault's targets. A normal revert
//! terminates it. So `kill -9` of f3-chaos mid-fault still ends the fault at its TTL.
//!
//! Processes are identified by PID and start time (`f3_sandbox::faults::ProcessId`), so a
//! recycled PID is never signalled. The stack's own supervisor (`f3_sandbox::faults`) is the
//! second switch: it undoes the same fault at the same deadline if this watchdog is gone too.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The hidden subcommand that runs a watchdog.
pub const SUBCOMMAND: &str = "__fault-watchdog";

pub use f3_sandbox::faults::{ProcessId, UndoAction, undo};

/// Everything the watchdog process needs, passed as JSON on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchdogSpec {
    /// When to undo the fault (Unix epoch milliseconds).
    pub deadline_unix_ms: i64,
    /// How to undo it.
    pub action: UndoAction,
    /// The fault's targets.
    pub targets: Vec<ProcessId>,
    /// Sandbox state directory (for restarts).
    pub sandbox_state_dir: PathBuf,
    /// Sandbox stack name (for restarts).
    pub sandbox_stack: String,
    /// Fault ledger entry, for the log line.
    pub ledger_id: Uuid,
}

/// Starts a detached watchdog for `spec` and returns its identity.
///
/// Errors: the executable cannot be found or spawned, or the intermediate process did not report
/// the watchdog's PID.
pub fn spawn(spec: &WatchdogSpec) -> std::io::Result<ProcessId> {
    let exe = f3_chaos_binary()?;
    let json = serde_json::to_string(spec).map_err(std::io::Error::other)?;
    // The intermediate process spawns the real watchdog, prints its PID and exits at once, so
    // the watchdog is re-parented to init and never becomes our zombie.
    let mut child = Command::new(exe)
        .args([SUBCOMMAND, "--detach", &json])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    child.wait()?;
    let pid: u32 = out.trim().parse().map_err(|_| {
        std::io::Error::other(format!(
            "watchdog did not report its pid (got `{}`)",
            out.trim()
        ))
    })?;
    ProcessId::of("watchdog", pid).ok_or_else(|| std::io::Error::other("watchdog exited at once"))
}

/// Environment variable naming the `f3-chaos` binary that runs watchdogs (for programs that embed
/// the library, such as benchmarks).
pub const BIN_ENV: &str = "F3_CHAOS_BIN";

/// The `f3-chaos` executable: `$F3_CHAOS_BIN`; else this executable when it is `f3-chaos`; else an
/// `f3-chaos` next to (or one directory above) this executable.
fn f3_chaos_binary() -> std::io::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    if exe
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("f3-chaos"))
    {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    [dir.join("f3-chaos"), dir.join("../f3-chaos")]
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "cannot find the f3-chaos binary for the fault watchdog; set {BIN_ENV}"
            ))
        })
}

/// Body of `f3-chaos __fault-watchdog [--detach] SPEC`. With `--detach` it only starts the real
/// watchdog (in its own process group) and prints its PID.
pub fn main(detach: bool, spec_json: &str) -> anyhow::Result<u8> {
    let spec: WatchdogSpec = serde_json::from_str(spec_json)?;
    if detach {
        let child = Command::new(std::env::current_exe()?) // this is f3-chaos
            .args([SUBCOMMAND, spec_json])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        println!("{}", child.id());
        return Ok(0);
    }
    loop {
        let left = spec.deadline_unix_ms - chrono::Utc::now().timestamp_millis();
        if left <= 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(left.min(200) as u64));
    }
    match undo(
        spec.action,
        &spec.targets,
        &spec.sandbox_state_dir,
        &spec.sandbox_stack,
    ) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("fault watchdog {}: {e}", spec.ledger_id);
            Ok(crate::exit_codes::CLEANUP_FAILED)
        }
    }
}
