//! End-to-end tests of the main job, `f3-chaos run --wait-for-assertions`, against a real sandbox
//! (real processes, real Prometheus): pass, fail, abort, inconclusive, precondition-failed, void,
//! `kill -9` mid-fault, and two runs on one stack.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use f3_chaos_tests::scenarios::QUICK_GCP_LOSS;
use f3_chaos_tests::{binary, heavy_test_lock, repo_root};
use serde_json::Value;

/// Aborts as soon as Prometheus sees the GCP nodes down.
const ABORT_ON_GCP_DOWN: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: abort-on-gcp-down
  description: Test scenario - the abort condition is breached by the fault itself.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: 40s
  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
      hold: during-fault
  abort:
    - name: GCP scrape targets down
      query: min(up{job="payment-node",cloud="gcp"})
      op: "<"
      threshold: 1
"#;

/// Given can never hold.
const IMPOSSIBLE_GIVEN: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: impossible-given
  description: Test scenario - the steady state never holds.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  given:
    - kind: steady-state
      name: Success ratio above 150 %
      query: sum(rate(payments_total{outcome="success"}[15s])) / sum(rate(payments_total[15s]))
      op: ">"
      threshold: 1.5
      unit: ratio
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: 10s
  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
      hold: during-fault
"#;

/// A Then step judged after recovery, next to one judged during the fault: the Recovery step
/// runs between them.
const AFTER_RECOVERY: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: after-recovery
  description: Test scenario - a Then step held until recovery is verified.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  given:
    - kind: load
      name: Steady 300 TPS
      tps: 300
      settleWithin: 20s
    - kind: steady-state
      name: Success ratio above 95 %
      query: sum(rate(payments_total{outcome="success"}[15s])) / sum(rate(payments_total[15s]))
      op: ">="
      threshold: 0.95
      unit: ratio
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: 6s
  then:
    - name: Payments keep flowing
      owner: payments
      query: sum(rate(payments_total[15s]))
      op: ">"
      threshold: 0
      unit: tps
      hold: during-fault
    - name: Success ratio back above 95 %
      owner: payments
      query: sum(rate(payments_total{outcome="success"}[15s])) / sum(rate(payments_total[15s]))
      op: ">="
      threshold: 0.95
      unit: ratio
      hold: after-recovery
"#;

/// One sandbox stack, its config directory and its store, all in a temp dir.
struct Env {
    dir: tempfile::TempDir,
    stack: String,
}

