//! Starting a real server process (Prometheus, Alertmanager) for one test: a free loopback port,
//! its output in a log file, and a wait for its readiness endpoint (`GET /-/ready` answering 200,
//! the convention of the Prometheus project's servers).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback address whose port was free a moment ago (bound and released at once). Nothing
/// listens there until somebody binds it, so connections to it are refused.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free loopback port")
}

/// The last 40 lines of the log file at `log` (empty if it cannot be read).
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `installed` (the Debian package's path) when it exists, else `name` looked up on `PATH`.
pub fn installed_or_on_path(installed: &str, name: &str) -> PathBuf {
    let installed = PathBuf::from(installed);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(name)
    }
}

/// Starts the server `command(addr)` on a free loopback port with stdin closed and stdout and
/// stderr appended to `log`, and waits up to `timeout` until `GET http://addr/-/ready` answers
/// 200. A port can be taken between probing and binding, so this tries three ports.
///
/// # Panics
/// When the program cannot be started (`install_hint` tells how to get it), or when it never
/// becomes ready: the message names `what` and ends with the tail of its log.
pub async fn start_ready(
    what: &str,
    install_hint: &str,
    log: &Path,
    timeout: Duration,
    command: impl Fn(SocketAddr) -> Command,
) -> (Child, SocketAddr) {
    let mut last_error = String::new();
    for _ in 0..3 {
        let addr = free_port();
        let out =
            std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let mut command = command(addr);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); {install_hint}",
                    command.get_program().to_string_lossy()
                )
            });
        match wait_ready(&mut child, addr, log, timeout).await {
            Ok(()) => return (child, addr),
            Err(error) => {
                last_error = error;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("{what} did not become ready {last_error}");
}

/// Polls `/-/ready` until 200; on exit or timeout returns why, with the log tail.
async fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    log: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/-/ready");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "(exited with {status}); its log ends with:\n{}",
                log_tail(log)
            ));
        }
        if let Ok(resp) = http.get(&url).timeout(Duration::from_secs(1)).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "(not ready after {timeout:?}); its log ends with:\n{}",
                log_tail(log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
