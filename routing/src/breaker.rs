//! The circuit breaker: a pure state machine, `now` passed in (sans-IO).
//!
//! ```text
//!            N consecutive failures, or error rate ≥ threshold over the window
//!   Closed ───────────────────────────────────────────────────────────────► Open{until}
//!     ▲                                                                   │   ▲
//!     │ probe answered (success or permanent reject)        now ≥ until   │   │ probe failed
//!     └───────────────────────────── HalfOpen ◄──────────────────────────┘   │ (cool-down × 2)
//!                                       └────────────────────────────────────┘
//! ```
//! How outcomes count:
//!
//! | outcome | consecutive | window | half-open probe |
//! | --- | --- | --- | --- |
//! | success | resets | ok | closes |
//! | permanent reject (bad number, content refused) | unchanged | failure | closes (the carrier answered) |
//! | timeout, transport down | +1 | failure | re-opens |
//! | throttled | unchanged | not counted | permit returned, stays half-open |
//!
//! Throttling means "slow down", not "broken": it must never open the breaker.
//! The cool-down doubles on each trip up to a maximum; the count of trips is forgotten once the
//! breaker has stayed closed for the maximum cool-down.

use std::time::{Duration, Instant};

/// Why a message or call failed, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// No response in time. Retry elsewhere; counts against the carrier.
    Timeout,
    /// The carrier asked us to slow down (SMPP ESME_RTHROTTLED, SIP 503 with Retry-After …).
    /// Retry later on the same or another carrier; never opens the breaker.
    Throttled,
    /// The carrier refused this message for good (invalid number, barred content). Retrying
    /// elsewhere may or may not help; counts toward the error rate only.
    PermanentReject,
    /// Connection lost or refused. Retry elsewhere; counts against the carrier.
    TransportDown,
}

impl FailureClass {
    /// Whether the same message may be retried (on this or another carrier).
    pub fn retryable(self) -> bool {
        !matches!(self, FailureClass::PermanentReject)
    }
}

/// The result of one attempt on a carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the carrier after `latency`.
    Success {
        /// Time from submission to the carrier's positive response.
        latency: Duration,
    },
    /// Failed.
    Failure(FailureClass),
}

/// Breaker tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Error rate (0.0..=1.0) over the window that opens the breaker…
    pub error_rate: f32,
    /// …once the window holds at least this many counted outcomes.
    pub min_requests: u32,
    /// Length of the sliding error-rate window (10 slots).
    pub window: Duration,
    /// First cool-down; doubles on each further trip.
    pub cooldown: Duration,
    /// Cool-down ceiling; also how long the breaker must stay closed to forget past trips.
    pub max_cooldown: Duration,
    /// Probes allowed in flight at once while half-open.
    pub half_open_probes: u32,
    /// A probe with no outcome after this long is presumed lost and its permit returned.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
            half_open_probes: 3,
            probe_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Traffic is refused until `until`.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// A bounded number of probes may go through.
    HalfOpen,
}

/// The answer to "may I send to this carrier now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Yes (closed).
    Allowed,
    /// Yes, as one of the half-open probes; report its outcome.
    Probe,
    /// No; try another carrier, or this one again at `retry_at`.
    Rejected {
        /// When asking again may succeed.
        retry_at: Instant,
    },
}

/// Number of slots in the sliding window.
const SLOTS: usize = 10;

/// Counts per window slot.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Which slot number (time / slot width) these counts belong to.
    index: u64,
    /// Counted successes.
    ok: u32,
    /// Counted failures.
    fail: u32,
}