impl Env {
    /// Starts sandbox stack `stack` on `port_base` with extra `f3-sandbox up` arguments.
    fn start(stack: &str, port_base: u16, sandbox_args: &[&str]) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = Env {
            dir,
            stack: stack.to_owned(),
        };
        let scenarios = env.dir.path().join("scenarios");
        std::fs::create_dir_all(&scenarios).expect("scenarios dir");
        for entry in std::fs::read_dir(repo_root().join("scenarios")).expect("shipped scenarios") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, scenarios.join(path.file_name().expect("file name")))
                    .expect("copy scenario");
            }
        }
        for (name, text) in [
            ("quick-gcp-loss", QUICK_GCP_LOSS),
            ("abort-on-gcp-down", ABORT_ON_GCP_DOWN),
            ("impossible-given", IMPOSSIBLE_GIVEN),
            ("after-recovery", AFTER_RECOVERY),
        ] {
            std::fs::write(scenarios.join(format!("{name}.yaml")), text).expect("write scenario");
        }
        let config = format!(
            r#"apiVersion: f3-chaos/v1
kind: Config
spec:
  library:
    scenarios: {scenarios}
    assertions: {assertions}
  cooldown: 10s
  resources:
    - {{ name: gcp-org-network, capacity: 1 }}
  stacks:
    - name: {stack}
      environment: local
      labels: {{ platform: payments }}
      clusters:
        - {{ cloud: gcp, name: gcp }}
        - {{ cloud: aws, name: aws }}
        - {{ cloud: azure, name: azure }}
      driver:
        kind: local
        sandboxStack: {stack}
        stateDir: {state}
      prometheusUrl: http://127.0.0.1:{prometheus}
  teams:
{teams}"#,
            teams = f3_chaos_tests::scenarios::TEAMS_YAML,
            scenarios = scenarios.display(),
            assertions = repo_root().join("assertions").display(),
            state = env.sandbox_state().display(),
            prometheus = port_base + 90,
        );
        std::fs::create_dir_all(env.config_dir()).expect("config dir");
        std::fs::write(env.config_dir().join("f3-chaos.yaml"), config).expect("write config");

        let out = env
            .sandbox(&[
                "up",
                "--stack",
                stack,
                "--port-base",
                &port_base.to_string(),
            ])
            .args(sandbox_args)
            .output()
            .expect("f3-sandbox up");
        assert!(
            out.status.success(),
            "f3-sandbox up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    fn sandbox_state(&self) -> PathBuf {
        self.dir.path().join("sandbox")
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn sandbox(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("f3-sandbox"));
        command
            .args(args)
            .env("F3_SANDBOX_STATE_DIR", self.sandbox_state());
        command
    }

    fn f3(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("f3-chaos"));
        command
            .args(args)
            .env("F3_CHAOS_CONFIG", self.config_dir())
            .env(
                "F3_CHAOS_DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("store.db").display()),
            )
            .env("F3_SANDBOX_STATE_DIR", self.sandbox_state())
            .env("NO_COLOR", "1");
        command
    }

    fn run(&self, scenario: &str) -> Output {
        self.f3(&[
            "run",
            "--scenario",
            scenario,
            "--stack",
            &self.stack,
            "--wait-for-assertions",
        ])
        .output()
        .expect("f3-chaos run")
    }

    /// Starts a run and returns it once its fault is injected (its `GCP connectivity lost` line);
    /// the rest of its output keeps being read so the run never sees a closed pipe.
    fn run_until_injected(&self, scenario: &str) -> LiveRun {
        self.run_until_injected_with(scenario, &[])
    }

    /// [`Env::run_until_injected`] with `extra` arguments to `run`.
    fn run_until_injected_with(&self, scenario: &str, extra: &[&str]) -> LiveRun {
        let mut child = self
            .f3(&[
                "run",
                "--scenario",
                scenario,
                "--stack",
                &self.stack,
                "--wait-for-assertions",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("f3-chaos run");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
            // The When step's own line: `[SUCCESS] GCP connectivity lost` once injected (a
            // `[SKIPPED] …` line means the Given did not hold and nothing was injected).
            let injected = line.contains("GCP connectivity lost") && line.contains("SUCCESS");
            let skipped = line.contains("GCP connectivity lost") && line.contains("SKIPPED");
            seen.push(line);
            if skipped {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the Given did not hold, nothing was injected: {seen:#?}");
            }
            if injected {
                return LiveRun {
                    child,
                    reader,
                    seen,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the run ended before injecting: {seen:#?}");
    }

    fn results_json(&self, run_id: &str) -> Value {
        let out = self
            .f3(&["results", run_id, "--output", "json"])
            .output()
            .expect("results");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = serde_json::from_slice(&out.stdout).expect("results JSON");
        crate::schemas::assert_valid(crate::schemas::Document::Run, &doc);
        doc
    }

    fn inventory(&self) -> f3_sandbox::Inventory {
        f3_sandbox::load_inventory(&self.sandbox_state(), &self.stack).expect("inventory")
    }

    fn gcp_pids(&self) -> Vec<u32> {
        self.inventory()
            .processes
            .iter()
            .filter(|p| p.labels.get("cloud").map(String::as_str) == Some("gcp"))
            .map(|p| p.pid)
            .collect()
    }
}

/// A run in progress whose output is being collected.
struct LiveRun {
    child: Child,
    reader: std::thread::JoinHandle<Vec<String>>,
    seen: Vec<String>,
}

impl LiveRun {
    fn run_id(&self) -> String {
        run_id_of(&self.seen.join("\n"))
    }

    /// Waits for the run to end: (exit code, stdout + stderr).
    fn finish(mut self) -> (Option<i32>, String) {
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        let status = self.child.wait().expect("run exit status");
        let stdout = self.reader.join().expect("reader thread").join("\n");
        (status.code(), format!("{stdout}\n--- stderr ---\n{stderr}"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.sandbox(&["down", "--stack", &self.stack]).output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_id_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Run ").and_then(|r| r.split(':').next()))
        .expect("a `Run <id>:` line")
        .trim()
        .to_owned()
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn gcp_failover_validation_passes_on_the_default_sandbox() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-pass", 24000, &[]);
    let junit = env.dir.path().join("junit.xml");
    let out = env
        .f3(&[
            "run",
            "--scenario",
            "gcp-failover-validation",
            "--stack",
            &env.stack,
            "--wait-for-assertions",
            "--junit",
        ])
        .arg(&junit)
        .output()
        .expect("f3-chaos run");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(0), "{output}");
    for line in [
        "[SUCCESS] Given: Payment simulators are generating a steady 300 TPS",
        "[SUCCESS] GCP connectivity lost",
        "[SUCCESS] Assertion: Product SLO latency < 250ms (observed",
        "[SUCCESS] Assertion: Service SLO success rate > 99.99%",
        "[SUCCESS] Assertion: Payments continue flowing through AWS and Azure",
        "PASSED: gcp-failover-validation",
    ] {
        assert!(output.contains(line), "missing `{line}` in:\n{output}");
    }
    // Real observed values, stored as evidence.
    let run = env.results_json(&run_id_of(&output));
    assert_eq!(run["run"]["status"], "passed");
    let latency = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "Product SLO latency < 250ms")
        .expect("latency step");
    let observed = latency["observed"].as_f64().expect("observed latency");
    assert!(observed > 0.0 && observed < 0.25, "observed p99 {observed}");
    assert!(
        !latency["evidence"]["series"][0]["points"]
            .as_array()
            .expect("points")
            .is_empty()
    );
    // One JUnit testcase per step, the owner as a property.
    let xml = std::fs::read_to_string(&junit).expect("junit file");
    assert!(
        xml.contains(r#"<testcase name="Product SLO latency &lt; 250ms""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="owner" value="payments"/>"#),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<testcase ").count(),
        run["steps"].as_array().expect("steps").len(),
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
}

#[test]
fn slow_gateway_health_checks_fail_an_owned_step() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-fail", 24100, &["--gateway-profile", "slow"]);
    // The reference scenario without its abort condition: with slow health checks the success
    // ratio may collapse below the abort threshold in the first second of the fault, and a run
    // aborted then has a window of a second or two to judge its Then steps on (failed or
    // inconclusive, by the short-window rule of docs/assertions.md). This test is about the
    // owned steps the slow failover fails, judged over the whole fault; aborts have their own
    // tests.
    let reference =
        std::fs::read_to_string(repo_root().join("scenarios/gcp-failover-validation.yaml"))
            .expect("reference scenario");
    let (without_abort, abort) = reference
        .split_once("\n  abort:\n")
        .expect("an abort block");
    assert!(
        abort.lines().all(|l| l.starts_with("    ")),
        "the abort block is the scenario's last: {abort}"
    );
    std::fs::write(
        env.dir.path().join("scenarios/gcp-failover-no-abort.yaml"),
        without_abort.replace(
            "name: gcp-failover-validation",
            "name: gcp-failover-no-abort",
        ) + "\n",
    )
    .expect("write scenario");
    let out = env.run("gcp-failover-no-abort");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    let failed: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("[FAILED] Assertion:"))
        .collect();
    assert!(!failed.is_empty(), "{output}");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("owner: payments") || l.contains("owner: infrastructure")),
        "a latency or success step owned by its team fails: {failed:#?}\n{output}"
    );
    assert!(
        failed.iter().all(|l| l.contains("(observed ")),
        "observed values shown: {failed:#?}"
    );
    assert!(output.contains("FAILED: gcp-failover-no-abort"), "{output}");
    assert!(output.contains("Notifying "), "{output}");
    let run = env.results_json(&run_id_of(&output));
    assert!(
        !run["notifications"]
            .as_array()
            .expect("notifications")
            .is_empty()
    );
}

#[test]
fn a_breached_abort_condition_reverts_at_once_and_stores_the_latency() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-abort", 24200, &[]);
    let started = Instant::now();
    let out = env.run("abort-on-gcp-down");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(2), "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "aborted long before the 40 s fault ended: {output}"
    );
    assert!(
        output.contains("[ABORTED] Abort condition `GCP scrape targets down` breached"),
        "{output}"
    );
    for pid in env.gcp_pids() {
        assert_ne!(
            f3_sandbox::procs::state(pid),
            Some('T'),
            "gcp node {pid} resumed"
        );
    }
    let run = env.results_json(&run_id_of(&output));
    assert_eq!(run["run"]["status"], "aborted");
    let latency = run["run"]["abortLatencyMs"]
        .as_i64()
        .expect("abort latency stored");
    assert!((0..5_000).contains(&latency), "latency {latency} ms");
}

#[test]
fn prometheus_stopped_mid_run_makes_steps_inconclusive_not_passed() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-inconclusive", 24300, &[]);
    let live = env.run_until_injected("quick-gcp-loss");
    let prometheus = env
        .inventory()
        .processes
        .iter()
        .find(|p| p.role == f3_sandbox::Role::Prometheus)
        .map(|p| p.pid)
        .expect("prometheus pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(prometheus as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill prometheus");
    let (code, output) = live.finish();
    assert_eq!(code, Some(3), "{output}");
    assert!(
        output.contains("[INCONCLUSIVE] Assertion: Product SLO latency < 250ms"),
        "{output}"
    );
    assert!(!output.contains("[SUCCESS] Assertion"), "{output}");
}

#[test]
fn a_load_given_counts_only_successful_payments() {
    // The gateway is frozen: the simulator keeps sending 300 TPS, every one of them failing. The
    // load Given must not call that "300 TPS", and no fault may go in.
    let _lock = heavy_test_lock();
    let env = Env::start("run-deadgw", 26300, &[]);
    let gateway: Vec<u32> = env
        .inventory()
        .processes
        .iter()
        .filter(|p| p.labels.get("app").map(String::as_str) == Some("gateway"))
        .map(|p| p.pid)
        .collect();
    assert!(!gateway.is_empty(), "a gateway process");
    let signal = |sig| {
        for &pid in &gateway {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
                .expect("signal the gateway");
        }
    };
    signal(nix::sys::signal::Signal::SIGSTOP);
    let out = env.run("quick-gcp-loss");
    signal(nix::sys::signal::Signal::SIGCONT);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(4), "precondition-failed: {output}");
    assert!(output.contains("Given: Steady 300 TPS"), "{output}");
    assert!(
        !output.contains("[SUCCESS] Given: Steady 300 TPS"),
        "{output}"
    );
    assert!(
        output.contains("[SKIPPED] GCP connectivity lost"),
        "{output}"
    );
    let run = env.results_json(&run_id_of(&output));
    assert!(
        run["faults"].as_array().expect("ledger").is_empty(),
        "no fault in the ledger: {run:#}"
    );
}

