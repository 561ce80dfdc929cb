//! The security unit's actions on the registry: invitations, approval, revocation,
//! decommissioning, ending an employee's telework.
//!
//! An [`AdminRequest`] is the same whether it arrives over the admin socket of a running
//! gateway ([`socket`]) or is carried out by the `ztgw` command itself when no gateway
//! runs: both call [`handle`]. Every action is recorded with its operator, time and
//! reason in the same transaction as the change.

pub mod incident;
pub mod operators;
pub mod queued;
pub mod schedule_override;
pub mod sessions;
pub mod socket;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ztgw_api::control::{DeviceStatus, Ownership, RedactedString};
use ztgw_pki::{CrlReason, DeviceId, EmployeeId, Invitation, InvitationId, Secret, SecretHash};

use crate::active_policy::ActivePolicy;
use crate::clock::{EntropyError, random};
use crate::context::Context;
use crate::enrolment::rfc3339;
use crate::journal::{Event, JournalError};
use crate::registry::{
    self, ActionRecord, DeviceRecord, InvitationRecord, RegistryError, StatusChange,
};
use crate::session::lifecycle::{EndReason, Revoked};

/// Longest free-text field (reference, note, operator) accepted.
pub const MAX_TEXT_LEN: usize = 500;
/// Longest invitation validity.
pub const MAX_INVITATION_VALIDITY_SECS: u64 = 30 * 86_400;

/// One action, with who asks for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEnvelope {
    pub operator: String,
    pub request: AdminRequest,
}

/// What the security unit can ask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminRequest {
    Invite {
        employee: EmployeeId,
        /// With a `[directory]`, taken from it when absent.
        #[serde(default)]
        role: Option<String>,
        schedule: Option<String>,
        approved_by: String,
        reference: String,
        valid_for_secs: Option<u64>,
    },
    DeviceList,
    DeviceShow {
        device: DeviceId,
    },
    DeviceApprove {
        device: DeviceId,
        note: Option<String>,
    },
    DeviceRevoke {
        device: DeviceId,
        reason: RevokeReason,
        note: Option<String>,
    },
    /// Gives a device another role (one the policy in force defines). Its live session
    /// ends at once, to be admitted again under the new role.
    DeviceSetRole {
        device: DeviceId,
        role: String,
        note: Option<String>,
    },
    /// Lifts a second-factor lockout (and clears the count of wrong codes).
    DeviceUnlock {
        device: DeviceId,
        note: Option<String>,
    },
    DeviceDecommission {
        device: DeviceId,
        note: Option<String>,
    },
    EmployeeRevoke {
        employee: EmployeeId,
        reason: EmployeeRevokeReason,
        note: Option<String>,
    },
    EmployeeReinstate {
        employee: EmployeeId,
        note: Option<String>,
    },
    /// Re-read the policy; it replaces the one in force only if valid and its tests pass.
    PolicyReload,
    /// An incident (G13): the device, or all of the employee's, revoked at once.
    IncidentReport {
        device: Option<DeviceId>,
        employee: Option<EmployeeId>,
        kind: incident::IncidentKind,
        note: Option<String>,
    },
    /// An emergency override of the schedule for a role or an employee, until a time.
    ScheduleOverride {
        role: Option<String>,
        employee: Option<EmployeeId>,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
        reason: String,
    },
    /// The live sessions (running gateway only).
    SessionList,
    /// End a live session now (running gateway only).
    SessionEnd {
        session: String,
        reason: String,
    },
    /// Issue an auditor's certificate for the key in the CSR.
    AuditorAdd {
        name: ztgw_pki::AuditorName,
        csr_pem: String,
        valid_for_secs: u64,
    },
    AuditorRevoke {
        name: ztgw_pki::AuditorName,
        note: Option<String>,
    },
    /// Issue a web console operator's certificate for the key in the CSR, with a role.
    OperatorAdd {
        name: ztgw_pki::OperatorName,
        role: ztgw_api::console::OperatorRole,
        csr_pem: String,
        valid_for_secs: u64,
    },
    OperatorRevoke {
        name: ztgw_pki::OperatorName,
        note: Option<String>,
    },
    OperatorList,
    /// An encrypted backup of the gateway's state, handed back to the caller, which
    /// writes it (the gateway writes no file where a client says). `destination` is only
    /// recorded in the journal.
    Backup {
        destination: String,
        passphrase: RedactedString,
    },
    /// Read the directory now and apply what it changes (`force`: even past the share
    /// of employees a sync may end). Carried out by the running gateway's directory
    /// sync, or by the command itself when no gateway runs.
    DirectorySync {
        force: bool,
    },
}

