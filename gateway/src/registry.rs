//! The registry: invitations, employees, devices, certificates and the record of
//! administrative actions.
//!
//! [`Registry`] is the small interface the rest of the gateway uses; [`sqlite`] implements
//! it on an embedded database, and a shared PostgreSQL can implement it later so several
//! gateways share one registry. Every method that changes state takes the
//! [`ActionRecord`] that describes the change and stores both in one transaction, so no
//! change goes unrecorded.

#[doc(hidden)]
pub mod conformance;
pub mod postgres;
mod sql;
pub mod sqlite;
mod tables;
mod values;

use time::OffsetDateTime;
use ztgw_api::control::{DeviceStatus, Ownership};
use ztgw_pki::{
    CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SecretHash, SerialNumber,
    WgPublicKey,
};

pub use sqlite::SqliteRegistry;

/// What went wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the invitation has already been used")]
    InvitationAlreadyUsed,
    #[error("the WireGuard key is already registered to device {0}")]
    WgKeyInUse(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the registry holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("registry storage error: {0}")]
    Storage(String),
}

/// An invitation: the security unit's prior approval for one employee (G1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub employee: EmployeeId,
    pub role: String,
    pub schedule: Option<String>,
    pub approved_by: String,
    pub reference: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub secret_hash: SecretHash,
    pub used_at: Option<OffsetDateTime>,
    pub used_by: Option<DeviceId>,
}

/// An employee's telework status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeRecord {
    pub id: EmployeeId,
    pub created_at: OffsetDateTime,
    /// Set while the employee's telework is ended (G3).
    pub revoked: Option<StatusChange>,
}

/// Who changed a status, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub at: OffsetDateTime,
    pub by: String,
    pub reason: String,
    pub note: Option<String>,
}

impl StatusChange {
    pub fn new(
        at: OffsetDateTime,
        by: &str,
        reason: impl Into<String>,
        note: Option<String>,
    ) -> Self {
        Self {
            at,
            by: by.to_owned(),
            reason: reason.into(),
            note,
        }
    }
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub employee: EmployeeId,
    pub role: String,
    pub schedule: Option<String>,
    pub invitation: InvitationId,
    pub hostname: String,
    pub os: String,
    pub ownership: Ownership,
    pub wg_key: WgPublicKey,
    pub status: DeviceStatus,
    pub enrolled_at: OffsetDateTime,
    pub approved: Option<StatusChange>,
    /// The last change that took the device out of service (revoked or decommissioned).
    pub ended: Option<StatusChange>,
}

/// A certificate the CA issued to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub serial: SerialNumber,
    pub device: DeviceId,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    pub revoked: Option<(OffsetDateTime, CrlReason)>,
}

/// An auditor: who may read the journal through the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditorRecord {
    pub name: ztgw_pki::AuditorName,
    pub serial: SerialNumber,
    pub not_after: OffsetDateTime,
    pub added: StatusChange,
    pub revoked: Option<StatusChange>,
}

/// A web console operator: who may sign in with which certificate, and do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub name: ztgw_pki::OperatorName,
    pub role: ztgw_api::console::OperatorRole,
    pub serial: SerialNumber,
    pub not_after: OffsetDateTime,
    pub added: StatusChange,
    pub revoked: Option<StatusChange>,
}

/// Everything an enrolment writes, atomically.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub invitation: InvitationId,
    pub device: DeviceRecord,
    pub certificate: CertificateRecord,
    /// The device's second-factor (TOTP) secret.
    pub totp_secret: ztgw_pki::Secret<Vec<u8>>,
}

/// Which way a device leaves service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfService {
    Revoke,
    Decommission,
}

/// A record of an administrative action, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub at: OffsetDateTime,
    pub operator: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// A gateway sharing the registry, as it registered at its last start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    /// Its first name (`[gateway] names`): unique among the gateways of a registry.
    pub name: String,
    /// Where agents reach its control plane (`[control] advertise`).
    pub control: String,
    /// Its WireGuard endpoint.
    pub endpoint: String,
    /// Its tunnel networks: disjoint from every other gateway's.
    pub pools: Vec<String>,
    pub started_at: OffsetDateTime,
}

/// A live session, as the gateway that holds it recorded it: one a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub session: String,
    pub device: DeviceId,
    pub employee: EmployeeId,
    pub gateway: String,
    pub role: String,
    pub tunnel_address: String,
    pub started: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

