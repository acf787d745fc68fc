//! Assertion engine: SLO sources (Prometheus), windowed evaluation, verdicts.
//!
//! - [`SloSource`] answers instant and range queries; [`PrometheusClient`] speaks the Prometheus
//!   HTTP API, [`FakeSource`] is an in-memory stand-in for tests.
//! - [`check_instant`], [`check_range`], [`check_recovery`] judge a [`Check`](crate::scenario::model::Check)
//!   into a [`Judgement`] (verdict + [`Evidence`]); [`judge_then`] picks the window from a Then
//!   step's `hold` and the run's [`PhaseTimes`]; [`wait_until_holds`] polls (recovery, Given);
//!   [`breached`] evaluates abort conditions, [`breached_after`] on post-injection samples only.
//! - [`series_selectors`], [`closing_sample_queries`] and [`clip_ranges`] read and narrow a
//!   check's PromQL on `promql-parser`'s syntax tree.
//! - Tri-state: unreachable, timeout, HTTP/API error, empty or NaN-only results and windows with
//!   less than [`MIN_COVERAGE`] of their points are `inconclusive`, never `passed`.
//!
//! The rules are documented for users in `docs/assertions.md`.

mod error;
mod evaluate;
mod prometheus;
mod promql;
mod series;
mod source;
mod verdict;

#[cfg(test)]
mod tests;

pub use error::{BoxError, SloError};
pub use evaluate::{
    FRESH_WITHIN_STEPS, MAX_EVIDENCE_SERIES, MAX_POINTS_PER_SERIES, MIN_COVERAGE, PhaseTimes,
    breached, breached_after, check_instant, check_range, check_recovery, judge_then,
    wait_for_closing_sample, wait_until_holds,
};
pub use prometheus::{PrometheusClient, QueryKind, QueryObserver};
pub use promql::{clip_ranges, closing_sample_queries, series_selectors};
pub use series::{
    Point, Sample, Series, SeriesLabels, float, format_labels, format_prom_float, parse_prom_float,
};
pub use source::{FakeFailure, FakeSource, SloSource};
pub use verdict::{Evidence, Judgement, Observation, Window};
