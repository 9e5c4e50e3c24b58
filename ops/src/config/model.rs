//! The configuration as the gateway uses it: plain, typed, already checked. Every value here
//! passed parsing and validation, so the gateway never re-checks ranges or names.
//!
//! Paths are kept as written in the file; [`Config::resolve`] and [`Config::sqlite_path`] say
//! how they are resolved. Routing attributes reuse the routing crate's types
//! ([`Channel`], [`QualityClass`], [`Preference`], [`Markup`], [`Prefix`], [`Currency`],
//! [`ScoringConfig`], [`BreakerConfig`], [`FxRate`]) so there is one definition of each.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_routing::{
    BreakerConfig, CarrierConfig, Channel, Currency, FxRate, Markup, NumberRewrite, Preference,
    Prefix, QualityClass, ScoringConfig,
};

use super::keys::{locate_hash, ApiKeyHash};

pub use super::redacted::{Redacted, REDACTED};

/// The whole gateway configuration. Cheap to clone and compare (a few dozen small structs), so
/// a reload can diff the old and new values ([`super::reloadable_diff`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// HTTP listener and process-wide limits.
    pub server: ServerConfig,
    /// Where messages are made durable.
    pub store: StoreConfig,
    /// Who may submit, with which keys and route plans.
    pub tenants: Vec<Tenant>,
    /// Where messages can go.
    pub carriers: Vec<Carrier>,
    /// Carriers' price lists.
    pub decks: Vec<DeckConfig>,
    /// Currency, scoring and circuit breakers of the routing table.
    pub routing: RoutingSettings,
    /// How webhooks are delivered (`[webhooks]`).
    pub webhooks: super::events::WebhookSettings,
    /// The SIP proxy (`[sip]`); `None`: no SIP listener.
    pub sip: Option<SipSettings>,
    /// The SMPP server tenants bind to (`[smpp_server]`); `None`: no SMPP listener.
    pub smpp_server: Option<super::smpp_server::SmppServerSettings>,
    /// Notification calls from the API (`[voice]`, defaults when absent).
    pub voice: super::voice::VoiceSettings,
    /// The operator's own API keys (`[operator]`); empty when absent.
    pub operator: OperatorConfig,
    /// MO reassembly bounds and keyword-reply budgets (`[inbound]`, defaults when absent).
    pub inbound: super::inbound::InboundSettings,
    /// How long finished records are kept (`[retention]`, defaults when absent).
    pub retention: super::retention::RetentionSettings,
    /// Carrier queues and the scheduler (`[queues]`, defaults when absent).
    pub queues: super::queues::QueueSettings,
    /// Addresses tenants' URLs may reach (`[egress]`; special-purpose ranges refused when
    /// absent).
    pub egress: super::egress::EgressPolicy,
    /// Limits of the event stream, `GET /v1/events` (`[sse]`).
    pub sse: super::events::SseSettings,
    /// This node among the nodes sharing a PostgreSQL store (`[node]`, defaults when absent).
    pub node: super::node::NodeSettings,
    /// How log lines are written (`[log]`, text when absent).
    pub log: super::log::LogSettings,
}

impl Config {
    /// `path` resolved against `base_dir` (the config file's folder) unless it is absolute.
    /// Used for files that ship with the config: rate decks and TLS CA bundles.
    pub fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }
    }

    /// The SQLite database file: `store.path` inside `server.data_dir` when relative, or
    /// `<data_dir>/switchyard.db` by default.
    pub fn sqlite_path(&self) -> PathBuf {
        match &self.store.path {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => self.server.data_dir.join(p),
            None => self.server.data_dir.join(StoreConfig::DEFAULT_FILE),
        }
    }

    /// The carrier named `name`.
    pub fn carrier(&self, name: &str) -> Option<&Carrier> {
        self.carriers.iter().find(|c| c.name == name)
    }

    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The tenant owning `presented` (the bearer token of a request), if any.
    ///
    /// Hashes once, then compares against every stored hash of every tenant in constant time;
    /// validation guarantees a hash belongs to at most one tenant.
    pub fn find_tenant(&self, presented: &str) -> Option<&Tenant> {
        self.find_key(presented).map(|(t, _)| t)
    }

    /// The tenant owning `presented` and what that key may do ([`Tenant::api_key_scopes`];
    /// every scope for a plain hash). Same constant-time comparison as [`Config::find_tenant`].
    pub fn find_key(&self, presented: &str) -> Option<(&Tenant, Scopes)> {
        self.find_key_hash(&ApiKeyHash::of_key(presented))
    }

    /// As [`Config::find_key`], for the key whose hash is `hash`.
    pub fn find_key_hash(&self, hash: &ApiKeyHash) -> Option<(&Tenant, Scopes)> {
        let lists = self.tenants.iter().map(|t| t.api_keys.as_slice());
        let (index, key) = locate_hash(hash, lists)?;
        let tenant = self.tenants.get(index)?;
        let scopes = tenant
            .api_key_scopes
            .get(key)
            .copied()
            .unwrap_or(Scopes::ALL);
        Some((tenant, scopes))
    }

    /// True when `presented` is one of the operator's keys (`[operator] api_keys`). Compares
    /// against every operator hash in constant time, as [`Config::find_key`] does.
    pub fn is_operator_key(&self, presented: &str) -> bool {
        self.is_operator_key_hash(&ApiKeyHash::of_key(presented))
    }

    /// As [`Config::is_operator_key`], for the key whose hash is `hash`.
    pub fn is_operator_key_hash(&self, hash: &ApiKeyHash) -> bool {
        locate_hash(hash, [self.operator.api_keys.as_slice()]).is_some()
    }
}

