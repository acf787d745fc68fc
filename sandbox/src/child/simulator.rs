//! The payment simulator: open-loop load against the gateway at a target rate (default 300/s).
//!
//! Fixed-rate ticks (every 50 ms by default, each sending the payments due) fire payments whether or not
//! earlier ones have been answered (no coordinated omission: a slow platform sees the same arrival
//! rate and the latency histogram shows the wait).
//! `GET /tps` returns `{"tps": 300.0}`; `POST /tps` with that body changes the rate (0 pauses).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::CommonArgs;

/// Latency buckets in seconds: fine around the 5 ms – 2.5 s range SLOs are written in.
pub const LATENCY_BUCKETS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2,
    0.25, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0,
];

/// Most payments in flight at once; beyond this a tick is shed (counted as a failure).
const MAX_IN_FLIGHT: i64 = 20_000;

/// `f3-sandbox simulator`: the load generator.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Gateway base URL.
    #[arg(long)]
    gateway_url: String,
    /// Initial payments per second.
    #[arg(long, default_value_t = 300.0)]
    tps: f64,
    /// Load tick: every tick sends the payments due since the last one.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "50ms")]
    tick: Duration,
    /// Client-side timeout of one payment.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    timeout: Duration,
}

/// Body of `GET`/`POST /tps`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Tps {
    /// Payments per second.
    pub tps: f64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaymentLabels {
    outcome: &'static str,
    cloud: &'static str,
}

struct Simulator {
    url: reqwest::Url,
    client: reqwest::Client,
    target: watch::Sender<f64>,
    payments: Family<PaymentLabels, Counter>,
    latency: Histogram,
    target_gauge: Gauge<f64, AtomicU64>,
    in_flight: Gauge,
    shed: Counter,
    sequence: AtomicU64,
}

/// Runs the simulator until killed.
pub fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    super::init_logging();
    anyhow::ensure!(valid_tps(args.tps), "--tps must be 0..=10000");
    let mut registry = Registry::default();
    let sim = Arc::new(Simulator {
        url: reqwest::Url::parse(&format!(
            "{}/payments",
            args.gateway_url.trim_end_matches('/')
        ))?,
        client: reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(args.timeout)
            .pool_idle_timeout(None)
            .build()?,
        target: watch::Sender::new(args.tps),
        payments: Family::default(),
        latency: Histogram::new(LATENCY_BUCKETS),
        target_gauge: Gauge::default(),
        in_flight: Gauge::default(),
        shed: Counter::default(),
        sequence: AtomicU64::new(0),
    });
    sim.target_gauge.set(args.tps);
    // Pre-create the series so rates exist from the first scrape (0 rather than absent).
    for cloud in ["gcp", "aws", "azure", "none"] {
        for outcome in ["success", "failure"] {
            let _ = sim
                .payments
                .get_or_create(&PaymentLabels { outcome, cloud });
        }
    }
    registry.register(
        "payments",
        "Payments sent by the simulator, by outcome (success, failure) and serving cloud (none: no answer)",
        sim.payments.clone(),
    );
    registry.register(
        "payment_latency_seconds",
        "End-to-end payment latency as the simulator sees it, in seconds (successes and failures)",
        sim.latency.clone(),
    );
    registry.register(
        "payment_simulator_target_tps",
        "Target payments per second",
        sim.target_gauge.clone(),
    );
    registry.register(
        "payment_simulator_in_flight",
        "Payments sent and not yet answered",
        sim.in_flight.clone(),
    );
    registry.register(
        "payment_simulator_shed",
        "Payments not sent because too many were in flight (also counted as failures)",
        sim.shed.clone(),
    );
    let app = Router::new()
        .route("/tps", get(get_tps).post(set_tps))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(Arc::clone(&sim))
        .merge(super::base_router(registry));
    tracing::info!(stack = %args.common.stack, port = args.common.port, tps = args.tps, "Simulator listening.");
    super::block_on(async move {
        tokio::spawn(load_loop(Arc::clone(&sim), args.tick));
        super::serve(args.common.port, app).await
    })?
}

fn valid_tps(tps: f64) -> bool {
    tps.is_finite() && (0.0..=10_000.0).contains(&tps)
}

async fn get_tps(State(sim): State<Arc<Simulator>>) -> Json<Tps> {
    Json(Tps {
        tps: *sim.target.borrow(),
    })
}

async fn set_tps(State(sim): State<Arc<Simulator>>, Json(body): Json<Tps>) -> Response {
    if !valid_tps(body.tps) {
        return (StatusCode::BAD_REQUEST, "tps must be 0..=10000\n").into_response();
    }
    sim.target.send_replace(body.tps);
    sim.target_gauge.set(body.tps);
    tracing::info!(tps = body.tps, "Target rate changed.");
    Json(body).into_response()
}

/// Fires payments at the target rate; restarts its ticker whenever the target changes.
///
/// One tick every `tick` (50 ms by default) sends the payments due in that tick (`tps × tick`,
/// the fractional remainder carried to the next tick): the rate is exact and the processes wake
/// up 100 times a second rather than once per payment, which keeps the sandbox's CPU low.
async fn load_loop(sim: Arc<Simulator>, tick: Duration) {
    let mut rx = sim.target.subscribe();
    loop {
        let tps = *rx.borrow_and_update();
        if tps <= 0.0 {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Below 1/tick payments per second, tick once per payment instead.
        let period = tick.max(Duration::from_secs_f64(1.0 / tps));
        let per_tick = tps * period.as_secs_f64();
        let mut due = 0.0_f64;
        let mut ticker = tokio::time::interval(period);
        // Burst: after a stall the missed ticks fire at once, keeping the load open-loop.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    due += per_tick;
                    while due >= 1.0 {
                        due -= 1.0;
                        fire(&sim);
                    }
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

fn fire(sim: &Arc<Simulator>) {
    if sim.in_flight.get() >= MAX_IN_FLIGHT {
        sim.shed.inc();
        sim.payments
            .get_or_create(&PaymentLabels {
                outcome: "failure",
                cloud: "none",
            })
            .inc();
        return;
    }
    sim.in_flight.inc();
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        let id = sim.sequence.fetch_add(1, Relaxed);
        let body = format!(
            "{{\"id\":{id},\"amount_pence\":{},\"scheme\":\"fps\"}}",
            100 + id % 9_900
        );
        let start = Instant::now();
        let result = async {
            let resp = sim
                .client
                .post(sim.url.clone())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            let ok = resp.status().is_success();
            let cloud = cloud_label(
                resp.headers()
                    .get("x-f3-cloud")
                    .and_then(|v| v.to_str().ok()),
            );
            resp.bytes().await?;
            Ok::<_, reqwest::Error>((ok, cloud))
        }
        .await;
        sim.latency.observe(start.elapsed().as_secs_f64());
        let labels = match result {
            Ok((true, cloud)) => PaymentLabels {
                outcome: "success",
                cloud,
            },
            Ok((false, cloud)) => PaymentLabels {
                outcome: "failure",
                cloud,
            },
            Err(_) => PaymentLabels {
                outcome: "failure",
                cloud: "none",
            },
        };
        sim.payments.get_or_create(&labels).inc();
        sim.in_flight.dec();
    });
}

fn cloud_label(header: Option<&str>) -> &'static str {
    match header {
        Some("gcp") => "gcp",
        Some("aws") => "aws",
        Some("azure") => "azure",
        _ => "none",
    }
}
