//! The data behind each page, read from the store and shaped into template contexts.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use super::DashboardState;
use super::gantt::{self, PlanView};
use super::svg::{NightTally, evidence_graph};
use crate::model::{Phase, RunOutcome, RunStatus, Verdict};
use crate::store::{RunFilter, RunRecord};

/// How many runs of one scenario are read for its page (90 nights × a few stacks).
const SCENARIO_RUNS: u32 = 400;
/// How many of those are read with their steps (per-step pass rate and flakiness).
const SCENARIO_STEP_RUNS: usize = 30;
/// How far back the team page looks.
const TEAM_DAYS: i64 = 14;
/// At most this many steps are listed on the team page.
const TEAM_STEPS: u32 = 200;
/// How many nights the pass-rate charts of the scenario and stack pages span.
const CHART_NIGHTS: i64 = 90;
/// How many of a stack's latest runs its page lists.
const STACK_RUNS_SHOWN: usize = 20;
/// How many finished runs the scenario page's duration trend shows (oldest left).
const TREND_RUNS: usize = 60;

#[derive(Serialize)]
struct RunRow {
    /// The full run id: 12-character prefixes of UUIDv7 ids collide for runs of the same millisecond.
    id: String,
    scenario: String,
    stack: String,
    status: String,
    night: Option<String>,
    /// How it was started (`cli`, `daemon`, `api`, `trigger`).
    trigger: String,
    start: String,
    end: String,
    duration: String,
    /// `HH:MM–HH:MM` of the run's slot in the night's final plan, if planned.
    planned: Option<String>,
    left: f64,
    width: f64,
}

pub(crate) fn local(state: &DashboardState, at: DateTime<Utc>, format: &str) -> String {
    at.with_timezone(&state.calendar.tz)
        .format(format)
        .to_string()
}

/// `410 ms`, `31 s`, `5m 12s` ([`crate::present::duration`]); `—` while unknown.
fn fmt_duration(d: Option<std::time::Duration>) -> String {
    d.map_or_else(
        || "—".to_owned(),
        |d| crate::present::duration(d.as_secs_f64()),
    )
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
        scenario: run.scenario.clone(),
        stack: run.stack.clone(),
        status: run.status.to_string(),
        night: run.night.map(|n| n.to_string()),
        trigger: run.trigger.clone(),
        start: local(state, run.started_at, "%Y-%m-%d %H:%M"),
        end: run
            .ended_at
            .map(|e| local(state, e, "%H:%M"))
            .unwrap_or_default(),
        duration: fmt_duration(run.duration()),
        planned: None,
        left,
        width,
    }
}

