//! Emergency schedule overrides: for a role or an employee, telework is allowed outside
//! the schedule until a given time (an emergency, a deadline). Each override is journaled
//! with its reason and operator before it takes effect, and kept in `overrides.json` in
//! the state directory so that it survives a restart; expired ones are dropped.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use ztgw_pki::{EmployeeId, Existing, write_private_file};

use super::{AdminError, AdminErrorCode, AdminResponse, check_text, done};
use crate::context::Context;
use crate::enrolment::rfc3339;
use crate::journal::Event;

/// The longest override: an emergency, not a second schedule.
pub const MAX_OVERRIDE: Duration = Duration::days(31);
/// Overrides in force at once.
pub const MAX_OVERRIDES: usize = 1_000;

/// One override in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// `role:NAME` or `employee:ID`.
    pub target: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub reason: String,
    pub operator: String,
}

/// Sets an override.
pub fn set(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    role: Option<&str>,
    employee: Option<&EmployeeId>,
    until: OffsetDateTime,
    reason: &str,
) -> Result<AdminResponse, AdminError> {
    check_text("reason", reason, true)?;
    let target = match (role, employee) {
        (Some(r), None) => {
            if !ctx.policy.current().policy.roles.contains_key(r) {
                return Err(AdminError::new(
                    AdminErrorCode::Invalid,
                    format!("role {r} is not in the policy"),
                ));
            }
            format!("role:{r}")
        }
        (None, Some(e)) => format!("employee:{e}"),
        _ => {
            return Err(AdminError::new(
                AdminErrorCode::Invalid,
                "an override is for one role or one employee",
            ));
        }
    };
    if until <= now || until - now > MAX_OVERRIDE {
        return Err(AdminError::new(
            AdminErrorCode::Invalid,
            format!(
                "--until must be in the future and within {} days",
                MAX_OVERRIDE.whole_days()
            ),
        ));
    }
    let mut all = load(ctx, now);
    if all.len() >= MAX_OVERRIDES {
        return Err(AdminError::new(
            AdminErrorCode::Conflict,
            "too many overrides in force",
        ));
    }
    ctx.journal(&Event::ScheduleOverride {
        target: target.clone(),
        until: rfc3339(until),
        reason: reason.to_owned(),
        operator: operator.to_owned(),
    })
    .map_err(|e| {
        AdminError::new(
            AdminErrorCode::Internal,
            format!("not journaled, not set: {e}"),
        )
    })?;
    all.retain(|o| o.target != target);
    all.push(Override {
        target: target.clone(),
        until,
        reason: reason.to_owned(),
        operator: operator.to_owned(),
    });
    let text = serde_json::to_vec_pretty(&all)
        .map_err(|e| AdminError::new(AdminErrorCode::Internal, e.to_string()))?;
    write_private_file(&ctx.settings.state().overrides(), &text, Existing::Replace)
        .map_err(|e| AdminError::new(AdminErrorCode::Internal, format!("overrides.json: {e}")))?;
    Ok(done(
        format!("schedule override for {target} until {}", rfc3339(until)),
        Vec::new(),
    ))
}

/// The overrides in force at `now` (an unreadable file counts as none, and is logged).
pub fn load(ctx: &Context, now: OffsetDateTime) -> Vec<Override> {
    let path = ctx.settings.state().overrides();
    let all: Vec<Override> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(error = %e, path = %path.display(), "schedule overrides unreadable; none applies");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    all.into_iter().filter(|o| o.until > now).collect()
}

/// The end of the override in force for this employee or role, if any.
pub fn until_for(
    ctx: &Context,
    now: OffsetDateTime,
    employee: &EmployeeId,
    role: &str,
) -> Option<OffsetDateTime> {
    let (e, r) = (format!("employee:{employee}"), format!("role:{role}"));
    load(ctx, now)
        .into_iter()
        .filter(|o| o.target == e || o.target == r)
        .map(|o| o.until)
        .max()
}
