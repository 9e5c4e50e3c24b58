//! Telegram Bot API: `POST /bot<token>/sendMessage` (<https://core.telegram.org/bots/api#sendmessage>).
//!
//! - Parameters as JSON or as a form (`chat_id` integer or `@channelusername`, `text` of 1–4096
//!   characters, optional `parse_mode` `HTML`/`Markdown`/`MarkdownV2`); method names are
//!   case-insensitive, as the Bot API's are.
//! - Answers `{"ok":true,"result":Message}` or
//!   `{"ok":false,"error_code":N,"description":"…","parameters":{"retry_after":N}}`
//!   (<https://core.telegram.org/bots/api#making-requests>): 401 `Unauthorized` for a wrong
//!   token, 400 `Bad Request: chat not found`, 403 `Forbidden: bot was blocked by the user`,
//!   429 `Too Many Requests: retry after N`.
//! - Telegram has no delivery or read receipts: an accepted message produces no webhook, and
//!   `delivered_delay_ms`/`read_delay_ms` are ignored. A connector can only know that the Bot
//!   API took the message.
//! - Inbound: an `Update` with a `message` POSTed to the webhook URL with
//!   `X-Telegram-Bot-Api-Secret-Token` when a secret token is configured
//!   (<https://core.telegram.org/bots/api#setwebhook>).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::exchange::{
    parse_query, unix_secs, Action, Inbound, Provider, Reply, Request, Scheduled, Verdict, Webhook,
};
use super::script::{Outcome, Script};
use super::sign;

/// The simulated bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The bot token in the path (`<bot id>:<secret>`).
    pub token: String,
    /// The `secret_token` given to `setWebhook`, repeated in each webhook's header.
    pub secret_token: Option<String>,
    /// Where updates are POSTed; none: they are counted as failed.
    pub webhook_url: Option<String>,
    /// The bot's `first_name` in sent messages.
    pub bot_first_name: String,
    /// The bot's `username`.
    pub bot_username: String,
    /// Refuse chats that never wrote to the bot (`Bad Request: chat not found`), as Telegram
    /// does for users who have not started the bot.
    pub known_chats_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11".into(),
            secret_token: Some("telegram-secret-token".into()),
            webhook_url: None,
            bot_first_name: "Switchyard Sim".into(),
            bot_username: "switchyard_sim_bot".into(),
            known_chats_only: false,
        }
    }
}

/// The bot's state.
#[derive(Debug, Default)]
pub struct State {
    /// Credentials.
    pub config: Config,
    /// How chats are treated.
    pub script: Script,
    /// Chats that wrote to the bot, with the user's first name.
    pub chats: HashMap<String, String>,
    /// The last `message_id` given.
    pub last_message_id: i64,
    /// The last `update_id` given.
    pub last_update_id: i64,
}

/// A webhook to build when it fires.
#[derive(Debug, Clone)]
pub enum Event {
    /// A text message from a user.
    Update {
        /// The user (and private chat) id.
        from: i64,
        /// The user's first name.
        first_name: String,
        /// The text.
        text: String,
        /// `update_id`.
        update_id: i64,
        /// `message.message_id`.
        message_id: i64,
        /// When the user sent it.
        at: SystemTime,
    },
}

