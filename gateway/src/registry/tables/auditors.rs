//! Auditors: their certificates, added and revoked. Names are never reused: a revoked
//! auditor's certificate stays in the CRL until it expires, under its own name.

use ztgw_pki::{AuditorName, SerialNumber};

use super::{actions, change_from_row, update_one};
use crate::registry::sql::Db;
use crate::registry::values::{from_ts, parse_id, ts};
use crate::registry::{ActionRecord, AuditorRecord, RegistryError, StatusChange};

pub(super) fn add(
    db: &impl Db,
    a: &AuditorRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        let inserted = sql.execute(
            "INSERT INTO auditors (name, serial, not_after, added_at, added_by, add_reason, add_note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            &[
                a.name.as_str().into(),
                a.serial.as_bytes().into(),
                ts(a.not_after).into(),
                ts(a.added.at).into(),
                (&a.added.by).into(),
                (&a.added.reason).into(),
                (&a.added.note).into(),
            ],
        )?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("auditor {}", a.name)));
        }
        actions::insert(sql, action)
    })
}

pub(super) fn one(
    db: &impl Db,
    name: &AuditorName,
) -> Result<Option<AuditorRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            "SELECT name, serial, not_after, added_at, added_by, add_reason, add_note,
                revoked_at, revoked_by, revoke_reason, revoke_note FROM auditors WHERE name = ?1",
            &[name.as_str().into()],
        )?
        .map(|r| {
            Ok(AuditorRecord {
                name: parse_id(r.text(0)?)?,
                serial: SerialNumber::from_slice(&r.bytes(1)?),
                not_after: from_ts(r.int(2)?)?,
                added: change_from_row(&r, 3)?
                    .ok_or_else(|| RegistryError::Corrupt("auditor without addition".into()))?,
                revoked: change_from_row(&r, 7)?,
            })
        })
        .transpose()
    })
}

pub(super) fn revoke(
    db: &impl Db,
    name: &AuditorName,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE auditors SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3, revoke_note = ?4
             WHERE name = ?5 AND revoked_at IS NULL",
            &[
                ts(change.at).into(),
                (&change.by).into(),
                (&change.reason).into(),
                (&change.note).into(),
                name.as_str().into(),
            ],
            || format!("active auditor {name}"),
        )?;
        actions::insert(sql, action)
    })
}
