//! The set of running binds, per carrier, kept in line with the configuration.
//!
//! At start and on every reload (SIGHUP), [`Binds::apply`] compares each carrier's `[smpp]`
//! settings with those its binds run on: a new carrier gets its binds, a removed one has its
//! binds drained and its queue failed over to the next carrier of each route, a changed one
//! gets new binds at once while the old ones drain their windows (bounded by the drain
//! timeout), unbind and hand back what they held to the carrier's queue — which the new binds
//! take from. Unchanged carriers are not touched. Traffic is never dropped: the queue outlives
//! its binds.
//!
//! Each bind runs on a slot of its carrier's pool (`bind:<carrier>`, one slot per bind; see
//! `cluster`): on one node every slot is always held, on a shared store a bind connects only
//! while this node holds its slot and drains and unbinds when the node gives the slot up, so a
//! carrier's `binds` count holds across the cluster. There, each carrier also has a relay task
//! (see `dispatch::relay`): messages for a carrier whose slots other nodes hold go to them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parking_lot::Mutex;
use switchyard_ops::config::{self, BindKind, Config, SmppEndpoint};
use switchyard_protocols::smpp::session::BindType;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bind::{self, BindContext, BindStatus};

/// Every bind's live status, by carrier name; swapped whole when binds change.
pub(crate) type BindTable = arc_swap::ArcSwap<Vec<(String, Arc<BindStatus>)>>;
use super::mo::MoParts;
use super::rate::CarrierRate;
use super::{BindSettings, LongMessages};
use crate::cluster::{Lease, Leases};
use crate::dispatch::relay::Relay;
use crate::domain::{IdFormat, IdFormats};

/// Every carrier's binds.
#[derive(Debug)]
pub(crate) struct Binds {
    /// What every bind shares; each carrier's binds get their own stop signal instead of
    /// `shutdown`.
    ctx: BindContext,
    /// Carrier name → its running binds.
    groups: Mutex<HashMap<String, Group>>,
    /// Live statuses for `/readyz` and metrics, swapped whole when binds change.
    table: Arc<BindTable>,
    /// Binds being retired (replaced or removed) until they have drained.
    retiring: Mutex<Vec<JoinHandle<()>>>,
    /// Each carrier's multipart MO messages in progress, kept across re-binds.
    mo_parts: Mutex<HashMap<String, Arc<MoParts>>>,
    /// Each carrier's `max_tps` bucket, kept across re-binds.
    rates: Mutex<HashMap<String, Arc<CarrierRate>>>,
    /// The bind slots' leases.
    leases: Arc<Leases>,
    /// On a shared store: hands messages to the nodes bound to their carrier.
    relay: Option<Arc<Relay>>,
}

/// One carrier's binds and the settings they run on.
#[derive(Debug)]
struct Group {
    /// The `[smpp]` table they were started from (compared on reload).
    smpp: config::SmppConfig,
    /// Flips to true to drain and stop them; kept alive until they have stopped (a dropped
    /// sender would read as "stop now, without draining").
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    statuses: Vec<Arc<BindStatus>>,
}

/// Checked bind settings for every SMPP carrier of a configuration (see [`Binds::plan`]).
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per SMPP carrier: its `[smpp]` table, its binds' settings and its `max_tps`.
    wanted: Vec<(config::SmppConfig, BindSettings, Option<u32>)>,
}

/// What [`Binds::apply`] did, by carrier name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Carriers whose binds were started.
    pub(crate) started: Vec<String>,
    /// Carriers whose binds were replaced (settings changed).
    pub(crate) restarted: Vec<String>,
    /// Carriers whose binds were stopped (carrier removed or no longer SMPP).
    pub(crate) stopped: Vec<String>,
}

impl Binds {
    /// No binds yet; `ctx.shutdown` is not used (see [`Binds::shutdown`]). Bind slots are
    /// leased from `leases`; `relay` (on a shared store) moves messages between nodes.
    pub(crate) fn new(ctx: BindContext, leases: Arc<Leases>, relay: Option<Arc<Relay>>) -> Binds {
        Binds {
            ctx,
            groups: Mutex::new(HashMap::new()),
            table: Arc::new(arc_swap::ArcSwap::from_pointee(Vec::new())),
            retiring: Mutex::new(Vec::new()),
            mo_parts: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
            leases,
            relay,
        }
    }

