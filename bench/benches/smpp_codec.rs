//! SMPP codec: ours against rusmpp 0.4, measured in the same run.
//!
//! Groups `submit_sm/{encode,decode,encode+decode}` and `deliver_sm/{…}`, each with `ours` and
//! `rusmpp`. The submit_sm carries a 160-character GSM body with typical addresses and
//! registered_delivery=1; the deliver_sm is a text delivery receipt with receipted_message_id and
//! message_state TLVs. Decoding starts, for both codecs, from what the framing layer hands over
//! (ours: the frame as `Bytes` split off the read buffer; rusmpp: the body in a `BytesMut`).
//! After criterion, a plain timing loop prints ns/op and the ratios rusmpp/ours.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{criterion_group, BatchSize, Criterion};
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
    Case {
        name,
        ours: pdu,
        frame,
        theirs,
    }
}

/// The frame as the framing layer hands it over: split off a read buffer.
fn framed(frame: &Bytes) -> Bytes {
    let mut buf = BytesMut::with_capacity(frame.len() * 2);
    buf.extend_from_slice(frame);
    buf.split_to(frame.len()).freeze()
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

fn ours_round_trip(pdu: &Pdu, buf: &mut BytesMut) -> Pdu {
    buf.clear();
    encode(pdu, buf).expect("valid PDU");
    decode(buf.split().freeze()).expect("decodes")
}

fn rusmpp_round_trip(c: &Command, buf: &mut BytesMut) -> Command {
    buf.clear();
    rusmpp_encode(c, buf);
    let mut body = buf.split();
    body.advance(4);
    let len = body.len();
    let (c, _) = <Command as DecodeWithLength>::decode(&mut body, len).expect("rusmpp decodes");
    c
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
            b.iter_batched(
                || framed(&case.frame),
                |f| decode(f).expect("decodes"),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("decode/rusmpp", |b| {
            b.iter_batched(
                || BytesMut::from(&case.frame[4..]),
                rusmpp_decode,
                BatchSize::SmallInput,
            )
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
    let mut n = 1_000u64;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        let elapsed = start.elapsed();
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
        // Decoding includes building the input (a Bytes clone for ours, a body copy for
        // rusmpp, whose decoder consumes its BytesMut); the criterion groups exclude it.
        let dec_ours = time_ns(|| decode(case.frame.clone()));
        let dec_theirs = time_ns(|| rusmpp_decode(BytesMut::from(&case.frame[4..])));
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

criterion_group!(smpp_codec, benches);

fn main() {
    smpp_codec();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
