//! End-to-end tests of `f3-chaos gate` and `f3-chaos results --night`: the store is seeded
//! directly through `f3_chaos::store::Store` (a SQLite file in a temporary directory) and the real
//! binary is run against it with `F3_CHAOS_DATABASE_URL` and `F3_CHAOS_CONFIG`.

use std::process::{Command, Output};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use f3_chaos::model::{Phase, RunOutcome, RunStatus, Verdict};
use f3_chaos::store::{NewRun, StepRecord, Store};
use f3_chaos_tests::{binary, repo_root};
use serde_json::{Value, json};
use uuid::Uuid;

const FAILED: i32 = 1;
const INVALID_INPUT: i32 = 8;

/// A temporary store with helpers to seed finished runs.
struct Seeded {
    dir: tempfile::TempDir,
    store: Store,
}

impl Seeded {
    async fn new() -> Seeded {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&url(&dir)).await.unwrap();
        Seeded { dir, store }
    }

    fn url(&self) -> String {
        url(&self.dir)
    }

    /// A finished run of `scenario` on `stack`, started `ago` before now, lasting 10 minutes.
    async fn run(&self, scenario: &str, stack: &str, outcome: &str, ago: Duration) -> Uuid {
        let started = Utc::now() - ago;
        self.run_at(scenario, stack, outcome, started, None).await
    }

    async fn run_at(
        &self,
        scenario: &str,
        stack: &str,
        outcome: &str,
        started: DateTime<Utc>,
        night: Option<NaiveDate>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.store
            .create_run(&NewRun {
                id,
                scenario: scenario.to_owned(),
                stack: stack.to_owned(),
                trigger: "daemon".to_owned(),
                started_by: "test".to_owned(),
                started_at: started,
                pid: 1,
                host: "ci".to_owned(),
                scenario_digest: None,
                night,
            })
            .await
            .unwrap();
        let status: RunStatus = outcome.parse().expect("a run status");
        let verdict = if status == RunStatus::Finished(RunOutcome::Passed) {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
        self.store
            .upsert_step(
                id,
                &StepRecord {
                    index: 0,
                    phase: Phase::Then,
                    name: "Assertion: Product SLO latency < 250ms".to_owned(),
                    owner: Some("payments".to_owned()),
                    verdict: Some(verdict),
                    started_at: started,
                    ended_at: Some(started + Duration::minutes(5)),
                    observed: Some(0.31),
                    threshold: Some(0.25),
                    evidence: None,
                    message: None,
                },
            )
            .await
            .unwrap();
        if let Some(outcome) = status.outcome() {
            self.store
                .finish_run(id, outcome, started + Duration::minutes(10), &json!({}))
                .await
                .unwrap();
        }
        id
    }

    fn f3_chaos(&self, args: &[&str]) -> Output {
        Command::new(binary("f3-chaos"))
            .args(args)
            .current_dir(repo_root())
            .env("F3_CHAOS_DATABASE_URL", self.url())
            .env("F3_CHAOS_CONFIG", repo_root().join("config/local"))
            .output()
            .expect("run f3-chaos (build it first: cargo build -p f3-chaos --bins)")
    }
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("f3-chaos.db").display())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

const DR: &[&str] = &[
    "aws-failover-validation",
    "azure-failover-validation",
    "gcp-failover-validation",
];

