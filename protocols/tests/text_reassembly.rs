//! protocols::text::reassembly in virtual time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::text::reassembly::MESSAGE_OVERHEAD;
use switchyard_protocols::text::{
    decode_short_message, encode_message, Concat, DecodeOptions, EncodeOptions, Part, Reassembler,
    ReassemblyConfig, ReassemblyEvent, ReassemblyKey,
};

fn key(reference: u16, total: u8) -> ReassemblyKey {
    ReassemblyKey {
        source: Bytes::from_static(b"447700900001"),
        dest: Bytes::from_static(b"12345"),
        reference,
        total,
    }
}

fn part(seq: u8, payload: &'static [u8]) -> Part {
    Part {
        seq,
        data_coding: 0,
        udh: None,
        payload: Bytes::from_static(payload),
    }
}

fn config() -> ReassemblyConfig {
    ReassemblyConfig {
        timeout: Duration::from_secs(60),
        max_messages: 3,
        max_parts: 8,
        max_events: 4,
        max_bytes: 1 << 20,
    }
}

#[test]
fn out_of_order_with_duplicates() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    assert!(r.insert(key(7, 3), part(3, b"c"), t0).is_none());
    assert!(r.insert(key(7, 3), part(1, b"a"), t0).is_none());
    assert!(
        r.insert(key(7, 3), part(1, b"X"), t0).is_none(),
        "duplicate ignored"
    );
    assert_eq!(r.pending_parts(), 2);
    let done = r.insert(key(7, 3), part(2, b"b"), t0).unwrap();
    assert_eq!(done.joined(), b"abc");
    assert_eq!(done.key, key(7, 3));
    assert_eq!(r.pending_messages(), 0);
    assert_eq!(r.pending_parts(), 0);
    assert_eq!(r.next_deadline(), None);
    // A late duplicate after completion starts a new partial, which then expires.
    assert!(r.insert(key(7, 3), part(2, b"b"), t0).is_none());
    let stats = r.stats();
    assert_eq!((stats.completed, stats.duplicates), (1, 1));
}

#[test]
fn different_keys_do_not_mix() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    assert!(r.insert(key(1, 2), part(1, b"a"), t0).is_none());
    assert!(r.insert(key(2, 2), part(2, b"Y"), t0).is_none());
    let mut other_source = key(1, 2);
    other_source.source = Bytes::from_static(b"447700900002");
    assert!(r.insert(other_source, part(2, b"Z"), t0).is_none());
    assert_eq!(
        r.insert(key(1, 2), part(2, b"b"), t0).unwrap().joined(),
        b"ab"
    );
}

#[test]
fn invalid_and_single_parts() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    assert!(r.insert(key(1, 2), part(0, b"a"), t0).is_none());
    assert!(r.insert(key(1, 2), part(3, b"a"), t0).is_none());
    assert!(r.insert(key(1, 0), part(1, b"a"), t0).is_none());
    assert_eq!(r.stats().invalid, 3);
    assert_eq!(
        r.insert(key(1, 1), part(1, b"a"), t0).unwrap().parts.len(),
        1
    );
    assert_eq!(r.pending_messages(), 0);
}

#[test]
fn timeout_from_first_part() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    r.insert(key(1, 2), part(1, b"a"), t0);
    r.insert(key(2, 2), part(1, b"a"), t0 + Duration::from_secs(10));
    assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(60)));
    // A duplicate does not extend the deadline.
    r.insert(key(1, 2), part(1, b"a"), t0 + Duration::from_secs(50));
    assert!(r.poll_expired(t0 + Duration::from_secs(59)).is_empty());
    let expired = r.poll_expired(t0 + Duration::from_secs(60));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].key, key(1, 2));
    assert_eq!(expired[0].parts, vec![(1, Bytes::from_static(b"a"))]);
    assert_eq!(expired[0].first_seen, t0);
    assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(70)));
    // The missing part arriving late starts over rather than completing.
    assert!(r
        .insert(key(1, 2), part(2, b"b"), t0 + Duration::from_secs(61))
        .is_none());
    let later = r.poll_expired(t0 + Duration::from_secs(1000));
    assert_eq!(later.len(), 2);
    assert_eq!(r.stats().expired, 3);
    assert_eq!(r.pending_parts(), 0);
}

#[test]
fn bounded_by_messages_and_parts() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    for i in 0..4u16 {
        r.insert(
            key(i, 5),
            part(1, b"p"),
            t0 + Duration::from_secs(u64::from(i)),
        );
    }
    assert_eq!(r.pending_messages(), 3);
    match r.poll_event() {
        Some(ReassemblyEvent::Evicted(p)) => assert_eq!(p.key, key(0, 5)),
        other => panic!("expected eviction, got {other:?}"),
    }
    // Parts cap: 3 stored, 3 more on message 3 and 2 on message 2 reach the cap of 8;
    // one more evicts the oldest (message 1).
    for seq in 2..=4 {
        r.insert(key(3, 5), part(seq, b"p"), t0);
    }
    r.insert(key(2, 5), part(2, b"p"), t0);
    r.insert(key(2, 5), part(3, b"p"), t0);
    assert_eq!(r.pending_parts(), 8);
    assert!(r.poll_event().is_none());
    r.insert(key(2, 5), part(4, b"p"), t0);
    assert_eq!(r.pending_parts(), 8);
    match r.poll_event() {
        Some(ReassemblyEvent::Evicted(p)) => assert_eq!(p.key, key(1, 5)),
        other => panic!("expected eviction, got {other:?}"),
    }
    assert_eq!(r.stats().evicted, 2);
}

