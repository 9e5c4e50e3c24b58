//! What a tenant may send: its plan's policy (channels, countries, segments, priority), its rate
//! and quotas, the opt-out list, and batch templates. Every refusal is a [`Refusal`] with a
//! stable code; the entry points turn it into their protocol's answer (the HTTP API into a
//! problem document with its status and `Retry-After`).
//!
//! # Layout
//! - [`limits`]: per-tenant TPS (token bucket that lets a batch run into debt), daily and
//!   monthly quotas (in memory, seeded from the store, reset at UTC day/month boundaries),
//!   segment cap, channel and country allow/block lists, highest priority.
//! - [`optout`]: the opt-out list, mirrored in memory for the per-message check.
//! - [`template`]: `{{variable}}` rendering for batch bodies.
//! - [`windows`]: the WhatsApp and Messenger 24-hour windows, from the stored inbound
//!   messages, for the per-message check.

pub(crate) mod limits;
pub(crate) mod optout;
pub(crate) mod template;
pub(crate) mod windows;

use std::fmt;

use switchyard_routing::{Channel, Priority};

/// Why a tenant may not send a message (or a batch of them) now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The plan does not include the channel.
    ChannelNotAllowed(Channel),
    /// The plan allows only destinations in these countries.
    CountryNotAllowed(Vec<String>),
    /// The plan blocks destinations in this country.
    CountryBlocked(String),
    /// The body needs more segments than the plan allows.
    TooManySegments {
        /// Segments the body needs.
        segments: u16,
        /// The plan's cap.
        max: u16,
    },
    /// The priority asked for is above the plan's highest.
    PriorityNotAllowed {
        /// The plan's highest priority.
        max: Priority,
        /// What was asked for.
        asked: Priority,
    },
    /// A daily or monthly quota is used up.
    QuotaExceeded {
        /// "daily" or "monthly".
        which: &'static str,
        /// The quota.
        limit: u64,
        /// Messages in the refused request.
        n: u32,
        /// Seconds until the quota resets.
        retry_after_s: u64,
    },
    /// Over the tenant's messages per second.
    RateLimited {
        /// The plan's rate.
        rate: u32,
        /// Seconds until the bucket allows the request.
        retry_after_s: u64,
    },
    /// The recipient opted out of this sender (STOP).
    OptedOut,
    /// A WhatsApp free-text or untagged Messenger message to a person who has not written
    /// to the tenant's account on that channel within 24 hours.
    OutsideWindow(Channel),
}

impl Refusal {
    /// The stable machine-readable code (the API's `code`).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::ChannelNotAllowed(_) => "channel_not_allowed",
            Refusal::CountryNotAllowed(_) => "country_not_allowed",
            Refusal::CountryBlocked(_) => "country_blocked",
            Refusal::TooManySegments { .. } => "too_many_segments",
            Refusal::PriorityNotAllowed { .. } => "priority_not_allowed",
            Refusal::QuotaExceeded { .. } => "quota_exceeded",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::OptedOut => "recipient_opted_out",
            Refusal::OutsideWindow(Channel::Messenger) => "outside_messaging_window",
            Refusal::OutsideWindow(_) => "outside_customer_service_window",
        }
    }

    /// The request field at fault, when one is.
    pub(crate) fn field(&self) -> Option<&'static str> {
        match self {
            Refusal::TooManySegments { .. } => Some("body"),
            Refusal::PriorityNotAllowed { .. } => Some("priority"),
            Refusal::OptedOut => Some("to"),
            Refusal::OutsideWindow(Channel::Messenger) => Some("tag"),
            Refusal::OutsideWindow(_) => Some("template"),
            _ => None,
        }
    }

    /// When the same request may succeed: seconds to wait (rate and quota refusals only).
    pub(crate) fn retry_after_s(&self) -> Option<u64> {
        match self {
            Refusal::QuotaExceeded { retry_after_s, .. }
            | Refusal::RateLimited { retry_after_s, .. } => Some((*retry_after_s).max(1)),
            _ => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |p: &Priority| format!("{p:?}").to_lowercase();
        match self {
            Refusal::ChannelNotAllowed(c) => {
                write!(f, "your plan does not include the {c:?} channel")
            }
            Refusal::CountryNotAllowed(allowed) => write!(
                f,
                "your plan only allows destinations in {}",
                allowed.join(", ")
            ),
            Refusal::CountryBlocked(c) => write!(f, "your plan blocks destinations in {c}"),
            Refusal::TooManySegments { segments, max } => write!(
                f,
                "the body needs {segments} segments; your plan allows {max}"
            ),
            Refusal::PriorityNotAllowed { max, asked } => write!(
                f,
                "your plan allows priorities up to {}; {} is not allowed",
                name(max),
                name(asked)
            ),
            Refusal::QuotaExceeded {
                which,
                limit,
                n,
                retry_after_s,
            } => write!(
                f,
                "the {which} quota of {limit} messages is used up (this request has {n}); it resets in {retry_after_s} s"
            ),
            Refusal::RateLimited { rate, .. } => {
                write!(f, "more than {rate} messages per second; slow down")
            }
            Refusal::OptedOut => f.write_str(
                "the recipient opted out of messages from this sender (STOP); they can opt in \
                 again by replying START, or remove the opt-out through /v1/opt-outs if they \
                 asked you",
            ),
            Refusal::OutsideWindow(Channel::Messenger) => f.write_str(
                "the person has not written to your page within the last 24 hours, so Messenger \
                 accepts only tagged messages: give a `tag` (CONFIRMED_EVENT_UPDATE, \
                 POST_PURCHASE_UPDATE, ACCOUNT_UPDATE or HUMAN_AGENT) if the message is one",
            ),
            Refusal::OutsideWindow(_) => f.write_str(
                "the person has not written to your WhatsApp number within the last 24 hours \
                 (the customer-service window), so only a template message can be sent: give \
                 `template` {name, language, parameters} instead of free text",
            ),
        }
    }
}

impl std::error::Error for Refusal {}
