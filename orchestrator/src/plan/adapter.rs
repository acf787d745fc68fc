//! Adapter from the compiled model (config + scenarios) and the run history to a [`PlanInput`].
//!
//! - **Window**: [`night_window`] of the configured zone and local times.
//! - **Stacks**: every configured stack; its reservations become busy spans.
//! - **Eligibility**: the compiled `targets.eligible_stacks` (production already resolved by the
//!   scenario compiler; checked again here as a guard rail), less the stacks whose driver cannot
//!   inject one of its faults ([`crate::fault::capabilities`]); a scenario left with none is
//!   skipped as `no-capable-stack`, naming what each driver lacks.
//! - **Duration** per stack: the declared `schedule.estimated_duration`, replaced by the p90
//!   (nearest rank) of the last [`LEARNED_SAMPLES`] passed runs of that scenario on that stack.
//! - **Weight** = the priority class's points (`spec.planner.priorityWeights`, default
//!   critical 100, high 10, medium 3, low 1) × staleness (tenths, 10–30): a due scenario whose last tested
//!   run is `k` cadence periods ago gets `10·k` tenths, capped at 30; never tested = 10.
//! - **Due**: nightly — not yet tested tonight; every N nights — at least N nights since the last
//!   tested run (or never run); weekly — on its weekday, or any night once more than 7 nights
//!   have passed since the last tested run; manual — never.

use chrono::{Datelike, NaiveDate, TimeDelta};

use super::model::{
    Busy, PlanInput, PlanScenario, SkipReason, StackAvailability, StackOption, Window,
};
use super::window::{night_of, night_window};
use crate::config::{Config, Stack};
use crate::fault::capabilities;
use crate::model::Environment;
use crate::model::RunOutcome;
use crate::scenario::{Cadence, Scenario};

/// How many recent passed runs feed a learned duration.
pub const LEARNED_SAMPLES: usize = 20;

/// One past run, the planner's view of a store row.
#[derive(Debug, Clone)]
pub struct PastRun {
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Start, UTC.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// End, UTC.
    pub ended_at: chrono::DateTime<chrono::Utc>,
    /// Outcome (never `interrupted`: a run that did not finish says nothing about the
    /// scenario's duration or cadence).
    pub outcome: RunOutcome,
}

impl PastRun {
    /// The planner's view of a finished store run; `None` while it runs or when it ended
    /// `interrupted`.
    pub fn from_record(run: &crate::store::RunRecord) -> Option<PastRun> {
        Some(PastRun {
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            started_at: run.started_at,
            ended_at: run.ended_at?,
            outcome: run.outcome().filter(|o| *o != RunOutcome::Interrupted)?,
        })
    }
}

/// How far back the run history feeding cadence (staleness) and learned durations goes, in days.
pub const HISTORY_DAYS: i64 = 60;

