//! The planner's own input and output types. They carry no I/O handles and no references to the
//! scenario or config model, so the planner core stays a pure function that tests and benchmarks can
//! feed directly (the adapter in [`super::adapter`] builds a [`PlanInput`] from the compiled model).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use schemars::JsonSchema;
use serde::Serialize;

/// A half-open span of UTC time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct Window {
    /// First instant (inclusive), UTC.
    pub start: DateTime<Utc>,
    /// First instant after the span (exclusive), UTC.
    pub end: DateTime<Utc>,
}

impl Window {
    /// Length of the span (zero when `end <= start`).
    pub fn length(&self) -> TimeDelta {
        (self.end - self.start).max(TimeDelta::zero())
    }
}

/// Everything the planner needs for one night. Built by [`super::plan_input`] from the config, the
/// compiled scenarios and the run history, or directly by tests and benchmarks.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The night being planned (see `docs/planner.md`: the local date on which the window starts).
    pub night: NaiveDate,
    /// The chaos window of that night, in UTC.
    pub window: Window,
    /// Recovery buffer required between the end of one experiment and the start of the next on the
    /// same stack (not required before a reservation or the window end).
    pub cooldown: TimeDelta,
    /// The stacks that can host experiments, with the times they are held by someone else.
    pub stacks: Vec<StackAvailability>,
    /// Candidate scenarios, in any order (the plan does not depend on it except for ties).
    pub scenarios: Vec<PlanScenario>,
    /// Exclusive resources by name and their capacity (concurrent holders across all stacks). A
    /// resource a scenario names but this map lacks has capacity 1.
    pub resources: BTreeMap<String, u32>,
    /// Slots that already started (re-planning): kept exactly where they are, never moved.
    pub frozen: Vec<Slot>,
    /// No new slot starts before this instant (re-planning: "now"); `None` = the window start.
    pub not_before: Option<DateTime<Utc>>,
}

/// A stack and the spans inside the window when it is not available to the planner.
#[derive(Debug, Clone)]
pub struct StackAvailability {
    /// Stack name, e.g. `uat-alpha`.
    pub name: String,
    /// Reservations, blackouts, outages: spans the stack is held by someone else (UTC). They may
    /// overlap each other and the window edges.
    pub busy: Vec<Busy>,
}

/// A span of time a stack is not available.
#[derive(Debug, Clone)]
pub struct Busy {
    /// The span, UTC.
    pub span: Window,
    /// Who or what holds it, for people (e.g. `reserved by payments: release 4.2`).
    pub reason: String,
}

/// One candidate scenario as the planner sees it.
#[derive(Debug, Clone)]
pub struct PlanScenario {
    /// Unique scenario name.
    pub name: String,
    /// The stacks it may run on and how long it takes on each (declared estimate or learned p90).
    /// Empty = no eligible stack.
    pub options: Vec<StackOption>,
    /// Value of running it tonight (priority weight × staleness, ≥ 1 when due). Unitless points.
    pub weight: u64,
    /// Scenarios that must end before this one starts, on any stack, on the same night. If one of
    /// them is not planned, neither is this one.
    pub after: Vec<String>,
    /// Exclusive resources held for the whole run (not during the cooldown).
    pub resources: Vec<String>,
    /// Decided before planning that it will not run tonight (e.g. not due, manual cadence).
    pub exclude: Option<SkipReason>,
    /// The stacks it may run on whose driver cannot inject one of its faults (not in
    /// `options`), each with the first When step it cannot
    /// ([`crate::fault::capabilities::incapable`]).
    pub incapable: Vec<crate::fault::capabilities::Incapable>,
}

/// One stack a scenario may run on.
#[derive(Debug, Clone)]
pub struct StackOption {
    /// Stack name (must be one of [`PlanInput::stacks`]; unknown names are ignored).
    pub stack: String,
    /// How long the whole run takes there (Given + When + Then + recovery).
    pub duration: TimeDelta,
}

/// One scenario on one stack at one time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct Slot {
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Start, UTC (RFC 3339 in JSON).
    pub start: DateTime<Utc>,
    /// Expected end, UTC (RFC 3339 in JSON).
    pub end: DateTime<Utc>,
}

/// A scenario the plan leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Skipped {
    /// Scenario name.
    pub scenario: String,
    /// Why it is not planned (plain English in JSON; see [`SkipReason`]).
    #[serde(serialize_with = "serialize_reason")]
    #[schemars(with = "String")]
    pub reason: SkipReason,
    /// Machine-readable kind of the reason (`not-due`, `no-eligible-stack`, …).
    pub code: &'static str,
}

fn serialize_reason<S: serde::Serializer>(reason: &SkipReason, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(reason)
}

