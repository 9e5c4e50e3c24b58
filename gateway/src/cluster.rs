//! This process as a node among the nodes sharing a PostgreSQL store: its registration and
//! heartbeat, the leases of singleton jobs, and taking over what dead nodes owned.
//!
//! ```text
//! heartbeat task (every heartbeat_s)          adoption task (every heartbeat_s)
//!   renew the registration ─► lost? stop        owners of unfinished messages or running
//!   renew/take leases (webhooks)                 flows that are not live nodes
//!   read every node (for /readyz, metrics)        └► claim a page ─► resume each ─► next page
//! ```
//!
//! A node that cannot renew its registration within a lease less one heartbeat (every store
//! call of the heartbeat is bounded by a heartbeat), or finds it expired or taken by another
//! process, exits at once (status 75): the other nodes take over its messages once the lease
//! passed, and a node that went on dispatching them, even to drain, would send them twice. On
//! SQLite there is one node: no registration, every lease is held.
//!
//! See `store::postgres::cluster` for the tables and the claims.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// A lease on a singleton job, as this process last saw it.
#[derive(Debug)]
pub(crate) struct Lease {
    name: String,
    /// Held for good (one node: nothing to share).
    always: bool,
    /// Whether this node wants it (tries to take and renew it); a lease no longer wanted is
    /// given up at the next heartbeat.
    wanted: AtomicBool,
    /// Held until then (renewed with the heartbeat); `None`: not held.
    until: Mutex<Option<Instant>>,
}

impl Lease {
    /// A lease a single node always holds.
    pub(crate) fn always(name: &str) -> Arc<Lease> {
        Arc::new(Lease {
            name: name.to_owned(),
            always: true,
            wanted: AtomicBool::new(true),
            until: Mutex::new(None),
        })
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
}

/// The leases this node holds or wants: fixed ones (webhooks) and ones made as needed (a
/// receipt sender per SMPP user).
#[derive(Debug)]
pub(crate) struct Leases {
    /// Several nodes share the store: leases are taken in the database.
    shared: bool,
    all: Mutex<Vec<Arc<Lease>>>,
}

impl Leases {
    /// One node: every lease is always held.
    pub(crate) fn single() -> Arc<Leases> {
        Arc::new(Leases {
            shared: false,
            all: Mutex::new(Vec::new()),
        })
    }

    /// The lease `name` (the same one when asked again), wanted from now on.
    pub(crate) fn lease(&self, name: &str) -> Arc<Lease> {
        if !self.shared {
            return Lease::always(name);
        }
        let mut all = self.all.lock();
        if let Some(l) = all.iter().find(|l| l.name == name) {
            l.want(true);
            return l.clone();
        }
        let lease = Arc::new(Lease {
            name: name.to_owned(),
            always: false,
            wanted: AtomicBool::new(true),
            until: Mutex::new(None),
        });
        all.push(lease.clone());
        lease
    }

    fn snapshot(&self) -> Vec<Arc<Lease>> {
        self.all.lock().clone()
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
            leases: Arc::new(Leases {
                shared: true,
                all: Mutex::new(Vec::new()),
            }),
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
            for l in self.leases.snapshot() {
                self.renew(&l, started).await;
            }
            if let Ok(peers) = self.bounded(self.store.nodes(lease)).await {
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
        let held = if l.wanted.load(Ordering::Relaxed) {
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