/// Why a device is revoked (`ztgw device revoke --reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeReason {
    Lost,
    Stolen,
    Compromised,
    /// The telework arrangement on this device ended.
    Ended,
    Other,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Stolen => "stolen",
            Self::Compromised => "compromised",
            Self::Ended => "ended",
            Self::Other => "other",
        }
    }

    fn crl_reason(self) -> CrlReason {
        match self {
            Self::Lost | Self::Stolen | Self::Compromised => CrlReason::KeyCompromise,
            Self::Ended => CrlReason::CessationOfOperation,
            Self::Other => CrlReason::Unspecified,
        }
    }
}

/// Why an employee's telework ends (`ztgw employee revoke --reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EmployeeRevokeReason {
    /// Telework ended by the administration.
    Ended,
    /// The employee asked to stop teleworking (G3).
    EmployeeRequest,
    /// The employee left the administration.
    Departed,
    Incident,
    Other,
    /// The directory no longer places the employee in a telework group, or disabled or
    /// deleted the account (set by the directory sync only).
    #[value(skip)]
    Directory,
}

impl EmployeeRevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ended => "ended",
            Self::EmployeeRequest => "employee-request",
            Self::Directory => "directory",
            Self::Departed => "departed",
            Self::Incident => "incident",
            Self::Other => "other",
        }
    }
}

/// A live session another gateway of the registry holds, as the registry shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteSession {
    pub id: String,
    pub gateway: String,
    pub device: DeviceId,
    pub employee: ztgw_pki::EmployeeId,
    pub role: String,
    pub tunnel_addr: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: time::OffsetDateTime,
}

/// What an action answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AdminResponse {
    Invitation(InvitationIssued),
    Sessions {
        sessions: Vec<crate::session::lifecycle::Session>,
        /// With a shared registry: the live sessions other gateways hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        elsewhere: Vec<RemoteSession>,
        /// Why the other gateways' sessions could not be listed (the registry is down).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elsewhere_unknown: Option<String>,
    },
    Devices {
        devices: Vec<DeviceSummary>,
    },
    Device {
        device: Box<DeviceDetail>,
    },
    Done {
        message: String,
        #[serde(default)]
        devices_ended: Vec<DeviceId>,
    },
    Auditor {
        name: ztgw_pki::AuditorName,
        certificate_pem: String,
        ca_pem: String,
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
    },
    Operator {
        name: ztgw_pki::OperatorName,
        role: ztgw_api::console::OperatorRole,
        certificate_pem: String,
        ca_pem: String,
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
    },
    Operators {
        operators: Vec<ztgw_api::console::OperatorView>,
    },
    /// An encrypted backup. On the admin socket, this line announces `bytes` raw bytes
    /// that follow it; the client puts them in `archive`.
    Backup {
        files: usize,
        bytes: u64,
        #[serde(skip)]
        archive: Archive,
    },
    DirectorySync(crate::directory::sync::SyncReport),
}

/// An encrypted backup's bytes (its `Debug` shows only the length).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Archive(pub Vec<u8>);

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Archive({} bytes)", self.0.len())
    }
}

/// A new invitation, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationIssued {
    pub id: InvitationId,
    pub employee: EmployeeId,
    pub role: String,
    pub schedule: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The string the employee pastes into `ztgw-agent enroll`.
    pub invitation: RedactedString,
}

/// A device as `ztgw device list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub id: DeviceId,
    pub employee: EmployeeId,
    pub role: String,
    pub status: DeviceStatus,
    pub hostname: String,
    pub ownership: Ownership,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

/// A device as `ztgw device show` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    pub schedule: Option<String>,
    pub os: String,
    pub invitation: InvitationId,
    pub wireguard_public_key: String,
    pub approved: Option<ChangeView>,
    pub ended: Option<ChangeView>,
    pub certificates: Vec<CertificateView>,
}

/// Who changed a status, when and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: String,
    pub reason: String,
    pub note: Option<String>,
}

/// One certificate of a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateView {
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub code: AdminErrorCode,
    pub message: String,
}

/// The kinds of refusal, each with its own exit code in the `ztgw` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminErrorCode {
    /// The request itself is wrong (unknown role, bad text).
    Invalid,
    NotFound,
    /// The target is in a state that does not allow the action.
    Conflict,
    /// The gateway could not carry it out.
    Internal,
    /// The caller may not use the admin socket (not root, not in `[admin] group`), or
    /// the socket has as many clients as it serves at once.
    Forbidden,
}

impl AdminError {
    pub(crate) fn new(code: AdminErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(what) => {
                Self::new(AdminErrorCode::NotFound, format!("{what} not found"))
            }
            other => Self::new(AdminErrorCode::Internal, other.to_string()),
        }
    }
}

