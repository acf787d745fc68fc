//! Benchmark of the nightly planner (`cargo bench -p f3-chaos --bench plan`).
//!
//! Generates realistic nights (13 stacks: 4 production, 3 UAT, 6 dev; 50 / 300 / 2,000 scenarios;
//! see `f3_chaos::plan::generate`), plans each one, checks feasibility, and prints the solve time
//! (median of several runs), the objective, the construction-only objective and a capacity upper
//! bound (fractional knapsack over stack time). Each instance is exported as JSON to
//! `bench/planner/instances/` (override with `F3_PLAN_BENCH_DIR`) together with the planner's
//! objective, for `bench/planner/cpsat.py` (OR-Tools CP-SAT, 60 s) to compare against.
//!
//! `F3_PLAN_BENCH_SEEDS` = number of instances per size (default 3).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use f3_chaos::plan::problem::Problem;
use f3_chaos::plan::{SolverOptions, check, generate, plan_with};

/// Fractional-knapsack bound: every job shrinks to its shortest option plus one cooldown, all stack
/// free time (plus one cooldown per free span, since the last job needs none) is one pool.
fn capacity_bound(p: &Problem) -> f64 {
    let pool: i64 = p
        .stacks
        .iter()
        .flat_map(|s| s.free.iter().map(|(a, b)| b - a + p.cooldown))
        .sum();
    let mut items: Vec<(f64, i64)> = p
        .jobs
        .iter()
        .filter(|j| j.exclude.is_none() && !j.options.is_empty())
        .map(|j| {
            let d = j.options.iter().map(|o| o.1).min().unwrap_or(0) + p.cooldown;
            (j.weight as f64, d)
        })
        .collect();
    items.sort_by(|a, b| (b.0 / b.1 as f64).total_cmp(&(a.0 / a.1 as f64)));
    let mut left = pool as f64;
    let mut value = 0.0;
    for (w, d) in items {
        if left <= 0.0 {
            break;
        }
        let take = (left / d as f64).min(1.0);
        value += w * take;
        left -= d as f64 * take;
    }
    value
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::var_os("F3_PLAN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/planner/instances")
        });
    let seeds: u64 = std::env::var("F3_PLAN_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
    }
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10} {:>7}",
        "instance", "jobs", "median ms", "max ms", "objective", "greedy", "cap bound", "planned"
    );
    for n in [50usize, 300, 2000] {
        for seed in 1..=seeds {
            let input = generate::realistic_night(seed, n);
            let opts = SolverOptions::default();
            let runs = if n >= 2000 { 5 } else { 11 };
            let mut times = Vec::new();
            let mut plan = None;
            for _ in 0..runs {
                let t = Instant::now();
                let p = plan_with(&input, opts);
                times.push(t.elapsed());
                plan = Some(p);
            }
            let Some(plan) = plan else { continue };
            let violations = check::violations(&input, &plan);
            assert!(
                violations.is_empty(),
                "infeasible plan for n={n} seed={seed}: {violations:?}"
            );
            let greedy = plan_with(&input, SolverOptions { effort: 0, ..opts }).objective;
            let problem = Problem::compile(&input);
            let bound = capacity_bound(&problem);
            let max = times.iter().max().copied().unwrap_or_default();
            let med_ms = median(times).as_secs_f64() * 1e3;
            let name = format!("n{n}-s{seed}");
            println!(
                "{:<14} {:>6} {:>10.2} {:>10.2} {:>10} {:>9} {:>10.0} {:>7}",
                name,
                n,
                med_ms,
                max.as_secs_f64() * 1e3,
                plan.objective,
                greedy,
                bound,
                plan.slots.len()
            );
            let mut json = problem.to_json();
            json["name"] = name.clone().into();
            json["planner"] = serde_json::json!({
                "objective": plan.objective,
                "greedy": greedy,
                "capacity_bound": bound,
                "median_ms": med_ms,
            });
            let path = dir.join(format!("{name}.json"));
            if let Err(e) = std::fs::write(&path, json.to_string()) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    }
}
