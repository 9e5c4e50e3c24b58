//! `[carriers.rbm]`, `[carriers.whatsapp]`, `[carriers.telegram]` and `[carriers.messenger]`:
//! the HTTP provider APIs that carry the `rcs`, `whatsapp`, `telegram` and `messenger`
//! channels. Each provider account is a carrier: a name, a priority, health and a breaker like
//! an SMSC. RCS and WhatsApp address phone numbers and are priced by prefix decks; Telegram and
//! Messenger address their own user ids and are priced per message (`price`, `currency`).
//! `[carriers.webhook]` is the gateway's own HTTP client, which posts `webhook` messages to
//! the endpoints tenants name (priced per message too).
//!
//! Secrets (access tokens, webhook keys) are given in the file (`token`) or, better, named by
//! an environment variable read when the configuration is loaded (`token_env`).

use std::path::PathBuf;
use std::time::Duration;

use switchyard_routing::{Currency, Price};

use super::error::ConfigErrorKind;
use super::reader::{non_empty_path, Report, Table};
use super::redacted::REDACTED;

/// A secret read from the file or the environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret with this value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        REDACTED.fmt(f)
    }
}

/// What every provider API connection has: where, how long to wait, how many requests at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderHttp {
    /// The API's base URL (`base_url`, `https://` or, for a test server, `http://`).
    pub base_url: String,
    /// The CA bundle that signs the API's certificate (`tls_ca`, PEM); `None`: the system's
    /// roots.
    pub tls_ca: Option<PathBuf>,
    /// Longest wait for one API request, connection included (`timeout_s`).
    pub timeout: Duration,
    /// Requests in flight to the API at most (`max_connections`).
    pub max_connections: u32,
}

impl ProviderHttp {
    /// Default `timeout_s`.
    pub const DEFAULT_TIMEOUT_S: u64 = 15;
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;
}

/// `[carriers.rbm]`: a Google RCS Business Messaging agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbmAgent {
    /// API connection (`base_url` default `https://rcsbusinessmessaging.googleapis.com`).
    pub http: ProviderHttp,
    /// The agent's id (`agent_id`), sent with every request.
    pub agent_id: String,
    /// OAuth 2.0 bearer token of the agent's service account (`token` or `token_env`).
    pub token: Secret,
    /// The webhook client token that signs events (`webhook_token` or `webhook_token_env`):
    /// events whose `X-Goog-Signature` does not verify with it are refused. `None`: the
    /// agent's webhook is not accepted at all.
    pub webhook_token: Option<Secret>,
    /// Whether the agent asks RBM about a phone's capability before its first message
    /// (`capability_check`, default false). Without it the agent message is sent straight
    /// away: RBM answers a send to a phone without RCS with 404, which says the same in one
    /// request instead of two.
    pub capability_check: bool,
    /// How long a phone's RCS capability is remembered (`capability_cache_s`; 0: not
    /// remembered): a phone known not to have RCS is refused without a request.
    pub capability_cache: Duration,
}

impl RbmAgent {
    /// Default `base_url`.
    pub const DEFAULT_BASE_URL: &'static str = "https://rcsbusinessmessaging.googleapis.com";
    /// Default `capability_cache_s`.
    pub const DEFAULT_CAPABILITY_CACHE_S: u64 = 600;
}

/// `[carriers.whatsapp]`: a WhatsApp Business phone number on the Cloud API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhatsappAccount {
    /// API connection (`base_url` default `https://graph.facebook.com`).
    pub http: ProviderHttp,
    /// Graph API version in the path (`api_version`).
    pub api_version: String,
    /// The business phone number's id (`phone_number_id`).
    pub phone_number_id: String,
    /// System user access token (`access_token` or `access_token_env`).
    pub access_token: Secret,
    /// The app secret that signs webhooks (`app_secret` or `app_secret_env`): status and
    /// inbound webhooks whose `X-Hub-Signature-256` does not verify are refused. `None`: the
    /// webhook is not accepted at all.
    pub app_secret: Option<Secret>,
    /// What the webhook's verification request must repeat (`verify_token` or
    /// `verify_token_env`).
    pub verify_token: Option<Secret>,
}

impl WhatsappAccount {
    /// Default `base_url`.
    pub const DEFAULT_BASE_URL: &'static str = "https://graph.facebook.com";
    /// Default `api_version`.
    pub const DEFAULT_API_VERSION: &'static str = "v23.0";
}

/// `[carriers.telegram]`: a Telegram bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelegramBot {
    /// API connection (`base_url` default `https://api.telegram.org`).
    pub http: ProviderHttp,
    /// The bot's token (`bot_token` or `bot_token_env`).
    pub bot_token: Secret,
    /// The secret Telegram repeats in `X-Telegram-Bot-Api-Secret-Token` on webhooks
    /// (`webhook_secret` or `webhook_secret_env`).
    pub webhook_secret: Option<Secret>,
    /// What one message costs (`price`).
    pub price: Price,
    /// Currency of `price` (`currency`; default the routing base currency).
    pub currency: Option<Currency>,
}

