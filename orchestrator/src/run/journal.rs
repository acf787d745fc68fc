//! The runner's durable writer: every event, step result and judgement of one run goes to the
//! [`Store`] first and only then to the run's [`Reporters`], so the durable record is never
//! behind what a person saw. It also keeps the run's steps in timeline order for the report and
//! the notifications. A write the store refuses is logged as an error, never dropped silently,
//! and the first one is kept ([`Journal::refused_write`]): the run then ends `error`, since its
//! record is not whole.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Reporters, RunEvent};
use crate::assert::Judgement;
use crate::model::{Phase, StepResult, Verdict};
use crate::store::{LedgerState, StepRecord, Store};

/// The durable writer of one run.
pub(super) struct Journal<'a> {
    store: &'a Store,
    run_id: Uuid,
    reporters: Reporters,
    steps: Vec<StepResult>,
    /// The first write the store refused: what it was and the store's error.
    refused: Option<String>,
}

impl<'a> Journal<'a> {
    /// The writer of run `run_id` (which must exist in `store`).
    pub(super) fn new(store: &'a Store, run_id: Uuid, reporters: Reporters) -> Self {
        Self {
            store,
            run_id,
            reporters,
            steps: Vec::new(),
            refused: None,
        }
    }

    /// The first write the store refused during the run (`"a run event: database or disk is
    /// full"`), if any.
    pub(super) fn refused_write(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Remembers a refused write (the first one only).
    fn refuse(&mut self, what: &str, error: &crate::store::StoreError) {
        if self.refused.is_none() {
            self.refused = Some(format!("{what}: {}", crate::fault::cause_text(error)));
        }
    }

    /// The steps recorded so far, in the order they were judged.
    pub(super) fn steps(&self) -> &[StepResult] {
        &self.steps
    }

    /// The index the next step appended after every recorded one gets.
    pub(super) fn next_index(&self) -> usize {
        self.steps.len()
    }

    /// The recorded steps, for the report.
    pub(super) fn into_steps(self) -> Vec<StepResult> {
        self.steps
    }

    /// Stores the event, then reports it. A refused store write is logged as an error and the
    /// event is still reported (the run goes on; its record then lacks the event).
    pub(super) async fn emit(&mut self, event: RunEvent) {
        match serde_json::to_value(&event) {
            Ok(payload) => {
                if let Err(e) = self
                    .store
                    .append_event(self.run_id, Utc::now(), event.kind(), &payload)
                    .await
                {
                    tracing::error!(run_id = %self.run_id, error = %e, "Could not store a run event.");
                    self.refuse("a run event", &e);
                }
            }
            Err(e) => {
                tracing::error!(run_id = %self.run_id, error = %e, "Could not serialise a run event.")
            }
        }
        self.reporters.report(self.run_id, &event);
    }

    /// A step began (shown by the terminal's spinner).
    pub(super) async fn step_started(&mut self, index: usize, phase: Phase, name: &str) {
        self.emit(RunEvent::StepStarted {
            index,
            phase,
            name: name.to_owned(),
        })
        .await;
    }

    /// Stores a finished step (with its evidence), reports it and keeps it.
    pub(super) async fn record(&mut self, result: StepResult, evidence: Option<serde_json::Value>) {
        let record = StepRecord {
            index: result.index as i64,
            phase: result.phase,
            name: result.name.clone(),
            owner: result.owner.clone(),
            verdict: Some(result.verdict),
            started_at: result.started_at,
            ended_at: Some(result.ended_at),
            observed: result.observed,
            threshold: result.threshold,
            evidence,
            message: result.message.clone(),
        };
        if let Err(e) = self.store.upsert_step(self.run_id, &record).await {
            tracing::error!(run_id = %self.run_id, error = %e, "Could not store a step result.");
            self.refuse("a step result", &e);
        }
        self.emit(RunEvent::StepFinished(result.clone())).await;
        self.steps.push(result);
    }

    /// Records a step the assertion engine judged: observed vs threshold from its evidence; for
    /// a passed recover-within step, when it recovered after `reverted_at` instead of the worst
    /// value seen before.
    #[allow(
        clippy::too_many_arguments,
        reason = "one durable write of one judged step, all its columns"
    )]
    pub(super) async fn judged(
        &mut self,
        index: usize,
        phase: Phase,
        name: &str,
        owner: Option<&str>,
        started_at: DateTime<Utc>,
        judgement: &Judgement,
        reverted_at: Option<DateTime<Utc>>,
    ) {
        let evidence = &judgement.evidence;
        let mut result = StepResult::new(index, phase, name, owner, started_at);
        result.verdict = judgement.verdict;
        result.observed = evidence.worst.as_ref().map(|o| o.value);
        result.threshold = Some(evidence.threshold);
        result.op = Some(evidence.op.clone());
        result.unit = evidence.unit.clone();
        result.message = evidence.reason.clone();
        if let (Verdict::Passed, Some(recovered_at), Some(reverted_at)) =
            (judgement.verdict, evidence.recovered_at, reverted_at)
        {
            // For recover-within the interesting figure is when it recovered, not the worst value
            // seen before recovery.
            let secs = (recovered_at - reverted_at).num_milliseconds() as f64 / 1000.0;
            result.observed = None;
            result.message = Some(format!("recovered {secs:.1} s after the revert"));
        }
        let evidence_json = serde_json::to_value(evidence).ok();
        self.record(result, evidence_json).await;
    }

    /// Moves a fault's ledger entry to `state` (with the driver's handle once injected). A
    /// refused write is logged with `what` happened: the fault's TTL still ends it on the target.
    pub(super) async fn ledger(
        &mut self,
        ledger_id: Uuid,
        state: LedgerState,
        handle: Option<&serde_json::Value>,
        at: DateTime<Utc>,
        what: &str,
    ) {
        if let Err(e) = self.store.ledger_update(ledger_id, state, handle, at).await {
            tracing::error!(run_id = %self.run_id, error = %e, "Could not mark the fault {what} in the fault ledger; its TTL ends it on the target.");
            self.refuse("the fault ledger", &e);
        }
    }
}