/// Why a scenario is not in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its cadence does not ask for it tonight (or it is manual).
    NotDue {
        /// Detail, e.g. `weekly on Mon`, `ran 2 nights ago, every 3 nights`, `manual cadence`.
        detail: String,
    },
    /// No stack it may run on is known and available tonight.
    NoEligibleStack,
    /// It may run on stacks, but none of their drivers can inject its faults
    /// ([`crate::fault::capabilities`]).
    NoCapableStack {
        /// What each eligible stack's driver cannot do, e.g. `local: driver local cannot
        /// inject network-delay (When step "…"): …`, joined with `; `.
        detail: String,
    },
    /// A scenario it must run `after:` is not planned.
    BlockedByAfter {
        /// The earlier scenario that is not planned.
        earlier: String,
    },
    /// It is longer than every free span of its eligible stacks (even with nothing else planned).
    DoesNotFit,
    /// There was room on a stack, but an exclusive resource it needs was held by others then.
    ResourceBusy {
        /// The resource, e.g. `gcp-org-network`.
        resource: String,
    },
    /// It would fit alone, but the time was given to scenarios of higher value.
    LostToHigherPriority,
}

impl SkipReason {
    /// The kebab-case kind, stable for machines.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NotDue { .. } => "not-due",
            SkipReason::NoEligibleStack => "no-eligible-stack",
            SkipReason::NoCapableStack { .. } => "no-capable-stack",
            SkipReason::BlockedByAfter { .. } => "blocked-by-after",
            SkipReason::DoesNotFit => "does-not-fit",
            SkipReason::ResourceBusy { .. } => "resource-busy",
            SkipReason::LostToHigherPriority => "lost-to-higher-priority",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotDue { detail } => write!(f, "not due ({detail})"),
            SkipReason::NoEligibleStack => f.write_str("no eligible stack available tonight"),
            SkipReason::NoCapableStack { detail } => {
                write!(f, "no stack's driver can run it: {detail}")
            }
            SkipReason::BlockedByAfter { earlier } => {
                write!(f, "blocked by after: {earlier} (not planned tonight)")
            }
            SkipReason::DoesNotFit => {
                f.write_str("does not fit: longer than every free span of its eligible stacks")
            }
            SkipReason::ResourceBusy { resource } => {
                write!(
                    f,
                    "resource busy: {resource} is held by other scenarios whenever a stack is free"
                )
            }
            SkipReason::LostToHigherPriority => f.write_str(
                "lost to higher priority: its stacks are full with more valuable scenarios",
            ),
        }
    }
}

/// The plan of one night.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Plan {
    /// The night planned (`YYYY-MM-DD`).
    pub night: NaiveDate,
    /// The chaos window, UTC.
    pub window: Window,
    /// Planned slots (frozen ones included), ordered by start then stack.
    pub slots: Vec<Slot>,
    /// Every candidate scenario that is not planned, with its reason, ordered by name.
    pub skipped: Vec<Skipped>,
    /// Total weight of the planned scenarios (the quantity the planner maximises).
    pub objective: u64,
}

/// A plan as tools read it (`plan --output json`; schema `docs/schemas/plan.schema.json`, see
/// [`crate::document`]): `schemaVersion` and the [`Plan`]'s fields.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument {
    /// [`crate::document::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The plan.
    #[serde(flatten)]
    pub plan: Plan,
}

impl PlanDocument {
    /// The document of `plan`.
    pub fn of(plan: &Plan) -> PlanDocument {
        PlanDocument {
            schema_version: crate::document::SCHEMA_VERSION,
            plan: plan.clone(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of [`PlanDocument`].
pub fn plan_schema() -> serde_json::Value {
    schemars::schema_for!(PlanDocument).to_value()
}

/// What happened so far on a night that is being executed, for [`super::replan`].
#[derive(Debug, Clone)]
pub struct NightProgress {
    /// The current instant; nothing new starts before it.
    pub now: DateTime<Utc>,
    /// Runs that started tonight (running or finished). They are never moved.
    pub started: Vec<StartedRun>,
    /// Stacks that became unavailable, and from/until when (e.g. broken from now to window end).
    pub unavailable: Vec<(String, Busy)>,
}

/// A run that started tonight.
#[derive(Debug, Clone)]
pub struct StartedRun {
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Actual start, UTC.
    pub started_at: DateTime<Utc>,
    /// Where the run is.
    pub state: RunState,
}

/// State of a started run.
#[derive(Debug, Clone, Copy)]
pub enum RunState {
    /// Still running; expected to end at this instant (if that is already past, it is assumed to
    /// end "now": an overrunning run keeps its stack until it really ends).
    Running {
        /// Expected end, UTC.
        expected_end: DateTime<Utc>,
    },
    /// Ended (early, on time or late) at this instant.
    Finished {
        /// Actual end, UTC.
        ended_at: DateTime<Utc>,
    },
}
