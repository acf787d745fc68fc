//! The night page's Gantt: per stack, one lane per scenario with its slot in the night's first
//! plan, its slot in the final plan and the runs that actually happened (coloured by outcome),
//! all placed on one time axis (the plan's window widened to cover every run).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use serde::{Deserialize, Serialize};

use super::DashboardState;
use crate::duration::HumanDuration;
use crate::store::{RunRecord, StoredPlan};

/// The part of the planner's `Plan` JSON the dashboard reads (other fields are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct PlanView {
    /// The chaos window, UTC.
    pub window: Option<WindowView>,
    /// Planned slots.
    #[serde(default)]
    pub slots: Vec<SlotView>,
    /// Scenarios left out, with the planner's plain-English reason.
    #[serde(default)]
    pub skipped: Vec<SkippedView>,
}

/// `Plan.window`.
#[derive(Debug, Deserialize)]
pub(crate) struct WindowView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `Plan.slots[]`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlotView {
    pub scenario: String,
    pub stack: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `Plan.skipped[]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct SkippedView {
    pub scenario: String,
    pub reason: String,
    #[serde(default)]
    pub code: String,
}

impl PlanView {
    /// The stored plan's JSON read as a view; a plan that does not have the expected shape
    /// (written by another version) reads as empty rather than failing the page.
    pub fn of(plan: &StoredPlan) -> PlanView {
        PlanView::deserialize(&plan.plan).unwrap_or(PlanView {
            window: None,
            slots: Vec::new(),
            skipped: Vec::new(),
        })
    }

    /// Length of the slot of `scenario` on `stack` in a plan's JSON text, parsing only the
    /// slots (borrowed strings, every other field skipped): the scenario page looks up one slot
    /// in each of up to 60 plans of ~300 slots.
    pub fn slot_length(plan: &str, scenario: &str, stack: &str) -> Option<Duration> {
        #[derive(Deserialize)]
        struct Slots<'a> {
            #[serde(borrow)]
            slots: Vec<SlotRef<'a>>,
        }
        #[derive(Deserialize)]
        struct SlotRef<'a> {
            scenario: &'a str,
            stack: &'a str,
            start: &'a str,
            end: &'a str,
        }
        let plan: Slots<'_> = serde_json::from_str(plan).ok()?;
        let slot = plan
            .slots
            .iter()
            .find(|s| s.scenario == scenario && s.stack == stack)?;
        let end = slot.end.parse::<DateTime<Utc>>().ok()?;
        Some(end - slot.start.parse::<DateTime<Utc>>().ok()?)
    }

    /// The slot of `scenario` on `stack`, if planned.
    pub fn slot(&self, scenario: &str, stack: &str) -> Option<&SlotView> {
        self.slots
            .iter()
            .find(|s| s.scenario == scenario && s.stack == stack)
    }
}

/// A bar on the time axis: `left` and `width` in percent of the axis.
#[derive(Debug, Serialize)]
pub(crate) struct Bar {
    left: f64,
    width: f64,
    /// `HH:MM–HH:MM` in the display zone.
    label: String,
}

/// One run drawn in a lane.
#[derive(Debug, Serialize)]
pub(crate) struct ActualBar {
    #[serde(flatten)]
    bar: Bar,
    id: String,
    status: String,
}

/// One scenario on one stack.
#[derive(Debug, Serialize)]
pub(crate) struct Lane {
    scenario: String,
    /// Slot in the night's first plan, when it differs from the final one.
    first: Option<Bar>,
    /// Slot in the final (latest) plan.
    planned: Option<Bar>,
    /// The runs of this scenario on this stack tonight, oldest first.
    actual: Vec<ActualBar>,
    /// The outcome of the last run, `not-run` when a planned slot has no run.
    status: String,
    /// Actual minus planned duration of the last run, e.g. `+4m`, when both exist.
    delta: Option<String>,
}

/// One stack's Gantt.
#[derive(Debug, Serialize)]
pub(crate) struct StackGantt {
    stack: String,
    lanes: Vec<Lane>,
}

/// An hour mark on the axis.
#[derive(Debug, Serialize)]
pub(crate) struct Tick {
    left: f64,
    label: String,
}

/// The whole chart: stacks (by name), hour ticks, and the axis edges in the display zone.
#[derive(Debug, Serialize)]
pub(crate) struct Gantt {
    stacks: Vec<StackGantt>,
    ticks: Vec<Tick>,
    start: String,
    end: String,
}

struct Axis {
    start: i64,
    span: f64,
}

impl Axis {
    fn bar(&self, state: &DashboardState, a: DateTime<Utc>, b: DateTime<Utc>) -> Bar {
        let (s, e) = (
            a.timestamp_millis(),
            b.timestamp_millis().max(a.timestamp_millis()),
        );
        Bar {
            left: ((s - self.start) as f64 / self.span * 100.0).clamp(0.0, 100.0),
            width: ((e - s) as f64 / self.span * 100.0).clamp(0.4, 100.0),
            label: format!(
                "{}–{}",
                super::pages::local(state, a, "%H:%M:%S"),
                super::pages::local(state, b, "%H:%M:%S")
            ),
        }
    }
}

/// Builds the Gantt of a night from its `runs` (any order) and its first and final plans.
pub(crate) fn build(
    state: &DashboardState,
    runs: &[RunRecord],
    first: Option<&PlanView>,
    last: Option<&PlanView>,
) -> Gantt {
    let end_of = |r: &RunRecord| r.ended_at.unwrap_or(r.heartbeat_at);
    let mut edges: Vec<DateTime<Utc>> = Vec::new();
    for plan in [first, last].into_iter().flatten() {
        if let Some(w) = &plan.window {
            edges.extend([w.start, w.end]);
        }
        edges.extend(plan.slots.iter().flat_map(|s| [s.start, s.end]));
    }
    edges.extend(runs.iter().flat_map(|r| [r.started_at, end_of(r)]));
    let (Some(lo), Some(hi)) = (edges.iter().min().copied(), edges.iter().max().copied()) else {
        return Gantt {
            stacks: Vec::new(),
            ticks: Vec::new(),
            start: String::new(),
            end: String::new(),
        };
    };
    let axis = Axis {
        start: lo.timestamp_millis(),
        span: ((hi - lo).num_milliseconds().max(60_000)) as f64,
    };
    // Lanes keyed by stack, then scenario, in name order.
    let mut lanes: BTreeMap<(String, String), Lane> = BTreeMap::new();
    if let Some(plan) = last {
        for s in &plan.slots {
            let key = (s.stack.clone(), s.scenario.clone());
            let entry = lanes.entry(key).or_insert_with(|| empty_lane(&s.scenario));
            entry.planned = Some(axis.bar(state, s.start, s.end));
        }
    }
    if let Some(plan) = first {
        for s in &plan.slots {
            let moved = last
                .and_then(|l| l.slot(&s.scenario, &s.stack))
                .is_none_or(|f| f.start != s.start || f.end != s.end);
            if moved {
                let key = (s.stack.clone(), s.scenario.clone());
                let entry = lanes.entry(key).or_insert_with(|| empty_lane(&s.scenario));
                entry.first = Some(axis.bar(state, s.start, s.end));
            }
        }
    }
    let mut sorted: Vec<&RunRecord> = runs.iter().collect();
    sorted.sort_by_key(|r| (r.started_at, r.id));
    for run in sorted {
        let key = (run.stack.clone(), run.scenario.clone());
        let entry = lanes
            .entry(key)
            .or_insert_with(|| empty_lane(&run.scenario));
        entry.actual.push(ActualBar {
            bar: axis.bar(state, run.started_at, end_of(run)),
            id: run.id.to_string(),
            status: run.status.to_string(),
        });
        entry.status = run.status.to_string();
        entry.delta = last
            .and_then(|l| l.slot(&run.scenario, &run.stack))
            .zip(run.ended_at)
            .map(|(slot, ended)| signed_delta((ended - run.started_at) - (slot.end - slot.start)));
    }
    let mut stacks: Vec<StackGantt> = Vec::new();
    for ((stack, _), lane) in lanes {
        match stacks.last_mut() {
            Some(g) if g.stack == stack => g.lanes.push(lane),
            _ => stacks.push(StackGantt {
                stack,
                lanes: vec![lane],
            }),
        }
    }
    Gantt {
        stacks,
        ticks: ticks(state, &axis, lo, hi),
        start: super::pages::local(state, lo, "%H:%M:%S"),
        end: super::pages::local(state, hi, "%H:%M:%S"),
    }
}

fn empty_lane(scenario: &str) -> Lane {
    Lane {
        scenario: scenario.to_owned(),
        first: None,
        planned: None,
        actual: Vec::new(),
        status: "not-run".to_owned(),
        delta: None,
    }
}

/// How much longer (`+4m10s`, `+16s`) or shorter (`-12m`) a run took than its slot, to the
/// whole second; `±0s` when it took exactly its slot.
fn signed_delta(d: Duration) -> String {
    let secs = d.num_seconds();
    let magnitude = HumanDuration::from_secs(secs.unsigned_abs());
    match secs {
        0 => "±0s".to_owned(),
        s if s > 0 => format!("+{magnitude}"),
        _ => format!("-{magnitude}"),
    }
}

/// Marks at every whole hour inside the axis (UTC hours; every zone we show is whole-hour
/// offset, so these are whole hours locally too), labelled in the display zone.
fn ticks(state: &DashboardState, axis: &Axis, lo: DateTime<Utc>, hi: DateTime<Utc>) -> Vec<Tick> {
    let Ok(mut t) = lo.duration_trunc(Duration::hours(1)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while t <= hi && out.len() < 48 {
        if t >= lo {
            out.push(Tick {
                left: (t.timestamp_millis() - axis.start) as f64 / axis.span * 100.0,
                label: super::pages::local(state, t, "%H:%M"),
            });
        }
        t += Duration::hours(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::signed_delta;
    use chrono::Duration;

    #[test]
    fn deltas_are_signed_to_the_second() {
        assert_eq!(signed_delta(Duration::seconds(250)), "+4m10s");
        assert_eq!(signed_delta(Duration::minutes(-12)), "-12m");
        assert_eq!(signed_delta(Duration::seconds(16)), "+16s");
        assert_eq!(signed_delta(Duration::milliseconds(400)), "±0s");
    }
}
