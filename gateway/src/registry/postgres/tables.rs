//! The registry's tables on PostgreSQL: the schema (migration 1, the SQLite registry's
//! tables in PostgreSQL's types) and every operation, each change in one transaction
//! with its action record. Times are Unix seconds (`BIGINT`), as in SQLite.

use postgres::error::SqlState;
use postgres::{GenericClient, Row};
use time::OffsetDateTime;
use ztgw_pki::wire::{DeviceStatus, Ownership};
use ztgw_pki::{
    AuditorName, CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SecretHash,
    SerialNumber, WgPublicKey,
};

use super::{PgRegistry, pg};
use crate::registry::values::{from_ts, parse_id, parse_reason, reason_str, ts};
use crate::registry::{
    ActionRecord, AuditorRecord, CertificateRecord, DeviceRecord, EmployeeRecord, EndOfService,
    Enrolment, InvitationRecord, RegistryError, StatusChange,
};
use crate::session::factor::Attempts;

pub(super) const SCHEMA_1: &str = r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('crl_number', 0);
CREATE TABLE employees (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    approved_by TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    secret_hash BYTEA NOT NULL,
    used_at BIGINT,
    used_by TEXT
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    invitation_id TEXT NOT NULL UNIQUE REFERENCES invitations(id),
    hostname TEXT NOT NULL,
    os TEXT NOT NULL,
    ownership TEXT NOT NULL,
    wg_key BYTEA NOT NULL,
    status TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    approved_at BIGINT,
    approved_by TEXT,
    approve_reason TEXT,
    approve_note TEXT,
    ended_at BIGINT,
    ended_by TEXT,
    end_reason TEXT,
    end_note TEXT
);
CREATE UNIQUE INDEX devices_wg_key_in_service
    ON devices(wg_key) WHERE status IN ('pending', 'active');
CREATE INDEX devices_employee ON devices(employee_id);
CREATE TABLE certificates (
    serial BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revocation_reason TEXT
);
CREATE INDEX certificates_device ON certificates(device_id);
CREATE TABLE auditors (
    name TEXT PRIMARY KEY,
    serial BYTEA NOT NULL UNIQUE,
    not_after BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE totp (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    secret BYTEA NOT NULL,
    last_step BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE totp_failures (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    failures BIGINT NOT NULL,
    last_failure BIGINT,
    locked_until BIGINT
);
CREATE TABLE actions (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

// Invitations.

pub(super) fn create_invitation(
    reg: &PgRegistry,
    inv: &InvitationRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        tx.execute(
            "INSERT INTO employees (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&inv.employee.as_str(), &ts(inv.created_at)],
        )
        .map_err(|e| pg(&e))?;
        let inserted = tx
            .execute(
                "INSERT INTO invitations (id, employee_id, role, schedule, approved_by,
                    reference, created_by, created_at, expires_at, secret_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[
                    &inv.id.as_str(),
                    &inv.employee.as_str(),
                    &inv.role,
                    &inv.schedule,
                    &inv.approved_by,
                    &inv.reference,
                    &inv.created_by,
                    &ts(inv.created_at),
                    &ts(inv.expires_at),
                    &inv.secret_hash.as_bytes().as_slice(),
                ],
            )
            .map_err(|e| pg(&e))?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("invitation {}", inv.id)));
        }
        insert_action(tx, action)
    })
}

pub(super) fn invitation(
    reg: &PgRegistry,
    id: &InvitationId,
) -> Result<Option<InvitationRecord>, RegistryError> {
    reg.with(|c| {
        c.query_opt(
            &format!("{INVITATION_SELECT} WHERE id = $1"),
            &[&id.as_str()],
        )
        .map_err(|e| pg(&e))?
        .map(|r| invitation_from_row(&r))
        .transpose()
    })
}

pub(super) fn invitations(reg: &PgRegistry) -> Result<Vec<InvitationRecord>, RegistryError> {
    reg.with(|c| {
        all(
            c,
            &format!("{INVITATION_SELECT} ORDER BY created_at, id"),
            &[],
            invitation_from_row,
        )
    })
}

const INVITATION_SELECT: &str = "SELECT id, employee_id, role, schedule, approved_by, reference,
    created_by, created_at, expires_at, secret_hash, used_at, used_by FROM invitations";

