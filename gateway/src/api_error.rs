//! The errors the control plane answers with, and their one mapping to HTTP statuses.
//!
//! Every refusal is a [`Reason`] (a stable code that agents and tests match on) with a
//! sentence. [`Reason::status`] is the only place an internal error becomes a status.

use http::StatusCode;
use ztgw_pki::CaError;

use crate::registry::RegistryError;

/// Why a request was refused. The `code` is part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    RequestMalformed,
    RequestTooLarge,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    Timeout,
    InvitationMalformed,
    InvitationUnknown,
    InvitationUsed,
    InvitationExpired,
    EmployeeRevoked,
    RoleUnknown,
    /// The gateway requires a directory login at enrolment and none was given.
    DirectoryLoginRequired,
    /// The directory refused the employee's password (or does not know them).
    DirectoryLoginFailed,
    /// The directory could not be asked: try again later.
    DirectoryUnavailable,
    DeviceDescriptionInvalid,
    CsrTooLarge,
    CsrMalformed,
    CsrSignatureInvalid,
    CsrUnsupported,
    WireguardKeyInUse,
    CertificateRequired,
    CertificateIdentityInvalid,
    CertificateUnknown,
    CertificateRevoked,
    CertificateExpired,
    DeviceUnknown,
    DevicePending,
    DeviceRevoked,
    DeviceDecommissioned,
    WireguardKeyMismatch,
    WrongCertificateKind,
    /// The audit journal cannot be written: nothing that needs journaling is done.
    JournalUnavailable,
    /// An admission or re-check was refused; the failed checks are in the answer.
    AdmissionRefused,
    SessionUnknown,
    /// Another admission of the same device is being set up (admissions of one device
    /// are serialised).
    AdmissionInProgress,
    /// This gateway runs without a data plane, or its session table is full.
    SessionsUnavailable,
    /// The gateway holds as many request bodies as it may: try again shortly.
    Busy,
    Internal,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Self::RequestMalformed => "request_malformed",
            Self::RequestTooLarge => "request_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::InvitationMalformed => "invitation_malformed",
            Self::InvitationUnknown => "invitation_unknown",
            Self::InvitationUsed => "invitation_used",
            Self::InvitationExpired => "invitation_expired",
            Self::EmployeeRevoked => "employee_revoked",
            Self::RoleUnknown => "role_unknown",
            Self::DirectoryLoginRequired => "directory_login_required",
            Self::DirectoryLoginFailed => "directory_login_failed",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::DeviceDescriptionInvalid => "device_description_invalid",
            Self::CsrTooLarge => "csr_too_large",
            Self::CsrMalformed => "csr_malformed",
            Self::CsrSignatureInvalid => "csr_signature_invalid",
            Self::CsrUnsupported => "csr_unsupported",
            Self::WireguardKeyInUse => "wireguard_key_in_use",
            Self::CertificateRequired => "certificate_required",
            Self::CertificateIdentityInvalid => "certificate_identity_invalid",
            Self::CertificateUnknown => "certificate_unknown",
            Self::CertificateRevoked => "certificate_revoked",
            Self::CertificateExpired => "certificate_expired",
            Self::DeviceUnknown => "device_unknown",
            Self::DevicePending => "device_pending_approval",
            Self::DeviceRevoked => "device_revoked",
            Self::DeviceDecommissioned => "device_decommissioned",
            Self::WireguardKeyMismatch => "wireguard_key_mismatch",
            Self::WrongCertificateKind => "wrong_certificate_kind",
            Self::JournalUnavailable => "journal_unavailable",
            Self::AdmissionRefused => "admission_refused",
            Self::SessionUnknown => "session_unknown",
            Self::AdmissionInProgress => "admission_in_progress",
            Self::SessionsUnavailable => "sessions_unavailable",
            Self::Busy => "busy",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::RequestMalformed
            | Self::InvitationMalformed
            | Self::DeviceDescriptionInvalid
            | Self::CsrMalformed
            | Self::CsrSignatureInvalid
            | Self::CsrUnsupported => StatusCode::BAD_REQUEST,
            Self::RequestTooLarge | Self::CsrTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::CertificateRequired | Self::DirectoryLoginRequired => StatusCode::UNAUTHORIZED,
            Self::InvitationUnknown
            | Self::InvitationExpired
            | Self::EmployeeRevoked
            | Self::DirectoryLoginFailed
            | Self::CertificateIdentityInvalid
            | Self::CertificateUnknown
            | Self::CertificateRevoked
            | Self::CertificateExpired
            | Self::DeviceUnknown
            | Self::DevicePending
            | Self::DeviceRevoked
            | Self::DeviceDecommissioned
            | Self::WireguardKeyMismatch
            | Self::WrongCertificateKind
            | Self::AdmissionRefused => StatusCode::FORBIDDEN,
            Self::SessionUnknown => StatusCode::NOT_FOUND,
            Self::InvitationUsed
            | Self::RoleUnknown
            | Self::WireguardKeyInUse
            | Self::AdmissionInProgress => StatusCode::CONFLICT,
            Self::JournalUnavailable
            | Self::SessionsUnavailable
            | Self::Busy
            | Self::DirectoryUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refusal: a reason and a sentence for the person reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.code())]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// For a refused admission: every check that failed.
    pub checks: Vec<ztgw_api::control::FailedCheck>,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            checks: Vec::new(),
        }
    }

    /// A refused admission or re-check, with the checks that failed.
    pub fn refused(checks: Vec<ztgw_api::control::FailedCheck>) -> Self {
        let n = checks.len();
        Self {
            reason: Reason::AdmissionRefused,
            message: format!(
                "access refused: {n} check{} failed",
                if n == 1 { "" } else { "s" }
            ),
            checks,
        }
    }

    /// The JSON body every error answer carries.
    pub fn body(&self) -> ztgw_api::control::ErrorBody {
        ztgw_api::control::ErrorBody {
            error: self.reason.code().to_owned(),
            message: self.message.clone(),
            checks: self.checks.clone(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        tracing::error!(error = %e, "registry error while serving a request");
        Self::new(
            Reason::Internal,
            "the gateway could not complete the request",
        )
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        let (reason, message) = match e {
            CaError::CsrTooLarge => (Reason::CsrTooLarge, e.to_string()),
            CaError::CsrMalformed => (Reason::CsrMalformed, e.to_string()),
            CaError::CsrBadSignature => (Reason::CsrSignatureInvalid, e.to_string()),
            CaError::CsrUnsupportedExtension | CaError::CsrUnsupportedAlgorithm => {
                (Reason::CsrUnsupported, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "certificate authority error");
                (
                    Reason::Internal,
                    "the gateway could not sign the certificate".to_owned(),
                )
            }
        };
        Self::new(reason, message)
    }
}

impl From<crate::journal::JournalError> for ApiError {
    fn from(e: crate::journal::JournalError) -> Self {
        tracing::error!(error = %e, "journal refused an event; the request is refused");
        Self::new(
            Reason::JournalUnavailable,
            "the gateway cannot record this action in its audit journal; try again later",
        )
    }
}

impl From<crate::clock::EntropyError> for ApiError {
    fn from(e: crate::clock::EntropyError) -> Self {
        tracing::error!(error = %e, "no randomness");
        Self::new(
            Reason::Internal,
            "the gateway could not complete the request",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Reason::*;
    use super::*;

    const ALL: &[Reason] = &[
        RequestMalformed,
        RequestTooLarge,
        NotFound,
        MethodNotAllowed,
        RateLimited,
        Timeout,
        InvitationMalformed,
        InvitationUnknown,
        InvitationUsed,
        InvitationExpired,
        EmployeeRevoked,
        RoleUnknown,
        DirectoryLoginRequired,
        DirectoryLoginFailed,
        DirectoryUnavailable,
        DeviceDescriptionInvalid,
        CsrTooLarge,
        CsrMalformed,
        CsrSignatureInvalid,
        CsrUnsupported,
        WireguardKeyInUse,
        CertificateRequired,
        CertificateIdentityInvalid,
        CertificateUnknown,
        CertificateRevoked,
        CertificateExpired,
        DeviceUnknown,
        DevicePending,
        DeviceRevoked,
        DeviceDecommissioned,
        WireguardKeyMismatch,
        WrongCertificateKind,
        JournalUnavailable,
        AdmissionRefused,
        SessionUnknown,
        AdmissionInProgress,
        SessionsUnavailable,
        Busy,
        Internal,
    ];

    #[test]
    fn every_refusal_is_a_client_error_and_codes_are_unique() {
        let all = ALL;
        let mut codes: Vec<&str> = all.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for &r in all {
            assert_eq!(
                r.status().is_client_error(),
                !matches!(
                    r,
                    Internal
                        | JournalUnavailable
                        | SessionsUnavailable
                        | Busy
                        | DirectoryUnavailable
                ),
                "{r:?}"
            );
        }
    }

    /// docs/api.md names every endpoint and every error code, with the status the
    /// gateway answers it with.
    #[test]
    fn the_api_document_names_every_endpoint_and_error() {
        use ztgw_api::control::path;
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
            .expect("docs/api.md");
        let endpoints = [
            ("POST", path::ENROL),
            ("POST", path::RENEW),
            ("GET", path::DEVICE),
            ("GET", path::POSTURE_PROFILE),
            ("POST", path::SESSION_NONCE),
            ("POST", path::SESSION),
            ("POST", path::SESSION_RECHECK),
            ("POST", path::SESSION_END),
            ("POST", path::SESSION_WATCH),
            ("POST", path::INCIDENT),
            ("GET", path::AUDIT_EVENTS),
            ("GET", path::AUDIT_VERIFY),
            ("GET", path::AUDIT_CHECKPOINT),
        ];
        for (method, p) in endpoints {
            let heading = format!("### `{method} {p}`");
            assert!(doc.contains(&heading), "docs/api.md lacks {heading}");
        }
        assert_eq!(
            doc.matches("\n### `").count(),
            endpoints.len(),
            "docs/api.md documents an endpoint the gateway does not serve"
        );
        for &r in ALL {
            let row = format!("| `{}` | {} |", r.code(), r.status().as_u16());
            assert!(doc.contains(&row), "docs/api.md lacks the row {row}");
        }
        assert_eq!(
            doc.lines()
                .filter(|l| l.starts_with("| `")
                    && l.split('|')
                        .nth(2)
                        .is_some_and(|s| s.trim().parse::<u16>().is_ok()))
                .count(),
            ALL.len(),
            "docs/api.md lists an error code the gateway does not answer"
        );
    }
}
