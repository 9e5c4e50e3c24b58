//! Everything a table is built from: carriers, decks, plans, currency conversion and scoring.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::carrier::CarrierConfig;
use crate::deck::RateDeck;
use crate::money::{Currency, Price};
use crate::plan::RoutePlan;

/// Message (or call) priority; it sets how much health weighs against cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// OTP, alerts: reliability first.
    Critical,
    /// Transactional traffic.
    High,
    /// Default.
    Normal,
    /// Bulk and marketing: price first.
    Low,
}

impl Priority {
    /// Index into [`ScoringConfig::health_weight`].
    pub(crate) fn index(self) -> usize {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }
}

/// How candidates are scored at lookup time.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoringConfig {
    /// Weight of health against cost (`score = w·health + (1−w)·cost`) for
    /// critical, high, normal and low priority. Defaults 0.8, 0.6, 0.6, 0.3.
    pub health_weight: [f32; 4],
    /// Latency at which the latency factor of health is 0.75 (it is 1.0 at zero latency and
    /// tends to 0.5 as latency grows).
    pub latency_reference: Duration,
    /// Candidates whose score is within this of the best share traffic by carrier weight.
    pub tie_band: f32,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            health_weight: [0.8, 0.6, 0.6, 0.3],
            latency_reference: Duration::from_secs(1),
            tie_band: 0.01,
        }
    }
}

/// Conversion of one currency into the table's base currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxRate {
    /// The deck currency.
    pub currency: Currency,
    /// How many base-currency units one unit of `currency` is worth (fixed-point, like prices).
    pub to_base: Price,
}

/// Input to [`crate::RoutingTable::build`].
#[derive(Clone, Debug)]
pub struct RoutingConfig {
    /// Currency every price is compared and reported in.
    pub base_currency: Currency,
    /// Conversions for decks priced in other currencies; a deck currency with no entry is an
    /// error.
    pub fx: Vec<FxRate>,
    /// Carriers; their order fixes the [`crate::CarrierId`]s of a table.
    pub carriers: Vec<CarrierConfig>,
    /// Rate decks, any number per carrier and channel.
    pub decks: Vec<RateDeck>,
    /// Tenant plans; their order fixes the [`crate::TenantId`]s of a table.
    pub plans: Vec<RoutePlan>,
    /// Lookup-time scoring.
    pub scoring: ScoringConfig,
    /// Circuit breaker settings for every carrier.
    pub breaker: BreakerConfig,
    /// Voice candidates are ranked by the cost of a call this long (seconds), so connection fees
    /// and billing increments count, not just the per-minute rate.
    pub voice_reference_secs: u32,
}

impl RoutingConfig {
    /// An empty configuration in `base_currency` with default scoring and breakers.
    pub fn new(base_currency: Currency) -> Self {
        Self {
            base_currency,
            fx: Vec::new(),
            carriers: Vec::new(),
            decks: Vec::new(),
            plans: Vec::new(),
            scoring: ScoringConfig::default(),
            breaker: BreakerConfig::default(),
            voice_reference_secs: 90,
        }
    }
}
