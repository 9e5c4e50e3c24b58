//! The SMPP server for tenants: Switchyard in the SMSC role, so resellers and enterprises bind
//! to it as ESMEs and submit over SMPP what they would otherwise POST.
//!
//! - [`users`]: the tenants' `smpp_users` by system_id, the bind checks, the binds open now.
//! - [`connection`]: one connection's session, submits through the accept pipeline, query_sm,
//!   deliver_sm towards the ESME.
//! - [`convert`]: submit_sm / data_sm → [`crate::submit::Draft`], refusals → command_status.
//! - [`receipts`]: one receipt sender per user, reading the event log from a saved cursor.
//!
//! A submit takes the same path as `POST /v1/messages` (plan, opt-outs, route and quote, rate
//! and quota, one durable commit, hand-over), and its submit_sm_resp carries the Switchyard
//! message id only after the commit. A message longer than one SMS comes in one submit_sm's
//! message_payload (or one data_sm) and goes to carriers in as many segments as it needs;
//! its receipt is one per message, whatever the segments.

pub(crate) mod connection;
pub mod convert;
pub(crate) mod receipts;
pub(crate) mod users;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use switchyard_ops::config::{Config, SmppServerSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::domain::EventWrite;
use crate::store::events::EventStore;
use crate::store::Store;
use crate::submit::Submitter;
use users::{Binds, Users};

/// Everything the server's connections and receipt senders share.
pub(crate) struct Server {
    /// `[smpp_server]`.
    pub(crate) settings: SmppServerSettings,
    /// Who may bind (swapped on reload).
    pub(crate) users: ArcSwap<Users>,
    /// The binds open now.
    pub(crate) binds: Binds,
    /// The accept pipeline.
    pub(crate) submit: Submitter,
    /// Message lookups (query_sm) and cursor writes.
    pub(crate) store: Arc<dyn Store>,
    /// The event log (receipts).
    pub(crate) events: Arc<dyn EventStore>,
    /// What a submit may ask for beyond the tenant's plan.
    pub(crate) limits: convert::Limits,
    /// The users whose receipt sender runs (one per user at most).
    pub(crate) senders: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Leases: on a shared store, one node at a time sends a user's receipts and MO.
    pub(crate) leases: Arc<crate::cluster::Leases>,
    /// Connections open now.
    connections: AtomicUsize,
    /// Connection numbers.
    next_id: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.settings.listen)
            .finish_non_exhaustive()
    }
}

/// The running server: its addresses, and what a reload needs.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    /// The plain TCP listener's address.
    pub(crate) addr: SocketAddr,
    /// The TLS listener's address, if any.
    pub(crate) tls_addr: Option<SocketAddr>,
    server: Arc<Server>,
    shutdown: watch::Receiver<bool>,
}

impl Server {
    fn next_connection_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The binds open now, for the API.
    pub(crate) fn binds(&self) -> &Binds {
        &self.binds
    }
}

/// Starts the server when `[smpp_server]` is configured: receipt senders for every user
/// (each from its saved cursor, or the end of the log for a new user), then the listeners.
pub(crate) async fn start(
    config: &Config,
    base_dir: &std::path::Path,
    submit: Submitter,
    store: Arc<dyn Store>,
    events: Arc<dyn EventStore>,
    leases: Arc<crate::cluster::Leases>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Handle>> {
    let Some(settings) = config.smpp_server.clone() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("smpp_server.listen {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    let tls = match &settings.tls {
        Some(t) => {
            let cert = switchyard_ops::config::Config::resolve(base_dir, &t.cert);
            let key = switchyard_ops::config::Config::resolve(base_dir, &t.key);
            let server_config = crate::tls::server_config(&cert, &key)?;
            let l = TcpListener::bind(t.listen)
                .await
                .map_err(|e| anyhow::anyhow!("smpp_server.tls_listen {}: {e}", t.listen))?;
            Some((l, tokio_rustls::TlsAcceptor::from(Arc::new(server_config))))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let server = Arc::new(Server {
        users: ArcSwap::from_pointee(Users::from_config(config, None, Instant::now())),
        binds: Binds::default(),
        submit,
        store,
        events,
        limits: convert::Limits::default(),
        senders: parking_lot::Mutex::new(std::collections::HashSet::new()),
        leases,
        connections: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        settings,
    });
    let handle = Handle {
        addr,
        tls_addr,
        server: server.clone(),
        shutdown: shutdown.clone(),
    };
    handle.start_senders().await?;
    tokio::spawn(accept_loop(
        server.clone(),
        listener,
        None,
        shutdown.clone(),
    ));
    if let Some((l, acceptor)) = tls {
        tokio::spawn(accept_loop(server.clone(), l, Some(acceptor), shutdown));
    }
    tracing::info!(%addr, tls = ?tls_addr, "SMPP server listening");
    Ok(Some(handle))
}

impl Handle {
    /// The server, for the API's view of its binds.
    pub(crate) fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Applies a new configuration's users: new users may bind at once, removed users and
    /// users whose settings changed are unbound (the changed ones may bind again with the new
    /// settings); the binds of unchanged users stay.
    pub(crate) async fn reload(&self, config: &Config) {
        let old = self.server.users.load_full();
        let next = Users::from_config(config, Some(&old), Instant::now());
        let mut unbind = Vec::new();
        for (system_id, user) in old.iter() {
            let same = next
                .get(system_id)
                .is_some_and(|n| n.tenant == user.tenant && n.config == user.config);
            if !same {
                unbind.push(system_id.clone());
            }
        }
        self.server.users.store(Arc::new(next));
        for system_id in &unbind {
            for (s, bind) in self.server.binds.snapshot() {
                if &s == system_id {
                    let _ = bind.outgoing.try_send(users::Outgoing::Unbind);
                }
            }
        }
        if let Err(e) = self.start_senders().await {
            tracing::warn!("SMPP receipt senders: {e}");
        }
    }

    /// Starts a receipt sender for every user that has none running (all of them at start,
    /// the new ones on reload). A user seen for the first time starts at the end of the log,
    /// saved before any of its binds can submit.
    async fn start_senders(&self) -> anyhow::Result<()> {
        let users = self.server.users.load_full();
        for (system_id, _) in users.iter() {
            if !self.server.senders.lock().insert(system_id.clone()) {
                continue;
            }
            let name = receipts::cursor_name(system_id);
            let cursor = match self.server.events.named_cursor(&name).await? {
                Some(c) => c,
                None => {
                    let end = self.server.events.max_seq().await?;
                    self.server
                        .store
                        .apply(vec![crate::domain::Update::Events(
                            EventWrite::NamedCursor { name, seq: end },
                        )])
                        .await?;
                    end
                }
            };
            tokio::spawn(receipts::run(
                self.server.clone(),
                system_id.clone(),
                cursor,
                self.shutdown.clone(),
            ));
        }
        Ok(())
    }
}

/// Accepts connections until shutdown; beyond `max_connections` a new connection is closed at
/// once.
async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("SMPP accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let open = server.connections.fetch_add(1, Ordering::AcqRel);
        if open >= server.settings.max_connections {
            server.connections.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, "SMPP connection refused: max_connections ({}) open", server.settings.max_connections);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::serve(server.clone(), stream, peer, shutdown).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(server.settings.bind_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(s)) => connection::serve(server.clone(), s, peer, shutdown).await,
                        Ok(Err(e)) => tracing::info!(%peer, "SMPP TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "SMPP TLS handshake timed out"),
                    }
                }
            }
            server.connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
