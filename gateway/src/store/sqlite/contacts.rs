//! Contacts in SQLite: written by the writer ([`apply`], deciding with
//! [`decide_contact_write`] inside its transaction), read per tenant.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::{
    decide_contact_write, Addresses, Applied, Contact, ContactApplied, ContactFilter, ContactId,
    ContactWrite,
};

/// The columns every read selects, in [`row`]'s order.
const COLUMNS: &str = "id, tenant, external_id, name, phone, email, whatsapp, telegram, \
                       messenger, rcs, consent, attributes, created_at, updated_at";

fn row(r: &Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId(r.get(0)?),
        tenant: r.get(1)?,
        external_id: r.get(2)?,
        name: r.get(3)?,
        addresses: Addresses {
            phone: r.get(4)?,
            email: r.get(5)?,
            whatsapp: r.get(6)?,
            telegram: r.get(7)?,
            messenger: r.get(8)?,
            rcs: r.get(9)?,
        },
        consent: Contact::consent_parse(&r.get::<_, String>(10)?),
        attributes: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

fn by_id(conn: &Connection, tenant: &str, id: ContactId) -> rusqlite::Result<Option<Contact>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE id = ?1 AND tenant = ?2"
    ))?
    .query_row(params![id.0, tenant], row)
    .optional()
}

fn by_external_id(
    conn: &Connection,
    tenant: &str,
    external_id: &str,
) -> rusqlite::Result<Option<Contact>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE tenant = ?1 AND external_id = ?2"
    ))?
    .query_row(params![tenant, external_id], row)
    .optional()
}

/// Applies one write in the writer's transaction.
pub(super) fn apply(conn: &Connection, write: &ContactWrite) -> rusqlite::Result<Applied> {
    let named = match write {
        ContactWrite::Create { .. } => None,
        ContactWrite::Patch { id, patch } => by_id(conn, &patch.tenant, *id)?,
        ContactWrite::Delete { tenant, id } => by_id(conn, tenant, *id)?,
        ContactWrite::Upsert { patch, .. } => match &patch.external_id {
            Some(Some(e)) => by_external_id(conn, &patch.tenant, e)?,
            _ => None,
        },
    };
    let tenant = match write {
        ContactWrite::Delete { tenant, .. } => tenant.as_str(),
        ContactWrite::Create { patch, .. }
        | ContactWrite::Patch { patch, .. }
        | ContactWrite::Upsert { patch, .. } => patch.tenant.as_str(),
    };
    // Looked up before deciding: the closure cannot return errors.
    let wanted = match write {
        ContactWrite::Delete { .. } => None,
        ContactWrite::Create { patch, .. }
        | ContactWrite::Patch { patch, .. }
        | ContactWrite::Upsert { patch, .. } => match &patch.external_id {
            Some(e) => e.clone(),
            None => named.as_ref().and_then(|c| c.external_id.clone()),
        },
    };
    let holder = match &wanted {
        Some(e) => by_external_id(conn, tenant, e)?.map(|c| c.id),
        None => None,
    };
    let (contact, new) = match decide_contact_write(write, named, |_| holder) {
        Ok(decided) => decided,
        Err(ContactApplied::Deleted) => {
            if let ContactWrite::Delete { tenant, id } = write {
                conn.prepare_cached("DELETE FROM contacts WHERE id = ?1 AND tenant = ?2")?
                    .execute(params![id.0, tenant])?;
            }
            return Ok(Applied::Contact(ContactApplied::Deleted));
        }
        Err(answer) => return Ok(Applied::Contact(answer)),
    };
    let a = &contact.addresses;
    let values = params![
        contact.id.0,
        contact.tenant,
        contact.external_id,
        contact.name,
        a.phone,
        a.email,
        a.whatsapp,
        a.telegram,
        a.messenger,
        a.rcs,
        contact.consent_text(),
        contact.attributes,
        contact.created_at,
        contact.updated_at,
    ];
    if new {
        conn.prepare_cached(&format!(
            "INSERT INTO contacts ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?
        .execute(values)?;
        Ok(Applied::Contact(ContactApplied::Created(Box::new(contact))))
    } else {
        conn.prepare_cached(
            "UPDATE contacts SET tenant = ?2, external_id = ?3, name = ?4, phone = ?5, \
             email = ?6, whatsapp = ?7, telegram = ?8, messenger = ?9, rcs = ?10, \
             consent = ?11, attributes = ?12, created_at = ?13, updated_at = ?14 WHERE id = ?1",
        )?
        .execute(values)?;
        Ok(Applied::Contact(ContactApplied::Updated(Box::new(contact))))
    }
}

/// The contacts of `tenant` among `ids`, in no particular order (unknown ids left out).
pub(super) fn by_ids(
    conn: &Connection,
    tenant: &str,
    ids: &[ContactId],
) -> rusqlite::Result<Vec<Contact>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = by_id(conn, tenant, *id)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// `tenant`'s contacts matching `f`, newest first.
pub(super) fn list(
    conn: &Connection,
    tenant: &str,
    f: &ContactFilter,
) -> rusqlite::Result<Vec<Contact>> {
    let limit = f.limit.clamp(1, 1000) as i64;
    let before = f.before.map_or(i64::MAX, |b| b.0);
    match (&f.address, &f.external_id) {
        (Some(address), external_id) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM contacts WHERE tenant = ?1 AND id < ?2 \
                 AND (phone = ?3 OR email = ?3 OR whatsapp = ?3 OR telegram = ?3 \
                      OR messenger = ?3 OR rcs = ?3) \
                 AND (?4 IS NULL OR external_id = ?4) ORDER BY id DESC LIMIT ?5"
            ))?
            .query_map(params![tenant, before, address, external_id, limit], row)?
            .collect(),
        (None, Some(external_id)) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM contacts WHERE tenant = ?1 AND id < ?2 \
                 AND external_id = ?3 ORDER BY id DESC LIMIT ?4"
            ))?
            .query_map(params![tenant, before, external_id, limit], row)?
            .collect(),
        (None, None) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM contacts WHERE tenant = ?1 AND id < ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![tenant, before, limit], row)?
            .collect(),
    }
}
