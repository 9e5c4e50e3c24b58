//! SMPP codec: ours against rusmpp 0.4, measured in the same run.
//!
//! Groups `submit_sm/{encode,decode,encode+decode}` and `deliver_sm/{…}`, each with `ours` and
//! `rusmpp`. The submit_sm carries a 160-character GSM body with typical addresses and
//! registered_delivery=1; the deliver_sm is a text delivery receipt with receipted_message_id and
//! message_state TLVs.
//!
//! Like with like: both encode into a reused `BytesMut`; both decode from a read buffer full of
//! complete frames, the way each one's `tokio_util` codec does it (ours splits the frame off and
//! freezes it, rusmpp decodes in place and splits each field off), and both drop what they
//! decoded inside the timed region. After criterion, a plain timing loop prints ns/op and the
//! ratios rusmpp/ours. `SMPP_CODEC_PROFILE` (see [`profile`]) runs one operation a fixed number
//! of times, for instruction counts under callgrind.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{criterion_group, Criterion};
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::owned::Encode as _;
use rusmpp::encode::Length as _;
use rusmpp::Command;
use switchyard_protocols::smpp::codec::{decode, encode};
use switchyard_protocols::smpp::pdu::{Address, Body, Pdu, SubmitSm};
use switchyard_protocols::smpp::tlv::{message_state, tag, Tlv, Tlvs};

/// A 160-character GSM-7 body (unpacked, data_coding 0), the longest single-part SMS.
const BODY_160: &[u8; 160] =
    b"Your verification code is 482913. It expires in 10 minutes. Do not share this co\
de with anyone, including our staff. Reply STOP to opt out of these messages. Th";

fn submit_sm() -> Pdu {
    Pdu::request(
        0x0001_2345,
        Body::SubmitSm(SubmitSm {
            source: Address::alphanumeric("Switchyard"),
            dest: Address::international("447700900123"),
            registered_delivery: 1,
            short_message: Bytes::from_static(BODY_160),
            ..SubmitSm::default()
        }),
    )
}

fn deliver_sm() -> Pdu {
    Pdu::request(
        0x0001_2346,
        Body::DeliverSm(SubmitSm {
            source: Address::international("447700900123"),
            dest: Address::alphanumeric("Switchyard"),
            esm_class: SubmitSm::ESM_CLASS_RECEIPT,
            short_message: Bytes::from_static(
                b"id:0a1b2c3d4e5f sub:001 dlvrd:001 submit date:2501011200 \
done date:2501011201 stat:DELIVRD err:000 text:Your verification",
            ),
            tlvs: Tlvs(vec![
                Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0a1b2c3d4e5f"),
                Tlv::u8(tag::MESSAGE_STATE, message_state::DELIVERED),
            ]),
            ..SubmitSm::default()
        }),
    )
}

/// Both codecs' inputs for one PDU.
struct Case {
    name: &'static str,
    ours: Pdu,
    frame: Bytes,
    theirs: Command,
}

fn case(name: &'static str, pdu: Pdu) -> Case {
    let mut b = BytesMut::new();
    encode(&pdu, &mut b).expect("valid PDU");
    let frame = b.freeze();
    let theirs = rusmpp_decode(BytesMut::from(&frame[4..]));
    let mut check = BytesMut::new();
    rusmpp_encode(&theirs, &mut check);
    assert_eq!(
        &check[..],
        &frame[..],
        "{name}: both codecs must produce the same octets"
    );
    // Both framing paths consume exactly one frame from a read buffer.
    let mut read = read_buffer(&frame, 2);
    ours_decode_next(&mut read, frame.len());
    assert_eq!(read.len(), frame.len(), "{name}: ours consumes one frame");
    rusmpp_decode_next(&mut read, frame.len());
    assert!(read.is_empty(), "{name}: rusmpp consumes one frame");
    Case {
        name,
        ours: pdu,
        frame,
        theirs,
    }
}

/// A read buffer holding `n` copies of `frame` back to back, as a socket read leaves it. Its
/// storage is already shared (split once), like a `Framed` read buffer after its first frame.
fn read_buffer(frame: &Bytes, n: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(frame.len() * (n + 1));
    buf.extend_from_slice(frame);
    drop(buf.split());
    for _ in 0..n {
        buf.extend_from_slice(frame);
    }
    buf
}

