//! The [`Voice`] engine: routes voice messages, queues them, prepares their audio, runs at
//! most `max_concurrent_calls` at once (each call holds a line, a semaphore permit, from
//! dialling to its outcome, so a campaign never opens more RTP sockets than that), places them
//! and turns each outcome into a status update.
//!
//! The audio is prepared (text-to-speech, or the `audio_url` download) *before* a line is
//! taken, under its own limit (`max_preparing_calls`): a slow or stalled download delays only
//! its own call, never the calls whose audio is ready. A preparation slot is held until its
//! call has a line, so audio waiting for a line is bounded too.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use switchyard_ops::config::{Config, VoiceSettings};
use switchyard_routing::{Channel, Price, RouteBuf, RouteError, RouteRequest, Router, E164};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::audio::Pcm8k;
use super::call::{self, CallContext};
use super::caller::Candidate;
use super::endpoint::Endpoint;
use super::fetch::Fetcher;
use super::tts::{self, TtsCache};
use super::{AudioError, AudioSource, CallOutcome, VoiceJob};
use crate::domain::{now_ms, MessageRecord, Money, Status, UnixMs, Update};
use crate::sip::peer::Transport;
use crate::sip::trunks::Trunks;
use crate::updates::UpdateSink;

/// The notification-call engine. Shared (`Arc`) by the API and the runner.
#[derive(Debug)]
pub(crate) struct Voice {
    /// `[voice]` settings.
    settings: VoiceSettings,
    /// Voice routes, health and breakers (shared with SMS and the proxy).
    router: Arc<Router>,
    /// Voice carriers' trunks.
    trunks: Trunks,
    /// The SIP socket calls are placed from.
    endpoint: Endpoint,
    /// Where RTP sockets bind (the SIP socket's IP).
    rtp_ip: IpAddr,
    /// Rotates the first RTP port tried, so consecutive calls do not all probe the same one.
    next_rtp: AtomicU32,
    /// One permit per call in progress (a line).
    permits: Arc<Semaphore>,
    /// One permit per call whose audio is being prepared or waits for a line.
    preparing: Arc<Semaphore>,
    /// Accepted calls waiting for a permit.
    queue: mpsc::Sender<VoiceJob>,
    /// Status updates to the store.
    updates: UpdateSink,
    /// Rendered speech.
    tts_cache: TtsCache,
    /// `audio_url` downloads.
    fetcher: Fetcher,
    /// Turns true when the gateway stops (calls in progress hang up).
    shutdown: watch::Receiver<bool>,
}

/// Why a voice message cannot be accepted now (mapped to a problem by the API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VoiceError {
    /// Routing refused (no route, blocked, breakers open, unknown tenant).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A route exists but none of its carriers has a SIP trunk.
    #[error("no voice carrier with a SIP trunk serves this destination")]
    NoTrunk,
    /// The call queue is full: retry shortly.
    #[error("too many calls are waiting")]
    QueueFull,
}

/// The accept pipeline places calls through the engine.
impl crate::submit::Connector<VoiceJob> for Voice {
    fn quote(&self, job: &VoiceJob) -> Result<crate::submit::Quote, crate::submit::SubmitError> {
        use crate::submit::SubmitError;
        let (carrier, price) = Voice::quote(self, job).map_err(|e| match e {
            VoiceError::Route(r) => SubmitError::Dispatch(crate::dispatch::DispatchError::Route(r)),
            VoiceError::NoTrunk => SubmitError::NoTrunk,
            VoiceError::QueueFull => SubmitError::CallsFull,
        })?;
        Ok(crate::submit::Quote { carrier, price })
    }

    fn place(&self, job: VoiceJob) {
        self.submit(job);
    }
}

