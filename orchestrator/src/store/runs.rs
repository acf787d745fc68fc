//! Runs: create, heartbeat, finish, look up (by id or id prefix), list and history.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::{NewNotification, NewRun, OutboxStatus, RunFilter, RunRecord};
use super::rows::{RUN_COLUMNS, RunRow, convert_all};
use super::{Store, StoreError, to_ms, with_pool};
use crate::model::{RunOutcome, RunStatus};

/// At most this many matches are reported for an ambiguous id prefix.
const AMBIGUOUS_MATCHES: usize = 10;

impl Store {
    /// Records a new run with status `running` (its first heartbeat is `started_at`).
    ///
    /// # Errors
    /// [`StoreError::Query`], e.g. when a run with this id exists.
    pub async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let started_at = to_ms(run.started_at);
        let night = run.night.map(|night| night.format("%Y-%m-%d").to_string());
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO runs (id, scenario, stack, triggered_via, started_by, status, started_at, \
             heartbeat_at, pid, host, scenario_digest, night) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)",
        )
        .bind(run.id.to_string())
        .bind(&run.scenario)
        .bind(&run.stack)
        .bind(&run.trigger)
        .bind(&run.started_by)
        .bind(RunStatus::Running.as_str())
        .bind(started_at)
        .bind(i64::from(run.pid))
        .bind(&run.host)
        .bind(&run.scenario_digest)
        .bind(&night)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("create run"))?;
        Ok(())
    }

    /// Records that the run's owner is alive at `at`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such run; [`StoreError::Query`].
    pub async fn heartbeat_run(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE runs SET heartbeat_at = $2 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(to_ms(at))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("record run heartbeat"))?;
        if done == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Moves a `running` run to its outcome with its summary document.
    /// The end instant is also the last heartbeat. Same as [`Store::finish_run_with_outbox`]
    /// with no notifications.
    ///
    /// # Errors
    /// As [`Store::finish_run_with_outbox`].
    pub async fn finish_run(
        &self,
        id: Uuid,
        outcome: RunOutcome,
        ended_at: DateTime<Utc>,
        summary: &Value,
    ) -> Result<(), StoreError> {
        self.finish_run_with_outbox(id, outcome, ended_at, summary, &[])
            .await
            .map(drop)
    }

    /// Moves a `running` run to its outcome with its summary document
    /// and queues its notifications in the outbox (pending, due at `ended_at`) — in one
    /// transaction: either the outcome and every notification are stored, or none of them.
    /// The end instant is also the last heartbeat. Returns the outbox ids in `notifications`
    /// order.
    ///
    /// # Errors
    /// [`StoreError::NotFound`],
    /// [`StoreError::RunNotRunning`] if it already has an outcome (e.g. the start-up sweep marked
    /// it `interrupted`; nothing is queued then), [`StoreError::Query`] (nothing is stored).
    pub async fn finish_run_with_outbox(
        &self,
        id: Uuid,
        outcome: RunOutcome,
        ended_at: DateTime<Utc>,
        summary: &Value,
        notifications: &[NewNotification],
    ) -> Result<Vec<i64>, StoreError> {
        let ended_at = to_ms(ended_at);
        let queued = with_pool!(self, pool => {
            let mut tx = pool.begin().await.ctx("begin finishing the run")?;
            let done = sqlx::query(
                "UPDATE runs SET status = $2, ended_at = $3, heartbeat_at = $3, summary = $4 \
                 WHERE id = $1 AND status = $5",
            )
            .bind(id.to_string())
            .bind(outcome.as_str())
            .bind(ended_at)
            .bind(Json(summary))
            .bind(RunStatus::Running.as_str())
            .execute(&mut *tx)
            .await
            .ctx("finish run")?
            .rows_affected();
            if done == 0 {
                None // dropping `tx` rolls back
            } else {
                let mut ids = Vec::with_capacity(notifications.len());
                for n in notifications {
                    let outbox_id = sqlx::query_scalar::<_, i64>(
                        "INSERT INTO outbox (run_id, team, kind, payload, status, attempts, \
                         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6) \
                         RETURNING id",
                    )
                    .bind(id.to_string())
                    .bind(&n.team)
                    .bind(n.kind.stored_name())
                    .bind(Json(&n.payload))
                    .bind(OutboxStatus::Pending.as_str())
                    .bind(ended_at)
                    .fetch_one(&mut *tx)
                    .await
                    .ctx("queue notification")?;
                    ids.push(outbox_id);
                }
                tx.commit().await.ctx("commit the run's outcome and notifications")?;
                Some(ids)
            }
        });
        match queued {
            Some(ids) => Ok(ids),
            None => match self.run(id).await? {
                None => Err(not_found(id)),
                Some(run) => Err(StoreError::RunNotRunning {
                    id,
                    status: run.status,
                }),
            },
        }
    }

    /// The run with this id, if any.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn run(&self, id: Uuid) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, RunRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .ctx("read run"))?;
        row.map(RunRecord::try_from).transpose()
    }

    /// The run whose id starts with `prefix` (hex digits, hyphens optional, any case), for
    /// `f3-chaos results 0193ab…`. UUID v7 ids start with their creation time, so runs close in
    /// time share long prefixes: about 12 hex digits tell runs of one night apart.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a prefix that is empty, too long or not hex;
    /// [`StoreError::AmbiguousRunId`] when several runs match; [`StoreError::Query`].
    pub async fn find_run(&self, prefix: &str) -> Result<Option<RunRecord>, StoreError> {
        let low = normalize_id_prefix(prefix)?;
        // Every id with this prefix sorts in [low, low + "~"): ids use only '0'-'9', 'a'-'f' and
        // '-', all below '~', and both backends compare ids bytewise (PostgreSQL: COLLATE "C").
        let high = format!("{low}~");
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id >= $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let limit = i64::try_from(AMBIGUOUS_MATCHES + 1).unwrap_or(i64::MAX);
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RunRow>(&sql)
            .bind(&low)
            .bind(&high)
            .bind(limit)
            .fetch_all(pool)
            .await
            .ctx("find run by id prefix"))?;
        let mut runs: Vec<RunRecord> = convert_all(rows)?;
        match runs.len() {
            0 => Ok(None),
            1 => Ok(runs.pop()),
            _ => Err(StoreError::AmbiguousRunId {
                prefix: prefix.to_owned(),
                matches: runs
                    .into_iter()
                    .take(AMBIGUOUS_MATCHES)
                    .map(|run| run.id)
                    .collect(),
            }),
        }
    }

    /// The runs of night `night` — the one definition the digest, `f3-chaos results --night` and
    /// the dashboard's night page share: every run the daemon planned for that night, and every
    /// other run (CLI, API, CI gate) that started inside its window `[start, end)`. Oldest first.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn runs_of_night(
        &self,
        night: chrono::NaiveDate,
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<RunRecord>, StoreError> {
        let planned = self
            .runs(&RunFilter {
                night: Some(night),
                ..RunFilter::default()
            })
            .await?;
        let in_window = self
            .runs(&RunFilter {
                since: Some(window.0),
                until: Some(window.1),
                ..RunFilter::default()
            })
            .await?;
        let mut runs: std::collections::BTreeMap<Uuid, RunRecord> =
            planned.into_iter().map(|run| (run.id, run)).collect();
        for run in in_window.into_iter().filter(|r| r.night.is_none()) {
            runs.insert(run.id, run);
        }
        let mut runs: Vec<RunRecord> = runs.into_values().collect();
        runs.sort_by_key(|r| (r.started_at, r.id));
        Ok(runs)
    }

    /// Runs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs");
        let mut binds: Vec<Bind> = Vec::new();
        let mut clause = |column: &str, op: &str, value: Bind| {
            binds.push(value);
            let keyword = if binds.len() == 1 { "WHERE" } else { "AND" };
            sql.push_str(&format!(" {keyword} {column} {op} ${}", binds.len()));
        };
        if let Some(scenario) = &filter.scenario {
            clause("scenario", "=", Bind::Text(scenario.clone()));
        }
        if let Some(stack) = &filter.stack {
            clause("stack", "=", Bind::Text(stack.clone()));
        }
        if let Some(outcome) = &filter.outcome {
            clause("status", "=", Bind::Text(outcome.as_str().to_owned()));
        }
        if let Some(night) = filter.night {
            clause(
                "night",
                "=",
                Bind::Text(night.format("%Y-%m-%d").to_string()),
            );
        }
        if let Some(since) = filter.since {
            clause("started_at", ">=", Bind::Int(to_ms(since)));
        }
        if let Some(until) = filter.until {
            clause("started_at", "<", Bind::Int(to_ms(until)));
        }
        sql.push_str(" ORDER BY started_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            binds.push(Bind::Int(i64::from(limit)));
            sql.push_str(&format!(" LIMIT ${}", binds.len()));
        }
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, RunRow>(&sql);
            for bind in &binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_str()),
                    Bind::Int(int) => query.bind(*int),
                };
            }
            query.fetch_all(pool).await.ctx("list runs")
        })?;
        convert_all(rows)
    }

    /// The runs with these ids (unknown ids are left out), in no particular order. One query.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn runs_by_id(&self, ids: &[Uuid]) -> Result<Vec<RunRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({})",
            placeholders.join(", ")
        );
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, RunRow>(&sql);
            for id in ids {
                query = query.bind(id.to_string());
            }
            query.fetch_all(pool).await.ctx("read runs by id")
        })?;
        convert_all(rows)
    }

    /// Every run still `running`, oldest first (the start-up sweep judges each with
    /// [`RunRecord::is_alive_locally`] or its heartbeat).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = $1 ORDER BY started_at ASC, id ASC"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RunRow>(&sql)
            .bind(RunStatus::Running.as_str())
            .fetch_all(pool)
            .await
            .ctx("list running runs"))?;
        convert_all(rows)
    }

    /// Every run started at or after `since`, oldest first, running ones included — the
    /// planner's input for learned durations (finished runs) and staleness (last start per
    /// scenario × stack).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn history(&self, since: DateTime<Utc>) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE started_at >= $1 ORDER BY started_at ASC, id ASC"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RunRow>(&sql)
            .bind(to_ms(since))
            .fetch_all(pool)
            .await
            .ctx("read run history"))?;
        convert_all(rows)
    }
}

/// A value bound to a dynamically built query.
enum Bind {
    Text(String),
    Int(i64),
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        what: "run",
        id: id.to_string(),
    }
}

/// Turns a user-typed id prefix (`0193AB12CD34`, `0193ab12-cd34`) into the stored form's prefix
/// (lowercase, hyphens at positions 8, 12, 16 and 20 of the hex digits).
pub(crate) fn normalize_id_prefix(prefix: &str) -> Result<String, StoreError> {
    let invalid = |message: &str| StoreError::Invalid {
        field: "run id prefix",
        message: format!("{prefix:?} {message}"),
    };
    let hex: String = prefix
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.is_empty() {
        return Err(invalid("is empty"));
    }
    if hex.len() > 32 {
        return Err(invalid("is longer than a UUID"));
    }
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("is not hexadecimal"));
    }
    let mut out = String::with_capacity(36);
    for (i, c) in hex.chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    Ok(out)
}
