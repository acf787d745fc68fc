//! The processes a stack is made of, as hidden subcommands of the same binary
//! (`f3-sandbox node|gateway|simulator …`). Each runs a tokio current-thread runtime: one core's
//! worth of work at most, and no thread pool idling.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use prometheus_client::registry::Registry;

pub mod gateway;
pub mod node;
pub mod simulator;

/// Arguments every child process has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The stack directory: marks the process as belonging to that stack (`down` looks for it).
    #[arg(long)]
    pub stack_dir: PathBuf,
    /// Stack name.
    #[arg(long)]
    pub stack: String,
    /// Process name within the stack.
    #[arg(long)]
    pub name: String,
    /// Loopback port to listen on.
    #[arg(long)]
    pub port: u16,
}

/// Runs `fut` on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fut))
}

/// Serves `app` on 127.0.0.1:`port` with TCP_NODELAY (small request/response pairs on keep-alive
/// connections must not wait for Nagle) until the process is signalled.
pub(crate) async fn serve(port: u16, app: Router) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// A router with `GET /metrics` (OpenMetrics text) for `registry`.
pub(crate) fn base_router(registry: Registry) -> Router {
    let registry = Arc::new(registry);
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        [(
                            CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response(),
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
}

/// Log setup for child processes: plain text on stderr (redirected to the process's log file).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("F3_SANDBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
