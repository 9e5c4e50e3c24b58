//! Delivery for channels whose carriers take each message in one exchange and answer it at
//! once — SMTP relays (email), provider HTTP APIs (RCS, WhatsApp, Telegram, Messenger) and
//! the recipients' own endpoints (webhook): the queue, the retry and failover loop, health and
//! status updates, shared by every such channel. A channel provides its [`Carriers`]: how to
//! rank its carriers for a job and what one attempt on one carrier came to.
//!
//! ```text
//! Connector::quote (ranked carriers, price) ──► store ──► Connector::place ──► queue
//!   ──► deliver (one task per message, ≤ MAX_IN_FLIGHT)
//!         submitting ──► attempt on the best carrier ──► Sent: sent (the carrier's id)
//!                                                   ──► Delivered: sent, then delivered
//!                                                   ──► Rejected: rejected (no failover)
//!                                                   ──► Retry: the next carrier, then again
//!                                                       after a back-off, until the attempts
//!                                                       or the validity run out
//!                                                   ──► Wait: the carrier is paused for as
//!                                                       long as it asked; the next carrier,
//!                                                       or the message waits for the pause
//! ```
//!
//! A throttle that says how long to wait (an HTTP `Retry-After`, Telegram's `retry_after`,
//! Google's `RetryInfo`) pauses that carrier for every message of the engine ([`Pauses`]):
//! nothing is sent to it before the time it named (at most [`MAX_PAUSE`]); where a carrier's
//! answers speak for something narrower, the pause is that narrower thing's
//! ([`Carriers::pause_key`]: a webhook recipient's endpoint). Such a throttle is
//! not a failed attempt: it does not count towards [`MAX_ATTEMPTS`], only towards
//! [`MAX_WAITS`] (and the message's validity still ends it).
//!
//! A message can be withdrawn while it is still the engine's ([`Engine::withdraw`]: a flow's
//! later step made it pointless): one no carrier has taken yet is `cancelled` at once and no
//! attempt starts for it; one whose attempt is with a carrier at that moment is recalled
//! ([`Carriers::recall`]) if the carrier takes it.
//!
//! Where several nodes share the store, a flow's later step may start on another node than
//! the one whose engine has the message: that node withdraws it through the store
//! ([`Update::Withdraw`]). For such a message ([`Carriers::withdrawable_elsewhere`]) each
//! attempt is claimed in the store first ([`Update::Attempt`]): a message withdrawn before the
//! claim is `cancelled` instead and no attempt starts; one withdrawn while an attempt is in
//! flight is noted, and is recalled if the carrier takes it ([`Update::Taken`]), or
//! `cancelled` at the next claim. The store orders the withdrawal and the claims, so exactly
//! one of the two nodes acts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use switchyard_routing::{FailureClass, Outcome, Ranked, Router, RoutingTable, TenantId};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::carrier::backoff::Backoff;
use crate::carrier::health;
use crate::domain::{now_ms, Applied, MessageId, Money, ReceiptUpdate, Status, UnixMs, Update};
use crate::submit::{Connector, Quote, SubmitError};
use crate::updates::UpdateSink;

/// Attempts (over all carriers) before a message fails.
const MAX_ATTEMPTS: u32 = 6;
/// Throttles with a wait before a message fails (besides its validity).
const MAX_WAITS: u32 = 100;
/// Longest pause a carrier's throttle can ask for; a longer one is cut to this.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(300);
/// Shortest pause: a throttle asking for less (`Retry-After: 0`) still pauses this long.
pub(crate) const MIN_PAUSE: Duration = Duration::from_secs(1);
/// First wait after every carrier failed once; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Accepted messages that may wait for a carrier, per engine (email; the chat channels
/// together); beyond it the API answers 503.
const MAX_QUEUED: usize = 10_000;
/// Messages being delivered at once, per engine (talking to a carrier, waiting for one of its
/// connections, or waiting out a back-off); the rest wait in the queue.
const MAX_IN_FLIGHT: usize = 1024;

