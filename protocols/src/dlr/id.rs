//! Matching carrier message ids across submit_sm_resp and the receipt.
//!
//! Carriers are inconsistent: many return the id in submit_sm_resp as hex (`"1A2B3C"`) and in
//! the receipt as decimal (`"1715004"`), or the other way round, with or without leading zeros,
//! in either case. A digit-only string cannot say which base it is in (about 2% of random
//! 8-digit hex ids have no letter), so [`normalize_message_id`] returns every reading:
//!
//! 1. Trim ASCII whitespace and NULs.
//! 2. `0x`/`0X` + hex digits: the hex value only.
//! 3. Decimal digits only: the decimal value, and the hex value as an alternate.
//! 4. Hex digits with at least one letter: the hex value.
//! 5. Anything else (UUIDs, dashes, letters beyond `f`, values over 128 bits): the text,
//!    ASCII-lowercased. Leading zeros of text ids are kept.
//!
//! Numbers drop leading zeros and case by construction. Two ids match when any of their keys
//! are equal ([`NormalizedId::matches`]); index the submit_sm_resp id under each of its
//! [`keys`](NormalizedId::keys) and look the receipt id up under each of its own.
//!
//! The alternate reading can in principle match the wrong message (decimal "16" vs hex "10").
//! Scope the lookup by carrier, and when a carrier's formats are known, configure them and use
//! [`normalize_message_id_as`], which has a single reading.

/// One reading of an id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    /// A numeric id (whatever base it was written in).
    Number(u128),
    /// An opaque id, ASCII-lowercased.
    Text(Box<str>),
}

/// An id with its possible readings (one or two).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NormalizedId {
    /// The most likely reading.
    pub primary: IdKey,
    /// The other reading of a digit-only id (as hex).
    pub alternate: Option<IdKey>,
}

impl NormalizedId {
    /// Every reading, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &IdKey> {
        std::iter::once(&self.primary).chain(self.alternate.as_ref())
    }

    /// True when the two ids share a reading.
    pub fn matches(&self, other: &NormalizedId) -> bool {
        self.keys().any(|a| other.keys().any(|b| a == b))
    }
}

/// How a carrier writes its ids, when configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdFormat {
    /// Decimal digits.
    Decimal,
    /// Hex digits (an optional `0x` prefix is accepted).
    Hex,
    /// Opaque: compared as ASCII-lowercased text.
    Text,
}

/// Every reading of `raw` (see the module doc for the rule).
pub fn normalize_message_id(raw: &[u8]) -> NormalizedId {
    let t = trim(raw);
    if let Some(hex) = strip_0x(t) {
        if let Some(n) = parse_radix(hex, 16) {
            return single(IdKey::Number(n));
        }
    } else if !t.is_empty() && t.iter().all(u8::is_ascii_digit) {
        let dec = parse_radix(t, 10).map(IdKey::Number);
        let hex = parse_radix(t, 16).map(IdKey::Number);
        return match (dec, hex) {
            (Some(d), hex) => NormalizedId {
                primary: d,
                alternate: hex,
            },
            (None, Some(h)) => single(h),
            (None, None) => single(text_key(t)),
        };
    } else if let Some(n) = parse_radix(t, 16) {
        return single(IdKey::Number(n));
    }
    single(text_key(t))
}

/// The single reading of `raw` in a known format; falls back to text when `raw` is not in that
/// format.
pub fn normalize_message_id_as(raw: &[u8], format: IdFormat) -> IdKey {
    let t = trim(raw);
    let n = match format {
        IdFormat::Decimal => parse_radix(t, 10),
        IdFormat::Hex => parse_radix(strip_0x(t).unwrap_or(t), 16),
        IdFormat::Text => None,
    };
    n.map_or_else(|| text_key(t), IdKey::Number)
}

/// `raw` without leading/trailing ASCII whitespace and NULs.
pub(crate) fn trim(raw: &[u8]) -> &[u8] {
    let junk = |b: &u8| b.is_ascii_whitespace() || *b == 0;
    let start = raw.iter().position(|b| !junk(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !junk(b)).map_or(start, |e| e + 1);
    raw.get(start..end).unwrap_or_default()
}

fn single(k: IdKey) -> NormalizedId {
    NormalizedId {
        primary: k,
        alternate: None,
    }
}

fn strip_0x(t: &[u8]) -> Option<&[u8]> {
    match t {
        [b'0', b'x' | b'X', rest @ ..] if !rest.is_empty() => Some(rest),
        _ => None,
    }
}

fn text_key(t: &[u8]) -> IdKey {
    IdKey::Text(
        String::from_utf8_lossy(t)
            .to_ascii_lowercase()
            .into_boxed_str(),
    )
}

/// Digits in `radix` (10 or 16) to a number; `None` if empty, a non-digit, or over 128 bits.
fn parse_radix(t: &[u8], radix: u32) -> Option<u128> {
    if t.is_empty() {
        return None;
    }
    let mut n: u128 = 0;
    for &b in t {
        let d = char::from(b).to_digit(radix)?;
        n = n
            .checked_mul(u128::from(radix))?
            .checked_add(u128::from(d))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: &str, b: &str) -> bool {
        normalize_message_id(a.as_bytes()).matches(&normalize_message_id(b.as_bytes()))
    }

    #[test]
    fn hex_decimal_case_zeros() {
        assert!(m("1A2B3C", "1715004"));
        assert!(m("1715004", "1a2b3c"));
        assert!(m("00001A2B3C", "1715004"));
        assert!(m("0x1A2B3C", "0001715004"));
        // A digit-only hex id against its decimal form.
        assert!(m("123456", "1193046"));
        assert!(m("abc-DEF", "ABC-def"));
        assert!(m(" 42\0", "42"));
        assert!(!m("1A2B3C", "1715005"));
        assert!(!m("0abc-1", "abc-1"));
    }

    #[test]
    fn known_formats() {
        assert_eq!(
            normalize_message_id_as(b"0A", IdFormat::Hex),
            normalize_message_id_as(b"10", IdFormat::Decimal)
        );
        assert_eq!(
            normalize_message_id_as(b"XyZ", IdFormat::Decimal),
            IdKey::Text("xyz".into())
        );
    }

    #[test]
    fn huge_ids_become_text() {
        let big = "9".repeat(60);
        assert!(matches!(
            normalize_message_id(big.as_bytes()).primary,
            IdKey::Text(_)
        ));
    }
}
