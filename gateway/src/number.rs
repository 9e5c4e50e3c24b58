//! E.164 validation on the hot path.
//!
//! Every `POST /v1/messages` validates its recipient against libphonenumber's metadata (the
//! `phonenumber` crate). That crate keeps its compiled patterns in one global
//! `Mutex<LruCache<String, Regex>>` of 100 entries: every pattern use takes the lock and hashes
//! the pattern's source text (hundreds of bytes, SipHash), and traffic to more than a handful of
//! countries evicts and recompiles patterns. Profiled at 10k msg/s it was ≈26% of the gateway's
//! CPU.
//!
//! [`parse_e164`] keeps the crate's metadata and its exact rules, but compiles each country
//! code's patterns once, on first use, into a lock-free table indexed by the code. It decides
//! the common case — `+` and digits, no national prefix to strip — itself, and hands anything
//! else (formatting characters, a leading zero, a national prefix, a pattern it could not
//! compile) to the crate's own parser, so both paths give the same answer; a differential test
//! over every example number in the metadata (and mutations of them) checks that they do.

use std::str::FromStr;
use std::sync::OnceLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};
use switchyard_routing::E164;

/// A valid number in E.164 form with the region (ISO 3166 alpha-2) it belongs to, when it has
/// one (non-geographic codes such as +800 have none).
pub type Parsed = (E164, Option<String>);

/// Parses an E.164 number (`+` and the country code first) and checks that libphonenumber's
/// metadata considers it valid. The error says why not, quoting the input.
pub fn parse_e164(raw: &str) -> Result<Parsed, String> {
    if !raw.starts_with('+') {
        return Err(format!(
            "{raw:?} must be in E.164 form, starting with + and the country code"
        ));
    }
    match fast(raw) {
        Some(result) => result,
        None => slow(raw),
    }
}

/// Loads libphonenumber's metadata (a second or more on a small machine), so the first
/// request to validate a number does not pay for it.
pub fn warm() {
    let _ = DATABASE.region(&44);
}

/// The `phonenumber` crate's own parser and validator.
pub fn slow(raw: &str) -> Result<Parsed, String> {
    let parsed =
        phonenumber::parse(None, raw).map_err(|e| format!("{raw:?} is not a phone number: {e}"))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(invalid(raw));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    let number = E164::parse(&e164).map_err(|e| format!("{raw:?}: {e}"))?;
    let country = parsed.country().id().map(|c| c.as_ref().to_owned());
    Ok((number, country))
}

/// Decides `raw` with the precompiled patterns, or `None` when the crate's parser must (input
/// it would rewrite, or input it would reject with its own error message).
pub fn fast(raw: &str) -> Option<Result<Parsed, String>> {
    let digits = raw.strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    let (code_len, code) = (1..=MAX_CODE_LEN.min(digits.len())).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        DATABASE.by_code(&code).map(|_| (len, code))
    })?;
    let national = digits.get(code_len..)?;
    // The crate refuses these with its own errors (too short, too long) or strips a national
    // prefix or trunk zero from them: leave them to it.
    if national.len() <= MIN_NSN_LEN || national.len() > MAX_NSN_LEN || national.starts_with('0') {
        return None;
    }
    let table = CountryCode::get(code)?;
    let Some(region) = table.source_for(national) else {
        return Some(Err(invalid(raw)));
    };
    if region.rewrites(national) {
        return None;
    }
    if !region.is_valid(national) {
        return Some(Err(invalid(raw)));
    }
    let number = match E164::parse(raw) {
        Ok(number) => number,
        Err(_) => return None,
    };
    Some(Ok((number, region.country.clone())))
}

