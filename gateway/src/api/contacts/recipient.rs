//! Sending to a contact: `"to": {"contact": "ct_…"}` on `POST /v1/messages` (single and every
//! flow mode) and for a batch's recipients.
//!
//! The contact is looked up for the caller's tenant only (another tenant's id is 404, as an
//! unknown one). Its addresses then stand in for `to` before the request is checked as usual,
//! so everything else (validation, opt-outs, windows, routing) is what it is for an address:
//! - a single send goes to the contact's address for its channel ([`Addresses::for_channel`]:
//!   the channel's own, or `phone` for SMS, voice, WhatsApp and RCS); a channel whose consent
//!   is `denied` is refused (422 `consent_denied`), one without an address too (422
//!   `contact_has_no_address`);
//! - a flow keeps the steps the contact can take: steps on a denied channel or one without an
//!   address are dropped (the 202 lists them under `dropped`); none left is 422
//!   (`consent_denied` when consent was the reason for any step, else
//!   `contact_has_no_address`). A `primary_backup` flow left with one step runs it as a
//!   one-step `cascade`.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::idempotent::RawJson;
use crate::api::problem::Problem;
use crate::api::AppState;
use crate::domain::{Addresses, Contact, ContactId};

/// A flow step left out because of the contact.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct DroppedStep {
    /// Its place in the request's `channels`, from 0.
    pub(crate) step: usize,
    /// Its channel.
    pub(crate) channel: String,
    /// `consent_denied` or `contact_has_no_address`.
    pub(crate) code: &'static str,
}

/// The contact `to` names, if it names one: `{"contact": "ct_…"}` and nothing else. A
/// malformed id is 404 (ids are opaque); another key beside `contact` is 422.
pub(crate) fn named(to: &Value) -> Option<Result<ContactId, Problem>> {
    let o = to.as_object()?;
    let id = o.get("contact")?;
    if o.len() > 1 {
        return Some(Err(Problem::invalid(
            "to",
            "invalid_recipient",
            "{\"contact\": …} names a contact alone: its addresses fill the channels",
        )));
    }
    Some(
        id.as_str()
            .and_then(|s| s.parse::<ContactId>().ok())
            .ok_or_else(not_found),
    )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "contact_not_found",
        "no contact with that id",
    )
}

/// The contact `id` of `tenant`, or 404 `contact_not_found`.
pub(crate) async fn load(
    state: &AppState,
    tenant: &str,
    id: ContactId,
) -> Result<Contact, Problem> {
    state
        .store
        .contacts_by_id(tenant, vec![id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(not_found)
}

/// The contacts of `tenant` among `ids`, by id (one read for a whole batch).
pub(crate) async fn load_many(
    state: &AppState,
    tenant: &str,
    ids: Vec<ContactId>,
) -> Result<HashMap<ContactId, Contact>, Problem> {
    Ok(state
        .store
        .contacts_by_id(tenant, ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect())
}

/// Why `contact` cannot be sent to on `channel`, as a problem; `None` when it can.
fn refusal(contact: &Contact, channel: &str) -> Option<Problem> {
    if contact.denies(channel) {
        return Some(Problem::invalid(
            "to",
            "consent_denied",
            format!(
                "contact {} denied consent to messages on {channel}",
                contact.id
            ),
        ));
    }
    if contact.addresses.for_channel(channel).is_none() {
        return Some(Problem::invalid(
            "to",
            "contact_has_no_address",
            format!("contact {} has no address for {channel}", contact.id),
        ));
    }
    None
}

/// `to` for a single send on `channel` to `contact`: its address there, in the recipient shape
/// the message API takes for that channel.
pub(crate) fn single_to(contact: &Contact, channel: &str) -> Result<Value, Problem> {
    if let Some(p) = refusal(contact, channel) {
        return Err(p);
    }
    let Some((kind, address)) = contact.addresses.for_channel(channel) else {
        return Err(Problem::invalid(
            "to",
            "contact_has_no_address",
            format!("contact {} has no address for {channel}", contact.id),
        ));
    };
    Ok(match kind {
        "telegram" | "messenger" => serde_json::json!({ kind: address }),
        _ => Value::String(address.to_owned()),
    })
}

/// The recipient object a flow takes, with every address of `a`.
fn flow_to(a: &Addresses) -> Value {
    let mut o = Map::new();
    for kind in crate::domain::ADDRESS_KINDS {
        if let Some(v) = a.get(kind) {
            o.insert(kind.to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(o)
}

/// A single send's JSON body whose `to` names a contact, with `to` replaced by the contact's
/// address for the body's `channel` (default `sms`); `None` when `to` names no contact (the
/// body is then read as it came).
pub(crate) async fn resolve_single(
    state: &AppState,
    tenant: &str,
    raw: &RawJson,
) -> Result<Option<Value>, Problem> {
    // Only a body with the key is parsed twice.
    if !raw.bytes.windows(9).any(|w| w == b"\"contact\"") {
        return Ok(None);
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&raw.bytes) else {
        return Ok(None);
    };
    let Some(id) = body.get("to").and_then(named) else {
        return Ok(None);
    };
    let contact = load(state, tenant, id?).await?;
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("sms")
        .to_owned();
    body.insert("to".into(), single_to(&contact, &channel)?);
    Ok(Some(Value::Object(body)))
}

/// Rewrites a flow's JSON body whose `to` names a contact: `to` becomes the contact's
/// addresses and the steps it cannot take are removed; returns them. Bodies without a
/// contact are left alone.
pub(crate) async fn resolve_flow(
    state: &AppState,
    tenant: &str,
    body: &mut Value,
) -> Result<Vec<DroppedStep>, Problem> {
    let Some(id) = body.get("to").and_then(named) else {
        return Ok(Vec::new());
    };
    let contact = load(state, tenant, id?).await?;
    let Some(o) = body.as_object_mut() else {
        return Ok(Vec::new());
    };
    let mut dropped = Vec::new();
    let mut first: Option<Problem> = None;
    if let Some(Value::Array(steps)) = o.get_mut("channels") {
        let mut kept = Vec::with_capacity(steps.len());
        for (i, step) in std::mem::take(steps).into_iter().enumerate() {
            // A step without a readable channel is left for the flow's own checks to refuse.
            let channel = step
                .get("channel")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match channel.as_deref().and_then(|c| refusal(&contact, c)) {
                Some(p) => {
                    dropped.push(DroppedStep {
                        step: i,
                        channel: channel.unwrap_or_default(),
                        code: p.code,
                    });
                    if first.is_none() || p.code == "consent_denied" {
                        first = Some(p);
                    }
                }
                None => kept.push(step),
            }
        }
        if kept.is_empty() {
            if let Some(p) = first {
                return Err(Problem {
                    detail: format!(
                        "no step of the flow can reach contact {}: {}",
                        contact.id, p.detail
                    ),
                    ..p
                });
            }
        }
        let one_left = kept.len() == 1;
        *steps = kept;
        if one_left
            && !dropped.is_empty()
            && o.get("mode").and_then(Value::as_str) == Some("primary_backup")
        {
            o.insert("mode".into(), Value::String("cascade".into()));
        }
    }
    o.insert("to".into(), flow_to(&contact.addresses));
    Ok(dropped)
}

/// A batch recipient's `to` resolved against `contacts`: the contact's phone for an SMS batch.
pub(crate) fn batch_sms_to(
    contacts: &HashMap<ContactId, Contact>,
    id: ContactId,
) -> Result<Value, Problem> {
    let contact = contacts.get(&id).ok_or_else(not_found)?;
    single_to(contact, "sms")
}
