//! Probes for the daemon's orchestrator (Kubernetes liveness and readiness, load balancers), open
//! like `/metrics`:
//!
//! - `GET /healthz` — the process serves HTTP: `200 {"status":"ok"}`;
//! - `GET /readyz` — the replica can do its job: the store answers a query within
//!   [`STORE_PING_TIMEOUT`] and the replica knows whether it leads (it has been through one
//!   election). `200 {"status":"ready","store":"ok","role":"leader"|"standby"}`, else `503` with
//!   `"status":"not-ready"` and what is missing (`"store":"unreachable: …"`, `"role":"unknown"`).
//!
//! A standby is ready: it serves the API and the dashboard, and takes over when the leader dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::store::Store;

/// How long `/readyz` waits for the store's answer (keep the probe's `timeoutSeconds` above it).
pub const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What this replica is in the leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not through an election yet (starting, or the store never answered).
    Unknown,
    /// Holds the leader lease: runs the night, delivers the outbox.
    Leader,
    /// Another replica leads; this one serves the API and waits to take over.
    Standby,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Leader => "leader",
            Self::Standby => "standby",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Leader,
            2 => Self::Standby,
            _ => Self::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Leader => 1,
            Self::Standby => 2,
        }
    }
}

/// The replica's health as the probes see it. Cheap to clone; every clone shares the role.
#[derive(Clone)]
pub struct Health {
    store: Store,
    metrics: Metrics,
    role: Arc<AtomicU8>,
}

impl Health {
    /// Health of a replica using `store`; the role starts [`Role::Unknown`]. `metrics` gets the
    /// leader gauge (`f3_chaos_leader`).
    pub fn new(store: Store, metrics: Metrics) -> Self {
        metrics.set_leader(false);
        Self {
            store,
            metrics,
            role: Arc::new(AtomicU8::new(Role::Unknown.to_u8())),
        }
    }

    /// Records the outcome of an election (or a lost leadership).
    pub fn set_role(&self, role: Role) {
        self.role.store(role.to_u8(), Ordering::Relaxed);
        self.metrics.set_leader(role == Role::Leader);
    }

    /// The last recorded role.
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Relaxed))
    }
}

/// `/healthz` and `/readyz` (see the module docs).
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let store = match tokio::time::timeout(STORE_PING_TIMEOUT, health.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("unreachable: {e}")),
        Err(_) => Some(format!(
            "unreachable: no answer within {} s",
            STORE_PING_TIMEOUT.as_secs()
        )),
    };
    let role = health.role();
    let ready = store.is_none() && role != Role::Unknown;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not-ready" },
            "store": store.as_deref().unwrap_or("ok"),
            "role": role.as_str(),
        })),
    )
}
