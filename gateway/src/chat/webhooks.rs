//! The providers' webhooks: verified, then turned into receipts the store matches by carrier
//! and message id, and into inbound messages (what people sent to the account), which the
//! API stores like SMS MO (it serves them at `/v1/providers/{carrier}/webhook`).
//!
//! - RBM: a Pub/Sub push (`{"message":{"data":<base64 event>}}`) signed with
//!   `X-Goog-Signature: base64(HMAC-SHA512(webhook client token, decoded data))`. `DELIVERED`
//!   → delivered, `READ` → read; `TTL_EXPIRATION_REVOKED` → expired. A user message (`text`
//!   or `suggestionResponse`) is inbound.
//! - WhatsApp: `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(app secret, raw body))`;
//!   `entry[].changes[].value.statuses[]`: `delivered` → delivered, `read` → read, `failed` →
//!   undeliverable with the error's code and title, `sent` changes nothing. A `GET` with
//!   `hub.mode=subscribe` and the configured `hub.verify_token` is answered with
//!   `hub.challenge` (Meta's subscription check). `value.messages[]` are inbound.
//! - Messenger: signed as WhatsApp's; `entry[].messaging[].delivery.mids[]` → delivered (read
//!   events name no message, only a time, and change nothing); `messaging[].message` (not
//!   echoes of the page's own) are inbound; the same subscription check.
//! - Telegram: no status at all; its webhook (updates: `message` is inbound) must repeat the
//!   configured secret in `X-Telegram-Bot-Api-Secret-Token`.
//!
//! An inbound message's time is the platform's (when the person sent it; never later than
//! now), because the platforms' 24-hour windows count from it. Its text is the message's text
//! (or the tapped button's or reply's title); other kinds (media, locations) are stored with
//! an empty body: they still open the window.
//!
//! Each inbound message keeps the platform's id for it ([`InboundMessage::provider_id`]), so
//! one the provider sends again (its webhook timed out, or it resends an update) is
//! acknowledged like the first and stored once.
//!
//! An unverifiable body changes nothing and is refused (401); one that verifies but cannot be
//! read is refused (400) so the provider's retries show up in its dashboard.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use switchyard_routing::Channel;

use super::{Account, Chat};
use crate::domain::{now_ms, InboundMessage, MessageId, ReceiptUpdate, Status, UnixMs};

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

/// What a verified webhook body reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reported {
    /// Statuses of messages the account sent.
    pub(crate) receipts: Vec<ReceiptUpdate>,
    /// Messages people sent to the account (owner not filled in yet).
    pub(crate) inbound: Vec<InboundMessage>,
}

/// What a webhook body reports, once its signature verified.
pub(crate) fn receipts(
    chat: &Chat,
    carrier: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Reported, WebhookError> {
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
            Ok(Reported {
                receipts: whatsapp(carrier, &hook),
                inbound: whatsapp_inbound(carrier, &hook),
            })
        }
        Account::Messenger(page) => {
            let key = page.app_secret().ok_or(WebhookError::NotConfigured)?;
            let hook = meta_verified(key, header("x-hub-signature-256"), body)?;
            Ok(Reported {
                receipts: messenger(carrier, &hook),
                inbound: messenger_inbound(carrier, &hook),
            })
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
            let update = serde_json::from_slice::<serde_json::Value>(body)
                .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
            // Updates are people writing to the bot: no status of a message.
            Ok(Reported {
                receipts: Vec::new(),
                inbound: telegram_inbound(carrier, &update),
            })
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
) -> Result<Reported, WebhookError> {
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
        Some(_) => return Ok(Reported::default()),
        // No event type: a user message (text, a tapped suggestion, a file, a location).
        None => {
            let Some(from) = event["senderPhoneNumber"]
                .as_str()
                .filter(|s| !s.is_empty())
            else {
                return Ok(Reported::default());
            };
            let text = event["text"]
                .as_str()
                .or_else(|| event["suggestionResponse"]["text"].as_str())
                .unwrap_or("");
            let at = event["sendTime"].as_str().and_then(parse_rfc3339);
            let to = event["agentId"].as_str().unwrap_or(carrier);
            let mut m = inbound(carrier, Channel::Rcs, from, to, text, at);
            m.provider_id = provider_id(event["messageId"].as_str());
            return Ok(Reported {
                receipts: Vec::new(),
                inbound: vec![m],
            });
        }
    };
    let Some(id) = event["messageId"].as_str().filter(|s| !s.is_empty()) else {
        return Err(WebhookError::Malformed("event without messageId".into()));
    };
    Ok(Reported {
        receipts: vec![receipt(carrier, id, Some(status), None)],
        inbound: Vec::new(),
    })
}

