//! The verdict of one step.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Verdict of one step (DESIGN.md, "Verdicts and exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The check held over the whole evaluated window, with enough data to say so.
    Passed,
    /// At least one observed value broke the check (or, for recover-within, it had not recovered).
    Failed,
    /// No verdict can be drawn: the source was unreachable, timed out, answered an error, or had
    /// no (or too little) data. Never counted as passed.
    Inconclusive,
    /// Not evaluated (set by the runner, e.g. after an abort).
    Skipped,
    /// The check itself is broken (Prometheus rejected the query as `bad_data`, invalid window).
    Error,
}

impl Verdict {
    /// Lower-case kebab name, as stored and printed (`passed`, `inconclusive`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Skipped => "skipped",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    /// Parses the stored name ([`Verdict::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Verdict::Passed,
            Verdict::Failed,
            Verdict::Inconclusive,
            Verdict::Skipped,
            Verdict::Error,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("`{s}` is not a step verdict"))
    }
}

impl Verdict {
    /// The step did not hold, or could not be judged: failed, inconclusive or error. What a
    /// team is told about and what the morning review lists. Skipped and passed steps are not.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Verdict::Failed | Verdict::Inconclusive | Verdict::Error
        )
    }
}
