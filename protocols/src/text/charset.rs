//! [`Encoding`]: the character sets an SMS text can go out in (and 8-bit binary data), and
//! their SMPP data_coding.
//!
//! Vocabulary only, at the bottom of `text`: the codecs ([`super::gsm7`], [`super::latin1`],
//! [`super::ucs2`]) name it in their errors, and what a text costs in each encoding
//! ([`Encoding::units`] and the other counting methods) is in `count`, above the codecs it
//! asks.

use std::fmt;

/// An SMS text encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// GSM 03.38 default alphabet with the extension table: 7-bit septets.
    Gsm7,
    /// ISO 8859-1, one octet per character.
    Latin1,
    /// UCS-2 / UTF-16BE, 16-bit units; surrogate pairs for characters beyond the BMP.
    Ucs2,
    /// 8-bit binary data, one octet per unit, written as two hex digits per octet (see
    /// [`super::binary`]). Never chosen automatically: a body is binary only when forced.
    Binary,
}

impl Encoding {
    /// The SMPP data_coding value: 0 (SMSC default alphabet, GSM 03.38 by near-universal
    /// convention), 3 (Latin-1), 8 (UCS-2) or 4 (8-bit binary).
    pub const fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Latin1 => 0x03,
            Encoding::Ucs2 => 0x08,
            Encoding::Binary => 0x04,
        }
    }

    /// A short lowercase name, as in the API (`gsm7`, `latin1`, `ucs2`, `binary`).
    pub const fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Latin1 => "latin1",
            Encoding::Ucs2 => "ucs2",
            Encoding::Binary => "binary",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
