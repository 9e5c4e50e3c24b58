//! Assembling and running the gateway: config → store → routing → dispatcher → binds → API,
//! recovery after a crash, reload on SIGHUP, graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use switchyard_ops::config::{self, BindKind, Config, SmppEndpoint};
use switchyard_protocols::smpp::session::BindType;
use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::{Priority, Router, RoutingTable, E164};
use tokio::sync::watch;

use crate::api::{self, AppState, Authenticator};
use crate::dispatch::{Dispatcher, Job};
use crate::events::pump::Hub;
use crate::events::webhook::Webhooks;
use crate::events::{Directory, SharedDirectory};
use crate::model::MessageId;
use crate::optout::OptOuts;
use crate::smpp::bind::{self, BindContext, BindStatus};
use crate::smpp::{BindSettings, LongMessages};
use crate::store::events::EventStore;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;
use crate::updates::UpdateSink;

/// Jobs per priority lane per carrier before the API answers 503.
const QUEUE_CAPACITY: usize = 50_000;

/// Tenants' API keys from the configuration.
struct ConfigKeys(Arc<Config>);

impl Authenticator for ConfigKeys {
    fn tenant(&self, key: &str) -> Option<Arc<str>> {
        self.0.find_tenant(key).map(|t| Arc::from(t.name.as_str()))
    }
}

/// A running gateway's handles (for tests and the binary).
#[derive(Debug)]
pub struct Running {
    /// Where the API listens.
    pub api: SocketAddr,
    /// Where the sandbox SMSC listens, if it runs.
    pub sandbox: Option<SocketAddr>,
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

fn bind_settings(
    carrier: &config::Carrier,
    smpp: &config::SmppConfig,
    sandbox: Option<SocketAddr>,
) -> Option<BindSettings> {
    let address = match &smpp.endpoint {
        SmppEndpoint::Remote { host, port } => format!("{host}:{port}"),
        SmppEndpoint::Sandbox => sandbox?.to_string(),
    };
    let mut s = BindSettings::new(carrier.name.clone(), address);
    s.system_id = smpp.system_id.clone();
    s.password = smpp.password.clone();
    s.system_type = smpp.system_type.clone();
    s.bind_type = match smpp.bind_type {
        BindKind::Transmitter => BindType::Transmitter,
        BindKind::Receiver => BindType::Receiver,
        BindKind::Transceiver => BindType::Transceiver,
    };
    s.window = smpp.window as usize;
    s.tps = smpp.tps;
    s.enquire_link = smpp.enquire_link;
    s.response_timeout = smpp.response_timeout;
    s.reconnect_min = smpp.reconnect_min;
    s.reconnect_max = smpp.reconnect_max;
    s.source_ton = smpp.source_ton.unwrap_or(1);
    s.source_npi = smpp.source_npi.unwrap_or(1);
    s.dest_ton = smpp.dest_ton;
    s.dest_npi = smpp.dest_npi;
    s.registered_delivery = smpp.registered_delivery;
    s.long_messages = match smpp.long_messages {
        config::LongMessages::Udh => LongMessages::Udh8,
        config::LongMessages::Udh16 => LongMessages::Udh16,
        config::LongMessages::Sar => LongMessages::Sar,
        config::LongMessages::Payload => LongMessages::Payload,
    };
    s.max_pdu_len = smpp.max_pdu_len as usize;
    Some(s)
}

/// Starts the gateway with `config` (files relative to `base_dir`). Returns once the API
/// listens; the gateway runs until [`Running::stop`] or a signal.
pub async fn start(
    config: Config,
    base_dir: PathBuf,
    config_path: Option<PathBuf>,
) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    // Refuse what is configured but not built yet rather than silently connecting in clear.
    if let Some(c) = config
        .carriers
        .iter()
        .find(|c| c.smpp.as_ref().is_some_and(|s| s.tls.is_some()))
    {
        anyhow::bail!(
            "carrier {:?}: TLS for SMPP binds is not available yet; remove `tls` to bind in clear",
            c.name
        );
    }
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

