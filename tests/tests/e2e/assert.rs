//! End-to-end tests of the assertion engine against a real Prometheus scraping a controllable
//! exporter every second (see `f3_chaos_tests::prometheus`).

use std::time::Duration;

use chrono::Utc;
use f3_chaos::assert::{
    PhaseTimes, PrometheusClient, SloSource, Window, breached, breached_after, check_instant,
    check_range, closing_sample_queries, judge_then, wait_for_closing_sample,
};
use f3_chaos::duration::HumanDuration;
use f3_chaos::model::Verdict;
use f3_chaos::scenario::model::{AbortCondition, Check, Comparison, Hold, ThenStep};
use f3_chaos_tests::prometheus::{Exporter, SCRAPE_INTERVAL, TestPrometheus};

const LATENCY: &str = "test_latency_seconds";

fn check(query: &str, op: Comparison, threshold: f64) -> Check {
    Check {
        query: query.into(),
        op,
        threshold,
        unit: Some("s".into()),
        slo: None,
    }
}

fn then(hold: Hold) -> ThenStep {
    ThenStep {
        name: "Product SLO latency < 250ms".into(),
        owner: "payments".into(),
        check: check(LATENCY, Comparison::Lt, 0.25),
        hold,
        impact: None,
        action: None,
    }
}

fn ms(n: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(n)
}

async fn sleep_ms(n: u64) {
    tokio::time::sleep(Duration::from_millis(n)).await;
}

/// An exporter with `test_latency_seconds = value` and a Prometheus that has already scraped it.
async fn setup(value: f64) -> (Exporter, TestPrometheus) {
    let exporter = Exporter::start().await;
    exporter.set(LATENCY, &[], value);
    let prom = TestPrometheus::start(&[exporter.addr()]).await;
    prom.wait_for_value(LATENCY, value).await;
    (exporter, prom)
}

#[tokio::test]
async fn instant_check_passes_then_fails_with_the_observed_value() {
    let exporter = Exporter::start().await;
    for cloud in ["gcp", "aws", "azure"] {
        exporter.set(LATENCY, &[("cloud", cloud)], 0.12);
    }
    let prom = TestPrometheus::start(&[exporter.addr()]).await;
    prom.wait_until(LATENCY, Duration::from_secs(15), |s| s.len() == 3)
        .await;
    let client = prom.client();
    let c = check(LATENCY, Comparison::Lt, 0.25);

    let j = check_instant(&client, &c, None).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    assert_eq!(j.evidence.series.len(), 3);

    exporter.set(LATENCY, &[("cloud", "aws")], 0.31);
    prom.wait_until(LATENCY, Duration::from_secs(15), |s| {
        s.iter().any(|s| s.point.value == 0.31)
    })
    .await;
    let j = check_instant(&client, &c, None).await;
    assert_eq!(j.verdict, Verdict::Failed);
    let worst = j.evidence.worst.as_ref().expect("a worst value");
    assert_eq!(worst.value, 0.31);
    assert_eq!(worst.labels["cloud"], "aws");
    assert_eq!(
        worst.labels["job"], "test",
        "Prometheus' target labels are kept"
    );
    assert!(
        j.evidence.describe().contains("observed 310 ms"),
        "{}",
        j.evidence.describe()
    );

    // +Inf (e.g. histogram_quantile above the top bucket) fails; NaN-only is inconclusive.
    exporter.set(LATENCY, &[("cloud", "aws")], f64::INFINITY);
    prom.wait_until(LATENCY, Duration::from_secs(15), |s| {
        s.iter().any(|s| s.point.value.is_infinite())
    })
    .await;
    let j = check_instant(&client, &c, None).await;
    assert_eq!(j.verdict, Verdict::Failed);
    assert_eq!(
        j.evidence.worst.expect("a worst value").value,
        f64::INFINITY
    );

    exporter.set("test_ratio", &[], f64::NAN);
    prom.wait_until("test_ratio", Duration::from_secs(15), |s| !s.is_empty())
        .await;
    let j = check_instant(&client, &check("test_ratio", Comparison::Gt, 0.99), None).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(j.evidence.reason.expect("a reason").contains("NaN"));
}

