//! Rate decks: a carrier's price list for one channel, parsed from CSV.
//!
//! # Format
//! One header row, then one row per (prefix, effective date). Columns are found by name
//! (case-insensitive, any order); unknown columns are ignored, so carriers' extra columns do no
//! harm.
//!
//! | column | required | example | meaning |
//! | --- | --- | --- | --- |
//! | `prefix` (or `dial_code`, `code`) | yes | `4477` | E.164 digits, optional `+` |
//! | `price` (or `rate`) | yes | `0.0310` | per SMS segment, or per minute for voice |
//! | `currency` | yes | `EUR` | ISO 4217 |
//! | `effective_date` (or `effective`, `effective_from`) | yes | `2025-07-01` | UTC; `YYYY-MM-DD`, optionally `THH:MM:SSZ` or ` HH:MM:SS` |
//! | `country` | no | `United Kingdom` | shown in explanations |
//! | `network` (or `description`) | no | `Mobile - Vodafone` | shown in explanations |
//! | `connection_fee` | voice only, default 0 | `0.0050` | charged once per answered call |
//! | `billing` (or `increments`) | voice only, default `60/60` | `6/6` | first/next increment, seconds |
//!
//! Every row is validated and every error is reported, each with `file:line`. Several rows may
//! share a prefix with different effective dates: the table uses, at build time, the newest rate
//! already in effect, and reports when the next future-dated rate takes effect.

use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::carrier::Channel;
use crate::csv;
use crate::money::{Currency, MoneyError, Price};
use crate::number::{NumberError, Prefix};

/// Seconds since 1970-01-01T00:00:00Z. Effective dates are compared in this unit.
pub type UnixTime = i64;

/// How a voice call is billed: the first increment, then each following increment, in seconds
/// (`60/60`, `6/6`, `1/1`, `30/6` …). Both are at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Billing {
    /// Seconds charged for the first increment (a 1 s call pays this many seconds).
    pub first: u16,
    /// Seconds per following increment; the remainder is rounded up to this.
    pub next: u16,
}

impl Billing {
    /// Per-minute billing, the default when a deck has no `billing` column.
    pub const PER_MINUTE: Billing = Billing {
        first: 60,
        next: 60,
    };

    /// Parses `first/next`, e.g. `60/60` or `6/6`; both must be 1..=3600.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.trim().split_once('/')?;
        let first: u16 = a.trim().parse().ok()?;
        let next: u16 = b.trim().parse().ok()?;
        ((1..=3600).contains(&first) && (1..=3600).contains(&next)).then_some(Self { first, next })
    }

    /// Billable seconds for a call of `secs` seconds (0 for an unanswered call).
    pub fn billable_secs(self, secs: u32) -> u64 {
        if secs == 0 {
            return 0;
        }
        let first = u64::from(self.first);
        let next = u64::from(self.next);
        let secs = u64::from(secs);
        if secs <= first {
            first
        } else {
            first + (secs - first).div_ceil(next) * next
        }
    }
}

impl fmt::Display for Billing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.first, self.next)
    }
}

/// Voice-only terms of a rate row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceTerms {
    /// Charged once per answered call, in the row's currency.
    pub connection_fee: Price,
    /// Billing increments.
    pub billing: Billing,
}

impl VoiceTerms {
    /// Cost of an answered call of `secs` seconds at `per_minute`.
    pub fn call_cost(&self, per_minute: Price, secs: u32) -> Price {
        let billable = self.billing.billable_secs(secs);
        let nanos = u128::from(per_minute.nanos()) * u128::from(billable) / 60;
        Price::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            .saturating_add(self.connection_fee)
    }
}

/// One row of a rate deck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    /// The dialling prefix this price applies to (longest match wins).
    pub prefix: Prefix,
    /// Per SMS segment, or per minute for voice, in `currency`.
    pub price: Price,
    /// Currency of `price` and of the connection fee.
    pub currency: Currency,
    /// When this price takes effect (UTC seconds).
    pub effective_from: UnixTime,
    /// Country name, if the deck gives one (for explanations only).
    pub country: Option<String>,
    /// Network or description, if the deck gives one (for explanations only).
    pub network: Option<String>,
    /// Voice terms; `Some` exactly for voice decks.
    pub voice: Option<VoiceTerms>,
    /// 1-based line in the source, for error messages and explanations.
    pub line: u32,
}

/// A carrier's rate deck for one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateDeck {
    /// Name of the carrier this deck belongs to (matches [`crate::CarrierConfig::name`]).
    pub carrier: String,
    /// Which channel the prices are for.
    pub channel: Channel,
    /// Where the deck came from (a file name), used in every error message.
    pub source: String,
    /// The rows, in file order.
    pub rates: Vec<Rate>,
}

