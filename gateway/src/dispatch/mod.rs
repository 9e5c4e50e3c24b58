//! From accepted message to carrier queue: route lookup, per-carrier queues, failover,
//! scheduled sends.
//!
//! ```text
//! API ──► Dispatcher::enqueue(job) ──► Router: ranked carriers (price, health, breakers)
//!                                   ──► first carrier with an open breaker and room ──► CarrierQueue
//! bind task ──► transient failures exhausted / bind cannot take it ──► Dispatcher::fail_over
//!                                   ──► next carrier not yet tried, else status `failed`
//! ```

mod queue;

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::{
    Admission, BreakerView, Channel, Priority, RouteBuf, RouteError, RouteRequest, Router, E164,
};
use tokio::sync::Notify;

pub use queue::CarrierQueue;

use crate::model::{now_ms, MessageId, Status, UnixMs, Update};
use crate::updates::UpdateSink;

/// One message on its way to a carrier. Shared (`Arc`) between the queue and the bind that
/// sends it; a failover makes a new one.
#[derive(Debug)]
pub struct Job {
    /// The message.
    pub id: MessageId,
    /// Its tenant (for routing plans).
    pub tenant: Arc<str>,
    /// Destination, parsed.
    pub to: E164,
    /// Sender as given (E.164 with '+', short code or alphanumeric).
    pub from: String,
    /// The text.
    pub body: String,
    /// Encoding asked for.
    pub encoding: EncodingPreference,
    /// Queue lane and routing weights.
    pub priority: Priority,
    /// Send no earlier than this.
    pub scheduled_at: Option<UnixMs>,
    /// Give up after this.
    pub expires_at: Option<UnixMs>,
    /// Segments already accepted by a carrier (after a restart or a partial failover): skip
    /// them.
    pub sent_segments: Vec<u16>,
    /// Carriers that failed this message already.
    pub tried: Vec<String>,
}

impl Job {
    /// True when the validity period ran out.
    pub fn expired(&self, now: UnixMs) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
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
        }
    }
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
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
    pub fn is_retryable(&self) -> bool {
        match self {
            DispatchError::Route(e) => e.retryable(),
            DispatchError::QueuesFull => true,
            DispatchError::Exhausted => false,
        }
    }
}

/// A scheduled job, ordered by due time (earliest first in the max-heap via `Reverse`).
#[derive(Debug)]
struct Scheduled(std::cmp::Reverse<(UnixMs, MessageId)>, Arc<Job>);

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// Routes jobs to carrier queues.
#[derive(Debug)]
pub struct Dispatcher {
    /// The LCR table (swapped on reload).
    pub router: Arc<Router>,
    /// Carrier name → its queue. Swapped whole when carriers are reconfigured.
    queues: ArcSwap<HashMap<String, Arc<CarrierQueue>>>,
    /// State changes to persist.
    updates: UpdateSink,
    /// Jobs waiting for their scheduled time.
    scheduled: Mutex<BinaryHeap<Scheduled>>,
    /// Wakes the scheduler when an earlier job arrives.
    scheduled_changed: Notify,
    /// Scheduled messages cancelled before they were due.
    cancelled: Mutex<HashSet<MessageId>>,
    /// Per-lane capacity of new carrier queues.
    queue_capacity: usize,
}

impl Dispatcher {
    /// A dispatcher over `router` with a queue of `queue_capacity` per lane for each carrier.
    pub fn new(
        router: Arc<Router>,
        carriers: &[String],
        queue_capacity: usize,
        updates: UpdateSink,
    ) -> Self {
        let queues = carriers
            .iter()
            .map(|c| (c.clone(), Arc::new(CarrierQueue::new(queue_capacity))))
            .collect();
        Dispatcher {
            router,
            queues: ArcSwap::from_pointee(queues),
            updates,
            scheduled: Mutex::new(BinaryHeap::new()),
            scheduled_changed: Notify::new(),
            cancelled: Mutex::new(HashSet::new()),
            queue_capacity,
        }
    }

