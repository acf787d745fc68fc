//! The compiled, index-based form of a [`PlanInput`]: integer seconds from the window start, stacks,
//! jobs and resources by index. The solver, the feasibility checker and the exact-solver export all
//! read this one form, so they agree on what the problem is.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::model::{PlanInput, SkipReason};

/// Seconds since the window start.
pub type Secs = i64;

/// A stack: free spans inside `[0, horizon]`.
#[derive(Debug, Clone, Serialize)]
pub struct PStack {
    /// Stack name.
    pub name: String,
    /// Free spans `[a, b)` in seconds from the window start, sorted, disjoint.
    pub free: Vec<(Secs, Secs)>,
}

/// A job (scenario) of the compiled problem.
#[derive(Debug, Clone, Serialize)]
pub struct PJob {
    /// Scenario name.
    pub name: String,
    /// Weight (points).
    pub weight: u64,
    /// `(stack index, duration in seconds)`, stacks ascending, durations ≥ 1.
    pub options: Vec<(usize, Secs)>,
    /// Indices of the jobs that must end before this one starts.
    pub preds: Vec<usize>,
    /// Indices of the resources held while it runs.
    pub resources: Vec<usize>,
    /// Excluded before planning (not due, unknown `after:`), or `None`.
    #[serde(skip)]
    pub exclude: Option<SkipReason>,
    /// Already started (re-planning): `(stack, start, end)` in seconds; never moved.
    pub frozen: Option<(usize, Secs, Secs)>,
}

/// The compiled problem.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Window length in seconds.
    pub horizon: Secs,
    /// No new (non-frozen) job starts before this offset (re-planning "now"), seconds.
    pub release: Secs,
    /// Cooldown between two jobs on one stack, seconds.
    pub cooldown: Secs,
    /// Stacks by index.
    pub stacks: Vec<PStack>,
    /// Jobs by index.
    pub jobs: Vec<PJob>,
    /// `(name, capacity)` by index.
    pub resources: Vec<(String, u32)>,
    /// The window start (UTC), to convert back.
    #[serde(skip)]
    pub origin: DateTime<Utc>,
}

/// Whole seconds of a delta, rounded up (a 90.5 s estimate occupies 91 s).
fn ceil_secs(d: TimeDelta) -> Secs {
    let s = d.num_seconds();
    if d.subsec_nanos() > 0 { s + 1 } else { s }
}