/// One problem in a deck, with its location.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}: {kind}")]
pub struct DeckError {
    /// The deck's source name (file).
    pub source_name: String,
    /// 1-based line (0 when the problem is with the whole file, e.g. it cannot be read).
    pub line: u32,
    /// What is wrong.
    pub kind: DeckErrorKind,
}

/// What is wrong with a deck row or file. The deck's author must fix it; retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeckErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The file has no header row.
    #[error("empty deck (no header row)")]
    Empty,
    /// CSV quoting error (stray, unterminated or trailing text after a quote); rows after it
    /// were not read.
    #[error("CSV syntax: {0}")]
    Syntax(&'static str),
    /// The header lacks a required column.
    #[error("missing required column `{0}`")]
    MissingColumn(&'static str),
    /// A row lacks a value for a required column.
    #[error("empty `{0}`")]
    MissingValue(&'static str),
    /// Bad prefix.
    #[error("prefix {value:?}: {error}")]
    Prefix {
        /// The offending text.
        value: String,
        /// Why it is rejected.
        error: NumberError,
    },
    /// Bad price, connection fee or currency.
    #[error("{column} {value:?}: {error}")]
    Money {
        /// Which column.
        column: &'static str,
        /// The offending text.
        value: String,
        /// Why it is rejected.
        error: MoneyError,
    },
    /// Bad effective date.
    #[error("effective date {0:?}: expected YYYY-MM-DD[THH:MM:SSZ]")]
    Date(String),
    /// Bad billing increments.
    #[error("billing {0:?}: expected first/next seconds such as 60/60 or 6/6")]
    Billing(String),
    /// The same prefix and effective date appear twice.
    #[error("prefix {prefix} effective {date} already defined on line {first_line}")]
    Duplicate {
        /// The repeated prefix.
        prefix: String,
        /// The repeated date, as written.
        date: String,
        /// Where it was first defined.
        first_line: u32,
    },
}

/// All problems found in a deck. Loading reports them at once rather than the first only.
#[derive(Debug)]
pub struct DeckErrors(pub Vec<DeckError>);

impl fmt::Display for DeckErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in rate deck", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeckErrors {}

/// Column positions found in the header.
struct Columns {
    prefix: usize,
    price: usize,
    currency: usize,
    date: usize,
    country: Option<usize>,
    network: Option<usize>,
    fee: Option<usize>,
    billing: Option<usize>,
}

impl RateDeck {
    /// Parses a deck from CSV text. `source` names it in error messages (usually the file name).
    pub fn parse(
        carrier: &str,
        channel: Channel,
        source: &str,
        text: &str,
    ) -> Result<Self, DeckErrors> {
        let mut errors = Vec::new();
        let err = |line: u32, kind: DeckErrorKind| DeckError {
            source_name: source.to_owned(),
            line,
            kind,
        };
        let (records, syntax) = csv::records(text);
        let mut rows = records.into_iter();
        let Some(header) = rows.next() else {
            let kind = match syntax {
                Some(s) => DeckErrorKind::Syntax(s.reason),
                None => DeckErrorKind::Empty,
            };
            return Err(DeckErrors(vec![err(1, kind)]));
        };
        let cols = match find_columns(&header.fields) {
            Ok(c) => c,
            Err(missing) => {
                let errs = missing
                    .into_iter()
                    .map(|m| err(header.line, DeckErrorKind::MissingColumn(m)));
                return Err(DeckErrors(errs.collect()));
            }
        };
        let mut rates = Vec::new();
        let mut seen = std::collections::HashMap::<(Prefix, UnixTime), u32>::new();
        for rec in rows {
            match parse_row(&cols, &rec, channel) {
                Ok(rate) => match seen.get(&(rate.prefix, rate.effective_from)) {
                    Some(&first_line) => errors.push(err(
                        rec.line,
                        DeckErrorKind::Duplicate {
                            prefix: rate.prefix.to_string(),
                            date: field(&rec, Some(cols.date)).to_owned(),
                            first_line,
                        },
                    )),
                    None => {
                        seen.insert((rate.prefix, rate.effective_from), rec.line);
                        rates.push(rate);
                    }
                },
                Err(kinds) => errors.extend(kinds.into_iter().map(|k| err(rec.line, k))),
            }
        }
        if let Some(s) = syntax {
            errors.push(err(s.line, DeckErrorKind::Syntax(s.reason)));
        }
        if errors.is_empty() {
            Ok(Self {
                carrier: carrier.to_owned(),
                channel,
                source: source.to_owned(),
                rates,
            })
        } else {
            Err(DeckErrors(errors))
        }
    }

    /// Reads and parses a deck from any reader (a file, a network body the caller fetched …).
    pub fn from_reader(
        carrier: &str,
        channel: Channel,
        source: &str,
        mut reader: impl Read,
    ) -> Result<Self, DeckErrors> {
        let mut bytes = Vec::new();
        let whole = |kind| {
            DeckErrors(vec![DeckError {
                source_name: source.to_owned(),
                line: 0,
                kind,
            }])
        };
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| whole(DeckErrorKind::Io(e)))?;
        let text = String::from_utf8(bytes).map_err(|_| whole(DeckErrorKind::NotUtf8))?;
        Self::parse(carrier, channel, source, &text)
    }

    /// Reads and parses a deck file; errors name the file as given. Load-time only: the table
    /// never touches files.
    pub fn from_path(
        carrier: &str,
        channel: Channel,
        path: impl AsRef<Path>,
    ) -> Result<Self, DeckErrors> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| {
            DeckErrors(vec![DeckError {
                source_name: source.clone(),
                line: 0,
                kind: DeckErrorKind::Io(e),
            }])
        })?;
        Self::from_reader(carrier, channel, &source, std::io::BufReader::new(file))
    }
}

