//! Digest authentication for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760): MD5 and SHA-256,
//! `qop=auth` with `nc`/`cnonce`, both sides.
//!
//! - Client (answering a carrier's 401/407): parse the `WWW-Authenticate`/`Proxy-Authenticate`
//!   value with [`Challenge::parse`], compute [`answer`], put
//!   [`Credentials::to_header_value`] into `Authorization`/`Proxy-Authorization`.
//! - Server (challenging tenants): a [`NonceIssuer`] makes stateless nonces (timestamp, a
//!   caller-supplied salt and an HMAC of both and the realm under a secret key), so any
//!   gateway node can verify any nonce without shared state; [`NonceIssuer::verify`] checks
//!   the nonce's MAC, its age (expired → [`AuthError::Stale`], answer a fresh challenge with
//!   `stale=true`) and the response.
//!
//! Replay is the verifier's to refuse: with a random salt every challenge's nonce is unique,
//! so remembering the highest `nc` accepted per nonce for the nonce's lifetime is enough (a
//! captured header repeats its `nc`). Time is passed in as UNIX seconds and salts by the
//! caller: nothing here reads a clock or draws random numbers.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::scan::{split_top_level, trim, unquote};

/// The digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn parse(s: &str) -> Result<Algorithm, DigestError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" => Algorithm::Sha256,
            "SHA-256-SESS" => Algorithm::Sha256Sess,
            _ => return Err(DigestError::UnsupportedAlgorithm),
        })
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
        }
    }
}

/// A header value could not be read as a digest challenge or credentials.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("not a Digest challenge or credentials")]
    NotDigest,
    /// A required parameter is absent.
    #[error("missing digest parameter {0}")]
    Missing(&'static str),
    /// A parameter is malformed (`nc` not 8 hex digits, bad syntax).
    #[error("malformed digest parameter {0}")]
    Malformed(&'static str),
    /// The algorithm is neither MD5 nor SHA-256 (with or without `-sess`).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// The challenge offers qop values but not `auth`.
    #[error("challenge does not offer qop=auth")]
    UnsupportedQop,
}

/// Why a tenant's credentials were refused (the tenant's fault; answer 401/407 or 403).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The nonce was issued by us but has expired: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The nonce was not issued by us (bad MAC, wrong realm, malformed).
    #[error("nonce not issued by us")]
    BadNonce,
    /// The realm differs from ours.
    #[error("wrong realm")]
    WrongRealm,
    /// The response hash is wrong: wrong password (or user).
    #[error("wrong digest response")]
    WrongResponse,
    /// The credentials use an algorithm or qop we do not accept.
    #[error("unsupported algorithm or qop")]
    Unsupported,
}