/// `[server]`: the HTTP listener and process-wide limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the HTTP API binds (`listen`).
    pub listen: SocketAddr,
    /// Address of a second, operator-only listener for `/metrics` and `/readyz`
    /// (`ops_listen`); when set, those two paths are absent from `listen`.
    pub ops_listen: Option<SocketAddr>,
    /// Folder for the store and other state (`data_dir`); relative to the working directory.
    pub data_dir: PathBuf,
    /// On SIGTERM, how long in-flight windows may drain before binds are cut
    /// (`shutdown_timeout_s`).
    pub shutdown_timeout: Duration,
    /// Largest accepted HTTP request body (`max_body_bytes`); larger ones get 413.
    pub max_body_bytes: usize,
    /// HTTP connections served at once (`max_connections`); further ones wait in the
    /// listen backlog until one closes, so a flood of idle sockets cannot exhaust file
    /// descriptors.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit between requests; also bounds the TLS handshake
    /// (`header_read_timeout_s`).
    pub header_read_timeout: Duration,
    /// How long a request may take from its headers to the start of the response, body upload
    /// included (`request_timeout_s`); over it the API answers 408.
    pub request_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed
    /// (`idle_timeout_s`): idle HTTP/2 connections and half-sent prefaces.
    pub idle_timeout: Duration,
    /// HTTPS on `listen` (`tls_cert`, `tls_key`, `tls_client_ca`); `None`: plain HTTP.
    pub tls: Option<ServerTls>,
}

/// HTTPS on the API listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// Certificate chain, PEM (`tls_cert`), relative to the config file's folder.
    pub cert: PathBuf,
    /// Private key, PEM (`tls_key`).
    pub key: PathBuf,
    /// CA bundle, PEM (`tls_client_ca`): when set, every client must present a certificate
    /// signed by it; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

impl ServerConfig {
    /// Default `listen`.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
    /// Default `data_dir`.
    pub const DEFAULT_DATA_DIR: &'static str = "./data";
    /// Default `shutdown_timeout_s`.
    pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 30;
    /// Default `max_body_bytes` (1 MiB: a 10,000-recipient batch fits).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    /// Default `header_read_timeout_s`.
    pub const DEFAULT_HEADER_READ_TIMEOUT_S: u64 = 10;
    /// Default `request_timeout_s`.
    pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;
    /// Default `idle_timeout_s`.
    pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 60;
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
            ops_listen: None,
            data_dir: PathBuf::from(Self::DEFAULT_DATA_DIR),
            shutdown_timeout: Duration::from_secs(Self::DEFAULT_SHUTDOWN_TIMEOUT_S),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(Self::DEFAULT_HEADER_READ_TIMEOUT_S),
            request_timeout: Duration::from_secs(Self::DEFAULT_REQUEST_TIMEOUT_S),
            idle_timeout: Duration::from_secs(Self::DEFAULT_IDLE_TIMEOUT_S),
            tls: None,
        }
    }
}

/// `[operator]`: keys for the gateway's operator. An operator key is not a tenant: it reads
/// what tenants may not see (carrier costs and health in `/v1/routes/explain`, for any tenant).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorConfig {
    /// SHA-256 hashes of the operator's API keys (`api_keys`), as for tenants.
    pub api_keys: Vec<ApiKeyHash>,
}

/// Which store implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreKind {
    /// Embedded SQLite (WAL, synchronous=FULL): one node.
    Sqlite,
    /// PostgreSQL (`url`): a database server the operator runs, replicates and backs up.
    Postgres,
}

/// When a commit counts as done (`[store] durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// On stable storage before the API answers: survives a power cut (SQLite
    /// `synchronous=FULL`; PostgreSQL `synchronous_commit` as the server sets it).
    Fsync,
    /// Handed to the operating system (SQLite WAL with `synchronous=NORMAL`) or to the
    /// database server (PostgreSQL `synchronous_commit = off`) before the API answers: survives
    /// a crash of the gateway process, not a power cut or a crash of the machine (or of the
    /// database server), which may lose the last commits.
    Os,
}

