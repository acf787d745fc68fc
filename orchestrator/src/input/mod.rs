//! The YAML people write, read for people: files of a directory ([`files`]), YAML parsed with
//! the position of every node ([`yaml`]), and diagnostics that name file:line:column and the
//! field, with a did-you-mean ([`diagnostic`]). Scenarios, the SLO catalogue and the config are
//! all read through it; it uses nothing else of the crate.

pub mod diagnostic;
pub mod files;
pub mod yaml;

/// For a `name` that `known` does not hold: says so — "`{name}` is not a {what}" (e.g. "scenario
/// of the library", "stack of the config") — with the closest known name when one is near
/// (`did you mean …`, [`yaml::closest`]). None when the name is known.
pub fn unknown_name_hint(what: &str, name: &str, known: &[String]) -> Option<String> {
    if known.iter().any(|n| n == name) {
        return None;
    }
    Some(match yaml::closest(name, known) {
        Some(guess) => format!("`{name}` is not a {what}: did you mean `{guess}`?"),
        None => format!("`{name}` is not a {what}"),
    })
}
