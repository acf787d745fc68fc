//! The daemon's plans of each night: every plan and re-plan is kept (newest last), so the morning
//! dashboard shows what was planned, what was skipped and why, and how the plan changed.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::error::QueryContext;
use super::{Store, StoreError, from_ms, to_ms, with_pool};

/// One stored plan of a night.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPlan {
    /// The night (local date on which the window starts).
    pub night: NaiveDate,
    /// When the plan was made, UTC.
    pub created_at: DateTime<Utc>,
    /// Why: `initial`, `overrun`, `ended-early`, `given-failed`, `stack-busy`, `reservation`,
    /// `takeover`, … (the daemon journal's words).
    pub reason: String,
    /// The planner's `Plan` as JSON (see `plan::render::json`): `night`, `window`, `slots`,
    /// `skipped` (with `reason` and `code`), `objective`.
    pub plan: Value,
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    night: String,
    created_at: i64,
    reason: String,
    plan: Json<Value>,
}

impl TryFrom<PlanRow> for StoredPlan {
    type Error = StoreError;

    fn try_from(row: PlanRow) -> Result<Self, StoreError> {
        const T: &str = "night_plans";
        Ok(StoredPlan {
            night: parse_night(&row.night)?,
            created_at: from_ms(T, row.created_at)?,
            reason: row.reason,
            plan: row.plan.0,
        })
    }
}

/// A stored night (`YYYY-MM-DD`).
fn parse_night(text: &str) -> Result<NaiveDate, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        table: "night_plans",
        message: format!("night `{text}` is not a date"),
    })
}

impl Store {
    /// Appends a plan of `night` made at `at` for `reason`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn save_plan(
        &self,
        night: NaiveDate,
        at: DateTime<Utc>,
        reason: &str,
        plan: &Value,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO night_plans (night, created_at, reason, plan) VALUES ($1, $2, $3, $4)",
        )
        .bind(night.to_string())
        .bind(to_ms(at))
        .bind(reason)
        .bind(Json(plan))
        .execute(pool)
        .await
        .map(|_| ())
        .ctx("save night plan"))
    }

    /// Every plan of `night`, oldest first (empty when the daemon did not plan it).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn plans(&self, night: NaiveDate) -> Result<Vec<StoredPlan>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, PlanRow>(
            "SELECT night, created_at, reason, plan FROM night_plans WHERE night = $1 ORDER BY id",
        )
        .bind(night.to_string())
        .fetch_all(pool)
        .await
        .ctx("read night plans"))?;
        rows.into_iter().map(StoredPlan::try_from).collect()
    }

    /// The newest plan of `night`, if any.
    ///
    /// # Errors
    /// As [`Store::plans`].
    pub async fn latest_plan(&self, night: NaiveDate) -> Result<Option<StoredPlan>, StoreError> {
        Ok(self.latest_plans(night, night).await?.pop())
    }

    /// The newest plan of every night from `first` to `last` (inclusive), oldest night first;
    /// nights the daemon did not plan are absent. One query, for the scenario page's planned
    /// durations over many nights.
    ///
    /// # Errors
    /// As [`Store::plans`].
    pub async fn latest_plans(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<StoredPlan>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, PlanRow>(
            "SELECT night, created_at, reason, plan FROM night_plans WHERE id IN \
             (SELECT MAX(id) FROM night_plans WHERE night >= $1 AND night <= $2 GROUP BY night) \
             ORDER BY night",
        )
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(pool)
        .await
        .ctx("read latest night plans"))?;
        rows.into_iter().map(StoredPlan::try_from).collect()
    }

    /// Like [`Store::latest_plans`] but each plan as JSON text (`CAST(plan AS TEXT)` on both
    /// backends) with its night, so a caller that needs a few fields of many plans can parse
    /// them lazily instead of building a `serde_json::Value` of every slot.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`] for a night that is not a date.
    pub async fn latest_plan_texts(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(NaiveDate, String)>, StoreError> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT night, CAST(plan AS TEXT) FROM night_plans WHERE id IN \
             (SELECT MAX(id) FROM night_plans WHERE night >= $1 AND night <= $2 GROUP BY night) \
             ORDER BY night",
        )
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(pool)
        .await
        .ctx("read latest night plans"))?;
        rows.into_iter()
            .map(|(night, plan)| Ok((parse_night(&night)?, plan)))
            .collect()
    }
}
