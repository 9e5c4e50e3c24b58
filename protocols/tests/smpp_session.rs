//! The SMPP session state machine in virtual time: an ESME and an SMSC session wired together
//! by [`Pair`], which moves PDUs between them (with optional latency and drops) and jumps the
//! clock to the next deadline. No sockets, no sleeping.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use switchyard_protocols::smpp::codec::{self, PduError};
use switchyard_protocols::smpp::pdu::{
    AlertNotification, Bind, BindResp, Body, COctet, CancelSm, CommandId, DataSm, DataSmResp,
    MessageIdResp, Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm, SubmitMulti, SubmitMultiResp,
    SubmitSm,
};
use switchyard_protocols::smpp::session::{
    BindType, CloseReason, Event, LostRequest, Session, SessionConfig, SessionError, State,
    MAX_SEQUENCE_NUMBER,
};
use switchyard_protocols::smpp::CommandStatus;

// ---- harness ---------------------------------------------------------------------------------

const PASSWORD: &str = "secret";
const SECOND: Duration = Duration::from_secs(1);

fn credentials(password: &'static str) -> Bind {
    Bind {
        system_id: "acme".into(),
        password: password.into(),
        system_type: COctet::empty(),
        interface_version: 0x34,
        ..Bind::default()
    }
}

fn esme_config(bind_type: BindType) -> SessionConfig {
    let mut c = SessionConfig::esme(bind_type, credentials(PASSWORD));
    c.window = 3;
    c.response_timeout = 5 * SECOND;
    c.enquire_link_interval = Some(30 * SECOND);
    c.enquire_link_max_missed = 2;
    c.bind_timeout = 10 * SECOND;
    c.unbind_timeout = 4 * SECOND;
    c
}

fn smsc_config() -> SessionConfig {
    let mut c = SessionConfig::smsc("smsc");
    c.window = 3;
    c.response_timeout = 5 * SECOND;
    c.enquire_link_interval = None;
    c.bind_timeout = 60 * SECOND;
    c
}

/// A drop rule: true drops the PDU on the wire.
type DropRule = Box<dyn FnMut(&Pdu) -> bool>;

/// One end of the pair: its session, what is on the wire towards it, and what happened.
struct Side {
    session: Session,
    /// PDUs on the wire towards this side, with their arrival time (FIFO: constant latency).
    inbound: VecDeque<(Instant, Pdu)>,
    /// Every event this side's application saw, with the time.
    events: Vec<(Instant, Event)>,
    /// Every PDU this side transmitted (dropped ones included), with the time.
    sent: Vec<(Instant, Pdu)>,
    /// Drops outgoing PDUs for which it returns true.
    drop: Option<DropRule>,
    /// SMSC app: accept binds with the right password, reject the others.
    auto_bind: bool,
    /// App: answer every Request with ESME_ROK.
    auto_respond: bool,
}

impl Side {
    fn new(session: Session) -> Self {
        Side {
            session,
            inbound: VecDeque::new(),
            events: Vec::new(),
            sent: Vec::new(),
            drop: None,
            auto_bind: true,
            auto_respond: true,
        }
    }

    /// Events since the last call.
    fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).map(|(_, e)| e).collect()
    }

    fn sent_ids(&self) -> Vec<CommandId> {
        self.sent.iter().map(|(_, p)| p.command_id()).collect()
    }

    fn closed(&self) -> Option<(CloseReason, Vec<LostRequest>)> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Closed { reason, lost } => Some((*reason, lost.clone())),
            _ => None,
        })
    }
}

/// An ESME and an SMSC in virtual time (after quinn's `tests/util.rs`).
struct Pair {
    now: Instant,
    latency: Duration,
    esme: Side,
    smsc: Side,
}

impl Pair {
    fn new(esme: SessionConfig, smsc: SessionConfig) -> Self {
        let now = Instant::now();
        Pair {
            now,
            latency: Duration::ZERO,
            esme: Side::new(Session::new(esme, now)),
            smsc: Side::new(Session::new(smsc, now)),
        }
    }

    /// A pair bound as `bind_type`, events of the handshake cleared.
    fn bound(bind_type: BindType) -> Self {
        let mut pair = Pair::new(esme_config(bind_type), smsc_config());
        pair.esme.session.bind(pair.now).unwrap();
        pair.drive();
        assert_eq!(pair.esme.session.state(), State::Bound(bind_type));
        assert_eq!(pair.smsc.session.state(), State::Bound(bind_type));
        pair.esme.events.clear();
        pair.smsc.events.clear();
        pair
    }

    fn elapsed(&self, since: Instant) -> Duration {
        self.now - since
    }

    /// One round at the current time: move transmits onto the wire, deliver what has arrived,
    /// fire due timers, run the applications. True if anything happened.
    fn step(&mut self) -> bool {
        let now = self.now;
        let arrival = now + self.latency;
        let mut progress = false;
        for (from, to) in [(0, 1), (1, 0)] {
            loop {
                let pdu = match self.side(from).session.poll_transmit() {
                    Some(pdu) => pdu,
                    None => break,
                };
                progress = true;
                let side = self.side(from);
                side.sent.push((now, pdu.clone()));
                let dropped = side.drop.as_mut().is_some_and(|d| d(&pdu));
                if !dropped {
                    self.side(to).inbound.push_back((arrival, pdu));
                }
            }
        }
        for i in [0, 1] {
            let side = self.side(i);
            while side.inbound.front().is_some_and(|(at, _)| *at <= now) {
                let (_, pdu) = side.inbound.pop_front().unwrap();
                side.session.handle_pdu(pdu, now);
                progress = true;
            }
            if side.session.poll_timeout().is_some_and(|t| t <= now) {
                side.session.handle_timeout(now);
                progress = true;
            }
            while let Some(event) = side.session.poll_event() {
                progress = true;
                run_app(side, &event, now);
                side.events.push((now, event));
            }
        }
        progress
    }

    fn side(&mut self, i: usize) -> &mut Side {
        if i == 0 {
            &mut self.esme
        } else {
            &mut self.smsc
        }
    }

    /// The earliest deadline or arrival on either side.
    fn next_wakeup(&self) -> Option<Instant> {
        [&self.esme, &self.smsc]
            .iter()
            .flat_map(|s| [s.session.poll_timeout(), s.inbound.front().map(|(t, _)| *t)])
            .flatten()
            .min()
    }

    /// Runs until nothing is in flight on the wire, advancing time only to PDU arrivals (timers
    /// fire only if they fall due meanwhile).
    fn drive(&mut self) {
        loop {
            while self.step() {}
            let next = [&self.esme, &self.smsc]
                .iter()
                .filter_map(|s| s.inbound.front().map(|(t, _)| *t))
                .min();
            match next {
                Some(t) => self.now = self.now.max(t),
                None => return,
            }
        }
    }

