//! From accepted message to carrier queue: route lookup, per-carrier queues, failover,
//! scheduled sends, and holding what does not fit yet.
//!
//! ```text
//! API ──► Dispatcher::enqueue(job) ──► Router: ranked carriers (price, health, breakers)
//!                                   ──► first carrier with an open breaker and room ──► CarrierQueue
//!     scheduled_at later ──► store (the scheduler reads the next ones as they come due)
//!     every queue full ──► deferred: tried again with back-off until a queue takes it
//!     a bulk accept beyond the queues ──► backlog: ids only, read back from the store as
//!                                         the queues take them
//! bind task ──► transient failures exhausted / bind cannot take it ──► Dispatcher::fail_over
//!                                   ──► next carrier not yet tried, else status `failed`
//! ```
//!
//! # Never fail what was accepted for want of room
//! A full queue is backpressure for new requests (the API answers 503), never a reason to fail
//! a message that was accepted: accepted jobs that find every queue full are deferred and
//! tried again (with back-off, until their validity period ends), and those accepted in bulk
//! (batches) beyond the queues' room wait in the store, only their ids in memory; jobs a bind
//! held when it dropped go back in front of their queue; the crash recovery reads the backlog
//! page by page as the queues take it ([`Dispatcher::resubmit`]). A message fails only when
//! no carrier can ever take it: no route, or every carrier of its route failed it.
//!
//! # Layout
//! - [`queue`]: [`CarrierQueue`], fair between tenants, by priority within a tenant.
//! - [`timers`]: the scheduled window and the deferred jobs, in virtual time.
//! - [`backlog`]: ids of accepted jobs left in the store for want of queue room.
//! - [`relay`]: on a shared store, jobs for carriers bound on other nodes, handed over.
//! - this file: the [`Dispatcher`] that routes, queues, fails over and drives the timers.

mod backlog;
mod queue;
pub(crate) mod relay;
mod timers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use switchyard_ops::config::{Config, QueueSettings, TenantFairness};
use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::{
    Admission, BreakerView, Channel, Priority, RouteBuf, RouteError, RouteRequest, Router, E164,
};
use tokio::sync::Notify;

pub(crate) use queue::CarrierQueue;
pub(crate) use timers::Timers;

use crate::domain::{now_ms, MessageId, MessageRecord, Status, UnixMs, Update};
use crate::store::Store;
use crate::updates::UpdateSink;
use backlog::Backlog;

/// One message on its way to a carrier. Shared (`Arc`) between the queue and the bind that
/// sends it; a failover makes a new one.
#[derive(Debug)]
pub(crate) struct Job {
    /// The message.
    pub(crate) id: MessageId,
    /// Its tenant (for routing plans).
    pub(crate) tenant: Arc<str>,
    /// Destination, parsed.
    pub(crate) to: E164,
    /// Sender as given (E.164 with '+', short code or alphanumeric).
    pub(crate) from: String,
    /// The text (for binary, its octets in hex).
    pub(crate) body: String,
    /// Encoding asked for.
    pub(crate) encoding: EncodingPreference,
    /// Queue lane and routing weights.
    pub(crate) priority: Priority,
    /// Send no earlier than this.
    pub(crate) scheduled_at: Option<UnixMs>,
    /// Give up after this.
    pub(crate) expires_at: Option<UnixMs>,
    /// Segments already accepted by a carrier (after a restart or a partial failover): skip
    /// them.
    pub(crate) sent_segments: Vec<u16>,
    /// Carriers that failed this message already.
    pub(crate) tried: Vec<String>,
    /// The user data header: a part the tenant cut itself (with a concatenation IE, sent
    /// with `body` as one segment), or IEs every segment carries.
    pub(crate) udh: Option<bytes::Bytes>,
    /// An SMPP data_coding to send as is (the tenant's message class and the like).
    pub(crate) data_coding: Option<u8>,
}

