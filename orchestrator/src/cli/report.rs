//! How a run looks to people and tools: one line per step on the terminal (spinner and colour on
//! a TTY only), a JSON document with `--output json`, and a JUnit XML file with `--junit`
//! (one testcase per step, the owner as a property; written with the `quick-junit` crate).

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::{OwoColorize as _, Stream};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::config::Config;
use crate::model::Phase;
use crate::model::RunOutcome;
use crate::model::Verdict;
use crate::present;
use crate::run::{RunEvent, RunReport, StepResult};

/// Prints run events as they arrive, one line per finished step.
pub struct TerminalReporter {
    spinner: Option<ProgressBar>,
}

impl TerminalReporter {
    /// A reporter; the spinner is shown only when stderr is a terminal.
    pub fn new() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { spinner }
    }

    /// Prints a line. A closed stdout (`f3-chaos run | head`) must never stop a run that has
    /// faults injected, so write errors are ignored rather than panicking like `println!`.
    fn println(&self, line: String) {
        match &self.spinner {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
        }
    }

    /// Shows one event.
    pub fn event(&self, event: &RunEvent, config: &Config) {
        match event {
            RunEvent::RunStarted {
                run_id,
                scenario,
                stack,
                ..
            } => {
                self.println(format!("Run {run_id}: {scenario} on stack {stack}"));
            }
            RunEvent::StepStarted { phase, name, .. } => {
                if let Some(bar) = &self.spinner {
                    bar.set_message(spinner_label(*phase, name));
                }
            }
            RunEvent::StepFinished(step) => self.println(step_line(step, config)),
            RunEvent::FaultReverted {
                name, ok, message, ..
            } => {
                if *ok {
                    self.println(format!("{} Reverted: {name}", tag(Verdict::Passed)));
                } else {
                    let text = format!(
                        "[CLEANUP-FAILED] Reverting {name}: {}",
                        message.as_deref().unwrap_or("")
                    );
                    self.println(format!(
                        "{}",
                        text.if_supports_color(Stream::Stdout, |t| t.red())
                    ));
                }
            }
            RunEvent::AbortTriggered {
                condition,
                observed,
                threshold,
                op,
                unit,
                latency_ms,
                ..
            } => {
                let evidence = match (threshold, op) {
                    (Some(threshold), Some(op)) => format!(
                        "observed {}, abort when {op} {}",
                        present::quantity(*observed, unit.as_deref()),
                        present::quantity(*threshold, unit.as_deref())
                    ),
                    _ => format!("observed {}", present::quantity(*observed, unit.as_deref())),
                };
                let text = format!(
                    "[ABORTED] Abort condition `{condition}` breached ({evidence}); faults reverted in {latency_ms} ms"
                );
                self.println(format!(
                    "{}",
                    text.if_supports_color(Stream::Stdout, |t| t.magenta())
                ));
            }
            RunEvent::Notifying { team, .. } => {
                let display = config
                    .teams
                    .get(team)
                    .map_or(team.as_str(), |t| t.display_name.as_str());
                self.println(format!("Notifying {display}…"));
            }
            RunEvent::SilenceExpired {
                silence_id,
                ok,
                message,
            } => {
                if *ok {
                    self.println(format!(
                        "{} Silence expired: {silence_id}",
                        tag(Verdict::Passed)
                    ));
                } else {
                    let text = format!(
                        "[WARNING] Could not expire silence {silence_id}: {}; it ends by itself",
                        message.as_deref().unwrap_or("")
                    );
                    self.println(format!(
                        "{}",
                        text.if_supports_color(Stream::Stdout, |t| t.yellow())
                    ));
                }
            }
            RunEvent::AnnotationFailed { at, message } => {
                let text = format!("[WARNING] Grafana annotation at {at} failed: {message}");
                self.println(format!(
                    "{}",
                    text.if_supports_color(Stream::Stdout, |t| t.yellow())
                ));
            }
            RunEvent::Fingerprint { .. }
            | RunEvent::FaultInjected { .. }
            | RunEvent::AlertsSilenced { .. }
            | RunEvent::RunFinished { .. } => {}
        }
    }

    /// Clears the spinner and prints the summary.
    pub fn finish(&self, report: &RunReport) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", summary_line(report));
        if let Some(reason) = &report.reason {
            let _ = writeln!(out, "  {reason}");
        }
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

/// The spinner's text for a step: `Given: Steady 300 TPS`; a step whose name already carries its
/// phase (`Recovery: Steady 300 TPS`) is not prefixed twice.
fn spinner_label(phase: Phase, name: &str) -> String {
    let label = phase_label(phase);
    match name
        .strip_prefix(label)
        .and_then(|rest| rest.strip_prefix(": "))
    {
        Some(_) => name.to_owned(),
        None => format!("{label}: {name}"),
    }
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Given => "Given",
        Phase::When => "When",
        Phase::Then => "Assertion",
        Phase::Recovery => "Recovery",
    }
}

