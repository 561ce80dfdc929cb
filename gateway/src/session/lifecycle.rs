//! The live sessions and what ends them. A pure state machine: the shell feeds it the
//! time, admissions, re-checks, traffic, revocations and policy loads, and carries out
//! what it returns (journal, data plane) in the order [`super::protocol`] writes down.
//!
//! A session is in one of three places:
//! - **pending**: an admission in progress. Its capacity and tunnel address are reserved;
//!   its peer may or may not be installed yet. One per device at most: admissions of one
//!   device are serialised. A revocation or policy load that concerns it *dooms* it, and
//!   the admission that owns it ends it when it tries to commit.
//! - **live**: admitted, its peer installed.
//! - **draining**: ended; its peer may still be installed. Its address comes back to the
//!   pool only with [`Sessions::release`], once the peer is gone.
//!
//! Whoever takes a session out of pending or live (into draining) is the one that ends
//! it: removes its peer, releases it and journals its end, exactly once.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use ztgw_pki::identity::{DeviceId, EmployeeId};

use ztgw_config::policy::Policy;

use super::admission::{Terms, from_jiff, to_jiff};
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
    /// Dual stack: the session's IPv6 address (at the same offset in the IPv6 tunnel
    /// network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_addr6: Option<IpAddr>,
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
    /// The device's role changed (to this one): admitted again, it gets the new role's
    /// resources, schedule, posture profile and second factor.
    RoleChanged(String),
    Operator(String),
    Shutdown,
    /// The session could not be set up (its peer was refused by the data plane).
    SetupFailed(String),
    /// Found by reconciliation: a peer no session owned, or whose device or employee
    /// was no longer in service. Never expected; the safety net, not the mechanism.
    Orphan(String),
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
            Self::RoleChanged(to) => format!("role-changed: {to}"),
            Self::Operator(why) => format!("operator: {why}"),
            Self::Shutdown => "gateway-stopped".into(),
            Self::SetupFailed(why) => format!("setup-failed: {why}"),
            Self::Orphan(why) => format!("orphan: {why}"),
        }
    }
}

/// Why a session could not be created. Nothing in the table changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Sessions,
    Addresses,
    /// Another admission of the same device is in progress.
    Busy,
}

/// A session that has just ended, and why; its peer is still to be removed.
pub type Ended = (Session, EndReason);

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
    End(Box<Session>, EndReason),
}

/// What a re-check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recheck<'a> {
    pub compliant: bool,
    /// The role's quarantine role, if the policy defines one.
    pub quarantine: Option<&'a str>,
    pub factor: Factor,
}

/// The second factor at a re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// Neither given nor due.
    NotAsked,
    /// Given (or due) and verified.
    Passed,
    /// Due and missing, or given and wrong.
    Failed,
}

/// Whose access was taken away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Device(DeviceId),
    Employee(EmployeeId),
    /// The device's role changed to this one: its sessions admitted with another role
    /// end (to be admitted again under the new role).
    Role(DeviceId, String),
}

impl Revoked {
    fn covers(&self, s: &Session) -> bool {
        match self {
            Self::Device(d) => &s.device == d,
            Self::Employee(e) => &s.employee == e,
            Self::Role(d, role) => &s.device == d && &s.admitted_role != role,
        }
    }
}

/// What committing an admission leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// The session is live.
    Live(Box<Session>),
    /// A revocation or policy load doomed it, or its device or employee is no longer in
    /// service: it is draining and must be ended.
    End(Box<Session>, EndReason),
    /// No pending admission by that id.
    Unknown,
}

#[derive(Debug, Clone)]
struct Pending {
    session: Session,
    /// Set when something that would have ended it, had it been live, happened.
    doomed: Option<EndReason>,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    live: BTreeMap<String, Session>,
    pending: BTreeMap<String, Pending>,
    /// Ended sessions whose peer may still be installed, with their address.
    draining: BTreeMap<String, IpAddr>,
    pool: Pool,
    max: usize,
}

impl Sessions {
    pub fn new(pool: Pool, max: usize) -> Self {
        Self {
            live: BTreeMap::new(),
            pending: BTreeMap::new(),
            draining: BTreeMap::new(),
            pool,
            max,
        }
    }

