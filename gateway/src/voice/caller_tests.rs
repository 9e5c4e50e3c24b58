//! The caller in virtual time: no sockets, no sleeping. Trunks and the callee's media are
//! plain addresses; each test feeds the machine what the endpoint, the RTP socket and the
//! driver would report, with a made-up `now`, and reads the actions it queues.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::dtmf::TelephoneEvent;
use switchyard_protocols::sip::rtp::RtpPacket;
use switchyard_protocols::sip::{HeaderName, Message, Method};
use switchyard_routing::{Billing, FailureClass, NumberRewrite, Outcome, Price, VoiceTerms, E164};

use super::*;
use crate::sip::peer::Peer;
use crate::voice::{CallOutcome, DtmfCapture};

const ME: &str = "127.0.0.1:5062";
const RTP: &str = "127.0.0.1:40000";
const A: &str = "127.0.0.1:6001";
const B: &str = "127.0.0.1:6002";
/// Where the callee's SDP answer says its media is.
const MEDIA: &str = "127.0.0.1:30000";

const TRUNK_TIMEOUT: Duration = Duration::from_millis(1500);
const RING_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_DURATION: Duration = Duration::from_secs(60);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Breakers that admit every carrier but those named.
struct Open(HashSet<&'static str>);

impl Open {
    fn all() -> Self {
        Open(HashSet::new())
    }
}

impl Breakers for Open {
    fn admits(&self, carrier: &str, _now: Instant) -> bool {
        !self.0.contains(carrier)
    }
}

/// Carrier `name` at `at`, 0.0100 EUR a minute billed 6/6, no markup.
fn trunk(name: &str, at: &str) -> Candidate {
    Candidate {
        name: name.into(),
        trunk: Trunk {
            peer: Peer::udp(addr(at)),
            host: "127.0.0.1".into(),
            rewrite: NumberRewrite::default(),
            credentials: None,
            tls: None,
        },
        rate: Some((
            Price::parse("0.0100").unwrap(),
            "EUR".into(),
            VoiceTerms {
                connection_fee: Price::parse("0").unwrap(),
                billing: Billing::parse("6/6").unwrap(),
            },
        )),
        markup: Price::parse("1").unwrap(),
    }
}

/// Trunks `a` (at [`A`]) and `b` (at [`B`]), in that order.
fn two_trunks() -> Vec<Candidate> {
    vec![trunk("a", A), trunk("b", B)]
}

fn plan(dtmf: Option<DtmfCapture>) -> CallPlan {
    CallPlan {
        me: addr(ME),
        rtp: addr(RTP),
        to: E164::parse("+447400123456").unwrap(),
        from: "+15550001111".into(),
        dtmf,
        max_duration: MAX_DURATION,
        trunk_timeout: TRUNK_TIMEOUT,
        ring_timeout: RING_TIMEOUT,
    }
}

/// Everything queued since the last call.
fn actions(c: &mut Caller<'_>) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The requests sent in a transaction, with their destinations.
fn requests(acts: &[Action]) -> Vec<(Method, SocketAddr, Message)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Request { message, to } => Some((message.method()?, *to, message.clone())),
            _ => None,
        })
        .collect()
}

/// The one request with `method` sent to `to`.
fn request(acts: &[Action], method: Method, to: &str) -> Message {
    requests(acts)
        .into_iter()
        .find(|(m, d, _)| *m == method && *d == addr(to))
        .map(|(_, _, r)| r)
        .unwrap_or_else(|| panic!("no {method} to {to} in {acts:#?}"))
}

fn methods(acts: &[Action]) -> Vec<Method> {
    requests(acts).into_iter().map(|(m, _, _)| m).collect()
}

/// ACKs sent (statelessly) to `to`.
fn acks(acts: &[Action], to: &str) -> Vec<Message> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Stateless { message, to: d }
                if *d == addr(to) && message.method() == Some(Method::Ack) =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .collect()
}

/// Health records, by carrier name.
fn records(acts: &[Action]) -> Vec<(String, Outcome)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Record {
                carrier, outcome, ..
            } => Some((carrier.clone(), *outcome)),
            _ => None,
        })
        .collect()
}

fn failure(carrier: &str, class: FailureClass) -> (String, Outcome) {
    (carrier.to_owned(), Outcome::Failure(class))
}

/// Whether the carrier's record is a success.
fn succeeded(recs: &[(String, Outcome)], carrier: &str) -> bool {
    recs.iter()
        .any(|(c, o)| c == carrier && matches!(o, Outcome::Success { .. }))
}

