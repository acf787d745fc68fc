//! The YAML people write, read for people: files of a directory ([`files`]), YAML parsed with
//! the position of every node ([`yaml`]), and diagnostics that name file:line:column and the
//! field, with a did-you-mean ([`diagnostic`]). Scenarios, the SLO catalogue and the config are
//! all read through it; it uses nothing else of the crate.

pub mod diagnostic;
pub mod files;
pub mod yaml;
