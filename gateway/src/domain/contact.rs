//! Contacts: a tenant's people, each with an address per channel and a consent record per
//! channel, so a message (or later a campaign) can name the person instead of the address.
//!
//! A [`Contact`] is what the store keeps; a [`ContactPatch`] is a change to one (from the API's
//! create and patch, or one row of a CSV import), applied by the store's writer inside its
//! transaction ([`ContactWrite`]), so an import's upsert by `external_id` and the uniqueness of
//! `external_id` within a tenant are decided where nothing can interleave.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{MessageId, UnixMs};

/// A contact's id: made like a message id (time-ordered, unique across nodes), shown as `ct_`
/// and 16 hex digits. Ids sort by creation, which makes them the list's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(pub i64);

impl ContactId {
    /// A fresh id for a contact created at `now`.
    pub fn generate(now: UnixMs) -> Self {
        ContactId(MessageId::generate(now).0)
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ct_{:016x}", self.0)
    }
}

impl FromStr for ContactId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("ct_")
            .filter(|h| h.len() == 16)
            .ok_or_else(|| format!("{s:?} is not a contact id (ct_ and 16 hex digits)"))?;
        u64::from_str_radix(hex, 16)
            .map(|v| ContactId(v as i64))
            .map_err(|_| format!("{s:?} is not a contact id (ct_ and 16 hex digits)"))
    }
}

/// The address kinds a contact has, in the order they are shown and imported.
pub const ADDRESS_KINDS: [&str; 6] = ["phone", "email", "whatsapp", "telegram", "messenger", "rcs"];

/// The channels a contact has a consent record for.
pub const CONSENT_CHANNELS: [&str; 7] = [
    "sms",
    "voice",
    "email",
    "whatsapp",
    "telegram",
    "messenger",
    "rcs",
];

/// A contact's addresses, one per kind, each checked as the message API checks a recipient
/// (phones in E.164 with `+`, emails lower-cased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// E.164 (`+447700900123`): SMS and voice, and WhatsApp and RCS unless those have their own.
    pub phone: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// The WhatsApp number (E.164), when it is not `phone`.
    pub whatsapp: Option<String>,
    /// A Telegram chat id or `@username`.
    pub telegram: Option<String>,
    /// A Messenger page-scoped id.
    pub messenger: Option<String>,
    /// The RCS number (E.164), when it is not `phone`.
    pub rcs: Option<String>,
}

impl Addresses {
    /// The address of `kind` (one of [`ADDRESS_KINDS`]).
    pub fn get(&self, kind: &str) -> Option<&str> {
        match kind {
            "phone" => self.phone.as_deref(),
            "email" => self.email.as_deref(),
            "whatsapp" => self.whatsapp.as_deref(),
            "telegram" => self.telegram.as_deref(),
            "messenger" => self.messenger.as_deref(),
            "rcs" => self.rcs.as_deref(),
            _ => None,
        }
    }

    /// The slot of `kind`; `None` for a kind that does not exist.
    pub fn slot(&mut self, kind: &str) -> Option<&mut Option<String>> {
        match kind {
            "phone" => Some(&mut self.phone),
            "email" => Some(&mut self.email),
            "whatsapp" => Some(&mut self.whatsapp),
            "telegram" => Some(&mut self.telegram),
            "messenger" => Some(&mut self.messenger),
            "rcs" => Some(&mut self.rcs),
            _ => None,
        }
    }

    /// The address a message on `channel` goes to, and the kind it came from: the channel's
    /// own (`email`, `telegram`, `messenger`, `whatsapp`, `rcs`), else `phone` for SMS, voice,
    /// WhatsApp and RCS.
    pub fn for_channel(&self, channel: &str) -> Option<(&'static str, &str)> {
        let own = ADDRESS_KINDS
            .iter()
            .find(|k| **k == channel)
            .and_then(|k| self.get(k).map(|a| (*k, a)));
        own.or(match channel {
            "sms" | "voice" | "whatsapp" | "rcs" => self.phone.as_deref().map(|a| ("phone", a)),
            _ => None,
        })
    }
}

