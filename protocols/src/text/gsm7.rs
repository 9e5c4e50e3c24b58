//! The GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) and its extension table.
//!
//! Two representations:
//! - **unpacked**: one septet per octet (high bit clear). This is what SMPP data_coding 0
//!   normally carries; the SMSC packs it for the air interface.
//! - **packed**: 7-bit packing, LSB first (TS 23.038 §6.1.2.1). After a user data header the
//!   septets start at the next septet boundary, so `fill_bits` zero bits come first
//!   (see [`super::udh::fill_bits`]).
//!
//! Characters in the extension table take two septets: [`ESCAPE`] and the code.
//!
//! Decoding is lenient: an octet ≥ 0x80 in unpacked data becomes U+FFFD; an escape followed by a
//! code the extension table does not define decodes as the basic-table character for that code
//! (the fallback TS 23.038 asks of receivers); escape-escape decodes as a space (the code is
//! reserved for a further extension table, to be shown as a space); a dangling escape at the end
//! becomes U+FFFD.

use super::charset::Encoding;
use super::{TextError, REPLACEMENT};

/// The escape to the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The basic table, indexed by septet. Index 0x1B is the escape and never decoded from here.
const BASIC_TABLE: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The basic table as a static, so lookups index memory instead of copying the constant.
static BASIC: [char; 128] = BASIC_TABLE;

/// The extension table: (code after escape, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Marks an extension-table code in [`ASCII_TO_GSM`].
const EXT_FLAG: u8 = 0x80;
/// Marks an ASCII character with no GSM representation in [`ASCII_TO_GSM`].
const NONE: u8 = 0xFF;

/// ASCII → GSM, built at compile time: the septet, `EXT_FLAG | code` for extension characters,
/// or `NONE`. The fast path for the common all-ASCII text.
static ASCII_TO_GSM: [u8; 128] = build_ascii_table();

const fn build_ascii_table() -> [u8; 128] {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < 128 {
        let c = BASIC_TABLE[i] as u32;
        if i != ESCAPE as usize && c < 128 {
            table[c as usize] = i as u8;
        }
        i += 1;
    }
    let mut j = 0;
    while j < EXTENSION.len() {
        let (code, c) = EXTENSION[j];
        if (c as u32) < 128 {
            table[c as usize] = EXT_FLAG | code;
        }
        j += 1;
    }
    table
}

/// How one character is written in GSM 7-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gsm7Char {
    /// One septet from the basic table.
    Basic(u8),
    /// Two septets: [`ESCAPE`] and this code from the extension table.
    Extended(u8),
}

impl Gsm7Char {
    /// Septets this character takes: 1 or 2.
    pub const fn septets(self) -> usize {
        match self {
            Gsm7Char::Basic(_) => 1,
            Gsm7Char::Extended(_) => 2,
        }
    }
}

/// The GSM 7-bit form of `c`, if it has one.
#[inline]
pub fn encode_char(c: char) -> Option<Gsm7Char> {
    if c.is_ascii() {
        // `c` < 128, so the index is in bounds.
        let v = ASCII_TO_GSM.get(c as usize).copied().unwrap_or(NONE);
        return match v {
            NONE => None,
            v if v & EXT_FLAG != 0 => Some(Gsm7Char::Extended(v & !EXT_FLAG)),
            v => Some(Gsm7Char::Basic(v)),
        };
    }
    let basic = match c {
        '£' => 0x01,
        '¥' => 0x03,
        'è' => 0x04,
        'é' => 0x05,
        'ù' => 0x06,
        'ì' => 0x07,
        'ò' => 0x08,
        'Ç' => 0x09,
        'Ø' => 0x0B,
        'ø' => 0x0C,
        'Å' => 0x0E,
        'å' => 0x0F,
        'Δ' => 0x10,
        'Φ' => 0x12,
        'Γ' => 0x13,
        'Λ' => 0x14,
        'Ω' => 0x15,
        'Π' => 0x16,
        'Ψ' => 0x17,
        'Σ' => 0x18,
        'Θ' => 0x19,
        'Ξ' => 0x1A,
        'Æ' => 0x1C,
        'æ' => 0x1D,
        'ß' => 0x1E,
        'É' => 0x1F,
        '¤' => 0x24,
        '¡' => 0x40,
        'Ä' => 0x5B,
        'Ö' => 0x5C,
        'Ñ' => 0x5D,
        'Ü' => 0x5E,
        '§' => 0x5F,
        '¿' => 0x60,
        'ä' => 0x7B,
        'ö' => 0x7C,
        'ñ' => 0x7D,
        'ü' => 0x7E,
        'à' => 0x7F,
        '€' => return Some(Gsm7Char::Extended(0x65)),
        _ => return None,
    };
    Some(Gsm7Char::Basic(basic))
}

