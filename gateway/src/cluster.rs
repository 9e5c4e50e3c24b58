//! This process as a node among the nodes sharing a PostgreSQL store: its registration and
//! heartbeat, the leases of singleton jobs, and taking over what dead nodes owned.
//!
//! ```text
//! heartbeat task (every heartbeat_s)          adoption task (every heartbeat_s)
//!   renew the registration ─► lost? stop        owners of unfinished messages or running
//!   read every node (for /readyz, metrics)       flows that are not live nodes
//!   plan the pools (bind slots) ─► wanted         └► claim a page ─► resume each ─► next page
//!   renew/take leases wanted, give up the rest
//! ```
//!
//! A pool is a set of interchangeable leases (a carrier's bind slots, `bind:<carrier>:<i>`)
//! shared out between the live nodes: each node wants its fair share, ⌈slots ÷ live nodes⌉,
//! keeping the slots it holds and taking free ones (lowest first), and gives up what exceeds
//! its share once the slot's user (a bind) stopped. So the cluster never holds more slots
//! than the pool has, a node joining gets slots from the others, and a dead node's slots are
//! taken by the survivors within a lease and a heartbeat.
//!
//! A node that cannot renew its registration within a lease less one heartbeat (every store
//! call of the heartbeat is bounded by a heartbeat), or finds it expired or taken by another
//! process, exits at once (status 75): the other nodes take over its messages once the lease
//! passed, and a node that went on dispatching them, even to drain, would send them twice. On
//! SQLite there is one node: no registration, every lease is held.
//!
//! See `store::postgres::cluster` for the tables and the claims.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use switchyard_ops::config::NodeSettings;
use tokio::sync::watch;

use crate::domain::{MessageId, MessageRecord};
use crate::store::postgres::{NodeInfo, PostgresStore, Registration};

/// Messages claimed from a dead node per round trip.
const ADOPT_PAGE: usize = 512;

/// The lease whose holder sends the tenants' webhooks.
pub(crate) const WEBHOOKS: &str = "webhooks";
/// The lease whose holder runs the retention purge.
const RETENTION: &str = "retention";

/// A lease on a singleton job, as this process last saw it.
#[derive(Debug)]
pub(crate) struct Lease {
    name: String,
    /// Held for good (one node: nothing to share).
    always: bool,
    /// Whether this node wants it (tries to take and renew it); a lease no longer wanted is
    /// given up at the next heartbeat once nothing uses it.
    wanted: AtomicBool,
    /// Part of a pool (wanted as the pool's plan says).
    pooled: bool,
    /// Held until then (renewed with the heartbeat); `None`: not held.
    until: Mutex<Option<Instant>>,
    /// For a pooled lease: held by another live node at the last heartbeat.
    elsewhere: AtomicBool,
    /// Held by whoever uses the lease (a bind on a slot): an unwanted lease is renewed until
    /// its user let go, and one user at a time runs in this process.
    user: tokio::sync::Mutex<()>,
}

impl Lease {
    fn new(name: &str, always: bool, wanted: bool, pooled: bool) -> Arc<Lease> {
        Arc::new(Lease {
            name: name.to_owned(),
            always,
            wanted: AtomicBool::new(wanted),
            pooled,
            until: Mutex::new(None),
            elsewhere: AtomicBool::new(false),
            user: tokio::sync::Mutex::new(()),
        })
    }

    /// A lease a single node always holds.
    pub(crate) fn always(name: &str) -> Arc<Lease> {
        Lease::new(name, true, true, false)
    }

    /// Whether this process holds the lease now (with a heartbeat's margin before it expires).
    pub(crate) fn held(&self) -> bool {
        self.always || self.until.lock().is_some_and(|u| Instant::now() < u)
    }

    /// Whether this node should try to hold the lease (say, only while it has someone to
    /// send to).
    pub(crate) fn want(&self, wanted: bool) {
        self.wanted.store(wanted, Ordering::Relaxed);
    }

    /// Held and still wanted: a user may start, or go on.
    pub(crate) fn usable(&self) -> bool {
        self.held() && self.wanted.load(Ordering::Relaxed)
    }

