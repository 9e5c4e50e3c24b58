//! `[smpp_server]`: the SMPP listener for tenants. Switchyard plays the SMSC; tenants' systems
//! bind as ESMEs with a login of their tenant (`smpp_users`, [`TenantSmpp`], keys of
//! `[[tenants]]`). Without the table no SMPP listener runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::egress::Cidr;
use super::error::ConfigErrorKind;
use super::reader::{expect_str, non_empty_path, Report, Table};
use super::redacted::REDACTED;

/// `[smpp_server]`: where ESMEs connect and how connections are bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppServerSettings {
    /// TCP address of the plain listener (`listen`, required), e.g. `"0.0.0.0:2775"`.
    pub listen: SocketAddr,
    /// SMPP over TLS (`tls_listen`, `tls_cert`, `tls_key`: all three or none); `None`: plain
    /// TCP only.
    pub tls: Option<SmppServerTls>,
    /// Connections open at once, bound or not (`max_connections`); beyond it a new
    /// connection is closed at once.
    pub max_connections: usize,
    /// A connection that has not bound this long after it opened is closed
    /// (`bind_timeout_s`).
    pub bind_timeout: Duration,
    /// A connection on which the ESME sends nothing this long, not even an enquire_link, is
    /// closed (`idle_timeout_s`).
    pub idle_timeout: Duration,
    /// The server sends enquire_link to an ESME silent this long (`enquire_link_interval_s`);
    /// `None` (0): never.
    pub enquire_link_interval: Option<Duration>,
    /// How long a deliver_sm (receipt or MO) waits for its deliver_sm_resp before it is sent
    /// again (`response_timeout_s`).
    pub response_timeout: Duration,
    /// Largest command_length accepted from an ESME (`max_pdu_len`); a larger one closes the
    /// connection.
    pub max_pdu_len: u32,
    /// deliver_sm awaiting their response per bind (`receipt_window`).
    pub receipt_window: usize,
    /// How long a receipt or MO message waits for a receiver bind of its user
    /// (`receipt_validity_s`); older ones are dropped (counted as expired), never sent late.
    pub receipt_validity: Duration,
    /// The server's own system_id, sent in every bind_resp (`system_id`).
    pub system_id: String,
}

/// The SMPP server's TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppServerTls {
    /// Address (`tls_listen`).
    pub listen: SocketAddr,
    /// Certificate chain, PEM (`tls_cert`), relative to the config file's folder.
    pub cert: PathBuf,
    /// Private key, PEM (`tls_key`), relative to the config file's folder.
    pub key: PathBuf,
}

impl SmppServerSettings {
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
    /// Default `bind_timeout_s`.
    pub const DEFAULT_BIND_TIMEOUT_S: u64 = 10;
    /// Default `idle_timeout_s`.
    pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 120;
    /// Default `enquire_link_interval_s`.
    pub const DEFAULT_ENQUIRE_LINK_INTERVAL_S: u64 = 30;
    /// Default `response_timeout_s`.
    pub const DEFAULT_RESPONSE_TIMEOUT_S: u64 = 10;
    /// Default `max_pdu_len` (64 KiB).
    pub const DEFAULT_MAX_PDU_LEN: u32 = 65_536;
    /// Default `receipt_window`.
    pub const DEFAULT_RECEIPT_WINDOW: usize = 64;
    /// Default `receipt_validity_s` (72 hours).
    pub const DEFAULT_RECEIPT_VALIDITY_S: u64 = 72 * 3600;
    /// Default `system_id`.
    pub const DEFAULT_SYSTEM_ID: &'static str = "switchyard";

    /// A plain listener on `listen` with every other setting at its default.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: None,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            bind_timeout: Duration::from_secs(Self::DEFAULT_BIND_TIMEOUT_S),
            idle_timeout: Duration::from_secs(Self::DEFAULT_IDLE_TIMEOUT_S),
            enquire_link_interval: Some(Duration::from_secs(Self::DEFAULT_ENQUIRE_LINK_INTERVAL_S)),
            response_timeout: Duration::from_secs(Self::DEFAULT_RESPONSE_TIMEOUT_S),
            max_pdu_len: Self::DEFAULT_MAX_PDU_LEN,
            receipt_window: Self::DEFAULT_RECEIPT_WINDOW,
            receipt_validity: Duration::from_secs(Self::DEFAULT_RECEIPT_VALIDITY_S),
            system_id: Self::DEFAULT_SYSTEM_ID.to_owned(),
        }
    }
}

/// A tenant's SMPP access (`smpp_users`, `mo_delivery`, flattened into the tenant table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantSmpp {
    /// Who may bind as this tenant (`smpp_users`); empty: nobody.
    pub users: Vec<SmppUser>,
    /// Where the tenant's inbound (MO) messages go (`mo_delivery`).
    pub mo_delivery: MoDelivery,
}

