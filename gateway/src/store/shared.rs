//! What the store backends share that touches no database: how receipt-id readings, learned
//! id formats, call attempts and prices are kept as text (the same in every backend), and
//! which segment a receipt belongs to among the candidates a backend's query found. Each
//! backend's `receipts` module runs the queries around these.

use switchyard_protocols::dlr::{FormatLearner, IdFormat, IdKey};
use switchyard_routing::{Currency, Price};

use crate::domain::{IdFormats, MessageId, Money, PastMessage, Status, UnixMs};

/// The SQL both backends use for a recipient's history (`$TENANT`, `$TO`, `$SINCE` and
/// `$LIMIT` are each backend's parameters): the tenant's newest messages to the addresses,
/// with what [`past_message`] needs, and when each was first delivered or read (from its
/// history, one index lookup per row).
pub(super) const RECIPIENT_HISTORY: &str = "SELECT m.status, m.created_at, m.price, \
     m.voice IS NOT NULL, m.email IS NOT NULL, m.chat IS NOT NULL, m.encoding, \
     (SELECT min(h.at) FROM history h WHERE h.message_id = m.id \
        AND h.status IN ('delivered', 'read')) \
     FROM messages m WHERE m.tenant = $TENANT AND m.to_addr $TO AND m.created_at >= $SINCE \
     ORDER BY m.id DESC LIMIT $LIMIT";

/// One row of [`RECIPIENT_HISTORY`] as a smart flow weighs it: the channel is voice or email
/// when their spec is stored, a chat channel's name (its `encoding`) when a chat spec is, SMS
/// otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn past_message(
    status: &str,
    created_at: UnixMs,
    price: Option<String>,
    voice: bool,
    email: bool,
    chat: bool,
    encoding: String,
    reached_at: Option<UnixMs>,
) -> PastMessage {
    let channel = match (voice, email, chat) {
        (true, _, _) => "voice".to_owned(),
        (false, true, _) => "email".to_owned(),
        (false, false, true) => encoding,
        (false, false, false) => "sms".to_owned(),
    };
    PastMessage {
        channel,
        status: status.parse().unwrap_or(Status::Failed),
        created_at,
        reached_at,
        price: price.and_then(|p| Price::parse(&p).ok()).map(Price::as_f64),
    }
}

/// A receipt kept as unmatched may still match a segment whose `SegmentSent` arrives later (a
/// receipt on a receiver bind can overtake the submit_sm_resp on a transmitter bind), but only
/// within this window: carriers recycle ids, and an old stray receipt must not hit a new message.
pub(super) const LATE_MATCH_WINDOW_MS: UnixMs = 10 * 60 * 1000;

/// How long a receipt with only uncertain matches waits before a backend's sweep decides. A
/// receipt overtakes its submit_sm_resp by milliseconds; two seconds rule that out.
pub(super) const PENDING_GRACE_MS: UnixMs = 2_000;

/// Most pending receipts one sweep or rescan examines (the rest wait for the next one).
pub(super) const SCAN_LIMIT: usize = 512;

/// One carrier's id formats.
#[derive(Clone, Debug, Default)]
pub(super) struct CarrierIds {
    /// As configured, from the latest update of this carrier.
    pub(super) configured: IdFormats,
    /// Learned from submit_sm_resp ids.
    pub(super) response: FormatLearner,
    /// Learned from receipt ids.
    pub(super) receipt: FormatLearner,
}

impl CarrierIds {
    /// Its state with what was learned before (`carrier_id_formats`' columns).
    pub(super) fn new(
        configured: IdFormats,
        response: Option<&str>,
        receipt: Option<&str>,
    ) -> Self {
        CarrierIds {
            configured,
            response: FormatLearner::new(response.and_then(parse_format)),
            receipt: FormatLearner::new(receipt.and_then(parse_format)),
        }
    }

    pub(super) fn response_format(&self) -> Option<IdFormat> {
        self.configured.response.or(self.response.format())
    }

    pub(super) fn receipt_format(&self) -> Option<IdFormat> {
        self.configured.receipt.or(self.receipt.format())
    }

    /// What was learned, as stored in `carrier_id_formats` (response, receipt).
    pub(super) fn learned(&self) -> (Option<&'static str>, Option<&'static str>) {
        (
            self.response.format().map(format_name),
            self.receipt.format().map(format_name),
        )
    }
}

/// A segment a receipt may belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) message_id: MessageId,
    pub(super) index: u16,
    pub(super) certain: bool,
    pub(super) same_base: bool,
}

/// A receipt matched to a segment, to apply.
#[derive(Debug)]
pub(super) struct Matched {
    /// The segment's message.
    pub(super) id: MessageId,
    /// The segment.
    pub(super) index: u16,
    /// What the receipt says.
    pub(super) status: Option<Status>,
    /// The carrier's error, if any.
    pub(super) error: Option<String>,
    /// When the receipt arrived.
    pub(super) at: UnixMs,
}

