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
//! The night is a state machine persisted in the store ([`NightState`]): `planning` while the
//! first plan is made, `running` while slots execute, `drained` when nothing left fits (the loop
//! then sleeps until the window ends, waking only for a reservation change), `closed` at window
//! end once every run ended. Re-plans happen only on events (a run ended, overran, a stack turned
//! out busy or unhealthy, a reservation changed) and at most one per [`REPLAN_MIN_GAP`].
//!
//! Stacks and exclusive resources are held by what is live, not by what was planned: a slot
//! starts only when no run in the store (this night's, a terminal run, a dead leader's not yet
//! reconciled) is running on its stack or has a fault there not yet reverted, and when fewer
//! runs than the resource's capacity hold each resource it needs. A run that overruns its
//! planned end is journalled `overrun` at once (with a re-plan that moves its dependants), and
//! its scenario's owner is notified once it is more than `spec.overrunNotifyAfter` late.
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
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::RunOutcome;
use crate::plan::{
    self, Busy, NightProgress, PastRun, Plan, PlanInput, RunState, Slot, StartedRun, Window,
};
use crate::run::launch;
use crate::run::{Reporters, RunError, RunOptions, RunReport};
use crate::scenario::{Library, Scenario};
use crate::store::{NightState, RunFilter, Store};

/// The `started_by` and trigger of daemon runs.
pub const DAEMON_TRIGGER: &str = "daemon";

/// How long a stack whose lease is held by someone else is left alone before the plan tries it
/// again.
pub const BUSY_RETRY: Duration = Duration::from_secs(10);

/// How often the config directory is re-read for new reservations.
pub const RESERVATION_POLL: Duration = Duration::from_secs(30);

/// A run that ends within this much of its planned end is "on time" (no re-plan).
const ON_TIME: TimeDelta = TimeDelta::seconds(1);

/// At most one re-plan per this much time: events closer together are coalesced.
pub const REPLAN_MIN_GAP: Duration = Duration::from_secs(1);

/// How often a slot that is due but held back by someone else's live run (another process's run
/// on its stack or on a resource it needs) looks again.
pub const HELD_POLL: Duration = Duration::from_secs(1);

/// An overrunning run is expected to need at least this much longer each time it overruns the
/// previous expectation (then as long again as it has overrun so far: the expectation doubles).
const OVERRUN_STEP: TimeDelta = TimeDelta::seconds(10);

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
    /// Who hears each run's events besides the store: the daemon's API stream, so a night's
    /// runs are followed live on `GET /api/v1/runs/{id}/events` like the API's own.
    pub reporters: Reporters,
}

/// How a slot's run ended, sent by its task to the night loop.
struct SlotEnd {
    scenario: String,
    stack: String,
    started_at: DateTime<Utc>,
    planned_end: DateTime<Utc>,
    result: Result<RunReport, RunError>,
}

/// A run of this night in flight.
#[derive(Debug, Clone)]
struct Live {
    stack: String,
    run_id: Uuid,
    planned_end: DateTime<Utc>,
    /// When it is now expected to end (the planned end, pushed back at each overrun).
    expected_end: DateTime<Utc>,
    /// Its owner was told it overran.
    owner_notified: bool,
}

/// A run of someone else (another process, a dead owner not reconciled yet) that holds a stack
/// or resources: running in the store, or with a fault not reverted.
#[derive(Debug, Clone)]
struct Held {
    run_id: Uuid,
    scenario: String,
    stack: String,
}

/// The run whose end caused a re-plan.
struct Cause {
    scenario: String,
    stack: String,
    planned_end: DateTime<Utc>,
}

