//! Carrier attributes: what a carrier carries, how much, how it is ranked on ties, and how
//! numbers must be rewritten before they are sent to it.

use std::fmt;

use crate::money::{Currency, Price};
use crate::number::E164;

/// A delivery channel. Phone-addressed channels ([`Channel::PHONE`]) are priced by prefix in
/// rate decks and have a prefix table each; the others are priced per message by each
/// carrier's flat price ([`CarrierConfig::flat_prices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// SMS over SMPP; prices are per segment.
    Sms,
    /// Voice over SIP; prices are per minute plus a connection fee.
    Voice,
    /// Email over SMTP; a flat price per message.
    Email,
    /// RCS Business Messaging (agent messages to a phone); prices are per message, by prefix.
    Rcs,
    /// WhatsApp Business (Cloud API) to a phone; prices are per message, by prefix.
    Whatsapp,
    /// Telegram (Bot API) to a chat; a flat price per message.
    Telegram,
    /// Facebook Messenger (Send API) to a page-scoped user id; a flat price per message.
    Messenger,
    /// A signed HTTP POST to an endpoint of the recipient's system; a flat price per message.
    Webhook,
}

impl Channel {
    /// Every channel, in table order.
    pub const ALL: [Channel; 8] = [
        Channel::Sms,
        Channel::Voice,
        Channel::Email,
        Channel::Rcs,
        Channel::Whatsapp,
        Channel::Telegram,
        Channel::Messenger,
        Channel::Webhook,
    ];

    /// The phone-addressed channels, priced by prefix: one prefix table each.
    pub const PHONE: [Channel; 4] = [
        Channel::Sms,
        Channel::Voice,
        Channel::Rcs,
        Channel::Whatsapp,
    ];

    /// Index into per-channel arrays ([`Channel::ALL`] order).
    pub(crate) fn index(self) -> usize {
        match self {
            Channel::Sms => 0,
            Channel::Voice => 1,
            Channel::Email => 2,
            Channel::Rcs => 3,
            Channel::Whatsapp => 4,
            Channel::Telegram => 5,
            Channel::Messenger => 6,
            Channel::Webhook => 7,
        }
    }

    /// Whether destinations are phone numbers priced by prefix (SMS, voice, RCS, WhatsApp).
    pub fn is_phone(self) -> bool {
        !matches!(
            self,
            Channel::Email | Channel::Telegram | Channel::Messenger | Channel::Webhook
        )
    }

    /// The name used in configuration and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Rcs => "rcs",
            Channel::Whatsapp => "whatsapp",
            Channel::Telegram => "telegram",
            Channel::Messenger => "messenger",
            Channel::Webhook => "webhook",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = ();

    /// A channel by its [`Channel::as_str`] name.
    fn from_str(s: &str) -> Result<Self, ()> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A carrier's price per message on a channel that is not priced by prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatPrice {
    /// The channel (not a phone channel).
    pub channel: Channel,
    /// What one message costs.
    pub price: Price,
    /// Currency of `price`.
    pub currency: Currency,
}

/// A carrier's quality class, a prior on top of measured health: direct routes are trusted
/// more than wholesale ones even before traffic proves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QualityClass {
    /// Direct operator connection.
    Premium,
    /// Reputable aggregator.
    Standard,
    /// Low-cost wholesale; more hops, more loss.
    Economy,
}

impl QualityClass {
    /// Multiplier applied to measured health when scoring (1.0, 0.9, 0.75).
    pub fn factor(self) -> f32 {
        match self {
            QualityClass::Premium => 1.0,
            QualityClass::Standard => 0.9,
            QualityClass::Economy => 0.75,
        }
    }
}

/// How to turn an E.164 number into what the carrier expects on the wire. Applied in order:
/// strip leading digits, then prepend the tech prefix, then optionally a `+`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberRewrite {
    /// Leading digits to remove (e.g. 2 to drop the `44` of a UK-only carrier).
    pub strip_digits: u8,
    /// Routing/tech prefix the carrier requires in front of the number (e.g. `"1234#"`); digits,
    /// `#` and `*` only, at most [`NumberRewrite::MAX_TECH_PREFIX`] characters.
    pub tech_prefix: String,
    /// Whether the number is sent with a leading `+`.
    pub plus: bool,
}

