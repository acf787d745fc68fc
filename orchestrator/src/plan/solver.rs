//! The planning algorithm on the compiled [`Problem`].
//!
//! 1. **Construction** — a serial list scheduler. Jobs are taken in a priority list (value density
//!    `weight / (duration + cooldown)`, raised to the density of any successor so that `after:` chains
//!    are pulled along); a job whose predecessors are not decided yet waits for them. Each job goes to
//!    the eligible stack where it *finishes earliest*, at the earliest start that respects the stack's
//!    free spans, the cooldown around the stack's other slots, its predecessors' ends and the capacity
//!    timelines of its resources. A job that fits nowhere is skipped; so are its successors.
//! 2. **Improvement** — local search on the list (and an optional preferred stack per job): promote a
//!    skipped job, demote a planned one, swap two, pin a job to another stack; decode again, keep
//!    the change when the plan is not worse (total weight first, then earlier finishes). The budget
//!    is counted in work units (stack scans), not wall time, so the result is deterministic.

use std::cmp::Ordering;

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use super::problem::{Problem, Secs};
use super::rng::SplitMix64;

/// Tuning of the improvement phase.
#[derive(Debug, Clone, Copy)]
pub struct SolverOptions {
    /// Work budget of the improvement phase per schedulable scenario (at least 20 are assumed), in
    /// stack scans (≈ 20–40 ns each on one core). 0 = construction only. The default (2,500) spends
    /// about 25 ms on 300 scenarios and 150 ms on 2,000.
    pub effort: u64,
    /// Seed of the deterministic pseudo-random move choice.
    pub seed: u64,
}

impl Default for SolverOptions {
    fn default() -> Self {
        Self {
            effort: 2_500,
            seed: 0x5eed_f3c4_a05f_0001,
        }
    }
}

/// Where a job ended up: `(stack, start, end)` in seconds.
pub type Placement = (usize, Secs, Secs);

/// Job decision states inside the decoder.
const UNDECIDED: u8 = 0;
const PLANNED: u8 = 1;
const SKIPPED: u8 = 2;

/// A decoded schedule and its objective.
#[derive(Debug, Clone)]
pub struct Solution {
    /// Per job: its placement, or `None` when not planned.
    pub place: Vec<Option<Placement>>,
    /// Total weight of planned jobs.
    pub weight: u64,
    /// Sum of end offsets of planned jobs (seconds); smaller is better among equal weights.
    pub sum_end: i64,
}

impl Solution {
    fn better_than(&self, other: &Solution) -> Ordering {
        self.weight
            .cmp(&other.weight)
            .then(other.sum_end.cmp(&self.sum_end))
    }
}

/// Static facts about the problem used by every decode.
pub(crate) struct Ctx<'a> {
    pub p: &'a Problem,
    pub succs: Vec<Vec<usize>>,
    /// Jobs in an `after:` cycle (never planned), with one other member of the cycle.
    pub cyclic: Vec<Option<usize>>,
    /// Jobs the list scheduler may place: not frozen, not excluded, with options, not cyclic.
    pub schedulable: Vec<bool>,
}

impl<'a> Ctx<'a> {
    pub fn new(p: &'a Problem) -> Self {
        let n = p.jobs.len();
        let mut succs = vec![Vec::new(); n];
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::with_capacity(n, n);
        for j in 0..n {
            graph.add_node(j);
        }
        for (j, job) in p.jobs.iter().enumerate() {
            for &i in &job.preds {
                succs[i].push(j);
                graph.add_edge(i, j, ());
            }
        }
        let mut cyclic = vec![None; n];
        for scc in tarjan_scc(&graph) {
            if scc.len() > 1 {
                for (k, &j) in scc.iter().enumerate() {
                    cyclic[j] = Some(scc[(k + 1) % scc.len()]);
                }
            }
        }
        let schedulable = (0..n)
            .map(|j| {
                let job = &p.jobs[j];
                job.frozen.is_none()
                    && job.exclude.is_none()
                    && !job.options.is_empty()
                    && cyclic[j].is_none()
            })
            .collect();
        Ctx {
            p,
            succs,
            cyclic,
            schedulable,
        }
    }
}

/// Reusable buffers of the list decoder.
pub(crate) struct Decoder {
    /// Per stack: occupied `(start, end)` sorted by start (cooldown not included).
    pub stack_slots: Vec<Vec<(Secs, Secs)>>,
    /// Per stack: the longest duration that could still fit somewhere (upper bound).
    max_gap: Vec<Secs>,
    /// Per resource: held `(start, end)`.
    pub res_slots: Vec<Vec<(Secs, Secs)>>,
    pub place: Vec<Option<Placement>>,
    pub state: Vec<u8>,
    pending: Vec<u32>,
    seen: Vec<bool>,
    blocked: Vec<bool>,
    worklist: Vec<usize>,
    /// Work units spent (stack scans).
    pub work: u64,
}

