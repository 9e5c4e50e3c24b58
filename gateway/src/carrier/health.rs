//! Outcomes of carriers' binds, trunks and calls, fed into the router's health scores and
//! breakers.
//!
//! Outcomes are recorded by carrier *name*, resolved to the routing table's id at the moment of
//! recording: an id held across an await could point at another carrier after a reload reorders
//! them.

use std::time::Instant;

use switchyard_routing::{BreakerState, Outcome, Router};

/// Feeds `outcome` into `carrier`'s health and breaker; returns the breaker's new state when it
/// changed. A carrier the current table does not know (removed by a reload) records nothing.
pub(crate) fn record(
    router: &Router,
    carrier: &str,
    outcome: Outcome,
    now: Instant,
) -> Option<BreakerState> {
    let table = router.load();
    let id = table.carrier_id(carrier)?;
    table.record(id, now, outcome)
}
