//! End-to-end tests: Alertmanager silences and Grafana annotations during experiments (issue 7,
//! items 5 and 6). A real Alertmanager (`f3_chaos_tests::alertmanager`), a real sandbox stack and
//! `f3-chaos run --wait-for-assertions`; a local HTTP receiver (axum on 127.0.0.1:0) stands in
//! for Grafana and records every request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use f3_chaos::store::{EventRecord, Store};
use f3_chaos_tests::alertmanager::{TestAlertmanager, unreachable_url};
use f3_chaos_tests::sandbox::SandboxStack;
use f3_chaos_tests::{binary, heavy_test_lock, repo_root};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const GRAFANA_TOKEN: &str = "glsa_test-token-never-logged";

/// A 12 s GCP loss judged during the fault; no Given, so the run is quick.
const SILENCED_GCP_LOSS: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: silenced-gcp-loss
  description: Test scenario - a 12 second GCP loss with the stack's alerts silenced.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: 12s
  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
      hold: during-fault
"#;

/// A 40 s GCP loss aborted as soon as Prometheus sees the GCP nodes down.
const ABORTED_GCP_LOSS: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: aborted-gcp-loss
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

// ---------------------------------------------------------------- Grafana stand-in

#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Recorded {
    requests: Arc<Mutex<Vec<Request>>>,
    failing: bool,
}

/// Records every request; answers like Grafana (`{"id": 7}`) or, when failing, HTTP 500.
struct Grafana {
    url: String,
    recorded: Recorded,
    task: tokio::task::JoinHandle<()>,
}

