//! The bounded per-carrier queue: tenants share the carrier fairly, priorities order each
//! tenant's own messages.
//!
//! # How priority and tenant fairness compose
//! Fairness between tenants comes first. Every tenant with messages waiting on a carrier has a
//! *flow*; flows take turns in deficit round robin (DRR): at its turn a flow is credited its
//! `queue_weight` in segments and sends while its credit covers the next message (a message
//! costs the segments it still has to send), then the next flow takes its turn. Inside a flow,
//! the highest priority goes first (critical, high, normal, low) and, within a priority, the
//! oldest. So a tenant's priorities reorder its own traffic (and weigh routing: health against
//! price), but never let it take more than its weighted share of the carrier from others. A
//! message that arrives for a tenant with nothing waiting is sent after at most one turn of
//! each other waiting flow: with equal weights and single-segment messages, one message per
//! other tenant, whatever their backlog.
//!
//! # Bounds
//! At most `capacity` messages wait in one carrier's queue, and one tenant may hold at most
//! three quarters of it, so another tenant always finds room. A full queue is backpressure: the
//! API answers 503 `queue_full`, and accepted messages wait in the dispatcher's scheduler or,
//! those of batches, in the store.
//! Messages a bind held when its connection dropped go back in front of their lane regardless
//! of the bound ([`CarrierQueue::restore`]): they were admitted once, and binds' windows bound
//! them.
//!
//! The queue is a short critical section behind one lock per carrier (producers never wait
//! for a consumer); bind tasks sleep on [`CarrierQueue::notify`] when it is empty.
//! [`FairQueue`] is the plain data structure (no lock, no clock), tested deterministically.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use switchyard_protocols::text::{count_segments_behind, parse_udh, EncodeOptions};
use tokio::sync::Notify;

use crate::domain::Priority;

use super::Job;

/// Priority lanes, highest first.
const LANES: usize = 4;