#[test]
fn bounded_by_bytes_never_evicting_the_message_just_added_to() {
    let t0 = Instant::now();
    let big = vec![b'x'; 1000];
    let payload = || Part {
        seq: 1,
        data_coding: 0,
        udh: None,
        payload: Bytes::from(big.clone()),
    };
    let one = |r: &Reassembler| r.pending_bytes();
    let mut r = Reassembler::new(ReassemblyConfig {
        max_messages: 1000,
        max_parts: 1000,
        max_events: 1000,
        max_bytes: 4000,
        ..config()
    });
    r.insert(key(0, 4), payload(), t0);
    let per_message = one(&r);
    assert!(per_message > 1000, "addresses and overhead count too");
    assert!(per_message < 1000 + MESSAGE_OVERHEAD + 200);
    for i in 1..20u16 {
        r.insert(key(i, 4), payload(), t0 + Duration::from_secs(u64::from(i)));
        assert!(
            r.pending_bytes() <= 4000,
            "{} bytes held",
            r.pending_bytes()
        );
    }
    assert_eq!(r.pending_messages(), 3);
    let mut evicted = Vec::new();
    while let Some(ReassemblyEvent::Evicted(p)) = r.poll_event() {
        assert_eq!(p.parts.len(), 1);
        evicted.push(p.key.reference);
    }
    assert_eq!(
        evicted,
        (0..17).collect::<Vec<u16>>(),
        "oldest first, none lost"
    );
    // Parts of one message beyond the bound evict the others, never the message itself.
    for seq in 2..=4 {
        let p = Part { seq, ..payload() };
        assert!(r.insert(key(19, 4), p, t0).is_none() || seq == 4);
    }
    assert_eq!(r.pending_messages(), 0, "message 19 completed");
    assert_eq!(r.pending_bytes(), 0);
    assert_eq!(r.stats().evicted, 19);
}

#[test]
fn events_are_bounded() {
    let t0 = Instant::now();
    let mut r = Reassembler::new(ReassemblyConfig {
        max_messages: 1,
        max_events: 2,
        ..config()
    });
    for i in 0..10u16 {
        r.insert(key(i, 2), part(1, b"p"), t0);
    }
    assert_eq!(r.stats().evicted, 9);
    assert_eq!(r.stats().dropped_events, 7);
    assert!(r.poll_event().is_some());
    assert!(r.poll_event().is_some());
    assert!(r.poll_event().is_none());
}

#[test]
fn segments_reassemble_to_the_text() {
    // Encode with UDH, receive out of order, reassemble, decode.
    for (text, concat) in [
        (
            format!("{}€{}", "a".repeat(152), "[b]".repeat(40)),
            Concat::Udh8,
        ),
        (
            format!("{}😀{}", "ж".repeat(66), "ок".repeat(50)),
            Concat::Udh16,
        ),
    ] {
        let o = EncodeOptions {
            concat,
            reference: 0xBEEF,
            ..EncodeOptions::default()
        };
        let msg = encode_message(&text, &o).unwrap();
        assert!(msg.segments.len() >= 2);
        let t0 = Instant::now();
        let mut r = Reassembler::default();
        let mut done = None;
        for seg in msg.segments.iter().rev() {
            let d = decode_short_message(msg.data_coding, true, &seg.short_message);
            let ie = d.udh.as_ref().and_then(|u| u.concat).unwrap();
            let k = ReassemblyKey::from_udh(
                Bytes::from_static(b"src"),
                Bytes::from_static(b"dst"),
                &ie,
            );
            let p = Part {
                seq: ie.seq,
                data_coding: msg.data_coding,
                udh: None,
                payload: Bytes::copy_from_slice(seg.payload()),
            };
            done = r.insert(k, p, t0).or(done);
        }
        let done = done.unwrap();
        assert_eq!(
            done.decode(&DecodeOptions::default()).text(),
            Some(text.as_str())
        );
    }
}

#[test]
fn binary_parts_join_octet_for_octet_and_keep_part_ones_ies() {
    use switchyard_protocols::text::{
        binary, encode_message_behind, udh, Body, Encoding, EncodingPreference,
    };
    let octets: Vec<u8> = (0..=255u8).chain(0..40).collect();
    let ports = [0x05, 4, 0x0B, 0x84, 0x23, 0xF0];
    let opts = EncodeOptions {
        encoding: EncodingPreference::Force(Encoding::Binary),
        reference: 9,
        ..EncodeOptions::default()
    };
    let msg = encode_message_behind(&binary::encode(&octets), &ports, &opts).unwrap();
    assert_eq!(msg.segments.len(), 3);
    let t0 = Instant::now();
    let mut r = Reassembler::new(config());
    let mut done = None;
    // Last part first: part 1's IEs and data_coding still win.
    for seg in msg.segments.iter().rev() {
        let d = decode_short_message(0xF5, true, &seg.short_message);
        let header = &seg.short_message[..seg.udh_len];
        let ie = d.udh.as_ref().and_then(|u| u.concat).unwrap();
        let k =
            ReassemblyKey::from_udh(Bytes::from_static(b"src"), Bytes::from_static(b"dst"), &ie);
        let p = Part {
            seq: ie.seq,
            data_coding: if ie.seq == 1 { 0xF5 } else { 4 },
            udh: udh::without_concat(header).map(Bytes::from),
            payload: Bytes::copy_from_slice(seg.payload()),
        };
        done = r.insert(k, p, t0).or(done);
    }
    let done = done.unwrap();
    assert_eq!(done.joined(), octets);
    assert_eq!(done.data_coding, 0xF5);
    assert_eq!(
        done.udh.as_deref(),
        Some(&[6, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0][..])
    );
    assert_eq!(
        done.decode(&DecodeOptions::default()).body,
        Body::Binary(octets)
    );
    assert_eq!(r.pending_bytes(), 0);
}