/// Night page: a Gantt per stack of planned (first and final stored plan) vs actual slots
/// coloured by outcome, the runs per stack, skipped scenarios with reasons (final plan), the
/// plan's revisions, totals.
pub async fn night(state: &DashboardState, night: NaiveDate) -> anyhow::Result<Value> {
    let runs = state
        .store
        .runs_of_night(night, state.calendar.window_of(night))
        .await?;
    let plans = state.store.plans(night).await?;
    let first = plans.first().map(PlanView::of);
    let last = plans.last().map(PlanView::of);
    let chart = gantt::build(state, &runs, first.as_ref(), last.as_ref());
    let mut stacks: BTreeMap<String, Vec<RunRow>> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        let mut r = row(state, run, None);
        if let Some(slot) = last
            .as_ref()
            .and_then(|p| p.slot(&run.scenario, &run.stack))
        {
            r.planned = Some(format!(
                "{}–{}",
                local(state, slot.start, "%H:%M"),
                local(state, slot.end, "%H:%M")
            ));
        }
        stacks.entry(run.stack.clone()).or_default().push(r);
        *by_outcome.entry(run.status.to_string()).or_default() += 1;
    }
    let finished = runs.iter().filter(|r| !r.is_running()).count();
    let passed = runs
        .iter()
        .filter(|r| r.outcome() == Some(crate::model::RunOutcome::Passed))
        .count();
    let rate = if finished > 0 {
        crate::present::ratio(passed as f64 / finished as f64)
    } else {
        "n/a".to_owned()
    };
    // Planned slots of the final plan that have no run (yet): shown in the table and counted.
    let mut not_run = Vec::new();
    if let Some(plan) = &last {
        for slot in &plan.slots {
            if !runs
                .iter()
                .any(|r| r.scenario == slot.scenario && r.stack == slot.stack)
            {
                not_run.push(context! {
                    scenario => slot.scenario, stack => slot.stack,
                    planned => format!("{}–{}", local(state, slot.start, "%H:%M"), local(state, slot.end, "%H:%M")),
                });
            }
        }
    }
    let revisions: Vec<Value> = plans
        .iter()
        .map(|p| {
            let view = PlanView::of(p);
            context! {
                at => local(state, p.created_at, "%H:%M:%S"), reason => p.reason,
                slots => view.slots.len(), skipped => view.skipped.len(),
            }
        })
        .collect();
    let failures = super::review::failures(state, &runs).await?;
    let matrix = matrix(state, &runs, last.as_ref());
    let window = last.as_ref().and_then(|p| p.window.as_ref()).map(|w| {
        format!(
            "{}–{}",
            local(state, w.start, "%H:%M"),
            local(state, w.end, "%H:%M")
        )
    });
    Ok(context! {
        title => format!("Night {night}"),
        night => night.to_string(),
        prev => night.pred_opt().map(|d| d.to_string()),
        next => night.succ_opt().map(|d| d.to_string()),
        zone => state.calendar.tz.name(),
        gantt => Value::from_serialize(&chart),
        failures => failures,
        matrix => matrix,
        stacks => stacks,
        by_outcome => by_outcome,
        total => runs.len(),
        rate => rate,
        has_plan => last.is_some(),
        window => window,
        planned => last.as_ref().map_or(0, |p| p.slots.len()),
        not_run => not_run,
        skipped => last.map(|p| p.skipped).unwrap_or_default(),
        revisions => revisions,
    })
}

/// One cell of the night's scenario × stack matrix: the pair's latest run, or its planned slot
/// when it has none.
#[derive(Serialize)]
struct MatrixCell {
    /// The latest run's id and status.
    run: Option<(String, String)>,
    /// `HH:MM–HH:MM` of the final plan's slot, when the pair was planned but has no run.
    planned: Option<String>,
}

/// The night's scenario × stack matrix: `stacks` (columns) and, per scenario (rows, by name),
/// one cell per stack (`None` where the scenario neither ran nor was planned).
fn matrix(state: &DashboardState, runs: &[RunRecord], plan: Option<&PlanView>) -> Value {
    let mut stacks: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.stack.as_str()).collect();
    let mut cells: BTreeMap<&str, BTreeMap<&str, MatrixCell>> = BTreeMap::new();
    for slot in plan.map(|p| p.slots.as_slice()).unwrap_or_default() {
        stacks.insert(&slot.stack);
        cells.entry(&slot.scenario).or_default().insert(
            &slot.stack,
            MatrixCell {
                run: None,
                planned: Some(format!(
                    "{}–{}",
                    local(state, slot.start, "%H:%M"),
                    local(state, slot.end, "%H:%M")
                )),
            },
        );
    }
    // Oldest first: the latest run of a pair is the one that stays.
    for run in runs {
        cells.entry(&run.scenario).or_default().insert(
            &run.stack,
            MatrixCell {
                run: Some((run.id.to_string(), run.status.to_string())),
                planned: None,
            },
        );
    }
    let rows: Vec<Value> = cells
        .iter()
        .map(|(scenario, by_stack)| {
            let row: Vec<Option<&MatrixCell>> = stacks.iter().map(|s| by_stack.get(s)).collect();
            context! { scenario => scenario, cells => Value::from_serialize(&row) }
        })
        .collect();
    context! { stacks => stacks, rows => rows }
}

#[derive(Serialize)]
struct StepRow {
    phase: Phase,
    name: String,
    owner: Option<String>,
    /// The owner's display name (`Payments team`), its short name when the config does not
    /// know it.
    owner_name: Option<String>,
    /// The verdict's name, `pending` while the step runs.
    verdict: &'static str,
    start: String,
    duration: String,
    /// `observed 410 ms, needs < 250 ms` ([`crate::present::comparison`]).
    evidence: Option<String>,
    /// For a step that did not pass: where its owner's notification stands
    /// ([`notification_sentence`]).
    notified: Option<String>,
    /// The step's query over its window in the stack's Prometheus ([`prometheus_link`]).
    prometheus: Option<String>,
    /// The same in Grafana Explore, when the stack's `grafana` names its Prometheus data
    /// source ([`grafana_explore_link`]).
    grafana: Option<String>,
    message: Option<String>,
    graph: Option<Value>,
}

