//! The raw file model of scenarios and the SLO catalogue: exactly what is written in YAML
//! (kubectl-style `apiVersion`/`kind`/`metadata`/`spec`, camelCase fields, every struct
//! `deny_unknown_fields`). Durations and PromQL stay strings here; the compile step parses them so
//! that every bad one is reported with its position. The JSON Schema of `f3-chaos schema` is
//! derived from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::duration::HumanDuration;

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "f3-chaos/v1";

/// A scenario file (`kind: Scenario`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "f3-chaos scenario")]
pub struct RawScenarioFile {
    /// Always `f3-chaos/v1`.
    #[schemars(extend("const" = "f3-chaos/v1"))]
    pub api_version: String,
    /// Always `Scenario`.
    #[schemars(extend("const" = "Scenario"))]
    pub kind: String,
    /// Name, description, owner team and tags.
    pub metadata: RawScenarioMetadata,
    /// Targets, schedule and the Given/When/Then/abort steps.
    pub spec: RawScenarioSpec,
}

/// `metadata` of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScenarioMetadata {
    /// Unique name, lower-case kebab-case (e.g. `gcp-failover-validation`), at most 63 characters.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    /// What the experiment proves, for people.
    #[serde(default)]
    pub description: String,
    /// Team owning the scenario as a whole (a team name from the config).
    pub owner: String,
    /// Free-form tags, e.g. `failover`, `dr-plan`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `spec` of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScenarioSpec {
    /// Which stacks it may run on.
    pub targets: RawTargets,
    /// Cadence, priority, estimated duration, `after` and resources.
    pub schedule: RawSchedule,
    /// Steady-state checks and load steps that must hold before any fault.
    #[serde(default)]
    pub given: Vec<RawGivenStep>,
    /// Fault steps, injected in order and held concurrently.
    pub when: Vec<RawFaultStep>,
    /// Assertions, each owned by a team.
    pub then: Vec<RawThenStep>,
    /// Breach conditions that stop the experiment and revert at once.
    #[serde(default)]
    pub abort: Vec<RawAbortCondition>,
}

/// `spec.targets`: a label selector and/or explicit stack names.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTargets {
    /// Stacks whose labels include all of these, e.g. `{env: uat}` (quote `"true"`).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Explicit stack names; when both are given a stack must match both.
    #[serde(default)]
    pub stacks: Vec<String>,
    /// Opt-in to production stacks (never eligible otherwise).
    #[serde(default)]
    pub allow_production: bool,
}

/// `spec.schedule`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSchedule {
    /// `nightly`, `manual`, `{weekly: monday}` or `{everyNights: 3}`.
    pub cadence: RawCadence,
    /// `critical`, `high`, `medium` (default) or `low`.
    #[serde(default)]
    pub priority: RawPriority,
    /// Declared estimate of the whole run (Given + When + Then + recovery), e.g. `2m`.
    #[schemars(with = "HumanDuration")]
    pub estimated_duration: String,
    /// Scenarios that must finish first on the same night.
    #[serde(default)]
    pub after: Vec<String>,
    /// Exclusive resources held for the whole run (names from the config's `resources`).
    #[serde(default)]
    pub resources: Vec<String>,
}

/// Cadence as written (a name, or a one-key mapping; see the manual `Deserialize` below).
#[derive(Debug, Clone, Copy, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RawCadence {
    /// Every night.
    Nightly,
    /// Only by hand (`run`/`trigger`); never planned.
    Manual,
    /// Once a week on this weekday (in the configured time zone).
    Weekly(RawWeekday),
    /// Every N nights (N ≥ 1).
    EveryNights(u32),
}

/// A weekday, lower-case English.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawWeekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<RawWeekday> for chrono::Weekday {
    fn from(w: RawWeekday) -> Self {
        match w {
            RawWeekday::Monday => chrono::Weekday::Mon,
            RawWeekday::Tuesday => chrono::Weekday::Tue,
            RawWeekday::Wednesday => chrono::Weekday::Wed,
            RawWeekday::Thursday => chrono::Weekday::Thu,
            RawWeekday::Friday => chrono::Weekday::Fri,
            RawWeekday::Saturday => chrono::Weekday::Sat,
            RawWeekday::Sunday => chrono::Weekday::Sun,
        }
    }
}

/// Priority as written.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawPriority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// Comparison operator as written: `<`, `<=`, `>`, `>=`, `==`, `!=`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawOp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl From<RawOp> for super::Comparison {
    fn from(op: RawOp) -> Self {
        use super::Comparison as C;
        match op {
            RawOp::Lt => C::Lt,
            RawOp::Le => C::Le,
            RawOp::Gt => C::Gt,
            RawOp::Ge => C::Ge,
            RawOp::Eq => C::Eq,
            RawOp::Ne => C::Ne,
        }
    }
}