/// Whether the person agreed to messages on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentState {
    /// They agreed.
    Granted,
    /// They refused: nothing is sent to them on the channel.
    Denied,
    /// Recorded as not known (a reset); sending is allowed, as with no record.
    Unset,
}

impl ConsentState {
    /// `granted`, `denied` or `unset`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Granted => "granted",
            ConsentState::Denied => "denied",
            ConsentState::Unset => "unset",
        }
    }
}

impl FromStr for ConsentState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "granted" | "yes" | "true" => Ok(ConsentState::Granted),
            "denied" | "no" | "false" => Ok(ConsentState::Denied),
            "unset" => Ok(ConsentState::Unset),
            other => Err(format!(
                "consent {other:?} is not \"granted\", \"denied\" or \"unset\""
            )),
        }
    }
}

/// One channel's consent record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Granted, denied or unset.
    pub state: ConsentState,
    /// When it was recorded (unix ms).
    pub at: UnixMs,
    /// Where it came from: `api`, `import`, or what the tenant named (a form, a call centre).
    pub source: String,
}

/// A contact as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Its id.
    pub id: ContactId,
    /// Whose it is: every read names the tenant.
    pub tenant: String,
    /// The tenant's own key for the person (unique within the tenant): what imports upsert by.
    pub external_id: Option<String>,
    /// A display name.
    pub name: Option<String>,
    /// Where to reach them.
    pub addresses: Addresses,
    /// Consent per channel (keys from [`CONSENT_CHANNELS`]); a channel without a record is unset.
    pub consent: BTreeMap<String, Consent>,
    /// The tenant's own fields: a JSON object as text.
    pub attributes: Option<String>,
    /// Created at.
    pub created_at: UnixMs,
    /// Last changed at.
    pub updated_at: UnixMs,
}

impl Contact {
    /// Whether the person refused messages on `channel`.
    pub fn denies(&self, channel: &str) -> bool {
        self.consent
            .get(channel)
            .is_some_and(|c| c.state == ConsentState::Denied)
    }

    /// The consent map as the store keeps it (JSON text).
    pub fn consent_text(&self) -> String {
        serde_json::to_string(&self.consent).unwrap_or_else(|_| "{}".into())
    }

    /// The consent map from its stored text (an unreadable one reads as empty).
    pub fn consent_parse(text: &str) -> BTreeMap<String, Consent> {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// This contact with `patch` applied (the id, tenant and creation time stay).
    pub fn patched(&self, patch: &ContactPatch) -> Contact {
        let mut c = self.clone();
        if let Some(e) = &patch.external_id {
            c.external_id = e.clone();
        }
        if let Some(n) = &patch.name {
            c.name = n.clone();
        }
        for (kind, value) in &patch.addresses {
            if let Some(slot) = c.addresses.slot(kind) {
                *slot = value.clone();
            }
        }
        for (channel, consent) in &patch.consent {
            c.consent.insert(channel.clone(), consent.clone());
        }
        match &patch.attributes {
            None => {}
            Some(AttributesPatch::Clear) => c.attributes = None,
            Some(AttributesPatch::Merge(changes)) => {
                let mut object: serde_json::Map<String, serde_json::Value> = c
                    .attributes
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                for (k, v) in changes {
                    if v.is_null() {
                        object.remove(k);
                    } else {
                        object.insert(k.clone(), v.clone());
                    }
                }
                c.attributes =
                    (!object.is_empty()).then(|| serde_json::Value::Object(object).to_string());
            }
        }
        c.updated_at = patch.at;
        c
    }

    /// A new contact `id` of `patch.tenant` made from `patch` alone.
    pub fn created(id: ContactId, patch: &ContactPatch) -> Contact {
        Contact {
            id,
            tenant: patch.tenant.clone(),
            external_id: None,
            name: None,
            addresses: Addresses::default(),
            consent: BTreeMap::new(),
            attributes: None,
            created_at: patch.at,
            updated_at: patch.at,
        }
        .patched(patch)
    }
}

/// A change to the tenant's own fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributesPatch {
    /// Remove every attribute.
    Clear,
    /// Set these keys (a JSON `null` removes the key), keep the others.
    Merge(serde_json::Map<String, serde_json::Value>),
}

