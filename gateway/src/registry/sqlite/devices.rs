//! Devices: enrolment (which redeems the invitation and records the device, its employee and first certificate together), approval, role changes and the end of service.

use rusqlite::{OptionalExtension as _, Row, Transaction, params};
use ztgw_pki::wire::{DeviceStatus, Ownership};
use ztgw_pki::{CrlReason, DeviceId, InvitationId, WgPublicKey};

use super::SqliteRegistry;
use super::actions::insert_action;
use super::certificates::insert_certificate;
use super::codec::*;
use crate::registry::{
    ActionRecord, DeviceRecord, EndOfService, Enrolment, RegistryError, StatusChange,
};

pub(super) fn complete_enrolment(
    reg: &SqliteRegistry,
    e: &Enrolment,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    let d = &e.device;
    reg.in_transaction(|tx| {
        let marked = tx
            .execute(
                "UPDATE invitations SET used_at = ?1, used_by = ?2
                 WHERE id = ?3 AND used_at IS NULL",
                params![ts(d.enrolled_at), d.id.as_str(), e.invitation.as_str()],
            )
            .map_err(storage)?;
        if marked == 0 {
            return Err(RegistryError::InvitationAlreadyUsed);
        }
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM devices WHERE wg_key = ?1 AND status IN ('pending', 'active')",
                params![d.wg_key.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        if let Some(holder) = holder {
            return Err(RegistryError::WgKeyInUse(holder));
        }
        tx.execute(
            "INSERT INTO devices (id, employee_id, role, schedule, invitation_id, hostname, os,
                ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason,
                approve_note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                d.id.as_str(),
                d.employee.as_str(),
                d.role,
                d.schedule,
                e.invitation.as_str(),
                d.hostname,
                d.os,
                d.ownership.as_str(),
                d.wg_key.as_bytes().as_slice(),
                d.status.as_str(),
                ts(d.enrolled_at),
                d.approved.as_ref().map(|a| ts(a.at)),
                d.approved.as_ref().map(|a| a.by.clone()),
                d.approved.as_ref().map(|a| a.reason.clone()),
                d.approved.as_ref().and_then(|a| a.note.clone()),
            ],
        )
        .map_err(storage)?;
        insert_certificate(tx, &e.certificate)?;
        tx.execute(
            "INSERT INTO totp (device, secret, last_step) VALUES (?1, ?2, 0)",
            params![d.id.as_str(), e.totp_secret.expose().as_slice()],
        )
        .map_err(storage)?;
        insert_action(tx, action)
    })
}

pub(super) fn device(
    reg: &SqliteRegistry,
    id: &DeviceId,
) -> Result<Option<DeviceRecord>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            &format!("{DEVICE_SELECT} WHERE id = ?1"),
            params![id.as_str()],
            device_from_row,
        )
    })
}

pub(super) fn devices(reg: &SqliteRegistry) -> Result<Vec<DeviceRecord>, RegistryError> {
    reg.with(|c| {
        query_all(
            c,
            &format!("{DEVICE_SELECT} ORDER BY enrolled_at, id"),
            [],
            device_from_row,
        )
    })
}

pub(super) fn approve_device(
    reg: &SqliteRegistry,
    id: &DeviceId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE devices SET status = 'active', approved_at = ?1, approved_by = ?2,
                    approve_reason = ?3, approve_note = ?4
                 WHERE id = ?5 AND status = 'pending'",
                params![
                    ts(change.at),
                    change.by,
                    change.reason,
                    change.note,
                    id.as_str()
                ],
            )
            .map_err(storage)?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("pending device {id}")));
        }
        insert_action(tx, action)
    })
}

pub(super) fn set_device_role(
    reg: &SqliteRegistry,
    id: &DeviceId,
    role: &str,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE devices SET role = ?1
                 WHERE id = ?2 AND status IN ('pending', 'active')",
                params![role, id.as_str()],
            )
            .map_err(storage)?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("device in service {id}")));
        }
        insert_action(tx, action)
    })
}

pub(super) fn end_device(
    reg: &SqliteRegistry,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        end_device_in(tx, id, how, change, reason)?;
        insert_action(tx, action)
    })
}

pub(super) fn end_device_in(
    tx: &Transaction<'_>,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
) -> Result<(), RegistryError> {
    let (status, allowed_from) = match how {
        EndOfService::Revoke => ("revoked", "('pending', 'active')"),
        EndOfService::Decommission => ("decommissioned", "('pending', 'active', 'revoked')"),
    };
    let updated = tx
        .execute(
            &format!(
                "UPDATE devices SET status = ?1, ended_at = ?2, ended_by = ?3, end_reason = ?4,
                    end_note = ?5 WHERE id = ?6 AND status IN {allowed_from}"
            ),
            params![
                status,
                ts(change.at),
                change.by,
                change.reason,
                change.note,
                id.as_str()
            ],
        )
        .map_err(storage)?;
    if updated == 0 {
        return Err(RegistryError::NotFound(format!(
            "device {id} in a state that can be {status}"
        )));
    }
    tx.execute(
        "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
         WHERE device_id = ?3 AND revoked_at IS NULL",
        params![ts(change.at), reason_str(reason), id.as_str()],
    )
    .map_err(storage)?;
    Ok(())
}

pub(super) const DEVICE_SELECT: &str =
    "SELECT id, employee_id, role, schedule, invitation_id, hostname, os,
    ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason, approve_note,
    ended_at, ended_by, end_reason, end_note FROM devices";

pub(super) fn device_from_row(r: &Row<'_>) -> Result<DeviceRecord, RegistryError> {
    let inv: String = r.get(4).map_err(storage)?;
    let ownership: String = r.get(7).map_err(storage)?;
    let key: Vec<u8> = r.get(8).map_err(storage)?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| RegistryError::Corrupt("device WireGuard key".into()))?;
    let status: String = r.get(9).map_err(storage)?;
    Ok(DeviceRecord {
        id: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
        employee: parse_id(r.get::<_, String>(1).map_err(storage)?)?,
        role: r.get(2).map_err(storage)?,
        schedule: r.get(3).map_err(storage)?,
        invitation: InvitationId::parse(&inv)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {inv:?}")))?,
        hostname: r.get(5).map_err(storage)?,
        os: r.get(6).map_err(storage)?,
        ownership: ownership
            .parse::<Ownership>()
            .map_err(RegistryError::Corrupt)?,
        wg_key: WgPublicKey::from_bytes(key),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| RegistryError::Corrupt(format!("device status {status:?}")))?,
        enrolled_at: from_ts(r.get(10).map_err(storage)?)?,
        approved: change_from_row(r, 11)?,
        ended: change_from_row(r, 15)?,
    })
}
