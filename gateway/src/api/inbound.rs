//! `GET /v1/inbound`: the tenant's inbound messages (SMS MO, and what people sent to its chat
//! accounts), newest first.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use switchyard_routing::Channel;

use super::problem::Problem;
use super::{AppState, Tenant};
use crate::domain::rfc3339;
use crate::domain::Keyword;

/// Query of `GET /v1/inbound`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct InboundQuery {
    /// Only messages that came on this channel: `sms`, `rcs`, `whatsapp`, `telegram` or
    /// `messenger`.
    pub(crate) channel: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub(crate) limit: Option<usize>,
}

/// The channels inbound messages come on.
const INBOUND_CHANNELS: [Channel; 5] = [
    Channel::Sms,
    Channel::Rcs,
    Channel::Whatsapp,
    Channel::Telegram,
    Channel::Messenger,
];

/// `GET /v1/inbound`.
#[utoipa::path(get, path = "/v1/inbound", tag = "inbound", params(InboundQuery),
    responses((status = 200, body = super::openapi::InboundPage, description = "`channel` is `sms`, `rcs`, `whatsapp`, `telegram` or `messenger` (on a chat channel `from` is the person's number or platform id, `to` the account's id on the platform and `carrier` the account's name); `partial` is `{received: [part numbers], total}` for a multipart message given up before all its parts arrived (its body is what those parts say), absent otherwise; a binary SMS (8-bit data_coding, or port-addressed) has `encoding` `binary`, its octets as hex in `body`, its `data_coding` and `udh`"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<InboundQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let channel = q
        .channel
        .as_deref()
        .map(|c| {
            c.parse::<Channel>()
                .ok()
                .filter(|c| INBOUND_CHANNELS.contains(c))
                .ok_or_else(|| {
                    Problem::invalid(
                        "channel",
                        "invalid_channel",
                        "channel must be sms, rcs, whatsapp, telegram or messenger",
                    )
                })
        })
        .transpose()?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse()
                .map_err(|e: String| Problem::invalid("cursor", "invalid_cursor", e))
        })
        .transpose()?;
    let rows = state
        .events
        .events
        .inbound(&tenant, channel, before, limit)
        .await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let data: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|m| {
            let keyword = Keyword::parse(&m.body)
                .filter(|_| m.partial.is_none() && m.binary.is_none())
                .map(Keyword::as_str);
            let mut v = serde_json::json!({
                "id": m.id.to_string(),
                "channel": m.channel.as_str(),
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
            if let Some(b) = &m.binary {
                v["encoding"] = "binary".into();
                v["data_coding"] = b.data_coding.into();
                if let Some(udh) = &b.udh {
                    v["udh"] = switchyard_protocols::text::binary::encode(udh).into();
                }
            }
            v
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}
