//! Mobile-originated (inbound) messages and the keywords they can be.

use serde::{Deserialize, Serialize};

use super::{MessageId, UnixMs};

/// A mobile-originated (inbound) message, reassembled if it came in parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Its id (same id space as outbound messages).
    pub id: MessageId,
    /// The carrier whose bind received it.
    pub carrier: String,
    /// The tenant owning the destination number, when known.
    pub tenant: Option<String>,
    /// The mobile's number.
    pub from: String,
    /// The number it was sent to (a tenant's long number or short code).
    pub to: String,
    /// The text (decoded), or hex for binary payloads.
    pub body: String,
    /// When it arrived.
    pub received_at: UnixMs,
    /// Set when only some parts of a multipart message arrived before it was given up (its
    /// reassembly timed out, or it was evicted to keep memory bounded): `body` is what those
    /// parts say, joined in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialParts>,
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
