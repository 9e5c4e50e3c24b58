//! `GET /v1/calls` and `GET /v1/calls.csv`: the tenant's call detail records (SIP proxy calls
//! and notification calls), newest first, as JSON pages or one CSV export.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::messages::parse_time;
use super::problem::Problem;
use super::{AppState, Tenant};
use crate::domain::rfc3339;
use crate::domain::{CallFilter, CallRecord};

/// Most rows one CSV export holds (page with `until` for more).
pub(crate) const MAX_EXPORT: usize = 10_000;

/// Dispositions a filter may name.
const DISPOSITIONS: [&str; 6] = [
    "answered",
    "busy",
    "no_answer",
    "cancelled",
    "rejected",
    "failed",
];

/// Query of both endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallQuery {
    /// Only calls set up at or after this RFC 3339 time.
    pub(crate) since: Option<String>,
    /// Only calls set up before this RFC 3339 time.
    pub(crate) until: Option<String>,
    /// Only this disposition: answered, busy, no_answer, cancelled, rejected, failed.
    pub(crate) disposition: Option<String>,
    /// The `next_cursor` of the previous page (JSON only).
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100; JSON only).
    pub(crate) limit: Option<usize>,
}

fn filter(q: &CallQuery, limit: usize) -> Result<CallFilter, Problem> {
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.strip_prefix("call_")
                .and_then(|h| i64::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Problem::invalid("cursor", "invalid_cursor", format!("{c:?} is not a cursor"))
                })
        })
        .transpose()?;
    if let Some(d) = q.disposition.as_deref() {
        if !DISPOSITIONS.contains(&d) {
            return Err(Problem::invalid(
                "disposition",
                "invalid_disposition",
                format!("{d:?} is not one of {}", DISPOSITIONS.join(", ")),
            ));
        }
    }
    Ok(CallFilter {
        before,
        since: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        disposition: q.disposition.clone(),
        limit,
    })
}

/// The record's public id.
fn call_id(id: i64) -> String {
    format!("call_{id:016x}")
}

fn json(c: &CallRecord) -> serde_json::Value {
    serde_json::json!({
        "id": call_id(c.id),
        "sip_call_id": c.sip_call_id,
        "from": c.caller,
        "to": c.callee,
        "disposition": c.disposition,
        "code": c.code,
        "hangup": c.hangup,
        "carrier": c.carrier,
        "attempts": c.attempts.iter().map(|(carrier, code)| serde_json::json!({"carrier": carrier, "code": code})).collect::<Vec<_>>(),
        "setup_at": rfc3339(c.setup_at),
        "answered_at": c.answer_at.map(rfc3339),
        "ended_at": rfc3339(c.end_at),
        "duration_ms": c.duration_ms,
        "billed_seconds": c.billed_secs,
        "price": c.price,
        "currency": c.currency,
    })
}

/// `GET /v1/calls`.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(CallQuery),
    responses((status = 200, description = "A page of call detail records, newest first", body = super::openapi::CallPage),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let rows = state.store.calls(&tenant, filter(&q, limit)?).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| call_id(r.id)))
        .flatten();
    let data: Vec<serde_json::Value> = rows.iter().map(json).collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}

/// `GET /v1/calls.csv`: at most [`MAX_EXPORT`] records, newest first, with a header line.
/// Our cost is not in the export (it is the operator's, not the tenant's).
#[utoipa::path(get, path = "/v1/calls.csv", tag = "calls", params(CallQuery),
    responses((status = 200, description = "CSV: id, sip_call_id, from, to, disposition, code, hangup, carrier, attempts, setup_at, answered_at, ended_at, duration_ms, billed_seconds, price, currency", content_type = "text/csv"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = super::page::query(query)?;
    let rows = state.store.calls(&tenant, filter(&q, MAX_EXPORT)?).await?;
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160));
    let header = [
        "id",
        "sip_call_id",
        "from",
        "to",
        "disposition",
        "code",
        "hangup",
        "carrier",
        "attempts",
        "setup_at",
        "answered_at",
        "ended_at",
        "duration_ms",
        "billed_seconds",
        "price",
        "currency",
    ];
    let internal = |e: csv::Error| {
        Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("writing CSV failed: {e}"),
        )
    };
    w.write_record(header).map_err(internal)?;
    for c in &rows {
        let attempts: Vec<String> = c
            .attempts
            .iter()
            .map(|(n, code)| format!("{n}:{code}"))
            .collect();
        w.write_record([
            call_id(c.id),
            c.sip_call_id.clone(),
            c.caller.clone(),
            c.callee.clone(),
            c.disposition.to_owned(),
            c.code.to_string(),
            c.hangup.unwrap_or_default().to_owned(),
            c.carrier.clone().unwrap_or_default(),
            attempts.join(" "),
            rfc3339(c.setup_at),
            c.answer_at.map(rfc3339).unwrap_or_default(),
            rfc3339(c.end_at),
            c.duration_ms.to_string(),
            c.billed_secs.to_string(),
            c.price.clone().unwrap_or_default(),
            c.currency.clone().unwrap_or_default(),
        ])
        .map_err(internal)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| internal(e.into_error().into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"calls.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