fn finished(acts: &[Action]) -> Option<CallOutcome> {
    acts.iter().find_map(|a| match a {
        Action::Finished(out) => Some((**out).clone()),
        _ => None,
    })
}

/// The outcome, which must be among `acts`.
fn outcome(acts: &[Action]) -> CallOutcome {
    finished(acts).unwrap_or_else(|| panic!("the call is not over: {acts:#?}"))
}

fn tried(out: &CallOutcome) -> Vec<(&str, u16)> {
    out.tried
        .iter()
        .map(|t| (t.carrier.as_str(), t.code))
        .collect()
}

/// The SDP answer of a callee at [`MEDIA`] taking PCMU and telephone-event 101.
const ANSWER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                          t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                          a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

/// The trunk's response to `req`, as the endpoint hands it over (through the wire format).
fn response(req: &Message, code: u16, extra: &[(&str, &str)], sdp: Option<&str>) -> Message {
    let mut r = req.response(code, "X", Some("callee"));
    for (k, v) in extra {
        r.headers.push(
            HeaderName::from_bytes(Bytes::copy_from_slice(k.as_bytes())),
            v.to_string(),
        );
    }
    if let Some(sdp) = sdp {
        r.headers.set(HeaderName::ContentType, "application/sdp");
        r.body = Bytes::copy_from_slice(sdp.as_bytes());
    }
    r.headers
        .set(HeaderName::ContentLength, r.body.len().to_string());
    Message::parse_datagram(r.to_bytes()).unwrap()
}

fn reply(req: &Message, code: u16) -> CallEvent {
    CallEvent::Response(response(req, code, &[], None))
}

/// A 200 OK to `invite` with a Contact and the usable [`ANSWER_SDP`].
fn ok(invite: &Message) -> CallEvent {
    CallEvent::Response(ok_message(invite))
}

fn ok_message(invite: &Message) -> Message {
    response(
        invite,
        200,
        &[("Contact", "<sip:callee@127.0.0.1:6001>")],
        Some(ANSWER_SDP),
    )
}

/// The INVITE the caller queued at creation, to `to`.
fn first_invite(c: &mut Caller<'_>, to: &str) -> Message {
    let acts = actions(c);
    assert!(
        matches!(acts.first(), Some(Action::Listen(_))),
        "listen before sending: {acts:#?}"
    );
    request(&acts, Method::Invite, to)
}

/// A call answered by trunk `a` at `t0 + 1 s`; returns the INVITE and the actions of the
/// answer.
fn answered(c: &mut Caller<'_>, t0: Instant) -> (Message, Vec<Action>) {
    let inv = first_invite(c, A);
    c.handle_event(reply(&inv, 180), t0 + ms(200));
    c.handle_event(ok(&inv), t0 + ms(1000));
    (inv, actions(c))
}

/// The driver reports the last audio packet sent at `at`.
fn audio_played(c: &mut Caller<'_>, at: Instant) -> Vec<Action> {
    c.handle_audio_played(at);
    actions(c)
}

/// An RFC 4733 end packet for `key`'s event at `timestamp` in stream `ssrc`.
fn dtmf(event: u8, timestamp: u32, ssrc: u32) -> Bytes {
    let payload = TelephoneEvent {
        event,
        end: true,
        volume: 10,
        duration: 800,
    }
    .encode();
    RtpPacket {
        marker: false,
        payload_type: 101,
        sequence: 1,
        timestamp,
        ssrc,
        csrc: Vec::new(),
        extension: None,
        padding: 0,
        payload: Bytes::copy_from_slice(&payload),
    }
    .to_bytes()
}

// ---- the answered call ------------------------------------------------------------------

