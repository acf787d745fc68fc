//! Operating-system processes of a stack: spawning detached children, recognising our own
//! processes by their command line (`/proc/PID/cmdline`) before signalling them, and stopping them.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::SandboxError;

/// Spawns `command` (program first) in its own process group, stdin from /dev/null, stdout and
/// stderr appended to `log`; it survives the caller exiting. Returns the child so the caller may
/// reap it (see [`reap_in_background`]).
pub(crate) fn spawn_detached(command: &[String], log: &Path) -> Result<Child, SandboxError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| SandboxError::InvalidSettings("empty command".into()))?;
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)
            .map_err(SandboxError::io(format!("cannot create {}", dir.display())))?;
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(SandboxError::io(format!("cannot open {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(SandboxError::io(format!("cannot open {}", log.display())))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group: a Ctrl-C in the terminal that ran `up` does not reach the stack.
        .process_group(0)
        .spawn()
        .map_err(SandboxError::io(format!("cannot start {program}")))
}

/// Waits for `child` on a background thread so it never lingers as a zombie of a long-running
/// caller (the orchestrator restarting a node).
pub(crate) fn reap_in_background(mut child: Child) {
    let _ = std::thread::Builder::new()
        .name("f3-sandbox-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
}

/// The command line of `pid`, or None when it does not exist (or is a zombie: empty cmdline).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let mut args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if raw.last() == Some(&0) {
        args.pop();
    }
    Some(args)
}

/// The scheduler state letter of `pid` from `/proc/PID/stat` (`R`, `S`, `T` stopped, `Z` zombie…).
pub fn state(pid: u32) -> Option<char> {
    stat(pid).map(|(state, _)| state)
}

/// `(state, start_time)` of `pid` from `/proc/PID/stat` (proc(5)): the state letter (field 3) and
/// the start time in clock ticks after boot (field 22), which tells a process from a later one
/// given the same PID. None if there is no such process.
pub fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Format: `pid (comm) state …`; comm may contain spaces and parentheses, so split at the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22, i.e. 19 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    pid != 0 && !matches!(state(pid), None | Some('Z') | Some('X'))
}

/// Whether `pid` is running with exactly `command` as its command line: the check made before
/// any signal, so a recycled PID is never killed.
pub fn is_ours(pid: u32, command: &[String]) -> bool {
    is_running(pid) && cmdline(pid).as_deref() == Some(command)
}

/// Processes (other than this one) whose command line marks them as belonging to the stack in
/// `stack_dir`: our children carry `--stack-dir <dir>`, Prometheus and Alertmanager a
/// `--config.file=<dir>/…`. Used by `down` to catch processes missing from the inventory.
pub(crate) fn sweep(stack_dir: &Path) -> Vec<u32> {
    let dir = stack_dir.to_string_lossy().into_owned();
    let config_prefix = format!("--config.file={dir}/");
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && is_running(*pid))
        .filter(|pid| {
            cmdline(*pid).is_some_and(|args| {
                args.windows(2)
                    .any(|w| w[0] == "--stack-dir" && w[1] == dir)
                    || args.iter().any(|a| a.starts_with(&config_prefix))
            })
        })
        .collect()
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), sig);
    }
}

/// Stops `pids`: SIGTERM (plus SIGCONT, so a process frozen by a fault can act on it), wait up to
/// `grace`, then SIGKILL whatever is left. Callers check ownership first. Returns the PIDs still
/// running after SIGKILL (normally none).
pub(crate) fn stop(pids: &[u32], grace: Duration) -> Vec<u32> {
    for pid in pids {
        signal(*pid, Signal::SIGTERM);
        signal(*pid, Signal::SIGCONT);
    }
    let left = wait_gone(pids, Instant::now() + grace);
    if left.is_empty() {
        return left;
    }
    for pid in &left {
        signal(*pid, Signal::SIGKILL);
    }
    wait_gone(&left, Instant::now() + Duration::from_secs(2))
}

/// Polls until none of `pids` is running or `deadline` passes; returns those still running.
fn wait_gone(pids: &[u32], deadline: Instant) -> Vec<u32> {
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| is_running(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_recognised() {
        let me = std::process::id();
        assert!(is_running(me));
        let cmd = cmdline(me).expect("own cmdline");
        assert!(is_ours(me, &cmd));
        assert!(!is_ours(me, &["something-else".to_string()]));
    }

    #[test]
    fn spawned_child_stops_on_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmd = vec!["sleep".to_string(), "30".to_string()];
        let child = spawn_detached(&cmd, &dir.path().join("sleep.log")).expect("spawn sleep");
        let pid = child.id();
        reap_in_background(child);
        // Between fork and exec the child still shows the test binary's command line.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_ours(pid, &cmd) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_ours(pid, &cmd));
        assert!(stop(&[pid], Duration::from_secs(2)).is_empty());
        assert!(!is_running(pid));
    }
}
