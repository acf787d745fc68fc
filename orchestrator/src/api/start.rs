//! `POST /api/v1/runs` and `POST /api/v1/triggers`: start a run in this process (operator role;
//! admin for production stacks, and only for scenarios with `allowProduction: true`).
//!
//! The run belongs to the API's task set: the runner, the driver and the SLO client of the stack
//! are built the same way as for `f3-chaos run` ([`crate::run::launch`]); the run records
//! `trigger: "api"` and `started_by` = the token's name. Notifications are left in the outbox for
//! the daemon's worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::config::ApiRole;
use crate::model::Environment;
use crate::model::RunOutcome;
use crate::run::launch;
use crate::run::{FnReporter, Reporters, RunError, RunEvent, RunOptions};

/// How long `POST /api/v1/triggers` waits for the faults to be injected (as `f3-chaos trigger`).
const TRIGGER_WAIT: Duration = Duration::from_secs(300);

/// Body of `POST /api/v1/runs` and `POST /api/v1/triggers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Scenario name.
    pub scenario: String,
    /// Stack name (alias `target_stack`); default: the scenario's only eligible stack.
    #[serde(
        default,
        alias = "target_stack",
        skip_serializing_if = "Option::is_none"
    )]
    pub stack: Option<String>,
    /// Wait up to this many seconds for a busy stack instead of answering 409 at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_stack_seconds: Option<u64>,
}

/// Answer of a start: 201 (run) or 202 (trigger).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartedRun {
    /// Run id (UUID v7).
    pub run_id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Always `api`.
    pub trigger: String,
    /// The token's name.
    pub started_by: String,
    /// `running` (holds its lease; faults may not be injected yet), `injected` (a trigger whose
    /// faults are in), or `finished`.
    pub state: String,
    /// The outcome once `finished`.
    pub outcome: Option<RunOutcome>,
    /// Path of the run: `/api/v1/runs/{id}`.
    pub run_url: String,
    /// Path of its SSE stream: `/api/v1/runs/{id}/events`.
    pub events_url: String,
}

/// Checks the caller may start `scenario` on the stack asked for and resolves the stack.
fn authorize<'a>(
    state: &'a ApiState,
    caller: &Caller,
    req: &StartRequest,
) -> Result<(&'a crate::scenario::Scenario, &'a crate::config::Stack), ApiError> {
    caller.require(ApiRole::Operator, "starting a run")?;
    let library = &state.inner.library;
    let scenario = library
        .scenarios
        .get(&req.scenario)
        .ok_or_else(|| super::unknown_scenario(library, &req.scenario))?;
    let production_check = |stack: &crate::config::Stack| -> Result<(), ApiError> {
        if stack.environment != Environment::Production {
            return Ok(());
        }
        caller.require(
            ApiRole::Admin,
            &format!("a run on production stack `{}`", stack.name),
        )?;
        if !scenario.targets.allow_production {
            return Err(ApiError::Forbidden {
                needed: None,
                message: format!(
                    "scenario `{}` does not opt in to production (`spec.targets.allowProduction: true`); no role may run it on production stack `{}`",
                    scenario.name, stack.name
                ),
            });
        }
        Ok(())
    };
    // Production rules first, so a refused caller learns why before eligibility details.
    if let Some(stack) = req
        .stack
        .as_deref()
        .and_then(|n| library.config.stacks.get(n))
    {
        production_check(stack)?;
    }
    let stack = launch::choose_stack(scenario, &library.config, req.stack.as_deref())
        .map_err(ApiError::BadRequest)?;
    production_check(stack)?;
    Ok((scenario, stack))
}

