//! The message one team receives, built from an outbox row: what failed (or recovered), where,
//! observed vs threshold, the SLO's business impact and what to do, how many nights in a row, and
//! the link to the run page.
//!
//! Outbox payload (written by [`super::record`], version 1):
//! `{"version": 1, "scenario", "stack", "outcome", "reason", "faults": ["name (duration)"…],
//! "steps": [MessageStep…]}` (`reason` and `faults` may be absent in older rows); the worker adds
//! `"route": {"index", "kind"}` when it fans a row out to one route.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{NotificationKind, Verdict};
use crate::store::OutboxRecord;

/// One step in a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStep {
    /// Step name as written in the scenario.
    pub name: String,
    /// Failed, inconclusive or error; passed in a resolve message.
    pub verdict: Verdict,
    /// Worst observed value, in `unit`.
    #[serde(default)]
    pub observed: Option<f64>,
    /// Threshold, in `unit`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Comparison that had to hold (`<`, `>=`, …).
    #[serde(default)]
    pub op: Option<String>,
    /// Unit of `observed` and `threshold` (`s`, `ratio`, …).
    #[serde(default)]
    pub unit: Option<String>,
    /// Why inconclusive / error.
    #[serde(default)]
    pub message: Option<String>,
    /// Catalogue name of the SLO checked, if the step uses one.
    #[serde(default)]
    pub slo: Option<String>,
    /// Business impact in plain English (from the SLO catalogue).
    #[serde(default)]
    pub impact: Option<String>,
    /// What to do (from the SLO catalogue).
    #[serde(default)]
    pub action: Option<String>,
    /// Consecutive nights (this one included) on which this step did not pass on this stack.
    #[serde(default)]
    pub nights_failing: u32,
}

impl MessageStep {
    /// `observed 410 ms, needs < 250 ms` ([`crate::present::comparison`]), or the step's
    /// message when nothing was observed.
    pub fn evidence(&self) -> String {
        match (self.observed, self.threshold) {
            (Some(_), Some(_)) => crate::present::comparison(
                self.observed,
                self.op.as_deref(),
                self.threshold,
                self.unit.as_deref(),
            )
            .unwrap_or_default(),
            _ => self
                .message
                .clone()
                .unwrap_or_else(|| "no value".to_owned()),
        }
    }

    /// `still failing (3 nights)` / `failing since tonight`.
    pub fn streak(&self) -> String {
        if self.nights_failing > 1 {
            format!("still failing ({} nights)", self.nights_failing)
        } else {
            "first night failing".to_owned()
        }
    }
}

/// The stored payload of a failures / resolved row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Payload {
    /// Scenario name.
    #[serde(default)]
    pub scenario: String,
    /// Stack name.
    #[serde(default)]
    pub stack: String,
    /// Run outcome (`failed`, `aborted`, …).
    #[serde(default)]
    pub outcome: Option<String>,
    /// Why the run ended so (abort condition, error), when it says.
    #[serde(default)]
    pub reason: Option<String>,
    /// The faults the scenario injects, `name (duration)`.
    #[serde(default)]
    pub faults: Vec<String>,
    /// The team's steps.
    #[serde(default)]
    pub steps: Vec<MessageStep>,
    /// Digest: headline and lines (digest rows only).
    #[serde(default)]
    pub digest: Option<DigestBody>,
    /// Night the digest covers, `YYYY-MM-DD` (digest rows only).
    #[serde(default)]
    pub night: Option<String>,
    /// How long past its planned end the run was when the row was queued, seconds (overrun
    /// rows only).
    #[serde(default, rename = "overrunSeconds")]
    pub overrun_seconds: Option<u64>,
}

/// Body of a digest message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DigestBody {
    /// One-line summary.
    pub headline: String,
    /// One line per run / finding.
    pub lines: Vec<String>,
}

/// A message for one team, ready for a [`super::Notifier`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// What it is about.
    pub kind: NotificationKind,
    /// Outbox id (idempotency key for receivers).
    pub outbox_id: i64,
    /// The run it is about.
    pub run_id: Uuid,
    /// Team short name.
    pub team: String,
    /// Team display name.
    pub team_display: String,
    /// Scenario name (empty for a digest).
    pub scenario: String,
    /// Stack name (empty for a digest).
    pub stack: String,
    /// Run outcome.
    pub outcome: Option<String>,
    /// Why the run ended so (abort condition, error), when it says.
    pub reason: Option<String>,
    /// The faults the scenario injects, `name (duration)`.
    pub faults: Vec<String>,
    /// `{dashboardUrl}/runs/{run id}` when a dashboard is configured.
    pub run_url: Option<String>,
    /// The steps.
    pub steps: Vec<MessageStep>,
    /// Digest body (digest messages).
    pub digest: Option<DigestBody>,
    /// Seconds past the planned end (overrun messages).
    pub overrun_seconds: Option<u64>,
    /// Plain-text rendering (Slack `text`, PagerDuty summary prefix, logs).
    pub text: String,
    /// The run as stored at delivery time, for routes that embed it
    /// ([`super::Notifier::wants_run_document`]); `None` until the worker loads it, for a digest,
    /// and when the run is no longer stored.
    pub run: Option<crate::document::RunDocument>,
}

