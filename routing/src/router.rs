//! The shared handle: the current table behind an `ArcSwap`, rebuilt off the hot path and
//! swapped atomically, so lookups never wait for a reload.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};

use crate::config::RoutingConfig;
use crate::deck::UnixTime;
use crate::table::{BuildError, RoutingTable};

/// The current routing table, shared by every task.
///
/// `load()` is lock-free and allocation-free; `rebuild()` builds the next generation on the
/// caller's thread (carrying live carrier health over) and publishes it with one atomic store.
/// Lookups already holding the old table finish on it.
#[derive(Debug)]
pub struct Router {
    /// The table in service.
    current: ArcSwap<RoutingTable>,
    /// Serialises rebuilds so generations increase by exactly one; never taken by lookups.
    rebuilding: Mutex<()>,
}

impl Router {
    /// Serves `table`.
    pub fn new(table: RoutingTable) -> Self {
        Self {
            current: ArcSwap::from_pointee(table),
            rebuilding: Mutex::new(()),
        }
    }

    /// Builds the first table and serves it.
    pub fn build(
        config: Arc<RoutingConfig>,
        unix_now: UnixTime,
        now: Instant,
    ) -> Result<Self, BuildError> {
        RoutingTable::build(config, unix_now, now, None).map(Self::new)
    }

    /// The table in service, for a lookup or a batch of them.
    pub fn load(&self) -> Guard<Arc<RoutingTable>> {
        self.current.load()
    }

    /// The table in service as an owned `Arc` (for holding across `await`s).
    pub fn load_full(&self) -> Arc<RoutingTable> {
        self.current.load_full()
    }

    /// Generation of the table in service.
    pub fn generation(&self) -> u64 {
        self.current.load().generation()
    }

    /// Builds a new table from `config` and swaps it in. On error the old table stays in
    /// service. Returns the new generation.
    pub fn rebuild(
        &self,
        config: Arc<RoutingConfig>,
        unix_now: UnixTime,
        now: Instant,
    ) -> Result<u64, BuildError> {
        let _serial = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = self.current.load_full();
        let next = RoutingTable::build(config, unix_now, now, Some(&previous))?;
        let generation = next.generation();
        self.current.store(Arc::new(next));
        Ok(generation)
    }

    /// Rebuilds from the current configuration if a future-dated rate has taken effect by
    /// `unix_now`. Returns the new generation if it rebuilt.
    pub fn refresh_rates(
        &self,
        unix_now: UnixTime,
        now: Instant,
    ) -> Result<Option<u64>, BuildError> {
        let current = self.current.load_full();
        match current.next_change() {
            Some(at) if at <= unix_now => self
                .rebuild(Arc::clone(current.config()), unix_now, now)
                .map(Some),
            _ => Ok(None),
        }
    }
}
