//! Analytics rollups: what the store keeps per minute (and hour, and day) so that counts, rates,
//! latency percentiles and money over any period are read from a few rows instead of a scan of
//! the messages.
//!
//! # What is rolled up
//! - **Messages**, by the minute they were **accepted** (a cohort: the row of 10:42 says how many
//!   of the messages accepted at 10:42 have been sent, delivered, … so far) and by tenant,
//!   channel, carrier (the one chosen at acceptance), country, sender and batch. Counted:
//!   every status a message *reaches* (accepted, sent, delivered, read, undeliverable, expired,
//!   rejected, failed, cancelled; a message read without a delivery receipt counts as delivered
//!   too), the tenant's price (the estimate at acceptance), and three latency histograms in
//!   milliseconds: accepted → sent, sent → delivered and accepted → delivered.
//! - **Calls** (the SIP proxy's detail records), by the minute they were set up and by tenant
//!   and carrier (the one that answered, else the last one tried): calls, each disposition,
//!   talk time, billed seconds, cost and price, and the setup → answer histogram of answered
//!   calls.
//! - Not rolled up: tags (a message carries any number, so a row per tag would multiply the
//!   writes; filter the message export by tag instead), the intermediate states `queued` and
//!   `submitting`, and a message's carrier after a failover (it stays in its acceptance
//!   carrier's row).
//!
//! A status is counted when the store moves the message to it, which happens once: receipts
//! that repeat, arrive late or would move a message backwards change nothing and count nothing.
//!
//! # Resolutions
//! The store writes each change to three rows, one per [`Resolution`] (minute, hour, day), so a
//! query over a month with day buckets reads about thirty rows per group, never the minutes.
//! The writer first sums a whole commit's changes per row ([`Rollups`]), so a commit of
//! thousands of updates writes one row per (resolution, bucket, key) it touched.
//!
//! Histograms are HdrHistograms (two significant digits, 1 ms to a week) kept in the V2
//! serialization and merged when read.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

use super::{CallRecord, NewMessage, Status, UnixMs};

/// A minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// The longest latency a histogram tells apart (a week, in milliseconds); longer ones count
/// as a week.
const LATENCY_MAX_MS: u64 = 7 * 24 * 3_600_000;

/// Bucket sizes the store keeps rows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days (UTC).
    Day,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    /// Its length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Resolution::Minute => MINUTE_MS,
            Resolution::Hour => 60 * MINUTE_MS,
            Resolution::Day => 24 * 60 * MINUTE_MS,
        }
    }

    /// The start of the bucket holding `at`.
    pub fn floor(self, at: UnixMs) -> UnixMs {
        at.div_euclid(self.millis()) * self.millis()
    }

    /// Its name in the API (`minute`, `hour`, `day`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// The resolution named `name`.
    pub fn parse(name: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// How the store keeps it (a small integer column).
    pub fn code(self) -> i64 {
        match self {
            Resolution::Minute => 0,
            Resolution::Hour => 1,
            Resolution::Day => 2,
        }
    }
}

/// The statuses message rollups count, in their stored column order.
pub const COUNTED: [Status; 9] = [
    Status::Accepted,
    Status::Sent,
    Status::Delivered,
    Status::Read,
    Status::Undeliverable,
    Status::Expired,
    Status::Rejected,
    Status::Failed,
    Status::Cancelled,
];

fn counted_index(status: Status) -> Option<usize> {
    COUNTED.iter().position(|s| *s == status)
}

/// The dimensions of a message rollup row. A missing value (no country, no batch) is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKey {
    /// Whose messages.
    pub tenant: String,
    /// `sms`, `voice`, `email`, `rcs`, `whatsapp`, …
    pub channel: String,
    /// The carrier chosen at acceptance.
    pub carrier: String,
    /// The destination's country (ISO 3166).
    pub country: String,
    /// The sender (`from`).
    pub sender: String,
    /// The batch the message was sent in.
    pub batch: String,
}

impl MessageKey {
    /// The key of an accepted message.
    pub fn of(m: &NewMessage) -> MessageKey {
        MessageKey {
            tenant: m.tenant.clone(),
            channel: channel_of_stored_encoding(super::stored_encoding_name(m)).to_owned(),
            carrier: m.carrier.clone().unwrap_or_default(),
            country: m.country.clone().unwrap_or_default(),
            sender: m.from.clone(),
            batch: m.batch_id.clone().unwrap_or_default(),
        }
    }

    /// The key of a batch's message to `country` on `carrier` ([`MessageKey::of`] for the
    /// message [`super::NewBatch::message`] gives).
    pub fn of_batch_row(
        common: &NewMessage,
        encoding: super::Encoding,
        carrier: Option<&str>,
        country: Option<&str>,
    ) -> MessageKey {
        MessageKey {
            tenant: common.tenant.clone(),
            channel: channel_of_stored_encoding(super::encoding_name(Some(encoding))).to_owned(),
            carrier: carrier.unwrap_or_default().to_owned(),
            country: country.unwrap_or_default().to_owned(),
            sender: common.from.clone(),
            batch: common.batch_id.clone().unwrap_or_default(),
        }
    }

