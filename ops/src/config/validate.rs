//! Checks across keys, run after parsing on the whole [`Config`]: unique names, references
//! between sections, combinations that cannot work, and files that must exist. Each error
//! points at the key it blames (its line comes from where parsing saw that key); a key that
//! already failed parsing is not blamed twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use switchyard_routing::Channel;

use super::error::ConfigErrorKind;
use super::model::{Carrier, Config, DeckSource, SipSecret, SmppEndpoint, StoreKind, Tenant};
use super::reader::Report;
use super::smpp_server::MoDelivery;

/// Runs every check. `base_dir` is the config file's folder; without it (text with no file),
/// referenced files are not checked.
pub(crate) fn validate(config: &Config, base_dir: Option<&Path>, report: &mut Report<'_>) {
    server(config, base_dir, report);
    store(config, report);
    tenants(config, report);
    operator(config, report);
    super::events::validate_numbers(
        config.tenants.iter().map(|t| (t.name.as_str(), &t.events)),
        report,
    );
    let chat_carriers: std::collections::HashSet<&str> = config
        .carriers
        .iter()
        .filter(|c| {
            c.rbm.is_some() || c.whatsapp.is_some() || c.telegram.is_some() || c.messenger.is_some()
        })
        .map(|c| c.name.as_str())
        .collect();
    super::events::validate_accounts(
        config.tenants.iter().map(|t| (t.name.as_str(), &t.events)),
        &chat_carriers,
        report,
    );
    super::events::validate_webhook_urls(
        config.tenants.iter().map(|t| &t.events),
        &config.egress,
        report,
    );
    carriers(config, base_dir, report);
    decks(config, base_dir, report);
    routing(config, report);
    smpp_server(config, base_dir, report);
    if let (Some(tls), Some(dir)) = (config.sip.as_ref().and_then(|s| s.tls.as_ref()), base_dir) {
        file_exists(report, "sip.tls_cert", &Config::resolve(dir, &tls.cert));
        file_exists(report, "sip.tls_key", &Config::resolve(dir, &tls.key));
    }
    for (i, c) in config.carriers.iter().enumerate() {
        if let (Some(ca), Some(dir)) = (c.sip.as_ref().and_then(|s| s.tls_ca.as_ref()), base_dir) {
            file_exists(
                report,
                &format!("carriers[{i}].sip.tls_ca"),
                &Config::resolve(dir, ca),
            );
        }
    }
    if let (Some(ca), Some(dir)) = (&config.webhooks.tls_ca, base_dir) {
        file_exists(report, "webhooks.tls_ca", &Config::resolve(dir, ca));
    }
}

fn server(config: &Config, base_dir: Option<&Path>, report: &mut Report<'_>) {
    let s = &config.server;
    if let Some(ops) = s.ops_listen {
        if ops == s.listen && ops.port() != 0 {
            report.at_path(
                "server.ops_listen",
                ConfigErrorKind::Invalid(format!(
                    "{ops} is also server.listen; give the operator endpoints their own address"
                )),
            );
        }
    }
    if s.idle_timeout < s.request_timeout && !report.has_error("server.idle_timeout_s") {
        report.at_path(
            "server.idle_timeout_s",
            ConfigErrorKind::Invalid(format!(
                "must be at least request_timeout_s ({} s): a request still being answered \
                 would lose its connection",
                s.request_timeout.as_secs()
            )),
        );
    }
    if let (Some(tls), Some(dir)) = (&s.tls, base_dir) {
        file_exists(report, "server.tls_cert", &Config::resolve(dir, &tls.cert));
        file_exists(report, "server.tls_key", &Config::resolve(dir, &tls.key));
        if let Some(ca) = &tls.client_ca {
            file_exists(report, "server.tls_client_ca", &Config::resolve(dir, ca));
        }
    }
}

/// Operator keys are distinct, and never also a tenant's key (a key names one caller).
fn operator(config: &Config, report: &mut Report<'_>) {
    let mut seen = HashMap::new();
    for (i, hash) in config.operator.api_keys.iter().enumerate() {
        let path = format!("operator.api_keys[{i}]");
        if let Some(first) = seen.insert(*hash, path.clone()) {
            report.at_path(
                &path,
                ConfigErrorKind::Invalid(format!(
                    "the same key hash is listed twice (first at {first})"
                )),
            );
        }
        let tenant = config
            .tenants
            .iter()
            .enumerate()
            .find_map(|(t, x)| x.api_keys.iter().position(|k| k == hash).map(|k| (t, k)));
        if let Some((t, k)) = tenant {
            report.at_path(
                &path,
                ConfigErrorKind::Invalid(format!(
                    "this key hash is also tenants[{t}].api_keys[{k}]: an operator key must not \
                     be a tenant's"
                )),
            );
        }
    }
}

