//! The data behind each page, read from the store and shaped into template contexts.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use super::DashboardState;
use super::svg::evidence_graph;
use crate::store::{RunFilter, RunRecord};

/// How many runs of one scenario are read for its page (90 nights × a few stacks).
const SCENARIO_RUNS: u32 = 400;
/// How many of those are read with their steps (per-step pass rate and flakiness).
const SCENARIO_STEP_RUNS: usize = 30;
/// How far back the team page looks.
const TEAM_DAYS: i64 = 14;

#[derive(Serialize)]
struct RunRow {
    id: String,
    short: String,
    scenario: String,
    stack: String,
    status: String,
    night: Option<String>,
    start: String,
    end: String,
    duration: String,
    left: f64,
    width: f64,
}

fn local(state: &DashboardState, at: DateTime<Utc>, format: &str) -> String {
    at.with_timezone(&state.timezone).format(format).to_string()
}

fn fmt_duration(d: Option<std::time::Duration>) -> String {
    match d {
        None => "—".to_owned(),
        Some(d) => {
            let s = d.as_secs();
            if s >= 3600 {
                format!("{}h{:02}m", s / 3600, s % 3600 / 60)
            } else {
                format!("{}m{:02}s", s / 60, s % 60)
            }
        }
    }
}

fn row(state: &DashboardState, run: &RunRecord, span: Option<(i64, i64)>) -> RunRow {
    let (left, width) = match span {
        Some((a, b)) if b > a => {
            let s = run.started_at.timestamp_millis();
            let e = run
                .ended_at
                .unwrap_or(run.heartbeat_at)
                .timestamp_millis()
                .max(s);
            let total = (b - a) as f64;
            (
                ((s - a) as f64 / total * 100.0),
                ((e - s) as f64 / total * 100.0).max(0.5),
            )
        }
        _ => (0.0, 0.0),
    };
    RunRow {
        id: run.id.to_string(),
        short: run.id.to_string().chars().take(13).collect(),
        scenario: run.scenario.clone(),
        stack: run.stack.clone(),
        status: run.status.clone(),
        night: run.night.map(|n| n.to_string()),
        start: local(state, run.started_at, "%Y-%m-%d %H:%M"),
        end: run
            .ended_at
            .map(|e| local(state, e, "%H:%M"))
            .unwrap_or_default(),
        duration: fmt_duration(run.duration()),
        left,
        width,
    }
}

/// Night page: a Gantt per stack of the night's runs, skipped scenarios, totals.
pub async fn night(state: &DashboardState, night: NaiveDate) -> anyhow::Result<Value> {
    let mut runs = state
        .store
        .runs(&RunFilter {
            night: Some(night),
            ..RunFilter::default()
        })
        .await?;
    runs.reverse();
    let start = runs.iter().map(|r| r.started_at.timestamp_millis()).min();
    let end = runs
        .iter()
        .map(|r| r.ended_at.unwrap_or(r.heartbeat_at).timestamp_millis())
        .max();
    let span = start.zip(end);
    let mut stacks: BTreeMap<String, Vec<RunRow>> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        stacks
            .entry(run.stack.clone())
            .or_default()
            .push(row(state, run, span));
        *by_outcome.entry(run.status.clone()).or_default() += 1;
    }
    let finished = runs.iter().filter(|r| !r.is_running()).count();
    let passed = by_outcome.get("passed").copied().unwrap_or(0);
    let rate = if finished > 0 {
        format!("{:.1} %", passed as f64 * 100.0 / finished as f64)
    } else {
        "n/a".to_owned()
    };
    let fmt_edge = |ms: Option<i64>| {
        ms.and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| local(state, t, "%H:%M"))
            .unwrap_or_default()
    };
    Ok(context! {
        title => format!("Night {night}"),
        night => night.to_string(),
        prev => night.pred_opt().map(|d| d.to_string()),
        next => night.succ_opt().map(|d| d.to_string()),
        zone => state.timezone.name(),
        stacks => stacks,
        by_outcome => by_outcome,
        total => runs.len(),
        rate => rate,
        axis_start => fmt_edge(start),
        axis_end => fmt_edge(end),
        // Planned slots and skipped scenarios come from the daemon's plan once it is stored.
        planned => Vec::<String>::new(),
        skipped => Vec::<String>::new(),
    })
}

