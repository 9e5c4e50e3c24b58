//! `/v1/messages`: send, look up, list, cancel.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::idempotent::{self, RawJson, Start};
use super::problem::Problem;
use super::validate::{validate, SendRequest, ValidSms};
pub(crate) use super::views::{rfc3339, Delivery};
use super::{AppState, Scope, Tenant};
use crate::domain::{
    priority_name, stored_encoding_name, ListFilter, MessageId, MessageRecord, Status,
};

/// The 202 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// Message id.
    pub(crate) id: String,
    /// "accepted" (or "scheduled" when scheduled_at is in the future).
    pub(crate) status: &'static str,
    /// Per channel.
    pub(crate) deliveries: Vec<Delivery>,
}

/// `POST /v1/messages`.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = super::openapi::SendBody,
    responses(
        (status = 202, description = "Stored durably and queued: a message (`Accepted`), or a flow when `mode` is set (`FlowAccepted`)", body = super::openapi::SendAnswer),
        (status = 400, description = "Unreadable request", body = Problem),
        (status = 401, description = "Missing or wrong API key", body = Problem),
        (status = 403, description = "Destination, country, channel or priority not allowed by the plan, or the key lacks the `send` scope", body = Problem),
        (status = 404, description = "`to` names a contact (`{\"contact\": …}`) the tenant does not have", body = Problem),
        (status = 409, description = "Idempotency-Key reused with another request", body = Problem),
        (status = 413, description = "Request body too large", body = Problem),
        (status = 422, description = "A field is not acceptable (see `field`)", body = Problem),
        (status = 429, description = "Over the tenant's rate or quota; see Retry-After", body = Problem),
        (status = 503, description = "Overloaded or no carrier available; see Retry-After", body = Problem),
    ),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the original response again")),
    security(("bearer" = [])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    caller: Tenant,
    raw: RawJson,
) -> Result<Response, Problem> {
    caller.require(Scope::Send)?;
    let running = match idempotent::start(&state, &caller, &raw).await? {
        Start::Replay(response) => return Ok(response),
        Start::Run(guard) => guard,
    };
    shed(&state, &caller.0, &raw)?;
    if super::flows::is_flow(&raw) {
        let answer = super::flows::send(&state, &caller, &raw, running.as_ref()).await;
        drop(running);
        return answer;
    }
    let tenant = caller.0.clone();
    // `to` may name a contact: its address for the channel stands in for it.
    let req: SendRequest =
        match super::contacts::recipient::resolve_single(&state, &tenant, &raw).await? {
            Some(body) => serde_json::from_value(body).map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    e.to_string(),
                )
            })?,
            None => raw.parse()?,
        };
    let sms: ValidSms = validate(req, &state.limits)?;
    state.submit.check_priority(&tenant, sms.priority)?;
    super::validate::check_callback_signing(
        &state.events.directory,
        &tenant,
        sms.callback_url.as_deref(),
    )?;
    super::validate::check_webhook_signing(&state.events.directory, &tenant, &sms)?;
    let to = sms.to.stored();
    let (channel, encoding, segments) = sms.shown();
    let scheduled = sms.scheduled_at.is_some() && sms.voice.is_none();
    let mut answer = None;
    state
        .submit
        .accept(sms.into_draft(tenant), |id, quote, now| {
            let accepted = Accepted {
                id: id.to_string(),
                status: if scheduled { "scheduled" } else { "accepted" },
                deliveries: vec![Delivery {
                    id: id.to_string(),
                    channel,
                    to,
                    carrier: Some(quote.carrier.clone()),
                    segments,
                    encoding,
                    estimated_cost: quote.price.map(|p| p.amount.to_string()),
                    currency: quote.price.map(|p| p.currency.to_string()),
                }],
            };
            let record =
                idempotent::record(running.as_ref(), StatusCode::ACCEPTED, &accepted, None, now)?;
            answer = Some(idempotent::answer(
                StatusCode::ACCEPTED,
                &accepted,
                record.as_deref(),
            ));
            Ok::<_, Problem>(record)
        })
        .await?;
    drop(running);
    answer.ok_or_else(|| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the message was accepted without an answer",
        )
    })
}

