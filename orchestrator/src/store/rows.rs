//! Raw rows as both databases return them (`sqlx::FromRow`, identical column types on both
//! backends) and their conversion into the public records.

use chrono::NaiveDate;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::model::{EventRecord, Lease, LedgerEntry, OutboxRecord, RunRecord, StepRecord};
use super::{StoreError, from_ms};
use crate::model::NotificationKind;

/// Columns of `runs`, in the order [`RUN_COLUMNS`] selects them.
pub(crate) const RUN_COLUMNS: &str = "id, scenario, stack, triggered_via, started_by, status, \
     started_at, ended_at, heartbeat_at, pid, host, scenario_digest, night, summary";

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: String,
    scenario: String,
    stack: String,
    triggered_via: String,
    started_by: String,
    status: String,
    started_at: i64,
    ended_at: Option<i64>,
    heartbeat_at: i64,
    pid: i64,
    host: String,
    scenario_digest: Option<String>,
    night: Option<String>,
    summary: Option<Json<Value>>,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StoreError;

    fn try_from(row: RunRow) -> Result<Self, StoreError> {
        const T: &str = "runs";
        Ok(RunRecord {
            id: parse_uuid(T, &row.id)?,
            scenario: row.scenario,
            stack: row.stack,
            trigger: row.triggered_via,
            started_by: row.started_by,
            status: row.status.parse().map_err(|message| corrupt(T, message))?,
            started_at: from_ms(T, row.started_at)?,
            ended_at: row.ended_at.map(|ms| from_ms(T, ms)).transpose()?,
            pid: u32::try_from(row.pid).map_err(|_| corrupt(T, format!("pid {}", row.pid)))?,
            host: row.host,
            heartbeat_at: from_ms(T, row.heartbeat_at)?,
            scenario_digest: row.scenario_digest,
            night: row
                .night
                .map(|night| {
                    NaiveDate::parse_from_str(&night, "%Y-%m-%d")
                        .map_err(|_| corrupt(T, format!("night {night:?}")))
                })
                .transpose()?,
            summary: row.summary.map(|Json(value)| value),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    run_id: String,
    seq: i64,
    at: i64,
    kind: String,
    payload: Json<Value>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        const T: &str = "events";
        Ok(EventRecord {
            run_id: parse_uuid(T, &row.run_id)?,
            seq: row.seq,
            at: from_ms(T, row.at)?,
            kind: row.kind,
            payload: row.payload.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StepRow {
    step_index: i64,
    phase: String,
    name: String,
    owner: Option<String>,
    verdict: Option<String>,
    started_at: i64,
    ended_at: Option<i64>,
    observed: Option<f64>,
    threshold: Option<f64>,
    evidence: Option<Json<Value>>,
    message: Option<String>,
}

impl TryFrom<StepRow> for StepRecord {
    type Error = StoreError;

    fn try_from(row: StepRow) -> Result<Self, StoreError> {
        const T: &str = "steps";
        Ok(StepRecord {
            index: row.step_index,
            phase: row.phase.parse().map_err(|message| corrupt(T, message))?,
            name: row.name,
            owner: row.owner,
            verdict: row
                .verdict
                .map(|v| v.parse().map_err(|message| corrupt(T, message)))
                .transpose()?,
            started_at: from_ms(T, row.started_at)?,
            ended_at: row.ended_at.map(|ms| from_ms(T, ms)).transpose()?,
            observed: row.observed,
            threshold: row.threshold,
            evidence: row.evidence.map(|Json(value)| value),
            message: row.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    stack: String,
    run_id: String,
    scenario: String,
    holder: String,
    acquired_at: i64,
    renewed_at: i64,
    expires_at: i64,
}

impl TryFrom<LeaseRow> for Lease {
    type Error = StoreError;

    fn try_from(row: LeaseRow) -> Result<Self, StoreError> {
        const T: &str = "leases";
        Ok(Lease {
            stack: row.stack,
            run_id: parse_uuid(T, &row.run_id)?,
            scenario: row.scenario,
            holder: row.holder,
            acquired_at: from_ms(T, row.acquired_at)?,
            renewed_at: from_ms(T, row.renewed_at)?,
            expires_at: from_ms(T, row.expires_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    id: String,
    run_id: String,
    stack: String,
    driver: String,
    step_name: String,
    spec: Json<Value>,
    handle: Option<Json<Value>>,
    state: String,
    created_at: i64,
    expires_at: i64,
    updated_at: i64,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = StoreError;

    fn try_from(row: LedgerRow) -> Result<Self, StoreError> {
        const T: &str = "fault_ledger";
        Ok(LedgerEntry {
            id: parse_uuid(T, &row.id)?,
            run_id: parse_uuid(T, &row.run_id)?,
            stack: row.stack,
            driver: row.driver,
            step_name: row.step_name,
            spec: row.spec.0,
            handle: row.handle.map(|Json(value)| value),
            state: row.state.parse().map_err(|message| corrupt(T, message))?,
            created_at: from_ms(T, row.created_at)?,
            expires_at: from_ms(T, row.expires_at)?,
            updated_at: from_ms(T, row.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    run_id: String,
    team: String,
    kind: String,
    payload: Json<Value>,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<OutboxRow> for OutboxRecord {
    type Error = StoreError;

    fn try_from(row: OutboxRow) -> Result<Self, StoreError> {
        const T: &str = "outbox";
        Ok(OutboxRecord {
            id: row.id,
            run_id: parse_uuid(T, &row.run_id)?,
            team: row.team,
            kind: NotificationKind::from_stored(&row.kind)
                .map_err(|message| corrupt(T, message))?,
            payload: row.payload.0,
            status: row.status.parse().map_err(|message| corrupt(T, message))?,
            attempts: row.attempts,
            next_attempt_at: from_ms(T, row.next_attempt_at)?,
            last_error: row.last_error,
            created_at: from_ms(T, row.created_at)?,
            delivered_at: row.delivered_at.map(|ms| from_ms(T, ms)).transpose()?,
        })
    }
}

/// Converts every row, failing on the first corrupt one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

fn parse_uuid(table: &'static str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| corrupt(table, format!("id {text:?} is not a UUID")))
}

fn corrupt(table: &'static str, message: String) -> StoreError {
    StoreError::Corrupt { table, message }
}
