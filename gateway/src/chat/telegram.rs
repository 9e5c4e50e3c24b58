//! Telegram Bot API: `POST {base}/bot<token>/sendMessage` with `{"chat_id", "text"}`.
//!
//! - `chat_id` is what the person's chat is called: an integer id (negative for groups) or
//!   `@channelusername`. Text is at most 4096 characters.
//! - Answers `{"ok":true,"result":{"message_id",…,"chat":{"id"}}}`: the carrier id is
//!   `<chat id>:<message id>` (message ids are per chat). Errors are
//!   `{"ok":false,"error_code","description","parameters":{"retry_after"}}`: 401 is the bot's
//!   fault (another bot may take it), 429 a throttle, 400 (chat not found) and 403 (the person
//!   blocked the bot) refuse the message.
//! - Telegram sends no delivery or read receipts: a Telegram message ends at `sent`.

use serde_json::json;
use switchyard_ops::config::TelegramBot;
use switchyard_routing::FailureClass;

use super::{judge_status, Api};
use crate::domain::ChatJob;
use crate::handoff::Verdict;

/// One bot.
#[derive(Debug)]
pub(crate) struct Bot {
    config: TelegramBot,
    pub(crate) api: Api,
}

impl Bot {
    pub(crate) fn new(config: TelegramBot, api: Api) -> Self {
        Bot { config, api }
    }

    /// The secret Telegram repeats on webhooks, if any.
    pub(crate) fn webhook_secret(&self) -> Option<&str> {
        self.config.webhook_secret.as_ref().map(|s| s.expose())
    }

    /// `sendMessage`.
    pub(crate) async fn send(&self, job: &ChatJob) -> Verdict {
        let chat = job.to.as_str();
        // An integer id goes as a number, a @username as a string.
        let chat_id = chat
            .parse::<i64>()
            .map_or_else(|_| json!(chat), |n| json!(n));
        let body = json!({ "chat_id": chat_id, "text": job.body });
        let url = format!(
            "{}/bot{}/sendMessage",
            self.api.base_url,
            self.config.bot_token.expose()
        );
        let answer = match self
            .api
            .call(
                hyper::Method::POST,
                &url,
                None,
                Some(serde_json::to_vec(&body).unwrap_or_default()),
            )
            .await
        {
            Ok(a) => a,
            // The URL holds the token: keep it out of what is logged and stored.
            Err((why, class)) => {
                return Verdict::Retry(
                    why.replace(self.config.bot_token.expose(), "<token>"),
                    class,
                )
            }
        };
        let parsed: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if parsed["ok"] == true {
            return match parsed["result"]["message_id"].as_i64() {
                Some(id) => Verdict::Sent(format!("{chat}:{id}")),
                None => Verdict::Retry(
                    "the answer names no message_id".into(),
                    FailureClass::TransportDown,
                ),
            };
        }
        let code = parsed["error_code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(answer.status);
        let description: String = parsed["description"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let what = format!("{code} {description}");
        match code {
            // The chat does not exist, or the person blocked the bot: about this message.
            400 | 403 => Verdict::Rejected(what),
            _ => judge_status(code, what).hinted(answer.wait_hint(&parsed)),
        }
    }
}