/// A Given step, tagged by `kind`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawGivenStep {
    /// A check that must hold before any fault: `slo:` (catalogue name) or `query`/`op`/`threshold`.
    #[serde(rename_all = "camelCase")]
    SteadyState {
        /// Step name shown to people.
        name: String,
        /// Catalogue SLO name (its query, op and threshold are used unless overridden here).
        #[serde(default)]
        slo: Option<String>,
        /// Inline PromQL instant-vector query.
        #[serde(default)]
        query: Option<String>,
        /// Comparison `value OP threshold` that must hold.
        #[serde(default)]
        op: Option<RawOp>,
        /// Threshold in the query's unit.
        #[serde(default)]
        threshold: Option<f64>,
        /// Unit for display (`s`, `ratio`, `tps`, …).
        #[serde(default)]
        unit: Option<String>,
    },
    /// Set the payment simulators to a target rate and wait until it is reached.
    #[serde(rename_all = "camelCase")]
    Load {
        /// Step name shown to people.
        name: String,
        /// Target payments per second (> 0).
        tps: f64,
        /// How long the rate may take to be reached (default `30s`).
        #[serde(default)]
        #[schemars(with = "Option<HumanDuration>")]
        settle_within: Option<String>,
    },
}

/// A When step: one fault, tagged by `kind`, with a `duration`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawFaultStep {
    /// Partition the selected workloads from a peer selector and/or external targets.
    #[serde(rename_all = "camelCase")]
    NetworkPartition {
        /// Step name shown to people.
        name: String,
        /// How long the fault stays injected (also its TTL).
        #[schemars(with = "HumanDuration")]
        duration: String,
        /// Label selector of the workloads to isolate, e.g. `{cloud: gcp}`.
        selector: BTreeMap<String, String>,
        /// `to`, `from` or `both` (default).
        #[serde(default)]
        direction: Option<RawDirection>,
        /// Label selector of the peer side (empty = everything else).
        #[serde(default)]
        target: BTreeMap<String, String>,
        /// External hosts or CIDRs, the same on every stack. For what differs per stack (its
        /// payment scheme's endpoints) use `stackExternalTargets`.
        #[serde(default)]
        external_targets: Vec<String>,
        /// Also cut from the stack's own `externalTargets` (its payment scheme's endpoints, in
        /// the stack config): a UAT stack is cut from the test scheme, never from production's.
        #[serde(default)]
        stack_external_targets: bool,
    },
    /// A whole cloud of the stack goes dark.
    #[serde(rename_all = "camelCase")]
    CloudLoss {
        /// Step name shown to people.
        name: String,
        /// How long the fault stays injected (also its TTL).
        #[schemars(with = "HumanDuration")]
        duration: String,
        /// `gcp`, `aws` or `azure`.
        cloud: RawCloud,
    },
    /// Kill selected pods or processes (restarted on revert).
    #[serde(rename_all = "camelCase")]
    PodKill {
        /// Step name shown to people.
        name: String,
        /// How long the pods stay down (also the fault's TTL).
        #[schemars(with = "HumanDuration")]
        duration: String,
        /// Label selector, e.g. `{cloud: aws, node: "1"}`.
        selector: BTreeMap<String, String>,
        /// At most this many are killed (default: all selected).
        #[serde(default)]
        max_pods: Option<u32>,
    },
    /// Add latency to the selected workloads' traffic.
    #[serde(rename_all = "camelCase")]
    NetworkDelay {
        /// Step name shown to people.
        name: String,
        /// How long the fault stays injected (also its TTL).
        #[schemars(with = "HumanDuration")]
        duration: String,
        /// Label selector.
        selector: BTreeMap<String, String>,
        /// Added latency, e.g. `200ms`.
        #[schemars(with = "HumanDuration")]
        latency: String,
        /// Jitter around it (default `0ms`).
        #[serde(default)]
        #[schemars(with = "Option<HumanDuration>")]
        jitter: Option<String>,
    },
    /// CPU and/or memory stress on the selected workloads.
    #[serde(rename_all = "camelCase")]
    Stress {
        /// Step name shown to people.
        name: String,
        /// How long the fault stays injected (also its TTL).
        #[schemars(with = "HumanDuration")]
        duration: String,
        /// Label selector.
        selector: BTreeMap<String, String>,
        /// CPU stress workers (default 0).
        #[serde(default)]
        cpu_workers: u32,
        /// Load per CPU worker, percent 0–100 (default 100).
        #[serde(default)]
        cpu_load_percent: Option<u32>,
        /// Memory per worker, e.g. `256MB`.
        #[serde(default)]
        memory_size: Option<String>,
    },
}

/// Partition direction.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawDirection {
    To,
    From,
    Both,
}

pub use crate::config::raw::RawCloud;

/// A Then step: `slo:` or an inline `query`/`op`/`threshold`, an owner and when it must hold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawThenStep {
    /// Step name shown to people, e.g. `Product SLO latency < 250ms`.
    pub name: String,
    /// Team notified when it fails.
    pub owner: String,
    /// Catalogue SLO name (its query, op and threshold are used unless overridden here).
    #[serde(default)]
    pub slo: Option<String>,
    /// Inline PromQL instant-vector query.
    #[serde(default)]
    pub query: Option<String>,
    /// Comparison `value OP threshold` that must hold.
    #[serde(default)]
    pub op: Option<RawOp>,
    /// Threshold in the query's unit.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Unit for display.
    #[serde(default)]
    pub unit: Option<String>,
    /// When it must hold (default `during-fault`).
    #[serde(default)]
    pub hold: Option<RawHold>,
    /// Business impact in plain English, told to the owner when the step fails; overrides the
    /// SLO's (an inline check has no other).
    #[serde(default)]
    pub impact: Option<String>,
    /// What the owner should do when it fails; overrides the SLO's.
    #[serde(default)]
    pub action: Option<String>,
}

