//! `POST /v1/messages/batch` and `GET /v1/batches/{id}`: one body template, up to 10,000
//! recipients with their own variables, stored in one group commit. With a flow `mode` and
//! `channels`, every recipient (at most 1,000) gets that flow ([`flow_batch`]), also in one
//! commit.
//!
//! The cheap checks come first, so an oversized or over-quota batch costs little: the body size
//! (413, before anything is parsed), the recipient count (only the first 10,000 recipients are
//! kept while parsing; the rest are counted), the channel, the template's size and its literal
//! text (which every rendering contains), the fields every recipient shares, then the tenant's
//! quota and rate for *every* recipient (429 refuses the whole batch, nothing stored). Only then
//! is each recipient rendered ([`Template`]), counted into segments (once for a template without
//! placeholders), checked against the tenant's country rules and routed; those that fail are
//! listed in the answer with their index, number, code and reason, and their quota is given
//! back. That per-recipient work runs on a blocking thread (a few batches at once), never on an
//! async worker. The accepted messages, the batch row and the idempotency record go to the store
//! as one request: one transaction, one fsync. Then the messages are queued; those that do not
//! fit the carrier queues now wait in the dispatcher's scheduler and are queued as room frees
//! up.
//!
//! Memory: a request's working set is its body (at most [`MAX_BODY_BYTES`]), its recipients as
//! parsed (a number, and the variables as a list: about 170 bytes each, each dropped once its
//! row is made), one [`NewBatch`] row per accepted message (about 100 bytes and its body: what
//! every message shares is held once) and the answer's ids: about 5 MB for 10,000 recipients of
//! the load benchmark (a whole message and job per recipient would take 25 MB and more). A
//! message's carrier job is built only as the carrier queues take it.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::idempotent::{self, RawJson, Start};
use super::problem::Problem;
use super::validate::{self, CommonFields};
use super::{AppState, Scope, Tenant};
use crate::admission::limits::Reservation;
use crate::admission::template::{Template, Variables};
use crate::admission::Refusal;
use crate::domain::{now_ms, BatchRecord, MessageId, NewBatch, NewMessage, Status};
use crate::submit::{self, SubmitError};
use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::E164;
use tokio::sync::Semaphore;

/// Most recipients in one batch.
pub(crate) const MAX_RECIPIENTS: usize = 10_000;

/// Longest body template, bytes. The longest text a message may carry (10 segments) is under
/// 5 KiB of UTF-8; the rest leaves room for placeholders.
pub(crate) const MAX_TEMPLATE_BYTES: usize = 8 << 10;

/// Largest batch request body (about 800 bytes per recipient at 10,000 recipients); larger
/// ones get 413. `server.max_body_bytes` applies instead when it is larger.
pub(crate) const MAX_BODY_BYTES: usize = 8 << 20;

/// Jobs that may wait in the carrier queues, the scheduler and the backlog before a batch is
/// refused with 503 `queue_full` (the messages would wait anyway; beyond the queues only their
/// ids are in memory).
pub(crate) const MAX_BACKLOG: usize = 1_000_000;

/// Batches parsed and checked at once (each on a blocking thread): one per core, so a burst of
/// big batches queues here instead of taking every core from the rest of the gateway.
static PREPARING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

