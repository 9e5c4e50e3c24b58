//! Contacts in PostgreSQL: written by the writer ([`apply`], deciding with
//! [`decide_contact_write`] inside its transaction), read per tenant.
//!
//! Nodes sharing the database write at once: a write that gives a contact an external id first
//! takes a transaction-scoped advisory lock on `(tenant, external_id)`, so two imports of the
//! same row on two nodes upsert one after the other instead of both inserting.

use tokio_postgres::Row;

use super::{limit_param, Db, PgError};
use crate::domain::{
    decide_contact_write, Addresses, Applied, Contact, ContactApplied, ContactFilter, ContactId,
    ContactWrite,
};

/// The columns every read selects, in [`row`]'s order.
const COLUMNS: &str = "id, tenant, external_id, name, phone, email, whatsapp, telegram, \
                       messenger, rcs, consent, attributes, created_at, updated_at";

/// The advisory lock class of external ids (the key is a hash of tenant and external id).
const EXTERNAL_ID_LOCK: i32 = 0x436f_6e74;

fn row(r: &Row) -> Result<Contact, PgError> {
    Ok(Contact {
        id: ContactId(r.try_get(0)?),
        tenant: r.try_get(1)?,
        external_id: r.try_get(2)?,
        name: r.try_get(3)?,
        addresses: Addresses {
            phone: r.try_get(4)?,
            email: r.try_get(5)?,
            whatsapp: r.try_get(6)?,
            telegram: r.try_get(7)?,
            messenger: r.try_get(8)?,
            rcs: r.try_get(9)?,
        },
        consent: Contact::consent_parse(r.try_get(10)?),
        attributes: r.try_get(11)?,
        created_at: r.try_get(12)?,
        updated_at: r.try_get(13)?,
    })
}

async fn by_id(db: Db<'_>, tenant: &str, id: ContactId) -> Result<Option<Contact>, PgError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM contacts WHERE id = $1 AND tenant = $2"),
        &[&id.0, &tenant],
    )
    .await?
    .as_ref()
    .map(row)
    .transpose()
}

async fn by_external_id(
    db: Db<'_>,
    tenant: &str,
    external_id: &str,
) -> Result<Option<Contact>, PgError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM contacts WHERE tenant = $1 AND external_id = $2"),
        &[&tenant, &external_id],
    )
    .await?
    .as_ref()
    .map(row)
    .transpose()
}

/// Applies one write in the writer's transaction.
pub(super) async fn apply(db: Db<'_>, write: &ContactWrite) -> Result<Applied, PgError> {
    let (tenant, patch) = match write {
        ContactWrite::Delete { tenant, .. } => (tenant.as_str(), None),
        ContactWrite::Create { patch, .. }
        | ContactWrite::Patch { patch, .. }
        | ContactWrite::Upsert { patch, .. } => (patch.tenant.as_str(), Some(patch)),
    };
    // The external id the write gives, locked before anything is read about it.
    let given = patch.and_then(|p| p.external_id.clone().flatten());
    if let Some(e) = &given {
        db.query_one(
            "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))",
            &[&EXTERNAL_ID_LOCK, &tenant, e],
        )
        .await?;
    }
    let named = match write {
        ContactWrite::Create { .. } => None,
        ContactWrite::Patch { id, .. } | ContactWrite::Delete { id, .. } => {
            by_id(db, tenant, *id).await?
        }
        ContactWrite::Upsert { .. } => match &given {
            Some(e) => by_external_id(db, tenant, e).await?,
            None => None,
        },
    };
    let holder = match &given {
        Some(e) => by_external_id(db, tenant, e).await?.map(|c| c.id),
        None => None,
    };
    let (contact, new) = match decide_contact_write(write, named, |_| holder) {
        Ok(decided) => decided,
        Err(ContactApplied::Deleted) => {
            if let ContactWrite::Delete { tenant, id } = write {
                db.execute(
                    "DELETE FROM contacts WHERE id = $1 AND tenant = $2",
                    &[&id.0, tenant],
                )
                .await?;
            }
            return Ok(Applied::Contact(ContactApplied::Deleted));
        }
        Err(answer) => return Ok(Applied::Contact(answer)),
    };
    let a = &contact.addresses;
    let consent = contact.consent_text();
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &contact.id.0,
        &contact.tenant,
        &contact.external_id,
        &contact.name,
        &a.phone,
        &a.email,
        &a.whatsapp,
        &a.telegram,
        &a.messenger,
        &a.rcs,
        &consent,
        &contact.attributes,
        &contact.created_at,
        &contact.updated_at,
    ];
    if new {
        db.execute(
            &format!(
                "INSERT INTO contacts ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ),
            &values,
        )
        .await?;
        Ok(Applied::Contact(ContactApplied::Created(Box::new(contact))))
    } else {
        db.execute(
            "UPDATE contacts SET tenant = $2, external_id = $3, name = $4, phone = $5, \
             email = $6, whatsapp = $7, telegram = $8, messenger = $9, rcs = $10, \
             consent = $11, attributes = $12, created_at = $13, updated_at = $14 WHERE id = $1",
            &values,
        )
        .await?;
        Ok(Applied::Contact(ContactApplied::Updated(Box::new(contact))))
    }
}

/// The contacts of `tenant` among `ids`, in no particular order (unknown ids left out).
pub(super) async fn by_ids(
    db: Db<'_>,
    tenant: &str,
    ids: &[ContactId],
) -> Result<Vec<Contact>, PgError> {
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM contacts WHERE tenant = $1 AND id = ANY($2)"),
            &[&tenant, &ids],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// `tenant`'s contacts matching `f`, newest first.
pub(super) async fn list(
    db: Db<'_>,
    tenant: &str,
    f: &ContactFilter,
) -> Result<Vec<Contact>, PgError> {
    let limit = limit_param(f.limit.clamp(1, 1000));
    let before = f.before.map_or(i64::MAX, |b| b.0);
    let rows = match (&f.address, &f.external_id) {
        (Some(address), external_id) => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM contacts WHERE tenant = $1 AND id < $2 \
                     AND (phone = $3 OR email = $3 OR whatsapp = $3 OR telegram = $3 \
                          OR messenger = $3 OR rcs = $3) \
                     AND ($4::TEXT IS NULL OR external_id = $4) ORDER BY id DESC LIMIT $5"
                ),
                &[&tenant, &before, address, external_id, &limit],
            )
            .await?
        }
        (None, Some(external_id)) => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM contacts WHERE tenant = $1 AND id < $2 \
                     AND external_id = $3 ORDER BY id DESC LIMIT $4"
                ),
                &[&tenant, &before, external_id, &limit],
            )
            .await?
        }
        (None, None) => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM contacts WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&tenant, &before, &limit],
            )
            .await?
        }
    };
    rows.iter().map(row).collect()
}
