//! The validated scenario model: what `compile` produces and what the planner and the runner
//! consume. Every value here has already been checked (PromQL parses, references resolve, durations
//! are positive), so consumers never re-validate.
//!
//! This is a contract between modules: add fields and variants freely, rename with care.

use std::path::PathBuf;

use serde::Serialize;

use crate::duration::HumanDuration;
use crate::model::Cloud;

pub use crate::model::{Labels, Priority};

/// A compiled, validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Unique name (`metadata.name`), e.g. `gcp-failover-validation`.
    pub name: String,
    /// One-paragraph description for people.
    pub description: String,
    /// Team that owns the scenario as a whole (a name from the teams config).
    pub owner: String,
    /// Free-form tags (used by `gate --scenarios tag=…`).
    pub tags: Vec<String>,
    /// The file it was compiled from.
    pub source: PathBuf,
    /// Where it may run.
    pub targets: Targets,
    /// When and how often it runs, how long it takes.
    pub schedule: Schedule,
    /// Steady-state checks and load steps, in file order.
    pub given: Vec<GivenStep>,
    /// Faults, injected in file order and held concurrently until their durations end.
    pub when: Vec<FaultStep>,
    /// Assertions, each owned by a team.
    pub then: Vec<ThenStep>,
    /// Abort conditions, evaluated continuously while any fault is active.
    pub abort: Vec<AbortCondition>,
}

/// Which stacks a scenario may run on.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Targets {
    /// Stacks whose labels include all of these (empty = no label constraint).
    pub selector: Labels,
    /// Explicit stack names (empty = any stack matching `selector`).
    pub stacks: Vec<String>,
    /// Explicit opt-in to production stacks. Without it production stacks are never eligible.
    pub allow_production: bool,
    /// Names of the stacks from the config that are eligible (resolved at compile time).
    pub eligible_stacks: Vec<String>,
}

/// Cadence, priority and resource needs.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// How often the scenario should run.
    pub cadence: Cadence,
    /// Importance when the window is too small for everything.
    pub priority: Priority,
    /// Declared estimate of the whole run (Given + When + Then + recovery).
    pub estimated_duration: HumanDuration,
    /// Scenarios that must finish first on the same night (any stack).
    pub after: Vec<String>,
    /// Exclusive resources held for the whole run, e.g. `gcp-org-network`.
    pub resources: Vec<String>,
}

/// How often a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Cadence {
    /// Every night.
    Nightly,
    /// Once a week on the given weekday.
    Weekly {
        /// Day of the week, in the configured time zone.
        weekday: chrono::Weekday,
    },
    /// Every N nights (N ≥ 1).
    EveryNNights {
        /// The period in nights.
        nights: u32,
    },
    /// Only when triggered by hand (`run`/`trigger`); never planned.
    Manual,
}

/// A comparison operator of a check: `observed OP threshold` must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    /// Whether `observed OP threshold` holds. NaN never holds.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => observed < threshold,
            Comparison::Le => observed <= threshold,
            Comparison::Gt => observed > threshold,
            Comparison::Ge => observed >= threshold,
            Comparison::Eq => observed == threshold,
            Comparison::Ne => observed != threshold && !observed.is_nan(),
        }
    }

    /// Of two observations, the one further on the failing side (the "worst value").
    pub fn worse(self, a: f64, b: f64) -> f64 {
        match self {
            Comparison::Lt | Comparison::Le => a.max(b),
            Comparison::Gt | Comparison::Ge => a.min(b),
            Comparison::Eq | Comparison::Ne => a,
        }
    }

    /// The operator as written (`<`, `>=`, …).
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// A PromQL check: the query's value(s) compared to a threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// PromQL instant-vector expression (already parsed once by `promql-parser`).
    pub query: String,
    /// Comparison applied as `value OP threshold`.
    pub op: Comparison,
    /// Threshold in the query's unit.
    pub threshold: f64,
    /// Unit of the value and threshold for display: `s`, `ms`, `ratio`, `percent`, `tps`, … (optional).
    pub unit: Option<String>,
    /// The catalogue SLO this check came from, if it was a reference.
    pub slo: Option<SloRef>,
}

/// What a catalogue SLO adds to a check: owner and the plain-English texts for notifications.
#[derive(Debug, Clone, Serialize)]
pub struct SloRef {
    /// Catalogue name, e.g. `payments-e2e-latency-p99`.
    pub name: String,
    /// Team that owns the SLO definition.
    pub owner: String,
    /// Business impact when it fails, in plain English.
    pub impact: String,
    /// What to do when it fails.
    pub action: String,
}

/// A Given step.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GivenStep {
    /// The check must hold before any fault is injected.
    SteadyState {
        /// Step name shown to people.
        name: String,
        /// The check (instant query, evaluated after load steps have settled).
        check: Check,
    },
    /// Set the load generator to a target rate and verify it is reached.
    Load {
        /// Step name shown to people.
        name: String,
        /// Target payments per second.
        tps: f64,
        /// How long to wait for the rate to be reached before failing the precondition.
        settle_within: HumanDuration,
    },
}

