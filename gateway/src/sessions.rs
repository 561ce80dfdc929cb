//! The session layer's shell: admission, re-checks and the end of sessions, carried out
//! against the registry, the journal and the data plane. Decisions are made in
//! [`crate::session`]; the order of effects is [`crate::session::protocol`]'s, run here
//! through [`Effects`].
//!
//! Revocations, incidents and policy loads reach the sessions as
//! [`AccessChange`]s returned by the admin actions and applied by [`SessionService::apply`]
//! before the action answers. [`SessionService::reconcile`] is the safety net: every few
//! seconds it removes peers no session owns and ends sessions whose device or employee is
//! no longer in service, journaled as `session.orphan_removed`. It is never expected to
//! find anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use time::OffsetDateTime;
use ztgw_api::control::{
    AdmissionRequest, DeviceStatus, EndRequest, NonceView, RecheckRequest, RecheckView,
    RedactedString, SessionGrant, WatchView,
};
use ztgw_pki::identity::WgPublicKey;
use ztgw_posture::evaluate::{Evaluation, Freshness, evaluate};
use ztgw_posture::report::PostureReport;

use crate::active_policy::ActivePolicy;
use crate::admin::AccessChange;
use crate::api_error::{ApiError, Reason};
use crate::clock::random;
use crate::context::Context;
use crate::device_auth::AuthenticatedDevice;
use crate::enrolment::rfc3339;
use crate::journal::Event;
use crate::session::admission::{self, Applicant, Facts, Failure, to_jiff};
use crate::session::lifecycle::{
    EndReason, Factor, Full, MAX_SESSIONS, Recheck, Session, Sessions, Verdict,
};
use crate::session::nonce::{NONCE_LIFETIME, Nonces};
use crate::session::pool::Pool;
use crate::session::protocol::{self, Admission, Effects, Refused};
use ztgw_dataplane::accounting::Report;
use ztgw_dataplane::peers::{PeerSpec, PresharedKey};
use ztgw_dataplane::shell::{DataPlane, PeerInfo};

/// Keepalive the client is told to send (through NAT).
const KEEPALIVE_SECS: u16 = 25;
/// How often flow accounting is journaled for live sessions.
const FLOWS_EVERY: time::Duration = time::Duration::minutes(1);
/// Ended sessions whose reason a watching agent can still be told.
const RECENTLY_ENDED: usize = 4_096;
/// Watches of one device's sessions at once; more are refused (an agent needs one).
pub const MAX_WATCHES_PER_DEVICE: usize = 4;
/// How long a watch that saw a session leave the table waits for its end's record.
const END_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The session layer of a running gateway.
pub struct SessionService {
    ctx: Arc<Context>,
    dataplane: Option<DataPlane>,
    state: Mutex<State>,
    /// Bumped at every end of a session: watching agents look again.
    ended: tokio::sync::watch::Sender<u64>,
    granted: AtomicU64,
    refused: AtomicU64,
    orphans: AtomicU64,
    /// Live sessions the previous reconciliation found out of service: ended if the
    /// next one finds them so again (a revocation being applied is not an orphan).
    suspects: Mutex<HashSet<String>>,
    /// Watches under way, per device (bounded by [`MAX_WATCHES_PER_DEVICE`]).
    watches: Mutex<HashMap<ztgw_pki::DeviceId, usize>>,
    /// Held while a second-factor code is checked and its outcome recorded, so that
    /// parallel guesses are counted one after the other.
    factor_checks: Mutex<()>,
}

struct State {
    sessions: Sessions,
    nonces: Nonces,
    /// Packets forwarded per session at the last look (traffic means activity).
    rx_seen: HashMap<String, u64>,
    flows_journaled: OffsetDateTime,
    /// Why recently ended sessions ended, oldest first (bounded).
    recently_ended: VecDeque<(String, String)>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("dataplane", &self.dataplane)
            .finish_non_exhaustive()
    }
}

/// The keys of a session's peer, carried from admission to the data plane.
pub struct PeerKeys {
    public_key: [u8; 32],
    preshared_key: PresharedKey,
}

impl std::fmt::Debug for PeerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerKeys").finish_non_exhaustive()
    }
}

