//! Benchmark of the runner against a real sandbox and a real Prometheus (prints its figures).
//!
//! 1. **Orchestration overhead per run**: wall time of `Runner::run` minus the declared step
//!    durations (the fault's duration). Every wait the scenario does not declare counts,
//!    including the wait for Prometheus to hold the sample that closes the fault window (at most
//!    one 1 s scrape interval, half of one on average). Goal ≤ 0.8 s.
//! 2. **Abort latency**: the bench makes an abort condition true at instant T0 (it lowers the
//!    simulator's target TPS, which Prometheus sees at its next 1 s scrape); the figure is
//!    T0 → every fault reverted. Goal p95 ≤ 1 scrape interval + 0.5 s = 1.5 s.
//!
//! Run with `scripts/bench-run.sh` (builds the release binaries first; the sandbox's processes are
//! the `f3-sandbox` binary).

use std::time::{Duration, Instant};

use f3_chaos::assert::PrometheusClient;
use f3_chaos::duration::HumanDuration;
use f3_chaos::fault::{LoadGenerator as _, LocalDriver};
use f3_chaos::model::Cloud;
use f3_chaos::model::RunOutcome;
use f3_chaos::run::{ChannelReporter, Reporters, RunEvent, RunOptions, Runner};
use f3_chaos::scenario::{
    AbortCondition, Cadence, Check, Comparison, Fault, FaultStep, GivenStep, Hold, Priority,
    Scenario, Schedule, Targets, ThenStep,
};
use f3_chaos::store::Store;
use tokio_util::sync::CancellationToken;

const STACK: &str = "bench";
const PORT_BASE: u16 = 25_000;
const FAULT: Duration = Duration::from_secs(5);
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

fn check(query: &str, op: Comparison, threshold: f64, unit: &str) -> Check {
    Check {
        query: query.into(),
        op,
        threshold,
        unit: Some(unit.into()),
        slo: None,
    }
}

