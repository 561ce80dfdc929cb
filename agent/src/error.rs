//! Failures, each a sentence that tells the employee what to do.

use std::fmt;

use ztgw_api::control::ErrorBody;
use ztgw_pki::InvitationError;

/// Why an agent command failed.
#[derive(Debug)]
pub enum AgentError {
    /// The pasted invitation is not well-formed.
    Invitation(InvitationError),
    /// The agent's own files.
    State { path: String, problem: String },
    /// The device is already enrolled.
    AlreadyEnrolled { device: String, dir: String },
    /// The device is not enrolled yet.
    NotEnrolled { dir: String },
    /// The gateway could not be reached.
    Unreachable { address: String, problem: String },
    /// The TLS connection failed.
    Tls {
        address: String,
        error: rustls::Error,
    },
    /// The gateway answered with a refusal.
    Refused { status: u16, body: ErrorBody },
    /// The gateway answered something the agent does not understand.
    Protocol(String),
    /// Something on this device failed (randomness, key generation).
    Local(String),
}

impl AgentError {
    /// The gateway's reason code, when the gateway refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { body, .. } => Some(&body.error),
            _ => None,
        }
    }

    /// Whether the gateway refused this device for good: an answer with a reason code
    /// other than "not now" (rate limited, busy, a journal or internal failure, another
    /// admission under way), or its certificate refused at the TLS handshake (revoked,
    /// unknown, expired). A connected agent stops on these; anything else (an
    /// unreachable gateway, "not now") is worth trying again.
    pub fn is_final(&self) -> bool {
        use rustls::AlertDescription as A;
        match self {
            // Refusals that say "not now" are tried again like an unreachable gateway.
            Self::Refused { body, .. } => !matches!(
                body.error.as_str(),
                "rate_limited"
                    | "busy"
                    | "timeout"
                    | "journal_unavailable"
                    | "internal_error"
                    | "admission_in_progress"
            ),
            Self::Tls {
                error: rustls::Error::AlertReceived(alert),
                ..
            } => matches!(
                alert,
                A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::BadCertificate
                    | A::UnknownCA
                    | A::UnsupportedCertificate
                    | A::AccessDenied
                    | A::CertificateRequired
            ),
            _ => false,
        }
    }

    /// The TLS alert or error, when the connection failed.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Tls { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invitation(e) => write!(
                f,
                "The invitation {e}. Copy it again exactly as your security unit sent it, in one piece."
            ),
            Self::State { path, problem } => write!(f, "The agent's file {path}: {problem}."),
            Self::AlreadyEnrolled { device, dir } => write!(
                f,
                "This device is already enrolled as {device} (state in {dir}). To enrol it again, ask your security unit to revoke {device} first, then remove {dir}."
            ),
            Self::NotEnrolled { dir } => write!(
                f,
                "This device is not enrolled (no state in {dir}). Run `ztgw-agent enroll INVITATION` with the invitation your security unit gave you."
            ),
            Self::Unreachable { address, problem } => write!(
                f,
                "Cannot reach the gateway at {address} ({problem}). Check your internet connection and try again; if it persists, contact your security unit."
            ),
            Self::Tls { address, error } => f.write_str(&tls_sentence(address, error)),
            Self::Refused { status, body } => f.write_str(&refusal_sentence(*status, body)),
            Self::Protocol(p) => write!(
                f,
                "The gateway's answer was not understood ({p}). Update ztgw-agent or contact your security unit."
            ),
            Self::Local(p) => write!(f, "This device could not complete the operation: {p}."),
        }
    }
}

impl std::error::Error for AgentError {}

