//! The gateway's configuration: a TOML file (or the embedded default), its typed model, and
//! loading that reports every mistake at once.
//!
//! # Data flow
//! ```text
//! switchyard.toml ──► toml::de::DeTable (spanned tree; syntax errors with line:column)
//!   ──► parse: every key read through a typed getter (type, range, unknown keys) ──► Config
//!   ──► validate: across keys (unique names, references, files exist, combinations)
//!   ──► Ok(Config) or Err(ConfigErrors): one `file:line:col: key.path: reason` per line
//! Config::routing_config(base_dir) ──► reads rate decks ──► switchyard_routing::RoutingConfig
//! ```
//! [`check`] does both and dry-runs the routing table build: what `switchyard check-config`
//! needs. The keys are documented in `docs/configuration.md`; `examples/switchyard.toml` is a
//! complete example (loaded by this crate's tests).
//!
//! # Layout
//! Bottom first; each module uses only modules above it in this list.
//! - [`error`]: [`ConfigError`], [`ConfigErrors`].
//! - `reader`: typed getters over the spanned TOML tree that collect errors and positions.
//! - `redacted`: [`REDACTED`], what `Debug` prints in place of secrets.
//! - [`keys`]: API key hashing, generation and constant-time lookup.
//! - [`egress`], [`events`], [`voice`], [`inbound`], [`retention`], [`queues`], [`node`], [`log`],
//!   [`smpp_server`]: one section each, its type, defaults and reader.
//! - [`model`]: the typed configuration ([`Config`] and the other sections).
//! - `parse`: document → [`Config`] (single-value checks); `validate`: checks across keys.
//! - `defaults`: [`Config::embedded_default`]; `to_routing`: [`Config::routing_config`].
//! - `reload`: [`reloadable_diff`], what SIGHUP may change live.

use std::path::Path;

pub mod chat;
pub mod egress;
pub mod email;
pub mod error;
pub mod events;
pub mod inbound;
pub mod keys;
pub mod log;
pub mod model;
pub mod node;
pub mod queues;
pub mod retention;
pub mod smpp_server;
pub mod voice;

mod defaults;
mod parse;
mod reader;
mod redacted;
mod reload;
mod to_routing;
mod validate;

pub use chat::{
    MessengerPage, ProviderHttp, RbmAgent, Secret, TelegramBot, WebhookSender, WhatsappAccount,
};
pub use defaults::{SANDBOX_API_KEY, SANDBOX_NAME};
pub use egress::EgressPolicy;
pub use email::{is_email_address, SmtpCredentials, SmtpRelay, SmtpSecurity};
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, Location};
pub use events::{SseSettings, TenantEvents, WebhookSettings, EVENT_TYPES};
pub use inbound::InboundSettings;
pub use keys::{generate_api_key, hash_api_key, ApiKeyHash};
pub use log::{LogFormat, LogSettings};
pub use model::{
    BindKind, Carrier, Config, DeckConfig, DeckSource, Durability, IdFormat, LongMessages,
    OperatorConfig, Redacted, RoutingSettings, ServerConfig, ServerTls, SipSettings, SipTrunk,
    SmppConfig, SmppEndpoint, SmppTls, StoreConfig, StoreKind, Tenant, TenantRoute, REDACTED,
};
pub use model::{
    Scope, Scopes, SipAllow, SipSecret, SipTlsListener, SipTransport, SipUser, TenantLimits,
    TenantSip, TrunkCredentials,
};
pub use node::NodeSettings;
pub use queues::{QueueSettings, TenantFairness};
pub use reload::reloadable_diff;
pub use retention::RetentionSettings;
pub use smpp_server::{
    MoDelivery, SmppSecret, SmppServerSettings, SmppServerTls, SmppUser, TenantSmpp,
};
pub use to_routing::{sandbox_deck_csv, SANDBOX_DECK_SOURCE, SANDBOX_PRICE};
pub use voice::VoiceSettings;

use reader::Report;

/// Reads, parses and validates the config file at `path`. Relative paths inside it (decks,
/// `tls_ca`) are resolved against its folder. Rate deck *contents* are read later, by
/// [`Config::routing_config`]; [`check`] does both.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let mut r = Report::new(name.clone(), "");
            r.in_file(name, None, "", ConfigErrorKind::Io(e.to_string()));
            return r.finish(Config::embedded_default());
        }
    };
    parse_str(&text, &name, Some(&base_dir(path)))
}

/// Parses and validates config text. `file` names it in messages; `base_dir` is where relative
/// paths point (`None`: referenced files are not checked).
pub fn parse_str(text: &str, file: &str, base_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut report = Report::new(file, text);
    let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // A broken document is not walked: its recovered tree would yield misleading errors.
        for e in syntax {
            let kind = ConfigErrorKind::Syntax(e.message().trim().to_owned());
            match e.span() {
                Some(span) => report.at_span(&span, "", kind),
                None => report.in_file(file.to_owned(), None, "", kind),
            }
        }
        return report.finish(Config::embedded_default());
    }
    let config = parse::document(&mut report, &root);
    validate::validate(&config, base_dir, &mut report);
    report.finish(config)
}

/// Everything `switchyard check-config` reports: [`load`], then every rate deck
/// ([`Config::routing_config`]), then a dry-run build of the routing table (conflicting rates,
/// missing exchange rates). Returns the config and the routing input on success.
pub fn check(
    path: impl AsRef<Path>,
) -> Result<(Config, switchyard_routing::RoutingConfig), ConfigErrors> {
    let path = path.as_ref();
    let config = load(path)?;
    let rc = config.routing_config(&base_dir(path))?;
    to_routing::dry_run(&path.display().to_string(), rc.clone())?;
    Ok((config, rc))
}

/// The folder relative paths in the file at `path` are resolved against.
pub fn base_dir(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

impl Config {
    /// Runs the checks across keys on a configuration built in code (the embedded default, a
    /// test's), the same ones [`load`] runs. `base_dir`: where relative file paths point, or
    /// `None` to skip file checks.
    pub fn validate(&self, base_dir: Option<&Path>) -> Result<(), ConfigErrors> {
        let mut report = Report::new("<config>", "");
        validate::validate(self, base_dir, &mut report);
        report.finish(())
    }
}
