//! Stack leases: one disruptive experiment per stack, shared by every f3-chaos process on the
//! database. A lease expires unless its holder renews it, so a dead holder's lease frees itself.
//!
//! Acquisition is one atomic statement on both backends:
//! `INSERT … ON CONFLICT (stack) DO UPDATE … WHERE leases.expires_at <= now OR same run
//! RETURNING run_id`. A row comes back only if this caller now holds the lease; concurrent
//! callers are serialised by the row (PostgreSQL) or the database write lock (SQLite).

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::QueryContext;
use super::model::{Lease, LeaseHolder};
use super::rows::LeaseRow;
use super::{Store, StoreError, duration_ms, to_ms, with_pool};

const LEASE_COLUMNS: &str = "stack, run_id, scenario, holder, acquired_at, renewed_at, expires_at";

/// Attempts when the lease we lost to vanished before we could read its holder.
const ACQUIRE_ATTEMPTS: usize = 5;

impl Store {
    /// Takes the stack's lease for `ttl` from `now`, if it is free, expired (`expires_at <= now`)
    /// or already held by the same run (then it is renewed and keeps its `acquired_at`).
    ///
    /// Returns `Ok(Ok(lease))` when the caller holds the lease, `Ok(Err(current))` with the
    /// current holder otherwise. `now` comes from the caller's clock: processes sharing a
    /// PostgreSQL database from several hosts need synchronised clocks (NTP).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a zero or huge TTL; [`StoreError::Query`].
    pub async fn acquire_lease(
        &self,
        stack: &str,
        holder: &LeaseHolder,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Result<Lease, Lease>, StoreError> {
        let ttl_ms = lease_ttl_ms(ttl)?;
        let now_ms = to_ms(now);
        let run = holder.run_id.to_string();
        let sql = format!(
            "INSERT INTO leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (stack) DO UPDATE SET \
             acquired_at = CASE WHEN leases.run_id = excluded.run_id \
                 THEN leases.acquired_at ELSE excluded.acquired_at END, \
             run_id = excluded.run_id, scenario = excluded.scenario, holder = excluded.holder, \
             renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= excluded.renewed_at OR leases.run_id = excluded.run_id \
             RETURNING {LEASE_COLUMNS}"
        );
        for _ in 0..ACQUIRE_ATTEMPTS {
            let won = with_pool!(self, pool => sqlx::query_as::<_, LeaseRow>(&sql)
                .bind(stack)
                .bind(&run)
                .bind(&holder.scenario)
                .bind(&holder.holder)
                .bind(now_ms)
                .bind(now_ms.saturating_add(ttl_ms))
                .fetch_optional(pool)
                .await
                .ctx("acquire stack lease"))?;
            if let Some(row) = won {
                return Ok(Ok(Lease::try_from(row)?));
            }
            // Someone else holds it; read who. If it was released or expired in between, retry.
            if let Some(current) = self.lease(stack, now).await? {
                return Ok(Err(current));
            }
        }
        Err(StoreError::Invalid {
            field: "stack lease",
            message: format!(
                "the lease of stack {stack:?} changed hands {ACQUIRE_ATTEMPTS} times during one acquisition"
            ),
        })
    }

    /// Extends the run's lease on the stack to `now + ttl`. Returns `false` if the run does not
    /// hold it any more (released, or expired and taken by another run). Renewing an expired
    /// lease that nobody took succeeds.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a zero or huge TTL; [`StoreError::Query`].
    pub async fn renew_lease(
        &self,
        stack: &str,
        run_id: Uuid,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let ttl_ms = lease_ttl_ms(ttl)?;
        let now_ms = to_ms(now);
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE leases SET renewed_at = $3, expires_at = $4 WHERE stack = $1 AND run_id = $2",
        )
        .bind(stack)
        .bind(run_id.to_string())
        .bind(now_ms)
        .bind(now_ms.saturating_add(ttl_ms))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("renew stack lease"))?;
        Ok(done == 1)
    }

    /// Gives the stack's lease back if `run_id` holds it; does nothing otherwise.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn release_lease(&self, stack: &str, run_id: Uuid) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("DELETE FROM leases WHERE stack = $1 AND run_id = $2")
            .bind(stack)
            .bind(run_id.to_string())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .ctx("release stack lease"))?;
        Ok(())
    }

    /// The stack's current lease, if one is held and not expired at `now`.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn lease(
        &self,
        stack: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let sql =
            format!("SELECT {LEASE_COLUMNS} FROM leases WHERE stack = $1 AND expires_at > $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, LeaseRow>(&sql)
            .bind(stack)
            .bind(to_ms(now))
            .fetch_optional(pool)
            .await
            .ctx("read stack lease"))?;
        row.map(Lease::try_from).transpose()
    }

    /// Every stack lease held and not expired at `now`, by stack (for the dashboard and the
    /// daemon); the daemons' leader lease is not a stack's and is left out.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn leases(&self, now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE expires_at > $1 AND stack <> $2 ORDER BY stack"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, LeaseRow>(&sql)
            .bind(to_ms(now))
            .bind(super::LEADER_LEASE)
            .fetch_all(pool)
            .await
            .ctx("list stack leases"))?;
        super::rows::convert_all(rows)
    }
}

/// A lease TTL in milliseconds: at least 1 ms.
fn lease_ttl_ms(ttl: Duration) -> Result<i64, StoreError> {
    let ms = duration_ms("lease ttl", ttl)?;
    if ms == 0 {
        return Err(StoreError::Invalid {
            field: "lease ttl",
            message: "must be at least 1 ms".to_owned(),
        });
    }
    Ok(ms)
}
