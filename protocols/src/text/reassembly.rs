//! Sans-IO reassembly of incoming multipart messages (UDH concatenation or SAR TLVs).
//!
//! Parts go in with [`Reassembler::insert`] in any order; the complete message comes out of the
//! call that delivers its last missing part. Duplicates are ignored (the first copy wins).
//! An incomplete message expires `timeout` after its *first* part arrived (a fixed deadline, so
//! a trickle of duplicates cannot keep it alive); the driver calls [`Reassembler::poll_expired`]
//! at [`Reassembler::next_deadline`]. Memory is bounded: past `max_messages` pending messages,
//! `max_parts` stored parts or `max_bytes` held bytes the oldest pending message is dropped and
//! reported as [`ReassemblyEvent::Evicted`] through [`Reassembler::poll_event`] (never the
//! message the part just inserted belongs to).
//!
//! Bytes are counted as each part's payload length plus, per pending message, its kept IEs, its
//! addresses, a slot per part and a fixed overhead ([`MESSAGE_OVERHEAD`]) for the map entries:
//! close to what the heap holds, provided payloads and addresses own their memory. A `Bytes`
//! slice of a larger receive buffer keeps the whole buffer alive, so drivers insert copies.
//!
//! A binary message's parts carry the same IEs besides concatenation (ports, say): the message
//! keeps part 1's ([`Part::udh`]), so it can be passed on with them.
//!
//! Payloads are stored as given. Join-then-decode is right for unpacked GSM-7, Latin-1 and UCS-2
//! (and repairs senders that split an escape or surrogate pair across parts); for packed GSM-7,
//! insert the unpacked septets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::decode::{decode_short_message_with, DecodeOptions, DecodedText};
use super::udh::ConcatIe;

/// Which message a part belongs to. Two parts belong together when all four fields match.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReassemblyKey {
    /// Originating address (as received).
    pub source: Bytes,
    /// Destination address (as received).
    pub dest: Bytes,
    /// The concatenation reference (UDH 8- or 16-bit, or sar_msg_ref_num).
    pub reference: u16,
    /// Parts in the message.
    pub total: u8,
}

impl ReassemblyKey {
    /// The key for a part with this concatenation IE.
    pub fn from_udh(source: Bytes, dest: Bytes, concat: &ConcatIe) -> Self {
        ReassemblyKey {
            source,
            dest,
            reference: concat.reference,
            total: concat.total,
        }
    }
}

/// One received part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its 1-based number.
    pub seq: u8,
    /// Its data_coding (the message is decoded with part 1's, else the first received).
    pub data_coding: u8,
    /// Its user data header's IEs other than concatenation (application ports…), as a UDH
    /// (UDHL included), if any: the message keeps part 1's, else the first received part's.
    pub udh: Option<Bytes>,
    /// The user data after the UDH.
    pub payload: Bytes,
}

/// Limits and timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long after its first part an incomplete message is given up.
    pub timeout: Duration,
    /// Pending (incomplete) messages kept at most.
    pub max_messages: usize,
    /// Parts stored at most, over all pending messages.
    pub max_parts: usize,
    /// Undrained events kept at most (the oldest is dropped and counted beyond this). A
    /// driver that must not lose an eviction drains events after every insert and sets this to
    /// at least `max_messages` (one insert evicts at most every other pending message).
    pub max_events: usize,
    /// Bytes held at most over all pending messages, counted as the module doc says.
    pub max_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(180),
            max_messages: 10_000,
            max_parts: 50_000,
            max_events: 1_024,
            max_bytes: 16 << 20,
        }
    }
}

/// Bytes counted per pending message on top of its addresses and payloads: its entries in the
/// key map and the deadline index, and its bookkeeping.
pub const MESSAGE_OVERHEAD: usize = 160;

/// Bytes counted per part slot of a pending message (one `Option<Bytes>`).
const SLOT_BYTES: usize = std::mem::size_of::<Option<Bytes>>();

/// A message whose parts all arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Complete {
    /// Which message.
    pub key: ReassemblyKey,
    /// The data_coding to decode it with.
    pub data_coding: u8,
    /// The IEs other than concatenation (see [`Part::udh`]).
    pub udh: Option<Bytes>,
    /// The payloads in part order.
    pub parts: Vec<Bytes>,
}