/// `[store]`: where accepted messages are made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Backend (`kind`).
    pub kind: StoreKind,
    /// SQLite file as written (`path`); see [`Config::sqlite_path`] for the resolved path.
    pub path: Option<PathBuf>,
    /// How long the single writer waits for more requests to share one transaction and one
    /// fsync (`group_commit_linger_ms`).
    pub group_commit_linger: Duration,
    /// PostgreSQL connection string (`url` or `url_env`: a libpq key/value string or a
    /// `postgresql://` URL; it may hold a password, so it is kept as a secret).
    pub url: Option<super::chat::Secret>,
    /// PostgreSQL connections at most (`pool_size`).
    pub pool_size: u32,
    /// PEM CA bundle trusted for TLS to PostgreSQL, besides the system's roots (`tls_ca`),
    /// as written (relative to the config file's folder).
    pub tls_ca: Option<PathBuf>,
    /// When a commit counts as done (`durability`).
    pub durability: Durability,
}

impl StoreConfig {
    /// SQLite file name inside `data_dir` when `path` is not given.
    pub const DEFAULT_FILE: &'static str = "switchyard.db";
    /// Default `group_commit_linger_ms`.
    pub const DEFAULT_LINGER_MS: u64 = 2;
    /// Default `kind`.
    pub const DEFAULT_KIND: StoreKind = StoreKind::Sqlite;
    /// Default `pool_size`.
    pub const DEFAULT_POOL_SIZE: u32 = 8;
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: Self::DEFAULT_KIND,
            path: None,
            group_commit_linger: Duration::from_millis(Self::DEFAULT_LINGER_MS),
            url: None,
            pool_size: Self::DEFAULT_POOL_SIZE,
            tls_ca: None,
            durability: Durability::Fsync,
        }
    }
}

/// `[[tenants]]`: a customer account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Unique name (`name`); messages, metrics and route plans are keyed by it.
    pub name: String,
    /// SHA-256 hashes of the tenant's API keys (`api_keys`); several allow rotation.
    pub api_keys: Vec<ApiKeyHash>,
    /// Which carriers the tenant may use and what it pays (flattened into the tenant table).
    pub route: TenantRoute,
    /// Sender used when a request has no `from` (`default_sender`): E.164 with `+`, a short
    /// code, or an alphanumeric sender of at most 11 characters.
    pub default_sender: Option<String>,
    /// Submission throttle for this tenant, messages per second (`max_tps`); `None`: no limit
    /// beyond the carriers'.
    pub max_tps: Option<u32>,
    /// What each key of `api_keys` may do, index for index (`api_keys` entries written as
    /// `{ hash = "sha256:…", scopes = ["read"] }`); a plain hash string has every scope.
    pub api_key_scopes: Vec<Scopes>,
    /// Quotas and what the tenant may send where (`daily_quota`, `monthly_quota`,
    /// `max_segments`, `allowed_channels`, `allowed_countries`, `blocked_countries`).
    pub limits: TenantLimits,
    /// Webhook, signing secrets, owned numbers and opt-out replies (flattened into the tenant
    /// table: `webhook_url`, `webhook_secrets`, `numbers`, `stop_reply`, …).
    pub events: super::events::TenantEvents,
    /// How the tenant's PBXs reach the SIP proxy and how much they may call (`sip_allow`,
    /// `sip_users`, `sip_max_cps`, `sip_max_calls`, flattened into the tenant table).
    pub sip: TenantSip,
    /// Who may bind to the SMPP server as this tenant and where its MO messages go
    /// (`smpp_users`, `mo_delivery`, flattened into the tenant table).
    pub smpp: super::smpp_server::TenantSmpp,
    /// The highest priority the tenant may ask for and its share of each carrier's queue
    /// (`max_priority`, `queue_weight`, flattened into the tenant table).
    pub fairness: super::queues::TenantFairness,
}

/// A tenant's SIP access and call limits. Empty/`None` means "no access this way" for
/// `allow`/`users` and "no limit" for the limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantSip {
    /// Sources whose requests the proxy accepts as this tenant without a password
    /// (`sip_allow`): an IP address, optionally pinned to a transport and a port.
    pub allow: Vec<SipAllow>,
    /// Digest credentials (`sip_users = [{ username, password }]`, or HA1 hashes instead of
    /// the password): INVITEs from other addresses are challenged (407) and accepted as this
    /// tenant when they answer with one.
    pub users: Vec<SipUser>,
    /// New calls per second the tenant may start (`sip_max_cps`); excess calls get 503 with
    /// Retry-After.
    pub max_cps: Option<u32>,
    /// Calls the tenant may have set up or in progress at once (`sip_max_calls`).
    pub max_calls: Option<u32>,
}