fn lane(p: Priority) -> usize {
    match p {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// One tenant's waiting messages and its DRR state.
#[derive(Debug)]
struct Flow<T> {
    /// Per priority, oldest first; each entry with its cost in segments.
    lanes: [VecDeque<(u32, T)>; LANES],
    /// Entries across lanes.
    len: usize,
    /// Credit left (segments) in the current turn and carried from turns too short to send.
    deficit: u64,
    /// Credit per turn (`queue_weight`, at least 1).
    weight: u64,
    /// The flow has been credited for the turn it is taking now (at the front).
    credited: bool,
}

impl<T> Flow<T> {
    fn new(weight: u32) -> Self {
        Flow {
            lanes: std::array::from_fn(|_| VecDeque::new()),
            len: 0,
            deficit: 0,
            weight: u64::from(weight.max(1)),
            credited: false,
        }
    }

    /// The cost of the message this flow would send next.
    fn head_cost(&self) -> Option<u32> {
        self.lanes
            .iter()
            .find_map(|l| l.front())
            .map(|(cost, _)| *cost)
    }

    fn pop_head(&mut self) -> Option<T> {
        let (_, item) = self.lanes.iter_mut().find_map(|l| l.pop_front())?;
        self.len -= 1;
        Some(item)
    }
}

/// Why [`FairQueue::push`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The queue holds `capacity` entries.
    Queue,
    /// The tenant holds its share (three quarters of `capacity`).
    Tenant,
}

/// Weighted deficit round robin over tenants, strict priority lanes within a tenant. Plain
/// data: the caller locks it and wakes consumers.
#[derive(Debug)]
pub(crate) struct FairQueue<T> {
    /// Tenant → its flow; a flow exists exactly while it holds entries.
    flows: HashMap<Arc<str>, Flow<T>>,
    /// Flows holding entries, in turn order; the front one is taking its turn.
    active: VecDeque<Arc<str>>,
    /// Entries across flows.
    len: usize,
    /// Most entries (except restored ones).
    capacity: usize,
    /// Most entries of one tenant (except restored ones).
    tenant_cap: usize,
}

impl<T> FairQueue<T> {
    /// A queue of at most `capacity` entries, at most three quarters of them one tenant's.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FairQueue {
            flows: HashMap::new(),
            active: VecDeque::new(),
            len: 0,
            capacity,
            tenant_cap: (capacity - capacity / 4).max(1),
        }
    }

    /// Entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `tenant` could push one more entry now.
    pub(crate) fn room_for(&self, tenant: &str) -> Result<(), Full> {
        if self.len >= self.capacity {
            return Err(Full::Queue);
        }
        if self
            .flows
            .get(tenant)
            .is_some_and(|f| f.len >= self.tenant_cap)
        {
            return Err(Full::Tenant);
        }
        Ok(())
    }

    /// How many more entries `tenant` could push now.
    pub(crate) fn free_for(&self, tenant: &str) -> usize {
        let own = self.flows.get(tenant).map_or(0, |f| f.len);
        self.capacity
            .saturating_sub(self.len)
            .min(self.tenant_cap.saturating_sub(own))
    }

    /// Appends `item` to `tenant`'s lane for `priority`; `weight` is the tenant's
    /// `queue_weight` (taken when its flow starts), `cost` what sending it takes (segments).
    /// Gives it back when the queue or the tenant's share is full.
    pub(crate) fn push(
        &mut self,
        tenant: &Arc<str>,
        weight: u32,
        priority: Priority,
        cost: u32,
        item: T,
    ) -> Result<(), (Full, T)> {
        if let Err(full) = self.room_for(tenant) {
            return Err((full, item));
        }
        self.place(tenant, weight, priority, (cost, item), Place::Back);
        Ok(())
    }

    /// Puts `item` (with its cost) in `tenant`'s lane for `priority`, whatever the bounds: at
    /// the back for a job admitted when there was room, at the front for one taken out
    /// earlier that could not be sent.
    pub(crate) fn place(
        &mut self,
        tenant: &Arc<str>,
        weight: u32,
        priority: Priority,
        (cost, item): (u32, T),
        at: Place,
    ) {
        let lane = &mut self.flow(tenant, weight).lanes[lane(priority)];
        match at {
            Place::Back => lane.push_back((cost.max(1), item)),
            Place::Front => lane.push_front((cost.max(1), item)),
        }
        self.len += 1;
    }

    fn flow(&mut self, tenant: &Arc<str>, weight: u32) -> &mut Flow<T> {
        let flow = self.flows.entry(tenant.clone()).or_insert_with(|| {
            self.active.push_back(tenant.clone());
            Flow::new(weight)
        });
        flow.len += 1;
        flow
    }

    /// The next entry by DRR over tenants, then priority, then age.
    pub(crate) fn pop(&mut self) -> Option<T> {
        // Turns that ended without sending anything, in a row: after a whole round of them,
        // the rounds nobody could use are skipped in one step (see `skip_idle_rounds`).
        let mut idle_turns = 0usize;
        loop {
            let name = self.active.front()?.clone();
            let Some(flow) = self.flows.get_mut(&name) else {
                // Invariant: every active name has a flow. Drop a stray name.
                self.active.pop_front();
                continue;
            };
            let Some(cost) = flow.head_cost() else {
                self.flows.remove(&name);
                self.active.pop_front();
                continue;
            };
            if !flow.credited {
                flow.deficit = flow.deficit.saturating_add(flow.weight);
                flow.credited = true;
            }
            if flow.deficit >= u64::from(cost) {
                flow.deficit -= u64::from(cost);
                let item = flow.pop_head();
                if flow.len == 0 {
                    // An emptied flow leaves the round and forgets its credit (DRR).
                    self.flows.remove(&name);
                    self.active.pop_front();
                }
                if item.is_some() {
                    self.len -= 1;
                }
                return item;
            }
            // Its credit does not cover its next message: its turn ends.
            flow.credited = false;
            self.active.rotate_left(1);
            idle_turns += 1;
            if idle_turns >= self.active.len() {
                self.skip_idle_rounds();
                idle_turns = 0;
            }
        }
    }

    /// Every flow ended a turn without sending: credits them the rounds it would take until
    /// the first of them can send, at once (as many empty rounds would), so a pop costs a
    /// round at most whatever the costs and weights.
    fn skip_idle_rounds(&mut self) {
        let rounds = self
            .flows
            .values()
            .filter_map(|f| {
                let cost = u64::from(f.head_cost()?);
                let missing = cost.saturating_sub(f.deficit);
                Some(missing.div_ceil(f.weight).saturating_sub(1))
            })
            .min()
            .unwrap_or(0);
        if rounds > 0 {
            for f in self.flows.values_mut() {
                f.deficit = f.deficit.saturating_add(rounds.saturating_mul(f.weight));
            }
        }
    }
}

