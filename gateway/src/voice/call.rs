//! One notification call as a UAC: INVITE with an SDP offer (PCMU, PCMA, telephone-event) to
//! the voice trunks in LCR order, failing over like the proxy; on 2xx: ACK, play the audio as
//! 20 ms RTP packets paced by a tokio interval, capture RFC 4733 digits if asked, then BYE.
//!
//! # Trunk outcomes
//! As in [`crate::sip::proxy`] ([`crate::carrier::sip_verdict`]): 5xx, 408, 401/407 (we have
//! no credentials for trunks), timer B, a transport error, or no provisional beyond 100 within
//! `[voice] trunk_timeout_ms` (CANCELled if it had sent 100) → the next trunk, with the failure
//! recorded in the router's health and breaker (503 with Retry-After as throttling). 2xx,
//! other 3xx/4xx, and 6xx end the search and count as the trunk working. Ringing longer than
//! `[voice] ring_timeout_s` is CANCELled: `no_answer`.
//!
//! # Call outcomes ([`CallOutcome::error`])
//! answered → `None` (also when the gateway stopped mid-call: `hangup_reason: "shutdown"`,
//! after a BYE); 486/600 → `busy`; 603 → `declined`; 480, 487, our ring timer, or every
//! trunk timing out → `no_answer`; other 3xx/4xx/6xx → `rejected`; every trunk failing
//! otherwise → `carrier_error` (with the last SIP code); 2xx without usable SDP →
//! `media_error` (the call is ACKed and hung up at once); the gateway stopping while it rang →
//! `interrupted` (CANCELled).
//!
//! # Digits
//! RFC 4733 telephone-events count only from the callee's stream: RTP from the address of the
//! SDP answer, with the SSRC of the first packet seen from it ([`super::latch`]); packets from
//! anywhere else are ignored, so nobody else can press keys in the callee's name.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::dtmf::DtmfReceiver;
use switchyard_protocols::sip::rtp::{Packetizer, RtpPacket};
use switchyard_protocols::sip::sdp::{self, AudioConfig, SessionDescription};
use switchyard_protocols::sip::{Message, Method};
use switchyard_routing::{Admission, CarrierId, FailureClass, Outcome, Price, Router, VoiceTerms};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::audio::Pcm8k;
use super::dialog::{self, in_dialog, CallEvent};
use super::endpoint::Endpoint;
use super::latch::RtpLatch;
use super::{CallOutcome, TrunkTry, VoiceJob};
use crate::carrier::sip_verdict::{self, SipVerdict};
use crate::sip::trunks::Trunk;

/// How long a BYE or CANCEL may wait for its final response.
const CLOSE_WAIT: Duration = Duration::from_secs(4);
/// Packet time.
const PTIME: Duration = Duration::from_millis(20);

/// A trunk the call may use, best first.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Router id (health, breaker).
    pub carrier: CarrierId,
    /// Carrier name.
    pub name: String,
    /// Where INVITEs go.
    pub trunk: Trunk,
    /// Per-minute rate and its currency, and the billing terms, from the voice deck.
    pub rate: Option<(Price, String, VoiceTerms)>,
    /// Tenant price over our cost for this carrier (the plan's markup) as a fixed-point
    /// factor (1.0 = one unit), to price the answered call.
    pub markup: Price,
}

/// What a call needs from the engine.
#[derive(Debug)]
pub struct CallContext<'a> {
    /// The SIP endpoint.
    pub endpoint: &'a Endpoint,
    /// For health and breaker records.
    pub router: &'a Router,
    /// The call's RTP socket.
    pub rtp: &'a UdpSocket,
    /// Trunk silence timer.
    pub trunk_timeout: Duration,
    /// Ring timer.
    pub ring_timeout: Duration,
    /// Turns true when the gateway stops: ringing calls are CANCELled, answered ones hung up.
    pub shutdown: watch::Receiver<bool>,
}

