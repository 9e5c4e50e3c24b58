//! Counting and splitting a text into SMS segments.
//!
//! | encoding | single part | UDH 8-bit ref (6 octets) | UDH 16-bit ref (7 octets) | SAR TLVs |
//! | --- | --- | --- | --- | --- |
//! | GSM-7 (septets) | 160 | 153 | 152 | 153 |
//! | Latin-1 (octets) | 140 | 134 | 133 | 134 |
//! | UCS-2 (16-bit units) | 70 | 67 | 66 | 67 |
//!
//! With SAR TLVs the parts carry no UDH, so in principle they could hold 160/140/70 each; but
//! the SMSC inserts a UDH when it turns SAR into concatenated SMS on the air interface, so
//! carriers (and every SMPP client we know of) use the 8-bit-reference UDH limits. We do the same.
//!
//! Parts are cut at character boundaries only: an escape pair (GSM-7) or a surrogate pair
//! (UCS-2) is never split, so a part may hold one unit less than the limit. GSM-7 limits count
//! septets whether the bytes are sent unpacked (one per octet, SMPP's usual data_coding 0) or
//! packed.

use std::ops::Range;

use bytes::Bytes;

use super::encoding::{choose, EncodingPreference};
use super::{gsm7, latin1, ucs2, udh, Encoding, TextError};
use crate::smpp::tlv::{tag, Tlv};

/// How the parts of a long message are tied together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Concat {
    /// UDH with IE 0x00 (8-bit reference; its low byte); set esm_class UDHI.
    #[default]
    Udh8,
    /// UDH with IE 0x08 (16-bit reference); set esm_class UDHI.
    Udh16,
    /// SAR TLVs (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum), no UDH.
    Sar,
}

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

/// Units a part can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// When the whole text fits one part (no header).
    pub single: usize,
    /// Per part of a concatenated message.
    pub multi: usize,
}

/// The limits for an encoding and concatenation method (see the module table).
pub const fn limits(encoding: Encoding, concat: Concat) -> Limits {
    let header = match concat {
        Concat::Udh8 | Concat::Sar => udh::CONCAT_8_LEN,
        Concat::Udh16 => udh::CONCAT_16_LEN,
    };
    match encoding {
        Encoding::Gsm7 => Limits {
            single: 160,
            multi: 160 - udh::udh_septets(header),
        },
        Encoding::Latin1 => Limits {
            single: 140,
            multi: 140 - header,
        },
        Encoding::Ucs2 => Limits {
            single: 70,
            multi: (140 - header) / 2,
        },
    }
}

/// What a text costs, for price estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The encoding it would go out in.
    pub encoding: Encoding,
    /// Parts (at least 1: an empty text is one empty SMS).
    pub segments: usize,
    /// Units (septets, octets, UTF-16 units) of the whole text.
    pub units: usize,
    /// Units per part at this segment count (the single or the concatenated limit).
    pub units_per_segment: usize,
    /// Units still free in the last part.
    pub units_left: usize,
}

/// Counts the parts `text` needs, without allocating. Fails only when a forced encoding cannot
/// represent the text; `max_segments` is not checked (compare `segments` yourself).
pub fn count_segments(text: &str, opts: &EncodeOptions) -> Result<SegmentInfo, TextError> {
    let (encoding, units) = choose(text, opts.encoding, opts.concat)?;
    Ok(count_with(text, encoding, units, opts.concat))
}

/// Counts parts for an encoding already chosen, `units` being the text's total in it.
pub(crate) fn count_with(
    text: &str,
    encoding: Encoding,
    units: usize,
    concat: Concat,
) -> SegmentInfo {
    let lim = limits(encoding, concat);
    if units <= lim.single {
        return SegmentInfo {
            encoding,
            segments: 1,
            units,
            units_per_segment: lim.single,
            units_left: lim.single - units,
        };
    }
    let (segments, last) = greedy(text, encoding, lim.multi, |_| ());
    SegmentInfo {
        encoding,
        segments,
        units,
        units_per_segment: lim.multi,
        units_left: lim.multi.saturating_sub(last),
    }
}

/// Walks `text` filling parts of `per_part` units, calling `cut` with the byte offset where each
/// new part starts. Returns (parts, units in the last part).
fn greedy(
    text: &str,
    encoding: Encoding,
    per_part: usize,
    cut: impl FnMut(usize),
) -> (usize, usize) {
    // The text was validated for `encoding`; the fallback 1 is never used.
    if text.is_ascii() {
        // Byte offsets are char offsets; skip UTF-8 decoding.
        let units = text
            .bytes()
            .enumerate()
            .map(|(i, b)| (i, encoding.ascii_units(b).unwrap_or(1)));
        greedy_units(units, per_part, cut)
    } else {
        let units = text
            .char_indices()
            .map(|(i, c)| (i, encoding.char_units(c).unwrap_or(1)));
        greedy_units(units, per_part, cut)
    }
}

fn greedy_units(
    units: impl Iterator<Item = (usize, usize)>,
    per_part: usize,
    mut cut: impl FnMut(usize),
) -> (usize, usize) {
    let mut parts = 1;
    let mut used = 0;
    for (i, u) in units {
        if used + u > per_part {
            cut(i);
            parts += 1;
            used = 0;
        }
        used += u;
    }
    (parts, used)
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
    let (encoding, units) = choose(text, opts.encoding, opts.concat)?;
    let lim = limits(encoding, opts.concat);
    let mut ranges: Vec<Range<usize>> = Vec::new();
    if units <= lim.single {
        ranges.push(0..text.len());
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
        if let (true, Some(wide)) = (multi, udh_kind) {
            udh::write_concat(&mut out, reference, total, number, wide);
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
    fn limits_table() {
        let l = |e, c| {
            let l = limits(e, c);
            (l.single, l.multi)
        };
        assert_eq!(l(Encoding::Gsm7, Concat::Udh8), (160, 153));
        assert_eq!(l(Encoding::Gsm7, Concat::Udh16), (160, 152));
        assert_eq!(l(Encoding::Gsm7, Concat::Sar), (160, 153));
        assert_eq!(l(Encoding::Latin1, Concat::Udh8), (140, 134));
        assert_eq!(l(Encoding::Latin1, Concat::Udh16), (140, 133));
        assert_eq!(l(Encoding::Ucs2, Concat::Udh8), (70, 67));
        assert_eq!(l(Encoding::Ucs2, Concat::Udh16), (70, 66));
        assert_eq!(l(Encoding::Ucs2, Concat::Sar), (70, 67));
    }

    #[test]
    fn empty_text_is_one_part() {
        let m = encode_message("", &EncodeOptions::default()).unwrap();
        assert_eq!(m.segments.len(), 1);
        assert!(m.segments[0].short_message.is_empty());
        let c = count_segments("", &EncodeOptions::default()).unwrap();
        assert_eq!((c.segments, c.units_left), (1, 160));
    }
}
