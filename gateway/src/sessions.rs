//! The session layer's shell: admission, re-checks and the end of sessions, wired to the
//! registry, the journal and the data plane. Decisions are made in [`crate::session`].
//!
//! Order of effects: a session is journaled before its peer is installed; a session's
//! peer is removed before its end is journaled (taking access away never waits on the
//! journal). Every end of a session is journaled with its reason, its duration and its
//! traffic, and its flows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use base64::Engine as _;
use time::OffsetDateTime;
use ztgw_pki::identity::WgPublicKey;
use ztgw_pki::wire::{
    AdmissionRequest, DeviceStatus, EndRequest, NonceView, RecheckRequest, RecheckView,
    RedactedString, SessionGrant,
};
use ztgw_posture::evaluate::{Evaluation, Freshness, evaluate};
use ztgw_posture::report::PostureReport;

use crate::active_policy::ActivePolicy;
use crate::api_error::{ApiError, Reason};
use crate::clock::random;
use crate::context::Context;
use crate::dataplane::peers::{PeerSpec, PresharedKey};
use crate::dataplane::shell::DataPlane;
use crate::device_auth::AuthenticatedDevice;
use crate::journal::Event;
use crate::session::admission::{self, Facts, Failure, to_jiff};
use crate::session::lifecycle::{EndReason, MAX_SESSIONS, Session, Sessions, Verdict};
use crate::session::nonce::{NONCE_LIFETIME, Nonces};
use crate::session::pool::Pool;

/// Keepalive the client is told to send (through NAT).
const KEEPALIVE_SECS: u16 = 25;
/// How often flow accounting is journaled for live sessions.
const FLOWS_EVERY: time::Duration = time::Duration::minutes(1);

/// The session layer of a running gateway.
pub struct SessionService {
    ctx: Arc<Context>,
    dataplane: Option<DataPlane>,
    state: Mutex<State>,
    granted: AtomicU64,
    refused: AtomicU64,
}

struct State {
    sessions: Sessions,
    nonces: Nonces,
    /// Packets forwarded per session at the last look (traffic means activity).
    rx_seen: HashMap<String, u64>,
    flows_journaled: OffsetDateTime,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("dataplane", &self.dataplane)
            .finish_non_exhaustive()
    }
}