/// Where one team's notification about a run stands, from its outbox rows (the team's row and
/// the per-route rows it was split into): "Payments team notified 03:12" (every route
/// delivered), "Notifying Payments team…" (waiting or retrying), "Notifying Payments team failed:
/// …" (given up), "Payments team: not delivered: no route".
fn notification_sentence(
    state: &DashboardState,
    team: &str,
    rows: &[&crate::store::OutboxRecord],
) -> String {
    use crate::store::OutboxStatus;
    if rows.iter().any(|r| r.status == OutboxStatus::NoRoute) {
        return format!("{team}: not delivered: no route");
    }
    let routes: Vec<&&crate::store::OutboxRecord> = rows
        .iter()
        .filter(|r| r.status != OutboxStatus::Routed)
        .collect();
    if routes.iter().any(|r| r.status == OutboxStatus::Pending) || routes.is_empty() {
        return format!("Notifying {team}…");
    }
    if let Some(dead) = routes.iter().find(|r| r.status == OutboxStatus::Dead) {
        return format!(
            "Notifying {team} failed: {}",
            dead.last_error.as_deref().unwrap_or("no reason recorded")
        );
    }
    let at = routes.iter().filter_map(|r| r.delivered_at).max();
    match at {
        Some(at) => format!("{team} notified {}", local(state, at, "%H:%M")),
        None => format!("{team} notified"),
    }
}

/// Margin around an evidence window in the Prometheus link, so the breach's edges show.
const LINK_MARGIN_SECONDS: i64 = 60;

/// A link that opens a step's query over its evaluated window (± a minute; ± 5 minutes around
/// an instant check) in the Prometheus expression browser of `base`: `/graph?g0.expr=…&g0.tab=0
/// &g0.range_input=…s&g0.end_input=YYYY-MM-DD HH:MM:SS&g0.step_input=…` (UTC; the URL
/// parameters of the Prometheus web UI, which both the classic and the 3.x UI read). `None`
/// when the evidence has no query or window (an older record, a non-Prometheus check).
pub(crate) fn prometheus_link(base: &str, evidence: &serde_json::Value) -> Option<String> {
    let (query, start, end, step) = link_range(evidence)?;
    let mut url = url::Url::parse(&format!("{}/graph", base.trim_end_matches('/'))).ok()?;
    {
        let mut pairs = url.query_pairs_mut();
        pairs
            .append_pair("g0.expr", query)
            .append_pair("g0.tab", "0")
            .append_pair(
                "g0.range_input",
                &format!("{}s", (end - start).num_seconds().max(1)),
            )
            .append_pair("g0.end_input", &end.format("%Y-%m-%d %H:%M:%S").to_string());
        if let Some(step) = step {
            pairs.append_pair("g0.step_input", &step.to_string());
        }
    }
    Some(url.into())
}

/// A link's query, start, end and step (seconds; `None` for an instant check).
type LinkRange<'a> = (&'a str, DateTime<Utc>, DateTime<Utc>, Option<i64>);

/// What a link opens for a step's evidence: its query, and the window it was judged over with
/// [`LINK_MARGIN_SECONDS`] either side (an instant check: 5 minutes either side) and the range
/// query's step in seconds (`None` for an instant check).
fn link_range(evidence: &serde_json::Value) -> Option<LinkRange<'_>> {
    let query = evidence.get("query")?.as_str()?;
    let window: crate::assert::Window =
        serde_json::from_value(evidence.get("window")?.clone()).ok()?;
    Some(match window {
        crate::assert::Window::Instant { at } => (
            query,
            at - Duration::minutes(5),
            at + Duration::minutes(5),
            None,
        ),
        crate::assert::Window::Range {
            start,
            end,
            step_seconds,
        } => (
            query,
            start - Duration::seconds(LINK_MARGIN_SECONDS),
            end + Duration::seconds(LINK_MARGIN_SECONDS),
            Some(step_seconds.round().max(1.0) as i64),
        ),
    })
}