#[test]
fn given_not_met_injects_no_fault() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-given", 24400, &[]);
    let out = env.run("impossible-given");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(4), "{output}");
    assert!(
        output.contains("[FAILED] Given: Success ratio above 150 %"),
        "{output}"
    );
    assert!(
        output.contains("[SKIPPED] GCP connectivity lost"),
        "{output}"
    );
    let run = env.results_json(&run_id_of(&output));
    assert_eq!(run["run"]["status"], "precondition-failed");
    assert!(
        run["faults"].as_array().expect("ledger").is_empty(),
        "no fault in the ledger: {run:#}"
    );

    // `--output json`: one document for tools, same outcome and exit code.
    let out = env
        .f3(&[
            "run",
            "--scenario",
            "impossible-given",
            "--stack",
            &env.stack,
            "--wait-for-assertions",
            "--output",
            "json",
        ])
        .output()
        .expect("f3-chaos run --output json");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    crate::schemas::assert_valid(crate::schemas::Document::Run, &report);
    // The same document `results ID --output json` gives for the stored run.
    let run_id = report["run"]["id"].as_str().expect("run id");
    assert_eq!(report, env.results_json(run_id));
    assert_eq!(report["run"]["status"], "precondition-failed");
    assert_eq!(report["steps"][0]["verdict"], "failed");
    assert_eq!(report["steps"][1]["verdict"], "skipped");
}

