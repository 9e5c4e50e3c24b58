//! The event-related configuration: per-tenant webhook, signing secrets, owned numbers and
//! opt-out replies ([`TenantEvents`], keys of `[[tenants]]`), and the process-wide webhook
//! delivery settings (`[webhooks]`, [`WebhookSettings`]).

use std::time::Duration;

use super::egress::EgressPolicy;
use super::error::ConfigErrorKind;
use super::reader::{non_empty_path, Report, Table};
use super::redacted::REDACTED;

/// A tenant's events, webhook and inbound settings (keys of its `[[tenants]]` table). Its
/// `Debug` shows how many signing secrets there are, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantEvents {
    /// Default webhook for status and inbound events (`webhook_url`); a message's own
    /// `callback_url` takes precedence for its status events.
    pub webhook_url: Option<String>,
    /// Signing secrets (`webhook_secrets`): every one signs each webhook (one `v1=` entry
    /// each), so a receiver can rotate by adding the new secret, deploying, removing the old.
    pub webhook_secrets: Vec<String>,
    /// Long numbers and short codes the tenant owns (`numbers`): MO messages sent to them
    /// belong to the tenant. Stored without a leading `+`.
    pub numbers: Vec<String>,
    /// Chat provider accounts the tenant owns (`accounts`: names of carriers with an
    /// `[carriers.rbm]`, `[carriers.whatsapp]`, `[carriers.telegram]` or
    /// `[carriers.messenger]` table): the messages people send to them belong to the tenant,
    /// and the tenant's free-text WhatsApp and untagged Messenger messages are checked
    /// against the 24-hour windows those messages open.
    pub accounts: Vec<String>,
    /// Answer to STOP-like keywords (`stop_reply`); `None` means the default text, an empty
    /// string disables the reply.
    pub stop_reply: Option<String>,
    /// Answer to START/UNSTOP (`start_reply`), same rules.
    pub start_reply: Option<String>,
    /// Answer to HELP (`help_reply`), same rules.
    pub help_reply: Option<String>,
    /// The event types POSTed to the tenant's webhooks (`webhook_events`, each one of
    /// [`EVENT_TYPES`]); `None`: every type. The event stream (SSE) carries every type.
    pub webhook_events: Option<Vec<String>>,
    /// Events per webhook request (`webhook_batch_max`, 1–500). At most 1 (the default), each
    /// request carries one event as a JSON object; above, every request carries a JSON array
    /// of the events waiting for the same URL, in order, up to this many (a request never
    /// waits for an array to fill).
    pub webhook_batch_max: usize,
}

/// Every event type: `message.<status>` for each status a message can go through,
/// `message.inbound` for inbound messages, and `message.flow_succeeded` /
/// `message.flow_failed` for a flow's outcome (one message over several channels).
pub const EVENT_TYPES: &[&str] = &[
    "message.accepted",
    "message.queued",
    "message.submitting",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.undeliverable",
    "message.expired",
    "message.rejected",
    "message.failed",
    "message.cancelled",
    "message.inbound",
    "message.flow_succeeded",
    "message.flow_failed",
];

impl std::fmt::Debug for TenantEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field must be placed here (shown or redacted) to compile.
        let TenantEvents {
            webhook_url,
            webhook_secrets,
            numbers,
            accounts,
            stop_reply,
            start_reply,
            help_reply,
            webhook_events,
            webhook_batch_max,
        } = self;
        let secrets = vec![REDACTED; webhook_secrets.len()];
        f.debug_struct("TenantEvents")
            .field("webhook_url", webhook_url)
            .field("webhook_secrets", &secrets)
            .field("numbers", numbers)
            .field("accounts", accounts)
            .field("stop_reply", stop_reply)
            .field("start_reply", start_reply)
            .field("help_reply", help_reply)
            .field("webhook_events", webhook_events)
            .field("webhook_batch_max", webhook_batch_max)
            .finish()
    }
}

/// What a tenant without any of these keys has: no webhook, one event per request.
impl Default for TenantEvents {
    fn default() -> Self {
        TenantEvents {
            webhook_url: None,
            webhook_secrets: Vec::new(),
            numbers: Vec::new(),
            accounts: Vec::new(),
            stop_reply: None,
            start_reply: None,
            help_reply: None,
            webhook_events: None,
            webhook_batch_max: 1,
        }
    }
}

