//! Route plans: what each tenant may use and what it pays.

use crate::money::Price;
use crate::number::Prefix;

/// How a tenant wants its candidates ordered; [`Preference::Weighted`] unless it says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Preference {
    /// Cheapest first; health only breaks ties (open breakers are still skipped).
    Cheapest,
    /// Healthiest first (measured health × quality class); price only breaks ties.
    Quality,
    /// Blend of health and cost, weighted by message priority
    /// ([`crate::ScoringConfig::health_weight`]).
    #[default]
    Weighted,
}

/// The tenant's price: carrier cost (in the base currency) × (1 + percent) + fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Markup {
    /// Percentage on top of cost, in basis points (1500 = 15 %).
    pub basis_points: u32,
    /// Flat amount added per message (or per call), base currency.
    pub fixed: Price,
}

impl Markup {
    /// The tenant's price for a carrier cost.
    #[inline]
    pub fn apply(&self, cost: Price) -> Price {
        // Fast path in u64 (u128 division is a library call on the hot path).
        if let Some(scaled) = cost.nanos().checked_mul(u64::from(self.basis_points)) {
            let with = cost.nanos().saturating_add(scaled / 10_000);
            return Price::from_nanos(with).saturating_add(self.fixed);
        }
        let pct = u128::from(cost.nanos()) * u128::from(self.basis_points) / 10_000;
        let with = u128::from(cost.nanos()) + pct;
        Price::from_nanos(u64::try_from(with).unwrap_or(u64::MAX)).saturating_add(self.fixed)
    }
}

/// One tenant's routing policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePlan {
    /// Tenant name; unique.
    pub tenant: String,
    /// If set, only these carriers may be used (by name).
    pub allowed: Option<Vec<String>>,
    /// Carriers never to use (applied after `allowed`).
    pub blocked: Vec<String>,
    /// Destinations this tenant may not send to (e.g. premium-rate ranges, embargoed countries).
    pub blocked_prefixes: Vec<Prefix>,
    /// What the tenant pays over cost.
    pub markup: Markup,
    /// How candidates are ordered for this tenant.
    pub preference: Preference,
}

impl RoutePlan {
    /// A plan that allows every carrier, blocks nothing, adds no markup and blends by priority.
    pub fn open(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            allowed: None,
            blocked: Vec::new(),
            blocked_prefixes: Vec::new(),
            markup: Markup::default(),
            preference: Preference::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup() {
        let m = Markup {
            basis_points: 1500,
            fixed: Price::parse("0.001").unwrap(),
        };
        assert_eq!(
            m.apply(Price::parse("0.02").unwrap()),
            Price::parse("0.024").unwrap()
        );
    }
}
