//! The audit events (schema in docs/journal.md). Identities are registry ids, typed
//! (`DeviceId`, `EmployeeId`, `InvitationId`, `AuditorName`: checked when made, written
//! as their strings); what a caller sent that may not be one (an unknown invitation id in
//! a refused enrolment) stays a string. Nothing beyond what audit needs is kept (G15).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use ztgw_pki::{AuditorName, DeviceId, EmployeeId, InvitationId, OperatorName};

/// One audit event. The JSON form has a `type` field and the event's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "gateway.started")]
    GatewayStarted {
        version: String,
        policy_sha256: String,
        /// The gateway's name (its first name): what tells its journal from the other
        /// gateways' of a shared registry, whose journals share the CA's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    #[serde(rename = "gateway.stopped")]
    GatewayStopped { reason: String },
    #[serde(rename = "invitation.created")]
    InvitationCreated {
        invitation: InvitationId,
        employee: EmployeeId,
        role: String,
        schedule: Option<String>,
        approved_by: String,
        reference: String,
        expires_at: String,
        operator: String,
    },
    #[serde(rename = "device.enrolled")]
    DeviceEnrolled {
        device: DeviceId,
        employee: EmployeeId,
        role: String,
        invitation: InvitationId,
        status: String,
        ownership: String,
        serial: String,
    },
    #[serde(rename = "enrolment.refused")]
    EnrolmentRefused {
        invitation: Option<String>,
        reason: String,
    },
    #[serde(rename = "device.approved")]
    DeviceApproved {
        device: DeviceId,
        employee: EmployeeId,
        operator: String,
        note: Option<String>,
    },
    /// A device's role changed (by hand, or by the directory): its next sessions have
    /// the new role; its live session ended to be admitted again under it.
    #[serde(rename = "device.role_changed")]
    DeviceRoleChanged {
        device: DeviceId,
        employee: EmployeeId,
        from: String,
        to: String,
        operator: String,
        note: Option<String>,
    },
    #[serde(rename = "device.revoked")]
    DeviceRevoked {
        device: DeviceId,
        employee: EmployeeId,
        operator: String,
        reason: String,
        note: Option<String>,
    },
    #[serde(rename = "device.decommissioned")]
    DeviceDecommissioned {
        device: DeviceId,
        employee: EmployeeId,
        operator: String,
        note: Option<String>,
    },
    #[serde(rename = "certificate.renewed")]
    CertificateRenewed {
        device: DeviceId,
        employee: EmployeeId,
        serial: String,
        previous: String,
    },
    #[serde(rename = "employee.revoked")]
    EmployeeRevoked {
        employee: EmployeeId,
        operator: String,
        reason: String,
        note: Option<String>,
        devices: Vec<DeviceId>,
    },
    #[serde(rename = "employee.reinstated")]
    EmployeeReinstated {
        employee: EmployeeId,
        operator: String,
        note: Option<String>,
    },
    #[serde(rename = "policy.loaded")]
    PolicyLoaded {
        sha256: String,
        previous: Option<String>,
        operator: String,
        warnings: usize,
        tests: usize,
    },
    #[serde(rename = "policy.refused")]
    PolicyRefused {
        sha256: Option<String>,
        kept: String,
        operator: String,
        reason: String,
    },
    #[serde(rename = "auditor.added")]
    AuditorAdded {
        auditor: AuditorName,
        serial: String,
        operator: String,
        not_after: String,
    },
    #[serde(rename = "auditor.revoked")]
    AuditorRevoked {
        auditor: AuditorName,
        operator: String,
        note: Option<String>,
    },
    /// A web console operator added (`ztgw operator add`), with the role given.
    #[serde(rename = "operator.added")]
    OperatorAdded {
        name: OperatorName,
        role: String,
        serial: String,
        operator: String,
        not_after: String,
    },
    #[serde(rename = "operator.revoked")]
    OperatorRevoked {
        name: OperatorName,
        operator: String,
        note: Option<String>,
    },
    /// The web console refused an action to a signed-in operator (an auditor trying to
    /// act, a forged or missing CSRF token): who, what, and why.
    #[serde(rename = "console.refused")]
    ConsoleRefused {
        name: String,
        action: String,
        reason: String,
    },
    #[serde(rename = "admission.granted")]
    AdmissionGranted {
        session: String,
        device: DeviceId,
        employee: EmployeeId,
        role: String,
    },
    /// Every reason the admission was refused, as check ids (`outside-schedule`,
    /// `posture.antivirus`, `certificate-revoked`…).
    #[serde(rename = "admission.denied")]
    AdmissionDenied {
        device: DeviceId,
        employee: EmployeeId,
        reasons: Vec<String>,
    },
    #[serde(rename = "session.started")]
    SessionStarted {
        session: String,
        device: DeviceId,
        employee: EmployeeId,
        role: String,
        schedule: String,
    },
    #[serde(rename = "session.ended")]
    SessionEnded {
        session: String,
        device: DeviceId,
        employee: EmployeeId,
        reason: String,
        duration_secs: u64,
        bytes_in: u64,
        bytes_out: u64,
    },
    /// What a session did since the previous record: its flows (first and last seen,
    /// bytes and packets each way, the rule that allowed them) and its denials,
    /// aggregated. Written periodically and when the session ends.
    #[serde(rename = "session.flows")]
    SessionFlows {
        session: String,
        /// Absent when the session had already ended when its last flows were written.
        device: Option<DeviceId>,
        flows: Vec<FlowRecord>,
        merged: Merged,
        denials: Vec<Denial>,
        denials_merged: u64,
    },
    /// Reconciliation removed a peer that no live session owned, or ended a session whose
    /// device or employee was no longer in service. The safety net: never expected.
    #[serde(rename = "session.orphan_removed")]
    SessionOrphanRemoved {
        session: String,
        device: Option<DeviceId>,
        reason: String,
    },
    /// A session moved to its role's quarantine role (failed re-check), or back.
    #[serde(rename = "session.role_changed")]
    SessionRoleChanged {
        session: String,
        device: DeviceId,
        role: String,
        reason: String,
    },
    /// An incident reported by an employee (from the device) or by the security unit
    /// (G13); the access it concerns is revoked at once.
    #[serde(rename = "incident.reported")]
    IncidentReported {
        kind: String,
        device: Option<DeviceId>,
        employee: EmployeeId,
        reporter: String,
        note: Option<String>,
    },
    /// The incident notification command failed (the incident itself took effect).
    #[serde(rename = "incident.notify_failed")]
    IncidentNotifyFailed { seq: u64, error: String },
    /// Enrolments refused from one source in one minute, counted by reason (requests
    /// without a certificate are not journaled one by one). `source` is an IPv4 address,
    /// an IPv6 /64, or `other` past the number of sources told apart.
    #[serde(rename = "enrolment.refusals")]
    EnrolmentRefusals {
        source: String,
        /// The minute's start.
        minute: String,
        counts: std::collections::BTreeMap<String, u64>,
        /// Invitation ids named by the refused requests (a sample).
        invitations: Vec<String>,
        /// Further distinct invitation ids not listed.
        invitations_more: u64,
    },
    /// Certificates of a device revoked because a newer one replaced them: `by` was used
    /// (the older ones), or is being renewed from (newer ones the device never used).
    #[serde(rename = "certificate.superseded")]
    CertificateSuperseded {
        device: DeviceId,
        employee: EmployeeId,
        serials: Vec<String>,
        by: String,
    },
    /// Too many wrong second-factor codes: the device's codes are not looked at until
    /// `until` or `ztgw device unlock`.
    #[serde(rename = "second-factor.locked")]
    SecondFactorLocked {
        device: DeviceId,
        employee: EmployeeId,
        failures: u32,
        until: String,
    },
    #[serde(rename = "second-factor.unlocked")]
    SecondFactorUnlocked {
        device: DeviceId,
        employee: EmployeeId,
        operator: String,
        note: Option<String>,
    },
    /// An emergency override of the schedule, for an employee or a role.
    #[serde(rename = "schedule.override")]
    ScheduleOverride {
        target: String,
        until: String,
        reason: String,
        operator: String,
    },
    /// A revocation (of a device or an employee, or an incident) made while the registry
    /// could not be reached: the sessions it concerns ended on this gateway at once, and
    /// it waits in `queued-revocations.json` to be carried out when the registry is back
    /// (its own record follows then).
    #[serde(rename = "revocation.queued")]
    RevocationQueued {
        action: String,
        device: Option<DeviceId>,
        employee: Option<EmployeeId>,
        operator: String,
        error: String,
    },
    /// A posture evaluation: which checks failed, never the device's software list (G15).
    #[serde(rename = "posture.checked")]
    PostureChecked {
        device: DeviceId,
        employee: EmployeeId,
        compliant: bool,
        failed: Vec<String>,
    },
    #[serde(rename = "backup.created")]
    BackupCreated { file: String, operator: String },
    /// An action journaled as about to take effect did not (the registry refused it).
    #[serde(rename = "action.failed")]
    ActionFailed { seq: u64, error: String },
    /// Recovery cut a damaged tail; the cut bytes are kept beside the journal.
    #[serde(rename = "journal.truncated")]
    JournalTruncated {
        segment: String,
        offset: u64,
        bytes: u64,
        sha256: String,
        saved_as: String,
    },
    /// The journal is written again after a failure: since when it was not, why, and how
    /// many appends it refused meanwhile (the actions that needed them did not happen;
    /// those that take access away happened and are in the registry's actions).
    #[serde(rename = "journal.resumed")]
    JournalResumed {
        failed_at: String,
        reason: String,
        refused: u64,
    },
    /// The directory was read and applied: whose telework it ended and why, and whose
    /// device's role it changed (`employee device from -> to`).
    #[serde(rename = "directory.synced")]
    DirectorySynced {
        server: String,
        employees: u64,
        ended: Vec<EmployeeEnding>,
        roles_changed: Vec<String>,
        /// Run by hand with `--force` past the share a sync may end.
        forced: bool,
    },
    /// A sync refused: it would have ended the telework of too many employees.
    #[serde(rename = "directory.sync_refused")]
    DirectorySyncRefused {
        server: String,
        would_end: u64,
        employees: u64,
        max_revoke_percent: u8,
    },
    /// The directory could not be read (first failure of a streak); nothing changed.
    #[serde(rename = "directory.unreachable")]
    DirectoryUnreachable { error: String },
    /// Segments past retention were deleted; the signed purge record lets the rest verify.
    #[serde(rename = "journal.purged")]
    JournalPurged {
        segments: Vec<String>,
        first_seq_kept: u64,
        older_than: String,
    },
}

