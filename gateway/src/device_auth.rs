//! Who is calling: a verified client certificate, checked against the registry.
//!
//! TLS has already verified the chain and the CRL. This adds what TLS cannot know: the
//! certificate must be one the registry issued, not revoked since the connection opened
//! (HTTP/2 and keep-alive connections outlive a CRL swap), not expired since (nor do they
//! end when it expires), for a device still in service, whose employee still teleworks,
//! with the WireGuard key the registry holds.

use time::OffsetDateTime;
use ztgw_api::control::DeviceStatus;
use ztgw_pki::{CertificateIdentity, IdentityError, SerialNumber};

use crate::api_error::{ApiError, Reason};
use crate::context::Context;
use crate::registry::DeviceRecord;

/// A device whose certificate and registry record agree, in any status but ended.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice {
    pub record: DeviceRecord,
    pub serial: SerialNumber,
    pub not_after: OffsetDateTime,
}

impl AuthenticatedDevice {
    /// Refuses a device still waiting for approval.
    pub fn require_active(&self) -> Result<(), ApiError> {
        match self.record.status {
            DeviceStatus::Active => Ok(()),
            DeviceStatus::Pending => Err(ApiError::new(
                Reason::DevicePending,
                "this device is waiting for the security unit's approval",
            )),
            DeviceStatus::Revoked | DeviceStatus::Decommissioned => Err(ended(self.record.status)),
        }
    }
}

/// What the connection presented.
#[derive(Debug, Clone)]
pub enum Presented {
    Nothing,
    Invalid(IdentityError),
    Identity(CertificateIdentity),
}

/// Checks the presented identity against the registry.
pub fn authenticate(ctx: &Context, presented: &Presented) -> Result<AuthenticatedDevice, ApiError> {
    let identity = match presented {
        Presented::Nothing => {
            return Err(ApiError::new(
                Reason::CertificateRequired,
                "this request needs the device's client certificate",
            ));
        }
        Presented::Invalid(e) => {
            return Err(ApiError::new(
                Reason::CertificateIdentityInvalid,
                e.to_string(),
            ));
        }
        Presented::Identity(i) => i,
    };
    let CertificateIdentity::Device {
        device,
        employee,
        wg_key,
        serial,
        not_after,
    } = identity
    else {
        return Err(ApiError::new(
            Reason::WrongCertificateKind,
            "this request needs a device certificate",
        ));
    };
    let now = ctx.clock.now();
    still_valid(not_after, now)?;
    let cert = ctx.registry.certificate(serial)?.ok_or_else(|| {
        ApiError::new(
            Reason::CertificateUnknown,
            "the registry never issued this certificate",
        )
    })?;
    if cert.revoked.is_some() {
        return Err(ApiError::new(
            Reason::CertificateRevoked,
            "this certificate has been revoked",
        ));
    }
    let record = ctx
        .registry
        .device(device)?
        .ok_or_else(|| ApiError::new(Reason::DeviceUnknown, "the registry has no such device"))?;
    if &cert.device != device || &record.employee != employee {
        return Err(ApiError::new(
            Reason::CertificateIdentityInvalid,
            "the certificate's identity does not match the registry",
        ));
    }
    if &record.wg_key != wg_key {
        return Err(ApiError::new(
            Reason::WireguardKeyMismatch,
            "the certificate's WireGuard key is not the one registered for this device",
        ));
    }
    if matches!(
        record.status,
        DeviceStatus::Revoked | DeviceStatus::Decommissioned
    ) {
        return Err(ended(record.status));
    }
    if ctx
        .registry
        .employee(employee)?
        .is_none_or(|e| e.revoked.is_some())
    {
        return Err(ApiError::new(
            Reason::EmployeeRevoked,
            "the employee's telework has been ended by the administration",
        ));
    }
    let device = AuthenticatedDevice {
        record,
        serial: serial.clone(),
        not_after: *not_after,
    };
    // The first use of a renewed certificate retires the ones before it.
    let older: Vec<SerialNumber> = ctx
        .registry
        .certificates_of(&device.record.id)?
        .into_iter()
        .filter(|c| c.revoked.is_none() && c.not_after > now && c.issued_at < cert.issued_at)
        .map(|c| c.serial)
        .collect();
    if let Err(e) = crate::enrolment::supersede(ctx, &device, older, now) {
        // Tried again at the device's next request.
        tracing::warn!(device = %device.record.id, error = %e, "could not retire the certificates a renewed one replaced");
    }
    Ok(device)
}

/// Refuses a certificate past its validity: TLS checked it when the connection opened,
/// and a kept connection may outlive it.
fn still_valid(not_after: &OffsetDateTime, now: OffsetDateTime) -> Result<(), ApiError> {
    if *not_after <= now {
        return Err(ApiError::new(
            Reason::CertificateExpired,
            format!(
                "this certificate expired at {}",
                crate::enrolment::rfc3339(*not_after)
            ),
        ));
    }
    Ok(())
}

fn ended(status: DeviceStatus) -> ApiError {
    match status {
        DeviceStatus::Decommissioned => ApiError::new(
            Reason::DeviceDecommissioned,
            "this device has been decommissioned",
        ),
        _ => ApiError::new(Reason::DeviceRevoked, "this device has been revoked"),
    }
}

/// Checks that the connection presented a current auditor certificate.
pub fn authenticate_auditor(
    ctx: &Context,
    presented: &Presented,
) -> Result<ztgw_pki::AuditorName, ApiError> {
    let identity = match presented {
        Presented::Nothing => {
            return Err(ApiError::new(
                Reason::CertificateRequired,
                "this request needs an auditor certificate",
            ));
        }
        Presented::Invalid(e) => {
            return Err(ApiError::new(
                Reason::CertificateIdentityInvalid,
                e.to_string(),
            ));
        }
        Presented::Identity(i) => i,
    };
    let CertificateIdentity::Auditor {
        name,
        serial,
        not_after,
    } = identity
    else {
        return Err(ApiError::new(
            Reason::WrongCertificateKind,
            "this request needs an auditor certificate",
        ));
    };
    still_valid(not_after, ctx.clock.now())?;
    let record = ctx.registry.auditor(name)?.ok_or_else(|| {
        ApiError::new(
            Reason::CertificateUnknown,
            "the registry has no such auditor",
        )
    })?;
    if &record.serial != serial {
        return Err(ApiError::new(
            Reason::CertificateUnknown,
            "this is not the auditor's current certificate",
        ));
    }
    if record.revoked.is_some() {
        return Err(ApiError::new(
            Reason::CertificateRevoked,
            "this auditor's certificate has been revoked",
        ));
    }
    Ok(name.clone())
}