impl NumberRewrite {
    /// Longest accepted tech prefix.
    pub const MAX_TECH_PREFIX: usize = 16;

    /// Whether the rule can be applied (checked when the table is built).
    pub fn is_valid(&self) -> bool {
        self.tech_prefix.len() <= Self::MAX_TECH_PREFIX
            && self
                .tech_prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'#' || b == b'*')
            && usize::from(self.strip_digits) < crate::number::MAX_DIGITS
    }

    /// Applies the rule without allocating.
    pub fn apply(&self, number: &E164) -> DialString {
        let mut out = DialString {
            bytes: [0; DialString::CAPACITY],
            len: 0,
        };
        if self.plus {
            out.push(b'+');
        }
        for b in self.tech_prefix.bytes().take(Self::MAX_TECH_PREFIX) {
            out.push(b);
        }
        for b in number.digits().iter().skip(usize::from(self.strip_digits)) {
            out.push(*b);
        }
        out
    }
}

/// A rewritten number, stored inline (see [`NumberRewrite::apply`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DialString {
    /// ASCII bytes; the first `len` are used.
    bytes: [u8; DialString::CAPACITY],
    /// Bytes in use.
    len: u8,
}

impl DialString {
    /// `+`, a maximal tech prefix and 15 digits.
    const CAPACITY: usize = 1 + NumberRewrite::MAX_TECH_PREFIX + crate::number::MAX_DIGITS;

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The rewritten number.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII is pushed.
        std::str::from_utf8(self.bytes.get(..usize::from(self.len)).unwrap_or(&[])).unwrap_or("")
    }
}

impl fmt::Debug for DialString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Masked like numbers: only the first 6 characters.
        let s = self.as_str();
        write!(f, "DialString({}…)", s.get(..6.min(s.len())).unwrap_or(""))
    }
}

/// A carrier (SMSC operator or SIP trunk provider) and its routing attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierConfig {
    /// Unique name; rate decks and route plans refer to it.
    pub name: String,
    /// Channels the carrier is contracted for; decks for other channels are refused.
    pub channels: Vec<Channel>,
    /// Tie-break between equal prices: lower goes first (0 = most preferred).
    pub priority: u8,
    /// Share of traffic among carriers whose scores tie (within the scoring tie band).
    pub weight: u32,
    /// Prior on route quality.
    pub quality: QualityClass,
    /// SMS throttle, messages per second for the whole carrier (`None`: unlimited). The gateway
    /// builds a [`crate::TokenBucket`] from it.
    pub max_tps: Option<u32>,
    /// Voice throttle, calls per second.
    pub max_cps: Option<u32>,
    /// How numbers are rewritten for this carrier.
    pub rewrite: NumberRewrite,
    /// Prices per message on channels not priced by prefix (at most one per channel).
    pub flat_prices: Vec<FlatPrice>,
}

impl CarrierConfig {
    /// Default `priority`.
    pub const DEFAULT_PRIORITY: u8 = 100;
    /// Default `weight`.
    pub const DEFAULT_WEIGHT: u32 = 1;
    /// Default `quality`.
    pub const DEFAULT_QUALITY: QualityClass = QualityClass::Standard;

    /// A carrier with neutral defaults: priority 100, weight 1, standard quality, no limits, no
    /// rewriting.
    pub fn new(name: impl Into<String>, channels: &[Channel]) -> Self {
        Self {
            name: name.into(),
            channels: channels.to_vec(),
            priority: Self::DEFAULT_PRIORITY,
            weight: Self::DEFAULT_WEIGHT,
            quality: Self::DEFAULT_QUALITY,
            max_tps: None,
            max_cps: None,
            rewrite: NumberRewrite::default(),
            flat_prices: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite() {
        let n = E164::parse("+447700900123").unwrap();
        let r = NumberRewrite {
            strip_digits: 2,
            tech_prefix: "0049#".into(),
            plus: false,
        };
        assert!(r.is_valid());
        assert_eq!(r.apply(&n).as_str(), "0049#7700900123");
        let r = NumberRewrite {
            plus: true,
            ..Default::default()
        };
        assert_eq!(r.apply(&n).as_str(), "+447700900123");
        assert!(!NumberRewrite {
            tech_prefix: "12a".into(),
            ..Default::default()
        }
        .is_valid());
    }
}
