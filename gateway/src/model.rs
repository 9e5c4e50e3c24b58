//! The gateway's domain model: message ids, statuses and their order, what the API hands the
//! store, what the dispatcher and the binds report back.
//!
//! Times are unix milliseconds (`i64`) everywhere a value is stored or serialised; monotonic
//! `Instant`s stay inside the tasks that measure with them.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds.
pub type UnixMs = i64;

/// The current unix time in milliseconds.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A message id: time-ordered, so ids sort by acceptance time and make natural cursors.
/// 44 bits of unix milliseconds, 20 bits of a per-process sequence. Shown as `msg_` and 16 hex
/// digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub i64);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl MessageId {
    /// A fresh id for a message accepted at `now`. Unique within a process as long as fewer
    /// than 2^20 ids are made per millisecond; [`MessageId::generate_after`] keeps ids unique
    /// across restarts by starting above the highest stored id.
    pub fn generate(now: UnixMs) -> Self {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF;
        MessageId(((now & 0xFFF_FFFF_FFFF) << 20) | seq as i64)
    }

    /// Makes sure later ids sort after `highest` (called at start with the store's maximum).
    pub fn generate_after(highest: MessageId) {
        let seq = (highest.0 & 0xF_FFFF) as u64 + 1;
        SEQUENCE.fetch_max(seq, Ordering::Relaxed);
    }

    /// The acceptance time encoded in the id.
    pub fn timestamp_ms(self) -> UnixMs {
        self.0 >> 20
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{:016x}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("msg_")
            .ok_or_else(|| format!("{s:?} is not a message id (msg_…)"))?;
        if hex.len() != 16 {
            return Err(format!(
                "{s:?} is not a message id (msg_ and 16 hex digits)"
            ));
        }
        u64::from_str_radix(hex, 16)
            .map(|v| MessageId(v as i64))
            .map_err(|_| format!("{s:?} is not a message id"))
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for MessageId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Where a message is in its life (DESIGN.md, "Message states").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored; the 202 went out.
    Accepted,
    /// Waiting in a carrier queue (or for its scheduled time).
    Queued,
    /// Handed to a bind; submit_sm in flight or being retried.
    Submitting,
    /// Every segment got ESME_ROK from the carrier.
    Sent,
    /// Every segment was delivered to the handset.
    Delivered,
    /// The carrier reported that it could not deliver.
    Undeliverable,
    /// The validity period ran out (at the carrier or before we could send it).
    Expired,
    /// The carrier refused it permanently (submit_sm error or REJECTD receipt).
    Rejected,
    /// No carrier could take it.
    Failed,
    /// Cancelled by the tenant before it was sent.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 10] = [
        Status::Accepted,
        Status::Queued,
        Status::Submitting,
        Status::Sent,
        Status::Delivered,
        Status::Undeliverable,
        Status::Expired,
        Status::Rejected,
        Status::Failed,
        Status::Cancelled,
    ];

    /// Position in the lifecycle; final states share the highest rank.
    pub fn rank(self) -> u8 {
        match self {
            Status::Accepted => 0,
            Status::Queued => 1,
            Status::Submitting => 2,
            Status::Sent => 3,
            _ => 4,
        }
    }

    /// True for states nothing can leave.
    pub fn is_final(self) -> bool {
        self.rank() == 4
    }

    /// True when a message in `self` may move to `next`: only forwards, never out of a final
    /// state, so a late or duplicate receipt never moves a message backwards.
    pub fn can_become(self, next: Status) -> bool {
        !self.is_final() && next.rank() > self.rank()
    }

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Queued => "queued",
            Status::Submitting => "submitting",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Undeliverable => "undeliverable",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// Message priority (the routing crate's, re-exported for the API).
pub use switchyard_routing::Priority;

/// A message the API accepted, as the store keeps it. Everything here is already validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The text.
    pub body: String,
    /// "gsm7", "ucs2" or "latin1".
    pub encoding: String,
    /// Number of SMS segments.
    pub segments: u16,
    /// "critical", "high", "normal" or "low".
    pub priority: String,
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
    /// Estimated price for the tenant, decimal text, and its currency.
    pub price: Option<String>,
    /// Currency of `price`.
    pub currency: Option<String>,
    /// When it was accepted.
    pub created_at: UnixMs,
    /// The batch it was sent in (`POST /v1/messages/batch`), if any.
    pub batch_id: Option<String>,
    /// For a voice notification call: what to play and capture, as the JSON of
    /// [`crate::voice::VoiceSpec`]; `None` for SMS. The channel is "voice" exactly when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Records of the request that accepted it (idempotency key, batch), written in the same
    /// transaction as the message. Only the first message of a request carries them; never
    /// read back here.
    #[serde(skip)]
    pub request: Option<std::sync::Arc<crate::tenancy::RequestRecord>>,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// What was accepted.
    #[serde(flatten)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// How a carrier writes message ids in submit_sm_resp and in receipts, as configured (`None`:
/// learned from the ids themselves; see [`switchyard_protocols::dlr::FormatLearner`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdFormats {
    /// In submit_sm_resp.
    pub response: Option<IdFormat>,
    /// In receipts.
    pub receipt: Option<IdFormat>,
}

pub use switchyard_protocols::dlr::IdFormat;

/// A delivery receipt as the bind saw it, for the store to match and apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptUpdate {
    /// The carrier whose bind received it.
    pub carrier: String,
    /// The id as received (matched after normalisation: hex/decimal/case/leading zeros).
    pub carrier_message_id: String,
    /// How the carrier writes ids, as configured.
    pub id_formats: IdFormats,
    /// The state it reports, mapped to ours: delivered, undeliverable, expired, rejected; or
    /// `None` for intermediate states (enroute, accepted) that change nothing.
    pub status: Option<Status>,
    /// The carrier's error code, if any.
    pub error: Option<String>,
    /// When it arrived.
    pub at: UnixMs,
}

/// A state change reported by the dispatcher, a bind or a receipt. Applied by the store in
/// order, in batches (group commit), never moving a message or segment backwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// The message moved to `status` (queued, submitting, failed, expired, cancelled, …).
    Status {
        /// Which message.
        id: MessageId,
        /// The new status.
        status: Status,
        /// When.
        at: UnixMs,
        /// Why.
        detail: Option<String>,
    },
    /// The carrier accepted one segment (submit_sm_resp ESME_ROK). When every segment is
    /// sent, the message becomes `sent`.
    SegmentSent {
        /// Which message.
        id: MessageId,
        /// 0-based segment.
        index: u16,
        /// The carrier that took it.
        carrier: String,
        /// Its id for the segment.
        carrier_message_id: String,
        /// How the carrier writes ids, as configured.
        id_formats: IdFormats,
        /// When.
        at: UnixMs,
    },
    /// The carrier refused one segment permanently; the message becomes `rejected`.
    SegmentRejected {
        /// Which message.
        id: MessageId,
        /// 0-based segment.
        index: u16,
        /// The carrier that refused it.
        carrier: String,
        /// The SMPP status, e.g. "ESME_RINVDSTADR(0x0000000B)".
        error: String,
        /// When.
        at: UnixMs,
    },
    /// A delivery receipt: matched by carrier id to a segment; the message is delivered when
    /// every segment is, and takes the first failure otherwise. Unmatched receipts are kept.
    Receipt(ReceiptUpdate),
    /// A mobile-originated message arrived.
    Inbound(InboundMessage),
    /// Parts of multipart MO messages: one held until its message completes, messages made
    /// from held parts (complete, or given up) stored as inbound with their parts released.
    Mo(Box<MoWrite>),
    /// Opt-out list and webhook outbox changes (see [`crate::events::EventWrite`]).
    Events(crate::events::EventWrite),
    /// A SIP proxy call ended: its detail record.
    Cdr(Box<CallRecord>),
    /// A voice notification call ended: its outcome is stored with the message, which moves
    /// to `status` (delivered or failed) with `error` as the history detail.
    Call {
        /// Which message.
        id: MessageId,
        /// Delivered (answered) or failed.
        status: Status,
        /// When the call ended.
        at: UnixMs,
        /// The trunk (carrier) that answered or gave the last answer.
        carrier: Option<String>,
        /// The error code for a failed call (`busy`, `no_answer`, `carrier_error`, …).
        error: Option<String>,
        /// The cost of an answered call (decimal text), replacing the estimate.
        price: Option<String>,
        /// The currency of `price`.
        currency: Option<String>,
        /// The outcome as JSON ([`crate::voice::CallOutcome`]).
        call: String,
    },
}

/// One call's detail record (CDR), written once when the call ends: its setup failed, it was
/// cancelled, or the answered call was hung up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Store-assigned, increasing (`call_<16 hex>` outside); 0 before it is stored.
    pub id: i64,
    /// Whose call.
    pub tenant: String,
    /// The caller's SIP Call-ID (to find the call in a PBX's or SIPp's logs).
    pub sip_call_id: String,
    /// The caller (From URI's user part, or the whole URI).
    pub caller: String,
    /// The callee, E.164 with `+`.
    pub callee: String,
    /// Every trunk tried, in order, with the code it gave (408 for no answer in time, 503
    /// for a transport error).
    pub attempts: Vec<(String, u16)>,
    /// The carrier that answered.
    pub carrier: Option<String>,
    /// `answered`, `busy`, `no_answer`, `cancelled`, `rejected` or `failed`.
    pub disposition: &'static str,
    /// The final SIP code the caller got.
    pub code: u16,
    /// Who ended an answered call: `caller`, `callee` or `timeout` (max_call_duration).
    pub hangup: Option<&'static str>,
    /// When the INVITE arrived.
    pub setup_at: UnixMs,
    /// When the 2xx arrived.
    pub answer_at: Option<UnixMs>,
    /// When the call ended.
    pub end_at: UnixMs,
    /// Answer to hang-up, milliseconds (0 when not answered).
    pub duration_ms: u64,
    /// Seconds billed by the deck's increments.
    pub billed_secs: u64,
    /// What the carrier charges us, decimal text in the base currency.
    pub cost: Option<String>,
    /// What the tenant pays, decimal text in the base currency.
    pub price: Option<String>,
    /// The base currency of `cost` and `price`.
    pub currency: Option<String>,
}