#[test]
fn an_answered_call_is_acked_played_and_hung_up_with_a_bye() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let (inv, acts) = answered(&mut c, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + ms(1000) + MAX_DURATION));
    let ack = acks(&acts, A);
    assert_eq!(ack.len(), 1, "{acts:#?}");
    assert_eq!(ack[0].cseq().unwrap().seq, 1);
    assert_eq!(
        ack[0].request_uri().unwrap().as_bytes().as_ref(),
        b"sip:callee@127.0.0.1:6001",
        "ACK to the 2xx's Contact"
    );
    let play = acts
        .iter()
        .find_map(|a| match a {
            Action::Play { remote, codec } => Some((*remote, *codec)),
            _ => None,
        })
        .unwrap();
    assert_eq!(play, (addr(MEDIA), sdp::Codec::Pcmu));
    assert_eq!(records(&acts).len(), 1);
    assert!(succeeded(&records(&acts), "a"));
    assert!(
        !c.wants_rtp(),
        "no digits asked for: the RTP socket is not read"
    );
    // 5 s of audio; then one packet time for the last frame, then BYE.
    let played = t0 + ms(6000);
    assert!(audio_played(&mut c, played).is_empty());
    assert_eq!(c.poll_timeout(), Some(played + PTIME));
    c.handle_timeout(played + ms(19));
    assert!(actions(&mut c).is_empty());
    c.handle_timeout(played + PTIME);
    let acts = actions(&mut c);
    let bye = request(&acts, Method::Bye, A);
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(bye.call_id().unwrap(), inv.call_id().unwrap());
    assert!(finished(&acts).is_none(), "the BYE's answer is awaited");
    assert!(
        !acts.iter().any(|a| matches!(a, Action::StopPlaying)),
        "the audio had ended"
    );
    c.handle_event(reply(&bye, 200), played + ms(100));
    let acts = actions(&mut c);
    assert!(matches!(acts.first(), Some(Action::Forget(_))), "{acts:#?}");
    let out = outcome(&acts);
    assert!(c.is_done());
    assert!(out.answered);
    assert_eq!(out.error, None);
    assert_eq!(out.sip_code, Some(200));
    assert_eq!(out.trunk.as_deref(), Some("a"));
    assert_eq!(tried(&out), [("a", 200)]);
    assert_eq!(out.codec.as_deref(), Some("PCMU"));
    assert_eq!(out.setup_ms, Some(1000));
    assert_eq!(out.ring_s, Some(0.8));
    assert_eq!(out.talk_s, Some(5.02));
    assert_eq!(out.hangup_by.as_deref(), Some("switchyard"));
    assert_eq!(out.hangup_reason.as_deref(), Some("completed"));
    assert_eq!(out.digits, None);
    // 6 s at 0.01 a minute, billed 6/6.
    assert_eq!(out.billed_s, Some(6));
    assert_eq!(out.cost.as_deref(), Some("0.0010"));
    assert_eq!(out.currency.as_deref(), Some("EUR"));
}

#[test]
fn an_unanswered_bye_is_given_up_after_the_close_wait() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    answered(&mut c, t0);
    audio_played(&mut c, t0 + ms(2000));
    c.handle_timeout(t0 + ms(2020));
    let acts = actions(&mut c);
    request(&acts, Method::Bye, A);
    assert_eq!(c.poll_timeout(), Some(t0 + ms(2020) + CLOSE_WAIT));
    c.handle_timeout(t0 + ms(2020) + CLOSE_WAIT);
    let out = outcome(&actions(&mut c));
    assert_eq!(out.hangup_reason.as_deref(), Some("completed"));
    assert_eq!(out.talk_s, Some(1.02), "talk time ends when we hang up");
}

#[test]
fn a_retransmitted_200_is_acked_again() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let (inv, acts) = answered(&mut c, t0);
    let first = acks(&acts, A);
    // After the INVITE transaction ended, as a stray …
    c.handle_event(CallEvent::Retransmitted2xx, t0 + ms(1500));
    let again = acks(&actions(&mut c), A);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].to_bytes(), first[0].to_bytes(), "the same ACK");
    // … or still within it.
    c.handle_event(ok(&inv), t0 + ms(2000));
    assert_eq!(acks(&actions(&mut c), A).len(), 1);
    assert!(!c.is_done());
}

#[test]
fn the_callees_bye_ends_the_call_without_ours() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    answered(&mut c, t0);
    c.handle_event(CallEvent::Bye, t0 + ms(3500));
    let acts = actions(&mut c);
    assert!(
        matches!(acts.first(), Some(Action::StopPlaying)),
        "{acts:#?}"
    );
    assert!(methods(&acts).is_empty(), "{acts:#?}");
    let out = outcome(&acts);
    assert!(out.answered);
    assert_eq!(out.hangup_by.as_deref(), Some("callee"));
    assert_eq!(out.hangup_reason.as_deref(), Some("callee"));
    assert_eq!(out.talk_s, Some(2.5));
}

#[test]
fn max_duration_cuts_the_audio_short() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut p = plan(None);
    p.max_duration = Duration::from_secs(1);
    let mut c = Caller::new(p, two_trunks(), &open, t0);
    answered(&mut c, t0);
    c.handle_timeout(t0 + ms(2000));
    let acts = actions(&mut c);
    assert!(
        matches!(acts.first(), Some(Action::StopPlaying)),
        "{acts:#?}"
    );
    let bye = request(&acts, Method::Bye, A);
    c.handle_event(reply(&bye, 200), t0 + ms(2010));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.hangup_reason.as_deref(), Some("max_duration"));
    assert_eq!(out.talk_s, Some(1.0));
}

