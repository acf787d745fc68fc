//! Stack lifecycle: `up` (spawn, wait ready, write the inventory), `down`, `restart_process`,
//! `reconfigure`, and reading a running stack's inventory.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::settings::{CLOUDS, GatewayArgs, StackSettings};
use crate::state::{StackLock, StackPaths};
use crate::{Inventory, ProcessEntry, Role, SandboxError, ports, procs, prometheus};

/// How long `up` waits for the whole stack to become ready (the contract is "under 10 s").
pub const UP_TIMEOUT: Duration = Duration::from_millis(9_500);
/// How long a restarted or reconfigured process may take to become ready.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5);
/// Grace between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Environment variable naming the binary to run the stack's own processes with.
pub const BIN_ENV: &str = "F3_SANDBOX_BIN";

/// Name of node `index` of `cloud`, e.g. `gcp-node-0`.
pub fn node_name(cloud: &str, index: u8) -> String {
    format!("{cloud}-node-{index}")
}

/// Full path of `program` found on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The inventory of a running stack. Fails with [`SandboxError::NotRunning`] when the stack has no
/// inventory or none of its processes is running any more.
pub fn load_inventory(state_dir: &Path, stack: &str) -> Result<Inventory, SandboxError> {
    let paths = StackPaths::new(state_dir, stack);
    let path = paths.inventory();
    if !path.exists() {
        return Err(SandboxError::NotRunning {
            stack: stack.to_string(),
        });
    }
    let inv = Inventory::read(&path)?;
    if !inv
        .processes
        .iter()
        .any(|p| procs::is_ours(p.pid, &p.command))
    {
        return Err(SandboxError::NotRunning {
            stack: stack.to_string(),
        });
    }
    Ok(inv)
}