impl TenantSmpp {
    /// The user whose binds get the MO messages to `number` (digits), when `mo_delivery` is
    /// `smpp` or `both`: the user that names it in `mo_numbers`, else the first user without
    /// `mo_numbers`. One user at most, so each MO is sent once, not once per user.
    pub fn mo_user(&self, number: &str) -> Option<&SmppUser> {
        if self.mo_delivery == MoDelivery::Webhook {
            return None;
        }
        let number = number.strip_prefix('+').unwrap_or(number);
        self.users
            .iter()
            .find(|u| {
                u.mo_numbers
                    .as_ref()
                    .is_some_and(|n| n.iter().any(|x| x == number))
            })
            .or_else(|| self.users.iter().find(|u| u.mo_numbers.is_none()))
    }
}

/// Where a tenant's inbound (MO) messages go (`mo_delivery`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MoDelivery {
    /// The tenant's webhook and event stream, as every event (`"webhook"`).
    #[default]
    Webhook,
    /// deliver_sm to the tenant's receiver and transceiver binds (`"smpp"`).
    Smpp,
    /// Both (`"both"`).
    Both,
}

/// One login an ESME of the tenant binds with (an entry of `smpp_users`). Its `Debug` leaves
/// the password out ([`SmppSecret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppUser {
    /// The bind's system_id (`system_id`): 1 to 15 printable ASCII characters, unique across
    /// all tenants.
    pub system_id: String,
    /// What the bind's password is checked against (`password` or `password_sha256`).
    pub secret: SmppSecret,
    /// Binds open at once with this system_id (`max_binds`); a transceiver counts one.
    pub max_binds: u32,
    /// submit_sm the ESME may have unanswered per bind (`window`); beyond it ESME_RTHROTTLED.
    pub window: u32,
    /// submit_sm per second for this system_id over all its binds (`max_tps`), on top of the
    /// tenant's own `max_tps`; `None`: only the tenant's.
    pub max_tps: Option<u32>,
    /// Source addresses a bind may come from (`allowed_ips`: networks or bare addresses);
    /// empty: any.
    pub allowed_ips: Vec<Cidr>,
    /// When set, a bind must carry exactly this system_type (`system_type`).
    pub system_type: Option<String>,
    /// The tenant's numbers whose MO messages this user's binds get (`mo_numbers`, digits
    /// without `+`); see [`TenantSmpp::mo_user`]. `None` (the key left out): the numbers no
    /// user names, when this is the tenant's first such user; empty: none.
    pub mo_numbers: Option<Vec<String>>,
}

impl SmppUser {
    /// Default `max_binds`.
    pub const DEFAULT_MAX_BINDS: u32 = 4;
    /// Default `window`.
    pub const DEFAULT_WINDOW: u32 = 64;
}

/// What a bind's password is checked against. SMPP sends the password in clear text inside
/// the bind (use the TLS listener on untrusted networks).
#[derive(Clone, PartialEq, Eq)]
pub enum SmppSecret {
    /// The password itself (`password`).
    Password(String),
    /// SHA-256 of the password (`password_sha256`). A password has at most 8 characters, so
    /// this keeps it out of sight, not safe from a brute force: protect the file all the same.
    Sha256([u8; 32]),
}

impl SmppSecret {
    /// Whether `password` (as received in a bind, without its terminating NUL) matches. Both
    /// sides are compared as SHA-256 digests, in constant time, so neither the content nor the
    /// length of the stored password shows in the time taken.
    pub fn matches(&self, password: &[u8]) -> bool {
        let candidate: [u8; 32] = Sha256::digest(password).into();
        let stored: [u8; 32] = match self {
            SmppSecret::Password(p) => Sha256::digest(p.as_bytes()).into(),
            SmppSecret::Sha256(h) => *h,
        };
        bool::from(candidate.ct_eq(&stored))
    }
}

impl std::fmt::Debug for SmppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmppSecret::Password(_) => f.debug_tuple("Password").field(&REDACTED).finish(),
            SmppSecret::Sha256(_) => f.debug_tuple("Sha256").field(&REDACTED).finish(),
        }
    }
}

/// Longest system_id (SMPP 3.4: 16 octets with the terminating NUL).
const MAX_SYSTEM_ID: usize = 15;
/// Longest password (SMPP 3.4: 9 octets with the NUL).
const MAX_PASSWORD: usize = 8;
/// Longest system_type (SMPP 3.4: 13 octets with the NUL).
const MAX_SYSTEM_TYPE: usize = 12;

