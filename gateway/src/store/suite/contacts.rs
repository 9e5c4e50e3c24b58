//! Contacts: created, changed and deleted with [`Update::Contact`], read per tenant.

use std::collections::BTreeMap;

use super::Harness;
use crate::domain::{
    Applied, AttributesPatch, Consent, ConsentState, Contact, ContactApplied, ContactFilter,
    ContactId, ContactPatch, ContactWrite, Update,
};

fn patch(tenant: &str, external_id: Option<&str>, phone: &str, at: i64) -> ContactPatch {
    ContactPatch {
        tenant: tenant.into(),
        external_id: external_id.map(|e| Some(e.to_owned())),
        name: Some(Some("Ana".into())),
        addresses: [
            ("phone".to_owned(), Some(phone.to_owned())),
            ("email".to_owned(), Some("ana@example.org".to_owned())),
        ]
        .into(),
        consent: BTreeMap::from([(
            "sms".to_owned(),
            Consent {
                state: ConsentState::Granted,
                at,
                source: "api".into(),
            },
        )]),
        attributes: Some(AttributesPatch::Merge(
            serde_json::json!({"tier": "gold"})
                .as_object()
                .cloned()
                .unwrap(),
        )),
        at,
    }
}

fn create(id: i64, p: ContactPatch) -> Update {
    Update::Contact(ContactWrite::Create {
        id: ContactId(id),
        patch: Box::new(p),
    })
}

fn contact(applied: &Applied) -> Contact {
    match applied {
        Applied::Contact(ContactApplied::Created(c) | ContactApplied::Updated(c)) => (**c).clone(),
        other => panic!("not a contact write: {other:?}"),
    }
}

