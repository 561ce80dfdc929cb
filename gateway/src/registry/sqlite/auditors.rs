//! Auditors: their certificates, added and revoked.

use rusqlite::params;
use ztgw_pki::SerialNumber;

use super::SqliteRegistry;
use super::actions::insert_action;
use super::codec::*;
use crate::registry::{ActionRecord, AuditorRecord, RegistryError, StatusChange};

pub(super) fn add_auditor(
    reg: &SqliteRegistry,
    a: &AuditorRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        // Names are never reused: a revoked auditor's certificate stays in the CRL
        // until it expires, under its own name.
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO auditors (name, serial, not_after, added_at, added_by, add_reason, add_note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    a.name.as_str(),
                    a.serial.as_bytes(),
                    ts(a.not_after),
                    ts(a.added.at),
                    a.added.by,
                    a.added.reason,
                    a.added.note
                ],
            )
            .map_err(storage)?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("auditor {}", a.name)));
        }
        insert_action(tx, action)
    })
}

pub(super) fn auditor(
    reg: &SqliteRegistry,
    name: &ztgw_pki::AuditorName,
) -> Result<Option<AuditorRecord>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            "SELECT name, serial, not_after, added_at, added_by, add_reason, add_note,
                revoked_at, revoked_by, revoke_reason, revoke_note FROM auditors WHERE name = ?1",
            params![name.as_str()],
            |r| {
                let serial: Vec<u8> = r.get(1).map_err(storage)?;
                Ok(AuditorRecord {
                    name: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
                    serial: SerialNumber::from_slice(&serial),
                    not_after: from_ts(r.get(2).map_err(storage)?)?,
                    added: change_from_row(r, 3)?
                        .ok_or_else(|| RegistryError::Corrupt("auditor without addition".into()))?,
                    revoked: change_from_row(r, 7)?,
                })
            },
        )
    })
}

pub(super) fn revoke_auditor(
    reg: &SqliteRegistry,
    name: &ztgw_pki::AuditorName,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE auditors SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3, revoke_note = ?4
                 WHERE name = ?5 AND revoked_at IS NULL",
                params![ts(change.at), change.by, change.reason, change.note, name.as_str()],
            )
            .map_err(storage)?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("active auditor {name}")));
        }
        insert_action(tx, action)
    })
}
