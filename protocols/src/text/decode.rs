//! Decoding an incoming short_message (MO or deliver_sm) by its data_coding.
//!
//! | data_coding | read as |
//! | --- | --- |
//! | 0 | GSM 03.38 unpacked (one septet per octet), see the quirk below |
//! | 1 | IA5/ASCII (octets above 0x7F are kept as Latin-1 rather than dropped) |
//! | 3 | Latin-1 |
//! | 8 | UCS-2 / UTF-16BE |
//! | 2, 4 | binary, no text |
//! | 6 | Cyrillic, ISO 8859-5 |
//! | 7 | Latin/Hebrew, ISO 8859-8 |
//! | 0x0A | ISO-2022-JP |
//! | 0x0E | KS C 5601, in its EUC-KR form (the octets Korean SMSCs send) |
//! | 0x10–0x7F (GSM DCS general group, uncompressed) | by the alphabet bits: GSM-7, 8-bit binary, UCS-2 |
//! | 0xC0–0xDF / 0xE0–0xEF (message waiting groups) | GSM-7 / UCS-2 |
//! | 0xF0–0xFF (data coding/message class group) | GSM-7 or 8-bit binary by bit 2 |
//! | anything else (JIS X 0208 and X 0212 without escapes, pictograms, compressed, reserved) | unsupported: binary |
//!
//! **The data_coding 0 quirk.** SMPP defines 0 as "SMSC default alphabet", and some SMSCs' default
//! is Latin-1 or plain ASCII rather than GSM 03.38. Unpacked GSM never has an octet above 0x7F,
//! so a data_coding 0 payload that has one is decoded as Latin-1. Pure 7-bit payloads are
//! ambiguous (ASCII `@` is GSM `¡`, `$` is `¤`, `_` is `§`); they are read as GSM unless the
//! carrier is configured with [`DefaultAlphabet::Latin1`].

use super::udh::{fill_bits, parse_udh, Udh, UdhError};
use super::{gsm7, latin1, ucs2};

/// What data_coding 0 means for a carrier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DefaultAlphabet {
    /// GSM 03.38 (the usual case), with the Latin-1 fallback for octets above 0x7F.
    #[default]
    Gsm7,
    /// Latin-1 / ASCII.
    Latin1,
}

/// Per-carrier decoding options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DecodeOptions {
    /// What data_coding 0 means.
    pub default_alphabet: DefaultAlphabet,
    /// GSM-7 payloads arrive packed (rare over SMPP; some carriers do it).
    pub gsm7_packed: bool,
}

/// The character set a payload was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charset {
    /// GSM 03.38, one septet per octet.
    Gsm7,
    /// GSM 03.38, 7-bit packed.
    Gsm7Packed,
    /// IA5 / ASCII.
    Ascii,
    /// ISO 8859-1.
    Latin1,
    /// UCS-2 / UTF-16BE.
    Ucs2,
    /// ISO 8859-5 (data_coding 6).
    Cyrillic,
    /// ISO 8859-8 (data_coding 7).
    Hebrew,
    /// ISO-2022-JP (data_coding 0x0A).
    Iso2022Jp,
    /// KS C 5601 as EUC-KR (data_coding 0x0E).
    KsC5601,
    /// 8-bit data.
    Binary,
    /// A data_coding this crate does not decode (the payload is returned as binary).
    Unsupported,
}

/// The body of a decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Text, decoded leniently (U+FFFD for what could not be).
    Text(String),
    /// Binary data (or an unsupported charset), verbatim, UDH stripped.
    Binary(Vec<u8>),
}

/// An incoming short_message, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedText {
    /// The data_coding it came with.
    pub data_coding: u8,
    /// How the payload was read.
    pub charset: Charset,
    /// The user data header, when UDHI was set and it parsed.
    pub udh: Option<Udh>,
    /// Why the UDH did not parse, when UDHI was set and it did not; the whole short_message is
    /// then decoded as payload, since losing the message is worse than showing a few odd
    /// characters.
    pub udh_error: Option<UdhError>,
    /// The text or binary payload.
    pub body: Body,
}

