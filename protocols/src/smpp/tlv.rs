//! Optional parameters (TLVs), SMPP 3.4 §5.3 and SMPP 5.0 §4.8.
//!
//! A TLV is kept as its tag and a `Bytes` slice of the frame, so unknown and vendor TLVs travel
//! through unchanged and re-encode byte for byte. Typed accessors read the well-known ones.

use bytes::Bytes;

/// One optional parameter: a tag and its raw value (a slice of the received frame).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// The parameter tag (see [`tag`]).
    pub tag: u16,
    /// The raw value, exactly as received or to be sent.
    pub value: Bytes,
}

impl Tlv {
    /// A TLV from a tag and raw value.
    pub fn new(tag: u16, value: impl Into<Bytes>) -> Self {
        Tlv {
            tag,
            value: value.into(),
        }
    }

    /// A one-octet integer TLV.
    pub fn u8(tag: u16, value: u8) -> Self {
        Tlv {
            tag,
            value: Bytes::copy_from_slice(&[value]),
        }
    }

    /// A two-octet big-endian integer TLV.
    pub fn u16(tag: u16, value: u16) -> Self {
        Tlv {
            tag,
            value: Bytes::copy_from_slice(&value.to_be_bytes()),
        }
    }

    /// A C-octet string TLV (a NUL terminator is appended).
    pub fn cstring(tag: u16, value: &[u8]) -> Self {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value);
        v.push(0);
        Tlv {
            tag,
            value: Bytes::from(v),
        }
    }

    /// The value as a one-octet integer, if it has exactly that length.
    pub fn as_u8(&self) -> Option<u8> {
        match self.value.as_ref() {
            [b] => Some(*b),
            _ => None,
        }
    }

    /// The value as a two-octet big-endian integer, if it has exactly that length.
    pub fn as_u16(&self) -> Option<u16> {
        match self.value.as_ref() {
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }

    /// The value as a C-octet string without its NUL terminator (lenient: a missing terminator
    /// is tolerated, since carriers send both forms).
    pub fn as_cstr(&self) -> &[u8] {
        match self.value.iter().position(|&b| b == 0) {
            Some(end) => &self.value[..end],
            None => &self.value,
        }
    }
}

/// The optional parameters of one PDU, in the order received.
///
/// A plain `Vec`: PDUs carry a handful of TLVs, and a linear scan over them is faster than any
/// map. Empty TLV lists do not allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tlvs(pub Vec<Tlv>);

impl Tlvs {
    /// No optional parameters.
    pub const fn new() -> Self {
        Tlvs(Vec::new())
    }

    /// The first TLV with this tag.
    pub fn get(&self, tag: u16) -> Option<&Tlv> {
        self.0.iter().find(|t| t.tag == tag)
    }

    /// Appends a TLV.
    pub fn push(&mut self, tlv: Tlv) {
        self.0.push(tlv);
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tlv> {
        self.0.iter()
    }

    /// message_payload (0x0424): the message body when it does not fit short_message.
    pub fn message_payload(&self) -> Option<&Bytes> {
        self.get(tag::MESSAGE_PAYLOAD).map(|t| &t.value)
    }

    /// receipted_message_id (0x001E): the SMSC message id a receipt refers to.
    pub fn receipted_message_id(&self) -> Option<&[u8]> {
        self.get(tag::RECEIPTED_MESSAGE_ID).map(Tlv::as_cstr)
    }

    /// message_state (0x0427): the final state a receipt reports.
    pub fn message_state(&self) -> Option<u8> {
        self.get(tag::MESSAGE_STATE).and_then(Tlv::as_u8)
    }

    /// network_error_code (0x0423): network type (1 octet) and error code (2 octets).
    pub fn network_error_code(&self) -> Option<(u8, u16)> {
        match self.get(tag::NETWORK_ERROR_CODE)?.value.as_ref() {
            [kind, a, b] => Some((*kind, u16::from_be_bytes([*a, *b]))),
            _ => None,
        }
    }

    /// sar_msg_ref_num, sar_total_segments, sar_segment_seqnum, when all three are present.
    pub fn sar(&self) -> Option<(u16, u8, u8)> {
        let reference = self.get(tag::SAR_MSG_REF_NUM)?.as_u16()?;
        let total = self.get(tag::SAR_TOTAL_SEGMENTS)?.as_u8()?;
        let seq = self.get(tag::SAR_SEGMENT_SEQNUM)?.as_u8()?;
        Some((reference, total, seq))
    }
}

impl FromIterator<Tlv> for Tlvs {
    fn from_iter<I: IntoIterator<Item = Tlv>>(iter: I) -> Self {
        Tlvs(iter.into_iter().collect())
    }
}

/// Well-known TLV tags (SMPP 3.4 §5.3.2, SMPP 5.0 §4.8.4).
#[allow(missing_docs)]
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const DEST_NETWORK_TYPE: u16 = 0x0006;
    pub const DEST_BEARER_TYPE: u16 = 0x0007;
    pub const DEST_TELEMATICS_ID: u16 = 0x0008;
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    pub const SOURCE_NETWORK_TYPE: u16 = 0x000E;
    pub const SOURCE_BEARER_TYPE: u16 = 0x000F;
    pub const SOURCE_TELEMATICS_ID: u16 = 0x0010;
    pub const QOS_TIME_TO_LIVE: u16 = 0x0017;
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    pub const ADDITIONAL_STATUS_INFO_TEXT: u16 = 0x001D;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MS_MSG_WAIT_FACILITIES: u16 = 0x0030;
    pub const PRIVACY_INDICATOR: u16 = 0x0201;
    pub const SOURCE_SUBADDRESS: u16 = 0x0202;
    pub const DEST_SUBADDRESS: u16 = 0x0203;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const USER_RESPONSE_CODE: u16 = 0x0205;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const CALLBACK_NUM_PRES_IND: u16 = 0x0302;
    pub const CALLBACK_NUM_ATAG: u16 = 0x0303;
    pub const NUMBER_OF_MESSAGES: u16 = 0x0304;
    pub const CALLBACK_NUM: u16 = 0x0381;
    pub const DPF_RESULT: u16 = 0x0420;
    pub const SET_DPF: u16 = 0x0421;
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const CONGESTION_STATE: u16 = 0x0428;
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    pub const BILLING_IDENTIFICATION: u16 = 0x060B;
    pub const DISPLAY_TIME: u16 = 0x1201;
    pub const SMS_SIGNAL: u16 = 0x1203;
    pub const MS_VALIDITY: u16 = 0x1204;
    pub const ALERT_ON_MESSAGE_DELIVERY: u16 = 0x130C;
    pub const ITS_REPLY_TYPE: u16 = 0x1380;
    pub const ITS_SESSION_INFO: u16 = 0x1383;
}

/// message_state values (SMPP 3.4 §5.2.28).
#[allow(missing_docs)]
pub mod message_state {
    pub const SCHEDULED: u8 = 0;
    pub const ENROUTE: u8 = 1;
    pub const DELIVERED: u8 = 2;
    pub const EXPIRED: u8 = 3;
    pub const DELETED: u8 = 4;
    pub const UNDELIVERABLE: u8 = 5;
    pub const ACCEPTED: u8 = 6;
    pub const UNKNOWN: u8 = 7;
    pub const REJECTED: u8 = 8;
    pub const SKIPPED: u8 = 9;
}
