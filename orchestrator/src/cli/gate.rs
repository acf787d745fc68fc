//! `f3-chaos gate`: the CI release gate. "Did tonight's chaos for this service pass?"
//!
//! For every selected scenario (× every `--stack`, or on any stack when none is given) the gate
//! looks up the **latest finished run** in the store and judges it:
//!
//! | verdict   | when                                                              |
//! |-----------|-------------------------------------------------------------------|
//! | `PASS`    | the latest run passed and started at most `--max-age` ago          |
//! | `FAIL`    | the latest run has any outcome but `passed` (failed, aborted, void…) |
//! | `MISSING` | no finished run at all                                             |
//! | `STALE`   | the latest run started more than `--max-age` ago                   |
//!
//! Runs still `running` are ignored: the gate judges evidence, not hope. The gate exits 0 when
//! every line is `PASS`, 1 ([`exit_codes::FAILED`]) otherwise, and 8 ([`exit_codes::INVALID_INPUT`])
//! when the selector is malformed or a glob/tag selects nothing (a gate that checks nothing must
//! not pass silently).
//!
//! ## Selector
//! `--scenarios` takes a comma-separated list (the flag may be repeated); each term is one of:
//! - a scenario name: `gcp-failover-validation` (need not be in the library: the store is asked);
//! - a glob over the library's scenario names: `*-failover-validation`, `payment-?ode-loss`
//!   (`*` = any run of characters, `?` = one character);
//! - a tag: `tag=dr-plan` (every library scenario carrying that tag).
//!
//! The union of all terms is gated. Globs and tags need the scenario library (`--config`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::common::OutputFormat;
use crate::document::{GateDocument, GateDocumentLine, GateStatus, RunSummary};
use crate::duration::HumanDuration;
use crate::exit_codes;
use crate::store::{RunFilter, RunRecord};

/// How many of the newest runs of one scenario × stack are read to skip the running ones.
const LOOKBACK: u32 = 50;

/// Exit codes of `f3-chaos gate`, shown by `f3-chaos gate --help`.
fn gate_exit_codes() -> String {
    use crate::exit_codes::{ERROR, FAILED, INVALID_INPUT, PASSED, help_for};
    help_for(
        &[PASSED, FAILED, INVALID_INPUT, ERROR],
        &[
            (
                PASSED,
                "every selected scenario (× stack) has a recent passing run",
            ),
            (FAILED, "at least one line is FAIL, MISSING or STALE"),
            (
                INVALID_INPUT,
                "a malformed selector, or a glob/tag that selects no scenario",
            ),
            (ERROR, "the store or the JUnit file could not be used"),
        ],
    )
}

/// Arguments of `f3-chaos gate`.
#[derive(Debug, clap::Args)]
#[command(after_help = gate_exit_codes())]
pub struct GateArgs {
    /// Scenarios to gate: comma-separated names, globs (`*-failover-*`) and/or `tag=TAG`.
    #[arg(long, required = true, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// The latest run must have started at most this long ago (e.g. `24h`, `36h`, `7d`).
    #[arg(long, default_value = "24h", allow_hyphen_values = true)]
    pub max_age: HumanDuration,
    /// Gate each scenario on these stacks (repeat or comma-separate); default: any stack.
    #[arg(long, value_delimiter = ',')]
    pub stack: Vec<String>,
    /// Also write a JUnit XML report here (one testcase per scenario × stack).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = super::common::offering(&[OutputFormat::Text, OutputFormat::Json]))]
    pub output: OutputFormat,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
}

/// One line of the gate's list.
#[derive(Debug, Clone)]
pub struct GateLine {
    /// Scenario name.
    pub scenario: String,
    /// Stack asked for (`None` = any stack).
    pub stack: Option<String>,
    /// The judgement.
    pub status: GateStatus,
    /// The latest finished run, if any.
    pub run: Option<RunRecord>,
    /// Why, in one sentence.
    pub reason: String,
}

/// The decision document of the judged `lines` ([`GateDocument`]).
pub fn document(
    lines: &[GateLine],
    max_age: HumanDuration,
    checked_at: DateTime<Utc>,
) -> GateDocument {
    GateDocument {
        schema_version: crate::document::SCHEMA_VERSION,
        passed: lines.iter().all(|l| l.status == GateStatus::Pass),
        max_age: max_age.to_string(),
        max_age_seconds: max_age.as_std().as_secs(),
        checked_at,
        lines: lines
            .iter()
            .map(|l| GateDocumentLine {
                scenario: l.scenario.clone(),
                stack: l.stack.clone(),
                status: l.status,
                reason: l.reason.clone(),
                run: l.run.as_ref().map(RunSummary::of),
            })
            .collect(),
    }
}