/// The program (and leading arguments) that runs this crate's CLI, for the stack's own processes:
/// `$F3_SANDBOX_BIN`; else this executable when it is `f3-sandbox`; `f3-chaos sandbox` when it is
/// `f3-chaos`; else an `f3-sandbox` next to (or one directory above) this executable.
fn self_command() -> Result<Vec<String>, SandboxError> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        return Ok(vec![bin.to_string_lossy().into_owned()]);
    }
    let exe = std::env::current_exe()
        .map_err(SandboxError::io("cannot locate the running executable"))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let exe_str = exe.to_string_lossy().into_owned();
    if name.starts_with("f3-sandbox") {
        return Ok(vec![exe_str]);
    }
    if name.starts_with("f3-chaos") {
        return Ok(vec![exe_str, "sandbox".into()]);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    for candidate in [dir.join("f3-sandbox"), dir.join("../f3-sandbox")] {
        if candidate.is_file() {
            let c = fs::canonicalize(&candidate).unwrap_or(candidate);
            return Ok(vec![c.to_string_lossy().into_owned()]);
        }
    }
    Err(SandboxError::InvalidSettings(format!(
        "cannot find the f3-sandbox binary; set {BIN_ENV}"
    )))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn child_command(
    me: &[String],
    sub: &str,
    paths: &StackPaths,
    stack: &str,
    name: &str,
    port: u16,
) -> Vec<String> {
    let mut cmd = me.to_vec();
    cmd.extend([
        sub.to_string(),
        "--stack-dir".into(),
        paths.dir.to_string_lossy().into_owned(),
        "--stack".into(),
        stack.into(),
        "--name".into(),
        name.into(),
        "--port".into(),
        port.to_string(),
    ]);
    cmd
}

fn gateway_command(me: &[String], paths: &StackPaths, settings: &StackSettings) -> Vec<String> {
    let base = settings.port_base;
    let mut cmd = child_command(
        me,
        "gateway",
        paths,
        &settings.stack,
        "gateway",
        ports::gateway(base),
    );
    for cloud in CLOUDS {
        for i in 0..settings.nodes_per_cloud {
            cmd.push("--backend".into());
            cmd.push(crate::child::gateway::backend_arg(
                cloud,
                &node_name(cloud, i),
                ports::node(base, cloud, i),
            ));
        }
    }
    cmd.extend(settings.gateway.to_args());
    cmd
}

/// The processes of a stack (PIDs 0 until spawned), in start order.
fn plan(
    me: &[String],
    paths: &StackPaths,
    s: &StackSettings,
) -> Result<Vec<ProcessEntry>, SandboxError> {
    let base = s.port_base;
    let stack = s.stack.as_str();
    let mut out = Vec::new();
    let prometheus_bin = which("prometheus").ok_or_else(|| SandboxError::ProgramMissing {
        program: "prometheus".into(),
        install: "apt-get install prometheus".into(),
    })?;
    out.push(ProcessEntry {
        name: "prometheus".into(),
        role: Role::Prometheus,
        pid: 0,
        port: ports::prometheus(base),
        labels: labels(&[("app", "prometheus"), ("stack", stack)]),
        command: prometheus::prometheus_command(&prometheus_bin, paths, ports::prometheus(base)),
    });
    if s.alertmanager {
        let bin = which("prometheus-alertmanager")
            .or_else(|| which("alertmanager"))
            .ok_or_else(|| SandboxError::ProgramMissing {
                program: "prometheus-alertmanager".into(),
                install: "apt-get install prometheus-alertmanager".into(),
            })?;
        out.push(ProcessEntry {
            name: "alertmanager".into(),
            role: Role::Alertmanager,
            pid: 0,
            port: ports::alertmanager(base),
            labels: labels(&[("app", "alertmanager"), ("stack", stack)]),
            command: prometheus::alertmanager_command(&bin, paths, ports::alertmanager(base)),
        });
    }
    for cloud in CLOUDS {
        let cluster = format!("{stack}-{cloud}");
        for i in 0..s.nodes_per_cloud {
            let name = node_name(cloud, i);
            let port = ports::node(base, cloud, i);
            let mut command = child_command(me, "node", paths, stack, &name, port);
            command.extend([
                "--cloud".into(),
                cloud.into(),
                "--latency-ms".into(),
                s.node_latency_ms.to_string(),
            ]);
            out.push(ProcessEntry {
                labels: labels(&[
                    ("app", "payment-node"),
                    ("stack", stack),
                    ("cloud", cloud),
                    ("cluster", &cluster),
                    ("node", &name),
                ]),
                name,
                role: Role::PaymentNode,
                pid: 0,
                port,
                command,
            });
        }
    }
    out.push(ProcessEntry {
        name: "gateway".into(),
        role: Role::Gateway,
        pid: 0,
        port: ports::gateway(base),
        labels: labels(&[("app", "gateway"), ("stack", stack)]),
        command: gateway_command(me, paths, s),
    });
    let mut sim = child_command(
        me,
        "simulator",
        paths,
        stack,
        "simulator",
        ports::simulator(base),
    );
    sim.extend([
        "--gateway-url".into(),
        format!("http://127.0.0.1:{}", ports::gateway(base)),
        "--tps".into(),
        s.tps.to_string(),
        "--tick".into(),
        format!("{}ms", s.load_tick_ms),
    ]);
    out.push(ProcessEntry {
        name: "simulator".into(),
        role: Role::Simulator,
        pid: 0,
        port: ports::simulator(base),
        labels: labels(&[("app", "simulator"), ("stack", stack)]),
        command: sim,
    });
    Ok(out)
}

/// The URL that answers 200 once a process is ready.
fn ready_url(p: &ProcessEntry) -> String {
    match p.role {
        Role::Prometheus | Role::Alertmanager => format!("http://127.0.0.1:{}/-/ready", p.port),
        _ => format!("http://127.0.0.1:{}/health", p.port),
    }
}

/// Runs `fut` to completion on a private current-thread runtime on a scoped thread, so the
/// synchronous API works from plain threads and from inside a caller's tokio runtime alike.
fn run_async<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(fut))
            })
            .join()
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    .unwrap_or_else(|e| panic!("cannot build a tokio runtime: {e}"))
}

