//! protocols::text: round trips, segment boundaries, and split-then-join.

use proptest::prelude::*;
use switchyard_protocols::text::{
    count_segments, decode_short_message, decode_short_message_with, encode_message, gsm7, latin1,
    parse_udh, ucs2, Concat, DecodeOptions, EncodeOptions, Encoding, EncodingPreference, TextError,
};

/// Every character GSM 03.38 can represent (basic table without the escape, and the extension).
fn gsm_chars() -> Vec<char> {
    let mut v: Vec<char> = (0u8..128)
        .filter(|&s| s != gsm7::ESCAPE)
        .map(|s| gsm7::decode_unpacked(&[s]).chars().next().unwrap())
        .collect();
    v.extend(['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€']);
    v
}

fn gsm_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(gsm_chars()), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

/// Text mixing GSM characters, Latin-1 extras, Cyrillic and emoji.
fn mixed_string(max: usize) -> impl Strategy<Value = String> {
    let mut pool = gsm_chars();
    pool.extend(['ç', 'ÿ', 'ж', 'Я', '中', '😀', '👍', '\u{10FFFF}']);
    prop::collection::vec(prop::sample::select(pool), 0..max).prop_map(|v| v.into_iter().collect())
}

fn opts(concat: Concat) -> EncodeOptions {
    EncodeOptions {
        concat,
        reference: 0x1234,
        ..EncodeOptions::default()
    }
}

/// Decodes the segments as a receiver would (UDH stripped per segment) and joins the texts.
fn join(msg: &switchyard_protocols::text::EncodedMessage, packed: bool) -> String {
    let dopts = DecodeOptions {
        gsm7_packed: packed,
        ..DecodeOptions::default()
    };
    msg.segments
        .iter()
        .map(|s| {
            let d =
                decode_short_message_with(msg.data_coding, s.has_udh(), &s.short_message, &dopts);
            d.text().unwrap().to_owned()
        })
        .collect()
}

proptest! {
    #[test]
    fn gsm_unpacked_round_trip(s in gsm_string(400)) {
        let septets = gsm7::encode_unpacked(&s).unwrap();
        prop_assert!(septets.iter().all(|&b| b < 0x80));
        prop_assert_eq!(septets.len(), gsm7::septet_len(&s).unwrap());
        prop_assert_eq!(gsm7::decode_unpacked(&septets), s);
    }

    #[test]
    fn gsm_packed_round_trip(s in gsm_string(400), fill in 0u8..7) {
        let septets = gsm7::encode_unpacked(&s).unwrap();
        let packed = gsm7::encode_packed(&s, fill).unwrap();
        prop_assert_eq!(packed.len(), gsm7::packed_len(septets.len(), fill));
        prop_assert_eq!(&gsm7::unpack(&packed, fill, septets.len()), &septets);
        // Octet-length-only decoding is exact unless the text ends in CR (the spec's ambiguity).
        if !s.ends_with('\r') {
            prop_assert_eq!(gsm7::decode_packed(&packed, fill), s);
        }
    }

    #[test]
    fn ucs2_round_trip(s in any::<String>()) {
        let b = ucs2::encode(&s);
        prop_assert_eq!(b.len(), ucs2::unit_len(&s) * 2);
        prop_assert_eq!(ucs2::decode(&b), s);
    }

    #[test]
    fn latin1_round_trip(v in prop::collection::vec(any::<u8>(), 0..300)) {
        let s = latin1::decode(&v);
        prop_assert_eq!(latin1::encode(&s).unwrap(), v);
    }

    #[test]
    fn decoders_never_panic(dc in any::<u8>(), udhi in any::<bool>(), b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_short_message(dc, udhi, &b);
        let _ = decode_short_message_with(dc, udhi, &b, &DecodeOptions { gsm7_packed: true, ..DecodeOptions::default() });
        let _ = parse_udh(&b);
    }

    #[test]
    fn split_then_join(s in mixed_string(700), c in 0..3usize, packed in any::<bool>()) {
        let concat = [Concat::Udh8, Concat::Udh16, Concat::Sar][c];
        let o = EncodeOptions { gsm7_packed: packed, ..opts(concat) };
        let msg = encode_message(&s, &o).unwrap();
        let info = count_segments(&s, &o).unwrap();
        prop_assert_eq!(info.segments, msg.segments.len());
        prop_assert_eq!(info.encoding, msg.encoding);
        prop_assert_eq!(info.units, msg.units);
        let limit = info.units_per_segment;
        let total = msg.segments.len();
        for (i, seg) in msg.segments.iter().enumerate() {
            prop_assert!(seg.units <= limit);
            prop_assert_eq!(usize::from(seg.number), i + 1);
            prop_assert_eq!(usize::from(seg.total), total);
            let want_udh = total > 1 && concat != Concat::Sar;
            prop_assert_eq!(seg.has_udh(), want_udh);
            if want_udh {
                let (udh, payload) = parse_udh(&seg.short_message).unwrap();
                let ie = udh.concat.unwrap();
                prop_assert_eq!((ie.seq, ie.total, ie.reference), (seg.number, seg.total, seg.reference));
                prop_assert_eq!(payload, seg.payload());
            }
            // The packed/unpacked payload fits 140 octets once on the air interface.
            if msg.encoding != Encoding::Gsm7 || packed {
                prop_assert!(seg.short_message.len() <= 140);
            }
        }
        if let Some(last) = msg.segments.last() {
            prop_assert_eq!(info.units_left, limit - last.units);
        }
        if !(packed && msg.encoding == Encoding::Gsm7 && msg.segments.iter().any(|g| s[g.text_range.clone()].ends_with('\r'))) {
            prop_assert_eq!(join(&msg, packed), s);
        }
    }
}

