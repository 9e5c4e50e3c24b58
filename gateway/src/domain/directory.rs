//! Per-tenant settings that events, inbound messages and the API need, by tenant name, and the
//! owned-number → tenant map.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_ops::config::{Config, TenantEvents};
use switchyard_routing::Channel;

use super::Event;

/// The per-tenant settings events need, by tenant name, plus the number → tenant map.
/// Rebuilt from the configuration at start and on reload.
#[derive(Debug, Default)]
pub struct Directory {
    /// Tenant → its events settings.
    pub tenants: HashMap<String, TenantEvents>,
    /// Owned number (digits, no `+`) → tenant.
    pub numbers: HashMap<String, String>,
    /// Chat provider account (carrier name) → the tenant owning it and the account's channel
    /// (`[[tenants]] accounts`): the messages people send to the account are the tenant's.
    pub accounts: HashMap<String, (String, Channel)>,
    /// Tenants that own an account of a channel: their messages on it see the window its
    /// inbound messages open ([`Directory::sees_inbound`]).
    pub chat_owners: HashMap<String, Vec<Channel>>,
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
            for a in &t.events.accounts {
                let Some(carrier) = config.carriers.iter().find(|c| &c.name == a) else {
                    continue;
                };
                let channel = if carrier.rbm.is_some() {
                    Channel::Rcs
                } else if carrier.whatsapp.is_some() {
                    Channel::Whatsapp
                } else if carrier.telegram.is_some() {
                    Channel::Telegram
                } else if carrier.messenger.is_some() {
                    Channel::Messenger
                } else {
                    continue;
                };
                d.accounts.insert(a.clone(), (t.name.clone(), channel));
                let owned = d.chat_owners.entry(t.name.clone()).or_default();
                if !owned.contains(&channel) {
                    owned.push(channel);
                }
            }
            d.tenants.insert(t.name.clone(), t.events.clone());
            if t.smpp.mo_delivery == switchyard_ops::config::MoDelivery::Smpp {
                d.mo_by_smpp_only.insert(t.name.clone());
            }
        }
        d
    }

    /// Whether `tenant` owns an account of `channel`, so that people's messages on it reach
    /// the gateway as the tenant's (and the platform's messaging window can be known here).
    pub fn sees_inbound(&self, tenant: &str, channel: Channel) -> bool {
        self.chat_owners
            .get(tenant)
            .is_some_and(|owned| owned.contains(&channel))
    }

    /// Whether `tenant` has a `webhook_url` (its events may have a webhook without a
    /// message's `callback_url`).
    pub fn has_webhook_url(&self, tenant: &str) -> bool {
        self.tenants
            .get(tenant)
            .is_some_and(|t| t.webhook_url.is_some())
    }

    /// Where `event`'s webhook goes: the message's `callback_url`, else the tenant's
    /// `webhook_url`; nowhere when the tenant's `webhook_events` leave its type out.
    pub fn url_for(&self, event: &Event) -> Option<String> {
        let tenant = event.tenant.as_deref()?;
        // `mo_delivery = "smpp"` is about SMS MO; chat inbound has no SMPP form.
        if event.is_inbound()
            && event.channel.as_deref() == Some("sms")
            && self.mo_by_smpp_only.contains(tenant)
        {
            return None;
        }
        let settings = self.tenants.get(tenant);
        if let Some(wanted) = settings.and_then(|t| t.webhook_events.as_ref()) {
            let kind = event.kind();
            if !wanted.contains(&kind) {
                return None;
            }
        }
        if !event.is_inbound() {
            if let Some(u) = &event.callback_url {
                return Some(u.clone());
            }
        }
        settings?.webhook_url.clone()
    }
}

/// The live directory, swapped on reload.
pub type SharedDirectory = Arc<arc_swap::ArcSwap<Directory>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    #[test]
    fn every_status_inbound_and_flow_outcome_is_an_event_type_a_tenant_can_choose() {
        let mut kinds: Vec<String> = Status::ALL.iter().map(|s| format!("message.{s}")).collect();
        kinds.push("message.inbound".into());
        for state in [
            crate::domain::FlowState::Succeeded,
            crate::domain::FlowState::Failed,
        ] {
            kinds.extend(state.event_status().map(|s| format!("message.{s}")));
        }
        let types: Vec<String> = switchyard_ops::config::EVENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        assert_eq!(kinds, types);
    }

    #[test]
    fn only_the_chosen_event_types_get_a_webhook() {
        let mut d = Directory::default();
        d.tenants.insert(
            "acme".into(),
            TenantEvents {
                webhook_url: Some("https://hooks.example/acme".into()),
                webhook_events: Some(vec!["message.delivered".into(), "message.failed".into()]),
                ..TenantEvents::default()
            },
        );
        d.tenants.insert(
            "beta".into(),
            TenantEvents {
                webhook_url: Some("https://hooks.example/beta".into()),
                ..TenantEvents::default()
            },
        );
        let event = |tenant: &str, status: &str, callback: Option<&str>| Event {
            seq: 1,
            message_id: crate::domain::MessageId(1),
            tenant: Some(tenant.into()),
            status: status.into(),
            at: 0,
            detail: None,
            carrier: None,
            error: None,
            price: None,
            currency: None,
            to: "+447911123456".into(),
            from: "Acme".into(),
            body: None,
            binary: None,
            channel: None,
            callback_url: callback.map(str::to_owned),
            segments: Some(1),
            created_at: 0,
            call: None,
            smpp: None,
            flow: None,
        };
        assert_eq!(
            d.url_for(&event("acme", "delivered", None)).as_deref(),
            Some("https://hooks.example/acme")
        );
        assert_eq!(d.url_for(&event("acme", "sent", None)), None);
        // A message's own callback_url gets the same choice of events.
        assert_eq!(
            d.url_for(&event("acme", "sent", Some("https://cb.example/1"))),
            None
        );
        assert_eq!(
            d.url_for(&event("acme", "failed", Some("https://cb.example/1")))
                .as_deref(),
            Some("https://cb.example/1")
        );
        assert!(
            d.url_for(&event("beta", "sent", None)).is_some(),
            "every type"
        );
    }

    #[test]
    fn smpp_only_mo_delivery_keeps_chat_inbound_on_the_webhook() {
        let mut d = Directory::default();
        d.tenants.insert(
            "acme".into(),
            TenantEvents {
                webhook_url: Some("https://hooks.example/acme".into()),
                ..TenantEvents::default()
            },
        );
        d.mo_by_smpp_only.insert("acme".into());
        let inbound = |channel: &str| Event {
            seq: 1,
            message_id: crate::domain::MessageId(1),
            tenant: Some("acme".into()),
            status: "inbound".into(),
            at: 0,
            detail: None,
            carrier: Some("Wa".into()),
            error: None,
            price: None,
            currency: None,
            to: "15550783881".into(),
            from: "16505551234".into(),
            body: Some("hi".into()),
            binary: None,
            channel: Some(channel.into()),
            callback_url: None,
            segments: None,
            created_at: 0,
            call: None,
            smpp: None,
            flow: None,
        };
        assert_eq!(d.url_for(&inbound("sms")), None);
        assert_eq!(
            d.url_for(&inbound("whatsapp")).as_deref(),
            Some("https://hooks.example/acme")
        );
    }
}
