//! RFC 3261 §17 transactions in virtual time: every timer path, matching rules, errors, and a
//! client/server pair over a lossy network.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::transaction::{
    Event, Kind, State, TimerConfig, TransactionError, TransactionId, TransactionLayer, Transmit,
};
use switchyard_protocols::sip::{builder, HeaderName, Message, Method, RequestBuilder, Uri};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn request(method: Method, branch: &str) -> Message {
    RequestBuilder::new(
        method.clone(),
        Uri::from_str_copy("sip:+15555551234@trunk.example.com").unwrap(),
    )
    .via("UDP", "192.0.2.1:5060", branch)
    .header(HeaderName::From, "<sip:alice@example.org>;tag=f1")
    .header(HeaderName::To, "<sip:+15555551234@trunk.example.com>")
    .header(HeaderName::CallId, format!("call-{branch}"))
    .header(HeaderName::CSeq, format!("1 {method}"))
    .build()
    .unwrap()
}

fn invite() -> Message {
    request(Method::Invite, "z9hG4bKinv1")
}

/// A layer plus a virtual clock and a log of (time offset, transmitted message).
struct Harness {
    layer: TransactionLayer<&'static str>,
    start: Instant,
    now: Instant,
    sent: Vec<(Duration, Message)>,
    events: Vec<(Duration, Event<&'static str>)>,
}

impl Harness {
    fn new(config: TimerConfig) -> Self {
        let now = Instant::now();
        Harness {
            layer: TransactionLayer::new(config),
            start: now,
            now,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(Transmit { message, .. }) = self.layer.poll_transmit() {
            self.sent.push((
                self.now - self.start,
                Message::parse_datagram(message).unwrap(),
            ));
        }
        while let Some(e) = self.layer.poll_event() {
            self.events.push((self.now - self.start, e));
        }
    }

    /// Advances virtual time to `until` (offset from start), firing timers on the way.
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        while let Some(t) = self.layer.poll_timeout() {
            if t > end {
                break;
            }
            assert!(t >= self.now, "deadline in the past");
            self.now = t;
            self.layer.handle_timeout(t);
            self.drain();
        }
        self.now = end;
    }

    fn receive(&mut self, msg: Message, reliable: bool) {
        self.layer.handle_message(msg, "peer", reliable, self.now);
        self.drain();
    }

    fn send(&mut self, msg: Message, reliable: bool) -> TransactionId {
        let id = self
            .layer
            .send_request(msg, "peer", reliable, self.now)
            .unwrap();
        self.drain();
        id
    }

    fn respond(&mut self, id: TransactionId, msg: Message) {
        self.layer.respond(id, msg, self.now).unwrap();
        self.drain();
    }

    fn send_times(&self, method: Method) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|(_, m)| m.is_request() && m.method() == Some(method.clone()))
            .map(|(t, _)| *t)
            .collect()
    }

    fn response_times(&self, code: u16) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|(_, m)| m.status() == Some(code))
            .map(|(t, _)| *t)
            .collect()
    }

    fn event_kinds(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(_, e)| match e {
                Event::Request { .. } => "request".to_string(),
                Event::Response { response, .. } => {
                    format!("response {}", response.status().unwrap())
                }
                Event::Timeout { .. } => "timeout".into(),
                Event::TransportError { .. } => "transport-error".into(),
                Event::Terminated { .. } => "terminated".into(),
                Event::Stray { .. } => "stray".into(),
                _ => "other".into(),
            })
            .collect()
    }

    fn event_time(&self, kind: &str) -> Duration {
        let kinds = self.event_kinds();
        let i = kinds.iter().position(|k| k == kind).unwrap();
        self.events[i].0
    }
}

fn secs_f(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn client_invite_timer_a_doubles_without_cap_and_timer_b_times_out() {
    let mut h = Harness::new(TimerConfig::default());
    let id = h.send(invite(), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientInvite, State::Calling))
    );
    h.run_until(Duration::from_secs(60));
    // A: 0.5, 1, 2, 4, 8, 16 s after each other; B at 64·T1 = 32 s.
    let expected: Vec<_> = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        .iter()
        .map(|&s| secs_f(s))
        .collect();
    assert_eq!(h.send_times(Method::Invite), expected);
    assert_eq!(h.event_kinds(), ["timeout", "terminated"]);
    assert_eq!(h.event_time("timeout"), Duration::from_secs(32));
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn client_invite_over_reliable_transport_never_retransmits() {
    let mut h = Harness::new(TimerConfig::default());
    h.send(invite(), true);
    h.run_until(Duration::from_secs(60));
    assert_eq!(h.send_times(Method::Invite), [Duration::ZERO]);
    assert_eq!(h.event_time("timeout"), Duration::from_secs(32));
}