    /// Runs for `d` of virtual time, jumping from deadline to deadline.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            while self.step() {}
            match self.next_wakeup() {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => break,
            }
        }
        self.now = end;
        while self.step() {}
    }
}

/// What the test applications do with an event, when automated.
fn run_app(side: &mut Side, event: &Event, now: Instant) {
    match event {
        Event::BindRequest { bind, .. } if side.auto_bind => {
            if bind.password.as_bytes() == PASSWORD.as_bytes() {
                side.session.accept_bind(now).unwrap();
            } else {
                side.session
                    .reject_bind(CommandStatus::ESME_RINVPASWD, now)
                    .unwrap();
            }
        }
        Event::Request {
            sequence_number,
            body,
        } if side.auto_respond => {
            side.session
                .respond(
                    *sequence_number,
                    CommandStatus::ESME_ROK,
                    ok_response(body, *sequence_number),
                    now,
                )
                .unwrap();
        }
        _ => {}
    }
}

fn ok_response(request: &Body, seq: u32) -> Body {
    let id: COctet = format!("msg-{seq}").into();
    match request {
        Body::SubmitSm(_) => Body::SubmitSmResp(MessageIdResp { message_id: id }),
        Body::DeliverSm(_) => Body::DeliverSmResp(MessageIdResp::default()),
        Body::DataSm(_) => Body::DataSmResp(DataSmResp {
            message_id: id,
            ..DataSmResp::default()
        }),
        Body::SubmitMulti(_) => Body::SubmitMultiResp(SubmitMultiResp {
            message_id: id,
            ..SubmitMultiResp::default()
        }),
        Body::QuerySm(_) => Body::QuerySmResp(QuerySmResp::default()),
        Body::CancelSm(_) => Body::CancelSmResp,
        Body::ReplaceSm(_) => Body::ReplaceSmResp,
        _ => Body::GenericNack,
    }
}

fn submit() -> Body {
    Body::SubmitSm(SubmitSm {
        source: pdu_address("15550001"),
        dest: pdu_address("15550002"),
        short_message: "hello".into(),
        ..SubmitSm::default()
    })
}

fn deliver() -> Body {
    Body::DeliverSm(SubmitSm::default())
}

fn pdu_address(digits: &'static str) -> switchyard_protocols::smpp::pdu::Address {
    switchyard_protocols::smpp::pdu::Address::international(digits)
}

fn responses(events: &[Event]) -> Vec<(u32, CommandStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response {
                sequence_number,
                status,
                ..
            } => Some((*sequence_number, *status)),
            _ => None,
        })
        .collect()
}

fn timeouts(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResponseTimeout {
                sequence_number, ..
            } => Some(*sequence_number),
            _ => None,
        })
        .collect()
}

/// A single session fed by hand, for checking what it answers to one PDU.
fn answers(session: &mut Session, pdu: Pdu, now: Instant) -> Vec<Pdu> {
    session.handle_pdu(pdu, now);
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn bound_smsc(bind_type: BindType, now: Instant) -> Session {
    let mut smsc = Session::new(smsc_config(), now);
    smsc.handle_pdu(
        Pdu::request(1, bind_type.request(credentials(PASSWORD))),
        now,
    );
    smsc.accept_bind(now).unwrap();
    while smsc.poll_transmit().is_some() {}
    while smsc.poll_event().is_some() {}
    smsc
}

// ---- bind ------------------------------------------------------------------------------------

#[test]
fn bind_succeeds_for_every_bind_type() {
    for bind_type in [
        BindType::Transmitter,
        BindType::Receiver,
        BindType::Transceiver,
    ] {
        let mut pair = Pair::new(esme_config(bind_type), smsc_config());
        pair.esme.session.bind(pair.now).unwrap();
        assert_eq!(pair.esme.session.state(), State::Binding);
        pair.drive();

        assert_eq!(pair.esme.sent_ids(), vec![bind_type.request_id()]);
        assert_eq!(
            pair.smsc.sent_ids(),
            vec![bind_type.request_id().response()]
        );
        assert_eq!(
            pair.esme.take_events(),
            vec![Event::Bound {
                bind_type,
                system_id: "smsc".into(),
                interface_version: Some(0x34),
            }]
        );
        let smsc_events = pair.smsc.take_events();
        assert!(
            matches!(&smsc_events[0], Event::BindRequest { bind_type: t, bind } if *t == bind_type && bind.system_id.as_bytes() == b"acme")
        );
        assert!(
            matches!(&smsc_events[1], Event::Bound { bind_type: t, system_id, .. } if *t == bind_type && system_id.as_bytes() == b"acme")
        );
        assert_eq!(pair.esme.session.state(), State::Bound(bind_type));
        assert_eq!(pair.smsc.session.state(), State::Bound(bind_type));
        assert_eq!(pair.esme.session.window_available(), 3);
    }
}

#[test]
fn bad_password_fails_the_bind_and_closes_both() {
    let mut config = esme_config(BindType::Transceiver);
    config.role = switchyard_protocols::smpp::session::Role::Esme {
        bind_type: BindType::Transceiver,
        credentials: credentials("wrong"),
    };
    let mut pair = Pair::new(config, smsc_config());
    pair.esme.session.bind(pair.now).unwrap();
    pair.drive();

    let (_, resp) = &pair.smsc.sent[0];
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVPASWD);
    assert_eq!(
        pair.esme.closed(),
        Some((
            CloseReason::BindFailed(CommandStatus::ESME_RINVPASWD),
            vec![]
        ))
    );
    assert_eq!(
        pair.smsc.closed(),
        Some((
            CloseReason::BindRejected(CommandStatus::ESME_RINVPASWD),
            vec![]
        ))
    );
    assert!(pair.esme.session.is_closed() && pair.smsc.session.is_closed());
    assert_eq!(pair.esme.session.poll_timeout(), None);
}

#[test]
fn generic_nack_to_a_bind_fails_it() {
    let now = Instant::now();
    let mut esme = Session::new(esme_config(BindType::Transmitter), now);
    esme.bind(now).unwrap();
    let bind = esme.poll_transmit().unwrap();
    esme.handle_pdu(
        Pdu::response(
            bind.sequence_number,
            CommandStatus::ESME_RINVCMDID,
            Body::GenericNack,
        ),
        now,
    );
    assert_eq!(
        esme.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::BindFailed(CommandStatus::ESME_RINVCMDID),
            lost: vec![]
        })
    );
}

