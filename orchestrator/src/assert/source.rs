//! The [`SloSource`] trait: where SLO data comes from. [`super::PrometheusClient`] is the real one;
//! [`FakeSource`] is an in-memory stand-in for unit tests of the engine and of its callers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::SloError;
use super::series::{Point, Sample, Series, SeriesLabels};

/// A source of SLO data answering PromQL-like queries.
///
/// Implementations write `async fn`; the trait spells out `+ Send` so callers may spawn the
/// futures. Use it through generics (`S: SloSource`), not `dyn`.
pub trait SloSource: Send + Sync {
    /// Instant query: the value of every series of `query` at `at` (`None` = the source's now).
    /// An empty vector means "no series", which the engine judges inconclusive.
    fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Vec<Sample>, SloError>> + Send;

    /// Range query: every series of `query` evaluated at `start`, `start + step`, … ≤ `end`
    /// (Prometheus semantics: a point is missing where the series had no sample in the lookback).
    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<Series>, SloError>> + Send;
}

impl<T: SloSource> SloSource for &T {
    fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Vec<Sample>, SloError>> + Send {
        (**self).instant(query, at)
    }

    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<Series>, SloError>> + Send {
        (**self).range(query, start, end, step)
    }
}

impl<T: SloSource> SloSource for std::sync::Arc<T> {
    fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Vec<Sample>, SloError>> + Send {
        (**self).instant(query, at)
    }

    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<Series>, SloError>> + Send {
        (**self).range(query, start, end, step)
    }
}

/// How a [`FakeSource`] fails every query while a failure is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFailure {
    /// As if the connection was refused.
    Unreachable,
    /// As if the per-request timeout expired.
    Timeout,
    /// As if Prometheus answered with this error envelope.
    Api {
        /// `errorType`, e.g. `bad_data`.
        error_type: String,
        /// `error` text.
        message: String,
    },
}

/// In-memory SLO source for tests: each query string maps to recorded samples; queries are
/// answered with Prometheus' lookback rule (the latest sample at or before the evaluation time and
/// no older than [`FakeSource::LOOKBACK`]). Unknown queries return no series.
#[derive(Debug, Default)]
pub struct FakeSource {
    data: Mutex<BTreeMap<String, BTreeMap<SeriesLabels, Vec<Point>>>>,
    failure: Mutex<Option<FakeFailure>>,
}

impl FakeSource {
    /// Prometheus' default lookback delta (5 minutes).
    pub const LOOKBACK: Duration = Duration::from_secs(300);

    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` for the series `labels` of `query` at `at` (keep calls in time order per series).
    pub fn push(&self, query: &str, labels: &[(&str, &str)], at: DateTime<Utc>, value: f64) {
        let labels: SeriesLabels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let points = data
            .entry(query.to_owned())
            .or_default()
            .entry(labels)
            .or_default();
        points.push(Point { at, value });
        points.sort_by_key(|p| p.at);
    }

    /// Makes every query fail with `failure` (`None` = answer normally again).
    pub fn fail_with(&self, failure: Option<FakeFailure>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }

    fn check_failure(&self) -> Result<(), SloError> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match failure {
            None => Ok(()),
            Some(FakeFailure::Unreachable) => Err(SloError::Unreachable {
                url: "fake://".into(),
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            }),
            Some(FakeFailure::Timeout) => Err(SloError::Timeout {
                url: "fake://".into(),
                timeout: Duration::from_secs(1),
            }),
            Some(FakeFailure::Api {
                error_type,
                message,
            }) => Err(SloError::Api {
                error_type,
                message,
            }),
        }
    }

    fn value_at(points: &[Point], at: DateTime<Utc>) -> Option<Point> {
        let lookback = chrono::Duration::from_std(Self::LOOKBACK).unwrap_or(chrono::Duration::MAX);
        points
            .iter()
            .rev()
            .find(|p| p.at <= at)
            .filter(|p| at - p.at < lookback)
            .map(|p| Point { at, value: p.value })
    }
}

impl SloSource for FakeSource {
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, SloError> {
        self.check_failure()?;
        let at = at.unwrap_or_else(Utc::now);
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        Ok(data
            .get(query)
            .map(|series| {
                series
                    .iter()
                    .filter_map(|(labels, points)| {
                        Self::value_at(points, at).map(|point| Sample {
                            labels: labels.clone(),
                            point,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, SloError> {
        self.check_failure()?;
        let step = chrono::Duration::from_std(step.max(Duration::from_millis(1)))
            .unwrap_or(chrono::Duration::MAX);
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let Some(all) = data.get(query) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (labels, points) in all {
            let mut t = start;
            let mut got = Vec::new();
            while t <= end {
                got.extend(Self::value_at(points, t));
                t += step;
            }
            if !got.is_empty() {
                out.push(Series {
                    labels: labels.clone(),
                    points: got,
                });
            }
        }
        Ok(out)
    }
}
