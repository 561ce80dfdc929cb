//! The administrative actions' record, written in the same transaction as the change it records.

use rusqlite::{Transaction, params};

use super::SqliteRegistry;
use super::codec::*;
use crate::registry::{ActionRecord, RegistryError};

pub(super) fn record_action(
    reg: &SqliteRegistry,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| insert_action(tx, action))
}

pub(super) fn actions(reg: &SqliteRegistry) -> Result<Vec<ActionRecord>, RegistryError> {
    reg.with(|c| {
        query_all(
            c,
            "SELECT at, operator, action, target, detail FROM actions ORDER BY seq",
            [],
            |r| {
                Ok(ActionRecord {
                    at: from_ts(r.get(0).map_err(storage)?)?,
                    operator: r.get(1).map_err(storage)?,
                    action: r.get(2).map_err(storage)?,
                    target: r.get(3).map_err(storage)?,
                    detail: r.get(4).map_err(storage)?,
                })
            },
        )
    })
}

pub(super) fn insert_action(tx: &Transaction<'_>, a: &ActionRecord) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO actions (at, operator, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ts(a.at), a.operator, a.action, a.target, a.detail],
    )
    .map_err(storage)?;
    Ok(())
}
