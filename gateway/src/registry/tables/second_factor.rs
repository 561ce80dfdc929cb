//! Second factor: the TOTP secret and last step used per device, failures and lockouts.

use ztgw_pki::DeviceId;

use super::actions;
use crate::registry::sql::Db;
use crate::registry::values::{from_ts, ts};
use crate::registry::{ActionRecord, RegistryError};
use crate::session::factor::Attempts;

pub(super) fn secret(
    db: &impl Db,
    device: &DeviceId,
) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            "SELECT secret, last_step FROM totp WHERE device = ?1",
            &[device.as_str().into()],
        )?
        .map(|r| Ok((r.bytes(0)?, r.int(1)?.max(0).unsigned_abs())))
        .transpose()
    })
}

/// Records `step` as used if it is later than the last one; false for a replay.
pub(super) fn use_step(db: &impl Db, device: &DeviceId, step: u64) -> Result<bool, RegistryError> {
    let step = i64::try_from(step).map_err(|_| RegistryError::Storage(format!("step {step}")))?;
    db.write(|sql| {
        let changed = sql.execute(
            "UPDATE totp SET last_step = ?2 WHERE device = ?1 AND last_step < ?2",
            &[device.as_str().into(), step.into()],
        )?;
        Ok(changed == 1)
    })
}

pub(super) fn attempts(db: &impl Db, device: &DeviceId) -> Result<Attempts, RegistryError> {
    db.read(|sql| {
        let Some(r) = sql.query_opt(
            "SELECT failures, last_failure, locked_until FROM totp_failures WHERE device = ?1",
            &[device.as_str().into()],
        )?
        else {
            return Ok(Attempts::default());
        };
        Ok(Attempts {
            failures: u32::try_from(r.int(0)?.max(0)).unwrap_or(u32::MAX),
            last_failure: r.opt_int(1)?.map(from_ts).transpose()?,
            locked_until: r.opt_int(2)?.map(from_ts).transpose()?,
        })
    })
}

pub(super) fn set_attempts(
    db: &impl Db,
    device: &DeviceId,
    a: &Attempts,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        sql.execute(
            "INSERT INTO totp_failures (device, failures, last_failure, locked_until)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device) DO UPDATE SET failures = excluded.failures,
                last_failure = excluded.last_failure, locked_until = excluded.locked_until",
            &[
                device.as_str().into(),
                i64::from(a.failures).into(),
                a.last_failure.map(ts).into(),
                a.locked_until.map(ts).into(),
            ],
        )?;
        Ok(())
    })
}

pub(super) fn unlock(
    db: &impl Db,
    device: &DeviceId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        sql.execute(
            "DELETE FROM totp_failures WHERE device = ?1",
            &[device.as_str().into()],
        )?;
        actions::insert(sql, action)
    })
}
