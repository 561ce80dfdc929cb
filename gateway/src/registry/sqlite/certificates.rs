//! Certificates: issued, superseded and revoked; the revocation list and its numbering.

use rusqlite::{Row, Transaction, params};
use time::OffsetDateTime;
use ztgw_pki::{CrlReason, DeviceId, RevokedEntry, SerialNumber};

use super::SqliteRegistry;
use super::actions::insert_action;
use super::codec::*;
use crate::registry::{ActionRecord, CertificateRecord, RegistryError};

pub(super) fn add_certificate(
    reg: &SqliteRegistry,
    cert: &CertificateRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        insert_certificate(tx, cert)?;
        insert_action(tx, action)
    })
}

pub(super) fn certificate(
    reg: &SqliteRegistry,
    serial: &SerialNumber,
) -> Result<Option<CertificateRecord>, RegistryError> {
    reg.with(|c| {
        query_opt(
            c,
            &format!("{CERT_SELECT} WHERE serial = ?1"),
            params![serial.as_bytes()],
            certificate_from_row,
        )
    })
}

pub(super) fn certificates_of(
    reg: &SqliteRegistry,
    device: &DeviceId,
) -> Result<Vec<CertificateRecord>, RegistryError> {
    reg.with(|c| {
        query_all(
            c,
            &format!("{CERT_SELECT} WHERE device_id = ?1 ORDER BY issued_at, serial"),
            params![device.as_str()],
            certificate_from_row,
        )
    })
}

pub(super) fn revoked_certificates(
    reg: &SqliteRegistry,
    now: OffsetDateTime,
) -> Result<Vec<RevokedEntry>, RegistryError> {
    reg.with(|c| {
        let mut stmt = c
            .prepare(&format!(
                "{CERT_SELECT} WHERE revoked_at IS NOT NULL AND not_after > ?1 ORDER BY serial"
            ))
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![ts(now)], |r| Ok(certificate_from_row(r)))
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let cert = row.map_err(storage)??;
            if let Some((revoked_at, reason)) = cert.revoked {
                out.push(RevokedEntry {
                    serial: cert.serial,
                    revoked_at,
                    reason,
                });
            }
        }
        let mut stmt = c
            .prepare("SELECT serial, revoked_at FROM auditors WHERE revoked_at IS NOT NULL AND not_after > ?1")
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![ts(now)], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
            .map_err(storage)?;
        for row in rows {
            let (serial, at) = row.map_err(storage)?;
            out.push(RevokedEntry {
                serial: SerialNumber::from_slice(&serial),
                revoked_at: from_ts(at)?,
                reason: CrlReason::AffiliationChanged,
            });
        }
        Ok(out)
    })
}

pub(super) fn next_crl_number(reg: &SqliteRegistry) -> Result<u64, RegistryError> {
    reg.in_transaction(|tx| {
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'crl_number'",
            [],
        )
        .map_err(storage)?;
        let n: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'crl_number'", [], |r| {
                r.get(0)
            })
            .map_err(storage)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt(format!("crl number {n}")))
    })
}

pub(super) fn supersede_certificates(
    reg: &SqliteRegistry,
    device: &DeviceId,
    serials: &[SerialNumber],
    at: OffsetDateTime,
    action: &ActionRecord,
) -> Result<usize, RegistryError> {
    reg.in_transaction(|tx| {
        let mut revoked = 0;
        for serial in serials {
            revoked += tx
                .execute(
                    "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
                     WHERE serial = ?3 AND device_id = ?4 AND revoked_at IS NULL",
                    params![
                        ts(at),
                        reason_str(CrlReason::Superseded),
                        serial.as_bytes(),
                        device.as_str()
                    ],
                )
                .map_err(storage)?;
        }
        if revoked > 0 {
            insert_action(tx, action)?;
        }
        Ok(revoked)
    })
}

pub(super) fn insert_certificate(
    tx: &Transaction<'_>,
    c: &CertificateRecord,
) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO certificates (serial, device_id, not_before, not_after, issued_at, revoked_at,
            revocation_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            c.serial.as_bytes(),
            c.device.as_str(),
            ts(c.not_before),
            ts(c.not_after),
            ts(c.issued_at),
            c.revoked.map(|(at, _)| ts(at)),
            c.revoked.map(|(_, r)| reason_str(r)),
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            RegistryError::Duplicate(format!("certificate {}", c.serial))
        }
        other => storage(other),
    })?;
    Ok(())
}

pub(super) const CERT_SELECT: &str =
    "SELECT serial, device_id, not_before, not_after, issued_at, revoked_at,
    revocation_reason FROM certificates";

pub(super) fn certificate_from_row(r: &Row<'_>) -> Result<CertificateRecord, RegistryError> {
    let serial: Vec<u8> = r.get(0).map_err(storage)?;
    let revoked_at: Option<i64> = r.get(5).map_err(storage)?;
    let reason: Option<String> = r.get(6).map_err(storage)?;
    let revoked = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some((from_ts(at)?, parse_reason(&reason)?)),
        (None, None) => None,
        _ => {
            return Err(RegistryError::Corrupt(
                "certificate revocation half set".into(),
            ));
        }
    };
    Ok(CertificateRecord {
        serial: SerialNumber::from_slice(&serial),
        device: parse_id(r.get::<_, String>(1).map_err(storage)?)?,
        not_before: from_ts(r.get(2).map_err(storage)?)?,
        not_after: from_ts(r.get(3).map_err(storage)?)?,
        issued_at: from_ts(r.get(4).map_err(storage)?)?,
        revoked,
    })
}