impl Complete {
    /// The payloads joined.
    pub fn joined(&self) -> Vec<u8> {
        self.parts.concat()
    }

    /// The joined payloads decoded by data_coding.
    pub fn decode(&self, opts: &DecodeOptions) -> DecodedText {
        decode_short_message_with(self.data_coding, false, &self.joined(), opts)
    }
}

/// An incomplete message given up (expired or evicted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Which message.
    pub key: ReassemblyKey,
    /// The data_coding it would have been decoded with.
    pub data_coding: u8,
    /// The IEs other than concatenation (see [`Part::udh`]).
    pub udh: Option<Bytes>,
    /// The parts that did arrive, as (seq, payload), in part order.
    pub parts: Vec<(u8, Bytes)>,
    /// When its first part arrived.
    pub first_seen: Instant,
}

/// Something the driver should know about, drained with [`Reassembler::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReassemblyEvent {
    /// A pending message was dropped to stay within the memory limits.
    Evicted(Partial),
}

/// Counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages completed.
    pub completed: u64,
    /// Parts ignored because that part had already arrived.
    pub duplicates: u64,
    /// Parts ignored because seq was 0 or above total, or total was 0.
    pub invalid: u64,
    /// Pending messages dropped for the limits.
    pub evicted: u64,
    /// Pending messages timed out.
    pub expired: u64,
    /// Events dropped because nobody drained them.
    pub dropped_events: u64,
}

/// One incomplete message.
#[derive(Debug)]
struct Pending {
    /// Its entry in `by_deadline`, to remove it there.
    order: (Instant, u64),
    /// When its first part arrived (reported in [`Partial`]).
    first_seen: Instant,
    /// data_coding of part 1, else of the first part received.
    data_coding: u8,
    /// The IEs other than concatenation, from the same part as `data_coding`.
    udh: Option<Bytes>,
    /// True once part 1 set `data_coding` and `udh`.
    dc_from_first_part: bool,
    /// Slot per part number; `None` until it arrives.
    parts: Vec<Option<Bytes>>,
    /// Slots filled.
    received: usize,
    /// What this message counts towards `max_bytes`.
    bytes: usize,
}

/// The reassembler. See the module doc.
#[derive(Debug)]
pub struct Reassembler {
    /// Limits and timeout.
    config: ReassemblyConfig,
    /// Incomplete messages by key.
    pending: HashMap<ReassemblyKey, Pending>,
    /// Keys by (deadline, insertion counter): the first entry is the oldest and the next to expire.
    by_deadline: BTreeMap<(Instant, u64), ReassemblyKey>,
    /// Tie-breaker for equal deadlines.
    next_id: u64,
    /// Parts stored over all pending messages.
    stored_parts: usize,
    /// Bytes held over all pending messages (see the module doc).
    stored_bytes: usize,
    /// Undrained events.
    events: VecDeque<ReassemblyEvent>,
    /// Counters.
    stats: ReassemblyStats,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            pending: HashMap::new(),
            by_deadline: BTreeMap::new(),
            next_id: 0,
            stored_parts: 0,
            stored_bytes: 0,
            events: VecDeque::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// Adds a part; returns the message when this was its last missing part.
    pub fn insert(&mut self, key: ReassemblyKey, part: Part, now: Instant) -> Option<Complete> {
        let total = usize::from(key.total);
        let seq = usize::from(part.seq);
        if total == 0 || seq == 0 || seq > total {
            self.stats.invalid += 1;
            return None;
        }
        if total == 1 {
            self.stats.completed += 1;
            return Some(Complete {
                key,
                data_coding: part.data_coding,
                udh: part.udh,
                parts: vec![part.payload],
            });
        }
        if let Some(p) = self.pending.get_mut(&key) {
            let slot = p.parts.get_mut(seq - 1)?;
            if slot.is_some() {
                self.stats.duplicates += 1;
                return None;
            }
            let mut added = part.payload.len();
            *slot = Some(part.payload);
            p.received += 1;
            if part.seq == 1 && !p.dc_from_first_part {
                p.data_coding = part.data_coding;
                let old = p.udh.as_ref().map_or(0, Bytes::len);
                added = (added + part.udh.as_ref().map_or(0, Bytes::len)).saturating_sub(old);
                p.udh = part.udh;
                p.dc_from_first_part = true;
            }
            p.bytes += added;
            self.stored_parts += 1;
            self.stored_bytes += added;
            if p.received == total {
                return self.complete(&key);
            }
            self.enforce_limits(&key);
            return None;
        }
        while self.pending.len() >= self.config.max_messages.max(1) {
            if !self.evict_oldest(None) {
                break;
            }
        }
        let order = (now + self.config.timeout, self.next_id);
        self.next_id += 1;
        let bytes = MESSAGE_OVERHEAD
            + key.source.len()
            + key.dest.len()
            + SLOT_BYTES * total
            + part.payload.len()
            + part.udh.as_ref().map_or(0, Bytes::len);
        let mut parts = vec![None; total];
        if let Some(slot) = parts.get_mut(seq - 1) {
            *slot = Some(part.payload);
        }
        self.pending.insert(
            key.clone(),
            Pending {
                order,
                first_seen: now,
                data_coding: part.data_coding,
                udh: part.udh,
                dc_from_first_part: part.seq == 1,
                parts,
                received: 1,
                bytes,
            },
        );
        self.by_deadline.insert(order, key.clone());
        self.stored_parts += 1;
        self.stored_bytes += bytes;
        self.enforce_limits(&key);
        None
    }

