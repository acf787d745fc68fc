//! What every way of starting a run needs besides the [`Runner`](super::Runner): the fault driver
//! and the SLO source of a configured stack. Shared by the HTTP API (`crate::api`) and, later, the
//! daemon and `f3-chaos run`.

use std::time::Duration;

use crate::assert::{PrometheusClient, SloError};
use crate::config::{DriverConfig, Stack};
use crate::fault::LocalDriver;

/// Timeout of one SLO query, end to end (the same as `f3-chaos run`).
pub const SLO_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stack cannot be driven by this build.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The stack uses a driver this build does not have yet.
    #[error("stack `{stack}` uses the {driver} driver, which is not available in this build yet")]
    DriverUnavailable {
        /// Stack name.
        stack: String,
        /// Driver kind (`chaos-mesh`).
        driver: &'static str,
    },
    /// The stack's Prometheus URL is not usable.
    #[error("stack `{stack}`: {source}")]
    Prometheus {
        /// Stack name.
        stack: String,
        /// Why.
        #[source]
        source: SloError,
    },
}

/// The fault driver (and load generator) of `stack`.
///
/// # Errors
/// [`LaunchError::DriverUnavailable`] for Chaos Mesh stacks.
pub fn driver_for(stack: &Stack) -> Result<LocalDriver, LaunchError> {
    match &stack.driver {
        DriverConfig::Local {
            sandbox_stack,
            state_dir,
        } => Ok(LocalDriver::new(sandbox_stack, state_dir.clone())),
        DriverConfig::ChaosMesh { .. } => Err(LaunchError::DriverUnavailable {
            stack: stack.name.clone(),
            driver: "chaos-mesh",
        }),
    }
}

/// The Prometheus client that judges runs on `stack` ([`SLO_QUERY_TIMEOUT`] per query).
///
/// # Errors
/// [`LaunchError::Prometheus`] for an unusable `prometheusUrl`.
pub fn slo_for(stack: &Stack) -> Result<PrometheusClient, LaunchError> {
    PrometheusClient::new(&stack.prometheus_url, SLO_QUERY_TIMEOUT).map_err(|source| {
        LaunchError::Prometheus {
            stack: stack.name.clone(),
            source,
        }
    })
}
