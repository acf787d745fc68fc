//! `GET /api/v1/findings` (viewer) and `PATCH /api/v1/findings/{id}` (operator): the morning
//! review's findings, and the ticket and note people attach to them ([`crate::store`]'s
//! findings; docs/api.md).

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::config::ApiRole;
use crate::store::{FindingNote, FindingRecord, FindingStatus};

/// Query of `GET /api/v1/findings`.
#[derive(Debug, Deserialize)]
pub(super) struct FindingsQuery {
    /// `open` or `resolved` (default: both).
    status: Option<String>,
    /// Only the findings this team (slug) owns.
    team: Option<String>,
}

/// `GET /api/v1/findings?status=open&team=payments`: the findings, by owner then newest
/// failing night first, each as stored (camelCase; nights `YYYY-MM-DD`, instants RFC 3339).
pub(super) async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
    Query(query): Query<FindingsQuery>,
) -> Result<Json<Vec<FindingRecord>>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(str::parse::<FindingStatus>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let mut findings = state.inner.store.findings(status).await?;
    if let Some(team) = &query.team {
        findings.retain(|f| f.owner.as_deref() == Some(team.as_str()));
    }
    Ok(Json(findings))
}

/// Body of `PATCH /api/v1/findings/{id}`: the fields to set; an empty string clears one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FindingPatch {
    /// The ticket that tracks the weakness: an `http` or `https` URL.
    ticket_url: Option<String>,
    /// A note for the next reader.
    note: Option<String>,
}

/// `PATCH /api/v1/findings/{id}` (operator): attaches a ticket URL and/or a note; answers the
/// finding. 400 for a ticket that is not an http(s) URL, 404 for an unknown finding.
pub(super) async fn annotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<FindingPatch>,
) -> Result<Json<FindingRecord>, ApiError> {
    caller.require(ApiRole::Operator, "annotating a finding")?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("finding id `{id}` is not a UUID")))?;
    if let Some(ticket) = patch.ticket_url.as_deref().filter(|t| !t.is_empty()) {
        let ok = url::Url::parse(ticket)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "ticketUrl `{ticket}` is not an http(s) URL"
            )));
        }
    }
    let note = FindingNote {
        ticket_url: patch.ticket_url,
        note: patch.note,
    };
    state
        .inner
        .store
        .annotate_finding(id, &note, &caller.name, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no finding `{id}`")))
}
