//! Assembling and running the gateway: config → store → routing → dispatcher → binds → API,
//! recovery after a crash, reload on SIGHUP, graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use switchyard_ops::config::{self, Config, SmppEndpoint};
use switchyard_routing::{Router, RoutingTable};
use tokio::sync::watch;

use crate::admission::limits::TenantLimiter;
use crate::admission::optout::OptOuts;
use crate::api::idempotency::Idempotency;
use crate::api::{self, AppState, Authenticator};
use crate::dispatch::{Dispatcher, Job};
use crate::domain::MessageId;
use crate::domain::{Directory, SharedDirectory};
use crate::events::pump::Hub;
use crate::events::webhook::Webhooks;
use crate::smpp::bind::BindContext;
use crate::smpp::supervisor::Binds;
use crate::store::events::EventStore;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;
use crate::updates::UpdateSink;

/// Tenants' API keys from the configuration.
struct ConfigKeys(Arc<Config>);

impl Authenticator for ConfigKeys {
    fn tenant(&self, key: &str) -> Option<Arc<str>> {
        self.0.find_tenant(key).map(|t| Arc::from(t.name.as_str()))
    }

    fn authenticate(&self, key: &str) -> Option<(Arc<str>, api::Scopes)> {
        self.0
            .find_key(key)
            .map(|(t, scopes)| (Arc::from(t.name.as_str()), scopes))
    }

    fn is_operator(&self, key: &str) -> bool {
        self.0.is_operator_key(key)
    }

    fn authenticate_hash(&self, hash: &config::ApiKeyHash) -> Option<(Arc<str>, api::Scopes)> {
        self.0
            .find_key_hash(hash)
            .map(|(t, scopes)| (Arc::from(t.name.as_str()), scopes))
    }

    fn is_operator_hash(&self, hash: &config::ApiKeyHash) -> bool {
        self.0.is_operator_key_hash(hash)
    }

    fn config(&self) -> Option<Arc<Config>> {
        Some(self.0.clone())
    }
}

/// A running gateway's handles (for tests and the binary).
#[derive(Debug)]
pub struct Running {
    /// Where the API listens.
    pub api: SocketAddr,
    /// Where `/metrics` and `/readyz` are served, when `server.ops_listen` is set.
    pub ops: Option<SocketAddr>,
    /// Where the sandbox SMSC listens, if it runs.
    pub sandbox: Option<SocketAddr>,
    /// Where the SIP proxy listens (UDP), if `[sip]` is configured.
    pub sip: Option<SocketAddr>,
    /// The SMPP server's plain TCP address for tenants' binds, if `[smpp_server]` is set.
    pub smpp: Option<SocketAddr>,
    /// The SMPP server's TLS address, if `smpp_server.tls_listen` is set.
    pub smpp_tls: Option<SocketAddr>,
    /// Where notification calls are placed from (UDP), if a voice carrier has a trunk.
    pub voice: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until the gateway stops (after a signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }

    /// Asks the gateway to stop (as SIGTERM does) and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("gateway task panicked")?
    }
}