impl DecodedText {
    /// The text, if this is text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(t) => Some(t),
            Body::Binary(_) => None,
        }
    }
}

/// Decodes `bytes` with the default options (see the module doc).
pub fn decode_short_message(data_coding: u8, esm_class_udhi: bool, bytes: &[u8]) -> DecodedText {
    decode_short_message_with(
        data_coding,
        esm_class_udhi,
        bytes,
        &DecodeOptions::default(),
    )
}

/// Decodes `bytes` (short_message, or message_payload) of an incoming message.
pub fn decode_short_message_with(
    data_coding: u8,
    esm_class_udhi: bool,
    bytes: &[u8],
    opts: &DecodeOptions,
) -> DecodedText {
    let (udh, udh_error, payload) = if esm_class_udhi {
        match parse_udh(bytes) {
            Ok((udh, payload)) => (Some(udh), None, payload),
            Err(e) => (None, Some(e), bytes),
        }
    } else {
        (None, None, bytes)
    };
    let charset = charset_for(data_coding, opts, payload);
    let fill = fill_bits(udh.as_ref().map_or(0, |u| u.len));
    let body = match charset {
        Charset::Gsm7 => Body::Text(gsm7::decode_unpacked(payload)),
        Charset::Gsm7Packed => Body::Text(gsm7::decode_packed(payload, fill)),
        Charset::Ascii | Charset::Latin1 => Body::Text(latin1::decode(payload)),
        Charset::Ucs2 => Body::Text(ucs2::decode(payload)),
        Charset::Cyrillic => Body::Text(legacy(encoding_rs::ISO_8859_5, payload)),
        Charset::Hebrew => Body::Text(legacy(encoding_rs::ISO_8859_8, payload)),
        Charset::Iso2022Jp => Body::Text(legacy(encoding_rs::ISO_2022_JP, payload)),
        Charset::KsC5601 => Body::Text(legacy(encoding_rs::EUC_KR, payload)),
        Charset::Binary | Charset::Unsupported => Body::Binary(payload.to_vec()),
    };
    DecodedText {
        data_coding,
        charset,
        udh,
        udh_error,
        body,
    }
}

/// `payload` decoded from a legacy character set, U+FFFD for what does not decode.
fn legacy(encoding: &'static encoding_rs::Encoding, payload: &[u8]) -> String {
    encoding.decode_without_bom_handling(payload).0.into_owned()
}

