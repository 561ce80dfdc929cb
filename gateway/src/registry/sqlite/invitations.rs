//! Invitations: created by the security unit, redeemed once at enrolment.

use rusqlite::{Row, params};
use ztgw_pki::{InvitationId, SecretHash};

use super::SqliteRegistry;
use super::actions::insert_action;
use super::codec::*;
use crate::registry::{ActionRecord, InvitationRecord, RegistryError};

pub(super) fn create_invitation(
    reg: &SqliteRegistry,
    inv: &InvitationRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO employees (id, created_at) VALUES (?1, ?2)",
            params![inv.employee.as_str(), ts(inv.created_at)],
        )
        .map_err(storage)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO invitations (id, employee_id, role, schedule, approved_by,
                    reference, created_by, created_at, expires_at, secret_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    inv.id.as_str(),
                    inv.employee.as_str(),
                    inv.role,
                    inv.schedule,
                    inv.approved_by,
                    inv.reference,
                    inv.created_by,
                    ts(inv.created_at),
                    ts(inv.expires_at),
                    inv.secret_hash.as_bytes().as_slice(),
                ],
            )
            .map_err(storage)?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("invitation {}", inv.id)));
        }
        insert_action(tx, action)
    })
}

pub(super) fn invitation(
    reg: &SqliteRegistry,
    id: &InvitationId,
) -> Result<Option<InvitationRecord>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            &format!("{INVITATION_SELECT} WHERE id = ?1"),
            params![id.as_str()],
            invitation_from_row,
        )
    })
}

pub(super) fn invitations(reg: &SqliteRegistry) -> Result<Vec<InvitationRecord>, RegistryError> {
    reg.with(|c| {
        query_all(
            c,
            &format!("{INVITATION_SELECT} ORDER BY created_at, id"),
            [],
            invitation_from_row,
        )
    })
}

pub(super) const INVITATION_SELECT: &str =
    "SELECT id, employee_id, role, schedule, approved_by, reference,
    created_by, created_at, expires_at, secret_hash, used_at, used_by FROM invitations";

pub(super) fn invitation_from_row(r: &Row<'_>) -> Result<InvitationRecord, RegistryError> {
    let id: String = r.get(0).map_err(storage)?;
    let hash: Vec<u8> = r.get(9).map_err(storage)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| RegistryError::Corrupt("invitation secret hash".into()))?;
    Ok(InvitationRecord {
        id: InvitationId::parse(&id)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {id:?}")))?,
        employee: parse_id(r.get::<_, String>(1).map_err(storage)?)?,
        role: r.get(2).map_err(storage)?,
        schedule: r.get(3).map_err(storage)?,
        approved_by: r.get(4).map_err(storage)?,
        reference: r.get(5).map_err(storage)?,
        created_by: r.get(6).map_err(storage)?,
        created_at: from_ts(r.get(7).map_err(storage)?)?,
        expires_at: from_ts(r.get(8).map_err(storage)?)?,
        secret_hash: SecretHash::from_bytes(hash),
        used_at: r
            .get::<_, Option<i64>>(10)
            .map_err(storage)?
            .map(from_ts)
            .transpose()?,
        used_by: r
            .get::<_, Option<String>>(11)
            .map_err(storage)?
            .map(parse_id)
            .transpose()?,
    })
}