/// Waits until every process answers its readiness URL, failing early when one dies.
fn wait_ready(
    paths: &StackPaths,
    processes: &[&ProcessEntry],
    deadline: Instant,
    started: Instant,
) -> Result<(), SandboxError> {
    run_async(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .map_err(|source| SandboxError::Http {
                context: "cannot build an HTTP client".into(),
                source,
            })?;
        let mut pending: Vec<&ProcessEntry> = processes.to_vec();
        loop {
            let mut still = Vec::new();
            for p in pending {
                let ok = matches!(client.get(ready_url(p)).send().await, Ok(r) if r.status().is_success());
                if !ok {
                    if !procs::is_running(p.pid) {
                        return Err(SandboxError::NotReady {
                            name: format!("{} (exited)", p.name),
                            waited_ms: started.elapsed().as_millis(),
                            log: paths.log(&p.name),
                        });
                    }
                    still.push(p);
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::NotReady {
                    name: still[0].name.clone(),
                    waited_ms: started.elapsed().as_millis(),
                    log: paths.log(&still[0].name),
                });
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn check_ports(processes: &[ProcessEntry], port_base: u16) -> Result<(), SandboxError> {
    for p in processes {
        if TcpListener::bind(("127.0.0.1", p.port)).is_err() {
            return Err(SandboxError::PortInUse {
                port: p.port,
                purpose: p.name.clone(),
                port_base,
            });
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), SandboxError> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|source| SandboxError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    json.push(b'\n');
    crate::state::write_atomic(path, &json)
}

fn read_settings(path: &Path) -> Result<StackSettings, SandboxError> {
    let text =
        fs::read(path).map_err(SandboxError::io(format!("cannot read {}", path.display())))?;
    serde_json::from_slice(&text).map_err(|source| SandboxError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn spawn(paths: &StackPaths, p: &mut ProcessEntry) -> Result<(), SandboxError> {
    let child = procs::spawn_detached(&p.command, &paths.log(&p.name))?;
    p.pid = child.id();
    procs::reap_in_background(child);
    Ok(())
}

/// Starts a stack under `state_dir` with `settings` and waits until every process (Prometheus
/// included) is ready; writes and returns the inventory. On failure everything started is stopped.
pub fn up(state_dir: &Path, settings: &StackSettings) -> Result<Inventory, SandboxError> {
    let started = Instant::now();
    let deadline = started + UP_TIMEOUT;
    settings.validate()?;
    let stack = settings.stack.as_str();
    let paths = StackPaths::new(state_dir, stack);
    let _lock = StackLock::acquire(&paths)?;
    let running = Inventory::read(&paths.inventory())
        .map(|inv| {
            inv.processes
                .iter()
                .any(|p| procs::is_ours(p.pid, &p.command))
        })
        .unwrap_or(false);
    if running {
        return Err(SandboxError::AlreadyRunning {
            stack: stack.into(),
            inventory: paths.inventory(),
        });
    }
    // Leftovers of a crashed `up` (no inventory, or a stale one): stop them before reusing the ports.
    let leftovers = procs::sweep(&paths.dir);
    if !leftovers.is_empty() {
        tracing::warn!(
            stack,
            count = leftovers.len(),
            "Stopping leftover processes of an earlier run."
        );
        procs::stop(&leftovers, STOP_GRACE);
    }
    // Fault records of an earlier incarnation name processes that no longer exist.
    crate::faults::forget_all(&paths);
    let me = self_command()?;
    let mut processes = plan(&me, &paths, settings)?;
    check_ports(&processes, settings.port_base)?;

    for dir in [paths.prometheus_data(), paths.alertmanager_data()] {
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(SandboxError::io(format!("cannot remove {}", dir.display())))?;
        }
    }
    for dir in [paths.logs(), paths.prometheus_rules()] {
        fs::create_dir_all(&dir)
            .map_err(SandboxError::io(format!("cannot create {}", dir.display())))?;
    }
    write_json(&paths.settings(), settings)?;
    write_json(
        &paths.prometheus_config(),
        &prometheus::config(settings, &paths),
    )?;
    if settings.alertmanager {
        write_json(
            &paths.alertmanager_config(),
            &prometheus::alertmanager_config(),
        )?;
    }

    let mut inv = Inventory {
        stack: stack.into(),
        state_dir: paths.dir.clone(),
        prometheus_url: format!("http://127.0.0.1:{}", ports::prometheus(settings.port_base)),
        alertmanager_url: settings.alertmanager.then(|| {
            format!(
                "http://127.0.0.1:{}",
                ports::alertmanager(settings.port_base)
            )
        }),
        processes: Vec::new(),
        fingerprint: String::new(),
        started_at: chrono::Utc::now(),
        port_base: settings.port_base,
        gateway_url: format!("http://127.0.0.1:{}", ports::gateway(settings.port_base)),
        simulator_url: format!("http://127.0.0.1:{}", ports::simulator(settings.port_base)),
        settings_path: paths.settings(),
        gateway_profile: settings.gateway.profile.to_string(),
    };
    let result = (|| {
        // Start order: Prometheus (slowest to get ready) and nodes together, then the gateway once
        // every node answers, then the simulator once the gateway does — so no payment fails at start.
        let (first, then): (Vec<_>, Vec<_>) = processes
            .drain(..)
            .partition(|p| !matches!(p.role, Role::Gateway | Role::Simulator));
        for mut p in first {
            spawn(&paths, &mut p)?;
            inv.processes.push(p);
        }
        // Record PIDs as soon as they exist, so `down` can clean up after an interrupted `up`.
        inv.write(&paths.inventory())?;
        let nodes: Vec<&ProcessEntry> = inv
            .processes
            .iter()
            .filter(|p| p.role == Role::PaymentNode)
            .collect();
        wait_ready(&paths, &nodes, deadline, started)?;
        for mut p in then {
            spawn(&paths, &mut p)?;
            inv.processes.push(p);
            inv.write(&paths.inventory())?;
            let last: Vec<&ProcessEntry> = inv.processes.last().into_iter().collect();
            wait_ready(&paths, &last, deadline, started)?;
        }
        let all: Vec<&ProcessEntry> = inv.processes.iter().collect();
        wait_ready(&paths, &all, deadline, started)?;
        inv.fingerprint = crate::current_fingerprint(&inv)?;
        inv.write(&paths.inventory())?;
        // The stack's own dead-man switch for faults (`crate::faults`). Like the expiry below it
        // is no part of the platform: not in the inventory; `down` finds it by its `--stack-dir`.
        let mut supervise = me.clone();
        supervise.extend([
            "supervise".into(),
            "--stack-dir".into(),
            paths.dir.to_string_lossy().into_owned(),
        ]);
        let child = procs::spawn_detached(&supervise, &paths.log("supervise"))?;
        procs::reap_in_background(child);
        if let Some(ttl) = settings.ttl_secs {
            // Not in the inventory (it is no part of the platform); `down` finds it by its
            // `--stack-dir` and stops it with the rest.
            let mut cmd = me.clone();
            cmd.extend([
                "expire".into(),
                "--stack-dir".into(),
                paths.dir.to_string_lossy().into_owned(),
                "--after".into(),
                format!("{ttl}s"),
            ]);
            let child = procs::spawn_detached(&cmd, &paths.log("expire"))?;
            procs::reap_in_background(child);
        }
        Ok(())
    })();
    if let Err(err) = result {
        let pids: Vec<u32> = inv
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|pid| *pid != 0)
            .collect();
        procs::stop(&pids, STOP_GRACE);
        let _ = fs::remove_file(paths.inventory());
        return Err(err);
    }
    tracing::info!(
        stack,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Stack up."
    );
    Ok(inv)
}

/// What `down` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownReport {
    /// Whether there was an inventory.
    pub had_inventory: bool,
    /// PIDs signalled (inventory processes still running plus any stray process of the stack).
    pub stopped: Vec<u32>,
}

/// Stops every process of a stack (verified by command line before signalling: SIGTERM, then
/// SIGKILL after a grace period) and removes its inventory. Safe to run when nothing runs.
pub fn down(state_dir: &Path, stack: &str) -> Result<DownReport, SandboxError> {
    let paths = StackPaths::new(state_dir, stack);
    if !paths.dir.exists() {
        return Ok(DownReport {
            had_inventory: false,
            stopped: Vec::new(),
        });
    }
    let _lock = StackLock::acquire(&paths)?;
    let inv = Inventory::read(&paths.inventory()).ok();
    let mut pids: Vec<u32> = inv
        .iter()
        .flat_map(|inv| inv.processes.iter())
        .filter(|p| procs::is_ours(p.pid, &p.command))
        .map(|p| p.pid)
        .collect();
    for pid in procs::sweep(&paths.dir) {
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    let left = procs::stop(&pids, STOP_GRACE);
    if !left.is_empty() {
        return Err(SandboxError::StopFailed(format!(
            "processes {left:?} of stack `{stack}`"
        )));
    }
    crate::faults::forget_all(&paths);
    if paths.inventory().exists() {
        fs::remove_file(paths.inventory()).map_err(SandboxError::io(format!(
            "cannot remove {}",
            paths.inventory().display()
        )))?;
    }
    Ok(DownReport {
        had_inventory: inv.is_some(),
        stopped: pids,
    })
}

/// Restarts process `name` of a stack with its recorded command when it is not running (killed by
/// a fault), waits until it is ready and records its new PID. A process that is running (or
/// frozen) is left alone and returned as it is. Nothing else ever restarts a process.
pub fn restart_process(
    state_dir: &Path,
    stack: &str,
    name: &str,
) -> Result<ProcessEntry, SandboxError> {
    let paths = StackPaths::new(state_dir, stack);
    let _lock = StackLock::acquire(&paths)?;
    let mut inv = load_inventory(state_dir, stack)?;
    let index = inv
        .processes
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| SandboxError::UnknownProcess {
            stack: stack.into(),
            name: name.into(),
        })?;
    if procs::is_ours(inv.processes[index].pid, &inv.processes[index].command) {
        return Ok(inv.processes[index].clone());
    }
    let started = Instant::now();
    spawn(&paths, &mut inv.processes[index])?;
    inv.write(&paths.inventory())?;
    wait_ready(
        &paths,
        &[&inv.processes[index]],
        started + RESTART_TIMEOUT,
        started,
    )?;
    tracing::info!(
        stack,
        name,
        pid = inv.processes[index].pid,
        "Process restarted."
    );
    Ok(inv.processes[index].clone())
}

/// Changes the gateway settings of a running stack: rewrites `settings.json`, restarts the gateway
/// with the new settings and records the new fingerprint (which differs: settings and command line
/// changed). Returns the updated inventory.
pub fn reconfigure(
    state_dir: &Path,
    stack: &str,
    args: &GatewayArgs,
) -> Result<Inventory, SandboxError> {
    let paths = StackPaths::new(state_dir, stack);
    let _lock = StackLock::acquire(&paths)?;
    let mut inv = load_inventory(state_dir, stack)?;
    let mut settings = read_settings(&paths.settings())?;
    settings.gateway = args.apply(&settings.gateway);
    settings.validate()?;
    let me = self_command()?;
    let index = inv
        .processes
        .iter()
        .position(|p| p.role == Role::Gateway)
        .ok_or_else(|| SandboxError::UnknownProcess {
            stack: stack.into(),
            name: "gateway".into(),
        })?;
    let old = &inv.processes[index];
    if procs::is_ours(old.pid, &old.command) {
        let left = procs::stop(&[old.pid], STOP_GRACE);
        if !left.is_empty() {
            return Err(SandboxError::StopFailed(format!(
                "the gateway (pid {})",
                old.pid
            )));
        }
    }
    write_json(&paths.settings(), &settings)?;
    let started = Instant::now();
    inv.processes[index].command = gateway_command(&me, &paths, &settings);
    spawn(&paths, &mut inv.processes[index])?;
    inv.gateway_profile = settings.gateway.profile.to_string();
    inv.write(&paths.inventory())?;
    wait_ready(
        &paths,
        &[&inv.processes[index]],
        started + RESTART_TIMEOUT,
        started,
    )?;
    inv.fingerprint = crate::current_fingerprint(&inv)?;
    inv.write(&paths.inventory())?;
    tracing::info!(stack, profile = %inv.gateway_profile, "Gateway reconfigured.");
    Ok(inv)
}

/// Reads the simulator's target rate (`tps = None`) or sets it; returns the rate in force.
pub fn load(inv: &Inventory, tps: Option<f64>) -> Result<f64, SandboxError> {
    let url = format!("{}/tps", inv.simulator_url);
    run_async(async move {
        let http = |source| SandboxError::Http {
            context: format!("cannot reach the simulator at {url}"),
            source,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(http)?;
        let req = match tps {
            Some(tps) => client
                .post(&url)
                .json(&crate::child::simulator::Tps { tps }),
            None => client.get(&url),
        };
        let body: crate::child::simulator::Tps = req
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(http)?
            .json()
            .await
            .map_err(http)?;
        Ok(body.tps)
    })
}