#[test]
fn an_answer_without_usable_sdp_is_acked_and_hung_up_as_a_media_error() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let inv = first_invite(&mut c, A);
    // Only a codec we do not speak.
    let sdp = ANSWER_SDP
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    let r = response(&inv, 200, &[], Some(&sdp));
    c.handle_event(CallEvent::Response(r), t0 + ms(500));
    let acts = actions(&mut c);
    assert_eq!(acks(&acts, A).len(), 1);
    assert!(!acts.iter().any(|a| matches!(a, Action::Play { .. })));
    let bye = request(&acts, Method::Bye, A);
    c.handle_event(reply(&bye, 200), t0 + ms(600));
    let out = outcome(&actions(&mut c));
    assert!(out.answered);
    assert_eq!(out.error.as_deref(), Some("media_error"));
    assert_eq!(out.hangup_reason.as_deref(), Some("media_error"));
    assert_eq!(out.hangup_by.as_deref(), Some("switchyard"));
    assert_eq!(out.codec, None);

    // No SDP at all: the same.
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let inv = first_invite(&mut c, A);
    c.handle_event(reply(&inv, 200), t0 + ms(500));
    let acts = actions(&mut c);
    assert_eq!(acks(&acts, A).len(), 1);
    request(&acts, Method::Bye, A);
}

// ---- digits ------------------------------------------------------------------------------

#[test]
fn digits_are_collected_up_to_max_digits() {
    let t0 = Instant::now();
    let open = Open::all();
    let capture = DtmfCapture {
        max_digits: 2,
        timeout_s: 5,
    };
    let mut c = Caller::new(plan(Some(capture)), two_trunks(), &open, t0);
    answered(&mut c, t0);
    assert!(c.wants_rtp());
    let media = addr(MEDIA);
    c.handle_rtp(media, dtmf(1, 1000, 0xCAFE), t0 + ms(1500));
    // The redundant end packets of the same event count once.
    c.handle_rtp(media, dtmf(1, 1000, 0xCAFE), t0 + ms(1510));
    c.handle_rtp(media, dtmf(1, 1000, 0xCAFE), t0 + ms(1520));
    assert!(actions(&mut c).is_empty());
    c.handle_rtp(media, dtmf(11, 2000, 0xCAFE), t0 + ms(2000));
    let acts = actions(&mut c);
    assert!(
        matches!(acts.first(), Some(Action::StopPlaying)),
        "{acts:#?}"
    );
    let bye = request(&acts, Method::Bye, A);
    assert!(!c.wants_rtp());
    c.handle_event(reply(&bye, 200), t0 + ms(2050));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.digits.as_deref(), Some("1#"));
    assert_eq!(out.hangup_reason.as_deref(), Some("digits"));
}

#[test]
fn the_digit_wait_ends_the_call_with_the_digits_so_far() {
    let t0 = Instant::now();
    let open = Open::all();
    let capture = DtmfCapture {
        max_digits: 4,
        timeout_s: 5,
    };
    let mut c = Caller::new(plan(Some(capture)), two_trunks(), &open, t0);
    answered(&mut c, t0);
    c.handle_rtp(addr(MEDIA), dtmf(7, 1000, 1), t0 + ms(1500));
    let played = t0 + ms(3000);
    audio_played(&mut c, played);
    assert_eq!(c.poll_timeout(), Some(played + Duration::from_secs(5)));
    c.handle_timeout(played + ms(4999));
    assert!(actions(&mut c).is_empty());
    c.handle_rtp(addr(MEDIA), dtmf(3, 2000, 1), played + ms(4000));
    c.handle_timeout(played + Duration::from_secs(5));
    let acts = actions(&mut c);
    let bye = request(&acts, Method::Bye, A);
    c.handle_event(reply(&bye, 200), played + ms(5100));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.digits.as_deref(), Some("73"));
    assert_eq!(out.hangup_reason.as_deref(), Some("completed"));

    // Nobody pressed anything: the digits are there, empty.
    let mut c = Caller::new(plan(Some(capture)), two_trunks(), &open, t0);
    answered(&mut c, t0);
    audio_played(&mut c, played);
    c.handle_timeout(played + Duration::from_secs(5));
    let bye = request(&actions(&mut c), Method::Bye, A);
    c.handle_event(reply(&bye, 200), played + ms(5100));
    assert_eq!(outcome(&actions(&mut c)).digits.as_deref(), Some(""));
}