/// What became of a receipt.
#[derive(Debug)]
pub(super) enum ReceiptOutcome {
    /// Matched (and the receipts this one let the store resolve, if any).
    Matched(Vec<Matched>),
    /// Kept as unmatched or pending (and receipts resolved meanwhile, if any).
    Kept(Vec<Matched>),
}

/// A row of `unmatched_receipts`.
pub(super) struct Kept {
    pub(super) rowid: i64,
    pub(super) carrier_message_id: String,
    pub(super) status: Option<String>,
    pub(super) error: Option<String>,
    pub(super) received_at: UnixMs,
}

/// The segment a receipt belongs to: the newest certain candidate. With `fallback`, when none
/// is certain: the newest same-base candidate, or else the only cross-base segment.
pub(super) fn decide(found: &[Candidate], fallback: bool) -> Option<Candidate> {
    let newest = |f: &dyn Fn(&Candidate) -> bool| {
        found
            .iter()
            .filter(|c| f(c))
            .max_by_key(|c| c.message_id.0)
            .copied()
    };
    if let Some(c) = newest(&|c| c.certain) {
        return Some(c);
    }
    if !fallback {
        return None;
    }
    if let Some(c) = newest(&|c| c.same_base) {
        return Some(c);
    }
    let first = found.first()?;
    found
        .iter()
        .all(|c| (c.message_id, c.index) == (first.message_id, first.index))
        .then_some(*first)
}

pub(super) fn format_name(f: IdFormat) -> &'static str {
    match f {
        IdFormat::Decimal => "decimal",
        IdFormat::Hex => "hex",
        _ => "text",
    }
}

pub(super) fn parse_format(s: &str) -> Option<IdFormat> {
    match s {
        "decimal" => Some(IdFormat::Decimal),
        "hex" => Some(IdFormat::Hex),
        "text" => Some(IdFormat::Text),
        _ => None,
    }
}

/// How an id reading is stored in `carrier_ids` and `unmatched_receipts`: its base and value,
/// so a decimal and a hex reading of the same digits never share a key.
pub(super) fn key_text(key: &IdKey) -> String {
    match key {
        IdKey::Decimal(n) => format!("d:{n}"),
        IdKey::Hex(n) => format!("h:{n}"),
        IdKey::Text(t) => format!("t:{t}"),
    }
}

/// Dispositions as stored (the record holds `&'static str`).
pub(super) const DISPOSITIONS: [&str; 6] = [
    "answered",
    "busy",
    "no_answer",
    "cancelled",
    "rejected",
    "failed",
];

/// Hang-up sides as stored.
pub(super) const HANGUPS: [&str; 3] = ["caller", "callee", "timeout"];

/// Attempts as text: `carrier:code,carrier:code` (carrier names have no ':' or ',').
pub(super) fn attempts_text(a: &[(String, u16)]) -> String {
    a.iter()
        .map(|(c, code)| format!("{c}:{code}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn attempts_parse(s: &str) -> Vec<(String, u16)> {
    s.split(',')
        .filter_map(|p| {
            let (c, code) = p.rsplit_once(':')?;
            Some((c.to_owned(), code.parse().ok()?))
        })
        .collect()
}

/// A stored price and currency, when both are there and readable.
pub(super) fn money(amount: Option<String>, currency: Option<String>) -> Option<Money> {
    Some(Money {
        amount: Price::parse(&amount?).ok()?,
        currency: Currency::parse(&currency?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: i64, certain: bool, same_base: bool) -> Candidate {
        Candidate {
            message_id: MessageId(id),
            index: 0,
            certain,
            same_base,
        }
    }

    #[test]
    fn certain_wins_then_same_base_then_a_lone_crossing() {
        let found = [cand(1, false, false), cand(2, true, true)];
        assert_eq!(decide(&found, false).map(|c| c.message_id.0), Some(2));
        // Uncertain only: nothing until the fallback, which takes the same digits.
        let found = [cand(3, false, false), cand(2, false, true)];
        assert_eq!(decide(&found, false), None);
        assert_eq!(decide(&found, true).map(|c| c.message_id.0), Some(2));
        // Two different crossings: no guess.
        let found = [cand(3, false, false), cand(4, false, false)];
        assert_eq!(decide(&found, true), None);
        let found = [cand(3, false, false)];
        assert_eq!(decide(&found, true).map(|c| c.message_id.0), Some(3));
    }

    #[test]
    fn attempts_round_trip() {
        let a = vec![("alpha".to_owned(), 503), ("beta-2".to_owned(), 200)];
        assert_eq!(attempts_parse(&attempts_text(&a)), a);
        assert!(attempts_parse("").is_empty());
    }
}
