//! From the spanned TOML tree to [`Config`]: every key is read through [`Table`], which checks
//! its type and range and records errors with their position. What can be checked from one
//! value alone (a socket address, a currency code, a prefix) is checked here; checks across keys
//! are in `validate`.
//!
//! A value that fails keeps its default in the returned `Config`, so the rest of the file is
//! still read and checked: the caller throws the `Config` away if anything was reported.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_routing::{
    BreakerConfig, Channel, Currency, FxRate, Markup, NumberRewrite, Preference, Prefix,
    QualityClass, ScoringConfig, E164,
};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::ConfigErrorKind;
use super::keys::ApiKeyHash;
use super::model::{
    BindKind, Carrier, Config, DeckConfig, DeckSource, Durability, IdFormat, LongMessages,
    OperatorConfig, RoutingSettings, Scope, Scopes, ServerConfig, ServerTls, SipAllow, SipSecret,
    SipSettings, SipTlsListener, SipTransport, SipTrunk, SipUser, SmppConfig, SmppEndpoint,
    SmppTls, StoreConfig, StoreKind, Tenant, TenantLimits, TenantRoute, TenantSip,
    TrunkCredentials,
};
use super::reader::{
    expect_decimal, expect_float, expect_str, non_empty_path, wrong_type, Report, Table,
};

/// Channel words.
pub(crate) const CHANNELS: &[(&str, Channel)] = &[
    ("sms", Channel::Sms),
    ("voice", Channel::Voice),
    ("email", Channel::Email),
    ("rcs", Channel::Rcs),
    ("whatsapp", Channel::Whatsapp),
    ("telegram", Channel::Telegram),
    ("messenger", Channel::Messenger),
    ("webhook", Channel::Webhook),
];

/// Channels priced by rate decks.
const DECK_CHANNELS: &[(&str, Channel)] = &[
    ("sms", Channel::Sms),
    ("voice", Channel::Voice),
    ("rcs", Channel::Rcs),
    ("whatsapp", Channel::Whatsapp),
];

/// Valid SMPP numbering plan indicators (SMPP 3.4 §5.2.6).
const NPI_VALUES: &[u8] = &[0, 1, 3, 4, 6, 8, 9, 10, 14, 18];

/// Longest tenant or carrier name.
const MAX_NAME: usize = 64;

/// Reads the whole document. Errors go to `report`.
pub(crate) fn document(report: &mut Report<'_>, root: &Spanned<DeTable<'_>>) -> Config {
    let mut t = Table::new(String::new(), root.get_ref(), root.span());
    let server = match t.table(report, "server") {
        Some(s) => server(report, s),
        None => ServerConfig::default(),
    };
    let store = match t.table(report, "store") {
        Some(s) => store(report, s),
        None => StoreConfig::default(),
    };
    let tenants = t
        .tables(report, "tenants")
        .into_iter()
        .map(|x| tenant(report, x))
        .collect();
    let carriers = t
        .tables(report, "carriers")
        .into_iter()
        .map(|x| carrier(report, x))
        .collect();
    let decks = t
        .tables(report, "decks")
        .into_iter()
        .filter_map(|x| deck(report, x))
        .collect();
    let routing = match t.table(report, "routing") {
        Some(r) => routing(report, r),
        None => RoutingSettings::default(),
    };
    let webhooks = match t.table(report, "webhooks") {
        Some(w) => super::events::webhooks(report, w),
        None => super::events::WebhookSettings::default(),
    };
    let sip = t.table(report, "sip").map(|s| sip(report, s));
    let smpp_server = t
        .table(report, "smpp_server")
        .map(|s| super::smpp_server::smpp_server(report, s));
    let voice = match t.table(report, "voice") {
        Some(v) => super::voice::voice(report, v),
        None => super::voice::VoiceSettings::default(),
    };
    let operator = match t.table(report, "operator") {
        Some(o) => operator(report, o),
        None => OperatorConfig::default(),
    };
    let inbound = match t.table(report, "inbound") {
        Some(i) => super::inbound::inbound(report, i),
        None => super::inbound::InboundSettings::default(),
    };
    let retention = match t.table(report, "retention") {
        Some(r) => super::retention::retention(report, r),
        None => super::retention::RetentionSettings::default(),
    };
    let queues = match t.table(report, "queues") {
        Some(q) => super::queues::queues(report, q),
        None => super::queues::QueueSettings::default(),
    };
    let egress = match t.table(report, "egress") {
        Some(e) => super::egress::egress(report, e),
        None => super::egress::EgressPolicy::default(),
    };
    let sse = match t.table(report, "sse") {
        Some(s) => super::events::sse(report, s),
        None => super::events::SseSettings::default(),
    };
    let node = match t.table(report, "node") {
        Some(n) => super::node::node(report, n),
        None => super::node::NodeSettings::default(),
    };
    let log = match t.table(report, "log") {
        Some(l) => super::log::log(report, l),
        None => super::log::LogSettings::default(),
    };
    t.finish(report);
    Config {
        server,
        store,
        tenants,
        carriers,
        decks,
        routing,
        webhooks,
        sip,
        smpp_server,
        voice,
        operator,
        inbound,
        retention,
        queues,
        egress,
        sse,
        node,
        log,
    }
}

