//! Nightly window planner: packs scenarios into the chaos window across stacks.
//!
//! The problem is **weighted interval scheduling on unrelated parallel machines with eligibility,
//! release/deadline windows, precedence and shared resources** (see `docs/planner.md`): stacks are
//! the machines (each with its own free spans and a cooldown between jobs), a scenario's duration
//! depends on the stack, `after:` adds precedence across stacks, exclusive resources are cumulative
//! constraints across all stacks, and the objective is the total weight of the planned scenarios
//! (ties: earlier finishes).
//!
//! - [`plan`] / [`plan_with`]: the pure planner, [`PlanInput`] → [`Plan`]. No I/O, deterministic.
//! - [`replan`]: a new plan for the rest of a night that never moves what already started.
//! - [`plan_input`]: the adapter from config + compiled scenarios + run history.
//! - [`check::violations`]: an independent feasibility check.
//! - [`render`]: table, Gantt and JSON output for `f3-chaos plan`.

pub mod adapter;
pub mod check;
pub mod generate;
pub mod model;
pub mod problem;
mod reasons;
pub mod render;
pub mod rng;
pub mod solver;
pub mod window;

use std::collections::BTreeMap;

pub use adapter::{HISTORY_DAYS, PastRun, past_runs, plan_input};
pub use model::*;
pub use solver::SolverOptions;
pub use window::{NightCalendar, night_window};

use problem::Problem;
use solver::Ctx;

/// Plans a night with the default effort. Pure and deterministic: the same input gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    plan_with(input, SolverOptions::default())
}

/// Plans a night with explicit solver options.
pub fn plan_with(input: &PlanInput, opts: SolverOptions) -> Plan {
    let problem = Problem::compile(input);
    let ctx = Ctx::new(&problem);
    let (solution, mut dec, _, _) = solver::solve(&ctx, opts);

    let mut slots = Vec::new();
    let mut skipped = Vec::new();
    for (j, job) in problem.jobs.iter().enumerate() {
        match solution.place[j] {
            Some((s, start, end)) => slots.push(Slot {
                scenario: job.name.clone(),
                stack: problem.stacks[s].name.clone(),
                start: problem.instant(start),
                end: problem.instant(end),
            }),
            None => {
                let reason = reasons::reason(&ctx, &mut dec, j);
                skipped.push(Skipped {
                    scenario: job.name.clone(),
                    code: reason.code(),
                    reason,
                });
            }
        }
    }
    // Frozen slots keep their exact instants (the compiled form rounds to seconds).
    let frozen: BTreeMap<&str, &Slot> = input
        .frozen
        .iter()
        .map(|s| (s.scenario.as_str(), s))
        .collect();
    for slot in &mut slots {
        if let Some(f) = frozen.get(slot.scenario.as_str()) {
            slot.clone_from(f);
        }
    }
    slots.sort_by(|a, b| (a.start, &a.stack, &a.scenario).cmp(&(b.start, &b.stack, &b.scenario)));
    skipped.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    Plan {
        night: input.night,
        window: input.window,
        slots,
        skipped,
        objective: solution.weight,
    }
}

/// Re-plans the rest of a night. Runs that started are frozen exactly where they ran (a finished
/// run up to its actual end, a running one up to `max(expected end, now)`); nothing new starts
/// before `progress.now`; stacks that became unavailable are busy for the given spans. Scenarios
/// that started tonight are not planned again.
pub fn replan(input: &PlanInput, progress: &NightProgress) -> Plan {
    replan_with(input, progress, SolverOptions::default())
}

/// [`replan`] with explicit solver options.
pub fn replan_with(input: &PlanInput, progress: &NightProgress, opts: SolverOptions) -> Plan {
    plan_with(&replan_input(input, progress), opts)
}

/// The input [`replan`] plans: `input` with the started runs frozen, `not_before = now` and the
/// unavailable stacks' spans added as busy.
pub fn replan_input(input: &PlanInput, progress: &NightProgress) -> PlanInput {
    let mut next = input.clone();
    let started: BTreeMap<&str, &StartedRun> = progress
        .started
        .iter()
        .map(|r| (r.scenario.as_str(), r))
        .collect();
    next.frozen
        .retain(|s| !started.contains_key(s.scenario.as_str()));
    for run in started.values() {
        let end = match run.state {
            RunState::Running { expected_end } => expected_end.max(progress.now),
            RunState::Finished { ended_at } => ended_at,
        };
        next.frozen.push(Slot {
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            start: run.started_at,
            end: end.max(run.started_at),
        });
    }
    next.not_before = Some(
        next.not_before
            .map_or(progress.now, |t| t.max(progress.now)),
    );
    for (stack, busy) in &progress.unavailable {
        if let Some(s) = next.stacks.iter_mut().find(|s| &s.name == stack) {
            s.busy.push(busy.clone());
        }
    }
    next
}

#[cfg(test)]
mod tests;
