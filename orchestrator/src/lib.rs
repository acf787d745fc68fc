//! f3-chaos: a chaos-experiment orchestrator.
//!
//! Data flow (see `docs/architecture.md`): scenario YAML + SLO catalogue + config are compiled into
//! validated [`scenario::Scenario`]s; the [`plan`] module packs them into the nightly window; the
//! [`run`] module owns one run's state machine (lease → fingerprint → Given → When → Then → revert →
//! recovery → fingerprint) and drives [`fault`] drivers and the [`assert`] engine; every event is
//! written to the [`store`] first.

pub mod api;
pub mod assert;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod document;
pub mod duration;
pub mod exit_codes;
pub mod fault;
pub mod input;
pub mod integrations;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod plan;
pub mod present;
pub mod repeats;
pub mod run;
pub mod scenario;
pub mod store;

#[cfg(test)]
mod layering;
