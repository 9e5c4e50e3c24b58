//! WhatsApp Business Cloud API: text and template messages to a phone, and what Graph API
//! answers mean.
//!
//! - `POST {base}/{version}/{phone_number_id}/messages` with
//!   `{"messaging_product":"whatsapp","to":<digits>,"type":"text","text":{"body"}}` or
//!   `"type":"template"` with the template's name, language and body parameters; 200 answers
//!   `{"messages":[{"id":"wamid…"}]}`, the carrier id status webhooks are matched by.
//! - Free text is allowed only within 24 hours of the person's last message to the business
//!   (the customer-service window); outside it only templates go. The platform enforces it
//!   (error 131047, synchronously or in a `failed` status): the message is refused with
//!   `outside_customer_service_window` and the advice to send a template.
//! - Errors are `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`: rate limits
//!   (130429, 131048, 131056, 80007) are throttles, an invalid token (190) is the account's
//!   fault (another account may take the message), the rest refuse the message.

use serde_json::json;
use switchyard_ops::config::WhatsappAccount;
use switchyard_routing::FailureClass;

use super::{judge_status, Api};
use crate::domain::ChatJob;
use crate::handoff::Verdict;

/// The error a message outside the customer-service window gets.
pub(crate) const OUTSIDE_WINDOW: i64 = 131_047;

/// One business phone number.
#[derive(Debug)]
pub(crate) struct Number {
    config: WhatsappAccount,
    pub(crate) api: Api,
}

impl Number {
    pub(crate) fn new(config: WhatsappAccount, api: Api) -> Self {
        Number { config, api }
    }

    /// The app secret that signs this number's webhooks, if any.
    pub(crate) fn app_secret(&self) -> Option<&str> {
        self.config.app_secret.as_ref().map(|s| s.expose())
    }

    /// What the webhook verification request must repeat, if anything.
    pub(crate) fn verify_token(&self) -> Option<&str> {
        self.config.verify_token.as_ref().map(|s| s.expose())
    }

    /// Sends `job` as text or as its template.
    pub(crate) async fn send(&self, job: &ChatJob) -> Verdict {
        let body = request(job);
        let url = format!(
            "{}/{}/{}/messages",
            self.api.base_url, self.config.api_version, self.config.phone_number_id
        );
        let answer = match self
            .api
            .call(
                hyper::Method::POST,
                &url,
                Some(self.config.access_token.expose()),
                Some(serde_json::to_vec(&body).unwrap_or_default()),
            )
            .await
        {
            Ok(a) => a,
            Err((why, class)) => return Verdict::Retry(why, class),
        };
        let parsed: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if (200..300).contains(&answer.status) {
            return match parsed["messages"][0]["id"].as_str() {
                Some(id) if !id.is_empty() => Verdict::Sent(id.to_owned()),
                _ => Verdict::Retry(
                    "the answer names no message id".into(),
                    FailureClass::TransportDown,
                ),
            };
        }
        judge(answer.status, &parsed).hinted(answer.wait_hint(&parsed))
    }
}

/// The Cloud API request for `job`.
fn request(job: &ChatJob) -> serde_json::Value {
    let to = job.to.as_str();
    match &job.spec.template {
        None => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": false, "body": job.body },
        }),
        Some(t) => {
            let mut template = json!({
                "name": t.name,
                "language": { "code": t.language },
            });
            if !t.parameters.is_empty() {
                let parameters: Vec<_> = t
                    .parameters
                    .iter()
                    .map(|p| json!({ "type": "text", "text": p }))
                    .collect();
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": template,
            })
        }
    }
}

/// What a Graph API error means.
fn judge(status: u16, parsed: &serde_json::Value) -> Verdict {
    let error = &parsed["error"];
    let code = error["code"].as_i64();
    let text = match code {
        Some(c) => format!(
            "{c} {}",
            error["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        ),
        None => format!("HTTP {status}"),
    };
    match code {
        Some(OUTSIDE_WINDOW) => Verdict::Rejected(format!(
            "outside_customer_service_window: {text} (outside 24 hours of the person's last \
             message only a template can be sent)"
        )),
        Some(130_429 | 131_048 | 131_056 | 80_007 | 4) => {
            Verdict::Retry(text, FailureClass::Throttled)
        }
        Some(190) => Verdict::Retry(text, FailureClass::TransportDown),
        Some(131_000 | 131_016 | 2) => Verdict::Retry(text, FailureClass::TransportDown),
        _ => judge_status(status, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatChannel, ChatSpec, ChatTemplate, MessageId};

    fn job(template: Option<ChatTemplate>) -> ChatJob {
        ChatJob {
            id: MessageId(7),
            tenant: "t".into(),
            to: crate::domain::ChatTo::Phone(crate::number::parse_e164("+447911123456").unwrap().0),
            body: "hello".into(),
            from: String::new(),
            tags: Vec::new(),
            metadata: None,
            created_at: 0,
            spec: ChatSpec {
                channel: ChatChannel::Whatsapp,
                template,
                tag: None,
            },
            priority: switchyard_routing::Priority::Normal,
            expires_at: None,
            carrier: String::new(),
            withdrawable: false,
        }
    }

    #[test]
    fn text_and_template_requests_have_the_documented_shape() {
        let text = request(&job(None));
        assert_eq!(text["to"], "447911123456");
        assert_eq!(text["type"], "text");
        assert_eq!(text["text"]["body"], "hello");
        let t = request(&job(Some(ChatTemplate {
            name: "order_update".into(),
            language: "en_US".into(),
            parameters: vec!["A-17".into()],
        })));
        assert_eq!(t["type"], "template");
        assert_eq!(t["template"]["language"]["code"], "en_US");
        assert_eq!(
            t["template"]["components"][0]["parameters"][0]["text"],
            "A-17"
        );
    }

    #[test]
    fn graph_errors_are_judged_by_code() {
        let err = |code: i64| json!({"error": {"code": code, "message": "m"}});
        assert!(
            matches!(judge(400, &err(131_047)), Verdict::Rejected(t) if t.starts_with("outside_customer_service_window"))
        );
        assert!(matches!(
            judge(400, &err(130_429)),
            Verdict::Retry(_, FailureClass::Throttled)
        ));
        assert!(matches!(
            judge(401, &err(190)),
            Verdict::Retry(_, FailureClass::TransportDown)
        ));
        assert!(matches!(judge(400, &err(131_026)), Verdict::Rejected(_)));
        assert!(matches!(
            judge(503, &serde_json::Value::Null),
            Verdict::Retry(_, FailureClass::TransportDown)
        ));
    }
}
