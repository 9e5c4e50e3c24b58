//! Delivery receipts: the de-facto text format (SMPP 3.4 Appendix B) and the SMPP TLV form.
//!
//! # Data flow
//! ```text
//! deliver_sm (esm_class, short_message, tlvs) ─► receipt_from_deliver
//!     ├─ TLVs: receipted_message_id, message_state, network_error_code   (tlv.rs)
//!     └─ text: "id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…" (text.rs)
//!     ─► Receipt  ─► readings/probes of receipt.message_id to match the submit_sm_resp id (id.rs)
//! ```
//! # Layout
//! - this file: the [`Receipt`] model, [`ReceiptState`], [`ReceiptDate`], [`ErrorCode`],
//!   [`DlrError`] and [`receipt_from_deliver`] (TLVs first, text to fill the gaps).
//! - [`text`]: parsing and formatting the text form.
//! - [`tlv`]: reading and building the TLV form.
//! - [`id`]: message id readings (hex vs decimal, case, leading zeros), which are certain, and
//!   learning a carrier's formats.

use std::fmt;

use crate::smpp::Tlvs;

pub mod id;
pub mod text;
pub mod tlv;

pub use id::{
    normalize_message_id, probes, readings, FormatLearner, IdFormat, IdKey, Probe, Readings,
};
pub use text::{format_text_receipt, parse_text_receipt};
pub use tlv::{receipt_from_tlvs, receipt_tlvs};

/// A delivery receipt, from either form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The carrier's message id, as received (trimmed). Match it with [`normalize_message_id`].
    pub message_id: String,
    /// The state the receipt reports.
    pub state: ReceiptState,
    /// The stat value as received, kept only when it was not recognized
    /// (`state` is then [`ReceiptState::Unrecognized`]).
    pub unrecognized_stat: Option<String>,
    /// The carrier's error code (`err:` or network_error_code), when given.
    pub error_code: Option<ErrorCode>,
    /// When the message was submitted, per the carrier.
    pub submit_date: Option<ReceiptDate>,
    /// When it reached its final state, per the carrier.
    pub done_date: Option<ReceiptDate>,
    /// `sub:`: messages submitted (usually 1; some carriers count segments).
    pub submitted: Option<u32>,
    /// `dlvrd:`: messages delivered.
    pub delivered: Option<u32>,
    /// `text:`: the first characters of the message, raw bytes (any encoding).
    pub text: Option<Vec<u8>>,
    /// Fields this parser does not know (`key:value`, key as received), in order, for logs and
    /// carrier-specific handling.
    pub extra: Vec<(String, String)>,
}

impl Receipt {
    /// A receipt with only an id and a state.
    pub fn new(message_id: impl Into<String>, state: ReceiptState) -> Self {
        Receipt {
            message_id: message_id.into(),
            state,
            unrecognized_stat: None,
            error_code: None,
            submit_date: None,
            done_date: None,
            submitted: None,
            delivered: None,
            text: None,
            extra: Vec::new(),
        }
    }

    /// Every reading of the id, to match against the submit_sm_resp id.
    pub fn normalized_id(&self) -> Readings {
        normalize_message_id(self.message_id.as_bytes())
    }
}

/// The state a receipt reports (SMPP message_state, §5.2.28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiptState {
    /// SCHEDULED (0): not yet sent.
    Scheduled,
    /// ENROUTE (1): in transit (an intermediate notification).
    Enroute,
    /// DELIVRD (2): delivered to the handset.
    Delivered,
    /// EXPIRED (3): validity period ran out.
    Expired,
    /// DELETED (4): deleted (cancel_sm or operator).
    Deleted,
    /// UNDELIV (5): undeliverable.
    Undeliverable,
    /// ACCEPTD (6): accepted on the handset's behalf (e.g. by customer care); not final for some carriers.
    Accepted,
    /// UNKNOWN (7): the carrier does not know.
    Unknown,
    /// REJECTD (8): rejected by the network.
    Rejected,
    /// SKIPPED (9): skipped (SMPP 5.0).
    Skipped,
    /// A stat value we do not recognize (see [`Receipt::unrecognized_stat`]).
    Unrecognized,
}