/// One `sip_allow` entry: `"192.0.2.10"` (any transport, any port), `"udp:192.0.2.10:5060"`,
/// `"tcp:192.0.2.10"`, `"tls:[2001:db8::1]:5061"`, `"192.0.2.10:5060"` (any transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SipAllow {
    /// The source IP address.
    pub ip: std::net::IpAddr,
    /// Only requests that came over this transport; `None`: any. A UDP source address can be
    /// forged by anyone; a TCP or TLS one cannot (the handshake needs the real address).
    pub transport: Option<SipTransport>,
    /// Only requests from this source port; `None`: any.
    pub port: Option<u16>,
}

impl std::fmt::Display for SipAllow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(t) = self.transport {
            let t = match t {
                SipTransport::Udp => "udp",
                SipTransport::Tcp => "tcp",
                SipTransport::Tls => "tls",
            };
            write!(f, "{t}:")?;
        }
        match self.port {
            Some(p) => write!(f, "{}", std::net::SocketAddr::new(self.ip, p)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// One digest login of a tenant's PBX.
#[derive(Clone, PartialEq, Eq)]
pub struct SipUser {
    /// The digest username (unique across tenants).
    pub username: String,
    /// What its answers are checked against.
    pub secret: SipSecret,
}

/// What a digest login is checked against. Digest needs either the password or HA1 =
/// H(username ":" realm ":" password) per algorithm; HA1 depends on `[sip] realm` and on the
/// algorithm, so a stored hash is valid for one realm and one algorithm only.
#[derive(Clone, PartialEq, Eq)]
pub enum SipSecret {
    /// The password (`password`); the proxy derives HA1 for each algorithm at load.
    Password(String),
    /// Stored HA1 hashes, lower-case hex (`ha1_sha256`, `ha1_md5`); the login can answer only
    /// with the algorithms it has a hash for.
    Ha1 {
        /// SHA-256 HA1 (64 hex digits).
        sha256: Option<String>,
        /// MD5 HA1 (32 hex digits).
        md5: Option<String>,
    },
}

impl std::fmt::Debug for SipSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SipSecret::Password(_) => f.write_str("Password(..)"),
            SipSecret::Ha1 { sha256, md5 } => f
                .debug_struct("Ha1")
                .field("sha256", &sha256.is_some())
                .field("md5", &md5.is_some())
                .finish(),
        }
    }
}

impl std::fmt::Debug for SipUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One thing an API key may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Submit messages and batches, cancel scheduled ones (`"send"`).
    Send,
    /// Read messages, batches, events (`"read"`).
    Read,
    /// Manage tenant settings: opt-out lists, webhooks, dead letters (`"admin"`).
    Admin,
}

impl Scope {
    /// Every scope, in the order they are written.
    pub const ALL: [Scope; 3] = [Scope::Send, Scope::Read, Scope::Admin];

    /// The word used in the config file and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Send => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

/// A set of [`Scope`]s (a tiny bit set: cheap to copy into every request).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope: what a key written as a plain hash string gets.
    pub const ALL: Scopes = Scopes(1 | 2 | 4);
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);

    /// The set holding exactly `scopes`.
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// True when `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(
                Scope::ALL
                    .iter()
                    .filter(|s| self.contains(**s))
                    .map(|s| s.as_str()),
            )
            .finish()
    }
}

/// A tenant's quotas and allow/block lists. Everything `None`/empty means "no limit".
/// Quotas and `max_tps` count messages (one per recipient), not segments; `max_segments`
/// bounds the segments of each message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// Messages accepted per UTC day (`daily_quota`).
    pub daily_quota: Option<u64>,
    /// Messages accepted per UTC calendar month (`monthly_quota`).
    pub monthly_quota: Option<u64>,
    /// Most segments one message may need (`max_segments`), below the API's own cap.
    pub max_segments: Option<u16>,
    /// If set, only these channels (`allowed_channels`).
    pub allowed_channels: Option<Vec<Channel>>,
    /// If set, only destinations in these ISO 3166 alpha-2 countries (`allowed_countries`).
    pub allowed_countries: Option<Vec<String>>,
    /// Destinations in these countries are refused (`blocked_countries`).
    pub blocked_countries: Vec<String>,
}

/// A tenant's route plan, mirroring [`switchyard_routing::RoutePlan`] minus the name. The
/// default, as [`switchyard_routing::RoutePlan::open`]: every carrier, nothing blocked, no
/// markup, the default [`Preference`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantRoute {
    /// If set, only these carriers (`allowed_carriers`).
    pub allowed_carriers: Option<Vec<String>>,
    /// Carriers never used (`blocked_carriers`).
    pub blocked_carriers: Vec<String>,
    /// Destinations refused for this tenant (`blocked_prefixes`).
    pub blocked_prefixes: Vec<Prefix>,
    /// Price over cost (`markup_percent`, `markup_fixed`).
    pub markup: Markup,
    /// Candidate ordering (`preference`).
    pub preference: Preference,
}