/// 503 `queue_full` before the request is parsed when it is one SMS and no carrier queue has
/// room for the tenant: under overload a refusal then costs a look at the queues instead of
/// the whole pipeline (parsing, validation, routing), and the cores stay with the messages
/// already accepted. With room somewhere, the pipeline decides as usual.
fn shed(state: &AppState, tenant: &str, raw: &RawJson) -> Result<(), Problem> {
    if state.dispatcher.has_room_anywhere(tenant) {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        channel: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        mode: Option<std::borrow::Cow<'a, str>>,
    }
    let Ok(peek) = serde_json::from_slice::<Peek<'_>>(&raw.bytes) else {
        // Unreadable: the pipeline says why.
        return Ok(());
    };
    let sms = peek.channel.as_deref().is_none_or(|c| c == "sms");
    let single = peek.mode.as_deref().is_none_or(|m| m == "single");
    if sms && single {
        metrics::counter!("switchyard_api_shed_total").increment(1);
        return Err(super::problem::dispatch_problem(
            &crate::dispatch::DispatchError::QueuesFull,
        ));
    }
    Ok(())
}

/// A message as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MessageView {
    /// Id.
    pub(crate) id: String,
    /// Current status.
    pub(crate) status: Status,
    /// Destination.
    pub(crate) to: String,
    /// Country of the destination.
    pub(crate) country: Option<String>,
    /// Sender.
    pub(crate) from: String,
    /// Text. For a binary SMS (`encoding` "binary": 8-bit data sent with `"encoding":
    /// "binary"` or an 8-bit data_coding over SMPP), its octets as two lowercase hex digits
    /// each, without the user data header (see `udh`).
    pub(crate) body: String,
    /// "gsm7", "latin1", "ucs2" or "binary" for an SMS; "voice" for a call, "email" for an
    /// email, the channel's name for a chat message.
    pub(crate) encoding: String,
    /// An SMS's user data header as lowercase hex, UDHL included: the ports and other IEs
    /// every segment carries, or the header of a part the sender cut (with its concatenation
    /// IE). Absent when it has none (the concatenation IEs the gateway adds are not shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) udh: Option<String>,
    /// An SMS's data_coding when it is not the one its encoding implies (a binary message's
    /// when not 4, a message class such as flash 0xF0 over SMPP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_coding: Option<u8>,
    /// Segments.
    pub(crate) segments: u16,
    /// Priority.
    pub(crate) priority: String,
    /// Carrier chosen at acceptance.
    pub(crate) carrier: Option<String>,
    /// Estimated price.
    pub(crate) price: Option<String>,
    /// Its currency.
    pub(crate) currency: Option<String>,
    /// Accepted at (RFC 3339).
    pub(crate) created_at: String,
    /// Last change (RFC 3339).
    pub(crate) updated_at: String,
    /// Scheduled for.
    pub(crate) scheduled_at: Option<String>,
    /// Expires at.
    pub(crate) expires_at: Option<String>,
    /// Webhook.
    pub(crate) callback_url: Option<String>,
    /// Labels.
    pub(crate) tags: Vec<String>,
    /// Tenant data.
    #[schema(value_type = Option<Object>)]
    pub(crate) metadata: Option<serde_json::Value>,
    /// Per segment: index, carrier, carrier_message_id, status, error, updated_at.
    #[schema(value_type = Vec<Object>)]
    pub(crate) segment_states: Vec<serde_json::Value>,
    /// "sms", "voice" or "email".
    pub(crate) channel: &'static str,
    /// An email's subject, html and reply_to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) email: Option<serde_json::Value>,
    /// A voice call's options (audio, dtmf, max_duration_s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) voice: Option<serde_json::Value>,
    /// A voice call's outcome once it ended: outcome, error, sip_code, trunk, tried,
    /// setup_ms, ring_s, talk_s, billed_s, cost, digits, hangup_by, hangup_reason, ….
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) call: Option<serde_json::Value>,
    /// Status history, oldest first (only in single-message answers): status, at, detail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub(crate) history: Vec<serde_json::Value>,
}