#[test]
fn esme_bind_times_out_without_bind_resp() {
    let mut pair = Pair::new(esme_config(BindType::Transceiver), smsc_config());
    pair.esme.drop = Some(Box::new(|_| true));
    let start = pair.now;
    pair.esme.session.bind(pair.now).unwrap();
    pair.advance(20 * SECOND);
    let (at, event) = pair.esme.events.last().unwrap().clone();
    assert_eq!(
        event,
        Event::Closed {
            reason: CloseReason::BindTimeout,
            lost: vec![]
        }
    );
    assert_eq!(at - start, 10 * SECOND);
}

#[test]
fn smsc_closes_a_connection_that_never_binds() {
    let now = Instant::now();
    let mut smsc = Session::new(smsc_config(), now);
    assert_eq!(smsc.poll_timeout(), Some(now + 60 * SECOND));
    // An application that never decides does not keep the connection either.
    smsc.handle_pdu(
        Pdu::request(1, Body::BindTransmitter(credentials(PASSWORD))),
        now + SECOND,
    );
    assert!(matches!(smsc.poll_event(), Some(Event::BindRequest { .. })));
    smsc.handle_timeout(now + 60 * SECOND);
    assert_eq!(
        smsc.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::BindTimeout,
            lost: vec![]
        })
    );
}

#[test]
fn bind_api_misuse_is_reported() {
    let now = Instant::now();
    let mut smsc = Session::new(smsc_config(), now);
    assert_eq!(
        smsc.bind(now),
        Err(SessionError::WrongRole { operation: "bind" })
    );
    assert!(matches!(
        smsc.accept_bind(now),
        Err(SessionError::InvalidState {
            state: State::Open,
            ..
        })
    ));
    let mut esme = Session::new(esme_config(BindType::Receiver), now);
    assert!(matches!(
        esme.accept_bind(now),
        Err(SessionError::WrongRole { .. })
    ));
    esme.bind(now).unwrap();
    assert!(matches!(
        esme.bind(now),
        Err(SessionError::InvalidState {
            state: State::Binding,
            ..
        })
    ));
}

#[test]
fn second_bind_gets_already_bound() {
    let now = Instant::now();
    let mut smsc = bound_smsc(BindType::Transceiver, now);
    let out = answers(
        &mut smsc,
        Pdu::request(9, Body::BindTransmitter(credentials(PASSWORD))),
        now,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RALYBND);
    assert_eq!(out[0].command_id(), CommandId::BIND_TRANSMITTER_RESP);
    assert_eq!(out[0].sequence_number, 9);
    assert_eq!(smsc.state(), State::Bound(BindType::Transceiver));
    assert_eq!(smsc.poll_event(), None);
}

#[test]
fn outbind_is_surfaced_to_an_open_esme() {
    let now = Instant::now();
    let mut esme = Session::new(esme_config(BindType::Receiver), now);
    let out = answers(
        &mut esme,
        Pdu::request(
            1,
            Body::Outbind(Outbind {
                system_id: "smsc".into(),
                password: "pw".into(),
            }),
        ),
        now,
    );
    assert!(out.is_empty());
    assert_eq!(
        esme.poll_event(),
        Some(Event::Outbind {
            system_id: "smsc".into(),
            password: "pw".into()
        })
    );
    esme.bind(now).unwrap();
    assert_eq!(
        esme.poll_transmit().map(|p| p.command_id()),
        Some(CommandId::BIND_RECEIVER)
    );
}

// ---- requests and the window -----------------------------------------------------------------

#[test]
fn window_limits_outstanding_submits_and_responses_free_slots() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let now = pair.now;
    let seqs: Vec<u32> = (0..3)
        .map(|_| pair.esme.session.send_request(submit(), now).unwrap())
        .collect();
    assert_eq!(pair.esme.session.in_flight(), 3);
    assert_eq!(pair.esme.session.window_available(), 0);
    let full = pair.esme.session.send_request(submit(), now);
    assert_eq!(full, Err(SessionError::WindowFull { window: 3 }));
    assert!(full.unwrap_err().is_retryable());
    pair.drive();

    // The SMSC application answers the second one first: any response frees a slot.
    let requests: Vec<u32> = pair
        .smsc
        .take_events()
        .iter()
        .filter_map(|e| match e {
            Event::Request {
                sequence_number, ..
            } => Some(*sequence_number),
            _ => None,
        })
        .collect();
    assert_eq!(requests, seqs);
    assert_eq!(pair.smsc.session.awaiting_response(), 3);
    let resp = Body::SubmitSmResp(MessageIdResp {
        message_id: "abc".into(),
    });
    pair.smsc
        .session
        .respond(seqs[1], CommandStatus::ESME_ROK, resp.clone(), now)
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.esme.take_events(),
        vec![Event::Response {
            sequence_number: seqs[1],
            command_id: CommandId::SUBMIT_SM,
            status: CommandStatus::ESME_ROK,
            body: resp,
        }]
    );
    assert_eq!(pair.esme.session.window_available(), 1);
    let fourth = pair.esme.session.send_request(submit(), pair.now).unwrap();
    assert!(!seqs.contains(&fourth));
    assert_eq!(pair.esme.session.window_available(), 0);

    // Errors come back as responses with their status, and free the slot too.
    pair.smsc
        .session
        .respond(
            seqs[0],
            CommandStatus::ESME_RTHROTTLED,
            Body::SubmitSmResp(MessageIdResp::default()),
            pair.now,
        )
        .unwrap();
    pair.drive();
    assert_eq!(
        responses(&pair.esme.take_events()),
        vec![(seqs[0], CommandStatus::ESME_RTHROTTLED)]
    );
    assert_eq!(pair.esme.session.in_flight(), 2);
}

#[test]
fn respond_checks_its_input() {
    let mut pair = Pair::bound(BindType::Transceiver);
    pair.smsc.auto_respond = false;
    let seq = pair.esme.session.send_request(submit(), pair.now).unwrap();
    pair.drive();
    let smsc = &mut pair.smsc.session;
    assert_eq!(
        smsc.respond(
            seq + 100,
            CommandStatus::ESME_ROK,
            Body::GenericNack,
            pair.now
        ),
        Err(SessionError::NoSuchRequest {
            sequence_number: seq + 100
        })
    );
    assert_eq!(
        smsc.respond(
            seq,
            CommandStatus::ESME_ROK,
            Body::DataSmResp(DataSmResp::default()),
            pair.now
        ),
        Err(SessionError::WrongResponse {
            request: CommandId::SUBMIT_SM,
            got: CommandId::DATA_SM_RESP
        })
    );
    // Still answerable after a wrong attempt, and only once.
    smsc.respond(
        seq,
        CommandStatus::ESME_ROK,
        Body::SubmitSmResp(MessageIdResp::default()),
        pair.now,
    )
    .unwrap();
    assert!(smsc
        .respond(
            seq,
            CommandStatus::ESME_ROK,
            Body::SubmitSmResp(MessageIdResp::default()),
            pair.now
        )
        .is_err());
}

