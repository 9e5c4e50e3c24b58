//! RCS Business Messaging (Google's RBM API, v1): the capability check of a phone, agent
//! messages with a TTL, and what the API's answers and events mean.
//!
//! - `POST /v1/phones/{E.164}/agentMessages?messageId&agentId` with
//!   `{"contentMessage":{"text"},"ttl"}`: the message id is Switchyard's (so a retry of the
//!   same message is ignored by the platform, not sent twice), and it is the carrier id events
//!   are matched by. The TTL is what is left of the message's validity: when it passes
//!   undelivered, the platform revokes the message and says `TTL_EXPIRATION_REVOKED`, and the
//!   message becomes `expired`. 404: the phone cannot receive RCS (no RCS, or on a network
//!   where the agent is not launched).
//! - `GET /v1/phones/{E.164}/capabilities?requestId&agentId`: 200 when the phone is
//!   RCS-capable, 404 when not; asked before a phone's first message only with
//!   `capability_check` (the send's own 404 says the same, one request sooner). Either answer
//!   is remembered for `capability_cache_s`: a phone known not to have RCS is refused without
//!   a request.
//! - `DELETE /v1/phones/{E.164}/agentMessages/{messageId}?agentId`: revokes a message not
//!   delivered yet (200); 404 when it cannot be revoked any more (delivered, or gone). A flow
//!   revokes its RCS step's message when the step's time limit passed and the next step
//!   started ([`Agent::revoke`]).
//! - Auth: `Authorization: Bearer` with the agent's token. Errors are
//!   `{"error":{"code","message","status"}}`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_ops::config::RbmAgent;

use super::{judge_status, Api};
use crate::domain::{now_ms, ChatJob};
use crate::handoff::Verdict;

/// The longest TTL the API takes (15 days).
const MAX_TTL: Duration = Duration::from_secs(15 * 24 * 3600);
/// Phones whose capability is remembered, at most (the cache is emptied when full).
const MAX_CACHED: usize = 100_000;
/// The error text of a phone that is not RCS-capable (flows fall back on `rejected`).
pub(crate) const NOT_CAPABLE: &str = "not_rcs_capable";

/// One agent: its settings, client and capability cache.
#[derive(Debug)]
pub(crate) struct Agent {
    config: RbmAgent,
    pub(crate) api: Api,
    /// Phone (E.164 digits) → capable, and when that was learnt.
    capable: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Agent {
    pub(crate) fn new(config: RbmAgent, api: Api) -> Self {
        Agent {
            config,
            api,
            capable: Mutex::new(HashMap::new()),
        }
    }

    /// The webhook client token that signs this agent's events, if any.
    pub(crate) fn webhook_token(&self) -> Option<&str> {
        self.config.webhook_token.as_ref().map(|s| s.expose())
    }

    /// `…/v1/phones/%2B<digits>/<what>?<query>&agentId=<agent>`.
    fn url(&self, digits: &str, what: &str, query: &str) -> String {
        let agent: String =
            url::form_urlencoded::byte_serialize(self.config.agent_id.as_bytes()).collect();
        format!(
            "{}/v1/phones/%2B{digits}/{what}?{query}agentId={agent}",
            self.api.base_url
        )
    }

    /// The agent message, unless the phone is known not to have RCS (remembered, or asked
    /// first with `capability_check`).
    pub(crate) async fn send(&self, job: &ChatJob) -> Verdict {
        let digits = job.to.as_str();
        let capable = match self.remembered(digits) {
            Some(capable) => capable,
            None if self.config.capability_check => match self.ask_capability(job).await {
                Ok(capable) => capable,
                Err(v) => return v,
            },
            None => true,
        };
        if !capable {
            return not_capable(digits);
        }
        let mut message = serde_json::json!({ "contentMessage": { "text": job.body } });
        if let Some(at) = job.expires_at {
            let left = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
            let ttl = left.clamp(Duration::from_secs(1), MAX_TTL);
            message["ttl"] = format!("{}s", ttl.as_secs()).into();
        }
        let id = job.id.to_string();
        let url = self.url(digits, "agentMessages", &format!("messageId={id}&"));
        let body = serde_json::to_vec(&message).unwrap_or_default();
        let answer = match self
            .api
            .call(
                hyper::Method::POST,
                &url,
                Some(self.config.token.expose()),
                Some(body),
            )
            .await
        {
            Ok(a) => a,
            Err((why, class)) => return Verdict::Retry(why, class),
        };
        match answer.status {
            200..=299 => Verdict::Sent(id),
            404 => {
                self.remember(digits, false);
                not_capable(digits)
            }
            status => judge_status(status, error_text(status, &answer.body))
                .hinted(answer.wait_hint(&parsed_body(&answer.body))),
        }
    }

    /// What is remembered of the phone's capability, if it is still fresh.
    fn remembered(&self, digits: &str) -> Option<bool> {
        let ttl = self.config.capability_cache;
        self.capable
            .lock()
            .get(digits)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|&(capable, _)| capable)
    }

