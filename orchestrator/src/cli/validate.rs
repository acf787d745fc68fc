//! `f3-chaos validate [PATHS…]`: compiles scenarios, the SLO catalogue and configuration and
//! prints every diagnostic (rustc style on stderr, or JSON on stdout with `--output json`).
//! Exit code 0 when there is no error (warnings allowed), 8 (`INVALID_INPUT`) otherwise —
//! including when a directory given holds no YAML file at all (nothing was validated).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::common::{OutputFormat, offering};
use crate::exit_codes;
use crate::scenario::{Checked, Diagnostic, check_library, check_paths};

/// Arguments of `f3-chaos validate`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!(
    "{}\n\n{}",
    "Examples:
  f3-chaos validate                              # the default config dir and the library it names
  f3-chaos validate scenarios assertions config  # everything shipped
  f3-chaos validate scenarios/my-new.yaml        # one file, against --config's stacks and teams
  f3-chaos validate --output json scenarios      # for tools
  f3-chaos validate --output github scenarios    # annotations on a GitHub pull request",
    crate::exit_codes::plain_help()
))]
pub struct ValidateArgs {
    /// Files or directories (searched recursively for *.yaml/*.yml). Each file is classified by
    /// its `kind:` (Scenario, SloCatalogue, Config, Stacks, Teams). Without paths, validates the
    /// config directory and the scenario library and catalogue it names.
    pub paths: Vec<PathBuf>,
    /// Configuration directory used when PATHS contain no `kind: Config` file (its stacks, teams
    /// and SLO catalogue resolve references).
    #[arg(long, env = "F3_CHAOS_CONFIG", value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = offering(&[OutputFormat::Text, OutputFormat::Json, OutputFormat::Github]))]
    pub output: OutputFormat,
}

/// The JSON report of `--output json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    ok: bool,
    files: usize,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
    scenarios: Vec<&'a str>,
    slos: Vec<&'a str>,
    stacks: Vec<&'a str>,
    teams: Vec<&'a str>,
}

/// The configuration directory used when none is given: `config/local` under the current
/// directory, if it exists.
fn default_config_dir() -> Option<PathBuf> {
    let local = Path::new("config/local");
    local.is_dir().then(|| local.to_owned())
}

/// Runs the command; returns the exit code.
pub fn execute(args: ValidateArgs) -> anyhow::Result<u8> {
    let config = args.config.clone().or_else(default_config_dir);
    let checked = if args.paths.is_empty() {
        match &config {
            Some(dir) => check_library(dir),
            None => {
                eprintln!(
                    "error: nothing to validate: give PATHS or --config DIR (no ./config/local here)"
                );
                return Ok(exit_codes::INVALID_INPUT);
            }
        }
    } else {
        check_paths(&args.paths, config.as_deref())
    };
    let mut checked = checked;
    crate::fault::capabilities::warn(&mut checked);
    print(&checked, args.output)?;
    Ok(if checked.diagnostics.has_errors() {
        exit_codes::INVALID_INPUT
    } else {
        exit_codes::PASSED
    })
}

/// One diagnostic as a GitHub Actions workflow command ("Setting an error message",
/// docs.github.com/actions/reference/workflow-commands): `::error` or `::warning` with the file,
/// line and column, the field as its title, and the message (plus help) as its text. Values are
/// escaped as the runner expects (`%`, CR and LF in both; also `:` and `,` in properties).
fn github_annotation(d: &Diagnostic) -> String {
    fn data(text: &str) -> String {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn property(text: &str) -> String {
        data(text).replace(':', "%3A").replace(',', "%2C")
    }
    let command = match d.severity {
        crate::scenario::Severity::Error => "error",
        crate::scenario::Severity::Warning => "warning",
    };
    let mut properties = vec![format!("file={}", property(&d.file.display().to_string()))];
    if d.line > 0 {
        properties.push(format!("line={}", d.line));
    }
    if d.column > 0 {
        properties.push(format!("col={}", d.column));
    }
    if !d.field.is_empty() {
        properties.push(format!("title={}", property(&d.field)));
    }
    let message = match &d.help {
        Some(help) => format!("{} (help: {help})", d.message),
        None => d.message.clone(),
    };
    format!("::{command} {}::{}", properties.join(","), data(&message))
}

fn print(checked: &Checked, format: OutputFormat) -> anyhow::Result<()> {
    let diags = &checked.diagnostics;
    let lib = checked.library.as_ref();
    match format {
        OutputFormat::Json => {
            let report = Report {
                ok: !diags.has_errors(),
                files: checked.files,
                errors: diags.error_count(),
                warnings: diags.warning_count(),
                diagnostics: &diags.0,
                scenarios: lib
                    .map(|l| l.scenarios.keys().map(String::as_str).collect())
                    .unwrap_or_default(),
                slos: lib
                    .map(|l| l.catalogue.keys().map(String::as_str).collect())
                    .unwrap_or_default(),
                stacks: lib
                    .map(|l| l.config.stacks.keys().map(String::as_str).collect())
                    .unwrap_or_default(),
                teams: lib
                    .map(|l| l.config.teams.keys().map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Github => {
            for d in &diags.0 {
                println!("{}", github_annotation(d));
            }
            let plural =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}: {}, {} in {}",
                if diags.has_errors() { "failed" } else { "ok" },
                plural(diags.error_count(), "error"),
                plural(diags.warning_count(), "warning"),
                plural(checked.files, "file")
            );
        }
        // `text`, and the formats validate does not offer (its parser refuses them).
        _ => {
            if !diags.is_empty() {
                eprint!("{diags}");
            }
            match lib {
                Some(l) if !diags.has_errors() => println!(
                    "ok: {} files: {} scenarios, {} SLOs, {} stacks, {} teams",
                    checked.files,
                    l.scenarios.len(),
                    l.catalogue.len(),
                    l.config.stacks.len(),
                    l.config.teams.len()
                ),
                _ => println!(
                    "failed: {} errors in {} files",
                    diags.error_count(),
                    checked.files
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(paths: Vec<PathBuf>) -> u8 {
        execute(ValidateArgs {
            paths,
            config: None,
            output: OutputFormat::Json,
        })
        .expect("validate runs")
    }

    /// `validate DIR` of a directory without scenario (or any YAML) files used to exit 0.
    #[test]
    fn an_empty_directory_is_invalid_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            validate(vec![dir.path().to_owned()]),
            exit_codes::INVALID_INPUT
        );
    }

    #[test]
    fn the_shipped_library_passes() {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let paths = ["scenarios", "assertions", "config"].map(|p| repo.join(p));
        assert_eq!(validate(paths.to_vec()), exit_codes::PASSED);
    }
}
