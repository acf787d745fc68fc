//! End-to-end tests: notifications (issue 7). Real HTTP receivers (axum on 127.0.0.1:0) stand in
//! for Slack, PagerDuty and a signed webhook; runs are seeded in a real SQLite store exactly as
//! the runner records them (`notify::record::notifications` + `outbox_insert`); delivery goes
//! through the real outbox worker. Also: the morning digest of a night with mixed results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use f3_chaos::config::{Route, Team};
use f3_chaos::model::{Phase, RunOutcome, Verdict};
use f3_chaos::notify::{self, Notifiers, RetryPolicy, SecretLookup};
use f3_chaos::plan::NightCalendar;
use f3_chaos::run::StepResult;
use f3_chaos::scenario::Library;
use f3_chaos::store::{NewRun, OutboxStatus, StepRecord, Store};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::schemas::{Document, assert_valid};

const SCENARIO: &str = "gcp-failover-validation";
const STACK: &str = "local";
const LATENCY: &str = "Product SLO latency < 250ms";
const SUCCESS: &str = "Service SLO success rate > 99.99%";
const THROUGHPUT: &str = "Payments continue flowing through AWS and Azure";
const HOOK_SECRET: &str = "s3cret-hmac-key";

// ---------------------------------------------------------------- receivers

#[derive(Debug, Clone, Copy)]
enum Mode {
    Ok,
    Status(u16),
    TooMany { retry_after_secs: u64 },
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    raw: Bytes,
    body: Value,
    answered: u16,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<Vec<Received>>>,
}

/// A local HTTP receiver recording every request; can be stopped (connections refused) and
/// restarted on the same port.
struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let mode = *shared.mode.lock().unwrap();
    let (status, retry_after) = match mode {
        Mode::Ok => (200, None),
        Mode::Status(code) => (code, None),
        Mode::TooMany { retry_after_secs } => (429, Some(retry_after_secs)),
    };
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    shared.requests.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        raw,
        body,
        answered: status,
    });
    let code = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(secs) => (code, [("retry-after", secs.to_string())], "slow down").into_response(),
        None => (code, "ok").into_response(),
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            mode: Arc::new(Mutex::new(Mode::Ok)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let mut receiver = Receiver {
            addr,
            shared,
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.server = Some((stop, task));
    }

    /// Stops listening: further connections are refused.
    async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
        assert!(
            tokio::net::TcpStream::connect(self.addr).await.is_err(),
            "receiver still accepts"
        );
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests to `path` (prefix) that were answered 2xx.
    fn accepted(&self, path: &str) -> Vec<Received> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path) && (200..300).contains(&r.answered))
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------- fixtures

/// The shipped library (scenarios + SLO catalogue) with teams routed to `receiver`.
fn library(receiver: &Receiver) -> Library {
    let mut library =
        f3_chaos::scenario::load_library(&f3_chaos_tests::repo_root().join("config/local"))
            .unwrap_or_else(|d| panic!("shipped library: {d:?}"));
    let team = |name: &str, routes: Vec<Route>| {
        (
            name.to_owned(),
            Team {
                name: name.to_owned(),
                display_name: format!("{name} team"),
                routes,
            },
        )
    };
    library.config.teams = BTreeMap::from([
        team(
            "payments",
            vec![
                Route::Slack {
                    webhook_url_env: "SLACK_PAYMENTS".into(),
                },
                Route::Pagerduty {
                    routing_key_env: "PD_PAYMENTS".into(),
                    events_url: Some(receiver.url("/pd/payments")),
                },
                Route::Webhook {
                    url: receiver.url("/hook/payments"),
                    secret_env: Some("HOOK_SECRET".into()),
                },
            ],
        ),
        team(
            "infrastructure",
            vec![Route::Slack {
                webhook_url_env: "SLACK_INFRA".into(),
            }],
        ),
        team(
            "sre-chaos",
            vec![Route::Slack {
                webhook_url_env: "SLACK_SRE".into(),
            }],
        ),
    ]);
    library.config.dashboard_url = Some("https://chaos.example.test".into());
    library
}

