//! Accepted SMS waiting in the store for room in a carrier queue.
//!
//! A batch of a million recipients is stored in one go, but carrier queues hold tens of
//! thousands. What does not fit stays in the store, and only its id is held here (8 bytes
//! instead of a whole job): the scheduler reads the messages back, a chunk at a time, when the
//! queues have room again, as they are then (a message cancelled meanwhile is skipped).
//! Tenants take turns, one message each, so one tenant's huge batch does not hold back
//! another's small one. A restart forgets the ids: the recovery scan finds those messages in
//! the store like any other unfinished message.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::domain::MessageId;

/// Ids of stored messages waiting for queue room, per tenant, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// Tenant → its waiting ids, oldest first (only tenants with some).
    tenants: HashMap<Arc<str>, VecDeque<MessageId>>,
    /// Tenants with waiting ids, in turn order.
    turns: VecDeque<Arc<str>>,
    /// Ids held, all tenants together.
    len: usize,
}

impl Backlog {
    /// Adds `id` of `tenant` behind the tenant's other waiting ids.
    pub(crate) fn push(&mut self, tenant: &Arc<str>, id: MessageId) {
        let ids = self.tenants.entry(tenant.clone()).or_default();
        if ids.is_empty() {
            self.turns.push_back(tenant.clone());
        }
        ids.push_back(id);
        self.len += 1;
    }

    /// Takes up to `n` ids, tenants in turn, one id per turn, no more of a tenant's than
    /// `room` (asked once per tenant) says its queues take now.
    pub(crate) fn take(&mut self, n: usize, mut room: impl FnMut(&str) -> usize) -> Vec<MessageId> {
        let mut left: HashMap<Arc<str>, usize> = HashMap::new();
        let mut out = Vec::with_capacity(n.min(self.len));
        // Tenants passed over in a row for want of room: a whole round of them ends the take.
        let mut passed = 0;
        while out.len() < n && passed < self.turns.len() {
            let Some(tenant) = self.turns.pop_front() else {
                break;
            };
            let free = left.entry(tenant.clone()).or_insert_with(|| room(&tenant));
            if *free == 0 {
                self.turns.push_back(tenant);
                passed += 1;
                continue;
            }
            *free -= 1;
            passed = 0;
            let Some(ids) = self.tenants.get_mut(&tenant) else {
                continue;
            };
            if let Some(id) = ids.pop_front() {
                out.push(id);
                self.len -= 1;
            }
            if ids.is_empty() {
                self.tenants.remove(&tenant);
            } else {
                self.turns.push_back(tenant);
            }
        }
        out
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_take_turns_and_each_keeps_its_order() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut backlog = Backlog::default();
        for n in 1..=5 {
            backlog.push(&a, MessageId(n));
        }
        backlog.push(&b, MessageId(100));
        backlog.push(&b, MessageId(101));
        assert_eq!(backlog.len(), 7);
        let room = |_: &str| usize::MAX;
        let first = backlog.take(4, room);
        assert_eq!(
            first,
            vec![MessageId(1), MessageId(100), MessageId(2), MessageId(101)]
        );
        assert_eq!(
            backlog.take(10, room),
            vec![MessageId(3), MessageId(4), MessageId(5)]
        );
        assert_eq!(backlog.len(), 0);
        assert!(backlog.take(3, room).is_empty());
        // A tenant that comes back takes its turn again.
        backlog.push(&b, MessageId(102));
        assert_eq!(backlog.take(1, room), vec![MessageId(102)]);
        assert_eq!(backlog.len(), 0);
    }

    #[test]
    fn a_tenant_takes_no_more_than_its_room() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut backlog = Backlog::default();
        for n in 1..=5 {
            backlog.push(&a, MessageId(n));
            backlog.push(&b, MessageId(100 + n));
        }
        // a's queues are full, b's take two more.
        let room = |t: &str| if t == "a" { 0 } else { 2 };
        assert_eq!(backlog.take(10, room), vec![MessageId(101), MessageId(102)]);
        assert!(backlog.take(10, |_: &str| 0).is_empty());
        assert_eq!(backlog.len(), 8);
        // Room again: a's turn comes first, its order kept.
        assert_eq!(
            backlog.take(3, |_: &str| 10),
            vec![MessageId(1), MessageId(103), MessageId(2)]
        );
    }
}
