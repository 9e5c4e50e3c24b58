//! Google RCS Business Messaging (RBM), v1:
//!
//! - `GET /v1/phones/{E.164}/capabilities?requestId=…&agentId=…`: 200 `{"features":[…]}` when
//!   the phone is RCS-capable, 404 `NOT_FOUND` when not
//!   (<https://developers.google.com/business-communications/rcs-business-messaging/reference/rest/v1/phones/getCapabilities>).
//! - `POST /v1/phones/{E.164}/agentMessages?messageId=…&agentId=…` with an `AgentMessage`
//!   (`contentMessage` with `text` (at most 3072 characters), `richCard`, `contentInfo` or
//!   `uploadedRbmFile`, optional `suggestions[]` (at most 11), and `ttl` or `expireTime`, not
//!   both, at most 15 days): 200 with the created `AgentMessage` (`name`, `sendTime`, …), 404
//!   `NOT_FOUND` for a phone that is not RCS-capable
//!   (<https://developers.google.com/business-communications/rcs-business-messaging/reference/rest/v1/phones.agentMessages/create>).
//!   A message id used before is ignored, as the reference says: answered again, not resent.
//! - `DELETE /v1/phones/{E.164}/agentMessages/{messageId}?agentId=…`: 200 `{}` when the message
//!   was not delivered yet (it never will be), 404 `NOT_FOUND` when it was delivered, or is
//!   no longer queued (revoked or expired before), or is unknown (<https://developers.google.com/business-communications/rcs-business-messaging/reference/rest/v1/phones.agentMessages/delete>).
//! - Auth: `Authorization: Bearer <token>`; errors are `{"error":{"code","message","status"}}`
//!   (401 `UNAUTHENTICATED`, 400 `INVALID_ARGUMENT`, 404 `NOT_FOUND`, 429 `RESOURCE_EXHAUSTED`
//!   with a `google.rpc.RetryInfo` detail saying when to try again, 503 `UNAVAILABLE`).
//! - Events go to the webhook as Pub/Sub push messages,
//!   `{"message":{"data":<base64 JSON>,"messageId","publishTime"},"subscription"}`, signed with
//!   `X-Goog-Signature` ([`super::sign`]): user events `DELIVERED` and `READ`
//!   (<https://developers.google.com/business-communications/rcs-business-messaging/reference/rest/v1/UserEvent>),
//!   user messages (`UserMessage`: `senderPhoneNumber`, `messageId`, `sendTime`, `agentId`,
//!   `text`), and when a message's TTL passes undelivered, the server event
//!   `TTL_EXPIRATION_REVOKED` (<https://developers.google.com/business-communications/rcs-business-messaging/guides/build/events>):
//!   the message is then never delivered. `TTL_EXPIRATION_REVOKE_FAILED` (expiry racing a
//!   delivery in progress) is not simulated: here a message is either delivered or expired.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::exchange::{
    rfc3339, Action, Inbound, Provider, Reply, Request, Scheduled, Verdict, Webhook,
};
use super::script::{Outcome, Script};
use super::sign;

/// The longest `ttl`/`expireTime` the API takes.
pub const MAX_EXPIRY: Duration = Duration::from_secs(15 * 24 * 3600);
/// How many message states are kept for revocation and events (oldest forgotten first).
pub const MAX_MESSAGES: usize = 100_000;
/// The features a capable phone reports.
pub const FEATURES: [&str; 8] = [
    "RICHCARD_STANDALONE",
    "RICHCARD_CAROUSEL",
    "ACTION_CREATE_CALENDAR_EVENT",
    "ACTION_DIAL",
    "ACTION_OPEN_URL",
    "ACTION_SHARE_LOCATION",
    "ACTION_VIEW_LOCATION",
    "ACTION_OPEN_URL_IN_WEBVIEW",
];

/// The simulated agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The OAuth access token clients must send as `Bearer`.
    pub token: String,
    /// The webhook's client token, which signs events.
    pub client_token: String,
    /// Where events are POSTed; none: they are counted as failed.
    pub webhook_url: Option<String>,
    /// The agent id the `agentId` parameter must carry.
    pub agent_id: String,
    /// The Pub/Sub subscription named in pushed events.
    pub subscription: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: "rbm-access-token".into(),
            client_token: "rbm-client-token".into(),
            webhook_url: None,
            agent_id: "switchyard-sim-agent".into(),
            subscription: "projects/rbm-switchyard-sim/subscriptions/rbm-switchyard-sim".into(),
        }
    }
}