/// A sender as tenants may give it: an E.164 number with `+`, a short code (3–8 digits) or an
/// alphanumeric id of 1–11 characters (letters, digits, space and `- _ . &`). The error says
/// why not, quoting the input.
pub fn validate_sender(from: &str) -> Result<String, String> {
    if from.is_empty() {
        return Err("from must not be empty".into());
    }
    if let Some(digits) = from.strip_prefix('+') {
        if (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(from.to_owned());
        }
        return Err(format!("{from:?} is not an E.164 number"));
    }
    if from.bytes().all(|b| b.is_ascii_digit()) {
        if (3..=8).contains(&from.len()) {
            return Ok(from.to_owned());
        }
        return Err(format!(
            "{from:?}: numeric senders are short codes of 3 to 8 digits or E.164 numbers with +"
        ));
    }
    let chars = from.chars().count();
    if chars > 11 {
        return Err(format!(
            "alphanumeric sender ids are at most 11 characters ({from:?} has {chars})"
        ));
    }
    if !from
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " -_.&".contains(c))
    {
        return Err(format!(
            "{from:?}: alphanumeric sender ids use letters, digits, space and - _ . &"
        ));
    }
    Ok(from.to_owned())
}

/// The crate's limits (libphonenumber's): country codes have at most 3 digits; a national
/// number has more than 2 and at most 17.
const MAX_CODE_LEN: usize = 3;
const MIN_NSN_LEN: usize = 2;
const MAX_NSN_LEN: usize = 17;

fn invalid(raw: &str) -> String {
    format!("{raw:?} is not a valid number for its country")
}

/// Every region sharing one country code, in the metadata's order, with compiled patterns.
struct CountryCode {
    regions: Vec<Region>,
}

/// One slot per possible country code (1–999): built on first use, then read without locks.
/// `None` inside a slot: a pattern did not compile, so that code always takes the slow path.
static TABLE: [OnceLock<Option<CountryCode>>; 1000] = [const { OnceLock::new() }; 1000];

impl CountryCode {
    fn get(code: u16) -> Option<&'static CountryCode> {
        TABLE
            .get(usize::from(code))?
            .get_or_init(|| CountryCode::build(code))
            .as_ref()
    }

    fn build(code: u16) -> Option<CountryCode> {
        let ids = DATABASE.region(&code)?;
        let single = ids.len() == 1;
        let mut regions = Vec::with_capacity(ids.len());
        for id in ids {
            let meta = if id == "001" {
                DATABASE.by_code(&code)?.into_iter().next()?
            } else {
                DATABASE.by_id(id)?
            };
            regions.push(Region::build(meta, single)?);
        }
        Some(CountryCode { regions })
    }

    /// The region whose rules apply to `national` (the crate's `source_for`): the only one, or
    /// the first whose leading digits match, or (without leading digits) whose patterns do.
    fn source_for(&self, national: &str) -> Option<&Region> {
        if let [only] = self.regions.as_slice() {
            return Some(only);
        }
        self.regions
            .iter()
            .find(|region| match &region.leading_digits {
                Some(pattern) => pattern.is_match(national),
                None => region.is_valid(national),
            })
    }
}

/// One region's patterns.
struct Region {
    /// ISO 3166 alpha-2 id, `None` for non-geographic codes ("001").
    country: Option<String>,
    /// Must match for the region to own a number, when several share a code.
    leading_digits: Option<Regex>,
    /// The crate strips what this matches (national prefix for parsing): such input goes slow.
    national_prefix_for_parsing: Option<Regex>,
    /// The national prefix ("0" in many countries): input starting with it goes slow.
    national_prefix: Option<String>,
    /// Every valid number matches this.
    general: Pattern,
    /// The number types; a valid number matches at least one.
    types: Vec<Pattern>,
}

