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
        Night::with_spec(stacks, scenarios, f3_chaos_tests::scenarios::TEAMS_YAML, "")
    }

    /// A night whose config has `teams` (YAML list items, 4-space indented) and `extra` lines
    /// in its `spec` (2-space indented), e.g. `resources:`.
    fn with_spec(
        stacks: Vec<SandboxStack>,
        scenarios: &[(&str, String)],
        teams: &str,
        extra: &str,
    ) -> Night {
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
{extra}  stacks:
{stack_yaml}  teams:
{teams}  api:
    tokens:
      - {{ name: ci-operator, role: operator, tokenEnv: F3_CHAOS_TEST_OPERATOR_TOKEN }}
"#,
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
            .env("F3_CHAOS_DATABASE_URL", self.database_url())
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
        self.spawn_daemon(
            None,
            &[
                "--plan-now",
                "--once",
                "--window-start",
                start,
                "--window-end",
                end,
            ],
        )
    }

    /// Starts `f3-chaos daemon --listen 127.0.0.1:0 ARGS…`; with `host`, in a UTS namespace of
    /// its own whose host name is `host` (another "machine" sharing the store and the sandbox).
    fn spawn_daemon(&self, host: Option<&str>, args: &[&str]) -> Daemon {
        let mut command = match host {
            None => self.f3(&["daemon"]),
            Some(host) => {
                // `unshare --uts` (root): a new UTS namespace, its host name set, then exec.
                let template = self.f3(&[]);
                let mut command = Command::new("unshare");
                command
                    .args(["--uts", "sh", "-c"])
                    .arg(format!(
                        "echo {host} > /proc/sys/kernel/hostname && exec \"$0\" \"$@\""
                    ))
                    .arg(binary("f3-chaos"))
                    .arg("daemon");
                for (key, value) in template.get_envs() {
                    if let Some(value) = value {
                        command.env(key, value);
                    }
                }
                command
            }
        };
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Daemon::follow(command.spawn().expect("f3-chaos daemon"))
    }

    /// The store the daemons of this night use.
    fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.path().join("store.db").display()))
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
        let doc = serde_json::from_slice(&out.stdout).expect("results JSON");
        crate::schemas::assert_valid(crate::schemas::Document::Run, &doc);
        doc
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

    // Restart: the sweep closes the dead run; the slot is not started again. The night then has
    // nothing left: it is drained until the window closes, and closed.
    let restarted = night.daemon(-20, 25);
    let (code, journal) = restarted.finish(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        event(&journal, "slot-start").is_empty(),
        "nothing runs twice: {journal:#?}"
    );
    let states: Vec<&str> = event(&journal, "night-state")
        .iter()
        .filter_map(|v| v["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["planning", "running", "drained", "closed"],
        "{journal:#?}"
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

/// Two daemons on one PostgreSQL store, each on a "host" of its own (UTS namespaces, so the
/// standby cannot see the leader's processes and must judge its runs by their heartbeat): the
/// leader is killed with `kill -9` mid-fault; the standby takes over, reverts the dead leader's
/// fault within 5 s of the takeover (not at its TTL), ends that run `interrupted` at its last
/// heartbeat, and runs only what was left.
#[test]
fn two_daemons_on_postgres_the_standby_finishes_the_night_after_the_leader_is_killed() {
    let _lock = heavy_test_lock();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(f3_chaos_tests::postgres::TestDatabase::create());
    let stack = SandboxStack::up_free("night-ha", &[]).expect("sandbox");
    let mut night = Night::new(
        vec![stack],
        &[
            ("first", scenario("first", "gcp", "60s", "70s", "critical")),
            ("second", scenario("second", "aws", "6s", "20s", "high")),
        ],
    );
    night.database_url = Some(database.url.clone());
    let (start, end) = window(0, 75);
    let args = [
        "--plan-now",
        "--once",
        "--window-start",
        &start,
        "--window-end",
        &end,
    ];

    let mut leader = night.spawn_daemon(Some("replica-a"), &args);
    leader.wait_for("leader", Duration::from_secs(30), |v| {
        v["event"] == "leader"
    });
    let mut standby = night.spawn_daemon(Some("replica-b"), &args);
    standby.wait_for("standby", Duration::from_secs(30), |v| {
        v["event"] == "standby"
    });

    // Kill the leader mid-fault.
    let first = leader.wait_for("slot-start", Duration::from_secs(60), |v| {
        v["event"] == "slot-start"
    });
    let killed_scenario = first["scenario"].as_str().expect("scenario").to_owned();
    assert_eq!(killed_scenario, "first", "critical first");
    let killed_run = first["runId"].as_str().expect("run id").to_owned();
    let frozen = night.stacks[0].pids("cloud", "gcp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !frozen
        .iter()
        .all(|&pid| f3_sandbox::procs::state(pid) == Some('T'))
    {
        assert!(Instant::now() < deadline, "gcp never frozen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed_wall = Utc::now();
    leader.child.kill().expect("kill -9 the leader");
    let _ = leader.child.wait();
    let killed_at = Instant::now();

    standby.wait_for("takeover", Duration::from_secs(20), |v| {
        v["event"] == "leader"
    });
    let took_over = Instant::now();
    let takeover = killed_at.elapsed();
    assert!(
        takeover <= Duration::from_secs(5),
        "the standby took over after {takeover:?}"
    );
    // The dead leader's fault is reverted by the new leader's sweep once its heartbeat is older
    // than its TTL — within 5 s of the takeover, though the fault's own TTL is a minute away.
    let deadline = took_over + Duration::from_secs(5);
    while !frozen
        .iter()
        .all(|&pid| f3_sandbox::procs::state(pid) != Some('T'))
    {
        assert!(
            Instant::now() < deadline,
            "gcp still frozen 5 s after the takeover; journal: {:#?}",
            standby.journal
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, journal) = standby.finish(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        event(&journal, "sweep")
            .iter()
            .any(|v| v["report"]["interrupted_runs"]
                .as_array()
                .is_some_and(|runs| runs.iter().any(|r| r == killed_run.as_str()))),
        "{journal:#?}"
    );

    let started: Vec<&str> = event(&journal, "slot-start")
        .iter()
        .filter_map(|v| v["scenario"].as_str())
        .collect();
    assert_eq!(
        started,
        vec!["second"],
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
    // Ended at its last heartbeat (at most one heartbeat period before the kill), not when
    // the sweep found it (at least a heartbeat TTL later).
    let ended_at: chrono::DateTime<Utc> = killed["run"]["endedAt"]
        .as_str()
        .expect("ended_at")
        .parse()
        .expect("RFC 3339");
    assert!(
        ended_at <= killed_wall && killed_wall - ended_at <= chrono::Duration::seconds(2),
        "ended at {ended_at}, killed at {killed_wall}: {killed:#}"
    );
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
        // The dashboard shares the API's port, so it needs a token: refused without one (a
        // Basic challenge, so browsers prompt), served with one as Basic password or bearer.
        let anonymous = client
            .get(format!("{base}/run/{run_id}"))
            .send()
            .await
            .expect("dashboard");
        assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
        assert!(
            anonymous
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic")),
            "{:?}",
            anonymous.headers()
        );
        let wrong = client
            .get(format!("{base}/"))
            .basic_auth("lead", Some("not-a-token-at-all"))
            .send()
            .await
            .expect("dashboard");
        assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
        let dashboard = client
            .get(format!("{base}/run/{run_id}"))
            .basic_auth("lead", Some(OPERATOR_TOKEN))
            .send()
            .await
            .expect("dashboard");
        let status = |path: String| {
            let client = client.clone();
            let url = format!("{base}{path}");
            async move {
                client
                    .get(url)
                    .bearer_auth(OPERATOR_TOKEN)
                    .send()
                    .await
                    .expect("request")
                    .status()
            }
        };
        assert_eq!(status("/scenario/by-hand".into()).await, 200);
        assert_eq!(status("/team/payments".into()).await, 200);
        assert_eq!(status("/run/not-a-run-id".into()).await, 404);
        assert_eq!(status("/runs/0123abcd".into()).await, 404);
        assert_eq!(status("/scenario/no-such-scenario".into()).await, 404);
        assert_eq!(status("/team/no-such-team".into()).await, 404);
        let bad = client
            .get(format!("{base}/api/v1/runs/not-a-run-id"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .expect("api");
        assert_eq!(bad.status(), 404);
        let body: Value = bad.json().await.expect("a JSON error body");
        assert_eq!(body["code"], "not-found", "{body}");
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
    // The run started through the daemon's API is counted under its scenario, stack and outcome.
    let outcome = runs["run"]["status"].as_str().unwrap_or_default();
    assert!(
        metrics.contains(&format!(
            "f3_chaos_runs_total{{scenario=\"by-hand\",stack=\"night-api\",outcome=\"{outcome}\"}} 1"
        )),
        "{runs:#}\n{metrics}"
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

    // `--output json` through the server prints the run document the server stores.
    let json_run = night
        .f3(&[
            "run",
            "--scenario",
            "by-hand",
            "--wait-for-assertions",
            "--server",
            &base,
            "--output",
            "json",
        ])
        .env("F3_CHAOS_TOKEN", OPERATOR_TOKEN)
        .output()
        .expect("run --server --output json");
    let document: Value = serde_json::from_slice(&json_run.stdout).unwrap_or_else(|e| {
        panic!(
            "a run document on stdout ({e}): {}\n{}",
            String::from_utf8_lossy(&json_run.stdout),
            String::from_utf8_lossy(&json_run.stderr)
        )
    });
    crate::schemas::assert_valid(crate::schemas::Document::Run, &document);
    let stored = night.results(document["run"]["id"].as_str().expect("run id"));
    // Notifications may be delivered in between; the run and its steps are final.
    assert_eq!(document["run"], stored["run"], "{document:#}");
    assert_eq!(document["steps"], stored["steps"], "{document:#}");
    assert_eq!(
        json_run.status.code().map(i64::from),
        Some(match document["run"]["status"].as_str() {
            Some("passed") => 0,
            Some("failed") => 1,
            Some("inconclusive") => 3,
            other => panic!("a judged run, not {other:?}: {document:#}"),
        }),
        "the exit code is the outcome's"
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

/// A real HTTP receiver for the teams' webhook routes: records the path and JSON body of every
/// request, answering 200.
struct WebhookReceiver {
    addr: std::net::SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    _runtime: tokio::runtime::Runtime,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = received.clone();
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    log.lock().expect("log").push((uri.path().to_owned(), json));
                    "ok"
                }
            });
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver {
            addr,
            received,
            _runtime: runtime,
        }
    }

    /// Teams YAML (the test teams) with one webhook route each, to `/team/<name>`.
    fn teams_yaml(&self) -> String {
        [
            ("sre-chaos", "SRE chaos lead"),
            ("payments", "Payments team"),
            ("infrastructure", "Infrastructure team"),
            ("payment-gateway", "Payment gateway team"),
            ("scheme-connectivity", "Scheme connectivity team"),
        ]
        .iter()
        .map(|(name, display)| {
            format!(
                "    - {{ name: {name}, displayName: {display}, routes: [{{ kind: webhook, url: \"http://{}/team/{name}\" }}] }}\n",
                self.addr
            )
        })
        .collect()
    }

    /// Messages of `kind` received, counted by path.
    fn count(&self, kind: &str) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (path, body) in self.received.lock().expect("log").iter() {
            if body["kind"] == kind {
                *counts.entry(path.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// Panics unless every body received is a valid webhook document addressed to the team of
    /// its path, with the run document for a run's messages and none for a digest.
    fn assert_documents(&self) {
        for (path, body) in self.received.lock().expect("log").iter() {
            crate::schemas::assert_valid(crate::schemas::Document::Webhook, body);
            assert_eq!(
                Some(body["team"]["name"].as_str().unwrap_or_default()),
                path.strip_prefix("/team/"),
                "{body:#}"
            );
            if body["kind"] == "digest" {
                assert!(body["run"].is_null(), "{body:#}");
            } else {
                crate::schemas::assert_valid(crate::schemas::Document::Run, &body["run"]);
            }
        }
    }

    /// Waits until `kind` messages reached `paths` paths.
    fn wait_for(&self, kind: &str, paths: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(kind).len() < paths {
            assert!(
                Instant::now() < deadline,
                "only {:?} {kind} messages after {timeout:?}",
                self.count(kind)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every team of the test config.
const TEAM_PATHS: [&str; 5] = [
    "/team/infrastructure",
    "/team/payment-gateway",
    "/team/payments",
    "/team/scheme-connectivity",
    "/team/sre-chaos",
];

/// Resident set of a process, MB (`VmRSS` of /proc/PID/status).
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1000.0
}

/// How many plans the store holds for `night`.
fn stored_plans(url: &str, night: &str) -> usize {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = f3_chaos::store::Store::open(url).await.expect("store");
        let plans = store
            .plans(night.parse().expect("night date"))
            .await
            .expect("plans");
        store.close().await;
        plans.len()
    })
}

/// The normal night: its one slot ends long before the window closes. The daemon stores a
/// bounded number of plans (no re-plan loop), sleeps drained with a small footprint until the
/// window ends, and closes the night. The digest is queued by whichever daemon leads when it
/// falls due — here one started after the window (the first exited with `--once`) — exactly once
/// per team, and a further restart sends nothing again.
#[test]
fn a_night_that_ends_early_is_drained_closed_and_digested_once_per_team() {
    let _lock = heavy_test_lock();
    let receiver = WebhookReceiver::start();
    let stack = SandboxStack::up_free("night-early", &[]).expect("sandbox");
    let night = Night::with_spec(
        vec![stack],
        &[("quick", scenario("quick", "gcp", "5s", "15s", "high"))],
        &receiver.teams_yaml(),
        "",
    );
    let (start, end) = window(0, 45);
    let mut first = night.spawn_daemon(
        None,
        &[
            "--plan-now",
            "--once",
            "--digest-after",
            "0s",
            "--window-start",
            &start,
            "--window-end",
            &end,
        ],
    );
    first.wait_for("drained", Duration::from_secs(60), |v| {
        v["event"] == "night-state" && v["state"] == "drained"
    });
    // Drained: asleep until the window closes, not re-planning.
    let mut peak: f64 = 0.0;
    for _ in 0..10 {
        peak = peak.max(rss_mb(first.child.id()));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(peak < 50.0, "drained daemon RSS {peak:.1} MB");
    let (code, journal) = first.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{journal:#?}");
    let states: Vec<&str> = event(&journal, "night-state")
        .iter()
        .filter_map(|v| v["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["planning", "running", "drained", "closed"],
        "{journal:#?}"
    );
    assert_eq!(event(&journal, "slot-end").len(), 1, "{journal:#?}");
    let night_date = event(&journal, "plan")[0]["night"]
        .as_str()
        .expect("night")
        .to_owned();
    let plans = stored_plans(&night.database_url(), &night_date);
    assert!(
        (1..=3).contains(&plans),
        "{plans} plans stored for one run: {journal:#?}"
    );
    assert!(
        event(&journal, "digest").is_empty(),
        "--once left before the digest: {journal:#?}"
    );
    assert!(receiver.count("digest").is_empty());

    // A daemon started after the window queues the closed night's digest, once per team.
    let mut second = night.spawn_daemon(None, &["--digest-after", "0s"]);
    second.wait_for("digest", Duration::from_secs(30), |v| {
        v["event"] == "digest"
    });
    receiver.wait_for("digest", TEAM_PATHS.len(), Duration::from_secs(30));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = second.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        event(&journal, "slot-start").is_empty(),
        "a closed night is never run again: {journal:#?}"
    );

    // Another restart: the digest was claimed; nothing is sent again.
    let mut third = night.spawn_daemon(None, &["--digest-after", "0s"]);
    third.wait_for("leader", Duration::from_secs(30), |v| {
        v["event"] == "leader"
    });
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(third.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = third.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(event(&journal, "digest").is_empty(), "{journal:#?}");
    let counts = receiver.count("digest");
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        TEAM_PATHS,
        "{counts:?}"
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "one digest per team: {counts:?}"
    );
    receiver.assert_documents();
}

/// Two daemons on PostgreSQL; the leader runs the night and is killed with `kill -9` after the
/// window closed but before the digest fell due: the other replica takes over and sends the
/// digest, once per team.
#[test]
fn the_digest_is_sent_once_by_the_replica_that_leads_after_the_leader_died() {
    let _lock = heavy_test_lock();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(f3_chaos_tests::postgres::TestDatabase::create());
    let receiver = WebhookReceiver::start();
    let stack = SandboxStack::up_free("night-digest", &[]).expect("sandbox");
    let mut night = Night::with_spec(
        vec![stack],
        &[("quick", scenario("quick", "aws", "4s", "12s", "high"))],
        &receiver.teams_yaml(),
        "",
    );
    night.database_url = Some(database.url.clone());
    let (start, end) = window(0, 25);
    let args = [
        "--plan-now",
        "--digest-after",
        "6s",
        "--window-start",
        &start,
        "--window-end",
        &end,
    ];
    let mut leader = night.spawn_daemon(Some("replica-a"), &args);
    leader.wait_for("leader", Duration::from_secs(30), |v| {
        v["event"] == "leader"
    });
    let mut standby = night.spawn_daemon(Some("replica-b"), &args);
    standby.wait_for("standby", Duration::from_secs(30), |v| {
        v["event"] == "standby"
    });
    leader.wait_for("closed", Duration::from_secs(60), |v| {
        v["event"] == "night-state" && v["state"] == "closed"
    });
    leader.child.kill().expect("kill -9 the leader");
    let _ = leader.child.wait();
    assert!(
        receiver.count("digest").is_empty(),
        "the digest was not due yet"
    );
    standby.wait_for("takeover", Duration::from_secs(20), |v| {
        v["event"] == "leader"
    });
    standby.wait_for("digest", Duration::from_secs(30), |v| {
        v["event"] == "digest"
    });
    receiver.wait_for("digest", TEAM_PATHS.len(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(standby.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = standby.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{journal:#?}");
    assert!(
        event(&journal, "slot-start").is_empty(),
        "the closed night did not run again: {journal:#?}"
    );
    let counts = receiver.count("digest");
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        TEAM_PATHS,
        "{counts:?}"
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "one digest per team: {counts:?}"
    );
    drop(night);
    drop(database);
}

/// Two scenarios need the capacity-1 resource `gcp-org-network`, on two stacks. The first overruns
/// its plan: it is journalled `overrun` while still running, and the second starts only after the
/// first's fault was reverted and its run ended — not at the first's planned end.
#[test]
fn a_resource_is_held_by_its_live_holder_past_the_planned_end() {
    let _lock = heavy_test_lock();
    let a = SandboxStack::up_free("night-res-a", &[]).expect("sandbox a");
    let b = SandboxStack::up_free("night-res-b", &[]).expect("sandbox b");
    let with_resource = |text: String| {
        text.replace(
            "estimatedDuration:",
            "resources: [gcp-org-network], estimatedDuration:",
        )
    };
    let night = Night::with_spec(
        vec![a, b],
        &[
            // Planned for 8 s, takes 20+ s.
            (
                "holder",
                with_resource(scenario("holder", "gcp", "20s", "8s", "critical")),
            ),
            (
                "next",
                with_resource(scenario("next", "gcp", "4s", "10s", "high")),
            ),
        ],
        f3_chaos_tests::scenarios::TEAMS_YAML,
        "  resources:\n    - { name: gcp-org-network, capacity: 1 }\n",
    );
    let daemon = night.daemon(0, 90);
    let (code, journal) = daemon.finish(Duration::from_secs(150));
    assert_eq!(code, Some(0), "{journal:#?}");
    let position = |kind: &str, scenario: &str| {
        journal
            .iter()
            .position(|v| v["event"] == kind && v["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no {kind} of {scenario}: {journal:#?}"))
    };
    assert!(
        position("slot-start", "holder") < position("overrun", "holder")
            && position("overrun", "holder") < position("slot-end", "holder"),
        "the overrun is journalled while the holder still runs: {journal:#?}"
    );
    assert!(
        position("slot-end", "holder") < position("slot-start", "next"),
        "next waited for the live holder: {journal:#?}"
    );
    let holder_id = journal[position("slot-start", "holder")]["runId"]
        .as_str()
        .expect("run id")
        .to_owned();
    let next_id = journal[position("slot-start", "next")]["runId"]
        .as_str()
        .expect("run id")
        .to_owned();
    let holder = night.results(&holder_id);
    let next = night.results(&next_id);
    let at = |v: &Value| -> chrono::DateTime<Utc> {
        v.as_str().expect("instant").parse().expect("RFC 3339")
    };
    let reverted = holder["faults"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|f| at(&f["updatedAt"]))
        .max()
        .expect("a fault");
    assert!(
        at(&next["run"]["startedAt"]) >= reverted,
        "next started before the holder's fault was reverted: {holder:#} {next:#}"
    );
    let planned_end = at(&journal[position("slot-start", "holder")]["plannedEnd"]);
    assert!(
        at(&next["run"]["startedAt"]) > planned_end + chrono::Duration::seconds(5),
        "next started near the holder's planned end: {journal:#?}"
    );
    night.assert_no_fault_left();
}

/// A daemon started after the night's trigger fired (5 minutes before the window, by default)
/// but before the window opens waits for the window and runs the night — not tomorrow's.
#[test]
fn a_daemon_started_after_the_trigger_but_before_the_window_runs_the_night() {
    let _lock = heavy_test_lock();
    let stack = SandboxStack::up_free("night-late", &[]).expect("sandbox");
    let night = Night::new(
        vec![stack],
        &[("quick", scenario("quick", "gcp", "4s", "12s", "high"))],
    );
    let (start, end) = window(20, 50);
    // No --plan-now: the default trigger (window start − 5 min) fired before this daemon started.
    let mut daemon = night.spawn_daemon(
        None,
        &["--once", "--window-start", &start, "--window-end", &end],
    );
    // The night is planned at once (its trigger has fired), ahead of its window.
    let plan = daemon.wait_for("plan", Duration::from_secs(15), |v| v["event"] == "plan");
    let window_start: chrono::DateTime<Utc> = plan["windowStart"]
        .as_str()
        .expect("windowStart")
        .parse()
        .expect("RFC 3339");
    assert!(
        Utc::now() < window_start,
        "planned before the window: {plan:#}"
    );
    let (code, journal) = daemon.finish(Duration::from_secs(90));
    assert_eq!(code, Some(0), "{journal:#?}");
    let starts = event(&journal, "slot-start");
    assert_eq!(starts.len(), 1, "{journal:#?}");
    let planned: chrono::DateTime<Utc> = starts[0]["plannedStart"]
        .as_str()
        .expect("plannedStart")
        .parse()
        .expect("RFC 3339");
    assert!(planned >= window_start, "{journal:#?}");
    assert_eq!(
        night.results(starts[0]["runId"].as_str().expect("run id"))["run"]["night"],
        plan["night"],
        "tonight's night, not tomorrow's"
    );
}

/// A TCP relay in front of PostgreSQL that the test cuts and restores: the store going away the
/// way a network partition or a database failover takes it, with the server itself untouched.
struct StoreLink {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl StoreLink {
    /// Relays `addr` (a free port when None) to `upstream`.
    fn open(addr: Option<std::net::SocketAddr>, upstream: std::net::SocketAddr) -> StoreLink {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
            .expect("bind the store link");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("local addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = std::net::TcpStream::connect(upstream) else {
                        continue;
                    };
                    let mut streams = open.lock().expect("link lock");
                    for (mut from, mut to) in [
                        (
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                        ),
                        (
                            server.try_clone().expect("clone"),
                            client.try_clone().expect("clone"),
                        ),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    streams.extend([client, server]);
                }
            })
        };
        StoreLink {
            addr,
            stop,
            open,
            acceptor: Some(acceptor),
        }
    }

    /// Stops accepting and breaks every relayed connection.
    fn cut(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.open.lock().expect("link lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for StoreLink {
    fn drop(&mut self) {
        self.cut();
    }
}

/// GETs `url` until `pred` holds for (status, body) or `timeout` passes; returns the last answer.
async fn poll_until(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    pred: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = match client.get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        };
        if pred(answer.0, &answer.1) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An operator's view of one daemon on PostgreSQL: `/healthz` and `/readyz` answer the probes,
/// `/metrics` in the classic text format passes `promtool check metrics` and a real Prometheus
/// scrapes it; when the store becomes unreachable `/readyz` says so (503) while `/healthz` stays
/// up, and readiness comes back with the store.
#[test]
fn the_probes_and_metrics_tell_an_operator_what_the_daemon_is_doing() {
    let _lock = heavy_test_lock();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(f3_chaos_tests::postgres::TestDatabase::create());
    let mut url = url::Url::parse(&database.url).expect("database URL");
    let upstream = url.socket_addrs(|| Some(5432)).expect("PostgreSQL address")[0];
    let mut link = StoreLink::open(None, upstream);
    url.set_port(Some(link.addr.port())).expect("port");
    let stack = SandboxStack::up_free("night-probes", &[]).expect("sandbox");
    let stack_name = stack.name.clone();
    let mut night = Night::new(
        vec![stack],
        &[("quick", scenario("quick", "aws", "4s", "12s", "high"))],
    );
    night.database_url = Some(url.to_string());
    // A window an hour away: the daemon leads and waits; nothing runs.
    let (start, end) = window(3600, 7200);
    let mut daemon = night.spawn_daemon(None, &["--window-start", &start, "--window-end", &end]);
    let started = daemon.wait_for("started", Duration::from_secs(30), |v| {
        v["event"] == "started"
    });
    let base = format!("http://{}", started["listen"].as_str().expect("listen"));
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let restored = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let (status, body) = poll_until(
            &client,
            &format!("{base}/healthz"),
            Duration::from_secs(5),
            |s, _| s == 200,
        )
        .await;
        assert_eq!(
            (status, &body["status"]),
            (200, &Value::from("ok")),
            "{body}"
        );
        let (status, body) = poll_until(
            &client,
            &format!("{base}/readyz"),
            Duration::from_secs(15),
            |s, _| s == 200,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["role"], "leader", "{body}");
        assert_eq!(body["store"], "ok", "{body}");

        let metrics = client
            .get(format!("{base}/metrics"))
            .header("Accept", prometheus_accept)
            .send()
            .await
            .expect("/metrics");
        let content_type = metrics.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let text = metrics.text().await.expect("metrics body");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let mut promtool = Command::new(f3_chaos_tests::process::installed_or_on_path(
            "/usr/bin/promtool",
            "promtool",
        ))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`)");
        std::io::Write::write_all(promtool.stdin.as_mut().expect("stdin"), text.as_bytes())
            .expect("feed promtool");
        let checked = promtool.wait_with_output().expect("promtool");
        assert!(
            checked.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        for series in [
            "f3_chaos_leader 1".to_owned(),
            format!("f3_chaos_active_faults{{stack=\"{stack_name}\"}} 0"),
            format!("f3_chaos_faults_past_ttl{{stack=\"{stack_name}\"}} 0"),
            "f3_chaos_outbox_dead_letters 0".to_owned(),
            "f3_chaos_last_night_ended_timestamp_seconds 0.0".to_owned(),
        ] {
            assert!(text.contains(&format!("{series}\n")), "{series} in\n{text}");
        }

        // A real Prometheus (which negotiates with the header above) scrapes the same series.
        let addr: std::net::SocketAddr = started["listen"]
            .as_str()
            .expect("listen")
            .parse()
            .expect("addr");
        let prometheus = f3_chaos_tests::prometheus::TestPrometheus::start(&[addr]).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let leader = loop {
            let leader = f3_chaos_tests::sandbox::query(&prometheus.url(), "f3_chaos_leader")
                .await
                .ok()
                .flatten();
            if leader.is_some() || Instant::now() > deadline {
                break leader;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(leader, Some(1.0), "Prometheus scraped f3_chaos_leader");
        let faults = f3_chaos_tests::sandbox::query(
            &prometheus.url(),
            &format!("f3_chaos_active_faults{{stack=\"{stack_name}\"}}"),
        )
        .await
        .expect("query");
        assert_eq!(faults, Some(0.0));

        // The store goes away: not ready (the probe takes the replica out of the Service), alive.
        link.cut();
        let (status, body) = poll_until(
            &client,
            &format!("{base}/readyz"),
            Duration::from_secs(15),
            |s, _| s == 503,
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "not-ready", "{body}");
        assert!(
            body["store"]
                .as_str()
                .is_some_and(|s| s.starts_with("unreachable")),
            "{body}"
        );
        let (status, _) = poll_until(
            &client,
            &format!("{base}/healthz"),
            Duration::from_secs(5),
            |s, _| s == 200,
        )
        .await;
        assert_eq!(status, 200);

        // ... and comes back: ready again, leading again.
        let restored = StoreLink::open(Some(link.addr), upstream);
        let (status, body) = poll_until(
            &client,
            &format!("{base}/readyz"),
            Duration::from_secs(45),
            |s, b| s == 200 && b["role"] == "leader",
        )
        .await;
        assert_eq!(
            (status, &body["role"]),
            (200, &Value::from("leader")),
            "{body}"
        );
        drop(prometheus);
        restored
    });
    // The store stays reachable through the shutdown (the test is about the probes, not about
    // stopping without a store).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let (code, journal) = daemon.finish(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{journal:#?}");
    drop(restored);
    drop(night);
    drop(database);
}
