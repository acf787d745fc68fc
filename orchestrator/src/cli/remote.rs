//! `f3-chaos run` / `trigger` against a server (`--server URL`): start the run over the HTTP API
//! (`POST /api/v1/runs`), follow its SSE event stream and print it with the same
//! [`TerminalReporter`] a local run uses, so the terminal output and the exit code are the same
//! either way.
//!
//! For the lead wiring `--server` into `cli/run.rs`:
//!
//! ```no_run
//! # async fn wire(config: &f3_chaos::config::Config) -> anyhow::Result<u8> {
//! use f3_chaos::cli::remote::{Remote, run_remote, trigger_remote};
//! use f3_chaos::api::StartRequest;
//! let remote = Remote::from_env("http://chaos.internal:7070")?; // token from $F3_CHAOS_TOKEN
//! let request = StartRequest { scenario: "gcp-failover-validation".into(), stack: None, wait_for_stack_seconds: None };
//! let code = run_remote(&remote, &request, config, true).await?.exit_code; // --wait-for-assertions
//! let code = trigger_remote(&remote, &request).await?;                    // trigger / no wait
//! # Ok(code) }
//! ```
//!
//! Exit codes: the run's outcome as for a local run; 7 (`STACK_BUSY`) on 409; 8
//! (`INVALID_INPUT`) on 400/404 (unknown scenario or stack); 10 (`ERROR`) on 401/403 (the
//! server's message is printed) and when the stream ends before `run-finished`. Ctrl-C stops
//! following; the run itself continues on the server.

use anyhow::Context as _;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use url::Url;
use uuid::Uuid;

use super::report::TerminalReporter;
use crate::api::{StartRequest, StartedRun};
use crate::config::Config;
use crate::document::RunDocument;
use crate::exit_codes;
use crate::model::RunOutcome;
use crate::run::{RunEvent, RunReport, StepResult};
use crate::store::RunRecord;

/// Environment variable the CLI reads its bearer token from.
pub const TOKEN_ENV: &str = "F3_CHAOS_TOKEN";

/// A server and the token to call it with.
#[derive(Clone)]
pub struct Remote {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A client of the server at `server` (e.g. `http://127.0.0.1:7070`) sending `token`.
    ///
    /// # Errors
    /// `server` is not an http(s) URL.
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        let mut base = Url::parse(server).with_context(|| format!("server URL `{server}`"))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "server URL `{server}` is not http(s)"
        );
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            base,
            token: token.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// [`Remote::new`] with the token from `$F3_CHAOS_TOKEN`.
    ///
    /// # Errors
    /// The variable is unset, or the URL is invalid.
    pub fn from_env(server: &str) -> anyhow::Result<Self> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .with_context(|| format!("set {TOKEN_ENV} to your API token to use --server"))?;
        Self::new(server, &token)
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .with_context(|| format!("joining {path} to {}", self.base))
    }

    /// `GET /api/v1/runs/{id}`: the run's [`RunDocument`], as `results ID --output json` prints it.
    ///
    /// # Errors
    /// The server cannot be reached, or does not answer 2xx with a run document.
    pub async fn run_document(&self, id: Uuid) -> anyhow::Result<RunDocument> {
        let response = self
            .http
            .get(self.url(&format!("api/v1/runs/{id}"))?)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?
            .error_for_status()
            .with_context(|| format!("reading run {id}"))?;
        response.json().await.context("reading the run document")
    }

    async fn start(
        &self,
        path: &str,
        req: &StartRequest,
    ) -> anyhow::Result<Result<StartedRun, u8>> {
        let response = self
            .http
            .post(self.url(path)?)
            .bearer_auth(&self.token)
            .json(req)
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response.json().await.context("reading the answer")?));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"].as_str().unwrap_or("(no message)");
        eprintln!("error: the server refused the run ({status}): {message}");
        Ok(Err(match status {
            StatusCode::CONFLICT => {
                eprintln!(
                    "hint: wait with --wait-for-stack 30m, or see it with `f3-chaos results`"
                );
                exit_codes::STACK_BUSY
            }
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => exit_codes::INVALID_INPUT,
            _ => exit_codes::ERROR,
        }))
    }
}

/// What [`run_remote`] saw.
#[derive(Debug, Clone)]
pub struct RemoteRun {
    /// The process exit code, as a local run's.
    pub exit_code: u8,
    /// The run, once the server started it.
    pub run_id: Option<Uuid>,
    /// Every event received, in order.
    pub events: Vec<RunEvent>,
    /// The report rebuilt from the events (`None` when the stream ended early).
    pub report: Option<RunReport>,
}

