//! The JSON documents f3-chaos publishes for tools, one shape per thing whoever asks: a run
//! ([`RunDocument`]: `run --output json`, `results ID --output json`, `GET /api/v1/runs/{id}`), a
//! list of runs ([`RunListDocument`]: `results --output json`, `GET /api/v1/runs`), a
//! gate decision ([`GateDocument`]: `gate --output json`) and a plan
//! (`plan --output json`, [`crate::plan::PlanDocument`]).
//!
//! Each carries `schemaVersion` ([`SCHEMA_VERSION`]) and is published as a JSON Schema
//! (draft 2020-12, derived with schemars) under `docs/schemas/`; `f3-chaos schema --kind run`
//! prints the current one. Field names are camelCase, instants RFC 3339 in UTC, durations and
//! latencies carry their unit in the name (`durationSeconds`, `abortLatencyMs`), ratios are 0–1.
//! A change that removes or retypes a field raises the version; adding a field does not.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{NotificationKind, Phase, RunStatus, Verdict};
use crate::store::{LedgerEntry, LedgerState, OutboxRecord, OutboxStatus, RunRecord, StepRecord};

/// The version of every document of this module. Readers should refuse a version they do not
/// know.
pub const SCHEMA_VERSION: u32 = 1;

/// One run as tools see it: what ran where, how it ended, every step, every notification and
/// every fault it injected. Built from the store's records only ([`RunDocument::from_records`]),
/// so the CLI right after a run, `results` a week later and the API agree to the byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run itself.
    pub run: RunSummary,
    /// Its steps in timeline order (Given, When, Then, abort/revert, Recovery).
    pub steps: Vec<StepDocument>,
    /// The notifications its outcome queued, oldest first.
    pub notifications: Vec<NotificationDocument>,
    /// The faults it injected (its fault-ledger entries), oldest first.
    pub faults: Vec<FaultDocument>,
}

/// What a run was and how it ended (the `run` of a [`RunDocument`], also each line's run in a
/// gate decision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id (UUID v7: id order is start order).
    pub id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// The chaos night of a planned run (the date its 00:00–07:00 window starts, in the
    /// configured zone); null for ad-hoc runs.
    pub night: Option<NaiveDate>,
    /// How it was started: `cli`, `trigger`, `daemon` or `api`.
    pub trigger: String,
    /// Who started it (user name, API token name or daemon id).
    pub started_by: String,
    /// `running`, or the outcome it finished with.
    pub status: RunStatus,
    /// Why, where the outcome needs explaining (abort condition, error, void, interruption).
    pub reason: Option<String>,
    /// Start instant.
    pub started_at: DateTime<Utc>,
    /// End instant; null while running.
    pub ended_at: Option<DateTime<Utc>>,
    /// End − start, seconds (millisecond precision); null while running.
    pub duration_seconds: Option<f64>,
    /// Passed experiment steps (When + Then) / all experiment steps, ratio 0–1; null when the
    /// run ended before its experiment.
    pub pass_rate: Option<f64>,
    /// Abort condition breached → every fault reverted, milliseconds (aborted runs only).
    pub abort_latency_ms: Option<i64>,
    /// Teams whose failed steps were queued for notification.
    pub notified_teams: Vec<String>,
    /// Digest of the compiled scenario, to tell edited scenarios apart in history.
    pub scenario_digest: Option<String>,
}

/// A list of runs, newest first (`results --output json` without a run id, `GET /api/v1/runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunListDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The runs that matched, newest first.
    pub runs: Vec<RunSummary>,
}

