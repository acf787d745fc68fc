//! End-to-end tests of `f3-chaos daemon` on real sandbox stacks with a compressed window
//! (seconds, not hours): a planned night on two stacks with a re-plan after an overrun and a stop
//! at window end with every fault reverted; `kill -9` mid-fault then a restart that runs nothing
//! twice.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use chrono::Utc;
use f3_chaos_tests::sandbox::SandboxStack;
use f3_chaos_tests::{binary, heavy_test_lock, repo_root};
use serde_json::Value;

/// A nightly scenario losing `cloud` for `fault`, planned for `estimate`, with `priority`.
fn scenario(name: &str, cloud: &str, fault: &str, estimate: &str, priority: &str) -> String {
    format!(
        r#"apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: {name}
  description: Daemon test scenario - {cloud} lost for {fault}.
  owner: sre-chaos
spec:
  targets:
    selector: {{ platform: payments }}
  schedule: {{ cadence: nightly, priority: {priority}, estimatedDuration: {estimate} }}
  when:
    - kind: cloud-loss
      name: {cloud} connectivity lost
      cloud: {cloud}
      duration: {fault}
  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
      hold: during-fault
"#
    )
}

/// The secret of the `ci-operator` API token every test config declares.
const OPERATOR_TOKEN: &str = "operator-secret-0123456789";

/// A config directory with the given scenarios and one `local` stack per sandbox, its store in
/// the same temp dir.
struct Night {
    dir: tempfile::TempDir,
    stacks: Vec<SandboxStack>,
    /// Store URL; default: a SQLite file in `dir`.
    database_url: Option<String>,
}

impl Night {
    fn new(stacks: Vec<SandboxStack>, scenarios: &[(&str, String)]) -> Night {
        let dir = tempfile::tempdir().expect("temp dir");
        let scenario_dir = dir.path().join("scenarios");
        std::fs::create_dir_all(&scenario_dir).expect("scenarios dir");
        for (name, text) in scenarios {
            std::fs::write(scenario_dir.join(format!("{name}.yaml")), text)
                .expect("write scenario");
        }
        let mut stack_yaml = String::new();
        for stack in &stacks {
            stack_yaml.push_str(&format!(
                r#"    - name: {name}
      environment: local
      labels: {{ platform: payments }}
      clusters:
        - {{ cloud: gcp, name: gcp }}
        - {{ cloud: aws, name: aws }}
        - {{ cloud: azure, name: azure }}
      driver:
        kind: local
        sandboxStack: {name}
        stateDir: {state}
      prometheusUrl: {prometheus}
"#,
                name = stack.name,
                state = stack.state_dir().display(),
                prometheus = stack.prometheus_url(),
            ));
        }
        let config = format!(
            r#"apiVersion: f3-chaos/v1
kind: Config
spec:
  timezone: UTC
  library:
    scenarios: {scenarios}
    assertions: {assertions}
  cooldown: 3s
  stacks:
{stack_yaml}  teams:
{teams}  api:
    tokens:
      - {{ name: ci-operator, role: operator, tokenEnv: F3_CHAOS_TEST_OPERATOR_TOKEN }}
"#,
            teams = f3_chaos_tests::scenarios::TEAMS_YAML,
            scenarios = scenario_dir.display(),
            assertions = repo_root().join("assertions").display(),
        );
        std::fs::create_dir_all(dir.path().join("config")).expect("config dir");
        std::fs::write(dir.path().join("config/f3-chaos.yaml"), config).expect("write config");
        Night {
            dir,
            stacks,
            database_url: None,
        }
    }

    fn f3(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("f3-chaos"));
        command
            .args(args)
            .env("F3_CHAOS_CONFIG", self.dir.path().join("config"))
            .env(
                "F3_CHAOS_DATABASE_URL",
                self.database_url.clone().unwrap_or_else(|| {
                    format!("sqlite://{}", self.dir.path().join("store.db").display())
                }),
            )
            .env("F3_CHAOS_TEST_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("NO_COLOR", "1");
        command
    }

    /// Starts the daemon on a window from `start_in` to `end_in` from now (UTC, seconds).
    fn daemon(&self, start_in: i64, end_in: i64) -> Daemon {
        let (start, end) = window(start_in, end_in);
        self.daemon_on(&start, &end)
    }