    /// The live statuses of every bind (for the API).
    pub(crate) fn table(&self) -> Arc<BindTable> {
        self.table.clone()
    }

    /// Makes the running binds match `config`. Every carrier's settings are checked first
    /// (TLS files, sandbox); on error nothing changes.
    pub(crate) fn apply(
        &self,
        config: &Config,
        sandbox: Option<SocketAddr>,
        base_dir: &Path,
    ) -> anyhow::Result<Changes> {
        Ok(self.commit(Self::plan(config, sandbox, base_dir)?))
    }

    /// Checks and builds every carrier's bind settings (TLS files, sandbox) without changing
    /// anything, so a reload can check everything before it commits anything.
    pub(crate) fn plan(
        config: &Config,
        sandbox: Option<SocketAddr>,
        base_dir: &Path,
    ) -> anyhow::Result<Plan> {
        let mut wanted = Vec::new();
        for carrier in &config.carriers {
            let Some(smpp) = &carrier.smpp else { continue };
            match bind_settings(carrier, smpp, sandbox, base_dir)? {
                Some(settings) => wanted.push((smpp.clone(), settings, carrier.max_tps)),
                None => tracing::warn!(
                    carrier = %carrier.name,
                    "the built-in sandbox is not running in this process; restart to bind to it"
                ),
            }
        }
        Ok(Plan { wanted })
    }

    /// Starts, replaces and stops binds as `plan` says.
    pub(crate) fn commit(&self, plan: Plan) -> Changes {
        let wanted = plan.wanted;
        let mut changes = Changes::default();
        let mut groups = self.groups.lock();
        let names: Vec<&str> = wanted.iter().map(|(_, s, _)| s.carrier.as_str()).collect();
        let removed: Vec<String> = groups
            .keys()
            .filter(|name| !names.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(group) = groups.remove(&name) {
                self.retire(group, Some(name.clone()));
                changes.stopped.push(name);
            }
        }
        for (smpp, mut settings, max_tps) in wanted {
            let name = settings.carrier.clone();
            settings.mo_parts = self.mo_parts_of(&name);
            settings.rate = self.rate_of(&name);
            settings.rate.configure(
                max_tps,
                smpp.binds.max(1) as usize,
                std::time::Instant::now(),
            );
            match groups.get(&name) {
                Some(group) if group.smpp == smpp => continue,
                Some(_) => changes.restarted.push(name.clone()),
                None => changes.started.push(name.clone()),
            }
            let group = self.start_group(smpp, settings);
            if let Some(old) = groups.insert(name, group) {
                self.retire(old, None);
            }
        }
        let mut statuses: Vec<(String, Arc<BindStatus>)> = groups
            .iter()
            .flat_map(|(name, g)| g.statuses.iter().map(move |s| (name.clone(), s.clone())))
            .collect();
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        self.table.store(Arc::new(statuses));
        changes
    }

    /// The multipart MO messages in progress of `carrier` (created empty the first time).
    fn mo_parts_of(&self, carrier: &str) -> Arc<MoParts> {
        self.mo_parts
            .lock()
            .entry(carrier.to_owned())
            .or_insert_with(|| Arc::new(MoParts::new(carrier, self.ctx.mo_reassembly)))
            .clone()
    }

    /// The `max_tps` bucket of `carrier` (created unlimited the first time).
    fn rate_of(&self, carrier: &str) -> Arc<CarrierRate> {
        self.rates
            .lock()
            .entry(carrier.to_owned())
            .or_default()
            .clone()
    }

