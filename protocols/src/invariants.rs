//! The properties the fuzz targets check, as plain functions (feature `oracle`).
//!
//! Each takes arbitrary bytes and panics when a property does not hold. The cargo-fuzz targets in
//! `fuzz/` are one-line calls to these, and `tests/fuzz_corpus.rs` replays the checked-in corpus
//! and every past crash through the same functions on stable Rust, so CI keeps them honest
//! without a fuzzer.
// Panicking is the point: a failed property must abort the fuzzer with the input.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::dlr;
use crate::smpp::codec::{self, SmppCodec};
use crate::smpp::pdu::Bind;
use crate::smpp::session::{BindType, Event, Session, SessionConfig};
use crate::text;

/// Frames the input with [`SmppCodec`] (small maximum, so length errors are reachable); every
/// PDU that decodes must re-encode to a frame that decodes to the same PDU, and encoding that
/// again must give the same bytes.
pub fn smpp_frame(data: &[u8]) {
    let mut codec = SmppCodec::with_max_pdu_len(4096);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let Ok(pdu) = frame else { continue };
        let mut first = BytesMut::new();
        // A decoded PDU may still violate an encode-side limit; that is reported, not a panic.
        if codec::encode(&pdu, &mut first).is_err() {
            continue;
        }
        let again = codec::decode(first.clone().freeze()).expect("re-encoded PDU must decode");
        assert_eq!(again, pdu, "decode(encode(pdu)) != pdu");
        let mut second = BytesMut::new();
        codec::encode(&again, &mut second).expect("second encode");
        assert_eq!(first, second, "encoding is not stable");
    }
}

/// Feeds the frames of the input to an SMSC session and to an ESME session (already bound),
/// with time advancing by the first octet of each frame in seconds. Neither may panic, the
/// window bound must hold, and the next deadline must never be in the past after a timeout.
pub fn smpp_session(data: &[u8]) {
    let t0 = Instant::now();
    let creds = Bind {
        system_id: "fuzz".into(),
        password: "pw".into(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let mut esme_cfg = SessionConfig::esme(BindType::Transceiver, creds);
    esme_cfg.window = 4;
    let mut esme = Session::new(esme_cfg, t0);
    let mut smsc_cfg = SessionConfig::smsc("smsc");
    smsc_cfg.window = 4;
    let mut smsc = Session::new(smsc_cfg, t0);
    let _ = esme.bind(t0);
    while esme.poll_transmit().is_some() {}

    let mut codec = SmppCodec::with_max_pdu_len(4096);
    let mut buf = BytesMut::from(data);
    let mut now = t0;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let step = frame.as_ref().map(|p| p.sequence_number % 64).unwrap_or(1);
        now += Duration::from_secs(u64::from(step));
        for session in [&mut esme, &mut smsc] {
            match &frame {
                Ok(pdu) => session.handle_pdu(pdu.clone(), now),
                Err(e) => session.handle_decode_error(e, now),
            }
            session.handle_timeout(now);
            if let Some(deadline) = session.poll_timeout() {
                assert!(deadline > now, "deadline in the past after handle_timeout");
            }
            while let Some(event) = session.poll_event() {
                match event {
                    Event::BindRequest { .. } => {
                        let _ = session.accept_bind(now);
                    }
                    Event::Request {
                        sequence_number,
                        body,
                    } => {
                        if let Some(resp) = body.command_id().empty_response() {
                            let _ = session.respond(
                                sequence_number,
                                crate::smpp::CommandStatus::ESME_ROK,
                                resp,
                                now,
                            );
                        }
                    }
                    _ => {}
                }
            }
            while session.poll_transmit().is_some() {}
            assert!(session.in_flight() <= session.config().window);
        }
    }
}

/// Our decoder and rusmpp's must agree on every frame both accept (see [`crate::smpp::oracle`]).
pub fn smpp_differential(data: &[u8]) {
    if let Err(disagreement) = crate::smpp::oracle::agree(data) {
        panic!("codecs disagree: {disagreement}");
    }
}

/// Text round trips: any UTF-8 string encodes (auto) to segments that decode back to it;
/// arbitrary bytes decode under every data_coding without panicking; binary octets split
/// behind information elements join back (see `binary_behind`); a header stripped of its
/// concatenation IEs reads back without them.
pub fn text_roundtrip(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let opts = text::EncodeOptions {
            reference: 7,
            ..text::EncodeOptions::default()
        };
        if let Ok(encoded) = text::encode_message(s, &opts) {
            let info =
                text::count_segments(s, &opts).expect("count_segments agrees with encode_message");
            assert_eq!(info.segments, encoded.segments.len(), "segment count");
            let mut joined = String::new();
            for seg in &encoded.segments {
                let udhi = seg.udh_len > 0;
                let decoded =
                    text::decode_short_message(encoded.data_coding, udhi, &seg.short_message);
                joined.push_str(decoded.text().expect("text segments decode to text"));
            }
            assert_eq!(joined, s, "segments do not join back to the text");
        }
    }
    for dc in [0u8, 1, 3, 4, 8, 0xF0] {
        let _ = text::decode_short_message(dc, true, data);
        let _ = text::decode_short_message(dc, false, data);
    }
    binary_behind(data);
    if let Some(kept) = text::udh::without_concat(data) {
        let (udh, rest) = text::parse_udh(&kept).expect("what without_concat keeps reads");
        assert!(rest.is_empty() && udh.concat.is_none(), "{kept:?}");
    }
}

