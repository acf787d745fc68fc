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

/// The table shown in `--help` and the README.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  passed               every Then step passed
  1  failed               at least one Then step failed
  2  aborted              an abort condition was breached; faults reverted early
  3  inconclusive         a step could not be judged (e.g. Prometheus unreachable)
  4  precondition-failed  Given did not hold; no fault was injected
  5  void                 the stack changed during the run
  6  cleanup-failed       a fault could not be reverted (its TTL still ends it)
  7  stack-busy           another run holds the stack lease
  8  invalid-input        invalid scenario, catalogue, config or arguments
  9  interrupted          interrupted (Ctrl-C/SIGTERM) after reverting faults
 10  error                infrastructure or internal error";
