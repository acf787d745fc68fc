//! The morning digest: one message per team summarising a night — how many runs, passes and
//! failures, the failed / inconclusive steps the team owns (with evidence), and the runs that
//! taught nothing (void, precondition-failed, interrupted, error) with their reason.
//!
//! Night `D` is the chaos window instance that starts on local date `D` in the configured time
//! zone (for a window crossing midnight, e.g. 22:00–06:00, the one that ends on `D`); a run
//! belongs to it when its stored `night` is `D`, or when it has none and started inside that
//! window. The digest is queued in the outbox (kind `digest`) against the night's latest run, so
//! it is delivered and retried like every other notification.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::message::DigestBody;
use crate::config::Config;
use crate::model::{NotificationKind, RunOutcome, Verdict};
use crate::store::{RunRecord, Store, StoreError};

/// The digest of one team for one night.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamDigest {
    /// Team short name.
    pub team: String,
    /// Headline and lines.
    pub body: DigestBody,
    /// The night's latest run (the outbox row's run), if any run happened.
    pub anchor_run: Option<uuid::Uuid>,
}

/// [`RunOutcome::teaches_nothing`] of a stored run that has finished.
fn taught_nothing(run: &RunRecord) -> bool {
    run.outcome().is_some_and(RunOutcome::teaches_nothing)
}

/// One digest per configured team for `night` (teams in name order).
///
/// # Errors
/// [`StoreError`] when the store cannot be read.
pub async fn build(
    store: &Store,
    night: NaiveDate,
    config: &Config,
) -> Result<Vec<TeamDigest>, StoreError> {
    let window = crate::plan::NightCalendar::of(config).window_of(night);
    let runs = store.runs_of_night(night, window).await?;
    let mut steps = BTreeMap::new();
    for run in &runs {
        steps.insert(run.id, store.steps(run.id).await?);
    }
    let passed = runs
        .iter()
        .filter(|r| r.outcome() == Some(RunOutcome::Passed))
        .count();
    let failed = runs
        .iter()
        .filter(|r| r.outcome().is_some_and(RunOutcome::found_a_problem))
        .count();
    let wasted = runs.iter().filter(|r| taught_nothing(r)).count();
    let mut out = Vec::new();
    for team in config.teams.values() {
        let mut lines = Vec::new();
        let mut own_failures = 0;
        for run in &runs {
            let run_steps = steps.get(&run.id).map(Vec::as_slice).unwrap_or_default();
            let owns = run_steps
                .iter()
                .any(|s| s.owner.as_deref() == Some(team.name.as_str()));
            if taught_nothing(run) {
                if owns {
                    let reason = run
                        .summary
                        .as_ref()
                        .and_then(|s| s.get("reason"))
                        .and_then(|r| r.as_str())
                        .unwrap_or("no reason recorded");
                    lines.push(format!(
                        "{} on {}: {} — {}",
                        run.scenario, run.stack, run.status, reason
                    ));
                }
                continue;
            }
            for step in run_steps
                .iter()
                .filter(|s| s.owner.as_deref() == Some(team.name.as_str()))
            {
                if let Some(verdict) = step.verdict.filter(|v| v.needs_attention()) {
                    own_failures += 1;
                    let detail = step
                        .comparison()
                        .filter(|_| step.observed.is_some())
                        .or_else(|| step.message.clone())
                        .unwrap_or_default();
                    let mut line = format!(
                        "{} on {}: {} — {verdict} ({detail})",
                        run.scenario, run.stack, step.name
                    );
                    // Did a later run of the same scenario on the same stack pass it that night?
                    let passed_later = runs.iter().find(|later| {
                        (later.started_at, later.id) > (run.started_at, run.id)
                            && later.scenario == run.scenario
                            && later.stack == run.stack
                            && steps.get(&later.id).is_some_and(|ls| {
                                ls.iter().any(|l| {
                                    l.name == step.name && l.verdict == Some(Verdict::Passed)
                                })
                            })
                    });
                    if let Some(later) = passed_later {
                        line.push_str(&format!(
                            "; passed again at {}",
                            later
                                .started_at
                                .with_timezone(&config.timezone)
                                .format("%H:%M")
                        ));
                    }
                    if let Some(base) = &config.dashboard_url {
                        line.push_str(&format!(
                            " — {}/runs/{}",
                            base.trim_end_matches('/'),
                            run.id
                        ));
                    }
                    lines.push(line);
                }
            }
        }
        let headline = format!(
            "Chaos night {night} for {}: {} runs, {passed} passed, {failed} failed, {wasted} void/skipped; {} of your steps did not pass",
            team.display_name,
            runs.len(),
            own_failures
        );
        out.push(TeamDigest {
            team: team.name.clone(),
            body: DigestBody { headline, lines },
            anchor_run: runs.last().map(|r| r.id),
        });
    }
    Ok(out)
}

/// The outbox payload of one team's digest (version 1): `{"version", "night", "digest"}`.
pub fn payload(night: NaiveDate, digest: &TeamDigest) -> serde_json::Value {
    json!({
        "version": 1,
        "night": night.to_string(),
        "digest": digest.body,
    })
}

/// Queues `digests` in the outbox (kind `digest`); teams without an anchor run (a night without
/// runs) are skipped. Returns the outbox ids. (`f3-chaos digest`, by hand; the daemon queues
/// through [`Store::queue_night_digest`], once per night.)
///
/// # Errors
/// [`StoreError`] when the outbox cannot be written.
pub async fn queue(
    store: &Store,
    night: NaiveDate,
    digests: &[TeamDigest],
    at: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::new();
    for digest in digests {
        let Some(run_id) = digest.anchor_run else {
            continue;
        };
        let payload = payload(night, digest);
        ids.push(
            store
                .outbox_insert(run_id, &digest.team, NotificationKind::Digest, &payload, at)
                .await?,
        );
    }
    Ok(ids)
}