    /// The value of one dimension.
    pub fn get(&self, d: MessageDimension) -> &str {
        match d {
            MessageDimension::Tenant => &self.tenant,
            MessageDimension::Channel => &self.channel,
            MessageDimension::Carrier => &self.carrier,
            MessageDimension::Country => &self.country,
            MessageDimension::Sender => &self.sender,
            MessageDimension::Batch => &self.batch,
        }
    }
}

/// The channel of a message whose stored encoding is `encoding` (`voice`, `email` and the chat
/// channels are stored by name; every SMS encoding is `sms`).
pub fn channel_of_stored_encoding(encoding: &str) -> &str {
    match encoding {
        "voice" | "email" | "rcs" | "whatsapp" | "telegram" | "messenger" | "webhook" => encoding,
        _ => "sms",
    }
}

/// A dimension of message rollups, to filter or group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageDimension {
    /// The tenant (the operator's view only).
    Tenant,
    /// The channel.
    Channel,
    /// The carrier chosen at acceptance.
    Carrier,
    /// The destination's country.
    Country,
    /// The sender.
    Sender,
    /// The batch.
    Batch,
}

impl MessageDimension {
    /// Every dimension, in key order.
    pub const ALL: [MessageDimension; 6] = [
        MessageDimension::Tenant,
        MessageDimension::Channel,
        MessageDimension::Carrier,
        MessageDimension::Country,
        MessageDimension::Sender,
        MessageDimension::Batch,
    ];

    /// Its name in the API and its column in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageDimension::Tenant => "tenant",
            MessageDimension::Channel => "channel",
            MessageDimension::Carrier => "carrier",
            MessageDimension::Country => "country",
            MessageDimension::Sender => "sender",
            MessageDimension::Batch => "batch",
        }
    }

    /// The dimension named `name`.
    pub fn parse(name: &str) -> Option<MessageDimension> {
        MessageDimension::ALL
            .into_iter()
            .find(|d| d.as_str() == name)
    }
}

/// A latency histogram in milliseconds.
pub type Latency = Histogram<u64>;

/// A fresh latency histogram. Its bounds are constants `new_with_bounds` accepts (low ≥ 1,
/// high ≥ 2 × low, 2 significant digits), so it is never `None`.
pub fn latency() -> Option<Latency> {
    Histogram::new_with_bounds(1, LATENCY_MAX_MS, 2).ok()
}

/// Adds `from` into `into` (creating it when empty).
pub fn merge_latency(into: &mut Option<Latency>, from: &Latency) {
    match into {
        Some(h) => {
            // Both have the same bounds, so adding cannot fail.
            let _ = h.add(from);
        }
        None => *into = Some(from.clone()),
    }
}

/// The V2 serialization of a histogram (what the store keeps).
pub fn serialize_latency(h: &Latency) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = V2Serializer::new().serialize(h, &mut out);
    out
}

/// A histogram from its V2 serialization; `None` when the bytes are not one (a corrupt row
/// costs its percentiles, not the query).
pub fn deserialize_latency(bytes: &[u8]) -> Option<Latency> {
    Deserializer::new().deserialize(&mut &bytes[..]).ok()
}

/// Adds a stored histogram (its V2 serialization) into `into`, creating it when empty.
///
/// A serialization with [`latency`]'s parameters (every one the store writes) has its counts
/// decoded straight into `into`'s: reading a row costs its few recorded values, where building
/// a histogram of its own and adding it would cost the thousands of counters of each. Other
/// bytes are deserialized in full; bytes that are no histogram add nothing (a corrupt row costs
/// its percentiles, not the query).
pub fn add_encoded_latency(into: &mut Option<Latency>, bytes: &[u8]) {
    let mut decoded = Vec::new();
    match decode_stored(bytes, &mut decoded) {
        Stored::Counts => {
            if into.is_none() {
                *into = latency();
            }
            if let Some(h) = into {
                for (index, n) in decoded {
                    h.saturating_record_n(v2_value_at(index), n);
                }
            }
        }
        Stored::Other(h) => merge_latency(into, &h),
        Stored::Unreadable => {}
    }
}

/// What a stored histogram's bytes hold.
enum Stored {
    /// [`latency`]'s parameters: its nonzero counts were decoded, as (index, count) pairs.
    Counts,
    /// A histogram of other parameters, deserialized in full.
    Other(Latency),
    /// No histogram.
    Unreadable,
}

/// Decodes a stored histogram, its nonzero counts into `decoded` (cleared first) when it has
/// [`latency`]'s parameters.
fn decode_stored(bytes: &[u8], decoded: &mut Vec<(usize, u64)>) -> Stored {
    decoded.clear();
    let Some(payload) = v2_counts(bytes) else {
        return deserialize_latency(bytes).map_or(Stored::Unreadable, Stored::Other);
    };
    if v2_each_count(payload, |index, n| decoded.push((index, n))) {
        Stored::Counts
    } else {
        Stored::Unreadable
    }
}

/// A row's stored histogram merged into a change's, serialized for writing back; `None` when
/// the change has none (the stored one stays as it is).
pub fn merge_stored_latency(change: Option<Latency>, stored: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut merged = Some(change?);
    if let Some(stored) = stored {
        add_encoded_latency(&mut merged, stored);
    }
    merged.as_ref().map(serialize_latency)
}

