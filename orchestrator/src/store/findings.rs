//! Findings (`findings` table): the weaknesses the morning review tracks, one per (scenario,
//! stack, Then step).
//!
//! ```text
//!            step fails                      passes on N nights
//! (none) ───────────────▶ open ─────────────────────────────▶ resolved
//!                          ▲  step fails: passing nights = 0      │
//!                          └──────────────── step fails ──────────┘ (re-opened)
//! ```
//! Only planned runs (with a night) whose outcome is a result (passed, failed, aborted) move a
//! finding: an ad-hoc or CI run, or a run that is void, interrupted or in error, judges nothing
//! about the night. A pass counts as a passing night once per night, and only on a night after
//! the latest failing one. N is `spec.findings.resolveAfterPassingNights`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::error::QueryContext;
use super::review::{night_of_row, night_of_text, uuid_of_row};
use super::{Store, StoreError, from_ms, to_ms, with_pool};
use crate::model::{Phase, RunOutcome, Verdict};

/// Whether a finding still needs work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingStatus {
    /// The step failed and has not passed on enough nights since.
    Open,
    /// The step passed on enough nights after its latest failure.
    Resolved,
}

impl FindingStatus {
    /// The stored name: `open`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FindingStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(FindingStatus::Open),
            "resolved" => Ok(FindingStatus::Resolved),
            other => Err(format!(
                "`{other}` is not a finding status (open, resolved)"
            )),
        }
    }
}

/// One finding: a Then step failing on a stack, from its first failing night on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingRecord {
    /// Finding id (UUID v7).
    pub id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// The Then step's name.
    pub step: String,
    /// The step owner's team slug, as of its latest judgement.
    pub owner: Option<String>,
    /// Open or resolved.
    pub status: FindingStatus,
    /// The first failing night of this opening (a re-opening starts again).
    pub first_failed_night: NaiveDate,
    /// The latest failing night.
    pub latest_failed_night: NaiveDate,
    /// The run of the latest failure.
    pub latest_failed_run: Uuid,
    /// Nights the step passed on since its latest failure.
    pub passing_nights: u32,
    /// The latest of those nights.
    pub last_passed_night: Option<NaiveDate>,
    /// When it was first opened, ever (the monthly report counts it as found then).
    pub first_opened_at: DateTime<Utc>,
    /// When this opening began (the re-opening, if re-opened).
    pub opened_at: DateTime<Utc>,
    /// When it resolved itself, while resolved (the monthly report counts it as fixed then).
    pub resolved_at: Option<DateTime<Utc>>,
    /// How many times it re-opened after resolving.
    pub reopened: u32,
    /// A ticket a person attached (URL).
    pub ticket_url: Option<String>,
    /// A person's note.
    pub note: Option<String>,
    /// Who set the ticket or the note last (the API caller's token name).
    pub annotated_by: Option<String>,
    /// When.
    pub annotated_at: Option<DateTime<Utc>>,
}

/// One judgement of a Then step on a planned night, as [`FindingRecord::after`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct NightJudgement<'a> {
    /// The run's night.
    pub night: NaiveDate,
    /// The run.
    pub run_id: Uuid,
    /// Passed (true) or failed.
    pub passed: bool,
    /// The step's owner.
    pub owner: Option<&'a str>,
    /// When the run ended.
    pub at: DateTime<Utc>,
}