/// Where an accepted message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The phone it is for.
    pub phone: String,
    /// The `AgentMessage` answered (repeated for a duplicate id).
    pub created: Value,
    /// Delivered to the device (cannot be revoked any more).
    pub delivered: bool,
    /// Revoked by `DELETE` or by its TTL (will not be delivered).
    pub revoked: bool,
}

/// The agent's state.
#[derive(Debug, Default)]
pub struct State {
    /// Credentials.
    pub config: Config,
    /// How phones are treated (`capable` decides RCS reachability).
    pub script: Script,
    /// Accepted messages by id, for revocation and for deciding which events still fire.
    pub messages: HashMap<String, Message>,
    /// Message ids in acceptance order, to forget the oldest past [`MAX_MESSAGES`].
    pub order: VecDeque<String>,
    /// The last Pub/Sub message id given.
    pub last_pubsub_id: u64,
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `DELIVERED` user event.
    Delivered,
    /// `READ` user event.
    Read,
    /// `TTL_EXPIRATION_REVOKED` server event.
    Expired,
}

/// A webhook to build when it fires.
#[derive(Debug, Clone)]
pub enum Event {
    /// About an agent message.
    Status {
        /// The agent's message id.
        message_id: String,
        /// What happened.
        kind: Kind,
    },
    /// A text from a user.
    UserMessage {
        /// The user's E.164 number.
        phone: String,
        /// Its id.
        message_id: String,
        /// The text.
        text: String,
        /// When it was sent.
        at: SystemTime,
    },
}

/// Answers one request under `/v1/phones/`.
pub fn handle(state: &mut State, req: &Request, now: SystemTime) -> Reply {
    let segments = req.segments();
    let phone = segments.get(2).copied().unwrap_or_default().to_owned();
    if req.bearer() != Some(state.config.token.as_str()) {
        return error(401, "UNAUTHENTICATED", UNAUTHENTICATED);
    }
    match req.query("agentId") {
        None => return error(400, "INVALID_ARGUMENT", "agentId is required."),
        Some(a) if a != state.config.agent_id => {
            return error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
            )
        }
        Some(_) => {}
    }
    if !phone.starts_with('+') || phone.len() < 3 || !phone[1..].bytes().all(|b| b.is_ascii_digit())
    {
        return error(
            400,
            "INVALID_ARGUMENT",
            "The phone number is not in E.164 format.",
        );
    }
    let behaviour = state.script.for_recipient(&phone).clone();
    let scripted = match behaviour.outcome {
        Outcome::BadCredentials => Some(error(401, "UNAUTHENTICATED", UNAUTHENTICATED)),
        Outcome::Throttle => {
            // Google's error model says when to try again in a RetryInfo detail.
            let mut reply = error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Agent messages' of service 'rcsbusinessmessaging.googleapis.com'.",
            );
            reply.body["error"]["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{}s", behaviour.retry_after_s),
            }]);
            Some(reply)
        }
        Outcome::Transient => Some(error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )),
        _ => None,
    };
    let mut reply = match scripted {
        Some(r) => r,
        None => match (
            req.method.as_str(),
            segments.get(3).copied(),
            segments.len(),
        ) {
            ("GET", Some("capabilities"), 4) => capabilities(behaviour.capable),
            ("POST", Some("agentMessages"), 4) => create(state, req, &phone, &behaviour, now),
            ("DELETE", Some("agentMessages"), 5) => {
                revoke(state, &phone, segments.get(4).copied().unwrap_or_default())
            }
            _ => error(404, "NOT_FOUND", "Method not found."),
        },
    };
    reply.delay = behaviour.response_delay();
    reply.recipient = Some(phone);
    reply
}

const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.";
const NOT_RCS: &str = "Requested entity was not found.";

fn capabilities(capable: bool) -> Reply {
    if capable {
        Reply::new(200, json!({ "features": FEATURES }), Verdict::Other)
    } else {
        error(404, "NOT_FOUND", NOT_RCS)
    }
}

