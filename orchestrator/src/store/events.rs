//! A run's durable event log and its steps (with evidence).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::{EventRecord, StepRecord};
use super::rows::{EventRow, StepRow, convert_all};
use super::{Store, StoreError, to_ms, with_pool};
use crate::model::Verdict;

impl Store {
    /// Appends an event to the run's log and returns its `seq` (1 for the first event of a run,
    /// then 2, 3, …). Events are read back in `seq` order.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run; [`StoreError::Query`].
    pub async fn append_event(
        &self,
        run_id: Uuid,
        at: DateTime<Utc>,
        kind: &str,
        payload: &Value,
    ) -> Result<i64, StoreError> {
        let run = run_id.to_string();
        let at = to_ms(at);
        // Bumping the run's counter first takes the run row's write lock (PostgreSQL) or the
        // database write lock (SQLite) before anything is read, so concurrent appends to one run
        // queue up instead of colliding on `seq`.
        let seq = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let seq: Option<i64> = sqlx::query_scalar(
                "UPDATE runs SET last_event_seq = last_event_seq + 1 WHERE id = $1 \
                 RETURNING last_event_seq",
            )
            .bind(&run)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(seq) = seq else {
                return Ok(None);
            };
            sqlx::query(
                "INSERT INTO events (run_id, seq, at, kind, payload) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&run)
            .bind(seq)
            .bind(at)
            .bind(kind)
            .bind(Json(payload))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(seq))
        }
        .await
        .ctx("append run event"))?;
        seq.ok_or_else(|| StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        })
    }

    /// The run's events in `seq` order (empty for an unknown run).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn events(&self, run_id: Uuid) -> Result<Vec<EventRecord>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, EventRow>(
            "SELECT run_id, seq, at, kind, payload FROM events WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id.to_string())
        .fetch_all(pool)
        .await
        .ctx("read run events"))?;
        convert_all(rows)
    }

    /// Inserts the step, or replaces every field of the run's step with the same `index`.
    ///
    /// # Errors
    /// [`StoreError::Query`] (also when the run does not exist: foreign key).
    pub async fn upsert_step(&self, run_id: Uuid, step: &StepRecord) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO steps (run_id, step_index, phase, name, owner, verdict, started_at, \
             ended_at, observed, threshold, evidence, message) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (run_id, step_index) DO UPDATE SET \
             phase = excluded.phase, name = excluded.name, owner = excluded.owner, \
             verdict = excluded.verdict, started_at = excluded.started_at, \
             ended_at = excluded.ended_at, observed = excluded.observed, \
             threshold = excluded.threshold, evidence = excluded.evidence, \
             message = excluded.message",
        )
        .bind(run_id.to_string())
        .bind(step.index)
        .bind(step.phase.as_str())
        .bind(&step.name)
        .bind(&step.owner)
        .bind(step.verdict.map(|v| v.as_str()))
        .bind(to_ms(step.started_at))
        .bind(step.ended_at.map(to_ms))
        .bind(step.observed)
        .bind(step.threshold)
        .bind(step.evidence.as_ref().map(Json))
        .bind(&step.message)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("record step"))?;
        Ok(())
    }

    /// The run's steps by index (empty for an unknown run).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn steps(&self, run_id: Uuid) -> Result<Vec<StepRecord>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, StepRow>(
            "SELECT step_index, phase, name, owner, verdict, started_at, ended_at, observed, \
             threshold, evidence, message FROM steps WHERE run_id = $1 ORDER BY step_index",
        )
        .bind(run_id.to_string())
        .fetch_all(pool)
        .await
        .ctx("read run steps"))?;
        convert_all(rows)
    }

    /// Steps owned by `team` whose verdict is one of `verdicts` and that started at or after
    /// `since`, newest first, at most `limit`; each with the id of its run. The evidence is cut
    /// to its `op` and `unit` (`{"op": "<", "unit": "s"}`, what [`StepRecord::comparison`]
    /// needs): this feeds lists, not graphs. Uses the `steps_owner_verdict_started` index, so it
    /// stays fast over a year of history.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn team_steps(
        &self,
        team: &str,
        verdicts: &[Verdict],
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(Uuid, StepRecord)>, StoreError> {
        if verdicts.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> =
            (0..verdicts.len()).map(|i| format!("${}", i + 4)).collect();
        let evidence = self.evidence_comparison_sql();
        let sql = format!(
            "SELECT run_id, step_index, phase, name, owner, verdict, started_at, ended_at, \
             observed, threshold, {evidence} AS evidence, message FROM steps \
             WHERE owner = $1 AND started_at >= $2 AND verdict IN ({}) \
             ORDER BY started_at DESC, run_id DESC LIMIT $3",
            placeholders.join(", ")
        );
        let rows = with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, TeamStepRow>(&sql)
                .bind(team)
                .bind(to_ms(since))
                .bind(i64::from(limit));
            for verdict in verdicts {
                query = query.bind(verdict.as_str());
            }
            query.fetch_all(pool).await.ctx("read a team's steps")
        })?;
        rows.into_iter()
            .map(|row| {
                let id = Uuid::parse_str(&row.run_id).map_err(|_| StoreError::Corrupt {
                    table: "steps",
                    message: format!("run id {:?} is not a UUID", row.run_id),
                })?;
                Ok((id, StepRecord::try_from(row.step)?))
            })
            .collect()
    }
}

impl Store {
    /// The SQL expression that cuts a step's `evidence` to `{"op": …, "unit": …}` (what
    /// [`StepRecord::comparison`] needs) in this store's dialect: lists read it, not the series.
    pub(super) fn evidence_comparison_sql(&self) -> &'static str {
        match self.backend {
            super::Backend::Postgres(_) => {
                "jsonb_build_object('op', evidence->'op', 'unit', evidence->'unit')"
            }
            super::Backend::Sqlite(_) => {
                "json_object('op', json_extract(evidence, '$.op'), 'unit', json_extract(evidence, '$.unit'))"
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct TeamStepRow {
    run_id: String,
    #[sqlx(flatten)]
    step: StepRow,
}
