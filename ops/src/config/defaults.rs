//! The configuration used when no file is given: everything on loopback, one sandbox tenant,
//! one sandbox carrier backed by the gateway's built-in SMSC, one flat sandbox rate deck. With
//! it `switchyard serve` works with zero set-up.

use switchyard_routing::{Channel, NumberRewrite};

use super::keys::ApiKeyHash;
use super::model::{
    Carrier, Config, DeckConfig, DeckSource, RoutingSettings, Scopes, ServerConfig, SmppConfig,
    SmppEndpoint, StoreConfig, Tenant, TenantLimits, TenantRoute,
};

/// Name of the sandbox tenant and of the sandbox carrier.
pub const SANDBOX_NAME: &str = "sandbox";

/// The sandbox tenant's API key in [`Config::embedded_default`]. It is public (it is in this
/// source and printed at start): the embedded default only listens on loopback and only
/// delivers to the in-process SMSC, so it protects nothing. Use
/// [`Config::embedded_default_with_key`] for a fresh one.
pub const SANDBOX_API_KEY: &str = "sk_sandbox_do_not_use_in_production";

impl Config {
    /// The no-file configuration, with the sandbox tenant's key [`SANDBOX_API_KEY`].
    pub fn embedded_default() -> Self {
        Self::embedded_default_with_key(SANDBOX_API_KEY)
    }

    /// The no-file configuration with the sandbox tenant's key `key` (e.g. from
    /// [`super::generate_api_key`], printed at start).
    pub fn embedded_default_with_key(key: &str) -> Self {
        Config {
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            tenants: vec![Tenant {
                name: SANDBOX_NAME.to_owned(),
                api_keys: vec![ApiKeyHash::of_key(key)],
                route: TenantRoute::default(),
                default_sender: Some("Switchyard".to_owned()),
                max_tps: None,
                api_key_scopes: vec![Scopes::ALL],
                limits: TenantLimits::default(),
                events: Default::default(),
                sip: Default::default(),
                smpp: Default::default(),
                fairness: Default::default(),
            }],
            carriers: vec![Carrier {
                name: SANDBOX_NAME.to_owned(),
                channels: vec![Channel::Sms],
                priority: Carrier::DEFAULT_PRIORITY,
                weight: Carrier::DEFAULT_WEIGHT,
                quality: Carrier::DEFAULT_QUALITY,
                max_tps: None,
                max_cps: None,
                rewrite: NumberRewrite::default(),
                smpp: Some(sandbox_smpp()),
                sip: None,
                smtp: None,
                rbm: None,
                whatsapp: None,
                telegram: None,
                messenger: None,
                webhook: None,
            }],
            decks: vec![DeckConfig {
                carrier: SANDBOX_NAME.to_owned(),
                channel: Channel::Sms,
                source: DeckSource::Sandbox,
                currency: None,
            }],
            routing: RoutingSettings::default(),
            webhooks: Default::default(),
            sip: None,
            smpp_server: None,
            voice: Default::default(),
            operator: Default::default(),
            inbound: Default::default(),
            retention: Default::default(),
            queues: Default::default(),
            egress: Default::default(),
            sse: Default::default(),
            node: Default::default(),
            log: Default::default(),
        }
    }
}

/// The sandbox carrier's binds: one transceiver to the built-in SMSC, a generous window.
fn sandbox_smpp() -> SmppConfig {
    let mut s = SmppConfig::new(SmppEndpoint::Sandbox, SANDBOX_NAME, SANDBOX_NAME);
    s.window = 100;
    s
}