fn server(report: &mut Report<'_>, mut t: Table<'_, '_>) -> ServerConfig {
    let d = ServerConfig::default();
    let listen = socket_address(report, &mut t, "listen").unwrap_or(d.listen);
    let ops_listen = socket_address(report, &mut t, "ops_listen");
    let data_dir = non_empty_path(report, &mut t, "data_dir").unwrap_or(d.data_dir);
    let shutdown_timeout = Duration::from_secs(t.int_or(
        report,
        "shutdown_timeout_s",
        0,
        3600,
        ServerConfig::DEFAULT_SHUTDOWN_TIMEOUT_S,
    ));
    let max_body_bytes = t.int_or(report, "max_body_bytes", 1024, 256 << 20, d.max_body_bytes);
    let max_connections = t.int_or(
        report,
        "max_connections",
        1,
        1_000_000,
        ServerConfig::DEFAULT_MAX_CONNECTIONS,
    );
    let header_read_timeout = Duration::from_secs(t.int_or(
        report,
        "header_read_timeout_s",
        1,
        300,
        ServerConfig::DEFAULT_HEADER_READ_TIMEOUT_S,
    ));
    let request_timeout = Duration::from_secs(t.int_or(
        report,
        "request_timeout_s",
        1,
        3600,
        ServerConfig::DEFAULT_REQUEST_TIMEOUT_S,
    ));
    // At least 20 s: event streams send a keep-alive every 15 s.
    let idle_timeout = Duration::from_secs(t.int_or(
        report,
        "idle_timeout_s",
        20,
        86_400,
        ServerConfig::DEFAULT_IDLE_TIMEOUT_S,
    ));
    let tls_cert = non_empty_path(report, &mut t, "tls_cert");
    let tls_key = non_empty_path(report, &mut t, "tls_key");
    let client_ca = non_empty_path(report, &mut t, "tls_client_ca");
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert,
            key,
            client_ca,
        }),
        (cert, key) => {
            let given = cert.is_some() || key.is_some() || client_ca.is_some();
            for (name, missing) in [("tls_cert", cert.is_none()), ("tls_key", key.is_none())] {
                if given && missing && !report.has_error(&t.key_path(name)) {
                    t.missing(report, name);
                }
            }
            None
        }
    };
    t.finish(report);
    ServerConfig {
        listen,
        ops_listen,
        data_dir,
        shutdown_timeout,
        max_body_bytes,
        max_connections,
        header_read_timeout,
        request_timeout,
        idle_timeout,
        tls,
    }
}

/// An IP address with a port (`"127.0.0.1:8080"`, `"[::]:8080"`).
fn socket_address(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<SocketAddr> {
    let v = t.raw(report, key)?;
    let path = t.key_path(key);
    let s = expect_str(report, v, &path)?;
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(format!(
                    "{s:?} is not an IP address with a port, such as \"127.0.0.1:8080\" \
                     or \"[::]:8080\""
                )),
            );
            None
        }
    }
}

/// `[operator]`: `api_keys`, hashes as for tenants (every entry a `"sha256:…"` string).
fn operator(report: &mut Report<'_>, mut t: Table<'_, '_>) -> OperatorConfig {
    let mut api_keys = Vec::new();
    for (i, (k, span)) in t
        .strings(report, "api_keys")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match ApiKeyHash::parse(k) {
            Ok(h) => api_keys.push(h),
            Err(kind) => report.at_span(span, &format!("{}[{i}]", t.key_path("api_keys")), kind),
        }
    }
    t.finish(report);
    OperatorConfig { api_keys }
}

fn store(report: &mut Report<'_>, mut t: Table<'_, '_>) -> StoreConfig {
    let kind = t
        .choice(
            report,
            "kind",
            &[
                ("sqlite", StoreKind::Sqlite),
                ("postgres", StoreKind::Postgres),
            ],
        )
        .unwrap_or(StoreConfig::DEFAULT_KIND);
    let path = non_empty_path(report, &mut t, "path");
    let linger = t.int_or(
        report,
        "group_commit_linger_ms",
        0,
        1000,
        StoreConfig::DEFAULT_LINGER_MS,
    );
    let url = super::chat::secret(report, &mut t, "url");
    let pool_size = t.int_or(report, "pool_size", 2, 256, StoreConfig::DEFAULT_POOL_SIZE);
    let tls_ca = non_empty_path(report, &mut t, "tls_ca");
    let durability = t
        .choice(
            report,
            "durability",
            &[("fsync", Durability::Fsync), ("os", Durability::Os)],
        )
        .unwrap_or(Durability::Fsync);
    t.finish(report);
    StoreConfig {
        kind,
        path,
        group_commit_linger: Duration::from_millis(linger),
        url,
        pool_size,
        tls_ca,
        durability,
    }
}

fn tenant(report: &mut Report<'_>, mut t: Table<'_, '_>) -> Tenant {
    let d = TenantRoute::default();
    let name = name(report, &mut t);
    let (api_keys, api_key_scopes) = api_keys(report, &mut t);
    let allowed_carriers = t
        .strings(report, "allowed_carriers")
        .map(|v| v.into_iter().map(|(s, _)| s).collect());
    let blocked_carriers = t
        .strings(report, "blocked_carriers")
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    let mut blocked_prefixes = Vec::new();
    for (i, (p, span)) in t
        .strings(report, "blocked_prefixes")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match Prefix::parse(p) {
            Ok(x) => blocked_prefixes.push(x),
            Err(e) => report.at_span(
                span,
                &format!("{}[{i}]", t.key_path("blocked_prefixes")),
                ConfigErrorKind::Invalid(format!("prefix {p:?}: {e}")),
            ),
        }
    }
    let basis_points = markup_percent(report, &mut t).unwrap_or(d.markup.basis_points);
    let fixed = t.decimal(report, "markup_fixed").unwrap_or(d.markup.fixed);
    let preference = t
        .choice(
            report,
            "preference",
            &[
                ("cheapest", Preference::Cheapest),
                ("quality", Preference::Quality),
                ("weighted", Preference::Weighted),
            ],
        )
        .unwrap_or(d.preference);
    let default_sender = t.raw(report, "default_sender").and_then(|v| {
        let path = t.key_path("default_sender");
        let s = expect_str(report, v, &path)?;
        match sender_problem(s) {
            None => Some(s.to_owned()),
            Some(why) => {
                report.at_span(&v.span(), &path, ConfigErrorKind::Invalid(why));
                None
            }
        }
    });
    let max_tps = t.int(report, "max_tps", 1, 1_000_000);
    let limits = tenant_limits(report, &mut t);
    let events = super::events::tenant_events(report, &mut t);
    let sip = tenant_sip(report, &mut t);
    let smpp = super::smpp_server::tenant_smpp(report, &mut t, &events.numbers);
    let fairness = super::queues::tenant_fairness(report, &mut t);
    t.finish(report);
    Tenant {
        name,
        api_keys,
        route: TenantRoute {
            allowed_carriers,
            blocked_carriers,
            blocked_prefixes,
            markup: Markup {
                basis_points,
                fixed,
            },
            preference,
        },
        default_sender,
        max_tps,
        api_key_scopes,
        limits,
        events,
        sip,
        smpp,
        fairness,
    }
}