/// `[[carriers]]`: an SMSC operator or SIP trunk provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carrier {
    /// Unique name (`name`); decks and plans refer to it.
    pub name: String,
    /// What it carries (`channels`).
    pub channels: Vec<Channel>,
    /// Tie-break between equal prices, lower first (`priority`).
    pub priority: u8,
    /// Traffic share among carriers whose scores tie (`weight`).
    pub weight: u32,
    /// Prior on route quality (`quality`).
    pub quality: QualityClass,
    /// Whole-carrier SMS throttle (`max_tps`); the binds' `smpp.tps` add per-bind limits.
    pub max_tps: Option<u32>,
    /// Voice throttle, calls per second (`max_cps`).
    pub max_cps: Option<u32>,
    /// Number rewriting before submission (`tech_prefix`, `strip_digits`, `plus_prefix`).
    pub rewrite: NumberRewrite,
    /// The SMPP connection; present exactly when `channels` has `sms`.
    pub smpp: Option<SmppConfig>,
    /// The SIP trunk (`[carriers.sip]`); only on voice carriers, required for them when the
    /// `[sip]` proxy runs.
    pub sip: Option<SipTrunk>,
    /// The SMTP relay (`[carriers.smtp]`); present exactly when `channels` has `email`.
    pub smtp: Option<super::email::SmtpRelay>,
    /// The RCS Business Messaging agent (`[carriers.rbm]`); present exactly when `channels`
    /// has `rcs`.
    pub rbm: Option<super::chat::RbmAgent>,
    /// The WhatsApp Business number (`[carriers.whatsapp]`); present exactly when `channels`
    /// has `whatsapp`.
    pub whatsapp: Option<super::chat::WhatsappAccount>,
    /// The Telegram bot (`[carriers.telegram]`); present exactly when `channels` has
    /// `telegram`.
    pub telegram: Option<super::chat::TelegramBot>,
    /// The Facebook Page (`[carriers.messenger]`); present exactly when `channels` has
    /// `messenger`.
    pub messenger: Option<super::chat::MessengerPage>,
    /// The gateway's HTTP client for `webhook` messages (`[carriers.webhook]`); present exactly
    /// when `channels` has `webhook`.
    pub webhook: Option<super::chat::WebhookSender>,
}

/// `[sip]`: the SIP proxy's listener and failover timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipSettings {
    /// UDP address the proxy binds (`listen`); a concrete IP, because it goes into Via and
    /// Record-Route.
    pub listen: SocketAddr,
    /// How long a trunk may stay silent (no provisional beyond 100, no final) before the
    /// next trunk is tried (`no_answer_timeout_ms`).
    pub no_answer_timeout: Duration,
    /// The digest realm tenants' PBXs authenticate in (`realm`).
    pub realm: String,
    /// TLS listener (`tls_listen`, with `tls_cert` and `tls_key`, PEM files); `None`: no TLS.
    /// TCP always listens on `listen`'s address and port, next to UDP.
    pub tls: Option<SipTlsListener>,
    /// Digest algorithms offered in a 407, one challenge each, in this order
    /// (`digest_algorithms`, "SHA-256" and/or "MD5"; default SHA-256 then MD5 as RFC 8760
    /// asks). UAs that read only the first challenge and know only MD5 (SIPp 3.6, older
    /// PBXs) need MD5 first.
    pub digest_algorithms: Vec<String>,
    /// How often each trunk is probed with OPTIONS (`options_interval_ms`); `None` (0): never.
    pub options_interval: Option<Duration>,
    /// Longest call (`max_call_duration_s`): a dialog with no BYE after this long is
    /// forgotten, its CDR closed and its call counted as ended (lost BYEs must not hold
    /// concurrent-call slots forever).
    pub max_call_duration: Duration,
    /// Outgoing TCP/TLS connections open at once (`max_outgoing_connections`); a request for
    /// a peer without a connection beyond this fails like an unreachable peer. Responses
    /// never open connections.
    pub max_outgoing_connections: usize,
    /// Stateless answers per second, in all, to requests that no allowed source, trunk,
    /// dialog or digest login vouches for (`unauthenticated_max_rate`): 407 challenges, 403,
    /// 405, 481, OPTIONS. Beyond it such requests are dropped unanswered.
    pub unauthenticated_max_rate: u32,
    /// The same per source IP address (`unauthenticated_max_rate_per_source`).
    pub unauthenticated_max_rate_per_source: u32,
    /// Transactions kept at once (`max_transactions`, read at start): new calls beyond it
    /// get 503; in-dialog requests may use twice as many.
    pub max_transactions: usize,
}

/// The proxy's TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipTlsListener {
    /// Address (`tls_listen`, a concrete IP, usually port 5061).
    pub listen: SocketAddr,
    /// Certificate chain, PEM (`tls_cert`).
    pub cert: PathBuf,
    /// Private key, PEM (`tls_key`).
    pub key: PathBuf,
}