    /// The queue of `carrier`, created if it is new (a carrier added by a reload).
    pub fn queue(&self, carrier: &str) -> Arc<CarrierQueue> {
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

    /// Jobs waiting in every carrier queue.
    pub fn queued(&self) -> usize {
        self.queues.load().values().map(|q| q.len()).sum()
    }

    /// The carrier this job would go to now, without queueing it (for the API's answer and
    /// its admission check): the first ranked carrier not tried yet whose breaker admits
    /// traffic and whose queue has room.
    pub fn pick(&self, job: &Job, salt: u64) -> Result<String, DispatchError> {
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
            if matches!(table.admit(r.carrier, now), Admission::Rejected { .. }) {
                continue;
            }
            if self.queue(&carrier.name).has_room(job.priority) {
                return Ok(carrier.name.clone());
            }
        }
        Err(if any_untried {
            DispatchError::QueuesFull
        } else {
            DispatchError::Exhausted
        })
    }

    /// Queues a job on the best carrier now (or holds it until its scheduled time). Returns the
    /// carrier chosen (`None` when scheduled).
    pub fn enqueue(&self, job: Arc<Job>) -> Result<Option<String>, DispatchError> {
        if let Some(at) = job.scheduled_at {
            if at > now_ms() {
                self.scheduled
                    .lock()
                    .push(Scheduled(std::cmp::Reverse((at, job.id)), job));
                self.scheduled_changed.notify_one();
                return Ok(None);
            }
        }
        let salt = job.id.0 as u64;
        // A lane may fill between the pick and the push; try the ranking again a few times.
        for _ in 0..3 {
            let carrier = self.pick(&job, salt)?;
            match self.queue(&carrier).push(job.clone()) {
                Ok(()) => return Ok(Some(carrier)),
                Err(_) => continue,
            }
        }
        Err(DispatchError::QueuesFull)
    }