fn create(
    state: &mut State,
    req: &Request,
    phone: &str,
    behaviour: &super::script::Behaviour,
    now: SystemTime,
) -> Reply {
    let Some(message_id) = req.query("messageId").filter(|m| !m.is_empty()) else {
        return error(400, "INVALID_ARGUMENT", "messageId is required.");
    };
    let message_id = message_id.to_owned();
    let body = match req.json() {
        Some(b) => b,
        None => return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
    };
    let expiry = match validate(&body, now) {
        Ok(e) => e,
        Err(msg) => return error(400, "INVALID_ARGUMENT", &msg),
    };
    if let Some(m) = state.messages.get(&message_id) {
        return Reply::new(200, m.created.clone(), Verdict::Duplicate);
    }
    if !behaviour.capable {
        return error(404, "NOT_FOUND", NOT_RCS);
    }
    if behaviour.outcome == Outcome::Reject {
        let code = behaviour.code.unwrap_or(400);
        let (http, status) = status_of(code);
        return error(http, status, "Simulated rejection.");
    }
    let mut created = json!({
        "name": format!("phones/{phone}/agentMessages/{message_id}"),
        "sendTime": rfc3339(now),
        "contentMessage": body.get("contentMessage").cloned().unwrap_or(Value::Null),
    });
    for key in ["messageTrafficType", "ttl", "expireTime"] {
        if let Some(v) = body.get(key) {
            created[key] = v.clone();
        }
    }
    state.messages.insert(
        message_id.clone(),
        Message {
            phone: phone.to_owned(),
            created: created.clone(),
            delivered: false,
            revoked: false,
        },
    );
    state.order.push_back(message_id.clone());
    while state.order.len() > MAX_MESSAGES {
        if let Some(old) = state.order.pop_front() {
            state.messages.remove(&old);
        }
    }
    let event = |after: Duration, kind: Kind| Scheduled {
        after,
        action: Action::Rbm(Event::Status {
            message_id: message_id.clone(),
            kind,
        }),
    };
    let mut scheduled = Vec::new();
    if behaviour.outcome == Outcome::Accept {
        if let Some(d) = behaviour.delivered_delay_ms {
            scheduled.push(event(Duration::from_millis(d), Kind::Delivered));
        }
        if let Some(r) = behaviour.read_delay_ms {
            scheduled.push(event(Duration::from_millis(r), Kind::Read));
        }
    }
    if let Some(e) = expiry {
        scheduled.push(event(e, Kind::Expired));
    }
    let mut reply = Reply::new(200, created, Verdict::Accepted { message_id });
    reply.scheduled = scheduled;
    reply
}

/// Checks an `AgentMessage`; returns how long until it expires, if it has a TTL.
pub fn validate(body: &Value, now: SystemTime) -> Result<Option<Duration>, String> {
    let content = body
        .get("contentMessage")
        .and_then(Value::as_object)
        .ok_or("contentMessage is required.")?;
    let kinds = ["text", "richCard", "contentInfo", "uploadedRbmFile"];
    let present: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| content.contains_key(*k))
        .collect();
    match present.as_slice() {
        [] => return Err(format!("contentMessage needs one of {kinds:?}.")),
        [one] => {
            if *one == "text" {
                let text = content
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or("contentMessage.text must be a string.")?;
                if text.is_empty() || text.chars().count() > 3072 {
                    return Err("contentMessage.text must have 1 to 3072 characters.".into());
                }
            }
            if *one == "richCard" {
                let card = content.get("richCard").and_then(Value::as_object);
                let ok = card.is_some_and(|c| {
                    c.contains_key("standaloneCard") != c.contains_key("carouselCard")
                });
                if !ok {
                    return Err(
                        "contentMessage.richCard needs standaloneCard or carouselCard.".into(),
                    );
                }
            }
        }
        _ => return Err(format!("contentMessage has more than one of {kinds:?}.")),
    }
    if let Some(s) = content.get("suggestions") {
        let n = s
            .as_array()
            .ok_or("contentMessage.suggestions must be an array.")?
            .len();
        if n > 11 {
            return Err("contentMessage.suggestions has more than 11 entries.".into());
        }
    }
    let expiry = match (body.get("ttl"), body.get("expireTime")) {
        (Some(_), Some(_)) => return Err("Only one of ttl and expireTime may be set.".into()),
        (Some(ttl), None) => {
            let s = ttl.as_str().ok_or("ttl must be a string like \"3.5s\".")?;
            Some(parse_duration(s).ok_or("ttl must be a duration like \"3.5s\".")?)
        }
        (None, Some(at)) => {
            let s = at
                .as_str()
                .ok_or("expireTime must be an RFC 3339 string.")?;
            let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| "expireTime must be an RFC 3339 timestamp.")?;
            let at = SystemTime::from(at);
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        }
        (None, None) => None,
    };
    if expiry.is_some_and(|e| e > MAX_EXPIRY) {
        return Err("ttl and expireTime may be at most 15 days after the send.".into());
    }
    Ok(expiry)
}