fn find_columns(header: &[String]) -> Result<Columns, Vec<&'static str>> {
    let find = |names: &[&str]| {
        header.iter().position(|h| {
            let h = h.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            names.contains(&h.as_str())
        })
    };
    let prefix = find(&["prefix", "dial_code", "code"]);
    let price = find(&["price", "rate"]);
    let currency = find(&["currency"]);
    let date = find(&["effective_date", "effective", "effective_from"]);
    match (prefix, price, currency, date) {
        (Some(prefix), Some(price), Some(currency), Some(date)) => Ok(Columns {
            prefix,
            price,
            currency,
            date,
            country: find(&["country"]),
            network: find(&["network", "description"]),
            fee: find(&["connection_fee"]),
            billing: find(&["billing", "increments"]),
        }),
        _ => {
            let mut missing = Vec::new();
            for (col, name) in [
                (prefix, "prefix"),
                (price, "price"),
                (currency, "currency"),
                (date, "effective_date"),
            ] {
                if col.is_none() {
                    missing.push(name);
                }
            }
            Err(missing)
        }
    }
}

fn field(rec: &csv::Record, col: Option<usize>) -> &str {
    col.and_then(|c| rec.fields.get(c)).map_or("", |s| s.trim())
}

fn parse_row(
    cols: &Columns,
    rec: &csv::Record,
    channel: Channel,
) -> Result<Rate, Vec<DeckErrorKind>> {
    let mut errs = Vec::new();
    let required = |col: usize, name: &'static str, errs: &mut Vec<DeckErrorKind>| {
        let v = field(rec, Some(col));
        if v.is_empty() {
            errs.push(DeckErrorKind::MissingValue(name));
            None
        } else {
            Some(v)
        }
    };
    let prefix = required(cols.prefix, "prefix", &mut errs).and_then(|v| {
        Prefix::parse(v)
            .map_err(|error| {
                errs.push(DeckErrorKind::Prefix {
                    value: v.to_owned(),
                    error,
                })
            })
            .ok()
    });
    let price = required(cols.price, "price", &mut errs)
        .and_then(|v| money(v, "price", Price::parse, &mut errs));
    let currency = required(cols.currency, "currency", &mut errs)
        .and_then(|v| money(v, "currency", Currency::parse, &mut errs));
    let date = required(cols.date, "effective_date", &mut errs).and_then(|v| {
        parse_date(v).or_else(|| {
            errs.push(DeckErrorKind::Date(v.to_owned()));
            None
        })
    });
    let voice = match channel {
        Channel::Voice => {
            let fee = match field(rec, cols.fee) {
                "" => Some(Price::ZERO),
                v => money(v, "connection_fee", Price::parse, &mut errs),
            };
            let billing = match field(rec, cols.billing) {
                "" => Some(Billing::PER_MINUTE),
                v => Billing::parse(v).or_else(|| {
                    errs.push(DeckErrorKind::Billing(v.to_owned()));
                    None
                }),
            };
            fee.zip(billing)
                .map(|(connection_fee, billing)| VoiceTerms {
                    connection_fee,
                    billing,
                })
        }
        // Priced per message: no voice terms.
        _ => None,
    };
    let optional = |col| {
        Some(field(rec, col))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match (prefix, price, currency, date) {
        (Some(prefix), Some(price), Some(currency), Some(effective_from))
            if errs.is_empty() && (voice.is_some() || channel != Channel::Voice) =>
        {
            Ok(Rate {
                prefix,
                price,
                currency,
                effective_from,
                country: optional(cols.country),
                network: optional(cols.network),
                voice,
                line: rec.line,
            })
        }
        _ => Err(errs),
    }
}

