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
/// no older than [`FakeSource::LOOKBACK`]). Unknown queries return no series, except
/// `min(timestamp(Q))` and `max(timestamp(Q))` of a recorded query `Q`, which answer like
/// Prometheus: the aggregated time (Unix seconds) of each series' latest sample of `Q` — so the
/// points pushed are the "scrapes" the freshness rules look at, unless
/// [`FakeSource::scraped_every`] makes a Prometheus that scrapes the pushed values continuously.
#[derive(Debug, Default)]
pub struct FakeSource {
    data: Mutex<BTreeMap<String, BTreeMap<SeriesLabels, Vec<Point>>>>,
    failure: Mutex<Option<FakeFailure>>,
    scrape_every: Option<chrono::Duration>,
}

impl FakeSource {
    /// Prometheus' default lookback delta (5 minutes).
    pub const LOOKBACK: Duration = Duration::from_secs(300);

    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// A source whose samples are scraped every `every` (on multiples of it since the Unix
    /// epoch): the `timestamp()` of a series is its latest scrape, not the time its value was
    /// pushed, so one pushed value stays fresh until the lookback ends it.
    pub fn scraped_every(every: Duration) -> Self {
        Self {
            scrape_every: chrono::Duration::from_std(every.max(Duration::from_millis(1))).ok(),
            ..Self::default()
        }
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

    fn latest_at(points: &[Point], at: DateTime<Utc>) -> Option<&Point> {
        let lookback = chrono::Duration::from_std(Self::LOOKBACK).unwrap_or(chrono::Duration::MAX);
        points
            .iter()
            .rev()
            .find(|p| p.at <= at)
            .filter(|p| at - p.at < lookback)
    }

    fn value_at(points: &[Point], at: DateTime<Utc>) -> Option<Point> {
        Self::latest_at(points, at).map(|p| Point { at, value: p.value })
    }

    /// The series of `query` at `at` from the recorded data: recorded series, or the derived
    /// `min|max(timestamp(Q))` (see the type's docs).
    fn answer_at(
        &self,
        data: &BTreeMap<String, BTreeMap<SeriesLabels, Vec<Point>>>,
        query: &str,
        at: DateTime<Utc>,
    ) -> Vec<Sample> {
        if let Some(series) = data.get(query) {
            return series
                .iter()
                .filter_map(|(labels, points)| {
                    Self::value_at(points, at).map(|point| Sample {
                        labels: labels.clone(),
                        point,
                    })
                })
                .collect();
        }
        let derived = [
            ("min(timestamp(", f64::min as fn(f64, f64) -> f64),
            ("max(timestamp(", f64::max),
        ]
        .into_iter()
        .find_map(|(prefix, fold)| {
            let inner = query.strip_prefix(prefix)?.strip_suffix("))")?;
            Some((data.get(inner)?, fold))
        });
        let Some((series, fold)) = derived else {
            return Vec::new();
        };
        series
            .values()
            .filter_map(|points| Self::latest_at(points, at))
            .map(|p| {
                let scraped = match self.scrape_every {
                    Some(every) => {
                        let every_ms = every.num_milliseconds().max(1);
                        let tick = at.timestamp_millis() / every_ms * every_ms;
                        tick.max(p.at.timestamp_millis())
                    }
                    None => p.at.timestamp_millis(),
                };
                scraped as f64 / 1000.0
            })
            .reduce(fold)
            .map(|value| Sample {
                labels: SeriesLabels::new(),
                point: Point { at, value },
            })
            .into_iter()
            .collect()
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
        Ok(self.answer_at(&data, query, at))
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
        let mut out: BTreeMap<SeriesLabels, Vec<Point>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            for sample in self.answer_at(&data, query, t) {
                out.entry(sample.labels).or_default().push(sample.point);
            }
            t += step;
        }
        Ok(out
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect())
    }
}