fn refusal_sentence(status: u16, body: &ErrorBody) -> String {
    let ask = "Ask your security unit for a new invitation.";
    match body.error.as_str() {
        "invitation_used" => format!("This invitation has already been used to enrol a device. {ask}"),
        "invitation_expired" => format!("This invitation has expired ({}). {ask}", body.message),
        "invitation_unknown" | "invitation_malformed" => format!(
            "The gateway does not recognise this invitation. Check that you copied all of it; otherwise {}",
            ask.to_lowercase()
        ),
        "employee_revoked" => "Your telework access has been ended by the administration. Contact your security unit.".into(),
        "role_unknown" => format!("Your invitation's role no longer exists at the gateway. {ask}"),
        "directory_login_required" => "Your security unit requires your directory (Windows domain) password at enrolment: run the same command with --directory-login.".into(),
        "directory_login_failed" => "The directory did not accept this password for the employee the invitation names (the invitation is still valid: try again with your own directory password; if your account is locked or disabled, contact your security unit).".into(),
        "directory_unavailable" => "The gateway could not reach the directory to check your password. The invitation is still valid: try again in a few minutes.".into(),
        "device_pending_approval" => "This device is enrolled and waiting for your security unit's approval. Try again once they confirm it.".into(),
        "device_revoked" | "certificate_revoked" => "This device's access has been revoked. Contact your security unit.".into(),
        "certificate_expired" => "This device's certificate has expired. Ask your security unit for a new invitation and enrol again.".into(),
        "device_decommissioned" => "This device has been decommissioned and can no longer connect.".into(),
        "wireguard_key_in_use" => "This device's WireGuard key is already registered. Remove the agent's state directory and enrol with a new invitation.".into(),
        "rate_limited" => "Too many attempts from your network. Wait a minute, then try again.".into(),
        "busy" => "The gateway is receiving too many requests at once. Try again in a moment.".into(),
        "admission_refused" => {
            let mut s = String::from("The gateway refused the connection:");
            for c in &body.checks {
                s.push_str(&format!("\n  - {} ({})", c.sentence, c.id));
                if let Some(fix) = &c.remedy {
                    s.push_str(&format!("\n    what to do: {fix}"));
                }
            }
            s
        }
        "session_unknown" => "The gateway no longer knows this session (it ended). Connect again.".into(),
        "sessions_unavailable" => format!("The gateway cannot open a session now: {}. Try again later.", body.message),
        "device_description_invalid" => format!("The gateway refused this device's description: {}.", body.message),
        code if code.starts_with("csr_") || code == "request_malformed" || code == "request_too_large" => format!(
            "The gateway refused the agent's request ({}: {}). Update ztgw-agent or contact your security unit.",
            code, body.message
        ),
        code => format!("The gateway refused (HTTP {status}, {code}): {}.", body.message),
    }
}

fn tls_sentence(address: &str, e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::Other(other)) if other.0.to_string().contains("fingerprint") => format!(
            "The gateway at {address} is not the one named in your invitation (its certificate authority does not match). Do not continue: report this to your security unit, it may be an interception."
        ),
        E::InvalidCertificate(_) => format!(
            "The gateway at {address} presented a certificate this device does not trust ({e}). Report this to your security unit."
        ),
        E::AlertReceived(A::CertificateRevoked) => {
            "The gateway refused this device's certificate: it has been revoked. Contact your security unit.".into()
        }
        E::AlertReceived(A::CertificateExpired) => {
            "This device's certificate has expired. Ask your security unit for a new invitation and enrol again.".into()
        }
        E::AlertReceived(A::UnknownCA | A::BadCertificate | A::CertificateUnknown) => format!(
            "The gateway at {address} does not accept this device's certificate ({e}). Contact your security unit."
        ),
        other => format!("The secure connection to the gateway at {address} failed ({other}). Try again later."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> AgentError {
        AgentError::Refused {
            status: 400,
            body: ErrorBody {
                error: code.into(),
                message: String::new(),
                checks: Vec::new(),
            },
        }
    }

    #[test]
    fn only_refusals_for_good_end_a_connection() {
        for code in ["device_revoked", "session_unknown", "admission_refused"] {
            assert!(refused(code).is_final(), "{code}");
        }
        for code in ["rate_limited", "busy", "timeout", "journal_unavailable"] {
            assert!(!refused(code).is_final(), "{code}");
        }
        let unreachable = AgentError::Unreachable {
            address: "gw:8443".into(),
            problem: "refused".into(),
        };
        assert!(!unreachable.is_final());
    }
}
