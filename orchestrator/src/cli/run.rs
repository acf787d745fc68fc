//! `f3-chaos run` (one scenario now, optionally waiting for every assertion) and
//! `f3-chaos trigger` (fire and forget).
//!
//! Without `--wait-for-assertions` the run continues in a detached `f3-chaos` process (so
//! reverts and verdicts still happen) and the command returns once the faults are injected.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::common::{OutputFormat, offering};
use super::report::{self, TerminalReporter};
use crate::config::DriverConfig;
use crate::document::RunDocument;
use crate::exit_codes;
use crate::fault::chaos_mesh::{ChaosMeshDriver, RenderContext};
use crate::run::launch;
use crate::run::{ChannelReporter, Reporters, RunEvent, RunOptions, sweep};
use crate::scenario::{Library, Scenario};
use crate::store::Store;

/// How long `run --wait-for-assertions` spends delivering notifications at the end.
const NOTIFY_BUDGET: Duration = Duration::from_secs(15);

/// Arguments of `f3-chaos run`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = crate::exit_codes::help_for(crate::exit_codes::RUN_CODES, &[]))]
pub struct RunArgs {
    /// Scenario name (`metadata.name`).
    #[arg(long)]
    pub scenario: String,
    /// Stack to run on (default: the scenario's only eligible stack).
    #[arg(long, alias = "target-stack")]
    pub stack: Option<String>,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
    /// Stay until every Then step has a verdict, print them, exit with the outcome's code.
    /// Without it: print the run id and return once the faults are injected.
    #[arg(long)]
    pub wait_for_assertions: bool,
    /// Wait up to this long (e.g. `10m`) for a busy stack instead of failing fast.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub wait_for_stack: Option<crate::duration::HumanDuration>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = offering(&[OutputFormat::Text, OutputFormat::Json]))]
    pub output: OutputFormat,
    /// Also write a JUnit XML report (one testcase per step, owner as a property).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print the exact manifests (YAML) the faults would be applied as, per cluster, and exit:
    /// touches nothing (no store, no lease, no API call). Chaos Mesh stacks only.
    #[arg(long)]
    pub dry_run: bool,
    /// Internal: the run id chosen by the parent of a detached run.
    #[arg(long, hide = true)]
    pub run_id: Option<Uuid>,
    /// Internal: how the run was started (`cli`, `trigger`).
    #[arg(long, hide = true, default_value = "cli")]
    pub started_via: String,
    /// Start the run on an f3-chaos daemon instead of here (its HTTP API), and stream its events:
    /// the terminal output and exit code are the same. Token from `F3_CHAOS_TOKEN`.
    #[arg(long, env = "F3_CHAOS_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// Arguments of `f3-chaos trigger`: fire and forget.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::help_for(crate::exit_codes::RUN_CODES, &[]))]
pub struct TriggerArgs {
    /// Scenario name.
    #[arg(long)]
    pub scenario: String,
    /// Stack to run on (`--stack`, as for `run`; `--target-stack` is still accepted).
    #[arg(long = "stack", alias = "target-stack", value_name = "STACK")]
    pub target_stack: String,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
    /// Print the exact manifests (YAML) per cluster and exit; touches nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Trigger on an f3-chaos daemon (its HTTP API) instead of here. Token from `F3_CHAOS_TOKEN`.
    #[arg(long, env = "F3_CHAOS_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// Runs `f3-chaos run`; returns the exit code.
pub fn execute(args: RunArgs) -> anyhow::Result<u8> {
    let runtime = super::common::runtime()?;
    runtime.block_on(run(args))
}

/// Runs `f3-chaos trigger`; returns the exit code.
pub fn execute_trigger(args: TriggerArgs) -> anyhow::Result<u8> {
    execute(RunArgs {
        scenario: args.scenario,
        stack: Some(args.target_stack),
        cfg: args.cfg,
        wait_for_assertions: false,
        wait_for_stack: None,
        output: OutputFormat::Text,
        junit: None,
        dry_run: args.dry_run,
        run_id: None,
        started_via: "trigger".into(),
        server: args.server,
    })
}

/// Who is starting the run: `F3_CHAOS_STARTED_BY` (CI job), else the login name.
fn started_by() -> String {
    ["F3_CHAOS_STARTED_BY", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Whether a report can be written at `path` later: an existing file must open for writing (it is
/// not truncated here), a new one must be creatable in its directory (a temporary file is made
/// there and removed).
fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    tempfile::NamedTempFile::new_in(dir).map(drop)
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let runnable = match super::common::load_runnable(&args.cfg.config) {
        Ok(runnable) => runnable,
        Err(code) => return Ok(code),
    };
    let library = &runnable.library;
    let Some(scenario) = library.scenarios.get(&args.scenario) else {
        if !runnable.left_out.is_empty() {
            // The scenario asked for may be one of those left out: show why.
            eprintln!("{}", runnable.errors);
        }
        let known: Vec<String> = library.scenarios.keys().cloned().collect();
        match crate::input::yaml::closest(&args.scenario, &known) {
            Some(guess) => eprintln!(
                "error: unknown scenario `{}`: did you mean `{guess}`?",
                args.scenario
            ),
            None => eprintln!(
                "error: unknown scenario `{}` (known: {})",
                args.scenario,
                known.join(", ")
            ),
        }
        return Ok(exit_codes::INVALID_INPUT);
    };
    let stack = match launch::choose_stack(scenario, &library.config, args.stack.as_deref()) {
        Ok(stack) => stack,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    if args.dry_run {
        return dry_run(scenario, stack);
    }
    // Found now, not after the fault ran: a report the CI job cannot read is a failed gate.
    if let Some(path) = &args.junit
        && let Err(e) = check_writable(path)
    {
        eprintln!(
            "error: cannot write the JUnit report to {}: {e}; nothing was run",
            path.display()
        );
        return Ok(exit_codes::INVALID_INPUT);
    }
    if let Some(server) = &args.server {
        return run_on_server(&args, server, library, scenario, &stack.name).await;
    }
    let store = args.cfg.open_store(Some(&library.config)).await?;

    let sweep = sweep::sweep(&store, &library.config).await?;
    for line in &sweep.reverted {
        eprintln!("warning: reverted a fault left behind by a dead run: {line}");
    }
    for line in &sweep.failed {
        eprintln!("warning: could not revert a fault left behind by a dead run: {line}");
    }
    for line in &sweep.expired_silences {
        eprintln!("warning: expired the Alertmanager silence of a dead run: {line}");
    }

    if !args.wait_for_assertions && args.run_id.is_none() {
        return start_detached(&args, &store, scenario, &stack.name).await;
    }

    run_with(&args, library, scenario, stack, &store).await
}

/// `--dry-run`: the manifests of every When step, per cluster, as YAML documents on stdout.
fn dry_run(scenario: &Scenario, stack: &crate::config::Stack) -> anyhow::Result<u8> {
    let driver = match &stack.driver {
        DriverConfig::ChaosMesh { .. } => ChaosMeshDriver::new(stack)?,
        DriverConfig::Local { .. } => {
            eprintln!(
                "error: --dry-run renders Kubernetes manifests; stack `{}` uses the local driver",
                stack.name
            );
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let grace = RunOptions::new(&started_by(), "dry-run").ttl_grace;
    let mut per_cluster: Vec<(String, Vec<String>)> = stack
        .clusters
        .iter()
        .map(|c| (c.name.clone(), Vec::new()))
        .collect();
    for (index, step) in scenario.when.iter().enumerate() {
        let ctx = RenderContext {
            run_id: Uuid::nil(),
            step_index: index,
            ttl: step.duration.0 + grace,
            ledger_id: None,
        };
        let manifests = match driver.render(step, &ctx) {
            Ok(manifests) => manifests,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit_codes::INVALID_INPUT);
            }
        };
        for manifest in manifests {
            let yaml = crate::input::yaml::to_yaml(&manifest.object).map_err(anyhow::Error::msg)?;
            let comment = format!("# step {index}: {}\n", step.name);
            if let Some((_, docs)) = per_cluster
                .iter_mut()
                .find(|(name, _)| *name == manifest.resource.cluster)
            {
                docs.push(comment + &yaml);
            }
        }
    }
    println!(
        "# Dry run: {} on {} (nothing was applied; the run id is a placeholder).",
        scenario.name, stack.name
    );
    for (cluster, docs) in per_cluster {
        let context = stack
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.kube_context.clone())
            .unwrap_or_else(|| "in-cluster".into());
        println!(
            "# ===== cluster {cluster} (context {context}): {} manifest(s)",
            docs.len()
        );
        for doc in docs {
            println!("---\n{}", doc.trim_end());
        }
    }
    Ok(exit_codes::PASSED)
}

/// The run itself, through the one launcher; the terminal is a channel reporter feeding the
/// printer task (so a blocked stdout never stalls the run).
async fn run_with(
    args: &RunArgs,
    library: &Library,
    scenario: &Scenario,
    stack: &crate::config::Stack,
    store: &Store,
) -> anyhow::Result<u8> {
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
    let text = args.output == OutputFormat::Text;
    let config = library.config.clone();
    let printer = tokio::spawn(async move {
        let reporter = text.then(TerminalReporter::new);
        while let Some(event) = rx.recv().await {
            if let Some(reporter) = &reporter {
                reporter.event(&event, &config);
            }
        }
        reporter
    });

    let mut opts = RunOptions::new(&started_by(), &args.started_via);
    opts.calendar = crate::plan::NightCalendar::of(&library.config);
    if let Some(id) = args.run_id {
        opts.run_id = id;
    }
    opts.wait_for_stack = args.wait_for_stack.map(|d| d.as_std());
    let result = launch::launch(launch::Launch {
        store,
        stack,
        scenario,
        opts,
        reporters: Reporters::none().with(ChannelReporter(tx)),
        metrics: None,
        cancel,
    })
    .await; // the launcher drops the reporters: the printer's channel is closed
    let reporter = printer.await.ok().flatten();
    let report = match result {
        Ok(report) => report,
        Err(ref e) if e.is_stack_busy() => {
            let err = result.err().map(|e| e.to_string()).unwrap_or_default();
            eprintln!("error: {err}");
            eprintln!("hint: wait with --wait-for-stack 30m, or see it with `f3-chaos results`");
            return Ok(exit_codes::STACK_BUSY);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(reporter) = &reporter {
        reporter.finish(&report);
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // Deliver this run's notifications now (bounded); what is not delivered stays in the outbox
    // for the daemon's worker or `f3-chaos notify`.
    let notifiers = crate::notify::Notifiers::from_config(&library.config);
    match tokio::time::timeout(
        NOTIFY_BUDGET,
        crate::notify::deliver_due_with(store, &notifiers, chrono::Utc::now()),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("warning: notifications stay queued: {e}"),
        Err(_) => eprintln!(
            "warning: notifications stay queued (delivery took longer than {NOTIFY_BUDGET:?})"
        ),
    }
    if args.output == OutputFormat::Json {
        // The stored run, as `results ID --output json` and the API give it (after delivery,
        // so the notifications' status is current). A run whose record cannot be read back has
        // no result to give.
        match RunDocument::load(store, report.run_id).await {
            Ok(Some(document)) => println!("{}", serde_json::to_string_pretty(&document)?),
            Ok(None) => {
                eprintln!("error: run {} is not in the store", report.run_id);
                return Ok(exit_codes::ERROR);
            }
            Err(e) => {
                eprintln!(
                    "error: reading run {} back from the store: {e}",
                    report.run_id
                );
                return Ok(exit_codes::ERROR);
            }
        }
    }
    Ok(report.outcome.exit_code())
}

/// `--server`: the same run started through the daemon's HTTP API (`POST /api/v1/runs`, or
/// `/api/v1/triggers` for `trigger`), its events streamed and printed as a local run prints them.
async fn run_on_server(
    args: &RunArgs,
    server: &str,
    library: &Library,
    scenario: &Scenario,
    stack: &str,
) -> anyhow::Result<u8> {
    use super::remote::{Remote, run_remote, trigger_remote};
    let remote = Remote::from_env(server)?;
    let req = crate::api::StartRequest {
        scenario: scenario.name.clone(),
        stack: Some(stack.to_owned()),
        wait_for_stack_seconds: args.wait_for_stack.map(|d| d.as_std().as_secs()),
    };
    if !args.wait_for_assertions {
        return trigger_remote(&remote, &req).await;
    }
    let text = args.output == OutputFormat::Text;
    let remote_run = run_remote(&remote, &req, &library.config, text).await?;
    if let Some(report) = &remote_run.report {
        if args.output == OutputFormat::Json {
            let document = remote.run_document(report.run_id).await?;
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        if let Some(path) = &args.junit {
            std::fs::write(path, report::junit(report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(remote_run.exit_code)
}

/// Ctrl-C or SIGTERM ⇒ cancel: the runner reverts faults and ends the run as `interrupted`.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("Interrupted: reverting faults…");
        cancel.cancel();
    });
}

/// Starts the run in a detached process and returns once its faults are injected (or it ended).
async fn start_detached(
    args: &RunArgs,
    store: &Store,
    scenario: &Scenario,
    stack: &str,
) -> anyhow::Result<u8> {
    let run_id = Uuid::now_v7();
    let log_dir = std::env::temp_dir().join("f3-chaos-runs");
    std::fs::create_dir_all(&log_dir)?;
    let log_path = log_dir.join(format!("{run_id}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut command = Process::new(std::env::current_exe()?);
    command
        .args([
            "run",
            "--scenario",
            &scenario.name,
            "--stack",
            stack,
            "--wait-for-assertions",
            "--output",
            "json",
        ])
        .arg("--config")
        .arg(&args.cfg.config)
        .args([
            "--run-id",
            &run_id.to_string(),
            "--started-via",
            &args.started_via,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    if let Some(url) = &args.cfg.database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().context("starting the detached run")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let events = store.events(run_id).await?;
        if events.iter().any(|e| e.kind == "fault-injected") {
            println!(
                "Run {run_id} started: {} on {stack}; faults injected.",
                scenario.name
            );
            println!(
                "Follow it with: f3-chaos results {run_id}   (log: {})",
                log_path.display()
            );
            return Ok(exit_codes::PASSED);
        }
        if let Some(status) = child.try_wait()? {
            let run = store.run(run_id).await?;
            let outcome = run.as_ref().map_or("not started", |r| r.status.as_str());
            println!(
                "Run {run_id} ended before any fault was injected: {outcome}. Log: {}",
                log_path.display()
            );
            return Ok(match status.code() {
                Some(code) => u8::try_from(code).unwrap_or(exit_codes::ERROR),
                None => exit_codes::ERROR,
            });
        }
        if tokio::time::Instant::now() > deadline {
            println!(
                "Run {run_id} is still in Given after 5 minutes; it continues in the background. Log: {}",
                log_path.display()
            );
            return Ok(exit_codes::PASSED);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
