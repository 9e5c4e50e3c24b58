//! The UAS logic, without sockets: datagrams and `now` in, datagrams and the next deadline
//! out, like the transaction layer it drives ([`TransactionLayer`]). The tokio loop in
//! [`super::run`] only moves bytes; the unit tests below drive this in virtual time.
//!
//! Per INVITE: 100 Trying at once (the layer's policy), then — after the behaviour's delays —
//! 180 and/or 183 with SDP, then the final response. A 2xx is retransmitted until the ACK
//! (T1 doubling to T2, for 64·T1); the call then lasts until the caller's BYE or our own
//! after `hangup_after_ms`. CANCEL in the early phase ends the INVITE with 487.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::dtmf;
use switchyard_protocols::sip::malformed;
use switchyard_protocols::sip::rtp::RtpPacket;
use switchyard_protocols::sip::sdp::{self, AudioConfig, SessionDescription};
use switchyard_protocols::sip::transaction::{
    Event, TimerConfig, TransactionId, TransactionLayer, Transmit,
};
use switchyard_protocols::sip::{HeaderName, Message, Method};

use super::behaviour::reason_phrase;
use super::call::{dialog_response, Call, Phase};
use super::counters::Counters;
use super::media::Media;
use super::Shared;

/// What a scheduled timer does to its call when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Send 180 and/or 183.
    Provisional,
    /// Send the final response.
    Final,
    /// Resend the 2xx (no ACK yet); the value is the interval just waited.
    Retransmit(Duration),
    /// Send BYE.
    Hangup,
    /// Send the `send_dtmf` digit at this index as RFC 4733 events.
    Dtmf(usize),
}

/// The caller's RTP address and telephone-event payload type, from its offer.
type CallerMedia = (SocketAddr, Option<u8>);

/// The simulator's SIP user agent server.
#[derive(Debug)]
pub struct Uas {
    /// Counters, current behaviour and per-call media, shared with the control port.
    shared: Arc<Shared>,
    /// Our SIP address: Via of our BYEs, and our Contact.
    local: SocketAddr,
    /// Our Contact header value.
    contact: String,
    /// Our RTP address, put in every SDP we send.
    rtp: SocketAddr,
    /// The RFC 3261 transactions (retransmissions, 100 Trying, timers G/H/I/J).
    layer: TransactionLayer<SocketAddr>,
    /// Calls in progress by Call-ID.
    calls: HashMap<Bytes, Call>,
    /// Call-ID of each call's INVITE transaction, for CANCEL.
    by_txn: HashMap<TransactionId, Bytes>,
    /// The calls' scheduled actions by (deadline, sequence): the sequence keeps actions due
    /// at the same instant in the order they were scheduled.
    timers: BTreeMap<(Instant, u64), (Bytes, u64, Action)>,
    /// Next timer sequence number.
    timer_seq: u64,
    /// Serial number of the last call created ([`Call::serial`]).
    call_serial: u64,
    /// Received RTP attribution and counting.
    media: Media,
    /// Codecs we answer with (PCMU, PCMA, telephone-event 101).
    audio: AudioConfig,
    /// SDP session ids (o= line), one per answer.
    session_id: u64,
    /// RTP datagrams to send from the media port (DTMF events), and where.
    rtp_out: VecDeque<(Bytes, SocketAddr)>,
    /// SSRC of the RTP we send.
    ssrc: u32,
}

impl Uas {
    /// A UAS listening at `local` (SIP) and `rtp` (media).
    pub fn new(shared: Arc<Shared>, local: SocketAddr, rtp: SocketAddr) -> Uas {
        let timers = TimerConfig {
            trying_after: Some(Duration::ZERO),
            ..TimerConfig::default()
        };
        Uas {
            shared,
            local,
            contact: format!("<sip:sipsim@{local}>"),
            rtp,
            layer: TransactionLayer::new(timers),
            calls: HashMap::new(),
            by_txn: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            call_serial: 0,
            media: Media::default(),
            audio: AudioConfig::default(),
            session_id: u64::from(rand::random::<u32>()),
            rtp_out: VecDeque::new(),
            ssrc: rand::random(),
        }
    }

