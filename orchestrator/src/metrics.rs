//! The orchestrator's own metrics, served at `/metrics` in the Prometheus text exposition format
//! (OpenMetrics flavour, written by the `prometheus-client` crate).
//!
//! One [`Metrics`] handle per process: cheap to clone, every clone updates the same series.
//! Names (see docs/api.md):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `f3_chaos_runs_total` | counter | `outcome` | runs finished by this process, by outcome |
//! | `f3_chaos_active_faults` | gauge | `stack` | open fault-ledger entries in the store (all processes), refreshed at every scrape |
//! | `f3_chaos_lease_refusals_total` | counter | `stack` | runs refused because another run held the stack |
//! | `f3_chaos_lease_wait_seconds` | histogram | — | request to stack lease held, seconds |
//! | `f3_chaos_assertion_query_seconds` | histogram | `kind` (`instant`, `range`) | latency of one SLO query (instant or range), seconds |

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::assert::{QueryKind, QueryObserver};
use crate::run::RunOutcome;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackLabels {
    stack: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

struct Inner {
    registry: Registry,
    runs: Family<OutcomeLabels, Counter>,
    active_faults: Family<StackLabels, Gauge>,
    lease_refusals: Family<StackLabels, Counter>,
    lease_wait: Histogram,
    query_latency: Family<KindLabels, Histogram, fn() -> Histogram>,
}

/// Handle on this process's metrics. Clone it into every module that reports something.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series described in the module docs.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("f3_chaos");
        let runs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs finished by this process, by outcome",
            runs.clone(),
        );
        let active_faults = Family::<StackLabels, Gauge>::default();
        registry.register(
            "active_faults",
            "Open fault-ledger entries (injected or being injected, not yet reverted), by stack",
            active_faults.clone(),
        );
        let lease_refusals = Family::<StackLabels, Counter>::default();
        registry.register(
            "lease_refusals",
            "Runs refused because another run held the stack lease",
            lease_refusals.clone(),
        );
        // 10 ms … ~20 min: an immediate lease takes milliseconds, `wait_for_stack` minutes.
        let lease_wait = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        registry.register(
            "lease_wait_seconds",
            "Time from asking for a stack lease to holding it, seconds",
            lease_wait.clone(),
        );
        // 1 ms … ~16 s: Prometheus answers in milliseconds; the client times out at 5 s.
        let query_latency = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 15))) as fn() -> Histogram,
        );
        registry.register(
            "assertion_query_seconds",
            "Latency of one SLO query (instant or range) made by the assertion engine, seconds",
            query_latency.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                runs,
                active_faults,
                lease_refusals,
                lease_wait,
                query_latency,
            }),
        }
    }

    /// Counts a finished run under its outcome (`f3_chaos_runs_total{outcome="passed"}`).
    pub fn run_finished(&self, outcome: RunOutcome) {
        self.inner
            .runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Counts a run refused because stack `stack` was held by another run.
    pub fn lease_refused(&self, stack: &str) {
        self.inner
            .lease_refusals
            .get_or_create(&StackLabels {
                stack: stack.to_owned(),
            })
            .inc();
    }

    /// Records how long a run waited for its stack lease.
    pub fn lease_acquired_after(&self, waited: Duration) {
        self.inner.lease_wait.observe(waited.as_secs_f64());
    }

    /// Records the latency of one SLO query.
    pub fn observe_query(&self, kind: QueryKind, took: Duration) {
        let kind = match kind {
            QueryKind::Instant => "instant",
            QueryKind::Range => "range",
        };
        self.inner
            .query_latency
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Replaces the active-fault gauge with `counts` (stack name, open faults); stacks not in
    /// `counts` disappear from the output.
    pub fn set_active_faults<'a>(&self, counts: impl IntoIterator<Item = (&'a str, i64)>) {
        self.inner.active_faults.clear();
        for (stack, n) in counts {
            self.inner
                .active_faults
                .get_or_create(&StackLabels {
                    stack: stack.to_owned(),
                })
                .set(n);
        }
    }

    /// The text exposition of every series (content type [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "Could not encode the metrics.");
        }
        out
    }

    /// A latency observer for [`crate::assert::PrometheusClient::with_observer`]: every query the assertion
    /// engine makes lands in `f3_chaos_assertion_query_seconds{kind="instant"|"range"}`.
    pub fn query_observer(&self) -> QueryObserver {
        let metrics = self.clone();
        Arc::new(move |kind, took, _ok| metrics.observe_query(kind, took))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_series_by_name() {
        let metrics = Metrics::new();
        metrics.run_finished(RunOutcome::Passed);
        metrics.run_finished(RunOutcome::Passed);
        metrics.run_finished(RunOutcome::Failed);
        metrics.lease_refused("uat-alpha");
        metrics.lease_acquired_after(Duration::from_millis(20));
        (metrics.query_observer())(QueryKind::Range, Duration::from_millis(3), true);
        metrics.set_active_faults([("local", 2)]);
        let text = metrics.encode();
        assert!(
            text.contains("f3_chaos_runs_total{outcome=\"passed\"} 2"),
            "{text}"
        );
        assert!(text.contains("f3_chaos_runs_total{outcome=\"failed\"} 1"));
        assert!(text.contains("f3_chaos_lease_refusals_total{stack=\"uat-alpha\"} 1"));
        assert!(text.contains("f3_chaos_lease_wait_seconds_count 1"));
        assert!(text.contains("f3_chaos_assertion_query_seconds_count{kind=\"range\"} 1"));
        assert!(text.contains("f3_chaos_active_faults{stack=\"local\"} 2"));
        metrics.set_active_faults([]);
        assert!(!metrics.encode().contains("f3_chaos_active_faults{"));
    }
}
