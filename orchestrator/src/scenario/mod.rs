//! Scenarios: the raw YAML model ([`raw`]), the compile step that validates it collecting every
//! diagnostic ([`compile`], [`diagnostic`]), the validated [`Scenario`] model everything else
//! consumes ([`model`]), and [`load_library`]/[`load_paths`] that put config, SLO catalogue and
//! scenario library together ([`library`]).

pub mod compile;
pub use crate::input::diagnostic;
pub mod library;
pub mod model;
pub mod raw;
pub mod schema;
#[cfg(test)]
mod tests;
pub use crate::input::yaml;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use library::{
    Checked, Library, Runnable, check_library, check_paths, check_texts, load_library, load_paths,
    load_runnable,
};
pub use model::*;
