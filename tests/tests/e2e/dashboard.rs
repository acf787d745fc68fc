//! End-to-end tests of the dashboard: a store seeded through `f3_chaos::store::Store`, the real
//! `f3-chaos dashboard --listen 127.0.0.1:0`, every page fetched over HTTP and its content checked.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use chrono::{Duration, NaiveDate, Utc};
use f3_chaos::model::{Phase, RunOutcome, Verdict};
use f3_chaos::store::{NewRun, StepRecord, Store};
use f3_chaos_tests::{binary, repo_root};
use serde_json::json;
use uuid::Uuid;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_the_seeded_night_run_scenario_and_team() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f3-chaos.db").display());
    let store = Store::open(&url).await.unwrap();
    // Nights relative to today, so that every "last N nights" the pages count holds them.
    let night = Utc::now().date_naive() - Duration::days(2);
    let next_night = night.succ_opt().unwrap();
    let (n1, n2) = (night.to_string(), next_night.to_string());
    let start = Utc::now() - Duration::hours(6);
    let points: Vec<_> = (0..30)
        .map(|i| json!({"at": start + Duration::seconds(10 * i), "value": if i > 12 { 0.31 } else { 0.12 }}))
        .collect();
    let id = failed_latency_run(&store, night, start, 0.31, points, 0.8).await;

    let mut child = Command::new(binary("f3-chaos"))
        .args(["dashboard", "--listen", "127.0.0.1:0"])
        .current_dir(repo_root())
        .env("F3_CHAOS_DATABASE_URL", &url)
        .env("F3_CHAOS_CONFIG", repo_root().join("config/local"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run f3-chaos (build it first: cargo build -p f3-chaos --bins)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Server(child);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(&url).await.unwrap();
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.text().await.unwrap()
        }
    };
    let page = get(&format!("/night/{n1}")).await;
    assert!(
        page.contains(&format!("Night {n1}")) && page.contains("uat-beta"),
        "{page}"
    );
    assert!(
        page.contains("gcp-failover-validation") && page.contains("o-failed"),
        "{page}"
    );
    // The night opens on its failed Then step: owner by display name, the fault, observed vs
    // needed, its place in the step's history, where the owner's notification stands.
    let failures = section(&page, "failures");
    for expected in [
        "<a href=\"/run/ID\">Assertion: Product SLO latency &lt; 250ms</a>",
        "<td class=\"owner\"><a href=\"/team/payments\">Payments team</a></td>",
        "<td class=\"fault\">no fault injected</td>",
        "<td class=\"observed\">observed 310 ms, needs &lt; 250 ms</td>",
        "<span class=\"standing s-new\">new: first failing night</span>",
        "<td class=\"notified\">Payments team: no notification queued</td>",
    ] {
        let expected = expected.replace("ID", &id.to_string());
        assert!(failures.contains(&expected), "{expected} not in {failures}");
    }
    // The scenario × stack matrix links the pair's run.
    assert!(
        section(&page, "matrix").contains(&format!(
            "<a class=\"pill o-failed\" href=\"/run/{id}\">failed</a>"
        )),
        "{page}"
    );
    // Every page links the lists.
    for list in ["/nights", "/scenarios", "/teams", "/stacks"] {
        assert!(page.contains(&format!("<a href=\"{list}\">")), "{list}");
    }
    let page = get(&format!("/run/{id}")).await;
    assert!(
        page.contains("Assertion: Product SLO latency &lt; 250ms") && page.contains("payments"),
        "{page}"
    );
    assert!(
        page.contains("<svg")
            && page.contains(">needs &lt; 250 ms</text>")
            && page.contains("<dd>80 % pass rate (When and Then steps)</dd>"),
        "{page}"
    );
    // Observed against the threshold, with the unit and the comparison, as in the terminal;
    // the owner by display name; durations for people.
    assert!(
        page.contains("<td>observed 310 ms, needs &lt; 250 ms</td>"),
        "{page}"
    );
    // The scenario card of reviews: ✓/✗ per step.
    assert!(
        page.contains("<span class=\"pill o-failed\">✗ failed</span>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"/team/payments\">Payments team</a>"),
        "{page}"
    );
    assert!(
        page.contains("<dd>6m</dd>") && page.contains("<td>5m</td>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("<a href=\"/night/{n1}\">Night {n1}</a>")),
        "{page}"
    );
    // The failed step's owner: being notified, then notified (every route delivered).
    let team_row = store
        .outbox_insert(
            id,
            "payments",
            f3_chaos::model::NotificationKind::Failures,
            &json!({}),
            start + Duration::minutes(6),
        )
        .await
        .unwrap();
    let page = get(&format!("/run/{id}")).await;
    assert!(
        page.contains("<div class=\"message notified\">Notifying Payments team…</div>"),
        "{page}"
    );
    let routes = store
        .outbox_fan_out(
            team_row,
            &[json!({}), json!({})],
            start + Duration::minutes(6),
        )
        .await
        .unwrap();
    let delivered = start + Duration::minutes(7);
    for route in &routes {
        store.outbox_delivered(*route, delivered).await.unwrap();
    }
    let page = get(&format!("/run/{id}")).await;
    let at = delivered
        .with_timezone(&chrono_tz::Europe::London)
        .format("%H:%M");
    assert!(
        page.contains(&format!(
            "<div class=\"message notified\">Payments team notified {at}</div>"
        )),
        "{page}"
    );
    let night_page = get(&format!("/night/{n1}")).await;
    assert!(
        section(&night_page, "failures").contains(&format!(
            "<td class=\"notified\">Payments team notified {at}</td>"
        )),
        "{night_page}"
    );
    // An ad-hoc run belongs to no night: no "Night none" link.
    let ad_hoc = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id: ad_hoc,
            scenario: "gcp-failover-validation".into(),
            stack: "local".into(),
            trigger: "cli".into(),
            started_by: "alice".into(),
            started_at: start,
            pid: 1,
            host: "laptop".into(),
            scenario_digest: None,
            night: None,
        })
        .await
        .unwrap();
    // Its Then step on the sandbox stack links its query over its window in that stack's
    // Prometheus (config/local: http://127.0.0.1:19090).
    let query = "histogram_quantile(0.99, sum by (le) (rate(payment_latency_seconds_bucket[1m])))";
    store
        .upsert_step(
            ad_hoc,
            &StepRecord {
                index: 0,
                phase: Phase::Then,
                name: "Assertion: Product SLO latency < 250ms".into(),
                owner: Some("payments".into()),
                verdict: Some(Verdict::Passed),
                started_at: start,
                ended_at: Some(start + Duration::minutes(5)),
                observed: Some(0.2),
                threshold: Some(0.25),
                evidence: Some(json!({
                    "query": query, "op": "<", "unit": "s", "threshold": 0.25,
                    "window": {"kind": "range", "start": "2026-11-20T01:00:00Z",
                               "end": "2026-11-20T01:05:00Z", "step_seconds": 15.0},
                    "series": [{"labels": {}, "points": [{"at": "2026-11-20T01:00:00Z", "value": 0.2}]}],
                })),
                message: None,
            },
        )
        .await
        .unwrap();
    let page = get(&format!("/run/{ad_hoc}")).await;
    assert!(
        page.contains("Ad-hoc run (started by cli") && !page.to_lowercase().contains("night none"),
        "{page}"
    );
    let href = page
        .split("<a class=\"prometheus-link\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no Prometheus link in {page}"));
    // The attribute as a browser reads it (minijinja escapes &, /, quotes and angle brackets).
    let href = [
        ("&#x2f;", "/"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(href.to_owned(), |h, (entity, c)| h.replace(entity, c));
    let link = reqwest::Url::parse(&href).unwrap();
    assert_eq!(
        (link.host_str(), link.port(), link.path()),
        (Some("127.0.0.1"), Some(19090), "/graph")
    );
    let pairs: Vec<(String, String)> = link.query_pairs().into_owned().collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("g0.expr", query),
            ("g0.tab", "0"),
            // 01:00–01:05 with a minute either side.
            ("g0.range_input", "420s"),
            ("g0.end_input", "2026-11-20 01:06:00"),
            ("g0.step_input", "15"),
        ]
    );
    let page = get("/scenario/gcp-failover-validation").await;
    assert!(
        page.contains("0 % of 1") && page.contains("Then steps"),
        "{page}"
    );
    let page = get("/team/payments").await;
    assert!(
        page.contains("<h1>Payments team")
            && page.contains("Assertion: Product SLO latency &lt; 250ms")
            && page.contains("<td>observed 310 ms, needs &lt; 250 ms</td>"),
        "{page}"
    );
    // A mistyped scenario or team is a 404 that names the likely one.
    for (path, guess) in [
        (
            "/scenario/gcp-failover-validaton",
            "Did you mean gcp-failover-validation?",
        ),
        ("/team/paymnets", "Did you mean payments?"),
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains(guess), "{path}: {page}");
    }
    let css = get("/assets/dashboard.css").await;
    assert!(css.contains(".gantt"));
    let page = get("/").await; // redirects to the latest night
    assert!(page.contains(&format!("Night {n1}")), "{page}");

    // The next night the same step fails again, after a cloud loss: still failing, since the
    // first night, and the fault is named.
    let next_start = start + Duration::hours(1);
    let next = failed_latency_run(&store, next_night, next_start, 0.29, Vec::new(), 0.0).await;
    store
        .ledger_insert(&f3_chaos::store::LedgerEntry {
            id: Uuid::now_v7(),
            run_id: next,
            stack: "uat-beta".into(),
            driver: "chaos-mesh".into(),
            step_name: "GCP cloud connectivity is completely lost".into(),
            spec: json!({"kind": "NetworkChaos"}),
            handle: None,
            state: f3_chaos::store::LedgerState::Reverted,
            created_at: next_start,
            expires_at: next_start + Duration::minutes(10),
            updated_at: next_start + Duration::minutes(5),
        })
        .await
        .unwrap();
    let failures = section(&get(&format!("/night/{n2}")).await, "failures");
    for expected in [
        "<td class=\"fault\">GCP cloud connectivity is completely lost</td>".to_owned(),
        "<td class=\"observed\">observed 290 ms, needs &lt; 250 ms</td>".to_owned(),
        format!("<span class=\"standing s-failing\">failing since {n1} (2 runs)</span>"),
    ] {
        assert!(failures.contains(&expected), "{expected} not in {failures}");
    }

    // The lists the header links to.
    let nights = section(&get("/nights").await, "nights");
    assert!(
        nights.contains(&format!(
            "<a href=\"/night/{n2}\">{}</a>",
            next_night.format("%a %Y-%m-%d")
        )) && nights.contains(&format!(
            "<a href=\"/night/{n1}\">{}</a>",
            night.format("%a %Y-%m-%d")
        )),
        "{nights}"
    );
    assert!(
        nights.find(&n2) < nights.find(&n1),
        "newest first: {nights}"
    );
    let scenarios = section(&get("/scenarios").await, "scenarios");
    assert!(
        scenarios.contains(&format!(
            "<a class=\"pill o-failed\" href=\"/run/{next}\">failed</a> uat-beta"
        )) && scenarios.contains("0 % pass rate (0 of 2)"),
        "the last run, and the week's pass rate of its finished runs (the ad-hoc run still runs): {scenarios}"
    );
    let teams = section(&get("/teams").await, "teams");
    assert!(
        teams.contains("<a href=\"/team/payments\">Payments team</a>")
            && teams.contains("✗ 2</span> in 2 runs"),
        "{teams}"
    );
    // A run holding a stack's lease shows as who holds it now.
    store
        .acquire_lease(
            "uat-beta",
            &f3_chaos::store::LeaseHolder {
                run_id: next,
                scenario: "gcp-failover-validation".into(),
                holder: "daemon-1".into(),
            },
            std::time::Duration::from_secs(600),
            Utc::now(),
        )
        .await
        .unwrap()
        .expect("the lease is free");
    let stacks = get("/stacks").await;
    assert!(
        stacks.contains(&format!(
            "<td class=\"lease\"><a href=\"/run/{next}\">gcp-failover-validation</a> by daemon-1,"
        )),
        "{stacks}"
    );
    assert!(
        stacks.contains("<tr data-stack=\"local\">") && stacks.contains("local sandbox"),
        "the config's stack: {stacks}"
    );
    assert!(
        stacks.contains("<tr data-stack=\"uat-beta\">"),
        "a stack of the history: {stacks}"
    );

    // The stack's page: who holds it, its scenario's rates over the nights, its runs.
    let stack = get("/stack/uat-beta").await;
    assert!(
        section(&stack, "stack-now").contains(&format!(
            "<dd class=\"lease\"><a href=\"/run/{next}\">gcp-failover-validation</a> by daemon-1,"
        )),
        "{stack}"
    );
    assert!(
        stack.contains(
            "<tr data-scenario=\"gcp-failover-validation\"><td><a href=\"/scenario/gcp-failover-validation\">gcp-failover-validation</a></td><td>0 % of 2</td>"
        ),
        "both failed runs of the last 7 nights: {stack}"
    );
    assert!(
        stack.contains(&format!(
            "<a class=\"pill o-failed\" href=\"/run/{next}\">failed</a>"
        )),
        "{stack}"
    );
    let response = reqwest::get(format!("{base}/stack/locl")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let page = response.text().await.unwrap();
    assert!(page.contains("Did you mean local?"), "{page}");

    // Both failing nights are one open finding of Payments; a ticket attached to it shows.
    let open = store
        .findings(Some(f3_chaos::store::FindingStatus::Open))
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    store
        .annotate_finding(
            open[0].id,
            &f3_chaos::store::FindingNote {
                ticket_url: Some("https://jira.example.com/browse/PAY-7".into()),
                note: Some("Gateway TLS handshake".into()),
            },
            "alice",
            Utc::now(),
        )
        .await
        .unwrap();
    let page = get("/findings").await;
    let since = format!("since {n1}, last {n2}");
    for expected in [
        "<section class=\"team-findings\" data-team=\"payments\">",
        &since,
        "<a class=\"ticket\" href=\"https:&#x2f;&#x2f;jira.example.com&#x2f;browse&#x2f;PAY-7\">",
        "<span class=\"note\">Gateway TLS handshake</span>",
        "(alice)",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let team = section(&get("/team/payments").await, "team-findings");
    assert!(team.contains(&since) && team.contains("PAY-7"), "{team}");
}

/// A finished daemon run of `gcp-failover-validation` on `uat-beta` for `night`, started at
/// `start`, whose one Then step (latency < 250 ms, owner `payments`) failed at `observed`
/// seconds with evidence `points`; its pass rate is `pass_rate`.
async fn failed_latency_run(
    store: &Store,
    night: NaiveDate,
    start: chrono::DateTime<Utc>,
    observed: f64,
    points: Vec<serde_json::Value>,
    pass_rate: f64,
) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: "gcp-failover-validation".into(),
            stack: "uat-beta".into(),
            trigger: "daemon".into(),
            started_by: "daemon".into(),
            started_at: start,
            pid: 1,
            host: "ci".into(),
            scenario_digest: None,
            night: Some(night),
        })
        .await
        .unwrap();
    store
        .upsert_step(
            id,
            &StepRecord {
                index: 0,
                phase: Phase::Then,
                name: "Assertion: Product SLO latency < 250ms".into(),
                owner: Some("payments".into()),
                verdict: Some(Verdict::Failed),
                started_at: start,
                ended_at: Some(start + Duration::minutes(5)),
                observed: Some(observed),
                threshold: Some(0.25),
                evidence: Some(
                    json!({"series": [{"labels": {}, "points": points}], "op": "<", "unit": "s"}),
                ),
                message: None,
            },
        )
        .await
        .unwrap();
    store
        .finish_run(
            id,
            RunOutcome::Failed,
            start + Duration::minutes(6),
            &json!({"pass_rate": pass_rate}),
        )
        .await
        .unwrap();
    store
        .record_findings(id, 3, start + Duration::minutes(6))
        .await
        .unwrap();
    id
}

/// The `<section id="…">` of `page`, up to its end.
fn section(page: &str, id: &str) -> String {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id} in {page}"));
    let rest = &page[start..];
    rest[..rest.find("</section>").unwrap_or(rest.len())].to_owned()
}
