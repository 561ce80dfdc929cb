//! The live sessions and what ends them. A pure state machine: the shell feeds it the
//! time, admissions, re-checks, traffic and revocations, and carries out what it returns
//! (journal, data plane).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use ztgw_pki::identity::{DeviceId, EmployeeId};

use super::admission::Terms;
use super::pool::Pool;

/// Most sessions at once (`max_peers` in `[wireguard]` bounds it in the daemon).
pub const MAX_SESSIONS: usize = 10_000;
/// A re-check may arrive this late before the session ends.
pub const RECHECK_GRACE: Duration = Duration::seconds(60);

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub device: DeviceId,
    pub employee: EmployeeId,
    /// The role in force now (the quarantine role after a failed re-check).
    pub role: String,
    /// The role the device was admitted with.
    pub admitted_role: String,
    pub schedule: String,
    pub tunnel_addr: IpAddr,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// `ends_at` is the end of the schedule window (not the maximum lifetime).
    pub ends_with_window: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub recheck_due: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
    #[serde(skip)]
    pub recheck_every: Duration,
    #[serde(skip)]
    pub idle_timeout: Duration,
    pub quarantined: bool,
    /// When the second factor must be given again (roles that require one).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub second_factor_due: Option<OffsetDateTime>,
    #[serde(skip)]
    pub second_factor_every: Option<Duration>,
}

/// Why a session ended (journaled as its `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    WindowEnded,
    MaxLifetime,
    RecheckFailed,
    RecheckMissed,
    Idle,
    DeviceRevoked,
    EmployeeRevoked,
    Incident,
    Disconnected,
    /// The second factor asked again was not given, or not right.
    SecondFactor,
    /// A new admission of the same device replaced it.
    Replaced,
    /// A policy reload no longer allows it (the reason says why).
    Policy(String),
    Operator(String),
    Shutdown,
}

impl EndReason {
    pub fn as_string(&self) -> String {
        match self {
            Self::WindowEnded => "window-ended".into(),
            Self::MaxLifetime => "max-lifetime".into(),
            Self::RecheckFailed => "posture-recheck-failed".into(),
            Self::RecheckMissed => "posture-recheck-missed".into(),
            Self::Idle => "idle".into(),
            Self::DeviceRevoked => "device-revoked".into(),
            Self::EmployeeRevoked => "employee-revoked".into(),
            Self::Incident => "incident".into(),
            Self::Disconnected => "disconnected".into(),
            Self::SecondFactor => "second-factor-failed".into(),
            Self::Replaced => "replaced".into(),
            Self::Policy(why) => format!("policy: {why}"),
            Self::Operator(why) => format!("operator: {why}"),
            Self::Shutdown => "gateway-stopped".into(),
        }
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Sessions,
    Addresses,
}

/// What a re-check leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue {
        next_due: OffsetDateTime,
    },
    /// Moved to the quarantine role (the data plane must be told).
    Quarantine {
        role: String,
        next_due: OffsetDateTime,
    },
    /// Back from quarantine to the admitted role.
    Restore {
        role: String,
        next_due: OffsetDateTime,
    },
    End(Box<Session>),
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    by_id: BTreeMap<String, Session>,
    pool: Pool,
    max: usize,
}

impl Sessions {
    pub fn new(pool: Pool, max: usize) -> Self {
        Self {
            by_id: BTreeMap::new(),
            pool,
            max,
        }
    }

    /// Creates a session with the given id; a live session of the same device is ended
    /// first (returned, to be journaled and removed).
    pub fn admit(
        &mut self,
        id: String,
        device: DeviceId,
        employee: EmployeeId,
        terms: &Terms,
        now: OffsetDateTime,
    ) -> Result<(Session, Option<Session>), Full> {
        let replaced = self
            .by_id
            .values()
            .find(|s| s.device == device)
            .map(|s| s.id.clone())
            .and_then(|old| self.end(&old));
        if self.by_id.len() >= self.max {
            return Err(Full::Sessions);
        }
        let tunnel_addr = self.pool.take().ok_or(Full::Addresses)?;
        let s = Session {
            id: id.clone(),
            device,
            employee,
            role: terms.role.clone(),
            admitted_role: terms.role.clone(),
            schedule: terms.schedule.clone(),
            tunnel_addr,
            started: now,
            ends_at: terms.ends_at,
            ends_with_window: terms.ends_with_window,
            recheck_due: now + terms.recheck_every,
            last_activity: now,
            recheck_every: terms.recheck_every,
            idle_timeout: terms.idle_timeout,
            quarantined: false,
            second_factor_due: terms.second_factor_every.map(|e| now + e),
            second_factor_every: terms.second_factor_every,
        };
        self.by_id.insert(id, s.clone());
        Ok((s, replaced))
    }

