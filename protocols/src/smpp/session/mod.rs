//! The sans-IO SMPP session state machine (SMPP 3.4 §2, §3), for both roles: the ESME (client)
//! and the SMSC (server).
//!
//! A [`Session`] owns the bind handshake, sequence numbers, the window of outstanding requests
//! with their response timeouts, enquire_link keep-alive and liveness, and the unbind
//! handshake. It reads no clock and touches no socket: every call that depends on time takes
//! `now`, received PDUs go in through [`Session::handle_pdu`], and PDUs to send, events for the
//! application and the next deadline come out of [`Session::poll_transmit`],
//! [`Session::poll_event`] and [`Session::poll_timeout`]. The same inputs always give the same
//! outputs, which is what the virtual-time tests in `tests/smpp_session.rs` rely on.
//!
//! # Layout
//! - this file: [`Session`] and [`State`].
//! - [`SessionConfig`], [`Role`], [`BindType`]: what a session is told up front.
//! - [`Event`], [`CloseReason`], [`LostRequest`], [`SessionError`]: what comes out.
//! - `window`: the FIFO of outstanding requests (also the deadline queue).
//!
//! # States
//! ```text
//!  ESME:  Open ──bind()──► Binding ──bind_resp OK──► Bound(type) ──unbind()──► Unbinding ──► Closed
//!  SMSC:  Open ──bind_*──► Binding ──accept_bind()─► Bound(type) ◄─unbind (either side)─┘
//!         any failure, timeout, peer unbind, connection_lost(), abort() ──────────────────► Closed
//! ```
//!
//! # Behaviour worth knowing
//! - **Window**: at most `window` of our requests await a response; [`Session::send_request`]
//!   returns [`SessionError::WindowFull`] beyond it. A response, a matching generic_nack or a
//!   response timeout frees the slot ([`Event::Response`], [`Event::ResponseTimeout`]).
//! - **Sequence numbers** run 1..=0x7FFF_FFFF and wrap to 1, skipping any still outstanding.
//! - **Peer requests** are checked before the application sees them: wrong role
//!   (ESME_RINVCMDID), not bound or wrong bind type (ESME_RINVBNDSTS), a second bind
//!   (ESME_RALYBND), more than `peer_window` unanswered (ESME_RTHROTTLED). The session answers
//!   those itself; the rest arrive as [`Event::Request`] and the application must
//!   [`Session::respond`].
//! - **enquire_link** is answered automatically in every state and never surfaced. While bound,
//!   the session sends one after `enquire_link_interval` with nothing *received* (received
//!   traffic is what proves the peer alive; our own sends prove nothing). An enquire_link counts
//!   as missed if neither its response nor any other PDU arrives within `response_timeout`; after
//!   `enquire_link_max_missed` misses in a row the session closes with
//!   [`CloseReason::EnquireLinkTimeout`].
//! - **Closing**: [`Event::Closed`] is the last event, emitted once. It lists the requests still
//!   outstanding ([`LostRequest`]) so the gateway can re-queue them. For a graceful drain, stop
//!   sending, wait until [`Session::in_flight`] is 0, then [`Session::unbind`].
//! - **Malformed frames** go in through [`Session::handle_decode_error`]: a malformed request is
//!   answered with its `*_resp` (or generic_nack) and an error status, and the state does not
//!   change; a malformed response completes the request it answers
//!   ([`Event::MalformedResponse`]).
//!
//! # Driver loop
//! The tokio driver in `gateway` (and the SMSC simulator) owns the socket and the clock and
//! loops like this. After every input, drain `poll_transmit` and `poll_event`, then sleep until
//! `poll_timeout`:
//! ```ignore
//! let mut session = Session::new(SessionConfig::esme(BindType::Transceiver, creds), Instant::now());
//! session.bind(Instant::now())?;
//! loop {
//!     while let Some(pdu) = session.poll_transmit() {
//!         framed.feed(pdu).await?;                  // codec encodes
//!     }
//!     framed.flush().await?;
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Request { sequence_number, body } => { /* … */ session.respond(sequence_number, status, resp, Instant::now())?; }
//!             Event::Response { sequence_number, status, body, .. } => { /* complete the message */ }
//!             Event::Closed { reason, lost } => { /* re-queue `lost`, flush */ return Ok(reason); }
//!             _ => {}
//!         }
//!     }
//!     let deadline = session.poll_timeout();        // None only once closed
//!     tokio::select! {
//!         frame = framed.next() => match frame {      // Framed<TcpStream, codec::SmppCodec>
//!             Some(Ok(Ok(pdu))) => session.handle_pdu(pdu, Instant::now()),
//!             Some(Ok(Err(bad_pdu))) => session.handle_decode_error(&bad_pdu, Instant::now()),
//!             Some(Err(_)) | None => session.connection_lost(Instant::now()), // unframeable, EOF, I/O
//!         },
//!         _ = sleep_until(deadline.unwrap_or(far_future)) => session.handle_timeout(Instant::now()),
//!         Some(msg) = queue.recv(), if session.window_available() > 0 => {
//!             let seq = session.send_request(Body::SubmitSm(msg.pdu), Instant::now())?;
//!             /* remember seq → msg */
//!         }
//!     }
//! }
//! ```
//! `Instant` is `std::time::Instant`; a tokio driver passes `tokio::time::Instant::now().into_std()`
//! so that tests with a paused tokio clock stay in virtual time.
//!
//! The same loop, without a socket, is how the tests drive a pair of sessions:
//! ```
//! use std::time::Instant;
//! use switchyard_protocols::smpp::pdu::{Bind, Body, MessageIdResp, SubmitSm};
//! use switchyard_protocols::smpp::session::{BindType, Event, Session, SessionConfig, State};
//! use switchyard_protocols::smpp::CommandStatus;
//!
//! let now = Instant::now();
//! let creds = Bind { system_id: "acme".into(), password: "secret".into(), interface_version: 0x34, ..Bind::default() };
//! let mut esme = Session::new(SessionConfig::esme(BindType::Transceiver, creds), now);
//! let mut smsc = Session::new(SessionConfig::smsc("smsc"), now);
//!
//! esme.bind(now).unwrap();
//! while let Some(pdu) = esme.poll_transmit() { smsc.handle_pdu(pdu, now); }
//! // The SMSC application checks the credentials.
//! match smsc.poll_event() {
//!     Some(Event::BindRequest { bind, .. }) if bind.password.as_bytes() == b"secret" => smsc.accept_bind(now).unwrap(),
//!     other => panic!("{other:?}"),
//! }
//! while let Some(pdu) = smsc.poll_transmit() { esme.handle_pdu(pdu, now); }
//! assert_eq!(esme.state(), State::Bound(BindType::Transceiver));
//!
//! let seq = esme.send_request(Body::SubmitSm(SubmitSm::default()), now).unwrap();
//! while let Some(pdu) = esme.poll_transmit() { smsc.handle_pdu(pdu, now); }
//! while let Some(event) = smsc.poll_event() {
//!     if let Event::Request { sequence_number, .. } = event {
//!         let resp = Body::SubmitSmResp(MessageIdResp { message_id: "id-1".into() });
//!         smsc.respond(sequence_number, CommandStatus::ESME_ROK, resp, now).unwrap();
//!     }
//! }
//! while let Some(pdu) = smsc.poll_transmit() { esme.handle_pdu(pdu, now); }
//! let bound = esme.poll_event();
//! assert!(matches!(bound, Some(Event::Bound { .. })));
//! assert!(matches!(esme.poll_event(), Some(Event::Response { sequence_number, .. }) if sequence_number == seq));
//! ```