fn store(config: &Config, report: &mut Report<'_>) {
    let s = &config.store;
    match s.kind {
        StoreKind::Postgres if s.url.is_none() && !report.has_error("store.url_env") => {
            report.at_path(
                "store.url",
                ConfigErrorKind::Invalid(
                    "the postgres store needs url (or url_env): where the database is".into(),
                ),
            );
        }
        StoreKind::Postgres if s.path.is_some() => report.at_path(
            "store.path",
            ConfigErrorKind::Invalid("path is the SQLite file; the postgres store has url".into()),
        ),
        StoreKind::Sqlite if s.url.is_some() => report.at_path(
            "store.url",
            ConfigErrorKind::Invalid("url is for kind = \"postgres\"".into()),
        ),
        StoreKind::Sqlite if s.tls_ca.is_some() => report.at_path(
            "store.tls_ca",
            ConfigErrorKind::Invalid("tls_ca is for kind = \"postgres\"".into()),
        ),
        _ => {}
    }
}

fn tenants(config: &Config, report: &mut Report<'_>) {
    if config.tenants.is_empty() {
        report.at_path(
            "tenants",
            ConfigErrorKind::Invalid(
                "at least one [[tenants]] entry is required (nobody could submit)".into(),
            ),
        );
    }
    let mut names: HashMap<&str, String> = HashMap::new();
    // Hash → (tenant index, key path) of its first use, so a key is never ambiguous.
    let mut hashes = HashMap::new();
    for (i, t) in config.tenants.iter().enumerate() {
        let path = format!("tenants[{i}]");
        unique(
            report,
            &mut names,
            "tenant",
            &t.name,
            &format!("{path}.name"),
        );
        if t.api_keys.is_empty() && !report.has_error(&format!("{path}.api_keys")) {
            report.at_path(
                &format!("{path}.api_keys"),
                ConfigErrorKind::Invalid("at least one key hash is required".into()),
            );
        }
        for (k, hash) in t.api_keys.iter().enumerate() {
            let key_path = format!("{path}.api_keys[{k}]");
            if let Some((first_tenant, first_path)) = hashes.insert(*hash, (i, key_path.clone())) {
                let why = if first_tenant == i {
                    format!("the same key hash is listed twice (first at {first_path})")
                } else {
                    format!("this key hash is also {first_path}: a key must identify one tenant")
                };
                report.at_path(&key_path, ConfigErrorKind::Invalid(why));
            }
        }
        plan_references(config, t, &path, report);
    }
}

/// The carriers a tenant's plan names must exist.
fn plan_references(config: &Config, t: &Tenant, path: &str, report: &mut Report<'_>) {
    let lists = [
        (
            "allowed_carriers",
            t.route.allowed_carriers.as_deref().unwrap_or(&[]),
        ),
        ("blocked_carriers", &t.route.blocked_carriers[..]),
    ];
    for (key, names) in lists {
        for (j, name) in names.iter().enumerate() {
            if config.carrier(name).is_none() {
                report.at_path(
                    &format!("{path}.{key}[{j}]"),
                    ConfigErrorKind::UnknownReference {
                        what: "carrier",
                        name: name.clone(),
                    },
                );
            }
        }
    }
    if t.route.allowed_carriers.as_ref().is_some_and(Vec::is_empty) {
        report.at_path(
            &format!("{path}.allowed_carriers"),
            ConfigErrorKind::Invalid(
                "an empty list allows no carrier; remove the key to allow all".into(),
            ),
        );
    }
}

fn carriers(config: &Config, base_dir: Option<&Path>, report: &mut Report<'_>) {
    if config.carriers.is_empty() {
        report.at_path(
            "carriers",
            ConfigErrorKind::Invalid(
                "at least one [[carriers]] entry is required (nothing could be delivered)".into(),
            ),
        );
    }
    let mut names: HashMap<&str, String> = HashMap::new();
    for (i, c) in config.carriers.iter().enumerate() {
        let path = format!("carriers[{i}]");
        unique(
            report,
            &mut names,
            "carrier",
            &c.name,
            &format!("{path}.name"),
        );
        carrier(c, &path, base_dir, report);
    }
    sip(config, report);
}

