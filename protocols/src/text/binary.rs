//! 8-bit binary data (SMPP data_coding 4, and the binary message-class values 0xF4–0xF7) in
//! the text form the rest of `text` handles: two hex digits per octet (`"0b05040b8423f0"`).
//!
//! A binary payload (a WAP push, a SIM OTA command, a vCard) is not text, but a message body is
//! a `&str` everywhere above this crate (the store, the API, the queues). Hex keeps it lossless
//! in all of them; the octets come back only here, when a segment is built. Lowercase is
//! written, either case is read.

use super::charset::Encoding;
use super::TextError;

/// Octets `hex` holds, or the first character that is not a hex digit (a lone last digit,
/// half an octet, is reported as not fitting too).
pub fn octets(hex: &str) -> Result<usize, TextError> {
    if let Some((offset, ch)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(TextError::Unrepresentable {
            encoding: Encoding::Binary,
            ch,
            offset,
        });
    }
    if hex.len() % 2 == 1 {
        let ch = hex.chars().last().unwrap_or('0');
        return Err(TextError::Unrepresentable {
            encoding: Encoding::Binary,
            ch,
            offset: hex.len() - 1,
        });
    }
    Ok(hex.len() / 2)
}

/// Appends the octets of `hex` to `out`, or reports what is not a hex digit (see [`octets`]).
/// On error nothing is appended.
pub fn decode_into(hex: &str, out: &mut Vec<u8>) -> Result<(), TextError> {
    let n = octets(hex)?;
    out.reserve(n);
    for pair in hex.as_bytes().chunks_exact(2) {
        // Checked by `octets`: both are hex digits.
        out.push((nibble(pair[0]) << 4) | nibble(pair[1]));
    }
    Ok(())
}

/// The octets of `hex`.
pub fn decode(hex: &str) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(hex.len() / 2);
    decode_into(hex, &mut out)?;
    Ok(out)
}

/// `bytes` in the text form: two lowercase hex digits per octet.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// The value of a hex digit (0 for anything else, which callers have excluded).
fn nibble(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes = [0x00, 0x0b, 0x05, 0x04, 0xff, 0x7f];
        let hex = encode(&bytes);
        assert_eq!(hex, "000b0504ff7f");
        assert_eq!(decode(&hex).unwrap(), bytes);
        assert_eq!(decode("0B0504FF").unwrap(), [0x0b, 0x05, 0x04, 0xff]);
        assert_eq!(octets(""), Ok(0));
        assert!(matches!(
            octets("0g"),
            Err(TextError::Unrepresentable {
                ch: 'g',
                offset: 1,
                ..
            })
        ));
        assert!(matches!(
            octets("abc"),
            Err(TextError::Unrepresentable { offset: 2, .. })
        ));
        assert!(decode("é0").is_err());
    }
}
