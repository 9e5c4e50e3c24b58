//! One notification call as a state machine without I/O: it decides, [`super::call`] does.
//! It never touches a socket, a timer or the clock: every input carries `now`, and what must
//! happen comes out of [`Caller::poll_action`] (send this request, play, record this trunk
//! outcome, the call is over) and [`Caller::poll_timeout`] (when to call
//! [`Caller::handle_timeout`]).
//!
//! # Driving it
//! ```text
//! let mut caller = Caller::new(plan, candidates, &router, now);   // the first INVITE is queued
//! loop {
//!     while let Some(action) = caller.poll_action() { perform it; Finished(outcome) → done }
//!     wait for the first of:
//!         an endpoint event       → handle_event (its channel closed: handle_endpoint_gone)
//!         poll_timeout()          → handle_timeout
//!         the gateway stopping    → handle_shutdown (once)
//!         the last audio packet   → handle_audio_played (the driver paces packets, 20 ms)
//!         RTP, if wants_rtp()     → handle_rtp
//! }
//! ```
//!
//! # States
//! ```text
//! Inviting ──2xx──────────────────────────────────────────► Talking
//!    ├─ silent, ring timer, shutdown, after a 1xx ─► Cancelling ─┬─ 2xx ──────► Talking
//!    │                                                           └─ final, 4 s ─► (given up)
//!    ├─ given up: 408, 5xx, 401/407, timer B, silent ─► Inviting the next trunk, or Done
//!    └─ callee's final answer, ring timer, shutdown ──► Done
//! Talking ─ audio and wait over, digits, max duration, shutdown, no SDP ─► HangingUp (BYE)
//!    └─ callee's BYE ──► Done
//! HangingUp ─ BYE answered, or 4 s ─► Done
//! ```
//!
//! # Trunk outcomes
//! Trunks are tried in the order given, each only if its breaker admits it when its turn
//! comes ([`Breakers`]). As in [`crate::sip::proxy`] ([`crate::carrier::sip_verdict`]): 5xx,
//! 408, 401/407 (calls carry no credentials), timer B, a transport error, or no provisional
//! beyond 100 within `[voice] trunk_timeout_ms` (CANCELled if it had sent 100) → the next
//! trunk, with the failure recorded in the router's health and breaker (503 with Retry-After as
//! throttling). 2xx, other 3xx/4xx, and 6xx end the search and count as the trunk working.
//! Ringing longer than `[voice] ring_timeout_s` (counted from the INVITE) is CANCELled:
//! `no_answer`. A 2xx that races a CANCEL wins: the call is played.
//!
//! Outcomes are recorded by carrier name ([`Action::Record`]): a routing reload renumbers
//! carriers while a call rings, so the driver resolves the name when it records.
//!
//! # Call outcomes ([`CallOutcome::error`])
//! answered → `None` (also when the gateway stopped mid-call: `hangup_reason: "shutdown"`,
//! after a BYE); 486/600 → `busy`; 603 → `declined`; 480, 487, our ring timer, or every
//! trunk timing out → `no_answer`; other 3xx/4xx/6xx → `rejected`; every trunk failing
//! otherwise → `carrier_error` (with the last SIP code); 2xx without usable SDP →
//! `media_error` (the call is ACKed and hung up at once); the gateway stopping while it rang →
//! `interrupted` (CANCELled; no further trunk is dialled once the gateway is stopping).
//!
//! # In the call
//! The 2xx is ACKed (again for each retransmission of it); with a usable SDP answer the audio
//! plays ([`Action::Play`]) until it has all gone out, then the call waits one packet time
//! (the last frame plays out before our BYE) or, with digit capture, `timeout_s`. It ends
//! earlier on enough digits, `max_duration_s` after the answer, the callee's BYE, or shutdown;
//! then BYE (unless the callee hung up), waiting at most [`CLOSE_WAIT`] for its answer.
//!
//! # Digits
//! RFC 4733 telephone-events count only from the callee's stream: RTP from the address of the
//! SDP answer, with the SSRC of the first packet seen from it ([`super::latch`]); packets from
//! anywhere else are ignored, so nobody else can press keys in the callee's name.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::dtmf::DtmfReceiver;
use switchyard_protocols::sip::rtp::RtpPacket;
use switchyard_protocols::sip::sdp::{self, AudioConfig, SessionDescription};
use switchyard_protocols::sip::{Message, Method};
use switchyard_routing::{Admission, FailureClass, Outcome, Price, Router, VoiceTerms, E164};

