//! WhatsApp Business Cloud API: `POST /{version}/{phone_number_id}/messages`.
//!
//! - Auth: `Authorization: Bearer <token>`; anything else is Graph error 190 (HTTP 401).
//! - Body: `messaging_product: "whatsapp"`, `to`, `type` `text` (`text.body`, at most 4096
//!   characters) or `template` (`name`, `language.code`, optional `components[]` with
//!   `type` and `parameters[]`). Other message types are refused with code 100: the
//!   simulator does not model them. Templates must be in the configured list (else 132001).
//! - Answer: `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],"messages":[{"id":"wamid.…"}]}`
//!   (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>).
//! - Customer-service window: free-form text to a user who has not written in the last 24
//!   hours is accepted, then reported `failed` with error 131047 in a status webhook, as the
//!   Cloud API does (the error is asynchronous). Templates are allowed at any time.
//! - Status webhooks (`sent`, `delivered`, `read`, `failed` with `errors[]`) and inbound
//!   messages go to the callback URL in the `whatsapp_business_account` envelope, signed with
//!   `X-Hub-Signature-256` (<https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples>).
//!   `conversation` and `pricing` objects of real status webhooks are not simulated.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::exchange::{
    unix_secs, window_open, Action, Inbound, Provider, Reply, Request, Scheduled, Verdict, Webhook,
    SERVICE_WINDOW,
};
use super::graph::{whatsapp_error, GraphError};
use super::script::{Outcome, Script};
use super::sign;

/// Credentials and identities of the simulated WhatsApp Business account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The access token clients must send as `Bearer`.
    pub token: String,
    /// The app secret that signs webhooks.
    pub app_secret: String,
    /// Where status and inbound webhooks are POSTed; none: they are counted as failed.
    pub webhook_url: Option<String>,
    /// The business phone number id the path must carry.
    pub phone_number_id: String,
    /// The business number shown in webhooks' `metadata`.
    pub display_phone_number: String,
    /// The WhatsApp Business Account id (`entry[].id` of webhooks).
    pub waba_id: String,
    /// Approved template names; others get 132001.
    pub templates: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: "whatsapp-token".into(),
            app_secret: "whatsapp-app-secret".into(),
            webhook_url: None,
            phone_number_id: "106540352242922".into(),
            display_phone_number: "15550783881".into(),
            waba_id: "102290129340398".into(),
            templates: vec!["hello_world".into()],
        }
    }
}

/// The simulated account's state.
#[derive(Debug, Default)]
pub struct State {
    /// Credentials and identities.
    pub config: Config,
    /// How recipients are treated.
    pub script: Script,
    /// When each user last wrote (opens the 24-hour window).
    pub windows: HashMap<String, SystemTime>,
}

/// A message status as reported in `statuses[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Sent to WhatsApp's servers.
    Sent,
    /// On the user's device.
    Delivered,
    /// Displayed.
    Read,
    /// Could not be sent or delivered, with this error code.
    Failed(i64),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed(_) => "failed",
        }
    }
}

/// A webhook to build when it fires.
#[derive(Debug, Clone)]
pub enum Event {
    /// A status of an accepted message.
    Status {
        /// The `wamid`.
        message_id: String,
        /// The user's WhatsApp id.
        recipient: String,
        /// What happened.
        status: Status,
    },
    /// A text message from a user.
    Inbound {
        /// The user's WhatsApp id.
        from: String,
        /// Profile name.
        name: String,
        /// The message's `wamid`.
        id: String,
        /// Its text.
        text: String,
        /// When the user sent it.
        at: SystemTime,
    },
}

