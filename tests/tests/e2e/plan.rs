//! End-to-end tests of `f3-chaos plan` on the shipped example production config and scenario
//! library, driving the real binary.

use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use f3_chaos::model::RunOutcome;
use f3_chaos_tests::{binary, repo_root};
use serde_json::Value;

fn f3_chaos(args: &[&str]) -> Output {
    Command::new(binary("f3-chaos"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("F3_CHAOS_CONFIG")
        // No run history unless a test gives one: a store that does not exist (never created).
        .env("F3_CHAOS_DATABASE_URL", no_store_url())
        .output()
        .expect("run f3-chaos (build it first: cargo build -p f3-chaos --bins)")
}

fn no_store_url() -> String {
    let path = std::env::temp_dir().join("f3-chaos-plan-tests-no-store/none.db");
    format!("sqlite://{}", path.display())
}

fn ok_stdout(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn plan_json(night: &str) -> Value {
    let out = f3_chaos(&[
        "plan",
        "--night",
        night,
        "--config",
        "config/example-production",
        "--output",
        "json",
    ]);
    let doc = serde_json::from_str(&ok_stdout(&out)).expect("plan --output json prints JSON");
    crate::schemas::assert_valid(crate::schemas::Document::Plan, &doc);
    doc
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("an RFC 3339 string"))
        .expect("RFC 3339")
        .to_utc()
}

#[test]
fn plan_example_production_accounts_for_every_scenario() {
    let plan = plan_json("2026-11-23");
    assert_eq!(plan["night"], "2026-11-23");
    assert_eq!(plan["window"]["start"], "2026-11-23T00:00:00Z");
    assert_eq!(plan["window"]["end"], "2026-11-23T07:00:00Z");
    let slots = plan["slots"].as_array().expect("slots");
    let skipped = plan["skipped"].as_array().expect("skipped");
    assert!(!slots.is_empty(), "{plan:#}");
    let scenarios = std::fs::read_dir(repo_root().join("scenarios"))
        .expect("scenarios dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(slots.len() + skipped.len(), scenarios, "{plan:#}");
    for s in slots {
        let stack = s["stack"].as_str().expect("stack");
        assert!(
            !stack.starts_with("prod-"),
            "nothing planned on production by default: {s}"
        );
        assert!(instant(&s["start"]) >= instant(&plan["window"]["start"]));
        assert!(instant(&s["end"]) <= instant(&plan["window"]["end"]));
    }
    // The manual production game day is never planned, and says why.
    let game_day = skipped
        .iter()
        .find(|s| s["scenario"] == "production-game-day-node-loss")
        .expect("the manual scenario is skipped");
    assert_eq!(game_day["code"], "not-due", "{game_day}");
    assert!(
        game_day["reason"]
            .as_str()
            .expect("reason")
            .contains("manual")
    );
    // after: chains hold across stacks.
    let end_of = |name: &str| {
        slots
            .iter()
            .find(|s| s["scenario"] == name)
            .map(|s| instant(&s["end"]))
    };
    let start_of = |name: &str| {
        slots
            .iter()
            .find(|s| s["scenario"] == name)
            .map(|s| instant(&s["start"]))
    };
    if let (Some(gcp_end), Some(aws_start)) = (
        end_of("gcp-failover-validation"),
        start_of("aws-failover-validation"),
    ) {
        assert!(aws_start >= gcp_end);
    }
    assert!(plan["objective"].as_u64().expect("objective") > 0);
}

#[test]
fn plan_dst_nights_have_the_right_length() {
    let length = |night: &str| {
        let plan = plan_json(night);
        (instant(&plan["window"]["end"]) - instant(&plan["window"]["start"])).num_hours()
    };
    assert_eq!(
        length("2026-03-29"),
        6,
        "clocks go forward: 00:00 GMT – 07:00 BST"
    );
    assert_eq!(
        length("2026-10-25"),
        8,
        "clocks go back: 00:00 BST – 07:00 GMT"
    );
    assert_eq!(length("2026-11-23"), 7);
}

#[test]
fn plan_table_and_gantt_are_for_people() {
    let table = ok_stdout(&f3_chaos(&[
        "plan",
        "--night",
        "2026-03-29",
        "--config",
        "config/example-production",
    ]));
    assert!(
        table.contains("Night 2026-03-29 (Europe/London): 00:00:00–07:00:00 local"),
        "{table}"
    );
    assert!(table.contains("(6h)"), "{table}");
    assert!(
        table.contains("Not planned:") && table.contains("not due (manual cadence"),
        "{table}"
    );
    let gantt = ok_stdout(&f3_chaos(&[
        "plan",
        "--night",
        "2026-10-25",
        "--config",
        "config/example-production",
        "--output",
        "gantt",
    ]));
    assert!(gantt.contains("uat-") && gantt.contains(" |"), "{gantt}");
    // Default config: the local sandbox stack.
    ok_stdout(&f3_chaos(&["plan", "--night", "2026-11-23"]));
}

#[test]
fn plan_rejects_a_bad_night_and_a_missing_config() {
    let out = f3_chaos(&["plan", "--night", "2026-13-01"]);
    assert_eq!(out.status.code(), Some(8));
    let out = f3_chaos(&["plan", "--config", "does/not/exist"]);
    assert_eq!(out.status.code(), Some(8));
}

/// The slot of `scenario` in a `plan --output json` answer: its length in minutes.
fn slot_minutes(plan: &Value, scenario: &str) -> i64 {
    let slot = plan["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["scenario"] == scenario)
        .unwrap_or_else(|| panic!("{scenario} is planned: {plan:#}"));
    (instant(&slot["end"]) - instant(&slot["start"])).num_minutes()
}

/// `f3-chaos plan` learns durations from the store's run history, as the daemon does: three
/// passed 10-minute runs of a scenario declared at 2 minutes make its slot 10 minutes long;
/// `--no-history` plans the declared estimate; a store that does not exist is not created.
#[test]
fn plan_learns_durations_from_the_run_history_in_the_store() {
    use f3_chaos::store::{NewRun, Store};

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&url).await.expect("open the store");
        for night in ["2026-11-18", "2026-11-19", "2026-11-20"] {
            let started_at = instant(&Value::from(format!("{night}T00:03:20Z")));
            let id = uuid::Uuid::now_v7();
            store
                .create_run(&NewRun {
                    id,
                    scenario: "gcp-failover-validation".into(),
                    stack: "local".into(),
                    trigger: "daemon".into(),
                    started_by: "daemon".into(),
                    started_at,
                    pid: 1,
                    host: "chaos-0".into(),
                    scenario_digest: None,
                    night: Some(night.parse().expect("date")),
                })
                .await
                .expect("create a run");
            store
                .finish_run(
                    id,
                    RunOutcome::Passed,
                    started_at + chrono::Duration::minutes(10),
                    &serde_json::json!({}),
                )
                .await
                .expect("finish the run");
        }
        store.close().await;
    });
    let plan = |url: &str, extra: &[&str]| -> Value {
        let mut args = vec![
            "plan",
            "--night",
            "2026-11-23",
            "--config",
            "config/local",
            "--output",
            "json",
            "--database-url",
            url,
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok_stdout(&f3_chaos(&args))).expect("JSON")
    };
    assert_eq!(
        slot_minutes(&plan(&url, &[]), "gcp-failover-validation"),
        10
    );
    assert_eq!(
        slot_minutes(&plan(&url, &["--no-history"]), "gcp-failover-validation"),
        2,
        "the declared estimate of scenarios/gcp-failover-validation.yaml"
    );

    let missing = dir.path().join("missing/store.db");
    let plan = plan(&format!("sqlite://{}", missing.display()), &[]);
    assert_eq!(slot_minutes(&plan, "gcp-failover-validation"), 2);
    assert!(!missing.exists(), "planning must not create a store");
}

#[test]
fn plan_leaves_out_a_broken_scenario_file_and_plans_the_rest() {
    // The shipped library plus one scenario whose fault duration cannot be read: `plan` warns,
    // naming the file at the error, and plans every other scenario as without it.
    let library = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(repo_root().join("scenarios")).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&path, library.path().join(path.file_name().expect("name")))
                .expect("copy");
        }
    }
    let broken = library.path().join("bad-duration.yaml");
    std::fs::copy(
        repo_root().join("tests/fixtures/broken/bad-duration.yaml"),
        &broken,
    )
    .expect("copy");
    let plan_of = |dir: &std::path::Path| -> (Value, String) {
        let out = f3_chaos(&[
            "plan",
            "--night",
            "2026-11-23",
            "--config",
            "config/example-production",
            "--scenarios",
            dir.to_str().expect("UTF-8 path"),
            "--output",
            "json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            serde_json::from_str(&ok_stdout(&out)).expect("JSON"),
            stderr,
        )
    };
    let (plan, stderr) = plan_of(library.path());
    assert!(
        stderr.contains(&format!(
            "warning: 1 scenario file with errors left out (`f3-chaos validate` shows every error):\n  {}:18:17: invalid fault duration `5 parsecs`",
            broken.display()
        )),
        "{stderr}"
    );
    std::fs::remove_file(&broken).expect("remove");
    let (without, stderr) = plan_of(library.path());
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(plan["slots"], without["slots"]);
    assert_eq!(plan["skipped"], without["skipped"]);
    assert!(!plan["slots"].as_array().expect("slots").is_empty());
}