/// Septets per ASCII character: 1, 2 (extension table) or 0 (not representable).
static ASCII_SEPTETS: [u8; 128] = build_septet_table();

const fn build_septet_table() -> [u8; 128] {
    let gsm = build_ascii_table();
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = match gsm[i] {
            NONE => 0,
            v if v & EXT_FLAG != 0 => 2,
            _ => 1,
        };
        i += 1;
    }
    table
}

/// Septets the ASCII byte `b` takes (1 or 2), or `None` when it has no representation or is
/// not ASCII. The hot path of counting.
#[inline]
pub fn ascii_septets(b: u8) -> Option<usize> {
    match ASCII_SEPTETS.get(usize::from(b)) {
        Some(&n) if n > 0 => Some(usize::from(n)),
        _ => None,
    }
}

/// Septets `c` takes in GSM 7-bit (1 or 2), or `None` when it has no representation.
#[inline]
pub fn char_septets(c: char) -> Option<usize> {
    if c.is_ascii() {
        return ascii_septets(c as u8);
    }
    encode_char(c).map(Gsm7Char::septets)
}

/// True when every character of `text` is in the default alphabet or its extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| encode_char(c).is_some())
}

/// Septets `text` takes (escape pairs count 2), or the first character that does not fit.
pub fn septet_len(text: &str) -> Result<usize, TextError> {
    let mut n = 0;
    for (offset, ch) in text.char_indices() {
        n += char_septets(ch).ok_or(TextError::Unrepresentable {
            encoding: Encoding::Gsm7,
            ch,
            offset,
        })?;
    }
    Ok(n)
}

/// Appends `text` as unpacked septets (one per octet) to `out`. On error `out` may hold a prefix.
pub fn encode_unpacked_into(text: &str, out: &mut Vec<u8>) -> Result<(), TextError> {
    out.reserve(text.len());
    for (offset, ch) in text.char_indices() {
        match encode_char(ch) {
            Some(Gsm7Char::Basic(s)) => out.push(s),
            Some(Gsm7Char::Extended(s)) => out.extend_from_slice(&[ESCAPE, s]),
            None => {
                return Err(TextError::Unrepresentable {
                    encoding: Encoding::Gsm7,
                    ch,
                    offset,
                })
            }
        }
    }
    Ok(())
}

/// `text` as unpacked septets (one per octet).
pub fn encode_unpacked(text: &str) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(text.len());
    encode_unpacked_into(text, &mut out)?;
    Ok(out)
}

/// `text` packed 7-bit, after `fill_bits` zero bits (0..=6; see [`super::udh::fill_bits`]).
pub fn encode_packed(text: &str, fill_bits: u8) -> Result<Vec<u8>, TextError> {
    let septets = encode_unpacked(text)?;
    let mut out = Vec::with_capacity(packed_len(septets.len(), fill_bits));
    pack_into(&septets, fill_bits, &mut out);
    Ok(out)
}

/// Octets that `septets` septets take when packed after `fill_bits` fill bits.
pub const fn packed_len(septets: usize, fill_bits: u8) -> usize {
    if septets == 0 {
        return 0;
    }
    (septets * 7 + (fill_bits % 8) as usize).div_ceil(8)
}

/// Packs septets (their low 7 bits) after `fill_bits` zero bits (0..=7), appending to `out`.
///
/// When the last octet would have 7 spare bits, they hold a CR (0x0D), as TS 23.038 §6.1.2.3.1
/// asks, so a receiver that counts septets from the octet length does not see a stray `@`.
pub fn pack_into(septets: &[u8], fill_bits: u8, out: &mut Vec<u8>) {
    if septets.is_empty() {
        return;
    }
    out.reserve(packed_len(septets.len(), fill_bits));
    let mut acc: u32 = 0;
    let mut bits: u32 = u32::from(fill_bits % 8);
    for &s in septets {
        acc |= u32::from(s & 0x7F) << bits;
        bits += 7;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        if bits == 1 {
            acc |= 0x0D << 1;
        }
        out.push(acc as u8);
    }
}

/// Unpacks exactly `count` septets (fewer if `octets` runs out) after `fill_bits` fill bits.
/// Use this when the septet count is known (a TPDU's UDL).
pub fn unpack(octets: &[u8], fill_bits: u8, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count.min(octets.len() * 8 / 7));
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut skip: u32 = u32::from(fill_bits % 8);
    for &o in octets {
        acc |= u32::from(o) << bits;
        bits += 8;
        if skip > 0 {
            acc >>= skip;
            bits -= skip;
            skip = 0;
        }
        while bits >= 7 {
            if out.len() == count {
                return out;
            }
            out.push((acc & 0x7F) as u8);
            acc >>= 7;
            bits -= 7;
        }
    }
    out
}

