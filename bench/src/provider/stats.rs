//! What the simulator saw and sent, for `GET /stats`: counters per provider, and the last
//! requests and webhooks (each list capped, the oldest dropped first, so memory is bounded).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use super::exchange::{Provider, Reply, Request, Verdict, Webhook};

/// Counters of one provider.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ProviderStats {
    /// Requests to the provider API (capability checks and revocations included).
    pub requests: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Requests refused, by provider error code (or status name for RBM).
    pub refused: BTreeMap<String, u64>,
    /// Sends with a message id already used (RBM), answered without a second delivery.
    pub duplicates: u64,
    /// RBM messages revoked by `DELETE`.
    pub revoked: u64,
    /// Requests waiting now because their recipient's behaviour holds them (RBM `hold`).
    pub holding: u64,
    /// Webhooks answered with a 2xx.
    pub events_sent: u64,
    /// Webhooks that failed (no callback URL configured, connection error, non-2xx, timeout).
    pub events_failed: u64,
    /// Scheduled webhooks dropped because of what happened meanwhile (a revoked RBM message
    /// is not delivered; a delivered one does not expire).
    pub events_skipped: u64,
}

/// One request received, as the test sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Order of arrival (from 1, over all providers).
    pub seq: u64,
    /// Which API.
    pub provider: Provider,
    /// HTTP method.
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// Headers (lower-case names; repeated ones joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or as a string when it is not JSON.
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// The message id answered, for accepted messages.
    pub message_id: Option<String>,
}

/// One webhook sent (or attempted).
#[derive(Debug, Clone, Serialize)]
pub struct SentWebhook {
    /// Order of sending (from 1).
    pub seq: u64,
    /// Whose webhook.
    pub provider: Provider,
    /// What it reported.
    pub kind: String,
    /// Where it went.
    pub url: String,
    /// Headers added (signature, secret token).
    pub headers: BTreeMap<String, String>,
    /// The body as JSON.
    pub body: Value,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// All counters and the capped lists.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Counters by provider name.
    pub providers: BTreeMap<&'static str, ProviderStats>,
    /// The last requests, oldest first.
    pub received: VecDeque<Received>,
    /// Requests dropped from `received` to keep it under the cap.
    pub received_dropped: u64,
    /// The last webhooks, oldest first.
    pub webhooks: VecDeque<SentWebhook>,
    /// Webhooks dropped from `webhooks` to keep it under the cap.
    pub webhooks_dropped: u64,
    /// The cap on each list.
    pub cap: usize,
    /// The last request number given (`Received::seq`).
    #[serde(skip)]
    seq: u64,
    /// The last webhook number given (`SentWebhook::seq`).
    #[serde(skip)]
    webhook_seq: u64,
}

impl Stats {
    /// Empty, keeping at most `cap` requests and `cap` webhooks.
    pub fn new(cap: usize) -> Stats {
        Stats {
            providers: Provider::ALL
                .into_iter()
                .map(|p| (p.as_str(), ProviderStats::default()))
                .collect(),
            received: VecDeque::new(),
            received_dropped: 0,
            webhooks: VecDeque::new(),
            webhooks_dropped: 0,
            cap,
            seq: 0,
            webhook_seq: 0,
        }
    }

    /// The counters of `p`.
    pub fn of(&mut self, p: Provider) -> &mut ProviderStats {
        self.providers.entry(p.as_str()).or_default()
    }

    /// Counts a request and its reply, and keeps the request.
    pub fn record(&mut self, provider: Provider, req: &Request, reply: &Reply) {
        let s = self.of(provider);
        s.requests += 1;
        let message_id = match &reply.verdict {
            Verdict::Accepted { message_id } => {
                s.accepted += 1;
                Some(message_id.clone())
            }
            Verdict::Duplicate => {
                s.duplicates += 1;
                None
            }
            Verdict::Refused(code) => {
                *s.refused.entry(code.clone()).or_default() += 1;
                None
            }
            Verdict::Revoked => {
                s.revoked += 1;
                None
            }
            Verdict::Other => None,
        };
        self.seq += 1;
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &req.headers {
            headers
                .entry(k.clone())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
        let body = req
            .json()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
        let r = Received {
            seq: self.seq,
            provider,
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.iter().cloned().collect(),
            headers,
            body,
            status: reply.status,
            message_id,
        };
        push_capped(&mut self.received, r, self.cap, &mut self.received_dropped);
    }

    /// Counts a webhook attempt and keeps it.
    pub fn record_webhook(&mut self, w: &Webhook, result: Result<u16, String>) {
        let s = self.of(w.provider);
        match &result {
            Ok(code) if (200..300).contains(code) => s.events_sent += 1,
            _ => s.events_failed += 1,
        }
        self.webhook_seq += 1;
        let (status, error) = match result {
            Ok(code) => (Some(code), None),
            Err(e) => (None, Some(e)),
        };
        let r = SentWebhook {
            seq: self.webhook_seq,
            provider: w.provider,
            kind: w.kind.clone(),
            url: w.url.clone(),
            headers: w.headers.iter().cloned().collect(),
            body: serde_json::from_slice(&w.body).unwrap_or(Value::Null),
            status,
            error,
        };
        push_capped(&mut self.webhooks, r, self.cap, &mut self.webhooks_dropped);
    }
}

fn push_capped<T>(list: &mut VecDeque<T>, item: T, cap: usize, dropped: &mut u64) {
    if cap == 0 {
        *dropped += 1;
        return;
    }
    while list.len() >= cap {
        list.pop_front();
        *dropped += 1;
    }
    list.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_capped_and_counters_kept() {
        let mut s = Stats::new(2);
        let req = Request {
            method: "POST".into(),
            path: "/x".into(),
            body: br#"{"a":1}"#.to_vec(),
            ..Request::default()
        };
        for i in 0..3 {
            let reply = Reply::new(
                200,
                json!({}),
                Verdict::Accepted {
                    message_id: format!("m{i}"),
                },
            );
            s.record(Provider::Whatsapp, &req, &reply);
        }
        s.record(
            Provider::Whatsapp,
            &req,
            &Reply::new(400, json!({}), Verdict::Refused("100".into())),
        );
        let w = &s.providers["whatsapp"];
        assert_eq!((w.requests, w.accepted, w.refused["100"]), (4, 3, 1));
        assert_eq!(s.received.len(), 2);
        assert_eq!(s.received_dropped, 2);
        assert_eq!(s.received[0].message_id.as_deref(), Some("m2"));
        assert_eq!(s.received[0].body, json!({"a":1}));
    }
}