/// The proxy needs a trunk for every voice carrier, and each source IP maps to one tenant.
fn sip(config: &Config, report: &mut Report<'_>) {
    if config.sip.is_some() {
        for (i, c) in config.carriers.iter().enumerate() {
            if c.channels.contains(&Channel::Voice) && c.sip.is_none() {
                report.at_path(
                    &format!("carriers[{i}].channels"),
                    ConfigErrorKind::Invalid(format!(
                        "carrier {:?} offers voice and [sip] is configured, but it has no \
                         [carriers.sip] section",
                        c.name
                    )),
                );
            }
        }
    }
    let mut owners: HashMap<std::net::IpAddr, &str> = HashMap::new();
    for (i, t) in config.tenants.iter().enumerate() {
        for (j, entry) in t.sip.allow.iter().enumerate() {
            let ip = entry.ip;
            match owners.get(&ip) {
                Some(other) if *other != t.name => report.at_path(
                    &format!("tenants[{i}].sip_allow[{j}]"),
                    ConfigErrorKind::Invalid(format!(
                        "{ip} is already allowed for tenant {other:?}; a source address \
                         identifies one tenant"
                    )),
                ),
                _ => {
                    owners.insert(ip, &t.name);
                }
            }
        }
    }
    // A login with stored hashes can answer only with the algorithms it has a hash for.
    if let Some(sip) = &config.sip {
        let offered = |a: &str| sip.digest_algorithms.iter().any(|o| o == a);
        for (i, t) in config.tenants.iter().enumerate() {
            for (j, u) in t.sip.users.iter().enumerate() {
                if let SipSecret::Ha1 { sha256, md5 } = &u.secret {
                    let usable = (sha256.is_some() && offered("SHA-256"))
                        || (md5.is_some() && offered("MD5"));
                    if !usable {
                        report.at_path(
                            &format!("tenants[{i}].sip_users[{j}]"),
                            ConfigErrorKind::Invalid(format!(
                                "{:?} can never log in: it has no HA1 hash for any of \
                                 sip.digest_algorithms ({})",
                                u.username,
                                sip.digest_algorithms.join(", ")
                            )),
                        );
                    }
                }
            }
        }
    }
    let mut users: HashMap<&str, &str> = HashMap::new();
    for (i, t) in config.tenants.iter().enumerate() {
        for (j, u) in t.sip.users.iter().enumerate() {
            match users.get(u.username.as_str()) {
                Some(other) => report.at_path(
                    &format!("tenants[{i}].sip_users[{j}].username"),
                    ConfigErrorKind::Invalid(format!(
                        "{:?} is already a SIP user of tenant {other:?}; a username identifies \
                         one tenant",
                        u.username
                    )),
                ),
                None => {
                    users.insert(&u.username, &t.name);
                }
            }
        }
    }
}

/// A carrier's connection `section` must be there exactly when it offers `channel` (a carrier
/// without channels is reported elsewhere).
fn section_for_channel(
    c: &Carrier,
    path: &str,
    channel: Channel,
    section: &str,
    present: bool,
    report: &mut Report<'_>,
) {
    let offered = c.channels.contains(&channel);
    if offered && !present {
        report.at_path(
            &format!("{path}.channels"),
            ConfigErrorKind::Invalid(format!(
                "carrier {:?} offers {channel} but has no [carriers.{section}] section",
                c.name
            )),
        );
    } else if present && !offered && !c.channels.is_empty() {
        report.at_path(
            &format!("{path}.{section}"),
            ConfigErrorKind::Invalid(format!(
                "a [carriers.{section}] section on a carrier without the \"{channel}\" channel is never used"
            )),
        );
    }
}

