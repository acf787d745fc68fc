//! What a notification is about.

use serde::{Deserialize, Serialize};

/// What a notification is about. Stored in the outbox's `kind` column under
/// [`NotificationKind::stored_name`] (`step-failures`, …); serialised in message documents (the
/// webhook body's `kind`) under the short kebab-case name (`failures`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// Steps owned by the team failed (or were inconclusive) in a run (one row per team per run).
    Failures,
    /// Steps that failed before pass again (sent once after a failing streak ends).
    Resolved,
    /// The morning summary of a night.
    Digest,
    /// A daemon run overran its planned end by more than `spec.overrunNotifyAfter` (one row per
    /// run, for the scenario's owner).
    Overrun,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 4] = [
        NotificationKind::Failures,
        NotificationKind::Resolved,
        NotificationKind::Digest,
        NotificationKind::Overrun,
    ];

    /// The outbox `kind` column's value.
    pub fn stored_name(self) -> &'static str {
        match self {
            NotificationKind::Failures => "step-failures",
            NotificationKind::Resolved => "step-resolved",
            NotificationKind::Digest => "digest",
            NotificationKind::Overrun => "overrun",
        }
    }

    /// Parses an outbox `kind` column ([`NotificationKind::stored_name`]).
    ///
    /// # Errors
    /// A description naming the unknown kind.
    pub fn from_stored(name: &str) -> Result<Self, String> {
        NotificationKind::ALL
            .into_iter()
            .find(|k| k.stored_name() == name)
            .ok_or_else(|| format!("`{name}` is not a notification kind"))
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.stored_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_stored_name() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_stored(kind.stored_name()), Ok(kind));
        }
        assert!(NotificationKind::from_stored("failures").is_err());
    }
}
