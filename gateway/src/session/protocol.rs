//! The order of effects that keeps the session invariant: the data plane holds a peer
//! only for a pending or live session (of an active device of an active employee, once
//! revocations in flight are applied), every live session has exactly one peer, and a
//! tunnel address is held by one session at a time.
//!
//! The steps are written once, here, generic over [`Effects`]: the gateway's shell
//! (`crate::sessions`) carries them out against the registry, the journal and the data
//! plane, and the simulator (`sim_tests`) against fakes, interleaving the steps of
//! parallel admissions with everything else that can happen.
//!
//! An admission, step by step ([`Admission::step`]):
//! 1. **begin**: a place and a tunnel address are reserved in the table (pending). A
//!    full table, an exhausted pool or another admission of the same device in progress
//!    refuse it here, and nothing else changes: the device's live session stays.
//! 2. **record**: the admission is journaled. If that fails, the reservation is
//!    cancelled: nothing was installed, nothing started.
//! 3. **replace**: the device's live session, if any, ends (its peer removed before its
//!    end is journaled), since the new peer has the same WireGuard key.
//! 4. **install**: the peer goes into the data plane. If that fails, the session ends.
//! 5. **standing**, then **commit**: the device's and employee's status is read again,
//!    *after* the peer is installed; then, in the table, the session goes live only if
//!    it was in service and no revocation or policy load doomed it meanwhile. A revocation applied to the table before this
//!    point dooms the pending session; one applied after finds it live and ends it.
//!    Either way the revocation wins.
//!
//! Ending ([`finish`]): whoever moved the session out of pending or live removes its
//! peer, then releases its address, then journals the end, exactly once.

use time::OffsetDateTime;
use ztgw_pki::identity::{DeviceId, EmployeeId};

use super::admission::Terms;
use super::lifecycle::{Commit, EndReason, Ended, Full, Session, Sessions};

/// What the steps need of the world.
pub trait Effects {
    /// What an admission carries to [`Effects::install`] (the peer's keys).
    type Peer;
    /// What removing a peer hands to the end's record (its traffic).
    type Removed;

    /// Runs `f` on the session table, alone.
    fn table<R>(&self, f: impl FnOnce(&mut Sessions) -> R) -> R;
    /// Journals that `s` was admitted and started. An error: it must not start.
    fn record_start(&self, s: &Session) -> Result<(), String>;
    /// Installs `s`'s peer in the data plane.
    fn install(&self, s: &Session, peer: &Self::Peer) -> Result<(), String>;
    /// Removes session `id`'s peer, if it is installed.
    fn uninstall(&self, id: &str) -> Option<Self::Removed>;
    /// Journals the end of `s` (a failure is logged; taking access away never waits).
    fn record_end(&self, s: &Session, reason: &EndReason, removed: Option<Self::Removed>);
    /// Whether `s`'s device and employee are in service, read now: `None` if they are,
    /// else why the session must end.
    fn standing(&self, s: &Session) -> Option<EndReason>;
}

/// Carries out the end of a session already moved to draining.
pub fn finish<E: Effects>(fx: &E, (s, reason): Ended) {
    let removed = fx.uninstall(&s.id);
    fx.table(|t| t.release(&s.id));
    fx.record_end(&s, &reason, removed);
}

/// [`finish`] for each.
pub fn finish_all<E: Effects>(fx: &E, ended: Vec<Ended>) {
    for e in ended {
        finish(fx, e);
    }
}

/// Why an admission ended without a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Refused at the start; nothing changed.
    Full(Full),
    /// The admission could not be journaled; nothing was installed.
    Journal(String),
    /// The peer could not be installed; the session ended.
    Install(String),
    /// A revocation or policy load won; the session ended.
    Ended(EndReason),
}

#[derive(Debug)]
enum Stage {
    Begin {
        device: DeviceId,
        employee: EmployeeId,
        terms: Box<Terms>,
        now: OffsetDateTime,
    },
    Record,
    Replace,
    Install,
    Standing,
    Commit(Option<EndReason>),
    Done,
}

/// One admission in progress, stepped through [`Admission::step`].
#[derive(Debug)]
pub struct Admission<P> {
    id: String,
    stage: Stage,
    session: Option<Session>,
    peer: P,
}

impl<P> Admission<P> {
    pub fn new(
        id: String,
        device: DeviceId,
        employee: EmployeeId,
        terms: Terms,
        now: OffsetDateTime,
        peer: P,
    ) -> Self {
        Self {
            id,
            stage: Stage::Begin {
                device,
                employee,
                terms: Box::new(terms),
                now,
            },
            session: None,
            peer,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs every step.
    pub fn run<E: Effects<Peer = P>>(mut self, fx: &E) -> Result<Session, Refused> {
        loop {
            if let Some(done) = self.step(fx) {
                return done;
            }
        }
    }

    /// Runs the next step; `Some` once the admission is over.
    pub fn step<E: Effects<Peer = P>>(&mut self, fx: &E) -> Option<Result<Session, Refused>> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let (next, outcome) = match (stage, self.session.clone()) {
            (
                Stage::Begin {
                    device,
                    employee,
                    terms,
                    now,
                },
                _,
            ) => match fx.table(|t| t.begin(self.id.clone(), device, employee, &terms, now)) {
                Ok(s) => {
                    self.session = Some(s);
                    (Stage::Record, None)
                }
                Err(full) => (Stage::Done, Some(Err(Refused::Full(full)))),
            },
            (Stage::Record, Some(s)) => match fx.record_start(&s) {
                Ok(()) => (Stage::Replace, None),
                Err(e) => {
                    fx.table(|t| t.cancel(&self.id));
                    (Stage::Done, Some(Err(Refused::Journal(e))))
                }
            },
            (Stage::Replace, Some(_)) => {
                if let Some(old) = fx.table(|t| t.take_replaced(&self.id)) {
                    finish(fx, old);
                }
                (Stage::Install, None)
            }
            (Stage::Install, Some(s)) => match fx.install(&s, &self.peer) {
                Ok(()) => (Stage::Standing, None),
                Err(e) => {
                    let reason = EndReason::SetupFailed(e.clone());
                    if let Some(ended) = fx.table(|t| t.abort(&self.id, reason)) {
                        finish(fx, ended);
                    }
                    (Stage::Done, Some(Err(Refused::Install(e))))
                }
            },
            // Read outside the table: a revocation may be applied between the two.
            (Stage::Standing, Some(s)) => (Stage::Commit(fx.standing(&s)), None),
            (Stage::Commit(standing), Some(_)) => {
                match fx.table(|t| t.commit(&self.id, standing)) {
                    Commit::Live(s) => (Stage::Done, Some(Ok(*s))),
                    Commit::End(s, reason) => {
                        finish(fx, (*s, reason.clone()));
                        (Stage::Done, Some(Err(Refused::Ended(reason))))
                    }
                    Commit::Unknown => (
                        Stage::Done,
                        Some(Err(Refused::Ended(EndReason::SetupFailed(
                            "the pending session was lost".into(),
                        )))),
                    ),
                }
            }
            (Stage::Done, _) | (_, None) => (
                Stage::Done,
                Some(Err(Refused::Ended(EndReason::SetupFailed(
                    "the admission was already over".into(),
                )))),
            ),
        };
        self.stage = next;
        outcome
    }
}
