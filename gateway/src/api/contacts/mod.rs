//! `/v1/contacts`: the tenant's contacts, each with an address per channel and consent per
//! channel ([`crate::domain::Contact`]).
//!
//! # Layout
//! - this file: the JSON shapes, the checks every address and field passes, and the CRUD
//!   handlers (`POST`, `GET` list and one, `PATCH`, `DELETE`).
//! - [`import`]: `POST /v1/contacts/import`, a CSV upsert by `external_id`, read as it arrives.
//! - [`recipient`]: `"to": {"contact": "ct_…"}` on `POST /v1/messages` and in batches: the
//!   contact's addresses fill the channels, and a channel it denied consent for is refused.
//!
//! Writes go to the store as [`Update::Contact`], decided inside the writer's transaction, so
//! an external id stays unique within the tenant however requests interleave.

pub(crate) mod import;
pub(crate) mod recipient;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::problem::Problem;
use super::{AppState, Scope, Tenant};
use crate::domain::{
    now_ms, rfc3339, Applied, AttributesPatch, Consent, ConsentState, Contact, ContactApplied,
    ContactFilter, ContactId, ContactPatch, ContactWrite, UnixMs, Update, ADDRESS_KINDS,
    CONSENT_CHANNELS,
};

/// The contacts' part of the OpenAPI document (merged into [`super::openapi::document`]).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(create, list, get, patch, remove, import::import),
    components(schemas(ContactView, ContactInput, ContactPage, import::ImportReport, import::RejectedRow, recipient::DroppedStep)),
    tags((name = "contacts", description = "A tenant's contacts: addresses and consent per channel; `to: {\"contact\": \"ct_…\"}` sends to one"))
)]
pub(crate) struct ContactsApi;

/// Longest external id, name or consent source, in characters.
const MAX_TEXT: usize = 256;
/// Largest `attributes` object, serialised, in bytes.
const MAX_ATTRIBUTES: usize = 16 * 1024;

/// A contact as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ContactView {
    /// Its id (`ct_…`).
    pub(crate) id: String,
    /// The tenant's own key for the person, unique within the tenant.
    pub(crate) external_id: Option<String>,
    /// Display name.
    pub(crate) name: Option<String>,
    /// E.164: SMS and voice, and WhatsApp and RCS unless those have their own number.
    pub(crate) phone: Option<String>,
    /// Email address (lower-cased).
    pub(crate) email: Option<String>,
    /// WhatsApp number (E.164), when not `phone`.
    pub(crate) whatsapp: Option<String>,
    /// Telegram chat id or `@username`.
    pub(crate) telegram: Option<String>,
    /// Messenger page-scoped id.
    pub(crate) messenger: Option<String>,
    /// RCS number (E.164), when not `phone`.
    pub(crate) rcs: Option<String>,
    /// Consent per channel (`sms`, `voice`, `email`, `whatsapp`, `telegram`, `messenger`,
    /// `rcs`): `{"state": "granted" | "denied" | "unset", "at": RFC 3339, "source": …}`; a
    /// channel left out has no record (unset).
    #[schema(value_type = Object)]
    pub(crate) consent: Map<String, Value>,
    /// The tenant's own fields.
    #[schema(value_type = Option<Object>)]
    pub(crate) attributes: Option<Value>,
    /// Created at (RFC 3339).
    pub(crate) created_at: String,
    /// Last changed at (RFC 3339).
    pub(crate) updated_at: String,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        let consent = c
            .consent
            .iter()
            .map(|(channel, r)| {
                (
                    channel.clone(),
                    serde_json::json!({
                        "state": r.state.as_str(),
                        "at": rfc3339(r.at),
                        "source": r.source,
                    }),
                )
            })
            .collect();
        ContactView {
            id: c.id.to_string(),
            external_id: c.external_id,
            name: c.name,
            phone: c.addresses.phone,
            email: c.addresses.email,
            whatsapp: c.addresses.whatsapp,
            telegram: c.addresses.telegram,
            messenger: c.addresses.messenger,
            rcs: c.addresses.rcs,
            consent,
            attributes: c.attributes.and_then(|t| serde_json::from_str(&t).ok()),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// The body of `POST /v1/contacts` and `PATCH /v1/contacts/{id}` (for the OpenAPI document;
/// the handlers read it field by field, so a `PATCH` can tell a `null` from a field left out).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactInput {
    /// The tenant's own key, unique within the tenant (`null` clears it in a `PATCH`).
    pub(crate) external_id: Option<String>,
    /// Display name.
    pub(crate) name: Option<String>,
    /// E.164 number (`+447911123456`).
    pub(crate) phone: Option<String>,
    /// Email address.
    pub(crate) email: Option<String>,
    /// WhatsApp number (E.164), when not `phone`.
    pub(crate) whatsapp: Option<String>,
    /// Telegram chat id (an integer) or `@username`.
    pub(crate) telegram: Option<String>,
    /// Messenger page-scoped id (digits).
    pub(crate) messenger: Option<String>,
    /// RCS number (E.164), when not `phone`.
    pub(crate) rcs: Option<String>,
    /// Per channel: `"granted"`, `"denied"`, `"unset"`, or `{"state": …, "source": …}`
    /// (`source` defaults to `api`). Channels left out keep their record.
    #[schema(value_type = Option<Object>)]
    pub(crate) consent: Option<Value>,
    /// The tenant's own fields (a JSON object, at most 16 KiB): merged into the stored ones;
    /// a key set to `null` is removed, `"attributes": null` removes them all.
    #[schema(value_type = Option<Object>)]
    pub(crate) attributes: Option<Value>,
}

