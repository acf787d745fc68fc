//! The records the store reads and writes: plain serde structs typed with the shared vocabulary
//! of [`crate::model`] (statuses, verdicts, phases are parsed once, at the row boundary in
//! `rows.rs`); payloads and evidence are `serde_json::Value`. Instants are UTC with millisecond precision
//! (the store keeps Unix milliseconds; sub-millisecond digits are dropped on write).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{NotificationKind, Phase, RunOutcome, RunStatus, Verdict};

/// A run about to start (the argument of [`Store::create_run`](super::Store::create_run)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// Run id; use UUID v7 (`Uuid::now_v7()`) so that id order is start order.
    pub id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Target stack name.
    pub stack: String,
    /// How the run was started: `cli`, `trigger`, `daemon` or `api`.
    pub trigger: String,
    /// Who started it (user name, token name or daemon id).
    pub started_by: String,
    /// Start instant; also the first heartbeat.
    pub started_at: DateTime<Utc>,
    /// Process id of the f3-chaos process that owns the run.
    pub pid: u32,
    /// Host name of that process (see [`local_hostname`](super::local_hostname)).
    pub host: String,
    /// Digest of the compiled scenario, to tell edited scenarios apart in history.
    pub scenario_digest: Option<String>,
    /// The chaos night (date the 00:00–07:00 window starts, in the configured zone) for planned
    /// runs; `None` for ad-hoc runs.
    pub night: Option<NaiveDate>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (UUID v7).
    pub id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Target stack name.
    pub stack: String,
    /// `cli`, `trigger`, `daemon` or `api`.
    pub trigger: String,
    /// Who started it.
    pub started_by: String,
    /// Running, or the outcome it finished with.
    pub status: RunStatus,
    /// Start instant.
    pub started_at: DateTime<Utc>,
    /// End instant, once finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// Owning process id.
    pub pid: u32,
    /// Owning process host name.
    pub host: String,
    /// Last heartbeat of the owning process (the start instant until the first heartbeat).
    pub heartbeat_at: DateTime<Utc>,
    /// Digest of the compiled scenario.
    pub scenario_digest: Option<String>,
    /// The chaos night for planned runs.
    pub night: Option<NaiveDate>,
    /// The runner's summary document, once finished.
    pub summary: Option<Value>,
}

impl RunRecord {
    /// The run's outcome; `None` while it is running.
    pub fn outcome(&self) -> Option<RunOutcome> {
        self.status.outcome()
    }

    /// Whether the run still has no outcome.
    pub fn is_running(&self) -> bool {
        self.status == RunStatus::Running
    }

    /// Duration from start to end (`None` while running, or if the clock went backwards).
    pub fn duration(&self) -> Option<Duration> {
        (self.ended_at? - self.started_at).to_std().ok()
    }

    /// Whether the last heartbeat is at most `stale_after` before `now` (a heartbeat in the
    /// future — clock skew between hosts — counts as fresh).
    pub fn heartbeat_fresh(&self, now: DateTime<Utc>, stale_after: Duration) -> bool {
        match (now - self.heartbeat_at).to_std() {
            Ok(age) => age <= stale_after,
            Err(_) => true,
        }
    }