/// What one attempt on one carrier came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The carrier took it; its id for the message.
    Sent(String),
    /// The carrier took it and that is its delivery: the recipient itself answered (a
    /// webhook endpoint's 2xx). Its id for the message.
    Delivered(String),
    /// The carrier refused this message for good (recipient, sender or content): no other
    /// carrier is tried.
    Rejected(String),
    /// The recipient cannot be reached on this channel at all (an RCS capability check said
    /// no): refused for good like [`Verdict::Rejected`], but the carrier answered as it
    /// should, so its health and breaker count a success. Most phones of a market may lack
    /// RCS: their rejections must not make the agent look broken for the phones that have it.
    Unreachable(String),
    /// This carrier could not take it now (busy, unreachable, credentials, timeout): another
    /// carrier, or later.
    Retry(String, FailureClass),
    /// This carrier is throttling and named how long to leave it alone: no message goes to it
    /// before then; another carrier, or this one after the pause.
    Wait(String, Duration),
}

impl Verdict {
    /// `self`, made a [`Verdict::Wait`] when it is a throttle and the carrier said how long to
    /// wait (`hint`).
    pub(crate) fn hinted(self, hint: Option<Duration>) -> Verdict {
        match (self, hint) {
            (Verdict::Retry(what, FailureClass::Throttled), Some(wait)) => {
                Verdict::Wait(what, wait.clamp(MIN_PAUSE, MAX_PAUSE))
            }
            (v, _) => v,
        }
    }
}

/// Carriers (or their [`Carriers::pause_key`]s) paused by a throttle with a wait, and until
/// when. Shared by an engine's
/// messages; entries go when their time has passed.
#[derive(Debug, Default)]
pub(crate) struct Pauses(Mutex<HashMap<String, Instant>>);

impl Pauses {
    /// Pauses `carrier` for `wait` (within [`MIN_PAUSE`] and [`MAX_PAUSE`]) from `now`; an
    /// existing longer pause stays.
    pub(crate) fn pause(&self, carrier: &str, wait: Duration, now: Instant) {
        let until = now + wait.clamp(MIN_PAUSE, MAX_PAUSE);
        let mut map = self.0.lock();
        let entry = map.entry(carrier.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Until when `carrier` is paused, if it is at `now`.
    pub(crate) fn until(&self, carrier: &str, now: Instant) -> Option<Instant> {
        let mut map = self.0.lock();
        match map.get(carrier) {
            Some(&t) if t > now => Some(t),
            Some(_) => {
                map.remove(carrier);
                None
            }
            None => None,
        }
    }
}

/// A message on its way, as the engine sees it.
pub(crate) trait HandoffJob: Send + Sync + 'static {
    /// Its message.
    fn id(&self) -> MessageId;
    /// When to give up.
    fn expires_at(&self) -> Option<UnixMs>;
    /// The carrier quoted at acceptance (tried first while it is still a candidate).
    fn quoted(&self) -> &str;
}

/// A channel's carriers: ranking and attempts.
pub(crate) trait Carriers: Send + Sync + 'static {
    /// The channel's job.
    type Job: HandoffJob;
    /// What the channel is called in errors and logs.
    const NAME: &'static str;
    /// The error when no carrier of the job's channel is configured.
    fn unavailable(job: &Self::Job) -> SubmitError;
    /// The error when the queue is full.
    fn full(job: &Self::Job) -> SubmitError;
    /// Whether any carrier of the job's channel is configured.
    fn any(&self, job: &Self::Job) -> bool;
    /// The carriers that could take `job` now with the tenant's price, best first.
    fn ranked(&self, job: &Self::Job) -> Result<Vec<(String, Money)>, SubmitError>;
    /// Whether what attempts on `job` come to says something about the carrier (its health
    /// and breaker); `false` where the answer is the recipient's own (a webhook endpoint).
    fn feeds_health(&self, _job: &Self::Job) -> bool {
        true
    }
    /// What a throttle with a wait on `carrier` pauses for `job` and the messages like it:
    /// the carrier, unless its answers are about something narrower (a recipient's endpoint).
    fn pause_key(&self, carrier: &str, _job: &Self::Job) -> String {
        carrier.to_owned()
    }
    /// Whether a node other than this one may withdraw `job` through the store
    /// ([`Update::Withdraw`]): then each attempt is claimed in the store first
    /// ([`Update::Attempt`]) and one the carrier took is checked for a withdrawal that came
    /// meanwhile ([`Update::Taken`]). `false` (the default): only [`Engine::withdraw`] can.
    fn withdrawable_elsewhere(&self, _job: &Self::Job) -> bool {
        false
    }
    /// One attempt on `carrier`.
    fn attempt<'a>(&'a self, carrier: &'a str, job: &'a Self::Job) -> BoxFuture<'a, Verdict>;
    /// `carrier` took `job` (its id for it: `carrier_id`) while the job was being withdrawn
    /// ([`Engine::withdraw`]): undo that where the channel can. Returns the status the message
    /// then has, with its detail; `None` (the default: most channels cannot take a message
    /// back) leaves it `sent`.
    fn recall<'a>(
        &'a self,
        _carrier: &'a str,
        _job: &'a Self::Job,
        _carrier_id: &'a str,
    ) -> BoxFuture<'a, Option<(Status, String)>> {
        Box::pin(async { None })
    }
}