/// Ours, as `SmppCodec` does it: split the next frame off the read buffer, freeze it, decode.
fn ours_decode_next(read: &mut BytesMut, len: usize) -> Pdu {
    decode(read.split_to(len).freeze()).expect("decodes")
}

/// rusmpp, as its `CommandCodec` does it: read command_length, then decode the rest of the
/// command straight from the read buffer (its decoder splits the fields off it).
fn rusmpp_decode_next(read: &mut BytesMut, len: usize) -> Command {
    read.advance(4);
    let (c, _) = <Command as DecodeWithLength>::decode(read, len - 4).expect("rusmpp decodes");
    c
}

fn rusmpp_encode(c: &Command, dst: &mut BytesMut) {
    let len = 4 + c.length();
    dst.reserve(len);
    dst.put_u32(len as u32);
    c.encode(dst);
}

fn rusmpp_decode(mut body: BytesMut) -> Command {
    let len = body.len();
    let (c, _) = <Command as DecodeWithLength>::decode(&mut body, len).expect("rusmpp decodes");
    c
}

/// Encode into a reused buffer, then decode the frame the way the framing layer would.
fn ours_round_trip(pdu: &Pdu, buf: &mut BytesMut) -> Pdu {
    buf.clear();
    encode(pdu, buf).expect("valid PDU");
    let len = buf.len();
    ours_decode_next(buf, len)
}

fn rusmpp_round_trip(c: &Command, buf: &mut BytesMut) -> Command {
    buf.clear();
    rusmpp_encode(c, buf);
    let len = buf.len();
    rusmpp_decode_next(buf, len)
}

/// Frames decoded per read buffer: enough to amortise nothing but the buffer's allocation.
const FRAMES_PER_READ: usize = 1024;

