//! State changes reported by the dispatcher, the binds and the calls, and what applying them did.

use super::{CallRecord, EventWrite, InboundMessage, MessageId, Status, UnixMs};

/// How a carrier writes message ids (the protocols crate's).
pub use switchyard_protocols::dlr::IdFormat;

/// How a carrier writes message ids in submit_sm_resp and in receipts, as configured (`None`:
/// learned from the ids themselves; see [`switchyard_protocols::dlr::FormatLearner`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdFormats {
    /// In submit_sm_resp.
    pub response: Option<IdFormat>,
    /// In receipts.
    pub receipt: Option<IdFormat>,
}

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
    /// Opt-out list and webhook outbox changes (see [`crate::domain::EventWrite`]).
    Events(EventWrite),
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
    /// A scheduled message gets new content before it is due.
    Replace(Box<Replacement>),
    /// A flow skipped a step or ended.
    Flow(super::FlowWrite),
    /// A contact is created, changed or deleted ([`Applied::Contact`] says how it went).
    Contact(super::ContactWrite),
    /// A dashboard session is opened, seen or closed ([`Applied::Rows`]).
    Session(super::SessionWrite),
    /// A later step of the message's flow started (an RCS step whose time limit passed
    /// unmet), on whichever node follows the flow: the message is withdrawn. Judged in the
    /// store, so it holds across nodes: while no attempt has started (`accepted`, `queued`) it
    /// becomes `cancelled` with `detail` ([`Applied::Moved`]); while it is `submitting` the
    /// withdrawal is noted for the node that owns it ([`Applied::Withdrawing`]: its next
    /// [`Update::Attempt`] cancels it, and its [`Update::Taken`] says to recall what an attempt
    /// in flight handed over); once it is `sent` or has ended nothing changes
    /// ([`Applied::NoChange`]).
    Withdraw {
        /// Which message.
        id: MessageId,
        /// When.
        at: UnixMs,
        /// Why: the detail of its `cancelled`.
        detail: String,
    },
    /// An attempt on a message that can be withdrawn from another node ([`Update::Withdraw`])
    /// is about to start: it moves to `submitting` ([`Applied::Moved`]) or stays there
    /// ([`Applied::NoChange`]), and the attempt may start. When it was withdrawn meanwhile it
    /// becomes `cancelled` with the withdrawal's detail instead ([`Applied::Moved`] to
    /// `cancelled`), and when it has ended otherwise nothing changes ([`Applied::Ended`]): in
    /// both cases no attempt starts.
    Attempt {
        /// Which message.
        id: MessageId,
        /// When.
        at: UnixMs,
    },
    /// The carrier took a message that can be withdrawn from another node: was it withdrawn
    /// while the attempt was in flight? [`Applied::Withdrawing`] if so (the owner recalls it
    /// where the channel can), else [`Applied::NoChange`]. Changes nothing.
    Taken {
        /// Which message.
        id: MessageId,
    },
    /// Changes nothing. Updates are applied in the order they were queued, so once a barrier
    /// is committed every update queued before it on the same sink is too: a reader that
    /// waits for one sees them.
    Barrier,
}

/// New content for a scheduled message that is not due yet (SMPP replace_sm). Applied only
/// while the message is still `accepted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// Which message.
    pub id: MessageId,
    /// The new text.
    pub body: String,
    /// Segments it needs.
    pub segments: u16,
    /// When to send it.
    pub scheduled_at: Option<UnixMs>,
    /// When to give up.
    pub expires_at: Option<UnixMs>,
    /// The SMPP user and receipt request.
    pub smpp: Option<super::SmppOrigin>,
    /// When it was replaced.
    pub at: UnixMs,
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
    /// Its user data header's IEs other than concatenation (UDHL included), if any.
    pub udh: Option<bytes::Bytes>,
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
            | Update::Call { id, .. }
            | Update::Withdraw { id, .. }
            | Update::Attempt { id, .. }
            | Update::Taken { id } => Some(*id),
            Update::Replace(r) => Some(r.id),
            Update::Flow(_) | Update::Contact(_) | Update::Session(_) | Update::Barrier => None,
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
        /// The flow the message is a step of, if any.
        flow: Option<MessageId>,
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
    /// What an [`Update::Contact`] did.
    Contact(super::ContactApplied),
    /// An [`Update::Withdraw`] found the message `submitting`: the withdrawal is noted for its
    /// owner. An [`Update::Taken`] found such a withdrawal: what the carrier took is recalled.
    Withdrawing(MessageId),
    /// An [`Update::Attempt`] found the message ended: no attempt starts.
    Ended(MessageId),
}