/// What [`Engine::withdraw`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Withdrawal {
    /// No carrier had it: it is `cancelled`, and no attempt starts for it.
    Cancelled,
    /// An attempt is with a carrier now: if the carrier takes it, it is recalled
    /// ([`Carriers::recall`]); otherwise it is `cancelled` when the attempt ends.
    InFlight,
    /// The engine does not have it: a carrier took it already, its delivery ended, or it is
    /// queued on another node.
    NotHere,
}

/// Where each of an engine's messages is, from [`Connector::place`] until its delivery ends:
/// what withdrawing one has to do.
#[derive(Debug, Default)]
struct Active(Mutex<HashMap<MessageId, Phase>>);

/// Where a message of the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Queued, or between attempts (a back-off, a pause).
    Waiting,
    /// An attempt is with a carrier.
    Attempting,
    /// Withdrawn while waiting (and `cancelled`): no attempt starts.
    Withdrawn,
    /// Withdrawn while an attempt was with a carrier, with the detail to cancel it with if
    /// the carrier does not take it.
    WithdrawnInFlight(String),
}

impl Active {
    /// The message is the engine's now.
    fn place(&self, id: MessageId) {
        self.0.lock().entry(id).or_insert(Phase::Waiting);
    }

    /// True when `id` was withdrawn.
    fn withdrawn(&self, id: MessageId) -> bool {
        matches!(
            self.0.lock().get(&id),
            Some(Phase::Withdrawn | Phase::WithdrawnInFlight(_))
        )
    }

    /// Whether an attempt may start for `id` (it was not withdrawn); if so it is attempting.
    fn begin(&self, id: MessageId) -> bool {
        let mut map = self.0.lock();
        let phase = map.entry(id).or_insert(Phase::Waiting);
        match phase {
            Phase::Waiting | Phase::Attempting => {
                *phase = Phase::Attempting;
                true
            }
            Phase::Withdrawn | Phase::WithdrawnInFlight(_) => false,
        }
    }

    /// An attempt for `id` ended: `None` while the message is still wanted, or the detail it
    /// was withdrawn with meanwhile.
    fn end(&self, id: MessageId) -> Option<String> {
        let mut map = self.0.lock();
        match map.get_mut(&id) {
            Some(Phase::WithdrawnInFlight(detail)) => Some(std::mem::take(detail)),
            Some(p) => {
                *p = Phase::Waiting;
                None
            }
            None => None,
        }
    }

    /// Withdraws `id` with `detail` (see [`Withdrawal`]).
    fn withdraw(&self, id: MessageId, detail: &str) -> Withdrawal {
        let mut map = self.0.lock();
        match map.get_mut(&id) {
            Some(p @ Phase::Waiting) => {
                *p = Phase::Withdrawn;
                Withdrawal::Cancelled
            }
            Some(p @ Phase::Attempting) => {
                *p = Phase::WithdrawnInFlight(detail.to_owned());
                Withdrawal::InFlight
            }
            Some(Phase::Withdrawn) => Withdrawal::Cancelled,
            Some(Phase::WithdrawnInFlight(_)) => Withdrawal::InFlight,
            None => Withdrawal::NotHere,
        }
    }