impl Decoder {
    pub fn new(p: &Problem) -> Self {
        let n = p.jobs.len();
        Decoder {
            stack_slots: vec![Vec::new(); p.stacks.len()],
            max_gap: vec![0; p.stacks.len()],
            res_slots: vec![Vec::new(); p.resources.len()],
            place: vec![None; n],
            state: vec![UNDECIDED; n],
            pending: vec![0; n],
            seen: vec![false; n],
            blocked: vec![false; n],
            worklist: Vec::new(),
            work: 0,
        }
    }

    /// Decodes a priority list (and per-job preferred stacks) into a schedule.
    pub fn decode(&mut self, ctx: &Ctx<'_>, order: &[usize], pins: &[Option<usize>]) -> Solution {
        let p = ctx.p;
        // Resetting and copying the per-job arrays is work too.
        self.work += 1 + p.jobs.len() as u64 / 4;
        for v in &mut self.stack_slots {
            v.clear();
        }
        for v in &mut self.res_slots {
            v.clear();
        }
        self.place.fill(None);
        self.seen.fill(false);
        for (j, job) in p.jobs.iter().enumerate() {
            self.state[j] = if let Some(fz) = job.frozen {
                self.insert(p, j, fz);
                PLANNED
            } else if ctx.schedulable[j] {
                UNDECIDED
            } else {
                SKIPPED
            };
        }
        for s in 0..p.stacks.len() {
            self.max_gap[s] = self.gap_of(p, s);
        }
        for (j, job) in p.jobs.iter().enumerate() {
            self.pending[j] = job
                .preds
                .iter()
                .filter(|&&i| self.state[i] == UNDECIDED)
                .count() as u32;
            self.blocked[j] = job.preds.iter().any(|&i| self.state[i] == SKIPPED);
        }
        for &j in order {
            self.seen[j] = true;
            if self.pending[j] == 0 && self.state[j] == UNDECIDED {
                self.worklist.push(j);
                while let Some(k) = self.worklist.pop() {
                    self.process(ctx, k, pins);
                }
            }
        }
        let mut weight = 0;
        let mut sum_end = 0;
        for (j, job) in p.jobs.iter().enumerate() {
            if self.state[j] == UNDECIDED {
                self.state[j] = SKIPPED; // left waiting: only possible for unlisted jobs
            }
            if let Some((_, _, end)) = self.place[j] {
                weight += job.weight;
                if job.frozen.is_none() {
                    sum_end += end;
                }
            }
        }
        Solution {
            place: self.place.clone(),
            weight,
            sum_end,
        }
    }

    fn process(&mut self, ctx: &Ctx<'_>, j: usize, pins: &[Option<usize>]) {
        let p = ctx.p;
        let job = &p.jobs[j];
        let mut decided = SKIPPED;
        // Every decision costs one unit, so the search budget is finite even when no scan runs.
        self.work += 1;
        if !self.blocked[j] {
            let release = job
                .preds
                .iter()
                .filter_map(|&i| self.place[i].map(|pl| pl.2))
                .fold(p.release, Secs::max);
            let mut best: Option<(Secs, Secs, usize)> = None; // (finish, start, stack)
            for &(s, d) in &job.options {
                if d > self.max_gap[s] {
                    self.work += 1;
                    continue;
                }
                if let Some(t) = self.earliest(p, s, d, release, &job.resources, true) {
                    let cand = (t + d, t, s);
                    if pins.get(j).copied().flatten() == Some(s) {
                        best = Some(cand);
                        break;
                    }
                    if best.is_none_or(|b| cand < b) {
                        best = Some(cand);
                    }
                }
            }
            if let Some((end, start, s)) = best {
                self.insert(p, j, (s, start, end));
                self.max_gap[s] = self.gap_of(p, s);
                decided = PLANNED;
            }
        }
        self.state[j] = decided;
        for &k in &ctx.succs[j] {
            if decided == SKIPPED {
                self.blocked[k] = true;
            }
            self.pending[k] = self.pending[k].saturating_sub(1);
            if self.pending[k] == 0 && self.seen[k] && self.state[k] == UNDECIDED {
                self.worklist.push(k);
            }
        }
    }

    fn insert(&mut self, p: &Problem, j: usize, pl: Placement) {
        let (s, start, end) = pl;
        let slots = &mut self.stack_slots[s];
        let at = slots.partition_point(|&(st, _)| st < start);
        slots.insert(at, (start, end));
        for &r in &p.jobs[j].resources {
            self.res_slots[r].push((start, end));
        }
        self.place[j] = Some(pl);
    }

