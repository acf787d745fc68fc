//! The gateway: receives `POST /payments` and routes each payment round-robin over the healthy
//! backends of all clouds, with active health checks, a per-request timeout, retries (on another
//! cloud when `retry_other_cloud`) and passive ejection (`eject_on_failure`). How well a cloud loss
//! is survived depends only on these settings (see [`crate::settings::GatewayProfile`]).
//!
//! Answers carry `x-f3-cloud` / `x-f3-node` (the serving backend; on failure the last one tried)
//! and `x-f3-attempts`. `GET /health` is 200 while at least one backend is healthy.
//! `GET /fingerprint` returns the live stack fingerprint (see [`crate::fingerprint`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering::Relaxed};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::time::MissedTickBehavior;

use super::CommonArgs;
use crate::settings::{GatewayProfile, GatewaySettings};

/// `f3-sandbox gateway`: the gateway process.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayProcessArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A backend as `CLOUD/NODE=PORT` (repeat for each node).
    #[arg(long = "backend", value_parser = parse_backend)]
    backends: Vec<BackendSpec>,
    #[command(flatten)]
    settings: crate::settings::GatewayArgs,
}

/// One backend given on the command line.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    cloud: String,
    node: String,
    port: u16,
}

/// Formats a backend for the gateway's command line (inverse of the parser).
pub fn backend_arg(cloud: &str, node: &str, port: u16) -> String {
    format!("{cloud}/{node}={port}")
}

fn local_url(port: u16, path: &str) -> anyhow::Result<reqwest::Url> {
    Ok(reqwest::Url::parse(&format!(
        "http://127.0.0.1:{port}{path}"
    ))?)
}