#[test]
fn smsc_delivers_to_a_receiver_and_the_esme_answers() {
    let mut pair = Pair::bound(BindType::Receiver);
    let seq = pair.smsc.session.send_request(deliver(), pair.now).unwrap();
    pair.drive();
    assert!(matches!(
        pair.esme.take_events().as_slice(),
        [Event::Request { sequence_number, body: Body::DeliverSm(_) }] if *sequence_number == seq
    ));
    assert_eq!(
        responses(&pair.smsc.take_events()),
        vec![(seq, CommandStatus::ESME_ROK)]
    );
    // alert_notification takes no window slot and needs no answer.
    pair.smsc
        .session
        .send_request(
            Body::AlertNotification(AlertNotification::default()),
            pair.now,
        )
        .unwrap();
    assert_eq!(pair.smsc.session.in_flight(), 0);
    pair.drive();
    assert!(matches!(
        pair.esme.take_events().as_slice(),
        [Event::AlertNotification(_)]
    ));
    assert_eq!(
        pair.esme.sent_ids(),
        vec![CommandId::BIND_RECEIVER, CommandId::DELIVER_SM_RESP]
    );
}

#[test]
fn response_timeouts_free_the_window_and_late_responses_are_unexpected() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let start = pair.now;
    let a = pair.esme.session.send_request(submit(), pair.now).unwrap();
    pair.advance(2 * SECOND);
    let b = pair.esme.session.send_request(submit(), pair.now).unwrap();
    assert_eq!(pair.esme.session.poll_timeout(), Some(start + 5 * SECOND));

    pair.advance(3 * SECOND);
    assert_eq!(timeouts(&pair.esme.take_events()), vec![a]);
    assert_eq!(pair.esme.session.in_flight(), 1);
    pair.advance(2 * SECOND);
    assert_eq!(timeouts(&pair.esme.take_events()), vec![b]);
    assert_eq!(pair.esme.session.in_flight(), 0);
    assert_eq!(pair.esme.session.window_available(), 3);

    // The SMSC answers after all: reported, not fatal.
    pair.smsc
        .session
        .respond(
            a,
            CommandStatus::ESME_ROK,
            Body::SubmitSmResp(MessageIdResp::default()),
            pair.now,
        )
        .unwrap();
    pair.drive();
    let events = pair.esme.take_events();
    assert!(matches!(events.as_slice(), [Event::UnexpectedResponse(p)] if p.sequence_number == a));
    assert_eq!(
        pair.esme.session.state(),
        State::Bound(BindType::Transmitter)
    );
}

#[test]
fn a_lost_response_times_out_while_the_others_complete() {
    let mut pair = Pair::bound(BindType::Transceiver);
    pair.latency = Duration::from_millis(50);
    pair.smsc.drop = Some(Box::new(|p| {
        p.command_id() == CommandId::SUBMIT_SM_RESP && p.sequence_number == 3
    }));
    let seqs: Vec<u32> = (0..3)
        .map(|_| pair.esme.session.send_request(submit(), pair.now).unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]); // 1 was the bind
    pair.advance(10 * SECOND);
    let events = pair.esme.take_events();
    assert_eq!(
        responses(&events),
        vec![(2, CommandStatus::ESME_ROK), (4, CommandStatus::ESME_ROK)]
    );
    assert_eq!(timeouts(&events), vec![3]);
}

#[test]
fn generic_nack_completes_the_matching_request() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let seq = pair.esme.session.send_request(submit(), pair.now).unwrap();
    pair.drive();
    pair.smsc
        .session
        .respond(
            seq,
            CommandStatus::ESME_RINVCMDLEN,
            Body::GenericNack,
            pair.now,
        )
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.esme.take_events(),
        vec![Event::Response {
            sequence_number: seq,
            command_id: CommandId::SUBMIT_SM,
            status: CommandStatus::ESME_RINVCMDLEN,
            body: Body::GenericNack,
        }]
    );
    assert_eq!(pair.esme.session.in_flight(), 0);

    // A generic_nack (or any response) for nothing outstanding is reported, not fatal, and so
    // is a response of the wrong type (which leaves the request outstanding).
    let esme = &mut pair.esme.session;
    let now = pair.now;
    esme.handle_pdu(
        Pdu::response(0, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
        now,
    );
    assert!(
        matches!(esme.poll_event(), Some(Event::UnexpectedResponse(p)) if p.sequence_number == 0)
    );
    let seq = esme.send_request(submit(), now).unwrap();
    esme.handle_pdu(
        Pdu::response(
            seq,
            CommandStatus::ESME_ROK,
            Body::DeliverSmResp(MessageIdResp::default()),
        ),
        now,
    );
    assert!(matches!(
        esme.poll_event(),
        Some(Event::UnexpectedResponse(_))
    ));
    assert_eq!(esme.in_flight(), 1);
    assert_eq!(esme.state(), State::Bound(BindType::Transmitter));
}

// ---- what the peer may and may not do --------------------------------------------------------

