//! The SMPP data model: one [`Pdu`] is a header (status, sequence number) and a [`Body`], one
//! variant per operation of SMPP 3.4 §4.
//!
//! Payloads (short_message, TLV values) are [`Bytes`] slices of the received frame, so decoding
//! copies no payload. C-octet strings ([`COctet`]) up to 23 octets are copied inline, which is
//! cheaper than a slice's reference count; longer ones are slices too.
//! Encoding and decoding live in [`super::codec`].

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use super::status::CommandStatus;
use super::tlv::Tlvs;

/// One SMPP PDU. command_length is not stored: it is a property of the encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    /// command_status: zero in requests, the outcome in responses.
    pub command_status: CommandStatus,
    /// sequence_number: pairs a response with its request. 1..=0x7FFF_FFFF.
    pub sequence_number: u32,
    /// The operation and its fields.
    pub body: Body,
}

impl Pdu {
    /// A request (command_status 0).
    pub fn request(sequence_number: u32, body: Body) -> Self {
        Pdu {
            command_status: CommandStatus::ESME_ROK,
            sequence_number,
            body,
        }
    }

    /// A response with the given status.
    pub fn response(sequence_number: u32, command_status: CommandStatus, body: Body) -> Self {
        Pdu {
            command_status,
            sequence_number,
            body,
        }
    }

    /// The command_id of the body.
    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }
}

/// An SMPP command_id. A newtype so unknown ids can be reported as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u32);

macro_rules! command_ids {
    ($($name:ident = $value:expr;)*) => {
        #[allow(missing_docs)]
        impl CommandId {
            $(pub const $name: CommandId = CommandId($value);)*

            /// The operation's name (`submit_sm`), if the id is known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(command_ids!(@lower $name)),)*
                    _ => None,
                }
            }
        }
    };
    (@lower $name:ident) => { stringify!($name) };
}

command_ids! {
    GENERIC_NACK = 0x8000_0000;
    BIND_RECEIVER = 0x0000_0001;
    BIND_RECEIVER_RESP = 0x8000_0001;
    BIND_TRANSMITTER = 0x0000_0002;
    BIND_TRANSMITTER_RESP = 0x8000_0002;
    QUERY_SM = 0x0000_0003;
    QUERY_SM_RESP = 0x8000_0003;
    SUBMIT_SM = 0x0000_0004;
    SUBMIT_SM_RESP = 0x8000_0004;
    DELIVER_SM = 0x0000_0005;
    DELIVER_SM_RESP = 0x8000_0005;
    UNBIND = 0x0000_0006;
    UNBIND_RESP = 0x8000_0006;
    REPLACE_SM = 0x0000_0007;
    REPLACE_SM_RESP = 0x8000_0007;
    CANCEL_SM = 0x0000_0008;
    CANCEL_SM_RESP = 0x8000_0008;
    BIND_TRANSCEIVER = 0x0000_0009;
    BIND_TRANSCEIVER_RESP = 0x8000_0009;
    OUTBIND = 0x0000_000B;
    ENQUIRE_LINK = 0x0000_0015;
    ENQUIRE_LINK_RESP = 0x8000_0015;
    SUBMIT_MULTI = 0x0000_0021;
    SUBMIT_MULTI_RESP = 0x8000_0021;
    ALERT_NOTIFICATION = 0x0000_0102;
    DATA_SM = 0x0000_0103;
    DATA_SM_RESP = 0x8000_0103;
}

