//! `/findings`: the open findings per owning team, the ones resolved lately, and the monthly
//! report the SRE leads show leadership (weaknesses found and fixed per month).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc};
use minijinja::{Value, context};

use super::DashboardState;
use super::pages::local;
use crate::store::{FindingRecord, FindingStatus};

/// How far back "resolved lately" looks.
const RESOLVED_DAYS: i64 = 30;
/// Months in the report, the current one included.
const REPORT_MONTHS: usize = 12;

fn row(state: &DashboardState, f: &FindingRecord, resolve_after: u32) -> Value {
    context! {
        id => f.id.to_string(),
        scenario => f.scenario,
        stack => f.stack,
        step => f.step,
        first_failed => f.first_failed_night.to_string(),
        latest_failed => f.latest_failed_night.to_string(),
        latest_run => f.latest_failed_run.to_string(),
        passing => format!("{} of {resolve_after}", f.passing_nights),
        reopened => f.reopened,
        resolved => f.resolved_at.map(|at| local(state, at, "%Y-%m-%d %H:%M")),
        ticket => f.ticket_url,
        note => f.note,
        annotated_by => f.annotated_by,
    }
}

/// The first day of the month `at` falls in, in the dashboard's zone.
fn month_of(state: &DashboardState, at: DateTime<Utc>) -> NaiveDate {
    let local = at.with_timezone(&state.calendar.tz).date_naive();
    local.with_day(1).unwrap_or(local)
}

/// Weaknesses found (first opened) and fixed (resolved, and still so) per month, newest first,
/// over the last [`REPORT_MONTHS`] months.
fn monthly(state: &DashboardState, all: &[FindingRecord], now: DateTime<Utc>) -> Vec<Value> {
    let mut months: Vec<NaiveDate> = Vec::with_capacity(REPORT_MONTHS);
    let mut month = month_of(state, now);
    for _ in 0..REPORT_MONTHS {
        months.push(month);
        month = (month - Duration::days(1)).with_day(1).unwrap_or(month);
    }
    let mut found: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let mut fixed: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for f in all {
        *found.entry(month_of(state, f.first_opened_at)).or_default() += 1;
        if let (FindingStatus::Resolved, Some(at)) = (f.status, f.resolved_at) {
            *fixed.entry(month_of(state, at)).or_default() += 1;
        }
    }
    months
        .into_iter()
        .map(|m| {
            context! {
                month => m.format("%B %Y").to_string(),
                found => found.get(&m).copied().unwrap_or_default(),
                fixed => fixed.get(&m).copied().unwrap_or_default(),
            }
        })
        .collect()
}

/// The open findings team `team` (slug) owns, for its team page: newest failing night first.
pub(crate) async fn open_of_team(state: &DashboardState, team: &str) -> anyhow::Result<Vec<Value>> {
    let resolve_after = state.known.resolve_findings_after;
    Ok(state
        .store
        .findings(Some(FindingStatus::Open))
        .await?
        .iter()
        .filter(|f| f.owner.as_deref() == Some(team))
        .map(|f| row(state, f, resolve_after))
        .collect())
}

/// `/findings`: open findings grouped by owning team (display name; "no owner" last), the
/// findings resolved in the last [`RESOLVED_DAYS`] days, and the monthly report.
pub async fn findings(state: &DashboardState) -> anyhow::Result<Value> {
    let now = Utc::now();
    let all = state.store.findings(None).await?;
    let resolve_after = state.known.resolve_findings_after;
    let mut teams: BTreeMap<(bool, String), (Option<String>, Vec<Value>)> = BTreeMap::new();
    for f in all.iter().filter(|f| f.status == FindingStatus::Open) {
        let name = f
            .owner
            .as_deref()
            .map_or_else(|| "no owner".to_owned(), |o| state.team_name(o).to_owned());
        teams
            .entry((f.owner.is_none(), name))
            .or_insert_with(|| (f.owner.clone(), Vec::new()))
            .1
            .push(row(state, f, resolve_after));
    }
    let open: Vec<Value> = teams
        .into_iter()
        .map(|((_, name), (slug, rows))| context! { name => name, slug => slug, findings => rows })
        .collect();
    let since = now - Duration::days(RESOLVED_DAYS);
    let mut resolved: Vec<&FindingRecord> = all
        .iter()
        .filter(|f| f.status == FindingStatus::Resolved && f.resolved_at >= Some(since))
        .collect();
    resolved.sort_by_key(|f| std::cmp::Reverse(f.resolved_at));
    let resolved: Vec<Value> = resolved
        .into_iter()
        .map(|f| {
            let owner = f.owner.as_deref().map(|o| state.team_name(o).to_owned());
            context! { owner => owner, ..row(state, f, resolve_after) }
        })
        .collect();
    let open_count = all
        .iter()
        .filter(|f| f.status == FindingStatus::Open)
        .count();
    Ok(context! {
        title => "Findings",
        zone => state.calendar.tz.name(),
        open => open,
        open_count => open_count,
        resolved => resolved,
        resolved_days => RESOLVED_DAYS,
        resolve_after => resolve_after,
        monthly => monthly(state, &all, now),
    })
}
