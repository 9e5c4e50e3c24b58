//! Who is calling: a tenant's PBX is known by its source (`sip_allow`: an address, optionally
//! pinned to a transport and a port) or by a digest login (`sip_users`, RFC 3261 §22.3 with
//! RFC 8760's SHA-256). One lookup per request that needs it.
//!
//! A source address alone is weak over UDP: anyone can send a datagram with a forged source,
//! and an INVITE needs no answer to be billed. Entries pinned to `tcp:` or `tls:` cannot be
//! forged that way (the handshake needs the real address).
//!
//! Digest uses stateless nonces (an HMAC of the issue time and a random salt, see
//! [`switchyard_protocols::sip::digest::NonceIssuer`]): nothing is stored per challenge, so a
//! flood of INVITEs cannot fill memory. What is stored is the highest nonce count (`nc`)
//! accepted per nonce, for the nonce's lifetime ([`NONCE_LIFETIME_S`]), and only after the
//! answer proved the password: a captured Proxy-Authorization replayed (same `nc`) gets a
//! fresh challenge. Answers must use `qop=auth`, an algorithm of `[sip] digest_algorithms`,
//! and name the Request-URI exactly. The nonce key is random per process (and per reload), so
//! a restart makes outstanding nonces stale (the PBX retries with a fresh one). Passwords are
//! turned into HA1 hashes at load; `sip_users` may give the hashes instead.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use switchyard_ops::config::{Config, SipSecret};
use switchyard_protocols::sip::digest::{self, Algorithm, AuthError, Credentials, NonceIssuer};
use switchyard_protocols::sip::{HeaderName, Message};

use super::peer::{Peer, Transport};

/// Seconds a challenge's nonce stays fresh.
pub(crate) const NONCE_LIFETIME_S: u64 = 300;

/// Nonces whose counts are remembered at most (only nonces answered with the right password
/// are: a busy proxy accepts a few hundred logins per second; the oldest are forgotten first).
const MAX_TRACKED_NONCES: usize = 262_144;

/// What to do with a request, as far as authentication goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It speaks for this tenant.
    Tenant(Arc<str>),
    /// Ask for credentials: 407 with these `Proxy-Authenticate` values (one per configured
    /// algorithm).
    Challenge(Vec<String>),
    /// Refuse: 403 with this reason (no tenant allows the source and no digest login is
    /// configured, or the credentials are wrong).
    Forbidden(&'static str),
    /// The credentials are malformed or name another Request-URI: 400 with this reason.
    BadRequest(String),
}

/// One `sip_allow` entry's restrictions for its address.
#[derive(Debug, Clone, Copy)]
struct Pin {
    /// Only this transport; `None`: any.
    transport: Option<Transport>,
    /// Only this source port; `None`: any.
    port: Option<u16>,
}

impl Pin {
    fn admits(&self, peer: Peer) -> bool {
        self.transport.is_none_or(|t| t == peer.transport)
            && self.port.is_none_or(|p| p == peer.addr.port())
    }
}

/// A digest login: whose it is and what its answers are checked against.
#[derive(Clone)]
struct Login {
    /// The tenant it speaks for.
    tenant: Arc<str>,
    /// HA1 for SHA-256, if the login may answer with it.
    sha256: Option<String>,
    /// HA1 for MD5, if the login may answer with it.
    md5: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl Login {
    fn ha1(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Md5 => self.md5.as_deref(),
            // Never offered.
            Algorithm::Md5Sess | Algorithm::Sha256Sess => None,
        }
    }
}

/// The highest `nc` accepted per nonce, until the nonce could no longer verify anyway.
#[derive(Debug, Clone, Default)]
struct NonceCounts {
    /// Nonce → highest count accepted.
    last: HashMap<String, u32>,
    /// (forget after, nonce), in the order first accepted.
    order: VecDeque<(u64, String)>,
}

impl NonceCounts {
    /// Records `nc` for `nonce` at `now_unix`; false if it is not above the last one (a
    /// replay).
    fn advance(&mut self, nonce: &str, nc: u32, now_unix: u64) -> bool {
        while let Some((until, _)) = self.order.front() {
            if *until > now_unix && self.order.len() < MAX_TRACKED_NONCES {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.last.remove(&n);
            }
        }
        match self.last.get_mut(nonce) {
            Some(last) if nc <= *last => false,
            Some(last) => {
                *last = nc;
                true
            }
            None => {
                self.last.insert(nonce.to_owned(), nc);
                // A nonce stops verifying NONCE_LIFETIME_S after its issue (at most `now`),
                // plus the minute of clock skew the issuer tolerates.
                let until = now_unix + NONCE_LIFETIME_S + 60;
                self.order.push_back((until, nonce.to_owned()));
                true
            }
        }
    }
}

