//! One SMPP bind to a carrier: a tokio task around a sans-IO ESME [`Session`].
//!
//! ```text
//! connect (backoff + jitter) ─► bind ─► loop {
//!     fill the window: retries due first, then jobs from the carrier queue, within the TPS bucket
//!     read: responses → sent / retry / fail over / rejected; deliver_sm → receipts, MO (acked once durable)
//!     timers: session (enquire_link, response timeouts), throttle, retry back-off
//! } ─► closed: everything in flight goes back to the queue; reconnect
//! ```
//! Throttling (ESME_RTHROTTLED, ESME_RMSGQFUL) halves this bind's rate and retries the segment
//! on the same bind; the rate creeps back up with each success (AIMD). Transient errors retry
//! on this carrier up to `max_retries`, then the message fails over to the next carrier.
//! Permanent errors reject the message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::Rng;
use switchyard_protocols::dlr::{receipt_from_deliver, ReceiptState};
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{Bind, Body, DataSmResp, MessageIdResp, SubmitSm};
use switchyard_protocols::smpp::session::{Event, Session, SessionConfig, State};
use switchyard_protocols::smpp::status::StatusClass;
use switchyard_protocols::smpp::CommandStatus;
use switchyard_protocols::text::udh::without_concat;
use switchyard_protocols::text::{parse_udh, Part, ReassemblyKey};
use switchyard_routing::{FailureClass, Outcome, TokenBucket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, Encoder};

use super::mo::{owned, source_display, Arrived};
use super::submit::{segments, Segment};
use super::BindSettings;
use crate::carrier::backoff::{self, Backoff};
use crate::dispatch::{CarrierQueue, Dispatcher, Job};
use crate::domain::{now_ms, InboundMessage, MessageId, ReceiptUpdate, Status, Update};
use crate::inbound::ReplyRequest;
use crate::updates::UpdateSink;

/// The accounting period of carriers' TPS limits: throttling answers within one such period
/// after a slow-down are one signal, not many.
const THROTTLE_PERIOD: Duration = Duration::from_secs(1);

/// What every bind of the gateway shares.
#[derive(Debug, Clone)]
pub(crate) struct BindContext {
    /// Routing, failover, queues.
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// Where state changes go.
    pub(crate) updates: UpdateSink,
    /// Flips to true when the gateway shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// How long to wait for in-flight responses at shutdown before unbinding anyway.
    pub(crate) drain_timeout: Duration,
    /// MO ownership, opt-out keywords and keyword replies.
    pub(crate) inbound: crate::inbound::Inbound,
    /// Bounds and timeout of each carrier's multipart MO reassembler.
    pub(crate) mo_reassembly: switchyard_protocols::text::ReassemblyConfig,
    /// On a shared store: where the parts of multipart MO messages that other nodes' binds
    /// received are found (see [`complete_across_nodes`]).
    pub(crate) shared_store: Option<SharedStore>,
}

/// A store several nodes share, as the binds use it.
#[derive(Clone)]
pub(crate) struct SharedStore(pub(crate) Arc<dyn crate::store::Store>);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

/// Live facts about one bind, for readiness and metrics.
#[derive(Debug, Default)]
pub(crate) struct BindStatus {
    /// Bound right now.
    pub(crate) bound: AtomicBool,
    /// On a shared store: another node holds this bind's slot (the bind runs there).
    pub(crate) elsewhere: AtomicBool,
    /// Successful binds so far.
    pub(crate) binds: AtomicU64,
    /// submit_sm sent.
    pub(crate) submitted: AtomicU64,
    /// Receipts received.
    pub(crate) receipts: AtomicU64,
}

/// A segment sent and awaiting its response.
#[derive(Debug)]
struct InFlight {
    job: Arc<Job>,
    segment: Segment,
    attempt: u32,
    sent_at: Instant,
}

/// A segment waiting to be (re)sent.
#[derive(Debug)]
struct Pending {
    job: Arc<Job>,
    segment: Segment,
    attempt: u32,
    not_before: Instant,
}