impl CommandId {
    /// True for response ids (bit 31 set), generic_nack included.
    pub fn is_response(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The id of the response to this request id.
    pub fn response(self) -> CommandId {
        CommandId(self.0 | 0x8000_0000)
    }

    /// The response body, with empty fields, for a request with this id: what answers a
    /// request with an error status. `None` for responses, unknown ids and the requests that
    /// take no response (outbind, alert_notification).
    pub fn empty_response(self) -> Option<Body> {
        Some(match self {
            CommandId::BIND_TRANSMITTER => Body::BindTransmitterResp(BindResp::default()),
            CommandId::BIND_RECEIVER => Body::BindReceiverResp(BindResp::default()),
            CommandId::BIND_TRANSCEIVER => Body::BindTransceiverResp(BindResp::default()),
            CommandId::UNBIND => Body::UnbindResp,
            CommandId::ENQUIRE_LINK => Body::EnquireLinkResp,
            CommandId::SUBMIT_SM => Body::SubmitSmResp(MessageIdResp::default()),
            CommandId::DELIVER_SM => Body::DeliverSmResp(MessageIdResp::default()),
            CommandId::SUBMIT_MULTI => Body::SubmitMultiResp(SubmitMultiResp::default()),
            CommandId::DATA_SM => Body::DataSmResp(DataSmResp::default()),
            CommandId::QUERY_SM => Body::QuerySmResp(QuerySmResp::default()),
            CommandId::CANCEL_SM => Body::CancelSmResp,
            CommandId::REPLACE_SM => Body::ReplaceSmResp,
            _ => return None,
        })
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{}", name.to_ascii_lowercase()),
            None => write!(f, "CommandId(0x{:08X})", self.0),
        }
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A C-octet string field, without its NUL terminator.
///
/// Strings of up to [`COctet::INLINE_CAP`] octets (service_type, addresses, times, system_id,
/// password: every string of a submit_sm or bind) are held inline: copying a few octets out of
/// the frame costs less than the atomic reference count a `Bytes` slice takes and releases.
/// Longer ones (message ids, data_sm addresses) are a `Bytes` slice of the received frame.
/// Equality, ordering and hashing look at the octets only, never at where they are held.
///
/// Bytes, not `str`: carriers put Latin-1 and UTF-8 in system_id and addresses, and that must
/// not kill a session. Use [`COctet::to_str_lossy`] to display one.
#[derive(Clone)]
pub struct COctet(Repr);

/// Where a [`COctet`]'s octets are held.
#[derive(Clone)]
enum Repr {
    /// `buf[..len]`, `len <= INLINE_CAP`; octets past `len` are zero.
    Inline {
        /// The string's length.
        len: u8,
        /// The octets, zero-padded.
        buf: [u8; COctet::INLINE_CAP],
    },
    /// Longer than [`COctet::INLINE_CAP`] octets.
    Shared(Bytes),
}

impl COctet {
    /// The longest string held inline, without a `Bytes`. 23 octets keep a `COctet` as large
    /// as the `Bytes` it would otherwise be (32 octets).
    pub const INLINE_CAP: usize = 23;

    /// The empty string (encoded as a single NUL).
    pub const fn empty() -> Self {
        COctet(Repr::Inline {
            len: 0,
            buf: [0; Self::INLINE_CAP],
        })
    }

    /// A copy of `b`, inline when it is short enough.
    #[inline]
    pub fn copy_from_slice(b: &[u8]) -> Self {
        match Self::inline(b) {
            Some(s) => s,
            None => COctet(Repr::Shared(Bytes::copy_from_slice(b))),
        }
    }

    /// `b` as it is, without the inline check: for the decoder, which has checked the length.
    #[inline]
    pub(crate) fn shared(b: Bytes) -> Self {
        COctet(Repr::Shared(b))
    }

    /// For the decoder: the first `len` octets of `window` (`len <= INLINE_CAP`), held inline.
    /// The whole window is copied and the octets past `len` cleared with two masks: a few
    /// register moves where a `copy_from_slice` of `len` octets would call `memcpy`.
    #[inline]
    pub(crate) fn inline_prefix(window: &[u8; Self::INLINE_CAP], len: usize) -> Self {
        let (lo, hi) = window.split_at(16);
        let mut lo16 = [0; 16];
        lo16.copy_from_slice(lo);
        let mut hi8 = [0; 8];
        if let Some(h) = hi8.get_mut(..hi.len()) {
            h.copy_from_slice(hi);
        }
        let lo_keep = if len >= 16 {
            u128::MAX
        } else {
            (1u128 << (8 * len)) - 1
        };
        // At most 7 octets past the first 16, so the shift stays below 64.
        let hi_keep = (1u64 << (8 * len.saturating_sub(16).min(7))) - 1;
        let lo16 = (u128::from_le_bytes(lo16) & lo_keep).to_le_bytes();
        let hi8 = (u64::from_le_bytes(hi8) & hi_keep).to_le_bytes();
        let mut buf = [0; Self::INLINE_CAP];
        let (blo, bhi) = buf.split_at_mut(16);
        blo.copy_from_slice(&lo16);
        if let Some(h) = hi8.get(..bhi.len()) {
            bhi.copy_from_slice(h);
        }
        COctet(Repr::Inline {
            // len <= INLINE_CAP (23): the caller's contract; min keeps the invariant anyway.
            len: len.min(Self::INLINE_CAP) as u8,
            buf,
        })
    }

    /// For the encoder: an inline string's octets with their zero padding, so that it can be
    /// written with one fixed-size copy (the first padding octet is the NUL terminator).
    #[inline]
    pub(crate) fn padded(&self) -> Option<&[u8; Self::INLINE_CAP]> {
        match &self.0 {
            Repr::Inline { buf, .. } => Some(buf),
            Repr::Shared(_) => None,
        }
    }

    /// `b` held inline, if it fits.
    #[inline]
    fn inline(b: &[u8]) -> Option<Self> {
        let mut buf = [0; Self::INLINE_CAP];
        buf.get_mut(..b.len())?.copy_from_slice(b);
        let len = u8::try_from(b.len()).ok()?;
        Some(COctet(Repr::Inline { len, buf }))
    }

    /// The raw bytes, without the terminator.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(b) => b,
        }
    }

