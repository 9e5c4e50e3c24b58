//! Webhook endpoints' health as this node measures it: per tenant and URL, the last success
//! and failure, the last failure's reason and the delivery latency, updated by every attempt
//! ([`super::webhook`]).
//!
//! The node that sends webhooks (the `webhooks` lease's holder) reports what it measured to
//! the store every [`REPORT_EVERY`] ([`HealthBook::take_reports`], added to the stored
//! records), so the dashboard of every node shows the endpoints' health as the cluster saw
//! it: the stored records plus what this node has not reported yet ([`HealthBook::pending`]).
//!
//! The book is bounded: a new entry past [`MAX_ENDPOINTS`] drops the [`EVICT`] updated
//! longest ago at once (so that many distinct URLs, such as per-message callback URLs, cost
//! one scan per [`EVICT`] new ones, not one each); what they had not reported is lost. An
//! attempt to a known endpoint allocates nothing.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use crate::domain::{EndpointHealth, UnixMs};

/// Most (tenant, URL) pairs remembered.
pub(crate) const MAX_ENDPOINTS: usize = 4096;
/// How many of the oldest entries a full book drops to make room.
const EVICT: usize = MAX_ENDPOINTS / 16;
/// Weight of the newest sample in the latency's moving average.
const LATENCY_WEIGHT: f64 = 0.2;
/// How often the node sending webhooks reports its measurements to the store.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(5);

/// One endpoint's measurements on this node.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// Since this node started (tenant and URL are the book's keys, left empty here).
    health: EndpointHealth,
    /// Moving average of the successful attempts' latency, milliseconds.
    latency_ms: Option<f64>,
    /// Successes and failures already reported.
    reported: (u64, u64),
    /// Changed since the last report.
    dirty: bool,
}

impl Entry {
    /// What is not reported yet, for `tenant` and `url`.
    fn unreported(&self, tenant: &str, url: &str) -> EndpointHealth {
        EndpointHealth {
            tenant: tenant.to_owned(),
            url: url.to_owned(),
            successes: self.health.successes - self.reported.0,
            failures: self.health.failures - self.reported.1,
            latency_us: self.latency_ms.map(|ms| (ms * 1_000.0).round() as u64),
            ..self.health.clone()
        }
    }
}

/// Every endpoint's record, by tenant, then URL.
#[derive(Debug, Default)]
pub(crate) struct HealthBook {
    /// The records; taken briefly per attempt, per report and per page view.
    inner: Mutex<Book>,
}

/// The records and how many there are.
#[derive(Debug, Default)]
struct Book {
    by_tenant: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

impl Book {
    /// Drops the [`EVICT`] records updated longest ago.
    fn evict(&mut self) {
        let mut all: Vec<(UnixMs, String, String)> = self
            .by_tenant
            .iter()
            .flat_map(|(t, m)| {
                m.iter()
                    .map(|(u, e)| (e.health.updated_at, t.clone(), u.clone()))
            })
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
                .insert(url.to_owned(), Entry::default());
        }
        let Some(e) = book.by_tenant.get_mut(tenant).and_then(|m| m.get_mut(url)) else {
            return;
        };
        e.dirty = true;
        let h = &mut e.health;
        h.updated_at = now;
        match result {
            Ok(()) => {
                h.last_success = Some(now);
                h.successes += 1;
                e.latency_ms = Some(match e.latency_ms {
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

    /// What changed since the last report, one report per endpoint, marked as reported (to
    /// be written to the store; [`HealthBook::restore`] them if that fails).
    pub(crate) fn take_reports(&self) -> Vec<EndpointHealth> {
        let mut book = self.inner.lock();
        let mut out = Vec::new();
        for (tenant, urls) in &mut book.by_tenant {
            for (url, e) in urls.iter_mut().filter(|(_, e)| e.dirty) {
                out.push(e.unreported(tenant, url));
                e.reported = (e.health.successes, e.health.failures);
                e.dirty = false;
            }
        }
        out
    }

    /// Takes back reports the store did not write: they are reported again next time.
    pub(crate) fn restore(&self, reports: &[EndpointHealth]) {
        let mut book = self.inner.lock();
        for r in reports {
            if let Some(e) = book
                .by_tenant
                .get_mut(&r.tenant)
                .and_then(|m| m.get_mut(&r.url))
            {
                e.reported.0 = e.reported.0.saturating_sub(r.successes);
                e.reported.1 = e.reported.1.saturating_sub(r.failures);
                e.dirty = true;
            }
        }
    }

    /// `tenant`'s endpoints with what this node measured and has not reported yet.
    pub(crate) fn pending(&self, tenant: &str) -> Vec<EndpointHealth> {
        self.inner
            .lock()
            .by_tenant
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.dirty)
            .map(|(url, e)| e.unreported(tenant, url))
            .collect()
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
        let a = book.pending("a");
        assert_eq!(a.len(), 1);
        let h = &a[0];
        assert_eq!(h.url, "http://x/");
        assert_eq!(h.last_success, Some(3_000));
        assert_eq!(h.last_failure, Some(2_000));
        assert_eq!(h.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!((h.successes, h.failures), (2, 1));
        assert_eq!(h.latency_us, Some(120_000));
        assert_eq!(book.pending("c"), vec![]);
    }

    #[test]
    fn reports_what_changed_since_the_last_one() {
        let book = HealthBook::default();
        book.record("a", "http://x/", 1_000, 100.0, Ok(()));
        book.record("a", "http://x/", 2_000, 100.0, Err("HTTP 500"));
        let first = book.take_reports();
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].successes, first[0].failures), (1, 1));
        assert_eq!(
            (first[0].tenant.as_str(), first[0].url.as_str()),
            ("a", "http://x/")
        );
        assert!(book.take_reports().is_empty(), "nothing new");
        assert!(book.pending("a").is_empty());
        book.record("a", "http://x/", 3_000, 100.0, Ok(()));
        let second = book.take_reports();
        assert_eq!((second[0].successes, second[0].failures), (1, 0));
        assert_eq!(
            second[0].last_failure,
            Some(2_000),
            "the last times ride along"
        );
        // A report the store did not take comes again with the next one.
        book.restore(&second);
        book.record("a", "http://x/", 4_000, 100.0, Ok(()));
        assert_eq!(book.pending("a")[0].successes, 2);
        assert_eq!(book.take_reports()[0].successes, 2);
    }

    #[test]
    fn forgets_the_endpoints_updated_longest_ago_when_full() {
        let book = HealthBook::default();
        for i in 0..MAX_ENDPOINTS {
            book.record("a", &format!("http://h{i}/"), i as UnixMs + 10, 1.0, Ok(()));
        }
        book.record("a", "http://h0/", 1_000_000, 1.0, Ok(()));
        book.record("a", "http://new/", 1_000_001, 1.0, Ok(()));
        let urls: Vec<String> = book.pending("a").into_iter().map(|h| h.url).collect();
        assert_eq!(urls.len(), MAX_ENDPOINTS - EVICT + 1);
        assert!(urls.contains(&"http://h0/".to_owned()));
        assert!(urls.contains(&"http://new/".to_owned()));
        // The oldest EVICT went (h1 … h256), the next stayed.
        assert!(!urls.contains(&"http://h1/".to_owned()));
        assert!(!urls.contains(&format!("http://h{EVICT}/")));
        assert!(urls.contains(&format!("http://h{}/", EVICT + 1)));
    }
}