// The V2 serialization (HdrHistogram's interchange format, as `hdrhistogram` writes it): a
// 40-byte header — cookie, payload length, normalizing offset, significant digits (u32 each),
// lowest and highest trackable value (u64), integer-to-double ratio (f64), all big-endian —
// then the counts array as zig-zag LEB128 numbers (at most 9 bytes, the ninth taken whole), a
// negative number standing for that many zero counts. Decoding it here is what lets a query
// add thousands of rows without a histogram per row; the crate only deserializes into a new
// histogram.

/// The uncompressed V2 cookie.
const V2_COOKIE: u32 = 0x1c84_9313;
/// The header's length.
const V2_HEADER: usize = 40;
/// [`latency`]'s significant digits.
const LATENCY_DIGITS: u32 = 2;
/// log2 of half the sub-buckets per bucket at two significant digits: 2 × 10² needs 2⁸
/// sub-buckets, 2⁷ of them in each bucket's upper half.
const V2_HALF_MAGNITUDE: u32 = 7;

/// The counts payload of a V2 serialization with exactly [`latency`]'s parameters; `None` for
/// anything else.
fn v2_counts(bytes: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let long = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let ours = word(0)? == V2_COOKIE
        && word(8)? == 0
        && word(12)? == LATENCY_DIGITS
        && long(16)? == 1
        && long(24)? == LATENCY_MAX_MS
        && long(32)? == 1f64.to_bits();
    let len = usize::try_from(word(4)?).ok()?;
    ours.then(|| bytes.get(V2_HEADER..V2_HEADER.checked_add(len)?))
        .flatten()
}

/// Calls `f(index, count)` for every nonzero count of a V2 counts payload; false (after calling
/// `f` for a prefix) when the payload is malformed or counts past [`LATENCY_MAX_MS`].
fn v2_each_count(mut payload: &[u8], mut f: impl FnMut(usize, u64)) -> bool {
    let last = v2_index_of(LATENCY_MAX_MS);
    let mut index = 0usize;
    while !payload.is_empty() {
        let Some(raw) = v2_varint(&mut payload) else {
            return false;
        };
        // Zig-zag: even numbers are counts, odd ones runs of zeros.
        let n = raw >> 1;
        if raw & 1 == 1 {
            let Some(next) = usize::try_from(n + 1)
                .ok()
                .and_then(|run| index.checked_add(run))
            else {
                return false;
            };
            index = next;
            continue;
        }
        if n > 0 {
            if index > last {
                return false;
            }
            f(index, n);
        }
        index += 1;
    }
    true
}

/// One LEB128 number of a V2 payload, advancing past it; `None` when it is cut short.
fn v2_varint(payload: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..8 {
        let (&b, rest) = payload.split_first()?;
        *payload = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    let (&b, rest) = payload.split_first()?;
    *payload = rest;
    Some(value | u64::from(b) << 56)
}

/// The lowest value counted at `index` of [`latency`]'s counts array.
fn v2_value_at(index: usize) -> u64 {
    let half = 1usize << V2_HALF_MAGNITUDE;
    let bucket = (index >> V2_HALF_MAGNITUDE) as u32;
    let sub = (index & (half - 1)) as u64;
    match bucket.checked_sub(1) {
        // The first bucket uses its whole range.
        None => sub,
        Some(b) => (sub + half as u64) << b,
    }
}

/// The index of `value` in [`latency`]'s counts array.
fn v2_index_of(value: u64) -> usize {
    let half = 1u64 << V2_HALF_MAGNITUDE;
    // The bucket is how far `value` is above the first bucket's range (2 × half).
    let bucket = (64 - (value | (2 * half - 1)).leading_zeros()) - (V2_HALF_MAGNITUDE + 1);
    let sub = value >> bucket;
    (((bucket as u64) << V2_HALF_MAGNITUDE) + sub) as usize
}

/// Sums of one message rollup row (or of a delta to add to one).
#[derive(Clone, Debug, Default)]
pub struct MessageTotals {
    /// How many reached each status of [`COUNTED`], in that order.
    pub counts: [u64; COUNTED.len()],
    /// The tenant's price of the accepted messages, in billionths.
    pub price_nanos: u64,
    /// Accepted → sent.
    pub to_sent: Option<Latency>,
    /// Sent → delivered.
    pub to_delivered: Option<Latency>,
    /// Accepted → delivered.
    pub end_to_end: Option<Latency>,
}

impl MessageTotals {
    /// How many reached `status` (0 for a status that is not counted).
    pub fn count(&self, status: Status) -> u64 {
        counted_index(status).map_or(0, |i| self.counts[i])
    }

    /// Adds `other` to these.
    pub fn add(&mut self, other: &MessageTotals) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.price_nanos += other.price_nanos;
        for (into, from) in [
            (&mut self.to_sent, &other.to_sent),
            (&mut self.to_delivered, &other.to_delivered),
            (&mut self.end_to_end, &other.end_to_end),
        ] {
            if let Some(from) = from {
                merge_latency(into, from);
            }
        }
    }

    /// Adds a stored row's counters: its counts in [`COUNTED`] order and its price (its
    /// histograms are added by [`Grouping::add`]).
    pub fn add_counts(&mut self, counts: [u64; COUNTED.len()], price_nanos: u64) {
        for (a, b) in self.counts.iter_mut().zip(counts) {
            *a += b;
        }
        self.price_nanos += price_nanos;
    }

    /// True when some histogram has samples (the row's stored ones must be merged).
    pub fn has_latency(&self) -> bool {
        self.to_sent.is_some() || self.to_delivered.is_some() || self.end_to_end.is_some()
    }

    /// Delivered (or read) among those that reached an outcome (delivered, undeliverable,
    /// expired, rejected, failed); `None` before any did.
    pub fn delivery_rate(&self) -> Option<f64> {
        let delivered = self.count(Status::Delivered);
        let outcomes = delivered
            + [
                Status::Undeliverable,
                Status::Expired,
                Status::Rejected,
                Status::Failed,
            ]
            .into_iter()
            .map(|s| self.count(s))
            .sum::<u64>();
        (outcomes > 0).then(|| delivered as f64 / outcomes as f64)
    }
}

