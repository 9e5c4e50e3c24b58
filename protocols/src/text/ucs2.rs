//! UCS-2 as carriers really use it (SMPP data_coding 8): UTF-16BE, with surrogate pairs for
//! characters outside the BMP (emoji). Segment limits count 16-bit code units.

use super::REPLACEMENT;

/// 16-bit code units `text` takes (2 for characters outside the BMP).
#[inline]
pub fn unit_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Appends `text` as UTF-16BE to `out`. Every `&str` is representable.
pub fn encode_into(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() * 2);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
}

/// `text` as UTF-16BE.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    encode_into(text, &mut out);
    out
}

/// Decodes UTF-16BE, appending to `out`. Lenient: an unpaired surrogate or a trailing odd octet
/// becomes U+FFFD.
pub fn decode_into(bytes: &[u8], out: &mut String) {
    let chunks = bytes.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|pair| match pair {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0xFFFD,
    });
    out.reserve(bytes.len() / 2);
    out.extend(char::decode_utf16(units).map(|r| r.unwrap_or(REPLACEMENT)));
    if odd {
        out.push(REPLACEMENT);
    }
}

/// Decodes UTF-16BE (see [`decode_into`]).
pub fn decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 2);
    decode_into(bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogates() {
        let s = "hi 😀";
        let b = encode(s);
        assert_eq!(b, [0, b'h', 0, b'i', 0, b' ', 0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(unit_len(s), 5);
        assert_eq!(decode(&b), s);
    }

    #[test]
    fn lenient() {
        assert_eq!(decode(&[0xD8, 0x3D, 0, b'a']), "\u{FFFD}a");
        assert_eq!(decode(&[0, b'a', 0]), "a\u{FFFD}");
    }
}
