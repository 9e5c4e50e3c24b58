//! Who is calling: a tenant's PBX is known by its source address (`sip_allow`) or by a digest
//! login (`sip_users`, RFC 3261 §22.3 with RFC 8760's SHA-256). One lookup per INVITE.
//!
//! Digest uses stateless nonces (an HMAC of the issue time, see
//! [`switchyard_protocols::sip::digest::NonceIssuer`]): nothing is stored per challenge, so a
//! flood of INVITEs cannot fill memory. The nonce key is random per process, so a restart
//! makes outstanding nonces stale (the PBX retries with a fresh one). Nonce counts are not
//! tracked: a captured Proxy-Authorization can be replayed for the same Request-URI until its
//! nonce expires ([`NONCE_LIFETIME_S`]), which is why the digest URI must match.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use switchyard_ops::config::Config;
use switchyard_protocols::sip::digest::{Algorithm, AuthError, Credentials, NonceIssuer};
use switchyard_protocols::sip::{HeaderName, Message, Uri};

/// Seconds a challenge's nonce stays fresh.
pub const NONCE_LIFETIME_S: u64 = 300;

/// What to do with an INVITE, as far as authentication goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It speaks for this tenant.
    Tenant(Arc<str>),
    /// Ask for credentials: 407 with these `Proxy-Authenticate` values (one per configured
    /// algorithm).
    Challenge(Vec<String>),
    /// Refuse: 403 with this reason (no tenant allows the address and no digest login is
    /// configured, or the credentials are wrong).
    Forbidden(&'static str),
    /// The credentials are malformed or name another Request-URI: 400 with this reason.
    BadRequest(String),
}

/// Which tenant a source address or digest login speaks for. Built once from the
/// configuration (validation guarantees an address and a username belong to one tenant).
#[derive(Debug, Clone)]
pub struct AllowList {
    /// Source IP → tenant name.
    by_ip: HashMap<IpAddr, Arc<str>>,
    /// Digest username → (tenant, password).
    users: HashMap<String, (Arc<str>, String)>,
    /// Our realm, in challenges and checked in credentials.
    realm: String,
    /// Issues and checks nonces.
    nonces: NonceIssuer,
    /// Algorithms offered, one challenge each, in order.
    algorithms: Vec<Algorithm>,
}

