//! Label sets and priority classes, as scenarios and stacks both state them.

use std::collections::BTreeMap;

use serde::Serialize;

/// Stack labels, e.g. `env: uat`, `cloud: gcp`.
pub type Labels = BTreeMap<String, String>;

/// Priority class; the planner turns it into a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Nice to have.
    Low,
    /// Default.
    Medium,
    /// Important.
    High,
    /// Must run when due.
    Critical,
}