/// [`Job::salt`] of the message `id` to `to` with the user data header `udh`.
pub(crate) fn salt(id: MessageId, to: &E164, udh: Option<&[u8]>) -> u64 {
    let reference = udh.and_then(|udh| {
        let (parsed, _) = switchyard_protocols::text::parse_udh(udh).ok()?;
        parsed.concat.map(|c| c.reference)
    });
    match reference {
        None => id.0 as u64,
        Some(r) => {
            // FNV-1a over the destination's digits and the reference.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in to.as_str().bytes().chain(r.to_be_bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        }
    }
}

impl Job {
    /// What ties routing's weighted choice to this message: its id, or for a part the tenant
    /// cut itself, the destination and the part's concatenation reference, so every part of
    /// one message takes the same carrier while that carrier stays healthy (a handset joins
    /// parts only if they arrive from one origin).
    pub(crate) fn salt(&self) -> u64 {
        salt(self.id, &self.to, self.udh.as_deref())
    }

    /// True when the validity period ran out.
    pub(crate) fn expired(&self, now: UnixMs) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// The job of a stored SMS message (after a restart, or read by the scheduler): segments
    /// a carrier accepted already are skipped. `None` for a voice call or an unreadable
    /// number.
    pub(crate) fn from_record(record: &MessageRecord) -> Option<Job> {
        let m = &record.message;
        if m.voice.is_some() {
            return None;
        }
        let to = E164::parse(&m.to).ok()?;
        let sent_segments = record
            .segment_states
            .iter()
            .filter(|s| s.status != Status::Submitting && s.carrier_message_id.is_some())
            .map(|s| s.index)
            .collect();
        Some(Job {
            id: m.id,
            tenant: Arc::from(m.tenant.as_str()),
            to,
            from: m.from.clone(),
            body: m.body.clone(),
            encoding: match m.encoding {
                Some(
                    e @ (switchyard_protocols::text::Encoding::Ucs2
                    | switchyard_protocols::text::Encoding::Binary),
                ) => EncodingPreference::Force(e),
                _ => EncodingPreference::Auto,
            },
            priority: m.priority,
            scheduled_at: m.scheduled_at,
            expires_at: m.expires_at,
            sent_segments,
            tried: Vec::new(),
            udh: m.udh.clone().map(bytes::Bytes::from),
            data_coding: m.data_coding,
        })
    }

    #[cfg(test)]
    pub(crate) fn new_for_test(id: MessageId, priority: Priority) -> Self {
        Job {
            id,
            tenant: Arc::from("t"),
            to: "+447700900123".parse().unwrap_or_else(|_| unreachable!()),
            from: "Switchyard".into(),
            body: "hi".into(),
            encoding: EncodingPreference::Auto,
            priority,
            scheduled_at: None,
            expires_at: None,
            sent_segments: Vec::new(),
            tried: Vec::new(),
            udh: None,
            data_coding: None,
        }
    }
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DispatchError {
    /// No route (blocked, not allowed, no rate, unknown tenant): the message cannot be sent.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Every eligible carrier's queue is full: backpressure, retry shortly.
    #[error("every carrier queue for this destination is full")]
    QueuesFull,
    /// Every carrier that could take it failed it already.
    #[error("every carrier that could take this message failed it")]
    Exhausted,
}

impl DispatchError {
    /// True when the same request may succeed in a moment (the API answers 503 + Retry-After).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            DispatchError::Route(e) => e.retryable(),
            DispatchError::QueuesFull => true,
            DispatchError::Exhausted => false,
        }
    }
}

/// What a carrier is picked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// An answer or admission check: nothing is sent, no probe slot is taken.
    Quote,
    /// Queueing, on a carrier whose queue has room.
    Queue,
    /// Queueing over the queue's capacity (a job admitted before the queue filled).
    Over,
}

/// Routes jobs to carrier queues.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    /// The LCR table (swapped on reload).
    pub(crate) router: Arc<Router>,
    /// Carrier name → its queue. Swapped whole when carriers are reconfigured.
    queues: ArcSwap<HashMap<String, Arc<CarrierQueue>>>,
    /// State changes to persist.
    updates: UpdateSink,
    /// Scheduled jobs in memory and deferred jobs.
    timers: Mutex<Timers>,
    /// Wakes the scheduler when something earlier than its wake-up arrives.
    timers_changed: Notify,
    /// Ids of accepted jobs left in the store for want of queue room.
    backlog: Mutex<Backlog>,
    /// Capacity of new carrier queues.
    queue_capacity: usize,
    /// Tenant → `queue_weight` (swapped on reload); tenants not listed weigh 1.
    weights: ArcSwap<HashMap<String, u32>>,
}

