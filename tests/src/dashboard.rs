//! A realistic morning-review night seeded through `f3_chaos::store::Store`, and the real
//! `f3-chaos dashboard` binary serving it — shared by the HTTP and the browser tests.
//!
//! The night is yesterday's (local date, Europe/London, window 00:00–07:00): two UAT stacks,
//! four planned scenarios (one moved by a re-plan, one planned but never run), two skipped ones
//! with the planner's reasons, runs that passed, failed and aborted with owned Then steps,
//! evidence, a fault in the ledger and a notification; plus six earlier nights of
//! `gcp-failover-validation` (with plans) for the scenario page's trend.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use f3_chaos::store::{LedgerEntry, LedgerState, NewRun, StepRecord, Store};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{binary, repo_root};

/// What [`seed_night`] wrote.
pub struct SeededNight {
    /// The reviewed night.
    pub night: NaiveDate,
    /// The failed `gcp-failover-validation` run on `uat-beta` (latency step failed, owner
    /// `payments`).
    pub failed_run: Uuid,
}

/// Start of the chaos window of `night` (00:00 Europe/London), UTC.
fn window_start(night: NaiveDate) -> DateTime<Utc> {
    chrono_tz::Europe::London
        .from_local_datetime(&night.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

fn slot(scenario: &str, stack: &str, start: DateTime<Utc>, minutes: i64) -> Value {
    json!({"scenario": scenario, "stack": stack, "start": start, "end": start + Duration::minutes(minutes)})
}

fn plan(night: NaiveDate, w0: DateTime<Utc>, slots: Vec<Value>, skipped: Vec<Value>) -> Value {
    json!({"night": night, "window": {"start": w0, "end": w0 + Duration::hours(7)},
           "slots": slots, "skipped": skipped, "objective": 10})
}

/// One finished run with its steps; returns its id.
#[allow(
    clippy::too_many_arguments,
    reason = "a fixture builder: each argument is a column the test varies"
)]
async fn run(
    store: &Store,
    night: NaiveDate,
    scenario: &str,
    stack: &str,
    start: DateTime<Utc>,
    minutes: i64,
    outcome: &str,
    latency_ok: bool,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: scenario.into(),
            stack: stack.into(),
            trigger: "daemon".into(),
            started_by: "daemon".into(),
            started_at: start,
            pid: 1,
            host: "chaos-0".into(),
            scenario_digest: None,
            night: Some(night),
        })
        .await?;
    let fault_at = start + Duration::minutes(3);
    let fault_end = fault_at + Duration::minutes(5);
    // Evidence as the runner stores it: the series, the comparison and the unit.
    let series = |base: f64, bad: f64, op: &str, unit: &str| {
        let points: Vec<Value> = (0..40)
            .map(|i| {
                let at = start + Duration::seconds(15 * i);
                let v = if at >= fault_at && at < fault_end {
                    bad
                } else {
                    base
                };
                json!({"at": at, "value": v + (i % 5) as f64 * base * 0.02})
            })
            .collect();
        json!({"series": [{"labels": {"cloud": "aws"}, "points": points}], "op": op, "unit": unit})
    };
    let latency = if latency_ok { 0.19 } else { 0.31 };
    let steps = [
        (
            "given",
            "The platform is healthy and payments are flowing",
            None,
            "passed",
            None,
            None,
            None,
        ),
        (
            "given",
            "Payment simulators generate a steady 300 TPS",
            None,
            "passed",
            None,
            None,
            None,
        ),
        (
            "when",
            "GCP cloud connectivity is completely lost",
            None,
            "passed",
            None,
            None,
            None,
        ),
        (
            "then",
            "Payments continue flowing through AWS and Azure",
            Some("sre-chaos"),
            "passed",
            Some(296.0),
            Some(250.0),
            Some(series(300.0, 296.0, ">", "tps")),
        ),
        (
            "then",
            "Product SLO: end-to-end latency p99 < 250 ms",
            Some("payments"),
            if latency_ok { "passed" } else { "failed" },
            Some(latency),
            Some(0.25),
            Some(series(0.12, latency, "<", "s")),
        ),
        (
            "then",
            "Service SLO: success rate > 99.99 %",
            Some("infrastructure"),
            "passed",
            Some(0.99995),
            Some(0.9999),
            Some(series(0.99998, 0.99995, ">", "ratio")),
        ),
    ];
    for (index, (phase, name, owner, verdict, observed, threshold, evidence)) in
        steps.into_iter().enumerate()
    {
        let at = match phase {
            "given" => start,
            "when" => fault_at,
            _ => fault_at + Duration::seconds(10),
        };
        store
            .upsert_step(
                id,
                &StepRecord {
                    index: i64::try_from(index)?,
                    phase: phase.parse().map_err(anyhow::Error::msg)?,
                    name: name.into(),
                    owner: owner.map(str::to_owned),
                    verdict: Some(verdict.parse().map_err(anyhow::Error::msg)?),
                    started_at: at,
                    ended_at: Some(at + Duration::minutes(5)),
                    observed,
                    threshold,
                    evidence,
                    message: (verdict == "failed")
                        .then(|| format!("p99 latency {latency} s above 0.25 s for 4m10s")),
                },
            )
            .await?;
    }
    store
        .ledger_insert(&LedgerEntry {
            id: Uuid::now_v7(),
            run_id: id,
            stack: stack.into(),
            driver: "chaos-mesh".into(),
            step_name: "GCP cloud connectivity is completely lost".into(),
            spec: json!({"kind": "NetworkChaos", "action": "partition"}),
            handle: None,
            state: LedgerState::Reverted,
            created_at: fault_at,
            expires_at: fault_end + Duration::minutes(1),
            updated_at: fault_end,
        })
        .await?;
    let mut summary = json!({"pass_rate": if latency_ok { 1.0 } else { 0.8 }});
    if outcome == "aborted" {
        summary = json!({"pass_rate": 0.6, "abort_latency_ms": 840,
                         "reason": "abort condition: success rate < 99 % for 30s"});
    }
    if outcome == "failed" {
        store
            .outbox_insert(
                id,
                "payments",
                f3_chaos::model::NotificationKind::Failures,
                &json!({"text": "Product SLO latency breached"}),
                start + Duration::minutes(9),
            )
            .await?;
    }
    store
        .finish_run(
            id,
            outcome.parse().map_err(anyhow::Error::msg)?,
            start + Duration::minutes(minutes),
            &summary,
        )
        .await?;
    // As the runner does once a run is stored (resolving after the default 3 passing nights).
    store
        .record_findings(id, 3, start + Duration::minutes(minutes))
        .await?;
    Ok(id)
}