impl TelegramBot {
    /// Default `base_url`.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.telegram.org";
}

/// `[carriers.messenger]`: a Facebook Page sending with the Messenger Send API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessengerPage {
    /// API connection (`base_url` default `https://graph.facebook.com`).
    pub http: ProviderHttp,
    /// Graph API version in the path (`api_version`).
    pub api_version: String,
    /// The page's access token (`page_access_token` or `page_access_token_env`).
    pub page_access_token: Secret,
    /// The app secret that signs webhooks (`app_secret` or `app_secret_env`).
    pub app_secret: Option<Secret>,
    /// What the webhook's verification request must repeat (`verify_token` or
    /// `verify_token_env`).
    pub verify_token: Option<Secret>,
    /// What one message costs (`price`).
    pub price: Price,
    /// Currency of `price` (`currency`; default the routing base currency).
    pub currency: Option<Currency>,
}

/// `[carriers.webhook]`: the gateway's own HTTP client, posting `webhook` messages to the
/// endpoints tenants name (only where `[egress]` allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSender {
    /// A CA bundle trusted besides the system's roots for `https://` endpoints (`tls_ca`,
    /// PEM).
    pub tls_ca: Option<PathBuf>,
    /// Longest wait for one POST, connection included (`timeout_s`).
    pub timeout: Duration,
    /// POSTs in flight at once on this carrier (`max_connections`).
    pub max_connections: u32,
    /// Largest JSON body posted (`max_body_bytes`); a larger message is rejected, not cut.
    pub max_body_bytes: usize,
    /// What one message costs (`price`).
    pub price: Price,
    /// Currency of `price` (`currency`; default the routing base currency).
    pub currency: Option<Currency>,
}

impl WebhookSender {
    /// Default `timeout_s`.
    pub const DEFAULT_TIMEOUT_S: u64 = 10;
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 64;
    /// Default `max_body_bytes` (256 KiB).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
}

/// Reads `[carriers.webhook]`.
pub(crate) fn webhook(report: &mut Report<'_>, mut t: Table<'_, '_>) -> WebhookSender {
    let tls_ca = non_empty_path(report, &mut t, "tls_ca");
    let timeout = Duration::from_secs(t.int_or(
        report,
        "timeout_s",
        1,
        600,
        WebhookSender::DEFAULT_TIMEOUT_S,
    ));
    let max_connections = t.int_or(
        report,
        "max_connections",
        1,
        10_000,
        WebhookSender::DEFAULT_MAX_CONNECTIONS,
    );
    let max_body_bytes = t.int_or(
        report,
        "max_body_bytes",
        1024,
        16 << 20,
        WebhookSender::DEFAULT_MAX_BODY_BYTES,
    );
    let (price, currency) = t.flat_price(report);
    t.finish(report);
    WebhookSender {
        tls_ca,
        timeout,
        max_connections,
        max_body_bytes,
        price,
        currency,
    }
}

/// Reads `[carriers.telegram]`.
pub(crate) fn telegram(report: &mut Report<'_>, mut t: Table<'_, '_>) -> TelegramBot {
    let http = http(report, &mut t, TelegramBot::DEFAULT_BASE_URL);
    let bot_token = required_secret(report, &mut t, "bot_token");
    if !bot_token.0.is_empty()
        && !bot_token
            .0
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/')
    {
        report.at_path(
            &t.key_path("bot_token"),
            ConfigErrorKind::Invalid("a bot token has no spaces or '/'".into()),
        );
    }
    let webhook_secret = secret(report, &mut t, "webhook_secret");
    let (price, currency) = t.flat_price(report);
    t.finish(report);
    TelegramBot {
        http,
        bot_token,
        webhook_secret,
        price,
        currency,
    }
}

/// Reads `[carriers.messenger]`.
pub(crate) fn messenger(report: &mut Report<'_>, mut t: Table<'_, '_>) -> MessengerPage {
    let http = http(report, &mut t, WhatsappAccount::DEFAULT_BASE_URL);
    let api_version = api_version(report, &mut t);
    let page_access_token = required_secret(report, &mut t, "page_access_token");
    let app_secret = secret(report, &mut t, "app_secret");
    let verify_token = secret(report, &mut t, "verify_token");
    let (price, currency) = t.flat_price(report);
    t.finish(report);
    MessengerPage {
        http,
        api_version,
        page_access_token,
        app_secret,
        verify_token,
        price,
        currency,
    }
}

