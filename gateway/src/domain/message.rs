//! Messages: what an entry point hands the store, what the store gives back.

use serde::{Deserialize, Serialize};

use super::Status;
/// An SMS text encoding (the protocols crate's).
pub use switchyard_protocols::text::Encoding;
/// Message priority (the routing crate's, re-exported for the API).
pub use switchyard_routing::Priority;
use switchyard_routing::{Currency, Price};

use super::{MessageId, UnixMs, VoiceSpec};

/// A price with its currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    /// The amount.
    pub amount: Price,
    /// Its currency.
    pub currency: Currency,
}

/// A message an entry point accepted, as the store keeps it. Everything here is already
/// validated; it is built by [`crate::submit`] only.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// Its id.
    pub id: MessageId,
    /// The tenant that sent it.
    pub tenant: String,
    /// Destination, E.164 with '+'.
    pub to: String,
    /// ISO 3166 country of the destination, when known.
    pub country: Option<String>,
    /// Sender: E.164 with '+', a short code, or an alphanumeric id.
    pub from: String,
    /// The text (spoken by text-to-speech for a call). For a binary SMS ([`Encoding::Binary`]),
    /// its octets as two hex digits each.
    pub body: String,
    /// The SMS encoding; `None` for a call.
    pub encoding: Option<Encoding>,
    /// Number of SMS segments (1 for a call).
    pub segments: u16,
    /// Queue lane and routing weights.
    pub priority: Priority,
    /// Send no earlier than this.
    pub scheduled_at: Option<UnixMs>,
    /// Give up (status expired) if not sent by then.
    pub expires_at: Option<UnixMs>,
    /// Per-message status webhook.
    pub callback_url: Option<String>,
    /// Tenant's labels.
    pub tags: Vec<String>,
    /// Tenant's free-form data, as JSON text.
    pub metadata: Option<String>,
    /// The carrier the router chose at acceptance (the dispatcher may fail over).
    pub carrier: Option<String>,
    /// Estimated price for the tenant (a call's: replaced by its cost once it ended).
    pub price: Option<Money>,
    /// When it was accepted.
    pub created_at: UnixMs,
    /// The batch it was sent in (`POST /v1/messages/batch`), if any.
    pub batch_id: Option<String>,
    /// For a voice notification call: what to play and capture; `None` for SMS. The channel
    /// is "voice" exactly when set.
    pub voice: Option<VoiceSpec>,
    /// For an email: its subject, HTML part and reply-to; `None` otherwise. The channel is
    /// "email" exactly when set (`to` and `from` are then email addresses).
    pub email: Option<super::EmailSpec>,
    /// For a chat message (RCS, WhatsApp): its channel and template; `None` otherwise. The
    /// channel is the spec's exactly when set.
    pub chat: Option<super::ChatSpec>,
    /// The flow this message is a step of, if any.
    pub flow: Option<super::FlowLink>,
    /// Records of the request that accepted it (idempotency key, batch), written in the same
    /// transaction as the message. Only the first message of a request carries them; never
    /// read back here.
    pub request: Option<std::sync::Arc<crate::domain::RequestRecord>>,
    /// The tenant's SMPP bind it came from, when it came over SMPP: where its receipt goes.
    pub smpp: Option<SmppOrigin>,
    /// The SMS's user data header (UDHL included). With a concatenation IE: one part of a
    /// longer message as the tenant cut it, sent with `body` as exactly one segment. Without:
    /// IEs (application ports…) every segment carries, after the concatenation IE of a
    /// message that needs several. `None` for most messages.
    pub udh: Option<Vec<u8>>,
    /// The tenant's SMPP data_coding when it says more than the alphabet (a message class such
    /// as flash, a message-waiting group, automatic deletion) or is a binary one other than 4
    /// (2, "octet unspecified"): sent to the carrier as is.
    pub data_coding: Option<u8>,
}

impl NewMessage {
    /// The channel it goes over: voice, email or a chat channel when their spec is set, else
    /// SMS.
    pub fn channel(&self) -> switchyard_routing::Channel {
        use switchyard_routing::Channel;
        match (&self.voice, &self.email, &self.chat) {
            (Some(_), _, _) => Channel::Voice,
            (None, Some(_), _) => Channel::Email,
            (None, None, Some(chat)) => chat.channel.channel(),
            (None, None, None) => Channel::Sms,
        }
    }
}

/// The SMS one batch request accepted, as the store takes them: what every message shares
/// once ([`NewBatch::common`]), and per message only what differs ([`BatchRow`]). About 100
/// bytes a message plus its body, where a [`NewMessage`] each would be about a kilobyte; the
/// store binds the shared columns once for all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct NewBatch {
    /// The fields every message shares (tenant, sender, priority, times, callback, tags,
    /// metadata, batch id, request records, user data header). Its `id`, `to`, `country`,
    /// `encoding`, `segments`, `carrier` and `price` are the rows'; its `body` is the body of
    /// every row that has none of its own.
    pub common: NewMessage,
    /// The carriers the rows name, each once.
    pub carriers: Vec<String>,
    /// One per message, in recipient order.
    pub rows: Vec<BatchRow>,
}