#[tokio::test]
async fn passes_when_every_latest_run_passed_recently() {
    let db = Seeded::new().await;
    for name in DR {
        // An older failure followed by a fresh pass: only the latest counts.
        db.run(name, "local", "failed", Duration::hours(30)).await;
        db.run(name, "local", "passed", Duration::hours(3)).await;
    }
    // A run still in progress is ignored (evidence, not hope).
    db.run(
        "gcp-failover-validation",
        "local",
        "running",
        Duration::minutes(5),
    )
    .await;
    let junit = db.dir.path().join("gate.xml");
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "tag=dr-plan",
        "--max-age",
        "24h",
        "--stack",
        "local",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    for name in DR {
        assert!(text.contains(&format!("[PASS   ] {name}")), "{text}");
    }
    assert!(text.contains("Gate passed: 3 check(s)"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"3\""), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[tokio::test]
async fn fails_when_the_latest_run_failed() {
    let db = Seeded::new().await;
    db.run(
        "gcp-failover-validation",
        "local",
        "passed",
        Duration::hours(26),
    )
    .await;
    let id = db
        .run(
            "gcp-failover-validation",
            "local",
            "failed",
            Duration::hours(2),
        )
        .await;
    db.run(
        "aws-failover-validation",
        "local",
        "passed",
        Duration::hours(2),
    )
    .await;
    let junit = db.dir.path().join("gate.xml");
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "gcp-failover-validation,aws-*",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("[FAIL   ] gcp-failover-validation"), "{text}");
    assert!(text.contains("[PASS   ] aws-failover-validation"), "{text}");
    assert!(text.contains("ended `failed`"), "{text}");
    assert!(
        text.contains(&format!("latest run {id} ended")),
        "the full run id: {text}"
    );
    assert!(text.contains("Gate FAILED: 1 of 2"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"1\""), "{xml}");

    // Another outcome than failed (void: the stack changed mid-run) fails the gate too.
    db.run(
        "aws-failover-validation",
        "local",
        "void",
        Duration::hours(1),
    )
    .await;
    let out = db.f3_chaos(&["gate", "--scenarios", "aws-failover-validation"]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    assert!(stdout(&out).contains("ended `void`"), "{}", describe(&out));
}

#[tokio::test]
async fn fails_when_a_run_is_missing() {
    let db = Seeded::new().await;
    db.run(
        "gcp-failover-validation",
        "local",
        "passed",
        Duration::hours(1),
    )
    .await;
    // Passed on `local`, but nothing on `uat-beta`: the gate asks per stack.
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "gcp-failover-validation,payment-node-loss",
        "--stack",
        "local,uat-beta",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::schemas::assert_valid(crate::schemas::Document::Gate, &doc);
    assert_eq!(doc["passed"], json!(false));
    let lines = doc["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "{doc:#}");
    let status = |scenario: &str, stack: &str| {
        lines
            .iter()
            .find(|l| l["scenario"] == scenario && l["stack"] == stack)
            .map(|l| l["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("gcp-failover-validation", "local"), "pass");
    assert_eq!(status("gcp-failover-validation", "uat-beta"), "missing");
    assert_eq!(status("payment-node-loss", "local"), "missing");

    // A selector that selects nothing is invalid input, not a silent pass.
    let out = db.f3_chaos(&["gate", "--scenarios", "tag=no-such-tag"]);
    assert_eq!(out.status.code(), Some(INVALID_INPUT), "{}", describe(&out));

    // A mistyped name is MISSING, and says which scenario was meant.
    let out = db.f3_chaos(&["gate", "--scenarios", "gcp-failover-validaton"]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    assert!(
        stdout(&out).contains(
            "`gcp-failover-validaton` is not a scenario of the library: did you mean `gcp-failover-validation`?"
        ),
        "{}",
        describe(&out)
    );

    // So is a mistyped stack.
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "gcp-failover-validation",
        "--stack",
        "locl",
    ]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    assert!(
        stdout(&out).contains("`locl` is not a stack of the config: did you mean `local`?"),
        "{}",
        describe(&out)
    );
}

#[test]
fn the_gate_documents_its_exit_codes_in_its_help() {
    let out = Command::new(binary("f3-chaos"))
        .args(["gate", "--help"])
        .output()
        .expect("f3-chaos gate --help");
    let help = stdout(&out);
    for line in ["0  passed", "1  failed", "8  invalid-input", "10  error"] {
        assert!(help.contains(line), "{line} in {help}");
    }
}

#[tokio::test]
async fn fails_when_the_latest_run_is_stale() {
    let db = Seeded::new().await;
    db.run(
        "gcp-failover-validation",
        "local",
        "passed",
        Duration::hours(30),
    )
    .await;
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "gcp-failover-validation",
        "--max-age",
        "24h",
    ]);
    assert_eq!(out.status.code(), Some(FAILED), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("[STALE  ] gcp-failover-validation"), "{text}");
    assert!(text.contains("older than --max-age"), "{text}");
    // A longer max-age accepts the same run.
    let out = db.f3_chaos(&[
        "gate",
        "--scenarios",
        "gcp-failover-validation",
        "--max-age",
        "36h",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn results_of_one_night_as_json_and_csv() {
    let db = Seeded::new().await;
    let night = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let at = |h: i64| {
        night.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::days(1) + Duration::hours(h)
    };
    db.run_at(
        "gcp-failover-validation",
        "local",
        "passed",
        at(1),
        Some(night),
    )
    .await;
    db.run_at("payment-node-loss", "local", "failed", at(2), Some(night))
        .await;
    // Another night and an ad-hoc run are not part of it.
    db.run_at(
        "payment-node-loss",
        "local",
        "passed",
        at(26),
        Some(night.succ_opt().unwrap()),
    )
    .await;
    db.run("payment-node-loss", "local", "passed", Duration::hours(1))
        .await;

    let out = db.f3_chaos(&["results", "--night", "2026-11-20", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["totals"]["runs"], json!(2), "{doc:#}");
    assert_eq!(doc["totals"]["pass_rate"], json!(0.5), "{doc:#}");
    assert_eq!(
        doc["runs"][0]["run"]["scenario"],
        json!("gcp-failover-validation")
    );
    assert_eq!(doc["runs"][1]["steps"][0]["owner"], json!("payments"));

    let out = db.f3_chaos(&["results", "--night", "2026-11-20", "--output", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let csv = stdout(&out);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].starts_with("night,run_id,scenario,stack,outcome"),
        "{csv}"
    );
    assert!(
        rows[2].contains(",payment-node-loss,local,failed,2026-11-21T02:00:00Z,"),
        "{csv}"
    );
    assert!(
        rows[2].ends_with(",1,1,then: Assertion: Product SLO latency < 250ms [payments]"),
        "{csv}"
    );
}
