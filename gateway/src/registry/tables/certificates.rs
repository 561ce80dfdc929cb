//! Certificates: issued, superseded and revoked; the revocation list and its numbering.

use time::OffsetDateTime;
use ztgw_pki::{CrlReason, DeviceId, RevokedEntry, SerialNumber};

use super::actions;
use crate::registry::sql::{Db, Row, Sql, SqlError};
use crate::registry::values::{from_ts, parse_id, parse_reason, reason_str, ts};
use crate::registry::{ActionRecord, CertificateRecord, RegistryError};

pub(super) fn add(
    db: &impl Db,
    cert: &CertificateRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    db.write(|sql| {
        insert(sql, cert)?;
        actions::insert(sql, action)
    })
}

pub(super) fn one(
    db: &impl Db,
    serial: &SerialNumber,
) -> Result<Option<CertificateRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_opt(
            &format!("{SELECT} WHERE serial = ?1"),
            &[serial.as_bytes().into()],
        )?
        .map(|r| decode(&r))
        .transpose()
    })
}

pub(super) fn of(db: &impl Db, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError> {
    db.read(|sql| {
        sql.query_all(
            &format!("{SELECT} WHERE device_id = ?1 ORDER BY issued_at, serial"),
            &[device.as_str().into()],
            decode,
        )
    })
}

/// Revoked certificates not yet expired at `now` (devices' and auditors'): what the CRL
/// lists.
pub(super) fn revoked(
    db: &impl Db,
    now: OffsetDateTime,
) -> Result<Vec<RevokedEntry>, RegistryError> {
    db.read(|sql| {
        let mut out: Vec<RevokedEntry> = sql
            .query_all(
                &format!(
                    "{SELECT} WHERE revoked_at IS NOT NULL AND not_after > ?1 ORDER BY serial"
                ),
                &[ts(now).into()],
                decode,
            )?
            .into_iter()
            .filter_map(|cert| {
                cert.revoked.map(|(revoked_at, reason)| RevokedEntry {
                    serial: cert.serial,
                    revoked_at,
                    reason,
                })
            })
            .collect();
        for table in ["auditors", "operators"] {
            out.extend(sql.query_all(
                &format!(
                    "SELECT serial, revoked_at FROM {table}
                     WHERE revoked_at IS NOT NULL AND not_after > ?1"
                ),
                &[ts(now).into()],
                |r| {
                    Ok(RevokedEntry {
                        serial: SerialNumber::from_slice(&r.bytes(0)?),
                        revoked_at: from_ts(r.int(1)?)?,
                        reason: CrlReason::AffiliationChanged,
                    })
                },
            )?);
        }
        Ok(out)
    })
}

pub(super) fn next_crl_number(db: &impl Db) -> Result<u64, RegistryError> {
    db.write(|sql| {
        let n = sql
            .query_opt(
                "UPDATE meta SET value = value + 1 WHERE key = 'crl_number' RETURNING value",
                &[],
            )?
            .ok_or_else(|| RegistryError::Corrupt("no crl number".into()))?
            .int(0)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt(format!("crl number {n}")))
    })
}

pub(super) fn supersede(
    db: &impl Db,
    device: &DeviceId,
    serials: &[SerialNumber],
    at: OffsetDateTime,
    action: &ActionRecord,
) -> Result<usize, RegistryError> {
    db.write(|sql| {
        let mut revoked = 0;
        for serial in serials {
            revoked += sql.execute(
                "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
                 WHERE serial = ?3 AND device_id = ?4 AND revoked_at IS NULL",
                &[
                    ts(at).into(),
                    reason_str(CrlReason::Superseded).into(),
                    serial.as_bytes().into(),
                    device.as_str().into(),
                ],
            )?;
        }
        if revoked > 0 {
            actions::insert(sql, action)?;
        }
        Ok(usize::try_from(revoked).unwrap_or(usize::MAX))
    })
}

/// Records a certificate, in the caller's transaction.
pub(super) fn insert(sql: &mut dyn Sql, c: &CertificateRecord) -> Result<(), RegistryError> {
    sql.execute(
        "INSERT INTO certificates (serial, device_id, not_before, not_after, issued_at, revoked_at,
            revocation_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            c.serial.as_bytes().into(),
            c.device.as_str().into(),
            ts(c.not_before).into(),
            ts(c.not_after).into(),
            ts(c.issued_at).into(),
            c.revoked.map(|(at, _)| ts(at)).into(),
            c.revoked.map(|(_, r)| reason_str(r)).into(),
        ],
    )
    .map_err(|e| match e {
        SqlError::Unique => RegistryError::Duplicate(format!("certificate {}", c.serial)),
        other => other.into(),
    })?;
    Ok(())
}

const SELECT: &str = "SELECT serial, device_id, not_before, not_after, issued_at, revoked_at,
    revocation_reason FROM certificates";

fn decode(r: &Row) -> Result<CertificateRecord, RegistryError> {
    let revoked = match (r.opt_int(5)?, r.opt_text(6)?) {
        (Some(at), Some(reason)) => Some((from_ts(at)?, parse_reason(&reason)?)),
        (None, None) => None,
        _ => {
            return Err(RegistryError::Corrupt(
                "certificate revocation half set".into(),
            ));
        }
    };
    Ok(CertificateRecord {
        serial: SerialNumber::from_slice(&r.bytes(0)?),
        device: parse_id(r.text(1)?)?,
        not_before: from_ts(r.int(2)?)?,
        not_after: from_ts(r.int(3)?)?,
        issued_at: from_ts(r.int(4)?)?,
        revoked,
    })
}
