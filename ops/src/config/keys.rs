//! API keys: generated at random, stored only as SHA-256 hashes, checked in constant time.
//!
//! A key is `sk_` followed by 43 random letters and digits (≈256 bits). The config file holds
//! `"sha256:" + hex(SHA-256(key))`; a leaked config file therefore leaks no usable key. Because
//! keys are high-entropy, an unsalted fast hash is enough (nothing to brute-force).
//!
//! `locate_hash`, behind [`super::Config::find_key`] and [`super::Config::is_operator_key`]
//! (which hash the presented key once), compares it with *every* stored hash using [`subtle`],
//! without an early exit, so the time taken depends only on how many keys are configured,
//! never on which key matched or how many bytes of it were right.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ConfigErrorKind;

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

    /// The hash whose bytes are `bytes` (as [`ApiKeyHash::as_bytes`] gave them).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
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

/// Where the key whose hash is `wanted` is among `lists` of stored hashes (one list per
/// owner: each tenant, or the operator): the list's index and the hash's index in it. Callers
/// hash a presented key once ([`ApiKeyHash::of_key`]); the dashboard's sessions keep only the
/// hash of the key they were opened with and ask with that.
///
/// Compares `wanted` with every hash of every list in constant time, with no early exit: the
/// time taken depends only on how many hashes there are, never on which one matched or how
/// many bytes of it were right. Validation keeps stored hashes unique across lists, so at most
/// one matches.
pub(crate) fn locate_hash<'a>(
    wanted: &ApiKeyHash,
    lists: impl IntoIterator<Item = &'a [ApiKeyHash]>,
) -> Option<(usize, usize)> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    let mut key = 0u32;
    for (i, hashes) in lists.into_iter().enumerate() {
        // List counts fit u32 (a config file with 4 billion tenants cannot be loaded).
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        for (k, hash) in hashes.iter().enumerate() {
            let hit = hash.ct_eq(wanted);
            index.conditional_assign(&i, hit);
            // Key counts per tenant are small; u32 as above.
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            key.conditional_assign(&k, hit);
            found |= hit;
        }
    }
    if bool::from(found) {
        Some((usize::try_from(index).ok()?, usize::try_from(key).ok()?))
    } else {
        None
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
