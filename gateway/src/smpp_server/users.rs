//! Who may bind: the tenants' SMPP users by system_id, their binds open now, and the checks a
//! bind must pass.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use switchyard_ops::config::{Config, SmppUser, TenantSmpp};
use switchyard_protocols::smpp::pdu::Bind;
use switchyard_protocols::smpp::pdu::SubmitSm;
use switchyard_protocols::smpp::session::BindType;
use switchyard_protocols::smpp::CommandStatus;
use switchyard_routing::TokenBucket;
use tokio::sync::{mpsc, oneshot, Notify};

/// What the server's other tasks ask of a connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send this deliver_sm; `done` hears whether the ESME took it (`Err` says why not). A
    /// dropped `done` means the connection ended first.
    Deliver {
        /// The PDU.
        pdu: Box<SubmitSm>,
        /// The outcome.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Unbind and close (the user was removed or its settings changed).
    Unbind,
}

/// One SMPP user as the server uses it.
#[derive(Debug)]
pub(crate) struct User {
    /// The tenant it sends as.
    pub(crate) tenant: Arc<str>,
    /// Its settings.
    pub(crate) config: SmppUser,
    /// The tenant's sender for submits with an empty source_addr.
    pub(crate) default_sender: Option<String>,
    /// The tenant's SMPP settings, which say which of its users gets the MO messages to each
    /// of its numbers ([`TenantSmpp::mo_user`]).
    tenant_smpp: Arc<TenantSmpp>,
    /// `max_tps` across all its binds.
    bucket: Option<Mutex<TokenBucket>>,
}

impl User {
    /// A user with no rate of its own, for tests and the fuzz property.
    pub(crate) fn for_checks(
        tenant: &str,
        config: SmppUser,
        default_sender: Option<String>,
    ) -> Self {
        User {
            tenant: Arc::from(tenant),
            config,
            default_sender,
            tenant_smpp: Arc::default(),
            bucket: None,
        }
    }

    /// Whether the MO message to the tenant's number `to` goes to this user's binds: the
    /// tenant sends MO over SMPP, and this is the user that names `to` in `mo_numbers` or,
    /// when none does, the tenant's first user without `mo_numbers`.
    pub(crate) fn takes_mo(&self, to: &str) -> bool {
        self.tenant_smpp
            .mo_user(to)
            .is_some_and(|u| u.system_id == self.config.system_id)
    }

    /// Takes one submit from the user's own rate; `false` when it is over (ESME_RTHROTTLED).
    pub(crate) fn take(&self, now: Instant) -> bool {
        self.take_n(now, 1)
    }

    /// Takes `n` messages at once (a submit_multi), all or none.
    pub(crate) fn take_n(&self, now: Instant, n: u32) -> bool {
        self.bucket
            .as_ref()
            .is_none_or(|b| b.lock().try_take(now, n).is_ok())
    }
}

/// Every SMPP user by system_id, rebuilt from the configuration (SIGHUP).
#[derive(Debug, Default)]
pub(crate) struct Users {
    by_system_id: HashMap<String, Arc<User>>,
}

impl Users {
    /// The users of every tenant in `config`. Users whose settings did not change keep their
    /// rate bucket from `old`.
    pub(crate) fn from_config(config: &Config, old: Option<&Users>, now: Instant) -> Self {
        let mut by_system_id = HashMap::new();
        for t in &config.tenants {
            let tenant: Arc<str> = Arc::from(t.name.as_str());
            let tenant_smpp = Arc::new(t.smpp.clone());
            for u in &t.smpp.users {
                let kept = old
                    .and_then(|o| o.by_system_id.get(&u.system_id))
                    .filter(|o| *o.tenant == *tenant && o.config == *u);
                let bucket = match kept {
                    Some(o) => o.bucket.as_ref().map(|b| Mutex::new(b.lock().clone())),
                    None => u
                        .max_tps
                        .and_then(NonZeroU32::new)
                        .map(|rate| Mutex::new(TokenBucket::per_second(rate, now))),
                };
                by_system_id.insert(
                    u.system_id.clone(),
                    Arc::new(User {
                        tenant: tenant.clone(),
                        config: u.clone(),
                        default_sender: t.default_sender.clone(),
                        tenant_smpp: tenant_smpp.clone(),
                        bucket,
                    }),
                );
            }
        }
        Users { by_system_id }
    }

    /// The user `system_id`, if any.
    pub(crate) fn get(&self, system_id: &str) -> Option<&Arc<User>> {
        self.by_system_id.get(system_id)
    }

