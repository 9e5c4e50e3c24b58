//! Retry delays: exponential from `initial`, doubling per failure, capped at `max`; with
//! jitter where many clients could retry in step (webhooks: full jitter, a uniform draw in
//! `[0, ceiling]`; SMPP reconnects: equal jitter, `[ceiling/2, ceiling]`), so a peer coming back
//! is not hit by synchronized waves. Every retry loop of the gateway takes its delays from here.

use std::time::Duration;

/// The ceiling of the delay before attempt `attempts + 1` (after `attempts` failures, ≥ 1):
/// `initial × 2^(attempts − 1)`, at most `max`.
pub(crate) fn ceiling(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(30);
    initial.saturating_mul(1u32 << shift).min(max)
}

/// The delay to wait: uniform in `[0, ceiling]` given `unit` uniform in `[0, 1)` (injected so
/// tests are deterministic). Never below 1 ms, so a retry never spins.
pub(crate) fn delay(attempts: u32, initial: Duration, max: Duration, unit: f64) -> Duration {
    let c = ceiling(attempts, initial, max);
    c.mul_f64(unit.clamp(0.0, 1.0))
        .max(Duration::from_millis(1))
}

/// Equal jitter: uniform in `[ceiling/2, ceiling]` given `unit` uniform in `[0, 1)`.
pub(crate) fn equal_jitter(ceiling: Duration, unit: f64) -> Duration {
    ceiling.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
}

/// The ceilings of a run of failures: `initial` after the first, doubling, at most `max`;
/// [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// No failure yet.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    /// Counts a failure and gives the ceiling of the wait before the next attempt.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        ceiling(self.failures, self.initial, self.max)
    }

    /// After a success: the next failure waits `initial` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let i = Duration::from_secs(1);
        let m = Duration::from_secs(3600);
        assert_eq!(ceiling(1, i, m), Duration::from_secs(1));
        assert_eq!(ceiling(2, i, m), Duration::from_secs(2));
        assert_eq!(ceiling(5, i, m), Duration::from_secs(16));
        assert_eq!(ceiling(13, i, m), Duration::from_secs(3600));
        assert_eq!(ceiling(1000, i, m), Duration::from_secs(3600));
        assert_eq!(ceiling(0, i, m), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(10);
        assert_eq!(delay(3, i, m, 0.0), Duration::from_millis(1));
        assert_eq!(delay(3, i, m, 0.5), Duration::from_millis(200));
        assert_eq!(delay(3, i, m, 1.0), Duration::from_millis(400));
        assert_eq!(delay(3, i, m, 7.0), Duration::from_millis(400));
    }

    #[test]
    fn a_run_of_failures_doubles_until_reset() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        let waits: Vec<_> = (0..4).map(|_| b.fail().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 2000]);
        b.reset();
        assert_eq!(b.fail(), Duration::from_millis(500));
        let c = Duration::from_millis(800);
        assert_eq!(equal_jitter(c, 0.0), Duration::from_millis(400));
        assert_eq!(equal_jitter(c, 1.0), c);
    }
}