/// The night loop's state.
struct NightLoop<'a> {
    sources: &'a NightSources<'a>,
    config: Config,
    scenarios: BTreeMap<String, Scenario>,
    window: NightWindow,
    input: PlanInput,
    progress: NightProgress,
    plan: Plan,
    /// Scenario → its run in flight.
    running: BTreeMap<String, Live>,
    /// Live runs of others, refreshed from the store before slots start.
    held: Vec<Held>,
    /// The daemon (`host pid N`), recorded with each night transition.
    holder: String,
    /// The state last recorded in the store.
    state: NightState,
    /// When the last re-plan was made (rate limit).
    last_replan: Option<tokio::time::Instant>,
    report: NightReport,
}

/// Runs the night until its window closes (the night is then `closed`: returns `true`) or
/// `cancel` fires (SIGTERM, lost leadership: the night stays `running`/`drained` for the next
/// leader; returns `false`). `holder` names this daemon in the night's record.
///
/// # Errors
/// Store failures while building the first plan (the night does not start).
pub async fn execute(
    sources: &NightSources<'_>,
    window: NightWindow,
    holder: &str,
    cancel: CancellationToken,
) -> Result<bool, crate::store::StoreError> {
    let store = sources.store;
    store
        .set_night_state(
            window.night,
            (window.start, window.end),
            NightState::Planning,
            holder,
            Utc::now(),
        )
        .await?;
    journal(
        &serde_json::json!({ "event": "night-state", "night": window.night, "state": NightState::Planning }),
    );
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

    let mut night = NightLoop {
        sources,
        config,
        scenarios: scenarios.into_iter().map(|s| (s.name.clone(), s)).collect(),
        window,
        input,
        progress,
        plan,
        running: BTreeMap::new(),
        held: Vec::new(),
        holder: holder.to_owned(),
        state: NightState::Planning,
        last_replan: Some(tokio::time::Instant::now()),
        report: NightReport::default(),
    };
    night.run(cancel).await;
    let closed = Utc::now() >= night.window.end;
    if closed {
        night.set_state(NightState::Closed).await;
    }
    night.finish();
    Ok(closed)
}

/// Records `state` for `window`'s night (a failure only logs: the night goes on, and the next
/// transition tries again).
pub(crate) async fn record_night(
    store: &Store,
    window: &NightWindow,
    state: NightState,
    holder: &str,
) {
    if let Err(e) = store
        .set_night_state(
            window.night,
            (window.start, window.end),
            state,
            holder,
            Utc::now(),
        )
        .await
    {
        tracing::warn!(error = %e, night = %window.night, %state, "Could not record the night's state.");
    }
}

