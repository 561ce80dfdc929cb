//! The registry on an embedded SQLite database (WAL, synchronous=FULL): one module per
//! table with its row codec; this one opens the database, keeps its schema and carries
//! the `Registry` trait over to the tables.

mod actions;
mod auditors;
mod certificates;
mod codec;
mod devices;
mod employees;
mod invitations;
mod second_factor;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use time::OffsetDateTime;
use ztgw_pki::{CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SerialNumber};

use super::{
    ActionRecord, AuditorRecord, CertificateRecord, DeviceRecord, EmployeeRecord, EndOfService,
    Enrolment, InvitationRecord, Registry, RegistryError, StatusChange,
};
use codec::storage;

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

    /// Writes a consistent copy of the registry database `db` to `path` (a new file),
    /// whatever a running gateway writes meanwhile (`VACUUM INTO` on a connection of its
    /// own). A file operation of the embedded registry: not part of [`Registry`].
    pub fn snapshot(db: &Path, path: &Path) -> Result<(), RegistryError> {
        let target = path
            .to_str()
            .ok_or_else(|| RegistryError::Storage("the snapshot path is not UTF-8".into()))?;
        let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
        conn.execute("VACUUM INTO ?1", params![target])
            .map_err(storage)?;
        Ok(())
    }
}

impl Registry for SqliteRegistry {
    fn create_invitation(
        &self,
        inv: &InvitationRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        invitations::create_invitation(self, inv, action)
    }
    fn invitation(&self, id: &InvitationId) -> Result<Option<InvitationRecord>, RegistryError> {
        invitations::invitation(self, id)
    }
    fn invitations(&self) -> Result<Vec<InvitationRecord>, RegistryError> {
        invitations::invitations(self)
    }
    fn complete_enrolment(
        &self,
        e: &Enrolment,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::complete_enrolment(self, e, action)
    }
    fn employee(&self, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError> {
        employees::employee(self, id)
    }
    fn revoke_employee(
        &self,
        id: &EmployeeId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<Vec<DeviceId>, RegistryError> {
        employees::revoke_employee(self, id, change, action)
    }
    fn reinstate_employee(
        &self,
        id: &EmployeeId,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        employees::reinstate_employee(self, id, action)
    }
    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError> {
        devices::device(self, id)
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        devices::devices(self)
    }
    fn approve_device(
        &self,
        id: &DeviceId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::approve_device(self, id, change, action)
    }
    fn set_device_role(
        &self,
        id: &DeviceId,
        role: &str,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::set_device_role(self, id, role, action)
    }
    fn end_device(
        &self,
        id: &DeviceId,
        how: EndOfService,
        change: &StatusChange,
        reason: CrlReason,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::end_device(self, id, how, change, reason, action)
    }
    fn add_certificate(
        &self,
        cert: &CertificateRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        certificates::add_certificate(self, cert, action)
    }
    fn certificate(
        &self,
        serial: &SerialNumber,
    ) -> Result<Option<CertificateRecord>, RegistryError> {
        certificates::certificate(self, serial)
    }
    fn certificates_of(&self, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError> {
        certificates::certificates_of(self, device)
    }
    fn revoked_certificates(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<RevokedEntry>, RegistryError> {
        certificates::revoked_certificates(self, now)
    }
    fn next_crl_number(&self) -> Result<u64, RegistryError> {
        certificates::next_crl_number(self)
    }
    fn add_auditor(&self, a: &AuditorRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        auditors::add_auditor(self, a, action)
    }
    fn auditor(
        &self,
        name: &ztgw_pki::AuditorName,
    ) -> Result<Option<AuditorRecord>, RegistryError> {
        auditors::auditor(self, name)
    }
    fn revoke_auditor(
        &self,
        name: &ztgw_pki::AuditorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        auditors::revoke_auditor(self, name, change, action)
    }
    fn record_action(&self, action: &ActionRecord) -> Result<(), RegistryError> {
        actions::record_action(self, action)
    }
    fn totp(&self, device: &DeviceId) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
        second_factor::totp(self, device)
    }
    fn use_totp_step(&self, device: &DeviceId, step: u64) -> Result<bool, RegistryError> {
        second_factor::use_totp_step(self, device, step)
    }
    fn supersede_certificates(
        &self,
        device: &DeviceId,
        serials: &[SerialNumber],
        at: OffsetDateTime,
        action: &ActionRecord,
    ) -> Result<usize, RegistryError> {
        certificates::supersede_certificates(self, device, serials, at, action)
    }
    fn factor_attempts(
        &self,
        device: &DeviceId,
    ) -> Result<crate::session::factor::Attempts, RegistryError> {
        second_factor::factor_attempts(self, device)
    }
    fn set_factor_attempts(
        &self,
        device: &DeviceId,
        a: &crate::session::factor::Attempts,
    ) -> Result<(), RegistryError> {
        second_factor::set_factor_attempts(self, device, a)
    }
    fn unlock_factor(&self, device: &DeviceId, action: &ActionRecord) -> Result<(), RegistryError> {
        second_factor::unlock_factor(self, device, action)
    }
    fn actions(&self) -> Result<Vec<ActionRecord>, RegistryError> {
        actions::actions(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::conformance;

    fn open() -> (tempfile::TempDir, Arc<dyn Registry>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = SqliteRegistry::open(&dir.path().join("r.db")).expect("open");
        (dir, Arc::new(reg))
    }

    #[test]
    fn an_invitation_is_redeemed_once_even_under_a_race() {
        let (_dir, reg) = open();
        conformance::an_invitation_is_redeemed_once_even_under_a_race(reg);
    }

    #[test]
    fn a_wireguard_key_belongs_to_one_device_in_service() {
        let (_dir, reg) = open();
        conformance::a_wireguard_key_belongs_to_one_device_in_service(reg);
    }

    #[test]
    fn revocation_lists_only_unexpired_revoked_certificates() {
        let (_dir, reg) = open();
        conformance::revocation_lists_only_unexpired_revoked_certificates(reg);
    }

    #[test]
    fn a_registry_from_a_newer_ztgw_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteRegistry::open(&dir.path().join("r.db")).expect("open"));
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