    /// Waits until no other user in this process uses the lease, and marks it used until the
    /// guard drops (the heartbeat keeps renewing it meanwhile, wanted or not).
    pub(crate) async fn use_lease(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.user.lock().await
    }

    /// Another live node held it at the last heartbeat (a bind slot used there).
    pub(crate) fn held_elsewhere(&self) -> bool {
        self.elsewhere.load(Ordering::Relaxed)
    }

    fn in_use(&self) -> bool {
        self.user.try_lock().is_err()
    }
}

/// A set of interchangeable leases, `<prefix>:<i>` for `i` below the pool's size, of which this
/// node wants its fair share (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<Arc<Lease>>,
}

impl Pool {
    /// The lease of slot `i`.
    pub(crate) fn slot(&self, i: usize) -> Arc<Lease> {
        self.slots[i].clone()
    }

    /// Slots this node holds now and keeps (a slot being given up, its bind draining, is not
    /// counted: it takes no new work).
    pub(crate) fn held_here(&self) -> usize {
        self.slots.iter().filter(|l| l.usable()).count()
    }

    /// Slots other live nodes held at the last heartbeat (0 on one node).
    pub(crate) fn held_elsewhere(&self) -> usize {
        self.slots.iter().filter(|l| l.held_elsewhere()).count()
    }
}

/// Which slots of a pool this node wants, given each slot's live holder: the slots it holds,
/// up to its fair share (⌈slots ÷ live nodes⌉, lowest first), then free slots (lowest first)
/// up to that share. Slots beyond the share are given up; a slot another node holds is left
/// to it.
pub(crate) fn plan_pool(holders: &[Option<u8>], me: u8, live: usize) -> Vec<bool> {
    let share = holders.len().div_ceil(live.max(1));
    let mut want = vec![false; holders.len()];
    let mut taken = 0;
    for (i, h) in holders.iter().enumerate() {
        if *h == Some(me) && taken < share {
            want[i] = true;
            taken += 1;
        }
    }
    for (i, h) in holders.iter().enumerate() {
        if h.is_none() && taken < share {
            want[i] = true;
            taken += 1;
        }
    }
    want
}

/// The leases this node holds or wants: fixed ones (webhooks), ones made as needed (a
/// receipt sender per SMPP user) and pools (bind slots).
#[derive(Debug)]
pub(crate) struct Leases {
    /// Several nodes share the store: leases are taken in the database.
    shared: bool,
    all: Mutex<Vec<Arc<Lease>>>,
    /// Pools in use (a pool no longer used is dropped, and its slots are given up).
    pools: Mutex<Vec<Weak<Pool>>>,
}

impl Leases {
    /// One node: every lease is always held.
    pub(crate) fn single() -> Arc<Leases> {
        Arc::new(Leases::new(false))
    }

    fn new(shared: bool) -> Leases {
        Leases {
            shared,
            all: Mutex::new(Vec::new()),
            pools: Mutex::new(Vec::new()),
        }
    }

    /// The lease `name` (the same one when asked again), wanted from now on.
    pub(crate) fn lease(&self, name: &str) -> Arc<Lease> {
        let lease = self.named(name, false);
        lease.want(true);
        lease
    }

    /// The lease `name`, made (not wanted) if it is new.
    fn named(&self, name: &str, pooled: bool) -> Arc<Lease> {
        if !self.shared {
            return Lease::always(name);
        }
        let mut all = self.all.lock();
        if let Some(l) = all.iter().find(|l| l.name == name) {
            return l.clone();
        }
        let lease = Lease::new(name, false, false, pooled);
        all.push(lease.clone());
        lease
    }

