//! Call detail records of the SIP proxy and of notification calls, and their listing filter.

use super::UnixMs;

/// One call's detail record (CDR), written once when the call ends: its setup failed, it was
/// cancelled, or the answered call was hung up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Store-assigned, increasing (`call_<16 hex>` outside); 0 before it is stored.
    pub id: i64,
    /// Whose call.
    pub tenant: String,
    /// The caller's SIP Call-ID (to find the call in a PBX's or SIPp's logs).
    pub sip_call_id: String,
    /// The caller (From URI's user part, or the whole URI).
    pub caller: String,
    /// The callee, E.164 with `+`.
    pub callee: String,
    /// Every trunk tried, in order, with the code it gave (408 for no answer in time, 503
    /// for a transport error).
    pub attempts: Vec<(String, u16)>,
    /// The carrier that answered.
    pub carrier: Option<String>,
    /// `answered`, `busy`, `no_answer`, `cancelled`, `rejected` or `failed`.
    pub disposition: &'static str,
    /// The final SIP code the caller got.
    pub code: u16,
    /// Who ended an answered call: `caller`, `callee` or `timeout` (max_call_duration).
    pub hangup: Option<&'static str>,
    /// When the INVITE arrived.
    pub setup_at: UnixMs,
    /// When the 2xx arrived.
    pub answer_at: Option<UnixMs>,
    /// When the call ended.
    pub end_at: UnixMs,
    /// Answer to hang-up, milliseconds (0 when not answered).
    pub duration_ms: u64,
    /// Seconds billed by the deck's increments.
    pub billed_secs: u64,
    /// What the carrier charges us, decimal text in the base currency.
    pub cost: Option<String>,
    /// What the tenant pays, decimal text in the base currency.
    pub price: Option<String>,
    /// The base currency of `cost` and `price`.
    pub currency: Option<String>,
}

/// Which CDRs a listing wants, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only ids below this (the cursor).
    pub before: Option<i64>,
    /// Only calls set up at or after this.
    pub since: Option<UnixMs>,
    /// Only calls set up before this.
    pub until: Option<UnixMs>,
    /// Only this disposition.
    pub disposition: Option<String>,
    /// At most this many.
    pub limit: usize,
}
