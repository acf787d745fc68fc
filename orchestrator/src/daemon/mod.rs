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
pub mod nights;
pub mod window;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::api::ApiState;
use crate::api::health::{Health, Role};
use crate::dashboard::DashboardState;
use crate::exit_codes;
use crate::metrics::Metrics;
use crate::run::sweep;
use crate::store::{Leadership, NightState, Store};
use night::{NightSources, journal, record_night, sleep_or_stop};
use nights::Nights;
use window::{Trigger, window_at};

/// How long the daemon waits for cancelled runs to revert before it exits anyway (the faults'
/// own TTLs still end them).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);

/// How often a standby tries to take over and the leader confirms it still leads. With the
/// SQLite lease TTL of 10 s a standby takes over at most 13 s after the leader died; on
/// PostgreSQL (the lock goes with the dead leader's connection) within 3 s.
pub const LEADER_POLL: Duration = Duration::from_secs(3);

/// Arguments of `f3-chaos daemon`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct DaemonArgs {
    /// Config directory (stacks, teams, window; it names the scenario library).
    #[arg(long, env = "F3_CHAOS_CONFIG", default_value = "config/local")]
    pub config: PathBuf,
    /// Address of the HTTP API, `/metrics` and the dashboard (port 0 picks a free port; the
    /// journal's `started` entry names it).
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
    /// Exit after the first night instead of waiting for the next trigger (the morning digest
    /// of that night is then not sent by this process).
    #[arg(long)]
    pub once: bool,
    /// When the morning digest of a night is queued, after its window ends.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub digest_after: crate::duration::HumanDuration,
}

fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .map_err(|_| format!("`{text}` is not a time of day (HH:MM or HH:MM:SS)"))
}

/// Runs `f3-chaos daemon`; returns the exit code.
pub fn execute(args: DaemonArgs) -> anyhow::Result<u8> {
    // Two workers serve the API and dashboard; the night's loop runs on this thread (LocalSet).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(args))
}

