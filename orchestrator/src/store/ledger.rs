//! The fault ledger: every fault is recorded before injection, moved through
//! `pending → injected → reverted | revert-failed`, and swept on start-up (entries still open
//! whose run is dead get reverted).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::QueryContext;
use super::model::{LedgerEntry, LedgerState};
use super::rows::{LedgerRow, convert_all};
use super::{Store, StoreError, to_ms, with_pool};

const LEDGER_COLUMNS: &str = "id, run_id, stack, driver, step_name, spec, handle, state, \
     created_at, expires_at, updated_at";

impl Store {
    /// Records a fault about to be injected (normally with state `pending`).
    ///
    /// # Errors
    /// [`StoreError::Query`] (also for a duplicate id or an unknown run: foreign key).
    pub async fn ledger_insert(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO fault_ledger ({LEDGER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(entry.id.to_string())
            .bind(entry.run_id.to_string())
            .bind(&entry.stack)
            .bind(&entry.driver)
            .bind(&entry.step_name)
            .bind(Json(&entry.spec))
            .bind(entry.handle.as_ref().map(Json))
            .bind(entry.state.as_str())
            .bind(to_ms(entry.created_at))
            .bind(to_ms(entry.expires_at))
            .bind(to_ms(entry.updated_at))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .ctx("record fault in the ledger"))?;
        Ok(())
    }

    /// Moves a ledger entry to `state` at `at`; `handle: Some` replaces the stored driver handle,
    /// `None` keeps it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Query`].
    pub async fn ledger_update(
        &self,
        id: Uuid,
        state: LedgerState,
        handle: Option<&Value>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE fault_ledger SET state = $2, handle = COALESCE($3, handle), updated_at = $4 \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(state.as_str())
        .bind(handle.map(Json))
        .bind(to_ms(at))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .ctx("update fault ledger entry"))?;
        if done == 0 {
            return Err(StoreError::NotFound {
                what: "fault ledger entry",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Every entry whose fault may still be active (`pending`, `injected`, `revert-failed`),
    /// oldest first, across all runs — the start-up sweep's input.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn ledger_open(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        // The predicate matches the partial index `fault_ledger_open` word for word.
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM fault_ledger \
             WHERE state IN ('pending', 'injected', 'revert-failed') ORDER BY created_at, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, LedgerRow>(&sql)
            .fetch_all(pool)
            .await
            .ctx("list open fault ledger entries"))?;
        convert_all(rows)
    }

    /// The run's ledger entries, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn ledger_for_run(&self, run_id: Uuid) -> Result<Vec<LedgerEntry>, StoreError> {
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM fault_ledger WHERE run_id = $1 ORDER BY created_at, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, LedgerRow>(&sql)
            .bind(run_id.to_string())
            .fetch_all(pool)
            .await
            .ctx("list the run's fault ledger entries"))?;
        convert_all(rows)
    }
}