    /// Every user.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Arc<User>)> {
        self.by_system_id.iter()
    }

    /// The checks of a bind, in the order an ESME can act on: who (ESME_RINVSYSID), the
    /// password (ESME_RINVPASWD), the system_type (ESME_RINVSYSTYP), the source address
    /// (ESME_RBINDFAIL). `max_binds` is checked when the bind is registered.
    pub(crate) fn authenticate(&self, bind: &Bind, peer: IpAddr) -> Result<Arc<User>, Refused> {
        let system_id = bind.system_id.to_str_lossy();
        let Some(user) = self.by_system_id.get(system_id.as_ref()) else {
            return Err(Refused::new(
                CommandStatus::ESME_RINVSYSID,
                "unknown system_id",
            ));
        };
        if !user.config.secret.matches(bind.password.as_bytes()) {
            return Err(Refused::new(
                CommandStatus::ESME_RINVPASWD,
                "wrong password",
            ));
        }
        if let Some(want) = &user.config.system_type {
            if bind.system_type.as_bytes() != want.as_bytes() {
                return Err(Refused::new(
                    CommandStatus::ESME_RINVSYSTYP,
                    "system_type does not match",
                ));
            }
        }
        let peer = canonical(peer);
        if !user.config.allowed_ips.is_empty()
            && !user.config.allowed_ips.iter().any(|c| c.contains(peer))
        {
            return Err(Refused::new(
                CommandStatus::ESME_RBINDFAIL,
                "source address not in allowed_ips",
            ));
        }
        Ok(user.clone())
    }
}

/// An IPv4 peer seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A refused bind: the status the ESME gets and the reason the log gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused {
    /// bind_resp command_status.
    pub(crate) status: CommandStatus,
    /// For the log (never sent: a refused ESME learns only the status).
    pub(crate) reason: &'static str,
}

impl Refused {
    fn new(status: CommandStatus, reason: &'static str) -> Self {
        Refused { status, reason }
    }
}

/// One open bind, as `GET /v1/smpp/binds` and the receipt senders see it.
#[derive(Debug, Clone)]
pub(crate) struct OpenBind {
    /// Connection number (unique in this process).
    pub(crate) id: u64,
    /// Transmitter, receiver or transceiver.
    pub(crate) bind_type: BindType,
    /// The ESME's address.
    pub(crate) peer: std::net::SocketAddr,
    /// The interface_version it bound with.
    pub(crate) interface_version: u8,
    /// When it bound (unix ms).
    pub(crate) since: crate::domain::UnixMs,
    /// Where receipts and MO messages for it go (receiver and transceiver binds).
    pub(crate) outgoing: mpsc::Sender<Outgoing>,
}

/// The binds open now, per system_id.
#[derive(Debug, Default)]
pub(crate) struct Binds {
    inner: Mutex<HashMap<String, SystemBinds>>,
}

#[derive(Debug, Default)]
struct SystemBinds {
    open: Vec<OpenBind>,
    /// Woken when a bind that can receive opens.
    receiver_up: Arc<Notify>,
}

impl Binds {
    /// Registers a bind of `system_id` unless it already has `max_binds` (ESME_RBINDFAIL).
    pub(crate) fn register(
        &self,
        system_id: &str,
        max_binds: u32,
        bind: OpenBind,
    ) -> Result<(), Refused> {
        let mut inner = self.inner.lock();
        let entry = inner.entry(system_id.to_owned()).or_default();
        if entry.open.len() >= max_binds as usize {
            return Err(Refused::new(
                CommandStatus::ESME_RBINDFAIL,
                "max_binds reached",
            ));
        }
        let receives = bind.bind_type != BindType::Transmitter;
        bind_gauge(system_id, bind.bind_type).increment(1.0);
        entry.open.push(bind);
        if receives {
            entry.receiver_up.notify_waiters();
        }
        Ok(())
    }

    /// Forgets connection `id` of `system_id`.
    pub(crate) fn unregister(&self, system_id: &str, id: u64) {
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.get_mut(system_id) {
            if let Some(i) = entry.open.iter().position(|b| b.id == id) {
                let bind = entry.open.remove(i);
                bind_gauge(system_id, bind.bind_type).decrement(1.0);
            }
        }
    }

    /// The binds of `system_id` that can take deliver_sm, in bind order.
    pub(crate) fn receivers(&self, system_id: &str) -> Vec<mpsc::Sender<Outgoing>> {
        self.inner.lock().get(system_id).map_or_else(Vec::new, |e| {
            e.open
                .iter()
                .filter(|b| b.bind_type != BindType::Transmitter)
                .map(|b| b.outgoing.clone())
                .collect()
        })
    }

    /// Woken when `system_id` gets a bind that can receive.
    pub(crate) fn receiver_up(&self, system_id: &str) -> Arc<Notify> {
        self.inner
            .lock()
            .entry(system_id.to_owned())
            .or_default()
            .receiver_up
            .clone()
    }

    /// Every open bind, by system_id (for the API and metrics).
    pub(crate) fn snapshot(&self) -> Vec<(String, OpenBind)> {
        let inner = self.inner.lock();
        let mut out: Vec<(String, OpenBind)> = inner
            .iter()
            .flat_map(|(s, e)| e.open.iter().map(move |b| (s.clone(), b.clone())))
            .collect();
        out.sort_by(|a, b| (a.0.as_str(), a.1.id).cmp(&(b.0.as_str(), b.1.id)));
        out
    }
}

/// `switchyard_smpp_server_binds{system_id, bind_type}`: binds open now.
fn bind_gauge(system_id: &str, bind_type: BindType) -> metrics::Gauge {
    let kind = match bind_type {
        BindType::Transmitter => "transmitter",
        BindType::Receiver => "receiver",
        _ => "transceiver",
    };
    metrics::gauge!("switchyard_smpp_server_binds", "system_id" => system_id.to_owned(), "bind_type" => kind)
}
