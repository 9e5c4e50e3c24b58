//! Text encodings for SMS: GSM 03.38, UCS-2, Latin-1; segmentation and reassembly.
//!
//! # Data flow
//! ```text
//! outgoing (MT):  &str ─► encoding::choose_encoding (GSM-7 if it fits, else UCS-2)
//!                      ─► segment::encode_message ─► Vec<Segment> (short_message bytes with UDH,
//!                         or SAR numbers for TLVs) ─► the caller builds one submit_sm per segment
//! price estimate: &str ─► segment::count_segments (no allocation)
//! with IEs in every part (ports): segment::encode_message_behind / count_segments_behind
//! incoming (MO):  deliver_sm ─► decode::decode_short_message (strip UDH, decode by data_coding)
//!                 one part of many ─► reassembly::Reassembler (keyed, bounded, timed out by `now`)
//! ```
//!
//! # Layout
//! Each module uses only those listed before it (and this one's [`TextError`]).
//! - `charset`: [`Encoding`], the names and data_coding values of the three text encodings
//!   and of 8-bit binary.
//! - [`gsm7`]: the GSM 03.38 default alphabet and extension table, unpacked and packed septets.
//! - [`latin1`]: ISO 8859-1 (SMPP data_coding 3).
//! - [`ucs2`]: UCS-2 as UTF-16BE with surrogate pairs (data_coding 8).
//! - [`binary`]: 8-bit binary data (data_coding 4) as two hex digits per octet.
//! - [`udh`]: user data header parsing and the concatenation IEs.
//! - `count`: units a text takes in an encoding, [`segment::limits`] per part, parts per text.
//! - [`encoding`]: the choice of the cheapest encoding ([`EncodingPreference`]).
//! - [`segment`]: splitting into segments, and counting them for price estimates.
//! - [`decode`]: decoding an incoming short_message by data_coding.
//! - [`reassembly`]: the sans-IO reassembler of multipart messages.

pub mod binary;
mod charset;
mod count;
pub mod decode;
pub mod encoding;
pub mod gsm7;
pub mod latin1;
pub mod reassembly;
pub mod segment;
pub mod ucs2;
pub mod udh;

pub use charset::Encoding;
pub use decode::{
    decode_short_message, decode_short_message_with, Body, Charset, DecodeOptions, DecodedText,
};
pub use encoding::{choose_encoding, EncodingPreference};
pub use reassembly::{
    Complete, Part, Partial, Reassembler, ReassemblyConfig, ReassemblyEvent, ReassemblyKey,
    ReassemblyStats,
};
pub use segment::{
    count_segments, count_segments_behind, encode_message, encode_message_behind, Concat,
    EncodeOptions, EncodedMessage, Limits, Segment, SegmentInfo,
};
pub use udh::{parse_udh, with_ports, write_concat, Udh, UdhError};

/// U+FFFD, written in place of codes that decode to nothing.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Why a text could not be encoded. Always the caller's input (the tenant's text or the
/// options); retrying the same request cannot help, a different encoding or a shorter text can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A character has no representation in the (forced) encoding.
    #[error("character {ch:?} at byte {offset} cannot be represented in {encoding}")]
    Unrepresentable {
        /// The encoding that was asked for.
        encoding: Encoding,
        /// The first character that does not fit.
        ch: char,
        /// Its byte offset in the input `&str`.
        offset: usize,
    },
    /// The information elements every part carries leave no room for the text in a part.
    #[error("a user data header of {octets} octets leaves no room for the text")]
    HeaderTooLong {
        /// Octets of the header a part would carry (UDHL and concatenation IE included).
        octets: usize,
    },
    /// The text needs more segments than allowed (by the options, or 255 by the UDH format).
    #[error("text needs {segments} segments, at most {max} allowed")]
    TooManySegments {
        /// Segments the text needs.
        segments: usize,
        /// The limit that was exceeded.
        max: usize,
    },
}
