//! `[carriers.smtp]`: an SMTP relay that carries the `email` channel. The relay is the
//! carrier: it has a name, a priority, health and a breaker like an SMSC, and a flat price per
//! message instead of a rate deck.

use std::path::PathBuf;
use std::time::Duration;

use switchyard_routing::{Currency, Price};

use super::error::ConfigErrorKind;
use super::reader::{expect_str, non_empty_path, Report, Table};
use super::redacted::REDACTED;

/// `[carriers.smtp]`: where and how email is handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRelay {
    /// Relay host name or IP (`host`); with TLS, the certificate must name it.
    pub host: String,
    /// Port (`port`; default 587 with STARTTLS, 465 with implicit TLS, 25 without TLS).
    pub port: u16,
    /// How the connection is protected (`security`).
    pub security: SmtpSecurity,
    /// The CA bundle that signs the relay's certificate (`tls_ca`, PEM); `None`: the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
    /// AUTH login (`username` with `password` or `password_env`); `None`: no AUTH.
    pub credentials: Option<SmtpCredentials>,
    /// What one message costs (`price`, a decimal).
    pub price: Price,
    /// Currency of `price` (`currency`; default the routing base currency).
    pub currency: Option<Currency>,
    /// Longest wait for the relay on one command, connection included (`timeout_s`).
    pub timeout: Duration,
    /// Connections kept open to the relay, and messages in flight, at most
    /// (`max_connections`).
    pub max_connections: u32,
    /// Sender used when a message gives none (`from`, an email address).
    pub default_from: Option<String>,
    /// Name given in EHLO (`hello_name`; default the machine's host name).
    pub hello_name: Option<String>,
}

impl SmtpRelay {
    /// Default `timeout_s`.
    pub const DEFAULT_TIMEOUT_S: u64 = 30;
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
}

/// How an SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which the relay must offer (`"starttls"`, the
    /// default).
    #[default]
    StartTls,
    /// TLS from the first byte (`"tls"`, "SMTPS").
    Tls,
    /// No TLS (`"none"`): for a relay on the same host or a test server only; credentials
    /// would travel in clear.
    None,
}

impl SmtpSecurity {
    /// The port a relay listens on for this security by default.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// An SMTP AUTH login.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// User name.
    pub username: String,
    /// Password (from the file, or read from the environment variable `password_env` names
    /// when the configuration is loaded).
    pub password: String,
}

impl std::fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

/// Reads `[carriers.smtp]`.
pub(crate) fn smtp(report: &mut Report<'_>, mut t: Table<'_, '_>) -> SmtpRelay {
    let host = t.req_string(report, "host").unwrap_or_default();
    let security = t
        .choice(
            report,
            "security",
            &[
                ("starttls", SmtpSecurity::StartTls),
                ("tls", SmtpSecurity::Tls),
                ("none", SmtpSecurity::None),
            ],
        )
        .unwrap_or_default();
    let port = t.int_or(report, "port", 1, 65535, security.default_port());
    let ca_span = t.raw(report, "tls_ca").map(|v| v.span());
    let tls_ca = non_empty_path(report, &mut t, "tls_ca");
    if security == SmtpSecurity::None {
        if let Some(span) = ca_span {
            report.at_span(
                &span,
                &t.key_path("tls_ca"),
                ConfigErrorKind::Invalid("has no effect with security = \"none\"".into()),
            );
        }
    }
    let credentials = credentials(report, &mut t);
    let (price, currency) = t.flat_price(report);
    let timeout =
        Duration::from_secs(t.int_or(report, "timeout_s", 1, 600, SmtpRelay::DEFAULT_TIMEOUT_S));
    let max_connections = t.int_or(
        report,
        "max_connections",
        1,
        1000,
        SmtpRelay::DEFAULT_MAX_CONNECTIONS,
    );
    let default_from = t.raw(report, "from").and_then(|v| {
        let path = t.key_path("from");
        let s = expect_str(report, v, &path)?;
        if is_email_address(s) {
            Some(s.to_owned())
        } else {
            report.at_span(
                &v.span(),
                &path,
                ConfigErrorKind::Invalid(format!("{s:?} is not an email address")),
            );
            None
        }
    });
    let hello_name = t.string(report, "hello_name");
    t.finish(report);
    SmtpRelay {
        host,
        port,
        security,
        tls_ca,
        credentials,
        price,
        currency,
        timeout,
        max_connections,
        default_from,
        hello_name,
    }
}

/// `username` with `password` or `password_env`.
fn credentials(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> Option<SmtpCredentials> {
    let username = t.string(report, "username");
    let inline = t.string(report, "password");
    let env_span = t.raw(report, "password_env").map(|v| v.span());
    let env_name = t.string(report, "password_env");
    let from_env = match (&env_name, env_span) {
        (Some(name), Some(span)) => match std::env::var(name) {
            Ok(p) if !p.is_empty() => Some(p),
            _ => {
                report.at_span(
                    &span,
                    &t.key_path("password_env"),
                    ConfigErrorKind::Invalid(format!(
                        "the environment variable {name:?} is not set (or empty)"
                    )),
                );
                None
            }
        },
        _ => None,
    };
    if inline.is_some() && env_name.is_some() {
        report.at_path(
            &t.key_path("password_env"),
            ConfigErrorKind::Invalid("give password or password_env, not both".into()),
        );
        return None;
    }
    let password = inline.or(from_env);
    match (username, password) {
        (Some(username), Some(password)) => Some(SmtpCredentials { username, password }),
        (None, None) if env_name.is_none() => None,
        (None, _) => {
            t.missing(report, "username");
            None
        }
        (Some(_), None) => {
            if env_name.is_none() {
                t.missing(report, "password");
            }
            None
        }
    }
}

/// A plausible `local@domain` address: one `@`, a non-empty local part, a domain with a dot,
/// no spaces or angle brackets, at most 254 characters. The relay has the last word; this
/// catches typing mistakes and header injection (no CR or LF can pass).
pub fn is_email_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | ',' | ';'))
}

#[cfg(test)]
mod tests {
    use super::is_email_address;

    #[test]
    fn email_addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x@sub.example.museum",
        ] {
            assert!(is_email_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b.co",
            "a@b",
            "a@.b",
            "a@b.",
            "a b@c.de",
            "a@b.co\r\nBcc: x@y.z",
            "<a@b.co>",
            "a@b.co,c@d.ef",
        ] {
            assert!(!is_email_address(bad), "{bad:?}");
        }
    }
}
