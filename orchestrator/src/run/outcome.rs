//! Run outcomes (DESIGN.md "Verdicts and exit codes") and how step verdicts combine into one.

use serde::{Deserialize, Serialize};

use crate::exit_codes;

/// The outcome of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        f.write_str(self.as_str())
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
    fn the_store_accepts_exactly_the_run_outcomes() {
        let names: std::collections::BTreeSet<&str> =
            RunOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let stored: std::collections::BTreeSet<&str> =
            crate::store::RUN_OUTCOMES.iter().copied().collect();
        assert_eq!(names, stored);
        assert_eq!(RunOutcome::ALL.len(), crate::store::RUN_OUTCOMES.len());
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