/// Runs one bind until shutdown: connects, binds, sends, reconnects.
pub(crate) async fn run(settings: BindSettings, ctx: BindContext, status: Arc<BindStatus>) {
    let queue = ctx.dispatcher.queue(&settings.carrier);
    let mut backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&settings.address)) => c,
            _ = shutdown.changed() => return,
        };
        match connected {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let bound = match &settings.tls {
                    None => {
                        let (rd, wr) = stream.into_split();
                        serve_connection(&settings, &ctx, &queue, &status, rd, wr).await
                    }
                    Some(tls) => {
                        let handshake = tokio::select! {
                            h = tokio::time::timeout(Duration::from_secs(10), tls.connect(stream)) => h,
                            _ = shutdown.changed() => return,
                        };
                        match handshake {
                            Ok(Ok(stream)) => {
                                let (rd, wr) = tokio::io::split(stream);
                                serve_connection(&settings, &ctx, &queue, &status, rd, wr).await
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(carrier = %settings.carrier, "TLS handshake with {} failed: {e}", settings.address);
                                false
                            }
                            Err(_) => {
                                tracing::warn!(carrier = %settings.carrier, "TLS handshake with {} timed out", settings.address);
                                false
                            }
                        }
                    }
                };
                if bound {
                    backoff.reset();
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(carrier = %settings.carrier, "connect to {} failed: {e}", settings.address)
            }
            Err(_) => {
                tracing::warn!(carrier = %settings.carrier, "connect to {} timed out", settings.address)
            }
        }
        record(
            &ctx,
            &settings.carrier,
            Outcome::Failure(FailureClass::TransportDown),
        );
        // Down, and the breaker agrees: what waits on this carrier's queue (including what this
        // bind held) goes to the next carrier of its route now, rather than when it comes back.
        if ctx.dispatcher.breaker_tripped(&settings.carrier) {
            ctx.dispatcher.evacuate(&settings.carrier).await;
        }
        // Exponential back-off with equal jitter: in [ceiling/2, ceiling].
        let jittered = backoff::equal_jitter(backoff.fail(), rand::rng().random_range(0.0..1.0));
        tokio::select! {
            _ = tokio::time::sleep(jittered) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Drives one bind over a connected stream, given as its read and write halves, until the
/// connection closes: binds, sends, answers, then hands what it held back to the carrier's
/// queue. Returns whether it ever bound.
pub(super) async fn serve_connection<R, W>(
    settings: &BindSettings,
    ctx: &BindContext,
    queue: &Arc<CarrierQueue>,
    status: &BindStatus,
    rd: R,
    wr: W,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut conn = Conn::new(settings, ctx, queue, status);
    let bound = conn.serve(rd, wr).await;
    status.bound.store(false, Ordering::Relaxed);
    conn.release().await;
    bound
}

/// The wait before a segment's first retry on the same carrier; it doubles per retry.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between retries of a segment.
const RETRY_MAX: Duration = Duration::from_millis(6400);

/// The tokio runtime's clock, as the `Instant` the session, the token bucket and the MO
/// reassembler take: the system clock, except under tokio's paused test clock, where the bind's
/// timers (enquire_link, response timeouts, back-off, throttling) then run in virtual time.
fn runtime_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn record(ctx: &BindContext, carrier: &str, outcome: Outcome) {
    crate::carrier::health::record(&ctx.dispatcher.router, carrier, outcome, Instant::now());
}

/// `switchyard_smpp_submit_responses_total{carrier, command_status}`: command_status as the
/// SMSC sent it (a carrier uses a handful of codes).
fn response_counter(carrier: &str, status: CommandStatus) -> metrics::Counter {
    metrics::counter!(
        "switchyard_smpp_submit_responses_total",
        "carrier" => carrier.to_owned(),
        "command_status" => format!("0x{:08x}", status.0)
    )
}

/// One connection's state.
struct Conn<'a> {
    s: &'a BindSettings,
    ctx: &'a BindContext,
    queue: &'a Arc<CarrierQueue>,
    status: &'a BindStatus,
    session: Session,
    in_flight: HashMap<u32, InFlight>,
    pending: VecDeque<Pending>,
    bucket: Option<TokenBucket>,
    /// The configured rate, which AIMD never exceeds.
    max_rate: Option<u32>,
    /// When the rate was last halved: at most one halving per [`THROTTLE_PERIOD`].
    slowed_at: Option<Instant>,
    /// Receipts and MO waiting for their commit before we acknowledge them.
    acks: FuturesUnordered<futures::future::BoxFuture<'static, (u32, bool, bool)>>,
    reference: u16,
    draining: Option<Instant>,
    /// `switchyard_smpp_submit_response_seconds{carrier}`, recorded for every response.
    response_seconds: metrics::Histogram,
    /// `switchyard_smpp_submit_responses_total{carrier, command_status="0x00000000"}`, the
    /// response almost every submit gets.
    responses_ok: metrics::Counter,
}

