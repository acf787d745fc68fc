//! What the runner queues in the outbox at the end of a run: one `step-failures` row per owner
//! team with failed / inconclusive / error steps, and one `step-resolved` row per team whose
//! steps failed on the previous counted run of the same scenario on the same stack and pass now.
//!
//! Each step carries the SLO's impact and what-to-do text and how many nights in a row it has
//! not passed (from the store's history; void, precondition-failed and interrupted runs do not
//! count, skipped steps neither break nor extend a streak).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;

use super::message::MessageStep;
use crate::model::RunOutcome;
use crate::model::StepResult;
use crate::model::{NotificationKind, Verdict};
use crate::plan::NightCalendar;
use crate::scenario::Scenario;
use crate::store::{RunFilter, RunRecord, Store};

/// How many earlier runs of a scenario × stack are read to count a failing streak.
const HISTORY_RUNS: u32 = 60;

/// One outbox row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Owner team.
    pub team: String,
    /// Outbox kind ([`NotificationKind::Failures`] or [`NotificationKind::Resolved`]).
    pub kind: NotificationKind,
    /// Outbox payload (see [`super::message`]).
    pub payload: Value,
}

/// Whether a finished run's verdicts count for streaks ([`RunOutcome::counts_for_streaks`]).
fn counts(run: &RunRecord) -> bool {
    run.outcome().is_some_and(RunOutcome::counts_for_streaks)
}

/// The night a run counts on: its planned night, else the local night of its start.
fn night_of(run: &RunRecord, calendar: NightCalendar) -> NaiveDate {
    run.night
        .unwrap_or_else(|| calendar.night_of(run.started_at))
}

/// Verdicts by step name of the earlier counted runs, newest first, with their nights.
async fn earlier_runs(
    store: &Store,
    run_id: Uuid,
    scenario: &str,
    stack: &str,
    calendar: NightCalendar,
) -> Vec<(NaiveDate, BTreeMap<String, Verdict>)> {
    let filter = RunFilter {
        scenario: Some(scenario.to_owned()),
        stack: Some(stack.to_owned()),
        limit: Some(HISTORY_RUNS),
        ..RunFilter::default()
    };
    let runs = match store.runs(&filter).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!(run_id = %run_id, error = %e, "Could not read run history; streaks start tonight.");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for run in runs.iter().filter(|r| r.id != run_id && counts(r)) {
        let steps = store.steps(run.id).await.unwrap_or_default();
        let verdicts = steps
            .into_iter()
            .filter_map(|s| s.verdict.map(|v| (s.name, v)))
            .collect();
        out.push((night_of(run, calendar), verdicts));
    }
    out
}

/// Consecutive nights (tonight included) on which `step` did not pass.
fn streak(
    tonight: NaiveDate,
    step: &str,
    earlier: &[(NaiveDate, BTreeMap<String, Verdict>)],
) -> u32 {
    let mut nights = BTreeSet::from([tonight]);
    for (night, verdicts) in earlier {
        match verdicts.get(step) {
            Some(Verdict::Skipped) => continue,
            Some(v) if v.needs_attention() => {
                nights.insert(*night);
            }
            _ => break,
        }
    }
    u32::try_from(nights.len()).unwrap_or(u32::MAX)
}

/// Whether `step` did not pass on the latest earlier counted run that judged it.
fn failed_before(step: &str, earlier: &[(NaiveDate, BTreeMap<String, Verdict>)]) -> bool {
    earlier
        .iter()
        .find_map(|(_, verdicts)| verdicts.get(step).filter(|v| **v != Verdict::Skipped))
        .is_some_and(|v| v.needs_attention())
}

/// A finished run as [`notifications`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRun<'a> {
    /// Run id.
    pub run_id: Uuid,
    /// The night it counts on (its planned night, else the local night of its start).
    pub night: NaiveDate,
    /// Its scenario.
    pub scenario: &'a Scenario,
    /// Stack name.
    pub stack: &'a str,
    /// Its outcome.
    pub outcome: RunOutcome,
    /// Why it ended so, for outcomes other than passed/failed (the abort condition that
    /// breached, the error), as the run records it.
    pub reason: Option<&'a str>,
    /// Every step it judged.
    pub steps: &'a [StepResult],
}

