//! Live carrier health: decaying success rate and latency, updated from outcomes with atomics
//! only, so any number of bind tasks can report while lookups read.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::breaker::{FailureClass, Outcome};

/// Fixed-point 1.0 for rates.
const ONE: u32 = 1 << 20;
/// EWMA smoothing: each sample moves the average 1/16 of the way (≈ the last 16–32 samples
/// dominate).
const SHIFT: u32 = 4;

/// Decaying averages of a carrier's outcomes. All methods take `&self` and never lock.
#[derive(Debug)]
pub struct Health {
    /// Share of outcomes that succeeded (throttling excluded), fixed-point with 1.0 = 2^20.
    /// Starts at 1.0: a new carrier is trusted until it fails.
    success: AtomicU32,
    /// Share of outcomes that were throttling responses, same scale; lets the gateway slow down.
    throttled: AtomicU32,
    /// Average latency of successful outcomes, microseconds.
    latency_us: AtomicU32,
    /// Outcomes recorded so far; the first latency sample replaces the average instead of
    /// decaying from 0.
    samples: AtomicU64,
}

/// A point-in-time copy of [`Health`], for explanations and metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthSnapshot {
    /// Decaying success rate, 0.0..=1.0.
    pub success_rate: f32,
    /// Decaying share of throttled outcomes, 0.0..=1.0.
    pub throttle_rate: f32,
    /// Decaying latency of successes.
    pub latency: Duration,
    /// Outcomes seen.
    pub samples: u64,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Fresh health: 100 % success, no latency, no samples.
    pub fn new() -> Self {
        Self {
            success: AtomicU32::new(ONE),
            throttled: AtomicU32::new(0),
            latency_us: AtomicU32::new(0),
            samples: AtomicU64::new(0),
        }
    }

    /// Folds one outcome into the averages.
    pub fn record(&self, outcome: &Outcome) {
        let first = self.samples.fetch_add(1, Relaxed) == 0;
        match outcome {
            Outcome::Success { latency } => {
                ewma(&self.success, ONE);
                ewma(&self.throttled, 0);
                let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                if first {
                    self.latency_us.store(us, Relaxed);
                } else {
                    ewma(&self.latency_us, us);
                }
            }
            Outcome::Failure(FailureClass::Throttled) => ewma(&self.throttled, ONE),
            Outcome::Failure(_) => {
                ewma(&self.success, 0);
                ewma(&self.throttled, 0);
            }
        }
    }

    /// Decaying success rate, 0.0..=1.0.
    pub fn success_rate(&self) -> f32 {
        self.success.load(Relaxed) as f32 / ONE as f32
    }

    /// Decaying latency of successful outcomes.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(u64::from(self.latency_us.load(Relaxed)))
    }

    /// A copy of all averages.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            success_rate: self.success_rate(),
            throttle_rate: self.throttled.load(Relaxed) as f32 / ONE as f32,
            latency: self.latency(),
            samples: self.samples.load(Relaxed),
        }
    }

    /// Health score in 0.0..=1.0: success rate × a latency factor that is 1.0 at zero latency,
    /// 0.75 at `reference` and tends to 0.5.
    pub fn score(&self, reference: Duration) -> f32 {
        self.score_with(reference_us(reference))
    }

    /// [`Self::score`] with the reference already converted by [`reference_us`] (the
    /// conversion from `u128` µs is a library call, too slow for every candidate).
    #[inline]
    pub(crate) fn score_with(&self, reference_us: f32) -> f32 {
        let lat = self.latency_us.load(Relaxed) as f32;
        let r = reference_us;
        self.success_rate() * (0.5 + 0.5 * r / (r + lat))
    }
}

/// A latency reference in µs as `f32`, at least 1.
pub(crate) fn reference_us(reference: Duration) -> f32 {
    (reference.as_micros() as f32).max(1.0)
}

/// `avg += (sample − avg) / 16`, lock-free.
fn ewma(cell: &AtomicU32, sample: u32) {
    // The closure always returns Some, so fetch_update cannot fail; the result is ignored.
    let _ = cell.fetch_update(Relaxed, Relaxed, |old| {
        let delta = (i64::from(sample) - i64::from(old)) >> SHIFT;
        let delta = if delta == 0 && sample != old {
            if sample > old {
                1
            } else {
                -1
            }
        } else {
            delta
        };
        u32::try_from(i64::from(old) + delta).ok()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_towards_recent_outcomes() {
        let h = Health::new();
        assert_eq!(h.success_rate(), 1.0);
        for _ in 0..100 {
            h.record(&Outcome::Failure(FailureClass::Timeout));
        }
        assert!(h.success_rate() < 0.01, "{}", h.success_rate());
        for _ in 0..400 {
            h.record(&Outcome::Success {
                latency: Duration::from_millis(200),
            });
        }
        assert!(h.success_rate() > 0.99, "{}", h.success_rate());
        assert_eq!(h.latency(), Duration::from_millis(200));
        // Throttling does not lower the success rate.
        for _ in 0..50 {
            h.record(&Outcome::Failure(FailureClass::Throttled));
        }
        assert!(h.success_rate() > 0.99);
        assert!(h.snapshot().throttle_rate > 0.9);
        let s = h.score(Duration::from_millis(200));
        assert!((s - 0.75 * h.success_rate()).abs() < 0.01, "{s}");
    }
}