pub(crate) async fn contacts_are_created_changed_deleted_and_kept_per_tenant(h: &mut dyn Harness) {
    let store = h.store();
    let applied = store
        .apply(vec![
            create(10, patch("acme", Some("crm-1"), "+447700900001", 1_000)),
            create(11, patch("acme", None, "+447700900002", 1_001)),
            create(12, patch("globex", Some("crm-1"), "+447700900001", 1_002)),
            // The same external id again in the tenant: refused, the first one named.
            create(13, patch("acme", Some("crm-1"), "+447700900003", 1_003)),
        ])
        .await
        .unwrap();
    let first = contact(&applied[0]);
    assert_eq!(first.id, ContactId(10));
    assert_eq!(first.addresses.phone.as_deref(), Some("+447700900001"));
    assert_eq!(
        applied[3],
        Applied::Contact(ContactApplied::Conflict(ContactId(10)))
    );
    // Read back as written, each tenant its own.
    let read = store
        .contacts_by_id("acme", vec![ContactId(10), ContactId(12), ContactId(99)])
        .await
        .unwrap();
    assert_eq!(read, vec![first.clone()]);
    assert_eq!(read[0].consent["sms"].state, ConsentState::Granted);
    assert_eq!(read[0].attributes.as_deref(), Some(r#"{"tier":"gold"}"#));

    // A patch clears, sets and merges; another tenant cannot patch or delete it.
    let change = ContactPatch {
        tenant: "acme".into(),
        name: Some(None),
        addresses: [("phone".to_owned(), Some("+447700900009".to_owned()))].into(),
        consent: BTreeMap::from([(
            "sms".to_owned(),
            Consent {
                state: ConsentState::Denied,
                at: 2_000,
                source: "keyword".into(),
            },
        )]),
        at: 2_000,
        ..ContactPatch::default()
    };
    let mut foreign = change.clone();
    foreign.tenant = "globex".into();
    let applied = store
        .apply(vec![
            Update::Contact(ContactWrite::Patch {
                id: ContactId(10),
                patch: Box::new(change),
            }),
            Update::Contact(ContactWrite::Patch {
                id: ContactId(10),
                patch: Box::new(foreign),
            }),
            Update::Contact(ContactWrite::Delete {
                tenant: "globex".into(),
                id: ContactId(10),
            }),
        ])
        .await
        .unwrap();
    let changed = contact(&applied[0]);
    assert_eq!(changed.name, None);
    assert_eq!(changed.addresses.phone.as_deref(), Some("+447700900009"));
    assert_eq!(changed.addresses.email.as_deref(), Some("ana@example.org"));
    assert!(changed.denies("sms"));
    assert_eq!((changed.created_at, changed.updated_at), (1_000, 2_000));
    assert_eq!(
        applied[1..],
        [
            Applied::Contact(ContactApplied::NotFound),
            Applied::Contact(ContactApplied::NotFound)
        ]
    );

    // Upserts by external id: the known one changes, a new one is created.
    let applied = store
        .apply(vec![
            Update::Contact(ContactWrite::Upsert {
                id: ContactId(20),
                patch: Box::new(patch("acme", Some("crm-1"), "+447700900011", 3_000)),
            }),
            Update::Contact(ContactWrite::Upsert {
                id: ContactId(21),
                patch: Box::new(patch("acme", Some("crm-2"), "+447700900012", 3_000)),
            }),
        ])
        .await
        .unwrap();
    assert!(matches!(
        &applied[0],
        Applied::Contact(ContactApplied::Updated(c)) if c.id == ContactId(10)
            && c.addresses.phone.as_deref() == Some("+447700900011")
    ));
    assert!(matches!(
        &applied[1],
        Applied::Contact(ContactApplied::Created(c)) if c.id == ContactId(21)
    ));

    // Durable: the same after a restart. Then deleted, once.
    h.reopen().await;
    let store = h.store();
    let again = store
        .contacts_by_id("acme", vec![ContactId(10)])
        .await
        .unwrap();
    assert_eq!(again[0].addresses.phone.as_deref(), Some("+447700900011"));
    let applied = store
        .apply(vec![
            Update::Contact(ContactWrite::Delete {
                tenant: "acme".into(),
                id: ContactId(10),
            }),
            Update::Contact(ContactWrite::Delete {
                tenant: "acme".into(),
                id: ContactId(10),
            }),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        [
            Applied::Contact(ContactApplied::Deleted),
            Applied::Contact(ContactApplied::NotFound)
        ]
    );
    assert!(store
        .contacts_by_id("acme", vec![ContactId(10)])
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn contacts_list_newest_first_by_address_and_external_id(h: &mut dyn Harness) {
    let store = h.store();
    let mut writes = Vec::new();
    for i in 0..5 {
        let ext = format!("crm-{i}");
        writes.push(create(
            100 + i,
            patch("acme", Some(&ext), &format!("+44770090010{i}"), 1_000 + i),
        ));
    }
    writes.push(create(200, patch("globex", None, "+447700900101", 2_000)));
    store.apply(writes).await.unwrap();
    let ids = |cs: Vec<Contact>| cs.into_iter().map(|c| c.id.0).collect::<Vec<_>>();
    let page = |before: Option<i64>| ContactFilter {
        before: before.map(ContactId),
        limit: 2,
        ..ContactFilter::default()
    };
    assert_eq!(
        ids(store.contacts("acme", page(None)).await.unwrap()),
        [104, 103]
    );
    assert_eq!(
        ids(store.contacts("acme", page(Some(103))).await.unwrap()),
        [102, 101]
    );
    assert_eq!(
        ids(store.contacts("acme", page(Some(101))).await.unwrap()),
        [100]
    );
    let by_phone = ContactFilter {
        address: Some("+447700900101".into()),
        limit: 10,
        ..ContactFilter::default()
    };
    assert_eq!(
        ids(store.contacts("acme", by_phone.clone()).await.unwrap()),
        [101]
    );
    assert_eq!(
        ids(store.contacts("globex", by_phone).await.unwrap()),
        [200]
    );
    let by_email = ContactFilter {
        address: Some("ana@example.org".into()),
        limit: 10,
        ..ContactFilter::default()
    };
    assert_eq!(store.contacts("acme", by_email).await.unwrap().len(), 5);
    let by_external = ContactFilter {
        external_id: Some("crm-3".into()),
        limit: 10,
        ..ContactFilter::default()
    };
    assert_eq!(
        ids(store.contacts("acme", by_external.clone()).await.unwrap()),
        [103]
    );
    assert!(store
        .contacts("globex", by_external)
        .await
        .unwrap()
        .is_empty());
}