/// Builds the routing table from the configuration.
fn build_table(
    config: &Config,
    base_dir: &Path,
    previous: Option<&RoutingTable>,
) -> anyhow::Result<RoutingTable> {
    let routing = config
        .routing_config(base_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    RoutingTable::build(Arc::new(routing), unix_now, Instant::now(), previous)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Starts the gateway with `config` (files relative to `base_dir`). Returns once the API
/// listens; the gateway runs until [`Running::stop`] or a signal.
///
/// In order: the metrics recorder, the sandbox SMSC if a carrier uses it, the store, routing and the dispatcher,
/// tenant limits and the accept pipeline, events, the SIP proxy and voice calls, the binds
/// (after the held MO parts are back), crash recovery, then the API.
pub async fn start(
    config: Config,
    base_dir: PathBuf,
    config_path: Option<PathBuf>,
) -> anyhow::Result<Running> {
    // First: components keep metric handles (a bind its response histogram, a server
    // connection its counters), and a handle taken before the recorder exists records nowhere.
    let metrics = crate::api::ops::metrics_recorder();
    let config = Arc::new(config);
    let uses_sandbox = config.carriers.iter().any(|c| {
        c.smpp
            .as_ref()
            .is_some_and(|s| matches!(s.endpoint, SmppEndpoint::Sandbox))
    });
    let sandbox = if uses_sandbox {
        Some(crate::sandbox::start().await?)
    } else {
        None
    };

    // The phone-number metadata loads while the store opens, not on the first request.
    let numbers = tokio::task::spawn_blocking(crate::number::warm);
    let (opened, last_id) = open_store(&config, &base_dir).await?;
    let (store, event_store) = opened.traits();
    let config_file = config_path.as_ref().and_then(|p| std::fs::read(p).ok());
    let config_hash = crate::cluster::config_hash(config_file.as_deref(), &*config);
    let (config_hash_tx, config_hash_rx) = watch::channel(config_hash.clone());
    // The heartbeat starts with the registration (before anything this node dispatches).
    let membership = match &opened {
        OpenedStore::Postgres(pg) => Some(
            crate::cluster::Membership::join(pg.clone(), &config.node, config_hash_rx)
                .await
                .context("joining the nodes of the shared store")?,
        ),
        OpenedStore::Sqlite(_) => {
            MessageId::set_node(config.node.id.unwrap_or(0));
            None
        }
    };
    let node_view = match &membership {
        Some(m) => m.view(),
        None => Arc::new(ArcSwap::from_pointee(crate::cluster::NodeView {
            node: config.node.id.unwrap_or(0),
            config: config_hash,
            ..Default::default()
        })),
    };
    let leases = match &membership {
        Some(m) => m.leases(),
        None => crate::cluster::Leases::single(),
    };
    let webhook_lease = leases.lease(crate::cluster::WEBHOOKS);
    // Where this node starts following the others' opt-out changes: read before the list,
    // so a change committed in between is read again, never missed.
    let opt_outs_from = event_store.opt_out_changes_end().await?;
    let opt_outs = Arc::new(OptOuts::load(event_store.all_opt_outs().await?));
    let directory: SharedDirectory =
        Arc::new(ArcSwap::from_pointee(Directory::from_config(&config)));

    let router = Arc::new(Router::new(build_table(&config, &base_dir, None)?));
    // Status changes feed the flows (one message over several channels).
    let (applied_tx, applied_rx) = tokio::sync::mpsc::unbounded_channel();
    let (updates, updates_task) =
        UpdateSink::start(store.clone(), 65_536, Some(applied_tx.clone()));
    let carriers: Vec<String> = config.carriers.iter().map(|c| c.name.clone()).collect();
    let dispatcher = Arc::new(Dispatcher::new(
        router.clone(),
        &carriers,
        &config.queues,
        updates.clone(),
    ));
    dispatcher.set_weights(&config);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(
        dispatcher
            .clone()
            .run_scheduler(store.clone(), shutdown_rx.clone()),
    );
    if let OpenedStore::Postgres(_) = &opened {
        tokio::spawn(crate::admission::optout::follow(
            opt_outs.clone(),
            event_store.clone(),
            opt_outs_from,
            shutdown_rx.clone(),
        ));
    }
    let windows = Arc::new(crate::admission::windows::Windows::load(
        directory.clone(),
        event_store
            .recent_chat_inbound(crate::domain::now_ms() - crate::admission::windows::WINDOW_MS)
            .await
            .context("reading the last day's chat inbound messages (messaging windows)")?,
    ));
    let tenant_limits = Arc::new(TenantLimiter::new(&config));
    tenant_limits
        .seed(store.as_ref(), crate::domain::now_ms())
        .await
        .context("counting messages for the tenants' quotas")?;
    // The accept pipeline; calls join it once the voice engine runs (keyword replies are SMS).
    let submit = crate::submit::Submitter::new(
        store.clone(),
        dispatcher.clone(),
        tenant_limits.clone(),
        opt_outs.clone(),
        None,
    )
    .with_windows(Some(windows.clone()))
    .with_shared_store(matches!(opened, OpenedStore::Postgres(_)))
    .with_applied(applied_tx.clone());
    let replies =
        crate::inbound::KeywordReplies::new(&config.inbound, directory.clone(), submit.clone());
    let ctx = BindContext {
        dispatcher: dispatcher.clone(),
        updates: updates.clone(),
        shutdown: shutdown_rx.clone(),
        drain_timeout: config.server.shutdown_timeout,
        inbound: crate::inbound::Inbound {
            directory: directory.clone(),
            opt_outs: opt_outs.clone(),
            replies: Some(Arc::new(replies)),
        },
        mo_reassembly: crate::smpp::mo::reassembly_config(
            config.inbound.reassembly_max_bytes,
            config.inbound.reassembly_timeout,
        ),
        shared_store: match &opened {
            OpenedStore::Postgres(_) => Some(crate::smpp::bind::SharedStore(store.clone())),
            OpenedStore::Sqlite(_) => None,
        },
    };
    let egress = Arc::new(config.egress.clone());
    let webhooks = Arc::new(
        Webhooks::new(
            webhook_settings(&config, &base_dir),
            egress.clone(),
            directory.clone(),
            store.clone(),
            event_store.clone(),
        )
        .context("webhooks: TLS client")?,
    );
    let smpp_server = crate::smpp_server::start(
        &config,
        &base_dir,
        submit.clone(),
        store.clone(),
        event_store.clone(),
        leases.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    let opt_outs_for_api = opt_outs.clone();
    let hub = Hub::new(
        store.clone(),
        event_store,
        directory.clone(),
        opt_outs,
        webhooks,
        config.sse.clone(),
    );
    let hub = Arc::new(match &opened {
        // Status changes other nodes apply reach this node's flows, and the chat inbound
        // messages they store its messaging windows, through the log.
        OpenedStore::Postgres(_) => hub.with_follow(applied_tx.clone(), windows.clone()),
        OpenedStore::Sqlite(_) => hub,
    });
    let event_tasks = hub.start(webhook_lease, shutdown_rx.clone()).await?;
    // Live nodes sharing the store (one on SQLite): the SIP limits are split over them.
    let live_nodes = Arc::new(std::sync::atomic::AtomicU32::new(1));
    let sip = crate::sip::transport::start(
        &config,
        &base_dir,
        router.clone(),
        store.clone(),
        live_nodes.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    let voice = start_voice(&config, &base_dir, &router, &updates, &shutdown_rx).await?;
    let email = crate::email::start(
        &config,
        &base_dir,
        router.clone(),
        updates.clone(),
        shutdown_rx.clone(),
    )?;
    let chat = crate::chat::start(
        &config,
        &base_dir,
        &directory,
        router.clone(),
        updates.clone(),
        shutdown_rx.clone(),
    )?;
    // On a shared store, messages for carriers bound on other nodes go to them.
    let relay = match &opened {
        OpenedStore::Postgres(pg) => Some(crate::dispatch::relay::Relay::start(
            pg.clone(),
            node_view.load().node,
            dispatcher.clone(),
            shutdown_rx.clone(),
        )),
        OpenedStore::Sqlite(_) => None,
    };
    let binds = Arc::new(Binds::new(ctx.clone(), leases.clone(), relay));
    restore_mo_parts(store.as_ref(), &binds, &updates, &config).await?;
    binds.apply(&config, sandbox, &base_dir)?;

    // Crash recovery: what was accepted but not handed over for good goes out again, read
    // page by page as the carrier queues take it (see `recover`).
    let resume = Arc::new(Resume {
        dispatcher: dispatcher.clone(),
        voice: voice.as_ref().map(|(v, _)| v.clone()),
        email: email.clone(),
        chat: chat.clone(),
        flows: std::sync::OnceLock::new(),
        shutdown: shutdown_rx.clone(),
    });
    if let Some(until) = last_id {
        tokio::spawn(recover(
            store.clone(),
            resume.clone(),
            until,
            shutdown_rx.clone(),
        ));
    }

    if let Some(handle) = metrics.clone() {
        tokio::spawn(crate::api::ops::metrics_upkeep(handle, shutdown_rx.clone()));
    }
    let auth: Box<dyn Authenticator> = Box::new(ConfigKeys(config.clone()));
    let limits = api::validate::Limits {
        max_call_s: u32::try_from(config.voice.max_duration.as_secs()).unwrap_or(u32::MAX),
        egress,
        ..api::validate::Limits::default()
    };
    let submit = submit
        .with_calls(
            voice
                .as_ref()
                .map(|(v, _)| v.clone() as Arc<crate::submit::CallPlacer>),
        )
        .with_mail(Some(email.clone() as Arc<crate::submit::Mailer>))
        .with_chat(Some(chat.clone() as Arc<crate::submit::ChatSender>));
    let flows = crate::flows::Flows::start(
        store.clone(),
        submit.clone(),
        api::flows::builder(limits.clone()),
        updates.clone(),
        Some(revoke_superseded(
            chat.clone(),
            store.clone(),
            updates.clone(),
        )),
        applied_rx,
        shutdown_rx.clone(),
    );
    let _ = resume.flows.set(flows.clone());
    // Taking over dead nodes' work starts once everything it hands work to runs.
    let joined = membership.map(|m| m.start(resume.clone(), shutdown_rx.clone()));
    if joined.is_some() {
        tokio::spawn(share_limits(
            node_view.clone(),
            tenant_limits.clone(),
            live_nodes,
            store.clone(),
            config.node.heartbeat,
            shutdown_rx.clone(),
        ));
    }
    let state = AppState::new(api::AppParts {
        auth: Arc::new(ArcSwap::from_pointee(auth)),
        store,
        dispatcher: dispatcher.clone(),
        binds: binds.table(),
        metrics,
        limits,
        tenant_limits,
        idempotency: Arc::new(Idempotency::default()),
        events: hub,
        submit,
        smpp: smpp_server.as_ref().map(|h| h.server().clone()),
        flows,
        chat: chat.clone(),
        updates: updates.clone(),
        inbound: crate::inbound::Inbound {
            directory: directory.clone(),
            opt_outs: opt_outs_for_api,
            replies: None,
        },
        windows,
        node: node_view,
    });
    numbers.await.context("loading the phone-number metadata")?;
    let dashboard = crate::ui::router(state.clone(), config.server.tls.is_some());
    let http = api::listener::start(
        &config.server,
        &base_dir,
        state.clone(),
        dashboard,
        &shutdown_rx,
    )
    .await?;
    let (api_addr, ops_addr) = (http.api, http.ops);
    let sip_addr = sip.as_ref().map(|h| h.addr);
    let smpp_addr = smpp_server.as_ref().map(|h| h.addr);
    let smpp_tls_addr = smpp_server.as_ref().and_then(|h| h.tls_addr);
    let voice_addr = voice.as_ref().map(|(_, a)| *a);
    let task = tokio::spawn(run(Parts {
        reloader: Reloader {
            state,
            binds: binds.clone(),
            sandbox,
            base_dir,
            config_path,
            sip: sip.as_ref().map(|h| h.reload.clone()),
            smpp_server: smpp_server.clone(),
            email,
            chat,
            config_hash: config_hash_tx,
        },
        shutdown: shutdown_tx.clone(),
        config,
        http,
        binds,
        event_tasks,
        held: (ctx, dispatcher, updates),
        voice: voice.map(|(v, _)| v),
        updates_task,
        sip_task: sip.map(|h| h.task),
        joined,
        opened,
    }));
    Ok(Running {
        api: api_addr,
        ops: ops_addr,
        sandbox,
        sip: sip_addr,
        smpp: smpp_addr,
        smpp_tls: smpp_tls_addr,
        voice: voice_addr,
        shutdown: shutdown_tx,
        task,
    })
}

/// The store the gateway runs on, by backend (what `run` closes when it stops).
enum OpenedStore {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// A PostgreSQL database.
    Postgres(Arc<crate::store::postgres::PostgresStore>),
}

impl OpenedStore {
    /// The store as the gateway's parts use it.
    fn traits(&self) -> (Arc<dyn Store>, Arc<dyn EventStore>) {
        match self {
            OpenedStore::Sqlite(s) => (s.clone(), s.clone()),
            OpenedStore::Postgres(s) => (s.clone(), s.clone()),
        }
    }

    /// Waits until every acknowledged write is durable, then closes.
    async fn close(&self) -> Result<(), crate::store::StoreError> {
        match self {
            OpenedStore::Sqlite(s) => s.close().await,
            OpenedStore::Postgres(s) => s.close().await,
        }
    }
}

/// Opens the configured store (SQLite: creating its folder; PostgreSQL: creating or migrating
/// the schema), and makes new message ids sort after the highest stored; returns that id too
/// (where crash recovery stops).
async fn open_store(
    config: &Config,
    base_dir: &Path,
) -> anyhow::Result<(OpenedStore, Option<MessageId>)> {
    let retention = crate::store::sqlite::Retention::from_settings(&config.retention);
    let opened = match (&config.store.kind, &config.store.url) {
        (config::StoreKind::Postgres, Some(url)) => {
            let options = crate::store::postgres::PostgresOptions {
                pool_size: config.store.pool_size as usize,
                tls_ca: config
                    .store
                    .tls_ca
                    .as_ref()
                    .map(|ca| Config::resolve(base_dir, ca)),
                fsync: config.store.durability == config::Durability::Fsync,
                retention,
                ..Default::default()
            };
            let store = crate::store::postgres::PostgresStore::open(url.expose(), options)
                .await
                .context("opening the PostgreSQL store")?;
            OpenedStore::Postgres(Arc::new(store))
        }
        _ => {
            let db = config.sqlite_path();
            let db = if db.is_relative() {
                base_dir.join(db)
            } else {
                db
            };
            if let Some(dir) = db.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let options = SqliteOptions {
                linger: config.store.group_commit_linger,
                retention,
                fsync: config.store.durability == config::Durability::Fsync,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(&db, options)
                .with_context(|| format!("opening the store at {}", db.display()))?;
            OpenedStore::Sqlite(Arc::new(store))
        }
    };
    let last_id = opened.traits().0.max_id().await?;
    if let Some(max) = last_id {
        MessageId::generate_after(max);
    }
    Ok((opened, last_id))
}

/// What the flows call for an RCS delivery a later step superseded: withdrawn while the chat
/// engine still has it (`cancelled`: it never reaches the platform; recalled if the agent takes
/// it meanwhile); withdrawn through the store while another node has it (the same outcome,
/// judged in the store: see [`crate::domain::Update::Withdraw`]); else revoked through the
/// agent that sent it when it is `sent` (revoked, it becomes `expired`; too late, its delivery
/// is reported when the event comes, as a late success).
fn revoke_superseded(
    chat: Arc<crate::chat::Chat>,
    store: Arc<dyn Store>,
    updates: UpdateSink,
) -> Arc<crate::flows::Supersede> {
    Arc::new(move |tenant: Arc<str>, id: MessageId| {
        let (chat, store, updates) = (chat.clone(), store.clone(), updates.clone());
        Box::pin(async move {
            match chat.withdraw(id, crate::chat::WITHDRAWN).await {
                crate::handoff::Withdrawal::Cancelled => {
                    metrics::counter!("switchyard_rcs_revokes_total", "outcome" => "withdrawn")
                        .increment(1);
                    return;
                }
                // The engine recalls it if the agent takes it.
                crate::handoff::Withdrawal::InFlight => return,
                crate::handoff::Withdrawal::NotHere => {}
            }
            // Not this engine's: still waiting for its first attempt, or with another node's
            // engine. The store decides. This engine may also have just handed it over: its
            // `sent` is queued on this sink before the withdrawal, which then finds it `sent`.
            let withdraw = crate::domain::Update::Withdraw {
                id,
                at: crate::domain::now_ms(),
                detail: crate::chat::WITHDRAWN.to_owned(),
            };
            match updates.send_durable(withdraw).await.await {
                Ok(Ok(crate::domain::Applied::Moved { .. })) => {
                    metrics::counter!("switchyard_rcs_revokes_total", "outcome" => "withdrawn")
                        .increment(1);
                    return;
                }
                // An attempt of the node that has it started: that node cancels it before its
                // next attempt, or recalls it if the agent takes it.
                Ok(Ok(crate::domain::Applied::Withdrawing(_))) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(message = %id, "withdrawing a superseded RCS message: {e}");
                    return;
                }
                Err(_) => return,
            }
            let record = match store.get(&tenant, id).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(message = %id, "revoking a superseded RCS message: {e}");
                    return;
                }
            };
            // Not sent: it ended already.
            if record.status != crate::domain::Status::Sent {
                return;
            }
            let carrier = record
                .segment_states
                .iter()
                .find_map(|s| s.carrier.clone())
                .or(record.message.carrier.clone());
            let Some(carrier) = carrier else { return };
            let revoked = chat
                .carriers()
                .revoke_superseded(&carrier, &record.message.to, id)
                .await;
            if let Some((status, detail)) = revoked {
                let update = crate::domain::Update::Status {
                    id,
                    status,
                    at: crate::domain::now_ms(),
                    detail: Some(detail),
                };
                drop(updates.send_durable(update).await);
            }
        })
    })
}

/// `[webhooks]` with its CA file resolved against `base_dir`.
fn webhook_settings(config: &Config, base_dir: &Path) -> config::WebhookSettings {
    let mut settings = config.webhooks.clone();
    settings.tls_ca = settings.tls_ca.map(|ca| Config::resolve(base_dir, &ca));
    settings
}

/// The notification-call engine and its SIP address, when a voice carrier has a trunk. An
/// explicit `[voice] listen` that cannot be bound is a configuration error; a trunk without a
/// route must not keep SMS from running (logged, voice disabled).
async fn start_voice(
    config: &Config,
    base_dir: &Path,
    router: &Arc<Router>,
    updates: &UpdateSink,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Option<(Arc<crate::voice::Voice>, SocketAddr)>> {
    match crate::voice::Voice::start(
        config,
        base_dir,
        router.clone(),
        updates.clone(),
        shutdown.clone(),
    )
    .await
    {
        Ok(v) => Ok(v),
        Err(e) if config.voice.listen.is_none() => {
            tracing::error!("voice notification calls disabled: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Multipart MO parts acknowledged before the last stop go back into the reassemblers before
/// any bind can deliver the rest; messages the reassemblers give up on at once are stored.
async fn restore_mo_parts(
    store: &dyn Store,
    binds: &Binds,
    updates: &UpdateSink,
    config: &Config,
) -> anyhow::Result<()> {
    let held = store.held_mo_parts().await?;
    if !held.is_empty() {
        tracing::info!(
            parts = held.len(),
            "resuming the reassembly of multipart MO messages"
        );
    }
    let mut restored = Vec::new();
    for write in binds.restore_mo_parts(held, config) {
        restored.push(
            updates
                .send_durable(crate::domain::Update::Mo(Box::new(write)))
                .await,
        );
    }
    for committed in restored {
        match committed.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("storing multipart MO messages given up at start: {e}"),
            Err(_) => anyhow::bail!("storing multipart MO messages given up at start: sink closed"),
        }
    }
    Ok(())
}

/// What the running gateway holds until it stops.
struct Parts {
    reloader: Reloader,
    shutdown: watch::Sender<bool>,
    config: Arc<Config>,
    http: api::listener::Listeners,
    binds: Arc<Binds>,
    event_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Senders into the dispatcher and the update sink, dropped before the sink drains.
    held: (BindContext, Arc<Dispatcher>, UpdateSink),
    voice: Option<Arc<crate::voice::Voice>>,
    updates_task: crate::updates::UpdateTask,
    sip_task: Option<tokio::task::JoinHandle<()>>,
    /// This node's membership of a shared store, left just before the store closes.
    joined: Option<crate::cluster::Joined>,
    opened: OpenedStore,
}

/// Serves signals until the API closes, then stops in order: binds drained, event tasks,
/// calls hung up and stored, the update sink drained, the SIP proxy, the store closed.
async fn run(p: Parts) -> anyhow::Result<()> {
    let drain = p.config.server.shutdown_timeout + Duration::from_secs(5);
    let signals = tokio::spawn(signals(p.shutdown.clone(), p.reloader, p.config));
    p.http.closed().await;
    signals.abort();
    tracing::info!("API closed; draining binds");
    p.binds.shutdown(drain).await;
    // The event pump saves the webhook cursor when it stops.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures::future::join_all(p.event_tasks),
    )
    .await;
    drop(p.held);
    // Notification calls hang up on shutdown and store their outcomes first.
    if let Some(v) = &p.voice {
        v.drained(Duration::from_secs(10)).await;
    }
    p.updates_task.finish(Duration::from_secs(10)).await;
    if let Some(task) = p.sip_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(joined) = p.joined {
        joined.leave().await;
    }
    p.opened.close().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Crash recovery: every message of the previous run (ids up to `until`) that was accepted
/// but not handed over for good goes out again. Read in pages, each queued before the next is
/// read, so a backlog larger than the carrier queues waits in the store rather than in
/// memory, and no message fails for want of room ([`Dispatcher::resubmit`]). Scheduled
/// messages not released yet are the scheduler's; voice calls follow their own rule
/// ([`crate::voice::Voice::recover`]). On a shared store, what this node owns.
async fn recover(
    store: Arc<dyn Store>,
    resume: Arc<Resume>,
    until: MessageId,
    mut shutdown: watch::Receiver<bool>,
) {
    const PAGE: usize = 512;
    let mut after = None;
    let mut total = 0usize;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let page = match store.unfinished_page(after, until, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("crash recovery: reading unfinished messages failed: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.message.id);
        for record in page {
            if resume.resume(&record, false, &mut shutdown).await {
                total += 1;
            }
        }
    }
    if total > 0 {
        tracing::info!(
            messages = total,
            "resubmitted the messages left unfinished by the last run"
        );
    }
}

/// On a shared store, once per heartbeat: each tenant's `max_tps` and the SIP limits (through
/// `live_nodes`) are split over the live nodes; every [`QUOTA_SYNC_EVERY`] heartbeats the
/// quota counters catch up with what every node stored (a count over the tenant's messages of
/// the day and the month, so not more often).
async fn share_limits(
    view: crate::cluster::SharedNodeView,
    limits: Arc<TenantLimiter>,
    live_nodes: Arc<std::sync::atomic::AtomicU32>,
    store: Arc<dyn Store>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    for beat in 0u64.. {
        let alive = view.load().peers.iter().filter(|p| p.alive).count();
        let alive = u32::try_from(alive).unwrap_or(u32::MAX).max(1);
        limits.set_share(alive);
        live_nodes.store(alive, std::sync::atomic::Ordering::Relaxed);
        if beat % QUOTA_SYNC_EVERY == 0 {
            if let Err(e) = limits
                .sync_quotas(store.as_ref(), crate::domain::now_ms())
                .await
            {
                tracing::warn!("counting the tenants' quotas across nodes failed: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Heartbeats between two counts of the tenants' quotas across nodes.
const QUOTA_SYNC_EVERY: u64 = 5;

/// Where an unfinished message goes again: after a restart, or when this node takes over a
/// dead node's messages.
struct Resume {
    dispatcher: Arc<Dispatcher>,
    voice: Option<Arc<crate::voice::Voice>>,
    email: Arc<crate::email::Email>,
    chat: Arc<crate::chat::Chat>,
    /// The flow runner (set once it runs: before any node's flows are taken over).
    flows: std::sync::OnceLock<crate::flows::Flows>,
    shutdown: watch::Receiver<bool>,
}

impl Resume {
    /// Hands `record` to its channel again. A scheduled SMS not released yet is left to the
    /// scheduler after a restart (it reads it when due) but handed to it when `adopted` (its
    /// read may have passed it). Returns whether an SMS was queued.
    async fn resume(
        &self,
        record: &crate::domain::MessageRecord,
        adopted: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let m = &record.message;
        if m.voice.is_some() {
            // Voice calls: never dialled → dial; dialling → interrupted.
            match &self.voice {
                Some(v) => v.recover(record).await,
                None => {
                    tracing::warn!(id = %m.id, "a voice call is unfinished but no voice carrier is configured")
                }
            }
            return false;
        }
        if m.email.is_some() {
            crate::email::recover(&self.email, record);
            return false;
        }
        if m.chat.is_some() {
            crate::chat::recover(&self.chat, record);
            return false;
        }
        let Some(job) = Job::from_record(record) else {
            return false;
        };
        if record.status == crate::domain::Status::Accepted && m.scheduled_at.is_some() {
            if adopted {
                self.dispatcher.enqueue_with_retry(Arc::new(job)).await;
            }
            // After a restart the scheduler reads it from the store when it is due.
            return false;
        }
        self.dispatcher.resubmit(Arc::new(job), shutdown).await;
        true
    }
}

impl crate::cluster::Adopter for Resume {
    fn message(&self, record: crate::domain::MessageRecord) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut shutdown = self.shutdown.clone();
            self.resume(&record, true, &mut shutdown).await;
        })
    }

    fn flow(&self, id: MessageId, tenant: String) {
        if let Some(flows) = self.flows.get() {
            flows.track(id, tenant.into(), None);
        }
    }
}

/// What a reload touches.
struct Reloader {
    state: AppState,
    binds: Arc<Binds>,
    sandbox: Option<SocketAddr>,
    base_dir: PathBuf,
    config_path: Option<PathBuf>,
    /// The SIP proxy's reload queue, when `[sip]` runs.
    sip: Option<tokio::sync::mpsc::Sender<crate::sip::proxy::Reconfigure>>,
    /// The SMPP server for tenants, when `[smpp_server]` runs.
    smpp_server: Option<crate::smpp_server::Handle>,
    /// The email engine (with no relay until one is configured).
    email: Arc<crate::email::Email>,
    /// The chat engine (RCS, WhatsApp, Telegram, Messenger, webhook; with no account until one
    /// is configured).
    chat: Arc<crate::chat::Chat>,
    /// The running configuration's hash, which the node reports to its peers.
    config_hash: watch::Sender<String>,
}

/// SIGTERM/SIGINT stop the gateway; SIGHUP reloads routing, API keys and binds.
async fn signals(
    shutdown: watch::Sender<bool>,
    reloader: Reloader,
    config: Arc<Config>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut current = config;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let Some(path) = &reloader.config_path else {
                    tracing::info!("SIGHUP: running on the embedded defaults, nothing to reload");
                    continue;
                };
                match reload(&reloader, &current, path) {
                    Ok(next) => {
                        if let Some(server) = &reloader.smpp_server {
                            server.reload(&next).await;
                        }
                        current = next;
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration:\n{e:#}"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    let _ = shutdown.send(true);
    Ok(())
}

fn reload(r: &Reloader, current: &Config, path: &Path) -> anyhow::Result<Arc<Config>> {
    let (state, base_dir) = (&r.state, r.base_dir.as_path());
    let next = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config::reloadable_diff(current, &next).map_err(anyhow::Error::msg)?;
    // Everything that can fail is checked before anything changes.
    let binds = Binds::plan(&next, r.sandbox, base_dir)?;
    let sip = crate::sip::transport::plan(&next, base_dir)?;
    let relays = crate::email::plan(&next, base_dir)?;
    let accounts = crate::chat::plan(&next, base_dir, &state.events.directory)?;
    let router = &state.dispatcher.router;
    let routing = next
        .routing_config(base_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    router
        .rebuild(Arc::new(routing), unix_now, Instant::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let changes = r.binds.commit(binds);
    if changes != Default::default() {
        tracing::info!(
            started = ?changes.started,
            restarted = ?changes.restarted,
            stopped = ?changes.stopped,
            "SMPP binds follow the new configuration"
        );
    }
    let next = Arc::new(next);
    let hash = crate::cluster::config_hash(std::fs::read(path).ok().as_deref(), &*next);
    let mut view = (**state.node.load()).clone();
    view.config = hash.clone();
    state.node.store(Arc::new(view));
    let _ = r.config_hash.send(hash);
    state
        .events
        .directory
        .store(Arc::new(crate::domain::Directory::from_config(&next)));
    state
        .auth
        .store(Arc::new(Box::new(ConfigKeys(next.clone()))));
    state.tenant_limits.reload(&next);
    state.dispatcher.set_weights(&next);
    crate::email::commit(&r.email, relays);
    crate::chat::commit(&r.chat, accounts);
    if let (Some(tx), Some(plan)) = (&r.sip, sip) {
        if tx.try_send(plan).is_err() {
            tracing::warn!("the SIP proxy did not take the reload (busy or stopped)");
        }
    }
    tracing::info!(
        generation = router.generation(),
        "reloaded routing, API keys, tenant limits, binds and SIP settings"
    );
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewMessage;

    /// `[store] kind = "postgres"` opens the database the url names, migrates it, and reads the
    /// highest id stored there at the next start, as a restart on SQLite does.
    #[tokio::test]
    async fn the_postgres_store_opens_from_the_configuration() {
        let url = crate::store::postgres::harness::fresh_database().await;
        let mut config = Config::embedded_default();
        config.store.kind = config::StoreKind::Postgres;
        config.store.url = Some(config::Secret::new(url));
        config.store.pool_size = 3;
        let dir = std::env::temp_dir();
        let (opened, last) = open_store(&config, &dir).await.unwrap();
        assert!(matches!(opened, OpenedStore::Postgres(_)));
        assert_eq!(last, None);
        let (store, _) = opened.traits();
        let far = MessageId::generate(crate::domain::now_ms());
        let message = NewMessage {
            id: far,
            tenant: "acme".into(),
            to: "+447911123456".into(),
            country: None,
            from: "Acme".into(),
            body: "hello".into(),
            encoding: None,
            segments: 1,
            priority: switchyard_routing::Priority::Normal,
            scheduled_at: None,
            expires_at: None,
            callback_url: None,
            tags: Vec::new(),
            metadata: None,
            carrier: None,
            price: None,
            created_at: crate::domain::now_ms(),
            batch_id: None,
            voice: None,
            email: None,
            chat: None,
            flow: None,
            request: None,
            smpp: None,
            udh: None,
            data_coding: None,
        };
        store.insert(vec![message]).await.unwrap();
        opened.close().await.unwrap();
        let (again, last) = open_store(&config, &dir).await.unwrap();
        assert_eq!(
            last,
            Some(far),
            "crash recovery stops at the highest stored id"
        );
        again.close().await.unwrap();
    }
}