#[test]
fn gsm_single_part_boundary() {
    let o = opts(Concat::Udh8);
    let a160 = "a".repeat(160);
    let m = encode_message(&a160, &o).unwrap();
    assert_eq!(
        (m.segments.len(), m.encoding, m.data_coding),
        (1, Encoding::Gsm7, 0)
    );
    assert!(!m.segments[0].has_udh());
    assert_eq!(m.segments[0].short_message.len(), 160);
    let c = count_segments(&a160, &o).unwrap();
    assert_eq!((c.segments, c.units, c.units_left), (1, 160, 0));

    let a161 = "a".repeat(161);
    let m = encode_message(&a161, &o).unwrap();
    assert_eq!(m.segments.len(), 2);
    assert_eq!((m.segments[0].units, m.segments[1].units), (153, 8));
    assert_eq!(m.segments[0].short_message.len(), 6 + 153);
    assert_eq!(&m.segments[0].short_message[..6], &[5, 0, 3, 0x34, 2, 1]);
    let c = count_segments(&a161, &o).unwrap();
    assert_eq!(
        (c.segments, c.units_per_segment, c.units_left),
        (2, 153, 145)
    );

    // Escapes count double: 80 € fit, 81 do not.
    assert_eq!(count_segments(&"€".repeat(80), &o).unwrap().segments, 1);
    assert_eq!(count_segments(&"€".repeat(81), &o).unwrap().segments, 2);
    // 153 * 3 = 459: exactly three parts.
    assert_eq!(count_segments(&"x".repeat(459), &o).unwrap().segments, 3);
    assert_eq!(count_segments(&"x".repeat(460), &o).unwrap().segments, 4);
}

#[test]
fn ucs2_single_part_boundary() {
    let o = opts(Concat::Udh8);
    let m = encode_message(&"ж".repeat(70), &o).unwrap();
    assert_eq!(
        (m.segments.len(), m.encoding, m.data_coding),
        (1, Encoding::Ucs2, 8)
    );
    assert_eq!(m.segments[0].short_message.len(), 140);
    let m = encode_message(&"ж".repeat(71), &o).unwrap();
    assert_eq!(m.segments.len(), 2);
    assert_eq!((m.segments[0].units, m.segments[1].units), (67, 4));
    assert_eq!(m.segments[0].short_message.len(), 140);
    let m = encode_message(&"ж".repeat(71), &opts(Concat::Udh16)).unwrap();
    assert_eq!((m.segments[0].units, m.segments[1].units), (66, 5));
    assert_eq!(m.segments[0].short_message.len(), 139);
}