    /// The delivery of `id` ended.
    fn finish(&self, id: MessageId) {
        self.0.lock().remove(&id);
    }
}

/// `tenant`'s id in `table`; an unknown tenant is refused as routing refuses it.
pub(crate) fn tenant_id(table: &RoutingTable, tenant: &str) -> Result<TenantId, SubmitError> {
    table.tenant_id(tenant).ok_or_else(|| {
        crate::dispatch::DispatchError::Route(switchyard_routing::RouteError::UnknownTenant).into()
    })
}

/// The carriers of `ranked` that `usable` keeps (by name), in rank order, each with the
/// tenant's price in the base currency: what [`Carriers::ranked`] answers.
pub(crate) fn priced(
    table: &RoutingTable,
    ranked: &[Ranked],
    usable: impl Fn(&str) -> bool,
) -> Vec<(String, Money)> {
    let currency = table.config().base_currency;
    ranked
        .iter()
        .filter_map(|r| {
            let name = &table.carrier(r.carrier)?.name;
            usable(name).then(|| {
                let price = Money {
                    amount: r.price,
                    currency,
                };
                (name.clone(), price)
            })
        })
        .collect()
}

/// The engine of one channel. Shared (`Arc`) by the accept pipeline and its runner.
pub(crate) struct Engine<C: Carriers> {
    /// The channel's carriers.
    carriers: Arc<C>,
    /// Health and breakers (shared with every channel).
    router: Arc<Router>,
    /// Accepted messages waiting for a carrier.
    queue: mpsc::Sender<C::Job>,
    /// One permit per message being delivered ([`MAX_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
    /// Status updates to the store.
    updates: UpdateSink,
    /// Carriers that asked to be left alone for a while.
    pauses: Pauses,
    /// The messages the engine has and where each is, for [`Engine::withdraw`].
    active: Active,
}

impl<C: Carriers + std::fmt::Debug> std::fmt::Debug for Engine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("channel", &C::NAME)
            .field("carriers", &self.carriers)
            .field("queued", &(MAX_QUEUED - self.queue.capacity()))
            .finish_non_exhaustive()
    }
}