    /// A datagram received on the SIP port.
    pub fn handle_datagram(&mut self, datagram: Bytes, from: SocketAddr, now: Instant) {
        if datagram.iter().all(u8::is_ascii_whitespace) {
            return; // CRLF keep-alive (RFC 5626 §3.5.1)
        }
        match Message::parse_datagram(datagram.clone()) {
            Ok(msg) => self.layer.handle_message(msg, from, false, now),
            Err(e) => {
                Counters::inc(&self.shared.counters.malformed);
                tracing::debug!(%from, "malformed datagram: {e}");
                if let Some(resp) = malformed::bad_request(&datagram, &e) {
                    Counters::inc(&self.shared.counters.malformed_answered);
                    self.layer.send_stateless(&resp, from);
                }
            }
        }
        self.process(now);
    }

    /// Next RTP datagram to send from the media port, and where.
    pub fn poll_rtp(&mut self) -> Option<(Bytes, SocketAddr)> {
        self.rtp_out.pop_front()
    }

    /// A datagram received on the RTP port.
    pub fn handle_rtp(&mut self, datagram: Bytes, from: SocketAddr) {
        self.media
            .handle(datagram, from, &self.shared.counters, &self.shared.calls);
    }

    /// Fires what is due at `now` (call when [`Uas::poll_timeout`] passes).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.process(now);
    }

    /// The send for transaction `id` failed: the layer ends it.
    pub fn transport_error(&mut self, id: TransactionId) {
        self.layer.transport_error(id);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<SocketAddr>> {
        self.layer.poll_transmit()
    }

    /// When [`Uas::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.keys().next().map(|k| k.0);
        match (ours, self.layer.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Handles the layer's events and our due timers until neither has anything left.
    fn process(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.layer.poll_event() {
                progressed = true;
                self.on_event(ev, now);
            }
            while let Some(entry) = self.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (call_id, serial, action) = entry.remove();
                progressed = true;
                self.on_timer(call_id, serial, action, now);
            }
            if !progressed {
                break;
            }
        }
    }

    fn schedule(&mut self, at: Instant, call_id: &Bytes, serial: u64, action: Action) {
        self.timer_seq += 1;
        self.timers
            .insert((at, self.timer_seq), (call_id.clone(), serial, action));
    }

    fn on_event(&mut self, ev: Event<SocketAddr>, now: Instant) {
        let c = &self.shared.counters;
        match ev {
            Event::Request {
                id,
                request,
                source,
            } => self.on_request(id, request, source, now),
            Event::Response { response, .. } => {
                let ok = response.status().is_some_and(|s| (200..300).contains(&s));
                if ok && response.method() == Some(Method::Bye) {
                    Counters::inc(&c.byes_answered);
                }
            }
            Event::Stray { message, .. }
                if message.is_request() && message.method() == Some(Method::Ack) =>
            {
                self.on_ack(&message);
            }
            Event::Timeout { .. } => Counters::inc(&c.timeouts),
            _ => {}
        }
    }

    fn on_request(&mut self, id: TransactionId, req: Message, source: SocketAddr, now: Instant) {
        let Some(method) = req.method() else { return };
        let in_dialog = req.to().is_ok_and(|t| t.tag().is_some());
        let c = Arc::clone(&self.shared);
        let c = &c.counters;
        match method {
            Method::Invite if !in_dialog => self.on_invite(id, req, source, now),
            Method::Invite => self.on_reinvite(id, &req, now),
            Method::Cancel => {
                Counters::inc(&c.cancels);
                self.on_cancel(id, &req, now);
            }
            Method::Bye => self.on_bye(id, &req, now),
            Method::Options => {
                Counters::inc(&c.options);
                let mut r = req.response(200, "OK", Some(&tag()));
                r.headers
                    .push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS");
                self.respond(id, r, now);
            }
            _ => {
                Counters::inc(&c.other_requests);
                let code = match (in_dialog, self.dialog(&req).is_some()) {
                    (true, true) => 200,
                    (true, false) => 481,
                    (false, _) => 501,
                };
                self.respond(id, req.response(code, reason_phrase(code), None), now);
            }
        }
    }

    fn on_invite(&mut self, id: TransactionId, req: Message, source: SocketAddr, now: Instant) {
        let counters = Arc::clone(&self.shared);
        let c = &counters.counters;
        Counters::inc(&c.invites);
        let Ok(call_id) = req.call_id().cloned() else {
            return; // the parser guarantees a Call-ID
        };
        let behaviour = (**self.shared.behaviour.load()).clone();
        self.call_serial += 1;
        let serial = self.call_serial;
        let mut call = Call::new(serial, id, req, source, tag(), behaviour);
        match self.session(&call.invite, &call_id, call.behaviour.decode_dtmf) {
            Ok((sdp, media)) => {
                call.sdp = Some(sdp);
                call.media = media;
            }
            Err(()) => {
                Counters::inc(&c.sdp_failures);
                Counters::inc(&c.rejected);
                let r = call.response(488, &self.contact, false);
                self.respond(id, r, now);
                return;
            }
        }
        Counters::inc(&c.active_calls);
        let b = &call.behaviour;
        if b.ring || b.early_media {
            let at = now + Duration::from_millis(b.provisional_delay_ms);
            self.schedule(at, &call_id, serial, Action::Provisional);
        }
        let at = now + Duration::from_millis(b.final_delay_ms);
        self.schedule(at, &call_id, serial, Action::Final);
        self.by_txn.insert(id, call_id.clone());
        self.calls.insert(call_id, call);
    }

    /// Our SDP for `msg`: the answer to its offer (registering the caller's RTP address), or
    /// an offer if it had none, with the caller's RTP address and telephone-event type when
    /// it made an offer. `Err` when the offer cannot be answered.
    fn session(
        &mut self,
        msg: &Message,
        call_id: &Bytes,
        dtmf: bool,
    ) -> Result<(Bytes, Option<CallerMedia>), ()> {
        self.session_id += 1;
        let (ip, port) = (self.rtp.ip(), self.rtp.port());
        let Some(body) = msg.sdp_body() else {
            let offer = sdp::offer(&self.audio, ip, port, self.session_id);
            return Ok((Bytes::from(offer.to_sdp()), None));
        };
        let offer = SessionDescription::parse(&body).map_err(drop)?;
        let (answer, neg) =
            sdp::answer(&offer, &self.audio, ip, port, self.session_id).map_err(drop)?;
        let id = String::from_utf8_lossy(call_id);
        self.media.unregister(&id);
        let remote = SocketAddr::new(neg.remote_ip, neg.remote_port);
        self.media
            .register(remote, &id, neg.telephone_event.filter(|_| dtmf));
        if let Some(call) = self.calls.get_mut(call_id) {
            call.media = Some((remote, neg.telephone_event));
        }
        Ok((
            Bytes::from(answer.to_sdp()),
            Some((remote, neg.telephone_event)),
        ))
    }

    fn on_reinvite(&mut self, id: TransactionId, req: &Message, now: Instant) {
        let Some(call_id) = self.dialog(req) else {
            Counters::inc(&self.shared.counters.unknown_dialog);
            self.respond(id, req.response(481, reason_phrase(481), None), now);
            return;
        };
        let dtmf = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.behaviour.decode_dtmf);
        let Ok((sdp, _)) = self.session(req, &call_id, dtmf) else {
            Counters::inc(&self.shared.counters.sdp_failures);
            self.respond(id, req.response(488, reason_phrase(488), None), now);
            return;
        };
        Counters::inc(&self.shared.counters.reinvites);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.sdp = Some(sdp);
        let r = dialog_response(req, 200, &call.to_tag, &self.contact, call.sdp.as_ref());
        self.respond(id, r, now);
    }

    fn on_cancel(&mut self, id: TransactionId, req: &Message, now: Instant) {
        let Some(invite_txn) = self.layer.invite_for_cancel(req) else {
            self.respond(id, req.response(481, reason_phrase(481), None), now);
            return;
        };
        self.respond(id, req.response(200, "OK", None), now);
        let Some(call_id) = self.by_txn.get(&invite_txn).cloned() else {
            return;
        };
        let Some(call) = self.calls.get(&call_id) else {
            return;
        };
        if call.phase == Phase::Early {
            let r = call.response(487, &self.contact, false);
            self.respond(invite_txn, r, now);
            Counters::inc(&self.shared.counters.cancelled);
            self.end_call(&call_id);
        }
    }

    fn on_bye(&mut self, id: TransactionId, req: &Message, now: Instant) {
        match self.dialog(req) {
            Some(call_id) => {
                Counters::inc(&self.shared.counters.byes_received);
                self.respond(id, req.response(200, "OK", None), now);
                self.end_call(&call_id);
            }
            None => {
                Counters::inc(&self.shared.counters.unknown_dialog);
                self.respond(id, req.response(481, reason_phrase(481), None), now);
            }
        }
    }

    fn on_ack(&mut self, ack: &Message) {
        let Some(call_id) = self.dialog(ack) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&call_id) {
            if call.phase == Phase::Answered {
                call.phase = Phase::Confirmed;
                Counters::inc(&self.shared.counters.acks);
            }
        }
    }

    fn on_timer(&mut self, call_id: Bytes, serial: u64, action: Action, now: Instant) {
        let t1 = self.layer.config().t1;
        let t2 = self.layer.config().t2;
        let contact = self.contact.clone();
        let shared = Arc::clone(&self.shared);
        let c = &shared.counters;
        let Some(call) = self.calls.get_mut(&call_id).filter(|c| c.serial == serial) else {
            return; // the call ended before its timer fired
        };
        match (action, call.phase) {
            (Action::Provisional, Phase::Early) => {
                let (ring, early) = (call.behaviour.ring, call.behaviour.early_media);
                let txn = call.invite_txn;
                let ringing = ring.then(|| call.response(180, &contact, false));
                let progress = early.then(|| call.response(183, &contact, true));
                if let Some(r) = ringing {
                    Counters::inc(&c.ringing_sent);
                    self.respond(txn, r, now);
                }
                if let Some(r) = progress {
                    Counters::inc(&c.progress_sent);
                    self.respond(txn, r, now);
                }
            }
            (Action::Final, Phase::Early) => {
                let b = &call.behaviour;
                let code = b.final_code;
                let txn = call.invite_txn;
                if (200..300).contains(&code) {
                    let r = call.response(code, &contact, b.answer_sdp);
                    call.ok = Some(r.clone());
                    call.phase = Phase::Answered;
                    call.answered_at = Some(now);
                    let hangup = b.hangup_after_ms;
                    let dtmf_at = b
                        .send_dtmf
                        .as_ref()
                        .filter(|d| !d.is_empty())
                        .map(|_| now + Duration::from_millis(b.dtmf_delay_ms));
                    Counters::inc(&c.answered);
                    self.respond(txn, r, now);
                    self.schedule(now + t1, &call_id, serial, Action::Retransmit(t1));
                    if let Some(ms) = hangup {
                        self.schedule(
                            now + Duration::from_millis(ms),
                            &call_id,
                            serial,
                            Action::Hangup,
                        );
                    }
                    if let Some(at) = dtmf_at {
                        self.schedule(at, &call_id, serial, Action::Dtmf(0));
                    }
                } else {
                    let mut r = call.response(code, &contact, false);
                    if let Some(s) = b.retry_after_s {
                        r.headers.push(HeaderName::RetryAfter, s.to_string());
                    }
                    Counters::inc(&c.rejected);
                    self.respond(txn, r, now);
                    self.end_call(&call_id);
                }
            }
            (Action::Retransmit(interval), Phase::Answered) => {
                let expired = call
                    .answered_at
                    .is_none_or(|at| now >= at + t1.saturating_mul(64));
                if expired {
                    // No ACK within 64·T1: the dialog is dead (RFC 3261 §13.3.1.4).
                    Counters::inc(&c.timeouts);
                    self.end_call(&call_id);
                    return;
                }
                if let Some(ok) = &call.ok {
                    self.layer.send_stateless(ok, call.source);
                }
                let next = interval.saturating_mul(2).min(t2);
                self.schedule(now + next, &call_id, serial, Action::Retransmit(next));
            }
            (Action::Hangup, Phase::Answered | Phase::Confirmed) => {
                let source = call.source;
                if let Some(bye) = call.bye(self.local) {
                    match self.layer.send_request(bye, source, false, now) {
                        Ok(_) => Counters::inc(&c.byes_sent),
                        Err(e) => tracing::warn!("could not send BYE: {e}"),
                    }
                }
                self.end_call(&call_id);
            }
            (Action::Dtmf(index), Phase::Answered | Phase::Confirmed) => {
                let digits = call.behaviour.send_dtmf.clone().unwrap_or_default();
                let Some(key) = digits.chars().nth(index) else {
                    return;
                };
                if let (Some((remote, Some(pt))), Some(event)) = (call.media, dtmf::key_event(key))
                {
                    // One event: a start packet (marker), two updates, three end packets, all
                    // with the event's timestamp (RFC 4733 §2.5).
                    let timestamp = rand::random::<u32>();
                    let steps: [(u16, bool); 6] = [
                        (160, false),
                        (320, false),
                        (480, false),
                        (640, true),
                        (640, true),
                        (640, true),
                    ];
                    for (i, (duration, end)) in steps.into_iter().enumerate() {
                        let payload = dtmf::TelephoneEvent {
                            event,
                            end,
                            volume: 10,
                            duration,
                        }
                        .encode();
                        let packet = RtpPacket {
                            marker: i == 0,
                            payload_type: pt,
                            sequence: call.rtp_sequence,
                            timestamp,
                            ssrc: self.ssrc,
                            csrc: Vec::new(),
                            extension: None,
                            padding: 0,
                            payload: Bytes::copy_from_slice(&payload),
                        };
                        call.rtp_sequence = call.rtp_sequence.wrapping_add(1);
                        self.rtp_out.push_back((packet.to_bytes(), remote));
                    }
                    Counters::inc(&c.dtmf_sent);
                }
                if index + 1 < digits.chars().count() {
                    let at = now + Duration::from_millis(250);
                    self.schedule(at, &call_id, serial, Action::Dtmf(index + 1));
                }
            }
            _ => {} // stale: the call moved on (answered, cancelled, confirmed)
        }
    }

    /// The Call-ID of the known call `msg` belongs to (same Call-ID and our To tag).
    fn dialog(&self, msg: &Message) -> Option<Bytes> {
        let call_id = msg.call_id().ok()?;
        let call = self.calls.get(call_id)?;
        let to = msg.to().ok()?;
        let tag = to.tag()?;
        (tag.as_ref() == call.to_tag.as_bytes()).then(|| call_id.clone())
    }

    fn respond(&mut self, id: TransactionId, response: Message, now: Instant) {
        if let Err(e) = self.layer.respond(id, response, now) {
            tracing::debug!(?id, "response not sent: {e}");
        }
    }

    fn end_call(&mut self, call_id: &Bytes) {
        if let Some(call) = self.calls.remove(call_id) {
            self.by_txn.remove(&call.invite_txn);
            self.media.unregister(&String::from_utf8_lossy(call_id));
            Counters::dec(&self.shared.counters.active_calls);
        }
    }
}

