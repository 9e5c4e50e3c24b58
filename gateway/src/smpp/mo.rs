//! Multipart MO messages of one carrier, shared by its binds (an SMSC may deliver the parts of
//! one message over different binds): the reassembler, and the durable record of what it holds.
//!
//! ```text
//! part ─► reserve room in the update sink ─► lock: reassembler step ─► MoWrite {
//!           hold: this part (its message is not complete yet),
//!           finished: the message it completed, and messages evicted for the byte bound
//!         } ─► queued (still under the lock) ─► commit ─► the bind acknowledges the part
//! deadline ─► lock: messages timed out ─► MoWrite { finished: them } ─► commit
//! start ─► parts held in the store ─► back into each carrier's reassembler
//! ```
//! Every part is durable before the carrier hears that we have it, and the store holds
//! exactly what the reassembler holds: a crash loses nothing acknowledged, a restart resumes
//! the reassembly, and memory stays within `max_bytes` per carrier. A message evicted for the
//! bound or timed out is stored as inbound flagged `partial` with the parts that came, never
//! dropped. A binary message's parts (8-bit data_coding, or port-addressed) are joined octet
//! for octet and keep part 1's data_coding and IEs other than concatenation. Room in the sink
//! is reserved before the lock and the write is queued under it, so writes reach the store in
//! the order of the reassembler's steps: a part held after one bind's step cannot be stored
//! after the commit that released its message on another bind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_protocols::text::{
    decode_short_message, parse_udh, Body, Part, Partial, Reassembler, ReassemblyConfig,
    ReassemblyEvent, ReassemblyKey,
};

use crate::domain::{
    BinaryCoding, HeldPart, InboundMessage, MessageId, MoWrite, PartialParts, UnixMs,
};
use crate::inbound::{Inbound, ReplyRequest};

/// One carrier's multipart MO messages in progress. See the module doc.
#[derive(Debug)]
pub(crate) struct MoParts {
    /// The carrier (stored with the parts, and a metric label).
    carrier: String,
    /// The reassembler and what it needs besides.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Pending messages, bounded by count, parts and bytes.
    reassembler: Reassembler,
    /// The source TON of each pending message: how its sender is written if it is given up
    /// (complete messages take it from their last part).
    tons: HashMap<ReassemblyKey, u8>,
}

/// A part as it arrived on a bind.
#[derive(Debug)]
pub(crate) struct Arrived {
    /// Its message.
    pub(crate) key: ReassemblyKey,
    /// Its number, data_coding and payload (an owned copy: see the reassembler's doc).
    pub(crate) part: Part,
    /// source_addr_ton of the deliver_sm.
    pub(crate) source_ton: u8,
}

impl MoParts {
    /// No messages in progress yet.
    pub(crate) fn new(carrier: impl Into<String>, config: ReassemblyConfig) -> Self {
        MoParts {
            carrier: carrier.into(),
            state: Mutex::new(State {
                reassembler: Reassembler::new(config),
                tons: HashMap::new(),
            }),
        }
    }