/// The request body of `POST /v1/messages/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// Recipients: 1 to 10,000.
    #[schema(value_type = Vec<BatchRecipient>)]
    pub(crate) recipients: Recipients,
    /// The body template; `{{name}}` is replaced by the recipient's variable `name`.
    pub(crate) body: String,
    /// Sender (as for a single send).
    pub(crate) from: String,
    /// `"sms"` (the default); for other channels, give `mode` and `channels`.
    pub(crate) channel: Option<String>,
    /// `single` (the default: an SMS per recipient), or a flow mode (`cascade`,
    /// `primary_backup`, `all_channels`, `staged`, `smart`): then every recipient gets the
    /// flow `channels` describes, as `POST /v1/messages` takes it, with `to` from the
    /// recipient (a number or an object of addresses), and `body` (and each step's `body`)
    /// is the template. At most 1,000 recipients then.
    pub(crate) mode: Option<String>,
    /// The flow's steps (with a flow `mode`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) channels: Option<serde_json::Value>,
    /// `auto` (default), `gsm7`, `ucs2` or `binary` (as for a single send: `body` is then the
    /// octets as hex, the same for every recipient, without placeholders).
    pub(crate) encoding: Option<String>,
    /// Binary SMS only: a user data header as hex, UDHL included (as for a single send).
    pub(crate) udh: Option<String>,
    /// Text or binary: the destination port of the 16-bit port IE (as for a single send).
    pub(crate) destination_port: Option<i64>,
    /// Text or binary: the originator port (as for a single send).
    pub(crate) source_port: Option<i64>,
    /// Binary SMS only: the 8-bit data_coding (as for a single send).
    pub(crate) data_coding: Option<i64>,
    /// `critical`, `high`, `normal` (default) or `low`.
    pub(crate) priority: Option<String>,
    /// As for a single send, per message.
    #[schema(value_type = Option<String>, example = "PT1H")]
    pub(crate) validity_period: Option<serde_json::Value>,
    /// RFC 3339 time to send every message at.
    pub(crate) scheduled_at: Option<String>,
    /// Status webhook for every message.
    pub(crate) callback_url: Option<String>,
    /// Labels for every message.
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// Tenant data for every message.
    #[schema(value_type = Option<Object>)]
    pub(crate) metadata: Option<serde_json::Value>,
}

/// One recipient of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRecipient {
    /// E.164 number (anything else is rejected for this recipient only); in a batch of
    /// flows, a number or an object of per-channel addresses as a flow's `to`; in either,
    /// `{"contact": "ct_…"}` for a stored contact (its phone for SMS; its addresses for a
    /// flow; refused for this recipient when unknown or when it denied consent).
    #[schema(value_type = serde_json::Value)]
    pub(crate) to: serde_json::Value,
    /// Values for the template's placeholders (strings, numbers, booleans).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) variables: Option<Variables>,
}

/// The `recipients` array as parsed: the first [`MAX_RECIPIENTS`] are kept, any beyond are
/// only counted (skipped without being built), so an oversized batch costs no more memory than
/// a full one and is refused by its count.
#[derive(Debug, Default)]
pub(crate) struct Recipients {
    /// The recipients kept, in order.
    pub(crate) items: Vec<BatchRecipient>,
    /// How many the array held.
    pub(crate) total: usize,
}

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Recipients;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of recipients")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Recipients, A::Error> {
                let hint = seq.size_hint().unwrap_or(0).min(MAX_RECIPIENTS);
                let mut out = Recipients {
                    items: Vec::with_capacity(hint),
                    total: 0,
                };
                while out.total < MAX_RECIPIENTS {
                    match seq.next_element()? {
                        Some(r) => out.items.push(r),
                        None => return Ok(out),
                    }
                    out.total += 1;
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    out.total += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// A recipient refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RejectedRecipient {
    /// Position in `recipients`, from 0.
    pub(crate) index: usize,
    /// The number as given.
    #[schema(value_type = String)]
    pub(crate) to: serde_json::Value,
    /// Stable code (`invalid_number`, `missing_variable`, `country_not_allowed`, `no_route`, …).
    pub(crate) code: &'static str,
    /// Why, for a person.
    pub(crate) reason: String,
}

/// An accepted recipient's message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchMessage {
    /// Position in `recipients`.
    pub(crate) index: usize,
    /// Message id.
    pub(crate) id: String,
}

