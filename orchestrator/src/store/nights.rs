//! The daemon's nights as a persisted state machine (`nights` table): which state each chaos
//! night is in, so that a restarted daemon or a new leader resumes it where it was — never runs a
//! closed night again, never skips an open one — and the morning digest is queued exactly once.
//!
//! ```text
//! waiting ──▶ planning ──▶ running ⇄ drained ──▶ closed
//! ```
//! - `waiting`: the night is due (its trigger fired) but its window has not opened yet;
//! - `planning`: the leader is building the night's plan;
//! - `running`: slots are being executed;
//! - `drained`: nothing left in the plan fits; the leader sleeps until the window ends, or until a
//!   reservation or a run changes the picture (then `running` again);
//! - `closed`: the window ended and every run of the night has ended. A closed night is final.
//!
//! The digest is claimed by `UPDATE … SET digest_queued_at … WHERE digest_queued_at IS NULL` in
//! the same transaction that inserts its outbox rows, so of two leaders (or a restarted one) only
//! one queues it, and a crash between the two writes queues nothing and leaves it to the next.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::OutboxStatus;
use super::{Store, StoreError, from_ms, to_ms, with_pool};
use crate::model::NotificationKind;

/// Where a chaos night is (see the module docs for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NightState {
    /// Due, window not open yet.
    Waiting,
    /// The leader is planning it.
    Planning,
    /// Slots are being executed.
    Running,
    /// Nothing left that fits; sleeping until the window ends.
    Drained,
    /// The window ended and every run of the night ended (final).
    Closed,
}

impl NightState {
    /// The stored (and journalled) name: `waiting`, `planning`, `running`, `drained`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            NightState::Waiting => "waiting",
            NightState::Planning => "planning",
            NightState::Running => "running",
            NightState::Drained => "drained",
            NightState::Closed => "closed",
        }
    }
}

impl fmt::Display for NightState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NightState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "waiting" => NightState::Waiting,
            "planning" => NightState::Planning,
            "running" => NightState::Running,
            "drained" => NightState::Drained,
            "closed" => NightState::Closed,
            other => return Err(format!("`{other}` is not a night state")),
        })
    }
}

/// One stored night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NightRecord {
    /// The chaos night (local date on which its window starts).
    pub night: NaiveDate,
    /// Its current state.
    pub state: NightState,
    /// Window start, UTC.
    pub window_start: DateTime<Utc>,
    /// Window end, UTC.
    pub window_end: DateTime<Utc>,
    /// Last transition, UTC.
    pub updated_at: DateTime<Utc>,
    /// First plan, UTC.
    pub planned_at: Option<DateTime<Utc>>,
    /// First time it entered `running`, UTC.
    pub started_at: Option<DateTime<Utc>>,
    /// Last time it entered `drained`, UTC.
    pub drained_at: Option<DateTime<Utc>>,
    /// When it was closed, UTC.
    pub closed_at: Option<DateTime<Utc>>,
    /// When its morning digest was queued, UTC.
    pub digest_queued_at: Option<DateTime<Utc>>,
    /// The daemon that made the last transition (`host pid N`).
    pub leader: Option<String>,
}

#[derive(sqlx::FromRow)]
struct NightRow {
    night: String,
    state: String,
    window_start: i64,
    window_end: i64,
    updated_at: i64,
    planned_at: Option<i64>,
    started_at: Option<i64>,
    drained_at: Option<i64>,
    closed_at: Option<i64>,
    digest_queued_at: Option<i64>,
    leader: Option<String>,
}

const NIGHT_COLUMNS: &str = "night, state, window_start, window_end, updated_at, planned_at, \
     started_at, drained_at, closed_at, digest_queued_at, leader";

impl TryFrom<NightRow> for NightRecord {
    type Error = StoreError;

    fn try_from(row: NightRow) -> Result<Self, StoreError> {
        const T: &str = "nights";
        let corrupt = |message: String| StoreError::Corrupt { table: T, message };
        let opt = |ms: Option<i64>| ms.map(|ms| from_ms(T, ms)).transpose();
        Ok(NightRecord {
            night: row
                .night
                .parse()
                .map_err(|_| corrupt(format!("night `{}` is not a date", row.night)))?,
            state: row.state.parse().map_err(corrupt)?,
            window_start: from_ms(T, row.window_start)?,
            window_end: from_ms(T, row.window_end)?,
            updated_at: from_ms(T, row.updated_at)?,
            planned_at: opt(row.planned_at)?,
            started_at: opt(row.started_at)?,
            drained_at: opt(row.drained_at)?,
            closed_at: opt(row.closed_at)?,
            digest_queued_at: opt(row.digest_queued_at)?,
            leader: row.leader,
        })
    }
}

/// One digest message to queue with [`Store::queue_night_digest`].
#[derive(Debug, Clone)]
pub struct NightDigest {
    /// The run the outbox row hangs off (the outbox is keyed by run).
    pub anchor_run: Uuid,
    /// Team slug.
    pub team: String,
    /// Outbox kind ([`NotificationKind::Digest`]).
    pub kind: NotificationKind,
    /// The message payload.
    pub payload: Value,
}