/// A tenant's `sip_allow`, `sip_users`, `sip_max_cps` and `sip_max_calls`.
fn tenant_sip(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> TenantSip {
    let mut allow = Vec::new();
    for (i, (a, span)) in t
        .strings(report, "sip_allow")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match sip_allow(a) {
            Some(entry) => allow.push(entry),
            None => report.at_span(
                span,
                &format!("{}[{i}]", t.key_path("sip_allow")),
                ConfigErrorKind::Invalid(format!(
                    "{a:?} is not an IP address, optionally with a transport and a port, such \
                     as \"192.0.2.10\", \"udp:192.0.2.10:5060\", \"tcp:192.0.2.10\" or \
                     \"tls:[2001:db8::1]:5061\""
                )),
            ),
        }
    }
    let mut users = Vec::new();
    for mut u in t.tables(report, "sip_users") {
        let username = u.req_string(report, "username");
        let password = u.string(report, "password");
        let sha256 = ha1(report, &mut u, "ha1_sha256", 64);
        let md5 = ha1(report, &mut u, "ha1_md5", 32);
        if let Some(name) = &username {
            if name.is_empty() || name.contains(['"', '\\', ':']) || !name.is_ascii() {
                report.at_path(
                    &u.key_path("username"),
                    ConfigErrorKind::Invalid(format!(
                        "{name:?}: a digest username is non-empty ASCII without '\"', '\\' or ':'"
                    )),
                );
            }
        }
        let hashed = u.has(report, "ha1_sha256") || u.has(report, "ha1_md5");
        let secret = match password {
            Some(pw) if hashed => {
                report.at_path(
                    &u.key_path("password"),
                    ConfigErrorKind::Invalid(
                        "give the password or its HA1 hashes (ha1_sha256, ha1_md5), not both"
                            .into(),
                    ),
                );
                Some(SipSecret::Password(pw))
            }
            Some(pw) => {
                if pw.len() < 8 {
                    report.at_path(
                        &u.key_path("password"),
                        ConfigErrorKind::Invalid(
                            "a SIP password needs at least 8 characters".into(),
                        ),
                    );
                }
                Some(SipSecret::Password(pw))
            }
            None if !hashed => {
                u.missing(report, "password");
                None
            }
            // A malformed hash has been reported where it is.
            None if sha256.is_none() && md5.is_none() => None,
            None => Some(SipSecret::Ha1 { sha256, md5 }),
        };
        u.finish(report);
        if let (Some(username), Some(secret)) = (username, secret) {
            users.push(SipUser { username, secret });
        }
    }
    TenantSip {
        allow,
        users,
        max_cps: t.int(report, "sip_max_cps", 1, 100_000),
        max_calls: t.int(report, "sip_max_calls", 1, 1_000_000),
    }
}

/// One `sip_allow` entry: `[udp:|tcp:|tls:]IP[:port]` (IPv6 with a port in brackets).
fn sip_allow(s: &str) -> Option<SipAllow> {
    let (transport, rest) = match s.split_once(':') {
        Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Some(SipTransport::Udp), rest),
        Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Some(SipTransport::Tcp), rest),
        Some((t, rest)) if t.eq_ignore_ascii_case("tls") => (Some(SipTransport::Tls), rest),
        _ => (None, s),
    };
    if let Ok(ip) = rest.parse::<std::net::IpAddr>() {
        return Some(SipAllow {
            ip,
            transport,
            port: None,
        });
    }
    let addr = rest.parse::<SocketAddr>().ok().filter(|a| a.port() != 0)?;
    Some(SipAllow {
        ip: addr.ip(),
        transport,
        port: Some(addr.port()),
    })
}

/// A stored digest HA1 (`ha1_sha256`, `ha1_md5`): `digits` hex digits, kept lower-case.
fn ha1(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    digits: usize,
) -> Option<String> {
    let h = t.string(report, key)?;
    if h.len() == digits && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(h.to_ascii_lowercase());
    }
    report.at_path(
        &t.key_path(key),
        ConfigErrorKind::Invalid(format!(
            "an HA1 hash is {digits} hex digits: H(username \":\" realm \":\" password) \
             with [sip] realm"
        )),
    );
    None
}

