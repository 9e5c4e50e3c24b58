//! Messenger Send API: `POST {base}/{version}/me/messages` with
//! `{"recipient":{"id":<PSID>},"messaging_type","message":{"text"}}`.
//!
//! - The recipient is the person's page-scoped id (PSID). Text is at most 2000 characters.
//! - A page may write within 24 hours of the person's last message (`messaging_type`
//!   `UPDATE`); outside it only with a message tag (`MESSAGE_TAG` and `tag`, e.g.
//!   `ACCOUNT_UPDATE`). The platform enforces it (code 10, subcode 2018278): the message is
//!   refused with `outside_messaging_window` and the advice to give a tag.
//! - Answers `{"recipient_id","message_id"}`: the message id is the carrier id delivery
//!   webhooks (`delivery.mids`) are matched by. Errors are Graph errors, judged as WhatsApp's.

use serde_json::json;
use switchyard_ops::config::MessengerPage;
use switchyard_routing::FailureClass;

use super::{judge_status, Api};
use crate::domain::ChatJob;
use crate::handoff::Verdict;

/// The subcode of a message outside the standard messaging window.
const OUTSIDE_WINDOW: i64 = 2_018_278;

/// One Facebook Page.
#[derive(Debug)]
pub(crate) struct Page {
    config: MessengerPage,
    pub(crate) api: Api,
}

impl Page {
    pub(crate) fn new(config: MessengerPage, api: Api) -> Self {
        Page { config, api }
    }

    /// The app secret that signs this page's webhooks, if any.
    pub(crate) fn app_secret(&self) -> Option<&str> {
        self.config.app_secret.as_ref().map(|s| s.expose())
    }

    /// What the webhook verification request must repeat, if anything.
    pub(crate) fn verify_token(&self) -> Option<&str> {
        self.config.verify_token.as_ref().map(|s| s.expose())
    }

    /// Sends `job`, tagged when it has a tag.
    pub(crate) async fn send(&self, job: &ChatJob) -> Verdict {
        let mut body = json!({
            "recipient": { "id": job.to.as_str() },
            "messaging_type": "UPDATE",
            "message": { "text": job.body },
        });
        if let Some(tag) = &job.spec.tag {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!(tag);
        }
        let url = format!(
            "{}/{}/me/messages",
            self.api.base_url, self.config.api_version
        );
        let answer = match self
            .api
            .call(
                hyper::Method::POST,
                &url,
                Some(self.config.page_access_token.expose()),
                Some(serde_json::to_vec(&body).unwrap_or_default()),
            )
            .await
        {
            Ok(a) => a,
            Err((why, class)) => return Verdict::Retry(why, class),
        };
        let parsed: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if (200..300).contains(&answer.status) {
            return match parsed["message_id"].as_str() {
                Some(id) if !id.is_empty() => Verdict::Sent(id.to_owned()),
                _ => Verdict::Retry(
                    "the answer names no message_id".into(),
                    FailureClass::TransportDown,
                ),
            };
        }
        judge(answer.status, &parsed).hinted(answer.wait_hint(&parsed))
    }
}

/// What a Graph API error of the Send API means.
fn judge(status: u16, parsed: &serde_json::Value) -> Verdict {
    let error = &parsed["error"];
    let code = error["code"].as_i64();
    let message: String = error["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let text = match code {
        Some(c) => format!("{c} {message}"),
        None => format!("HTTP {status}"),
    };
    if error["error_subcode"].as_i64() == Some(OUTSIDE_WINDOW) {
        return Verdict::Rejected(format!(
            "outside_messaging_window: {text} (more than 24 hours after the person's last \
             message a page needs a message tag)"
        ));
    }
    match code {
        Some(4 | 613) => Verdict::Retry(text, FailureClass::Throttled),
        Some(190) => Verdict::Retry(text, FailureClass::TransportDown),
        Some(1 | 2) => Verdict::Retry(text, FailureClass::TransportDown),
        _ => judge_status(status, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_error_is_explained_and_limits_are_throttles() {
        let outside = json!({"error": {"code": 10, "error_subcode": 2018278, "message": "m"}});
        assert!(
            matches!(judge(400, &outside), Verdict::Rejected(t) if t.starts_with("outside_messaging_window"))
        );
        let limit = json!({"error": {"code": 613, "message": "Calls to this api have exceeded the rate limit."}});
        assert!(matches!(
            judge(400, &limit),
            Verdict::Retry(_, FailureClass::Throttled)
        ));
        let token = json!({"error": {"code": 190, "message": "Invalid OAuth access token."}});
        assert!(matches!(
            judge(400, &token),
            Verdict::Retry(_, FailureClass::TransportDown)
        ));
    }
}
