//! What the dispatcher holds for later: scheduled messages (`scheduled_at`) and deferred jobs
//! (accepted ones whose carrier queues were full). Plain data, no clock or I/O: every call
//! that depends on time takes `now`, and the driver ([`super::Dispatcher::run_scheduler`])
//! does the store reads and the sleeping.
//!
//! # Scheduled messages: a window over the store
//! Scheduled messages live in the store, ordered by their key `(scheduled_at, id)`. Only a
//! *window* of the earliest ones is held in memory, at most `window_cap` jobs. The *horizon*
//! is the key up to which the store has been read: every scheduled message whose key is at or
//! below it is in the window or was released already; those above it are only in the store.
//!
//! ```text
//! store:  ── released ──┤ window (in memory, ≤ cap) ├── horizon ── not read yet ──►  key
//! ```
//! - The driver reads the next page (keys after the horizon) when the window is down to half
//!   its size; a short page means everything was read (the horizon is then unbounded).
//! - A message accepted while the driver runs ([`Timers::schedule`]) joins the window when its
//!   key is at or below the horizon, or while a read is in progress (the read may or may not
//!   see it; the window's key de-duplicates); otherwise the store alone keeps it and a later
//!   read brings it. The message is committed before it is scheduled, so a read that starts
//!   after the check sees it.
//! - A window over `window_cap` gives up its latest jobs and lowers the horizon to the latest
//!   one it keeps, so those are read again later.
//! - The front is always the earliest scheduled message, so it is released on time.
//! - Cancelling ([`Timers::cancel`]) removes a job from the window or, when it was not read
//!   yet, remembers its id until the store has committed the cancellation
//!   ([`Timers::cancel_committed`]), so a read racing the commit cannot bring it back.
//!
//! # Deferred jobs
//! Jobs that found every carrier queue full wait in a heap by retry time, with an exponential
//! back-off (50 ms doubling to 2 s). They are in memory, so the scheduler and the crash
//! recovery stop adding to them above a soft bound ([`Timers::deferred_full`]) and leave the
//! rest in the store (or the window) until the queues drain.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::Arc;

use super::Job;
use crate::domain::{MessageId, UnixMs};

/// A scheduled message's place in the store's order.
pub(crate) type Key = (UnixMs, MessageId);

/// How far the store has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Horizon {
    /// Nothing read yet.
    Nothing,
    /// Every key up to this one.
    UpTo(Key),
    /// Everything (the last read came back short).
    All,
}

impl Horizon {
    fn covers(self, key: Key) -> bool {
        match self {
            Horizon::Nothing => false,
            Horizon::UpTo(h) => key <= h,
            Horizon::All => true,
        }
    }
}

/// A deferred job, ordered by retry time then arrival.
#[derive(Debug)]
struct Deferred {
    /// When to try again and a tie-breaker (arrival order).
    at: Reverse<(UnixMs, u64)>,
    /// Tries so far (sets the back-off).
    attempt: u32,
    /// The job.
    job: Arc<Job>,
}

