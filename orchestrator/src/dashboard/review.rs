//! The morning review's first question, on the night page: which Then steps failed, whose they
//! are, and whether each failure is new, a regression, a known flake or still failing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::DashboardState;
use crate::model::Verdict;
use crate::store::{RunRecord, StepJudgement};

/// How many earlier judgements of a step are read to place its failure.
pub(crate) const HISTORY: u32 = 30;
/// A step whose verdict changed at least [`FLAKY_FLIPS`] times over its last
/// [`FLAKY_WINDOW`] judgements (tonight's included) is a known flake.
const FLAKY_WINDOW: usize = 10;
const FLAKY_FLIPS: usize = 3;

/// Where a failure stands against the step's history on the same stack (newest first, the
/// failing run excluded; at most [`HISTORY`] judgements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No failure in its history: the first failing night.
    New,
    /// Its verdict flipped `flips` times over its last `of` judgements (tonight's included).
    Flaky { flips: usize, of: usize },
    /// It failed before, but passed last time (on `last_passed`).
    Regression { last_passed: Option<NaiveDate> },
    /// It failed last time too: failing since `since` (the night of the first failure of the
    /// streak), over `runs` runs tonight's included; `capped` when the streak reaches past the
    /// history read.
    StillFailing {
        since: Option<NaiveDate>,
        runs: usize,
        capped: bool,
    },
}

impl Standing {
    /// Places tonight's failure given the step's `history` (newest first, failing run
    /// excluded).
    pub fn of(history: &[StepJudgement]) -> Standing {
        if !history.iter().any(|j| j.verdict == Verdict::Failed) {
            return Standing::New;
        }
        let (flips, of) = recent_flips(
            std::iter::once(false).chain(history.iter().map(|j| j.verdict == Verdict::Passed)),
        );
        if flips >= FLAKY_FLIPS {
            return Standing::Flaky { flips, of };
        }
        match history.first() {
            Some(last) if last.verdict == Verdict::Passed => Standing::Regression {
                last_passed: last.night.or_else(|| Some(last.started_at.date_naive())),
            },
            _ => {
                let streak: Vec<&StepJudgement> = history
                    .iter()
                    .take_while(|j| j.verdict == Verdict::Failed)
                    .collect();
                let first = streak.last();
                Standing::StillFailing {
                    since: first.map(|j| j.night.unwrap_or_else(|| j.started_at.date_naive())),
                    runs: streak.len() + 1,
                    capped: streak.len() == history.len() && history.len() >= HISTORY as usize,
                }
            }
        }
    }

    /// The CSS class and the badge: `new`, `regression`, `flaky`, `failing`.
    pub fn class(&self) -> &'static str {
        match self {
            Standing::New => "new",
            Standing::Flaky { .. } => "flaky",
            Standing::Regression { .. } => "regression",
            Standing::StillFailing { .. } => "failing",
        }
    }

    /// What the badge's line says: "new: first failing night", "regression: passed on
    /// 2026-11-19", "known flake: 4 flips in the last 7 runs", "failing since 2026-11-17 (4
    /// runs)".
    pub fn sentence(&self) -> String {
        match self {
            Standing::New => "new: first failing night".to_owned(),
            Standing::Flaky { flips, of } => {
                format!("known flake: {flips} flips in the last {of} runs")
            }
            Standing::Regression {
                last_passed: Some(n),
            } => format!("regression: passed on {n}"),
            Standing::Regression { last_passed: None } => "regression: passed last time".to_owned(),
            Standing::StillFailing {
                since,
                runs,
                capped,
            } => {
                let more = if *capped { "+" } else { "" };
                match since {
                    Some(n) => format!("failing since {n} ({runs}{more} runs)"),
                    None => format!("failing for {runs}{more} runs"),
                }
            }
        }
    }
}

