//! The result of one judged step, as reported, stored and notified.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Phase, Verdict};

/// The result of one step, as reported and stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    /// Position in the run's timeline (Given steps first, then When, Then, Recovery).
    pub index: usize,
    /// Phase.
    pub phase: Phase,
    /// Name as written in the scenario.
    pub name: String,
    /// Team that owns the step (Then steps; the scenario owner for recovery).
    pub owner: Option<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// Worst observed value (for checks), in the check's unit.
    pub observed: Option<f64>,
    /// Threshold (for checks).
    pub threshold: Option<f64>,
    /// Comparison operator (`<`, `>=`, …) for checks.
    pub op: Option<String>,
    /// Unit of observed/threshold (`s`, `ratio`, `tps`, …).
    pub unit: Option<String>,
    /// Explanation: why inconclusive, what was injected, the error.
    pub message: Option<String>,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub ended_at: DateTime<Utc>,
}

impl StepResult {
    /// `observed 410 ms, needs < 250 ms` for a step with a threshold
    /// ([`crate::present::comparison`]); `None` without one.
    pub fn comparison(&self) -> Option<String> {
        self.threshold?;
        crate::present::comparison(
            self.observed,
            self.op.as_deref(),
            self.threshold,
            self.unit.as_deref(),
        )
    }

    /// A step of `phase` at `index` that started at `started_at` and ends now, `skipped` until
    /// given a verdict.
    pub fn new(
        index: usize,
        phase: Phase,
        name: &str,
        owner: Option<&str>,
        started_at: DateTime<Utc>,
    ) -> StepResult {
        StepResult {
            index,
            phase,
            name: name.to_owned(),
            owner: owner.map(str::to_owned),
            verdict: Verdict::Skipped,
            observed: None,
            threshold: None,
            op: None,
            unit: None,
            message: None,
            started_at,
            ended_at: Utc::now(),
        }
    }

    /// The same step judged `verdict`.
    #[must_use]
    pub fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }

    /// The same step explained by `message`.
    #[must_use]
    pub fn with_message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }
}