/// Nothing a run judged is lost: with an `after-recovery` Then step, the Recovery step judged
/// before it and both Then steps are all stored, each under its own index.
#[test]
fn every_step_is_stored_when_a_then_step_waits_for_recovery() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-after-recovery", 25000, &[]);
    let out = env.run("after-recovery");
    let output = text(&out);
    let run = env.results_json(&run_id_of(&output));
    let steps = run["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names.len(),
        6,
        "2 Given, 1 When, 2 Then, 1 Recovery: {names:?}\n{output}"
    );
    for expected in [
        "Steady 300 TPS",
        "Success ratio above 95 %",
        "GCP connectivity lost",
        "Payments keep flowing",
        "Success ratio back above 95 %",
        "Recovery: Success ratio above 95 %",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let indices: std::collections::BTreeSet<u64> =
        steps.iter().filter_map(|s| s["index"].as_u64()).collect();
    assert_eq!(indices.len(), 6, "one index per step: {steps:#?}");
}

#[test]
fn reconfiguring_the_sandbox_mid_run_voids_the_result() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-void", 24500, &[]);
    let live = env.run_until_injected("quick-gcp-loss");
    let out = env
        .sandbox(&[
            "reconfigure",
            "--stack",
            &env.stack,
            "--gateway-profile",
            "slow",
        ])
        .output()
        .expect("reconfigure");
    assert!(out.status.success(), "{}", text(&out));
    let (code, output) = live.finish();
    assert_eq!(code, Some(5), "{output}");
    assert!(output.contains("VOID"), "{output}");
    assert!(
        output.contains("the stack changed during the run"),
        "{output}"
    );
}

