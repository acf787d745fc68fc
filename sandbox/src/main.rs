//! The `f3-sandbox` binary: the sandbox command line (see `f3_sandbox::cli`).

fn main() -> std::process::ExitCode {
    f3_sandbox::cli_main(std::env::args_os())
}
