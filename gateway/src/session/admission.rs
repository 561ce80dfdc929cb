//! The admission decision: every check runs, every failure is reported (an employee fixes
//! them all at once), and a granted session gets its terms.

use time::{Duration, OffsetDateTime};
use ztgw_api::control::DeviceStatus;
use ztgw_config::policy::{Policy, Schedule};
use ztgw_pki::identity::{EmployeeId, WgPublicKey};
use ztgw_posture::evaluate::{Evaluation, Outcome};

use super::lifecycle::EndReason;

pub use ztgw_api::control::FailedCheck as Failure;

fn failure(id: &str, sentence: impl Into<String>, remedy: Option<&str>) -> Failure {
    Failure {
        id: id.into(),
        sentence: sentence.into(),
        remedy: remedy.map(str::to_owned),
    }
}

/// The device asking, as the registry knows it.
#[derive(Debug, Clone, Copy)]
pub struct Applicant<'a> {
    pub status: DeviceStatus,
    pub employee: &'a EmployeeId,
    pub role: &'a str,
    /// The device's own schedule, set at invitation.
    pub schedule: Option<&'a str>,
    /// The WireGuard key bound to the device at enrolment.
    pub wg_key: &'a WgPublicKey,
}

/// What admission knows of the request.
#[derive(Debug)]
pub struct Facts<'a> {
    pub device: Applicant<'a>,
    /// The employee's telework is in force (not revoked).
    pub employee_active: bool,
    /// The WireGuard key the request asks a tunnel for.
    pub wg_key: &'a WgPublicKey,
    pub policy: &'a Policy,
    /// The posture evaluation against the role's profile; `None` when the report could
    /// not be read (a failure of its own).
    pub posture: Option<&'a Evaluation>,
    /// An emergency schedule override for this employee or role, in force until then.
    pub override_until: Option<OffsetDateTime>,
}

/// The terms of a granted session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub role: String,
    /// The schedule that applied (`override` when an emergency override did).
    pub schedule: String,
    /// The session ends at the earlier of the window's end and the maximum lifetime.
    pub ends_at: OffsetDateTime,
    /// Whether that is the window's end.
    pub ends_with_window: bool,
    pub recheck_every: Duration,
    pub idle_timeout: Duration,
    /// A second factor is asked again after this long (roles that require one).
    pub second_factor_every: Option<Duration>,
}

/// Decides an admission at `now`.
pub fn decide(f: &Facts<'_>, now: OffsetDateTime) -> Result<Terms, Vec<Failure>> {
    let mut failures = Vec::new();
    match f.device.status {
        DeviceStatus::Active => {}
        DeviceStatus::Pending => failures.push(failure(
            "device-pending",
            "this device is waiting for the security unit's approval",
            Some("ask your security unit to approve the device"),
        )),
        DeviceStatus::Revoked => failures.push(failure(
            "device-revoked",
            "this device's access has been revoked",
            Some("contact your security unit"),
        )),
        DeviceStatus::Decommissioned => failures.push(failure(
            "device-decommissioned",
            "this device has been decommissioned",
            None,
        )),
    }
    if !f.employee_active {
        failures.push(failure(
            "employee-revoked",
            "your telework authorisation has been ended",
            Some("contact your security unit"),
        ));
    }
    if f.wg_key != f.device.wg_key {
        failures.push(failure(
            "wireguard-key-mismatch",
            "the WireGuard key is not the one bound to this device's certificate",
            Some("use the key created at enrolment (ztgw-agent status shows it)"),
        ));
    }
    let settings = &f.policy.settings;
    let role = f.policy.roles.get(f.device.role);
    let mut window_end = None;
    let mut schedule_name = String::new();
    match role {
        None => failures.push(failure(
            "role-unknown",
            format!("the role {} is not in the policy", f.device.role),
            Some("contact your security unit"),
        )),
        Some(role) => {
            let name = schedule_of(f, &role.schedule);
            match f.override_until.filter(|u| *u > now) {
                Some(until) => {
                    window_end = Some(until);
                    schedule_name = "override".into();
                }
                None => match f.policy.schedules.get(name) {
                    Some(s) => match s.window_at(to_jiff(now)) {
                        Some(w) => {
                            window_end = Some(from_jiff(w.end));
                            schedule_name = name.to_owned();
                        }
                        None => failures.push(outside(s, name, now)),
                    },
                    None => failures.push(failure(
                        "schedule-unknown",
                        format!("the schedule {name} is not in the policy"),
                        Some("contact your security unit"),
                    )),
                },
            }
        }
    }
    match f.posture {
        None => failures.push(posture_unreadable(None)),
        Some(e) => failures.extend(posture_failures(e)),
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    let (Some(role), Some(window_end)) = (role, window_end) else {
        return Err(vec![failure("internal", "admission failed", None)]);
    };
    let max_end = now + std_to_time(settings.max_session.get());
    Ok(Terms {
        role: f.device.role.to_owned(),
        schedule: schedule_name,
        ends_at: window_end.min(max_end),
        ends_with_window: window_end <= max_end,
        recheck_every: std_to_time(settings.posture_recheck.get()),
        idle_timeout: std_to_time(settings.idle_timeout.get()),
        second_factor_every: role.second_factor.map(|d| std_to_time(d.get())),
    })
}

/// What was wrong with a second-factor code (never told to the caller: see
/// [`second_factor_failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeError {
    /// No code was given.
    Missing,
    /// The device has no secret.
    NotSetUp,
    /// Not the code of this step or the ones beside it.
    Wrong,
    /// The code of a step already used.
    Replayed,
}

