//! Configuration: stacks, teams, the chaos window, loaded from a `config/` directory
//! (see docs/configuration.md). [`raw`] is the file model, [`load`] compiles it into the
//! validated [`Config`] of [`model`].

pub mod load;
pub mod matcher;
pub mod model;
pub mod raw;

pub use load::{environment_label, load};
pub use matcher::SilenceMatcher;
pub use model::*;