/// Where in its lane an entry goes, whatever the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Behind the others: a job admitted when there was room.
    Back,
    /// Ahead of the others: one taken out earlier that could not be sent.
    Front,
}

/// What sending `job` costs: the segments it still has to send (at least 1), counted behind
/// the IEs of its header (the ports); a part the tenant cut is one.
pub(crate) fn cost(job: &Job) -> u32 {
    let opts = EncodeOptions {
        encoding: job.encoding,
        ..EncodeOptions::default()
    };
    let ies = match job.udh.as_deref().map(parse_udh) {
        None => Some(0),
        Some(Ok((udh, _))) if udh.concat.is_none() => Some(udh.len.saturating_sub(1)),
        Some(_) => None,
    };
    let total = ies.map_or(1, |ies| {
        count_segments_behind(&job.body, ies, &opts).map_or(1, |i| i.segments)
    });
    let left = total.saturating_sub(job.sent_segments.len()).max(1);
    u32::try_from(left).unwrap_or(u32::MAX)
}

/// One carrier's queue of jobs waiting for a bind.
#[derive(Debug)]
pub(crate) struct CarrierQueue {
    /// The jobs.
    inner: Mutex<FairQueue<Arc<Job>>>,
    /// Wakes bind tasks waiting for work.
    pub(crate) notify: Notify,
    /// Jobs queued (a copy of the queue's length readable without the lock: metrics,
    /// readiness, batch admission).
    len: AtomicUsize,
}

impl CarrierQueue {
    /// A queue holding up to `capacity` jobs.
    pub(crate) fn new(capacity: usize) -> Self {
        CarrierQueue {
            inner: Mutex::new(FairQueue::new(capacity)),
            notify: Notify::new(),
            len: AtomicUsize::new(0),
        }
    }

    /// Queues a job of a tenant with `weight`; gives it back when the queue or the tenant's
    /// share is full.
    pub(crate) fn push(&self, job: Arc<Job>, weight: u32) -> Result<(), Arc<Job>> {
        let c = cost(&job);
        let tenant = job.tenant.clone();
        let priority = job.priority;
        let mut q = self.inner.lock();
        q.push(&tenant, weight, priority, c, job)
            .map_err(|(_, job)| job)?;
        self.len.store(q.len(), Ordering::Relaxed);
        drop(q);
        self.notify.notify_one();
        Ok(())
    }

    /// Queues `job` at the back whatever the capacity: a job admitted when there was room
    /// ([`super::Dispatcher::enqueue_admitted`]).
    pub(crate) fn push_over(&self, job: Arc<Job>, weight: u32) {
        self.place(job, weight, Place::Back);
    }

    /// Puts a job taken earlier back in front of its lane, regardless of the bounds.
    pub(crate) fn restore(&self, job: Arc<Job>, weight: u32) {
        self.place(job, weight, Place::Front);
    }

    fn place(&self, job: Arc<Job>, weight: u32, at: Place) {
        let c = cost(&job);
        let tenant = job.tenant.clone();
        let priority = job.priority;
        let mut q = self.inner.lock();
        q.place(&tenant, weight, priority, (c, job), at);
        self.len.store(q.len(), Ordering::Relaxed);
        drop(q);
        self.notify.notify_one();
    }

