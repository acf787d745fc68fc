//! `f3-chaos schema`.

/// Arguments of `f3-chaos schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// Runs the command; returns the exit code.
pub fn execute(_args: SchemaArgs) -> anyhow::Result<u8> {
    eprintln!("f3-chaos schema: not yet available");
    Ok(crate::exit_codes::ERROR)
}
