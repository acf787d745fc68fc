//! `f3-chaos run` and `f3-chaos trigger`.

/// Arguments of `f3-chaos run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Arguments of `f3-chaos trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {}

/// Runs `run`; returns the exit code.
pub fn execute(_args: RunArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos run: not yet available");
    Ok(crate::exit_codes::ERROR)
}

/// Runs `trigger`; returns the exit code.
pub fn execute_trigger(_args: TriggerArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos trigger: not yet available");
    Ok(crate::exit_codes::ERROR)
}