/// A change to a contact, checked: for each field, `None` leaves it as it is, `Some(None)`
/// clears it, `Some(Some(v))` sets it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContactPatch {
    /// The contact's tenant.
    pub tenant: String,
    /// New external id.
    pub external_id: Option<Option<String>>,
    /// New name.
    pub name: Option<Option<String>>,
    /// Addresses to set or clear, by kind ([`ADDRESS_KINDS`]).
    pub addresses: BTreeMap<String, Option<String>>,
    /// Consent records to set, by channel ([`CONSENT_CHANNELS`]).
    pub consent: BTreeMap<String, Consent>,
    /// Attributes to change.
    pub attributes: Option<AttributesPatch>,
    /// When the change is made (its consent records carry their own times).
    pub at: UnixMs,
}

/// A write to the contacts table, applied by [`super::Update::Contact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactWrite {
    /// A new contact `id`; refused ([`ContactApplied::Conflict`]) when its external id is taken.
    Create {
        /// The id it gets.
        id: ContactId,
        /// Its fields.
        patch: Box<ContactPatch>,
    },
    /// Changes contact `id` of `patch.tenant`.
    Patch {
        /// Which contact.
        id: ContactId,
        /// The change.
        patch: Box<ContactPatch>,
    },
    /// An import row: changes the tenant's contact with `patch`'s external id if there is one,
    /// else creates contact `id`.
    Upsert {
        /// The id a created contact gets.
        id: ContactId,
        /// The row.
        patch: Box<ContactPatch>,
    },
    /// Deletes contact `id` of `tenant`.
    Delete {
        /// Whose.
        tenant: String,
        /// Which.
        id: ContactId,
    },
}

/// What a [`ContactWrite`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactApplied {
    /// A contact was created: as stored.
    Created(Box<Contact>),
    /// A contact was changed: as stored now.
    Updated(Box<Contact>),
    /// The contact was deleted.
    Deleted,
    /// No such contact of the tenant.
    NotFound,
    /// The external id belongs to another contact of the tenant (this one).
    Conflict(ContactId),
}

/// What `GET /v1/contacts` asks the store for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactFilter {
    /// Only contacts with this address, of any kind (as stored: E.164 with `+`, email
    /// lower-cased).
    pub address: Option<String>,
    /// Only the contact with this external id.
    pub external_id: Option<String>,
    /// Only contacts with ids below this (the cursor: newest first).
    pub before: Option<ContactId>,
    /// Most contacts returned (1–1000).
    pub limit: usize,
}