fn invitation_from_row(r: &Row) -> Result<InvitationRecord, RegistryError> {
    let id: String = get(r, 0)?;
    let hash: Vec<u8> = get(r, 9)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| RegistryError::Corrupt("invitation secret hash".into()))?;
    Ok(InvitationRecord {
        id: InvitationId::parse(&id)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {id:?}")))?,
        employee: parse_id(get(r, 1)?)?,
        role: get(r, 2)?,
        schedule: get(r, 3)?,
        approved_by: get(r, 4)?,
        reference: get(r, 5)?,
        created_by: get(r, 6)?,
        created_at: from_ts(get(r, 7)?)?,
        expires_at: from_ts(get(r, 8)?)?,
        secret_hash: SecretHash::from_bytes(hash),
        used_at: get::<Option<i64>>(r, 10)?.map(from_ts).transpose()?,
        used_by: get::<Option<String>>(r, 11)?.map(parse_id).transpose()?,
    })
}

// Devices.

pub(super) fn complete_enrolment(
    reg: &PgRegistry,
    e: &Enrolment,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    let d = &e.device;
    reg.in_transaction(|tx| {
        let marked = tx
            .execute(
                "UPDATE invitations SET used_at = $1, used_by = $2
                 WHERE id = $3 AND used_at IS NULL",
                &[&ts(d.enrolled_at), &d.id.as_str(), &e.invitation.as_str()],
            )
            .map_err(|e| pg(&e))?;
        if marked == 0 {
            return Err(RegistryError::InvitationAlreadyUsed);
        }
        let holder = tx
            .query_opt(
                "SELECT id FROM devices WHERE wg_key = $1 AND status IN ('pending', 'active')",
                &[&d.wg_key.as_bytes().as_slice()],
            )
            .map_err(|e| pg(&e))?;
        if let Some(holder) = holder {
            return Err(RegistryError::WgKeyInUse(get(&holder, 0)?));
        }
        tx.execute(
            "INSERT INTO devices (id, employee_id, role, schedule, invitation_id, hostname, os,
                ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason,
                approve_note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &d.id.as_str(),
                &d.employee.as_str(),
                &d.role,
                &d.schedule,
                &e.invitation.as_str(),
                &d.hostname,
                &d.os,
                &d.ownership.as_str(),
                &d.wg_key.as_bytes().as_slice(),
                &d.status.as_str(),
                &ts(d.enrolled_at),
                &d.approved.as_ref().map(|a| ts(a.at)),
                &d.approved.as_ref().map(|a| a.by.clone()),
                &d.approved.as_ref().map(|a| a.reason.clone()),
                &d.approved.as_ref().and_then(|a| a.note.clone()),
            ],
        )
        .map_err(|err| match err.code() {
            // Another enrolment took the key meanwhile (the partial unique index).
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                RegistryError::WgKeyInUse("another device".into())
            }
            _ => pg(&err),
        })?;
        insert_certificate(tx, &e.certificate)?;
        tx.execute(
            "INSERT INTO totp (device, secret, last_step) VALUES ($1, $2, 0)",
            &[&d.id.as_str(), &e.totp_secret.expose().as_slice()],
        )
        .map_err(|e| pg(&e))?;
        insert_action(tx, action)
    })
}

pub(super) fn device(
    reg: &PgRegistry,
    id: &DeviceId,
) -> Result<Option<DeviceRecord>, RegistryError> {
    reg.with(|c| {
        c.query_opt(&format!("{DEVICE_SELECT} WHERE id = $1"), &[&id.as_str()])
            .map_err(|e| pg(&e))?
            .map(|r| device_from_row(&r))
            .transpose()
    })
}

pub(super) fn devices(reg: &PgRegistry) -> Result<Vec<DeviceRecord>, RegistryError> {
    reg.with(|c| {
        all(
            c,
            &format!("{DEVICE_SELECT} ORDER BY enrolled_at, id"),
            &[],
            device_from_row,
        )
    })
}

pub(super) fn approve_device(
    reg: &PgRegistry,
    id: &DeviceId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE devices SET status = 'active', approved_at = $1, approved_by = $2,
                    approve_reason = $3, approve_note = $4
                 WHERE id = $5 AND status = 'pending'",
                &[
                    &ts(change.at),
                    &change.by,
                    &change.reason,
                    &change.note,
                    &id.as_str(),
                ],
            )
            .map_err(|e| pg(&e))?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("pending device {id}")));
        }
        insert_action(tx, action)
    })
}

