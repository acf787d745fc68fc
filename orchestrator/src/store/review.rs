//! Reads for the morning review (the dashboard's index, night and list pages): light rows over
//! many runs, never their evidence series.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::error::QueryContext;
use super::model::StepRecord;
use super::rows::StepRow;
use super::{Store, StoreError, from_ms, to_ms, with_pool};
use crate::model::{RunStatus, Verdict};

/// One run, as the list pages count it: where and when, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBrief {
    /// Run id.
    pub id: Uuid,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// The chaos night of a planned run; `None` for ad-hoc runs (their night is the window they
    /// started in, [`crate::plan::NightCalendar::night_of`]).
    pub night: Option<NaiveDate>,
    /// `running` or the outcome.
    pub status: RunStatus,
    /// Start instant.
    pub started_at: DateTime<Utc>,
}

/// The runs of one (scenario, stack, status) since an instant ([`Store::run_groups`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunGroup {
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// `running` or the outcome.
    pub status: RunStatus,
    /// Runs since the groups' `since`.
    pub runs: u64,
    /// Of those, runs since the groups' `recent_since`.
    pub recent: u64,
    /// The latest start among them.
    pub last_started_at: DateTime<Utc>,
}

/// The planned runs of one (night, stack, status) ([`Store::night_groups`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NightGroup {
    /// The chaos night.
    pub night: NaiveDate,
    /// Stack name.
    pub stack: String,
    /// `running` or the outcome.
    pub status: RunStatus,
    /// How many.
    pub runs: u64,
}

/// One earlier judgement of a Then step on a stack ([`Store::step_history`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepJudgement {
    /// The night of its run (`None` for an ad-hoc run).
    pub night: Option<NaiveDate>,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// `passed` or `failed` (other verdicts judge nothing and are left out).
    pub verdict: Verdict,
}

#[derive(sqlx::FromRow)]
struct BriefRow {
    id: String,
    scenario: String,
    stack: String,
    night: Option<String>,
    status: String,
    started_at: i64,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    scenario: String,
    stack: String,
    status: String,
    runs: i64,
    recent: i64,
    last_started_at: i64,
}

#[derive(sqlx::FromRow)]
struct NightGroupRow {
    night: Option<String>,
    stack: String,
    status: String,
    runs: i64,
}

#[derive(sqlx::FromRow)]
struct JudgementRow {
    night: Option<String>,
    started_at: i64,
    verdict: String,
}

#[derive(sqlx::FromRow)]
struct RunStepRow {
    run_id: String,
    #[sqlx(flatten)]
    step: StepRow,
}

pub(super) fn night_of_row(
    table: &'static str,
    night: Option<String>,
) -> Result<Option<NaiveDate>, StoreError> {
    night.map(|n| night_of_text(table, &n)).transpose()
}

/// A stored `YYYY-MM-DD` night.
pub(super) fn night_of_text(table: &'static str, night: &str) -> Result<NaiveDate, StoreError> {
    night.parse::<NaiveDate>().map_err(|_| StoreError::Corrupt {
        table,
        message: format!("night {night:?} is not a YYYY-MM-DD date"),
    })
}

fn status_of_row(status: &str) -> Result<RunStatus, StoreError> {
    status.parse().map_err(|_| StoreError::Corrupt {
        table: "runs",
        message: format!("status {status:?} is not a run status"),
    })
}

/// A count as read from the store (`COUNT(*)` is a signed 64-bit integer on both backends).
fn count_of_row(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn brief_of_row(row: BriefRow) -> Result<RunBrief, StoreError> {
    Ok(RunBrief {
        id: uuid_of_row("runs", &row.id)?,
        status: status_of_row(&row.status)?,
        night: night_of_row("runs", row.night)?,
        started_at: from_ms("runs", row.started_at)?,
        scenario: row.scenario,
        stack: row.stack,
    })
}

pub(super) fn uuid_of_row(table: &'static str, id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(id).map_err(|_| StoreError::Corrupt {
        table,
        message: format!("id {id:?} is not a UUID"),
    })
}