impl Grafana {
    async fn start(failing: bool) -> Grafana {
        let recorded = Recorded {
            failing,
            ..Recorded::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(recorded.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Grafana {
            url,
            recorded,
            task,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.recorded.requests.lock().unwrap().clone()
    }
}

impl Drop for Grafana {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    axum::extract::State(recorded): axum::extract::State<Recorded>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    recorded.requests.lock().unwrap().push(Request {
        method,
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if recorded.failing {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "grafana is broken (test)",
        )
            .into_response();
    }
    axum::Json(json!({"id": 7, "message": "Annotation added"})).into_response()
}

// ---------------------------------------------------------------- environment

/// A sandbox stack plus a config directory and store naming it, its Alertmanager and Grafana.
struct Env {
    stack: SandboxStack,
    dir: tempfile::TempDir,
}

impl Env {
    fn start(name: &str) -> Env {
        let stack = SandboxStack::up_free(name, &[]).expect("f3-sandbox up");
        let dir = tempfile::tempdir().expect("temp dir");
        Env { stack, dir }
    }

    /// Writes the config: the stack with `alertmanagerUrl` (default silence matchers) and,
    /// optionally, Grafana annotations with a token from `GRAFANA_TOKEN_TEST`.
    fn configure(&self, alertmanager_url: &str, grafana_url: Option<&str>) {
        let scenarios = self.dir.path().join("scenarios");
        std::fs::create_dir_all(&scenarios).unwrap();
        for (name, text) in [
            ("silenced-gcp-loss", SILENCED_GCP_LOSS),
            ("aborted-gcp-loss", ABORTED_GCP_LOSS),
        ] {
            std::fs::write(scenarios.join(format!("{name}.yaml")), text).unwrap();
        }
        let grafana = grafana_url
            .map(|url| {
                format!("      grafana: {{ url: \"{url}\", tokenEnv: GRAFANA_TOKEN_TEST }}\n")
            })
            .unwrap_or_default();
        let config = format!(
            r#"apiVersion: f3-chaos/v1
kind: Config
spec:
  library:
    scenarios: {scenarios}
    assertions: {assertions}
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
      prometheusUrl: {prometheus}
      alertmanagerUrl: {alertmanager_url}
{grafana}  teams:
{teams}"#,
            teams = f3_chaos_tests::scenarios::TEAMS_YAML,
            scenarios = scenarios.display(),
            assertions = repo_root().join("assertions").display(),
            stack = self.stack.name,
            state = self.stack.state_dir().display(),
            prometheus = self.stack.prometheus_url(),
        );
        let config_dir = self.dir.path().join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::write(config_dir.join("f3-chaos.yaml"), config).unwrap();
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("store.db").display())
    }

    /// `f3-chaos run --scenario NAME --wait-for-assertions`, output piped.
    fn spawn_run(&self, scenario: &str) -> LiveRun {
        let mut child = tokio::process::Command::new(binary("f3-chaos"))
            .args(["run", "--scenario", scenario, "--stack", &self.stack.name])
            .arg("--wait-for-assertions")
            .env("F3_CHAOS_CONFIG", self.dir.path().join("config"))
            .env("F3_CHAOS_DATABASE_URL", self.database_url())
            .env("F3_SANDBOX_STATE_DIR", self.stack.state_dir())
            .env("GRAFANA_TOKEN_TEST", GRAFANA_TOKEN)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("f3-chaos run");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        LiveRun {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    async fn events(&self, run_id: &str) -> Vec<EventRecord> {
        let store = Store::open(&self.database_url()).await.unwrap();
        store.events(run_id.parse().unwrap()).await.unwrap()
    }

    fn results(&self, run_id: &str) -> Value {
        let out = std::process::Command::new(binary("f3-chaos"))
            .args(["results", run_id, "--output", "json"])
            .env("F3_CHAOS_CONFIG", self.dir.path().join("config"))
            .env("F3_CHAOS_DATABASE_URL", self.database_url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = serde_json::from_slice(&out.stdout).unwrap();
        crate::schemas::assert_valid(crate::schemas::Document::Run, &doc);
        doc
    }
}

struct LiveRun {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl LiveRun {
    /// Reads output until a line satisfies `wanted` (2 minutes at most); returns it.
    async fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                other => panic!(
                    "no such line ({other:?}); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the end: (exit code, whole stdout + stderr).
    async fn finish(mut self) -> (Option<i32>, String) {
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await;
        }
        let status = self.child.wait().await.unwrap();
        (
            status.code(),
            format!("{}\n--- stderr ---\n{stderr}", self.seen.join("\n")),
        )
    }
}

fn run_id_of(line: &str) -> String {
    line.strip_prefix("Run ")
        .and_then(|rest| rest.split(':').next())
        .expect("a `Run <id>:` line")
        .trim()
        .to_owned()
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("an RFC 3339 string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn event<'a>(events: &'a [EventRecord], kind: &str) -> &'a EventRecord {
    events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no `{kind}` event in {events:#?}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- tests

#[test]
fn the_stack_is_silenced_exactly_while_the_fault_is_active_and_grafana_shows_the_window() {
    let _lock = heavy_test_lock();
    let env = Env::start("e2e-silence");
    let stack = env.stack.name.clone();
    runtime().block_on(async {
        let am = TestAlertmanager::start().await;
        let grafana = Grafana::start(false).await;
        env.configure(&am.url(), Some(&grafana.url));
        assert!(am.silences().await.is_empty(), "no silence before the run");

        let mut run = env.spawn_run("silenced-gcp-loss");
        let run_id = run_id_of(&run.wait_for_line(|l| l.starts_with("Run ")).await);
        run.wait_for_line(|l| l.contains("] GCP connectivity lost"))
            .await;
        let injected = Instant::now();

        // While the 12 s fault is on (checked until 3 s before its end): one active silence
        // matching the stack, made by f3-chaos, naming the scenario and the run.
        let mut checks = 0;
        while injected.elapsed() < Duration::from_secs(9) {
            let silences = am.silences_matching("stack", &stack).await;
            assert_eq!(silences.len(), 1, "one silence of the stack: {silences:?}");
            assert_eq!(silences[0]["status"]["state"], "active", "{silences:?}");
            assert_eq!(am.silences().await.len(), 1, "and no other silence");
            checks += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(checks >= 5, "{checks} checks during the fault");
        let silence = am.silences_matching("stack", &stack).await.remove(0);
        assert_eq!(silence["createdBy"], "f3-chaos");
        let comment = silence["comment"].as_str().unwrap();
        assert!(comment.contains("silenced-gcp-loss"), "{comment}");
        assert!(comment.contains(&run_id), "{comment}");

        // Expired right after the revert, while the run is still judging its Then step.
        run.wait_for_line(|l| l.contains("Reverted: GCP connectivity lost"))
            .await;
        let reverted = Instant::now();
        loop {
            let silences = am.silences_matching("stack", &stack).await;
            if silences[0]["status"]["state"] == "expired" {
                break;
            }
            assert!(
                reverted.elapsed() < Duration::from_secs(5),
                "not expired 5 s after the revert: {silences:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (code, output) = run.finish().await;
        // The verdict is not what this test is about (without a Given load step the first
        // seconds of a fresh sandbox may lack data); the run must reach its Then phase.
        assert!(
            matches!(code, Some(0 | 1 | 3)),
            "passed, failed or inconclusive: {output}"
        );
        assert!(
            output.contains("[SUCCESS] Given: Alerts of the stack silenced in Alertmanager"),
            "{output}"
        );
        assert!(output.contains("Silence expired:"), "{output}");

        // The silence's interval covers the fault window and ends at the revert.
        let events = env.events(&run_id).await;
        let fault_on = event(&events, "fault-injected").at;
        let fault_off = event(&events, "fault-reverted").at;
        let silence = am.silences_matching("stack", &stack).await.remove(0);
        let (starts, ends) = (instant(&silence["startsAt"]), instant(&silence["endsAt"]));
        assert!(
            starts <= fault_on,
            "silenced {starts} before the fault {fault_on}"
        );
        assert!(
            ends >= fault_off - chrono::Duration::milliseconds(50)
                && ends <= fault_off + chrono::Duration::seconds(5),
            "silence ended at {ends}, fault reverted at {fault_off}"
        );
        let silenced = event(&events, "alerts-silenced");
        assert_eq!(silenced.payload["silence_id"], silence["id"]);
        assert_eq!(
            silenced.payload["matchers"],
            json!([format!("stack=\"{stack}\"")])
        );
        let expired = event(&events, "silence-expired");
        assert_eq!(expired.payload["ok"], true);
        let results = env.results(&run_id);
        let step = &results["steps"][0];
        assert_eq!(step["name"], "Alerts of the stack silenced in Alertmanager");
        assert_eq!(step["verdict"], "passed", "{results:#}");

        // Grafana: one annotation opened at inject, turned into a region at revert.
        let requests = grafana.requests();
        assert_eq!(requests.len(), 2, "{requests:#?}");
        let (open, close) = (&requests[0], &requests[1]);
        assert_eq!(
            (open.method.as_str(), open.path.as_str()),
            ("POST", "/api/annotations")
        );
        assert_eq!(
            (close.method.as_str(), close.path.as_str()),
            ("PATCH", "/api/annotations/7")
        );
        for r in &requests {
            assert_eq!(
                r.authorization.as_deref(),
                Some(format!("Bearer {GRAFANA_TOKEN}").as_str())
            );
            let tags = &r.body["tags"];
            for tag in [
                "f3-chaos".to_owned(),
                "scenario:silenced-gcp-loss".to_owned(),
                format!("stack:{stack}"),
                format!("run:{run_id}"),
            ] {
                assert!(tags.as_array().unwrap().contains(&json!(tag)), "{tags}");
            }
        }
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        assert!((open.body["time"].as_i64().unwrap() - ms(fault_on)).abs() < 1_000);
        assert!(open.body.get("timeEnd").is_none(), "{}", open.body);
        assert_eq!(close.body["time"], open.body["time"]);
        assert!((close.body["timeEnd"].as_i64().unwrap() - ms(fault_off)).abs() < 1_000);
        assert!(
            !output.contains(GRAFANA_TOKEN),
            "the token is never printed"
        );
    });
}

#[test]
fn after_an_abort_the_silence_is_expired_and_a_broken_grafana_does_not_fail_the_run() {
    let _lock = heavy_test_lock();
    let env = Env::start("e2e-silence-abort");
    let stack = env.stack.name.clone();
    runtime().block_on(async {
        let am = TestAlertmanager::start().await;
        let grafana = Grafana::start(true).await;
        env.configure(&am.url(), Some(&grafana.url));

        let mut run = env.spawn_run("aborted-gcp-loss");
        let run_id = run_id_of(&run.wait_for_line(|l| l.starts_with("Run ")).await);
        let (code, output) = run.finish().await;
        assert_eq!(code, Some(2), "aborted: {output}");
        assert!(output.contains("[ABORTED]"), "{output}");
        assert!(
            output.contains("[WARNING] Grafana annotation at inject failed"),
            "{output}"
        );
        assert!(!output.contains(GRAFANA_TOKEN), "{output}");

        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences.len(), 1, "{silences:?}");
        assert_eq!(silences[0]["status"]["state"], "expired", "{silences:?}");
        let events = env.events(&run_id).await;
        let abort = event(&events, "abort-triggered");
        let reverted_at = instant(&abort.payload["reverted_at"]);
        let (starts, ends) = (
            instant(&silences[0]["startsAt"]),
            instant(&silences[0]["endsAt"]),
        );
        assert!(
            ends >= reverted_at - chrono::Duration::milliseconds(50)
                && ends <= reverted_at + chrono::Duration::seconds(5),
            "silence ended at {ends}, abort reverted at {reverted_at}"
        );
        assert!(
            ends - starts < chrono::Duration::seconds(35),
            "expired at the abort, not at the planned end of the 40 s fault"
        );
        assert_eq!(event(&events, "silence-expired").payload["ok"], true);
        assert_eq!(env.results(&run_id)["run"]["status"], "aborted");
    });
}

#[test]
fn an_unreachable_alertmanager_is_a_given_failure_and_no_fault_is_injected() {
    let _lock = heavy_test_lock();
    let env = Env::start("e2e-silence-down");
    runtime().block_on(async {
        env.configure(&unreachable_url(), None);
        let mut run = env.spawn_run("silenced-gcp-loss");
        let run_id = run_id_of(&run.wait_for_line(|l| l.starts_with("Run ")).await);
        let (code, output) = run.finish().await;
        assert_eq!(code, Some(4), "precondition-failed: {output}");
        assert!(
            output.contains("[ERROR] Given: Alerts of the stack silenced in Alertmanager"),
            "{output}"
        );
        assert!(
            output.contains("[SKIPPED] GCP connectivity lost"),
            "{output}"
        );
        let results = env.results(&run_id);
        assert_eq!(results["run"]["status"], "precondition-failed");
        assert!(
            results["run"]["reason"]
                .as_str()
                .unwrap()
                .contains("no fault was injected"),
            "{results:#}"
        );
        assert!(
            results["faults"].as_array().unwrap().is_empty(),
            "nothing in the fault ledger: {results:#}"
        );
        let events = env.events(&run_id).await;
        assert!(
            events.iter().all(|e| e.kind != "fault-injected"),
            "{events:#?}"
        );
    });
}

#[test]
fn ctrl_c_mid_fault_expires_the_silence_before_exiting() {
    let _lock = heavy_test_lock();
    let env = Env::start("e2e-silence-ctrlc");
    let stack = env.stack.name.clone();
    runtime().block_on(async {
        let am = TestAlertmanager::start().await;
        env.configure(&am.url(), None);
        let mut run = env.spawn_run("silenced-gcp-loss");
        run.wait_for_line(|l| l.contains("] GCP connectivity lost"))
            .await;
        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences[0]["status"]["state"], "active", "{silences:?}");
        let pid = nix::unistd::Pid::from_raw(run.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let (code, output) = run.finish().await;
        assert_eq!(code, Some(9), "interrupted: {output}");
        assert!(output.contains("Silence expired:"), "{output}");
        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences.len(), 1, "{silences:?}");
        assert_eq!(silences[0]["status"]["state"], "expired", "{silences:?}");
    });
}

#[test]
fn the_sweep_expires_the_silence_of_a_run_killed_mid_fault() {
    let _lock = heavy_test_lock();
    let env = Env::start("e2e-silence-kill9");
    let stack = env.stack.name.clone();
    runtime().block_on(async {
        let am = TestAlertmanager::start().await;
        env.configure(&am.url(), None);
        let mut run = env.spawn_run("silenced-gcp-loss");
        run.wait_for_line(|l| l.contains("] GCP connectivity lost"))
            .await;
        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences[0]["status"]["state"], "active", "{silences:?}");
        run.child.start_kill().expect("kill -9 f3-chaos");
        let _ = run.finish().await;
        // kill -9 leaves the silence in force until its endsAt.
        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences[0]["status"]["state"], "active", "{silences:?}");

        let library = f3_chaos::scenario::load_library(&env.dir.path().join("config"))
            .expect("the test config loads");
        let store = Store::open(&env.database_url()).await.unwrap();
        let report = f3_chaos::run::sweep::sweep(&store, &library.config)
            .await
            .expect("sweep");
        assert_eq!(report.interrupted_runs.len(), 1, "{report:?}");
        assert_eq!(report.expired_silences.len(), 1, "{report:?}");
        assert!(report.failed.is_empty(), "{report:?}");
        let silences = am.silences_matching("stack", &stack).await;
        assert_eq!(silences.len(), 1, "{silences:?}");
        assert_eq!(silences[0]["status"]["state"], "expired", "{silences:?}");

        // A second sweep finds nothing left to do.
        let again = f3_chaos::run::sweep::sweep(&store, &library.config)
            .await
            .expect("sweep");
        assert!(again.expired_silences.is_empty(), "{again:?}");
    });
}
