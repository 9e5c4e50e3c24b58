//! Events as read from the store's event log, their JSON, and the writes events make (opt-outs,
//! the webhook outbox, the pump's cursor).

use serde::Serialize;

use super::{Keyword, MessageId, UnixMs};

/// A write to the opt-out list or the webhook outbox, applied by the store in the group
/// commit (as [`crate::domain::Update::Events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventWrite {
    /// Adds (or refreshes) opt-outs of `tenant`: (recipient, sender) pairs, numbers without
    /// `+`, sender `*` for every sender of the tenant.
    OptOutAdd {
        /// Whose list.
        tenant: String,
        /// (recipient, sender) pairs.
        entries: Vec<(String, String)>,
        /// "api", "import" or "keyword".
        source: String,
        /// When.
        at: UnixMs,
    },
    /// Removes an opt-out: for one sender, or every sender when `sender` is `None`.
    OptOutRemove {
        /// Whose list.
        tenant: String,
        /// The number, without `+`.
        recipient: String,
        /// Which sender's entry; `None` for all.
        sender: Option<String>,
    },
    /// A webhook to retry later (its first attempt failed or its endpoint was saturated).
    OutboxAdd {
        /// The event.
        seq: i64,
        /// Its tenant.
        tenant: String,
        /// Where to.
        url: String,
        /// Attempts made so far.
        attempts: u32,
        /// When the event was first attempted (the 24 h clock starts there).
        first_at: UnixMs,
        /// When to try next.
        next_at: UnixMs,
        /// Why the last attempt failed.
        error: Option<String>,
        /// Stored straight as a dead letter (the failure cannot go away by retrying).
        dead: bool,
    },
    /// Webhook endpoints' health as the node sending webhooks saw it since its last report:
    /// counts are added to the stored records, the last success, failure (with its reason)
    /// and latency replace theirs when newer.
    EndpointHealth {
        /// One per endpoint attempted since the last report.
        reports: Vec<EndpointHealth>,
    },
    /// The retry succeeded: forget it.
    OutboxDone {
        /// Outbox row.
        id: i64,
    },
    /// The retry failed: try again at `next_at`.
    OutboxRetry {
        /// Outbox row.
        id: i64,
        /// Attempts made so far.
        attempts: u32,
        /// When to try next.
        next_at: UnixMs,
        /// Why it failed.
        error: String,
    },
    /// Not attempted (its tenant or endpoint had no room): due again at `next_at`, attempts
    /// and last error unchanged.
    OutboxDefer {
        /// Outbox rows.
        ids: Vec<i64>,
        /// When to try next.
        next_at: UnixMs,
    },
    /// Given up: the row becomes a dead letter.
    OutboxDead {
        /// Outbox row.
        id: i64,
        /// Why the last attempt failed.
        error: String,
    },
    /// Dead letters of `tenant` (one, or all when `id` is `None`) go back to the retry queue
    /// with a fresh 24 h budget.
    Replay {
        /// Whose.
        tenant: String,
        /// One dead letter, or all.
        id: Option<i64>,
        /// Now: the new first attempt time and due time.
        at: UnixMs,
    },
    /// The webhook pump's saved position.
    Cursor {
        /// Every event up to here was delivered or is in the outbox.
        seq: i64,
    },
    /// Another reader's saved position (e.g. `smpp:<system_id>`, the receipts of one SMPP
    /// user); it only moves forward.
    NamedCursor {
        /// The reader.
        name: String,
        /// Every event up to here was handled.
        seq: i64,
    },
}

/// A webhook endpoint's health: its last success and failure, the last failure's reason,
/// how many attempts succeeded and failed, and the moving average of the successful
/// attempts' latency. As stored, the record of every node that sent webhooks to it; in an
/// [`EventWrite::EndpointHealth`] report, what one node saw since its last report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Whose endpoint.
    pub tenant: String,
    /// The webhook URL.
    pub url: String,
    /// When an attempt last got a 2xx.
    pub last_success: Option<UnixMs>,
    /// When an attempt last failed.
    pub last_failure: Option<UnixMs>,
    /// Why it failed (status, timeout, connection error, refused destination).
    pub last_error: Option<String>,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Moving average of the successful attempts' latency, microseconds.
    pub latency_us: Option<u64>,
    /// The newest attempt counted.
    pub updated_at: UnixMs,
}

