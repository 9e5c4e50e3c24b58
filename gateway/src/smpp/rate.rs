//! A carrier's `max_tps`: one token bucket for all the carrier's binds in this process.
//!
//! On a shared store a carrier's binds are spread over the nodes (each bind slot is a lease,
//! see `cluster`), and each node's bucket gets the share of `max_tps` of the slots it runs:
//! `⌈max_tps × slots running here ÷ binds⌉`. Since no more than `binds` slots run across the
//! cluster, the carrier sees at most `max_tps` per second plus each node's burst (one second of
//! its share), however traffic is spread over the nodes. On one node every slot runs here and
//! the bucket is `max_tps` itself.

use std::num::NonZeroU32;
use std::time::Instant;

use parking_lot::Mutex;
use switchyard_routing::{TokenBucket, Wait};

/// The limit of one carrier's binds in this process.
#[derive(Debug, Default)]
pub(crate) struct CarrierRate {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The carrier's `max_tps` (`None`: unlimited).
    max_tps: Option<u32>,
    /// The carrier's binds across the cluster.
    binds: usize,
    /// Bind slots running here.
    running: usize,
    /// This process's share; `None` while unlimited or no slot runs.
    bucket: Option<TokenBucket>,
}

impl State {
    /// The share for the slots running here.
    fn share(&self) -> Option<NonZeroU32> {
        let max = u64::from(self.max_tps?);
        let binds = self.binds.max(1) as u64;
        let running = self.running.min(self.binds.max(1)) as u64;
        if running == 0 {
            return None;
        }
        let share = (max * running).div_ceil(binds);
        NonZeroU32::new(u32::try_from(share).unwrap_or(u32::MAX).max(1))
    }

    fn rebuild(&mut self, now: Instant) {
        let share = self.share();
        if self.bucket.as_ref().map(TokenBucket::rate) != share {
            self.bucket = share.map(|r| TokenBucket::per_second(r, now));
        }
    }
}

impl CarrierRate {
    /// Takes the carrier's `max_tps` and number of binds (at start and on reload).
    pub(crate) fn configure(&self, max_tps: Option<u32>, binds: usize, now: Instant) {
        let mut s = self.state.lock();
        s.max_tps = max_tps;
        s.binds = binds;
        s.rebuild(now);
    }

    /// A bind slot started (`true`) or stopped running here.
    pub(crate) fn slot_running(&self, running: bool, now: Instant) {
        let mut s = self.state.lock();
        if running {
            s.running += 1;
        } else {
            s.running = s.running.saturating_sub(1);
        }
        s.rebuild(now);
    }

    /// Takes one submit's token, or says when to try again.
    pub(crate) fn try_take(&self, now: Instant) -> Result<(), Wait> {
        match self.state.lock().bucket.as_mut() {
            Some(b) => b.try_take(now, 1),
            None => Ok(()),
        }
    }

    /// This process's share of the limit now (`None`: unlimited, or no slot runs here).
    #[cfg(test)]
    pub(crate) fn share(&self) -> Option<u32> {
        self.state.lock().share().map(NonZeroU32::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_follows_the_slots_running_here() {
        let now = Instant::now();
        let rate = CarrierRate::default();
        rate.configure(Some(100), 4, now);
        assert_eq!(rate.share(), None, "no slot runs here");
        assert!(rate.try_take(now).is_ok());
        rate.slot_running(true, now);
        assert_eq!(rate.share(), Some(25));
        rate.slot_running(true, now);
        rate.slot_running(true, now);
        assert_eq!(rate.share(), Some(75));
        rate.slot_running(true, now);
        // A slot of a replaced group still draining: never above the whole limit.
        rate.slot_running(true, now);
        assert_eq!(rate.share(), Some(100));
        rate.configure(Some(10), 3, now);
        assert_eq!(rate.share(), Some(10));
        rate.configure(None, 3, now);
        assert_eq!(rate.share(), None);
    }

    #[test]
    fn a_share_rounds_up_and_the_bucket_holds_it() {
        let now = Instant::now();
        let rate = CarrierRate::default();
        rate.configure(Some(10), 3, now);
        rate.slot_running(true, now);
        assert_eq!(rate.share(), Some(4));
        let taken = (0..10).filter(|_| rate.try_take(now).is_ok()).count();
        assert_eq!(taken, 4, "one second's burst of the share");
        let later = now + std::time::Duration::from_secs(1);
        let taken = (0..10).filter(|_| rate.try_take(later).is_ok()).count();
        assert_eq!(taken, 4);
    }
}