impl FindingRecord {
    /// The finding of (`scenario`, `stack`, `step`) after `judgement`, given the finding so far
    /// (`existing`) and the passing nights that resolve it (`resolve_after`, ≥ 1). `None` when
    /// nothing changes (a pass with no open finding, a pass on a night already counted).
    pub fn after(
        existing: Option<&FindingRecord>,
        (scenario, stack, step): (&str, &str, &str),
        judgement: NightJudgement<'_>,
        resolve_after: u32,
    ) -> Option<FindingRecord> {
        let owner = judgement.owner.map(str::to_owned);
        match (existing, judgement.passed) {
            (None, true) => None,
            (None, false) => Some(FindingRecord {
                id: Uuid::now_v7(),
                scenario: scenario.to_owned(),
                stack: stack.to_owned(),
                step: step.to_owned(),
                owner,
                status: FindingStatus::Open,
                first_failed_night: judgement.night,
                latest_failed_night: judgement.night,
                latest_failed_run: judgement.run_id,
                passing_nights: 0,
                last_passed_night: None,
                first_opened_at: judgement.at,
                opened_at: judgement.at,
                resolved_at: None,
                reopened: 0,
                ticket_url: None,
                note: None,
                annotated_by: None,
                annotated_at: None,
            }),
            (Some(f), false) => {
                let mut f = f.clone();
                if f.status == FindingStatus::Resolved {
                    f.status = FindingStatus::Open;
                    f.first_failed_night = judgement.night;
                    f.opened_at = judgement.at;
                    f.resolved_at = None;
                    f.reopened += 1;
                }
                f.latest_failed_night = f.latest_failed_night.max(judgement.night);
                f.latest_failed_run = judgement.run_id;
                f.passing_nights = 0;
                f.last_passed_night = None;
                f.owner = owner;
                Some(f)
            }
            (Some(f), true) => {
                let counts = f.status == FindingStatus::Open
                    && judgement.night > f.latest_failed_night
                    && f.last_passed_night != Some(judgement.night);
                if !counts {
                    return None;
                }
                let mut f = f.clone();
                f.passing_nights += 1;
                f.last_passed_night = Some(judgement.night);
                f.owner = owner;
                if f.passing_nights >= resolve_after {
                    f.status = FindingStatus::Resolved;
                    f.resolved_at = Some(judgement.at);
                }
                Some(f)
            }
        }
    }
}

/// What a person attaches to a finding ([`Store::annotate_finding`]). A field left `None` stays
/// as it is; an empty string clears it.
#[derive(Debug, Clone, Default)]
pub struct FindingNote {
    /// A ticket URL.
    pub ticket_url: Option<String>,
    /// A note.
    pub note: Option<String>,
}

const FINDING_COLUMNS: &str = "id, scenario, stack, step, owner, status, first_failed_night, \
     latest_failed_night, latest_failed_run, passing_nights, last_passed_night, first_opened_at, \
     opened_at, resolved_at, reopened, ticket_url, note, annotated_by, annotated_at";

#[derive(sqlx::FromRow)]
struct FindingRow {
    id: String,
    scenario: String,
    stack: String,
    step: String,
    owner: Option<String>,
    status: String,
    first_failed_night: String,
    latest_failed_night: String,
    latest_failed_run: String,
    passing_nights: i64,
    last_passed_night: Option<String>,
    first_opened_at: i64,
    opened_at: i64,
    resolved_at: Option<i64>,
    reopened: i64,
    ticket_url: Option<String>,
    note: Option<String>,
    annotated_by: Option<String>,
    annotated_at: Option<i64>,
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "findings",
        message,
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl TryFrom<FindingRow> for FindingRecord {
    type Error = StoreError;
    fn try_from(row: FindingRow) -> Result<Self, StoreError> {
        Ok(FindingRecord {
            id: uuid_of_row("findings", &row.id)?,
            status: row.status.parse().map_err(corrupt)?,
            first_failed_night: night_of_text("findings", &row.first_failed_night)?,
            latest_failed_night: night_of_text("findings", &row.latest_failed_night)?,
            latest_failed_run: uuid_of_row("findings", &row.latest_failed_run)?,
            passing_nights: count(row.passing_nights),
            last_passed_night: night_of_row("findings", row.last_passed_night)?,
            first_opened_at: from_ms("findings", row.first_opened_at)?,
            opened_at: from_ms("findings", row.opened_at)?,
            resolved_at: row
                .resolved_at
                .map(|ms| from_ms("findings", ms))
                .transpose()?,
            reopened: count(row.reopened),
            annotated_at: row
                .annotated_at
                .map(|ms| from_ms("findings", ms))
                .transpose()?,
            scenario: row.scenario,
            stack: row.stack,
            step: row.step,
            owner: row.owner,
            ticket_url: row.ticket_url,
            note: row.note,
            annotated_by: row.annotated_by,
        })
    }
}

impl Store {
    /// Moves the findings of run `run_id`'s Then steps (see the module docs): each failed step
    /// opens or re-opens its finding, each passed step counts towards resolving an open one
    /// after `resolve_after` passing nights. Returns the findings that changed. Nothing for an
    /// ad-hoc run or a run without a result outcome.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run, [`StoreError::Query`],
    /// [`StoreError::Corrupt`].
    pub async fn record_findings(
        &self,
        run_id: Uuid,
        resolve_after: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        let run = self.run(run_id).await?.ok_or(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        })?;
        let judged = matches!(
            run.outcome(),
            Some(RunOutcome::Passed | RunOutcome::Failed | RunOutcome::Aborted)
        );
        let Some(night) = run.night.filter(|_| judged) else {
            return Ok(Vec::new());
        };
        let mut changed = Vec::new();
        for step in self.steps(run_id).await? {
            let passed = match (step.phase, step.verdict) {
                (Phase::Then, Some(Verdict::Passed)) => true,
                (Phase::Then, Some(Verdict::Failed)) => false,
                _ => continue,
            };
            let existing = self
                .finding_of(&run.scenario, &run.stack, &step.name)
                .await?;
            let judgement = NightJudgement {
                night,
                run_id,
                passed,
                owner: step.owner.as_deref(),
                at,
            };
            let key = (
                run.scenario.as_str(),
                run.stack.as_str(),
                step.name.as_str(),
            );
            if let Some(next) =
                FindingRecord::after(existing.as_ref(), key, judgement, resolve_after.max(1))
            {
                self.upsert_finding(&next).await?;
                changed.push(next);
            }
        }
        Ok(changed)
    }

