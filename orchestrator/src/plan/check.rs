//! An independent feasibility check of a [`Plan`] against its [`PlanInput`]: used by the property
//! tests and the benchmark, and cheap enough to assert in debug builds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::model::{Plan, PlanInput};

/// Every constraint a plan breaks, in plain English (empty = feasible). Checks: known scenarios and
/// stacks, eligibility and duration, inside the window, after `not_before`, clear of busy spans,
/// no overlap on a stack with the cooldown, `after:` precedence, resource capacity, frozen slots
/// unchanged, every other candidate skipped exactly once, and the objective.
pub fn violations(input: &PlanInput, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let frozen: BTreeSet<&str> = input.frozen.iter().map(|s| s.scenario.as_str()).collect();
    let scenarios: BTreeMap<&str, _> = input
        .scenarios
        .iter()
        .rev()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let stacks: BTreeMap<&str, _> = input.stacks.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut planned: BTreeMap<&str, &super::Slot> = BTreeMap::new();
    let not_before = input
        .not_before
        .unwrap_or(input.window.start)
        .max(input.window.start);

    for f in &input.frozen {
        if !plan.slots.contains(f) && stacks.contains_key(f.stack.as_str()) {
            out.push(format!("frozen slot {f:?} moved or dropped"));
        }
    }
    for slot in &plan.slots {
        if planned.insert(&slot.scenario, slot).is_some() {
            out.push(format!("{} planned twice", slot.scenario));
        }
        if frozen.contains(slot.scenario.as_str()) {
            continue;
        }
        let Some(sc) = scenarios.get(slot.scenario.as_str()) else {
            out.push(format!("{} is not a candidate", slot.scenario));
            continue;
        };
        if sc.exclude.is_some() {
            out.push(format!("{} was excluded but is planned", sc.name));
        }
        match sc.options.iter().find(|o| o.stack == slot.stack) {
            None => out.push(format!("{} is not eligible for {}", sc.name, slot.stack)),
            Some(o) if slot.end - slot.start < o.duration => out.push(format!(
                "{} on {} is shorter than its duration",
                sc.name, slot.stack
            )),
            Some(_) => {}
        }
        if slot.start < not_before || slot.end > input.window.end {
            out.push(format!(
                "{} at {}–{} is outside the window",
                sc.name, slot.start, slot.end
            ));
        }
        if let Some(st) = stacks.get(slot.stack.as_str()) {
            for b in &st.busy {
                if slot.start < b.span.end && b.span.start < slot.end {
                    out.push(format!(
                        "{} overlaps busy span {:?} of {}",
                        sc.name, b.span, st.name
                    ));
                }
            }
        }
    }
    // Stacks: no overlap, cooldown between consecutive experiments.
    let mut by_stack: BTreeMap<&str, Vec<&super::Slot>> = BTreeMap::new();
    for s in &plan.slots {
        by_stack.entry(&s.stack).or_default().push(s);
    }
    for (stack, mut slots) in by_stack {
        slots.sort_by_key(|s| s.start);
        for w in slots.windows(2) {
            let both_frozen =
                frozen.contains(w[0].scenario.as_str()) && frozen.contains(w[1].scenario.as_str());
            if !both_frozen && w[0].end + input.cooldown > w[1].start {
                out.push(format!(
                    "{} and {} too close on {stack}",
                    w[0].scenario, w[1].scenario
                ));
            }
        }
    }
    // Precedence.
    for slot in &plan.slots {
        if frozen.contains(slot.scenario.as_str()) {
            continue;
        }
        if let Some(sc) = scenarios.get(slot.scenario.as_str()) {
            for earlier in &sc.after {
                match planned.get(earlier.as_str()) {
                    None => out.push(format!("{} planned without its after: {earlier}", sc.name)),
                    Some(e) if e.end > slot.start => {
                        out.push(format!("{} starts before {earlier} ends", sc.name))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    // Resources.
    // Per resource: (instant, +1 acquire / -1 release, whether the slot is frozen).
    #[allow(
        clippy::type_complexity,
        reason = "a local tally, described by the comment above"
    )]
    let mut holders: BTreeMap<&str, Vec<(DateTime<Utc>, i32, bool)>> = BTreeMap::new();
    for slot in &plan.slots {
        if let Some(sc) = scenarios.get(slot.scenario.as_str()) {
            let is_frozen = frozen.contains(slot.scenario.as_str());
            for r in &sc.resources {
                let ev = holders.entry(r).or_default();
                ev.push((slot.start, 1, is_frozen));
                ev.push((slot.end, -1, is_frozen));
            }
        }
    }
    for (r, mut ev) in holders {
        let cap = input.resources.get(r).copied().unwrap_or(1) as i32;
        ev.sort_by_key(|e| (e.0, e.1));
        let (mut live, mut live_new) = (0, 0);
        for (t, delta, is_frozen) in ev {
            live += delta;
            if !is_frozen {
                live_new += delta;
            }
            // Frozen runs may have overrun into each other; only new slots must respect capacity.
            if live > cap && live_new > 0 {
                out.push(format!("resource {r} over capacity {cap} at {t}"));
                break;
            }
        }
    }
    // Skipped: every other candidate exactly once.
    let mut seen = BTreeSet::new();
    for s in &plan.skipped {
        if !seen.insert(s.scenario.as_str()) {
            out.push(format!("{} skipped twice", s.scenario));
        }
        if planned.contains_key(s.scenario.as_str()) {
            out.push(format!("{} both planned and skipped", s.scenario));
        }
    }
    for name in scenarios.keys() {
        if !planned.contains_key(name) && !seen.contains(name) {
            out.push(format!("{name} neither planned nor skipped"));
        }
    }
    let objective: u64 = planned
        .keys()
        .filter_map(|n| scenarios.get(n))
        .map(|s| s.weight)
        .sum();
    if objective != plan.objective {
        out.push(format!(
            "objective {} but planned weights sum to {objective}",
            plan.objective
        ));
    }
    out
}
