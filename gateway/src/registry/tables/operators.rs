//! Web console operators: their role and current certificate, added and revoked. Names are
//! never reused: a revoked operator's certificate stays in the CRL until it expires, under
//! its own name.

use ztgw_pki::{OperatorName, SerialNumber};

use super::{actions, change_from_row, update_one};
use crate::registry::sql::{Db, Row};
use crate::registry::values::{from_ts, parse_id, ts};
use crate::registry::{ActionRecord, OperatorRecord, RegistryError, StatusChange};

const SELECT: &str = "SELECT name, role, serial, not_after, added_at, added_by, add_reason,
    add_note, revoked_at, revoked_by, revoke_reason, revoke_note FROM operators";

pub(super) fn add(
    db: &impl Db,
    o: &OperatorRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        let inserted = sql.execute(
            "INSERT INTO operators (name, role, serial, not_after, added_at, added_by,
                add_reason, add_note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            &[
                o.name.as_str().into(),
                o.role.as_str().into(),
                o.serial.as_bytes().into(),
                ts(o.not_after).into(),
                ts(o.added.at).into(),
                (&o.added.by).into(),
                (&o.added.reason).into(),
                (&o.added.note).into(),
            ],
        )?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("operator {}", o.name)));
        }
        actions::insert(sql, action)
    })
}

pub(super) fn one(
    db: &impl Db,
    name: &OperatorName,
) -> Result<Option<OperatorRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            &format!("{SELECT} WHERE name = ?1"),
            &[name.as_str().into()],
        )?
        .map(|r| decode(&r))
        .transpose()
    })
}

pub(super) fn all(db: &impl Db) -> Result<Vec<OperatorRecord>, RegistryError> {
    db.read(|sql| sql.query_all(&format!("{SELECT} ORDER BY name"), &[], decode))
}

pub(super) fn revoke(
    db: &impl Db,
    name: &OperatorName,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        update_one(
            sql,
            "UPDATE operators SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3,
                revoke_note = ?4
             WHERE name = ?5 AND revoked_at IS NULL",
            &[
                ts(change.at).into(),
                (&change.by).into(),
                (&change.reason).into(),
                (&change.note).into(),
                name.as_str().into(),
            ],
            || format!("active operator {name}"),
        )?;
        actions::insert(sql, action)
    })
}

fn decode(r: &Row) -> Result<OperatorRecord, RegistryError> {
    Ok(OperatorRecord {
        name: parse_id(r.text(0)?)?,
        role: r
            .text(1)?
            .parse()
            .map_err(|e: String| RegistryError::Corrupt(e))?,
        serial: SerialNumber::from_slice(&r.bytes(2)?),
        not_after: from_ts(r.int(3)?)?,
        added: change_from_row(r, 4)?
            .ok_or_else(|| RegistryError::Corrupt("operator without addition".into()))?,
        revoked: change_from_row(r, 8)?,
    })
}
