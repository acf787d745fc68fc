//! `f3-chaos plan`: loads the config and scenario library, reads the run history from the store
//! (learned durations and cadence, as the daemon plans; none when the store does not exist yet),
//! builds the planner input for one night and prints the plan as a table, a text Gantt chart or
//! JSON. Exit code 0 when a plan was printed (even an empty one), 8 (`INVALID_INPUT`) when
//! the library does not compile.

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};

use super::common::{OutputFormat, offering};
use crate::exit_codes;
use crate::plan::{self, PastRun, render};
use crate::scenario::{Scenario, check_paths, load_runnable};
use crate::store::Store;

/// Arguments of `f3-chaos plan`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!(
    "{}\n\n{}",
    "Examples:
  f3-chaos plan                                                  # tonight, config/local
  f3-chaos plan --night 2026-03-29 --config config/example-production --output gantt
  f3-chaos plan --night 2026-11-23 --output json | jq '.skipped'

A night YYYY-MM-DD is the chaos window that starts on that local date (00:00–07:00 Europe/London
by default; 6 h of real time when clocks go forward, 8 h when they go back).",
    crate::exit_codes::plain_help()
))]
pub struct PlanArgs {
    /// The night to plan (local date on which the window starts). Default: the night in progress,
    /// or the next one.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub night: Option<NaiveDate>,
    /// Configuration directory (stacks, window, resources; it names the scenario library).
    #[arg(
        long,
        env = "F3_CHAOS_CONFIG",
        value_name = "DIR",
        default_value = "config/local"
    )]
    pub config: PathBuf,
    /// Scenario directory to plan instead of the library the config names.
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = offering(&[OutputFormat::Table, OutputFormat::Gantt, OutputFormat::Json]))]
    pub output: OutputFormat,
    /// Width of the Gantt chart's time axis, in characters.
    #[arg(long, default_value_t = 84, value_name = "COLUMNS")]
    pub width: usize,
    /// Store holding the run history (learned durations, cadence). Default: the config's
    /// `databaseUrl`, else the default SQLite file. A SQLite file that does not exist yet means
    /// no history; it is not created.
    #[arg(long, env = "F3_CHAOS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Plan with the declared duration estimates only, ignoring the run history.
    #[arg(long)]
    pub no_history: bool,
}

/// Runs the command; returns the exit code.
pub fn execute(args: PlanArgs) -> anyhow::Result<u8> {
    // A scenario file with errors is left out (with a warning); the rest is planned.
    let loaded = match &args.scenarios {
        Some(dir) => {
            let checked = check_paths(std::slice::from_ref(dir), Some(&args.config));
            checked.runnable.ok_or(checked.diagnostics)
        }
        None => load_runnable(&args.config),
    };
    let library = match loaded {
        Ok(runnable) => {
            super::common::warn_left_out(&runnable);
            runnable.library
        }
        Err(diags) => {
            eprint!("{diags}");
            eprintln!("error: the config does not compile; run `f3-chaos validate` for details");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let config = &library.config;
    let night = args.night.unwrap_or_else(|| {
        plan::window::open_or_next_night(Utc::now(), config.timezone, config.window)
    });
    let scenarios: Vec<Scenario> = library.scenarios.values().cloned().collect();
    let history = if args.no_history {
        Vec::new()
    } else {
        let url = Store::chosen_url(args.database_url.as_deref(), config.database_url.as_deref());
        let window = plan::night_window(night, config.timezone, config.window);
        read_history(&url, window.start.min(Utc::now()))
    };
    let input = plan::plan_input(night, config, &scenarios, &history);
    let plan = plan::plan(&input);
    tracing::info!(
        night = %night,
        planned = plan.slots.len(),
        skipped = plan.skipped.len(),
        objective = plan.objective,
        "Night planned."
    );
    let text = match args.output {
        OutputFormat::Gantt => render::gantt(&input, &plan, config.timezone, args.width),
        OutputFormat::Json => render::json(&plan) + "\n",
        _ => render::table(&plan, config.timezone),
    };
    print!("{text}");
    if !matches!(args.output, OutputFormat::Json) {
        print!("{}", left_out_pairs(&input));
    }
    Ok(exit_codes::PASSED)
}

/// The scenario × stack pairs the planner left out because the stack's driver cannot inject a
/// fault of the scenario ([`plan::PlanScenario::incapable`]), for scenarios that still had
/// another stack (those with none are in "Not planned" as `no-capable-stack`): a table for
/// people, empty when there is none.
fn left_out_pairs(input: &plan::PlanInput) -> String {
    use std::fmt::Write as _;
    let rows: Vec<&crate::fault::capabilities::Incapable> = input
        .scenarios
        .iter()
        .filter(|s| !matches!(s.exclude, Some(plan::SkipReason::NoCapableStack { .. })))
        .flat_map(|s| s.incapable.iter())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let width = |column: fn(&crate::fault::capabilities::Incapable) -> &str, min: usize| {
        rows.iter()
            .map(|m| column(m).chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let (ws, wk) = (width(|m| &m.scenario, 8), width(|m| &m.stack, 5));
    let mut out = format!(
        "\nLeft out on a stack whose driver cannot run it:\n{:<ws$}  {:<wk$}  REASON\n",
        "SCENARIO", "STACK"
    );
    for m in rows {
        let _ = writeln!(out, "{:<ws$}  {:<wk$}  {m}", m.scenario, m.stack);
    }
    out
}

/// The run history before `before` from the store at `url` ([`plan::past_runs`]). A SQLite file
/// that does not exist is no history (nothing is created); a store that cannot be read is no
/// history too, with a warning on stderr: a plan from the declared estimates is still useful.
fn read_history(url: &str, before: chrono::DateTime<Utc>) -> Vec<PastRun> {
    if let Some(path) = Store::sqlite_file(url)
        && !path.exists()
    {
        tracing::info!(store = %path.display(), "No store yet: planning with the declared estimates.");
        return Vec::new();
    }
    let read = async {
        let store = Store::open(url).await?;
        let history = plan::past_runs(&store, before).await;
        store.close().await;
        history
    };
    let history = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(read).map_err(anyhow::Error::from));
    match history {
        Ok(history) => {
            tracing::info!(runs = history.len(), "Run history read.");
            history
        }
        Err(e) => {
            eprintln!(
                "warning: no run history ({e:#}); planning with the declared duration estimates"
            );
            Vec::new()
        }
    }
}