/// `api_keys`: each entry a `"sha256:…"` string (every scope) or a table
/// `{ hash = "sha256:…", scopes = ["send", "read", "admin"] }`. Returns the hashes and their
/// scopes, index for index.
fn api_keys(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> (Vec<ApiKeyHash>, Vec<Scopes>) {
    let mut hashes = Vec::new();
    let mut scopes = Vec::new();
    let path = t.key_path("api_keys");
    let Some(v) = t.raw(report, "api_keys") else {
        t.missing(report, "api_keys");
        return (hashes, scopes);
    };
    let DeValue::Array(items) = v.get_ref() else {
        wrong_type(
            report,
            v,
            &path,
            "an array of key hashes or { hash, scopes } tables",
            v.get_ref(),
        );
        return (hashes, scopes);
    };
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        report.note(&p, &item.span());
        match item.get_ref() {
            DeValue::String(k) => match ApiKeyHash::parse(k) {
                Ok(h) => {
                    hashes.push(h);
                    scopes.push(Scopes::ALL);
                }
                Err(kind) => report.at_span(&item.span(), &p, kind),
            },
            DeValue::Table(tbl) => {
                let mut e = Table::new(p.clone(), tbl, item.span());
                let hash = e.req_string(report, "hash").and_then(|h| {
                    ApiKeyHash::parse(&h)
                        .map_err(|kind| report.at_span(&item.span(), &e.key_path("hash"), kind))
                        .ok()
                });
                let mut set = Vec::new();
                match e.strings(report, "scopes") {
                    None if !e.has(report, "scopes") => e.missing(report, "scopes"),
                    None => {}
                    Some(words) => {
                        for (j, (w, span)) in words.iter().enumerate() {
                            match Scope::ALL.iter().find(|s| s.as_str() == w) {
                                Some(s) => set.push(*s),
                                None => report.at_span(
                                    span,
                                    &format!("{}[{j}]", e.key_path("scopes")),
                                    ConfigErrorKind::Invalid(format!(
                                        "scope {w:?} is not one of send, read, admin"
                                    )),
                                ),
                            }
                        }
                    }
                }
                e.finish(report);
                if let Some(h) = hash {
                    hashes.push(h);
                    scopes.push(Scopes::of(&set));
                }
            }
            other => wrong_type(
                report,
                item,
                &p,
                "a key hash string or a { hash, scopes } table",
                other,
            ),
        }
    }
    (hashes, scopes)
}

/// Quotas, segment cap, channel and country lists of a tenant.
fn tenant_limits(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> TenantLimits {
    let daily_quota = t.int(report, "daily_quota", 1, i64::MAX);
    let monthly_quota = t.int(report, "monthly_quota", 1, i64::MAX);
    let max_segments = t.int(report, "max_segments", 1, 255);
    let allowed_channels = t.strings(report, "allowed_channels").map(|words| {
        let path = t.key_path("allowed_channels");
        words
            .iter()
            .enumerate()
            .filter_map(|(i, (w, span))| {
                let found = CHANNELS.iter().find(|(n, _)| n == w).map(|(_, c)| *c);
                if found.is_none() {
                    report.at_span(
                        span,
                        &format!("{path}[{i}]"),
                        ConfigErrorKind::Invalid(format!("channel {w:?} is not one of sms, voice")),
                    );
                }
                found
            })
            .collect()
    });
    let mut countries = |key: &'static str| {
        let path = t.key_path(key);
        t.strings(report, key).map(|words| {
            words
                .iter()
                .enumerate()
                .filter_map(|(i, (w, span))| {
                    let ok = w.len() == 2 && w.bytes().all(|b| b.is_ascii_alphabetic());
                    if !ok {
                        report.at_span(
                            span,
                            &format!("{path}[{i}]"),
                            ConfigErrorKind::Invalid(format!(
                                "{w:?} is not an ISO 3166 alpha-2 country code (\"GB\", \"US\")"
                            )),
                        );
                    }
                    ok.then(|| w.to_ascii_uppercase())
                })
                .collect::<Vec<String>>()
        })
    };
    let allowed_countries = countries("allowed_countries");
    let blocked_countries = countries("blocked_countries").unwrap_or_default();
    TenantLimits {
        daily_quota,
        monthly_quota,
        max_segments,
        allowed_channels,
        allowed_countries,
        blocked_countries,
    }
}

/// `markup_percent` as basis points: 0 to 1000 %, at most two decimals.
fn markup_percent(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> Option<u32> {
    let v = t.raw(report, "markup_percent")?;
    let path = t.key_path("markup_percent");
    let pct = expect_float(report, v, &path, 0.0, 1000.0)?;
    // Exact conversion from the literal text: 1 % is 10^7 billionths of a unit.
    let exact = expect_decimal(report, v, &path)?;
    if exact.nanos() % 10_000_000 != 0 {
        report.at_span(
            &v.span(),
            &path,
            ConfigErrorKind::Invalid(format!("{pct} has more than two decimals")),
        );
        return None;
    }
    u32::try_from(exact.nanos() / 10_000_000).ok()
}

/// Why `s` cannot be a sender address, if it cannot.
fn sender_problem(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('+') {
        return E164::parse(rest)
            .err()
            .map(|e| format!("{s:?} is not an E.164 number: {e}"));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return (s.len() > 15).then(|| format!("{s:?}: a numeric sender has at most 15 digits"));
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'.' | b'_' | b'&'));
    if s.is_empty() || s.len() > 11 || !ok_chars {
        return Some(format!(
            "{s:?}: a sender is \"+\" and an E.164 number, a short code, or 1 to 11 letters, \
             digits, spaces or -._&"
        ));
    }
    None
}