    /// A posture re-check of session `id`: `compliant`, and the role's quarantine role
    /// if the policy defines one.
    pub fn recheck(
        &mut self,
        id: &str,
        compliant: bool,
        quarantine: Option<&str>,
        now: OffsetDateTime,
    ) -> Option<Verdict> {
        let s = self.by_id.get_mut(id)?;
        let next_due = now + s.recheck_every;
        Some(match (compliant, quarantine) {
            (true, _) => {
                s.recheck_due = next_due;
                if s.quarantined {
                    s.quarantined = false;
                    s.role = s.admitted_role.clone();
                    Verdict::Restore {
                        role: s.role.clone(),
                        next_due,
                    }
                } else {
                    Verdict::Continue { next_due }
                }
            }
            (false, Some(q)) => {
                s.recheck_due = next_due;
                s.quarantined = true;
                s.role = q.to_owned();
                Verdict::Quarantine {
                    role: q.to_owned(),
                    next_due,
                }
            }
            (false, None) => match self.end(id) {
                Some(s) => Verdict::End(Box::new(s)),
                None => return None,
            },
        })
    }

    /// The live session of `device`, if any.
    pub fn of_device(&self, device: &DeviceId) -> Option<&Session> {
        self.by_id.values().find(|s| &s.device == device)
    }

    /// Whether session `id` must give its second factor again now.
    pub fn second_factor_due(&self, id: &str, now: OffsetDateTime) -> bool {
        self.by_id
            .get(id)
            .and_then(|s| s.second_factor_due)
            .is_some_and(|due| due <= now)
    }

    /// The second factor was given again on session `id`.
    pub fn second_factor_given(&mut self, id: &str, now: OffsetDateTime) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.second_factor_due = s.second_factor_every.map(|e| now + e);
        }
    }

    /// Traffic was seen on session `id`.
    pub fn activity(&mut self, id: &str, now: OffsetDateTime) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.last_activity = s.last_activity.max(now);
        }
    }

    /// Ends every session whose time is up at `now`, with its reason.
    pub fn due(&mut self, now: OffsetDateTime) -> Vec<(Session, EndReason)> {
        let ended: Vec<(String, EndReason)> = self
            .by_id
            .values()
            .filter_map(|s| due_reason(s, now).map(|r| (s.id.clone(), r)))
            .collect();
        ended
            .into_iter()
            .filter_map(|(id, r)| self.end(&id).map(|s| (s, r)))
            .collect()
    }

    /// The next instant at which [`Sessions::due`] has something to do.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        self.by_id.values().map(deadline).min()
    }

    /// Ends session `id` and returns it. Its tunnel address stays reserved until
    /// [`Sessions::release`]: the data plane may still hold its peer.
    pub fn end(&mut self, id: &str) -> Option<Session> {
        self.by_id.remove(id)
    }

    /// Puts an ended session's address back in the pool, once its peer is gone.
    pub fn release(&mut self, addr: IpAddr) {
        if !self.by_id.values().any(|s| s.tunnel_addr == addr) {
            self.pool.give_back(addr);
        }
    }

    /// Ends every session for which `pred` holds.
    pub fn end_where(&mut self, pred: impl Fn(&Session) -> bool) -> Vec<Session> {
        let ids: Vec<String> = self
            .by_id
            .values()
            .filter(|s| pred(s))
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.end(id)).collect()
    }

    /// Shortens sessions to `ends_at` (a policy reload that moved the window's end).
    pub fn shorten(&mut self, id: &str, window_end: OffsetDateTime) {
        if let Some(s) = self.by_id.get_mut(id)
            && window_end < s.ends_at
        {
            s.ends_at = window_end;
            s.ends_with_window = true;
        }
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn list(&self) -> Vec<Session> {
        self.by_id.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn deadline(s: &Session) -> OffsetDateTime {
    s.ends_at
        .min(s.recheck_due + RECHECK_GRACE)
        .min(s.last_activity + s.idle_timeout)
}

fn due_reason(s: &Session, now: OffsetDateTime) -> Option<EndReason> {
    if now >= s.ends_at {
        return Some(if s.ends_with_window {
            EndReason::WindowEnded
        } else {
            EndReason::MaxLifetime
        });
    }
    if now >= s.recheck_due + RECHECK_GRACE {
        return Some(EndReason::RecheckMissed);
    }
    if now >= s.last_activity + s.idle_timeout {
        return Some(EndReason::Idle);
    }
    None
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
