//! `POST /v1/messages/batch` and `GET /v1/batches/{id}`: one body template, up to 10,000
//! recipients with their own variables, stored in one group commit.
//!
//! Each recipient is rendered ([`Template`]), validated like a single send and checked against
//! the tenant's country rules and routes; those that fail are listed in the answer with their
//! index, number, code and reason, the rest are accepted. The tenant's rate and quotas are
//! taken for the accepted count as a whole (429 refuses the whole batch, nothing stored). The
//! accepted messages, the batch row and the idempotency record go to the store as one request:
//! one transaction, one fsync. Then the messages are queued; those that do not fit the carrier
//! queues now wait in the dispatcher's scheduler and are queued as room frees up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_routing::{Channel, RouteBuf, RouteRequest};

use super::idempotent::{self, RawJson, Start};
use super::messages::{dispatch_problem, encoding_name, multiply};
use super::problem::Problem;
use super::validate::{validate, Recipient, SendRequest};
use super::{AppState, Scope, Tenant};
use crate::dispatch::{DispatchError, Job};
use crate::model::{now_ms, MessageId, NewMessage, Status};
use crate::tenancy::template::Template;
use crate::tenancy::BatchRecord;

/// Most recipients in one batch.
pub const MAX_RECIPIENTS: usize = 10_000;

/// Largest batch request body (about 800 bytes per recipient at 10,000 recipients); larger
/// ones get 413. `server.max_body_bytes` applies instead when it is larger.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Jobs that may wait in the carrier queues and the scheduler before a batch is refused with
/// 503 `queue_full` (memory stays bounded; the messages would wait anyway).
pub const MAX_BACKLOG: usize = 1_000_000;

/// How long a job that found its carrier queues full waits before trying again.
const DEFER: std::time::Duration = std::time::Duration::from_millis(500);

/// The request body of `POST /v1/messages/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Recipients: 1 to 10,000.
    pub recipients: Vec<BatchRecipient>,
    /// The body template; `{{name}}` is replaced by the recipient's variable `name`.
    pub body: String,
    /// Sender (as for a single send).
    pub from: String,
    /// `"sms"`.
    pub channel: Option<String>,
    /// `auto` (default), `gsm7` or `ucs2`.
    pub encoding: Option<String>,
    /// `critical`, `high`, `normal` (default) or `low`.
    pub priority: Option<String>,
    /// As for a single send, per message.
    #[schema(value_type = Option<String>, example = "PT1H")]
    pub validity_period: Option<serde_json::Value>,
    /// RFC 3339 time to send every message at.
    pub scheduled_at: Option<String>,
    /// Status webhook for every message.
    pub callback_url: Option<String>,
    /// Labels for every message.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Tenant data for every message.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// One recipient of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRecipient {
    /// E.164 number (anything else is rejected for this recipient only).
    #[schema(value_type = String)]
    pub to: serde_json::Value,
    /// Values for the template's placeholders (strings, numbers, booleans).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A recipient refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedRecipient {
    /// Position in `recipients`, from 0.
    pub index: usize,
    /// The number as given.
    #[schema(value_type = String)]
    pub to: serde_json::Value,
    /// Stable code (`invalid_number`, `missing_variable`, `country_not_allowed`, `no_route`, …).
    pub code: &'static str,
    /// Why, for a person.
    pub reason: String,
}

/// An accepted recipient's message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchMessage {
    /// Position in `recipients`.
    pub index: usize,
    /// Message id.
    pub id: String,
}

/// The 202 answer of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    /// Batch id (`bat_…`), for `GET /v1/batches/{id}`.
    pub id: String,
    /// `accepted` or `scheduled`.
    pub status: &'static str,
    /// Recipients in the request.
    pub recipients: usize,
    /// Messages stored.
    pub accepted: usize,
    /// Accepted recipients' message ids, in recipient order.
    pub messages: Vec<BatchMessage>,
    /// Refused recipients, in recipient order.
    pub rejected: Vec<RejectedRecipient>,
}

/// A recipient that passed, ready to store.
struct Ready {
    index: usize,
    message: NewMessage,
    job: Job,
}