    /// When the oldest message in progress times out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.state.lock().reassembler.next_deadline()
    }

    /// Bytes held now (what `max_bytes` bounds).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().reassembler.pending_bytes()
    }

    /// One step for a part that arrived: what to write before acknowledging it, and the
    /// keyword reply a message it completed asks for. Call with room reserved in the update
    /// sink, and queue the write before anything else happens on this carrier (see the
    /// module doc).
    pub(crate) fn arrived(
        &self,
        a: Arrived,
        inbound: &Inbound,
        now: Instant,
        now_ms: UnixMs,
    ) -> (MoWrite, Option<ReplyRequest>) {
        let mut state = self.state.lock();
        self.step(&mut state, a, inbound, now, now_ms)
    }

    /// Takes parts of one message that other nodes hold in the shared store (the parts of a
    /// message may arrive over binds of different nodes): with all of them here, the message
    /// completes on this node. Returns what to write (no part to hold: they are held already)
    /// and the keyword replies it asks for. One step under one lock, like [`MoParts::arrived`].
    pub(crate) fn adopt(
        &self,
        parts: Vec<HeldPart>,
        inbound: &Inbound,
        now: Instant,
        now_ms: UnixMs,
    ) -> (MoWrite, Vec<ReplyRequest>) {
        let mut state = self.state.lock();
        let mut write = MoWrite {
            carrier: self.carrier.clone(),
            hold: None,
            finished: Vec::new(),
        };
        let mut replies = Vec::new();
        for p in parts {
            let a = Arrived {
                key: p.key,
                part: Part {
                    seq: p.seq,
                    data_coding: p.data_coding,
                    udh: p.udh,
                    payload: p.payload,
                },
                source_ton: p.source_ton,
            };
            let (w, reply) = self.step(&mut state, a, inbound, now, now_ms);
            write.finished.extend(w.finished);
            replies.extend(reply);
        }
        (write, replies)
    }

    fn step(
        &self,
        state: &mut State,
        a: Arrived,
        inbound: &Inbound,
        now: Instant,
        now_ms: UnixMs,
    ) -> (MoWrite, Option<ReplyRequest>) {
        let held = HeldPart {
            key: a.key.clone(),
            seq: a.part.seq,
            data_coding: a.part.data_coding,
            udh: a.part.udh.clone(),
            payload: a.part.payload.clone(),
            source_ton: a.source_ton,
            received_at: now_ms,
        };
        let completed = state.reassembler.insert(a.key.clone(), a.part, now);
        let mut write = MoWrite {
            carrier: self.carrier.clone(),
            hold: None,
            finished: Vec::new(),
        };
        let mut reply = None;
        match completed {
            Some(c) => {
                state.tons.remove(&c.key);
                let (body, binary) = content(c.data_coding, c.udh.as_deref(), &c.joined());
                let mut m = message(&self.carrier, &c.key, a.source_ton, body, now_ms, None);
                m.binary = binary;
                reply = inbound.classify(&mut m);
                write.finished.push((c.key, m));
            }
            None => {
                state.tons.entry(a.key).or_insert(a.source_ton);
                write.hold = Some(held);
            }
        }
        self.given_up(state, &mut write, inbound, now_ms);
        (write, reply)
    }

    /// Messages whose time ran out, as a write (`None` when there are none).
    pub(crate) fn expire(
        &self,
        inbound: &Inbound,
        now: Instant,
        now_ms: UnixMs,
    ) -> Option<MoWrite> {
        let mut state = self.state.lock();
        let expired = state.reassembler.poll_expired(now);
        let mut write = MoWrite {
            carrier: self.carrier.clone(),
            hold: None,
            finished: Vec::with_capacity(expired.len()),
        };
        for p in expired {
            metrics::counter!("switchyard_mo_partial_total", "carrier" => self.carrier.clone(), "reason" => "expired")
                .increment(1);
            let m = partial(&self.carrier, &mut state, p, inbound, now_ms);
            write.finished.push(m);
        }
        self.given_up(&mut state, &mut write, inbound, now_ms);
        (!write.finished.is_empty()).then_some(write)
    }

    /// Puts a part held in the store back (at start). Returns what that finished (messages
    /// completed or evicted because the bound shrank), to be written before the binds run.
    pub(crate) fn restore(
        &self,
        part: HeldPart,
        inbound: &Inbound,
        now: Instant,
        now_ms: UnixMs,
    ) -> MoWrite {
        let age = Duration::from_millis(u64::try_from(now_ms - part.received_at).unwrap_or(0));
        let first_seen = now.checked_sub(age).unwrap_or(now);
        let source_ton = part.source_ton;
        let (mut write, _) = self.arrived(
            Arrived {
                key: part.key,
                part: Part {
                    seq: part.seq,
                    data_coding: part.data_coding,
                    udh: part.udh,
                    payload: part.payload,
                },
                source_ton,
            },
            inbound,
            first_seen,
            part.received_at,
        );
        // Already held in the store; a keyword completed at start gets no reply (the pump
        // would not have answered it either after a restart).
        write.hold = None;
        write
    }

    /// Every message in progress given up at once (a carrier that is no longer configured).
    pub(crate) fn give_up_all(&self, inbound: &Inbound, now_ms: UnixMs) -> Option<MoWrite> {
        let far = Instant::now() + Duration::from_secs(366 * 86_400);
        self.expire(inbound, far, now_ms)
    }

    /// Adds the messages the last step evicted to `write` and updates the gauges.
    fn given_up(&self, state: &mut State, write: &mut MoWrite, inbound: &Inbound, now_ms: UnixMs) {
        while let Some(event) = state.reassembler.poll_event() {
            if let ReassemblyEvent::Evicted(p) = event {
                metrics::counter!("switchyard_mo_partial_total", "carrier" => self.carrier.clone(), "reason" => "evicted")
                    .increment(1);
                let m = partial(&self.carrier, state, p, inbound, now_ms);
                write.finished.push(m);
            }
        }
        let r = &state.reassembler;
        metrics::gauge!("switchyard_mo_reassembly_bytes", "carrier" => self.carrier.clone())
            .set(r.pending_bytes() as f64);
        metrics::gauge!("switchyard_mo_reassembly_messages", "carrier" => self.carrier.clone())
            .set(r.pending_messages() as f64);
    }
}

