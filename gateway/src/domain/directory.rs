//! Per-tenant settings that events, inbound messages and the API need, by tenant name, and the
//! owned-number → tenant map.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_ops::config::{Config, TenantEvents};

use super::Event;

/// The per-tenant settings events need, by tenant name, plus the number → tenant map.
/// Rebuilt from the configuration at start and on reload.
#[derive(Debug, Default)]
pub struct Directory {
    /// Tenant → its events settings.
    pub tenants: HashMap<String, TenantEvents>,
    /// Owned number (digits, no `+`) → tenant.
    pub numbers: HashMap<String, String>,
    /// Tenants whose MO messages go to their SMPP binds only (`mo_delivery = "smpp"`): no
    /// webhook for their inbound events.
    pub mo_by_smpp_only: std::collections::HashSet<String>,
}

impl Directory {
    /// From the configuration.
    pub fn from_config(config: &Config) -> Self {
        let mut d = Directory::default();
        for t in &config.tenants {
            for n in &t.events.numbers {
                d.numbers.insert(n.clone(), t.name.clone());
            }
            d.tenants.insert(t.name.clone(), t.events.clone());
            if t.smpp.mo_delivery == switchyard_ops::config::MoDelivery::Smpp {
                d.mo_by_smpp_only.insert(t.name.clone());
            }
        }
        d
    }

    /// Where `event`'s webhook goes: the message's `callback_url`, else the tenant's
    /// `webhook_url`.
    pub fn url_for(&self, event: &Event) -> Option<String> {
        let tenant = event.tenant.as_deref()?;
        if event.is_inbound() && self.mo_by_smpp_only.contains(tenant) {
            return None;
        }
        if !event.is_inbound() {
            if let Some(u) = &event.callback_url {
                return Some(u.clone());
            }
        }
        self.tenants.get(tenant)?.webhook_url.clone()
    }
}

/// The live directory, swapped on reload.
pub type SharedDirectory = Arc<arc_swap::ArcSwap<Directory>>;
