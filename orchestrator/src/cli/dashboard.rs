//! `f3-chaos dashboard --listen 127.0.0.1:7071`: serve the read-only dashboard from the store
//! on its own, without a daemon (the daemon serves the same [`crate::dashboard::router`] too).

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::dashboard::{DashboardState, router};
use crate::exit_codes;

/// Arguments of `f3-chaos dashboard`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct DashboardArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7071")]
    pub listen: SocketAddr,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
}

/// Runs the server until Ctrl-C / SIGTERM; returns the exit code.
pub fn execute(args: DashboardArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: DashboardArgs) -> anyhow::Result<u8> {
    // The library's names make a mistyped scenario or team a 404 with a did-you-mean; its
    // config is the one the pages use. Without a readable library, the config alone (or none)
    // still serves what the history holds.
    let (config, known) = match crate::scenario::load_runnable(&args.cfg.config) {
        Ok(runnable) => {
            let known = crate::dashboard::KnownNames::of(&runnable.library);
            (Some(runnable.library.config), Some(known))
        }
        Err(library_err) => {
            let config = crate::config::load(&args.cfg.config);
            // Said on stderr: stdout's first line is the address (scripts read it).
            match &config {
                Ok(_) => eprintln!(
                    "warning: the library of {} does not load; the pages show the history \
                     without the library's scenarios:\n{library_err}",
                    args.cfg.config.display()
                ),
                Err(config_err) => eprintln!(
                    "warning: the config {} does not load; the pages show the history without \
                     display names, stacks or the config's zone and window:\n{config_err}",
                    args.cfg.config.display()
                ),
            }
            (config.ok(), None)
        }
    };
    let timezone = config
        .as_ref()
        .map_or(chrono_tz::Europe::London, |c| c.timezone);
    let store = args.cfg.open_store(config.as_ref()).await?;
    let mut state = DashboardState::new(store, timezone)
        .context("compiling the dashboard templates")?
        .with_window(config.as_ref().map(|c| c.window).unwrap_or_default());
    if let Some(known) = known {
        state = state.with_known(known);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("Dashboard on http://{addr}/ (times in {timezone})");
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(exit_codes::PASSED)
}
