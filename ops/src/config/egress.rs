//! `[egress]`: which addresses the gateway may connect to on a tenant's behalf — webhooks
//! (`webhook_url`, `callback_url`), the endpoints of webhook-channel messages and voice
//! `audio_url` downloads — and the policy that decides it ([`EgressPolicy`]).
//!
//! A tenant chooses those URLs, so without a policy a tenant could make the gateway reach what
//! only the gateway can reach: its own loopback services, the cloud metadata endpoint
//! (169.254.169.254), the operator's private networks. Every address that is not globally
//! reachable (the IANA special-purpose ranges, [`special_range`]) is therefore refused unless
//! the operator allows it, by network (`"10.20.0.0/16"`, `"127.0.0.1"`) or by host name
//! (`"hooks.internal.example"`, or `"*.internal.example"` for every name below it).
//!
//! The policy is pure: it judges an address. The gateway applies it to the address it is
//! about to connect to, after resolving the name, so a name that resolves to a refused address
//! (at any time: DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ConfigErrorKind;
use super::reader::{Report, Table};

/// `[egress]`: addresses tenants' URLs may reach beyond the globally reachable ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Networks allowed although they are special-purpose (`allow` entries that are an
    /// address or `address/length`).
    pub allow_nets: Vec<Cidr>,
    /// Host names whose addresses are all allowed (`allow` entries that are names), lower
    /// case without a trailing dot; `*.example` allows every name below `example`.
    pub allow_hosts: Vec<String>,
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The address refused.
    pub ip: IpAddr,
    /// The special-purpose range it is in ("loopback", "private", …).
    pub range: &'static str,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is a {} address, not allowed by [egress] allow",
            self.ip, self.range
        )
    }
}

impl std::error::Error for Refusal {}

impl EgressPolicy {
    /// Whether the gateway may connect to `ip` for a URL whose host is `host` (a name, or the
    /// address itself).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        if self.allows_host(host) {
            return Ok(());
        }
        self.check_ip(ip)
    }

    /// Whether `ip` may be reached whatever name led to it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let canonical = canonical(ip);
        if self
            .allow_nets
            .iter()
            .any(|n| n.contains(canonical) || n.contains(ip))
        {
            return Ok(());
        }
        match special_range(ip) {
            Some(range) => Err(Refusal { ip, range }),
            None => Ok(()),
        }
    }

    /// The refusal for a URL host that is an address literal (`127.0.0.1`, `[::1]`), checked
    /// when a URL is accepted; `None` for names (judged when they are resolved) and for
    /// allowed addresses.
    pub fn literal_refusal(&self, host: &str) -> Option<Refusal> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: IpAddr = bare.parse().ok()?;
        self.check_ip(ip).err()
    }

    /// Whether `host` is one of the allowed names.
    pub fn allows_host(&self, host: &str) -> bool {
        if self.allow_hosts.is_empty() {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts.iter().any(|a| match a.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => *a == host,
        })
    }
}

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (no bits set beyond the prefix).
    pub addr: IpAddr,
    /// Prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub len: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a network of one). `Err` says why not.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        let cidr = Cidr { addr, len };
        if network(addr, len) != addr {
            return Err(format!(
                "{s:?} has bits set beyond the prefix (the network is {}/{len})",
                network(addr, len)
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in this network (an IPv4 network never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_v4(u32::from(a), self.len) == prefix_v4(u32::from(n), self.len)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_v6(u128::from(a), self.len) == prefix_v6(u128::from(n), self.len)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn prefix_v4(a: u32, len: u8) -> u32 {
    a.checked_shr(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn prefix_v6(a: u128, len: u8) -> u128 {
    a.checked_shr(128 - u32::from(len.min(128))).unwrap_or(0)
}

fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & keep))
        }
    }
}

/// The IPv4 address an IPv6 address stands for when it embeds one and reaching it means
/// reaching that IPv4 address (`::ffff:a.b.c.d`, the NAT64 prefix `64:ff9b::/96`); else `ip`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u128::from(v6);
            if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
                // Lossless: the low 32 bits are the embedded address.
                return IpAddr::V4(Ipv4Addr::from((bits & 0xffff_ffff) as u32));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// IPv4 special-purpose ranges (IANA registry) that are not globally reachable: (network,
/// prefix length, name).
const SPECIAL_V4: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "this-network"),
    (0x0a00_0000, 8, "private"),
    (0x6440_0000, 10, "shared (carrier-grade NAT)"),
    (0x7f00_0000, 8, "loopback"),
    (0xa9fe_0000, 16, "link-local"),
    (0xac10_0000, 12, "private"),
    (0xc000_0000, 24, "IETF protocol assignment"),
    (0xc000_0200, 24, "documentation"),
    (0xc058_6300, 24, "6to4 relay"),
    (0xc0a8_0000, 16, "private"),
    (0xc612_0000, 15, "benchmarking"),
    (0xc633_6400, 24, "documentation"),
    (0xcb00_7100, 24, "documentation"),
    (0xe000_0000, 4, "multicast"),
    (0xf000_0000, 4, "reserved or broadcast"),
];

