//! How the simulated provider treats a send: one [`Behaviour`] per provider by default, and
//! optional per-recipient overrides ([`Script`]), replaced through the control API.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to a send request once its credentials and body have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Accepted; status events follow as the delays say.
    #[default]
    Accept,
    /// Refused synchronously with the provider's error for `code`.
    Reject,
    /// Accepted, then reported failed by a status event carrying `code` (WhatsApp only; the
    /// other providers have no failure event, so the message is simply never delivered).
    Fail,
    /// Refused as rate limited: the provider's 429-class error with `retry_after_s`.
    Throttle,
    /// Refused with the provider's "temporary, try again" server error.
    Transient,
    /// Refused as if the credentials were wrong, whatever the request carried.
    BadCredentials,
}

/// How one recipient (or, as the default, every recipient) is treated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Accept, refuse or fail the message.
    pub outcome: Outcome,
    /// The provider error code for `reject` and `fail` (WhatsApp/Messenger: the Graph `code`;
    /// Telegram: `error_code`; RBM: the HTTP code). `None` takes the provider's usual one.
    pub code: Option<i64>,
    /// Seconds the client is told to wait, for `throttle`.
    pub retry_after_s: u64,
    /// Milliseconds before the HTTP answer is written; longer than the client's timeout
    /// simulates a provider that does not answer in time (the request is still processed).
    pub response_delay_ms: u64,
    /// RBM: whether the phone is RCS-capable (capability check 200 and sends accepted, or 404).
    pub capable: bool,
    /// Milliseconds after acceptance before the `sent` status (WhatsApp only).
    pub sent_delay_ms: u64,
    /// Milliseconds after acceptance before delivery is reported; `None`: never delivered
    /// (the phone stays offline; an RBM message with a TTL then expires).
    pub delivered_delay_ms: Option<u64>,
    /// Milliseconds after acceptance before the read event; `None`: no read event.
    pub read_delay_ms: Option<u64>,
    /// RBM: requests about the phone (capability checks, agent messages) wait, neither
    /// handled nor answered, while this holds; once a later behaviour lifts it, that behaviour
    /// answers them. A test knows a request is in flight ([`super::ProviderStats::holding`])
    /// and decides when it ends.
    pub hold: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            outcome: Outcome::Accept,
            code: None,
            retry_after_s: 1,
            response_delay_ms: 0,
            capable: true,
            sent_delay_ms: 0,
            delivered_delay_ms: Some(20),
            read_delay_ms: Some(40),
            hold: false,
        }
    }
}

impl Behaviour {
    /// The answer delay as a [`Duration`].
    pub fn response_delay(&self) -> Duration {
        Duration::from_millis(self.response_delay_ms)
    }

    /// Rejects settings the simulator cannot act on.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(d), Some(r)) = (self.delivered_delay_ms, self.read_delay_ms) {
            if r < d {
                return Err(format!(
                    "read_delay_ms {r} is before delivered_delay_ms {d}: a message is read only once delivered"
                ));
            }
        }
        if self.read_delay_ms.is_some() && self.delivered_delay_ms.is_none() {
            return Err("read_delay_ms needs delivered_delay_ms".into());
        }
        Ok(())
    }
}

/// The behaviour of one provider: a default and per-recipient overrides.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Script {
    /// For recipients without an override.
    pub default: Behaviour,
    /// By recipient as the provider names it (WhatsApp `to`, Telegram `chat_id`, Messenger
    /// PSID, RBM E.164 number).
    pub recipients: HashMap<String, Behaviour>,
}

impl Script {
    /// The behaviour for `recipient`.
    pub fn for_recipient(&self, recipient: &str) -> &Behaviour {
        self.recipients.get(recipient).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_keeps_defaults_and_unknown_fields_fail() {
        let b: Behaviour = serde_json::from_str(r#"{"outcome":"reject","code":131026}"#).unwrap();
        assert_eq!(b.outcome, Outcome::Reject);
        assert_eq!(b.code, Some(131026));
        assert_eq!(b.delivered_delay_ms, Some(20));
        assert!(serde_json::from_str::<Behaviour>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn read_needs_delivery_first() {
        let b = Behaviour {
            delivered_delay_ms: Some(50),
            read_delay_ms: Some(10),
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        let b = Behaviour {
            delivered_delay_ms: None,
            read_delay_ms: Some(10),
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        assert!(Behaviour::default().validate().is_ok());
    }

    #[test]
    fn per_recipient_override() {
        let mut s = Script::default();
        s.recipients.insert(
            "a".into(),
            Behaviour {
                outcome: Outcome::Throttle,
                ..Behaviour::default()
            },
        );
        assert_eq!(s.for_recipient("a").outcome, Outcome::Throttle);
        assert_eq!(s.for_recipient("b").outcome, Outcome::Accept);
    }
}