impl SipSettings {
    /// Default `no_answer_timeout_ms`.
    pub const DEFAULT_NO_ANSWER_TIMEOUT_MS: u64 = 5000;
    /// Default `realm`.
    pub const DEFAULT_REALM: &'static str = "switchyard";
    /// Default `options_interval_ms`.
    pub const DEFAULT_OPTIONS_INTERVAL_MS: u64 = 10_000;
    /// Default `max_call_duration_s` (4 hours).
    pub const DEFAULT_MAX_CALL_DURATION_S: u64 = 4 * 3600;
    /// Default `max_outgoing_connections` (a TCP/TLS trunk needs one, a TCP caller whose
    /// connection closed one more).
    pub const DEFAULT_MAX_OUTGOING_CONNECTIONS: usize = 256;
    /// Default `unauthenticated_max_rate`.
    pub const DEFAULT_UNAUTHENTICATED_MAX_RATE: u32 = 500;
    /// Default `unauthenticated_max_rate_per_source`.
    pub const DEFAULT_UNAUTHENTICATED_MAX_RATE_PER_SOURCE: u32 = 50;
    /// Default `max_transactions`: each call keeps about four transactions for up to 32 s
    /// after it is set up (RFC 3261/6026 wait states), so this holds about 2,000 calls per
    /// second, steady.
    pub const DEFAULT_MAX_TRANSACTIONS: usize = 300_000;
    /// Default `digest_algorithms`: SHA-256 then MD5, as RFC 8760 asks.
    pub const DEFAULT_DIGEST_ALGORITHMS: [&'static str; 2] = ["SHA-256", "MD5"];
}

/// `[carriers.sip]`: where a voice carrier's trunk takes calls and how numbers are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipTrunk {
    /// Trunk host name or IP (`host`).
    pub host: String,
    /// Trunk UDP port (`port`, default 5060).
    pub port: u16,
    /// Request-URI user part rewriting (`tech_prefix`, `strip_digits`); no `+`.
    pub rewrite: NumberRewrite,
    /// Calls in progress on this trunk at most (`max_calls`); the carrier's `max_cps` limits
    /// the rate of new ones.
    pub max_calls: Option<u32>,
    /// How the trunk is reached (`transport`: "udp", the default, "tcp" or "tls").
    pub transport: SipTransport,
    /// For `transport = "tls"`: the CA bundle that signs the trunk's certificate (`tls_ca`);
    /// `None`: the system's roots. The certificate must name `host`.
    pub tls_ca: Option<PathBuf>,
    /// Credentials for the trunk's digest challenges (`username`, `password`); `None`: a
    /// 401/407 from the trunk fails the branch over.
    pub credentials: Option<TrunkCredentials>,
}

/// A SIP transport as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SipTransport {
    /// Datagrams (`"udp"`).
    #[default]
    Udp,
    /// TCP (`"tcp"`).
    Tcp,
    /// TLS over TCP (`"tls"`).
    Tls,
}

/// What the gateway answers a trunk's 401/407 with.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: String,
}

impl std::fmt::Debug for TrunkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SipTrunk {
    /// Default `port`.
    pub const DEFAULT_PORT: u16 = 5060;
}

impl Carrier {
    /// Default `priority`, the routing crate's ([`CarrierConfig::DEFAULT_PRIORITY`]).
    pub const DEFAULT_PRIORITY: u8 = CarrierConfig::DEFAULT_PRIORITY;
    /// Default `weight`, the routing crate's ([`CarrierConfig::DEFAULT_WEIGHT`]).
    pub const DEFAULT_WEIGHT: u32 = CarrierConfig::DEFAULT_WEIGHT;
    /// Default `quality`, the routing crate's ([`CarrierConfig::DEFAULT_QUALITY`]).
    pub const DEFAULT_QUALITY: QualityClass = CarrierConfig::DEFAULT_QUALITY;
}

/// Where the binds of a carrier connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SmppEndpoint {
    /// A real SMSC (`host`, `port`).
    Remote {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The gateway's built-in loopback SMSC (`sandbox = true`): it accepts everything and
    /// returns receipts; the gateway picks the address when it starts it.
    Sandbox,
}

/// SMPP bind type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// bind_transmitter (`"tx"`): submit only; receipts need a separate receiver.
    Transmitter,
    /// bind_receiver (`"rx"`): receipts and MO only.
    Receiver,
    /// bind_transceiver (`"trx"`): both directions on one session.
    Transceiver,
}

/// How long messages are split and tied together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LongMessages {
    /// UDH with 8-bit reference (`"udh"`), the most widely supported.
    Udh,
    /// UDH with 16-bit reference (`"udh16"`).
    Udh16,
    /// SAR TLVs (`"sar"`).
    Sar,
    /// One submit_sm with the whole text in message_payload (`"payload"`); the SMSC splits.
    Payload,
}