/// Reads `[smpp_server]`.
pub(crate) fn smpp_server(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SmppServerSettings {
    let listen = address(report, &mut t, "listen");
    if !t.has(report, "listen") {
        t.missing(report, "listen");
    }
    let mut s = SmppServerSettings::new(listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))));
    let tls_listen = address(report, &mut t, "tls_listen");
    let tls_cert = non_empty_path(report, &mut t, "tls_cert");
    let tls_key = non_empty_path(report, &mut t, "tls_key");
    s.tls = match (tls_listen, tls_cert, tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(SmppServerTls { listen, cert, key }),
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
    s.max_connections = t.int_or(report, "max_connections", 1, 100_000, s.max_connections);
    s.bind_timeout = Duration::from_secs(t.int_or(
        report,
        "bind_timeout_s",
        1,
        300,
        SmppServerSettings::DEFAULT_BIND_TIMEOUT_S,
    ));
    s.idle_timeout = Duration::from_secs(t.int_or(
        report,
        "idle_timeout_s",
        10,
        86_400,
        SmppServerSettings::DEFAULT_IDLE_TIMEOUT_S,
    ));
    let enquire_link: u64 = t.int_or(
        report,
        "enquire_link_interval_s",
        0,
        3600,
        SmppServerSettings::DEFAULT_ENQUIRE_LINK_INTERVAL_S,
    );
    s.enquire_link_interval = (enquire_link != 0).then(|| Duration::from_secs(enquire_link));
    s.response_timeout = Duration::from_secs(t.int_or(
        report,
        "response_timeout_s",
        1,
        300,
        SmppServerSettings::DEFAULT_RESPONSE_TIMEOUT_S,
    ));
    s.max_pdu_len = t.int_or(report, "max_pdu_len", 64, 1 << 20, s.max_pdu_len);
    s.receipt_window = t.int_or(report, "receipt_window", 1, 10_000, s.receipt_window);
    s.receipt_validity = Duration::from_secs(t.int_or(
        report,
        "receipt_validity_s",
        60,
        30 * 86_400,
        SmppServerSettings::DEFAULT_RECEIPT_VALIDITY_S,
    ));
    if let Some(id) = smpp_text(report, &mut t, "system_id", 1, MAX_SYSTEM_ID) {
        s.system_id = id;
    }
    t.finish(report);
    s
}

/// A tenant's `smpp_users` and `mo_delivery`; `numbers` are the tenant's own (digits), which
/// `mo_numbers` may name, each in one user only.
pub(crate) fn tenant_smpp(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    numbers: &[String],
) -> TenantSmpp {
    let mut users = Vec::new();
    let mut named: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for mut u in t.tables(report, "smpp_users") {
        let system_id = if u.has(report, "system_id") {
            smpp_text(report, &mut u, "system_id", 1, MAX_SYSTEM_ID)
        } else {
            u.missing(report, "system_id");
            None
        };
        let secret = secret(report, &mut u);
        let max_binds = u.int_or(report, "max_binds", 1, 1000, SmppUser::DEFAULT_MAX_BINDS);
        let window = u.int_or(report, "window", 1, 10_000, SmppUser::DEFAULT_WINDOW);
        let max_tps = u.int(report, "max_tps", 1, 1_000_000);
        let mut allowed_ips = Vec::new();
        for (i, (entry, span)) in u
            .strings(report, "allowed_ips")
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match Cidr::parse(entry) {
                Ok(c) => allowed_ips.push(c),
                Err(why) => report.at_span(
                    span,
                    &format!("{}[{i}]", u.key_path("allowed_ips")),
                    ConfigErrorKind::Invalid(why),
                ),
            }
        }
        let system_type = smpp_text(report, &mut u, "system_type", 0, MAX_SYSTEM_TYPE);
        let mo_numbers = u.strings(report, "mo_numbers").map(|list| {
            let mut out = Vec::new();
            for (i, (n, span)) in list.iter().enumerate() {
                let digits = n.strip_prefix('+').unwrap_or(n);
                let path = format!("{}[{i}]", u.key_path("mo_numbers"));
                let why = if !numbers.iter().any(|x| x == digits) {
                    Some(format!("{n:?} is not one of the tenant's numbers"))
                } else {
                    let user = system_id.clone().unwrap_or_default();
                    match named.insert(digits.to_owned(), user.clone()) {
                        Some(other) if other != user => Some(format!(
                            "{n:?} is named by smpp user {other:?} already: MO messages go to \
                             one user"
                        )),
                        _ => None,
                    }
                };
                match why {
                    Some(why) => report.at_span(span, &path, ConfigErrorKind::Invalid(why)),
                    None => out.push(digits.to_owned()),
                }
            }
            out
        });
        u.finish(report);
        if let (Some(system_id), Some(secret)) = (system_id, secret) {
            users.push(SmppUser {
                system_id,
                secret,
                max_binds,
                window,
                max_tps,
                allowed_ips,
                system_type,
                mo_numbers,
            });
        }
    }
    let mo_delivery = t
        .choice(
            report,
            "mo_delivery",
            &[
                ("webhook", MoDelivery::Webhook),
                ("smpp", MoDelivery::Smpp),
                ("both", MoDelivery::Both),
            ],
        )
        .unwrap_or_default();
    if mo_delivery == MoDelivery::Webhook && users.iter().any(|u| u.mo_numbers.is_some()) {
        report.at_path(
            &t.key_path("mo_delivery"),
            ConfigErrorKind::Invalid(
                "mo_numbers route MO messages to SMPP users: set mo_delivery to \"smpp\" or \
                 \"both\""
                    .into(),
            ),
        );
    }
    TenantSmpp { users, mo_delivery }
}

