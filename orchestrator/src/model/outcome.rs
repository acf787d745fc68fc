//! Run outcomes (DESIGN.md "Verdicts and exit codes"), the rules that read them, and a run's
//! stored status (running, or its outcome).

use serde::{Deserialize, Serialize};

use crate::exit_codes;

/// The outcome of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every Then step passed.
    Passed,
    /// At least one Then step (or recovery) failed: the hypothesis was disproved.
    Failed,
    /// An abort condition was breached; faults were reverted early.
    Aborted,
    /// Nothing failed but something could not be judged (no data, Prometheus unreachable).
    Inconclusive,
    /// Given did not hold: no fault was injected, the hypothesis was not tested.
    PreconditionFailed,
    /// The stack changed during the run (fingerprint differs): the result means nothing.
    Void,
    /// A fault could not be reverted (its TTL still ends it): needs a human.
    CleanupFailed,
    /// Ctrl-C / SIGTERM / a dead orchestrator found by the sweep, after faults were reverted.
    Interrupted,
    /// An infrastructure or internal error stopped the run.
    Error,
}

impl RunOutcome {
    /// Every outcome.
    pub const ALL: [RunOutcome; 9] = [
        RunOutcome::Passed,
        RunOutcome::Failed,
        RunOutcome::Aborted,
        RunOutcome::Inconclusive,
        RunOutcome::PreconditionFailed,
        RunOutcome::Void,
        RunOutcome::CleanupFailed,
        RunOutcome::Interrupted,
        RunOutcome::Error,
    ];

    /// The process exit code of `f3-chaos run` for this outcome (see [`crate::exit_codes`]).
    pub fn exit_code(self) -> u8 {
        match self {
            RunOutcome::Passed => exit_codes::PASSED,
            RunOutcome::Failed => exit_codes::FAILED,
            RunOutcome::Aborted => exit_codes::ABORTED,
            RunOutcome::Inconclusive => exit_codes::INCONCLUSIVE,
            RunOutcome::PreconditionFailed => exit_codes::PRECONDITION_FAILED,
            RunOutcome::Void => exit_codes::VOID,
            RunOutcome::CleanupFailed => exit_codes::CLEANUP_FAILED,
            RunOutcome::Interrupted => exit_codes::INTERRUPTED,
            RunOutcome::Error => exit_codes::ERROR,
        }
    }

    /// The kebab-case name stored and shown (`precondition-failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Failed => "failed",
            RunOutcome::Aborted => "aborted",
            RunOutcome::Inconclusive => "inconclusive",
            RunOutcome::PreconditionFailed => "precondition-failed",
            RunOutcome::Void => "void",
            RunOutcome::CleanupFailed => "cleanup-failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Error => "error",
        }
    }

    /// The run tested the hypothesis: faults went in and the Then steps were judged to the end
    /// (passed, failed) or the platform breached an abort condition (aborted). Only these count
    /// for a scenario's cadence and staleness in the planner: a void, errored or inconclusive
    /// run leaves the scenario due.
    pub fn tested_the_hypothesis(self) -> bool {
        matches!(
            self,
            RunOutcome::Passed | RunOutcome::Failed | RunOutcome::Aborted
        )
    }

    /// The run's step verdicts count for failure streaks ("still failing (3 nights)"): every
    /// run whose Then steps were judged — including one that ended `error` or `cleanup-failed`
    /// after judging them. Not void (the stack changed, the verdicts mean nothing),
    /// precondition-failed (nothing was judged) or interrupted (judging was cut short).
    pub fn counts_for_streaks(self) -> bool {
        !matches!(
            self,
            RunOutcome::Void | RunOutcome::PreconditionFailed | RunOutcome::Interrupted
        )
    }

    /// As a run, it taught nothing about the platform: the digest lists it apart with its
    /// reason (void, precondition-failed, interrupted, error, cleanup-failed). Stricter than
    /// [`RunOutcome::counts_for_streaks`] on purpose: an errored run's judged steps still count
    /// for a streak, but the run itself is not a pass or a failure of the scenario.
    pub fn teaches_nothing(self) -> bool {
        matches!(
            self,
            RunOutcome::Void
                | RunOutcome::PreconditionFailed
                | RunOutcome::Interrupted
                | RunOutcome::Error
                | RunOutcome::CleanupFailed
        )
    }

    /// The platform did not hold: failed, aborted, or not judgeable (inconclusive) — what the
    /// digest and the dashboard count as "failed".
    pub fn found_a_problem(self) -> bool {
        matches!(
            self,
            RunOutcome::Failed | RunOutcome::Aborted | RunOutcome::Inconclusive
        )
    }

    /// Which of two outcomes wins when both apply. Order, strongest first: cleanup-failed (a
    /// fault may still be active), interrupted, void (nothing else means anything), aborted,
    /// error, failed, inconclusive, precondition-failed, passed.
    pub fn strongest(self, other: RunOutcome) -> RunOutcome {
        fn rank(o: RunOutcome) -> u8 {
            match o {
                RunOutcome::CleanupFailed => 8,
                RunOutcome::Interrupted => 7,
                RunOutcome::Void => 6,
                RunOutcome::Aborted => 5,
                RunOutcome::Error => 4,
                RunOutcome::Failed => 3,
                RunOutcome::Inconclusive => 2,
                RunOutcome::PreconditionFailed => 1,
                RunOutcome::Passed => 0,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for RunOutcome {
    type Err = String;

    /// Parses the stored name ([`RunOutcome::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a run outcome"))
    }
}

/// A run's stored status: still running, or finished with its outcome. Stored and serialised as
/// one kebab-case string (`running`, `passed`, `precondition-failed`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// The run has no outcome yet (its owner is working on it, or died and the sweep has not
    /// found it yet).
    Running,
    /// The run ended with this outcome.
    Finished(RunOutcome),
}

impl RunStatus {
    /// The stored name: `running` or the outcome's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished(outcome) => outcome.as_str(),
        }
    }

    /// The outcome, once finished.
    pub fn outcome(self) -> Option<RunOutcome> {
        match self {
            RunStatus::Running => None,
            RunStatus::Finished(outcome) => Some(outcome),
        }
    }

    /// Every stored name, `running` first, for help texts and error messages.
    pub fn names() -> Vec<&'static str> {
        std::iter::once("running")
            .chain(RunOutcome::ALL.iter().map(|o| o.as_str()))
            .collect()
    }
}