/// Starts `req` on the server, follows the run's events to `run-finished`, prints them like a
/// local `run --wait-for-assertions` (when `print`), and returns the outcome's exit code.
///
/// # Errors
/// The server cannot be reached or answers something that is not the API.
pub async fn run_remote(
    remote: &Remote,
    req: &StartRequest,
    config: &Config,
    print: bool,
) -> anyhow::Result<RemoteRun> {
    let started = match remote.start("api/v1/runs", req).await? {
        Ok(started) => started,
        Err(code) => {
            return Ok(RemoteRun {
                exit_code: code,
                run_id: None,
                events: Vec::new(),
                report: None,
            });
        }
    };
    let response = remote
        .http
        .get(remote.url(&started.events_url)?)
        .bearer_auth(&remote.token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .context("opening the run's event stream")?
        .error_for_status()
        .context("opening the run's event stream")?;
    let reporter = print.then(TerminalReporter::new);
    let mut stream = response.bytes_stream().eventsource();
    let mut events = Vec::new();
    let mut finished = false;
    while let Some(message) = stream.next().await {
        let message = message.context("reading the run's event stream")?;
        let event: RunEvent = serde_json::from_str(&message.data)
            .with_context(|| format!("event {} is not a run event", message.id))?;
        if let Some(reporter) = &reporter {
            reporter.event(&event, config);
        }
        finished = matches!(event, RunEvent::RunFinished { .. });
        events.push(event);
        if finished {
            break;
        }
    }
    if !finished {
        eprintln!(
            "error: the event stream of run {} ended before the run did; follow it with `f3-chaos results {}`",
            started.run_id, started.run_id
        );
        return Ok(RemoteRun {
            exit_code: exit_codes::ERROR,
            run_id: Some(started.run_id),
            events,
            report: None,
        });
    }
    let record: Option<RunRecord> = async {
        remote
            .http
            .get(remote.url(&started.run_url).ok()?)
            .bearer_auth(&remote.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
    .await;
    let report = report_from_events(&started, &events, record.as_ref());
    if let (Some(reporter), Some(report)) = (&reporter, &report) {
        reporter.finish(report);
    }
    Ok(RemoteRun {
        exit_code: report
            .as_ref()
            .map_or(exit_codes::ERROR, |r| r.outcome.exit_code()),
        run_id: Some(started.run_id),
        events,
        report,
    })
}

/// Rebuilds a run's report from its events (and its stored record, for start and end times).
pub fn report_from_events(
    started: &StartedRun,
    events: &[RunEvent],
    record: Option<&RunRecord>,
) -> Option<RunReport> {
    let mut steps: Vec<StepResult> = Vec::new();
    let mut notified = Vec::new();
    let mut abort_latency_ms = None;
    let mut end: Option<(RunOutcome, Option<f64>, Option<String>)> = None;
    for event in events {
        match event {
            RunEvent::StepFinished(step) => steps.push(step.clone()),
            RunEvent::Notifying { team, .. } => notified.push(team.clone()),
            RunEvent::AbortTriggered { latency_ms, .. } => abort_latency_ms = Some(*latency_ms),
            RunEvent::RunFinished {
                outcome,
                pass_rate,
                reason,
            } => end = Some((*outcome, *pass_rate, reason.clone())),
            _ => {}
        }
    }
    let (outcome, pass_rate, reason) = end?;
    let now = chrono::Utc::now();
    Some(RunReport {
        run_id: started.run_id,
        scenario: started.scenario.clone(),
        stack: started.stack.clone(),
        outcome,
        reason,
        steps,
        pass_rate,
        abort_latency_ms,
        notified,
        started_at: record.map_or(now, |r| r.started_at),
        ended_at: record.and_then(|r| r.ended_at).unwrap_or(now),
    })
}

/// Fire and forget on the server (`POST /api/v1/triggers`), printing what `f3-chaos trigger`
/// prints; returns its exit code (0 once the faults are injected, the run's code if it ended
/// first).
///
/// # Errors
/// The server cannot be reached or answers something that is not the API.
pub async fn trigger_remote(remote: &Remote, req: &StartRequest) -> anyhow::Result<u8> {
    let started = match remote.start("api/v1/triggers", req).await? {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let id = started.run_id;
    match (started.state.as_str(), started.outcome) {
        ("finished", Some(outcome)) => {
            println!(
                "Run {id} ended before any fault was injected: {}.",
                outcome.as_str()
            );
            Ok(outcome.exit_code())
        }
        ("injected", _) => {
            println!(
                "Run {id} started: {} on {}; faults injected.",
                started.scenario, started.stack
            );
            println!("Follow it with: f3-chaos results {id}");
            Ok(exit_codes::PASSED)
        }
        _ => {
            println!(
                "Run {id} is still in Given after 5 minutes; it continues on the server. Follow it with: f3-chaos results {id}"
            );
            Ok(exit_codes::PASSED)
        }
    }
}