impl ReceiptState {
    /// From an SMPP message_state value.
    pub fn from_message_state(v: u8) -> Self {
        use crate::smpp::tlv::message_state as ms;
        match v {
            ms::SCHEDULED => ReceiptState::Scheduled,
            ms::ENROUTE => ReceiptState::Enroute,
            ms::DELIVERED => ReceiptState::Delivered,
            ms::EXPIRED => ReceiptState::Expired,
            ms::DELETED => ReceiptState::Deleted,
            ms::UNDELIVERABLE => ReceiptState::Undeliverable,
            ms::ACCEPTED => ReceiptState::Accepted,
            ms::UNKNOWN => ReceiptState::Unknown,
            ms::REJECTED => ReceiptState::Rejected,
            ms::SKIPPED => ReceiptState::Skipped,
            _ => ReceiptState::Unrecognized,
        }
    }

    /// The SMPP message_state value ([`ReceiptState::Unrecognized`] maps to UNKNOWN, 7).
    pub fn message_state(self) -> u8 {
        use crate::smpp::tlv::message_state as ms;
        match self {
            ReceiptState::Scheduled => ms::SCHEDULED,
            ReceiptState::Enroute => ms::ENROUTE,
            ReceiptState::Delivered => ms::DELIVERED,
            ReceiptState::Expired => ms::EXPIRED,
            ReceiptState::Deleted => ms::DELETED,
            ReceiptState::Undeliverable => ms::UNDELIVERABLE,
            ReceiptState::Accepted => ms::ACCEPTED,
            ReceiptState::Unknown | ReceiptState::Unrecognized => ms::UNKNOWN,
            ReceiptState::Rejected => ms::REJECTED,
            ReceiptState::Skipped => ms::SKIPPED,
        }
    }

    /// The 7-letter stat value of the text form (`DELIVRD`, `UNDELIV`…).
    pub fn stat(self) -> &'static str {
        match self {
            ReceiptState::Scheduled => "SCHEDULED",
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown | ReceiptState::Unrecognized => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Skipped => "SKIPPED",
        }
    }

    /// True for states after which nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ReceiptState::Scheduled | ReceiptState::Enroute | ReceiptState::Unrecognized
        )
    }

    /// Reads a stat value leniently: any case, `_`/`-`/space ignored, the SMPP abbreviations and
    /// the full words (`DELIVERED`, `UNDELIVERABLE`…), a message_state digit, and `FAILED`
    /// (aggregators' word for undeliverable). Anything else is [`ReceiptState::Unrecognized`].
    pub fn parse_stat(raw: &[u8]) -> Self {
        let mut buf = [0u8; 16];
        let mut n = 0;
        for &b in raw.iter().filter(|b| b.is_ascii_alphanumeric()) {
            match buf.get_mut(n) {
                Some(slot) => *slot = b.to_ascii_uppercase(),
                None => return ReceiptState::Unrecognized,
            }
            n += 1;
        }
        match buf.get(..n).unwrap_or_default() {
            b"DELIVRD" | b"DELIVERED" | b"DELIVRED" | b"DELIVR" => ReceiptState::Delivered,
            b"EXPIRED" | b"EXPIRD" => ReceiptState::Expired,
            b"DELETED" | b"DELETD" => ReceiptState::Deleted,
            b"UNDELIV" | b"UNDELIVERABLE" | b"UNDELIVERED" | b"UNDELIVRD" | b"FAILED" => {
                ReceiptState::Undeliverable
            }
            b"ACCEPTD" | b"ACCEPTED" => ReceiptState::Accepted,
            b"UNKNOWN" | b"UNKNWN" => ReceiptState::Unknown,
            b"REJECTD" | b"REJECTED" | b"REJECT" => ReceiptState::Rejected,
            b"ENROUTE" => ReceiptState::Enroute,
            b"SCHEDULED" | b"SCHEDLD" => ReceiptState::Scheduled,
            b"SKIPPED" => ReceiptState::Skipped,
            [d @ b'0'..=b'9'] => ReceiptState::from_message_state(d - b'0'),
            _ => ReceiptState::Unrecognized,
        }
    }
}

/// A carrier error code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// As received (`000`, `0x1B`, `ABC`), or the TLV code as 3+ digits.
    pub raw: String,
    /// The numeric value, when `raw` is decimal or `0x` hex.
    pub code: Option<u32>,
    /// The network type from network_error_code (1 ANSI-136, 2 IS-95, 3 GSM…), when from a TLV.
    pub network_type: Option<u8>,
}

impl ErrorCode {
    /// From the text form's `err:` value.
    pub fn from_text(raw: &str) -> Self {
        let code = if let Some(hex) = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()
        } else if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            raw.parse().ok()
        } else {
            None
        };
        ErrorCode {
            raw: raw.to_owned(),
            code,
            network_type: None,
        }
    }

    /// From a network_error_code TLV.
    pub fn from_network(network_type: u8, code: u16) -> Self {
        ErrorCode {
            raw: format!("{code:03}"),
            code: Some(u32::from(code)),
            network_type: Some(network_type),
        }
    }
}