#[test]
fn client_invite_provisional_stops_a_and_b_then_non_2xx_is_acked_and_timer_d_runs() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    let id = h.send(inv.clone(), false);
    h.run_until(ms(700)); // one retransmission at 500 ms
    h.receive(inv.response(180, "Ringing", Some("to1")), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientInvite, State::Proceeding))
    );
    h.run_until(Duration::from_secs(100)); // no timer in Proceeding
    assert_eq!(h.send_times(Method::Invite).len(), 2);
    assert!(h.layer.poll_timeout().is_none());

    h.receive(inv.response(486, "Busy Here", Some("to1")), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientInvite, State::Completed))
    );
    let acks: Vec<_> = h
        .sent
        .iter()
        .filter(|(_, m)| m.method() == Some(Method::Ack))
        .collect();
    assert_eq!(acks.len(), 1);
    let ack = &acks[0].1;
    assert_eq!(
        ack.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    assert_eq!(ack.to().unwrap().tag().unwrap(), &b"to1"[..]);
    assert_eq!(ack.cseq().unwrap().seq, 1);
    // A retransmitted 486: the ACK is sent again, the TU does not see it twice.
    h.receive(inv.response(486, "Busy Here", Some("to1")), false);
    assert_eq!(h.send_times(Method::Ack).len(), 2);
    assert_eq!(h.event_kinds(), ["response 180", "response 486"]);
    // Timer D: 32 s.
    h.run_until(Duration::from_secs(100) + Duration::from_secs(31));
    assert!(h.layer.state(id).is_some());
    h.run_until(Duration::from_secs(100) + Duration::from_secs(33));
    assert!(h.layer.state(id).is_none());
    assert_eq!(h.event_kinds().last().unwrap(), "terminated");
}

#[test]
fn client_invite_timer_d_is_zero_over_reliable_transport() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    let id = h.send(inv.clone(), true);
    h.receive(inv.response(503, "Service Unavailable", Some("x")), true);
    assert!(h.layer.state(id).is_none());
    assert_eq!(h.event_kinds(), ["response 503", "terminated"]);
    assert_eq!(h.send_times(Method::Ack), [Duration::ZERO]);
}

#[test]
fn client_invite_2xx_goes_to_accepted_passes_retransmissions_and_timer_m_ends_it() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    let id = h.send(inv.clone(), false);
    let ok = inv.response(200, "OK", Some("to2"));
    h.receive(ok.clone(), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientInvite, State::Accepted))
    );
    h.run_until(Duration::from_secs(2));
    h.receive(ok.clone(), false);
    assert_eq!(h.event_kinds(), ["response 200", "response 200"]);
    // No ACK from the transaction for 2xx, and no retransmission of the INVITE.
    assert!(h.send_times(Method::Ack).is_empty());
    assert_eq!(h.send_times(Method::Invite).len(), 1);
    h.run_until(Duration::from_secs(33));
    assert_eq!(h.event_time("terminated"), Duration::from_secs(32));
    // After the transaction is gone, a 2xx retransmission is stray (the UA re-ACKs).
    h.receive(ok, false);
    assert_eq!(h.event_kinds().last().unwrap(), "stray");
}

#[test]
fn client_non_invite_timer_e_doubles_to_t2_and_timer_f_times_out() {
    let mut h = Harness::new(TimerConfig::default());
    h.send(request(Method::Options, "z9hG4bKopt"), false);
    h.run_until(Duration::from_secs(40));
    let expected: Vec<_> = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .iter()
        .map(|&s| secs_f(s))
        .collect();
    assert_eq!(h.send_times(Method::Options), expected);
    assert_eq!(h.event_kinds(), ["timeout", "terminated"]);
    assert_eq!(h.event_time("timeout"), Duration::from_secs(32));
}