/// Secrets as the deployment's environment would hold them.
fn secrets(receiver: &Receiver) -> SecretLookup {
    let map: BTreeMap<String, String> = BTreeMap::from([
        ("SLACK_PAYMENTS".into(), receiver.url("/slack/payments")),
        ("SLACK_INFRA".into(), receiver.url("/slack/infrastructure")),
        ("SLACK_SRE".into(), receiver.url("/slack/sre-chaos")),
        ("PD_PAYMENTS".into(), "routing-key-payments".into()),
        ("HOOK_SECRET".into(), HOOK_SECRET.into()),
    ]);
    Arc::new(move |name| map.get(name).cloned())
}

fn notifiers(library: &Library, receiver: &Receiver) -> Notifiers {
    let policy = RetryPolicy {
        request_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    Notifiers::with_secrets(&library.config, policy, secrets(receiver))
}

struct Db {
    url: String,
    _dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            url: format!("sqlite://{}", dir.path().join("f3-chaos.db").display()),
            _dir: dir,
        }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

fn at(night: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&night.and_hms_opt(hour, 0, 0).unwrap())
}

fn step(index: usize, name: &str, owner: &str, verdict: Verdict, t: DateTime<Utc>) -> StepResult {
    let latency = name == LATENCY;
    StepResult {
        index,
        phase: Phase::Then,
        name: name.to_owned(),
        owner: Some(owner.to_owned()),
        verdict,
        observed: Some(if latency { 0.41 } else { 0.9999 }),
        threshold: Some(if latency { 0.25 } else { 0.9999 }),
        op: Some(if latency { "<" } else { ">" }.to_owned()),
        unit: Some(if latency { "s" } else { "ratio" }.to_owned()),
        message: None,
        started_at: t,
        ended_at: t,
    }
}

/// Stores an ad-hoc run (no planned night: `f3-chaos run`, the API, a CI gate) of `scenario`
/// started at `t`, still running; returns its id.
async fn ad_hoc_run(store: &Store, scenario: &str, t: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: scenario.into(),
            stack: STACK.into(),
            trigger: "cli".into(),
            started_by: "test".into(),
            started_at: t,
            pid: 1,
            host: "test".into(),
            scenario_digest: None,
            night: None,
        })
        .await
        .unwrap();
    id
}

/// Stores a finished run of the reference scenario and queues its notifications the way the
/// runner does. `failing` lists the step names that fail.
async fn seed_run(store: &Store, library: &Library, night: NaiveDate, failing: &[&str]) -> Uuid {
    let outcome = if failing.is_empty() {
        RunOutcome::Passed
    } else {
        RunOutcome::Failed
    };
    seed_run_ending(store, library, night, failing, outcome, None).await
}

/// [`seed_run`] with the run's outcome and reason given.
async fn seed_run_ending(
    store: &Store,
    library: &Library,
    night: NaiveDate,
    failing: &[&str],
    outcome: RunOutcome,
    reason: Option<&str>,
) -> Uuid {
    let t = at(night, 1);
    let id = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: SCENARIO.into(),
            stack: STACK.into(),
            trigger: "test".into(),
            started_by: "test".into(),
            started_at: t,
            pid: std::process::id(),
            host: "test".into(),
            scenario_digest: None,
            night: Some(night),
        })
        .await
        .unwrap();
    let verdict = |name: &str| {
        if failing.contains(&name) {
            Verdict::Failed
        } else {
            Verdict::Passed
        }
    };
    let steps = vec![
        step(0, THROUGHPUT, "sre-chaos", verdict(THROUGHPUT), t),
        step(1, LATENCY, "payments", verdict(LATENCY), t),
        step(2, SUCCESS, "infrastructure", verdict(SUCCESS), t),
    ];
    for s in &steps {
        store.upsert_step(id, &record(s)).await.unwrap();
    }
    let scenario = &library.scenarios[SCENARIO];
    let finished = notify::record::FinishedRun {
        run_id: id,
        night,
        scenario,
        stack: STACK,
        outcome,
        reason,
        steps: &steps,
    };
    for row in
        notify::record::notifications(store, &finished, NightCalendar::of(&library.config)).await
    {
        store
            .outbox_insert(id, &row.team, row.kind, &row.payload, t)
            .await
            .unwrap();
    }
    store.finish_run(id, outcome, t, &json!({})).await.unwrap();
    id
}

