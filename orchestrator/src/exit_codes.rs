//! Process exit codes of `f3-chaos`, one per run outcome, in one place (documented in the README
//! and in `f3-chaos --help`). Modelled on nextest's `exit_codes.rs`.

/// The run passed: every Then step passed.
pub const PASSED: u8 = 0;
/// At least one Then step failed (the hypothesis was disproved).
pub const FAILED: u8 = 1;
/// An abort condition was breached; faults were reverted early.
pub const ABORTED: u8 = 2;
/// No step failed, but at least one could not be judged (e.g. Prometheus unreachable or empty).
pub const INCONCLUSIVE: u8 = 3;
/// Given (steady state or load) did not hold: no fault was injected, the hypothesis was not tested.
pub const PRECONDITION_FAILED: u8 = 4;
/// The stack changed during the run (fingerprint differs): the result is void.
pub const VOID: u8 = 5;
/// A fault could not be reverted (it still expires by its TTL). Needs a human.
pub const CLEANUP_FAILED: u8 = 6;
/// The stack is leased by another run (the holder is printed).
pub const STACK_BUSY: u8 = 7;
/// Invalid input: a scenario, catalogue or config with errors, or a bad command line.
pub const INVALID_INPUT: u8 = 8;
/// The run was interrupted (Ctrl-C, SIGTERM) after reverting its faults.
pub const INTERRUPTED: u8 = 9;
/// Infrastructure or internal error (store, driver set-up, …).
pub const ERROR: u8 = 10;

/// Every exit code with its name and meaning: the one table `--help`, the man page and the
/// README show ([`help_table`]).
pub const TABLE: &[(u8, &str, &str)] = &[
    (PASSED, "passed", "every Then step passed"),
    (FAILED, "failed", "at least one Then step failed"),
    (
        ABORTED,
        "aborted",
        "an abort condition was breached; faults reverted early",
    ),
    (
        INCONCLUSIVE,
        "inconclusive",
        "a step could not be judged (e.g. Prometheus unreachable)",
    ),
    (
        PRECONDITION_FAILED,
        "precondition-failed",
        "Given did not hold; no fault was injected",
    ),
    (VOID, "void", "the stack changed during the run"),
    (
        CLEANUP_FAILED,
        "cleanup-failed",
        "a fault could not be reverted (its TTL still ends it)",
    ),
    (
        STACK_BUSY,
        "stack-busy",
        "another run holds the stack lease",
    ),
    (
        INVALID_INPUT,
        "invalid-input",
        "invalid scenario, catalogue, config or arguments",
    ),
    (
        INTERRUPTED,
        "interrupted",
        "interrupted (Ctrl-C/SIGTERM) after reverting faults",
    ),
    (ERROR, "error", "infrastructure or internal error"),
];

/// The exit-code section of `--help` and the man page, generated from [`TABLE`].
pub fn help_table() -> String {
    let mut text = String::from("Exit codes:");
    for (code, name, meaning) in TABLE {
        text.push_str(&format!("\n {code:>2}  {name:<19}  {meaning}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_table_once_in_order() {
        let codes: Vec<u8> = TABLE.iter().map(|(code, _, _)| *code).collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
        let help = help_table();
        assert!(
            help.contains("\n  7  stack-busy           another run holds the stack lease"),
            "{help}"
        );
        assert_eq!(help.lines().count(), TABLE.len() + 1);
    }

    #[test]
    fn the_readme_shows_the_generated_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README");
        for line in help_table().lines().skip(1) {
            assert!(
                readme.lines().any(|l| l == line),
                "README's exit-code table misses `{line}` (copy `f3-chaos --help`)"
            );
        }
    }
}