/// The reassembler settings for every carrier: `max_bytes` and `timeout` from the
/// configuration; events sized so that no eviction is ever dropped (they are drained after
/// every step, and one step evicts at most every other pending message).
pub(crate) fn reassembly_config(max_bytes: usize, timeout: Duration) -> ReassemblyConfig {
    let d = ReassemblyConfig::default();
    ReassemblyConfig {
        timeout,
        max_bytes,
        max_events: d.max_messages,
        ..d
    }
}

/// A message given up, as a flagged inbound message.
fn partial(
    carrier: &str,
    state: &mut State,
    p: Partial,
    inbound: &Inbound,
    now_ms: UnixMs,
) -> (ReassemblyKey, InboundMessage) {
    let ton = state.tons.remove(&p.key).unwrap_or(1);
    let joined: Vec<u8> = p
        .parts
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    let (body, binary) = content(p.data_coding, p.udh.as_deref(), &joined);
    let parts = PartialParts {
        received: p.parts.iter().map(|(seq, _)| *seq).collect(),
        total: p.key.total,
    };
    let mut m = message(carrier, &p.key, ton, body, now_ms, Some(parts));
    m.binary = binary;
    // Only the owner: a partial text is no keyword.
    let _ = inbound.classify(&mut m);
    (p.key, m)
}

/// The body of an MO (its payload after the UDH) and, for a binary one, how it was coded.
/// Binary: an 8-bit data_coding, a data_coding with no text to read (JIS X 0208 without
/// escapes, pictograms, compressed, reserved values), or an application's message (an
/// application port IE in `udh`, whatever its data_coding): the octets as hex, with the
/// data_coding and `udh` (the IEs other than concatenation, UDHL included) kept to pass it on
/// as it came. Else text decoded by data_coding.
pub(crate) fn content(
    data_coding: u8,
    udh: Option<&[u8]>,
    payload: &[u8],
) -> (String, Option<BinaryCoding>) {
    let ported = udh
        .and_then(|u| parse_udh(u).ok())
        .is_some_and(|(u, _)| u.ports.is_some());
    if !ported {
        if let Body::Text(text) = decode_short_message(data_coding, false, payload).body {
            return (text, None);
        }
    }
    let binary = BinaryCoding {
        data_coding,
        udh: udh.map(<[u8]>::to_vec),
    };
    (hex::encode(payload), Some(binary))
}

/// An inbound message from `key`'s addresses.
fn message(
    carrier: &str,
    key: &ReassemblyKey,
    source_ton: u8,
    body: String,
    now_ms: UnixMs,
    partial: Option<PartialParts>,
) -> InboundMessage {
    InboundMessage {
        id: MessageId::generate(now_ms),
        carrier: carrier.to_owned(),
        channel: switchyard_routing::Channel::Sms,
        tenant: None,
        from: source_display(&key.source, source_ton),
        to: String::from_utf8_lossy(&key.dest).into_owned(),
        body,
        binary: None,
        received_at: now_ms,
        partial,
        provider_id: None,
    }
}

