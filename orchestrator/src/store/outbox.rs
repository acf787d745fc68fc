//! The notification outbox: the runner records "notify team X about run Y" durably; a delivery
//! worker (later) picks due rows (`status = 'pending' AND next_attempt_at <= now`, index
//! `outbox_due`), counts attempts, backs off via `next_attempt_at` and keeps `last_error`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::OutboxRecord;
use super::rows::{OutboxRow, convert_all};
use super::{Store, StoreError, to_ms, with_pool};

/// Status of an outbox row waiting for a (first or further) delivery attempt.
pub const OUTBOX_PENDING: &str = "pending";

impl Store {
    /// Queues one notification for `team` about `run_id`, due immediately (`next_attempt_at =
    /// at`). Returns the outbox id.
    ///
    /// # Errors
    /// [`StoreError::Query`] (also for an unknown run: foreign key).
    pub async fn outbox_insert(
        &self,
        run_id: Uuid,
        team: &str,
        kind: &str,
        payload: &Value,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO outbox (run_id, team, kind, payload, status, attempts, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6) RETURNING id",
        )
        .bind(run_id.to_string())
        .bind(team)
        .bind(kind)
        .bind(Json(payload))
        .bind(OUTBOX_PENDING)
        .bind(to_ms(at))
        .fetch_one(pool)
        .await
        .ctx("queue notification"))?;
        Ok(id)
    }

    /// The run's notifications in queueing order.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn outbox_for_run(&self, run_id: Uuid) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, OutboxRow>(
            "SELECT id, run_id, team, kind, payload, status, attempts, next_attempt_at, \
             last_error, created_at, delivered_at FROM outbox WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id.to_string())
        .fetch_all(pool)
        .await
        .ctx("list the run's notifications"))?;
        convert_all(rows)
    }
}