/// What the store knows of a message when it moves it: its key and the times latencies are
/// measured from.
#[derive(Clone, Debug)]
pub struct MessageFacts {
    /// Its rollup row's key.
    pub key: MessageKey,
    /// When it was accepted (its row's minute).
    pub created_at: UnixMs,
    /// When it was sent, if it was.
    pub sent_at: Option<UnixMs>,
    /// Its status before the move.
    pub status: Status,
}

/// Which rollup rows a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupQuery {
    /// Whose rows; `None`: every tenant's (the operator's view).
    pub tenant: Option<String>,
    /// Rows of this resolution.
    pub resolution: Resolution,
    /// Buckets starting at or after this.
    pub since: UnixMs,
    /// Buckets starting before this.
    pub until: UnixMs,
    /// Only rows whose dimension has this value (for calls: `carrier` only).
    pub filters: Vec<(MessageDimension, String)>,
    /// The dimensions rows are summed by (for calls, dimensions other than `tenant` and
    /// `carrier` group as `""`); none: one sum per bucket.
    pub group_by: Vec<MessageDimension>,
}

/// The dimensions of a call rollup row. A missing carrier is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// Whose calls.
    pub tenant: String,
    /// The carrier that answered, else the last one tried.
    pub carrier: String,
}

impl CallKey {
    /// The value of one dimension (`""` for those calls do not have).
    pub fn get(&self, d: MessageDimension) -> &str {
        match d {
            MessageDimension::Tenant => &self.tenant,
            MessageDimension::Carrier => &self.carrier,
            _ => "",
        }
    }
}

/// Dispositions call rollups count, in their stored column order.
pub const DISPOSITIONS: [&str; 6] = [
    "answered",
    "busy",
    "no_answer",
    "cancelled",
    "rejected",
    "failed",
];

/// Sums of one call rollup row.
#[derive(Clone, Debug, Default)]
pub struct CallTotals {
    /// Calls (attempts by the tenant).
    pub calls: u64,
    /// Calls by disposition, in [`DISPOSITIONS`] order.
    pub dispositions: [u64; DISPOSITIONS.len()],
    /// Talk time of the answered calls, milliseconds.
    pub duration_ms: u64,
    /// Seconds billed by the decks' increments.
    pub billed_secs: u64,
    /// What the carriers charge, billionths of the base currency.
    pub cost_nanos: u64,
    /// What the tenants pay, billionths of the base currency.
    pub price_nanos: u64,
    /// Setup → answer of the answered calls, milliseconds.
    pub to_answer: Option<Latency>,
}

impl CallTotals {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &CallTotals) {
        self.calls += other.calls;
        for (a, b) in self.dispositions.iter_mut().zip(other.dispositions) {
            *a += b;
        }
        self.duration_ms += other.duration_ms;
        self.billed_secs += other.billed_secs;
        self.cost_nanos += other.cost_nanos;
        self.price_nanos += other.price_nanos;
        if let Some(h) = &other.to_answer {
            merge_latency(&mut self.to_answer, h);
        }
    }

    /// Answered calls.
    pub fn answered(&self) -> u64 {
        self.dispositions[0]
    }
}

/// Decimal text (a CDR's cost or price) in billionths; 0 when absent or unreadable.
fn nanos(text: Option<&str>) -> u64 {
    text.and_then(|t| switchyard_routing::Price::parse(t).ok())
        .map_or(0, |p| p.nanos())
}

/// One commit's changes to the rollups, summed per minute row: what the writer adds to the
/// stored rows (at every resolution) before it commits.
#[derive(Clone, Debug, Default)]
pub struct Rollups {
    /// Message rows by (minute, key).
    pub messages: BTreeMap<(UnixMs, MessageKey), MessageTotals>,
    /// Call rows by (minute, key).
    pub calls: BTreeMap<(UnixMs, CallKey), CallTotals>,
}