/// IPv6 special-purpose ranges that are not globally reachable. IPv4-mapped and NAT64
/// addresses are judged by the IPv4 address they embed ([`canonical`]) before this list.
const SPECIAL_V6: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (0, 96, "IPv4-compatible"),
    (
        0x0000_0000_0000_0000_ffff_0000_0000_0000,
        96,
        "IPv4-translated",
    ),
    (
        0x0064_ff9b_0001_0000_0000_0000_0000_0000,
        48,
        "local-use NAT64",
    ),
    (
        0x0100_0000_0000_0000_0000_0000_0000_0000,
        64,
        "discard-only",
    ),
    (
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        23,
        "IETF protocol assignment",
    ),
    (
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        32,
        "documentation",
    ),
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16, "6to4"),
    (
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        20,
        "documentation",
    ),
    (
        0x5f00_0000_0000_0000_0000_0000_0000_0000,
        16,
        "segment routing",
    ),
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, "unique local"),
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, "link-local"),
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, "site-local"),
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, "multicast"),
];

/// The name of the special-purpose range `ip` is in, or `None` for a globally reachable
/// address. An IPv6 address that embeds an IPv4 one is judged by the IPv4 address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            SPECIAL_V4
                .iter()
                .find(|(n, len, _)| prefix_v4(a, *len) == prefix_v4(*n, *len))
                .map(|(_, _, name)| *name)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            SPECIAL_V6
                .iter()
                .find(|(n, len, _)| prefix_v6(a, *len) == prefix_v6(*n, *len))
                .map(|(_, _, name)| *name)
        }
    }
}

/// Reads `[egress]`.
pub(crate) fn egress(report: &mut Report<'_>, mut t: Table<'_, '_>) -> EgressPolicy {
    let mut policy = EgressPolicy::default();
    let path = t.key_path("allow");
    for (i, (entry, span)) in t
        .strings(report, "allow")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let looks_like_ip = entry.contains('/')
            || entry.contains(':')
            || entry.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let result = if looks_like_ip {
            Cidr::parse(&entry).map(|c| policy.allow_nets.push(c))
        } else {
            host_pattern(&entry).map(|h| policy.allow_hosts.push(h))
        };
        if let Err(why) = result {
            report.at_span(
                &span,
                &format!("{path}[{i}]"),
                ConfigErrorKind::Invalid(why),
            );
        }
    }
    t.finish(report);
    policy
}