impl Dispatcher {
    /// A dispatcher over `router` with a queue of `settings.capacity` for each carrier.
    pub(crate) fn new(
        router: Arc<Router>,
        carriers: &[String],
        settings: &QueueSettings,
        updates: UpdateSink,
    ) -> Self {
        let queue_capacity = settings.capacity;
        let queues = carriers
            .iter()
            .map(|c| (c.clone(), Arc::new(CarrierQueue::new(queue_capacity))))
            .collect();
        Dispatcher {
            router,
            queues: ArcSwap::from_pointee(queues),
            updates,
            // Deferring stops being voluntary at four windows' worth (16,384 by default).
            timers: Mutex::new(Timers::new(
                settings.scheduled_window,
                settings.scheduled_window.saturating_mul(4),
            )),
            timers_changed: Notify::new(),
            backlog: Mutex::new(Backlog::default()),
            queue_capacity,
            weights: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Takes the tenants' `queue_weight` from `config` (at start and on reload).
    pub(crate) fn set_weights(&self, config: &Config) {
        let weights = config
            .tenants
            .iter()
            .filter(|t| t.fairness.queue_weight != TenantFairness::DEFAULT_WEIGHT)
            .map(|t| (t.name.clone(), t.fairness.queue_weight))
            .collect();
        self.weights.store(Arc::new(weights));
    }

    fn weight(&self, tenant: &str) -> u32 {
        self.weights
            .load()
            .get(tenant)
            .copied()
            .unwrap_or(TenantFairness::DEFAULT_WEIGHT)
    }

    /// The queue of `carrier`, created if it is new (a carrier added by a reload).
    pub(crate) fn queue(&self, carrier: &str) -> Arc<CarrierQueue> {
        if let Some(q) = self.queues.load().get(carrier) {
            return q.clone();
        }
        let q = Arc::new(CarrierQueue::new(self.queue_capacity));
        self.queues.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(carrier.to_owned()).or_insert_with(|| q.clone());
            map
        });
        self.queues.load().get(carrier).cloned().unwrap_or(q)
    }

    /// Jobs waiting in `carrier`'s queue; `None` if it has none (not an SMS carrier).
    pub(crate) fn queued_for(&self, carrier: &str) -> Option<usize> {
        self.queues.load().get(carrier).map(|q| q.len())
    }

    /// Whether some carrier queue has room for `tenant` (whichever carriers its messages
    /// would route to: a cheap check before any parsing, for shedding load).
    pub(crate) fn has_room_anywhere(&self, tenant: &str) -> bool {
        self.queues.load().values().any(|q| q.has_room(tenant))
    }

    /// Jobs waiting in every carrier queue.
    pub(crate) fn queued(&self) -> usize {
        self.queues.load().values().map(|q| q.len()).sum()
    }

    /// The carrier this job would go to now, without queueing it (for the API's answer and
    /// its admission check): the first ranked carrier not tried yet whose breaker admits
    /// traffic and whose queue has room for the tenant. A quote sends nothing, so it takes
    /// none of a half-open breaker's probe slots.
    pub(crate) fn quote(&self, job: &Job, salt: u64) -> Result<String, DispatchError> {
        self.pick_with(job, salt, Pick::Quote)
    }

    /// The carrier to queue this job on now, as [`Self::quote`], taking a probe slot of a
    /// half-open breaker.
    fn pick(&self, job: &Job, salt: u64) -> Result<String, DispatchError> {
        self.pick_with(job, salt, Pick::Queue)
    }

    fn pick_with(&self, job: &Job, salt: u64, mode: Pick) -> Result<String, DispatchError> {
        let table = self.router.load();
        let tenant = table
            .tenant_id(&job.tenant)
            .ok_or(RouteError::UnknownTenant)?;
        let now = Instant::now();
        let mut buf = RouteBuf::new();
        let req = RouteRequest {
            channel: Channel::Sms,
            number: &job.to,
            tenant,
            priority: job.priority,
            salt,
            now,
        };
        let ranked = table.route(&req, &mut buf)?;
        let mut any_untried = false;
        for r in ranked {
            let Some(carrier) = table.carrier(r.carrier) else {
                continue;
            };
            if job.tried.contains(&carrier.name) {
                continue;
            }
            any_untried = true;
            let admission = match mode {
                Pick::Quote => table.peek(r.carrier, now),
                Pick::Queue | Pick::Over => table.admit(r.carrier, now),
            };
            if matches!(admission, Admission::Rejected { .. }) {
                continue;
            }
            if mode == Pick::Over || self.queue(&carrier.name).has_room(&job.tenant) {
                return Ok(carrier.name.clone());
            }
        }
        Err(if any_untried {
            DispatchError::QueuesFull
        } else {
            DispatchError::Exhausted
        })
    }

