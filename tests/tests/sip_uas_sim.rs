//! `sip-uas-sim` end to end: the simulator as a real process on 127.0.0.1, driven by a tiny
//! UAC written with `switchyard_protocols::sip` over a blocking UDP socket (no retransmissions
//! needed on loopback), and by SIPp's built-in UAC scenario for interop. Every wait is
//! bounded: socket reads time out after 5 s, SIPp runs are killed after 60 s.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::dtmf::TelephoneEvent;
use switchyard_protocols::sip::rtp::{Packetizer, RtpPacket};
use switchyard_protocols::sip::sdp::SessionDescription;
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};
use switchyard_tests::gateway::TempDir;
use switchyard_tests::sipp;
use switchyard_tests::{binary, http_get, http_request, Process};

/// How long any single network read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

fn sim(args: &[&str]) -> Process {
    let path = binary("switchyard-bench", "sip-uas-sim").unwrap();
    let mut all = vec!["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Process::start(&path, &all, 2).unwrap()
}

fn stats(p: &Process) -> serde_json::Value {
    serde_json::from_str(&http_get(&p.address("control").unwrap(), "/stats").unwrap()).unwrap()
}

/// Polls `/stats` until `done` holds (at most 5 s) and returns the last snapshot.
fn stats_until(p: &Process, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let s = stats(p);
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal SIP UAC: builds requests with [`RequestBuilder`], parses what comes back.
struct Uac {
    /// Our SIP socket.
    sock: UdpSocket,
    /// The simulator's SIP address.
    sim: SocketAddr,
    /// Our RTP socket (its port goes in the SDP offer).
    rtp: UdpSocket,
    /// Branch entropy: every request gets a new branch.
    next_branch: std::cell::Cell<u64>,
}

impl Uac {
    fn new(sim: &Process) -> Uac {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Uac {
            sock,
            sim: sim.address("listening").unwrap().parse().unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            next_branch: std::cell::Cell::new(1),
        }
    }

    fn local(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// A request to `sip:1000@sim` in dialog `call_id` (with `to_tag` once established).
    fn request(&self, method: Method, call_id: &str, to_tag: Option<&str>, seq: u32) -> Message {
        self.next_branch.set(self.next_branch.get() + 1);
        let to = match to_tag {
            Some(t) => format!("<sip:1000@{}>;tag={t}", self.sim),
            None => format!("<sip:1000@{}>", self.sim),
        };
        let uri = Uri::from_str_copy(&format!("sip:1000@{}", self.sim)).unwrap();
        let b = RequestBuilder::new(method.clone(), uri)
            .via("UDP", &self.local(), &branch(self.next_branch.get()))
            .header(HeaderName::From, "<sip:uac@127.0.0.1>;tag=uac1")
            .header(HeaderName::To, to)
            .header(HeaderName::CallId, call_id.to_owned())
            .header(HeaderName::CSeq, format!("{seq} {method}"))
            .header(HeaderName::Contact, format!("<sip:uac@{}>", self.local()));
        if method == Method::Invite {
            let port = self.rtp.local_addr().unwrap().port();
            let offer = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                 a=fmtp:101 0-15\r\n"
            );
            b.body("application/sdp", offer).build().unwrap()
        } else {
            b.build().unwrap()
        }
    }

    fn send(&self, m: &Message) {
        self.sock.send_to(&m.to_bytes(), self.sim).unwrap();
    }

    fn send_raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.sim).unwrap();
    }

    /// The next message, or a panic after [`READ_TIMEOUT`].
    fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("no SIP message within 5 s");
        Message::parse_datagram(Bytes::copy_from_slice(&buf[..n])).unwrap()
    }

    /// Responses up to and including the first final one.
    fn until_final(&self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = self.recv();
            let code = m.status().expect("a response");
            out.push(m);
            if code >= 200 {
                return out;
            }
        }
    }
}

fn codes(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().filter_map(Message::status).collect()
}

