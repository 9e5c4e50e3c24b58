//! Live per-carrier state shared by every table generation: health and breaker.
//!
//! Lookups only read atomics (the health averages and a published copy of the breaker state).
//! The breaker itself sits behind a mutex that is taken when an outcome is recorded, and when a
//! send is admitted to a carrier that is not closed; never on the lookup path, and never for a
//! closed carrier's admission.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker, Outcome};
use crate::health::Health;

/// Published breaker state codes (low 2 bits of the view word).
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// Breaker state as lookups see it: `Open` whose cool-down has passed reads as `HalfOpen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerView {
    /// Traffic flows.
    Closed,
    /// Skipped until `until`.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// Eligible; sends must be admitted as probes ([`CarrierState::admit`]).
    HalfOpen,
}

impl BreakerView {
    /// Short lowercase name for explanations.
    pub fn name(self) -> &'static str {
        match self {
            BreakerView::Closed => "closed",
            BreakerView::Open { .. } => "open",
            BreakerView::HalfOpen => "half-open",
        }
    }
}

/// Health and breaker of one carrier. Shared (`Arc`) between table generations so a reload
/// keeps what traffic has taught us.
#[derive(Debug)]
pub struct CarrierState {
    /// Decaying success rate and latency.
    health: Health,
    /// The state machine; locked only to record outcomes and to admit to a non-closed carrier.
    breaker: Mutex<CircuitBreaker>,
    /// Published breaker state: code in bits 0–1, end of cool-down in µs since `epoch` above.
    view: AtomicU64,
    /// Time origin for `view`.
    epoch: Instant,
}

impl CarrierState {
    /// A healthy carrier with a closed breaker.
    pub fn new(cfg: BreakerConfig, now: Instant) -> Self {
        Self {
            health: Health::new(),
            breaker: Mutex::new(CircuitBreaker::new(cfg, now)),
            view: AtomicU64::new(CLOSED),
            epoch: now,
        }
    }

    /// Live health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Breaker state for routing, lock-free.
    pub fn view(&self, now: Instant) -> BreakerView {
        let word = self.view.load(Ordering::Acquire);
        match word & 3 {
            OPEN => {
                let until = self.epoch + Duration::from_micros(word >> 2);
                if now >= until {
                    BreakerView::HalfOpen
                } else {
                    BreakerView::Open { until }
                }
            }
            HALF_OPEN => BreakerView::HalfOpen,
            _ => BreakerView::Closed,
        }
    }

    /// Asks to send to this carrier now. Lock-free when the breaker is closed.
    pub fn admit(&self, now: Instant) -> Admission {
        if self.view.load(Ordering::Acquire) & 3 == CLOSED {
            return Admission::Allowed;
        }
        self.with_breaker(|b| b.allow(now))
    }

    /// What [`Self::admit`] would answer, without taking a half-open probe slot (quotes).
    /// Lock-free when the breaker is closed.
    pub fn peek(&self, now: Instant) -> Admission {
        if self.view.load(Ordering::Acquire) & 3 == CLOSED {
            return Admission::Allowed;
        }
        self.with_breaker(|b| b.peek(now))
    }

    /// Records an outcome in health and breaker. Returns the new breaker state if it changed.
    pub fn record(&self, now: Instant, outcome: Outcome) -> Option<BreakerState> {
        self.health.record(&outcome);
        self.with_breaker(|b| b.on_outcome(now, outcome))
    }

    /// A copy of the breaker (for explanations and tests).
    pub fn breaker(&self) -> CircuitBreaker {
        self.with_breaker(|b| b.clone())
    }

    fn with_breaker<T>(&self, f: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        // A panic while holding the lock cannot leave the breaker inconsistent in a way that
        // matters more than losing routing, so poisoning is ignored.
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut b);
        self.view.store(self.encode(b.state()), Ordering::Release);
        out
    }

    fn encode(&self, state: BreakerState) -> u64 {
        match state {
            BreakerState::Closed => CLOSED,
            BreakerState::HalfOpen => HALF_OPEN,
            BreakerState::Open { until } => {
                let us = u64::try_from(until.saturating_duration_since(self.epoch).as_micros())
                    .unwrap_or(u64::MAX >> 2);
                // Round up so the view never reports half-open before the breaker would.
                ((us + 1).min(u64::MAX >> 2) << 2) | OPEN
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::FailureClass;

    #[test]
    fn view_follows_breaker() {
        let t0 = Instant::now();
        let s = CarrierState::new(BreakerConfig::default(), t0);
        assert_eq!(s.view(t0), BreakerView::Closed);
        for _ in 0..5 {
            s.record(t0, Outcome::Failure(FailureClass::TransportDown));
        }
        let until = t0 + Duration::from_secs(5);
        assert!(
            matches!(s.view(t0), BreakerView::Open { until: u } if u >= until && u < until + Duration::from_millis(1))
        );
        assert!(matches!(s.admit(t0), Admission::Rejected { .. }));
        let later = until + Duration::from_millis(1);
        assert_eq!(s.view(later), BreakerView::HalfOpen);
        assert_eq!(s.admit(later), Admission::Probe);
        assert_eq!(
            s.record(
                later,
                Outcome::Success {
                    latency: Duration::ZERO
                }
            ),
            Some(BreakerState::Closed)
        );
        assert_eq!(s.view(later), BreakerView::Closed);
        assert_eq!(s.admit(later), Admission::Allowed);
    }
}