impl PartialEq for Deferred {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Deferred {}
impl PartialOrd for Deferred {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Deferred {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The back-off before try `attempt + 1` of a deferred job: 50 ms doubling, at most 2 s.
pub(crate) fn backoff_ms(attempt: u32) -> UnixMs {
    let d = crate::carrier::backoff::ceiling(
        attempt.saturating_add(1),
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(2),
    );
    i64::try_from(d.as_millis()).unwrap_or(2000)
}

/// Scheduled and deferred jobs.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The earliest scheduled messages, by key.
    window: BTreeMap<Key, Arc<Job>>,
    /// Most jobs in `window`.
    window_cap: usize,
    /// How far the store has been read.
    horizon: Horizon,
    /// A store read is in progress.
    loading: bool,
    /// Scheduled messages cancelled whose cancellation the store has not committed yet, or
    /// committed while a read was running (that read may have seen them still scheduled).
    cancelled: HashSet<MessageId>,
    /// Cancellations committed while a read was running: forgotten when it ends.
    committed_during_load: Vec<MessageId>,
    /// Replacements committed while a read was running: scheduled when it ends.
    replaced_during_load: Vec<(UnixMs, Arc<Job>)>,
    /// Jobs waiting for room in a carrier queue.
    deferred: BinaryHeap<Deferred>,
    /// Arrival counter of `deferred` (FIFO among equal times).
    deferred_seq: u64,
    /// Above this many deferred jobs, the scheduler and the recovery stop deferring more.
    deferred_soft_cap: usize,
}

impl Timers {
    /// Holds at most `window_cap` scheduled jobs in memory; the scheduler stops releasing
    /// scheduled jobs into a full carrier queue when `deferred_soft_cap` jobs are deferred.
    pub(crate) fn new(window_cap: usize, deferred_soft_cap: usize) -> Self {
        Timers {
            window: BTreeMap::new(),
            window_cap: window_cap.max(1),
            horizon: Horizon::Nothing,
            loading: false,
            cancelled: HashSet::new(),
            committed_during_load: Vec::new(),
            replaced_during_load: Vec::new(),
            deferred: BinaryHeap::new(),
            deferred_seq: 0,
            deferred_soft_cap: deferred_soft_cap.max(1),
        }
    }

    /// A scheduled message that was just stored: joins the window if it belongs there (see
    /// the module doc). Returns true when it is held in memory.
    pub(crate) fn schedule(&mut self, at: UnixMs, job: Arc<Job>) -> bool {
        let key = (at, job.id);
        if !(self.loading || self.horizon.covers(key)) || self.cancelled.contains(&job.id) {
            return false;
        }
        self.window.insert(key, job);
        self.trim();
        true
    }

    /// True when the window is down to half its size, the store may hold more, and no read
    /// is running.
    pub(crate) fn wants_load(&self) -> bool {
        !self.loading && self.horizon != Horizon::All && self.window.len() <= self.window_cap / 2
    }

    /// If the window wants more from the store and no read is running: marks a read as
    /// running and returns the key to read after and how many to read.
    pub(crate) fn begin_load(&mut self) -> Option<(Key, usize)> {
        if !self.wants_load() {
            return None;
        }
        self.loading = true;
        let after = match self.horizon {
            Horizon::UpTo(h) => h,
            _ => (UnixMs::MIN, MessageId(i64::MIN)),
        };
        Some((after, self.window_cap - self.window.len()))
    }

    /// The read started by [`Timers::begin_load`] returned `read` rows (of the `asked`),
    /// of which `jobs` (key order) are sendable; `last` is the key of the last row.
    pub(crate) fn finish_load(
        &mut self,
        jobs: Vec<(UnixMs, Arc<Job>)>,
        read: usize,
        asked: usize,
        last: Option<Key>,
    ) {
        self.loading = false;
        for (at, job) in jobs {
            if !self.cancelled.contains(&job.id) {
                self.window.insert((at, job.id), job);
            }
        }
        self.horizon = match last {
            Some(k) if read >= asked => Horizon::UpTo(k),
            _ => Horizon::All,
        };
        self.trim();
        self.forget_committed();
    }

    /// The read failed: it will be tried again.
    pub(crate) fn abort_load(&mut self) {
        self.loading = false;
        self.forget_committed();
    }

    /// The reads that could have seen a cancelled or replaced message as it was are over:
    /// cancellations are forgotten, replacements take their place.
    fn forget_committed(&mut self) {
        for id in self.committed_during_load.drain(..) {
            self.cancelled.remove(&id);
        }
        for (at, job) in std::mem::take(&mut self.replaced_during_load) {
            self.schedule(at, job);
        }
    }

    /// The store has committed new content for a message taken out with [`Timers::cancel`]:
    /// `job` takes its place at `at`. While a read is running (it may carry the old content)
    /// the new job waits for it to end. Returns true when the job is held in memory now (else
    /// a read brings it in when due).
    pub(crate) fn replace_committed(&mut self, at: UnixMs, job: Arc<Job>) -> bool {
        if self.loading {
            self.committed_during_load.push(job.id);
            self.replaced_during_load.push((at, job));
            return false;
        }
        self.cancelled.remove(&job.id);
        self.schedule(at, job)
    }