impl SessionService {
    /// A session layer over `dataplane` (none: every admission is refused as
    /// unavailable).
    pub fn new(ctx: Arc<Context>, dataplane: Option<DataPlane>) -> Arc<Self> {
        // (Checked when the settings were read; the fallback is never used.)
        let pool = ctx
            .settings
            .wireguard
            .tunnel_networks()
            .map(|(primary, v6)| Pool::dual(primary, v6))
            .unwrap_or_else(|_| {
                Pool::new(ztgw_config::policy::Network::V4 {
                    addr: 0,
                    prefix: 32,
                })
            });
        let max = match ctx.settings.wireguard.max_peers {
            0 => MAX_SESSIONS,
            n => n,
        };
        Arc::new(Self {
            state: Mutex::new(State {
                sessions: Sessions::new(pool, max),
                nonces: Nonces::default(),
                rx_seen: HashMap::new(),
                flows_journaled: ctx.clock.now(),
                recently_ended: VecDeque::new(),
            }),
            ctx,
            dataplane,
            ended: tokio::sync::watch::Sender::new(0),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            orphans: AtomicU64::new(0),
            suspects: Mutex::new(HashSet::new()),
            watches: Mutex::new(HashMap::new()),
            factor_checks: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dataplane(&self) -> Result<&DataPlane, ApiError> {
        self.dataplane.as_ref().ok_or_else(|| {
            ApiError::new(
                Reason::SessionsUnavailable,
                "this gateway runs without a data plane ([wireguard] enabled = false)",
            )
        })
    }

    /// A one-time nonce for the device's next posture report.
    pub fn nonce(&self, device: &AuthenticatedDevice) -> Result<NonceView, ApiError> {
        let nonce = hex(&random::<16>(self.ctx.entropy.as_ref())?);
        let now = self.ctx.clock.now();
        let active = self.ctx.policy.current();
        let role = active.policy.roles.get(&device.record.role);
        let profile = role
            .and_then(|r| active.policy.posture.get(&r.posture))
            .and_then(|p| serde_json::to_value(p).ok());
        let mut st = self.lock();
        st.nonces
            .issue(&device.record.id, nonce.clone(), now)
            .map_err(|_| {
                ApiError::new(Reason::SessionsUnavailable, "too many nonces outstanding")
            })?;
        let second_factor = role.is_some_and(|r| r.second_factor.is_some())
            && st
                .sessions
                .second_factor_wanted(&device.record.id, now, NONCE_LIFETIME);
        Ok(NonceView {
            nonce,
            valid_secs: NONCE_LIFETIME.whole_seconds().unsigned_abs(),
            profile,
            second_factor,
        })
    }

    /// Admission: every check, then the steps of [`crate::session::protocol`].
    pub fn admit(
        &self,
        device: &AuthenticatedDevice,
        req: &AdmissionRequest,
    ) -> Result<SessionGrant, ApiError> {
        let now = self.ctx.clock.now();
        let active = self.ctx.policy.current();
        let record = &device.record;
        let wg_key = WgPublicKey::from_base64(&req.wg_public_key).map_err(|_| {
            ApiError::new(
                Reason::RequestMalformed,
                "wg_public_key is not a base64 WireGuard key",
            )
        })?;
        if self.ctx.queued.covers(&record.id, &record.employee) {
            return Err(ApiError::new(
                Reason::DeviceRevoked,
                "a revocation of this device or its employee is waiting to be recorded",
            ));
        }
        let employee_active = self
            .ctx
            .registry
            .employee(&record.employee)?
            .is_some_and(|e| e.revoked.is_none());
        let (evaluation, early) = self.posture(device, &active, &req.posture, now);
        let facts = Facts {
            device: applicant(device),
            employee_active,
            wg_key: &wg_key,
            policy: &active.policy,
            posture: evaluation.as_ref(),
            override_until: crate::admin::schedule_override::until_for(
                &self.ctx,
                now,
                &record.employee,
                &record.role,
            ),
        };
        let decided = admission::decide(&facts, now);
        let extra: Vec<Failure> = early.into_iter().collect();
        let terms = match decided {
            Ok(t) if extra.is_empty() => t,
            Ok(_) => return Err(self.refuse(device, evaluation.as_ref(), extra)),
            Err(mut failures) => {
                failures.extend(extra);
                return Err(self.refuse(device, evaluation.as_ref(), failures));
            }
        };
        // The code is looked at only on an otherwise valid request.
        if active
            .policy
            .roles
            .get(&record.role)
            .is_some_and(|r| r.second_factor.is_some())
            && let Err(f) = self.second_factor(device, req.second_factor.as_ref(), now)?
        {
            return Err(self.refuse(device, evaluation.as_ref(), vec![f]));
        }
        // Checked after the decision, so that a refusal is explained even here.
        let dp = self.dataplane()?;
        let id = format!("s-{}", hex(&random::<12>(self.ctx.entropy.as_ref())?));
        let psk = random::<32>(self.ctx.entropy.as_ref())?;
        let keys = PeerKeys {
            public_key: *wg_key.as_bytes(),
            preshared_key: PresharedKey::new(psk),
        };
        let admission = Admission::new(
            id,
            record.id.clone(),
            record.employee.clone(),
            terms.clone(),
            now,
            keys,
        );
        let session = admission.run(self).map_err(|refused| match refused {
            Refused::Full(Full::Busy) => ApiError::new(
                Reason::AdmissionInProgress,
                "another connection of this device is being set up; wait for it to finish",
            ),
            Refused::Full(_) => ApiError::new(
                Reason::SessionsUnavailable,
                "the gateway has no room for another session now; try again later",
            ),
            Refused::Journal(e) => ApiError::new(
                Reason::JournalUnavailable,
                format!("the admission could not be journaled, so it was not granted: {e}"),
            ),
            Refused::Install(_) => {
                ApiError::new(Reason::Internal, "the gateway could not set up the tunnel")
            }
            Refused::Ended(reason) => {
                ApiError::refused(vec![admission::ended_during_admission(&reason)])
            }
        })?;
        self.granted.fetch_add(1, Ordering::Relaxed);
        Ok(SessionGrant {
            session: session.id.clone(),
            role: terms.role.clone(),
            gateway_public_key: base64::engine::general_purpose::STANDARD.encode(dp.public_key()),
            endpoint: self.ctx.settings.wireguard.endpoint.clone(),
            tunnel_address: session.tunnel_addr.to_string(),
            tunnel_address6: session.tunnel_addr6.map(|a| a.to_string()),
            preshared_key: RedactedString::new(
                base64::engine::general_purpose::STANDARD.encode(psk),
            ),
            allowed_ips: allowed_ips(&active, &terms.role),
            dns: resolvers(&active, &terms.role),
            dns_domains: resolver_domains(&active, &terms.role),
            keepalive_secs: KEEPALIVE_SECS,
            ends_at: rfc3339(session.ends_at),
            recheck_secs: terms.recheck_every.whole_seconds().unsigned_abs(),
        })
    }

    /// A posture re-check of a live session.
    pub fn recheck(
        &self,
        device: &AuthenticatedDevice,
        req: &RecheckRequest,
    ) -> Result<RecheckView, ApiError> {
        let dp = self.dataplane()?;
        self.owned(device, &req.session)?;
        let now = self.ctx.clock.now();
        let active = self.ctx.policy.current();
        let (evaluation, early) = self.posture(device, &active, &req.posture, now);
        let report_valid = early.is_none();
        let compliant = report_valid && evaluation.as_ref().is_some_and(|e| e.compliant);
        let mut failures: Vec<Failure> = early.into_iter().collect();
        if let Some(e) = &evaluation {
            failures.extend(admission::posture_failures(e));
        }
        self.journal_or_log(&Event::PostureChecked {
            device: device.record.id.clone(),
            employee: device.record.employee.clone(),
            compliant,
            failed: failures.iter().map(|f| f.id.clone()).collect(),
        });
        let role = active.policy.roles.get(&device.record.role);
        let factor_given =
            req.second_factor.is_some() && role.is_some_and(|r| r.second_factor.is_some());
        let due = self.lock().sessions.second_factor_due(&req.session, now);
        let factor = if !(factor_given || due) {
            Factor::NotAsked
        } else if !report_valid {
            // A report that could not be read, or not fresh: the code is not looked at.
            if due {
                Factor::Failed
            } else {
                Factor::NotAsked
            }
        } else {
            match self.second_factor(device, req.second_factor.as_ref(), now)? {
                Ok(()) => Factor::Passed,
                Err(f) => {
                    failures.push(f);
                    Factor::Failed
                }
            }
        };
        let quarantine = role.and_then(|r| r.quarantine.clone());
        let verdict = self.lock().sessions.recheck(
            &req.session,
            &Recheck {
                compliant,
                quarantine: quarantine.as_deref(),
                factor,
            },
            now,
        );
        let view = |role: &str, quarantined: bool, next_due: OffsetDateTime| RecheckView {
            role: role.to_owned(),
            quarantined,
            next_recheck_secs: (next_due - now).whole_seconds().unsigned_abs(),
            allowed_ips: allowed_ips(&active, role),
            dns: resolvers(&active, role),
            dns_domains: resolver_domains(&active, role),
        };
        match verdict {
            None => Err(unknown_session()),
            Some(Verdict::Continue { next_due }) => Ok(view(&device.record.role, false, next_due)),
            Some(Verdict::Quarantine { role, next_due } | Verdict::Restore { role, next_due }) => {
                let quarantined = role != device.record.role;
                if let Err(e) = dp.update_peer(&req.session, &role) {
                    tracing::error!(error = %e, "could not change a session's role");
                }
                self.journal_or_log(&Event::SessionRoleChanged {
                    session: req.session.clone(),
                    device: device.record.id.clone(),
                    role: role.clone(),
                    reason: if quarantined {
                        "posture-recheck-failed"
                    } else {
                        "posture-compliant-again"
                    }
                    .into(),
                });
                Ok(view(&role, quarantined, next_due))
            }
            Some(Verdict::End(s, reason)) => {
                protocol::finish(self, (*s, reason));
                if factor == Factor::Failed {
                    // The session ended for its second factor: that is what to fix.
                    failures.retain(|f| f.id.starts_with("second-factor"));
                }
                Err(ApiError::refused(failures))
            }
        }
    }

    /// The employee ends the session (G9).
    pub fn disconnect(
        &self,
        device: &AuthenticatedDevice,
        req: &EndRequest,
    ) -> Result<(), ApiError> {
        self.owned(device, &req.session)?;
        let ended = self
            .lock()
            .sessions
            .end(&req.session, EndReason::Disconnected)
            .ok_or_else(unknown_session)?;
        protocol::finish(self, ended);
        Ok(())
    }

    /// Whether the device's session `id` is still live; if not, why it ended (when the
    /// gateway still remembers). Answers at once; [`SessionService::watch`] waits.
    pub fn session_state(&self, device: &AuthenticatedDevice, id: &str) -> WatchView {
        let st = self.lock();
        if st
            .sessions
            .get(id)
            .is_some_and(|s| s.device == device.record.id)
        {
            return WatchView {
                live: true,
                reason: None,
            };
        }
        let reason = st
            .recently_ended
            .iter()
            .rev()
            .find(|(s, _)| s == id)
            .map(|(_, r)| r.clone());
        WatchView {
            live: false,
            reason,
        }
    }

    /// Waits until the device's session `id` is no longer live, or `limit` passes;
    /// answers its state then. This is how a connected agent learns at once that the
    /// gateway ended its session.
    pub async fn watch(
        self: Arc<Self>,
        device: Arc<AuthenticatedDevice>,
        id: String,
        limit: std::time::Duration,
    ) -> Result<WatchView, ApiError> {
        let _slot = WatchSlot::take(&self, &device.record.id).ok_or_else(|| {
            ApiError::new(
                Reason::RateLimited,
                format!("at most {MAX_WATCHES_PER_DEVICE} watches of one device at once"),
            )
        })?;
        Ok(self.wait_until_ended(&device, &id, limit).await)
    }

    async fn wait_until_ended(
        &self,
        device: &AuthenticatedDevice,
        id: &str,
        limit: std::time::Duration,
    ) -> WatchView {
        let mut changes = self.ended.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self.session_state(device, id);
            if !view.live && view.reason.is_none() {
                // Taken out of the table but its end not recorded yet (the peer being
                // removed, the end journaled): the record, with its reason, is notified
                // within moments. A session the gateway does not know at all is said so
                // after that short wait.
                let until = tokio::time::Instant::now() + END_RECORD_WAIT;
                loop {
                    let late = tokio::time::timeout_at(until, changes.changed()).await;
                    let view = self.session_state(device, id);
                    if view.reason.is_some() || view.live || !matches!(late, Ok(Ok(()))) {
                        return view;
                    }
                }
            }
            if !view.live {
                return view;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return self.session_state(device, id),
            }
        }
    }

    /// An operator ends a session (`ztgw session end`).
    pub fn end_by_operator(&self, id: &str, reason: &str) -> Option<Session> {
        let ended = self
            .lock()
            .sessions
            .end(id, EndReason::Operator(reason.to_owned()))?;
        let s = ended.0.clone();
        protocol::finish(self, ended);
        Some(s)
    }

    /// Applies a change of access made by an admin action (revocation, incident, policy
    /// load): the sessions it no longer allows end now, before the action answers.
    pub fn apply(&self, change: &AccessChange) {
        match change {
            AccessChange::Revoked(who, reason) => {
                let ended = self.lock().sessions.revoke(who, reason);
                protocol::finish_all(self, ended);
                self.reconcile();
            }
            AccessChange::PolicyLoaded(active) => self.on_policy(active),
        }
    }

    /// [`SessionService::apply`] for each.
    pub fn apply_all(&self, changes: &[AccessChange]) {
        for c in changes {
            self.apply(c);
        }
    }

    pub fn list(&self) -> Vec<Session> {
        self.lock().sessions.list()
    }

    pub fn count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Admissions granted and refused since start.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Peers and sessions reconciliation had to remove since start (never expected).
    pub fn orphans_removed(&self) -> u64 {
        self.orphans.load(Ordering::Relaxed)
    }

    pub fn dataplane_counters(&self) -> Option<ztgw_dataplane::counters::Snapshot> {
        self.dataplane.as_ref().map(DataPlane::counters)
    }

    pub fn peer_count(&self) -> usize {
        self.dataplane.as_ref().map_or(0, DataPlane::peer_count)
    }

    /// The safety net: removes peers that no session owns, and ends live sessions whose
    /// device or employee is no longer in service at two passes in a row (a revocation
    /// recorded in the registry but still being applied is not an orphan); each is
    /// journaled as `session.orphan_removed` and counted. Returns how many it found.
    pub fn reconcile(&self) -> usize {
        let mut found = 0;
        if let Some(dp) = &self.dataplane {
            let peers = dp.peer_sessions();
            let orphans = self
                .lock()
                .sessions
                .unowned(peers.iter().map(String::as_str));
            for id in orphans {
                // Looked at again under the lock: a pending admission may have just
                // installed it.
                if !self.lock().sessions.unowned([id.as_str()]).is_empty()
                    && dp.remove_peer(&id).is_some()
                {
                    found += 1;
                    tracing::error!(session = %id, "reconciliation removed a peer no session owned");
                    self.journal_or_log(&Event::SessionOrphanRemoved {
                        session: id,
                        device: None,
                        reason: "no-session".into(),
                    });
                }
            }
        }
        let live = self.list();
        let mut out_of_service = HashMap::new();
        let mut suspects = HashSet::new();
        {
            let before = self.suspects.lock().unwrap_or_else(PoisonError::into_inner);
            for s in &live {
                match self.out_of_service(s) {
                    Ok(Some(reason)) => {
                        if before.contains(&s.id) {
                            out_of_service.insert(s.id.clone(), reason);
                        } else {
                            suspects.insert(s.id.clone());
                        }
                    }
                    Ok(None) => {}
                    // The registry cannot be read: a live session keeps its tunnel (its
                    // next re-check, which needs the registry, decides), and nothing
                    // was found out of service.
                    Err(_) => {}
                }
            }
        }
        *self.suspects.lock().unwrap_or_else(PoisonError::into_inner) = suspects;
        if !out_of_service.is_empty() {
            let ended = self.lock().sessions.end_where(|s| {
                out_of_service
                    .get(&s.id)
                    .map(|r| EndReason::Orphan(r.as_string()))
            });
            for (s, reason) in ended {
                found += 1;
                tracing::error!(session = %s.id, "reconciliation ended a session out of service");
                self.journal_or_log(&Event::SessionOrphanRemoved {
                    session: s.id.clone(),
                    device: Some(s.device.clone()),
                    reason: reason.as_string(),
                });
                protocol::finish(self, (s, reason));
            }
        }
        self.orphans.fetch_add(found as u64, Ordering::Relaxed);
        found
    }

    /// What the registry says now of the live sessions, applied: a session another
    /// gateway's admission of its device replaced ends (`replaced`), and so does one
    /// whose device or employee is out of service or whose device changed role (a change
    /// made on another gateway), with the reason the change gives. Called when the
    /// registry announces a change and every few seconds (see `crate::cluster`). How
    /// many it ended.
    pub fn enforce_registry(&self) -> Result<usize, crate::registry::RegistryError> {
        let live = self.list();
        if live.is_empty() {
            return Ok(0);
        }
        let held: HashMap<ztgw_pki::DeviceId, String> = self
            .ctx
            .registry
            .live_sessions()?
            .into_iter()
            .map(|h| (h.device, h.session))
            .collect();
        let mut ends = HashMap::new();
        for s in &live {
            let reason = match held.get(&s.device) {
                Some(other) if other != &s.id => Some(EndReason::Replaced),
                _ => self.out_of_service(s)?,
            };
            if let Some(r) = reason {
                ends.insert(s.id.clone(), r);
            }
        }
        let ended = self.lock().sessions.end_where(|s| ends.remove(&s.id));
        let n = ended.len();
        for (s, reason) in &ended {
            tracing::info!(session = %s.id, reason = %reason.as_string(), "the registry ended a session");
        }
        protocol::finish_all(self, ended);
        Ok(n)
    }

    /// Why the registry no longer allows `s`, if it does not.
    fn out_of_service(
        &self,
        s: &Session,
    ) -> Result<Option<EndReason>, crate::registry::RegistryError> {
        let Some(device) = self.ctx.registry.device(&s.device)? else {
            return Ok(Some(EndReason::DeviceRevoked));
        };
        if device.status != DeviceStatus::Active {
            return Ok(Some(EndReason::DeviceRevoked));
        }
        match self.ctx.registry.employee(&s.employee)? {
            None => return Ok(Some(EndReason::EmployeeRevoked)),
            Some(e) => {
                if let Some(r) = e.revoked {
                    return Ok(Some(if r.reason == "incident" {
                        EndReason::Incident
                    } else {
                        EndReason::EmployeeRevoked
                    }));
                }
            }
        }
        Ok((device.role != s.admitted_role).then_some(EndReason::RoleChanged(device.role)))
    }

    /// `s` as the registry records it.
    fn live_record(&self, s: &Session) -> crate::registry::LiveSession {
        crate::registry::LiveSession {
            session: s.id.clone(),
            device: s.device.clone(),
            employee: s.employee.clone(),
            gateway: self.ctx.gateway_name().to_owned(),
            role: s.role.clone(),
            tunnel_address: s.tunnel_addr.to_string(),
            started: s.started,
            ends_at: s.ends_at,
        }
    }

    /// A new policy: the data plane enforces it from now on; sessions whose role or
    /// schedule no longer allows them end, the others end when the new window does.
    fn on_policy(&self, active: &Arc<ActivePolicy>) {
        if let Some(dp) = &self.dataplane {
            dp.set_policy(Arc::new(active.compiled.clone()));
        }
        let now = self.ctx.clock.now();
        let ended = self.lock().sessions.policy_loaded(&active.policy, now);
        protocol::finish_all(self, ended);
    }

    /// Ends what is due now, notes traffic, journals flow accounting now and then.
    /// Returns the next instant something is due.
    pub fn tick(&self) -> Option<OffsetDateTime> {
        let now = self.ctx.clock.now();
        let due = self.lock().sessions.due(now);
        protocol::finish_all(self, due);
        if let Some(dp) = &self.dataplane {
            let live = self.list();
            let forwarded: Vec<(String, u64)> = live
                .iter()
                .filter_map(|s| dp.peer(&s.id).map(|i| (s.id.clone(), i.forwarded)))
                .collect();
            let mut st = self.lock();
            for (id, n) in forwarded {
                let seen = st.rx_seen.entry(id.clone()).or_insert(0);
                if n > *seen {
                    *seen = n;
                    st.sessions.activity(&id, now);
                }
            }
            let flows_due = now - st.flows_journaled >= FLOWS_EVERY;
            if flows_due {
                st.flows_journaled = now;
            }
            drop(st);
            if flows_due {
                for report in dp.reports() {
                    let device = live
                        .iter()
                        .find(|s| s.id == report.session)
                        .map(|s| s.device.clone());
                    if !report.is_empty() {
                        self.journal_or_log(&flows_event(report, device));
                    }
                }
            }
        }
        self.lock().sessions.next_deadline()
    }

    /// Ends every session (the gateway is stopping).
    /// Remembers sessions that ended before this run (a restart), with why, so that
    /// their agents asking about them hear it.
    pub fn remember_ended(&self, ended: impl IntoIterator<Item = (String, String)>) {
        let mut st = self.lock();
        for (id, reason) in ended {
            if st.recently_ended.len() >= RECENTLY_ENDED {
                st.recently_ended.pop_front();
            }
            st.recently_ended.push_back((id, reason));
        }
    }

    pub fn shutdown(&self) {
        let all = self
            .lock()
            .sessions
            .end_where(|_| Some(EndReason::Shutdown));
        protocol::finish_all(self, all);
    }

    fn journal_or_log(&self, e: &Event) {
        if let Err(err) = self.ctx.journal(e) {
            tracing::error!(error = %err, event = e.kind(), "THE AUDIT JOURNAL CANNOT BE WRITTEN: an event was not journaled");
        }
    }

    /// Refuses an admission: journaled with every reason, answered with every check.
    fn refuse(
        &self,
        device: &AuthenticatedDevice,
        evaluation: Option<&Evaluation>,
        failures: Vec<Failure>,
    ) -> ApiError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let record = &device.record;
        let mut events: Vec<Event> = evaluation
            .map(|e| Event::PostureChecked {
                device: record.id.clone(),
                employee: record.employee.clone(),
                compliant: e.compliant,
                failed: e.failed(),
            })
            .into_iter()
            .collect();
        events.push(Event::AdmissionDenied {
            device: record.id.clone(),
            employee: record.employee.clone(),
            reasons: failures.iter().map(|f| f.id.clone()).collect(),
        });
        if let Err(err) = self.ctx.journal_all(&events) {
            tracing::error!(error = %err, "THE AUDIT JOURNAL CANNOT BE WRITTEN: a refused admission was not journaled");
        }
        ApiError::refused(failures)
    }

    /// Checks a second-factor code within the device's failure bounds and records the
    /// outcome: a right code's step is used up and the failures cleared; a wrong one is
    /// counted, and the failure that locks the device is journaled and notified. A
    /// device that must wait, or is locked, is refused without its code being looked at.
    /// Whatever was wrong, the caller gets the same failure.
    fn second_factor(
        &self,
        device: &AuthenticatedDevice,
        code: Option<&RedactedString>,
        now: OffsetDateTime,
    ) -> Result<Result<(), Failure>, ApiError> {
        use crate::session::factor::{self, Attempts, Gate};
        let id = &device.record.id;
        let _one_at_a_time = self.factor_checks.lock().unwrap_or_else(|e| e.into_inner());
        let attempts = self.ctx.registry.factor_attempts(id)?;
        if factor::gate(&attempts, now) != Gate::Open {
            return Ok(Err(admission::second_factor_failed()));
        }
        let secret = self.ctx.registry.totp(id)?;
        let checked = admission::check_code(
            code.map(RedactedString::expose),
            secret.as_ref().map(|(s, last)| (s.as_slice(), *last)),
            now,
        );
        match checked {
            Ok(step) if self.ctx.registry.use_totp_step(id, step)? => {
                if attempts != Attempts::default() {
                    self.ctx
                        .registry
                        .set_factor_attempts(id, &Attempts::default())?;
                }
                return Ok(Ok(()));
            }
            // A right code used twice (two requests racing), or none given: not a guess.
            Ok(_) | Err(admission::CodeError::Missing) => {}
            Err(_) => {
                let bounds = factor::Bounds {
                    failures: self.ctx.settings.control.second_factor_failures,
                    lockout: admission::std_to_time(
                        self.ctx.settings.control.second_factor_lockout.get(),
                    ),
                };
                let (next, locked) = factor::failed(&attempts, &bounds, now);
                self.ctx.registry.set_factor_attempts(id, &next)?;
                if locked {
                    let event = Event::SecondFactorLocked {
                        device: id.clone(),
                        employee: device.record.employee.clone(),
                        failures: next.failures,
                        until: rfc3339(next.locked_until.unwrap_or(now)),
                    };
                    let seq = match self.ctx.journal(&event) {
                        Ok(seq) => Some(seq),
                        Err(e) => {
                            tracing::error!(error = %e, device = %id, "THE AUDIT JOURNAL CANNOT BE WRITTEN: a second-factor lockout was not journaled");
                            None
                        }
                    };
                    tracing::warn!(device = %id, failures = next.failures, "second factor locked after repeated wrong codes");
                    crate::admin::incident::notify_security_unit(&self.ctx, &event, seq);
                }
            }
        }
        Ok(Err(admission::second_factor_failed()))
    }

    /// Reads and evaluates a posture report; a failure of its own when it cannot be read
    /// or its nonce is not a fresh one of this device's.
    fn posture(
        &self,
        device: &AuthenticatedDevice,
        active: &ActivePolicy,
        text: &str,
        now: OffsetDateTime,
    ) -> (Option<Evaluation>, Option<Failure>) {
        let report = match PostureReport::parse(text.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                return (
                    None,
                    Some(admission::posture_unreadable(Some(&e.to_string()))),
                );
            }
        };
        if self
            .lock()
            .nonces
            .consume(&device.record.id, &report.nonce, now)
            .is_err()
        {
            return (None, Some(admission::posture_replayed()));
        }
        let profile = active
            .policy
            .roles
            .get(&device.record.role)
            .and_then(|r| active.policy.posture.get(&r.posture));
        let evaluation = profile.map(|p| {
            evaluate(
                &report,
                p,
                to_jiff(now),
                Freshness::Require {
                    nonce: &report.nonce,
                },
            )
        });
        (evaluation, None)
    }