#[test]
fn requests_before_bind_are_rejected() {
    let now = Instant::now();
    let mut smsc = Session::new(smsc_config(), now);
    let out = answers(&mut smsc, Pdu::request(5, submit()), now);
    assert_eq!(
        out,
        vec![Pdu::response(
            5,
            CommandStatus::ESME_RINVBNDSTS,
            Body::SubmitSmResp(MessageIdResp::default())
        )]
    );
    let out = answers(&mut smsc, Pdu::request(6, Body::Unbind), now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(smsc.poll_event(), None);
    assert_eq!(smsc.state(), State::Open);

    let mut esme = Session::new(esme_config(BindType::Transceiver), now);
    assert!(matches!(
        esme.send_request(submit(), now),
        Err(SessionError::InvalidState {
            state: State::Open,
            ..
        })
    ));
    esme.bind(now).unwrap();
    let _ = esme.poll_transmit();
    let out = answers(&mut esme, Pdu::request(7, deliver()), now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(out[0].command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(esme.poll_event(), None);
}

#[test]
fn operations_the_bind_type_forbids_are_rejected() {
    // Our side: API errors.
    let mut rx = Pair::bound(BindType::Receiver);
    assert_eq!(
        rx.esme.session.send_request(submit(), rx.now),
        Err(SessionError::NotAllowed {
            command_id: CommandId::SUBMIT_SM,
            bind_type: BindType::Receiver
        })
    );
    let mut tx = Pair::bound(BindType::Transmitter);
    assert!(matches!(
        tx.smsc.session.send_request(deliver(), tx.now),
        Err(SessionError::NotAllowed { .. })
    ));
    assert!(matches!(
        tx.esme.session.send_request(deliver(), tx.now),
        Err(SessionError::NotAllowed { .. })
    ));
    assert_eq!(
        tx.esme.session.send_request(Body::EnquireLink, tx.now),
        Err(SessionError::NotAnOperation {
            command_id: CommandId::ENQUIRE_LINK
        })
    );

    // The peer's side: answered with ESME_RINVBNDSTS (bind type) or ESME_RINVCMDID (role).
    let now = Instant::now();
    let mut smsc = bound_smsc(BindType::Receiver, now);
    let out = answers(&mut smsc, Pdu::request(3, submit()), now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVBNDSTS);
    let out = answers(&mut smsc, Pdu::request(4, deliver()), now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVCMDID);
    assert_eq!(smsc.poll_event(), None);

    let mut esme = tx.esme.session;
    let out = answers(&mut esme, Pdu::request(8, deliver()), tx.now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVBNDSTS);
    let out = answers(&mut esme, Pdu::request(9, submit()), tx.now);
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVCMDID);
    let out = answers(
        &mut esme,
        Pdu::request(10, Body::BindTransmitter(Bind::default())),
        tx.now,
    );
    assert_eq!(out[0].command_status, CommandStatus::ESME_RINVCMDID);
    assert_eq!(esme.poll_event(), None);
    assert_eq!(esme.state(), State::Bound(BindType::Transmitter));
}

#[test]
fn a_peer_exceeding_our_peer_window_is_throttled() {
    let mut smsc_cfg = smsc_config();
    smsc_cfg.peer_window = 2;
    let mut pair = Pair::new(esme_config(BindType::Transmitter), smsc_cfg);
    pair.esme.session.bind(pair.now).unwrap();
    pair.drive();
    pair.smsc.auto_respond = false;
    let seqs: Vec<u32> = (0..3)
        .map(|_| pair.esme.session.send_request(submit(), pair.now).unwrap())
        .collect();
    pair.drive();
    assert_eq!(
        responses(&pair.esme.take_events()),
        vec![(seqs[2], CommandStatus::ESME_RTHROTTLED)]
    );
    assert_eq!(pair.smsc.session.awaiting_response(), 2);
}

/// A raw frame: header plus `body`, with a correct command_length.
fn frame(command_id: u32, status: u32, seq: u32, body: &[u8]) -> Bytes {
    let mut f = Vec::new();
    let len = u32::try_from(16 + body.len()).unwrap();
    for word in [len, command_id, status, seq] {
        f.extend_from_slice(&word.to_be_bytes());
    }
    f.extend_from_slice(body);
    Bytes::from(f)
}

fn decode_error(frame: Bytes) -> PduError {
    codec::decode(frame).expect_err("the frame is malformed")
}

#[test]
fn malformed_requests_are_answered_without_changing_state() {
    let now = Instant::now();
    let mut smsc = bound_smsc(BindType::Transceiver, now);

    // A submit_sm whose body stops inside service_type: submit_sm_resp with the error.
    let err = decode_error(frame(0x4, 0, 11, b"x"));
    smsc.handle_decode_error(&err, now);
    let answer = smsc.poll_transmit().unwrap();
    assert_eq!(answer.command_id(), CommandId::SUBMIT_SM_RESP);
    assert_eq!(answer.sequence_number, 11);
    assert_eq!(answer.command_status, err.command_status());
    assert!(!answer.command_status.is_ok());

    // An unknown command: generic_nack ESME_RINVCMDID.
    smsc.handle_decode_error(&decode_error(frame(0x7777, 0, 12, b"")), now);
    assert_eq!(
        smsc.poll_transmit(),
        Some(Pdu::response(
            12,
            CommandStatus::ESME_RINVCMDID,
            Body::GenericNack
        ))
    );

    // A malformed bind gets a bind_resp error, and binds nothing.
    smsc.handle_decode_error(&decode_error(frame(0x1, 0, 13, b"acme")), now);
    let answer = smsc.poll_transmit().unwrap();
    assert_eq!(answer.command_id(), CommandId::BIND_RECEIVER_RESP);
    assert!(!answer.command_status.is_ok());

    // A malformed response that answers nothing is dropped, not answered.
    smsc.handle_decode_error(&decode_error(frame(0x8000_0005, 0, 14, &[b'7'; 80])), now);
    assert_eq!(smsc.poll_transmit(), None);
    assert_eq!(smsc.poll_event(), None);
    assert_eq!(smsc.state(), State::Bound(BindType::Transceiver));

    let mut esme = Session::new(esme_config(BindType::Transceiver), now);
    esme.handle_decode_error(&decode_error(frame(0x5, 0, 1, b"")), now);
    assert_eq!(
        esme.poll_transmit().map(|p| p.command_id()),
        Some(CommandId::DELIVER_SM_RESP)
    );
    assert_eq!(esme.state(), State::Open);
}

#[test]
fn a_malformed_response_completes_its_request() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let seq = pair.esme.session.send_request(submit(), pair.now).unwrap();
    assert!(pair.esme.session.poll_transmit().is_some());
    // submit_sm_resp, ESME_ROK, with a message_id that never ends.
    let err = decode_error(frame(0x8000_0004, 0, seq, &[b'7'; 80]));
    pair.esme.session.handle_decode_error(&err, pair.now);
    assert_eq!(
        pair.esme.session.poll_event(),
        Some(Event::MalformedResponse {
            sequence_number: seq,
            command_id: CommandId::SUBMIT_SM,
            status: CommandStatus::ESME_ROK,
        })
    );
    assert_eq!(pair.esme.session.in_flight(), 0);
    assert_eq!(
        pair.esme.session.poll_transmit(),
        None,
        "responses are never answered"
    );

    // A malformed bind_resp binds or fails by its header status.
    let now = pair.now;
    let mut esme = Session::new(esme_config(BindType::Transceiver), now);
    esme.bind(now).unwrap();
    let bind = esme.poll_transmit().unwrap();
    let err = decode_error(frame(0x8000_0009, 0, bind.sequence_number, &[b's'; 40]));
    esme.handle_decode_error(&err, now);
    assert!(
        matches!(esme.poll_event(), Some(Event::Bound { system_id, .. }) if system_id.is_empty())
    );
    assert_eq!(esme.state(), State::Bound(BindType::Transceiver));
}

// ---- enquire_link and liveness ---------------------------------------------------------------

#[test]
fn enquire_link_is_sent_when_idle_and_answered_silently() {
    let mut pair = Pair::bound(BindType::Transceiver);
    let bound_at = pair.now;
    pair.advance(29 * SECOND);
    assert_eq!(pair.esme.sent_ids(), vec![CommandId::BIND_TRANSCEIVER]);
    pair.advance(SECOND);
    assert_eq!(
        pair.esme.sent_ids(),
        vec![CommandId::BIND_TRANSCEIVER, CommandId::ENQUIRE_LINK]
    );
    assert_eq!(pair.esme.sent[1].0 - bound_at, 30 * SECOND);
    assert_eq!(
        pair.smsc.sent_ids().last(),
        Some(&CommandId::ENQUIRE_LINK_RESP)
    );
    // Keeps going every interval; nobody's application hears of it.
    pair.advance(120 * SECOND);
    let probes = pair
        .esme
        .sent_ids()
        .iter()
        .filter(|id| **id == CommandId::ENQUIRE_LINK)
        .count();
    assert_eq!(probes, 5);
    assert!(pair.esme.events.is_empty() && pair.smsc.events.is_empty());
    assert_eq!(
        pair.esme.session.state(),
        State::Bound(BindType::Transceiver)
    );
}

#[test]
fn received_traffic_postpones_enquire_link() {
    let mut pair = Pair::bound(BindType::Transceiver);
    for _ in 0..4 {
        pair.advance(20 * SECOND);
        pair.smsc.session.send_request(deliver(), pair.now).unwrap();
        pair.drive();
    }
    assert!(!pair.esme.sent_ids().contains(&CommandId::ENQUIRE_LINK));
}

#[test]
fn unanswered_enquire_links_declare_the_link_dead() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let bound_at = pair.now;
    let seq = pair.esme.session.send_request(submit(), pair.now).unwrap();
    pair.drive();
    // From now on the SMSC's packets vanish.
    pair.smsc.drop = Some(Box::new(|_| true));
    pair.advance(120 * SECOND);
    let (at, closed) = pair.esme.events.last().unwrap().clone();
    // Idle 30 s → enquire_link; 5 s → missed, another; 5 s → second miss: dead.
    assert_eq!(at - bound_at, 40 * SECOND);
    assert_eq!(
        closed,
        Event::Closed {
            reason: CloseReason::EnquireLinkTimeout { missed: 2 },
            lost: vec![]
        }
    );
    // The submit had timed out long before (and was reported then, not as lost).
    assert_eq!(timeouts(&pair.esme.take_events()), vec![seq]);
    assert!(pair.esme.session.is_closed());
    assert_eq!(pair.esme.session.poll_timeout(), None);
    assert_eq!(pair.elapsed(bound_at), 120 * SECOND);
}

