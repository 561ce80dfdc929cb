//! The policy in force on every gateway of the registry (its text and hash), and every
//! policy ever put in force, by hash.

use super::actions;
use crate::registry::sql::Db;
use crate::registry::values::{from_ts, ts};
use crate::registry::{ActionRecord, RegistryError, StoredPolicy};

pub(super) fn put(
    db: &impl Db,
    p: &StoredPolicy,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        sql.execute("UPDATE policies SET in_force = 0 WHERE in_force = 1", &[])?;
        sql.execute(
            "DELETE FROM policies WHERE sha256 = ?1",
            &[p.sha256.as_str().into()],
        )?;
        sql.execute(
            "INSERT INTO policies (sha256, text, loaded_at, loaded_by, in_force)
             VALUES (?1, ?2, ?3, ?4, 1)",
            &[
                p.sha256.as_str().into(),
                p.text.as_str().into(),
                ts(p.loaded_at).into(),
                p.loaded_by.as_str().into(),
            ],
        )?;
        actions::insert(sql, action)
    })
}

pub(super) fn in_force(db: &impl Db) -> Result<Option<StoredPolicy>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            "SELECT sha256, text, loaded_at, loaded_by FROM policies WHERE in_force = 1",
            &[],
        )?
        .map(|r| {
            Ok(StoredPolicy {
                sha256: r.text(0)?,
                text: r.text(1)?,
                loaded_at: from_ts(r.int(2)?)?,
                loaded_by: r.text(3)?,
            })
        })
        .transpose()
    })
}

/// The registry's revision: actions recorded plus sessions replaced across gateways.
pub(super) fn revision(db: &impl Db) -> Result<i64, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM actions)
                  + (SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'replacements')",
            &[],
        )?
        .map_or(Ok(0), |r| r.int(0))
    })
}