async fn run(args: DaemonArgs) -> anyhow::Result<u8> {
    // A scenario file with errors is left out of every night (logged, and shown as a warning
    // on stderr); a config or catalogue error stops the daemon from starting.
    let mut library = match crate::scenario::load_runnable(&args.config) {
        Ok(runnable) => {
            for line in runnable.summary_lines() {
                tracing::warn!("Scenario file with errors left out of every night: {line}");
            }
            runnable.library
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(crate::exit_codes::INVALID_INPUT);
        }
    };
    if let Some(start) = args.window_start {
        library.config.window.start = start;
    }
    if let Some(end) = args.window_end {
        library.config.window.end = end;
    }
    let config = library.config.clone();
    let store =
        Store::open_chosen(args.database_url.as_deref(), config.database_url.as_deref()).await?;

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
    let metrics = Metrics::new();
    let api = match ApiState::new(store.clone(), library.clone(), metrics.clone()) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("error: API tokens: {e}");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let dashboard = DashboardState::new(store.clone(), config.timezone)
        .context("compiling the dashboard templates")?;
    let dashboard = dashboard
        .with_known(crate::dashboard::KnownNames::of(&library))
        .with_window(config.window);
    // The dashboard answers on the API's port, so it needs the API's tokens (viewer or above).
    let dashboard_routes = crate::dashboard::router(dashboard).layer(
        axum::middleware::from_fn_with_state(api.clone(), crate::api::auth::require_viewer),
    );
    let health = crate::api::health::Health::new(store.clone(), metrics.clone());
    let app = crate::api::router(api.clone())
        .merge(dashboard_routes)
        .merge(crate::api::health::router(health.clone()));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .into_future(),
    );
    // On SIGTERM the API's runs start reverting at once, in parallel with the night's.
    let api_stopped = {
        let (api, cancel) = (api.clone(), cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            api.shutdown().await;
        })
    };
    let holder = format!(
        "{} pid {}",
        crate::store::local_hostname(),
        std::process::id()
    );
    journal(&serde_json::json!({
        "event": "started", "cron": expression, "timezone": config.timezone.name(),
        "store": store.backend_name(), "holder": holder, "listen": addr.to_string(),
    }));
    let sources = NightSources {
        reporters: crate::run::Reporters::none().with_shared(api.live_reporter()),
        store: &store,
        library: &library,
        config_dir: Some(args.config.clone()),
        metrics: metrics.clone(),
    };

    // --plan-now applies to the window open now (or opening next), not to later ones.
    let mut plan_now = args
        .plan_now
        .then(|| window_at(&config.window, config.timezone, Utc::now()).night);
    'standby: loop {
        let Some(leadership) = become_leader(&store, &holder, &health, &cancel).await else {
            break;
        };
        journal(&serde_json::json!({ "event": "leader", "holder": holder }));
        // A new leader first reverts what dead runs left (a dead leader's faults included).
        let report = sweep::sweep(&store, &config).await?;
        journal(&serde_json::json!({ "event": "sweep", "report": report }));
        let orphans = sweep::sweep_orphans(&store, &config).await?;
        journal(&serde_json::json!({ "event": "sweep-orphans", "report": orphans }));
        let lead = cancel.child_token();
        let keeper = tokio::task::spawn_local(keep_leading(leadership, lead.clone()));
        // Only the leader delivers the outbox (notifications of every run, API and CLI included).
        let worker = {
            let (store, library, lead) = (store.clone(), library.clone(), lead.clone());
            tokio::task::spawn_local(async move {
                crate::notify::worker::run_worker(&store, &library, lead).await;
            })
        };
        // ... and sweeps again and again: runs of a lost owner (another replica, a crashed CLI)
        // are reconciled within seconds of their last heartbeat, not at the next start-up.
        let sweeper = {
            let (store, config, lead) = (store.clone(), config.clone(), lead.clone());
            tokio::task::spawn_local(async move { keep_sweeping(&store, &config, lead).await })
        };

        // ... closes nights a dead leader left open and queues each night's digest when due.
        let night_closed = std::rc::Rc::new(tokio::sync::Notify::new());
        let settler = {
            let (store, library, holder, lead) =
                (store.clone(), library.clone(), holder.clone(), lead.clone());
            let night_closed = night_closed.clone();
            let digest_after = args.digest_after.as_chrono();
            tokio::task::spawn_local(async move {
                let nights = Nights {
                    store: &store,
                    library: &library,
                    holder: &holder,
                    digest_after,
                };
                nights.keep_settling(&night_closed, lead).await;
            })
        };

        loop {
            if lead.is_cancelled() {
                break;
            }
            let now = Utc::now();
            let window = window_at(&config.window, config.timezone, now);
            let state = match store.night(window.night).await {
                Ok(record) => record.map(|r| r.state),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read the night's state; retrying.");
                    sleep_or_stop(now + chrono::Duration::seconds(5), &lead).await;
                    continue;
                }
            };
            // The night runs when it is due (its trigger has fired, or --plan-now), its window
            // is open or opens within the plan-ahead, and it is not closed.
            let opens = if plan_now == Some(window.night) {
                Some(now)
            } else {
                trigger.opens(&config.window, &window)
            };
            let wake = match (state, opens) {
                (Some(NightState::Closed), _) | (_, None) => {
                    // Nothing to run until this window has passed.
                    window.end
                }
                (_, Some(fire)) if fire > now => {
                    if state.is_none() {
                        record_night(&store, &window, NightState::Waiting, &holder).await;
                    }
                    journal(
                        &serde_json::json!({ "event": "waiting", "night": window.night, "until": fire }),
                    );
                    fire
                }
                (_, Some(_)) => {
                    plan_now = None;
                    let night_run = night::execute(&sources, window, &holder, lead.clone());
                    tokio::pin!(night_run);
                    let closed = tokio::select! {
                        result = &mut night_run => result?,
                        () = cancel.cancelled() => {
                            // Give the runners their chance to revert, then leave (TTLs end the rest).
                            if tokio::time::timeout(SHUTDOWN_GRACE, &mut night_run).await.is_err() {
                                tracing::warn!("Runs did not finish reverting within the shutdown grace; their fault TTLs end them.");
                            }
                            false
                        }
                    };
                    if closed {
                        night_closed.notify_one();
                        if args.once {
                            break;
                        }
                    }
                    continue;
                }
            };
            sleep_or_stop(wake, &lead).await;
        }
        lead.cancel();
        let _ = worker.await;
        let _ = sweeper.await;
        let _ = settler.await;
        let still_leading = keeper.await.ok().flatten();
        if let Some(leadership) = still_leading {
            leadership.resign().await;
        }
        health.set_role(Role::Standby);
        if args.once || cancel.is_cancelled() {
            break 'standby;
        }
        journal(&serde_json::json!({ "event": "standby", "reason": "leadership lost" }));
    }
    // Runs started through the API revert and end `interrupted` (under way since the signal,
    // alongside the night's runs), then the server stops.
    cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, api_stopped)
        .await
        .is_err()
    {
        tracing::warn!(
            "API runs did not finish reverting within the shutdown grace; their fault TTLs end them."
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    journal(&serde_json::json!({ "event": "stopped" }));
    store.close().await;
    Ok(exit_codes::PASSED)
}

/// Polls for leadership every [`LEADER_POLL`] until won (`Some`) or `cancel` fires (`None`).
async fn become_leader(
    store: &Store,
    holder: &str,
    health: &Health,
    cancel: &CancellationToken,
) -> Option<Leadership> {
    let mut told = false;
    loop {
        match store.try_lead(holder).await {
            Ok(Some(leadership)) => {
                health.set_role(Role::Leader);
                return Some(leadership);
            }
            Ok(None) if !told => {
                told = true;
                health.set_role(Role::Standby);
                journal(
                    &serde_json::json!({ "event": "standby", "reason": "another daemon leads" }),
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot reach the store to elect a leader."),
        }
        tokio::select! {
            () = tokio::time::sleep(LEADER_POLL) => {}
            () = cancel.cancelled() => return None,
        }
    }
}

/// Confirms leadership every [`LEADER_POLL`]; when it is lost, cancels `lead` (every run of the
/// night reverts and ends `interrupted`) and returns `None`. Returns the leadership when `lead`
/// is cancelled by someone else, so it can be resigned.
async fn keep_leading(mut leadership: Leadership, lead: CancellationToken) -> Option<Leadership> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(LEADER_POLL) => {}
            () = lead.cancelled() => return Some(leadership),
        }
        if !leadership.confirm().await {
            journal(&serde_json::json!({ "event": "leadership-lost" }));
            lead.cancel();
            return None;
        }
    }
}

/// Sweeps every [`sweep::SWEEP_EVERY`] until `lead` is cancelled; journals each sweep that did
/// something.
async fn keep_sweeping(store: &Store, config: &crate::config::Config, lead: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(sweep::SWEEP_EVERY) => {}
            () = lead.cancelled() => return,
        }
        match sweep::sweep(store, config).await {
            Ok(report) if !report.is_empty() => {
                journal(&serde_json::json!({ "event": "sweep", "report": report }));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Sweep failed; trying again."),
        }
    }
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