#[test]
fn enquire_link_is_answered_in_every_open_state_and_never_surfaced() {
    let now = Instant::now();
    let mut smsc = Session::new(smsc_config(), now);
    let out = answers(&mut smsc, Pdu::request(42, Body::EnquireLink), now);
    assert_eq!(
        out,
        vec![Pdu::response(
            42,
            CommandStatus::ESME_ROK,
            Body::EnquireLinkResp
        )]
    );
    assert_eq!(smsc.poll_event(), None);
    let mut esme = Session::new(esme_config(BindType::Receiver), now);
    esme.bind(now).unwrap();
    let _ = esme.poll_transmit();
    let out = answers(&mut esme, Pdu::request(43, Body::EnquireLink), now);
    assert_eq!(out[0].command_id(), CommandId::ENQUIRE_LINK_RESP);
    assert_eq!(esme.state(), State::Binding);
}

#[test]
fn inactivity_timeout_closes_a_silent_link() {
    let mut config = smsc_config();
    config.inactivity_timeout = Some(90 * SECOND);
    let mut pair = Pair::new(esme_config(BindType::Transceiver), config);
    pair.esme.session.bind(pair.now).unwrap();
    pair.drive();
    // The ESME's enquire_links (every 30 s) keep the SMSC's inactivity timer from firing.
    pair.advance(300 * SECOND);
    assert!(!pair.smsc.session.is_closed());
    // Once the ESME goes silent, the SMSC gives up 90 s after the last thing it heard.
    pair.esme.drop = Some(Box::new(|_| true));
    let silent_from = pair.now;
    pair.advance(300 * SECOND);
    let (at, event) = pair.smsc.events.last().unwrap().clone();
    assert_eq!(
        event,
        Event::Closed {
            reason: CloseReason::Inactivity(90 * SECOND),
            lost: vec![]
        }
    );
    assert!(at - silent_from <= 90 * SECOND);
}

// ---- unbind and close ------------------------------------------------------------------------

#[test]
fn esme_unbinds_gracefully() {
    let mut pair = Pair::bound(BindType::Transceiver);
    pair.esme.session.unbind(pair.now).unwrap();
    assert_eq!(pair.esme.session.state(), State::Unbinding);
    assert!(pair.esme.session.unbind(pair.now).is_ok());
    assert!(matches!(
        pair.esme.session.send_request(submit(), pair.now),
        Err(SessionError::InvalidState {
            state: State::Unbinding,
            ..
        })
    ));
    pair.drive();
    assert_eq!(
        pair.esme.take_events(),
        vec![Event::Closed {
            reason: CloseReason::Unbound { by_peer: false },
            lost: vec![]
        }]
    );
    assert_eq!(
        pair.smsc.take_events(),
        vec![Event::Closed {
            reason: CloseReason::Unbound { by_peer: true },
            lost: vec![]
        }]
    );
    assert_eq!(pair.smsc.sent_ids().last(), Some(&CommandId::UNBIND_RESP));
    assert!(!CloseReason::Unbound { by_peer: true }.is_failure());
}

#[test]
fn smsc_unbinds_and_the_esme_reports_its_lost_requests() {
    let mut pair = Pair::bound(BindType::Transceiver);
    pair.smsc.auto_respond = false;
    let seqs: Vec<u32> = (0..3)
        .map(|_| pair.esme.session.send_request(submit(), pair.now).unwrap())
        .collect();
    pair.drive();
    pair.smsc.session.unbind(pair.now).unwrap();
    pair.drive();
    let lost: Vec<LostRequest> = seqs
        .iter()
        .map(|&s| LostRequest {
            sequence_number: s,
            command_id: CommandId::SUBMIT_SM,
        })
        .collect();
    assert_eq!(
        pair.esme.closed(),
        Some((CloseReason::Unbound { by_peer: true }, lost))
    );
    assert_eq!(
        pair.smsc.closed(),
        Some((CloseReason::Unbound { by_peer: false }, vec![]))
    );
    // After close, the session refuses work and ignores input.
    let now = pair.now;
    let esme = &mut pair.esme.session;
    assert!(esme.send_request(submit(), now).is_err());
    esme.handle_pdu(Pdu::request(99, Body::EnquireLink), now);
    assert_eq!(esme.poll_transmit(), None);
    assert_eq!(esme.poll_event(), None);
}

#[test]
fn unbind_times_out_without_unbind_resp() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.drop = Some(Box::new(|p| p.command_id() == CommandId::UNBIND_RESP));
    let start = pair.now;
    pair.esme.session.unbind(pair.now).unwrap();
    pair.advance(10 * SECOND);
    let (at, event) = pair.esme.events.last().unwrap().clone();
    assert_eq!(at - start, 4 * SECOND);
    assert_eq!(
        event,
        Event::Closed {
            reason: CloseReason::UnbindTimeout,
            lost: vec![]
        }
    );
}