    fn owned(&self, device: &AuthenticatedDevice, session: &str) -> Result<(), ApiError> {
        match self.lock().sessions.get(session) {
            Some(s) if s.device == device.record.id => Ok(()),
            _ => Err(unknown_session()),
        }
    }
}

/// One of a device's watch places, given back when dropped.
struct WatchSlot<'a> {
    svc: &'a SessionService,
    device: ztgw_pki::DeviceId,
}

impl<'a> WatchSlot<'a> {
    fn take(svc: &'a SessionService, device: &ztgw_pki::DeviceId) -> Option<Self> {
        let mut w = svc.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let n = w.entry(device.clone()).or_default();
        if *n >= MAX_WATCHES_PER_DEVICE {
            return None;
        }
        *n += 1;
        Some(Self {
            svc,
            device: device.clone(),
        })
    }
}

impl Drop for WatchSlot<'_> {
    fn drop(&mut self) {
        let mut w = self
            .svc
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = w.get_mut(&self.device) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.device);
            }
        }
    }
}

impl Effects for SessionService {
    type Peer = PeerKeys;
    type Removed = (Option<PeerInfo>, Option<Report>);

    fn table<R>(&self, f: impl FnOnce(&mut Sessions) -> R) -> R {
        f(&mut self.lock().sessions)
    }

