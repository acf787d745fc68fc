//! The runner: the one owner of a run's state (nextest's dispatcher shape).
//!
//! ```text
//! lease stack → create run → fingerprint → preflight → Given (load, steady state)
//!   → silence the stack's alerts (Alertmanager, when configured; failure ⇒ precondition-failed)
//!   → When (ledger entry, then inject; each fault has a TTL the target enforces; Grafana
//!     annotation) → hold (abort conditions polled; Ctrl-C honoured) → revert (every exit path)
//!   → expire the silence, close the annotation → Then (windowed assertions)
//!   → recovery (steady state again) → fingerprint (changed ⇒ void)
//!   → finish run + outbox (owner teams), one transaction → release lease
//! ```
//!
//! The phases live here; around them:
//! - every transition goes through the run's durable writer ([`super::journal`]): stored first,
//!   then handed to the run's [`Reporters`] (terminal, live API stream, metrics), so the durable
//!   record is never behind what a person saw;
//! - the tools told about the fault window (Alertmanager silence, Grafana annotation) are
//!   [`FaultWindowHook`]s, called before injection, after injection and after the last revert.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::event::RunEvent;
use super::hooks::{FaultWindow, FaultWindowHook};
use super::journal::Journal;
use super::reporter::Reporters;
use crate::assert::{self, PhaseTimes, SloSource};
use crate::fault::{FaultContext, FaultDriver, FaultHandle, LoadGenerator};
use crate::model::{Phase, RunOutcome, StepResult, Verdict};
use crate::present;
use crate::scenario::{GivenStep, Hold, Scenario};
use crate::store::{
    LeaseHolder, LedgerEntry, LedgerState, NewNotification, NewRun, Store, StoreError,
};

/// Tunables of one run. Defaults suit a Prometheus scraping every 1 s.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run id (UUID v7) — chosen by the caller so it can be printed before the run ends.
    pub run_id: Uuid,
    /// Who started the run (user name, `daemon`, CI job).
    pub started_by: String,
    /// How it was started: `cli`, `trigger`, `daemon`, `api`.
    pub trigger: String,
    /// Stack lease time-to-live; renewed every third of it while the run lives.
    pub lease_ttl: Duration,
    /// Wait this long for a busy stack instead of failing fast (None = fail fast).
    pub wait_for_stack: Option<Duration>,
    /// While waiting for a busy stack, how often the lease and the target's claim are tried.
    pub stack_poll: Duration,
    /// How often abort conditions are evaluated while faults are active.
    pub abort_poll: Duration,
    /// How long a Given steady-state check may take to hold (polled every second).
    pub steady_state_within: Duration,
    /// How long steady state may take to come back after revert.
    pub recovery_timeout: Duration,
    /// Added to each fault's declared duration to form the TTL the target enforces.
    pub ttl_grace: Duration,
    /// Resolution of range queries (Prometheus `step`); also the longest wait, after a window
    /// closes, for Prometheus to hold the sample that closes it (use the scrape interval).
    pub query_step: Duration,
    /// The chaos night the run belongs to (daemon runs: the planned night); `None` for ad-hoc
    /// runs.
    pub night: Option<chrono::NaiveDate>,
    /// Which night an instant belongs to (the config's zone and window): failure streaks count
    /// earlier runs, and this one when `night` is `None`, on their local nights.
    pub calendar: crate::plan::NightCalendar,
    /// Passing nights after which an open finding resolves itself
    /// (`spec.findings.resolveAfterPassingNights`); findings follow planned runs only.
    pub resolve_findings_after: u32,
}

impl RunOptions {
    /// Defaults for a new run started by `started_by` through `trigger`.
    pub fn new(started_by: &str, trigger: &str) -> Self {
        Self {
            run_id: Uuid::now_v7(),
            started_by: started_by.to_owned(),
            trigger: trigger.to_owned(),
            lease_ttl: Duration::from_secs(15),
            wait_for_stack: None,
            stack_poll: Duration::from_secs(1),
            abort_poll: Duration::from_millis(250),
            steady_state_within: Duration::from_secs(15),
            recovery_timeout: Duration::from_secs(60),
            ttl_grace: Duration::from_secs(1),
            query_step: Duration::from_secs(1),
            night: None,
            calendar: crate::plan::NightCalendar::default(),
            resolve_findings_after: crate::config::DEFAULT_RESOLVE_AFTER_PASSING_NIGHTS,
        }
    }
}

/// Why a run could not start (once started, every problem becomes an outcome instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run holds the stack lease.
    #[error(
        "stack `{stack}` is busy: run {holder_run} ({holder_scenario}) started by {holder} holds it until {expires_at}"
    )]
    StackBusy {
        /// Stack name.
        stack: String,
        /// The holder's run id.
        holder_run: Uuid,
        /// The holder's scenario.
        holder_scenario: String,
        /// Who started the holder.
        holder: String,
        /// When the lease expires unless renewed.
        expires_at: DateTime<Utc>,
    },
    /// The store failed before the run started.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stack's fault driver, Prometheus client or integrations could not be set up
    /// (nothing was touched).
    #[error(transparent)]
    Launch(#[from] super::launch::LaunchError),
    /// The driver failed to claim the target for another reason than another holder (nothing
    /// was touched).
    #[error("the target could not be claimed")]
    Claim(#[source] crate::fault::FaultError),
    /// The stack is production and the scenario does not opt in
    /// (`spec.targets.allowProduction: true`); nothing was touched.
    #[error(
        "scenario `{scenario}` does not opt in to production (`spec.targets.allowProduction: true`); it may not run on production stack `{stack}`"
    )]
    ProductionNotAllowed {
        /// Scenario name.
        scenario: String,
        /// Stack name.
        stack: String,
    },
    /// The stack's driver cannot inject one of the scenario's faults
    /// ([`crate::fault::capabilities`]); nothing was touched.
    #[error("scenario `{scenario}` cannot run on stack `{stack}`: {missing}")]
    DriverCannot {
        /// Scenario name.
        scenario: String,
        /// Stack name.
        stack: String,
        /// What the driver lacks, one sentence per When step, joined with `; `.
        missing: String,
    },
    /// The store's lease was free but the target itself is claimed by another run — one recorded
    /// in another store or by another daemon ([`FaultDriver::claim`]). Nothing was touched.
    #[error(
        "stack `{stack}` is busy: {holder} holds it at the target (a run recorded in another store or by another daemon)"
    )]
    TargetBusy {
        /// Stack name.
        stack: String,
        /// The holder, as it described itself.
        holder: String,
    },
}