impl From<EntropyError> for AdminError {
    fn from(e: EntropyError) -> Self {
        Self::new(AdminErrorCode::Internal, e.to_string())
    }
}

/// What an action changed of who may have access. A running gateway's session layer
/// applies each change before the action answers (`SessionService::apply`); offline
/// there are no sessions to apply them to.
#[derive(Debug, Clone)]
pub enum AccessChange {
    /// A device's or an employee's access was taken away.
    Revoked(Revoked, EndReason),
    /// A new policy is in force.
    PolicyLoaded(Arc<ActivePolicy>),
}

/// What an action did: its answer, and the changes of access it made. The changes are
/// there even when the answer is an error (a revocation recorded whose revocation list
/// could not be published still ends the sessions).
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<AdminResponse, AdminError>,
    pub access: Vec<AccessChange>,
}

/// Carries out one action for `operator`. A revocation made while the registry cannot
/// be reached is queued for it ([`queued`]).
pub fn handle(ctx: &Context, operator: &str, request: &AdminRequest) -> Outcome {
    if let Some(out) = queued::intercept(ctx, operator, request) {
        return out;
    }
    handle_now(ctx, operator, request)
}

/// [`handle`] without the queue: carried out now, or failing.
pub(crate) fn handle_now(ctx: &Context, operator: &str, request: &AdminRequest) -> Outcome {
    let mut access = Vec::new();
    let result = act(ctx, operator, request, &mut access);
    Outcome { result, access }
}