impl RunListDocument {
    /// The list of the stored `runs`, in their order.
    pub fn of(runs: &[RunRecord]) -> RunListDocument {
        RunListDocument {
            schema_version: SCHEMA_VERSION,
            runs: runs.iter().map(RunSummary::of).collect(),
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepDocument {
    /// Position in the run, from 0.
    pub index: i64,
    /// Where it sits in the Given/When/Then timeline.
    pub phase: Phase,
    /// Display name as written in the scenario.
    pub name: String,
    /// Owner team (short name) of a Then step.
    pub owner: Option<String>,
    /// The verdict; null while the step runs.
    pub verdict: Option<Verdict>,
    /// Start instant.
    pub started_at: DateTime<Utc>,
    /// End instant; null while the step runs.
    pub ended_at: Option<DateTime<Utc>>,
    /// The worst observed value of a check, in `unit`.
    pub observed: Option<f64>,
    /// The comparison of a check as written (`<`, `>=`, …): passing is `observed op threshold`.
    pub op: Option<String>,
    /// The threshold of a check, in `unit`.
    pub threshold: Option<f64>,
    /// Unit of `observed` and `threshold` (`s`, `ms`, `ratio` for 0–1, `tps`, …), if declared.
    pub unit: Option<String>,
    /// Why inconclusive or error, what was injected, what was reverted.
    pub message: Option<String>,
    /// The check's evidence (query, window, series, worst value; see docs/assertions.md), for
    /// steps that queried Prometheus.
    pub evidence: Option<Value>,
}

/// One notification a run's outcome queued for a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDocument {
    /// Outbox id (also the webhook's `deliveryId` and `X-F3-Chaos-Delivery` header).
    pub id: i64,
    /// Team short name.
    pub team: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// Where delivery stands.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One fault a run injected (its fault-ledger entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultDocument {
    /// Ledger entry id.
    pub id: Uuid,
    /// The When step that injected it.
    pub step: String,
    /// Fault driver (`local`, `chaos-mesh`).
    pub driver: String,
    /// Lifecycle state: `pending`, `injected`, `reverted` or `revert-failed`.
    pub state: LedgerState,
    /// The driver's fault spec.
    pub spec: Value,
    /// When the entry was written (before the injection).
    pub created_at: DateTime<Utc>,
    /// When its TTL ends on the target, whatever f3-chaos does (the dead-man switch).
    pub expires_at: DateTime<Utc>,
    /// Its last state change.
    pub updated_at: DateTime<Utc>,
}

/// The gate's judgement of one scenario × stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GateStatus {
    /// Latest run passed and is fresh.
    Pass,
    /// Latest run has another outcome.
    Fail,
    /// No finished run.
    Missing,
    /// Latest run is older than `--max-age`.
    Stale,
}

impl GateStatus {
    /// The upper-case label printed in the list.
    pub fn label(self) -> &'static str {
        match self {
            GateStatus::Pass => "PASS",
            GateStatus::Fail => "FAIL",
            GateStatus::Missing => "MISSING",
            GateStatus::Stale => "STALE",
        }
    }
}

/// The gate's decision as tools read it (`gate --output json`; schema
/// `docs/schemas/gate.schema.json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Whether every line passed (the gate's exit code is 0).
    pub passed: bool,
    /// `--max-age` as given, e.g. `24h`.
    pub max_age: String,
    /// `--max-age` in seconds.
    pub max_age_seconds: u64,
    /// When the gate judged.
    pub checked_at: DateTime<Utc>,
    /// One line per scenario × stack asked for, in the order asked.
    pub lines: Vec<GateDocumentLine>,
}

/// One scenario × stack of a [`GateDocument`].
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateDocumentLine {
    /// Scenario name.
    pub scenario: String,
    /// Stack asked for; null = any stack.
    pub stack: Option<String>,
    /// The judgement.
    pub status: GateStatus,
    /// Why, in one sentence.
    pub reason: String,
    /// The latest finished run judged, if any (the `run` of its run document).
    pub run: Option<RunSummary>,
}