fn carrier(report: &mut Report<'_>, mut t: Table<'_, '_>) -> Carrier {
    let name = name(report, &mut t);
    let channels = match t.raw(report, "channels") {
        None => {
            t.missing(report, "channels");
            Vec::new()
        }
        Some(_) => channels(report, &mut t),
    };
    let priority = t.int_or(report, "priority", 0, 255, Carrier::DEFAULT_PRIORITY);
    let weight = t.int_or(report, "weight", 1, 1_000_000, Carrier::DEFAULT_WEIGHT);
    let quality = t
        .choice(
            report,
            "quality",
            &[
                ("premium", QualityClass::Premium),
                ("standard", QualityClass::Standard),
                ("economy", QualityClass::Economy),
            ],
        )
        .unwrap_or(Carrier::DEFAULT_QUALITY);
    let max_tps = t.int(report, "max_tps", 1, 1_000_000);
    let max_cps = t.int(report, "max_cps", 1, 100_000);
    let tech_prefix = tech_prefix(report, &mut t);
    let no_rewrite = NumberRewrite::default();
    let strip_digits = t.int_or(report, "strip_digits", 0, 14, no_rewrite.strip_digits);
    let plus = t.bool(report, "plus_prefix", no_rewrite.plus);
    let smpp = t.table(report, "smpp").map(|s| smpp(report, s));
    let sip = t.table(report, "sip").map(|s| sip_trunk(report, s));
    let smtp = t
        .table(report, "smtp")
        .map(|s| super::email::smtp(report, s));
    let rbm = t.table(report, "rbm").map(|s| super::chat::rbm(report, s));
    let whatsapp = t
        .table(report, "whatsapp")
        .map(|s| super::chat::whatsapp(report, s));
    let telegram = t
        .table(report, "telegram")
        .map(|s| super::chat::telegram(report, s));
    let messenger = t
        .table(report, "messenger")
        .map(|s| super::chat::messenger(report, s));
    let webhook = t
        .table(report, "webhook")
        .map(|s| super::chat::webhook(report, s));
    t.finish(report);
    Carrier {
        name,
        channels,
        priority,
        weight,
        quality,
        max_tps,
        max_cps,
        rewrite: NumberRewrite {
            strip_digits,
            tech_prefix: tech_prefix.unwrap_or_default(),
            plus,
        },
        smpp,
        sip,
        smtp,
        rbm,
        whatsapp,
        telegram,
        messenger,
        webhook,
    }
}

/// `tech_prefix` of a carrier or of its `[carriers.sip]` table.
fn tech_prefix(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> Option<String> {
    t.raw(report, "tech_prefix").and_then(|v| {
        let path = t.key_path("tech_prefix");
        let s = expect_str(report, v, &path)?;
        let ok = s.len() <= NumberRewrite::MAX_TECH_PREFIX
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'#' || b == b'*');
        if ok {
            Some(s.to_owned())
        } else {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(format!(
                    "{s:?}: digits, # and * only, at most {} characters",
                    NumberRewrite::MAX_TECH_PREFIX
                )),
            );
            None
        }
    })
}

/// `[sip]`: the proxy's listener.
fn sip(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SipSettings {
    let listen = t.raw(report, "listen").and_then(|v| {
        let path = t.key_path("listen");
        let s = expect_str(report, v, &path)?;
        match s.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_unspecified() => Some(a),
            Ok(_) => {
                report.at_span(
                    &v.span(),
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{s:?}: give the concrete IP address peers reach (it goes into Via and \
                         Record-Route), not 0.0.0.0 or [::]"
                    )),
                );
                None
            }
            Err(_) => {
                report.at_span(
                    &v.span(),
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{s:?} is not an IP address with a port, such as \"192.0.2.1:5060\""
                    )),
                );
                None
            }
        }
    });
    if !t.has(report, "listen") {
        t.missing(report, "listen");
    }
    let no_answer = t.int_or(
        report,
        "no_answer_timeout_ms",
        100,
        300_000,
        SipSettings::DEFAULT_NO_ANSWER_TIMEOUT_MS,
    );
    let tls_listen = t
        .string(report, "tls_listen")
        .and_then(|a| match a.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_unspecified() => Some(a),
            _ => {
                report.at_path(
                    &t.key_path("tls_listen"),
                    ConfigErrorKind::Invalid(format!(
                        "{a:?}: give a concrete IP address with a port, such as \"192.0.2.1:5061\""
                    )),
                );
                None
            }
        });
    let tls_cert = non_empty_path(report, &mut t, "tls_cert");
    let tls_key = non_empty_path(report, &mut t, "tls_key");
    let tls = match (tls_listen, tls_cert, tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(SipTlsListener { listen, cert, key }),
        (None, None, None) => None,
        (l, c, k) => {
            for (key, missing) in [
                ("tls_listen", l.is_none()),
                ("tls_cert", c.is_none()),
                ("tls_key", k.is_none()),
            ] {
                if missing && !report.has_error(&t.key_path(key)) {
                    t.missing(report, key);
                }
            }
            None
        }
    };
    let realm = t
        .string(report, "realm")
        .unwrap_or_else(|| SipSettings::DEFAULT_REALM.to_owned());
    if realm.is_empty() || realm.contains(['"', '\\']) || !realm.is_ascii() {
        report.at_path(
            &t.key_path("realm"),
            ConfigErrorKind::Invalid(format!(
                "{realm:?}: a realm is non-empty ASCII without '\"' or '\\'"
            )),
        );
    }
    let mut digest_algorithms = Vec::new();
    match t.strings(report, "digest_algorithms") {
        None => {
            digest_algorithms = SipSettings::DEFAULT_DIGEST_ALGORITHMS
                .iter()
                .map(|a| (*a).to_owned())
                .collect()
        }
        Some(words) => {
            for (i, (w, span)) in words.iter().enumerate() {
                let canonical = match w.to_ascii_uppercase().as_str() {
                    "SHA-256" => "SHA-256",
                    "MD5" => "MD5",
                    _ => {
                        report.at_span(
                            span,
                            &format!("{}[{i}]", t.key_path("digest_algorithms")),
                            ConfigErrorKind::Invalid(format!(
                                "{w:?} is not \"SHA-256\" or \"MD5\""
                            )),
                        );
                        continue;
                    }
                };
                if !digest_algorithms.iter().any(|a| a == canonical) {
                    digest_algorithms.push(canonical.to_owned());
                }
            }
            if digest_algorithms.is_empty() && words.is_empty() {
                report.at_path(
                    &t.key_path("digest_algorithms"),
                    ConfigErrorKind::Invalid("name at least one algorithm".into()),
                );
            }
        }
    }
    let options: u64 = t.int_or(
        report,
        "options_interval_ms",
        0,
        3_600_000,
        SipSettings::DEFAULT_OPTIONS_INTERVAL_MS,
    );
    if options != 0 && options < 500 {
        report.at_path(
            &t.key_path("options_interval_ms"),
            ConfigErrorKind::Invalid(
                "probe trunks at most every 500 ms (0 turns probing off)".into(),
            ),
        );
    }
    let max_call = t.int_or(
        report,
        "max_call_duration_s",
        60,
        7 * 24 * 3600,
        SipSettings::DEFAULT_MAX_CALL_DURATION_S,
    );
    let max_outgoing_connections = t.int_or(
        report,
        "max_outgoing_connections",
        1,
        65_536,
        SipSettings::DEFAULT_MAX_OUTGOING_CONNECTIONS,
    );
    let unauthenticated_max_rate = t.int_or(
        report,
        "unauthenticated_max_rate",
        1,
        1_000_000,
        SipSettings::DEFAULT_UNAUTHENTICATED_MAX_RATE,
    );
    let unauthenticated_max_rate_per_source = t.int_or(
        report,
        "unauthenticated_max_rate_per_source",
        1,
        1_000_000,
        SipSettings::DEFAULT_UNAUTHENTICATED_MAX_RATE_PER_SOURCE,
    );
    let max_transactions = t.int_or(
        report,
        "max_transactions",
        16,
        10_000_000,
        SipSettings::DEFAULT_MAX_TRANSACTIONS,
    );
    t.finish(report);
    SipSettings {
        listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5060))),
        no_answer_timeout: millis(no_answer),
        realm,
        tls,
        digest_algorithms,
        options_interval: (options != 0).then(|| millis(options)),
        max_call_duration: secs(max_call),
        max_outgoing_connections,
        unauthenticated_max_rate,
        unauthenticated_max_rate_per_source,
        max_transactions,
    }
}

