//! Run events: every transition of a run, written to the store first, then fanned out to
//! reporters (the terminal, JSON output, the API's SSE stream, metrics).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::model::StepResult;
use crate::model::{Phase, RunOutcome};

/// One transition of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunEvent {
    /// The run exists and holds its stack lease.
    RunStarted {
        /// Run id (UUID v7).
        run_id: Uuid,
        /// Scenario name.
        scenario: String,
        /// Stack name.
        stack: String,
        /// Who started it.
        started_by: String,
    },
    /// The stack fingerprint was taken (before or after the experiment).
    Fingerprint {
        /// `before` or `after`.
        when: String,
        /// The fingerprint.
        value: String,
    },
    /// A step began (for spinners).
    StepStarted {
        /// Step index.
        index: usize,
        /// Phase.
        phase: Phase,
        /// Step name.
        name: String,
    },
    /// A step finished with a verdict.
    StepFinished(StepResult),
    /// A fault was injected (after its ledger entry was written).
    FaultInjected {
        /// Step index.
        index: usize,
        /// Step name.
        name: String,
        /// What the driver did.
        description: String,
        /// TTL enforced by the target, seconds.
        ttl_seconds: f64,
    },
    /// A fault was reverted (or reverting it failed).
    FaultReverted {
        /// Step index.
        index: usize,
        /// Step name.
        name: String,
        /// Whether the revert succeeded.
        ok: bool,
        /// Error text when it did not.
        message: Option<String>,
    },
    /// An abort condition was breached and faults were reverted at once.
    AbortTriggered {
        /// Abort condition name.
        condition: String,
        /// Observed value that breached it, in `unit`.
        observed: f64,
        /// The condition's threshold, in `unit` (absent in events stored before it was added).
        #[serde(default)]
        threshold: Option<f64>,
        /// The comparison that aborts (`<`, …).
        #[serde(default)]
        op: Option<String>,
        /// Unit of `observed` and `threshold` (`ratio`, `s`, …).
        #[serde(default)]
        unit: Option<String>,
        /// When the breach was seen.
        detected_at: DateTime<Utc>,
        /// When every fault was reverted.
        reverted_at: DateTime<Utc>,
        /// reverted_at − detected_at, milliseconds.
        latency_ms: i64,
    },
    /// The stack's alerts were silenced in Alertmanager (before the first fault).
    AlertsSilenced {
        /// Alertmanager's silence id.
        silence_id: String,
        /// Alertmanager base URL.
        alertmanager: String,
        /// Matchers in Prometheus selector syntax (`stack="uat-beta"`).
        matchers: Vec<String>,
        /// When the silence ends by itself if it is not expired at revert.
        ends_at: DateTime<Utc>,
    },
    /// The silence was expired after the last revert (or expiring it failed).
    SilenceExpired {
        /// Alertmanager's silence id.
        silence_id: String,
        /// Whether Alertmanager accepted the expiry.
        ok: bool,
        /// Error text when it did not (the silence then ends at its `endsAt`).
        message: Option<String>,
    },
    /// A Grafana annotation could not be written (the run goes on).
    AnnotationFailed {
        /// `inject` or `revert`.
        at: String,
        /// Error text (no token).
        message: String,
    },
    /// A notification for a team was recorded in the outbox.
    Notifying {
        /// Team name.
        team: String,
        /// The team's failed or inconclusive steps.
        steps: Vec<String>,
    },
    /// The run ended.
    RunFinished {
        /// Outcome.
        outcome: RunOutcome,
        /// Passed experiment steps (When + Then) / all of them, ratio 0–1.
        pass_rate: Option<f64>,
        /// Why (void reason, error, abort condition), if anything needs saying.
        reason: Option<String>,
    },
}

impl RunEvent {
    /// The event's kind as stored (`run-started`, `step-finished`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::RunStarted { .. } => "run-started",
            RunEvent::Fingerprint { .. } => "fingerprint",
            RunEvent::StepStarted { .. } => "step-started",
            RunEvent::StepFinished(_) => "step-finished",
            RunEvent::FaultInjected { .. } => "fault-injected",
            RunEvent::FaultReverted { .. } => "fault-reverted",
            RunEvent::AbortTriggered { .. } => "abort-triggered",
            RunEvent::AlertsSilenced { .. } => "alerts-silenced",
            RunEvent::SilenceExpired { .. } => "silence-expired",
            RunEvent::AnnotationFailed { .. } => "annotation-failed",
            RunEvent::Notifying { .. } => "notifying",
            RunEvent::RunFinished { .. } => "run-finished",
        }
    }
}