    /// The octets as `Bytes`: a copy of an inline string, a new reference to a shared one.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared(b) => b.clone(),
        }
    }

    /// As text, replacing invalid UTF-8.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// Length in octets, without the terminator.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Shared(b) => b.len(),
        }
    }

    /// True for the empty string.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for COctet {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for COctet {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for COctet {}

impl PartialOrd for COctet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for COctet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for COctet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl AsRef<[u8]> for COctet {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for COctet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

impl From<&'static str> for COctet {
    fn from(s: &'static str) -> Self {
        COctet::inline(s.as_bytes())
            .unwrap_or_else(|| COctet(Repr::Shared(Bytes::from_static(s.as_bytes()))))
    }
}

impl From<String> for COctet {
    fn from(s: String) -> Self {
        COctet::inline(s.as_bytes()).unwrap_or_else(|| COctet(Repr::Shared(Bytes::from(s))))
    }
}

impl From<Vec<u8>> for COctet {
    fn from(v: Vec<u8>) -> Self {
        COctet::inline(&v).unwrap_or_else(|| COctet(Repr::Shared(Bytes::from(v))))
    }
}

impl From<Bytes> for COctet {
    /// Short strings are copied inline (and `b` released); longer ones keep `b`.
    fn from(b: Bytes) -> Self {
        match COctet::inline(&b) {
            Some(s) => s,
            None => COctet(Repr::Shared(b)),
        }
    }
}

impl From<&[u8]> for COctet {
    fn from(b: &[u8]) -> Self {
        COctet::copy_from_slice(b)
    }
}

impl From<COctet> for Bytes {
    fn from(s: COctet) -> Self {
        match s.0 {
            Repr::Shared(b) => b,
            Repr::Inline { .. } => Bytes::copy_from_slice(s.as_bytes()),
        }
    }
}

/// An SME address: type of number, numbering plan, digits (or alphanumeric sender).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Address {
    /// Type of number (0 unknown, 1 international, 5 alphanumeric, …).
    pub ton: u8,
    /// Numbering plan indicator (0 unknown, 1 E.164, …).
    pub npi: u8,
    /// The address itself (max 20 octets in submit_sm, 64 in data_sm).
    pub addr: COctet,
}

impl Address {
    /// An international E.164 number (TON 1, NPI 1), digits without '+'.
    pub fn international(digits: impl Into<COctet>) -> Self {
        Address {
            ton: 1,
            npi: 1,
            addr: digits.into(),
        }
    }

    /// An alphanumeric sender id (TON 5, NPI 0).
    pub fn alphanumeric(text: impl Into<COctet>) -> Self {
        Address {
            ton: 5,
            npi: 0,
            addr: text.into(),
        }
    }
}

/// The operation of a PDU, with its mandatory fields and TLVs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is named after its SMPP operation
pub enum Body {
    BindTransmitter(Bind),
    BindTransmitterResp(BindResp),
    BindReceiver(Bind),
    BindReceiverResp(BindResp),
    BindTransceiver(Bind),
    BindTransceiverResp(BindResp),
    Outbind(Outbind),
    Unbind,
    UnbindResp,
    GenericNack,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm(SubmitSm),
    SubmitSmResp(MessageIdResp),
    SubmitMulti(SubmitMulti),
    SubmitMultiResp(SubmitMultiResp),
    /// Same fields as submit_sm (SMPP 3.4 §4.6.1).
    DeliverSm(SubmitSm),
    DeliverSmResp(MessageIdResp),
    DataSm(DataSm),
    DataSmResp(DataSmResp),
    QuerySm(QuerySm),
    QuerySmResp(QuerySmResp),
    CancelSm(CancelSm),
    CancelSmResp,
    ReplaceSm(ReplaceSm),
    ReplaceSmResp,
    AlertNotification(AlertNotification),
}

