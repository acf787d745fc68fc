#!/usr/bin/env python3
"""Exact-solver comparison for the f3-chaos nightly planner (benchmark-only tool).

Reads instances exported by `cargo bench -p f3-chaos --bench plan` (bench/planner/instances/*.json:
integer seconds from the window start, stacks with free spans, jobs with per-stack durations,
`after:` predecessors, resources with capacities) and solves each with OR-Tools CP-SAT under a time
limit, plus an LP-relaxation upper bound (GLOP). Prints one line per instance and writes
bench/planner/results.json.

Model (same constraints as the Rust planner, see docs/planner.md):
  * one optional interval per (job, eligible stack, free span of that stack where it fits);
    at most one is present per job; y_j = sum of presences;
  * per stack: NoOverlap over intervals of length duration + cooldown (so consecutive jobs are at
    least one cooldown apart; a job may end right at the window end or a reservation start);
  * per resource: Cumulative (demand 1, capacity c) over intervals of length duration;
  * after: y_j <= y_i and start_j >= end_i when j is present;
  * objective: maximise sum w_j y_j.

Usage:
  python3 -m venv bench/.venv && bench/.venv/bin/pip install ortools
  bench/.venv/bin/python bench/planner/cpsat.py [--time-limit 60] [--workers 2] [FILES...]
"""

import argparse
import glob
import json
import os
import sys
import time

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

HERE = os.path.dirname(os.path.abspath(__file__))


def active_jobs(inst):
    """Jobs that may be planned: not excluded, with options, all predecessors active (transitively)."""
    jobs = inst["jobs"]
    ok = [not j["excluded"] and bool(j["options"]) and j["frozen"] is None for j in jobs]
    changed = True
    while changed:
        changed = False
        for k, j in enumerate(jobs):
            if ok[k] and any(not ok[i] and jobs[i]["frozen"] is None for i in j["preds"]):
                ok[k] = False
                changed = True
    return ok


def solve_cpsat(inst, time_limit, workers):
    m = cp_model.CpModel()
    H = inst["horizon"]
    rel = inst["release"]
    c = inst["cooldown"]
    jobs = inst["jobs"]
    ok = active_jobs(inst)
    stack_iv = {s: [] for s in range(len(inst["stacks"]))}
    # Redundant knapsack rows per free span (sum of (d + c) over jobs placed in it <= length + c):
    # implied by NoOverlap, but they give CP-SAT's LP relaxation the capacity structure.
    span_load = {}
    res_iv = {r: [] for r in range(len(inst["resources"]))}
    y, start, end = {}, {}, {}
    for k, j in enumerate(jobs):
        if j["frozen"] is not None:
            s, a, b = j["frozen"]
            stack_iv[s].append(m.NewIntervalVar(a, b - a + c, b + c, f"fz{k}"))
            for r in j["resources"]:
                res_iv[r].append((m.NewIntervalVar(a, b - a, b, f"fzr{k}_{r}"), 1))
            continue
        if not ok[k]:
            continue
        lits = []
        st = m.NewIntVar(0, H, f"s{k}")
        en = m.NewIntVar(0, H, f"e{k}")
        for s, d in j["options"]:
            for (a, b) in inst["stacks"][s]["free"]:
                lo = max(a, rel)
                if b - lo < d:
                    continue
                x = m.NewBoolVar(f"x{k}_{s}_{a}")
                sv = m.NewIntVar(lo, b - d, f"t{k}_{s}_{a}")
                stack_iv[s].append(m.NewOptionalIntervalVar(sv, d + c, sv + d + c, x, f"i{k}_{s}_{a}"))
                for r in j["resources"]:
                    res_iv[r].append((m.NewOptionalIntervalVar(sv, d, sv + d, x, f"r{k}_{s}_{a}_{r}"), 1))
                m.Add(st == sv).OnlyEnforceIf(x)
                m.Add(en == sv + d).OnlyEnforceIf(x)
                lits.append(x)
                span_load.setdefault((s, a), (b - lo + c, []))[1].append((d + c, x))
        if not lits:
            ok[k] = False
            continue
        yk = m.NewBoolVar(f"y{k}")
        m.Add(sum(lits) == yk)
        y[k], start[k], end[k] = yk, st, en
    for k, j in enumerate(jobs):
        if k not in y:
            continue
        for i in j["preds"]:
            if jobs[i]["frozen"] is not None:
                m.Add(start[k] >= jobs[i]["frozen"][2])
            elif i in y:
                m.AddImplication(y[k], y[i])
                m.Add(start[k] >= end[i]).OnlyEnforceIf(y[k])
            else:
                m.Add(y[k] == 0)
    for cap, terms in span_load.values():
        if sum(w for w, _ in terms) > cap:
            m.Add(sum(w * x for w, x in terms) <= cap)
    for s, ivs in stack_iv.items():
        if len(ivs) > 1:
            m.AddNoOverlap(ivs)
    for r, ivs in res_iv.items():
        cap = inst["resources"][r]["capacity"]
        if ivs:
            m.AddCumulative([iv for iv, _ in ivs], [d for _, d in ivs], cap)
    frozen_w = sum(j["weight"] for j in jobs if j["frozen"] is not None)
    m.Maximize(sum(jobs[k]["weight"] * v for k, v in y.items()))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    t = time.time()
    status = solver.Solve(m)
    elapsed = time.time() - t
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        obj = int(round(solver.ObjectiveValue())) + frozen_w
        bound = int(solver.BestObjectiveBound()) + frozen_w
    else:
        obj, bound = None, None
    return {
        "status": solver.StatusName(status),
        "objective": obj,
        "bound": bound,
        "seconds": round(elapsed, 2),
    }


