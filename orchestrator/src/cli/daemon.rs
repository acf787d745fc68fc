//! `f3-chaos daemon`: the command's entry point (the daemon itself lives in [`crate::daemon`]).

pub use crate::daemon::DaemonArgs;

/// Runs `f3-chaos daemon`; returns the exit code.
pub fn execute(args: DaemonArgs) -> anyhow::Result<u8> {
    crate::daemon::execute(args)
}