#[derive(Serialize)]
struct StepRow {
    phase: String,
    name: String,
    owner: Option<String>,
    verdict: String,
    start: String,
    duration: String,
    observed: Option<f64>,
    threshold: Option<f64>,
    message: Option<String>,
    graph: Option<Value>,
}

/// Run page: steps with owners and verdicts, faults, evidence graphs, notifications.
pub async fn run(state: &DashboardState, id: &str) -> anyhow::Result<Option<Value>> {
    let Some(run) = state.store.find_run(id).await? else {
        return Ok(None);
    };
    let steps = state.store.steps(run.id).await?;
    let ledger = state.store.ledger_for_run(run.id).await?;
    let outbox = state.store.outbox_for_run(run.id).await?;
    let fault = match (
        ledger.iter().map(|l| l.created_at).min(),
        ledger.iter().map(|l| l.updated_at).max(),
    ) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            let whens: Vec<_> = steps.iter().filter(|s| s.phase == "when").collect();
            whens
                .iter()
                .map(|s| s.started_at)
                .min()
                .zip(whens.iter().filter_map(|s| s.ended_at).max())
        }
    };
    let rows: Vec<StepRow> = steps
        .iter()
        .map(|s| StepRow {
            phase: s.phase.clone(),
            name: s.name.clone(),
            owner: s.owner.clone(),
            verdict: s.verdict.clone().unwrap_or_else(|| "pending".to_owned()),
            start: local(state, s.started_at, "%H:%M:%S"),
            duration: fmt_duration(s.ended_at.and_then(|e| (e - s.started_at).to_std().ok())),
            observed: s.observed,
            threshold: s.threshold,
            message: s.message.clone(),
            graph: s
                .evidence
                .as_ref()
                .and_then(|e| evidence_graph(e, s.threshold, fault))
                .map(Value::from_safe_string),
        })
        .collect();
    let faults: Vec<Value> = ledger
        .iter()
        .map(|l| {
            context! {
                step => l.step_name, driver => l.driver, state => l.state.as_str(),
                injected => local(state, l.created_at, "%H:%M:%S"),
                reverted => local(state, l.updated_at, "%H:%M:%S"),
            }
        })
        .collect();
    let notifications: Vec<Value> = outbox
        .iter()
        .map(|n| context! { team => n.team, kind => n.kind, status => n.status, at => local(state, n.created_at, "%H:%M:%S") })
        .collect();
    let summary = run.summary.clone().unwrap_or_default();
    Ok(Some(context! {
        title => format!("{} on {}", run.scenario, run.stack),
        run => row(state, &run, None),
        zone => state.timezone.name(),
        steps => rows,
        faults => faults,
        notifications => notifications,
        pass_rate => summary.get("pass_rate").and_then(|v| v.as_f64()).map(|r| format!("{:.0} %", r * 100.0)),
        reason => summary.get("reason").and_then(|v| v.as_str()).map(str::to_owned),
        abort_latency_ms => summary.get("abort_latency_ms").and_then(|v| v.as_i64()),
    }))
}

#[derive(Serialize, Default)]
struct StepStats {
    name: String,
    owner: Option<String>,
    runs: usize,
    passed: usize,
    rate: String,
    flips: usize,
    last: Option<bool>,
}

