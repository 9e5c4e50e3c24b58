//! Splitting a text into SMS segments ([`encode_message`]) and counting them for a price
//! estimate ([`count_segments`]). The encoding is chosen by [`super::encoding`]; the units per
//! part ([`limits`]) and where the text is cut come from `count`.

use std::ops::Range;

use bytes::Bytes;

pub use super::count::{limits, limits_behind, Concat, Limits, SegmentInfo};

use super::charset::Encoding;
use super::count::{count_behind, greedy};
use super::encoding::{choose, EncodingPreference};
use super::{binary, gsm7, latin1, ucs2, udh, TextError};
use crate::smpp::tlv::{tag, Tlv};

/// Options for [`encode_message`] and [`count_segments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Which encoding (auto or forced).
    pub encoding: EncodingPreference,
    /// How parts are tied together when the text needs more than one.
    pub concat: Concat,
    /// The concatenation reference, chosen by the caller (per destination counter or random):
    /// nothing here is random. With [`Concat::Udh8`] only the low byte is used.
    pub reference: u16,
    /// Send GSM-7 packed (7 bits per character) instead of one septet per octet. Only for
    /// carriers configured for it; SMPP data_coding 0 is normally unpacked.
    pub gsm7_packed: bool,
    /// Refuse texts needing more parts than this (the UDH format caps it at 255).
    pub max_segments: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            encoding: EncodingPreference::Auto,
            concat: Concat::Udh8,
            reference: 0,
            gsm7_packed: false,
            max_segments: 255,
        }
    }
}

/// Counts the parts `text` needs, without allocating. Fails only when a forced encoding cannot
/// represent the text; `max_segments` is not checked (compare `segments` yourself).
pub fn count_segments(text: &str, opts: &EncodeOptions) -> Result<SegmentInfo, TextError> {
    count_segments_behind(text, 0, opts)
}

/// [`count_segments`] for parts that each carry `ies` octets of information elements besides
/// the concatenation IE (see [`encode_message_behind`]). Fails as well when the text needs
/// more than one part and such a header leaves no room in one.
pub fn count_segments_behind(
    text: &str,
    ies: usize,
    opts: &EncodeOptions,
) -> Result<SegmentInfo, TextError> {
    let (encoding, units) = choose(text, opts.encoding, opts.concat)?;
    let lim = room(encoding, units, ies, opts.concat)?;
    Ok(count_behind(text, encoding, units, lim))
}

/// The limits for parts carrying `ies` octets of IEs, or [`TextError::HeaderTooLong`] when
/// `units` need a part that has no room left.
fn room(encoding: Encoding, units: usize, ies: usize, concat: Concat) -> Result<Limits, TextError> {
    if ies > 0 && ies + 1 > 140 {
        return Err(TextError::HeaderTooLong { octets: ies + 1 });
    }
    let lim = limits_behind(encoding, concat, ies);
    // A concatenated part's header is the longer one: with no room there, the text fits
    // nowhere unless it fits a single part.
    if units > lim.single && lim.multi == 0 {
        let header = ies + limits_header(concat);
        return Err(TextError::HeaderTooLong { octets: header });
    }
    Ok(lim)
}

/// Octets of the concatenation UDH (UDHL included) the limits assume for `concat`.
fn limits_header(concat: Concat) -> usize {
    match concat {
        Concat::Udh8 | Concat::Sar => udh::CONCAT_8_LEN,
        Concat::Udh16 => udh::CONCAT_16_LEN,
    }
}

/// One part, ready to go into a submit_sm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// 1-based part number.
    pub number: u8,
    /// Parts in the message.
    pub total: u8,
    /// The concatenation reference as sent (masked to 8 bits for [`Concat::Udh8`]).
    pub reference: u16,
    /// The bytes for short_message: the UDH (when [`Concat::Udh8`]/[`Concat::Udh16`] and more
    /// than one part) followed by the encoded text.
    pub short_message: Bytes,
    /// Octets of UDH at the start of `short_message` (0 when none): set esm_class UDHI if > 0.
    pub udh_len: usize,
    /// Units of text in this part.
    pub units: usize,
    /// The byte range of the original `&str` this part carries (for logs and tests).
    pub text_range: Range<usize>,
}

impl Segment {
    /// True when `short_message` starts with a UDH (set esm_class bit 0x40).
    pub fn has_udh(&self) -> bool {
        self.udh_len > 0
    }

    /// The encoded text, after any UDH.
    pub fn payload(&self) -> &[u8] {
        self.short_message.get(self.udh_len..).unwrap_or_default()
    }