impl Rollups {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.calls.is_empty()
    }

    /// A message was accepted.
    pub fn accepted(&mut self, m: &NewMessage) {
        let row = self
            .messages
            .entry((Resolution::Minute.floor(m.created_at), MessageKey::of(m)))
            .or_default();
        row.counts[0] += 1;
        row.price_nanos += m.price.map_or(0, |p| p.amount.nanos());
    }

    /// `count` messages of one key were accepted at `created_at`, together priced
    /// `price_nanos` (what [`Rollups::accepted`] counts for each).
    pub fn accepted_many(
        &mut self,
        created_at: UnixMs,
        key: MessageKey,
        count: u64,
        price_nanos: u64,
    ) {
        let row = self
            .messages
            .entry((Resolution::Minute.floor(created_at), key))
            .or_default();
        row.counts[0] += count;
        row.price_nanos += price_nanos;
    }

    /// The store moved a message (described by `facts`, as it was before the move) to `status`
    /// at `at`. Called once per move that happened (never for a change that was refused).
    pub fn moved(&mut self, facts: &MessageFacts, status: Status, at: UnixMs) {
        let Some(index) = counted_index(status) else {
            return;
        };
        let row = self
            .messages
            .entry((
                Resolution::Minute.floor(facts.created_at),
                facts.key.clone(),
            ))
            .or_default();
        row.counts[index] += 1;
        let since = |from: UnixMs| u64::try_from(at.saturating_sub(from)).unwrap_or(0);
        match status {
            Status::Sent => record(&mut row.to_sent, since(facts.created_at)),
            // `read` straight from before delivery means delivered too; `read` after
            // `delivered` only counts as read.
            Status::Delivered | Status::Read if facts.status != Status::Delivered => {
                if status == Status::Read {
                    // Read without a delivery receipt: it was delivered too.
                    row.counts[2] += 1;
                }
                if let Some(sent) = facts.sent_at {
                    record(&mut row.to_delivered, since(sent));
                }
                record(&mut row.end_to_end, since(facts.created_at));
            }
            _ => {}
        }
    }

    /// A call ended and its detail record was written.
    pub fn call(&mut self, c: &CallRecord) {
        let carrier = c
            .carrier
            .clone()
            .or_else(|| c.attempts.last().map(|(name, _)| name.clone()))
            .unwrap_or_default();
        let key = CallKey {
            tenant: c.tenant.clone(),
            carrier,
        };
        let row = self
            .calls
            .entry((Resolution::Minute.floor(c.setup_at), key))
            .or_default();
        row.calls += 1;
        if let Some(i) = DISPOSITIONS.iter().position(|d| *d == c.disposition) {
            row.dispositions[i] += 1;
        }
        row.duration_ms += c.duration_ms;
        row.billed_secs += c.billed_secs;
        row.cost_nanos += nanos(c.cost.as_deref());
        row.price_nanos += nanos(c.price.as_deref());
        if let Some(answer) = c.answer_at {
            let delay = u64::try_from(answer.saturating_sub(c.setup_at)).unwrap_or(0);
            record(&mut row.to_answer, delay);
        }
    }

    /// Adds another commit's (or request's) changes to these.
    pub fn absorb(&mut self, other: Rollups) {
        for (k, v) in other.messages {
            self.messages.entry(k).or_default().add(&v);
        }
        for (k, v) in other.calls {
            self.calls.entry(k).or_default().add(&v);
        }
    }

    /// The message rows at `resolution`: the minute rows summed into their hour or day.
    pub fn messages_at(
        &self,
        resolution: Resolution,
    ) -> BTreeMap<(UnixMs, &MessageKey), MessageTotals> {
        let mut out: BTreeMap<(UnixMs, &MessageKey), MessageTotals> = BTreeMap::new();
        for ((minute, key), v) in &self.messages {
            out.entry((resolution.floor(*minute), key))
                .or_default()
                .add(v);
        }
        out
    }

    /// The call rows at `resolution`.
    pub fn calls_at(&self, resolution: Resolution) -> BTreeMap<(UnixMs, &CallKey), CallTotals> {
        let mut out: BTreeMap<(UnixMs, &CallKey), CallTotals> = BTreeMap::new();
        for ((minute, key), v) in &self.calls {
            out.entry((resolution.floor(*minute), key))
                .or_default()
                .add(v);
        }
        out
    }
}

fn record(h: &mut Option<Latency>, ms: u64) {
    if h.is_none() {
        *h = latency();
    }
    if let Some(h) = h {
        h.saturating_record(ms.min(LATENCY_MAX_MS));
    }
}

/// Rollup sums per (bucket, group), as a query answers them: the group is the values of the
/// query's `group_by` dimensions, in that order.
pub type Grouped<T> = BTreeMap<(UnixMs, Vec<String>), T>;

/// Sums that carry latency histograms (message and call totals).
pub trait Sums: Default {
    /// How many histograms a row carries.
    const LATENCIES: usize;

    /// The `i`-th histogram, in the order rows carry them (`None` past the last).
    fn latency_mut(&mut self, i: usize) -> Option<&mut Option<Latency>>;
}

impl Sums for MessageTotals {
    const LATENCIES: usize = 3;

    fn latency_mut(&mut self, i: usize) -> Option<&mut Option<Latency>> {
        match i {
            0 => Some(&mut self.to_sent),
            1 => Some(&mut self.to_delivered),
            2 => Some(&mut self.end_to_end),
            _ => None,
        }
    }
}

