//! The properties the `rate_deck` fuzz target checks, as a plain function (not part of the
//! API).
//!
//! It takes arbitrary bytes and panics when a property does not hold. The cargo-fuzz target
//! `fuzz/fuzz_targets/rate_deck.rs` is a one-line call to it, and `tests/fuzz_corpus.rs`
//! replays the checked-in corpus and every past crash through it on stable Rust.
// Panicking is the point: a failed property must abort the fuzzer with the input.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::{
    CarrierConfig, Channel, Currency, FxRate, Price, RateDeck, RoutingConfig, RoutingTable, E164,
};

/// Parses the input as a rate deck, for SMS and for voice. Parsing never panics; every error
/// names a line of the input; an accepted deck has one rate per (prefix, effective date), each
/// on a data line, with voice terms exactly for voice. An accepted deck then builds into a
/// routing table in which each prefix, dialled as a number, matches exactly itself and is
/// priced by its newest rate.
pub fn rate_deck(data: &[u8]) {
    // Lines as the deck reader numbers them: `\n`, `\r\n` and a lone `\r` each end one.
    let lines = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count()
        + 1;
    for channel in [Channel::Sms, Channel::Voice] {
        let deck = match RateDeck::from_reader("Fuzz", channel, "fuzz.csv", data) {
            Ok(deck) => deck,
            Err(errors) => {
                assert!(!errors.0.is_empty(), "an error without a problem");
                for e in &errors.0 {
                    assert!(e.line as usize <= lines, "{e} is past the last line");
                    assert!(e.to_string().starts_with("fuzz.csv:"));
                }
                continue;
            }
        };
        let mut newest: HashMap<crate::Prefix, i64> = HashMap::new();
        for r in &deck.rates {
            assert!(
                r.line >= 2 && r.line as usize <= lines,
                "row line {}",
                r.line
            );
            assert_eq!(r.voice.is_some(), channel == Channel::Voice);
            let n = newest.entry(r.prefix).or_insert(r.effective_from);
            *n = (*n).max(r.effective_from);
        }
        let mut dated: Vec<_> = deck
            .rates
            .iter()
            .map(|r| (r.prefix, r.effective_from))
            .collect();
        dated.sort();
        dated.dedup();
        assert_eq!(dated.len(), deck.rates.len(), "duplicate (prefix, date)");
        check_table(deck, channel, &newest);
    }
}

/// Builds a one-carrier table from an accepted deck and looks every prefix up.
fn check_table(deck: RateDeck, channel: Channel, newest: &HashMap<crate::Prefix, i64>) {
    let Some(unix_now) = newest.values().copied().max() else {
        return;
    };
    let base = Currency::parse("EUR").unwrap();
    let mut cfg = RoutingConfig::new(base);
    let mut currencies: Vec<Currency> = deck.rates.iter().map(|r| r.currency).collect();
    currencies.sort();
    currencies.dedup();
    cfg.fx = currencies
        .into_iter()
        .map(|currency| FxRate {
            currency,
            to_base: Price::from_nanos(1_000_000_000),
        })
        .collect();
    cfg.carriers.push(CarrierConfig::new("Fuzz", &[channel]));
    cfg.decks.push(deck);
    // A fuzz harness, not the routing path: the clock only seeds the breakers.
    let table = RoutingTable::build(Arc::new(cfg), unix_now, Instant::now(), None)
        .unwrap_or_else(|e| panic!("an accepted deck must build: {e}"));
    for (prefix, &date) in newest {
        let digits = std::str::from_utf8(prefix.digits()).unwrap();
        let number = E164::parse(digits).unwrap();
        let m = table.lookup(channel, &number);
        assert_eq!(usize::from(m.matched_len), prefix.len(), "{digits}");
        assert_eq!(m.candidates.len(), 1, "{digits}");
        let rate = table.rate(&m.candidates[0]).unwrap();
        assert_eq!((rate.prefix, rate.effective_from), (*prefix, date));
    }
}