impl Body {
    /// The command_id this body encodes as.
    pub fn command_id(&self) -> CommandId {
        match self {
            Body::BindTransmitter(_) => CommandId::BIND_TRANSMITTER,
            Body::BindTransmitterResp(_) => CommandId::BIND_TRANSMITTER_RESP,
            Body::BindReceiver(_) => CommandId::BIND_RECEIVER,
            Body::BindReceiverResp(_) => CommandId::BIND_RECEIVER_RESP,
            Body::BindTransceiver(_) => CommandId::BIND_TRANSCEIVER,
            Body::BindTransceiverResp(_) => CommandId::BIND_TRANSCEIVER_RESP,
            Body::Outbind(_) => CommandId::OUTBIND,
            Body::Unbind => CommandId::UNBIND,
            Body::UnbindResp => CommandId::UNBIND_RESP,
            Body::GenericNack => CommandId::GENERIC_NACK,
            Body::EnquireLink => CommandId::ENQUIRE_LINK,
            Body::EnquireLinkResp => CommandId::ENQUIRE_LINK_RESP,
            Body::SubmitSm(_) => CommandId::SUBMIT_SM,
            Body::SubmitSmResp(_) => CommandId::SUBMIT_SM_RESP,
            Body::SubmitMulti(_) => CommandId::SUBMIT_MULTI,
            Body::SubmitMultiResp(_) => CommandId::SUBMIT_MULTI_RESP,
            Body::DeliverSm(_) => CommandId::DELIVER_SM,
            Body::DeliverSmResp(_) => CommandId::DELIVER_SM_RESP,
            Body::DataSm(_) => CommandId::DATA_SM,
            Body::DataSmResp(_) => CommandId::DATA_SM_RESP,
            Body::QuerySm(_) => CommandId::QUERY_SM,
            Body::QuerySmResp(_) => CommandId::QUERY_SM_RESP,
            Body::CancelSm(_) => CommandId::CANCEL_SM,
            Body::CancelSmResp => CommandId::CANCEL_SM_RESP,
            Body::ReplaceSm(_) => CommandId::REPLACE_SM,
            Body::ReplaceSmResp => CommandId::REPLACE_SM_RESP,
            Body::AlertNotification(_) => CommandId::ALERT_NOTIFICATION,
        }
    }

    /// True for responses (generic_nack included).
    pub fn is_response(&self) -> bool {
        self.command_id().is_response()
    }

    /// True for requests that expect no response (outbind, alert_notification).
    pub fn expects_no_response(&self) -> bool {
        matches!(self, Body::Outbind(_) | Body::AlertNotification(_))
    }
}

/// bind_transmitter, bind_receiver, bind_transceiver (SMPP 3.4 §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bind {
    /// The ESME's identity (max 15 octets).
    pub system_id: COctet,
    /// The password (max 8 octets).
    pub password: COctet,
    /// The kind of ESME (max 12 octets), often empty.
    pub system_type: COctet,
    /// The SMPP version the ESME speaks: 0x34 for 3.4, 0x50 for 5.0.
    pub interface_version: u8,
    /// TON, NPI and address range this bind serves (receiver side).
    pub address_range: Address,
}

/// The response to a bind (SMPP 3.4 §4.1.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindResp {
    /// The SMSC's identity. Empty (or absent on the wire) when the bind failed.
    pub system_id: COctet,
    /// Optional: sc_interface_version.
    pub tlvs: Tlvs,
}

/// outbind (SMPP 3.4 §4.1.7): the SMSC asks an ESME to bind as a receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbind {
    /// The SMSC's identity.
    pub system_id: COctet,
    /// The password the ESME should check.
    pub password: COctet,
}

