//! SIP parsing: ours against `ezk-sip-types` 0.6, measured in the same run.
//!
//! Two messages a proxy sees on every call: an INVITE with an SDP body (14 headers, two Vias,
//! Record-Route) and its 200 OK. Like with like: each side parses the whole message from a
//! `Bytes` buffer and extracts what a stateful proxy reads from every message — method or
//! status, Call-ID, CSeq, every Via (count and top branch), From and To tags, body length.
//! ezk-sip-types has no whole-message entry point, so its side does what its own transport
//! does: pull lines, parse the start line, insert header lines, decode typed headers.
//!
//! After criterion, a plain timing loop prints ns/message, messages/s and the ratio
//! ezk/ours.
//!
//! `sip_forward`: what a proxy does to send them on, given the parsed message and its bytes:
//! the INVITE with a new Request-URI, Max-Forwards − 1, our Via and Record-Route; the 200 with
//! our Via off. Edited through the message's headers and re-encoded, against spliced from the
//! received bytes ([`switchyard_protocols::sip::splice`]); the plain loop prints both.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::{Headers, Name};
use switchyard_protocols::sip::splice::Splice;
use switchyard_protocols::sip::{HeaderName, Message, StartLine, Uri};

const INVITE: &str = "INVITE sip:+15555551234@trunk.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1---f2d6c1a0e4b3;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=192.0.2.10\r\n\
Record-Route: <sip:203.0.113.7;lr>\r\n\
Max-Forwards: 69\r\n\
To: <sip:+15555551234@trunk.example.com>\r\n\
From: \"Alice\" <sip:+15550001111@pbx.example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Supported: replaces, timer\r\n\
User-Agent: ExamplePBX 4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 213\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1---f2d6c1a0e4b3;rport=5060\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=192.0.2.10\r\n\
Record-Route: <sip:203.0.113.7;lr>\r\n\
To: <sip:+15555551234@trunk.example.com>;tag=8321234356\r\n\
From: \"Alice\" <sip:+15550001111@pbx.example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@198.51.100.20>\r\n\
Content-Length: 0\r\n\
\r\n";

/// What both sides extract.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    status_or_method: u32,
    call_id_len: usize,
    cseq: u32,
    vias: usize,
    branch_len: usize,
    tags: (usize, usize),
    body_len: usize,
}

fn ours(buf: Bytes) -> Option<Summary> {
    let m = Message::parse_datagram(buf).ok()?;
    let top = m.top_via().ok()?;
    Some(Summary {
        status_or_method: m.status().map_or(0, u32::from),
        call_id_len: m.call_id().ok()?.len(),
        cseq: m.cseq().ok()?.seq,
        vias: m.vias().filter(Result::is_ok).count(),
        branch_len: top.branch()?.len(),
        tags: (
            m.from().ok()?.tag().map_or(0, |t| t.len()),
            m.to().ok()?.tag().map_or(0, |t| t.len()),
        ),
        body_len: m.body.len(),
    })
}

fn ezk(src: Bytes) -> Option<Summary> {
    let mut parser = PullParser::new(&src, 0);
    let first = std::str::from_utf8(parser.next()?.ok()?).ok()?;
    let (_, line) = MessageLine::parse(&src)(first).ok()?;
    let mut headers = Headers::new();
    for l in parser.by_ref() {
        let l = std::str::from_utf8(l.ok()?).ok()?;
        let (_, line) = Line::parse(&src, l).ok()?;
        headers.insert(line.name, line.value);
    }
    let head_end = parser.head_end();
    let vias: Vec<Via> = headers.get_named().ok()?;
    let cseq: CSeq = headers.get_named().ok()?;
    let call_id: CallID = headers.get_named().ok()?;
    let from: FromTo = headers.get(Name::FROM).ok()?;
    let to: FromTo = headers.get(Name::TO).ok()?;
    let cl: usize = headers
        .get_raw(&Name::CONTENT_LENGTH)
        .next()?
        .trim()
        .parse()
        .ok()?;
    let body = src.slice(head_end..head_end + cl);
    Some(Summary {
        status_or_method: match line {
            MessageLine::Request(_) => 0,
            MessageLine::Response(s) => u32::from(s.code.into_u16()),
        },
        call_id_len: call_id.0.len(),
        cseq: cseq.cseq,
        vias: vias.len(),
        branch_len: vias.first()?.params.get_val("branch")?.len(),
        tags: (
            from.tag.map_or(0, |t| t.len()),
            to.tag.map_or(0, |t| t.len()),
        ),
        body_len: body.len(),
    })
}