    /// Gives up the latest jobs beyond the cap; the horizon comes down to the latest kept.
    fn trim(&mut self) {
        let mut trimmed = false;
        while self.window.len() > self.window_cap {
            self.window.pop_last();
            trimmed = true;
        }
        if trimmed {
            if let Some((k, _)) = self.window.last_key_value() {
                self.horizon = Horizon::UpTo(*k);
            }
        }
    }

    /// The earliest scheduled job if it is due at `now`.
    pub(crate) fn due(&mut self, now: UnixMs) -> Option<Arc<Job>> {
        let (&(at, _), _) = self.window.first_key_value()?;
        if at > now {
            return None;
        }
        self.window.pop_first().map(|(_, job)| job)
    }

    /// Cancels the scheduled message `id` due at `at`. False when it was released already.
    /// Whether the scheduled job `id` due at `at` is held here now.
    pub(crate) fn holds(&self, id: MessageId, at: UnixMs) -> bool {
        self.window.contains_key(&(at, id))
    }

    pub(crate) fn cancel(&mut self, id: MessageId, at: UnixMs) -> bool {
        let key = (at, id);
        if self.window.remove(&key).is_some() || self.cancelled.contains(&id) {
            self.cancelled.insert(id);
            return true;
        }
        if self.horizon.covers(key) && !self.loading {
            // Read from the store already and no longer in the window: released.
            return false;
        }
        self.cancelled.insert(id);
        true
    }

    /// The store has committed the cancellation of `id`: no read started from now on can
    /// bring it back. A read already running may have seen it still scheduled, so then it is
    /// remembered until that read ends.
    pub(crate) fn cancel_committed(&mut self, id: MessageId) {
        if self.loading {
            self.committed_during_load.push(id);
        } else {
            self.cancelled.remove(&id);
        }
    }

    /// Holds `job` until `at` (its try number `attempt`).
    pub(crate) fn defer(&mut self, job: Arc<Job>, at: UnixMs, attempt: u32) {
        self.deferred_seq += 1;
        self.deferred.push(Deferred {
            at: Reverse((at, self.deferred_seq)),
            attempt,
            job,
        });
    }

    /// The next deferred job due at `now`, with its try number.
    pub(crate) fn due_deferred(&mut self, now: UnixMs) -> Option<(Arc<Job>, u32)> {
        if self.deferred.peek()?.at.0 .0 > now {
            return None;
        }
        self.deferred.pop().map(|d| (d.job, d.attempt))
    }

    /// True when no more jobs should be deferred voluntarily.
    pub(crate) fn deferred_full(&self) -> bool {
        self.deferred.len() >= self.deferred_soft_cap
    }

