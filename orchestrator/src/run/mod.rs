//! The runner: the one owner of a run's state. It leases the stack, checks Given, injects the
//! When faults through a [`crate::fault::FaultDriver`], judges Then steps with the
//! [`crate::assert`] engine, always reverts, and writes every transition to the
//! [`crate::store::Store`] before anyone else sees it.

pub mod event;
pub mod hooks;
mod journal;
pub mod launch;
pub mod reporter;
pub mod runner;
pub mod sweep;
#[cfg(test)]
mod tests;

pub use event::{RunEvent, StepResult};
pub use hooks::{FaultWindow, FaultWindowHook, HookReport, HookStep};
pub use reporter::{ChannelReporter, FnReporter, MetricsReporter, Reporter, Reporters};
pub use runner::{RunError, RunOptions, RunReport, Runner, pass_rate};