/// Judges the latest finished run (`latest`) of one scenario × stack at `now`.
pub fn judge(
    scenario: &str,
    stack: Option<&str>,
    latest: Option<RunRecord>,
    now: DateTime<Utc>,
    max_age: HumanDuration,
) -> GateLine {
    let (status, reason) = match &latest {
        None => (
            GateStatus::Missing,
            "no finished run in the store".to_owned(),
        ),
        Some(run) => {
            let age = now - run.started_at;
            if run.outcome() != Some(crate::model::RunOutcome::Passed) {
                (
                    GateStatus::Fail,
                    format!(
                        "latest run {} ended `{}` ({} ago)",
                        run.id,
                        run.status,
                        fmt_age(age)
                    ),
                )
            } else if age > max_age.as_chrono() {
                (
                    GateStatus::Stale,
                    format!(
                        "latest run {} passed {} ago, older than --max-age {max_age}",
                        run.id,
                        fmt_age(age)
                    ),
                )
            } else {
                (
                    GateStatus::Pass,
                    format!("run {} passed {} ago", run.id, fmt_age(age)),
                )
            }
        }
    };
    GateLine {
        scenario: scenario.to_owned(),
        stack: stack.map(str::to_owned),
        status,
        run: latest,
        reason,
    }
}

/// `3h12m`, `2d4h`, `45s`: coarse enough to read at a glance.
fn fmt_age(age: chrono::Duration) -> String {
    let secs = age.num_seconds().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character; nothing else is
/// special).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard matching with back-tracking to the last `*` (linear in practice).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Resolves the selector terms against the library's scenarios (`name → tags`).
///
/// # Errors
/// A message naming the term that is empty, or the glob/tag that selects nothing.
pub fn select(
    terms: &[String],
    library: Option<&[(String, Vec<String>)]>,
) -> Result<BTreeSet<String>, String> {
    let mut selected = BTreeSet::new();
    for term in terms.iter().map(|t| t.trim()) {
        if term.is_empty() {
            return Err("empty term in --scenarios".to_owned());
        }
        let is_tag = term.starts_with("tag=");
        let is_glob = term.contains(['*', '?']);
        if !is_tag && !is_glob {
            selected.insert(term.to_owned());
            continue;
        }
        let Some(library) = library else {
            return Err(format!(
                "`{term}` needs the scenario library, which could not be loaded (see --config)"
            ));
        };
        let mut matched = false;
        for (name, tags) in library {
            let hit = match term.strip_prefix("tag=") {
                Some(tag) => tags.iter().any(|t| t == tag),
                None => glob_match(term, name),
            };
            if hit {
                matched = true;
                selected.insert(name.clone());
            }
        }
        if !matched {
            return Err(format!("`{term}` selects no scenario of the library"));
        }
    }
    Ok(selected)
}

/// For a scenario name the library does not know: says so, with the closest name when one is
/// near (`did you mean …`). None when the name is known or the library could not be loaded.
fn unknown_scenario_hint(name: &str, library: Option<&[(String, Vec<String>)]>) -> Option<String> {
    let names: Vec<String> = library?.iter().map(|(n, _)| n.clone()).collect();
    crate::input::unknown_name_hint("scenario of the library", name, &names)
}

/// Runs the command; returns the exit code.
pub fn execute(args: GateArgs) -> anyhow::Result<u8> {
    let runtime = super::common::runtime()?;
    runtime.block_on(gate(args))
}

async fn gate(args: GateArgs) -> anyhow::Result<u8> {
    let library = crate::scenario::load_library(&args.cfg.config).ok();
    let catalogue: Option<Vec<(String, Vec<String>)>> = library.as_ref().map(|l| {
        l.scenarios
            .values()
            .map(|s| (s.name.clone(), s.tags.clone()))
            .collect()
    });
    let selected = match select(&args.scenarios, catalogue.as_deref()) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let store = args
        .cfg
        .open_store(library.as_ref().map(|l| &l.config))
        .await?;
    let known_stacks: Option<Vec<String>> = library
        .as_ref()
        .map(|l| l.config.stacks.keys().cloned().collect());
    let now = Utc::now();
    let stacks: Vec<Option<&str>> = if args.stack.is_empty() {
        vec![None]
    } else {
        args.stack.iter().map(|s| Some(s.as_str())).collect()
    };
    let mut lines = Vec::new();
    for scenario in &selected {
        for stack in &stacks {
            let filter = RunFilter {
                scenario: Some(scenario.clone()),
                stack: stack.map(str::to_owned),
                limit: Some(LOOKBACK),
                ..RunFilter::default()
            };
            let latest = store
                .runs(&filter)
                .await?
                .into_iter()
                .find(|r| !r.is_running());
            let mut line = judge(scenario, *stack, latest, now, args.max_age);
            if line.status == GateStatus::Missing {
                let hints = [
                    unknown_scenario_hint(scenario, catalogue.as_deref()),
                    stack
                        .zip(known_stacks.as_deref())
                        .and_then(|(stack, known)| {
                            crate::input::unknown_name_hint("stack of the config", stack, known)
                        }),
                ];
                for hint in hints.into_iter().flatten() {
                    line.reason = format!("{}; {hint}", line.reason);
                }
            }
            lines.push(line);
        }
    }
    let failing = lines
        .iter()
        .filter(|l| l.status != GateStatus::Pass)
        .count();
    if let Some(path) = &args.junit {
        let xml = junit(&lines, args.max_age)?;
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.output == OutputFormat::Json {
        let doc = document(&lines, args.max_age, now);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", text(&lines, args.max_age));
    }
    Ok(if failing == 0 {
        exit_codes::PASSED
    } else {
        exit_codes::FAILED
    })
}

/// The human list: one line per scenario × stack, then a verdict line.
pub fn text(lines: &[GateLine], max_age: HumanDuration) -> String {
    let mut out = String::new();
    let width = lines.iter().map(|l| l.scenario.len()).max().unwrap_or(0);
    for line in lines {
        let stack = line
            .run
            .as_ref()
            .map(|r| r.stack.as_str())
            .or(line.stack.as_deref())
            .unwrap_or("any stack");
        let _ = writeln!(
            out,
            "[{:<7}] {:<width$}  {:<12} {}",
            line.status.label(),
            line.scenario,
            stack,
            line.reason
        );
    }
    let failing: Vec<&GateLine> = lines
        .iter()
        .filter(|l| l.status != GateStatus::Pass)
        .collect();
    if failing.is_empty() {
        let _ = writeln!(
            out,
            "Gate passed: {} check(s), every latest run passed within {max_age}.",
            lines.len()
        );
    } else {
        let _ = writeln!(
            out,
            "Gate FAILED: {} of {} check(s) did not pass within {max_age}:",
            failing.len(),
            lines.len()
        );
        for line in failing {
            let on = line
                .stack
                .as_deref()
                .map(|s| format!(" on {s}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  - {}{on}: {}", line.scenario, line.reason);
        }
    }
    out
}

/// JUnit XML: one testsuite `f3-chaos gate`, one testcase per scenario × stack; FAIL ⇒ failure,
/// MISSING/STALE ⇒ error.
///
/// # Errors
/// Serialisation errors of `quick-junit`.
pub fn junit(lines: &[GateLine], max_age: HumanDuration) -> anyhow::Result<String> {
    let mut report = Report::new("f3-chaos");
    let mut suite = TestSuite::new("f3-chaos gate");
    suite.add_property(Property::new("max_age", max_age.to_string()));
    for line in lines {
        let mut status = match line.status {
            GateStatus::Pass => TestCaseStatus::success(),
            GateStatus::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
            GateStatus::Missing | GateStatus::Stale => {
                TestCaseStatus::non_success(NonSuccessKind::Error)
            }
        };
        if line.status != GateStatus::Pass {
            status.set_message(format!("{}: {}", line.status.label(), line.reason));
        }
        let stack = line.stack.as_deref().unwrap_or("any");
        let mut case = TestCase::new(format!("{} @ {stack}", line.scenario), status);
        case.set_classname(format!("gate.{}", line.scenario));
        if let Some(run) = &line.run {
            case.add_property(Property::new("run_id", run.id.to_string()));
            case.add_property(Property::new("outcome", run.status.as_str()));
            if let Some(d) = run.duration() {
                case.set_time(d);
            }
        }
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*-failover-*", "gcp-failover-validation"));
        assert!(glob_match("payment-?ode-loss", "payment-node-loss"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("gcp-*", "aws-failover-validation"));
        assert!(!glob_match("a?", "a"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn selectors() {
        let lib = vec![
            (
                "gcp-failover-validation".to_owned(),
                vec!["dr-plan".to_owned()],
            ),
            (
                "aws-failover-validation".to_owned(),
                vec!["dr-plan".to_owned()],
            ),
            ("gateway-cpu-stress".to_owned(), vec!["cpu".to_owned()]),
        ];
        let terms = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let got = select(&terms(&["tag=dr-plan", "other"]), Some(&lib)).unwrap_or_default();
        assert_eq!(got.len(), 3);
        assert!(got.contains("other"));
        assert!(select(&terms(&["tag=none"]), Some(&lib)).is_err());
        assert!(select(&terms(&["gcp-*"]), None).is_err());
        assert!(select(&terms(&[" "]), Some(&lib)).is_err());
    }
}