/// Checks a second-factor code against the device's secret (`None`: not set up) and the
/// last step used; returns the step to record.
pub fn check_code(
    code: Option<&str>,
    secret: Option<(&[u8], u64)>,
    now: OffsetDateTime,
) -> Result<u64, CodeError> {
    use ztgw_pki::totp::{TotpError, TotpSecret};
    let code = code
        .filter(|c| !c.trim().is_empty())
        .ok_or(CodeError::Missing)?;
    let (secret, last_step) = secret.ok_or(CodeError::NotSetUp)?;
    TotpSecret::new(secret.to_vec())
        .verify(code, now.unix_timestamp(), last_step)
        .map_err(|e| match e {
            TotpError::Replayed => CodeError::Replayed,
            TotpError::Malformed | TotpError::Wrong => CodeError::Wrong,
        })
}

/// The one answer to any second-factor failure, whatever was wrong (missing, wrong,
/// already used, too soon after a wrong one, or locked): a guesser learns nothing.
pub fn second_factor_failed() -> Failure {
    failure(
        "second-factor-failed",
        "the code from your authenticator app was not accepted (missing, wrong, already used, or too many wrong codes)",
        Some(
            "enter the current 6-digit code (check the phone's clock); after several wrong codes wait 15 minutes or ask your security unit to unlock this device",
        ),
    )
}

/// Every check of a posture evaluation that did not pass, as failures.
pub fn posture_failures(e: &Evaluation) -> Vec<Failure> {
    e.checks
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| Failure {
            id: c.id.clone(),
            sentence: c.sentence.clone(),
            remedy: c.remediation.clone(),
        })
        .collect()
}

/// A posture report that could not be read (`why`, when known).
pub fn posture_unreadable(why: Option<&str>) -> Failure {
    failure(
        "posture-unreadable",
        match why {
            Some(why) => format!("the posture report could not be read: {why}"),
            None => "the posture report could not be read".to_owned(),
        },
        Some("update ztgw-agent"),
    )
}

/// A posture report whose nonce is not a fresh one of this device's.
pub fn posture_replayed() -> Failure {
    failure(
        "posture-replayed",
        "the posture report is not fresh: its nonce was not given to this device, was already used, or expired",
        Some("run the connection again; the agent asks for a new nonce"),
    )
}

/// An admission that lost to a revocation or a policy load while it was under way.
pub fn ended_during_admission(reason: &EndReason) -> Failure {
    let (id, sentence) = match reason {
        EndReason::DeviceRevoked => ("device-revoked", "this device's access has been revoked"),
        EndReason::EmployeeRevoked => (
            "employee-revoked",
            "your telework authorisation has been ended",
        ),
        EndReason::Incident => (
            "device-revoked",
            "an incident was reported and this device's access has been revoked",
        ),
        _ => (
            "policy-changed",
            "the access policy changed while the connection was being set up",
        ),
    };
    failure(id, sentence, Some("contact your security unit"))
}

/// The schedule that applies to this device: its own (set at invitation), the
/// employee's in the policy, or the role's.
pub fn schedule_of<'a>(f: &'a Facts<'_>, role_schedule: &'a str) -> &'a str {
    f.device
        .schedule
        .or_else(|| {
            f.policy
                .employees
                .get(f.device.employee.as_str())
                .and_then(|e| e.schedule.as_deref())
        })
        .unwrap_or(role_schedule)
}

fn outside(s: &Schedule, name: &str, now: OffsetDateTime) -> Failure {
    let next = s.next_start(to_jiff(now)).map_or_else(
        || "no telework window is planned".to_owned(),
        |t| format!("the next window opens {}", s.local(t)),
    );
    failure(
        "outside-schedule",
        format!("telework is not allowed now under the schedule {name}; {next}"),
        Some("connect during your telework hours, or ask your security unit for an override"),
    )
}

pub fn to_jiff(t: OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.unix_timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

pub fn from_jiff(t: jiff::Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_second()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn std_to_time(d: std::time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::MAX)
}