#[test]
fn client_non_invite_proceeding_retransmits_every_t2_and_timer_k_ends_it() {
    let mut h = Harness::new(TimerConfig::default());
    let req = request(Method::Bye, "z9hG4bKbye");
    let id = h.send(req.clone(), false);
    h.run_until(ms(100));
    h.receive(req.response(100, "Trying", None), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientNonInvite, State::Proceeding))
    );
    h.run_until(Duration::from_secs(10));
    // E was due at 0.5 s (interval T1) and then every T2 = 4 s: 0.5, 4.5, 8.5.
    let expected: Vec<_> = [0.0, 0.5, 4.5, 8.5].iter().map(|&s| secs_f(s)).collect();
    assert_eq!(h.send_times(Method::Bye), expected);
    h.receive(req.response(200, "OK", Some("t")), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientNonInvite, State::Completed))
    );
    // A late final is absorbed.
    h.receive(req.response(200, "OK", Some("t")), false);
    h.run_until(Duration::from_secs(16));
    assert_eq!(
        h.event_kinds(),
        ["response 100", "response 200", "terminated"]
    );
    assert_eq!(h.event_time("terminated"), Duration::from_secs(15)); // K = T4 = 5 s
    assert_eq!(h.send_times(Method::Bye).len(), 4);
}

#[test]
fn client_non_invite_timer_k_is_zero_over_reliable_transport() {
    let mut h = Harness::new(TimerConfig::default());
    let req = request(Method::Options, "z9hG4bKrel");
    let id = h.send(req.clone(), true);
    h.receive(req.response(200, "OK", Some("t")), true);
    assert!(h.layer.state(id).is_none());
}

#[test]
fn server_invite_sends_100_trying_after_200ms_and_resends_it_on_retransmission() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.receive(inv.clone(), false);
    assert_eq!(h.event_kinds(), ["request"]);
    h.run_until(ms(199));
    assert!(h.response_times(100).is_empty());
    h.run_until(ms(300));
    assert_eq!(h.response_times(100), [ms(200)]);
    h.receive(inv.clone(), false); // retransmission: absorbed, last response resent
    assert_eq!(h.event_kinds(), ["request"]);
    assert_eq!(h.response_times(100), [ms(200), ms(300)]);
}

#[test]
fn server_invite_trying_policy_at_once_and_never() {
    let mut h = Harness::new(TimerConfig {
        trying_after: Some(Duration::ZERO),
        ..TimerConfig::default()
    });
    h.receive(invite(), false);
    assert_eq!(h.response_times(100), [Duration::ZERO]);

    let mut h = Harness::new(TimerConfig {
        trying_after: None,
        ..TimerConfig::default()
    });
    h.receive(invite(), false);
    h.run_until(Duration::from_secs(5));
    assert!(h.response_times(100).is_empty());

    // Answering before 200 ms suppresses the automatic 100.
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.receive(inv.clone(), false);
    let Event::Request { id, .. } = h.events[0].1.clone() else {
        panic!()
    };
    h.run_until(ms(50));
    h.respond(id, inv.response(180, "Ringing", Some("t")));
    h.run_until(Duration::from_secs(5));
    assert!(h.response_times(100).is_empty());
    assert_eq!(h.response_times(180), [ms(50)]);
}

#[test]
fn server_invite_non_2xx_timer_g_retransmits_until_ack_then_timer_i() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.receive(inv.clone(), false);
    let Event::Request { id, request, .. } = h.events[0].1.clone() else {
        panic!()
    };
    h.respond(id, request.response(486, "Busy Here", Some("s1")));
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ServerInvite, State::Completed))
    );
    h.run_until(Duration::from_secs(12));
    // G: T1, 2·T1, 4·T1, then capped at T2 = 4 s.
    let expected: Vec<_> = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
        .iter()
        .map(|&s| secs_f(s))
        .collect();
    assert_eq!(h.response_times(486), expected);
    let ack = inv
        .ack_for(&request.response(486, "Busy Here", Some("s1")))
        .unwrap();
    h.receive(ack.clone(), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ServerInvite, State::Confirmed))
    );
    h.receive(ack, false); // absorbed
    h.run_until(Duration::from_secs(30));
    assert_eq!(h.response_times(486).len(), 6);
    assert_eq!(h.event_kinds(), ["request", "terminated"]);
    assert_eq!(h.event_time("terminated"), Duration::from_secs(17)); // I = T4 after 12 s
}