fn tag_of(m: &Message) -> String {
    String::from_utf8(m.to().unwrap().tag().unwrap().to_vec()).unwrap()
}

#[test]
fn basic_call_with_rtp_and_dtmf_then_bye() {
    let p = sim(&[]);
    let uac = Uac::new(&p);
    let invite = uac.request(Method::Invite, "call-basic", None, 1);
    uac.send(&invite);
    let responses = uac.until_final();
    assert_eq!(codes(&responses), [100, 180, 200]);
    let ok = responses.last().unwrap();
    let answer = SessionDescription::parse(&ok.sdp_body().expect("SDP in the 200")).unwrap();
    let (m, c) = answer.audio().unwrap();
    assert_eq!(
        m.formats.first().map(String::as_str),
        Some("0"),
        "PCMU, our first choice"
    );
    let media: SocketAddr = format!("{}:{}", c.unwrap().address, m.port)
        .parse()
        .unwrap();
    let tag = tag_of(ok);
    uac.send(&uac.request(Method::Ack, "call-basic", Some(&tag), 1));

    // 50 frames of PCMU, then the digit 7 as an RFC 4733 event (three end packets).
    let mut voice = Packetizer::g711_20ms(0x1234, 0, 100, 1000);
    for _ in 0..50 {
        let pkt = voice.packet(Bytes::from(vec![0xFFu8; 160]));
        uac.rtp.send_to(&pkt.to_bytes(), media).unwrap();
    }
    let mut event = RtpPacket {
        payload_type: 101,
        ..voice.packet(Bytes::new())
    };
    for _ in 0..3 {
        let ev = TelephoneEvent {
            event: 7,
            end: true,
            volume: 10,
            duration: 800,
        };
        event.payload = Bytes::copy_from_slice(&ev.encode());
        let mut out = BytesMut::new();
        event.encode(&mut out);
        uac.rtp.send_to(&out, media).unwrap();
    }
    let s = stats_until(&p, |s| s["rtp_packets"] == 53);
    assert_eq!(s["rtp_packets"], 53, "{s}");
    assert_eq!(s["rtp_bytes"], 50 * 160 + 3 * 4);
    assert_eq!(s["dtmf_digits"], 1);
    assert_eq!(s["calls"]["call-basic"]["digits"], "7");

    uac.send(&uac.request(Method::Bye, "call-basic", Some(&tag), 2));
    assert_eq!(codes(&uac.until_final()), [200]);
    let s = stats(&p);
    for (k, v) in [
        ("invites", 1),
        ("answered", 1),
        ("acks", 1),
        ("byes_received", 1),
        ("active_calls", 0),
    ] {
        assert_eq!(s[k], v, "{k} in {s}");
    }
}

