//! `GET /v1/calls`, `GET /v1/calls.csv` and `GET /v1/calls.ndjson`: the tenant's call detail
//! records (SIP proxy calls and notification calls), newest first, as JSON pages or a streamed
//! export of any size ([`super::export`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::export::{self, Exportable, Format};
use super::messages::parse_time;
use super::problem::Problem;
use super::{AppState, Tenant};
use crate::domain::rfc3339;
use crate::domain::{CallFilter, CallRecord};

/// Dispositions a filter may name.
pub(crate) const DISPOSITIONS: [&str; 6] = [
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
pub(crate) fn call_id(id: i64) -> String {
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

/// CSV columns of the exports.
const HEADER: &[&str] = &[
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

impl Exportable for CallRecord {
    fn fields(&self) -> Vec<String> {
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|(n, code)| format!("{n}:{code}"))
            .collect();
        vec![
            call_id(self.id),
            self.sip_call_id.clone(),
            self.caller.clone(),
            self.callee.clone(),
            self.disposition.to_owned(),
            self.code.to_string(),
            self.hangup.unwrap_or_default().to_owned(),
            self.carrier.clone().unwrap_or_default(),
            attempts.join(" "),
            rfc3339(self.setup_at),
            self.answer_at.map(rfc3339).unwrap_or_default(),
            rfc3339(self.end_at),
            self.duration_ms.to_string(),
            self.billed_secs.to_string(),
            self.price.clone().unwrap_or_default(),
            self.currency.clone().unwrap_or_default(),
        ]
    }

    fn json(&self) -> serde_json::Value {
        json(self)
    }
}

/// Every record matching the query, newest first, streamed page by page.
fn export(
    state: AppState,
    tenant: Arc<str>,
    query: Result<Query<CallQuery>, QueryRejection>,
    format: Format,
) -> Result<Response, Problem> {
    let q = super::page::query(query)?;
    let first = filter(&q, export::PAGE)?;
    let store = state.store.clone();
    let pages = export::paginate(first, move |filter: CallFilter| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            let page = store.calls(&tenant, filter.clone()).await?;
            let next = (page.len() == filter.limit)
                .then(|| {
                    page.last().map(|c| CallFilter {
                        before: Some(c.id),
                        ..filter
                    })
                })
                .flatten();
            Ok((page, next))
        }
    });
    Ok(export::response(format, "calls", HEADER, pages))
}

/// `GET /v1/calls.csv`: every record matching the filters, newest first, with a header line,
/// streamed page by page (any size). Our cost is not in the export (it is the operator's, not
/// the tenant's).
#[utoipa::path(get, path = "/v1/calls.csv", tag = "calls", params(CallQuery),
    responses((status = 200, description = "CSV: id, sip_call_id, from, to, disposition, code, hangup, carrier, attempts, setup_at, answered_at, ended_at, duration_ms, billed_seconds, price, currency. Streamed; any size.", content_type = "text/csv"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn export_csv(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    export(state, tenant, query, Format::Csv)
}

/// `GET /v1/calls.ndjson`: the same records, one JSON object per line (as in `GET /v1/calls`).
#[utoipa::path(get, path = "/v1/calls.ndjson", tag = "calls", params(CallQuery),
    responses((status = 200, description = "One call record per line, as in GET /v1/calls. Streamed; any size.", content_type = "application/x-ndjson"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn export_ndjson(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    export(state, tenant, query, Format::Ndjson)
}