fn money<T>(
    v: &str,
    column: &'static str,
    parse: fn(&str) -> Result<T, MoneyError>,
    errs: &mut Vec<DeckErrorKind>,
) -> Option<T> {
    parse(v)
        .map_err(|error| {
            errs.push(DeckErrorKind::Money {
                column,
                value: v.to_owned(),
                error,
            })
        })
        .ok()
}

/// Parses `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS]`, optionally `Z`.
/// Always UTC.
pub fn parse_date(s: &str) -> Option<UnixTime> {
    let s = s.trim();
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = num(parts.next()?, 4)?;
    let m: i64 = num(parts.next()?, 2)?;
    let d: i64 = num(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let hh: i64 = num(parts.next()?, 2)?;
        let mm: i64 = num(parts.next()?, 2)?;
        let ss: i64 = match parts.next() {
            Some(p) => num(p, 2)?,
            None => 0,
        };
        if parts.next().is_some() || hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        secs += hh * 3600 + mm * 60 + ss;
    }
    Some(secs)
}

fn num(s: &str, width: usize) -> Option<i64> {
    (s.len() == width && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_date("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(parse_date("2024-02-29 12:00"), Some(1_709_208_000));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("23-01-01"), None);
        assert_eq!(parse_date("2023-01-01T25:00:00"), None);
    }

    #[test]
    fn billing() {
        let b = Billing::parse("60/60").unwrap();
        assert_eq!(
            (b.billable_secs(0), b.billable_secs(1), b.billable_secs(61)),
            (0, 60, 120)
        );
        let b = Billing::parse("30/6").unwrap();
        assert_eq!(
            (
                b.billable_secs(29),
                b.billable_secs(31),
                b.billable_secs(37)
            ),
            (30, 36, 42)
        );
        assert_eq!(Billing::parse("0/6"), None);
        assert_eq!(Billing::parse("60"), None);
        let terms = VoiceTerms {
            connection_fee: Price::parse("0.01").unwrap(),
            billing: Billing::parse("6/6").unwrap(),
        };
        // 0.06/min, 7 s billed as 12 s = 0.012, plus 0.01 fee.
        assert_eq!(
            terms.call_cost(Price::parse("0.06").unwrap(), 7),
            Price::parse("0.022").unwrap()
        );
    }

    #[test]
    fn reports_every_row_error_with_line() {
        let text = "Prefix,Price,Currency,Effective Date,Country\n\
                    44,0.03,EUR,2025-01-01,United Kingdom\n\
                    4477,abc,EUR,2025-01-01,\n\
                    0447,0.01,EURO,2025-01-01,\n\
                    44,0.03,EUR,2025-01-01,dup\n\
                    33,0.04,EUR,2025-02-30,France\n";
        let errs = RateDeck::parse("Acme", Channel::Sms, "acme.csv", text).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(
            lines[0].starts_with("acme.csv:3: price \"abc\""),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("acme.csv:4: prefix \"0447\""),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("acme.csv:4: currency \"EURO\""),
            "{}",
            lines[2]
        );
        assert!(lines[3]
            .contains("acme.csv:5: prefix 44 effective 2025-01-01 already defined on line 2"));
        assert!(
            lines[4].starts_with("acme.csv:6: effective date"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn missing_columns_reported_together() {
        let errs = RateDeck::parse("Acme", Channel::Sms, "a.csv", "code,cost\n1,2\n").unwrap_err();
        let text = errs.to_string();
        assert!(
            text.contains("a.csv:1: missing required column `price`"),
            "{text}"
        );
        assert!(
            text.contains("`currency`") && text.contains("`effective_date`"),
            "{text}"
        );
    }

    #[test]
    fn voice_terms_parsed() {
        let text = "prefix,rate,currency,effective_date,connection_fee,billing\n\
                    1,0.004,USD,2025-01-01,,6/6\n\
                    44,0.01,USD,2025-01-01,0.002,\n\
                    33,0.01,USD,2025-01-01,0.002,60\n";
        let errs = RateDeck::parse("V", Channel::Voice, "v.csv", text).unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].line, 4);
        let ok = RateDeck::parse(
            "V",
            Channel::Voice,
            "v.csv",
            &text.replace(",60\n", ",1/1\n"),
        )
        .unwrap();
        assert_eq!(ok.rates.len(), 3);
        assert_eq!(
            ok.rates[0].voice.unwrap().billing,
            Billing { first: 6, next: 6 }
        );
        assert_eq!(ok.rates[1].voice.unwrap().billing, Billing::PER_MINUTE);
        assert_eq!(
            ok.rates[1].voice.unwrap().connection_fee,
            Price::parse("0.002").unwrap()
        );
    }
}
