//! Per-tenant limits: what a tenant may send where ([`TenantLimiter::policy`]), and how fast
//! and how much ([`TenantLimiter::admit`]).
//!
//! - **Rate** (`max_tps`): a token bucket per tenant holding one second's worth. Counts
//!   messages (a batch of n recipients takes n tokens). A request larger than the bucket (a
//!   batch) is admitted when the bucket is full and leaves it in debt, so the long-run rate stays
//!   at `max_tps` without making big batches impossible. Each tenant has its own bucket behind
//!   its own short lock: a tenant over its rate never slows another.
//! - **Quotas** (`daily_quota`, `monthly_quota`): counters per tenant of messages accepted in
//!   the current UTC day and month. Durable because they are counted from the store
//!   ([`TenantLimiter::seed`], at start); fast because requests only touch the in-memory
//!   counters, which roll over at UTC midnight and on the 1st of the month. A request reserves
//!   its messages ([`Reservation`]); if it is not stored after all, dropping the reservation gives
//!   them back.
//! - **Policy**: allowed channels, allowed/blocked destination countries (403), segment cap
//!   (422), the highest priority the tenant may ask for (`max_priority`, 403).
//!
//! - **Several nodes** (a shared store): each node's bucket gets `max_tps` divided by the live
//!   nodes ([`TenantLimiter::set_share`]), and the quota counters are raised to the store's
//!   counts every few heartbeats ([`TenantLimiter::sync_quotas`]), so quotas hold across the
//!   cluster within what the other nodes accept in that time.
//!
//! Everything time-dependent takes `now` (unix ms for the calendar, `Instant` for the bucket),
//! so the unit tests drive it without a clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use switchyard_ops::config::{Config, TenantFairness, TenantLimits};
use switchyard_routing::{Channel, Priority, TokenBucket, Wait};

use super::Refusal;
use crate::domain::UnixMs;
use crate::store::{Store, StoreError};

const DAY_MS: UnixMs = 86_400_000;

/// UTC day number and calendar month (`year * 12 + month0`) of a unix time.
fn day_and_month(now: UnixMs) -> (i64, i64) {
    let day = now.div_euclid(DAY_MS);
    let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    (
        day,
        i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1,
    )
}

/// Unix ms where the UTC month `month` (as in [`day_and_month`]) starts.
fn month_start(month: i64) -> UnixMs {
    let year = i32::try_from(month.div_euclid(12)).unwrap_or(1970);
    let m = u8::try_from(month.rem_euclid(12) + 1).unwrap_or(1);
    time::Month::try_from(m)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(year, m, 1).ok())
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(0)
}

/// Messages accepted in the current UTC day and month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuotaWindow {
    /// The day `day_used` counts.
    day: i64,
    /// Messages accepted that day.
    day_used: u64,
    /// The month `month_used` counts.
    month: i64,
    /// Messages accepted that month.
    month_used: u64,
}

/// Which quota refused, and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaExceeded {
    /// "daily" or "monthly".
    pub(crate) which: &'static str,
    /// The quota.
    pub(crate) limit: u64,
    /// Seconds until it resets.
    pub(crate) retry_after_s: u64,
}

impl QuotaWindow {
    fn roll(&mut self, now: UnixMs) {
        let (day, month) = day_and_month(now);
        if day != self.day {
            self.day = day;
            self.day_used = 0;
        }
        if month != self.month {
            self.month = month;
            self.month_used = 0;
        }
    }

