//! Executes one night with the planner ([`crate::plan`]): a first plan when the night opens, slots
//! started at their planned times (several stacks in parallel), and a re-plan whenever reality
//! departs from the plan. Every plan is journalled and stored (`night_plans`) for the dashboard.
//!
//! Re-planning ([`plan::replan`]: started runs stay where they ran, nothing new starts before now):
//! - a run that **overruns** its planned end: its stack's later slots move; slots that can no
//!   longer end before the window closes are dropped (never started);
//! - a run that **ends early**: later slots move forward;
//! - a **Given that fails** (`precondition-failed`): the stack is unavailable for the rest of the
//!   night and its scenarios move to other eligible stacks;
//! - a **busy stack** (its lease is held by a terminal run or CI): the stack is unavailable for
//!   [`BUSY_RETRY`] and the slot moves; a stack is never double-booked;
//! - a **reservation** appears in the config: the config directory is re-read every
//!   [`RESERVATION_POLL`] and a changed reservation re-plans.
//!
//! A scenario runs at most once per night: when the night opens, daemon runs already started since
//! the window opened (a restarted daemon, or a new leader) are frozen in the plan and journalled
//! `already-started` — even ones that ended `interrupted`. A slot is never started when its
//! planned length no longer fits before the window end, nor while a scenario it must run `after:`
//! is still running. At window end every run still going is cancelled: the runner reverts its
//! faults and ends it `interrupted`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::window::NightWindow;
use crate::config::{Config, Stack};
use crate::metrics::Metrics;
use crate::plan::{
    self, Busy, NightProgress, PastRun, Plan, PlanInput, RunState, Slot, StartedRun, Window,
};
use crate::run::launch::StackTools;
use crate::run::{RunError, RunOptions, RunOutcome, RunReport};
use crate::scenario::{Library, Scenario};
use crate::store::{RunFilter, Store};

/// The `started_by` and trigger of daemon runs.
pub const DAEMON_TRIGGER: &str = "daemon";

/// How long a stack whose lease is held by someone else is left alone before the plan tries it
/// again.
pub const BUSY_RETRY: Duration = Duration::from_secs(10);

/// How often the config directory is re-read for new reservations.
pub const RESERVATION_POLL: Duration = Duration::from_secs(30);

/// A run that ends within this much of its planned end is "on time" (no re-plan).
const ON_TIME: TimeDelta = TimeDelta::seconds(1);

/// What happened to the night's scenarios, for the journal and tests.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NightReport {
    /// Runs started: (scenario, stack, run id, outcome).
    pub runs: Vec<(String, String, Uuid, String)>,
    /// Scenarios not run, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Where the night's inputs come from.
pub struct NightSources<'a> {
    /// The store (runs, leases, plans).
    pub store: &'a Store,
    /// The compiled library and config at night start.
    pub library: &'a Library,
    /// The config directory, re-read for reservations (`None`: never re-read).
    pub config_dir: Option<PathBuf>,
    /// The daemon's own metrics (runs by outcome, lease refusals, query latency).
    pub metrics: Metrics,
}

/// How a slot's run ended, sent by its task to the night loop.
struct SlotEnd {
    scenario: String,
    stack: String,
    started_at: DateTime<Utc>,
    planned_end: DateTime<Utc>,
    result: Result<RunReport, RunError>,
}

/// The run whose end caused a re-plan.
struct Cause {
    scenario: String,
    stack: String,
    planned_end: DateTime<Utc>,
}

/// The night loop's state.
struct NightState<'a> {
    sources: &'a NightSources<'a>,
    config: Config,
    scenarios: BTreeMap<String, Scenario>,
    window: NightWindow,
    input: PlanInput,
    progress: NightProgress,
    plan: Plan,
    /// Scenario → stack for runs in flight.
    running: BTreeMap<String, String>,
    report: NightReport,
}