impl Message {
    /// Builds the message of an outbox row.
    ///
    /// # Errors
    /// A description when the payload does not have the documented shape.
    pub fn from_outbox(
        row: &OutboxRecord,
        team_display: &str,
        dashboard_url: Option<&str>,
    ) -> Result<Message, String> {
        let payload: Payload = serde_json::from_value(row.payload.clone())
            .map_err(|e| format!("outbox payload of #{}: {e}", row.id))?;
        let kind = row.kind;
        // A digest links to its night's page; every other message to its run's page.
        let run_url = dashboard_url.map(|base| {
            let base = base.trim_end_matches('/');
            match (
                row.kind == NotificationKind::Digest,
                payload.night.as_deref(),
            ) {
                (true, Some(night)) => format!("{base}/night/{night}"),
                _ => format!("{base}/runs/{}", row.run_id),
            }
        });
        let mut message = Message {
            kind,
            outbox_id: row.id,
            run_id: row.run_id,
            team: row.team.clone(),
            team_display: team_display.to_owned(),
            scenario: payload.scenario,
            stack: payload.stack,
            outcome: payload.outcome,
            reason: payload.reason,
            faults: payload.faults,
            run_url,
            steps: payload.steps,
            digest: payload.digest,
            overrun_seconds: payload.overrun_seconds,
            text: String::new(),
            run: None,
        };
        message.text = message.render_text();
        Ok(message)
    }

    /// The one sentence of an overrun message: what, how late, what happens, what to do.
    pub fn overrun_sentence(&self) -> String {
        let late = self
            .overrun_seconds
            .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string())
            .unwrap_or_else(|| "an unknown time".to_owned());
        format!(
            "{}: {} on {} is still running {late} past its planned end. Later experiments on \
             the stack and on its shared resources were moved; the run is stopped and its faults \
             reverted at the window end at the latest. Check whether the stack is recovering \
             and whether the scenario's estimated duration needs raising.",
            self.team_display, self.scenario, self.stack
        )
    }

    /// PagerDuty-style dedup key of a step: `scenario/step/stack`.
    pub fn dedup_key(&self, step: &MessageStep) -> String {
        format!("{}/{}/{}", self.scenario, step.name, self.stack)
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        match self.kind {
            NotificationKind::Failures => {
                out.push_str(&format!(
                    "{}: {} step(s) of {} on {} did not pass",
                    self.team_display,
                    self.steps.len(),
                    self.scenario,
                    self.stack
                ));
                if let Some(outcome) = self.outcome.as_deref().filter(|o| *o != "failed") {
                    // An aborted or errored run is said as such, with why.
                    match &self.reason {
                        Some(reason) => out.push_str(&format!(" — run {outcome}: {reason}")),
                        None => out.push_str(&format!(" — run {outcome}")),
                    }
                }
                if !self.faults.is_empty() {
                    out.push_str(&format!("\nFault injected: {}", self.faults.join(", ")));
                }
                for step in &self.steps {
                    out.push_str(&format!(
                        "\n• {} — {}: {} ({})",
                        step.name,
                        step.verdict,
                        step.evidence(),
                        step.streak()
                    ));
                    if let Some(impact) = &step.impact {
                        out.push_str(&format!("\n  Impact: {impact}"));
                    }
                    if let Some(action) = &step.action {
                        out.push_str(&format!("\n  What to do: {action}"));
                    }
                }
            }
            NotificationKind::Resolved => {
                out.push_str(&format!(
                    "{}: resolved on {} — {} passes again:",
                    self.team_display, self.stack, self.scenario
                ));
                for step in &self.steps {
                    out.push_str(&format!("\n• {}", step.name));
                }
            }
            NotificationKind::Overrun => out.push_str(&self.overrun_sentence()),
            NotificationKind::Digest => {
                if let Some(digest) = &self.digest {
                    out.push_str(&digest.headline);
                    for line in &digest.lines {
                        out.push_str(&format!("\n• {line}"));
                    }
                }
            }
        }
        if let Some(url) = &self.run_url {
            out.push_str(&format!("\nRun: {url}"));
        }
        out
    }
}