    /// Whether the process owning this run is alive, as any f3-chaos process on any host judges
    /// it at `now` — the one liveness rule of the sweep, the daemon and `results`:
    ///
    /// - a run with an outcome is [`Liveness::Finished`];
    /// - a heartbeat older than [`HEARTBEAT_TTL`] ⇒ [`Liveness::Dead`], wherever the owner runs
    ///   (the owner writes one every [`HEARTBEAT_EVERY`]; a frozen or partitioned owner stops);
    /// - on the owner's own host (`local_host` equals the run's host), a missing `/proc/PID` ⇒
    ///   dead at once, without waiting for the heartbeat to age; an existing `/proc/PID` proves
    ///   nothing (PIDs are reused), so the heartbeat still decides;
    /// - otherwise [`Liveness::Alive`].
    pub fn liveness(&self, now: DateTime<Utc>, local_host: &str) -> Liveness {
        if !self.is_running() {
            return Liveness::Finished;
        }
        if self.host == local_host && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
        {
            return Liveness::Dead {
                since: self.heartbeat_at,
                why: format!("process {} on {} is gone", self.pid, self.host),
            };
        }
        if !self.heartbeat_fresh(now, HEARTBEAT_TTL) {
            return Liveness::Dead {
                since: self.heartbeat_at,
                why: format!(
                    "no heartbeat from {} pid {} since {}",
                    self.host,
                    self.pid,
                    self.heartbeat_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            };
        }
        Liveness::Alive
    }
}

/// How often a live run writes its heartbeat (and renews its stack lease).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A running run whose last heartbeat is older than this is dead, on any host: four missed
/// heartbeats. Short, so a new leader reverts a dead leader's faults within seconds instead of
/// leaving them to their TTL; clocks of hosts sharing a store must agree to well within it (NTP).
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(4);

/// The answer of [`RunRecord::liveness`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The run has an outcome.
    Finished,
    /// Its owner is alive: leave it alone.
    Alive,
    /// Its owner is gone: revert its faults and end it `interrupted` at `since`.
    Dead {
        /// Its last heartbeat (the run's end, for the record).
        since: DateTime<Utc>,
        /// Why it is judged dead, for people.
        why: String,
    },
}

/// Filter for [`Store::runs`](super::Store::runs); every `None` field matches everything.
/// Results are newest first (by `started_at`, then id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Exact scenario name.
    pub scenario: Option<String>,
    /// Exact stack name.
    pub stack: Option<String>,
    /// Exact status: running or an outcome.
    pub outcome: Option<RunStatus>,
    /// Exact chaos night.
    pub night: Option<NaiveDate>,
    /// Runs started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Runs started strictly before this instant (use the oldest `started_at` of one page as
    /// `until` of the next).
    pub until: Option<DateTime<Utc>>,
    /// At most this many runs; `None` = no limit.
    pub limit: Option<u32>,
}

/// One entry of a run's durable event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The run.
    pub run_id: Uuid,
    /// Position in the run's log: 1, 2, 3, … (assigned by the store).
    pub seq: i64,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// Event kind (the runner's event name).
    pub kind: String,
    /// Event body.
    pub payload: Value,
}

/// One step of a run (a Given/When/Then line, or an abort/revert/recovery step), keyed by
/// `(run_id, index)`; [`Store::upsert_step`](super::Store::upsert_step) replaces every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Position in the run, from 0.
    pub index: i64,
    /// Where the step sits in the Given/When/Then timeline.
    pub phase: Phase,
    /// Display name, e.g. `Assertion: Product SLO latency < 250ms`.
    pub name: String,
    /// Owner team of a Then step.
    pub owner: Option<String>,
    /// The verdict; `None` while the step runs.
    pub verdict: Option<Verdict>,
    /// Start instant.
    pub started_at: DateTime<Utc>,
    /// End instant.
    pub ended_at: Option<DateTime<Utc>>,
    /// Observed value (unit as in the assertion, e.g. seconds or a 0–1 ratio). NaN is stored as
    /// `None` by SQLite; do not rely on NaN round-tripping.
    pub observed: Option<f64>,
    /// Threshold the observed value was compared with (same unit).
    pub threshold: Option<f64>,
    /// Evidence document (query, window, series, worst value).
    pub evidence: Option<Value>,
    /// Human-readable message (reason of an error or inconclusive verdict).
    pub message: Option<String>,
}

impl StepRecord {
    /// A text field of the evidence document (`op`, `unit`, `query`, …).
    pub fn evidence_text(&self, field: &str) -> Option<&str> {
        self.evidence.as_ref()?.get(field)?.as_str()
    }

    /// The comparison that had to hold (`<`, `>=`, …), from the evidence.
    pub fn op(&self) -> Option<&str> {
        self.evidence_text("op")
    }

    /// Unit of `observed` and `threshold` (`s`, `ratio`, …), from the evidence.
    pub fn unit(&self) -> Option<&str> {
        self.evidence_text("unit")
    }

    /// `observed 410 ms, needs < 250 ms` for a step with a threshold
    /// ([`crate::present::comparison`]); `None` without one.
    pub fn comparison(&self) -> Option<String> {
        self.threshold?;
        crate::present::comparison(self.observed, self.op(), self.threshold, self.unit())
    }
}

