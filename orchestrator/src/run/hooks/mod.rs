//! The fault-window seam: what other tools are told around a run's faults.
//!
//! A [`FaultWindowHook`] is called at three points of a run:
//! 1. **before the first injection** (the last Given step): it may add a Given step of its own
//!    and may refuse the injection — the run then ends `precondition-failed` and no fault is
//!    injected (the Alertmanager silence: no fault without a silence when one is configured);
//! 2. **after the first injection**: it must not delay the fault phase (the Grafana annotation
//!    is created in the background);
//! 3. **after the last revert**, on every exit path (also after an abort, an interruption or a
//!    failed injection): it undoes what it did before. It is called once per run, after
//!    `after_inject` or without it.
//!
//! A hook does not write to the store or talk to reporters: it answers a [`HookReport`], which
//! the runner records through its durable writer like every other transition. A failure after
//! the revert never changes the outcome (it is reported as an event). The two hooks, on the
//! [`crate::integrations`] clients: [`SilenceHook`] (Alertmanager) and [`AnnotationHook`]
//! (Grafana); a runner has one instance of each per run, holding that run's state (the silence
//! id, the open annotation).

use std::time::Duration;

mod annotation;
mod silence;

pub use annotation::AnnotationHook;
pub use silence::{SILENCE_STEP, SilenceHook};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::RunEvent;
use crate::model::Verdict;
use crate::scenario::Scenario;

/// The run whose faults a hook hears about.
#[derive(Debug, Clone, Copy)]
pub struct FaultWindow<'a> {
    /// Run id.
    pub run_id: Uuid,
    /// The scenario being run.
    pub scenario: &'a Scenario,
    /// Stack name.
    pub stack: &'a str,
    /// The longest fault's TTL (its declared duration plus the run's TTL grace): how long the
    /// window may last at most if nothing reverts it.
    pub longest_ttl: Duration,
}

/// What a hook did, for the runner to store and report.
#[derive(Debug, Default)]
pub struct HookReport {
    /// Events to record, in order (e.g. `alerts-silenced`, `silence-expired`).
    pub events: Vec<RunEvent>,
    /// The result of the hook's Given step ([`FaultWindowHook::given_step`]), before injection.
    pub step: Option<HookStep>,
    /// Before injection only: why no fault may be injected (the run ends
    /// `precondition-failed` with this reason).
    pub refused: Option<String>,
}

/// The judged result of a hook's Given step.
#[derive(Debug)]
pub struct HookStep {
    /// Passed, or error when the hook refused the injection.
    pub verdict: Verdict,
    /// What it did ("silence 1f… on stack="uat-alpha" until 01:05:31 UTC at the latest").
    pub message: String,
    /// Stored with the step (e.g. the silence's matchers and its id).
    pub evidence: Option<serde_json::Value>,
}

/// Told about a run's fault window (see the module docs for when each method is called).
pub trait FaultWindowHook: Send + Sync {
    /// Name of the Given step this hook adds before the first injection, shown while
    /// [`before_inject`](Self::before_inject) runs; `None` when it adds none.
    fn given_step(&self) -> Option<&'static str> {
        None
    }

    /// Before the first injection; `now` is when the hook's Given step started.
    fn before_inject<'a>(
        &'a self,
        window: FaultWindow<'a>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, HookReport> {
        let _ = (window, now);
        Box::pin(async { HookReport::default() })
    }

    /// Right after the first fault is in (`injected_at`). Must return at once.
    fn after_inject(&self, window: FaultWindow<'_>, injected_at: DateTime<Utc>) {
        let _ = (window, injected_at);
    }

    /// After the last revert (`reverted_at`; `None` when no fault was injected).
    fn after_revert<'a>(
        &'a self,
        window: FaultWindow<'a>,
        reverted_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, HookReport>;
}