mod config;
mod event;
mod window;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::{self, PduError};
use super::pdu::{BindResp, Body, COctet, CommandId, Pdu};
use super::status::CommandStatus;
use super::tlv::{tag, Tlv, Tlvs};

pub use config::{BindType, Role, SessionConfig, MAX_SEQUENCE_NUMBER};
pub use event::{CloseReason, Event, LostRequest, SessionError};

use window::Window;

/// Durations longer than this are treated as this, so `now + duration` cannot overflow.
const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The interface_version we speak, reported in sc_interface_version.
const SMPP_34: u8 = 0x34;

/// What a received response turned out to answer (see `Session::take_answered`).
#[derive(Debug)]
enum Answered {
    /// Our keep-alive.
    EnquireLink,
    /// Our bind or unbind.
    Control(Outstanding),
    /// A request in the window, with its command_id.
    Request(CommandId),
    /// Nothing outstanding.
    Nothing,
}

/// Where a session is in its life (SMPP 3.4 §2.2, with `Binding`/`Unbinding` for the handshakes
/// in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Connected, not bound. ESME: call [`Session::bind`]. SMSC: waiting for a bind.
    Open,
    /// ESME: bind sent, awaiting bind_resp. SMSC: bind received, awaiting
    /// [`Session::accept_bind`] / [`Session::reject_bind`].
    Binding,
    /// Bound: operations allowed by the bind type may flow.
    Bound(BindType),
    /// We sent unbind and await unbind_resp.
    Unbinding,
    /// Over. The driver flushes what `poll_transmit` still returns and closes the connection.
    Closed,
}

/// One SMPP session (one TCP connection), ESME or SMSC side. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    /// Role, credentials, window and timers.
    config: SessionConfig,
    /// Where we are in the handshake.
    state: State,
    /// Our outstanding operations, oldest first: the window and the response deadlines.
    window: Window,
    /// Peer requests the application has been told about and must answer: (sequence, id).
    /// Lets `respond` check its input and caps what a flooding peer can make us hold.
    peer_pending: Vec<(u32, CommandId)>,
    /// Our bind or unbind awaiting its response (outside the window: the application never
    /// sees it and it must not take a slot).
    control: Option<Outstanding>,
    /// Our enquire_link awaiting its response.
    enquire_link: Option<Outstanding>,
    /// enquire_links unanswered in a row.
    missed_enquire_links: u32,
    /// SMSC: the bind awaiting the application's decision.
    pending_bind: Option<PendingBind>,
    /// SMSC: the connection must be bound by then (session init timer). `None` once bound.
    bind_deadline: Option<Instant>,
    /// When we last received anything: drives enquire_link and the inactivity timeout.
    last_rx: Instant,
    /// The next sequence number to try for our requests.
    next_sequence: u32,
    /// PDUs for the driver to send, in order.
    transmits: VecDeque<Pdu>,
    /// Events for the application, in order.
    events: VecDeque<Event>,
}