use super::dialog::{self, in_dialog, CallEvent};
use super::latch::RtpLatch;
use super::{CallOutcome, DtmfCapture, TrunkTry};
use crate::carrier::sip_verdict::{self, SipVerdict};
use crate::sip::trunks::Trunk;

/// How long a BYE or CANCEL may wait for its final response.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(4);
/// Packet time: the driver sends one audio packet per `PTIME`.
pub(crate) const PTIME: Duration = Duration::from_millis(20);

/// A trunk the call may use, best first.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Carrier name: breakers, health records, the outcome's `tried` and `trunk`. Not its
    /// router id: a routing reload renumbers carriers while a call rings.
    pub(crate) name: String,
    /// Where INVITEs go.
    pub(crate) trunk: Trunk,
    /// Per-minute rate and its currency, and the billing terms, from the voice deck.
    pub(crate) rate: Option<(Price, String, VoiceTerms)>,
    /// Tenant price over our cost for this carrier (the plan's markup) as a fixed-point
    /// factor (1.0 = one unit), to price the answered call.
    pub(crate) markup: Price,
}

/// What the call is: who, from where, and its limits.
#[derive(Debug, Clone)]
pub(crate) struct CallPlan {
    /// The SIP endpoint's address (Via, Contact, the From host).
    pub(crate) me: SocketAddr,
    /// The call's RTP socket, offered in the SDP.
    pub(crate) rtp: SocketAddr,
    /// The callee.
    pub(crate) to: E164,
    /// Caller id, E.164 with `+`.
    pub(crate) from: String,
    /// Digits to capture, if any.
    pub(crate) dtmf: Option<DtmfCapture>,
    /// Hang up this long after the answer at the latest.
    pub(crate) max_duration: Duration,
    /// A trunk silent this long after the INVITE (no provisional beyond 100) is given up.
    pub(crate) trunk_timeout: Duration,
    /// Ringing is given up (CANCEL, `no_answer`) this long after the INVITE.
    pub(crate) ring_timeout: Duration,
}

/// Whether a carrier's breaker lets a call through: asked when the carrier's turn comes,
/// because a half-open breaker admits only a few probes and must not spend them on trunks
/// never dialled. The [`Router`] in the gateway.
pub(crate) trait Breakers {
    /// Whether `carrier` may take a call at `now` (false for a carrier no longer routed).
    fn admits(&self, carrier: &str, now: Instant) -> bool;
}

impl Breakers for Router {
    fn admits(&self, carrier: &str, now: Instant) -> bool {
        let table = self.load();
        table
            .carrier_id(carrier)
            .is_some_and(|id| !matches!(table.admit(id, now), Admission::Rejected { .. }))
    }
}

/// What the driver must do, in order.
#[derive(Debug)]
pub(crate) enum Action {
    /// Route the endpoint's events for this Call-ID to the call, on a fresh channel (events
    /// of an earlier attempt still queued are dropped).
    Listen(Bytes),
    /// Stop routing this Call-ID's events to the call: from now on the endpoint answers for
    /// it alone (a 2xx arriving later is ACKed and hung up there).
    Forget(Bytes),
    /// Send a request in a new client transaction (INVITE, CANCEL, BYE).
    Request {
        /// The request.
        message: Message,
        /// The trunk.
        to: SocketAddr,
    },
    /// Send a message outside any transaction (the ACK of a 2xx).
    Stateless {
        /// The message.
        message: Message,
        /// The trunk.
        to: SocketAddr,
    },
    /// Start sending the audio to `remote` in `codec`, one packet per [`PTIME`]; tell
    /// [`Caller::handle_audio_played`] once the last packet is out.
    Play {
        /// The callee's RTP address (SDP answer).
        remote: SocketAddr,
        /// The negotiated codec.
        codec: sdp::Codec,
    },
    /// Stop sending audio.
    StopPlaying,
    /// Feed a trunk outcome into the carrier's health and breaker. By name: resolve the
    /// carrier's id when recording.
    Record {
        /// Carrier name.
        carrier: String,
        /// What happened.
        outcome: Outcome,
        /// When.
        at: Instant,
    },
    /// The call is over. The driver adds what only it knows: `packets_sent` and `audio_ms`
    /// (when a codec was negotiated).
    Finished(Box<CallOutcome>),
}