    /// Queues a job on the best carrier now, or, when its `scheduled_at` is later, leaves it
    /// to the scheduler (the job must be stored already: the scheduler may read it from the
    /// store instead). Returns the carrier chosen (`None` when scheduled).
    pub(crate) fn enqueue(&self, job: Arc<Job>) -> Result<Option<String>, DispatchError> {
        if let Some(at) = job.scheduled_at {
            if at > now_ms() {
                let held = self.timers.lock().schedule(at, job);
                if held {
                    self.timers_changed.notify_one();
                }
                return Ok(None);
            }
        }
        self.queue_now(&job).map(Some)
    }

    /// Queues `job` on the best carrier with room, whatever its `scheduled_at`.
    fn queue_now(&self, job: &Arc<Job>) -> Result<String, DispatchError> {
        let salt = job.salt();
        let weight = self.weight(&job.tenant);
        // A queue may fill between the pick and the push; try the ranking again a few times.
        for _ in 0..3 {
            let carrier = self.pick(job, salt)?;
            if self.queue(&carrier).push(job.clone(), weight).is_ok() {
                return Ok(carrier);
            }
        }
        Err(DispatchError::QueuesFull)
    }

    /// Queues a job the API accepted on its own (its admission found room in a queue before
    /// the store write): on the best carrier with room or, when the queues filled in between,
    /// on the best carrier whose breaker admits traffic, over that queue's capacity. The
    /// overshoot is bounded by the requests in flight at once (each passed the room check),
    /// and the job is held in memory either way: in its queue it is sent in turn instead of
    /// waiting in the deferred heap for a slot that new requests race it for. Fails as
    /// [`Self::enqueue`] does when no carrier admits traffic.
    pub(crate) fn enqueue_admitted(&self, job: Arc<Job>) -> Result<Option<String>, DispatchError> {
        match self.enqueue(job.clone()) {
            Err(DispatchError::QueuesFull) => {
                let carrier = self.pick_with(&job, job.salt(), Pick::Over)?;
                let weight = self.weight(&job.tenant);
                self.queue(&carrier).push_over(job, weight);
                Ok(Some(carrier))
            }
            other => other,
        }
    }

    /// Queues an accepted job; when every queue for it is full (or every carrier's breaker
    /// is open) it is deferred and tried again until a queue takes it or its validity ends.
    /// Fails the message only when no carrier can ever take it.
    pub(crate) async fn enqueue_with_retry(&self, job: Arc<Job>) {
        match self.enqueue(job.clone()) {
            Ok(_) => {}
            Err(e) if e.is_retryable() => self.defer_job(job, 0),
            Err(e) => self.fail(job.id, e.to_string()).await,
        }
    }

    /// Holds `job` for `delay` and then queues it (deferred like [`Self::enqueue_with_retry`]
    /// while queues are full): for accepted jobs that found their carrier queues full, e.g. a
    /// large batch.
    pub(crate) fn defer(&self, job: Arc<Job>, delay: std::time::Duration) {
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.timers.lock().defer(job, at, 0);
        self.timers_changed.notify_one();
    }

    /// Leaves an accepted (stored) job in the store until a carrier queue has room: only its
    /// id is held, and the scheduler reads it back then (see [`backlog`]).
    pub(crate) fn leave_in_store(&self, job: &Job) {
        self.leave_id_in_store(&job.tenant, job.id);
    }

    /// [`Dispatcher::leave_in_store`] for `tenant`'s message `id`, without its job.
    pub(crate) fn leave_id_in_store(&self, tenant: &Arc<str>, id: MessageId) {
        self.backlog.lock().push(tenant, id);
        self.timers_changed.notify_one();
    }

    fn defer_job(&self, job: Arc<Job>, attempt: u32) {
        let at = now_ms() + timers::backoff_ms(attempt);
        self.timers.lock().defer(job, at, attempt.saturating_add(1));
        self.timers_changed.notify_one();
    }

