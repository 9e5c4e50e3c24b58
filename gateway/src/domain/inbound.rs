//! Mobile-originated (inbound) messages and the keywords they can be.

use serde::{Deserialize, Serialize};
use switchyard_routing::Channel;

use super::{number_key, MessageId, UnixMs, ALL_SENDERS};

/// A mobile-originated (inbound) message, reassembled if it came in parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Its id (same id space as outbound messages).
    pub id: MessageId,
    /// The carrier whose bind received it (SMS), or the provider account it was sent to (a
    /// chat channel).
    pub carrier: String,
    /// The channel it came on: `sms`, or `rcs`, `whatsapp`, `telegram`, `messenger`.
    #[serde(with = "channel_name", default = "sms")]
    pub channel: Channel,
    /// The tenant owning the destination number, when known.
    pub tenant: Option<String>,
    /// The mobile's number (SMS, RCS, WhatsApp: the sender's phone number; Telegram: the
    /// chat id; Messenger: the page-scoped id).
    pub from: String,
    /// The number it was sent to (a tenant's long number or short code); on a chat channel,
    /// the account's own id on the platform (the WhatsApp business number, the page id, the
    /// RBM agent id, the bot), or the account's name when the platform does not say.
    pub to: String,
    /// The text (decoded), or for a binary message (`binary` set) its octets as two
    /// lowercase hex digits each, without the user data header.
    pub body: String,
    /// Set for a binary SMS (an 8-bit data_coding): its data_coding and user data header, so
    /// it can be passed on as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<super::BinaryCoding>,
    /// When it arrived.
    pub received_at: UnixMs,
    /// Set when only some parts of a multipart message arrived before it was given up (its
    /// reassembly timed out, or it was evicted to keep memory bounded): `body` is what those
    /// parts say, joined in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialParts>,
    /// The platform's id for it on a chat channel (WhatsApp `messages[].id`, Messenger `mid`,
    /// RBM `messageId`, Telegram `update_id:date`), unique within the account: a webhook the
    /// provider sends again carries the same id, and the store keeps only the first. None on
    /// SMS: an SMPP MO carries no id of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

fn sms() -> Channel {
    Channel::Sms
}

/// A channel as its name.
mod channel_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use switchyard_routing::Channel;

    pub(super) fn serialize<S: Serializer>(c: &Channel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Channel, D::Error> {
        let name = String::deserialize(d)?;
        name.parse()
            .map_err(|()| serde::de::Error::custom(format!("unknown channel {name:?}")))
    }
}

/// The opt-out list's sender for a whole chat channel (`whatsapp:*`): a STOP sent on a chat
/// channel blocks that channel to that address, for every account of the channel, and
/// nothing else. SMS keeps its senders (the tenant's numbers, or `*` for all).
pub fn channel_sender(channel: Channel) -> String {
    format!("{}:*", channel.as_str())
}

/// What a keyword does to the opt-out list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptOutChange {
    /// Add the entry (recipient, sender).
    Add {
        /// The person's address, as the list keys it.
        recipient: String,
        /// The sender (a number, `*`, or a channel's `<channel>:*`).
        sender: String,
    },
    /// Remove the entries of `recipient` for these senders.
    Remove {
        /// The person's address, as the list keys it.
        recipient: String,
        /// The senders whose entries go.
        senders: Vec<String>,
    },
}

impl InboundMessage {
    /// The opt-out change the message's keyword asks for, if it is one (a partial or binary
    /// message is never a keyword). On SMS: STOP blocks the number it was sent to, STOPALL every sender
    /// of the tenant, START lifts both. On a chat channel: STOP and STOPALL block that
    /// channel to the sender's address, START lifts that block (only).
    pub fn opt_out_change(&self) -> Option<OptOutChange> {
        if self.partial.is_some() || self.binary.is_some() {
            return None;
        }
        let recipient = number_key(&self.from);
        let keyword = Keyword::parse(&self.body)?;
        let chat = (self.channel != Channel::Sms).then(|| channel_sender(self.channel));
        Some(match (keyword, chat) {
            (Keyword::Help, _) => return None,
            (Keyword::Stop | Keyword::StopAll, Some(sender)) => {
                OptOutChange::Add { recipient, sender }
            }
            (Keyword::Stop, None) => OptOutChange::Add {
                recipient,
                sender: number_key(&self.to),
            },
            (Keyword::StopAll, None) => OptOutChange::Add {
                recipient,
                sender: ALL_SENDERS.to_owned(),
            },
            (Keyword::Start, Some(sender)) => OptOutChange::Remove {
                recipient,
                senders: vec![sender],
            },
            (Keyword::Start, None) => OptOutChange::Remove {
                recipient,
                senders: vec![number_key(&self.to), ALL_SENDERS.to_owned()],
            },
        })
    }
}

/// Which parts of a multipart inbound message arrived, when not all did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialParts {
    /// The part numbers received (1-based, ascending).
    pub received: Vec<u8>,
    /// How many parts the message had.
    pub total: u8,
}

/// A keyword an MO message can be, after trimming, in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, UNSUBSCRIBE, END, QUIT, CANCEL, REVOKE, OPTOUT: stop this sender.
    Stop,
    /// STOPALL: stop every sender of the tenant.
    StopAll,
    /// START, UNSTOP: opt in again.
    Start,
    /// HELP: answer with the help text.
    Help,
}

impl Keyword {
    /// The keyword `body` is, if it is one (the whole text, trimmed, case-insensitive).
    pub fn parse(body: &str) -> Option<Keyword> {
        let word = body.trim();
        if word.len() > 11 {
            return None;
        }
        let upper = word.to_ascii_uppercase();
        Some(match upper.as_str() {
            "STOP" | "UNSUBSCRIBE" | "END" | "QUIT" | "CANCEL" | "REVOKE" | "OPTOUT" => {
                Keyword::Stop
            }
            "STOPALL" => Keyword::StopAll,
            "START" | "UNSTOP" => Keyword::Start,
            "HELP" => Keyword::Help,
            _ => return None,
        })
    }

    /// Its name in events (`stop`, `stopall`, `start`, `help`).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "stop",
            Keyword::StopAll => "stopall",
            Keyword::Start => "start",
            Keyword::Help => "help",
        }
    }
}