/// The 202 answer of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchAccepted {
    /// Batch id (`bat_…`), for `GET /v1/batches/{id}`.
    pub(crate) id: String,
    /// `accepted` or `scheduled`.
    pub(crate) status: &'static str,
    /// Recipients in the request.
    pub(crate) recipients: usize,
    /// Messages stored.
    pub(crate) accepted: usize,
    /// Accepted recipients' message ids, in recipient order.
    pub(crate) messages: Vec<BatchMessage>,
    /// Refused recipients, in recipient order.
    pub(crate) rejected: Vec<RejectedRecipient>,
}

/// A batch that passed every check: what to store and answer.
struct Prepared {
    /// Recipients in the request.
    total: usize,
    /// The accepted recipients' messages, in order (at least one).
    batch: NewBatch,
    /// Each message's position in `recipients`.
    indexes: Vec<u32>,
    /// Refused recipients, in order.
    rejected: Vec<RejectedRecipient>,
    /// The tenant's quota for the messages, taken.
    reservation: Reservation,
    /// The encoding asked for (the carriers' jobs take it).
    preference: EncodingPreference,
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
        (status = 422, description = "Invalid or oversized template, no recipients, too many, or none valid", body = Problem),
        (status = 429, description = "Over the tenant's rate or quota (counted for every recipient); see Retry-After", body = Problem),
        (status = 503, description = "Overloaded; see Retry-After", body = Problem),
    ),
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
    if super::flows::is_flow(&raw) {
        return flow_batch(&state, &caller, &raw, running.as_ref()).await;
    }
    let tenant = caller.0.clone();
    let internal = |e: tokio::task::JoinError| {
        tracing::error!("checking a batch failed: {e}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the batch could not be checked",
        )
    };
    let (raw, refused) = contacts_in_batch(&state, &tenant, raw).await?;
    let slot = PREPARING
        .acquire()
        .await
        .map_err(|_| Problem::unavailable("shutting_down", "the gateway is shutting down", 5))?;
    let prepared = {
        let (state, tenant) = (state.clone(), tenant.clone());
        // The slot goes with the work: a request that times out does not free it early.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            prepare(&state, &tenant, &raw, &refused)
        })
        .await
        .map_err(internal)??
    };
    let Prepared {
        total,
        mut batch,
        indexes,
        rejected,
        reservation,
        preference,
    } = prepared;
    let now = now_ms();
    // `prepare` refuses a batch without a valid recipient.
    let Some(first) = batch.rows.first() else {
        return Err(Problem::invalid(
            "recipients",
            "no_valid_recipients",
            format!("all {total} recipients were rejected"),
        ));
    };
    let batch_id = format!("bat_{:016x}", first.id.0);

    // One `scheduled_at` for every message.
    let scheduled = batch.common.scheduled_at.is_some();
    let accepted = BatchAccepted {
        id: batch_id.clone(),
        status: if scheduled { "scheduled" } else { "accepted" },
        recipients: total,
        accepted: batch.rows.len(),
        messages: indexes
            .iter()
            .zip(&batch.rows)
            .map(|(&index, row)| BatchMessage {
                index: index as usize,
                id: row.id.to_string(),
            })
            .collect(),
        rejected,
    };
    drop(indexes);
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
    let n = batch.rows.len() as u64;
    let answer = idempotent::answer(StatusCode::ACCEPTED, &accepted, record.as_deref());
    batch.common.batch_id = Some(batch_id);
    batch.common.request = record;
    state
        .submit
        .commit_batch(Arc::new(batch), &tenant, preference, reservation)
        .await?;
    drop(running);
    metrics::counter!("switchyard_api_batch_messages_total").increment(n);
    Ok(answer)
}

/// Most recipients in one batch of flows: each is a flow checked and prepared on its own.
pub(crate) const MAX_FLOW_RECIPIENTS: usize = 1_000;