impl Voice {
    /// Starts the engine when some carrier has the voice channel and a `[carriers.sip]`
    /// trunk; `None` otherwise (the API then refuses voice messages). Returns the engine and
    /// the endpoint's address.
    pub(crate) async fn start(
        config: &Config,
        base_dir: &std::path::Path,
        router: Arc<Router>,
        updates: UpdateSink,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<(Arc<Voice>, SocketAddr)>> {
        let trunks = Trunks::resolve(config, base_dir)?;
        let first = config
            .carriers
            .iter()
            .filter(|c| c.channels.contains(&Channel::Voice))
            .find_map(|c| {
                trunks
                    .get(&c.name)
                    .filter(|t| t.peer.transport == Transport::Udp)
                    .map(|t| t.peer.addr)
            });
        let Some(first) = first else {
            return Ok(None);
        };
        let settings = config.voice.clone();
        let listen = match settings.listen {
            Some(a) => a,
            None => SocketAddr::new(local_ip_towards(first)?, 0),
        };
        let (endpoint, _task) = Endpoint::start(listen, shutdown.clone())
            .await
            .with_context(|| format!("binding the voice SIP socket on udp {listen}"))?;
        let command = settings.tts_command.clone();
        tokio::task::spawn_blocking(move || tts::load_languages(&command)).await?;
        let (queue, rx) = mpsc::channel(settings.max_queued_calls.max(1));
        let addr = endpoint.addr;
        let voice = Arc::new(Voice {
            rtp_ip: addr.ip(),
            next_rtp: AtomicU32::new(rand::random::<u16>().into()),
            permits: Arc::new(Semaphore::new(settings.max_concurrent_calls.max(1))),
            preparing: Arc::new(Semaphore::new(settings.max_preparing_calls.max(1))),
            tts_cache: TtsCache::new(settings.tts_cache_entries),
            fetcher: Fetcher::new(
                settings.audio_max_bytes,
                settings.audio_fetch_timeout,
                Arc::new(config.egress.clone()),
            )?,
            settings,
            router,
            trunks,
            endpoint,
            queue,
            updates,
            shutdown: shutdown.clone(),
        });
        tokio::spawn(voice.clone().run(rx, shutdown));
        Ok(Some((voice, addr)))
    }

    /// The tenant's voice carriers with a trunk, best first.
    fn candidates(&self, job: &VoiceJob) -> Result<Vec<Candidate>, VoiceError> {
        let table = self.router.load();
        let tenant = table
            .tenant_id(&job.tenant)
            .ok_or(RouteError::UnknownTenant)?;
        let mut salt = std::collections::hash_map::DefaultHasher::new();
        job.id.hash(&mut salt);
        let req = RouteRequest {
            channel: Channel::Voice,
            number: &job.to,
            tenant,
            priority: job.priority,
            salt: salt.finish(),
            now: Instant::now(),
        };
        let mut buf = RouteBuf::new();
        let ranked = table.route(&req, &mut buf)?;
        let matched = table.lookup(Channel::Voice, &job.to);
        let out: Vec<Candidate> = ranked
            .iter()
            .filter_map(|r| {
                let c = table.carrier(r.carrier)?;
                // Notification calls speak UDP only: TCP/TLS trunks serve the proxy.
                let trunk = self
                    .trunks
                    .get(&c.name)
                    .filter(|t| t.peer.transport == Transport::Udp)?
                    .clone();
                let rate = matched
                    .candidates
                    .iter()
                    .find(|m| m.carrier == r.carrier)
                    .and_then(|m| table.rate(m))
                    .and_then(|rate| {
                        Some((rate.price, rate.currency.as_str().to_owned(), rate.voice?))
                    });
                let markup = if r.cost.nanos() == 0 {
                    Price::from_nanos(1_000_000_000)
                } else {
                    let f =
                        u128::from(r.price.nanos()) * 1_000_000_000 / u128::from(r.cost.nanos());
                    Price::from_nanos(u64::try_from(f).unwrap_or(u64::MAX))
                };
                Some(Candidate {
                    name: c.name.clone(),
                    trunk,
                    rate,
                    markup,
                })
            })
            .collect();
        if out.is_empty() {
            return Err(VoiceError::NoTrunk);
        }
        Ok(out)
    }

    /// The carrier a call would go to now and the estimated price (of a call of the routing
    /// table's reference duration) with its currency, for the API's answer. Also refuses
    /// when the queue is full.
    pub(crate) fn quote(&self, job: &VoiceJob) -> Result<(String, Option<Money>), VoiceError> {
        if self.queue.capacity() == 0 {
            return Err(VoiceError::QueueFull);
        }
        let first = self
            .candidates(job)?
            .into_iter()
            .next()
            .ok_or(VoiceError::NoTrunk)?;
        let table = self.router.load();
        let tenant = table.tenant_id(&job.tenant);
        let price = tenant.and_then(|tenant| {
            let mut buf = RouteBuf::new();
            let req = RouteRequest {
                channel: Channel::Voice,
                number: &job.to,
                tenant,
                priority: job.priority,
                salt: 0,
                now: Instant::now(),
            };
            let ranked = table.route(&req, &mut buf).ok()?;
            let r = ranked.iter().find(|r| {
                table
                    .carrier(r.carrier)
                    .is_some_and(|c| c.name == first.name)
            })?;
            Some(Money {
                amount: r.price,
                currency: table.config().base_currency,
            })
        });
        Ok((first.name, price))
    }

    /// Queues an accepted (stored) call. When the queue is full the job waits for room in
    /// the background: it is safe in the store either way.
    pub(crate) fn submit(&self, job: VoiceJob) {
        if let Err(mpsc::error::TrySendError::Full(job)) = self.queue.try_send(job) {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let _ = queue.send(job).await;
            });
        }
    }

    /// After a restart: calls never dialled are queued again; calls that were being dialled
    /// or were in progress fail with `interrupted` (see the module doc of [`super`]).
    pub(crate) async fn recover(self: &Arc<Self>, record: &MessageRecord) {
        let m = &record.message;
        let Some(spec) = m.voice.clone() else {
            return;
        };
        match record.status {
            Status::Accepted | Status::Queued => {
                let Ok(to) = E164::parse(&m.to) else { return };
                self.submit(VoiceJob {
                    id: m.id,
                    tenant: m.tenant.clone(),
                    to,
                    from: m.from.clone(),
                    body: m.body.clone(),
                    spec,
                    priority: m.priority,
                    expires_at: m.expires_at,
                });
            }
            _ => {
                let outcome = CallOutcome::failed(
                    "interrupted",
                    "the gateway stopped while this call was being dialled or in progress; \
                     it is not dialled again",
                );
                self.finish(m.id, outcome).await;
            }
        }
    }

    /// After shutdown: waits (at most `timeout`) until every call has hung up and handed its
    /// outcome to the update sink (each call holds a permit until then), so the sink is not
    /// closed under it.
    pub(crate) async fn drained(&self, timeout: std::time::Duration) {
        let all = u32::try_from(self.settings.max_concurrent_calls.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(timeout, self.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "voice calls still ending after {timeout:?}; their outcomes may be lost"
            );
        }
    }

    /// Takes queued calls as preparation slots free up, until shutdown.
    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<VoiceJob>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let preparing = tokio::select! {
                p = self.preparing.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let job = tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => j,
                    None => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.handle(job, preparing).await;
            });
        }
    }

    /// One call from queued to its outcome: the audio first (holding `preparing`), then a
    /// line, then the call.
    async fn handle(&self, job: VoiceJob, preparing: OwnedSemaphorePermit) {
        let now = now_ms();
        if job.expires_at.is_some_and(|t| t <= now) {
            self.updates
                .send(crate::dispatch::expired_update(job.id, now))
                .await;
            return;
        }
        self.updates
            .send(Update::Status {
                id: job.id,
                status: Status::Queued,
                at: now,
                detail: Some("preparing the audio".into()),
            })
            .await;
        let audio = match self.audio(&job).await {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(id = %job.id, error = %e, "voice call not placed: audio");
                let outcome = CallOutcome::failed(e.code(), e.to_string());
                self.finish(job.id, outcome).await;
                return;
            }
        };
        // The audio is ready: now a line. At shutdown the call stays `queued` and is dialled
        // after the restart.
        let mut shutdown = self.shutdown.clone();
        let line = tokio::select! {
            p = self.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        drop(preparing);
        if *shutdown.borrow() {
            return;
        }
        self.call(job, audio).await;
        drop(line);
    }

    /// Dials a call whose audio is ready, holding a line, and stores its outcome.
    async fn call(&self, job: VoiceJob, audio: Arc<Pcm8k>) {
        let now = now_ms();
        if job.expires_at.is_some_and(|t| t <= now) {
            self.updates
                .send(crate::dispatch::expired_update(job.id, now))
                .await;
            return;
        }
        let candidates = match self.candidates(&job) {
            Ok(c) => c,
            Err(e) => {
                self.finish(job.id, CallOutcome::failed("no_route", e.to_string()))
                    .await;
                return;
            }
        };
        let start = self.next_rtp.fetch_add(1, Ordering::Relaxed);
        let rtp = match call::bind_rtp(self.rtp_ip, self.settings.rtp_ports, start).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "voice: no RTP port free");
                self.finish(
                    job.id,
                    CallOutcome::failed("media_error", format!("no RTP port: {e}")),
                )
                .await;
                return;
            }
        };
        // Durable before the INVITE: a crash from here on never dials this call again.
        let committed = self
            .updates
            .send_durable(Update::Status {
                id: job.id,
                status: Status::Submitting,
                at: now_ms(),
                detail: Some("dialling".into()),
            })
            .await;
        if !matches!(committed.await, Ok(Ok(_))) {
            tracing::error!(id = %job.id, "voice: the dialling status was not stored; call not placed");
            return;
        }
        metrics::gauge!("switchyard_voice_calls_active").increment(1.0);
        let ctx = CallContext {
            endpoint: &self.endpoint,
            router: &self.router,
            rtp: &rtp,
            trunk_timeout: self.settings.trunk_timeout,
            ring_timeout: self.settings.ring_timeout,
            shutdown: self.shutdown.clone(),
        };
        let mut outcome = call::place(&ctx, &job, &audio, candidates).await;
        metrics::gauge!("switchyard_voice_calls_active").decrement(1.0);
        outcome.outcome = if outcome.answered && outcome.error.is_none() {
            "answered".into()
        } else {
            outcome.error.clone().unwrap_or_else(|| "failed".into())
        };
        tracing::info!(
            target: "cdr",
            id = %job.id,
            tenant = %job.tenant,
            to = %job.to.masked(6),
            outcome = %outcome.outcome,
            code = outcome.sip_code.unwrap_or(0),
            setup_ms = outcome.setup_ms.unwrap_or(0),
            talk_s = outcome.talk_s.unwrap_or(0.0),
            "notification call"
        );
        if let Some(record) = call_record(&job, &outcome, now_ms()) {
            self.updates.send(Update::Cdr(Box::new(record))).await;
        }
        self.finish(job.id, outcome).await;
    }

    /// Stores the outcome: delivered when answered, failed otherwise.
    async fn finish(&self, id: crate::domain::MessageId, mut outcome: CallOutcome) {
        if outcome.outcome.is_empty() {
            outcome.outcome = outcome.error.clone().unwrap_or_else(|| "failed".into());
        }
        let delivered = outcome.answered && outcome.error.is_none();
        metrics::counter!("switchyard_voice_calls_total", "outcome" => outcome.outcome.clone())
            .increment(1);
        let call = serde_json::to_string(&outcome).unwrap_or_default();
        self.updates
            .send(Update::Call {
                id,
                status: if delivered {
                    Status::Delivered
                } else {
                    Status::Failed
                },
                at: now_ms(),
                carrier: outcome.trunk.clone(),
                error: outcome.error.clone(),
                price: outcome.cost.clone(),
                currency: outcome.cost.as_ref().and(outcome.currency.clone()),
                call,
            })
            .await;
    }

    /// The call's audio at 8 kHz.
    async fn audio(&self, job: &VoiceJob) -> Result<Arc<Pcm8k>, AudioError> {
        match &job.spec.audio {
            AudioSource::Tts { language } => {
                if let Some(hit) = self.tts_cache.get(language, &job.body) {
                    return Ok(hit);
                }
                let pcm = Arc::new(
                    tts::speak(
                        &self.settings.tts_command,
                        language,
                        &job.body,
                        self.settings.tts_timeout,
                    )
                    .await?,
                );
                self.tts_cache.put(language, &job.body, pcm.clone());
                Ok(pcm)
            }
            AudioSource::Url { url } => {
                let bytes = self.fetcher.get(url).await?;
                let pcm = tokio::task::spawn_blocking(move || super::audio::decode_wav(&bytes))
                    .await
                    .map_err(|e| AudioError::Format(format!("decoder task: {e}")))??;
                Ok(Arc::new(pcm))
            }
        }
    }
}

