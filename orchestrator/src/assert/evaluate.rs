//! Judging checks against an [`SloSource`]: instant and range checks, Then steps by their
//! [`Hold`], recovery polling and abort conditions.
//!
//! Rules (also in `docs/assertions.md`):
//! - A point is *evaluable* when its value is not NaN (NaN means "no data", e.g. `0/0`); ±Inf is
//!   evaluable (a `histogram_quantile` above the top bucket is +Inf and rightly fails `< 0.25`).
//! - **Failed** as soon as any evaluable point of any series breaks `value OP threshold`: an observed
//!   breach is a breach, even with gaps elsewhere.
//! - Otherwise **inconclusive** when the source failed, returned no series, returned only NaN, or
//!   when the *coverage* — the share of expected evaluation instants (`start`, `start+step`, … ≤ `end`)
//!   at which at least one series had an evaluable value — is below [`MIN_COVERAGE`] (90 %).
//! - Otherwise **passed**. A query Prometheus rejects as `bad_data` is **error** (fix the check).
//! - Only *fresh* instants count: one at which every series selector of the check has a sample
//!   scraped within [`FRESH_WITHIN_STEPS`] steps; points at other instants were computed from
//!   older samples (a `rate(…[15s])` or the lookback bridging a blind Prometheus) and are ignored.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::SloError;
use super::promql::{
    clip_ranges, closing_sample_queries, longest_range, newest_sample_query, series_selectors,
};
use super::series::Series;
use super::source::SloSource;
use super::verdict::{Evidence, Judgement, Observation, Window};
use crate::model::Verdict;
use crate::scenario::model::{AbortCondition, Check, Comparison, Hold, ThenStep};

/// Minimum coverage (ratio 0–1) of a window's evaluation instants with data for a pass.
pub const MIN_COVERAGE: f64 = 0.9;

/// A range check's evaluation instant counts only when Prometheus holds, for every series
/// selector the check reads, a sample scraped at most this many evaluation steps before it (use
/// the scrape interval as the step: three missed scrapes). Older samples are what a `rate(…[15s])`
/// or a lookback would carry across a gap in which Prometheus saw nothing.
pub const FRESH_WITHIN_STEPS: i64 = 3;

/// At most this many series are kept in [`Evidence::series`] (failing series first).
pub const MAX_EVIDENCE_SERIES: usize = 50;

/// Prometheus refuses range queries with more than 11,000 points per series; the step is widened
/// to stay below this many points.
pub const MAX_POINTS_PER_SERIES: i64 = 10_000;

/// Timestamps of a run's phases, as the runner recorded them (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTimes {
    /// When the (first) fault was injected.
    pub injected_at: DateTime<Utc>,
    /// When the faults' planned duration ended, or the abort time if the run was aborted.
    pub fault_ended_at: DateTime<Utc>,
    /// When the revert of every fault completed.
    pub reverted_at: DateTime<Utc>,
    /// When recovery was verified, if it was.
    pub recovered_at: Option<DateTime<Utc>>,
}

/// Instant check: at `at` (`None` = now), every returned series must satisfy `value OP threshold`
/// (NaN series are ignored; if all are NaN or none is returned the verdict is inconclusive).
pub async fn check_instant<S: SloSource>(
    src: &S,
    check: &Check,
    at: Option<DateTime<Utc>>,
) -> Judgement {
    let at = at.unwrap_or_else(Utc::now);
    let window = Window::Instant { at };
    match src.instant(&check.query, Some(at)).await {
        Err(e) => from_error(check, window, &e),
        Ok(samples) => {
            let series: Vec<Series> = samples.into_iter().map(Series::from).collect();
            let grid = Grid {
                start: at,
                step_ms: 1,
                slots: 1,
                blind: Vec::new(),
                gap: None,
            };
            judge_all_points(check, window, series, &grid)
        }
    }
}