impl TenantEvents {
    /// Default `stop_reply`.
    pub const DEFAULT_STOP_REPLY: &'static str =
        "You are unsubscribed and will receive no more messages. Reply START to resubscribe.";
    /// Default `start_reply`.
    pub const DEFAULT_START_REPLY: &'static str =
        "You are subscribed again. Reply STOP to unsubscribe.";
    /// Default `help_reply`.
    pub const DEFAULT_HELP_REPLY: &'static str = "Reply STOP to unsubscribe, START to resubscribe.";
}

/// `[webhooks]`: how webhooks are delivered (all tenants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whole-request timeout (`timeout_ms`): connect, send, wait for the status line.
    pub timeout: Duration,
    /// First retry delay (`retry_initial_ms`); doubles with each attempt, with full jitter.
    pub retry_initial: Duration,
    /// Longest retry delay (`retry_max_ms`).
    pub retry_max: Duration,
    /// After this long without success an event goes to the dead letters (`give_up_after_s`).
    pub give_up_after: Duration,
    /// Requests at once to one endpoint (scheme, host and port) (`max_per_endpoint`).
    pub max_per_endpoint: usize,
    /// Webhooks of one tenant being sent or waiting for their endpoint at once
    /// (`max_in_flight_per_tenant`); beyond it they wait in the durable retry queue, so one
    /// tenant's slow endpoints cannot take the memory and connections every tenant shares.
    pub max_in_flight_per_tenant: usize,
    /// PEM file of CAs trusted for `https://` endpoints in addition to the system roots
    /// (`tls_ca`, relative to the config file), for tenants behind a private CA.
    pub tls_ca: Option<std::path::PathBuf>,
}

impl WebhookSettings {
    /// Default `timeout_ms`.
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    /// Default `retry_initial_ms`.
    pub const DEFAULT_RETRY_INITIAL_MS: u64 = 1_000;
    /// Default `retry_max_ms` (one hour).
    pub const DEFAULT_RETRY_MAX_MS: u64 = 3_600_000;
    /// Default `give_up_after_s` (24 hours).
    pub const DEFAULT_GIVE_UP_AFTER_S: u64 = 86_400;
    /// Default `max_per_endpoint`.
    pub const DEFAULT_MAX_PER_ENDPOINT: usize = 8;
    /// Default `max_in_flight_per_tenant`.
    pub const DEFAULT_MAX_IN_FLIGHT_PER_TENANT: usize = 512;
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            retry_initial: Duration::from_millis(Self::DEFAULT_RETRY_INITIAL_MS),
            retry_max: Duration::from_millis(Self::DEFAULT_RETRY_MAX_MS),
            give_up_after: Duration::from_secs(Self::DEFAULT_GIVE_UP_AFTER_S),
            max_per_endpoint: Self::DEFAULT_MAX_PER_ENDPOINT,
            max_in_flight_per_tenant: Self::DEFAULT_MAX_IN_FLIGHT_PER_TENANT,
            tls_ca: None,
        }
    }
}

/// Reads the tenant keys of [`TenantEvents`] from a `[[tenants]]` table.
pub(crate) fn tenant_events(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> TenantEvents {
    let webhook_url = t.string(report, "webhook_url").and_then(|u| {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !u.contains(char::is_whitespace) => {
                Some(u)
            }
            _ => {
                report_key(
                    report,
                    t,
                    "webhook_url",
                    format!("{u:?} is not an http(s) URL"),
                );
                None
            }
        }
    });
    let mut webhook_secrets = Vec::new();
    for (s, _) in t.strings(report, "webhook_secrets").unwrap_or_default() {
        if s.len() < 16 {
            report_key(
                report,
                t,
                "webhook_secrets",
                "a signing secret needs at least 16 characters".into(),
            );
        } else {
            webhook_secrets.push(s);
        }
    }
    if webhook_secrets.len() > 2 {
        report_key(
            report,
            t,
            "webhook_secrets",
            "at most two secrets (the current one and the next) may be valid at once".into(),
        );
    }
    if webhook_url.is_some() && webhook_secrets.is_empty() && !report_has(report, t) {
        report_key(
            report,
            t,
            "webhook_secrets",
            "a tenant with a webhook_url needs at least one signing secret".into(),
        );
    }
    let mut numbers = Vec::new();
    for (n, _) in t.strings(report, "numbers").unwrap_or_default() {
        let digits = n.strip_prefix('+').unwrap_or(&n);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            report_key(
                report,
                t,
                "numbers",
                format!("{n:?} is not a number (E.164 with +, or a short code)"),
            );
        } else {
            numbers.push(digits.to_owned());
        }
    }
    let mut accounts: Vec<String> = Vec::new();
    for (a, _) in t.strings(report, "accounts").unwrap_or_default() {
        if !accounts.contains(&a) {
            accounts.push(a);
        }
    }
    let stop_reply = t.string(report, "stop_reply");
    let start_reply = t.string(report, "start_reply");
    let help_reply = t.string(report, "help_reply");
    let webhook_events = t.strings(report, "webhook_events").map(|types| {
        let mut chosen: Vec<String> = Vec::new();
        for (kind, _) in types {
            if !EVENT_TYPES.contains(&kind.as_str()) {
                report_key(
                    report,
                    t,
                    "webhook_events",
                    format!(
                        "{kind:?} is not an event type (one of {})",
                        EVENT_TYPES.join(", ")
                    ),
                );
            } else if !chosen.contains(&kind) {
                chosen.push(kind);
            }
        }
        chosen
    });
    let webhook_batch_max = t.int_or(report, "webhook_batch_max", 1, 500, 1);
    TenantEvents {
        webhook_url,
        webhook_secrets,
        numbers,
        accounts,
        stop_reply,
        start_reply,
        help_reply,
        webhook_events,
        webhook_batch_max,
    }
}

