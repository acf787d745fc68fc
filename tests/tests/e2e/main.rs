//! One end-to-end test binary, a module per feature (zero2prod style).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions too: a panic is the failure report"
)]

mod api;
mod assert;
mod browser;
mod chaos_mesh;
mod cli;
mod daemon;
mod dashboard;
mod deploy;
mod gate;
mod notify;
mod plan;
mod run;
mod sandbox;
mod schemas;
mod silence;
mod store;
mod validate;