impl Store {
    /// Every run started at or after `since`, as [`RunBrief`]s, newest first. One query over
    /// the `runs_started_brief` index; no summary, no steps.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn run_briefs(&self, since: DateTime<Utc>) -> Result<Vec<RunBrief>, StoreError> {
        self.briefs_where("started_at >= $1", since).await
    }

    /// The ad-hoc runs (no planned night) started at or after `since`, as [`RunBrief`]s,
    /// newest first.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn ad_hoc_run_briefs(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RunBrief>, StoreError> {
        self.briefs_where("started_at >= $1 AND night IS NULL", since)
            .await
    }

    /// The runs on `stack` started at or after `since`, as [`RunBrief`]s, newest first (the
    /// dashboard's stack page). One query over the `runs_stack_started` index.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn stack_run_briefs(
        &self,
        stack: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RunBrief>, StoreError> {
        self.briefs_where_stack("started_at >= $1 AND stack = $2", since, Some(stack))
            .await
    }

    async fn briefs_where(
        &self,
        condition: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RunBrief>, StoreError> {
        self.briefs_where_stack(condition, since, None).await
    }

    /// The briefs matching `condition` over `$1` = `since` and, when given, `$2` = `stack`.
    async fn briefs_where_stack(
        &self,
        condition: &str,
        since: DateTime<Utc>,
        stack: Option<&str>,
    ) -> Result<Vec<RunBrief>, StoreError> {
        let sql = format!(
            "SELECT id, scenario, stack, night, status, started_at FROM runs \
             WHERE {condition} ORDER BY started_at DESC, id DESC"
        );
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, BriefRow>(&sql).bind(to_ms(since));
            if let Some(stack) = stack {
                query = query.bind(stack);
            }
            query.fetch_all(pool).await.ctx("list runs in brief")
        })?;
        rows.into_iter().map(brief_of_row).collect()
    }

    /// The runs that started at one of `instants`, as [`RunBrief`]s, newest first: how the
    /// list pages find the run behind a [`RunGroup::last_started_at`]. One query.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn run_briefs_started_at(
        &self,
        instants: &[DateTime<Utc>],
    ) -> Result<Vec<RunBrief>, StoreError> {
        if instants.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=instants.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, scenario, stack, night, status, started_at FROM runs \
             WHERE started_at IN ({}) ORDER BY started_at DESC, id DESC",
            marks.join(", ")
        );
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, BriefRow>(&sql);
            for at in instants {
                query = query.bind(to_ms(*at));
            }
            query.fetch_all(pool).await.ctx("list runs by start")
        })?;
        rows.into_iter().map(brief_of_row).collect()
    }

    /// The runs started at or after `since`, counted per (scenario, stack, status), with how
    /// many of them started at or after `recent_since` and the latest start of each group. In
    /// scenario, stack, status order. One aggregate over the `runs_started_brief` index (the
    /// runs' rows are not read).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn run_groups(
        &self,
        since: DateTime<Utc>,
        recent_since: DateTime<Utc>,
    ) -> Result<Vec<RunGroup>, StoreError> {
        let sql = format!(
            "SELECT scenario, stack, status, COUNT(*) AS runs, \
             COUNT(CASE WHEN started_at >= $2 THEN 1 END) AS recent, \
             MAX(started_at) AS last_started_at FROM runs {} \
             WHERE started_at >= $1 GROUP BY scenario, stack, status \
             ORDER BY scenario, stack, status",
            self.brief_index_hint()
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(&sql)
        .bind(to_ms(since))
        .bind(to_ms(recent_since))
        .fetch_all(pool)
        .await
        .ctx("count runs per scenario and stack"))?;
        rows.into_iter()
            .map(|row| {
                Ok(RunGroup {
                    status: status_of_row(&row.status)?,
                    runs: count_of_row(row.runs),
                    recent: count_of_row(row.recent),
                    last_started_at: from_ms("runs", row.last_started_at)?,
                    scenario: row.scenario,
                    stack: row.stack,
                })
            })
            .collect()
    }

    /// The planned runs (with a night) started at or after `since`, counted per (night,
    /// stack, status), newest night first. Ad-hoc runs are [`Store::ad_hoc_run_briefs`]. One
    /// aggregate over the `runs_started_brief` index.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn night_groups(&self, since: DateTime<Utc>) -> Result<Vec<NightGroup>, StoreError> {
        // Ad-hoc runs form a group of their own (no night), left out below: a `night IS NOT
        // NULL` condition would steer SQLite to the partial `runs_night_stack` index and
        // through every run ever.
        let sql = format!(
            "SELECT night, stack, status, COUNT(*) AS runs FROM runs {} \
             WHERE started_at >= $1 GROUP BY night, stack, status \
             ORDER BY night DESC, stack, status",
            self.brief_index_hint()
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, NightGroupRow>(&sql)
        .bind(to_ms(since))
        .fetch_all(pool)
        .await
        .ctx("count runs per night and stack"))?;
        rows.into_iter()
            .filter_map(|row| Some((night_of_row("runs", row.night.clone()).transpose()?, row)))
            .map(|(night, row)| {
                Ok(NightGroup {
                    night: night?,
                    status: status_of_row(&row.status)?,
                    runs: count_of_row(row.runs),
                    stack: row.stack,
                })
            })
            .collect()
    }

    /// How the list counts read the runs: on SQLite, through the covering index by name (its
    /// planner otherwise skip-scans `runs_scenario_started` and reads every run's row, 3× slower
    /// over 90 days); PostgreSQL's planner finds it alone.
    fn brief_index_hint(&self) -> &'static str {
        match self.backend {
            super::Backend::Sqlite(_) => "INDEXED BY runs_started_brief",
            super::Backend::Postgres(_) => "",
        }
    }

    /// The Then steps of runs `run_ids` whose verdict is one of `verdicts`, with the id of their
    /// run, in run then step order. The evidence is cut to its `op` and `unit`, as in
    /// [`Store::team_steps`]. One query.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn then_steps_of_runs(
        &self,
        run_ids: &[Uuid],
        verdicts: &[Verdict],
    ) -> Result<Vec<(Uuid, StepRecord)>, StoreError> {
        if run_ids.is_empty() || verdicts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = (1..=run_ids.len()).map(|i| format!("${i}")).collect();
        let verdict_marks: Vec<String> = (0..verdicts.len())
            .map(|i| format!("${}", run_ids.len() + i + 1))
            .collect();
        let evidence = self.evidence_comparison_sql();
        let sql = format!(
            "SELECT run_id, step_index, phase, name, owner, verdict, started_at, ended_at, \
             observed, threshold, {evidence} AS evidence, message FROM steps \
             WHERE run_id IN ({}) AND phase = 'then' AND verdict IN ({}) \
             ORDER BY run_id, step_index",
            ids.join(", "),
            verdict_marks.join(", ")
        );
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, RunStepRow>(&sql);
            for id in run_ids {
                query = query.bind(id.to_string());
            }
            for verdict in verdicts {
                query = query.bind(verdict.as_str());
            }
            query.fetch_all(pool).await.ctx("read the Then steps of runs")
        })?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    uuid_of_row("steps", &row.run_id)?,
                    StepRecord::try_from(row.step)?,
                ))
            })
            .collect()
    }

    /// The last `limit` judgements (`passed` or `failed`) of Then step `step` of `scenario` on
    /// `stack` that started before `before`, newest first: the history that says whether a
    /// failure is new, a regression or a flake. Uses `runs_scenario_started`, then the steps'
    /// primary key.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn step_history(
        &self,
        scenario: &str,
        stack: &str,
        step: &str,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StepJudgement>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, JudgementRow>(
            "SELECT r.night AS night, s.started_at AS started_at, s.verdict AS verdict \
             FROM runs r JOIN steps s ON s.run_id = r.id \
             WHERE r.scenario = $1 AND r.stack = $2 AND r.started_at < $4 \
               AND s.phase = 'then' AND s.name = $3 AND s.verdict IN ('passed', 'failed') \
             ORDER BY r.started_at DESC, r.id DESC LIMIT $5",
        )
        .bind(scenario)
        .bind(stack)
        .bind(step)
        .bind(to_ms(before))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .ctx("read a step's history"))?;
        rows.into_iter()
            .map(|row| {
                Ok(StepJudgement {
                    night: night_of_row("runs", row.night)?,
                    started_at: from_ms("steps", row.started_at)?,
                    verdict: row.verdict.parse().map_err(|_| StoreError::Corrupt {
                        table: "steps",
                        message: format!("verdict {:?} is not a verdict", row.verdict),
                    })?,
                })
            })
            .collect()
    }
}