/// The policy in force on every gateway of the registry: its text, as validated by the
/// gateway that loaded it, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub sha256: String,
    pub text: String,
    pub loaded_at: OffsetDateTime,
    /// The gateway and operator that loaded it.
    pub loaded_by: String,
}

/// An emergency schedule override in force (see `crate::admin::schedule_override`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRecord {
    /// `role:NAME` or `employee:ID`.
    pub target: String,
    pub until: OffsetDateTime,
    pub reason: String,
    pub operator: String,
}

/// Called when another gateway may have changed the registry (see
/// [`Registry::on_change`]).
pub type ChangeHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// The largest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;

/// Opens the registry the settings name: PostgreSQL with `[registry]`, otherwise SQLite in
/// the state directory.
pub fn open(
    settings: &ztgw_config::Settings,
) -> Result<std::sync::Arc<dyn Registry>, RegistryError> {
    match &settings.registry {
        Some(r) => {
            let password = r
                .password_file
                .as_ref()
                .map(|p| {
                    ztgw_pki::read_private_file(p, MAX_PASSWORD_BYTES)
                        .map_err(|e| RegistryError::Storage(format!("{}: {e}", p.display())))
                })
                .transpose()?;
            let ca = r
                .ca_file
                .as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map_err(|e| RegistryError::Storage(format!("{}: {e}", p.display())))
                })
                .transpose()?;
            Ok(std::sync::Arc::new(postgres::PgRegistry::open(
                &r.url,
                password.as_ref(),
                ca.as_deref(),
                r.pool_size,
            )?))
        }
        None => Ok(std::sync::Arc::new(SqliteRegistry::open(
            &settings.state().registry(),
        )?)),
    }
}

