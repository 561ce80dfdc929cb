//! The administrative actions' record, written in the same transaction as the change it
//! records.

use crate::registry::sql::{Db, Sql};
use crate::registry::values::{from_ts, ts};
use crate::registry::{ActionRecord, RegistryError};

pub(super) fn all(db: &impl Db) -> Result<Vec<ActionRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_all(
            "SELECT at, operator, action, target, detail FROM actions ORDER BY seq",
            &[],
            |r| {
                Ok(ActionRecord {
                    at: from_ts(r.int(0)?)?,
                    operator: r.text(1)?,
                    action: r.text(2)?,
                    target: r.text(3)?,
                    detail: r.text(4)?,
                })
            },
        )
    })
}

pub(super) fn insert(sql: &mut dyn Sql, a: &ActionRecord) -> Result<(), RegistryError> {
    sql.execute(
        "INSERT INTO actions (at, operator, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            ts(a.at).into(),
            (&a.operator).into(),
            (&a.action).into(),
            (&a.target).into(),
            (&a.detail).into(),
        ],
    )?;
    Ok(())
}