#[test]
fn busy_486_from_put_behaviour() {
    let p = sim(&[]);
    let control = p.address("control").unwrap();
    http_request(&control, "PUT", "/behaviour", Some(r#"{"final_code":486}"#)).unwrap();
    assert!(http_request(&control, "PUT", "/behaviour", Some(r#"{"final_code":100}"#)).is_err());
    let uac = Uac::new(&p);
    let invite = uac.request(Method::Invite, "call-busy", None, 1);
    uac.send(&invite);
    let responses = uac.until_final();
    assert_eq!(codes(&responses), [100, 180, 486]);
    uac.send(&invite.ack_for(responses.last().unwrap()).unwrap());
    let s = stats(&p);
    assert_eq!(
        (s["invites"].as_u64(), s["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
}

#[test]
fn unavailable_503_with_retry_after() {
    let p = sim(&["--code", "503", "--retry-after", "60", "--no-ring"]);
    let uac = Uac::new(&p);
    let invite = uac.request(Method::Invite, "call-503", None, 1);
    uac.send(&invite);
    let responses = uac.until_final();
    assert_eq!(codes(&responses), [100, 503]);
    let last = responses.last().unwrap();
    assert_eq!(last.retry_after().unwrap().unwrap().seconds, 60);
    uac.send(&invite.ack_for(last).unwrap());
}

#[test]
fn cancel_during_ringing_gives_200_and_487() {
    let p = sim(&["--final-delay-ms", "20000", "--provisional-delay-ms", "50"]);
    let uac = Uac::new(&p);
    let invite = uac.request(Method::Invite, "call-cancel", None, 1);
    uac.send(&invite);
    assert_eq!(codes(&[uac.recv(), uac.recv()]), [100, 180]);
    uac.send(&invite.cancel().unwrap());
    let mut got: Vec<(Option<Method>, u16)> = (0..2)
        .map(|_| uac.recv())
        .map(|m| (m.method(), m.status().unwrap()))
        .collect();
    got.sort_by_key(|g| g.1);
    assert_eq!(
        got,
        [(Some(Method::Cancel), 200), (Some(Method::Invite), 487)]
    );
    let s = stats(&p);
    assert_eq!(
        (s["cancels"].as_u64(), s["cancelled"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["active_calls"], 0);
}

#[test]
fn options_gets_200() {
    let p = sim(&[]);
    let uac = Uac::new(&p);
    uac.send(&uac.request(Method::Options, "opt-1", None, 1));
    let r = uac.recv();
    assert_eq!(r.status(), Some(200));
    assert!(r.headers.get(&HeaderName::Allow).is_some());
    assert_eq!(stats(&p)["options"], 1);
}

#[test]
fn garbage_is_counted_and_malformed_requests_get_400() {
    let p = sim(&[]);
    let uac = Uac::new(&p);
    uac.send_raw(b"\x00\xffnot sip at all");
    let bad = format!(
        "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKbad\r\n\
         From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: bad-1\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        uac.local()
    );
    uac.send_raw(bad.as_bytes());
    let r = uac.recv();
    assert_eq!(r.status(), Some(400));
    if let switchyard_protocols::sip::StartLine::Response(s) = &r.start {
        assert!(s.reason.starts_with(b"Bad Request (CSeq"), "{:?}", s.reason);
    }
    // Still serving.
    uac.send(&uac.request(Method::Options, "opt-2", None, 1));
    assert_eq!(uac.recv().status(), Some(200));
    let s = stats(&p);
    assert_eq!(
        (s["malformed"].as_u64(), s["malformed_answered"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
}

#[test]
fn sipp_uac_completes_20_calls() {
    let p = sim(&[]);
    let dir = TempDir::new("sipp-uac").unwrap();
    let started = Instant::now();
    let (code, out) = sipp::run_uac(&p.address("listening").unwrap(), None, 20, &dir.path);
    let took = started.elapsed();
    assert_eq!(code, 0, "sipp reported failed calls:\n{out}");
    let s = stats_until(&p, |s| s["byes_received"] == 20);
    for (k, v) in [
        ("invites", 20),
        ("answered", 20),
        ("acks", 20),
        ("byes_received", 20),
        ("active_calls", 0),
        ("malformed", 0),
    ] {
        assert_eq!(s[k], v, "{k} in {s}");
    }
    eprintln!("sipp: 20 calls at 10 cps in {took:?}");
}

#[test]
fn sipp_uac_reports_busy_as_failed_calls() {
    let p = sim(&["--code", "486"]);
    let dir = TempDir::new("sipp-busy").unwrap();
    let (code, out) = sipp::run_uac(&p.address("listening").unwrap(), None, 5, &dir.path);
    assert_ne!(code, 0, "sipp should count 486 as failed:\n{out}");
    let s = stats_until(&p, |s| s["rejected"] == 5);
    assert_eq!(
        (s["invites"].as_u64(), s["rejected"].as_u64()),
        (Some(5), Some(5)),
        "{s}"
    );
    assert_eq!(s["active_calls"], 0);
}
