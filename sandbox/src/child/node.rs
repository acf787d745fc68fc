//! A payment-API node of one cloud's cluster: accepts `POST /payments`, "processes" each payment
//! for a fixed time and answers `200` with the serving cloud and node.
//!
//! Frozen with SIGSTOP it stops answering (connections queue in the kernel), which is how the local
//! fault driver partitions a cloud; SIGKILL removes it until `restart_process`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::CommonArgs;

/// `f3-sandbox node`: one payment-API node.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Cloud this node belongs to.
    #[arg(long)]
    cloud: String,
    /// Processing time of one payment, in milliseconds.
    #[arg(long, default_value_t = 2)]
    latency_ms: u64,
}

struct Node {
    cloud: String,
    name: String,
    latency: Duration,
    payments: Counter,
}

/// Runs the node until killed.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    super::init_logging();
    let mut registry = Registry::default();
    let payments = Counter::default();
    registry.register(
        "payment_node_payments",
        "Payments processed by this node",
        payments.clone(),
    );
    let node = Arc::new(Node {
        cloud: args.cloud.clone(),
        name: args.common.name.clone(),
        latency: Duration::from_millis(args.latency_ms),
        payments,
    });
    let app = Router::new()
        .route("/payments", post(pay))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(node)
        .merge(super::base_router(registry));
    tracing::info!(stack = %args.common.stack, node = %args.common.name, port = args.common.port, "Node listening.");
    super::block_on(super::serve(args.common.port, app))?
}

async fn pay(State(node): State<Arc<Node>>, _body: Bytes) -> impl IntoResponse {
    tokio::time::sleep(node.latency).await;
    node.payments.inc();
    (
        [
            ("x-f3-cloud", node.cloud.clone()),
            ("x-f3-node", node.name.clone()),
        ],
        "{\"status\":\"accepted\"}",
    )
}