    /// Queues an accepted job read back by the crash recovery, waiting while the queues are
    /// full and enough is deferred already (the recovery then reads no further, so memory
    /// stays bounded however large the backlog). Returns when the job is queued, deferred,
    /// expired or failed for good, or at shutdown.
    pub(crate) async fn resubmit(
        &self,
        job: Arc<Job>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let mut wait = std::time::Duration::from_millis(20);
        loop {
            let now = now_ms();
            if job.expired(now) {
                self.updates.send(expired_update(job.id, now)).await;
                return;
            }
            match self.queue_now(&job) {
                Ok(_) => return,
                Err(e) if e.is_retryable() => {
                    if !self.timers.lock().deferred_full() {
                        self.defer_job(job, 0);
                        return;
                    }
                }
                Err(e) => return self.fail(job.id, e.to_string()).await,
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            wait = (wait * 2).min(std::time::Duration::from_millis(500));
        }
    }

    async fn fail(&self, id: MessageId, detail: String) {
        self.updates
            .send(Update::Status {
                id,
                status: Status::Failed,
                at: now_ms(),
                detail: Some(detail),
            })
            .await;
    }

    /// A carrier gave up on `job` (transient failures exhausted, breaker open, bind gone for
    /// good): try the next carrier (deferred while their queues are full), or mark the
    /// message failed when every carrier of its route failed it.
    pub(crate) async fn fail_over(&self, job: &Job, carrier: &str, reason: &str) {
        let mut tried = job.tried.clone();
        tried.push(carrier.to_owned());
        let next = Arc::new(Job {
            scheduled_at: None,
            tried,
            ..clone_job(job)
        });
        match self.queue_now(&next) {
            Ok(next_carrier) => {
                tracing::info!(id = %job.id, from = carrier, to = %next_carrier, reason, "failed over");
            }
            Err(e) if e.is_retryable() => {
                tracing::info!(id = %job.id, from = carrier, reason, "failing over when a queue has room: {e}");
                self.defer_job(next, 0);
            }
            Err(e) => {
                tracing::warn!(id = %job.id, carrier, reason, "no carrier left: {e}");
                self.fail(job.id, format!("{reason}; {e}")).await;
            }
        }
    }

    /// True when `carrier`'s circuit breaker is open or half-open (read only: takes no probe).
    pub(crate) fn breaker_tripped(&self, carrier: &str) -> bool {
        let table = self.router.load();
        table
            .carrier_id(carrier)
            .and_then(|id| table.carrier_state(id))
            .is_some_and(|s| !matches!(s.view(Instant::now()), BreakerView::Closed))
    }

    /// Moves the jobs waiting on `carrier`'s queue to the next carrier of their routes (its binds
    /// are down and its breaker open, so nothing would take them until it recovers). Jobs with
    /// no other carrier, or whose other carriers are full, stay queued for its return.
    pub(crate) async fn evacuate(&self, carrier: &str) {
        let queue = self.queue(carrier);
        let mut stay = Vec::new();
        let mut moved = 0usize;
        while let Some(job) = queue.pop() {
            let mut next = clone_job(&job);
            next.scheduled_at = None;
            next.tried.push(carrier.to_owned());
            match self.queue_now(&Arc::new(next)) {
                Ok(_) => moved += 1,
                Err(_) => stay.push(job),
            }
        }
        if moved > 0 {
            tracing::info!(
                carrier,
                jobs = moved,
                "carrier down: queued jobs failed over"
            );
        }
        // Back in front of their lanes, in their order.
        for job in stay.into_iter().rev() {
            let weight = self.weight(&job.tenant);
            queue.restore(job, weight);
        }
    }

    /// Queues `job` on `carrier` (another node handed it over for that carrier); when the
    /// queue has no room for it, it is routed like any accepted job.
    pub(crate) async fn enqueue_on(&self, carrier: &str, job: Arc<Job>) {
        let weight = self.weight(&job.tenant);
        if let Err(job) = self.queue(carrier).push(job, weight) {
            self.enqueue_with_retry(job).await;
        }
    }

    /// Puts a job back in front of `carrier`'s queue (its bind died with the job in flight),
    /// whatever the queue's bound: it was admitted once.
    pub(crate) async fn requeue(&self, job: Arc<Job>, carrier: &str) {
        let weight = self.weight(&job.tenant);
        self.queue(carrier).restore(job, weight);
    }

    /// Jobs waiting for later: scheduled ones in the window, deferred ones, and those left in
    /// the store for want of queue room.
    pub(crate) fn held(&self) -> usize {
        let in_store = self.in_store();
        let t = self.timers.lock();
        t.window_len() + t.deferred_len() + in_store
    }

    /// How many more jobs of `tenant` some carrier queue takes now (the roomiest; its jobs
    /// may route elsewhere, so this is a hint).
    fn room_for(&self, tenant: &str) -> usize {
        self.queues
            .load()
            .values()
            .map(|q| q.free_for(tenant))
            .max()
            .unwrap_or(0)
    }

    /// Accepted jobs left in the store until a carrier queue has room.
    pub(crate) fn in_store(&self) -> usize {
        self.backlog.lock().len()
    }

    /// Scheduled jobs held in memory (at most `[queues] scheduled_window`).
    pub(crate) fn scheduled_in_memory(&self) -> usize {
        self.timers.lock().window_len()
    }

    /// Jobs deferred until a carrier queue has room.
    pub(crate) fn deferred(&self) -> usize {
        self.timers.lock().deferred_len()
    }

    /// Whether this node's scheduler holds the scheduled message `id` due at `scheduled_at`.
    pub(crate) fn holds_scheduled(&self, id: MessageId, scheduled_at: UnixMs) -> bool {
        self.timers.lock().holds(id, scheduled_at)
    }

    /// Cancels the scheduled message `id` due at `scheduled_at` if it was not released yet.
    /// The caller stores the cancellation and then calls [`Self::cancel_committed`].
    pub(crate) fn cancel_scheduled(&self, id: MessageId, scheduled_at: UnixMs) -> bool {
        self.timers.lock().cancel(id, scheduled_at)
    }

    /// New content for a scheduled message taken out with [`Dispatcher::cancel_scheduled`]
    /// is stored: `job` is scheduled at its time (or queued now when that has passed).
    pub(crate) fn replace_committed(&self, job: Arc<Job>) {
        match job.scheduled_at.filter(|at| *at > now_ms()) {
            Some(at) => {
                if self.timers.lock().replace_committed(at, job) {
                    self.timers_changed.notify_one();
                }
            }
            None => {
                self.timers.lock().cancel_committed(job.id);
                if let Err(e) = self.enqueue(job.clone()) {
                    tracing::warn!(id = %job.id, "replaced, queued when a queue has room: {e}");
                    self.defer(job, std::time::Duration::from_millis(100));
                }
            }
        }
    }

    /// The cancellation of `id` is stored (or could not be: then it stays remembered, and
    /// the message is not sent by this process).
    pub(crate) fn cancel_committed(&self, id: MessageId) {
        self.timers.lock().cancel_committed(id);
    }

    /// Releases scheduled jobs when due (reading the next ones from `store` ahead of time)
    /// and retries deferred ones, until `shutdown` turns true (what is scheduled stays in the
    /// store for the next start).
    pub(crate) async fn run_scheduler(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let load = self.timers.lock().begin_load();
            if let Some((after, limit)) = load {
                match store.scheduled(after, limit).await {
                    Ok(records) => {
                        let read = records.len();
                        let last = records
                            .last()
                            .and_then(|r| Some((r.message.scheduled_at?, r.message.id)));
                        let jobs = records
                            .iter()
                            .filter_map(|r| {
                                Some((r.message.scheduled_at?, Arc::new(Job::from_record(r)?)))
                            })
                            .collect();
                        self.timers.lock().finish_load(jobs, read, limit, last);
                    }
                    Err(e) => {
                        self.timers.lock().abort_load();
                        tracing::warn!("scheduler: reading scheduled messages failed: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
                continue;
            }
            let now = now_ms();
            // Scheduled jobs due now, while deferring has room (a full queue defers them), read
            // again from the store as they are now: cancelled or replaced through another node
            // (or through this one while held here), or taken over by another node.
            loop {
                let due: Vec<Arc<Job>> = {
                    let mut t = self.timers.lock();
                    std::iter::from_fn(|| (!t.deferred_full()).then(|| t.due(now)).flatten())
                        .take(RELEASE_BATCH)
                        .collect()
                };
                if due.is_empty() {
                    break;
                }
                let ids: Vec<MessageId> = due.iter().map(|j| j.id).collect();
                let Some(current) = read_accepted(store.as_ref(), ids, &mut shutdown).await else {
                    return;
                };
                for record in &current {
                    let Some(job) = Job::from_record(record) else {
                        continue;
                    };
                    if job.scheduled_at.is_some_and(|at| at > now) {
                        // Replaced with a later time (through another node): held again.
                        if let Err(e) = self.enqueue(Arc::new(job)) {
                            tracing::warn!(id = %record.message.id, "scheduler: holding a replaced message failed: {e}");
                        }
                        continue;
                    }
                    let released = Arc::new(Job {
                        scheduled_at: None,
                        ..job
                    });
                    self.release(released, 0, now).await;
                }
            }
            // Deferred jobs due now.
            loop {
                let due = self.timers.lock().due_deferred(now);
                let Some((job, attempt)) = due else { break };
                self.release(job, attempt, now).await;
            }
            // Jobs left in the store, while the queues take them (what does not fit is
            // deferred, and no more is read until those found room), read back as they are
            // now: cancelled ones, and on a shared store those another node took over, are
            // not read.
            while self.timers.lock().deferred_len() < RELEASE_BATCH {
                let ids = self
                    .backlog
                    .lock()
                    .take(RELEASE_BATCH, |tenant| self.room_for(tenant));
                if ids.is_empty() {
                    break;
                }
                let Some(current) = read_accepted(store.as_ref(), ids, &mut shutdown).await else {
                    return;
                };
                for record in &current {
                    let Some(job) = Job::from_record(record) else {
                        continue;
                    };
                    let job = Arc::new(job);
                    if job.scheduled_at.is_some_and(|at| at > now) {
                        if let Err(e) = self.enqueue(job) {
                            tracing::warn!(id = %record.message.id, "scheduler: holding a scheduled message failed: {e}");
                        }
                    } else {
                        self.release(job, 0, now).await;
                    }
                }
            }
            let (next, wants_load) = {
                let t = self.timers.lock();
                (t.next_due(), t.wants_load())
            };
            if wants_load {
                continue;
            }
            let changed = self.timers_changed.notified();
            // Queue room frees without a signal: while jobs wait in the store, look again soon.
            let next = match (next, self.in_store() > 0) {
                (Some(at), true) => Some(at.min(now_ms() + BACKLOG_POLL_MS)),
                (None, true) => Some(now_ms() + BACKLOG_POLL_MS),
                (next, false) => next,
            };
            match next {
                Some(at) if at <= now_ms() => continue,
                Some(at) => {
                    let wait =
                        std::time::Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = changed => {}
                        _ = shutdown.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = changed => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// A scheduled or deferred job is due: queue it, defer it again while queues are full,
    /// expire it when its validity ran out, fail it when no carrier can ever take it.
    async fn release(&self, job: Arc<Job>, attempt: u32, now: UnixMs) {
        if job.expired(now) {
            self.updates.send(expired_update(job.id, now)).await;
            return;
        }
        match self.queue_now(&job) {
            Ok(_) => {}
            Err(e) if e.is_retryable() => self.defer_job(job, attempt),
            Err(e) => self.fail(job.id, e.to_string()).await,
        }
    }
}

/// Scheduled messages read again from the store per round trip when they come due, and
/// backlog messages read back per round trip.
const RELEASE_BATCH: usize = 512;

/// How often the scheduler looks for queue room while jobs wait in the store.
const BACKLOG_POLL_MS: UnixMs = 20;

/// Of `ids`, the messages still `accepted` (and ours), as they are now; reading again every
/// second while the store fails. `None` when `shutdown` comes first.
async fn read_accepted(
    store: &dyn Store,
    ids: Vec<MessageId>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Vec<MessageRecord>> {
    loop {
        match store.still_accepted(ids.clone()).await {
            Ok(records) => return Some(records),
            Err(e) => {
                tracing::warn!("scheduler: reading accepted messages failed: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return None,
                }
            }
        }
    }
}

/// The update for a job whose validity period ended before it could be submitted.
pub(crate) fn expired_update(id: MessageId, now: UnixMs) -> Update {
    Update::Status {
        id,
        status: Status::Expired,
        at: now,
        detail: Some("validity period ended before sending".into()),
    }
}

fn clone_job(job: &Job) -> Job {
    Job {
        id: job.id,
        tenant: job.tenant.clone(),
        to: job.to,
        from: job.from.clone(),
        body: job.body.clone(),
        encoding: job.encoding,
        priority: job.priority,
        scheduled_at: job.scheduled_at,
        expires_at: job.expires_at,
        sent_segments: job.sent_segments.clone(),
        tried: job.tried.clone(),
        udh: job.udh.clone(),
        data_coding: job.data_coding,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchyard_ops::config::{self, QueueSettings};
    use switchyard_routing::{Priority, Router};

    use super::{DispatchError, Dispatcher, Job};
    use crate::domain::MessageId;
    use crate::store::sqlite::SqliteStore;
    use crate::updates::UpdateSink;

    /// One SMS carrier for +44 with a queue of `capacity`, over a scratch store.
    fn dispatcher(
        dir: &std::path::Path,
        capacity: usize,
    ) -> (Dispatcher, crate::updates::UpdateTask) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("alpha.csv"),
            "prefix,rate,currency,effective_date\n44,0.01,EUR,2025-01-01\n",
        )
        .unwrap();
        let toml = format!(
            "[[tenants]]\nname = \"acme\"\napi_keys = [\"{}\"]\n\n\
             [[carriers]]\nname = \"alpha\"\nchannels = [\"sms\"]\n\
             smpp = {{ host = \"127.0.0.1\", port = 2775, system_id = \"a\", password = \"p\" }}\n\n\
             [[decks]]\ncarrier = \"alpha\"\nchannel = \"sms\"\npath = \"alpha.csv\"\n",
            config::hash_api_key("test-key")
        );
        let cfg = config::parse_str(&toml, "test.toml", Some(dir)).unwrap();
        let rc = cfg.routing_config(dir).unwrap();
        let router = Router::build(Arc::new(rc), 1_800_000_000, std::time::Instant::now()).unwrap();
        let store = Arc::new(SqliteStore::open(&dir.join("s.db"), Default::default()).unwrap());
        let (updates, task) = UpdateSink::start(store, 64, None);
        let settings = QueueSettings {
            capacity,
            ..QueueSettings::default()
        };
        let d = Dispatcher::new(Arc::new(router), &["alpha".to_owned()], &settings, updates);
        (d, task)
    }

    /// A fresh directory for a test's store.
    fn scratch() -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "sy-dispatch-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }

    fn job(n: i64) -> Arc<Job> {
        let mut j = Job::new_for_test(MessageId(n), Priority::Normal);
        j.tenant = Arc::from("acme");
        j.to = "+447911123456".parse().unwrap();
        Arc::new(j)
    }

    /// A job admitted when its queue had room is queued even if the queue filled since; new
    /// work still finds the queue full.
    #[tokio::test]
    async fn an_admitted_job_is_queued_over_a_full_queue() {
        let dir = scratch();
        let (d, _task) = dispatcher(&dir, 4);
        // One tenant fills three quarters of a queue: 3 of 4.
        for n in 0..3 {
            assert_eq!(d.enqueue(job(n)).unwrap().as_deref(), Some("alpha"));
        }
        assert!(matches!(d.enqueue(job(3)), Err(DispatchError::QueuesFull)));
        assert!(matches!(d.pick(&job(3), 0), Err(DispatchError::QueuesFull)));
        assert!(!d.has_room_anywhere("acme"));
        assert!(
            d.has_room_anywhere("other"),
            "a quarter stays for other tenants"
        );
        assert_eq!(
            d.enqueue_admitted(job(3)).unwrap().as_deref(),
            Some("alpha")
        );
        assert_eq!(d.queued(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Quotes (the API's answer and admission) on a carrier whose breaker is half-open send
    /// nothing, so they leave its probe slots to the jobs actually queued.
    #[tokio::test]
    async fn quotes_take_no_probe_slots_of_a_half_open_breaker() {
        use switchyard_routing::{FailureClass, Outcome};
        let dir = scratch();
        let (d, _task) = dispatcher(&dir, 100);
        let table = d.router.load_full();
        let alpha = table.carrier_id("alpha").unwrap();
        // Tripped long enough ago that its cool-down is over: half-open now.
        let then = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(60))
            .unwrap();
        for _ in 0..5 {
            table.record(alpha, then, Outcome::Failure(FailureClass::Timeout));
        }
        for n in 0..20 {
            assert_eq!(d.quote(&job(n), 0).unwrap(), "alpha");
        }
        // The default three probes are all still there for queueing.
        for n in 0..3 {
            assert_eq!(d.enqueue(job(n)).unwrap().as_deref(), Some("alpha"));
        }
        assert!(matches!(
            d.quote(&job(3), 0),
            Err(DispatchError::QueuesFull)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