impl Default for AllowList {
    fn default() -> Self {
        AllowList {
            by_ip: HashMap::new(),
            users: HashMap::new(),
            realm: "switchyard".into(),
            nonces: NonceIssuer::new(&rand::random::<[u8; 32]>(), NONCE_LIFETIME_S),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

impl AllowList {
    /// Every tenant's `sip_allow` addresses and `sip_users` logins.
    pub fn from_config(config: &Config) -> Self {
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
            for ip in &t.sip.allow {
                list.by_ip.entry(*ip).or_insert_with(|| name.clone());
            }
            for u in &t.sip.users {
                list.users
                    .entry(u.username.clone())
                    .or_insert_with(|| (name.clone(), u.password.clone()));
            }
        }
        list
    }

    /// The tenant requests from `ip` belong to without a password, if any.
    pub fn tenant(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.by_ip.get(&ip)
    }

    /// Decides an INVITE from `source` at `now_unix` (seconds since 1970, for nonces).
    pub fn authenticate(&self, req: &Message, source: IpAddr, now_unix: u64) -> Verdict {
        if let Some(t) = self.by_ip.get(&source) {
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
        let uri_matches = req
            .request_uri()
            .is_some_and(|u| same_target(u, &creds.uri));
        if !uri_matches {
            return Verdict::BadRequest(format!(
                "Bad Request (digest uri {:?} differs from the Request-URI)",
                creds.uri
            ));
        }
        let Some((tenant, password)) = self.users.get(&creds.username) else {
            tracing::info!(user = %creds.username, %source, "SIP digest for an unknown user");
            return Verdict::Forbidden("Forbidden (bad credentials)");
        };
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        match self
            .nonces
            .verify(&creds, &self.realm, &method, password, now_unix)
        {
            Ok(()) => Verdict::Tenant(tenant.clone()),
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
    pub fn strip_own_credentials(&self, msg: &mut Message) {
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
    /// RFC 8760 §2.4).
    fn challenges(&self, now_unix: u64, stale: bool) -> Vec<String> {
        self.algorithms
            .iter()
            .map(|&a| {
                self.nonces
                    .challenge(&self.realm, a, now_unix, stale)
                    .to_header_value()
            })
            .collect()
    }
}

/// Whether a digest-uri names the request's target: the Request-URI itself, or the same
/// host and port without the user part (SIPp and some PBXs send `sip:host:port`).
fn same_target(request_uri: &Uri, digest_uri: &str) -> bool {
    if request_uri.as_bytes().as_ref() == digest_uri.as_bytes() {
        return true;
    }
    let Ok(d) = Uri::from_str_copy(digest_uri) else {
        return false;
    };
    match (request_uri.as_sip(), d.as_sip()) {
        (Some(r), Some(d)) => {
            r.host == d.host
                && r.port.unwrap_or(5060) == d.port.unwrap_or(5060)
                && d.user.as_ref().is_none_or(|u| Some(u) == r.user.as_ref())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchyard_protocols::sip::digest::{self, Challenge};

    fn list() -> AllowList {
        let mut l = AllowList::default();
        l.users
            .insert("pbx1".into(), (Arc::from("acme"), "s3cret-pass".into()));
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

    fn answer(l: &AllowList, password: &str, uri: &str, now: u64) -> String {
        let Verdict::Challenge(c) = l.authenticate(&invite(None), ip(), now) else {
            panic!("no challenge")
        };
        let ch = Challenge::parse(c[0].as_bytes()).unwrap();
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        digest::answer(&ch, "pbx1", password, "INVITE", uri, "abcdef", 1)
            .unwrap()
            .to_header_value()
    }

    fn ip() -> IpAddr {
        "192.0.2.9".parse().unwrap()
    }

    const URI: &str = "sip:447700900123@127.0.0.1:5060";

    #[test]
    fn digest_login_picks_the_tenant() {
        let l = list();
        let auth = answer(&l, "s3cret-pass", URI, 1000);
        assert_eq!(
            l.authenticate(&invite(Some(&auth)), ip(), 1010),
            Verdict::Tenant(Arc::from("acme"))
        );
    }

    #[test]
    fn wrong_password_is_forbidden_and_stale_nonce_rechallenged() {
        let l = list();
        let bad = answer(&l, "wrong-pass", URI, 1000);
        assert!(matches!(
            l.authenticate(&invite(Some(&bad)), ip(), 1000),
            Verdict::Forbidden(_)
        ));
        let good = answer(&l, "s3cret-pass", URI, 1000);
        match l.authenticate(&invite(Some(&good)), ip(), 1000 + NONCE_LIFETIME_S + 1) {
            Verdict::Challenge(c) => assert!(c[0].contains("stale=true"), "{c:?}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn credentials_for_another_uri_are_refused() {
        let l = list();
        let other = answer(&l, "s3cret-pass", "sip:999@127.0.0.1:5060", 1000);
        assert!(matches!(
            l.authenticate(&invite(Some(&other)), ip(), 1000),
            Verdict::BadRequest(_)
        ));
    }

    #[test]
    fn digest_uri_may_omit_the_user() {
        let l = list();
        let hostport = answer(&l, "s3cret-pass", "sip:127.0.0.1:5060", 1000);
        assert_eq!(
            l.authenticate(&invite(Some(&hostport)), ip(), 1000),
            Verdict::Tenant(Arc::from("acme"))
        );
    }

    #[test]
    fn without_users_unknown_sources_are_forbidden() {
        let l = AllowList::default();
        assert!(matches!(
            l.authenticate(&invite(None), ip(), 1000),
            Verdict::Forbidden(_)
        ));
    }
}
