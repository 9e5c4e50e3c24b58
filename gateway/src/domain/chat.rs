//! Chat channels over provider APIs (RCS, WhatsApp, Telegram, Messenger) and the webhook
//! channel (a signed POST to the recipient system's endpoint): what such a message carries
//! beyond its text (stored with it), and a message on its way to a provider.

use serde::{Deserialize, Serialize};
use switchyard_routing::{Channel, Priority, E164};

use super::{MessageId, UnixMs};

/// A chat channel: the provider API it goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatChannel {
    /// RCS Business Messaging (Google's RBM API).
    Rcs,
    /// WhatsApp Business Cloud API.
    Whatsapp,
    /// Telegram Bot API.
    Telegram,
    /// Messenger Send API.
    Messenger,
    /// A signed HTTP POST to the recipient system's endpoint (the gateway's own client).
    Webhook,
}

impl ChatChannel {
    /// The routing channel.
    pub fn channel(self) -> Channel {
        match self {
            ChatChannel::Rcs => Channel::Rcs,
            ChatChannel::Whatsapp => Channel::Whatsapp,
            ChatChannel::Telegram => Channel::Telegram,
            ChatChannel::Messenger => Channel::Messenger,
            ChatChannel::Webhook => Channel::Webhook,
        }
    }

    /// The chat channel of a routing channel, if it is one.
    pub fn of(channel: Channel) -> Option<ChatChannel> {
        match channel {
            Channel::Rcs => Some(ChatChannel::Rcs),
            Channel::Whatsapp => Some(ChatChannel::Whatsapp),
            Channel::Telegram => Some(ChatChannel::Telegram),
            Channel::Messenger => Some(ChatChannel::Messenger),
            Channel::Webhook => Some(ChatChannel::Webhook),
            _ => None,
        }
    }
}

/// A WhatsApp message template (pre-approved by Meta; the only kind of message WhatsApp lets
/// a business send outside the 24-hour customer-service window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTemplate {
    /// Template name.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// Values of the body's `{{1}}`, `{{2}}`, … in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
}

/// What a chat message carries beyond `body` (its text), as stored with the message
/// (`messages.chat`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSpec {
    /// The channel.
    pub channel: ChatChannel,
    /// A WhatsApp template instead of free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ChatTemplate>,
    /// A Messenger message tag (e.g. `ACCOUNT_UPDATE`): what lets a page write outside the
    /// 24-hour standard messaging window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Where a chat message goes: a phone number (RCS, WhatsApp), the id the platform gives the
/// person (a Telegram chat id, a Messenger page-scoped id), or the recipient system's
/// endpoint (webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTo {
    /// E.164.
    Phone(E164),
    /// The platform's id.
    Id(String),
    /// An `http://` or `https://` URL, checked at acceptance.
    Url(String),
}

impl ChatTo {
    /// As the provider's API writes it: the number's digits, the id, or the URL.
    pub fn as_str(&self) -> &str {
        match self {
            ChatTo::Phone(n) => n.as_str(),
            ChatTo::Id(id) | ChatTo::Url(id) => id,
        }
    }
}

/// An accepted chat message, durable, on its way to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatJob {
    /// Its message.
    pub id: MessageId,
    /// The tenant.
    pub tenant: String,
    /// The recipient.
    pub to: ChatTo,
    /// The text (empty for a template).
    pub body: String,
    /// The sender the tenant named (posted by the webhook channel; empty when none, and for
    /// the provider channels, whose account is the sender).
    pub from: String,
    /// The tenant's labels (posted by the webhook channel).
    pub tags: Vec<String>,
    /// The tenant's free-form data, as JSON text (posted by the webhook channel).
    pub metadata: Option<String>,
    /// When the message was accepted.
    pub created_at: UnixMs,
    /// Channel and template.
    pub spec: ChatSpec,
    /// Routing weights.
    pub priority: Priority,
    /// Give up if not delivered by then (RCS: the agent message's expiry).
    pub expires_at: Option<UnixMs>,
    /// The provider chosen at acceptance.
    pub carrier: String,
    /// Whether a later step of its flow may withdraw it, from any node (a cascade's or smart
    /// flow's step).
    pub withdrawable: bool,
}
