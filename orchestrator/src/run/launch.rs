//! The one launcher: how `f3-chaos run`, the HTTP API and the daemon's nights start a run, so a
//! run behaves the same however it was started. [`launch`] applies the production rule, builds
//! the stack's tools — the fault driver (local sandbox or Chaos Mesh), its SLO source, the
//! Alertmanager silence and Grafana annotation hooks of its fault windows — adds the metrics
//! reporter where the process serves metrics, and runs the [`Runner`] (which waits for the stack
//! lease and the target's claim as long as [`RunOptions::wait_for_stack`] allows). A busy stack
//! comes back as a [`RunError`] for which [`RunError::is_stack_busy`] holds; each edge maps it
//! (exit 7, HTTP 409, a re-plan).
//!
//! What stays with the edges: choosing the stack ([`choose_stack`]), who started the run and
//! through what (`started_by`, `trigger` in [`RunOptions`]), the API's roles, and how the run's
//! events are shown (the reporters they pass).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::hooks::{AnnotationHook, SilenceHook};
use super::{MetricsReporter, Reporters, RunError, RunOptions, RunReport, Runner};
use crate::assert::{PrometheusClient, SloError};
use crate::config::{Config, DriverConfig, Stack};
use crate::fault::{
    ChaosMeshDriver, FaultContext, FaultDriver, FaultError, FaultHandle, LoadGenerator, LocalDriver,
};
use crate::integrations::alertmanager::{AlertmanagerError, Silencer};
use crate::integrations::grafana::GrafanaAnnotator;
use crate::metrics::Metrics;
use crate::model::Environment;
use crate::scenario::{Check, FaultStep, Scenario};
use crate::store::Store;