impl RunSummary {
    /// The summary of the stored `run` (its runner's summary document gives reason, pass rate,
    /// abort latency and notified teams).
    pub fn of(run: &RunRecord) -> RunSummary {
        let summary = run.summary.as_ref();
        let field = |name: &str| summary.and_then(|s| s.get(name));
        RunSummary {
            id: run.id,
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            night: run.night,
            trigger: run.trigger.clone(),
            started_by: run.started_by.clone(),
            status: run.status,
            reason: field("reason").and_then(Value::as_str).map(str::to_owned),
            started_at: run.started_at,
            ended_at: run.ended_at,
            duration_seconds: run.duration().map(|d| d.as_millis() as f64 / 1000.0),
            pass_rate: field("pass_rate").and_then(Value::as_f64),
            abort_latency_ms: field("abort_latency_ms").and_then(Value::as_i64),
            notified_teams: field("notified")
                .and_then(Value::as_array)
                .map(|teams| {
                    teams
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            scenario_digest: run.scenario_digest.clone(),
        }
    }
}

impl StepDocument {
    /// The document of a stored step (`op` and `unit` come from its evidence).
    pub fn of(step: &StepRecord) -> StepDocument {
        let evidence_text = |name: &str| step.evidence_text(name).map(str::to_owned);
        StepDocument {
            index: step.index,
            phase: step.phase,
            name: step.name.clone(),
            owner: step.owner.clone(),
            verdict: step.verdict,
            started_at: step.started_at,
            ended_at: step.ended_at,
            observed: step.observed,
            op: evidence_text("op"),
            threshold: step.threshold,
            unit: evidence_text("unit"),
            message: step.message.clone(),
            evidence: step.evidence.clone(),
        }
    }
}

impl RunDocument {
    /// The document of a stored run from its records (as [`crate::store::Store::steps`],
    /// `outbox_for_run` and `ledger_for_run` return them).
    pub fn from_records(
        run: &RunRecord,
        steps: &[StepRecord],
        outbox: &[OutboxRecord],
        ledger: &[LedgerEntry],
    ) -> RunDocument {
        RunDocument {
            schema_version: SCHEMA_VERSION,
            run: RunSummary::of(run),
            steps: steps.iter().map(StepDocument::of).collect(),
            notifications: outbox
                .iter()
                .map(|n| NotificationDocument {
                    id: n.id,
                    team: n.team.clone(),
                    kind: n.kind,
                    status: n.status,
                    attempts: n.attempts,
                    last_error: n.last_error.clone(),
                    created_at: n.created_at,
                    delivered_at: n.delivered_at,
                })
                .collect(),
            faults: ledger
                .iter()
                .map(|f| FaultDocument {
                    id: f.id,
                    step: f.step_name.clone(),
                    driver: f.driver.clone(),
                    state: f.state,
                    spec: f.spec.clone(),
                    created_at: f.created_at,
                    expires_at: f.expires_at,
                    updated_at: f.updated_at,
                })
                .collect(),
        }
    }

    /// The document of the stored `run`, its steps, notifications and faults read from `store`.
    ///
    /// # Errors
    /// The store's error.
    pub async fn of_stored(
        store: &crate::store::Store,
        run: &RunRecord,
    ) -> Result<RunDocument, crate::store::StoreError> {
        let steps = store.steps(run.id).await?;
        let outbox = store.outbox_for_run(run.id).await?;
        let ledger = store.ledger_for_run(run.id).await?;
        Ok(RunDocument::from_records(run, &steps, &outbox, &ledger))
    }

    /// Reads the run `id` from `store` ([`RunDocument::of_stored`]).
    ///
    /// # Errors
    /// The store's error; `Ok(None)` when no run has that id.
    pub async fn load(
        store: &crate::store::Store,
        id: Uuid,
    ) -> Result<Option<RunDocument>, crate::store::StoreError> {
        match store.run(id).await? {
            Some(run) => Ok(Some(RunDocument::of_stored(store, &run).await?)),
            None => Ok(None),
        }
    }
}

/// The JSON Schema (draft 2020-12) of [`RunDocument`].
pub fn run_schema() -> Value {
    schemars::schema_for!(RunDocument).to_value()
}

/// The JSON Schema (draft 2020-12) of [`RunListDocument`].
pub fn run_list_schema() -> Value {
    schemars::schema_for!(RunListDocument).to_value()
}

/// The JSON Schema (draft 2020-12) of [`GateDocument`].
pub fn gate_schema() -> serde_json::Value {
    schemars::schema_for!(GateDocument).to_value()
}

#[cfg(test)]
mod float_tests {
    /// A value read back from a published document is the value written: `run --server`
    /// rebuilds its document from the event stream's JSON, and it must equal the stored run's
    /// to the last bit (serde_json's `float_roundtrip`; without it, parsing
    /// `0.11562499999999995` gives the neighbouring double `0.11562499999999996`).
    #[test]
    fn observed_values_survive_json_exactly() {
        for text in [
            "0.11562499999999995",
            "0.11562499999999996",
            "2.3842196531791906",
        ] {
            let exact: f64 = text.parse().expect("a float");
            let document = format!(
                r#"{{"index": 1, "phase": "then", "name": "p99", "owner": null, "verdict": "passed",
                   "startedAt": "2026-12-08T01:34:00Z", "endedAt": null, "observed": {text},
                   "op": "<", "threshold": 0.25, "unit": "s", "message": null, "evidence": null}}"#
            );
            let step: super::StepDocument = serde_json::from_str(&document).expect("a step");
            assert_eq!(
                step.observed.map(f64::to_bits),
                Some(exact.to_bits()),
                "{text}"
            );
            let again = serde_json::to_string(&step).expect("serialises");
            assert!(again.contains(&format!("\"observed\":{text}")), "{again}");
        }
    }
}
