//! The orchestrator's own metrics, served at `/metrics`, and what an operator alerts on
//! (deploy/components/prometheus-operator: no leader, night not ended, dead letters, a fault past
//! its TTL; docs/deploy.md has the runbook).
//!
//! One [`Metrics`] handle per process: cheap to clone, every clone updates the same series. The
//! store-derived gauges (faults, outbox, last night) are refreshed from the store at every scrape
//! ([`Metrics::refresh_from_store`]), so every replica reports the same picture of the shared
//! store; the leader gauge is this replica's own.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `f3_chaos_build_info` | gauge | `version` | always 1; the version of this binary |
//! | `f3_chaos_leader` | gauge | — | 1 while this replica leads the night, else 0 |
//! | `f3_chaos_last_night_window_end_timestamp_seconds` | gauge | — | end of the last opened night's window, Unix seconds |
//! | `f3_chaos_last_night_planned_timestamp_seconds` | gauge | — | when that night was first planned, Unix seconds (0: not yet) |
//! | `f3_chaos_last_night_started_timestamp_seconds` | gauge | — | when its first run started, Unix seconds (0: not yet) |
//! | `f3_chaos_last_night_ended_timestamp_seconds` | gauge | — | when it closed, Unix seconds (0: still open) — the dead-man switch |
//! | `f3_chaos_outbox_pending` | gauge | — | notifications waiting for a (re)delivery |
//! | `f3_chaos_outbox_dead_letters` | gauge | — | notifications given up on after every retry |
//! | `f3_chaos_runs_total` | counter | `scenario`, `stack`, `outcome` | runs finished by this process (CLI-started runs excluded) |
//! | `f3_chaos_run_overruns_total` | counter | `scenario`, `stack` | daemon runs still going past their expected end (counted once per run) |
//! | `f3_chaos_active_faults` | gauge | `stack` | open fault-ledger entries, every configured stack (0 when none) |
//! | `f3_chaos_faults_past_ttl` | gauge | `stack` | open fault-ledger entries whose TTL has passed (the target should have lifted them) |
//! | `f3_chaos_lease_refusals_total` | counter | `stack` | runs refused because another run held the stack |
//! | `f3_chaos_lease_wait_seconds` | histogram | — | request to stack lease held, seconds (API and daemon runs) |
//! | `f3_chaos_assertion_query_seconds` | histogram | `kind` (`instant`, `range`) | latency of one SLO query, seconds |
//!
//! ## Wire formats
//! Two formats, chosen from the scraper's `Accept` header ([`ExpositionFormat::negotiate`]):
//! the classic Prometheus text format 0.0.4 (<https://prometheus.io/docs/instrumenting/exposition_formats/>)
//! whenever the scraper accepts `text/plain` — every Prometheus does, and `promtool check metrics`
//! reads only this one — and OpenMetrics 1.0.0 to a scraper that accepts only OpenMetrics (or says
//! nothing). `prometheus-client` writes OpenMetrics only (client_rust issue #51, PR #293);
//! [`to_classic_text`] turns its output into the classic format. The two differ, for the series
//! above, only in the counter family names and the `# EOF` trailer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::assert::{QueryKind, QueryObserver};
use crate::model::RunOutcome;
use crate::store::{LedgerEntry, NightRecord, OutboxBacklog, Store};

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text exposition.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// Prometheus text format 0.0.4.
    Classic,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl ExpositionFormat {
    /// Chooses from an HTTP `Accept` header (RFC 9110 §12.5.1, media ranges with `q`): classic
    /// text when `text/plain` (or `text/*`, `*/*`) is acceptable with `q > 0` — every Prometheus
    /// release lists it — and OpenMetrics when only OpenMetrics is, or there is no header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::OpenMetrics;
        };
        let mut text_q: Option<f32> = None;
        for range in accept.split(',') {
            let Ok(mime) = range.trim().parse::<mime::Mime>() else {
                continue;
            };
            let q = mime
                .get_param("q")
                .and_then(|q| q.as_str().parse::<f32>().ok())
                .unwrap_or(1.0);
            let plain_text = matches!(
                (mime.type_(), mime.subtype()),
                (mime::TEXT, mime::PLAIN | mime::STAR) | (mime::STAR, mime::STAR)
            );
            if plain_text {
                text_q = Some(text_q.map_or(q, |best| best.max(q)));
            }
        }
        match text_q {
            Some(q) if q > 0.0 => Self::Classic,
            _ => Self::OpenMetrics,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Classic => CLASSIC_CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    scenario: String,
    stack: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaceLabels {
    scenario: String,
    stack: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackLabels {
    stack: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

struct LastNight {
    window_end: SecondsGauge,
    planned: SecondsGauge,
    started: SecondsGauge,
    ended: SecondsGauge,
}

struct Inner {
    registry: Registry,
    leader: Gauge,
    last_night: LastNight,
    outbox_pending: Gauge,
    outbox_dead: Gauge,
    runs: Family<RunLabels, Counter>,
    overruns: Family<PlaceLabels, Counter>,
    active_faults: Family<StackLabels, Gauge>,
    faults_past_ttl: Family<StackLabels, Gauge>,
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

fn seconds_gauge(registry: &mut Registry, name: &str, help: &str) -> SecondsGauge {
    let gauge = SecondsGauge::default();
    registry.register(name, help, gauge.clone());
    gauge
}

fn unix_seconds(at: Option<DateTime<Utc>>) -> f64 {
    at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
}

impl Metrics {
    /// A fresh registry with every series described in the module docs.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("f3_chaos");
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version of this f3-chaos binary",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and runs the night, else 0",
            leader.clone(),
        );
        let last_night = LastNight {
            window_end: seconds_gauge(
                &mut registry,
                "last_night_window_end_timestamp_seconds",
                "End of the chaos window of the last night the daemon opened, Unix seconds",
            ),
            planned: seconds_gauge(
                &mut registry,
                "last_night_planned_timestamp_seconds",
                "When the last night was first planned, Unix seconds (0 until planned)",
            ),
            started: seconds_gauge(
                &mut registry,
                "last_night_started_timestamp_seconds",
                "When the last night's first run started, Unix seconds (0 until then)",
            ),
            ended: seconds_gauge(
                &mut registry,
                "last_night_ended_timestamp_seconds",
                "When the last night was closed, Unix seconds (0 while it is open)",
            ),
        };
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Notifications in the outbox waiting for a first delivery or a retry",
            outbox_pending.clone(),
        );
        let outbox_dead = Gauge::default();
        registry.register(
            "outbox_dead_letters",
            "Notifications the outbox gave up on after every retry (nobody was told)",
            outbox_dead.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs finished by this process, by scenario, stack and outcome",
            runs.clone(),
        );
        let overruns = Family::<PlaceLabels, Counter>::default();
        registry.register(
            "run_overruns",
            "Daemon runs still going past their expected end, counted once per run",
            overruns.clone(),
        );
        let active_faults = Family::<StackLabels, Gauge>::default();
        registry.register(
            "active_faults",
            "Open fault-ledger entries (injected or being injected, not yet reverted), by stack",
            active_faults.clone(),
        );
        let faults_past_ttl = Family::<StackLabels, Gauge>::default();
        registry.register(
            "faults_past_ttl",
            "Open fault-ledger entries whose TTL has passed, by stack",
            faults_past_ttl.clone(),
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
                leader,
                last_night,
                outbox_pending,
                outbox_dead,
                runs,
                overruns,
                active_faults,
                faults_past_ttl,
                lease_refusals,
                lease_wait,
                query_latency,
            }),
        }
    }

    /// Counts a finished run (`f3_chaos_runs_total{scenario, stack, outcome}`).
    pub fn run_finished(&self, scenario: &str, stack: &str, outcome: RunOutcome) {
        self.inner
            .runs
            .get_or_create(&RunLabels {
                scenario: scenario.to_owned(),
                stack: stack.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Counts a run that went past its expected end (`f3_chaos_run_overruns_total`); call once per
    /// run.
    pub fn run_overran(&self, scenario: &str, stack: &str) {
        self.inner
            .overruns
            .get_or_create(&PlaceLabels {
                scenario: scenario.to_owned(),
                stack: stack.to_owned(),
            })
            .inc();
    }

    /// Sets `f3_chaos_leader`: whether this replica leads the night now.
    pub fn set_leader(&self, leading: bool) {
        self.inner.leader.set(i64::from(leading));
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

    /// Replaces `f3_chaos_active_faults` and `f3_chaos_faults_past_ttl` from the open ledger
    /// entries at `now`: one series per stack in `stacks` (0 when it has none) and per stack
    /// that has an entry; other stacks disappear.
    pub fn set_fault_ledger<'a>(
        &self,
        stacks: impl IntoIterator<Item = &'a str>,
        open: &[LedgerEntry],
        now: DateTime<Utc>,
    ) {
        let mut active: BTreeMap<&str, i64> = stacks.into_iter().map(|s| (s, 0)).collect();
        let mut past_ttl = active.clone();
        for entry in open {
            *active.entry(entry.stack.as_str()).or_default() += 1;
            let late = past_ttl.entry(entry.stack.as_str()).or_default();
            if entry.expires_at < now {
                *late += 1;
            }
        }
        for (family, counts) in [
            (&self.inner.active_faults, active),
            (&self.inner.faults_past_ttl, past_ttl),
        ] {
            family.clear();
            for (stack, n) in counts {
                family
                    .get_or_create(&StackLabels {
                        stack: stack.to_owned(),
                    })
                    .set(n);
            }
        }
    }

    /// Sets `f3_chaos_outbox_pending` and `f3_chaos_outbox_dead_letters`.
    pub fn set_outbox_backlog(&self, backlog: OutboxBacklog) {
        self.inner.outbox_pending.set(backlog.pending);
        self.inner.outbox_dead.set(backlog.dead);
    }

    /// Sets the `f3_chaos_last_night_*` gauges from the latest night in the store (all 0 when
    /// the daemon never opened one).
    pub fn set_last_night(&self, night: Option<&NightRecord>) {
        let g = &self.inner.last_night;
        g.window_end.set(unix_seconds(night.map(|n| n.window_end)));
        g.planned
            .set(unix_seconds(night.and_then(|n| n.planned_at)));
        g.started
            .set(unix_seconds(night.and_then(|n| n.started_at)));
        g.ended.set(unix_seconds(night.and_then(|n| n.closed_at)));
    }

    /// Refreshes every store-derived gauge (fault ledger for `stacks`, outbox, last night). A
    /// store error leaves the previous values and is logged: a scrape never fails for it.
    pub async fn refresh_from_store<'a>(
        &self,
        store: &Store,
        stacks: impl IntoIterator<Item = &'a str>,
    ) {
        match store.ledger_open().await {
            Ok(open) => self.set_fault_ledger(stacks, &open, Utc::now()),
            Err(e) => tracing::warn!(error = %e, "Could not read the fault ledger for /metrics."),
        }
        match store.outbox_backlog().await {
            Ok(backlog) => self.set_outbox_backlog(backlog),
            Err(e) => tracing::warn!(error = %e, "Could not count the outbox for /metrics."),
        }
        match store.latest_night().await {
            Ok(night) => self.set_last_night(night.as_ref()),
            Err(e) => tracing::warn!(error = %e, "Could not read the last night for /metrics."),
        }
    }

    /// The exposition of every series in `format` (content type [`ExpositionFormat::content_type`]).
    pub fn encode(&self, format: ExpositionFormat) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "Could not encode the metrics.");
        }
        match format {
            ExpositionFormat::OpenMetrics => out,
            ExpositionFormat::Classic => to_classic_text(&out),
        }
    }

    /// A latency observer for [`crate::assert::PrometheusClient::with_observer`]: every query the assertion
    /// engine makes lands in `f3_chaos_assertion_query_seconds{kind="instant"|"range"}`.
    pub fn query_observer(&self) -> QueryObserver {
        let metrics = self.clone();
        Arc::new(move |kind, took, _ok| metrics.observe_query(kind, took))
    }
}