/// The step's query over the same range as [`prometheus_link`] in Grafana Explore at `base`,
/// on the Prometheus data source `datasource_uid`: `{base}/explore?schemaVersion=1&panes=…&orgId=1`,
/// `panes` being Explore's URL state (Grafana ≥ 10, `ExploreURLV1`: one pane with the data
/// source, one query `{refId, expr, datasource: {type: prometheus, uid}}` and an absolute
/// `range` `{from, to}` in epoch milliseconds as strings). `None` without a query and window.
pub(crate) fn grafana_explore_link(
    base: &str,
    datasource_uid: &str,
    evidence: &serde_json::Value,
) -> Option<String> {
    let (query, start, end, step) = link_range(evidence)?;
    let mut target = serde_json::json!({
        "refId": "A",
        "expr": query,
        "datasource": {"type": "prometheus", "uid": datasource_uid},
        "range": true,
    });
    if let Some(step) = step {
        target["interval"] = serde_json::Value::from(format!("{step}s"));
    }
    let panes = serde_json::json!({
        "f3": {
            "datasource": datasource_uid,
            "queries": [target],
            "range": {
                "from": start.timestamp_millis().to_string(),
                "to": end.timestamp_millis().to_string(),
            },
        }
    });
    let mut url = url::Url::parse(&format!("{}/explore", base.trim_end_matches('/'))).ok()?;
    url.query_pairs_mut()
        .append_pair("schemaVersion", "1")
        .append_pair("panes", &panes.to_string())
        .append_pair("orgId", "1");
    Some(url.into())
}

