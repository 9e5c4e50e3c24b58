//! Matching carrier message ids across submit_sm_resp and the receipt.
//!
//! Carriers are inconsistent: many return the id in submit_sm_resp as hex (`"1A2B3C"`) and in
//! the receipt as decimal (`"1715004"`), or the other way round, with or without leading zeros,
//! in either case. Others number their ids 1, 2, 3, … in decimal on both sides. A digit-only
//! string cannot say which base it is in, so an id has one or two [readings](IdKey):
//!
//! 1. Trim ASCII whitespace and NULs.
//! 2. `0x`/`0X` + hex digits: the hex value only.
//! 3. Decimal digits only: the decimal value and the hex value. The two are the same number
//!    for values under 10, and then the id is unambiguous.
//! 4. Hex digits with at least one letter: the hex value.
//! 5. Anything else (UUIDs, dashes, letters beyond `f`, values over 128 bits): the text,
//!    ASCII-lowercased. Leading zeros of text ids are kept.
//!
//! When the carrier's format is known (configured, or learned by [`FormatLearner`]), an id has
//! exactly one reading ([`readings`] with `Some(format)`).
//!
//! # Why a reading is certain or not
//! Two ids name the same message when their *true* readings are the same number (or text),
//! whatever base each side writes in. A reading is true for certain when the side's format is
//! known or the id has a single reading ([`Readings::is_certain`]). A match between two
//! uncertain readings can be wrong: on a carrier numbering 1, 2, 3 … in decimal, the receipt
//! "16" also reads as hex 0x16 = 22 and the response "10" as hex 0x10 = 16, so "16" would match
//! "10". [`probes`] says, for each key to look up, whether the receipt side of a match is
//! certain; the store keeps, for each indexed response reading, whether it was certain, and
//! applies only matches certain on both sides at once. Uncertain ones wait for the formats to
//! be learned, for an exact match, or for time to rule out a race (see the gateway's store).

/// One reading of an id: the base it was read in and its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    /// Read as decimal digits.
    Decimal(u128),
    /// Read as hex digits.
    Hex(u128),
    /// An opaque id, ASCII-lowercased.
    Text(Box<str>),
}

impl IdKey {
    /// The format this reading assumes.
    pub fn format(&self) -> IdFormat {
        match self {
            IdKey::Decimal(_) => IdFormat::Decimal,
            IdKey::Hex(_) => IdFormat::Hex,
            IdKey::Text(_) => IdFormat::Text,
        }
    }

    /// The numeric value of a decimal or hex reading.
    pub fn number(&self) -> Option<u128> {
        match self {
            IdKey::Decimal(n) | IdKey::Hex(n) => Some(*n),
            IdKey::Text(_) => None,
        }
    }

    /// The same value read in `format` (a number in the other base, or this key unchanged when
    /// the value cannot be written in `format`).
    pub fn in_format(&self, format: IdFormat) -> IdKey {
        match (self.number(), format) {
            (Some(n), IdFormat::Decimal) => IdKey::Decimal(n),
            (Some(n), IdFormat::Hex) => IdKey::Hex(n),
            _ => self.clone(),
        }
    }

    /// True when `self` and `other` read the same value (a decimal and a hex reading of the
    /// same number are equal here).
    pub fn same_value(&self, other: &IdKey) -> bool {
        match (self, other) {
            (IdKey::Text(a), IdKey::Text(b)) => a == b,
            (a, b) => a.number().is_some() && a.number() == b.number(),
        }
    }
}

/// An id's readings (one or two), most likely first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Readings {
    /// The most likely reading (decimal for a digit-only id).
    pub primary: IdKey,
    /// The hex reading of a digit-only id in an unknown format.
    pub alternate: Option<IdKey>,
}

impl Readings {
    /// Every reading, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &IdKey> {
        std::iter::once(&self.primary).chain(self.alternate.as_ref())
    }

    /// True when the readings cannot disagree: one reading, or two of the same value.
    pub fn is_certain(&self) -> bool {
        self.alternate
            .as_ref()
            .is_none_or(|a| a.same_value(&self.primary))
    }

    /// True when the two ids share a value under some reading of each (a possible match, not
    /// necessarily a certain one).
    pub fn may_match(&self, other: &Readings) -> bool {
        self.keys().any(|a| other.keys().any(|b| a.same_value(b)))
    }
}

/// How a carrier writes its ids, when known.
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

/// The readings of `raw` in `format` (one), or every reading when the format is unknown (see
/// the module doc for the rule). An id that is not in the known format is read as text.
pub fn readings(raw: &[u8], format: Option<IdFormat>) -> Readings {
    let t = trim(raw);
    let Some(format) = format else {
        return every_reading(t);
    };
    let n = match format {
        IdFormat::Decimal => parse_radix(t, 10).map(IdKey::Decimal),
        IdFormat::Hex => parse_radix(strip_0x(t).unwrap_or(t), 16).map(IdKey::Hex),
        IdFormat::Text => None,
    };
    single(n.unwrap_or_else(|| text_key(t)))
}

