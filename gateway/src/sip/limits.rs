//! Call admission: calls per second and concurrent calls, per tenant (`sip_max_cps`,
//! `sip_max_calls`) and per trunk (the carrier's `max_cps`, `[carriers.sip] max_calls`).
//!
//! A tenant over its limit gets 503 with Retry-After at once; a trunk over its limit is
//! skipped for this call (the next carrier is tried), and a call every trunk refused for
//! limits gets 503 with the earliest Retry-After. A slot is held from admission until the
//! call fails or its dialog ends (BYE, or `max_call_duration`).
//!
//! Several nodes on one database split every limit evenly: each node admits
//! `⌈limit ÷ live nodes⌉` calls per second and concurrent calls, re-balanced at the next call
//! once the number of live nodes changes (see [`Limits::with_nodes`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// The configured calls per second and concurrent calls.
    configured: (Option<u32>, Option<u32>),
    /// New calls per second (this node's share), if limited.
    cps: Option<TokenBucket>,
    /// Concurrent calls allowed (this node's share), if limited.
    max_calls: Option<u32>,
    /// Calls admitted and not yet released.
    calls: u32,
}

/// `limit` split over `nodes` (rounded up, at least 1).
fn share(limit: u32, nodes: u32) -> u32 {
    limit.div_ceil(nodes.max(1)).max(1)
}

impl Gate {
    fn new(cps: Option<u32>, max_calls: Option<u32>, now: Instant) -> Option<Gate> {
        if cps.is_none() && max_calls.is_none() {
            return None;
        }
        let mut g = Gate {
            configured: (cps, max_calls),
            cps: None,
            max_calls: None,
            calls: 0,
        };
        g.split(1, now);
        Some(g)
    }

    /// Takes this node's share of the configured limits, `nodes` sharing them.
    fn split(&mut self, nodes: u32, now: Instant) {
        let (cps, max_calls) = self.configured;
        self.cps = cps
            .and_then(|r| NonZeroU32::new(share(r, nodes)))
            .map(|r| TokenBucket::per_second(r, now));
        self.max_calls = max_calls.map(|m| share(m, nodes));
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
    /// Live nodes sharing the limits (set by the cluster's heartbeat; none: one node).
    nodes: Option<Arc<AtomicU32>>,
    /// The number of nodes the gates were split for.
    split_for: u32,
}

impl Limits {
    /// The limits configured for tenants and voice carriers.
    pub(crate) fn from_config(config: &Config, now: Instant) -> Self {
        let mut l = Limits {
            split_for: 1,
            ..Limits::default()
        };
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

    /// Shares the limits with the other live nodes: `nodes` holds how many are live.
    pub(crate) fn with_nodes(mut self, nodes: Arc<AtomicU32>) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Splits the gates again when the number of live nodes changed.
    fn follow_nodes(&mut self, now: Instant) {
        let Some(nodes) = &self.nodes else { return };
        let n = nodes.load(Ordering::Relaxed).max(1);
        if n != self.split_for {
            self.split_for = n;
            for g in self.tenants.values_mut().chain(self.trunks.values_mut()) {
                g.split(n, now);
            }
        }
    }

    /// Takes over the calls `old` holds, by tenant and carrier name (after a reload: calls in
    /// progress keep counting against the new limits), and the nodes it shares them with.
    pub(crate) fn carry_over(&mut self, old: &Limits) {
        if self.nodes.is_none() {
            self.nodes = old.nodes.clone();
        }
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
        self.follow_nodes(now);
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
        self.follow_nodes(now);
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
    fn live_nodes_split_the_limits_and_a_reload_keeps_following_them() {
        let now = Instant::now();
        let nodes = Arc::new(AtomicU32::new(1));
        let mut l = Limits::default().with_nodes(nodes.clone());
        l.tenants
            .insert(Arc::from("acme"), Gate::new(Some(9), Some(5), now).unwrap());
        l.trunks
            .insert("t1".into(), Gate::new(None, Some(4), now).unwrap());
        nodes.store(3, Ordering::Relaxed);
        // ⌈5 ÷ 3⌉ = 2 concurrent calls and ⌈9 ÷ 3⌉ = 3 per second on this node.
        assert!(l.admit_tenant("acme", now).is_ok());
        assert!(l.admit_tenant("acme", now).is_ok());
        let r = l.admit_tenant("acme", now).unwrap_err();
        assert!(!r.rate, "concurrency: 2 of 2");
        l.release_tenant("acme");
        l.release_tenant("acme");
        assert!(l.admit_tenant("acme", now).is_ok());
        l.release_tenant("acme");
        assert!(
            l.admit_tenant("acme", now).unwrap_err().rate,
            "3 per second"
        );
        assert!(l.admit_trunk("t1", now).is_ok());
        assert!(l.admit_trunk("t1", now).is_ok());
        assert!(l.admit_trunk("t1", now).is_err(), "⌈4 ÷ 3⌉ = 2");
        // A reload's limits follow the same nodes; one node left: the whole limit again.
        let mut reloaded = Limits::default();
        reloaded
            .trunks
            .insert("t1".into(), Gate::new(None, Some(4), now).unwrap());
        reloaded.carry_over(&l);
        nodes.store(1, Ordering::Relaxed);
        assert!(reloaded.admit_trunk("t1", now).is_ok());
        assert!(reloaded.admit_trunk("t1", now).is_ok());
        assert_eq!(reloaded.trunk_calls("t1"), 4);
        assert!(reloaded.admit_trunk("t1", now).is_err());
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
