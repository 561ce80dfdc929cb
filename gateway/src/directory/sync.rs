//! Applying the directory (G1, G3): every `sync_interval` in the running gateway, and on
//! demand (`ztgw directory sync`), the employees the directory no longer allows lose
//! their telework exactly as `ztgw employee revoke` ends it (reason `directory`,
//! journaled, their live sessions cut before the sync goes on). Failure is safe: a
//! directory that cannot be read changes nothing (the last view stands, the failure is
//! journaled and counted); a sync that would end the telework of more than the
//! configured share of employees is refused and journaled unless forced by hand.
//! A device whose employee the directory places in another role's group gets that role
//! (as `ztgw device set-role` gives it): its live session ends and the agent is admitted
//! again under the new role, with that role's resources, schedule and posture profile.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{Drift, client, drift, teleworkers};
use crate::admin::{AdminErrorCode, AdminRequest, EmployeeRevokeReason};
use crate::context::Context;
use crate::journal::Event;
use crate::journal::event::EmployeeEnding;
use crate::sessions::SessionService;

/// Who the directory sync acts as, in the journal and the registry's actions.
pub const OPERATOR: &str = "directory sync";

/// How the directory has been answering (for `/metrics` and `/health`).
#[derive(Debug, Default)]
pub struct SyncHealth {
    /// Syncs that failed in a row (0 once one succeeds).
    pub failures: AtomicU64,
    /// When the last sync succeeded (Unix seconds; 0: never).
    pub last_success: AtomicI64,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub drift: Drift,
    /// The employees whose telework this sync ended.
    pub ended: Vec<String>,
    /// The devices whose role this sync changed (`employee device from -> to`).
    #[serde(default)]
    pub roles_changed: Vec<String>,
    /// Refused: it would have ended too many (nothing was changed).
    pub refused: bool,
    /// Revocations that failed, and why (the next sync tries again).
    pub failed: Vec<String>,
}

/// Why a sync did not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no [directory] in the settings")]
    NotConfigured,
    #[error("{0}")]
    Directory(#[from] super::DirectoryError),
    #[error("the registry: {0}")]
    Registry(String),
    #[error("the sync task failed: {0}")]
    Task(String),
}

/// Reads the directory and applies it. `sessions` are the running gateway's (none when
/// the command runs without one: no session is live then).
pub async fn sync_once(
    ctx: &Arc<Context>,
    sessions: Option<&Arc<SessionService>>,
    force: bool,
    operator: &str,
) -> Result<SyncReport, SyncError> {
    let d = ctx
        .settings
        .directory
        .clone()
        .ok_or(SyncError::NotConfigured)?;
    let devices = ctx
        .registry
        .devices()
        .map_err(|e| SyncError::Registry(e.to_string()))?;
    let known: Vec<_> = teleworkers(&devices).into_keys().collect();
    let result = client::read(&d, &known).await;
    let health = &ctx.directory_health;
    let view = match result {
        Ok(view) => view,
        Err(e) => {
            let failures = health.failures.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per streak of failures: the journal says since when.
            if failures == 1
                && let Err(j) = ctx.journal(&Event::DirectoryUnreachable {
                    error: e.to_string(),
                })
            {
                tracing::error!(error = %j, "could not journal the directory's failure");
            }
            tracing::warn!(error = %e, failures, "the directory could not be read; nothing changed");
            return Err(e.into());
        }
    };
    let drift = drift(&view, &devices, d.max_revoke_percent);
    let recovered = health.failures.load(Ordering::Relaxed) > 0;
    let ctx = ctx.clone();
    let sessions = sessions.cloned();
    let operator = operator.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        apply(
            &ctx,
            sessions.as_deref(),
            drift,
            force,
            &operator,
            recovered,
        )
    })
    .await
    .map_err(|e| SyncError::Task(e.to_string()))?;
    health.failures.store(0, Ordering::Relaxed);
    health.last_success.store(
        time::OffsetDateTime::now_utc().unix_timestamp(),
        Ordering::Relaxed,
    );
    Ok(report)
}

/// Applies `drift`. The journal gets `directory.synced` when the sync ended someone's
/// telework or changed a role, or when the directory answers again after failing — not
/// for every sync that finds nothing new.
fn apply(
    ctx: &Context,
    sessions: Option<&SessionService>,
    drift: Drift,
    force: bool,
    operator: &str,
    recovered: bool,
) -> SyncReport {
    if drift.over_threshold && !force {
        let max = ctx
            .settings
            .directory
            .as_ref()
            .map_or(0, |d| d.max_revoke_percent);
        if let Err(e) = ctx.journal(&Event::DirectorySyncRefused {
            server: drift.server.clone(),
            would_end: drift.end.len() as u64,
            employees: drift.employees as u64,
            max_revoke_percent: max,
        }) {
            tracing::error!(error = %e, "could not journal a refused directory sync");
        }
        tracing::error!(
            would_end = drift.end.len(),
            employees = drift.employees,
            "directory sync refused: it would end the telework of too many employees (run `ztgw directory sync --force` once you have checked the directory)"
        );
        return SyncReport {
            drift,
            ended: Vec::new(),
            roles_changed: Vec::new(),
            refused: true,
            failed: Vec::new(),
        };
    }
    let mut ended = Vec::new();
    let mut failed = Vec::new();
    let mut journaled = Vec::new();
    for e in &drift.end {
        let request = AdminRequest::EmployeeRevoke {
            employee: e.employee.clone(),
            reason: EmployeeRevokeReason::Directory,
            note: Some(e.why.sentence().into()),
        };
        let _changing = ctx.changing();
        let outcome = crate::admin::handle(ctx, operator, &request);
        // Sessions end before the sync goes on, whatever the answer says.
        if let Some(s) = sessions {
            s.apply_all(&outcome.access);
        }
        match outcome.result {
            Ok(_) => {
                ended.push(e.employee.to_string());
                journaled.push(EmployeeEnding {
                    employee: e.employee.clone(),
                    why: e.why.sentence().into(),
                });
            }
            // Ended meanwhile (by hand, or a sync that ran at the same time).
            Err(err) if err.code == AdminErrorCode::Conflict => {}
            Err(err) => failed.push(format!("{}: {}", e.employee, err.message)),
        }
    }
    let mut roles_changed = Vec::new();
    for c in &drift.role_changes {
        let request = AdminRequest::DeviceSetRole {
            device: c.device.clone(),
            role: c.to.clone(),
            note: Some(format!("the directory places {} in {}", c.employee, c.to)),
        };
        let _changing = ctx.changing();
        let outcome = crate::admin::handle(ctx, operator, &request);
        if let Some(s) = sessions {
            s.apply_all(&outcome.access);
        }
        match outcome.result {
            Ok(_) => roles_changed.push(format!(
                "{} {} {} -> {}",
                c.employee, c.device, c.from, c.to
            )),
            // Changed or ended meanwhile: the next sync sees where it stands.
            Err(err) if err.code == AdminErrorCode::Conflict => {}
            Err(err) => failed.push(format!("{} {}: {}", c.employee, c.device, err.message)),
        }
    }
    if (!journaled.is_empty() || !roles_changed.is_empty() || recovered)
        && let Err(e) = ctx.journal(&Event::DirectorySynced {
            server: drift.server.clone(),
            employees: drift.employees as u64,
            ended: journaled,
            roles_changed: roles_changed.clone(),
            forced: force && drift.over_threshold,
        })
    {
        tracing::error!(error = %e, "could not journal the directory sync");
    }
    SyncReport {
        drift,
        ended,
        roles_changed,
        refused: false,
        failed,
    }
}
