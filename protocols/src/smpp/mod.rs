//! SMPP 3.4 (with the SMPP 5.0 TLVs used in practice).
//!
//! # Data flow
//! ```text
//! socket bytes ─► codec::SmppCodec (split by command_length; one bad PDU = one frame)
//!              ─► Pdu::decode(frame: Bytes)  (payloads are Bytes slices of the frame)
//!              ─► session::Session::handle_pdu(pdu, now)  ─► events, PDUs to send, deadline
//! ```
//! - [`pdu`]: the data model: [`Pdu`], [`Body`], every operation's fields.
//! - [`status`]: command_status values and their meaning (who is at fault, whether to retry).
//! - [`tlv`]: optional parameters; unknown TLVs are kept verbatim.
//! - [`codec`]: encoding, decoding and `tokio_util::codec` framing.
//! - `oracle` (feature `oracle`): differential comparison with rusmpp, for tests and fuzzing.
//! - [`time`]: schedule_delivery_time and validity_period (absolute and relative).
//! - [`session`]: the sans-IO session state machine (ESME and SMSC roles).

pub mod codec;
#[cfg(feature = "oracle")]
pub mod oracle;
pub mod pdu;
pub mod session;
pub mod status;
pub mod time;
pub mod tlv;

pub use pdu::{Body, CommandId, Pdu};
pub use status::CommandStatus;
pub use tlv::{Tlv, Tlvs};
