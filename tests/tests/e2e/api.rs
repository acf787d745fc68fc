//! End-to-end tests of the daemon's HTTP API (`f3_chaos::api::router`) over real HTTP on
//! 127.0.0.1:0 with a real SQLite store in a temp dir: authentication and roles (no token, wrong
//! token, viewer, operator and admin on a production stack), reads, and a real run on a sandbox
//! started through `POST /api/v1/runs` and followed over SSE by the CLI's remote client.

use std::path::Path;

use f3_chaos::api::{ApiState, StartRequest, Tokens, router};
use f3_chaos::cli::remote::{Remote, run_remote};
use f3_chaos::config::ApiRole;
use f3_chaos::metrics::Metrics;
use f3_chaos::model::RunOutcome;
use f3_chaos::run::RunEvent;
use f3_chaos::scenario::{Library, load_library};
use f3_chaos::store::Store;
use f3_chaos_tests::heavy_test_lock;
use f3_chaos_tests::repo_root;
use f3_chaos_tests::sandbox::SandboxStack;
use f3_chaos_tests::scenarios::QUICK_GCP_LOSS;
use serde_json::Value;

const VIEWER: &str = "viewer-secret-0123456789";
const OPERATOR: &str = "operator-secret-0123456789";
const ADMIN: &str = "admin-secret-0123456789";

/// A 10 s GCP loss like `QUICK_GCP_LOSS`, without the load step, opted in to production.
const PROD_GAME_DAY: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: prod-game-day
  description: Test scenario - opted in to production.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
    allowProduction: true
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
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

/// Writes a config dir with stack `local` (the sandbox, or a dead Prometheus) and production stack
/// `prod-a`, and the two scenarios; returns the compiled library.
fn write_library(dir: &Path, sandbox: Option<&SandboxStack>) -> Library {
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(scenarios.join("quick-gcp-loss.yaml"), QUICK_GCP_LOSS).unwrap();
    std::fs::write(scenarios.join("prod-game-day.yaml"), PROD_GAME_DAY).unwrap();
    let (sandbox_stack, state_dir, prometheus) = match sandbox {
        Some(s) => (
            s.name.clone(),
            s.state_dir().display().to_string(),
            s.prometheus_url().to_owned(),
        ),
        None => (
            "local".to_owned(),
            dir.join("no-sandbox").display().to_string(),
            "http://127.0.0.1:9".to_owned(),
        ),
    };
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
    - name: local
      environment: local
      labels: {{ platform: payments }}
      clusters:
        - {{ cloud: gcp, name: gcp }}
        - {{ cloud: aws, name: aws }}
        - {{ cloud: azure, name: azure }}
      driver: {{ kind: local, sandboxStack: {sandbox_stack}, stateDir: {state_dir} }}
      prometheusUrl: {prometheus}
    - name: prod-a
      environment: production
      labels: {{ platform: payments }}
      clusters:
        - {{ cloud: gcp, name: gcp }}
        - {{ cloud: aws, name: aws }}
        - {{ cloud: azure, name: azure }}
      driver: {{ kind: local, sandboxStack: prod-a, stateDir: {state_dir} }}
      prometheusUrl: http://127.0.0.1:9
  teams:
{teams}  api:
    tokens:
      - {{ name: viewer-bot, role: viewer, tokenEnv: F3_CHAOS_TEST_VIEWER_TOKEN }}
"#,
        teams = f3_chaos_tests::scenarios::TEAMS_YAML,
        scenarios = scenarios.display(),
        assertions = repo_root().join("assertions").display(),
    );
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("f3-chaos.yaml"), config).unwrap();
    match load_library(&config_dir) {
        Ok(library) => library,
        Err(diagnostics) => panic!("test library does not compile:\n{diagnostics}"),
    }
}