/// A per-carrier circuit breaker. See the module docs for the state machine.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    /// Tuning.
    cfg: BreakerConfig,
    /// Current state.
    state: BreakerState,
    /// Consecutive counted failures while closed.
    consecutive: u32,
    /// Trips since the breaker last stayed closed for `max_cooldown`; sets the cool-down.
    trips: u32,
    /// When the breaker last closed (or was created); used to forget old trips.
    closed_since: Instant,
    /// Time origin of the window slots.
    epoch: Instant,
    /// Sliding error-rate window.
    slots: [Slot; SLOTS],
    /// Probes admitted and not yet reported while half-open.
    probes_in_flight: u32,
    /// When the last probe was admitted; lost probes are forgotten after `probe_timeout`.
    last_probe: Instant,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig, now: Instant) -> Self {
        Self {
            cfg,
            state: BreakerState::Closed,
            consecutive: 0,
            trips: 0,
            closed_since: now,
            epoch: now,
            slots: [Slot::default(); SLOTS],
            probes_in_flight: 0,
            last_probe: now,
        }
    }

    /// The state as of the last call (call [`Self::handle_timeout`] to advance Open → HalfOpen).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Trips counted toward the current cool-down.
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// Consecutive counted failures while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Probes admitted and not yet reported.
    pub fn probes_in_flight(&self) -> u32 {
        self.probes_in_flight
    }

    /// Tuning in use.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// When the breaker next changes state by itself (end of cool-down), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Advances time: an expired cool-down moves Open → HalfOpen.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let BreakerState::Open { until } = self.state {
            if now >= until {
                self.state = BreakerState::HalfOpen;
                self.probes_in_flight = 0;
            }
        }
    }

    /// Asks to send one message or call. A [`Admission::Probe`] must be followed by
    /// [`Self::on_outcome`].
    pub fn allow(&mut self, now: Instant) -> Admission {
        self.handle_timeout(now);
        let admission = self.peek(now);
        if admission == Admission::Probe {
            if self.probes_in_flight > 0 && now >= self.probe_expiry(now) {
                // The earlier probes' answers are overdue: they no longer hold the slots.
                self.probes_in_flight = 0;
            }
            self.probes_in_flight += 1;
            self.last_probe = now;
        }
        admission
    }

    /// What [`Self::allow`] would answer now, without taking a probe slot: for quotes and
    /// routing previews, which send nothing and so must not use up the half-open probes.
    pub fn peek(&self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open { until } if now < until => Admission::Rejected { retry_at: until },
            // A cool-down that is over: half-open with no probe out yet.
            BreakerState::Open { .. } if self.cfg.half_open_probes > 0 => Admission::Probe,
            BreakerState::Open { until } => Admission::Rejected { retry_at: until },
            BreakerState::HalfOpen => {
                let expiry = self.probe_expiry(now);
                let in_flight = if now >= expiry {
                    0
                } else {
                    self.probes_in_flight
                };
                if in_flight < self.cfg.half_open_probes {
                    Admission::Probe
                } else {
                    Admission::Rejected { retry_at: expiry }
                }
            }
        }
    }

    /// When the probes out now stop holding their slots.
    fn probe_expiry(&self, now: Instant) -> Instant {
        self.last_probe
            .checked_add(self.cfg.probe_timeout)
            .unwrap_or(now)
    }

    /// Records an outcome. Returns the new state if it changed.
    pub fn on_outcome(&mut self, now: Instant, outcome: Outcome) -> Option<BreakerState> {
        self.handle_timeout(now);
        let before = self.state;
        match (self.state, outcome) {
            (BreakerState::Open { .. }, _) => {} // late answers to pre-trip traffic
            (_, Outcome::Failure(FailureClass::Throttled)) => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
            }
            (BreakerState::HalfOpen, Outcome::Success { .. })
            | (BreakerState::HalfOpen, Outcome::Failure(FailureClass::PermanentReject)) => {
                self.close(now)
            }
            (BreakerState::HalfOpen, Outcome::Failure(_)) => self.trip(now),
            (BreakerState::Closed, Outcome::Success { .. }) => {
                self.consecutive = 0;
                self.count(now, true);
            }
            (BreakerState::Closed, Outcome::Failure(FailureClass::PermanentReject)) => {
                self.count(now, false);
                self.check_trip(now);
            }
            (BreakerState::Closed, Outcome::Failure(_)) => {
                self.consecutive = self.consecutive.saturating_add(1);
                self.count(now, false);
                self.check_trip(now);
            }
        }
        (self.state != before).then_some(self.state)
    }

    /// Counted outcomes (ok, failed) in the window ending at `now`.
    pub fn window_counts(&self, now: Instant) -> (u32, u32) {
        let current = self.slot_index(now);
        self.slots
            .iter()
            .filter(|s| current.saturating_sub(s.index) < SLOTS as u64 && s.index <= current)
            .fold((0, 0), |(o, f), s| (o + s.ok, f + s.fail))
    }

    fn slot_index(&self, now: Instant) -> u64 {
        let width = (self.cfg.window.as_nanos() / SLOTS as u128).max(1);
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos() / width)
            .unwrap_or(u64::MAX)
    }

    fn count(&mut self, now: Instant, ok: bool) {
        let index = self.slot_index(now);
        let pos = usize::try_from(index % SLOTS as u64).unwrap_or(0);
        if let Some(slot) = self.slots.get_mut(pos) {
            if slot.index != index {
                *slot = Slot {
                    index,
                    ok: 0,
                    fail: 0,
                };
            }
            if ok {
                slot.ok = slot.ok.saturating_add(1);
            } else {
                slot.fail = slot.fail.saturating_add(1);
            }
        }
    }

    fn check_trip(&mut self, now: Instant) {
        let (ok, fail) = self.window_counts(now);
        let total = ok + fail;
        let rate_trip = total >= self.cfg.min_requests.max(1)
            && fail as f32 >= self.cfg.error_rate * total as f32;
        if self.consecutive >= self.cfg.consecutive_failures.max(1) || rate_trip {
            self.trip(now);
        }
    }

    fn trip(&mut self, now: Instant) {
        if self.state == BreakerState::Closed
            && now.saturating_duration_since(self.closed_since) >= self.cfg.max_cooldown
        {
            self.trips = 0;
        }
        self.trips = self.trips.saturating_add(1);
        self.state = BreakerState::Open {
            until: now.checked_add(self.cooldown()).unwrap_or(now),
        };
        self.reset_counts();
    }

    fn close(&mut self, now: Instant) {
        self.state = BreakerState::Closed;
        self.closed_since = now;
        self.reset_counts();
    }

    fn reset_counts(&mut self) {
        self.consecutive = 0;
        self.probes_in_flight = 0;
        self.slots = [Slot::default(); SLOTS];
    }

    /// Cool-down for the current trip count: `cooldown × 2^(trips−1)`, capped.
    pub fn cooldown(&self) -> Duration {
        let doublings = self.trips.saturating_sub(1).min(30);
        self.cfg
            .cooldown
            .saturating_mul(1 << doublings)
            .min(self.cfg.max_cooldown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Outcome = Outcome::Failure(FailureClass::Timeout);
    const OK: Outcome = Outcome::Success {
        latency: Duration::from_millis(50),
    };
    const THROTTLED: Outcome = Outcome::Failure(FailureClass::Throttled);

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            min_requests: 1000,
            ..BreakerConfig::default()
        }
    }

    #[test]
    fn consecutive_failures_open_then_probe_then_close() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(cfg(), t0);
        for i in 0..4 {
            assert_eq!(b.on_outcome(t0 + Duration::from_millis(i), FAIL), None);
        }
        let t = t0 + Duration::from_secs(1);
        assert_eq!(
            b.on_outcome(t, FAIL),
            Some(BreakerState::Open {
                until: t + Duration::from_secs(5)
            })
        );
        assert_eq!(
            b.allow(t + Duration::from_secs(4)),
            Admission::Rejected {
                retry_at: t + Duration::from_secs(5)
            }
        );
        let t = t + Duration::from_secs(5);
        assert_eq!(b.allow(t), Admission::Probe);
        assert_eq!(b.allow(t), Admission::Probe);
        assert_eq!(b.allow(t), Admission::Probe);
        assert!(matches!(b.allow(t), Admission::Rejected { .. }));
        assert_eq!(b.on_outcome(t, OK), Some(BreakerState::Closed));
        assert_eq!(b.allow(t), Admission::Allowed);
    }

    #[test]
    fn peek_answers_like_allow_without_taking_probe_slots() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(cfg(), t0);
        assert_eq!(b.peek(t0), Admission::Allowed);
        for _ in 0..5 {
            b.on_outcome(t0, FAIL);
        }
        let until = t0 + Duration::from_secs(5);
        assert_eq!(b.peek(t0), Admission::Rejected { retry_at: until });
        // The cool-down is over: any number of quotes, and still three probes to send.
        for _ in 0..10 {
            assert_eq!(b.peek(until), Admission::Probe);
        }
        for n in 1..=3 {
            assert_eq!(b.allow(until), Admission::Probe);
            assert_eq!(b.probes_in_flight(), n);
        }
        assert!(matches!(b.peek(until), Admission::Rejected { .. }));
        assert!(matches!(b.allow(until), Admission::Rejected { .. }));
        // Probes whose answers are overdue no longer hold their slots, for either.
        let late = until + b.config().probe_timeout;
        assert_eq!(b.peek(late), Admission::Probe);
        assert_eq!(b.allow(late), Admission::Probe);
        assert_eq!(b.probes_in_flight(), 1);
    }

    #[test]
    fn cooldown_grows_on_repeated_trips_and_is_forgotten() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(cfg(), t0);
        let mut t = t0;
        for _ in 0..5 {
            b.on_outcome(t, FAIL);
        }
        let mut expected = Duration::from_secs(5);
        for _ in 0..8 {
            let BreakerState::Open { until } = b.state() else {
                panic!("not open")
            };
            assert_eq!(until - t, expected);
            t = until;
            assert_eq!(b.allow(t), Admission::Probe);
            assert!(b.on_outcome(t, FAIL).is_some());
            expected = (expected * 2).min(Duration::from_secs(300));
        }
        // Close, stay healthy past max_cooldown, trip again: back to the base cool-down.
        let BreakerState::Open { until } = b.state() else {
            panic!("not open")
        };
        t = until;
        assert_eq!(b.allow(t), Admission::Probe);
        assert_eq!(b.on_outcome(t, OK), Some(BreakerState::Closed));
        t += Duration::from_secs(301);
        for _ in 0..5 {
            b.on_outcome(t, FAIL);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t + Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn throttling_never_opens() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default(), t0);
        for i in 0..10_000 {
            assert_eq!(b.on_outcome(t0 + Duration::from_millis(i), THROTTLED), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn error_rate_over_window_opens() {
        let t0 = Instant::now();
        let cfg = BreakerConfig {
            consecutive_failures: 100,
            min_requests: 20,
            ..BreakerConfig::default()
        };
        let mut b = CircuitBreaker::new(cfg, t0);
        // Alternate ok/fail: 50 % error rate, never 100 consecutive.
        let mut opened = None;
        for i in 0..40u64 {
            let outcome = if i % 2 == 0 { OK } else { FAIL };
            if let Some(s) = b.on_outcome(t0 + Duration::from_millis(100 * i), outcome) {
                opened = Some((i, s));
                break;
            }
        }
        assert!(
            matches!(opened, Some((19, BreakerState::Open { .. }))),
            "{opened:?}"
        );
        // The same mix spread thinly over time never fills the window.
        let mut b = CircuitBreaker::new(b.config().clone(), t0);
        for i in 0..200u64 {
            let outcome = if i % 2 == 0 { OK } else { FAIL };
            assert_eq!(b.on_outcome(t0 + Duration::from_secs(i), outcome), None);
        }
    }

    #[test]
    fn lost_probes_are_forgotten() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(cfg(), t0);
        for _ in 0..5 {
            b.on_outcome(t0, FAIL);
        }
        let t = t0 + Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(b.allow(t), Admission::Probe);
        }
        assert_eq!(
            b.allow(t + Duration::from_secs(29)),
            Admission::Rejected {
                retry_at: t + Duration::from_secs(30)
            }
        );
        assert_eq!(b.allow(t + Duration::from_secs(30)), Admission::Probe);
    }
}
