//! Invitations: created by the security unit, redeemed once at enrolment.

use ztgw_pki::{InvitationId, SecretHash};

use super::actions;
use crate::registry::sql::{Db, Row};
use crate::registry::values::{from_ts, parse_id, ts};
use crate::registry::{ActionRecord, InvitationRecord, RegistryError};

pub(super) fn create(
    db: &impl Db,
    inv: &InvitationRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        sql.execute(
            "INSERT INTO employees (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[inv.employee.as_str().into(), ts(inv.created_at).into()],
        )?;
        let inserted = sql.execute(
            "INSERT INTO invitations (id, employee_id, role, schedule, approved_by,
                reference, created_by, created_at, expires_at, secret_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            &[
                inv.id.as_str().into(),
                inv.employee.as_str().into(),
                (&inv.role).into(),
                (&inv.schedule).into(),
                (&inv.approved_by).into(),
                (&inv.reference).into(),
                (&inv.created_by).into(),
                ts(inv.created_at).into(),
                ts(inv.expires_at).into(),
                inv.secret_hash.as_bytes().as_slice().into(),
            ],
        )?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("invitation {}", inv.id)));
        }
        actions::insert(sql, action)
    })
}

pub(super) fn one(
    db: &impl Db,
    id: &InvitationId,
) -> Result<Option<InvitationRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(&format!("{SELECT} WHERE id = ?1"), &[id.as_str().into()])?
            .map(|r| decode(&r))
            .transpose()
    })
}

pub(super) fn all(db: &impl Db) -> Result<Vec<InvitationRecord>, RegistryError> {
    db.read(|sql| sql.query_all(&format!("{SELECT} ORDER BY created_at, id"), &[], decode))
}

const SELECT: &str = "SELECT id, employee_id, role, schedule, approved_by, reference,
    created_by, created_at, expires_at, secret_hash, used_at, used_by FROM invitations";

fn decode(r: &Row) -> Result<InvitationRecord, RegistryError> {
    let id = r.text(0)?;
    let hash: [u8; 32] = r
        .bytes(9)?
        .try_into()
        .map_err(|_| RegistryError::Corrupt("invitation secret hash".into()))?;
    Ok(InvitationRecord {
        id: InvitationId::parse(&id)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {id:?}")))?,
        employee: parse_id(r.text(1)?)?,
        role: r.text(2)?,
        schedule: r.opt_text(3)?,
        approved_by: r.text(4)?,
        reference: r.text(5)?,
        created_by: r.text(6)?,
        created_at: from_ts(r.int(7)?)?,
        expires_at: from_ts(r.int(8)?)?,
        secret_hash: SecretHash::from_bytes(hash),
        used_at: r.opt_int(10)?.map(from_ts).transpose()?,
        used_by: r.opt_text(11)?.map(parse_id).transpose()?,
    })
}
