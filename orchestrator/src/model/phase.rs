//! Where a step sits in a run's Given/When/Then timeline.

use serde::{Deserialize, Serialize};

/// Phase of a step in the Given/When/Then timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Preconditions: steady state and load.
    Given,
    /// Faults.
    When,
    /// Assertions.
    Then,
    /// Steady state verified again after revert.
    Recovery,
}

impl Phase {
    /// Lower-case name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Given => "given",
            Phase::When => "when",
            Phase::Then => "then",
            Phase::Recovery => "recovery",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;

    /// Parses the stored name ([`Phase::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Phase::Given, Phase::When, Phase::Then, Phase::Recovery]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a step phase"))
    }
}
