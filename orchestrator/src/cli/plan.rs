//! `f3-chaos plan`.

/// Arguments of `f3-chaos plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

/// Runs the command; returns the exit code.
pub fn execute(_args: PlanArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos plan: not yet available");
    Ok(crate::exit_codes::ERROR)
}