    /// Starts an admission: reserves a place and a tunnel address for session `id`.
    /// The device's live session, if any, is left as it is: it is replaced only once
    /// the new session has been journaled ([`Sessions::take_replaced`]). A refusal
    /// changes nothing.
    pub fn begin(
        &mut self,
        id: String,
        device: DeviceId,
        employee: EmployeeId,
        terms: &Terms,
        now: OffsetDateTime,
    ) -> Result<Session, Full> {
        if self.pending.values().any(|p| p.session.device == device) {
            return Err(Full::Busy);
        }
        if self.held() >= self.max {
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
            tunnel_addr6: self.pool.twin_of(tunnel_addr),
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
        self.pending.insert(
            id,
            Pending {
                session: s.clone(),
                doomed: None,
            },
        );
        Ok(s)
    }

    /// Drops a pending admission that never started (nothing installed, nothing
    /// journaled): its address goes straight back.
    pub fn cancel(&mut self, id: &str) -> bool {
        match self.pending.remove(id) {
            Some(p) => {
                self.pool.give_back(p.session.tunnel_addr);
                true
            }
            None => false,
        }
    }

    /// The live session that pending admission `id` replaces, moved to draining.
    pub fn take_replaced(&mut self, id: &str) -> Option<Ended> {
        let device = &self.pending.get(id)?.session.device;
        let old = self.live.values().find(|s| &s.device == device)?.id.clone();
        self.end(&old, EndReason::Replaced)
    }

    /// Ends pending admission `id` (its peer could not be installed): draining.
    pub fn abort(&mut self, id: &str, reason: EndReason) -> Option<Ended> {
        let p = self.pending.remove(id)?;
        self.draining
            .insert(p.session.id.clone(), p.session.tunnel_addr);
        Some((p.session, reason))
    }

    /// Commits pending admission `id` once its peer is installed. `standing` is the
    /// device's and employee's status read *after* the peer was installed (`None`: in
    /// service). A revocation applied meanwhile doomed the pending session; one applied
    /// before the status was read shows in `standing`: either way it wins.
    pub fn commit(&mut self, id: &str, standing: Option<EndReason>) -> Commit {
        let Some(p) = self.pending.remove(id) else {
            return Commit::Unknown;
        };
        match p.doomed.or(standing) {
            Some(reason) => {
                self.draining
                    .insert(p.session.id.clone(), p.session.tunnel_addr);
                Commit::End(Box::new(p.session), reason)
            }
            None => {
                self.live.insert(p.session.id.clone(), p.session.clone());
                Commit::Live(Box::new(p.session))
            }
        }
    }

    /// A posture re-check of live session `id`.
    pub fn recheck(&mut self, id: &str, r: &Recheck<'_>, now: OffsetDateTime) -> Option<Verdict> {
        let s = self.live.get_mut(id)?;
        let next_due = now + s.recheck_every;
        if r.factor == Factor::Failed {
            let (s, reason) = self.end(id, EndReason::SecondFactor)?;
            return Some(Verdict::End(Box::new(s), reason));
        }
        if r.factor == Factor::Passed {
            s.second_factor_due = s.second_factor_every.map(|e| now + e);
        }
        Some(match (r.compliant, r.quarantine) {
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
            (false, None) => {
                let (s, reason) = self.end(id, EndReason::RecheckFailed)?;
                Verdict::End(Box::new(s), reason)
            }
        })
    }

    /// The live session of `device`, if any.
    pub fn of_device(&self, device: &DeviceId) -> Option<&Session> {
        self.live.values().find(|s| &s.device == device)
    }

    /// Whether live session `id` must give its second factor again now.
    pub fn second_factor_due(&self, id: &str, now: OffsetDateTime) -> bool {
        self.live
            .get(id)
            .and_then(|s| s.second_factor_due)
            .is_some_and(|due| due <= now)
    }

    /// Whether a device whose role requires a second factor is asked for it with a
    /// nonce issued now: at admission (no live session), and when its session's time for
    /// it comes within `lead` (a nonce's lifetime, so that a re-check made with this
    /// nonce never finds it due without a code).
    pub fn second_factor_wanted(
        &self,
        device: &DeviceId,
        now: OffsetDateTime,
        lead: Duration,
    ) -> bool {
        self.of_device(device)
            .is_none_or(|s| s.second_factor_due.is_some_and(|due| due <= now + lead))
    }

    /// Traffic was seen on session `id`.
    pub fn activity(&mut self, id: &str, now: OffsetDateTime) {
        if let Some(s) = self.live.get_mut(id) {
            s.last_activity = s.last_activity.max(now);
        }
    }

    /// Ends every live session whose time is up at `now`, with its reason.
    pub fn due(&mut self, now: OffsetDateTime) -> Vec<Ended> {
        let ended: Vec<(String, EndReason)> = self
            .live
            .values()
            .filter_map(|s| due_reason(s, now).map(|r| (s.id.clone(), r)))
            .collect();
        ended
            .into_iter()
            .filter_map(|(id, r)| self.end(&id, r))
            .collect()
    }

    /// The next instant at which [`Sessions::due`] has something to do.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        self.live.values().map(deadline).min()
    }

    /// Ends live session `id`: it moves to draining, its address reserved until
    /// [`Sessions::release`] (the data plane may still hold its peer).
    pub fn end(&mut self, id: &str, reason: EndReason) -> Option<Ended> {
        let s = self.live.remove(id)?;
        self.draining.insert(s.id.clone(), s.tunnel_addr);
        Some((s, reason))
    }