fn record(s: &StepResult) -> StepRecord {
    StepRecord {
        index: s.index as i64,
        phase: s.phase,
        name: s.name.clone(),
        owner: s.owner.clone(),
        verdict: Some(s.verdict),
        started_at: s.started_at,
        ended_at: Some(s.ended_at),
        observed: s.observed,
        threshold: s.threshold,
        // As the runner stores it: the comparison and the unit ride in the evidence.
        evidence: Some(json!({"op": s.op, "unit": s.unit})),
        message: s.message.clone(),
    }
}

fn night(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- tests

/// "The runs of night N" mean the same in the digest, `f3-chaos results --night` and the
/// dashboard's night page: the daemon's runs planned for N and every ad-hoc run started inside
/// N's window — not a run of the afternoon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_results_and_dashboard_count_the_same_runs_of_a_night() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let store = db.open().await;
    let d = night(20);
    let planned = seed_run(&store, &library, d, &[LATENCY]).await;
    let mut ad_hoc = Vec::new();
    for hour in [3, 14] {
        let id = ad_hoc_run(&store, SCENARIO, at(d, hour)).await;
        store
            .finish_run(id, RunOutcome::Passed, at(d, hour), &json!({}))
            .await
            .unwrap();
        ad_hoc.push(id);
    }
    let (in_window, afternoon) = (ad_hoc[0], ad_hoc[1]);
    let expected = [planned, in_window];

    let digests = notify::digest::build(&store, d, &library.config)
        .await
        .unwrap();
    assert!(
        digests[0]
            .body
            .headline
            .contains(": 2 runs, 1 passed, 1 failed"),
        "{}",
        digests[0].body.headline
    );

    let out = std::process::Command::new(f3_chaos_tests::binary("f3-chaos"))
        .args(["results", "--night", "2026-11-20", "--output", "json"])
        .args(["--database-url", &db.url])
        .current_dir(f3_chaos_tests::repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run"]["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ids,
        expected.map(|id| id.to_string()),
        "results --night, oldest first"
    );
    assert_eq!(report["totals"]["runs"], 2);

    let dashboard = f3_chaos_tests::dashboard::Dashboard::start(&db.url).unwrap();
    let page = reqwest::get(format!("{}/night/2026-11-20", dashboard.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in expected {
        assert!(page.contains(&id.to_string()), "{id} on the night page");
    }
    assert!(
        !page.contains(&afternoon.to_string()),
        "the afternoon run is not night 20's"
    );
}

/// Ad-hoc runs (no planned night) count on the local night of their start: at 00:30 and 06:00
/// BST (23:30 and 05:00 UTC, two UTC dates) both are night 2026-07-02 in London, so the second
/// failure is the first failing night, not "still failing (2 nights)".
#[tokio::test]
async fn failure_streaks_count_local_nights_not_utc_dates() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let calendar = NightCalendar::of(&library.config);
    assert_eq!(calendar.tz, chrono_tz::Europe::London);
    let db = Db::new();
    let store = db.open().await;
    let scenario = &library.scenarios[SCENARIO];
    let mut last = Vec::new();
    for started in ["2026-07-01T23:30:00Z", "2026-07-02T05:00:00Z"] {
        let t: DateTime<Utc> = started.parse().unwrap();
        let id = ad_hoc_run(&store, SCENARIO, t).await;
        let steps = vec![step(0, LATENCY, "payments", Verdict::Failed, t)];
        for s in &steps {
            store.upsert_step(id, &record(s)).await.unwrap();
        }
        let tonight = calendar.night_of(t);
        assert_eq!(tonight, NaiveDate::from_ymd_opt(2026, 7, 2).unwrap());
        let finished = notify::record::FinishedRun {
            run_id: id,
            night: tonight,
            scenario,
            stack: STACK,
            outcome: RunOutcome::Failed,
            reason: None,
            steps: &steps,
        };
        last = notify::record::notifications(&store, &finished, calendar).await;
        store
            .finish_run(id, RunOutcome::Failed, t, &json!({}))
            .await
            .unwrap();
    }
    assert_eq!(last.len(), 1, "one row for payments");
    assert_eq!(
        last[0].payload["steps"][0]["nights_failing"], 1,
        "both runs are on one local night: {}",
        last[0].payload
    );
}

/// The owning team gets exactly one Slack message, one PagerDuty trigger and one signed webhook
/// per failed run; other teams nothing. The second night says "still failing (2 nights)" and
/// re-uses the dedup key; when the step passes, PagerDuty gets a resolve (delivered by the
/// long-running worker).
#[tokio::test]
async fn failed_run_notifies_the_owner_once_and_resolves_when_it_passes() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let store = db.open().await;
    let notifiers = notifiers(&library, &receiver);
    let dedup = format!("{SCENARIO}/{LATENCY}/{STACK}");

    // Night 1: the latency step (payments) fails.
    let run1 = seed_run(&store, &library, night(18), &[LATENCY]).await;
    let report = notify::deliver_due_with(&store, &notifiers, at(night(18), 2))
        .await
        .unwrap();
    assert_eq!(
        (
            report.routed,
            report.delivered,
            report.retrying,
            report.dead
        ),
        (1, 3, 0, 0),
        "{report:?}"
    );
    let again = notify::deliver_due_with(&store, &notifiers, at(night(18), 3))
        .await
        .unwrap();
    assert_eq!(
        again,
        notify::DeliveryReport::default(),
        "nothing is delivered twice"
    );

    let slack = receiver.accepted("/slack/payments");
    assert_eq!(slack.len(), 1);
    let text = slack[0].body["text"].as_str().unwrap();
    assert!(
        text.contains(LATENCY) && text.contains(SCENARIO) && text.contains(STACK),
        "{text}"
    );
    assert!(text.contains("observed 410 ms, needs < 250 ms"), "{text}");
    assert!(
        text.contains("Fault injected: GCP connectivity lost (30s)"),
        "the fault is named: {text}"
    );
    assert_eq!(
        slack[0].body["blocks"][0]["text"]["text"],
        format!("Chaos: {SCENARIO} failed on {STACK}")
    );
    let slo = &library.catalogue["payments-e2e-latency-p99"];
    assert!(text.contains(slo.impact.trim()), "impact in: {text}");
    assert!(
        text.contains(&format!("https://chaos.example.test/runs/{run1}")),
        "{text}"
    );
    assert!(slack[0].body["blocks"].as_array().unwrap().len() >= 3);
    assert!(
        receiver.accepted("/slack/infrastructure").is_empty(),
        "infrastructure passed"
    );
    assert!(
        receiver.accepted("/slack/sre-chaos").is_empty(),
        "sre-chaos passed"
    );

    let pd = receiver.accepted("/pd/payments/v2/enqueue");
    assert_eq!(pd.len(), 1);
    assert_eq!(pd[0].body["event_action"], "trigger");
    assert_eq!(pd[0].body["dedup_key"], dedup.as_str());
    assert_eq!(pd[0].body["routing_key"], "routing-key-payments");
    assert_eq!(pd[0].body["payload"]["custom_details"]["nights_failing"], 1);

    let hook = receiver.accepted("/hook/payments");
    assert_eq!(hook.len(), 1);
    let body = &hook[0].body;
    assert_valid(Document::Webhook, body);
    assert_eq!(body["kind"], "failures");
    assert_eq!(
        body["team"],
        json!({"name": "payments", "displayName": "payments team"})
    );
    let steps: Vec<(&str, &str, u64)> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["verdict"].as_str().unwrap(),
                s["nightsFailing"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [(LATENCY, "failed", 1)], "only the team's own step");
    // The run as every other tool sees it: the same run document as `results ID --output json`,
    // read at delivery (when this delivery itself was still pending).
    assert_valid(Document::Run, &body["run"]);
    let stored = serde_json::to_value(
        f3_chaos::document::RunDocument::load(&store, run1)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["run"]["run"], stored["run"]);
    assert_eq!(body["run"]["steps"], stored["steps"]);
    assert_eq!(body["run"]["faults"], stored["faults"]);
    let delivery: i64 = hook[0].headers["x-f3-chaos-delivery"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body["deliveryId"], delivery);
    let status_of = |doc: &Value| {
        doc["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == delivery)
            .map(|n| n["status"].clone())
    };
    assert_eq!(status_of(&body["run"]), Some(json!("pending")));
    assert_eq!(status_of(&stored), Some(json!("delivered")));
    let signature = hook[0].headers["x-f3-chaos-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    // Verify as a receiver would: HMAC-SHA256 of the raw body with the shared secret.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&hook[0].raw);
    assert_eq!(
        signature,
        format!("sha256={}", hex(&mac.finalize().into_bytes()))
    );

    let outbox = store.outbox_for_run(run1).await.unwrap();
    let statuses: Vec<&str> = outbox.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["routed", "delivered", "delivered", "delivered"]);

    // Night 2: still failing — Slack says so, PagerDuty gets the same dedup key (no new page).
    seed_run(&store, &library, night(19), &[LATENCY]).await;
    notify::deliver_due_with(&store, &notifiers, at(night(19), 2))
        .await
        .unwrap();
    let slack = receiver.accepted("/slack/payments");
    assert_eq!(slack.len(), 2);
    assert!(
        slack[1].body["text"]
            .as_str()
            .unwrap()
            .contains("still failing (2 nights)")
    );
    let pd = receiver.accepted("/pd/payments/v2/enqueue");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].body["dedup_key"], dedup.as_str());
    assert_eq!(pd[1].body["payload"]["custom_details"]["nights_failing"], 2);

    // Night 3: it passes — a resolve, delivered by the long-running worker.
    seed_run(&store, &library, night(20), &[]).await;
    let cancel = CancellationToken::new();
    let worker = {
        let (store, cancel) = (store.clone(), cancel.clone());
        tokio::spawn(async move { notify::run_worker_with(&store, &notifiers, cancel).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.accepted("/pd/payments/v2/enqueue").len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resolve: {:?}",
            receiver.all()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let stragglers (there must be none) land
    cancel.cancel();
    worker.await.unwrap();
    let pd = receiver.accepted("/pd/payments/v2/enqueue");
    assert_eq!(pd.len(), 3);
    assert_eq!(pd[2].body["event_action"], "resolve");
    assert_eq!(pd[2].body["dedup_key"], dedup.as_str());
    let slack = receiver.accepted("/slack/payments");
    assert_eq!(slack.len(), 3);
    assert!(
        slack[2].body["text"]
            .as_str()
            .unwrap()
            .contains("passes again")
    );
    assert!(receiver.accepted("/slack/infrastructure").is_empty());
}

/// An aborted run is announced as aborted, with the abort reason and the fault, not as a plain
/// failure.
#[tokio::test]
async fn an_aborted_run_is_announced_with_its_reason() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let store = db.open().await;
    let reason = "abort condition `Success ratio collapses` breached (observed 89.8 %, abort when < 99 %); faults reverted in 412 ms";
    seed_run_ending(
        &store,
        &library,
        night(18),
        &[LATENCY],
        RunOutcome::Aborted,
        Some(reason),
    )
    .await;
    notify::deliver_due_with(&store, &notifiers(&library, &receiver), at(night(18), 2))
        .await
        .unwrap();
    let slack = receiver.accepted("/slack/payments");
    assert_eq!(slack.len(), 1);
    let body = &slack[0].body;
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        format!("Chaos: {SCENARIO} aborted on {STACK}")
    );
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        format!("*Fault injected:* GCP connectivity lost (30s)\n*Run aborted:* {reason}")
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("did not pass — run aborted: {reason}")),
        "{text}"
    );
}