impl SessionService {
    /// A session layer over `dataplane` (none: every admission is refused as
    /// unavailable). Registers itself to hear of revocations and policy reloads.
    pub fn new(ctx: Arc<Context>, dataplane: Option<DataPlane>) -> Arc<Self> {
        let pool = ztgw_config::policy::Network::parse(&ctx.settings.wireguard.tunnel_network)
            .map(Pool::new)
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
        let svc = Arc::new(Self {
            state: Mutex::new(State {
                sessions: Sessions::new(pool, max),
                nonces: Nonces::default(),
                rx_seen: HashMap::new(),
                flows_journaled: ctx.clock.now(),
            }),
            ctx: ctx.clone(),
            dataplane,
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let weak: Weak<Self> = Arc::downgrade(&svc);
        ctx.on_crl_published({
            let weak = weak.clone();
            move |_| {
                if let Some(s) = weak.upgrade() {
                    s.revalidate();
                }
            }
        });
        ctx.on_policy_loaded(move |active| {
            if let Some(s) = weak.upgrade() {
                s.on_policy(active);
            }
        });
        svc
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
        self.lock()
            .nonces
            .issue(&device.record.id, nonce.clone(), self.ctx.clock.now())
            .map_err(|_| {
                ApiError::new(Reason::SessionsUnavailable, "too many nonces outstanding")
            })?;
        let active = self.ctx.policy.current();
        let role = active.policy.roles.get(&device.record.role);
        let profile = role
            .and_then(|r| active.policy.posture.get(&r.posture))
            .and_then(|p| serde_json::to_value(p).ok());
        let now = self.ctx.clock.now();
        // A code is wanted at admission, and then when the session's time for it comes
        // (asked from a nonce's lifetime early, so that a re-check made with this nonce
        // never finds it due without a code).
        let second_factor = role.is_some_and(|r| r.second_factor.is_some())
            && self
                .lock()
                .sessions
                .of_device(&device.record.id)
                .is_none_or(|s| {
                    s.second_factor_due
                        .is_some_and(|due| due <= now + NONCE_LIFETIME)
                });
        Ok(NonceView {
            nonce,
            valid_secs: NONCE_LIFETIME.whole_seconds().unsigned_abs(),
            profile,
            second_factor,
        })
    }

    /// Admission: every check, then a session, journaled, then its peer.
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
        let employee_active = self
            .ctx
            .registry
            .employee(&record.employee)?
            .is_some_and(|e| e.revoked.is_none());
        let (evaluation, early) = self.posture(device, &active, &req.posture, now);
        let facts = Facts {
            device: record,
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
        let mut extra: Vec<Failure> = early.into_iter().collect();
        let factor = match active.policy.roles.get(&record.role) {
            Some(r) if r.second_factor.is_some() => {
                let secret = self.ctx.registry.totp(&record.id)?;
                match admission::second_factor(
                    req.second_factor.as_ref().map(RedactedString::expose),
                    secret.as_ref().map(|(s, last)| (s.as_slice(), *last)),
                    now,
                ) {
                    Ok(step) => Some(step),
                    Err(f) => {
                        extra.push(f);
                        None
                    }
                }
            }
            _ => None,
        };
        let terms = match decided {
            Ok(t) if extra.is_empty() => t,
            Ok(_) => return Err(self.refuse(device, evaluation.as_ref(), extra)),
            Err(mut failures) => {
                failures.extend(extra);
                return Err(self.refuse(device, evaluation.as_ref(), failures));
            }
        };
        if let Some(step) = factor
            && !self.ctx.registry.use_totp_step(&record.id, step)?
        {
            let replayed = vec![admission::second_factor_replayed()];
            return Err(self.refuse(device, evaluation.as_ref(), replayed));
        }
        // Checked after the decision, so that a refusal is explained even here.
        let dp = self.dataplane()?;

        let id = format!("s-{}", hex(&random::<12>(self.ctx.entropy.as_ref())?));
        let (session, replaced) = self
            .lock()
            .sessions
            .admit(
                id.clone(),
                record.id.clone(),
                record.employee.clone(),
                &terms,
                now,
            )
            .map_err(|_| {
                ApiError::new(
                    Reason::SessionsUnavailable,
                    "the gateway has no room for another session now; try again later",
                )
            })?;
        if let Some(old) = replaced {
            self.finish(old, &EndReason::Replaced);
        }
        let journaled = self.ctx.journal_all(&[
            Event::PostureChecked {
                device: record.id.to_string(),
                employee: record.employee.to_string(),
                compliant: true,
                failed: Vec::new(),
            },
            Event::AdmissionGranted {
                session: id.clone(),
                device: record.id.to_string(),
                employee: record.employee.to_string(),
                role: terms.role.clone(),
            },
            Event::SessionStarted {
                session: id.clone(),
                device: record.id.to_string(),
                employee: record.employee.to_string(),
                role: terms.role.clone(),
                schedule: terms.schedule.clone(),
            },
        ]);
        if let Err(e) = journaled {
            let mut st = self.lock();
            st.sessions.end(&id);
            st.sessions.release(session.tunnel_addr);
            return Err(e.into());
        }
        let psk = random::<32>(self.ctx.entropy.as_ref())?;
        let spec = PeerSpec {
            session: id.clone(),
            public_key: *wg_key.as_bytes(),
            preshared_key: PresharedKey::new(psk),
            tunnel_addr: session.tunnel_addr,
            role: terms.role.clone(),
            keepalive: None,
        };
        if let Err(e) = dp.add_peer(&spec) {
            tracing::error!(error = %e, "the data plane refused a session's peer");
            self.finish(session, &EndReason::Operator(format!("data plane: {e}")));
            return Err(ApiError::new(
                Reason::Internal,
                "the gateway could not set up the tunnel",
            ));
        }
        self.granted.fetch_add(1, Ordering::Relaxed);
        Ok(SessionGrant {
            session: id,
            role: terms.role.clone(),
            gateway_public_key: base64::engine::general_purpose::STANDARD.encode(dp.public_key()),
            endpoint: self.ctx.settings.wireguard.endpoint.clone(),
            tunnel_address: session.tunnel_addr.to_string(),
            preshared_key: RedactedString::new(
                base64::engine::general_purpose::STANDARD.encode(psk),
            ),
            allowed_ips: allowed_ips(&active, &terms.role),
            dns: Vec::new(),
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
        let compliant = early.is_none() && evaluation.as_ref().is_some_and(|e| e.compliant);
        let mut failures: Vec<Failure> = early.into_iter().collect();
        if let Some(e) = &evaluation {
            failures.extend(
                e.checks
                    .iter()
                    .filter(|c| c.outcome != ztgw_posture::evaluate::Outcome::Pass)
                    .map(|c| Failure {
                        id: c.id.clone(),
                        sentence: c.sentence.clone(),
                        remedy: c.remediation.clone(),
                    }),
            );
        }
        self.journal_or_log(&Event::PostureChecked {
            device: device.record.id.to_string(),
            employee: device.record.employee.to_string(),
            compliant,
            failed: failures.iter().map(|f| f.id.clone()).collect(),
        });
        let factor_required = active
            .policy
            .roles
            .get(&device.record.role)
            .is_some_and(|r| r.second_factor.is_some());
        let factor_given = req.second_factor.is_some() && factor_required;
        if factor_given || self.lock().sessions.second_factor_due(&req.session, now) {
            let secret = self.ctx.registry.totp(&device.record.id)?;
            let checked = admission::second_factor(
                req.second_factor.as_ref().map(RedactedString::expose),
                secret.as_ref().map(|(s, last)| (s.as_slice(), *last)),
                now,
            )
            .and_then(|step| {
                match self.ctx.registry.use_totp_step(&device.record.id, step) {
                    Ok(true) => Ok(()),
                    _ => Err(admission::second_factor_replayed()),
                }
            });
            match checked {
                Ok(()) => self.lock().sessions.second_factor_given(&req.session, now),
                Err(f) => {
                    let ended = self.lock().sessions.end(&req.session);
                    if let Some(s) = ended {
                        self.finish(s, &EndReason::SecondFactor);
                    }
                    return Err(ApiError::refused(vec![f]));
                }
            }
        }
        let quarantine = active
            .policy
            .roles
            .get(&device.record.role)
            .and_then(|r| r.quarantine.clone());
        let verdict =
            self.lock()
                .sessions
                .recheck(&req.session, compliant, quarantine.as_deref(), now);
        let view = |role: &str, quarantined: bool, next_due: OffsetDateTime| RecheckView {
            role: role.to_owned(),
            quarantined,
            next_recheck_secs: (next_due - now).whole_seconds().unsigned_abs(),
            allowed_ips: allowed_ips(&active, role),
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
                    device: device.record.id.to_string(),
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
            Some(Verdict::End(s)) => {
                self.finish(*s, &EndReason::RecheckFailed);
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
        let s = self
            .lock()
            .sessions
            .end(&req.session)
            .ok_or_else(unknown_session)?;
        self.finish(s, &EndReason::Disconnected);
        Ok(())
    }

    /// An operator ends a session (`ztgw session end`).
    pub fn end_by_operator(&self, id: &str, reason: &str) -> Option<Session> {
        let s = self.lock().sessions.end(id)?;
        self.finish(s.clone(), &EndReason::Operator(reason.to_owned()));
        Some(s)
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

    pub fn dataplane_counters(&self) -> Option<crate::dataplane::counters::Snapshot> {
        self.dataplane.as_ref().map(DataPlane::counters)
    }

    pub fn peer_count(&self) -> usize {
        self.dataplane.as_ref().map_or(0, DataPlane::peer_count)
    }

    /// After a revocation: ends, at once, every session whose device or employee is no
    /// longer in service.
    pub fn revalidate(&self) {
        let live = self.list();
        for s in live {
            let device = self.ctx.registry.device(&s.device).ok().flatten();
            let employee = self.ctx.registry.employee(&s.employee).ok().flatten();
            let reason = match device.map(|d| d.status) {
                Some(DeviceStatus::Active) => None,
                Some(DeviceStatus::Decommissioned) | None => Some(EndReason::DeviceRevoked),
                Some(_) => Some(EndReason::DeviceRevoked),
            }
            .or_else(|| match employee {
                Some(e) if e.revoked.is_none() => None,
                _ => Some(EndReason::EmployeeRevoked),
            });
            if let Some(reason) = reason {
                // (The table's lock is released before `finish` takes it again.)
                let ended = self.lock().sessions.end(&s.id);
                if let Some(s) = ended {
                    self.finish(s, &reason);
                }
            }
        }
    }

    /// A new policy: the data plane enforces it from now on; sessions whose role or
    /// schedule no longer allows them end, the others end when the new window does.
    pub fn on_policy(&self, active: &Arc<ActivePolicy>) {
        if let Some(dp) = &self.dataplane {
            dp.set_policy(Arc::new(active.compiled.clone()));
        }
        let now = self.ctx.clock.now();
        for s in self.list() {
            let why = match active.policy.roles.get(&s.admitted_role) {
                None => Some(format!("role {} removed", s.admitted_role)),
                Some(_) if s.schedule == "override" => None,
                Some(_) => match active.policy.schedules.get(&s.schedule) {
                    None => Some(format!("schedule {} removed", s.schedule)),
                    Some(sch) => match sch.window_at(to_jiff(now)) {
                        None => Some(format!("outside the schedule {}", s.schedule)),
                        Some(w) => {
                            self.lock()
                                .sessions
                                .shorten(&s.id, admission::from_jiff(w.end));
                            None
                        }
                    },
                },
            };
            if let Some(why) = why {
                let ended = self.lock().sessions.end(&s.id);
                if let Some(s) = ended {
                    self.finish(s, &EndReason::Policy(why));
                }
            }
        }
    }

    /// Ends what is due now, notes traffic, journals flow accounting now and then.
    /// Returns the next instant something is due.
    pub fn tick(&self) -> Option<OffsetDateTime> {
        let now = self.ctx.clock.now();
        let due = self.lock().sessions.due(now);
        for (s, reason) in due {
            self.finish(s, &reason);
        }
        if let Some(dp) = &self.dataplane {
            let live = self.list();
            let mut st = self.lock();
            for s in &live {
                if let Some(info) = dp.peer(&s.id) {
                    let seen = st.rx_seen.entry(s.id.clone()).or_insert(0);
                    if info.forwarded > *seen {
                        *seen = info.forwarded;
                        st.sessions.activity(&s.id, now);
                    }
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
                        .map(|s| s.device.to_string())
                        .unwrap_or_default();
                    self.journal_flows(report, &device);
                }
            }
        }
        self.lock().sessions.next_deadline()
    }

    /// Ends every session (the gateway is stopping).
    pub fn shutdown(&self) {
        let all = self.lock().sessions.end_where(|_| true);
        for s in all {
            self.finish(s, &EndReason::Shutdown);
        }
    }

    /// Carries out the end of a session already taken out of the table: the peer goes
    /// first, then the journal.
    fn finish(&self, s: Session, reason: &EndReason) {
        let (info, report) = match &self.dataplane {
            Some(dp) => (dp.peer(&s.id), dp.remove_peer(&s.id)),
            None => (None, None),
        };
        {
            let mut st = self.lock();
            st.rx_seen.remove(&s.id);
            // The peer is gone: its address may serve another session.
            st.sessions.release(s.tunnel_addr);
        }
        let now = self.ctx.clock.now();
        let mut events: Vec<Event> = report
            .filter(|r| !r.is_empty())
            .map(|r| flows_event(r, s.device.as_str()))
            .into_iter()
            .collect();
        events.push(Event::SessionEnded {
            session: s.id.clone(),
            device: s.device.to_string(),
            employee: s.employee.to_string(),
            reason: reason.as_string(),
            duration_secs: (now - s.started).whole_seconds().unsigned_abs(),
            bytes_in: info.as_ref().map_or(0, |i| i.rx_bytes),
            bytes_out: info.as_ref().map_or(0, |i| i.tx_bytes),
        });
        if let Err(err) = self.ctx.journal_all(&events) {
            tracing::error!(error = %err, "THE AUDIT JOURNAL CANNOT BE WRITTEN: a session's end was not journaled");
        }
        tracing::info!(reason = %reason.as_string(), "session ended");
    }

    fn journal_flows(&self, r: crate::dataplane::accounting::Report, device: &str) {
        if !r.is_empty() {
            self.journal_or_log(&flows_event(r, device));
        }
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
                device: record.id.to_string(),
                employee: record.employee.to_string(),
                compliant: e.compliant,
                failed: e.failed(),
            })
            .into_iter()
            .collect();
        events.push(Event::AdmissionDenied {
            device: record.id.to_string(),
            employee: record.employee.to_string(),
            reasons: failures.iter().map(|f| f.id.clone()).collect(),
        });
        if let Err(err) = self.ctx.journal_all(&events) {
            tracing::error!(error = %err, "THE AUDIT JOURNAL CANNOT BE WRITTEN: a refused admission was not journaled");
        }
        ApiError::refused(failures)
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
                    Some(Failure {
                        id: "posture-unreadable".into(),
                        sentence: format!("the posture report could not be read: {e}"),
                        remedy: Some("update ztgw-agent".into()),
                    }),
                );
            }
        };
        if self
            .lock()
            .nonces
            .consume(&device.record.id, &report.nonce, now)
            .is_err()
        {
            return (None, Some(Failure {
                id: "posture-replayed".into(),
                sentence: "the posture report is not fresh: its nonce was not given to this device, was already used, or expired".into(),
                remedy: Some("run the connection again; the agent asks for a new nonce".into()),
            }));
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

fn flows_event(r: crate::dataplane::accounting::Report, device: &str) -> Event {
    Event::SessionFlows {
        session: r.session,
        device: device.to_owned(),
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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