fn tag(verdict: Verdict) -> String {
    let text = match verdict {
        Verdict::Passed => "[SUCCESS]",
        Verdict::Failed => "[FAILED]",
        Verdict::Inconclusive => "[INCONCLUSIVE]",
        Verdict::Skipped => "[SKIPPED]",
        Verdict::Error => "[ERROR]",
    };
    match verdict {
        Verdict::Passed => text
            .if_supports_color(Stream::Stdout, |t| t.green())
            .to_string(),
        Verdict::Failed | Verdict::Error => text
            .if_supports_color(Stream::Stdout, |t| t.red())
            .to_string(),
        Verdict::Inconclusive => text
            .if_supports_color(Stream::Stdout, |t| t.yellow())
            .to_string(),
        Verdict::Skipped => text
            .if_supports_color(Stream::Stdout, |t| t.dimmed())
            .to_string(),
    }
}

/// One terminal line for a finished step, e.g.
/// `[FAILED] Assertion: Product SLO latency < 250ms (observed 310 ms, needs < 250 ms) — owner: payments (Payments team)`
/// ([`present::comparison`]).
pub fn step_line(step: &StepResult, config: &Config) -> String {
    let label = match step.phase {
        Phase::When => step.name.clone(),
        Phase::Given => format!("Given: {}", step.name),
        Phase::Then => format!("Assertion: {}", step.name),
        Phase::Recovery => step.name.clone(),
    };
    let mut line = format!("{} {label}", tag(step.verdict));
    if let Some(evidence) = step.comparison() {
        line.push_str(&format!(" ({evidence})"));
    }
    let explained =
        step.verdict != Verdict::Passed || (step.phase != Phase::When && step.observed.is_none());
    if explained && let Some(message) = &step.message {
        line.push_str(&format!(": {message}"));
    }
    if step.verdict != Verdict::Passed
        && step.verdict != Verdict::Skipped
        && let Some(owner) = &step.owner
    {
        let display = config
            .teams
            .get(owner)
            .map_or(owner.as_str(), |t| t.display_name.as_str());
        line.push_str(&format!(" — owner: {owner} ({display})"));
    }
    line
}

/// `Run … passed — 5/5 steps passed (100 %)`.
pub fn summary_line(report: &RunReport) -> String {
    let experiment: Vec<&StepResult> = report
        .steps
        .iter()
        .filter(|s| matches!(s.phase, Phase::When | Phase::Then))
        .collect();
    let passed = experiment
        .iter()
        .filter(|s| s.verdict == Verdict::Passed)
        .count();
    let outcome = report.outcome.as_str().to_uppercase();
    let outcome = match report.outcome {
        RunOutcome::Passed => outcome
            .if_supports_color(Stream::Stdout, |t| t.green())
            .to_string(),
        RunOutcome::Inconclusive | RunOutcome::PreconditionFailed | RunOutcome::Void => outcome
            .if_supports_color(Stream::Stdout, |t| t.yellow())
            .to_string(),
        _ => outcome
            .if_supports_color(Stream::Stdout, |t| t.red())
            .to_string(),
    };
    let steps = match report.pass_rate {
        Some(rate) => format!(
            "{passed}/{} steps passed ({} pass rate)",
            experiment.len(),
            present::ratio(rate)
        ),
        None => "no experiment step ran".to_owned(),
    };
    format!(
        "{outcome}: {} on {} — {steps}, run {}",
        report.scenario, report.stack, report.run_id
    )
}

