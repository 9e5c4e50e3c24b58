//! Messenger Platform Send API: `POST /{version}/me/messages?access_token=…` (also
//! `/{version}/{page_id}/messages`, and the token as `Authorization: Bearer`)
//! (<https://developers.facebook.com/docs/messenger-platform/reference/send-api>).
//!
//! - Body (JSON): `recipient.id` (PSID), `messaging_type` `RESPONSE`, `UPDATE` or
//!   `MESSAGE_TAG` with `tag` (`CONFIRMED_EVENT_UPDATE`, `POST_PURCHASE_UPDATE`,
//!   `ACCOUNT_UPDATE`, `HUMAN_AGENT`), `message.text` (at most 2000 characters).
//! - Answers `{"recipient_id","message_id"}`, or a Graph error (shape in [`super::graph`]).
//! - Standard messaging window: `RESPONSE` and `UPDATE` need a user message in the last 24
//!   hours, `HUMAN_AGENT` in the last 7 days; outside it the answer is code 10, subcode
//!   2018278, "This message is sent outside of allowed window." The other tags are allowed
//!   at any time (<https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags>).
//! - Webhooks, in the `{"object":"page","entry":[{"id","time","messaging":[…]}]}` envelope and
//!   signed with `X-Hub-Signature-256`: `delivery` (`mids`, `watermark`), `read`
//!   (`watermark`) and inbound `message` (`mid`, `text`)
//!   (<https://developers.facebook.com/docs/messenger-platform/webhooks>). Messenger reports no
//!   failure event: a `fail` outcome is accepted and never delivered.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::exchange::{
    unix_ms, window_open, Action, Inbound, Provider, Reply, Request, Scheduled, Verdict, Webhook,
    SERVICE_WINDOW,
};
use super::graph::{messenger_error, GraphError};
use super::script::{Outcome, Script};
use super::sign;

/// How long after the user's last message the `HUMAN_AGENT` tag may be used.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Tags the simulator accepts with `MESSAGE_TAG`.
pub const TAGS: [&str; 4] = [
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
    "ACCOUNT_UPDATE",
    "HUMAN_AGENT",
];

/// The simulated Facebook Page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Page access token clients must send.
    pub page_access_token: String,
    /// The app secret that signs webhooks.
    pub app_secret: String,
    /// Where webhooks are POSTed; none: they are counted as failed.
    pub webhook_url: Option<String>,
    /// The Page id (webhooks' `recipient.id` and `entry[].id`; also accepted in the path).
    pub page_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            page_access_token: "messenger-page-token".into(),
            app_secret: "messenger-app-secret".into(),
            webhook_url: None,
            page_id: "112233445566778".into(),
        }
    }
}

/// The Page's state.
#[derive(Debug, Default)]
pub struct State {
    /// Credentials.
    pub config: Config,
    /// How PSIDs are treated.
    pub script: Script,
    /// When each PSID last wrote.
    pub windows: HashMap<String, SystemTime>,
}

/// A webhook to build when it fires.
#[derive(Debug, Clone)]
pub enum Event {
    /// The message reached the user's device.
    Delivery {
        /// The user.
        psid: String,
        /// The message id.
        mid: String,
        /// When it was sent (ms): every message before it is delivered.
        watermark: u64,
    },
    /// The user read the conversation up to `watermark`.
    Read {
        /// The user.
        psid: String,
        /// When the message was sent (ms).
        watermark: u64,
    },
    /// A text message from the user.
    Message {
        /// The user.
        psid: String,
        /// The message id.
        mid: String,
        /// Its text.
        text: String,
        /// When the user sent it.
        at: SystemTime,
    },
}

/// Answers one request to `/{version}/{me|page_id}/messages`.
pub fn handle(state: &mut State, rng: &mut impl Rng, req: &Request, now: SystemTime) -> Reply {
    let refuse = |e: GraphError, rng: &mut _| {
        Reply::new(e.http, e.body(false, rng), Verdict::Refused(e.key()))
    };
    if req.method != "POST" {
        return refuse(GraphError::new(400, 100, "Unsupported method"), rng);
    }
    let token = req.query("access_token").or_else(|| req.bearer());
    if token != Some(state.config.page_access_token.as_str()) {
        return refuse(messenger_error(190), rng);
    }
    let send = match validate(req) {
        Ok(s) => s,
        Err(e) => return refuse(e, rng),
    };
    let opened = state.windows.get(&send.psid).copied();
    let allowed = match send.tag.as_deref() {
        None => window_open(opened, SERVICE_WINDOW, now),
        Some("HUMAN_AGENT") => window_open(opened, HUMAN_AGENT_WINDOW, now),
        Some(_) => true,
    };
    if !allowed {
        let mut reply = refuse(messenger_error(10), rng);
        reply.recipient = Some(send.psid);
        return reply;
    }
    let behaviour = state.script.for_recipient(&send.psid).clone();
    let refusal = match behaviour.outcome {
        Outcome::BadCredentials => Some(messenger_error(190)),
        Outcome::Reject => Some(messenger_error(behaviour.code.unwrap_or(551))),
        Outcome::Throttle => Some(messenger_error(behaviour.code.unwrap_or(613))),
        Outcome::Transient => Some(messenger_error(behaviour.code.unwrap_or(2))),
        Outcome::Accept | Outcome::Fail => None,
    };
    if let Some(e) = refusal {
        let mut reply = refuse(e, rng);
        reply.delay = behaviour.response_delay();
        reply.recipient = Some(send.psid);
        return reply;
    }
    let sent_ms = unix_ms(now);
    let mid = format!("mid.{sent_ms}:{:018x}", rng.random::<u128>() >> 56);
    let mut scheduled = Vec::new();
    if behaviour.outcome == Outcome::Accept {
        if let Some(d) = behaviour.delivered_delay_ms {
            scheduled.push(Scheduled {
                after: Duration::from_millis(d),
                action: Action::Messenger(Event::Delivery {
                    psid: send.psid.clone(),
                    mid: mid.clone(),
                    watermark: sent_ms,
                }),
            });
        }
        if let Some(r) = behaviour.read_delay_ms {
            scheduled.push(Scheduled {
                after: Duration::from_millis(r),
                action: Action::Messenger(Event::Read {
                    psid: send.psid.clone(),
                    watermark: sent_ms,
                }),
            });
        }
    }
    Reply {
        status: 200,
        body: json!({"recipient_id": send.psid, "message_id": mid}),
        delay: behaviour.response_delay(),
        verdict: Verdict::Accepted {
            message_id: mid.clone(),
        },
        recipient: Some(send.psid),
        scheduled,
    }
}