/// Binary octets behind information elements (the first byte says how many of the next
/// bytes are IEs, the rest are octets): the count agrees with the split, every segment is at
/// most 140 octets with its header, whose last IEs are these (after the concatenation IE of a
/// long message), and the payloads join back to the octets.
fn binary_behind(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (ies, octets) = rest.split_at(usize::from(n).min(rest.len()));
    let hex = text::binary::encode(octets);
    let opts = text::EncodeOptions {
        encoding: text::EncodingPreference::Force(text::Encoding::Binary),
        reference: 7,
        ..text::EncodeOptions::default()
    };
    let Ok(encoded) = text::encode_message_behind(&hex, ies, &opts) else {
        assert!(
            text::count_segments_behind(&hex, ies.len(), &opts).is_err(),
            "count_segments_behind agrees with encode_message_behind"
        );
        return;
    };
    let info = text::count_segments_behind(&hex, ies.len(), &opts)
        .expect("count_segments_behind agrees with encode_message_behind");
    assert_eq!(info.segments, encoded.segments.len(), "segment count");
    let mut joined = Vec::new();
    for seg in &encoded.segments {
        assert!(
            seg.short_message.len() <= 140,
            "{} octets",
            seg.short_message.len()
        );
        let header = &seg.short_message[..seg.udh_len];
        assert!(header.ends_with(ies), "the IEs end every header");
        joined.extend_from_slice(seg.payload());
    }
    assert_eq!(joined, octets, "segments do not join back to the octets");
}

/// Receipt parsing never panics; a parsed receipt formats to text that parses to the same state
/// and id.
pub fn dlr_parse(data: &[u8]) {
    if let Ok(r) = dlr::parse_text_receipt(data) {
        if !r.message_id.is_empty() && !r.message_id.contains(char::is_whitespace) {
            let again = dlr::parse_text_receipt(&dlr::format_text_receipt(&r))
                .expect("formatted receipt parses");
            assert_eq!(again.message_id, r.message_id);
            assert_eq!(again.state, r.state);
        }
    }
    let _ = dlr::normalize_message_id(data);
    let _ = Bytes::copy_from_slice(data);
}

/// Receipt-id matching ([`dlr::id`]). The first bytes pick a number and how each side writes
/// it; the rest is a raw id. Properties:
/// - a number written by the response side in one format and by the receipt side in another is
///   found by the receipt's probes when both formats are known (one probe, certain), and when
///   neither is (some probe reads the same value in the response's base);
/// - two different numbers never match with both formats known;
/// - any bytes give readings, probes and learning without panicking, a known format gives one
///   reading, and a certain reading set never holds two different values.
pub fn receipt_ids(data: &[u8]) {
    use dlr::id::{probes, readings, FormatLearner, IdFormat};
    let Some((head, raw)) = data.split_first_chunk::<18>() else {
        return;
    };
    let n = u128::from(u64::from_le_bytes(head[..8].try_into().unwrap()));
    let m = u128::from(u64::from_le_bytes(head[8..16].try_into().unwrap()));
    let format = |b: u8| match b % 3 {
        0 => IdFormat::Decimal,
        1 => IdFormat::Hex,
        _ => IdFormat::Text,
    };
    let (fs, fr) = (format(head[16]), format(head[17]));
    let write = |v: u128, f: IdFormat, style: u8| match (f, style % 4) {
        (IdFormat::Decimal, 0) => v.to_string(),
        (IdFormat::Decimal, _) => format!("{v:012}"),
        (IdFormat::Hex, 0) => format!("{v:x}"),
        (IdFormat::Hex, 1) => format!("{v:X}"),
        (IdFormat::Hex, 2) => format!("0x{v:x}"),
        (IdFormat::Hex, _) => format!("{v:020X}"),
        (_, _) => format!("id-{v:x}"),
    };
    if fs != IdFormat::Text && fr != IdFormat::Text {
        let resp = write(n, fs, head[16] / 3);
        let receipt = write(n, fr, head[17] / 3);
        let stored = readings(resp.as_bytes(), Some(fs)).primary;
        let p = probes(receipt.as_bytes(), Some(fr), Some(fs));
        assert_eq!(p.len(), 1, "{receipt:?} with both formats known");
        assert!(p[0].receipt_certain);
        assert_eq!(
            p[0].key, stored,
            "{resp:?} ({fs:?}) vs {receipt:?} ({fr:?})"
        );
        let unknown = readings(resp.as_bytes(), None);
        assert!(
            probes(receipt.as_bytes(), None, None)
                .iter()
                .any(|p| unknown.keys().any(|k| *k == p.key)),
            "{resp:?} vs {receipt:?} with unknown formats"
        );
        if m != n {
            let other = write(m, fr, head[17] / 3);
            let p = probes(other.as_bytes(), Some(fr), Some(fs));
            assert!(
                p.iter().all(|p| p.key != stored),
                "{resp:?} matched {other:?}"
            );
        }
    }
    let all = readings(raw, None);
    if all.is_certain() {
        assert!(all.keys().all(|k| k.same_value(&all.primary)));
    }
    for f in [IdFormat::Decimal, IdFormat::Hex, IdFormat::Text] {
        assert!(readings(raw, Some(f)).alternate.is_none());
        let _ = probes(raw, Some(f), None);
        let _ = probes(raw, None, Some(f));
    }
    let mut learner = FormatLearner::default();
    for chunk in raw.split(|b| *b == b',') {
        learner.observe(chunk);
    }
}