/// Runs the night until every planned slot ran, the window closed, or `cancel` fired (SIGTERM,
/// lost leadership). Returns what happened.
///
/// # Errors
/// Store failures while building the first plan (the night does not start).
pub async fn execute(
    sources: &NightSources<'_>,
    window: NightWindow,
    cancel: CancellationToken,
) -> Result<NightReport, crate::store::StoreError> {
    let store = sources.store;
    let config = sources.library.config.clone();
    let now = Utc::now();
    let history = plan::past_runs(store, window.start).await?;
    let scenarios: Vec<Scenario> = sources.library.scenarios.values().cloned().collect();
    let input = night_input(&window, &config, &scenarios, &history);

    // Daemon runs already started in this window (restart, leader takeover): never again.
    let tonight = store
        .runs(&RunFilter {
            since: Some(window.start),
            ..RunFilter::default()
        })
        .await?;
    let mut progress = NightProgress {
        now,
        started: Vec::new(),
        unavailable: Vec::new(),
    };
    for run in tonight.iter().filter(|r| r.trigger == DAEMON_TRIGGER) {
        journal(&serde_json::json!({
            "event": "already-started", "scenario": run.scenario, "stack": run.stack,
            "runId": run.id, "status": run.status,
        }));
        let state = match run.ended_at {
            Some(ended_at) => RunState::Finished { ended_at },
            None => RunState::Running { expected_end: now },
        };
        progress.started.push(StartedRun {
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            started_at: run.started_at,
            state,
        });
    }
    let plan = plan::replan(&input, &progress);
    journal(&serde_json::json!({
        "event": "plan", "night": window.night, "windowStart": window.start, "windowEnd": window.end,
        "slots": plan.slots, "skipped": plan.skipped,
    }));
    save_plan(store, &plan, "initial").await;

    let mut night = NightState {
        sources,
        config,
        scenarios: scenarios.into_iter().map(|s| (s.name.clone(), s)).collect(),
        window,
        input,
        progress,
        plan,
        running: BTreeMap::new(),
        report: NightReport::default(),
    };
    night.run(cancel).await;
    Ok(night.finish())
}

/// The planner input for `window`: the config's stacks, reservations and cooldown, the library's
/// scenarios, learned durations and cadence from `history`; nothing new starts before now.
pub fn night_input(
    window: &NightWindow,
    config: &Config,
    scenarios: &[Scenario],
    history: &[PastRun],
) -> PlanInput {
    let mut input = plan::plan_input(window.night, config, scenarios, history);
    input.not_before = Some(window.start.max(Utc::now()));
    input
}