#[test]
fn digits_count_only_from_the_callees_stream() {
    let t0 = Instant::now();
    let open = Open::all();
    let capture = DtmfCapture {
        max_digits: 1,
        timeout_s: 5,
    };
    let mut c = Caller::new(plan(Some(capture)), two_trunks(), &open, t0);
    answered(&mut c, t0);
    // Another host, and another port of the callee's host, press keys: ignored.
    c.handle_rtp(addr("198.51.100.7:30000"), dtmf(1, 10, 7), t0 + ms(1100));
    c.handle_rtp(addr("127.0.0.1:30002"), dtmf(1, 20, 7), t0 + ms(1200));
    // The callee's own stream (its first packet latches the SSRC) …
    c.handle_rtp(
        addr(MEDIA),
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 0,
            ssrc: 0xCAFE,
            csrc: Vec::new(),
            extension: None,
            padding: 0,
            payload: Bytes::from_static(&[0xFF; 160]),
        }
        .to_bytes(),
        t0 + ms(1300),
    );
    // … so a spoofed stream from its address is ignored too; garbage is ignored.
    c.handle_rtp(addr(MEDIA), dtmf(1, 30, 7), t0 + ms(1400));
    c.handle_rtp(addr(MEDIA), Bytes::from_static(b"\x80"), t0 + ms(1450));
    assert!(actions(&mut c).is_empty());
    assert_eq!(c.refused_rtp(), 3);
    c.handle_rtp(addr(MEDIA), dtmf(9, 40, 0xCAFE), t0 + ms(1500));
    let bye = request(&actions(&mut c), Method::Bye, A);
    c.handle_event(reply(&bye, 200), t0 + ms(1600));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.digits.as_deref(), Some("9"));
    assert_eq!(c.refused_rtp(), 3);
}

// ---- trunks ------------------------------------------------------------------------------

#[test]
fn a_503_on_the_first_trunk_fails_over_to_the_second() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 100), t0 + ms(50));
    c.handle_event(reply(&to_a, 503), t0 + ms(100));
    let acts = actions(&mut c);
    assert_eq!(records(&acts), [failure("a", FailureClass::TransportDown)]);
    // A is forgotten (the endpoint answers for it now), B is listened to, then dialled.
    let forget = acts
        .iter()
        .position(|a| matches!(a, Action::Forget(id) if id == to_a.call_id().unwrap()));
    let listen = acts.iter().position(|a| matches!(a, Action::Listen(_)));
    assert!(forget.is_some() && forget < listen, "{acts:#?}");
    let to_b = request(&acts, Method::Invite, B);
    assert_ne!(to_b.call_id().unwrap(), to_a.call_id().unwrap());
    assert_eq!(
        to_b.request_uri().unwrap().as_bytes().as_ref(),
        b"sip:447400123456@127.0.0.1:6002"
    );
    // A late response to A's INVITE is not B's.
    c.handle_event(reply(&to_a, 200), t0 + ms(150));
    assert!(actions(&mut c).is_empty());
    c.handle_event(ok(&to_b), t0 + ms(400));
    let acts = actions(&mut c);
    assert!(succeeded(&records(&acts), "b"));
    assert_eq!(acks(&acts, B).len(), 1);
    c.handle_event(CallEvent::Bye, t0 + ms(900));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.trunk.as_deref(), Some("b"));
    assert_eq!(tried(&out), [("a", 503), ("b", 200)]);
    assert_eq!(out.setup_ms, Some(400));
    assert_eq!(out.ring_s, Some(0.0), "answered without ringing");
}

#[test]
fn a_503_with_retry_after_is_recorded_as_throttling() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    let r = response(&to_a, 503, &[("Retry-After", "30")], None);
    c.handle_event(CallEvent::Response(r), t0 + ms(100));
    let acts = actions(&mut c);
    assert_eq!(records(&acts), [failure("a", FailureClass::Throttled)]);
    request(&acts, Method::Invite, B);
}

#[test]
fn trunk_failures_fail_over_and_are_recorded_by_carrier_name() {
    let t0 = Instant::now();
    let open = Open::all();
    for (event, code, class) in [
        (
            reply as fn(&Message, u16) -> CallEvent,
            500,
            FailureClass::TransportDown,
        ),
        (reply, 408, FailureClass::Timeout),
        // We carry no credentials: a challenge is the trunk refusing us.
        (reply, 401, FailureClass::PermanentReject),
        (reply, 407, FailureClass::PermanentReject),
        (
            |_, _| CallEvent::Timeout { invite: true },
            408,
            FailureClass::Timeout,
        ),
        (
            |_, _| CallEvent::TransportError { invite: true },
            503,
            FailureClass::TransportDown,
        ),
    ] {
        let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
        let to_a = first_invite(&mut c, A);
        // Timeouts and errors of other requests (a CANCEL, say) are not the INVITE's.
        c.handle_event(CallEvent::Timeout { invite: false }, t0 + ms(10));
        c.handle_event(CallEvent::TransportError { invite: false }, t0 + ms(10));
        assert!(actions(&mut c).is_empty());
        c.handle_event(event(&to_a, code), t0 + ms(100));
        let acts = actions(&mut c);
        assert_eq!(records(&acts), [failure("a", class)], "{code}");
        let to_b = request(&acts, Method::Invite, B);
        c.handle_event(reply(&to_b, 486), t0 + ms(200));
        let out = outcome(&actions(&mut c));
        assert_eq!(tried(&out), [("a", code), ("b", 486)], "{code}");
        assert_eq!(out.error.as_deref(), Some("busy"));
    }
}

