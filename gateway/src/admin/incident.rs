//! Incidents (G13): a lost secret, malware, data theft or a lost device, reported by the
//! employee from the device or by the security unit. The access concerned is revoked at
//! once (which ends its sessions), the incident is journaled first, and the configured
//! notification command is told.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ztgw_pki::{DeviceId, EmployeeId};

use super::{
    AccessChange, AdminError, AdminErrorCode, AdminRequest, AdminResponse, EmployeeRevokeReason,
    EndOfService, RevokeReason, check_note, done, end_device, find_device, journal_reducing_access,
};
use crate::context::Context;
use crate::journal::Event;
use crate::session::lifecycle::EndReason;

/// How long the notification command may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentKind {
    /// A password, key or token was disclosed.
    LostSecret,
    Malware,
    DataTheft,
    DeviceLost,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LostSecret => "lost-secret",
            Self::Malware => "malware",
            Self::DataTheft => "data-theft",
            Self::DeviceLost => "device-lost",
        }
    }

    fn revoke_reason(self) -> RevokeReason {
        match self {
            Self::DeviceLost => RevokeReason::Lost,
            _ => RevokeReason::Compromised,
        }
    }
}

/// Records the incident, revokes what it concerns, and notifies.
#[allow(clippy::too_many_arguments)]
pub fn report(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    device: Option<&DeviceId>,
    employee: Option<&EmployeeId>,
    kind: IncidentKind,
    note: &Option<String>,
    access: &mut Vec<AccessChange>,
) -> Result<AdminResponse, AdminError> {
    check_note(note)?;
    let (device, employee) = match (device, employee) {
        (Some(d), _) => {
            let record = find_device(ctx, d)?;
            (Some(record.id), record.employee)
        }
        (None, Some(e)) => {
            ctx.registry.employee(e)?.ok_or_else(|| {
                AdminError::new(AdminErrorCode::NotFound, format!("employee {e} not found"))
            })?;
            (None, e.clone())
        }
        (None, None) => {
            return Err(AdminError::new(
                AdminErrorCode::Invalid,
                "an incident concerns a device or an employee",
            ));
        }
    };
    let event = Event::IncidentReported {
        kind: kind.as_str().into(),
        device: device.clone(),
        employee: employee.clone(),
        reporter: operator.to_owned(),
        note: note.clone(),
    };
    let seq = journal_reducing_access(ctx, event.clone())?;
    let note = Some(format!(
        "incident {}{}",
        kind.as_str(),
        note.as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default()
    ));
    let ended = match &device {
        Some(d) => match end_device(
            ctx,
            now,
            operator,
            d,
            EndOfService::Revoke(kind.revoke_reason()),
            &note,
            EndReason::Incident,
            access,
        ) {
            Ok(()) => vec![d.clone()],
            // Already out of service: the incident is still recorded.
            Err(e) if e.code == AdminErrorCode::Conflict => Vec::new(),
            Err(e) => return Err(e),
        },
        None => match super::act(
            ctx,
            operator,
            &AdminRequest::EmployeeRevoke {
                employee: employee.clone(),
                reason: EmployeeRevokeReason::Incident,
                note,
            },
            access,
        ) {
            Ok(AdminResponse::Done { devices_ended, .. }) => devices_ended,
            Ok(_) => Vec::new(),
            Err(e) if e.code == AdminErrorCode::Conflict => Vec::new(),
            Err(e) => return Err(e),
        },
    };
    notify_security_unit(ctx, &event, seq);
    Ok(done(
        format!(
            "incident {} recorded for employee {employee}; {} device(s) revoked",
            kind.as_str(),
            ended.len()
        ),
        ended,
    ))
}

/// `POST /v1/incident`: the employee reports from the device (whatever its posture).
/// The changes of access it made are pushed to `access`, also when it fails.
pub fn from_device(
    ctx: &Context,
    device: &crate::device_auth::AuthenticatedDevice,
    req: &ztgw_api::control::IncidentRequest,
    access: &mut Vec<AccessChange>,
) -> Result<serde_json::Value, crate::api_error::ApiError> {
    use crate::api_error::{ApiError, Reason};
    let kind = <IncidentKind as clap::ValueEnum>::from_str(&req.kind, false).map_err(|_| {
        ApiError::new(
            Reason::RequestMalformed,
            "kind must be lost-secret, malware, data-theft or device-lost",
        )
    })?;
    let reporter = format!(
        "employee {} from device {}",
        device.record.employee, device.record.id
    );
    let answer = report(
        ctx,
        ctx.clock.now(),
        &reporter,
        Some(&device.record.id),
        None,
        kind,
        &req.note,
        access,
    )
    .map_err(|e| {
        let reason = match e.code {
            AdminErrorCode::Invalid => Reason::RequestMalformed,
            AdminErrorCode::NotFound => Reason::DeviceUnknown,
            AdminErrorCode::Conflict => Reason::DeviceRevoked,
            AdminErrorCode::Internal | AdminErrorCode::Forbidden => Reason::Internal,
        };
        ApiError::new(reason, e.message)
    })?;
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

/// Tells the security unit through `[incidents] notify_command` (the event as JSON on
/// its standard input); a failure is logged and journaled against `seq`, the event's own
/// place in the journal.
pub fn notify_security_unit(ctx: &Context, event: &Event, seq: Option<u64>) {
    if let Err(why) = notify(&ctx.settings.incidents.notify_command, event) {
        tracing::error!(error = %why, "the security unit's notification failed");
        if let Some(seq) = seq {
            let _ = ctx.journal(&Event::IncidentNotifyFailed { seq, error: why });
        }
    }
}

/// What runs the notification command without the gateway's privileges: its ambient
/// capabilities cleared (the service holds CAP_NET_ADMIN as an ambient capability for
/// its data plane; without it a program the service user runs has none), and no way to
/// gain any back (`no_new_privs`). From util-linux. Only `prctl` is needed for this,
/// which the shipped unit's system-call filter allows (`capset` it does not).
const SETPRIV: &str = "/usr/bin/setpriv";

/// Runs the notification command, without capabilities, with the event as JSON on its
/// standard input; ended if it runs longer than [`NOTIFY_TIMEOUT`].
fn notify(command: &[String], event: &Event) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    if !std::path::Path::new(SETPRIV).exists() {
        return Err(format!(
            "{SETPRIV} is missing (install util-linux): the notification command is not run with the gateway's privileges"
        ));
    }
    let json = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let mut child = Command::new(SETPRIV)
        .args(["--no-new-privs", "--ambient-caps=-all", "--"])
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&json);
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{program} exited with {status}")),
            Ok(None) if started.elapsed() > NOTIFY_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish in {NOTIFY_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