#[tokio::test]
async fn during_fault_is_judged_over_its_own_window() {
    // Bad (0.5) before the fault window, good (0.1) inside it, worse (0.7) after it.
    let (exporter, prom) = setup(0.5).await;
    let client = prom.client();
    let before = Utc::now();
    sleep_ms(2_000).await;
    exporter.set(LATENCY, &[], 0.1);
    let good_from = Utc::now();
    sleep_ms(5_000).await;
    let good_until = Utc::now();
    exporter.set(LATENCY, &[], 0.7);
    prom.wait_for_value(LATENCY, 0.7).await;
    // Let 0.7 be the value at least at one step of the range evaluated below.
    sleep_ms(1_500).await;

    // Margins: a value set at T shows from the first scrape after T (≤ 1 s later).
    let times = PhaseTimes {
        injected_at: good_from + ms(1_500),
        fault_ended_at: good_until - ms(300),
        reverted_at: good_until,
        recovered_at: None,
    };
    let j = judge_then(&client, &then(Hold::DuringFault), &times, SCRAPE_INTERVAL).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    assert!(matches!(j.evidence.window, Window::Range { start, end, .. }
            if start == times.injected_at && end == times.fault_ended_at));
    assert!(j.evidence.series[0].points.len() >= 3);
    assert_eq!(j.evidence.coverage, Some(1.0));

    // The whole span fails: first failure is the early 0.5, worst is the late 0.7.
    let j = check_range(
        &client,
        &then(Hold::DuringFault).check,
        before,
        Utc::now(),
        SCRAPE_INTERVAL,
    )
    .await;
    assert_eq!(j.verdict, Verdict::Failed, "{:?}", j.evidence);
    let first = j.evidence.first_failure.as_ref().expect("a first failure");
    assert_eq!(first.value, 0.5);
    assert!(first.at < good_from + ms(1_000), "{first:?}");
    assert_eq!(j.evidence.worst.as_ref().expect("a worst value").value, 0.7);
    let stored = serde_json::to_string(&j).expect("evidence serialises");
    assert!(stored.contains("\"first_failure\"") && stored.contains("\"points\""));
}