impl Region {
    fn build(meta: &Metadata, single: bool) -> Option<Region> {
        let d = meta.descriptors();
        // Any type makes a number valid, so the order only decides how soon a match ends the
        // search: mobile and fixed-line first, as most messages go to them.
        let types = [
            d.mobile(),
            d.fixed_line(),
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .map(Pattern::build)
        .collect::<Option<Vec<_>>>()?;
        let leading_digits = match meta.leading_digits() {
            // With one region per code the crate never consults them.
            Some(p) if !single => Some(compile(p.as_str())?),
            _ => None,
        };
        let national_prefix_for_parsing = match meta.national_prefix_for_parsing() {
            Some(p) => Some(compile(p.as_str())?),
            None => None,
        };
        Some(Region {
            country: phonenumber::country::Id::from_str(meta.id())
                .ok()
                .map(|id| id.as_ref().to_owned()),
            leading_digits,
            national_prefix_for_parsing,
            national_prefix: meta.national_prefix().map(str::to_owned),
            general: Pattern::build(d.general())?,
            types,
        })
    }

    /// Whether the crate's parser would rewrite `national` (strip a prefix or a carrier code).
    fn rewrites(&self, national: &str) -> bool {
        self.national_prefix_for_parsing
            .as_ref()
            .is_some_and(|p| p.is_match(national))
            || self
                .national_prefix
                .as_deref()
                .is_some_and(|p| !p.is_empty() && national.starts_with(p))
    }

    /// libphonenumber's "number type is not unknown".
    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// A descriptor: possible lengths and a pattern that must match from the first digit.
struct Pattern {
    lengths: Vec<u16>,
    regex: Regex,
}

impl Pattern {
    fn build(desc: &Descriptor) -> Option<Pattern> {
        Some(Pattern {
            lengths: desc.possible_length().to_vec(),
            regex: compile(desc.national_number().as_str())?,
        })
    }

    /// The crate's `Descriptor::is_match`: length allowed (when lengths are given) and a match
    /// starting at the first digit (not necessarily spanning the number).
    fn is_match(&self, national: &str) -> bool {
        let len_ok = self.lengths.is_empty()
            || u16::try_from(national.len()).is_ok_and(|len| self.lengths.contains(&len));
        len_ok && self.regex.is_match(national)
    }
}

/// Compiles a metadata pattern anchored at the start, with the crate's flags (verbose mode).
fn compile(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_numbers_take_the_fast_path() {
        for raw in [
            "+447911123456",
            "+447400123456",
            "+14155552671",
            "+33612345678",
        ] {
            let fast = fast(raw).expect("decided without the slow path");
            assert_eq!(fast, slow(raw), "{raw}");
            assert!(fast.is_ok(), "{raw}");
        }
        let (number, country) = parse_e164("+447400123456").unwrap();
        assert_eq!(number.to_string(), "+447400123456");
        assert_eq!(country.as_deref(), Some("GB"));
        // +44 7911 is Guernsey's: the region comes from the number, not only its code.
        assert_eq!(
            parse_e164("+447911123456").unwrap().1.as_deref(),
            Some("GG")
        );
        // Shared code +1: the region comes from the number.
        assert_eq!(parse_e164("+16137827274").unwrap().1.as_deref(), Some("CA"));
    }

    #[test]
    fn invalid_and_odd_input_get_the_same_answer_as_the_crate() {
        for raw in [
            "+447700900123", // Ofcom drama range: not a valid number
            "+4479111234567",
            "+44",
            "+0441234",
            "+999123456789",
            "+44 7911 123456",
            "+4407911123456",
            "+800 1234 5678",
            "+80012345678",
            "+1 2530000",
            "+39 0236618300",
        ] {
            assert_eq!(parse_e164(raw), slow(raw), "{raw}");
        }
        assert!(parse_e164("447911123456").is_err());
    }

    /// Every example number of every region and type, and mutations of each, give the same
    /// answer on both paths; most are decided by the fast one.
    #[test]
    fn agrees_with_the_crate_on_every_example_number() {
        let mut decided = 0usize;
        let mut total = 0usize;
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let d = meta.descriptors();
            let examples = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .filter_map(Descriptor::example);
            for example in examples {
                let mut inputs = vec![format!("+{code}{example}")];
                inputs.push(format!("+{code}{example}7"));
                if example.len() > 1 {
                    inputs.push(format!("+{code}{}", &example[..example.len() - 1]));
                    inputs.push(format!("+{code}9{}", &example[1..]));
                }
                for raw in inputs {
                    total += 1;
                    if let Some(fast) = fast(&raw) {
                        decided += 1;
                        assert_eq!(fast, slow(&raw), "{raw}");
                    }
                }
            }
        }
        assert!(total > 2000, "{total}");
        assert!(
            decided * 10 > total * 7,
            "{decided} of {total} decided fast"
        );
    }
}