/// How an MO's sender is written: international numbers (TON 1) in E.164 form, national
/// numbers and names as sent.
pub(crate) fn source_display(addr: &[u8], ton: u8) -> String {
    let s = String::from_utf8_lossy(addr);
    match ton {
        1 => format!("+{}", s.trim_start_matches('+')),
        _ => s.into_owned(),
    }
}

/// An owned copy of `b` (a slice of a receive buffer would keep the whole buffer alive).
pub(crate) fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::admission::optout::OptOuts;
    use crate::domain::Directory;

    const NOW_MS: UnixMs = 1_700_000_000_000;

    fn inbound() -> Inbound {
        let mut d = Directory::default();
        d.numbers.insert("447000000001".into(), "acme".into());
        Inbound {
            directory: Arc::new(arc_swap::ArcSwap::from_pointee(d)),
            opt_outs: Arc::new(OptOuts::load(Vec::new())),
            replies: None,
        }
    }

    fn key(reference: u16, total: u8) -> ReassemblyKey {
        ReassemblyKey {
            source: Bytes::from_static(b"447911000001"),
            dest: Bytes::from_static(b"447000000001"),
            reference,
            total,
        }
    }

    fn part(reference: u16, total: u8, seq: u8, text: &str) -> Arrived {
        Arrived {
            key: key(reference, total),
            part: Part {
                seq,
                data_coding: 0,
                udh: None,
                payload: Bytes::copy_from_slice(text.as_bytes()),
            },
            source_ton: 1,
        }
    }

    #[test]
    fn content_is_text_when_its_data_coding_reads_else_binary() {
        assert_eq!(content(0, None, b"Hi"), ("Hi".to_owned(), None));
        assert_eq!(
            content(6, None, b"\xbf\xe0\xd8\xd2\xd5\xe2"),
            ("Привет".to_owned(), None)
        );
        // An 8-bit data_coding, one with no text to read (JIS X 0208 without escapes, compressed,
        // reserved), or ports: binary, the data_coding kept to pass it on as it came.
        for data_coding in [4, 0x05, 0x0D, 0x20, 0x0B] {
            let (body, binary) = content(data_coding, None, b"\x30\x21");
            assert_eq!(body, "3021");
            assert_eq!(
                binary,
                Some(BinaryCoding {
                    data_coding,
                    udh: None
                })
            );
        }
        let ports = [6, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0];
        let (body, binary) = content(0, Some(&ports), b"Hi");
        assert_eq!(body, "4869");
        assert_eq!(binary.and_then(|b| b.udh), Some(ports.to_vec()));
    }

    #[test]
    fn a_part_is_held_until_the_part_that_completes_its_message() {
        let mo = MoParts::new("alpha", reassembly_config(1 << 20, Duration::from_secs(60)));
        let (i, t0) = (inbound(), Instant::now());
        let (w, reply) = mo.arrived(part(7, 2, 2, "world"), &i, t0, NOW_MS);
        assert!(reply.is_none());
        assert!(w.finished.is_empty());
        let held = w.hold.expect("held");
        assert_eq!(
            (held.seq, held.source_ton, held.received_at),
            (2, 1, NOW_MS)
        );
        let (w, reply) = mo.arrived(part(7, 2, 1, "hello "), &i, t0, NOW_MS + 5);
        assert!(w.hold.is_none(), "the completing part is not held");
        assert!(reply.is_none());
        let [(k, m)] = &w.finished[..] else {
            panic!("{w:?}")
        };
        assert_eq!(k, &key(7, 2));
        assert_eq!(m.body, "hello world");
        assert_eq!(m.from, "+447911000001");
        assert_eq!(m.tenant.as_deref(), Some("acme"));
        assert_eq!(m.partial, None);
        assert_eq!(mo.bytes(), 0);
    }

    #[test]
    fn a_keyword_split_over_parts_asks_for_its_reply() {
        let mo = MoParts::new("alpha", reassembly_config(1 << 20, Duration::from_secs(60)));
        let (i, t0) = (inbound(), Instant::now());
        mo.arrived(part(1, 2, 1, "HE"), &i, t0, NOW_MS);
        let (_, reply) = mo.arrived(part(1, 2, 2, "LP"), &i, t0, NOW_MS);
        assert_eq!(reply.map(|r| r.keyword), Some(crate::domain::Keyword::Help));
    }

    #[test]
    fn messages_over_the_byte_bound_or_out_of_time_are_given_up_as_partial() {
        let mo = MoParts::new("alpha", reassembly_config(4096, Duration::from_secs(60)));
        let (i, t0) = (inbound(), Instant::now());
        let text = "x".repeat(150);
        let mut given_up = Vec::new();
        for r in 0..40u16 {
            let (w, _) = mo.arrived(part(r, 3, 1, &text), &i, t0, NOW_MS);
            assert!(w.hold.is_some(), "every part is held until given up");
            assert!(mo.bytes() <= 4096, "{} bytes", mo.bytes());
            given_up.extend(w.finished);
        }
        assert!(!given_up.is_empty());
        for (k, m) in &given_up {
            assert_eq!(
                m.partial,
                Some(PartialParts {
                    received: vec![1],
                    total: 3
                })
            );
            assert_eq!(m.body, text);
            assert_eq!(m.from, "+447911000001", "{k:?}");
        }
        let left = mo
            .expire(&i, t0 + Duration::from_secs(61), NOW_MS)
            .expect("the rest times out");
        assert_eq!(given_up.len() + left.finished.len(), 40, "none lost");
        assert!(left.hold.is_none());
        assert_eq!(mo.bytes(), 0);
        assert!(mo
            .expire(&i, t0 + Duration::from_secs(999), NOW_MS)
            .is_none());
    }

    #[test]
    fn held_parts_go_back_and_complete_after_a_restart() {
        let config = reassembly_config(1 << 20, Duration::from_secs(60));
        let (i, t0) = (inbound(), Instant::now());
        let before = MoParts::new("alpha", config);
        let (w, _) = before.arrived(part(3, 2, 1, "abc"), &i, t0, NOW_MS);
        let after = MoParts::new("alpha", config);
        let restored = after.restore(w.hold.expect("held"), &i, t0, NOW_MS + 1000);
        assert!(restored.hold.is_none() && restored.finished.is_empty());
        let (w, _) = after.arrived(part(3, 2, 2, "def"), &i, t0, NOW_MS + 2000);
        assert_eq!(w.finished[0].1.body, "abcdef");
        // A part restored after its time ran out times out at once.
        let again = MoParts::new("alpha", config);
        let (w, _) = again.arrived(part(4, 2, 1, "old"), &i, t0, NOW_MS);
        let later = MoParts::new("alpha", config);
        later.restore(w.hold.expect("held"), &i, Instant::now(), NOW_MS + 61_000);
        assert!(later.next_deadline().is_some_and(|d| d <= Instant::now()));
    }

    #[test]
    fn parts_another_node_holds_complete_the_message_here() {
        let config = reassembly_config(1 << 20, Duration::from_secs(60));
        let (i, t0) = (inbound(), Instant::now());
        // Node B's bind got parts 1 and 3, node A's bind part 2.
        let b = MoParts::new("alpha", config);
        let (w1, _) = b.arrived(part(9, 3, 1, "one "), &i, t0, NOW_MS);
        let (w3, _) = b.arrived(part(9, 3, 3, " three"), &i, t0, NOW_MS + 2);
        let a = MoParts::new("alpha", config);
        let (w2, _) = a.arrived(part(9, 3, 2, "two"), &i, t0, NOW_MS + 1);
        // A reads every held part (its own among them) and completes the message.
        let held = vec![w1.hold.unwrap(), w2.hold.unwrap(), w3.hold.unwrap()];
        let (w, replies) = a.adopt(held, &i, t0, NOW_MS + 3);
        assert!(w.hold.is_none(), "held already");
        assert!(replies.is_empty());
        assert_eq!(w.finished.len(), 1);
        assert_eq!(w.finished[0].1.body, "one two three");
        assert_eq!(w.finished[0].1.partial, None);
        assert_eq!(a.bytes(), 0, "nothing left here");
        // B still has its parts; given up later, they make a partial message (which the
        // store does not keep once A's commit released the parts).
        let late = b.expire(&i, t0 + Duration::from_secs(61), NOW_MS + 61_000);
        assert!(late.unwrap().finished[0].1.partial.is_some());
    }
}