    /// A pool of `size` slots named `<prefix>:<i>`: on one node every slot is always held;
    /// on a shared store the heartbeat shares them out (see [`plan_pool`]). Pools of the same
    /// prefix share their leases (a carrier's binds being replaced on reload).
    pub(crate) fn pool(&self, prefix: &str, size: usize) -> Arc<Pool> {
        let slots = (0..size)
            .map(|i| self.named(&format!("{prefix}:{i}"), true))
            .collect();
        let pool = Arc::new(Pool { slots });
        if self.shared {
            let mut pools = self.pools.lock();
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(&pool));
        }
        pool
    }

    fn snapshot(&self) -> Vec<Arc<Lease>> {
        self.all.lock().clone()
    }

    fn live_pools(&self) -> Vec<Arc<Pool>> {
        self.pools.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Sets which pooled leases this node wants from the live holders (`holders`: lease name
    /// → node) and the number of live nodes: each pool's plan; slots of no pool in use are
    /// not wanted.
    fn plan(&self, holders: &[(String, u8)], me: u8, live: usize) {
        let holder = |l: &Lease| holders.iter().find(|(n, _)| *n == l.name).map(|(_, h)| *h);
        let mut wanted: Vec<String> = Vec::new();
        for pool in self.live_pools() {
            let slots: Vec<Option<u8>> = pool.slots.iter().map(|l| holder(l)).collect();
            for (slot, want) in pool.slots.iter().zip(plan_pool(&slots, me, live)) {
                if want {
                    wanted.push(slot.name.clone());
                }
            }
        }
        for l in self.all.lock().iter().filter(|l| l.pooled) {
            l.want(wanted.contains(&l.name));
            l.elsewhere
                .store(holder(l).is_some_and(|h| h != me), Ordering::Relaxed);
        }
    }
}

/// What `/readyz` and `/metrics` say about the node and its peers.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeView {
    /// This node's number.
    pub(crate) node: u8,
    /// The hash of the configuration it runs.
    pub(crate) config: String,
    /// Every registered node, when the store is shared (empty on SQLite).
    pub(crate) peers: Vec<NodeInfo>,
}

impl NodeView {
    /// Live peers running another configuration than this node.
    pub(crate) fn config_mismatch(&self) -> Vec<u8> {
        self.peers
            .iter()
            .filter(|p| p.alive && p.id != self.node && p.config != self.config)
            .map(|p| p.id)
            .collect()
    }
}

/// The node view shared with the API.
pub(crate) type SharedNodeView = Arc<arc_swap::ArcSwap<NodeView>>;

/// The SHA-256 (first 16 hex digits) of the configuration file's bytes, or of the parsed
/// configuration when it came from no file: what nodes compare to notice diverging
/// configurations.
pub(crate) fn config_hash(file: Option<&[u8]>, parsed: &dyn std::fmt::Debug) -> String {
    let digest = match file {
        Some(bytes) => Sha256::digest(bytes),
        None => Sha256::digest(format!("{parsed:?}").as_bytes()),
    };
    hex::encode(&digest[..8])
}

/// Called with each message or flow taken over from a dead node.
pub(crate) trait Adopter: Send + Sync + 'static {
    /// A message now owned by this node: dispatch it.
    fn message(&self, record: MessageRecord) -> BoxFuture<'_, ()>;
    /// A running flow now owned by this node: follow it.
    fn flow(&self, id: MessageId, tenant: String);
}

/// This node's membership of a shared store: the heartbeat runs from [`Membership::join`] on.
pub(crate) struct Membership {
    inner: Arc<Inner>,
    leave: watch::Sender<bool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// What the heartbeat and the adoption share.
struct Inner {
    store: Arc<PostgresStore>,
    me: Registration,
    settings: NodeSettings,
    view: SharedNodeView,
    leases: Arc<Leases>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node", &self.inner.me.node)
            .finish_non_exhaustive()
    }
}

/// Exit status of a node that lost its registration (fenced): a supervisor restarts it, and
/// it registers again.
const FENCED_EXIT: i32 = 75;

impl Membership {
    /// Registers this process (see [`PostgresStore::register_node`]), makes new message ids
    /// carry its number and starts the heartbeat, which reports `config` (the configuration's
    /// hash, changed on reload).
    pub(crate) async fn join(
        store: Arc<PostgresStore>,
        settings: &NodeSettings,
        config: watch::Receiver<String>,
    ) -> anyhow::Result<Membership> {
        let name = format!(
            "{}:{}",
            hostname().unwrap_or_else(|| "unknown".into()),
            std::process::id()
        );
        let hash = config.borrow().clone();
        let me = store
            .register_node(settings.id, &name, &hash, settings.lease)
            .await?;
        MessageId::set_node(me.node);
        tracing::info!(node = me.node, name = %me.name, "registered as a node of the shared store");
        let view = Arc::new(arc_swap::ArcSwap::from_pointee(NodeView {
            node: me.node,
            config: hash,
            peers: Vec::new(),
        }));
        let inner = Arc::new(Inner {
            store,
            me,
            settings: settings.clone(),
            view,
            leases: Arc::new(Leases::new(true)),
        });
        let (leave, leaving) = watch::channel(false);
        let heartbeat = tokio::spawn(inner.clone().heartbeat(config, leaving));
        Ok(Membership {
            inner,
            leave,
            heartbeat,
        })
    }

