//! The local driver: faults on the bundled sandbox's processes.
//!
//! | fault | injection | revert | TTL (dead-man switch) |
//! |---|---|---|---|
//! | `network-partition`, `cloud-loss` | SIGSTOP the selected processes (they stop answering, as a partitioned cluster does) | SIGCONT | a detached watchdog process SIGCONTs them at the TTL, and so does the stack's own supervisor |
//! | `pod-kill` | SIGKILL the selected processes | the sandbox restarts them (`f3_sandbox::restart_process`) | the watchdog restarts them at the TTL, and so does the stack's own supervisor |
//!
//! Two dead-man switches, each enough alone: the watchdog (an f3-chaos process, started before the
//! fault) and the stack's supervisor (an `f3-sandbox` process started by `up`, which reads the
//! fault's record written before the fault; `f3_sandbox::faults`).
//! | `network-delay`, `stress` | not supported locally (preflight says so) | | |
//!
//! A partition freezes the selected processes completely, whatever `direction`/`target` say: on
//! one machine a frozen process is the closest honest model of "unreachable"; documented in
//! docs/drivers.md. Processes are identified by PID *and* start time, so a recycled PID is never
//! signalled.

use std::path::PathBuf;

use f3_sandbox::{Inventory, ProcessEntry, Role};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::watchdog::{self, ProcessId, UndoAction, WatchdogSpec};
use super::{FaultContext, FaultDriver, FaultError, FaultHandle, LoadGenerator};
use crate::scenario::{Check, Comparison, Fault, FaultStep, Labels};

/// Driver for one sandbox stack (`f3-sandbox up --stack NAME`).
#[derive(Debug, Clone)]
pub struct LocalDriver {
    stack: String,
    state_dir: PathBuf,
    http: reqwest::Client,
}

/// What the ledger keeps for a local fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocalFault {
    action: UndoAction,
    stack: String,
    state_dir: PathBuf,
    targets: Vec<ProcessId>,
    watchdog: Option<ProcessId>,
    /// The id of the fault's record for the stack's supervisor (`f3_sandbox::faults`); `None` for
    /// an orphan found by the sweep (and in handles written before the supervisor existed).
    #[serde(default)]
    record: Option<String>,
}

/// Why the local driver cannot inject `fault` at all, or `None` when it can (its
/// [`crate::fault::capabilities`]): `network-delay` and `stress` have no local mechanism.
pub fn unsupported(fault: &Fault) -> Option<FaultError> {
    match fault {
        Fault::NetworkDelay { .. } | Fault::Stress { .. } => Some(unsupported_kind(fault.kind())),
        Fault::NetworkPartition { .. } | Fault::CloudLoss { .. } | Fault::PodKill { .. } => None,
    }
}

fn unsupported_kind(kind: &'static str) -> FaultError {
    FaultError::Unsupported {
        driver: "local",
        kind,
        hint: if kind == "stress" {
            "run stress scenarios on a Chaos Mesh stack"
        } else {
            "run latency scenarios on a Chaos Mesh stack"
        },
    }
}

