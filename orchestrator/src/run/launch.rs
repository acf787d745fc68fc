//! What every way of starting a run needs besides the [`Runner`]: the fault driver of a
//! configured stack (local sandbox or Chaos Mesh), its SLO source, and the Alertmanager silencer
//! and Grafana annotator of its fault windows. One place, shared by `f3-chaos run`, the daemon's
//! nights and the HTTP API, so a run behaves the same however it was started.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::{RunEvent, Runner};
use crate::assert::{PrometheusClient, SloError};
use crate::config::{Config, DriverConfig, Stack};
use crate::fault::{
    ChaosMeshDriver, FaultContext, FaultDriver, FaultError, FaultHandle, LoadGenerator, LocalDriver,
};
use crate::notify::alertmanager::Silencer;
use crate::notify::grafana::GrafanaAnnotator;
use crate::scenario::{Check, FaultStep, Scenario};
use crate::store::Store;

/// Timeout of one SLO query, end to end (the same as `f3-chaos run`).
pub const SLO_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stack cannot be driven.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The stack's fault driver cannot be set up (e.g. no usable kubeconfig context).
    #[error("stack `{stack}`: {message}")]
    Driver {
        /// Stack name.
        stack: String,
        /// Why.
        message: String,
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
    /// The stack's Alertmanager URL is not usable.
    #[error("stack `{stack}`: Alertmanager: {message}")]
    Alertmanager {
        /// Stack name.
        stack: String,
        /// Why.
        message: String,
    },
}

/// The fault driver (and load generator) of a stack, whichever kind its config names.
pub enum StackDriver {
    /// The bundled sandbox (`driver.kind: local`).
    Local(LocalDriver),
    /// Kubernetes with Chaos Mesh (`driver.kind: chaos-mesh`).
    ChaosMesh(Box<ChaosMeshDriver>),
}