/// Flips (pass⇄fail) over the first [`FLAKY_WINDOW`] of `passed` (newest first), and how many
/// judgements that window holds.
fn recent_flips(passed: impl Iterator<Item = bool>) -> (usize, usize) {
    let recent: Vec<bool> = passed.take(FLAKY_WINDOW).collect();
    (
        recent.windows(2).filter(|w| w[0] != w[1]).count(),
        recent.len(),
    )
}

/// How a Then step trends over its judgements `passed` (newest first, true = passed), by the
/// same rules as [`Standing`]: `flaky` when it flipped at least [`FLAKY_FLIPS`] times over the
/// last [`FLAKY_WINDOW`]; else `passing` when it passed last (or has no judgement); else
/// `new` (its only failures are the latest), `regression` (it passed the time before) or
/// `failing` (it failed the time before too).
pub(crate) fn trend(passed: &[bool]) -> &'static str {
    if recent_flips(passed.iter().copied()).0 >= FLAKY_FLIPS {
        return "flaky";
    }
    match passed {
        [] | [true, ..] => "passing",
        [false, rest @ ..] if rest.iter().all(|&p| p) => "new",
        [false, true, ..] => "regression",
        [false, ..] => "failing",
    }
}

/// One failed Then step of the night, as the top of the night page lists it.
#[derive(Serialize)]
pub(crate) struct FailureRow {
    pub run_id: String,
    pub scenario: String,
    pub stack: String,
    pub step: String,
    pub verdict: &'static str,
    pub owner: Option<String>,
    /// The owner's display name, "no owner" when the step names none.
    pub owner_name: String,
    /// The faults the run injected ("GCP cloud connectivity is completely lost"), joined.
    pub fault: String,
    /// "observed 310 ms, needs < 250 ms".
    pub evidence: Option<String>,
    pub standing: &'static str,
    pub standing_text: String,
    /// Where the owner's notification stands (the run page's sentence).
    pub notified: String,
}