/// A checked address of `kind` (one of [`ADDRESS_KINDS`]) in the form the store keeps and the
/// message API sends to: E.164 with `+` for `phone`, `whatsapp` and `rcs`, a lower-cased
/// email, a Telegram chat id or `@username`, a Messenger page-scoped id. The checks are the
/// message API's.
pub(crate) fn address(kind: &'static str, raw: &str) -> Result<String, Problem> {
    use super::validate::{chat_recipient, email_address, Recipient};
    use crate::domain::ChatChannel;
    let at = |p: Problem| Problem {
        field: Some(kind),
        detail: format!("{kind}: {}", p.detail),
        ..p
    };
    let raw = raw.trim();
    match kind {
        "phone" | "whatsapp" | "rcs" => crate::number::parse_e164(raw)
            .map(|(n, _)| format!("+{}", n.as_str()))
            .map_err(|d| Problem::invalid(kind, "invalid_number", format!("{kind}: {d}"))),
        "email" => email_address(kind, raw).map_err(at),
        "telegram" | "messenger" => {
            let channel = if kind == "telegram" {
                ChatChannel::Telegram
            } else {
                ChatChannel::Messenger
            };
            chat_recipient(&Recipient::Phone(raw.to_owned()), channel)
                .map(|(r, _)| r.stored())
                .map_err(at)
        }
        _ => Err(Problem::invalid(
            "body",
            "unknown_field",
            format!("{kind:?} is not an address kind"),
        )),
    }
}

/// A short text field: one line, no NUL, at most [`MAX_TEXT`] characters, not empty.
pub(crate) fn short_text(field: &'static str, raw: &str) -> Result<String, Problem> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(Problem::invalid(
            field,
            "invalid_text",
            format!("{field} is 1 to {MAX_TEXT} characters of one line"),
        ));
    }
    Ok(t.to_owned())
}

/// One channel's consent as given: `"granted"` or `{"state": "granted", "source": "form"}`.
fn consent_value(channel: &str, v: &Value, at: UnixMs) -> Result<Consent, Problem> {
    let bad = |d: String| Problem::invalid("consent", "invalid_consent", d);
    let (state, source) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (
            o.get("state").and_then(Value::as_str).unwrap_or_default(),
            o.get("source").and_then(Value::as_str),
        ),
        _ => {
            return Err(bad(format!(
                "consent.{channel} is \"granted\", \"denied\", \"unset\" or {{\"state\": …, \"source\": …}}"
            )))
        }
    };
    let state: ConsentState = state
        .parse()
        .map_err(|e: String| bad(format!("consent.{channel}: {e}")))?;
    let source = match source {
        Some(s) => short_text("consent", s)?,
        None => "api".to_owned(),
    };
    Ok(Consent { state, at, source })
}

/// The consent map of a request: channels from [`CONSENT_CHANNELS`] only.
pub(crate) fn consent_channel(channel: &str) -> Result<&'static str, Problem> {
    CONSENT_CHANNELS
        .iter()
        .find(|c| **c == channel)
        .copied()
        .ok_or_else(|| {
            Problem::invalid(
                "consent",
                "invalid_consent",
                format!(
                    "{channel:?} is not a channel with consent; use {}",
                    CONSENT_CHANNELS.join(", ")
                ),
            )
        })
}