fn report_has(report: &Report<'_>, t: &Table<'_, '_>) -> bool {
    report.has_error(&t.key_path("webhook_secrets"))
}

fn report_key(report: &mut Report<'_>, t: &Table<'_, '_>, key: &str, why: String) {
    let path = t.key_path(key);
    report.at_path(&path, ConfigErrorKind::Invalid(why));
}

/// Reads `[webhooks]`.
pub(crate) fn webhooks(report: &mut Report<'_>, mut t: Table<'_, '_>) -> WebhookSettings {
    let d = WebhookSettings::default();
    let timeout = Duration::from_millis(t.int_or(
        report,
        "timeout_ms",
        100,
        300_000,
        WebhookSettings::DEFAULT_TIMEOUT_MS,
    ));
    let retry_initial = Duration::from_millis(t.int_or(
        report,
        "retry_initial_ms",
        10,
        3_600_000,
        WebhookSettings::DEFAULT_RETRY_INITIAL_MS,
    ));
    let retry_max = Duration::from_millis(t.int_or(
        report,
        "retry_max_ms",
        10,
        86_400_000,
        WebhookSettings::DEFAULT_RETRY_MAX_MS,
    ));
    let give_up_after = Duration::from_secs(t.int_or(
        report,
        "give_up_after_s",
        1,
        30 * 86_400,
        WebhookSettings::DEFAULT_GIVE_UP_AFTER_S,
    ));
    let max_per_endpoint = t.int_or(report, "max_per_endpoint", 1, 1024, d.max_per_endpoint);
    let max_in_flight_per_tenant = t.int_or(
        report,
        "max_in_flight_per_tenant",
        1,
        4096,
        d.max_in_flight_per_tenant,
    );
    let tls_ca = non_empty_path(report, &mut t, "tls_ca");
    if retry_max < retry_initial {
        report.at_path(
            &t.key_path("retry_max_ms"),
            ConfigErrorKind::Invalid("must be at least retry_initial_ms".into()),
        );
    }
    t.finish(report);
    WebhookSettings {
        timeout,
        retry_initial,
        retry_max,
        give_up_after,
        max_per_endpoint,
        max_in_flight_per_tenant,
        tls_ca,
    }
}

/// `[sse]`: how many event streams (`GET /v1/events`) may be open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseSettings {
    /// Streams open at once over all tenants (`max_streams`); each holds a connection, a
    /// task and a buffer.
    pub max_streams: usize,
    /// Streams one tenant may have open at once (`max_streams_per_tenant`), so one tenant
    /// cannot take the whole budget.
    pub max_streams_per_tenant: usize,
}

impl SseSettings {
    /// Default `max_streams`.
    pub const DEFAULT_MAX_STREAMS: usize = 1024;
    /// Default `max_streams_per_tenant`.
    pub const DEFAULT_MAX_STREAMS_PER_TENANT: usize = 16;
}

impl Default for SseSettings {
    fn default() -> Self {
        Self {
            max_streams: Self::DEFAULT_MAX_STREAMS,
            max_streams_per_tenant: Self::DEFAULT_MAX_STREAMS_PER_TENANT,
        }
    }
}

