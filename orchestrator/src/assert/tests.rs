//! Unit tests of the engine against [`FakeSource`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::duration::HumanDuration;
use crate::model::Verdict;
use crate::scenario::model::{AbortCondition, Check, Comparison, Hold, ThenStep};

const Q: &str = "latency_seconds";
const SEC: Duration = Duration::from_secs(1);

fn check(op: Comparison, threshold: f64) -> Check {
    Check {
        query: Q.into(),
        op,
        threshold,
        unit: Some("s".into()),
        slo: None,
    }
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A start instant well in the past (whole second), so windows are closed.
fn t0() -> DateTime<Utc> {
    let now = Utc::now() - secs(600);
    DateTime::from_timestamp(now.timestamp(), 0).unwrap()
}

/// One sample per second for `values.len()` seconds from `start`.
fn series(src: &FakeSource, labels: &[(&str, &str)], start: DateTime<Utc>, values: &[f64]) {
    for (i, v) in values.iter().enumerate() {
        src.push(Q, labels, start + secs(i as i64), *v);
    }
}

#[tokio::test]
async fn instant_passes_and_fails_with_worst_value() {
    let src = FakeSource::new();
    let t = t0();
    src.push(Q, &[("cloud", "gcp")], t, 0.12);
    src.push(Q, &[("cloud", "aws")], t, 0.30);
    src.push(Q, &[("cloud", "azure")], t, 0.40);

    let j = check_instant(&src, &check(Comparison::Lt, 0.5), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Passed);
    assert_eq!(j.evidence.worst.as_ref().unwrap().value, 0.40);
    assert_eq!(j.evidence.series.len(), 3);

    let j = check_instant(&src, &check(Comparison::Lt, 0.25), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Failed);
    let worst = j.evidence.worst.as_ref().unwrap();
    assert_eq!(
        (worst.value, worst.labels["cloud"].as_str()),
        (0.40, "azure")
    );
    assert_eq!(j.evidence.series.len(), 3);
    assert!(
        j.evidence.describe().contains("observed 400 ms"),
        "{}",
        j.evidence.describe()
    );
    assert_eq!(j.evidence.window, Window::Instant { at: t });
}

#[tokio::test]
async fn instant_without_data_is_inconclusive_never_passed() {
    let src = FakeSource::new();
    let t = t0();
    let j = check_instant(&src, &check(Comparison::Lt, 0.25), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(j.evidence.reason.as_deref().unwrap().contains("no series"));

    src.push(Q, &[("cloud", "gcp")], t, f64::NAN);
    let j = check_instant(&src, &check(Comparison::Lt, 0.25), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(j.evidence.reason.as_deref().unwrap().contains("NaN"));

    // A NaN series next to a good one is ignored (no traffic in that series).
    src.push(Q, &[("cloud", "aws")], t, 0.1);
    let j = check_instant(&src, &check(Comparison::Lt, 0.25), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Passed);
}

#[tokio::test]
async fn infinity_is_a_value_and_fails_an_upper_bound() {
    let src = FakeSource::new();
    let t = t0();
    src.push(Q, &[], t, f64::INFINITY);
    let j = check_instant(&src, &check(Comparison::Lt, 0.25), Some(t)).await;
    assert_eq!(j.verdict, Verdict::Failed);
    assert_eq!(j.evidence.worst.unwrap().value, f64::INFINITY);
}

#[tokio::test]
async fn source_failures_map_to_inconclusive_or_error() {
    let src = FakeSource::new();
    src.push(Q, &[], t0(), 0.1);
    let c = check(Comparison::Lt, 0.25);
    for (failure, verdict) in [
        (FakeFailure::Unreachable, Verdict::Inconclusive),
        (FakeFailure::Timeout, Verdict::Inconclusive),
        (
            FakeFailure::Api {
                error_type: "execution".into(),
                message: "boom".into(),
            },
            Verdict::Inconclusive,
        ),
        (
            FakeFailure::Api {
                error_type: "bad_data".into(),
                message: "parse error".into(),
            },
            Verdict::Error,
        ),
    ] {
        src.fail_with(Some(failure.clone()));
        let j = check_instant(&src, &c, Some(t0())).await;
        assert_eq!(j.verdict, verdict, "{failure:?}");
        assert!(j.evidence.reason.is_some());
        let j = check_range(&src, &c, t0(), t0() + secs(10), SEC).await;
        assert_eq!(j.verdict, verdict, "{failure:?}");
    }
    src.fail_with(Some(FakeFailure::Api {
        error_type: "bad_data".into(),
        message: "parse error at 1:5".into(),
    }));
    let j = check_instant(&src, &c, None).await;
    assert!(j.evidence.reason.unwrap().contains("parse error at 1:5"));
}

#[tokio::test]
async fn range_judges_only_the_window() {
    let src = FakeSource::new();
    let t = t0();
    // 0–9 s bad, 10–39 s good, 40–49 s bad.
    let mut values = vec![0.9; 10];
    values.extend(vec![0.1; 30]);
    values.extend(vec![0.9; 10]);
    series(&src, &[], t, &values);
    let c = check(Comparison::Lt, 0.25);

    let j = check_range(&src, &c, t + secs(10), t + secs(39), SEC).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence.reason);
    assert_eq!(j.evidence.coverage, Some(1.0));
    assert_eq!(j.evidence.series[0].points.len(), 30);

    let j = check_range(&src, &c, t + secs(5), t + secs(44), SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);
    assert_eq!(j.evidence.first_failure.as_ref().unwrap().at, t + secs(5));
    assert_eq!(j.evidence.last_failure.as_ref().unwrap().at, t + secs(44));
    assert_eq!(j.evidence.worst.as_ref().unwrap().value, 0.9);
}

#[tokio::test]
async fn range_with_gaps_is_inconclusive_but_a_seen_breach_still_fails() {
    let src = FakeSource::new();
    let t = t0();
    series(&src, &[], t, &[0.1; 20]);
    let c = check(Comparison::Lt, 0.25);
    // The window runs 10 minutes past the data; after the 5-minute lookback nothing is returned.
    let j = check_range(&src, &c, t, t + secs(600), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(j.evidence.coverage.unwrap() < MIN_COVERAGE);
    assert!(
        j.evidence
            .reason
            .unwrap()
            .contains("expected evaluation points")
    );

    src.push(Q, &[], t + secs(20), 0.5);
    let j = check_range(&src, &c, t, t + secs(600), SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);
}

#[tokio::test]
async fn a_gap_in_the_scrapes_is_not_bridged_by_old_samples() {
    // Samples every second except a 10 s gap, which the lookback (like a `rate(…[15s])`) fills
    // with the last value before it: those instants are judged on nothing, and the window is
    // inconclusive, naming the gap.
    let src = FakeSource::new();
    let t = t0();
    series(&src, &[], t, &[0.1; 10]);
    series(&src, &[], t + secs(20), &[0.1; 10]);
    let c = check(Comparison::Lt, 0.25);
    let j = check_range(&src, &c, t, t + secs(29), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    // Instants t+13 … t+19 have a newest sample older than 3 steps: 23 of 30 are judged.
    assert_eq!(j.evidence.coverage, Some(23.0 / 30.0));
    let reason = j.evidence.reason.expect("a reason");
    let gap_from = (t + secs(13)).format("%H:%M:%S%.3f UTC").to_string();
    let gap_to = (t + secs(19)).format("%H:%M:%S%.3f UTC").to_string();
    assert!(
        reason.contains(&format!(
            "Prometheus holds no sample of {Q} scraped near {gap_from} to {gap_to} (7s of the window)"
        )),
        "{reason}"
    );

    // Within three steps the samples count: a 3 s gap leaves every instant judged.
    let src = FakeSource::new();
    series(&src, &[], t, &[0.1; 10]);
    series(&src, &[], t + secs(13), &[0.1; 10]);
    let j = check_range(&src, &c, t, t + secs(22), SEC).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    assert_eq!(j.evidence.coverage, Some(1.0));
}

#[tokio::test]
async fn a_recovery_seen_only_through_old_samples_is_not_a_recovery() {
    // Scrapes stop 5 s before the recovery window and never resume: the lookback would show the
    // last healthy value at every instant; nothing is known, so nothing passes.
    let src = FakeSource::new();
    let t = t0();
    series(&src, &[], t - secs(10), &[0.1; 10]);
    let c = check(Comparison::Lt, 0.25);
    let j = check_recovery(&src, &c, t + secs(5), t + secs(20), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    assert!(
        j.evidence
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("Prometheus holds no sample of")),
        "{:?}",
        j.evidence.reason
    );
}

#[tokio::test]
async fn an_at_end_value_carried_from_old_samples_is_inconclusive() {
    // The last scrape was 10 s before the fault's end: the lookback still answers 0.1 there.
    let src = FakeSource::new();
    let t = t0();
    series(&src, &[], t, &[0.1; 5]);
    let end = t + secs(14);
    let times = PhaseTimes {
        injected_at: t,
        fault_ended_at: end,
        reverted_at: end,
        recovered_at: Some(end),
    };
    for hold in [Hold::AtEnd, Hold::AfterRecovery] {
        let j = judge_then(&src, &then(hold, 0.25), &times, SEC).await;
        assert_eq!(
            j.verdict,
            Verdict::Inconclusive,
            "{hold:?}: {:?}",
            j.evidence
        );
        let reason = j.evidence.reason.expect("a reason");
        let newest = (t + secs(4)).format("%H:%M:%S%.3f UTC").to_string();
        assert!(
            reason.contains(&format!("Prometheus holds no sample of {Q} scraped near"))
                && reason.contains(&format!("the newest is from {newest}")),
            "{reason}"
        );
    }
    // Samples up to the end: judged on them.
    series(&src, &[], t + secs(5), &[0.1; 10]);
    let j = judge_then(&src, &then(Hold::AtEnd, 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
}

#[tokio::test]
async fn range_step_is_widened_for_long_windows() {
    let src = FakeSource::new();
    let t = t0() - secs(86_400);
    let j = check_range(&src, &check(Comparison::Lt, 1.0), t, t + secs(86_400), SEC).await;
    let Window::Range { step_seconds, .. } = j.evidence.window else {
        panic!("range window")
    };
    assert!(step_seconds > 8.0, "{step_seconds}");
}

#[tokio::test]
async fn recovery_within_the_bound_passes_and_too_late_fails() {
    let src = FakeSource::new();
    let t = t0();
    // Bad for 8 s after the revert, then good.
    let mut values = vec![0.9; 8];
    values.extend(vec![0.1; 30]);
    series(&src, &[], t, &values);
    let c = check(Comparison::Lt, 0.25);

    let j = check_recovery(&src, &c, t, t + secs(20), SEC).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence.reason);
    assert_eq!(j.evidence.recovered_at, Some(t + secs(8)));
    assert_eq!(j.evidence.last_failure.as_ref().unwrap().at, t + secs(7));

    let j = check_recovery(&src, &c, t, t + secs(5), SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);
    assert_eq!(j.evidence.recovered_at, None);
    assert_eq!(j.evidence.worst.unwrap().value, 0.9);
}

#[tokio::test]
async fn recovery_that_relapses_fails_and_no_data_is_inconclusive() {
    let src = FakeSource::new();
    let t = t0();
    let mut values = vec![0.1; 10];
    values.extend(vec![0.9; 3]);
    series(&src, &[], t, &values);
    let c = check(Comparison::Lt, 0.25);
    let j = check_recovery(&src, &c, t, t + secs(12), SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);

    let empty = FakeSource::new();
    let j = check_recovery(&empty, &c, t, t + secs(12), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive);

    // Recovered, then the data stops: not enough evidence that it stayed recovered.
    let gap = FakeSource::new();
    series(&gap, &[], t, &[0.9, 0.9, 0.1]);
    let j = check_recovery(&gap, &c, t, t + secs(400), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence.reason);
}

fn then(hold: Hold, threshold: f64) -> ThenStep {
    ThenStep {
        name: "latency".into(),
        owner: "payments".into(),
        check: check(Comparison::Lt, threshold),
        hold,
        impact: None,
        action: None,
    }
}

#[tokio::test]
async fn judge_then_picks_the_window_from_the_hold() {
    let src = FakeSource::new();
    let t = t0();
    // Before: good 0–9; during fault 10–29: 0.2; at end (30) and until 34: 0.5; from 35: good.
    let mut values = vec![0.1; 10];
    values.extend(vec![0.2; 20]);
    values.extend(vec![0.5; 5]);
    values.extend(vec![0.1; 30]);
    series(&src, &[], t, &values);
    let times = PhaseTimes {
        injected_at: t + secs(10),
        fault_ended_at: t + secs(29),
        reverted_at: t + secs(30),
        recovered_at: Some(t + secs(40)),
    };

    let j = judge_then(&src, &then(Hold::DuringFault, 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
    assert!(
        matches!(j.evidence.window, Window::Range { start, end, .. } if start == t + secs(10) && end == t + secs(29))
    );
    let j = judge_then(&src, &then(Hold::DuringFault, 0.15), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);

    let j = judge_then(&src, &then(Hold::AtEnd, 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Passed);

    let within = |s| Hold::RecoverWithin {
        within: HumanDuration::from_secs(s),
    };
    let j = judge_then(&src, &then(within(10), 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Passed);
    assert_eq!(j.evidence.recovered_at, Some(t + secs(35)));
    let j = judge_then(&src, &then(within(3), 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);

    let j = judge_then(&src, &then(Hold::AfterRecovery, 0.25), &times, SEC).await;
    assert_eq!(j.verdict, Verdict::Passed);
    assert_eq!(j.evidence.window, Window::Instant { at: t + secs(40) });
}

#[tokio::test]
async fn wait_until_holds_returns_early_or_at_the_deadline() {
    let src = FakeSource::new();
    let c = check(Comparison::Lt, 0.25);
    src.push(Q, &[], Utc::now() - secs(1), 0.9);
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_millis(300);
    let j = wait_until_holds(&src, &c, deadline, Duration::from_millis(50), SEC).await;
    assert_eq!(j.verdict, Verdict::Failed);
    assert!(j.evidence.reason.unwrap().contains("did not hold within"));
    assert!(started.elapsed() >= Duration::from_millis(250));

    src.push(Q, &[], Utc::now(), 0.1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let j = wait_until_holds(&src, &c, deadline, Duration::from_millis(50), SEC).await;
    assert_eq!(j.verdict, Verdict::Passed);
}

#[tokio::test]
async fn a_steady_state_on_samples_prometheus_stopped_scraping_does_not_hold() {
    // Prometheus froze 20 s ago with a healthy value: its answer now is that old sample.
    let src = FakeSource::new();
    let c = check(Comparison::Lt, 0.25);
    src.push(Q, &[], Utc::now() - secs(20), 0.1);
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    let j = wait_until_holds(&src, &c, deadline, Duration::from_millis(50), SEC).await;
    assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence.reason);
    let reason = j.evidence.reason.unwrap_or_default();
    assert!(reason.contains("no sample of"), "{reason}");

    // Scraping again: the same value, now fresh, holds.
    src.push(Q, &[], Utc::now(), 0.1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let j = wait_until_holds(&src, &c, deadline, Duration::from_millis(50), SEC).await;
    assert_eq!(j.verdict, Verdict::Passed);
}

#[tokio::test]
async fn abort_condition_reports_the_most_extreme_breach() {
    let src = FakeSource::new();
    let now = Utc::now() - secs(1);
    src.push(Q, &[("cloud", "gcp")], now, 0.80);
    src.push(Q, &[("cloud", "aws")], now, 0.50);
    src.push(Q, &[("cloud", "azure")], now, 0.99);
    let abort = |threshold| AbortCondition {
        name: "success collapsed".into(),
        check: check(Comparison::Lt, threshold),
    };
    assert_eq!(breached(&src, &abort(0.9)).await.unwrap(), Some(0.50));
    assert_eq!(breached(&src, &abort(0.2)).await.unwrap(), None);
    src.fail_with(Some(FakeFailure::Unreachable));
    assert!(breached(&src, &abort(0.9)).await.is_err());
}

#[test]
fn evidence_and_verdict_round_trip_through_json() {
    assert_eq!(
        serde_json::to_string(&Verdict::Inconclusive).unwrap(),
        "\"inconclusive\""
    );
    assert_eq!(Verdict::Passed.to_string(), "passed");
    let mut e = Evidence::new(&check(Comparison::Lt, 0.25), Window::Instant { at: t0() });
    e.worst = Some(Observation {
        at: t0(),
        value: f64::INFINITY,
        labels: Default::default(),
    });
    e.coverage = Some(0.5);
    let j = Judgement {
        verdict: Verdict::Failed,
        evidence: e,
    };
    let json = serde_json::to_string(&j).unwrap();
    assert!(json.contains("\"+Inf\""), "{json}");
    let back: Judgement = serde_json::from_str(&json).unwrap();
    assert_eq!(back, j);
}

/// A during-fault step on `sum(rate(payments_total[15s]))`-like data: `RATE` is what the check
/// reads, `payments_total` its series (scraped every second, so every instant is fresh).
mod samples_inside_the_window {
    use super::*;
    use crate::assert::clip_ranges;

    const SELECTOR: &str = "payments_total";
    const RATE: &str = "sum(rate(payments_total[15s]))";

    fn source(t: DateTime<Utc>, seconds: i64) -> FakeSource {
        let src = FakeSource::scraped_every(SEC);
        for i in 0..=seconds {
            src.push(SELECTOR, &[], t + secs(i), i as f64);
        }
        src
    }

    fn throughput_step() -> ThenStep {
        ThenStep {
            name: "throughput".into(),
            owner: "sre-chaos".into(),
            check: Check {
                query: RATE.into(),
                op: Comparison::Gt,
                threshold: 250.0,
                unit: Some("tps".into()),
                slo: None,
            },
            hold: Hold::DuringFault,
            impact: None,
            action: None,
        }
    }

    fn times(injected_at: DateTime<Utc>, fault_ended_at: DateTime<Utc>) -> PhaseTimes {
        PhaseTimes {
            injected_at,
            fault_ended_at,
            reverted_at: fault_ended_at,
            recovered_at: None,
        }
    }

    #[tokio::test]
    async fn a_window_shorter_than_the_range_is_judged_on_the_fault_samples_alone() {
        // The run aborted 2 s after injection: the 15 s rate still shows the pre-fault 300 tps,
        // the fault's own 2 s show 200 tps.
        let t = t0();
        let src = source(t, 40);
        let (injected, ended) = (t + secs(30), t + secs(32));
        for i in 30..=32 {
            src.push(RATE, &[], t + secs(i), 300.0);
        }
        let (cut, _) = clip_ranges(RATE, Duration::from_secs(2)).expect("a range to cut");
        src.push(&cut, &[], ended, 200.0);
        let j = judge_then(&src, &throughput_step(), &times(injected, ended), SEC).await;
        assert_eq!(j.verdict, Verdict::Failed, "{:?}", j.evidence);
        let reason = j.evidence.reason.unwrap_or_default();
        assert!(
            reason.contains("the window (2s) is shorter than the check's 15s range")
                && reason.contains(&cut),
            "{reason}"
        );

        // Nothing computable from the fault's samples alone: inconclusive, not passed.
        let src = source(t, 40);
        for i in 30..=32 {
            src.push(RATE, &[], t + secs(i), 300.0);
        }
        let j = judge_then(&src, &throughput_step(), &times(injected, ended), SEC).await;
        assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
    }

    #[tokio::test]
    async fn a_longer_window_passes_only_on_the_points_past_the_range() {
        let t = t0();
        let (injected, ended) = (t + secs(10), t + secs(40));
        // Every point passes, and those from injection + 15 s on are there: passed, over the
        // whole window.
        let src = source(t, 50);
        for i in 10..=40 {
            src.push(RATE, &[], t + secs(i), 300.0);
        }
        let j = judge_then(&src, &throughput_step(), &times(injected, ended), SEC).await;
        assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.evidence);
        assert!(
            matches!(j.evidence.window, Window::Range { start, end, .. } if start == injected && end == ended)
        );

        // The last 3 s have no value: enough coverage for the whole window (28 of 31 points),
        // not for the points that read only the fault's samples (13 of 16).
        let src = source(t, 50);
        for i in 10..=40 {
            let value = if i < 38 { 300.0 } else { f64::NAN };
            src.push(RATE, &[], t + secs(i), value);
        }
        let whole = check_range(&src, &throughput_step().check, injected, ended, SEC).await;
        assert_eq!(
            whole.verdict,
            Verdict::Passed,
            "the whole-window rule alone would pass it: {:?}",
            whole.evidence
        );
        let j = judge_then(&src, &throughput_step(), &times(injected, ended), SEC).await;
        assert_eq!(j.verdict, Verdict::Inconclusive, "{:?}", j.evidence);
        let reason = j.evidence.reason.unwrap_or_default();
        assert!(reason.contains("judged from"), "{reason}");
    }
}