/// An API server on 127.0.0.1:0 over a fresh store.
struct Api {
    base: String,
    state: ApiState,
    library: Library,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(sandbox: Option<&SandboxStack>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let library = write_library(dir.path(), sandbox);
        assert_eq!(library.config.api_tokens.len(), 1, "tokens from config");
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("f3-chaos.db").display()
        ))
        .await
        .unwrap();
        let tokens = Tokens::from_secrets([
            ("viewer-bot".to_owned(), ApiRole::Viewer, VIEWER.to_owned()),
            (
                "ci-operator".to_owned(),
                ApiRole::Operator,
                OPERATOR.to_owned(),
            ),
            ("sre-admin".to_owned(), ApiRole::Admin, ADMIN.to_owned()),
        ])
        .unwrap();
        let state = ApiState::with_tokens(store, library.clone(), tokens, Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
        Api {
            base: format!("http://{addr}"),
            state,
            library,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn post_run(&self, token: &str, scenario: &str, stack: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/runs", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"scenario": scenario, "stack": stack}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_token_is_401_with_bearer_challenge() {
    let api = Api::start(None).await;
    for token in [None, Some("not-a-configured-token-at-all")] {
        let response = api.get("/api/v1/runs", token).await;
        assert_eq!(response.status().as_u16(), 401, "token {token:?}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    // A wrong token cannot start a run either, and nothing is stored.
    let (status, _) = api
        .post_run("wrong-token-0123456789", "quick-gcp-loss", "local")
        .await;
    assert_eq!(status, 401);
    let runs: Value = api
        .get("/api/v1/runs", Some(VIEWER))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_for_starting_runs() {
    let api = Api::start(None).await;
    let (status, body) = api.post_run(VIEWER, "quick-gcp-loss", "local").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["required_role"], "operator", "{body}");

    let (status, body) = api.post_run(OPERATOR, "prod-game-day", "prod-a").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["required_role"], "admin", "{body}");

    let (status, body) = api.post_run(ADMIN, "quick-gcp-loss", "prod-a").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("allowProduction"),
        "{body}"
    );
    // Not a blanket refusal: the admin's request for an unknown scenario gets past auth (404).
    let (status, body) = api.post_run(ADMIN, "no-such-scenario", "prod-a").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"], "unknown scenario `no-such-scenario`",
        "{body}"
    );
    // A typo is answered with the name it most likely meant.
    let (status, body) = api.post_run(ADMIN, "quick-gcp-los", "prod-a").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"], "unknown scenario `quick-gcp-los`: did you mean `quick-gcp-loss`?",
        "{body}"
    );
    // No run was created by any refused request.
    let runs: Value = api
        .get("/api/v1/runs", Some(VIEWER))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_reads_scenarios_plans_and_runs() {
    let api = Api::start(None).await;
    let scenarios: Value = api
        .get("/api/v1/scenarios", Some(VIEWER))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = scenarios
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prod-game-day", "quick-gcp-loss"]);
    let one = api
        .get("/api/v1/scenarios/quick-gcp-loss", Some(VIEWER))
        .await;
    assert_eq!(one.status().as_u16(), 200);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["when"][0]["name"], "GCP connectivity lost", "{one}");
    let typo = api
        .get("/api/v1/scenarios/quikc-gcp-loss", Some(VIEWER))
        .await;
    assert_eq!(typo.status().as_u16(), 404);
    let typo: Value = typo.json().await.unwrap();
    assert_eq!(
        typo["error"], "unknown scenario `quikc-gcp-loss`: did you mean `quick-gcp-loss`?",
        "{typo}"
    );
    let plan = api.get("/api/v1/plans/2026-11-23", Some(VIEWER)).await;
    assert_eq!(plan.status().as_u16(), 200);
    let plan: Value = plan.json().await.unwrap();
    assert_eq!(plan["night"], "2026-11-23");
    assert_eq!(plan["source"], "computed");
    assert!(plan["plan"]["slots"].is_array(), "{plan}");
    let runs = api
        .get("/api/v1/runs?status=passed&limit=5", Some(VIEWER))
        .await;
    assert_eq!(runs.status().as_u16(), 200);
    let runs: Value = runs.json().await.unwrap();
    crate::schemas::assert_valid(crate::schemas::Document::Runs, &runs);
    let bad = api.get("/api/v1/runs?status=great", Some(VIEWER)).await;
    assert_eq!(bad.status().as_u16(), 400);
    let missing = api
        .get(
            "/api/v1/runs/0190aaaa-0000-7000-8000-000000000000",
            Some(VIEWER),
        )
        .await;
    assert_eq!(missing.status().as_u16(), 404);
    // /metrics is open to the scraper.
    assert_eq!(api.get("/metrics", None).await.status().as_u16(), 200);
}