    /// Adds `n` messages if both quotas allow them.
    pub(crate) fn reserve(
        &mut self,
        n: u64,
        daily: Option<u64>,
        monthly: Option<u64>,
        now: UnixMs,
    ) -> Result<(), QuotaExceeded> {
        self.roll(now);
        let secs_until = |t: UnixMs| u64::try_from((t - now + 999) / 1000).unwrap_or(1).max(1);
        if let Some(limit) = daily {
            if self.day_used + n > limit {
                return Err(QuotaExceeded {
                    which: "daily",
                    limit,
                    retry_after_s: secs_until((self.day + 1) * DAY_MS),
                });
            }
        }
        if let Some(limit) = monthly {
            if self.month_used + n > limit {
                return Err(QuotaExceeded {
                    which: "monthly",
                    limit,
                    retry_after_s: secs_until(month_start(self.month + 1)),
                });
            }
        }
        self.day_used += n;
        self.month_used += n;
        Ok(())
    }

    /// Raises the counters to at least `day_used` and `month_used` (counted in the store: at
    /// start, and by every node on a shared store) for the window of `now`.
    pub(crate) fn raise_to(&mut self, now: UnixMs, day_used: u64, month_used: u64) {
        self.roll(now);
        self.day_used = self.day_used.max(day_used);
        self.month_used = self.month_used.max(month_used);
    }

    /// Gives back `n` messages reserved at `reserved_at` (the request was not stored). Nothing
    /// is given back to a window that has rolled over since.
    pub(crate) fn release(&mut self, n: u64, reserved_at: UnixMs) {
        let (day, month) = day_and_month(reserved_at);
        if day == self.day {
            self.day_used = self.day_used.saturating_sub(n);
        }
        if month == self.month {
            self.month_used = self.month_used.saturating_sub(n);
        }
    }
}

/// One tenant's limits and counters.
#[derive(Debug)]
struct Gate {
    /// The configured limits.
    limits: TenantLimits,
    /// The configured `max_tps`, if limited.
    max_tps: Option<u32>,
    /// `max_tps` (this node's share of it) bucket, if limited.
    bucket: Option<Mutex<TokenBucket>>,
    /// Quota counters (used only when a quota is set; kept across reloads).
    quota: Arc<Mutex<QuotaWindow>>,
    /// The highest priority the tenant may ask for (`max_priority`).
    max_priority: Priority,
}

/// Limits of every tenant, swapped whole on reload (counters and buckets carry over).
#[derive(Debug, Default)]
pub(crate) struct TenantLimiter {
    /// Tenant name → its gate.
    gates: ArcSwap<HashMap<String, Arc<Gate>>>,
    /// Live nodes sharing each tenant's `max_tps` (1 on a single node).
    share: std::sync::atomic::AtomicU32,
}

/// `max_tps` split over `share` nodes (rounded up, at least 1).
fn share_of(tps: u32, share: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(tps.div_ceil(share.max(1))).unwrap_or(std::num::NonZeroU32::MIN)
}

/// Quota taken by a request that is not stored yet. Dropping it gives the quota back;
/// [`Reservation::keep`] once the messages are committed.
#[derive(Debug)]
#[must_use = "dropping a reservation gives the quota back"]
pub(crate) struct Reservation {
    /// Whose counters.
    quota: Option<Arc<Mutex<QuotaWindow>>>,
    /// Messages reserved.
    n: u64,
    /// When.
    at: UnixMs,
}

impl Reservation {
    /// The messages were stored: the quota stays used.
    pub(crate) fn keep(mut self) {
        self.quota = None;
    }

    /// Only `n` of the reserved messages will be stored (a batch's other recipients were
    /// refused): the rest of the quota is given back now. Rate tokens are not: the rate
    /// counts every recipient the API checked.
    pub(crate) fn shrink(&mut self, n: u32) {
        let n = u64::from(n).min(self.n);
        if let Some(q) = &self.quota {
            q.lock().release(self.n - n, self.at);
        }
        self.n = n;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(q) = self.quota.take() {
            q.lock().release(self.n, self.at);
        }
    }
}

impl TenantLimiter {
    /// Limits for every tenant of `config`, with empty counters (see [`TenantLimiter::seed`]).
    pub(crate) fn new(config: &Config) -> Self {
        let limiter = TenantLimiter::default();
        limiter.reload(config);
        limiter
    }