fn carrier(c: &Carrier, path: &str, base_dir: Option<&Path>, report: &mut Report<'_>) {
    let sms = c.channels.contains(&Channel::Sms);
    for (channel, section, present) in [
        (Channel::Sms, "smpp", c.smpp.is_some()),
        (Channel::Email, "smtp", c.smtp.is_some()),
        (Channel::Rcs, "rbm", c.rbm.is_some()),
        (Channel::Whatsapp, "whatsapp", c.whatsapp.is_some()),
        (Channel::Telegram, "telegram", c.telegram.is_some()),
        (Channel::Messenger, "messenger", c.messenger.is_some()),
        (Channel::Webhook, "webhook", c.webhook.is_some()),
    ] {
        section_for_channel(c, path, channel, section, present, report);
    }
    let providers = [
        c.rbm.is_some(),
        c.whatsapp.is_some(),
        c.telegram.is_some(),
        c.messenger.is_some(),
        c.webhook.is_some(),
    ];
    if providers.iter().filter(|&&p| p).count() > 1 {
        report.at_path(
            &format!("{path}.channels"),
            ConfigErrorKind::Invalid(format!(
                "carrier {:?} has several provider accounts (rbm, whatsapp, telegram, \
                 messenger, webhook): give each its own carrier",
                c.name
            )),
        );
    }
    if c.max_tps.is_some() && !sms {
        report.at_path(
            &format!("{path}.max_tps"),
            ConfigErrorKind::Invalid("max_tps limits SMS; this carrier has no sms channel".into()),
        );
    }
    if c.max_cps.is_some() && !c.channels.contains(&Channel::Voice) {
        report.at_path(
            &format!("{path}.max_cps"),
            ConfigErrorKind::Invalid(
                "max_cps limits calls; this carrier has no voice channel".into(),
            ),
        );
    }
    let cas = [
        ("smtp", c.smtp.as_ref().and_then(|s| s.tls_ca.as_ref())),
        ("rbm", c.rbm.as_ref().and_then(|s| s.http.tls_ca.as_ref())),
        (
            "whatsapp",
            c.whatsapp.as_ref().and_then(|s| s.http.tls_ca.as_ref()),
        ),
        (
            "telegram",
            c.telegram.as_ref().and_then(|s| s.http.tls_ca.as_ref()),
        ),
        (
            "messenger",
            c.messenger.as_ref().and_then(|s| s.http.tls_ca.as_ref()),
        ),
        (
            "webhook",
            c.webhook.as_ref().and_then(|s| s.tls_ca.as_ref()),
        ),
    ];
    for (section, ca) in cas {
        if let (Some(ca), Some(dir)) = (ca, base_dir) {
            file_exists(
                report,
                &format!("{path}.{section}.tls_ca"),
                &Config::resolve(dir, ca),
            );
        }
    }
    if c.sip.is_some() && !c.channels.contains(&Channel::Voice) && !c.channels.is_empty() {
        report.at_path(
            &format!("{path}.sip"),
            ConfigErrorKind::Invalid(
                "a sip section on a carrier without the \"voice\" channel is never used".into(),
            ),
        );
    }
    let Some(s) = &c.smpp else { return };
    let sp = format!("{path}.smpp");
    if s.reconnect_min > s.reconnect_max {
        report.at_path(
            &format!("{sp}.reconnect_min_ms"),
            ConfigErrorKind::Invalid(format!(
                "must not exceed reconnect_max_ms ({} > {})",
                s.reconnect_min.as_millis(),
                s.reconnect_max.as_millis()
            )),
        );
    }
    if let (Some(tls), Some(dir)) = (&s.tls, base_dir) {
        if let Some(ca) = &tls.ca {
            file_exists(report, &format!("{sp}.tls_ca"), &Config::resolve(dir, ca));
        }
    }
    if matches!(s.endpoint, SmppEndpoint::Sandbox) && s.tls.is_some() {
        report.at_path(
            &format!("{sp}.tls"),
            ConfigErrorKind::Invalid("the sandbox SMSC speaks plain TCP over loopback".into()),
        );
    }
}

