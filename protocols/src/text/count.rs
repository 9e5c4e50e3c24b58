//! What a text costs in a given encoding: units per character ([`Encoding::units`]), units per
//! part ([`limits`]) and parts per text, for `encoding` to compare encodings and for `segment`
//! to cut the text.
//!
//! Parts are cut at character boundaries only: an escape pair (GSM-7) or a surrogate pair
//! (UCS-2) is never split, so a part may hold one unit less than the limit. GSM-7 limits count
//! septets whether the bytes are sent unpacked (one per octet, SMPP's usual data_coding 0) or
//! packed.

use super::charset::Encoding;
use super::{binary, gsm7, latin1, udh, TextError};

impl Encoding {
    /// Units the ASCII byte `b` takes, or `None` if it does not fit.
    #[inline]
    pub(crate) fn ascii_units(self, b: u8) -> Option<usize> {
        match self {
            Encoding::Gsm7 => gsm7::ascii_septets(b),
            Encoding::Latin1 | Encoding::Ucs2 => Some(1),
            // Half an octet: binary is counted by pairs, in `units`.
            Encoding::Binary => None,
        }
    }

    /// Units (septets, octets or UTF-16 code units) `c` takes, or `None` if it does not fit.
    /// Always `None` for [`Encoding::Binary`]: one hex digit is half an octet, so binary is
    /// counted by [`Encoding::units`] only.
    #[inline]
    pub fn char_units(self, c: char) -> Option<usize> {
        match self {
            Encoding::Gsm7 => gsm7::char_septets(c),
            Encoding::Latin1 => latin1::is_latin1(c).then_some(1),
            Encoding::Ucs2 => Some(c.len_utf16()),
            Encoding::Binary => None,
        }
    }

    /// Units `text` takes, or the first character that does not fit. For
    /// [`Encoding::Binary`], the octets its hex digits stand for.
    pub fn units(self, text: &str) -> Result<usize, TextError> {
        if self == Encoding::Binary {
            return binary::octets(text);
        }
        let mut n = 0;
        for (offset, ch) in text.char_indices() {
            n += self.char_units(ch).ok_or(TextError::Unrepresentable {
                encoding: self,
                ch,
                offset,
            })?;
        }
        Ok(n)
    }
}

/// What one pass over a text learns: units per encoding, `None` where it does not fit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scan {
    /// Septets in GSM-7, if representable.
    pub gsm7: Option<usize>,
    /// Octets in Latin-1, if representable.
    pub latin1: Option<usize>,
    /// UTF-16 code units.
    pub ucs2: usize,
}

/// One pass over `text`, no allocation.
pub(crate) fn scan(text: &str) -> Scan {
    if text.is_ascii() {
        // Every ASCII text is Latin-1 and one UTF-16 unit per byte; only GSM needs a look.
        let mut n = 0usize;
        let mut representable = true;
        for b in text.bytes() {
            match gsm7::ascii_septets(b) {
                Some(k) => n += k,
                None => {
                    representable = false;
                    break;
                }
            }
        }
        let gsm = representable.then_some(n);
        return Scan {
            gsm7: gsm,
            latin1: Some(text.len()),
            ucs2: text.len(),
        };
    }
    let mut gsm = Some(0usize);
    let mut lat = Some(0usize);
    let mut ucs2 = 0usize;
    for c in text.chars() {
        gsm = gsm.and_then(|n| gsm7::char_septets(c).map(|k| n + k));
        lat = lat.and_then(|n| latin1::is_latin1(c).then_some(n + 1));
        ucs2 += c.len_utf16();
    }
    Scan {
        gsm7: gsm,
        latin1: lat,
        ucs2,
    }
}

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

/// Units a part can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// When the whole text fits one part (no header).
    pub single: usize,
    /// Per part of a concatenated message.
    pub multi: usize,
}

/// The limits for an encoding and concatenation method:
///
/// | encoding | single part | UDH 8-bit ref (6 octets) | UDH 16-bit ref (7 octets) | SAR TLVs |
/// | --- | --- | --- | --- | --- |
/// | GSM-7 (septets) | 160 | 153 | 152 | 153 |
/// | Latin-1 (octets) | 140 | 134 | 133 | 134 |
/// | UCS-2 (16-bit units) | 70 | 67 | 66 | 67 |
/// | binary (octets) | 140 | 134 | 133 | 134 |
///
/// With SAR TLVs the parts carry no UDH, so in principle they could hold 160/140/70 each; but
/// the SMSC inserts a UDH when it turns SAR into concatenated SMS on the air interface, so
/// carriers (and every SMPP client we know of) use the 8-bit-reference UDH limits. We do the same.
pub const fn limits(encoding: Encoding, concat: Concat) -> Limits {
    limits_behind(encoding, concat, 0)
}

/// The limits when every part also carries `ies` octets of other information elements (a
/// port-addressing IE, say) in its user data header: a single part holds a UDH of `ies` + 1
/// octets (none when `ies` is 0), a concatenated one the concatenation IE as well. A header
/// that leaves no room gives 0.
pub const fn limits_behind(encoding: Encoding, concat: Concat, ies: usize) -> Limits {
    let single_header = if ies == 0 { 0 } else { ies + 1 };
    let multi_header = ies
        + match concat {
            Concat::Udh8 | Concat::Sar => udh::CONCAT_8_LEN,
            Concat::Udh16 => udh::CONCAT_16_LEN,
        };
    let (single_room, multi_room) = (
        140usize.saturating_sub(single_header),
        140usize.saturating_sub(multi_header),
    );
    match encoding {
        Encoding::Gsm7 => Limits {
            single: 160usize.saturating_sub(udh::udh_septets(single_header)),
            multi: 160usize.saturating_sub(udh::udh_septets(multi_header)),
        },
        Encoding::Latin1 | Encoding::Binary => Limits {
            single: single_room,
            multi: multi_room,
        },
        Encoding::Ucs2 => Limits {
            single: single_room / 2,
            multi: multi_room / 2,
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

/// Counts parts for an encoding already chosen, `units` being the text's total in it.
pub(crate) fn count_with(
    text: &str,
    encoding: Encoding,
    units: usize,
    concat: Concat,
) -> SegmentInfo {
    count_behind(text, encoding, units, limits(encoding, concat))
}

/// Counts parts with the limits `lim` (see [`limits_behind`]); `lim.multi` is at least 1 when
/// the text does not fit a single part.
pub(crate) fn count_behind(
    text: &str,
    encoding: Encoding,
    units: usize,
    lim: Limits,
) -> SegmentInfo {
    if units <= lim.single {
        return SegmentInfo {
            encoding,
            segments: 1,
            units,
            units_per_segment: lim.single,
            units_left: lim.single - units,
        };
    }
    let (segments, last) = if encoding == Encoding::Binary {
        // Every octet is one unit: full parts, the rest in the last one.
        let segments = units.div_ceil(lim.multi);
        (segments, units - (segments - 1) * lim.multi)
    } else {
        greedy(text, encoding, lim.multi, |_| ())
    };
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
pub(crate) fn greedy(
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
        assert_eq!(l(Encoding::Binary, Concat::Udh8), (140, 134));
        assert_eq!(l(Encoding::Binary, Concat::Udh16), (140, 133));
    }
}
