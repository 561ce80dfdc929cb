//! Web console operators (`ztgw operator add|revoke|list`): a certificate for the key in
//! the CSR the command made (the key never leaves the operator's PKCS#12 file), a role in
//! the registry, revocation through the CRL. Operators are managed from the gateway's
//! command line only, never from the console itself.

use time::OffsetDateTime;
use ztgw_api::console::{OperatorRole, OperatorView};
use ztgw_pki::OperatorName;

use super::{
    AdminError, AdminErrorCode, AdminResponse, action, apply, check_note, done, journal,
    journal_reducing_access, person_certificate, publish,
};
use crate::context::Context;
use crate::enrolment::rfc3339;
use crate::journal::Event;
use crate::registry::{OperatorRecord, StatusChange};

pub(super) fn add(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    name: &OperatorName,
    role: OperatorRole,
    csr_pem: &str,
    valid_for_secs: u64,
) -> Result<AdminResponse, AdminError> {
    let p = person_certificate(
        ctx,
        now,
        "an operator",
        &format!("operator {name}"),
        ctx.registry.operator(name)?.is_some(),
        csr_pem,
        valid_for_secs,
    )?;
    let csr = p.csr;
    let claims = ztgw_pki::OperatorClaims {
        name: name.clone(),
        serial: p.serial,
        not_before: p.not_before,
        not_after: p.not_after,
    };
    let cert = ctx
        .ca
        .issue_operator(&csr, &claims)
        .map_err(|e| AdminError::new(AdminErrorCode::Internal, e.to_string()))?;
    let record = OperatorRecord {
        name: name.clone(),
        role,
        serial: cert.serial.clone(),
        not_after: cert.not_after,
        added: StatusChange::new(now, operator, "added", None),
        revoked: None,
    };
    let seq = journal(
        ctx,
        Event::OperatorAdded {
            name: name.clone(),
            role: role.as_str().to_owned(),
            serial: cert.serial.to_hex(),
            operator: operator.to_owned(),
            not_after: rfc3339(cert.not_after),
        },
    )?;
    let action = action(
        now,
        operator,
        "operator.added",
        name.as_str(),
        &format!("role={} serial={}", role.as_str(), cert.serial),
    );
    apply(ctx, seq, || ctx.registry.add_operator(&record, &action))?;
    Ok(AdminResponse::Operator {
        name: name.clone(),
        role,
        certificate_pem: cert.pem,
        ca_pem: ctx.ca.cert_pem().to_owned(),
        not_after: cert.not_after,
    })
}

pub(super) fn revoke(
    ctx: &Context,
    now: OffsetDateTime,
    operator: &str,
    name: &OperatorName,
    note: &Option<String>,
) -> Result<AdminResponse, AdminError> {
    check_note(note)?;
    let change = StatusChange::new(now, operator, "revoked", note.clone());
    let action = action(
        now,
        operator,
        "operator.revoked",
        name.as_str(),
        note.as_deref().unwrap_or(""),
    );
    let seq = journal_reducing_access(
        ctx,
        Event::OperatorRevoked {
            name: name.clone(),
            operator: operator.to_owned(),
            note: note.clone(),
        },
    )?;
    apply(ctx, seq, || {
        ctx.registry.revoke_operator(name, &change, &action)
    })?;
    publish(ctx)?;
    Ok(done(format!("operator {name} revoked"), vec![]))
}

pub(super) fn list(ctx: &Context) -> Result<AdminResponse, AdminError> {
    let operators = ctx
        .registry
        .operators()?
        .into_iter()
        .map(|o| OperatorView {
            name: o.name,
            role: o.role,
            revoked: o.revoked.is_some(),
        })
        .collect();
    Ok(AdminResponse::Operators { operators })
}
