//! Emergency schedule overrides, one a target (a role or an employee), shared by every
//! gateway of the registry.

use super::actions;
use crate::registry::sql::Db;
use crate::registry::values::{from_ts, ts};
use crate::registry::{ActionRecord, OverrideRecord, RegistryError};

pub(super) fn set(
    db: &impl Db,
    o: &OverrideRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        sql.execute(
            "DELETE FROM overrides WHERE target = ?1",
            &[o.target.as_str().into()],
        )?;
        sql.execute(
            "INSERT INTO overrides (target, until, reason, operator) VALUES (?1, ?2, ?3, ?4)",
            &[
                o.target.as_str().into(),
                ts(o.until).into(),
                o.reason.as_str().into(),
                o.operator.as_str().into(),
            ],
        )?;
        actions::insert(sql, action)
    })
}

pub(super) fn in_force(
    db: &impl Db,
    now: time::OffsetDateTime,
) -> Result<Vec<OverrideRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_all(
            "SELECT target, until, reason, operator FROM overrides WHERE until > ?1 ORDER BY target",
            &[ts(now).into()],
            |r| {
                Ok(OverrideRecord {
                    target: r.text(0)?,
                    until: from_ts(r.int(1)?)?,
                    reason: r.text(2)?,
                    operator: r.text(3)?,
                })
            },
        )
    })
}