#[test]
fn escape_pair_never_split_at_153() {
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let m = encode_message(&text, &opts(Concat::Udh8)).unwrap();
    assert_eq!(m.segments.len(), 2);
    let first = m.segments[0].payload();
    assert_eq!(first.len(), 152, "the pair moves whole to part 2");
    assert_ne!(first.last(), Some(&gsm7::ESCAPE));
    assert_eq!(&m.segments[1].payload()[..2], &[gsm7::ESCAPE, 0x65]);
    assert_eq!(join(&m, false), text);
    // One less 'a' and the pair ends exactly on septet 153.
    let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
    let m = encode_message(&text, &opts(Concat::Udh8)).unwrap();
    assert_eq!(m.segments[0].units, 153);
    assert_eq!(&m.segments[0].payload()[151..], &[gsm7::ESCAPE, 0x65]);
}

#[test]
fn surrogate_pair_never_split_at_67() {
    let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
    let m = encode_message(&text, &opts(Concat::Udh8)).unwrap();
    assert_eq!(m.encoding, Encoding::Ucs2);
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.segments[0].units, 66);
    assert_eq!(&m.segments[1].payload()[..4], &[0xD8, 0x3D, 0xDE, 0x00]);
    assert_eq!(join(&m, false), text);
    let c = count_segments(&text, &opts(Concat::Udh8)).unwrap();
    assert_eq!((c.segments, c.units, c.units_left), (2, 78, 67 - 12));
}

#[test]
fn sar_mode_has_no_udh_and_gives_tlvs() {
    let text = "y".repeat(200);
    let m = encode_message(&text, &opts(Concat::Sar)).unwrap();
    assert!(m.needs_sar());
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.segments[0].short_message.len(), 153);
    let tlvs = m.segments[1].sar_tlvs();
    let tlvs: switchyard_protocols::smpp::Tlvs = tlvs.into_iter().collect();
    assert_eq!(tlvs.sar(), Some((0x1234, 2, 2)));
}

#[test]
fn packed_parts_fit_140_octets() {
    let o = EncodeOptions {
        gsm7_packed: true,
        ..opts(Concat::Udh8)
    };
    let m = encode_message(&"z".repeat(306), &o).unwrap();
    assert_eq!(m.segments.len(), 2);
    for s in &m.segments {
        assert_eq!(s.short_message.len(), 140);
    }
    assert_eq!(join(&m, true), "z".repeat(306));
}

#[test]
fn forced_encodings_and_limits() {
    let latin = EncodeOptions {
        encoding: EncodingPreference::Force(Encoding::Latin1),
        ..opts(Concat::Udh8)
    };
    let m = encode_message("café", &latin).unwrap();
    assert_eq!(
        (m.data_coding, &m.segments[0].short_message[..]),
        (3, &b"caf\xe9"[..])
    );
    assert!(matches!(
        encode_message("€uro", &latin),
        Err(TextError::Unrepresentable {
            ch: '€',
            offset: 0,
            ..
        })
    ));
    let ucs = EncodeOptions {
        encoding: EncodingPreference::Force(Encoding::Ucs2),
        ..opts(Concat::Udh8)
    };
    assert_eq!(encode_message("hi", &ucs).unwrap().data_coding, 8);
    let capped = EncodeOptions {
        max_segments: 2,
        ..opts(Concat::Udh8)
    };
    assert_eq!(
        encode_message(&"q".repeat(400), &capped),
        Err(TextError::TooManySegments {
            segments: 3,
            max: 2
        })
    );
    // 255 parts is the format's own limit.
    assert!(matches!(
        encode_message(&"q".repeat(153 * 256), &EncodeOptions::default()),
        Err(TextError::TooManySegments { max: 255, .. })
    ));
}