impl NightState<'_> {
    async fn run(&mut self, cancel: CancellationToken) {
        let night_cancel = cancel.child_token();
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<SlotEnd>();
        let mut reservations = reservation_poll();
        let window_end = self.window.end;
        let closer = {
            let night_cancel = night_cancel.clone();
            tokio::task::spawn_local(async move {
                sleep_until(window_end).await;
                journal(&serde_json::json!({ "event": "window-end" }));
                night_cancel.cancel();
            })
        };
        loop {
            if !night_cancel.is_cancelled() {
                self.start_due_slots(&ended_tx, &night_cancel);
            }
            if self.running.is_empty() && (night_cancel.is_cancelled() || self.pending().is_empty())
            {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                Some(end) = ended_rx.recv() => self.slot_ended(end).await,
                () = sleep_until(wake) => {}
                () = night_cancel.cancelled(), if !night_cancel.is_cancelled() => {}
                _ = reservations.tick() => self.check_reservations().await,
            }
        }
        closer.abort();
    }

    /// Starts every planned slot whose time has come and whose stack is free.
    fn start_due_slots(
        &mut self,
        ended_tx: &mpsc::UnboundedSender<SlotEnd>,
        cancel: &CancellationToken,
    ) {
        let now = Utc::now();
        for slot in self.pending() {
            if slot.start > now || self.running.values().any(|s| *s == slot.stack) {
                continue;
            }
            let Some(scenario) = self.scenarios.get(&slot.scenario).cloned() else {
                continue;
            };
            if scenario
                .schedule
                .after
                .iter()
                .any(|earlier| self.running.contains_key(earlier))
            {
                continue; // its `after:` scenario overran: wait for it to end
            }
            let length = slot.end - slot.start;
            if now + length > self.window.end {
                continue; // no longer fits; the next re-plan drops it
            }
            let Some(stack) = self.config.stacks.get(&slot.stack).cloned() else {
                continue;
            };
            let mut opts = RunOptions::new(DAEMON_TRIGGER, DAEMON_TRIGGER);
            opts.night = Some(self.window.night);
            journal(&serde_json::json!({
                "event": "slot-start", "scenario": slot.scenario, "stack": slot.stack,
                "runId": opts.run_id, "plannedStart": slot.start, "plannedEnd": now + length,
            }));
            self.running
                .insert(slot.scenario.clone(), slot.stack.clone());
            self.progress.started.push(StartedRun {
                scenario: slot.scenario.clone(),
                stack: slot.stack.clone(),
                started_at: now,
                state: RunState::Running {
                    expected_end: now + length,
                },
            });
            let store = self.sources.store.clone();
            let metrics = self.sources.metrics.clone();
            let tx = ended_tx.clone();
            let cancel = cancel.child_token();
            let planned_end = now + length;
            tokio::task::spawn_local(async move {
                let result = run_slot(&store, &metrics, &stack, &scenario, &opts, cancel).await;
                let _ = tx.send(SlotEnd {
                    scenario: scenario.name.clone(),
                    stack: stack.name.clone(),
                    started_at: now,
                    planned_end,
                    result,
                });
            });
        }
    }

    /// Slots of the current plan not started yet.
    fn pending(&self) -> Vec<Slot> {
        let started: BTreeSet<&str> = self
            .progress
            .started
            .iter()
            .map(|r| r.scenario.as_str())
            .collect();
        self.plan
            .slots
            .iter()
            .filter(|s| !started.contains(s.scenario.as_str()))
            .cloned()
            .collect()
    }

    /// When the loop must look again: the next pending slot's start (at most a minute away).
    fn next_wake(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let later = now + TimeDelta::seconds(60);
        self.pending()
            .iter()
            .map(|s| s.start.max(now + TimeDelta::milliseconds(200)))
            .min()
            .map_or(later, |t| t.min(later))
    }

    async fn slot_ended(&mut self, end: SlotEnd) {
        let now = Utc::now();
        self.running.remove(&end.scenario);
        let cause = Cause {
            scenario: end.scenario.clone(),
            stack: end.stack.clone(),
            planned_end: end.planned_end,
        };
        let report = match end.result {
            Ok(report) => report,
            Err(busy @ RunError::StackBusy { .. }) => {
                // It never ran: forget the start and keep the stack free of us for a while.
                self.progress.started.retain(|r| r.scenario != end.scenario);
                journal(&serde_json::json!({
                    "event": "stack-busy", "scenario": end.scenario, "stack": end.stack,
                    "detail": busy.to_string(),
                }));
                self.mark_unavailable(&end.stack, now, now + BUSY_RETRY, busy.to_string());
                self.replan("stack-busy", Some(&cause)).await;
                return;
            }
            Err(e) => {
                tracing::error!(stack = %end.stack, scenario = %end.scenario, error = %e, "Slot could not start.");
                self.progress.started.retain(|r| r.scenario != end.scenario);
                self.report
                    .skipped
                    .push((end.scenario.clone(), format!("could not start: {e}")));
                self.input.scenarios.retain(|s| s.name != end.scenario);
                return;
            }
        };
        let outcome = report.outcome.to_string();
        journal(&serde_json::json!({
            "event": "slot-end", "scenario": end.scenario, "stack": end.stack, "runId": report.run_id,
            "outcome": outcome, "seconds": (now - end.started_at).num_seconds(),
        }));
        self.report.runs.push((
            end.scenario.clone(),
            end.stack.clone(),
            report.run_id,
            outcome,
        ));
        if let Some(run) = self
            .progress
            .started
            .iter_mut()
            .find(|r| r.scenario == end.scenario)
        {
            run.state = RunState::Finished { ended_at: now };
        }
        if report.outcome == RunOutcome::Interrupted {
            return; // window end or shutdown: nothing left to plan
        }
        if report.outcome == RunOutcome::PreconditionFailed {
            self.mark_unavailable(
                &end.stack,
                now,
                self.window.end,
                format!("Given failed in {}: stack unhealthy", end.scenario),
            );
            self.replan("given-failed", Some(&cause)).await;
        } else if now > end.planned_end + ON_TIME {
            self.replan("overrun", Some(&cause)).await;
        } else if now + ON_TIME < end.planned_end {
            self.replan("ended-early", Some(&cause)).await;
        }
    }

    fn mark_unavailable(
        &mut self,
        stack: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: String,
    ) {
        self.progress.unavailable.push((
            stack.to_owned(),
            Busy {
                span: Window {
                    start: from,
                    end: until,
                },
                reason,
            },
        ));
    }

    /// Re-plans the rest of the night, journals and stores the new plan. `cause`: the run whose
    /// end made the plan wrong (none for a reservation change).
    async fn replan(&mut self, reason: &str, cause: Option<&Cause>) {
        self.progress.now = Utc::now();
        // Runs in flight are expected to end at their planned end, or now when overrunning.
        self.plan = plan::replan(&self.input, &self.progress);
        let mut entry = serde_json::json!({
            "event": "replan", "reason": reason, "slots": self.plan.slots, "skipped": self.plan.skipped,
        });
        if let Some(cause) = cause {
            entry["scenario"] = cause.scenario.clone().into();
            entry["stack"] = cause.stack.clone().into();
            entry["overrunSeconds"] = (Utc::now() - cause.planned_end).num_seconds().max(0).into();
        }
        journal(&entry);
        save_plan(self.sources.store, &self.plan, reason).await;
    }

    /// Re-reads the config directory; a changed reservation re-plans.
    async fn check_reservations(&mut self) {
        let Some(dir) = &self.sources.config_dir else {
            return;
        };
        let Ok(fresh) = crate::config::load(dir) else {
            tracing::warn!(dir = %dir.display(), "Config no longer loads; keeping tonight's reservations.");
            return;
        };
        let reservations = |c: &Config| -> serde_json::Value {
            c.stacks
                .values()
                .map(|s| (s.name.clone(), serde_json::json!(s.reservations)))
                .collect()
        };
        if reservations(&fresh) == reservations(&self.config) {
            return;
        }
        let window = self.input.window;
        for stack in fresh.stacks.values() {
            if let Some(slot) = self.input.stacks.iter_mut().find(|s| s.name == stack.name) {
                *slot = plan::adapter::stack_availability(stack, window);
            }
        }
        self.config.stacks = fresh.stacks;
        self.replan("reservation", None).await;
    }

    /// The night's report: scenarios that did not run get the plan's reason (or the window's).
    fn finish(self) -> NightReport {
        let pending = self.pending();
        let mut report = self.report;
        for slot in &pending {
            report.skipped.push((
                slot.scenario.clone(),
                "window closed or daemon stopped before its slot".into(),
            ));
        }
        for skipped in &self.plan.skipped {
            if !matches!(skipped.reason, plan::SkipReason::NotDue { .. }) {
                report
                    .skipped
                    .push((skipped.scenario.clone(), skipped.reason.to_string()));
            }
        }
        for (scenario, reason) in &report.skipped {
            journal(
                &serde_json::json!({ "event": "skipped", "scenario": scenario, "reason": reason }),
            );
        }
        journal(&serde_json::json!({
            "event": "night-end", "night": self.window.night, "runs": report.runs.len(),
            "skipped": report.skipped.len(),
        }));
        report
    }
}

