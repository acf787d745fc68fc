//! `f3-chaos plan`: loads the config and scenario library, builds the planner input for one night
//! (run history: none until the store provides it) and prints the plan as a table, a text Gantt
//! chart or JSON. Exit code 0 when a plan was printed (even an empty one), 8 (`INVALID_INPUT`) when
//! the library does not compile.

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};

use crate::exit_codes;
use crate::plan::{self, PastRun, render};
use crate::scenario::{Scenario, check_paths, load_library};

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanOutput {
    /// One line per slot in start order, then what is not planned and why (local times).
    Table,
    /// A text Gantt chart: one row per stack across the window (local times), then the legend.
    Gantt,
    /// `{night, window: {start, end}, slots: [...], skipped: [...], objective}`, RFC 3339 UTC.
    Json,
}

/// Arguments of `f3-chaos plan`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  f3-chaos plan                                                  # tonight, config/local
  f3-chaos plan --night 2026-03-29 --config config/example-production --output gantt
  f3-chaos plan --night 2026-11-23 --output json | jq '.skipped'

A night YYYY-MM-DD is the chaos window that starts on that local date (00:00–07:00 Europe/London
by default; 6 h of real time when clocks go forward, 8 h when they go back).")]
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
    #[arg(long, value_enum, default_value_t = PlanOutput::Table)]
    pub output: PlanOutput,
    /// Width of the Gantt chart's time axis, in characters.
    #[arg(long, default_value_t = 84, value_name = "COLUMNS")]
    pub width: usize,
}

/// Runs the command; returns the exit code.
pub fn execute(args: PlanArgs) -> anyhow::Result<u8> {
    let loaded = match &args.scenarios {
        Some(dir) => {
            let checked = check_paths(std::slice::from_ref(dir), Some(&args.config));
            checked.library.ok_or(checked.diagnostics)
        }
        None => load_library(&args.config),
    };
    let library = match loaded {
        Ok(l) => l,
        Err(diags) => {
            eprint!("{diags}");
            eprintln!("error: the library does not compile; run `f3-chaos validate` for details");
            return Ok(exit_codes::INVALID_INPUT);
        }
    };
    let config = &library.config;
    let night = args.night.unwrap_or_else(|| {
        plan::window::open_or_next_night(Utc::now(), config.timezone, config.window)
    });
    let scenarios: Vec<Scenario> = library.scenarios.values().cloned().collect();
    // The store will provide past runs (learned durations, staleness); until then: none.
    let history: Vec<PastRun> = Vec::new();
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
        PlanOutput::Table => render::table(&plan, config.timezone),
        PlanOutput::Gantt => render::gantt(&input, &plan, config.timezone, args.width),
        PlanOutput::Json => render::json(&plan) + "\n",
    };
    print!("{text}");
    Ok(exit_codes::PASSED)
}