/// The failed (and error/inconclusive: not passed, so owed a look) Then steps of `runs`, each
/// placed against its history and its owner's notification. Failed steps first, then by
/// scenario, stack and step.
pub(crate) async fn failures(
    state: &DashboardState,
    runs: &[RunRecord],
) -> anyhow::Result<Vec<FailureRow>> {
    let ids: Vec<uuid::Uuid> = runs
        .iter()
        .filter(|r| !r.is_running())
        .map(|r| r.id)
        .collect();
    let steps = state
        .store
        .then_steps_of_runs(
            &ids,
            &[Verdict::Failed, Verdict::Error, Verdict::Inconclusive],
        )
        .await?;
    let by_id: BTreeMap<uuid::Uuid, &RunRecord> = runs.iter().map(|r| (r.id, r)).collect();
    // Per run: its faults and its owners' notification sentences (read once per run).
    let mut per_run: BTreeMap<uuid::Uuid, (String, BTreeMap<String, String>)> = BTreeMap::new();
    let mut rows = Vec::new();
    for (run_id, step) in steps {
        let Some(run) = by_id.get(&run_id) else {
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(entry) = per_run.entry(run_id) {
            let ledger = state.store.ledger_for_run(run_id).await?;
            let mut faults: Vec<String> = ledger.iter().map(|l| l.step_name.clone()).collect();
            faults.dedup();
            let fault = if faults.is_empty() {
                "no fault injected".to_owned()
            } else {
                faults.join("; ")
            };
            let outbox = state.store.outbox_for_run(run_id).await?;
            entry.insert((fault, super::pages::notification_sentences(state, &outbox)));
        }
        let (fault, told) = &per_run[&run_id];
        let standing = if step.verdict == Some(Verdict::Failed) {
            let history = state
                .store
                .step_history(
                    &run.scenario,
                    &run.stack,
                    &step.name,
                    run.started_at,
                    HISTORY,
                )
                .await?;
            Some(Standing::of(&history))
        } else {
            None
        };
        let owner_name = step
            .owner
            .as_deref()
            .map_or_else(|| "no owner".to_owned(), |o| state.team_name(o).to_owned());
        let notified = match step.owner.as_deref() {
            Some(owner) => told
                .get(owner)
                .cloned()
                .unwrap_or_else(|| format!("{owner_name}: no notification queued")),
            None => "no owner to notify".to_owned(),
        };
        rows.push(FailureRow {
            run_id: run_id.to_string(),
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            evidence: step.comparison(),
            verdict: step.verdict.map_or("pending", Verdict::as_str),
            owner: step.owner.clone(),
            owner_name,
            fault: fault.clone(),
            standing: standing.as_ref().map_or("unjudged", Standing::class),
            standing_text: standing
                .map_or_else(|| "not judged: see the run".to_owned(), |s| s.sentence()),
            notified,
            step: step.name,
        });
    }
    rows.sort_by(|a, b| {
        (a.verdict != "failed", &a.scenario, &a.stack, &a.step).cmp(&(
            b.verdict != "failed",
            &b.scenario,
            &b.stack,
            &b.step,
        ))
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _, Utc};

    use super::*;

    fn history(verdicts: &str) -> Vec<StepJudgement> {
        // Newest first, one night apart, the newest on 2026-11-19.
        let newest = Utc.with_ymd_and_hms(2026, 11, 19, 1, 0, 0).unwrap();
        verdicts
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let at = newest - Duration::days(i as i64);
                StepJudgement {
                    night: Some(at.date_naive()),
                    started_at: at,
                    verdict: if c == 'P' {
                        Verdict::Passed
                    } else {
                        Verdict::Failed
                    },
                }
            })
            .collect()
    }

    #[test]
    fn a_failure_is_placed_against_the_steps_history() {
        assert_eq!(Standing::of(&[]), Standing::New);
        assert_eq!(Standing::of(&history("PPPPP")), Standing::New);
        let regression = Standing::of(&history("PPPF"));
        assert_eq!(
            regression.sentence(),
            "regression: passed on 2026-11-19",
            "{regression:?}"
        );
        assert_eq!(regression.class(), "regression");
        let failing = Standing::of(&history("FFPP"));
        assert_eq!(failing.sentence(), "failing since 2026-11-18 (3 runs)");
        assert_eq!(failing.class(), "failing");
        let flaky = Standing::of(&history("PFPFPP"));
        assert_eq!(flaky.sentence(), "known flake: 5 flips in the last 7 runs");
        assert_eq!(flaky.class(), "flaky");
        // Two flips only: a regression, not a flake.
        assert_eq!(Standing::of(&history("PFF")).class(), "regression");
    }

    #[test]
    fn a_steps_trend_follows_the_same_rules_as_a_failures_standing() {
        let seq = |s: &str| s.chars().map(|c| c == 'P').collect::<Vec<_>>();
        assert_eq!(trend(&[]), "passing");
        assert_eq!(trend(&seq("PFFF")), "passing");
        assert_eq!(trend(&seq("FPPP")), "new");
        assert_eq!(trend(&seq("FPPF")), "regression");
        assert_eq!(trend(&seq("FFPP")), "failing");
        assert_eq!(trend(&seq("PFPFPP")), "flaky");
        assert_eq!(trend(&seq("FPFP")), "flaky");
        // Flips older than the last 10 judgements do not make a flake.
        assert_eq!(trend(&seq("FFFFFFFFFFPFPF")), "failing");
        // A failing step's trend names the same thing as its standing on the night page.
        for s in ["FPPP", "FPPF", "FFPP", "FPFPFP", "FFFFFFFFFFPFPF"] {
            let history = history(&s[1..]);
            assert_eq!(trend(&seq(s)), Standing::of(&history).class(), "{s}");
        }
    }

    #[test]
    fn a_streak_longer_than_the_history_read_says_so() {
        let all_failed = "F".repeat(HISTORY as usize);
        let standing = Standing::of(&history(&all_failed));
        assert!(
            standing.sentence().ends_with("(31+ runs)"),
            "{}",
            standing.sentence()
        );
    }
}
