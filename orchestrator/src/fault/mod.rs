//! Fault drivers: how a [`Fault`] becomes a real disturbance on a stack, and how it is undone.
//!
//! Safety contract of every driver (DESIGN.md "Central traits"):
//! - every injected fault carries a TTL that the *target* enforces on its own (Chaos Mesh
//!   `spec.duration`; a detached watchdog process for local faults), so a dead orchestrator never
//!   leaves a fault behind;
//! - `revert` is idempotent: reverting something already gone is success;
//! - `orphans` lists faults that look abandoned, for the start-up sweep.
//!
//! The runner records each fault in the store's fault ledger *before* calling `inject`.

use std::future::Future;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::scenario::{Check, FaultStep};

pub mod capabilities;
pub mod chaos_mesh;
pub mod local;
pub mod watchdog;

pub use chaos_mesh::ChaosMeshDriver;
pub use local::LocalDriver;

/// Errors of fault drivers.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The driver cannot do this kind of fault on this stack.
    #[error("the {driver} driver does not support `{kind}` faults: {hint}")]
    Unsupported {
        /// Driver name.
        driver: &'static str,
        /// Fault kind (`network-delay`, …).
        kind: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// A selector matched nothing: refusing to inject a fault with no blast radius is safer than
    /// reporting a pass for a fault that never happened.
    #[error("selector {selector} matches no workload on stack `{stack}`")]
    EmptySelection {
        /// The selector, rendered.
        selector: String,
        /// Stack name.
        stack: String,
    },
    /// The target is not reachable or not ready (preflight failed).
    #[error("stack `{stack}` is not ready: {reason}")]
    NotReady {
        /// Stack name.
        stack: String,
        /// Why.
        reason: String,
    },
    /// Injecting failed; nothing (or only part) was injected — the runner reverts what was.
    #[error("injecting `{step}` failed: {reason}")]
    Inject {
        /// Step name.
        step: String,
        /// Why.
        reason: String,
    },
    /// Reverting failed; the fault's TTL still ends it.
    #[error("reverting `{what}` failed: {reason} (the fault's TTL still ends it)")]
    Revert {
        /// What could not be reverted.
        what: String,
        /// Why.
        reason: String,
    },
    /// Setting or verifying load failed.
    #[error("load generator: {0}")]
    Load(String),
    /// Another run holds the target itself (see [`FaultDriver::claim`]), whatever store it uses.
    #[error("stack `{stack}` is claimed at the target by {holder}")]
    TargetBusy {
        /// Stack name.
        stack: String,
        /// The holder, as it described itself (run id, scenario, pid, host).
        holder: String,
    },
}

/// A run's hold on its target ([`FaultDriver::claim`]): [`TargetClaim::release`] gives it back
/// and waits until the target has it; dropping it releases it too, as best it can (a guard that
/// must call an API can only spawn the call, which a runtime shutting down may never make).
#[derive(Default)]
pub struct TargetClaim(Option<Box<dyn ClaimGuard>>);

/// What a [`TargetClaim`] holds: released on drop, or by [`ClaimGuard::release`] when the release
/// must be awaited (e.g. deleting a Kubernetes Lease).
pub trait ClaimGuard: Send + Sync + 'static {
    /// Releases the claim and resolves once the target has it back. Default: drop it.
    fn release(self: Box<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        drop(self);
        Box::pin(async {})
    }
}

/// The sandbox's `flock`: the kernel releases it when the file closes.
impl ClaimGuard for f3_sandbox::ExperimentClaim {}

impl TargetClaim {
    /// A claim holding `guard` until released or dropped.
    pub fn holding(guard: impl ClaimGuard) -> Self {
        Self(Some(Box::new(guard)))
    }

    /// Releases the claim and waits until the target has it back.
    pub async fn release(self) {
        if let Some(guard) = self.0 {
            guard.release().await;
        }
    }
}

/// The text of `error` and every cause under it (`std::error::Error::source`), joined with `: `,
/// a cause left out when the text so far already shows it (`ChaosMeshError::Kube` prints its
/// `kube::Error`; the hyper or I/O error under that still appears). [`FaultError`]'s reasons are
/// text — they are stored in the ledger, step messages and the watchdog's spec — so a driver builds
/// them with this, and the Kubernetes or HTTP cause at the bottom of the chain is never cut off.
pub fn cause_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

impl FaultError {
    /// Whether the error describes the target's state rather than the scenario or the driver: a
    /// stack that is not ready or a selector that matches nothing. The runner ends such a
    /// preflight `precondition-failed` (nothing was touched; the stack, not the scenario, must
    /// change), any other preflight error `error`.
    pub fn is_target_state(&self) -> bool {
        matches!(
            self,
            FaultError::NotReady { .. } | FaultError::EmptySelection { .. }
        )
    }
}