/// The charset for a data_coding (SMPP 3.4 §5.2.19, GSM 03.38 §4 for values from 0x10).
pub fn charset_for(data_coding: u8, opts: &DecodeOptions, payload: &[u8]) -> Charset {
    let gsm = if opts.gsm7_packed {
        Charset::Gsm7Packed
    } else {
        Charset::Gsm7
    };
    match data_coding {
        0x00 => match opts.default_alphabet {
            DefaultAlphabet::Latin1 => Charset::Latin1,
            // Unpacked GSM has no octet above 0x7F: this carrier sends Latin-1 as "default".
            DefaultAlphabet::Gsm7 if !opts.gsm7_packed && payload.iter().any(|&b| b > 0x7F) => {
                Charset::Latin1
            }
            DefaultAlphabet::Gsm7 => gsm,
        },
        0x01 => Charset::Ascii,
        0x02 | 0x04 => Charset::Binary,
        0x03 => Charset::Latin1,
        0x06 => Charset::Cyrillic,
        0x07 => Charset::Hebrew,
        0x08 => Charset::Ucs2,
        0x0A => Charset::Iso2022Jp,
        0x0E => Charset::KsC5601,
        0x10..=0x7F if data_coding & 0x20 == 0 => match (data_coding >> 2) & 0x03 {
            0 => gsm,
            1 => Charset::Binary,
            2 => Charset::Ucs2,
            _ => Charset::Unsupported,
        },
        0xC0..=0xDF => gsm,
        0xE0..=0xEF => Charset::Ucs2,
        0xF0..=0xFF if data_coding & 0x04 == 0 => gsm,
        0xF0..=0xFF => Charset::Binary,
        _ => Charset::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_data_coding() {
        assert_eq!(
            decode_short_message(0, false, b"Hi\x00").text(),
            Some("Hi@")
        );
        assert_eq!(decode_short_message(1, false, b"Hi@").text(), Some("Hi@"));
        assert_eq!(
            decode_short_message(3, false, b"caf\xE9").text(),
            Some("café")
        );
        assert_eq!(
            decode_short_message(8, false, b"\x00h\x00i").text(),
            Some("hi")
        );
        assert_eq!(
            decode_short_message(0x18, false, b"\x00h").text(),
            Some("h")
        );
        assert_eq!(decode_short_message(0xF0, false, b"Hi").text(), Some("Hi"));
        let bin = decode_short_message(4, false, b"\x01\x02");
        assert_eq!(bin.body, Body::Binary(vec![1, 2]));
        assert_eq!(
            decode_short_message(0xF4, false, b"x").charset,
            Charset::Binary
        );
        // JIS X 0208 without escapes, compressed GSM text: no text to read.
        for dc in [0x05, 0x0D, 0x20] {
            let d = decode_short_message(dc, false, b"\x30\x21");
            assert_eq!(d.charset, Charset::Unsupported);
            assert_eq!(d.body, Body::Binary(vec![0x30, 0x21]));
        }
    }

    #[test]
    fn legacy_character_sets() {
        let cases: [(u8, &[u8], &str); 4] = [
            (6, b"\xBF\xE0\xD8\xD2\xD5\xE2", "Привет"),
            (7, b"\xF9\xEC\xE5\xED", "שלום"),
            (0x0A, b"\x1B$BF|K\\\x1B(B", "日本"),
            (0x0E, b"\xC7\xD1\xB1\xB9", "한국"),
        ];
        for (dc, octets, text) in cases {
            assert_eq!(decode_short_message(dc, false, octets).text(), Some(text));
        }
        // What does not decode is replaced, never dropped.
        assert_eq!(
            decode_short_message(0x0E, false, b"a\xFF").text(),
            Some("a\u{FFFD}")
        );
    }

    #[test]
    fn dc0_latin1_quirk() {
        let d = decode_short_message(0, false, b"caf\xE9");
        assert_eq!((d.charset, d.text()), (Charset::Latin1, Some("café")));
        let opts = DecodeOptions {
            default_alphabet: DefaultAlphabet::Latin1,
            ..DecodeOptions::default()
        };
        let d = decode_short_message_with(0, false, b"a@b", &opts);
        assert_eq!(d.text(), Some("a@b"));
    }

    #[test]
    fn udh_stripped_or_kept_on_error() {
        let d = decode_short_message(0, true, &[5, 0, 3, 7, 2, 1, b'H', b'i']);
        assert_eq!(d.text(), Some("Hi"));
        assert_eq!(d.udh.and_then(|u| u.concat).map(|c| c.seq), Some(1));
        let d = decode_short_message(3, true, &[9, b'H']);
        assert!(d.udh_error.is_some());
        assert_eq!(d.text(), Some("\tH"));
    }

    #[test]
    fn packed_with_udh_fill_bits() {
        let mut sm = vec![5, 0, 3, 1, 1, 1];
        sm.extend(gsm7::encode_packed("Hello", 1).unwrap());
        let opts = DecodeOptions {
            gsm7_packed: true,
            ..DecodeOptions::default()
        };
        let d = decode_short_message_with(0, true, &sm, &opts);
        assert_eq!(d.text(), Some("Hello"));
    }
}