/// A WhatsApp Business Account webhook: each message a person sent.
fn whatsapp_inbound(carrier: &str, hook: &serde_json::Value) -> Vec<InboundMessage> {
    let mut out = Vec::new();
    let values = items(&hook["entry"])
        .iter()
        .flat_map(|e| items(&e["changes"]))
        .map(|c| &c["value"]);
    for value in values {
        let to = value["metadata"]["display_phone_number"]
            .as_str()
            .unwrap_or(carrier);
        for m in items(&value["messages"]) {
            let Some(from) = m["from"].as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            let text = m["text"]["body"]
                .as_str()
                .or_else(|| m["button"]["text"].as_str())
                .or_else(|| m["interactive"]["button_reply"]["title"].as_str())
                .or_else(|| m["interactive"]["list_reply"]["title"].as_str())
                .unwrap_or("");
            let at = m["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok())
                .map(|s| s.saturating_mul(1000));
            let mut message = inbound(carrier, Channel::Whatsapp, from, to, text, at);
            message.provider_id = provider_id(m["id"].as_str());
            out.push(message);
        }
    }
    out
}

/// A Messenger page webhook: each message a person sent (not the page's own echoes).
fn messenger_inbound(carrier: &str, hook: &serde_json::Value) -> Vec<InboundMessage> {
    items(&hook["entry"])
        .iter()
        .flat_map(|e| items(&e["messaging"]))
        .filter(|m| m["message"].is_object() && m["message"]["is_echo"] != true)
        .filter_map(|m| {
            let from = m["sender"]["id"].as_str().filter(|s| !s.is_empty())?;
            let to = m["recipient"]["id"].as_str().unwrap_or(carrier);
            let text = m["message"]["text"]
                .as_str()
                .or_else(|| m["message"]["quick_reply"]["payload"].as_str())
                .unwrap_or("");
            let at = m["timestamp"].as_i64();
            let mut message = inbound(carrier, Channel::Messenger, from, to, text, at);
            message.provider_id = provider_id(m["message"]["mid"].as_str());
            Some(message)
        })
        .collect()
}

/// A Telegram update: the message a person sent to the bot, if it is one.
fn telegram_inbound(carrier: &str, update: &serde_json::Value) -> Vec<InboundMessage> {
    let m = &update["message"];
    let Some(chat) = m["chat"]["id"].as_i64() else {
        return Vec::new();
    };
    let text = m["text"]
        .as_str()
        .or_else(|| m["caption"].as_str())
        .unwrap_or("");
    let at = m["date"].as_i64().map(|s| s.saturating_mul(1000));
    let mut message = inbound(
        carrier,
        Channel::Telegram,
        &chat.to_string(),
        carrier,
        text,
        at,
    );
    // Update ids count up per bot (the account is the bot), but a bot idle for a week starts
    // again from a random one: with the message's date, an old id taken again is no resend.
    message.provider_id = update["update_id"]
        .as_i64()
        .map(|id| format!("{id}:{}", m["date"].as_i64().unwrap_or(0)));
    vec![message]
}

/// An inbound message as received now; `at`: when the platform says the person sent it.
fn inbound(
    carrier: &str,
    channel: Channel,
    from: &str,
    to: &str,
    text: &str,
    at: Option<UnixMs>,
) -> InboundMessage {
    let now = now_ms();
    InboundMessage {
        id: MessageId::generate(now),
        carrier: carrier.to_owned(),
        channel,
        tenant: None,
        from: from.chars().take(64).collect(),
        to: to.chars().take(64).collect(),
        body: text.chars().take(8192).collect(),
        binary: None,
        received_at: at.filter(|t| *t > 0).map_or(now, |t| t.min(now)),
        partial: None,
        provider_id: None,
    }
}

/// A platform's message id as the store keys it (none when empty or absent).
fn provider_id(id: Option<&str>) -> Option<String> {
    id.filter(|s| !s.is_empty())
        .map(|s| s.chars().take(128).collect())
}

/// Unix ms of an RFC 3339 time.
fn parse_rfc3339(s: &str) -> Option<UnixMs> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
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

/// The property the `provider_webhook` fuzz target checks (`fuzz/fuzz_targets/provider_webhook.rs`),
/// and the corpus replay test: whatever a provider's webhook body holds once its signature
/// verified, reading it never panics and gives either an error a provider is answered with
/// (400 or 401) or receipts with a message id of at most 128 characters and inbound messages
/// whose addresses, text and time are within bounds. `data[0]` picks the kind (RBM event,
/// signed here; RBM push with a signature that does not verify; WhatsApp and Messenger,
/// signed here; Telegram update); the rest is the body.
#[doc(hidden)]
#[allow(clippy::expect_used)]
pub fn check_webhook_bytes(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let reported = fuzz_read(kind, body);
    let now = now_ms();
    match reported {
        Err(e) => assert!(
            matches!(e, WebhookError::Malformed(_) | WebhookError::BadSignature),
            "{e:?}"
        ),
        Ok(Reported { receipts, inbound }) => {
            for r in receipts {
                assert_eq!(r.carrier, FUZZ_CARRIER);
                let n = r.carrier_message_id.chars().count();
                assert!((1..=128).contains(&n), "{r:?}");
                assert!(r.status.is_some() || r.error.is_none(), "{r:?}");
            }
            for m in inbound {
                assert!(m.tenant.is_none(), "the owner is found later");
                assert!((1..=64).contains(&m.from.chars().count()), "{m:?}");
                assert!(m.to.chars().count() <= 64, "{m:?}");
                assert!(m.body.chars().count() <= 8192);
                assert!(m.received_at <= now, "{m:?}");
                if let Some(id) = &m.provider_id {
                    assert!((1..=128).contains(&id.chars().count()), "{m:?}");
                }
            }
        }
    }
}

/// The carrier name [`check_webhook_bytes`] reads its bodies for.
const FUZZ_CARRIER: &str = "fuzz";

/// What [`check_webhook_bytes`] reads from `body` as a webhook of kind `kind`.
#[allow(clippy::expect_used)]
fn fuzz_read(kind: u8, body: &[u8]) -> Result<Reported, WebhookError> {
    const KEY: &str = "fuzz-webhook-key";
    const CARRIER: &str = FUZZ_CARRIER;
    match kind % 5 {
        0 => {
            let push = serde_json::json!({
                "message": {"data": base64::engine::general_purpose::STANDARD.encode(body)}
            });
            let mut mac = Hmac::<Sha512>::new_from_slice(KEY.as_bytes()).expect("any key");
            mac.update(body);
            let signature =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            rbm(CARRIER, KEY, Some(&signature), push.to_string().as_bytes())
        }
        1 => {
            let refused = rbm(CARRIER, KEY, Some("c2lnbmF0dXJl"), body);
            assert!(
                refused.is_err(),
                "an RBM push whose signature does not verify"
            );
            refused
        }
        meta => {
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).expect("any key");
            mac.update(body);
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            match meta {
                2 => meta_verified(KEY, Some(&signature), body).map(|hook| Reported {
                    receipts: whatsapp(CARRIER, &hook),
                    inbound: whatsapp_inbound(CARRIER, &hook),
                }),
                3 => meta_verified(KEY, Some(&signature), body).map(|hook| Reported {
                    receipts: messenger(CARRIER, &hook),
                    inbound: messenger_inbound(CARRIER, &hook),
                }),
                _ => serde_json::from_slice::<serde_json::Value>(body)
                    .map(|update| Reported {
                        receipts: Vec::new(),
                        inbound: telegram_inbound(CARRIER, &update),
                    })
                    .map_err(|e| WebhookError::Malformed(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_corpus_replays_cleanly() {
        crate::replay_fuzz_corpus("provider_webhook", check_webhook_bytes);
    }

    #[test]
    fn the_fuzz_seeds_are_the_providers_documented_webhooks_and_read_as_such() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/provider_webhook");
        let read = |name: &str| {
            let data = std::fs::read(dir.join(name)).unwrap();
            fuzz_read(data[0], &data[1..])
        };
        let statuses = |name: &str| -> Vec<Option<Status>> {
            read(name)
                .unwrap()
                .receipts
                .iter()
                .map(|r| r.status)
                .collect()
        };
        assert_eq!(statuses("rbm-delivered"), [Some(Status::Delivered)]);
        assert_eq!(statuses("rbm-read"), [Some(Status::Read)]);
        assert_eq!(statuses("rbm-ttl-revoked"), [Some(Status::Expired)]);
        assert_eq!(statuses("whatsapp-failed"), [Some(Status::Undeliverable)]);
        assert_eq!(statuses("whatsapp-sent"), [None]);
        assert_eq!(statuses("messenger-delivery"), [Some(Status::Delivered)]);
        assert_eq!(statuses("messenger-read"), []);
        for name in [
            "rbm-user-message",
            "whatsapp-inbound",
            "messenger-message",
            "telegram-update",
        ] {
            let inbound = read(name).unwrap().inbound;
            assert_eq!(inbound.len(), 1, "{name}");
            assert!(!inbound[0].body.is_empty(), "{name}");
        }
        assert_eq!(
            read("rbm-push-unsigned").unwrap_err(),
            WebhookError::BadSignature
        );
    }

    #[test]
    fn rbm_events_verify_and_map() {
        let event = br#"{"eventType":"TTL_EXPIRATION_REVOKED","messageId":"msg_1"}"#;
        let mut mac = Hmac::<Sha512>::new_from_slice(b"k").unwrap();
        mac.update(event);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let data = base64::engine::general_purpose::STANDARD.encode(event);
        let body = serde_json::json!({"message": {"data": data}}).to_string();
        let r = rbm("Rcs", "k", Some(&sig), body.as_bytes())
            .unwrap()
            .receipts;
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

    fn fixture(path: &str) -> serde_json::Value {
        let text = std::fs::read(format!(
            "{}/../bench/fixtures/providers/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    #[test]
    fn the_documented_inbound_payloads_become_inbound_messages() {
        let wa = whatsapp_inbound("Wa", &fixture("whatsapp/webhook_inbound_text.json"));
        assert_eq!(wa.len(), 1);
        assert_eq!(
            (wa[0].channel, wa[0].from.as_str(), wa[0].to.as_str()),
            (Channel::Whatsapp, "16505551234", "15550783881")
        );
        assert_eq!(wa[0].body, "Does it come in another color?");
        assert_eq!(wa[0].received_at, 1_749_416_383_000);
        assert_eq!(wa[0].carrier, "Wa");
        assert_eq!(
            wa[0].provider_id.as_deref(),
            Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
        );
        // A status webhook carries no inbound message, and an inbound one no status.
        assert!(whatsapp_inbound("Wa", &fixture("whatsapp/webhook_status_failed.json")).is_empty());
        assert!(whatsapp("Wa", &fixture("whatsapp/webhook_inbound_text.json")).is_empty());

        let fb = messenger_inbound("Page", &fixture("messenger/webhook_message.json"));
        assert_eq!(fb.len(), 1);
        assert_eq!(
            (fb[0].channel, fb[0].from.as_str(), fb[0].to.as_str()),
            (Channel::Messenger, "1254477777772919", "112233445566778")
        );
        assert_eq!(
            (fb[0].body.as_str(), fb[0].received_at),
            ("hello, world!", 1_457_764_197_627)
        );
        assert_eq!(
            fb[0].provider_id.as_deref(),
            Some("mid.1457764197618:41d102a3e1ae206a38")
        );
        assert!(messenger_inbound("Page", &fixture("messenger/webhook_delivery.json")).is_empty());
        let mut echo = fixture("messenger/webhook_message.json");
        echo["entry"][0]["messaging"][0]["message"]["is_echo"] = true.into();
        assert!(messenger_inbound("Page", &echo).is_empty());

        let tg = telegram_inbound("Bot", &fixture("telegram/update_message.json"));
        assert_eq!(
            (tg[0].channel, tg[0].from.as_str(), tg[0].body.as_str()),
            (Channel::Telegram, "123456789", "/start")
        );
        assert_eq!(tg[0].received_at, 1_750_263_773_000);
        assert_eq!(tg[0].provider_id.as_deref(), Some("10000:1750263773"));

        let event = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../bench/fixtures/providers/rbm/user_message.json"
        ))
        .unwrap();
        let mut mac = Hmac::<Sha512>::new_from_slice(b"k").unwrap();
        mac.update(&event);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let data = base64::engine::general_purpose::STANDARD.encode(&event);
        let body = serde_json::json!({"message": {"data": data}}).to_string();
        let r = rbm("Rcs", "k", Some(&sig), body.as_bytes()).unwrap();
        assert!(r.receipts.is_empty());
        assert_eq!(
            (
                r.inbound[0].channel,
                r.inbound[0].from.as_str(),
                r.inbound[0].body.as_str()
            ),
            (Channel::Rcs, "+12223334444", "Hi")
        );
        assert_eq!(r.inbound[0].to, "switchyard-sim-agent");
        assert_eq!(
            r.inbound[0].provider_id.as_deref(),
            Some("MsYqKa3GzxSRCtF1vOsaR6Vw")
        );
    }
}