/// Which tenant a source or digest login speaks for. Built once from the configuration
/// (validation guarantees an address and a username belong to one tenant).
#[derive(Debug, Clone)]
pub(crate) struct AllowList {
    /// Source IP → tenant and the transports and ports allowed from there.
    by_ip: HashMap<IpAddr, (Arc<str>, Vec<Pin>)>,
    /// Digest username → login.
    users: HashMap<String, Login>,
    /// Our realm, in challenges and checked in credentials.
    realm: String,
    /// Issues and checks nonces.
    nonces: NonceIssuer,
    /// Algorithms offered, one challenge each, in order; answers with others are refused.
    algorithms: Vec<Algorithm>,
    /// Nonce counts seen (replays).
    counts: NonceCounts,
}

impl Default for AllowList {
    fn default() -> Self {
        AllowList {
            by_ip: HashMap::new(),
            users: HashMap::new(),
            realm: "switchyard".into(),
            nonces: NonceIssuer::new(&rand::random::<[u8; 32]>(), NONCE_LIFETIME_S),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            counts: NonceCounts::default(),
        }
    }
}

impl AllowList {
    /// Every tenant's `sip_allow` entries and `sip_users` logins.
    pub(crate) fn from_config(config: &Config) -> Self {
        let mut list = AllowList::default();
        if let Some(sip) = &config.sip {
            list.realm.clone_from(&sip.realm);
            list.algorithms = sip
                .digest_algorithms
                .iter()
                .map(|a| {
                    if a == "MD5" {
                        Algorithm::Md5
                    } else {
                        Algorithm::Sha256
                    }
                })
                .collect();
        }
        for t in &config.tenants {
            let name: Arc<str> = Arc::from(t.name.as_str());
            for a in &t.sip.allow {
                let pin = Pin {
                    transport: a.transport.map(Transport::from),
                    port: a.port,
                };
                list.by_ip
                    .entry(a.ip)
                    .or_insert_with(|| (name.clone(), Vec::new()))
                    .1
                    .push(pin);
            }
            for u in &t.sip.users {
                let login = match &u.secret {
                    SipSecret::Password(pw) => Login {
                        tenant: name.clone(),
                        sha256: Some(digest::ha1(Algorithm::Sha256, &u.username, &list.realm, pw)),
                        md5: Some(digest::ha1(Algorithm::Md5, &u.username, &list.realm, pw)),
                    },
                    SipSecret::Ha1 { sha256, md5 } => Login {
                        tenant: name.clone(),
                        sha256: sha256.clone(),
                        md5: md5.clone(),
                    },
                };
                list.users.entry(u.username.clone()).or_insert(login);
            }
        }
        list
    }

    /// The tenant whose `sip_allow` admits requests from `source` without a password, if any.
    pub(crate) fn tenant(&self, source: Peer) -> Option<&Arc<str>> {
        let (tenant, pins) = self.by_ip.get(&source.addr.ip())?;
        pins.iter().any(|p| p.admits(source)).then_some(tenant)
    }