#[test]
fn server_invite_timer_h_fires_without_ack() {
    let mut h = Harness::new(TimerConfig::default());
    h.receive(invite(), false);
    let Event::Request { id, request, .. } = h.events[0].1.clone() else {
        panic!()
    };
    h.respond(id, request.response(404, "Not Found", Some("s")));
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.event_kinds(), ["request", "timeout", "terminated"]);
    assert_eq!(h.event_time("timeout"), Duration::from_secs(32));
}

#[test]
fn server_invite_over_reliable_transport_sends_once_and_timer_i_is_zero() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.layer.handle_message(inv.clone(), "peer", true, h.now);
    h.drain();
    let Event::Request { id, request, .. } = h.events[0].1.clone() else {
        panic!()
    };
    let busy = request.response(486, "Busy Here", Some("s1"));
    h.respond(id, busy.clone());
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.response_times(486), [Duration::ZERO]);
    h.layer
        .handle_message(inv.ack_for(&busy).unwrap(), "peer", true, h.now);
    h.drain();
    assert!(h.layer.state(id).is_none());
}

#[test]
fn server_invite_2xx_accepted_passes_ack_and_timer_l_ends_it() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.receive(inv.clone(), false);
    let Event::Request { id, request, .. } = h.events[0].1.clone() else {
        panic!()
    };
    let ok = request.response(200, "OK", Some("s1"));
    h.respond(id, ok.clone());
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ServerInvite, State::Accepted))
    );
    // The TU retransmits its 2xx itself; the transaction lets it through.
    h.run_until(ms(500));
    h.respond(id, ok.clone());
    assert_eq!(h.response_times(200), [Duration::ZERO, ms(500)]);
    // A 4xx after a 2xx is refused.
    assert_eq!(
        h.layer
            .respond(id, request.response(486, "Busy", None), h.now),
        Err(TransactionError::WrongState)
    );
    // An ACK with the same branch reaches the TU.
    h.receive(inv.ack_for(&ok).unwrap(), false);
    // An ACK for the 2xx in its own transaction (new branch) is stray too.
    let mut ack2 = inv.ack_for(&ok).unwrap();
    ack2.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack2",
    );
    h.receive(ack2, false);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.event_kinds(), ["request", "stray", "stray", "terminated"]);
    assert_eq!(h.event_time("terminated"), Duration::from_secs(32));
}

#[test]
fn server_non_invite_absorbs_retransmissions_and_timer_j_ends_it() {
    let mut h = Harness::new(TimerConfig::default());
    let req = request(Method::Options, "z9hG4bKsni");
    h.receive(req.clone(), false);
    let Event::Request { id, .. } = h.events[0].1.clone() else {
        panic!()
    };
    h.receive(req.clone(), false); // Trying: absorbed silently
    assert!(h.sent.is_empty());
    h.run_until(ms(100));
    h.respond(id, req.response(100, "Trying", None));
    h.receive(req.clone(), false); // Proceeding: resend the 100
    assert_eq!(h.response_times(100), [ms(100), ms(100)]);
    h.respond(id, req.response(200, "OK", Some("s")));
    h.run_until(Duration::from_secs(10));
    h.receive(req.clone(), false); // Completed: resend the 200
    assert_eq!(h.response_times(200), [ms(100), Duration::from_secs(10)]);
    assert_eq!(
        h.layer.respond(id, req.response(500, "Oops", None), h.now),
        Err(TransactionError::WrongState)
    );
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.event_kinds(), ["request", "terminated"]);
    assert_eq!(
        h.event_time("terminated"),
        ms(100) + Duration::from_secs(32)
    );
}

#[test]
fn server_non_invite_timer_j_is_zero_over_reliable_transport() {
    let mut h = Harness::new(TimerConfig::default());
    let req = request(Method::Register, "z9hG4bKreg");
    h.layer.handle_message(req.clone(), "peer", true, h.now);
    h.drain();
    let Event::Request { id, .. } = h.events[0].1.clone() else {
        panic!()
    };
    h.respond(id, req.response(200, "OK", Some("s")));
    assert!(h.layer.state(id).is_none());
}