impl From<RunOutcome> for RunStatus {
    fn from(outcome: RunOutcome) -> Self {
        RunStatus::Finished(outcome)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    /// Parses a stored name ([`RunStatus::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "running" {
            return Ok(RunStatus::Running);
        }
        s.parse::<RunOutcome>()
            .map(RunStatus::Finished)
            .map_err(|_| {
                format!(
                    "`{s}` is not a run status (one of {})",
                    RunStatus::names().join(", ")
                )
            })
    }
}

impl Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl schemars::JsonSchema for RunStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`running`, or the outcome the run finished with.",
            "enum": RunStatus::names(),
        })
    }
}

impl<'de> Deserialize<'de> for RunStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three rules differ on purpose (see their docs): errored and cleanup-failed runs
    /// count for streaks but teach nothing as runs; only passed, failed and aborted runs tested
    /// the hypothesis.
    #[test]
    fn the_three_outcome_rules_differ_where_documented() {
        use RunOutcome::*;
        // (outcome, tested the hypothesis, counts for streaks, teaches nothing, found a problem)
        let table = [
            (Passed, true, true, false, false),
            (Failed, true, true, false, true),
            (Aborted, true, true, false, true),
            (Inconclusive, false, true, false, true),
            (PreconditionFailed, false, false, true, false),
            (Void, false, false, true, false),
            (CleanupFailed, false, true, true, false),
            (Interrupted, false, false, true, false),
            (Error, false, true, true, false),
        ];
        assert_eq!(table.len(), RunOutcome::ALL.len());
        for (o, tested, streaks, nothing, problem) in table {
            assert_eq!(o.tested_the_hypothesis(), tested, "{o}");
            assert_eq!(o.counts_for_streaks(), streaks, "{o}");
            assert_eq!(o.teaches_nothing(), nothing, "{o}");
            assert_eq!(o.found_a_problem(), problem, "{o}");
        }
    }

    #[test]
    fn exit_codes_are_distinct_per_outcome() {
        let all = RunOutcome::ALL;
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|o| o.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(RunOutcome::Passed.exit_code(), 0);
    }

    #[test]
    fn every_outcome_parses_back_from_its_stored_name() {
        for outcome in RunOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<RunOutcome>(), Ok(outcome));
        }
        assert!("passd".parse::<RunOutcome>().is_err());
    }

    #[test]
    fn a_status_round_trips_through_its_stored_name() {
        let statuses = std::iter::once(RunStatus::Running)
            .chain(RunOutcome::ALL.into_iter().map(RunStatus::Finished));
        for status in statuses {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            let json = serde_json::to_value(status).expect("serialise");
            assert_eq!(json, serde_json::Value::String(status.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<RunStatus>(json).ok(), Some(status));
        }
        assert!("runing".parse::<RunStatus>().is_err());
    }

    #[test]
    fn a_cleanup_failure_outranks_everything_and_void_outranks_a_failure() {
        assert_eq!(
            RunOutcome::Failed.strongest(RunOutcome::Void),
            RunOutcome::Void
        );
        assert_eq!(
            RunOutcome::Void.strongest(RunOutcome::CleanupFailed),
            RunOutcome::CleanupFailed
        );
        assert_eq!(
            RunOutcome::Passed.strongest(RunOutcome::Inconclusive),
            RunOutcome::Inconclusive
        );
        assert_eq!(
            RunOutcome::Failed.strongest(RunOutcome::Inconclusive),
            RunOutcome::Failed
        );
    }
}