/// A team without routes is told nothing, and its row says so (`no-route`, in the run
/// document too) rather than "routed" to nobody.
#[tokio::test]
async fn a_team_without_routes_is_marked_no_route() {
    let receiver = Receiver::start().await;
    let mut library = library(&receiver);
    library
        .config
        .teams
        .get_mut("infrastructure")
        .unwrap()
        .routes
        .clear();
    let db = Db::new();
    let store = db.open().await;
    let run = seed_run(&store, &library, night(18), &[SUCCESS]).await;
    let report =
        notify::deliver_due_with(&store, &notifiers(&library, &receiver), at(night(18), 2))
            .await
            .unwrap();
    assert_eq!((report.routed, report.delivered), (1, 0), "{report:?}");
    assert!(receiver.all().is_empty(), "{:?}", receiver.all());
    let outbox = store.outbox_for_run(run).await.unwrap();
    let rows: Vec<(&str, OutboxStatus)> =
        outbox.iter().map(|r| (r.team.as_str(), r.status)).collect();
    assert_eq!(rows, [("infrastructure", OutboxStatus::NoRoute)]);
    let document = serde_json::to_value(
        f3_chaos::document::RunDocument::load(&store, run)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_valid(Document::Run, &document);
    assert_eq!(document["notifications"][0]["status"], "no-route");
}

/// A Then step with its own check (no SLO in the catalogue) still tells its team what was
/// checked and what to do.
#[tokio::test]
async fn a_check_without_an_slo_says_what_it_checked_and_what_to_do() {
    let receiver = Receiver::start().await;
    let text = failover_step_message(&receiver, library(&receiver)).await;
    assert!(
        text.contains("observed 0 failovers, needs > 0 failovers"),
        "{text}"
    );
    assert!(
        text.contains(
            "Impact: The check `sum(increase(gateway_failovers_total{from_cloud=\"gcp\"}[1m]))` > 0 failovers did not hold; no SLO in the catalogue states its business impact."
        ),
        "{text}"
    );
    assert!(
        text.contains("What to do: Open the run page for the evidence."),
        "{text}"
    );
}

/// A Then step's own `impact` and `action` are what its owner reads.
#[tokio::test]
async fn a_steps_own_impact_and_action_are_told() {
    let receiver = Receiver::start().await;
    let mut library = library(&receiver);
    let step = library
        .scenarios
        .get_mut(SCENARIO)
        .unwrap()
        .then
        .iter_mut()
        .find(|t| t.name == "All automated failover assertions pass")
        .unwrap();
    step.impact = Some("Payments stall while GCP is down.".into());
    step.action = Some("Check the gateway's failover config.".into());
    let text = failover_step_message(&receiver, library).await;
    assert!(
        text.contains("Impact: Payments stall while GCP is down.\n  What to do: Check the gateway's failover config."),
        "{text}"
    );
}

/// The Slack text sre-chaos gets when the reference scenario's failover step (a check of its
/// own, no SLO) fails.
async fn failover_step_message(receiver: &Receiver, library: Library) -> String {
    const FAILOVERS: &str = "All automated failover assertions pass";
    let db = Db::new();
    let store = db.open().await;
    let t = at(night(18), 1);
    let id = ad_hoc_run(&store, SCENARIO, t).await;
    let mut failed = step(3, FAILOVERS, "sre-chaos", Verdict::Failed, t);
    failed.observed = Some(0.0);
    failed.threshold = Some(0.0);
    failed.unit = Some("failovers".into());
    store.upsert_step(id, &record(&failed)).await.unwrap();
    let calendar = NightCalendar::of(&library.config);
    let steps = [failed];
    let finished = notify::record::FinishedRun {
        run_id: id,
        night: night(18),
        scenario: &library.scenarios[SCENARIO],
        stack: STACK,
        outcome: RunOutcome::Failed,
        reason: None,
        steps: &steps,
    };
    for row in notify::record::notifications(&store, &finished, calendar).await {
        store
            .outbox_insert(id, &row.team, row.kind, &row.payload, t)
            .await
            .unwrap();
    }
    notify::deliver_due_with(&store, &notifiers(&library, receiver), at(night(18), 2))
        .await
        .unwrap();
    let slack = receiver.accepted("/slack/sre-chaos");
    assert_eq!(slack.len(), 1);
    slack[0].body["text"].as_str().unwrap().to_owned()
}

/// A receiver that answers 503, then refuses connections, still gets every message exactly once
/// when it is back — with a worker restart (new store handle, new notifiers) in between.
#[tokio::test]
async fn receiver_down_for_a_while_gets_every_message_once_after_a_restart() {
    let mut receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let t0 = at(night(18), 2);
    let run = {
        let store = db.open().await;
        let run = seed_run(&store, &library, night(18), &[LATENCY, SUCCESS]).await;
        receiver.set_mode(Mode::Status(503));
        let report = notify::deliver_due_with(&store, &notifiers(&library, &receiver), t0)
            .await
            .unwrap();
        assert_eq!(
            (report.routed, report.delivered, report.retrying),
            (2, 0, 4),
            "{report:?}"
        );
        for row in store
            .outbox_for_run(run)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.status == OutboxStatus::Pending)
        {
            assert!(
                row.last_error.as_deref().unwrap().contains("503"),
                "{row:?}"
            );
            assert!(row.next_attempt_at > t0);
        }
        store.close().await;
        run
    };
    // The receiver goes away entirely; the worker "restarts" (new handles) and tries again.
    receiver.stop().await;
    {
        let store = db.open().await;
        let report = notify::deliver_due_with(
            &store,
            &notifiers(&library, &receiver),
            t0 + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(
            (report.delivered, report.retrying, report.dead),
            (0, 4, 0),
            "{report:?}"
        );
        let rows = store.outbox_for_run(run).await.unwrap();
        assert!(
            rows.iter()
                .filter(|r| r.status == OutboxStatus::Pending)
                .all(|r| r.attempts == 2),
            "{rows:?}"
        );
        // No secret in what is stored: the Slack URL and the routing key never appear.
        for row in &rows {
            let error = row.last_error.clone().unwrap_or_default();
            assert!(
                !error.contains("/slack/") && !error.contains("routing-key"),
                "{error}"
            );
        }
        store.close().await;
    }
    // Back, healthy: everything arrives once.
    receiver.restart().await;
    receiver.set_mode(Mode::Ok);
    let store = db.open().await;
    let report = notify::deliver_due_with(
        &store,
        &notifiers(&library, &receiver),
        t0 + chrono::Duration::days(2),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.delivered, report.retrying, report.dead),
        (4, 0, 0),
        "{report:?}"
    );
    for path in [
        "/slack/payments",
        "/pd/payments/v2/enqueue",
        "/hook/payments",
        "/slack/infrastructure",
    ] {
        assert_eq!(receiver.accepted(path).len(), 1, "{path}");
    }
    assert!(receiver.accepted("/slack/sre-chaos").is_empty());
    let rows = store.outbox_for_run(run).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.status == OutboxStatus::Delivered || r.status == OutboxStatus::Routed),
        "{rows:?}"
    );
}