#[tokio::test]
async fn a_closed_window_is_judged_as_soon_as_prometheus_holds_its_closing_sample() {
    // The window closed 2 s ago and Prometheus (1 s scrapes) has samples after it: judging it
    // must not wait out the cap (here a generous 30 s) the way a fixed grace sleep would.
    let (_exporter, prom) = setup(0.1).await;
    let client = prom.client();
    sleep_ms(4_000).await; // data from before the window's end on
    let ended = Utc::now() - ms(2_000);
    let times = PhaseTimes {
        injected_at: ended - ms(5_000),
        fault_ended_at: ended,
        reverted_at: ended,
        recovered_at: None,
    };
    let started = std::time::Instant::now();
    let j = judge_then(&client, &then(Hold::AtEnd), &times, Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    assert!(took < Duration::from_secs(5), "judging took {took:?}");
}

#[tokio::test]
async fn the_wait_for_a_closing_sample_ends_once_it_has_landed_or_at_the_cap() {
    let (exporter, prom) = setup(0.1).await;
    let client = prom.client();
    let latency = check(LATENCY, Comparison::Lt, 0.25);
    let freshest = || async {
        client
            .instant(&format!("min(timestamp({LATENCY}))"), None)
            .await
            .expect("Prometheus answers")[0]
            .point
            .value
    };

    // A window closing in 300 ms: the wait returns once a sample at or after its end is stored.
    let end = Utc::now() + ms(300);
    wait_for_closing_sample(&client, &latency, end, Duration::from_secs(30)).await;
    let end_seconds = end.timestamp_millis() as f64 / 1000.0;
    assert!(
        freshest().await + 0.000_5 >= end_seconds,
        "returned before the closing sample landed"
    );
    assert!(
        Utc::now() < end + ms(5_000),
        "waited long after the sample landed"
    );

    // A target that is down never brings the closing sample: the wait gives up at the cap.
    exporter.set_down(true);
    let end = Utc::now();
    wait_for_closing_sample(&client, &latency, end, Duration::from_secs(2)).await;
    let waited = Utc::now() - end;
    assert!(
        waited >= ms(2_000),
        "gave up after {waited:?}, before the cap"
    );
    assert!(waited < ms(4_000), "waited {waited:?}, past the cap");
}

#[test]
fn the_closing_sample_is_asked_of_every_series_selector_of_a_check() {
    assert_eq!(
        closing_sample_queries(
            r#"histogram_quantile(0.99, sum by (le) (rate(payment_latency_seconds_bucket{cloud="gcp"}[15s] offset 1m))) / on() group_left payment_target"#
        ),
        vec![
            r#"min(timestamp(payment_latency_seconds_bucket{cloud="gcp"}))"#.to_owned(),
            "min(timestamp(payment_target))".to_owned(),
        ]
    );
    assert_eq!(
        closing_sample_queries("rate(up[1m]) / rate(up[5m])"),
        vec!["min(timestamp(up))".to_owned()]
    );
    assert!(closing_sample_queries("vector(1)").is_empty());
}

#[tokio::test]
async fn a_window_prometheus_was_blind_for_is_inconclusive_even_when_the_platform_failed() {
    // Prometheus is frozen (SIGSTOP: no scrapes, as when it restarts) for 6 s of a 12 s window
    // while latency really goes bad. `avg_over_time(…[15s])` carries the good pre-freeze samples
    // across the gap, so every instant has a good value: that must not be a pass.
    let (exporter, prom) = setup(0.1).await;
    let client = prom.client();
    let pid = nix::unistd::Pid::from_raw(prom.pid().expect("running") as i32);
    sleep_ms(3_000).await;
    let start = Utc::now();
    sleep_ms(3_000).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP Prometheus");
    exporter.set(LATENCY, &[], 0.9);
    sleep_ms(6_000).await;
    exporter.set(LATENCY, &[], 0.1);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT Prometheus");
    sleep_ms(3_000).await;
    let end = Utc::now();
    let bridged = check(
        &format!("avg_over_time({LATENCY}[15s])"),
        Comparison::Lt,
        0.25,
    );
    let j = check_range(&client, &bridged, start, end, SCRAPE_INTERVAL).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    let reason = j.evidence.reason.expect("a reason");
    assert!(
        reason.contains(&format!(
            "Prometheus holds no sample of {LATENCY} scraped near"
        )),
        "{reason}"
    );
    let coverage = j.evidence.coverage.expect("a coverage ratio");
    assert!(coverage < 0.7, "{coverage}: the frozen 6 s were counted");
}

#[tokio::test]
async fn recover_within_passes_in_time_and_fails_when_too_late() {
    let (exporter, prom) = setup(0.1).await;
    let client = prom.client();
    exporter.set(LATENCY, &[], 0.9);
    prom.wait_for_value(LATENCY, 0.9).await;
    let reverted_at = Utc::now();
    sleep_ms(2_000).await;
    exporter.set(LATENCY, &[], 0.1);
    let times = PhaseTimes {
        injected_at: reverted_at - ms(5_000),
        fault_ended_at: reverted_at - ms(100),
        reverted_at,
        recovered_at: None,
    };
    let within = |secs| Hold::RecoverWithin {
        within: HumanDuration::from_secs(secs),
    };

    let j = judge_then(&client, &then(within(1)), &times, SCRAPE_INTERVAL).await;
    assert_eq!(j.verdict, Verdict::Failed, "{:?}", j.evidence);
    assert_eq!(j.evidence.recovered_at, None);

    let j = judge_then(&client, &then(within(8)), &times, SCRAPE_INTERVAL).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    let recovered = j.evidence.recovered_at.expect("a recovery instant");
    let took = recovered - reverted_at;
    assert!(
        took >= ms(2_000) && took <= ms(4_000),
        "recovered after {took}"
    );
}

#[tokio::test]
async fn no_data_and_promql_errors_are_never_passed() {
    let (exporter, prom) = setup(0.1).await;
    let client = prom.client();

    let j = check_instant(
        &client,
        &check("metric_that_does_not_exist", Comparison::Lt, 1.0),
        None,
    )
    .await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.evidence
            .reason
            .as_deref()
            .expect("a reason")
            .contains("no series")
    );

    // bad_data: the check is broken ⇒ error, with Prometheus' message.
    let j = check_instant(
        &client,
        &check("rate(test_latency_seconds[5m]", Comparison::Lt, 1.0),
        None,
    )
    .await;
    assert_eq!(j.verdict, Verdict::Error, "{:?}", j.evidence);
    let reason = j.evidence.reason.expect("a reason");
    assert!(
        reason.contains("bad_data") && reason.contains("parse error"),
        "{reason}"
    );

    let j = check_instant(
        &client,
        &check("test_latency_seconds[1m]", Comparison::Lt, 1.0),
        None,
    )
    .await;
    assert_eq!(j.verdict, Verdict::Error);
    assert!(
        j.evidence
            .reason
            .expect("a reason")
            .contains("range vector")
    );

    // An execution error (HTTP 422) is the monitoring side failing ⇒ inconclusive.
    exporter.set("test_a", &[], 1.0);
    exporter.set("test_b", &[], 1.0);
    prom.wait_for_data("test_b").await;
    let dup = r#"label_replace({__name__=~"test_a|test_b"}, "__name__", "same", "", "")"#;
    let j = check_instant(&client, &check(dup, Comparison::Lt, 2.0), None).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    assert!(j.evidence.reason.expect("a reason").contains("execution"));
}