impl Store {
    /// The stored night, if the daemon ever opened it.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn night(&self, night: NaiveDate) -> Result<Option<NightRecord>, StoreError> {
        let sql = format!("SELECT {NIGHT_COLUMNS} FROM nights WHERE night = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, NightRow>(&sql)
            .bind(night.to_string())
            .fetch_optional(pool)
            .await
            .ctx("read night"))?;
        row.map(NightRecord::try_from).transpose()
    }

    /// The night whose window ends last among those the daemon opened (the one the operator
    /// metrics `f3_chaos_last_night_*` describe), if any.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn latest_night(&self) -> Result<Option<NightRecord>, StoreError> {
        let sql = format!("SELECT {NIGHT_COLUMNS} FROM nights ORDER BY window_end DESC LIMIT 1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, NightRow>(&sql)
            .fetch_optional(pool)
            .await
            .ctx("read the latest night"))?;
        row.map(NightRecord::try_from).transpose()
    }

    /// Moves `night` (window `start`–`end`, UTC) to `state` at `at`, creating its row if needed.
    /// A `closed` night stays closed (the call then changes nothing). Returns the night as stored
    /// after the call.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn set_night_state(
        &self,
        night: NaiveDate,
        window: (DateTime<Utc>, DateTime<Utc>),
        state: NightState,
        leader: &str,
        at: DateTime<Utc>,
    ) -> Result<NightRecord, StoreError> {
        let at_ms = to_ms(at);
        // The first instant a state was reached is kept (planned, started); drained and closed
        // record the latest.
        let sql = "INSERT INTO nights (night, state, window_start, window_end, updated_at, \
             planned_at, started_at, drained_at, closed_at, leader) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (night) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at, leader = excluded.leader, \
             planned_at = COALESCE(nights.planned_at, excluded.planned_at), \
             started_at = COALESCE(nights.started_at, excluded.started_at), \
             drained_at = COALESCE(excluded.drained_at, nights.drained_at), \
             closed_at = COALESCE(excluded.closed_at, nights.closed_at) \
             WHERE nights.state <> 'closed'";
        let when = |s: NightState| (state == s).then_some(at_ms);
        with_pool!(self, pool => sqlx::query(sql)
            .bind(night.to_string())
            .bind(state.as_str())
            .bind(to_ms(window.0))
            .bind(to_ms(window.1))
            .bind(at_ms)
            .bind(when(NightState::Planning))
            .bind(when(NightState::Running))
            .bind(when(NightState::Drained))
            .bind(when(NightState::Closed))
            .bind(leader)
            .execute(pool)
            .await
            .map(|_| ())
            .ctx("record night state"))?;
        self.night(night)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "night",
                id: night.to_string(),
            })
    }

    /// Nights not closed whose window ended at or before `now` (a daemon died during them, or
    /// none led when they ended), oldest first.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn nights_to_close(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<NightRecord>, StoreError> {
        let sql = format!(
            "SELECT {NIGHT_COLUMNS} FROM nights WHERE state <> 'closed' AND window_end <= $1 \
             ORDER BY night"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, NightRow>(&sql)
            .bind(to_ms(now))
            .fetch_all(pool)
            .await
            .ctx("list nights to close"))?;
        super::rows::convert_all(rows)
    }

    /// Closed nights whose digest is not queued yet and whose window ended after `since`,
    /// oldest first (the digest of a night older than that is not sent any more).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn nights_awaiting_digest(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<NightRecord>, StoreError> {
        let sql = format!(
            "SELECT {NIGHT_COLUMNS} FROM nights WHERE digest_queued_at IS NULL \
             AND state = 'closed' AND window_end > $1 ORDER BY night"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, NightRow>(&sql)
            .bind(to_ms(since))
            .fetch_all(pool)
            .await
            .ctx("list nights awaiting their digest"))?;
        super::rows::convert_all(rows)
    }

    /// Claims the morning digest of `night` and queues `messages` in one transaction. Returns the
    /// outbox ids, or `None` when the digest was already claimed (by this or another daemon) —
    /// then nothing is queued. A night with no messages is claimed all the same.
    ///
    /// # Errors
    /// [`StoreError::Query`] (nothing is stored).
    pub async fn queue_night_digest(
        &self,
        night: NaiveDate,
        messages: &[NightDigest],
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let at_ms = to_ms(at);
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.ctx("begin queueing the digest")?;
            let claimed = sqlx::query(
                "UPDATE nights SET digest_queued_at = $2 \
                 WHERE night = $1 AND digest_queued_at IS NULL",
            )
            .bind(night.to_string())
            .bind(at_ms)
            .execute(&mut *tx)
            .await
            .ctx("claim the night's digest")?
            .rows_affected();
            if claimed == 0 {
                return Ok(None); // dropping `tx` rolls back
            }
            let mut ids = Vec::with_capacity(messages.len());
            for m in messages {
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO outbox (run_id, team, kind, payload, status, attempts, \
                     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6) \
                     RETURNING id",
                )
                .bind(m.anchor_run.to_string())
                .bind(&m.team)
                .bind(m.kind.stored_name())
                .bind(Json(&m.payload))
                .bind(OutboxStatus::Pending.as_str())
                .bind(at_ms)
                .fetch_one(&mut *tx)
                .await
                .ctx("queue digest")?;
                ids.push(id);
            }
            tx.commit().await.ctx("commit the digest")?;
            Ok(Some(ids))
        })
    }
}
