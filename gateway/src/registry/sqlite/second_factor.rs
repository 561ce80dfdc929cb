//! Second factor: the TOTP secret and last step used per device, failures and lockouts.

use ztgw_pki::DeviceId;

use super::SqliteRegistry;
use super::actions::insert_action;
use super::codec::*;
use crate::registry::{ActionRecord, RegistryError};

pub(super) fn totp(
    reg: &SqliteRegistry,
    device: &DeviceId,
) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            "SELECT secret, last_step FROM totp WHERE device = ?1",
            [device.as_str()],
            |r| {
                let step: i64 = r.get(1).map_err(storage)?;
                Ok((r.get(0).map_err(storage)?, step.max(0) as u64))
            },
        )
    })
}

pub(super) fn use_totp_step(
    reg: &SqliteRegistry,
    device: &DeviceId,
    step: u64,
) -> Result<bool, RegistryError> {
    reg.with(|c| {
        let changed = c
            .execute(
                "UPDATE totp SET last_step = ?2 WHERE device = ?1 AND last_step < ?2",
                rusqlite::params![device.as_str(), step as i64],
            )
            .map_err(storage)?;
        Ok(changed == 1)
    })
}

pub(super) fn factor_attempts(
    reg: &SqliteRegistry,
    device: &DeviceId,
) -> Result<crate::session::factor::Attempts, RegistryError> {
    reg.with(|c| {
        let row = query_opt(
            c,
            "SELECT failures, last_failure, locked_until FROM totp_failures WHERE device = ?1",
            [device.as_str()],
            |r| {
                let failures: i64 = r.get(0).map_err(storage)?;
                let last: Option<i64> = r.get(1).map_err(storage)?;
                let locked: Option<i64> = r.get(2).map_err(storage)?;
                Ok(crate::session::factor::Attempts {
                    failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
                    last_failure: last.map(from_ts).transpose()?,
                    locked_until: locked.map(from_ts).transpose()?,
                })
            },
        )?;
        Ok(row.unwrap_or_default())
    })
}

pub(super) fn set_factor_attempts(
    reg: &SqliteRegistry,
    device: &DeviceId,
    a: &crate::session::factor::Attempts,
) -> Result<(), RegistryError> {
    reg.with(|c| {
        c.execute(
            "INSERT INTO totp_failures (device, failures, last_failure, locked_until)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device) DO UPDATE SET failures = ?2, last_failure = ?3, locked_until = ?4",
            rusqlite::params![
                device.as_str(),
                i64::from(a.failures),
                a.last_failure.map(ts),
                a.locked_until.map(ts)
            ],
        )
        .map_err(storage)?;
        Ok(())
    })
}

pub(super) fn unlock_factor(
    reg: &SqliteRegistry,
    device: &DeviceId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        tx.execute(
            "DELETE FROM totp_failures WHERE device = ?1",
            [device.as_str()],
        )
        .map_err(storage)?;
        insert_action(tx, action)
    })
}