impl RunError {
    /// Whether another run holds the stack (the store's lease or the target's claim): exit 7 in
    /// the CLI, HTTP 409 in the API, a re-plan in the daemon.
    pub fn is_stack_busy(&self) -> bool {
        matches!(
            self,
            RunError::StackBusy { .. } | RunError::TargetBusy { .. }
        )
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Outcome.
    pub outcome: RunOutcome,
    /// Why, when the outcome needs explaining (void reason, error, abort condition).
    pub reason: Option<String>,
    /// Every step in timeline order.
    pub steps: Vec<StepResult>,
    /// Passed experiment steps (When + Then) / all experiment steps, ratio 0–1; `None` when the
    /// run ended before its experiment (no When or Then step recorded).
    pub pass_rate: Option<f64>,
    /// Breach seen → every fault reverted, milliseconds (aborted runs only).
    pub abort_latency_ms: Option<i64>,
    /// Teams with a notification recorded in the outbox.
    pub notified: Vec<String>,
    /// Start (UTC).
    pub started_at: DateTime<Utc>,
    /// End (UTC).
    pub ended_at: DateTime<Utc>,
}

struct ActiveFault {
    index: usize,
    name: String,
    ledger_id: Uuid,
    handle: FaultHandle,
    ends_at: tokio::time::Instant,
}

/// Mutable state of the one run this runner owns.
struct RunState<'a> {
    run_id: Uuid,
    stack: String,
    started_at: DateTime<Utc>,
    /// The durable writer, and the steps recorded so far.
    journal: Journal<'a>,
    outcome: RunOutcome,
    reason: Option<String>,
    active: Vec<ActiveFault>,
    injected_at: Option<DateTime<Utc>>,
    fault_ended_at: Option<DateTime<Utc>>,
    reverted_at: Option<DateTime<Utc>>,
    abort_latency_ms: Option<i64>,
    /// Whether the fault-window hooks were told about the last revert (once per run).
    hooks_told_reverted: bool,
}

impl RunState<'_> {
    /// The store lost part of the run's record (`why`): whatever was judged, the run is at
    /// least `error`, and `why` leads its reason (the earlier reason follows it).
    fn record_lost(&mut self, why: String) {
        self.outcome = self.outcome.strongest(RunOutcome::Error);
        self.reason = Some(match self.reason.take() {
            Some(earlier) => format!("{why}; {earlier}"),
            None => why,
        });
    }

    fn escalate(&mut self, outcome: RunOutcome, reason: Option<String>) {
        let before = self.outcome;
        self.outcome = self.outcome.strongest(outcome);
        if self.outcome != before && reason.is_some() {
            self.reason = reason;
        }
    }
}

/// Runs one scenario on one stack.
pub struct Runner<'a, D, S> {
    store: &'a Store,
    driver: &'a D,
    slo: &'a S,
    reporters: Reporters,
    /// A child of the caller's token: the caller's cancel reaches it, and so does a lost lease.
    cancel: CancellationToken,
    /// Set (with who holds the stack now) when the heartbeat finds the lease taken: the run then
    /// stops, reverts what is still its own and ends `interrupted`, never passed.
    lease_lost: Arc<Mutex<Option<String>>>,
    hooks: Vec<Box<dyn FaultWindowHook>>,
}