impl LocalDriver {
    /// A driver for sandbox stack `stack` whose state lives in `state_dir` (None = the sandbox
    /// default, `f3_sandbox::default_state_dir()`).
    pub fn new(stack: &str, state_dir: Option<PathBuf>) -> Self {
        Self {
            stack: stack.to_owned(),
            state_dir: state_dir.unwrap_or_else(f3_sandbox::default_state_dir),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    fn inventory(&self) -> Result<Inventory, FaultError> {
        f3_sandbox::load_inventory(&self.state_dir, &self.stack).map_err(|e| FaultError::NotReady {
            stack: self.stack.clone(),
            reason: crate::fault::cause_text(&e),
        })
    }

    /// Resolves a fault to its action and the processes it touches.
    fn resolve(
        &self,
        inventory: &Inventory,
        fault: &Fault,
    ) -> Result<(UndoAction, Vec<ProcessEntry>), FaultError> {
        let (action, selector, limit): (UndoAction, Labels, Option<u32>) = match fault {
            Fault::NetworkPartition { selector, .. } => {
                (UndoAction::Resume, selector.clone(), None)
            }
            Fault::CloudLoss { cloud } => (
                UndoAction::Resume,
                Labels::from([("cloud".to_owned(), cloud.as_str().to_owned())]),
                None,
            ),
            Fault::PodKill { selector, max_pods } => {
                (UndoAction::Restart, selector.clone(), *max_pods)
            }
            Fault::NetworkDelay { .. } | Fault::Stress { .. } => {
                return Err(unsupported_kind(fault.kind()));
            }
        };
        // Only payment nodes are fair game: breaking the gateway, simulator or Prometheus would
        // break the experiment's own instruments, not the platform.
        let mut selected: Vec<ProcessEntry> = inventory
            .select(&selector)
            .filter(|p| p.role == Role::PaymentNode)
            .cloned()
            .collect();
        if let Some(limit) = limit {
            selected.truncate(limit as usize);
        }
        if selected.is_empty() {
            return Err(FaultError::EmptySelection {
                selector: render_selector(&selector),
                stack: self.stack.clone(),
            });
        }
        Ok((action, selected))
    }

    fn simulator_url(&self) -> Result<String, FaultError> {
        let inventory = self.inventory()?;
        let simulator = inventory
            .processes
            .iter()
            .find(|p| p.role == Role::Simulator)
            .ok_or_else(|| {
                FaultError::Load(format!("sandbox stack `{}` has no simulator", self.stack))
            })?;
        Ok(format!("http://127.0.0.1:{}", simulator.port))
    }
}

fn render_selector(selector: &Labels) -> String {
    let pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(","))
}

fn describe_targets(verb: &str, targets: &[ProcessId]) -> String {
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("{} (pid {})", t.name, t.pid))
        .collect();
    format!("{verb} {}", names.join(", "))
}

