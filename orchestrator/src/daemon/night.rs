//! Executes one night: a first plan from the scenarios' estimates, then one worker per stack that
//! takes the next slot when its stack is free, so the plan is re-made at every slot boundary.
//!
//! Re-planning is list scheduling over a shared queue of due scenarios (highest priority first):
//! - a run that **overruns** delays only its stack; later slots move, and those that can no longer
//!   end before the window closes are skipped (never started);
//! - a run that **ends early** lets its stack take the next slot at once (after the cooldown);
//! - a **Given that fails** (`precondition-failed`) marks the stack unhealthy for the rest of the
//!   night: its worker stops and the remaining scenarios go to the other eligible stacks;
//! - a **busy stack** (its lease is held by a terminal run or CI) is never double-booked: the slot
//!   goes back to the queue and the worker retries every few seconds while it still fits.
//!
//! A scenario runs at most once per night: before starting a slot the worker looks in the store
//! for a daemon run of that scenario since the window opened (so a restarted daemon, or a new
//! leader, skips slots already started — even ones that ended `interrupted`).
//! At window end every run still going is cancelled: the runner reverts its faults and ends it as
//! `interrupted`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::window::NightWindow;
use crate::assert::PrometheusClient;
use crate::config::{Config, DriverConfig, Stack};
use crate::fault::LocalDriver;
use crate::run::{RunError, RunOptions, RunOutcome, Runner};
use crate::scenario::{Cadence, Library, Scenario};
use crate::store::{RunFilter, Store};

/// The `started_by` and trigger of daemon runs.
pub const DAEMON_TRIGGER: &str = "daemon";

/// How often a worker retries a slot whose stack lease is held by someone else.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// One planned slot (the first plan; the night re-plans as runs end).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedSlot {
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Planned start (UTC).
    pub start: DateTime<Utc>,
    /// Planned end (start + estimated duration).
    pub end: DateTime<Utc>,
}

/// What happened to the night's slots, for the journal and tests.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NightReport {
    /// Runs started: (scenario, stack, run id, outcome).
    pub runs: Vec<(String, String, uuid::Uuid, String)>,
    /// Scenarios not run, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Scenarios due on `window.night`, highest priority first, then by name.
