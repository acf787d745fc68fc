//! Step verdicts and the evidence stored with them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::series::{Series, SeriesLabels, float, format_labels};
use crate::model::Verdict;
use crate::scenario::model::Check;

/// The time the evidence covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Window {
    /// One evaluation instant (instant query).
    Instant {
        /// The evaluation time sent to the source.
        at: DateTime<Utc>,
    },
    /// A range `[start, end]` evaluated every `step_seconds` (range query).
    Range {
        /// First evaluation time.
        start: DateTime<Utc>,
        /// Last possible evaluation time.
        end: DateTime<Utc>,
        /// Resolution in seconds.
        step_seconds: f64,
    },
}

/// One observed value with where and when it was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Evaluation timestamp.
    pub at: DateTime<Utc>,
    /// The value in the check's unit (may be ±Inf).
    #[serde(with = "float")]
    pub value: f64,
    /// Labels of the series it belongs to.
    pub labels: SeriesLabels,
}

/// What a step was judged on; stored as JSON next to the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The PromQL expression.
    pub query: String,
    /// The comparison as written (`<`, `>=`, …): the check is `value OP threshold`.
    pub op: String,
    /// Threshold in the check's unit.
    #[serde(with = "float")]
    pub threshold: f64,
    /// Unit of value and threshold (`s`, `ratio`, …), if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Catalogue SLO name, when the check is a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// The evaluated instant or window.
    pub window: Window,
    /// The observed series (at most [`super::MAX_EVIDENCE_SERIES`], failing ones first).
    #[serde(default)]
    pub series: Vec<Series>,
    /// Series returned but not kept in `series`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_series: usize,
    /// The value furthest on the failing side (`Comparison::worse`), over failing points if any
    /// failed, else over all points. `None` when there was no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<Observation>,
    /// The earliest point that broke the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Observation>,
    /// The latest point that broke the check (recover-within: the last sign of the fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Observation>,
    /// Share of expected evaluation instants that had at least one non-NaN value (ratio 0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Recover-within: first instant from which the check held until the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<DateTime<Utc>>,
    /// Why the verdict is inconclusive or error (or a note on a pass/fail), in plain English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Evidence {
    /// Evidence with no observations yet for `check` over `window`.
    pub fn new(check: &Check, window: Window) -> Self {
        Evidence {
            query: check.query.clone(),
            op: check.op.symbol().to_owned(),
            threshold: check.threshold,
            unit: check.unit.clone(),
            slo: check.slo.as_ref().map(|s| s.name.clone()),
            window,
            series: Vec::new(),
            omitted_series: 0,
            worst: None,
            first_failure: None,
            last_failure: None,
            coverage: None,
            recovered_at: None,
            reason: None,
        }
    }

    /// One line for people: `observed 310 ms (needs < 250 ms)` ([`crate::present`]), or the
    /// reason when there was no value. Names the worst series' labels when there are several.
    pub fn describe(&self) -> String {
        let unit = self.unit.as_deref();
        let threshold = format!(
            "needs {} {}",
            self.op,
            crate::present::quantity(self.threshold, unit)
        );
        match &self.worst {
            Some(w) => {
                let labels = if self.series.len() + self.omitted_series > 1 {
                    format!(" at {}", format_labels(&w.labels))
                } else {
                    String::new()
                };
                let mut text = format!(
                    "observed {}{labels} ({threshold})",
                    crate::present::quantity(w.value, unit)
                );
                if let Some(reason) = &self.reason {
                    text.push_str("; ");
                    text.push_str(reason);
                }
                text
            }
            None => format!(
                "{} ({threshold})",
                self.reason.as_deref().unwrap_or("no value")
            ),
        }
    }
}

/// A verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// What it rests on.
    pub evidence: Evidence,
}

impl Judgement {
    /// A judgement with no observation, e.g. for errors: `verdict` with `reason`.
    pub fn without_data(verdict: Verdict, check: &Check, window: Window, reason: String) -> Self {
        let mut evidence = Evidence::new(check, window);
        evidence.reason = Some(reason);
        Judgement { verdict, evidence }
    }
}