#[test]
fn matching_uses_branch_sent_by_and_method() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    h.receive(inv.clone(), false);
    let Event::Request { id: inv_id, .. } = h.events[0].1.clone() else {
        panic!()
    };
    // Same branch, different sent-by: a different transaction.
    let mut other = inv.clone();
    other.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKinv1",
    );
    h.receive(other, false);
    // CANCEL: its own transaction, and it finds the INVITE.
    let cancel = inv.cancel().unwrap();
    h.receive(cancel.clone(), false);
    assert_eq!(h.event_kinds(), ["request", "request", "request"]);
    assert_eq!(h.layer.invite_for_cancel(&cancel), Some(inv_id));
    assert_eq!(h.layer.len(), 3);

    // Client side: a response with the right branch but another CSeq method is stray.
    let mut c = Harness::new(TimerConfig::default());
    let inv = invite();
    c.send(inv.clone(), false);
    let mut wrong = inv.response(200, "OK", Some("t"));
    wrong.headers.set(HeaderName::CSeq, "1 CANCEL");
    c.receive(wrong, false);
    assert_eq!(c.event_kinds(), ["stray"]);
}

#[test]
fn a_response_from_another_address_matches_nothing() {
    let mut c = Harness::new(TimerConfig::default());
    let inv = invite();
    let id = c.send(inv.clone(), false);
    // Someone who saw the branch answers 486 from elsewhere: stray, the transaction waits on.
    let forged = inv.response(486, "Busy Here", Some("x"));
    c.layer.handle_message(forged, "elsewhere", false, c.now);
    c.drain();
    assert_eq!(c.event_kinds(), ["stray"]);
    assert_eq!(
        c.layer.state(id),
        Some((Kind::ClientInvite, State::Calling))
    );
    assert!(
        c.send_times(Method::Ack).is_empty(),
        "no ACK for a forged final"
    );
    // The peer's own answer still counts.
    c.receive(inv.response(200, "OK", Some("t")), false);
    assert_eq!(c.event_kinds(), ["stray", "response 200"]);
}

#[test]
fn server_transaction_finds_retransmissions_before_they_are_handled() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    assert_eq!(h.layer.server_transaction(&inv), None);
    h.receive(inv.clone(), false);
    let Event::Request { id, .. } = h.events[0].1.clone() else {
        panic!()
    };
    assert_eq!(h.layer.server_transaction(&inv), Some(id));
    assert_eq!(
        h.layer
            .server_transaction(&request(Method::Invite, "z9hG4bKother")),
        None
    );
}

#[test]
fn rfc2543_requests_without_magic_cookie_match_by_dialog_fields() {
    let mut h = Harness::new(TimerConfig::default());
    let old = request(Method::Invite, "oldbranch");
    h.receive(old.clone(), false);
    h.receive(old.clone(), false);
    assert_eq!(h.event_kinds(), ["request"]);
    let Event::Request { id, request, .. } = h.events[0].1.clone() else {
        panic!()
    };
    let busy = request.response(486, "Busy", Some("x"));
    h.respond(id, busy.clone());
    let mut ack = old.ack_for(&busy).unwrap();
    ack.headers
        .set(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1:5060;branch=other");
    h.receive(ack, false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ServerInvite, State::Confirmed))
    );
}

#[test]
fn api_misuse_is_reported() {
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    let ack = inv.ack_for(&inv.response(486, "x", Some("t"))).unwrap();
    assert_eq!(
        h.layer.send_request(ack, "p", false, h.now),
        Err(TransactionError::Ack)
    );
    let id = h.send(inv.clone(), false);
    assert_eq!(
        h.layer.send_request(inv.clone(), "p", false, h.now),
        Err(TransactionError::Duplicate)
    );
    assert_eq!(
        h.layer.respond(id, inv.response(200, "OK", None), h.now),
        Err(TransactionError::WrongState)
    );
    assert_eq!(
        h.layer
            .respond(TransactionId(999), inv.response(200, "OK", None), h.now),
        Err(TransactionError::Unknown)
    );
    assert_eq!(
        h.layer
            .send_request(inv.response(200, "OK", None), "p", false, h.now),
        Err(TransactionError::WrongKind)
    );
    let mut no_branch = request(Method::Options, "x");
    no_branch.headers.set(HeaderName::Via, "SIP/2.0/UDP h");
    assert_eq!(
        h.layer.send_request(no_branch, "p", false, h.now),
        Err(TransactionError::NoBranch)
    );
}