/// Turns OpenMetrics text as `prometheus-client` writes it (counters, gauges, histograms; no
/// units, exemplars or `_created`) into the classic Prometheus text format 0.0.4: a counter
/// family's `# HELP`/`# TYPE` name gains the `_total` its samples carry, and the `# EOF` trailer
/// goes. Sample lines are the same in both formats.
pub fn to_classic_text(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_series_by_name() {
        let metrics = Metrics::new();
        metrics.run_finished("gcp-failover-validation", "uat-alpha", RunOutcome::Passed);
        metrics.run_finished("gcp-failover-validation", "uat-alpha", RunOutcome::Passed);
        metrics.run_finished("aws", "local", RunOutcome::Failed);
        metrics.run_overran("aws", "local");
        metrics.set_leader(true);
        metrics.lease_refused("uat-alpha");
        metrics.lease_acquired_after(Duration::from_millis(20));
        (metrics.query_observer())(QueryKind::Range, Duration::from_millis(3), true);
        let text = metrics.encode(ExpositionFormat::OpenMetrics);
        for series in [
            "f3_chaos_runs_total{scenario=\"gcp-failover-validation\",stack=\"uat-alpha\",outcome=\"passed\"} 2",
            "f3_chaos_runs_total{scenario=\"aws\",stack=\"local\",outcome=\"failed\"} 1",
            "f3_chaos_run_overruns_total{scenario=\"aws\",stack=\"local\"} 1",
            "f3_chaos_leader 1",
            "f3_chaos_lease_refusals_total{stack=\"uat-alpha\"} 1",
            "f3_chaos_lease_wait_seconds_count 1",
            "f3_chaos_assertion_query_seconds_count{kind=\"range\"} 1",
            concat!(
                "f3_chaos_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn every_configured_stack_has_a_fault_series_and_late_faults_are_counted() {
        let metrics = Metrics::new();
        let now = Utc::now();
        let entry = |stack: &str, expires_in: i64| LedgerEntry {
            id: uuid::Uuid::now_v7(),
            run_id: uuid::Uuid::now_v7(),
            stack: stack.into(),
            driver: "local".into(),
            step_name: "When GCP is lost".into(),
            spec: serde_json::json!({}),
            handle: None,
            state: crate::store::LedgerState::Injected,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in),
            updated_at: now,
        };
        metrics.set_fault_ledger(
            ["uat-alpha", "uat-beta"],
            &[entry("uat-alpha", 30), entry("uat-alpha", -5)],
            now,
        );
        let text = metrics.encode(ExpositionFormat::Classic);
        for series in [
            "f3_chaos_active_faults{stack=\"uat-alpha\"} 2",
            "f3_chaos_active_faults{stack=\"uat-beta\"} 0",
            "f3_chaos_faults_past_ttl{stack=\"uat-alpha\"} 1",
            "f3_chaos_faults_past_ttl{stack=\"uat-beta\"} 0",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        metrics.set_fault_ledger(["uat-beta"], &[], now);
        let text = metrics.encode(ExpositionFormat::Classic);
        assert!(!text.contains("stack=\"uat-alpha\"} "), "{text}");
    }

    #[test]
    fn classic_text_names_counter_families_with_their_total_suffix() {
        let metrics = Metrics::new();
        metrics.lease_refused("local");
        let text = metrics.encode(ExpositionFormat::Classic);
        assert!(
            text.contains("# TYPE f3_chaos_lease_refusals_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP f3_chaos_lease_refusals_total Runs refused"));
        assert!(text.contains("f3_chaos_lease_refusals_total{stack=\"local\"} 1\n"));
        assert!(text.contains("# TYPE f3_chaos_leader gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn prometheus_gets_the_classic_format_and_an_openmetrics_only_scraper_openmetrics() {
        use ExpositionFormat::{Classic, OpenMetrics};
        // Prometheus 2.x's scrape Accept header (scrape/scrape.go, scrapeAcceptHeader).
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(ExpositionFormat::negotiate(Some(prometheus)), Classic);
        assert_eq!(
            ExpositionFormat::negotiate(Some("text/plain; version=0.0.4")),
            Classic
        );
        assert_eq!(ExpositionFormat::negotiate(Some("*/*")), Classic);
        assert_eq!(
            ExpositionFormat::negotiate(Some("application/openmetrics-text; version=1.0.0")),
            OpenMetrics
        );
        assert_eq!(
            ExpositionFormat::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0"
            )),
            OpenMetrics
        );
        assert_eq!(ExpositionFormat::negotiate(None), OpenMetrics);
    }
}
