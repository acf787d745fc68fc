//! Benchmark: validating 1,000 scenario files (goal: under 1 s on the 2-core CI machine), one
//! 1 MB scenario file (goal: under 1 s), and deeply nested files (refused at once).
//!
//! Generates 1,000 distinct scenarios in a temporary directory (every fault kind, inline PromQL
//! that differs per file so the PromQL cache cannot hide parsing, SLO references, `after:`
//! chains), then times `check_paths` over them plus the shipped catalogue and the local config,
//! exactly what `f3-chaos validate DIR assertions config/local` does. Then the same for a single
//! scenario of 1 MB (thousands of Then steps), valid and with an error in every step, and for
//! 200 KB of nested flow sequences and of nested block mappings. Prints the figures.
//!
//! Run: `cargo bench -p f3-chaos --bench validate`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use f3_chaos::scenario::{Checked, check_paths};

const SCENARIOS: usize = 1_000;
const RUNS: usize = 5;

fn fault(i: usize) -> String {
    let cloud = ["gcp", "aws", "azure"][i % 3];
    match i % 5 {
        0 => format!("    - kind: cloud-loss\n      name: {cloud} lost\n      cloud: {cloud}\n      duration: 30s\n"),
        1 => format!(
            "    - kind: network-partition\n      name: partition {i}\n      selector: {{cloud: {cloud}, app: payment-node}}\n      target: {{cloud: aws}}\n      direction: both\n      externalTargets: [fps-gw-1.scheme.example.net, 198.51.100.0/28]\n      duration: 45s\n"
        ),
        2 => format!(
            "    - kind: pod-kill\n      name: node {i} killed\n      selector: {{cloud: {cloud}, app: payment-node}}\n      maxPods: 1\n      duration: 30s\n"
        ),
        3 => format!(
            "    - kind: network-delay\n      name: slow {cloud}\n      selector: {{cloud: {cloud}}}\n      latency: {}ms\n      jitter: 10ms\n      duration: 30s\n",
            50 + i % 200
        ),
        _ => "    - kind: stress\n      name: gateway stressed\n      selector: {app: gateway}\n      cpuWorkers: 2\n      cpuLoadPercent: 80\n      duration: 45s\n".to_owned(),
    }
}

