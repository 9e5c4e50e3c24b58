//! E.164 numbers and digit prefixes, parsed once into fixed-size digit arrays.
//!
//! A lookup never allocates, so both types are `Copy` and hold at most
//! [`MAX_DIGITS`] ASCII digits inline. `Debug` masks the subscriber part: numbers must not leak
//! into logs (STYLE.md, point 9).

use std::fmt;

/// The longest E.164 number: 15 digits, country code included.
pub const MAX_DIGITS: usize = 15;

/// Why a string is not an E.164 number or a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberError {
    /// The input had no digits.
    #[error("empty number")]
    Empty,
    /// More than [`MAX_DIGITS`] digits.
    #[error("more than 15 digits")]
    TooLong,
    /// A character other than an ASCII digit (after an optional leading `+`).
    #[error("non-digit character")]
    NotDigit,
    /// E.164 country codes never start with 0.
    #[error("starts with 0 (country codes never do)")]
    LeadingZero,
}

/// Up to 15 ASCII digits, stored inline; the shared core of [`E164`] and [`Prefix`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Digits {
    /// ASCII digits `b'0'..=b'9'`; only the first `len` are meaningful (the rest are zero).
    bytes: [u8; MAX_DIGITS],
    /// How many digits are in use, 1..=15.
    len: u8,
}

impl Digits {
    fn parse(s: &str) -> Result<Self, NumberError> {
        let s = s.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        let raw = s.as_bytes();
        if raw.is_empty() {
            return Err(NumberError::Empty);
        }
        if raw.len() > MAX_DIGITS {
            return Err(if raw.iter().all(u8::is_ascii_digit) {
                NumberError::TooLong
            } else {
                NumberError::NotDigit
            });
        }
        if !raw.iter().all(u8::is_ascii_digit) {
            return Err(NumberError::NotDigit);
        }
        if raw.first() == Some(&b'0') {
            return Err(NumberError::LeadingZero);
        }
        let mut bytes = [0u8; MAX_DIGITS];
        for (dst, src) in bytes.iter_mut().zip(raw) {
            *dst = *src;
        }
        // raw.len() <= 15, checked above.
        Ok(Self {
            bytes,
            len: raw.len() as u8,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn as_str(&self) -> &str {
        // Invariant: only ASCII digits are ever stored, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// A destination number in E.164 form: country code and subscriber number, 1 to 15 digits,
/// no leading zero. Parsed from `+447700900123` or `447700900123`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(Digits);

impl E164 {
    /// Parses `+` (optional) followed by 1..=15 digits, the first not `0`. Surrounding
    /// whitespace is ignored; separators (spaces, dashes) are not accepted.
    pub fn parse(s: &str) -> Result<Self, NumberError> {
        Digits::parse(s).map(Self)
    }

    /// The digits as ASCII bytes, without the `+`.
    pub fn digits(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The digits as a string, without the `+`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        usize::from(self.0.len)
    }

    /// Always false: a parsed number has at least one digit. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Whether `prefix` is a prefix of this number.
    pub fn starts_with(&self, prefix: &Prefix) -> bool {
        self.digits().starts_with(prefix.digits())
    }

    /// A display form safe for logs: the first `keep` digits, then `*` for the rest.
    pub fn masked(&self, keep: usize) -> Masked<'_> {
        Masked { number: self, keep }
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.as_str())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked(5))
    }
}

impl std::str::FromStr for E164 {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A number shown with its tail masked; see [`E164::masked`].
#[derive(Debug, Clone, Copy)]
pub struct Masked<'a> {
    /// The number being shown.
    number: &'a E164,
    /// How many leading digits stay visible.
    keep: usize,
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("+")?;
        for (i, d) in self.number.digits().iter().enumerate() {
            let c = if i < self.keep { char::from(*d) } else { '*' };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// A dialling-code prefix from a rate deck or a route plan: 1 to 15 digits, no leading zero
/// (`44`, `447`, `1212`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(Digits);

impl Prefix {
    /// Parses 1..=15 digits (a leading `+` is allowed and ignored), the first not `0`.
    pub fn parse(s: &str) -> Result<Self, NumberError> {
        Digits::parse(s).map(Self)
    }

    /// The digits as ASCII bytes.
    pub fn digits(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The digits as a string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Number of digits, 1..=15.
    pub fn len(&self) -> usize {
        usize::from(self.0.len)
    }

    /// Always false: a parsed prefix has at least one digit.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Whether this prefix covers `number`.
    pub fn matches(&self, number: &E164) -> bool {
        number.starts_with(self)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({})", self.as_str())
    }
}

impl std::str::FromStr for Prefix {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let n = E164::parse("+447700900123").unwrap();
        assert_eq!(n.as_str(), "447700900123");
        assert_eq!(n.to_string(), "+447700900123");
        assert_eq!(format!("{n:?}"), "E164(+44770*******)");
        assert_eq!(E164::parse("447700900123").unwrap(), n);
        assert_eq!(E164::parse(""), Err(NumberError::Empty));
        assert_eq!(E164::parse("+"), Err(NumberError::Empty));
        assert_eq!(E164::parse("0447"), Err(NumberError::LeadingZero));
        assert_eq!(E164::parse("44-77"), Err(NumberError::NotDigit));
        assert_eq!(E164::parse("1234567890123456"), Err(NumberError::TooLong));
        assert!(E164::parse("123456789012345").is_ok());
        let p = Prefix::parse("4477").unwrap();
        assert!(p.matches(&n));
        assert!(!Prefix::parse("4478").unwrap().matches(&n));
    }
}