impl From<MessageRecord> for MessageView {
    fn from(r: MessageRecord) -> Self {
        let m = r.message;
        let channel = m.channel().as_str();
        let encoding = stored_encoding_name(&m).to_owned();
        MessageView {
            id: m.id.to_string(),
            status: r.status,
            to: m.to,
            country: m.country,
            from: m.from,
            body: m.body,
            encoding,
            udh: m
                .udh
                .as_deref()
                .map(switchyard_protocols::text::binary::encode),
            data_coding: m.data_coding,
            segments: m.segments,
            priority: priority_name(m.priority).to_owned(),
            carrier: m.carrier,
            price: m.price.map(|p| p.amount.to_string()),
            currency: m.price.map(|p| p.currency.to_string()),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(r.updated_at),
            scheduled_at: m.scheduled_at.map(rfc3339),
            expires_at: m.expires_at.map(rfc3339),
            callback_url: m.callback_url,
            tags: m.tags,
            metadata: m.metadata.and_then(|t| serde_json::from_str(&t).ok()),
            segment_states: r
                .segment_states
                .into_iter()
                .map(|s| {
                    serde_json::json!({
                        "index": s.index, "carrier": s.carrier, "carrier_message_id": s.carrier_message_id,
                        "status": s.status, "error": s.error, "updated_at": rfc3339(s.updated_at),
                    })
                })
                .collect(),
            channel,
            email: m.email.and_then(|e| serde_json::to_value(e).ok()),
            voice: m.voice.and_then(|v| serde_json::to_value(v).ok()),
            call: r.call.and_then(|t| serde_json::from_str(&t).ok()),
            history: r
                .history
                .into_iter()
                .map(|h| serde_json::json!({"status": h.status, "at": rfc3339(h.at), "detail": h.detail}))
                .collect(),
        }
    }
}

fn parse_id(raw: &str) -> Result<MessageId, Problem> {
    // An id that cannot exist is "not found", not a format lecture: ids are opaque.
    raw.parse().map_err(|_| Problem::not_found("message"))
}

/// `GET /v1/messages/{id}`.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "Message id (msg_…)")),
    responses((status = 200, description = "A message, or a flow (`mode` set) with its steps", body = super::openapi::MessageOrFlow), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    if let Some(r) = state.store.get(&tenant, id).await? {
        return Ok(Json(MessageView::from(r)).into_response());
    }
    match state.store.flow(&tenant, id).await? {
        Some(f) => Ok(Json(super::flows::FlowView::from(f)).into_response()),
        None => Err(Problem::not_found("message")),
    }
}

/// Query of `GET /v1/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this status.
    pub(crate) status: Option<String>,
    /// Only to this number.
    pub(crate) to: Option<String>,
    /// Accepted at or after (RFC 3339).
    pub(crate) since: Option<String>,
    /// Accepted before (RFC 3339).
    pub(crate) until: Option<String>,
    /// Only with this tag.
    pub(crate) tag: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub(crate) limit: Option<usize>,
}

pub(crate) fn parse_time(field: &'static str, s: &str) -> Result<i64, Problem> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            Problem::invalid(
                field,
                "invalid_time",
                format!("{s:?} is not an RFC 3339 time: {e}"),
            )
        })
}

/// `GET /v1/messages`: newest first, cursor pagination.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, description = "A page of messages, newest first", body = super::openapi::MessagePage), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let filter = ListFilter {
        status: q
            .status
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|e: String| Problem::invalid("status", "invalid_status", e))
            })
            .transpose()?,
        to: q.to,
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
        tag: q.tag,
        before: q
            .cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|e: String| Problem::invalid("cursor", "invalid_cursor", e))
            })
            .transpose()?,
        limit,
    };
    let records = state.store.list(&tenant, filter).await?;
    let next_cursor = (records.len() == limit)
        .then(|| records.last().map(|r| r.message.id.to_string()))
        .flatten();
    let data: Vec<MessageView> = records.into_iter().map(MessageView::from).collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}

/// `POST /v1/messages/{id}/cancel`: only scheduled messages not yet due.
#[utoipa::path(post, path = "/v1/messages/{id}/cancel", tag = "messages",
    params(("id" = String, Path, description = "Message id (msg_…)")),
    responses((status = 200, description = "Cancelled: the message as it is now", body = Object), (status = 404, body = Problem), (status = 409, description = "Not cancellable", body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::Send)?;
    let tenant = caller.0;
    let id = parse_id(&id)?;
    state.submit.cancel(&tenant, id).await?;
    Ok(Json(
        serde_json::json!({ "id": id.to_string(), "status": "cancelled" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatChannel, ChatSpec, NewMessage};

    fn view(m: NewMessage) -> MessageView {
        MessageView::from(MessageRecord {
            message: m,
            status: Status::Accepted,
            updated_at: 0,
            segment_states: Vec::new(),
            history: Vec::new(),
            call: None,
        })
    }

    #[test]
    fn a_chat_message_shows_its_channel_as_its_encoding() {
        let sms = crate::store::suite::fixtures::message("acme", 1, 1);
        assert_eq!(view(sms.clone()).encoding, "ucs2");
        let rcs = NewMessage {
            encoding: None,
            chat: Some(ChatSpec {
                channel: ChatChannel::Rcs,
                template: None,
                tag: None,
            }),
            ..sms
        };
        assert_eq!(view(rcs).encoding, "rcs");
    }
}