/// The local address the OS uses to reach `peer` (no packet is sent: connecting a UDP socket
/// only picks the route).
fn local_ip_towards(peer: SocketAddr) -> anyhow::Result<IpAddr> {
    let any: SocketAddr = if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(peer)
        .with_context(|| format!("finding the local address towards the voice trunk {peer}"))?;
    Ok(s.local_addr()?.ip())
}

/// The detail record of a notification call that reached at least one trunk, next to the
/// proxy's in `GET /v1/calls`: `sip_call_id` is the message id (`msg_…`), `caller` the
/// caller id, `price` the tenant's price in the deck's currency (our cost is not known here).
fn call_record(
    job: &VoiceJob,
    o: &CallOutcome,
    end_at: UnixMs,
) -> Option<crate::domain::CallRecord> {
    if o.tried.is_empty() {
        return None;
    }
    let talk_ms = o.talk_s.map_or(0, |t| (t * 1000.0).round() as i64);
    let ring_ms = o.ring_s.map_or(0, |t| (t * 1000.0).round() as i64);
    let setup_ms = o.setup_ms.map_or(0, |t| i64::try_from(t).unwrap_or(0));
    let answer_at = o.answered.then_some(end_at - talk_ms);
    let disposition = match o.outcome.as_str() {
        "answered" => "answered",
        "busy" => "busy",
        "no_answer" => "no_answer",
        "declined" | "rejected" => "rejected",
        _ if o.answered => "answered",
        _ => "failed",
    };
    Some(crate::domain::CallRecord {
        id: 0,
        tenant: job.tenant.clone(),
        sip_call_id: job.id.to_string(),
        caller: job.from.clone(),
        callee: job.to.to_string(),
        attempts: o
            .tried
            .iter()
            .map(|t| (t.carrier.clone(), t.code))
            .collect(),
        carrier: o.answered.then(|| o.trunk.clone()).flatten(),
        disposition,
        code: o.sip_code.unwrap_or(if o.answered { 200 } else { 503 }),
        hangup: match o.hangup_by.as_deref() {
            Some("callee") => Some("callee"),
            Some(_) => Some("caller"),
            None => None,
        },
        setup_at: answer_at.unwrap_or(end_at) - setup_ms.max(ring_ms),
        answer_at,
        end_at,
        duration_ms: u64::try_from(talk_ms).unwrap_or(0),
        billed_secs: o.billed_s.unwrap_or(0),
        cost: None,
        price: o.cost.clone(),
        currency: o.currency.clone(),
    })
}