    /// The peer of draining session `id` is gone: its address goes back to the pool.
    pub fn release(&mut self, id: &str) {
        if let Some(addr) = self.draining.remove(id) {
            self.pool.give_back(addr);
        }
    }

    /// A revocation: ends every live session it covers, and dooms the pending ones (their
    /// admission ends them when it commits).
    pub fn revoke(&mut self, who: &Revoked, reason: &EndReason) -> Vec<Ended> {
        for p in self.pending.values_mut() {
            if who.covers(&p.session) && p.doomed.is_none() {
                p.doomed = Some(reason.clone());
            }
        }
        self.end_where(|s| who.covers(s).then(|| reason.clone()))
    }

    /// A new policy in force: sessions whose role or schedule it no longer allows end
    /// (pending ones are doomed); the others end when the new window does.
    pub fn policy_loaded(&mut self, policy: &Policy, now: OffsetDateTime) -> Vec<Ended> {
        for p in self.pending.values_mut() {
            match standing_under(policy, &p.session, now) {
                Standing::Ends(why) => {
                    p.doomed.get_or_insert(EndReason::Policy(why));
                }
                Standing::Until(end) => shorten(&mut p.session, end),
                Standing::Stays => {}
            }
        }
        let mut shortened = Vec::new();
        let ended = self.end_where(|s| match standing_under(policy, s, now) {
            Standing::Ends(why) => Some(EndReason::Policy(why)),
            Standing::Until(end) => {
                shortened.push((s.id.clone(), end));
                None
            }
            Standing::Stays => None,
        });
        for (id, end) in shortened {
            if let Some(s) = self.live.get_mut(&id) {
                shorten(s, end);
            }
        }
        ended
    }

    /// Ends every live session for which `why` gives a reason.
    pub fn end_where(&mut self, why: impl FnMut(&Session) -> Option<EndReason>) -> Vec<Ended> {
        let mut why = why;
        let ids: Vec<(String, EndReason)> = self
            .live
            .values()
            .filter_map(|s| why(s).map(|r| (s.id.clone(), r)))
            .collect();
        ids.into_iter()
            .filter_map(|(id, r)| self.end(&id, r))
            .collect()
    }

    /// Of the sessions named by the data plane's peers, those the table does not hold
    /// (neither pending, live nor draining): orphans, to be removed.
    pub fn unowned<'a>(&self, peers: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        peers
            .into_iter()
            .filter(|id| {
                !self.live.contains_key(*id)
                    && !self.pending.contains_key(*id)
                    && !self.draining.contains_key(*id)
            })
            .map(str::to_owned)
            .collect()
    }

    /// Shortens live session `id` to `window_end` (a policy reload that moved the
    /// window's end).
    pub fn shorten(&mut self, id: &str, window_end: OffsetDateTime) {
        if let Some(s) = self.live.get_mut(id) {
            shorten(s, window_end);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.live.get(id)
    }

    pub fn list(&self) -> Vec<Session> {
        self.live.values().cloned().collect()
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Pending admissions.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Ended sessions whose peer is not yet confirmed gone.
    pub fn draining_len(&self) -> usize {
        self.draining.len()
    }

    /// Tunnel addresses handed out (pending, live and draining sessions).
    pub fn addresses_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Whether `id` is a pending admission.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// The addresses the table holds, each with the session holding it; for checks
    /// that no address is held twice.
    pub fn held_addresses(&self) -> Vec<(IpAddr, String)> {
        let mut out: Vec<(IpAddr, String)> = self
            .live
            .values()
            .map(|s| (s.tunnel_addr, s.id.clone()))
            .chain(
                self.pending
                    .values()
                    .map(|p| (p.session.tunnel_addr, p.session.id.clone())),
            )
            .chain(self.draining.iter().map(|(id, a)| (*a, id.clone())))
            .collect();
        out.sort();
        out
    }

    /// Sessions holding a place: pending, live and draining.
    fn held(&self) -> usize {
        self.live.len() + self.pending.len() + self.draining.len()
    }
}

/// What a policy says of a session admitted under another.
enum Standing {
    Stays,
    Until(OffsetDateTime),
    Ends(String),
}

fn standing_under(policy: &Policy, s: &Session, now: OffsetDateTime) -> Standing {
    if !policy.roles.contains_key(&s.admitted_role) {
        return Standing::Ends(format!("role {} removed", s.admitted_role));
    }
    if s.schedule == "override" {
        return Standing::Stays;
    }
    match policy.schedules.get(&s.schedule) {
        None => Standing::Ends(format!("schedule {} removed", s.schedule)),
        Some(sch) => match sch.window_at(to_jiff(now)) {
            None => Standing::Ends(format!("outside the schedule {}", s.schedule)),
            Some(w) => Standing::Until(from_jiff(w.end)),
        },
    }
}

fn shorten(s: &mut Session, window_end: OffsetDateTime) {
    if window_end < s.ends_at {
        s.ends_at = window_end;
        s.ends_with_window = true;
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