/// Scenario page: pass rate over 7/30/90 nights, per-Then-step pass rate and flips, durations.
pub async fn scenario(state: &DashboardState, name: &str) -> anyhow::Result<Value> {
    let since = Utc::now() - Duration::days(90);
    let filter = RunFilter {
        scenario: Some(name.to_owned()),
        since: Some(since),
        limit: Some(SCENARIO_RUNS),
        ..RunFilter::default()
    };
    let runs = state.store.runs(&filter).await?;
    let now = Utc::now();
    let rate = |days: i64| {
        let from = now - Duration::days(days);
        let window: Vec<_> = runs
            .iter()
            .filter(|r| r.started_at >= from && !r.is_running())
            .collect();
        let passed = window.iter().filter(|r| r.status == "passed").count();
        if window.is_empty() {
            "n/a".to_owned()
        } else {
            format!(
                "{:.0} % of {}",
                passed as f64 * 100.0 / window.len() as f64,
                window.len()
            )
        }
    };
    let rates = vec![
        ("7 nights", rate(7)),
        ("30 nights", rate(30)),
        ("90 nights", rate(90)),
    ];
    // Oldest first so that flips are counted in time order.
    let mut stats: BTreeMap<String, StepStats> = BTreeMap::new();
    for run in runs.iter().take(SCENARIO_STEP_RUNS).rev() {
        for step in state.store.steps(run.id).await? {
            if step.phase != "then" {
                continue;
            }
            let ok = match step.verdict.as_deref() {
                Some("passed") => true,
                Some("failed") => false,
                _ => continue,
            };
            let s = stats.entry(step.name.clone()).or_default();
            s.name.clone_from(&step.name);
            s.owner.clone_from(&step.owner);
            s.runs += 1;
            s.passed += usize::from(ok);
            if s.last.is_some_and(|last| last != ok) {
                s.flips += 1;
            }
            s.last = Some(ok);
        }
    }
    for s in stats.values_mut() {
        s.rate = format!("{:.0} %", s.passed as f64 * 100.0 / s.runs.max(1) as f64);
    }
    let durations: Vec<f64> = runs
        .iter()
        .rev()
        .filter_map(|r| r.duration())
        .map(|d| d.as_secs_f64() / 60.0)
        .collect();
    let trend = sparkline(&durations);
    let last: Vec<RunRow> = runs.iter().take(20).map(|r| row(state, r, None)).collect();
    Ok(context! {
        title => format!("Scenario {name}"),
        name => name,
        zone => state.timezone.name(),
        rates => rates,
        steps => stats.into_values().collect::<Vec<_>>(),
        trend => trend.map(Value::from_safe_string),
        last => last,
    })
}

/// A small SVG polyline of durations (minutes), oldest left.
fn sparkline(values: &[f64]) -> Option<String> {
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let n = (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                4.0 + i as f64 / n * 592.0,
                56.0 - v / max * 52.0
            )
        })
        .collect();
    Some(format!(
        "<svg class=\"graph\" viewBox=\"0 0 600 60\" width=\"600\" height=\"60\" role=\"img\" aria-label=\"duration trend\">\
         <polyline class=\"series s0\" points=\"{}\"/><text class=\"label\" x=\"4\" y=\"10\">max {max:.1} min</text></svg>",
        points.join(" ")
    ))
}

/// Team page: steps the team owns that failed in the last [`TEAM_DAYS`] days.
pub async fn team(state: &DashboardState, team: &str) -> anyhow::Result<Value> {
    let since = Utc::now() - Duration::days(TEAM_DAYS);
    let runs = state
        .store
        .runs(&RunFilter {
            since: Some(since),
            limit: Some(500),
            ..RunFilter::default()
        })
        .await?;
    let mut failed = Vec::new();
    for run in &runs {
        if run.status == "passed" {
            continue; // a passed run has no failed step worth listing
        }
        for step in state.store.steps(run.id).await? {
            if step.owner.as_deref() == Some(team)
                && matches!(
                    step.verdict.as_deref(),
                    Some("failed" | "error" | "inconclusive")
                )
            {
                failed.push(context! {
                    run => row(state, run, None),
                    step => step.name,
                    verdict => step.verdict,
                    observed => step.observed,
                    threshold => step.threshold,
                    message => step.message,
                });
            }
        }
    }
    Ok(context! {
        title => format!("Team {team}"),
        team => team,
        days => TEAM_DAYS,
        zone => state.timezone.name(),
        failed => failed,
    })
}
