//! One end-to-end test binary, a module per feature (zero2prod style).

mod assert;
mod browser;
mod daemon;
mod dashboard;
mod gate;
mod notify;
mod plan;
mod run;
mod sandbox;
mod store;
mod validate;
