//! Call detail records: what the proxy learns about a call while it runs ([`CallLog`]), and the
//! [`CallRecord`] it becomes when the call ends, priced by the answering carrier's voice rate
//! (billing increments and connection fee) and the tenant's markup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_routing::{Router, E164};

use crate::domain::{CallRecord, UnixMs};

/// Maps the proxy's `Instant`s to wall-clock milliseconds (one reading taken at start, so
/// the proxy itself never reads the clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    /// An instant…
    at: Instant,
    /// …and the Unix time in milliseconds it corresponds to.
    unix_ms: UnixMs,
}

impl WallClock {
    /// `at` is `unix_ms` milliseconds after 1970.
    pub(crate) fn new(at: Instant, unix_ms: UnixMs) -> Self {
        WallClock { at, unix_ms }
    }

    /// The Unix time of `t`, in milliseconds.
    pub(crate) fn ms(&self, t: Instant) -> UnixMs {
        match t.checked_duration_since(self.at) {
            Some(d) => self.unix_ms + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
            None => {
                self.unix_ms - i64::try_from(self.at.duration_since(t).as_millis()).unwrap_or(0)
            }
        }
    }

    /// The Unix time of `t`, in seconds (digest nonces).
    pub(crate) fn secs(&self, t: Instant) -> u64 {
        u64::try_from(self.ms(t) / 1000).unwrap_or(0)
    }
}

/// What is known about a call so far.
#[derive(Debug, Clone)]
pub(crate) struct CallLog {
    /// Whose call.
    pub(crate) tenant: Arc<str>,
    /// The caller's Call-ID.
    pub(crate) sip_call_id: String,
    /// The caller (From user).
    pub(crate) caller: String,
    /// The callee.
    pub(crate) callee: E164,
    /// Trunks tried with their codes.
    pub(crate) attempts: Vec<(String, u16)>,
    /// When the INVITE arrived.
    pub(crate) setup: Instant,
    /// When it was answered, and by which carrier.
    pub(crate) answered: Option<(Instant, String)>,
}

impl CallLog {
    /// The record of a call that was never answered, ending with `code` at `now`.
    pub(crate) fn unanswered(
        &self,
        disposition: &'static str,
        code: u16,
        now: Instant,
        clock: &WallClock,
    ) -> CallRecord {
        self.record(disposition, code, None, now, clock, None)
    }

    /// The record of an answered call hung up by `hangup` at `now`, priced.
    pub(crate) fn ended(
        &self,
        hangup: &'static str,
        now: Instant,
        clock: &WallClock,
        router: &Router,
    ) -> CallRecord {
        self.record("answered", 200, Some(hangup), now, clock, Some(router))
    }

    fn record(
        &self,
        disposition: &'static str,
        code: u16,
        hangup: Option<&'static str>,
        now: Instant,
        clock: &WallClock,
        router: Option<&Router>,
    ) -> CallRecord {
        let talk = self
            .answered
            .as_ref()
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at));
        let duration_ms = u64::try_from(talk.as_millis()).unwrap_or(u64::MAX);
        // Whole seconds, rounded up: a call of 1.2 s is billed as 2 s before increments.
        let secs = u32::try_from(duration_ms.div_ceil(1000)).unwrap_or(u32::MAX);
        let carrier = self.answered.as_ref().map(|(_, c)| c.clone());
        let charge = match (router, &carrier) {
            (Some(r), Some(c)) => {
                let table = r.load();
                table.tenant_id(&self.tenant).and_then(|t| {
                    table
                        .carrier_id(c)
                        .and_then(|id| table.voice_charge(t, id, &self.callee, secs))
                        .map(|ch| (ch, table.config().base_currency))
                })
            }
            _ => None,
        };
        CallRecord {
            id: 0,
            tenant: self.tenant.to_string(),
            sip_call_id: self.sip_call_id.clone(),
            caller: self.caller.clone(),
            callee: self.callee.to_string(),
            attempts: self.attempts.clone(),
            carrier,
            disposition,
            code,
            hangup,
            setup_at: clock.ms(self.setup),
            answer_at: self.answered.as_ref().map(|(at, _)| clock.ms(*at)),
            end_at: clock.ms(now),
            duration_ms,
            billed_secs: charge.map_or(0, |(c, _)| c.billed_secs),
            cost: charge.map(|(c, _)| c.cost.to_string()),
            price: charge.map(|(c, _)| c.price.to_string()),
            currency: charge.map(|(_, cur)| cur.as_str().to_owned()),
        }
    }
}

/// The disposition of a call that ended with final `code` without being answered.
pub(crate) fn disposition(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        408 | 480 => "no_answer",
        487 => "cancelled",
        500..=599 => "failed",
        _ => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_maps_both_ways() {
        let now = Instant::now();
        let c = WallClock::new(now, 1_000_000);
        assert_eq!(c.ms(now + Duration::from_millis(1500)), 1_001_500);
        assert_eq!(c.secs(now + Duration::from_millis(1500)), 1001);
    }

    #[test]
    fn dispositions() {
        assert_eq!(disposition(486), "busy");
        assert_eq!(disposition(480), "no_answer");
        assert_eq!(disposition(503), "failed");
        assert_eq!(disposition(404), "rejected");
    }
}