#[test]
fn full_table_refuses_clients_and_answers_503_statelessly() {
    let mut h = Harness::new(TimerConfig {
        max_transactions: 1,
        ..TimerConfig::default()
    });
    h.send(request(Method::Options, "z9hG4bKa"), false);
    // A new dialog is refused at max_transactions, both ways…
    assert_eq!(
        h.layer
            .send_request(request(Method::Invite, "z9hG4bKi"), "p", false, h.now),
        Err(TransactionError::Full)
    );
    h.receive(request(Method::Invite, "z9hG4bKj"), false);
    let busy = &h.sent.last().unwrap().1;
    assert_eq!(busy.status(), Some(503));
    assert_eq!(busy.retry_after().unwrap().unwrap().seconds, 5);
    // …while other requests (a BYE ending a call up, a probe) get up to twice as many.
    h.send(request(Method::Bye, "z9hG4bKb"), false);
    assert_eq!(h.layer.len(), 2);
    assert_eq!(
        h.layer
            .send_request(request(Method::Options, "z9hG4bKc"), "p", false, h.now),
        Err(TransactionError::Full)
    );
    h.receive(request(Method::Bye, "z9hG4bKd"), false);
    assert_eq!(h.sent.last().unwrap().1.status(), Some(503));
    assert_eq!(h.layer.len(), 2);
}