/// Answers one request under `/bot…/…`.
pub fn handle(state: &mut State, req: &Request, now: SystemTime) -> Reply {
    let segments = req.segments();
    let token = segments
        .first()
        .and_then(|s| s.strip_prefix("bot"))
        .unwrap_or_default();
    let method = segments.get(1).copied().unwrap_or_default();
    if token != state.config.token {
        return error(401, "Unauthorized", None);
    }
    if !method.eq_ignore_ascii_case("sendMessage") {
        return error(404, "Not Found", None);
    }
    let params = match params(req) {
        Some(p) => p,
        None => return error(400, "Bad Request: can't parse JSON object", None),
    };
    let chat_id = match params.get("chat_id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return error(400, "Bad Request: chat_id is empty", None),
    };
    let text = params.get("text").and_then(Value::as_str).unwrap_or("");
    if text.is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    if text.chars().count() > 4096 {
        return error(400, "Bad Request: message is too long", None);
    }
    if let Some(mode) = params.get("parse_mode").and_then(Value::as_str) {
        if !["HTML", "Markdown", "MarkdownV2"].contains(&mode) {
            return error(400, "Bad Request: unsupported parse_mode", None);
        }
    }
    if state.config.known_chats_only && !state.chats.contains_key(&chat_id) {
        return error(400, "Bad Request: chat not found", None);
    }
    let behaviour = state.script.for_recipient(&chat_id).clone();
    let refusal = match behaviour.outcome {
        Outcome::BadCredentials => Some(error(401, "Unauthorized", None)),
        Outcome::Reject => Some(match behaviour.code.unwrap_or(403) {
            400 => error(400, "Bad Request: chat not found", None),
            403 => error(403, "Forbidden: bot was blocked by the user", None),
            other => error(
                u16::try_from(other).unwrap_or(400),
                "Bad Request: simulated error",
                None,
            ),
        }),
        Outcome::Throttle => Some(error(
            429,
            &format!("Too Many Requests: retry after {}", behaviour.retry_after_s),
            Some(behaviour.retry_after_s),
        )),
        Outcome::Transient => Some(error(500, "Internal Server Error", None)),
        Outcome::Accept | Outcome::Fail => None,
    };
    if let Some(mut reply) = refusal {
        reply.delay = behaviour.response_delay();
        reply.recipient = Some(chat_id);
        return reply;
    }
    state.last_message_id += 1;
    let message_id = state.last_message_id;
    let bot_id: i64 = state
        .config
        .token
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let chat = match chat_id.parse::<i64>() {
        Ok(id) => json!({
            "id": id,
            "type": "private",
            "first_name": state.chats.get(&chat_id).map(String::as_str).unwrap_or("Test User"),
        }),
        // A `@channelusername`: the simulator keeps no channels, so every one gets this id.
        Err(_) => json!({
            "id": -1_001_234_567_890_i64,
            "type": "channel",
            "title": chat_id.trim_start_matches('@'),
            "username": chat_id.trim_start_matches('@'),
        }),
    };
    let result = json!({
        "message_id": message_id,
        "from": {
            "id": bot_id,
            "is_bot": true,
            "first_name": state.config.bot_first_name,
            "username": state.config.bot_username,
        },
        "chat": chat,
        "date": unix_secs(now),
        "text": text,
    });
    Reply {
        status: 200,
        body: json!({"ok": true, "result": result}),
        delay: behaviour.response_delay(),
        verdict: Verdict::Accepted {
            message_id: message_id.to_string(),
        },
        recipient: Some(chat_id),
        scheduled: Vec::new(),
    }
}

/// The request's parameters: a JSON object body, else a form body, else the query string.
fn params(req: &Request) -> Option<serde_json::Map<String, Value>> {
    if !req.body.is_empty() {
        if let Some(Value::Object(m)) = req.json() {
            return Some(m);
        }
        let form = std::str::from_utf8(&req.body).ok()?;
        if form.trim_start().starts_with('{') {
            return None;
        }
        return Some(
            parse_query(form)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
    }
    Some(
        req.query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An `ok: false` answer.
fn error(code: u16, description: &str, retry_after: Option<u64>) -> Reply {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({ "retry_after": s });
    }
    Reply::new(code, body, Verdict::Refused(code.to_string()))
}

/// Makes the chat known and schedules the update. `from` must be a numeric user id.
pub fn inbound(
    state: &mut State,
    msg: &Inbound,
    now: SystemTime,
) -> Result<Vec<Scheduled>, String> {
    let from: i64 = msg
        .from
        .parse()
        .map_err(|_| format!("telegram user ids are integers, not {:?}", msg.from))?;
    state.chats.insert(msg.from.clone(), msg.name.clone());
    if !msg.webhook {
        return Ok(Vec::new());
    }
    state.last_update_id += 1;
    state.last_message_id += 1;
    Ok(vec![Scheduled {
        after: Duration::ZERO,
        action: Action::Telegram(Event::Update {
            from,
            first_name: msg.name.clone(),
            text: msg.text.clone(),
            update_id: state.last_update_id,
            message_id: state.last_message_id,
            at: msg.at(now),
        }),
    }])
}

/// Builds the webhook for `event`.
pub fn fire(state: &State, event: &Event) -> Webhook {
    let Event::Update {
        from,
        first_name,
        text,
        update_id,
        message_id,
        at,
    } = event;
    let body = json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": from, "is_bot": false, "first_name": first_name},
            "chat": {"id": from, "type": "private", "first_name": first_name},
            "date": unix_secs(*at),
            "text": text,
        },
    });
    let mut headers = Vec::new();
    if let Some(secret) = &state.config.secret_token {
        headers.push((sign::TELEGRAM_HEADER.to_owned(), secret.clone()));
    }
    Webhook {
        provider: Provider::Telegram,
        kind: "message".into(),
        url: state.config.webhook_url.clone().unwrap_or_default(),
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "telegram_tests.rs"]
mod tests;