/// One message of a [`NewBatch`]: what is its own.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRow {
    /// Its id.
    pub id: MessageId,
    /// Destination.
    pub to: switchyard_routing::E164,
    /// ISO 3166 country of the destination, when known.
    pub country: Option<Box<str>>,
    /// Its own text; `None`: the batch's ([`NewBatch::common`]).
    pub body: Option<Box<str>>,
    /// The SMS encoding.
    pub encoding: Encoding,
    /// Number of SMS segments.
    pub segments: u16,
    /// The carrier chosen at acceptance: an index into [`NewBatch::carriers`].
    pub carrier: u16,
    /// Estimated price for the tenant.
    pub price: Option<Money>,
}

impl NewBatch {
    /// The text of `row`.
    pub fn body<'a>(&'a self, row: &'a BatchRow) -> &'a str {
        row.body.as_deref().unwrap_or(&self.common.body)
    }

    /// The carrier of `row`.
    pub fn carrier(&self, row: &BatchRow) -> Option<&str> {
        self.carriers
            .get(usize::from(row.carrier))
            .map(String::as_str)
    }

    /// The message `row` stands for, whole; the first one carries the request's records.
    pub fn message(&self, index: usize, row: &BatchRow) -> NewMessage {
        NewMessage {
            id: row.id,
            to: format!("+{}", row.to.as_str()),
            country: row.country.as_deref().map(str::to_owned),
            body: self.body(row).to_owned(),
            encoding: Some(row.encoding),
            segments: row.segments,
            carrier: self.carrier(row).map(str::to_owned),
            price: row.price,
            request: if index == 0 {
                self.common.request.clone()
            } else {
                None
            },
            ..self.common.clone()
        }
    }

    /// Every message, whole (for a store without a batch form of its own).
    pub fn messages(&self) -> Vec<NewMessage> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| self.message(i, row))
            .collect()
    }
}

/// A message submitted over one of the tenant's SMPP binds: which system_id, and the
/// receipt it asked for (registered_delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppOrigin {
    /// The tenant's SMPP user that submitted it.
    pub system_id: String,
    /// registered_delivery bits 0–1: 0 no receipt, 1 a final receipt, 2 a receipt on failure
    /// only, 3 a receipt on success only (SMPP 5.0).
    pub receipt: u8,
    /// The id its receipt reports, when not its own: the destinations of one submit_multi
    /// share the id the ESME was given (the first destination's).
    pub reported_id: Option<super::MessageId>,
    /// The submit's service_type, when it gave one (printable, no tab): what a cancel_sm by
    /// addresses may name besides them.
    pub service_type: Option<String>,
}

impl SmppOrigin {
    /// Whether a message that ended in `status` gets a receipt (a read, which only chat
    /// channels report, gets none: the receipt went with `delivered`).
    pub fn wants_receipt(&self, status: Status) -> bool {
        if status == Status::Read {
            return false;
        }
        match self.receipt & 0x03 {
            1 => status.is_final(),
            2 => status.is_final() && status != Status::Delivered,
            3 => status == Status::Delivered,
            _ => false,
        }
    }

    /// The stored form: `system_id` and the receipt bits, e.g. `acme01 1`; then a tab and the
    /// reported id (empty when there is none), when there is one or a service_type; then a
    /// tab and the service_type, when there is one (a system_id and a service_type are
    /// printable: they hold no tab).
    pub fn to_stored(&self) -> String {
        let head = format!("{} {}", self.system_id, self.receipt & 0x03);
        let reported = self.reported_id.map(|id| id.to_string());
        match (reported, &self.service_type) {
            (None, None) => head,
            (Some(id), None) => format!("{head}\t{id}"),
            (id, Some(st)) => format!("{head}\t{}\t{st}", id.unwrap_or_default()),
        }
    }

    /// Reads [`SmppOrigin::to_stored`]'s form.
    pub fn from_stored(s: &str) -> Option<Self> {
        let mut fields = s.splitn(3, '\t');
        let head = fields.next()?;
        let reported = match fields.next() {
            None | Some("") => None,
            Some(id) => Some(id.parse().ok()?),
        };
        let service_type = fields.next().map(str::to_owned);
        let (system_id, receipt) = head.rsplit_once(' ')?;
        Some(SmppOrigin {
            system_id: system_id.to_owned(),
            receipt: receipt.parse().ok()?,
            reported_id: reported,
            service_type,
        })
    }
}

