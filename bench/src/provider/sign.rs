//! Webhook signatures, as the providers compute them (and as a receiver checks them).
//!
//! - Meta (WhatsApp, Messenger): `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the
//!   raw request body keyed with the app secret
//!   (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads>).
//! - RBM: `X-Goog-Signature: <base64>`, the HMAC-SHA512 keyed with the webhook's client token
//!   of the base64-*decoded* `message.data` (the event JSON), as in Google's verification
//!   sample (<https://developers.google.com/business-communications/rcs-business-messaging/guides/integrate/webhooks>).
//! - Telegram signs nothing: it repeats the `secret_token` given to `setWebhook` in
//!   `X-Telegram-Bot-Api-Secret-Token` (<https://core.telegram.org/bots/api#setwebhook>).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// The header Meta signs webhooks with.
pub const META_HEADER: &str = "x-hub-signature-256";
/// The header RBM signs webhooks with.
pub const RBM_HEADER: &str = "x-goog-signature";
/// The header Telegram repeats the webhook secret in.
pub const TELEGRAM_HEADER: &str = "x-telegram-bot-api-secret-token";

/// `sha256=<hex HMAC-SHA256(app_secret, body)>`.
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the Meta signature of `body` (constant-time comparison).
pub fn meta_verify(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// `base64(HMAC-SHA512(client_token, event_json))`.
pub fn rbm_signature(client_token: &str, event_json: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(client_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(event_json);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header` is the RBM signature of `event_json` (constant-time comparison).
pub fn rbm_verify(client_token: &str, event_json: &[u8], header: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(header) else {
        return false;
    };
    let mut mac = Hmac::<Sha512>::new_from_slice(client_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(event_json);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_signature_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = meta_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(meta_verify("Jefe", b"what do ya want for nothing?", &sig));
        assert!(!meta_verify("Jeff", b"what do ya want for nothing?", &sig));
        assert!(!meta_verify(
            "Jefe",
            b"what do ya want for nothing?",
            "sha1=00"
        ));
    }

    #[test]
    fn rbm_signature_matches_a_known_vector() {
        // RFC 4231 test case 2, HMAC-SHA512, base64 of the hex digest's bytes.
        let expected = hex::decode(
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        )
        .unwrap();
        let sig = rbm_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&sig)
                .unwrap(),
            expected
        );
        assert!(rbm_verify("Jefe", b"what do ya want for nothing?", &sig));
        assert!(!rbm_verify("other", b"what do ya want for nothing?", &sig));
    }
}