/// What a driver needs to know about the fault it injects.
#[derive(Debug, Clone)]
pub struct FaultContext {
    /// The run the fault belongs to (labels/annotations on the target carry it).
    pub run_id: Uuid,
    /// The ledger entry id written before injection.
    pub ledger_id: Uuid,
    /// Index of the When step in the scenario.
    pub step_index: usize,
    /// Time-to-live enforced by the target, from the moment of injection: the declared fault
    /// duration plus a small grace period (seconds scale).
    pub ttl: std::time::Duration,
}

/// A serialisable reference to an injected fault, stored in the fault ledger so that another
/// process (a later start-up sweep) can revert it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultHandle {
    /// Driver that created it (`local`, `chaos-mesh`).
    pub driver: String,
    /// Human description, e.g. `SIGSTOP gcp-node-0 (pid 4242), gcp-node-1 (pid 4243)`.
    pub description: String,
    /// Driver-specific data needed to revert.
    pub data: serde_json::Value,
}

/// A driver that injects and reverts faults on one stack.
pub trait FaultDriver: Send + Sync {
    /// Short name stored in the ledger (`local`, `chaos-mesh`).
    fn name(&self) -> &'static str;

    /// Checks, before anything is touched, that every fault of `faults` can be injected (target
    /// reachable, kinds supported, selectors non-empty, blast radius within limits).
    fn preflight(
        &self,
        faults: &[FaultStep],
    ) -> impl Future<Output = Result<(), FaultError>> + Send;

    /// Describes what `inject` would do (stored in the ledger before injection; `--dry-run`).
    fn describe(&self, fault: &FaultStep) -> Result<serde_json::Value, FaultError>;

    /// Injects the fault; its TTL (`ctx.ttl`) is enforced by the target from now on.
    fn inject(
        &self,
        fault: &FaultStep,
        ctx: &FaultContext,
    ) -> impl Future<Output = Result<FaultHandle, FaultError>> + Send;

    /// Reverts a fault. Idempotent: a fault already gone (expired, reverted) is success.
    fn revert(&self, handle: &FaultHandle) -> impl Future<Output = Result<(), FaultError>> + Send;

    /// Claims the target for the run described by `holder` (one line: run id, scenario, pid,
    /// host) for as long as the returned claim lives, *at the target itself*, so that runs
    /// recorded in different stores (or by different daemons) cannot overlap on one stack. The
    /// store's lease stays the first gate; this is the second. Default: nothing to claim.
    ///
    /// # Errors
    /// [`FaultError::TargetBusy`] naming the holder; other errors when the target cannot say.
    fn claim(&self, holder: &str) -> impl Future<Output = Result<TargetClaim, FaultError>> + Send {
        let _ = holder;
        async { Ok(TargetClaim::default()) }
    }

    /// Faults on this stack that look abandoned (for the start-up sweep).
    fn orphans(&self) -> impl Future<Output = Result<Vec<FaultHandle>, FaultError>> + Send;

    /// A fingerprint of what is deployed on the stack; a change during a run voids it.
    fn fingerprint(&self) -> impl Future<Output = Result<String, FaultError>> + Send;

    /// The objects that differ between two fingerprints of this driver, named for people
    /// (e.g. `gke-uat-alpha/payments/Deployment/ledger`), so a void run says what changed.
    /// Empty when the driver's fingerprint cannot name objects (the default).
    fn changed_objects(&self, before: &str, after: &str) -> Vec<String> {
        let _ = (before, after);
        Vec::new()
    }
}

/// The load generator of a stack (payment simulators): the Given "load" step.
pub trait LoadGenerator: Send + Sync {
    /// Sets the target rate in payments per second.
    fn set_tps(&self, tps: f64) -> impl Future<Output = Result<(), FaultError>> + Send;

    /// A check that holds once the observed rate has reached `tps` (e.g. ≥ 90 % of it).
    fn load_check(&self, tps: f64) -> Check;
}

#[cfg(test)]
mod cause_tests {
    use super::cause_text;

    #[derive(Debug, thiserror::Error)]
    #[error("create NetworkChaos uat-alpha/x: {source}")]
    struct Outer {
        #[source]
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("error trying to connect")]
    struct Middle {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_cause_is_named_once() {
        let error = Outer {
            source: Middle {
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ),
            },
        };
        assert_eq!(
            cause_text(&error),
            "create NetworkChaos uat-alpha/x: error trying to connect: connection refused"
        );
    }
}
