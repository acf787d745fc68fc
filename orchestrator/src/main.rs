//! The `f3-chaos` binary: parses the command line and maps the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    f3_chaos::cli::main()
}