    /// Puts the MO parts the store held at start back into their carriers' reassemblers
    /// (before any bind runs). Returns what must be written before the binds start: messages
    /// completed or evicted on the way (the byte bound may have shrunk), and every message of
    /// a carrier that is no longer an SMPP carrier in `config`, given up as partial.
    pub(crate) fn restore_mo_parts(
        &self,
        parts: Vec<(String, crate::domain::HeldPart)>,
        config: &Config,
    ) -> Vec<crate::domain::MoWrite> {
        let (now, now_ms) = (std::time::Instant::now(), crate::domain::now_ms());
        let inbound = &self.ctx.inbound;
        let mut writes = Vec::new();
        let mut carriers = Vec::new();
        for (carrier, part) in parts {
            let mo = self.mo_parts_of(&carrier);
            let w = mo.restore(part, inbound, now, now_ms);
            if !w.finished.is_empty() {
                writes.push(w);
            }
            if !carriers.contains(&carrier) {
                carriers.push(carrier);
            }
        }
        for carrier in carriers {
            let configured = config.carrier(&carrier).is_some_and(|c| c.smpp.is_some());
            if configured {
                continue;
            }
            let mo = self.mo_parts.lock().remove(&carrier);
            if let Some(w) = mo.and_then(|mo| mo.give_up_all(inbound, now_ms)) {
                writes.push(w);
            }
        }
        writes
    }

    /// Drains and stops every bind, waiting at most `timeout`.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        let groups: Vec<Group> = self.groups.lock().drain().map(|(_, g)| g).collect();
        for group in groups {
            self.retire(group, None);
        }
        let retiring: Vec<JoinHandle<()>> = std::mem::take(&mut *self.retiring.lock());
        let _ = tokio::time::timeout(timeout, futures::future::join_all(retiring)).await;
    }

    fn start_group(&self, smpp: config::SmppConfig, settings: BindSettings) -> Group {
        let (stop, stop_rx) = watch::channel(false);
        let ctx = BindContext {
            shutdown: stop_rx,
            ..self.ctx.clone()
        };
        let mut tasks = Vec::new();
        let mut statuses = Vec::new();
        let binds = smpp.binds.max(1) as usize;
        let pool = self
            .leases
            .pool(&format!("bind:{}", settings.carrier), binds);
        for i in 0..binds {
            let status = Arc::new(BindStatus::default());
            statuses.push(status.clone());
            tasks.push(tokio::spawn(run_slot(
                pool.slot(i),
                settings.clone(),
                ctx.clone(),
                status,
            )));
        }
        if let Some(relay) = &self.relay {
            tasks.push(tokio::spawn(relay.clone().run(
                settings.carrier.clone(),
                pool.clone(),
                ctx.shutdown.clone(),
            )));
        }
        Group {
            smpp,
            stop,
            tasks,
            statuses,
        }
    }

    /// Tells a group to drain and stop; once stopped, a removed carrier's queue fails over.
    fn retire(&self, group: Group, evacuate: Option<String>) {
        let _ = group.stop.send(true);
        let dispatcher = self.ctx.dispatcher.clone();
        let handle = tokio::spawn(async move {
            futures::future::join_all(group.tasks).await;
            drop(group.stop);
            if let Some(carrier) = evacuate {
                dispatcher.evacuate(&carrier).await;
            }
        });
        let mut retiring = self.retiring.lock();
        retiring.retain(|h| !h.is_finished());
        retiring.push(handle);
    }
}

/// How often a bind waiting for its slot, or running on it, looks at the slot's lease.
const SLOT_CHECK: Duration = Duration::from_millis(250);

