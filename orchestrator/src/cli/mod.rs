//! The `f3-chaos` command line (clap). Each command lives in its own file with its argument struct
//! and an `execute` function returning the process exit code (see [`crate::exit_codes`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit_codes;

pub mod common;
pub mod daemon;
pub mod dashboard;
pub mod gate;
pub mod notify;
pub mod plan;
pub mod remote;
pub mod report;
pub mod results;
pub mod results_night;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod validate;

/// Chaos-experiment orchestrator: Given/When/Then scenarios against shared stacks.
#[derive(Debug, Parser)]
#[command(name = "f3-chaos", version, about, after_help = exit_codes::help_table())]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour on stdout and stderr: `auto` (only on a terminal, never with `NO_COLOR`), `always`
    /// or `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (https://no-color.org).
    Auto,
    /// Always, even into a file or pipe.
    Always,
    /// Never.
    Never,
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate scenarios, the SLO catalogue and config; print every diagnostic.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of scenario files (for yaml-language-server).
    Schema(schema::SchemaArgs),
    /// Plan a night: pack scenarios into the chaos window across stacks.
    Plan(plan::PlanArgs),
    /// Run one scenario now on one stack.
    Run(run::RunArgs),
    /// Fire and forget: start a scenario and return once its faults are injected.
    Trigger(run::TriggerArgs),
    /// Show past runs with their evidence.
    Results(results::ResultsArgs),
    /// CI release gate: fail unless every selected scenario's latest run passed recently.
    Gate(gate::GateArgs),
    /// Deliver the notification outbox now (retries included with --wait).
    Notify(notify::NotifyArgs),
    /// Print (and with --send, deliver) the morning digest of a night, one message per team.
    Digest(notify::DigestArgs),
    /// Serve the read-only dashboard from the store on its own (the daemon serves it too).
    Dashboard(dashboard::DashboardArgs),
    /// Manage the bundled local sandbox (same as the `f3-sandbox` binary).
    Sandbox(sandbox::SandboxArgs),
    /// Plan and execute chaos nights unattended (cron trigger, parallel stacks, start-up sweep).
    Daemon(daemon::DaemonArgs),
    /// Print a shell completion script: `f3-chaos completions bash > /etc/bash_completion.d/f3-chaos`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `f3-chaos man | man -l -`.
    Man,
    /// Internal: the dead-man switch of one local fault (started by the local driver).
    #[command(name = "__fault-watchdog", hide = true)]
    FaultWatchdog {
        /// Only start the real watchdog in its own process group and print its PID.
        #[arg(long)]
        detach: bool,
        /// The watchdog spec (JSON).
        spec: String,
    },
}

/// Entry point of the binary: parse, dispatch, print the error chain, map to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit_codes::INVALID_INPUT
            } else {
                exit_codes::PASSED
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match cli.color {
        ColorChoice::Auto => {}
        ColorChoice::Always => owo_colors::set_override(true),
        ColorChoice::Never => owo_colors::set_override(false),
    }
    init_tracing(cli.log_format, cli.color);
    let result = match cli.command {
        Command::Validate(args) => validate::execute(args),
        Command::Schema(args) => schema::execute(args),
        Command::Plan(args) => plan::execute(args),
        Command::Run(args) => run::execute(args),
        Command::Trigger(args) => run::execute_trigger(args),
        Command::Results(args) => results::execute(args),
        Command::Gate(args) => gate::execute(args),
        Command::Notify(args) => notify::execute(args),
        Command::Digest(args) => notify::execute_digest(args),
        Command::Dashboard(args) => dashboard::execute(args),
        Command::Sandbox(args) => sandbox::execute(args),
        Command::Daemon(args) => daemon::execute(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "f3-chaos", &mut std::io::stdout());
            Ok(exit_codes::PASSED)
        }
        Command::Man => man_page(),
        Command::FaultWatchdog { detach, spec } => crate::fault::watchdog::main(detach, &spec),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code_for(&err))
        }
    }
}

/// `f3-chaos man`: the top-level manual page (clap_mangen), exit codes included.
fn man_page() -> anyhow::Result<u8> {
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
    Ok(exit_codes::PASSED)
}