/// A batch with `mode` and `channels`: every recipient gets the flow. The request is a flow
/// request (as `POST /v1/messages` takes it, `to` left out) plus `recipients`; `body` (and
/// each step's `body`) is the template. Each recipient's flow is checked and its first
/// deliveries prepared as a single flow's; recipients refused for good are listed, a refusal
/// that passes (full queues, the tenant's rate) refuses the whole batch. The flows, their
/// first deliveries (marked with the batch), the batch row and the idempotency record are
/// one commit.
async fn flow_batch(
    state: &AppState,
    caller: &Tenant,
    raw: &RawJson,
    running: Option<&idempotent::InFlight>,
) -> Result<Response, Problem> {
    let tenant = caller.0.clone();
    let mut request: serde_json::Map<String, serde_json::Value> = raw.parse()?;
    let recipients: Vec<BatchRecipient> = match request.remove("recipients") {
        Some(r) => serde_json::from_value(r)
            .map_err(|e| Problem::invalid("recipients", "invalid_recipients", e.to_string()))?,
        None => Vec::new(),
    };
    if recipients.is_empty() || recipients.len() > MAX_FLOW_RECIPIENTS {
        return Err(Problem::invalid(
            "recipients",
            "invalid_recipient_count",
            format!(
                "a batch of flows takes 1 to {MAX_FLOW_RECIPIENTS} recipients, not {}",
                recipients.len()
            ),
        ));
    }
    if request.contains_key("to") {
        return Err(Problem::invalid(
            "to",
            "invalid_request",
            "a batch gives each recipient's `to` in `recipients`",
        ));
    }
    // The templates: the shared body and each step's own.
    let shared = match request.get("body").and_then(serde_json::Value::as_str) {
        Some(b) => {
            Some(Template::parse(b).map_err(|e| Problem::invalid("body", "invalid_template", e))?)
        }
        None => None,
    };
    let mut step_templates = Vec::new();
    for (i, step) in request
        .get("channels")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(b) = step.get("body").and_then(serde_json::Value::as_str) {
            let t = Template::parse(b).map_err(|e| {
                Problem::invalid(
                    "channels",
                    "invalid_template",
                    format!("channels[{i}].body: {e}"),
                )
            })?;
            step_templates.push((i, t));
        }
    }
    let now = now_ms();
    let batch_id = format!("bat_{:016x}", MessageId::generate(now).0);
    let mut planned = Vec::new();
    let mut rejected = Vec::new();
    for (index, r) in recipients.into_iter().enumerate() {
        let reject = |code: &'static str, reason: String| RejectedRecipient {
            index,
            to: r.to.clone(),
            code,
            reason,
        };
        let mut body = request.clone();
        body.insert("to".into(), r.to.clone());
        let mut rendered = Ok(());
        if let Some(t) = &shared {
            match t.render(r.variables.as_ref()) {
                Ok(text) => {
                    body.insert("body".into(), text.into());
                }
                Err(e) => rendered = Err(e.to_string()),
            }
        }
        for (i, t) in &step_templates {
            let step = body
                .get_mut("channels")
                .and_then(|c| c.get_mut(*i))
                .and_then(serde_json::Value::as_object_mut);
            match (t.render(r.variables.as_ref()), step) {
                (Ok(text), Some(step)) => {
                    step.insert("body".into(), text.into());
                }
                (Err(e), _) => rendered = Err(e.to_string()),
                (Ok(_), None) => {}
            }
        }
        if let Err(reason) = rendered {
            rejected.push(reject("missing_variable", reason));
            continue;
        }
        match super::flows::plan(state, &tenant, body.into(), Some(&batch_id), now).await {
            Ok(p) => planned.push((index, p)),
            // Not this recipient's fault: the whole batch waits, as a single send would.
            Err(p) if p.retry_after.is_some() || p.status >= 500 => return Err(p),
            Err(p) => rejected.push(reject(p.code, p.detail)),
        }
    }
    if planned.is_empty() {
        return Err(Problem::invalid(
            "recipients",
            "no_valid_recipients",
            format!("all {} recipients were rejected", rejected.len()),
        ));
    }
    let deliveries: usize = planned.iter().map(|(_, p)| p.prepared.len()).sum();
    let reservation = state
        .submit
        .admit(&tenant, deliveries as u32, now)
        .map_err(Problem::from)?;
    let total = planned.len() + rejected.len();
    let accepted = BatchAccepted {
        id: batch_id.clone(),
        status: "accepted",
        recipients: total,
        accepted: planned.len(),
        messages: planned
            .iter()
            .map(|(index, p)| BatchMessage {
                index: *index,
                id: p.accepted.id.clone(),
            })
            .collect(),
        rejected,
    };
    let mut record = idempotent::record(
        running,
        StatusCode::ACCEPTED,
        &accepted,
        Some(BatchRecord {
            id: batch_id,
            tenant: tenant.to_string(),
            created_at: now,
            recipients: total as u32,
            accepted: accepted.accepted as u32,
            rejected: accepted.rejected.len() as u32,
        }),
        now,
    )?
    .map(|r| (*r).clone())
    .unwrap_or_default();
    let answer = idempotent::answer(StatusCode::ACCEPTED, &accepted, Some(&record));
    let mut prepared = Vec::with_capacity(deliveries);
    let mut ids = Vec::with_capacity(planned.len());
    for (_, p) in planned {
        ids.push((p.flow.id, p.flow.with_unstarted_requests()));
        record
            .flows
            .push(crate::domain::FlowWrite::Insert(Box::new(p.flow)));
        prepared.extend(p.prepared);
    }
    state
        .submit
        .commit(
            prepared,
            Some(Arc::new(record)),
            reservation,
            crate::submit::Queueing::Bulk,
        )
        .await?;
    for (id, view) in ids {
        state.flows.track(id, tenant.clone(), Some(view));
    }
    metrics::counter!("switchyard_api_batch_messages_total").increment(deliveries as u64);
    Ok(answer)
}