/// Seeds the night described in the module docs into `store`.
///
/// # Errors
/// Any store error.
pub async fn seed_night(store: &Store) -> anyhow::Result<SeededNight> {
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive();
    let night = today.pred_opt().unwrap_or(today);
    // Earlier nights of the failover scenario: planned 30 min, actual 28–41 min.
    for back in (1..=6).rev() {
        let n = night - Duration::days(back);
        let w0 = window_start(n);
        let start = w0 + Duration::minutes(40);
        store
            .save_plan(
                n,
                w0 - Duration::hours(1),
                "initial",
                &plan(
                    n,
                    w0,
                    vec![slot("gcp-failover-validation", "uat-beta", start, 30)],
                    vec![],
                ),
            )
            .await?;
        let actual = 28 + (back * 13) % 14;
        let outcome = if back % 3 == 0 { "failed" } else { "passed" };
        run(
            store,
            n,
            "gcp-failover-validation",
            "uat-beta",
            start,
            actual,
            outcome,
            outcome == "passed",
        )
        .await?;
    }
    let w0 = window_start(night);
    let skipped = vec![
        json!({"scenario": "weekly-dr-rehearsal", "reason": "not due tonight: weekly on Mon", "code": "not-due"}),
        json!({"scenario": "prod-gateway-kill", "reason": "no eligible stack: needs a production stack with chaos opt-in", "code": "no-eligible-stack"}),
    ];
    let first = plan(
        night,
        w0,
        vec![
            slot(
                "partial-network-partition",
                "uat-alpha",
                w0 + Duration::minutes(10),
                45,
            ),
            slot(
                "db-primary-loss",
                "uat-alpha",
                w0 + Duration::minutes(70),
                40,
            ),
            slot(
                "gcp-failover-validation",
                "uat-beta",
                w0 + Duration::minutes(30),
                30,
            ),
            slot(
                "dns-degradation",
                "uat-beta",
                w0 + Duration::minutes(200),
                25,
            ),
        ],
        skipped.clone(),
    );
    store
        .save_plan(night, w0 - Duration::hours(1), "initial", &first)
        .await?;
    // The partition overran, so the failover test moved later on its stack.
    let last = plan(
        night,
        w0,
        vec![
            slot(
                "partial-network-partition",
                "uat-alpha",
                w0 + Duration::minutes(10),
                45,
            ),
            slot(
                "db-primary-loss",
                "uat-alpha",
                w0 + Duration::minutes(70),
                40,
            ),
            slot(
                "gcp-failover-validation",
                "uat-beta",
                w0 + Duration::minutes(70),
                30,
            ),
            slot(
                "dns-degradation",
                "uat-beta",
                w0 + Duration::minutes(200),
                25,
            ),
        ],
        skipped,
    );
    store
        .save_plan(night, w0 + Duration::minutes(55), "overrun", &last)
        .await?;
    run(
        store,
        night,
        "partial-network-partition",
        "uat-alpha",
        w0 + Duration::minutes(10),
        52,
        "passed",
        true,
    )
    .await?;
    run(
        store,
        night,
        "db-primary-loss",
        "uat-alpha",
        w0 + Duration::minutes(72),
        18,
        "aborted",
        true,
    )
    .await?;
    let failed_run = run(
        store,
        night,
        "gcp-failover-validation",
        "uat-beta",
        w0 + Duration::minutes(72),
        37,
        "failed",
        false,
    )
    .await?;
    Ok(SeededNight { night, failed_run })
}

/// The real `f3-chaos dashboard` on a free loopback port; killed on drop.
pub struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
}

impl Dashboard {
    /// Starts `f3-chaos dashboard --listen 127.0.0.1:0` over the store at `database_url` with
    /// the shipped local config (Europe/London), and waits for its "Dashboard on …" line.
    ///
    /// # Errors
    /// The binary is missing (build it first: `cargo build -p f3-chaos --bins`) or exits early.
    pub fn start(database_url: &str) -> anyhow::Result<Dashboard> {
        Self::start_with_config(database_url, &repo_root().join("config/local"))
    }

    /// [`Dashboard::start`] with the config directory `config`.
    ///
    /// # Errors
    /// As [`Dashboard::start`].
    pub fn start_with_config(
        database_url: &str,
        config: &std::path::Path,
    ) -> anyhow::Result<Dashboard> {
        let mut child = Command::new(binary("f3-chaos"))
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .current_dir(repo_root())
            .env("F3_CHAOS_DATABASE_URL", database_url)
            .env("F3_CHAOS_CONFIG", config)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("run f3-chaos (cargo build -p f3-chaos --bins): {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches('/').to_owned());
        let mut dashboard = Dashboard {
            child,
            base: String::new(),
        };
        dashboard.base =
            base.ok_or_else(|| anyhow::anyhow!("f3-chaos dashboard printed {line:?}"))?;
        Ok(dashboard)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
