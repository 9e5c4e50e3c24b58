//! The voice carriers' trunks: resolved once at start, looked up by carrier name per call.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use switchyard_ops::config::{Config, SipTransport, TrunkCredentials};
use switchyard_routing::{NumberRewrite, E164};

use super::peer::{Peer, Transport};
use crate::tls::TlsSettings;

/// One trunk: where INVITEs go and how the number is written in the Request-URI.
#[derive(Debug, Clone)]
pub(crate) struct Trunk {
    /// The resolved address and transport (`[carriers.sip] host`, `port`, `transport`).
    pub(crate) peer: Peer,
    /// The host as configured, for the Request-URI.
    pub(crate) host: String,
    /// Tech prefix and stripped digits.
    pub(crate) rewrite: NumberRewrite,
    /// What to answer the trunk's digest challenges with.
    pub(crate) credentials: Option<TrunkCredentials>,
    /// For TLS trunks: the trust anchors and the name the certificate must carry (`host`).
    pub(crate) tls: Option<Arc<TlsSettings>>,
}

impl Trunk {
    /// `sip:<tech_prefix><number minus strip_digits>@host:port[;transport=…]` (`#` escaped).
    pub(crate) fn request_uri(&self, number: &E164) -> String {
        // `#` is not allowed unescaped in a URI's user part (RFC 3261 §25.1).
        let user = self.rewrite.apply(number).as_str().replace('#', "%23");
        self.uri(Some(&user))
    }

    /// `sip:host:port[;transport=…]`: the trunk itself (OPTIONS probes).
    pub(crate) fn host_uri(&self) -> String {
        self.uri(None)
    }

    fn uri(&self, user: Option<&str>) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let param = self
            .peer
            .transport
            .uri_param()
            .map(|t| format!(";transport={t}"))
            .unwrap_or_default();
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        format!("sip:{user}{host}:{}{param}", self.peer.addr.port())
    }
}

/// Every voice carrier's trunk, by carrier name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Trunks {
    /// Carrier name → trunk.
    by_name: HashMap<String, Trunk>,
}

impl Trunks {
    /// Resolves every `[carriers.sip]` host (blocking DNS, once, at start) and loads TLS
    /// trust anchors (`tls_ca` relative to `base_dir`).
    pub(crate) fn resolve(config: &Config, base_dir: &Path) -> anyhow::Result<Self> {
        let mut by_name = HashMap::new();
        for c in &config.carriers {
            let Some(sip) = &c.sip else { continue };
            let addr = (sip.host.as_str(), sip.port)
                .to_socket_addrs()
                .with_context(|| format!("resolving the SIP trunk of carrier {:?}", c.name))?
                .next()
                .with_context(|| format!("no address for the SIP trunk of carrier {:?}", c.name))?;
            let transport = match sip.transport {
                SipTransport::Udp => Transport::Udp,
                SipTransport::Tcp => Transport::Tcp,
                SipTransport::Tls => Transport::Tls,
            };
            let tls = match transport {
                Transport::Tls => {
                    let ca = sip.tls_ca.as_ref().map(|ca| Config::resolve(base_dir, ca));
                    let host = sip.host.trim_start_matches('[').trim_end_matches(']');
                    Some(Arc::new(
                        TlsSettings::new(ca.as_deref(), host).with_context(|| {
                            format!("TLS settings of the SIP trunk of carrier {:?}", c.name)
                        })?,
                    ))
                }
                _ => None,
            };
            by_name.insert(
                c.name.clone(),
                Trunk {
                    peer: Peer { transport, addr },
                    tls,
                    host: sip.host.clone(),
                    rewrite: sip.rewrite.clone(),
                    credentials: sip.credentials.clone(),
                },
            );
        }
        Ok(Trunks { by_name })
    }

    /// The trunk of carrier `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Trunk> {
        self.by_name.get(name)
    }

    /// Every trunk with its carrier name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Trunk)> {
        self.by_name.iter()
    }

    /// Whether `peer` is one of the trunks (requests from trunks need no `sip_allow`).
    pub(crate) fn is_trunk(&self, peer: Peer) -> bool {
        self.by_name.values().any(|t| t.peer.same_party(&peer))
    }

    /// The TLS settings for connections to `peer`, if it is a TLS trunk.
    pub(crate) fn tls_for(&self, peer: Peer) -> Option<Arc<TlsSettings>> {
        self.by_name
            .values()
            .find(|t| t.peer == peer)
            .and_then(|t| t.tls.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uri_applies_prefix_and_strip() {
        let t = Trunk {
            peer: Peer::udp("127.0.0.1:5070".parse().unwrap()),
            tls: None,
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