/// Each owner's failure notification about one run, as one sentence by team slug ("Payments
/// team notified 03:12", [`notification_sentence`]), from the run's outbox rows.
pub(crate) fn notification_sentences(
    state: &DashboardState,
    outbox: &[crate::store::OutboxRecord],
) -> BTreeMap<String, String> {
    let mut told: BTreeMap<&str, Vec<&crate::store::OutboxRecord>> = BTreeMap::new();
    for n in outbox
        .iter()
        .filter(|n| n.kind == crate::model::NotificationKind::Failures)
    {
        told.entry(n.team.as_str()).or_default().push(n);
    }
    told.into_iter()
        .map(|(team, rows)| {
            (
                team.to_owned(),
                notification_sentence(state, state.team_name(team), &rows),
            )
        })
        .collect()
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
            let whens: Vec<_> = steps.iter().filter(|s| s.phase == Phase::When).collect();
            whens
                .iter()
                .map(|s| s.started_at)
                .min()
                .zip(whens.iter().filter_map(|s| s.ended_at).max())
        }
    };
    let mut rows: Vec<StepRow> = steps
        .iter()
        .map(|s| StepRow {
            phase: s.phase,
            name: s.name.clone(),
            owner: s.owner.clone(),
            owner_name: s.owner.as_deref().map(|o| state.team_name(o).to_owned()),
            verdict: s.verdict.map_or("pending", Verdict::as_str),
            start: local(state, s.started_at, "%H:%M:%S"),
            duration: fmt_duration(s.ended_at.and_then(|e| (e - s.started_at).to_std().ok())),
            evidence: s.comparison(),
            notified: None,
            prometheus: s.evidence.as_ref().and_then(|e| {
                let stack = state.known.stacks.get(&run.stack)?;
                prometheus_link(&stack.prometheus_url, e)
            }),
            grafana: s.evidence.as_ref().and_then(|e| {
                let grafana = state.known.stacks.get(&run.stack)?.grafana.as_ref()?;
                grafana_explore_link(&grafana.url, grafana.datasource_uid.as_deref()?, e)
            }),
            message: s.message.clone(),
            graph: s
                .evidence
                .as_ref()
                .and_then(|e| evidence_graph(e, s.threshold, fault, state.calendar.tz))
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
        .map(|n| context! { team => n.team, kind => n.kind.stored_name(), status => n.status, at => local(state, n.created_at, "%H:%M:%S") })
        .collect();
    let told = notification_sentences(state, &outbox);
    for (row, step) in rows.iter_mut().zip(&steps) {
        if step.verdict.is_some_and(Verdict::needs_attention) {
            row.notified = step.owner.as_ref().and_then(|o| told.get(o)).cloned();
        }
    }
    let told: Vec<&String> = told.values().collect();
    let summary = run.summary.clone().unwrap_or_default();
    Ok(Some(context! {
        title => format!("{} on {}", run.scenario, run.stack),
        run => row(state, &run, None),
        zone => state.calendar.tz.name(),
        steps => rows,
        faults => faults,
        notifications => notifications,
        told => told,
        pass_rate => summary.get("pass_rate").and_then(|v| v.as_f64()).map(crate::present::ratio),
        reason => summary.get("reason").and_then(|v| v.as_str()).map(str::to_owned),
        abort_latency_ms => summary.get("abort_latency_ms").and_then(|v| v.as_i64()),
    }))
}

#[derive(Serialize, Default)]
struct StepStats {
    name: String,
    owner: Option<String>,
    /// The owner's display name.
    owner_name: Option<String>,
    runs: usize,
    passed: usize,
    rate: String,
    flips: usize,
    last: Option<bool>,
    /// Its judgements, oldest first while counted, then newest first (true = passed).
    #[serde(skip)]
    seq: Vec<bool>,
    /// `flaky`, `new`, `regression`, `failing` or `passing` ([`super::review::trend`]).
    trend: &'static str,
}

/// Nights shown in the scenario page's per-stack strip.
const STRIP_NIGHTS: i64 = 14;

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
    let night_runs: Vec<NightRun> = runs.iter().map(|r| NightRun::of_record(state, r)).collect();
    let rates = headline_rates(state, &night_runs, now);
    let chart = pass_rate_chart(
        state,
        &night_runs,
        now,
        &format!("pass rate of {name} by night"),
    );
    // Oldest first so that flips are counted in time order.
    let mut stats: BTreeMap<String, StepStats> = BTreeMap::new();
    for run in runs.iter().take(SCENARIO_STEP_RUNS).rev() {
        for step in state.store.steps(run.id).await? {
            if step.phase != Phase::Then {
                continue;
            }
            let ok = match step.verdict {
                Some(Verdict::Passed) => true,
                Some(Verdict::Failed) => false,
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
            s.seq.push(ok);
        }
    }
    for s in stats.values_mut() {
        s.seq.reverse();
        s.trend = super::review::trend(&s.seq);
        s.owner_name = s.owner.as_deref().map(|o| state.team_name(o).to_owned());
        s.rate = crate::present::ratio(s.passed as f64 / s.runs.max(1) as f64);
    }
    // Duration trend, planned vs actual: the last TREND_RUNS finished runs, oldest left; the
    // planned duration is the run's slot in its night's final stored plan.
    let trend_runs: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.ended_at.is_some())
        .take(TREND_RUNS)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let nights: Vec<NaiveDate> = trend_runs.iter().filter_map(|r| r.night).collect();
    let plans: BTreeMap<NaiveDate, String> = match (nights.iter().min(), nights.iter().max()) {
        (Some(first), Some(last)) => state
            .store
            .latest_plan_texts(*first, *last)
            .await?
            .into_iter()
            .collect(),
        _ => BTreeMap::new(),
    };
    let points: Vec<TrendPoint> = trend_runs
        .iter()
        .map(|r| {
            let planned = r
                .night
                .and_then(|n| plans.get(&n))
                .and_then(|p| PlanView::slot_length(p, &r.scenario, &r.stack))
                .map(|d| d.num_seconds() as f64 / 60.0);
            TrendPoint {
                id: r.id.to_string(),
                start: local(state, r.started_at, "%Y-%m-%d %H:%M"),
                stack: r.stack.clone(),
                status: r.status.to_string(),
                actual: r.duration().map_or(0.0, |d| d.as_secs_f64() / 60.0),
                planned,
            }
        })
        .collect();
    let trend = trend_svg(&points);
    let per_stack = per_group(state, &night_runs, now);
    let last: Vec<RunRow> = runs.iter().take(20).map(|r| row(state, r, None)).collect();
    Ok(context! {
        title => format!("Scenario {name}"),
        name => name,
        zone => state.calendar.tz.name(),
        rates => rates,
        pass_rate_chart => chart,
        chart_nights => CHART_NIGHTS,
        trailing_nights => super::svg::TRAILING_NIGHTS,
        steps => stats.into_values().collect::<Vec<_>>(),
        trend => trend.map(Value::from_safe_string),
        trend_points => points,
        per_stack => per_stack,
        strip_nights => STRIP_NIGHTS,
        last => last,
    })
}