/// When a Then check must hold (a name, or `{recover-within: 30s}`).
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawHold {
    /// At every evaluation point while the faults are active.
    DuringFault,
    /// At the instant the faults end, before revert.
    AtEnd,
    /// After recovery has been verified.
    AfterRecovery,
    /// Within this long after revert (`{recover-within: 30s}`).
    RecoverWithin(#[schemars(with = "HumanDuration")] String),
}

/// An abort condition: the BREACH check (abort when `value OP threshold` holds).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAbortCondition {
    /// Name shown to people, e.g. `Success ratio collapsed`.
    pub name: String,
    /// Catalogue SLO whose query is used (op and threshold must be given here).
    #[serde(default)]
    pub slo: Option<String>,
    /// Inline PromQL query.
    #[serde(default)]
    pub query: Option<String>,
    /// Breach comparison: abort when `value OP threshold`.
    pub op: RawOp,
    /// Breach threshold.
    pub threshold: f64,
    /// Unit for display.
    #[serde(default)]
    pub unit: Option<String>,
}

/// An SLO catalogue file (`kind: SloCatalogue`): named, reusable, team-owned checks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCatalogueFile {
    /// Always `f3-chaos/v1`.
    pub api_version: String,
    /// Always `SloCatalogue`.
    pub kind: String,
    /// `name` of the catalogue file (informational).
    #[serde(default)]
    pub metadata: Option<RawCatalogueMetadata>,
    /// The SLOs.
    pub spec: RawCatalogueSpec,
}

/// `metadata` of a catalogue file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCatalogueMetadata {
    /// Name of this group of SLOs.
    pub name: String,
    /// What the group covers.
    #[serde(default)]
    pub description: String,
}

/// `spec` of a catalogue file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCatalogueSpec {
    /// The SLO checks.
    pub slos: Vec<RawSlo>,
}

/// One catalogue SLO.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSlo {
    /// Unique name, kebab-case, e.g. `payments-e2e-latency-p99`.
    pub name: String,
    /// Team owning the SLO definition.
    pub owner: String,
    /// What it measures.
    #[serde(default)]
    pub description: String,
    /// PromQL instant-vector query.
    pub query: String,
    /// `value OP threshold` must hold.
    pub op: RawOp,
    /// Threshold in `unit`.
    pub threshold: f64,
    /// Unit of value and threshold: `s`, `ms`, `ratio`, `percent`, `tps`, …
    pub unit: String,
    /// Business impact when it fails, in plain English.
    pub impact: String,
    /// What to do when it fails.
    pub action: String,
}

// serde_yaml 0.9 reads externally tagged enums only from YAML tags (`!weekly monday`), not from
// the one-key mappings people write (`{weekly: monday}`); these two accept both spellings people
// expect and produce serde's usual `unknown variant`/`unknown field` errors.

const CADENCE_NAMES: &[&str] = &["nightly", "manual", "weekly", "everyNights"];
const HOLD_NAMES: &[&str] = &["during-fault", "at-end", "after-recovery", "recover-within"];

impl<'de> Deserialize<'de> for RawCadence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCadence;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`nightly`, `manual`, `{weekly: monday}` or `{everyNights: 3}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCadence, E> {
                match v {
                    "nightly" => Ok(RawCadence::Nightly),
                    "manual" => Ok(RawCadence::Manual),
                    other => Err(E::unknown_variant(other, CADENCE_NAMES)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawCadence, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(serde::de::Error::invalid_length(0, &self));
                };
                let value = match key.as_str() {
                    "weekly" => RawCadence::Weekly(map.next_value()?),
                    "everyNights" => RawCadence::EveryNights(map.next_value()?),
                    other => {
                        return Err(serde::de::Error::unknown_field(
                            other,
                            &["weekly", "everyNights"],
                        ));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(serde::de::Error::unknown_field(&extra, &[]));
                }
                Ok(value)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawHold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawHold;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`during-fault`, `at-end`, `after-recovery` or `{recover-within: 30s}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawHold, E> {
                match v {
                    "during-fault" => Ok(RawHold::DuringFault),
                    "at-end" => Ok(RawHold::AtEnd),
                    "after-recovery" => Ok(RawHold::AfterRecovery),
                    other => Err(E::unknown_variant(other, HOLD_NAMES)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawHold, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(serde::de::Error::invalid_length(0, &self));
                };
                let value = match key.as_str() {
                    "recover-within" => RawHold::RecoverWithin(map.next_value()?),
                    other => {
                        return Err(serde::de::Error::unknown_field(other, &["recover-within"]));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(serde::de::Error::unknown_field(&extra, &[]));
                }
                Ok(value)
            }
        }
        d.deserialize_any(V)
    }
}