    /// Keeps trying to queue an accepted job whose carriers' queues were full, with back-off,
    /// for up to a minute; then marks it failed. The message is durable meanwhile.
    pub async fn enqueue_with_retry(&self, job: Arc<Job>) {
        let mut delay = std::time::Duration::from_millis(50);
        let give_up = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match self.enqueue(job.clone()) {
                Ok(_) => return,
                Err(e) if e.is_retryable() && Instant::now() < give_up => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
                Err(e) => {
                    self.updates
                        .send(Update::Status {
                            id: job.id,
                            status: Status::Failed,
                            at: now_ms(),
                            detail: Some(e.to_string()),
                        })
                        .await;
                    return;
                }
            }
        }
    }

    /// A carrier gave up on `job` (transient failures exhausted, breaker open, bind gone for
    /// good): try the next carrier, or mark the message failed when none is left.
    pub async fn fail_over(&self, job: &Job, carrier: &str, reason: &str) {
        let mut tried = job.tried.clone();
        tried.push(carrier.to_owned());
        let next = Arc::new(Job {
            scheduled_at: None,
            tried,
            ..clone_job(job)
        });
        match self.enqueue(next) {
            Ok(Some(next_carrier)) => {
                tracing::info!(id = %job.id, from = carrier, to = %next_carrier, reason, "failed over");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(id = %job.id, carrier, reason, "no carrier left: {e}");
                self.updates
                    .send(Update::Status {
                        id: job.id,
                        status: Status::Failed,
                        at: now_ms(),
                        detail: Some(format!("{reason}; {e}")),
                    })
                    .await;
            }
        }
    }

    /// True when `carrier`'s circuit breaker is open or half-open (read only: takes no probe).
    pub fn breaker_tripped(&self, carrier: &str) -> bool {
        let table = self.router.load();
        table
            .carrier_id(carrier)
            .and_then(|id| table.carrier_state(id))
            .is_some_and(|s| !matches!(s.view(Instant::now()), BreakerView::Closed))
    }

    /// Moves the jobs waiting on `carrier`'s queue to the next carrier of their routes (its binds
    /// are down and its breaker open, so nothing would take them until it recovers). Jobs with
    /// no other carrier stay queued for its return.
    pub async fn evacuate(&self, carrier: &str) {
        let queue = self.queue(carrier);
        let mut stay = Vec::new();
        let mut moved = 0usize;
        while let Some(job) = queue.pop() {
            let mut next = clone_job(&job);
            next.scheduled_at = None;
            next.tried.push(carrier.to_owned());
            match self.enqueue(Arc::new(next)) {
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
        for job in stay {
            if let Err(job) = queue.push(job) {
                self.fail_over(&job, carrier, "queue full on evacuation")
                    .await;
            }
        }
    }

    /// Puts a job back on `carrier`'s queue (its bind died with the job in flight). Falls back
    /// to another carrier when that queue is full.
    pub async fn requeue(&self, job: Arc<Job>, carrier: &str) {
        if let Err(job) = self.queue(carrier).push(job) {
            self.fail_over(&job, carrier, "queue full on requeue").await;
        }
    }

    /// Holds `job` for `delay` and then queues it (retrying while queues are full): for accepted
    /// jobs that found their carrier queues full, e.g. a large batch.
    pub fn defer(&self, job: Arc<Job>, delay: std::time::Duration) {
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.scheduled
            .lock()
            .push(Scheduled(std::cmp::Reverse((at, job.id)), job));
        self.scheduled_changed.notify_one();
    }

    /// Jobs held for a later time (scheduled or deferred).
    pub fn held(&self) -> usize {
        self.scheduled.lock().len()
    }

    /// Cancels a scheduled message that is not due yet. Returns false if it is not held here.
    pub fn cancel_scheduled(&self, id: MessageId) -> bool {
        let held = self.scheduled.lock().iter().any(|s| s.1.id == id);
        if held {
            self.cancelled.lock().insert(id);
        }
        held
    }

    /// Moves scheduled jobs to their carriers when due, until `shutdown` turns true (jobs not
    /// yet due stay in the store and come back at the next start).
    pub async fn run_scheduler(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next_due = self.scheduled.lock().peek().map(|s| (s.0).0 .0);
            let now = now_ms();
            match next_due {
                Some(at) if at <= now => {
                    let Some(Scheduled(_, job)) = self.scheduled.lock().pop() else {
                        continue;
                    };
                    if self.cancelled.lock().remove(&job.id) {
                        continue;
                    }
                    // Its validity ran out while it waited: expired, never submitted.
                    if job.expired(now) {
                        self.updates.send(expired_update(job.id, now)).await;
                        continue;
                    }
                    let job = Arc::new(Job {
                        scheduled_at: None,
                        ..clone_job(&job)
                    });
                    if let Err(e) = self.enqueue(job.clone()) {
                        if e.is_retryable() {
                            // Try again shortly rather than failing a message for a full queue.
                            let retry = Arc::new(Job {
                                scheduled_at: Some(now + 1000),
                                ..clone_job(&job)
                            });
                            self.scheduled
                                .lock()
                                .push(Scheduled(std::cmp::Reverse((now + 1000, job.id)), retry));
                        } else {
                            self.updates
                                .send(Update::Status {
                                    id: job.id,
                                    status: Status::Failed,
                                    at: now,
                                    detail: Some(e.to_string()),
                                })
                                .await;
                        }
                    }
                }
                Some(at) => {
                    let wait = std::time::Duration::from_millis((at - now).clamp(1, 60_000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.scheduled_changed.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.scheduled_changed.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

/// The update for a job whose validity period ended before it could be submitted.
pub fn expired_update(id: MessageId, now: UnixMs) -> Update {
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
    }
}