/// Every reading of `raw` (the format unknown).
pub fn normalize_message_id(raw: &[u8]) -> Readings {
    readings(raw, None)
}

fn every_reading(t: &[u8]) -> Readings {
    if let Some(hex) = strip_0x(t) {
        if let Some(n) = parse_radix(hex, 16) {
            return single(IdKey::Hex(n));
        }
    } else if !t.is_empty() && t.iter().all(u8::is_ascii_digit) {
        let dec = parse_radix(t, 10).map(IdKey::Decimal);
        let hex = parse_radix(t, 16).map(IdKey::Hex);
        return match (dec, hex) {
            (Some(d), hex) => Readings {
                primary: d,
                alternate: hex,
            },
            (None, Some(h)) => single(h),
            (None, None) => single(text_key(t)),
        };
    } else if let Some(n) = parse_radix(t, 16) {
        return single(IdKey::Hex(n));
    }
    single(text_key(t))
}

/// A key to look a receipt up under: find response readings equal to `key` (in its base).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The response-side reading to look for.
    pub key: IdKey,
    /// Both sides read in the same base (the same digits, up to case and leading zeros).
    pub same_base: bool,
    /// The receipt's reading behind this probe is its true one.
    pub receipt_certain: bool,
}

/// The keys to look a receipt id up under, given what is known of the carrier's formats on
/// each side: same-base probes first, then cross-base ones (a number written in hex on one side
/// and in decimal on the other). With both formats known there is exactly one probe.
pub fn probes(
    receipt: &[u8],
    receipt_format: Option<IdFormat>,
    response_format: Option<IdFormat>,
) -> Vec<Probe> {
    let r = readings(receipt, receipt_format);
    let receipt_certain = receipt_format.is_some() || r.is_certain();
    let bases: &[IdFormat] = match response_format {
        Some(IdFormat::Decimal) => &[IdFormat::Decimal],
        Some(IdFormat::Hex) => &[IdFormat::Hex],
        Some(IdFormat::Text) => &[IdFormat::Text],
        None => &[IdFormat::Decimal, IdFormat::Hex, IdFormat::Text],
    };
    let mut out: Vec<Probe> = Vec::with_capacity(4);
    for same_base in [true, false] {
        for key in r.keys() {
            for &base in bases {
                let probe = key.in_format(base);
                if probe.format() != base || (probe.format() == key.format()) != same_base {
                    continue;
                }
                if !out.iter().any(|p| p.key == probe) {
                    out.push(Probe {
                        key: probe,
                        same_base,
                        receipt_certain,
                    });
                }
            }
        }
    }
    // A text id of a carrier whose responses are numeric (or the reverse) is still compared as
    // text: an id the format does not fit is read as text on both sides.
    if out.is_empty() {
        out.push(Probe {
            key: r.primary.clone(),
            same_base: true,
            receipt_certain,
        });
    }
    out
}

/// How many ambiguous digit-only ids (with hardly a hex letter among the ids) make a side
/// decimal. A hex counter shows a letter in 6 of every 16 consecutive values, and 32 random
/// 8-digit hex ids are all digit-only with probability 0.023^32.
pub const DECIMAL_AFTER: u32 = 32;

/// How many ids with hex letters (and a fair share of them) make a side hex. More than one,
/// so that a stray odd id from a decimal carrier does not make its ids read as hex.
pub const HEX_AFTER: u32 = 3;

/// Learns how one side of a carrier (submit_sm_resp or receipts) writes its ids from the ids
/// themselves, counting digit-only ids that read differently in decimal and hex, and ids with
/// hex letters (or `0x`):
/// - hex once [`HEX_AFTER`] ids had letters and they are at least a fifth of the counted ids;
/// - decimal once [`DECIMAL_AFTER`] ids were digit-only and letters are under a sixteenth.
///
/// Text ids (UUIDs…) teach nothing: they read as text in any case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatLearner {
    /// What was learned so far.
    format: Option<IdFormat>,
    /// Ambiguous digit-only ids seen.
    digit_only: u32,
    /// Ids with hex letters seen.
    letters: u32,
}

impl FormatLearner {
    /// A learner that starts from `format` (learned earlier, or `None`).
    pub fn new(format: Option<IdFormat>) -> Self {
        FormatLearner {
            format,
            digit_only: 0,
            letters: 0,
        }
    }

    /// The format learned, if any.
    pub fn format(&self) -> Option<IdFormat> {
        self.format
    }