pub(super) fn set_device_role(
    reg: &PgRegistry,
    id: &DeviceId,
    role: &str,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE devices SET role = $1 WHERE id = $2 AND status IN ('pending', 'active')",
                &[&role, &id.as_str()],
            )
            .map_err(|e| pg(&e))?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("device in service {id}")));
        }
        insert_action(tx, action)
    })
}

pub(super) fn end_device(
    reg: &PgRegistry,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        end_device_in(tx, id, how, change, reason)?;
        insert_action(tx, action)
    })
}

fn end_device_in(
    tx: &mut postgres::Transaction<'_>,
    id: &DeviceId,
    how: EndOfService,
    change: &StatusChange,
    reason: CrlReason,
) -> Result<(), RegistryError> {
    let (status, allowed_from) = match how {
        EndOfService::Revoke => ("revoked", "('pending', 'active')"),
        EndOfService::Decommission => ("decommissioned", "('pending', 'active', 'revoked')"),
    };
    let updated = tx
        .execute(
            &format!(
                "UPDATE devices SET status = $1, ended_at = $2, ended_by = $3, end_reason = $4,
                    end_note = $5 WHERE id = $6 AND status IN {allowed_from}"
            ),
            &[
                &status,
                &ts(change.at),
                &change.by,
                &change.reason,
                &change.note,
                &id.as_str(),
            ],
        )
        .map_err(|e| pg(&e))?;
    if updated == 0 {
        return Err(RegistryError::NotFound(format!(
            "device {id} in a state that can be {status}"
        )));
    }
    tx.execute(
        "UPDATE certificates SET revoked_at = $1, revocation_reason = $2
         WHERE device_id = $3 AND revoked_at IS NULL",
        &[&ts(change.at), &reason_str(reason), &id.as_str()],
    )
    .map_err(|e| pg(&e))?;
    Ok(())
}

const DEVICE_SELECT: &str = "SELECT id, employee_id, role, schedule, invitation_id, hostname, os,
    ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason, approve_note,
    ended_at, ended_by, end_reason, end_note FROM devices";

fn device_from_row(r: &Row) -> Result<DeviceRecord, RegistryError> {
    let inv: String = get(r, 4)?;
    let ownership: String = get(r, 7)?;
    let key: Vec<u8> = get(r, 8)?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| RegistryError::Corrupt("device WireGuard key".into()))?;
    let status: String = get(r, 9)?;
    Ok(DeviceRecord {
        id: parse_id(get(r, 0)?)?,
        employee: parse_id(get(r, 1)?)?,
        role: get(r, 2)?,
        schedule: get(r, 3)?,
        invitation: InvitationId::parse(&inv)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {inv:?}")))?,
        hostname: get(r, 5)?,
        os: get(r, 6)?,
        ownership: ownership
            .parse::<Ownership>()
            .map_err(RegistryError::Corrupt)?,
        wg_key: WgPublicKey::from_bytes(key),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| RegistryError::Corrupt(format!("device status {status:?}")))?,
        enrolled_at: from_ts(get(r, 10)?)?,
        approved: change_from_row(r, 11)?,
        ended: change_from_row(r, 15)?,
    })
}

// Employees.

pub(super) fn employee(
    reg: &PgRegistry,
    id: &EmployeeId,
) -> Result<Option<EmployeeRecord>, RegistryError> {
    reg.with(|c| {
        c.query_opt(
            "SELECT id, created_at, revoked_at, revoked_by, revoke_reason, revoke_note
             FROM employees WHERE id = $1",
            &[&id.as_str()],
        )
        .map_err(|e| pg(&e))?
        .map(|r| {
            Ok(EmployeeRecord {
                id: parse_id(get(&r, 0)?)?,
                created_at: from_ts(get(&r, 1)?)?,
                revoked: change_from_row(&r, 2)?,
            })
        })
        .transpose()
    })
}