/// `password` or `password_sha256` of an `smpp_users` entry: exactly one. The password is never
/// echoed in an error.
fn secret(report: &mut Report<'_>, u: &mut Table<'_, '_>) -> Option<SmppSecret> {
    let password = u.raw(report, "password").and_then(|v| {
        let path = u.key_path("password");
        let p = expect_str(report, v, &path)?;
        if p.is_empty() || p.len() > MAX_PASSWORD || !printable(p) {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(format!(
                    "an SMPP password is 1 to {MAX_PASSWORD} printable ASCII characters \
                     (got {})",
                    p.chars().count()
                )),
            );
            return None;
        }
        Some(p.to_owned())
    });
    let hash = u.raw(report, "password_sha256").and_then(|v| {
        let path = u.key_path("password_sha256");
        let h = expect_str(report, v, &path)?;
        let mut out = [0u8; 32];
        if hex::decode_to_slice(h, &mut out).is_err() {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(
                    "the SHA-256 of the password is 64 hex digits \
                     (`printf %s \"$PASSWORD\" | sha256sum`)"
                        .into(),
                ),
            );
            return None;
        }
        if out == <[u8; 32]>::from(Sha256::digest(b"")) {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid("this is the SHA-256 of an empty password".into()),
            );
            return None;
        }
        Some(out)
    });
    let has_password = u.has(report, "password");
    let has_hash = u.has(report, "password_sha256");
    match (password, hash) {
        _ if has_password && has_hash => {
            report.at_path(
                &u.key_path("password"),
                ConfigErrorKind::Invalid(
                    "give the password or its SHA-256 (password_sha256), not both".into(),
                ),
            );
            None
        }
        (Some(p), None) => Some(SmppSecret::Password(p)),
        (None, Some(h)) => Some(SmppSecret::Sha256(h)),
        _ => {
            if !has_password && !has_hash {
                u.missing(report, "password");
            }
            // Otherwise the malformed value has been reported where it is.
            None
        }
    }
}

/// A socket address (`"0.0.0.0:2775"`, `"[::]:2775"`).
fn address(
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
                    "{s:?} is not an IP address with a port, such as \"0.0.0.0:2775\" or \
                     \"[::]:2775\""
                )),
            );
            None
        }
    }
}

/// A C-Octet string field of SMPP: `min..=max` printable ASCII characters.
fn smpp_text(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: usize,
    max: usize,
) -> Option<String> {
    let v = t.raw(report, key)?;
    let path = t.key_path(key);
    let s = expect_str(report, v, &path)?;
    if s.len() < min || s.len() > max || !printable(s) {
        report.at_span(
            &v.span(),
            &path,
            ConfigErrorKind::Invalid(format!(
                "{s:?}: {key} is {min} to {max} printable ASCII characters"
            )),
        );
        return None;
    }
    Some(s.to_owned())
}

