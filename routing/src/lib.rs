//! Least-cost routing: rate decks, the precomputed prefix table, health, circuit breakers and
//! token buckets. Pure: no I/O on the hot path, no clock (time is passed in).
//!
//! # Data flow
//! ```text
//! CSV decks ──► RateDeck (validated, file:line errors) ─┐
//! carriers, tenant plans, fx, scoring ──────────────────┴► RoutingConfig
//!   ──► RoutingTable::build (off the hot path: select rates in effect, rank per prefix)
//!   ──► Router (ArcSwap; rebuild + atomic swap, generation number)
//! lookup: E164 ──► trie walk ──► cheapest-first candidates ──► tenant filter, breakers,
//!          health × priority scoring ──► ranked carriers in a caller-provided RouteBuf
//! outcomes ──► CarrierState::record (health atomics + breaker) ──► next lookups
//! ```
//!
//! # Layout
//! Bottom first; each module uses only modules above it in this list.
//! - [`number`]: E.164 numbers and prefixes (parsed once, inline, `Copy`).
//! - [`money`]: fixed-point prices and currencies.
//! - `csv`: deck CSV framing on the `csv` crate, with line numbers and strict quoting.
//! - [`carrier`]: carriers and how numbers are rewritten for them.
//! - [`deck`]: rate decks and their CSV format (see the module docs).
//! - [`plan`]: tenant route plans.
//! - [`breaker`], [`health`], [`state`]: circuit breakers and live carrier health.
//! - [`config`]: the build input.
//! - `candidate`: [`Candidate`] and [`CarrierId`], what the table stores per prefix.
//! - `trie`: the flat digit trie with per-node ranked candidate lists.
//! - [`table`]: build, lookup, route, scoring; [`explain`]: explanations.
//! - [`router`]: the `ArcSwap` handle.
//! - [`bucket`]: token buckets for TPS/CPS (uses nothing else here).
//! - `invariants` (hidden): the property the `rate_deck` fuzz target checks, shared with
//!   `tests/fuzz_corpus.rs`.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod breaker;
pub mod bucket;
mod candidate;
pub mod carrier;
pub mod config;
mod csv;
pub mod deck;
pub mod explain;
pub mod health;
#[doc(hidden)]
pub mod invariants;
pub mod money;
pub mod number;
pub mod plan;
pub mod router;
pub mod state;
pub mod table;
mod trie;

pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker, FailureClass, Outcome};
pub use bucket::{TokenBucket, Wait};
pub use carrier::{CarrierConfig, Channel, DialString, FlatPrice, NumberRewrite, QualityClass};
pub use config::{FxRate, Priority, RoutingConfig, ScoringConfig};
pub use deck::{
    Billing, DeckError, DeckErrorKind, DeckErrors, Rate, RateDeck, UnixTime, VoiceTerms,
};
pub use explain::{Exclusion, ExplainedCandidate, Explanation};
pub use health::{Health, HealthSnapshot};
pub use money::{Currency, MoneyError, Price};
pub use number::{NumberError, Prefix, E164};
pub use plan::{Markup, Preference, RoutePlan};
pub use router::Router;
pub use state::{BreakerView, CarrierState};
pub use table::{
    BuildError, BuildProblem, Candidate, CarrierId, FlatRouteRequest, Match, Ranked, RouteBuf,
    RouteError, RouteRequest, RoutingTable, TableStats, TenantId, VoiceCharge, MAX_CANDIDATES,
};