/// Timeout of one SLO query, end to end (the same as `f3-chaos run`).
pub const SLO_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stack cannot be driven.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The stack's fault driver cannot be set up (e.g. no usable kubeconfig context).
    #[error("stack `{stack}`: its fault driver cannot be set up")]
    Driver {
        /// Stack name.
        stack: String,
        /// Why (its causes print as `caused by:`).
        #[source]
        source: Box<crate::fault::chaos_mesh::ChaosMeshError>,
    },
    /// The stack's Prometheus URL is not usable.
    #[error("stack `{stack}`: its Prometheus URL is not usable")]
    Prometheus {
        /// Stack name.
        stack: String,
        /// Why.
        #[source]
        source: SloError,
    },
    /// The stack's Alertmanager URL is not usable.
    #[error("stack `{stack}`: its Alertmanager URL is not usable")]
    Alertmanager {
        /// Stack name.
        stack: String,
        /// Why.
        #[source]
        source: Box<AlertmanagerError>,
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
            .map_err(|source| LaunchError::Driver {
                stack: stack.name.clone(),
                source: Box::new(source),
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
            silencer: Silencer::for_stack(stack).map_err(|source| LaunchError::Alertmanager {
                stack: stack.name.clone(),
                source: Box::new(source),
            })?,
            annotator: GrafanaAnnotator::for_stack(stack, &crate::notify::process_env()),
        })
    }

    /// A runner of one run on these tools: events to `reporters`, the silence and annotation
    /// hooks when the stack configures them.
    pub fn runner<'a>(
        &'a self,
        store: &'a Store,
        reporters: Reporters,
        cancel: CancellationToken,
    ) -> Runner<'a, StackDriver, PrometheusClient> {
        let mut runner = Runner::new(store, &self.driver, &self.slo, reporters, cancel);
        if let Some(silencer) = &self.silencer {
            runner = runner.with_hook(SilenceHook::new(silencer.clone()));
        }
        if let Some(annotator) = &self.annotator {
            runner = runner.with_hook(AnnotationHook::new(annotator.clone()));
        }
        runner
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
                return Err(match crate::input::yaml::closest(name, &known) {
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

/// One run to start, as every edge asks for it.
pub struct Launch<'a> {
    /// Where the run is recorded (and the stack lease held).
    pub store: &'a Store,
    /// The stack (from [`choose_stack`] or the night's plan).
    pub stack: &'a Stack,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Run id, `started_by`, `trigger`, lease wait, night.
    pub opts: RunOptions,
    /// Who hears the run's events (terminal, live API stream); [`launch`] adds metrics.
    pub reporters: Reporters,
    /// The process's metrics, when it serves `/metrics` (the daemon and its API): SLO query
    /// latency, lease wait and refusals, runs by outcome.
    pub metrics: Option<Metrics>,
    /// Ctrl-C, SIGTERM, shutdown, window end: reverts and ends the run `interrupted`.
    pub cancel: CancellationToken,
}

/// The production rule: a production stack runs only scenarios that opt in
/// (`spec.targets.allowProduction: true`) — checked here whatever the edge checked before.
///
/// # Errors
/// [`RunError::ProductionNotAllowed`].
pub fn production_rule(scenario: &Scenario, stack: &Stack) -> Result<(), RunError> {
    if stack.environment == Environment::Production && !scenario.targets.allow_production {
        return Err(RunError::ProductionNotAllowed {
            scenario: scenario.name.clone(),
            stack: stack.name.clone(),
        });
    }
    Ok(())
}

/// The capability rule: `stack`'s driver must be able to inject every fault of `scenario`
/// ([`crate::fault::capabilities::incapable`]) — checked before the lease, the Given steps or
/// any fault, so a run that could only fail at its first When step never starts.
///
/// # Errors
/// [`RunError::DriverCannot`] naming each step and what the driver lacks.
pub fn capability_rule(scenario: &Scenario, stack: &Stack) -> Result<(), RunError> {
    let missing = crate::fault::capabilities::incapable(stack, scenario);
    if missing.is_empty() {
        return Ok(());
    }
    Err(RunError::DriverCannot {
        scenario: scenario.name.clone(),
        stack: stack.name.clone(),
        missing: missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The run's options on `stack`: queries step at the stack's own scrape interval
/// ([`Stack::scrape_interval`]) — a finer step would find every window "stale" on a stack that
/// scrapes every 15 s.
pub(crate) fn options_for(stack: &Stack, opts: RunOptions) -> RunOptions {
    RunOptions {
        query_step: stack.scrape_interval,
        ..opts
    }
}

/// `reporters` with the process's [`MetricsReporter`] ahead of them: by the time a live client
/// hears `run-finished` (and reads `/metrics`), `f3_chaos_runs_total` counts the run.
pub(crate) fn counted_first(reporters: Reporters, metrics: &Metrics) -> Reporters {
    reporters.with_first(MetricsReporter::new(metrics.clone()))
}

/// Starts and runs `launch` to its end (see the module docs).
///
/// # Errors
/// Only before the run exists: [`RunError::ProductionNotAllowed`], [`RunError::DriverCannot`], [`RunError::Launch`] (the
/// stack's tools cannot be built), a busy stack ([`RunError::is_stack_busy`]) or an unusable
/// store. Everything after that is an outcome in the report.
pub async fn launch(launch: Launch<'_>) -> Result<RunReport, RunError> {
    let Launch {
        store,
        stack,
        scenario,
        opts,
        mut reporters,
        metrics,
        cancel,
    } = launch;
    production_rule(scenario, stack)?;
    capability_rule(scenario, stack)?;
    let mut tools = StackTools::for_stack(stack)?;
    if let Some(metrics) = &metrics {
        tools.slo = tools.slo.with_observer(metrics.query_observer());
        reporters = counted_first(reporters, metrics);
    }
    let runner = tools.runner(store, reporters, cancel);
    let opts = options_for(stack, opts);
    let result = runner.run(scenario, &stack.name, &opts).await;
    if let (Err(e), Some(metrics)) = (&result, &metrics)
        && e.is_stack_busy()
    {
        metrics.lease_refused(&stack.name);
    }
    result
}