fn act(
    ctx: &Context,
    operator: &str,
    request: &AdminRequest,
    access: &mut Vec<AccessChange>,
) -> Result<AdminResponse, AdminError> {
    check_text("operator", operator, true)?;
    let now = ctx.clock.now();
    match request {
        AdminRequest::Invite {
            employee,
            role,
            schedule,
            approved_by,
            reference,
            valid_for_secs,
        } => invite(
            ctx,
            now,
            operator,
            employee,
            role.as_deref().ok_or_else(|| {
                AdminError::new(
                    AdminErrorCode::Invalid,
                    "give the role (--role): without a [directory] it is not known",
                )
            })?,
            schedule.as_deref(),
            approved_by,
            reference,
            *valid_for_secs,
        ),
        AdminRequest::DeviceList => Ok(AdminResponse::Devices {
            devices: ctx.registry.devices()?.iter().map(summary).collect(),
        }),
        AdminRequest::DeviceShow { device } => Ok(AdminResponse::Device {
            device: Box::new(detail(ctx, &find_device(ctx, device)?)?),
        }),
        AdminRequest::DeviceApprove { device, note } => {
            check_note(note)?;
            let record = find_device(ctx, device)?;
            if record.status != DeviceStatus::Pending {
                return Err(AdminError::new(
                    AdminErrorCode::Conflict,
                    format!("device {device} is {}, not pending", record.status.as_str()),
                ));
            }
            let change = StatusChange::new(now, operator, "approved", note.clone());
            let action = action(
                now,
                operator,
                "device.approved",
                device.as_str(),
                note.as_deref().unwrap_or(""),
            );
            let seq = journal(
                ctx,
                Event::DeviceApproved {
                    device: device.clone(),
                    employee: record.employee.clone(),
                    operator: operator.to_owned(),
                    note: note.clone(),
                },
            )?;
            apply(ctx, seq, || {
                ctx.registry.approve_device(device, &change, &action)
            })?;
            Ok(done(format!("device {device} approved"), vec![]))
        }
        AdminRequest::DeviceSetRole { device, role, note } => {
            check_note(note)?;
            let record = find_device(ctx, device)?;
            if !matches!(record.status, DeviceStatus::Pending | DeviceStatus::Active) {
                return Err(AdminError::new(
                    AdminErrorCode::Conflict,
                    format!(
                        "device {device} is {}: only a device in service has a role",
                        record.status.as_str()
                    ),
                ));
            }
            if &record.role == role {
                return Err(AdminError::new(
                    AdminErrorCode::Conflict,
                    format!("device {device} already has role {role}"),
                ));
            }
            defined_role(&ctx.policy.current().policy, role)?;
            let detail = format!(
                "from={} to={role} note={}",
                record.role,
                note.as_deref().unwrap_or("")
            );
            let action = action(
                now,
                operator,
                "device.role_changed",
                device.as_str(),
                &detail,
            );
            // It takes the old role's access away: applied even if the journal fails.
            let seq = journal_reducing_access(
                ctx,
                Event::DeviceRoleChanged {
                    device: device.clone(),
                    employee: record.employee.clone(),
                    from: record.role.clone(),
                    to: role.clone(),
                    operator: operator.to_owned(),
                    note: note.clone(),
                },
            )?;
            apply(ctx, seq, || {
                ctx.registry.set_device_role(device, role, &action)
            })?;
            access.push(AccessChange::Revoked(
                Revoked::Role(device.clone(), role.clone()),
                EndReason::RoleChanged(role.clone()),
            ));
            Ok(done(
                format!(
                    "device {device}: role {} -> {role} (a live session ends, to be admitted again under {role})",
                    record.role
                ),
                vec![],
            ))
        }
        AdminRequest::DeviceUnlock { device, note } => {
            check_note(note)?;
            let record = find_device(ctx, device)?;
            let action = action(
                now,
                operator,
                "second-factor.unlocked",
                device.as_str(),
                note.as_deref().unwrap_or(""),
            );
            let seq = journal(
                ctx,
                Event::SecondFactorUnlocked {
                    device: device.clone(),
                    employee: record.employee.clone(),
                    operator: operator.to_owned(),
                    note: note.clone(),
                },
            )?;
            apply(ctx, seq, || ctx.registry.unlock_factor(device, &action))?;
            Ok(done(
                format!("device {device}: second factor unlocked, wrong codes forgotten"),
                vec![],
            ))
        }
        AdminRequest::DeviceRevoke {
            device,
            reason,
            note,
        } => {
            end_device(
                ctx,
                now,
                operator,
                device,
                EndOfService::Revoke(*reason),
                note,
                EndReason::DeviceRevoked,
                access,
            )?;
            Ok(done(
                format!("device {device} revoked ({})", reason.as_str()),
                vec![device.clone()],
            ))
        }
        AdminRequest::DeviceDecommission { device, note } => {
            end_device(
                ctx,
                now,
                operator,
                device,
                EndOfService::Decommission,
                note,
                EndReason::DeviceRevoked,
                access,
            )?;
            Ok(done(
                format!("device {device} decommissioned; its record is kept"),
                vec![device.clone()],
            ))
        }
        AdminRequest::EmployeeRevoke {
            employee,
            reason,
            note,
        } => {
            check_note(note)?;
            let existing = ctx.registry.employee(employee)?.ok_or_else(|| {
                AdminError::new(
                    AdminErrorCode::NotFound,
                    format!("employee {employee} not found"),
                )
            })?;
            if existing.revoked.is_some() {
                return Err(AdminError::new(
                    AdminErrorCode::Conflict,
                    format!("employee {employee}'s telework is already ended"),
                ));
            }
            let change = StatusChange::new(now, operator, reason.as_str(), note.clone());
            let detail = format!(
                "reason={} note={}",
                reason.as_str(),
                note.as_deref().unwrap_or("")
            );
            let action = action(
                now,
                operator,
                "employee.revoked",
                employee.as_str(),
                &detail,
            );
            let in_service: Vec<DeviceId> = ctx
                .registry
                .devices()?
                .into_iter()
                .filter(|d| {
                    &d.employee == employee
                        && matches!(d.status, DeviceStatus::Pending | DeviceStatus::Active)
                })
                .map(|d| d.id)
                .collect();
            let seq = journal_reducing_access(
                ctx,
                Event::EmployeeRevoked {
                    employee: employee.clone(),
                    operator: operator.to_owned(),
                    reason: reason.as_str().into(),
                    note: note.clone(),
                    devices: in_service,
                },
            )?;
            let ended = apply(ctx, seq, || {
                ctx.registry.revoke_employee(employee, &change, &action)
            })?;
            let why = match reason {
                EmployeeRevokeReason::Incident => EndReason::Incident,
                _ => EndReason::EmployeeRevoked,
            };
            access.push(AccessChange::Revoked(
                Revoked::Employee(employee.clone()),
                why,
            ));
            publish(ctx)?;
            Ok(done(
                format!(
                    "employee {employee}'s telework ended; {} device(s) revoked",
                    ended.len()
                ),
                ended,
            ))
        }
        AdminRequest::AuditorAdd {
            name,
            csr_pem,
            valid_for_secs,
        } => add_auditor(ctx, now, operator, name, csr_pem, *valid_for_secs),
        AdminRequest::AuditorRevoke { name, note } => {
            check_note(note)?;
            let change = StatusChange::new(now, operator, "revoked", note.clone());
            let action = action(
                now,
                operator,
                "auditor.revoked",
                name.as_str(),
                note.as_deref().unwrap_or(""),
            );
            let seq = journal_reducing_access(
                ctx,
                Event::AuditorRevoked {
                    auditor: name.clone(),
                    operator: operator.to_owned(),
                    note: note.clone(),
                },
            )?;
            apply(ctx, seq, || {
                ctx.registry.revoke_auditor(name, &change, &action)
            })?;
            publish(ctx)?;
            Ok(done(format!("auditor {name} revoked"), vec![]))
        }
        AdminRequest::OperatorAdd {
            name,
            role,
            csr_pem,
            valid_for_secs,
        } => operators::add(ctx, now, operator, name, *role, csr_pem, *valid_for_secs),
        AdminRequest::OperatorRevoke { name, note } => {
            operators::revoke(ctx, now, operator, name, note)
        }
        AdminRequest::OperatorList => operators::list(ctx),
        AdminRequest::DirectorySync { .. } => Err(AdminError::new(
            AdminErrorCode::Invalid,
            "the directory sync runs in the gateway's directory task or in `ztgw directory sync`, not as an action",
        )),
        AdminRequest::Backup {
            destination,
            passphrase,
        } => {
            let seq = journal(
                ctx,
                Event::BackupCreated {
                    file: destination.clone(),
                    operator: operator.to_owned(),
                },
            )?;
            let secret = Secret::new(passphrase.expose().to_owned());
            match crate::backup::seal(ctx, &secret) {
                Ok((archive, s)) => Ok(AdminResponse::Backup {
                    files: s.files,
                    bytes: s.bytes,
                    archive: Archive(archive),
                }),
                Err(e) => {
                    let _ = ctx.journal(&Event::ActionFailed {
                        seq,
                        error: e.to_string(),
                    });
                    let code = match e {
                        crate::backup::BackupError::WeakPassphrase => AdminErrorCode::Invalid,
                        _ => AdminErrorCode::Internal,
                    };
                    Err(AdminError::new(code, e.to_string()))
                }
            }
        }
        AdminRequest::IncidentReport {
            device,
            employee,
            kind,
            note,
        } => incident::report(
            ctx,
            now,
            operator,
            device.as_ref(),
            employee.as_ref(),
            *kind,
            note,
            access,
        ),
        AdminRequest::ScheduleOverride {
            role,
            employee,
            until,
            reason,
        } => schedule_override::set(
            ctx,
            now,
            operator,
            role.as_deref(),
            employee.as_ref(),
            *until,
            reason,
        ),
        AdminRequest::SessionList | AdminRequest::SessionEnd { .. } => Err(AdminError::new(
            AdminErrorCode::Conflict,
            "sessions exist only in a running gateway, and none answers on the admin socket",
        )),
        AdminRequest::PolicyReload => match ctx.reload_policy(operator) {
            Ok(active) => {
                access.push(AccessChange::PolicyLoaded(active.clone()));
                Ok(done(
                    format!(
                        "policy loaded: sha256 {}, {} roles, {} rules, {} tests passed, {} warnings",
                        active.sha256,
                        active.policy.roles.len(),
                        active.compiled.rule_count(),
                        active.policy.tests.len(),
                        active.warnings.len()
                    ),
                    vec![],
                ))
            }
            Err(crate::context::ReloadError::Refused(r)) => Err(AdminError::new(
                AdminErrorCode::Invalid,
                format!(
                    "the policy is refused and the one in force stays: {}",
                    r.refusal
                ),
            )),
            Err(e) => Err(AdminError::new(AdminErrorCode::Internal, e.to_string())),
        },
        AdminRequest::EmployeeReinstate { employee, note } => {
            check_note(note)?;
            let existing = ctx.registry.employee(employee)?.ok_or_else(|| {
                AdminError::new(
                    AdminErrorCode::NotFound,
                    format!("employee {employee} not found"),
                )
            })?;
            if existing.revoked.is_none() {
                return Err(AdminError::new(
                    AdminErrorCode::Conflict,
                    format!("employee {employee} is not revoked"),
                ));
            }
            let action = action(
                now,
                operator,
                "employee.reinstated",
                employee.as_str(),
                note.as_deref().unwrap_or(""),
            );
            let seq = journal(
                ctx,
                Event::EmployeeReinstated {
                    employee: employee.clone(),
                    operator: operator.to_owned(),
                    note: note.clone(),
                },
            )?;
            apply(ctx, seq, || {
                ctx.registry.reinstate_employee(employee, &action)
            })?;
            Ok(done(
                format!("employee {employee} may be invited again; earlier devices stay revoked"),
                vec![],
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn invite(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    employee: &EmployeeId,
    role: &str,
    schedule: Option<&str>,
    approved_by: &str,
    reference: &str,
    valid_for_secs: Option<u64>,
) -> Result<AdminResponse, AdminError> {
    check_text("approved-by", approved_by, true)?;
    check_text("reference", reference, true)?;
    let active = ctx.policy.current();
    let policy = &active.policy;
    defined_role(policy, role)?;
    if let Some(schedule) = schedule
        && !policy.has_schedule(schedule)
    {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!("schedule {schedule:?} is not defined in the policy"),
        ));
    }
    if let Some(existing) = ctx.registry.employee(employee)?
        && let Some(revoked) = existing.revoked
    {
        return Err(AdminError::new(
            AdminErrorCode::Conflict,
            format!(
                "employee {employee}'s telework was ended on {} by {}; reinstate with `ztgw employee reinstate {employee}` first",
                rfc3339(revoked.at),
                revoked.by
            ),
        ));
    }
    let validity = valid_for_secs
        .unwrap_or_else(|| ctx.settings.enrolment.invitation_validity.get().as_secs());
    if validity == 0 || validity > MAX_INVITATION_VALIDITY_SECS {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            "an invitation may be valid for 1 second to 30 days",
        ));
    }
    let id = InvitationId::from_random(random(ctx.entropy.as_ref())?);
    let secret: [u8; 32] = random(ctx.entropy.as_ref())?;
    let expires_at = now + time::Duration::seconds(i64::try_from(validity).unwrap_or(i64::MAX));
    let record = InvitationRecord {
        id: id.clone(),
        employee: employee.clone(),
        role: role.to_owned(),
        schedule: schedule.map(str::to_owned),
        approved_by: approved_by.to_owned(),
        reference: reference.to_owned(),
        created_by: operator.to_owned(),
        created_at: now,
        expires_at,
        secret_hash: SecretHash::of(&id, &secret),
        used_at: None,
        used_by: None,
    };
    let text = Invitation {
        ca_fingerprint: *ctx.ca.fingerprint(),
        id: id.clone(),
        secret: Secret::new(secret),
        control_address: ctx.settings.control.advertise.clone(),
        other_addresses: other_gateways(ctx)?,
    }
    .encode()
    .map_err(|e| AdminError::new(AdminErrorCode::Invalid, format!("control.advertise: {e}")))?;
    let detail = format!(
        "employee={employee} role={role} schedule={} approved_by={approved_by} reference={reference} expires_at={}",
        schedule.unwrap_or("-"),
        rfc3339(expires_at)
    );
    let seq = journal(
        ctx,
        Event::InvitationCreated {
            invitation: id.clone(),
            employee: employee.clone(),
            role: role.to_owned(),
            schedule: schedule.map(str::to_owned),
            approved_by: approved_by.to_owned(),
            reference: reference.to_owned(),
            expires_at: rfc3339(expires_at),
            operator: operator.to_owned(),
        },
    )?;
    apply(ctx, seq, || {
        ctx.registry.create_invitation(
            &record,
            &action(now, operator, "invitation.created", id.as_str(), &detail),
        )
    })?;
    Ok(AdminResponse::Invitation(InvitationIssued {
        id,
        employee: employee.clone(),
        role: role.to_owned(),
        schedule: schedule.map(str::to_owned),
        expires_at,
        invitation: RedactedString::new(text),
    }))
}

/// Journals `event` before the action takes effect; refuses the action if it cannot.
fn journal(ctx: &Context, event: Event) -> Result<u64, AdminError> {
    ctx.journal(&event)
        .map_err(|e: JournalError| AdminError::new(AdminErrorCode::Internal, format!("{e}")))
}

/// How a device leaves service.
#[derive(Debug, Clone, Copy)]
enum EndOfService {
    Revoke(RevokeReason),
    /// Equipment returned (G14).
    Decommission,
}

/// The control-plane addresses of the registry's other gateways, for an invitation: as
/// many as its address field holds (255 bytes), in name order.
fn other_gateways(ctx: &Context) -> Result<Vec<String>, AdminError> {
    if !ctx.registry.shared() {
        return Ok(Vec::new());
    }
    let mut room = 255usize.saturating_sub(ctx.settings.control.advertise.len());
    let mut out = Vec::new();
    for g in ctx.registry.gateways()? {
        if g.name == ctx.gateway_name() || g.control == ctx.settings.control.advertise {
            continue;
        }
        let need = g.control.len() + 1;
        if need > room {
            tracing::warn!(gateway = %g.name, "an invitation has no room for more gateways' addresses");
            break;
        }
        room -= need;
        out.push(g.control);
    }
    Ok(out)
}

/// Takes a device out of service: its certificates are revoked and the CRL republished.
/// Journaled as taking access away: it happens even if the journal cannot record it.
/// Its sessions end with `sessions_end` (pushed to `access`).
#[allow(clippy::too_many_arguments)]
fn end_device(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    device: &DeviceId,
    how: EndOfService,
    note: &Option<String>,
    sessions_end: EndReason,
    access: &mut Vec<AccessChange>,
) -> Result<(), AdminError> {
    check_note(note)?;
    let record = find_device(ctx, device)?;
    let allowed = match how {
        EndOfService::Revoke(_) => {
            matches!(record.status, DeviceStatus::Pending | DeviceStatus::Active)
        }
        EndOfService::Decommission => record.status != DeviceStatus::Decommissioned,
    };
    if !allowed {
        return Err(AdminError::new(
            AdminErrorCode::Conflict,
            format!("device {device} is already {}", record.status.as_str()),
        ));
    }
    let (reason, crl_reason, registry_how, action_name, event) = match how {
        EndOfService::Revoke(r) => (
            r.as_str(),
            r.crl_reason(),
            registry::EndOfService::Revoke,
            "device.revoked",
            Event::DeviceRevoked {
                device: device.clone(),
                employee: record.employee.clone(),
                operator: operator.to_owned(),
                reason: r.as_str().into(),
                note: note.clone(),
            },
        ),
        EndOfService::Decommission => (
            "equipment returned",
            CrlReason::CessationOfOperation,
            registry::EndOfService::Decommission,
            "device.decommissioned",
            Event::DeviceDecommissioned {
                device: device.clone(),
                employee: record.employee.clone(),
                operator: operator.to_owned(),
                note: note.clone(),
            },
        ),
    };
    let change = StatusChange::new(now, operator, reason, note.clone());
    let detail = format!("reason={reason} note={}", note.as_deref().unwrap_or(""));
    let action = action(now, operator, action_name, device.as_str(), &detail);
    let seq = journal_reducing_access(ctx, event)?;
    apply(ctx, seq, || {
        ctx.registry
            .end_device(device, registry_how, &change, crl_reason, &action)
    })?;
    access.push(AccessChange::Revoked(
        Revoked::Device(device.clone()),
        sessions_end,
    ));
    publish(ctx)
}

/// Longest validity of a person's certificate (an auditor's, a console operator's).
pub const MAX_PERSON_CERT_VALIDITY_SECS: u64 = 2 * 365 * 86_400;

/// What a person's client certificate is signed from: their CSR checked, a fresh serial,
/// and a validity from `now` of 1 second to [`MAX_PERSON_CERT_VALIDITY_SECS`]. `who` names
/// the kind of person in the refusals ("an auditor"); `exists` whether the name is taken
/// (names are never reused).
struct PersonCertificate {
    csr: ztgw_pki::CheckedCsr,
    serial: ztgw_pki::SerialNumber,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

fn person_certificate(
    ctx: &Context,
    now: OffsetDateTime,
    who: &str,
    name: &str,
    exists: bool,
    csr_pem: &str,
    valid_for_secs: u64,
) -> Result<PersonCertificate, AdminError> {
    if valid_for_secs == 0 || valid_for_secs > MAX_PERSON_CERT_VALIDITY_SECS {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!("{who}'s certificate may be valid for 1 second to 2 years"),
        ));
    }
    if exists {
        return Err(AdminError::new(
            AdminErrorCode::Conflict,
            format!("{name} exists (names are never reused; revoke and choose another name)"),
        ));
    }
    let csr = ztgw_pki::CheckedCsr::parse_pem(csr_pem)
        .map_err(|e| AdminError::new(AdminErrorCode::Invalid, format!("the CSR: {e}")))?;
    Ok(PersonCertificate {
        csr,
        serial: ztgw_pki::SerialNumber::from_random(random(ctx.entropy.as_ref())?),
        not_before: now,
        not_after: now + time::Duration::seconds(i64::try_from(valid_for_secs).unwrap_or(i64::MAX)),
    })
}

