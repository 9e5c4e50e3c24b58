//! `/v1/webhooks/dead-letters`: webhooks given up on, listed and replayed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::problem::Problem;
use super::{AppState, Scope, Tenant};
use crate::domain::now_ms;
use crate::domain::{event_id, rfc3339, EventWrite};
use crate::store::events::OutboxEntry;

/// A dead letter as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeadLetter {
    /// `dl_<n>`.
    pub(crate) id: String,
    /// The event it carried.
    pub(crate) event_id: String,
    /// Where it was sent.
    pub(crate) url: String,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// First attempt (RFC 3339).
    pub(crate) first_attempt_at: String,
    /// When it was given up (RFC 3339).
    pub(crate) dead_at: String,
    /// The last failure.
    pub(crate) last_error: Option<String>,
}

impl From<OutboxEntry> for DeadLetter {
    fn from(e: OutboxEntry) -> Self {
        DeadLetter {
            id: format!("dl_{}", e.id),
            event_id: event_id(e.seq),
            url: e.url,
            attempts: e.attempts,
            first_attempt_at: rfc3339(e.first_at),
            dead_at: rfc3339(e.next_at),
            last_error: e.last_error,
        }
    }
}

/// The number in a dead letter id (`dl_<n>`).
pub(crate) fn parse_dl(s: &str) -> Option<i64> {
    s.strip_prefix("dl_")?.parse().ok()
}

/// `GET /v1/webhooks/dead-letters`: oldest first.
#[utoipa::path(get, path = "/v1/webhooks/dead-letters", tag = "webhooks", params(super::page::PageQuery),
    responses((status = 200, description = "A page of dead letters, oldest first", body = super::openapi::DeadLetterPage), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Tenant,
    query: Result<Query<super::page::PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => parse_dl(c)
            .ok_or_else(|| Problem::invalid("cursor", "invalid_cursor", "not a cursor"))?,
    };
    let rows = state
        .events
        .events
        .dead_letters(&tenant, after, limit)
        .await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| format!("dl_{}", r.id)))
        .flatten();
    let data: Vec<DeadLetter> = rows.into_iter().map(DeadLetter::from).collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}

/// Puts `tenant`'s dead letter `id` (every one when `None`) back in the retry queue, due now;
/// returns how many.
pub(crate) async fn replay(
    state: &AppState,
    tenant: &str,
    id: Option<i64>,
) -> Result<u64, Problem> {
    let applied = state
        .store
        .apply(vec![crate::domain::Update::Events(EventWrite::Replay {
            tenant: tenant.to_owned(),
            id,
            at: now_ms(),
        })])
        .await?;
    Ok(match applied.first() {
        Some(crate::domain::Applied::Rows(n)) => *n,
        _ => 0,
    })
}

/// `POST /v1/webhooks/dead-letters/{id}/replay`: back to the retry queue, due now, with a
/// fresh 24 h budget.
#[utoipa::path(post, path = "/v1/webhooks/dead-letters/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Dead letter id (dl_…)")),
    responses((status = 202, description = "`{replayed: 1}`", body = super::openapi::Replayed), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn replay_one(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let id = parse_dl(&id).ok_or_else(|| Problem::not_found("dead letter"))?;
    match replay(&state, &tenant, Some(id)).await? {
        0 => Err(Problem::not_found("dead letter")),
        n => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "replayed": n })),
        )),
    }
}

/// `POST /v1/webhooks/dead-letters/replay`: every dead letter of the tenant.
#[utoipa::path(post, path = "/v1/webhooks/dead-letters/replay", tag = "webhooks",
    responses((status = 202, description = "`{replayed: n}`", body = super::openapi::Replayed)),
    security(("bearer" = [])))]
pub(crate) async fn replay_all(
    State(state): State<AppState>,
    caller: Tenant,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let n = replay(&state, &tenant, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "replayed": n })),
    ))
}