/// How one INVITE attempt ended.
#[derive(Debug)]
enum Attempt {
    /// 2xx: the call is up.
    Answered {
        /// The 2xx.
        ok: Box<Message>,
        /// The INVITE.
        invite: Box<Message>,
        /// When the first 18x arrived.
        ringing_at: Option<Instant>,
    },
    /// Try the next trunk (code recorded: 408 for timeouts, 503 for transport errors).
    Failover(u16),
    /// Final for the call: the SIP code and our error code.
    Final(u16, &'static str, Option<Instant>),
}

/// Places the call and says how it went. Never panics on what peers send.
pub async fn place(
    ctx: &CallContext<'_>,
    job: &VoiceJob,
    audio: &Pcm8k,
    candidates: Vec<Candidate>,
) -> CallOutcome {
    let started = Instant::now();
    let mut out = CallOutcome::new();
    let Ok(rtp_addr) = ctx.rtp.local_addr() else {
        out.error = Some("media_error".into());
        return out;
    };
    let mut last_code = None;
    let mut all_timeouts = true;
    for cand in candidates {
        let table = ctx.router.load();
        if matches!(
            table.admit(cand.carrier, Instant::now()),
            Admission::Rejected { .. }
        ) {
            continue;
        }
        drop(table);
        let sent = Instant::now();
        let attempt = attempt(ctx, job, &cand, rtp_addr).await;
        let latency = sent.elapsed();
        match attempt {
            Attempt::Failover(code) => {
                out.tried.push(TrunkTry {
                    carrier: cand.name.clone(),
                    code,
                });
                last_code = Some(code);
                if code != 408 {
                    all_timeouts = false;
                }
            }
            Attempt::Final(code, error, ringing_at) => {
                out.tried.push(TrunkTry {
                    carrier: cand.name.clone(),
                    code,
                });
                record(ctx.router, cand.carrier, Outcome::Success { latency });
                out.trunk = Some(cand.name);
                out.sip_code = Some(code);
                out.error = Some(error.into());
                out.setup_ms = Some(started.elapsed().as_millis() as u64);
                out.ring_s = ringing_at.map(|r| secs(r.elapsed()));
                return out;
            }
            Attempt::Answered {
                ok,
                invite,
                ringing_at,
            } => {
                out.tried.push(TrunkTry {
                    carrier: cand.name.clone(),
                    code: ok.status().unwrap_or(200),
                });
                record(ctx.router, cand.carrier, Outcome::Success { latency });
                let answered = Instant::now();
                out.trunk = Some(cand.name.clone());
                out.sip_code = ok.status();
                out.answered = true;
                out.setup_ms = Some(started.elapsed().as_millis() as u64);
                out.ring_s = Some(ringing_at.map_or(0.0, |r| secs(answered - r)));
                converse(ctx, job, audio, &cand, &invite, &ok, answered, &mut out).await;
                return out;
            }
        }
    }
    out.setup_ms = Some(started.elapsed().as_millis() as u64);
    out.sip_code = last_code;
    out.error = Some(
        if last_code.is_some() && all_timeouts {
            "no_answer"
        } else {
            "carrier_error"
        }
        .into(),
    );
    out
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn record(router: &Router, carrier: CarrierId, outcome: Outcome) {
    router.load().record(carrier, Instant::now(), outcome);
}

/// One trunk: INVITE until a final response, a timer, or a transport error.
async fn attempt(
    ctx: &CallContext<'_>,
    job: &VoiceJob,
    cand: &Candidate,
    rtp: SocketAddr,
) -> Attempt {
    let Some(inv) = dialog::invite(ctx.endpoint.addr, &job.from, &job.to, &cand.trunk, rtp) else {
        tracing::warn!(carrier = %cand.name, "voice: could not build an INVITE");
        return Attempt::Failover(503);
    };
    let Ok(call_id) = inv.call_id().cloned() else {
        return Attempt::Failover(503);
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    ctx.endpoint.register(call_id.clone(), tx);
    ctx.endpoint.request(inv.clone(), cand.trunk.peer.addr);
    let sent = tokio::time::Instant::now();
    let silent_until = sent + ctx.trunk_timeout;
    let ring_until = sent + ctx.ring_timeout;
    let mut provisional = false;
    let mut ringing_at: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    let result = loop {
        let silence = async {
            if ringing_at.is_none() {
                tokio::time::sleep_until(silent_until).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            ev = rx.recv() => match ev {
                None => break Attempt::Failover(503),
                Some(CallEvent::Response(r)) if is_invite(&r) => {
                    let Some(code) = r.status() else { continue };
                    if code < 200 {
                        provisional = true;
                        if code > 100 && ringing_at.is_none() {
                            ringing_at = Some(Instant::now());
                        }
                        continue;
                    }
                    if (200..300).contains(&code) {
                        return Attempt::Answered { ok: Box::new(r), invite: Box::new(inv), ringing_at };
                    }
                    break final_code(ctx.router, cand.carrier, &r, code, ringing_at);
                }
                Some(CallEvent::Timeout { invite: true }) => {
                    record(ctx.router, cand.carrier, Outcome::Failure(FailureClass::Timeout));
                    break Attempt::Failover(408);
                }
                Some(CallEvent::TransportError { invite: true }) => {
                    record(ctx.router, cand.carrier, Outcome::Failure(FailureClass::TransportDown));
                    break Attempt::Failover(503);
                }
                Some(_) => {}
            },
            _ = silence => {
                record(ctx.router, cand.carrier, Outcome::Failure(FailureClass::Timeout));
                if let Some(ok) = cancel(ctx, &inv, cand, provisional, &mut rx).await {
                    // It answered as we gave up: the callee is on the line, play the call.
                    return Attempt::Answered { ok: Box::new(ok), invite: Box::new(inv), ringing_at };
                }
                break Attempt::Failover(408);
            }
            _ = tokio::time::sleep_until(ring_until) => {
                // Nobody picked up: CANCEL; a 2xx racing the CANCEL still wins.
                if let Some(ok) = cancel(ctx, &inv, cand, provisional, &mut rx).await {
                    return Attempt::Answered { ok: Box::new(ok), invite: Box::new(inv), ringing_at };
                }
                break Attempt::Final(487, "no_answer", ringing_at);
            }
            _ = stopped(&mut shutdown) => {
                if let Some(ok) = cancel(ctx, &inv, cand, provisional, &mut rx).await {
                    // Answered as we stopped: ACK and hang up at once (see `converse`).
                    return Attempt::Answered { ok: Box::new(ok), invite: Box::new(inv), ringing_at };
                }
                break Attempt::Final(487, "interrupted", ringing_at);
            }
        }
    };
    ctx.endpoint.unregister(call_id);
    result
}

/// Completes once the gateway is stopping (never when the sender is gone without stopping).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn is_invite(r: &Message) -> bool {
    r.cseq().is_ok_and(|c| c.method == Method::Invite)
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

/// A non-2xx final response to the INVITE: fail over or end the call
/// ([`crate::carrier::sip_verdict`], as the proxy decides).
fn final_code(
    router: &Router,
    carrier: CarrierId,
    r: &Message,
    code: u16,
    ringing_at: Option<Instant>,
) -> Attempt {
    match sip_verdict::of_response(r).and_then(SipVerdict::failover) {
        Some(class) => {
            router
                .load()
                .record(carrier, Instant::now(), Outcome::Failure(class));
            Attempt::Failover(code)
        }
        None => Attempt::Final(code, callee_error(code), ringing_at),
    }
}

/// CANCELs the INVITE (if a provisional allows it) and waits for the INVITE's final
/// response; returns a 2xx that won the race (the caller then plays the call).
async fn cancel(
    ctx: &CallContext<'_>,
    inv: &Message,
    cand: &Candidate,
    provisional: bool,
    rx: &mut mpsc::UnboundedReceiver<CallEvent>,
) -> Option<Message> {
    if !provisional {
        return None;
    }
    let c = inv.cancel()?;
    ctx.endpoint.request(c, cand.trunk.peer.addr);
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(CallEvent::Response(r))) if is_invite(&r) => match r.status() {
                Some(c) if (200..300).contains(&c) => return Some(r),
                Some(c) if c >= 300 => return None,
                _ => {}
            },
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// Why the call ended after the answer.
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

/// The answered call: ACK, play, listen for digits, hang up.
#[allow(clippy::too_many_arguments)]
async fn converse(
    ctx: &CallContext<'_>,
    job: &VoiceJob,
    audio: &Pcm8k,
    cand: &Candidate,
    inv: &Message,
    ok: &Message,
    answered: Instant,
    out: &mut CallOutcome,
) {
    let Ok(call_id) = inv.call_id().cloned() else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    ctx.endpoint.register(call_id.clone(), tx);
    let ack = in_dialog(ctx.endpoint.addr, Method::Ack, 1, inv, ok);
    let dest = cand.trunk.peer.addr;
    if let Some(a) = &ack {
        ctx.endpoint.stateless(a.clone(), dest);
    }
    let negotiated = ok
        .sdp_body()
        .and_then(|b| SessionDescription::parse(&b).ok())
        .and_then(|s| sdp::accept_answer(&s, &AudioConfig::default()).ok());
    let end = match negotiated {
        None => End::Media,
        Some(n) => {
            out.codec = Some(n.codec.name().to_owned());
            let remote = SocketAddr::new(n.remote_ip, n.remote_port);
            play(
                ctx,
                job,
                audio,
                remote,
                n.codec,
                n.telephone_event,
                &ack,
                dest,
                &mut rx,
                out,
            )
            .await
        }
    };
    let ended = Instant::now();
    out.talk_s = Some(secs(ended - answered));
    out.hangup_reason = Some(end.as_str().to_owned());
    if end == End::Media {
        out.error = Some("media_error".into());
    }
    if end != End::Callee {
        out.hangup_by = Some("switchyard".into());
        if let Some(bye) = in_dialog(ctx.endpoint.addr, Method::Bye, 2, inv, ok) {
            ctx.endpoint.request(bye, dest);
            let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
            while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                match ev {
                    CallEvent::Response(r)
                        if r.cseq().is_ok_and(|c| c.method == Method::Bye)
                            && r.status().is_some_and(|c| c >= 200) =>
                    {
                        break
                    }
                    CallEvent::Timeout { invite: false }
                    | CallEvent::TransportError { invite: false }
                    | CallEvent::Bye => break,
                    _ => {}
                }
            }
        }
    } else {
        out.hangup_by = Some("callee".into());
    }
    if let (Some((per_minute, currency, terms)), Some(talk)) = (&cand.rate, out.talk_s) {
        let secs = talk.ceil() as u32;
        let cost = terms.call_cost(*per_minute, secs);
        let billed = terms.billing.billable_secs(secs);
        let price = cost.mul_rate(cand.markup);
        out.billed_s = Some(billed);
        out.cost = Some(price.to_string());
        out.currency = Some(currency.clone());
    }
    ctx.endpoint.unregister(call_id);
}

/// Sends the audio and listens for digits until the call should end.
#[allow(clippy::too_many_arguments)]
async fn play(
    ctx: &CallContext<'_>,
    job: &VoiceJob,
    audio: &Pcm8k,
    remote: SocketAddr,
    codec: sdp::Codec,
    telephone_event: Option<u8>,
    ack: &Option<Message>,
    dest: SocketAddr,
    rx: &mut mpsc::UnboundedReceiver<CallEvent>,
    out: &mut CallOutcome,
) -> End {
    let payload = audio.encode(codec);
    let mut packetizer = Packetizer::g711_20ms(
        rand::random(),
        codec.payload_type(),
        rand::random(),
        rand::random(),
    );
    let packets: Vec<Bytes> = packetizer
        .packetize(&payload, codec.silence())
        .iter()
        .map(RtpPacket::to_bytes)
        .collect();
    let max_end =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(job.spec.max_duration_s));
    let dtmf = job.spec.dtmf;
    let mut digits = dtmf.map(|_| String::new());
    let mut receiver = DtmfReceiver::default();
    let mut latch = RtpLatch::new(remote);
    let mut interval = tokio::time::interval(PTIME);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = 0usize;
    let mut digit_wait_until: Option<tokio::time::Instant> = None;
    let mut buf = [0u8; 2048];
    let mut sent = 0u64;
    let mut shutdown = ctx.shutdown.clone();
    let end = loop {
        let playing = next < packets.len();
        if !playing && digit_wait_until.is_none() {
            // The last frame takes one packet time to play out (and must not race our BYE);
            // with capture, the caller gets `timeout_s` to press keys.
            let tail = dtmf.map_or(PTIME, |d| Duration::from_secs(u64::from(d.timeout_s)));
            digit_wait_until = Some(tokio::time::Instant::now() + tail);
        }
        let wait = async {
            match digit_wait_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interval.tick(), if playing => {
                if let Some(p) = packets.get(next) {
                    if ctx.rtp.send_to(p, remote).await.is_ok() {
                        sent += 1;
                    }
                }
                next += 1;
            }
            r = ctx.rtp.recv_from(&mut buf), if dtmf.is_some() => {
                let Ok((n, from)) = r else { continue };
                let Ok(pkt) = RtpPacket::decode(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default())) else {
                    continue;
                };
                // Only the callee's stream can press keys.
                if !latch.admit(from, pkt.ssrc) {
                    continue;
                }
                if Some(pkt.payload_type) != telephone_event {
                    continue;
                }
                if let (Some((key, _)), Some(d), Some(spec)) = (receiver.handle(&pkt), digits.as_mut(), dtmf) {
                    d.push(key);
                    if d.len() >= usize::from(spec.max_digits) {
                        break End::Digits;
                    }
                }
            }
            ev = rx.recv() => match ev {
                Some(CallEvent::Bye) | None => break End::Callee,
                // The 2xx again (our ACK was lost): ACK again.
                Some(CallEvent::Retransmitted2xx(_)) => {
                    if let Some(a) = ack {
                        ctx.endpoint.stateless(a.clone(), dest);
                    }
                }
                Some(CallEvent::Response(r))
                    if is_invite(&r) && r.status().is_some_and(|c| (200..300).contains(&c)) =>
                {
                    if let Some(a) = ack {
                        ctx.endpoint.stateless(a.clone(), dest);
                    }
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(max_end) => break End::MaxDuration,
            _ = wait => break End::Completed,
            _ = stopped(&mut shutdown) => break End::Shutdown,
        }
    };
    if latch.refused() > 0 {
        tracing::warn!(id = %job.id, packets = latch.refused(), "voice: ignored RTP from outside the call's stream");
    }
    out.packets_sent = Some(sent);
    out.audio_ms = Some(audio.duration_ms());
    out.digits = digits;
    end
}

/// Binds an RTP socket on `ip` in `[min, max]`, starting at `start` and wrapping.
pub async fn bind_rtp(
    ip: IpAddr,
    (min, max): (u16, u16),
    start: u32,
) -> std::io::Result<UdpSocket> {
    let span = u32::from(max.saturating_sub(min)) + 1;
    // RTP ports are even by convention (RFC 3550 §11); try every even port once.
    let evens = span.div_ceil(2).max(1);
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrInUse, "no RTP port free");
    for i in 0..evens {
        let offset = ((start.wrapping_add(i)) % evens) * 2;
        let Ok(port) = u16::try_from(u32::from(min) + offset) else {
            continue;
        };
        if port > max {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callee_answers_map_to_error_codes() {
        assert_eq!(callee_error(486), "busy");
        assert_eq!(callee_error(600), "busy");
        assert_eq!(callee_error(603), "declined");
        assert_eq!(callee_error(480), "no_answer");
        assert_eq!(callee_error(487), "no_answer");
        assert_eq!(callee_error(404), "rejected");
        assert_eq!(callee_error(302), "rejected");
    }

    #[tokio::test]
    async fn rtp_ports_are_even_in_range_and_skip_busy_ones() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        // A range of two even ports that were free a moment ago.
        let min = loop {
            let probe = std::net::UdpSocket::bind((ip, 0)).unwrap();
            let p = probe.local_addr().unwrap().port();
            if p % 2 == 0 && p < 65000 {
                break p;
            }
        };
        let range = (min, min + 3);
        let a = bind_rtp(ip, range, 0).await.unwrap();
        let b = bind_rtp(ip, range, 0).await.unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_ne!(pa, pb);
        for p in [pa, pb] {
            assert!(p % 2 == 0 && (range.0..=range.1).contains(&p), "{p}");
        }
        // Both even ports are ours now: nothing left.
        assert!(bind_rtp(ip, range, 0).await.is_err());
    }
}