/// Starts the run; returns once it holds its stack lease (or could not start).
async fn launch(
    state: &ApiState,
    caller: &Caller,
    req: &StartRequest,
) -> Result<StartedRun, ApiError> {
    if state.inner.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    let (scenario, stack) = authorize(state, caller, req)?;
    let mut opts = RunOptions::new(&caller.name, "api");
    opts.calendar = crate::plan::NightCalendar::of(&state.inner.library.config);
    opts.wait_for_stack = req.wait_for_stack_seconds.map(Duration::from_secs);
    let run_id = opts.run_id;
    let scenario = scenario.clone();
    let stack = stack.clone();
    let stack_name = stack.name.clone();

    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ApiError>>();
    let ready = Arc::new(Mutex::new(Some(ready_tx)));
    let signal = move |r: Result<(), ApiError>| {
        if let Some(tx) = ready.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send(r);
        }
    };
    state.inner.live.register(run_id);
    let task_state = state.clone();
    let cancel = state.inner.shutdown.child_token();
    state.inner.tasks.spawn(async move {
        let inner = &task_state.inner;
        let started = signal.clone();
        // The answer to the POST waits for the lease: it is sent at `run-started`.
        let reporters = Reporters::none()
            .with_shared(task_state.live_reporter())
            .with(FnReporter(move |_run_id, event: &RunEvent| {
                if let RunEvent::RunStarted { .. } = event {
                    started(Ok(()));
                }
            }));
        let result = launch::launch(launch::Launch {
            store: &inner.store,
            stack: &stack,
            scenario: &scenario,
            opts,
            reporters,
            metrics: Some(inner.metrics.clone()),
            cancel,
        })
        .await;
        match result {
            Ok(report) => {
                tracing::info!(run_id = %run_id, outcome = report.outcome.as_str(), "API run finished.");
            }
            Err(e) if e.is_stack_busy() => signal(Err(ApiError::Conflict(e.to_string()))),
            Err(e @ RunError::ProductionNotAllowed { .. }) => signal(Err(ApiError::Forbidden {
                needed: None,
                message: e.to_string(),
            })),
            Err(e @ RunError::DriverCannot { .. }) => {
                signal(Err(ApiError::BadRequest(e.to_string())))
            }
            Err(e) => signal(Err(ApiError::Internal(format!("{:#}", anyhow::Error::from(e))))),
        }
        inner.live.finish(run_id);
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ApiError::Internal("the run ended before it started".into())),
    }
    tracing::info!(run_id = %run_id, scenario = %req.scenario, stack = %stack_name, started_by = %caller.name, "Run started through the API.");
    Ok(StartedRun {
        run_id,
        scenario: req.scenario.clone(),
        stack: stack_name,
        trigger: "api".into(),
        started_by: caller.name.clone(),
        state: "running".into(),
        outcome: None,
        run_url: format!("/api/v1/runs/{run_id}"),
        events_url: format!("/api/v1/runs/{run_id}/events"),
    })
}

/// `POST /api/v1/runs` {scenario, stack?, wait_for_stack_seconds?} (operator; admin for
/// production): 201 [`StartedRun`] once the run holds its stack lease. Follow it at
/// `events_url`. 409 when the stack is busy (the holder is named), 404 unknown scenario, 400
/// unknown or ineligible stack.
pub(super) async fn post_run(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<StartRequest>,
) -> Result<(StatusCode, Json<StartedRun>), ApiError> {
    let started = launch(&state, &caller, &req).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// `POST /api/v1/triggers` {scenario, target_stack | stack, …}: fire and forget, as
/// `f3-chaos trigger`. 202 [`StartedRun`] once the faults are injected (`state: "injected"`), the
/// run ended first (`state: "finished"` with its outcome), or 5 minutes passed in Given
/// (`state: "running"`); the run continues on the server either way.
pub(super) async fn post_trigger(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<StartRequest>,
) -> Result<(StatusCode, Json<StartedRun>), ApiError> {
    let mut started = launch(&state, &caller, &req).await?;
    if let Some((history, rx)) = state.inner.live.subscribe(started.run_id) {
        let mut events = super::events::live_stream(history, rx);
        let _ = tokio::time::timeout(TRIGGER_WAIT, async {
            while let Some(event) = events.next().await {
                match event {
                    RunEvent::FaultInjected { .. } => {
                        started.state = "injected".into();
                        return;
                    }
                    RunEvent::RunFinished { outcome, .. } => {
                        started.state = "finished".into();
                        started.outcome = Some(outcome);
                        return;
                    }
                    _ => {}
                }
            }
        })
        .await;
    } else if let Some(run) = state.inner.store.run(started.run_id).await? {
        // Already over before we looked.
        if !run.is_running() {
            started.state = "finished".into();
            started.outcome = run.outcome();
        }
    }
    Ok((StatusCode::ACCEPTED, Json(started)))
}
