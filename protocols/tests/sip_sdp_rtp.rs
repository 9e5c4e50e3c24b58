//! SDP offer/answer, RTP packets and packetiser, G.711, RFC 4733 telephone-events.

use std::net::IpAddr;

use bytes::Bytes;
use proptest::prelude::*;
use switchyard_protocols::sip::dtmf::{event_key, key_event, DtmfReceiver, TelephoneEvent};
use switchyard_protocols::sip::g711::*;
use switchyard_protocols::sip::rtp::{Extension, Packetizer, RtpError, RtpPacket};
use switchyard_protocols::sip::sdp::{
    accept_answer, answer, offer, AudioConfig, Codec, Direction, SdpError, SessionDescription,
};

const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\n\
s=-\r\n\
i=A call\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 96 18\r\n\
b=AS:64\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:96 telephone-event/8000\r\n\
a=fmtp:96 0-16\r\n\
a=rtpmap:18 G729/8000\r\n\
a=ptime:30\r\n\
a=sendonly\r\n\
m=video 51372 RTP/AVP 31\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn sdp_parse_and_write_back() {
    let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
    assert_eq!(sdp.origin.session_id, "2890844526");
    assert_eq!(sdp.media.len(), 2);
    let (audio, conn) = sdp.audio().unwrap();
    assert_eq!(conn.unwrap().ip(), Some(ip("192.0.2.10")));
    assert_eq!(audio.formats, ["8", "0", "96", "18"]);
    assert_eq!(audio.rtpmaps().len(), 4);
    assert_eq!(audio.fmtp(96), Some("0-16"));
    assert_eq!(audio.ptime(), Some(30));
    assert_eq!(audio.direction(), Direction::SendOnly);
    // Written back, it is the same text.
    assert_eq!(sdp.to_sdp(), OFFER);
    assert_eq!(
        SessionDescription::parse(sdp.to_sdp().as_bytes()).unwrap(),
        sdp
    );
}

#[test]
fn sdp_errors() {
    assert_eq!(
        SessionDescription::parse(b"s=x\r\n"),
        Err(SdpError::Field('v'))
    );
    assert_eq!(
        SessionDescription::parse(b"v=0\r\nnonsense\r\n"),
        Err(SdpError::Line(2))
    );
    assert_eq!(
        SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio\r\n"),
        Err(SdpError::Media)
    );
}

#[test]
fn answer_follows_offer_preference_and_mirrors_direction() {
    let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
    let (ans, neg) = answer(&sdp, &AudioConfig::default(), ip("198.51.100.5"), 40000, 7).unwrap();
    assert_eq!(neg.codec, Codec::Pcma); // first offered that we support
    assert_eq!(neg.payload_type, 8);
    assert_eq!(neg.telephone_event, Some(96)); // the offerer's dynamic type
    assert_eq!(neg.remote_ip, ip("192.0.2.10"));
    assert_eq!(neg.remote_port, 49170);
    assert_eq!(neg.ptime, 30);
    assert_eq!(neg.direction, Direction::RecvOnly);
    // Same number of m= lines, video rejected with port 0.
    assert_eq!(ans.media.len(), 2);
    assert_eq!(ans.media[1].port, 0);
    let a = &ans.media[0];
    assert_eq!(a.port, 40000);
    assert_eq!(a.formats, ["8", "96"]);
    assert_eq!(a.direction(), Direction::RecvOnly);
    let text = ans.to_sdp();
    assert!(text.contains("c=IN IP4 198.51.100.5\r\n"));
    assert!(text.contains("a=rtpmap:96 telephone-event/8000\r\n"));
    // The offerer reads the answer.
    let back = accept_answer(
        &SessionDescription::parse(text.as_bytes()).unwrap(),
        &AudioConfig::default(),
    )
    .unwrap();
    assert_eq!(back.codec, Codec::Pcma);
    assert_eq!(back.remote_port, 40000);
}