impl Sums for CallTotals {
    const LATENCIES: usize = 1;

    fn latency_mut(&mut self, i: usize) -> Option<&mut Option<Latency>> {
        (i == 0).then_some(&mut self.to_answer)
    }
}

/// One group being summed: its sums, and its histograms as plain count arrays (indexed as
/// [`latency`]'s counts, grown to the highest index seen) until [`Grouping::finish`].
#[derive(Debug, Default)]
struct Group<T> {
    sums: T,
    counts: Vec<Vec<u64>>,
}

/// Sums rollup rows into a query's buckets and groups while the store reads them: no row is
/// kept, and a row's stored histograms are decoded straight into its group's count arrays,
/// never into a histogram of their own; each group's histograms are built once, at the end.
/// Adding a row thus costs its few recorded values, not the thousands of counters of each
/// histogram, which is what keeps a month of rows for every tenant within a query's budget.
///
/// An answer holds at most [`MAX_GROUPS`] (bucket, group) pairs: each carries its histograms
/// (tens of kilobytes), and a tenant's free-text dimensions (senders) could otherwise make a
/// query hold one per message.
#[derive(Debug)]
pub struct Grouping<T> {
    resolution: Resolution,
    group_by: Vec<MessageDimension>,
    groups: HashMap<(UnixMs, Vec<String>), Group<T>>,
    /// A row histogram's decoded (index, count) pairs, added once it decoded whole.
    decoded: Vec<(usize, u64)>,
    /// Where the rows of groups past [`MAX_GROUPS`] are summed (and forgotten).
    spare: Group<T>,
    /// Rows of more than [`MAX_GROUPS`] groups were read.
    overflow: bool,
}

/// The most (bucket, group) pairs one answer holds.
pub const MAX_GROUPS: usize = 2_000;

/// A query whose rows fall into more than [`MAX_GROUPS`] (bucket, group) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the answer would hold more than {MAX_GROUPS} buckets and groups: use a larger bucket, a \
     shorter range, fewer group_by dimensions or a filter"
)]
pub struct TooManyGroups;

impl<T: Sums> Grouping<T> {
    /// Empty groups for `query`'s resolution and `group_by`.
    pub fn new(query: &RollupQuery) -> Grouping<T> {
        Grouping {
            resolution: query.resolution,
            group_by: query.group_by.clone(),
            groups: HashMap::new(),
            decoded: Vec::new(),
            spare: Group::default(),
            overflow: false,
        }
    }

    /// True once rows of more than [`MAX_GROUPS`] groups were read: [`Grouping::finish`]
    /// will refuse, so the rest need not be read.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Adds a row's histograms (V2 serializations, in the order [`Sums::latency_mut`] numbers
    /// them) to its group, and returns the group's sums for the row's counters: the row's
    /// bucket starts at `bucket` (at the query's resolution or a finer one) and `value` gives
    /// its value of a dimension. A histogram whose bytes do not decode adds nothing (a corrupt
    /// row costs its percentiles, not the query).
    pub fn add<'a>(
        &mut self,
        bucket: UnixMs,
        value: impl Fn(MessageDimension) -> &'a str,
        latencies: &[Option<&[u8]>],
    ) -> &mut T {
        let group: Vec<String> = self.group_by.iter().map(|d| value(*d).to_owned()).collect();
        let key = (self.resolution.floor(bucket), group);
        let full = self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key);
        let g = if full {
            self.overflow = true;
            &mut self.spare
        } else {
            self.groups.entry(key).or_default()
        };
        for (i, bytes) in latencies.iter().enumerate().take(T::LATENCIES) {
            let Some(bytes) = bytes else { continue };
            if g.counts.len() <= i {
                g.counts.resize_with(i + 1, Vec::new);
            }
            match decode_stored(bytes, &mut self.decoded) {
                Stored::Counts => {}
                Stored::Other(h) => {
                    if let Some(slot) = g.sums.latency_mut(i) {
                        merge_latency(slot, &h);
                    }
                    continue;
                }
                Stored::Unreadable => continue,
            }
            let counts = &mut g.counts[i];
            for &(index, n) in &self.decoded {
                if counts.len() <= index {
                    counts.resize(index + 1, 0);
                }
                counts[index] = counts[index].saturating_add(n);
            }
        }
        &mut g.sums
    }

    /// The groups, in bucket and group order, with their histograms; refused when the rows
    /// fell into more than [`MAX_GROUPS`].
    pub fn finish(self) -> Result<Grouped<T>, TooManyGroups> {
        if self.overflow {
            return Err(TooManyGroups);
        }
        Ok(self
            .groups
            .into_iter()
            .map(|(key, mut g)| {
                for (i, counts) in g.counts.iter().enumerate() {
                    let Some(slot) = g.sums.latency_mut(i) else {
                        break;
                    };
                    if counts.iter().all(|n| *n == 0) {
                        continue;
                    }
                    if slot.is_none() {
                        *slot = latency();
                    }
                    if let Some(h) = slot {
                        for (index, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                            h.saturating_record_n(v2_value_at(index), *n);
                        }
                    }
                }
                (key, g.sums)
            })
            .collect())
    }
}

