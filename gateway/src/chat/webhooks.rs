//! The providers' status webhooks: verified, then turned into receipts the store matches by
//! carrier and message id (the API serves them at `/v1/providers/{carrier}/webhook`).
//!
//! - RBM: a Pub/Sub push (`{"message":{"data":<base64 event>}}`) signed with
//!   `X-Goog-Signature: base64(HMAC-SHA512(webhook client token, decoded data))`. `DELIVERED`
//!   → delivered, `READ` → read; `TTL_EXPIRATION_REVOKED` → expired.
//! - WhatsApp: `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(app secret, raw body))`;
//!   `entry[].changes[].value.statuses[]`: `delivered` → delivered, `read` → read, `failed` →
//!   undeliverable with the error's code and title, `sent` changes nothing. A `GET` with
//!   `hub.mode=subscribe` and the configured `hub.verify_token` is answered with
//!   `hub.challenge` (Meta's subscription check).
//! - Messenger: signed as WhatsApp's; `entry[].messaging[].delivery.mids[]` → delivered (read
//!   events name no message, only a time, and change nothing); the same subscription check.
//! - Telegram: no status at all; its webhook (inbound updates) must repeat the configured
//!   secret in `X-Telegram-Bot-Api-Secret-Token`.
//!
//! An unverifiable body changes nothing and is refused (401); one that verifies but cannot be
//! read is refused (400) so the provider's retries show up in its dashboard.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use super::{Account, Chat};
use crate::domain::{now_ms, ReceiptUpdate, Status};

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WebhookError {
    /// No carrier of that name has a provider account.
    #[error("no provider account of that name")]
    UnknownCarrier,
    /// The account has no webhook key (`webhook_token` / `app_secret` / `verify_token`).
    #[error("this account's webhook is not configured")]
    NotConfigured,
    /// The signature is missing or wrong.
    #[error("the signature does not verify")]
    BadSignature,
    /// The body is not what the provider sends.
    #[error("unreadable webhook: {0}")]
    Malformed(String),
}

/// Meta's subscription check: the challenge to answer, when the token matches.
pub(crate) fn subscribe(
    chat: &Chat,
    carrier: &str,
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
) -> Result<String, WebhookError> {
    let account = chat
        .carriers()
        .account(carrier)
        .ok_or(WebhookError::UnknownCarrier)?;
    let expected = match account.as_ref() {
        Account::Whatsapp(number) => number.verify_token(),
        Account::Messenger(page) => page.verify_token(),
        _ => return Err(WebhookError::UnknownCarrier),
    }
    .ok_or(WebhookError::NotConfigured)?;
    let same = token
        .is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t.as_bytes(), expected.as_bytes()).into());
    match (mode, challenge) {
        (Some("subscribe"), Some(c)) if same => Ok(c.to_owned()),
        _ => Err(WebhookError::BadSignature),
    }
}

/// The receipts a webhook body reports, once its signature verified.
pub(crate) fn receipts(
    chat: &Chat,
    carrier: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Vec<ReceiptUpdate>, WebhookError> {
    let account = chat
        .carriers()
        .account(carrier)
        .ok_or(WebhookError::UnknownCarrier)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match account.as_ref() {
        Account::Rbm(agent) => {
            let key = agent.webhook_token().ok_or(WebhookError::NotConfigured)?;
            rbm(carrier, key, header("x-goog-signature"), body)
        }
        Account::Whatsapp(number) => {
            let key = number.app_secret().ok_or(WebhookError::NotConfigured)?;
            let hook = meta_verified(key, header("x-hub-signature-256"), body)?;
            Ok(whatsapp(carrier, &hook))
        }
        Account::Messenger(page) => {
            let key = page.app_secret().ok_or(WebhookError::NotConfigured)?;
            let hook = meta_verified(key, header("x-hub-signature-256"), body)?;
            Ok(messenger(carrier, &hook))
        }
        Account::Telegram(bot) => {
            let key = bot.webhook_secret().ok_or(WebhookError::NotConfigured)?;
            let given = header("x-telegram-bot-api-secret-token").unwrap_or("");
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                given.as_bytes(),
                key.as_bytes(),
            )) {
                return Err(WebhookError::BadSignature);
            }
            serde_json::from_slice::<serde_json::Value>(body)
                .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
            // Updates are people writing to the bot: no status of a message.
            Ok(Vec::new())
        }
        // The endpoint's answer is the status: nothing calls back.
        Account::Webhook(_) => Err(WebhookError::UnknownCarrier),
    }
}

/// A Meta webhook body, once `X-Hub-Signature-256` verified with the app secret.
fn meta_verified(
    key: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<serde_json::Value, WebhookError> {
    let signature = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or(WebhookError::BadSignature)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| WebhookError::NotConfigured)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)?;
    serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))
}