#[test]
fn transport_error_terminates() {
    let mut h = Harness::new(TimerConfig::default());
    let id = h.send(invite(), false);
    h.layer.transport_error(id);
    h.drain();
    assert_eq!(h.event_kinds(), ["transport-error", "terminated"]);
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn configurable_t1_t2_t4_scale_every_timer() {
    let config = TimerConfig {
        t1: ms(100),
        t2: ms(400),
        t4: ms(1000),
        ..TimerConfig::default()
    };
    let mut h = Harness::new(config);
    h.send(request(Method::Options, "z9hG4bKfast"), false);
    h.run_until(Duration::from_secs(10));
    // E: 100, 200, 400, 400, … ms; F at 6.4 s.
    let times = h.send_times(Method::Options);
    assert_eq!(&times[..5], &[ms(0), ms(100), ms(300), ms(700), ms(1100)]);
    assert_eq!(h.event_time("timeout"), ms(6400));
}

/// A client layer and a server layer over a network that drops chosen datagrams, stepped in
/// virtual time with 10 ms latency.
#[test]
fn pair_over_lossy_network_completes_an_invite() {
    let start = Instant::now();
    let mut now = start;
    let mut client = TransactionLayer::<u8>::new(TimerConfig::default());
    let mut server = TransactionLayer::<u8>::new(TimerConfig::default());
    let inv = request(Method::Invite, &builder::branch(7));
    let cid = client.send_request(inv, 1, false, now).unwrap();
    let mut in_flight: Vec<(Instant, u8, Bytes)> = Vec::new(); // (arrival, to, bytes)
    let mut sent_count = 0;
    let mut client_events = Vec::new();
    for _ in 0..1000 {
        while let Some(t) = client.poll_transmit() {
            sent_count += 1;
            if sent_count > 2 {
                // the first two INVITEs are lost
                in_flight.push((now + ms(10), 1, t.message));
            }
        }
        while let Some(t) = server.poll_transmit() {
            in_flight.push((now + ms(10), 0, t.message));
        }
        while let Some(e) = client.poll_event() {
            client_events.push(e);
        }
        while let Some(e) = server.poll_event() {
            if let Event::Request { id, request, .. } = e {
                if request.method() == Some(Method::Invite) {
                    server
                        .respond(id, request.response(200, "OK", Some("srv")), now)
                        .unwrap();
                }
            }
        }
        let next_net = in_flight.iter().map(|(t, _, _)| *t).min();
        let next = [client.poll_timeout(), server.poll_timeout(), next_net]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = next;
        client.handle_timeout(now);
        server.handle_timeout(now);
        let (due, rest): (Vec<_>, Vec<_>) = in_flight.into_iter().partition(|(t, _, _)| *t <= now);
        in_flight = rest;
        for (_, to, bytes) in due {
            let msg = Message::parse_datagram(bytes).unwrap();
            if to == 1 {
                server.handle_message(msg, 0, false, now);
            } else {
                client.handle_message(msg, 1, false, now);
            }
        }
    }
    let responses: Vec<_> = client_events
        .iter()
        .filter_map(|e| match e {
            Event::Response { id, response } if *id == cid => response.status(),
            _ => None,
        })
        .collect();
    assert_eq!(responses, [200]);
    // The 200 arrived after the third INVITE (sent at 1.5 s) made the round trip.
    assert!(client.is_empty() && server.is_empty());
    assert!(now - start >= Duration::from_secs(32));
}

#[test]
fn an_encoded_request_is_retransmitted_as_is_and_acked_from_its_bytes() {
    use switchyard_protocols::sip::transaction::Encoded;
    let mut h = Harness::new(TimerConfig::default());
    let inv = invite();
    // Bytes as a proxy splices them: not what `to_bytes` would write (a compact name).
    let bytes = Bytes::from(
        String::from_utf8(inv.to_bytes().to_vec())
            .unwrap()
            .replace("Call-ID:", "i:"),
    );
    let id = h
        .layer
        .send_encoded(
            Encoded {
                bytes: bytes.clone(),
                method: Method::Invite,
                branch: Bytes::from_static(b"z9hG4bKinv1"),
                in_dialog: false,
            },
            "peer",
            false,
            h.now,
        )
        .unwrap();
    assert!(h.layer.request(id).is_none());
    h.drain();
    h.run_until(ms(700));
    let mut sent = Vec::new();
    // Both the first send and timer A's retransmission are the given bytes.
    h.layer.handle_timeout(h.start + ms(1500));
    while let Some(t) = h.layer.poll_transmit() {
        sent.push(t.message);
    }
    assert_eq!(sent, std::slice::from_ref(&bytes));
    assert_eq!(h.send_times(Method::Invite), [Duration::ZERO, ms(500)]);
    h.now = h.start + ms(1500);
    h.receive(inv.response(404, "Not Found", Some("nf")), false);
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ClientInvite, State::Completed))
    );
    let ack = &h
        .sent
        .iter()
        .find(|(_, m)| m.method() == Some(Method::Ack))
        .unwrap()
        .1;
    assert_eq!(ack.call_id().unwrap().as_ref(), b"call-z9hG4bKinv1");
    assert_eq!(ack.to().unwrap().tag().unwrap(), &b"nf"[..]);
    // A second request with the same branch is a duplicate; an ACK is never sent this way.
    let again = Encoded {
        bytes,
        method: Method::Invite,
        branch: Bytes::from_static(b"z9hG4bKinv1"),
        in_dialog: false,
    };
    assert_eq!(
        h.layer.send_encoded(again.clone(), "peer", false, h.now),
        Err(TransactionError::Duplicate)
    );
    let ack = Encoded {
        method: Method::Ack,
        ..again
    };
    assert_eq!(
        h.layer.send_encoded(ack, "peer", false, h.now),
        Err(TransactionError::Ack)
    );
}

#[test]
fn an_encoded_response_moves_the_server_transaction_like_a_message() {
    let mut h = Harness::new(TimerConfig {
        trying_after: None,
        ..TimerConfig::default()
    });
    h.receive(invite(), false);
    let id = match &h.events[0].1 {
        Event::Request { id, .. } => *id,
        e => panic!("{e:?}"),
    };
    let ringing = invite().response(180, "Ringing", Some("t")).to_bytes();
    h.layer
        .respond_encoded(id, 180, ringing.clone(), h.now)
        .unwrap();
    let busy = invite().response(486, "Busy Here", Some("t")).to_bytes();
    h.layer.respond_encoded(id, 486, busy, h.now).unwrap();
    h.drain();
    assert_eq!(
        h.layer.state(id),
        Some((Kind::ServerInvite, State::Completed))
    );
    // Timer G resends the final response's bytes.
    h.run_until(ms(600));
    assert_eq!(h.response_times(486), [Duration::ZERO, ms(500)]);
    assert_eq!(
        h.layer.respond_encoded(id, 200, ringing, h.now),
        Err(TransactionError::WrongState)
    );
}