/// An operator starts a real run on the sandbox through the API; the CLI's remote client follows
/// its SSE stream to `run-finished`; the store records who started it; `/metrics` counts it.
#[test]
fn operator_runs_on_the_sandbox_and_follows_the_event_stream() {
    let _heavy = heavy_test_lock();
    let sandbox = SandboxStack::up_free("apitest", &[]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let api = Api::start(Some(&sandbox)).await;
        let remote = Remote::new(&api.base, OPERATOR).unwrap();
        let request = StartRequest {
            scenario: "quick-gcp-loss".into(),
            stack: Some("local".into()),
            wait_for_stack_seconds: None,
        };
        let seen = run_remote(&remote, &request, &api.library.config, true)
            .await
            .unwrap();
        let report = seen
            .report
            .clone()
            .expect("a report rebuilt from the events");
        assert_eq!(seen.exit_code, report.outcome.exit_code());
        assert_eq!(report.outcome, RunOutcome::Passed, "{:#?}", seen.events);
        match seen.events.first() {
            Some(RunEvent::RunStarted { started_by, .. }) => assert_eq!(started_by, "ci-operator"),
            other => panic!("first event: {other:?}"),
        }
        assert!(matches!(
            seen.events.last(),
            Some(RunEvent::RunFinished { .. })
        ));
        assert!(
            seen.events
                .iter()
                .any(|e| matches!(e, RunEvent::FaultInjected { .. }))
        );
        let run_id = seen.run_id.unwrap();

        let record: Value = api
            .get(&format!("/api/v1/runs/{run_id}"), Some(VIEWER))
            .await
            .json()
            .await
            .unwrap();
        crate::schemas::assert_valid(crate::schemas::Document::Run, &record);
        assert_eq!(record["run"]["startedBy"], "ci-operator", "{record}");
        assert_eq!(record["run"]["trigger"], "api", "{record}");
        assert_eq!(record["run"]["status"], "passed", "{record}");
        // The list carries the same summary of the run as its document.
        let list: Value = api
            .get("/api/v1/runs", Some(VIEWER))
            .await
            .json()
            .await
            .unwrap();
        crate::schemas::assert_valid(crate::schemas::Document::Runs, &list);
        assert_eq!(list["runs"][0], record["run"], "{list:#}");

        // The finished run's stream is replayed from the store: the same events, same order.
        let replay = api
            .get(&format!("/api/v1/runs/{run_id}/events"), Some(VIEWER))
            .await
            .text()
            .await
            .unwrap();
        let kinds: Vec<&str> = replay
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        let live: Vec<&str> = seen.events.iter().map(RunEvent::kind).collect();
        assert_eq!(kinds, live);

        let steps: Value = api
            .get(&format!("/api/v1/runs/{run_id}/steps"), Some(VIEWER))
            .await
            .json()
            .await
            .unwrap();
        assert!(!steps.as_array().unwrap().is_empty(), "{steps}");

        let metrics = api.get("/metrics", None).await.text().await.unwrap();
        assert!(
            metrics.contains(
                "f3_chaos_runs_total{scenario=\"quick-gcp-loss\",stack=\"local\",outcome=\"passed\"} 1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("f3_chaos_assertion_query_seconds_count"),
            "{metrics}"
        );
        api.state.shutdown().await;
    });
}

