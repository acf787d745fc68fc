//! The list pages the header links to: `/nights`, `/scenarios`, `/teams`, `/stacks`. Each reads
//! the runs of the last [`LIST_DAYS`] days once, as [`RunBrief`]s (no steps, no evidence).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use super::DashboardState;
use super::pages::local;
use crate::model::{RunOutcome, Verdict};
use crate::store::RunBrief;

/// How far back the list pages look (the scenario page's longest trend).
const LIST_DAYS: i64 = 90;
/// The "lately" of the scenario, team and stack lists: the last week.
const RECENT_DAYS: i64 = 7;

/// Finished and passed runs of a set, and its pass rate as people read it ("80 %").
#[derive(Serialize, Default)]
struct Tally {
    runs: usize,
    finished: usize,
    passed: usize,
    /// Finished runs that did not pass.
    not_passed: usize,
    /// `80 %` ([`crate::present::ratio`]), `n/a` with no finished run.
    rate: String,
}

impl Tally {
    fn of<'a>(runs: impl Iterator<Item = &'a RunBrief>) -> Tally {
        let mut t = Tally::default();
        for run in runs {
            t.runs += 1;
            if let Some(outcome) = run.status.outcome() {
                t.finished += 1;
                if outcome == RunOutcome::Passed {
                    t.passed += 1;
                } else {
                    t.not_passed += 1;
                }
            }
        }
        t.rate = if t.finished == 0 {
            "n/a".to_owned()
        } else {
            crate::present::ratio(t.passed as f64 / t.finished as f64)
        };
        t
    }
}

/// The night a run belongs to, as the night page counts it ([`crate::store::Store::runs_of_night`]):
/// its planned night, else the night whose window it started in; `None` outside every window.
fn night_of(state: &DashboardState, run: &RunBrief) -> Option<NaiveDate> {
    run.night.or_else(|| {
        let night = state.calendar.night_of(run.started_at);
        let (start, end) = state.calendar.window_of(night);
        (run.started_at >= start && run.started_at < end).then_some(night)
    })
}

async fn recent_runs(state: &DashboardState) -> anyhow::Result<Vec<RunBrief>> {
    Ok(state
        .store
        .run_briefs(Utc::now() - Duration::days(LIST_DAYS))
        .await?)
}

/// `/nights`: every night of the last [`LIST_DAYS`] days with a run, newest first, with its
/// totals and pass rate (the night page's membership).
pub async fn nights(state: &DashboardState) -> anyhow::Result<Value> {
    let runs = recent_runs(state).await?;
    let mut by_night: BTreeMap<NaiveDate, Vec<&RunBrief>> = BTreeMap::new();
    for run in &runs {
        if let Some(night) = night_of(state, run) {
            by_night.entry(night).or_default().push(run);
        }
    }
    let rows: Vec<Value> = by_night
        .iter()
        .rev()
        .map(|(night, runs)| {
            let stacks: BTreeSet<&str> = runs.iter().map(|r| r.stack.as_str()).collect();
            context! {
                night => night.to_string(),
                weekday => night.format("%a").to_string(),
                stacks => stacks.len(),
                tally => Value::from_serialize(Tally::of(runs.iter().copied())),
            }
        })
        .collect();
    Ok(context! {
        title => "Nights", zone => state.calendar.tz.name(), days => LIST_DAYS, nights => rows,
    })
}

/// `/scenarios`: the library's scenarios and any other with history, each with its last run
/// and its pass rate over the last [`RECENT_DAYS`] days.
pub async fn scenarios(state: &DashboardState) -> anyhow::Result<Value> {
    let runs = recent_runs(state).await?;
    let names: BTreeSet<&str> = state
        .known
        .scenarios
        .iter()
        .map(String::as_str)
        .chain(runs.iter().map(|r| r.scenario.as_str()))
        .collect();
    let since = Utc::now() - Duration::days(RECENT_DAYS);
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let of: Vec<&RunBrief> = runs.iter().filter(|r| r.scenario == name).collect();
            // Newest first: the first is the last run.
            let last = of.first().map(|r| {
                context! {
                    id => r.id.to_string(), status => r.status.to_string(), stack => r.stack,
                    at => local(state, r.started_at, "%Y-%m-%d %H:%M"),
                }
            });
            let stacks: BTreeSet<&str> = of.iter().map(|r| r.stack.as_str()).collect();
            context! {
                name => name,
                in_library => state.known.scenarios.contains(name),
                last => last,
                stacks => stacks.len(),
                tally => Value::from_serialize(Tally::of(of.iter().copied().filter(|r| r.started_at >= since))),
            }
        })
        .collect();
    Ok(context! {
        title => "Scenarios", zone => state.calendar.tz.name(), days => RECENT_DAYS, scenarios => rows,
    })
}