fn scenario(i: usize) -> String {
    let cloud = ["gcp", "aws", "azure"][i % 3];
    let after = if i % 10 > 0 {
        format!("    after: [bench-{:04}]\n", i - 1)
    } else {
        String::new()
    };
    format!(
        "apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: bench-{i:04}
  description: Generated scenario number {i} for the validate benchmark.
  owner: sre-chaos
  tags: [bench, {cloud}]
spec:
  targets:
    selector:
      platform: payments
  schedule:
    cadence: nightly
    priority: high
    estimatedDuration: 2m
{after}  given:
    - kind: steady-state
      name: The platform is healthy
      slo: gateway-all-backends-healthy
    - kind: steady-state
      name: Enough {cloud} traffic
      query: sum(rate(payments_total{{outcome=\"success\",cloud=\"{cloud}\"}}[{w}s])) > bool {i}
      op: \">=\"
      threshold: 0
    - kind: load
      name: Steady load
      tps: {tps}
      settleWithin: 20s
  when:
{fault}  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
    - name: Service SLO success rate
      owner: infrastructure
      slo: payments-success-ratio
      threshold: 0.999
    - name: Failover counted
      owner: sre-chaos
      query: sum(increase(gateway_failovers_total{{from_cloud=\"{cloud}\"}}[{m}m]))
      op: \">\"
      threshold: 0
      hold: at-end
    - name: Back within 30s
      owner: infrastructure
      query: min(gateway_backend_healthy{{cloud=\"{cloud}\",node!=\"n{i}\"}})
      op: \"==\"
      threshold: 1
      hold:
        recover-within: 30s
  abort:
    - name: Success ratio collapsed
      query: sum(rate(payments_total{{outcome=\"success\"}}[{w}s])) / sum(rate(payments_total[{w}s]))
      op: \"<\"
      threshold: 0.9
",
        w = 10 + i % 50,
        m = 1 + i % 7,
        tps = 100 + i % 300,
        fault = fault(i),
    )
}

/// A valid scenario of at least `bytes` bytes: the reference scenario's shape with as many Then
/// steps as it takes, every other one an inline query that differs per step. With `broken`,
/// every step names an unknown owner team.
fn big_scenario(bytes: usize, broken: bool) -> String {
    let mut text = String::from(
        "apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: big-scenario
  description: One scenario of a megabyte, for the validate benchmark.
  owner: sre-chaos
spec:
  targets:
    selector:
      platform: payments
  schedule:
    cadence: nightly
    estimatedDuration: 2m
  given:
    - kind: load
      name: Steady load
      tps: 300
      settleWithin: 20s
  when:
    - kind: cloud-loss
      name: GCP lost
      cloud: gcp
      duration: 30s
  then:
",
    );
    let owner = if broken { "paymnts" } else { "payments" };
    let mut i = 0;
    while text.len() < bytes {
        if i % 2 == 0 {
            text.push_str(&format!(
                "    - name: Product SLO latency, check {i}
      owner: {owner}
      slo: payments-e2e-latency-p99
      hold: during-fault
"
            ));
        } else {
            text.push_str(&format!(
                "    - name: GCP backends back, check {i}
      owner: {owner}
      query: min(gateway_backend_healthy{{cloud=\"gcp\",node!=\"n{i}\"}})
      op: \"==\"
      threshold: 1
      hold:
        recover-within: 30s
"
            ));
        }
        i += 1;
    }
    text
}

/// Validates `file` with the shipped catalogue and the local config `runs` times; the fastest
/// run and the last result.
fn time_validate(repo: &Path, file: &Path, runs: usize) -> (Duration, Checked) {
    let paths = vec![
        file.to_owned(),
        repo.join("assertions"),
        repo.join("config/local"),
    ];
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let checked = check_paths(&paths, None);
        best = best.min(start.elapsed());
        last = Some(checked);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("temporary directory");
    let t0 = Instant::now();
    for i in 0..SCENARIOS {
        std::fs::write(dir.path().join(format!("bench-{i:04}.yaml")), scenario(i))
            .expect("write scenario");
    }
    let generate = t0.elapsed();
    let paths = vec![
        dir.path().to_owned(),
        repo.join("assertions"),
        repo.join("config/local"),
    ];

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut compiled = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let checked = check_paths(&paths, None);
        times.push(start.elapsed());
        assert!(
            !checked.diagnostics.has_errors(),
            "generated scenarios must be valid:\n{}",
            checked.diagnostics
        );
        compiled = checked.library.map(|l| l.scenarios.len()).unwrap_or(0);
    }
    assert_eq!(compiled, SCENARIOS);
    times.sort();
    let median = times[RUNS / 2];
    let per_file = median.as_secs_f64() * 1e6 / SCENARIOS as f64;
    println!("validate: generated {SCENARIOS} scenario files in {generate:.2?}");
    println!(
        "validate: {SCENARIOS} scenarios + catalogue + config: min {:.1?}, median {median:.1?}, max {:.1?} over {RUNS} runs ({per_file:.0} µs per scenario)",
        times[0],
        times[RUNS - 1]
    );

    // Where the time goes: YAML parsing (serde_yaml + the position index) and PromQL parsing of
    // every distinct query of the generated files.
    let files: Vec<(PathBuf, String)> = (0..SCENARIOS)
        .map(|i| {
            let p = dir.path().join(format!("bench-{i:04}.yaml"));
            let t = std::fs::read_to_string(&p).expect("read");
            (p, t)
        })
        .collect();
    let start = Instant::now();
    for (p, t) in &files {
        let _ = f3_chaos::scenario::yaml::YamlFile::parse(p, t.clone()).expect("parses");
    }
    let yaml = start.elapsed();
    let queries: std::collections::BTreeSet<String> = files
        .iter()
        .flat_map(|(_, t)| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("query: "))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let start = Instant::now();
    for q in &queries {
        let _ = promql_parser::parser::parse(q).expect("valid PromQL");
    }
    let promql = start.elapsed();
    println!(
        "validate: of which YAML parse + index {yaml:.1?}, PromQL parse of {} distinct queries {promql:.1?}",
        queries.len()
    );

    let goal = Duration::from_secs(1);
    println!(
        "validate: goal < {goal:?}: {}",
        if median < goal { "met" } else { "NOT MET" }
    );

    // One large file.
    let mega = 1_000_000;
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, big_scenario(mega, false)).expect("write");
    let (took, checked) = time_validate(&repo, &path, 3);
    assert!(
        !checked.diagnostics.has_errors(),
        "the 1 MB scenario must be valid:\n{}",
        checked.diagnostics
    );
    let steps = checked
        .library
        .as_ref()
        .map_or(0, |l| l.scenarios["big-scenario"].then.len());
    println!(
        "validate: one 1 MB scenario ({steps} Then steps): {took:.1?} (goal < {goal:?}: {})",
        if took < goal { "met" } else { "NOT MET" }
    );
    std::fs::write(&path, big_scenario(mega, true)).expect("write");
    let (took, checked) = time_validate(&repo, &path, 3);
    println!(
        "validate: one 1 MB scenario with an unknown team in every step: {took:.1?}, {} errors",
        checked.diagnostics.error_count()
    );

    // Deep nesting: refused where it passes the limit, without parsing the rest.
    let nested = 200_000;
    for (what, text) in [
        (
            "nested flow sequences",
            format!(
                "apiVersion: f3-chaos/v1\nkind: Scenario\nspec: {}{}\n",
                "[".repeat(nested / 2),
                "]".repeat(nested / 2)
            ),
        ),
        ("nested block mappings", {
            let mut t = String::from("apiVersion: f3-chaos/v1\nkind: Scenario\n");
            let mut level = 0;
            while t.len() < nested {
                t.push_str(&" ".repeat(level));
                t.push_str("spec:\n");
                level += 1;
            }
            t
        }),
    ] {
        std::fs::write(&path, &text).expect("write");
        let (took, checked) = time_validate(&repo, &path, 1);
        let first = checked
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .unwrap_or_default();
        println!(
            "validate: {} KB of {what}: {took:.1?} ({first})",
            text.len() / 1000
        );
    }
}