#[test]
fn callee_answers_end_the_search_with_their_error() {
    let t0 = Instant::now();
    let open = Open::all();
    for (code, error) in [
        (486, "busy"),
        (600, "busy"),
        (603, "declined"),
        (480, "no_answer"),
        (487, "no_answer"),
        (404, "rejected"),
        (302, "rejected"),
    ] {
        let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
        let to_a = first_invite(&mut c, A);
        c.handle_event(reply(&to_a, 183), t0 + ms(300));
        c.handle_event(reply(&to_a, code), t0 + ms(2300));
        let acts = actions(&mut c);
        assert!(
            methods(&acts).is_empty(),
            "{code}: B is not tried: {acts:#?}"
        );
        assert!(succeeded(&records(&acts), "a"), "{code}: the trunk worked");
        assert!(matches!(acts.first(), Some(Action::Forget(_))), "{acts:#?}");
        let out = outcome(&acts);
        assert!(!out.answered);
        assert_eq!(out.error.as_deref(), Some(error), "{code}");
        assert_eq!(out.sip_code, Some(code));
        assert_eq!(out.trunk.as_deref(), Some("a"));
        assert_eq!(tried(&out), [("a", code)]);
        assert_eq!(out.ring_s, Some(2.0));
        assert_eq!(out.setup_ms, Some(2300));
        assert_eq!(out.talk_s, None);
    }
}

#[test]
fn when_every_trunk_fails_the_call_is_a_carrier_error_with_the_last_code() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 408), t0 + ms(100));
    let to_b = request(&actions(&mut c), Method::Invite, B);
    c.handle_event(reply(&to_b, 502), t0 + ms(300));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.error.as_deref(), Some("carrier_error"));
    assert_eq!(out.sip_code, Some(502));
    assert_eq!(out.trunk, None);
    assert_eq!(tried(&out), [("a", 408), ("b", 502)]);
    assert_eq!(out.setup_ms, Some(300));

    // Every trunk timing out is no answer.
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let _ = first_invite(&mut c, A);
    c.handle_event(CallEvent::Timeout { invite: true }, t0 + ms(100));
    let to_b = request(&actions(&mut c), Method::Invite, B);
    c.handle_event(reply(&to_b, 408), t0 + ms(300));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.error.as_deref(), Some("no_answer"));
    assert_eq!(out.sip_code, Some(408));
}

#[test]
fn trunks_whose_breaker_is_open_are_skipped_and_not_tried() {
    let t0 = Instant::now();
    let a_open = Open(HashSet::from(["a"]));
    let mut c = Caller::new(plan(None), two_trunks(), &a_open, t0);
    let to_b = first_invite(&mut c, B);
    c.handle_event(reply(&to_b, 486), t0 + ms(100));
    let out = outcome(&actions(&mut c));
    assert_eq!(tried(&out), [("b", 486)]);

    // No trunk at all: a carrier error without a code, nothing sent.
    let both = Open(HashSet::from(["a", "b"]));
    let mut c = Caller::new(plan(None), two_trunks(), &both, t0);
    let acts = actions(&mut c);
    assert!(methods(&acts).is_empty());
    let out = outcome(&acts);
    assert_eq!(out.error.as_deref(), Some("carrier_error"));
    assert_eq!(out.sip_code, None);
    assert!(out.tried.is_empty());
}

