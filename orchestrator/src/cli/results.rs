//! `f3-chaos results`.

/// Arguments of `f3-chaos results`.
#[derive(Debug, clap::Args)]
pub struct ResultsArgs {}

/// Runs the command; returns the exit code.
pub fn execute(_args: ResultsArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos results: not yet available");
    Ok(crate::exit_codes::ERROR)
}