impl EndpointHealth {
    /// Adds a newer report (or the part of one not stored yet) to this record.
    pub fn absorb(&mut self, newer: &EndpointHealth) {
        self.successes += newer.successes;
        self.failures += newer.failures;
        self.last_success = self.last_success.max(newer.last_success);
        if newer.last_failure >= self.last_failure && newer.last_failure.is_some() {
            self.last_failure = newer.last_failure;
            self.last_error.clone_from(&newer.last_error);
        }
        if newer.latency_us.is_some() {
            self.latency_us = newer.latency_us;
        }
        self.updated_at = self.updated_at.max(newer.updated_at);
    }
}

/// One event as read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the log; the event id.
    pub seq: i64,
    /// The message (outbound or inbound).
    pub message_id: MessageId,
    /// Owner; `None` for an MO to a number no tenant owns.
    pub tenant: Option<String>,
    /// A [`crate::domain::Status`] name, or `inbound`.
    pub status: String,
    /// When it happened.
    pub at: UnixMs,
    /// The history entry's detail (carrier for `sent`, reason for failures).
    pub detail: Option<String>,
    /// The carrier that took it (or received the MO).
    pub carrier: Option<String>,
    /// The carrier's error code, if any.
    pub error: Option<String>,
    /// Price estimated at acceptance.
    pub price: Option<String>,
    /// Its currency.
    pub currency: Option<String>,
    /// Destination.
    pub to: String,
    /// Sender.
    pub from: String,
    /// Text of an inbound message (outbound bodies are not repeated in events); a binary
    /// one's octets as hex.
    pub body: Option<String>,
    /// A binary inbound message's data_coding and user data header.
    pub binary: Option<super::BinaryCoding>,
    /// The channel an inbound message came on (`sms`, `rcs`, `whatsapp`, …); `None` for
    /// outbound messages.
    pub channel: Option<String>,
    /// The message's own webhook, if any.
    pub callback_url: Option<String>,
    /// Segments of an outbound message.
    pub segments: Option<u16>,
    /// When the message was accepted (or received).
    pub created_at: UnixMs,
    /// A voice call's outcome (JSON), once it ended.
    pub call: Option<String>,
    /// The SMPP bind the message came from, if it came over SMPP.
    pub smpp: Option<super::SmppOrigin>,
    /// The flow the message is a step of, if any.
    pub flow: Option<super::FlowLink>,
}

/// The event id shown to tenants for log position `seq`.
pub fn event_id(seq: i64) -> String {
    format!("evt_{seq:016x}")
}

/// Parses an event id (`evt_…`) back to its log position.
pub fn parse_event_id(s: &str) -> Option<i64> {
    let hex = s.trim().strip_prefix("evt_")?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok().filter(|n| *n >= 0)
}

/// RFC 3339 text of a unix-ms time.
pub fn rfc3339(ms: UnixMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The JSON an event is sent as (webhook body and SSE `data:`). Deterministic for a given
/// event, so a retry carries the same body.
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_at: String,
    tenant: &'a str,
    data: EventData<'a>,
}

#[derive(Debug, Serialize)]
struct EventData<'a> {
    message_id: String,
    status: &'a str,
    at: String,
    to: &'a str,
    from: &'a str,
    carrier: Option<&'a str>,
    error: Option<&'a str>,
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    /// `binary` for a binary inbound message (its body is hex); absent for text.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    /// A binary inbound message's data_coding.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_coding: Option<u8>,
    /// A binary inbound message's user data header (hex, UDHL included), when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    udh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyword: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowJson>,
    accepted_at: String,
}