fn add_auditor(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    name: &ztgw_pki::AuditorName,
    csr_pem: &str,
    valid_for_secs: u64,
) -> Result<AdminResponse, AdminError> {
    let p = person_certificate(
        ctx,
        now,
        "an auditor",
        &format!("auditor {name}"),
        ctx.registry.auditor(name)?.is_some(),
        csr_pem,
        valid_for_secs,
    )?;
    let csr = p.csr;
    let claims = ztgw_pki::AuditorClaims {
        name: name.clone(),
        serial: p.serial,
        not_before: p.not_before,
        not_after: p.not_after,
    };
    let cert = ctx
        .ca
        .issue_auditor(&csr, &claims)
        .map_err(|e| AdminError::new(AdminErrorCode::Internal, e.to_string()))?;
    let record = crate::registry::AuditorRecord {
        name: name.clone(),
        serial: cert.serial.clone(),
        not_after: cert.not_after,
        added: StatusChange::new(now, operator, "added", None),
        revoked: None,
    };
    let seq = journal(
        ctx,
        Event::AuditorAdded {
            auditor: name.clone(),
            serial: cert.serial.to_hex(),
            operator: operator.to_owned(),
            not_after: rfc3339(cert.not_after),
        },
    )?;
    let action = action(
        now,
        operator,
        "auditor.added",
        name.as_str(),
        &format!("serial={}", cert.serial),
    );
    apply(ctx, seq, || ctx.registry.add_auditor(&record, &action))?;
    Ok(AdminResponse::Auditor {
        name: name.clone(),
        certificate_pem: cert.pem,
        ca_pem: ctx.ca.cert_pem().to_owned(),
        not_after: cert.not_after,
    })
}