    /// When something is due next: the earliest scheduled job (unless deferring is full)
    /// or deferred job.
    pub(crate) fn next_due(&self) -> Option<UnixMs> {
        let scheduled = if self.deferred_full() {
            None
        } else {
            self.window.first_key_value().map(|(k, _)| k.0)
        };
        let deferred = self.deferred.peek().map(|d| d.at.0 .0);
        match (scheduled, deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Scheduled jobs in memory.
    pub(crate) fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Deferred jobs.
    pub(crate) fn deferred_len(&self) -> usize {
        self.deferred.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Priority;

    fn job(n: i64) -> Arc<Job> {
        Arc::new(Job::new_for_test(MessageId(n), Priority::Normal))
    }

    /// A store of scheduled messages for the tests: keys → ids, read like the SQL query.
    struct Store(Vec<Key>);

    impl Store {
        fn read(&self, t: &mut Timers) -> bool {
            let Some((after, limit)) = t.begin_load() else {
                return false;
            };
            let mut rows: Vec<Key> = self.0.iter().copied().filter(|k| *k > after).collect();
            rows.sort();
            rows.truncate(limit);
            let last = rows.last().copied();
            let n = rows.len();
            t.finish_load(
                rows.iter().map(|k| (k.0, job(k.1 .0))).collect(),
                n,
                limit,
                last,
            );
            true
        }
    }

    /// Drives `t` over `store` in virtual time until nothing is left; returns (due time,
    /// id, release time) per release and the largest window seen.
    fn run(
        t: &mut Timers,
        store: &mut Store,
        until: UnixMs,
    ) -> (Vec<(UnixMs, i64, UnixMs)>, usize) {
        let mut out = Vec::new();
        let mut most = 0;
        let mut now = 0;
        while now <= until {
            while store.read(t) {}
            most = most.max(t.window_len());
            while let Some(j) = t.due(now) {
                let due = store.0.iter().find(|k| k.1 == j.id).map(|k| k.0).unwrap();
                store.0.retain(|k| k.1 != j.id);
                out.push((due, j.id.0, now));
                store.read(t);
            }
            now = match t.next_due() {
                Some(at) => at.max(now + 1),
                None if store.0.is_empty() => break,
                None => now + 1,
            };
        }
        (out, most)
    }

    #[test]
    fn many_scheduled_messages_are_released_on_time_through_a_small_window() {
        let mut t = Timers::new(16, 100);
        // 1,000 messages due over 10 s, in a scrambled order of ids.
        let mut store = Store(
            (0..1000)
                .map(|i: i64| ((i * 7919) % 10_000, MessageId(i)))
                .collect(),
        );
        let (released, most) = run(&mut t, &mut store, 20_000);
        assert_eq!(released.len(), 1000);
        assert!(most <= 16, "window held {most}");
        for (due, id, at) in &released {
            assert_eq!(due, at, "message {id} due at {due} released at {at}");
        }
        let order: Vec<Key> = released
            .iter()
            .map(|(d, id, _)| (*d, MessageId(*id)))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    #[test]
    fn messages_scheduled_while_running_join_the_window_only_below_the_horizon() {
        let mut t = Timers::new(4, 100);
        let mut store = Store((1..=10).map(|i| (i * 100, MessageId(i))).collect());
        store.read(&mut t);
        assert_eq!(t.window_len(), 4);
        // Due before the horizon (400): held in memory (the store has it too).
        store.0.push((150, MessageId(20)));
        assert!(t.schedule(150, job(20)));
        // Over the cap: the latest (400) leaves and the horizon comes down to 300.
        assert_eq!(t.window_len(), 4);
        // Beyond the horizon: only the store has it.
        store.0.push((350, MessageId(21)));
        assert!(!t.schedule(350, job(21)));
        let (released, most) = run(&mut t, &mut store, 5_000);
        assert!(most <= 4);
        let ids: Vec<i64> = released.iter().map(|r| r.1).collect();
        assert_eq!(ids, vec![1, 20, 2, 3, 21, 4, 5, 6, 7, 8, 9, 10]);
        assert!(released.iter().all(|(due, _, at)| due == at));
    }

    #[test]
    fn a_message_stored_during_a_read_is_not_lost() {
        let mut t = Timers::new(4, 100);
        let store = Store(vec![(100, MessageId(1))]);
        let (after, limit) = t.begin_load().unwrap();
        // Stored and scheduled while the read runs; the read did not see it.
        assert!(t.schedule(50, job(2)));
        let rows: Vec<Key> = store.0.iter().copied().filter(|k| *k > after).collect();
        t.finish_load(
            rows.iter().map(|k| (k.0, job(k.1 .0))).collect(),
            rows.len(),
            limit,
            rows.last().copied(),
        );
        assert_eq!(t.due(1000).map(|j| j.id.0), Some(2));
        assert_eq!(t.due(1000).map(|j| j.id.0), Some(1));
    }

    #[test]
    fn cancelling_works_in_the_window_beyond_the_horizon_and_not_after_release() {
        let mut t = Timers::new(2, 100);
        let mut store = Store((1..=5).map(|i| (i * 100, MessageId(i))).collect());
        store.read(&mut t);
        // In the window.
        assert!(t.cancel(MessageId(2), 200));
        // Not read yet: remembered until the store commits it, so a read skips it.
        assert!(t.cancel(MessageId(4), 400));
        assert_eq!(t.due(100).map(|j| j.id.0), Some(1));
        assert!(!t.cancel(MessageId(1), 100), "released already");
        store.0.retain(|k| k.1 .0 != 1 && k.1 .0 != 2);
        store.read(&mut t);
        let mut ids = Vec::new();
        while let Some(j) = t.due(10_000) {
            ids.push(j.id.0);
            store.read(&mut t);
        }
        assert_eq!(ids, vec![3, 5]);
        t.cancel_committed(MessageId(4));
        assert!(t.cancelled.len() == 1 && t.cancelled.contains(&MessageId(2)));
    }

    #[test]
    fn a_cancel_committed_during_a_read_is_not_undone_by_that_read() {
        let mut t = Timers::new(4, 100);
        let store = Store(vec![(100, MessageId(1)), (200, MessageId(2))]);
        // The read starts and sees both messages still scheduled …
        let (after, limit) = t.begin_load().unwrap();
        let rows: Vec<Key> = store.0.iter().copied().filter(|k| *k > after).collect();
        // … meanwhile message 1 is cancelled and the cancellation commits …
        assert!(t.cancel(MessageId(1), 100));
        t.cancel_committed(MessageId(1));
        // … then the read's rows arrive.
        t.finish_load(
            rows.iter().map(|k| (k.0, job(k.1 .0))).collect(),
            rows.len(),
            limit,
            rows.last().copied(),
        );
        assert_eq!(t.due(1000).map(|j| j.id.0), Some(2));
        assert!(t.due(1000).is_none(), "the cancelled message came back");
        assert!(t.cancelled.is_empty(), "nothing left to remember");
    }

    #[test]
    fn a_replaced_message_is_released_once_with_its_new_content_and_time() {
        let mut t = Timers::new(4, 100);
        let store = Store(vec![(100, MessageId(1))]);
        store.read(&mut t);
        // Replaced while held, to a later time.
        assert!(t.cancel(MessageId(1), 100));
        let mut new = Job::new_for_test(MessageId(1), Priority::Normal);
        new.body = "replaced".into();
        assert!(t.replace_committed(300, Arc::new(new)));
        assert!(t.due(200).is_none(), "released at its old time");
        assert_eq!(t.due(300).map(|j| j.body.clone()), Some("replaced".into()));
        assert!(t.due(10_000).is_none());
        // Replaced while a read that saw the old content runs.
        let mut t = Timers::new(4, 100);
        let (after, limit) = t.begin_load().unwrap();
        let rows: Vec<Key> = store.0.iter().copied().filter(|k| *k > after).collect();
        assert!(t.cancel(MessageId(1), 100));
        let mut new = Job::new_for_test(MessageId(1), Priority::Normal);
        new.body = "replaced".into();
        assert!(!t.replace_committed(300, Arc::new(new)));
        t.finish_load(
            rows.iter().map(|k| (k.0, job(k.1 .0))).collect(),
            rows.len(),
            limit,
            rows.last().copied(),
        );
        let released: Vec<(i64, String)> = std::iter::from_fn(|| t.due(10_000))
            .map(|j| (j.id.0, j.body.clone()))
            .collect();
        assert_eq!(released, vec![(1, "replaced".to_owned())]);
        assert!(t.cancelled.is_empty());
    }

    #[test]
    fn deferred_jobs_come_back_in_time_order_with_backoff() {
        let mut t = Timers::new(4, 2);
        t.defer(job(1), 100 + backoff_ms(0), 1);
        t.defer(job(2), 100 + backoff_ms(5), 6);
        assert!(t.deferred_full());
        assert_eq!(t.next_due(), Some(150));
        assert!(t.due_deferred(149).is_none());
        assert_eq!(t.due_deferred(150).map(|(j, a)| (j.id.0, a)), Some((1, 1)));
        assert_eq!(backoff_ms(5), 1600);
        assert_eq!(backoff_ms(40), 2000);
        assert_eq!(t.due_deferred(10_000).map(|(j, _)| j.id.0), Some(2));
    }
}