    /// Longest duration that could still start somewhere on stack `s` (ignores release and
    /// resources, so it is an upper bound used to skip hopeless scans).
    fn gap_of(&mut self, p: &Problem, s: usize) -> Secs {
        self.work += 1;
        let c = p.cooldown;
        let slots = &self.stack_slots[s];
        let mut gap = 0;
        for &(a, b) in &p.stacks[s].free {
            let mut t = a;
            for &(st, en) in slots {
                if en + c <= t {
                    continue;
                }
                if st >= b + c {
                    break;
                }
                gap = gap.max(b.min(st - c) - t);
                t = t.max(en + c);
                if t >= b {
                    break;
                }
            }
            gap = gap.max(b - t);
        }
        gap
    }

    /// Earliest start `≥ release` of a job of duration `d` on stack `s` that respects free spans,
    /// the cooldown around the stack's slots and (when `with_resources`) resource capacities.
    pub fn earliest(
        &mut self,
        p: &Problem,
        s: usize,
        d: Secs,
        release: Secs,
        resources: &[usize],
        with_resources: bool,
    ) -> Option<Secs> {
        let mut r = release;
        loop {
            let t = self.earliest_on_stack(p, s, d, r)?;
            if !with_resources {
                return Some(t);
            }
            match resources
                .iter()
                .find_map(|&q| self.resource_conflict(p, q, t, t + d))
            {
                None => return Some(t),
                Some(next) => r = next.max(t + 1),
            }
        }
    }

    fn earliest_on_stack(&mut self, p: &Problem, s: usize, d: Secs, release: Secs) -> Option<Secs> {
        self.work += 1;
        let c = p.cooldown;
        for &(a, b) in &p.stacks[s].free {
            let mut t = a.max(release);
            if b - t < d {
                continue;
            }
            for &(st, en) in &self.stack_slots[s] {
                if en + c <= t {
                    continue;
                }
                if t + d + c <= st {
                    break;
                }
                t = t.max(en + c);
                if t + d > b {
                    break;
                }
            }
            if t + d <= b {
                return Some(t);
            }
        }
        None
    }

    /// If holding resource `q` over `[t, e)` would exceed its capacity, the next instant worth
    /// trying (the earliest end among the overlapping holders).
    pub fn resource_conflict(&self, p: &Problem, q: usize, t: Secs, e: Secs) -> Option<Secs> {
        let cap = p.resources[q].1 as usize;
        let overlapping = self.res_slots[q]
            .iter()
            .filter(|&&(st, en)| st < e && en > t);
        if cap <= 1 {
            return overlapping.map(|&(_, en)| en).min();
        }
        let mut events: Vec<(Secs, i32)> = Vec::new();
        let mut first_end = Secs::MAX;
        for &(st, en) in overlapping {
            events.push((st.max(t), 1));
            events.push((en, -1));
            first_end = first_end.min(en);
        }
        if events.len() / 2 < cap {
            return None;
        }
        events.sort_unstable();
        let mut live = 0i32;
        for (_, delta) in events {
            live += delta;
            if live as usize >= cap {
                return Some(first_end);
            }
        }
        None
    }
}

