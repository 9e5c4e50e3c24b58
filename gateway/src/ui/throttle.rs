//! The limit on failed sign-ins: per client address, [`MAX_FAILURES`] unknown keys within a
//! [`WINDOW`] (counted from the first of them), after which `POST /ui/login` answers 429 with
//! `Retry-After` until the window ends, whatever key is tried. A successful sign-in neither
//! counts nor clears the count (an address with one valid key cannot use it to keep guessing
//! others).
//!
//! A client is its TCP peer's address; IPv6 addresses count by their /64, which one host
//! usually has whole. Behind a reverse proxy every client shares the proxy's address (and so
//! its limit). Each node counts its own sign-ins: behind a balancer over `n` nodes an address
//! may try up to `n` times the limit.
//!
//! Bounded memory: at most [`MAX_CLIENTS`] addresses are tracked; a new one beyond that
//! replaces the one whose window started first. Windows that have ended are dropped as new
//! failures arrive. Times are passed in (`now`), so the limit is tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed sign-ins an address may make within one [`WINDOW`].
pub(crate) const MAX_FAILURES: u32 = 10;
/// How long an address's count lasts, from its first failure.
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Addresses tracked at most.
pub(crate) const MAX_CLIENTS: usize = 10_000;

/// Who a sign-in is counted against: an IPv4 address, an IPv6 /64, or (no peer address known,
/// as in-process tests) everyone without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Client {
    /// An IPv4 address (IPv4-mapped IPv6 ones too).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
    /// No address.
    Unknown,
}

impl Client {
    fn of(addr: Option<IpAddr>) -> Client {
        match addr.map(|a| a.to_canonical()) {
            Some(IpAddr::V4(v4)) => Client::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => {
                let bits = u128::from(v6);
                // The upper half: the /64.
                Client::V6((bits >> 64) as u64)
            }
            None => Client::Unknown,
        }
    }
}

/// One address's failures in its window.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The window's start (its first failure).
    first: Instant,
    /// Failures since.
    failures: u32,
    /// Tells apart windows that started at the same instant, in [`Table::by_start`].
    serial: u64,
}

/// The addresses tracked.
#[derive(Debug, Default)]
struct Table {
    /// Each address's window.
    by_client: HashMap<Client, Entry>,
    /// The same, by window start: the oldest are dropped first.
    by_start: BTreeMap<(Instant, u64), Client>,
    /// The next [`Entry::serial`].
    serial: u64,
}

/// Failed sign-ins per client address, on this node.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    /// Guarded as one: the two maps change together.
    table: Mutex<Table>,
}

impl LoginThrottle {
    /// `Ok` when `addr` may try to sign in at `now`; otherwise how long until it may.
    pub(crate) fn check(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let table = self.table.lock();
        match table.by_client.get(&Client::of(addr)) {
            Some(e) if e.failures >= MAX_FAILURES => {
                let ends = e.first + WINDOW;
                if now < ends {
                    Err(ends - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in (an unknown key) from `addr` at `now`.
    pub(crate) fn failed(&self, addr: Option<IpAddr>, now: Instant) {
        let client = Client::of(addr);
        let mut guard = self.table.lock();
        let t = &mut *guard;
        // Windows that have ended go first, oldest first.
        while let Some((&(first, serial), _)) = t.by_start.first_key_value() {
            if now.saturating_duration_since(first) < WINDOW {
                break;
            }
            if let Some(c) = t.by_start.remove(&(first, serial)) {
                t.by_client.remove(&c);
            }
        }
        if let Some(e) = t.by_client.get_mut(&client) {
            e.failures = e.failures.saturating_add(1);
            return;
        }
        if t.by_client.len() >= MAX_CLIENTS {
            if let Some((_, oldest)) = t.by_start.pop_first() {
                t.by_client.remove(&oldest);
            }
        }
        t.serial += 1;
        let entry = Entry {
            first: now,
            failures: 1,
            serial: t.serial,
        };
        t.by_start.insert((now, entry.serial), client);
        t.by_client.insert(client, entry);
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let t = self.table.lock();
        assert_eq!(t.by_client.len(), t.by_start.len());
        t.by_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    #[test]
    fn ten_failures_refuse_the_address_for_the_rest_of_the_window() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        for i in 0..MAX_FAILURES {
            assert_eq!(throttle.check(v4(1), t0 + i * s), Ok(()));
            throttle.failed(v4(1), t0 + i * s);
        }
        assert_eq!(throttle.check(v4(1), t0 + 10 * s), Err(WINDOW - 10 * s));
        assert_eq!(throttle.check(v4(1), t0 + WINDOW - s), Err(s));
        assert_eq!(throttle.check(v4(2), t0 + 10 * s), Ok(()), "others may");
        assert_eq!(throttle.check(None, t0 + 10 * s), Ok(()));
        assert_eq!(
            throttle.check(v4(1), t0 + WINDOW),
            Ok(()),
            "the window ended"
        );
        // A new window starts with the next failure.
        throttle.failed(v4(1), t0 + WINDOW);
        assert_eq!(throttle.check(v4(1), t0 + WINDOW), Ok(()));
        assert_eq!(throttle.len(), 1);
    }

    #[test]
    fn failures_spread_over_more_than_a_window_are_never_refused() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let step = WINDOW / 5;
        for i in 0..50 {
            let now = t0 + step * i;
            assert_eq!(throttle.check(v4(1), now), Ok(()), "failure {i}");
            throttle.failed(v4(1), now);
        }
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let addr = |last: u16| {
            Some(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 0, 0, 0, last,
            )))
        };
        for i in 0..MAX_FAILURES {
            throttle.failed(addr(i as u16), t0);
        }
        assert!(throttle.check(addr(999), t0).is_err());
        let other = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1)));
        assert_eq!(throttle.check(other, t0), Ok(()));
        let mapped = Some(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()));
        for _ in 0..MAX_FAILURES {
            throttle.failed(mapped, t0);
        }
        assert!(throttle.check(v4(1), t0).is_err(), "IPv4-mapped is IPv4");
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest_window_first() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let addr = |n: usize| Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n as u32)));
        for _ in 0..MAX_FAILURES {
            throttle.failed(addr(0), t0);
        }
        for n in 1..MAX_CLIENTS {
            throttle.failed(addr(n), t0 + ms);
        }
        assert_eq!(throttle.len(), MAX_CLIENTS);
        assert!(throttle.check(addr(0), t0 + ms).is_err());
        throttle.failed(addr(MAX_CLIENTS), t0 + 2 * ms);
        assert_eq!(throttle.len(), MAX_CLIENTS);
        assert_eq!(
            throttle.check(addr(0), t0 + 2 * ms),
            Ok(()),
            "the oldest window was dropped"
        );
        // Once every window has ended, the next failure empties the table.
        throttle.failed(addr(1), t0 + WINDOW + 2 * ms);
        assert_eq!(throttle.len(), 1);
    }
}