#[test]
fn kill_9_mid_fault_is_reverted_by_the_ttl_and_reconciled_on_the_next_start() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-kill9", 24600, &[]);
    let mut live = env.run_until_injected("quick-gcp-loss");
    let run_id = live.run_id();
    let injected_at = Instant::now();
    let gcp = env.gcp_pids();
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) == Some('T')),
        "gcp nodes frozen"
    );
    live.child.kill().expect("kill -9 f3-chaos");
    let _ = live.finish();
    // The watchdog resumes them at the TTL: 10 s fault + 1 s grace, checked within 2 s of the
    // declared duration.
    assert_resumed_between(
        "gcp nodes resumed by the TTL",
        &gcp,
        injected_at,
        Duration::from_secs(9)..=Duration::from_secs(12),
    );

    // The next start sweeps the ledger: the dead run is closed and its fault marked reverted.
    let out = env.run("impossible-given");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let run = env.results_json(&run_id);
    assert_eq!(run["run"]["status"], "interrupted", "{run:#}");
    let faults = run["faults"].as_array().expect("ledger");
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["state"], "reverted", "{run:#}");
}

/// Waits until none of `pids` is stopped (state `T`), then asserts that this came `within` the
/// given span after `injected_at`: not before the fault's declared duration, not after its TTL's
/// allowance. The wait gives up 1 s past the span's end.
fn assert_resumed_between(
    what: &str,
    pids: &[u32],
    injected_at: Instant,
    within: std::ops::RangeInclusive<Duration>,
) {
    let deadline = within.end().saturating_sub(injected_at.elapsed()) + Duration::from_secs(1);
    wait_until(what, deadline, || {
        pids.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T'))
    });
    let resumed_after = injected_at.elapsed();
    assert!(
        resumed_after <= *within.end(),
        "{what}: resumed {resumed_after:?} after injection, later than {:?}",
        within.end()
    );
    assert!(
        resumed_after >= *within.start(),
        "{what}: resumed {resumed_after:?} after injection, before the declared duration"
    );
}

