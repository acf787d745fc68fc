//! The vocabulary every layer shares: what a run ended as ([`RunOutcome`], [`RunStatus`]), what
//! a step was judged ([`Verdict`]), where a step sits in the Given/When/Then timeline
//! ([`Phase`]) and its judged result ([`StepResult`]), what a team is told about ([`NotificationKind`]), and the shape of a stack ([`Cloud`], [`Environment`]).
//!
//! This is the bottom of the crate: it imports nothing but [`crate::exit_codes`], and every
//! other module — store, runner, planner, notifications, dashboard, CLI, API — uses these types
//! instead of their string names. Strings appear only at the edges that (de)serialise them (the
//! store's rows, JSON documents), each through the type's `as_str` / `FromStr`.

mod labels;
mod notification;
mod outcome;
mod phase;
mod stack;
mod step;
mod verdict;

pub use labels::{Labels, Priority};
pub use notification::NotificationKind;
pub use outcome::{RunOutcome, RunStatus};
pub use phase::Phase;
pub use stack::{Cloud, Environment};
pub use step::StepResult;
pub use verdict::Verdict;