/// A receipt timestamp, as the carrier wrote it (no time zone: carriers use their local time
/// or UTC and do not say which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptDate {
    /// Full year (two-digit years are 20YY).
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59, when the 12-digit form was used.
    pub second: Option<u8>,
}

impl ReceiptDate {
    /// Parses `YYMMDDhhmm`, `YYMMDDhhmmss` or `YYYYMMDDhhmmss`; `None` when it is not a valid date.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if !raw.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| -> Option<u8> {
            match raw.get(i..i + 2)? {
                [a, b] => Some((a - b'0') * 10 + (b - b'0')),
                _ => None,
            }
        };
        let (year, rest) = match raw.len() {
            10 | 12 => (2000 + u16::from(two(0)?), 2),
            14 => (u16::from(two(0)?) * 100 + u16::from(two(2)?), 4),
            _ => return None,
        };
        let d = ReceiptDate {
            year,
            month: two(rest)?,
            day: two(rest + 2)?,
            hour: two(rest + 4)?,
            minute: two(rest + 6)?,
            second: if raw.len() == 10 {
                None
            } else {
                Some(two(rest + 8)?)
            },
        };
        d.is_valid().then_some(d)
    }

    /// True when every field is in range.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second.is_none_or(|s| s < 60)
    }
}

impl fmt::Display for ReceiptDate {
    /// `YYMMDDhhmm[ss]` for years 2000–2099, else `YYYYMMDDhhmmss`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (2000..=2099).contains(&self.year) {
            write!(
                f,
                "{:02}{:02}{:02}{:02}{:02}",
                self.year - 2000,
                self.month,
                self.day,
                self.hour,
                self.minute
            )?;
            if let Some(s) = self.second {
                write!(f, "{s:02}")?;
            }
            Ok(())
        } else {
            write!(
                f,
                "{:04}{:02}{:02}{:02}{:02}{:02}",
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second.unwrap_or(0)
            )
        }
    }
}

/// Why a receipt could not be read. Always the carrier's doing, and resending will not change
/// it: log it (masked) and count it; the message stays in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DlrError {
    /// The body is empty and there are no receipt TLVs.
    #[error("empty receipt")]
    Empty,
    /// A required field is absent (`id` and `stat` for text, or their TLV equivalents).
    #[error("receipt has no {0} field")]
    MissingField(&'static str),
    /// esm_class does not mark a receipt and there is no receipted_message_id TLV: this is an
    /// MO message, not a receipt.
    #[error("not a delivery receipt (esm_class and TLVs say MO)")]
    NotAReceipt,
}

/// Reads the receipt in a deliver_sm (or data_sm): TLVs when present, the text form otherwise,
/// and both merged when both are present (id, state and error from the TLVs; dates, counts,
/// text and any missing piece from the text).
///
/// `short_message` may be empty, in which case the message_payload TLV is read as the text.
/// A deliver_sm whose esm_class has no receipt bits (0x04, 0x08, 0x10, 0x20) and which has no
/// receipted_message_id TLV is [`DlrError::NotAReceipt`]; for carriers that send receipts with
/// esm_class 0, call [`parse_text_receipt`] directly.
pub fn receipt_from_deliver(
    esm_class: u8,
    short_message: &[u8],
    tlvs: &Tlvs,
) -> Result<Receipt, DlrError> {
    let tlv_id = tlvs.receipted_message_id();
    if esm_class & 0x3C == 0 && tlv_id.is_none() {
        return Err(DlrError::NotAReceipt);
    }
    let body: &[u8] = if short_message.is_empty() {
        tlvs.message_payload().map_or(&[][..], |b| b.as_ref())
    } else {
        short_message
    };
    let mut fields = text::parse_fields(body);
    if let Some(id) = tlv_id {
        let id = id::trim(id);
        if !id.is_empty() {
            fields.id = Some(String::from_utf8_lossy(id).into_owned());
        }
    }
    if let Some(state) = tlvs.message_state() {
        fields.state = Some(ReceiptState::from_message_state(state));
        fields.unrecognized_stat = None;
    }
    if let Some((kind, code)) = tlvs.network_error_code() {
        fields.error_code = Some(ErrorCode::from_network(kind, code));
    }
    if body.is_empty() && tlv_id.is_none() {
        return Err(DlrError::Empty);
    }
    fields.into_receipt()
}