/// Runs one bind on `slot` until `ctx.shutdown`: connects while this node holds the slot
/// (always on one node), drains and unbinds when it no longer does, and waits for it again.
async fn run_slot(
    slot: Arc<Lease>,
    settings: BindSettings,
    ctx: BindContext,
    status: Arc<BindStatus>,
) {
    let mut stop = ctx.shutdown.clone();
    loop {
        while !slot.usable() {
            status
                .elsewhere
                .store(slot.held_elsewhere(), std::sync::atomic::Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(SLOT_CHECK) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // A bind of a replaced group may still drain on this slot: one at a time.
        let _using = tokio::select! {
            u = slot.use_lease() => u,
            _ = stop.wait_for(|s| *s) => return,
        };
        status
            .elsewhere
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (leave, leaving) = watch::channel(false);
        settings.rate.slot_running(true, std::time::Instant::now());
        let run = bind::run(
            settings.clone(),
            BindContext {
                shutdown: leaving,
                ..ctx.clone()
            },
            status.clone(),
        );
        tokio::pin!(run);
        loop {
            tokio::select! {
                () = &mut run => break,
                _ = tokio::time::sleep(SLOT_CHECK), if !*leave.borrow() => {
                    if !slot.usable() {
                        tracing::info!(carrier = %settings.carrier, "bind slot given up: unbinding");
                        let _ = leave.send(true);
                    }
                }
                _ = stop.wait_for(|s| *s), if !*leave.borrow() => {
                    let _ = leave.send(true);
                }
            }
        }
        settings.rate.slot_running(false, std::time::Instant::now());
        if *stop.borrow() {
            return;
        }
    }
}

/// One bind's settings from its carrier's config; `None` for the sandbox when it is not
/// running in this process.
pub(crate) fn bind_settings(
    carrier: &config::Carrier,
    smpp: &config::SmppConfig,
    sandbox: Option<SocketAddr>,
    base_dir: &Path,
) -> anyhow::Result<Option<BindSettings>> {
    let (address, host) = match &smpp.endpoint {
        SmppEndpoint::Remote { host, port } => (format!("{host}:{port}"), host.as_str()),
        SmppEndpoint::Sandbox => match sandbox {
            Some(a) => (a.to_string(), "127.0.0.1"),
            None => return Ok(None),
        },
    };
    let tls = match &smpp.tls {
        None => None,
        Some(tls) => {
            let ca = tls.ca.as_ref().map(|ca| Config::resolve(base_dir, ca));
            let name = tls.server_name.as_deref().unwrap_or(host);
            Some(
                crate::tls::TlsSettings::new(ca.as_deref(), name)
                    .with_context(|| format!("carrier {:?}: SMPP TLS", carrier.name))?,
            )
        }
    };
    let format = |f: config::IdFormat| match f {
        config::IdFormat::Auto => None,
        config::IdFormat::Decimal => Some(IdFormat::Decimal),
        config::IdFormat::Hex => Some(IdFormat::Hex),
        config::IdFormat::Text => Some(IdFormat::Text),
    };
    // Every value comes from the configuration, whose model owns the defaults; the held MO
    // parts and the `max_tps` bucket are the supervisor's (kept across re-binds, see
    // `commit`).
    let s = BindSettings {
        mo_parts: Arc::new(MoParts::new(
            carrier.name.clone(),
            switchyard_protocols::text::ReassemblyConfig::default(),
        )),
        rate: Arc::new(CarrierRate::default()),
        carrier: carrier.name.clone(),
        address,
        tls,
        system_id: smpp.system_id.clone(),
        password: smpp.password.clone(),
        system_type: smpp.system_type.clone(),
        bind_type: match smpp.bind_type {
            BindKind::Transmitter => BindType::Transmitter,
            BindKind::Receiver => BindType::Receiver,
            BindKind::Transceiver => BindType::Transceiver,
        },
        window: smpp.window as usize,
        tps: smpp.tps,
        enquire_link: smpp.enquire_link,
        response_timeout: smpp.response_timeout,
        reconnect_min: smpp.reconnect_min,
        reconnect_max: smpp.reconnect_max,
        source_ton: smpp.source_ton.unwrap_or(1),
        source_npi: smpp.source_npi.unwrap_or(1),
        dest_ton: smpp.dest_ton,
        dest_npi: smpp.dest_npi,
        registered_delivery: smpp.registered_delivery,
        long_messages: match smpp.long_messages {
            config::LongMessages::Udh => LongMessages::Udh8,
            config::LongMessages::Udh16 => LongMessages::Udh16,
            config::LongMessages::Sar => LongMessages::Sar,
            config::LongMessages::Payload => LongMessages::Payload,
        },
        max_pdu_len: smpp.max_pdu_len as usize,
        max_retries: super::MAX_RETRIES,
        id_formats: IdFormats {
            response: format(smpp.id_format),
            receipt: format(smpp.receipt_id_format.unwrap_or(smpp.id_format)),
        },
    };
    Ok(Some(s))
}