/// A host name, or `*.` and a name, lower-cased without a trailing dot.
fn host_pattern(s: &str) -> Result<String, String> {
    let lower = s.trim_end_matches('.').to_ascii_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} is not an IP address, a network (address/length) or a host name \
             (\"hooks.example\", \"*.example\")"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_every_special_purpose_range_by_default() {
        let p = EgressPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001::1",
        ] {
            assert!(p.check_ip(ip(refused)).is_err(), "{refused} allowed");
        }
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(p.check_ip(ip(allowed)), Ok(()), "{allowed} refused");
        }
        let r = p.check_ip(ip("169.254.169.254")).unwrap_err();
        assert_eq!(r.range, "link-local");
        assert_eq!(
            p.check_ip(ip("::ffff:127.0.0.1")).unwrap_err().range,
            "loopback"
        );
    }

    #[test]
    fn the_operator_allows_networks_and_names() {
        let p = EgressPolicy {
            allow_nets: vec![
                Cidr::parse("127.0.0.1/32").unwrap(),
                Cidr::parse("10.20.0.0/16").unwrap(),
                Cidr::parse("fd00::/8").unwrap(),
            ],
            allow_hosts: vec!["hooks.internal.example".into(), "*.corp.example".into()],
        };
        assert_eq!(p.check_ip(ip("127.0.0.1")), Ok(()));
        // The mapped form of an allowed address is the same address.
        assert_eq!(p.check_ip(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(p.check_ip(ip("127.0.0.2")).is_err());
        assert_eq!(p.check_ip(ip("10.20.255.1")), Ok(()));
        assert!(p.check_ip(ip("10.21.0.1")).is_err());
        assert_eq!(p.check_ip(ip("fd99::1")), Ok(()));
        assert_eq!(p.check("hooks.internal.example", ip("10.9.9.9")), Ok(()));
        assert_eq!(p.check("HOOKS.internal.example.", ip("10.9.9.9")), Ok(()));
        assert_eq!(p.check("a.b.corp.example", ip("192.168.0.1")), Ok(()));
        assert!(p.check("corp.example", ip("192.168.0.1")).is_err());
        assert!(p.check("evilcorp.example", ip("192.168.0.1")).is_err());
        assert!(p.check("other.example", ip("10.9.9.9")).is_err());
        assert_eq!(
            p.literal_refusal("[::1]").map(|r| r.range),
            Some("loopback")
        );
        assert_eq!(p.literal_refusal("127.0.0.1"), None);
        assert_eq!(p.literal_refusal("hooks.example"), None);
    }

    #[test]
    fn cidrs_parse_strictly() {
        assert_eq!(
            Cidr::parse("192.168.0.0/16").unwrap().to_string(),
            "192.168.0.0/16"
        );
        assert_eq!(Cidr::parse("::1").unwrap().len, 128);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().len, 0);
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("10.1.2.3/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
    }

    /// One tenant and one carrier: the least a configuration needs.
    const BASE: &str = r#"
[[tenants]]
name = "a"
api_keys = ["sha256:3a516f1b05474d582263da93abd789051c92a0f9db2c1243caf5c27f4d411330"]
[[carriers]]
name = "c"
channels = ["sms"]
[carriers.smpp]
host = "127.0.0.1"
port = 2775
system_id = "c"
password = "pw"
[[decks]]
carrier = "c"
channel = "sms"
path = "c.csv"
"#;

    #[test]
    fn reads_the_allow_list_and_reports_every_bad_entry() {
        let parse = |allow: &str| {
            crate::config::parse_str(
                &format!("[egress]\nallow = [{allow}]\n{BASE}"),
                "t.toml",
                None,
            )
        };
        let e = parse(
            r#""127.0.0.1/32", "hooks.internal.example", "*.corp.example", "::1", "10.1.2.3/8", "bad host!", "10.0.0.0/40""#,
        )
        .unwrap_err()
        .to_string();
        for want in ["egress.allow[4]", "egress.allow[5]", "egress.allow[6]"] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        assert!(!e.contains("egress.allow[0]"), "{e}");
        let ok = parse(r#""127.0.0.1/32", "Hooks.Internal.Example.", "::1""#).unwrap();
        assert_eq!(ok.egress.allow_nets.len(), 2);
        assert_eq!(ok.egress.allow_hosts, vec!["hooks.internal.example"]);
        assert_eq!(parse("").unwrap().egress, EgressPolicy::default());
    }
}