/// Why an attempt is being given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GiveUp {
    /// No provisional beyond 100 in time: the next trunk (recorded as 408).
    Silent,
    /// Rang longer than the ring timer: `no_answer`.
    RingTimeout,
    /// The gateway is stopping: `interrupted`.
    Shutdown,
}

/// One INVITE to one trunk.
#[derive(Debug)]
struct Attempt {
    /// The trunk.
    cand: Candidate,
    /// The INVITE as sent (CANCEL, ACK and BYE are built from it).
    invite: Message,
    /// Its Call-ID (events of other calls or attempts are ignored).
    call_id: Bytes,
    /// When it was sent (latency for the health record).
    sent_at: Instant,
    /// Any provisional (100 included) seen: a CANCEL is allowed.
    provisional: bool,
    /// The first provisional beyond 100 (ring time).
    ringing_at: Option<Instant>,
    /// Given up at this time unless it rings first.
    silent_until: Instant,
    /// Given up at this time unless answered.
    ring_until: Instant,
}

/// The answered call.
#[derive(Debug)]
struct Talk {
    /// The INVITE.
    invite: Message,
    /// Its 2xx.
    ok: Message,
    /// The Call-ID.
    call_id: Bytes,
    /// The trunk's address (ACK, BYE).
    dest: SocketAddr,
    /// The ACK, sent again for each retransmitted 2xx.
    ack: Option<Message>,
    /// When the 2xx arrived.
    answered_at: Instant,
    /// Hang up at this time at the latest.
    max_end: Instant,
    /// Media, when the answer's SDP was usable.
    media: Option<Media>,
    /// Set once the audio has played: hang up at this time (one packet time, or the digit
    /// wait).
    wait_until: Option<Instant>,
    /// The driver is sending audio.
    playing: bool,
}

/// Where digits come from, once media is negotiated.
#[derive(Debug)]
struct Media {
    /// The telephone-event payload type both sides agreed on.
    telephone_event: Option<u8>,
    /// Which RTP packets count (the callee's stream).
    latch: RtpLatch,
    /// Reports each key once.
    receiver: DtmfReceiver,
    /// Digits so far (`Some` when capture was asked for).
    digits: Option<String>,
}

/// Why the answered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The audio played (and the digit wait, if any, ran out).
    Completed,
    /// The digits asked for arrived.
    Digits,
    /// `max_duration_s` was reached.
    MaxDuration,
    /// The callee sent BYE.
    Callee,
    /// The 2xx had no usable SDP.
    Media,
    /// The gateway is stopping.
    Shutdown,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Digits => "digits",
            End::MaxDuration => "max_duration",
            End::Callee => "callee",
            End::Media => "media_error",
            End::Shutdown => "shutdown",
        }
    }
}

/// Where the call is.
#[derive(Debug)]
enum State {
    /// Between attempts (only while a method runs).
    Idle,
    /// An INVITE awaits its final response.
    Inviting(Attempt),
    /// The INVITE was given up (CANCEL sent): its final response is awaited until `until`,
    /// since a 2xx may still win.
    Cancelling {
        /// The attempt.
        attempt: Attempt,
        /// Why.
        why: GiveUp,
        /// Stop waiting then.
        until: Instant,
    },
    /// Answered: ACKed, playing, listening for digits.
    Talking(Box<Talk>),
    /// Our BYE awaits its final response until `until`.
    HangingUp {
        /// The Call-ID, forgotten when done.
        call_id: Bytes,
        /// Stop waiting then.
        until: Instant,
    },
    /// The outcome has been handed out.
    Done,
}

