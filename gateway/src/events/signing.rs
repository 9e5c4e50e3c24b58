//! `X-Switchyard-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 over
//! `"<t>.<body>"` with each of the tenant's secrets (two during a rotation), Stripe-style. A
//! receiver accepts the request when any `v1` matches its secret and `t` is recent (it
//! should allow a few minutes of skew, and reject older ones to stop replays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header's name.
pub(crate) const HEADER: &str = "X-Switchyard-Signature";

/// The hex HMAC-SHA256 of `"<t>.<body>"` with `secret`.
pub(crate) fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The header value for `body` sent at unix time `t`, one `v1` per secret.
pub(crate) fn header_value<S: AsRef<[u8]>>(secrets: &[S], t: i64, body: &[u8]) -> String {
    let mut v = format!("t={t}");
    for s in secrets {
        v.push_str(",v1=");
        v.push_str(&signature(s.as_ref(), t, body));
    }
    v
}

/// Checks a header value as a receiver would: some `v1` matches `secret` (compared in constant
/// time) and `t` is within `tolerance_s` of `now`.
#[cfg(test)]
pub(crate) fn verify(header: &str, secret: &[u8], body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_s {
        return false;
    }
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    sigs.iter()
        .any(|s| hex::decode(s).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed vector, computed independently with
    /// `printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test_secret_0001`.
    #[test]
    fn fixed_vector() {
        let body = br#"{"id":"evt_1"}"#;
        assert_eq!(
            signature(b"whsec_test_secret_0001", 1_700_000_000, body),
            FIXED
        );
        let h = header_value(&["whsec_test_secret_0001"], 1_700_000_000, body);
        assert_eq!(h, format!("t=1700000000,v1={FIXED}"));
    }

    const FIXED: &str = "3596b92983e343fa090cd7f42a51d87c7b519fa4dc4ac46ff5f7d08b1dc24930";

    #[test]
    fn rotation_sends_both_and_either_verifies() {
        let body = b"{}";
        let h = header_value(&["old_secret_0000000", "new_secret_0000000"], 100, body);
        assert_eq!(h.matches("v1=").count(), 2);
        assert!(verify(&h, b"old_secret_0000000", body, 100, 300));
        assert!(verify(&h, b"new_secret_0000000", body, 150, 300));
        assert!(!verify(&h, b"other_secret_00000", body, 100, 300));
        assert!(!verify(&h, b"old_secret_0000000", b"{ }", 100, 300));
        assert!(!verify(&h, b"old_secret_0000000", body, 1000, 300));
    }
}
