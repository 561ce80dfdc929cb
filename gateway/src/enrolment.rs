//! Enrolment and renewal: how a device gets, and keeps, its certificate.
//!
//! [`enrol`] redeems an invitation (the prior approval of G1) for a device certificate;
//! [`renew`] gives an authenticated device a fresh one. Every check happens before
//! anything is signed, and the registry is written in one transaction, so a refused
//! request leaves the registry exactly as it was.

use base64::Engine as _;
use time::OffsetDateTime;
use ztgw_api::control::{
    DeviceStatus, DeviceView, EnrolRequest, EnrolResponse, RenewRequest, RenewResponse,
};
use ztgw_pki::ca::CheckedCsr;
use ztgw_pki::{DeviceClaims, DeviceId, SerialNumber};

use crate::api_error::{ApiError, Reason};
use crate::clock::random;
use crate::context::Context;
use crate::device_auth::AuthenticatedDevice;
use crate::directory::client::LoginProof;
use crate::journal::Event;
use crate::registry::{
    ActionRecord, CertificateRecord, DeviceRecord, Enrolment, InvitationRecord, RegistryError,
    StatusChange,
};

/// The invitation `req` redeems, if it may be: known, its secret right, unused, not
/// expired. Looked at before anything else is (a directory login is only tried for one).
pub fn invitation(ctx: &Context, req: &EnrolRequest) -> Result<InvitationRecord, ApiError> {
    let now = ctx.clock.now();
    let secret: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(req.invitation_secret.expose())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            ApiError::new(
                Reason::InvitationMalformed,
                "the invitation secret is not 32 bytes of base64url",
            )
        })?;
    let unknown = || {
        ApiError::new(
            Reason::InvitationUnknown,
            "no invitation matches; ask the security unit for a new one",
        )
    };
    let inv = ctx
        .registry
        .invitation(&req.invitation_id)?
        .ok_or_else(unknown)?;
    if !inv.secret_hash.matches(&inv.id, &secret) {
        return Err(unknown());
    }
    if inv.used_at.is_some() {
        return Err(ApiError::new(
            Reason::InvitationUsed,
            "this invitation has already been used to enrol a device",
        ));
    }
    if now >= inv.expires_at {
        return Err(ApiError::new(
            Reason::InvitationExpired,
            format!("this invitation expired at {}", rfc3339(inv.expires_at)),
        ));
    }
    Ok(inv)
}

/// Whether enrolment requires the employee's directory password.
pub fn directory_login_required(ctx: &Context) -> bool {
    ctx.settings
        .directory
        .as_ref()
        .is_some_and(|d| d.require_directory_login)
}

