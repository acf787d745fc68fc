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

/// The exit-code section of the top-level `--help` and the man page: every row of [`TABLE`].
pub fn help_table() -> String {
    let all: Vec<u8> = TABLE.iter().map(|(code, _, _)| *code).collect();
    help_for(&all, &[])
}

/// The exit-code section of one command's `--help`: the rows of [`TABLE`] for `codes` (in the
/// table's order), with a row's meaning replaced where `meanings` has one for its code (the gate's
/// `failed` is about runs, not Then steps). Every command can exit 8 (invalid arguments, said by
/// clap) and 10 (an error), so callers list both.
pub fn help_for(codes: &[u8], meanings: &[(u8, &str)]) -> String {
    let mut text = String::from("Exit codes:");
    for (code, name, meaning) in TABLE.iter().filter(|(code, _, _)| codes.contains(code)) {
        let meaning = meanings
            .iter()
            .find(|(c, _)| c == code)
            .map_or(*meaning, |(_, m)| m);
        text.push_str(&format!("\n {code:>2}  {name:<19}  {meaning}"));
    }
    text
}

/// The codes of a command that runs a scenario (`run`, `trigger`): every one.
pub const RUN_CODES: &[u8] = &[
    PASSED,
    FAILED,
    ABORTED,
    INCONCLUSIVE,
    PRECONDITION_FAILED,
    VOID,
    CLEANUP_FAILED,
    STACK_BUSY,
    INVALID_INPUT,
    INTERRUPTED,
    ERROR,
];

/// The codes of a command that judges no run: success, invalid input, error.
pub const PLAIN_CODES: &[u8] = &[PASSED, INVALID_INPUT, ERROR];

/// The exit-code section of a command that judges no run ([`PLAIN_CODES`]).
pub fn plain_help() -> String {
    help_for(
        PLAIN_CODES,
        &[(PASSED, "the command did what it was asked")],
    )
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
