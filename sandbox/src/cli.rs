//! The `f3-sandbox` command line, also reachable as `f3-chaos sandbox …` through [`cli_main`].
//!
//! Exit codes: 0 success; 1 error; 2 invalid arguments; 3 the stack is not running (`status`,
//! `load`, `restart`, `reconfigure`, `fingerprint`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::child::{gateway, node, simulator};
use crate::settings::{GatewayArgs, GatewayProfile, GatewaySettings, StackSettings};
use crate::{Inventory, SandboxError, current_fingerprint, default_state_dir, ports, procs, stack};

/// `println!` that ignores a closed stdout (`f3-sandbox status | head` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit code: the stack is not running.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// A local three-cloud payment platform (gcp, aws, azure node processes, a gateway with failover,
/// a payment simulator) with a real Prometheus: the system under test of f3-chaos.
#[derive(Debug, Parser)]
#[command(
    name = "f3-sandbox",
    version,
    after_help = "Exit codes: 0 success, 1 error, 2 invalid arguments, 3 stack not running.\nDocs: docs/sandbox.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a stack and wait until it is ready (Prometheus included); prints its inventory.
    Up(UpArgs),
    /// Stop every process of a stack (safe to run twice).
    Down(StackArgs),
    /// Show a stack's processes, URLs and fingerprint.
    Status(StatusArgs),
    /// Change the gateway settings of a running stack (restarts the gateway; changes the fingerprint).
    Reconfigure(ReconfigureArgs),
    /// Restart a process of a stack that is not running (e.g. killed by a fault).
    Restart(RestartArgs),
    /// Show or set the simulator's load in payments per second.
    Load(LoadArgs),
    /// Print the stack fingerprint, recomputed from the live processes.
    Fingerprint(StackArgs),
    /// (internal) A payment-API node.
    #[command(hide = true)]
    Node(node::NodeArgs),
    /// (internal) The gateway.
    #[command(hide = true)]
    Gateway(gateway::GatewayProcessArgs),
    /// (internal) The payment simulator.
    #[command(hide = true)]
    Simulator(simulator::SimulatorArgs),
    /// (internal) Stops the stack after its `--ttl` (started by `up --ttl`).
    #[command(hide = true)]
    Expire(ExpireArgs),
    /// (internal) The stack's fault supervisor: undoes recorded faults at their deadline
    /// (started by `up`, stopped by `down`; see `f3_sandbox::faults`).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

/// Arguments of the hidden `supervise` process.
#[derive(Debug, clap::Args)]
struct SuperviseArgs {
    /// The stack directory (`<state_dir>/<stack>`).
    #[arg(long)]
    stack_dir: PathBuf,
}

/// Arguments of the hidden `expire` process.
#[derive(Debug, clap::Args)]
struct ExpireArgs {
    /// The stack directory (`<state_dir>/<stack>`).
    #[arg(long)]
    stack_dir: PathBuf,
    /// When to stop the stack.
    #[arg(long, value_parser = humantime::parse_duration)]
    after: std::time::Duration,
}

/// Which stack.
#[derive(Debug, Clone, clap::Args)]
struct StackArgs {
    /// Stack name.
    #[arg(long, default_value = "local")]
    stack: String,
    /// State directory (default: $F3_SANDBOX_STATE_DIR, $XDG_STATE_HOME/f3-sandbox or ~/.local/state/f3-sandbox).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

impl StackArgs {
    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// First port of the stack's range: gateway +0, simulator +1, nodes +10.., Prometheus +90, Alertmanager +93.
    #[arg(long, default_value_t = ports::DEFAULT_PORT_BASE)]
    port_base: u16,
    /// Payment-API nodes per cloud (1–10).
    #[arg(long, default_value_t = 2)]
    nodes_per_cloud: u8,
    /// Initial load in payments per second.
    #[arg(long, default_value_t = 300.0)]
    tps: f64,
    /// Processing time of one payment on a node, in milliseconds.
    #[arg(long, default_value_t = 2)]
    node_latency_ms: u64,
    /// The simulator's load tick: every tick sends the payments due (tps × tick).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "50ms")]
    load_tick: std::time::Duration,
    /// Stop the whole stack by itself after this long (a dead-man switch for tests and demos;
    /// default: run until `down`).
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<std::time::Duration>,
    /// Also start an Alertmanager (port base + 93) wired to the stack's Prometheus.
    #[arg(long)]
    alertmanager: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Output format of the inventory.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct ReconfigureArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, clap::Args)]
struct RestartArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Process name, e.g. `gcp-node-0` (see `status`).
    name: String,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// New target rate in payments per second (omit to show the current one).
    #[arg(long)]
    tps: Option<f64>,
}

/// Runs the sandbox command line with `args` (program name first) and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    ExitCode::from(cli_exit_code(args))
}

/// [`cli_main`] returning the exit code as a number (for callers that map codes themselves, such
/// as `f3-chaos sandbox`).
pub fn cli_exit_code(args: impl IntoIterator<Item = OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Node(args) => return child_exit(node::run(args)),
        Command::Gateway(args) => return child_exit(gateway::run(args)),
        Command::Simulator(args) => return child_exit(simulator::run(args)),
        Command::Supervise(args) => {
            init_cli_logging();
            crate::faults::supervise(&args.stack_dir)
        }
        Command::Expire(args) => {
            init_cli_logging();
            std::thread::sleep(args.after);
            let (Some(state_dir), Some(name)) =
                (args.stack_dir.parent(), args.stack_dir.file_name())
            else {
                return 2;
            };
            eprintln!("TTL reached: stopping the stack.");
            stack::down(state_dir, &name.to_string_lossy()).map(|_| ())
        }
        command => {
            init_cli_logging();
            run(command)
        }
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            if matches!(err, SandboxError::NotRunning { .. }) {
                EXIT_NOT_RUNNING
            } else {
                1
            }
        }
    }
}