    /// Takes the next job (fair between tenants, by priority within a tenant).
    pub(crate) fn pop(&self) -> Option<Arc<Job>> {
        let mut q = self.inner.lock();
        let job = q.pop();
        self.len.store(q.len(), Ordering::Relaxed);
        job
    }

    /// True when `tenant` could queue a job now (a hint: another producer may fill it first).
    pub(crate) fn has_room(&self, tenant: &str) -> bool {
        self.inner.lock().room_for(tenant).is_ok()
    }

    /// How many more jobs of `tenant` the queue takes now (a hint, like
    /// [`CarrierQueue::has_room`]).
    pub(crate) fn free_for(&self, tenant: &str) -> usize {
        self.inner.lock().free_for(tenant)
    }

    /// Jobs waiting.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// How many more jobs the queue takes now (a hint, like [`CarrierQueue::has_room`]).
    pub(crate) fn room(&self) -> usize {
        let q = self.inner.lock();
        q.capacity.saturating_sub(q.len())
    }

    /// True when nothing waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageId;

    fn job(n: i64, priority: Priority) -> Arc<Job> {
        Arc::new(Job::new_for_test(MessageId(n), priority))
    }

    fn t(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn one_tenant_pops_by_priority_then_age() {
        let q = CarrierQueue::new(8);
        for (n, p) in [
            (1, Priority::Low),
            (2, Priority::Normal),
            (3, Priority::Critical),
            (4, Priority::Normal),
        ] {
            q.push(job(n, p), 1).unwrap();
        }
        let order: Vec<i64> = std::iter::from_fn(|| q.pop()).map(|j| j.id.0).collect();
        assert_eq!(order, vec![3, 2, 4, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn capacity_and_the_tenant_share_are_enforced_restore_is_not_bounded() {
        let mut q = FairQueue::new(8);
        let (a, b) = (t("a"), t("b"));
        for i in 0..6 {
            q.push(&a, 1, Priority::Normal, 1, i).unwrap();
        }
        // One tenant holds at most three quarters (6 of 8).
        assert_eq!(
            q.push(&a, 1, Priority::Normal, 1, 6),
            Err((Full::Tenant, 6))
        );
        assert!(q.room_for("b").is_ok());
        q.push(&b, 1, Priority::Normal, 1, 100).unwrap();
        q.push(&b, 1, Priority::Normal, 1, 101).unwrap();
        assert_eq!(
            q.push(&b, 1, Priority::Normal, 1, 102),
            Err((Full::Queue, 102))
        );
        q.place(&a, 1, Priority::Normal, (1, -1), Place::Front);
        assert_eq!(q.len(), 9);
        assert_eq!(q.pop(), Some(-1), "a restored entry goes first in its lane");
    }

    /// Pops `q` at `tps` messages per second (virtual time) until `want` comes out; returns
    /// after how many pops and how many virtual milliseconds.
    fn drain_until(q: &mut FairQueue<i64>, want: i64, tps: u64) -> (usize, u64) {
        let mut pops = 0;
        while let Some(x) = q.pop() {
            pops += 1;
            if x == want {
                return (pops, pops as u64 * 1000 / tps);
            }
        }
        panic!("{want} never came out");
    }

    #[test]
    fn a_single_message_overtakes_another_tenants_backlog_within_one_turn() {
        let mut q = FairQueue::new(50_000);
        let (a, b) = (t("a"), t("b"));
        for i in 0..10_000 {
            q.push(&a, 1, Priority::Normal, 1, i).unwrap();
        }
        // A's batch is being sent: some of it went out already.
        for _ in 0..137 {
            q.pop();
        }
        q.push(&b, 1, Priority::Normal, 1, -1).unwrap();
        let (pops, ms) = drain_until(&mut q, -1, 100);
        assert!(pops <= 2, "B waited {pops} pops behind A's backlog");
        assert!(ms <= 20, "{ms} ms at 100 TPS");
        // And A's batch still drains completely, in order.
        let rest: Vec<i64> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest.len(), 10_000 - 137 - (pops - 1));
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_high_priority_backlog_does_not_starve_another_tenants_normal_message() {
        let mut q = FairQueue::new(50_000);
        let (a, b) = (t("a"), t("b"));
        for i in 0..5_000 {
            q.push(&a, 1, Priority::Critical, 1, i).unwrap();
        }
        q.push(&b, 1, Priority::Low, 1, -1).unwrap();
        let (pops, _) = drain_until(&mut q, -1, 1000);
        assert!(pops <= 2, "B waited {pops} pops");
    }

    #[test]
    fn weights_share_the_carrier_in_proportion() {
        let mut q = FairQueue::new(100_000);
        let (a, b, c) = (t("a"), t("b"), t("c"));
        for i in 0..10_000 {
            q.push(&a, 3, Priority::Normal, 1, i).unwrap();
            q.push(&b, 1, Priority::Normal, 1, 100_000 + i).unwrap();
            q.push(&c, 1, Priority::Normal, 2, 200_000 + i).unwrap();
        }
        let mut sent = [0u64; 3];
        for _ in 0..6_000 {
            let x = q.pop().unwrap();
            let (who, segs) = match x {
                0..=99_999 => (0, 1),
                100_000..=199_999 => (1, 1),
                _ => (2, 2),
            };
            sent[who] += segs;
        }
        // Segments, not messages, are shared 3:1:1 (c's messages cost 2 segments each).
        let total: u64 = sent.iter().sum();
        let share = |i: usize| sent[i] as f64 / total as f64;
        assert!((share(0) - 0.6).abs() < 0.01, "{sent:?}");
        assert!((share(1) - 0.2).abs() < 0.01, "{sent:?}");
        assert!((share(2) - 0.2).abs() < 0.01, "{sent:?}");
    }

    #[test]
    fn long_messages_wait_for_credit_without_spinning() {
        let mut q = FairQueue::new(100);
        let (a, b) = (t("a"), t("b"));
        q.push(&a, 1, Priority::Normal, 255, 1).unwrap();
        q.push(&b, 1, Priority::Normal, 200, 2).unwrap();
        q.push(&b, 1, Priority::Normal, 1, 3).unwrap();
        // Both need many turns of credit: b's 200 segments are covered first, then its
        // 1-segment message at its next turn, while a is still short of 255.
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
        assert!(q.flows.is_empty() && q.active.is_empty());
    }

    #[test]
    fn interleaves_tenants_and_keeps_each_tenants_order() {
        let mut q = FairQueue::new(100);
        let names = [t("a"), t("b"), t("c")];
        for i in 0..4 {
            for (k, n) in names.iter().enumerate() {
                q.push(n, 1, Priority::Normal, 1, (k as i64) * 10 + i)
                    .unwrap();
            }
        }
        let order: Vec<i64> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23]);
    }

    #[test]
    fn cost_counts_the_segments_left() {
        let mut j = Job::new_for_test(MessageId(1), Priority::Normal);
        assert_eq!(cost(&j), 1);
        j.body = "x".repeat(400);
        assert_eq!(cost(&j), 3);
        j.sent_segments = vec![0, 1];
        assert_eq!(cost(&j), 1);
        // Behind ports: 152 septets in one segment, then 146 each.
        j.sent_segments.clear();
        j.udh = Some(bytes::Bytes::from_static(&[6, 5, 4, 0x3E, 0x81, 0, 0]));
        j.body = "x".repeat(292);
        assert_eq!(cost(&j), 2);
        j.body.push('x');
        assert_eq!(cost(&j), 3);
        // A part the tenant cut is one segment.
        j.udh = Some(bytes::Bytes::from_static(&[5, 0, 3, 9, 2, 1]));
        assert_eq!(cost(&j), 1);
    }
}
