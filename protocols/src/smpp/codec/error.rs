//! Errors of the codec: a bad PDU ([`PduError`]), a bad stream ([`FrameError`]) and a PDU we
//! refuse to encode ([`EncodeError`]).

use crate::smpp::pdu::CommandId;
use crate::smpp::status::CommandStatus;

use super::limits::StringField;

/// A PDU whose frame was read whole but whose content is malformed.
///
/// It costs one frame, not the session: answer it (see [`super::error_response`] and
/// [`super::generic_nack`]) and carry on. It carries the header fields that could be read so the
/// answer can echo the sequence number. Never retryable: the same bytes fail the same way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {command_id} (sequence_number {sequence_number}): {kind}")]
#[non_exhaustive]
pub struct PduError {
    /// command_id from the header (0 when the frame was too short to hold one).
    pub command_id: CommandId,
    /// sequence_number from the header, for the generic_nack or error response.
    pub sequence_number: u32,
    /// command_status from the header: tells a malformed error response from a malformed
    /// successful one.
    pub header_status: CommandStatus,
    /// What was wrong.
    pub kind: PduErrorKind,
}

impl PduError {
    pub(crate) fn new(
        command_id: CommandId,
        sequence_number: u32,
        header_status: CommandStatus,
        kind: PduErrorKind,
    ) -> Self {
        PduError {
            command_id,
            sequence_number,
            header_status,
            kind,
        }
    }

    /// The command_status to put in the generic_nack or error response (SMPP 3.4 §5.1.3).
    pub fn command_status(&self) -> CommandStatus {
        self.kind.command_status()
    }

    /// True when the peer sent bytes that break the protocol; false when our own caller handed
    /// [`super::decode()`] an inconsistent frame (a bug on our side).
    pub fn is_peer_fault(&self) -> bool {
        self.kind.is_peer_fault()
    }
}

/// What was wrong with a PDU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PduErrorKind {
    /// The frame is shorter than the 16-octet header.
    #[error("frame of {len} octets is shorter than the 16-octet header")]
    HeaderTooShort {
        /// The frame's length.
        len: usize,
    },
    /// The frame's length differs from its command_length: the caller framed it wrongly.
    #[error("command_length {command_length} but the frame holds {frame_len} octets")]
    LengthMismatch {
        /// command_length from the header.
        command_length: u32,
        /// The frame's actual length.
        frame_len: usize,
    },
    /// command_id is not an SMPP 3.4 operation.
    #[error("unknown command_id")]
    UnknownCommandId,
    /// The body ends before this mandatory field does.
    #[error("body ends inside mandatory field {field}")]
    Truncated {
        /// The field that was cut.
        field: &'static str,
    },
    /// A C-octet string has no NUL within its maximum length.
    #[error("{field} is not terminated within its {} octets", .field.max_len() + 1)]
    StringTooLong {
        /// The field.
        field: StringField,
    },
    /// sm_length is larger than what is left of the body.
    #[error("sm_length {sm_length} exceeds the {remaining} octets left in the body")]
    SmLength {
        /// sm_length as received.
        sm_length: u8,
        /// Octets left after sm_length.
        remaining: usize,
    },
    /// Octets after the last field that cannot be a TLV (or the PDU has no optional part).
    #[error("{len} trailing octets after the last field")]
    TrailingBytes {
        /// How many.
        len: usize,
    },
    /// A TLV's length runs past the end of the body.
    #[error("TLV 0x{tag:04X} of length {len} runs past the end of the body ({remaining} left)")]
    TlvTruncated {
        /// The TLV's tag.
        tag: u16,
        /// Its declared length.
        len: u16,
        /// Octets left for its value.
        remaining: usize,
    },
    /// A well-known fixed-size TLV has the wrong length (see [`super::fixed_tlv_len`]).
    #[error("TLV 0x{tag:04X} has length {len}, the spec says {expected}")]
    TlvLength {
        /// The TLV's tag.
        tag: u16,
        /// Its declared length.
        len: u16,
        /// The length SMPP gives it.
        expected: usize,
    },
    /// A submit_multi dest_flag other than 1 (SME address) or 2 (distribution list).
    #[error("dest_flag {0} is neither 1 (SME) nor 2 (distribution list)")]
    InvalidDestFlag(u8),
}