/// Journals an action that takes access away (revocation, decommissioning). Failing
/// closed here would mean keeping a lost device's access: so if the journal cannot be
/// written the action still takes effect, the registry's own record of it stands, and the
/// failure is logged as an error. Returns `None` when the event could not be journaled.
fn journal_reducing_access(ctx: &Context, event: Event) -> Result<Option<u64>, AdminError> {
    match ctx.journal(&event) {
        Ok(seq) => Ok(Some(seq)),
        Err(e) => {
            tracing::error!(error = %e, event = ?event, "taking access away although the journal cannot record it");
            Ok(None)
        }
    }
}

/// Runs the registry change journaled as `seq`; if it fails, journals that it did not
/// take effect.
fn apply<T>(
    ctx: &Context,
    seq: impl Into<Option<u64>>,
    change: impl FnOnce() -> Result<T, RegistryError>,
) -> Result<T, AdminError> {
    let seq = seq.into();
    change().map_err(|e| {
        if let Some(seq) = seq {
            let _ = ctx.journal(&Event::ActionFailed {
                seq,
                error: e.to_string(),
            });
        }
        AdminError::from(e)
    })
}

fn publish(ctx: &Context) -> Result<(), AdminError> {
    ctx.publish_crl().map(|_| ()).map_err(|e| {
        AdminError::new(
            AdminErrorCode::Internal,
            format!("the change is recorded but the revocation list could not be published: {e}"),
        )
    })
}

