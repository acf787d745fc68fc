//! Why each unplanned scenario is unplanned, derived from the final schedule.
//!
//! The checks run in the order people ask them: is it due, can it run anywhere, is it waiting for an
//! `after:` scenario, could it fit even on empty stacks, was there room but a resource was taken,
//! and otherwise the time went to more valuable scenarios.

use super::model::SkipReason;
use super::problem::{Problem, Secs};
use super::solver::{Ctx, Decoder};

/// The reason job `j` (not planned in the decoder's current schedule) is left out.
pub(crate) fn reason(ctx: &Ctx<'_>, dec: &mut Decoder, j: usize) -> SkipReason {
    let p: &Problem = ctx.p;
    let job = &p.jobs[j];
    if let Some(r) = &job.exclude {
        return r.clone();
    }
    if let Some(other) = ctx.cyclic[j] {
        return SkipReason::BlockedByAfter {
            earlier: format!("{} (an `after:` cycle)", p.jobs[other].name),
        };
    }
    if job
        .options
        .iter()
        .all(|&(s, _)| p.stacks[s].free.is_empty())
    {
        return SkipReason::NoEligibleStack;
    }
    let mut preds: Vec<usize> = job.preds.clone();
    preds.sort_by(|&a, &b| p.jobs[a].name.cmp(&p.jobs[b].name));
    if let Some(&i) = preds.iter().find(|&&i| dec.place[i].is_none()) {
        return SkipReason::BlockedByAfter {
            earlier: p.jobs[i].name.clone(),
        };
    }
    let release: Secs = job
        .preds
        .iter()
        .filter_map(|&i| dec.place[i].map(|pl| pl.2))
        .fold(p.release, Secs::max);
    let fits_alone = job.options.iter().any(|&(s, d)| {
        p.stacks[s]
            .free
            .iter()
            .any(|&(a, b)| b - a.max(release) >= d)
    });
    if !fits_alone {
        return SkipReason::DoesNotFit;
    }
    for &(s, d) in &job.options {
        if let Some(t) = dec.earliest(p, s, d, release, &job.resources, false) {
            if let Some(&q) = job
                .resources
                .iter()
                .find(|&&q| dec.resource_conflict(p, q, t, t + d).is_some())
            {
                return SkipReason::ResourceBusy {
                    resource: p.resources[q].0.clone(),
                };
            }
        }
    }
    SkipReason::LostToHigherPriority
}