impl<C> Engine<C>
where
    C: Carriers + std::fmt::Debug,
    C::Job: std::fmt::Debug,
{
    /// Starts the engine over `carriers` until `shutdown`.
    pub(crate) fn start(
        carriers: Arc<C>,
        router: Arc<Router>,
        updates: UpdateSink,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(MAX_QUEUED);
        let engine = Arc::new(Engine {
            carriers,
            router,
            queue,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            updates,
            pauses: Pauses::default(),
            active: Active::default(),
        });
        tokio::spawn(engine.clone().run(rx, shutdown));
        engine
    }

    /// The channel's carriers.
    pub(crate) fn carriers(&self) -> &Arc<C> {
        &self.carriers
    }

    /// Withdraws message `id` if the engine still has it: one no carrier has taken becomes
    /// `cancelled` with `detail` (committed before this returns) and is never attempted; one
    /// whose attempt is with a carrier now is recalled if the carrier takes it. See
    /// [`Withdrawal`].
    pub(crate) async fn withdraw(&self, id: MessageId, detail: &str) -> Withdrawal {
        let done = self.active.withdraw(id, detail);
        if done == Withdrawal::Cancelled {
            let update = Update::Status {
                id,
                status: Status::Cancelled,
                at: now_ms(),
                detail: Some(detail.to_owned()),
            };
            drop(self.updates.send_durable(update).await.await);
        }
        done
    }

    /// Runs until shutdown: one task per message being delivered, at most
    /// [`MAX_IN_FLIGHT`]; the others wait in the queue (which, full, makes the API answer 503).
    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<C::Job>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let permit = tokio::select! {
                p = self.in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            };
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => {
                        let engine = self.clone();
                        tokio::spawn(async move {
                            engine.deliver(job).await;
                            drop(permit);
                        });
                    }
                    None => return,
                },
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            }
        }
    }

    /// Delivers one message (see [`Engine::attempts`]), then forgets it.
    async fn deliver(self: Arc<Self>, job: C::Job) {
        self.attempts(&job).await;
        self.active.finish(job.id());
    }

    /// Carriers in rank order (paused ones skipped), again after a back-off or a pause, until
    /// the message is sent, rejected, expired, out of attempts or withdrawn.
    async fn attempts(&self, job: &C::Job) {
        if self.active.withdrawn(job.id()) {
            return;
        }
        // A message another node may withdraw moves to `submitting` with each attempt's claim.
        let shared = self.carriers.withdrawable_elsewhere(job);
        if !shared {
            self.status(job, Status::Submitting, None).await;
        }
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let mut attempts = 0;
        let mut waits = 0;
        let mut last_error = format!("no {} carrier can take it", C::NAME);
        loop {
            if self.active.withdrawn(job.id()) {
                return;
            }
            if job.expires_at().is_some_and(|t| now_ms() >= t) {
                self.status(job, Status::Expired, Some(last_error)).await;
                return;
            }
            let mut order = match self.carriers.ranked(job) {
                Ok(order) => order,
                Err(e) => {
                    last_error = e.to_string();
                    Vec::new()
                }
            };
            // The carrier quoted at acceptance first, while it is still among the candidates.
            if let Some(i) = order.iter().position(|(name, _)| name == job.quoted()) {
                order[..=i].rotate_right(1);
            }
            // Whether a carrier failed this round (rather than asking for a pause).
            let mut failed = order.is_empty();
            // The earliest end of a pause that kept a candidate back.
            let mut resume: Option<Instant> = None;
            for (carrier, _) in order {
                if attempts >= MAX_ATTEMPTS || waits >= MAX_WAITS {
                    break;
                }
                let pause_key = self.carriers.pause_key(&carrier, job);
                if let Some(until) = self.pauses.until(&pause_key, Instant::now()) {
                    resume = Some(resume.map_or(until, |r| r.min(until)));
                    continue;
                }
                if shared && !self.claim(job).await {
                    return;
                }
                if !self.active.begin(job.id()) {
                    return;
                }
                let started = Instant::now();
                let verdict = self.carriers.attempt(&carrier, job).await;
                let withdrawn = self.active.end(job.id());
                let delivered = matches!(verdict, Verdict::Delivered(_));
                let unreachable = matches!(verdict, Verdict::Unreachable(_));
                let now = Instant::now();
                let record = |outcome| {
                    if self.carriers.feeds_health(job) {
                        health::record(&self.router, &carrier, outcome, now);
                    }
                };
                match verdict {
                    Verdict::Sent(carrier_id) | Verdict::Delivered(carrier_id) => {
                        record(Outcome::Success {
                            latency: now - started,
                        });
                        self.updates
                            .send(Update::SegmentSent {
                                id: job.id(),
                                index: 0,
                                carrier: carrier.clone(),
                                carrier_message_id: carrier_id.clone(),
                                id_formats: Default::default(),
                                at: now_ms(),
                            })
                            .await;
                        // Withdrawn through the store (from another node) while in flight.
                        let withdrawn = if withdrawn.is_none() && shared && !delivered {
                            self.taken(job).await
                        } else {
                            withdrawn
                        };
                        if withdrawn.is_some() && !delivered {
                            // Withdrawn while the carrier took it: taken back where it can be.
                            if let Some((status, detail)) =
                                self.carriers.recall(&carrier, job, &carrier_id).await
                            {
                                self.status(job, status, Some(detail)).await;
                            }
                            return;
                        }
                        if delivered {
                            // Matched to the segment just sent, as a provider's receipt is
                            // (applied after it: one ordered update stream).
                            self.updates
                                .send(Update::Receipt(ReceiptUpdate {
                                    carrier,
                                    carrier_message_id: carrier_id,
                                    id_formats: Default::default(),
                                    status: Some(Status::Delivered),
                                    error: None,
                                    at: now_ms(),
                                }))
                                .await;
                        }
                        return;
                    }
                    Verdict::Rejected(error) | Verdict::Unreachable(error) => {
                        record(if unreachable {
                            Outcome::Success {
                                latency: now - started,
                            }
                        } else {
                            Outcome::Failure(FailureClass::PermanentReject)
                        });
                        self.updates
                            .send(Update::SegmentRejected {
                                id: job.id(),
                                index: 0,
                                carrier,
                                error,
                                at: now_ms(),
                            })
                            .await;
                        return;
                    }
                    Verdict::Retry(error, class) => {
                        attempts += 1;
                        failed = true;
                        record(Outcome::Failure(class));
                        tracing::info!(id = %job.id(), %carrier, "{} not taken: {error}", C::NAME);
                        last_error = format!("{carrier}: {error}");
                    }
                    Verdict::Wait(error, wait) => {
                        waits += 1;
                        record(Outcome::Failure(FailureClass::Throttled));
                        self.pauses.pause(&pause_key, wait, now);
                        let until = now + wait.clamp(MIN_PAUSE, MAX_PAUSE);
                        resume = Some(resume.map_or(until, |r| r.min(until)));
                        tracing::info!(
                            id = %job.id(), %carrier,
                            "{} throttled for {wait:?}: {error}", C::NAME
                        );
                        last_error = format!("{carrier}: {error}");
                    }
                }
                // Withdrawn while this carrier could not take it: no other attempt.
                if withdrawn.is_some() {
                    self.status(job, Status::Cancelled, withdrawn).await;
                    return;
                }
            }
            if attempts >= MAX_ATTEMPTS || waits >= MAX_WAITS {
                self.status(job, Status::Failed, Some(last_error)).await;
                return;
            }
            // A failure backs off; a round that only met pauses waits for the first to end.
            let delay = match resume {
                Some(at) if !failed => at.saturating_duration_since(Instant::now()),
                _ => backoff.fail(),
            };
            tokio::time::sleep(delay.max(Duration::from_millis(1))).await;
        }
    }

    /// Claims the next attempt on `job` in the store ([`Update::Attempt`]): false when no
    /// attempt may start, because it was withdrawn (from any node; the claim made it
    /// `cancelled`) or has ended. A store that fails is asked again until the message's
    /// validity ends (then it is `expired`).
    async fn claim(&self, job: &C::Job) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            let claim = Update::Attempt {
                id: job.id(),
                at: now_ms(),
            };
            match self.updates.send_durable(claim).await.await {
                Ok(Ok(
                    Applied::Moved {
                        status: Status::Cancelled,
                        ..
                    }
                    | Applied::Ended(_)
                    | Applied::UnknownMessage(_),
                )) => return false,
                Ok(Ok(_)) => return true,
                Ok(Err(e)) => {
                    tracing::warn!(id = %job.id(), "claiming an attempt failed: {e}");
                }
                // The sink is closed: the gateway is stopping.
                Err(_) => return false,
            }
            if job.expires_at().is_some_and(|t| now_ms() >= t) {
                let why = "the store could not be reached".to_owned();
                self.status(job, Status::Expired, Some(why)).await;
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// The carrier took `job`, which another node may withdraw: the detail of a withdrawal
    /// noted in the store while the attempt was in flight ([`Update::Taken`]), if any. Queued
    /// after the attempt's `sent`, so a withdrawal committed later finds it `sent` and is left
    /// to the node that made it.
    async fn taken(&self, job: &C::Job) -> Option<String> {
        let taken = Update::Taken { id: job.id() };
        match self.updates.send_durable(taken).await.await {
            Ok(Ok(Applied::Withdrawing(_))) => Some(String::new()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(id = %job.id(), "looking for a withdrawal failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    async fn status(&self, job: &C::Job, status: Status, detail: Option<String>) {
        self.updates
            .send(Update::Status {
                id: job.id(),
                status,
                at: now_ms(),
                detail,
            })
            .await;
    }
}

/// The accept pipeline sends the channel's messages through the engine.
impl<C> Connector<C::Job> for Engine<C>
where
    C: Carriers + std::fmt::Debug,
    C::Job: std::fmt::Debug,
{
    fn quote(&self, job: &C::Job) -> Result<Quote, SubmitError> {
        if self.queue.capacity() == 0 {
            return Err(C::full(job));
        }
        if !self.carriers.any(job) {
            return Err(C::unavailable(job));
        }
        let (carrier, price) = self
            .carriers
            .ranked(job)?
            .into_iter()
            .next()
            .ok_or_else(|| C::unavailable(job))?;
        Ok(Quote {
            carrier,
            price: Some(price),
        })
    }

    fn place(&self, job: C::Job) {
        self.active.place(job.id());
        if let Err(mpsc::error::TrySendError::Full(job)) = self.queue.try_send(job) {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let _ = queue.send(job).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttles_with_a_hint_become_waits() {
        let throttle = || Verdict::Retry("429".into(), FailureClass::Throttled);
        assert_eq!(throttle().hinted(None), throttle());
        assert_eq!(
            throttle().hinted(Some(Duration::from_secs(7))),
            Verdict::Wait("429".into(), Duration::from_secs(7))
        );
        // Out-of-range hints are brought within the bounds.
        assert_eq!(
            throttle().hinted(Some(Duration::ZERO)),
            Verdict::Wait("429".into(), MIN_PAUSE)
        );
        assert_eq!(
            throttle().hinted(Some(Duration::from_secs(86_400))),
            Verdict::Wait("429".into(), MAX_PAUSE)
        );
        // Other failures keep their class whatever the hint.
        let down = Verdict::Retry("503".into(), FailureClass::TransportDown);
        assert_eq!(
            down.hinted(Some(Duration::from_secs(5))),
            Verdict::Retry("503".into(), FailureClass::TransportDown)
        );
    }

    #[test]
    fn a_withdrawn_message_starts_no_attempt_and_one_in_flight_is_told_after() {
        let active = Active::default();
        let (a, b) = (MessageId(1), MessageId(2));
        // Unknown: a carrier has it already, or it is another node's.
        assert_eq!(active.withdraw(a, "x"), Withdrawal::NotHere);
        // Queued, then withdrawn: no attempt starts.
        active.place(a);
        assert!(!active.withdrawn(a));
        assert_eq!(active.withdraw(a, "x"), Withdrawal::Cancelled);
        assert_eq!(active.withdraw(a, "x"), Withdrawal::Cancelled);
        assert!(active.withdrawn(a));
        assert!(!active.begin(a));
        active.finish(a);
        assert_eq!(active.withdraw(a, "x"), Withdrawal::NotHere);
        // An attempt that ends while it is still wanted goes back to waiting.
        active.place(b);
        assert!(active.begin(b));
        assert_eq!(active.end(b), None);
        assert!(active.begin(b));
        // Withdrawn while with a carrier: the attempt's end says so, with the detail, and no
        // further attempt starts.
        assert_eq!(active.withdraw(b, "superseded"), Withdrawal::InFlight);
        assert_eq!(active.withdraw(b, "again"), Withdrawal::InFlight);
        assert!(active.withdrawn(b));
        assert_eq!(active.end(b).as_deref(), Some("superseded"));
        assert!(!active.begin(b));
        active.finish(b);
        assert!(active.0.lock().is_empty());
    }

    #[test]
    fn a_pause_holds_until_its_time_and_the_longer_one_wins() {
        let pauses = Pauses::default();
        let t0 = Instant::now();
        assert_eq!(pauses.until("a", t0), None);
        pauses.pause("a", Duration::from_secs(5), t0);
        pauses.pause("a", Duration::from_secs(2), t0);
        let until = t0 + Duration::from_secs(5);
        assert_eq!(pauses.until("a", t0 + Duration::from_secs(4)), Some(until));
        assert_eq!(pauses.until("b", t0), None);
        assert_eq!(pauses.until("a", until), None);
        // Gone once passed.
        assert!(pauses.0.lock().is_empty());
        // Capped.
        pauses.pause("c", Duration::from_secs(3600), t0);
        assert_eq!(pauses.until("c", t0), Some(t0 + MAX_PAUSE));
    }
}