/// A protobuf `Duration` in JSON: decimal seconds with an `s` suffix (`"3.5s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn revoke(state: &mut State, phone: &str, message_id: &str) -> Reply {
    match state.messages.get_mut(message_id) {
        Some(m) if m.phone == phone && !m.delivered && !m.revoked => {
            m.revoked = true;
            Reply::new(200, json!({}), Verdict::Revoked)
        }
        _ => error(404, "NOT_FOUND", NOT_RCS),
    }
}

/// The canonical Google status name for an HTTP code the script asks for.
fn status_of(code: i64) -> (u16, &'static str) {
    match code {
        401 => (401, "UNAUTHENTICATED"),
        403 => (403, "PERMISSION_DENIED"),
        404 => (404, "NOT_FOUND"),
        409 => (409, "ALREADY_EXISTS"),
        429 => (429, "RESOURCE_EXHAUSTED"),
        500 => (500, "INTERNAL"),
        503 => (503, "UNAVAILABLE"),
        _ => (400, "INVALID_ARGUMENT"),
    }
}

/// A Google API error answer.
fn error(http: u16, status: &str, message: &str) -> Reply {
    Reply::new(
        http,
        json!({"error": {"code": http, "message": message, "status": status}}),
        Verdict::Refused(status.to_owned()),
    )
}

/// Schedules a user's text message.
pub fn inbound(rng: &mut impl Rng, msg: &Inbound, now: SystemTime) -> Vec<Scheduled> {
    if !msg.webhook {
        return Vec::new();
    }
    vec![Scheduled {
        after: Duration::ZERO,
        action: Action::Rbm(Event::UserMessage {
            phone: msg.from.clone(),
            message_id: super::exchange::random_alnum(rng, 22),
            text: msg.text.clone(),
            at: msg.at(now),
        }),
    }]
}

/// Builds the webhook for `event` now; `None` when what happened meanwhile cancels it (a
/// revoked message is not delivered, an unread one not read, a delivered one does not expire).
pub fn fire(
    state: &mut State,
    rng: &mut impl Rng,
    event: &Event,
    now: SystemTime,
) -> Option<Webhook> {
    let agent_id = state.config.agent_id.clone();
    let event_id = super::exchange::random_alnum(rng, 22);
    let (kind, data) = match event {
        Event::Status { message_id, kind } => {
            let m = state.messages.get_mut(message_id)?;
            match kind {
                Kind::Delivered if m.revoked => return None,
                Kind::Delivered => m.delivered = true,
                Kind::Read if !m.delivered => return None,
                Kind::Read => {}
                Kind::Expired if m.delivered || m.revoked => return None,
                Kind::Expired => m.revoked = true,
            }
            match kind {
                Kind::Expired => (
                    "TTL_EXPIRATION_REVOKED",
                    json!({
                        "phoneNumber": m.phone,
                        "messageId": message_id,
                        "agentId": agent_id,
                        "eventType": "TTL_EXPIRATION_REVOKED",
                        "eventId": event_id,
                        "sendTime": rfc3339(now),
                    }),
                ),
                Kind::Delivered | Kind::Read => {
                    let name = if *kind == Kind::Delivered {
                        "DELIVERED"
                    } else {
                        "READ"
                    };
                    (
                        name,
                        json!({
                            "senderPhoneNumber": m.phone,
                            "eventType": name,
                            "eventId": event_id,
                            "messageId": message_id,
                            "sendTime": rfc3339(now),
                            "agentId": agent_id,
                        }),
                    )
                }
            }
        }
        Event::UserMessage {
            phone,
            message_id,
            text,
            at,
        } => (
            "message",
            json!({
                "senderPhoneNumber": phone,
                "messageId": message_id,
                "sendTime": rfc3339(*at),
                "agentId": agent_id,
                "text": text,
            }),
        ),
    };
    let data = serde_json::to_vec(&data).unwrap_or_default();
    state.last_pubsub_id += 1;
    let body = json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(&data),
            "messageId": state.last_pubsub_id.to_string(),
            "publishTime": rfc3339(now),
        },
        "subscription": state.config.subscription,
    });
    Some(Webhook {
        provider: Provider::Rbm,
        kind: kind.into(),
        url: state.config.webhook_url.clone().unwrap_or_default(),
        headers: vec![(
            sign::RBM_HEADER.into(),
            sign::rbm_signature(&state.config.client_token, &data),
        )],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    })
}

#[cfg(test)]
#[path = "rbm_tests.rs"]
mod tests;
