//! Test helper: a real Prometheus process on loopback scraping a controllable exporter.
//!
//! - [`Exporter`]: an in-process HTTP server on `127.0.0.1:0` serving `/metrics` in the Prometheus
//!   text exposition format (version 0.0.4) with gauges the test sets at any time, and a switch to
//!   make scrapes fail (`503`) so series go stale — the "target down" case.
//! - [`TestPrometheus`]: `/usr/bin/prometheus` (the `prometheus` found on `PATH`) started on a free
//!   loopback port with a temporary data directory and a config scraping the given targets every
//!   1 s. It is killed on drop; [`TestPrometheus::stop`] kills it early ("Prometheus stopped
//!   mid-run").
//!
//! ```no_run
//! # async fn demo() {
//! use f3_chaos_tests::prometheus::{Exporter, TestPrometheus};
//! let exporter = Exporter::start().await;
//! exporter.set("test_latency_seconds", &[("cloud", "gcp")], 0.12);
//! let prom = TestPrometheus::start(&[exporter.addr()]).await;
//! prom.wait_for_value("test_latency_seconds", 0.12).await;
//! # }
//! ```
//!
//! Both need a Tokio runtime (`#[tokio::test]`); the exporter is served by a task of that runtime,
//! so do not block the test thread (use `tokio::time::sleep`, not `std::thread::sleep`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use f3_chaos::assert::{PrometheusClient, Sample, SloSource, format_prom_float};

use crate::process;

/// Scrape (and rule evaluation) interval of every [`TestPrometheus`].
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// Label pairs of one series, sorted by name.
type LabelSet = Vec<(String, String)>;

#[derive(Default)]
struct ExporterState {
    /// metric name → label set → value.
    gauges: Mutex<BTreeMap<String, BTreeMap<LabelSet, f64>>>,
    /// When true, `/metrics` answers 503 and Prometheus marks the target's series stale.
    down: AtomicBool,
}

/// A controllable metrics endpoint (see the module docs). Stops when dropped.
pub struct Exporter {
    addr: SocketAddr,
    state: Arc<ExporterState>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Binds `127.0.0.1:0` and serves `/metrics` from a task of the current Tokio runtime.
    pub async fn start() -> Exporter {
        let state = Arc::new(ExporterState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an exporter port on loopback");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Exporter { addr, state, task }
    }

    /// The address to scrape (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets gauge `name{labels}` to `value` (NaN and ±Inf allowed); visible from the next scrape.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut gauges = self.state.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges
            .entry(name.to_owned())
            .or_default()
            .insert(label_set(labels), value);
    }

    /// Stops exposing `name{labels}`: Prometheus marks the series stale at the next scrape.
    pub fn remove(&self, name: &str, labels: &[(&str, &str)]) {
        let mut gauges = self.state.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = gauges.get_mut(name) {
            series.remove(&label_set(labels));
            if series.is_empty() {
                gauges.remove(name);
            }
        }
    }

    /// `true`: every scrape fails with HTTP 503 (target down, series go stale); `false`: serve again.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// The exposition text currently served (for debugging a test).
    pub fn render(&self) -> String {
        render(&self.state)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn label_set(labels: &[(&str, &str)]) -> LabelSet {
    let mut set: LabelSet = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    set.sort();
    set
}

async fn metrics(State(state): State<Arc<ExporterState>>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "exporter is down (test switch)",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
        .into_response()
}

/// Text exposition format 0.0.4: `# TYPE name gauge` then `name{k="v",…} value` per series; label
/// values escape `\`, `"` and newline.
fn render(state: &ExporterState) -> String {
    let gauges = state.gauges.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    for (name, series) in gauges.iter() {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in series {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace('\\', r"\\")
                        .replace('"', "\\\"")
                        .replace('\n', r"\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(out, "{name}{labels} {}", format_prom_float(*value));
        }
    }
    out
}

/// A Prometheus server for one test (see the module docs). Killed on drop.
pub struct TestPrometheus {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl TestPrometheus {
    /// How long [`TestPrometheus::start`] waits for `/-/ready`.
    pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts Prometheus scraping `targets` (`/metrics`, every [`SCRAPE_INTERVAL`]) and waits until it
    /// is ready. Panics with the tail of its log when it does not become ready.
    pub async fn start(targets: &[SocketAddr]) -> TestPrometheus {
        let dir = tempfile::Builder::new()
            .prefix("f3-test-prometheus-")
            .tempdir()
            .expect("create a temporary directory for Prometheus");
        std::fs::write(dir.path().join("prometheus.yml"), config(targets))
            .expect("write the Prometheus config");
        let (child, addr) = process::start_ready(
            "Prometheus",
            "install the Debian package `prometheus`",
            &dir.path().join("prometheus.log"),
            Self::READY_TIMEOUT,
            |addr| {
                let mut command = Command::new(process::installed_or_on_path(
                    "/usr/bin/prometheus",
                    "prometheus",
                ));
                command
                    .arg(format!(
                        "--config.file={}",
                        dir.path().join("prometheus.yml").display()
                    ))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg("--web.enable-lifecycle")
                    .arg("--storage.tsdb.retention.time=1d");
                command
            },
        )
        .await;
        TestPrometheus {
            child: Some(child),
            dir,
            addr,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding `prometheus.yml`, `data/` and `prometheus.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client of this server with a 5 s per-request timeout.
    pub fn client(&self) -> PrometheusClient {
        PrometheusClient::new(&self.url(), Duration::from_secs(5)).expect("a loopback URL is valid")
    }

    /// Process id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server now and waits for it to exit (idempotent). Queries then fail as unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls an instant query (every 200 ms) until `accept` returns true for its samples; returns
    /// them. Panics after `timeout` with the last answer.
    pub async fn wait_until(
        &self,
        query: &str,
        timeout: Duration,
        accept: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let client = self.client();
        let deadline = Instant::now() + timeout;
        loop {
            let answer = client.instant(query, None).await;
            if let Ok(samples) = &answer
                && accept(samples)
            {
                return samples.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "`{query}` did not reach the expected state within {timeout:?}; last: {answer:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (up to 15 s) until `query` returns at least one non-NaN sample.
    pub async fn wait_for_data(&self, query: &str) -> Vec<Sample> {
        self.wait_until(query, Duration::from_secs(15), |s| {
            s.iter().any(|s| !s.point.value.is_nan())
        })
        .await
    }

    /// Waits (up to 15 s) until every sample of `query` equals `value` (and there is one).
    pub async fn wait_for_value(&self, query: &str, value: f64) -> Vec<Sample> {
        self.wait_until(query, Duration::from_secs(15), |s| {
            !s.is_empty() && s.iter().all(|s| s.point.value == value)
        })
        .await
    }

    /// The last 40 lines of `prometheus.log`.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.dir.path().join("prometheus.log"))
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}
