//! Retry delays for webhooks: exponential from `initial`, capped at `max`, with full jitter
//! (a uniform draw in `[0, delay]`), so endpoints coming back are not hit by synchronized waves.

use std::time::Duration;

/// The ceiling of the delay before attempt `attempts + 1` (after `attempts` failures, ≥ 1):
/// `initial × 2^(attempts − 1)`, at most `max`.
pub fn ceiling(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(30);
    initial.saturating_mul(1u32 << shift).min(max)
}

/// The delay to wait: uniform in `[0, ceiling]` given `unit` uniform in `[0, 1)` (injected so
/// tests are deterministic). Never below 1 ms, so a retry never spins.
pub fn delay(attempts: u32, initial: Duration, max: Duration, unit: f64) -> Duration {
    let c = ceiling(attempts, initial, max);
    c.mul_f64(unit.clamp(0.0, 1.0))
        .max(Duration::from_millis(1))
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
}