    /// Takes the limits of `config`, keeping the counters (and, when `max_tps` is unchanged,
    /// the bucket level) of tenants that stay.
    pub(crate) fn reload(&self, config: &Config) {
        let old = self.gates.load();
        let now = Instant::now();
        let gates = config
            .tenants
            .iter()
            .map(|t| {
                let previous = old.get(&t.name);
                let share = self.share.load(std::sync::atomic::Ordering::Relaxed);
                let bucket = t.max_tps.map(|tps| {
                    let tps = share_of(tps, share);
                    let kept = previous
                        .and_then(|g| g.bucket.as_ref())
                        .map(|b| b.lock().clone())
                        .filter(|b| b.rate() == tps);
                    Mutex::new(kept.unwrap_or_else(|| TokenBucket::per_second(tps, now)))
                });
                let quota = previous
                    .map(|g| g.quota.clone())
                    .unwrap_or_else(|| Arc::new(Mutex::new(QuotaWindow::default())));
                let gate = Gate {
                    limits: t.limits.clone(),
                    max_tps: t.max_tps,
                    bucket,
                    quota,
                    max_priority: t.fairness.max_priority,
                };
                (t.name.clone(), Arc::new(gate))
            })
            .collect();
        self.gates.store(Arc::new(gates));
    }

    /// Seeds the quota counters of tenants with a quota from the store (messages accepted
    /// since the start of the current UTC day and month).
    pub(crate) async fn seed(&self, store: &dyn Store, now: UnixMs) -> Result<(), StoreError> {
        // The counters start empty: raised to the store's counts, they are those counts.
        self.sync_quotas(store, now).await
    }

    /// `nodes` live nodes share the store: each takes its share of every `max_tps`.
    pub(crate) fn set_share(&self, nodes: u32) {
        let nodes = nodes.max(1);
        if self.share.swap(nodes, std::sync::atomic::Ordering::Relaxed) == nodes {
            return;
        }
        let now = Instant::now();
        for gate in self.gates.load().values() {
            if let (Some(tps), Some(bucket)) = (gate.max_tps, &gate.bucket) {
                *bucket.lock() = TokenBucket::per_second(share_of(tps, nodes), now);
            }
        }
    }

    /// Raises the quota counters to what the store counts (every node's accepted messages).
    pub(crate) async fn sync_quotas(
        &self,
        store: &dyn Store,
        now: UnixMs,
    ) -> Result<(), StoreError> {
        let (day, month) = day_and_month(now);
        let gates = self.gates.load_full();
        for (name, gate) in gates.iter() {
            if gate.limits.daily_quota.is_none() && gate.limits.monthly_quota.is_none() {
                continue;
            }
            let day_used = store.accepted_since(name, day * DAY_MS).await?;
            let month_used = store.accepted_since(name, month_start(month)).await?;
            gate.quota.lock().raise_to(now, day_used, month_used);
        }
        Ok(())
    }

    fn gate(&self, tenant: &str) -> Option<Arc<Gate>> {
        self.gates.load().get(tenant).cloned()
    }

    /// Whether `tenant` may send a message of `segments` segments over `channel` to a
    /// destination in `country`: 403 with a stable code (`channel_not_allowed`,
    /// `country_not_allowed`, `country_blocked`) or 422 `too_many_segments`.
    pub(crate) fn policy(
        &self,
        tenant: &str,
        channel: Channel,
        country: Option<&str>,
        segments: u16,
    ) -> Result<(), Refusal> {
        let Some(gate) = self.gate(tenant) else {
            return Ok(());
        };
        check_policy(&gate.limits, channel, country, segments)
    }

    /// Whether `tenant` may ask for `priority`: 403 `priority_not_allowed` (field
    /// `priority`) above its `max_priority` (`high` unless the operator grants more).
    pub(crate) fn priority(&self, tenant: &str, priority: Priority) -> Result<(), Refusal> {
        let max = self
            .gate(tenant)
            .map_or(TenantFairness::DEFAULT_MAX_PRIORITY, |g| g.max_priority);
        check_priority(max, priority)
    }