/// Printable ASCII only (space to `~`).
fn printable(s: &str) -> bool {
    s.bytes().all(|b| (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{parse_str, Config, ConfigErrors};

    /// Tenant `a`: its own keys may follow.
    const TENANT: &str = r#"
[[tenants]]
name = "a"
api_keys = ["sha256:3a516f1b05474d582263da93abd789051c92a0f9db2c1243caf5c27f4d411330"]
"#;

    /// One carrier and its deck: with [`TENANT`], the least a configuration needs.
    const REST: &str = r#"
[[carriers]]
name = "c"
channels = ["sms"]
smpp = { sandbox = true, system_id = "c" }
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#;

    /// `tables` (top-level tables), tenant `a` with `tenant_keys`, then `more` (other
    /// tenants), then the carrier and its deck.
    fn doc(tables: &str, tenant_keys: &str, more: &str) -> String {
        format!("{tables}\n{TENANT}{tenant_keys}\n{more}\n{REST}")
    }

    /// A second tenant, `b`, with these extra lines.
    fn tenant_b(extra: &str) -> String {
        format!(
            "[[tenants]]\nname = \"b\"\napi_keys = \
             [\"sha256:823599ea92e173469e73b1419559847642ec0d518ce324466419e35f9cd3f68b\"]\n{extra}\n"
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        parse_str(text, "t.toml", None)
    }

    fn errors(text: &str) -> ConfigErrors {
        match parse(text) {
            Ok(_) => panic!("expected errors in:\n{text}"),
            Err(e) => e,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn sha256(s: &str) -> [u8; 32] {
        Sha256::digest(s.as_bytes()).into()
    }

    #[test]
    fn reads_the_server_table_and_the_tenants_logins() {
        let hash = hex::encode(sha256("s3cret"));
        let server = r#"
[smpp_server]
listen = "0.0.0.0:2775"
tls_listen = "0.0.0.0:3550"
tls_cert = "tls/smpp-cert.pem"
tls_key = "tls/smpp-key.pem"
max_connections = 200
bind_timeout_s = 5
idle_timeout_s = 60
enquire_link_interval_s = 0
response_timeout_s = 7
max_pdu_len = 4096
receipt_window = 16
receipt_validity_s = 3600
system_id = "SWY"
"#;
        let users = format!(
            r#"
smpp_users = [
  {{ system_id = "acme_bulk", password = "pw12345", max_binds = 2, window = 10, max_tps = 50, allowed_ips = ["192.0.2.0/28", "2001:db8::7"], system_type = "VMA" }},
  {{ system_id = "acme_otp", password_sha256 = "{}" }},
]
mo_delivery = "both"
"#,
            hash.to_uppercase()
        );
        let b = tenant_b("[[tenants.smpp_users]]\nsystem_id = \"blue\"\npassword = \"blue\"\n");
        let cfg = parse(&doc(server, &users, &b)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.smpp_server,
            Some(SmppServerSettings {
                listen: addr("0.0.0.0:2775"),
                tls: Some(SmppServerTls {
                    listen: addr("0.0.0.0:3550"),
                    cert: "tls/smpp-cert.pem".into(),
                    key: "tls/smpp-key.pem".into(),
                }),
                max_connections: 200,
                bind_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                enquire_link_interval: None,
                response_timeout: Duration::from_secs(7),
                max_pdu_len: 4096,
                receipt_window: 16,
                receipt_validity: Duration::from_secs(3600),
                system_id: "SWY".into(),
            })
        );
        assert_eq!(
            cfg.tenants[0].smpp,
            TenantSmpp {
                users: vec![
                    SmppUser {
                        system_id: "acme_bulk".into(),
                        secret: SmppSecret::Password("pw12345".into()),
                        max_binds: 2,
                        window: 10,
                        max_tps: Some(50),
                        allowed_ips: vec![
                            Cidr::parse("192.0.2.0/28").unwrap(),
                            Cidr::parse("2001:db8::7/128").unwrap(),
                        ],
                        system_type: Some("VMA".into()),
                        mo_numbers: None,
                    },
                    SmppUser {
                        system_id: "acme_otp".into(),
                        secret: SmppSecret::Sha256(sha256("s3cret")),
                        max_binds: SmppUser::DEFAULT_MAX_BINDS,
                        window: SmppUser::DEFAULT_WINDOW,
                        max_tps: None,
                        allowed_ips: Vec::new(),
                        system_type: None,
                        mo_numbers: None,
                    },
                ],
                mo_delivery: MoDelivery::Both,
            }
        );
        let blue = &cfg.tenants[1].smpp;
        assert_eq!(blue.users[0].system_id, "blue");
        assert_eq!(blue.mo_delivery, MoDelivery::Webhook);
    }

    #[test]
    fn mo_numbers_choose_the_user_that_gets_mo() {
        let users = |a: &str, b: &str, delivery: &str| {
            doc(
                "[smpp_server]\nlisten = \"0.0.0.0:2775\"",
                &format!(
                    "numbers = [\"+447000000001\", \"+447000000002\", \"60123\"]\n\
                     mo_delivery = \"{delivery}\"\n\
                     smpp_users = [\n  {{ system_id = \"a\", password = \"pa\"{a} }},\n  \
                     {{ system_id = \"b\", password = \"pb\"{b} }},\n]"
                ),
                "",
            )
        };
        let cfg = parse(&users(
            "",
            ", mo_numbers = [\"+447000000002\", \"60123\"]",
            "smpp",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let smpp = &cfg.tenants[0].smpp;
        assert_eq!(
            smpp.users[1].mo_numbers,
            Some(vec!["447000000002".to_owned(), "60123".to_owned()])
        );
        let who = |n: &str| smpp.mo_user(n).map(|u| u.system_id.as_str());
        assert_eq!(who("+447000000002"), Some("b"));
        assert_eq!(who("60123"), Some("b"));
        assert_eq!(
            who("447000000001"),
            Some("a"),
            "the rest: the first user without the key"
        );
        // Every user names its numbers: the others reach no user.
        let cfg = parse(&users(
            ", mo_numbers = []",
            ", mo_numbers = [\"447000000002\"]",
            "both",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let smpp = &cfg.tenants[0].smpp;
        assert_eq!(
            smpp.mo_user("447000000002").map(|u| u.system_id.as_str()),
            Some("b")
        );
        assert!(smpp.mo_user("447000000001").is_none());
        // Without the key anywhere: the first user, as long as MO go over SMPP at all.
        let cfg = parse(&users("", "", "smpp")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.tenants[0]
                .smpp
                .mo_user("60123")
                .map(|u| u.system_id.as_str()),
            Some("a")
        );
        let cfg = parse(&users("", "", "webhook")).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.tenants[0].smpp.mo_user("60123").is_none());
        let cases = [
            (
                users(", mo_numbers = [\"+447999999999\"]", "", "smpp"),
                "tenants[0].smpp_users[0].mo_numbers[0]",
                "not one of the tenant's numbers",
            ),
            (
                users(
                    ", mo_numbers = [\"60123\"]",
                    ", mo_numbers = [\"+447000000001\", \"60123\"]",
                    "smpp",
                ),
                "tenants[0].smpp_users[1].mo_numbers[1]",
                "named by smpp user \"a\"",
            ),
            (
                users(", mo_numbers = [\"60123\"]", "", "webhook"),
                "tenants[0].mo_delivery",
                "set mo_delivery",
            ),
        ];
        for (text, path, want) in cases {
            let errs = errors(&text);
            let e = errs
                .at(path)
                .unwrap_or_else(|| panic!("no error at {path} in:\n{text}\ngot:\n{errs}"));
            assert!(e.to_string().contains(want), "{want:?} not in {e}");
        }
    }

    #[test]
    fn defaults() {
        let cfg = parse(&doc("", "", "")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.smpp_server, None, "no table, no listener");
        assert_eq!(cfg.tenants[0].smpp, TenantSmpp::default());
        let d = Config::embedded_default();
        assert_eq!(d.smpp_server, None);
        assert_eq!(d.tenants[0].smpp, TenantSmpp::default());

        let cfg = parse(&doc(
            "[smpp_server]\nlisten = \"[::]:2775\"\n",
            "smpp_users = [{ system_id = \"a\", password = \"p\" }]\nmo_delivery = \"smpp\"\n",
            "",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = cfg.smpp_server.unwrap();
        assert_eq!(s, SmppServerSettings::new(addr("[::]:2775")));
        assert_eq!(s.tls, None);
        assert_eq!(s.max_connections, 1000);
        assert_eq!(s.bind_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(120));
        assert_eq!(s.enquire_link_interval, Some(Duration::from_secs(30)));
        assert_eq!(s.response_timeout, Duration::from_secs(10));
        assert_eq!(s.max_pdu_len, 65_536);
        assert_eq!(s.receipt_window, 64);
        assert_eq!(s.system_id, "switchyard");
        let u = &cfg.tenants[0].smpp.users[0];
        assert_eq!((u.max_binds, u.window, u.max_tps), (4, 64, None));
        assert!(u.allowed_ips.is_empty() && u.system_type.is_none());
        assert_eq!(cfg.tenants[0].smpp.mo_delivery, MoDelivery::Smpp);
    }

    /// Every error at its own key path; one document each, so that one mistake cannot hide
    /// another.
    #[test]
    fn every_mistake_is_reported_where_it_is() {
        let server = "[smpp_server]\nlisten = \"0.0.0.0:2775\"\n";
        let table = |keys: &str| doc(&format!("{server}{keys}"), "", "");
        let user = |fields: &str| doc(server, &format!("smpp_users = [{{ {fields} }}]"), "");
        let login = "smpp_users = [{ system_id = \"u\", password = \"p\" }]";
        let cases: Vec<(String, &str, &str)> = vec![
            (
                doc("[smpp_server]\nmax_connections = 5\n", "", ""),
                "smpp_server.listen",
                "required key is missing",
            ),
            (
                doc("[smpp_server]\nlisten = \"localhost:2775\"\n", "", ""),
                "smpp_server.listen",
                "not an IP address with a port",
            ),
            (
                table("max_connections = 0\n"),
                "smpp_server.max_connections",
                "must be between 1 and 100000",
            ),
            (
                table("idle_timeout_s = 5\n"),
                "smpp_server.idle_timeout_s",
                "must be between 10 and 86400",
            ),
            (
                table("enquire_link_interval_s = 3601\n"),
                "smpp_server.enquire_link_interval_s",
                "must be between 0 and 3600",
            ),
            (
                table("max_pdu_len = 63\n"),
                "smpp_server.max_pdu_len",
                "must be between 64 and 1048576",
            ),
            (
                table("system_id = \"a-system-id-of-16\"\n"),
                "smpp_server.system_id",
                "1 to 15 printable ASCII",
            ),
            (table("port = 2775\n"), "smpp_server.port", "unknown key"),
            (
                table("tls_listen = \"0.0.0.0:3550\"\n"),
                "smpp_server.tls_cert",
                "required key is missing",
            ),
            (
                table("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"),
                "smpp_server.tls_listen",
                "required key is missing",
            ),
            (
                user(r#"system_id = "u", password = "p", allowed_ips = ["10.0.0.1/8"]"#),
                "tenants[0].smpp_users[0].allowed_ips[0]",
                "bits set beyond the prefix",
            ),
            (
                user(r#"system_id = "u", password = "p", allowed_ips = ["example.com"]"#),
                "tenants[0].smpp_users[0].allowed_ips[0]",
                "not an IP address or network",
            ),
            (
                user(r#"system_id = "u", password = "ninechars""#),
                "tenants[0].smpp_users[0].password",
                "1 to 8 printable ASCII characters (got 9)",
            ),
            (
                user(r#"system_id = "u", password = """#),
                "tenants[0].smpp_users[0].password",
                "1 to 8 printable ASCII",
            ),
            (
                user(&format!(
                    r#"system_id = "u", password = "p", password_sha256 = "{}""#,
                    hex::encode(sha256("p"))
                )),
                "tenants[0].smpp_users[0].password",
                "not both",
            ),
            (
                user(r#"system_id = "u""#),
                "tenants[0].smpp_users[0].password",
                "required key is missing",
            ),
            (
                user(r#"system_id = "u", password_sha256 = "abc""#),
                "tenants[0].smpp_users[0].password_sha256",
                "64 hex digits",
            ),
            (
                user(&format!(
                    r#"system_id = "u", password_sha256 = "{}""#,
                    "zz".repeat(32)
                )),
                "tenants[0].smpp_users[0].password_sha256",
                "64 hex digits",
            ),
            (
                user(&format!(
                    r#"system_id = "u", password_sha256 = "{}""#,
                    hex::encode(sha256(""))
                )),
                "tenants[0].smpp_users[0].password_sha256",
                "empty password",
            ),
            (
                user(r#"system_id = "sixteen-chars-id", password = "p""#),
                "tenants[0].smpp_users[0].system_id",
                "1 to 15 printable ASCII",
            ),
            (
                user(r#"system_id = "", password = "p""#),
                "tenants[0].smpp_users[0].system_id",
                "1 to 15 printable ASCII",
            ),
            (
                user(r#"system_id = "tab\tid", password = "p""#),
                "tenants[0].smpp_users[0].system_id",
                "printable ASCII",
            ),
            (
                user(r#"password = "p""#),
                "tenants[0].smpp_users[0].system_id",
                "required key is missing",
            ),
            (
                user(r#"system_id = "u", password = "p", system_type = "thirteen-char""#),
                "tenants[0].smpp_users[0].system_type",
                "0 to 12 printable ASCII",
            ),
            (
                user(r#"system_id = "u", password = "p", max_binds = 0"#),
                "tenants[0].smpp_users[0].max_binds",
                "must be between 1 and 1000",
            ),
            (
                user(r#"system_id = "u", password = "p", window = 10001"#),
                "tenants[0].smpp_users[0].window",
                "must be between 1 and 10000",
            ),
            (
                user(r#"system_id = "u", password = "p", colour = "red""#),
                "tenants[0].smpp_users[0].colour",
                "unknown key",
            ),
            (
                doc(server, "mo_delivery = \"sms\"", ""),
                "tenants[0].mo_delivery",
                "must be one of \"webhook\", \"smpp\", \"both\"",
            ),
            (
                doc(server, "mo_delivery = \"smpp\"", ""),
                "tenants[0].mo_delivery",
                "no smpp_users",
            ),
            (
                doc("", &format!("{login}\nmo_delivery = \"both\""), ""),
                "tenants[0].mo_delivery",
                "no [smpp_server]",
            ),
            (
                doc(
                    server,
                    login,
                    &tenant_b("smpp_users = [{ system_id = \"u\", password = \"q\" }]"),
                ),
                "tenants[1].smpp_users[0].system_id",
                "SMPP system_id \"u\" is defined twice (first at \
                 tenants[0].smpp_users[0].system_id)",
            ),
            (
                user(r#"system_id = "u", password = "p" }, { system_id = "u", password = "q""#),
                "tenants[0].smpp_users[1].system_id",
                "(first at tenants[0].smpp_users[0].system_id)",
            ),
            (
                doc(
                    "[smpp_server]\nlisten = \"0.0.0.0:8080\"\n\
                     [server]\nlisten = \"127.0.0.1:8080\"\n",
                    "",
                    "",
                ),
                "smpp_server.listen",
                "overlaps server.listen (127.0.0.1:8080)",
            ),
            (
                doc(
                    "[smpp_server]\nlisten = \"127.0.0.1:5060\"\n\
                     [sip]\nlisten = \"127.0.0.1:5060\"\n",
                    "",
                    "",
                ),
                "smpp_server.listen",
                "overlaps sip.listen",
            ),
            (
                table(
                    "tls_listen = \"0.0.0.0:9090\"\ntls_cert = \"c\"\ntls_key = \"k\"\n\
                     [server]\nops_listen = \"127.0.0.1:9090\"\n",
                ),
                "smpp_server.tls_listen",
                "overlaps server.ops_listen",
            ),
            (
                table("tls_listen = \"127.0.0.1:2775\"\ntls_cert = \"c\"\ntls_key = \"k\"\n"),
                "smpp_server.tls_listen",
                "overlaps smpp_server.listen",
            ),
        ];
        for (text, path, want) in cases {
            let errs = errors(&text);
            let e = errs
                .at(path)
                .unwrap_or_else(|| panic!("no error at {path} in:\n{text}\ngot:\n{errs}"));
            let msg = e.to_string();
            assert!(msg.contains(want), "{want:?} not in {msg:?}");
            assert!(
                !msg.contains("ninechars"),
                "a password is never echoed: {msg}"
            );
        }
        // Another port, port 0 (a free one each), another address family: no clash.
        for listen in ["127.0.0.1:8081", "127.0.0.1:0", "[::1]:8080"] {
            let text = doc(
                &format!(
                    "[smpp_server]\nlisten = \"{listen}\"\n\
                     [server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"0.0.0.0:8080\"\n"
                ),
                "",
                "",
            );
            if let Err(e) = parse(&text) {
                panic!("{listen}: {e}");
            }
        }
    }

    #[test]
    fn tls_files_must_exist() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = |cert: &str| {
            doc(
                &format!(
                    "[smpp_server]\nlisten = \"0.0.0.0:2775\"\ntls_listen = \"0.0.0.0:3550\"\n\
                     tls_cert = \"{cert}\"\ntls_key = \"Cargo.toml\"\n"
                ),
                "",
                "",
            )
        };
        let cfg = parse_str(&text("Cargo.toml"), "t.toml", Some(dir));
        assert!(cfg.is_ok(), "{cfg:?}");
        let errs = parse_str(&text("missing.pem"), "t.toml", Some(dir)).unwrap_err();
        let e = errs.at("smpp_server.tls_cert").expect("tls_cert reported");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        assert!(errs.at("smpp_server.tls_key").is_none(), "{errs}");
    }

    #[test]
    fn secrets_match_in_both_forms() {
        let plain = SmppSecret::Password("pw12345".into());
        let hashed = SmppSecret::Sha256(sha256("pw12345"));
        for s in [&plain, &hashed] {
            assert!(s.matches(b"pw12345"), "{s:?}");
            assert!(!s.matches(b"pw1234"), "{s:?}");
            assert!(!s.matches(b"pw123456"), "{s:?}");
            assert!(!s.matches(b"PW12345"), "{s:?}");
            assert!(!s.matches(b"pw12345\0"), "{s:?}");
            assert!(!s.matches(b""), "{s:?}");
        }
    }

    #[test]
    fn debug_output_has_no_passwords() {
        let hash = sha256("s3cret");
        let user = |secret| SmppUser {
            system_id: "acme_bulk".into(),
            secret,
            max_binds: 1,
            window: 1,
            max_tps: None,
            allowed_ips: Vec::new(),
            system_type: None,
            mo_numbers: None,
        };
        let plain = format!("{:?}", user(SmppSecret::Password("pw12345".into())));
        assert!(!plain.contains("pw12345"), "{plain}");
        assert!(
            plain.contains("acme_bulk") && plain.contains("<redacted>"),
            "{plain}"
        );
        let hashed = format!("{:#?}", user(SmppSecret::Sha256(hash)));
        assert!(!hashed.contains(&hex::encode(hash)), "{hashed}");
        assert!(hashed.contains("Sha256(\n        <redacted>"), "{hashed}");
    }
}