/// How a store decides a write, given the contact it names (by id for `Patch` and `Delete`,
/// by external id for `Upsert`; `None` for `Create`) and the holder of the external id the
/// result would have. Returns what to store (`(contact, is_new)`) or the answer without a write.
pub fn decide_contact_write(
    write: &ContactWrite,
    named: Option<Contact>,
    holder_of: impl Fn(&str) -> Option<ContactId>,
) -> Result<(Contact, bool), ContactApplied> {
    let (contact, new) = match (write, named) {
        (ContactWrite::Create { id, patch }, _) | (ContactWrite::Upsert { id, patch }, None) => {
            (Contact::created(*id, patch), true)
        }
        (ContactWrite::Patch { patch, .. } | ContactWrite::Upsert { patch, .. }, Some(c)) => {
            (c.patched(patch), false)
        }
        (ContactWrite::Patch { .. } | ContactWrite::Delete { .. }, None) => {
            return Err(ContactApplied::NotFound)
        }
        (ContactWrite::Delete { .. }, Some(_)) => return Err(ContactApplied::Deleted),
    };
    if let Some(e) = &contact.external_id {
        if let Some(other) = holder_of(e).filter(|o| *o != contact.id) {
            return Err(ContactApplied::Conflict(other));
        }
    }
    Ok((contact, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> ContactPatch {
        ContactPatch {
            tenant: "acme".into(),
            external_id: Some(Some("crm-1".into())),
            name: Some(Some("Ana".into())),
            addresses: [("phone".to_owned(), Some("+447700900123".to_owned()))].into(),
            consent: BTreeMap::new(),
            attributes: Some(AttributesPatch::Merge(
                serde_json::json!({"tier": "gold", "n": 1})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )),
            at: 1_000,
        }
    }

    #[test]
    fn ids_round_trip_and_refuse_other_shapes() {
        let id = ContactId(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "ct_0123456789abcdef");
        assert_eq!(id.to_string().parse::<ContactId>(), Ok(id));
        for bad in ["msg_0123456789abcdef", "ct_123", "ct_0123456789abcdeg", ""] {
            assert!(bad.parse::<ContactId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn channels_use_their_own_address_then_the_phone() {
        let a = Addresses {
            phone: Some("+447700900123".into()),
            whatsapp: Some("+447700900999".into()),
            ..Addresses::default()
        };
        assert_eq!(a.for_channel("sms"), Some(("phone", "+447700900123")));
        assert_eq!(a.for_channel("rcs"), Some(("phone", "+447700900123")));
        assert_eq!(
            a.for_channel("whatsapp"),
            Some(("whatsapp", "+447700900999"))
        );
        assert_eq!(a.for_channel("email"), None);
        assert_eq!(a.for_channel("webhook"), None);
    }

    #[test]
    fn patches_set_clear_and_merge() {
        let c = Contact::created(ContactId(1), &patch());
        assert_eq!(c.name.as_deref(), Some("Ana"));
        let mut p = ContactPatch {
            tenant: "acme".into(),
            name: Some(None),
            at: 2_000,
            ..ContactPatch::default()
        };
        p.attributes = Some(AttributesPatch::Merge(
            serde_json::json!({"tier": null, "city": "Leeds"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ));
        p.consent.insert(
            "sms".into(),
            Consent {
                state: ConsentState::Denied,
                at: 2_000,
                source: "api".into(),
            },
        );
        let d = c.patched(&p);
        assert_eq!(d.name, None);
        assert_eq!(d.external_id.as_deref(), Some("crm-1"));
        assert!(d.denies("sms") && !d.denies("email"));
        let attrs: serde_json::Value =
            serde_json::from_str(d.attributes.as_deref().unwrap_or("{}")).unwrap_or_default();
        assert_eq!(attrs, serde_json::json!({"city": "Leeds", "n": 1}));
        assert_eq!((d.created_at, d.updated_at), (1_000, 2_000));
        assert_eq!(Contact::consent_parse(&d.consent_text()), d.consent);
    }

    #[test]
    fn a_taken_external_id_is_a_conflict() {
        let write = ContactWrite::Create {
            id: ContactId(5),
            patch: Box::new(patch()),
        };
        let held = |e: &str| (e == "crm-1").then_some(ContactId(4));
        assert_eq!(
            decide_contact_write(&write, None, held),
            Err(ContactApplied::Conflict(ContactId(4)))
        );
        let upsert = ContactWrite::Upsert {
            id: ContactId(5),
            patch: Box::new(patch()),
        };
        let existing = Contact::created(ContactId(4), &patch());
        let (c, new) = decide_contact_write(&upsert, Some(existing), held).unwrap();
        assert_eq!((c.id, new), (ContactId(4), false));
    }
}