    let db = config.sqlite_path();
    let db = if db.is_relative() {
        base_dir.join(db)
    } else {
        db
    };
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let options = SqliteOptions {
        linger: config.store.group_commit_linger,
        ..SqliteOptions::default()
    };
    let sqlite = Arc::new(
        SqliteStore::open(&db, options)
            .with_context(|| format!("opening the store at {}", db.display()))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    if let Some(max) = store.max_id().await? {
        MessageId::generate_after(max);
    }

    let event_store: Arc<dyn EventStore> = sqlite.clone();
    let opt_outs = Arc::new(OptOuts::load(event_store.all_opt_outs().await?));
    let directory: SharedDirectory =
        Arc::new(ArcSwap::from_pointee(Directory::from_config(&config)));

    let router = Arc::new(Router::new(build_table(&config, &base_dir, None)?));
    let (updates, updates_task) = UpdateSink::start(store.clone(), 65_536, None);
    let carriers: Vec<String> = config.carriers.iter().map(|c| c.name.clone()).collect();
    let dispatcher = Arc::new(Dispatcher::new(
        router.clone(),
        &carriers,
        QUEUE_CAPACITY,
        updates.clone(),
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(dispatcher.clone().run_scheduler(shutdown_rx.clone()));
    let ctx = BindContext {
        dispatcher: dispatcher.clone(),
        updates: updates.clone(),
        shutdown: shutdown_rx.clone(),
        drain_timeout: config.server.shutdown_timeout,
        inbound: crate::inbound::Inbound {
            directory: directory.clone(),
            opt_outs: opt_outs.clone(),
        },
    };
    let webhooks = Arc::new(Webhooks::new(
        config.webhooks.clone(),
        directory.clone(),
        store.clone(),
        event_store.clone(),
    ));
    let hub = Arc::new(Hub::new(
        store.clone(),
        event_store,
        directory,
        opt_outs,
        webhooks,
        dispatcher.clone(),
    ));
    let event_tasks = hub.start(shutdown_rx.clone()).await?;
    let mut bind_tasks = Vec::new();
    let mut statuses = Vec::new();
    for carrier in &config.carriers {
        let Some(smpp) = &carrier.smpp else { continue };
        let Some(settings) = bind_settings(carrier, smpp, sandbox) else {
            continue;
        };
        for _ in 0..smpp.binds.max(1) {
            let status = Arc::new(BindStatus::default());
            statuses.push((carrier.name.clone(), status.clone()));
            bind_tasks.push(tokio::spawn(bind::run(
                settings.clone(),
                ctx.clone(),
                status,
            )));
        }
    }

    // Crash recovery: what was accepted but not handed over for good goes out again.
    let unfinished = store.unfinished().await?;
    if !unfinished.is_empty() {
        tracing::info!(
            messages = unfinished.len(),
            "resubmitting messages left unfinished by the last run"
        );
    }
    for record in unfinished {
        let m = &record.message;
        let Ok(to) = E164::parse(&m.to) else { continue };
        let sent: Vec<u16> = record
            .segment_states
            .iter()
            .filter(|s| {
                s.status != crate::model::Status::Submitting && s.carrier_message_id.is_some()
            })
            .map(|s| s.index)
            .collect();
        let job = Arc::new(Job {
            id: m.id,
            tenant: Arc::from(m.tenant.as_str()),
            to,
            from: m.from.clone(),
            body: m.body.clone(),
            encoding: match m.encoding.as_str() {
                "ucs2" => EncodingPreference::Force(switchyard_protocols::text::Encoding::Ucs2),
                _ => EncodingPreference::Auto,
            },
            priority: match m.priority.as_str() {
                "critical" => Priority::Critical,
                "high" => Priority::High,
                "low" => Priority::Low,
                _ => Priority::Normal,
            },
            scheduled_at: m.scheduled_at,
            expires_at: m.expires_at,
            sent_segments: sent,
            tried: Vec::new(),
        });
        let d = dispatcher.clone();
        tokio::spawn(async move { d.enqueue_with_retry(job).await });
    }

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let auth: Box<dyn Authenticator> = Box::new(ConfigKeys(config.clone()));
    let state = AppState {
        auth: Arc::new(ArcSwap::from_pointee(auth)),
        store: store.clone(),
        dispatcher: dispatcher.clone(),
        binds: Arc::new(ArcSwap::from_pointee(statuses)),
        metrics,
        limits: api::validate::Limits::default(),
        events: hub,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let api_addr = listener.local_addr()?;
    let app = api::router(state.clone(), config.server.max_body_bytes);

    let task = {
        let mut shutdown = shutdown_rx.clone();
        let shutdown_tx = shutdown_tx.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            });
            let drain = config.server.shutdown_timeout + Duration::from_secs(5);
            let signals = tokio::spawn(signals(
                shutdown_tx.clone(),
                state,
                config,
                base_dir,
                config_path,
            ));
            server.await?;
            signals.abort();
            tracing::info!("API closed; draining binds");
            let _ = tokio::time::timeout(drain, futures::future::join_all(bind_tasks)).await;
            // The event pump saves the webhook cursor when it stops.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                futures::future::join_all(event_tasks),
            )
            .await;
            drop(ctx);
            drop(dispatcher);
            drop(updates);
            let _ = tokio::time::timeout(Duration::from_secs(10), updates_task).await;
            sqlite.close().await?;
            tracing::info!("stopped");
            Ok(())
        })
    };
    Ok(Running {
        api: api_addr,
        sandbox,
        shutdown: shutdown_tx,
        task,
    })
}

/// SIGTERM/SIGINT stop the gateway; SIGHUP reloads routing and API keys.
async fn signals(
    shutdown: watch::Sender<bool>,
    state: AppState,
    config: Arc<Config>,
    base_dir: PathBuf,
    config_path: Option<PathBuf>,
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
                let Some(path) = &config_path else {
                    tracing::info!("SIGHUP: running on the embedded defaults, nothing to reload");
                    continue;
                };
                match reload(&state, &current, path, &base_dir) {
                    Ok(next) => current = next,
                    Err(e) => tracing::error!("reload failed, keeping the running configuration:\n{e:#}"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    let _ = shutdown.send(true);
    Ok(())
}

fn reload(
    state: &AppState,
    current: &Config,
    path: &Path,
    base_dir: &Path,
) -> anyhow::Result<Arc<Config>> {
    let next = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config::reloadable_diff(current, &next).map_err(anyhow::Error::msg)?;
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
    if current
        .carriers
        .iter()
        .map(|c| &c.smpp)
        .ne(next.carriers.iter().map(|c| &c.smpp))
    {
        tracing::warn!("SMPP bind settings changed: routing uses the new carriers now; restart to re-bind with the new settings");
    }
    let next = Arc::new(next);
    state
        .events
        .directory
        .store(Arc::new(crate::events::Directory::from_config(&next)));
    state
        .auth
        .store(Arc::new(Box::new(ConfigKeys(next.clone()))));
    tracing::info!(
        generation = router.generation(),
        "reloaded routing and API keys"
    );
    Ok(next)
}