/// A re-read tick for reservations (the first tick is skipped: the night just loaded them).
fn reservation_poll() -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(
        tokio::time::Instant::now() + RESERVATION_POLL,
        RESERVATION_POLL,
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Runs one slot with the stack's driver and Prometheus.
///
/// # Errors
/// [`RunError`] when the run could not start (busy stack, store failure, unusable driver).
pub async fn run_slot(
    store: &Store,
    metrics: &Metrics,
    stack: &Stack,
    scenario: &Scenario,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let mut tools = StackTools::for_stack(stack).map_err(|e| RunError::Driver(e.to_string()))?;
    tools.slo = tools.slo.with_observer(metrics.query_observer());
    let result = tools
        .runner(store, None, cancel)
        .run(scenario, &stack.name, opts)
        .await;
    match &result {
        Ok(report) => metrics.run_finished(report.outcome),
        Err(RunError::StackBusy { .. }) => metrics.lease_refused(&stack.name),
        Err(_) => {}
    }
    result
}

/// Stores a plan (a failure only logs: the journal has it too).
async fn save_plan(store: &Store, plan: &Plan, reason: &str) {
    let value = serde_json::to_value(plan).unwrap_or_default();
    if let Err(e) = store
        .save_plan(plan.night, Utc::now(), reason, &value)
        .await
    {
        tracing::warn!(error = %e, "Could not store the night's plan.");
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