#[test]
fn connection_lost_and_abort_report_outstanding_requests() {
    let mut pair = Pair::bound(BindType::Transmitter);
    pair.smsc.auto_respond = false;
    let a = pair.esme.session.send_request(submit(), pair.now).unwrap();
    let b = pair
        .esme
        .session
        .send_request(Body::QuerySm(QuerySm::default()), pair.now)
        .unwrap();
    pair.esme.session.connection_lost(pair.now);
    pair.esme.session.connection_lost(pair.now);
    assert_eq!(
        pair.esme.session.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::ConnectionLost,
            lost: vec![
                LostRequest {
                    sequence_number: a,
                    command_id: CommandId::SUBMIT_SM
                },
                LostRequest {
                    sequence_number: b,
                    command_id: CommandId::QUERY_SM
                },
            ]
        })
    );
    assert_eq!(pair.esme.session.poll_event(), None);
    assert_eq!(
        pair.esme.session.poll_transmit(),
        None,
        "unsent PDUs are dropped"
    );
    pair.smsc.session.abort(pair.now);
    assert!(matches!(
        pair.smsc.session.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::Aborted,
            ..
        })
    ));
}

// ---- sequence numbers ------------------------------------------------------------------------

#[test]
fn sequence_numbers_wrap_to_one() {
    let mut config = esme_config(BindType::Transceiver);
    config.initial_sequence_number = MAX_SEQUENCE_NUMBER - 2;
    let mut pair = Pair::new(config, smsc_config());
    pair.esme.session.bind(pair.now).unwrap();
    pair.drive();
    let seqs: Vec<u32> = (0..3)
        .map(|_| pair.esme.session.send_request(submit(), pair.now).unwrap())
        .collect();
    assert_eq!(pair.esme.sent[0].1.sequence_number, MAX_SEQUENCE_NUMBER - 2);
    assert_eq!(seqs, vec![MAX_SEQUENCE_NUMBER - 1, MAX_SEQUENCE_NUMBER, 1]);
    pair.drive();
    assert_eq!(responses(&pair.esme.take_events()).len(), 3);

    // Out-of-range configuration is clamped rather than sent.
    let mut config = esme_config(BindType::Transceiver);
    config.initial_sequence_number = 0;
    let mut esme = Session::new(config, pair.now);
    esme.bind(pair.now).unwrap();
    assert_eq!(esme.poll_transmit().map(|p| p.sequence_number), Some(1));
}

// ---- properties ------------------------------------------------------------------------------

/// Arbitrary PDUs of every kind, with sequence numbers that often collide with ours.
fn any_pdu() -> impl Strategy<Value = Pdu> {
    let body = prop_oneof![
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::GenericNack),
        Just(Body::BindTransmitter(credentials(PASSWORD))),
        Just(Body::BindReceiver(credentials("bad"))),
        Just(Body::BindTransceiver(credentials(PASSWORD))),
        Just(Body::BindTransmitterResp(BindResp::default())),
        Just(Body::BindReceiverResp(BindResp::default())),
        Just(Body::BindTransceiverResp(BindResp::default())),
        Just(Body::Outbind(Outbind::default())),
        Just(submit()),
        Just(Body::SubmitSmResp(MessageIdResp::default())),
        Just(deliver()),
        Just(Body::DeliverSmResp(MessageIdResp::default())),
        Just(Body::DataSm(DataSm::default())),
        Just(Body::DataSmResp(DataSmResp::default())),
        Just(Body::SubmitMulti(SubmitMulti::default())),
        Just(Body::SubmitMultiResp(SubmitMultiResp::default())),
        Just(Body::QuerySm(QuerySm::default())),
        Just(Body::QuerySmResp(QuerySmResp::default())),
        Just(Body::CancelSm(CancelSm::default())),
        Just(Body::CancelSmResp),
        Just(Body::ReplaceSm(ReplaceSm::default())),
        Just(Body::ReplaceSmResp),
        Just(Body::AlertNotification(AlertNotification::default())),
    ];
    let seq = prop_oneof![4 => 0u32..8, 1 => any::<u32>()];
    let status = prop_oneof![
        3 => Just(CommandStatus::ESME_ROK),
        1 => Just(CommandStatus::ESME_RTHROTTLED),
        1 => any::<u32>().prop_map(CommandStatus),
    ];
    (status, seq, body).prop_map(|(command_status, sequence_number, body)| Pdu {
        command_status,
        sequence_number,
        body,
    })
}

/// Something that can happen to a session.
#[derive(Clone, Debug)]
enum Op {
    Receive(Box<Pdu>),
    DecodeError(u32, u32, u32),
    Advance(u64),
    Send(u8),
    Respond(u8, bool),
    Bind,
    Accept,
    Reject,
    Unbind,
    Lost,
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any_pdu().prop_map(|p| Op::Receive(Box::new(p))),
        2 => (prop_oneof![any::<u32>(), 0u32..0x10, (0u32..0x10).prop_map(|c| c | 0x8000_0000)], 0u32..8, prop_oneof![Just(0u32), any::<u32>()])
            .prop_map(|(c, s, st)| Op::DecodeError(c, s, st)),
        4 => (0u64..40_000).prop_map(Op::Advance),
        4 => any::<u8>().prop_map(Op::Send),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Op::Respond(i, ok)),
        1 => Just(Op::Bind),
        1 => Just(Op::Accept),
        1 => Just(Op::Reject),
        1 => Just(Op::Unbind),
        1 => Just(Op::Lost),
    ]
}

fn prop_config(esme: bool, window: usize, timeouts_ms: [u64; 4]) -> SessionConfig {
    let ms = Duration::from_millis;
    let mut c = if esme {
        esme_config(BindType::Transceiver)
    } else {
        smsc_config()
    };
    c.window = window;
    c.peer_window = window;
    c.response_timeout = ms(timeouts_ms[0]);
    c.enquire_link_interval = Some(ms(timeouts_ms[1]));
    c.bind_timeout = ms(timeouts_ms[2]);
    c.unbind_timeout = ms(timeouts_ms[3]);
    c.inactivity_timeout = if esme {
        None
    } else {
        Some(ms(timeouts_ms[1] * 3))
    };
    c.initial_sequence_number = MAX_SEQUENCE_NUMBER - 3;
    c
}