/// PIDs of the fault watchdogs of the sandbox whose state directory is `state_dir`.
fn watchdogs_of(state_dir: &std::path::Path) -> Vec<u32> {
    let state = state_dir.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            f3_sandbox::procs::cmdline(*pid).is_some_and(|args| {
                args.iter().any(|a| a == "__fault-watchdog")
                    && args.iter().any(|a| a.contains(&state))
            })
        })
        .collect()
}

/// The fault records the stack's supervisor holds.
fn fault_records(env: &Env) -> Vec<PathBuf> {
    match std::fs::read_dir(env.sandbox_state().join(&env.stack).join("faults")) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn kill_9_of_f3_chaos_and_its_watchdog_together_still_ends_the_fault_at_its_ttl() {
    // The stack's own supervisor is the second dead-man switch: no f3-chaos process is left.
    let _lock = heavy_test_lock();
    let env = Env::start("run-killboth", 26700, &[]);
    let mut live = env.run_until_injected("quick-gcp-loss");
    let injected_at = Instant::now();
    let gcp = env.gcp_pids();
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) == Some('T')),
        "gcp nodes frozen"
    );
    assert_eq!(
        fault_records(&env).len(),
        1,
        "the fault is recorded for the supervisor"
    );
    let watchdogs = watchdogs_of(&env.sandbox_state());
    assert_eq!(watchdogs.len(), 1, "one watchdog: {watchdogs:?}");
    live.child.kill().expect("kill -9 f3-chaos");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watchdogs[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the watchdog");
    let _ = live.finish();
    assert!(watchdogs_of(&env.sandbox_state()).is_empty());
    // 10 s fault + 1 s grace = an 11 s TTL; ended within 2 s of it.
    assert_resumed_between(
        "gcp nodes resumed by the stack's supervisor",
        &gcp,
        injected_at,
        Duration::from_secs(9)..=Duration::from_secs(13),
    );
    wait_until("the record is removed", Duration::from_secs(2), || {
        fault_records(&env).is_empty()
    });
}

#[test]
fn a_run_suspended_past_its_heartbeat_loses_its_stack_and_never_reports_passed() {
    // Ctrl-Z mid-fault: another run's sweep judges the silent run dead, reverts its fault and
    // frees its lease; the resumed run must stop judging and end interrupted, saying so.
    let _lock = heavy_test_lock();
    let env = Env::start("run-suspended", 26900, &[]);
    let live = env.run_until_injected("quick-gcp-loss");
    let run_id = live.run_id();
    let gcp = env.gcp_pids();
    let pid = nix::unistd::Pid::from_raw(live.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP the run");
    // Past the 4 s heartbeat TTL, well inside the 10 s fault.
    std::thread::sleep(Duration::from_secs(5));
    let other = env.run("impossible-given");
    let other_output = text(&other);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT the run");
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T')),
        "the other run's sweep reverted the silent run's fault: {other_output}"
    );
    let (code, output) = live.finish();
    assert!(!output.contains("PASSED"), "{output}");
    assert_eq!(
        code,
        Some(9),
        "interrupted: {output}\n--- other run:\n{other_output}"
    );
    assert!(output.contains("stack lease lost"), "says why: {output}");
    let run = env.results_json(&run_id);
    assert_eq!(run["run"]["status"], "interrupted", "{run}");
}

#[test]
fn a_fault_already_in_place_from_anyone_fails_the_preflight_and_nothing_is_injected() {
    // A node frozen by hand stands for a fault no store knows (a run recorded elsewhere that
    // died, a person with `kill -STOP`): the run must not add its fault on top of it.
    let _lock = heavy_test_lock();
    let env = Env::start("run-foreign", 27000, &[]);
    let gcp = env.gcp_pids();
    let frozen = nix::unistd::Pid::from_raw(gcp[0] as i32);
    nix::sys::signal::kill(frozen, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP a node");
    scopeguard::defer! {
        let _ = nix::sys::signal::kill(frozen, nix::sys::signal::Signal::SIGCONT);
    };
    let out = env.run("quick-gcp-loss");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(4), "precondition-failed: {output}");
    assert!(
        output.contains("faults are already in place on the stack (frozen gcp-node-")
            && output.contains(&format!("(pid {}))", gcp[0])),
        "names what is in place: {output}"
    );
    assert_ne!(
        f3_sandbox::procs::state(gcp[1]),
        Some('T'),
        "the other gcp node was never frozen: {output}"
    );
}

