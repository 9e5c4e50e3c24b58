//! API keys: generated at random, stored only as SHA-256 hashes, checked in constant time.
//!
//! A key is `sk_` followed by 43 random letters and digits (≈256 bits). The config file holds
//! `"sha256:" + hex(SHA-256(key))`; a leaked config file therefore leaks no usable key. Because
//! keys are high-entropy, an unsalted fast hash is enough (nothing to brute-force).
//!
//! [`Config::find_tenant`] hashes the presented key once and compares it with *every* stored
//! hash using [`subtle`], without an early exit, so the time taken depends only on how many
//! keys are configured, never on which key matched or how many bytes of it were right.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ConfigErrorKind;
use super::model::{Config, Scopes, Tenant};

/// Prefix of a stored key hash.
pub const HASH_PREFIX: &str = "sha256:";

/// Prefix of generated keys; it makes a key recognisable when it leaks (secret scanners).
pub const KEY_PREFIX: &str = "sk_";

/// Random characters after [`KEY_PREFIX`]: 43 base-62 characters carry 256 bits.
const KEY_RANDOM_CHARS: usize = 43;

/// The SHA-256 hash of an API key, as stored in the configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// The hash of a plaintext key.
    pub fn of_key(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses `"sha256:"` and 64 hex digits (either case). Anything else is refused; a value
    /// that looks like a plaintext key gets [`ConfigErrorKind::PlaintextApiKey`], which says how
    /// to hash it without echoing the value.
    pub fn parse(s: &str) -> Result<Self, ConfigErrorKind> {
        let Some(hex_part) = s.strip_prefix(HASH_PREFIX) else {
            return Err(ConfigErrorKind::PlaintextApiKey);
        };
        let mut out = [0u8; 32];
        match hex::decode_to_slice(hex_part, &mut out) {
            Ok(()) => Ok(Self(out)),
            Err(_) => Err(ConfigErrorKind::Invalid(format!(
                "an API key hash is \"sha256:\" followed by exactly 64 hex digits (got {} \
                 characters after the prefix)",
                hex_part.chars().count()
            ))),
        }
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Display for ApiKeyHash {
    /// `sha256:<64 lowercase hex digits>`, the form the config file takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HASH_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ApiKeyHash {
    /// Shortened: enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "ApiKeyHash({HASH_PREFIX}{}…)", h.get(..12).unwrap_or(""))
    }
}

/// The string to put in `api_keys` for `key`: `"sha256:"` + lowercase hex of its SHA-256.
pub fn hash_api_key(key: &str) -> String {
    ApiKeyHash::of_key(key).to_string()
}

/// A new random API key, `sk_` + 43 letters and digits, from the thread-local CSPRNG (seeded
/// from the operating system).
pub fn generate_api_key() -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    key.push_str(KEY_PREFIX);
    Alphanumeric.append_string(&mut rand::rng(), &mut key, KEY_RANDOM_CHARS);
    key
}

impl Config {
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
        let wanted = ApiKeyHash::of_key(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        let mut key = 0u32;
        for (i, tenant) in self.tenants.iter().enumerate() {
            // Tenant counts fit u32 (a config file with 4 billion tenants cannot be loaded).
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for (k, hash) in tenant.api_keys.iter().enumerate() {
                let hit = hash.ct_eq(&wanted);
                index.conditional_assign(&i, hit);
                // Key counts per tenant are small; u32 as above.
                let k = u32::try_from(k).unwrap_or(u32::MAX);
                key.conditional_assign(&k, hit);
                found |= hit;
            }
        }
        if bool::from(found) {
            let tenant = self.tenants.get(usize::try_from(index).ok()?)?;
            let scopes = tenant
                .api_key_scopes
                .get(usize::try_from(key).ok()?)
                .copied()
                .unwrap_or(Scopes::ALL);
            Some((tenant, scopes))
        } else {
            None
        }
    }
}

impl Config {
    /// True when `presented` is one of the operator's keys (`[operator] api_keys`). Compares
    /// against every operator hash in constant time, as [`Config::find_key`] does.
    pub fn is_operator_key(&self, presented: &str) -> bool {
        let wanted = ApiKeyHash::of_key(presented);
        let mut found = subtle::Choice::from(0);
        for hash in &self.operator.api_keys {
            found |= hash.ct_eq(&wanted);
        }
        bool::from(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_format() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hash_api_key("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let h = ApiKeyHash::parse(&hash_api_key("abc")).unwrap();
        assert_eq!(h, ApiKeyHash::of_key("abc"));
        let upper = hash_api_key("abc")
            .to_uppercase()
            .replace("SHA256:", "sha256:");
        assert_eq!(ApiKeyHash::parse(&upper).unwrap(), h);
    }

    #[test]
    fn refuses_plaintext_and_bad_hex() {
        assert!(matches!(
            ApiKeyHash::parse("sk_live_abc"),
            Err(ConfigErrorKind::PlaintextApiKey)
        ));
        assert!(matches!(
            ApiKeyHash::parse("sha256:abcd"),
            Err(ConfigErrorKind::Invalid(_))
        ));
        let msg = ConfigErrorKind::PlaintextApiKey.to_string();
        assert!(msg.contains("sha256sum"), "{msg}");
    }

    #[test]
    fn generated_keys() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 46);
        assert!(a.starts_with("sk_"));
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