#[test]
fn a_silent_trunk_is_cancelled_if_it_sent_100_and_the_next_one_dialled() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 100), t0 + ms(30));
    assert_eq!(c.poll_timeout(), Some(t0 + TRUNK_TIMEOUT));
    c.handle_timeout(t0 + ms(1499));
    assert!(actions(&mut c).is_empty());
    c.handle_timeout(t0 + TRUNK_TIMEOUT);
    let acts = actions(&mut c);
    assert_eq!(records(&acts), [failure("a", FailureClass::Timeout)]);
    let cancel = request(&acts, Method::Cancel, A);
    assert_eq!(cancel.call_id().unwrap(), to_a.call_id().unwrap());
    assert_eq!(methods(&acts), [Method::Cancel], "B waits for A's final");
    // The INVITE's 487 closes A; B is dialled.
    c.handle_event(reply(&cancel, 200), t0 + ms(1550));
    assert!(actions(&mut c).is_empty());
    c.handle_event(reply(&to_a, 487), t0 + ms(1560));
    let acts = actions(&mut c);
    let to_b = request(&acts, Method::Invite, B);
    c.handle_event(reply(&to_b, 180), t0 + ms(1700));
    c.handle_event(ok(&to_b), t0 + ms(3560));
    c.handle_event(CallEvent::Bye, t0 + ms(4000));
    let out = outcome(&actions(&mut c));
    assert_eq!(tried(&out), [("a", 408), ("b", 200)]);
    assert_eq!(out.setup_ms, Some(3560));
    assert_eq!(out.ring_s, Some(1.86));
}

#[test]
fn a_trunk_silent_without_100_is_left_at_once_and_a_cancel_wait_ends_after_four_seconds() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let _ = first_invite(&mut c, A);
    c.handle_timeout(t0 + TRUNK_TIMEOUT);
    let acts = actions(&mut c);
    // Nothing to CANCEL before a provisional (RFC 3261 §9.1).
    assert_eq!(methods(&acts), [Method::Invite]);
    let to_b = request(&acts, Method::Invite, B);
    // B sends 100, then nothing; its CANCEL gets no final response either.
    c.handle_event(reply(&to_b, 100), t0 + ms(1600));
    c.handle_timeout(t0 + ms(3000));
    request(&actions(&mut c), Method::Cancel, B);
    assert_eq!(c.poll_timeout(), Some(t0 + ms(3000) + CLOSE_WAIT));
    c.handle_timeout(t0 + ms(3000) + CLOSE_WAIT);
    let out = outcome(&actions(&mut c));
    assert_eq!(tried(&out), [("a", 408), ("b", 408)]);
    assert_eq!(out.error.as_deref(), Some("no_answer"));
}

#[test]
fn a_2xx_that_races_the_cancel_of_a_silent_trunk_is_played() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 100), t0 + ms(30));
    c.handle_timeout(t0 + TRUNK_TIMEOUT);
    actions(&mut c);
    c.handle_event(ok(&to_a), t0 + ms(1600));
    let acts = actions(&mut c);
    assert!(acts.iter().any(|a| matches!(a, Action::Play { .. })));
    assert_eq!(acks(&acts, A).len(), 1);
    assert!(methods(&acts).is_empty(), "no INVITE to B: {acts:#?}");
    c.handle_event(CallEvent::Bye, t0 + ms(2600));
    let out = outcome(&actions(&mut c));
    assert!(out.answered);
    assert_eq!(tried(&out), [("a", 200)]);
}

#[test]
fn ringing_too_long_is_cancelled_as_no_answer() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 180), t0 + ms(500));
    // Ringing: the trunk timer no longer applies, the ring timer (from the INVITE) does.
    assert_eq!(c.poll_timeout(), Some(t0 + RING_TIMEOUT));
    c.handle_timeout(t0 + TRUNK_TIMEOUT);
    assert!(actions(&mut c).is_empty());
    c.handle_timeout(t0 + RING_TIMEOUT);
    let acts = actions(&mut c);
    request(&acts, Method::Cancel, A);
    assert!(records(&acts).is_empty());
    c.handle_event(reply(&to_a, 487), t0 + RING_TIMEOUT + ms(100));
    let acts = actions(&mut c);
    assert!(methods(&acts).is_empty(), "B is not tried: {acts:#?}");
    assert!(succeeded(&records(&acts), "a"));
    let out = outcome(&acts);
    assert_eq!(out.error.as_deref(), Some("no_answer"));
    assert_eq!(out.sip_code, Some(487));
    assert_eq!(out.trunk.as_deref(), Some("a"));
    assert_eq!(tried(&out), [("a", 487)]);
    assert_eq!(out.ring_s, Some(29.6));
}

// ---- shutdown ----------------------------------------------------------------------------

#[test]
fn stopping_while_it_rings_cancels_the_call_as_interrupted() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 180), t0 + ms(500));
    c.handle_shutdown(t0 + ms(2000));
    request(&actions(&mut c), Method::Cancel, A);
    c.handle_event(reply(&to_a, 487), t0 + ms(2100));
    let acts = actions(&mut c);
    let out = outcome(&acts);
    assert_eq!(out.error.as_deref(), Some("interrupted"));
    assert_eq!(out.sip_code, Some(487));
    assert!(!out.answered);

    // Before any provisional there is nothing to CANCEL: the call ends at once.
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let _ = first_invite(&mut c, A);
    c.handle_shutdown(t0 + ms(100));
    let acts = actions(&mut c);
    assert!(methods(&acts).is_empty());
    assert_eq!(outcome(&acts).error.as_deref(), Some("interrupted"));
}