fn init_tracing(format: LogFormat, color: ColorChoice) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("F3_CHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and never with NO_COLOR (https://no-color.org): a log
    // redirected to a file carries no escape codes.
    use std::io::IsTerminal as _;
    let colour = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The exit code of a command that failed with `error`: the first cause in its chain that
/// names one (a busy stack 7; a bad store URL or a production run the scenario does not opt in
/// to 8), else [`exit_codes::ERROR`].
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<crate::run::RunError>() {
            if e.is_stack_busy() {
                return exit_codes::STACK_BUSY;
            }
            if matches!(
                e,
                crate::run::RunError::ProductionNotAllowed { .. }
                    | crate::run::RunError::DriverCannot { .. }
            ) {
                return exit_codes::INVALID_INPUT;
            }
        }
        if cause
            .downcast_ref::<crate::store::StoreError>()
            .is_some_and(crate::store::StoreError::is_bad_url)
        {
            return exit_codes::INVALID_INPUT;
        }
    }
    exit_codes::ERROR
}

#[cfg(test)]
mod exit_code_tests {
    use super::*;

    /// The `Exit codes:` section of a rendered help: `(code, line)` pairs.
    fn exit_code_lines(help: &str) -> Vec<(u8, String)> {
        help.lines()
            .skip_while(|l| *l != "Exit codes:")
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                let code = l.split_whitespace().next().and_then(|c| c.parse().ok());
                (
                    code.unwrap_or_else(|| panic!("not an exit-code line: {l:?}")),
                    l.to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_command_lists_its_exit_codes_from_the_one_table() {
        let mut cli = <Cli as clap::CommandFactory>::command();
        cli.build();
        // `sandbox` is f3-sandbox's own command line, with its own codes (docs/sandbox.md);
        // `completions` and `man` only print.
        let own_codes = ["sandbox", "completions", "man", "help"];
        let mut checked = Vec::new();
        for command in cli.get_subcommands_mut() {
            let name = command.get_name().to_owned();
            if command.is_hide_set() || own_codes.contains(&name.as_str()) {
                continue;
            }
            let help = command.render_long_help().to_string();
            let lines = exit_code_lines(&help);
            let codes: Vec<u8> = lines.iter().map(|(code, _)| *code).collect();
            // Any command can be given bad arguments (clap: 8) or fail (10).
            for always in [exit_codes::INVALID_INPUT, exit_codes::ERROR] {
                assert!(
                    codes.contains(&always),
                    "`{name} --help` lacks {always}: {help}"
                );
            }
            for (code, line) in &lines {
                let (_, table_name, _) = exit_codes::TABLE
                    .iter()
                    .find(|(c, _, _)| c == code)
                    .unwrap_or_else(|| panic!("`{name}`: code {code} is not in the table"));
                assert!(
                    line.split_whitespace().nth(1) == Some(*table_name),
                    "`{name}`: {line:?} is not the table's name for {code}"
                );
            }
            if name == "run" || name == "trigger" {
                // A run's exit code is its outcome's: every outcome is listed.
                for outcome in crate::model::RunOutcome::ALL {
                    assert!(
                        codes.contains(&outcome.exit_code()),
                        "`{name} --help` lacks {outcome} ({})",
                        outcome.exit_code()
                    );
                }
                assert!(codes.contains(&exit_codes::STACK_BUSY), "{help}");
            }
            checked.push(name);
        }
        assert_eq!(
            checked,
            [
                "validate",
                "schema",
                "plan",
                "run",
                "trigger",
                "results",
                "gate",
                "notify",
                "digest",
                "dashboard",
                "daemon"
            ],
            "a new command needs its exit codes in its help"
        );
    }

    #[test]
    fn errors_map_to_their_codes() {
        let busy = anyhow::Error::from(crate::run::RunError::TargetBusy {
            stack: "local".into(),
            holder: "run x".into(),
        })
        .context("starting the run");
        assert_eq!(exit_code_for(&busy), exit_codes::STACK_BUSY);
        let production = anyhow::Error::from(crate::run::RunError::ProductionNotAllowed {
            scenario: "s".into(),
            stack: "prod-1".into(),
        });
        assert_eq!(exit_code_for(&production), exit_codes::INVALID_INPUT);
        assert_eq!(
            exit_code_for(&anyhow::anyhow!("the disk is on fire")),
            exit_codes::ERROR
        );
    }
}
