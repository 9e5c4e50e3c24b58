//! Fixed-point prices and ISO 4217 currency codes.
//!
//! Prices are integers in billionths of a currency unit, so sums, markups and comparisons are
//! exact and a deck's `0.0045` never turns into `0.004499999`.

use std::fmt;

/// Billionths per currency unit.
const SCALE: u64 = 1_000_000_000;

/// Why a price or currency field is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not a plain non-negative decimal such as `0.0125`.
    #[error("not a non-negative decimal number")]
    NotDecimal,
    /// More than 9 digits after the decimal point.
    #[error("more than 9 decimal places")]
    TooPrecise,
    /// Larger than this type can hold (about 18 billion units).
    #[error("amount too large")]
    TooLarge,
    /// Not three ASCII letters.
    #[error("currency is not a three-letter ISO 4217 code")]
    BadCurrency,
}

/// A non-negative amount in billionths of a currency unit. The currency is tracked beside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(u64);

impl Price {
    /// Zero.
    pub const ZERO: Price = Price(0);

    /// From billionths of a unit.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Billionths of a unit.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// Parses a decimal such as `0.0125`, `3`, `.5` (at most 9 decimals, no sign, no exponent).
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let s = s.trim();
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(MoneyError::NotDecimal);
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotDecimal);
        }
        if frac.len() > 9 {
            return Err(MoneyError::TooPrecise);
        }
        let mut units: u64 = 0;
        for b in int.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u64::from(b - b'0')))
                .ok_or(MoneyError::TooLarge)?;
        }
        let mut nanos: u64 = 0;
        for i in 0..9 {
            let d = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            nanos = nanos * 10 + d;
        }
        units
            .checked_mul(SCALE)
            .and_then(|u| u.checked_add(nanos))
            .map(Self)
            .ok_or(MoneyError::TooLarge)
    }

    /// `self × rate`, where `rate` is itself a fixed-point factor (1.0 = one unit). Saturates.
    pub fn mul_rate(self, rate: Price) -> Price {
        let v = u128::from(self.0) * u128::from(rate.0) / u128::from(SCALE);
        Price(u64::try_from(v).unwrap_or(u64::MAX))
    }

    /// `self × n`, saturating.
    pub fn mul_int(self, n: u64) -> Price {
        Price(self.0.saturating_mul(n))
    }

    /// `self + other`, saturating.
    pub fn saturating_add(self, other: Price) -> Price {
        Price(self.0.saturating_add(other.0))
    }

    /// The value as a float, for scoring only (never for billing).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

impl fmt::Display for Price {
    /// At least 4 decimals, more when needed, trailing zeros trimmed beyond that.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0 / SCALE;
        let frac = format!("{:09}", self.0 % SCALE);
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 4 {
            frac.get(..4).unwrap_or("0000")
        } else {
            trimmed
        };
        write!(f, "{units}.{shown}")
    }
}

/// An ISO 4217 currency code such as `EUR`, stored as three uppercase ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses three ASCII letters (any case).
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        match s.trim().as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_alphabetic()) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(MoneyError::BadCurrency),
        }
    }

    /// The code as a string.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII letters are stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(Price::parse("0.0125").unwrap().nanos(), 12_500_000);
        assert_eq!(Price::parse("3").unwrap().nanos(), 3_000_000_000);
        assert_eq!(Price::parse(".5").unwrap().nanos(), 500_000_000);
        assert_eq!(Price::parse("1.").unwrap().nanos(), 1_000_000_000);
        assert_eq!(Price::parse("-1"), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse("."), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse("1e3"), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse("0.0000000001"), Err(MoneyError::TooPrecise));
        assert_eq!(Price::parse("99999999999999"), Err(MoneyError::TooLarge));
        assert_eq!(Price::parse("0.0125").unwrap().to_string(), "0.0125");
        assert_eq!(Price::parse("0.00125").unwrap().to_string(), "0.00125");
        assert_eq!(Price::parse("2").unwrap().to_string(), "2.0000");
        let p = Price::parse("0.02").unwrap();
        assert_eq!(
            p.mul_rate(Price::parse("1.1").unwrap()),
            Price::parse("0.022").unwrap()
        );
    }

    #[test]
    fn currencies() {
        assert_eq!(Currency::parse("eur").unwrap().as_str(), "EUR");
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
    }
}
