//! The start-up sweep: revert every fault in the ledger whose run is no longer alive, and mark
//! such runs `interrupted`. Runs before every `run`/`trigger` (and at daemon start), so a crashed
//! or `kill -9`ed orchestrator never leaves a fault — or a run stuck in `running` — behind.

use std::time::Duration;

use chrono::Utc;

use crate::config::Config;
use crate::fault::{FaultDriver, FaultHandle};
use crate::store::{LedgerState, Store, StoreError};

/// A run whose heartbeat is older than this is considered dead even if its PID exists
/// (the heartbeat runs every lease TTL / 3 = 5 s by default).
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What the sweep did, for logs and tests.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SweepReport {
    /// Ledger entries reverted (ledger id, description).
    pub reverted: Vec<String>,
    /// Ledger entries that could not be reverted (ledger id, error).
    pub failed: Vec<String>,
    /// Runs marked `interrupted`.
    pub interrupted_runs: Vec<uuid::Uuid>,
    /// Stacks whose lease, held by a dead run, was released.
    pub released_leases: Vec<String>,
}

/// Reverts faults of dead runs and closes those runs.
///
/// Errors: only store failures; a fault that cannot be reverted is reported in
/// [`SweepReport::failed`] (its TTL still ends it).
pub async fn sweep(store: &Store, config: &Config) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let now = Utc::now();
    for entry in store.ledger_open().await? {
        let run = store.run(entry.run_id).await?;
        if run.as_ref().is_some_and(|r| presumed_alive(r, now)) {
            continue;
        }
        let Some(stack) = config.stacks.get(&entry.stack) else {
            report.failed.push(format!(
                "{}: stack `{}` is not in this config",
                entry.id, entry.stack
            ));
            continue;
        };
        let result = match super::launch::driver_for(stack) {
            Ok(driver) => revert_entry(&driver, entry.handle.as_ref()).await,
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(description) => {
                store
                    .ledger_update(entry.id, LedgerState::Reverted, None, Utc::now())
                    .await?;
                report.reverted.push(format!("{}: {description}", entry.id));
                tracing::warn!(ledger_id = %entry.id, run_id = %entry.run_id, "Reverted a fault left by a dead run.");
            }
            Err(e) => {
                store
                    .ledger_update(entry.id, LedgerState::RevertFailed, None, Utc::now())
                    .await?;
                report.failed.push(format!("{}: {e}", entry.id));
            }
        }
    }
    for run in store.running_runs().await? {
        if !presumed_alive(&run, now) {
            let summary = serde_json::json!({ "reason": "the orchestrator running it died; its faults were reverted by the sweep" });
            store
                .finish_run(run.id, "interrupted", Utc::now(), &summary)
                .await?;
            report.interrupted_runs.push(run.id);
        }
    }
    // Leases of dead runs would otherwise block their stack until they expire.
    for name in config.stacks.keys() {
        if let Some(lease) = store.lease(name, now).await? {
            let holder = store.run(lease.run_id).await?;
            if !holder.as_ref().is_some_and(|r| presumed_alive(r, now)) {
                store.release_lease(name, lease.run_id).await?;
                report.released_leases.push(name.clone());
            }
        }
    }
    Ok(report)
}

/// How long the orphan pass waits for one stack's driver (a Kubernetes cluster may be unreachable).
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(15);

/// The daemon's second pass, after [`sweep`]: asks every stack's driver for faults that look
/// abandoned (`FaultDriver::orphans`: frozen sandbox nodes; Chaos Mesh resources labelled
/// `managed-by: f3-chaos`) and reverts them on every stack where no live run is going. This
/// catches faults the ledger does not know (a lost or different store). Stacks whose driver does
/// not answer within [`ORPHAN_TIMEOUT`] are reported in [`SweepReport::failed`].
///
/// # Errors
/// Only store failures.
pub async fn sweep_orphans(store: &Store, config: &Config) -> Result<SweepReport, StoreError> {
    let now = Utc::now();
    let running = store.running_runs().await?;
    // Stacks are asked in parallel: one unreachable cluster costs ORPHAN_TIMEOUT once, not per stack.
    let stacks = config.stacks.values().filter(|stack| {
        // A live run's faults are its own business.
        !running
            .iter()
            .any(|r| r.stack == stack.name && presumed_alive(r, now))
    });
    let per_stack = futures_util::future::join_all(stacks.map(revert_orphans)).await;
    let mut report = SweepReport::default();
    for (reverted, failed) in per_stack {
        report.reverted.extend(reverted);
        report.failed.extend(failed);
    }
    Ok(report)
}

/// Reverts what `stack`'s driver reports as orphaned: (reverted, failed) descriptions.
async fn revert_orphans(stack: &crate::config::Stack) -> (Vec<String>, Vec<String>) {
    let (mut reverted, mut failed) = (Vec::new(), Vec::new());
    let driver = match super::launch::driver_for(stack) {
        Ok(driver) => driver,
        Err(e) => {
            failed.push(format!("{}: {e}", stack.name));
            return (reverted, failed);
        }
    };
    let handles = match tokio::time::timeout(ORPHAN_TIMEOUT, driver.orphans()).await {
        Ok(Ok(handles)) => handles,
        Ok(Err(e)) => {
            failed.push(format!("{}: orphans: {e}", stack.name));
            return (reverted, failed);
        }
        Err(_) => {
            failed.push(format!(
                "{}: orphans: no answer within {ORPHAN_TIMEOUT:?}",
                stack.name
            ));
            return (reverted, failed);
        }
    };
    for handle in handles {
        match driver.revert(&handle).await {
            Ok(()) => {
                tracing::warn!(stack = %stack.name, fault = %handle.description, "Reverted an orphaned fault.");
                reverted.push(format!("{}: orphan {}", stack.name, handle.description));
            }
            Err(e) => failed.push(format!(
                "{}: orphan {}: {e}",
                stack.name, handle.description
            )),
        }
    }
    (reverted, failed)
}

/// Whether a run may still be alive: running, and on this host its process exists with a fresh
/// heartbeat; on another host (a daemon replica) its heartbeat alone decides.
fn presumed_alive(run: &crate::store::RunRecord, now: chrono::DateTime<Utc>) -> bool {
    if !run.is_running() {
        return false;
    }
    if run.host == crate::store::local_hostname() {
        run.is_alive_locally(now, STALE_AFTER)
    } else {
        run.heartbeat_fresh(now, STALE_AFTER)
    }
}

/// Reverts one ledger entry: with its handle when injection was recorded, otherwise (crash
/// between ledger write and handle write) whatever the driver reports as orphaned.
async fn revert_entry<D: FaultDriver>(
    driver: &D,
    handle: Option<&serde_json::Value>,
) -> Result<String, String> {
    let handles: Vec<FaultHandle> = match handle {
        Some(value) => vec![
            serde_json::from_value(value.clone()).map_err(|e| format!("unreadable handle: {e}"))?,
        ],
        None => driver.orphans().await.map_err(|e| e.to_string())?,
    };
    let mut done = Vec::new();
    for handle in &handles {
        driver.revert(handle).await.map_err(|e| e.to_string())?;
        done.push(handle.description.clone());
    }
    Ok(if done.is_empty() {
        "nothing left to revert".into()
    } else {
        done.join("; ")
    })
}