/// submit_sm and deliver_sm (SMPP 3.4 §4.4.1, §4.6.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitSm {
    /// service_type (max 6 octets), usually empty.
    pub service_type: COctet,
    /// The sender.
    pub source: Address,
    /// The recipient.
    pub dest: Address,
    /// esm_class: messaging mode, type (0x04 = delivery receipt) and UDHI (0x40).
    pub esm_class: u8,
    /// protocol_id (GSM TP-PID).
    pub protocol_id: u8,
    /// priority_flag (0–3).
    pub priority_flag: u8,
    /// schedule_delivery_time, absolute or relative SMPP time (17 octets) or empty.
    pub schedule_delivery_time: COctet,
    /// validity_period, absolute or relative SMPP time (17 octets) or empty.
    pub validity_period: COctet,
    /// registered_delivery: bits 0–1 ask for a delivery receipt.
    pub registered_delivery: u8,
    /// replace_if_present_flag.
    pub replace_if_present_flag: u8,
    /// data_coding: 0 SMSC default (GSM 7-bit), 3 Latin-1, 8 UCS-2, 4 binary, …
    pub data_coding: u8,
    /// sm_default_msg_id.
    pub sm_default_msg_id: u8,
    /// short_message (max 255 octets; sm_length is its length). Includes the UDH when
    /// esm_class has UDHI set.
    pub short_message: Bytes,
    /// Optional parameters.
    pub tlvs: Tlvs,
}

impl SubmitSm {
    /// esm_class bit: the message is a delivery receipt (deliver_sm).
    pub const ESM_CLASS_RECEIPT: u8 = 0x04;
    /// esm_class bit: short_message begins with a user data header.
    pub const ESM_CLASS_UDHI: u8 = 0x40;

    /// True when esm_class marks this deliver_sm as a delivery receipt (SMSC delivery receipt
    /// 0x04, or SME delivery/manual acknowledgement 0x08/0x10 and intermediate notification 0x20).
    pub fn is_receipt(&self) -> bool {
        self.esm_class & 0x3C != 0
    }

    /// True when short_message starts with a user data header.
    pub fn has_udh(&self) -> bool {
        self.esm_class & Self::ESM_CLASS_UDHI != 0
    }

    /// The message body: short_message, or the message_payload TLV when short_message is empty.
    pub fn payload(&self) -> &Bytes {
        if self.short_message.is_empty() {
            if let Some(p) = self.tlvs.message_payload() {
                return p;
            }
        }
        &self.short_message
    }
}

/// A response carrying only a message id: submit_sm_resp, deliver_sm_resp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageIdResp {
    /// The SMSC's id for the message (max 65 octets). Empty (or absent) on error.
    pub message_id: COctet,
}

/// One destination of a submit_multi.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiDest {
    /// dest_flag 1: an SME address.
    Sme(Address),
    /// dest_flag 2: a distribution list name.
    DistributionList(COctet),
}

/// submit_multi (SMPP 3.4 §4.5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitMulti {
    /// service_type.
    pub service_type: COctet,
    /// The sender.
    pub source: Address,
    /// The destinations (number_of_dests is their count, max 255).
    pub dests: Vec<MultiDest>,
    /// esm_class.
    pub esm_class: u8,
    /// protocol_id.
    pub protocol_id: u8,
    /// priority_flag.
    pub priority_flag: u8,
    /// schedule_delivery_time.
    pub schedule_delivery_time: COctet,
    /// validity_period.
    pub validity_period: COctet,
    /// registered_delivery.
    pub registered_delivery: u8,
    /// replace_if_present_flag.
    pub replace_if_present_flag: u8,
    /// data_coding.
    pub data_coding: u8,
    /// sm_default_msg_id.
    pub sm_default_msg_id: u8,
    /// short_message.
    pub short_message: Bytes,
    /// Optional parameters.
    pub tlvs: Tlvs,
}

/// One destination a submit_multi could not reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnsuccessSme {
    /// The destination.
    pub address: Address,
    /// Why it failed.
    pub error_status_code: CommandStatus,
}

/// submit_multi_resp (SMPP 3.4 §4.5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitMultiResp {
    /// The SMSC's message id.
    pub message_id: COctet,
    /// The destinations that failed (no_unsuccess is their count).
    pub unsuccess: Vec<UnsuccessSme>,
}