/// `POST /v1/messages/batch`.
#[utoipa::path(post, path = "/v1/messages/batch", tag = "messages", request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the original response again")),
    responses(
        (status = 202, description = "Accepted recipients stored durably (one commit) and queued; rejected ones listed", body = BatchAccepted),
        (status = 400, description = "Unreadable request", body = Problem),
        (status = 403, description = "Channel not allowed, or the key lacks the `send` scope", body = Problem),
        (status = 409, description = "Idempotency-Key reused with another request", body = Problem),
        (status = 413, description = "Request body too large", body = Problem),
        (status = 422, description = "Invalid template, no recipients, too many, or none valid", body = Problem),
        (status = 429, description = "Over the tenant's rate or quota; see Retry-After", body = Problem),
        (status = 503, description = "Overloaded; see Retry-After", body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    caller: Tenant,
    raw: RawJson,
) -> Result<Response, Problem> {
    caller.require(Scope::Send)?;
    let running = match idempotent::start(&state, &caller, &raw).await? {
        Start::Replay(response) => return Ok(response),
        Start::Run(guard) => guard,
    };
    let tenant = caller.0.clone();
    let req: BatchRequest = raw.parse()?;
    drop(raw);
    let total = req.recipients.len();
    if total == 0 || total > MAX_RECIPIENTS {
        return Err(Problem::invalid(
            "recipients",
            "invalid_recipients",
            format!("a batch has 1 to {MAX_RECIPIENTS} recipients (this one has {total})"),
        ));
    }
    let template =
        Template::parse(&req.body).map_err(|e| Problem::invalid("body", "invalid_template", e))?;

    let now = now_ms();
    let table = state.dispatcher.router.load();
    let tenant_id = table.tenant_id(&tenant);
    let mut buf = RouteBuf::new();
    let mut ready: Vec<Ready> = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    let constant_body = template.is_constant().then(|| req.body.clone());
    for (index, r) in req.recipients.into_iter().enumerate() {
        let reject =
            |code: &'static str, reason: String, to: serde_json::Value| RejectedRecipient {
                index,
                to,
                code,
                reason,
            };
        let Some(to) = r.to.as_str().map(str::to_owned) else {
            rejected.push(reject(
                "invalid_number",
                "to must be a string: \"+\" and an E.164 number".into(),
                r.to,
            ));
            continue;
        };
        let body = match &constant_body {
            Some(b) => b.clone(),
            None => match template.render(r.variables.as_ref()) {
                Ok(b) => b,
                Err(e) => {
                    let code = match e {
                        crate::tenancy::template::RenderError::Missing(_) => "missing_variable",
                        _ => "invalid_variable",
                    };
                    rejected.push(reject(code, e.to_string(), r.to));
                    continue;
                }
            },
        };
        let single = SendRequest {
            to: Recipient::Phone(to),
            channel: req.channel.clone(),
            from: req.from.clone(),
            body: Some(body),
            encoding: req.encoding.clone(),
            priority: req.priority.clone(),
            validity_period: req.validity_period.clone(),
            scheduled_at: req.scheduled_at.clone(),
            callback_url: req.callback_url.clone(),
            tags: req.tags.clone(),
            metadata: req.metadata.clone(),
            voice: None,
        };
        if single.channel.as_deref().is_some_and(|c| c != "sms") {
            return Err(super::problem::Problem::invalid(
                "channel",
                "unsupported_channel",
                "batches send SMS only; send voice calls one by one",
            ));
        }
        let sms = match validate(single, &state.limits) {
            Ok(s) => s,
            // A problem with a field every recipient shares refuses the whole batch.
            Err(p) if p.field.is_some_and(|f| f != "to" && f != "body") => return Err(p),
            Err(p) => {
                rejected.push(reject(p.code, p.detail, r.to));
                continue;
            }
        };
        if let Err(p) =
            state
                .tenant_limits
                .policy(&tenant, Channel::Sms, sms.country.as_deref(), sms.segments)
        {
            if p.code == "channel_not_allowed" {
                return Err(p);
            }
            rejected.push(reject(p.code, p.detail, r.to));
            continue;
        }
        // The route now (no queue-room check: a batch waits for room rather than failing).
        let Some(tid) = tenant_id else {
            return Err(dispatch_problem(&DispatchError::Route(
                switchyard_routing::RouteError::UnknownTenant,
            )));
        };
        let id = MessageId::generate(now);
        let route = RouteRequest {
            channel: Channel::Sms,
            number: &sms.to,
            tenant: tid,
            priority: sms.priority,
            salt: id.0 as u64,
            now: Instant::now(),
        };
        let (carrier, price) = match table.route(&route, &mut buf) {
            Ok(ranked) => match ranked
                .first()
                .and_then(|c| Some((table.carrier(c.carrier)?.name.clone(), c.price)))
            {
                Some(found) => found,
                None => {
                    rejected.push(reject(
                        "no_route",
                        "no carrier serves this destination".into(),
                        r.to,
                    ));
                    continue;
                }
            },
            Err(e) => {
                let p = dispatch_problem(&DispatchError::Route(e));
                rejected.push(reject(p.code, p.detail, r.to));
                continue;
            }
        };
        let currency = table.config().base_currency.to_string();
        let estimated = multiply(&price.to_string(), sms.segments);
        let message = NewMessage {
            id,
            tenant: tenant.to_string(),
            to: format!("+{}", sms.to.as_str()),
            country: sms.country.clone(),
            from: sms.from.clone(),
            body: sms.body.clone(),
            encoding: encoding_name(sms.encoding).to_owned(),
            segments: sms.segments,
            priority: format!("{:?}", sms.priority).to_lowercase(),
            scheduled_at: sms.scheduled_at,
            expires_at: sms.expires_at,
            callback_url: sms.callback_url,
            tags: sms.tags,
            metadata: sms.metadata,
            carrier: Some(carrier),
            price: Some(estimated),
            currency: Some(currency),
            created_at: now,
            batch_id: None,
            voice: None,
            request: None,
        };
        let job = Job {
            id,
            tenant: tenant.clone(),
            to: sms.to,
            from: sms.from,
            body: sms.body,
            encoding: sms.preference,
            priority: sms.priority,
            scheduled_at: sms.scheduled_at,
            expires_at: sms.expires_at,
            sent_segments: Vec::new(),
            tried: Vec::new(),
        };
        ready.push(Ready {
            index,
            message,
            job,
        });
    }
    drop(table);

    let Some(first) = ready.first() else {
        let first = rejected
            .first()
            .map(|r| format!("; recipient 0: {} ({})", r.reason, r.code))
            .unwrap_or_default();
        return Err(Problem::invalid(
            "recipients",
            "no_valid_recipients",
            format!("all {total} recipients were rejected{first}"),
        ));
    };
    let batch_id = format!("bat_{:016x}", first.message.id.0);
    let backlog = state.dispatcher.queued() + state.dispatcher.held();
    if backlog + ready.len() > MAX_BACKLOG {
        return Err(Problem::unavailable(
            "queue_full",
            format!("{backlog} messages are waiting for carriers; retry shortly"),
            5,
        ));
    }
    let reservation =
        state
            .tenant_limits
            .admit(&tenant, ready.len() as u32, now, Instant::now())?;

    let scheduled = ready.iter().any(|r| r.job.scheduled_at.is_some());
    let accepted = BatchAccepted {
        id: batch_id.clone(),
        status: if scheduled { "scheduled" } else { "accepted" },
        recipients: total,
        accepted: ready.len(),
        messages: ready
            .iter()
            .map(|r| BatchMessage {
                index: r.index,
                id: r.message.id.to_string(),
            })
            .collect(),
        rejected,
    };
    let record = idempotent::record(
        running.as_ref(),
        StatusCode::ACCEPTED,
        &accepted,
        Some(BatchRecord {
            id: batch_id.clone(),
            tenant: tenant.to_string(),
            created_at: now,
            recipients: total as u32,
            accepted: accepted.accepted as u32,
            rejected: accepted.rejected.len() as u32,
        }),
        now,
    )?;
    let mut messages = Vec::with_capacity(ready.len());
    let mut jobs = Vec::with_capacity(ready.len());
    for (i, r) in ready.into_iter().enumerate() {
        let mut m = r.message;
        m.batch_id = Some(batch_id.clone());
        if i == 0 {
            m.request = record.clone();
        }
        messages.push(m);
        jobs.push(Arc::new(r.job));
    }
    state.store.insert(messages).await.map_err(|e| {
        tracing::error!("store refused a batch: {e}");
        Problem::unavailable(
            "store_unavailable",
            "the message store cannot take writes right now",
            2,
        )
    })?;
    reservation.keep();
    drop(running);
    metrics::counter!("switchyard_api_batch_messages_total").increment(jobs.len() as u64);

    // Durable now. Queue what fits; the rest waits in the scheduler for room.
    let mut full = false;
    for job in jobs {
        if !full {
            match state.dispatcher.enqueue(job.clone()) {
                Ok(_) => continue,
                Err(e) if e.is_retryable() => full = true,
                Err(_) => {
                    let d = state.dispatcher.clone();
                    tokio::spawn(async move { d.enqueue_with_retry(job).await });
                    continue;
                }
            }
        }
        state.dispatcher.defer(job, DEFER);
    }
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// A batch's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    /// Batch id.
    pub id: String,
    /// `in_progress` until every accepted message reached a final status, then `completed`.
    pub status: &'static str,
    /// Accepted at (RFC 3339).
    pub created_at: String,
    /// Recipients in the request.
    pub recipients: u32,
    /// Messages stored.
    pub accepted: u32,
    /// Recipients refused at submission.
    pub rejected: u32,
    /// Messages per current status.
    pub counts: BTreeMap<String, u64>,
}

/// `GET /v1/batches/{id}`: counts of the batch's messages by status.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "messages",
    params(("id" = String, Path, description = "Batch id (bat_…)")),
    responses((status = 200, body = BatchView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, Problem> {
    caller.require(Scope::Read)?;
    let valid = id
        .strip_prefix("bat_")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(Problem::not_found("batch"));
    }
    let summary = state
        .store
        .batch(&caller.0, &id)
        .await
        .map_err(|e| Problem::unavailable("store_unavailable", e.to_string(), 2))?
        .ok_or_else(|| Problem::not_found("batch"))?;
    let finished: u64 = summary
        .counts
        .iter()
        .filter(|(s, _)| s.parse::<Status>().is_ok_and(Status::is_final))
        .map(|(_, n)| n)
        .sum();
    let b = summary.batch;
    Ok(Json(BatchView {
        id: b.id,
        status: if finished >= u64::from(b.accepted) {
            "completed"
        } else {
            "in_progress"
        },
        created_at: super::messages::rfc3339(b.created_at),
        recipients: b.recipients,
        accepted: b.accepted,
        rejected: b.rejected,
        counts: summary.counts.into_iter().collect(),
    }))
}