/// `/stack/{name}`: what the stack is (environment, driver, clusters), who holds it now and
/// its reservations still to come, its pass rate over the last 7/30/90 nights with a chart of
/// the last [`CHART_NIGHTS`], each scenario's rates and 14-night strip on it, and its last
/// [`STACK_RUNS_SHOWN`] runs. Reads the stack's runs of [`CHART_NIGHTS`] days in brief (no
/// steps, no evidence).
pub async fn stack(state: &DashboardState, name: &str) -> anyhow::Result<Value> {
    let now = Utc::now();
    let briefs = state
        .store
        .stack_run_briefs(name, now - Duration::days(CHART_NIGHTS))
        .await?;
    let leases = state.store.leases(now).await?;
    let night_runs: Vec<NightRun> = briefs
        .iter()
        .map(|r| NightRun::of_brief(state, r))
        .collect();
    let last: Vec<Value> = briefs
        .iter()
        .take(STACK_RUNS_SHOWN)
        .map(|r| {
            context! {
                id => r.id.to_string(), scenario => r.scenario, status => r.status.to_string(),
                night => r.night.map(|n| n.to_string()),
                start => local(state, r.started_at, "%Y-%m-%d %H:%M"),
            }
        })
        .collect();
    Ok(context! {
        title => format!("Stack {name}"),
        zone => state.calendar.tz.name(),
        rates => headline_rates(state, &night_runs, now),
        pass_rate_chart => pass_rate_chart(state, &night_runs, now, &format!("pass rate on {name} by night")),
        chart_nights => CHART_NIGHTS,
        trailing_nights => super::svg::TRAILING_NIGHTS,
        per_scenario => per_group(state, &night_runs, now),
        strip_nights => STRIP_NIGHTS,
        last => last,
        ..super::lists::stack_facts(state, name, &leases, now)
    })
}

/// A run as the pass rates, strips and pass-rate charts count it: its night (its own, or for
/// an ad-hoc run the night its start fell in), its status, and what it is grouped by (the
/// stack on the scenario page, the scenario on the stack page).
#[derive(Clone, Copy)]
struct NightRun<'a> {
    night: NaiveDate,
    status: RunStatus,
    group: &'a str,
}

impl<'a> NightRun<'a> {
    fn of_record(state: &DashboardState, run: &'a RunRecord) -> Self {
        Self {
            night: night_or_start(state, run.night, run.started_at),
            status: run.status,
            group: &run.stack,
        }
    }

    fn of_brief(state: &DashboardState, run: &'a crate::store::RunBrief) -> Self {
        Self {
            night: night_or_start(state, run.night, run.started_at),
            status: run.status,
            group: &run.scenario,
        }
    }
}

/// A run's own night, or (ad hoc) the night its start fell in.
fn night_or_start(
    state: &DashboardState,
    night: Option<NaiveDate>,
    start: DateTime<Utc>,
) -> NaiveDate {
    night.unwrap_or_else(|| state.calendar.night_of(start))
}

/// The pass rate of the finished `runs` of the last `nights` nights, tonight's included (by
/// the runs' own nights, so that "7 nights" means the same at 08:00 and at 23:00): "66.7 % of
/// 6", or "n/a" when none finished.
fn nights_pass_rate(
    state: &DashboardState,
    runs: &[NightRun],
    now: DateTime<Utc>,
    nights: i64,
) -> String {
    let first = state.calendar.night_of(now) - Duration::days(nights - 1);
    let finished: Vec<RunOutcome> = runs
        .iter()
        .filter(|r| r.night >= first)
        .filter_map(|r| r.status.outcome())
        .collect();
    let passed = finished
        .iter()
        .filter(|o| **o == RunOutcome::Passed)
        .count();
    if finished.is_empty() {
        "n/a".to_owned()
    } else {
        format!(
            "{} of {}",
            crate::present::ratio(passed as f64 / finished.len() as f64),
            finished.len()
        )
    }
}

