//! The notification outbox: the runner records "notify team X about run Y" durably; a delivery
//! worker reads due rows ([`Store::outbox_due`], index `outbox_due`) and records each attempt
//! ([`Store::outbox_delivered`], [`Store::outbox_failed`]: attempts, back-off via
//! `next_attempt_at`, `last_error`, `dead` when it gives up).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::{OutboxRecord, OutboxStatus};
use super::rows::{OutboxRow, convert_all};
use super::{Store, StoreError, to_ms, with_pool};
use crate::model::NotificationKind;

const OUTBOX_COLUMNS: &str = "id, run_id, team, kind, payload, status, attempts, next_attempt_at, \
     last_error, created_at, delivered_at";

/// How many notifications wait in the outbox and how many it gave up on, for the operator
/// metrics `f3_chaos_outbox_pending` and `f3_chaos_outbox_dead_letters`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Rows `pending` (due now or waiting for a retry).
    pub pending: i64,
    /// Rows `dead`: every attempt failed; nobody was told.
    pub dead: i64,
}

impl Store {
    /// Counts the outbox rows still to deliver and those given up on.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT status, COUNT(*) FROM outbox WHERE status IN ($1, $2) GROUP BY status",
        )
        .bind(OutboxStatus::Pending.as_str())
        .bind(OutboxStatus::Dead.as_str())
        .fetch_all(pool)
        .await
        .ctx("count the outbox backlog"))?;
        let mut backlog = OutboxBacklog::default();
        for (status, n) in rows {
            if status == OutboxStatus::Pending.as_str() {
                backlog.pending = n;
            } else {
                backlog.dead = n;
            }
        }
        Ok(backlog)
    }

    /// Queues one notification for `team` about `run_id`, due immediately (`next_attempt_at =
    /// at`). Returns the outbox id.
    ///
    /// # Errors
    /// [`StoreError::Query`] (also for an unknown run: foreign key).
    pub async fn outbox_insert(
        &self,
        run_id: Uuid,
        team: &str,
        kind: NotificationKind,
        payload: &Value,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO outbox (run_id, team, kind, payload, status, attempts, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6) RETURNING id",
        )
        .bind(run_id.to_string())
        .bind(team)
        .bind(kind.stored_name())
        .bind(Json(payload))
        .bind(OutboxStatus::Pending.as_str())
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
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE run_id = $1 ORDER BY id");
        let rows = with_pool!(self, pool => sqlx::query_as::<_, OutboxRow>(&sql)
        .bind(run_id.to_string())
        .fetch_all(pool)
        .await
        .ctx("list the run's notifications"))?;
        convert_all(rows)
    }

    /// Up to `limit` notifications due for an attempt at `now` (`pending` and
    /// `next_attempt_at <= now`), earliest due first — the delivery worker's input. Run the worker
    /// in one process only (the daemon's leader): rows are not claimed.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = $1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, id LIMIT $3"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, OutboxRow>(&sql)
            .bind(OutboxStatus::Pending.as_str())
            .bind(to_ms(now))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .ctx("list due notifications"))?;
        convert_all(rows)
    }

    /// Records a successful delivery attempt at `at`: status `delivered`, one more attempt.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Query`].
    pub async fn outbox_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE outbox SET status = $2, attempts = attempts + 1, delivered_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(OutboxStatus::Delivered.as_str())
        .bind(to_ms(at))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("record notification delivery"))?;
        outbox_found(id, done)
    }

    /// Records a failed delivery attempt with its error: retried from `retry_at`
    /// (`Some`, status stays `pending`) or given up (`None`, status `dead`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Query`].
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let status = if retry_at.is_some() {
            OutboxStatus::Pending
        } else {
            OutboxStatus::Dead
        };
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE outbox SET status = $2, attempts = attempts + 1, last_error = $3, \
             next_attempt_at = COALESCE($4, next_attempt_at) WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(error)
        .bind(retry_at.map(to_ms))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("record notification failure"))?;
        outbox_found(id, done)
    }
}

impl Store {
    /// Splits outbox row `id` into one pending row per payload (same run, team and kind, due at
    /// `at`) and marks it [`OutboxStatus::Routed`] — [`OutboxStatus::NoRoute`] when there is no
    /// payload (a team without routes) — in one transaction: a crash leaves either the parent
    /// pending or the children queued, never both.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Query`].
    pub async fn outbox_fan_out(
        &self,
        id: i64,
        payloads: &[Value],
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let ids = with_pool!(self, pool => {
            let mut tx = pool.begin().await.ctx("begin outbox fan-out")?;
            let done = sqlx::query(
                "UPDATE outbox SET status = $2, attempts = attempts + 1, delivered_at = $3 \
                 WHERE id = $1 AND status = $4",
            )
            .bind(id)
            .bind(if payloads.is_empty() {
                OutboxStatus::NoRoute
            } else {
                OutboxStatus::Routed
            }
            .as_str())
            .bind(to_ms(at))
            .bind(OutboxStatus::Pending.as_str())
            .execute(&mut *tx)
            .await
            .ctx("mark notification routed")?
            .rows_affected();
            outbox_found(id, done)?;
            let mut ids = Vec::with_capacity(payloads.len());
            for payload in payloads {
                let child = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO outbox (run_id, team, kind, payload, status, attempts, \
                     next_attempt_at, created_at) SELECT run_id, team, kind, $2, $3, 0, $4, $4 \
                     FROM outbox WHERE id = $1 RETURNING id",
                )
                .bind(id)
                .bind(Json(payload))
                .bind(OutboxStatus::Pending.as_str())
                .bind(to_ms(at))
                .fetch_one(&mut *tx)
                .await
                .ctx("queue routed notification")?;
                ids.push(child);
            }
            tx.commit().await.ctx("commit outbox fan-out")?;
            ids
        });
        Ok(ids)
    }
}

fn outbox_found(id: i64, rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound {
            what: "outbox entry",
            id: id.to_string(),
        });
    }
    Ok(())
}
