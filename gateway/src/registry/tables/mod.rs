//! The registry's tables, written once for every database ([`Db`]): one module per table
//! with its row codec. Every change is one transaction with its action record.

mod actions;
mod auditors;
mod certificates;
mod devices;
mod employees;
mod gateways;
mod invitations;
mod live_sessions;
mod operators;
mod overrides;
mod policies;
mod second_factor;

use ztgw_pki::{
    AuditorName, CrlReason, DeviceId, EmployeeId, InvitationId, RevokedEntry, SerialNumber,
};

use super::sql::{Db, Param, Row, Sql};
use super::values::from_ts;
use super::{
    ActionRecord, AuditorRecord, CertificateRecord, DeviceRecord, EmployeeRecord, EndOfService,
    Enrolment, GatewayRecord, InvitationRecord, LiveSession, OperatorRecord, OverrideRecord,
    Registry, RegistryError, StatusChange, StoredPolicy,
};
use crate::session::factor::Attempts;

impl<D: Db> Registry for D {
    fn create_invitation(
        &self,
        inv: &InvitationRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        invitations::create(self, inv, action)
    }
    fn invitation(&self, id: &InvitationId) -> Result<Option<InvitationRecord>, RegistryError> {
        invitations::one(self, id)
    }
    fn invitations(&self) -> Result<Vec<InvitationRecord>, RegistryError> {
        invitations::all(self)
    }
    fn complete_enrolment(
        &self,
        e: &Enrolment,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::enrol(self, e, action)
    }
    fn employee(&self, id: &EmployeeId) -> Result<Option<EmployeeRecord>, RegistryError> {
        employees::one(self, id)
    }
    fn revoke_employee(
        &self,
        id: &EmployeeId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<Vec<DeviceId>, RegistryError> {
        employees::revoke(self, id, change, action)
    }
    fn reinstate_employee(
        &self,
        id: &EmployeeId,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        employees::reinstate(self, id, action)
    }
    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, RegistryError> {
        devices::one(self, id)
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        devices::all(self)
    }
    fn approve_device(
        &self,
        id: &DeviceId,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::approve(self, id, change, action)
    }
    fn set_device_role(
        &self,
        id: &DeviceId,
        role: &str,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::set_role(self, id, role, action)
    }
    fn end_device(
        &self,
        id: &DeviceId,
        how: EndOfService,
        change: &StatusChange,
        reason: CrlReason,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        devices::end(self, id, how, change, reason, action)
    }
    fn add_certificate(
        &self,
        cert: &CertificateRecord,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        certificates::add(self, cert, action)
    }
    fn certificate(
        &self,
        serial: &SerialNumber,
    ) -> Result<Option<CertificateRecord>, RegistryError> {
        certificates::one(self, serial)
    }
    fn certificates_of(&self, device: &DeviceId) -> Result<Vec<CertificateRecord>, RegistryError> {
        certificates::of(self, device)
    }
    fn supersede_certificates(
        &self,
        device: &DeviceId,
        serials: &[SerialNumber],
        at: time::OffsetDateTime,
        action: &ActionRecord,
    ) -> Result<usize, RegistryError> {
        certificates::supersede(self, device, serials, at, action)
    }
    fn revoked_certificates(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<RevokedEntry>, RegistryError> {
        certificates::revoked(self, now)
    }
    fn next_crl_number(&self) -> Result<u64, RegistryError> {
        certificates::next_crl_number(self)
    }
    fn add_auditor(&self, a: &AuditorRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        auditors::add(self, a, action)
    }
    fn auditor(&self, name: &AuditorName) -> Result<Option<AuditorRecord>, RegistryError> {
        auditors::one(self, name)
    }
    fn revoke_auditor(
        &self,
        name: &AuditorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        auditors::revoke(self, name, change, action)
    }
    fn add_operator(&self, o: &OperatorRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        operators::add(self, o, action)
    }
    fn operator(
        &self,
        name: &ztgw_pki::OperatorName,
    ) -> Result<Option<OperatorRecord>, RegistryError> {
        operators::one(self, name)
    }
    fn operators(&self) -> Result<Vec<OperatorRecord>, RegistryError> {
        operators::all(self)
    }
    fn revoke_operator(
        &self,
        name: &ztgw_pki::OperatorName,
        change: &StatusChange,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        operators::revoke(self, name, change, action)
    }
    fn record_action(&self, action: &ActionRecord) -> Result<(), RegistryError> {
        self.write(|sql| actions::insert(sql, action))
    }
    fn totp(&self, device: &DeviceId) -> Result<Option<(Vec<u8>, u64)>, RegistryError> {
        second_factor::secret(self, device)
    }
    fn use_totp_step(&self, device: &DeviceId, step: u64) -> Result<bool, RegistryError> {
        second_factor::use_step(self, device, step)
    }
    fn factor_attempts(&self, device: &DeviceId) -> Result<Attempts, RegistryError> {
        second_factor::attempts(self, device)
    }
    fn set_factor_attempts(
        &self,
        device: &DeviceId,
        attempts: &Attempts,
    ) -> Result<(), RegistryError> {
        second_factor::set_attempts(self, device, attempts)
    }
    fn unlock_factor(&self, device: &DeviceId, action: &ActionRecord) -> Result<(), RegistryError> {
        second_factor::unlock(self, device, action)
    }
    fn actions(&self) -> Result<Vec<ActionRecord>, RegistryError> {
        actions::all(self)
    }
    fn register_gateway(&self, gateway: &GatewayRecord) -> Result<(), RegistryError> {
        gateways::register(self, gateway)
    }
    fn gateways(&self) -> Result<Vec<GatewayRecord>, RegistryError> {
        gateways::all(self)
    }
    fn claim_session(&self, s: &LiveSession) -> Result<Option<LiveSession>, RegistryError> {
        live_sessions::claim(self, s)
    }
    fn release_session(&self, id: &str) -> Result<(), RegistryError> {
        live_sessions::release(self, id)
    }
    fn release_sessions_of(&self, gateway: &str, keep: &[String]) -> Result<usize, RegistryError> {
        live_sessions::release_of(self, gateway, keep)
    }
    fn live_sessions(&self) -> Result<Vec<LiveSession>, RegistryError> {
        live_sessions::all(self)
    }
    fn put_policy(
        &self,
        policy: &StoredPolicy,
        action: &ActionRecord,
    ) -> Result<(), RegistryError> {
        policies::put(self, policy, action)
    }
    fn policy_in_force(&self) -> Result<Option<StoredPolicy>, RegistryError> {
        policies::in_force(self)
    }
    fn set_override(&self, o: &OverrideRecord, action: &ActionRecord) -> Result<(), RegistryError> {
        overrides::set(self, o, action)
    }
    fn overrides(&self, now: time::OffsetDateTime) -> Result<Vec<OverrideRecord>, RegistryError> {
        overrides::in_force(self, now)
    }
    fn revision(&self) -> Result<i64, RegistryError> {
        policies::revision(self)
    }
    fn shared(&self) -> bool {
        Db::shared(self)
    }
    fn on_change(&self, hook: super::ChangeHook) -> Result<(), RegistryError> {
        Db::on_change(self, hook)
    }
}

/// Runs an `UPDATE` that must change a row: `NotFound(what())` when it changed none (the
/// row is not there, or not in a state the change applies to).
fn update_one(
    sql: &mut dyn Sql,
    statement: &str,
    params: &[Param<'_>],
    what: impl FnOnce() -> String,
) -> Result<(), RegistryError> {
    if sql.execute(statement, params)? == 0 {
        return Err(RegistryError::NotFound(what()));
    }
    Ok(())
}

/// An optional [`StatusChange`] from four columns starting at `first` (at, by, reason,
/// note).
fn change_from_row(r: &Row, first: usize) -> Result<Option<StatusChange>, RegistryError> {
    let Some(at) = r.opt_int(first)? else {
        return Ok(None);
    };
    Ok(Some(StatusChange {
        at: from_ts(at)?,
        by: r.opt_text(first + 1)?.unwrap_or_default(),
        reason: r.opt_text(first + 2)?.unwrap_or_default(),
        note: r.opt_text(first + 3)?,
    }))
}