/// The three pass rates the scenario and stack pages head with: last 7, 30 and 90 nights.
fn headline_rates(
    state: &DashboardState,
    runs: &[NightRun],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    [("7 nights", 7), ("30 nights", 30), ("90 nights", 90)]
        .into_iter()
        .map(|(label, nights)| (label, nights_pass_rate(state, runs, now, nights)))
        .collect()
}

/// The pass-rate chart of `runs` over the last [`CHART_NIGHTS`] nights
/// ([`super::svg::pass_rate_chart`]).
fn pass_rate_chart(
    state: &DashboardState,
    runs: &[NightRun],
    now: DateTime<Utc>,
    label: &str,
) -> Option<Value> {
    let last = state.calendar.night_of(now);
    let first = last - Duration::days(CHART_NIGHTS - 1);
    // One tally per finished run: the chart adds up each night's.
    let tallies: Vec<NightTally> = runs
        .iter()
        .filter_map(|run| {
            let outcome = run.status.outcome()?;
            Some(NightTally {
                night: run.night,
                passed: usize::from(outcome == RunOutcome::Passed),
                finished: 1,
            })
        })
        .collect();
    super::svg::pass_rate_chart(&tallies, first, last, label).map(Value::from_safe_string)
}

/// Per group (a stack on the scenario page, a scenario on the stack page; by name): its pass
/// rate over the last 7, 30 and 90 nights (tonight's included, by the runs' nights: "66.7 % of
/// 6") and a strip of the last [`STRIP_NIGHTS`] nights, oldest left, each the outcome of the
/// night's latest run there (`none` when it did not run). `runs` are newest first.
fn per_group(state: &DashboardState, runs: &[NightRun], now: DateTime<Utc>) -> Vec<Value> {
    let today = state.calendar.night_of(now);
    let mut groups: BTreeMap<&str, Vec<NightRun>> = BTreeMap::new();
    for run in runs {
        groups.entry(run.group).or_default().push(*run);
    }
    groups
        .into_iter()
        .map(|(group, runs)| {
            let rate = |nights: i64| nights_pass_rate(state, &runs, now, nights);
            // Newest first: the first run seen for a night is its latest.
            let mut by_night: BTreeMap<NaiveDate, String> = BTreeMap::new();
            for run in &runs {
                by_night
                    .entry(run.night)
                    .or_insert_with(|| run.status.to_string());
            }
            let strip: Vec<Value> = (0..STRIP_NIGHTS)
                .rev()
                .map(|back| {
                    let night = today - Duration::days(back);
                    let status = by_night.get(&night).map_or("none", String::as_str);
                    context! { night => night.to_string(), status => status }
                })
                .collect();
            context! {
                key => group, rate7 => rate(7), rate30 => rate(30), rate90 => rate(90),
                strip => strip,
            }
        })
        .collect()
}

/// One run on the scenario page's duration trend; minutes.
#[derive(Serialize)]
struct TrendPoint {
    id: String,
    start: String,
    stack: String,
    status: String,
    /// Actual duration, minutes.
    actual: f64,
    /// Planned duration (slot length in the night's final plan), minutes; `None` when the run
    /// was not planned by the daemon (CLI runs, nights without a stored plan).
    planned: Option<f64>,
}