pub(super) fn revoke_employee(
    reg: &PgRegistry,
    id: &EmployeeId,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<Vec<DeviceId>, RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE employees SET revoked_at = $1, revoked_by = $2, revoke_reason = $3,
                    revoke_note = $4 WHERE id = $5",
                &[
                    &ts(change.at),
                    &change.by,
                    &change.reason,
                    &change.note,
                    &id.as_str(),
                ],
            )
            .map_err(|e| pg(&e))?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("employee {id}")));
        }
        let devices: Vec<String> = tx
            .query(
                "SELECT id FROM devices WHERE employee_id = $1
                 AND status IN ('pending', 'active') ORDER BY id",
                &[&id.as_str()],
            )
            .map_err(|e| pg(&e))?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_, _>>()?;
        let mut ended = Vec::with_capacity(devices.len());
        for device in devices {
            let device = parse_id::<DeviceId>(device)?;
            end_device_in(
                tx,
                &device,
                EndOfService::Revoke,
                change,
                CrlReason::AffiliationChanged,
            )?;
            ended.push(device);
        }
        insert_action(tx, action)?;
        Ok(ended)
    })
}

pub(super) fn reinstate_employee(
    reg: &PgRegistry,
    id: &EmployeeId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE employees SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL,
                    revoke_note = NULL WHERE id = $1",
                &[&id.as_str()],
            )
            .map_err(|e| pg(&e))?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("employee {id}")));
        }
        insert_action(tx, action)
    })
}

// Certificates.

pub(super) fn add_certificate(
    reg: &PgRegistry,
    cert: &CertificateRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        insert_certificate(tx, cert)?;
        insert_action(tx, action)
    })
}

pub(super) fn certificate(
    reg: &PgRegistry,
    serial: &SerialNumber,
) -> Result<Option<CertificateRecord>, RegistryError> {
    reg.with(|c| {
        c.query_opt(
            &format!("{CERT_SELECT} WHERE serial = $1"),
            &[&serial.as_bytes()],
        )
        .map_err(|e| pg(&e))?
        .map(|r| certificate_from_row(&r))
        .transpose()
    })
}

pub(super) fn certificates_of(
    reg: &PgRegistry,
    device: &DeviceId,
) -> Result<Vec<CertificateRecord>, RegistryError> {
    reg.with(|c| {
        all(
            c,
            &format!("{CERT_SELECT} WHERE device_id = $1 ORDER BY issued_at, serial"),
            &[&device.as_str()],
            certificate_from_row,
        )
    })
}

pub(super) fn revoked_certificates(
    reg: &PgRegistry,
    now: OffsetDateTime,
) -> Result<Vec<RevokedEntry>, RegistryError> {
    reg.with(|c| {
        let mut out = Vec::new();
        for cert in all(
            c,
            &format!("{CERT_SELECT} WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial"),
            &[&ts(now)],
            certificate_from_row,
        )? {
            if let Some((revoked_at, reason)) = cert.revoked {
                out.push(RevokedEntry {
                    serial: cert.serial,
                    revoked_at,
                    reason,
                });
            }
        }
        for r in c
            .query(
                "SELECT serial, revoked_at FROM auditors WHERE revoked_at IS NOT NULL AND not_after > $1",
                &[&ts(now)],
            )
            .map_err(|e| pg(&e))?
        {
            let serial: Vec<u8> = get(&r, 0)?;
            out.push(RevokedEntry {
                serial: SerialNumber::from_slice(&serial),
                revoked_at: from_ts(get(&r, 1)?)?,
                reason: CrlReason::AffiliationChanged,
            });
        }
        Ok(out)
    })
}

pub(super) fn next_crl_number(reg: &PgRegistry) -> Result<u64, RegistryError> {
    reg.with(|c| {
        let n: i64 = c
            .query_one(
                "UPDATE meta SET value = value + 1 WHERE key = 'crl_number' RETURNING value",
                &[],
            )
            .map_err(|e| pg(&e))
            .and_then(|r| get(&r, 0))?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt(format!("crl number {n}")))
    })
}

pub(super) fn supersede_certificates(
    reg: &PgRegistry,
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
                    "UPDATE certificates SET revoked_at = $1, revocation_reason = $2
                     WHERE serial = $3 AND device_id = $4 AND revoked_at IS NULL",
                    &[
                        &ts(at),
                        &reason_str(CrlReason::Superseded),
                        &serial.as_bytes(),
                        &device.as_str(),
                    ],
                )
                .map_err(|e| pg(&e))?;
        }
        if revoked > 0 {
            insert_action(tx, action)?;
        }
        Ok(usize::try_from(revoked).unwrap_or(usize::MAX))
    })
}