/// The outbox rows for a finished run (none for void, precondition-failed or interrupted runs:
/// nothing was learned about the platform). Earlier runs without a planned night count on their
/// local night in `calendar`.
pub async fn notifications(
    store: &Store,
    run: &FinishedRun<'_>,
    calendar: NightCalendar,
) -> Vec<Notification> {
    let FinishedRun {
        run_id,
        night,
        scenario,
        stack,
        outcome,
        reason,
        steps,
    } = *run;
    if matches!(
        outcome,
        RunOutcome::Void | RunOutcome::PreconditionFailed | RunOutcome::Interrupted
    ) {
        return Vec::new();
    }
    let earlier = earlier_runs(store, run_id, &scenario.name, stack, calendar).await;
    let mut failing: BTreeMap<&str, Vec<MessageStep>> = BTreeMap::new();
    let mut resolved: BTreeMap<&str, Vec<MessageStep>> = BTreeMap::new();
    for step in steps {
        let Some(owner) = step.owner.as_deref() else {
            continue;
        };
        let then = scenario.then.iter().find(|t| t.name == step.name);
        let slo = then.and_then(|t| t.check.slo.as_ref());
        // The step's own impact and action first, then its SLO's; a check of its own with
        // neither still says what it checked and what to do, rather than arriving with nothing.
        let impact = then
            .and_then(|t| t.impact.clone())
            .or_else(|| slo.map(|s| s.impact.clone()))
            .or_else(|| {
                then.map(|t| {
                    format!(
                        "The check `{}` {} {} did not hold; no SLO in the catalogue states its business impact.",
                        t.check.query,
                        t.check.op.symbol(),
                        crate::present::quantity(t.check.threshold, t.check.unit.as_deref())
                    )
                })
            });
        let action = then
            .and_then(|t| t.action.clone())
            .or_else(|| slo.map(|s| s.action.clone()))
            .or_else(|| {
                then.map(|_| {
                    "Open the run page for the evidence. Then give the check an entry in the SLO \
                     catalogue (its impact and what to do), or `impact`/`action` on the step, so \
                     the next message says them."
                        .to_owned()
                })
            });
        let message_step = |nights_failing| MessageStep {
            name: step.name.clone(),
            verdict: step.verdict,
            observed: step.observed.filter(|v| v.is_finite()),
            threshold: step.threshold,
            op: step.op.clone(),
            unit: step.unit.clone(),
            message: step.message.clone(),
            slo: slo.map(|s| s.name.clone()),
            impact: impact.clone(),
            action: action.clone(),
            nights_failing,
        };
        match step.verdict {
            v if v.needs_attention() => failing
                .entry(owner)
                .or_default()
                .push(message_step(streak(night, &step.name, &earlier))),
            Verdict::Passed if failed_before(&step.name, &earlier) => {
                resolved.entry(owner).or_default().push(message_step(0));
            }
            _ => {}
        }
    }
    // What was broken: the scenario's When steps, with their duration (`GCP connectivity lost
    // (30s)`).
    let faults: Vec<String> = scenario
        .when
        .iter()
        .map(|w| format!("{} ({})", w.name, w.duration))
        .collect();
    let payload = |steps: Vec<MessageStep>| {
        json!({
            "version": 1,
            "scenario": scenario.name,
            "stack": stack,
            "outcome": outcome.as_str(),
            "reason": reason,
            "faults": faults,
            "steps": steps,
        })
    };
    let mut out = Vec::new();
    for (team, steps) in failing {
        out.push(Notification {
            team: team.to_owned(),
            kind: NotificationKind::Failures,
            payload: payload(steps),
        });
    }
    for (team, steps) in resolved {
        out.push(Notification {
            team: team.to_owned(),
            kind: NotificationKind::Resolved,
            payload: payload(steps),
        });
    }
    out
}