/// `[carriers.sip]`: a voice carrier's trunk.
fn sip_trunk(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SipTrunk {
    let host = t.req_string(report, "host").unwrap_or_default();
    let port = t.int_or(report, "port", 1, 65535, SipTrunk::DEFAULT_PORT);
    let tech_prefix = tech_prefix(report, &mut t);
    let no_rewrite = NumberRewrite::default();
    let strip_digits = t.int_or(report, "strip_digits", 0, 14, no_rewrite.strip_digits);
    let max_calls = t.int(report, "max_calls", 1, 1_000_000);
    let transport = t
        .choice(
            report,
            "transport",
            &[
                ("udp", SipTransport::Udp),
                ("tcp", SipTransport::Tcp),
                ("tls", SipTransport::Tls),
            ],
        )
        .unwrap_or_default();
    let ca_span = t.raw(report, "tls_ca").map(|v| v.span());
    let tls_ca = non_empty_path(report, &mut t, "tls_ca");
    if transport != SipTransport::Tls {
        if let Some(span) = ca_span {
            report.at_span(
                &span,
                &t.key_path("tls_ca"),
                ConfigErrorKind::Invalid("has no effect without transport = \"tls\"".into()),
            );
        }
    }
    let username = t.string(report, "username");
    let password = t.string(report, "password");
    let credentials = match (username, password) {
        (Some(username), Some(password)) => Some(TrunkCredentials { username, password }),
        (None, None) => None,
        (Some(_), None) => {
            t.missing(report, "password");
            None
        }
        (None, Some(_)) => {
            t.missing(report, "username");
            None
        }
    };
    t.finish(report);
    SipTrunk {
        host,
        port,
        rewrite: NumberRewrite {
            strip_digits,
            tech_prefix: tech_prefix.unwrap_or_default(),
            plus: no_rewrite.plus,
        },
        max_calls,
        transport,
        tls_ca,
        credentials,
    }
}

/// `channels`: a non-empty list of distinct channel words.
fn channels(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> Vec<Channel> {
    let path = t.key_path("channels");
    let Some(words) = t.strings(report, "channels") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (w, span)) in words.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match CHANNELS.iter().find(|(n, _)| n == w) {
            Some((_, c)) if out.contains(c) => report.at_span(
                span,
                &p,
                ConfigErrorKind::Invalid(format!("channel {w:?} is listed twice")),
            ),
            Some((_, c)) => out.push(*c),
            None => report.at_span(
                span,
                &p,
                ConfigErrorKind::NotOneOf {
                    allowed: "\"sms\", \"voice\"".into(),
                    got: w.clone(),
                },
            ),
        }
    }
    if words.is_empty() {
        report.at_path(
            &path,
            ConfigErrorKind::Invalid("at least one channel is required".into()),
        );
    }
    out
}