def lp_bound(inst):
    """LP relaxation upper bound: x_js in [0,1], sum_s x_js <= 1, per-stack time, resource time,
    x_j <= x_pred. Stack time per stack = sum over free spans of (length + cooldown)."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    jobs = inst["jobs"]
    ok = active_jobs(inst)
    c = inst["cooldown"]
    H = inst["horizon"]
    rel = inst["release"]
    x = {}
    for k, j in enumerate(jobs):
        if not ok[k]:
            continue
        for s, d in j["options"]:
            if any(b - max(a, rel) >= d for a, b in inst["stacks"][s]["free"]):
                x[(k, s)] = solver.NumVar(0, 1, f"x{k}_{s}")
    yk = {}
    for k in range(len(jobs)):
        vs = [v for (kk, _), v in x.items() if kk == k]
        if vs:
            yk[k] = solver.Sum(vs)
            solver.Add(yk[k] <= 1)
    for s, st in enumerate(inst["stacks"]):
        cap = sum(max(0, b - max(a, rel)) + c for a, b in st["free"] if b > rel)
        terms = [v * (d + c) for (k, ss), v in x.items() if ss == s for (s2, d) in jobs[k]["options"] if s2 == s]
        if terms:
            solver.Add(solver.Sum(terms) <= cap)
    for r, res in enumerate(inst["resources"]):
        terms = [v * d for (k, s), v in x.items() if r in jobs[k]["resources"] for (s2, d) in jobs[k]["options"] if s2 == s]
        if terms:
            solver.Add(solver.Sum(terms) <= res["capacity"] * (H - rel))
    for k, j in enumerate(jobs):
        if k in yk:
            for i in j["preds"]:
                if i in yk:
                    solver.Add(yk[k] <= yk[i])
    solver.Maximize(solver.Sum([jobs[k]["weight"] * v for k, v in yk.items()]))
    solver.Solve()
    frozen_w = sum(j["weight"] for j in jobs if j["frozen"] is not None)
    return solver.Objective().Value() + frozen_w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=60.0, help="CP-SAT limit per instance, seconds")
    ap.add_argument("--workers", type=int, default=2, help="CP-SAT search workers (threads)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or sorted(
        glob.glob(os.path.join(HERE, "instances", "*.json")),
        key=lambda f: (int(os.path.basename(f).split("-")[0][1:]), f),
    )
    results = []
    print(f"{'instance':<14} {'planner':>8} {'cpsat':>8} {'status':>9} {'cp bound':>9} {'lp bound':>9} {'ratio':>7} {'cp s':>6}")
    for f in files:
        inst = json.load(open(f))
        cp = solve_cpsat(inst, args.time_limit, args.workers)
        lp = lp_bound(inst)
        ours = inst.get("planner", {}).get("objective")
        ratio = (ours / cp["objective"]) if (ours is not None and cp["objective"]) else None
        row = {"instance": inst.get("name", os.path.basename(f)), "jobs": len(inst["jobs"]), "planner": ours,
               "planner_ms": inst.get("planner", {}).get("median_ms"), "cpsat": cp, "lp_bound": round(lp, 1),
               "ratio": ratio}
        results.append(row)
        print(f"{row['instance']:<14} {str(ours):>8} {str(cp['objective']):>8} {cp['status']:>9} "
              f"{str(cp['bound']):>9} {lp:>9.0f} {(f'{ratio:.4f}' if ratio else '-'):>7} {cp['seconds']:>6}",
              flush=True)
        json.dump(results, open(args.out, "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
