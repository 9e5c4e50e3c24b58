//! What the routing table holds for each prefix: [`Candidate`]s, one carrier's offer each,
//! naming the carrier by its [`CarrierId`]. `trie` ranks and stores them; [`crate::table`]
//! makes them from the rate decks and reads them back.

use crate::money::Price;

/// Most candidates kept per prefix (cheapest first) and returned by a lookup.
pub const MAX_CANDIDATES: usize = 32;

/// A carrier's index in one table (its position in [`crate::RoutingConfig::carriers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CarrierId(pub(crate) u16);

impl CarrierId {
    #[cfg(test)]
    pub(crate) fn for_test(i: u16) -> Self {
        Self(i)
    }

    /// Position in [`crate::RoutingConfig::carriers`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One carrier's offer for a prefix, as precomputed in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Cost in the base currency: per SMS segment, or for a voice call of the reference
    /// duration (connection fee and increments included).
    pub cost: Price,
    /// Row of the rate in its deck.
    pub(crate) row: u32,
    /// The carrier.
    pub carrier: CarrierId,
    /// Index of the deck in [`crate::RoutingConfig::decks`].
    pub(crate) deck: u16,
}

impl Candidate {
    #[cfg(test)]
    pub(crate) fn for_test(cost: Price, carrier: CarrierId) -> Self {
        Self {
            cost,
            row: 0,
            carrier,
            deck: 0,
        }
    }
}