fn parse_backend(s: &str) -> Result<BackendSpec, String> {
    let (id, port) = s.split_once('=').ok_or("expected CLOUD/NODE=PORT")?;
    let (cloud, node) = id.split_once('/').ok_or("expected CLOUD/NODE=PORT")?;
    let port = port.parse().map_err(|_| format!("bad port in `{s}`"))?;
    Ok(BackendSpec {
        cloud: cloud.into(),
        node: node.into(),
        port,
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    cloud: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    cloud: String,
    node: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EjectionLabels {
    cloud: String,
    node: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudLabel {
    from_cloud: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Retry budget (as in Finagle and Envoy): every payment deposits 0.2 retries, a burst of up to
/// 100 is kept, each retry spends one. A cloud loss needs a retry for the payments in flight to it
/// until it is ejected (well within the burst); an overloaded platform gets at most 20 % extra
/// load from retries instead of a retry storm that multiplies it.
const RETRY_DEPOSIT: i64 = 200;
const RETRY_COST: i64 = 1_000;
const RETRY_BURST: i64 = 100 * RETRY_COST;

struct Backend {
    labels: BackendLabels,
    // Parsed once: reqwest would otherwise parse (and IDNA-check) the URL string on every request.
    payments_url: reqwest::Url,
    health_url: reqwest::Url,
    healthy: AtomicBool,
    failed_checks: AtomicU32,
    good_checks: AtomicU32,
}

struct Metrics {
    healthy: Family<BackendLabels, Gauge>,
    failovers: Family<CloudLabel, Counter>,
    upstream: Family<UpstreamLabels, Counter>,
    ejections: Family<EjectionLabels, Counter>,
    requests: Family<OutcomeLabel, Counter>,
    retries_denied: Counter,
}

struct Gateway {
    backends: Vec<Backend>,
    settings: GatewaySettings,
    client: reqwest::Client,
    next: AtomicUsize,
    /// Retry budget in thousandths of a retry (see [`Gateway::take_retry`]).
    retry_tokens: AtomicI64,
    metrics: Metrics,
}

/// Runs the gateway until killed.
pub fn run(args: GatewayProcessArgs) -> anyhow::Result<()> {
    super::init_logging();
    let settings = args
        .settings
        .apply(&GatewaySettings::profile(GatewayProfile::Aggressive));
    anyhow::ensure!(
        !args.backends.is_empty(),
        "the gateway needs at least one --backend"
    );
    let mut registry = Registry::default();
    let metrics = Metrics {
        healthy: Family::default(),
        failovers: Family::default(),
        upstream: Family::default(),
        ejections: Family::default(),
        requests: Family::default(),
        retries_denied: Counter::default(),
    };
    registry.register(
        "gateway_backend_healthy",
        "Whether the gateway currently routes to the backend (1) or not (0)",
        metrics.healthy.clone(),
    );
    registry.register(
        "gateway_failovers",
        "Payments retried on another cloud after an attempt on from_cloud failed",
        metrics.failovers.clone(),
    );
    registry.register(
        "gateway_upstream_requests",
        "Upstream payment attempts by backend and outcome (success, error, timeout)",
        metrics.upstream.clone(),
    );
    registry.register(
        "gateway_backend_ejections",
        "Times a backend was marked unhealthy, by reason (health_check, request_failure)",
        metrics.ejections.clone(),
    );
    registry.register(
        "gateway_retries_denied",
        "Retries not made because the retry budget (20 % of payments, burst 100) was spent",
        metrics.retries_denied.clone(),
    );
    registry.register(
        "gateway_requests",
        "Payments answered by the gateway, by outcome (success, failure)",
        metrics.requests.clone(),
    );
    let backends: Vec<Backend> = args
        .backends
        .iter()
        .map(|b| -> anyhow::Result<Backend> {
            let labels = BackendLabels {
                cloud: b.cloud.clone(),
                node: b.node.clone(),
            };
            // Backends start healthy: `up` starts the gateway only once every node answers.
            metrics.healthy.get_or_create(&labels).set(1);
            // Every series exists from the first scrape, so `increase()` sees the first event.
            let _ = metrics.failovers.get_or_create(&CloudLabel {
                from_cloud: b.cloud.clone(),
            });
            for outcome in ["success", "error", "timeout"] {
                let _ = metrics.upstream.get_or_create(&UpstreamLabels {
                    cloud: b.cloud.clone(),
                    node: b.node.clone(),
                    outcome,
                });
            }
            for reason in ["health_check", "request_failure"] {
                let _ = metrics.ejections.get_or_create(&EjectionLabels {
                    cloud: b.cloud.clone(),
                    node: b.node.clone(),
                    reason,
                });
            }
            Ok(Backend {
                labels,
                payments_url: local_url(b.port, "/payments")?,
                health_url: local_url(b.port, "/health")?,
                healthy: AtomicBool::new(true),
                failed_checks: AtomicU32::new(0),
                good_checks: AtomicU32::new(0),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(None)
        .build()?;
    for outcome in ["success", "failure"] {
        let _ = metrics.requests.get_or_create(&OutcomeLabel { outcome });
    }
    let inventory_path = crate::state::StackPaths::from_dir(&args.common.stack_dir).inventory();
    let gateway = Arc::new(Gateway {
        backends,
        settings,
        client,
        next: AtomicUsize::new(0),
        retry_tokens: AtomicI64::new(RETRY_BURST),
        metrics,
    });
    let app = Router::new()
        .route("/payments", post(pay))
        .route("/health", get(health))
        .with_state(Arc::clone(&gateway))
        .route(
            "/fingerprint",
            get(move || fingerprint(inventory_path.clone())),
        )
        .merge(super::base_router(registry));
    tracing::info!(stack = %args.common.stack, port = args.common.port, settings = ?gateway.settings, "Gateway listening.");
    super::block_on(async move {
        for i in 0..gateway.backends.len() {
            tokio::spawn(health_loop(Arc::clone(&gateway), i));
        }
        super::serve(args.common.port, app).await
    })?
}

impl Gateway {
    /// Next backend round-robin among the healthy ones not excluded; when none is healthy, among
    /// all not excluded (a gateway with nothing healthy still tries rather than refusing).
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let allowed = |i: usize| {
            let cloud = &self.backends[i].labels.cloud;
            let cloud_tried = tried
                .iter()
                .any(|t| self.backends[*t].labels.cloud == *cloud);
            let excluded = tried.contains(&i) || (self.settings.retry_other_cloud && cloud_tried);
            !excluded
        };
        let healthy: Vec<usize> = (0..self.backends.len())
            .filter(|i| allowed(*i) && self.backends[*i].healthy.load(Relaxed))
            .collect();
        let candidates = if healthy.is_empty() {
            (0..self.backends.len()).filter(|i| allowed(*i)).collect()
        } else {
            healthy
        };
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.next.fetch_add(1, Relaxed) % candidates.len()])
    }

    fn deposit_retry_budget(&self) {
        let _ = self.retry_tokens.fetch_update(Relaxed, Relaxed, |t| {
            Some((t + RETRY_DEPOSIT).min(RETRY_BURST))
        });
    }

    /// Spends one retry from the budget; false when it is exhausted.
    fn take_retry(&self) -> bool {
        self.retry_tokens
            .fetch_update(Relaxed, Relaxed, |t| {
                (t >= RETRY_COST).then_some(t - RETRY_COST)
            })
            .is_ok()
    }

    /// Passive ejection (after a failed payment) never leaves fewer than half the backends
    /// healthy (Envoy's `max_ejection_percent`): on a starved machine a few slow answers must not
    /// cascade into ejecting every cloud. Active health checks are not capped.
    fn may_eject_passively(&self) -> bool {
        let healthy = self
            .backends
            .iter()
            .filter(|b| b.healthy.load(Relaxed))
            .count();
        2 * (healthy.saturating_sub(1)) >= self.backends.len()
    }

    fn mark_unhealthy(&self, i: usize, reason: &'static str) {
        let b = &self.backends[i];
        b.good_checks.store(0, Relaxed);
        if b.healthy.swap(false, Relaxed) {
            self.metrics.healthy.get_or_create(&b.labels).set(0);
            let labels = EjectionLabels {
                cloud: b.labels.cloud.clone(),
                node: b.labels.node.clone(),
                reason,
            };
            self.metrics.ejections.get_or_create(&labels).inc();
            tracing::warn!(cloud = %b.labels.cloud, node = %b.labels.node, reason, "Backend marked unhealthy.");
        }
    }

    fn mark_healthy(&self, i: usize) {
        let b = &self.backends[i];
        if !b.healthy.swap(true, Relaxed) {
            self.metrics.healthy.get_or_create(&b.labels).set(1);
            tracing::info!(cloud = %b.labels.cloud, node = %b.labels.node, "Backend healthy again.");
        }
    }

    fn count_upstream(&self, i: usize, outcome: &'static str) {
        let b = &self.backends[i].labels;
        let labels = UpstreamLabels {
            cloud: b.cloud.clone(),
            node: b.node.clone(),
            outcome,
        };
        self.metrics.upstream.get_or_create(&labels).inc();
    }
}

async fn pay(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let mut tried: Vec<usize> = Vec::with_capacity(1 + gw.settings.retries as usize);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    gw.deposit_retry_budget();
    for attempt in 0..=gw.settings.retries {
        if attempt > 0 && !gw.take_retry() {
            gw.metrics.retries_denied.inc();
            break;
        }
        let Some(i) = gw.pick(&tried) else { break };
        if let Some(prev) = tried.last() {
            let from = &gw.backends[*prev].labels.cloud;
            if *from != gw.backends[i].labels.cloud {
                gw.metrics
                    .failovers
                    .get_or_create(&CloudLabel {
                        from_cloud: from.clone(),
                    })
                    .inc();
            }
        }
        tried.push(i);
        let backend = &gw.backends[i];
        let attempt = async {
            let resp = gw
                .client
                .post(backend.payments_url.clone())
                .body(body.clone())
                .send()
                .await?;
            let ok = resp.status().is_success();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((ok, bytes))
        };
        // tokio's timeout polls the request before the deadline, so an answer that arrived while
        // the gateway was not scheduled (a busy machine) still counts; reqwest's own timeout
        // checks the deadline first and would fail it.
        let outcome = tokio::time::timeout(gw.settings.request_timeout(), attempt).await;
        match outcome {
            Ok(Ok((true, bytes))) => {
                gw.count_upstream(i, "success");
                gw.metrics
                    .requests
                    .get_or_create(&OutcomeLabel { outcome: "success" })
                    .inc();
                return (
                    [
                        ("x-f3-cloud", backend.labels.cloud.clone()),
                        ("x-f3-node", backend.labels.node.clone()),
                        ("x-f3-attempts", tried.len().to_string()),
                    ],
                    bytes,
                )
                    .into_response();
            }
            Ok(Ok((false, _))) => {
                gw.count_upstream(i, "error");
                status = StatusCode::BAD_GATEWAY;
            }
            Err(_elapsed) => {
                gw.count_upstream(i, "timeout");
                status = StatusCode::GATEWAY_TIMEOUT;
            }
            Ok(Err(_)) => {
                gw.count_upstream(i, "error");
                status = StatusCode::BAD_GATEWAY;
            }
        }
        if gw.settings.eject_on_failure && gw.may_eject_passively() {
            gw.mark_unhealthy(i, "request_failure");
        }
    }
    gw.metrics
        .requests
        .get_or_create(&OutcomeLabel { outcome: "failure" })
        .inc();
    match tried.last() {
        Some(i) => {
            let b = &gw.backends[*i].labels;
            (
                status,
                [
                    ("x-f3-cloud", b.cloud.clone()),
                    ("x-f3-node", b.node.clone()),
                    ("x-f3-attempts", tried.len().to_string()),
                ],
                "{\"status\":\"failed\"}",
            )
                .into_response()
        }
        None => (status, "{\"status\":\"no backend\"}").into_response(),
    }
}

async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.backends.iter().any(|b| b.healthy.load(Relaxed)) {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no healthy backend\n").into_response()
    }
}

/// `GET /fingerprint`: the stack fingerprint recomputed now, `{"fingerprint": "sha256:…"}`.
async fn fingerprint(inventory: std::path::PathBuf) -> Response {
    let computed = tokio::task::spawn_blocking(move || {
        let inv = crate::Inventory::read(&inventory)?;
        crate::current_fingerprint(&inv)
    })
    .await;
    match computed {
        Ok(Ok(fp)) => axum::Json(serde_json::json!({ "fingerprint": fp })).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn health_loop(gw: Arc<Gateway>, i: usize) {
    let mut ticker = tokio::time::interval(gw.settings.health_interval());
    // Skip keeps every backend's checks on the same grid (all loops start together), so the
    // checks of one round go out and come back in one wake-up of the gateway, not six.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let backend = &gw.backends[i];
    loop {
        ticker.tick().await;
        let check = async {
            let resp = gw.client.get(backend.health_url.clone()).send().await?;
            let ok = resp.status().is_success();
            resp.bytes().await?;
            Ok::<_, reqwest::Error>(ok)
        };
        let check = tokio::time::timeout(gw.settings.health_timeout(), check).await;
        if matches!(check, Ok(Ok(true))) {
            backend.failed_checks.store(0, Relaxed);
            let good = backend.good_checks.fetch_add(1, Relaxed) + 1;
            if good >= gw.settings.healthy_threshold {
                gw.mark_healthy(i);
            }
        } else {
            backend.good_checks.store(0, Relaxed);
            let failed = backend.failed_checks.fetch_add(1, Relaxed) + 1;
            if failed >= gw.settings.unhealthy_threshold {
                gw.mark_unhealthy(i, "health_check");
            }
        }
    }
}