/// Unpacks every whole septet of `octets` after `fill_bits` fill bits, for when only the octet
/// length is known (SMPP's sm_length).
///
/// When the septets fill the octets exactly and the last is a CR, that CR is dropped as the
/// padding [`pack_into`] and TS 23.038 §6.1.2.3.1 write. (The spec accepts the ambiguity: a sender
/// that means a final CR on an octet boundary adds a second one.)
pub fn unpack_all(octets: &[u8], fill_bits: u8) -> Vec<u8> {
    let bits = (octets.len() * 8).saturating_sub(usize::from(fill_bits % 8));
    let mut out = unpack(octets, fill_bits, bits / 7);
    if bits % 7 == 0 && out.last() == Some(&0x0D) {
        out.pop();
    }
    out
}

/// Decodes one basic-table septet (U+FFFD for values ≥ 0x80).
#[inline]
fn decode_basic(s: u8) -> char {
    BASIC.get(usize::from(s)).copied().unwrap_or(REPLACEMENT)
}

/// Decodes the code after an escape.
#[inline]
fn decode_extended(s: u8) -> char {
    match s {
        0x0A => '\u{0C}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        ESCAPE => ' ',
        other => decode_basic(other),
    }
}

/// Decodes unpacked septets (one per octet), appending to `out`. Never fails; see the module
/// doc for what malformed input becomes.
pub fn decode_unpacked_into(septets: &[u8], out: &mut String) {
    out.reserve(septets.len());
    let mut it = septets.iter();
    while let Some(&s) = it.next() {
        if s == ESCAPE {
            match it.next() {
                Some(&next) => out.push(decode_extended(next)),
                None => out.push(REPLACEMENT),
            }
        } else {
            out.push(decode_basic(s));
        }
    }
}

/// Decodes unpacked septets (one per octet).
pub fn decode_unpacked(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    decode_unpacked_into(septets, &mut out);
    out
}

/// Decodes packed septets after `fill_bits` fill bits, the count taken from the octet length
/// (see [`unpack_all`]).
pub fn decode_packed(octets: &[u8], fill_bits: u8) -> String {
    decode_unpacked(&unpack_all(octets, fill_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_every_code() {
        for s in 0u8..128 {
            if s == ESCAPE {
                continue;
            }
            let c = decode_basic(s);
            assert_eq!(encode_char(c), Some(Gsm7Char::Basic(s)), "{s:#x} {c:?}");
        }
        for (code, c) in EXTENSION {
            assert_eq!(encode_char(c), Some(Gsm7Char::Extended(code)));
            assert_eq!(decode_extended(code), c);
        }
    }

    #[test]
    fn ascii_holes() {
        for c in ['`', '\t', '\u{1B}', '\u{7F}', '\0'] {
            assert_eq!(encode_char(c), None, "{c:?}");
        }
        assert_eq!(encode_char('@'), Some(Gsm7Char::Basic(0)));
        assert_eq!(encode_char('$'), Some(Gsm7Char::Basic(2)));
        assert_eq!(encode_char('_'), Some(Gsm7Char::Basic(0x11)));
    }

    #[test]
    fn lenient_decoding() {
        assert_eq!(decode_unpacked(&[0x41, 0x80, 0xFF]), "A\u{FFFD}\u{FFFD}");
        assert_eq!(decode_unpacked(&[0x41, ESCAPE]), "A\u{FFFD}");
        assert_eq!(decode_unpacked(&[ESCAPE, ESCAPE, 0x41]), " A");
        // Undefined extension code: falls back to the basic table.
        assert_eq!(decode_unpacked(&[ESCAPE, 0x41]), "A");
        assert_eq!(decode_unpacked(&[ESCAPE, 0x65]), "€");
    }

    #[test]
    fn packing_known_vector() {
        // "hellohello" from TS 23.038 examples: E8 32 9B FD 46 97 D9 EC 37
        let packed = encode_packed("hellohello", 0).unwrap();
        assert_eq!(
            packed,
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(decode_packed(&packed, 0), "hellohello");
    }

    #[test]
    fn seven_spare_bits_padded_with_cr() {
        let packed = encode_packed("1234567", 0).unwrap();
        assert_eq!(packed.len(), 7);
        assert_eq!(packed.last().map(|b| b >> 1), Some(0x0D));
        assert_eq!(decode_packed(&packed, 0), "1234567");
    }

    #[test]
    fn fill_bits_after_udh() {
        let packed = encode_packed("abc", 1).unwrap();
        assert_eq!(packed[0] & 1, 0);
        assert_eq!(unpack(&packed, 1, 3), encode_unpacked("abc").unwrap());
        assert_eq!(decode_packed(&packed, 1), "abc");
    }
}