impl<'a> Conn<'a> {
    fn new(
        s: &'a BindSettings,
        ctx: &'a BindContext,
        queue: &'a Arc<CarrierQueue>,
        status: &'a BindStatus,
    ) -> Self {
        let now = runtime_now();
        let credentials = Bind {
            system_id: s.system_id.clone().into(),
            password: s.password.clone().into(),
            system_type: s.system_type.clone().into(),
            interface_version: 0x34,
            ..Bind::default()
        };
        let mut config = SessionConfig::esme(s.bind_type, credentials);
        config.window = s.window.max(1);
        config.response_timeout = s.response_timeout;
        config.enquire_link_interval = Some(s.enquire_link);
        // Receipts and MO are acknowledged only once committed, so many can be unanswered at
        // once under load; the session's default (64) made it answer ESME_RTHROTTLED to the
        // SMSC and provoked resend storms.
        config.peer_window = 4096;
        let bucket = s
            .tps
            .and_then(NonZeroU32::new)
            .map(|r| TokenBucket::per_second(r, now));
        Conn {
            s,
            ctx,
            queue,
            status,
            session: Session::new(config, now),
            in_flight: HashMap::new(),
            pending: VecDeque::new(),
            bucket,
            max_rate: s.tps,
            slowed_at: None,
            acks: FuturesUnordered::new(),
            reference: rand::rng().random(),
            draining: None,
            response_seconds: metrics::histogram!("switchyard_smpp_submit_response_seconds", "carrier" => s.carrier.clone()),
            responses_ok: response_counter(&s.carrier, CommandStatus::ESME_ROK),
        }
    }

    /// Drives the connection until it closes. Returns whether it ever bound.
    async fn serve<R, W>(&mut self, mut rd: R, mut wr: W) -> bool
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut codec = SmppCodec::with_max_pdu_len(self.s.max_pdu_len);
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        let mut shutdown = self.ctx.shutdown.clone();
        let mut ever_bound = false;
        if let Err(e) = self.session.bind(runtime_now()) {
            tracing::error!(carrier = %self.s.carrier, "cannot bind: {e}");
            return false;
        }
        loop {
            let now = runtime_now();
            // What was just read first: a rejected part must fail its message before the slot
            // it frees is refilled, and a drain may be over with the last response.
            self.drain_events(now).await;
            if *shutdown.borrow() && self.draining.is_none() {
                self.draining = Some(now + self.ctx.drain_timeout);
            }
            if let Some(deadline) = self.draining {
                let bound = matches!(self.session.state(), State::Bound(_));
                if bound && (self.in_flight.is_empty() || now >= deadline) {
                    let _ = self.session.unbind(now);
                }
            }
            let mut wake = self.fill(now).await;
            self.drain_events(now).await;
            // Events just drained may have queued retries (error responses, timeouts) after
            // `fill` computed its wake-up: without this the bind sleeps until the next session
            // timer (enquire_link, up to its interval) before retrying or failing them over.
            if let Some(p) = self.pending.front() {
                wake = wake.min(p.not_before);
            }
            // The end of the drain is a wake-up of its own: unbind then, answered or not.
            if let Some(deadline) = self.draining {
                if matches!(self.session.state(), State::Bound(_)) {
                    wake = wake.min(deadline);
                }
            }
            ever_bound |= self.status.bound.load(Ordering::Relaxed);
            while let Some(pdu) = self.session.poll_transmit() {
                if let Err(e) = codec.encode(&pdu, &mut wbuf) {
                    tracing::error!(carrier = %self.s.carrier, "cannot encode {:?}: {e}", pdu.command_id());
                }
            }
            if !wbuf.is_empty() {
                if let Err(e) = wr.write_all(&wbuf).await {
                    tracing::warn!(carrier = %self.s.carrier, "write failed: {e}");
                    self.session.connection_lost(runtime_now());
                    self.drain_events(runtime_now()).await;
                    return ever_bound;
                }
                wbuf.clear();
            }
            if self.session.is_closed() {
                return ever_bound;
            }
            if let Some(t) = self.session.poll_timeout() {
                wake = wake.min(t);
            }
            if let Some(t) = self.s.mo_parts.next_deadline() {
                wake = wake.min(t);
            }
            let want_work = self.draining.is_none()
                && self.s.bind_type != super::BindType::Receiver
                && matches!(self.session.state(), State::Bound(_))
                && self.session.window_available() > 0;
            tokio::select! {
                read = rd.read_buf(&mut rbuf) => {
                    let now = runtime_now();
                    match read {
                        Ok(0) | Err(_) => self.session.connection_lost(now),
                        Ok(_) => loop {
                            match codec.decode(&mut rbuf) {
                                Ok(Some(Ok(pdu))) => self.session.handle_pdu(pdu, now),
                                Ok(Some(Err(bad))) => {
                                    tracing::warn!(carrier = %self.s.carrier, "malformed PDU from the SMSC: {bad}");
                                    self.session.handle_decode_error(&bad, now);
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(carrier = %self.s.carrier, "closing: {e}");
                                    self.session.connection_lost(now);
                                    break;
                                }
                            }
                        },
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = runtime_now();
                    self.session.handle_timeout(now);
                    if self.s.mo_parts.next_deadline().is_some_and(|t| t <= now) {
                        self.expire_mo().await;
                    }
                }
                _ = self.queue.notify.notified(), if want_work => {}
                Some((seq, is_data_sm, ok)) = self.acks.next(), if !self.acks.is_empty() => {
                    self.acknowledge(seq, is_data_sm, ok);
                    // Acknowledge everything else already committed in the same go.
                    while let Some(Some((seq, is_data_sm, ok))) = futures::FutureExt::now_or_never(self.acks.next()) {
                        self.acknowledge(seq, is_data_sm, ok);
                    }
                }
                _ = shutdown.changed(), if self.draining.is_none() => {}
            }
        }
    }