/// 429 with `Retry-After: 120`: the next attempt is exactly 120 s later, not earlier.
#[tokio::test]
async fn rate_limited_receiver_retry_after_is_honoured() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let store = db.open().await;
    let run = seed_run(&store, &library, night(18), &[SUCCESS]).await; // infrastructure: Slack only
    let notifiers = notifiers(&library, &receiver);
    let t0 = at(night(18), 2);
    receiver.set_mode(Mode::TooMany {
        retry_after_secs: 120,
    });
    let report = notify::deliver_due_with(&store, &notifiers, t0)
        .await
        .unwrap();
    assert_eq!(report.retrying, 1, "{report:?}");
    let row = store
        .outbox_for_run(run)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.status == OutboxStatus::Pending)
        .unwrap();
    assert_eq!(row.next_attempt_at, t0 + chrono::Duration::seconds(120));
    assert!(row.last_error.unwrap().contains("429"));

    receiver.set_mode(Mode::Ok);
    let early = notify::deliver_due_with(&store, &notifiers, t0 + chrono::Duration::seconds(119))
        .await
        .unwrap();
    assert_eq!(early, notify::DeliveryReport::default());
    assert_eq!(receiver.all().len(), 1, "no attempt before Retry-After");
    let on_time = notify::deliver_due_with(&store, &notifiers, t0 + chrono::Duration::seconds(120))
        .await
        .unwrap();
    assert_eq!(on_time.delivered, 1);
    assert_eq!(receiver.accepted("/slack/infrastructure").len(), 1);
}