/// How a carrier writes message ids, for matching receipts to submissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdFormat {
    /// Learned from the ids themselves (`"auto"`): a hex letter means hex, a run of
    /// digit-only ids means decimal.
    Auto,
    /// Hex digits (`"hex"`).
    Hex,
    /// Decimal digits (`"decimal"`).
    Decimal,
    /// Opaque text, compared case-insensitively (`"text"`).
    Text,
}

/// `[carriers.smpp]`: how to reach a carrier's SMSC and what its binds do. Its `Debug`
/// leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct SmppConfig {
    /// Where to connect.
    pub endpoint: SmppEndpoint,
    /// Bind credentials (`system_id`, at most 15 characters).
    pub system_id: String,
    /// Bind password (`password`, at most 8 characters). Kept in the file because SMPP needs
    /// the clear text; protect the file accordingly.
    pub password: String,
    /// `system_type` of the bind (at most 12 characters, often empty).
    pub system_type: String,
    /// Bind type (`bind_type`).
    pub bind_type: BindKind,
    /// Sessions opened in parallel (`binds`).
    pub binds: u16,
    /// Outstanding submit_sm per bind (`window`).
    pub window: u32,
    /// Throttle per bind, messages per second (`tps`); `None`: unlimited.
    pub tps: Option<u32>,
    /// enquire_link interval on an idle bind (`enquire_link_s`).
    pub enquire_link: Duration,
    /// How long a request waits for its response (`response_timeout_s`).
    pub response_timeout: Duration,
    /// First reconnect delay after a bind drops (`reconnect_min_ms`); doubles with jitter…
    pub reconnect_min: Duration,
    /// …up to this (`reconnect_max_ms`).
    pub reconnect_max: Duration,
    /// source_addr_ton; `None`: from the sender's form (E.164 1, short code 3, alphanumeric 5).
    pub source_ton: Option<u8>,
    /// source_addr_npi; `None`: from the sender's form (E.164 1, otherwise 0).
    pub source_npi: Option<u8>,
    /// dest_addr_ton (`dest_ton`).
    pub dest_ton: u8,
    /// dest_addr_npi (`dest_npi`).
    pub dest_npi: u8,
    /// registered_delivery byte of submit_sm (`registered_delivery`): 1 asks for final
    /// receipts.
    pub registered_delivery: u8,
    /// Long message method (`long_messages`).
    pub long_messages: LongMessages,
    /// TLS on the SMPP connection (`tls`, `tls_ca`, `tls_server_name`); `None`: plain TCP.
    pub tls: Option<SmppTls>,
    /// Largest PDU accepted from the SMSC (`max_pdu_len`).
    pub max_pdu_len: u32,
    /// How the carrier writes message ids in submit_sm_resp (`id_format`), and in receipts
    /// unless `receipt_id_format` says otherwise.
    pub id_format: IdFormat,
    /// How the carrier writes message ids in receipts (`receipt_id_format`); `None`: as
    /// `id_format`.
    pub receipt_id_format: Option<IdFormat>,
}

impl std::fmt::Debug for SmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field must be placed here (shown or redacted) to compile.
        let SmppConfig {
            endpoint,
            system_id,
            password: _,
            system_type,
            bind_type,
            binds,
            window,
            tps,
            enquire_link,
            response_timeout,
            reconnect_min,
            reconnect_max,
            source_ton,
            source_npi,
            dest_ton,
            dest_npi,
            registered_delivery,
            long_messages,
            tls,
            max_pdu_len,
            id_format,
            receipt_id_format,
        } = self;
        f.debug_struct("SmppConfig")
            .field("endpoint", endpoint)
            .field("system_id", system_id)
            .field("password", &REDACTED)
            .field("system_type", system_type)
            .field("bind_type", bind_type)
            .field("binds", binds)
            .field("window", window)
            .field("tps", tps)
            .field("enquire_link", enquire_link)
            .field("response_timeout", response_timeout)
            .field("reconnect_min", reconnect_min)
            .field("reconnect_max", reconnect_max)
            .field("source_ton", source_ton)
            .field("source_npi", source_npi)
            .field("dest_ton", dest_ton)
            .field("dest_npi", dest_npi)
            .field("registered_delivery", registered_delivery)
            .field("long_messages", long_messages)
            .field("tls", tls)
            .field("max_pdu_len", max_pdu_len)
            .field("id_format", id_format)
            .field("receipt_id_format", receipt_id_format)
            .finish()
    }
}

