//! Token buckets for TPS and CPS limits, sans-IO: `now` is passed in.
//!
//! Arithmetic is in integers (one token = 10⁹ units, refill = elapsed ns × rate units), so the
//! bucket never drifts and never admits more than `burst + rate × t` in any window of length `t`.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// Units per token.
const UNIT: i128 = 1_000_000_000;

/// Why a take was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Enough tokens will be there at this instant (if nothing else takes them).
    Until(Instant),
    /// More tokens were asked for than the bucket can ever hold.
    Never,
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens added per second.
    rate: NonZeroU32,
    /// Capacity in tokens.
    burst: NonZeroU32,
    /// Current content in units (10⁹ per token); negative while in debt (see
    /// [`TokenBucket::take_into_debt`]).
    level: i128,
    /// When `level` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: NonZeroU32, burst: NonZeroU32, now: Instant) -> Self {
        Self {
            rate,
            burst,
            level: i128::from(burst.get()) * UNIT,
            last: now,
        }
    }

    /// A bucket for `per_second` with a burst of one second's worth.
    pub fn per_second(per_second: NonZeroU32, now: Instant) -> Self {
        Self::new(per_second, per_second, now)
    }

    /// Tokens per second.
    pub fn rate(&self) -> NonZeroU32 {
        self.rate
    }

    /// Capacity.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// Changes the rate (e.g. after a carrier throttles us), keeping the current content.
    pub fn set_rate(&mut self, rate: NonZeroU32, now: Instant) {
        self.refill(now);
        self.rate = rate;
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);
        u32::try_from(self.level.max(0) / UNIT).unwrap_or(u32::MAX)
    }

    /// Takes `n` tokens if they are all there.
    pub fn try_take(&mut self, now: Instant, n: u32) -> Result<(), Wait> {
        if n > self.burst.get() {
            return Err(Wait::Never);
        }
        self.refill(now);
        let need = i128::from(n) * UNIT;
        if self.level >= need {
            self.level -= need;
            return Ok(());
        }
        Err(self.wait_for(need))
    }

    /// Takes `n` tokens when `min(n, burst)` are there. A request larger than the bucket
    /// (a batch) waits for a full bucket and then leaves it in debt: nothing else passes until
    /// the debt is paid back, so the long-run rate holds without making big requests
    /// impossible.
    pub fn take_into_debt(&mut self, now: Instant, n: u32) -> Result<(), Wait> {
        self.refill(now);
        let need = i128::from(n.min(self.burst.get())) * UNIT;
        if self.level >= need {
            self.level -= i128::from(n) * UNIT;
            return Ok(());
        }
        Err(self.wait_for(need))
    }

    /// When the bucket (brought up to date) will hold `need` units.
    fn wait_for(&self, need: i128) -> Wait {
        let missing = need - self.level;
        let rate = i128::from(self.rate.get());
        let ns = (missing + rate - 1) / rate;
        let wait = Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
        Wait::Until(self.last.checked_add(wait).unwrap_or(self.last))
    }

    fn refill(&mut self, now: Instant) {
        // Time never goes backwards for the bucket: an older `now` adds nothing.
        if now <= self.last {
            return;
        }
        let cap = i128::from(self.burst.get()) * UNIT;
        let elapsed = i128::try_from(now.duration_since(self.last).as_nanos()).unwrap_or(i128::MAX);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(i128::from(self.rate.get())))
            .min(cap);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn paces_in_virtual_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(nz(10), nz(5), t0);
        for _ in 0..5 {
            assert_eq!(b.try_take(t0, 1), Ok(()));
        }
        assert_eq!(
            b.try_take(t0, 1),
            Err(Wait::Until(t0 + Duration::from_millis(100)))
        );
        assert_eq!(
            b.try_take(t0 + Duration::from_millis(99), 1),
            Err(Wait::Until(t0 + Duration::from_millis(100)))
        );
        assert_eq!(b.try_take(t0 + Duration::from_millis(100), 1), Ok(()));
        assert_eq!(b.available(t0 + Duration::from_secs(10)), 5);
        assert_eq!(b.try_take(t0, 6), Err(Wait::Never));
        // 3 tps (1e9/3 ns is not an integer): exactly 3 per second, no drift over an hour.
        let mut b = TokenBucket::new(nz(3), nz(2), t0);
        let mut taken = 0u32;
        let mut t = t0;
        while t < t0 + Duration::from_secs(3600) {
            if b.try_take(t, 1).is_ok() {
                taken += 1;
            }
            t += Duration::from_millis(1);
        }
        assert!((10_800..=10_802).contains(&taken), "{taken}");
    }
}