/// Reads `[sse]`.
pub(crate) fn sse(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SseSettings {
    let d = SseSettings::default();
    let max_streams = t.int_or(report, "max_streams", 1, 1_000_000, d.max_streams);
    let max_streams_per_tenant = t.int_or(
        report,
        "max_streams_per_tenant",
        1,
        1_000_000,
        d.max_streams_per_tenant,
    );
    t.finish(report);
    SseSettings {
        max_streams,
        max_streams_per_tenant,
    }
}

/// A `webhook_url` whose host is an address literal must be one `[egress]` allows: the
/// gateway would refuse every delivery to it. `tenants`: each tenant's events, in file order.
pub(crate) fn validate_webhook_urls<'a>(
    tenants: impl IntoIterator<Item = &'a TenantEvents>,
    egress: &EgressPolicy,
    report: &mut Report<'_>,
) {
    for (i, events) in tenants.into_iter().enumerate() {
        let Some(url) = &events.webhook_url else {
            continue;
        };
        if let Some(refusal) = egress.literal_refusal(url_host(url)) {
            report.at_path(
                &format!("tenants[{i}].webhook_url"),
                ConfigErrorKind::Invalid(format!(
                    "{refusal}: add it to [egress] allow if the gateway may reach it"
                )),
            );
        }
    }
}

/// The host of an `http(s)://` URL as written (`[::1]` keeps its brackets).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port
            .find(']')
            .and_then(|end| host_port.get(..=end))
            .unwrap_or(host_port);
    }
    host_port.split(':').next().unwrap_or_default()
}

/// A number may belong to one tenant only: MO messages to it must have one owner.
/// `tenants`: each tenant's name and events, in file order.
pub(crate) fn validate_numbers<'a>(
    tenants: impl IntoIterator<Item = (&'a str, &'a TenantEvents)>,
    report: &mut Report<'_>,
) {
    let mut owners: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (i, (name, events)) in tenants.into_iter().enumerate() {
        for (j, n) in events.numbers.iter().enumerate() {
            match owners.insert(n, name) {
                Some(other) if other != name => report.at_path(
                    &format!("tenants[{i}].numbers[{j}]"),
                    ConfigErrorKind::Invalid(format!(
                        "number {n} already belongs to tenant {other:?}"
                    )),
                ),
                _ => {}
            }
        }
    }
}

