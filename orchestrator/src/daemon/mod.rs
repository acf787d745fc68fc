//! `f3-chaos daemon`: plans and executes the chaos night unattended.
//!
//! Start-up sweep (faults of dead runs reverted, their runs `interrupted`), then a cron trigger
//! (default: 5 minutes before the window opens, in the configured zone) opens each night:
//! the night's plan is printed to the journal and its slots run at their start times, one worker
//! per stack in parallel ([`night`]). SIGTERM/SIGINT cancel every run (the runner reverts faults
//! and ends them `interrupted`) and the process exits within 10 s.
//!
//! The journal is one JSON object per line on stdout (`plan`, `slot-start`, `slot-end`, `replan`,
//! `skipped`, `window-end`, `night-end`, …); logs go to stderr through `tracing`.

pub mod night;
pub mod window;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::exit_codes;
use crate::run::sweep;
use crate::store::Store;
use night::journal;
use window::{Trigger, window_at};

/// How long the daemon waits for cancelled runs to revert before it exits anyway (the faults'
/// own TTLs still end them).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);

/// Arguments of `f3-chaos daemon`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Config directory (stacks, teams, window; it names the scenario library).
    #[arg(long, env = "F3_CHAOS_CONFIG", default_value = "config/local")]
    pub config: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Store URL (`sqlite://PATH` or `postgres://…`); default: the config's, else the default
    /// SQLite file.
    #[arg(long, env = "F3_CHAOS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Cron expression opening a night (6 fields, seconds first, in the configured zone);
    /// default: 5 minutes before the window opens.
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Plan and run the window that is open now (or opens next) at once, instead of waiting for
    /// the cron trigger; then continue with the trigger.
    #[arg(long)]
    pub plan_now: bool,
    /// Override the window start (local `HH:MM` or `HH:MM:SS` in the configured zone).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub window_start: Option<NaiveTime>,
    /// Override the window end (local `HH:MM` or `HH:MM:SS`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub window_end: Option<NaiveTime>,
    /// Exit after the first night instead of waiting for the next trigger.
    #[arg(long)]
    pub once: bool,
}

fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .map_err(|_| format!("`{text}` is not a time of day (HH:MM or HH:MM:SS)"))
}

/// Runs `f3-chaos daemon`; returns the exit code.
pub fn execute(args: DaemonArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(args))
}

async fn run(args: DaemonArgs) -> anyhow::Result<u8> {
    let mut library = match crate::cli::run::load(&args.config) {
        Ok(library) => library,
        Err(code) => return Ok(code),
    };
    if let Some(start) = args.window_start {
        library.config.window.start = start;
    }
    if let Some(end) = args.window_end {
        library.config.window.end = end;
    }
    let config = library.config.clone();
    let url = args
        .database_url
        .clone()
        .or_else(|| config.database_url.clone())
        .unwrap_or_else(Store::default_url);
    let store = Store::open(&url)
        .await
        .with_context(|| format!("opening the store at {}", crate::store::redact_url(&url)))?;

    let report = sweep::sweep(&store, &config).await?;
    journal(&serde_json::json!({ "event": "sweep", "report": report }));

    let expression = args
        .cron
        .clone()
        .unwrap_or_else(|| window::default_cron(&config.window));
    let trigger = match Trigger::parse(&expression, config.timezone) {
        Ok(trigger) => trigger,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    journal(
        &serde_json::json!({ "event": "started", "cron": expression, "timezone": config.timezone.name(), "store": store.backend_name() }),
    );

    let mut plan_now = args.plan_now;
    loop {
        if !plan_now {
            let Some(fire) = trigger.next_after(Utc::now()) else {
                eprintln!("error: the cron expression `{expression}` never fires again");
                return Ok(exit_codes::INVALID_INPUT);
            };
            journal(&serde_json::json!({ "event": "waiting", "until": fire }));
            tokio::select! {
                () = night::sleep_until(fire) => {}
                () = cancel.cancelled() => break,
            }
        }
        plan_now = false;
        let window = window_at(&config.window, config.timezone, Utc::now());
        let night_run = night::execute(&store, &library, window, cancel.clone());
        tokio::pin!(night_run);
        tokio::select! {
            _ = &mut night_run => {}
            () = cancel.cancelled() => {
                // Give the runners their chance to revert, then leave (TTLs end the rest).
                if tokio::time::timeout(SHUTDOWN_GRACE, &mut night_run).await.is_err() {
                    tracing::warn!("Runs did not finish reverting within the shutdown grace; their fault TTLs end them.");
                }
                break;
            }
        }
        if args.once || cancel.is_cancelled() {
            break;
        }
    }
    journal(&serde_json::json!({ "event": "stopped" }));
    store.close().await;
    Ok(exit_codes::PASSED)
}

/// SIGINT or SIGTERM ⇒ cancel every run and stop.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::task::spawn_local(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        journal(&serde_json::json!({ "event": "signal", "action": "cancelling every run" }));
        cancel.cancel();
    });
}