/// Redeems an invitation for a device certificate. With `require_directory_login`,
/// `login` must prove that the invitation's employee bound to the directory. A refusal
/// changes nothing; the control plane counts it for the journal (see
/// [`crate::control::refusals`]).
pub fn enrol(
    ctx: &Context,
    req: &EnrolRequest,
    login: Option<&LoginProof>,
) -> Result<EnrolResponse, ApiError> {
    let now = ctx.clock.now();
    req.device
        .check()
        .map_err(|m| ApiError::new(Reason::DeviceDescriptionInvalid, m))?;
    let inv = invitation(ctx, req)?;
    if directory_login_required(ctx) && login.is_none_or(|p| p.employee != inv.employee) {
        return Err(ApiError::new(
            Reason::DirectoryLoginRequired,
            format!(
                "this gateway requires {} to log in with their directory password at enrolment",
                inv.employee
            ),
        ));
    }
    let employee = ctx.registry.employee(&inv.employee)?;
    if employee.is_none_or(|e| e.revoked.is_some()) {
        return Err(ApiError::new(
            Reason::EmployeeRevoked,
            "the employee's telework has been ended by the administration",
        ));
    }
    if !ctx.policy.current().policy.has_role(&inv.role) {
        return Err(ApiError::new(
            Reason::RoleUnknown,
            format!(
                "the invitation's role {:?} is no longer in the policy; ask the security unit",
                inv.role
            ),
        ));
    }
    let csr = CheckedCsr::parse_pem(&req.csr_pem)?;

    let device_id = DeviceId::from_random(random(ctx.entropy.as_ref())?);
    let claims = DeviceClaims {
        device: device_id.clone(),
        employee: inv.employee.clone(),
        wg_key: req.wireguard_public_key,
        serial: SerialNumber::from_random(random(ctx.entropy.as_ref())?),
        not_before: now,
        not_after: now + validity(ctx),
    };
    let cert = ctx.ca.issue_device(&csr, &claims)?;
    let status = if ctx.settings.enrolment.require_device_approval {
        DeviceStatus::Pending
    } else {
        DeviceStatus::Active
    };
    let device = DeviceRecord {
        id: device_id.clone(),
        employee: inv.employee.clone(),
        role: inv.role.clone(),
        schedule: inv.schedule.clone(),
        invitation: inv.id.clone(),
        hostname: req.device.hostname.clone(),
        os: req.device.os.clone(),
        ownership: req.device.ownership,
        wg_key: req.wireguard_public_key,
        status,
        enrolled_at: now,
        approved: (status == DeviceStatus::Active).then(|| StatusChange {
            at: now,
            by: inv.approved_by.clone(),
            reason: format!("invitation {} ({})", inv.id, inv.reference),
            note: None,
        }),
        ended: None,
    };
    // The second factor's secret (G8): shown once to the employee, kept by the gateway,
    // written with the device in the same transaction.
    let totp = ztgw_pki::totp::TotpSecret::new(
        crate::clock::random::<{ ztgw_pki::totp::SECRET_LEN }>(ctx.entropy.as_ref())?.to_vec(),
    );
    let enrolment = Enrolment {
        invitation: inv.id.clone(),
        device,
        certificate: certificate_record(&device_id, &cert, now),
        totp_secret: ztgw_pki::Secret::new(totp.bytes().to_vec()),
    };
    let action = ActionRecord {
        at: now,
        operator: format!("device {device_id}"),
        action: "device.enrolled".into(),
        target: device_id.to_string(),
        detail: format!(
            "employee={} role={} invitation={} status={} serial={}",
            inv.employee,
            inv.role,
            inv.id,
            status.as_str(),
            cert.serial
        ),
    };
    let seq = ctx.journal(&Event::DeviceEnrolled {
        device: device_id.clone(),
        employee: inv.employee.clone(),
        role: inv.role.clone(),
        invitation: inv.id.clone(),
        status: status.as_str().into(),
        ownership: req.device.ownership.as_str().into(),
        serial: cert.serial.to_hex(),
    })?;
    let outcome = ctx.registry.complete_enrolment(&enrolment, &action);
    if let Err(e) = &outcome {
        let _ = ctx.journal(&Event::ActionFailed {
            seq,
            error: e.to_string(),
        });
    }
    match outcome {
        Ok(()) => {}
        Err(RegistryError::InvitationAlreadyUsed) => {
            return Err(ApiError::new(
                Reason::InvitationUsed,
                "this invitation has already been used to enrol a device",
            ));
        }
        Err(RegistryError::WgKeyInUse(_)) => {
            return Err(ApiError::new(
                Reason::WireguardKeyInUse,
                "this WireGuard key already belongs to an enrolled device; generate a new one",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(device = %device_id, status = status.as_str(), "device enrolled");
    let issuer = format!(
        "ztgw {}",
        ctx.settings
            .gateway
            .names
            .first()
            .map_or("gateway", String::as_str)
    );
    Ok(EnrolResponse {
        totp_secret: Some(ztgw_api::control::RedactedString::new(
            totp.base32().to_string(),
        )),
        totp_uri: Some(ztgw_api::control::RedactedString::new(
            totp.uri(&issuer, inv.employee.as_str()).to_string(),
        )),
        device_id,
        employee_id: inv.employee,
        role: inv.role,
        status,
        certificate_pem: cert.pem,
        ca_pem: ctx.ca.cert_pem().to_owned(),
        not_after: cert.not_after,
    })
}

/// Issues a fresh certificate to an authenticated, active device for the key in `req`,
/// at most once per `renewal_interval`. The certificate it presents stays valid until
/// the new one is first used (then [`supersede`] revokes it), so an agent that crashes
/// before saving the new one is not locked out; newer ones it never used are revoked
/// here, so a device never holds more than two.
pub fn renew(
    ctx: &Context,
    device: &AuthenticatedDevice,
    req: &RenewRequest,
) -> Result<RenewResponse, ApiError> {
    let now = ctx.clock.now();
    device.require_active()?;
    let record = &device.record;
    // At most one renewal per interval: a device cannot pile up certificates.
    let certificates = ctx.registry.certificates_of(&record.id)?;
    let interval = time::Duration::try_from(ctx.settings.enrolment.renewal_interval.get())
        .unwrap_or(time::Duration::minutes(10));
    if let Some(last) = certificates.iter().map(|c| c.issued_at).max()
        && now < last + interval
    {
        return Err(ApiError::new(
            Reason::RateLimited,
            format!(
                "this device's certificate was issued at {}; it may be renewed again from {}",
                rfc3339(last),
                rfc3339(last + interval)
            ),
        ));
    }
    let csr = CheckedCsr::parse_pem(&req.csr_pem)?;
    // Newer certificates the device never used (it lost them): revoked before another is
    // issued, so it never holds more than the one it uses and the new one.
    let current_issued = certificates
        .iter()
        .find(|c| c.serial == device.serial)
        .map(|c| c.issued_at);
    let unused: Vec<SerialNumber> = certificates
        .iter()
        .filter(|c| {
            c.revoked.is_none()
                && c.serial != device.serial
                && c.not_after > now
                && current_issued.is_none_or(|at| c.issued_at >= at)
        })
        .map(|c| c.serial.clone())
        .collect();
    supersede(ctx, device, unused, now)?;
    let claims = DeviceClaims {
        device: record.id.clone(),
        employee: record.employee.clone(),
        wg_key: record.wg_key,
        serial: SerialNumber::from_random(random(ctx.entropy.as_ref())?),
        not_before: now,
        not_after: now + validity(ctx),
    };
    let cert = ctx.ca.issue_device(&csr, &claims)?;
    let action = ActionRecord {
        at: now,
        operator: format!("device {}", record.id),
        action: "device.certificate_renewed".into(),
        target: record.id.to_string(),
        detail: format!("previous={} serial={}", device.serial, cert.serial),
    };
    let seq = ctx.journal(&Event::CertificateRenewed {
        device: record.id.clone(),
        employee: record.employee.clone(),
        serial: cert.serial.to_hex(),
        previous: device.serial.to_hex(),
    })?;
    if let Err(e) = ctx
        .registry
        .add_certificate(&certificate_record(&record.id, &cert, now), &action)
    {
        let _ = ctx.journal(&Event::ActionFailed {
            seq,
            error: e.to_string(),
        });
        return Err(e.into());
    }
    Ok(RenewResponse {
        certificate_pem: cert.pem,
        not_after: cert.not_after,
    })
}

/// Revokes `serials` of `device` as superseded by the certificate it presents:
/// journaled, recorded, and the CRL republished before this returns.
pub fn supersede(
    ctx: &Context,
    device: &AuthenticatedDevice,
    serials: Vec<SerialNumber>,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    if serials.is_empty() {
        return Ok(());
    }
    let record = &device.record;
    let hex: Vec<String> = serials.iter().map(SerialNumber::to_hex).collect();
    let action = ActionRecord {
        at: now,
        operator: format!("device {}", record.id),
        action: "certificate.superseded".into(),
        target: record.id.to_string(),
        detail: format!("serials={} by={}", hex.join(","), device.serial),
    };
    let seq = ctx.journal(&Event::CertificateSuperseded {
        device: record.id.clone(),
        employee: record.employee.clone(),
        serials: hex,
        by: device.serial.to_hex(),
    })?;
    if let Err(e) = ctx
        .registry
        .supersede_certificates(&record.id, &serials, now, &action)
    {
        let _ = ctx.journal(&Event::ActionFailed {
            seq,
            error: e.to_string(),
        });
        return Err(e.into());
    }
    ctx.publish_crl().map_err(|e| {
        tracing::error!(error = %e, "could not publish the revocation list");
        ApiError::new(
            Reason::Internal,
            "the gateway could not publish its revocation list",
        )
    })?;
    Ok(())
}

/// What the gateway knows of the calling device.
pub fn view(device: &AuthenticatedDevice) -> DeviceView {
    DeviceView {
        device_id: device.record.id.clone(),
        employee_id: device.record.employee.clone(),
        role: device.record.role.clone(),
        status: device.record.status,
        certificate_serial: device.serial.to_hex(),
        certificate_not_after: device.not_after,
    }
}

fn certificate_record(
    device: &DeviceId,
    cert: &ztgw_pki::IssuedCertificate,
    now: OffsetDateTime,
) -> CertificateRecord {
    CertificateRecord {
        serial: cert.serial.clone(),
        device: device.clone(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        issued_at: now,
        revoked: None,
    }
}

fn validity(ctx: &Context) -> time::Duration {
    time::Duration::try_from(ctx.settings.enrolment.certificate_validity.get())
        .unwrap_or(time::Duration::days(30))
}

/// RFC 3339 in UTC (`2027-04-06T09:00:00Z`), as every time in the API, the journal and
/// the command line's JSON is written, whatever offset `t` carries; falls back to the
/// debug form, which is still readable.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}