    /// What the API shows about the nodes.
    pub(crate) fn view(&self) -> SharedNodeView {
        self.inner.view.clone()
    }

    /// The leases this node takes and renews with its heartbeat.
    pub(crate) fn leases(&self) -> Arc<Leases> {
        self.inner.leases.clone()
    }

    /// Starts taking over dead nodes' work (until `shutdown`), once everything it hands work
    /// to runs. The heartbeat goes on until [`Joined::leave`]: the registration must outlive
    /// the drain of what this node still dispatches.
    pub(crate) fn start(
        self,
        adopter: Arc<dyn Adopter>,
        shutdown: watch::Receiver<bool>,
    ) -> Joined {
        tokio::spawn(self.inner.clone().adopt(adopter, shutdown));
        Joined {
            inner: self.inner,
            leave: self.leave,
            task: self.heartbeat,
        }
    }
}

impl Inner {
    /// A store call bounded by one heartbeat: a hung connection must not hold the heartbeat
    /// past the lease.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.settings.heartbeat, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.settings.heartbeat)),
        }
    }

    async fn heartbeat(
        self: Arc<Self>,
        config: watch::Receiver<String>,
        mut leaving: watch::Receiver<bool>,
    ) {
        let every = self.settings.heartbeat;
        let lease = self.settings.lease;
        let retention = self.leases.lease(RETENTION);
        self.store.set_purging(false);
        // The others may take over this node's messages `lease` after its last renewal (by
        // the database's clock, which is later than when the renewal was sent): stop a
        // heartbeat before that.
        let fence_after = lease.saturating_sub(every);
        let mut renewed = Instant::now();
        loop {
            let started = Instant::now();
            let hash = config.borrow().clone();
            match self
                .bounded(self.store.heartbeat(&self.me, &hash, lease))
                .await
            {
                Ok(true) => renewed = started,
                Ok(false) => {
                    self.fence("its registration expired or another process holds its number")
                }
                Err(e) => {
                    tracing::warn!(
                        node = self.me.node,
                        "renewing the node's registration failed: {e}"
                    );
                }
            }
            if renewed.elapsed() >= fence_after {
                self.fence("its registration could not be renewed in time");
            }
            let peers = self.bounded(self.store.nodes(lease)).await;
            if let Ok(peers) = &peers {
                // The pools are planned on what the database says now; on an error the last
                // plan stands.
                let live = peers.iter().filter(|p| p.alive).count();
                match self.bounded(self.store.live_leases()).await {
                    Ok(holders) => self.leases.plan(&holders, self.me.node, live),
                    Err(e) => tracing::warn!("reading the leases failed: {e}"),
                }
            }
            for l in self.leases.snapshot() {
                self.renew(&l, started).await;
            }
            self.store.set_purging(retention.held());
            if let Ok(peers) = peers {
                let alive = peers.iter().filter(|p| p.alive).count();
                metrics::gauge!("switchyard_nodes", "state" => "alive").set(alive as f64);
                metrics::gauge!("switchyard_nodes", "state" => "dead")
                    .set((peers.len() - alive) as f64);
                let view = NodeView {
                    node: self.me.node,
                    config: hash,
                    peers,
                };
                metrics::gauge!("switchyard_config_mismatched_nodes")
                    .set(view.config_mismatch().len() as f64);
                self.view.store(Arc::new(view));
            }
            tokio::select! {
                _ = tokio::time::sleep(every.saturating_sub(started.elapsed())) => {}
                _ = leaving.wait_for(|s| *s) => break,
            }
        }
        for l in self.leases.snapshot() {
            *l.until.lock() = None;
            let _ = self
                .bounded(self.store.release_lease(&l.name, &self.me))
                .await;
        }
    }

    /// Takes or renews `l` when wanted (from `started` on), gives it up when not.
    async fn renew(&self, l: &Lease, started: Instant) {
        let lease = self.settings.lease;
        let was = l.held();
        // A lease still in use is kept until its user let go (a bind drains its window).
        let held = if l.wanted.load(Ordering::Relaxed) || (was && l.in_use()) {
            match self
                .bounded(self.store.lease(&l.name, &self.me, lease))
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(lease = %l.name, "renewing a lease failed: {e}");
                    return;
                }
            }
        } else {
            if was {
                *l.until.lock() = None;
                if let Err(e) = self
                    .bounded(self.store.release_lease(&l.name, &self.me))
                    .await
                {
                    tracing::warn!(lease = %l.name, "giving up a lease failed: {e}");
                }
            }
            false
        };
        *l.until.lock() = held.then(|| started + lease.saturating_sub(self.settings.heartbeat));
        if held != was {
            tracing::info!(node = self.me.node, lease = %l.name, held, "lease changed hands");
        }
        metrics::gauge!("switchyard_node_lease_held", "lease" => l.name.clone())
            .set(f64::from(u8::from(held)));
    }

    /// Stops the process at once: other nodes take (or may already have taken) over this
    /// node's messages, and a graceful drain would go on sending them. What was in flight is
    /// unfinished in the store and is sent again by whoever owns it (at least once).
    fn fence(&self, why: &str) -> ! {
        tracing::error!(node = self.me.node, "stopping at once: {why}");
        eprintln!("switchyard: node {} fenced: {why}", self.me.node);
        std::process::exit(FENCED_EXIT);
    }

    /// Takes over what dead nodes owned, page by page, until shutdown.
    async fn adopt(
        self: Arc<Self>,
        adopter: Arc<dyn Adopter>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            match self
                .bounded(self.store.orphan_owners(self.settings.lease))
                .await
            {
                Ok(owners) => {
                    for dead in owners.into_iter().filter(|d| *d != self.me.node) {
                        if *shutdown.borrow() {
                            return;
                        }
                        self.adopt_from(dead, adopter.as_ref(), &shutdown).await;
                    }
                }
                Err(e) => tracing::warn!("looking for a dead node's work failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.heartbeat) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    async fn adopt_from(&self, dead: u8, adopter: &dyn Adopter, shutdown: &watch::Receiver<bool>) {
        let lease = self.settings.lease;
        match self.store.adopt_flows(&self.me, dead, lease).await {
            Ok(flows) => {
                if !flows.is_empty() {
                    tracing::info!(
                        node = self.me.node,
                        dead,
                        flows = flows.len(),
                        "took over a dead node's flows"
                    );
                }
                for (id, tenant) in flows {
                    adopter.flow(id, tenant);
                }
            }
            Err(e) => tracing::warn!(dead, "taking over a dead node's flows failed: {e}"),
        }
        let mut total = 0usize;
        while !*shutdown.borrow() {
            let page = match self
                .store
                .adopt_messages(&self.me, dead, lease, ADOPT_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(dead, "taking over a dead node's messages failed: {e}");
                    break;
                }
            };
            if page.is_empty() {
                break;
            }
            total += page.len();
            for record in page {
                adopter.message(record).await;
            }
        }
        if total > 0 {
            metrics::counter!("switchyard_node_adopted_messages_total").increment(total as u64);
            tracing::info!(
                node = self.me.node,
                dead,
                messages = total,
                "took over a dead node's messages"
            );
        }
    }
}