fn scenario(name: &str, abort: Vec<AbortCondition>, then: Vec<ThenStep>) -> Scenario {
    Scenario {
        name: name.into(),
        description: "benchmark".into(),
        owner: "sre-chaos".into(),
        tags: vec![],
        source: "bench".into(),
        targets: Targets {
            eligible_stacks: vec![STACK.into()],
            ..Targets::default()
        },
        schedule: Schedule {
            cadence: Cadence::Manual,
            priority: Priority::Low,
            estimated_duration: HumanDuration::from_secs(60),
            after: vec![],
            resources: vec![],
        },
        given: vec![GivenStep::SteadyState {
            name: "payments flowing".into(),
            check: check(
                "sum(rate(payments_total{outcome=\"success\"}[15s]))",
                Comparison::Gt,
                100.0,
                "tps",
            ),
        }],
        when: vec![FaultStep {
            name: "GCP connectivity lost".into(),
            fault: Fault::CloudLoss { cloud: Cloud::Gcp },
            duration: HumanDuration(FAULT),
        }],
        then,
        abort,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let state = tempfile::tempdir()?;
    // Through the sandbox's own command line, so its defaults are the ones users get.
    let state_dir = state.path().to_string_lossy().into_owned();
    let port_base = PORT_BASE.to_string();
    let args = [
        "f3-sandbox",
        "up",
        "--stack",
        STACK,
        "--port-base",
        &port_base,
        "--state-dir",
        &state_dir,
    ];
    let code = f3_sandbox::cli_exit_code(args.map(std::ffi::OsString::from));
    anyhow::ensure!(code == 0, "f3-sandbox up failed with exit code {code}");
    let inventory = f3_sandbox::load_inventory(state.path(), STACK)?;
    let result = runtime.block_on(bench(state.path(), &inventory.prometheus_url));
    f3_sandbox::down(state.path(), STACK)?;
    result
}

async fn bench(state_dir: &std::path::Path, prometheus_url: &str) -> anyhow::Result<()> {
    let db = tempfile::tempdir()?;
    let store = Store::open(&format!(
        "sqlite://{}",
        db.path().join("bench.db").display()
    ))
    .await?;
    let driver = LocalDriver::new(STACK, Some(state_dir.to_path_buf()));
    let prometheus = PrometheusClient::new(prometheus_url, Duration::from_secs(5))?;
    // Let Prometheus see a full rate window first.
    tokio::time::sleep(Duration::from_secs(16)).await;

    // 1. Overhead.
    let latency_then = ThenStep {
        name: "p99 latency < 250ms".into(),
        owner: "payments".into(),
        check: check(
            "histogram_quantile(0.99, sum by (le) (rate(payment_latency_seconds_bucket[15s])))",
            Comparison::Lt,
            0.25,
            "s",
        ),
        hold: Hold::DuringFault,
        impact: None,
        action: None,
    };
    let plain = scenario("bench-overhead", vec![], vec![latency_then]);
    let mut overheads = Vec::new();
    for i in 0..5 {
        let runner = Runner::new(
            &store,
            &driver,
            &prometheus,
            Reporters::none(),
            CancellationToken::new(),
        );
        let started = Instant::now();
        let report = runner
            .run(&plain, STACK, &RunOptions::new("bench", "bench"))
            .await?;
        let wall = started.elapsed();
        let overhead = wall.as_secs_f64() - FAULT.as_secs_f64();
        println!(
            "overhead run {i}: outcome {}, wall {:.3} s, overhead {:.3} s",
            report.outcome,
            wall.as_secs_f64(),
            overhead
        );
        overheads.push(overhead);
        tokio::time::sleep(Duration::from_secs(3)).await; // let the 15 s rate windows settle a little
    }
    overheads.sort_by(f64::total_cmp);
    println!(
        "orchestration overhead per run: median {:.3} s, max {:.3} s (goal <= 0.8 s; wall - {} s declared fault; {} s scrape interval)",
        percentile(&overheads, 50.0),
        overheads[overheads.len() - 1],
        FAULT.as_secs(),
        SCRAPE_INTERVAL.as_secs()
    );

    // 2. Abort latency.
    let abort = AbortCondition {
        name: "simulator throttled".into(),
        check: check(
            "min(payment_simulator_target_tps)",
            Comparison::Lt,
            100.0,
            "tps",
        ),
    };
    let aborting = scenario("bench-abort", vec![abort], vec![]);
    let mut latencies = Vec::new();
    let mut own = Vec::new();
    for i in 0..12 {
        driver.set_tps(300.0).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runner = Runner::new(
            &store,
            &driver,
            &prometheus,
            Reporters::none().with(ChannelReporter(tx)),
            CancellationToken::new(),
        );
        let opts = RunOptions::new("bench", "bench");
        let run = runner.run(&aborting, STACK, &opts);
        let breach = async {
            // Wait for the injection, then make the abort condition true at T0.
            while let Some(event) = rx.recv().await {
                if matches!(event, RunEvent::FaultInjected { .. }) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300 + (i * 37) % 700)).await; // spread T0 over the scrape cycle
            let t0 = chrono::Utc::now();
            driver.set_tps(10.0).await.ok();
            let mut aborted = None;
            while let Some(event) = rx.recv().await {
                match event {
                    RunEvent::AbortTriggered {
                        reverted_at,
                        latency_ms,
                        ..
                    } => {
                        aborted = Some(((reverted_at - t0).num_milliseconds(), latency_ms));
                    }
                    // The runner keeps its sender until it is dropped: stop at the last event.
                    RunEvent::RunFinished { .. } => break,
                    _ => {}
                }
            }
            aborted
        };
        let (report, aborted) = tokio::join!(run, breach);
        let report = report?;
        match (report.outcome, aborted) {
            (RunOutcome::Aborted, Some((total_ms, detect_ms))) => {
                println!(
                    "abort run {i}: breach → reverted {total_ms} ms (detection → reverted {detect_ms} ms)"
                );
                latencies.push(total_ms as f64 / 1000.0);
                own.push(detect_ms as f64 / 1000.0);
            }
            (outcome, _) => println!("abort run {i}: unexpected outcome {outcome}"),
        }
    }
    driver.set_tps(300.0).await?;
    latencies.sort_by(f64::total_cmp);
    own.sort_by(f64::total_cmp);
    if !latencies.is_empty() {
        println!(
            "abort latency (breach made true → faults reverted): p50 {:.3} s, p95 {:.3} s, max {:.3} s over {} runs (goal p95 <= 1.5 s)",
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            latencies[latencies.len() - 1],
            latencies.len()
        );
        println!(
            "  of which detection → reverted: p50 {:.3} s, p95 {:.3} s",
            percentile(&own, 50.0),
            percentile(&own, 95.0)
        );
    }
    Ok(())
}