impl FaultDriver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    /// A non-blocking `flock` on the sandbox stack's `experiment.lock` ([`f3_sandbox::claim`]):
    /// released by the kernel when this process exits, however it exits.
    async fn claim(&self, holder: &str) -> Result<super::TargetClaim, FaultError> {
        match f3_sandbox::claim_experiments(&self.state_dir, &self.stack, holder) {
            Ok(claim) => Ok(super::TargetClaim::holding(claim)),
            Err(f3_sandbox::ClaimError::Busy { holder }) => Err(FaultError::TargetBusy {
                stack: self.stack.clone(),
                holder,
            }),
            Err(e) => Err(FaultError::NotReady {
                stack: self.stack.clone(),
                reason: crate::fault::cause_text(&e),
            }),
        }
    }

    async fn preflight(&self, faults: &[FaultStep]) -> Result<(), FaultError> {
        let inventory = self.inventory()?;
        for step in faults {
            let (_, targets) = self.resolve(&inventory, &step.fault)?;
            for target in &targets {
                if ProcessId::of(&target.name, target.pid).is_none() {
                    return Err(FaultError::NotReady {
                        stack: self.stack.clone(),
                        reason: format!(
                            "process {} (pid {}) is not running",
                            target.name, target.pid
                        ),
                    });
                }
            }
        }
        // A fault already in place, whoever put it there (a dead run whose TTL has not come, a
        // run recorded in another store before it claimed, a hand-made SIGSTOP), would make this
        // experiment's results someone else's: refuse until the stack is clean.
        let frozen = frozen_payment_nodes(&inventory);
        let stack_dir = f3_sandbox::state::StackPaths::new(&self.state_dir, &self.stack).dir;
        let recorded = f3_sandbox::faults::recorded_faults(&stack_dir);
        if !frozen.is_empty() || !recorded.is_empty() {
            let mut in_place = Vec::new();
            if !frozen.is_empty() {
                in_place.push(describe_targets("frozen", &frozen));
            }
            for (_, record) in &recorded {
                let until = chrono::DateTime::from_timestamp_millis(record.deadline_unix_ms)
                    .map_or_else(
                        || "?".to_owned(),
                        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                in_place.push(format!("fault {} recorded until {until}", record.id));
            }
            return Err(FaultError::NotReady {
                stack: self.stack.clone(),
                reason: format!(
                    "faults are already in place on the stack ({}); they end at their TTL, or the next sweep reverts them",
                    in_place.join("; ")
                ),
            });
        }
        Ok(())
    }

    fn describe(&self, fault: &FaultStep) -> Result<serde_json::Value, FaultError> {
        let inventory = self.inventory()?;
        let (action, targets) = self.resolve(&inventory, &fault.fault)?;
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        Ok(serde_json::json!({
            "driver": "local",
            "stack": self.stack,
            "fault": fault.fault.kind(),
            "action": action,
            "processes": names,
            "duration": fault.duration.to_string(),
        }))
    }

    async fn inject(
        &self,
        fault: &FaultStep,
        ctx: &FaultContext,
    ) -> Result<FaultHandle, FaultError> {
        let inventory = self.inventory()?;
        let (action, selected) = self.resolve(&inventory, &fault.fault)?;
        let targets: Vec<ProcessId> = selected
            .iter()
            .filter_map(|p| ProcessId::of(&p.name, p.pid))
            .collect();
        if targets.len() != selected.len() {
            return Err(FaultError::Inject {
                step: fault.name.clone(),
                reason: "a selected process is not running".into(),
            });
        }
        // Dead-man switch first: the watchdog exists before the fault does.
        let spec = WatchdogSpec {
            deadline_unix_ms: (chrono::Utc::now()
                + chrono::Duration::from_std(ctx.ttl).unwrap_or_default())
            .timestamp_millis(),
            action,
            targets: targets.clone(),
            sandbox_state_dir: self.state_dir.clone(),
            sandbox_stack: self.stack.clone(),
            ledger_id: ctx.ledger_id,
        };
        let watchdog = watchdog::spawn(&spec).map_err(|e| FaultError::Inject {
            step: fault.name.clone(),
            reason: format!(
                "could not start the fault watchdog: {}",
                crate::fault::cause_text(&e)
            ),
        })?;
        // Second switch, independent of every f3-chaos process: the stack's supervisor undoes
        // the fault at the same deadline if this watchdog is gone too.
        let record = f3_sandbox::faults::FaultRecord {
            id: ctx.ledger_id.to_string(),
            deadline_unix_ms: spec.deadline_unix_ms,
            action,
            targets: targets.clone(),
        };
        if let Err(e) = f3_sandbox::faults::record_fault(&self.state_dir, &self.stack, &record) {
            let _ = watchdog.signal(Signal::SIGTERM);
            return Err(FaultError::Inject {
                step: fault.name.clone(),
                reason: format!(
                    "could not record the fault for the stack's supervisor: {}",
                    crate::fault::cause_text(&e)
                ),
            });
        }
        let signal = match action {
            UndoAction::Resume => Signal::SIGSTOP,
            UndoAction::Restart => Signal::SIGKILL,
        };
        let mut failure = None;
        for target in &targets {
            if let Err(e) = target.signal(signal) {
                failure = Some(format!(
                    "{signal} to {} (pid {}): {e}",
                    target.name, target.pid
                ));
                break;
            }
        }
        let local = LocalFault {
            action,
            stack: self.stack.clone(),
            state_dir: self.state_dir.clone(),
            targets: targets.clone(),
            watchdog: Some(watchdog),
            record: Some(record.id),
        };
        let verb = match action {
            UndoAction::Resume => "SIGSTOP",
            UndoAction::Restart => "SIGKILL",
        };
        let handle = FaultHandle {
            driver: "local".into(),
            description: describe_targets(verb, &targets),
            data: serde_json::to_value(&local).map_err(|e| FaultError::Inject {
                step: fault.name.clone(),
                reason: crate::fault::cause_text(&e),
            })?,
        };
        if let Some(reason) = failure {
            // Undo the part that was done before reporting the failure.
            if let Err(e) = self.revert(&handle).await {
                tracing::error!(step = %fault.name, error = %e, "Could not undo a partial injection; the watchdog's TTL ends it.");
            }
            return Err(FaultError::Inject {
                step: fault.name.clone(),
                reason,
            });
        }
        Ok(handle)
    }

    async fn revert(&self, handle: &FaultHandle) -> Result<(), FaultError> {
        let local: LocalFault =
            serde_json::from_value(handle.data.clone()).map_err(|e| FaultError::Revert {
                what: handle.description.clone(),
                reason: format!("unreadable ledger handle: {e}"),
            })?;
        let result = watchdog::undo(local.action, &local.targets, &local.state_dir, &local.stack)
            .map_err(|reason| FaultError::Revert {
                what: handle.description.clone(),
                reason,
            });
        // The watchdog and the supervisor's record are only needed while the fault may still
        // be active.
        if result.is_ok() {
            if let Some(watchdog) = &local.watchdog {
                let _ = watchdog.signal(Signal::SIGTERM);
            }
            if let Some(id) = &local.record
                && let Err(e) = f3_sandbox::faults::clear_fault(&local.state_dir, &local.stack, id)
            {
                tracing::warn!(fault = %id, error = %e, "Could not clear the fault's record; the stack's supervisor finds it already undone at its deadline.");
            }
        }
        result
    }

    async fn orphans(&self) -> Result<Vec<FaultHandle>, FaultError> {
        // Frozen payment nodes are only ever frozen by us: any that is stopped now is an orphan
        // unless a live run holds it (the caller checks the ledger).
        let inventory = match self.inventory() {
            Ok(inventory) => inventory,
            Err(_) => return Ok(Vec::new()),
        };
        let frozen = frozen_payment_nodes(&inventory);
        if frozen.is_empty() {
            return Ok(Vec::new());
        }
        let local = LocalFault {
            action: UndoAction::Resume,
            stack: self.stack.clone(),
            state_dir: self.state_dir.clone(),
            targets: frozen.clone(),
            watchdog: None,
            record: None,
        };
        Ok(vec![FaultHandle {
            driver: "local".into(),
            description: describe_targets("stopped", &frozen),
            data: serde_json::to_value(&local).unwrap_or_default(),
        }])
    }

    async fn fingerprint(&self) -> Result<String, FaultError> {
        let inventory = self.inventory()?;
        f3_sandbox::current_fingerprint(&inventory).map_err(|e| FaultError::NotReady {
            stack: self.stack.clone(),
            reason: format!("fingerprint: {}", crate::fault::cause_text(&e)),
        })
    }
}

impl LoadGenerator for LocalDriver {
    async fn set_tps(&self, tps: f64) -> Result<(), FaultError> {
        let url = format!("{}/tps", self.simulator_url()?);
        let response = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "tps": tps }))
            .send()
            .await
            .map_err(|e| FaultError::Load(format!("POST {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(FaultError::Load(format!(
                "POST {url}: HTTP {}",
                response.status()
            )));
        }
        Ok(())
    }

    fn load_check(&self, tps: f64) -> Check {
        Check {
            // Successful payments only: a dead gateway fails every payment at full rate.
            query: "sum(rate(payments_total{outcome=\"success\"}[15s]))".into(),
            op: Comparison::Ge,
            threshold: (tps * 0.9 * 100.0).round() / 100.0,
            unit: Some("tps".into()),
            slo: None,
        }
    }
}

/// The stack's payment nodes that are stopped (SIGSTOP) now: only a fault freezes them.
fn frozen_payment_nodes(inventory: &f3_sandbox::Inventory) -> Vec<ProcessId> {
    inventory
        .processes
        .iter()
        .filter(|p| p.role == Role::PaymentNode)
        .filter_map(|p| ProcessId::of(&p.name, p.pid))
        .filter(ProcessId::is_stopped)
        .collect()
}