/// Sleeps until `at` or until `stop` is cancelled.
pub(crate) async fn sleep_or_stop(at: DateTime<Utc>, stop: &CancellationToken) {
    tokio::select! {
        () = sleep_until(at) => {}
        () = stop.cancelled() => {}
    }
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

impl NightLoop<'_> {
    async fn set_state(&mut self, state: NightState) {
        if self.state == state {
            return;
        }
        self.state = state;
        record_night(self.sources.store, &self.window, state, &self.holder).await;
        journal(
            &serde_json::json!({ "event": "night-state", "night": self.window.night, "state": state }),
        );
    }

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
        self.set_state(NightState::Running).await;
        loop {
            if !night_cancel.is_cancelled() {
                if self.startable().is_empty() && self.running.is_empty() {
                    self.set_state(NightState::Drained).await;
                } else {
                    self.set_state(NightState::Running).await;
                }
                if self.has_due_slot() {
                    self.refresh_held().await;
                }
                self.start_due_slots(&ended_tx, &night_cancel);
                self.check_overruns().await;
            }
            if self.running.is_empty() && night_cancel.is_cancelled() {
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

    /// Reads who else holds stacks and resources: runs in the store that are running or have a
    /// fault not reverted, other than this night's runs in flight.
    async fn refresh_held(&mut self) {
        let store = self.sources.store;
        let ours: BTreeSet<Uuid> = self.running.values().map(|l| l.run_id).collect();
        let mut held: Vec<Held> = Vec::new();
        match store.running_runs().await {
            Ok(runs) => {
                held.extend(
                    runs.into_iter()
                        .filter(|r| !ours.contains(&r.id))
                        .map(|r| Held {
                            run_id: r.id,
                            scenario: r.scenario,
                            stack: r.stack,
                        }),
                )
            }
            Err(e) => {
                // Unknown holders: hold everything back rather than double-book.
                tracing::warn!(error = %e, "Cannot read running runs; no slot starts until the store answers.");
                held.extend(self.config.stacks.keys().map(|stack| Held {
                    run_id: Uuid::nil(),
                    scenario: String::new(),
                    stack: stack.clone(),
                }));
            }
        }
        match store.ledger_open().await {
            Ok(entries) => {
                for entry in entries {
                    if ours.contains(&entry.run_id) || held.iter().any(|h| h.run_id == entry.run_id)
                    {
                        continue;
                    }
                    let scenario = match store.run(entry.run_id).await {
                        Ok(Some(run)) => run.scenario,
                        _ => String::new(),
                    };
                    held.push(Held {
                        run_id: entry.run_id,
                        scenario,
                        stack: entry.stack,
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read the fault ledger."),
        }
        self.held = held;
    }

    /// Resources held right now: (resource, holders) by this night's runs and by others'.
    fn resources_in_use(&self) -> BTreeMap<String, usize> {
        let mut in_use: BTreeMap<String, usize> = BTreeMap::new();
        let scenarios = self
            .running
            .keys()
            .map(String::as_str)
            .chain(self.held.iter().map(|h| h.scenario.as_str()));
        for name in scenarios {
            if let Some(scenario) = self.scenarios.get(name) {
                for resource in &scenario.schedule.resources {
                    *in_use.entry(resource.clone()).or_default() += 1;
                }
            }
        }
        in_use
    }

    /// Why `slot` cannot start now although its time has come (None: it can).
    fn held_back(&self, slot: &Slot, in_use: &BTreeMap<String, usize>) -> Option<String> {
        if let Some((scenario, _)) = self.running.iter().find(|(_, l)| l.stack == slot.stack) {
            return Some(format!("{scenario} still runs on {}", slot.stack));
        }
        if let Some(h) = self.held.iter().find(|h| h.stack == slot.stack) {
            return Some(format!(
                "run {} ({}) still holds {} (running, or a fault not reverted)",
                h.run_id, h.scenario, slot.stack
            ));
        }
        let scenario = self.scenarios.get(&slot.scenario)?;
        if let Some(earlier) = scenario
            .schedule
            .after
            .iter()
            .find(|earlier| self.running.contains_key(*earlier))
        {
            return Some(format!("{earlier}, which it must follow, still runs"));
        }
        for resource in &scenario.schedule.resources {
            let capacity = self.input.resources.get(resource).copied().unwrap_or(1) as usize;
            let used = in_use.get(resource).copied().unwrap_or(0);
            if used >= capacity {
                return Some(format!(
                    "resource {resource} is held by {used} live run(s) (capacity {capacity})"
                ));
            }
        }
        None
    }

    /// Whether a pending slot's time has come.
    fn has_due_slot(&self) -> bool {
        let now = Utc::now();
        self.startable().iter().any(|s| s.start <= now)
    }

    /// Journals a run still going past its expected end, re-plans around it, and tells its owner
    /// once it is more than `spec.overrunNotifyAfter` late.
    async fn check_overruns(&mut self) {
        let now = Utc::now();
        let notify_after = self.config.overrun_notify_after.as_chrono();
        let mut replan_cause = None;
        let mut notify = Vec::new();
        for (scenario, live) in &mut self.running {
            let late = now - live.planned_end;
            if now > live.expected_end + ON_TIME {
                if live.expected_end == live.planned_end {
                    // First time past its end: `f3_chaos_run_overruns_total` counts runs.
                    self.sources.metrics.run_overran(scenario, &live.stack);
                }
                live.expected_end = now + (now - live.planned_end).max(OVERRUN_STEP);
                journal(&serde_json::json!({
                    "event": "overrun", "scenario": scenario, "stack": live.stack,
                    "runId": live.run_id, "plannedEnd": live.planned_end,
                    "overrunSeconds": late.num_milliseconds() as f64 / 1000.0,
                    "expectedEnd": live.expected_end,
                }));
                tracing::warn!(%scenario, stack = %live.stack, run_id = %live.run_id, overrun_s = late.num_seconds(), "Run overruns its planned end.");
                if let Some(run) = self
                    .progress
                    .started
                    .iter_mut()
                    .find(|r| &r.scenario == scenario)
                {
                    run.state = RunState::Running {
                        expected_end: live.expected_end,
                    };
                }
                replan_cause = Some(Cause {
                    scenario: scenario.clone(),
                    stack: live.stack.clone(),
                    planned_end: live.planned_end,
                });
            }
            if !live.owner_notified && late > notify_after {
                live.owner_notified = true;
                notify.push((scenario.clone(), live.clone(), late));
            }
        }
        for (scenario, live, late) in notify {
            self.notify_overrun(&scenario, &live, late).await;
        }
        if let Some(cause) = replan_cause {
            self.replan("overrun", Some(&cause)).await;
        }
    }

    /// Queues an overrun notification for the scenario's owner.
    async fn notify_overrun(&self, scenario: &str, live: &Live, late: TimeDelta) {
        let Some(owner) = self.scenarios.get(scenario).map(|s| s.owner.clone()) else {
            return;
        };
        let payload = serde_json::json!({
            "version": 1, "scenario": scenario, "stack": live.stack, "outcome": null,
            "steps": [], "overrunSeconds": late.num_seconds().max(0),
        });
        match self
            .sources
            .store
            .outbox_insert(
                live.run_id,
                &owner,
                crate::model::NotificationKind::Overrun,
                &payload,
                Utc::now(),
            )
            .await
        {
            Ok(id) => journal(&serde_json::json!({
                "event": "overrun-notified", "scenario": scenario, "stack": live.stack,
                "runId": live.run_id, "team": owner, "outboxId": id,
            })),
            Err(e) => {
                tracing::warn!(error = %e, %scenario, "Could not queue the overrun notification.")
            }
        }
    }

    /// Starts every planned slot whose time has come and whose stack and resources are free.
    fn start_due_slots(
        &mut self,
        ended_tx: &mpsc::UnboundedSender<SlotEnd>,
        cancel: &CancellationToken,
    ) {
        let now = Utc::now();
        for slot in self.startable() {
            if slot.start > now {
                continue;
            }
            let in_use = self.resources_in_use();
            if let Some(why) = self.held_back(&slot, &in_use) {
                tracing::debug!(scenario = %slot.scenario, stack = %slot.stack, %why, "Slot held back.");
                continue;
            }
            let Some(scenario) = self.scenarios.get(&slot.scenario).cloned() else {
                continue;
            };
            let length = slot.end - slot.start;
            let Some(stack) = self.config.stacks.get(&slot.stack).cloned() else {
                continue;
            };
            let mut opts = RunOptions::new(DAEMON_TRIGGER, DAEMON_TRIGGER);
            opts.night = Some(self.window.night);
            opts.calendar = crate::plan::NightCalendar::of(&self.config);
            opts.resolve_findings_after = self.config.resolve_findings_after;
            let planned_end = now + length;
            journal(&serde_json::json!({
                "event": "slot-start", "scenario": slot.scenario, "stack": slot.stack,
                "runId": opts.run_id, "plannedStart": slot.start, "plannedEnd": planned_end,
            }));
            self.running.insert(
                slot.scenario.clone(),
                Live {
                    stack: slot.stack.clone(),
                    run_id: opts.run_id,
                    planned_end,
                    expected_end: planned_end,
                    owner_notified: false,
                },
            );
            self.progress.started.push(StartedRun {
                scenario: slot.scenario.clone(),
                stack: slot.stack.clone(),
                started_at: now,
                state: RunState::Running {
                    expected_end: planned_end,
                },
            });
            let store = self.sources.store.clone();
            let metrics = self.sources.metrics.clone();
            let reporters = self.sources.reporters.clone();
            let tx = ended_tx.clone();
            let cancel = cancel.child_token();
            tokio::task::spawn_local(async move {
                let result = launch::launch(launch::Launch {
                    store: &store,
                    stack: &stack,
                    scenario: &scenario,
                    opts,
                    reporters,
                    metrics: Some(metrics),
                    cancel,
                })
                .await;
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

    /// Pending slots that can still start: not started, and still fitting before the window
    /// ends if started now (the next re-plan drops the others).
    fn startable(&self) -> Vec<Slot> {
        let now = Utc::now();
        self.pending()
            .into_iter()
            .filter(|slot| now.max(slot.start) + (slot.end - slot.start) <= self.window.end)
            .collect()
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

    /// When the loop must look again: the next pending slot's start, the next expected end of
    /// a run in flight (to notice an overrun), [`HELD_POLL`] while a due slot is held back by
    /// someone else's run, else the window end. Never sooner than 200 ms from now: the loop does
    /// not spin.
    fn next_wake(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let soonest = now + TimeDelta::milliseconds(200);
        let startable = self.startable();
        let mut wake = self.window.end;
        for slot in &startable {
            // A due slot still pending is held back (by a run in flight or someone else's):
            // look again after HELD_POLL.
            let at = if slot.start > now {
                slot.start
            } else {
                now + TimeDelta::from_std(HELD_POLL).unwrap_or_default()
            };
            wake = wake.min(at);
        }
        for live in self.running.values() {
            wake = wake.min(live.expected_end + ON_TIME + TimeDelta::milliseconds(1));
        }
        wake.max(soonest)
    }

    async fn slot_ended(&mut self, end: SlotEnd) {
        let now = Utc::now();
        let live = self.running.remove(&end.scenario);
        let overran = live
            .as_ref()
            .is_some_and(|l| l.expected_end > l.planned_end);
        let cause = Cause {
            scenario: end.scenario.clone(),
            stack: end.stack.clone(),
            planned_end: end.planned_end,
        };
        let report = match end.result {
            Ok(report) => report,
            Err(busy) if busy.is_stack_busy() => {
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
                let cause = crate::fault::cause_text(&e);
                tracing::error!(stack = %end.stack, scenario = %end.scenario, error = %cause, "Slot could not start.");
                self.progress.started.retain(|r| r.scenario != end.scenario);
                self.report
                    .skipped
                    .push((end.scenario.clone(), format!("could not start: {cause}")));
                self.input.scenarios.retain(|s| s.name != end.scenario);
                return;
            }
        };
        let outcome = report.outcome.to_string();
        journal(&serde_json::json!({
            "event": "slot-end", "scenario": end.scenario, "stack": end.stack, "runId": report.run_id,
            "outcome": outcome, "seconds": (now - end.started_at).num_milliseconds() as f64 / 1000.0,
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
        } else if overran || now > end.planned_end + ON_TIME {
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
        // Rate limit: events closer together than REPLAN_MIN_GAP share one plan.
        if let Some(last) = self.last_replan {
            tokio::time::sleep_until(last + REPLAN_MIN_GAP).await;
        }
        self.last_replan = Some(tokio::time::Instant::now());
        self.progress.now = Utc::now();
        // Runs in flight are expected to end at their planned end, or now when overrunning.
        self.plan = plan::replan(&self.input, &self.progress);
        let mut entry = serde_json::json!({
            "event": "replan", "reason": reason, "slots": self.plan.slots, "skipped": self.plan.skipped,
        });
        if let Some(cause) = cause {
            entry["scenario"] = cause.scenario.clone().into();
            entry["stack"] = cause.stack.clone().into();
            entry["overrunSeconds"] =
                ((Utc::now() - cause.planned_end).num_milliseconds().max(0) as f64 / 1000.0).into();
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