/// The registry interface.
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Records an invitation; the employee is created if new.
    fn create_invitation(
        &self,
        inv: &InvitationRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;
    fn invitation(&self, id: &InvitationId) -> Result<Option<InvitationRecord>, RegistryError>;
    fn invitations(&self) -> Result<Vec<InvitationRecord>, RegistryError>;

    /// Marks the invitation used, and stores the device and its first certificate, all
    /// or nothing. Fails with `InvitationAlreadyUsed` if another enrolment won the race,
    /// and `WgKeyInUse` if a device in service already has the key.
    fn complete_enrolment(&self, e: &Enrolment, action: &ActionRecord)
    -> Result<(), RegistryError>;

    fn employee(&self, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError>;
    /// Ends an employee's telework: the employee and every device in service are
    /// revoked, with their certificates. Returns the devices that were in service.
    fn revoke_employee(
        &self,
        id: &EmployeeId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<Vec<DeviceId>, RegistryError>;
    /// Lets a revoked employee be invited again (devices stay revoked).
    fn reinstate_employee(
        &self,
        id: &EmployeeId,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;

    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError>;
    fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError>;
    /// Pending → active.
    fn approve_device(
        &self,
        id: &DeviceId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;
    /// Gives a device in service (pending or active) another role, for its next sessions.
    fn set_device_role(
        &self,
        id: &DeviceId,
        role: &str,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;
    /// Takes a device out of service and revokes its certificates with `reason`.
    fn end_device(
        &self,
        id: &DeviceId,
        how: EndOfService,
        change: &StatusChange,
        reason: CrlReason,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;

    fn add_certificate(
        &self,
        cert: &CertificateRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;
    fn certificate(
        &self,
        serial: &SerialNumber,
    ) -> Result<Option<CertificateRecord>, RegistryError>;
    fn certificates_of(&self, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError>;
    /// Revokes (as superseded) the device's certificates in `serials` that are not
    /// revoked yet, with the action, in one transaction; how many it revoked.
    fn supersede_certificates(
        &self,
        device: &DeviceId,
        serials: &[SerialNumber],
        at: OffsetDateTime,
        action: &ActionRecord,
    ) -> Result<usize, RegistryError>;
    /// Revoked certificates that have not yet expired at `now`: what the CRL must list.
    fn revoked_certificates(&self, now: OffsetDateTime)
    -> Result<Vec<RevokedEntry>, RegistryError>;
    /// A number larger than any returned before, for the next CRL.
    fn next_crl_number(&self) -> Result<u64, RegistryError>;

    /// Adds an auditor. Names are never reused.
    fn add_auditor(&self, a: &AuditorRecord, action: &ActionRecord) -> Result<(), RegistryError>;
    fn auditor(&self, name: &ztgw_pki::AuditorName)
    -> Result<Option<AuditorRecord>, RegistryError>;
    fn revoke_auditor(
        &self,
        name: &ztgw_pki::AuditorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;

    /// Adds a web console operator. Names are never reused.
    fn add_operator(&self, o: &OperatorRecord, action: &ActionRecord) -> Result<(), RegistryError>;
    fn operator(
        &self,
        name: &ztgw_pki::OperatorName,
    ) -> Result<Option<OperatorRecord>, RegistryError>;
    /// Every operator, revoked ones included, by name.
    fn operators(&self) -> Result<Vec<OperatorRecord>, RegistryError>;
    fn revoke_operator(
        &self,
        name: &ztgw_pki::OperatorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError>;

    /// Records an action that changes nothing in the registry (a policy load or refusal).
    fn record_action(&self, action: &ActionRecord) -> Result<(), RegistryError>;
    /// The device's TOTP secret (second factor, written at enrolment) and the last step
    /// accepted.
    fn totp(&self, device: &DeviceId) -> Result<Option<(Vec<u8>, u64)>, RegistryError>;
    /// Records `step` as used if it is later than the last one; false for a replay.
    fn use_totp_step(&self, device: &DeviceId, step: u64) -> Result<bool, RegistryError>;
    /// The device's second-factor failures since its last success (none: default).
    fn factor_attempts(
        &self,
        device: &DeviceId,
    ) -> Result<crate::session::factor::Attempts, RegistryError>;
    fn set_factor_attempts(
        &self,
        device: &DeviceId,
        attempts: &crate::session::factor::Attempts,
    ) -> Result<(), RegistryError>;
    /// Clears the device's second-factor failures and lockout (`ztgw device unlock`),
    /// with the action, in one transaction.
    fn unlock_factor(&self, device: &DeviceId, action: &ActionRecord) -> Result<(), RegistryError>;
    fn actions(&self) -> Result<Vec<ActionRecord>, RegistryError>;

    /// Records `gateway` as sharing the registry (replacing what it recorded before),
    /// unless one of its tunnel networks overlaps another gateway's: then
    /// `Duplicate(..)` says which, and nothing changes.
    fn register_gateway(&self, gateway: &GatewayRecord) -> Result<(), RegistryError>;
    fn gateways(&self) -> Result<Vec<GatewayRecord>, RegistryError>;

    /// Records `s` as its device's live session; returns the session it replaced (the
    /// device's previous one, on this gateway or another), which must end.
    fn claim_session(&self, s: &LiveSession) -> Result<Option<LiveSession>, RegistryError>;
    /// Forgets session `id` (it ended); nothing if another session replaced it.
    fn release_session(&self, id: &str) -> Result<(), RegistryError>;
    /// Forgets the sessions `gateway` recorded except those in `keep`: what it no longer
    /// holds (a crash's leftovers, ends that could not be recorded). How many.
    fn release_sessions_of(&self, gateway: &str, keep: &[String]) -> Result<usize, RegistryError>;
    fn live_sessions(&self) -> Result<Vec<LiveSession>, RegistryError>;

    /// Puts `policy` in force for every gateway of the registry, with the action.
    fn put_policy(&self, policy: &StoredPolicy, action: &ActionRecord)
    -> Result<(), RegistryError>;
    fn policy_in_force(&self) -> Result<Option<StoredPolicy>, RegistryError>;

    /// Sets the override for its target (replacing one it had), with the action.
    fn set_override(&self, o: &OverrideRecord, action: &ActionRecord) -> Result<(), RegistryError>;
    /// The overrides still in force at `now`.
    fn overrides(&self, now: OffsetDateTime) -> Result<Vec<OverrideRecord>, RegistryError>;

    /// A number that grows with every change another gateway must act on (an action
    /// recorded, a session replaced): when it has not moved, nothing needs a look.
    fn revision(&self) -> Result<i64, RegistryError>;

    /// Whether other gateways may share this registry (and change it).
    fn shared(&self) -> bool {
        false
    }
    /// Has `hook` called soon after another gateway changes the registry (and after a
    /// lost connection to it comes back, when changes may have been missed). A registry
    /// no other gateway shares never calls it.
    fn on_change(&self, hook: ChangeHook) -> Result<(), RegistryError> {
        let _ = hook;
        Ok(())
    }
}
