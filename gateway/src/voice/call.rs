//! One notification call's I/O: the driver of [`Caller`], the state machine in
//! [`super::caller`] that makes every decision (trunk failover, CANCEL, when to play and hang
//! up, digits, the outcome). This module only feeds it what happens — the endpoint's events
//! for the call, the RTP socket's datagrams while it wants them, timer expiries, the gateway
//! stopping — with the time, and does what it asks: SIP requests through the [`Endpoint`],
//! health records in the [`Router`], and the audio, as 20 ms RTP packets paced by a tokio
//! interval.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::rtp::{Packetizer, RtpPacket};
use switchyard_protocols::sip::sdp;
use switchyard_routing::Router;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::audio::Pcm8k;
use super::caller::{Action, CallPlan, Caller, Candidate, PTIME};
use super::dialog::CallEvent;
use super::endpoint::Endpoint;
use super::{CallOutcome, VoiceJob};

/// What a call needs from the engine.
#[derive(Debug)]
pub(crate) struct CallContext<'a> {
    /// The SIP endpoint.
    pub(crate) endpoint: &'a Endpoint,
    /// For health and breaker records.
    pub(crate) router: &'a Router,
    /// The call's RTP socket.
    pub(crate) rtp: &'a UdpSocket,
    /// Trunk silence timer.
    pub(crate) trunk_timeout: Duration,
    /// Ring timer.
    pub(crate) ring_timeout: Duration,
    /// Turns true when the gateway stops: ringing calls are CANCELled, answered ones hung up.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Places the call and says how it went. Never panics on what peers send.
pub(crate) async fn place(
    ctx: &CallContext<'_>,
    job: &VoiceJob,
    audio: &Pcm8k,
    candidates: Vec<Candidate>,
) -> CallOutcome {
    let Ok(rtp) = ctx.rtp.local_addr() else {
        let mut out = CallOutcome::new();
        out.error = Some("media_error".into());
        return out;
    };
    let plan = CallPlan {
        me: ctx.endpoint.addr,
        rtp,
        to: job.to,
        from: job.from.clone(),
        dtmf: job.spec.dtmf,
        max_duration: Duration::from_secs(u64::from(job.spec.max_duration_s)),
        trunk_timeout: ctx.trunk_timeout,
        ring_timeout: ctx.ring_timeout,
    };
    let mut caller = Caller::new(plan, candidates, ctx.router, Instant::now());
    // The endpoint's events for the Call-ID the caller listens to.
    let mut events: Option<mpsc::UnboundedReceiver<CallEvent>> = None;
    // The audio going out, while it does.
    let mut player: Option<Player> = None;
    // RTP packets sent.
    let mut sent = 0u64;
    let mut shutdown = ctx.shutdown.clone();
    let mut told_shutdown = false;
    let mut buf = [0u8; 2048];
    loop {
        while let Some(action) = caller.poll_action() {
            match action {
                Action::Listen(call_id) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    ctx.endpoint.register(call_id, tx);
                    events = Some(rx);
                }
                Action::Forget(call_id) => {
                    ctx.endpoint.unregister(call_id);
                    events = None;
                }
                Action::Request { message, to } => ctx.endpoint.request(message, to),
                Action::Stateless { message, to } => ctx.endpoint.stateless(message, to),
                Action::Play { remote, codec } => {
                    let p = Player::new(audio, codec, remote);
                    if p.done() {
                        caller.handle_audio_played(Instant::now());
                    }
                    player = Some(p);
                }
                Action::StopPlaying => player = None,
                Action::Record {
                    carrier,
                    outcome,
                    at,
                } => {
                    crate::carrier::health::record(ctx.router, &carrier, outcome, at);
                }
                Action::Finished(mut out) => {
                    if caller.refused_rtp() > 0 {
                        tracing::warn!(id = %job.id, packets = caller.refused_rtp(), "voice: ignored RTP from outside the call's stream");
                    }
                    if out.codec.is_some() {
                        out.packets_sent = Some(sent);
                        out.audio_ms = Some(audio.duration_ms());
                    }
                    return *out;
                }
            }
        }
        let wake = caller.poll_timeout();
        let playing = player.as_ref().is_some_and(|p| !p.done());
        let listening = caller.wants_rtp();
        tokio::select! {
            ev = next_event(&mut events) => match ev {
                Some(ev) => caller.handle_event(ev, Instant::now()),
                None => {
                    events = None;
                    caller.handle_endpoint_gone(Instant::now());
                }
            },
            _ = sleep_until(wake) => caller.handle_timeout(Instant::now()),
            _ = stopped(&mut shutdown), if !told_shutdown => {
                told_shutdown = true;
                caller.handle_shutdown(Instant::now());
            }
            _ = tick(&mut player), if playing => {
                if let Some(p) = player.as_mut() {
                    if p.send_next(ctx.rtp).await {
                        sent += 1;
                    }
                    if p.done() {
                        caller.handle_audio_played(Instant::now());
                    }
                }
            }
            r = ctx.rtp.recv_from(&mut buf), if listening => {
                if let Ok((n, from)) = r {
                    let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    caller.handle_rtp(from, datagram, Instant::now());
                }
            }
        }
    }
}

/// The audio of an answered call as RTP packets, sent one per [`PTIME`].
struct Player {
    /// Every packet, in order.
    packets: Vec<Bytes>,
    /// The next one to send.
    next: usize,
    /// The callee's RTP address.
    remote: SocketAddr,
    /// Paces the packets (a late tick is caught up at once: the callee's jitter buffer
    /// absorbs a burst better than a gap).
    interval: tokio::time::Interval,
}

impl Player {
    fn new(audio: &Pcm8k, codec: sdp::Codec, remote: SocketAddr) -> Self {
        let payload = audio.encode(codec);
        let mut packetizer = Packetizer::g711_20ms(
            rand::random(),
            codec.payload_type(),
            rand::random(),
            rand::random(),
        );
        let packets = packetizer
            .packetize(&payload, codec.silence())
            .iter()
            .map(RtpPacket::to_bytes)
            .collect();
        let mut interval = tokio::time::interval(PTIME);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Player {
            packets,
            next: 0,
            remote,
            interval,
        }
    }

    /// Every packet has gone out.
    fn done(&self) -> bool {
        self.next >= self.packets.len()
    }

    /// Sends the next packet; whether it went out.
    async fn send_next(&mut self, rtp: &UdpSocket) -> bool {
        let Some(p) = self.packets.get(self.next) else {
            return false;
        };
        self.next += 1;
        rtp.send_to(p, self.remote).await.is_ok()
    }
}

/// The player's next tick (never, without a player).
async fn tick(player: &mut Option<Player>) {
    match player {
        Some(p) => {
            p.interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The next event on `events` (never, while nothing is listened to); `None`: the endpoint
/// is gone.
async fn next_event(events: &mut Option<mpsc::UnboundedReceiver<CallEvent>>) -> Option<CallEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes at `at` (never for `None`).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Completes once the gateway is stopping (never when the sender is gone without stopping).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Binds an RTP socket on `ip` in `[min, max]`, starting at `start` and wrapping.
pub(crate) async fn bind_rtp(
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
