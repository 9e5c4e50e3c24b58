//! Call admission: calls per second and concurrent calls, per tenant (`sip_max_cps`,
//! `sip_max_calls`) and per trunk (the carrier's `max_cps`, `[carriers.sip] max_calls`).
//!
//! A tenant over its limit gets 503 with Retry-After at once; a trunk over its limit is
//! skipped for this call (the next carrier is tried), and a call every trunk refused for
//! limits gets 503 with the earliest Retry-After. A slot is held from admission until the
//! call fails or its dialog ends (BYE, or `max_call_duration`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_ops::config::Config;
use switchyard_routing::{TokenBucket, Wait};

/// Retry-After for a refusal caused by concurrency (when a slot frees is unknowable).
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

/// Why a call was not admitted, and when asking again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Wait this long before retrying.
    pub(crate) retry_after: Duration,
    /// True for the calls-per-second limit, false for the concurrent-calls limit.
    pub(crate) rate: bool,
}

impl Refused {
    /// Retry-After in whole seconds, at least 1.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// One tenant's or trunk's limits and what it holds now.
#[derive(Debug)]
struct Gate {
    /// New calls per second, if limited.
    cps: Option<TokenBucket>,
    /// Concurrent calls allowed, if limited.
    max_calls: Option<u32>,
    /// Calls admitted and not yet released.
    calls: u32,
}

impl Gate {
    fn new(cps: Option<u32>, max_calls: Option<u32>, now: Instant) -> Option<Gate> {
        if cps.is_none() && max_calls.is_none() {
            return None;
        }
        Some(Gate {
            cps: cps
                .and_then(NonZeroU32::new)
                .map(|r| TokenBucket::per_second(r, now)),
            max_calls,
            calls: 0,
        })
    }

    fn admit(&mut self, now: Instant) -> Result<(), Refused> {
        if self.max_calls.is_some_and(|m| self.calls >= m) {
            return Err(Refused {
                retry_after: CONCURRENCY_RETRY,
                rate: false,
            });
        }
        if let Some(b) = &mut self.cps {
            if let Err(w) = b.try_take(now, 1) {
                let retry_after = match w {
                    Wait::Until(t) => t.saturating_duration_since(now),
                    Wait::Never => CONCURRENCY_RETRY,
                };
                return Err(Refused {
                    retry_after,
                    rate: true,
                });
            }
        }
        self.calls += 1;
        Ok(())
    }

    fn release(&mut self) {
        self.calls = self.calls.saturating_sub(1);
    }
}

/// Every tenant's and trunk's gate (only those with a limit).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// Tenant name → gate.
    tenants: HashMap<Arc<str>, Gate>,
    /// Carrier name → gate.
    trunks: HashMap<String, Gate>,
}

impl Limits {
    /// The limits configured for tenants and voice carriers.
    pub(crate) fn from_config(config: &Config, now: Instant) -> Self {
        let mut l = Limits::default();
        for t in &config.tenants {
            if let Some(g) = Gate::new(t.sip.max_cps, t.sip.max_calls, now) {
                l.tenants.insert(Arc::from(t.name.as_str()), g);
            }
        }
        for c in &config.carriers {
            let Some(sip) = &c.sip else { continue };
            if let Some(g) = Gate::new(c.max_cps, sip.max_calls, now) {
                l.trunks.insert(c.name.clone(), g);
            }
        }
        l
    }

    /// Takes over the calls `old` holds, by tenant and carrier name (after a reload: calls in
    /// progress keep counting against the new limits).
    pub(crate) fn carry_over(&mut self, old: &Limits) {
        for (name, g) in &old.tenants {
            if let Some(n) = self.tenants.get_mut(name) {
                n.calls = g.calls;
            }
        }
        for (name, g) in &old.trunks {
            if let Some(n) = self.trunks.get_mut(name) {
                n.calls = g.calls;
            }
        }
    }

    /// Takes a slot for a new call of `tenant`.
    pub(crate) fn admit_tenant(&mut self, tenant: &str, now: Instant) -> Result<(), Refused> {
        self.tenants
            .get_mut(tenant)
            .map_or(Ok(()), |g| g.admit(now))
    }

    /// Gives back the slot of a call of `tenant` that ended.
    pub(crate) fn release_tenant(&mut self, tenant: &str) {
        if let Some(g) = self.tenants.get_mut(tenant) {
            g.release();
        }
    }

    /// Takes a slot on carrier `name`'s trunk for a branch.
    pub(crate) fn admit_trunk(&mut self, name: &str, now: Instant) -> Result<(), Refused> {
        self.trunks.get_mut(name).map_or(Ok(()), |g| g.admit(now))
    }

    /// Gives back a trunk slot (branch failed or the call ended).
    pub(crate) fn release_trunk(&mut self, name: &str) {
        if let Some(g) = self.trunks.get_mut(name) {
            g.release();
        }
    }

    /// Calls held by `tenant` (tests, metrics).
    #[cfg(test)]
    pub(crate) fn tenant_calls(&self, tenant: &str) -> u32 {
        self.tenants.get(tenant).map_or(0, |g| g.calls)
    }

    /// Calls held on carrier `name`'s trunk (tests, metrics).
    #[cfg(test)]
    pub(crate) fn trunk_calls(&self, name: &str) -> u32 {
        self.trunks.get(name).map_or(0, |g| g.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_the_calls_in_progress() {
        let now = Instant::now();
        let mut old = Limits::default();
        old.tenants
            .insert(Arc::from("acme"), Gate::new(None, Some(5), now).unwrap());
        for _ in 0..3 {
            old.admit_tenant("acme", now).unwrap();
        }
        let mut new = Limits::default();
        new.tenants
            .insert(Arc::from("acme"), Gate::new(None, Some(3), now).unwrap());
        new.carry_over(&old);
        assert_eq!(new.tenant_calls("acme"), 3);
        assert!(new.admit_tenant("acme", now).is_err(), "3 of 3 in use");
        new.release_tenant("acme");
        assert!(new.admit_tenant("acme", now).is_ok());
    }

    #[test]
    fn concurrency_then_rate() {
        let now = Instant::now();
        let mut g = Gate::new(Some(2), Some(1), now).unwrap();
        assert!(g.admit(now).is_ok());
        let r = g.admit(now).unwrap_err();
        assert!(!r.rate);
        g.release();
        assert!(g.admit(now).is_ok());
        g.release();
        // Burst of 2 spent (two admissions); the third waits ~0.5 s.
        let r = g.admit(now).unwrap_err();
        assert!(r.rate);
        assert_eq!(r.retry_after_secs(), 1);
        assert!(g.admit(now + Duration::from_millis(600)).is_ok());
    }
}