#[test]
fn offer_and_answer_between_two_of_us() {
    let mine = AudioConfig::default();
    let o = offer(&mine, ip("2001:db8::1"), 30000, 42);
    let text = o.to_sdp();
    assert!(text.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"));
    assert!(text.contains("c=IN IP6 2001:db8::1\r\n"));
    let peer = AudioConfig {
        codecs: vec![Codec::Pcma],
        telephone_event: None,
        ptime: 20,
    };
    let (ans, neg) = answer(
        &SessionDescription::parse(text.as_bytes()).unwrap(),
        &peer,
        ip("192.0.2.7"),
        31000,
        9,
    )
    .unwrap();
    assert_eq!(neg.codec, Codec::Pcma);
    assert_eq!(neg.telephone_event, None);
    assert_eq!(neg.remote_ip, ip("2001:db8::1"));
    let back = accept_answer(&ans, &mine).unwrap();
    assert_eq!(
        (back.codec, back.remote_port, back.telephone_event),
        (Codec::Pcma, 31000, None)
    );
}

#[test]
fn no_common_codec_is_488_material() {
    let sdp = SessionDescription::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 9\r\n",
    )
    .unwrap();
    assert_eq!(
        answer(&sdp, &AudioConfig::default(), ip("192.0.2.2"), 5000, 1).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // Static payload types need no rtpmap.
    let sdp = SessionDescription::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\n",
    )
    .unwrap();
    let (_, neg) = answer(&sdp, &AudioConfig::default(), ip("192.0.2.2"), 5000, 1).unwrap();
    assert_eq!((neg.codec, neg.remote_ip), (Codec::Pcmu, ip("192.0.2.9")));
}

#[test]
fn rtp_decode_full_header() {
    // V=2 P=1 X=1 CC=2, M=1 PT=8, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, two CSRCs,
    // extension 0xBEDE with 1 word, payload "abc", 2 bytes of padding.
    let mut b = vec![0xB2, 0x88, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
    b.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 10]);
    b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]);
    b.extend_from_slice(b"abc");
    b.extend_from_slice(&[0, 2]);
    let p = RtpPacket::decode(Bytes::from(b.clone())).unwrap();
    assert!(p.marker);
    assert_eq!(p.payload_type, 8);
    assert_eq!(p.sequence, 0x1234);
    assert_eq!(p.timestamp, 0xdeadbeef);
    assert_eq!(p.ssrc, 0x01020304);
    assert_eq!(p.csrc, [9, 10]);
    assert_eq!(
        p.extension,
        Some(Extension {
            profile: 0xBEDE,
            data: Bytes::from_static(&[0x10, 0xAA, 0, 0])
        })
    );
    assert_eq!(p.payload, &b"abc"[..]);
    assert_eq!(p.padding, 2);
    assert_eq!(p.to_bytes(), Bytes::from(b));
}

#[test]
fn rtp_decode_errors() {
    assert_eq!(
        RtpPacket::decode(Bytes::from_static(&[0x80; 11])),
        Err(RtpError::Truncated)
    );
    assert_eq!(
        RtpPacket::decode(Bytes::from_static(&[0x40; 12])),
        Err(RtpError::Version)
    );
    // CC=3 but no CSRCs.
    assert_eq!(
        RtpPacket::decode(Bytes::from_static(&[0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        Err(RtpError::Truncated)
    );
    // Padding count larger than the payload.
    let mut b = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9];
    assert_eq!(
        RtpPacket::decode(Bytes::from(b.clone())),
        Err(RtpError::Padding)
    );
    b[13] = 0;
    assert_eq!(RtpPacket::decode(Bytes::from(b)), Err(RtpError::Padding));
}

#[test]
fn packetizer_20ms_frames() {
    let mut p = Packetizer::g711_20ms(0xCAFE, 0, 65534, 1000);
    let audio = vec![0x55u8; 160 * 2 + 10];
    let packets = p.packetize(&audio, Codec::Pcmu.silence());
    assert_eq!(packets.len(), 3);
    assert!(packets[0].marker && !packets[1].marker && !packets[2].marker);
    assert_eq!(
        packets.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        [65534, 65535, 0]
    );
    assert_eq!(
        packets.iter().map(|p| p.timestamp).collect::<Vec<_>>(),
        [1000, 1160, 1320]
    );
    assert!(packets
        .iter()
        .all(|p| p.payload.len() == 160 && p.ssrc == 0xCAFE));
    assert_eq!(packets[2].payload[10], 0xFF);
    // Silence: timestamp jumps, sequence does not, marker on the next talkspurt.
    p.silence(5);
    let next = p.packet(Bytes::from_static(&[0; 160]));
    assert_eq!(
        (next.sequence, next.timestamp, next.marker),
        (1, 1480 + 800, true)
    );
    let decoded = RtpPacket::decode(next.to_bytes()).unwrap();
    assert_eq!(decoded, next);
}

#[test]
fn g711_known_values() {
    assert_eq!(linear_to_ulaw(0), 0xFF);
    assert_eq!(linear_to_alaw(0), 0xD5);
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(ulaw_to_linear(0x00), -32124);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0xAA), 32256);
    assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
    assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
    assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
}