/// Total time to decode `iters` frames with `next`, from read buffers of [`FRAMES_PER_READ`]
/// frames filled outside the timed region. Decoded PDUs are dropped inside it (a server drops
/// every PDU it decodes), for both codecs alike.
fn time_decodes<T>(
    frame: &Bytes,
    iters: u64,
    mut next: impl FnMut(&mut BytesMut, usize) -> T,
) -> Duration {
    let len = frame.len();
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(FRAMES_PER_READ as u64);
        let mut read = read_buffer(frame, n as usize);
        let start = Instant::now();
        for _ in 0..n {
            black_box(next(black_box(&mut read), len));
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn benches(c: &mut Criterion) {
    for case in [
        case("submit_sm", submit_sm()),
        case("deliver_sm", deliver_sm()),
    ] {
        let mut g = c.benchmark_group(case.name);
        g.bench_function("encode/ours", |b| {
            let mut buf = BytesMut::with_capacity(4096);
            b.iter(|| {
                buf.clear();
                encode(black_box(&case.ours), &mut buf).expect("valid PDU");
                black_box(buf.len())
            })
        });
        g.bench_function("encode/rusmpp", |b| {
            let mut buf = BytesMut::with_capacity(4096);
            b.iter(|| {
                buf.clear();
                rusmpp_encode(black_box(&case.theirs), &mut buf);
                black_box(buf.len())
            })
        });
        g.bench_function("decode/ours", |b| {
            b.iter_custom(|iters| time_decodes(&case.frame, iters, ours_decode_next))
        });
        g.bench_function("decode/rusmpp", |b| {
            b.iter_custom(|iters| time_decodes(&case.frame, iters, rusmpp_decode_next))
        });
        g.bench_function("encode+decode/ours", |b| {
            let mut buf = BytesMut::with_capacity(4096);
            b.iter(|| ours_round_trip(black_box(&case.ours), &mut buf))
        });
        g.bench_function("encode+decode/rusmpp", |b| {
            let mut buf = BytesMut::with_capacity(4096);
            b.iter(|| rusmpp_round_trip(black_box(&case.theirs), &mut buf))
        });
        g.finish();
    }
}

/// ns per call of `f`, over enough calls to take about 0.3 s.
fn time_ns<T>(mut f: impl FnMut() -> T) -> f64 {
    per_op_ns(|n| {
        let start = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        start.elapsed()
    })
}

/// ns per op of `run(n)` (which does `n` ops and reports their time), over about 0.3 s.
fn per_op_ns(mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut n = 1_000u64;
    loop {
        let elapsed = run(n);
        if elapsed.as_millis() >= 300 {
            return elapsed.as_nanos() as f64 / n as f64;
        }
        n *= 4;
    }
}

/// Prints ns/op for both codecs and the ratio rusmpp / ours (above 1: ours is faster).
fn ratios() {
    println!("\nSMPP codec, same run (ns/op; ratio = rusmpp / ours):");
    println!("{:<28} {:>10} {:>10} {:>7}", "", "ours", "rusmpp", "ratio");
    for case in [
        case("submit_sm", submit_sm()),
        case("deliver_sm", deliver_sm()),
    ] {
        let mut buf = BytesMut::with_capacity(4096);
        let enc_ours = time_ns(|| {
            buf.clear();
            encode(&case.ours, &mut buf).map(|()| buf.len())
        });
        let enc_theirs = time_ns(|| {
            buf.clear();
            rusmpp_encode(&case.theirs, &mut buf);
            buf.len()
        });
        let dec_ours = per_op_ns(|n| time_decodes(&case.frame, n, ours_decode_next));
        let dec_theirs = per_op_ns(|n| time_decodes(&case.frame, n, rusmpp_decode_next));
        let rt_ours = time_ns(|| ours_round_trip(&case.ours, &mut buf));
        let rt_theirs = time_ns(|| rusmpp_round_trip(&case.theirs, &mut buf));
        for (op, o, t) in [
            ("encode", enc_ours, enc_theirs),
            ("decode", dec_ours, dec_theirs),
            ("encode+decode", rt_ours, rt_theirs),
        ] {
            println!(
                "{:<28} {o:>10.1} {t:>10.1} {:>6.2}x",
                format!("{} {op}", case.name),
                t / o
            );
        }
        println!(
            "{:<28} {:>10.2} M decodes/s per core (ours), {:.2} M (rusmpp)",
            format!("{} decode rate", case.name),
            1e3 / dec_ours,
            1e3 / dec_theirs
        );
    }
}

/// `SMPP_CODEC_PROFILE=<submit_sm|deliver_sm>/<encode|decode|encode+decode>/<ours|rusmpp>/<n>`
/// runs just that operation `n` times and exits, without criterion: a fixed amount of work for
/// `valgrind --tool=callgrind` (instructions per op = (count(n) - count(0)) / n).
fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split('/').collect();
    let [name, op, codec, n] = parts[..] else {
        panic!("SMPP_CODEC_PROFILE: expected case/op/codec/n, got {spec:?}");
    };
    let n: u64 = n.parse().expect("SMPP_CODEC_PROFILE: n");
    let case = match name {
        "submit_sm" => case("submit_sm", submit_sm()),
        "deliver_sm" => case("deliver_sm", deliver_sm()),
        _ => panic!("SMPP_CODEC_PROFILE: unknown case {name:?}"),
    };
    let mut buf = BytesMut::with_capacity(4096);
    match (op, codec) {
        ("encode", "ours") => (0..n).for_each(|_| {
            buf.clear();
            encode(black_box(&case.ours), &mut buf).expect("valid PDU");
        }),
        ("encode", "rusmpp") => (0..n).for_each(|_| {
            buf.clear();
            rusmpp_encode(black_box(&case.theirs), &mut buf);
        }),
        ("decode", "ours") => drop(time_decodes(&case.frame, n, ours_decode_next)),
        ("decode", "rusmpp") => drop(time_decodes(&case.frame, n, rusmpp_decode_next)),
        ("encode+decode", "ours") => (0..n).for_each(|_| {
            black_box(ours_round_trip(black_box(&case.ours), &mut buf));
        }),
        ("encode+decode", "rusmpp") => (0..n).for_each(|_| {
            black_box(rusmpp_round_trip(black_box(&case.theirs), &mut buf));
        }),
        _ => panic!("SMPP_CODEC_PROFILE: unknown op/codec {op:?}/{codec:?}"),
    }
}

criterion_group!(smpp_codec, benches);

fn main() {
    if let Ok(spec) = std::env::var("SMPP_CODEC_PROFILE") {
        return profile(&spec);
    }
    smpp_codec();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