/// The finished runs of the [`HISTORY_DAYS`] before `before` (runs started at or after `before`
/// are left out, so re-planning tonight never learns from tonight), as the planner sees them.
/// The one reading of history shared by the daemon, the API and `f3-chaos plan`.
///
/// # Errors
/// The store's, when it cannot be read.
pub async fn past_runs(
    store: &crate::store::Store,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<PastRun>, crate::store::StoreError> {
    Ok(store
        .history(before - TimeDelta::days(HISTORY_DAYS))
        .await?
        .iter()
        .filter(|r| r.started_at < before)
        .filter_map(PastRun::from_record)
        .collect())
}

/// Builds the planner input for `night`. `history` may be empty (no store yet) and in any order.
pub fn plan_input(
    night: NaiveDate,
    config: &Config,
    scenarios: &[Scenario],
    history: &[PastRun],
) -> PlanInput {
    let window: Window = night_window(night, config.timezone, config.window);
    let stacks = config
        .stacks
        .values()
        .map(|s| stack_availability(s, window))
        .collect();

    let scenarios = scenarios
        .iter()
        .map(|sc| {
            let mut runs: Vec<&PastRun> =
                history.iter().filter(|r| r.scenario == sc.name).collect();
            runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
            let last_tested = runs
                .iter()
                .find(|r| r.outcome.tested_the_hypothesis())
                .map(|r| night_of(r.started_at, config.timezone, config.window));
            let (mut exclude, staleness) = due(night, sc.schedule.cadence, last_tested);
            let eligible: Vec<&Stack> = sc
                .targets
                .eligible_stacks
                .iter()
                .filter_map(|name| config.stacks.get(name))
                .filter(|s| s.environment != Environment::Production || sc.targets.allow_production)
                .collect();
            // Only the stacks whose driver can inject every fault of the scenario.
            let mut capable = Vec::new();
            let mut incapable = Vec::new();
            for stack in eligible {
                match capabilities::incapable(stack, sc).into_iter().next() {
                    Some(first) => incapable.push(first),
                    None => capable.push(stack),
                }
            }
            if exclude.is_none() && capable.is_empty() && !incapable.is_empty() {
                let detail: Vec<String> = incapable
                    .iter()
                    .map(|m| format!("{}: {m}", m.stack))
                    .collect();
                exclude = Some(SkipReason::NoCapableStack {
                    detail: detail.join("; "),
                });
            }
            let options = capable
                .into_iter()
                .map(|s| StackOption {
                    stack: s.name.clone(),
                    duration: learned_duration(&runs, &s.name)
                        .unwrap_or_else(|| sc.schedule.estimated_duration.as_chrono()),
                })
                .collect();
            PlanScenario {
                name: sc.name.clone(),
                options,
                weight: config.priority_weights.points(sc.schedule.priority) * staleness,
                after: sc.schedule.after.clone(),
                resources: sc.schedule.resources.clone(),
                exclude,
                incapable,
            }
        })
        .collect();

    PlanInput {
        night,
        window,
        cooldown: config.cooldown.as_chrono(),
        stacks,
        scenarios,
        resources: config.resources.clone(),
        frozen: Vec::new(),
        not_before: None,
    }
}

/// A stack as the planner sees it in `window`: its reservations that overlap the window become
/// busy spans (`reserved by HOLDER: REASON`).
pub fn stack_availability(stack: &Stack, window: Window) -> StackAvailability {
    StackAvailability {
        name: stack.name.clone(),
        busy: stack
            .reservations
            .iter()
            .filter(|r| r.start < window.end && window.start < r.end)
            .map(|r| Busy {
                span: Window {
                    start: r.start,
                    end: r.end,
                },
                reason: format!("reserved by {}: {}", r.holder, r.reason),
            })
            .collect(),
    }
}

/// p90 (nearest rank) of the durations of the most recent passed runs on `stack`; `runs` is
/// sorted newest first.
fn learned_duration(runs: &[&PastRun], stack: &str) -> Option<TimeDelta> {
    let mut d: Vec<TimeDelta> = runs
        .iter()
        .filter(|r| {
            r.stack == stack && r.outcome == RunOutcome::Passed && r.ended_at > r.started_at
        })
        .take(LEARNED_SAMPLES)
        .map(|r| r.ended_at - r.started_at)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    let rank = (d.len() * 9).div_ceil(10); // nearest rank: ceil(0.9 n), 1-based
    Some(d[rank.max(1) - 1])
}

/// Whether a scenario is due on `night`, and its staleness in tenths (10 = normal).
fn due(night: NaiveDate, cadence: Cadence, last: Option<NaiveDate>) -> (Option<SkipReason>, u64) {
    let since = last.map(|l| (night - l).num_days());
    let not_due = |detail: String| (Some(SkipReason::NotDue { detail }), 0);
    let stale = |period: i64| -> u64 {
        match since {
            None => 10,
            Some(k) => (10 * k / period.max(1)).clamp(10, 30) as u64,
        }
    };
    match cadence {
        Cadence::Manual => not_due("manual cadence: run by hand only".into()),
        Cadence::Nightly => match since {
            Some(k) if k < 1 => not_due("nightly, already tested tonight".into()),
            _ => (None, stale(1)),
        },
        Cadence::EveryNNights { nights } => match since {
            Some(k) if k < i64::from(nights) => not_due(format!(
                "every {nights} nights, last tested {k} night(s) ago"
            )),
            _ => (None, stale(i64::from(nights))),
        },
        Cadence::Weekly { weekday } => {
            let overdue = since.is_some_and(|k| k > 7);
            let on_day = night.weekday() == weekday && since.is_none_or(|k| k >= 1);
            if on_day || overdue {
                (None, stale(7))
            } else {
                not_due(format!("weekly on {weekday}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn plan_cadence_due_and_staleness() {
        let night = d(2026, 11, 23); // a Monday
        assert_eq!(due(night, Cadence::Nightly, None), (None, 10));
        assert_eq!(
            due(night, Cadence::Nightly, Some(d(2026, 11, 22))),
            (None, 10)
        );
        assert_eq!(
            due(night, Cadence::Nightly, Some(d(2026, 11, 20))),
            (None, 30)
        );
        assert!(due(night, Cadence::Nightly, Some(night)).0.is_some());
        let mon = Cadence::Weekly {
            weekday: chrono::Weekday::Mon,
        };
        let tue = Cadence::Weekly {
            weekday: chrono::Weekday::Tue,
        };
        assert_eq!(due(night, mon, Some(d(2026, 11, 16))), (None, 10));
        assert!(
            due(night, tue, Some(d(2026, 11, 17))).0.is_some(),
            "not its weekday"
        );
        assert_eq!(
            due(night, tue, Some(d(2026, 11, 10))),
            (None, 18),
            "overdue weekly catches up"
        );
        let every3 = Cadence::EveryNNights { nights: 3 };
        assert!(due(night, every3, Some(d(2026, 11, 21))).0.is_some());
        assert_eq!(due(night, every3, Some(d(2026, 11, 20))), (None, 10));
        assert_eq!(due(night, Cadence::Manual, None).1, 0);
    }

    #[test]
    fn plan_learned_duration_is_p90_of_passed_runs_on_that_stack() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .expect("valid")
            .to_utc();
        let runs: Vec<PastRun> = (1..=10)
            .map(|i| PastRun {
                scenario: "a".into(),
                stack: if i == 10 {
                    "other".into()
                } else {
                    "uat-alpha".into()
                },
                started_at: t0 + TimeDelta::days(i),
                ended_at: t0 + TimeDelta::days(i) + TimeDelta::minutes(10 * i),
                outcome: if i == 9 {
                    RunOutcome::Failed
                } else {
                    RunOutcome::Passed
                },
            })
            .collect();
        let refs: Vec<&PastRun> = runs.iter().rev().collect();
        // Passed on uat-alpha: 10..80 min (8 samples); nearest-rank p90 = ceil(7.2) = 8th = 80 min.
        assert_eq!(
            learned_duration(&refs, "uat-alpha"),
            Some(TimeDelta::minutes(80))
        );
        assert_eq!(learned_duration(&refs, "dev-1"), None);
    }
}