#[test]
fn no_trunk_is_dialled_once_stopping() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 100), t0 + ms(30));
    c.handle_timeout(t0 + TRUNK_TIMEOUT);
    request(&actions(&mut c), Method::Cancel, A);
    c.handle_shutdown(t0 + ms(1600));
    c.handle_event(reply(&to_a, 487), t0 + ms(1700));
    let acts = actions(&mut c);
    assert!(methods(&acts).is_empty(), "{acts:#?}");
    let out = outcome(&acts);
    assert_eq!(out.error.as_deref(), Some("interrupted"));
    assert_eq!(tried(&out), [("a", 408)]);
}

#[test]
fn stopping_during_the_call_hangs_up_with_a_bye() {
    let t0 = Instant::now();
    let open = Open::all();
    let capture = DtmfCapture {
        max_digits: 1,
        timeout_s: 60,
    };
    let mut c = Caller::new(plan(Some(capture)), two_trunks(), &open, t0);
    answered(&mut c, t0);
    audio_played(&mut c, t0 + ms(3000));
    c.handle_shutdown(t0 + ms(5000));
    let acts = actions(&mut c);
    let bye = request(&acts, Method::Bye, A);
    c.handle_event(reply(&bye, 200), t0 + ms(5050));
    let out = outcome(&actions(&mut c));
    assert!(out.answered);
    assert_eq!(out.error, None);
    assert_eq!(out.hangup_reason.as_deref(), Some("shutdown"));
    assert_eq!(out.hangup_by.as_deref(), Some("switchyard"));
    assert_eq!(out.talk_s, Some(4.0));
}

#[test]
fn a_2xx_racing_the_shutdown_cancel_is_acked_and_hung_up_at_once() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let to_a = first_invite(&mut c, A);
    c.handle_event(reply(&to_a, 180), t0 + ms(500));
    c.handle_shutdown(t0 + ms(2000));
    actions(&mut c);
    c.handle_event(ok(&to_a), t0 + ms(2050));
    let acts = actions(&mut c);
    assert_eq!(acks(&acts, A).len(), 1);
    assert!(!acts.iter().any(|a| matches!(a, Action::Play { .. })));
    let bye = request(&acts, Method::Bye, A);
    c.handle_event(reply(&bye, 200), t0 + ms(2100));
    let out = outcome(&actions(&mut c));
    assert!(out.answered);
    assert_eq!(out.hangup_reason.as_deref(), Some("shutdown"));
}

// ---- the endpoint ------------------------------------------------------------------------

#[test]
fn losing_the_endpoint_fails_over_or_ends_the_call() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let _ = first_invite(&mut c, A);
    c.handle_endpoint_gone(t0 + ms(10));
    let acts = actions(&mut c);
    assert!(records(&acts).is_empty(), "not the trunk's fault");
    request(&acts, Method::Invite, B);
    c.handle_endpoint_gone(t0 + ms(20));
    let out = outcome(&actions(&mut c));
    assert_eq!(out.error.as_deref(), Some("carrier_error"));
    assert_eq!(tried(&out), [("a", 503), ("b", 503)]);

    // In the call, no BYE can be sent nor answered: the call is over as if the callee left.
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    answered(&mut c, t0);
    c.handle_endpoint_gone(t0 + ms(2000));
    let acts = actions(&mut c);
    assert!(methods(&acts).is_empty());
    assert_eq!(outcome(&acts).hangup_reason.as_deref(), Some("callee"));
}

#[test]
fn the_invite_offers_our_media_from_our_address() {
    let t0 = Instant::now();
    let open = Open::all();
    let mut c = Caller::new(plan(None), two_trunks(), &open, t0);
    let inv = first_invite(&mut c, A);
    assert_eq!(
        inv.request_uri().unwrap().as_bytes().as_ref(),
        b"sip:447400123456@127.0.0.1:6001"
    );
    let from = inv.headers.get(&HeaderName::From).unwrap();
    assert!(from.starts_with(b"<sip:15550001111@127.0.0.1:5062>;tag="));
    let sdp = String::from_utf8(inv.sdp_body().unwrap().to_vec()).unwrap();
    assert!(sdp.contains("m=audio 40000 RTP/AVP 0 8 101"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
}