fn smpp(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SmppConfig {
    let sandbox = t.bool(report, "sandbox", false);
    let host_v = t.raw(report, "host").map(|v| v.span());
    let host = t.string(report, "host");
    let port_v = t.raw(report, "port").map(|v| v.span());
    let port: Option<u16> = t.int(report, "port", 1, 65535);
    let endpoint = if sandbox {
        for (key, span) in [("host", host_v), ("port", port_v)] {
            if let Some(span) = span {
                report.at_span(
                    &span,
                    &t.key_path(key),
                    ConfigErrorKind::Invalid(
                        "not allowed with sandbox = true (the gateway picks the sandbox's address)"
                            .into(),
                    ),
                );
            }
        }
        SmppEndpoint::Sandbox
    } else {
        if host_v.is_none() {
            t.missing(report, "host");
        }
        if port_v.is_none() {
            t.missing(report, "port");
        }
        if let (Some(h), Some(span)) = (&host, &host_v) {
            if h.trim().is_empty() || h.contains(char::is_whitespace) {
                report.at_span(
                    span,
                    &t.key_path("host"),
                    ConfigErrorKind::Invalid(format!("{h:?} is not a host name or address")),
                );
            }
        }
        SmppEndpoint::Remote {
            host: host.unwrap_or_default(),
            port: port.unwrap_or(0),
        }
    };
    let system_id = match t.raw(report, "system_id") {
        None => {
            t.missing(report, "system_id");
            String::new()
        }
        Some(_) => bounded_string(report, &mut t, "system_id", 1, 15),
    };
    let password = bounded_string(report, &mut t, "password", 0, 8);
    let system_type = bounded_string(report, &mut t, "system_type", 0, 12);
    let mut c = SmppConfig::new(endpoint, &system_id, &password);
    c.system_type = system_type;
    if let Some(b) = t.choice(
        report,
        "bind_type",
        &[
            ("tx", BindKind::Transmitter),
            ("rx", BindKind::Receiver),
            ("trx", BindKind::Transceiver),
        ],
    ) {
        c.bind_type = b;
    }
    c.binds = t.int_or(report, "binds", 1, 64, c.binds);
    c.window = t.int_or(report, "window", 1, 10_000, c.window);
    c.tps = t.int(report, "tps", 1, 100_000);
    c.enquire_link = secs(t.int_or(
        report,
        "enquire_link_s",
        1,
        3600,
        SmppConfig::DEFAULT_ENQUIRE_LINK_S,
    ));
    c.response_timeout = secs(t.int_or(
        report,
        "response_timeout_s",
        1,
        300,
        SmppConfig::DEFAULT_RESPONSE_TIMEOUT_S,
    ));
    c.reconnect_min = millis(t.int_or(
        report,
        "reconnect_min_ms",
        10,
        600_000,
        SmppConfig::DEFAULT_RECONNECT_MIN_MS,
    ));
    c.reconnect_max = millis(t.int_or(
        report,
        "reconnect_max_ms",
        10,
        3_600_000,
        SmppConfig::DEFAULT_RECONNECT_MAX_MS,
    ));
    c.source_ton = t.int(report, "source_ton", 0, 6);
    c.source_npi = npi(report, &mut t, "source_npi");
    c.dest_ton = t.int_or(report, "dest_ton", 0, 6, c.dest_ton);
    c.dest_npi = npi(report, &mut t, "dest_npi").unwrap_or(c.dest_npi);
    c.registered_delivery = t.int_or(report, "registered_delivery", 0, 31, c.registered_delivery);
    if let Some(l) = t.choice(
        report,
        "long_messages",
        &[
            ("udh", LongMessages::Udh),
            ("udh16", LongMessages::Udh16),
            ("sar", LongMessages::Sar),
            ("payload", LongMessages::Payload),
        ],
    ) {
        c.long_messages = l;
    }
    let tls = t.bool(report, "tls", false);
    let ca_span = t.raw(report, "tls_ca").map(|v| v.span());
    let ca = non_empty_path(report, &mut t, "tls_ca");
    let sn_span = t.raw(report, "tls_server_name").map(|v| v.span());
    let server_name = t.string(report, "tls_server_name");
    if tls {
        c.tls = Some(SmppTls { ca, server_name });
    } else {
        for (key, span) in [("tls_ca", ca_span), ("tls_server_name", sn_span)] {
            if let Some(span) = span {
                report.at_span(
                    &span,
                    &t.key_path(key),
                    ConfigErrorKind::Invalid("has no effect without tls = true".into()),
                );
            }
        }
    }
    c.max_pdu_len = t.int_or(report, "max_pdu_len", 1024, 1 << 20, c.max_pdu_len);
    let formats = [
        ("auto", IdFormat::Auto),
        ("hex", IdFormat::Hex),
        ("decimal", IdFormat::Decimal),
        ("text", IdFormat::Text),
    ];
    if let Some(f) = t.choice(report, "id_format", &formats) {
        c.id_format = f;
    }
    if let Some(f) = t.choice(report, "receipt_id_format", &formats) {
        c.receipt_id_format = Some(f);
    }
    t.finish(report);
    c
}

/// An NPI value from the SMPP table.
fn npi(report: &mut Report<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<u8> {
    let v: u8 = t.int(report, key, 0, 18)?;
    if NPI_VALUES.contains(&v) {
        Some(v)
    } else {
        if let Some(raw) = t.raw(report, key) {
            report.at_span(
                &raw.span(),
                &t.key_path(key),
                ConfigErrorKind::NotOneOf {
                    allowed: "0, 1, 3, 4, 6, 8, 9, 10, 14, 18".into(),
                    got: v.to_string(),
                },
            );
        }
        None
    }
}

fn deck(report: &mut Report<'_>, mut t: Table<'_, '_>) -> Option<DeckConfig> {
    let carrier = t.req_string(report, "carrier");
    let channel = match t.raw(report, "channel") {
        None => {
            t.missing(report, "channel");
            None
        }
        Some(_) => t.choice(report, "channel", DECK_CHANNELS),
    };
    let sandbox = t.bool(report, "sandbox", false);
    let path_span = t.raw(report, "path").map(|v| v.span());
    let path = non_empty_path(report, &mut t, "path");
    let source = match (sandbox, path, path_span) {
        (true, _, Some(span)) => {
            report.at_span(
                &span,
                &t.key_path("path"),
                ConfigErrorKind::Invalid("not allowed with sandbox = true".into()),
            );
            None
        }
        (true, _, None) => Some(DeckSource::Sandbox),
        (false, Some(p), _) => Some(DeckSource::File(p)),
        (false, None, None) => {
            t.missing(report, "path");
            None
        }
        (false, None, Some(_)) => None,
    };
    let currency = currency(report, &mut t, "currency");
    t.finish(report);
    Some(DeckConfig {
        carrier: carrier?,
        channel: channel?,
        source: source?,
        currency,
    })
}

fn routing(report: &mut Report<'_>, mut t: Table<'_, '_>) -> RoutingSettings {
    let d = RoutingSettings::default();
    let base_currency = currency(report, &mut t, "base_currency").unwrap_or(d.base_currency);
    let mut fx = Vec::new();
    if let Some(table) = t.table(report, "fx") {
        for (code, path, v) in table.entries(report) {
            let k_span = v.span();
            let Ok(currency) = Currency::parse(code) else {
                report.at_span(
                    &k_span,
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{code:?} is not a three-letter ISO 4217 currency code"
                    )),
                );
                continue;
            };
            match expect_decimal(report, v, &path) {
                Some(p) if p.nanos() == 0 => report.at_span(
                    &k_span,
                    &path,
                    ConfigErrorKind::Invalid("an exchange rate must be above 0".into()),
                ),
                Some(to_base) => fx.push(FxRate { currency, to_base }),
                None => {}
            }
        }
        // Every key of `fx` is a currency: nothing is unknown there.
    }
    let voice_reference_secs =
        t.int_or(report, "voice_reference_s", 1, 3600, d.voice_reference_secs);
    let scoring = match t.table(report, "scoring") {
        Some(s) => scoring(report, s),
        None => ScoringConfig::default(),
    };
    let breaker = match t.table(report, "breaker") {
        Some(b) => breaker(report, b),
        None => BreakerConfig::default(),
    };
    t.finish(report);
    RoutingSettings {
        base_currency,
        fx,
        voice_reference_secs,
        scoring,
        breaker,
    }
}