    /// Sends what the window and the throttle allow. Returns when to wake up next for it.
    async fn fill(&mut self, now: Instant) -> Instant {
        let far = now + Duration::from_secs(3600);
        // A receiver bind submits nothing: the carrier's other binds take its queue.
        if !matches!(self.session.state(), State::Bound(_))
            || self.draining.is_some()
            || self.s.bind_type == super::BindType::Receiver
        {
            return far;
        }
        while self.session.window_available() > 0 {
            let next = match self.pending.front() {
                Some(p) if p.not_before <= now => self.pending.pop_front(),
                // A retry waiting out its back-off must not hold up the queue behind it: that
                // stalled the whole bind for 100–400 ms per transient error (and delayed the
                // failures that open a failing carrier's breaker).
                Some(_) if self.bucket.as_mut().is_none_or(|b| b.available(now) > 0) => {
                    self.next_from_queue(now).await
                }
                Some(_) => None,
                None => self.next_from_queue(now).await,
            };
            let Some(p) = next else {
                return self.pending.front().map_or(far, |p| p.not_before);
            };
            // This bind's rate first (only looked at), then the carrier's (taken), then this
            // bind's token: a refusal of either takes nothing from the other.
            let bind_ready = self.bucket.as_mut().map_or(Ok(()), |b| {
                if b.available(now) > 0 {
                    Ok(())
                } else {
                    b.try_take(now, 1)
                }
            });
            let ready = bind_ready.and_then(|()| self.s.rate.try_take(now));
            if let Err(wait) = ready {
                let at = match wait {
                    switchyard_routing::Wait::Until(t) => t,
                    switchyard_routing::Wait::Never => now + Duration::from_millis(10),
                };
                self.pending.push_front(Pending {
                    not_before: at,
                    ..p
                });
                return at;
            }
            if let Some(bucket) = self.bucket.as_mut() {
                let _ = bucket.try_take(now, 1);
            }
            match self
                .session
                .send_request(Body::SubmitSm(p.segment.pdu.clone()), now)
            {
                Ok(seq) => {
                    self.status.submitted.fetch_add(1, Ordering::Relaxed);
                    self.in_flight.insert(
                        seq,
                        InFlight {
                            job: p.job,
                            segment: p.segment,
                            attempt: p.attempt,
                            sent_at: now,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(carrier = %self.s.carrier, "send_request refused: {e}");
                    self.pending.push_front(p);
                    return far;
                }
            }
        }
        far
    }

    /// Takes the next job from the carrier queue and splits it into pending segments; returns
    /// the first.
    async fn next_from_queue(&mut self, now: Instant) -> Option<Pending> {
        loop {
            let job = self.queue.pop()?;
            if job.expired(now_ms()) {
                self.ctx
                    .updates
                    .send(Update::Status {
                        id: job.id,
                        status: Status::Expired,
                        at: now_ms(),
                        detail: Some("validity period ended before sending".into()),
                    })
                    .await;
                continue;
            }
            self.reference = self.reference.wrapping_add(1);
            match segments(&job, self.s, self.reference) {
                Ok(segs) if segs.is_empty() => continue,
                Ok(segs) => {
                    let mut parts = segs.into_iter().map(|segment| Pending {
                        job: job.clone(),
                        segment,
                        attempt: 0,
                        not_before: now,
                    });
                    let first = parts.next();
                    // The other parts go next, ahead of retries still waiting out a back-off.
                    let rest: Vec<Pending> = parts.collect();
                    for p in rest.into_iter().rev() {
                        self.pending.push_front(p);
                    }
                    return first;
                }
                Err(e) => {
                    // Validated at the API; only a carrier forcing an encoding can get here.
                    self.ctx
                        .updates
                        .send(Update::Status {
                            id: job.id,
                            status: Status::Rejected,
                            at: now_ms(),
                            detail: Some(format!("cannot encode: {e}")),
                        })
                        .await;
                }
            }
        }
    }

    async fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Bound { .. } => {
                    tracing::info!(carrier = %self.s.carrier, "bound");
                    self.status.bound.store(true, Ordering::Relaxed);
                    self.status.binds.fetch_add(1, Ordering::Relaxed);
                }
                Event::Response {
                    sequence_number,
                    status,
                    body,
                    ..
                } => {
                    let id = match &body {
                        Body::SubmitSmResp(r) => Some(r.message_id.to_str_lossy().into_owned()),
                        _ => None,
                    };
                    self.on_response(sequence_number, status, id, now).await;
                }
                Event::MalformedResponse {
                    sequence_number,
                    status,
                    ..
                } => {
                    // The header's status is reliable; the id is lost, so no receipt will match.
                    self.on_response(sequence_number, status, Some(String::new()), now)
                        .await;
                }
                Event::ResponseTimeout {
                    sequence_number, ..
                } => {
                    if let Some(f) = self.in_flight.remove(&sequence_number) {
                        record(
                            self.ctx,
                            &self.s.carrier,
                            Outcome::Failure(FailureClass::Timeout),
                        );
                        self.retry_or_fail_over(f, "response timeout", now).await;
                    }
                }
                Event::Request {
                    sequence_number,
                    body,
                } => self.on_request(sequence_number, body, now).await,
                Event::Closed { reason, lost } => {
                    if reason.is_failure() {
                        tracing::warn!(carrier = %self.s.carrier, ?reason, lost = lost.len(), "session closed");
                    } else {
                        tracing::info!(carrier = %self.s.carrier, ?reason, "session closed");
                    }
                }
                _ => {}
            }
        }
    }

    async fn on_response(
        &mut self,
        seq: u32,
        status: CommandStatus,
        carrier_id: Option<String>,
        now: Instant,
    ) {
        let Some(f) = self.in_flight.remove(&seq) else {
            return;
        };
        let latency = now.saturating_duration_since(f.sent_at);
        self.response_seconds.record(latency.as_secs_f64());
        if status == CommandStatus::ESME_ROK {
            self.responses_ok.increment(1);
        } else {
            response_counter(&self.s.carrier, status).increment(1);
        }
        match status.class() {
            StatusClass::Ok => {
                record(self.ctx, &self.s.carrier, Outcome::Success { latency });
                self.speed_up(now);
                self.ctx
                    .updates
                    .send(Update::SegmentSent {
                        id: f.job.id,
                        index: f.segment.index,
                        carrier: self.s.carrier.clone(),
                        carrier_message_id: carrier_id.unwrap_or_default(),
                        id_formats: self.s.id_formats,
                        at: now_ms(),
                    })
                    .await;
            }
            StatusClass::Throttled => {
                record(
                    self.ctx,
                    &self.s.carrier,
                    Outcome::Failure(FailureClass::Throttled),
                );
                // Carriers count TPS per second and refuse everything above it until the
                // second ends: every answer in that stretch is the same signal. Halve once for
                // it, not once per answer (that took a 50/s carrier down to 1/s).
                if self
                    .slowed_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= THROTTLE_PERIOD)
                {
                    self.slow_down(now);
                    self.slowed_at = Some(now);
                }
                self.pending.push_front(Pending {
                    job: f.job,
                    segment: f.segment,
                    attempt: f.attempt,
                    not_before: now + Duration::from_millis(50),
                });
            }
            StatusClass::Permanent => {
                record(
                    self.ctx,
                    &self.s.carrier,
                    Outcome::Failure(FailureClass::PermanentReject),
                );
                self.drop_job_segments(f.job.id);
                self.ctx
                    .updates
                    .send(Update::SegmentRejected {
                        id: f.job.id,
                        index: f.segment.index,
                        carrier: self.s.carrier.clone(),
                        error: status.to_string(),
                        at: now_ms(),
                    })
                    .await;
            }
            _ => {
                record(
                    self.ctx,
                    &self.s.carrier,
                    Outcome::Failure(FailureClass::TransportDown),
                );
                self.retry_or_fail_over(f, &status.to_string(), now).await;
            }
        }
    }

    /// Retries a segment on this carrier with back-off, or hands the message to the next
    /// carrier when retries are exhausted.
    async fn retry_or_fail_over(&mut self, f: InFlight, reason: &str, now: Instant) {
        if f.attempt < self.s.max_retries {
            let backoff = backoff::ceiling(f.attempt + 1, RETRY_FIRST, RETRY_MAX);
            self.pending.push_back(Pending {
                job: f.job,
                segment: f.segment,
                attempt: f.attempt + 1,
                not_before: now + backoff,
            });
        } else {
            let job = self.without_job(&f.job);
            // The job's other segments still in flight here are abandoned too: the next carrier
            // sends the whole job, so their responses must not fail it over (or retry it) again.
            // Without this a 3-part message failed over three times: 3 copies, 9 submits at B.
            self.in_flight.retain(|_, other| other.job.id != job.id);
            self.ctx
                .dispatcher
                .fail_over(&job, &self.s.carrier, reason)
                .await;
        }
    }

    /// Removes a job's other segments from this bind; returns the job with the segments
    /// already confirmed by earlier responses marked as sent (not known here: the store keeps
    /// that, so only what this bind still holds is dropped).
    fn without_job(&mut self, job: &Arc<Job>) -> Arc<Job> {
        self.drop_job_segments(job.id);
        job.clone()
    }

    fn drop_job_segments(&mut self, id: MessageId) {
        self.pending.retain(|p| p.job.id != id);
    }

    /// Multiplicative decrease of this bind's rate after a throttling response.
    fn slow_down(&mut self, now: Instant) {
        let current = match (&self.bucket, self.session.in_flight()) {
            (Some(b), _) => b.rate().get(),
            // Unthrottled so far: start from what we were doing, roughly a window per second.
            (None, in_flight) => (in_flight as u32 * 10).max(10),
        };
        let halved = NonZeroU32::new((current / 2).max(1)).unwrap_or(NonZeroU32::MIN);
        match self.bucket.as_mut() {
            Some(b) => b.set_rate(halved, now),
            None => self.bucket = Some(TokenBucket::per_second(halved, now)),
        }
        tracing::debug!(carrier = %self.s.carrier, rate = halved.get(), "throttled: slowing down");
    }

    /// Additive increase back towards the configured rate after successes.
    fn speed_up(&mut self, now: Instant) {
        let Some(b) = self.bucket.as_mut() else {
            return;
        };
        let rate = b.rate().get();
        let ceiling = self.max_rate.unwrap_or(u32::MAX);
        if rate < ceiling {
            let next = rate.saturating_add((rate / 50).max(1)).min(ceiling);
            if let Some(next) = NonZeroU32::new(next) {
                b.set_rate(next, now);
            }
        } else if self.max_rate.is_none() {
            // Back above any rate we ever saw throttling at: drop the limiter.
            self.bucket = None;
        }
    }

    async fn on_request(&mut self, seq: u32, body: Body, now: Instant) {
        let (sm, is_data_sm) = match body {
            Body::DeliverSm(sm) => (sm, false),
            Body::DataSm(d) => (
                SubmitSm {
                    source: d.source,
                    dest: d.dest,
                    esm_class: d.esm_class,
                    data_coding: d.data_coding,
                    tlvs: d.tlvs,
                    ..SubmitSm::default()
                },
                true,
            ),
            other => {
                let status = CommandStatus::ESME_RINVCMDID;
                let resp = other
                    .command_id()
                    .empty_response()
                    .unwrap_or(Body::GenericNack);
                let _ = self.session.respond(seq, status, resp, now);
                return;
            }
        };
        match receipt_from_deliver(sm.esm_class, &sm.short_message, &sm.tlvs) {
            Ok(r) => {
                self.status.receipts.fetch_add(1, Ordering::Relaxed);
                let status = match r.state {
                    ReceiptState::Delivered => Some(Status::Delivered),
                    ReceiptState::Expired => Some(Status::Expired),
                    ReceiptState::Undeliverable | ReceiptState::Deleted | ReceiptState::Unknown => {
                        Some(Status::Undeliverable)
                    }
                    ReceiptState::Rejected => Some(Status::Rejected),
                    _ => None,
                };
                let error = r
                    .error_code
                    .as_ref()
                    .filter(|e| e.code != Some(0))
                    .map(|e| e.raw.clone());
                let update = Update::Receipt(ReceiptUpdate {
                    carrier: self.s.carrier.clone(),
                    carrier_message_id: r.message_id,
                    id_formats: self.s.id_formats,
                    status,
                    error,
                    at: now_ms(),
                });
                self.ack_when_durable(seq, is_data_sm, update).await;
            }
            Err(switchyard_protocols::dlr::DlrError::NotAReceipt) => {
                self.on_mo(seq, is_data_sm, sm, now).await
            }
            Err(e) => {
                // A receipt we cannot read: keep it as unmatched rather than lose it.
                tracing::warn!(carrier = %self.s.carrier, "unreadable receipt: {e}");
                let update = Update::Receipt(ReceiptUpdate {
                    carrier: self.s.carrier.clone(),
                    carrier_message_id: String::from_utf8_lossy(&sm.short_message).into_owned(),
                    id_formats: self.s.id_formats,
                    status: None,
                    error: Some(e.to_string()),
                    at: now_ms(),
                });
                self.ack_when_durable(seq, is_data_sm, update).await;
            }
        }
    }

    async fn on_mo(&mut self, seq: u32, is_data_sm: bool, sm: SubmitSm, now: Instant) {
        let payload = sm.payload().clone();
        let udh = if sm.has_udh() {
            parse_udh(&payload).ok()
        } else {
            None
        };
        // One part of several: held (in memory and in the store) until the rest arrives. A
        // "1 of 1" or an impossible part number is a message on its own.
        let concat = udh
            .as_ref()
            .and_then(|(u, _)| u.concat.map(|c| (c, u.len)))
            .filter(|(c, _)| c.total > 1 && c.seq >= 1 && c.seq <= c.total);
        if let Some((concat, udh_len)) = concat {
            let arrived = Arrived {
                key: ReassemblyKey::from_udh(
                    Bytes::copy_from_slice(sm.source.addr.as_bytes()),
                    Bytes::copy_from_slice(sm.dest.addr.as_bytes()),
                    &concat,
                ),
                part: Part {
                    seq: concat.seq,
                    data_coding: sm.data_coding,
                    udh: payload
                        .get(..udh_len)
                        .and_then(without_concat)
                        .map(bytes::Bytes::from),
                    payload: owned(&payload.slice(udh_len.min(payload.len())..)),
                },
                source_ton: sm.source.ton,
            };
            // Room first, then the reassembler's lock: writes are queued in step order (see
            // `smpp::mo`).
            let Some(room) = self.ctx.updates.reserve().await else {
                self.acknowledge(seq, is_data_sm, false);
                return;
            };
            let (write, reply) = self
                .s
                .mo_parts
                .arrived(arrived, &self.ctx.inbound, now, now_ms());
            let held = write.hold.as_ref().map(|h| h.key.clone());
            let mut committed = room.send_durable(Update::Mo(Box::new(write)));
            if let (Some(store), Some(key)) = (&self.ctx.shared_store, held) {
                // Once the part is held, the rest may be held by other nodes already.
                let (forward, answered) = tokio::sync::oneshot::channel();
                let (store, mo) = (store.0.clone(), self.s.mo_parts.clone());
                let (updates, inbound) = (self.ctx.updates.clone(), self.ctx.inbound.clone());
                let carrier = self.s.carrier.clone();
                tokio::spawn(async move {
                    let Ok(result) = committed.await else { return };
                    let ok = result.is_ok();
                    let _ = forward.send(result);
                    if ok {
                        complete_across_nodes(&carrier, key, &*store, &mo, &updates, &inbound)
                            .await;
                    }
                });
                committed = answered;
            }
            self.ack_on_commit(seq, is_data_sm, committed, reply);
            return;
        }
        // The header (its IEs other than a "1 of 1" concatenation) and the octets after it; a
        // header that does not read is payload, as a text MO's is.
        let (kept, after) = match &udh {
            Some((u, rest)) => (payload.get(..u.len).and_then(without_concat), *rest),
            None => (None, &payload[..]),
        };
        let (body, binary) = crate::smpp::mo::content(sm.data_coding, kept.as_deref(), after);
        let mut mo = InboundMessage {
            id: MessageId::generate(now_ms()),
            carrier: self.s.carrier.clone(),
            channel: switchyard_routing::Channel::Sms,
            tenant: None,
            from: source_display(sm.source.addr.as_bytes(), sm.source.ton),
            to: sm.dest.addr.to_str_lossy().into_owned(),
            body,
            binary,
            received_at: now_ms(),
            partial: None,
            provider_id: None,
        };
        let reply = self.ctx.inbound.classify(&mut mo);
        let committed = self.ctx.updates.send_durable(Update::Inbound(mo)).await;
        self.ack_on_commit(seq, is_data_sm, committed, reply);
    }

    /// Stores the multipart MO messages whose time ran out, flagged partial.
    async fn expire_mo(&mut self) {
        let Some(room) = self.ctx.updates.reserve().await else {
            return;
        };
        if let Some(write) = self
            .s
            .mo_parts
            .expire(&self.ctx.inbound, runtime_now(), now_ms())
        {
            tracing::info!(carrier = %self.s.carrier, messages = write.finished.len(), "incomplete multipart MO messages timed out; given up as partial");
            // Nobody waits for this commit: nothing is acknowledged by it.
            drop(room.send_durable(Update::Mo(Box::new(write))));
        }
    }

    async fn ack_when_durable(&mut self, seq: u32, is_data_sm: bool, update: Update) {
        let committed = self.ctx.updates.send_durable(update).await;
        self.ack_on_commit(seq, is_data_sm, committed, None);
    }

    /// Acknowledges request `seq` once `committed` completes (with a temporary error if the
    /// store failed), then sends the keyword reply the MO asked for, if any.
    fn ack_on_commit(
        &mut self,
        seq: u32,
        is_data_sm: bool,
        committed: tokio::sync::oneshot::Receiver<
            Result<crate::domain::Applied, Arc<crate::store::StoreError>>,
        >,
        reply: Option<ReplyRequest>,
    ) {
        let inbound = reply.as_ref().map(|_| self.ctx.inbound.clone());
        self.acks.push(Box::pin(async move {
            let ok = matches!(committed.await, Ok(Ok(_)));
            if let (true, Some(reply), Some(inbound)) = (ok, reply, inbound) {
                inbound.reply(reply);
            }
            (seq, is_data_sm, ok)
        }));
    }

    fn acknowledge(&mut self, seq: u32, is_data_sm: bool, ok: bool) {
        // On a store failure answer with a temporary error: the SMSC will deliver it again.
        let status = if ok {
            CommandStatus::ESME_ROK
        } else {
            CommandStatus::ESME_RX_T_APPN
        };
        let _ = self
            .session
            .respond(seq, status, deliver_resp(is_data_sm), runtime_now());
    }

    /// The connection is gone: everything this bind held goes back to the carrier queue (or
    /// fails over). Outcomes of in-flight segments are unknown, so they are sent again: at
    /// least once, duplicates bounded by the window.
    async fn release(&mut self) {
        let mut jobs: Vec<Arc<Job>> = Vec::new();
        let mut seen = HashSet::new();
        let in_flight: Vec<InFlight> = self.in_flight.drain().map(|(_, f)| f).collect();
        for job in in_flight
            .into_iter()
            .map(|f| f.job)
            .chain(self.pending.drain(..).map(|p| p.job))
        {
            if seen.insert(job.id) {
                jobs.push(job);
            }
        }
        if !jobs.is_empty() {
            tracing::info!(carrier = %self.s.carrier, jobs = jobs.len(), "re-queueing what the bind held");
        }
        for job in jobs {
            self.ctx.dispatcher.requeue(job, &self.s.carrier).await;
        }
    }
}

