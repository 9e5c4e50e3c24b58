//! Webhook endpoints' health as this node has seen it: per tenant and URL, the last success
//! and failure, the last failure's reason and the delivery latency, updated by every attempt
//! ([`super::webhook`]) and read by the dashboard's webhooks page.
//!
//! It lives in memory only (a restart starts it afresh; a node sees its own attempts) and is
//! bounded: a new entry past [`MAX_ENDPOINTS`] drops the [`EVICT`] updated longest ago at once
//! (so that many distinct URLs, such as per-message callback URLs, cost one scan per
//! [`EVICT`] new ones, not one each). An attempt to a known endpoint allocates nothing.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::domain::UnixMs;

/// Most (tenant, URL) pairs remembered.
pub(crate) const MAX_ENDPOINTS: usize = 4096;
/// How many of the oldest entries a full book drops to make room.
const EVICT: usize = MAX_ENDPOINTS / 16;
/// Weight of the newest sample in the latency's moving average.
const LATENCY_WEIGHT: f64 = 0.2;

/// One endpoint's record.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct EndpointHealth {
    /// When an attempt last got a 2xx.
    pub(crate) last_success: Option<UnixMs>,
    /// When an attempt last failed.
    pub(crate) last_failure: Option<UnixMs>,
    /// Why it failed (status, timeout, connection error, refused destination).
    pub(crate) last_error: Option<String>,
    /// Attempts that succeeded since this node started.
    pub(crate) successes: u64,
    /// Attempts that failed since this node started.
    pub(crate) failures: u64,
    /// Moving average of the successful attempts' latency, milliseconds.
    pub(crate) latency_ms: Option<f64>,
    /// The last update, for eviction.
    updated: UnixMs,
}

/// Every endpoint's record, by tenant, then URL.
#[derive(Debug, Default)]
pub(crate) struct HealthBook {
    /// The records; taken briefly per attempt and per page view.
    inner: Mutex<Book>,
}

/// The records and how many there are.
#[derive(Debug, Default)]
struct Book {
    by_tenant: HashMap<String, HashMap<String, EndpointHealth>>,
    len: usize,
}

impl Book {
    /// Drops the [`EVICT`] records updated longest ago.
    fn evict(&mut self) {
        let mut all: Vec<(UnixMs, String, String)> = self
            .by_tenant
            .iter()
            .flat_map(|(t, m)| m.iter().map(|(u, h)| (h.updated, t.clone(), u.clone())))
            .collect();
        let n = EVICT.min(all.len());
        if n == 0 {
            return;
        }
        all.select_nth_unstable_by_key(n - 1, |e| e.0);
        for (_, t, u) in all.into_iter().take(n) {
            if let Some(m) = self.by_tenant.get_mut(&t) {
                if m.remove(&u).is_some() {
                    self.len -= 1;
                }
                if m.is_empty() {
                    self.by_tenant.remove(&t);
                }
            }
        }
    }
}

impl HealthBook {
    /// Records an attempt to `url` for `tenant` at `now` that took `latency_ms`: `Ok` for a
    /// 2xx, else the reason.
    pub(crate) fn record(
        &self,
        tenant: &str,
        url: &str,
        now: UnixMs,
        latency_ms: f64,
        result: Result<(), &str>,
    ) {
        let mut book = self.inner.lock();
        let known = book
            .by_tenant
            .get(tenant)
            .is_some_and(|m| m.contains_key(url));
        if !known {
            if book.len >= MAX_ENDPOINTS {
                book.evict();
            }
            book.len += 1;
            book.by_tenant
                .entry(tenant.to_owned())
                .or_default()
                .insert(url.to_owned(), EndpointHealth::default());
        }
        let Some(h) = book.by_tenant.get_mut(tenant).and_then(|m| m.get_mut(url)) else {
            return;
        };
        h.updated = now;
        match result {
            Ok(()) => {
                h.last_success = Some(now);
                h.successes += 1;
                h.latency_ms = Some(match h.latency_ms {
                    None => latency_ms,
                    Some(avg) => avg + LATENCY_WEIGHT * (latency_ms - avg),
                });
            }
            Err(reason) => {
                h.last_failure = Some(now);
                h.last_error = Some(reason.to_owned());
                h.failures += 1;
            }
        }
    }

    /// `tenant`'s endpoints with their records, by URL.
    pub(crate) fn of(&self, tenant: &str) -> Vec<(String, EndpointHealth)> {
        let mut out: Vec<_> = self
            .inner
            .lock()
            .by_tenant
            .get(tenant)
            .into_iter()
            .flatten()
            .map(|(url, h)| (url.clone(), h.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_successes_failures_and_latency_per_tenant() {
        let book = HealthBook::default();
        book.record("a", "http://x/", 1_000, 100.0, Ok(()));
        book.record("a", "http://x/", 2_000, 200.0, Err("HTTP 500"));
        book.record("a", "http://x/", 3_000, 200.0, Ok(()));
        book.record("b", "http://y/", 3_000, 5.0, Ok(()));
        let a = book.of("a");
        assert_eq!(a.len(), 1);
        let (url, h) = &a[0];
        assert_eq!(url, "http://x/");
        assert_eq!(h.last_success, Some(3_000));
        assert_eq!(h.last_failure, Some(2_000));
        assert_eq!(h.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!((h.successes, h.failures), (2, 1));
        assert_eq!(h.latency_ms, Some(120.0));
        assert_eq!(book.of("c"), vec![]);
    }

    #[test]
    fn forgets_the_endpoints_updated_longest_ago_when_full() {
        let book = HealthBook::default();
        for i in 0..MAX_ENDPOINTS {
            book.record("a", &format!("http://h{i}/"), i as UnixMs + 10, 1.0, Ok(()));
        }
        book.record("a", "http://h0/", 1_000_000, 1.0, Ok(()));
        book.record("a", "http://new/", 1_000_001, 1.0, Ok(()));
        let urls: Vec<String> = book.of("a").into_iter().map(|(u, _)| u).collect();
        assert_eq!(urls.len(), MAX_ENDPOINTS - EVICT + 1);
        assert!(urls.contains(&"http://h0/".to_owned()));
        assert!(urls.contains(&"http://new/".to_owned()));
        // The oldest EVICT went (h1 … h256), the next stayed.
        assert!(!urls.contains(&"http://h1/".to_owned()));
        assert!(!urls.contains(&format!("http://h{EVICT}/")));
        assert!(urls.contains(&format!("http://h{}/", EVICT + 1)));
    }
}
