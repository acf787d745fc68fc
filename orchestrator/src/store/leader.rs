//! Leader election among daemons sharing one store: exactly one executes the night, every one
//! serves the API.
//!
//! - **PostgreSQL**: a session-level advisory lock (`pg_try_advisory_lock`, PostgreSQL manual
//!   §9.27.10 "Advisory Lock Functions") held on a dedicated connection. When the leader dies
//!   (even `kill -9`) its connection closes and PostgreSQL releases the lock at once; a standby
//!   polling every few seconds takes over.
//! - **SQLite**: a lease row named [`LEADER_LEASE`] in the stack-lease table, renewed by the
//!   leader; a dead leader's row expires after [`LEADER_LEASE_TTL`].

use std::time::Duration;

use chrono::Utc;
use sqlx::Connection as _;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::LeaseHolder;
use super::{Backend, Store, StoreError};

/// Advisory lock key of the daemon leader: the bytes of `f3chaos` and a version, as an i64.
pub const LEADER_LOCK_KEY: i64 = 0x6633_6368_616f_7301;

/// Name of the SQLite leader lease row (never a stack name: stacks are DNS labels).
pub const LEADER_LEASE: &str = "__daemon-leader__";

/// How long the SQLite leader lease lasts without renewal. The leader confirms (renews) every
/// few seconds; a standby takes over at most this long after the leader died.
pub const LEADER_LEASE_TTL: Duration = Duration::from_secs(10);

/// Proof of leadership. Keep it while leading; [`Leadership::confirm`] regularly (every ≤ 3 s)
/// and stop leading as soon as it returns `false`.
#[derive(Debug)]
pub struct Leadership {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// The connection holding the advisory lock.
    Postgres(sqlx::PgConnection),
    /// The lease row's holder id.
    Sqlite { store: Store, token: Uuid },
}

impl Store {
    /// Tries to become the leader; `holder` (e.g. `host pid 1234`) is shown to others.
    /// `Ok(None)` when another daemon leads.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database cannot be reached.
    pub async fn try_lead(&self, holder: &str) -> Result<Option<Leadership>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await.ctx("connect for leadership")?.detach();
                let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LEADER_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .ctx("take the leader advisory lock")?;
                if won {
                    Ok(Some(Leadership {
                        inner: Inner::Postgres(conn),
                    }))
                } else {
                    if let Err(e) = conn.close().await {
                        tracing::debug!(error = %e, "Could not close the election connection cleanly.");
                    }
                    Ok(None)
                }
            }
            Backend::Sqlite(_) => {
                let token = Uuid::now_v7();
                let lease = LeaseHolder {
                    run_id: token,
                    scenario: "daemon".into(),
                    holder: holder.to_owned(),
                };
                let got = self
                    .acquire_lease(LEADER_LEASE, &lease, LEADER_LEASE_TTL, Utc::now())
                    .await?;
                Ok(got.ok().map(|_| Leadership {
                    inner: Inner::Sqlite {
                        store: self.clone(),
                        token,
                    },
                }))
            }
        }
    }
}

impl Leadership {
    /// Whether this daemon still leads: PostgreSQL — the lock's session answers; SQLite — the
    /// lease row is renewed. A `false` is final: drop this value and try [`Store::try_lead`] again.
    pub async fn confirm(&mut self) -> bool {
        match &mut self.inner {
            Inner::Postgres(conn) => tokio::time::timeout(Duration::from_secs(5), conn.ping())
                .await
                .is_ok_and(|r| r.is_ok()),
            Inner::Sqlite { store, token } => store
                .renew_lease(LEADER_LEASE, *token, LEADER_LEASE_TTL, Utc::now())
                .await
                .unwrap_or(false),
        }
    }

    /// Gives leadership up at once (a standby may take over immediately).
    pub async fn resign(self) {
        match self.inner {
            Inner::Postgres(mut conn) => {
                if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(LEADER_LOCK_KEY)
                    .execute(&mut conn)
                    .await
                {
                    tracing::warn!(error = %e, "Could not release the leader lock; it goes with the connection.");
                }
                if let Err(e) = conn.close().await {
                    tracing::warn!(error = %e, "Could not close the leader connection cleanly.");
                }
            }
            Inner::Sqlite { store, token } => {
                if let Err(e) = store.release_lease(LEADER_LEASE, token).await {
                    tracing::warn!(error = %e, "Could not release the leader lease; a standby takes over when it expires.");
                }
            }
        }
    }
}