#[test]
fn a_second_run_on_a_busy_stack_is_refused_with_the_holder() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-busy", 24700, &[]);
    let first = env.run_until_injected("quick-gcp-loss");
    let holder = first.run_id();
    let out = env.run("impossible-given");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(7), "{output}");
    assert!(
        output.contains(&holder),
        "names the holder's run id: {output}"
    );
    assert!(
        output.contains("quick-gcp-loss"),
        "names the holder's scenario: {output}"
    );
    let (code, output) = first.finish();
    assert_eq!(code, Some(0), "the first run was not disturbed: {output}");
}

#[test]
fn a_run_recorded_in_another_store_is_refused_by_the_stack_itself() {
    // Two stores, one sandbox stack: the store leases cannot see each other, the stack's own
    // experiment claim can.
    let _lock = heavy_test_lock();
    let env = Env::start("run-twostores", 26400, &[]);
    let first = env.run_until_injected("quick-gcp-loss");
    let holder = first.run_id();
    let other_store = format!("sqlite://{}", env.dir.path().join("other.db").display());
    let out = env
        .f3(&[
            "run",
            "--scenario",
            "impossible-given",
            "--stack",
            &env.stack,
            "--wait-for-assertions",
            "--database-url",
            &other_store,
        ])
        .output()
        .expect("f3-chaos run");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(7), "{output}");
    assert!(
        output.contains(&format!("run {holder} (quick-gcp-loss")),
        "names the holder: {output}"
    );
    assert!(output.contains("holds it at the target"), "{output}");
    let (code, output) = first.finish();
    assert_eq!(code, Some(0), "the first run was not disturbed: {output}");
}

/// A tmpfs of `size` mounted on a new directory under `parent`, unmounted on drop (the tests
/// run as root, as CI does).
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(parent: &std::path::Path, size: &str) -> SmallDisk {
        let path = parent.join("small-disk");
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    /// Writes zeros until the disk is full.
    fn fill(&self) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.path.join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

#[test]
fn a_disk_full_mid_run_ends_it_as_an_error_never_passed_and_reverts() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-diskfull", 26500, &[]);
    let disk = SmallDisk::mount(env.dir.path(), "8m");
    let url = format!("sqlite://{}", disk.path.join("store.db").display());
    let live = env.run_until_injected_with("quick-gcp-loss", &["--database-url", &url]);
    let gcp = env.gcp_pids();
    disk.fill();
    let (code, output) = live.finish();
    assert_eq!(code, Some(10), "{output}");
    assert!(!output.contains("PASSED"), "{output}");
    assert!(
        output.contains("the store refused a write (") && output.contains("full"),
        "says why: {output}"
    );
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T')),
        "the fault is reverted: {output}"
    );
}

#[test]
fn a_store_removed_mid_run_ends_it_as_an_error_never_passed() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-storegone", 26600, &[]);
    let store = env.dir.path().join("store.db");
    let live = env.run_until_injected("quick-gcp-loss");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let (code, output) = live.finish();
    assert_eq!(code, Some(10), "{output}");
    assert!(!output.contains("PASSED"), "{output}");
    assert!(
        output.contains(&format!(
            "The SQLite store {} was removed or replaced while it was open",
            store.display()
        )),
        "{output}"
    );
}