    /// Takes `n` messages from `tenant`'s rate and quotas: 429 `rate_limited` (Retry-After:
    /// when the bucket allows it) or 429 `quota_exceeded` (Retry-After: when the quota resets).
    pub(crate) fn admit(
        &self,
        tenant: &str,
        n: u32,
        now: UnixMs,
        instant: Instant,
    ) -> Result<Reservation, Refusal> {
        let Some(gate) = self.gate(tenant) else {
            return Ok(Reservation {
                quota: None,
                n: 0,
                at: now,
            });
        };
        let (daily, monthly) = (gate.limits.daily_quota, gate.limits.monthly_quota);
        // The quota first: a refused request must not consume rate tokens it did not use.
        let quota = if daily.is_some() || monthly.is_some() {
            gate.quota
                .lock()
                .reserve(u64::from(n), daily, monthly, now)
                .map_err(|q| {
                    metrics::counter!("switchyard_api_quota_refusals_total").increment(1);
                    Refusal::QuotaExceeded {
                        which: q.which,
                        limit: q.limit,
                        n,
                        retry_after_s: q.retry_after_s,
                    }
                })?;
            Some(gate.quota.clone())
        } else {
            None
        };
        let reservation = Reservation {
            quota,
            n: u64::from(n),
            at: now,
        };
        if let Some(bucket) = &gate.bucket {
            let mut b = bucket.lock();
            if let Err(wait) = b.take_into_debt(instant, n) {
                let rate = b.rate().get();
                let wait = match wait {
                    Wait::Until(at) => at.saturating_duration_since(instant),
                    Wait::Never => Duration::MAX,
                };
                drop(b);
                metrics::counter!("switchyard_api_rate_limited_total").increment(1);
                // `reservation` is dropped here: the quota is given back.
                return Err(Refusal::RateLimited {
                    rate,
                    retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                });
            }
        }
        Ok(reservation)
    }
}

/// Priorities order from `critical` (the highest) to `low`.
fn check_priority(max: Priority, asked: Priority) -> Result<(), Refusal> {
    if asked >= max {
        return Ok(());
    }
    Err(Refusal::PriorityNotAllowed { max, asked })
}