/// A planned run of `gcp-failover-validation` on `uat-beta` on 2026-11-`day` whose latency
/// Then step (owned by payments) passed or failed; its findings recorded as the runner does.
async fn judged_night(store: &Store, day: u32, passed: bool) {
    use chrono::TimeZone as _;
    use f3_chaos::model::{Phase, Verdict};
    use f3_chaos::store::{NewRun, StepRecord};
    let started_at = chrono::Utc
        .with_ymd_and_hms(2026, 11, day, 1, 0, 0)
        .unwrap();
    let id = uuid::Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: "gcp-failover-validation".into(),
            stack: "uat-beta".into(),
            trigger: "daemon".into(),
            started_by: "daemon".into(),
            started_at,
            pid: 1,
            host: "daemon-1".into(),
            scenario_digest: None,
            night: chrono::NaiveDate::from_ymd_opt(2026, 11, day),
        })
        .await
        .unwrap();
    let verdict = if passed {
        Verdict::Passed
    } else {
        Verdict::Failed
    };
    store
        .upsert_step(
            id,
            &StepRecord {
                index: 3,
                phase: Phase::Then,
                name: "Product SLO: end-to-end latency p99 < 250 ms".into(),
                owner: Some("payments".into()),
                verdict: Some(verdict),
                started_at,
                ended_at: Some(started_at + chrono::Duration::minutes(5)),
                observed: Some(if passed { 0.2 } else { 0.31 }),
                threshold: Some(0.25),
                evidence: None,
                message: None,
            },
        )
        .await
        .unwrap();
    let outcome = if passed {
        RunOutcome::Passed
    } else {
        RunOutcome::Failed
    };
    let ended_at = started_at + chrono::Duration::minutes(30);
    store
        .finish_run(id, outcome, ended_at, &serde_json::json!({}))
        .await
        .unwrap();
    store.record_findings(id, 3, ended_at).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_opens_on_a_failure_takes_a_ticket_and_resolves_after_three_passing_nights() {
    let api = Api::start(None).await;
    let store = api.state.store();
    judged_night(store, 17, true).await;
    judged_night(store, 18, false).await;
    let findings = |query: &'static str| {
        let api = &api;
        async move {
            let response = api
                .get(&format!("/api/v1/findings{query}"), Some(VIEWER))
                .await;
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let open = findings("?status=open&team=payments").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    let finding = &open[0];
    assert_eq!(
        finding["step"],
        "Product SLO: end-to-end latency p99 < 250 ms"
    );
    assert_eq!(finding["stack"], "uat-beta");
    assert_eq!(finding["firstFailedNight"], "2026-11-18");
    assert_eq!(finding["latestFailedNight"], "2026-11-18");
    let id = finding["id"].as_str().unwrap().to_owned();
    assert_eq!(
        findings("?team=infrastructure").await,
        serde_json::json!([])
    );

    // Attaching a ticket needs the operator role and an http(s) URL.
    let patch = |token: &'static str, body: Value| {
        let request = api
            .http
            .patch(format!("{}/api/v1/findings/{id}", api.base))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let ticket = "https://jira.example.com/browse/PAY-1234";
    let (status, body) = patch(VIEWER, serde_json::json!({"ticketUrl": ticket})).await;
    assert_eq!(
        (status, &body["required_role"]),
        (403, &Value::from("operator"))
    );
    let (status, body) = patch(OPERATOR, serde_json::json!({"ticketUrl": "PAY-1234"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = patch(
        OPERATOR,
        serde_json::json!({"ticketUrl": ticket, "note": "p99 regressed with the new TLS config"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ticketUrl"], ticket);
    assert_eq!(body["annotatedBy"], "ci-operator");

    // Two passing nights are not enough (resolveAfterPassingNights defaults to 3); the third
    // resolves it, and the ticket stays.
    judged_night(store, 19, true).await;
    judged_night(store, 20, true).await;
    let still = findings("?status=open").await;
    assert_eq!(still[0]["passingNights"], 2, "{still}");
    judged_night(store, 21, true).await;
    assert_eq!(findings("?status=open").await, serde_json::json!([]));
    let resolved = findings("?status=resolved").await;
    assert_eq!(resolved[0]["id"], id.as_str());
    assert_eq!(resolved[0]["ticketUrl"], ticket);
    assert_eq!(resolved[0]["note"], "p99 regressed with the new TLS config");
    assert_eq!(resolved[0]["resolvedAt"], "2026-11-21T01:30:00Z");
    let (status, _) = patch(OPERATOR, serde_json::json!({"note": ""})).await;
    assert_eq!(status, 200);
    let response = api.get("/api/v1/findings?status=fixed", Some(VIEWER)).await;
    assert_eq!(response.status().as_u16(), 400);
}