/// Who asks for a stack lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The run that will use the stack.
    pub run_id: Uuid,
    /// Its scenario (shown to refused runs).
    pub scenario: String,
    /// User name or daemon id.
    pub holder: String,
}

/// A stack lease: one disruptive experiment per stack. Free once `expires_at` has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The stack.
    pub stack: String,
    /// The holding run.
    pub run_id: Uuid,
    /// The holding run's scenario.
    pub scenario: String,
    /// User name or daemon id of the holder.
    pub holder: String,
    /// When the holder took the lease.
    pub acquired_at: DateTime<Utc>,
    /// Last renewal (= `acquired_at` until renewed).
    pub renewed_at: DateTime<Utc>,
    /// The lease is free from this instant on unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// State of a fault-ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerState {
    /// Recorded; injection is about to happen (or crashed half-way).
    Pending,
    /// The fault is active on the target.
    Injected,
    /// The fault was reverted (or found gone).
    Reverted,
    /// Reverting failed; the target's TTL is the last line of defence. Needs a human.
    RevertFailed,
}

impl LedgerState {
    /// Every state, in lifecycle order.
    pub const ALL: [LedgerState; 4] = [
        LedgerState::Pending,
        LedgerState::Injected,
        LedgerState::Reverted,
        LedgerState::RevertFailed,
    ];

    /// The stored spelling: `pending`, `injected`, `reverted`, `revert-failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Pending => "pending",
            LedgerState::Injected => "injected",
            LedgerState::Reverted => "reverted",
            LedgerState::RevertFailed => "revert-failed",
        }
    }

    /// Whether the fault may still be active (everything but `reverted`).
    pub fn is_open(self) -> bool {
        self != LedgerState::Reverted
    }
}

impl std::fmt::Display for LedgerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LedgerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LedgerState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown fault ledger state {s:?}"))
    }
}

/// One fault in the fault ledger, written before injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Entry id (UUID v7 recommended).
    pub id: Uuid,
    /// The run that injects the fault.
    pub run_id: Uuid,
    /// Target stack.
    pub stack: String,
    /// Fault driver name (`local`, `chaos-mesh`).
    pub driver: String,
    /// The When step that injects it.
    pub step_name: String,
    /// The driver's fault spec.
    pub spec: Value,
    /// The driver's handle once injected (what `revert` needs).
    pub handle: Option<Value>,
    /// Lifecycle state.
    pub state: LedgerState,
    /// When the entry was written.
    pub created_at: DateTime<Utc>,
    /// When the fault's TTL ends on the target (the dead-man switch fires).
    pub expires_at: DateTime<Utc>,
    /// Last state change.
    pub updated_at: DateTime<Utc>,
}

/// Where an outbox row's delivery stands (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxStatus {
    /// Waiting for a (first or further) delivery attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// A team's row that the worker split into one row per route (each then delivered and
    /// retried on its own, so a retry never repeats a route that already succeeded).
    Routed,
    /// The worker gave up: every attempt failed and nobody was told.
    Dead,
    /// A team's row for a team without notification routes (`routes: []`): nobody was told,
    /// by configuration.
    NoRoute,
}

impl OutboxStatus {
    /// Every status.
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Routed,
        OutboxStatus::Dead,
        OutboxStatus::NoRoute,
    ];

    /// The stored name (`pending`, `delivered`, `routed`, `dead`, `no-route`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Routed => "routed",
            OutboxStatus::Dead => "dead",
            OutboxStatus::NoRoute => "no-route",
        }
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for OutboxStatus {
    type Err = String;

    /// Parses the stored name ([`OutboxStatus::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboxStatus::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an outbox status"))
    }
}

/// One notification for one team, waiting in (or delivered from) the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Outbox id (increasing).
    pub id: i64,
    /// The run the notification is about.
    pub run_id: Uuid,
    /// Owner team to notify.
    pub team: String,
    /// What the notification is about.
    pub kind: NotificationKind,
    /// Message body.
    pub payload: Value,
    /// Where delivery stands.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Earliest instant of the next attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A notification queued together with the run's outcome
/// ([`super::Store::finish_run_with_outbox`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Team name.
    pub team: String,
    /// What the notification is about.
    pub kind: NotificationKind,
    /// The message document the delivery worker renders.
    pub payload: serde_json::Value,
}