fn insert_certificate(
    tx: &mut postgres::Transaction<'_>,
    c: &CertificateRecord,
) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO certificates (serial, device_id, not_before, not_after, issued_at, revoked_at,
            revocation_reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &c.serial.as_bytes(),
            &c.device.as_str(),
            &ts(c.not_before),
            &ts(c.not_after),
            &ts(c.issued_at),
            &c.revoked.map(|(at, _)| ts(at)),
            &c.revoked.map(|(_, r)| reason_str(r)),
        ],
    )
    .map_err(|e| match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
            RegistryError::Duplicate(format!("certificate {}", c.serial))
        }
        _ => pg(&e),
    })?;
    Ok(())
}

const CERT_SELECT: &str = "SELECT serial, device_id, not_before, not_after, issued_at, revoked_at,
    revocation_reason FROM certificates";

fn certificate_from_row(r: &Row) -> Result<CertificateRecord, RegistryError> {
    let serial: Vec<u8> = get(r, 0)?;
    let revoked_at: Option<i64> = get(r, 5)?;
    let reason: Option<String> = get(r, 6)?;
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
        device: parse_id(get(r, 1)?)?,
        not_before: from_ts(get(r, 2)?)?,
        not_after: from_ts(get(r, 3)?)?,
        issued_at: from_ts(get(r, 4)?)?,
        revoked,
    })
}

// Auditors.

pub(super) fn add_auditor(
    reg: &PgRegistry,
    a: &AuditorRecord,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        // Names are never reused: a revoked auditor's certificate stays in the CRL until
        // it expires, under its own name.
        let inserted = tx
            .execute(
                "INSERT INTO auditors (name, serial, not_after, added_at, added_by, add_reason, add_note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &a.name.as_str(),
                    &a.serial.as_bytes(),
                    &ts(a.not_after),
                    &ts(a.added.at),
                    &a.added.by,
                    &a.added.reason,
                    &a.added.note,
                ],
            )
            .map_err(|e| pg(&e))?;
        if inserted == 0 {
            return Err(RegistryError::Duplicate(format!("auditor {}", a.name)));
        }
        insert_action(tx, action)
    })
}

pub(super) fn auditor(
    reg: &PgRegistry,
    name: &AuditorName,
) -> Result<Option<AuditorRecord>, RegistryError> {
    reg.with(|c| {
        c.query_opt(
            "SELECT name, serial, not_after, added_at, added_by, add_reason, add_note,
                revoked_at, revoked_by, revoke_reason, revoke_note FROM auditors WHERE name = $1",
            &[&name.as_str()],
        )
        .map_err(|e| pg(&e))?
        .map(|r| {
            let serial: Vec<u8> = get(&r, 1)?;
            Ok(AuditorRecord {
                name: parse_id(get(&r, 0)?)?,
                serial: SerialNumber::from_slice(&serial),
                not_after: from_ts(get(&r, 2)?)?,
                added: change_from_row(&r, 3)?
                    .ok_or_else(|| RegistryError::Corrupt("auditor without addition".into()))?,
                revoked: change_from_row(&r, 7)?,
            })
        })
        .transpose()
    })
}

pub(super) fn revoke_auditor(
    reg: &PgRegistry,
    name: &AuditorName,
    change: &StatusChange,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        let updated = tx
            .execute(
                "UPDATE auditors SET revoked_at = $1, revoked_by = $2, revoke_reason = $3, revoke_note = $4
                 WHERE name = $5 AND revoked_at IS NULL",
                &[&ts(change.at), &change.by, &change.reason, &change.note, &name.as_str()],
            )
            .map_err(|e| pg(&e))?;
        if updated == 0 {
            return Err(RegistryError::NotFound(format!("active auditor {name}")));
        }
        insert_action(tx, action)
    })
}

// Second factor.

pub(super) fn totp(
    reg: &PgRegistry,
    device: &DeviceId,
) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
    reg.with(|c| {
        c.query_opt(
            "SELECT secret, last_step FROM totp WHERE device = $1",
            &[&device.as_str()],
        )
        .map_err(|e| pg(&e))?
        .map(|r| {
            let step: i64 = get(&r, 1)?;
            Ok((get(&r, 0)?, step.max(0).unsigned_abs()))
        })
        .transpose()
    })
}

