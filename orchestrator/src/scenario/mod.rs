//! Scenarios: the raw YAML model, the compile step that validates it (collecting every diagnostic),
//! and the validated [`Scenario`] model everything else consumes.

pub mod model;

pub use model::*;