    /// Decides a request from `source` at `now_unix` (seconds since 1970, for nonces). A
    /// successful digest answer is consumed: the same answer again is a replay.
    pub(crate) fn authenticate(&mut self, req: &Message, source: Peer, now_unix: u64) -> Verdict {
        if let Some(t) = self.tenant(source) {
            return Verdict::Tenant(t.clone());
        }
        if self.users.is_empty() {
            return Verdict::Forbidden("Forbidden");
        }
        // Several Proxy-Authorization headers may be present (one per realm on the path):
        // ours is the one naming our realm.
        let ours = req
            .headers
            .get_all(&HeaderName::ProxyAuthorization)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == self.realm);
        let Some(creds) = ours else {
            let malformed = req
                .headers
                .get_all(&HeaderName::ProxyAuthorization)
                .any(|v| Credentials::parse(v).is_err());
            if malformed {
                return Verdict::BadRequest("Bad Request (malformed Proxy-Authorization)".into());
            }
            return Verdict::Challenge(self.challenges(now_unix, false));
        };
        // RFC 3261 §22.4: the digest-uri is the Request-URI, byte for byte.
        let uri_matches = req
            .request_uri()
            .is_some_and(|u| u.as_bytes().as_ref() == creds.uri.as_bytes());
        if !uri_matches {
            return Verdict::BadRequest(format!(
                "Bad Request (digest uri {:?} differs from the Request-URI)",
                creds.uri
            ));
        }
        let Some(login) = self.users.get(&creds.username) else {
            tracing::info!(user = %creds.username, %source, "SIP digest for an unknown user");
            return Verdict::Forbidden("Forbidden (bad credentials)");
        };
        // Only what we offered: no downgrade to an algorithm the operator turned off, and no
        // RFC 2069 answer (without qop there is no nonce count to stop a replay).
        if !self.algorithms.contains(&creds.algorithm) || creds.qop.is_none() {
            tracing::info!(user = %creds.username, %source, algorithm = creds.algorithm.as_str(), qop = ?creds.qop, "SIP digest answer in a form we did not offer");
            return Verdict::Forbidden("Forbidden (digest algorithm or qop not offered)");
        }
        let Some(ha1) = login.ha1(creds.algorithm) else {
            tracing::info!(user = %creds.username, %source, algorithm = creds.algorithm.as_str(), "SIP digest login has no hash for this algorithm");
            return Verdict::Forbidden("Forbidden (bad credentials)");
        };
        let tenant = login.tenant.clone();
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        match self
            .nonces
            .verify_ha1(&creds, &self.realm, &method, ha1, now_unix)
        {
            Ok(()) => {
                // verify_ha1 accepts qop=auth only with an nc.
                let nc = creds.nc.unwrap_or(0);
                if self.counts.advance(&creds.nonce, nc, now_unix) {
                    Verdict::Tenant(tenant)
                } else {
                    tracing::info!(user = %creds.username, %source, nc, "SIP digest answer replayed: challenged again");
                    Verdict::Challenge(self.challenges(now_unix, true))
                }
            }
            Err(AuthError::Stale) => Verdict::Challenge(self.challenges(now_unix, true)),
            Err(AuthError::BadNonce) => Verdict::Challenge(self.challenges(now_unix, false)),
            Err(e) => {
                tracing::info!(user = %creds.username, %source, error = %e, "SIP digest refused");
                Verdict::Forbidden("Forbidden (bad credentials)")
            }
        }
    }

    /// Removes the Proxy-Authorization values for our realm (RFC 3261 §22.3: credentials are
    /// consumed by the proxy they were meant for; those for other realms stay).
    pub(crate) fn strip_own_credentials(&self, msg: &mut Message) {
        let values: Vec<bytes::Bytes> = msg
            .headers
            .get_all(&HeaderName::ProxyAuthorization)
            .cloned()
            .collect();
        if values.is_empty() {
            return;
        }
        msg.headers.remove_all(&HeaderName::ProxyAuthorization);
        for v in values {
            let ours = Credentials::parse(&v).is_ok_and(|c| c.realm == self.realm);
            if !ours {
                msg.headers.push(HeaderName::ProxyAuthorization, v);
            }
        }
    }

    /// One challenge per configured algorithm, in order (by default the stronger first,
    /// RFC 8760 §2.4), each with its own nonce.
    fn challenges(&self, now_unix: u64, stale: bool) -> Vec<String> {
        self.algorithms
            .iter()
            .map(|&a| {
                self.nonces
                    .challenge(&self.realm, a, now_unix, stale, rand::random())
                    .to_header_value()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchyard_protocols::sip::digest::Challenge;

    fn login(password: &str) -> Login {
        Login {
            tenant: Arc::from("acme"),
            sha256: Some(digest::ha1(
                Algorithm::Sha256,
                "pbx1",
                "switchyard",
                password,
            )),
            md5: Some(digest::ha1(Algorithm::Md5, "pbx1", "switchyard", password)),
        }
    }

    fn list() -> AllowList {
        let mut l = AllowList::default();
        l.users.insert("pbx1".into(), login("s3cret-pass"));
        l
    }

    fn invite(auth: Option<&str>) -> Message {
        let mut m = Message::parse_datagram(Bytes::from_static(
            b"INVITE sip:447700900123@127.0.0.1:5060 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKabc\r\n\
              From: <sip:pbx1@h>;tag=1\r\nTo: <sip:b@h>\r\n\
              Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        if let Some(a) = auth {
            m.headers
                .push(HeaderName::ProxyAuthorization, a.to_string());
        }
        m
    }

    /// The challenge for `algorithm` of a fresh 407.
    fn challenge(l: &mut AllowList, algorithm: Algorithm, now: u64) -> Challenge {
        let Verdict::Challenge(c) = l.authenticate(&invite(None), source(), now) else {
            panic!("no challenge")
        };
        c.iter()
            .map(|v| Challenge::parse(v.as_bytes()).unwrap())
            .find(|c| c.algorithm == algorithm)
            .unwrap()
    }

    fn answer(l: &mut AllowList, password: &str, uri: &str, now: u64) -> String {
        let ch = challenge(l, Algorithm::Sha256, now);
        digest::answer(&ch, "pbx1", password, "INVITE", uri, "abcdef", 1)
            .unwrap()
            .to_header_value()
    }

    fn source() -> Peer {
        Peer::udp("192.0.2.9:5060".parse().unwrap())
    }

    const URI: &str = "sip:447700900123@127.0.0.1:5060";

    #[test]
    fn digest_login_picks_the_tenant() {
        let mut l = list();
        let auth = answer(&mut l, "s3cret-pass", URI, 1000);
        assert_eq!(
            l.authenticate(&invite(Some(&auth)), source(), 1010),
            Verdict::Tenant(Arc::from("acme"))
        );
    }

    #[test]
    fn wrong_password_is_forbidden_and_stale_nonce_rechallenged() {
        let mut l = list();
        let bad = answer(&mut l, "wrong-pass", URI, 1000);
        assert!(matches!(
            l.authenticate(&invite(Some(&bad)), source(), 1000),
            Verdict::Forbidden(_)
        ));
        let good = answer(&mut l, "s3cret-pass", URI, 1000);
        match l.authenticate(&invite(Some(&good)), source(), 1000 + NONCE_LIFETIME_S + 1) {
            Verdict::Challenge(c) => assert!(c[0].contains("stale=true"), "{c:?}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn credentials_for_another_uri_are_refused() {
        let mut l = list();
        let other = answer(&mut l, "s3cret-pass", "sip:999@127.0.0.1:5060", 1000);
        assert!(matches!(
            l.authenticate(&invite(Some(&other)), source(), 1000),
            Verdict::BadRequest(_)
        ));
    }

    #[test]
    fn digest_uri_must_be_the_request_uri_exactly() {
        let mut l = list();
        // The same host and port without the user names another resource.
        let hostport = answer(&mut l, "s3cret-pass", "sip:127.0.0.1:5060", 1000);
        assert!(matches!(
            l.authenticate(&invite(Some(&hostport)), source(), 1000),
            Verdict::BadRequest(_)
        ));
    }

    #[test]
    fn a_replayed_answer_is_challenged_again_and_a_counted_reuse_is_not() {
        let mut l = list();
        let ch = challenge(&mut l, Algorithm::Sha256, 1000);
        let first = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "abcdef", 1)
            .unwrap()
            .to_header_value();
        assert_eq!(
            l.authenticate(&invite(Some(&first)), source(), 1001),
            Verdict::Tenant(Arc::from("acme"))
        );
        // The same header again (captured on the wire): a fresh challenge, not a call.
        match l.authenticate(&invite(Some(&first)), source(), 1002) {
            Verdict::Challenge(c) => assert!(c[0].contains("stale=true"), "{c:?}"),
            v => panic!("replay accepted: {v:?}"),
        }
        // The PBX reusing its nonce with the next count is fine (RFC 7616 §3.4).
        let second = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "abcdef", 2)
            .unwrap()
            .to_header_value();
        assert_eq!(
            l.authenticate(&invite(Some(&second)), source(), 1003),
            Verdict::Tenant(Arc::from("acme"))
        );
        // A lower count after a higher one is a replay too.
        let mut l2 = list();
        let ch = challenge(&mut l2, Algorithm::Sha256, 1000);
        let nc = |n| {
            digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "x", n)
                .unwrap()
                .to_header_value()
        };
        assert!(matches!(
            l2.authenticate(&invite(Some(&nc(5))), source(), 1000),
            Verdict::Tenant(_)
        ));
        assert!(matches!(
            l2.authenticate(&invite(Some(&nc(4))), source(), 1000),
            Verdict::Challenge(_)
        ));
        // Two challenges in the same second have different nonces: both logins succeed.
        let a = challenge(&mut l2, Algorithm::Sha256, 2000);
        let b = challenge(&mut l2, Algorithm::Sha256, 2000);
        assert_ne!(a.nonce, b.nonce);
        for ch in [a, b] {
            let h = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "y", 1)
                .unwrap()
                .to_header_value();
            assert!(matches!(
                l2.authenticate(&invite(Some(&h)), source(), 2000),
                Verdict::Tenant(_)
            ));
        }
    }

    #[test]
    fn only_offered_algorithms_and_qop_auth_are_accepted() {
        let mut l = list();
        l.algorithms = vec![Algorithm::Sha256];
        let ch = challenge(&mut l, Algorithm::Sha256, 1000);
        // An MD5 answer for our (SHA-256) nonce: right password, refused.
        let mut md5 = ch.clone();
        md5.algorithm = Algorithm::Md5;
        let h = digest::answer(&md5, "pbx1", "s3cret-pass", "INVITE", URI, "c", 1)
            .unwrap()
            .to_header_value();
        assert!(matches!(
            l.authenticate(&invite(Some(&h)), source(), 1000),
            Verdict::Forbidden(_)
        ));
        // An RFC 2069 answer (no qop, so no nonce count): refused.
        let mut no_qop = ch.clone();
        no_qop.qop.clear();
        let h = digest::answer(&no_qop, "pbx1", "s3cret-pass", "INVITE", URI, "c", 1)
            .unwrap()
            .to_header_value();
        assert!(!h.contains("qop"), "{h}");
        assert!(matches!(
            l.authenticate(&invite(Some(&h)), source(), 1000),
            Verdict::Forbidden(_)
        ));
        // The offered form works.
        let h = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "c", 1)
            .unwrap()
            .to_header_value();
        assert!(matches!(
            l.authenticate(&invite(Some(&h)), source(), 1000),
            Verdict::Tenant(_)
        ));
    }

    #[test]
    fn logins_with_stored_ha1_answer_only_with_their_algorithms() {
        let mut l = AllowList::default();
        l.users.insert(
            "pbx1".into(),
            Login {
                tenant: Arc::from("acme"),
                sha256: Some(digest::ha1(
                    Algorithm::Sha256,
                    "pbx1",
                    "switchyard",
                    "s3cret-pass",
                )),
                md5: None,
            },
        );
        let sha = answer(&mut l, "s3cret-pass", URI, 1000);
        assert_eq!(
            l.authenticate(&invite(Some(&sha)), source(), 1000),
            Verdict::Tenant(Arc::from("acme"))
        );
        let ch = challenge(&mut l, Algorithm::Md5, 1000);
        let md5 = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", URI, "c", 1)
            .unwrap()
            .to_header_value();
        assert!(matches!(
            l.authenticate(&invite(Some(&md5)), source(), 1000),
            Verdict::Forbidden(_)
        ));
    }

    #[test]
    fn allow_entries_pin_transport_and_port() {
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let mut l = AllowList::default();
        l.by_ip.insert(
            ip,
            (
                Arc::from("acme"),
                vec![
                    Pin {
                        transport: Some(Transport::Udp),
                        port: Some(5060),
                    },
                    Pin {
                        transport: Some(Transport::Tls),
                        port: None,
                    },
                ],
            ),
        );
        let peer = |transport, port| Peer {
            transport,
            addr: std::net::SocketAddr::new(ip, port),
        };
        assert!(l.tenant(peer(Transport::Udp, 5060)).is_some());
        assert!(l.tenant(peer(Transport::Udp, 5070)).is_none());
        assert!(l.tenant(peer(Transport::Tcp, 5060)).is_none());
        assert!(l.tenant(peer(Transport::Tls, 40_123)).is_some());
        // A plain address admits every transport and port.
        l.by_ip.insert(
            ip,
            (
                Arc::from("acme"),
                vec![Pin {
                    transport: None,
                    port: None,
                }],
            ),
        );
        assert!(l.tenant(peer(Transport::Tcp, 40_000)).is_some());
    }

    #[test]
    fn without_users_unknown_sources_are_forbidden() {
        let mut l = AllowList::default();
        assert!(matches!(
            l.authenticate(&invite(None), source(), 1000),
            Verdict::Forbidden(_)
        ));
    }
}