#[tokio::test]
async fn stopped_prometheus_is_inconclusive_not_passed() {
    let (_exporter, mut prom) = setup(0.1).await;
    let client = prom.client();
    let start = Utc::now();
    sleep_ms(2_000).await;
    assert_eq!(
        check_instant(&client, &then(Hold::AtEnd).check, None)
            .await
            .verdict,
        Verdict::Passed
    );

    prom.stop();
    let j = check_instant(&client, &then(Hold::AtEnd).check, None).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    let reason = j.evidence.reason.expect("a reason");
    assert!(reason.contains("unreachable"), "{reason}");

    let times = PhaseTimes {
        injected_at: start,
        fault_ended_at: Utc::now(),
        reverted_at: Utc::now(),
        recovered_at: None,
    };
    let j = judge_then(&client, &then(Hold::DuringFault), &times, SCRAPE_INTERVAL).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);

    let abort = AbortCondition {
        name: "latency".into(),
        check: check(LATENCY, Comparison::Gt, 1.0),
    };
    assert!(breached(&client, &abort).await.is_err());
}

#[tokio::test]
async fn target_down_for_part_of_the_window_is_inconclusive() {
    let (exporter, prom) = setup(0.1).await;
    let client = prom.client();
    let start = Utc::now();
    sleep_ms(2_000).await;
    exporter.set_down(true);
    sleep_ms(5_000).await;
    exporter.set_down(false);
    prom.wait_for_data(LATENCY).await;
    let j = check_range(
        &client,
        &then(Hold::DuringFault).check,
        start,
        Utc::now(),
        SCRAPE_INTERVAL,
    )
    .await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    let coverage = j.evidence.coverage.expect("a coverage ratio");
    assert!(coverage < 0.9 && coverage > 0.0, "{coverage}");
    assert!(
        j.evidence
            .reason
            .expect("a reason")
            .contains("expected evaluation points")
    );
}

#[tokio::test]
async fn abort_condition_breach_is_seen() {
    let exporter = Exporter::start().await;
    exporter.set("test_success_ratio", &[("cloud", "aws")], 0.999);
    exporter.set("test_success_ratio", &[("cloud", "azure")], 0.999);
    let prom = TestPrometheus::start(&[exporter.addr()]).await;
    prom.wait_for_value("test_success_ratio", 0.999).await;
    let client = prom.client();
    let abort = AbortCondition {
        name: "success ratio collapsed".into(),
        check: check("test_success_ratio", Comparison::Lt, 0.9),
    };
    assert_eq!(breached(&client, &abort).await.expect("query works"), None);

    exporter.set("test_success_ratio", &[("cloud", "azure")], 0.5);
    prom.wait_until("test_success_ratio", Duration::from_secs(15), |s| {
        s.iter().any(|s| s.point.value == 0.5)
    })
    .await;
    assert_eq!(
        breached(&client, &abort).await.expect("query works"),
        Some(0.5)
    );
}

#[tokio::test]
async fn an_abort_condition_looks_only_at_samples_after_the_injection() {
    // The previous experiment left latency bad for 15 s; this one's fault goes in as it comes
    // back to good. `avg_over_time(…[15s])` still averages the bad samples right after the
    // injection: that must not abort this fault, while a breach after it must.
    let (exporter, prom) = setup(0.9).await;
    let client = prom.client();
    sleep_ms(3_000).await;
    exporter.set(LATENCY, &[], 0.1);
    prom.wait_for_value(LATENCY, 0.1).await;
    let injected_at = Utc::now();
    let abort = AbortCondition {
        name: "latency average above 250 ms".into(),
        check: check(
            &format!("avg_over_time({LATENCY}[15s])"),
            Comparison::Gt,
            0.25,
        ),
    };
    let min_range = 2 * SCRAPE_INTERVAL;
    assert!(
        breached(&client, &abort)
            .await
            .expect("query works")
            .is_some(),
        "the unclipped condition sees the pre-injection samples"
    );
    assert_eq!(
        breached_after(&client, &abort, injected_at, min_range)
            .await
            .expect("query works"),
        None,
        "too early to judge: fewer than two scrape intervals since the injection"
    );
    sleep_ms(3_000).await;
    assert_eq!(
        breached_after(&client, &abort, injected_at, min_range)
            .await
            .expect("query works"),
        None,
        "only the good post-injection samples count"
    );

    exporter.set(LATENCY, &[], 0.9);
    prom.wait_for_value(LATENCY, 0.9).await;
    sleep_ms(2_000).await;
    let observed = breached_after(&client, &abort, injected_at, min_range)
        .await
        .expect("query works");
    assert!(
        observed.is_some_and(|v| v > 0.25),
        "a breach after the injection aborts: {observed:?}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_as_inconclusive() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let client = PrometheusClient::new(&format!("http://{addr}"), Duration::from_millis(300))
        .expect("valid URL");
    let started = std::time::Instant::now();
    let j = check_instant(&client, &check(LATENCY, Comparison::Lt, 1.0), None).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.evidence
            .reason
            .expect("a reason")
            .contains("did not answer within")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(client.instant(LATENCY, None).await.is_err());
    hold.abort();
}