/// Which CDRs a listing wants, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only ids below this (the cursor).
    pub before: Option<i64>,
    /// Only calls set up at or after this.
    pub since: Option<UnixMs>,
    /// Only calls set up before this.
    pub until: Option<UnixMs>,
    /// Only this disposition.
    pub disposition: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// A mobile-originated (inbound) message, reassembled if it came in parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Its id (same id space as outbound messages).
    pub id: MessageId,
    /// The carrier whose bind received it.
    pub carrier: String,
    /// The tenant owning the destination number, when known.
    pub tenant: Option<String>,
    /// The mobile's number.
    pub from: String,
    /// The number it was sent to (a tenant's long number or short code).
    pub to: String,
    /// The text (decoded), or hex for binary payloads.
    pub body: String,
    /// When it arrived.
    pub received_at: UnixMs,
    /// Set when only some parts of a multipart message arrived before it was given up (its
    /// reassembly timed out, or it was evicted to keep memory bounded): `body` is what those
    /// parts say, joined in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialParts>,
}

/// Which parts of a multipart inbound message arrived, when not all did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialParts {
    /// The part numbers received (1-based, ascending).
    pub received: Vec<u8>,
    /// How many parts the message had.
    pub total: u8,
}

/// One part of a multipart MO message, held (in memory and in the store) until the rest of
/// its message arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldPart {
    /// Which message it belongs to (addresses as received, reference, part count).
    pub key: switchyard_protocols::text::ReassemblyKey,
    /// Its 1-based number.
    pub seq: u8,
    /// Its data_coding.
    pub data_coding: u8,
    /// Its user data after the UDH.
    pub payload: bytes::Bytes,
    /// source_addr_ton of its deliver_sm (how the sender is written).
    pub source_ton: u8,
    /// When it arrived.
    pub received_at: UnixMs,
}

/// What one step of a carrier's MO reassembler changes, written in one commit. Steps are
/// queued in the order they happened, so a part held and the message that completes it are
/// stored in that order whatever bind each arrived on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoWrite {
    /// The carrier whose binds received the parts.
    pub carrier: String,
    /// A part to hold until its message completes.
    pub hold: Option<HeldPart>,
    /// Messages finished with: each is stored as inbound and the held parts of its key are
    /// released.
    pub finished: Vec<(switchyard_protocols::text::ReassemblyKey, InboundMessage)>,
}

impl Update {
    /// The message this update is about, when it names one.
    pub fn message_id(&self) -> Option<MessageId> {
        match self {
            Update::Status { id, .. }
            | Update::SegmentSent { id, .. }
            | Update::SegmentRejected { id, .. }
            | Update::Call { id, .. } => Some(*id),
            Update::Receipt(_)
            | Update::Inbound(_)
            | Update::Mo(_)
            | Update::Events(_)
            | Update::Cdr(_) => None,
        }
    }
}

/// What applying one update did (for events, metrics and webhooks later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The message moved to this status.
    Moved {
        /// Which message.
        id: MessageId,
        /// Its tenant.
        tenant: String,
        /// The new status.
        status: Status,
    },
    /// The update was valid but changed no message status (a segment of several, a late or
    /// duplicate receipt, an intermediate state).
    NoChange,
    /// A receipt matched no submitted segment; it is kept in the unmatched receipts table.
    UnmatchedReceipt,
    /// The message does not exist.
    UnknownMessage(MessageId),
    /// An inbound message was stored.
    Inbound(MessageId),
    /// An [`Update::Events`] write changed this many rows.
    Rows(u64),
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
    fn ids_round_trip_and_sort_by_time() {
        let a = MessageId::generate(1_700_000_000_000);
        let b = MessageId::generate(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
        assert_eq!(a.timestamp_ms(), 1_700_000_000_000);
        assert!("msg_zz".parse::<MessageId>().is_err());
        assert!("abc".parse::<MessageId>().is_err());
    }

    #[test]
    fn statuses_only_move_forward() {
        assert!(Status::Accepted.can_become(Status::Queued));
        assert!(Status::Sent.can_become(Status::Delivered));
        assert!(!Status::Delivered.can_become(Status::Sent));
        assert!(!Status::Delivered.can_become(Status::Undeliverable));
        assert!(!Status::Sent.can_become(Status::Submitting));
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
    }
}