/// A request of the session's own (bind, unbind, enquire_link) awaiting its response.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    /// Its sequence number.
    sequence_number: u32,
    /// Its command_id, to match the response type.
    command_id: CommandId,
    /// When we sent it (an enquire_link is also answered by anything received after it).
    sent_at: Instant,
    /// When it times out.
    deadline: Instant,
}

/// SMSC: a bind the application has not decided on yet.
#[derive(Clone, Debug)]
struct PendingBind {
    /// The bind's sequence number, for the bind_resp.
    sequence_number: u32,
    /// What the ESME asked for.
    bind_type: BindType,
    /// The ESME's system_id, for the Bound event.
    system_id: COctet,
    /// The ESME's interface_version: decides whether bind_resp carries sc_interface_version.
    interface_version: u8,
}

impl Session {
    /// A session on a freshly opened connection, in [`State::Open`]. An SMSC starts its bind
    /// timer now.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let bind_deadline = match config.role {
            Role::Smsc { .. } => Some(after(now, config.bind_timeout)),
            Role::Esme { .. } => None,
        };
        let reserve = config.peer_window.min(1024);
        Session {
            window: Window::new(config.window),
            peer_pending: Vec::with_capacity(reserve),
            control: None,
            enquire_link: None,
            missed_enquire_links: 0,
            pending_bind: None,
            bind_deadline,
            last_rx: now,
            next_sequence: config.initial_sequence_number.clamp(1, MAX_SEQUENCE_NUMBER),
            transmits: VecDeque::with_capacity(config.window.min(1024) + 4),
            events: VecDeque::with_capacity(config.window.min(1024) + 4),
            state: State::Open,
            config,
        }
    }

    // ---- application calls -------------------------------------------------------------

    /// ESME: sends the bind_* request from the configuration and enters [`State::Binding`].
    /// The outcome arrives as [`Event::Bound`] or [`Event::Closed`] with
    /// [`CloseReason::BindFailed`] / [`CloseReason::BindTimeout`].
    pub fn bind(&mut self, now: Instant) -> Result<(), SessionError> {
        let (bind_type, credentials) = match &self.config.role {
            Role::Esme {
                bind_type,
                credentials,
            } => (*bind_type, credentials.clone()),
            Role::Smsc { .. } => return Err(SessionError::WrongRole { operation: "bind" }),
        };
        if self.state != State::Open {
            return Err(self.invalid_state("bind"));
        }
        let sequence_number = self.next_sequence_number();
        self.control = Some(Outstanding {
            sequence_number,
            command_id: bind_type.request_id(),
            sent_at: now,
            deadline: after(now, self.config.bind_timeout),
        });
        self.state = State::Binding;
        self.transmits.push_back(Pdu::request(
            sequence_number,
            bind_type.request(credentials),
        ));
        Ok(())
    }

    /// SMSC: accepts the bind announced by [`Event::BindRequest`]: sends bind_*_resp (with
    /// sc_interface_version when the ESME speaks 3.4 or later), enters [`State::Bound`] and
    /// emits [`Event::Bound`].
    pub fn accept_bind(&mut self, now: Instant) -> Result<(), SessionError> {
        let system_id = match &self.config.role {
            Role::Smsc { system_id } => system_id.clone(),
            Role::Esme { .. } => {
                return Err(SessionError::WrongRole {
                    operation: "accept_bind",
                })
            }
        };
        let Some(pending) = self.pending_bind.take() else {
            return Err(self.invalid_state("accept a bind"));
        };
        let mut tlvs = Tlvs::new();
        if pending.interface_version >= SMPP_34 {
            tlvs.push(Tlv::u8(tag::SC_INTERFACE_VERSION, SMPP_34));
        }
        let resp = bind_response(pending.bind_type, BindResp { system_id, tlvs });
        self.transmits.push_back(Pdu::response(
            pending.sequence_number,
            CommandStatus::ESME_ROK,
            resp,
        ));
        self.state = State::Bound(pending.bind_type);
        self.bind_deadline = None;
        // The liveness clock starts at the bind.
        self.last_rx = now;
        self.events.push_back(Event::Bound {
            bind_type: pending.bind_type,
            system_id: pending.system_id,
            interface_version: Some(pending.interface_version),
        });
        Ok(())
    }

    /// SMSC: refuses the bind announced by [`Event::BindRequest`] with `status` (e.g.
    /// ESME_RINVPASWD, ESME_RINVSYSID, ESME_RBINDFAIL; ESME_ROK is replaced by
    /// ESME_RBINDFAIL), then closes: the driver sends the bind_resp and drops the connection.
    pub fn reject_bind(&mut self, status: CommandStatus, now: Instant) -> Result<(), SessionError> {
        let _ = now;
        if self.config.role.is_esme() {
            return Err(SessionError::WrongRole {
                operation: "reject_bind",
            });
        }
        let Some(pending) = self.pending_bind.take() else {
            return Err(self.invalid_state("reject a bind"));
        };
        let status = if status.is_ok() {
            CommandStatus::ESME_RBINDFAIL
        } else {
            status
        };
        let resp = bind_response(pending.bind_type, BindResp::default());
        self.transmits
            .push_back(Pdu::response(pending.sequence_number, status, resp));
        self.close(CloseReason::BindRejected(status), true);
        Ok(())
    }

    /// Sends an operation: submit_sm, submit_multi, data_sm, query_sm, cancel_sm, replace_sm
    /// (ESME on a transmitter or transceiver bind), deliver_sm, data_sm, alert_notification
    /// (SMSC towards a receiver or transceiver). Returns the sequence number the
    /// [`Event::Response`] or [`Event::ResponseTimeout`] will carry (alert_notification expects
    /// no response and takes no window slot).
    pub fn send_request(&mut self, body: Body, now: Instant) -> Result<u32, SessionError> {
        let command_id = body.command_id();
        let esme = self.config.role.is_esme();
        let for_esme = matches!(
            command_id,
            CommandId::SUBMIT_SM
                | CommandId::SUBMIT_MULTI
                | CommandId::DATA_SM
                | CommandId::QUERY_SM
                | CommandId::CANCEL_SM
                | CommandId::REPLACE_SM
        );
        let for_smsc = matches!(
            command_id,
            CommandId::DELIVER_SM | CommandId::DATA_SM | CommandId::ALERT_NOTIFICATION
        );
        if !for_esme && !for_smsc {
            return Err(SessionError::NotAnOperation { command_id });
        }
        let State::Bound(bind_type) = self.state else {
            return Err(self.invalid_state("send a request"));
        };
        let allowed = if esme {
            for_esme && bind_type.esme_can_submit()
        } else {
            for_smsc && bind_type.smsc_can_deliver()
        };
        if !allowed {
            return Err(SessionError::NotAllowed {
                command_id,
                bind_type,
            });
        }
        if body.expects_no_response() {
            let sequence_number = self.next_sequence_number();
            self.transmits
                .push_back(Pdu::request(sequence_number, body));
            return Ok(sequence_number);
        }
        if self.window.available() == 0 {
            return Err(SessionError::WindowFull {
                window: self.window.limit(),
            });
        }
        let sequence_number = self.next_sequence_number();
        self.window.push(
            sequence_number,
            command_id,
            after(now, self.config.response_timeout),
        );
        self.transmits
            .push_back(Pdu::request(sequence_number, body));
        Ok(sequence_number)
    }

    /// Answers a peer request announced by [`Event::Request`] with `status` and `body` (the
    /// matching `*_resp`, or [`Body::GenericNack`]). Allowed until the session closes, so
    /// requests received before an unbind can still be answered while unbinding.
    pub fn respond(
        &mut self,
        sequence_number: u32,
        status: CommandStatus,
        body: Body,
        now: Instant,
    ) -> Result<(), SessionError> {
        let _ = now;
        if self.state == State::Closed {
            return Err(self.invalid_state("respond"));
        }
        // A peer may (wrongly) reuse a sequence number for requests of different types while
        // the first is pending; the response type tells them apart. A generic_nack fits any
        // of them: it answers the most recent one (the kept order is arrival order).
        let got = body.command_id();
        let answers = |&(seq, request): &(u32, CommandId)| {
            seq == sequence_number && (got == request.response() || got == CommandId::GENERIC_NACK)
        };
        let found = if got == CommandId::GENERIC_NACK {
            self.peer_pending.iter().rposition(answers)
        } else {
            self.peer_pending.iter().position(answers)
        };
        let Some(index) = found else {
            let pending = self.peer_pending.iter().find(|p| p.0 == sequence_number);
            return Err(match pending {
                Some(&(_, request)) => SessionError::WrongResponse { request, got },
                None => SessionError::NoSuchRequest { sequence_number },
            });
        };
        self.peer_pending.remove(index);
        self.transmits
            .push_back(Pdu::response(sequence_number, status, body));
        Ok(())
    }

    /// Forgets a peer request announced by [`Event::Request`] without answering it, freeing
    /// its place in the peer window. The peer will see a response timeout. Only simulators
    /// (the "lost response" fault) and applications that must stay silent need this.
    pub fn ignore_request(&mut self, sequence_number: u32) -> Result<(), SessionError> {
        match self
            .peer_pending
            .iter()
            .position(|p| p.0 == sequence_number)
        {
            Some(index) => {
                self.peer_pending.remove(index);
                Ok(())
            }
            None => Err(SessionError::NoSuchRequest { sequence_number }),
        }
    }

    /// Starts the unbind handshake: sends unbind and enters [`State::Unbinding`]; the session
    /// closes on unbind_resp ([`CloseReason::Unbound`]) or after `unbind_timeout`
    /// ([`CloseReason::UnbindTimeout`]). Requests still outstanding are reported as lost
    /// then; drain first (see the module docs) to avoid that. Calling it again while unbinding
    /// does nothing.
    pub fn unbind(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.state {
            State::Bound(_) => {}
            State::Unbinding => return Ok(()),
            _ => return Err(self.invalid_state("unbind")),
        }
        let sequence_number = self.next_sequence_number();
        self.control = Some(Outstanding {
            sequence_number,
            command_id: CommandId::UNBIND,
            sent_at: now,
            deadline: after(now, self.config.unbind_timeout),
        });
        self.enquire_link = None;
        self.state = State::Unbinding;
        self.transmits
            .push_back(Pdu::request(sequence_number, Body::Unbind));
        Ok(())
    }

    /// The driver lost the connection (EOF, I/O error): closes with
    /// [`CloseReason::ConnectionLost`], reporting outstanding requests. No-op once closed.
    pub fn connection_lost(&mut self, now: Instant) {
        let _ = now;
        if self.state != State::Closed {
            self.close(CloseReason::ConnectionLost, false);
        }
    }

    /// Closes at once without unbinding ([`CloseReason::Aborted`]), reporting outstanding
    /// requests. No-op once closed.
    pub fn abort(&mut self, now: Instant) {
        let _ = now;
        if self.state != State::Closed {
            self.close(CloseReason::Aborted, false);
        }
    }

    // ---- driver inputs -----------------------------------------------------------------

    /// Processes one received PDU. Never fails: whatever the peer does wrong is answered (with
    /// an error status or generic_nack), reported as an [`Event`], or closes the session.
    /// Ignored once closed.
    pub fn handle_pdu(&mut self, pdu: Pdu, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_rx = now;
        if pdu.body.is_response() {
            self.on_response(pdu);
        } else {
            self.on_request(pdu);
        }
    }

    /// A frame that failed to decode ([`codec::decode`] returned
    /// `error`). Costs one frame, never the session.
    ///
    /// - A malformed *request* is answered as [`codec::error_response`]
    ///   says: its own `*_resp` with the error status, or generic_nack for an unknown command;
    ///   outbind and alert_notification get nothing. The state does not change (a malformed
    ///   bind does not bind, a malformed unbind does not unbind).
    /// - A malformed *response* is never answered. If it answers one of our requests, that
    ///   request completes with [`Event::MalformedResponse`] carrying the header's
    ///   command_status, which is still trustworthy: the peer *did* answer, so re-sending would
    ///   risk a duplicate. A malformed bind_resp binds or fails by its header status; a
    ///   malformed unbind_resp completes the unbind. A malformed response matching nothing is
    ///   dropped (the driver logs the error anyway).
    ///
    /// Either way it counts as traffic received for liveness.
    pub fn handle_decode_error(&mut self, error: &PduError, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_rx = now;
        if error.command_id.is_response() {
            self.on_malformed_response(error);
        } else if let Some(answer) = codec::error_response(error) {
            self.transmits.push_back(answer);
        }
    }

    /// Fires every timer due at `now`: response timeouts, bind/unbind timeouts, enquire_link
    /// sending and expiry, inactivity. Call it when [`Session::poll_timeout`] passes (calling it
    /// early or often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        while let Some(entry) = self.window.pop_expired(now) {
            self.events.push_back(Event::ResponseTimeout {
                sequence_number: entry.sequence_number,
                command_id: entry.command_id,
            });
        }
        if let Some(control) = self.control {
            if control.deadline <= now {
                let reason = if control.command_id == CommandId::UNBIND {
                    CloseReason::UnbindTimeout
                } else {
                    CloseReason::BindTimeout
                };
                self.close(reason, false);
                return;
            }
        }
        if let Some(deadline) = self.bind_deadline {
            if deadline <= now && matches!(self.state, State::Open | State::Binding) {
                self.close(CloseReason::BindTimeout, false);
                return;
            }
        }
        if let Some(limit) = self.config.inactivity_timeout {
            if after(self.last_rx, limit) <= now {
                self.close(CloseReason::Inactivity(limit.min(MAX_TIMER)), false);
                return;
            }
        }
        if let Some(probe) = self.enquire_link {
            if probe.deadline <= now {
                self.enquire_link = None;
                if self.last_rx > probe.sent_at {
                    // Something else arrived meanwhile: the peer is alive.
                    self.missed_enquire_links = 0;
                } else {
                    self.missed_enquire_links = self.missed_enquire_links.saturating_add(1);
                    let missed = self.missed_enquire_links;
                    if missed >= self.config.enquire_link_max_missed.max(1) {
                        self.close(CloseReason::EnquireLinkTimeout { missed }, false);
                        return;
                    }
                    self.send_enquire_link(now);
                }
            }
        }
        if self.enquire_link.is_none() {
            if let Some(due) = self.enquire_link_due() {
                if due <= now {
                    self.send_enquire_link(now);
                }
            }
        }
    }

    // ---- driver outputs ----------------------------------------------------------------

    /// The next PDU to send, if any. Drain it after every call that changes the session.
    pub fn poll_transmit(&mut self) -> Option<Pdu> {
        self.transmits.pop_front()
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called. `None` once closed (and never
    /// otherwise while any timer is configured). Cheap: a handful of comparisons.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let bind = match self.state {
            State::Open | State::Binding => self.bind_deadline,
            _ => None,
        };
        let probe = match self.enquire_link {
            Some(p) => Some(p.deadline),
            None => self.enquire_link_due(),
        };
        let inactivity = self
            .config
            .inactivity_timeout
            .map(|d| after(self.last_rx, d));
        [
            self.window.next_deadline(),
            self.control.map(|c| c.deadline),
            bind,
            probe,
            inactivity,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// SMSC: changes how many of the peer's requests may await the application's answer
    /// (`peer_window`). A server learns the ESME's allowance only from its bind; requests
    /// already waiting are not affected.
    pub fn set_peer_window(&mut self, peer_window: usize) {
        self.config.peer_window = peer_window;
    }

    // ---- inspection --------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration the session was created with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Our requests awaiting a response (the window in use).
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// Free window slots: how many more requests [`Session::send_request`] accepts now.
    pub fn window_available(&self) -> usize {
        match self.state {
            State::Bound(_) => self.window.available(),
            _ => 0,
        }
    }

    /// Peer requests announced by [`Event::Request`] that the application has not answered.
    pub fn awaiting_response(&self) -> usize {
        self.peer_pending.len()
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    // ---- internals ---------------------------------------------------------------------

    /// Finds (and takes) what a response with this sequence number and command_id answers:
    /// our enquire_link, our bind/unbind, or a request in the window. generic_nack answers
    /// any of them.
    fn take_answered(&mut self, sequence_number: u32, command_id: CommandId) -> Answered {
        let nack = command_id == CommandId::GENERIC_NACK;
        if let Some(probe) = self.enquire_link {
            if probe.sequence_number == sequence_number
                && (nack || command_id == CommandId::ENQUIRE_LINK_RESP)
            {
                self.enquire_link = None;
                self.missed_enquire_links = 0;
                return Answered::EnquireLink;
            }
        }
        if let Some(control) = self.control {
            if control.sequence_number == sequence_number
                && (nack || command_id == control.command_id.response())
            {
                self.control = None;
                return Answered::Control(control);
            }
        }
        let matches = self
            .window
            .get(sequence_number)
            .is_some_and(|e| nack || command_id == e.command_id.response());
        if !matches {
            return Answered::Nothing;
        }
        match self.window.remove(sequence_number) {
            Some(entry) => Answered::Request(entry.command_id),
            None => Answered::Nothing,
        }
    }

    fn on_response(&mut self, pdu: Pdu) {
        let sequence_number = pdu.sequence_number;
        match self.take_answered(sequence_number, pdu.command_id()) {
            Answered::EnquireLink => {}
            Answered::Control(control) => self.on_control_response(control, pdu),
            Answered::Request(command_id) => self.events.push_back(Event::Response {
                sequence_number,
                command_id,
                status: pdu.command_status,
                body: pdu.body,
            }),
            Answered::Nothing => self.events.push_back(Event::UnexpectedResponse(pdu)),
        }
    }

    fn on_malformed_response(&mut self, error: &PduError) {
        let sequence_number = error.sequence_number;
        let status = error.header_status;
        let nack = error.command_id == CommandId::GENERIC_NACK;
        match self.take_answered(sequence_number, error.command_id) {
            Answered::EnquireLink | Answered::Nothing => {}
            Answered::Control(control) => {
                // The body is unreadable: carry on with an empty one and the header's status.
                let body = if nack {
                    Body::GenericNack
                } else {
                    CommandId::empty_response(control.command_id).unwrap_or(Body::GenericNack)
                };
                self.on_control_response(control, Pdu::response(sequence_number, status, body));
            }
            Answered::Request(command_id) => self.events.push_back(Event::MalformedResponse {
                sequence_number,
                command_id,
                status,
            }),
        }
    }

    fn on_control_response(&mut self, control: Outstanding, pdu: Pdu) {
        if control.command_id == CommandId::UNBIND {
            // Whatever its status, the peer has answered: we are done.
            self.close(CloseReason::Unbound { by_peer: false }, false);
            return;
        }
        let Role::Esme { bind_type, .. } = self.config.role else {
            return;
        };
        let status = pdu.command_status;
        match pdu.body {
            Body::BindTransmitterResp(resp)
            | Body::BindReceiverResp(resp)
            | Body::BindTransceiverResp(resp)
                if status.is_ok() =>
            {
                self.state = State::Bound(bind_type);
                let interface_version = resp
                    .tlvs
                    .get(tag::SC_INTERFACE_VERSION)
                    .and_then(Tlv::as_u8);
                self.events.push_back(Event::Bound {
                    bind_type,
                    system_id: resp.system_id,
                    interface_version,
                });
            }
            _ => {
                // An error bind_resp, or generic_nack (with ESME_ROK if the peer is confused).
                let status = if status.is_ok() {
                    CommandStatus::ESME_RBINDFAIL
                } else {
                    status
                };
                self.close(CloseReason::BindFailed(status), false);
            }
        }
    }

    fn on_request(&mut self, pdu: Pdu) {
        let sequence_number = pdu.sequence_number;
        let command_id = pdu.command_id();
        match pdu.body {
            Body::EnquireLink => self.transmits.push_back(Pdu::response(
                sequence_number,
                CommandStatus::ESME_ROK,
                Body::EnquireLinkResp,
            )),
            Body::Unbind => match self.state {
                State::Bound(_) | State::Unbinding => {
                    self.transmits.push_back(Pdu::response(
                        sequence_number,
                        CommandStatus::ESME_ROK,
                        Body::UnbindResp,
                    ));
                    self.close(CloseReason::Unbound { by_peer: true }, true);
                }
                _ => self.reject(command_id, sequence_number, CommandStatus::ESME_RINVBNDSTS),
            },
            Body::BindTransmitter(bind) => {
                self.on_bind(sequence_number, BindType::Transmitter, bind)
            }
            Body::BindReceiver(bind) => self.on_bind(sequence_number, BindType::Receiver, bind),
            Body::BindTransceiver(bind) => {
                self.on_bind(sequence_number, BindType::Transceiver, bind)
            }
            Body::Outbind(outbind) => {
                // No response is defined for outbind; out of place, it is ignored.
                if self.config.role.is_esme() && self.state == State::Open {
                    self.events.push_back(Event::Outbind {
                        system_id: outbind.system_id,
                        password: outbind.password,
                    });
                }
            }
            Body::AlertNotification(alert) => {
                // No response is defined; out of place, it is ignored.
                if let (true, State::Bound(bind_type)) = (self.config.role.is_esme(), self.state) {
                    if bind_type.smsc_can_deliver() {
                        self.events.push_back(Event::AlertNotification(alert));
                    }
                }
            }
            body => self.on_operation(sequence_number, command_id, body),
        }
    }

    fn on_bind(&mut self, sequence_number: u32, bind_type: BindType, bind: super::pdu::Bind) {
        let status = match (&self.config.role, self.state) {
            (Role::Esme { .. }, _) => CommandStatus::ESME_RINVCMDID,
            (Role::Smsc { .. }, State::Open) => {
                self.state = State::Binding;
                self.pending_bind = Some(PendingBind {
                    sequence_number,
                    bind_type,
                    system_id: bind.system_id.clone(),
                    interface_version: bind.interface_version,
                });
                self.events
                    .push_back(Event::BindRequest { bind_type, bind });
                return;
            }
            (Role::Smsc { .. }, State::Bound(_)) => CommandStatus::ESME_RALYBND,
            (Role::Smsc { .. }, _) => CommandStatus::ESME_RINVBNDSTS,
        };
        self.reject(bind_type.request_id(), sequence_number, status);
    }

    fn on_operation(&mut self, sequence_number: u32, command_id: CommandId, body: Body) {
        let esme = self.config.role.is_esme();
        let valid_for_role = if esme {
            matches!(command_id, CommandId::DELIVER_SM | CommandId::DATA_SM)
        } else {
            matches!(
                command_id,
                CommandId::SUBMIT_SM
                    | CommandId::SUBMIT_MULTI
                    | CommandId::DATA_SM
                    | CommandId::QUERY_SM
                    | CommandId::CANCEL_SM
                    | CommandId::REPLACE_SM
            )
        };
        let status = if !valid_for_role {
            CommandStatus::ESME_RINVCMDID
        } else {
            match self.state {
                State::Bound(bt) if esme && bt.smsc_can_deliver() => CommandStatus::ESME_ROK,
                State::Bound(bt) if !esme && bt.esme_can_submit() => CommandStatus::ESME_ROK,
                _ => CommandStatus::ESME_RINVBNDSTS,
            }
        };
        let status = if status.is_ok() && self.peer_pending.len() >= self.config.peer_window {
            CommandStatus::ESME_RTHROTTLED
        } else {
            status
        };
        if !status.is_ok() {
            self.reject(command_id, sequence_number, status);
            return;
        }
        self.peer_pending.push((sequence_number, command_id));
        self.events.push_back(Event::Request {
            sequence_number,
            body,
        });
    }

    /// Answers a request the session refuses on its own: the matching `*_resp` with an empty
    /// body, or generic_nack when the command has no response.
    fn reject(&mut self, command_id: CommandId, sequence_number: u32, status: CommandStatus) {
        let body = CommandId::empty_response(command_id).unwrap_or(Body::GenericNack);
        self.transmits
            .push_back(Pdu::response(sequence_number, status, body));
    }

    fn send_enquire_link(&mut self, now: Instant) {
        let sequence_number = self.next_sequence_number();
        self.enquire_link = Some(Outstanding {
            sequence_number,
            command_id: CommandId::ENQUIRE_LINK,
            sent_at: now,
            deadline: after(now, self.config.response_timeout),
        });
        self.transmits
            .push_back(Pdu::request(sequence_number, Body::EnquireLink));
    }

    /// When the next enquire_link is due, if one is to be sent at all.
    fn enquire_link_due(&self) -> Option<Instant> {
        match self.state {
            State::Bound(_) => self
                .config
                .enquire_link_interval
                .map(|i| after(self.last_rx, i)),
            _ => None,
        }
    }

    /// The next sequence number, 1..=0x7FFF_FFFF, wrapping to 1 and skipping any still
    /// outstanding. Terminates: at most `window + 2` numbers are outstanding.
    fn next_sequence_number(&mut self) -> u32 {
        loop {
            let candidate = self.next_sequence;
            self.next_sequence = if candidate >= MAX_SEQUENCE_NUMBER {
                1
            } else {
                candidate + 1
            };
            let in_use = self.window.contains(candidate)
                || self.control.is_some_and(|c| c.sequence_number == candidate)
                || self
                    .enquire_link
                    .is_some_and(|c| c.sequence_number == candidate);
            if !in_use {
                return candidate;
            }
        }
    }

    /// Ends the session: reports the outstanding requests and emits [`Event::Closed`].
    /// `keep_transmits` keeps the final PDU for the peer (unbind_resp, bind_resp); otherwise
    /// nothing queued is worth sending.
    fn close(&mut self, reason: CloseReason, keep_transmits: bool) {
        self.state = State::Closed;
        self.control = None;
        self.enquire_link = None;
        self.pending_bind = None;
        self.bind_deadline = None;
        self.peer_pending.clear();
        if !keep_transmits {
            self.transmits.clear();
        }
        let lost = self.window.drain();
        self.events.push_back(Event::Closed { reason, lost });
    }

    fn invalid_state(&self, operation: &'static str) -> SessionError {
        SessionError::InvalidState {
            operation,
            state: self.state,
        }
    }
}

/// `now + d`, with `d` capped so it cannot overflow.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TIMER)).unwrap_or(now)
}

/// The bind_*_resp body for a bind type.
fn bind_response(bind_type: BindType, resp: BindResp) -> Body {
    match bind_type {
        BindType::Transmitter => Body::BindTransmitterResp(resp),
        BindType::Receiver => Body::BindReceiverResp(resp),
        BindType::Transceiver => Body::BindTransceiverResp(resp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::{Bind, MessageIdResp, SubmitSm};

    fn bound_esme(now: Instant) -> Session {
        let mut config = SessionConfig::esme(BindType::Transceiver, Bind::default());
        config.window = 4;
        config.response_timeout = Duration::from_secs(100);
        let mut s = Session::new(config, now);
        s.bind(now).unwrap();
        let bind = s.poll_transmit().unwrap();
        s.handle_pdu(
            Pdu::response(
                bind.sequence_number,
                CommandStatus::ESME_ROK,
                Body::BindTransceiverResp(BindResp::default()),
            ),
            now,
        );
        assert_eq!(s.state(), State::Bound(BindType::Transceiver));
        s
    }

    #[test]
    fn sequence_numbers_skip_those_still_outstanding() {
        let now = Instant::now();
        let mut s = bound_esme(now);
        let submit = || Body::SubmitSm(SubmitSm::default());
        let a = s.send_request(submit(), now).unwrap();
        let b = s.send_request(submit(), now).unwrap();
        assert_eq!((a, b), (2, 3));
        // An enquire_link is outstanding too.
        s.handle_timeout(now + Duration::from_secs(30));
        let probe = s.enquire_link.map(|p| p.sequence_number);
        assert_eq!(probe, Some(4));
        // A full cycle later, 2, 3 and 4 are still taken: the wrap goes 0x7FFF_FFFF → 1 → 5.
        s.next_sequence = MAX_SEQUENCE_NUMBER;
        let later = now + Duration::from_secs(31);
        let c = s.send_request(submit(), later).unwrap();
        let d = s.send_request(submit(), later).unwrap();
        assert_eq!((c, d), (MAX_SEQUENCE_NUMBER, 1));
        s.handle_pdu(
            Pdu::response(
                a,
                CommandStatus::ESME_ROK,
                Body::SubmitSmResp(MessageIdResp::default()),
            ),
            later,
        );
        s.next_sequence = 2;
        let e = s.send_request(submit(), later).unwrap();
        assert_eq!(e, 2, "freed by its response");
        s.handle_pdu(
            Pdu::response(
                e,
                CommandStatus::ESME_ROK,
                Body::SubmitSmResp(MessageIdResp::default()),
            ),
            later,
        );
        let f = s.send_request(submit(), later).unwrap();
        assert_eq!(f, 5, "3 (window) and 4 (enquire_link) are skipped");
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        let now = Instant::now();
        let mut config = SessionConfig::smsc("smsc");
        config.bind_timeout = Duration::MAX;
        config.response_timeout = Duration::MAX;
        config.inactivity_timeout = Some(Duration::MAX);
        config.window = usize::MAX;
        config.peer_window = usize::MAX;
        let s = Session::new(config, now);
        assert_eq!(s.poll_timeout(), Some(now + MAX_TIMER));
    }
}