/// The digest of a night with a failed, a passed and a void run (plus runs of other nights and
/// outside the window, which must not count) is right for every team, and is delivered.
#[tokio::test]
async fn digest_of_a_mixed_night_is_correct_per_team() {
    let receiver = Receiver::start().await;
    let library = library(&receiver);
    let db = Db::new();
    let store = db.open().await;
    let d = night(20);
    // Inside the window of night 20 (00:00–07:00 Europe/London = UTC in November).
    let failed = seed_run(&store, &library, d, &[LATENCY]).await; // failed: payments
    seed_run(&store, &library, d, &[]).await; // passed, later
    let void = ad_hoc_run(&store, "payment-node-loss", at(d, 3)).await; // found by its start time
    let mut skipped = step(
        0,
        "Payments keep flowing",
        "payments",
        Verdict::Skipped,
        at(d, 3),
    );
    skipped.observed = None;
    store.upsert_step(void, &record(&skipped)).await.unwrap();
    store
        .finish_run(
            void,
            RunOutcome::Void,
            at(d, 3),
            &json!({"reason": "stack changed mid-run: deployment of gateway"}),
        )
        .await
        .unwrap();
    // Not night 20: the night before, and an afternoon run.
    seed_run(&store, &library, night(19), &[SUCCESS]).await;
    let afternoon = ad_hoc_run(&store, SCENARIO, at(d, 14)).await;
    store
        .finish_run(afternoon, RunOutcome::Failed, at(d, 14), &json!({}))
        .await
        .unwrap();

    let digests = notify::digest::build(&store, d, &library.config)
        .await
        .unwrap();
    let by_team: BTreeMap<&str, &notify::digest::TeamDigest> =
        digests.iter().map(|g| (g.team.as_str(), g)).collect();
    assert_eq!(
        by_team.keys().copied().collect::<Vec<_>>(),
        ["infrastructure", "payments", "sre-chaos"]
    );
    let payments = &by_team["payments"].body;
    assert!(
        payments
            .headline
            .contains("3 runs, 1 passed, 1 failed, 1 void/skipped; 1 of your steps"),
        "{}",
        payments.headline
    );
    assert_eq!(payments.lines.len(), 2, "{:?}", payments.lines);
    // The failing run's own page, and that a later run passed the step that night.
    assert_eq!(
        payments.lines[0],
        format!(
            "{SCENARIO} on {STACK}: {LATENCY} — failed (observed 410 ms, needs < 250 ms); passed again at 01:00 — https://chaos.example.test/runs/{failed}"
        )
    );
    assert!(
        payments.lines[1].contains("void") && payments.lines[1].contains("deployment of gateway"),
        "{:?}",
        payments.lines
    );
    let infra = &by_team["infrastructure"].body;
    assert!(
        infra.headline.contains("3 runs") && infra.headline.contains("0 of your steps"),
        "{}",
        infra.headline
    );
    assert!(infra.lines.is_empty(), "{:?}", infra.lines);
    assert!(by_team["sre-chaos"].body.lines.is_empty());

    // Queued and delivered like any notification (one per team per route). Deliver only what
    // the digest queued: the seeded runs' own notifications were not delivered here.
    let before = receiver.all().len();
    let ids = notify::digest::queue(&store, d, &digests, at(d, 7))
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    notify::deliver_due_with(&store, &notifiers(&library, &receiver), at(d, 8))
        .await
        .unwrap();
    let digest_msgs: Vec<Received> = receiver.all()[before..]
        .iter()
        .filter(|r| {
            r.path.starts_with("/slack/")
                && r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Chaos night"))
        })
        .cloned()
        .collect();
    assert_eq!(digest_msgs.len(), 3, "one digest per team");
    let payments_digest = digest_msgs
        .iter()
        .find(|r| r.path == "/slack/payments")
        .unwrap();
    let text = payments_digest.body["text"].as_str().unwrap();
    assert!(text.contains("deployment of gateway"), "{text}");
    // The digest links to the night's page, not to one of its runs.
    assert!(
        text.ends_with("\nRun: https://chaos.example.test/night/2026-11-20"),
        "{text}"
    );
}
