//! Source-IP authentication: the tenants' `sip_allow` lists as one lookup table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use switchyard_ops::config::Config;

/// Which tenant a source address speaks for. Built once from the configuration (config
/// validation guarantees an address belongs to at most one tenant).
#[derive(Debug, Default, Clone)]
pub struct AllowList {
    /// Source IP → tenant name.
    by_ip: HashMap<IpAddr, Arc<str>>,
}

impl AllowList {
    /// Every tenant's `sip_allow` addresses.
    pub fn from_config(config: &Config) -> Self {
        let mut by_ip = HashMap::new();
        for t in &config.tenants {
            let name: Arc<str> = Arc::from(t.name.as_str());
            for ip in &t.sip_allow {
                by_ip.entry(*ip).or_insert_with(|| name.clone());
            }
        }
        AllowList { by_ip }
    }

    /// The tenant INVITEs from `ip` belong to, if any.
    pub fn tenant(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.by_ip.get(&ip)
    }
}
