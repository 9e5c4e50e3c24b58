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

use std::collections::BTreeMap;

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

/// A message rollup row as read: its bucket's start, its key, its sums.
pub type MessageRow = (UnixMs, MessageKey, MessageTotals);

/// A call rollup row as read.
pub type CallRow = (UnixMs, CallKey, CallTotals);

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
}

/// The dimensions of a call rollup row. A missing carrier is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// Whose calls.
    pub tenant: String,
    /// The carrier that answered, else the last one tried.
    pub carrier: String,
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

/// Rows summed per (bucket, group): the group is the values of `group_by`'s dimensions, in
/// that order. The rows may come at a finer resolution than `resolution` (they are summed into
/// its buckets).
pub fn group_messages(
    rows: Vec<MessageRow>,
    resolution: Resolution,
    group_by: &[MessageDimension],
) -> BTreeMap<(UnixMs, Vec<String>), MessageTotals> {
    let mut out: BTreeMap<(UnixMs, Vec<String>), MessageTotals> = BTreeMap::new();
    for (bucket, key, totals) in rows {
        let group = group_by.iter().map(|d| key.get(*d).to_owned()).collect();
        match out.entry((resolution.floor(bucket), group)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(totals);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&totals),
        }
    }
    out
}

/// Call rows summed per (bucket, group), as [`group_messages`]; calls group by `tenant` and
/// `carrier` only (other dimensions group as `""`).
pub fn group_calls(
    rows: Vec<CallRow>,
    resolution: Resolution,
    group_by: &[MessageDimension],
) -> BTreeMap<(UnixMs, Vec<String>), CallTotals> {
    let mut out: BTreeMap<(UnixMs, Vec<String>), CallTotals> = BTreeMap::new();
    for (bucket, key, totals) in rows {
        let group = group_by
            .iter()
            .map(|d| match d {
                MessageDimension::Tenant => key.tenant.clone(),
                MessageDimension::Carrier => key.carrier.clone(),
                _ => String::new(),
            })
            .collect();
        match out.entry((resolution.floor(bucket), group)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(totals);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&totals),
        }
    }
    out
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
        let key = |carrier: &str| MessageKey {
            carrier: carrier.into(),
            ..MessageKey::default()
        };
        let totals = |n| MessageTotals {
            counts: [n, 0, 0, 0, 0, 0, 0, 0, 0],
            ..MessageTotals::default()
        };
        let rows = vec![
            (0, key("a"), totals(1)),
            (MINUTE_MS, key("a"), totals(2)),
            (MINUTE_MS, key("b"), totals(4)),
            (3_600_000, key("a"), totals(8)),
        ];
        let by_carrier =
            group_messages(rows.clone(), Resolution::Hour, &[MessageDimension::Carrier]);
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
        let all = group_messages(rows, Resolution::Day, &[]);
        assert_eq!(all[&(0, vec![])].count(Status::Accepted), 15);
    }
}