/// On a shared store, after a part of a multipart MO message was held: an SMSC may deliver
/// the parts of one message over binds that different nodes hold, each node holding the parts
/// its binds received. When the store holds every part, this node takes the others into its
/// reassembler, which completes the message here; the commit that stores it releases every
/// node's parts, and the copies other nodes give up later find none left and store nothing
/// (see `store::postgres::inbound`).
async fn complete_across_nodes(
    carrier: &str,
    key: switchyard_protocols::text::ReassemblyKey,
    store: &dyn crate::store::Store,
    mo: &super::mo::MoParts,
    updates: &UpdateSink,
    inbound: &crate::inbound::Inbound,
) {
    let parts = match store.held_mo_parts_of(carrier, &key).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                carrier,
                "reading the held parts of an MO message failed: {e}"
            );
            return;
        }
    };
    let mut seqs: Vec<u8> = parts.iter().map(|p| p.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    if seqs.len() < usize::from(key.total) {
        return;
    }
    // Room first, then the reassembler's lock, as for a part that arrives (see `smpp::mo`).
    let Some(room) = updates.reserve().await else {
        return;
    };
    let (write, replies) = mo.adopt(parts, inbound, runtime_now(), now_ms());
    if write.finished.is_empty() {
        return;
    }
    metrics::counter!("switchyard_mo_joined_across_nodes_total", "carrier" => carrier.to_owned())
        .increment(write.finished.len() as u64);
    let committed = room.send_durable(Update::Mo(Box::new(write)));
    if matches!(committed.await, Ok(Ok(_))) {
        for reply in replies {
            inbound.reply(reply);
        }
    }
}

fn deliver_resp(is_data_sm: bool) -> Body {
    if is_data_sm {
        Body::DataSmResp(DataSmResp::default())
    } else {
        Body::DeliverSmResp(MessageIdResp::default())
    }
}