/// Recipients of an SMS batch refused before the batch is checked (a contact that is unknown,
/// denied SMS or has no phone): by index, `to` as given and why.
type Refused = std::collections::HashMap<usize, (serde_json::Value, Problem)>;

/// An SMS batch whose recipients name contacts (`"to": {"contact": "ct_…"}`), with each such
/// `to` replaced by the contact's phone (one read for every contact), and the recipients
/// refused because of their contact (see [`super::contacts::recipient`]). A batch without
/// contacts is returned as it came.
async fn contacts_in_batch(
    state: &AppState,
    tenant: &str,
    raw: RawJson,
) -> Result<(RawJson, Refused), Problem> {
    use super::contacts::recipient;
    let mut refused = Refused::new();
    if !raw.bytes.windows(9).any(|w| w == b"\"contact\"") {
        return Ok((raw, refused));
    }
    let mut body: serde_json::Value = raw.parse()?;
    let Some(items) = body
        .get_mut("recipients")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Ok((raw, refused));
    };
    let named: Vec<_> = items
        .iter()
        .take(MAX_RECIPIENTS)
        .filter_map(|r| r.get("to").and_then(recipient::named))
        .collect();
    if named.is_empty() {
        return Ok((raw, refused));
    }
    let ids = named.into_iter().filter_map(Result::ok).collect();
    let contacts = recipient::load_many(state, tenant, ids).await?;
    for (index, r) in items.iter_mut().enumerate().take(MAX_RECIPIENTS) {
        let Some(Some(named)) = r.get("to").map(recipient::named) else {
            continue;
        };
        let given = r.get("to").cloned().unwrap_or_default();
        match named.and_then(|id| recipient::batch_sms_to(&contacts, id)) {
            Ok(to) => {
                r["to"] = to;
            }
            Err(p) => {
                // Left as given: `prepare` refuses it with `p`.
                refused.insert(index, (given, p));
            }
        }
    }
    let raw = RawJson {
        bytes: serde_json::to_vec(&body)
            .map_err(|e| Problem::bad_request("invalid_json", e.to_string()))?
            .into(),
        idempotency_key: raw.idempotency_key,
        method: raw.method,
        path: raw.path,
    };
    Ok((raw, refused))
}

