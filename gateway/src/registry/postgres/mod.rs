//! The registry on PostgreSQL (`[registry] url`), shared by several gateways: the same
//! tables as the SQLite registry, every change in one transaction, versioned migrations
//! applied at open under an advisory lock (two gateways starting together apply them
//! once), a small pool of connections.
//!
//! The driver is `postgres`, the synchronous client of rust-postgres (see ARCHITECTURE.md
//! for why). It drives each connection with a runtime of its own, which may not be
//! entered (nor dropped) from an async task: every use of a connection, its opening and
//! its closing happen on a scoped thread of the call's own, so the [`Registry`] trait stays
//! synchronous and callable from anywhere, as the SQLite one is.

mod tables;

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};

use super::{
    ActionRecord, AuditorRecord, CertificateRecord, DeviceRecord, EmployeeRecord, EndOfService,
    Enrolment, InvitationRecord, Registry, RegistryError, StatusChange,
};
use ztgw_pki::{CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SerialNumber};

/// The schema, one migration a version; a database at a version this ztgw does not know
/// (a newer one's) is refused.
const MIGRATIONS: &[(i32, &str)] = &[(1, tables::SCHEMA_1)];

/// The advisory lock under which migrations run.
const MIGRATION_LOCK: i64 = 0x7a74_6777; // "ztgw"

/// How long a call waits for a free connection.
const CHECKOUT_WAIT: Duration = Duration::from_secs(10);

/// The PostgreSQL registry.
pub struct PgRegistry {
    config: postgres::Config,
    idle: Mutex<Pool>,
    freed: Condvar,
    size: usize,
}

#[derive(Default)]
struct Pool {
    clients: Vec<Client>,
    open: usize,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: only where the database is.
        f.debug_struct("PgRegistry")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl PgRegistry {
    /// Connects to the database at `url` (a libpq connection string or a
    /// `postgresql://` URL) with `password` if given, applies the migrations it lacks,
    /// and keeps at most `size` connections. The database is never dropped or rewritten; a newer schema is refused.
    pub fn open(
        url: &str,
        password: Option<&ztgw_pki::Secret<String>>,
        size: usize,
    ) -> Result<Self, RegistryError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| RegistryError::Storage(format!("registry url: {e}")))?;
        if let Some(p) = password {
            config.password(p.expose());
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("ztgw");
        let reg = Self {
            config,
            idle: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            size: size.max(1),
        };
        reg.in_transaction(migrate)?;
        Ok(reg)
    }

    /// Runs `f` with a connection, on a thread of its own (see the module's words).
    pub(super) fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        let client = self.checkout()?;
        let config = &self.config;
        let (result, back) = std::thread::scope(|s| {
            s.spawn(move || {
                let mut client = match client {
                    Some(c) => c,
                    None => match config.connect(NoTls) {
                        Ok(c) => c,
                        Err(e) => return (Err(pg(&e)), None),
                    },
                };
                let result = f(&mut client);
                // A broken connection is closed here, off the caller's thread.
                if client.is_closed() {
                    drop(client);
                    (result, None)
                } else {
                    (result, Some(client))
                }
            })
            .join()
            .unwrap_or_else(|_| {
                (
                    Err(RegistryError::Storage("a registry call panicked".into())),
                    None,
                )
            })
        });
        self.checkin(back);
        result
    }

    /// Runs `f` in one transaction (committed when it returns `Ok`).
    pub(super) fn in_transaction<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| pg(&e))?;
            let out = f(&mut tx)?;
            tx.commit().map_err(|e| pg(&e))?;
            Ok(out)
        })
    }

    /// An idle connection, `None` to open a new one (counted), or an error after
    /// [`CHECKOUT_WAIT`] when all are in use.
    fn checkout(&self) -> Result<Option<Client>, RegistryError> {
        let lock = || {
            self.idle
                .lock()
                .map_err(|_| RegistryError::Storage("registry pool lock poisoned".into()))
        };
        let mut pool = lock()?;
        let deadline = std::time::Instant::now() + CHECKOUT_WAIT;
        loop {
            if let Some(c) = pool.clients.pop() {
                return Ok(Some(c));
            }
            if pool.open < self.size {
                pool.open += 1;
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(RegistryError::Storage(format!(
                    "all {} registry connections are busy",
                    self.size
                )));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map_err(|_| RegistryError::Storage("registry pool lock poisoned".into()))?
                .0;
        }
    }

    fn checkin(&self, client: Option<Client>) {
        if let Ok(mut pool) = self.idle.lock() {
            match client {
                Some(c) => pool.clients.push(c),
                None => pool.open = pool.open.saturating_sub(1),
            }
        }
        self.freed.notify_one();
    }
}

