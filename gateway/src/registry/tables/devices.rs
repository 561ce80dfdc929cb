//! Devices: enrolment (which redeems the invitation and records the device, its first
//! certificate and its second-factor secret together), approval, role changes and the end
//! of service.

use ztgw_api::control::{DeviceStatus, Ownership};
use ztgw_pki::{CrlReason, DeviceId, InvitationId, WgPublicKey};

use super::{actions, certificates, change_from_row, update_one};
use crate::registry::sql::{Db, Row, Sql, SqlError};
use crate::registry::values::{from_ts, parse_id, reason_str, ts};
use crate::registry::{
    ActionRecord, DeviceRecord, EndOfService, Enrolment, RegistryError, StatusChange,
};

pub(super) fn enrol(
    db: &impl Db,
    e: &Enrolment,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    let d = &e.device;
    db.write(|sql| {
        let marked = sql.execute(
            "UPDATE invitations SET used_at = ?1, used_by = ?2
             WHERE id = ?3 AND used_at IS NULL",
            &[
                ts(d.enrolled_at).into(),
                d.id.as_str().into(),
                e.invitation.as_str().into(),
            ],
        )?;
        if marked == 0 {
            return Err(RegistryError::InvitationAlreadyUsed);
        }
        let holder = sql.query_opt(
            "SELECT id FROM devices WHERE wg_key = ?1 AND status IN ('pending', 'active')",
            &[d.wg_key.as_bytes().as_slice().into()],
        )?;
        if let Some(holder) = holder {
            return Err(RegistryError::WgKeyInUse(holder.text(0)?));
        }
        let approved = d.approved.as_ref();
        sql.execute(
            "INSERT INTO devices (id, employee_id, role, schedule, invitation_id, hostname, os,
                ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason,
                approve_note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            &[
                d.id.as_str().into(),
                d.employee.as_str().into(),
                (&d.role).into(),
                (&d.schedule).into(),
                e.invitation.as_str().into(),
                (&d.hostname).into(),
                (&d.os).into(),
                d.ownership.as_str().into(),
                d.wg_key.as_bytes().as_slice().into(),
                d.status.as_str().into(),
                ts(d.enrolled_at).into(),
                approved.map(|a| ts(a.at)).into(),
                approved.map(|a| a.by.as_str()).into(),
                approved.map(|a| a.reason.as_str()).into(),
                approved.and_then(|a| a.note.as_deref()).into(),
            ],
        )
        .map_err(|err| match err {
            // Another enrolment took the key meanwhile (the partial unique index).
            SqlError::Unique => RegistryError::WgKeyInUse("another device".into()),
            other => other.into(),
        })?;
        certificates::insert(sql, &e.certificate)?;
        sql.execute(
            "INSERT INTO totp (device, secret, last_step) VALUES (?1, ?2, 0)",
            &[
                d.id.as_str().into(),
                e.totp_secret.expose().as_slice().into(),
            ],
        )?;
        actions::insert(sql, action)
    })
}

pub(super) fn one(db: &impl Db, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(&format!("{SELECT} WHERE id = ?1"), &[id.as_str().into()])?
            .map(|r| decode(&r))
            .transpose()
    })
}

pub(super) fn all(db: &impl Db) -> Result<Vec<DeviceRecord>, RegistryError> {
    db.read(|sql| sql.query_all(&format!("{SELECT} ORDER BY enrolled_at, id"), &[], decode))
}

pub(super) fn approve(
    db: &impl Db,
    id: &DeviceId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE devices SET status = 'active', approved_at = ?1, approved_by = ?2,
                approve_reason = ?3, approve_note = ?4
             WHERE id = ?5 AND status = 'pending'",
            &[
                ts(change.at).into(),
                (&change.by).into(),
                (&change.reason).into(),
                (&change.note).into(),
                id.as_str().into(),
            ],
            || format!("pending device {id}"),
        )?;
        actions::insert(sql, action)
    })
}

pub(super) fn set_role(
    db: &impl Db,
    id: &DeviceId,
    role: &str,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE devices SET role = ?1 WHERE id = ?2 AND status IN ('pending', 'active')",
            &[role.into(), id.as_str().into()],
            || format!("device in service {id}"),
        )?;
        actions::insert(sql, action)
    })
}

pub(super) fn end(
    db: &impl Db,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        end_in(sql, id, how, change, reason)?;
        actions::insert(sql, action)
    })
}

/// Takes a device out of service and revokes its certificates, in the caller's
/// transaction.
pub(super) fn end_in(
    sql: &mut dyn Sql,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
) -> Result<(), RegistryError> {
    let (status, allowed_from) = match how {
        EndOfService::Revoke => ("revoked", "('pending', 'active')"),
        EndOfService::Decommission => ("decommissioned", "('pending', 'active', 'revoked')"),
    };
    update_one(
        sql,
        &format!(
            "UPDATE devices SET status = ?1, ended_at = ?2, ended_by = ?3, end_reason = ?4,
                end_note = ?5 WHERE id = ?6 AND status IN {allowed_from}"
        ),
        &[
            status.into(),
            ts(change.at).into(),
            (&change.by).into(),
            (&change.reason).into(),
            (&change.note).into(),
            id.as_str().into(),
        ],
        || format!("device {id} in a state that can be {status}"),
    )?;
    sql.execute(
        "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
         WHERE device_id = ?3 AND revoked_at IS NULL",
        &[
            ts(change.at).into(),
            reason_str(reason).into(),
            id.as_str().into(),
        ],
    )?;
    Ok(())
}

const SELECT: &str = "SELECT id, employee_id, role, schedule, invitation_id, hostname, os,
    ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason, approve_note,
    ended_at, ended_by, end_reason, end_note FROM devices";

fn decode(r: &Row) -> Result<DeviceRecord, RegistryError> {
    let inv = r.text(4)?;
    let key: [u8; 32] = r
        .bytes(8)?
        .try_into()
        .map_err(|_| RegistryError::Corrupt("device WireGuard key".into()))?;
    let status = r.text(9)?;
    Ok(DeviceRecord {
        id: parse_id(r.text(0)?)?,
        employee: parse_id(r.text(1)?)?,
        role: r.text(2)?,
        schedule: r.opt_text(3)?,
        invitation: InvitationId::parse(&inv)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {inv:?}")))?,
        hostname: r.text(5)?,
        os: r.text(6)?,
        ownership: r
            .text(7)?
            .parse::<Ownership>()
            .map_err(RegistryError::Corrupt)?,
        wg_key: WgPublicKey::from_bytes(key),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| RegistryError::Corrupt(format!("device status {status:?}")))?,
        enrolled_at: from_ts(r.int(10)?)?,
        approved: change_from_row(r, 11)?,
        ended: change_from_row(r, 15)?,
    })
}