///
/// `manual` scenarios never run from the daemon; `weekly` ones run on their weekday;
/// `every-n-nights` and `nightly` ones run every night (the planner refines this from history).
pub fn due_scenarios(library: &Library, window: &NightWindow) -> Vec<Scenario> {
    use chrono::Datelike as _;
    let mut due: Vec<Scenario> = library
        .scenarios
        .values()
        .filter(|s| match s.schedule.cadence {
            Cadence::Manual => false,
            Cadence::Weekly { weekday } => window.night.weekday() == weekday,
            _ => true,
        })
        .filter(|s| !s.targets.eligible_stacks.is_empty())
        .cloned()
        .collect();
    due.sort_by(|a, b| {
        b.schedule
            .priority
            .cmp(&a.schedule.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
    due
}

/// The first plan: list scheduling of `due` on the stacks from `from`, each slot taking its
/// estimated duration plus the cooldown; slots that would end after the window are left out.
pub fn first_plan(
    config: &Config,
    due: &[Scenario],
    window: &NightWindow,
    from: DateTime<Utc>,
) -> Vec<PlannedSlot> {
    let begin = from.max(window.start);
    let mut free: Vec<(String, DateTime<Utc>)> =
        config.stacks.keys().map(|s| (s.clone(), begin)).collect();
    let cooldown = config.cooldown.as_chrono();
    let mut slots = Vec::new();
    for scenario in due {
        let length = scenario.schedule.estimated_duration.as_chrono();
        let best = free
            .iter_mut()
            .filter(|(stack, _)| scenario.targets.eligible_stacks.contains(stack))
            .min_by_key(|(_, at)| *at);
        if let Some((stack, at)) = best
            && *at + length <= window.end
        {
            slots.push(PlannedSlot {
                scenario: scenario.name.clone(),
                stack: stack.clone(),
                start: *at,
                end: *at + length,
            });
            *at = *at + length + cooldown;
        }
    }
    slots
}

/// Shared state of the night's workers (single-threaded: they run on one `LocalSet`).
struct Night {
    store: Store,
    config: Config,
    window: NightWindow,
    queue: RefCell<Vec<Scenario>>,
    report: RefCell<NightReport>,
    cancel: CancellationToken,
}

/// Runs the night until every due scenario ran or was skipped, the window closed, or `cancel`
/// fired (SIGTERM). Returns what happened.
pub async fn execute(
    store: &Store,
    library: &Library,
    window: NightWindow,
    cancel: CancellationToken,
) -> NightReport {
    let due = due_scenarios(library, &window);
    let plan = first_plan(&library.config, &due, &window, Utc::now());
    journal(
        &serde_json::json!({ "event": "plan", "night": window.night, "windowStart": window.start, "windowEnd": window.end, "slots": plan }),
    );
    for scenario in due
        .iter()
        .filter(|s| !plan.iter().any(|p| p.scenario == s.name))
    {
        journal(
            &serde_json::json!({ "event": "not-planned", "scenario": scenario.name, "reason": "does not fit in the window" }),
        );
    }
    let night_cancel = cancel.child_token();
    let night = Rc::new(Night {
        store: store.clone(),
        config: library.config.clone(),
        window,
        queue: RefCell::new(due),
        report: RefCell::new(NightReport::default()),
        cancel: night_cancel.clone(),
    });
    // Window end: cancel whatever still runs (the runner reverts on cancel).
    let closer = {
        let night_cancel = night_cancel.clone();
        tokio::task::spawn_local(async move {
            sleep_until(window.end).await;
            journal(&serde_json::json!({ "event": "window-end" }));
            night_cancel.cancel();
        })
    };
    let workers: Vec<_> = library
        .config
        .stacks
        .values()
        .map(|stack| tokio::task::spawn_local(worker(night.clone(), stack.clone())))
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    closer.abort();
    let mut report = night.report.borrow().clone();
    for scenario in night.queue.borrow().iter() {
        let reason = if night.cancel.is_cancelled() {
            "window closed or daemon stopped"
        } else {
            "did not fit before window end"
        };
        report.skipped.push((scenario.name.clone(), reason.into()));
        journal(
            &serde_json::json!({ "event": "skipped", "scenario": scenario.name, "reason": reason }),
        );
    }
    journal(
        &serde_json::json!({ "event": "night-end", "night": window.night, "runs": report.runs.len(), "skipped": report.skipped.len() }),
    );
    report
}

/// One stack's worker: takes the next fitting slot from the queue until none is left.
async fn worker(night: Rc<Night>, stack: Stack) {
    let driver = match &stack.driver {
        DriverConfig::Local {
            sandbox_stack,
            state_dir,
        } => LocalDriver::new(sandbox_stack, state_dir.clone()),
        DriverConfig::ChaosMesh { .. } => {
            tracing::warn!(stack = %stack.name, "The chaos-mesh driver is not available in this build; the stack takes no slot.");
            return;
        }
    };
    let prometheus = match PrometheusClient::new(&stack.prometheus_url, Duration::from_secs(5)) {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(stack = %stack.name, error = %e, "Prometheus client unusable; the stack takes no slot.");
            return;
        }
    };
    if Utc::now() < night.window.start {
        tokio::select! {
            () = sleep_until(night.window.start) => {}
            () = night.cancel.cancelled() => return,
        }
    }
    let cooldown = night.config.cooldown.as_std();
    let mut tried_busy: BTreeSet<String> = BTreeSet::new();
    loop {
        if night.cancel.is_cancelled() {
            return;
        }
        let Some(scenario) = take_next(&night, &stack.name, &tried_busy) else {
            if tried_busy.is_empty() {
                return;
            }
            // Only slots refused by a busy lease remain: retry them after a pause.
            tried_busy.clear();
            if !pause(&night.cancel, BUSY_RETRY).await {
                return;
            }
            continue;
        };
        match already_started(&night, &scenario.name).await {
            Ok(Some(run_id)) => {
                journal(
                    &serde_json::json!({ "event": "already-started", "scenario": scenario.name, "runId": run_id }),
                );
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Could not check for a run already started tonight; starting anyway.")
            }
        }
        let opts = RunOptions::new(DAEMON_TRIGGER, DAEMON_TRIGGER);
        let estimate = scenario.schedule.estimated_duration.as_std();
        journal(&serde_json::json!({
            "event": "slot-start", "scenario": scenario.name, "stack": stack.name, "runId": opts.run_id,
            "plannedEnd": Utc::now() + scenario.schedule.estimated_duration.as_chrono(),
        }));
        let started = std::time::Instant::now();
        let runner = Runner::new(
            &night.store,
            &driver,
            &prometheus,
            None,
            night.cancel.child_token(),
        );
        match runner.run(&scenario, &stack.name, &opts).await {
            Ok(report) => {
                let took = started.elapsed();
                let outcome = report.outcome.to_string();
                journal(&serde_json::json!({
                    "event": "slot-end", "scenario": scenario.name, "stack": stack.name, "runId": report.run_id,
                    "outcome": outcome, "seconds": took.as_secs(),
                }));
                night.report.borrow_mut().runs.push((
                    scenario.name.clone(),
                    stack.name.clone(),
                    report.run_id,
                    outcome,
                ));
                tried_busy.clear();
                if night.cancel.is_cancelled() {
                    return;
                }
                if report.outcome == RunOutcome::PreconditionFailed {
                    journal(
                        &serde_json::json!({ "event": "replan", "reason": "given-failed", "stack": stack.name }),
                    );
                    return;
                }
                if took > estimate {
                    journal(
                        &serde_json::json!({ "event": "replan", "reason": "overrun", "stack": stack.name, "scenario": scenario.name, "overrunSeconds": (took - estimate).as_secs() }),
                    );
                } else if took + Duration::from_secs(1) < estimate {
                    journal(
                        &serde_json::json!({ "event": "replan", "reason": "ended-early", "stack": stack.name, "scenario": scenario.name }),
                    );
                }
                if !pause(&night.cancel, cooldown).await {
                    return;
                }
            }
            Err(busy @ RunError::StackBusy { .. }) => {
                let err = busy.to_string();
                journal(
                    &serde_json::json!({ "event": "stack-busy", "scenario": scenario.name, "stack": stack.name, "detail": err }),
                );
                tried_busy.insert(scenario.name.clone());
                night.queue.borrow_mut().insert(0, scenario);
            }
            Err(e) => {
                tracing::error!(stack = %stack.name, scenario = %scenario.name, error = %e, "Slot could not start.");
                night
                    .report
                    .borrow_mut()
                    .skipped
                    .push((scenario.name.clone(), e.to_string()));
            }
        }
    }
}

/// Removes and returns the first queued scenario eligible for `stack` that can end before the
/// window closes; scenarios that can no longer fit on any stack stay queued and are reported as
/// skipped at the end.
fn take_next(night: &Night, stack: &str, exclude: &BTreeSet<String>) -> Option<Scenario> {
    let now = Utc::now();
    let mut queue = night.queue.borrow_mut();
    let index = queue.iter().position(|s| {
        s.targets.eligible_stacks.iter().any(|e| e == stack)
            && !exclude.contains(&s.name)
            && now + s.schedule.estimated_duration.as_chrono() <= night.window.end
    })?;
    Some(queue.remove(index))
}

/// The id of a daemon run of `scenario` started since this window opened, if any.
async fn already_started(
    night: &Night,
    scenario: &str,
) -> Result<Option<uuid::Uuid>, crate::store::StoreError> {
    let filter = RunFilter {
        scenario: Some(scenario.to_owned()),
        since: Some(night.window.start),
        ..RunFilter::default()
    };
    let runs = night.store.runs(&filter).await?;
    Ok(runs
        .iter()
        .find(|r| r.trigger == DAEMON_TRIGGER)
        .map(|r| r.id))
}

/// Sleeps for `length` unless cancelled; false when cancelled.
async fn pause(cancel: &CancellationToken, length: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(length) => true,
        () = cancel.cancelled() => false,
    }
}

/// Sleeps until `at` (UTC wall clock).
pub(crate) async fn sleep_until(at: DateTime<Utc>) {
    let wait = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
}

/// One line of the daemon's journal on stdout (JSON), also logged at info level.
pub(crate) fn journal(value: &serde_json::Value) {
    tracing::info!(entry = %value, "Daemon journal.");
    println!("{value}");
}
