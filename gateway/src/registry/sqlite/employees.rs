//! Employees: the telework of each, ended and reinstated with all their devices.

use rusqlite::params;
use ztgw_pki::{CrlReason, DeviceId, EmployeeId};

use super::SqliteRegistry;
use super::actions::insert_action;
use super::codec::*;
use super::devices::end_device_in;
use crate::registry::{ActionRecord, EmployeeRecord, EndOfService, RegistryError, StatusChange};

pub(super) fn employee(
    reg: &SqliteRegistry,
    id: &EmployeeId,
) -> Result<Option<EmployeeRecord>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            "SELECT id, created_at, revoked_at, revoked_by, revoke_reason, revoke_note
             FROM employees WHERE id = ?1",
            params![id.as_str()],
            |r| {
                Ok(EmployeeRecord {
                    id: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
                    created_at: from_ts(r.get(1).map_err(storage)?)?,
                    revoked: change_from_row(r, 2)?,
                })
            },
        )
    })
}

pub(super) fn revoke_employee(
    reg: &SqliteRegistry,
    id: &EmployeeId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<Vec<DeviceId>, RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE employees SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3,
                    revoke_note = ?4 WHERE id = ?5",
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
            return Err(RegistryError::NotFound(format!("employee {id}")));
        }
        let devices: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id FROM devices WHERE employee_id = ?1
                     AND status IN ('pending', 'active') ORDER BY id",
                )
                .map_err(storage)?;
            let rows = stmt
                .query_map(params![id.as_str()], |r| r.get(0))
                .map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)?
        };
        let mut ended = Vec::with_capacity(devices.len());
        for device in devices {
            let device = parse_id::<DeviceId>(device)?;
            end_device_in(
                tx,
                &device,
                EndOfService::Revoke,
                change,
                CrlReason::AffiliationChanged,
            )?;
            ended.push(device);
        }
        insert_action(tx, action)?;
        Ok(ended)
    })
}

pub(super) fn reinstate_employee(
    reg: &SqliteRegistry,
    id: &EmployeeId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE employees SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL,
                    revoke_note = NULL WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(storage)?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("employee {id}")));
        }
        insert_action(tx, action)
    })
}