    /// Takes one more id into account; returns true when the learned format changed.
    pub fn observe(&mut self, raw: &[u8]) -> bool {
        let t = trim(raw);
        // Not an id at all (an unreadable receipt's text, an empty id): teaches nothing.
        if t.is_empty() || t.len() > 64 || !t.iter().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        match every_reading(t) {
            Readings {
                primary: IdKey::Hex(_),
                ..
            } => self.letters = self.letters.saturating_add(1),
            r @ Readings {
                primary: IdKey::Decimal(_),
                ..
            } if !r.is_certain() => self.digit_only = self.digit_only.saturating_add(1),
            _ => return false,
        }
        let (letters, digits) = (u64::from(self.letters), u64::from(self.digit_only));
        let learned = if letters >= u64::from(HEX_AFTER) && letters * 4 >= digits {
            Some(IdFormat::Hex)
        } else if digits >= u64::from(DECIMAL_AFTER) && letters * 16 < digits {
            Some(IdFormat::Decimal)
        } else {
            self.format
        };
        let changed = learned != self.format;
        self.format = learned;
        changed
    }
}

/// `raw` without leading/trailing ASCII whitespace and NULs.
pub(crate) fn trim(raw: &[u8]) -> &[u8] {
    let junk = |b: &u8| b.is_ascii_whitespace() || *b == 0;
    let start = raw.iter().position(|b| !junk(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !junk(b)).map_or(start, |e| e + 1);
    raw.get(start..end).unwrap_or_default()
}

fn single(k: IdKey) -> Readings {
    Readings {
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
        normalize_message_id(a.as_bytes()).may_match(&normalize_message_id(b.as_bytes()))
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
    fn certainty() {
        assert!(normalize_message_id(b"1a").is_certain());
        assert!(normalize_message_id(b"0009").is_certain());
        assert!(normalize_message_id(b"f81d4fae-7dec").is_certain());
        assert!(!normalize_message_id(b"10").is_certain());
        assert!(readings(b"10", Some(IdFormat::Decimal)).is_certain());
    }

    #[test]
    fn known_formats() {
        assert!(readings(b"0A", Some(IdFormat::Hex))
            .primary
            .same_value(&readings(b"10", Some(IdFormat::Decimal)).primary));
        assert_eq!(
            readings(b"XyZ", Some(IdFormat::Decimal)).primary,
            IdKey::Text("xyz".into())
        );
        assert_eq!(
            readings(b"0x10", Some(IdFormat::Hex)).primary,
            IdKey::Hex(16)
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

    #[test]
    fn probes_same_base_first() {
        // Unknown formats, digit-only "16": the same digits in either base, then the crossings.
        let p = probes(b"16", None, None);
        let keys: Vec<_> = p.iter().map(|p| (p.key.clone(), p.same_base)).collect();
        assert_eq!(
            keys,
            vec![
                (IdKey::Decimal(16), true),
                (IdKey::Hex(22), true),
                (IdKey::Hex(16), false),
                (IdKey::Decimal(22), false),
            ]
        );
        assert!(p.iter().all(|p| !p.receipt_certain));
        // Both formats known: one probe, certain.
        let p = probes(b"1715004", Some(IdFormat::Decimal), Some(IdFormat::Hex));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, IdKey::Hex(1_715_004));
        assert!(p[0].receipt_certain && !p[0].same_base);
        // A UUID: one text probe.
        let p = probes(b"F81D4FAE-7DEC-11D0", None, Some(IdFormat::Hex));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, IdKey::Text("f81d4fae-7dec-11d0".into()));
    }

    #[test]
    fn learner_decimal_needs_a_run_hex_needs_letters() {
        let mut l = FormatLearner::default();
        for i in 1..10u32 {
            assert!(!l.observe(i.to_string().as_bytes()));
        }
        // One odd id with letters changes nothing.
        assert!(!l.observe(b"ab"));
        for i in 10..10 + DECIMAL_AFTER - 1 {
            assert!(!l.observe(i.to_string().as_bytes()));
        }
        assert_eq!(l.format(), None);
        assert!(l.observe(b"999"));
        assert_eq!(l.format(), Some(IdFormat::Decimal));
        // Garbage and text teach nothing.
        assert!(!l.observe(b"id:12 stat:DELIVRD"));
        assert!(!l.observe(b""));
        assert!(!l.observe(b"f81d4fae-7dec"));
        assert_eq!(l.format(), Some(IdFormat::Decimal));
        // A hex counter: letters within the first 16 ids.
        let mut l = FormatLearner::default();
        for i in 1..=12u32 {
            l.observe(format!("{i:x}").as_bytes());
        }
        assert_eq!(l.format(), Some(IdFormat::Hex));
        for i in 13..2000u32 {
            l.observe(format!("{i:x}").as_bytes());
        }
        assert_eq!(l.format(), Some(IdFormat::Hex));
    }
}