/// An SVG of actual (solid, one dot per run coloured by outcome) and planned (dashed) durations
/// in minutes, oldest left; `None` with fewer than two runs.
fn trend_svg(points: &[TrendPoint]) -> Option<String> {
    if points.len() < 2 {
        return None;
    }
    let (w, h, pad) = (960.0, 160.0, 20.0);
    let max = points
        .iter()
        .flat_map(|p| [Some(p.actual), p.planned])
        .flatten()
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let n = (points.len() - 1) as f64;
    let x = |i: usize| pad + i as f64 / n * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max * (h - 2.0 * pad);
    let actual: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.actual)))
        .collect();
    let planned: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.planned.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    let mut out = format!(
        "<svg class=\"graph trend\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"duration trend, planned vs actual\"><line class=\"axis\" x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\"/>",
        h - pad,
        w - pad
    );
    if planned.len() >= 2 {
        out.push_str(&format!(
            "<polyline class=\"planned-line\" points=\"{}\"/>",
            planned.join(" ")
        ));
    }
    out.push_str(&format!(
        "<polyline class=\"series s0\" points=\"{}\"/>",
        actual.join(" ")
    ));
    for (i, p) in points.iter().enumerate() {
        out.push_str(&format!(
            "<circle class=\"dot o-{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{} {} — {:.1} min</title></circle>",
            minijinja::HtmlEscape(&p.status),
            x(i),
            y(p.actual),
            minijinja::HtmlEscape(&p.start),
            minijinja::HtmlEscape(&p.stack),
            p.actual
        ));
    }
    out.push_str(&format!(
        "<text class=\"label\" x=\"2\" y=\"{pad}\">{max:.0} min</text><text class=\"label\" x=\"2\" y=\"{:.1}\">0</text></svg>",
        h - pad
    ));
    Some(out)
}

/// Team page: steps the team owns that did not pass (failed, error, inconclusive) in the last
/// [`TEAM_DAYS`] days, newest first, at most [`TEAM_STEPS`].
pub async fn team(state: &DashboardState, team: &str) -> anyhow::Result<Value> {
    let since = Utc::now() - Duration::days(TEAM_DAYS);
    let steps = state
        .store
        .team_steps(
            team,
            &[Verdict::Failed, Verdict::Error, Verdict::Inconclusive],
            since,
            TEAM_STEPS,
        )
        .await?;
    let mut ids: Vec<uuid::Uuid> = steps.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    let runs: BTreeMap<uuid::Uuid, RunRecord> = state
        .store
        .runs_by_id(&ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let failed: Vec<Value> = steps
        .into_iter()
        .filter_map(|(id, step)| {
            let run = runs.get(&id)?;
            Some(context! {
                run => row(state, run, None),
                step => step.name,
                verdict => step.verdict,
                evidence => step.comparison(),
                message => step.message,
            })
        })
        .collect();
    Ok(context! {
        title => state.team_name(team).to_owned(),
        team => team,
        team_name => state.team_name(team),
        days => TEAM_DAYS,
        zone => state.calendar.tz.name(),
        failed => failed,
        findings => super::findings::open_of_team(state, team).await?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The Explore link opens one pane on the stack's data source with the step's query and
    /// its window (a minute either side), as Grafana's URL state v1 reads it.
    #[test]
    fn a_grafana_explore_link_carries_the_query_data_source_and_window() {
        let evidence = json!({
            "query": "sum(rate(payments_total[1m]))",
            "window": {"kind": "range", "start": "2026-11-20T01:00:00Z",
                       "end": "2026-11-20T01:05:00Z", "step_seconds": 15.0},
        });
        let link = super::grafana_explore_link(
            "https://grafana.example.com/",
            "prom-uat-alpha",
            &evidence,
        )
        .unwrap();
        let url = url::Url::parse(&link).unwrap();
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://grafana.example.com/explore")
        );
        let pairs: std::collections::BTreeMap<String, String> =
            url.query_pairs().into_owned().collect();
        assert_eq!(pairs["schemaVersion"], "1");
        assert_eq!(pairs["orgId"], "1");
        let panes: serde_json::Value = serde_json::from_str(&pairs["panes"]).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:59:00Z").unwrap();
        let end = chrono::DateTime::parse_from_rfc3339("2026-11-20T01:06:00Z").unwrap();
        assert_eq!(
            panes,
            json!({"f3": {
                "datasource": "prom-uat-alpha",
                "queries": [{
                    "refId": "A", "expr": "sum(rate(payments_total[1m]))", "range": true,
                    "interval": "15s",
                    "datasource": {"type": "prometheus", "uid": "prom-uat-alpha"},
                }],
                "range": {
                    "from": start.timestamp_millis().to_string(),
                    "to": end.timestamp_millis().to_string(),
                },
            }})
        );
        assert!(super::grafana_explore_link("https://g", "uid", &json!({})).is_none());
    }
}
