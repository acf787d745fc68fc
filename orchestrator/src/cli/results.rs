//! `f3-chaos results [RUN_ID]`: recent runs, or one run with its steps, evidence and the
//! notifications recorded for it.

use super::common::OutputFormat;
use crate::exit_codes;
use crate::present;
use chrono::Utc;

use crate::store::{Liveness, RunFilter};

/// Arguments of `f3-chaos results`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct ResultsArgs {
    /// A run id (or a unique prefix of one). Without it: the most recent runs.
    pub run_id: Option<String>,
    /// Only runs of this scenario (list mode).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Only runs on this stack (list mode).
    #[arg(long)]
    pub stack: Option<String>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Every run of one chaos night (the date the 00:00–07:00 window starts), oldest first.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "run_id")]
    pub night: Option<chrono::NaiveDate>,
    /// Output format (`csv` with `--night`).
    #[arg(long, default_value = "text", value_parser = super::common::offering(&[OutputFormat::Text, OutputFormat::Json, OutputFormat::Csv]))]
    pub output: OutputFormat,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
}

/// When a `--scenario` / `--stack` filter matched no run: the filter names the library or the
/// config does not know, each with its `did you mean` (a library that does not load gives none).
fn unknown_filter_hints(args: &ResultsArgs, config: Option<&crate::config::Config>) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(scenario) = &args.scenario
        && let Ok(library) = crate::scenario::load_library(&args.cfg.config)
    {
        let names: Vec<String> = library.scenarios.keys().cloned().collect();
        hints.extend(crate::input::unknown_name_hint(
            "scenario of the library",
            scenario,
            &names,
        ));
    }
    if let (Some(stack), Some(config)) = (&args.stack, config) {
        let names: Vec<String> = config.stacks.keys().cloned().collect();
        hints.extend(crate::input::unknown_name_hint(
            "stack of the config",
            stack,
            &names,
        ));
    }
    hints
}

/// Runs the command; returns the exit code.
pub fn execute(args: ResultsArgs) -> anyhow::Result<u8> {
    let runtime = super::common::runtime()?;
    runtime.block_on(results(args))
}