impl PduErrorKind {
    /// The command_status to answer with (SMPP 3.4 §5.1.3).
    pub fn command_status(&self) -> CommandStatus {
        match self {
            PduErrorKind::HeaderTooShort { .. }
            | PduErrorKind::Truncated { .. }
            | PduErrorKind::TrailingBytes { .. } => CommandStatus::ESME_RINVCMDLEN,
            PduErrorKind::UnknownCommandId => CommandStatus::ESME_RINVCMDID,
            PduErrorKind::StringTooLong { field } => field.status(),
            PduErrorKind::SmLength { .. } => CommandStatus::ESME_RINVMSGLEN,
            PduErrorKind::TlvTruncated { .. } => CommandStatus::ESME_RINVOPTPARSTREAM,
            PduErrorKind::TlvLength { .. } => CommandStatus::ESME_RINVPARLEN,
            PduErrorKind::InvalidDestFlag(_) => CommandStatus::ESME_RINVDESTFLAG,
            PduErrorKind::LengthMismatch { .. } => CommandStatus::ESME_RSYSERR,
        }
    }

    /// True when the peer is at fault (everything but [`PduErrorKind::LengthMismatch`], which
    /// the framing layer can never produce).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, PduErrorKind::LengthMismatch { .. })
    }
}

/// A stream that cannot be framed any more: the session must be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// command_length is smaller than the header: the stream is out of sync (peer's fault).
    #[error("command_length {0} below the 16-octet header")]
    TooShort(u32),
    /// command_length exceeds the configured maximum (peer's fault, or a misconfigured maximum).
    #[error("command_length {len} exceeds the {max} maximum")]
    TooLong {
        /// command_length as received.
        len: u32,
        /// [`super::SmppCodec::max_pdu_len`].
        max: usize,
    },
    /// A PDU we were asked to send cannot be encoded (our fault; the stream is untouched).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True when the peer broke the framing (as opposed to our encoder or the transport).
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, FrameError::TooShort(_) | FrameError::TooLong { .. })
    }
}

/// A PDU that breaks the limits of SMPP 3.4 and is refused rather than truncated. Always the
/// caller's fault; nothing was written to the buffer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A C-octet string is longer than its maximum.
    #[error("{field} of {len} octets exceeds its {} maximum", .field.max_len())]
    StringTooLong {
        /// The field.
        field: StringField,
        /// Its length, without the terminator.
        len: usize,
    },
    /// A C-octet string contains a NUL, which would end it early on the wire.
    #[error("{field} contains a NUL octet")]
    InteriorNul {
        /// The field.
        field: StringField,
    },
    /// short_message longer than 255 octets (use the message_payload TLV instead).
    #[error("short_message of {0} octets exceeds 255 (use message_payload)")]
    ShortMessageTooLong(usize),
    /// More than 255 submit_multi destinations.
    #[error("{0} destinations exceed the 255 a submit_multi can carry")]
    TooManyDests(usize),
    /// More than 255 unsuccess_sme entries.
    #[error("{0} unsuccess_sme entries exceed 255")]
    TooManyUnsuccess(usize),
    /// A TLV value longer than 65535 octets.
    #[error("TLV 0x{tag:04X} value of {len} octets exceeds 65535")]
    TlvTooLong {
        /// The tag.
        tag: u16,
        /// The value's length.
        len: usize,
    },
    /// A well-known fixed-size TLV with the wrong length.
    #[error("TLV 0x{tag:04X} has length {len}, the spec says {expected}")]
    TlvLength {
        /// The tag.
        tag: u16,
        /// The value's length.
        len: usize,
        /// The length SMPP gives it.
        expected: usize,
    },
    /// A bug in this codec: [`super::encoded_len`] disagrees with what encode wrote.
    #[error("internal: encoded_len computed {computed} octets, encode wrote {written}")]
    Internal {
        /// What encoded_len computed.
        computed: usize,
        /// What encode wrote.
        written: usize,
    },
    /// The whole PDU would exceed the 32-bit command_length.
    #[error("PDU of {0} octets exceeds the 32-bit command_length")]
    PduTooLong(usize),
}