fn find_device(ctx: &Context, id: &DeviceId) -> Result<DeviceRecord, AdminError> {
    ctx.registry
        .device(id)?
        .ok_or_else(|| AdminError::new(AdminErrorCode::NotFound, format!("device {id} not found")))
}

fn summary(d: &DeviceRecord) -> DeviceSummary {
    DeviceSummary {
        id: d.id.clone(),
        employee: d.employee.clone(),
        role: d.role.clone(),
        status: d.status,
        hostname: d.hostname.clone(),
        ownership: d.ownership,
        enrolled_at: d.enrolled_at,
    }
}

fn detail(ctx: &Context, d: &DeviceRecord) -> Result<DeviceDetail, AdminError> {
    let change = |c: &StatusChange| ChangeView {
        at: c.at,
        by: c.by.clone(),
        reason: c.reason.clone(),
        note: c.note.clone(),
    };
    Ok(DeviceDetail {
        summary: summary(d),
        schedule: d.schedule.clone(),
        os: d.os.clone(),
        invitation: d.invitation.clone(),
        wireguard_public_key: d.wg_key.to_base64(),
        approved: d.approved.as_ref().map(change),
        ended: d.ended.as_ref().map(change),
        certificates: ctx
            .registry
            .certificates_of(&d.id)?
            .into_iter()
            .map(|c| CertificateView {
                serial: c.serial.to_hex(),
                not_before: c.not_before,
                not_after: c.not_after,
                revoked_at: c.revoked.map(|(at, _)| at),
            })
            .collect(),
    })
}

fn action(
    at: OffsetDateTime,
    operator: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> ActionRecord {
    ActionRecord {
        at,
        operator: operator.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
    }
}

fn done(message: String, devices_ended: Vec<DeviceId>) -> AdminResponse {
    AdminResponse::Done {
        message,
        devices_ended,
    }
}

/// `role` must be a role of `policy`; the refusal lists the roles there are.
fn defined_role(policy: &ztgw_config::policy::Policy, role: &str) -> Result<(), AdminError> {
    if policy.has_role(role) {
        return Ok(());
    }
    let known: Vec<&str> = policy.roles.keys().map(String::as_str).collect();
    Err(AdminError::new(
        AdminErrorCode::Invalid,
        format!(
            "role {role:?} is not defined in the policy (roles: {})",
            known.join(", ")
        ),
    ))
}

fn check_note(note: &Option<String>) -> Result<(), AdminError> {
    note.as_deref()
        .map_or(Ok(()), |n| check_text("note", n, false))
}

pub(crate) fn check_text(field: &str, value: &str, required: bool) -> Result<(), AdminError> {
    if required && value.trim().is_empty() {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!("{field} is longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}
