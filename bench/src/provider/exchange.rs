//! The sans-IO boundary: a provider module gets a [`Request`] and `now`, and returns a
//! [`Reply`] (the HTTP answer, how long to hold it, and the webhooks to send later). Building
//! a webhook's bytes is deferred to the moment it fires ([`Action`]), so that what happened
//! meanwhile (an RBM revocation, say) decides whether it is still sent.

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use super::{messenger, rbm, telegram, whatsapp};

/// The four simulated providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// WhatsApp Business Cloud API.
    Whatsapp,
    /// Telegram Bot API.
    Telegram,
    /// Messenger Platform Send API.
    Messenger,
    /// Google RCS Business Messaging.
    Rbm,
}

impl Provider {
    /// All of them, in the order `GET /stats` lists them.
    pub const ALL: [Provider; 4] = [
        Provider::Whatsapp,
        Provider::Telegram,
        Provider::Messenger,
        Provider::Rbm,
    ];

    /// The name used in the control API's paths and in `GET /stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Whatsapp => "whatsapp",
            Provider::Telegram => "telegram",
            Provider::Messenger => "messenger",
            Provider::Rbm => "rbm",
        }
    }

    /// The provider named `name` in a control path.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// An HTTP request as the provider modules see it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`, …
    pub method: String,
    /// The path, percent-decoded (an RBM `%2B` is a `+`).
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The path's segments after the leading `/`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }

    /// The body as JSON (`None` when it is not JSON).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a request ended, for the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A message was accepted under this provider id.
    Accepted {
        /// The id the provider answered with.
        message_id: String,
    },
    /// The same message id again (RBM): answered, not sent twice.
    Duplicate,
    /// Refused; the key counted in `refused` (e.g. `131047`, `400`, `NOT_FOUND`).
    Refused(String),
    /// A message revoked (RBM `DELETE`): it will not be delivered.
    Revoked,
    /// A request that sends nothing (capability check, a revocation that found nothing).
    Other,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// How long to hold the answer (scripted slowness).
    pub delay: Duration,
    /// For the counters.
    pub verdict: Verdict,
    /// The recipient the request was for, when it named one.
    pub recipient: Option<String>,
    /// Webhooks to send later.
    pub scheduled: Vec<Scheduled>,
}

impl Reply {
    /// An answer with nothing scheduled.
    pub fn new(status: u16, body: Value, verdict: Verdict) -> Reply {
        Reply {
            status,
            body,
            delay: Duration::ZERO,
            verdict,
            recipient: None,
            scheduled: Vec::new(),
        }
    }
}

/// A webhook to build and send `after` the reply.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Delay from the reply.
    pub after: Duration,
    /// What to build then.
    pub action: Action,
}

/// A webhook to build when it fires, by provider.
#[derive(Debug, Clone)]
pub enum Action {
    /// A WhatsApp status or inbound message.
    Whatsapp(whatsapp::Event),
    /// A Telegram update.
    Telegram(telegram::Event),
    /// A Messenger delivery, read or inbound message.
    Messenger(messenger::Event),
    /// An RBM user or server event.
    Rbm(rbm::Event),
}

/// A webhook ready to POST.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Whose webhook.
    pub provider: Provider,
    /// What it reports (`delivered`, `read`, `message`, `TTL_EXPIRATION_REVOKED`, …).
    pub kind: String,
    /// Where to POST it.
    pub url: String,
    /// Extra headers (signature, secret token); `content-type` is always JSON.
    pub headers: Vec<(String, String)>,
    /// The exact bytes sent (and signed).
    pub body: Vec<u8>,
}

/// A simulated message from a user (control port: `POST /{provider}/inbound`): it opens the
/// customer-service window (WhatsApp, Messenger), makes the chat known (Telegram) and, unless
/// `webhook` is false, is POSTed to the configured callback like the provider would.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// The user: WhatsApp number, Telegram chat id, Messenger PSID, RBM E.164 number.
    pub from: String,
    /// The text the user sent.
    #[serde(default = "Inbound::default_text")]
    pub text: String,
    /// The user's display name (WhatsApp profile, Telegram first name).
    #[serde(default = "Inbound::default_name")]
    pub name: String,
    /// How long ago the user wrote, in seconds (more than 86400 leaves the window closed).
    #[serde(default)]
    pub age_s: u64,
    /// Whether to POST the inbound webhook.
    #[serde(default = "Inbound::yes")]
    pub webhook: bool,
    /// How many more times the same webhook is POSTed after the first (same message id, as a
    /// provider resends when it saw no answer in time).
    #[serde(default)]
    pub resend: u8,
}

impl Inbound {
    fn default_text() -> String {
        "hello".into()
    }
    fn default_name() -> String {
        "Test User".into()
    }
    fn yes() -> bool {
        true
    }

    /// When the user wrote.
    pub fn at(&self, now: SystemTime) -> SystemTime {
        now.checked_sub(Duration::from_secs(self.age_s))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// The customer-service window of WhatsApp and Messenger: 24 hours after the user's last
/// message.
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Whether a window opened at `opened` (if ever) lasting `len` is still open at `now`.
pub fn window_open(opened: Option<SystemTime>, len: Duration, now: SystemTime) -> bool {
    opened.is_some_and(|t| now.duration_since(t).map(|age| age < len).unwrap_or(true))
}

/// Seconds since the Unix epoch.
pub fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC with nanoseconds, as Google's APIs write timestamps.
pub fn rfc3339(now: SystemTime) -> String {
    time::OffsetDateTime::from(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `n` random characters from `[A-Za-z0-9]`.
pub fn random_alnum(rng: &mut impl Rng, n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, for query strings).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits and decodes a query string.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("/v1/phones/%2B4477/x", false),
            "/v1/phones/+4477/x"
        );
        assert_eq!(percent_decode("a+b%zz", true), "a b%zz");
        assert_eq!(
            parse_query("access_token=a%20b&x=&y"),
            vec![
                ("access_token".into(), "a b".into()),
                ("x".into(), String::new()),
                ("y".into(), String::new())
            ]
        );
    }

    #[test]
    fn bearer_and_timestamps() {
        let r = Request {
            headers: vec![("authorization".into(), "Bearer abc ".into())],
            ..Request::default()
        };
        assert_eq!(r.bearer(), Some("abc"));
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(unix_secs(t), 1);
        assert_eq!(unix_ms(t), 1_500);
        assert_eq!(rfc3339(t), "1970-01-01T00:00:01.5Z");
    }
}