/// How an encoding is named in the store and the API; `voice` for a call.
pub fn encoding_name(e: Option<Encoding>) -> &'static str {
    e.map_or("voice", Encoding::name)
}

/// How a message's encoding is named in the store: its SMS encoding, `voice` for a call,
/// `email` for an email.
pub fn stored_encoding_name(m: &NewMessage) -> &'static str {
    if m.email.is_some() {
        "email"
    } else if let Some(chat) = &m.chat {
        chat.channel.channel().as_str()
    } else {
        encoding_name(m.encoding)
    }
}

/// The encoding named `name` ([`encoding_name`]); `None` for `voice`, `email` and the chat
/// channels (and for a name this version does not know, which only an edited database holds:
/// read as GSM-7).
pub fn encoding_from_name(name: &str) -> Option<Encoding> {
    match name {
        "voice" | "email" | "rcs" | "whatsapp" | "telegram" | "messenger" | "webhook" => None,
        "ucs2" => Some(Encoding::Ucs2),
        "latin1" => Some(Encoding::Latin1),
        "binary" => Some(Encoding::Binary),
        _ => Some(Encoding::Gsm7),
    }
}

/// How a priority is named in the store and the API.
pub fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Critical => "critical",
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Low => "low",
    }
}

/// The priority named `name`, if it is one.
pub fn priority_from_name(name: &str) -> Option<Priority> {
    Some(match name {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        "normal" => Priority::Normal,
        "low" => Priority::Low,
        _ => return None,
    })
}

/// One segment's state, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// 0-based segment index.
    pub index: u16,
    /// The carrier it went to.
    pub carrier: Option<String>,
    /// The carrier's message id from submit_sm_resp.
    pub carrier_message_id: Option<String>,
    /// Its status (sent, delivered, undeliverable, …).
    pub status: Status,
    /// The carrier's error, if any (SMPP status name or receipt err code).
    pub error: Option<String>,
    /// Last change.
    pub updated_at: UnixMs,
}

/// One entry of a message's status history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The new status.
    pub status: Status,
    /// When.
    pub at: UnixMs,
    /// Why, when there is something to say (carrier, error).
    pub detail: Option<String>,
}

/// A stored message with its current state.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    /// What was accepted.
    pub message: NewMessage,
    /// Current status.
    pub status: Status,
    /// Last status change.
    pub updated_at: UnixMs,
    /// Per-segment state (empty until submitted).
    pub segment_states: Vec<SegmentRecord>,
    /// Every status change, oldest first (filled by `get`, empty in lists).
    pub history: Vec<StatusChange>,
    /// A voice call's outcome once it ended (JSON of [`crate::voice::CallOutcome`]).
    pub call: Option<String>,
}

/// Filters for listing messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only messages to this number.
    pub to: Option<String>,
    /// Accepted at or after.
    pub since: Option<UnixMs>,
    /// Accepted before.
    pub until: Option<UnixMs>,
    /// Only messages with this tag.
    pub tag: Option<String>,
    /// Cursor: messages with ids below this (newest first).
    pub before: Option<MessageId>,
    /// Page size (1..=1000).
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(Status::Accepted.can_become(Status::Queued));
        assert!(Status::Sent.can_become(Status::Delivered));
        assert!(!Status::Delivered.can_become(Status::Sent));
        assert!(!Status::Delivered.can_become(Status::Undeliverable));
        assert!(Status::Delivered.can_become(Status::Read));
        assert!(Status::Sent.can_become(Status::Read));
        assert!(!Status::Read.can_become(Status::Delivered));
        assert!(!Status::Undeliverable.can_become(Status::Read));
        assert!(!Status::Sent.can_become(Status::Submitting));
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
    }
}

#[cfg(test)]
mod smpp_origin_tests {
    use super::SmppOrigin;
    use crate::domain::MessageId;

    #[test]
    fn the_stored_form_reads_back() {
        for origin in [
            SmppOrigin {
                system_id: "acme01".into(),
                receipt: 1,
                reported_id: None,
                service_type: None,
            },
            SmppOrigin {
                system_id: "with space".into(),
                receipt: 3,
                reported_id: Some(MessageId(42)),
                service_type: None,
            },
            SmppOrigin {
                system_id: "acme01".into(),
                receipt: 1,
                reported_id: None,
                service_type: Some("WAP".into()),
            },
            SmppOrigin {
                system_id: "acme01".into(),
                receipt: 0,
                reported_id: Some(MessageId(7)),
                service_type: Some("CMT".into()),
            },
        ] {
            assert_eq!(SmppOrigin::from_stored(&origin.to_stored()), Some(origin));
        }
        assert_eq!(SmppOrigin::from_stored("nobits"), None);
    }
}