/// Splits `Digest a=b, c="d"` into (name, unquoted value) pairs.
fn params(value: &[u8]) -> Result<Vec<(String, String)>, DigestError> {
    let s = trim(value);
    let rest = match s.iter().position(|b| b.is_ascii_whitespace()) {
        Some(p)
            if s.get(..p)
                .is_some_and(|m| m.eq_ignore_ascii_case(b"digest")) =>
        {
            s.get(p..).unwrap_or(&[])
        }
        _ => return Err(DigestError::NotDigest),
    };
    let mut out = Vec::new();
    for piece in split_top_level(rest, b',') {
        let piece = trim(piece);
        if piece.is_empty() {
            continue;
        }
        let eq = piece
            .iter()
            .position(|&b| b == b'=')
            .ok_or(DigestError::Malformed("parameter"))?;
        let name =
            String::from_utf8_lossy(trim(piece.get(..eq).unwrap_or(&[]))).to_ascii_lowercase();
        let value = unquote(trim(piece.get(eq + 1..).unwrap_or(&[])));
        out.push((name, String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(out)
}

fn find(p: &[(String, String)], name: &str) -> Option<String> {
    p.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space; shown to users, part of HA1.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque string to echo back.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Offered qop values (empty: RFC 2069 compatibility mode).
    pub qop: Vec<String>,
    /// The previous nonce expired but the credentials were right: retry without asking the user.
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(value: &[u8]) -> Result<Challenge, DigestError> {
        let p = params(value)?;
        Ok(Challenge {
            realm: find(&p, "realm").ok_or(DigestError::Missing("realm"))?,
            nonce: find(&p, "nonce").ok_or(DigestError::Missing("nonce"))?,
            opaque: find(&p, "opaque"),
            algorithm: match find(&p, "algorithm") {
                Some(a) => Algorithm::parse(&a)?,
                None => Algorithm::Md5,
            },
            qop: find(&p, "qop")
                .map(|q| q.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            stale: find(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.as_str()
        );
        if !self.qop.is_empty() {
            let _ = write!(s, ", qop=\"{}\"", self.qop.join(","));
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque=\"{o}\"");
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }
}

/// `Authorization` / `Proxy-Authorization` digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm from the challenge.
    pub realm: String,
    /// Nonce from the challenge.
    pub nonce: String,
    /// The Request-URI as sent (digest-uri).
    pub uri: String,
    /// The response hash (hex).
    pub response: String,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Echoed opaque.
    pub opaque: Option<String>,
    /// `auth`, or `None` in RFC 2069 mode.
    pub qop: Option<String>,
    /// Nonce count (with qop).
    pub nc: Option<u32>,
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(value: &[u8]) -> Result<Credentials, DigestError> {
        let p = params(value)?;
        let nc = match find(&p, "nc") {
            Some(n) => Some(u32::from_str_radix(&n, 16).map_err(|_| DigestError::Malformed("nc"))?),
            None => None,
        };
        Ok(Credentials {
            username: find(&p, "username").ok_or(DigestError::Missing("username"))?,
            realm: find(&p, "realm").ok_or(DigestError::Missing("realm"))?,
            nonce: find(&p, "nonce").ok_or(DigestError::Missing("nonce"))?,
            uri: find(&p, "uri").ok_or(DigestError::Missing("uri"))?,
            response: find(&p, "response").ok_or(DigestError::Missing("response"))?,
            algorithm: match find(&p, "algorithm") {
                Some(a) => Algorithm::parse(&a)?,
                None => Algorithm::Md5,
            },
            cnonce: find(&p, "cnonce"),
            opaque: find(&p, "opaque"),
            qop: find(&p, "qop"),
            nc,
        })
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            self.username,
            self.realm,
            self.nonce,
            self.uri,
            self.response,
            self.algorithm.as_str()
        );
        if let Some(c) = &self.cnonce {
            let _ = write!(s, ", cnonce=\"{c}\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque=\"{o}\"");
        }
        if let Some(q) = &self.qop {
            let _ = write!(s, ", qop={q}");
        }
        if let Some(nc) = self.nc {
            let _ = write!(s, ", nc={nc:08x}");
        }
        s
    }
}

/// HA1 = H(username:realm:password) (store this instead of passwords).
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The response hash (RFC 7616 §3.4.1) from HA1 (as from [`ha1`]).
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    cnonce: Option<&str>,
    nc: Option<u32>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = if algorithm.is_sess() {
        algorithm.hash_hex(format!("{ha1_hex}:{nonce}:{}", cnonce.unwrap_or("")).as_bytes())
    } else {
        ha1_hex.to_string()
    };
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some(q) => algorithm.hash_hex(
            format!(
                "{ha1}:{nonce}:{:08x}:{}:{q}:{ha2}",
                nc.unwrap_or(0),
                cnonce.unwrap_or("")
            )
            .as_bytes(),
        ),
        None => algorithm.hash_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// Answers `challenge` for a request `method` to `uri` (client side). `cnonce` must be
/// unpredictable (the caller supplies it: this crate has no RNG); `nc` counts the requests
/// made with this nonce, starting at 1.
pub fn answer(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, DigestError> {
    let qop = if challenge.qop.is_empty() {
        None
    } else if challenge.qop.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        Some("auth".to_string())
    } else {
        return Err(DigestError::UnsupportedQop);
    };
    let (cnonce, nc) = match qop {
        Some(_) => (Some(cnonce.to_string()), Some(nc)),
        None => (None, None),
    };
    let h1 = ha1(challenge.algorithm, username, &challenge.realm, password);
    let response = response(
        challenge.algorithm,
        &h1,
        &challenge.nonce,
        cnonce.as_deref(),
        nc,
        qop.as_deref(),
        method,
        uri,
    );
    Ok(Credentials {
        username: username.to_string(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_string(),
        response,
        algorithm: challenge.algorithm,
        cnonce,
        opaque: challenge.opaque.clone(),
        qop,
        nc,
    })
}

/// Issues and checks stateless nonces: `hex(issued_at) . hex(salt) . hex(HMAC-SHA256(key,
/// issued_at ‖ salt ‖ realm))[..32]`.
#[derive(Clone)]
pub struct NonceIssuer {
    /// The HMAC key (shared by every gateway node; rotate by config).
    key: Vec<u8>,
    /// How long a nonce stays fresh, in seconds.
    lifetime: u64,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer with a secret `key` and a nonce lifetime in seconds.
    pub fn new(key: &[u8], lifetime_secs: u64) -> Self {
        NonceIssuer {
            key: key.to_vec(),
            lifetime: lifetime_secs,
        }
    }

    fn mac(&self, issued_at: u64, salt: u64, realm: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(&issued_at.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(realm.as_bytes());
        let tag = mac.finalize().into_bytes();
        hex::encode(tag.get(..16).unwrap_or(&[]))
    }

    /// A fresh nonce for `realm` at `now_unix` seconds; `salt` (random) makes it unique.
    pub fn nonce(&self, realm: &str, now_unix: u64, salt: u64) -> String {
        format!(
            "{now_unix:016x}{salt:016x}{}",
            self.mac(now_unix, salt, realm)
        )
    }

    /// A challenge (qop=auth) to put in a 401/407; `salt` (random) makes its nonce unique.
    pub fn challenge(
        &self,
        realm: &str,
        algorithm: Algorithm,
        now_unix: u64,
        stale: bool,
        salt: u64,
    ) -> Challenge {
        Challenge {
            realm: realm.to_string(),
            nonce: self.nonce(realm, now_unix, salt),
            opaque: None,
            algorithm,
            qop: vec!["auth".to_string()],
            stale,
        }
    }

    /// Checks credentials against the tenant's password for `realm`.
    pub fn verify(
        &self,
        creds: &Credentials,
        realm: &str,
        method: &str,
        password: &str,
        now_unix: u64,
    ) -> Result<(), AuthError> {
        let h1 = ha1(creds.algorithm, &creds.username, realm, password);
        self.verify_ha1(creds, realm, method, &h1, now_unix)
    }

    /// Checks credentials against a stored HA1 for `realm` (and the credentials' algorithm).
    pub fn verify_ha1(
        &self,
        creds: &Credentials,
        realm: &str,
        method: &str,
        ha1_hex: &str,
        now_unix: u64,
    ) -> Result<(), AuthError> {
        if creds.realm != realm {
            return Err(AuthError::WrongRealm);
        }
        let field = |range: std::ops::Range<usize>| {
            creds
                .nonce
                .get(range)
                .and_then(|t| u64::from_str_radix(t, 16).ok())
                .ok_or(AuthError::BadNonce)
        };
        let issued_at = field(0..16)?;
        let salt = field(16..32)?;
        let mac = creds.nonce.get(32..).ok_or(AuthError::BadNonce)?;
        if !bool::from(
            mac.as_bytes()
                .ct_eq(self.mac(issued_at, salt, realm).as_bytes()),
        ) {
            return Err(AuthError::BadNonce);
        }
        match creds.qop.as_deref() {
            None => {}
            Some(q)
                if q.eq_ignore_ascii_case("auth")
                    && creds.cnonce.is_some()
                    && creds.nc.is_some() => {}
            Some(_) => return Err(AuthError::Unsupported),
        }
        let expected = response(
            creds.algorithm,
            ha1_hex,
            &creds.nonce,
            creds.cnonce.as_deref(),
            creds.nc,
            creds.qop.as_deref(),
            method,
            &creds.uri,
        );
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(creds.response.to_ascii_lowercase().as_bytes()),
        ) {
            return Err(AuthError::WrongResponse);
        }
        // Checked after the response so that a stale nonce with the right password tells the
        // client to retry silently (stale=true) rather than to ask the user.
        if now_unix.saturating_sub(issued_at) > self.lifetime || issued_at > now_unix + 60 {
            return Err(AuthError::Stale);
        }
        Ok(())
    }
}
