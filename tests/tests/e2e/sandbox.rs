//! End-to-end tests: sandbox. Real sandbox processes, real signals, real Prometheus.
//!
//! The tests of this module run one at a time (a module-wide lock): each stack is nine processes
//! at 300 payments/s, and timing assertions need the CPU they assume.

use std::time::{Duration, Instant};

use f3_chaos_tests::sandbox::SandboxStack;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn signal_all(pids: &[u32], sig: Signal) {
    for pid in pids {
        kill(Pid::from_raw(*pid as i32), sig).expect("signal sandbox process");
    }
}

fn running(pid: u32) -> bool {
    f3_sandbox::procs::is_running(pid)
}

/// Waits until the stack serves steady load (the Given of every scenario).
async fn wait_steady(stack: &SandboxStack) {
    stack
        .wait_query(
            "sum(rate(payments_total{outcome=\"success\"}[5s]))",
            Duration::from_secs(20),
            |v| v > 250.0,
        )
        .await
        .expect("steady load before the fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_300_tps_and_down_leaves_no_process() {
    let _serial = SERIAL.lock().await;
    let start = Instant::now();
    let stack = SandboxStack::up_free("e2e-up", &[]).expect("up");
    assert!(
        stack.up_took < Duration::from_secs(10),
        "up took {:?}",
        stack.up_took
    );

    let inv = &stack.inventory;
    assert_eq!(
        inv.processes.len(),
        9,
        "6 nodes, gateway, simulator, prometheus"
    );
    assert_eq!(
        inv.prometheus_url,
        format!("http://127.0.0.1:{}", stack.port_base + 90)
    );
    assert_eq!(stack.pids("cloud", "gcp").len(), 2);
    assert_eq!(stack.pids("cloud", "aws").len(), 2);
    assert!(!inv.fingerprint.is_empty());

    // `status --output json` shows the same inventory.
    let out = stack.sandbox(&["status", "--output", "json"]);
    assert!(out.status.success());
    let shown: f3_sandbox::Inventory = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(&shown, inv);

    // Another stack on the same ports fails clearly.
    let clash = SandboxStack::up("e2e-clash", stack.port_base, &[])
        .err()
        .expect("port clash must fail");
    assert!(clash.to_string().contains("already in use"), "{clash}");

    // ≈ 300 payments/s in Prometheus within 20 s of start.
    let left = Duration::from_secs(20).saturating_sub(start.elapsed());
    let rate = stack
        .wait_query("sum(rate(payments_total[15s]))", left, |v| {
            (270.0..=330.0).contains(&v)
        })
        .await
        .expect("300 TPS visible in Prometheus");
    eprintln!("rate after {:?}: {rate:.1}/s", start.elapsed());

    // Load control (the Given "load" step).
    let out = stack.sandbox(&["load", "--tps", "120"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = stack.sandbox(&["load"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "120");
    stack
        .wait_query(
            "payment_simulator_target_tps",
            Duration::from_secs(5),
            |v| v == 120.0,
        )
        .await
        .expect("gauge");

    let pids: Vec<u32> = inv.processes.iter().map(|p| p.pid).collect();
    stack.down().expect("down");
    let alive: Vec<u32> = pids.iter().copied().filter(|p| running(*p)).collect();
    assert!(alive.is_empty(), "processes left after down: {alive:?}");
    stack.down().expect("down twice is fine");
    let out = stack.sandbox(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is not running; start it with `f3-sandbox up --stack e2e-up`")
    );
}

/// Counters read from Prometheus before and after a fault; deltas are exact over the fault window
/// (a `[10s]` range would miss the first second, where the failover happens).
const TOTAL: &str = "sum(payments_total)";
const SUCCESS: &str = "sum(payments_total{outcome=\"success\"})";
const GCP_FAILURES: &str = "sum(payments_total{outcome=\"failure\",cloud=\"gcp\"})";
const FAILOVERS_FROM_GCP: &str = "sum(gateway_failovers_total{from_cloud=\"gcp\"})";
const SLOWER_THAN_100MS: &str =
    "sum(payment_latency_seconds_count) - sum(payment_latency_seconds_bucket{le=\"0.1\"})";
const COUNTERS: [&str; 5] = [
    TOTAL,
    SUCCESS,
    GCP_FAILURES,
    FAILOVERS_FROM_GCP,
    SLOWER_THAN_100MS,
];

/// Instant values of `exprs` (NaN when a result is empty).
async fn snapshot(stack: &SandboxStack, exprs: &[&str]) -> Vec<f64> {
    let mut out = Vec::new();
    for e in exprs {
        out.push(stack.query(e).await.expect("query").unwrap_or(f64::NAN));
    }
    out
}

/// Freezes the gcp nodes for 10 s; returns the counter deltas over the loss (in [`COUNTERS`]
/// order) and the values of `during` queried at the end of the loss, before SIGCONT.
async fn freeze_gcp(stack: &SandboxStack, during: &[&str]) -> (Vec<f64>, Vec<f64>) {
    let gcp = stack.pids("cloud", "gcp");
    assert_eq!(gcp.len(), 2);
    let before = snapshot(stack, &COUNTERS).await;
    signal_all(&gcp, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = snapshot(stack, &COUNTERS).await;
    let during = snapshot(stack, during).await;
    signal_all(&gcp, Signal::SIGCONT);
    let deltas = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    (deltas, during)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_loss_with_aggressive_gateway_fails_over() {
    let _serial = SERIAL.lock().await;
    let stack = SandboxStack::up_free("e2e-aggressive", &[]).expect("up");
    wait_steady(&stack).await;
    let (d, during) = freeze_gcp(
        &stack,
        &[
            "sum(rate(payments_total{outcome=\"success\",cloud=~\"aws|azure\"}[5s]))",
            "sum(increase(payments_total{outcome=\"success\",cloud=\"gcp\"}[5s]))",
            "sum(gateway_backend_healthy{cloud=\"gcp\"})",
            "sum(up{job=\"payment-node\",cloud=\"gcp\"})",
        ],
    )
    .await;
    let success_ratio = d[1] / d[0];
    let (other_clouds, gcp_served, gcp_healthy, gcp_up) =
        (during[0], during[1], during[2], during[3]);
    eprintln!(
        "aggressive, gcp frozen 10 s: {} payments, success ratio {success_ratio:.5}, aws+azure {other_clouds:.1}/s, \
         gcp served {gcp_served}, gcp healthy {gcp_healthy}, gcp up {gcp_up}, failovers from gcp {}, payments > 100 ms {}",
        d[0], d[3], d[4]
    );

    assert!(
        d[0] > 2_000.0,
        "load kept flowing: {} payments in 10 s",
        d[0]
    );
    assert!(
        success_ratio > 0.999,
        "success ratio during GCP loss {success_ratio}"
    );
    assert!(
        other_clouds > 250.0,
        "payments keep flowing through aws+azure: {other_clouds}/s"
    );
    assert!(
        gcp_served < 1.0,
        "gcp served {gcp_served} payments while frozen"
    );
    assert_eq!(gcp_healthy, 0.0, "gateway marks gcp unhealthy");
    assert_eq!(gcp_up, 0.0, "Prometheus cannot scrape frozen nodes");
    assert!(d[3] >= 1.0, "gateway failed over from gcp");
    assert!(
        d[4] >= 1.0,
        "the loss shows in the latency histogram (payments retried after a 100 ms timeout)"
    );

    // Recovery after SIGCONT: gcp healthy and serving again.
    stack
        .wait_query(
            "sum(gateway_backend_healthy{cloud=\"gcp\"})",
            Duration::from_secs(10),
            |v| v == 2.0,
        )
        .await
        .expect("gcp healthy again");
    stack
        .wait_query(
            "sum(rate(payments_total{outcome=\"success\",cloud=\"gcp\"}[3s]))",
            Duration::from_secs(10),
            |v| v > 50.0,
        )
        .await
        .expect("gcp serving again");
    stack.down().expect("down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_loss_with_slow_gateway_degrades() {
    let _serial = SERIAL.lock().await;
    let stack = SandboxStack::up_free("e2e-slow", &["--gateway-profile", "slow"]).expect("up");
    assert_eq!(stack.inventory.gateway_profile, "slow");
    wait_steady(&stack).await;
    let (d, during) = freeze_gcp(
        &stack,
        &["histogram_quantile(0.99, sum(increase(payment_latency_seconds_bucket[9s])) by (le))"],
    )
    .await;
    let success_ratio = d[1] / d[0];
    let p99 = during[0];
    eprintln!(
        "slow, gcp frozen 10 s: {} payments, success ratio {success_ratio:.5}, p99 {p99:.3} s, failures at gcp {}, \
         payments > 100 ms {}",
        d[0], d[2], d[4]
    );
    assert!(
        success_ratio < 0.99,
        "slow gateway: success ratio should drop, was {success_ratio}"
    );
    assert!(
        p99 > 0.25,
        "slow gateway: p99 latency should exceed 250 ms, was {p99}"
    );
    assert!(d[2] > 10.0, "failures are attributed to gcp: {}", d[2]);
    stack.down().expect("down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_process_and_reconfigure_change_what_they_should() {
    let _serial = SERIAL.lock().await;
    // The stack's processes run a copy of the binary, so the test can replace it on disk.
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let bin = bin_dir.path().join("f3-sandbox");
    std::fs::copy(f3_chaos_tests::binary("f3-sandbox"), &bin).expect("copy binary");
    let stack = SandboxStack::up_free_with_env(
        "e2e-restart",
        &["--tps", "50", "--alertmanager"],
        &[("F3_SANDBOX_BIN", bin.as_os_str())],
    )
    .expect("up");
    let dir = stack.state_dir().to_path_buf();
    let alertmanager = stack
        .inventory
        .alertmanager_url
        .clone()
        .expect("alertmanager url");
    assert_eq!(
        alertmanager,
        format!("http://127.0.0.1:{}", stack.port_base + 93)
    );
    let ready = reqwest::get(format!("{alertmanager}/-/ready"))
        .await
        .expect("alertmanager");
    assert!(ready.status().is_success());
    let inv = stack.reload().expect("inventory");
    let fp0 = f3_sandbox::current_fingerprint(&inv).expect("fingerprint");
    assert_eq!(
        fp0, inv.fingerprint,
        "live fingerprint equals the one recorded by up"
    );

    // Kill a node: it stays dead (no silent supervision) and the fingerprint does not change.
    let old = inv.process("gcp-node-0").expect("gcp-node-0").pid;
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(old) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!running(old));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !running(
            stack
                .reload()
                .expect("inv")
                .process("gcp-node-0")
                .expect("node")
                .pid
        ),
        "nobody restarts it"
    );
    assert_eq!(f3_sandbox::current_fingerprint(&inv).expect("fp"), fp0);

    // restart_process brings it back with its recorded command and records the new PID.
    let (d, n) = (dir.clone(), stack.name.clone());
    let restarted =
        tokio::task::spawn_blocking(move || f3_sandbox::restart_process(&d, &n, "gcp-node-0"))
            .await
            .expect("join")
            .expect("restart");
    assert_ne!(restarted.pid, old);
    assert!(running(restarted.pid));
    let inv = stack.reload().expect("inventory");
    assert_eq!(inv.process("gcp-node-0").expect("node").pid, restarted.pid);
    assert_eq!(
        f3_sandbox::current_fingerprint(&inv).expect("fp"),
        fp0,
        "same command and binary, same fingerprint"
    );
    // Restarting a running process is a no-op.
    let again =
        f3_sandbox::restart_process(&dir, &stack.name, "gcp-node-0").expect("restart no-op");
    assert_eq!(again.pid, restarted.pid);
    let unknown =
        f3_sandbox::restart_process(&dir, &stack.name, "nope").expect_err("unknown process");
    assert!(unknown.to_string().contains("no process named `nope`"));

    // Reconfiguring the gateway changes the fingerprint.
    let old_gateway = inv.process("gateway").expect("gateway").pid;
    let out = stack.sandbox(&["reconfigure", "--gateway-profile", "slow"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv = stack.reload().expect("inventory");
    let fp1 = f3_sandbox::current_fingerprint(&inv).expect("fp");
    assert_ne!(fp1, fp0, "reconfigure changes the fingerprint");
    assert_eq!(inv.fingerprint, fp1);
    let served: serde_json::Value = reqwest::get(format!("{}/fingerprint", inv.gateway_url))
        .await
        .expect("GET /fingerprint")
        .json()
        .await
        .expect("fingerprint json");
    assert_eq!(
        served["fingerprint"],
        fp1.as_str(),
        "the gateway serves the live fingerprint"
    );
    assert_eq!(inv.gateway_profile, "slow");
    let gateway = inv.process("gateway").expect("gateway");
    assert_ne!(gateway.pid, old_gateway);
    assert!(!running(old_gateway));
    assert!(
        gateway.command.iter().any(|a| a == "5s"),
        "new settings on the command line"
    );

    let missing = f3_sandbox::load_inventory(&dir, "nope").expect_err("not running");
    assert_eq!(
        missing.to_string(),
        "sandbox stack `nope` is not running; start it with `f3-sandbox up --stack nope`"
    );

    // Replacing the node binary on disk (as a deployment would) changes the fingerprint.
    let staged = bin_dir.path().join("f3-sandbox.new");
    std::fs::copy(&bin, &staged).expect("stage binary");
    std::fs::rename(&staged, &bin).expect("replace binary");
    let fp2 = f3_sandbox::current_fingerprint(&inv).expect("fp");
    assert_ne!(fp2, fp1, "a replaced binary changes the fingerprint");

    let pids: Vec<u32> = inv.processes.iter().map(|p| p.pid).collect();
    stack.down().expect("down");
    assert!(
        pids.iter().all(|p| !running(*p)),
        "down stops restarted processes too"
    );
}