/// `chattr ±i` on every file of a SQLite store (the tests run as root on ext4).
fn set_immutable(store: &std::path::Path, immutable: bool) {
    let dir = store.parent().expect("store dir");
    let name = store
        .file_name()
        .expect("store file")
        .to_string_lossy()
        .into_owned();
    for entry in std::fs::read_dir(dir).expect("store dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&name))
        {
            let out = Command::new("chattr")
                .arg(if immutable { "+i" } else { "-i" })
                .arg(&path)
                .output()
                .expect("chattr (e2fsprogs)");
            // A rollback journal (`store.db-journal`) lives only while a write is under way: one
            // listed a moment ago may be gone already, and there is nothing left to protect.
            if !out.status.success() && !path.exists() {
                continue;
            }
            assert!(
                out.status.success(),
                "chattr needs root and ext4: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn a_store_made_immutable_mid_run_ends_it_as_an_error_not_a_crash_and_reverts() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-immutable", 26800, &[]);
    let store = env.dir.path().join("store.db");
    let live = env.run_until_injected("quick-gcp-loss");
    let gcp = env.gcp_pids();
    set_immutable(&store, true);
    // Even when an assertion fails, so the temp dir can be removed.
    scopeguard::defer! { set_immutable(&store, false) };
    let (code, output) = live.finish();
    assert_eq!(code, Some(10), "an error, not SIGBUS: {output}");
    // Every heartbeat of the fault's 10 s fails the same way: said once, not ten times.
    assert_eq!(
        output.matches("Could not write the run heartbeat").count(),
        1,
        "{output}"
    );
    assert!(!output.contains("PASSED"), "{output}");
    assert!(
        output.contains("the store refused a write ("),
        "says why: {output}"
    );
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T')),
        "the fault is reverted: {output}"
    );
}

#[test]
fn ctrl_c_mid_fault_reverts_before_exiting() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-ctrlc", 24800, &[]);
    let live = env.run_until_injected("quick-gcp-loss");
    let gcp = env.gcp_pids();
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) == Some('T')),
        "gcp nodes frozen"
    );
    let pid = nix::unistd::Pid::from_raw(live.child.id() as i32);
    let interrupted_at = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let run_id = live.run_id();
    let (code, output) = live.finish();
    assert_eq!(code, Some(9), "{output}");
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(5),
        "exits promptly: {output}"
    );
    assert!(
        gcp.iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T')),
        "faults reverted before exit: {output}"
    );
    assert!(
        output.contains("[SUCCESS] Reverted: GCP connectivity lost"),
        "{output}"
    );
    let run = env.results_json(&run_id);
    assert_eq!(run["run"]["status"], "interrupted");
    assert_eq!(run["faults"][0]["state"], "reverted");
    assert!(
        fault_records(&env).is_empty(),
        "the revert cleared the supervisor's record"
    );
}

#[test]
fn trigger_returns_once_faults_are_injected_and_the_run_completes_in_the_background() {
    let _lock = heavy_test_lock();
    let env = Env::start("run-trigger", 24900, &[]);
    let started = Instant::now();
    let out = env
        .f3(&[
            "trigger",
            "--scenario",
            "quick-gcp-loss",
            "--target-stack",
            &env.stack,
        ])
        .output()
        .expect("f3-chaos trigger");
    let output = text(&out);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(output.contains("faults injected"), "{output}");
    // Returned while the fault is on: the gcp nodes are frozen now.
    assert!(
        env.gcp_pids()
            .iter()
            .all(|&pid| f3_sandbox::procs::state(pid) == Some('T')),
        "{output}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "returned once injected: {output}"
    );
    let run_id = output
        .lines()
        .find_map(|l| {
            l.strip_prefix("Run ")
                .and_then(|r| r.split_whitespace().next())
        })
        .expect("run id")
        .to_owned();
    // The detached run reverts and judges on its own.
    wait_until(
        "the triggered run to finish",
        Duration::from_secs(90),
        || env.results_json(&run_id)["run"]["status"] != "running",
    );
    let run = env.results_json(&run_id);
    assert_eq!(run["run"]["trigger"], "trigger", "{run:#}");
    assert_eq!(run["faults"][0]["state"], "reverted", "{run:#}");
    assert!(
        env.gcp_pids()
            .iter()
            .all(|&pid| f3_sandbox::procs::state(pid) != Some('T'))
    );
}
