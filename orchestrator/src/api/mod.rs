//! The daemon's HTTP API (axum): JSON for scenarios, plans, runs, steps and evidence, `POST` to
//! start a run or a trigger, an SSE stream of a run's events, the findings (`PATCH` to attach a
//! ticket), and `/metrics`. See docs/api.md.
//!
//! One self-contained [`Router`] the daemon mounts next to the dashboard:
//!
//! ```no_run
//! # async fn mount(store: f3_chaos::store::Store, library: f3_chaos::scenario::Library) -> anyhow::Result<()> {
//! let metrics = f3_chaos::metrics::Metrics::new();
//! let api = f3_chaos::api::ApiState::new(store, library, metrics)?; // reads token secrets from env
//! let app = f3_chaos::api::router(api.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! axum::serve(listener, app).with_graceful_shutdown(async { /* SIGTERM */ }).await?;
//! api.shutdown().await; // reverts the faults of runs started through the API
//! # Ok(()) }
//! ```
//!
//! Every `/api/v1/` route needs `Authorization: Bearer <token>` ([`auth`]); `/metrics` is open
//! (Prometheus scrapes it; it holds no secrets).

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ApiRole;
use crate::metrics::Metrics;
use crate::scenario::Library;
use crate::store::{Store, StoreError};

pub mod auth;
mod events;
mod findings;
pub mod health;
mod reads;
mod start;

#[cfg(test)]
mod tests;

pub use auth::{Caller, TokenError, Tokens};
pub use start::{StartRequest, StartedRun};

/// What the API serves from: the store, the compiled library, the tokens, the metrics, and the
/// runs it started. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    library: Library,
    tokens: Tokens,
    metrics: Metrics,
    live: Arc<events::LiveRuns>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl ApiState {
    /// A state whose tokens are `library.config.api_tokens`, secrets read from their
    /// `tokenEnv` variables now.
    ///
    /// # Errors
    /// [`TokenError`] when a variable is unset or its secret is shorter than
    /// [`auth::MIN_SECRET_LEN`] characters, or two tokens share a secret.
    pub fn new(store: Store, library: Library, metrics: Metrics) -> Result<Self, TokenError> {
        let tokens = Tokens::from_config(&library.config.api_tokens)?;
        Ok(Self::with_tokens(store, library, tokens, metrics))
    }

    /// A state with explicit tokens (tests, or a daemon that gets secrets elsewhere).
    pub fn with_tokens(store: Store, library: Library, tokens: Tokens, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                library,
                tokens,
                metrics,
                live: Arc::new(events::LiveRuns::default()),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The metrics this API updates and serves at `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The reporter that streams a run live on `GET /api/v1/runs/{id}/events` (with no gap and
    /// no duplicate): every run this process starts — through the API or the daemon's night —
    /// gets it, so its events reach SSE subscribers as they happen rather than by the store
    /// poll.
    pub fn live_reporter(&self) -> Arc<dyn crate::run::Reporter> {
        self.inner.live.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Cancels every run started through this API (each reverts its faults and ends as
    /// `interrupted`) and waits until they have all ended. New `POST`s are refused with 503.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Waits until every run started through this API so far has ended (without cancelling).
    pub async fn wait_idle(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.tasks.reopen();
    }
}

/// The API's routes: `/api/v1/…` and `/metrics` (see the module docs and docs/api.md).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/scenarios", get(reads::scenarios))
        .route("/api/v1/scenarios/{name}", get(reads::scenario))
        .route("/api/v1/plans/{night}", get(reads::plan))
        .route("/api/v1/runs", get(reads::runs).post(start::post_run))
        .route("/api/v1/runs/{id}", get(reads::run))
        .route("/api/v1/runs/{id}/steps", get(reads::steps))
        .route("/api/v1/runs/{id}/evidence", get(reads::evidence))
        .route("/api/v1/runs/{id}/events", get(events::run_events))
        .route("/api/v1/triggers", post(start::post_trigger))
        .route("/api/v1/findings", get(findings::list))
        .route("/api/v1/findings/{id}", patch(findings::annotate))
        .route("/metrics", get(reads::metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

/// 404 for a scenario `name` the library does not hold: "unknown scenario `x`", with "did you
/// mean `y`?" when a scenario name is close ([`crate::input::yaml::closest`]).
pub(crate) fn unknown_scenario(library: &crate::scenario::Library, name: &str) -> ApiError {
    let known: Vec<String> = library.scenarios.keys().cloned().collect();
    ApiError::NotFound(match crate::input::yaml::closest(name, &known) {
        Some(guess) => format!("unknown scenario `{name}`: did you mean `{guess}`?"),
        None => format!("unknown scenario `{name}`"),
    })
}

/// An error answer: a status and `{"error": "...", "code": "...", "required_role": "admin"?}`.
#[derive(Debug)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: Bearer`: no token, a malformed header or an unknown token.
    Unauthorized(&'static str),
    /// 403: the token's role is not enough (`needed` is named in the body).
    Forbidden {
        /// The least role that would be allowed (`None`: no role may, e.g. no production opt-in).
        needed: Option<ApiRole>,
        /// Why.
        message: String,
    },
    /// 404.
    NotFound(String),
    /// 400: the request is not valid (unknown stack, stack not eligible, bad filter).
    BadRequest(String),
    /// 409: the stack is held by another run (the holder is named).
    Conflict(String),
    /// 501: the stack's driver is not in this build.
    NotImplemented(String),
    /// 503: the API is shutting down.
    Unavailable(String),
    /// 500.
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_role: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, needed) = match &self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", *m, None),
            ApiError::Forbidden { needed, message } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                message.as_str(),
                needed.map(ApiRole::as_str),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not-found", m.as_str(), None),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad-request", m.as_str(), None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "stack-busy", m.as_str(), None),
            ApiError::NotImplemented(m) => (
                StatusCode::NOT_IMPLEMENTED,
                "not-implemented",
                m.as_str(),
                None,
            ),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                m.as_str(),
                None,
            ),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "API request failed.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    m.as_str(),
                    None,
                )
            }
        };
        let body = axum::Json(ErrorBody {
            error: message,
            code,
            required_role: needed,
        });
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"f3-chaos\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AmbiguousRunId { .. } | StoreError::Invalid { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::Internal(format!("store: {other}")),
        }
    }
}