/// The 50th, 90th and 99th percentiles of a histogram, with its sample count; `None` when it
/// has no samples.
pub fn percentiles(h: Option<&Latency>) -> Option<(u64, [u64; 3])> {
    let h = h.filter(|h| !h.is_empty())?;
    Some((
        h.len(),
        [
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: Status, sent_at: Option<UnixMs>) -> MessageFacts {
        MessageFacts {
            key: MessageKey {
                tenant: "acme".into(),
                channel: "sms".into(),
                ..MessageKey::default()
            },
            created_at: 120_500,
            sent_at,
            status,
        }
    }

    #[test]
    fn moves_count_in_the_acceptance_minute_with_latencies() {
        let mut r = Rollups::default();
        r.moved(&facts(Status::Queued, None), Status::Sent, 121_000);
        r.moved(
            &facts(Status::Sent, Some(121_000)),
            Status::Delivered,
            124_000,
        );
        r.moved(
            &facts(Status::Delivered, Some(121_000)),
            Status::Read,
            200_000,
        );
        r.moved(&facts(Status::Accepted, None), Status::Queued, 120_600);
        let rows = r.messages_at(Resolution::Minute);
        assert_eq!(rows.len(), 1);
        let (&(minute, _), t) = rows.iter().next().unwrap();
        assert_eq!(minute, 120_000);
        assert_eq!(t.count(Status::Sent), 1);
        assert_eq!(
            t.count(Status::Delivered),
            1,
            "read after delivered is no second delivery"
        );
        assert_eq!(t.count(Status::Read), 1);
        assert_eq!(t.count(Status::Queued), 0);
        // Within the histograms' precision (two significant digits).
        let p50 = |h: &Option<Latency>| percentiles(h.as_ref()).unwrap().1[0];
        assert!(p50(&t.to_sent).abs_diff(500) <= 5);
        assert!(p50(&t.to_delivered).abs_diff(3_000) <= 30);
        assert!(p50(&t.end_to_end).abs_diff(3_500) <= 35);
    }

    #[test]
    fn read_without_a_receipt_counts_as_delivered() {
        let mut r = Rollups::default();
        r.moved(&facts(Status::Sent, Some(121_000)), Status::Read, 125_000);
        let key = facts(Status::Sent, None).key;
        let days = r.messages_at(Resolution::Day);
        let t = &days[&(0, &key)];
        assert_eq!((t.count(Status::Delivered), t.count(Status::Read)), (1, 1));
        assert_eq!(t.delivery_rate(), Some(1.0));
    }

    #[test]
    fn histograms_survive_serialization_and_merge() {
        let mut a = latency().unwrap();
        a.record(10).unwrap();
        let mut b = deserialize_latency(&serialize_latency(&a)).unwrap();
        b.record(1_000).unwrap();
        let mut merged = Some(a);
        merge_latency(&mut merged, &b);
        assert_eq!(merged.as_ref().unwrap().len(), 3);
        assert!(deserialize_latency(b"garbage").is_none());
    }

    #[test]
    fn grouping_sums_finer_rows_into_coarser_buckets() {
        let query = |resolution, group_by: &[MessageDimension]| RollupQuery {
            tenant: None,
            resolution,
            since: 0,
            until: 86_400_000,
            filters: Vec::new(),
            group_by: group_by.to_vec(),
        };
        let rows = [
            (0, "a", 1),
            (MINUTE_MS, "a", 2),
            (MINUTE_MS, "b", 4),
            (3_600_000, "a", 8),
        ];
        let sum = |q: &RollupQuery| {
            let mut g = Grouping::<MessageTotals>::new(q);
            for (bucket, carrier, n) in rows {
                let key = MessageKey {
                    carrier: carrier.into(),
                    ..MessageKey::default()
                };
                g.add(bucket, |d| key.get(d), &[]).counts[0] += n;
            }
            g.finish().unwrap()
        };
        let by_carrier = sum(&query(Resolution::Hour, &[MessageDimension::Carrier]));
        let got: Vec<_> = by_carrier
            .iter()
            .map(|((b, g), t)| (*b, g.join(","), t.count(Status::Accepted)))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "a".into(), 3),
                (0, "b".into(), 4),
                (3_600_000, "a".into(), 8)
            ]
        );
        let all = sum(&query(Resolution::Day, &[]));
        assert_eq!(all[&(0, vec![])].count(Status::Accepted), 15);
    }

    #[test]
    fn an_answer_of_too_many_groups_is_refused() {
        let query = RollupQuery {
            tenant: None,
            resolution: Resolution::Minute,
            since: 0,
            until: 86_400_000,
            filters: Vec::new(),
            group_by: vec![MessageDimension::Sender],
        };
        let mut g = Grouping::<MessageTotals>::new(&query);
        for i in 0..MAX_GROUPS {
            let sender = format!("s{i}");
            g.add(0, |_| sender.as_str(), &[]).counts[0] += 1;
        }
        // A known group still adds; a new one overflows.
        g.add(0, |_| "s0", &[]).counts[0] += 1;
        assert!(!g.overflowed());
        g.add(MINUTE_MS, |_| "s0", &[]).counts[0] += 1;
        assert!(g.overflowed());
        assert_eq!(g.finish().map(|m| m.len()), Err(TooManyGroups));
    }

    /// A histogram with `values` recorded (each `times` times).
    fn recorded(values: impl IntoIterator<Item = u64>, times: u64) -> Latency {
        let mut h = latency().unwrap();
        for v in values {
            h.saturating_record_n(v.min(LATENCY_MAX_MS), times);
        }
        h
    }

    #[test]
    fn counts_array_positions_match_the_histograms() {
        let h = latency().unwrap();
        let mut last = None;
        for index in 0..=v2_index_of(LATENCY_MAX_MS) {
            let v = v2_value_at(index);
            assert_eq!(v2_index_of(v), index, "value {v}");
            assert_eq!(h.lowest_equivalent(v), v, "index {index} starts its range");
            assert!(last < Some(v));
            last = Some(v);
        }
        for v in [0, 1, 127, 128, 255, 256, 257, 1_000, 65_537, LATENCY_MAX_MS] {
            assert_eq!(v2_value_at(v2_index_of(v)), h.lowest_equivalent(v), "{v}");
        }
    }

    #[test]
    fn stored_histograms_add_like_deserialized_ones() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        let mut by_decoding = None;
        let mut by_adding = None;
        let query = RollupQuery {
            tenant: None,
            resolution: Resolution::Day,
            since: 0,
            until: 86_400_000,
            filters: Vec::new(),
            group_by: Vec::new(),
        };
        let mut grouping = Grouping::<MessageTotals>::new(&query);
        for row in 0..50 {
            // Short and long latencies, single counts and large ones, runs of zeros.
            let values: Vec<u64> = (0..(row % 7) * 40)
                .map(|i| match i % 3 {
                    0 => next() % 200,
                    1 => 1_000 + next() % 20_000,
                    _ => next() % (2 * LATENCY_MAX_MS),
                })
                .collect();
            let h = recorded(values, 1 + (row as u64 % 3) * 1_000_000);
            let bytes = serialize_latency(&h);
            assert!(
                v2_counts(&bytes).is_some(),
                "our own rows take the fast path"
            );
            add_encoded_latency(&mut by_decoding, &bytes);
            merge_latency(&mut by_adding, &deserialize_latency(&bytes).unwrap());
            // Rows of one group; the third histogram corrupt in every other row.
            let third = if row % 2 == 0 {
                &bytes[..]
            } else {
                &bytes[..41]
            };
            grouping.add(row * 60_000, |_| "", &[Some(&bytes), None, Some(third)]);
        }
        let (a, b) = (by_decoding.unwrap(), by_adding.unwrap());
        assert_eq!(a.len(), b.len());
        assert!(a.iter_recorded().eq(b.iter_recorded()));
        assert_eq!(a, b);
        let groups = grouping.finish().unwrap();
        let t = &groups[&(0, vec![])];
        assert_eq!(t.to_sent.as_ref(), Some(&b), "grouped like added");
        assert!(t.to_delivered.is_none());
        let even = t.end_to_end.as_ref().map(Histogram::len);
        assert!(
            even > Some(0) && even < Some(b.len()),
            "corrupt rows add nothing"
        );
    }

    #[test]
    fn other_or_corrupt_serializations_still_add_or_cost_only_themselves() {
        // Other bounds: deserialized in full.
        let mut other = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        other.record(42).unwrap();
        let mut into = Some(recorded([7], 1));
        add_encoded_latency(&mut into, &serialize_latency(&other));
        assert_eq!(into.as_ref().map(Histogram::len), Some(2));
        // Truncated payloads and garbage add nothing.
        let ours = serialize_latency(&recorded([5, 500, 50_000], 3));
        for bad in [
            &ours[..ours.len() - 1],
            &ours[..V2_HEADER],
            b"garbage".as_slice(),
        ] {
            let mut into = Some(recorded([7], 1));
            add_encoded_latency(&mut into, bad);
            assert_eq!(into.as_ref().map(Histogram::len), Some(1), "{bad:?}");
        }
        // A count past the histogram's end is refused whole.
        let mut beyond = ours[..V2_HEADER].to_vec();
        // A run of 3,000 zeros (zig-zag 5,999), then a count of 1 (zig-zag 2): index 3,000,
        // past the last one (2,960, a week).
        beyond.extend([0xEF, 0x2E, 0x02]);
        let len = (beyond.len() - V2_HEADER) as u32;
        beyond[4..8].copy_from_slice(&len.to_be_bytes());
        assert!(v2_counts(&beyond).is_some());
        assert!(!v2_each_count(v2_counts(&beyond).unwrap(), |_, _| ()));
    }

    #[test]
    fn a_change_merges_with_its_stored_row() {
        let stored = serialize_latency(&recorded([10, 20], 1));
        let merged = merge_stored_latency(Some(recorded([30], 1)), Some(&stored)).unwrap();
        assert_eq!(deserialize_latency(&merged).unwrap().len(), 3);
        assert_eq!(merge_stored_latency(None, Some(&stored)), None);
    }
}