fn decks(config: &Config, base_dir: Option<&Path>, report: &mut Report<'_>) {
    let mut seen: HashMap<(&str, Channel, &DeckSource), usize> = HashMap::new();
    for (i, d) in config.decks.iter().enumerate() {
        let path = format!("decks[{i}]");
        match config.carrier(&d.carrier) {
            None => report.at_path(
                &format!("{path}.carrier"),
                ConfigErrorKind::UnknownReference {
                    what: "carrier",
                    name: d.carrier.clone(),
                },
            ),
            Some(c) if !c.channels.contains(&d.channel) => report.at_path(
                &format!("{path}.channel"),
                ConfigErrorKind::Invalid(format!(
                    "carrier {:?} does not offer {} (its channels: {})",
                    c.name,
                    d.channel,
                    c.channels
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            Some(_) => {}
        }
        if let Some(first) = seen.insert((&d.carrier, d.channel, &d.source), i) {
            report.at_path(
                &path,
                ConfigErrorKind::Invalid(format!(
                    "same carrier, channel and rows as decks[{first}]"
                )),
            );
        }
        if let (DeckSource::File(p), Some(dir)) = (&d.source, base_dir) {
            file_exists(report, &format!("{path}.path"), &Config::resolve(dir, p));
        }
    }
}

fn routing(config: &Config, report: &mut Report<'_>) {
    let r = &config.routing;
    let mut seen = Vec::new();
    for fx in &r.fx {
        let path = format!("routing.fx.{}", fx.currency);
        if fx.currency == r.base_currency {
            report.at_path(
                &path,
                ConfigErrorKind::Invalid(format!(
                    "{} is the base currency; it needs no exchange rate",
                    fx.currency
                )),
            );
        }
        if seen.contains(&fx.currency) {
            report.at_path(
                &path,
                ConfigErrorKind::Invalid("listed twice (keys differ only in case)".into()),
            );
        }
        seen.push(fx.currency);
    }
    if r.breaker.cooldown > r.breaker.max_cooldown {
        report.at_path(
            "routing.breaker.cooldown_s",
            ConfigErrorKind::Invalid(format!(
                "must not exceed max_cooldown_s ({} > {})",
                r.breaker.cooldown.as_secs(),
                r.breaker.max_cooldown.as_secs()
            )),
        );
    }
}

/// The SMPP server's listeners are its own (no other listener of the gateway on the same
/// address and port), its TLS files exist, every system_id names one login, and a tenant that
/// takes MO over SMPP can bind.
fn smpp_server(config: &Config, base_dir: Option<&Path>, report: &mut Report<'_>) {
    if let Some(s) = &config.smpp_server {
        let mut others: Vec<(&str, SocketAddr)> = vec![("server.listen", config.server.listen)];
        others.extend(config.server.ops_listen.map(|a| ("server.ops_listen", a)));
        if let Some(sip) = &config.sip {
            others.push(("sip.listen", sip.listen));
            others.extend(sip.tls.as_ref().map(|t| ("sip.tls_listen", t.listen)));
        }
        let mut ours = vec![("smpp_server.listen", s.listen)];
        if let Some(tls) = &s.tls {
            if clash(s.listen, tls.listen) {
                report.at_path(
                    "smpp_server.tls_listen",
                    ConfigErrorKind::Invalid(format!(
                        "{} overlaps smpp_server.listen ({}); give TLS its own port",
                        tls.listen, s.listen
                    )),
                );
            }
            ours.push(("smpp_server.tls_listen", tls.listen));
            if let Some(dir) = base_dir {
                file_exists(
                    report,
                    "smpp_server.tls_cert",
                    &Config::resolve(dir, &tls.cert),
                );
                file_exists(
                    report,
                    "smpp_server.tls_key",
                    &Config::resolve(dir, &tls.key),
                );
            }
        }
        for (path, addr) in ours {
            if let Some((other, at)) = others.iter().find(|(_, o)| clash(addr, *o)) {
                report.at_path(
                    path,
                    ConfigErrorKind::Invalid(format!(
                        "{addr} overlaps {other} ({at}); give the SMPP server its own address \
                         or port"
                    )),
                );
            }
        }
    }
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (i, t) in config.tenants.iter().enumerate() {
        for (j, u) in t.smpp.users.iter().enumerate() {
            unique(
                report,
                &mut ids,
                "SMPP system_id",
                &u.system_id,
                &format!("tenants[{i}].smpp_users[{j}].system_id"),
            );
        }
        if t.smpp.mo_delivery != MoDelivery::Webhook {
            let why = if config.smpp_server.is_none() {
                Some("there is no [smpp_server] to deliver through")
            } else if t.smpp.users.is_empty()
                && !report.has_error(&format!("tenants[{i}].smpp_users"))
            {
                Some("the tenant has no smpp_users to bind with")
            } else {
                None
            };
            if let Some(why) = why {
                report.at_path(
                    &format!("tenants[{i}].mo_delivery"),
                    ConfigErrorKind::Invalid(format!(
                        "MO messages delivered over SMPP would never arrive: {why}"
                    )),
                );
            }
        }
    }
}

/// Whether two TCP listeners cannot both bind: the same port (not 0, which picks a free one)
/// on the same address, or on the unspecified address of the same family.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// Records `name` at `path`, reporting it if it was seen before.
fn unique<'c>(
    report: &mut Report<'_>,
    names: &mut HashMap<&'c str, String>,
    what: &'static str,
    name: &'c str,
    path: &str,
) {
    if name.is_empty() {
        return; // Missing or invalid: already reported.
    }
    match names.get(name) {
        Some(first) => report.at_path(
            path,
            ConfigErrorKind::Duplicate {
                what,
                name: name.to_owned(),
                first: first.clone(),
            },
        ),
        None => {
            names.insert(name, path.to_owned());
        }
    }
}

/// Reports `resolved` at `path` unless it is a readable regular file.
fn file_exists(report: &mut Report<'_>, path: &str, resolved: &Path) {
    let problem = match std::fs::metadata(resolved) {
        Ok(m) if m.is_file() => return,
        Ok(_) => "not a regular file".to_owned(),
        Err(e) => e.kind().to_string(),
    };
    report.at_path(
        path,
        ConfigErrorKind::MissingFile {
            path: resolved.display().to_string(),
            reason: problem,
        },
    );
}
