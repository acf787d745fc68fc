//! Configuration: stacks, teams, the chaos window, loaded from a `config/` directory.

pub mod model;

pub use model::*;