    /// The three SAR TLVs for this part (only meaningful with [`Concat::Sar`] and total > 1).
    pub fn sar_tlvs(&self) -> [Tlv; 3] {
        [
            Tlv::u16(tag::SAR_MSG_REF_NUM, self.reference),
            Tlv::u8(tag::SAR_TOTAL_SEGMENTS, self.total),
            Tlv::u8(tag::SAR_SEGMENT_SEQNUM, self.number),
        ]
    }
}

/// A text encoded and split: everything needed to build its submit_sm PDUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedMessage {
    /// The encoding chosen.
    pub encoding: Encoding,
    /// The SMPP data_coding for every part.
    pub data_coding: u8,
    /// How parts are tied together (irrelevant when there is one part).
    pub concat: Concat,
    /// Units of the whole text.
    pub units: usize,
    /// The parts, in order; at least one.
    pub segments: Vec<Segment>,
}

impl EncodedMessage {
    /// True when the parts need SAR TLVs (SAR mode and more than one part).
    pub fn needs_sar(&self) -> bool {
        self.concat == Concat::Sar && self.segments.len() > 1
    }
}

/// Encodes `text` and splits it into parts.
pub fn encode_message(text: &str, opts: &EncodeOptions) -> Result<EncodedMessage, TextError> {
    encode_message_behind(text, &[], opts)
}