impl SmppConfig {
    /// Default `bind_type`.
    pub const DEFAULT_BIND_TYPE: BindKind = BindKind::Transceiver;
    /// Default `binds`.
    pub const DEFAULT_BINDS: u16 = 1;
    /// Default `window`: outstanding submit_sm per bind.
    pub const DEFAULT_WINDOW: u32 = 10;
    /// Default `enquire_link_s`.
    pub const DEFAULT_ENQUIRE_LINK_S: u64 = 30;
    /// Default `response_timeout_s`.
    pub const DEFAULT_RESPONSE_TIMEOUT_S: u64 = 10;
    /// Default `reconnect_min_ms`.
    pub const DEFAULT_RECONNECT_MIN_MS: u64 = 500;
    /// Default `reconnect_max_ms`.
    pub const DEFAULT_RECONNECT_MAX_MS: u64 = 30_000;
    /// Default `dest_ton` (international).
    pub const DEFAULT_DEST_TON: u8 = 1;
    /// Default `dest_npi` (ISDN, E.164).
    pub const DEFAULT_DEST_NPI: u8 = 1;
    /// Default `registered_delivery`: final receipts.
    pub const DEFAULT_REGISTERED_DELIVERY: u8 = 1;
    /// Default `long_messages`.
    pub const DEFAULT_LONG_MESSAGES: LongMessages = LongMessages::Udh;
    /// Default `max_pdu_len` (64 KiB).
    pub const DEFAULT_MAX_PDU_LEN: u32 = 64 * 1024;
    /// Default `id_format`.
    pub const DEFAULT_ID_FORMAT: IdFormat = IdFormat::Auto;

    /// Defaults for every optional SMPP setting, with the given endpoint and credentials.
    pub fn new(endpoint: SmppEndpoint, system_id: &str, password: &str) -> Self {
        Self {
            endpoint,
            system_id: system_id.to_owned(),
            password: password.to_owned(),
            system_type: String::new(),
            bind_type: Self::DEFAULT_BIND_TYPE,
            binds: Self::DEFAULT_BINDS,
            window: Self::DEFAULT_WINDOW,
            tps: None,
            enquire_link: Duration::from_secs(Self::DEFAULT_ENQUIRE_LINK_S),
            response_timeout: Duration::from_secs(Self::DEFAULT_RESPONSE_TIMEOUT_S),
            reconnect_min: Duration::from_millis(Self::DEFAULT_RECONNECT_MIN_MS),
            reconnect_max: Duration::from_millis(Self::DEFAULT_RECONNECT_MAX_MS),
            source_ton: None,
            source_npi: None,
            dest_ton: Self::DEFAULT_DEST_TON,
            dest_npi: Self::DEFAULT_DEST_NPI,
            registered_delivery: Self::DEFAULT_REGISTERED_DELIVERY,
            long_messages: Self::DEFAULT_LONG_MESSAGES,
            tls: None,
            max_pdu_len: Self::DEFAULT_MAX_PDU_LEN,
            id_format: Self::DEFAULT_ID_FORMAT,
            receipt_id_format: None,
        }
    }
}

/// TLS settings of an SMPP connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmppTls {
    /// PEM bundle of CAs to trust instead of the system roots (`tls_ca`), relative to the
    /// config file's folder.
    pub ca: Option<PathBuf>,
    /// Name to verify in the certificate when it differs from `host` (`tls_server_name`).
    pub server_name: Option<String>,
}

/// Where a deck's rows come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeckSource {
    /// A CSV file (`path`), relative to the config file's folder.
    File(PathBuf),
    /// The built-in sandbox deck (`sandbox = true`): every country code at one flat price.
    Sandbox,
}

/// `[[decks]]`: one carrier's price list for one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeckConfig {
    /// The carrier it prices (`carrier`).
    pub carrier: String,
    /// The channel it prices (`channel`).
    pub channel: Channel,
    /// Where the rows come from.
    pub source: DeckSource,
    /// Replaces every row's currency (`currency`), for decks whose currency column is wrong.
    pub currency: Option<Currency>,
}

/// `[routing]`: how the routing table compares and protects carriers.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingSettings {
    /// Currency prices are compared and reported in (`base_currency`).
    pub base_currency: Currency,
    /// Conversions of deck currencies to the base (`fx`).
    pub fx: Vec<FxRate>,
    /// Voice candidates are ranked by the cost of a call this long (`voice_reference_s`).
    pub voice_reference_secs: u32,
    /// Lookup-time scoring (`[routing.scoring]`).
    pub scoring: ScoringConfig,
    /// Circuit breakers (`[routing.breaker]`).
    pub breaker: BreakerConfig,
}

impl RoutingSettings {
    /// Default `base_currency`.
    pub const DEFAULT_BASE_CURRENCY: &'static str = "EUR";
    /// Default `voice_reference_s`.
    pub const DEFAULT_VOICE_REFERENCE_S: u32 = 90;
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            base_currency: match Currency::parse(Self::DEFAULT_BASE_CURRENCY) {
                Ok(c) => c,
                // Invariant: the constant is three ASCII letters, which always parse.
                Err(_) => unreachable!("DEFAULT_BASE_CURRENCY is a valid code"),
            },
            fx: Vec::new(),
            voice_reference_secs: Self::DEFAULT_VOICE_REFERENCE_S,
            scoring: ScoringConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}