/// A fresh To tag.
fn tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sipsim::behaviour::Behaviour;
    use switchyard_protocols::sip::builder::branch;
    use switchyard_protocols::sip::{RequestBuilder, Uri};

    const CALLER: &str = "127.0.0.1:5070";
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn uas(b: Behaviour) -> (Uas, Arc<Shared>) {
        let shared = Arc::new(Shared::new(b));
        let uas = Uas::new(
            Arc::clone(&shared),
            "127.0.0.1:5060".parse().unwrap(),
            "127.0.0.1:30000".parse().unwrap(),
        );
        (uas, shared)
    }

    fn request(method: Method, call_id: &str, to_tag: Option<&str>, seq: u32) -> Message {
        let to = match to_tag {
            Some(t) => format!("<sip:1000@127.0.0.1>;tag={t}"),
            None => "<sip:1000@127.0.0.1>".to_owned(),
        };
        let b = RequestBuilder::new(
            method.clone(),
            Uri::from_str_copy("sip:1000@127.0.0.1").unwrap(),
        )
        .via(
            "UDP",
            CALLER,
            &branch(u64::from(seq) + 1000 * call_id.len() as u64),
        )
        .header(HeaderName::From, "<sip:caller@127.0.0.1>;tag=abc")
        .header(HeaderName::To, to)
        .header(HeaderName::CallId, call_id.to_owned())
        .header(HeaderName::CSeq, format!("{seq} {method}"))
        .header(HeaderName::Contact, format!("<sip:caller@{CALLER}>"));
        let b = if method == Method::Invite {
            b.body("application/sdp", OFFER)
        } else {
            b
        };
        b.build().unwrap()
    }

    fn feed(u: &mut Uas, m: &Message, now: Instant) {
        u.handle_datagram(m.to_bytes(), CALLER.parse().unwrap(), now);
    }

    fn sent(u: &mut Uas) -> Vec<Message> {
        std::iter::from_fn(|| u.poll_transmit())
            .map(|t| Message::parse_datagram(t.message).unwrap())
            .collect()
    }

    fn codes(msgs: &[Message]) -> Vec<u16> {
        msgs.iter().filter_map(Message::status).collect()
    }

    #[test]
    fn rings_answers_after_the_delay_and_retransmits_the_2xx_until_ack() {
        let (mut u, shared) = uas(Behaviour {
            final_delay_ms: 1000,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        feed(&mut u, &request(Method::Invite, "c1", None, 1), t0);
        assert_eq!(codes(&sent(&mut u)), [100, 180]);
        assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        u.handle_timeout(t0 + Duration::from_secs(1));
        let ok = sent(&mut u);
        assert_eq!(codes(&ok), [200]);
        let body = String::from_utf8(ok[0].sdp_body().unwrap().to_vec()).unwrap();
        assert!(
            body.contains("m=audio 30000 RTP/AVP 8"),
            "offerer's first codec: {body}"
        );
        let tag = ok[0].to().unwrap().tag().unwrap().clone();
        let tag = std::str::from_utf8(&tag).unwrap().to_owned();
        u.handle_timeout(t0 + Duration::from_millis(1500));
        assert_eq!(codes(&sent(&mut u)), [200], "2xx retransmitted (T1)");
        feed(
            &mut u,
            &request(Method::Ack, "c1", Some(&tag), 1),
            t0 + Duration::from_secs(2),
        );
        u.handle_timeout(t0 + Duration::from_secs(3));
        assert!(sent(&mut u).is_empty(), "no retransmission after the ACK");
        feed(
            &mut u,
            &request(Method::Bye, "c1", Some(&tag), 2),
            t0 + Duration::from_secs(4),
        );
        assert_eq!(codes(&sent(&mut u)), [200]);
        let s = shared.counters.snapshot();
        assert_eq!(
            (s.invites, s.answered, s.acks, s.byes_received),
            (1, 1, 1, 1)
        );
        assert_eq!((s.active_calls, u.active_calls()), (0, 0));
    }

    #[test]
    fn cancel_while_ringing_ends_the_invite_with_487() {
        let (mut u, shared) = uas(Behaviour {
            final_delay_ms: 10_000,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        let invite = request(Method::Invite, "c2", None, 1);
        feed(&mut u, &invite, t0);
        assert_eq!(codes(&sent(&mut u)), [100, 180]);
        feed(
            &mut u,
            &invite.cancel().unwrap(),
            t0 + Duration::from_millis(100),
        );
        let out = sent(&mut u);
        assert_eq!(codes(&out), [200, 487]);
        assert_eq!(out[1].method(), Some(Method::Invite));
        u.handle_timeout(t0 + Duration::from_secs(10));
        assert!(
            codes(&sent(&mut u)).iter().all(|&c| c == 487),
            "no 200 after CANCEL"
        );
        let s = shared.counters.snapshot();
        assert_eq!((s.cancels, s.cancelled, s.answered), (1, 1, 0));
    }

    #[test]
    fn hangs_up_itself_when_told_to() {
        let (mut u, shared) = uas(Behaviour {
            hangup_after_ms: Some(2000),
            ring: false,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        feed(&mut u, &request(Method::Invite, "c3", None, 1), t0);
        let out = sent(&mut u);
        assert_eq!(codes(&out), [100, 200]);
        u.handle_timeout(t0 + Duration::from_secs(2));
        let bye = sent(&mut u)
            .into_iter()
            .find(|m| m.method() == Some(Method::Bye) && m.is_request())
            .expect("a BYE");
        assert_eq!(
            bye.request_uri().unwrap().as_bytes().as_ref(),
            b"sip:caller@127.0.0.1:5070"
        );
        assert_eq!(bye.to().unwrap().tag().unwrap().as_ref(), b"abc");
        assert_eq!(shared.counters.snapshot().byes_sent, 1);
    }

    #[test]
    fn sends_dtmf_events_to_the_callers_rtp_address_after_answering() {
        let (mut u, shared) = uas(Behaviour {
            ring: false,
            send_dtmf: Some("1#".into()),
            dtmf_delay_ms: 300,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        feed(&mut u, &request(Method::Invite, "c9", None, 1), t0);
        assert!(u.poll_rtp().is_none());
        u.handle_timeout(t0 + Duration::from_millis(300));
        let mut rx = dtmf::DtmfReceiver::default();
        let mut keys = String::new();
        while let Some((bytes, to)) = u.poll_rtp() {
            assert_eq!(to, "127.0.0.1:40000".parse().unwrap());
            let p = RtpPacket::decode(bytes).unwrap();
            assert_eq!(p.payload_type, 101);
            if let Some((k, _)) = rx.handle(&p) {
                keys.push(k);
            }
        }
        assert_eq!(keys, "1");
        u.handle_timeout(t0 + Duration::from_millis(550));
        while let Some((bytes, _)) = u.poll_rtp() {
            if let Some((k, _)) = rx.handle(&RtpPacket::decode(bytes).unwrap()) {
                keys.push(k);
            }
        }
        assert_eq!(keys, "1#");
        assert_eq!(shared.counters.snapshot().dtmf_sent, 2);
    }

    #[test]
    fn rejects_with_retry_after_and_unknown_dialogs_with_481() {
        let (mut u, shared) = uas(Behaviour {
            final_code: 503,
            retry_after_s: Some(30),
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        feed(&mut u, &request(Method::Invite, "c4", None, 1), t0);
        let out = sent(&mut u);
        assert_eq!(codes(&out), [100, 180, 503]);
        assert_eq!(out[2].retry_after().unwrap().unwrap().seconds, 30);
        feed(&mut u, &request(Method::Bye, "nope", Some("x"), 2), t0);
        assert_eq!(codes(&sent(&mut u)), [481]);
        let s = shared.counters.snapshot();
        assert_eq!((s.rejected, s.unknown_dialog, s.active_calls), (1, 1, 0));
    }

    #[test]
    fn early_media_183_carries_sdp_and_reinvite_gets_200_with_sdp() {
        let (mut u, shared) = uas(Behaviour {
            ring: false,
            early_media: true,
            provisional_delay_ms: 100,
            final_delay_ms: 200,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        feed(&mut u, &request(Method::Invite, "c5", None, 1), t0);
        assert_eq!(codes(&sent(&mut u)), [100]);
        u.handle_timeout(t0 + Duration::from_millis(100));
        let progress = sent(&mut u);
        assert_eq!(codes(&progress), [183]);
        assert!(progress[0].sdp_body().is_some());
        u.handle_timeout(t0 + Duration::from_millis(200));
        let ok = sent(&mut u);
        assert_eq!(codes(&ok), [200]);
        let tag = String::from_utf8(ok[0].to().unwrap().tag().unwrap().to_vec()).unwrap();
        feed(&mut u, &request(Method::Ack, "c5", Some(&tag), 1), t0);
        feed(&mut u, &request(Method::Invite, "c5", Some(&tag), 2), t0);
        let re = sent(&mut u);
        assert_eq!(codes(&re), [100, 200]);
        assert!(re[1].sdp_body().is_some());
        let s = shared.counters.snapshot();
        assert_eq!((s.progress_sent, s.reinvites, s.invites), (1, 1, 1));
    }

    #[test]
    fn a_stale_timer_never_acts_on_a_new_call_with_the_same_call_id() {
        let (mut u, _) = uas(Behaviour {
            final_delay_ms: 1000,
            ..Behaviour::default()
        });
        let t0 = Instant::now();
        let first = request(Method::Invite, "same", None, 1);
        feed(&mut u, &first, t0);
        feed(&mut u, &first.cancel().unwrap(), t0);
        sent(&mut u);
        // Same Call-ID, new branch: a new call whose final response is due at t0 + 1.5 s.
        let second = request(Method::Invite, "same", None, 7);
        feed(&mut u, &second, t0 + Duration::from_millis(500));
        sent(&mut u);
        // (The first call's 487 is retransmitted meanwhile: it was never ACKed.)
        u.handle_timeout(t0 + Duration::from_secs(1));
        let early = codes(&sent(&mut u));
        assert!(!early.contains(&200), "first call's timer fired: {early:?}");
        u.handle_timeout(t0 + Duration::from_millis(1500));
        assert!(codes(&sent(&mut u)).contains(&200));
    }
}