/// Parses and checks a batch (CPU-bound: run it on a blocking thread). Cheap checks that
/// refuse the whole batch come first, then the tenant's quota and rate for every recipient,
/// then the per-recipient work. 422 `no_valid_recipients` when every recipient was refused.
fn prepare(
    state: &AppState,
    tenant: &Arc<str>,
    raw: &RawJson,
    refused: &Refused,
) -> Result<Prepared, Problem> {
    let req: BatchRequest = raw.parse()?;
    let total = req.recipients.total;
    // A flow `mode` went to `flow_batch`: here it is `single` or absent.
    if req.channels.is_some() || req.mode.as_deref().is_some_and(|m| m != "single") {
        return Err(Problem::invalid(
            "mode",
            "invalid_mode",
            "`channels` needs a flow `mode` (cascade, primary_backup, all_channels, staged, smart)",
        ));
    }
    if total == 0 || total > MAX_RECIPIENTS {
        return Err(Problem::invalid(
            "recipients",
            "invalid_recipients",
            format!("a batch has 1 to {MAX_RECIPIENTS} recipients (this one has {total})"),
        ));
    }
    if req.channel.as_deref().is_some_and(|c| c != "sms") {
        return Err(Problem::invalid(
            "channel",
            "unsupported_channel",
            "batches send SMS only; send voice calls one by one",
        ));
    }
    if req.body.len() > MAX_TEMPLATE_BYTES {
        return Err(Problem::invalid(
            "body",
            "template_too_long",
            format!(
                "the body template has {} bytes; at most {MAX_TEMPLATE_BYTES} are allowed",
                req.body.len()
            ),
        ));
    }
    let template =
        Template::parse(&req.body).map_err(|e| Problem::invalid("body", "invalid_template", e))?;
    let common = validate::common(
        CommonFields {
            from: &req.from,
            encoding: req.encoding.as_deref(),
            priority: req.priority.as_deref(),
            validity_period: req.validity_period.as_ref(),
            scheduled_at: req.scheduled_at.as_deref(),
            callback_url: req.callback_url,
            tags: req.tags,
            metadata: req.metadata,
        },
        switchyard_routing::Channel::Sms,
        &state.limits,
    )?;
    // One priority for the whole batch: above the tenant's `max_priority`, the whole batch is
    // refused.
    state.submit.check_priority(tenant, common.priority)?;
    super::validate::check_callback_signing(
        &state.events.directory,
        tenant,
        common.callback_url.as_deref(),
    )?;
    let binary = common.preference
        == switchyard_protocols::text::EncodingPreference::Force(
            switchyard_protocols::text::Encoding::Binary,
        );
    let binary_fields = validate::BinaryFields {
        udh: req.udh.as_deref(),
        destination_port: req.destination_port,
        source_port: req.source_port,
        data_coding: req.data_coding,
    };
    validate::binary_options_given(
        req.encoding.as_deref(),
        req.udh.is_some(),
        req.data_coding.is_some(),
    )?;
    // A text's header: the ports every segment carries.
    let text_udh = if binary {
        None
    } else {
        validate::text_ports(req.destination_port, req.source_port)?
    };
    // Every rendering contains the literal text: if it alone cannot be sent, nothing can. A
    // template without placeholders is the one body of every message: counted once here. A
    // binary body is octets, the same for every recipient.
    let constant = if binary {
        if !template.is_constant() {
            return Err(Problem::invalid(
                "body",
                "invalid_binary_body",
                "a binary body is hex octets, the same for every recipient: no placeholders",
            ));
        }
        let sms = validate::binary_body(&req.body, binary_fields, &state.limits)?;
        Some(Constant {
            info: switchyard_protocols::text::SegmentInfo {
                encoding: switchyard_protocols::text::Encoding::Binary,
                segments: sms.segments,
                units: sms.body.len() / 2,
                units_per_segment: 0,
                units_left: 0,
            },
            body: sms.body,
            udh: sms.udh,
            data_coding: sms.data_coding,
        })
    } else if template.is_constant() {
        validate::non_empty(&req.body)?;
        let info = validate::segments_behind(
            &req.body,
            common.preference,
            text_udh.as_deref(),
            &state.limits,
        )?;
        Some(Constant {
            body: req.body,
            info,
            udh: text_udh.clone(),
            data_coding: None,
        })
    } else {
        validate::segments_behind(
            &template.literal_text(),
            common.preference,
            text_udh.as_deref(),
            &state.limits,
        )?;
        None
    };
    let now = now_ms();
    // The routing plan, the backlog, then quota and rate for every recipient before any
    // per-recipient work; the quota of refused recipients is given back below.
    let mut reservation = state.submit.open_batch(tenant, total, MAX_BACKLOG, now)?;
    let udh = match &constant {
        Some(c) => c.udh.clone(),
        None => text_udh.clone(),
    };
    let mut batch = NewBatch {
        common: NewMessage {
            id: MessageId(0),
            tenant: tenant.to_string(),
            to: String::new(),
            country: None,
            from: common.from.clone(),
            body: constant
                .as_ref()
                .map(|c| c.body.clone())
                .unwrap_or_default(),
            encoding: None,
            segments: 0,
            priority: common.priority,
            scheduled_at: common.scheduled_at,
            expires_at: common.expires_at,
            callback_url: common.callback_url.clone(),
            tags: common.tags.clone(),
            metadata: common.metadata.clone(),
            carrier: None,
            price: None,
            created_at: now,
            batch_id: None,
            voice: None,
            email: None,
            chat: None,
            flow: None,
            request: None,
            smpp: None,
            udh,
            data_coding: constant.as_ref().and_then(|c| c.data_coding),
        },
        carriers: Vec::new(),
        rows: Vec::with_capacity(total),
    };
    let mut indexes = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    let shared = Shared {
        common: &common,
        template: &template,
        constant: constant.as_ref(),
        text_udh: text_udh.as_deref(),
    };
    let sms = submit::BatchSms {
        tenant,
        from: &common.from,
        priority: common.priority,
        udh: batch.common.udh.as_deref(),
    };
    // Each recipient is dropped once its row is made.
    for (index, r) in req.recipients.items.into_iter().enumerate() {
        let reject = |p: Problem, to: serde_json::Value| RejectedRecipient {
            index,
            to,
            code: p.code,
            reason: p.detail,
        };
        if let Some((given, p)) = refused.get(&index) {
            rejected.push(reject(p.clone(), given.clone()));
            continue;
        }
        let parts = match recipient_parts(state, &shared, &r) {
            Ok(parts) => parts,
            Err(p) => {
                rejected.push(reject(p, r.to));
                continue;
            }
        };
        // The route now (no queue-room check: a batch waits for room rather than failing).
        let id = MessageId::generate(now);
        let recipient = submit::BatchSmsTo {
            to: parts.to,
            country: parts.country,
            body: parts.body,
            encoding: parts.info.encoding,
            segments: parts.info.segments as u16,
        };
        let row = state
            .submit
            .prepare_batch_sms(&sms, recipient, id, &mut batch.carriers);
        match row {
            Ok(row) => {
                indexes.push(index as u32);
                batch.rows.push(row);
            }
            // A channel the plan does not include refuses the whole batch.
            Err(e @ SubmitError::Refused(Refusal::ChannelNotAllowed(_))) => return Err(e.into()),
            Err(e) => rejected.push(reject(e.into(), r.to)),
        }
    }
    // Refused recipients give their quota back (all of it when none passed).
    reservation.shrink(batch.rows.len() as u32);
    if batch.rows.is_empty() {
        let first = rejected
            .first()
            .map(|r| format!("; recipient {}: {} ({})", r.index, r.reason, r.code))
            .unwrap_or_default();
        return Err(Problem::invalid(
            "recipients",
            "no_valid_recipients",
            format!("all {total} recipients were rejected{first}"),
        ));
    }
    batch.rows.shrink_to_fit();
    Ok(Prepared {
        total,
        batch,
        indexes,
        rejected,
        reservation,
        preference: common.preference,
    })
}

