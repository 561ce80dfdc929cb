//! The registry on an embedded SQLite database (WAL, synchronous=FULL).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, Row, Transaction, params};
use time::OffsetDateTime;
use ztgw_pki::wire::{DeviceStatus, Ownership};
use ztgw_pki::{
    CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SecretHash, SerialNumber,
    WgPublicKey,
};

use super::{
    ActionRecord, AuditorRecord, CertificateRecord, DeviceRecord, EmployeeRecord, EndOfService,
    Enrolment, InvitationRecord, Registry, RegistryError, StatusChange,
};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS employees (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    approved_by TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    secret_hash BLOB NOT NULL,
    used_at INTEGER,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    invitation_id TEXT NOT NULL UNIQUE REFERENCES invitations(id),
    hostname TEXT NOT NULL,
    os TEXT NOT NULL,
    ownership TEXT NOT NULL,
    wg_key BLOB NOT NULL,
    status TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    approved_at INTEGER,
    approved_by TEXT,
    approve_reason TEXT,
    approve_note TEXT,
    ended_at INTEGER,
    ended_by TEXT,
    end_reason TEXT,
    end_note TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_wg_key_in_service
    ON devices(wg_key) WHERE status IN ('pending', 'active');
CREATE INDEX IF NOT EXISTS devices_employee ON devices(employee_id);
CREATE TABLE IF NOT EXISTS certificates (
    serial BLOB PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revocation_reason TEXT
);
CREATE INDEX IF NOT EXISTS certificates_device ON certificates(device_id);
CREATE TABLE IF NOT EXISTS auditors (
    name TEXT PRIMARY KEY,
    serial BLOB NOT NULL UNIQUE,
    not_after INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE IF NOT EXISTS totp (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    secret BLOB NOT NULL,
    last_step INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS totp_failures (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    failures INTEGER NOT NULL,
    last_failure INTEGER,
    locked_until INTEGER
);
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// The SQLite registry. One connection behind a mutex: registry operations are short
/// and the control plane calls them from blocking tasks.
#[derive(Debug)]
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
}

impl SqliteRegistry {
    /// Opens (creating the schema if needed) the registry at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let conn = Connection::open(path).map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(storage)?;
        conn.execute_batch(SCHEMA).map_err(storage)?;
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('crl_number', 0)",
                    params![SCHEMA_VERSION],
                )
                .map_err(storage)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(RegistryError::Corrupt(format!(
                    "schema version {v}, this ztgw knows {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| RegistryError::Storage("registry lock poisoned".into()))?;
        f(&mut conn)
    }

    fn in_transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        self.with(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(storage)?;
            let out = f(&tx)?;
            tx.commit().map_err(storage)?;
            Ok(out)
        })
    }
}

impl Registry for SqliteRegistry {
    fn create_invitation(
        &self,
        inv: &InvitationRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO employees (id, created_at) VALUES (?1, ?2)",
                params![inv.employee.as_str(), ts(inv.created_at)],
            )
            .map_err(storage)?;
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO invitations (id, employee_id, role, schedule, approved_by,
                        reference, created_by, created_at, expires_at, secret_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        inv.id.as_str(),
                        inv.employee.as_str(),
                        inv.role,
                        inv.schedule,
                        inv.approved_by,
                        inv.reference,
                        inv.created_by,
                        ts(inv.created_at),
                        ts(inv.expires_at),
                        inv.secret_hash.as_bytes().as_slice(),
                    ],
                )
                .map_err(storage)?;
            if inserted == 0 {
                return Err(RegistryError::Duplicate(format!("invitation {}", inv.id)));
            }
            insert_action(tx, action)
        })
    }

    fn invitation(&self, id: &InvitationId) -> Result<Option<InvitationRecord>, RegistryError> {
        self.with(|c| {
            query_opt(
                c,
                &format!("{INVITATION_SELECT} WHERE id = ?1"),
                params![id.as_str()],
                invitation_from_row,
            )
        })
    }

    fn invitations(&self) -> Result<Vec<InvitationRecord>, RegistryError> {
        self.with(|c| {
            query_all(
                c,
                &format!("{INVITATION_SELECT} ORDER BY created_at, id"),
                [],
                invitation_from_row,
            )
        })
    }

    fn complete_enrolment(
        &self,
        e: &Enrolment,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        let d = &e.device;
        self.in_transaction(|tx| {
            let marked = tx
                .execute(
                    "UPDATE invitations SET used_at = ?1, used_by = ?2
                     WHERE id = ?3 AND used_at IS NULL",
                    params![ts(d.enrolled_at), d.id.as_str(), e.invitation.as_str()],
                )
                .map_err(storage)?;
            if marked == 0 {
                return Err(RegistryError::InvitationAlreadyUsed);
            }
            let holder: Option<String> = tx
                .query_row(
                    "SELECT id FROM devices WHERE wg_key = ?1 AND status IN ('pending', 'active')",
                    params![d.wg_key.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage)?;
            if let Some(holder) = holder {
                return Err(RegistryError::WgKeyInUse(holder));
            }
            tx.execute(
                "INSERT INTO devices (id, employee_id, role, schedule, invitation_id, hostname, os,
                    ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason,
                    approve_note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    d.id.as_str(),
                    d.employee.as_str(),
                    d.role,
                    d.schedule,
                    e.invitation.as_str(),
                    d.hostname,
                    d.os,
                    d.ownership.as_str(),
                    d.wg_key.as_bytes().as_slice(),
                    d.status.as_str(),
                    ts(d.enrolled_at),
                    d.approved.as_ref().map(|a| ts(a.at)),
                    d.approved.as_ref().map(|a| a.by.clone()),
                    d.approved.as_ref().map(|a| a.reason.clone()),
                    d.approved.as_ref().and_then(|a| a.note.clone()),
                ],
            )
            .map_err(storage)?;
            insert_certificate(tx, &e.certificate)?;
            tx.execute(
                "INSERT INTO totp (device, secret, last_step) VALUES (?1, ?2, 0)",
                params![d.id.as_str(), e.totp_secret.expose().as_slice()],
            )
            .map_err(storage)?;
            insert_action(tx, action)
        })
    }

    fn employee(&self, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError> {
        self.with(|c| {
            query_opt(
                c,
                "SELECT id, created_at, revoked_at, revoked_by, revoke_reason, revoke_note
                 FROM employees WHERE id = ?1",
                params![id.as_str()],
                |r| {
                    Ok(EmployeeRecord {
                        id: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
                        created_at: from_ts(r.get(1).map_err(storage)?)?,
                        revoked: change_from_row(r, 2)?,
                    })
                },
            )
        })
    }

    fn revoke_employee(
        &self,
        id: &EmployeeId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<Vec<DeviceId>, RegistryError> {
        self.in_transaction(|tx| {
            let updated = tx
                .execute(
                    "UPDATE employees SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3,
                        revoke_note = ?4 WHERE id = ?5",
                    params![
                        ts(change.at),
                        change.by,
                        change.reason,
                        change.note,
                        id.as_str()
                    ],
                )
                .map_err(storage)?;
            if updated == 0 {
                return Err(RegistryError::NotFound(format!("employee {id}")));
            }
            let devices: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT id FROM devices WHERE employee_id = ?1
                         AND status IN ('pending', 'active') ORDER BY id",
                    )
                    .map_err(storage)?;
                let rows = stmt
                    .query_map(params![id.as_str()], |r| r.get(0))
                    .map_err(storage)?;
                rows.collect::<Result<_, _>>().map_err(storage)?
            };
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

    fn reinstate_employee(
        &self,
        id: &EmployeeId,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            let updated = tx
                .execute(
                    "UPDATE employees SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL,
                        revoke_note = NULL WHERE id = ?1",
                    params![id.as_str()],
                )
                .map_err(storage)?;
            if updated == 0 {
                return Err(RegistryError::NotFound(format!("employee {id}")));
            }
            insert_action(tx, action)
        })
    }

    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError> {
        self.with(|c| {
            query_opt(
                c,
                &format!("{DEVICE_SELECT} WHERE id = ?1"),
                params![id.as_str()],
                device_from_row,
            )
        })
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        self.with(|c| {
            query_all(
                c,
                &format!("{DEVICE_SELECT} ORDER BY enrolled_at, id"),
                [],
                device_from_row,
            )
        })
    }

    fn approve_device(
        &self,
        id: &DeviceId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            let updated = tx
                .execute(
                    "UPDATE devices SET status = 'active', approved_at = ?1, approved_by = ?2,
                        approve_reason = ?3, approve_note = ?4
                     WHERE id = ?5 AND status = 'pending'",
                    params![
                        ts(change.at),
                        change.by,
                        change.reason,
                        change.note,
                        id.as_str()
                    ],
                )
                .map_err(storage)?;
            if updated == 0 {
                return Err(RegistryError::NotFound(format!("pending device {id}")));
            }
            insert_action(tx, action)
        })
    }

    fn set_device_role(
        &self,
        id: &DeviceId,
        role: &str,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            let updated = tx
                .execute(
                    "UPDATE devices SET role = ?1
                     WHERE id = ?2 AND status IN ('pending', 'active')",
                    params![role, id.as_str()],
                )
                .map_err(storage)?;
            if updated == 0 {
                return Err(RegistryError::NotFound(format!("device in service {id}")));
            }
            insert_action(tx, action)
        })
    }

    fn end_device(
        &self,
        id: &DeviceId,
        how: EndOfService,
        change: &StatusChange,
        reason: CrlReason,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            end_device_in(tx, id, how, change, reason)?;
            insert_action(tx, action)
        })
    }

    fn add_certificate(
        &self,
        cert: &CertificateRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            insert_certificate(tx, cert)?;
            insert_action(tx, action)
        })
    }

    fn certificate(
        &self,
        serial: &SerialNumber,
    ) -> Result<Option<CertificateRecord>, RegistryError> {
        self.with(|c| {
            query_opt(
                c,
                &format!("{CERT_SELECT} WHERE serial = ?1"),
                params![serial.as_bytes()],
                certificate_from_row,
            )
        })
    }

    fn certificates_of(&self, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError> {
        self.with(|c| {
            query_all(
                c,
                &format!("{CERT_SELECT} WHERE device_id = ?1 ORDER BY issued_at, serial"),
                params![device.as_str()],
                certificate_from_row,
            )
        })
    }

    fn revoked_certificates(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<RevokedEntry>, RegistryError> {
        self.with(|c| {
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

    fn next_crl_number(&self) -> Result<u64, RegistryError> {
        self.in_transaction(|tx| {
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

    fn add_auditor(&self, a: &AuditorRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            // Names are never reused: a revoked auditor's certificate stays in the CRL
            // until it expires, under its own name.
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO auditors (name, serial, not_after, added_at, added_by, add_reason, add_note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        a.name.as_str(),
                        a.serial.as_bytes(),
                        ts(a.not_after),
                        ts(a.added.at),
                        a.added.by,
                        a.added.reason,
                        a.added.note
                    ],
                )
                .map_err(storage)?;
            if inserted == 0 {
                return Err(RegistryError::Duplicate(format!("auditor {}", a.name)));
            }
            insert_action(tx, action)
        })
    }

    fn auditor(
        &self,
        name: &ztgw_pki::AuditorName,
    ) -> Result<Option<AuditorRecord>, RegistryError> {
        self.with(|c| {
            query_opt(
                c,
                "SELECT name, serial, not_after, added_at, added_by, add_reason, add_note,
                    revoked_at, revoked_by, revoke_reason, revoke_note FROM auditors WHERE name = ?1",
                params![name.as_str()],
                |r| {
                    let serial: Vec<u8> = r.get(1).map_err(storage)?;
                    Ok(AuditorRecord {
                        name: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
                        serial: SerialNumber::from_slice(&serial),
                        not_after: from_ts(r.get(2).map_err(storage)?)?,
                        added: change_from_row(r, 3)?.ok_or_else(|| {
                            RegistryError::Corrupt("auditor without addition".into())
                        })?,
                        revoked: change_from_row(r, 7)?,
                    })
                },
            )
        })
    }

    fn revoke_auditor(
        &self,
        name: &ztgw_pki::AuditorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            let updated = tx
                .execute(
                    "UPDATE auditors SET revoked_at = ?1, revoked_by = ?2, revoke_reason = ?3, revoke_note = ?4
                     WHERE name = ?5 AND revoked_at IS NULL",
                    params![ts(change.at), change.by, change.reason, change.note, name.as_str()],
                )
                .map_err(storage)?;
            if updated == 0 {
                return Err(RegistryError::NotFound(format!("active auditor {name}")));
            }
            insert_action(tx, action)
        })
    }

    fn snapshot_to(&self, path: &Path) -> Result<(), RegistryError> {
        let target = path
            .to_str()
            .ok_or_else(|| RegistryError::Storage("the snapshot path is not UTF-8".into()))?;
        self.with(|c| {
            c.execute("VACUUM INTO ?1", params![target])
                .map_err(storage)?;
            Ok(())
        })
    }

    fn record_action(&self, action: &ActionRecord) -> Result<(), RegistryError> {
        self.in_transaction(|tx| insert_action(tx, action))
    }

    fn totp(&self, device: &DeviceId) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
        self.with(|c| {
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

    fn use_totp_step(&self, device: &DeviceId, step: u64) -> Result<bool, RegistryError> {
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE totp SET last_step = ?2 WHERE device = ?1 AND last_step < ?2",
                    rusqlite::params![device.as_str(), step as i64],
                )
                .map_err(storage)?;
            Ok(changed == 1)
        })
    }

    fn supersede_certificates(
        &self,
        device: &DeviceId,
        serials: &[SerialNumber],
        at: OffsetDateTime,
        action: &ActionRecord,
    ) -> Result<usize, RegistryError> {
        self.in_transaction(|tx| {
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

    fn factor_attempts(
        &self,
        device: &DeviceId,
    ) -> Result<crate::session::factor::Attempts, RegistryError> {
        self.with(|c| {
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

    fn set_factor_attempts(
        &self,
        device: &DeviceId,
        a: &crate::session::factor::Attempts,
    ) -> Result<(), RegistryError> {
        self.with(|c| {
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

    fn unlock_factor(&self, device: &DeviceId, action: &ActionRecord) -> Result<(), RegistryError> {
        self.in_transaction(|tx| {
            tx.execute(
                "DELETE FROM totp_failures WHERE device = ?1",
                [device.as_str()],
            )
            .map_err(storage)?;
            insert_action(tx, action)
        })
    }

    fn actions(&self) -> Result<Vec<ActionRecord>, RegistryError> {
        self.with(|c| {
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
}

fn end_device_in(
    tx: &Transaction<'_>,
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
                "UPDATE devices SET status = ?1, ended_at = ?2, ended_by = ?3, end_reason = ?4,
                    end_note = ?5 WHERE id = ?6 AND status IN {allowed_from}"
            ),
            params![
                status,
                ts(change.at),
                change.by,
                change.reason,
                change.note,
                id.as_str()
            ],
        )
        .map_err(storage)?;
    if updated == 0 {
        return Err(RegistryError::NotFound(format!(
            "device {id} in a state that can be {status}"
        )));
    }
    tx.execute(
        "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
         WHERE device_id = ?3 AND revoked_at IS NULL",
        params![ts(change.at), reason_str(reason), id.as_str()],
    )
    .map_err(storage)?;
    Ok(())
}

fn insert_certificate(tx: &Transaction<'_>, c: &CertificateRecord) -> Result<(), RegistryError> {
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

fn insert_action(tx: &Transaction<'_>, a: &ActionRecord) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO actions (at, operator, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ts(a.at), a.operator, a.action, a.target, a.detail],
    )
    .map_err(storage)?;
    Ok(())
}

const INVITATION_SELECT: &str = "SELECT id, employee_id, role, schedule, approved_by, reference,
    created_by, created_at, expires_at, secret_hash, used_at, used_by FROM invitations";

fn invitation_from_row(r: &Row<'_>) -> Result<InvitationRecord, RegistryError> {
    let id: String = r.get(0).map_err(storage)?;
    let hash: Vec<u8> = r.get(9).map_err(storage)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| RegistryError::Corrupt("invitation secret hash".into()))?;
    Ok(InvitationRecord {
        id: InvitationId::parse(&id)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {id:?}")))?,
        employee: parse_id(r.get::<_, String>(1).map_err(storage)?)?,
        role: r.get(2).map_err(storage)?,
        schedule: r.get(3).map_err(storage)?,
        approved_by: r.get(4).map_err(storage)?,
        reference: r.get(5).map_err(storage)?,
        created_by: r.get(6).map_err(storage)?,
        created_at: from_ts(r.get(7).map_err(storage)?)?,
        expires_at: from_ts(r.get(8).map_err(storage)?)?,
        secret_hash: SecretHash::from_bytes(hash),
        used_at: r
            .get::<_, Option<i64>>(10)
            .map_err(storage)?
            .map(from_ts)
            .transpose()?,
        used_by: r
            .get::<_, Option<String>>(11)
            .map_err(storage)?
            .map(parse_id)
            .transpose()?,
    })
}

const DEVICE_SELECT: &str = "SELECT id, employee_id, role, schedule, invitation_id, hostname, os,
    ownership, wg_key, status, enrolled_at, approved_at, approved_by, approve_reason, approve_note,
    ended_at, ended_by, end_reason, end_note FROM devices";

fn device_from_row(r: &Row<'_>) -> Result<DeviceRecord, RegistryError> {
    let inv: String = r.get(4).map_err(storage)?;
    let ownership: String = r.get(7).map_err(storage)?;
    let key: Vec<u8> = r.get(8).map_err(storage)?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| RegistryError::Corrupt("device WireGuard key".into()))?;
    let status: String = r.get(9).map_err(storage)?;
    Ok(DeviceRecord {
        id: parse_id(r.get::<_, String>(0).map_err(storage)?)?,
        employee: parse_id(r.get::<_, String>(1).map_err(storage)?)?,
        role: r.get(2).map_err(storage)?,
        schedule: r.get(3).map_err(storage)?,
        invitation: InvitationId::parse(&inv)
            .ok_or_else(|| RegistryError::Corrupt(format!("invitation id {inv:?}")))?,
        hostname: r.get(5).map_err(storage)?,
        os: r.get(6).map_err(storage)?,
        ownership: ownership
            .parse::<Ownership>()
            .map_err(RegistryError::Corrupt)?,
        wg_key: WgPublicKey::from_bytes(key),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| RegistryError::Corrupt(format!("device status {status:?}")))?,
        enrolled_at: from_ts(r.get(10).map_err(storage)?)?,
        approved: change_from_row(r, 11)?,
        ended: change_from_row(r, 15)?,
    })
}

const CERT_SELECT: &str = "SELECT serial, device_id, not_before, not_after, issued_at, revoked_at,
    revocation_reason FROM certificates";

fn certificate_from_row(r: &Row<'_>) -> Result<CertificateRecord, RegistryError> {
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

/// Reads an optional [`StatusChange`] from four columns starting at `first`
/// (at, by, reason, note).
fn change_from_row(r: &Row<'_>, first: usize) -> Result<Option<StatusChange>, RegistryError> {
    let at: Option<i64> = r.get(first).map_err(storage)?;
    let Some(at) = at else { return Ok(None) };
    Ok(Some(StatusChange {
        at: from_ts(at)?,
        by: r
            .get::<_, Option<String>>(first + 1)
            .map_err(storage)?
            .unwrap_or_default(),
        reason: r
            .get::<_, Option<String>>(first + 2)
            .map_err(storage)?
            .unwrap_or_default(),
        note: r.get(first + 3).map_err(storage)?,
    }))
}

fn reason_str(r: CrlReason) -> &'static str {
    match r {
        CrlReason::KeyCompromise => "key-compromise",
        CrlReason::AffiliationChanged => "affiliation-changed",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessation-of-operation",
        CrlReason::Unspecified => "unspecified",
    }
}

fn parse_reason(s: &str) -> Result<CrlReason, RegistryError> {
    Ok(match s {
        "key-compromise" => CrlReason::KeyCompromise,
        "affiliation-changed" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessation-of-operation" => CrlReason::CessationOfOperation,
        "unspecified" => CrlReason::Unspecified,
        other => {
            return Err(RegistryError::Corrupt(format!(
                "revocation reason {other:?}"
            )));
        }
    })
}

fn parse_id<T: std::str::FromStr>(s: String) -> Result<T, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::Corrupt(format!("identifier {s:?}")))
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(v: i64) -> Result<OffsetDateTime, RegistryError> {
    OffsetDateTime::from_unix_timestamp(v)
        .map_err(|_| RegistryError::Corrupt(format!("timestamp {v}")))
}

/// One row or none, decoded by `decode` (whose errors are the registry's own).
fn query_opt<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, RegistryError>,
) -> Result<Option<T>, RegistryError> {
    c.query_row(sql, params, |r| Ok(decode(r)))
        .optional()
        .map_err(storage)?
        .transpose()
}

/// Every row, each decoded by `decode`; the first failure ends the query.
fn query_all<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut decode: impl FnMut(&Row<'_>) -> Result<T, RegistryError>,
) -> Result<Vec<T>, RegistryError> {
    let mut stmt = c.prepare(sql).map_err(storage)?;
    let rows = stmt.query_map(params, |r| Ok(decode(r))).map_err(storage)?;
    rows.map(|r| r.map_err(storage).and_then(|x| x)).collect()
}

fn storage(e: rusqlite::Error) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    fn action(what: &str) -> ActionRecord {
        ActionRecord {
            at: t(0),
            operator: "op".into(),
            action: what.into(),
            target: "x".into(),
            detail: String::new(),
        }
    }

    fn invitation(n: u8) -> InvitationRecord {
        let id = InvitationId::from_random([n; 10]);
        InvitationRecord {
            secret_hash: SecretHash::of(&id, &[n; 32]),
            id,
            employee: EmployeeId::new("e1").expect("id"),
            role: "finance".into(),
            schedule: None,
            approved_by: "boss".into(),
            reference: "R".into(),
            created_by: "op".into(),
            created_at: t(0),
            expires_at: t(3600),
            used_at: None,
            used_by: None,
        }
    }

    fn enrolment(inv: &InvitationRecord, device: u8, wg: u8) -> Enrolment {
        let id = DeviceId::from_random([device; 10]);
        Enrolment {
            invitation: inv.id.clone(),
            device: DeviceRecord {
                id: id.clone(),
                employee: inv.employee.clone(),
                role: inv.role.clone(),
                schedule: None,
                invitation: inv.id.clone(),
                hostname: "pc".into(),
                os: "Debian".into(),
                ownership: Ownership::Personal,
                wg_key: WgPublicKey::from_bytes([wg; 32]),
                status: DeviceStatus::Active,
                enrolled_at: t(10),
                approved: None,
                ended: None,
            },
            totp_secret: ztgw_pki::Secret::new(vec![device; 20]),
            certificate: CertificateRecord {
                serial: SerialNumber::from_random([device; 16]),
                device: id,
                not_before: t(10),
                not_after: t(100_000),
                issued_at: t(10),
                revoked: None,
            },
        }
    }

    fn open() -> (tempfile::TempDir, SqliteRegistry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = SqliteRegistry::open(&dir.path().join("r.db")).expect("open");
        (dir, reg)
    }

    #[test]
    fn an_invitation_is_redeemed_once_even_under_a_race() {
        let (_dir, reg) = open();
        let reg = Arc::new(reg);
        let inv = invitation(1);
        reg.create_invitation(&inv, &action("invitation.created"))
            .expect("create");
        let results: Vec<_> = (0..8u8)
            .map(|i| {
                let reg = reg.clone();
                let e = enrolment(&inv, 10 + i, 10 + i);
                std::thread::spawn(move || reg.complete_enrolment(&e, &action("device.enrolled")))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, RegistryError::InvitationAlreadyUsed))
        );
        assert_eq!(reg.devices().expect("devices").len(), 1);
        assert_eq!(
            reg.actions().expect("actions").len(),
            2,
            "only the winner is recorded"
        );
    }

    #[test]
    fn a_wireguard_key_belongs_to_one_device_in_service() {
        let (_dir, reg) = open();
        let (a, b) = (invitation(1), invitation(2));
        reg.create_invitation(&a, &action("i")).expect("a");
        reg.create_invitation(&b, &action("i")).expect("b");
        let first = enrolment(&a, 1, 7);
        reg.complete_enrolment(&first, &action("e")).expect("first");
        assert_eq!(
            reg.totp(&first.device.id).expect("totp").map(|t| t.0),
            Some(vec![1; 20]),
            "the second-factor secret is written with the device"
        );
        let clash = enrolment(&b, 2, 7);
        assert!(matches!(
            reg.complete_enrolment(&clash, &action("e")),
            Err(RegistryError::WgKeyInUse(_))
        ));
        assert_eq!(
            reg.totp(&clash.device.id).expect("totp"),
            None,
            "nor its secret: one transaction"
        );
        // The refused enrolment left the invitation unused.
        assert!(
            reg.invitation(&b.id)
                .expect("get")
                .expect("exists")
                .used_at
                .is_none()
        );
        // Once the first device is out of service its key may be enrolled again.
        let change = StatusChange {
            at: t(20),
            by: "op".into(),
            reason: "lost".into(),
            note: None,
        };
        reg.end_device(
            &first.device.id,
            EndOfService::Revoke,
            &change,
            CrlReason::KeyCompromise,
            &action("r"),
        )
        .expect("revoke");
        reg.complete_enrolment(&clash, &action("e"))
            .expect("after revocation");
    }

    #[test]
    fn revocation_lists_only_unexpired_revoked_certificates() {
        let (_dir, reg) = open();
        let inv = invitation(1);
        reg.create_invitation(&inv, &action("i")).expect("create");
        let e = enrolment(&inv, 1, 1);
        reg.complete_enrolment(&e, &action("e")).expect("enrol");
        assert!(reg.revoked_certificates(t(50)).expect("list").is_empty());
        let change = StatusChange {
            at: t(20),
            by: "op".into(),
            reason: "stolen".into(),
            note: Some("n".into()),
        };
        reg.end_device(
            &e.device.id,
            EndOfService::Revoke,
            &change,
            CrlReason::KeyCompromise,
            &action("r"),
        )
        .expect("revoke");
        let listed = reg.revoked_certificates(t(50)).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].serial, e.certificate.serial);
        assert!(
            reg.revoked_certificates(t(200_000))
                .expect("list")
                .is_empty(),
            "expired ones drop off"
        );
        // Revoking twice is refused; decommissioning a revoked device is allowed.
        assert!(matches!(
            reg.end_device(
                &e.device.id,
                EndOfService::Revoke,
                &change,
                CrlReason::KeyCompromise,
                &action("r")
            ),
            Err(RegistryError::NotFound(_))
        ));
        reg.end_device(
            &e.device.id,
            EndOfService::Decommission,
            &change,
            CrlReason::CessationOfOperation,
            &action("d"),
        )
        .expect("decommission");
        let d = reg.device(&e.device.id).expect("get").expect("kept");
        assert_eq!(d.status, DeviceStatus::Decommissioned);
        assert!(reg.next_crl_number().expect("n") < reg.next_crl_number().expect("n"));
    }

    #[test]
    fn a_registry_from_a_newer_ztgw_is_refused() {
        let (dir, reg) = open();
        drop(reg);
        let conn = Connection::open(dir.path().join("r.db")).expect("open");
        conn.execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .expect("update");
        drop(conn);
        assert!(matches!(
            SqliteRegistry::open(&dir.path().join("r.db")),
            Err(RegistryError::Corrupt(_))
        ));
    }
}