fn cases() -> [(&'static str, Bytes); 2] {
    [
        ("invite_sdp", Bytes::from_static(INVITE.as_bytes())),
        ("200_ok", Bytes::from_static(OK.as_bytes())),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, buf) in cases() {
        let a = ours(buf.clone()).expect("ours parses");
        let b = ezk(buf.clone()).expect("ezk parses");
        assert_eq!(a, b, "{name}: parsers disagree");
        let mut g = c.benchmark_group(format!("sip_parse/{name}"));
        g.bench_function("ours", |bn| bn.iter(|| ours(black_box(buf.clone()))));
        g.bench_function("ezk-sip-types", |bn| {
            bn.iter(|| ezk(black_box(buf.clone())))
        });
        g.finish();
    }
}

fn ns_per_op<T>(f: impl Fn() -> T) -> f64 {
    let mut n = 1_000u32;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        let took = start.elapsed();
        if took > Duration::from_millis(500) {
            return took.as_nanos() as f64 / f64::from(n);
        }
        n *= 4;
    }
}

fn summary() {
    println!("\nSIP parse, ns/message (messages/s), ratio ezk-sip-types/ours:");
    for (name, buf) in cases() {
        let o = ns_per_op(|| ours(black_box(buf.clone())));
        let e = ns_per_op(|| ezk(black_box(buf.clone())));
        println!(
            "  {name:<11} ours {o:>7.0} ns ({:>9.0}/s)  ezk-sip-types {e:>7.0} ns ({:>9.0}/s)  ratio {:.2}x",
            1e9 / o,
            1e9 / e,
            e / o
        );
    }
}

const NEW_URI: &str = "sip:+15555551234@198.51.100.20:5060;user=phone";
const OUR_VIA: &str =
    "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK0123456789abcdef0123456789abcdef;rport";
const OUR_RR: &str = "<sip:203.0.113.9:5060;lr>";

/// The forward made by editing a copy of the parsed message and encoding it.
fn edit_and_encode(msg: &Message) -> Bytes {
    let mut m = msg.clone();
    if let StartLine::Request(line) = &mut m.start {
        line.uri = Uri::from_str_copy(NEW_URI).expect("uri");
        let hops = m.max_forwards().ok().flatten().unwrap_or(71) - 1;
        m.headers.set(HeaderName::MaxForwards, hops.to_string());
        m.headers.push_front(HeaderName::Via, OUR_VIA);
        m.headers.push_front(HeaderName::RecordRoute, OUR_RR);
    } else {
        m.headers.remove_first(&HeaderName::Via);
    }
    m.to_bytes()
}

/// The same forward spliced from the received bytes.
fn splice(raw: &Bytes, msg: &Message) -> Bytes {
    let mut s = Splice::new(raw, msg).expect("spliceable");
    if msg.is_request() {
        s.set_request_uri(NEW_URI.as_bytes());
        let hops = msg.max_forwards().ok().flatten().unwrap_or(71) - 1;
        s.set_max_forwards(hops);
        s.push_front(HeaderName::Via, OUR_VIA.as_bytes());
        s.push_front(HeaderName::RecordRoute, OUR_RR.as_bytes());
    } else {
        s.remove_first(&HeaderName::Via);
    }
    s.finish()
}

fn bench_forward(c: &mut Criterion) {
    for (name, buf) in cases() {
        let msg = Message::parse_datagram(buf.clone()).expect("parses");
        let a = Message::parse_datagram(edit_and_encode(&msg)).expect("edited parses");
        let b = Message::parse_datagram(splice(&buf, &msg)).expect("spliced parses");
        assert_eq!(a, b, "{name}: the forwards differ");
        let mut g = c.benchmark_group(format!("sip_forward/{name}"));
        g.bench_function("edit_and_encode", |bn| {
            bn.iter(|| edit_and_encode(black_box(&msg)))
        });
        g.bench_function("splice", |bn| bn.iter(|| splice(black_box(&buf), &msg)));
        g.finish();
    }
}

fn forward_summary() {
    println!("\nSIP forward, ns/message, ratio edit-and-encode/splice:");
    for (name, buf) in cases() {
        let msg = Message::parse_datagram(buf.clone()).expect("parses");
        let e = ns_per_op(|| edit_and_encode(black_box(&msg)));
        let s = ns_per_op(|| splice(black_box(&buf), &msg));
        println!(
            "  {name:<11} edit and encode {e:>6.0} ns  splice {s:>6.0} ns  ratio {:.2}x",
            e / s
        );
    }
}

criterion_group!(benches, bench, bench_forward);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
    forward_summary();
}
