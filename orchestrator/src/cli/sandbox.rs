//! `f3-chaos sandbox …`: the bundled sandbox's own command line, reachable from f3-chaos.

use std::ffi::OsString;

/// Arguments of `f3-chaos sandbox`: passed unchanged to the sandbox CLI (`up`, `down`, `status`, …).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct SandboxArgs {
    /// Sandbox command and its arguments (see `f3-sandbox --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Runs the sandbox CLI (`f3_sandbox::cli_exit_code`); returns its exit code (0 success, 1 error,
/// 2 invalid arguments, 3 stack not running).
pub fn execute(args: SandboxArgs) -> anyhow::Result<u8> {
    let argv = std::iter::once(OsString::from("f3-chaos sandbox")).chain(args.args);
    Ok(f3_sandbox::cli_exit_code(argv))
}