/// Which flow and step a delivery is.
#[derive(Debug, Serialize)]
struct FlowJson {
    id: String,
    step: u8,
}

impl Event {
    /// The event of a flow's end (`flow_succeeded`, `flow_failed`) at log position `seq`: the
    /// flow is no message row, so only its id, its tenant (the log's) and the step that
    /// succeeded (the log entry's detail) are known.
    pub(crate) fn flow_end(
        seq: i64,
        flow: MessageId,
        tenant: Option<String>,
        status: String,
        at: UnixMs,
        detail: Option<String>,
    ) -> Event {
        Event {
            seq,
            message_id: flow,
            tenant,
            status,
            at,
            detail: None,
            carrier: None,
            error: None,
            price: None,
            currency: None,
            to: String::new(),
            from: String::new(),
            body: None,
            binary: None,
            channel: None,
            callback_url: None,
            segments: None,
            created_at: at,
            call: None,
            smpp: None,
            flow: detail
                .and_then(|d| d.parse().ok())
                .map(|step| super::FlowLink { flow, step }),
        }
    }

    /// `message.<status>` or `message.inbound`.
    pub fn kind(&self) -> String {
        format!("message.{}", self.status)
    }

    /// True for an MO message.
    pub fn is_inbound(&self) -> bool {
        self.status == "inbound"
    }

    /// The JSON body (webhook) / data (SSE) of the event.
    pub fn to_json(&self) -> String {
        let keyword = if self.is_inbound() && self.binary.is_none() {
            self.body
                .as_deref()
                .and_then(Keyword::parse)
                .map(Keyword::as_str)
        } else {
            None
        };
        // A voice call's outcome (stored by the gateway, so it parses); its error code is
        // the event's error.
        let call: Option<serde_json::Value> = self
            .call
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok());
        let call_error = call
            .as_ref()
            .and_then(|c| c.get("error"))
            .and_then(serde_json::Value::as_str);
        let j = EventJson {
            id: event_id(self.seq),
            kind: self.kind(),
            created_at: rfc3339(self.at),
            tenant: self.tenant.as_deref().unwrap_or(""),
            data: EventData {
                message_id: self.message_id.to_string(),
                status: &self.status,
                at: rfc3339(self.at),
                to: &self.to,
                from: &self.from,
                carrier: self.carrier.as_deref(),
                error: self.error.as_deref().or(call_error),
                detail: self.detail.as_deref(),
                price: self.price.as_deref(),
                currency: self.currency.as_deref(),
                segments: self.segments,
                body: self.body.as_deref(),
                channel: self.channel.as_deref(),
                encoding: self.binary.as_ref().map(|_| "binary"),
                data_coding: self.binary.as_ref().map(|b| b.data_coding),
                udh: self
                    .binary
                    .as_ref()
                    .and_then(|b| b.udh.as_deref())
                    .map(switchyard_protocols::text::binary::encode),
                keyword,
                call: call.clone(),
                flow: self.flow.map(|f| FlowJson {
                    id: f.flow.to_string(),
                    step: f.step,
                }),
                accepted_at: rfc3339(self.created_at),
            },
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(&j).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_delivery_says_which_flow_and_step_it_is() {
        let mut e = Event {
            seq: 1,
            message_id: MessageId(2),
            tenant: Some("acme".into()),
            status: "delivered".into(),
            at: 1_743_505_260_000,
            detail: None,
            carrier: Some("alpha".into()),
            error: None,
            price: None,
            currency: None,
            to: "+447911123456".into(),
            from: "Acme".into(),
            body: None,
            binary: None,
            channel: None,
            callback_url: None,
            segments: Some(1),
            created_at: 1_743_505_200_000,
            call: None,
            smpp: None,
            flow: None,
        };
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert!(json["data"].get("flow").is_none(), "{json}");
        e.flow = Some(super::super::FlowLink {
            flow: MessageId(9),
            step: 1,
        });
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["data"]["flow"]["id"], MessageId(9).to_string());
        assert_eq!(json["data"]["flow"]["step"], 1);
    }
}