/// The items of the JSON array at `v`, or none.
fn items(v: &serde_json::Value) -> &[serde_json::Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A Messenger page webhook: each delivered message id.
fn messenger(carrier: &str, hook: &serde_json::Value) -> Vec<ReceiptUpdate> {
    items(&hook["entry"])
        .iter()
        .flat_map(|e| items(&e["messaging"]))
        .flat_map(|m| items(&m["delivery"]["mids"]))
        .filter_map(|mid| mid.as_str().filter(|s| !s.is_empty()))
        .map(|mid| receipt(carrier, mid, Some(Status::Delivered), None))
        .collect()
}

/// An RBM Pub/Sub push.
fn rbm(
    carrier: &str,
    key: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Vec<ReceiptUpdate>, WebhookError> {
    let push: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let data = push["message"]["data"]
        .as_str()
        .ok_or_else(|| WebhookError::Malformed("no message.data".into()))?;
    let event = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| WebhookError::BadSignature)?;
    let signature = signature
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or(WebhookError::BadSignature)?;
    let mut mac =
        Hmac::<Sha512>::new_from_slice(key.as_bytes()).map_err(|_| WebhookError::NotConfigured)?;
    mac.update(&event);
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)?;
    let event: serde_json::Value = serde_json::from_slice(&event)
        .map_err(|e| WebhookError::Malformed(format!("message.data is not JSON: {e}")))?;
    let status = match event["eventType"].as_str() {
        Some("DELIVERED") => Status::Delivered,
        Some("READ") => Status::Read,
        Some("TTL_EXPIRATION_REVOKED") => Status::Expired,
        // User messages, typing indicators and other events report no status.
        _ => return Ok(Vec::new()),
    };
    let Some(id) = event["messageId"].as_str().filter(|s| !s.is_empty()) else {
        return Err(WebhookError::Malformed("event without messageId".into()));
    };
    Ok(vec![receipt(carrier, id, Some(status), None)])
}

/// A WhatsApp Business Account webhook: each message status.
fn whatsapp(carrier: &str, hook: &serde_json::Value) -> Vec<ReceiptUpdate> {
    let mut out = Vec::new();
    let changes = items(&hook["entry"])
        .iter()
        .flat_map(|e| items(&e["changes"]));
    for s in changes.flat_map(|c| items(&c["value"]["statuses"])) {
        let Some(id) = s["id"].as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        let (status, error) = match s["status"].as_str() {
            Some("delivered") => (Some(Status::Delivered), None),
            Some("read") => (Some(Status::Read), None),
            Some("failed") => {
                let e = &s["errors"][0];
                let error = e["code"].as_i64().map(|code| {
                    let title: String = e["title"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(120)
                        .collect();
                    if code == super::whatsapp::OUTSIDE_WINDOW {
                        format!(
                            "{code} outside_customer_service_window: {title} (outside 24 hours \
                             of the person's last message only a template can be sent)"
                        )
                    } else {
                        format!("{code} {title}")
                    }
                });
                (Some(Status::Undeliverable), error)
            }
            _ => (None, None),
        };
        out.push(receipt(carrier, id, status, error));
    }
    out
}

fn receipt(
    carrier: &str,
    id: &str,
    status: Option<Status>,
    error: Option<String>,
) -> ReceiptUpdate {
    ReceiptUpdate {
        carrier: carrier.to_owned(),
        carrier_message_id: id.chars().take(128).collect(),
        id_formats: Default::default(),
        status,
        error,
        at: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbm_events_verify_and_map() {
        let event = br#"{"eventType":"TTL_EXPIRATION_REVOKED","messageId":"msg_1"}"#;
        let mut mac = Hmac::<Sha512>::new_from_slice(b"k").unwrap();
        mac.update(event);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let data = base64::engine::general_purpose::STANDARD.encode(event);
        let body = serde_json::json!({"message": {"data": data}}).to_string();
        let r = rbm("Rcs", "k", Some(&sig), body.as_bytes()).unwrap();
        assert_eq!(r[0].status, Some(Status::Expired));
        assert_eq!(r[0].carrier_message_id, "msg_1");
        assert_eq!(
            rbm("Rcs", "other", Some(&sig), body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            rbm("Rcs", "k", None, body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn whatsapp_statuses_verify_and_map() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../bench/fixtures/providers/whatsapp/webhook_status_failed.json"
        ))
        .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(&body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let hook = meta_verified("secret", Some(&sig), &body).unwrap();
        let r = whatsapp("Wa", &hook);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, Some(Status::Undeliverable));
        let error = r[0].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("131047 outside_customer_service_window: Re-engagement message"),
            "{error}"
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            meta_verified("secret", Some(&sig), &tampered),
            Err(WebhookError::BadSignature)
        );
    }
}