/// Answers one request to the WhatsApp API (the path is `/{version}/{id}/messages`).
pub fn handle(state: &mut State, rng: &mut impl Rng, req: &Request, now: SystemTime) -> Reply {
    let refuse = |e: GraphError, rng: &mut _| {
        Reply::new(e.http, e.body(true, rng), Verdict::Refused(e.key()))
    };
    if req.method != "POST" {
        return refuse(
            whatsapp_error(100).details("Unsupported method: only POST creates messages."),
            rng,
        );
    }
    if req.bearer() != Some(state.config.token.as_str()) {
        return refuse(whatsapp_error(190), rng);
    }
    let segments = req.segments();
    let phone_number_id = segments.get(1).copied().unwrap_or_default();
    if phone_number_id != state.config.phone_number_id {
        let e = GraphError::new(
            400,
            100,
            format!(
                "Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
            ),
        )
        .subcode(33);
        return refuse(e, rng);
    }
    let message = match validate(&state.config, req) {
        Ok(m) => m,
        Err(e) => return refuse(e, rng),
    };
    let behaviour = state.script.for_recipient(&message.to).clone();
    let refusal = match behaviour.outcome {
        Outcome::BadCredentials => Some(whatsapp_error(190)),
        Outcome::Reject => Some(whatsapp_error(behaviour.code.unwrap_or(131026))),
        Outcome::Throttle => Some(whatsapp_error(behaviour.code.unwrap_or(130429))),
        Outcome::Transient => Some(whatsapp_error(behaviour.code.unwrap_or(131000))),
        Outcome::Accept | Outcome::Fail => None,
    };
    if let Some(e) = refusal {
        let mut reply = refuse(e, rng);
        reply.delay = behaviour.response_delay();
        reply.recipient = Some(message.to);
        return reply;
    }
    let wamid = new_wamid(rng);
    let wa_id: String = message.to.chars().filter(char::is_ascii_digit).collect();
    let body = json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": message.to, "wa_id": wa_id}],
        "messages": [{"id": wamid}],
    });
    let status = |after_ms: u64, status: Status| Scheduled {
        after: Duration::from_millis(after_ms),
        action: Action::Whatsapp(Event::Status {
            message_id: wamid.clone(),
            recipient: wa_id.clone(),
            status,
        }),
    };
    let in_window = window_open(state.windows.get(&wa_id).copied(), SERVICE_WINDOW, now);
    let mut scheduled = Vec::new();
    if !message.template && !in_window {
        scheduled.push(status(behaviour.sent_delay_ms, Status::Failed(131047)));
    } else if behaviour.outcome == Outcome::Fail {
        let code = behaviour.code.unwrap_or(131026);
        scheduled.push(status(behaviour.sent_delay_ms, Status::Failed(code)));
    } else {
        scheduled.push(status(behaviour.sent_delay_ms, Status::Sent));
        if let Some(d) = behaviour.delivered_delay_ms {
            scheduled.push(status(d, Status::Delivered));
        }
        if let Some(r) = behaviour.read_delay_ms {
            scheduled.push(status(r, Status::Read));
        }
    }
    Reply {
        status: 200,
        body,
        delay: behaviour.response_delay(),
        verdict: Verdict::Accepted {
            message_id: wamid.clone(),
        },
        recipient: Some(message.to),
        scheduled,
    }
}

/// What a valid send request carries that the simulator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient as given.
    pub to: String,
    /// A template message (allowed outside the window).
    pub template: bool,
}