    fn record_start(&self, s: &Session) -> Result<(), String> {
        self.ctx
            .journal_all(&[
                Event::PostureChecked {
                    device: s.device.clone(),
                    employee: s.employee.clone(),
                    compliant: true,
                    failed: Vec::new(),
                },
                Event::AdmissionGranted {
                    session: s.id.clone(),
                    device: s.device.clone(),
                    employee: s.employee.clone(),
                    role: s.role.clone(),
                },
                Event::SessionStarted {
                    session: s.id.clone(),
                    device: s.device.clone(),
                    employee: s.employee.clone(),
                    role: s.role.clone(),
                    schedule: s.schedule.clone(),
                },
            ])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn install(&self, s: &Session, keys: &PeerKeys) -> Result<(), String> {
        let dp = self
            .dataplane
            .as_ref()
            .ok_or("this gateway runs without a data plane")?;
        dp.add_peer(&PeerSpec {
            session: s.id.clone(),
            public_key: keys.public_key,
            preshared_key: keys.preshared_key.clone(),
            tunnel_addr: s.tunnel_addr,
            tunnel_addr6: s.tunnel_addr6,
            role: s.role.clone(),
            keepalive: None,
        })
        .map_err(|e| {
            tracing::error!(error = %e, "the data plane refused a session's peer");
            e.to_string()
        })
    }

    fn uninstall(&self, id: &str) -> Option<Self::Removed> {
        let dp = self.dataplane.as_ref()?;
        let info = dp.peer(id);
        let report = dp.remove_peer(id);
        Some((info, report))
    }

    fn record_end(&self, s: &Session, reason: &EndReason, removed: Option<Self::Removed>) {
        let (info, report) = removed.unwrap_or((None, None));
        {
            let mut st = self.lock();
            st.rx_seen.remove(&s.id);
            if st.recently_ended.len() >= RECENTLY_ENDED {
                st.recently_ended.pop_front();
            }
            st.recently_ended
                .push_back((s.id.clone(), reason.as_string()));
        }
        if let Err(e) = self.ctx.registry.release_session(&s.id) {
            // Released at the next start or reconciliation; the session is over here.
            tracing::warn!(session = %s.id, error = %e, "could not remove an ended session from the registry");
        }
        let now = self.ctx.clock.now();
        let mut events: Vec<Event> = report
            .filter(|r| !r.is_empty())
            .map(|r| flows_event(r, Some(s.device.clone())))
            .into_iter()
            .collect();
        events.push(Event::SessionEnded {
            session: s.id.clone(),
            device: s.device.clone(),
            employee: s.employee.clone(),
            reason: reason.as_string(),
            duration_secs: (now - s.started).whole_seconds().unsigned_abs(),
            bytes_in: info.as_ref().map_or(0, |i| i.rx_bytes),
            bytes_out: info.as_ref().map_or(0, |i| i.tx_bytes),
        });
        if let Err(err) = self.ctx.journal_all(&events) {
            tracing::error!(error = %err, "THE AUDIT JOURNAL CANNOT BE WRITTEN: a session's end was not journaled");
        }
        self.ended.send_modify(|n| *n = n.wrapping_add(1));
        tracing::info!(reason = %reason.as_string(), "session ended");
    }

    fn standing(&self, s: &Session) -> Option<EndReason> {
        let device = self.ctx.registry.device(&s.device);
        let employee = self.ctx.registry.employee(&s.employee);
        let out = match (device, employee) {
            (Ok(Some(d)), _) if d.status != DeviceStatus::Active => Some(EndReason::DeviceRevoked),
            (Ok(None), _) => Some(EndReason::DeviceRevoked),
            (_, Ok(Some(e))) if e.revoked.is_some() => Some(EndReason::EmployeeRevoked),
            (_, Ok(None)) => Some(EndReason::EmployeeRevoked),
            (Ok(Some(_)), Ok(Some(_))) => None,
            // The registry cannot say: fail closed.
            (Err(e), _) | (_, Err(e)) => Some(EndReason::SetupFailed(format!("registry: {e}"))),
        };
        if out.is_some() {
            return out;
        }
        // In service: the session becomes the device's one, on every gateway of the
        // registry. Without the registry nothing is granted.
        match self.ctx.registry.claim_session(&self.live_record(s)) {
            Ok(Some(replaced)) if replaced.gateway != self.ctx.gateway_name() => {
                tracing::info!(session = %s.id, replaced = %replaced.session, gateway = %replaced.gateway, "the device's session on another gateway is replaced");
                None
            }
            Ok(_) => None,
            Err(e) => Some(EndReason::SetupFailed(format!("registry: {e}"))),
        }
    }
}

/// What admission needs of a device's registry record.
fn applicant(device: &AuthenticatedDevice) -> Applicant<'_> {
    let r = &device.record;
    Applicant {
        status: r.status,
        employee: &r.employee,
        role: &r.role,
        schedule: r.schedule.as_deref(),
        wg_key: &r.wg_key,
    }
}