fn scoring(report: &mut Report<'_>, mut t: Table<'_, '_>) -> ScoringConfig {
    let mut s = ScoringConfig::default();
    if let Some(mut w) = t.table(report, "health_weight") {
        for (i, key) in ["critical", "high", "normal", "low"]
            .into_iter()
            .enumerate()
        {
            if let (Some(x), Some(slot)) =
                (w.float(report, key, 0.0, 1.0), s.health_weight.get_mut(i))
            {
                *slot = x as f32;
            }
        }
        w.finish(report);
    }
    if let Some(ms) = t.int::<u64>(report, "latency_reference_ms", 1, 60_000) {
        s.latency_reference = Duration::from_millis(ms);
    }
    if let Some(x) = t.float(report, "tie_band", 0.0, 1.0) {
        s.tie_band = x as f32;
    }
    t.finish(report);
    s
}

fn breaker(report: &mut Report<'_>, mut t: Table<'_, '_>) -> BreakerConfig {
    let mut b = BreakerConfig::default();
    b.consecutive_failures = t.int_or(
        report,
        "consecutive_failures",
        1,
        10_000,
        b.consecutive_failures,
    );
    if let Some(x) = t.float(report, "error_rate", 0.01, 1.0) {
        b.error_rate = x as f32;
    }
    b.min_requests = t.int_or(report, "min_requests", 1, 1_000_000, b.min_requests);
    if let Some(s) = t.int(report, "window_s", 1, 3600) {
        b.window = secs(s);
    }
    if let Some(s) = t.int(report, "cooldown_s", 1, 3600) {
        b.cooldown = secs(s);
    }
    if let Some(s) = t.int(report, "max_cooldown_s", 1, 86_400) {
        b.max_cooldown = secs(s);
    }
    b.half_open_probes = t.int_or(report, "half_open_probes", 1, 1000, b.half_open_probes);
    if let Some(s) = t.int(report, "probe_timeout_s", 1, 3600) {
        b.probe_timeout = secs(s);
    }
    t.finish(report);
    b
}

/// `name` of a tenant or carrier: required, 1 to 64 letters, digits and `-_.`, spaces inside.
fn name(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> String {
    let Some(v) = t.raw(report, "name") else {
        t.missing(report, "name");
        return String::new();
    };
    let path = t.key_path("name");
    let Some(s) = expect_str(report, v, &path) else {
        return String::new();
    };
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.trim() == s
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' '));
    if !ok {
        report.at_span(
            &v.span(),
            &path,
            ConfigErrorKind::Invalid(format!(
                "{s:?}: a name is 1 to {MAX_NAME} ASCII letters, digits, spaces or -_. \
                 (no leading or trailing space)"
            )),
        );
    }
    s.to_owned()
}

/// A string of `min..=max` bytes, empty when absent or wrong.
fn bounded_string(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: usize,
    max: usize,
) -> String {
    let Some(v) = t.raw(report, key) else {
        return String::new();
    };
    let path = t.key_path(key);
    let Some(s) = expect_str(report, v, &path) else {
        return String::new();
    };
    if s.len() < min || s.len() > max || !s.is_ascii() {
        report.at_span(
            &v.span(),
            &path,
            ConfigErrorKind::Invalid(format!(
                "must be {min} to {max} ASCII characters (got {})",
                s.chars().count()
            )),
        );
    }
    s.to_owned()
}

/// An ISO 4217 code.
fn currency(report: &mut Report<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<Currency> {
    let v = t.raw(report, key)?;
    let path = t.key_path(key);
    let s = expect_str(report, v, &path)?;
    match Currency::parse(s) {
        Ok(c) => Some(c),
        Err(_) => {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(format!(
                    "{s:?} is not a three-letter ISO 4217 currency code"
                )),
            );
            None
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