/// Reads a create or patch body into a checked [`ContactPatch`]. In a create, `null` is the
/// same as leaving the field out.
fn patch_from(
    tenant: &str,
    body: Map<String, Value>,
    creating: bool,
    now: UnixMs,
) -> Result<ContactPatch, Problem> {
    let mut patch = ContactPatch {
        tenant: tenant.to_owned(),
        at: now,
        ..ContactPatch::default()
    };
    let text = |field: &'static str, v: &Value| -> Result<Option<String>, Problem> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(Problem::invalid(
                field,
                "invalid_type",
                format!("{field} is a string or null"),
            )),
        }
    };
    for (key, value) in body {
        if creating && value.is_null() {
            continue;
        }
        match key.as_str() {
            "external_id" => {
                patch.external_id = Some(
                    text("external_id", &value)?
                        .map(|s| short_text("external_id", &s))
                        .transpose()?,
                )
            }
            "name" => {
                patch.name = Some(
                    text("name", &value)?
                        .map(|s| short_text("name", &s))
                        .transpose()?,
                )
            }
            "consent" => {
                let Value::Object(map) = value else {
                    return Err(Problem::invalid(
                        "consent",
                        "invalid_consent",
                        "consent is an object: {\"sms\": \"granted\", …}",
                    ));
                };
                for (channel, v) in map {
                    let channel = consent_channel(&channel)?;
                    patch
                        .consent
                        .insert(channel.to_owned(), consent_value(channel, &v, now)?);
                }
            }
            "attributes" => {
                patch.attributes = Some(match value {
                    Value::Null => AttributesPatch::Clear,
                    Value::Object(o) => {
                        let text = serde_json::to_string(&o).unwrap_or_default();
                        if text.len() > MAX_ATTRIBUTES {
                            return Err(Problem::invalid(
                                "attributes",
                                "invalid_attributes",
                                format!(
                                    "attributes is at most {} KiB of JSON",
                                    MAX_ATTRIBUTES / 1024
                                ),
                            ));
                        }
                        AttributesPatch::Merge(o)
                    }
                    _ => {
                        return Err(Problem::invalid(
                            "attributes",
                            "invalid_attributes",
                            "attributes is a JSON object",
                        ))
                    }
                })
            }
            other => {
                let Some(kind) = ADDRESS_KINDS.iter().find(|k| **k == other).copied() else {
                    return Err(Problem::invalid(
                        "body",
                        "unknown_field",
                        format!(
                            "unknown field {other:?}; a contact has external_id, name, {}, \
                             consent and attributes",
                            ADDRESS_KINDS.join(", ")
                        ),
                    ));
                };
                let v = text(kind, &value)?
                    .map(|raw| address(kind, &raw))
                    .transpose()?;
                patch.addresses.insert(kind.to_owned(), v);
            }
        }
    }
    Ok(patch)
}

/// The body as a JSON object, or the problem axum's `Json` extractor would give.
fn object(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, Problem> {
    match body.map_err(super::problem::json_problem)? {
        Json(Value::Object(o)) => Ok(o),
        Json(_) => Err(Problem::invalid(
            "body",
            "invalid_request",
            "the body is a JSON object",
        )),
    }
}

/// A contact id from a path, or 404 (ids are opaque: a malformed one names nothing).
pub(crate) fn parse_id(raw: &str) -> Result<ContactId, Problem> {
    raw.parse().map_err(|_| Problem::not_found("contact"))
}

/// What the store said about a write, as an answer.
fn outcome(applied: Vec<Applied>) -> Result<Contact, Problem> {
    match applied.into_iter().next() {
        Some(Applied::Contact(ContactApplied::Created(c) | ContactApplied::Updated(c))) => Ok(*c),
        Some(Applied::Contact(ContactApplied::Conflict(other))) => Err(Problem::new(
            StatusCode::CONFLICT,
            "external_id_taken",
            format!("another contact ({other}) has this external_id"),
        )),
        Some(Applied::Contact(ContactApplied::NotFound)) => Err(Problem::not_found("contact")),
        other => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the store answered {other:?}"),
        )),
    }
}

