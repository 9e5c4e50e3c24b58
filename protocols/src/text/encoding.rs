//! Which encoding a text goes out in, and the SMPP data_coding for it.
//!
//! GSM-7 when every character is in the default alphabet (escape pairs count 2 septets), else
//! UCS-2. Latin-1 only when asked ([`EncodingPreference::AutoAllowLatin1`]): many handsets and
//! SMSCs mishandle data_coding 3, so it is a per-carrier opt-in; when allowed it is picked only if
//! it needs fewer segments than GSM-7 (a text full of `[]{}€` escapes), or when the text is
//! Latin-1 but not GSM-7 (cheaper than UCS-2).

use std::fmt;

use super::{gsm7, latin1, segment, Concat, TextError};

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
}

impl Encoding {
    /// The SMPP data_coding value: 0 (SMSC default alphabet, GSM 03.38 by near-universal
    /// convention), 3 (Latin-1) or 8 (UCS-2).
    pub const fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Latin1 => 0x03,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// A short lowercase name, as in the API (`gsm7`, `latin1`, `ucs2`).
    pub const fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Latin1 => "latin1",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Units the ASCII byte `b` takes, or `None` if it does not fit.
    #[inline]
    pub(crate) fn ascii_units(self, b: u8) -> Option<usize> {
        match self {
            Encoding::Gsm7 => gsm7::ascii_septets(b),
            Encoding::Latin1 | Encoding::Ucs2 => Some(1),
        }
    }

    /// Units (septets, octets or UTF-16 code units) `c` takes, or `None` if it does not fit.
    #[inline]
    pub fn char_units(self, c: char) -> Option<usize> {
        match self {
            Encoding::Gsm7 => gsm7::char_septets(c),
            Encoding::Latin1 => latin1::is_latin1(c).then_some(1),
            Encoding::Ucs2 => Some(c.len_utf16()),
        }
    }

    /// Units `text` takes, or the first character that does not fit.
    pub fn units(self, text: &str) -> Result<usize, TextError> {
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

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to pick the encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodingPreference {
    /// GSM-7 if representable, else UCS-2.
    #[default]
    Auto,
    /// Like `Auto`, but Latin-1 may be chosen when it is cheaper (see the module doc).
    AutoAllowLatin1,
    /// Exactly this encoding; a character it cannot represent is an error.
    Force(Encoding),
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

/// Picks the encoding and returns it with the units `text` takes in it. `concat` matters only to
/// compare GSM-7 with Latin-1 by segment count.
pub(crate) fn choose(
    text: &str,
    pref: EncodingPreference,
    concat: Concat,
) -> Result<(Encoding, usize), TextError> {
    match pref {
        EncodingPreference::Force(enc) => Ok((enc, enc.units(text)?)),
        EncodingPreference::Auto => match scan(text) {
            Scan { gsm7: Some(n), .. } => Ok((Encoding::Gsm7, n)),
            Scan { ucs2, .. } => Ok((Encoding::Ucs2, ucs2)),
        },
        EncodingPreference::AutoAllowLatin1 => match scan(text) {
            Scan {
                gsm7: Some(g),
                latin1: Some(l),
                ..
            } => {
                let gs = segment::count_with(text, Encoding::Gsm7, g, concat).segments;
                let ls = segment::count_with(text, Encoding::Latin1, l, concat).segments;
                Ok(if ls < gs {
                    (Encoding::Latin1, l)
                } else {
                    (Encoding::Gsm7, g)
                })
            }
            Scan { gsm7: Some(g), .. } => Ok((Encoding::Gsm7, g)),
            Scan {
                latin1: Some(l), ..
            } => Ok((Encoding::Latin1, l)),
            Scan { ucs2, .. } => Ok((Encoding::Ucs2, ucs2)),
        },
    }
}

/// The encoding `text` would go out in under `pref` (with UDH 8-bit concatenation limits for
/// the GSM-7/Latin-1 comparison).
pub fn choose_encoding(text: &str, pref: EncodingPreference) -> Result<Encoding, TextError> {
    choose(text, pref, Concat::Udh8).map(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto() {
        let auto = EncodingPreference::Auto;
        assert_eq!(choose_encoding("hello {world} €", auto), Ok(Encoding::Gsm7));
        assert_eq!(choose_encoding("ça va", auto), Ok(Encoding::Ucs2));
        assert_eq!(choose_encoding("hi 😀", auto), Ok(Encoding::Ucs2));
        assert_eq!(choose_encoding("", auto), Ok(Encoding::Gsm7));
    }

    #[test]
    fn latin1_only_when_allowed_and_cheaper() {
        let allow = EncodingPreference::AutoAllowLatin1;
        assert_eq!(choose_encoding("ça va", allow), Ok(Encoding::Latin1));
        assert_eq!(choose_encoding("hello", allow), Ok(Encoding::Gsm7));
        // 100 escapes: 200 septets (2 parts) vs 100 octets (1 part).
        let brackets = "[".repeat(100);
        assert_eq!(choose_encoding(&brackets, allow), Ok(Encoding::Latin1));
        assert_eq!(
            choose_encoding(&brackets, EncodingPreference::Auto),
            Ok(Encoding::Gsm7)
        );
    }

    #[test]
    fn forced() {
        let err = choose_encoding("a😀", EncodingPreference::Force(Encoding::Gsm7)).unwrap_err();
        assert_eq!(
            err,
            TextError::Unrepresentable {
                encoding: Encoding::Gsm7,
                ch: '😀',
                offset: 1
            }
        );
    }
}
