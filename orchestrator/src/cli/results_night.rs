//! `f3-chaos results --night YYYY-MM-DD --output text|json|csv`: every run of one chaos night
//! with its steps, for the morning report and spreadsheets.
//!
//! - `json`: `{ "night", "totals": { "runs", "passed", "pass_rate", "by_outcome" }, "runs": [ { "run",
//!   "steps" } ] }` — the full records, as `results RUN_ID --output json` prints them.
//! - `csv` (RFC 4180, header row): one row per run — `night, run_id, scenario, stack, outcome,
//!   started_at, ended_at` (RFC 3339 UTC), `duration_s`, `steps`, `failed_steps` (count), and
//!   `failed` (`phase: name [owner]` of every step not passed/skipped, joined with `; `).
//! - `text`: one line per run and the totals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{NaiveDate, SecondsFormat};
use serde_json::json;

use super::common::OutputFormat;
use crate::exit_codes;
use crate::model::{RunOutcome, Verdict};
use crate::store::{RunRecord, StepRecord, Store};

/// Prints every run of `night` (oldest first) in `output` format; returns the exit code.
///
/// # Errors
/// Store errors.
pub async fn print_night(
    store: &Store,
    night: NaiveDate,
    calendar: crate::plan::NightCalendar,
    output: OutputFormat,
) -> anyhow::Result<u8> {
    let runs = store
        .runs_of_night(night, calendar.window_of(night))
        .await?;
    let mut rows = Vec::with_capacity(runs.len());
    for run in runs {
        let steps = store.steps(run.id).await?;
        rows.push((run, steps));
    }
    let text = match output {
        OutputFormat::Json => serde_json::to_string_pretty(&night_json(night, &rows))? + "\n",
        OutputFormat::Csv => csv(night, &rows),
        _ => text(night, &rows),
    };
    print!("{text}");
    Ok(exit_codes::PASSED)
}

/// Outcome counts and the pass rate (passed / finished runs, 0–1; `None` without finished runs).
fn totals(rows: &[(RunRecord, Vec<StepRecord>)]) -> (BTreeMap<&'static str, usize>, Option<f64>) {
    let mut by_outcome: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (run, _) in rows {
        *by_outcome.entry(run.status.as_str()).or_default() += 1;
    }
    let finished = rows.iter().filter(|(r, _)| !r.is_running()).count();
    let passed = passed_runs(rows);
    let rate = (finished > 0).then(|| passed as f64 / finished as f64);
    (by_outcome, rate)
}

/// The JSON document of one night.
pub fn night_json(night: NaiveDate, rows: &[(RunRecord, Vec<StepRecord>)]) -> serde_json::Value {
    let (by_outcome, rate) = totals(rows);
    json!({
        "night": night,
        "totals": {
            "runs": rows.len(),
            "passed": passed_runs(rows),
            "pass_rate": rate,
            "by_outcome": by_outcome,
        },
        "runs": rows.iter().map(|(run, steps)| json!({ "run": run, "steps": steps })).collect::<Vec<_>>(),
    })
}

/// How many of the night's runs passed.
fn passed_runs(rows: &[(RunRecord, Vec<StepRecord>)]) -> usize {
    rows.iter()
        .filter(|(r, _)| r.outcome() == Some(RunOutcome::Passed))
        .count()
}

fn failed_steps(steps: &[StepRecord]) -> Vec<String> {
    steps
        .iter()
        .filter(|s| s.verdict.is_some_and(Verdict::needs_attention))
        .map(|s| {
            let owner = s
                .owner
                .as_deref()
                .map(|o| format!(" [{o}]"))
                .unwrap_or_default();
            format!("{}: {}{owner}", s.phase, s.name)
        })
        .collect()
}

/// One CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The CSV of one night (header + one row per run).
pub fn csv(night: NaiveDate, rows: &[(RunRecord, Vec<StepRecord>)]) -> String {
    let mut out = String::from(
        "night,run_id,scenario,stack,outcome,started_at,ended_at,duration_s,steps,failed_steps,failed\r\n",
    );
    for (run, steps) in rows {
        let failed = failed_steps(steps);
        let cells = [
            night.to_string(),
            run.id.to_string(),
            run.scenario.clone(),
            run.stack.clone(),
            run.status.to_string(),
            run.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            run.ended_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
            run.duration()
                .map(|d| format!("{:.1}", d.as_secs_f64()))
                .unwrap_or_default(),
            steps.len().to_string(),
            failed.len().to_string(),
            failed.join("; "),
        ];
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        let _ = write!(out, "{}\r\n", line.join(","));
    }
    out
}

fn text(night: NaiveDate, rows: &[(RunRecord, Vec<StepRecord>)]) -> String {
    let mut out = format!("Night {night}\n");
    if rows.is_empty() {
        out.push_str("  No runs recorded for this night.\n");
        return out;
    }
    for (run, steps) in rows {
        let failed = failed_steps(steps);
        let _ = writeln!(
            out,
            "  {}  {:<20}  {:<32} {:<12} {}{}",
            run.id,
            run.status,
            run.scenario,
            run.stack,
            run.started_at.format("%H:%M UTC"),
            if failed.is_empty() {
                String::new()
            } else {
                format!("  failed: {}", failed.join("; "))
            }
        );
    }
    let (by_outcome, rate) = totals(rows);
    let counts: Vec<String> = by_outcome.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let rate = rate
        .map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "n/a".to_owned());
    let _ = writeln!(
        out,
        "Totals: {} run(s): {}; pass rate {rate}",
        rows.len(),
        counts.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
