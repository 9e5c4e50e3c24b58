//! Binary SMS: 8-bit data with its data_coding and user data header, as tenants send it (the
//! HTTP API and the SMPP server both build it with [`binary_sms`]) and as handsets send it
//! (an MO's [`BinaryCoding`]).
//!
//! The octets travel as lowercase hex in a message's `body` (see
//! [`switchyard_protocols::text::binary`]). A user data header is kept apart, UDHL included:
//! with a concatenation IE it makes the message one part the tenant cut itself, sent as exactly
//! one segment behind it; without one its IEs (application ports, SIM toolkit…) go in every
//! segment, after the concatenation IE the gateway adds when the octets need more than one.

use serde::{Deserialize, Serialize};
use switchyard_protocols::text::decode::{charset_for, DecodeOptions};
use switchyard_protocols::text::{
    binary, count_segments_behind, parse_udh, Charset, Concat, EncodeOptions, Encoding,
    EncodingPreference, TextError,
};

/// The data_coding a binary message goes out with when none is asked for: 8-bit data, no
/// message class.
pub const DEFAULT_BINARY_DATA_CODING: u8 = 0x04;

/// How a binary SMS was coded besides its octets: what a handset's (MO) binary message keeps
/// so it can be passed on as it came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryCoding {
    /// The SMPP data_coding it came with (4, 0xF5, …).
    pub data_coding: u8,
    /// Its user data header other than concatenation (UDHL included), e.g. application
    /// ports; `None` when it had none.
    pub udh: Option<Vec<u8>>,
}

/// A binary SMS checked for the accept pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinarySms {
    /// The octets, two lowercase hex digits each.
    pub body: String,
    /// The user data header (UDHL included): a part's, or IEs every segment carries.
    pub udh: Option<Vec<u8>>,
    /// The data_coding to send as is; `None` for [`DEFAULT_BINARY_DATA_CODING`], which is
    /// [`Encoding::Binary`]'s own.
    pub data_coding: Option<u8>,
    /// Segments it needs.
    pub segments: usize,
}

/// Why a binary SMS cannot be sent. Always the sender's input: the same request cannot
/// succeed again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BinaryError {
    /// The octets are not an even number of hex digits.
    #[error("the body is not hex octets: {0:?} at offset {1} (two hex digits per octet)")]
    NotHex(char, usize),
    /// The data_coding is not an 8-bit one.
    #[error("data_coding 0x{0:02X} is not 8-bit binary (2, 4, 0x14–0x17, 0xF4–0xF7, …)")]
    DataCoding(u8),
    /// The user data header does not read, or has octets after its last IE.
    #[error("the user data header is malformed: {0}")]
    Udh(String),
    /// The header leaves no room for the octets in a segment.
    #[error("a user data header of {0} octets leaves no room for the body")]
    HeaderTooLong(usize),
    /// A part cut by the sender (its UDH has a concatenation IE) does not fit one segment.
    #[error("a part of {0} octets with its user data header does not fit one SMS (140)")]
    PartTooLong(usize),
    /// More segments than allowed.
    #[error("the body needs {segments} segments; at most {max} are allowed")]
    TooManySegments {
        /// Segments needed.
        segments: usize,
        /// The limit.
        max: usize,
    },
    /// Neither octets nor a header.
    #[error("empty message")]
    Empty,
}

/// True for the 8-bit data_coding values: 2, 4, the general group's 8-bit ones (0x14–0x17
/// and their automatic-deletion twins), 0xF4–0xF7 and 0xFC–0xFF.
pub fn is_binary_data_coding(data_coding: u8) -> bool {
    charset_for(data_coding, &DecodeOptions::default(), &[]) == Charset::Binary
}