/// A running membership, until [`Joined::leave`].
pub(crate) struct Joined {
    inner: Arc<Inner>,
    leave: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Joined {
    /// Stops the heartbeat, gives up the leases and removes the registration, so other
    /// nodes take over what this node still owns at once. Called last before the store
    /// closes, once nothing is dispatched any more.
    pub(crate) async fn leave(self) {
        let _ = self.leave.send(true);
        let _ = self.task.await;
        let m = &self.inner;
        if let Err(e) = m.store.unregister(&m.me).await {
            tracing::warn!(
                node = m.me.node,
                "removing the node's registration failed: {e}"
            );
        }
    }
}

/// The machine's host name, if it has one.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the heartbeats of `nodes` (in this order each round) over a pool of `size` slots
    /// until nothing changes: each node plans on the holders it reads, then takes the free
    /// slots it wants and gives up the others. Returns the holders.
    fn settle(size: usize, nodes: &[u8], mut holders: Vec<Option<u8>>) -> Vec<Option<u8>> {
        for _ in 0..10 {
            let before = holders.clone();
            for &me in nodes {
                let want = plan_pool(&holders, me, nodes.len());
                for (h, w) in holders.iter_mut().zip(want) {
                    match (*h, w) {
                        (None, true) => *h = Some(me),
                        (Some(x), false) if x == me => *h = None,
                        _ => {}
                    }
                }
            }
            if holders == before {
                return holders;
            }
        }
        panic!("no steady state for {size} slots over {nodes:?}: {holders:?}");
    }

