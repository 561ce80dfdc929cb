//! Revocations made while the registry cannot be reached (a PostgreSQL registry down, or
//! the network to it): taking access away does not wait for the database.
//!
//! A device revocation, an employee revocation or an incident asked of a running gateway
//! whose registry cannot be read is *queued*: the sessions it concerns end on this
//! gateway at once, it is journaled (`revocation.queued`), and it is kept in
//! `queued-revocations.json` (0600) in the state directory, so it survives a restart.
//! Meanwhile no admission is granted here to the device or employee it concerns (none is
//! granted without the registry anyway). As soon as the registry answers again
//! ([`Queue::replay`], at each look at the registry), each is carried out in order as if
//! asked then, by its operator: recorded, journaled, the revocation list published, and
//! through the registry the other gateways end their sessions too.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ztgw_pki::{DeviceId, EmployeeId, Existing, write_private_file};

use super::{AccessChange, AdminError, AdminErrorCode, AdminRequest, AdminResponse, Outcome, done};
use crate::context::Context;
use crate::journal::Event;
use crate::session::lifecycle::{EndReason, Revoked};

/// Revocations kept at most; more are refused (and say so).
pub const MAX_QUEUED: usize = 10_000;

/// One revocation waiting for the registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub operator: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub request: AdminRequest,
}

/// The revocations waiting for the registry, in the order they were asked.
#[derive(Debug)]
pub struct Queue {
    path: PathBuf,
    items: Mutex<Vec<Queued>>,
    /// Held while the queue is replayed: one replay at a time.
    replaying: Mutex<()>,
}

impl Queue {
    /// The queue kept at `path` (an unreadable file is logged and kept aside, never
    /// silently emptied).
    pub fn load(path: PathBuf) -> Self {
        let items = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let aside = path.with_extension("json.unreadable");
                tracing::error!(error = %e, path = %path.display(), aside = %aside.display(), "QUEUED REVOCATIONS UNREADABLE: the file is kept aside; carry them out again by hand");
                let _ = std::fs::rename(&path, &aside);
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Self {
            path,
            items: Mutex::new(items),
            replaying: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Queued>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether a queued revocation concerns this device or this employee.
    pub fn covers(&self, device: &DeviceId, employee: &EmployeeId) -> bool {
        self.lock().iter().any(|q| match target(&q.request) {
            Some((d, e)) => d.as_ref() == Some(device) || e.as_ref() == Some(employee),
            None => false,
        })
    }

    fn save(&self, items: &[Queued]) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(items).map_err(|e| e.to_string())?;
        write_private_file(&self.path, &text, Existing::Replace).map_err(|e| e.to_string())
    }

    /// Carries out the queued revocations in order while the registry takes them; each
    /// one done leaves the queue. Stops at the first the registry still cannot take.
    /// Returns the changes of access they made (for the sessions) and how many were done.
    pub fn replay(&self, ctx: &Context) -> (Vec<AccessChange>, usize) {
        let Ok(_one) = self.replaying.try_lock() else {
            return (Vec::new(), 0);
        };
        let mut access = Vec::new();
        let mut done = 0;
        loop {
            let Some(next) = self.lock().first().cloned() else {
                break;
            };
            if ctx.registry.revision().is_err() {
                break;
            }
            let outcome = super::handle_now(ctx, &next.operator, &next.request);
            access.extend(outcome.access);
            match outcome.result {
                Ok(_) => {
                    done += 1;
                    tracing::info!(operator = %next.operator, request = ?next.request, "a queued revocation was carried out");
                }
                // The registry went away again: it stays, and waits.
                Err(e)
                    if e.code == AdminErrorCode::Internal && ctx.registry.revision().is_err() =>
                {
                    break;
                }
                // Refused for good (already revoked, unknown): done with, and said.
                Err(e) => {
                    done += 1;
                    tracing::warn!(operator = %next.operator, request = ?next.request, error = %e.message, "a queued revocation was refused when carried out");
                }
            }
            let mut items = self.lock();
            if !items.is_empty() {
                items.remove(0);
            }
            if let Err(e) = self.save(&items) {
                tracing::error!(error = %e, "could not rewrite the queued revocations");
            }
        }
        (access, done)
    }
}

/// The device and employee a revocation request concerns; `None` for other requests.
fn target(r: &AdminRequest) -> Option<(Option<DeviceId>, Option<EmployeeId>)> {
    match r {
        AdminRequest::DeviceRevoke { device, .. } => Some((Some(device.clone()), None)),
        AdminRequest::EmployeeRevoke { employee, .. } => Some((None, Some(employee.clone()))),
        AdminRequest::IncidentReport {
            device, employee, ..
        } => Some((device.clone(), employee.clone())),
        _ => None,
    }
}

/// Queues `request` if it is a revocation and the registry cannot be read now; `None`
/// lets it be carried out at once.
pub fn intercept(ctx: &Context, operator: &str, request: &AdminRequest) -> Option<Outcome> {
    let (device, employee) = target(request)?;
    let error = ctx.registry.revision().err()?.to_string();
    let mut access = Vec::new();
    let why = match request {
        AdminRequest::IncidentReport { .. } => EndReason::Incident,
        AdminRequest::EmployeeRevoke { .. } => EndReason::EmployeeRevoked,
        _ => EndReason::DeviceRevoked,
    };
    if let Some(d) = &device {
        access.push(AccessChange::Revoked(
            Revoked::Device(d.clone()),
            why.clone(),
        ));
    }
    if let Some(e) = &employee {
        access.push(AccessChange::Revoked(Revoked::Employee(e.clone()), why));
    }
    let action = match request {
        AdminRequest::DeviceRevoke { .. } => "device.revoke",
        AdminRequest::EmployeeRevoke { .. } => "employee.revoke",
        _ => "incident.report",
    };
    if let Err(e) = ctx.journal(&Event::RevocationQueued {
        action: action.into(),
        device: device.clone(),
        employee: employee.clone(),
        operator: operator.to_owned(),
        error: error.clone(),
    }) {
        tracing::error!(error = %e, "taking access away although the journal cannot record it");
    }
    let queue = &ctx.queued;
    let result = {
        let mut items = queue.lock();
        if items.len() >= MAX_QUEUED {
            Err(AdminError::new(
                AdminErrorCode::Conflict,
                format!(
                    "{MAX_QUEUED} revocations already wait for the registry: this one ended the sessions on this gateway but is not kept; make it again once the registry is back"
                ),
            ))
        } else {
            items.push(Queued {
                operator: operator.to_owned(),
                at: ctx.clock.now(),
                request: request.clone(),
            });
            match queue.save(&items) {
                Ok(()) => Ok(queued_answer(&device, &employee, &error, items.len())),
                Err(e) => {
                    items.pop();
                    Err(AdminError::new(
                        AdminErrorCode::Internal,
                        format!(
                            "the sessions on this gateway ended, but the revocation could not be kept for the registry ({e}): make it again once the registry is back"
                        ),
                    ))
                }
            }
        }
    };
    Some(Outcome { result, access })
}

fn queued_answer(
    device: &Option<DeviceId>,
    employee: &Option<EmployeeId>,
    error: &str,
    waiting: usize,
) -> AdminResponse {
    let who = match (device, employee) {
        (Some(d), _) => format!("device {d}"),
        (None, Some(e)) => format!("employee {e}"),
        (None, None) => "it".into(),
    };
    done(
        format!(
            "the registry cannot be reached ({error}): the sessions of {who} on this gateway ended now, and the revocation is queued ({waiting} waiting); it is recorded, and reaches the other gateways, as soon as the registry answers"
        ),
        device.iter().cloned().collect(),
    )
}