/// What a valid send carries that the simulator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The recipient's PSID.
    pub psid: String,
    /// The tag of a `MESSAGE_TAG` send.
    pub tag: Option<String>,
}

/// Checks a send request's body; the error is the Graph error the API answers.
pub fn validate(req: &Request) -> Result<Send, GraphError> {
    let param = |msg: &str| GraphError::new(400, 100, msg);
    let body = req
        .json()
        .ok_or_else(|| param("Request body is not valid JSON"))?;
    let psid = body
        .get("recipient")
        .and_then(|r| r.get("id"))
        .and_then(|id| match id {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| param("The parameter recipient is required"))?;
    let kind = body
        .get("messaging_type")
        .and_then(Value::as_str)
        .ok_or_else(|| param("The parameter messaging_type is required"))?;
    let tag = match kind {
        "RESPONSE" | "UPDATE" => None,
        "MESSAGE_TAG" => {
            let tag = body
                .get("tag")
                .and_then(Value::as_str)
                .ok_or_else(|| param("The parameter tag is required for MESSAGE_TAG"))?;
            if !TAGS.contains(&tag) {
                return Err(param(&format!("Param tag must be one of {TAGS:?}")));
            }
            Some(tag.to_owned())
        }
        _ => {
            return Err(param(
                "Param messaging_type must be one of RESPONSE, UPDATE, MESSAGE_TAG",
            ))
        }
    };
    let text = body
        .get("message")
        .and_then(|m| m.get("text"))
        .and_then(Value::as_str)
        .ok_or_else(|| param("The parameter message[text] is required"))?;
    if text.is_empty() {
        return Err(param("Param message[text] must be non-empty"));
    }
    if text.chars().count() > 2000 {
        return Err(param(
            "Length of param message[text] must be less than or equal to 2000",
        ));
    }
    Ok(Send { psid, tag })
}

/// Opens the PSID's window and schedules the inbound webhook.
pub fn inbound(
    state: &mut State,
    rng: &mut impl Rng,
    msg: &Inbound,
    now: SystemTime,
) -> Vec<Scheduled> {
    let at = msg.at(now);
    let latest = state.windows.entry(msg.from.clone()).or_insert(at);
    if at > *latest {
        *latest = at;
    }
    if !msg.webhook {
        return Vec::new();
    }
    vec![Scheduled {
        after: Duration::ZERO,
        action: Action::Messenger(Event::Message {
            psid: msg.from.clone(),
            mid: format!("mid.{}:{:018x}", unix_ms(at), rng.random::<u128>() >> 56),
            text: msg.text.clone(),
            at,
        }),
    }]
}

/// Builds the webhook for `event` now.
pub fn fire(state: &State, event: &Event, now: SystemTime) -> Webhook {
    let c = &state.config;
    let (kind, messaging) = match event {
        Event::Delivery {
            psid,
            mid,
            watermark,
        } => (
            "delivery",
            json!({
                "sender": {"id": psid},
                "recipient": {"id": c.page_id},
                "delivery": {"mids": [mid], "watermark": watermark},
            }),
        ),
        Event::Read { psid, watermark } => (
            "read",
            json!({
                "sender": {"id": psid},
                "recipient": {"id": c.page_id},
                "timestamp": unix_ms(now),
                "read": {"watermark": watermark},
            }),
        ),
        Event::Message {
            psid,
            mid,
            text,
            at,
        } => (
            "message",
            json!({
                "sender": {"id": psid},
                "recipient": {"id": c.page_id},
                "timestamp": unix_ms(*at),
                "message": {"mid": mid, "text": text},
            }),
        ),
    };
    let body = json!({
        "object": "page",
        "entry": [{"id": c.page_id, "time": unix_ms(now), "messaging": [messaging]}],
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Webhook {
        provider: Provider::Messenger,
        kind: kind.into(),
        url: c.webhook_url.clone().unwrap_or_default(),
        headers: vec![(
            sign::META_HEADER.into(),
            sign::meta_signature(&c.app_secret, &body),
        )],
        body,
    }
}

#[cfg(test)]
#[path = "messenger_tests.rs"]
mod tests;