/// Range check over `[start, end]` at `step`: every evaluable point of every series must satisfy
/// the check and the coverage must reach [`MIN_COVERAGE`]. The part of the window after now is
/// not queried (no data exists yet) but still counts as expected, so judge a window after it ends.
pub async fn check_range<S: SloSource>(
    src: &S,
    check: &Check,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Judgement {
    match prepare_range(src, check, start, end, step).await {
        Ok((window, grid, series)) => judge_all_points(check, window, series, &grid),
        Err(judgement) => *judgement,
    }
}

/// Recover-within check over `[reverted_at, deadline]` at `step`.
///
/// Rule: evaluation instants are classified *fails* (some evaluable value breaks the check),
/// *holds* (at least one evaluable value, none breaks it) or *unknown* (no evaluable value). The
/// recovery point is the first *holds* instant after the last *fails* instant (or the window start
/// when nothing failed). **Passed** iff a recovery point exists and the instants from it to the
/// deadline have coverage ≥ [`MIN_COVERAGE`]; **failed** iff the last known instant fails (still
/// broken at the deadline); **inconclusive** otherwise (no data, or gaps after the recovery point).
pub async fn check_recovery<S: SloSource>(
    src: &S,
    check: &Check,
    reverted_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
    step: Duration,
) -> Judgement {
    let (window, grid, series) = match prepare_range(src, check, reverted_at, deadline, step).await
    {
        Ok(ok) => ok,
        Err(judgement) => return *judgement,
    };
    let tally = Tally::new(check, &series, &grid);
    let mut evidence = tally.evidence(check, window, series);
    let known: Vec<(usize, bool)> = tally
        .slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.known.then_some((i, s.fails)))
        .collect();
    let verdict = if evidence.series.is_empty() {
        evidence.reason = Some(NO_SERIES.into());
        Verdict::Inconclusive
    } else if known.is_empty() {
        evidence.reason = Some(match grid.gap {
            Some(_) => grid.with_gap(NO_FRESH_POINT.into()),
            None => all_nan(tally.points),
        });
        Verdict::Inconclusive
    } else if known.last().is_some_and(|(_, fails)| *fails) {
        evidence.reason = Some(format!(
            "still breaking the check at the end of the recovery window ({})",
            grid.at(known.last().map_or(0, |k| k.0))
                .format("%H:%M:%S%.3f UTC")
        ));
        Verdict::Failed
    } else {
        let from = known
            .iter()
            .rev()
            .find(|(_, fails)| *fails)
            .map_or(0, |(i, _)| i + 1);
        let expected = grid.slots - from;
        let holding = known.iter().filter(|(i, _)| *i >= from).count();
        let coverage = holding as f64 / expected as f64;
        let recovered = known
            .iter()
            .find(|(i, _)| *i >= from)
            .map(|(i, _)| grid.at(*i));
        evidence.recovered_at = recovered;
        evidence.coverage = Some(coverage);
        if coverage < MIN_COVERAGE {
            evidence.reason = Some(grid.with_gap(format!(
                "the check held from {} but only {} of the {expected} evaluation points after it \
                 had data (at least {:.0} % needed)",
                recovered.map_or_else(String::new, |t| t.format("%H:%M:%S%.3f UTC").to_string()),
                holding,
                MIN_COVERAGE * 100.0
            )));
            Verdict::Inconclusive
        } else {
            Verdict::Passed
        }
    };
    Judgement { verdict, evidence }
}

/// Judges a Then step by its [`Hold`], given the run's phase times. `step_interval` is the
/// evaluation resolution (use the scrape interval).
///
/// - `during-fault`: [`check_range`] over `[injected_at, fault_ended_at]`;
/// - `at-end`: [`check_instant`] at `fault_ended_at`, inconclusive on stale samples (see
///   [`FRESH_WITHIN_STEPS`]);
/// - `recover-within`: [`check_recovery`] over `[reverted_at, reverted_at + within]`;
/// - `after-recovery`: [`check_instant`] at `recovered_at` (now when recovery was not verified),
///   inconclusive on stale samples.
///
/// A window that has not yet closed is waited for, then [`wait_for_closing_sample`]: only until
/// Prometheus holds a sample at or after the window's end for every series the check reads, and
/// at most one `step_interval` more (a target that is down never brings one). Calling it for
/// `recover-within` right after the revert sleeps `within` plus that short wait.
pub async fn judge_then<S: SloSource>(
    src: &S,
    step: &ThenStep,
    times: &PhaseTimes,
    step_interval: Duration,
) -> Judgement {
    match step.hold {
        Hold::DuringFault => {
            wait_for_closing_sample(src, &step.check, times.fault_ended_at, step_interval).await;
            let (start, end) = (times.injected_at, times.fault_ended_at);
            let whole = check_range(src, &step.check, start, end, step_interval).await;
            if whole.verdict != Verdict::Passed {
                return whole;
            }
            pass_on_samples_inside(src, &step.check, start, end, step_interval, whole).await
        }
        Hold::AtEnd => {
            wait_for_closing_sample(src, &step.check, times.fault_ended_at, step_interval).await;
            check_instant_fresh(src, &step.check, times.fault_ended_at, step_interval).await
        }
        Hold::RecoverWithin { within } => {
            let deadline = times.reverted_at + within.as_chrono();
            wait_for_closing_sample(src, &step.check, deadline, step_interval).await;
            check_recovery(src, &step.check, times.reverted_at, deadline, step_interval).await
        }
        Hold::AfterRecovery => {
            let at = times.recovered_at.unwrap_or_else(Utc::now);
            check_instant_fresh(src, &step.check, at, step_interval).await
        }
    }
}