/// `POST /v1/contacts`.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactInput,
    responses(
        (status = 201, description = "Created", body = ContactView),
        (status = 403, description = "The key lacks the `admin` scope", body = Problem),
        (status = 409, description = "Another contact has this external_id", body = Problem),
        (status = 422, description = "A field is not acceptable (see `field`)", body = Problem),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Tenant,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ContactView>), Problem> {
    caller.require(Scope::Admin)?;
    let now = now_ms();
    let patch = patch_from(&caller.0, object(body)?, true, now)?;
    let applied = state
        .store
        .apply(vec![Update::Contact(ContactWrite::Create {
            id: ContactId::generate(now),
            patch: Box::new(patch),
        })])
        .await?;
    Ok((StatusCode::CREATED, Json(outcome(applied)?.into())))
}

/// `PATCH /v1/contacts/{id}`: fields given are set (`null` clears), others kept.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts", request_body = ContactInput,
    params(("id" = String, Path, description = "Contact id (ct_…)")),
    responses(
        (status = 200, description = "The contact as it is now", body = ContactView),
        (status = 404, body = Problem),
        (status = 409, description = "Another contact has this external_id", body = Problem),
        (status = 422, description = "A field is not acceptable (see `field`)", body = Problem),
    ),
    security(("bearer" = [])))]
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<ContactView>, Problem> {
    caller.require(Scope::Admin)?;
    let id = parse_id(&id)?;
    let patch = patch_from(&caller.0, object(body)?, false, now_ms())?;
    let applied = state
        .store
        .apply(vec![Update::Contact(ContactWrite::Patch {
            id,
            patch: Box::new(patch),
        })])
        .await?;
    Ok(Json(outcome(applied)?.into()))
}

/// `GET /v1/contacts/{id}`.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (ct_…)")),
    responses((status = 200, body = ContactView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
) -> Result<Json<ContactView>, Problem> {
    caller.require(Scope::Read)?;
    let id = parse_id(&id)?;
    let found = state.store.contacts_by_id(&caller.0, vec![id]).await?;
    found
        .into_iter()
        .next()
        .map(|c| Json(c.into()))
        .ok_or_else(|| Problem::not_found("contact"))
}

/// `DELETE /v1/contacts/{id}`.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (ct_…)")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(Scope::Admin)?;
    let id = parse_id(&id)?;
    let applied = state
        .store
        .apply(vec![Update::Contact(ContactWrite::Delete {
            tenant: caller.0.to_string(),
            id,
        })])
        .await?;
    match applied.first() {
        Some(Applied::Contact(ContactApplied::Deleted)) => Ok(StatusCode::NO_CONTENT),
        _ => Err(Problem::not_found("contact")),
    }
}

/// Query of `GET /v1/contacts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only contacts with this address, of any kind (a number in E.164, an email address, a
    /// Telegram or Messenger id).
    pub(crate) address: Option<String>,
    /// Only the contact with this external id.
    pub(crate) external_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub(crate) limit: Option<usize>,
}

/// An address given to filter by, in the form the store keeps: a number in E.164 with `+`, an
/// email lower-cased, anything else as given.
fn address_filter(raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with('+') {
        if let Ok(a) = address("phone", raw) {
            return a;
        }
    }
    if raw.contains('@') && !raw.starts_with('@') {
        return raw.to_lowercase();
    }
    raw.to_owned()
}

/// `GET /v1/contacts`: newest first, cursor pagination.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ListQuery),
    responses((status = 200, description = "A page of contacts, newest first", body = ContactPage), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Tenant,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ContactPage>, Problem> {
    caller.require(Scope::Read)?;
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<ContactId>()
                .map_err(|e| Problem::invalid("cursor", "invalid_cursor", e))
        })
        .transpose()?;
    let filter = ContactFilter {
        address: q.address.as_deref().map(address_filter),
        external_id: q.external_id.map(|e| e.trim().to_owned()),
        before,
        limit,
    };
    let rows = state.store.contacts(&caller.0, filter).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|c| c.id.to_string()))
        .flatten();
    Ok(Json(ContactPage {
        data: rows.into_iter().map(ContactView::from).collect(),
        next_cursor,
    }))
}

/// A page of contacts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ContactPage {
    /// Newest first.
    pub(crate) data: Vec<ContactView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub(crate) next_cursor: Option<String>,
}