fn child_exit(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    }
}

fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("F3_SANDBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(command: Command) -> Result<(), SandboxError> {
    match command {
        Command::Up(args) => {
            let settings = StackSettings {
                stack: args.stack.stack.clone(),
                port_base: args.port_base,
                nodes_per_cloud: args.nodes_per_cloud,
                tps: args.tps,
                node_latency_ms: args.node_latency_ms,
                load_tick_ms: u64::try_from(args.load_tick.as_millis()).unwrap_or(u64::MAX),
                ttl_secs: args.ttl.map(|d| d.as_secs().max(1)),
                alertmanager: args.alertmanager,
                gateway: args
                    .gateway
                    .apply(&GatewaySettings::profile(GatewayProfile::Aggressive)),
            };
            let started = std::time::Instant::now();
            let inv = stack::up(&args.stack.state_dir(), &settings)?;
            if args.output == Output::Text {
                out!(
                    "Sandbox stack `{}` is up ({} ms).",
                    inv.stack,
                    started.elapsed().as_millis()
                );
            }
            print_inventory(&inv, args.output)
        }
        Command::Down(args) => {
            let report = stack::down(&args.state_dir(), &args.stack)?;
            if report.had_inventory || !report.stopped.is_empty() {
                out!(
                    "Sandbox stack `{}` stopped ({} processes).",
                    args.stack,
                    report.stopped.len()
                );
            } else {
                out!(
                    "Sandbox stack `{}` is not running; nothing to stop.",
                    args.stack
                );
            }
            Ok(())
        }
        Command::Status(args) => {
            let inv = crate::load_inventory(&args.stack.state_dir(), &args.stack.stack)?;
            print_inventory(&inv, args.output)
        }
        Command::Reconfigure(args) => {
            if args.gateway.is_empty() {
                return Err(SandboxError::InvalidSettings(
                    "give at least one gateway setting, e.g. `--gateway-profile slow` (see --help)"
                        .into(),
                ));
            }
            let inv =
                stack::reconfigure(&args.stack.state_dir(), &args.stack.stack, &args.gateway)?;
            out!(
                "Gateway of `{}` reconfigured (profile {}); fingerprint {}",
                inv.stack,
                inv.gateway_profile,
                inv.fingerprint
            );
            Ok(())
        }
        Command::Restart(args) => {
            let p = crate::restart_process(&args.stack.state_dir(), &args.stack.stack, &args.name)?;
            out!("{} running with pid {}", p.name, p.pid);
            Ok(())
        }
        Command::Load(args) => {
            let inv = crate::load_inventory(&args.stack.state_dir(), &args.stack.stack)?;
            let tps = stack::load(&inv, args.tps)?;
            out!("{tps}");
            Ok(())
        }
        Command::Fingerprint(args) => {
            let inv = crate::load_inventory(&args.state_dir(), &args.stack)?;
            out!("{}", current_fingerprint(&inv)?);
            Ok(())
        }
        Command::Node(_)
        | Command::Gateway(_)
        | Command::Simulator(_)
        | Command::Expire(_)
        | Command::Supervise(_) => Ok(()),
    }
}

fn print_inventory(inv: &Inventory, output: Output) -> Result<(), SandboxError> {
    if output == Output::Json {
        let json = serde_json::to_string_pretty(inv).map_err(|source| SandboxError::Parse {
            path: inv.state_dir.join("inventory.json"),
            source,
        })?;
        out!("{json}");
        return Ok(());
    }
    let current = current_fingerprint(inv).unwrap_or_else(|e| format!("unavailable ({e})"));
    out!(
        "stack        {} (port base {}, gateway profile {})",
        inv.stack,
        inv.port_base,
        inv.gateway_profile
    );
    out!("started      {}", inv.started_at.to_rfc3339());
    out!("prometheus   {}", inv.prometheus_url);
    if let Some(am) = &inv.alertmanager_url {
        out!("alertmanager {am}");
    }
    out!("gateway      {}  (POST /payments)", inv.gateway_url);
    out!("simulator    {}  (GET/POST /tps)", inv.simulator_url);
    if current == inv.fingerprint {
        out!("fingerprint  {}", inv.fingerprint);
    } else {
        out!(
            "fingerprint  {} (recorded {}: CHANGED)",
            current,
            inv.fingerprint
        );
    }
    out!("state dir    {}", inv.state_dir.display());
    out!();
    out!(
        "{:<14} {:<13} {:>8} {:>6}  {:<8} LABELS",
        "NAME",
        "ROLE",
        "PID",
        "PORT",
        "STATE"
    );
    for p in &inv.processes {
        let state = if !procs::is_ours(p.pid, &p.command) {
            "dead"
        } else if procs::state(p.pid) == Some('T') {
            "frozen"
        } else {
            "running"
        };
        let role = serde_json::to_value(p.role)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out!(
            "{:<14} {:<13} {:>8} {:>6}  {:<8} {}",
            p.name,
            role,
            p.pid,
            p.port,
            state,
            labels.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