    /// Removes and returns the messages whose deadline is at or before `now`.
    pub fn poll_expired(&mut self, now: Instant) -> Vec<Partial> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(p) = self.take(&key) {
                self.stats.expired += 1;
                out.push(p);
            }
        }
        out
    }

    /// When [`poll_expired`](Self::poll_expired) next has something to return.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|(t, _)| *t)
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ReassemblyEvent> {
        self.events.pop_front()
    }

    /// Pending (incomplete) messages.
    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    /// Parts stored over all pending messages.
    pub fn pending_parts(&self) -> usize {
        self.stored_parts
    }

    /// Bytes held over all pending messages, as counted against `max_bytes`.
    pub fn pending_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Counters since creation.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Removes a finished message and returns it.
    fn complete(&mut self, key: &ReassemblyKey) -> Option<Complete> {
        let p = self.pending.remove(key)?;
        self.by_deadline.remove(&p.order);
        self.stored_parts -= p.received;
        self.stored_bytes -= p.bytes;
        self.stats.completed += 1;
        Some(Complete {
            key: key.clone(),
            data_coding: p.data_coding,
            udh: p.udh,
            parts: p.parts.into_iter().flatten().collect(),
        })
    }

    /// Removes a pending message (its deadline entry must already be gone) as a `Partial`.
    fn take(&mut self, key: &ReassemblyKey) -> Option<Partial> {
        let p = self.pending.remove(key)?;
        self.stored_parts -= p.received;
        self.stored_bytes -= p.bytes;
        let parts = (1u8..=255)
            .zip(p.parts)
            .filter_map(|(seq, slot)| slot.map(|b| (seq, b)))
            .collect();
        Some(Partial {
            key: key.clone(),
            data_coding: p.data_coding,
            udh: p.udh,
            parts,
            first_seen: p.first_seen,
        })
    }

    /// Evicts the oldest pending message other than `keep`; false when there is none.
    fn evict_oldest(&mut self, keep: Option<&ReassemblyKey>) -> bool {
        let victim = self
            .by_deadline
            .iter()
            .find(|(_, k)| Some(*k) != keep)
            .map(|(order, _)| *order);
        let Some(order) = victim else {
            return false;
        };
        let Some(key) = self.by_deadline.remove(&order) else {
            return false;
        };
        if let Some(p) = self.take(&key) {
            self.stats.evicted += 1;
            if self.events.len() >= self.config.max_events.max(1) {
                self.events.pop_front();
                self.stats.dropped_events += 1;
            }
            self.events.push_back(ReassemblyEvent::Evicted(p));
        }
        true
    }

    /// Evicts the oldest messages (never `keep`) until the part and byte limits hold.
    fn enforce_limits(&mut self, keep: &ReassemblyKey) {
        while self.stored_parts > self.config.max_parts || self.stored_bytes > self.config.max_bytes
        {
            if !self.evict_oldest(Some(keep)) {
                break;
            }
        }
    }
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new(ReassemblyConfig::default())
    }
}