impl<'a, D, S> Runner<'a, D, S>
where
    D: FaultDriver + LoadGenerator,
    S: SloSource,
{
    /// A runner writing to `store`, breaking things through `driver`, judging from `slo`.
    /// Events go to `reporters` after they are stored; `cancel` (Ctrl-C, SIGTERM, window end)
    /// reverts faults and ends the run as `interrupted`.
    pub fn new(
        store: &'a Store,
        driver: &'a D,
        slo: &'a S,
        reporters: Reporters,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            store,
            driver,
            slo,
            reporters,
            cancel: cancel.child_token(),
            lease_lost: Arc::new(Mutex::new(None)),
            hooks: Vec::new(),
        }
    }

    /// Tells `hook` about the run's fault window (hooks are called in the order added). A hook
    /// that refuses before injection stops the run as `precondition-failed`.
    #[must_use]
    pub fn with_hook(mut self, hook: impl FaultWindowHook + 'static) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Runs `scenario` on stack `stack` to the end.
    ///
    /// Errors: only before the run exists — the stack is busy ([`RunError::StackBusy`]) or the
    /// store is unusable. Everything after that is an outcome in the report.
    pub async fn run(
        &self,
        scenario: &Scenario,
        stack: &str,
        opts: &RunOptions,
    ) -> Result<RunReport, RunError> {
        let started_at = Utc::now();
        let target_claim = self.acquire_stack(scenario, stack, opts).await?;
        let new_run = NewRun {
            id: opts.run_id,
            scenario: scenario.name.clone(),
            stack: stack.to_owned(),
            trigger: opts.trigger.clone(),
            started_by: opts.started_by.clone(),
            started_at,
            pid: std::process::id(),
            host: crate::store::local_hostname(),
            scenario_digest: None,
            night: opts.night,
        };
        if let Err(e) = self.store.create_run(&new_run).await {
            if let Err(release) = self.store.release_lease(stack, opts.run_id).await {
                tracing::error!(run_id = %opts.run_id, stack, error = %release, "Could not release the stack lease after failing to record the run; it expires on its TTL.");
            }
            return Err(e.into());
        }
        let heartbeat = self.spawn_heartbeat(stack, opts);
        let mut state = RunState {
            run_id: opts.run_id,
            stack: stack.to_owned(),
            started_at,
            journal: Journal::new(self.store, opts.run_id, self.reporters.clone()),
            outcome: RunOutcome::Passed,
            reason: None,
            active: Vec::new(),
            injected_at: None,
            fault_ended_at: None,
            reverted_at: None,
            abort_latency_ms: None,
            hooks_told_reverted: false,
        };
        state
            .journal
            .emit(RunEvent::RunStarted {
                run_id: opts.run_id,
                scenario: scenario.name.clone(),
                stack: stack.to_owned(),
                started_by: opts.started_by.clone(),
            })
            .await;

        self.execute(&mut state, scenario, opts).await;
        // Whatever happened above, nothing stays injected, nothing stays silenced.
        self.revert_all(&mut state).await;
        self.after_revert(&mut state, scenario, opts).await;
        let lost = self
            .lease_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(lost) = lost {
            // Whatever was judged before, the stack was not this run's alone: not a result.
            state.outcome = state.outcome.strongest(RunOutcome::Interrupted);
            state.reason = Some(format!(
                "{lost}; this run stopped and reverted what was still its own"
            ));
        }

        // Durable first: a result is a result only once its record is whole.
        if let Err(e) = self.store.check_in_place() {
            state.record_lost(crate::fault::cause_text(&e));
        } else if let Some(refused) = state.journal.refused_write() {
            let why =
                format!("the store refused a write ({refused}): the run's record is incomplete");
            state.record_lost(why);
        }

        let notifications = self.notifications(&state, scenario, stack, opts).await;
        let notified: Vec<String> = notifications
            .iter()
            .filter(|(n, _)| n.kind == crate::model::NotificationKind::Failures)
            .map(|(n, _)| n.team.clone())
            .collect();
        let pass_rate = pass_rate(state.journal.steps());
        let ended_at = Utc::now();
        let summary = serde_json::json!({
            "pass_rate": pass_rate,
            "reason": state.reason,
            "abort_latency_ms": state.abort_latency_ms,
            "notified": notified,
        });
        let rows: Vec<NewNotification> = notifications.iter().map(|(n, _)| n.clone()).collect();
        // The outcome and the notifications are stored in one transaction: both or neither.
        let notified = match self
            .store
            .finish_run_with_outbox(opts.run_id, state.outcome, ended_at, &summary, &rows)
            .await
        {
            Ok(_) => {
                // Derived from the stored steps: a failure here loses no result.
                if let Err(e) = self
                    .store
                    .record_findings(opts.run_id, opts.resolve_findings_after, ended_at)
                    .await
                {
                    tracing::warn!(run_id = %opts.run_id, error = %e, "Could not update the findings of the run's Then steps.");
                }
                for (n, steps) in &notifications {
                    if n.kind == crate::model::NotificationKind::Failures {
                        state
                            .journal
                            .emit(RunEvent::Notifying {
                                team: n.team.clone(),
                                steps: steps.clone(),
                            })
                            .await;
                    }
                }
                notified
            }
            Err(e) => {
                tracing::error!(run_id = %opts.run_id, error = %e, "Could not store the run's outcome and notifications.");
                state.record_lost(format!(
                    "the outcome and notifications could not be written to the store ({}): nothing is recorded or notified",
                    crate::fault::cause_text(&e)
                ));
                Vec::new()
            }
        };
        state
            .journal
            .emit(RunEvent::RunFinished {
                outcome: state.outcome,
                pass_rate,
                reason: state.reason.clone(),
            })
            .await;
        heartbeat.cancel();
        // The target first (awaited: a Kubernetes Lease is a DELETE), then the store's lease.
        target_claim.release().await;
        if let Err(e) = self.store.release_lease(stack, opts.run_id).await {
            tracing::warn!(run_id = %opts.run_id, error = %e, "Could not release the stack lease; it expires by itself.");
        }
        Ok(RunReport {
            run_id: opts.run_id,
            scenario: scenario.name.clone(),
            stack: stack.to_owned(),
            outcome: state.outcome,
            reason: state.reason,
            steps: state.journal.into_steps(),
            pass_rate,
            abort_latency_ms: state.abort_latency_ms,
            notified,
            started_at,
            ended_at,
        })
    }

    /// Takes the stack: the store's lease, then the target's claim ([`FaultDriver::claim`]).
    /// Either one held by another run is "stack busy"; with [`RunOptions::wait_for_stack`] both
    /// are waited for (tried every [`RunOptions::stack_poll`], the lease given back while the target is claimed),
    /// else the first refusal is returned.
    async fn acquire_stack(
        &self,
        scenario: &Scenario,
        stack: &str,
        opts: &RunOptions,
    ) -> Result<crate::fault::TargetClaim, RunError> {
        let holder = LeaseHolder {
            run_id: opts.run_id,
            scenario: scenario.name.clone(),
            holder: opts.started_by.clone(),
        };
        let claimant = format!(
            "run {} ({}, started by {}, pid {} on {})",
            opts.run_id,
            scenario.name,
            opts.started_by,
            std::process::id(),
            crate::store::local_hostname()
        );
        let give_up_at = opts.wait_for_stack.map(|w| tokio::time::Instant::now() + w);
        loop {
            let busy = match self
                .store
                .acquire_lease(stack, &holder, opts.lease_ttl, Utc::now())
                .await?
            {
                Ok(_) => match self.driver.claim(&claimant).await {
                    Ok(claim) => return Ok(claim),
                    Err(e) => {
                        if let Err(release) = self.store.release_lease(stack, opts.run_id).await {
                            tracing::error!(run_id = %opts.run_id, stack, error = %release, "Could not release the stack lease after the target refused the claim; it expires on its TTL.");
                        }
                        match e {
                            crate::fault::FaultError::TargetBusy { stack, holder } => {
                                RunError::TargetBusy { stack, holder }
                            }
                            other => return Err(RunError::Claim(other)),
                        }
                    }
                },
                Err(current) => RunError::StackBusy {
                    stack: stack.to_owned(),
                    holder_run: current.run_id,
                    holder_scenario: current.scenario.clone(),
                    holder: current.holder.clone(),
                    expires_at: current.expires_at,
                },
            };
            match give_up_at {
                Some(deadline) if tokio::time::Instant::now() < deadline => {
                    tokio::select! {
                        _ = tokio::time::sleep(opts.stack_poll) => {}
                        _ = self.cancel.cancelled() => return Err(busy),
                    }
                }
                _ => return Err(busy),
            }
        }
    }

    /// Keeps the lease and the run's heartbeat fresh until cancelled.
    fn spawn_heartbeat(&self, stack: &str, opts: &RunOptions) -> CancellationToken {
        let stop = CancellationToken::new();
        let guard = stop.clone();
        let store = self.store.clone();
        let stack = stack.to_owned();
        let (run_id, ttl) = (opts.run_id, opts.lease_ttl);
        let (cancel_run, lease_lost) = (self.cancel.clone(), self.lease_lost.clone());
        tokio::spawn(async move {
            // The heartbeat is what other processes judge this run's liveness by
            // (`RunRecord::liveness`): every HEARTBEAT_EVERY, with the lease renewed alongside.
            let period = crate::store::HEARTBEAT_EVERY.min(ttl / 3);
            // A store that refuses writes refuses every heartbeat: a line a minute, with a count.
            let mut repeats = crate::repeats::Repeats::default();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = guard.cancelled() => return,
                }
                let now = Utc::now();
                match store.renew_lease(&stack, run_id, ttl, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let holder = store.leases(now).await.ok().and_then(|leases| {
                            leases
                                .into_iter()
                                .find(|l| l.stack == stack && l.run_id != run_id)
                        });
                        let lost = match holder {
                            Some(l) => format!(
                                "stack lease lost to run {} ({}, started by {})",
                                l.run_id, l.scenario, l.holder
                            ),
                            None => "stack lease lost (expired while this run was not renewing it)"
                                .to_owned(),
                        };
                        tracing::error!(run_id = %run_id, stack = %stack, %lost, "Stack lease lost; stopping the run.");
                        *lease_lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(lost);
                        cancel_run.cancel();
                        return;
                    }
                    Err(e) => {
                        let error = crate::fault::cause_text(&e);
                        if let Some(repeated) =
                            repeats.note(&format!("lease: {error}"), std::time::Instant::now())
                        {
                            tracing::warn!(run_id = %run_id, %error, repeated, "Could not renew the stack lease (logged at most once a minute; `repeated` = times since the last line).");
                        }
                    }
                }
                if let Err(e) = store.heartbeat_run(run_id, now).await {
                    let error = crate::fault::cause_text(&e);
                    if let Some(repeated) =
                        repeats.note(&format!("heartbeat: {error}"), std::time::Instant::now())
                    {
                        tracing::warn!(run_id = %run_id, %error, repeated, "Could not write the run heartbeat (logged at most once a minute; `repeated` = times since the last line).");
                    }
                }
            }
        });
        stop
    }

    /// Every phase; returns early on precondition failure, error, abort or interruption. Faults
    /// still active on return are reverted by the caller.
    async fn execute(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) {
        let fingerprint_before = match self.driver.fingerprint().await {
            Ok(value) => value,
            Err(e) => return state.escalate(RunOutcome::Error, Some(format!("fingerprint: {e}"))),
        };
        state
            .journal
            .emit(RunEvent::Fingerprint {
                when: "before".into(),
                value: fingerprint_before.clone(),
            })
            .await;
        if let Err(e) = self.driver.preflight(&scenario.when).await {
            // A target that is down or selects nothing is the stack's state, like a Given that
            // does not hold; a fault the driver cannot do is a broken scenario or config.
            let outcome = if e.is_target_state() {
                RunOutcome::PreconditionFailed
            } else {
                RunOutcome::Error
            };
            state.escalate(outcome, Some(format!("preflight: {e}")));
            self.skip_rest(state, scenario, "the preflight refused the target")
                .await;
            return;
        }

        if !self.given(state, scenario, opts).await {
            if !matches!(state.outcome, RunOutcome::Interrupted | RunOutcome::Error) {
                state.escalate(
                    RunOutcome::PreconditionFailed,
                    Some("Given did not hold; no fault was injected".into()),
                );
            }
            self.skip_rest(state, scenario, "Given did not hold").await;
            return;
        }

        if !self.before_inject(state, scenario, opts).await {
            self.skip_rest(
                state,
                scenario,
                "a fault-window hook refused the injection (see the Given steps)",
            )
            .await;
            return;
        }

        let injected = self.when(state, scenario, opts).await;
        self.after_inject(state, scenario, opts);
        if !injected {
            self.revert_all(state).await;
            self.after_revert(state, scenario, opts).await;
            self.skip_then(state, scenario, "no fault window to judge")
                .await;
            return;
        }
        self.hold(state, scenario, opts).await;
        self.revert_all(state).await;
        self.after_revert(state, scenario, opts).await;
        if state.outcome == RunOutcome::Interrupted {
            self.skip_then(state, scenario, "run interrupted").await;
            return;
        }
        self.then(state, scenario, opts).await;

        match self.driver.fingerprint().await {
            Ok(after) => {
                state
                    .journal
                    .emit(RunEvent::Fingerprint {
                        when: "after".into(),
                        value: after.clone(),
                    })
                    .await;
                if after != fingerprint_before {
                    let changed = self.driver.changed_objects(&fingerprint_before, &after);
                    let named = if changed.is_empty() {
                        String::new()
                    } else {
                        format!("; changed: {}", changed.join(", "))
                    };
                    state.escalate(
                        RunOutcome::Void,
                        Some(format!(
                            "the stack changed during the run (fingerprint {} → {}{named}): results are void",
                            short(&fingerprint_before),
                            short(&after)
                        )),
                    );
                }
            }
            Err(e) => state.escalate(
                RunOutcome::Void,
                Some(format!("could not fingerprint the stack again: {e}")),
            ),
        }
    }

    /// Given: load steps and steady-state checks in file order. Returns whether all held.
    async fn given(
        &self,
        state: &mut RunState<'_>,
        scenario: &Scenario,
        opts: &RunOptions,
    ) -> bool {
        let mut all_held = true;
        for step in &scenario.given {
            let index = state.journal.next_index();
            let started_at = Utc::now();
            let (name, judgement) = match step {
                GivenStep::SteadyState { name, check } => {
                    state.journal.step_started(index, Phase::Given, name).await;
                    // Polled for a short while: right after a deploy or `sandbox up` the first
                    // scrapes may not have landed. A platform that is really unhealthy fails
                    // after `steady_state_within`.
                    let deadline = std::time::Instant::now() + opts.steady_state_within;
                    let waited = tokio::select! {
                        j = assert::wait_until_holds(self.slo, check, deadline, Duration::from_secs(1), opts.query_step) => Some(j),
                        _ = self.cancel.cancelled() => None,
                    };
                    match waited {
                        Some(j) => (name, j),
                        None => {
                            state.escalate(
                                RunOutcome::Interrupted,
                                Some("interrupted during Given".into()),
                            );
                            return false;
                        }
                    }
                }
                GivenStep::Load {
                    name,
                    tps,
                    settle_within,
                } => {
                    state.journal.step_started(index, Phase::Given, name).await;
                    if let Err(e) = self.driver.set_tps(*tps).await {
                        state
                            .journal
                            .record(
                                StepResult::new(index, Phase::Given, name, None, started_at)
                                    .with_verdict(Verdict::Error)
                                    .with_message(e.to_string()),
                                None,
                            )
                            .await;
                        all_held = false;
                        break;
                    }
                    let check = self.driver.load_check(*tps);
                    let deadline = std::time::Instant::now() + settle_within.as_std();
                    let waited = tokio::select! {
                        j = assert::wait_until_holds(self.slo, &check, deadline, Duration::from_secs(1), opts.query_step) => Some(j),
                        _ = self.cancel.cancelled() => None,
                    };
                    match waited {
                        Some(j) => (name, j),
                        None => {
                            state.escalate(
                                RunOutcome::Interrupted,
                                Some("interrupted during Given".into()),
                            );
                            return false;
                        }
                    }
                }
            };
            let held = judgement.verdict == Verdict::Passed;
            state
                .journal
                .judged(
                    index,
                    Phase::Given,
                    name,
                    None,
                    started_at,
                    &judgement,
                    state.reverted_at,
                )
                .await;
            if !held {
                all_held = false;
                break; // the hypothesis cannot be tested; later Given steps would only add noise
            }
            if self.cancel.is_cancelled() {
                state.escalate(
                    RunOutcome::Interrupted,
                    Some("interrupted during Given".into()),
                );
                return false;
            }
        }
        all_held
    }

    /// When: ledger first, then inject, for each fault. Returns false if any injection failed
    /// (the caller reverts what was injected).
    async fn when(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) -> bool {
        for step in &scenario.when {
            if self.cancel.is_cancelled() {
                state.escalate(
                    RunOutcome::Interrupted,
                    Some("interrupted before injection".into()),
                );
                return false;
            }
            let index = state.journal.next_index();
            let started_at = Utc::now();
            state
                .journal
                .step_started(index, Phase::When, &step.name)
                .await;
            let ttl = step.duration.as_std() + opts.ttl_grace;
            let ledger_id = Uuid::now_v7();
            let spec = self
                .driver
                .describe(step)
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
            let entry = LedgerEntry {
                id: ledger_id,
                run_id: state.run_id,
                stack: state.stack.clone(),
                driver: self.driver.name().to_owned(),
                step_name: step.name.clone(),
                spec,
                handle: None,
                state: LedgerState::Pending,
                created_at: started_at,
                expires_at: started_at + chrono::Duration::from_std(ttl).unwrap_or_default(),
                updated_at: started_at,
            };
            // Durable first: a fault that is not in the ledger is never injected.
            if let Err(e) = self.store.ledger_insert(&entry).await {
                state
                    .journal
                    .record(
                        StepResult::new(index, Phase::When, &step.name, None, started_at)
                            .with_verdict(Verdict::Error)
                            .with_message(format!(
                                "not injected: the fault ledger could not be written: {e}"
                            )),
                        None,
                    )
                    .await;
                state.escalate(RunOutcome::Error, Some(format!("fault ledger: {e}")));
                return false;
            }
            let ctx = FaultContext {
                run_id: state.run_id,
                ledger_id,
                step_index: index,
                ttl,
            };
            match self.driver.inject(step, &ctx).await {
                Ok(handle) => {
                    let now = Utc::now();
                    if let Ok(value) = serde_json::to_value(&handle) {
                        state
                            .journal
                            .ledger(
                                ledger_id,
                                LedgerState::Injected,
                                Some(&value),
                                now,
                                "injected",
                            )
                            .await;
                    }
                    state.injected_at.get_or_insert(now);
                    state.active.push(ActiveFault {
                        index,
                        name: step.name.clone(),
                        ledger_id,
                        handle: handle.clone(),
                        ends_at: tokio::time::Instant::now() + step.duration.as_std(),
                    });
                    state
                        .journal
                        .emit(RunEvent::FaultInjected {
                            index,
                            name: step.name.clone(),
                            description: handle.description.clone(),
                            ttl_seconds: ttl.as_secs_f64(),
                        })
                        .await;
                    state
                        .journal
                        .record(
                            StepResult::new(index, Phase::When, &step.name, None, started_at)
                                .with_verdict(Verdict::Passed)
                                .with_message(format!(
                                    "{} for {}",
                                    handle.description, step.duration
                                )),
                            None,
                        )
                        .await;
                }
                Err(e) => {
                    // The driver undid its partial injection; the ledger must say so, or the
                    // sweep will try to revert a fault that is not there.
                    state
                        .journal
                        .ledger(
                            ledger_id,
                            LedgerState::Reverted,
                            None,
                            Utc::now(),
                            "reverted after a failed injection",
                        )
                        .await;
                    state
                        .journal
                        .record(
                            StepResult::new(index, Phase::When, &step.name, None, started_at)
                                .with_verdict(Verdict::Error)
                                .with_message(e.to_string()),
                            None,
                        )
                        .await;
                    state.escalate(RunOutcome::Error, Some(format!("injection failed: {e}")));
                    return false;
                }
            }
        }
        true
    }

    /// Holds the faults for their durations, reverting each at its end, polling abort
    /// conditions, honouring cancellation.
    async fn hold(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) {
        let mut unreadable_polls = 0u32;
        loop {
            let now = tokio::time::Instant::now();
            let mut due = Vec::new();
            state.active.retain(|f| {
                if f.ends_at <= now {
                    due.push((f.index, f.name.clone(), f.ledger_id, f.handle.clone()));
                    false
                } else {
                    true
                }
            });
            if !due.is_empty() && state.active.is_empty() {
                state.fault_ended_at = Some(Utc::now());
            }
            for (index, name, ledger_id, handle) in due {
                self.revert_one(state, index, &name, ledger_id, &handle)
                    .await;
            }
            let Some(next_end) = state.active.iter().map(|f| f.ends_at).min() else {
                break;
            };
            let wake = next_end.min(now + opts.abort_poll);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.cancel.cancelled() => {
                    state.fault_ended_at = Some(Utc::now());
                    state.escalate(RunOutcome::Interrupted, Some("interrupted while faults were active; faults reverted".into()));
                    return;
                }
            }
            if tokio::time::Instant::now() >= next_end {
                continue; // a fault reached its declared end: revert it before anything else
            }
            // Only post-injection samples: a pre-fault failure must not abort this fault.
            let injected_at = state.injected_at.unwrap_or_else(Utc::now);
            for condition in &scenario.abort {
                match assert::breached_after(self.slo, condition, injected_at, 2 * opts.query_step)
                    .await
                {
                    Ok(Some(observed)) => {
                        let detected_at = Utc::now();
                        state.fault_ended_at = Some(detected_at);
                        self.revert_all(state).await;
                        let reverted_at = state.reverted_at.unwrap_or_else(Utc::now);
                        let latency_ms = (reverted_at - detected_at).num_milliseconds();
                        state.abort_latency_ms = Some(latency_ms);
                        state.escalate(
                            RunOutcome::Aborted,
                            Some(format!(
                                "abort condition `{}` breached (observed {}, abort when {} {}); faults reverted in {latency_ms} ms",
                                condition.name,
                                present::quantity(observed, condition.check.unit.as_deref()),
                                condition.check.op.symbol(),
                                present::quantity(
                                    condition.check.threshold,
                                    condition.check.unit.as_deref()
                                )
                            )),
                        );
                        state
                            .journal
                            .emit(RunEvent::AbortTriggered {
                                condition: condition.name.clone(),
                                observed,
                                threshold: Some(condition.check.threshold),
                                op: Some(condition.check.op.symbol().to_owned()),
                                unit: condition.check.unit.clone(),
                                detected_at,
                                reverted_at,
                                latency_ms,
                            })
                            .await;
                        return;
                    }
                    Ok(None) => unreadable_polls = 0,
                    Err(e) => {
                        unreadable_polls += 1;
                        if unreadable_polls == 4 {
                            tracing::warn!(run_id = %state.run_id, error = %e, "Abort conditions cannot be evaluated; faults end at their declared duration.");
                        }
                    }
                }
            }
        }
    }

    /// Then: judge each assertion by its `hold`, then verify recovery.
    async fn then(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) {
        let injected_at = state.injected_at.unwrap_or_else(Utc::now);
        let fault_ended_at = state.fault_ended_at.unwrap_or_else(Utc::now);
        let reverted_at = state.reverted_at.unwrap_or_else(Utc::now);
        let mut times = PhaseTimes {
            injected_at,
            fault_ended_at,
            reverted_at,
            recovered_at: None,
        };

        // Steps are judged in the order their data becomes complete: fault-window steps now,
        // recover-within steps when their bound has passed, after-recovery steps last.
        let mut order: Vec<(usize, &crate::scenario::ThenStep)> =
            scenario.then.iter().enumerate().collect();
        order.sort_by_key(|(i, step)| {
            let rank = match step.hold {
                Hold::DuringFault | Hold::AtEnd => 0,
                Hold::RecoverWithin { .. } => 1,
                Hold::AfterRecovery => 2,
            };
            (rank, *i)
        });
        // Then steps keep their declared positions; the Recovery steps, judged before the
        // after-recovery steps, are numbered after every Then step, so no two steps share an index.
        let base = state.journal.next_index();
        let recovery_base = base + scenario.then.len();
        let mut recovery_done = false;
        for (i, step) in order {
            if matches!(step.hold, Hold::AfterRecovery) && !recovery_done {
                times.recovered_at = self.recovery(state, scenario, opts, recovery_base).await;
                recovery_done = true;
            }
            let started_at = Utc::now();
            state
                .journal
                .step_started(base + i, Phase::Then, &step.name)
                .await;
            // judge_then waits for the step's window to close and for Prometheus to hold the
            // sample that closes it (at most one query step more) before querying.
            let judgement = tokio::select! {
                j = assert::judge_then(self.slo, step, &times, opts.query_step) => j,
                _ = self.cancel.cancelled() => {
                    state.escalate(RunOutcome::Interrupted, Some("interrupted before assertions".into()));
                    return;
                }
            };
            state
                .journal
                .judged(
                    base + i,
                    Phase::Then,
                    &step.name,
                    Some(&step.owner),
                    started_at,
                    &judgement,
                    state.reverted_at,
                )
                .await;
        }
        if !recovery_done {
            self.recovery(state, scenario, opts, recovery_base).await;
        }
        let verdicts = state
            .journal
            .steps()
            .iter()
            .filter(|s| matches!(s.phase, Phase::Then | Phase::Recovery));
        for step in verdicts {
            match step.verdict {
                Verdict::Failed => state.outcome = state.outcome.strongest(RunOutcome::Failed),
                Verdict::Inconclusive | Verdict::Error => {
                    state.outcome = state.outcome.strongest(RunOutcome::Inconclusive)
                }
                Verdict::Passed | Verdict::Skipped => {}
            }
        }
    }

    /// Recovery: the Given steady-state checks must hold again within `recovery_timeout`.
    /// Its steps are numbered from `first_index` on. Returns when recovery was observed.
    async fn recovery(
        &self,
        state: &mut RunState<'_>,
        scenario: &Scenario,
        opts: &RunOptions,
        first_index: usize,
    ) -> Option<DateTime<Utc>> {
        let deadline = std::time::Instant::now() + opts.recovery_timeout;
        let mut recovered = true;
        let steady_states = scenario.given.iter().filter_map(|step| match step {
            GivenStep::SteadyState { name, check } => Some((name, check)),
            _ => None,
        });
        for (k, (name, check)) in steady_states.enumerate() {
            let index = first_index + k;
            let started_at = Utc::now();
            let label = format!("Recovery: {name}");
            state
                .journal
                .step_started(index, Phase::Recovery, &label)
                .await;
            let judgement = tokio::select! {
                j = assert::wait_until_holds(self.slo, check, deadline, Duration::from_secs(1), opts.query_step) => j,
                _ = self.cancel.cancelled() => return None,
            };
            recovered &= judgement.verdict == Verdict::Passed;
            state
                .journal
                .judged(
                    index,
                    Phase::Recovery,
                    &label,
                    Some(&scenario.owner),
                    started_at,
                    &judgement,
                    state.reverted_at,
                )
                .await;
        }
        recovered.then(Utc::now)
    }

    async fn revert_one(
        &self,
        state: &mut RunState<'_>,
        index: usize,
        name: &str,
        ledger_id: Uuid,
        handle: &FaultHandle,
    ) {
        let attempt = || async { self.driver.revert(handle).await };
        let result = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(3),
            )
            .await;
        let now = Utc::now();
        state.reverted_at = Some(now);
        match result {
            Ok(()) => {
                state
                    .journal
                    .ledger(ledger_id, LedgerState::Reverted, None, now, "reverted")
                    .await;
                state
                    .journal
                    .emit(RunEvent::FaultReverted {
                        index,
                        name: name.to_owned(),
                        ok: true,
                        message: None,
                    })
                    .await;
            }
            Err(e) => {
                state
                    .journal
                    .ledger(
                        ledger_id,
                        LedgerState::RevertFailed,
                        None,
                        now,
                        "revert-failed",
                    )
                    .await;
                state.escalate(RunOutcome::CleanupFailed, Some(format!("{e}")));
                state
                    .journal
                    .emit(RunEvent::FaultReverted {
                        index,
                        name: name.to_owned(),
                        ok: false,
                        message: Some(e.to_string()),
                    })
                    .await;
            }
        }
    }

    async fn revert_all(&self, state: &mut RunState<'_>) {
        let active = std::mem::take(&mut state.active);
        if active.is_empty() {
            return;
        }
        // A fault another process's sweep already reverted is not this run's any more (the stack
        // may have been given to another run since): leave the target alone.
        let reverted_by_others: Vec<Uuid> = match self.store.ledger_for_run(state.run_id).await {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.state == LedgerState::Reverted)
                .map(|e| e.id)
                .collect(),
            Err(e) => {
                tracing::warn!(run_id = %state.run_id, error = %e, "Could not read the fault ledger before reverting; reverting every active fault.");
                Vec::new()
            }
        };
        for fault in active {
            if reverted_by_others.contains(&fault.ledger_id) {
                tracing::warn!(run_id = %state.run_id, fault = %fault.name, "Fault already reverted by another process's sweep; not touching the target.");
                continue;
            }
            self.revert_one(
                state,
                fault.index,
                &fault.name,
                fault.ledger_id,
                &fault.handle,
            )
            .await;
        }
    }

    /// Records every When and Then step as skipped, `why` saying what stopped the experiment.
    async fn skip_rest(&self, state: &mut RunState<'_>, scenario: &Scenario, why: &str) {
        for step in &scenario.when {
            let index = state.journal.next_index();
            state
                .journal
                .record(
                    StepResult::new(index, Phase::When, &step.name, None, Utc::now())
                        .with_verdict(Verdict::Skipped)
                        .with_message(format!("not injected: {why}")),
                    None,
                )
                .await;
        }
        self.skip_then(state, scenario, why).await;
    }

    async fn skip_then(&self, state: &mut RunState<'_>, scenario: &Scenario, why: &str) {
        for step in &scenario.then {
            let index = state.journal.next_index();
            state
                .journal
                .record(
                    StepResult::new(
                        index,
                        Phase::Then,
                        &step.name,
                        Some(&step.owner),
                        Utc::now(),
                    )
                    .with_verdict(Verdict::Skipped)
                    .with_message(why.to_owned()),
                    None,
                )
                .await;
        }
    }

    /// What the fault-window hooks see of this run.
    fn window<'s>(
        &self,
        state: &RunState<'_>,
        scenario: &'s Scenario,
        stack: &'s str,
        opts: &RunOptions,
    ) -> FaultWindow<'s> {
        let longest = scenario
            .when
            .iter()
            .map(|step| step.duration.as_std())
            .max()
            .unwrap_or_default();
        FaultWindow {
            run_id: state.run_id,
            scenario,
            stack,
            longest_ttl: longest + opts.ttl_grace,
        }
    }

    /// Given, last steps: each hook's own step (the Alertmanager silence). Returns false — the
    /// run is precondition-failed and no fault is injected — when a hook refuses.
    async fn before_inject(
        &self,
        state: &mut RunState<'_>,
        scenario: &Scenario,
        opts: &RunOptions,
    ) -> bool {
        let stack = state.stack.clone();
        let window = self.window(state, scenario, &stack, opts);
        for hook in &self.hooks {
            let index = state.journal.next_index();
            let started_at = Utc::now();
            if let Some(name) = hook.given_step() {
                state.journal.step_started(index, Phase::Given, name).await;
            }
            let report = hook.before_inject(window, started_at).await;
            for event in report.events {
                state.journal.emit(event).await;
            }
            if let (Some(name), Some(step)) = (hook.given_step(), report.step) {
                let result = StepResult::new(index, Phase::Given, name, None, started_at)
                    .with_verdict(step.verdict)
                    .with_message(step.message);
                state.journal.record(result, step.evidence).await;
            }
            if let Some(reason) = report.refused {
                state.escalate(RunOutcome::PreconditionFailed, Some(reason));
                return false;
            }
        }
        true
    }

    /// Tells the hooks that the first fault is in (called once, after the When phase).
    fn after_inject(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) {
        let Some(injected_at) = state.injected_at else {
            return;
        };
        let window = self.window(state, scenario, &state.stack, opts);
        for hook in &self.hooks {
            hook.after_inject(window, injected_at);
        }
    }

    /// After the last revert (every exit path; each hook undoes what it did at most once):
    /// expires the silence, closes the annotation. What they report is recorded; it never changes
    /// the outcome.
    async fn after_revert(&self, state: &mut RunState<'_>, scenario: &Scenario, opts: &RunOptions) {
        if std::mem::replace(&mut state.hooks_told_reverted, true) {
            return;
        }
        let stack = state.stack.clone();
        let window = self.window(state, scenario, &stack, opts);
        for hook in &self.hooks {
            let report = hook.after_revert(window, state.reverted_at).await;
            for event in report.events {
                state.journal.emit(event).await;
            }
        }
    }

    /// The outbox rows of this run (one per owner team with failed or inconclusive steps, and
    /// resolves of steps that pass again), each with the names of the steps it reports. They are
    /// stored with the outcome, in one transaction.
    async fn notifications(
        &self,
        state: &RunState<'_>,
        scenario: &Scenario,
        stack: &str,
        opts: &RunOptions,
    ) -> Vec<(NewNotification, Vec<String>)> {
        // Payloads (failed steps with SLO impact/action and failing streaks; resolves of steps
        // that pass again) are built by the notify module; the runner only stores them.
        let night = opts
            .night
            .unwrap_or_else(|| opts.calendar.night_of(state.started_at));
        let finished = crate::notify::record::FinishedRun {
            run_id: state.run_id,
            night,
            scenario,
            stack,
            outcome: state.outcome,
            reason: state.reason.as_deref(),
            steps: state.journal.steps(),
        };
        let rows = crate::notify::record::notifications(self.store, &finished, opts.calendar).await;
        rows.into_iter()
            .map(|row| {
                let names = row.payload["steps"]
                    .as_array()
                    .map(|steps| {
                        steps
                            .iter()
                            .filter_map(|s| s["name"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let notification = NewNotification {
                    team: row.team,
                    kind: row.kind.to_owned(),
                    payload: row.payload,
                };
                (notification, names)
            })
            .collect()
    }
}

/// Passed experiment steps (When + Then) over all of them, ratio 0–1; `None` when there are none
/// (the run ended before its experiment: no rate, rather than a 100 % of nothing). Given and
/// recovery steps are preconditions and checks of the experiment itself, not findings.
pub fn pass_rate(steps: &[StepResult]) -> Option<f64> {
    let experiment: Vec<&StepResult> = steps
        .iter()
        .filter(|s| matches!(s.phase, Phase::When | Phase::Then))
        .collect();
    if experiment.is_empty() {
        return None;
    }
    let passed = experiment
        .iter()
        .filter(|s| s.verdict == Verdict::Passed)
        .count();
    Some(passed as f64 / experiment.len() as f64)
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}
