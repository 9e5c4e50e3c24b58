//! The voice carriers' trunks: resolved once at start, looked up by carrier name per call.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::Context;
use switchyard_ops::config::{Config, TrunkCredentials};
use switchyard_routing::{NumberRewrite, E164};

/// One trunk: where INVITEs go and how the number is written in the Request-URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// The resolved UDP address (`[carriers.sip] host`, `port`).
    pub addr: SocketAddr,
    /// The host as configured, for the Request-URI.
    pub host: String,
    /// Tech prefix and stripped digits.
    pub rewrite: NumberRewrite,
    /// What to answer the trunk's digest challenges with.
    pub credentials: Option<TrunkCredentials>,
}

impl Trunk {
    /// `sip:<tech_prefix><number minus strip_digits>@host:port` (`#` escaped).
    pub fn request_uri(&self, number: &E164) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "sip:{}@{host}:{}",
            // `#` is not allowed unescaped in a URI's user part (RFC 3261 §25.1).
            self.rewrite.apply(number).as_str().replace('#', "%23"),
            self.addr.port()
        )
    }
}

/// Every voice carrier's trunk, by carrier name.
#[derive(Debug, Default, Clone)]
pub struct Trunks {
    /// Carrier name → trunk.
    by_name: HashMap<String, Trunk>,
}

impl Trunks {
    /// Resolves every `[carriers.sip]` host (blocking DNS, once, at start).
    pub fn resolve(config: &Config) -> anyhow::Result<Self> {
        let mut by_name = HashMap::new();
        for c in &config.carriers {
            let Some(sip) = &c.sip else { continue };
            let addr = (sip.host.as_str(), sip.port)
                .to_socket_addrs()
                .with_context(|| format!("resolving the SIP trunk of carrier {:?}", c.name))?
                .next()
                .with_context(|| format!("no address for the SIP trunk of carrier {:?}", c.name))?;
            by_name.insert(
                c.name.clone(),
                Trunk {
                    addr,
                    host: sip.host.clone(),
                    rewrite: sip.rewrite.clone(),
                    credentials: sip.credentials.clone(),
                },
            );
        }
        Ok(Trunks { by_name })
    }

    /// The trunk of carrier `name`.
    pub fn get(&self, name: &str) -> Option<&Trunk> {
        self.by_name.get(name)
    }

    /// Every trunk with its carrier name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Trunk)> {
        self.by_name.iter()
    }

    /// Whether `addr` is one of the trunks (requests from trunks need no `sip_allow`).
    pub fn is_trunk(&self, addr: SocketAddr) -> bool {
        self.by_name.values().any(|t| t.addr == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uri_applies_prefix_and_strip() {
        let t = Trunk {
            addr: "127.0.0.1:5070".parse().unwrap(),
            host: "127.0.0.1".into(),
            rewrite: NumberRewrite {
                strip_digits: 2,
                tech_prefix: "99#".into(),
                plus: false,
            },
            credentials: None,
        };
        let n = E164::parse("+447700900123").unwrap();
        assert_eq!(t.request_uri(&n), "sip:99%237700900123@127.0.0.1:5070");
    }
}
