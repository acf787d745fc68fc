//! The read endpoints (viewer role): scenarios, plans, runs, steps, evidence; and `/metrics`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::document::{RunDocument, RunListDocument};
use crate::model::RunStatus;
use crate::plan::{self, night_window};
use crate::scenario::Scenario;
use crate::store::{RunFilter, RunRecord};

/// Default and largest page of `GET /api/v1/runs`.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

fn scenario_summary(s: &Scenario) -> Value {
    json!({
        "name": s.name,
        "description": s.description,
        "owner": s.owner,
        "tags": s.tags,
        "eligible_stacks": s.targets.eligible_stacks,
        "allow_production": s.targets.allow_production,
        "schedule": s.schedule,
    })
}

/// `GET /api/v1/scenarios`: `[{name, description, owner, tags, eligible_stacks,
/// allow_production, schedule}]` by name.
pub(super) async fn scenarios(State(state): State<ApiState>, _caller: Caller) -> Json<Value> {
    Json(Value::Array(
        state
            .inner
            .library
            .scenarios
            .values()
            .map(scenario_summary)
            .collect(),
    ))
}

/// `GET /api/v1/scenarios/{name}`: the compiled scenario (every step).
pub(super) async fn scenario(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Scenario>, ApiError> {
    state
        .inner
        .library
        .scenarios
        .get(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| super::unknown_scenario(&state.inner.library, &name))
}

/// `GET /api/v1/plans/{night}` with `night` = `YYYY-MM-DD` or `next` (the night in progress, else
/// the next one): `{night, window: {start, end}, source, plan: {slots, skipped, objective, …},
/// revisions?}`, instants RFC 3339 UTC. `source: "daemon"`: the daemon's latest stored plan of that
/// night, with `revisions` (every plan's `created_at` and `reason`); `source: "computed"`: the
/// planner on the library and the store's last 60 days of runs (`plan::HISTORY_DAYS`) (no stored plan).
pub(super) async fn plan(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(night): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let config = &state.inner.library.config;
    let night = if night == "next" {
        plan::window::open_or_next_night(Utc::now(), config.timezone, config.window)
    } else {
        NaiveDate::parse_from_str(&night, "%Y-%m-%d").map_err(|_| {
            ApiError::BadRequest(format!("night `{night}` is not YYYY-MM-DD or `next`"))
        })?
    };
    // The daemon's own plan of that night, when it made one (with every re-plan's reason).
    let stored = state.inner.store.plans(night).await?;
    if let Some(latest) = stored.last() {
        return Ok(Json(json!({
            "night": night,
            "window": latest.plan.get("window"),
            "source": "daemon",
            "plan": latest.plan,
            "revisions": stored
                .iter()
                .map(|p| json!({ "created_at": p.created_at, "reason": p.reason }))
                .collect::<Vec<_>>(),
        })));
    }
    let window = night_window(night, config.timezone, config.window);
    let history = plan::past_runs(&state.inner.store, window.start.min(Utc::now())).await?;
    let scenarios: Vec<Scenario> = state.inner.library.scenarios.values().cloned().collect();
    let input = plan::plan_input(night, config, &scenarios, &history);
    // The solver is CPU-bound (bounded effort, well under a second): keep it off the I/O threads.
    let planned = tokio::task::spawn_blocking(move || plan::plan(&input))
        .await
        .map_err(|e| ApiError::Internal(format!("planner: {e}")))?;
    Ok(Json(json!({
        "night": night,
        "window": {"start": window.start, "end": window.end},
        "source": "computed",
        "plan": planned,
    })))
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    scenario: Option<String>,
    stack: Option<String>,
    /// `running` or an outcome.
    status: Option<String>,
    night: Option<NaiveDate>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

/// `GET /api/v1/runs?scenario=&stack=&status=&night=&since=&until=&limit=`: a
/// [`RunListDocument`] of stored runs, newest first (default 100, at most 1000; page with
/// `until` = the oldest `startedAt` seen).
pub(super) async fn runs(
    State(state): State<ApiState>,
    _caller: Caller,
    Query(q): Query<RunsQuery>,
) -> Result<Json<RunListDocument>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let filter = RunFilter {
        scenario: q.scenario,
        stack: q.stack,
        outcome: status,
        night: q.night,
        since: q.since,
        until: q.until,
        limit: Some(q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)),
    };
    let runs = state.inner.store.runs(&filter).await?;
    Ok(Json(RunListDocument::of(&runs)))
}

/// The run with id (or unambiguous id prefix) `id`; 404 when none matches or `id` cannot be a
/// run id, 400 when the prefix matches several runs.
pub(super) async fn find_run(state: &ApiState, id: &str) -> Result<RunRecord, ApiError> {
    match state.inner.store.find_run(id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(ApiError::NotFound(format!("no run `{id}`"))),
        Err(crate::store::StoreError::Invalid { message, .. }) => Err(ApiError::NotFound(format!(
            "no run `{id}`: a run id {message}"
        ))),
        Err(e @ crate::store::StoreError::AmbiguousRunId { .. }) => {
            Err(ApiError::BadRequest(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/runs/{id}`: the run's [`RunDocument`] (schema `docs/schemas/run.schema.json`,
/// the same document as `f3-chaos results ID --output json`).
pub(super) async fn run(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunDocument>, ApiError> {
    let run = find_run(&state, &id).await?;
    Ok(Json(
        RunDocument::of_stored(&state.inner.store, &run).await?,
    ))
}

/// `GET /api/v1/runs/{id}/steps`: the run's steps in order, without evidence
/// (`has_evidence` says whether `/evidence` has some).
pub(super) async fn steps(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let run = find_run(&state, &id).await?;
    let steps = state.inner.store.steps(run.id).await?;
    Ok(Json(
        steps
            .into_iter()
            .map(|mut s| {
                let has_evidence = s.evidence.take().is_some();
                let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut v {
                    map.remove("evidence");
                    map.insert("has_evidence".into(), Value::Bool(has_evidence));
                }
                v
            })
            .collect(),
    ))
}

/// `GET /api/v1/runs/{id}/evidence`: `[{index, phase, name, evidence}]` for the steps that have
/// evidence (query, window, series, worst value).
pub(super) async fn evidence(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let run = find_run(&state, &id).await?;
    let steps = state.inner.store.steps(run.id).await?;
    Ok(Json(
        steps
            .into_iter()
            .filter_map(|s| {
                let evidence = s.evidence?;
                Some(json!({"index": s.index, "phase": s.phase, "name": s.name, "evidence": evidence}))
            })
            .collect(),
    ))
}

/// `GET /metrics` (no token): the classic Prometheus text format or OpenMetrics, chosen from the
/// `Accept` header ([`crate::metrics::ExpositionFormat::negotiate`]). The store-derived gauges
/// (fault ledger, outbox, last night) are refreshed first, so they count what every process
/// sharing the store did.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::ExpositionFormat::negotiate(accept);
    let stacks = state.inner.library.config.stacks.keys().map(String::as_str);
    state
        .inner
        .metrics
        .refresh_from_store(&state.inner.store, stacks)
        .await;
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.inner.metrics.encode(format),
    )
}