impl Problem {
    /// Compiles a plan input. Total: unknown stacks in options are dropped, unknown `after:` names
    /// exclude the scenario (it cannot run after something that is not a candidate).
    pub fn compile(input: &PlanInput) -> Problem {
        let origin = input.window.start;
        let horizon = ceil_secs(input.window.length()).max(0);
        let offset = |t: DateTime<Utc>| -> Secs { (t - origin).num_seconds() };
        let release = input
            .not_before
            .map_or(0, |t| ceil_secs(t - origin).clamp(0, horizon));

        let mut stack_index: HashMap<&str, usize> = HashMap::new();
        let mut stacks = Vec::new();
        for s in &input.stacks {
            if stack_index.contains_key(s.name.as_str()) {
                continue;
            }
            let mut busy: Vec<(Secs, Secs)> = s
                .busy
                .iter()
                .map(|b| {
                    (
                        offset(b.span.start).max(0),
                        ceil_secs(b.span.end - origin).min(horizon),
                    )
                })
                .filter(|(a, b)| a < b)
                .collect();
            busy.sort_unstable();
            let mut free = Vec::new();
            let mut t = 0;
            for (a, b) in busy {
                if a > t {
                    free.push((t, a));
                }
                t = t.max(b);
            }
            if t < horizon {
                free.push((t, horizon));
            }
            stack_index.insert(&s.name, stacks.len());
            stacks.push(PStack {
                name: s.name.clone(),
                free,
            });
        }

        let mut resources: Vec<(String, u32)> = Vec::new();
        let mut resource_index: BTreeMap<String, usize> = BTreeMap::new();
        for (name, cap) in &input.resources {
            resource_index.insert(name.clone(), resources.len());
            resources.push((name.clone(), *cap));
        }

        // Scenario names → job index. Duplicate names: the first wins, later ones are ignored.
        let mut job_index: HashMap<&str, usize> = HashMap::new();
        let mut jobs: Vec<PJob> = Vec::new();
        for sc in &input.scenarios {
            if job_index.contains_key(sc.name.as_str()) {
                continue;
            }
            job_index.insert(&sc.name, jobs.len());
            let mut options: Vec<(usize, Secs)> = sc
                .options
                .iter()
                .filter_map(|o| {
                    stack_index
                        .get(o.stack.as_str())
                        .map(|&i| (i, ceil_secs(o.duration).max(1)))
                })
                .collect();
            options.sort_unstable();
            options.dedup_by_key(|o| o.0);
            let mut res = Vec::new();
            for r in &sc.resources {
                let i = *resource_index.entry(r.clone()).or_insert_with(|| {
                    resources.push((r.clone(), 1));
                    resources.len() - 1
                });
                if !res.contains(&i) {
                    res.push(i);
                }
            }
            jobs.push(PJob {
                name: sc.name.clone(),
                weight: sc.weight,
                options,
                preds: Vec::new(),
                resources: res,
                exclude: sc.exclude.clone(),
                frozen: None,
            });
        }
        for (j, sc) in input.scenarios.iter().enumerate() {
            if job_index.get(sc.name.as_str()) != Some(&j) {
                continue; // a duplicate, ignored above
            }
            for earlier in &sc.after {
                match job_index.get(earlier.as_str()) {
                    Some(&i) if i != j => {
                        if !jobs[j].preds.contains(&i) {
                            jobs[j].preds.push(i);
                        }
                    }
                    Some(_) | None => {
                        if jobs[j].exclude.is_none() {
                            jobs[j].exclude = Some(SkipReason::BlockedByAfter {
                                earlier: earlier.clone(),
                            });
                        }
                    }
                }
            }
        }

        // Frozen slots: attach to their job, or add a job for a scenario that is no longer a
        // candidate (it still holds its stack).
        for slot in &input.frozen {
            let Some(&s) = stack_index.get(slot.stack.as_str()) else {
                continue; // a stack that is gone holds nothing we plan on
            };
            let fz = (
                s,
                offset(slot.start),
                ceil_secs(slot.end - origin).max(offset(slot.start)),
            );
            match job_index.get(slot.scenario.as_str()) {
                Some(&j) => jobs[j].frozen = Some(fz),
                None => {
                    job_index.insert(&slot.scenario, jobs.len());
                    jobs.push(PJob {
                        name: slot.scenario.clone(),
                        weight: 0,
                        options: Vec::new(),
                        preds: Vec::new(),
                        resources: Vec::new(),
                        exclude: None,
                        frozen: Some(fz),
                    });
                }
            }
        }

        Problem {
            horizon,
            release,
            cooldown: ceil_secs(input.cooldown).max(0),
            stacks,
            jobs,
            resources,
            origin,
        }
    }

    /// The UTC instant of an offset.
    pub fn instant(&self, t: Secs) -> DateTime<Utc> {
        self.origin + TimeDelta::seconds(t)
    }

    /// The problem as JSON for external solvers (`bench/planner/cpsat.py`): integer seconds,
    /// indices; excluded jobs are left out of `jobs` and their successors are marked excluded too.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "horizon": self.horizon,
            "release": self.release,
            "cooldown": self.cooldown,
            "stacks": self.stacks,
            "resources": self.resources.iter().map(|(n, c)| serde_json::json!({"name": n, "capacity": c})).collect::<Vec<_>>(),
            "jobs": self.jobs.iter().map(|j| serde_json::json!({
                "name": j.name,
                "weight": j.weight,
                "options": j.options,
                "preds": j.preds,
                "resources": j.resources,
                "excluded": j.exclude.is_some(),
                "frozen": j.frozen,
            })).collect::<Vec<_>>(),
        })
    }
}