/// The one body of every message of a batch (a template without placeholders, or a binary
/// body), checked and counted once.
#[derive(Debug)]
struct Constant {
    /// The text, or the octets as hex.
    body: String,
    /// Its encoding and segments.
    info: switchyard_protocols::text::SegmentInfo,
    /// Its user data header: a binary body's, or a text's ports.
    udh: Option<Vec<u8>>,
    /// A binary body's data_coding when not 4.
    data_coding: Option<u8>,
}

/// What every recipient's message of a batch shares.
#[derive(Clone, Copy, Debug)]
struct Shared<'a> {
    /// The fields checked once.
    common: &'a validate::Common,
    /// The body template.
    template: &'a Template,
    /// The one body, when the template has no placeholders or the body is binary.
    constant: Option<&'a Constant>,
    /// A text's user data header (the ports), when asked for.
    text_udh: Option<&'a [u8]>,
}

/// What is a recipient's own in its message: the number parsed, the body rendered and counted
/// (`None` when the template has no placeholders: the batch's one body, counted once).
struct Parts {
    /// The number.
    to: E164,
    /// Its country.
    country: Option<Box<str>>,
    /// The recipient's own body.
    body: Option<Box<str>>,
    /// Its encoding and segments.
    info: switchyard_protocols::text::SegmentInfo,
}

