//! RFC 3261 timer values (§17, table 4 of appendix A), configurable.

use std::time::Duration;

/// T1, T2, T4 and the policies derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate: first retransmission interval (A, E, G) and the unit of B/F/H/J/L/M
    /// (64·T1). Default 500 ms.
    pub t1: Duration,
    /// Cap of the non-INVITE request and INVITE response retransmission interval. Default 4 s.
    pub t2: Duration,
    /// How long a message may stay in the network: timers I and K. Default 5 s.
    pub t4: Duration,
    /// Timer D: how long a client INVITE transaction absorbs retransmitted final responses
    /// over an unreliable transport. Default 32 s (RFC 3261 says "> 32 s").
    pub timer_d: Duration,
    /// Server INVITE: send `100 Trying` if the application has not answered within this time
    /// (RFC 3261 §17.2.1 suggests 200 ms; `Some(ZERO)` sends it at once, as a proxy should;
    /// `None` never sends it).
    pub trying_after: Option<Duration>,
    /// Most live transactions; beyond it new client requests are refused and new server
    /// requests answered `503` statelessly (memory stays bounded).
    pub max_transactions: usize,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying_after: Some(Duration::from_millis(200)),
            max_transactions: 100_000,
        }
    }
}

impl TimerConfig {
    /// 64·T1: timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}