/// One notification call. See the [module doc](self).
pub(crate) struct Caller<'a> {
    /// Who, from where, limits.
    plan: CallPlan,
    /// Asked before each trunk is dialled.
    breakers: &'a (dyn Breakers + Sync),
    /// Trunks not tried yet, best first.
    candidates: VecDeque<Candidate>,
    /// The trunk that answered, for the price.
    answered_by: Option<Candidate>,
    /// Where the call is.
    state: State,
    /// The gateway is stopping (no more trunks; an answered call hangs up).
    stopping: bool,
    /// When the call was created (setup time).
    started: Instant,
    /// The outcome in the making.
    out: CallOutcome,
    /// The last failover code (the outcome's `sip_code` when every trunk failed).
    last_code: Option<u16>,
    /// Every trunk failed by timing out (408): `no_answer` rather than `carrier_error`.
    all_timeouts: bool,
    /// RTP packets refused by the latch (for the log).
    refused_rtp: u64,
    /// What the driver must do.
    actions: VecDeque<Action>,
}

impl std::fmt::Debug for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("state", &self.state)
            .field("stopping", &self.stopping)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl<'a> Caller<'a> {
    /// A call to `plan.to` through `candidates` (best first): the first admitted trunk's
    /// INVITE is queued at once (or the outcome, when none is admitted).
    pub(crate) fn new(
        plan: CallPlan,
        candidates: Vec<Candidate>,
        breakers: &'a (dyn Breakers + Sync),
        now: Instant,
    ) -> Self {
        let mut caller = Caller {
            plan,
            breakers,
            candidates: candidates.into(),
            answered_by: None,
            state: State::Idle,
            stopping: false,
            started: now,
            out: CallOutcome::new(),
            last_code: None,
            all_timeouts: true,
            refused_rtp: 0,
            actions: VecDeque::new(),
        };
        caller.dial_next(now);
        caller
    }

    /// The next thing to do.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Caller::handle_timeout`] must run next; `None`: no timer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Inviting(a) => Some(match a.ringing_at {
                None => a.silent_until.min(a.ring_until),
                Some(_) => a.ring_until,
            }),
            State::Cancelling { until, .. } | State::HangingUp { until, .. } => Some(*until),
            State::Talking(t) => Some(t.wait_until.map_or(t.max_end, |w| w.min(t.max_end))),
            State::Idle | State::Done => None,
        }
    }

    /// Whether the call is over (its outcome queued).
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the driver should read the call's RTP socket and pass what it receives to
    /// [`Caller::handle_rtp`]: while an answered call captures digits.
    pub(crate) fn wants_rtp(&self) -> bool {
        self.plan.dtmf.is_some() && matches!(&self.state, State::Talking(t) if t.media.is_some())
    }

    /// RTP packets ignored because they came from outside the callee's stream.
    pub(crate) fn refused_rtp(&self) -> u64 {
        match &self.state {
            State::Talking(t) => t.media.as_ref().map_or(0, |m| m.latch.refused()),
            _ => self.refused_rtp,
        }
    }

    /// Timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Inviting(a) => {
                if a.ringing_at.is_none() && now >= a.silent_until {
                    self.record(&a.cand.name, Outcome::Failure(FailureClass::Timeout), now);
                    self.give_up(a, GiveUp::Silent, now);
                } else if now >= a.ring_until {
                    // Nobody picked up: CANCEL; a 2xx racing the CANCEL still wins.
                    self.give_up(a, GiveUp::RingTimeout, now);
                } else {
                    self.state = State::Inviting(a);
                }
            }
            State::Cancelling {
                attempt,
                why,
                until,
            } => {
                if now >= until {
                    self.gave_up(attempt, why, now);
                } else {
                    self.state = State::Cancelling {
                        attempt,
                        why,
                        until,
                    };
                }
            }
            State::Talking(t) => {
                let completed = t.wait_until.filter(|w| *w <= now && *w <= t.max_end);
                if completed.is_some() {
                    self.end_talk(t, End::Completed, now);
                } else if now >= t.max_end {
                    self.end_talk(t, End::MaxDuration, now);
                } else {
                    self.state = State::Talking(t);
                }
            }
            State::HangingUp { call_id, until } => {
                if now >= until {
                    self.finish_call(call_id);
                } else {
                    self.state = State::HangingUp { call_id, until };
                }
            }
            s @ (State::Idle | State::Done) => self.state = s,
        }
    }

    /// Something the endpoint reported for the call.
    pub(crate) fn handle_event(&mut self, event: CallEvent, now: Instant) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Inviting(a) => self.inviting_event(a, event, now),
            State::Cancelling {
                attempt,
                why,
                until,
            } => match event {
                CallEvent::Response(r) if is_invite(&r, &attempt.call_id) => match r.status() {
                    Some(c) if (200..300).contains(&c) => self.answered(attempt, r, now),
                    Some(c) if c >= 300 => self.gave_up(attempt, why, now),
                    _ => {
                        self.state = State::Cancelling {
                            attempt,
                            why,
                            until,
                        }
                    }
                },
                _ => {
                    self.state = State::Cancelling {
                        attempt,
                        why,
                        until,
                    }
                }
            },
            State::Talking(t) => self.talking_event(t, event, now),
            State::HangingUp { call_id, until } => {
                let done = match &event {
                    CallEvent::Response(r) => {
                        r.cseq().is_ok_and(|c| c.method == Method::Bye)
                            && r.status().is_some_and(|c| c >= 200)
                    }
                    CallEvent::Timeout { invite: false }
                    | CallEvent::TransportError { invite: false }
                    | CallEvent::Bye => true,
                    _ => false,
                };
                if done {
                    self.finish_call(call_id);
                } else {
                    self.state = State::HangingUp { call_id, until };
                }
            }
            s @ (State::Idle | State::Done) => self.state = s,
        }
    }

    /// The endpoint is gone (its task ended): no event will come any more.
    pub(crate) fn handle_endpoint_gone(&mut self, now: Instant) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Inviting(a) => {
                self.forget(&a.call_id);
                self.failed_attempt(&a.cand.name, 503);
                self.dial_next(now);
            }
            State::Cancelling { attempt, why, .. } => self.gave_up(attempt, why, now),
            State::Talking(t) => self.end_talk(t, End::Callee, now),
            State::HangingUp { call_id, .. } => self.finish_call(call_id),
            s @ (State::Idle | State::Done) => self.state = s,
        }
    }

    /// The gateway is stopping: a ringing call is CANCELled (`interrupted`), an answered one
    /// hung up (`hangup_reason: "shutdown"`); no further trunk is dialled. BYEs and CANCELs
    /// already sent are still waited for.
    pub(crate) fn handle_shutdown(&mut self, now: Instant) {
        self.stopping = true;
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Inviting(a) => self.give_up(a, GiveUp::Shutdown, now),
            State::Talking(t) => self.end_talk(t, End::Shutdown, now),
            s => self.state = s,
        }
    }

    /// The driver sent the last audio packet.
    pub(crate) fn handle_audio_played(&mut self, now: Instant) {
        if let State::Talking(t) = &mut self.state {
            if t.playing && t.wait_until.is_none() {
                t.playing = false;
                // The last frame takes one packet time to play out (and must not race our
                // BYE); with capture, the callee gets `timeout_s` to press keys.
                let tail = self
                    .plan
                    .dtmf
                    .map_or(PTIME, |d| Duration::from_secs(u64::from(d.timeout_s)));
                t.wait_until = Some(now + tail);
            }
        }
    }

    /// A datagram received on the call's RTP socket from `from`.
    pub(crate) fn handle_rtp(&mut self, from: SocketAddr, datagram: Bytes, now: Instant) {
        let Some(capture) = self.plan.dtmf else {
            return;
        };
        let State::Talking(t) = &mut self.state else {
            return;
        };
        let Some(media) = t.media.as_mut() else {
            return;
        };
        let Ok(pkt) = RtpPacket::decode(datagram) else {
            return;
        };
        // Only the callee's stream can press keys.
        if !media.latch.admit(from, pkt.ssrc) {
            return;
        }
        if Some(pkt.payload_type) != media.telephone_event {
            return;
        }
        let enough = match (media.receiver.handle(&pkt), media.digits.as_mut()) {
            (Some((key, _)), Some(digits)) => {
                digits.push(key);
                digits.len() >= usize::from(capture.max_digits)
            }
            _ => false,
        };
        if enough {
            if let State::Talking(t) = std::mem::replace(&mut self.state, State::Idle) {
                self.end_talk(t, End::Digits, now);
            }
        }
    }

    // ---- trunks ---------------------------------------------------------------------------

    /// INVITEs the next trunk its breaker admits, or ends the call when none is left.
    fn dial_next(&mut self, now: Instant) {
        if self.stopping {
            self.out.setup_ms = Some(ms(now, self.started));
            self.out.sip_code = self.last_code;
            self.out.error = Some("interrupted".into());
            self.finish();
            return;
        }
        while let Some(cand) = self.candidates.pop_front() {
            if !self.breakers.admits(&cand.name, now) {
                continue;
            }
            let invite = dialog::invite(
                self.plan.me,
                &self.plan.from,
                &self.plan.to,
                &cand.trunk,
                self.plan.rtp,
            );
            let Some((invite, call_id)) =
                invite.and_then(|i| i.call_id().cloned().ok().map(|c| (i, c)))
            else {
                tracing::warn!(carrier = %cand.name, "voice: could not build an INVITE");
                self.failed_attempt(&cand.name, 503);
                continue;
            };
            self.actions.push_back(Action::Listen(call_id.clone()));
            self.actions.push_back(Action::Request {
                message: invite.clone(),
                to: cand.trunk.peer.addr,
            });
            self.state = State::Inviting(Attempt {
                cand,
                invite,
                call_id,
                sent_at: now,
                provisional: false,
                ringing_at: None,
                silent_until: now + self.plan.trunk_timeout,
                ring_until: now + self.plan.ring_timeout,
            });
            return;
        }
        self.out.setup_ms = Some(ms(now, self.started));
        self.out.sip_code = self.last_code;
        let error = if self.last_code.is_some() && self.all_timeouts {
            "no_answer"
        } else {
            "carrier_error"
        };
        self.out.error = Some(error.into());
        self.finish();
    }

    fn inviting_event(&mut self, mut a: Attempt, event: CallEvent, now: Instant) {
        match event {
            CallEvent::Response(r) if is_invite(&r, &a.call_id) => {
                let Some(code) = r.status() else {
                    self.state = State::Inviting(a);
                    return;
                };
                if code < 200 {
                    a.provisional = true;
                    if code > 100 && a.ringing_at.is_none() {
                        a.ringing_at = Some(now);
                    }
                    self.state = State::Inviting(a);
                    return;
                }
                match sip_verdict::of_response(&r) {
                    Some(SipVerdict::Answered) => self.answered(a, r, now),
                    verdict => match verdict.and_then(SipVerdict::failover) {
                        Some(class) => {
                            self.record(&a.cand.name, Outcome::Failure(class), now);
                            self.forget(&a.call_id);
                            self.failed_attempt(&a.cand.name, code);
                            self.dial_next(now);
                        }
                        None => {
                            self.forget(&a.call_id);
                            self.final_answer(a, code, callee_error(code), now);
                        }
                    },
                }
            }
            CallEvent::Timeout { invite: true } => {
                self.record(&a.cand.name, Outcome::Failure(FailureClass::Timeout), now);
                self.forget(&a.call_id);
                self.failed_attempt(&a.cand.name, 408);
                self.dial_next(now);
            }
            CallEvent::TransportError { invite: true } => {
                let down = Outcome::Failure(FailureClass::TransportDown);
                self.record(&a.cand.name, down, now);
                self.forget(&a.call_id);
                self.failed_attempt(&a.cand.name, 503);
                self.dial_next(now);
            }
            _ => self.state = State::Inviting(a),
        }
    }

    /// Stops waiting for `a`: CANCEL if a provisional allows it and wait for the INVITE's
    /// final response, else give up at once.
    fn give_up(&mut self, a: Attempt, why: GiveUp, now: Instant) {
        if a.provisional {
            if let Some(cancel) = a.invite.cancel() {
                self.actions.push_back(Action::Request {
                    message: cancel,
                    to: a.cand.trunk.peer.addr,
                });
                self.state = State::Cancelling {
                    attempt: a,
                    why,
                    until: now + CLOSE_WAIT,
                };
                return;
            }
        }
        self.gave_up(a, why, now);
    }

    /// `a` is given up for good (no 2xx won the race).
    fn gave_up(&mut self, a: Attempt, why: GiveUp, now: Instant) {
        self.forget(&a.call_id);
        match why {
            GiveUp::Silent => {
                self.failed_attempt(&a.cand.name, 408);
                self.dial_next(now);
            }
            GiveUp::RingTimeout => self.final_answer(a, 487, "no_answer", now),
            GiveUp::Shutdown => self.final_answer(a, 487, "interrupted", now),
        }
    }

    /// A trunk failed with `code` (408 for timeouts, 503 for transport errors).
    fn failed_attempt(&mut self, name: &str, code: u16) {
        self.out.tried.push(TrunkTry {
            carrier: name.to_owned(),
            code,
        });
        self.last_code = Some(code);
        if code != 408 {
            self.all_timeouts = false;
        }
    }

    /// The call ends unanswered with `code` and `error`; the trunk worked.
    fn final_answer(&mut self, a: Attempt, code: u16, error: &str, now: Instant) {
        self.out.tried.push(TrunkTry {
            carrier: a.cand.name.clone(),
            code,
        });
        let latency = now.saturating_duration_since(a.sent_at);
        self.record(&a.cand.name, Outcome::Success { latency }, now);
        self.out.trunk = Some(a.cand.name);
        self.out.sip_code = Some(code);
        self.out.error = Some(error.into());
        self.out.setup_ms = Some(ms(now, self.started));
        self.out.ring_s = a.ringing_at.map(|r| secs(now.saturating_duration_since(r)));
        self.finish();
    }

    // ---- the answered call ----------------------------------------------------------------

    /// The INVITE of `a` got the 2xx `ok`: ACK, then play (or hang up at once without usable
    /// SDP, or when the gateway is stopping).
    fn answered(&mut self, a: Attempt, ok: Message, now: Instant) {
        let code = ok.status();
        self.out.tried.push(TrunkTry {
            carrier: a.cand.name.clone(),
            code: code.unwrap_or(200),
        });
        let latency = now.saturating_duration_since(a.sent_at);
        self.record(&a.cand.name, Outcome::Success { latency }, now);
        self.out.trunk = Some(a.cand.name.clone());
        self.out.sip_code = code;
        self.out.answered = true;
        self.out.setup_ms = Some(ms(now, self.started));
        self.out.ring_s = Some(
            a.ringing_at
                .map_or(0.0, |r| secs(now.saturating_duration_since(r))),
        );
        let dest = a.cand.trunk.peer.addr;
        let ack = in_dialog(self.plan.me, Method::Ack, 1, &a.invite, &ok);
        if let Some(ack) = &ack {
            self.actions.push_back(Action::Stateless {
                message: ack.clone(),
                to: dest,
            });
        }
        let negotiated = ok
            .sdp_body()
            .and_then(|b| SessionDescription::parse(&b).ok())
            .and_then(|s| sdp::accept_answer(&s, &AudioConfig::default()).ok());
        let mut talk = Box::new(Talk {
            invite: a.invite,
            ok,
            call_id: a.call_id,
            dest,
            ack,
            answered_at: now,
            max_end: now + self.plan.max_duration,
            media: None,
            wait_until: None,
            playing: false,
        });
        self.answered_by = Some(a.cand);
        let Some(n) = negotiated else {
            self.end_talk(talk, End::Media, now);
            return;
        };
        self.out.codec = Some(n.codec.name().to_owned());
        let remote = SocketAddr::new(n.remote_ip, n.remote_port);
        talk.media = Some(Media {
            telephone_event: n.telephone_event,
            latch: RtpLatch::new(remote),
            receiver: DtmfReceiver::default(),
            digits: self.plan.dtmf.map(|_| String::new()),
        });
        if self.stopping {
            // Answered as we stopped (the 2xx raced our CANCEL): hang up at once.
            self.end_talk(talk, End::Shutdown, now);
            return;
        }
        talk.playing = true;
        self.actions.push_back(Action::Play {
            remote,
            codec: n.codec,
        });
        self.state = State::Talking(talk);
    }

    fn talking_event(&mut self, t: Box<Talk>, event: CallEvent, now: Instant) {
        match event {
            CallEvent::Bye => self.end_talk(t, End::Callee, now),
            // The 2xx again (our ACK was lost): ACK again.
            CallEvent::Retransmitted2xx => {
                self.ack_again(&t);
                self.state = State::Talking(t);
            }
            CallEvent::Response(r)
                if is_invite(&r, &t.call_id)
                    && r.status().is_some_and(|c| (200..300).contains(&c)) =>
            {
                self.ack_again(&t);
                self.state = State::Talking(t);
            }
            _ => self.state = State::Talking(t),
        }
    }

    fn ack_again(&mut self, t: &Talk) {
        if let Some(ack) = &t.ack {
            self.actions.push_back(Action::Stateless {
                message: ack.clone(),
                to: t.dest,
            });
        }
    }

    /// The answered call ends for `end`: stop the audio, BYE unless the callee hung up.
    fn end_talk(&mut self, t: Box<Talk>, end: End, now: Instant) {
        if t.playing {
            self.actions.push_back(Action::StopPlaying);
        }
        let t = *t;
        if let Some(media) = t.media {
            self.refused_rtp = media.latch.refused();
            self.out.digits = media.digits;
        }
        self.out.talk_s = Some(secs(now.saturating_duration_since(t.answered_at)));
        self.out.hangup_reason = Some(end.as_str().to_owned());
        if end == End::Media {
            self.out.error = Some("media_error".into());
        }
        if end == End::Callee {
            self.out.hangup_by = Some("callee".into());
            self.finish_call(t.call_id);
            return;
        }
        self.out.hangup_by = Some("switchyard".into());
        match in_dialog(self.plan.me, Method::Bye, 2, &t.invite, &t.ok) {
            Some(bye) => {
                self.actions.push_back(Action::Request {
                    message: bye,
                    to: t.dest,
                });
                self.state = State::HangingUp {
                    call_id: t.call_id,
                    until: now + CLOSE_WAIT,
                };
            }
            None => self.finish_call(t.call_id),
        }
    }

    /// The answered call is over: price it, stop listening, hand out the outcome.
    fn finish_call(&mut self, call_id: Bytes) {
        if let (Some(cand), Some(talk)) = (&self.answered_by, self.out.talk_s) {
            if let Some((per_minute, currency, terms)) = &cand.rate {
                let secs = talk.ceil() as u32;
                let cost = terms.call_cost(*per_minute, secs);
                let billed = terms.billing.billable_secs(secs);
                self.out.billed_s = Some(billed);
                self.out.cost = Some(cost.mul_rate(cand.markup).to_string());
                self.out.currency = Some(currency.clone());
            }
        }
        self.forget(&call_id);
        self.finish();
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn record(&mut self, carrier: &str, outcome: Outcome, at: Instant) {
        self.actions.push_back(Action::Record {
            carrier: carrier.to_owned(),
            outcome,
            at,
        });
    }

    fn forget(&mut self, call_id: &Bytes) {
        self.actions.push_back(Action::Forget(call_id.clone()));
    }

    fn finish(&mut self) {
        self.state = State::Done;
        let out = std::mem::take(&mut self.out);
        self.actions.push_back(Action::Finished(Box::new(out)));
    }
}

/// A response to the INVITE of the dialog `call_id`.
fn is_invite(r: &Message, call_id: &Bytes) -> bool {
    r.cseq().is_ok_and(|c| c.method == Method::Invite) && r.call_id().is_ok_and(|c| c == call_id)
}

/// The error code of a call the callee (or its network) answered with a final `code` that
/// ends the search ([`SipVerdict::Callee`]).
fn callee_error(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        603 => "declined",
        480 | 487 => "no_answer",
        _ => "rejected",
    }
}

/// Seconds, rounded to the millisecond.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Milliseconds from `since` to `now`.
fn ms(now: Instant, since: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "caller_tests.rs"]
mod tests;