pub(super) fn use_totp_step(
    reg: &PgRegistry,
    device: &DeviceId,
    step: u64,
) -> Result<bool, RegistryError> {
    let step = i64::try_from(step).map_err(|_| RegistryError::Storage(format!("step {step}")))?;
    reg.with(|c| {
        let changed = c
            .execute(
                "UPDATE totp SET last_step = $2 WHERE device = $1 AND last_step < $2",
                &[&device.as_str(), &step],
            )
            .map_err(|e| pg(&e))?;
        Ok(changed == 1)
    })
}

pub(super) fn factor_attempts(
    reg: &PgRegistry,
    device: &DeviceId,
) -> Result<Attempts, RegistryError> {
    reg.with(|c| {
        let row = c
            .query_opt(
                "SELECT failures, last_failure, locked_until FROM totp_failures WHERE device = $1",
                &[&device.as_str()],
            )
            .map_err(|e| pg(&e))?;
        let Some(r) = row else {
            return Ok(Attempts::default());
        };
        let failures: i64 = get(&r, 0)?;
        Ok(Attempts {
            failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
            last_failure: get::<Option<i64>>(&r, 1)?.map(from_ts).transpose()?,
            locked_until: get::<Option<i64>>(&r, 2)?.map(from_ts).transpose()?,
        })
    })
}

pub(super) fn set_factor_attempts(
    reg: &PgRegistry,
    device: &DeviceId,
    a: &Attempts,
) -> Result<(), RegistryError> {
    reg.with(|c| {
        c.execute(
            "INSERT INTO totp_failures (device, failures, last_failure, locked_until)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (device) DO UPDATE SET failures = EXCLUDED.failures,
                last_failure = EXCLUDED.last_failure, locked_until = EXCLUDED.locked_until",
            &[
                &device.as_str(),
                &i64::from(a.failures),
                &a.last_failure.map(ts),
                &a.locked_until.map(ts),
            ],
        )
        .map_err(|e| pg(&e))?;
        Ok(())
    })
}

pub(super) fn unlock_factor(
    reg: &PgRegistry,
    device: &DeviceId,
    action: &ActionRecord,
) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| {
        tx.execute(
            "DELETE FROM totp_failures WHERE device = $1",
            &[&device.as_str()],
        )
        .map_err(|e| pg(&e))?;
        insert_action(tx, action)
    })
}

// Actions.

pub(super) fn record_action(reg: &PgRegistry, action: &ActionRecord) -> Result<(), RegistryError> {
    reg.in_transaction(|tx| insert_action(tx, action))
}

pub(super) fn actions(reg: &PgRegistry) -> Result<Vec<ActionRecord>, RegistryError> {
    reg.with(|c| {
        all(
            c,
            "SELECT at, operator, action, target, detail FROM actions ORDER BY seq",
            &[],
            |r| {
                Ok(ActionRecord {
                    at: from_ts(get(r, 0)?)?,
                    operator: get(r, 1)?,
                    action: get(r, 2)?,
                    target: get(r, 3)?,
                    detail: get(r, 4)?,
                })
            },
        )
    })
}

fn insert_action(
    tx: &mut postgres::Transaction<'_>,
    a: &ActionRecord,
) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO actions (at, operator, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&ts(a.at), &a.operator, &a.action, &a.target, &a.detail],
    )
    .map_err(|e| pg(&e))?;
    Ok(())
}

// Row codec.

/// Column `i` of `r`, as `T`.
fn get<T: for<'a> postgres::types::FromSql<'a>>(r: &Row, i: usize) -> Result<T, RegistryError> {
    r.try_get(i).map_err(|e| pg(&e))
}

/// Every row of `sql`, each decoded; the first failure ends it.
fn all<T>(
    c: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    decode: impl Fn(&Row) -> Result<T, RegistryError>,
) -> Result<Vec<T>, RegistryError> {
    c.query(sql, params)
        .map_err(|e| pg(&e))?
        .iter()
        .map(decode)
        .collect()
}

/// An optional [`StatusChange`] from four columns starting at `first` (at, by, reason,
/// note).
fn change_from_row(r: &Row, first: usize) -> Result<Option<StatusChange>, RegistryError> {
    let Some(at) = get::<Option<i64>>(r, first)? else {
        return Ok(None);
    };
    Ok(Some(StatusChange {
        at: from_ts(at)?,
        by: get::<Option<String>>(r, first + 1)?.unwrap_or_default(),
        reason: get::<Option<String>>(r, first + 2)?.unwrap_or_default(),
        note: get(r, first + 3)?,
    }))
}
