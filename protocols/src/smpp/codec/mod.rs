//! Encoding, decoding and framing of SMPP PDUs.
//!
//! # Layout
//! - [`decode()`] (`decode.rs`): one complete frame (`Bytes`, header included) → [`Pdu`]. Every
//!   short_message and TLV value of the result is a `Bytes::slice` of the frame: decoding copies
//!   no payload. C-octet strings up to 23 octets are copied inline (see
//!   [`COctet`](super::pdu::COctet)), longer ones are slices too.
//! - [`encode()`] (`encode.rs`): [`Pdu`] → bytes appended to a `BytesMut`, with one reservation
//!   of [`encoded_len`] octets. Values that break the limits of SMPP 3.4 §4 are refused with an
//!   [`EncodeError`], never truncated.
//! - [`SmppCodec`] (`framing.rs`): `tokio_util::codec` framing. It splits the stream by
//!   command_length *before* decoding, so a malformed body costs exactly one frame (a
//!   `Some(Err(PduError))` item) and the stream stays in sync; only an impossible command_length
//!   is fatal ([`FrameError`]).
//! - [`StringField`] (`limits.rs`): the maximum length of every C-octet string, shared by decode
//!   and encode so that whatever we encode we also accept.
//! - Errors (`error.rs`): [`PduError`] carries the header of the bad PDU and the command_status
//!   to answer it with; [`generic_nack`] and [`error_response`] build that answer.
//!
//! # Leniency and strictness
//! Carriers are sloppy, so the decoder accepts: any octet (not just ASCII) inside C-octet
//! strings; a response with a non-zero command_status and no body at all (its fields decode
//! empty); a missing NUL on the final C-octet string of a response body (message_id,
//! system_id); TLVs on submit_sm_resp, deliver_sm_resp and submit_multi_resp (SMPP 5.0), which
//! are checked and then dropped because those bodies have no TLV field.
//!
//! It is strict on lengths: every C-octet string must end within its maximum
//! ([`StringField::max_len`] octets plus the NUL), sm_length must fit in the body, the body must
//! end exactly where its last field or TLV ends, and the well-known fixed-size TLVs (message_state,
//! sar_msg_ref_num, …) must have their size from SMPP 3.4 §5.3.2. Unknown TLVs are kept verbatim,
//! in order, on every PDU whose body has an optional part (bind_resp, submit_sm, deliver_sm,
//! data_sm, data_sm_resp, submit_multi, replace_sm, alert_notification).

mod decode;
mod encode;
mod error;
mod framing;
mod limits;
mod nul;

pub use decode::decode;
pub use encode::{encode, encoded_len};
pub use error::{EncodeError, FrameError, PduError, PduErrorKind};
pub use framing::SmppCodec;
pub use limits::{fixed_tlv_len, StringField};

use bytes::{Bytes, BytesMut};

use super::pdu::{BindResp, Body, DataSmResp, MessageIdResp, Pdu, QuerySmResp, SubmitMultiResp};
use super::CommandId;

/// Length of the PDU header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;

impl Pdu {
    /// Decodes one complete frame; see [`decode()`].
    pub fn decode(frame: Bytes) -> Result<Pdu, PduError> {
        decode(frame)
    }

    /// Appends the encoding of this PDU to `dst`; see [`encode()`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode(self, dst)
    }

    /// The length of the encoding, header included; see [`encoded_len`].
    pub fn encoded_len(&self) -> usize {
        encoded_len(self)
    }
}

/// A generic_nack answering the PDU that failed to decode: same sequence_number, and the
/// command_status [`PduError::command_status`] chose.
///
/// Use it when the command_id is unknown or the header itself is bad; for a known request whose
/// body is malformed, [`error_response`] gives the matching `*_resp`, which peers handle better.
pub fn generic_nack(err: &PduError) -> Pdu {
    Pdu::response(err.sequence_number, err.command_status(), Body::GenericNack)
}

/// The response to send for a PDU that failed to decode, or `None` when nothing must be sent.
///
/// - A malformed *response* (or generic_nack) is never answered: answering it would invite the
///   peer to answer back, and nobody is waiting for it. The caller should log it and, for a
///   response, fail the request it belonged to.
/// - A malformed outbind or alert_notification is not answered either (they have no response).
/// - An unknown command_id, or a header that could not be read, gets a [`generic_nack`].
/// - A known request with a malformed body gets its own response (e.g. submit_sm_resp) with
///   empty fields and the error's command_status, as SMPP 3.4 §2.10 recommends.
pub fn error_response(err: &PduError) -> Option<Pdu> {
    let id = err.command_id;
    if id.is_response() || id == CommandId::OUTBIND || id == CommandId::ALERT_NOTIFICATION {
        return None;
    }
    let status = err.command_status();
    let body = match id {
        CommandId::BIND_TRANSMITTER => Body::BindTransmitterResp(BindResp::default()),
        CommandId::BIND_RECEIVER => Body::BindReceiverResp(BindResp::default()),
        CommandId::BIND_TRANSCEIVER => Body::BindTransceiverResp(BindResp::default()),
        CommandId::SUBMIT_SM => Body::SubmitSmResp(MessageIdResp::default()),
        CommandId::DELIVER_SM => Body::DeliverSmResp(MessageIdResp::default()),
        CommandId::SUBMIT_MULTI => Body::SubmitMultiResp(SubmitMultiResp::default()),
        CommandId::DATA_SM => Body::DataSmResp(DataSmResp::default()),
        CommandId::QUERY_SM => Body::QuerySmResp(QuerySmResp::default()),
        CommandId::CANCEL_SM => Body::CancelSmResp,
        CommandId::REPLACE_SM => Body::ReplaceSmResp,
        CommandId::UNBIND => Body::UnbindResp,
        CommandId::ENQUIRE_LINK => Body::EnquireLinkResp,
        _ => Body::GenericNack,
    };
    Some(Pdu::response(err.sequence_number, status, body))
}