/// One recipient's [`Parts`]: its number parsed, the template rendered and counted (once for
/// all when the template has no placeholders).
fn recipient_parts(
    state: &AppState,
    shared: &Shared<'_>,
    r: &BatchRecipient,
) -> Result<Parts, Problem> {
    let Shared {
        common,
        template,
        constant,
        text_udh,
    } = *shared;
    let (to, country) = match r.to.as_str() {
        Some(s) => crate::number::parse_e164(s.trim()),
        None => Err("to must be a string: \"+\" and an E.164 number".to_owned()),
    }
    .map_err(|d| Problem::invalid("to", "invalid_number", d))?;
    let (body, info) = match constant {
        Some(c) => (None, c.info),
        None => {
            let body = template.render(r.variables.as_ref()).map_err(|e| {
                let code = match e {
                    crate::admission::template::RenderError::Missing(_) => "missing_variable",
                    _ => "invalid_variable",
                };
                Problem::invalid("body", code, e.to_string())
            })?;
            validate::non_empty(&body)?;
            let info =
                validate::segments_behind(&body, common.preference, text_udh, &state.limits)?;
            (Some(body.into_boxed_str()), info)
        }
    };
    Ok(Parts {
        to,
        country: country.map(String::into_boxed_str),
        body,
        info,
    })
}

/// A batch's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchView {
    /// Batch id.
    pub(crate) id: String,
    /// `in_progress` until every accepted message reached a final status, then `completed`.
    pub(crate) status: &'static str,
    /// Accepted at (RFC 3339).
    pub(crate) created_at: String,
    /// Recipients in the request.
    pub(crate) recipients: u32,
    /// Messages stored.
    pub(crate) accepted: u32,
    /// Recipients refused at submission.
    pub(crate) rejected: u32,
    /// Messages per current status.
    pub(crate) counts: BTreeMap<String, u64>,
}

/// `GET /v1/batches/{id}`: counts of the batch's messages by status.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "messages",
    params(("id" = String, Path, description = "Batch id (bat_…)")),
    responses((status = 200, body = BatchView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(
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
        .await?
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