/// Checks a binary SMS: the octets as hex, the user data header (UDHL included) if any, the
/// data_coding, and the segments it needs against `max_segments` (140 octets in one, or the
/// concatenated parts' room behind the concatenation IE and the header's IEs).
pub fn binary_sms(
    hex: &str,
    udh: Option<Vec<u8>>,
    data_coding: u8,
    max_segments: usize,
) -> Result<BinarySms, BinaryError> {
    if !is_binary_data_coding(data_coding) {
        return Err(BinaryError::DataCoding(data_coding));
    }
    let octets = binary::octets(hex).map_err(|e| match e {
        TextError::Unrepresentable { ch, offset, .. } => BinaryError::NotHex(ch, offset),
        other => BinaryError::Udh(other.to_string()),
    })?;
    if octets == 0 && udh.is_none() {
        return Err(BinaryError::Empty);
    }
    let part = match &udh {
        None => false,
        Some(header) => {
            let (parsed, rest) = parse_udh(header).map_err(|e| BinaryError::Udh(e.to_string()))?;
            if !rest.is_empty() {
                return Err(BinaryError::Udh(format!(
                    "its length octet says {} octets, {} follow",
                    header.len() - rest.len() - 1,
                    header.len() - 1
                )));
            }
            parsed.concat.is_some()
        }
    };
    let header_len = udh.as_ref().map_or(0, Vec::len);
    let segments = if part {
        if octets + header_len > 140 {
            return Err(BinaryError::PartTooLong(octets + header_len));
        }
        1
    } else {
        let opts = EncodeOptions {
            encoding: EncodingPreference::Force(Encoding::Binary),
            concat: Concat::Udh8,
            ..EncodeOptions::default()
        };
        let ies = header_len.saturating_sub(1);
        match count_segments_behind(hex, ies, &opts) {
            Ok(info) => info.segments,
            Err(TextError::HeaderTooLong { octets }) => {
                return Err(BinaryError::HeaderTooLong(octets))
            }
            Err(e) => return Err(BinaryError::Udh(e.to_string())),
        }
    };
    if segments > max_segments {
        return Err(BinaryError::TooManySegments {
            segments,
            max: max_segments,
        });
    }
    Ok(BinarySms {
        body: hex.to_ascii_lowercase(),
        udh,
        data_coding: (data_coding != DEFAULT_BINARY_DATA_CODING).then_some(data_coding),
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_codings() {
        for dc in [
            2, 4, 0x14, 0x15, 0x16, 0x17, 0xF4, 0xF5, 0xF6, 0xF7, 0xFC, 0xFF,
        ] {
            assert!(is_binary_data_coding(dc), "{dc:#x}");
        }
        for dc in [0, 1, 3, 5, 6, 7, 8, 0x10, 0x18, 0x24, 0xF0, 0xF1] {
            assert!(!is_binary_data_coding(dc), "{dc:#x}");
        }
    }

    #[test]
    fn whole_parts_and_refusals() {
        let ok = binary_sms("C0DE", None, 4, 10).unwrap();
        assert_eq!(
            ok,
            BinarySms {
                body: "c0de".into(),
                udh: None,
                data_coding: None,
                segments: 1
            }
        );
        let ports = vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0];
        // 133 octets behind the ports fit one SMS, 134 take two (128 + 6).
        let one = binary_sms(&"ab".repeat(133), Some(ports.clone()), 0xF5, 10).unwrap();
        assert_eq!((one.segments, one.data_coding), (1, Some(0xF5)));
        let two = binary_sms(&"ab".repeat(134), Some(ports.clone()), 4, 10).unwrap();
        assert_eq!(two.segments, 2);
        assert_eq!(
            binary_sms(&"ab".repeat(1281), Some(ports), 4, 10).unwrap_err(),
            BinaryError::TooManySegments {
                segments: 11,
                max: 10
            }
        );
        // A part: one segment, or refused.
        let part = vec![5, 0, 3, 7, 2, 1];
        assert_eq!(
            binary_sms(&"00".repeat(134), Some(part.clone()), 4, 10)
                .unwrap()
                .segments,
            1
        );
        assert_eq!(
            binary_sms(&"00".repeat(135), Some(part), 4, 10).unwrap_err(),
            BinaryError::PartTooLong(141)
        );
        assert_eq!(
            binary_sms("abc", None, 4, 10).unwrap_err(),
            BinaryError::NotHex('c', 2)
        );
        assert_eq!(
            binary_sms("zz", None, 4, 10).unwrap_err(),
            BinaryError::NotHex('z', 0)
        );
        assert_eq!(
            binary_sms("00", None, 0, 10).unwrap_err(),
            BinaryError::DataCoding(0)
        );
        assert_eq!(binary_sms("", None, 4, 10).unwrap_err(), BinaryError::Empty);
        assert!(matches!(
            binary_sms("00", Some(vec![3, 5, 4]), 4, 10),
            Err(BinaryError::Udh(_))
        ));
        assert!(matches!(
            binary_sms("00", Some(vec![2, 0x70, 0, 9]), 4, 10),
            Err(BinaryError::Udh(_))
        ));
        let mut long = vec![139, 0x70, 137];
        long.extend([0; 137]);
        assert_eq!(
            binary_sms("0000", Some(long), 4, 10).unwrap_err(),
            BinaryError::HeaderTooLong(145)
        );
    }
}