/// Value density used for the initial list: weight per second of stack time (cooldown included),
/// raised to the density of any successor so that `after:` chains are scheduled together.
fn initial_order(ctx: &Ctx<'_>) -> (Vec<usize>, Vec<f64>) {
    let p = ctx.p;
    let n = p.jobs.len();
    let mut key: Vec<f64> = (0..n)
        .map(|j| {
            let job = &p.jobs[j];
            let dmin = job
                .options
                .iter()
                .map(|o| o.1)
                .min()
                .unwrap_or(Secs::MAX / 4);
            job.weight as f64 / (dmin + p.cooldown).max(1) as f64
        })
        .collect();
    // Propagate successor keys backwards along acyclic edges (a few passes cover long chains).
    let mut changed = true;
    let mut passes = 0;
    while changed && passes < 64 {
        changed = false;
        passes += 1;
        for j in 0..n {
            if ctx.cyclic[j].is_some() {
                continue;
            }
            let best_succ = ctx.succs[j]
                .iter()
                .filter(|&&k| ctx.schedulable[k])
                .map(|&k| key[k])
                .fold(f64::MIN, f64::max);
            if best_succ > key[j] {
                key[j] = best_succ;
                changed = true;
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&j| ctx.schedulable[j]).collect();
    order.sort_by(|&a, &b| {
        key[b]
            .total_cmp(&key[a])
            .then(p.jobs[a].options.len().cmp(&p.jobs[b].options.len()))
            .then(a.cmp(&b))
    });
    (order, key)
}

/// Runs construction and improvement; returns the best solution and the decoder holding it.
pub(crate) fn solve(
    ctx: &Ctx<'_>,
    opts: SolverOptions,
) -> (Solution, Decoder, Vec<usize>, Vec<Option<usize>>) {
    let p = ctx.p;
    let n = p.jobs.len();
    let mut dec = Decoder::new(p);
    let (mut order, key) = initial_order(ctx);
    let mut pins: Vec<Option<usize>> = vec![None; n];

    // A second start: heaviest first (density breaks ties). Keep the better one.
    let mut cur = dec.decode(ctx, &order, &pins);
    let mut by_weight = order.clone();
    by_weight.sort_by(|&a, &b| {
        p.jobs[b]
            .weight
            .cmp(&p.jobs[a].weight)
            .then(key[b].total_cmp(&key[a]))
            .then(a.cmp(&b))
    });
    let alt = dec.decode(ctx, &by_weight, &pins);
    if alt.better_than(&cur) == Ordering::Greater {
        cur = alt;
        order = by_weight;
    }
    let mut best = cur.clone();
    let mut best_order = order.clone();
    let mut best_pins = pins.clone();

    let m = order.len();
    let mut rng = SplitMix64::new(opts.seed);
    let budget = dec.work + opts.effort.saturating_mul(m.max(20) as u64);
    // Once every job is planned only earlier finishes can improve: stop after a short stall.
    let all_weight: u64 = p
        .jobs
        .iter()
        .enumerate()
        .filter(|(j, job)| ctx.schedulable[*j] || job.frozen.is_some())
        .map(|(_, job)| job.weight)
        .sum();
    let mut stall = 0u32;
    let mut skipped_pos: Vec<usize> = Vec::new();
    let mut planned_pos: Vec<usize> = Vec::new();
    while m > 1 && dec.work < budget && !(best.weight == all_weight && stall > 300) {
        stall += 1;
        skipped_pos.clear();
        planned_pos.clear();
        for (i, &j) in order.iter().enumerate() {
            if cur.place[j].is_some() {
                planned_pos.push(i);
            } else {
                skipped_pos.push(i);
            }
        }
        let roll = rng.below(100);
        // Each move records how to undo it.
        let undo: Undo = if roll < 45 && !skipped_pos.is_empty() {
            // Promote a skipped job to a random earlier place.
            let from = skipped_pos[rng.below(skipped_pos.len() as u64) as usize];
            let to = if from == 0 {
                0
            } else {
                rng.below(from as u64) as usize
            };
            move_item(&mut order, from, to);
            Undo::Move { from: to, to: from }
        } else if roll < 65 && !planned_pos.is_empty() {
            // Demote a planned job to a random later place.
            let from = planned_pos[rng.below(planned_pos.len() as u64) as usize];
            let to = from + 1 + rng.below((m - from) as u64) as usize;
            let to = to.min(m - 1);
            move_item(&mut order, from, to);
            Undo::Move { from: to, to: from }
        } else if roll < 85 && !planned_pos.is_empty() {
            // Swap a planned job with a random job.
            let a = planned_pos[rng.below(planned_pos.len() as u64) as usize];
            let b = rng.below(m as u64) as usize;
            order.swap(a, b);
            Undo::Swap(a, b)
        } else {
            // Pin a random planned job to one of its stacks (or unpin it).
            let pick = if planned_pos.is_empty() {
                rng.below(m as u64) as usize
            } else {
                planned_pos[rng.below(planned_pos.len() as u64) as usize]
            };
            let j = order[pick];
            let opts_j = &p.jobs[j].options;
            let k = rng.below(opts_j.len() as u64 + 1) as usize;
            let old = pins[j];
            pins[j] = opts_j.get(k).map(|o| o.0);
            Undo::Pin(j, old)
        };
        let cand = dec.decode(ctx, &order, &pins);
        let cmp = cand.better_than(&cur);
        let accept = cmp != Ordering::Less || (cand.weight == cur.weight && rng.below(100) < 10);
        if accept {
            cur = cand;
            if cur.better_than(&best) == Ordering::Greater {
                stall = 0;
                best = cur.clone();
                best_order.clone_from(&order);
                best_pins.clone_from(&pins);
            }
        } else {
            match undo {
                Undo::Move { from, to } => move_item(&mut order, from, to),
                Undo::Swap(a, b) => order.swap(a, b),
                Undo::Pin(j, old) => pins[j] = old,
            }
        }
    }
    // Leave the decoder holding the best solution (reasons are derived from its state).
    let best_again = dec.decode(ctx, &best_order, &best_pins);
    debug_assert_eq!(best_again.weight, best.weight);
    (best_again, dec, best_order, best_pins)
}

enum Undo {
    Move { from: usize, to: usize },
    Swap(usize, usize),
    Pin(usize, Option<usize>),
}

fn move_item(v: &mut [usize], from: usize, to: usize) {
    if from < to {
        v[from..=to].rotate_left(1);
    } else if to < from {
        v[to..=from].rotate_right(1);
    }
}
