//! `GET /v1/inbound`: the tenant's inbound (MO) messages, newest first.

use axum::extract::{Query, State};
use axum::Json;

use super::problem::Problem;
use super::{AppState, Tenant};
use crate::domain::rfc3339;
use crate::domain::Keyword;

/// `GET /v1/inbound`.
#[utoipa::path(get, path = "/v1/inbound", tag = "inbound", params(super::page::PageQuery),
    responses((status = 200, body = super::openapi::InboundPage, description = "`partial` is `{received: [part numbers], total}` for a multipart message given up before all its parts arrived (its body is what those parts say), absent otherwise"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<super::page::PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse()
                .map_err(|e: String| Problem::invalid("cursor", "invalid_cursor", e))
        })
        .transpose()?;
    let rows = state.events.events.inbound(&tenant, before, limit).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let data: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|m| {
            let keyword = Keyword::parse(&m.body)
                .filter(|_| m.partial.is_none())
                .map(Keyword::as_str);
            let mut v = serde_json::json!({
                "id": m.id.to_string(),
                "from": m.from,
                "to": m.to,
                "body": m.body,
                "keyword": keyword,
                "carrier": m.carrier,
                "received_at": rfc3339(m.received_at),
            });
            if let Some(p) = &m.partial {
                v["partial"] = serde_json::json!({ "received": p.received, "total": p.total });
            }
            v
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}