async fn results(args: ResultsArgs) -> anyhow::Result<u8> {
    // The config only for its database URL and night calendar (zone and window): reading
    // results must not depend on the scenario library being valid.
    let config = crate::config::load(&args.cfg.config).ok();
    let store = args.cfg.open_store(config.as_ref()).await?;
    if let Some(night) = args.night {
        let calendar = config
            .as_ref()
            .map(crate::plan::NightCalendar::of)
            .unwrap_or_default();
        return super::results_night::print_night(&store, night, calendar, args.output).await;
    }
    if args.output == OutputFormat::Csv {
        eprintln!("error: --output csv needs --night YYYY-MM-DD");
        return Ok(exit_codes::INVALID_INPUT);
    }
    let json = args.output == OutputFormat::Json;
    let Some(id) = &args.run_id else {
        let filter = RunFilter {
            scenario: args.scenario.clone(),
            stack: args.stack.clone(),
            limit: Some(args.limit),
            ..RunFilter::default()
        };
        let runs = store.runs(&filter).await?;
        if json {
            let doc = crate::document::RunListDocument::of(&runs);
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(exit_codes::PASSED);
        }
        if runs.is_empty() && args.scenario.is_none() && args.stack.is_none() {
            println!(
                "No runs yet. Start one with: f3-chaos run --scenario NAME --wait-for-assertions"
            );
        } else if runs.is_empty() {
            println!("No runs match.");
            for hint in unknown_filter_hints(&args, config.as_ref()) {
                eprintln!("hint: {hint}");
            }
        }
        let (now, host) = (Utc::now(), crate::store::local_hostname());
        for run in runs {
            let status = match run.liveness(now, &host) {
                Liveness::Dead { .. } => "interrupted (owner gone)".to_owned(),
                _ => run.status.to_string(),
            };
            println!(
                "{}  {:<20}  {:<32} {:<12} {}",
                run.id,
                status,
                run.scenario,
                run.stack,
                run.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        return Ok(exit_codes::PASSED);
    };
    let found = match store.find_run(id).await {
        Err(e @ crate::store::StoreError::Invalid { .. }) => {
            eprintln!("error: {e}");
            return Ok(exit_codes::INVALID_INPUT);
        }
        other => other?,
    };
    let Some(run) = found else {
        eprintln!("error: no run matches `{id}`");
        return Ok(exit_codes::INVALID_INPUT);
    };
    let steps = store.steps(run.id).await?;
    let outbox = store.outbox_for_run(run.id).await?;
    let ledger = store.ledger_for_run(run.id).await?;
    if json {
        let doc = crate::document::RunDocument::from_records(&run, &steps, &outbox, &ledger);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(exit_codes::PASSED);
    }
    println!("Run {} — {} on {}", run.id, run.scenario, run.stack);
    match run.liveness(Utc::now(), &crate::store::local_hostname()) {
        // The record still says `running`: its owner died before writing an outcome. The next
        // start-up sweep reverts its faults and stores `interrupted`; say so now.
        Liveness::Dead { why, .. } => println!("  outcome:    interrupted ({why})"),
        _ => println!("  outcome:    {}", run.status),
    }
    println!(
        "  started:    {} by {} ({})",
        run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        run.started_by,
        run.trigger
    );
    if let Some(ended) = run.ended_at {
        println!("  ended:      {}", ended.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(summary) = &run.summary {
        if let Some(rate) = summary.get("pass_rate").and_then(|v| v.as_f64()) {
            println!("  pass rate:  {}", present::ratio(rate));
        }
        if let Some(reason) = summary.get("reason").and_then(|v| v.as_str()) {
            println!("  reason:     {reason}");
        }
        if let Some(ms) = summary.get("abort_latency_ms").and_then(|v| v.as_i64()) {
            println!("  abort latency: {ms} ms (breach seen → faults reverted)");
        }
    }
    println!("Steps:");
    for step in &steps {
        let verdict = step.verdict.map_or("pending", |v| v.as_str());
        let owner = step
            .owner
            .as_deref()
            .map(|o| format!(" — owner: {o}"))
            .unwrap_or_default();
        println!(
            "  [{}] {:<9} {}{owner}",
            verdict.to_uppercase(),
            step.phase,
            step.name
        );
        if let Some(comparison) = step.comparison() {
            println!("      {comparison}");
        }
        if let Some(evidence) = &step.evidence {
            if let Some(query) = evidence.get("query").and_then(|q| q.as_str()) {
                println!("      query: {query}");
            }
            let points: usize = evidence
                .get("series")
                .and_then(|s| s.as_array())
                .map(|series| {
                    series
                        .iter()
                        .filter_map(|s| s.get("points")?.as_array().map(Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            if points > 0 {
                println!(
                    "      evidence: {points} points (f3-chaos results {} --output json)",
                    run.id
                );
            }
        }
        if let Some(message) = &step.message {
            println!("      {message}");
        }
    }
    if !ledger.is_empty() {
        println!("Faults:");
        for entry in &ledger {
            println!(
                "  {} — {} ({:?})",
                entry.step_name, entry.driver, entry.state
            );
        }
    }
    if !outbox.is_empty() {
        println!("Notifications:");
        for n in &outbox {
            let route = n
                .payload
                .get("route")
                .and_then(|r| r.get("kind"))
                .and_then(|k| k.as_str());
            let route = route.map(|r| format!(" via {r}")).unwrap_or_default();
            let error = n
                .last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            println!(
                "  {} — {}{route} ({}, {} attempt(s){error})",
                n.team, n.kind, n.status, n.attempts
            );
        }
    }
    Ok(exit_codes::PASSED)
}