/// Runs `ops` against one session and checks the invariants after each.
fn check_invariants(mut session: Session, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let mut now = start;
    let window = session.config().window;
    let mut peer_requests: Vec<(u32, Body)> = Vec::new();
    let mut outstanding: HashSet<u32> = HashSet::new();
    let mut closed = false;
    for op in ops {
        match op {
            Op::Receive(pdu) => session.handle_pdu(*pdu, now),
            Op::DecodeError(c, s, st) => {
                // Bodies too short for anything but the empty operations: mostly malformed.
                if let Err(e) = codec::decode(frame(c, st, s, b"x")) {
                    session.handle_decode_error(&e, now);
                }
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(ms);
                session.handle_timeout(now);
                if let Some(t) = session.poll_timeout() {
                    prop_assert!(t > now, "deadline {:?} not after now", t - start);
                }
            }
            Op::Send(k) => {
                let body = match k % 4 {
                    0 => submit(),
                    1 => deliver(),
                    2 => Body::DataSm(DataSm::default()),
                    _ => Body::QuerySm(QuerySm::default()),
                };
                let expects = !body.expects_no_response();
                if let Ok(seq) = session.send_request(body, now) {
                    prop_assert!((1..=MAX_SEQUENCE_NUMBER).contains(&seq));
                    if expects {
                        prop_assert!(
                            outstanding.insert(seq),
                            "sequence {seq} reused while outstanding"
                        );
                    }
                }
            }
            Op::Respond(i, ok) => {
                if !peer_requests.is_empty() {
                    let pick = usize::from(i) % peer_requests.len();
                    // A generic_nack answers the most recent request with this sequence number
                    // (a peer may reuse one): the model removes the same one.
                    let pick = if ok {
                        pick
                    } else {
                        let seq = peer_requests[pick].0;
                        peer_requests
                            .iter()
                            .rposition(|(s, _)| *s == seq)
                            .unwrap_or(pick)
                    };
                    let (seq, body) = peer_requests.remove(pick);
                    let resp = if ok {
                        ok_response(&body, seq)
                    } else {
                        Body::GenericNack
                    };
                    let result = session.respond(seq, CommandStatus::ESME_ROK, resp, now);
                    prop_assert!(result.is_ok() || closed, "{result:?}");
                }
            }
            Op::Bind => drop(session.bind(now)),
            Op::Accept => drop(session.accept_bind(now)),
            Op::Reject => drop(session.reject_bind(CommandStatus::ESME_RINVPASWD, now)),
            Op::Unbind => drop(session.unbind(now)),
            Op::Lost => session.connection_lost(now),
        }
        prop_assert!(session.in_flight() <= window);
        prop_assert!(session.awaiting_response() <= window);
        while let Some(pdu) = session.poll_transmit() {
            if !pdu.body.is_response() {
                prop_assert!((1..=MAX_SEQUENCE_NUMBER).contains(&pdu.sequence_number));
            }
        }
        while let Some(event) = session.poll_event() {
            prop_assert!(!closed, "event after Closed: {event:?}");
            match event {
                Event::Request {
                    sequence_number,
                    body,
                } => peer_requests.push((sequence_number, body)),
                Event::Response {
                    sequence_number, ..
                }
                | Event::ResponseTimeout {
                    sequence_number, ..
                }
                | Event::MalformedResponse {
                    sequence_number, ..
                } => prop_assert!(outstanding.remove(&sequence_number)),
                Event::Closed { lost, .. } => {
                    closed = true;
                    for l in lost {
                        prop_assert!(outstanding.remove(&l.sequence_number));
                    }
                    prop_assert!(outstanding.is_empty());
                }
                _ => {}
            }
        }
        if closed {
            prop_assert!(session.is_closed());
            prop_assert_eq!(session.poll_timeout(), None);
            prop_assert_eq!(session.in_flight(), 0);
        } else if session.state() != State::Closed {
            prop_assert!(session.poll_timeout().is_some());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn esme_survives_anything(
        window in 0usize..5,
        timeouts in [1u64..20_000, 1u64..60_000, 1u64..20_000, 1u64..20_000],
        ops in proptest::collection::vec(any_op(), 0..80),
    ) {
        let mut session = Session::new(prop_config(true, window, timeouts), Instant::now());
        // Mostly start bound, so the interesting states are reached.
        let now = Instant::now();
        let _ = session.bind(now);
        if let Some(bind) = session.poll_transmit() {
            session.handle_pdu(Pdu::response(bind.sequence_number, CommandStatus::ESME_ROK, Body::BindTransceiverResp(BindResp::default())), now);
        }
        while session.poll_event().is_some() {}
        check_invariants(session, ops)?;
    }

    #[test]
    fn smsc_survives_anything(
        window in 0usize..5,
        timeouts in [1u64..20_000, 1u64..60_000, 1u64..20_000, 1u64..20_000],
        ops in proptest::collection::vec(any_op(), 0..80),
    ) {
        let session = Session::new(prop_config(false, window, timeouts), Instant::now());
        check_invariants(session, ops)?;
    }

    /// A well-behaved pair with random drops and traffic never gets stuck: every request ends
    /// in exactly one Response, ResponseTimeout or lost report.
    #[test]
    fn pair_accounts_for_every_request(
        drops in proptest::collection::vec(any::<bool>(), 64),
        sends in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..40),
        latency_ms in 0u64..2_000,
    ) {
        let mut pair = Pair::new(esme_config(BindType::Transceiver), smsc_config());
        pair.latency = Duration::from_millis(latency_ms);
        pair.esme.session.bind(pair.now).unwrap();
        pair.drive();
        let mut i = 0usize;
        pair.smsc.drop = Some(Box::new(move |p| {
            i += 1;
            p.command_id() == CommandId::SUBMIT_SM_RESP && drops[i % drops.len()]
        }));
        let mut esme_sent = HashSet::new();
        let mut smsc_sent = HashSet::new();
        for (wait, from_esme) in sends {
            pair.advance(Duration::from_millis(wait));
            let (side, body) = if from_esme { (&mut pair.esme, submit()) } else { (&mut pair.smsc, deliver()) };
            if let Ok(seq) = side.session.send_request(body, pair.now) {
                let fresh = if from_esme { esme_sent.insert(seq) } else { smsc_sent.insert(seq) };
                prop_assert!(fresh, "sequence reused");
            }
            prop_assert!(pair.esme.session.in_flight() <= 3);
        }
        pair.advance(20 * SECOND);
        for (side, sent) in [(&mut pair.esme, esme_sent), (&mut pair.smsc, smsc_sent)] {
            let events = side.take_events();
            let mut done: Vec<u32> = responses(&events).into_iter().map(|(s, _)| s).collect();
            done.extend(timeouts(&events));
            let mut expected: Vec<u32> = sent.into_iter().collect();
            expected.sort_unstable();
            done.sort_unstable();
            prop_assert_eq!(done, expected);
            prop_assert_eq!(side.session.in_flight(), 0);
            prop_assert!(side.session.state() == State::Bound(BindType::Transceiver));
        }
    }
}