/// A When step: one fault with its own duration.
#[derive(Debug, Clone, Serialize)]
pub struct FaultStep {
    /// Step name shown to people, e.g. `GCP connectivity lost`.
    pub name: String,
    /// What to break.
    pub fault: Fault,
    /// How long the fault stays injected (also its TTL, enforced by the target).
    pub duration: HumanDuration,
}

/// Direction of a network partition (Chaos Mesh `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Packets to the target are dropped.
    To,
    /// Packets from the target are dropped.
    From,
    /// Both.
    Both,
}

/// The fault kinds f3-chaos knows. Drivers map them to their target (processes, Chaos Mesh).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Partition the selected workloads from `target` and/or `external_targets`.
    NetworkPartition {
        /// Label selector of the workloads to isolate (e.g. `cloud: gcp`).
        selector: Labels,
        /// Which traffic is dropped.
        direction: Direction,
        /// Label selector of the peer side (empty = everything else).
        target: Labels,
        /// External hosts/CIDRs, the same on every stack.
        external_targets: Vec<String>,
        /// Also the stack's own external targets ([`crate::config::Stack::external_targets`],
        /// its payment scheme's endpoints), resolved when the fault is bound to a stack.
        stack_external_targets: bool,
    },
    /// Loss of a whole cloud of the stack: its cluster is partitioned from the others and the outside.
    CloudLoss {
        /// The cloud that goes dark.
        cloud: Cloud,
    },
    /// Kill the selected pods/processes (restart only on revert).
    PodKill {
        /// Label selector.
        selector: Labels,
        /// At most this many are killed (None = all selected).
        max_pods: Option<u32>,
    },
    /// Add latency to the selected workloads' traffic.
    NetworkDelay {
        /// Label selector.
        selector: Labels,
        /// Added latency.
        latency: HumanDuration,
        /// Jitter around it.
        jitter: HumanDuration,
    },
    /// CPU/memory stress on the selected workloads.
    Stress {
        /// Label selector.
        selector: Labels,
        /// CPU stress workers (0 = none).
        cpu_workers: u32,
        /// CPU load per worker, percent 0–100.
        cpu_load_percent: u32,
        /// Memory to allocate per worker, e.g. `256MB` (None = no memory stress).
        memory_size: Option<String>,
    },
}

impl Fault {
    /// The kebab-case kind, as written in YAML (`cloud-loss`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NetworkPartition { .. } => "network-partition",
            Fault::CloudLoss { .. } => "cloud-loss",
            Fault::PodKill { .. } => "pod-kill",
            Fault::NetworkDelay { .. } => "network-delay",
            Fault::Stress { .. } => "stress",
        }
    }
}

/// When a Then step's check must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Hold {
    /// At every evaluation point while the faults are active (range query over the fault window).
    DuringFault,
    /// At the instant the faults end (before revert).
    AtEnd,
    /// Within this long after revert, the check must hold (first passing point ≤ bound).
    RecoverWithin {
        /// The recovery bound.
        within: HumanDuration,
    },
    /// After recovery has been verified (instant query).
    AfterRecovery,
}

/// A Then step: an assertion owned by a team.
#[derive(Debug, Clone, Serialize)]
pub struct ThenStep {
    /// Step name shown to people, e.g. `Product SLO latency < 250ms`.
    pub name: String,
    /// Team notified when it fails.
    pub owner: String,
    /// The check.
    pub check: Check,
    /// When it must hold.
    pub hold: Hold,
    /// Business impact in plain English, for its owner's notification; overrides the SLO's
    /// (an inline check has no other).
    pub impact: Option<String>,
    /// What to do when it fails; overrides the SLO's.
    pub action: Option<String>,
}

/// An abort condition: when `check` holds, the experiment stops and reverts at once.
#[derive(Debug, Clone, Serialize)]
pub struct AbortCondition {
    /// Name shown to people, e.g. `success ratio collapsed`.
    pub name: String,
    /// The breach condition: abort when `value OP threshold` holds.
    pub check: Check,
}

/// A compiled SLO of the catalogue (`assertions/*.yaml`): a named, reusable, team-owned check.
#[derive(Debug, Clone, Serialize)]
pub struct Slo {
    /// Unique name, e.g. `payments-e2e-latency-p99`.
    pub name: String,
    /// Team owning the SLO definition (a team name from the config).
    pub owner: String,
    /// What it measures, for people.
    pub description: String,
    /// PromQL instant-vector query (parsed once by `promql-parser`).
    pub query: String,
    /// `value OP threshold` must hold for the SLO to be met.
    pub op: Comparison,
    /// Threshold in `unit`.
    pub threshold: f64,
    /// Unit of value and threshold: `s`, `ms`, `ratio`, `percent`, `tps`, …
    pub unit: String,
    /// Business impact when it fails, in plain English (used in notifications).
    pub impact: String,
    /// What to do when it fails (used in notifications).
    pub action: String,
    /// The file it was defined in.
    pub source: PathBuf,
}

impl Slo {
    /// The SLO as a [`Check`] (with its [`SloRef`]).
    pub fn check(&self) -> Check {
        Check {
            query: self.query.clone(),
            op: self.op,
            threshold: self.threshold,
            unit: Some(self.unit.clone()),
            slo: Some(SloRef {
                name: self.name.clone(),
                owner: self.owner.clone(),
                impact: self.impact.clone(),
                action: self.action.clone(),
            }),
        }
    }
}
