//! The window of our outstanding requests: who awaits a response, and until when.
//!
//! Every request gets the same response timeout, so deadlines are non-decreasing in send order
//! and a FIFO is also a deadline queue: the front holds the next expiry, which makes
//! [`Window::next_deadline`] O(1). A response in the middle leaves a tombstone; tombstones at
//! the front are popped at once, and when the queue reaches twice the window it is compacted in
//! place. Capacity is reserved up front, so the steady state does not allocate. Lookups scan
//! linearly: windows are small (SMPP carriers allow 1–100) and responses mostly arrive in
//! order, so the match is usually at the front.

use std::collections::VecDeque;
use std::time::Instant;

use crate::smpp::pdu::CommandId;

use super::event::LostRequest;

/// The largest capacity reserved up front; bigger windows grow on demand (still amortised).
const MAX_RESERVED: usize = 4096;

/// Our requests awaiting a response, oldest first.
#[derive(Debug)]
pub(crate) struct Window {
    /// The configured window: at most this many live entries.
    limit: usize,
    /// Entries in send order (deadline order). Dead entries are tombstones awaiting compaction.
    entries: VecDeque<Entry>,
    /// Live entries in `entries`.
    live: usize,
}

/// One outstanding request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The sequence number we sent it with.
    pub(crate) sequence_number: u32,
    /// The request's command_id, so the response can be checked and reported.
    pub(crate) command_id: CommandId,
    /// When it times out.
    pub(crate) deadline: Instant,
    /// False once answered: a tombstone.
    live: bool,
}

impl Window {
    pub(crate) fn new(limit: usize) -> Self {
        Window {
            limit,
            entries: VecDeque::with_capacity(limit.saturating_mul(2).min(MAX_RESERVED)),
            live: 0,
        }
    }

    /// Outstanding requests.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Free slots.
    pub(crate) fn available(&self) -> usize {
        self.limit.saturating_sub(self.live)
    }

    /// The configured window.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Records a request. The caller checked `available() > 0`. A deadline earlier than the
    /// newest one (a clock that went backwards) is raised to it, to keep the FIFO ordered.
    pub(crate) fn push(&mut self, sequence_number: u32, command_id: CommandId, deadline: Instant) {
        if self.entries.len() >= self.limit.saturating_mul(2).max(1) {
            self.entries.retain(|e| e.live);
        }
        let deadline = match self.entries.back() {
            Some(last) if last.deadline > deadline => last.deadline,
            _ => deadline,
        };
        self.entries.push_back(Entry {
            sequence_number,
            command_id,
            deadline,
            live: true,
        });
        self.live += 1;
    }

    /// True when `sequence_number` is outstanding.
    pub(crate) fn contains(&self, sequence_number: u32) -> bool {
        self.entries
            .iter()
            .any(|e| e.live && e.sequence_number == sequence_number)
    }

    /// The outstanding request with this sequence number, if any.
    pub(crate) fn get(&self, sequence_number: u32) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.live && e.sequence_number == sequence_number)
    }

    /// Completes the request with this sequence number, returning it.
    pub(crate) fn remove(&mut self, sequence_number: u32) -> Option<Entry> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.live && e.sequence_number == sequence_number)?;
        entry.live = false;
        let found = *entry;
        self.live -= 1;
        self.pop_dead_front();
        Some(found)
    }

    /// The earliest deadline of an outstanding request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // Invariant: the front is live (tombstones at the front are popped eagerly).
        self.entries.front().map(|e| e.deadline)
    }

    /// Removes and returns the oldest request if it is due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Entry> {
        let front = self.entries.front()?;
        if front.deadline > now {
            return None;
        }
        let entry = self.entries.pop_front()?;
        self.live -= 1;
        self.pop_dead_front();
        Some(entry)
    }

    /// Empties the window, returning the outstanding requests oldest first.
    pub(crate) fn drain(&mut self) -> Vec<LostRequest> {
        let lost = self
            .entries
            .iter()
            .filter(|e| e.live)
            .map(|e| LostRequest {
                sequence_number: e.sequence_number,
                command_id: e.command_id,
            })
            .collect();
        self.entries.clear();
        self.live = 0;
        lost
    }

    fn pop_dead_front(&mut self) {
        while self.entries.front().is_some_and(|e| !e.live) {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn out_of_order_completion_keeps_front_live_and_compacts() {
        let t0 = Instant::now();
        let mut w = Window::new(3);
        for seq in 1..=3 {
            w.push(
                seq,
                CommandId::SUBMIT_SM,
                t0 + Duration::from_secs(seq.into()),
            );
        }
        assert_eq!(w.available(), 0);
        assert!(w.remove(2).is_some());
        assert!(w.remove(2).is_none());
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(w.remove(1).is_some());
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(3)));
        // Many completions behind a stuck front: the deque never exceeds 2 × window.
        for seq in 10..1000 {
            w.push(seq, CommandId::SUBMIT_SM, t0 + Duration::from_secs(5));
            assert!(w.remove(seq).is_some());
            assert!(w.entries.len() <= 6);
        }
        assert_eq!(w.len(), 1);
        assert_eq!(w.pop_expired(t0).map(|e| e.sequence_number), None);
        let expired = w.pop_expired(t0 + Duration::from_secs(3));
        assert_eq!(expired.map(|e| e.sequence_number), Some(3));
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn deadlines_stay_ordered_when_the_clock_goes_back() {
        let t0 = Instant::now();
        let mut w = Window::new(2);
        w.push(1, CommandId::SUBMIT_SM, t0 + Duration::from_secs(5));
        w.push(2, CommandId::SUBMIT_SM, t0 + Duration::from_secs(1));
        assert!(w.pop_expired(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(w.drain().len(), 2);
    }
}