    /// Starts the daemon on the window `start`–`end` (local `HH:MM:SS`, UTC zone).
    fn daemon_on(&self, start: &str, end: &str) -> Daemon {
        let child = self
            .f3(&[
                "daemon",
                "--plan-now",
                "--once",
                "--listen",
                "127.0.0.1:0",
                "--window-start",
                start,
                "--window-end",
                end,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("f3-chaos daemon");
        Daemon::follow(child)
    }
}

impl Daemon {
    /// Reads the journal of a started daemon (stdout piped) on a thread.
    fn follow(mut child: Child) -> Daemon {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        Daemon {
            child,
            rx,
            journal: Vec::new(),
        }
    }
}

impl Night {
    fn results(&self, run_id: &str) -> Value {
        let out = self
            .f3(&["results", run_id, "--output", "json"])
            .output()
            .expect("results");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("results JSON")
    }

    /// Every sandbox process of every stack is running (none frozen by a fault).
    fn assert_no_fault_left(&self) {
        for stack in &self.stacks {
            let inventory =
                f3_sandbox::load_inventory(stack.state_dir(), &stack.name).expect("inventory");
            for process in &inventory.processes {
                assert_ne!(
                    f3_sandbox::procs::state(process.pid),
                    Some('T'),
                    "{} of {} still frozen",
                    process.name,
                    stack.name
                );
            }
        }
    }
}

struct Daemon {
    child: Child,
    rx: Receiver<Value>,
    journal: Vec<Value>,
}

impl Daemon {
    /// Waits for a journal entry matching `pred` (keeps every entry seen).
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        if let Some(found) = self.journal.iter().find(|v| pred(v)) {
            return found.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(value) => {
                    self.journal.push(value.clone());
                    if pred(&value) {
                        return value;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("timed out waiting for {what}; journal: {:#?}", self.journal);
    }

    /// Waits for the process to exit and drains the journal.
    fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit; journal: {:#?}",
                self.journal
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        while let Ok(value) = self.rx.recv_timeout(Duration::from_secs(2)) {
            self.journal.push(value);
        }
        (status.code(), std::mem::take(&mut self.journal))
    }
}

/// A window from `start_in` to `end_in` seconds from now, as `HH:MM:SS` (UTC).
fn window(start_in: i64, end_in: i64) -> (String, String) {
    let now = Utc::now();
    let at = |s: i64| {
        (now + chrono::Duration::seconds(s))
            .format("%H:%M:%S")
            .to_string()
    };
    (at(start_in), at(end_in))
}

impl Drop for Daemon {
    /// A failed test must not leave its daemon running (it would hold the sandbox and pipes).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn event<'a>(journal: &'a [Value], kind: &str) -> Vec<&'a Value> {
    journal.iter().filter(|v| v["event"] == kind).collect()
}

#[test]
fn a_compressed_night_on_two_stacks_replans_and_stops_at_window_end() {
    let _lock = heavy_test_lock();
    let a = SandboxStack::up_free("night-a", &[]).expect("sandbox a");
    let b = SandboxStack::up_free("night-b", &[]).expect("sandbox b");
    let night = Night::new(
        vec![a, b],
        &[
            // Planned for 10 s, takes 20+ s: the stack's later slots move.
            (
                "overrun",
                scenario("overrun", "aws", "20s", "10s", "critical"),
            ),
            // Still faulting at window end: cancelled and reverted.
            ("long", scenario("long", "azure", "5m", "20s", "high")),
            ("short-1", scenario("short-1", "gcp", "8s", "25s", "medium")),
            ("short-2", scenario("short-2", "gcp", "8s", "25s", "low")),
            // Can never fit in the window.
            ("too-long", scenario("too-long", "gcp", "8s", "1h", "low")),
        ],
    );
    let started = Instant::now();
    let daemon = night.daemon(3, 110);
    let (code, journal) = daemon.finish(Duration::from_secs(200));
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        took < Duration::from_secs(130),
        "the daemon stops at window end: {took:?}"
    );

    let plan = event(&journal, "plan");
    assert_eq!(plan.len(), 1, "{journal:#?}");
    let slots = plan[0]["slots"].as_array().expect("slots");
    let stacks: std::collections::BTreeSet<&str> =
        slots.iter().filter_map(|s| s["stack"].as_str()).collect();
    assert_eq!(stacks.len(), 2, "both stacks planned: {journal:#?}");
    assert!(
        !slots.iter().any(|s| s["scenario"] == "too-long"),
        "{journal:#?}"
    );

    assert!(
        event(&journal, "replan")
            .iter()
            .any(|r| r["reason"] == "overrun" && r["scenario"] == "overrun"),
        "re-planned after the overrun: {journal:#?}"
    );
    assert_eq!(event(&journal, "window-end").len(), 1, "{journal:#?}");

    let starts = event(&journal, "slot-start");
    let ends = event(&journal, "slot-end");
    assert_eq!(
        starts.len(),
        ends.len(),
        "every started slot ended: {journal:#?}"
    );
    let mut scenarios: Vec<&str> = starts
        .iter()
        .filter_map(|s| s["scenario"].as_str())
        .collect();
    scenarios.sort_unstable();
    let count = scenarios.len();
    scenarios.dedup();
    assert_eq!(count, scenarios.len(), "nothing ran twice: {journal:#?}");
    for name in ["overrun", "long", "short-1", "short-2"] {
        assert!(scenarios.contains(&name), "{name} ran: {journal:#?}");
    }
    let long = ends
        .iter()
        .find(|e| e["scenario"] == "long")
        .expect("long ended");
    assert_eq!(long["outcome"], "interrupted", "{journal:#?}");
    for end in &ends {
        let run = night.results(end["runId"].as_str().expect("run id"));
        assert_ne!(run["run"]["status"], "running", "{run:#}");
        for fault in run["faults"].as_array().expect("ledger") {
            assert_eq!(fault["state"], "reverted", "{run:#}");
        }
    }
    assert!(
        event(&journal, "skipped")
            .iter()
            .any(|s| s["scenario"] == "too-long"),
        "{journal:#?}"
    );
    night.assert_no_fault_left();
}

#[test]
fn kill_9_mid_fault_then_restart_leaves_no_fault_and_runs_nothing_twice() {
    let _lock = heavy_test_lock();
    let a = SandboxStack::up_free("night-kill", &[]).expect("sandbox");
    let night = Night::new(
        vec![a],
        &[("held", scenario("held", "gcp", "15s", "30s", "high"))],
    );
    let mut daemon = night.daemon(0, 90);
    let start = daemon.wait_for("slot-start", Duration::from_secs(60), |v| {
        v["event"] == "slot-start"
    });
    let run_id = start["runId"].as_str().expect("run id").to_owned();
    let gcp = night.stacks[0].pids("cloud", "gcp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gcp
        .iter()
        .all(|&pid| f3_sandbox::procs::state(pid) == Some('T'))
    {
        assert!(Instant::now() < deadline, "gcp never frozen");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.child.kill().expect("kill -9 the daemon");
    let _ = daemon.child.wait();

    // Restart: the sweep closes the dead run; the slot is not started again.
    let restarted = night.daemon(-20, 60);
    let (code, journal) = restarted.finish(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        event(&journal, "slot-start").is_empty(),
        "nothing runs twice: {journal:#?}"
    );
    assert!(
        event(&journal, "already-started")
            .iter()
            .any(|v| v["runId"] == run_id.as_str()),
        "{journal:#?}"
    );
    let run = night.results(&run_id);
    assert_eq!(run["run"]["status"], "interrupted", "{run:#}");
    for fault in run["faults"].as_array().expect("ledger") {
        assert_eq!(fault["state"], "reverted", "{run:#}");
    }
    night.assert_no_fault_left();
}

#[test]
fn two_daemons_on_postgres_the_standby_finishes_the_night_after_the_leader_is_killed() {
    let _lock = heavy_test_lock();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(f3_chaos_tests::postgres::TestDatabase::create());
    let stack = SandboxStack::up_free("night-ha", &[]).expect("sandbox");
    let mut night = Night::new(
        vec![stack],
        &[
            ("first", scenario("first", "gcp", "20s", "30s", "critical")),
            ("second", scenario("second", "aws", "6s", "20s", "high")),
        ],
    );
    night.database_url = Some(database.url.clone());
    let (start, end) = window(0, 150);

    let mut leader = night.daemon_on(&start, &end);
    leader.wait_for("leader", Duration::from_secs(30), |v| {
        v["event"] == "leader"
    });
    let mut standby = night.daemon_on(&start, &end);
    standby.wait_for("standby", Duration::from_secs(30), |v| {
        v["event"] == "standby"
    });

    // Kill the leader mid-fault.
    let first = leader.wait_for("slot-start", Duration::from_secs(60), |v| {
        v["event"] == "slot-start"
    });
    let killed_scenario = first["scenario"].as_str().expect("scenario").to_owned();
    let killed_run = first["runId"].as_str().expect("run id").to_owned();
    let cloud = if killed_scenario == "first" {
        "gcp"
    } else {
        "aws"
    };
    let frozen = night.stacks[0].pids("cloud", cloud);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !frozen
        .iter()
        .all(|&pid| f3_sandbox::procs::state(pid) == Some('T'))
    {
        assert!(Instant::now() < deadline, "{cloud} never frozen");
        std::thread::sleep(Duration::from_millis(100));
    }
    leader.child.kill().expect("kill -9 the leader");
    let _ = leader.child.wait();
    let killed_at = Instant::now();

    standby.wait_for("takeover", Duration::from_secs(20), |v| {
        v["event"] == "leader"
    });
    let takeover = killed_at.elapsed();
    assert!(
        takeover <= Duration::from_secs(15),
        "the standby took over after {takeover:?}"
    );
    let (code, journal) = standby.finish(Duration::from_secs(150));
    assert_eq!(code, Some(0), "{journal:#?}");

    let started: Vec<&str> = event(&journal, "slot-start")
        .iter()
        .filter_map(|v| v["scenario"].as_str())
        .collect();
    let other = if killed_scenario == "first" {
        "second"
    } else {
        "first"
    };
    assert_eq!(
        started,
        vec![other],
        "the new leader ran only what was left: {journal:#?}"
    );
    assert!(
        event(&journal, "already-started")
            .iter()
            .any(|v| v["runId"] == killed_run.as_str()),
        "{journal:#?}"
    );
    let ended = event(&journal, "slot-end");
    assert_eq!(ended.len(), 1, "{journal:#?}");
    assert_ne!(ended[0]["outcome"], "interrupted", "{journal:#?}");

    let killed = night.results(&killed_run);
    assert_eq!(killed["run"]["status"], "interrupted", "{killed:#}");
    for fault in killed["faults"].as_array().expect("ledger") {
        assert_eq!(fault["state"], "reverted", "{killed:#}");
    }
    night.assert_no_fault_left();
    drop(night);
    drop(database);
}

#[test]
fn the_daemon_serves_the_api_and_run_with_server_prints_the_same_run() {
    let _lock = heavy_test_lock();
    let stack = SandboxStack::up_free("night-api", &[]).expect("sandbox");
    let manual = scenario("by-hand", "gcp", "6s", "30s", "low")
        .replace("cadence: nightly", "cadence: manual");
    let night = Night::new(vec![stack], &[("by-hand", manual)]);
    let child = night
        .f3(&["daemon", "--cron", "0 0 0 1 1 *", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("f3-chaos daemon");
    let mut daemon = Daemon::follow(child);
    let started = daemon.wait_for("started", Duration::from_secs(30), |v| {
        v["event"] == "started"
    });
    let base = format!("http://{}", started["listen"].as_str().expect("listen"));

    // No token: refused, nothing runs.
    let refused = night
        .f3(&[
            "run",
            "--scenario",
            "by-hand",
            "--wait-for-assertions",
            "--server",
            &base,
        ])
        .env_remove("F3_CHAOS_TOKEN")
        .output()
        .expect("run --server");
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("F3_CHAOS_TOKEN"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let out = night
        .f3(&[
            "run",
            "--scenario",
            "by-hand",
            "--wait-for-assertions",
            "--server",
            &base,
        ])
        .env("F3_CHAOS_TOKEN", OPERATOR_TOKEN)
        .output()
        .expect("run --server");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No load step: the latency SLO has no data and the run is inconclusive — judged all the same.
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "a judged run: {stdout}\n{stderr}"
    );
    assert!(stdout.contains("by-hand on night-api"), "{stdout}");
    assert!(stdout.contains("gcp connectivity lost"), "{stdout}");
    assert!(stdout.contains("Product SLO latency < 250ms"), "{stdout}");

    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Run ")?.split(':').next())
        .expect("the run id is printed")
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (metrics, dashboard, runs) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        let dashboard = client
            .get(format!("{base}/run/{run_id}"))
            .send()
            .await
            .expect("dashboard");
        let runs: Value = client
            .get(format!("{base}/api/v1/runs/{run_id}"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .expect("runs")
            .json()
            .await
            .expect("runs JSON");
        (metrics, dashboard.status(), runs)
    });
    assert!(
        metrics.contains("f3_chaos_runs_total{outcome="),
        "{metrics}"
    );
    assert!(
        dashboard.is_success(),
        "dashboard of run {run_id}: {dashboard}\n{stdout}"
    );
    let text = runs.to_string();
    assert!(
        text.contains("ci-operator") && text.contains("\"api\""),
        "{runs:#}"
    );

    // SIGTERM: the daemon stops within 10 s.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = daemon.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{journal:#?}");
}

#[test]
fn a_frozen_node_no_ledger_knows_is_resumed_when_the_daemon_leads() {
    let _lock = heavy_test_lock();
    let stack = SandboxStack::up_free("night-orphan", &[]).expect("sandbox");
    let frozen = stack.pids("cloud", "aws");
    assert!(!frozen.is_empty());
    // A fault from another store (or a lost one): nothing in this daemon's ledger.
    for &pid in &frozen {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .expect("SIGSTOP");
    }
    let night = Night::new(
        vec![stack],
        &[("held", scenario("held", "gcp", "6s", "30s", "low"))],
    );
    let child = night
        .f3(&["daemon", "--cron", "0 0 0 1 1 *", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("f3-chaos daemon");
    let mut daemon = Daemon::follow(child);
    let swept = daemon.wait_for("sweep-orphans", Duration::from_secs(60), |v| {
        v["event"] == "sweep-orphans"
    });
    let reverted = swept["report"]["reverted"].as_array().expect("reverted");
    assert_eq!(reverted.len(), 1, "{swept:#}");
    for &pid in &frozen {
        assert_ne!(
            f3_sandbox::procs::state(pid),
            Some('T'),
            "aws node {pid} still frozen"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = daemon.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{journal:#?}");
}
