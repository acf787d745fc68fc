//! Benchmark of the daemon's own footprint (issue 6), printing its figures:
//!
//! 1. **Idle**: the real `f3-chaos daemon` (config/local, a fresh SQLite store, cron set to
//!    1 January so no night opens) — resident set size (`VmRSS`, MB) after 10 s, and CPU (% of one
//!    core, from `/proc/PID/stat` utime + stime) over the following 30 s.
//! 2. **13 concurrent runs × 50 assertions at 1 s evaluation**: the assertion engine the runner
//!    uses (`assert::check_instant` through `PrometheusClient`, Prometheus HTTP API
//!    `/api/v1/query`) on one current-thread runtime like the daemon's, against a real Prometheus
//!    scraping 650 series; CPU of this process (% of one core) and query latency over 60 s. Each
//!    run polls its 50 checks in turn every second, as the runner polls abort conditions; the 13
//!    runs poll concurrently.
//!
//! Run with `scripts/bench-daemon.sh` (builds first; `--release` for the figures that count — the
//! dev profile does not optimise the workspace crates, so its figures are an upper bound).

use std::time::{Duration, Instant};

use f3_chaos::assert::check_instant;
use f3_chaos::model::Verdict;
use f3_chaos::scenario::{Check, Comparison};
use f3_chaos_tests::prometheus::{Exporter, TestPrometheus};
use f3_chaos_tests::{binary, repo_root};

const RUNS: usize = 13;
const ASSERTIONS: usize = 50;
const EVALUATION: Duration = Duration::from_secs(1);

fn main() {
    let seconds = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(default), Duration::from_secs)
    };
    idle(seconds("BENCH_IDLE_SECONDS", 30));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(assertion_load(seconds("BENCH_LOAD_SECONDS", 60)));
}

/// CPU time (user + system) of `pid` in seconds, from `/proc/PID/stat` fields 14 and 15.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // /proc reports clock ticks in USER_HZ, which Linux fixes at 100 for user space.
    ticks as f64 / 100.0
}

/// Resident set size of `pid` in MB (VmRSS of `/proc/PID/status`).
fn rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

fn idle(measure: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(binary("f3-chaos"))
        .args(["daemon", "--config"])
        .arg(repo_root().join("config/local"))
        .args(["--cron", "0 0 0 1 1 *", "--listen", "127.0.0.1:0"])
        .env(
            "F3_CHAOS_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("store.db").display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_secs(10));
    let rss = rss_mb(&pid);
    let cpu_before = cpu_seconds(&pid);
    std::thread::sleep(measure);
    let cpu = (cpu_seconds(&pid) - cpu_before) / measure.as_secs_f64() * 100.0;
    let rss_after = rss_mb(&pid);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "idle daemon: RSS {rss:.1} MB after 10 s, {rss_after:.1} MB after {} s more (goal <= 20 MB)",
        measure.as_secs()
    );
    println!(
        "idle daemon: CPU {cpu:.2} % of a core over {} s",
        measure.as_secs()
    );
}

async fn assertion_load(measure: Duration) {
    let exporter = Exporter::start().await;
    for run in 0..RUNS {
        for i in 0..ASSERTIONS {
            exporter.set(
                "bench_sli_ratio",
                &[("run", &run.to_string()), ("assertion", &i.to_string())],
                0.999,
            );
        }
    }
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    prometheus
        .wait_until("count(bench_sli_ratio)", Duration::from_secs(30), |s| {
            s.first()
                .is_some_and(|s| s.point.value as usize == RUNS * ASSERTIONS)
        })
        .await;
    let client = prometheus.client();
    let checks: Vec<Vec<Check>> = (0..RUNS)
        .map(|run| {
            (0..ASSERTIONS)
                .map(|i| Check {
                    query: format!(
                        r#"avg_over_time(bench_sli_ratio{{run="{run}",assertion="{i}"}}[30s])"#
                    ),
                    op: Comparison::Ge,
                    threshold: 0.99,
                    unit: Some("ratio".into()),
                    slo: None,
                })
                .collect()
        })
        .collect();
    let me = std::process::id().to_string();
    let started = Instant::now();
    let cpu_before = cpu_seconds(&me);
    let latencies = std::rc::Rc::new(std::cell::RefCell::new(Vec::<f64>::new()));
    let not_passed = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let local = tokio::task::LocalSet::new();
    for run in checks {
        let client = client.clone();
        let latencies = latencies.clone();
        let not_passed = not_passed.clone();
        local.spawn_local(async move {
            let mut tick = tokio::time::interval(EVALUATION);
            while started.elapsed() < measure {
                tick.tick().await;
                // A run polls its checks one after another, as the runner's abort loop does
                // (`run::runner`, `assert::breached` per condition); the 13 runs poll side by side.
                for check in &run {
                    let t = Instant::now();
                    let judgement = check_instant(&client, check, None).await;
                    latencies
                        .borrow_mut()
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    if judgement.verdict != Verdict::Passed {
                        not_passed.set(not_passed.get() + 1);
                    }
                }
            }
        });
    }
    local.await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(&me) - cpu_before) / wall * 100.0;
    let mut lat = latencies.borrow().clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{RUNS} runs x {ASSERTIONS} assertions every {} s for {wall:.0} s: {} evaluations, {} not passed",
        EVALUATION.as_secs(),
        lat.len(),
        not_passed.get()
    );
    println!(
        "evaluation rate: {:.0} per second (asked: {})",
        lat.len() as f64 / wall,
        RUNS * ASSERTIONS
    );
    println!("assertion engine: CPU {cpu:.2} % of a core (goal <= 5 %)");
    println!(
        "query latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
}