/// data_sm (SMPP 3.4 §4.7.1): the body travels in the message_payload TLV.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataSm {
    /// service_type.
    pub service_type: COctet,
    /// The sender (address max 64 octets).
    pub source: Address,
    /// The recipient (address max 64 octets).
    pub dest: Address,
    /// esm_class.
    pub esm_class: u8,
    /// registered_delivery.
    pub registered_delivery: u8,
    /// data_coding.
    pub data_coding: u8,
    /// Optional parameters (message_payload, receipted_message_id, message_state, …).
    pub tlvs: Tlvs,
}

/// data_sm_resp (SMPP 3.4 §4.7.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataSmResp {
    /// The SMSC's message id.
    pub message_id: COctet,
    /// Optional parameters (delivery_failure_reason, network_error_code, …).
    pub tlvs: Tlvs,
}

/// query_sm (SMPP 3.4 §4.8.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerySm {
    /// The SMSC's id of the message to query.
    pub message_id: COctet,
    /// The original sender.
    pub source: Address,
}

/// query_sm_resp (SMPP 3.4 §4.8.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerySmResp {
    /// The queried message id.
    pub message_id: COctet,
    /// When it reached its final state (SMPP time) or empty.
    pub final_date: COctet,
    /// Its state (see [`super::tlv::message_state`]).
    pub message_state: u8,
    /// Network error code, when it failed.
    pub error_code: u8,
}

/// cancel_sm (SMPP 3.4 §4.9.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelSm {
    /// service_type.
    pub service_type: COctet,
    /// The SMSC's id of the message to cancel (or empty with addresses).
    pub message_id: COctet,
    /// The original sender.
    pub source: Address,
    /// The original recipient.
    pub dest: Address,
}

/// replace_sm (SMPP 3.4 §4.10.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaceSm {
    /// The SMSC's id of the message to replace.
    pub message_id: COctet,
    /// The original sender.
    pub source: Address,
    /// New schedule_delivery_time.
    pub schedule_delivery_time: COctet,
    /// New validity_period.
    pub validity_period: COctet,
    /// New registered_delivery.
    pub registered_delivery: u8,
    /// New sm_default_msg_id.
    pub sm_default_msg_id: u8,
    /// New short_message.
    pub short_message: Bytes,
    /// Optional parameters (SMPP 5.0 allows message_payload here).
    pub tlvs: Tlvs,
}

/// alert_notification (SMPP 3.4 §4.12.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertNotification {
    /// The mobile that became available.
    pub source: Address,
    /// The ESME address to alert.
    pub esme: Address,
    /// Optional: ms_availability_status.
    pub tlvs: Tlvs,
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use super::*;

    fn hash(s: &COctet) -> u64 {
        let mut h = DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    }

    #[test]
    fn c_octet_is_as_small_as_bytes() {
        assert_eq!(size_of::<COctet>(), size_of::<Bytes>());
    }

    /// Inline and shared strings with the same octets are the same string.
    #[test]
    fn c_octet_compares_octets_only() {
        for len in [0, 5, COctet::INLINE_CAP, COctet::INLINE_CAP + 1, 40] {
            let text = "x".repeat(len);
            let inline_or_not = COctet::from(text.clone());
            let shared = COctet::shared(Bytes::from(text.clone()));
            assert_eq!(inline_or_not, shared);
            assert_eq!(hash(&inline_or_not), hash(&shared));
            assert_eq!(inline_or_not.cmp(&shared), std::cmp::Ordering::Equal);
            assert_eq!(inline_or_not.len(), len);
            assert_eq!(inline_or_not.as_bytes(), text.as_bytes());
            assert_eq!(Bytes::from(shared.clone()), Bytes::from(text.clone()));
            assert_eq!(inline_or_not.to_bytes(), Bytes::from(text));
        }
        assert!(COctet::from("a") < COctet::shared(Bytes::from_static(b"b")));
        assert_eq!(COctet::default(), COctet::empty());
        assert_eq!(format!("{:?}", COctet::from("ab")), "\"ab\"");
    }

    /// The decoder's masked copy keeps exactly `len` octets and zero padding after them.
    #[test]
    fn inline_prefix_keeps_len_octets() {
        let window: [u8; COctet::INLINE_CAP] = std::array::from_fn(|i| 0xA0 + i as u8);
        for len in 0..=COctet::INLINE_CAP {
            let s = COctet::inline_prefix(&window, len);
            assert_eq!(s.as_bytes(), &window[..len], "len {len}");
            let padded = s.padded().unwrap();
            assert!(padded[len..].iter().all(|&b| b == 0), "len {len}");
        }
    }
}
