//! Employees: the telework of each, ended and reinstated with all their devices.

use ztgw_pki::{CrlReason, DeviceId, EmployeeId};

use super::{actions, change_from_row, devices, update_one};
use crate::registry::sql::Db;
use crate::registry::values::{from_ts, parse_id, ts};
use crate::registry::{ActionRecord, EmployeeRecord, EndOfService, RegistryError, StatusChange};

pub(super) fn one(db: &impl Db, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            "SELECT id, created_at, revoked_at, revoked_by, revoke_reason, revoke_note
             FROM employees WHERE id = ?1",
            &[id.as_str().into()],
        )?
        .map(|r| {
            Ok(EmployeeRecord {
                id: parse_id(r.text(0)?)?,
                created_at: from_ts(r.int(1)?)?,
                revoked: change_from_row(&r, 2)?,
            })
        })
        .transpose()
    })
}

pub(super) fn revoke(
    db: &impl Db,
    id: &EmployeeId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<Vec<DeviceId>, RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE employees SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3,
                revoke_note = ?4 WHERE id = ?5",
            &[
                ts(change.at).into(),
                (&change.by).into(),
                (&change.reason).into(),
                (&change.note).into(),
                id.as_str().into(),
            ],
            || format!("employee {id}"),
        )?;
        let in_service = sql.query_all(
            "SELECT id FROM devices WHERE employee_id = ?1
             AND status IN ('pending', 'active') ORDER BY id",
            &[id.as_str().into()],
            |r| parse_id::<DeviceId>(r.text(0)?),
        )?;
        for device in &in_service {
            devices::end_in(
                sql,
                device,
                EndOfService::Revoke,
                change,
                CrlReason::AffiliationChanged,
            )?;
        }
        actions::insert(sql, action)?;
        Ok(in_service)
    })
}

pub(super) fn reinstate(
    db: &impl Db,
    id: &EmployeeId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE employees SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL,
                revoke_note = NULL WHERE id = ?1",
            &[id.as_str().into()],
            || format!("employee {id}"),
        )?;
        actions::insert(sql, action)
    })
}
