//! The bounded, lock-free per-carrier queue with priority lanes.
//!
//! One `ArrayQueue` per priority (critical, high, normal, low): producers (the API, the
//! dispatcher's retries) never block and never allocate; a full lane is backpressure that the
//! API turns into 503 with Retry-After. Bind tasks pop the highest non-empty lane and sleep on a
//! `Notify` when all are empty.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use tokio::sync::Notify;

use crate::model::Priority;

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

/// One carrier's queue of jobs waiting for a bind.
#[derive(Debug)]
pub struct CarrierQueue {
    lanes: [ArrayQueue<Arc<Job>>; LANES],
    /// Wakes bind tasks waiting for work.
    pub notify: Notify,
    /// Jobs queued across lanes (approximate under concurrency; for metrics and readiness).
    len: AtomicUsize,
}

impl CarrierQueue {
    /// A queue holding up to `capacity` jobs per lane.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        CarrierQueue {
            lanes: std::array::from_fn(|_| ArrayQueue::new(capacity)),
            notify: Notify::new(),
            len: AtomicUsize::new(0),
        }
    }

    /// Queues a job in its priority's lane; gives it back when that lane is full.
    pub fn push(&self, job: Arc<Job>) -> Result<(), Arc<Job>> {
        let l = lane(job.priority);
        self.lanes[l].push(job)?;
        self.len.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_one();
        Ok(())
    }

    /// Takes the oldest job of the highest non-empty lane.
    pub fn pop(&self) -> Option<Arc<Job>> {
        for lane in &self.lanes {
            if let Some(job) = lane.pop() {
                self.len.fetch_sub(1, Ordering::Relaxed);
                return Some(job);
            }
        }
        None
    }

    /// True when this priority's lane has room (a hint: another producer may fill it first).
    pub fn has_room(&self, priority: Priority) -> bool {
        !self.lanes[lane(priority)].is_full()
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageId;

    fn job(n: i64, priority: Priority) -> Arc<Job> {
        Arc::new(Job::new_for_test(MessageId(n), priority))
    }

    #[test]
    fn pops_by_priority_then_age_and_refuses_when_full() {
        let q = CarrierQueue::new(2);
        q.push(job(1, Priority::Low)).unwrap();
        q.push(job(2, Priority::Normal)).unwrap();
        q.push(job(3, Priority::Critical)).unwrap();
        q.push(job(4, Priority::Normal)).unwrap();
        assert!(
            q.push(job(5, Priority::Normal)).is_err(),
            "normal lane holds 2"
        );
        assert!(q.has_room(Priority::Low));
        let order: Vec<i64> = std::iter::from_fn(|| q.pop()).map(|j| j.id.0).collect();
        assert_eq!(order, vec![3, 2, 4, 1]);
        assert!(q.is_empty());
    }
}
