//! The list pages the header links to: `/nights`, `/scenarios`, `/teams`, `/stacks`. The
//! nights, scenarios and stacks lists count the runs of the last [`LIST_DAYS`] days in the store
//! (grouped per night or per scenario, stack and outcome; no run rows, no steps, no evidence).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use super::DashboardState;
use super::pages::local;
use crate::model::{RunOutcome, RunStatus, Verdict};
use crate::store::{RunBrief, RunGroup};

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
    /// Counts `n` runs that are `status`.
    fn add(&mut self, status: RunStatus, n: u64) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.runs += n;
        if let Some(outcome) = status.outcome() {
            self.finished += n;
            if outcome == RunOutcome::Passed {
                self.passed += n;
            } else {
                self.not_passed += n;
            }
        }
    }

    /// Sets [`Tally::rate`] from the counts.
    fn rated(mut self) -> Tally {
        self.rate = if self.finished == 0 {
            "n/a".to_owned()
        } else {
            crate::present::ratio(self.passed as f64 / self.finished as f64)
        };
        self
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

/// `/nights`: every night of the last [`LIST_DAYS`] days with a run, newest first, with its
/// totals and pass rate (the night page's membership). Counted in the store
/// ([`crate::store::Store::night_groups`]), ad-hoc runs by the window they started in.
pub async fn nights(state: &DashboardState) -> anyhow::Result<Value> {
    let since = Utc::now() - Duration::days(LIST_DAYS);
    let mut by_night: BTreeMap<NaiveDate, (Tally, BTreeSet<String>)> = BTreeMap::new();
    for group in state.store.night_groups(since).await? {
        let (tally, stacks) = by_night.entry(group.night).or_default();
        tally.add(group.status, group.runs);
        stacks.insert(group.stack);
    }
    for run in state.store.ad_hoc_run_briefs(since).await? {
        if let Some(night) = night_of(state, &run) {
            let (tally, stacks) = by_night.entry(night).or_default();
            tally.add(run.status, 1);
            stacks.insert(run.stack);
        }
    }
    let rows: Vec<Value> = by_night
        .into_iter()
        .rev()
        .map(|(night, (tally, stacks))| {
            context! {
                night => night.to_string(),
                weekday => night.format("%a").to_string(),
                stacks => stacks.len(),
                tally => Value::from_serialize(tally.rated()),
            }
        })
        .collect();
    Ok(context! {
        title => "Nights", zone => state.calendar.tz.name(), days => LIST_DAYS, nights => rows,
    })
}

/// What the scenario and stack lists know of the runs of a scenario (or of a stack) over the
/// last [`LIST_DAYS`] days: the last [`RECENT_DAYS`] days' tally, how many stacks (or
/// scenarios) it ran on, and its last run.
#[derive(Default)]
struct Summary {
    recent: Tally,
    others: usize,
    last: Option<RunBrief>,
}

/// Which list a [`Summary`] is for.
#[derive(Clone, Copy, PartialEq)]
enum Per {
    Scenario,
    Stack,
}

/// The [`Summary`] of every scenario (or stack) with a run in the last [`LIST_DAYS`] days: the
/// runs counted per (scenario, stack, status) in the store, then the runs behind the latest
/// starts read by instant. Two queries whatever the history.
async fn summaries(
    state: &DashboardState,
    now: DateTime<Utc>,
    per: Per,
) -> anyhow::Result<BTreeMap<String, Summary>> {
    let groups = state
        .store
        .run_groups(
            now - Duration::days(LIST_DAYS),
            now - Duration::days(RECENT_DAYS),
        )
        .await?;
    let mut by_key: BTreeMap<&str, (Tally, BTreeSet<&str>, Option<&RunGroup>)> = BTreeMap::new();
    for group in &groups {
        let (key, other) = match per {
            Per::Scenario => (group.scenario.as_str(), group.stack.as_str()),
            Per::Stack => (group.stack.as_str(), group.scenario.as_str()),
        };
        let (tally, others, last) = by_key.entry(key).or_default();
        tally.add(group.status, group.recent);
        others.insert(other);
        if last.is_none_or(|l| group.last_started_at > l.last_started_at) {
            *last = Some(group);
        }
    }
    let instants: BTreeSet<DateTime<Utc>> = by_key
        .values()
        .filter_map(|(_, _, last)| last.map(|g| g.last_started_at))
        .collect();
    let instants: Vec<DateTime<Utc>> = instants.into_iter().collect();
    let last_runs = state.store.run_briefs_started_at(&instants).await?;
    Ok(by_key
        .into_iter()
        .map(|(key, (recent, others, last))| {
            let last = last.and_then(|g| {
                last_runs
                    .iter()
                    .find(|r| {
                        r.started_at == g.last_started_at
                            && r.scenario == g.scenario
                            && r.stack == g.stack
                    })
                    .cloned()
            });
            let summary = Summary {
                recent: recent.rated(),
                others: others.len(),
                last,
            };
            (key.to_owned(), summary)
        })
        .collect())
}

/// `/scenarios`: the library's scenarios and any other with history, each with its last run
/// and its pass rate over the last [`RECENT_DAYS`] days.
pub async fn scenarios(state: &DashboardState) -> anyhow::Result<Value> {
    let mut summaries = summaries(state, Utc::now(), Per::Scenario).await?;
    let names: BTreeSet<String> = state
        .known
        .scenarios
        .iter()
        .cloned()
        .chain(summaries.keys().cloned())
        .collect();
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let summary = summaries.remove(&name).unwrap_or_default();
            let last = summary.last.map(|r| {
                context! {
                    id => r.id.to_string(), status => r.status.to_string(), stack => r.stack,
                    at => local(state, r.started_at, "%Y-%m-%d %H:%M"),
                }
            });
            context! {
                in_library => state.known.scenarios.contains(&name),
                name => name,
                last => last,
                stacks => summary.others,
                tally => Value::from_serialize(summary.recent.rated()),
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

/// What the stacks list and a stack's page say of stack `name`: its `name`, `environment`,
/// `driver` and `clusters` from the config (absent for a stack only in the history), who holds
/// it now (`lease`, from `leases`) and its `reservations` that have not ended by `now`.
pub(super) fn stack_facts(
    state: &DashboardState,
    name: &str,
    leases: &[crate::store::Lease],
    now: DateTime<Utc>,
) -> Value {
    let config = state.known.stacks.get(name);
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
    }
}

/// `/stacks`: the config's stacks and any other with history: environment, driver, who holds
/// it now (its lease), its reservations still to come, its last run and its pass rate over the
/// last [`RECENT_DAYS`] days.
pub async fn stacks(state: &DashboardState) -> anyhow::Result<Value> {
    let now = Utc::now();
    let mut summaries = summaries(state, now, Per::Stack).await?;
    let leases = state.store.leases(now).await?;
    let names: BTreeSet<String> = state
        .known
        .stacks
        .keys()
        .cloned()
        .chain(summaries.keys().cloned())
        .collect();
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let summary = summaries.remove(&name).unwrap_or_default();
            let last = summary.last.map(|r| {
                context! {
                    id => r.id.to_string(), status => r.status.to_string(), scenario => r.scenario,
                    at => local(state, r.started_at, "%Y-%m-%d %H:%M"),
                }
            });
            context! {
                last => last,
                tally => Value::from_serialize(summary.recent.rated()),
                ..stack_facts(state, &name, &leases, now)
            }
        })
        .collect();
    Ok(context! {
        title => "Stacks", zone => state.calendar.tz.name(), days => RECENT_DAYS, stacks => rows,
    })
}
