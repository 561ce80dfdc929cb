//! Emergency schedule overrides: for a role or an employee, telework is allowed outside
//! the schedule until a given time (an emergency, a deadline). Each override is journaled
//! with its reason and operator before it takes effect, and kept in the registry with
//! its action record, so that it survives a restart and holds on every gateway of a
//! shared registry; expired ones no longer count. (Gateways before the registry kept
//! them in `overrides.json` in the state directory: [`import_file`] moves them.)

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use ztgw_pki::EmployeeId;

use super::{AdminError, AdminErrorCode, AdminResponse, check_text, done};
use crate::context::Context;
use crate::enrolment::rfc3339;
use crate::journal::Event;
use crate::registry::{ActionRecord, OverrideRecord};

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
    let all = load(ctx, now)?;
    if all.len() >= MAX_OVERRIDES && !all.iter().any(|o| o.target == target) {
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
    ctx.registry.set_override(
        &OverrideRecord {
            target: target.clone(),
            until,
            reason: reason.to_owned(),
            operator: operator.to_owned(),
        },
        &ActionRecord {
            at: now,
            operator: operator.to_owned(),
            action: "schedule.override".into(),
            target: target.clone(),
            detail: format!("until={} reason={reason}", rfc3339(until)),
        },
    )?;
    Ok(done(
        format!("schedule override for {target} until {}", rfc3339(until)),
        Vec::new(),
    ))
}

/// The overrides in force at `now`.
pub fn load(ctx: &Context, now: OffsetDateTime) -> Result<Vec<Override>, AdminError> {
    Ok(ctx
        .registry
        .overrides(now)?
        .into_iter()
        .map(|o| Override {
            target: o.target,
            until: o.until,
            reason: o.reason,
            operator: o.operator,
        })
        .collect())
}

/// The end of the override in force for this employee or role, if any. A registry that
/// cannot be read gives none (an override only widens access; the admission fails on the
/// registry anyway), and is logged.
pub fn until_for(
    ctx: &Context,
    now: OffsetDateTime,
    employee: &EmployeeId,
    role: &str,
) -> Option<OffsetDateTime> {
    let (e, r) = (format!("employee:{employee}"), format!("role:{role}"));
    match ctx.registry.overrides(now) {
        Ok(all) => all
            .into_iter()
            .filter(|o| o.target == e || o.target == r)
            .map(|o| o.until)
            .max(),
        Err(err) => {
            tracing::warn!(error = %err, "schedule overrides unreadable; none applies");
            None
        }
    }
}

/// Moves the overrides an older gateway kept in `overrides.json` into the registry (those
/// still in force, unless the registry has one for the same target), then renames the
/// file `overrides.json.imported`. Nothing to do without the file.
pub fn import_file(
    ctx: &Context,
    now: OffsetDateTime,
) -> Result<usize, crate::registry::RegistryError> {
    let path = ctx.settings.state().overrides();
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(0);
    };
    let old: Vec<Override> = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "old schedule overrides unreadable: not imported (the file is left as it is)");
            return Ok(0);
        }
    };
    let have = ctx.registry.overrides(now)?;
    let mut n = 0;
    for o in old.into_iter().filter(|o| o.until > now) {
        if have.iter().any(|h| h.target == o.target) {
            continue;
        }
        ctx.registry.set_override(
            &OverrideRecord {
                target: o.target.clone(),
                until: o.until,
                reason: o.reason.clone(),
                operator: o.operator.clone(),
            },
            &ActionRecord {
                at: now,
                operator: o.operator.clone(),
                action: "schedule.override".into(),
                target: o.target.clone(),
                detail: format!(
                    "until={} reason={} (imported from overrides.json)",
                    rfc3339(o.until),
                    o.reason
                ),
            },
        )?;
        n += 1;
    }
    let _ = std::fs::rename(&path, path.with_extension("json.imported"));
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{SystemClock, SystemEntropy};

    #[test]
    fn overrides_json_moves_into_the_registry_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let report = crate::state::init(
            &crate::state::InitOptions {
                layout: crate::layout::Layout::single(&state),
                names: vec!["127.0.0.1".into()],
                endpoint: "127.0.0.1:51820".into(),
                control_listen: "127.0.0.1:8443".parse().expect("addr"),
                control_advertise: None,
                join: None,
                tunnel_networks: Vec::new(),
            },
            Arc::new(SystemClock),
            Arc::new(SystemEntropy::new()),
        )
        .expect("init");
        let settings = ztgw_config::Settings::load(&report.settings).expect("settings");
        let ctx = Context::open(
            settings,
            Arc::new(SystemClock),
            Arc::new(SystemEntropy::new()),
        )
        .expect("open");
        let now = ctx.clock.now();
        let old = |target: &str, until: OffsetDateTime| Override {
            target: target.into(),
            until,
            reason: "on call".into(),
            operator: "alice".into(),
        };
        let file = ctx.settings.state().overrides();
        std::fs::write(
            &file,
            serde_json::to_vec(&[
                old("employee:e1", now + Duration::hours(2)),
                old("role:hr", now - Duration::hours(1)),
            ])
            .expect("json"),
        )
        .expect("write");
        assert_eq!(
            import_file(&ctx, now).expect("import"),
            1,
            "the one in force"
        );
        assert!(!file.exists() && file.with_extension("json.imported").exists());
        let e1 = EmployeeId::new("e1").expect("id");
        assert!(until_for(&ctx, now, &e1, "finance").is_some());
        assert!(until_for(&ctx, now, &e1, "hr").is_some());
        let e2 = EmployeeId::new("e2").expect("id");
        assert!(
            until_for(&ctx, now, &e2, "hr").is_none(),
            "the expired one is not"
        );
        assert_eq!(import_file(&ctx, now).expect("again"), 0, "once");
    }
}