/// An account in a tenant's `accounts` must be a chat carrier (RBM, WhatsApp, Telegram or
/// Messenger) and belong to that tenant only: its inbound messages must have one owner.
/// `chat_carriers`: the names of the carriers that have a chat provider table.
pub(crate) fn validate_accounts<'a>(
    tenants: impl IntoIterator<Item = (&'a str, &'a TenantEvents)>,
    chat_carriers: &std::collections::HashSet<&str>,
    report: &mut Report<'_>,
) {
    let mut owners: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (i, (name, events)) in tenants.into_iter().enumerate() {
        for (j, a) in events.accounts.iter().enumerate() {
            let path = format!("tenants[{i}].accounts[{j}]");
            if !chat_carriers.contains(a.as_str()) {
                report.at_path(
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{a:?} is not a carrier with an [carriers.rbm], [carriers.whatsapp], \
                         [carriers.telegram] or [carriers.messenger] table"
                    )),
                );
                continue;
            }
            match owners.insert(a, name) {
                Some(other) if other != name => report.at_path(
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "account {a:?} already belongs to tenant {other:?}"
                    )),
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;

    const BASE: &str = r#"
[[tenants]]
name = "a"
api_keys = ["sha256:3a516f1b05474d582263da93abd789051c92a0f9db2c1243caf5c27f4d411330"]
TENANT_A
[[tenants]]
name = "b"
api_keys = ["sha256:823599ea92e173469e73b1419559847642ec0d518ce324466419e35f9cd3f68b"]
TENANT_B
[[carriers]]
name = "c"
channels = ["sms"]
[carriers.smpp]
host = "127.0.0.1"
port = 2775
system_id = "c"
password = "pw"
[[decks]]
carrier = "c"
channel = "sms"
path = "c.csv"
"#;

    fn parse(a: &str, b: &str, extra: &str) -> Result<super::super::Config, String> {
        let text = BASE.replace("TENANT_A", a).replace("TENANT_B", b) + extra;
        parse_str(&text, "test.toml", None).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_event_keys() {
        let c = parse(
            "webhook_url = \"http://hooks.example/x\"\nwebhook_secrets = [\"0123456789abcdef\"]\n\
             numbers = [\"+447700900123\", \"60123\"]\nstop_reply = \"\"",
            "",
            "[webhooks]\nretry_initial_ms = 50\nmax_per_endpoint = 2\nmax_in_flight_per_tenant = 3\n\
             [sse]\nmax_streams = 5\nmax_streams_per_tenant = 2\n",
        )
        .unwrap();
        let e = &c.tenants[0].events;
        assert_eq!(e.webhook_url.as_deref(), Some("http://hooks.example/x"));
        assert_eq!(e.numbers, vec!["447700900123", "60123"]);
        assert_eq!(e.stop_reply.as_deref(), Some(""));
        assert_eq!(c.webhooks.max_per_endpoint, 2);
        assert_eq!(c.webhooks.retry_initial.as_millis(), 50);
        assert_eq!(c.webhooks.max_in_flight_per_tenant, 3);
        assert_eq!((c.sse.max_streams, c.sse.max_streams_per_tenant), (5, 2));
        assert_eq!(c.tenants[1].events, Default::default());
    }

    #[test]
    fn accounts_must_be_chat_carriers_of_one_tenant() {
        let e = parse("accounts = [\"c\", \"nope\"]", "", "").unwrap_err();
        assert!(e.contains("tenants[0].accounts[0]"), "{e}");
        assert!(e.contains("tenants[0].accounts[1]"), "{e}");
        assert!(e.contains("is not a carrier with an [carriers.rbm]"), "{e}");
    }

    #[test]
    fn refuses_bad_event_keys_all_at_once() {
        let e = parse(
            "webhook_url = \"ftp://x\"\nwebhook_secrets = [\"short\"]\nnumbers = [\"+44-77\", \"123\"]",
            "numbers = [\"123\"]",
            "[webhooks]\nretry_initial_ms = 5000\nretry_max_ms = 100\n",
        )
        .unwrap_err();
        for want in [
            "webhook_url",
            "webhook_secrets",
            "tenants[0].numbers",
            "already belongs",
            "retry_max_ms",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        let e = parse("webhook_url = \"http://x/\"", "", "").unwrap_err();
        assert!(e.contains("needs at least one signing secret"), "{e}");
    }

    #[test]
    fn webhook_events_choose_event_types() {
        let c = parse(
            "webhook_events = [\"message.delivered\", \"message.failed\", \"message.delivered\"]",
            "webhook_events = []",
            "",
        )
        .unwrap();
        assert_eq!(
            c.tenants[0].events.webhook_events,
            Some(vec!["message.delivered".into(), "message.failed".into()])
        );
        assert_eq!(c.tenants[1].events.webhook_events, Some(Vec::new()), "none");
        let e = parse("webhook_events = [\"message.deliverd\"]", "", "").unwrap_err();
        assert!(e.contains("tenants[0].webhook_events"), "{e}");
        assert!(e.contains("not an event type"), "{e}");
    }

    #[test]
    fn webhook_batch_max_is_one_unless_set_within_its_range() {
        let c = parse("webhook_batch_max = 100", "", "").unwrap();
        assert_eq!(c.tenants[0].events.webhook_batch_max, 100);
        assert_eq!(c.tenants[1].events.webhook_batch_max, 1, "default");
        for bad in ["0", "501", "\"10\""] {
            let e = parse(&format!("webhook_batch_max = {bad}"), "", "").unwrap_err();
            assert!(e.contains("tenants[0].webhook_batch_max"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_webhook_url_at_a_refused_address_is_a_config_error() {
        let secret = "webhook_secrets = [\"0123456789abcdef\"]";
        for url in [
            "http://127.0.0.1:9000/x",
            "http://169.254.169.254/latest",
            "https://user@[::1]:8443/x",
            "http://10.0.0.1",
        ] {
            let e = parse(&format!("webhook_url = {url:?}\n{secret}"), "", "").unwrap_err();
            assert!(e.contains("tenants[0].webhook_url"), "{url}: {e}");
            assert!(e.contains("[egress] allow"), "{url}: {e}");
        }
        parse(
            &format!("webhook_url = \"http://127.0.0.1:9000/x\"\n{secret}"),
            "",
            "[egress]\nallow = [\"127.0.0.1/32\"]\n",
        )
        .unwrap();
        parse(
            &format!("webhook_url = \"http://hooks.example:80/x\"\n{secret}"),
            "",
            "",
        )
        .unwrap();
        assert_eq!(super::url_host("http://[::1]:80/x"), "[::1]");
        assert_eq!(super::url_host("https://a.example?q"), "a.example");
    }
}