impl Drop for PgRegistry {
    fn drop(&mut self) {
        // Connections own runtimes, which may not be dropped on an async thread.
        let clients = self
            .idle
            .get_mut()
            .map(|p| std::mem::take(&mut p.clients))
            .unwrap_or_default();
        let _ = std::thread::spawn(move || drop(clients)).join();
    }
}

/// Applies the migrations the database lacks, under the advisory lock.
fn migrate(tx: &mut postgres::Transaction<'_>) -> Result<(), RegistryError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| pg(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ztgw_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .map_err(|e| pg(&e))?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ztgw_migrations", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg(&e))?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if applied > known {
        return Err(RegistryError::Corrupt(format!(
            "schema version {applied}, this ztgw knows {known}"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).map_err(|e| pg(&e))?;
        tx.execute(
            "INSERT INTO ztgw_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(|e| pg(&e))?;
    }
    Ok(())
}

/// A driver error as the registry's.
pub(super) fn pg(e: &postgres::Error) -> RegistryError {
    RegistryError::Storage(match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    })
}

impl Registry for PgRegistry {
    fn create_invitation(
        &self,
        inv: &InvitationRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::create_invitation(self, inv, action)
    }
    fn invitation(&self, id: &InvitationId) -> Result<Option<InvitationRecord>, RegistryError> {
        tables::invitation(self, id)
    }
    fn invitations(&self) -> Result<Vec<InvitationRecord>, RegistryError> {
        tables::invitations(self)
    }
    fn complete_enrolment(
        &self,
        e: &Enrolment,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::complete_enrolment(self, e, action)
    }
    fn employee(&self, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError> {
        tables::employee(self, id)
    }
    fn revoke_employee(
        &self,
        id: &EmployeeId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<Vec<DeviceId>, RegistryError> {
        tables::revoke_employee(self, id, change, action)
    }
    fn reinstate_employee(
        &self,
        id: &EmployeeId,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::reinstate_employee(self, id, action)
    }
    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError> {
        tables::device(self, id)
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        tables::devices(self)
    }
    fn approve_device(
        &self,
        id: &DeviceId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::approve_device(self, id, change, action)
    }
    fn set_device_role(
        &self,
        id: &DeviceId,
        role: &str,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::set_device_role(self, id, role, action)
    }
    fn end_device(
        &self,
        id: &DeviceId,
        how: EndOfService,
        change: &StatusChange,
        reason: CrlReason,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::end_device(self, id, how, change, reason, action)
    }
    fn add_certificate(
        &self,
        cert: &CertificateRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::add_certificate(self, cert, action)
    }
    fn certificate(
        &self,
        serial: &SerialNumber,
    ) -> Result<Option<CertificateRecord>, RegistryError> {
        tables::certificate(self, serial)
    }
    fn certificates_of(&self, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError> {
        tables::certificates_of(self, device)
    }
    fn supersede_certificates(
        &self,
        device: &DeviceId,
        serials: &[SerialNumber],
        at: time::OffsetDateTime,
        action: &ActionRecord,
    ) -> Result<usize, RegistryError> {
        tables::supersede_certificates(self, device, serials, at, action)
    }
    fn revoked_certificates(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<RevokedEntry>, RegistryError> {
        tables::revoked_certificates(self, now)
    }
    fn next_crl_number(&self) -> Result<u64, RegistryError> {
        tables::next_crl_number(self)
    }
    fn add_auditor(&self, a: &AuditorRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        tables::add_auditor(self, a, action)
    }
    fn auditor(
        &self,
        name: &ztgw_pki::AuditorName,
    ) -> Result<Option<AuditorRecord>, RegistryError> {
        tables::auditor(self, name)
    }
    fn revoke_auditor(
        &self,
        name: &ztgw_pki::AuditorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        tables::revoke_auditor(self, name, change, action)
    }
    fn record_action(&self, action: &ActionRecord) -> Result<(), RegistryError> {
        tables::record_action(self, action)
    }
    fn totp(&self, device: &DeviceId) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
        tables::totp(self, device)
    }
    fn use_totp_step(&self, device: &DeviceId, step: u64) -> Result<bool, RegistryError> {
        tables::use_totp_step(self, device, step)
    }
    fn factor_attempts(
        &self,
        device: &DeviceId,
    ) -> Result<crate::session::factor::Attempts, RegistryError> {
        tables::factor_attempts(self, device)
    }
    fn set_factor_attempts(
        &self,
        device: &DeviceId,
        attempts: &crate::session::factor::Attempts,
    ) -> Result<(), RegistryError> {
        tables::set_factor_attempts(self, device, attempts)
    }
    fn unlock_factor(&self, device: &DeviceId, action: &ActionRecord) -> Result<(), RegistryError> {
        tables::unlock_factor(self, device, action)
    }
    fn actions(&self) -> Result<Vec<ActionRecord>, RegistryError> {
        tables::actions(self)
    }
}