#[test]
fn g711_every_code_round_trips() {
    for code in 0..=255u8 {
        assert_eq!(
            linear_to_alaw(alaw_to_linear(code)),
            code,
            "A-law {code:#x}"
        );
        if code != 0x7F {
            // 0x7F is μ-law's negative zero, which encodes back as 0xFF.
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                code,
                "μ-law {code:#x}"
            );
        }
    }
    let tone: Vec<i16> = (0..160)
        .map(|i| ((i as f64 / 8.0).sin() * 12000.0) as i16)
        .collect();
    assert_eq!(decode_ulaw(&encode_ulaw(&tone)).len(), 160);
    assert_eq!(decode_alaw(&encode_alaw(&tone)).len(), 160);
}

proptest! {
    #[test]
    fn g711_quantisation_error_is_bounded(s in any::<i16>()) {
        // Segment step is at most 1/16 of the magnitude (plus the smallest step).
        let bound = |x: i32| x.abs() / 16 + 16;
        let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
        prop_assert!((u - i32::from(s)).abs() <= bound(i32::from(s)) + 132, "ulaw {} -> {}", s, u);
        let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
        prop_assert!((a - i32::from(s)).abs() <= bound(i32::from(s)) + 16, "alaw {} -> {}", s, a);
    }

    #[test]
    fn rtp_round_trip(marker in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(),
                      ssrc in any::<u32>(), csrc in proptest::collection::vec(any::<u32>(), 0..16),
                      ext in proptest::option::of((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..3).prop_map(|w| w.len()))),
                      padding in 0u8..8, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let p = RtpPacket {
            marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc, csrc,
            extension: ext.map(|(profile, words)| Extension { profile, data: Bytes::from(vec![7u8; words * 4]) }),
            padding, payload: Bytes::from(payload),
        };
        prop_assert_eq!(RtpPacket::decode(p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn rtp_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(p) = RtpPacket::decode(Bytes::from(data)) {
            prop_assert_eq!(RtpPacket::decode(p.to_bytes()).unwrap(), p);
        }
    }

    #[test]
    fn sdp_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = SessionDescription::parse(&data);
    }
}

#[test]
fn telephone_event_payload() {
    // RFC 4733 §2.3: event 5, end, volume 10, duration 800.
    let ev = TelephoneEvent {
        event: 5,
        end: true,
        volume: 10,
        duration: 800,
    };
    let bytes = ev.encode();
    assert_eq!(bytes, [5, 0x8A, 0x03, 0x20]);
    assert_eq!(TelephoneEvent::decode(&bytes).unwrap(), ev);
    assert_eq!(ev.key(), Some('5'));
    assert_eq!(TelephoneEvent::decode(&[1, 2]), Err(RtpError::Event));
    for k in "0123456789*#ABCD".chars() {
        assert_eq!(event_key(key_event(k).unwrap()), Some(k));
    }
    assert_eq!(event_key(16), None);
}

#[test]
fn dtmf_receiver_reports_each_digit_once() {
    let mut rx = DtmfReceiver::default();
    let mut pk = Packetizer::new(1, 101, 0, 8000, 0);
    let mut digits = Vec::new();
    for (ts, key) in [(8000u32, '1'), (16000, '#')] {
        for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
            let ev = TelephoneEvent {
                event: key_event(key).unwrap(),
                end,
                volume: 10,
                duration: 160 * (i as u16 + 1),
            };
            let mut p = pk.packet(Bytes::copy_from_slice(&ev.encode()));
            p.timestamp = ts;
            if let Some(d) = rx.handle(&p) {
                digits.push(d);
            }
        }
    }
    assert_eq!(digits, [('1', 480), ('#', 480)]);
}
