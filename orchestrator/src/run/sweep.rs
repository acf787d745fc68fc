//! The sweep: revert every fault in the ledger whose run is no longer alive, end such runs
//! `interrupted` at their last heartbeat, and release the stack leases of dead holders. Runs
//! before every `run`/`trigger`, when a daemon becomes leader, and then every [`SWEEP_EVERY`] while
//! it leads — so a crashed or `kill -9`ed orchestrator (a dead leader included) never leaves a
//! fault, a held stack or a run stuck in `running` behind for longer than a few seconds.
//!
//! Liveness is [`RunRecord::liveness`](crate::store::RunRecord::liveness): the run's heartbeat in
//! the store with a TTL of [`HEARTBEAT_TTL`](crate::store::HEARTBEAT_TTL), on every host alike.

use std::time::Duration;

use chrono::Utc;

use crate::config::Config;
use crate::fault::{FaultDriver, FaultHandle};
use crate::model::RunOutcome;
use crate::store::{LedgerState, Liveness, RunRecord, Store, StoreError};

/// How often a leading daemon sweeps again (until every run of a lost owner is reconciled, and
/// on, for owners lost later).
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

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
    /// Alertmanager silences of dead runs that were expired (silence id, stack).
    pub expired_silences: Vec<String>,
}

impl SweepReport {
    /// Whether the sweep found nothing to do.
    pub fn is_empty(&self) -> bool {
        self.reverted.is_empty()
            && self.failed.is_empty()
            && self.interrupted_runs.is_empty()
            && self.released_leases.is_empty()
            && self.expired_silences.is_empty()
    }
}

/// Whether `run` (None: no such run) is owned by a live process now.
fn alive(run: Option<&RunRecord>, now: chrono::DateTime<Utc>, host: &str) -> bool {
    run.is_some_and(|r| r.liveness(now, host) == Liveness::Alive)
}

/// Reverts faults of dead runs, ends those runs `interrupted` (at their last heartbeat) and
/// releases their stack leases.
///
/// # Errors
/// Only store failures; a fault that cannot be reverted is reported in [`SweepReport::failed`]
/// (its TTL still ends it) and its ledger entry marked `revert-failed`.
pub async fn sweep(store: &Store, config: &Config) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let host = crate::store::local_hostname();
    let now = Utc::now();
    for entry in store.ledger_open().await? {
        let run = store.run(entry.run_id).await?;
        if alive(run.as_ref(), now, &host) {
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
        let Liveness::Dead { since, why } = run.liveness(now, &host) else {
            continue;
        };
        expire_silence_of(store, config, &run, &mut report).await?;
        let summary = serde_json::json!({
            "reason": format!("{why}; its faults were reverted by the sweep"),
        });
        match store
            .finish_run(run.id, RunOutcome::Interrupted, since, &summary)
            .await
        {
            Ok(()) => report.interrupted_runs.push(run.id),
            // It ended on its own in the meantime.
            Err(StoreError::RunNotRunning { .. }) => {}
            Err(e) => return Err(e),
        }
        tracing::warn!(run_id = %run.id, scenario = %run.scenario, stack = %run.stack, %why, "Run of a lost owner ended interrupted.");
    }
    // Leases of dead runs would otherwise block their stack until they expire. A lease whose run
    // is not recorded yet (the runner takes the lease first) is left alone until its own renewals
    // stop for a heartbeat TTL.
    let lease_ttl = chrono::Duration::from_std(crate::store::HEARTBEAT_TTL).unwrap_or_default();
    for lease in store.leases(now).await? {
        let holder = store.run(lease.run_id).await?;
        let dead = match &holder {
            Some(run) => run.liveness(now, &host) != Liveness::Alive,
            None => lease.renewed_at + lease_ttl < now,
        };
        if dead {
            store.release_lease(&lease.stack, lease.run_id).await?;
            report.released_leases.push(lease.stack.clone());
        }
    }
    Ok(report)
}

/// Expires the Alertmanager silence a dead `run` created and did not expire (its `alerts-silenced`
/// event without a `silence-expired` one), through the stack's configured Alertmanager
/// (API v2, `DELETE /api/v2/silence/{id}`). A silence that cannot be expired is reported in
/// [`SweepReport::failed`]; it still ends at its `endsAt` (the longest fault plus the grace).
///
/// # Errors
/// Only store failures.
async fn expire_silence_of(
    store: &Store,
    config: &Config,
    run: &RunRecord,
    report: &mut SweepReport,
) -> Result<(), StoreError> {
    let events = store.events(run.id).await?;
    if events.iter().any(|e| e.kind == "silence-expired") {
        return Ok(());
    }
    let Some(silence_id) = events
        .iter()
        .rev()
        .find(|e| e.kind == "alerts-silenced")
        .and_then(|e| e.payload["silence_id"].as_str())
    else {
        return Ok(());
    };
    let silencer = config
        .stacks
        .get(&run.stack)
        .map(crate::integrations::alertmanager::Silencer::for_stack);
    let result = match silencer {
        Some(Ok(Some(silencer))) => silencer
            .client
            .expire_silence(silence_id)
            .await
            .map_err(|e| e.to_string()),
        Some(Ok(None)) => Err(format!("stack `{}` has no alertmanagerUrl", run.stack)),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("stack `{}` is not in this config", run.stack)),
    };
    match result {
        Ok(()) => {
            tracing::warn!(run_id = %run.id, %silence_id, stack = %run.stack, "Expired the silence of a dead run.");
            report
                .expired_silences
                .push(format!("{silence_id} ({})", run.stack));
        }
        Err(e) => report.failed.push(format!(
            "silence {silence_id} of run {}: {e} (it ends at its endsAt)",
            run.id
        )),
    }
    Ok(())
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
    let host = crate::store::local_hostname();
    let running = store.running_runs().await?;
    // Stacks are asked in parallel: one unreachable cluster costs ORPHAN_TIMEOUT once, not per stack.
    let stacks = config.stacks.values().filter(|stack| {
        // A live run's faults are its own business.
        !running
            .iter()
            .any(|r| r.stack == stack.name && alive(Some(r), now, &host))
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