/// A window that `whole` judged passed, passed only where samples scraped inside `[start, end]`
/// prove it. A point at `t` of a check whose longest range is `R` ([`longest_range`]) is
/// computed from the samples of `[t − R, t]`, so the points before `start + R` mix in pre-fault
/// samples: they may fail a step (an observed breach is a breach) but not pass it.
/// - Window at least `R` long: the points from `start + R` on must pass with the usual coverage
///   rule, or the step is what they give (inconclusive, naming why).
/// - Window shorter than `R` (a short fault, or a run aborted early): the check is judged once at
///   `end` with every range cut to the window ([`clip_ranges`]), i.e. on the fault's samples
///   alone; too short for that (a rate needs two samples) is inconclusive.
async fn pass_on_samples_inside<S: SloSource>(
    src: &S,
    check: &Check,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
    whole: Judgement,
) -> Judgement {
    let Some(range) = longest_range(&check.query) else {
        return whole;
    };
    let range_text = crate::duration::HumanDuration::from(range).to_string();
    let span = (end - start).to_std().unwrap_or_default();
    if span >= range {
        let from = start + chrono::Duration::from_std(range).unwrap_or(chrono::TimeDelta::MAX);
        let mut tail = check_range(src, check, from, end, step).await;
        if tail.verdict == Verdict::Passed {
            return whole;
        }
        tail.evidence.reason = Some(format!(
            "judged from {} on, where the check's {range_text} range reads only samples of the \
             window: {}",
            from.format("%H:%M:%S%.3f UTC"),
            tail.evidence.reason.as_deref().unwrap_or("no verdict")
        ));
        return tail;
    }
    let cut = Duration::from_millis(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
    let Some((query, _)) = clip_ranges(&check.query, cut) else {
        return whole;
    };
    let mut inside = check.clone();
    inside.query = query;
    let mut judgement = check_instant_fresh(src, &inside, end, step).await;
    if judgement.verdict == Verdict::Passed {
        return whole;
    }
    judgement.evidence.reason = Some(format!(
        "the window ({}) is shorter than the check's {range_text} range, so it was judged once \
         at its end with the ranges cut to the window (`{}`): {}",
        crate::duration::HumanDuration::from(cut),
        inside.query,
        judgement.evidence.reason.as_deref().unwrap_or("no verdict")
    ));
    judgement
}

/// [`check_instant`] at `at`, made inconclusive when some series selector of the check has no
/// sample scraped within [`FRESH_WITHIN_STEPS`] `step`s before `at` (`max(timestamp(SELECTOR))`
/// at `at`): the value was then computed from older samples, which is no evidence of `at`.
async fn check_instant_fresh<S: SloSource>(
    src: &S,
    check: &Check,
    at: DateTime<Utc>,
    step: Duration,
) -> Judgement {
    let mut judgement = check_instant(src, check, Some(at)).await;
    if !matches!(judgement.verdict, Verdict::Passed | Verdict::Failed) {
        return judgement;
    }
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let oldest_fresh_ms = at.timestamp_millis() - FRESH_WITHIN_STEPS.saturating_mul(step_ms);
    for selector in series_selectors(&check.query) {
        let newest_ms = match src.instant(&newest_sample_query(&selector), Some(at)).await {
            Ok(samples) => samples
                .iter()
                .map(|s| (s.point.value * 1000.0).round() as i64)
                .max(),
            Err(e) => return from_error(check, judgement.evidence.window, &e),
        };
        if newest_ms.is_none_or(|ms| ms < oldest_fresh_ms) {
            let newest = newest_ms
                .and_then(DateTime::from_timestamp_millis)
                .map_or_else(
                    || "none in the lookback".to_owned(),
                    |t| format!("the newest is from {}", t.format("%H:%M:%S%.3f UTC")),
                );
            judgement.verdict = Verdict::Inconclusive;
            judgement.evidence.first_failure = None;
            judgement.evidence.last_failure = None;
            judgement.evidence.reason = Some(format!(
                "Prometheus holds no sample of {selector} scraped near {} ({newest}): the value \
                 there is no evidence of that instant",
                at.format("%H:%M:%S%.3f UTC")
            ));
            return judgement;
        }
    }
    judgement
}

/// How often [`wait_for_closing_sample`] asks Prometheus whether the closing sample has landed.
const CLOSING_SAMPLE_POLL: Duration = Duration::from_millis(100);

/// Waits until the window ending at `end` is complete in `src`: sleeps until `end`, then polls
/// [`closing_sample_queries`] of `check` (Prometheus HTTP API, `/api/v1/query`, every 100 ms)
/// until every selector's series have a sample at or after `end` (millisecond precision, as
/// Prometheus stores them) — or until `max_wait` after `end` at the latest (use the scrape
/// interval: a target that is down never brings a sample). A failing or empty answer keeps
/// waiting within `max_wait`; the judgement that follows reports what the source says.
pub async fn wait_for_closing_sample<S: SloSource>(
    src: &S,
    check: &Check,
    end: DateTime<Utc>,
    max_wait: Duration,
) {
    sleep_until(end).await;
    let give_up = end + chrono::Duration::from_std(max_wait).unwrap_or(chrono::Duration::zero());
    let end_seconds = end.timestamp_millis() as f64 / 1000.0;
    let queries = closing_sample_queries(&check.query);
    let mut waiting: Vec<&str> = queries.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let mut still = Vec::with_capacity(waiting.len());
        for query in waiting {
            let landed = match src.instant(query, None).await {
                Ok(samples) => samples
                    .iter()
                    .any(|s| s.point.value + 0.000_5 >= end_seconds),
                Err(_) => false,
            };
            if !landed {
                still.push(query);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            return;
        }
        let now = Utc::now();
        if now >= give_up {
            return;
        }
        let pause = (give_up - now)
            .to_std()
            .unwrap_or_default()
            .min(CLOSING_SAMPLE_POLL);
        tokio::time::sleep(pause).await;
    }
}

/// Polls the check at now every `poll` until it passes or `deadline` passes; returns the
/// passing judgement, an `error` judgement at once (polling cannot fix the query), or the last
/// judgement (failed or inconclusive) with a note of how long it was polled. A value computed
/// from samples older than [`FRESH_WITHIN_STEPS`] `step`s is inconclusive, not passed (a frozen
/// Prometheus keeps answering with its last samples): Given and recovery hold only on what
/// Prometheus scraped just now.
pub async fn wait_until_holds<S: SloSource>(
    src: &S,
    check: &Check,
    deadline: std::time::Instant,
    poll: Duration,
    step: Duration,
) -> Judgement {
    let started = std::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        let mut judgement = check_instant_fresh(src, check, Utc::now(), step).await;
        attempts += 1;
        if matches!(judgement.verdict, Verdict::Passed | Verdict::Error) {
            return judgement;
        }
        let now = std::time::Instant::now();
        if now + poll > deadline {
            let note = format!(
                "did not hold within {:.1} s ({attempts} polls)",
                now.duration_since(started).as_secs_f64()
            );
            judgement.evidence.reason = Some(match judgement.evidence.reason.take() {
                Some(reason) => format!("{note}; last: {reason}"),
                None => note,
            });
            return judgement;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Evaluates an abort condition now: `Ok(Some(value))` when `value OP threshold` holds for any
/// series (the most extreme breaching value), `Ok(None)` when none does (also when there is no
/// data: absence of data is not a breach; the caller decides what repeated errors mean), `Err`
/// when the query failed.
pub async fn breached<S: SloSource>(
    src: &S,
    abort: &AbortCondition,
) -> Result<Option<f64>, SloError> {
    let check = &abort.check;
    let samples = src.instant(&check.query, None).await?;
    Ok(samples
        .iter()
        .map(|s| s.point.value)
        .filter(|v| !v.is_nan() && check.op.holds(*v, check.threshold))
        .reduce(|a, b| match check.op {
            Comparison::Lt | Comparison::Le => a.min(b),
            Comparison::Gt | Comparison::Ge => a.max(b),
            Comparison::Eq | Comparison::Ne => a,
        }))
}

/// [`breached`], looking only at samples scraped after `since` (the first injection): every
/// range of the condition's query (`rate(x[15s])`, subqueries) is clipped to the whole seconds
/// elapsed since then ([`clip_ranges`]), so a pre-fault failure cannot abort the fault that
/// follows it. Until `min_range` has elapsed (use two scrape intervals: a rate needs two
/// samples), a condition with ranges is not judged: `Ok(None)`.
pub async fn breached_after<S: SloSource>(
    src: &S,
    abort: &AbortCondition,
    since: DateTime<Utc>,
    min_range: Duration,
) -> Result<Option<f64>, SloError> {
    let elapsed = (Utc::now() - since).to_std().unwrap_or_default();
    let whole = Duration::from_secs(elapsed.as_secs());
    let Some((query, clipped)) = clip_ranges(&abort.check.query, whole) else {
        return breached(src, abort).await;
    };
    if clipped && whole < min_range {
        return Ok(None);
    }
    let mut recent = abort.clone();
    recent.check.query = query;
    breached(src, &recent).await
}

const NO_SERIES: &str = "the query returned no series (no data for this window)";

/// Reason of a window whose every evaluation instant lacked fresh samples behind it.
const NO_FRESH_POINT: &str =
    "no evaluation point of the window had freshly scraped samples behind it";

fn all_nan(points: usize) -> String {
    format!("all {points} returned values were NaN (no data)")
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(wait) = (t - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

fn from_error(check: &Check, window: Window, e: &SloError) -> Judgement {
    static REPEATS: std::sync::LazyLock<std::sync::Mutex<crate::repeats::Repeats>> =
        std::sync::LazyLock::new(Default::default);
    let verdict = if e.is_definition_error() {
        Verdict::Error
    } else {
        Verdict::Inconclusive
    };
    let message = e.chain();
    let repeated = REPEATS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .note(&message, std::time::Instant::now());
    match repeated {
        Some(0) => {
            tracing::warn!(error = %message, %verdict, "SLO query failed (the same failure is logged at most once a minute, with a count).")
        }
        Some(repeated) => {
            tracing::warn!(error = %message, %verdict, repeated, "SLO query failed again ({repeated} more times since the last warning).")
        }
        None => {
            tracing::debug!(query = %check.query, error = %message, %verdict, "SLO query failed again.")
        }
    }
    Judgement::without_data(verdict, check, window, message)
}

/// Validates the window, widens the step if needed, queries up to now. Errors come back as the
/// finished judgement.
async fn prepare_range<S: SloSource>(
    src: &S,
    check: &Check,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Result<(Window, Grid, Vec<Series>), Box<Judgement>> {
    let span_ms = (end - start).num_milliseconds();
    let mut step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    if span_ms / step_ms >= MAX_POINTS_PER_SERIES {
        step_ms = (span_ms + MAX_POINTS_PER_SERIES - 2) / (MAX_POINTS_PER_SERIES - 1);
    }
    let window = Window::Range {
        start,
        end,
        step_seconds: step_ms as f64 / 1000.0,
    };
    if span_ms < 0 {
        let e = SloError::InvalidWindow {
            reason: format!("end {end} is before start {start}"),
        };
        return Err(Box::new(from_error(check, window, &e)));
    }
    let query_end = end.min(Utc::now());
    if query_end < start {
        return Err(Box::new(Judgement::without_data(
            Verdict::Inconclusive,
            check,
            window,
            "the window has not started yet".into(),
        )));
    }
    let slots = usize::try_from(span_ms / step_ms + 1).unwrap_or(usize::MAX);
    let mut grid = Grid {
        start,
        step_ms,
        slots,
        blind: Vec::new(),
        gap: None,
    };
    let step = Duration::from_millis(step_ms.unsigned_abs());
    let series = match src.range(&check.query, start, query_end, step).await {
        Ok(series) => series,
        Err(e) => return Err(Box::new(from_error(check, window, &e))),
    };
    if let Err(e) = mark_blind_instants(src, check, &mut grid, query_end, step).await {
        return Err(Box::new(from_error(check, window, &e)));
    }
    Ok((window, grid, series))
}

/// Marks the instants of `grid` (up to `query_end`) at which Prometheus held no fresh sample of
/// some series selector of `check` — the newest sample of every series it selects
/// (`max(timestamp(SELECTOR))`, Prometheus HTTP API `/api/v1/query_range`) older than
/// [`FRESH_WITHIN_STEPS`] steps, or none at all — and describes the longest such gap. Those
/// instants are judged on nothing: a value there was computed from samples scraped before it.
async fn mark_blind_instants<S: SloSource>(
    src: &S,
    check: &Check,
    grid: &mut Grid,
    query_end: DateTime<Utc>,
    step: Duration,
) -> Result<(), SloError> {
    let tolerance_ms = FRESH_WITHIN_STEPS.saturating_mul(grid.step_ms);
    let queried = (0..grid.slots)
        .take_while(|&k| grid.at(k) <= query_end)
        .count();
    let mut blind = vec![false; grid.slots];
    let mut longest: Option<(usize, usize, String)> = None;
    for selector in series_selectors(&check.query) {
        let query = newest_sample_query(&selector);
        let mut fresh = vec![false; grid.slots];
        for series in src.range(&query, grid.start, query_end, step).await? {
            for point in &series.points {
                let scraped_ms = (point.value * 1000.0).round() as i64;
                if let Some(k) = grid.slot_of(point.at)
                    && point.at.timestamp_millis() - scraped_ms <= tolerance_ms
                {
                    fresh[k] = true;
                }
            }
        }
        let mut k = 0;
        while k < queried {
            if fresh[k] {
                k += 1;
                continue;
            }
            let from = k;
            while k < queried && !fresh[k] {
                blind[k] = true;
                k += 1;
            }
            if longest.as_ref().is_none_or(|(a, b, _)| k - from > b - a) {
                longest = Some((from, k, selector.clone()));
            }
        }
    }
    if let Some((from, to, selector)) = longest {
        let span_ms = u64::try_from((to - from) as i64 * grid.step_ms).unwrap_or(0);
        grid.gap = Some(format!(
            "Prometheus holds no sample of {selector} scraped near {} to {} ({} of the window): \
             it or the target was not scraping",
            grid.at(from).format("%H:%M:%S%.3f UTC"),
            grid.at(to - 1).format("%H:%M:%S%.3f UTC"),
            crate::duration::HumanDuration(Duration::from_millis(span_ms))
        ));
    }
    grid.blind = blind;
    Ok(())
}

/// Expected evaluation instants: `start + k·step` for `k` in `0..slots`.
struct Grid {
    start: DateTime<Utc>,
    step_ms: i64,
    slots: usize,
    /// Instants without fresh samples behind them (empty: none): their points are ignored.
    blind: Vec<bool>,
    /// The longest run of blind instants, for a person.
    gap: Option<String>,
}

impl Grid {
    fn slot_of(&self, t: DateTime<Utc>) -> Option<usize> {
        if self.slots == 1 {
            return Some(0);
        }
        let offset = (t - self.start).num_milliseconds();
        let k = (offset as f64 / self.step_ms as f64).round();
        (k >= 0.0 && (k as usize) < self.slots).then_some(k as usize)
    }

    fn at(&self, slot: usize) -> DateTime<Utc> {
        self.start + chrono::Duration::milliseconds(self.step_ms.saturating_mul(slot as i64))
    }

    fn is_blind(&self, slot: usize) -> bool {
        self.blind.get(slot).copied().unwrap_or(false)
    }

    /// `reason`, followed by the description of the longest blind gap when there is one.
    fn with_gap(&self, reason: String) -> String {
        match &self.gap {
            Some(gap) => format!("{reason}; {gap}"),
            None => reason,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    known: bool,
    fails: bool,
}

/// Per-point bookkeeping over all series.
struct Tally {
    slots: Vec<Slot>,
    points: usize,
    failures: usize,
    failing_series: BTreeSet<usize>,
    worst_all: Option<Observation>,
    worst_failing: Option<Observation>,
    first_failure: Option<Observation>,
    last_failure: Option<Observation>,
}

impl Tally {
    fn new(check: &Check, series: &[Series], grid: &Grid) -> Self {
        let mut t = Tally {
            slots: vec![Slot::default(); grid.slots],
            points: 0,
            failures: 0,
            failing_series: BTreeSet::new(),
            worst_all: None,
            worst_failing: None,
            first_failure: None,
            last_failure: None,
        };
        for (index, s) in series.iter().enumerate() {
            for p in &s.points {
                let slot = grid.slot_of(p.at);
                if slot.is_some_and(|k| grid.is_blind(k)) {
                    continue; // computed from samples scraped before this instant
                }
                t.points += 1;
                if p.value.is_nan() {
                    continue;
                }
                let obs = || Observation {
                    at: p.at,
                    value: p.value,
                    labels: s.labels.clone(),
                };
                let fails = !check.op.holds(p.value, check.threshold);
                if let Some(slot) = slot.and_then(|k| t.slots.get_mut(k)) {
                    slot.known = true;
                    slot.fails |= fails;
                }
                keep_worse(check, &mut t.worst_all, p.value, obs);
                if fails {
                    t.failures += 1;
                    t.failing_series.insert(index);
                    keep_worse(check, &mut t.worst_failing, p.value, obs);
                    if t.first_failure.as_ref().is_none_or(|f| p.at < f.at) {
                        t.first_failure = Some(obs());
                    }
                    if t.last_failure.as_ref().is_none_or(|f| p.at > f.at) {
                        t.last_failure = Some(obs());
                    }
                }
            }
        }
        t
    }

    fn covered(&self) -> usize {
        self.slots.iter().filter(|s| s.known).count()
    }

    /// Evidence with observations filled in (verdict-specific fields left to the caller).
    fn evidence(&self, check: &Check, window: Window, series: Vec<Series>) -> Evidence {
        let mut evidence = Evidence::new(check, window);
        let total = series.len();
        let (mut kept, rest): (Vec<_>, Vec<_>) = series
            .into_iter()
            .enumerate()
            .partition(|(i, _)| self.failing_series.contains(i));
        kept.extend(rest);
        evidence.series = kept
            .into_iter()
            .take(MAX_EVIDENCE_SERIES)
            .map(|(_, s)| s)
            .collect();
        evidence.omitted_series = total - evidence.series.len();
        evidence.worst = self
            .worst_failing
            .clone()
            .or_else(|| self.worst_all.clone());
        evidence.first_failure = self.first_failure.clone();
        evidence.last_failure = self.last_failure.clone();
        evidence.coverage = Some(self.covered() as f64 / self.slots.len().max(1) as f64);
        evidence
    }
}

/// Replaces `current` with the candidate when it is further on the failing side.
fn keep_worse(
    check: &Check,
    current: &mut Option<Observation>,
    value: f64,
    candidate: impl FnOnce() -> Observation,
) {
    let worse = match current {
        None => true,
        Some(c) => match check.op {
            Comparison::Eq => (value - check.threshold).abs() > (c.value - check.threshold).abs(),
            op => op.worse(c.value, value) == value && value != c.value,
        },
    };
    if worse {
        *current = Some(candidate());
    }
}

/// The common rule for instant and during-fault checks (see the module docs).
fn judge_all_points(check: &Check, window: Window, series: Vec<Series>, grid: &Grid) -> Judgement {
    let tally = Tally::new(check, &series, grid);
    let empty = series.is_empty();
    let mut evidence = tally.evidence(check, window, series);
    let covered = tally.covered();
    let verdict = if empty {
        evidence.reason = Some(NO_SERIES.into());
        Verdict::Inconclusive
    } else if tally.failures > 0 {
        if let Some(f) = &evidence.first_failure {
            let plural = if tally.failures == 1 { "" } else { "s" };
            evidence.reason = Some(format!(
                "{} point{plural} broke the check, first {} at {}",
                tally.failures,
                crate::present::quantity(f.value, evidence.unit.as_deref()),
                f.at.format("%H:%M:%S%.3f UTC")
            ));
        }
        Verdict::Failed
    } else if covered == 0 {
        evidence.reason = Some(match grid.gap {
            Some(_) => grid.with_gap(NO_FRESH_POINT.into()),
            None => all_nan(tally.points),
        });
        Verdict::Inconclusive
    } else if (covered as f64) < MIN_COVERAGE * grid.slots as f64 {
        evidence.reason = Some(grid.with_gap(format!(
            "only {covered} of the {} expected evaluation points had data ({:.0} %; at least {:.0} % \
             needed): Prometheus or the target was down for part of the window",
            grid.slots,
            100.0 * covered as f64 / grid.slots as f64,
            MIN_COVERAGE * 100.0
        )));
        Verdict::Inconclusive
    } else {
        Verdict::Passed
    };
    Judgement { verdict, evidence }
}