/// The fault driver (and load generator) of `stack`.
///
/// # Errors
/// [`LaunchError::Driver`] when the Chaos Mesh driver cannot be built from the stack's config.
pub fn driver_for(stack: &Stack) -> Result<StackDriver, LaunchError> {
    match &stack.driver {
        DriverConfig::Local {
            sandbox_stack,
            state_dir,
        } => Ok(StackDriver::Local(LocalDriver::new(
            sandbox_stack,
            state_dir.clone(),
        ))),
        DriverConfig::ChaosMesh { .. } => ChaosMeshDriver::new(stack)
            .map(|d| StackDriver::ChaosMesh(Box::new(d)))
            .map_err(|e| LaunchError::Driver {
                stack: stack.name.clone(),
                message: e.to_string(),
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

/// Everything a [`Runner`] needs for one stack.
pub struct StackTools {
    /// The fault driver and load generator.
    pub driver: StackDriver,
    /// The SLO source (the stack's Prometheus).
    pub slo: PrometheusClient,
    /// Silences the stack's alerts while faults are active (when `alertmanagerUrl` is set).
    pub silencer: Option<Silencer>,
    /// Annotates fault windows in Grafana (when `grafana` is set).
    pub annotator: Option<GrafanaAnnotator>,
}

impl StackTools {
    /// Builds the tools of `stack` (secrets such as the Grafana token from the environment).
    ///
    /// # Errors
    /// [`LaunchError`] naming the stack and what is unusable.
    pub fn for_stack(stack: &Stack) -> Result<StackTools, LaunchError> {
        Ok(StackTools {
            driver: driver_for(stack)?,
            slo: slo_for(stack)?,
            silencer: Silencer::for_stack(stack).map_err(|e| LaunchError::Alertmanager {
                stack: stack.name.clone(),
                message: e.to_string(),
            })?,
            annotator: GrafanaAnnotator::for_stack(stack, &crate::notify::process_env()),
        })
    }

    /// A runner on these tools.
    pub fn runner<'a>(
        &'a self,
        store: &'a Store,
        events: Option<UnboundedSender<RunEvent>>,
        cancel: CancellationToken,
    ) -> Runner<'a, StackDriver, PrometheusClient> {
        Runner::new(store, &self.driver, &self.slo, events, cancel)
            .with_silencer(self.silencer.clone())
            .with_annotator(self.annotator.clone())
    }
}

impl FaultDriver for StackDriver {
    fn name(&self) -> &'static str {
        match self {
            StackDriver::Local(d) => d.name(),
            StackDriver::ChaosMesh(d) => d.name(),
        }
    }

    async fn claim(&self, holder: &str) -> Result<crate::fault::TargetClaim, FaultError> {
        match self {
            StackDriver::Local(d) => d.claim(holder).await,
            StackDriver::ChaosMesh(d) => d.claim(holder).await,
        }
    }

    async fn preflight(&self, faults: &[FaultStep]) -> Result<(), FaultError> {
        match self {
            StackDriver::Local(d) => d.preflight(faults).await,
            StackDriver::ChaosMesh(d) => d.preflight(faults).await,
        }
    }

    fn describe(&self, fault: &FaultStep) -> Result<serde_json::Value, FaultError> {
        match self {
            StackDriver::Local(d) => d.describe(fault),
            StackDriver::ChaosMesh(d) => d.describe(fault),
        }
    }

    async fn inject(
        &self,
        fault: &FaultStep,
        ctx: &FaultContext,
    ) -> Result<FaultHandle, FaultError> {
        match self {
            StackDriver::Local(d) => d.inject(fault, ctx).await,
            StackDriver::ChaosMesh(d) => d.inject(fault, ctx).await,
        }
    }

    async fn revert(&self, handle: &FaultHandle) -> Result<(), FaultError> {
        match self {
            StackDriver::Local(d) => d.revert(handle).await,
            StackDriver::ChaosMesh(d) => d.revert(handle).await,
        }
    }

    async fn orphans(&self) -> Result<Vec<FaultHandle>, FaultError> {
        match self {
            StackDriver::Local(d) => d.orphans().await,
            StackDriver::ChaosMesh(d) => d.orphans().await,
        }
    }

    async fn fingerprint(&self) -> Result<String, FaultError> {
        match self {
            StackDriver::Local(d) => d.fingerprint().await,
            StackDriver::ChaosMesh(d) => d.fingerprint().await,
        }
    }

    fn changed_objects(&self, before: &str, after: &str) -> Vec<String> {
        match self {
            StackDriver::Local(d) => d.changed_objects(before, after),
            StackDriver::ChaosMesh(d) => d.changed_objects(before, after),
        }
    }
}

impl LoadGenerator for StackDriver {
    async fn set_tps(&self, tps: f64) -> Result<(), FaultError> {
        match self {
            StackDriver::Local(d) => d.set_tps(tps).await,
            StackDriver::ChaosMesh(d) => d.set_tps(tps).await,
        }
    }

    fn load_check(&self, tps: f64) -> Check {
        match self {
            StackDriver::Local(d) => d.load_check(tps),
            StackDriver::ChaosMesh(d) => d.load_check(tps),
        }
    }
}

/// Picks the stack of a run — the one asked for (it must exist and be eligible), else the only
/// eligible one — for every edge that starts runs (`f3-chaos run`, the API).
///
/// # Errors
/// A sentence for the user: unknown stack (with a did-you-mean), not eligible (production needs
/// `allowProduction`), or no / several eligible stacks.
pub fn choose_stack<'a>(
    scenario: &Scenario,
    config: &'a Config,
    asked: Option<&str>,
) -> Result<&'a crate::config::Stack, String> {
    let eligible = &scenario.targets.eligible_stacks;
    let name = match asked {
        Some(name) => {
            if !config.stacks.contains_key(name) {
                let known: Vec<String> = config.stacks.keys().cloned().collect();
                return Err(match crate::scenario::yaml::closest(name, &known) {
                    Some(guess) => format!("unknown stack `{name}`: did you mean `{guess}`?"),
                    None => format!(
                        "unknown stack `{name}` (stacks in this config: {})",
                        known.join(", ")
                    ),
                });
            }
            if !eligible.iter().any(|s| s == name) {
                return Err(format!(
                    "scenario `{}` may not run on stack `{name}` (eligible: {}){}",
                    scenario.name,
                    if eligible.is_empty() {
                        "none".into()
                    } else {
                        eligible.join(", ")
                    },
                    if config
                        .stacks
                        .get(name)
                        .is_some_and(|s| s.environment == crate::model::Environment::Production)
                    {
                        "; production stacks need `allowProduction: true` in the scenario's targets"
                    } else {
                        ""
                    }
                ));
            }
            name
        }
        None => match eligible.as_slice() {
            [only] => only.as_str(),
            [] => {
                return Err(format!(
                    "scenario `{}` has no eligible stack in this config",
                    scenario.name
                ));
            }
            many => {
                return Err(format!(
                    "choose a stack with --stack (eligible: {})",
                    many.join(", ")
                ));
            }
        },
    };
    config
        .stacks
        .get(name)
        .ok_or_else(|| format!("unknown stack `{name}`"))
}
