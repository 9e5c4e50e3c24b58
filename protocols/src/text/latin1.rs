//! ISO 8859-1 (SMPP data_coding 3): one octet per character, U+0000..=U+00FF.

use super::charset::Encoding;
use super::TextError;

/// True when `c` has a Latin-1 code.
#[inline]
pub fn is_latin1(c: char) -> bool {
    u32::from(c) <= 0xFF
}

/// Appends `text` as Latin-1 to `out`, or reports the first character above U+00FF. On error
/// `out` may hold a prefix.
pub fn encode_into(text: &str, out: &mut Vec<u8>) -> Result<(), TextError> {
    out.reserve(text.len());
    for (offset, ch) in text.char_indices() {
        match u8::try_from(u32::from(ch)) {
            Ok(b) => out.push(b),
            Err(_) => {
                return Err(TextError::Unrepresentable {
                    encoding: Encoding::Latin1,
                    ch,
                    offset,
                })
            }
        }
    }
    Ok(())
}

/// `text` as Latin-1.
pub fn encode(text: &str) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(text.len());
    encode_into(text, &mut out)?;
    Ok(out)
}

/// Decodes Latin-1, appending to `out`. Every octet is a character, so this never fails.
pub fn decode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| char::from(b)));
}

/// Decodes Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    decode_into(bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject() {
        let s = "Grüße, señor: 5 € is not latin-1";
        let err = encode(s).unwrap_err();
        assert!(matches!(err, TextError::Unrepresentable { ch: '€', .. }));
        let ok = "Grüße, señor ÿ";
        assert_eq!(decode(&encode(ok).unwrap()), ok);
    }
}