fn flows_event(r: Report, device: Option<ztgw_pki::DeviceId>) -> Event {
    Event::SessionFlows {
        session: r.session,
        device,
        flows: r.flows,
        merged: r.merged,
        denials: r.denials,
        denials_merged: r.denials_merged,
    }
}

fn unknown_session() -> ApiError {
    ApiError::new(
        Reason::SessionUnknown,
        "no such session for this device (it may have ended)",
    )
}

/// The networks of a role's resources, as the client's AllowedIPs.
/// The role's internal resolvers (none when the role has no `[dns]`).
fn resolvers(active: &ActivePolicy, role: &str) -> Vec<String> {
    active
        .policy
        .dns_for(role)
        .map(|d| d.servers.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// The domains the role's internal resolvers answer for.
fn resolver_domains(active: &ActivePolicy, role: &str) -> Vec<String> {
    active
        .policy
        .dns_for(role)
        .map(|d| d.domains.clone())
        .unwrap_or_default()
}

fn allowed_ips(active: &ActivePolicy, role: &str) -> Vec<String> {
    let mut out: Vec<String> = active
        .policy
        .roles
        .get(role)
        .into_iter()
        .flat_map(|r| r.resources.iter())
        .filter_map(|name| active.policy.resources.get(name))
        .flat_map(|r| r.hosts.iter().map(|h| h.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
