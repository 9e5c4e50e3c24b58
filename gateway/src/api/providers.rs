//! `/v1/providers/{carrier}/webhook`: where chat providers (RBM, WhatsApp, Telegram,
//! Messenger) report what became of the messages they took and what people sent to the
//! account. No API key: each request is verified by the provider's signature instead
//! ([`crate::chat::webhooks`]). Inbound messages get their owner (the tenant whose `accounts`
//! list the account) and their keyword's opt-out, and are stored like SMS MO (webhook, SSE,
//! `GET /v1/inbound`). The 200 goes out only once the receipts and inbound messages it
//! carried are committed, so a provider that sees an error sends the webhook again; the
//! messaging windows learn of an inbound message only once it is committed. An inbound
//! message the account already has (same platform id: the provider sent the webhook again)
//! is acknowledged the same and stored, announced and counted once.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use super::AppState;
use crate::chat::webhooks::{self, WebhookError};
use crate::domain::{Applied, Update};

/// Meta's subscription check (`GET` with `hub.mode`, `hub.verify_token`, `hub.challenge`).
#[utoipa::path(get, path = "/v1/providers/{carrier}/webhook", tag = "providers",
    params(("carrier" = String, Path, description = "The carrier's name in the configuration"),
        ("hub.mode" = Option<String>, Query, description = "`subscribe`"),
        ("hub.verify_token" = Option<String>, Query, description = "The carrier's `verify_token`"),
        ("hub.challenge" = Option<String>, Query, description = "Echoed back when the token matches")),
    responses((status = 200, description = "The challenge", body = String, content_type = "text/plain"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    Path(carrier): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str);
    match webhooks::subscribe(
        &state.chat,
        &carrier,
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    ) {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(e) => refusal(&carrier, e).into_response(),
    }
}

/// A status webhook.
#[utoipa::path(post, path = "/v1/providers/{carrier}/webhook", tag = "providers",
    params(("carrier" = String, Path, description = "The carrier's name in the configuration")),
    request_body(content = Object, description = "The provider's own payload, verified by its signature header"),
    responses((status = 200, description = "Receipts stored"),
        (status = 400, description = "Not a webhook of this provider", body = Problem),
        (status = 401, description = "Bad signature", body = Problem),
        (status = 404, description = "No such carrier, or its webhook is not configured", body = Problem),
        (status = 503, description = "Receipts not stored; send the webhook again", body = Problem)))]
pub(crate) async fn webhook(
    State(state): State<AppState>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reported = match webhooks::receipts(&state.chat, &carrier, &headers, &body) {
        Ok(r) => r,
        Err(e) => return refusal(&carrier, e).into_response(),
    };
    let mut pending = Vec::with_capacity(reported.receipts.len() + reported.inbound.len());
    for r in reported.receipts {
        pending.push(state.updates.send_durable(Update::Receipt(r)).await);
    }
    let mut inbound = reported.inbound;
    for m in &mut inbound {
        state.inbound.classify_chat(m);
        pending.push(state.updates.send_durable(Update::Inbound(m.clone())).await);
    }
    // The inbound messages' commits come last, in `inbound`'s order.
    let first_inbound = pending.len() - inbound.len();
    let mut stored = Vec::with_capacity(inbound.len());
    for (i, committed) in pending.into_iter().enumerate() {
        match committed.await {
            Ok(Ok(applied)) => {
                if i >= first_inbound {
                    stored.push(matches!(applied, Applied::Inbound(_)));
                }
            }
            _ => {
                return Problem::unavailable(
                    "store_unavailable",
                    "the webhook's statuses or messages could not be stored; send it again",
                    2,
                )
                .into_response()
            }
        }
    }
    // One the account already had (the provider sent it again) did all this the first time.
    for (m, _) in inbound.iter().zip(stored).filter(|(_, stored)| *stored) {
        state.inbound.chat_stored(m);
        state.windows.record(m);
    }
    StatusCode::OK.into_response()
}

/// The answer to a webhook that is refused (logged for the operator).
fn refusal(carrier: &str, e: WebhookError) -> Problem {
    tracing::warn!(%carrier, "provider webhook refused: {e}");
    let (status, code) = match e {
        WebhookError::UnknownCarrier => (StatusCode::NOT_FOUND, "not_found"),
        WebhookError::NotConfigured => (StatusCode::NOT_FOUND, "webhook_not_configured"),
        WebhookError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
        WebhookError::Malformed(_) => (StatusCode::BAD_REQUEST, "invalid_webhook"),
    };
    Problem::new(status, code, e.to_string())
}