    async fn finding_of(
        &self,
        scenario: &str,
        stack: &str,
        step: &str,
    ) -> Result<Option<FindingRecord>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE scenario = $1 AND stack = $2 AND step = $3"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, FindingRow>(&sql)
            .bind(scenario)
            .bind(stack)
            .bind(step)
            .fetch_optional(pool)
            .await
            .ctx("read a finding"))?;
        row.map(FindingRecord::try_from).transpose()
    }

    async fn upsert_finding(&self, f: &FindingRecord) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO findings (id, scenario, stack, step, owner, status, first_failed_night, \
             latest_failed_night, latest_failed_run, passing_nights, last_passed_night, \
             first_opened_at, opened_at, resolved_at, reopened) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (scenario, stack, step) DO UPDATE SET \
             owner = excluded.owner, status = excluded.status, \
             first_failed_night = excluded.first_failed_night, \
             latest_failed_night = excluded.latest_failed_night, \
             latest_failed_run = excluded.latest_failed_run, \
             passing_nights = excluded.passing_nights, \
             last_passed_night = excluded.last_passed_night, opened_at = excluded.opened_at, \
             resolved_at = excluded.resolved_at, reopened = excluded.reopened",
        )
        .bind(f.id.to_string())
        .bind(&f.scenario)
        .bind(&f.stack)
        .bind(&f.step)
        .bind(&f.owner)
        .bind(f.status.as_str())
        .bind(f.first_failed_night.to_string())
        .bind(f.latest_failed_night.to_string())
        .bind(f.latest_failed_run.to_string())
        .bind(i64::from(f.passing_nights))
        .bind(f.last_passed_night.map(|n| n.to_string()))
        .bind(to_ms(f.first_opened_at))
        .bind(to_ms(f.opened_at))
        .bind(f.resolved_at.map(to_ms))
        .bind(i64::from(f.reopened))
        .execute(pool)
        .await
        .map(drop)
        .ctx("write a finding"))
    }

    /// Every finding, or those with `status`: by owner, newest failing night first, then
    /// scenario, stack and step.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn findings(
        &self,
        status: Option<FindingStatus>,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        let order = "ORDER BY owner, latest_failed_night DESC, scenario, stack, step";
        let rows = match status {
            Some(status) => {
                let sql =
                    format!("SELECT {FINDING_COLUMNS} FROM findings WHERE status = $1 {order}");
                with_pool!(self, pool => sqlx::query_as::<_, FindingRow>(&sql)
                    .bind(status.as_str())
                    .fetch_all(pool)
                    .await
                    .ctx("list findings"))?
            }
            None => {
                let sql = format!("SELECT {FINDING_COLUMNS} FROM findings {order}");
                with_pool!(self, pool => sqlx::query_as::<_, FindingRow>(&sql)
                    .fetch_all(pool)
                    .await
                    .ctx("list findings"))?
            }
        };
        rows.into_iter().map(FindingRecord::try_from).collect()
    }

    /// The finding `id`, if any.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn finding(&self, id: Uuid) -> Result<Option<FindingRecord>, StoreError> {
        let sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE id = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, FindingRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .ctx("read a finding"))?;
        row.map(FindingRecord::try_from).transpose()
    }

    /// Attaches `note` (a ticket URL, a note) to finding `id` as `by` at `at`, and returns it;
    /// `None` when there is no such finding. The ticket and note survive re-openings.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn annotate_finding(
        &self,
        id: Uuid,
        note: &FindingNote,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<FindingRecord>, StoreError> {
        let Some(mut finding) = self.finding(id).await? else {
            return Ok(None);
        };
        let set = |given: &Option<String>, old: Option<String>| match given.as_deref() {
            None => old,
            Some("") => None,
            Some(text) => Some(text.to_owned()),
        };
        finding.ticket_url = set(&note.ticket_url, finding.ticket_url);
        finding.note = set(&note.note, finding.note);
        finding.annotated_by = Some(by.to_owned());
        finding.annotated_at = Some(at);
        with_pool!(self, pool => sqlx::query(
            "UPDATE findings SET ticket_url = $1, note = $2, annotated_by = $3, annotated_at = $4 \
             WHERE id = $5",
        )
        .bind(&finding.ticket_url)
        .bind(&finding.note)
        .bind(by)
        .bind(to_ms(at))
        .bind(id.to_string())
        .execute(pool)
        .await
        .map(drop)
        .ctx("annotate a finding"))?;
        Ok(Some(finding))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn judge(day: u32, passed: bool) -> NightJudgement<'static> {
        NightJudgement {
            night: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            run_id: Uuid::now_v7(),
            passed,
            owner: Some("payments"),
            at: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(),
        }
    }

    /// The finding after a sequence of (night, passed) judgements, resolving after 2 nights.
    fn walk(judgements: &[(u32, bool)]) -> Option<FindingRecord> {
        let key = (
            "gcp-failover-validation",
            "uat-beta",
            "latency p99 < 250 ms",
        );
        let mut finding: Option<FindingRecord> = None;
        for &(day, passed) in judgements {
            if let Some(next) = FindingRecord::after(finding.as_ref(), key, judge(day, passed), 2) {
                finding = Some(next);
            }
        }
        finding
    }

    #[test]
    fn a_failure_opens_a_finding_and_passing_nights_resolve_it() {
        assert_eq!(
            walk(&[(1, true), (2, true)]),
            None,
            "no failure, no finding"
        );
        let open = walk(&[(1, true), (2, false), (3, false)]).unwrap();
        assert_eq!(open.status, FindingStatus::Open);
        assert_eq!(open.first_failed_night.to_string(), "2026-11-02");
        assert_eq!(open.latest_failed_night.to_string(), "2026-11-03");
        // One passing night is not enough; two are.
        let once = walk(&[(2, false), (3, true)]).unwrap();
        assert_eq!((once.status, once.passing_nights), (FindingStatus::Open, 1));
        let fixed = walk(&[(2, false), (3, true), (4, true)]).unwrap();
        assert_eq!(fixed.status, FindingStatus::Resolved);
        assert_eq!(
            fixed.resolved_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 4, 3, 0, 0).unwrap())
        );
        // Two passes on one night count once; a failure in between starts again.
        assert_eq!(
            walk(&[(2, false), (3, true), (3, true)]).unwrap().status,
            FindingStatus::Open
        );
        let again = walk(&[(2, false), (3, true), (4, false), (5, true)]).unwrap();
        assert_eq!(
            (again.status, again.passing_nights),
            (FindingStatus::Open, 1)
        );
        // A pass later on the failing night does not count.
        assert_eq!(
            walk(&[(2, false), (2, true), (3, true)])
                .unwrap()
                .passing_nights,
            1
        );
    }

    #[test]
    fn a_resolved_finding_reopens_on_the_next_failure() {
        let reopened = walk(&[(2, false), (3, true), (4, true), (9, false)]).unwrap();
        assert_eq!(reopened.status, FindingStatus::Open);
        assert_eq!(reopened.reopened, 1);
        assert_eq!(reopened.first_failed_night.to_string(), "2026-11-09");
        assert_eq!(reopened.resolved_at, None);
        assert_eq!(
            reopened.first_opened_at,
            Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap(),
            "found when first opened"
        );
    }
}
