//! One end-to-end test binary, a module per feature (zero2prod style).

mod sandbox;
mod validate;
mod plan;
mod run;