    fn count(holders: &[Option<u8>], node: u8) -> usize {
        holders.iter().filter(|h| **h == Some(node)).count()
    }

    #[test]
    fn a_lone_node_takes_every_slot() {
        assert_eq!(plan_pool(&[None, None, None], 1, 1), vec![true; 3]);
        assert_eq!(settle(3, &[1], vec![None; 3]), vec![Some(1); 3]);
    }

    #[test]
    fn a_node_joining_gets_slots_given_up_by_the_others() {
        let alone = settle(4, &[1], vec![None; 4]);
        // The share of two nodes is two: node 1 keeps its lowest two.
        assert_eq!(plan_pool(&alone, 1, 2), vec![true, true, false, false]);
        assert_eq!(
            plan_pool(&alone, 2, 2),
            vec![false; 4],
            "nothing is free yet"
        );
        let two = settle(4, &[1, 2], alone);
        assert_eq!(two, vec![Some(1), Some(1), Some(2), Some(2)]);
        // A third node: ⌈4/3⌉ = 2, so the others keep theirs and it waits for a free slot.
        let three = settle(4, &[1, 2, 3], two.clone());
        assert_eq!(three, two);
    }

    #[test]
    fn the_survivors_take_a_dead_nodes_slots() {
        // Of 1, 2 and 3 holding [1, 2, 3, 1, 2], node 3 died: its lease ran out, so its slot
        // reads free, and two nodes are live (share 3).
        let free = vec![Some(1), Some(2), None, Some(1), Some(2)];
        let after = settle(5, &[1, 2], free);
        assert_eq!(after, vec![Some(1), Some(2), Some(1), Some(1), Some(2)]);
        assert!(count(&after, 1) <= 3 && count(&after, 2) <= 3);
    }

    #[test]
    fn more_nodes_than_slots_leave_some_nodes_without() {
        let after = settle(2, &[1, 2, 3], vec![None; 2]);
        assert_eq!(after, vec![Some(1), Some(2)]);
        // Never more holders than slots, whatever each node believes about the others.
        assert_eq!(plan_pool(&after, 3, 3), vec![false, false]);
        assert_eq!(
            plan_pool(&after, 3, 1),
            vec![false, false],
            "held slots are not taken"
        );
    }

    #[test]
    fn pooled_leases_follow_the_plan_and_single_nodes_hold_every_slot() {
        let single = Leases::single();
        let pool = single.pool("bind:alpha", 3);
        assert_eq!(pool.held_here(), 3);
        assert_eq!(pool.held_elsewhere(), 0);

        let shared = Leases::new(true);
        let pool = shared.pool("bind:alpha", 2);
        assert_eq!(pool.held_here(), 0, "taken by the heartbeat only");
        shared.plan(&[("bind:alpha:0".into(), 7)], 1, 2);
        assert!(!pool.slot(0).wanted.load(Ordering::Relaxed));
        assert!(pool.slot(1).wanted.load(Ordering::Relaxed));
        assert_eq!(pool.held_elsewhere(), 1);
        // The same names from a replacing pool are the same leases.
        let again = shared.pool("bind:alpha", 1);
        assert!(Arc::ptr_eq(&again.slot(0), &pool.slot(0)));
        // Once no pool uses a slot, it is not wanted any more.
        drop((pool, again));
        shared.plan(&[], 1, 2);
        assert!(shared
            .snapshot()
            .iter()
            .all(|l| !l.wanted.load(Ordering::Relaxed)));
    }
}