/// `/teams`: the config's teams by display name, each with the Then steps it owns that failed
/// in the last [`RECENT_DAYS`] days.
pub async fn teams(state: &DashboardState) -> anyhow::Result<Value> {
    let since = Utc::now() - Duration::days(RECENT_DAYS);
    let mut rows = Vec::new();
    for (slug, name) in &state.known.team_names {
        let failed = state
            .store
            .team_steps(slug, &[Verdict::Failed], since, 200)
            .await?;
        let runs: BTreeSet<uuid::Uuid> = failed.iter().map(|(id, _)| *id).collect();
        let latest = failed
            .first()
            .map(|(_, s)| local(state, s.started_at, "%Y-%m-%d %H:%M"));
        rows.push(context! {
            slug => slug, name => name, failed => failed.len(), runs => runs.len(), latest => latest,
        });
    }
    Ok(context! {
        title => "Teams", zone => state.calendar.tz.name(), days => RECENT_DAYS, teams => rows,
    })
}

/// `/stacks`: the config's stacks and any other with history: environment, driver, who holds
/// it now (its lease), its reservations still to come, its last run and its pass rate over the
/// last [`RECENT_DAYS`] days.
pub async fn stacks(state: &DashboardState) -> anyhow::Result<Value> {
    let now = Utc::now();
    let runs = recent_runs(state).await?;
    let leases = state.store.leases(now).await?;
    let names: BTreeSet<&str> = state
        .known
        .stacks
        .keys()
        .map(String::as_str)
        .chain(runs.iter().map(|r| r.stack.as_str()))
        .collect();
    let since = now - Duration::days(RECENT_DAYS);
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let config = state.known.stacks.get(name);
            let of: Vec<&RunBrief> = runs.iter().filter(|r| r.stack == name).collect();
            let lease = leases.iter().find(|l| l.stack == name).map(|l| {
                context! {
                    run_id => l.run_id.to_string(), scenario => l.scenario, holder => l.holder,
                    since => local(state, l.acquired_at, "%H:%M"),
                    until => local(state, l.expires_at, "%H:%M"),
                }
            });
            let reservations: Vec<Value> = config
                .map(|s| s.reservations.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|r| r.end > now)
                .map(|r| {
                    context! {
                        holder => r.holder, reason => r.reason,
                        start => local(state, r.start, "%Y-%m-%d %H:%M"),
                        end => local(state, r.end, "%Y-%m-%d %H:%M"),
                        now => r.start <= now,
                    }
                })
                .collect();
            let last = of.first().map(|r| {
                context! {
                    id => r.id.to_string(), status => r.status.to_string(), scenario => r.scenario,
                    at => local(state, r.started_at, "%Y-%m-%d %H:%M"),
                }
            });
            context! {
                name => name,
                environment => config.map(|s| s.environment),
                driver => config.map(|s| match s.driver {
                    crate::config::DriverConfig::Local { .. } => "local sandbox",
                    crate::config::DriverConfig::ChaosMesh { .. } => "Chaos Mesh",
                }),
                clusters => config.map(|s| s.clusters.iter().map(|c| format!("{} ({})", c.name, c.cloud.as_str())).collect::<Vec<_>>()),
                lease => lease,
                reservations => reservations,
                last => last,
                tally => Value::from_serialize(Tally::of(of.iter().copied().filter(|r| r.started_at >= since))),
            }
        })
        .collect();
    Ok(context! {
        title => "Stacks", zone => state.calendar.tz.name(), days => RECENT_DAYS, stacks => rows,
    })
}
