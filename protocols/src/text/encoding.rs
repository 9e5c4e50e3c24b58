//! Which encoding a text goes out in, and the SMPP data_coding for it.
//!
//! GSM-7 when every character is in the default alphabet (escape pairs count 2 septets), else
//! UCS-2. Latin-1 only when asked ([`EncodingPreference::AutoAllowLatin1`]): many handsets and
//! SMSCs mishandle data_coding 3, so it is a per-carrier opt-in; when allowed it is picked only if
//! it needs fewer segments than GSM-7 (a text full of `[]{}€` escapes), or when the text is
//! Latin-1 but not GSM-7 (cheaper than UCS-2).

pub use super::charset::Encoding;
use super::count::{count_with, scan, Concat, Scan};
use super::TextError;

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
                let gs = count_with(text, Encoding::Gsm7, g, concat).segments;
                let ls = count_with(text, Encoding::Latin1, l, concat).segments;
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