/// `api_version` of a Graph API account.
fn api_version(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> String {
    let api_version = t
        .string(report, "api_version")
        .unwrap_or_else(|| WhatsappAccount::DEFAULT_API_VERSION.to_owned());
    if !is_path_word(&api_version) {
        report.at_path(
            &t.key_path("api_version"),
            ConfigErrorKind::Invalid(format!("{api_version:?} is not a version like \"v23.0\"")),
        );
    }
    api_version
}

/// Reads `[carriers.rbm]`.
pub(crate) fn rbm(report: &mut Report<'_>, mut t: Table<'_, '_>) -> RbmAgent {
    let http = http(report, &mut t, RbmAgent::DEFAULT_BASE_URL);
    let agent_id = t.req_string(report, "agent_id").unwrap_or_default();
    let token = required_secret(report, &mut t, "token");
    let webhook_token = secret(report, &mut t, "webhook_token");
    let capability_check = t.bool(report, "capability_check", false);
    let capability_cache = Duration::from_secs(t.int_or(
        report,
        "capability_cache_s",
        0,
        86_400,
        RbmAgent::DEFAULT_CAPABILITY_CACHE_S,
    ));
    t.finish(report);
    RbmAgent {
        http,
        agent_id,
        token,
        webhook_token,
        capability_check,
        capability_cache,
    }
}

/// Reads `[carriers.whatsapp]`.
pub(crate) fn whatsapp(report: &mut Report<'_>, mut t: Table<'_, '_>) -> WhatsappAccount {
    let http = http(report, &mut t, WhatsappAccount::DEFAULT_BASE_URL);
    let api_version = api_version(report, &mut t);
    let phone_number_id = t.req_string(report, "phone_number_id").unwrap_or_default();
    if !phone_number_id.is_empty() && !is_path_word(&phone_number_id) {
        report.at_path(
            &t.key_path("phone_number_id"),
            ConfigErrorKind::Invalid(format!("{phone_number_id:?} is not an id")),
        );
    }
    let access_token = required_secret(report, &mut t, "access_token");
    let app_secret = secret(report, &mut t, "app_secret");
    let verify_token = secret(report, &mut t, "verify_token");
    t.finish(report);
    WhatsappAccount {
        http,
        api_version,
        phone_number_id,
        access_token,
        app_secret,
        verify_token,
    }
}

/// Letters, digits, `.`, `-` and `_`: safe in a URL path without escaping.
fn is_path_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `base_url`, `tls_ca`, `timeout_s`, `max_connections`.
fn http(report: &mut Report<'_>, t: &mut Table<'_, '_>, default_url: &str) -> ProviderHttp {
    let base_url = t
        .string(report, "base_url")
        .unwrap_or_else(|| default_url.to_owned());
    match url::Url::parse(&base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => report.at_path(
            &t.key_path("base_url"),
            ConfigErrorKind::Invalid(format!("{base_url:?} is not an http(s) URL")),
        ),
    }
    let tls_ca = non_empty_path(report, t, "tls_ca");
    let timeout =
        Duration::from_secs(t.int_or(report, "timeout_s", 1, 600, ProviderHttp::DEFAULT_TIMEOUT_S));
    let max_connections = t.int_or(
        report,
        "max_connections",
        1,
        10_000,
        ProviderHttp::DEFAULT_MAX_CONNECTIONS,
    );
    ProviderHttp {
        base_url: base_url.trim_end_matches('/').to_owned(),
        tls_ca,
        timeout,
        max_connections,
    }
}

/// A secret that must be given: `key` or `key_env`.
fn required_secret(report: &mut Report<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Secret {
    let given = t.has(report, key) || t.has(report, env_key(key));
    match secret(report, t, key) {
        Some(s) => s,
        None => {
            if !given {
                t.missing(report, key);
            }
            Secret(String::new())
        }
    }
}

/// `key` (in the file) or `key_env` (the name of an environment variable that holds it, read
/// now), not both; `None` when neither is given or the variable is unset.
pub(crate) fn secret(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<Secret> {
    let env_key = env_key(key);
    let inline = t.string(report, key);
    let env_name = t.string(report, env_key);
    match (inline, env_name) {
        (Some(_), Some(_)) => {
            report.at_path(
                &t.key_path(env_key),
                ConfigErrorKind::Invalid(format!("give {key} or {env_key}, not both")),
            );
            None
        }
        (Some(v), None) if v.is_empty() => {
            report.at_path(
                &t.key_path(key),
                ConfigErrorKind::Invalid("must not be empty".into()),
            );
            None
        }
        (Some(v), None) => Some(Secret(v)),
        (None, Some(name)) => match std::env::var(&name) {
            Ok(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                report.at_path(
                    &t.key_path(env_key),
                    ConfigErrorKind::Invalid(format!(
                        "the environment variable {name:?} is not set (or empty)"
                    )),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The `_env` form of a secret's key.
fn env_key(key: &'static str) -> &'static str {
    match key {
        "token" => "token_env",
        "webhook_token" => "webhook_token_env",
        "access_token" => "access_token_env",
        "app_secret" => "app_secret_env",
        "verify_token" => "verify_token_env",
        "bot_token" => "bot_token_env",
        "webhook_secret" => "webhook_secret_env",
        "page_access_token" => "page_access_token_env",
        "url" => "url_env",
        _ => "unknown_env",
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_never_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
