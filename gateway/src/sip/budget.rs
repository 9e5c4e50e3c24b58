//! What traffic nobody vouches for may cost: requests from a source no `sip_allow` entry, trunk,
//! dialog or digest login speaks for are answered statelessly (407, 403, 405, 481, OPTIONS
//! 200), and those answers come out of two token buckets, one per source IP address and one
//! for all such sources together. A request over either is dropped unanswered, so a flood (with
//! spoofed sources or not) costs a bounded amount of work and reflected bytes per second, and
//! never touches what authenticated calls use (transactions, call slots).
//!
//! A source's bucket is checked before its credentials are (a flood of bad answers costs no
//! hashing beyond its rate) but charged only when the request is refused: a PBX that logs in
//! pays for its 407, not for the call that follows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use switchyard_routing::TokenBucket;

/// Source addresses tracked at once. When full, sources whose buckets have refilled (idle for
/// a second) are forgotten; until some are, new sources are refused (a flood from spoofed
/// addresses is what fills it).
const MAX_SOURCES: usize = 65_536;

/// Sweeps for idle sources happen at most this often (each is a pass over the table).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The budget for unauthenticated answers. See the [module doc](self).
#[derive(Debug)]
pub(crate) struct Budget {
    /// All sources together.
    global: TokenBucket,
    /// Per source: its rate (and burst, one second's worth).
    per_source: NonZeroU32,
    /// Per-source buckets.
    sources: HashMap<IpAddr, TokenBucket>,
    /// No sweep before this.
    next_sweep: Instant,
}

impl Budget {
    /// `global` answers per second in all, `per_source` per source address (each with a
    /// burst of one second's worth).
    pub(crate) fn new(global: NonZeroU32, per_source: NonZeroU32, now: Instant) -> Self {
        Budget {
            global: TokenBucket::per_second(global, now),
            per_source,
            sources: HashMap::new(),
            next_sweep: now,
        }
    }

    /// New rates (a reload); sources keep their levels.
    pub(crate) fn set_rates(&mut self, global: NonZeroU32, per_source: NonZeroU32, now: Instant) {
        if self.global.rate() != global {
            self.global = TokenBucket::per_second(global, now);
        }
        if self.per_source != per_source {
            self.per_source = per_source;
            self.sources.clear();
        }
    }

    /// Whether a request from `ip` may be looked at (credentials checked, maybe answered):
    /// its source and the whole budget have a token left. Takes nothing.
    pub(crate) fn allows(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.global.available(now) == 0 {
            return false;
        }
        match self.sources.get_mut(&ip) {
            Some(b) => b.available(now) > 0,
            None => self.sources.len() < MAX_SOURCES || self.sweep(now),
        }
    }

    /// Takes one answer to `ip` from the budget; false if there is none left (drop the
    /// request unanswered).
    pub(crate) fn charge(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.allows(ip, now) {
            return false;
        }
        let per_source = self.per_source;
        let source = self
            .sources
            .entry(ip)
            .or_insert_with(|| TokenBucket::per_second(per_source, now));
        source.try_take(now, 1).is_ok() && self.global.try_take(now, 1).is_ok()
    }

    /// Forgets sources whose buckets are full again (they carry no history); true if there
    /// is room now.
    fn sweep(&mut self, now: Instant) -> bool {
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            let burst = self.per_source.get();
            self.sources.retain(|_, b| b.available(now) < burst);
        }
        self.sources.len() < MAX_SOURCES
    }

    /// Sources tracked (tests, metrics).
    #[cfg(test)]
    pub(crate) fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn each_source_gets_its_rate_and_all_share_the_global_one() {
        let t0 = Instant::now();
        let mut b = Budget::new(rate(10), rate(3), t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let answered = (0..100).filter(|_| b.charge(a, t0)).count();
        assert_eq!(answered, 3, "one source: its burst");
        // Others still get theirs, up to the global 10.
        let others = (2..100u8)
            .filter(|i| b.charge(IpAddr::from([192, 0, 2, *i]), t0))
            .count();
        assert_eq!(others, 7);
        // A second later both have refilled.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.allows(a, t1));
        assert!(b.charge(a, t1));
    }

    #[test]
    fn looking_costs_nothing_and_idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut b = Budget::new(rate(1000), rate(2), t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(b.allows(a, t0));
        }
        assert!(b.charge(a, t0) && b.charge(a, t0));
        assert!(!b.allows(a, t0));
        // Fill the table, then let everyone refill: the sweep makes room.
        let mut t = t0;
        for i in 0..MAX_SOURCES as u32 {
            if i % 800 == 0 {
                t += Duration::from_millis(1000);
            }
            b.charge(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(b.sources() <= MAX_SOURCES);
        let later = t + Duration::from_secs(2);
        assert!(b.allows("198.51.100.7".parse().unwrap(), later));
        assert!(b.sources() < MAX_SOURCES);
    }
}