    /// Asks RBM whether the phone is RCS-capable, and remembers the answer. `Err` with the
    /// verdict when the check itself failed.
    async fn ask_capability(&self, job: &ChatJob) -> Result<bool, Verdict> {
        let digits = job.to.as_str();
        let url = self.url(
            digits,
            "capabilities",
            &format!("requestId={}-{}&", job.id, now_ms()),
        );
        let answer = self
            .api
            .call(
                hyper::Method::GET,
                &url,
                Some(self.config.token.expose()),
                None,
            )
            .await
            .map_err(|(why, class)| Verdict::Retry(why, class))?;
        let capable = match answer.status {
            200..=299 => true,
            404 => false,
            status => {
                return Err(judge_status(status, error_text(status, &answer.body))
                    .hinted(answer.wait_hint(&parsed_body(&answer.body))))
            }
        };
        self.remember(digits, capable);
        Ok(capable)
    }

    fn remember(&self, digits: &str, capable: bool) {
        if self.config.capability_cache.is_zero() {
            return;
        }
        let mut cache = self.capable.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(digits.to_owned(), (capable, Instant::now()));
    }
}

/// The verdict on a phone that cannot receive RCS messages.
fn not_capable(digits: &str) -> Verdict {
    Verdict::Unreachable(format!(
        "{NOT_CAPABLE}: +{digits} cannot receive RCS messages"
    ))
}

/// What revoking an agent message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// The platform revoked it: it will not be delivered.
    Yes,
    /// It could not be revoked any more (404: delivered already, or gone); a delivery that
    /// happened is still reported by its event.
    TooLate,
    /// The request failed (transport, auth, 5xx): nothing is known.
    Failed(String),
}

impl Agent {
    /// Revokes agent message `id` (Switchyard's message id, its `messageId`) to `digits`.
    pub(crate) async fn revoke(&self, digits: &str, id: &str) -> Revoked {
        let path = format!("agentMessages/{id}");
        let url = self.url(digits, &path, "");
        match self
            .api
            .call(
                hyper::Method::DELETE,
                &url,
                Some(self.config.token.expose()),
                None,
            )
            .await
        {
            Ok(a) if (200..300).contains(&a.status) => Revoked::Yes,
            Ok(a) if a.status == 404 => Revoked::TooLate,
            Ok(a) => Revoked::Failed(error_text(a.status, &a.body)),
            Err((why, _)) => Revoked::Failed(why),
        }
    }
}

/// An answer's body as JSON (`Null` when it is not).
fn parsed_body(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_default()
}

/// `<status> <STATUS>: <message>` from a Google API error body, or the HTTP status alone.
fn error_text(status: u16, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(e) => format!(
            "{status} {}: {}",
            e.get("status").and_then(|s| s.as_str()).unwrap_or(""),
            e.get("message").and_then(|s| s.as_str()).unwrap_or("")
        ),
        None => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_routing::FailureClass;

    #[test]
    fn google_errors_read_as_status_and_message() {
        let body =
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            error_text(429, body),
            "429 RESOURCE_EXHAUSTED: Quota exceeded"
        );
        assert_eq!(error_text(502, b"<html>"), "HTTP 502");
        let class = |status| match judge_status(status, String::new()) {
            Verdict::Retry(_, c) => Some(c),
            _ => None,
        };
        assert_eq!(class(429), Some(FailureClass::Throttled));
        assert_eq!(class(401), Some(FailureClass::TransportDown));
        assert_eq!(class(400), None);
    }
}
