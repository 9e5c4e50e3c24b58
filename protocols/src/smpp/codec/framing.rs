//! `tokio_util::codec` framing: split the stream by command_length, then decode the frame.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::smpp::pdu::Pdu;

use super::error::{FrameError, PduError};
use super::{decode, encode, HEADER_LEN};

/// SMPP framing for `tokio_util::codec::Framed`.
///
/// Decoding yields one item per frame: `Ok(pdu)`, or `Err(PduError)` for a frame whose body is
/// malformed — the stream stays in sync and the next frame decodes normally. Only a
/// command_length below 16 or above [`SmppCodec::max_pdu_len`] is fatal ([`FrameError`]): after
/// it the stream cannot be resynchronised and the session must be closed.
#[derive(Clone, Debug)]
pub struct SmppCodec {
    /// Largest command_length accepted: bounds the memory one peer can make us buffer.
    max_pdu_len: usize,
}

impl SmppCodec {
    /// The default [`SmppCodec::max_pdu_len`]: 64 KiB. Real PDUs stay under 1 KiB, but a
    /// message_payload TLV may legally carry up to 64 KiB.
    pub const DEFAULT_MAX_PDU_LEN: usize = 64 * 1024;

    /// A codec with the default maximum PDU length.
    pub fn new() -> Self {
        SmppCodec {
            max_pdu_len: Self::DEFAULT_MAX_PDU_LEN,
        }
    }

    /// A codec accepting PDUs up to `max_pdu_len` octets (at least the 16-octet header).
    pub fn with_max_pdu_len(max_pdu_len: usize) -> Self {
        SmppCodec {
            max_pdu_len: max_pdu_len.max(HEADER_LEN),
        }
    }

    /// The largest command_length this codec accepts.
    pub fn max_pdu_len(&self) -> usize {
        self.max_pdu_len
    }
}

impl Default for SmppCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for SmppCodec {
    type Item = Result<Pdu, PduError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        let Some(prefix) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let command_length = u32::from_be_bytes(*prefix);
        let len = usize::try_from(command_length).unwrap_or(usize::MAX);
        if len < HEADER_LEN {
            return Err(FrameError::TooShort(command_length));
        }
        if len > self.max_pdu_len {
            return Err(FrameError::TooLong {
                len: command_length,
                max: self.max_pdu_len,
            });
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(len).freeze();
        Ok(Some(decode(frame)))
    }
}

impl Encoder<&Pdu> for SmppCodec {
    type Error = FrameError;

    fn encode(&mut self, pdu: &Pdu, dst: &mut BytesMut) -> Result<(), FrameError> {
        Ok(encode(pdu, dst)?)
    }
}

impl Encoder<Pdu> for SmppCodec {
    type Error = FrameError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), FrameError> {
        Ok(encode(&pdu, dst)?)
    }
}