/// Checks a send request's body; the error is the Graph error the API answers.
pub fn validate(config: &Config, req: &Request) -> Result<Message, GraphError> {
    let param = |msg: &str| GraphError::new(400, 100, msg).details(msg);
    let body = req
        .json()
        .ok_or_else(|| param("Request body is not valid JSON."))?;
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(param("The parameter messaging_product is required."));
    }
    if let Some(rt) = body.get("recipient_type") {
        if rt.as_str() != Some("individual") {
            return Err(param("Param recipient_type must be 'individual'."));
        }
    }
    let to = body
        .get("to")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| param("The parameter to is required."))?
        .to_owned();
    let kind = match body.get("type") {
        None => "text",
        Some(t) => t
            .as_str()
            .ok_or_else(|| param("Param type must be a string."))?,
    };
    match kind {
        "text" => {
            let text = body
                .get("text")
                .and_then(|t| t.get("body"))
                .and_then(Value::as_str)
                .ok_or_else(|| param("The parameter text['body'] is required."))?;
            if text.is_empty() {
                return Err(param("Param text['body'] must not be empty."));
            }
            if text.chars().count() > 4096 {
                return Err(param(
                    "Param text['body'] must be at most 4096 characters long.",
                ));
            }
            Ok(Message {
                to,
                template: false,
            })
        }
        "template" => {
            let template = body
                .get("template")
                .ok_or_else(|| param("The parameter template is required."))?;
            let name = template
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| param("The parameter template['name'] is required."))?;
            template
                .get("language")
                .and_then(|l| l.get("code"))
                .and_then(Value::as_str)
                .ok_or_else(|| param("The parameter template['language']['code'] is required."))?;
            if let Some(components) = template.get("components") {
                let list = components
                    .as_array()
                    .ok_or_else(|| param("Param template['components'] must be an array."))?;
                for c in list {
                    if c.get("type").and_then(Value::as_str).is_none() {
                        return Err(param("Param template['components'][]['type'] is required."));
                    }
                    if let Some(ps) = c.get("parameters") {
                        let ok = ps.as_array().is_some_and(|ps| {
                            ps.iter()
                                .all(|p| p.get("type").and_then(Value::as_str).is_some())
                        });
                        if !ok {
                            return Err(param(
                                "Param template['components'][]['parameters'] must be an array of objects with a type.",
                            ));
                        }
                    }
                }
            }
            if !config.templates.iter().any(|t| t == name) {
                return Err(whatsapp_error(132001));
            }
            Ok(Message { to, template: true })
        }
        other => Err(param(&format!(
            "Message type '{other}' is not simulated (text and template are)."
        ))),
    }
}

/// Opens the user's window and schedules the inbound webhook.
pub fn inbound(
    state: &mut State,
    rng: &mut impl Rng,
    msg: &Inbound,
    now: SystemTime,
) -> Vec<Scheduled> {
    let at = msg.at(now);
    let from: String = msg.from.chars().filter(char::is_ascii_digit).collect();
    let latest = state.windows.entry(from.clone()).or_insert(at);
    if at > *latest {
        *latest = at;
    }
    if !msg.webhook {
        return Vec::new();
    }
    vec![Scheduled {
        after: Duration::ZERO,
        action: Action::Whatsapp(Event::Inbound {
            from,
            name: msg.name.clone(),
            id: new_wamid(rng),
            text: msg.text.clone(),
            at,
        }),
    }]
}

/// Builds the webhook for `event` now.
pub fn fire(state: &State, event: &Event, now: SystemTime) -> Webhook {
    let c = &state.config;
    let metadata = json!({
        "display_phone_number": c.display_phone_number,
        "phone_number_id": c.phone_number_id,
    });
    let (kind, value) = match event {
        Event::Status {
            message_id,
            recipient,
            status,
        } => {
            let mut s = json!({
                "id": message_id,
                "status": status.as_str(),
                "timestamp": unix_secs(now).to_string(),
                "recipient_id": recipient,
            });
            if let Status::Failed(code) = status {
                let e = whatsapp_error(*code);
                s["errors"] = json!([{
                    "code": code,
                    "title": e.title,
                    "message": e.title,
                    "error_data": {"details": e.details.unwrap_or_default()},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }]);
            }
            (
                status.as_str().to_owned(),
                json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": [s]}),
            )
        }
        Event::Inbound {
            from,
            name,
            id,
            text,
            at,
        } => (
            "message".to_owned(),
            json!({
                "messaging_product": "whatsapp",
                "metadata": metadata,
                "contacts": [{"profile": {"name": name}, "wa_id": from}],
                "messages": [{
                    "from": from,
                    "id": id,
                    "timestamp": unix_secs(*at).to_string(),
                    "type": "text",
                    "text": {"body": text},
                }],
            }),
        ),
    };
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": c.waba_id, "changes": [{"value": value, "field": "messages"}]}],
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Webhook {
        provider: Provider::Whatsapp,
        kind,
        url: c.webhook_url.clone().unwrap_or_default(),
        headers: vec![(
            sign::META_HEADER.into(),
            sign::meta_signature(&c.app_secret, &body),
        )],
        body,
    }
}

/// A new message id in WhatsApp's `wamid.` + base64 form.
fn new_wamid(rng: &mut impl Rng) -> String {
    let mut bytes = [0u8; 30];
    rng.fill(&mut bytes[..]);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
#[path = "whatsapp_tests.rs"]
mod tests;