/// An employee whose telework the directory ended, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeEnding {
    pub employee: EmployeeId,
    pub why: String,
}

impl Event {
    /// The `type` of the event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GatewayStarted { .. } => "gateway.started",
            Self::GatewayStopped { .. } => "gateway.stopped",
            Self::InvitationCreated { .. } => "invitation.created",
            Self::DeviceEnrolled { .. } => "device.enrolled",
            Self::EnrolmentRefused { .. } => "enrolment.refused",
            Self::DeviceApproved { .. } => "device.approved",
            Self::DeviceRoleChanged { .. } => "device.role_changed",
            Self::DeviceRevoked { .. } => "device.revoked",
            Self::RevocationQueued { .. } => "revocation.queued",
            Self::DeviceDecommissioned { .. } => "device.decommissioned",
            Self::CertificateRenewed { .. } => "certificate.renewed",
            Self::EmployeeRevoked { .. } => "employee.revoked",
            Self::EmployeeReinstated { .. } => "employee.reinstated",
            Self::PolicyLoaded { .. } => "policy.loaded",
            Self::PolicyRefused { .. } => "policy.refused",
            Self::ActionFailed { .. } => "action.failed",
            Self::BackupCreated { .. } => "backup.created",
            Self::AdmissionGranted { .. } => "admission.granted",
            Self::AdmissionDenied { .. } => "admission.denied",
            Self::SessionStarted { .. } => "session.started",
            Self::SessionEnded { .. } => "session.ended",
            Self::SessionFlows { .. } => "session.flows",
            Self::SessionOrphanRemoved { .. } => "session.orphan_removed",
            Self::SessionRoleChanged { .. } => "session.role_changed",
            Self::ScheduleOverride { .. } => "schedule.override",
            Self::IncidentReported { .. } => "incident.reported",
            Self::IncidentNotifyFailed { .. } => "incident.notify_failed",
            Self::SecondFactorLocked { .. } => "second-factor.locked",
            Self::CertificateSuperseded { .. } => "certificate.superseded",
            Self::EnrolmentRefusals { .. } => "enrolment.refusals",
            Self::SecondFactorUnlocked { .. } => "second-factor.unlocked",
            Self::PostureChecked { .. } => "posture.checked",
            Self::AuditorAdded { .. } => "auditor.added",
            Self::AuditorRevoked { .. } => "auditor.revoked",
            Self::OperatorAdded { .. } => "operator.added",
            Self::OperatorRevoked { .. } => "operator.revoked",
            Self::ConsoleRefused { .. } => "console.refused",
            Self::JournalTruncated { .. } => "journal.truncated",
            Self::JournalPurged { .. } => "journal.purged",
            Self::JournalResumed { .. } => "journal.resumed",
            Self::DirectorySynced { .. } => "directory.synced",
            Self::DirectorySyncRefused { .. } => "directory.sync_refused",
            Self::DirectoryUnreachable { .. } => "directory.unreachable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_has_the_type_and_round_trips() {
        let e = Event::DeviceRevoked {
            device: DeviceId::new("dev-1").expect("id"),
            employee: EmployeeId::new("e1").expect("id"),
            operator: "amina (uid 0)".into(),
            reason: "lost".into(),
            note: None,
        };
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["type"], "device.revoked");
        assert_eq!(json["type"], e.kind());
        assert_eq!(
            serde_json::from_value::<Event>(json.clone()).expect("back"),
            e
        );
        assert_eq!(json["device"], "dev-1", "an id is written as its string");
        // An id that is not one is not an event.
        let mut bad = json;
        bad["device"] = "dev-1\"; rm -rf /".into();
        assert!(serde_json::from_value::<Event>(bad).is_err());
    }
}

/// A flow as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub proto: u8,
    pub laptop_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// The rule (resource of the role) that allowed it when it was created, by name.
    pub rule: String,
    /// The SHA-256 of the policy that rule came from.
    #[serde(default)]
    pub policy_sha256: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
}

/// Flows merged into one aggregate because the per-drain bound was reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    pub flows: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
}

/// Denied packets of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub reason: String,
    /// The inner destination, when the packet could be parsed.
    pub dst: Option<IpAddr>,
    pub proto: u8,
    pub port: u16,
    pub packets: u64,
    pub first_ms: u64,
    pub last_ms: u64,
}