fn check_policy(
    limits: &TenantLimits,
    channel: Channel,
    country: Option<&str>,
    segments: u16,
) -> Result<(), Refusal> {
    if let Some(allowed) = &limits.allowed_channels {
        if !allowed.contains(&channel) {
            return Err(Refusal::ChannelNotAllowed(channel));
        }
    }
    if let Some(allowed) = &limits.allowed_countries {
        if !country.is_some_and(|c| allowed.iter().any(|a| a.eq_ignore_ascii_case(c))) {
            return Err(Refusal::CountryNotAllowed(allowed.clone()));
        }
    }
    if let Some(c) = country {
        if limits
            .blocked_countries
            .iter()
            .any(|b| b.eq_ignore_ascii_case(c))
        {
            return Err(Refusal::CountryBlocked(c.to_owned()));
        }
    }
    if let Some(max) = limits.max_segments {
        if segments > max {
            return Err(Refusal::TooManySegments { segments, max });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::problem::Problem;

    /// 2026-01-31T23:59:59Z.
    const JAN31_LAST_SECOND: UnixMs = 1_769_903_999_000;

    #[test]
    fn quota_windows_roll_at_utc_day_and_month() {
        let mut w = QuotaWindow::default();
        w.raise_to(JAN31_LAST_SECOND, 9, 99);
        assert!(w.reserve(1, Some(10), Some(100), JAN31_LAST_SECOND).is_ok());
        let e = w
            .reserve(1, Some(10), Some(100), JAN31_LAST_SECOND)
            .unwrap_err();
        assert_eq!((e.which, e.retry_after_s), ("daily", 1));
        // One second later it is February: both windows start again.
        let feb = JAN31_LAST_SECOND + 1000;
        assert!(w.reserve(10, Some(10), Some(100), feb).is_ok());
        assert_eq!(w.day_used, 10);
        assert_eq!(w.month_used, 10);
        // The monthly quota refuses with Retry-After to March 1st (28 days in Feb 2026).
        let e = w.reserve(95, None, Some(100), feb).unwrap_err();
        assert_eq!(e.which, "monthly");
        assert_eq!(e.retry_after_s, 28 * 86_400);
        // A release after the day rolled gives nothing back to the new day.
        w.release(5, JAN31_LAST_SECOND);
        assert_eq!(w.day_used, 10);
        w.release(5, feb);
        assert_eq!(w.day_used, 5);
    }

    #[test]
    fn month_starts() {
        let (_, m) = day_and_month(JAN31_LAST_SECOND);
        assert_eq!(month_start(m), 1_767_225_600_000); // 2026-01-01
        assert_eq!(month_start(m + 1), 1_769_904_000_000); // 2026-02-01
        assert_eq!(month_start(m + 12), 1_798_761_600_000); // 2027-01-01
    }

    #[test]
    fn debt_bucket_paces_and_admits_big_requests() {
        let t0 = Instant::now();
        let ten = std::num::NonZeroU32::new(10).unwrap();
        let mut b = TokenBucket::per_second(ten, t0);
        for _ in 0..10 {
            b.take_into_debt(t0, 1).unwrap();
        }
        let Wait::Until(at) = b.take_into_debt(t0, 1).unwrap_err() else {
            panic!("a token is always possible")
        };
        let wait = at - t0;
        assert!(wait <= Duration::from_millis(101), "{wait:?}");
        // A batch of 50 waits for a full bucket, then leaves 40 tokens of debt (4 s).
        let full = t0 + Duration::from_secs(1);
        b.take_into_debt(full, 50).unwrap();
        let Wait::Until(at) = b.take_into_debt(full, 1).unwrap_err() else {
            panic!("a token is always possible")
        };
        let wait = at - full;
        assert!(wait > Duration::from_millis(4000) && wait < Duration::from_millis(4200));
        assert!(b
            .take_into_debt(full + Duration::from_millis(4200), 1)
            .is_ok());
    }

    #[test]
    fn live_nodes_share_the_rate_and_quotas_follow_the_store() {
        let mut config = switchyard_ops::config::Config::embedded_default();
        config.tenants[0].max_tps = Some(10);
        config.tenants[0].limits.daily_quota = Some(100);
        let name = config.tenants[0].name.clone();
        let l = TenantLimiter::new(&config);
        let now = JAN31_LAST_SECOND - 10_000;
        let i = Instant::now();
        // Two live nodes: this one admits 5 a second (rounded up).
        l.set_share(2);
        let admitted = (0..10)
            .filter(|_| l.admit(&name, 1, now, i).map(Reservation::keep).is_ok())
            .count();
        assert_eq!(admitted, 5);
        // Back to one node: the whole rate again.
        l.set_share(1);
        let admitted = (0..20)
            .filter(|_| l.admit(&name, 1, now, i).map(Reservation::keep).is_ok())
            .count();
        assert_eq!(admitted, 10);
        // The other nodes accepted 90 today: 15 used here, 90 in the store → 10 left.
        let gate = l.gate(&name).unwrap();
        gate.quota.lock().raise_to(now, 90, 90);
        assert_eq!(gate.quota.lock().day_used, 90);
        gate.quota.lock().raise_to(now, 10, 10);
        assert_eq!(gate.quota.lock().day_used, 90, "never lowered");
    }

    #[test]
    fn reservations_give_quota_back_unless_kept() {
        let mut config = switchyard_ops::config::Config::embedded_default();
        config.tenants[0].limits.daily_quota = Some(3);
        config.tenants[0].max_tps = Some(1000);
        let name = config.tenants[0].name.clone();
        let l = TenantLimiter::new(&config);
        let now = JAN31_LAST_SECOND - 10_000;
        let i = Instant::now();
        let r = l.admit(&name, 2, now, i).unwrap();
        drop(r);
        l.admit(&name, 3, now, i).unwrap().keep();
        let p = Problem::from(l.admit(&name, 1, now, i).unwrap_err());
        assert_eq!((p.status, p.code), (429, "quota_exceeded"));
        assert_eq!(p.retry_after, Some(11));
        // Another tenant (unknown here: no limits) is unaffected.
        assert!(l.admit("other", 1_000_000, now, i).is_ok());
    }

    #[test]
    fn a_shrunk_reservation_gives_the_difference_back() {
        let mut config = switchyard_ops::config::Config::embedded_default();
        config.tenants[0].limits.daily_quota = Some(10);
        let name = config.tenants[0].name.clone();
        let l = TenantLimiter::new(&config);
        let now = JAN31_LAST_SECOND - 10_000;
        let i = Instant::now();
        // A batch of 10 recipients reserves 10; 4 were refused, 6 are stored.
        let mut r = l.admit(&name, 10, now, i).unwrap();
        assert!(l.admit(&name, 1, now, i).is_err());
        r.shrink(6);
        r.keep();
        l.admit(&name, 4, now, i).unwrap().keep();
        assert!(l.admit(&name, 1, now, i).is_err());
    }

    #[test]
    fn policy_codes() {
        let limits = TenantLimits {
            allowed_channels: Some(vec![Channel::Voice]),
            ..TenantLimits::default()
        };
        let p = Problem::from(check_policy(&limits, Channel::Sms, Some("GB"), 1).unwrap_err());
        assert_eq!((p.status, p.code), (403, "channel_not_allowed"));
        let limits = TenantLimits {
            allowed_countries: Some(vec!["GB".into()]),
            blocked_countries: vec!["FR".into()],
            max_segments: Some(2),
            ..TenantLimits::default()
        };
        assert!(check_policy(&limits, Channel::Sms, Some("GB"), 2).is_ok());
        let p = Problem::from(check_policy(&limits, Channel::Sms, Some("US"), 1).unwrap_err());
        assert_eq!(p.code, "country_not_allowed");
        let p = Problem::from(check_policy(&limits, Channel::Sms, None, 1).unwrap_err());
        assert_eq!(p.code, "country_not_allowed");
        let p = Problem::from(check_policy(&limits, Channel::Sms, Some("GB"), 3).unwrap_err());
        assert_eq!((p.status, p.code), (422, "too_many_segments"));
        let blocked = TenantLimits {
            blocked_countries: vec!["FR".into()],
            ..TenantLimits::default()
        };
        let p = Problem::from(check_policy(&blocked, Channel::Sms, Some("fr"), 1).unwrap_err());
        assert_eq!((p.status, p.code), (403, "country_blocked"));
    }

    #[test]
    fn priorities_above_the_plan_are_refused() {
        assert!(check_priority(Priority::High, Priority::High).is_ok());
        assert!(check_priority(Priority::High, Priority::Low).is_ok());
        let p = Problem::from(check_priority(Priority::High, Priority::Critical).unwrap_err());
        assert_eq!(
            (p.status, p.code, p.field),
            (403, "priority_not_allowed", Some("priority"))
        );
        assert!(check_priority(Priority::Critical, Priority::Critical).is_ok());
        let p = Problem::from(check_priority(Priority::Normal, Priority::High).unwrap_err());
        assert!(p.detail.contains("up to normal"), "{}", p.detail);
        // Tenants not in the configuration get the default ceiling.
        let limiter = TenantLimiter::default();
        assert!(limiter.priority("nobody", Priority::High).is_ok());
        assert!(limiter.priority("nobody", Priority::Critical).is_err());
    }
}