/// JUnit XML for CI: one testsuite per run, one testcase per step (classname = phase), the owner
/// as a property; failed ⇒ `failure`, inconclusive/error ⇒ `error`, skipped ⇒ `skipped`.
pub fn junit(report: &RunReport) -> anyhow::Result<String> {
    let mut junit = Report::new("f3-chaos");
    let mut suite = TestSuite::new(format!("{} @ {}", report.scenario, report.stack));
    suite.add_property(Property::new("run_id", report.run_id.to_string()));
    suite.add_property(Property::new("outcome", report.outcome.as_str()));
    for step in &report.steps {
        let mut status = match step.verdict {
            Verdict::Passed => TestCaseStatus::success(),
            Verdict::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Verdict::Inconclusive | Verdict::Error => {
                TestCaseStatus::non_success(NonSuccessKind::Error)
            }
            Verdict::Skipped => TestCaseStatus::skipped(),
        };
        if step.verdict != Verdict::Passed {
            let mut message = format!("{}", step.verdict);
            if let Some(evidence) = step.comparison() {
                message = format!("{message}: {evidence}");
            }
            if let Some(m) = &step.message {
                message = format!("{message}: {m}");
            }
            status.set_message(message);
        }
        let mut case = TestCase::new(step.name.clone(), status);
        case.set_classname(format!("{}.{}", report.scenario, step.phase.as_str()));
        case.set_time(
            (step.ended_at - step.started_at)
                .to_std()
                .unwrap_or_default(),
        );
        if let Some(owner) = &step.owner {
            case.add_property(Property::new("owner", owner.clone()));
        }
        suite.add_test_case(case);
    }
    junit.add_test_suite(suite);
    Ok(junit.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One failed latency step reads the same in the terminal, JUnit, the notifiers' text (Slack,
    /// PagerDuty, webhook), the stored step the dashboard and `results` show, and the digest.
    #[test]
    fn the_same_value_reads_the_same_everywhere() {
        let at = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let step = StepResult {
            index: 3,
            phase: Phase::Then,
            name: "Product SLO latency < 250ms".into(),
            owner: Some("payments".into()),
            verdict: Verdict::Failed,
            observed: Some(0.41),
            threshold: Some(0.25),
            op: Some("<".into()),
            unit: Some("s".into()),
            message: None,
            started_at: at,
            ended_at: at,
        };
        let expected = "observed 410 ms, needs < 250 ms";
        let config: Config = crate::scenario::load_library(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local"),
        )
        .expect("the shipped config")
        .config;
        let terminal = step_line(&step, &config);
        assert!(terminal.contains(&format!("({expected})")), "{terminal}");
        let junit = junit(&report(RunOutcome::Failed, Some(0.0), vec![step.clone()])).unwrap();
        assert!(
            junit.contains("failed: observed 410 ms, needs &lt; 250 ms"),
            "{junit}"
        );
        let notified = crate::notify::MessageStep {
            name: step.name.clone(),
            verdict: step.verdict,
            observed: step.observed,
            threshold: step.threshold,
            op: step.op.clone(),
            unit: step.unit.clone(),
            message: None,
            slo: None,
            impact: None,
            action: None,
            nights_failing: 1,
        };
        assert_eq!(notified.evidence(), expected);
        let message = crate::notify::Message {
            kind: crate::model::NotificationKind::Failures,
            outbox_id: 1,
            run_id: uuid::Uuid::nil(),
            team: "payments".into(),
            team_display: "Payments team".into(),
            scenario: "gcp-failover-validation".into(),
            stack: "uat-beta".into(),
            outcome: Some("failed".into()),
            reason: None,
            faults: vec![],
            run_url: None,
            steps: vec![notified.clone()],
            digest: None,
            overrun_seconds: None,
            text: String::new(),
            run: None,
        };
        let slack = crate::notify::slack::body(&message);
        assert!(
            slack["blocks"][1]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.contains(expected)),
            "{slack}"
        );
        let pagerduty = crate::notify::pagerduty::events(&message, "key");
        assert_eq!(
            pagerduty[0]["payload"]["summary"],
            format!(
                "gcp-failover-validation failed on uat-beta: {} ({expected})",
                step.name
            )
        );
        let stored = crate::store::StepRecord {
            index: 3,
            phase: step.phase,
            name: step.name.clone(),
            owner: step.owner.clone(),
            verdict: Some(step.verdict),
            started_at: at,
            ended_at: Some(at),
            observed: step.observed,
            threshold: step.threshold,
            evidence: Some(serde_json::json!({"op": "<", "unit": "s"})),
            message: None,
        };
        assert_eq!(stored.comparison().as_deref(), Some(expected));
    }

    fn report(outcome: RunOutcome, pass_rate: Option<f64>, steps: Vec<StepResult>) -> RunReport {
        let at = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        RunReport {
            run_id: uuid::Uuid::nil(),
            scenario: "gcp-failover-validation".into(),
            stack: "local".into(),
            outcome,
            reason: None,
            steps,
            pass_rate,
            abort_latency_ms: None,
            notified: vec![],
            started_at: at,
            ended_at: at,
        }
    }

    #[test]
    fn a_run_without_experiment_steps_shows_no_pass_rate() {
        let line = summary_line(&report(RunOutcome::Error, None, vec![]));
        assert!(
            line.ends_with(
                "gcp-failover-validation on local — no experiment step ran, run 00000000-0000-0000-0000-000000000000"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_spinner_names_the_phase_once() {
        assert_eq!(
            spinner_label(Phase::Recovery, "Recovery: Steady 300 TPS"),
            "Recovery: Steady 300 TPS"
        );
        assert_eq!(
            spinner_label(Phase::Given, "Steady 300 TPS"),
            "Given: Steady 300 TPS"
        );
        assert_eq!(
            spinner_label(Phase::Then, "Product SLO latency < 250ms"),
            "Assertion: Product SLO latency < 250ms"
        );
    }
}