/// Encodes `text` and splits it into parts that each carry the information elements `ies`
/// (their octets as in a UDH, without the UDHL: an application port IE for a WAP push, a
/// SIM toolkit IE) in their user data header, verbatim; when the text needs more than one part,
/// the concatenation IE comes first and `ies` after it. With [`Concat::Sar`] the parts carry
/// `ies` alone in their UDH. Empty `ies` is [`encode_message`].
pub fn encode_message_behind(
    text: &str,
    ies: &[u8],
    opts: &EncodeOptions,
) -> Result<EncodedMessage, TextError> {
    let (encoding, units) = choose(text, opts.encoding, opts.concat)?;
    let lim = room(encoding, units, ies.len(), opts.concat)?;
    let mut ranges: Vec<Range<usize>> = Vec::new();
    if units <= lim.single {
        ranges.push(0..text.len());
    } else if encoding == Encoding::Binary {
        // Two hex digits per octet, full parts: every cut is on an octet.
        let step = lim.multi * 2;
        ranges.extend(
            (0..text.len())
                .step_by(step)
                .map(|at| at..text.len().min(at + step)),
        );
    } else {
        let mut start = 0;
        greedy(text, encoding, lim.multi, |at| {
            ranges.push(start..at);
            start = at;
        });
        ranges.push(start..text.len());
    }
    let max = opts.max_segments.min(255);
    if ranges.len() > max {
        return Err(TextError::TooManySegments {
            segments: ranges.len(),
            max,
        });
    }
    // `ranges.len()` <= 255 was just checked.
    let total = ranges.len() as u8;
    let multi = total > 1;
    let (udh_kind, reference) = match opts.concat {
        Concat::Udh8 => (Some(false), opts.reference & 0xFF),
        Concat::Udh16 => (Some(true), opts.reference),
        Concat::Sar => (None, opts.reference),
    };
    let mut segments = Vec::with_capacity(ranges.len());
    for (i, range) in ranges.into_iter().enumerate() {
        let part = text.get(range.clone()).unwrap_or_default();
        let number = (i + 1) as u8;
        let mut out = Vec::with_capacity(160);
        match (multi, udh_kind) {
            (true, Some(wide)) => {
                udh::write_concat(&mut out, reference, total, number, wide);
                if !ies.is_empty() {
                    out.extend_from_slice(ies);
                    // The UDHL: the concatenation IE and `ies`, which fit (checked by `room`).
                    let udhl = (out.len() - 1).min(255) as u8;
                    if let Some(first) = out.first_mut() {
                        *first = udhl;
                    }
                }
            }
            _ if !ies.is_empty() => {
                out.push(ies.len().min(255) as u8);
                out.extend_from_slice(ies);
            }
            _ => {}
        }
        let udh_len = out.len();
        let part_units = match encoding {
            Encoding::Gsm7 if opts.gsm7_packed => {
                let septets = gsm7::encode_unpacked(part)?;
                gsm7::pack_into(&septets, udh::fill_bits(udh_len), &mut out);
                septets.len()
            }
            Encoding::Gsm7 => {
                gsm7::encode_unpacked_into(part, &mut out)?;
                out.len() - udh_len
            }
            Encoding::Latin1 => {
                latin1::encode_into(part, &mut out)?;
                out.len() - udh_len
            }
            Encoding::Ucs2 => {
                ucs2::encode_into(part, &mut out);
                (out.len() - udh_len) / 2
            }
            Encoding::Binary => {
                binary::decode_into(part, &mut out)?;
                out.len() - udh_len
            }
        };
        segments.push(Segment {
            number,
            total,
            reference: if multi { reference } else { 0 },
            short_message: Bytes::from(out),
            udh_len,
            units: part_units,
            text_range: range,
        });
    }
    Ok(EncodedMessage {
        encoding,
        data_coding: encoding.data_coding(),
        concat: opts.concat,
        units,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_one_part() {
        let m = encode_message("", &EncodeOptions::default()).unwrap();
        assert_eq!(m.segments.len(), 1);
        assert!(m.segments[0].short_message.is_empty());
        let c = count_segments("", &EncodeOptions::default()).unwrap();
        assert_eq!((c.segments, c.units_left), (1, 160));
    }

    #[test]
    fn binary_goes_out_as_its_octets_140_per_part() {
        let binary = EncodeOptions {
            encoding: EncodingPreference::Force(Encoding::Binary),
            reference: 7,
            ..EncodeOptions::default()
        };
        let one = "0b".repeat(140);
        let m = encode_message(&one, &binary).unwrap();
        assert_eq!((m.segments.len(), m.data_coding), (1, 4));
        assert_eq!(&m.segments[0].short_message[..], &[0x0b; 140][..]);
        // 141 octets: 134 behind a 6-octet UDH, then 7.
        let bytes: Vec<u8> = (0..141u8).collect();
        let hex = super::binary::encode(&bytes);
        let m = encode_message(&hex, &binary).unwrap();
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[0].payload(), &bytes[..134]);
        assert_eq!(m.segments[1].payload(), &bytes[134..]);
        assert_eq!(&m.segments[1].short_message[..6], &[5, 0, 3, 7, 2, 2]);
        let c = count_segments(&hex, &binary).unwrap();
        assert_eq!((c.segments, c.units, c.units_left), (2, 141, 127));
        assert!(count_segments("abc", &binary).is_err());
        assert!(encode_message("zz", &binary).is_err());
    }

    #[test]
    fn ies_go_in_every_part_after_the_concatenation_ie() {
        let binary = EncodeOptions {
            encoding: EncodingPreference::Force(Encoding::Binary),
            reference: 0x2A,
            ..EncodeOptions::default()
        };
        let ports = [0x05, 4, 0x0B, 0x84, 0x23, 0xF0];
        // One part: a 7-octet UDH, 133 octets behind it.
        let one = super::binary::encode(&[0xAB; 133]);
        let m = encode_message_behind(&one, &ports, &binary).unwrap();
        assert_eq!(m.segments.len(), 1);
        assert_eq!(m.segments[0].udh_len, 7);
        assert_eq!(
            &m.segments[0].short_message[..7],
            &[6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]
        );
        assert_eq!(m.segments[0].payload(), &[0xAB; 133][..]);
        let c = count_segments_behind(&one, ports.len(), &binary).unwrap();
        assert_eq!((c.segments, c.units_left), (1, 0));
        // 134 octets: two parts of 12-octet UDHs (concatenation, then ports), 128 + 6.
        let bytes: Vec<u8> = (0..134u8).collect();
        let two = super::binary::encode(&bytes);
        let m = encode_message_behind(&two, &ports, &binary).unwrap();
        assert_eq!(m.segments.len(), 2);
        for (i, seg) in m.segments.iter().enumerate() {
            let mut udh = vec![11, 0, 3, 0x2A, 2, i as u8 + 1];
            udh.extend_from_slice(&ports);
            assert_eq!(&seg.short_message[..seg.udh_len], &udh[..]);
            let (parsed, _) = super::udh::parse_udh(&seg.short_message).unwrap();
            assert_eq!(parsed.ports.map(|p| (p.dest, p.source)), Some((2948, 9200)));
        }
        assert_eq!(m.segments[0].payload(), &bytes[..128]);
        assert_eq!(m.segments[1].payload(), &bytes[128..]);
        let c = count_segments_behind(&two, ports.len(), &binary).unwrap();
        assert_eq!((c.segments, c.units_per_segment), (2, 128));
        // SAR: the IEs alone in each part's UDH.
        let sar = EncodeOptions {
            concat: Concat::Sar,
            ..binary
        };
        let m = encode_message_behind(&two, &ports, &sar).unwrap();
        assert_eq!(
            &m.segments[1].short_message[..7],
            &[6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]
        );
        // A header that leaves no room.
        let huge = [0x70; 134];
        assert!(matches!(
            encode_message_behind(&two, &huge, &binary),
            Err(TextError::HeaderTooLong { .. })
        ));
        assert!(matches!(
            count_segments_behind("00", 139, &binary),
            Err(TextError::HeaderTooLong { octets: 145 })
        ));
        assert!(count_segments_behind("00", 138, &binary).is_ok());
        // No IEs: the same as encode_message.
        assert_eq!(
            encode_message_behind(&two, &[], &binary).unwrap(),
            encode_message(&two, &binary).unwrap()
        );
    }
}
