//! `f3-chaos validate`.

/// Arguments of `f3-chaos validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

/// Runs the command; returns the exit code.
pub fn execute(_args: ValidateArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos validate: not yet available");
    Ok(crate::exit_codes::ERROR)
}
