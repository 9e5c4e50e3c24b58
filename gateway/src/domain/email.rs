//! Email: what an email carries beyond the text body (stored with its message), and an email
//! on its way to an SMTP relay.

use serde::{Deserialize, Serialize};
use switchyard_routing::Priority;

use super::{MessageId, UnixMs};

/// What an email carries beyond `body` (its plain-text part), as stored with the message
/// (`messages.email`, JSON). The message's `to` and `from` are email addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSpec {
    /// Subject line.
    pub subject: String,
    /// An HTML alternative to the plain-text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Where replies go, when not to the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// An accepted email, durable, on its way to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailJob {
    /// Its message.
    pub id: MessageId,
    /// The tenant.
    pub tenant: String,
    /// Recipient address.
    pub to: String,
    /// Sender address (the relay's default when the tenant gave none).
    pub from: Option<String>,
    /// Plain-text body.
    pub body: String,
    /// Subject, HTML part, reply-to.
    pub spec: EmailSpec,
    /// Routing weights.
    pub priority: Priority,
    /// Give up if not handed over by then.
    pub expires_at: Option<UnixMs>,
    /// The relay chosen at acceptance.
    pub carrier: String,
}
