//! `f3-chaos sandbox …`: the bundled sandbox's own command line, reachable from f3-chaos.

use std::ffi::OsString;

/// Arguments of `f3-chaos sandbox`: passed unchanged to the sandbox CLI (`up`, `down`, `status`, …).
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Sandbox command and its arguments (see `f3-sandbox --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Runs the sandbox CLI; returns the exit code.
pub fn execute(_args: SandboxArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos sandbox: not yet available");
    Ok(crate::exit_codes::ERROR)
}
